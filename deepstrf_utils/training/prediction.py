"""Predictions and scores: :func:`predict`, :func:`predict_units`, :func:`evaluate`
(per-neuron CCraw / CCnorm / CCmax) and :func:`average_over_seeds`.

Shapes: B stimuli, F bands, T time bins, N neurons, R repeats, U single-unit models.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import metrics
from ..datasets.collate import check_stimuli, pad_to_longest
from ..models import model_device
from ..shapes import check_int
from .arguments import check_dataset, check_predictions
from .device import resolve_device
from .packing import dataset_name, dataset_neuron_ids
from .stimulus_format import check_stimulus_format as check_format

__all__ = ["predict", "predict_units", "evaluate", "average_over_seeds"]


def _stimulus_batches(dataset, batch_size: int):
    """Stimuli of ``dataset`` zero-padded into batches of similar length ->
    list of (x (b, 1, F, L) or movies (b, C, H, W, L) float32, stimulus indices, lengths)."""
    check_dataset(dataset)
    batch_size = check_int(batch_size, "batch_size", 1)
    n = len(dataset)
    stims = check_stimuli([dataset[i][0] for i in range(n)])
    order = sorted(range(n), key=lambda i: stims[i].shape[-1])
    out = []
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        x, lengths = pad_to_longest([stims[i] for i in idx], 0.0)
        out.append((x, idx, lengths.tolist()))
    return out


@torch.no_grad()
def _predict_batches(model: nn.Module, batches, n: int, device) -> list[np.ndarray]:
    dev = model_device(model) if device is None else resolve_device(device)
    model.to(dev)
    dtype = next((p.dtype for p in model.parameters()), torch.float32)  # the stimuli in the model's dtype
    was_training = model.training
    model.eval()
    out: list = [None] * n
    try:
        for x, idx, lens in batches:
            pred = model(x.to(dev, dtype)).detach().float().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = pred[j, :, : lens[j]].copy()
    finally:
        model.train(was_training)
    return out


def predict(model: nn.Module, dataset, device: str | torch.device | None = None,
            batch_size: int = 16, check_stimulus_format: bool = True) -> list[np.ndarray]:
    """Model predictions for every stimulus of ``dataset``: a list of (N, T_i) float32 arrays.

    Runs in eval mode (the model's train/eval mode is restored afterwards); stimuli of
    similar length are batched together, in the dtype of the model's parameters. ``device=None``
    uses the model's device; any other value moves the model there. ``check_stimulus_format``:
    ValueError when the model's ``dt_ms`` or band centres differ from the dataset's
    (:mod:`.stimulus_format`).
    """
    if check_stimulus_format:
        check_format(model, dataset)
    return _predict_batches(model, _stimulus_batches(dataset, batch_size), len(dataset), device)


def predict_units(models: Sequence[nn.Module], dataset, device: str | torch.device | None = None,
                  batch_size: int = 16, check_stimulus_format: bool = True) -> list[np.ndarray]:
    """Predictions of U single-unit models (each ``(B, 1, F, T) -> (B, 1, T)``, e.g. from
    :func:`fit_single_units`) stacked per stimulus: a list of (U, T_i) float32 arrays, row u
    from ``models[u]``. The stimuli are collated once for all models; pass the result to
    ``evaluate(None, dataset, predictions=...)`` to score all units in one metrics call.
    ``check_stimulus_format``: as in :func:`predict`, for every model.
    """
    if len(models) == 0:
        raise ValueError("expected at least one model, got an empty list")
    if check_stimulus_format:
        for m in models:
            check_format(m, dataset)
    batches = _stimulus_batches(dataset, batch_size)
    n = len(dataset)
    per_model = []
    for u, m in enumerate(models):
        preds = _predict_batches(m, batches, n, device)
        if n and preds[0].shape[0] != 1:
            raise ValueError(f"expected single-unit models with output (B, 1, T); model {u} returns "
                             f"{preds[0].shape[0]} outputs")
        per_model.append(preds)
    return [np.concatenate([p[i] for p in per_model], axis=0) for i in range(n)]


def _concat_responses(dataset) -> np.ndarray:
    """Responses of every stimulus concatenated along time -> (N, Rmax, sum T_i), NaN-padded."""
    resps = [np.asarray(dataset[i][1], dtype=np.float32) for i in range(len(dataset))]
    rmax = max(r.shape[1] for r in resps)
    n = resps[0].shape[0]
    total = sum(r.shape[2] for r in resps)
    out = np.full((n, rmax, total), np.nan, dtype=np.float32)
    t = 0
    for r in resps:
        out[:, : r.shape[1], t: t + r.shape[2]] = r
        t += r.shape[2]
    return out


def evaluate(model: nn.Module | None, dataset, device: str | torch.device | None = None,
             predictions: list[np.ndarray] | None = None, check_stimulus_format: bool = True) -> pd.DataFrame:
    """Per-neuron accuracy on the concatenated stimuli of ``dataset`` (usually the test set).

    Returns a DataFrame with one row per neuron: neuron (id), cc_raw, cc_norm, cc_max
    (NaN where undefined, e.g. cc_norm/cc_max with a single repeat). ``predictions``
    (list of (N, T_i), e.g. from :func:`predict_units`) skips the forward pass; ``model``
    may then be None. ``check_stimulus_format``: as in :func:`predict`.
    """
    check_dataset(dataset)
    if predictions is None:
        if model is None:
            raise ValueError("expected a model or predictions (a list of (N, T_i) arrays), got neither")
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected model to be a torch.nn.Module or None, got {model!r}"[:300])
        preds = predict(model, dataset, device, check_stimulus_format=check_stimulus_format)
    else:
        preds = check_predictions(predictions, dataset)
    pred = np.concatenate(preds, axis=1)
    resp = _concat_responses(dataset)
    if pred.shape[0] != resp.shape[0]:
        raise ValueError(f"the model outputs N={pred.shape[0]} neurons but dataset "
                         f"'{dataset_name(dataset)}' has N={resp.shape[0]}")
    return pd.DataFrame({
        "neuron": dataset_neuron_ids(dataset),
        "cc_raw": np.asarray(metrics.cc_raw(pred, resp, reduction="none"), dtype=float),
        "cc_norm": np.asarray(metrics.cc_norm(pred, resp, reduction="none"), dtype=float),
        "cc_max": np.asarray(metrics.cc_max(resp, reduction="none"), dtype=float),
    })


def average_over_seeds(results: pd.DataFrame, keys: Sequence[str] = ("config_id",),
                       values: Sequence[str] = ("cc_raw", "cc_norm", "cc_max")) -> pd.DataFrame:
    """Per-neuron means over seeds: one row per (``keys``..., neuron) with the NaN-aware
    mean of ``values`` and ``n_seeds``, the number of seeds in which the neuron was scored
    (some value finite; a seed whose split excluded the neuron, or left its score NaN, is
    not counted; 0 when never scored). Average these over neurons for a summary."""
    missing = [c for c in (*keys, "neuron", "seed", *values) if c not in results.columns]
    if missing:
        raise ValueError(f"expected results columns {missing} (one row per neuron x seed)")
    scored = np.isfinite(results[list(values)].to_numpy(dtype=float)).any(axis=1)
    seeds = results["seed"].where(scored)
    g = results.assign(_scored_seed=seeds).groupby([*keys, "neuron"], sort=False, dropna=False)
    out = g[list(values)].mean()
    out["n_seeds"] = g["_scored_seed"].nunique()
    return out.reset_index()
