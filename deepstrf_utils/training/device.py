"""Seeding and device choice for fitting.
"""
from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["seed_everything", "resolve_device"]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    if torch.cuda.is_available() or _mps_available():
        torch.manual_seed(seed)
    else:
        # the same seeding of torch's (only) CPU generator; torch.manual_seed would also
        # queue a lazy CUDA seeding with a captured traceback (~0.7 ms a call), which adds
        # up when fit_single_units seeds every unit
        torch.default_generator.manual_seed(seed)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else -> ``torch.device``."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
