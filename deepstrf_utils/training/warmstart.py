"""Closed-form starting points for gradient fits (issue 11): the ridge STRF of a Linear / LN model.

NEMS initialises its models stage by stage; here the STRF of a :class:`~deepstrf_utils.models.Linear`
or :class:`~deepstrf_utils.models.LinearNonlinear` model is set, before any gradient step,
to the closed-form ridge-regression solution on the model's OWN prefilter channels as they
are at that moment (AdapTrans at its initialisation), so that gradient training (which then
also moves AdapTrans) starts where the closed form ends.

:func:`ridge_strf` solves ``min_w sum_t (y_t - b - w . x_t)^2 + alpha |w|^2`` (causal lagged
design, unpenalised bias, all neurons at once when they share one missing-bin pattern, one
neuron at a time otherwise) by Cholesky factorisation for a grid of ``alpha`` (relative
to the mean diagonal of the centred ``X'X``; searched from its middle outwards until each
neuron's best is bracketed), refined by half a decade around the best, the best chosen per
neuron by validation mean-squared error (the loss that early stopping then uses). ``X'X``
of complete stimuli comes from its Toeplitz structure (:func:`~deepstrf_utils.models.ridge.lagged_gram`). The same solution as :func:`deepstrf_utils.models.fit_ridge_strf` for one alpha
(which uses an eigendecomposition and ranks alphas by validation correlation; it is ~2x
slower for 2 x 32 x 20 features).

Shapes: B stimuli, C prefilter channels, F bands, T bins, K lags, N neurons.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from scipy.linalg import cho_factor, cho_solve
from torch import nn

from ..models import Linear, LinearNonlinear
from ..models.ridge import lagged_design, lagged_gram

__all__ = ["ridge_strf", "supports_ridge_init", "ridge_init", "RELATIVE_ALPHAS"]

#: ridge penalties tried, relative to the mean diagonal of the centred X'X (then refined x/÷ 10^0.5)
RELATIVE_ALPHAS = tuple(10.0 ** np.arange(-4, 1.01, 1.0))


def supports_ridge_init(model: nn.Module) -> bool:
    """True for models whose STRF stage :func:`ridge_init` can set (Linear and LinearNonlinear)."""
    return isinstance(model, Linear)


def _design(prefilter: nn.Module, stim: torch.Tensor, target: torch.Tensor, lengths: Sequence[int], n_lags: int):
    """Stacked causal lagged design (sum T_i, C * F * K) and target (sum T_i, N), float64 (NaN kept)."""
    z = prefilter(stim).double().cpu().numpy()
    x = np.concatenate([lagged_design(z[i, :, :, :n], n_lags) for i, n in enumerate(lengths)])
    y = torch.cat([target[i, :, :n].double().T.cpu() for i, n in enumerate(lengths)])
    return torch.from_numpy(x), y


def _bracketed_search(solve, grid: list) -> dict:
    """Validation errors on a sorted alpha grid, from its middle outwards.

    Solves at the three middle values, then adds the next value below (above) while some
    neuron's best alpha so far is the smallest (largest) one tried. When each neuron's
    validation error is unimodal in log alpha (the usual ridge curve) this finds the same
    best grid value as solving at every value, with fewer factorisations (3-4 instead of 6
    on the data of ``benchmarks/bench_fit.py``). ``solve(a)`` returns ``(w, err (Ng,))`` or
    None (not positive definite); returns ``{alpha: (w, err)}``.
    """
    mid = len(grid) // 2
    lo, hi = max(0, mid - 1), min(len(grid) - 1, mid + 1)
    tried, done = {}, set()
    while True:
        for i in range(lo, hi + 1):
            if i not in done:
                done.add(i)
                if (r := solve(grid[i])) is not None:
                    tried[grid[i]] = r
        if not tried:
            if hi == len(grid) - 1:
                return tried
            hi += 1
            continue
        keys = sorted(tried)
        best = torch.stack([tried[a][1] for a in keys]).argmin(0)
        grow = False
        if lo > 0 and bool((best == 0).any()):
            lo, grow = lo - 1, True
        if hi < len(grid) - 1 and bool((best == len(keys) - 1).any()):
            hi, grow = hi + 1, True
        if not grow:
            return tried


@torch.no_grad()
def ridge_strf(prefilter: nn.Module, n_lags: int, train: tuple, val: tuple | None = None,
               rel_alphas: Sequence[float] = RELATIVE_ALPHAS, refine: bool = True) -> dict:
    """Closed-form ridge STRFs on the channels of ``prefilter``.

    Args:
        prefilter: module ``(B, 1, F, T) -> (B, C, F, T)`` (used as is, no gradient).
        n_lags: K.
        train, val: ``(stim (B, 1, F, Tmax), target (B, N, Tmax) trial-averaged, NaN = missing
            or padding, lengths (B,))``. Without ``val`` the first alpha of the grid is used.
        rel_alphas: penalties relative to the mean diagonal of the centred ``X'X``.
        refine: also try the best alpha x/÷ 10^0.5.

    Returns:
        dict with ``weight (N, C, F, K)`` float32, ``bias (N,)`` float32, ``alpha (N,)``
        (absolute, on the scale of ``X'X``), ``val_mse (N,)``, ``train_mse (N,)`` (the
        ridge solution's training mean-squared error), float64 numpy arrays.
    """
    stim, target, lengths = train
    x, y = _design(prefilter, stim, target, [int(v) for v in lengths], n_lags)
    if val is not None:
        xv, yv = _design(prefilter, val[0], val[1], [int(v) for v in val[2]], n_lags)
    n_neurons, d = y.shape[1], x.shape[1]
    weight = torch.zeros(d, n_neurons, dtype=torch.float64)
    bias = torch.zeros(n_neurons, dtype=torch.float64)
    alpha = np.full(n_neurons, np.nan)
    val_mse = np.full(n_neurons, np.nan)
    train_mse = np.full(n_neurons, np.nan)
    ok = torch.isfinite(y)
    patterns, group = torch.unique(ok.T, dim=0, return_inverse=True)
    for g in range(patterns.shape[0]):
        cols = torch.nonzero(group == g).flatten()
        rows = patterns[g]
        if int(rows.sum()) < 2:
            continue
        complete = bool(rows.all())
        xg, yg = (x if complete else x[rows]), y[rows][:, cols]
        mx, my = xg.mean(0), yg.mean(0)
        if complete:  # complete stimuli: X'X from its Toeplitz structure (~5x less work)
            gram = lagged_gram(x.numpy(), lengths, n_lags) - len(xg) * np.outer(mx.numpy(), mx.numpy())
            cross = (xg.numpy().T @ (yg - my).numpy())
        else:
            xc = (xg - mx).numpy()
            gram = xc.T @ xc  # numpy's float64 GEMM: ~2x torch's on 1 CPU thread
            cross = xc.T @ (yg - my).numpy()
        scale = float(gram.diagonal().mean()) or 1.0
        if val is not None:
            okv = torch.isfinite(yv[:, cols])
            yv0 = torch.where(okv, yv[:, cols], torch.zeros((), dtype=yv.dtype))
            xvc = xv - mx

        def solve(a):
            penalised = gram.copy()
            penalised[np.diag_indices(d)] += a * scale
            try:  # SciPy's Cholesky: ~1.3x torch's at d = 1,280 on one thread
                w = torch.from_numpy(cho_solve(cho_factor(penalised, overwrite_a=True, check_finite=False), cross,
                                               check_finite=False))
            except np.linalg.LinAlgError:  # not positive definite at this alpha (rank-deficient design, a = 0)
                return None
            if val is None:
                return w, torch.zeros(len(cols), dtype=torch.float64)
            err = torch.where(okv, (xvc @ w + my - yv0) ** 2, torch.zeros((), dtype=torch.float64))
            return w, err.sum(0) / okv.sum(0).clamp(min=1)

        if val is None:
            tried = {a: r for a in [float(rel_alphas[0])] if (r := solve(a)) is not None}
        else:
            tried = _bracketed_search(solve, sorted(float(a) for a in rel_alphas))
        if not tried:
            continue
        if val is not None and refine:
            errs = torch.stack([tried[a][1] for a in tried])  # (A, Ng)
            for b in sorted({list(tried)[i] for i in errs.argmin(0).tolist()}):
                for a in (b / math.sqrt(10.0), b * math.sqrt(10.0)):
                    if a not in tried and (r := solve(a)) is not None:
                        tried[a] = r
        keys = list(tried)
        errs = torch.stack([tried[a][1] for a in keys])
        best = errs.argmin(0)  # per neuron
        for j, c in enumerate(cols.tolist()):
            a = keys[int(best[j])]
            w = tried[a][0][:, j]
            weight[:, c] = w
            bias[c] = my[j] - mx @ w
            alpha[c] = a * scale
            val_mse[c] = float(errs[int(best[j]), j]) if val is not None else np.nan
            train_mse[c] = float(((xg @ w + bias[c] - yg[:, j]) ** 2).mean())
    w = weight.T.reshape(n_neurons, -1, stim.shape[2], n_lags)  # (N, C, F, K)
    return dict(weight=w.float(), bias=bias.float(), alpha=alpha, val_mse=val_mse, train_mse=train_mse)


@torch.no_grad()
def ridge_init(model: nn.Module, train: tuple, val: tuple | None = None, mean=None, std=None) -> dict:
    """Set a Linear / LN model's STRF to :func:`ridge_strf` on its current prefilter channels.

    Linear: ``weight, bias`` = the ridge solution, so the model's prediction IS the ridge
    prediction. LN: the output nonlinearity is centred on the target ``mean`` with gain
    ``std`` (:meth:`ParametricNonlinearity.init_output`, linear around 0 with slope ``std``)
    and the STRF is the ridge solution standardised, ``(w / std, (b - mean) / std)``, so that
    the LN model starts at the ridge prediction to first order.

    Args:
        model: a :class:`Linear` or :class:`LinearNonlinear`.
        train, val: as in :func:`ridge_strf`.
        mean, std: per-neuron target mean / std ``(N,)`` (LN only; computed from ``train`` if None).

    Returns: the :func:`ridge_strf` dict.
    """
    if not supports_ridge_init(model):
        raise ValueError(f"expected a Linear or LinearNonlinear model for the ridge initialisation, "
                         f"got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        sol = ridge_strf(model.prefilter, model.n_lags, train, val)
    finally:
        model.train(was_training)
    w, b = sol["weight"].to(model.weight), sol["bias"].to(model.bias)
    if isinstance(model, LinearNonlinear):
        if mean is None or std is None:
            y = train[1].transpose(0, 1).reshape(train[1].shape[1], -1)
            okm = torch.isfinite(y)
            y0 = torch.where(okm, y, torch.zeros((), dtype=y.dtype))
            n = okm.sum(1).clamp(min=1)
            mean = y0.sum(1) / n
            std = (torch.where(okm, (y0 - mean[:, None]) ** 2, torch.zeros((), dtype=y.dtype)).sum(1) / n).sqrt()
        mean = torch.as_tensor(mean, dtype=w.dtype)
        std = torch.as_tensor(std, dtype=w.dtype).clamp_min(1e-6)
        model.output_nonlinearity.init_output(mean, std)
        model.weight.copy_(w / std[:, None, None, None])
        model.bias.copy_((b - mean) / std)
    else:
        model.weight.copy_(w)
        model.bias.copy_(b)
    return sol
