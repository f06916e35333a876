"""The stimulus checks shared by every prefilter and model (ground floor: imports only torch).

A stimulus is a spectrogram batch ``(B, 1, F, T)`` (B stimuli, one input channel, F bands,
T >= 1 time bins) or a movie batch ``(B, C, H, W, T)`` (C channels, e.g. 1 for luminance,
H x W pixels, T >= 1 frames; an image is a one-frame movie), floating point.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["check_stimulus", "check_movie"]


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


def check_movie(x, frame_shape: Optional[tuple] = None) -> None:
    """Raise ValueError unless ``x`` is a floating-point movie batch ``(B, C, H, W, T)``, T >= 1.

    frame_shape: the expected ``(C, H, W)``, or None to accept any. The message names the
    expected shape ``(B, C, H, W, T)`` (with the expected C, H, W when given) and what was passed.
    """
    want = "(B, C, H, W, T)" + ("" if frame_shape is None else
                                " with (C, H, W)=({}, {}, {})".format(*(int(v) for v in frame_shape)))
    if not torch.is_tensor(x):
        raise ValueError(f"expected a torch.Tensor movie of shape {want}, got {type(x).__name__}")
    if x.dim() != 5 or x.shape[-1] < 1 or (frame_shape is not None and tuple(x.shape[1:4]) != tuple(frame_shape)):
        raise ValueError(f"expected a movie of shape {want}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point movie (B, C, H, W, T), got dtype {x.dtype}")
