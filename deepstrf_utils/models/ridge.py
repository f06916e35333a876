"""Closed-form ridge-regression STRFs (:func:`fit_ridge_strf`), a :class:`~.linear.Linear` model for all neurons at once."""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from ..metrics import masked_corr, trial_average
from ..shapes import check_int
from .linear import Linear

__all__ = ["fit_ridge_strf", "lagged_gram"]

logger = logging.getLogger(__name__)


def _unpack_data(data, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return (stimuli [(F, T_i)], trial-averaged responses [(N, T_i)], NaN = missing)."""
    if hasattr(data, "stimuli") and hasattr(data, "responses"):
        stimuli, responses = data.stimuli, data.responses
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        stimuli, responses = data
    else:
        raise ValueError(
            f"expected {name} as an object with .stimuli and .responses or a tuple (stimuli, responses), "
            f"got {type(data).__name__}"
        )
    stimuli = [np.asarray(s, dtype=np.float64) for s in stimuli]
    responses = [np.asarray(r, dtype=np.float64) for r in responses]
    if len(stimuli) == 0 or len(stimuli) != len(responses):
        raise ValueError(
            f"expected {name} to hold as many stimuli as responses (at least one), got {len(stimuli)} and {len(responses)}"
        )
    averaged = []
    for i, (s, r) in enumerate(zip(stimuli, responses)):
        if s.ndim != 2 or r.ndim != 3 or r.shape[2] != s.shape[1]:
            raise ValueError(
                f"expected {name} stimulus {i} of shape (F, T_i) and response of shape (N, R_i, T_i) with the "
                f"same T_i, got {s.shape} and {r.shape}"
            )
        if s.shape[0] != stimuli[0].shape[0] or r.shape[0] != responses[0].shape[0]:
            raise ValueError(
                f"expected every {name} stimulus to have F={stimuli[0].shape[0]} bands and every response "
                f"N={responses[0].shape[0]} neurons, got {s.shape} and {r.shape} for item {i}"
            )
        averaged.append(trial_average(r, axis=1))  # all-NaN bins stay NaN
    return stimuli, averaged


def _prefilter_channels(model: Linear, stimuli: list[np.ndarray]) -> list[np.ndarray]:
    """Run the model's (fixed) prefilter on each stimulus: list of ``(C, F, T_i)`` float64."""
    out = []
    with torch.no_grad():
        for s in stimuli:
            x = torch.as_tensor(s, dtype=torch.float32)[None, None]
            out.append(model.prefilter(x)[0].double().numpy())
    return out


def lagged_design(channels: np.ndarray, n_lags: int) -> np.ndarray:
    """Causal lagged design ``(T, C * F * K)``: column (c, f, k) holds x[c, f, t - k] (0 before start)."""
    c, f, t = channels.shape
    flat = channels.reshape(c * f, t)
    padded = np.concatenate([np.zeros((c * f, n_lags - 1)), flat], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_lags, axis=1)  # (CF, T, K): x[t - K + 1 + j]
    lagged = windows[:, :, ::-1]  # [:, t, k] = x[t - k]
    return np.ascontiguousarray(lagged.transpose(1, 0, 2)).reshape(t, c * f * n_lags)


def lagged_gram(x: np.ndarray, lengths, n_lags: int) -> np.ndarray:
    """``x.T @ x`` of stacked causal lagged designs, from their lag-0 columns and last rows.

    ``x``: ``(sum T_i, A * K)``, the row-wise concatenation of :func:`lagged_design` of each
    stimulus (``lengths`` = its ``T_i``, complete: no row dropped), feature ``a * K + l`` =
    channel a at lag l. Exact up to float64 rounding, in one ``(A K) x A`` product instead
    of an ``(A K) x (A K)`` one: with ``z`` the channels of a stimulus of ``n`` bins (0
    before its start), block ``(l, m)`` of ``X'X`` is a cross-correlation at lag
    ``l - m`` less the products the lagged columns lose at the stimulus' end, so

        G[(a, l), (b, 0)] = sum_t z_a(t - l) z_b(t)                  (X' times the lag-0 columns)
        G[(a, l), (b, m)] = G[(a, l - 1), (b, m - 1)] - sum_i z_a(n_i - l) z_b(n_i - m)

    (the last row of each stimulus' design holds ``z(n_i - 1 - l)``).

    Returns: ``(A K, A K)`` float64.
    """
    k = check_int(n_lags, "n_lags", 1)
    lengths = [int(v) for v in lengths]
    if x.ndim != 2 or x.shape[1] % k or sum(lengths) != x.shape[0]:
        raise ValueError(f"expected a stacked lagged design (sum T_i = {sum(lengths)}, A * K) with K = {k}, "
                         f"got shape {x.shape}")
    a = x.shape[1] // k
    gram = np.empty((a, k, a, k))
    gram[:, :, :, 0] = (x.T @ np.ascontiguousarray(x[:, ::k])).reshape(a, k, a)
    gram[:, 0, :, :] = gram[:, :, :, 0].transpose(2, 0, 1)
    ends = np.cumsum(lengths) - 1
    tails = np.zeros((len(lengths), a, k))  # tails[i, a, r] = z_a(n_i - r), r >= 1
    tails[:, :, 1:] = x[ends].reshape(-1, a, k)[:, :, :-1]
    flat = tails.reshape(len(lengths), a * k)
    outer = (flat.T @ flat).reshape(a, k, a, k)
    for l in range(1, k):
        gram[:, l, :, 1:] = gram[:, l - 1, :, :-1] - outer[:, l, :, 1:]
    return gram.reshape(a * k, a * k)


def fit_ridge_strf(
    train, val, n_lags: int = 20, alphas=np.logspace(-3, 6, 19), prefilter=None,
    prefilter_kwargs: dict | None = None, dt_ms: float | None = None,
) -> tuple[Linear, dict[str, Any]]:
    """Closed-form ridge-regression STRFs for all neurons at once.

    train, val: objects with ``.stimuli`` (list of ``(F, T_i)``) and ``.responses`` (list of
    ``(N, R_i, T_i)``, NaN = missing trial / padding), e.g. a ``ResponseDataset``, or tuples
    ``(stimuli, responses)`` of such lists. Responses are trial-averaged (nanmean); bins
    where the averaged target is NaN are dropped (per neuron).

    The causal lagged design (K = ``n_lags``) is built from the prefilter channels
    (``prefilter`` None, ``"adaptrans"``, ``"willmore"`` or a fixed module; AdapTrans gets
    ``learnable=False`` unless given, and ``cf_hz`` / ``dt_ms`` are taken from ``train``
    when it has them). The bias is not regularised (design and targets are centred, which
    is exactly an unpenalised bias column). ``X'X`` and ``X'Y`` are accumulated once, the
    eigendecomposition of the centred ``X'X`` is reused for every alpha, and alpha (on the
    scale of ``X'X``, a sum over training bins) is chosen per neuron as the one whose
    prediction correlates best with the trial-averaged validation response. Neurons with
    different missing-bin patterns are solved in groups sharing one pattern.

    Returns ``(model, info)``: a :class:`Linear` model ``(N, C, F, K)`` with the weights
    loaded (eval mode), and ``info`` with ``alpha`` ``(N,)``, ``cc_val`` ``(N,)``,
    ``alphas`` ``(A,)``, ``cc_val_grid`` ``(A, N)``, ``n_train_bins`` ``(N,)``.
    """
    stim_tr, resp_tr = _unpack_data(train, "train")
    stim_va, resp_va = _unpack_data(val, "val")
    n_bands, n_neurons = stim_tr[0].shape[0], resp_tr[0].shape[0]
    if stim_va[0].shape[0] != n_bands or resp_va[0].shape[0] != n_neurons:
        raise ValueError(
            f"expected val with F={n_bands} bands and N={n_neurons} neurons like train, "
            f"got F={stim_va[0].shape[0]}, N={resp_va[0].shape[0]}"
        )
    n_lags = check_int(n_lags, "n_lags", 1)
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1)
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
        raise ValueError(f"expected a non-empty grid of finite alphas >= 0, got {alphas}")
    if dt_ms is None:
        dt_ms = float(getattr(train, "dt_ms", None) or 5.0)

    if isinstance(prefilter, nn.Module):
        prefilter, kwargs = copy.deepcopy(prefilter), None
    else:
        kwargs = dict(prefilter_kwargs or {})
        if isinstance(prefilter, str):
            cf_hz = getattr(train, "cf_hz", None)
            if cf_hz is not None and "cf_hz" not in kwargs:
                kwargs["cf_hz"] = [float(v) for v in np.asarray(cf_hz)]
            if prefilter.lower() == "adaptrans":
                kwargs.setdefault("learnable", False)
        kwargs = kwargs or None
    model = Linear(n_bands, n_neurons, n_lags, prefilter=prefilter, prefilter_kwargs=kwargs, dt_ms=dt_ms).eval()
    ch_tr = _prefilter_channels(model, stim_tr)
    ch_va = _prefilter_channels(model, stim_va)
    n_features = ch_tr[0].shape[0] * n_bands * n_lags

    y_tr = np.concatenate([r.T for r in resp_tr], axis=0)  # (T_total, N)
    y_va = np.concatenate([r.T for r in resp_va], axis=0)
    valid_tr, valid_va = np.isfinite(y_tr), np.isfinite(y_va)
    y_tr, y_va = np.where(valid_tr, y_tr, 0.0), np.where(valid_va, y_va, 0.0)
    x_va = np.concatenate([lagged_design(c, n_lags) for c in ch_va], axis=0)  # (T_val, D)
    starts = np.cumsum([0] + [c.shape[-1] for c in ch_tr])

    weights = np.zeros((n_features, n_neurons))
    bias = np.zeros(n_neurons)
    cc_grid = np.full((alphas.size, n_neurons), np.nan)
    n_bins = valid_tr.sum(0)
    patterns, group_of = np.unique(valid_tr.T, axis=0, return_inverse=True)
    group_of = np.asarray(group_of).reshape(-1)
    for g, rows_valid in enumerate(patterns):
        cols = np.flatnonzero(group_of == g)
        n = int(rows_valid.sum())
        if n == 0:
            logger.warning("fit_ridge_strf: neurons %s have no valid training bins; STRF left at 0", cols.tolist())
            continue
        if rows_valid.all():  # complete stimuli: X'X from its Toeplitz structure
            x = np.concatenate([lagged_design(c, n_lags) for c in ch_tr])
            xtx, xty, sum_x = lagged_gram(x, np.diff(starts), n_lags), x.T @ y_tr[:, cols], x.sum(0)
        else:
            xtx = np.zeros((n_features, n_features))
            xty = np.zeros((n_features, cols.size))
            sum_x = np.zeros(n_features)
            for i, c in enumerate(ch_tr):
                keep = rows_valid[starts[i]:starts[i + 1]]
                if not keep.any():
                    continue
                x = lagged_design(c, n_lags)[keep]
                y = y_tr[starts[i]:starts[i + 1]][keep][:, cols]
                xtx += x.T @ x
                xty += x.T @ y
                sum_x += x.sum(0)
        mean_x = sum_x / n
        mean_y = y_tr[rows_valid][:, cols].sum(0) / n
        gram = xtx - n * np.outer(mean_x, mean_x)
        cross = xty - n * np.outer(mean_x, mean_y)
        evals, evecs = np.linalg.eigh(gram)
        evals = np.clip(evals, 0.0, None)
        proj = evecs.T @ cross  # (D, Ng)
        z_va = (x_va - mean_x) @ evecs  # (T_val, D)
        for a, alpha in enumerate(alphas):
            denom = evals + alpha
            scale = np.divide(1.0, denom, out=np.zeros_like(denom), where=denom > 0)
            pred = z_va @ (proj * scale[:, None])
            cc_grid[a, cols] = masked_corr(pred.T, y_va[:, cols].T, valid_va[:, cols].T)
        best = np.argmax(np.where(np.isnan(cc_grid[:, cols]), -np.inf, cc_grid[:, cols]), axis=0)
        denom = evals[:, None] + alphas[best][None, :]
        scale = np.divide(1.0, denom, out=np.zeros_like(denom), where=denom > 0)
        w = evecs @ (proj * scale)
        weights[:, cols] = w
        bias[cols] = mean_y - mean_x @ w

    all_nan = np.all(np.isnan(cc_grid), axis=0)
    best = np.argmax(np.where(np.isnan(cc_grid), -np.inf, cc_grid), axis=0)
    if all_nan.any():
        logger.warning(
            "fit_ridge_strf: no validation correlation for neurons %s (constant or missing response)",
            np.flatnonzero(all_nan).tolist(),
        )
    alpha = np.where(all_nan, np.nan, alphas[best])
    cc_val = np.where(all_nan, np.nan, cc_grid[best, np.arange(n_neurons)])
    c = model.in_channels
    model.load_strf(weights.T.reshape(n_neurons, c, n_bands, n_lags), bias)
    info = dict(alpha=alpha, cc_val=cc_val, alphas=alphas, cc_val_grid=cc_grid, n_train_bins=n_bins)
    return model, info
