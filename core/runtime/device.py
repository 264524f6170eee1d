"""Where the networks run: the device, resolved once from a config's "auto" (STYLE rule 6: never `.cuda()`)."""
from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
