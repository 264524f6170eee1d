"""What the figures were measured on: the machine, its device, and its float32 matrix-multiply rate."""
from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch

from core.runtime.device import resolve_device


def machine() -> dict[str, str | int]:
    """The processor, cores, torch threads and device the figures were measured on."""
    device = resolve_device("auto")
    return {"processor": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count() or 0,
            "torch_threads": torch.get_num_threads(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__}


def sgemm_gflops(device: str = "auto", n: int | None = None, repeats: int = 10) -> float:
    """float32 matrix-multiply rate on `device` (with torch's threads on CPU): the training yardstick."""
    device = resolve_device(device)
    cuda = device.type == "cuda"
    n = n or (8192 if cuda else 2048)  # large enough to keep the device busy for the timed call
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for i in range(repeats + 3):  # 3 warm-up calls
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
