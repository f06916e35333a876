"""Seeding and device choice for fitting.
"""
from __future__ import annotations

import random

import numpy as np
import torch

from ..shapes import check_int

__all__ = ["seed_everything", "resolve_device", "CUDA_HELP"]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device) with ``seed`` (an int)."""
    seed = check_int(seed, "seed")
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


#: what to do when a CUDA device is asked for and this torch cannot use one
CUDA_HELP = ("install the CUDA build of torch into the environment: `make env TORCH=cuda` (TORCH_INDEX=<url> for "
             "another CUDA version's wheel index; conda: environment.yml, then PY=python; README, 'Troubleshooting'), "
             "or pass device='cpu' / 'auto'")


def resolve_device(device: str | torch.device | None = "auto", available: bool = True) -> torch.device:
    """The device to fit on, checked to exist here: ``"auto"`` / None -> ``cuda`` when available,
    else ``cpu``; a name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``), a ``torch.device`` or
    a CUDA index (int) -> that device. ``available=False`` checks the name only (for a device
    on another machine, e.g. a Slurm node).

    Raises:
        TypeError: ``device`` is not a string, a ``torch.device`` or an int.
        ValueError: an unknown device name, or a CUDA / MPS device this torch build or machine
            does not have (the message says which, and how to get a CUDA build of torch).
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise TypeError(f"expected device 'auto', 'cpu', 'cuda', 'cuda:<index>' or a torch.device, got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"expected device 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got {device!r}") from None
    if not available:
        return dev
    if dev.type == "cuda":
        if torch.version.cuda is None and torch.version.hip is None:
            raise ValueError(f"device={device!r}: this torch build ({torch.__version__}) has no CUDA support; "
                             + CUDA_HELP)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={device!r}: torch {torch.__version__} is a CUDA build but finds no usable GPU "
                             "on this machine (driver, CUDA_VISIBLE_DEVICES?); pass device='cpu' / 'auto'")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device={device!r}: this machine has {count} CUDA device(s), indices 0 to {count - 1}")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"device={device!r}: MPS (Apple GPU) is not available here; pass device='cpu' / 'auto'")
    return dev
