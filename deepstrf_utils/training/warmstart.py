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

__all__ = ["ridge_strf", "supports_ridge_init", "ridge_init", "RELATIVE_ALPHAS", "RIDGE_FOLDS"]

#: ridge penalties tried, relative to the mean diagonal of the centred X'X (then refined x/÷ 10^0.5)
RELATIVE_ALPHAS = tuple(10.0 ** np.arange(-4, 1.01, 1.0))
#: folds of the training stimuli over which the ridge start chooses its penalty (the validation
#: set then stays an independent bar for early stopping)
RIDGE_FOLDS = 4


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


def _folds(lengths: Sequence[int], n_folds: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Folds for cross-validation on the training stimuli -> ``(fold of each design row (sum T_i,),
    fold of each stimulus (B,) or None)``.

    With at least 2 stimuli every fold holds whole stimuli (stimulus i in fold ``i % k``,
    ``k = min(n_folds, B)``); a single stimulus is cut into ``n_folds`` contiguous blocks of
    bins (stimulus folds None)."""
    lengths = [int(v) for v in lengths]
    if len(lengths) >= 2:
        per_stim = np.arange(len(lengths)) % min(n_folds, len(lengths))
        return np.repeat(per_stim, lengths), per_stim
    n = lengths[0]
    return np.minimum(np.arange(n) * n_folds // max(n, 1), n_folds - 1), None


def _mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-column mean-squared error over the finite bins of ``target`` ``(T, N)`` -> ``(N,)``."""
    ok = torch.isfinite(target)
    err = torch.where(ok, pred - torch.where(ok, target, torch.zeros((), dtype=target.dtype)), 0.0) ** 2
    return err.sum(0) / ok.sum(0).clamp(min=1)


@torch.no_grad()
def ridge_strf(prefilter: nn.Module, n_lags: int, train: tuple, val: tuple | None = None,
               rel_alphas: Sequence[float] = RELATIVE_ALPHAS, refine: bool = True,
               folds: int | None = RIDGE_FOLDS) -> dict:
    """Closed-form ridge STRFs on the channels of ``prefilter``.

    The penalty is chosen per neuron by ``folds``-fold cross-validation on the TRAINING
    stimuli (:func:`_folds`: whole stimuli per fold; one stimulus is cut into blocks), the
    mean-squared error of each held-out fold predicted from the others, so that ``val``
    stays an independent bar for what follows (early stopping). ``folds=None``: chosen by
    the mean-squared error on ``val`` instead (without ``val``: the first alpha of the grid).
    The returned STRF is the solution on all training stimuli at the chosen penalty.

    Args:
        prefilter: module ``(B, 1, F, T) -> (B, C, F, T)`` (used as is, no gradient).
        n_lags: K.
        train, val: ``(stim (B, 1, F, Tmax), target (B, N, Tmax) trial-averaged, NaN = missing
            or padding, lengths (B,))``; ``val`` may be None.
        rel_alphas: penalties relative to the mean diagonal of the centred ``X'X``.
        refine: also try the best alpha x/÷ 10^0.5.
        folds: number of cross-validation folds (at least 2), or None.

    Returns:
        dict with ``weight (N, C, F, K)`` float32, ``bias (N,)`` float32, ``alpha (N,)``
        (absolute, on the scale of ``X'X``), ``cv_mse (N,)`` (cross-validated error at the
        chosen alpha; NaN with ``folds=None``), ``val_mse (N,)`` (the solution's error on
        ``val``; NaN without it), ``train_mse (N,)``, float64 numpy arrays.
    """
    if folds is not None and int(folds) < 2:
        raise ValueError(f"expected folds >= 2 or None, got {folds}")
    stim, target, lengths = train
    lengths = [int(v) for v in lengths]
    x, y = _design(prefilter, stim, target, lengths, n_lags)
    if val is not None:
        xv, yv = _design(prefilter, val[0], val[1], [int(v) for v in val[2]], n_lags)
    n_neurons, d = y.shape[1], x.shape[1]
    weight = torch.zeros(d, n_neurons, dtype=torch.float64)
    bias = torch.zeros(n_neurons, dtype=torch.float64)
    alpha, cv_mse, val_mse, train_mse = (np.full(n_neurons, np.nan) for _ in range(4))
    fold, stim_fold = _folds(lengths, int(folds)) if folds is not None else (None, None)
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
        xn, yn = xg.numpy(), yg.numpy()
        # uncentred moments: X'X (from its Toeplitz structure for complete stimuli: ~5x less work), X'y
        raw_gram = lagged_gram(x.numpy(), lengths, n_lags) if complete else xn.T @ xn
        raw_cross = xn.T @ yn
        gram = raw_gram - len(xg) * np.outer(mx.numpy(), mx.numpy())
        cross = raw_cross - len(xg) * np.outer(mx.numpy(), my.numpy())
        scale = float(gram.diagonal().mean()) or 1.0
        full = {}

        def solve(gram_c, cross_c, a):
            penalised = gram_c.copy()
            penalised[np.diag_indices(d)] += a * scale
            try:  # SciPy's Cholesky: ~1.3x torch's at d = 1,280 on one thread
                return cho_solve(cho_factor(penalised, overwrite_a=True, check_finite=False), cross_c,
                                 check_finite=False)
            except np.linalg.LinAlgError:  # not positive definite at this alpha (rank-deficient design, a = 0)
                return None

        def solve_all(a):
            if a not in full:
                w = solve(gram, cross, a)
                full[a] = None if w is None else torch.from_numpy(w)
            return full[a]

        if fold is not None:
            fg = fold[rows.numpy()]
            parts = []
            for k in np.unique(fg):
                sel = fg == k
                xk, yk = xn[sel], yn[sel]
                if complete and stim_fold is not None:  # whole stimuli: the Toeplitz route again
                    gk = lagged_gram(xk, [n for n, f in zip(lengths, stim_fold) if f == k], n_lags)
                else:
                    gk = xk.T @ xk
                n = len(xg) - len(xk)
                if n < 2:
                    continue
                # the other folds' centred moments, once per fold
                m, mye = (xn.sum(0) - xk.sum(0)) / n, (yn.sum(0) - yk.sum(0)) / n
                gk = raw_gram - gk
                gk -= n * np.outer(m, m)
                parts.append((xk - m, yk - mye, gk, raw_cross - xk.T @ yk - n * np.outer(m, mye)))

            def select(a):
                err = np.zeros(len(cols))
                for xk_c, yk_c, gram_k, cross_k in parts:
                    w = solve(gram_k, cross_k, a)
                    if w is None:
                        return None
                    err += ((xk_c @ w - yk_c) ** 2).sum(0)
                return None, torch.from_numpy(err / len(xg))
        elif val is not None:
            def select(a):
                w = solve_all(a)
                return None if w is None else (None, _mse(xv @ w + (my - mx @ w), yv[:, cols]))
        else:
            def select(a):
                return None if solve_all(a) is None else (None, torch.zeros(len(cols), dtype=torch.float64))

        grid = sorted(float(a) for a in rel_alphas)
        tried = _bracketed_search(select, grid) if (fold is not None or val is not None) else \
            {a: r for a in grid[:1] if (r := select(a)) is not None}
        if not tried:
            continue
        if (fold is not None or val is not None) and refine:
            errs = torch.stack([tried[a][1] for a in tried])  # (A, Ng)
            for b in sorted({list(tried)[i] for i in errs.argmin(0).tolist()}):
                for a in (b / math.sqrt(10.0), b * math.sqrt(10.0)):
                    if a not in tried and (r := select(a)) is not None:
                        tried[a] = r
        keys = list(tried)
        errs = torch.stack([tried[a][1] for a in keys])
        best = errs.argmin(0)  # per neuron
        for j, c in enumerate(cols.tolist()):
            a = keys[int(best[j])]
            w = solve_all(a)
            if w is None:
                continue
            w = w[:, j]
            weight[:, c] = w
            bias[c] = my[j] - mx @ w
            alpha[c] = a * scale
            if fold is not None:
                cv_mse[c] = float(errs[int(best[j]), j])
            train_mse[c] = float(((xg @ w + bias[c] - yg[:, j]) ** 2).mean())
    if val is not None:
        val_mse = _mse(xv @ weight + bias, yv).numpy()
    w = weight.T.reshape(n_neurons, -1, stim.shape[2], n_lags)  # (N, C, F, K)
    return dict(weight=w.float(), bias=bias.float(), alpha=alpha, cv_mse=cv_mse, val_mse=val_mse,
                train_mse=train_mse)


@torch.no_grad()
def ridge_init(model: nn.Module, train: tuple, val: tuple | None = None, mean=None, std=None,
               folds: int | None = RIDGE_FOLDS) -> dict:
    """Set a Linear / LN model's STRF to :func:`ridge_strf` on its current prefilter channels.

    Linear: ``weight, bias`` = the ridge solution, so the model's prediction IS the ridge
    prediction. LN: the output nonlinearity is centred on the target ``mean`` with gain
    ``std`` (:meth:`ParametricNonlinearity.init_output`, linear around 0 with slope ``std``)
    and the STRF is the ridge solution standardised, ``(w / std, (b - mean) / std)``, so that
    the LN model starts at the ridge prediction to first order.

    Args:
        model: a :class:`Linear` or :class:`LinearNonlinear`.
        train, val, folds: as in :func:`ridge_strf` (the penalty by cross-validation on ``train``).
        mean, std: per-neuron target mean / std ``(N,)`` (LN only; computed from ``train`` if None).

    Returns: the :func:`ridge_strf` dict.
    """
    if not supports_ridge_init(model):
        raise ValueError(f"expected a Linear or LinearNonlinear model for the ridge initialisation, "
                         f"got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        sol = ridge_strf(model.prefilter, model.n_lags, train, val, folds=folds)
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


def ridge_penalty(model: nn.Module, sol: dict, target: torch.Tensor, std=None):
    """The ridge start's penalty on the STRF, for the gradient phase that follows it.

    :func:`ridge_strf` minimises ``sum_t (y_t - b - w . x_t)^2 + alpha |w|^2`` per neuron;
    the training loss of :func:`~.fitting.fit` is the mean over neurons of each neuron's mean
    squared error over its ``n`` valid bins. The same penalty on that scale is
    ``alpha |w|^2 / (n N)`` for neuron ``n`` of ``N`` with data, on the STRF of
    :class:`~deepstrf_utils.models.Linear`, and ``alpha std^2 |w|^2 / (n N)`` on the
    standardised STRF of :class:`~deepstrf_utils.models.LinearNonlinear` (:func:`ridge_init`),
    so that the gradient phase keeps the regularisation the closed form chose (by
    cross-validation) instead of dropping it; the bias, the output nonlinearity and the
    prefilter (AdapTrans) are not penalised.

    Args:
        model: the Linear / LN model that :func:`ridge_init` set.
        sol: the dict :func:`ridge_init` returned (its ``alpha (N,)``; NaN: no penalty).
        target: ``(B, N, T)`` trial-averaged training target (NaN = missing).
        std: per-neuron target std ``(N,)`` given to :func:`ridge_init` (LN only).

    Returns:
        ``penalty() -> 0-d tensor``, or None when no neuron has a penalty.
    """
    n = torch.isfinite(target).sum((0, 2)).to(model.weight.dtype)
    has = n > 0
    alpha = torch.as_tensor(np.nan_to_num(np.asarray(sol["alpha"], dtype=np.float64), nan=0.0),
                            dtype=model.weight.dtype, device=model.weight.device)
    coef = torch.where(has, alpha / n.clamp(min=1), torch.zeros_like(alpha)) / has.sum().clamp(min=1)
    if isinstance(model, LinearNonlinear) and std is not None:
        coef = coef * torch.as_tensor(std, dtype=coef.dtype, device=coef.device).clamp_min(1e-6) ** 2
    if not bool((coef > 0).any()):
        return None

    def penalty():
        return (coef * model.weight.square().flatten(1).sum(1)).sum()

    return penalty
