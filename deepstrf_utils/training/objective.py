"""The full-batch objective of the L-BFGS path of :func:`~.fitting.fit`: :func:`full_batch_objective`.

L-BFGS minimises the loss over ALL training stimuli (mean over the neurons that have data),
optionally plus an L2 penalty on the weights. The stimuli go through the model in chunks of
:data:`~.options.LBFGS_CHUNK` stimuli, which bounds memory. With one chunk the loss is the
loss function on that batch. With several, a named loss is assembled from per-neuron
**sufficient statistics** summed over the chunks (:data:`LOSS_STATISTICS`: sums of squared
errors, of squared targets, of cross-products...), so that value and gradient equal those of
the loss on all stimuli at once, for every loss whose value is not a mean over bins
("nmse", "correlation") as for those that are ("mse", "poisson"):

- losses linear in their statistics (mse, poisson, nmse): one pass, each chunk's statistics
  weighted by the fixed derivative of the loss with respect to them;
- correlation: a first pass without gradient gives the statistics over all stimuli (the
  BatchNorm running statistics it would move are put back), then each chunk back-propagates
  its statistics weighted by the derivative of the loss at those totals: the chain rule, exact.

A callable loss cannot be decomposed: over several chunks it is the mean of the chunk
losses weighted by each chunk's share of a neuron's valid bins (exact for means over bins;
a warning says so).

Shapes: B stimuli, N neurons, T bins, K statistics per neuron.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .. import metrics
from .optim import no_decay_names
from .options import LBFGS_CHUNK
from .packing import accepts_lengths

logger = logging.getLogger(__name__)

__all__ = ["LossStatistics", "LOSS_STATISTICS", "full_batch_objective", "l2_penalty"]


@dataclass(frozen=True)
class LossStatistics:
    """A loss written as a function of per-neuron sums over valid bins.

    ``pred_stats(p, y, valid)``: p (B, N, T) prediction, y (B, N, T) target with 0 at invalid
    bins, valid (B, N, T) bool -> (K, N) sums (differentiable in p). ``combine(S, n, sy, syy)``:
    the (K, N) sums over all stimuli, the valid bin count n (N,), the target's sum sy and sum of
    squares syy (N,) -> per-neuron loss (N,), the values of the loss function with
    ``reduction="none"``. ``linear``: combine is linear in S (its derivative does not depend on S).
    """

    pred_stats: Callable
    combine: Callable
    linear: bool


def _squared_error(p, y, valid):
    return torch.where(valid, p - y, 0.0).square().sum((0, 2))[None]


def _poisson_terms(p, y, valid, eps=1e-8):
    rate = torch.where(valid, p, torch.ones((), dtype=p.dtype, device=p.device)).clamp_min(eps)
    return torch.where(valid, rate - y * torch.log(rate), 0.0).sum((0, 2))[None]


def _moments(p, y, valid):
    p = torch.where(valid, p, 0.0)
    return torch.stack([p.sum((0, 2)), p.square().sum((0, 2)), (p * y).sum((0, 2))])


def _per_bin_mean(S, n, sy, syy):
    return S[0] / n.clamp(min=1)


def _nmse(S, n, sy, syy):
    has_scale = syy > 0
    return torch.where(has_scale, S[0] / torch.where(has_scale, syy, torch.ones_like(syy)), torch.zeros_like(syy))


def _one_minus_correlation(S, n, sy, syy, eps=1e-8):
    n1 = n.clamp(min=1)
    mp, my = S[0] / n1, sy / n1
    cov = S[2] / n1 - mp * my
    var_p = S[1] / n1 - mp * mp
    var_y = syy / n1 - my * my
    return 1.0 - cov / torch.sqrt((var_p + eps) * (var_y + eps))


#: the named losses of :func:`deepstrf_utils.metrics.get_loss` as sums over bins (same values)
LOSS_STATISTICS: dict[str, LossStatistics] = {
    "mse": LossStatistics(_squared_error, _per_bin_mean, True),
    "poisson": LossStatistics(_poisson_terms, _per_bin_mean, True),
    "nmse": LossStatistics(_squared_error, _nmse, True),
    "correlation": LossStatistics(_moments, _one_minus_correlation, False),
}


def _statistics_of(loss) -> LossStatistics | None:
    """The :class:`LossStatistics` of a loss name or of a built-in loss function; None for other callables."""
    if isinstance(loss, str):
        return LOSS_STATISTICS.get(loss.lower())
    for name, fn in metrics.LOSSES.items():
        if loss is fn:
            return LOSS_STATISTICS.get(name)
    return None


def l2_penalty(model: nn.Module, weight_decay: float):
    """``weight_decay / 2 * sum ||w||^2`` over the trainable weights (the parameters of
    :func:`~.optim.no_decay_names` -- time constants, gains -- are exempt, as from AdamW's decay);
    None when ``weight_decay`` is 0."""
    if not weight_decay:
        return None
    exempt = no_decay_names(model)
    weights = [p for n, p in model.named_parameters() if p.requires_grad and n not in exempt]

    def penalty():
        return 0.5 * float(weight_decay) * sum(p.square().sum() for p in weights)

    return penalty


def full_batch_objective(model: nn.Module, tr, loss, loss_fn: Callable, params: list, last: dict,
                         chunk: int = LBFGS_CHUNK, weight_decay: float = 0.0,
                         penalty: Callable | None = None) -> Callable:
    """L-BFGS closure: the loss over every stimulus of the packed training set ``tr``.

    Args:
        loss: the loss as given to ``fit`` (a name or a callable): names select the exact
            chunked form (module docstring). ``loss_fn``: its training form,
            ``loss_fn(pred (B, N, T), target (B, N, 1, T), reduction="none") -> (N,)``.
        params: the parameters whose gradients the closure sets.
        last: receives ``value`` (the data loss: mean over neurons with data), ``per``
            (per-neuron losses, for NaN reports) and ``valid`` (N,) after each call.
        chunk: stimuli per forward pass.
        weight_decay: > 0 adds :func:`l2_penalty` to the objective (not to ``last["value"]``).
        penalty: ``penalty() -> 0-d tensor`` also added to the objective (e.g. the ridge start's
            penalty on the STRF, :func:`~.warmstart.ridge_penalty`); None: none.

    Returns:
        closure() -> the objective as a 0-d tensor (``inf`` when not finite), gradients set.
    """
    idx = list(range(tr.n_stimuli))
    chunks = [idx[i:i + chunk] for i in range(0, len(idx), chunk)]
    pass_lengths = accepts_lengths(model)  # padded chunks: BatchNorm statistics over valid bins
    counts = [torch.isfinite(tr.batch(c)[1]).sum((0, 2)).to(tr.target.dtype) for c in chunks]
    total = torch.stack(counts).sum(0)
    valid = total > 0
    n_valid = valid.sum().clamp(min=1)
    stats = _statistics_of(loss) if len(chunks) > 1 else None
    if len(chunks) > 1 and stats is None:
        logger.warning("full-batch objective of a custom loss over %d chunks of %d stimuli: each chunk's loss is "
                       "weighted by its share of the valid bins, exact only for a mean over bins", len(chunks), chunk)
    penalties = [p for p in (l2_penalty(model, weight_decay), penalty) if p is not None]

    def forward(c):
        x, y = tr.batch(c)
        lengths = tr.batch_lengths(c) if pass_lengths else None
        return (model(x, lengths=lengths) if lengths is not None else model(x)), y

    def zero_grads():
        for p in params:
            p.grad = None

    if stats is None:
        weights = [torch.where(valid, c / total.clamp(min=1), torch.zeros_like(c)) for c in counts]

        def data_loss():
            value, per_all = 0.0, torch.zeros_like(total)
            for c, w in zip(chunks, weights):
                pred, y = forward(c)
                per = loss_fn(pred, y.unsqueeze(2), reduction="none")
                per = torch.where(w > 0, per, torch.zeros((), dtype=per.dtype, device=per.device))
                chunk_loss = (per * w).sum() / n_valid
                chunk_loss.backward()
                value += float(chunk_loss.detach())
                per_all = per_all + per.detach() * w
            return value, per_all
    else:
        data_loss = _statistics_loss(model, tr, chunks, forward, stats, valid, n_valid)

    def closure():
        zero_grads()
        value, per = data_loss()
        objective = value
        for term in penalties:
            pen = term()
            pen.backward()
            objective += float(pen.detach())
        last["value"], last["per"], last["valid"] = value, per, valid
        return torch.tensor(objective if math.isfinite(objective) else float("inf"))

    return closure


def _statistics_loss(model, tr, chunks, forward, stats: LossStatistics, valid, n_valid):
    """data_loss() for a named loss over several chunks: exact value and gradient (module docstring)."""
    dt = torch.float64
    n = torch.zeros(tr.n_neurons, dtype=dt, device=tr.target.device)
    sy, syy = torch.zeros_like(n), torch.zeros_like(n)
    for c in chunks:
        y = tr.batch(c)[1]
        ok = torch.isfinite(y)
        y0 = torch.where(ok, y, 0.0).to(dt)
        n, sy, syy = n + ok.sum((0, 2)), sy + y0.sum((0, 2)), syy + y0.square().sum((0, 2))
        if stats is LOSS_STATISTICS["poisson"] and bool((y0 < 0).any()):
            raise ValueError("poisson_loss expects non-negative responses (counts or rates); got negative values")
    valid_dt = valid.to(dt)

    def objective(S):
        per = stats.combine(S, n, sy, syy)
        per = torch.where(valid, per, torch.zeros_like(per))
        return (per * valid_dt).sum() / n_valid.to(dt), per

    def chunk_stats(c):
        pred, y = forward(c)
        ok = torch.isfinite(y)
        return stats.pred_stats(pred.to(dt), torch.where(ok, y, 0.0).to(dt), ok)

    def weights_at(S):
        S = S.detach().requires_grad_(True)
        value, per = objective(S)
        (grad,) = torch.autograd.grad(value, S)
        return grad, float(value.detach()), per.detach()

    # d loss / d S of a linear loss does not depend on S: its weights, once
    W_linear = weights_at(_zeros_like_stats(stats, n))[0] if stats.linear else None

    def data_loss():
        if stats.linear:  # one pass
            W, S = W_linear, None
            for c in chunks:
                s = chunk_stats(c)
                (W * s).sum().backward()
                S = s.detach() if S is None else S + s.detach()
            _, value, per = weights_at(S)
            return value, per.to(tr.target.dtype)
        # non-linear: the totals first (no gradient; BatchNorm running statistics put back)
        saved = [b.detach().clone() for b in model.buffers()]
        with torch.no_grad():
            S = sum(chunk_stats(c) for c in chunks)
        with torch.no_grad():
            for b, v in zip(model.buffers(), saved):
                b.copy_(v)
        W, value, per = weights_at(S)
        for c in chunks:
            (W * chunk_stats(c)).sum().backward()
        return value, per.to(tr.target.dtype)

    return data_loss


def _zeros_like_stats(stats: LossStatistics, n):
    """(K, N) zeros for ``stats`` (K found from a one-bin probe)."""
    probe = torch.zeros(1, n.shape[0], 1, dtype=n.dtype, device=n.device)
    k = stats.pred_stats(probe, probe, torch.ones_like(probe, dtype=torch.bool)).shape[0]
    return torch.zeros(k, n.shape[0], dtype=n.dtype, device=n.device)
