"""The stimulus check shared by every prefilter and model (ground floor: imports only torch).

A stimulus is a spectrogram batch ``(B, 1, F, T)``: B stimuli, one input channel, F bands,
T >= 1 time bins, floating point.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["check_stimulus"]


def check_stimulus(x, n_bands: Optional[int] = None) -> None:
    """Raise ValueError unless ``x`` is a floating-point tensor ``(B, 1, F, T)``, T >= 1.

    n_bands: the expected F, or None to accept any. The message names the expected shape
    ``(B, 1, F, T)`` (with ``F=n_bands`` when given) and what was passed.
    """
    if not torch.is_tensor(x):
        raise ValueError(f"expected a torch.Tensor stimulus of shape (B, 1, F, T), got {type(x).__name__}")
    f_txt = f" with F={n_bands}" if n_bands is not None else ""
    if x.dim() != 4 or x.shape[1] != 1 or (n_bands is not None and x.shape[2] != n_bands) or x.shape[-1] < 1:
        raise ValueError(f"expected a stimulus of shape (B, 1, F, T){f_txt}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point stimulus (B, 1, F, T), got dtype {x.dtype}")
