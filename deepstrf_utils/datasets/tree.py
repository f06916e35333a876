"""Nested per-neuron / per-stimulus values of a dataset (ground truth, meta): copies and views.

A ground-truth dict holds arrays whose first axis is the neuron (sliced by ``select``),
lists with one entry per stimulus (indexed by ``subset``), and a ``"shared"`` entry kept
whole.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["copy_tree", "select_ground_truth", "subset_ground_truth"]


def _is_per_stimulus(value: Any, n_stimuli: int) -> bool:
    return isinstance(value, list) and len(value) == n_stimuli


def _slice_neurons(value: Any, idx: np.ndarray, n: int) -> Any:
    """Slice the leading neuron axis of arrays whose first axis has length ``n``."""
    if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
        return value[idx].copy()
    if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == n:
        return value[torch.as_tensor(idx)].clone()
    if isinstance(value, list):
        return [_slice_neurons(v, idx, n) for v in value]
    if isinstance(value, dict):
        return {k: _slice_neurons(v, idx, n) for k, v in value.items()}
    return value


def copy_tree(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [copy_tree(v) for v in value]
    if isinstance(value, dict):
        return {k: copy_tree(v) for k, v in value.items()}
    return value


def select_ground_truth(gt: dict | None, idx: np.ndarray, n_neurons: int) -> dict | None:
    """Per-neuron view of a ground-truth dict; entries under ``"shared"`` are kept whole."""
    if gt is None:
        return None
    out = {}
    for key, value in gt.items():
        out[key] = copy_tree(value) if key == "shared" else _slice_neurons(value, idx, n_neurons)
    return out


def subset_ground_truth(gt: dict | None, idx: Sequence[int], n_stimuli: int) -> dict | None:
    """Per-stimulus view: lists of length ``n_stimuli`` are indexed by ``idx``."""
    if gt is None:
        return None
    out = {}
    for key, value in gt.items():
        if key != "shared" and _is_per_stimulus(value, n_stimuli):
            out[key] = [copy_tree(value[i]) for i in idx]
        else:
            out[key] = copy_tree(value)
    return out


# ----------------------------------------------------------------------------- dataset
