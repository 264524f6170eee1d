"""Where code runs: the device ("auto" resolved once), the ranks of a torchrun job (`torch.distributed`, with the
global BatchNorm they need), and the process's memory settings for pass-after-pass CNN work."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "device": ["resolve_device"],
    "distributed": ["DistributedError", "World", "close_world", "init_world"],
    "process": ["keep_freed_memory"],
})
