"""A shareable report of one run: one self-contained HTML page and its Markdown twin, with static figures."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "report": ["build_report", "write_report"],
})
