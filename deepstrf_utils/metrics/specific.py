"""The stimulus-specific part of a response, and the stimulus-blind baseline it is scored against.

With stimuli of one length that share a time course (TORCs: onset, adaptation, offset are
the same for every TORC), most of the response is that shared course, and a stimulus-blind
prediction (the mean PSTH over training stimuli, :func:`mean_psth`) already scores a high
CCnorm. What a model knows about the sound is in the residual: the prediction and the
responses minus their mean over the B scored stimuli, bin by bin.

- :func:`stimulus_specific`: ``pred - mean_b pred`` and every trial ``resp - mean_b ybar``
  (``ybar`` the trial average), ``(B, N, T)`` and ``(B, N, R, T)``;
- :func:`cc_norm_specific`: :func:`~deepstrf_utils.metrics.cc_norm` of those residuals; the
  signal power comes from the residual trials (subtracting one time course from every trial
  leaves the trial-to-trial scatter, i.e. the noise, unchanged);
- :func:`mean_psth`: the mean over stimuli and repeats of a recording, ``(N, T)``.

Pure functions: numpy in -> numpy out, torch in -> torch out; NaN = missing trial.
"""
from __future__ import annotations

import numpy as np
import torch

from .inputs import as_tensor, reject_inf, trial_average
from .scores import cc_norm

__all__ = ["stimulus_specific", "cc_norm_specific", "mean_psth"]


def _check_4d(resp: torch.Tensor) -> None:
    if resp.ndim != 4 or resp.shape[0] < 2:
        raise ValueError(f"expected resp of shape (B, N, R, T) with B >= 2 stimuli of equal length, "
                         f"got {tuple(resp.shape)}")
    reject_inf(resp, "resp")
    pad = torch.isnan(resp).all(dim=2)  # (B, N, T) bins without any repeat
    if not bool((pad == pad[:1]).all()):
        raise ValueError("expected stimuli of equal length (the same padding bins in every stimulus); "
                         "the stimulus-specific part subtracts a mean over stimuli bin by bin")


def _nan_mean0(x: torch.Tensor) -> torch.Tensor:
    valid = ~torch.isnan(x)
    total = torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(0)
    count = valid.sum(0)
    mean = total / count.clamp(min=1).to(x.dtype)
    return torch.where(count > 0, mean, torch.full((), float("nan"), dtype=x.dtype, device=x.device))


def stimulus_specific(pred, resp):
    """Prediction and responses minus their mean over the B stimuli, bin by bin.

    Args:
        pred: ``(B, N, T)`` prediction.
        resp: ``(B, N, R, T)`` recording of B >= 2 stimuli of equal length (NaN = missing trial).

    Returns:
        ``(pred - mean_b pred (B, N, T), resp - mean_b trial_average(resp) (B, N, R, T))``,
        the same kind as the inputs (numpy or torch).
    """
    pr, pred_np = as_tensor(pred, "pred")
    rc, resp_np = as_tensor(resp, "resp")
    _check_4d(rc)
    if pr.shape != (rc.shape[0], rc.shape[1], rc.shape[3]):
        raise ValueError(f"expected pred of shape (B, N, T) = {(rc.shape[0], rc.shape[1], rc.shape[3])} "
                         f"matching resp {tuple(rc.shape)}, got {tuple(pr.shape)}")
    with torch.no_grad():
        p = pr.to(torch.float64)
        r = rc.to(torch.float64)
        p_res = p - _nan_mean0(p)[None]
        r_res = r - _nan_mean0(trial_average(r, axis=2))[None, :, None, :]
    p_res, r_res = p_res.to(pr.dtype), r_res.to(rc.dtype)
    return (p_res.numpy() if pred_np else p_res), (r_res.numpy() if resp_np else r_res)


def cc_norm_specific(pred, resp, reduction: str = "none"):
    """CCnorm of the stimulus-specific part (:func:`stimulus_specific`).

    ``cc_norm(pred - mean_b pred, resp - mean_b ybar)``: a stimulus-blind prediction (the same
    time course for every stimulus) scores 0 (a constant residual, with cc_norm's warning);
    the mean over stimuli is taken over the B scored stimuli.

    Args:
        pred: ``(B, N, T)``; resp: ``(B, N, R, T)``, B >= 2 stimuli of equal length.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> NaN-aware mean over neurons.
    """
    p_res, r_res = stimulus_specific(pred, resp)
    return cc_norm(p_res, r_res, reduction=reduction)


def mean_psth(resp):
    """Mean over stimuli and repeats (NaN-aware) of a recording of equal-length stimuli.

    Args:
        resp: ``(B, N, R, T)``.

    Returns:
        ``(N, T)``, the same kind as the input; the stimulus-blind prediction of every stimulus.
    """
    rc, from_np = as_tensor(resp, "resp")
    if rc.ndim != 4:
        raise ValueError(f"expected resp of shape (B, N, R, T), got {tuple(rc.shape)}")
    with torch.no_grad():
        out = _nan_mean0(trial_average(rc, axis=2))
    return out.numpy() if from_np else out
