"""The one padding / collation path of the package.

Dataset items are ``(stim (1, F, T_i), resp (N, R_i, T_i))`` of different lengths (a movie
dataset's stimuli are ``(C, H, W, T_i)``: everything below pads and batches them the same way,
along their last axis, time).
:func:`check_items` validates them, :func:`pad_to_longest` zero- or NaN-pads a list of
tensors to the largest size in every axis (returning the time lengths), and
:func:`collate_responses` (the public ``DataLoader`` collate) is these two steps. Training's
packer and the prediction batches use the same two functions.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..metrics.inputs import reject_inf

__all__ = ["check_items", "check_stimuli", "pad_to_longest", "collate_responses"]


def check_stimuli(stims: Sequence[Any]) -> list[torch.Tensor]:
    """Stimuli ``(1, F, T_i)`` or movies ``(C, H, W, T_i)`` (tensors or arrays) -> float32
    tensors, all of one kind with the same F (spectrograms) or the same (C, H, W) (movies).

    Raises ValueError naming the first stimulus of the wrong shape.
    """
    out = []
    for i, s in enumerate(stims):
        s = torch.as_tensor(s, dtype=torch.float32)
        if not ((s.ndim == 3 and s.shape[0] == 1) or s.ndim == 4):
            raise ValueError(f"expected stimulus {i} of shape (1, F, T) (or a movie (C, H, W, T)), got {tuple(s.shape)}")
        if out and s.ndim == 3 and (out[0].ndim != 3 or s.shape[1] != out[0].shape[1]):
            raise ValueError(f"expected stimulus {i} with F={out[0].shape[1]} bands like item 0, "
                             f"got {tuple(s.shape)}")
        if out and s.ndim == 4 and s.shape[:3] != out[0].shape[:3]:
            raise ValueError(f"expected movie {i} of shape (C, H, W, T) with (C, H, W)={tuple(out[0].shape[:-1])} "
                             f"like item 0, got {tuple(s.shape)}")
        out.append(s)
    return out


def check_items(batch: Sequence[Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Items ``(stim (1, F, T_i), resp (N, R_i, T_i), ...)`` -> (stimuli, responses) as float32
    tensors; every stimulus has the same F and every response the same N. Extra item fields
    are ignored. Raises ValueError naming the first bad item."""
    if len(batch) == 0:
        raise ValueError("expected a non-empty batch of (stim (1, F, T), resp (N, R, T)) items")
    raw_stims, resps = [], []
    for i, item in enumerate(batch):
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise ValueError(f"expected batch item {i} as a pair (stim (1, F, T), resp (N, R, T))")
        raw_stims.append(item[0])
        resps.append(torch.as_tensor(item[1], dtype=torch.float32))
    stims = check_stimuli(raw_stims)
    for i, (s, r) in enumerate(zip(stims, resps)):
        if r.ndim != 3 or r.shape[2] != s.shape[-1]:
            raise ValueError(f"expected response {i} of shape (N, R, T) with T={s.shape[-1]}, got {tuple(r.shape)}")
        if r.shape[0] != resps[0].shape[0]:
            raise ValueError(f"expected response {i} with N={resps[0].shape[0]} neurons like item 0, "
                             f"got {tuple(r.shape)}")
        reject_inf(r, f"response {i}")
    return stims, resps


def pad_to_longest(tensors: Sequence[torch.Tensor], fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack B tensors of the same rank into one ``(B, *max_shape)`` tensor padded with ``fill``.

    Every axis is padded to its largest size (for responses ``(N, R_i, T_i)``: extra repeats
    and bins). Returns ``(padded, lengths (B,) int64)``, lengths = each tensor's last axis.
    """
    if len(tensors) == 0:
        raise ValueError("expected at least one tensor to pad, got none")
    ranks = {t.dim() for t in tensors}
    if len(ranks) != 1:
        raise ValueError(f"expected tensors of one rank, got ranks {sorted(ranks)}")
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    ref = tensors[0]
    out = torch.full((len(tensors), *shape), fill, dtype=ref.dtype, device=ref.device)
    for i, t in enumerate(tensors):
        out[(i, *(slice(0, n) for n in t.shape))] = t
    lengths = torch.tensor([t.shape[-1] for t in tensors], dtype=torch.int64)
    return out, lengths


def collate_responses(batch: Sequence[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a list of dataset items into one batch.

    Args:
        batch: list of B items ``(stim (1, F, T_i), resp (N, R_i, T_i))`` (tensors or arrays).

    Returns:
        ``stim (B, 1, F, Tmax)`` (movies: ``(B, C, H, W, Tmax)``) zero-padded, ``resp (B, N, Rmax, Tmax)`` NaN-padded (extra
        repeats and bins), and ``mask (B, Tmax)`` bool, True on the real bins of each item.
    """
    for i, item in enumerate(batch):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"expected batch item {i} as a pair (stim (1, F, T), resp (N, R, T))")
    stims, resps = check_items(batch)
    stim, lengths = pad_to_longest(stims, 0.0)
    resp, _ = pad_to_longest(resps, float("nan"))
    mask = torch.arange(stim.shape[-1])[None, :] < lengths[:, None]
    return stim, resp, mask
