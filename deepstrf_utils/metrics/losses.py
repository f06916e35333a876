"""Training losses (differentiable, NaN-masked): mse, nmse, poisson, correlation, and get_loss."""

from __future__ import annotations

from typing import Callable

import torch

from .inputs import as_tensor, check_reduction

_LOSS_REDUCTIONS = ("mean", "sum", "none")


def _loss_inputs(pred, resp):
    """-> pred (B, N, T), target (B, N, T) with 0 at invalid bins, valid (B, N, T) bool."""
    p, _ = as_tensor(pred, "pred") if not isinstance(pred, torch.Tensor) else (pred, False)
    if not isinstance(resp, torch.Tensor):
        resp, _ = as_tensor(resp, "resp")
    if not p.is_floating_point():
        raise ValueError(f"expected a floating-point pred, got dtype {p.dtype}")
    if p.ndim == 2:
        p, resp = p.unsqueeze(0), resp.unsqueeze(0)
    if p.ndim != 3:
        raise ValueError(f"expected pred of shape (B, N, T) or (N, T), got {tuple(p.shape)}")
    B, N, T = p.shape
    resp = resp.detach().to(device=p.device, dtype=p.dtype)
    if resp.ndim == 4 and resp.shape[:2] == (B, N) and resp.shape[3] == T and resp.shape[2] > 0:
        ok = ~torch.isnan(resp)
        cnt = ok.sum(2)
        target = torch.where(ok, resp, 0.0).sum(2) / cnt.clamp_min(1).to(p.dtype)
        valid = cnt > 0
    elif resp.ndim == 3 and tuple(resp.shape) == (B, N, T):
        valid = ~torch.isnan(resp)
        target = torch.where(valid, resp, 0.0)
    else:
        raise ValueError(
            f"expected resp of shape (B, N, R, T) = ({B}, {N}, R, {T}) or an averaged target "
            f"(B, N, T) = {(B, N, T)} to match pred {tuple(p.shape)}, got {tuple(resp.shape)}"
        )
    return p, target, valid


def _reduce_elementwise(elem: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    """elem (B, N, T), 0 at invalid bins -> loss with the documented normalisation."""
    check_reduction(reduction, _LOSS_REDUCTIONS)
    if reduction == "sum":
        return elem.sum()
    if reduction == "mean":
        return elem.sum() / valid.sum().clamp_min(1)
    return elem.sum((0, 2)) / valid.sum((0, 2)).clamp_min(1)


def mse_loss(pred: torch.Tensor, resp: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error to the trial-averaged response, NaN-masked.

    Args:
        pred: ``(B, N, T)`` or ``(N, T)`` prediction (gradients flow through it).
        resp: ``(B, N, R, T)`` recording (trial-averaged with a NaN-aware mean) or an
            already averaged target ``(B, N, T)``; NaN bins are masked out.
        reduction: ``"none"`` -> ``(N,)``, each neuron's mean over ITS valid bins (all
            stimuli of the batch); ``"mean"`` -> sum over all valid bins of all neurons
            divided by their total count (equal to the mean of the ``"none"`` values only
            when every neuron has the same number of valid bins); ``"sum"`` -> sum over
            all valid bins. A neuron without valid bins contributes 0.

    Returns:
        scalar, or ``(N,)`` for ``"none"``.
    """
    p, target, valid = _loss_inputs(pred, resp)
    diff = torch.where(valid, p, target) - target  # exactly 0 (and no gradient) at invalid bins
    return _reduce_elementwise(diff.square(), valid, reduction)


def nmse_loss(pred: torch.Tensor, resp: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Normalised mean squared error per neuron: ``mean((pred - ybar)^2) / mean(ybar^2)``.

    For each neuron n, over ITS valid bins of the batch (stimuli concatenated, NaN
    masked), with ``ybar`` the trial average::

        nmse[n] = sum_t (pred[n, t] - ybar[n, t])^2 / sum_t ybar[n, t]^2

    i.e. its MSE divided by the mean square of its target: every neuron weighs the same
    whatever its firing rate, which is what a population fit needs (plain MSE is dominated
    by the high-rate neurons). The normaliser is the one of NEMS' TensorFlow losses (the
    target's mean square, not its variance, so a neuron with a constant non-zero target
    stays defined); NEMS' "nmse" also takes a square root per neuron and averages it over
    10 time chunks, which changes the weighting between neurons but not the minimiser of a
    neuron. A neuron whose target is 0 on every valid bin of the batch (or without valid
    bins) has no scale: it contributes 0, like a neuron without data.

    Args:
        pred: ``(B, N, T)`` or ``(N, T)``.
        resp: ``(B, N, R, T)`` or averaged ``(B, N, T)``; NaN masked.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> mean over the neurons that have a
            scale; ``"sum"`` -> sum over neurons.

    Returns:
        scalar, or ``(N,)`` for ``"none"``.
    """
    check_reduction(reduction, _LOSS_REDUCTIONS)
    p, target, valid = _loss_inputs(pred, resp)
    diff = torch.where(valid, p, target) - target  # exactly 0 (and no gradient) at invalid bins
    err = diff.square().sum((0, 2))
    scale = target.square().sum((0, 2))  # target is 0 at invalid bins
    has_scale = scale > 0
    loss = torch.where(has_scale, err / torch.where(has_scale, scale, torch.ones_like(scale)),
                       torch.zeros_like(err))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / has_scale.sum().clamp_min(1)


def poisson_loss(pred: torch.Tensor, resp: torch.Tensor, reduction: str = "mean",
                 eps: float = 1e-8) -> torch.Tensor:
    """Poisson negative log-likelihood of the trial average with ``pred`` as the rate.

    Element-wise ``rate - ybar * log(rate)`` (the ``log(ybar!)`` term, constant in
    ``pred``, is omitted), with ``rate = clamp(pred, min=eps)``: a prediction <= eps is
    treated as ``eps`` and gets no gradient, so give the model a non-negative output
    (softplus, exp, ...). Normalisation as in :func:`mse_loss`.

    Args:
        pred: ``(B, N, T)`` or ``(N, T)`` non-negative rate, in counts per bin of ``resp``.
        resp: ``(B, N, R, T)`` or averaged ``(B, N, T)``, non-negative; NaN masked.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"``; ``"sum"`` (see :func:`mse_loss`).
        eps: smallest rate.

    Returns:
        scalar, or ``(N,)`` for ``"none"``.
    """
    p, target, valid = _loss_inputs(pred, resp)
    if bool((target < 0).any()):
        raise ValueError("poisson_loss expects non-negative responses (counts or rates); got negative values")
    rate = torch.where(valid, p, torch.ones((), dtype=p.dtype, device=p.device)).clamp_min(eps)
    elem = torch.where(valid, rate - target * torch.log(rate), 0.0)
    return _reduce_elementwise(elem, valid, reduction)


def correlation_loss(pred: torch.Tensor, resp: torch.Tensor, reduction: str = "mean",
                     eps: float = 1e-8) -> torch.Tensor:
    """``1 - Pearson correlation`` per neuron, over the concatenated valid bins.

    For each neuron the prediction and the trial average are correlated over all valid
    bins of the batch (stimuli concatenated along time, NaN bins masked):
    ``r = cov / sqrt((Var(pred) + eps) * (Var(ybar) + eps))``; eps keeps the gradient
    finite for a constant prediction (r = 0 there).

    Args:
        pred: ``(B, N, T)`` or ``(N, T)``.
        resp: ``(B, N, R, T)`` or averaged ``(B, N, T)``; NaN masked.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> mean over neurons; ``"sum"`` ->
            sum over neurons.
        eps: added to both variances.

    Returns:
        scalar, or ``(N,)`` for ``"none"``.
    """
    check_reduction(reduction, _LOSS_REDUCTIONS)
    p, target, valid = _loss_inputs(pred, resp)
    n = valid.sum((0, 2), keepdim=True).clamp_min(1)
    p = torch.where(valid, p, 0.0)
    pc = torch.where(valid, p - p.sum((0, 2), keepdim=True) / n, 0.0)
    yc = torch.where(valid, target - target.sum((0, 2), keepdim=True) / n, 0.0)
    n = n.flatten()
    cov = (pc * yc).sum((0, 2)) / n
    var_p = pc.square().sum((0, 2)) / n
    var_y = yc.square().sum((0, 2)) / n
    loss = 1.0 - cov / torch.sqrt((var_p + eps) * (var_y + eps))
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": mse_loss,
    "nmse": nmse_loss,
    "poisson": poisson_loss,
    "correlation": correlation_loss,
}


def get_loss(name) -> Callable[..., torch.Tensor]:
    """Loss function by name: ``"mse"``, ``"nmse"``, ``"poisson"`` or ``"correlation"``.

    A callable is returned unchanged. Every loss has the signature
    ``loss(pred (B, N, T), resp (B, N, R, T) | (B, N, T), reduction="mean")``.
    """
    if callable(name):
        return name
    if not isinstance(name, str) or name.lower() not in LOSSES:
        raise ValueError(f"expected a loss name in {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name.lower()]
