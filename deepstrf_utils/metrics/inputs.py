"""Input handling shared by the metrics and losses: conversion, shape checks, warnings, output, and the one trial average."""

from __future__ import annotations

import logging

import numpy as np
import torch

logger = logging.getLogger("deepstrf_utils.metrics")

_REDUCTIONS = ("none", "mean")
_N_LISTED = 5  # neuron indices quoted in a warning
# Elements (N * S * L) per chunk of half-splits in the cc_max path for missing trials.
SPLIT_CHUNK_ELEMENTS = 1 << 23


# ----------------------------------------------------------------------------------------
# the trial average
# ----------------------------------------------------------------------------------------


def trial_average(resp, axis: int = -2):
    """Mean over repeats ignoring missing (NaN) trials: ``(..., R, T) -> (..., T)``.

    A bin where every repeat is NaN (a missing trial or padding) is NaN in the result.
    numpy in -> numpy out (float32 stays float32), torch in -> torch out on the same
    device; no gradient is needed and none is tracked through the mask. This is the one
    trial average of the package: datasets, training targets, the ridge solver and the
    metrics all use it.
    """
    if isinstance(resp, torch.Tensor):
        valid = ~torch.isnan(resp)
        count = valid.sum(axis)
        total = torch.where(valid, resp, torch.zeros((), dtype=resp.dtype, device=resp.device)).sum(axis)
        mean = total / count.clamp(min=1).to(resp.dtype)
        return torch.where(count > 0, mean, torch.full((), float("nan"), dtype=resp.dtype, device=resp.device))
    r = np.asarray(resp)
    if not np.issubdtype(r.dtype, np.floating):
        r = r.astype(np.float64)
    valid = ~np.isnan(r)
    count = valid.sum(axis)
    total = np.where(valid, r, 0).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(r.dtype, copy=False)


# ----------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------
def reject_inf(x, what: str) -> None:
    """Raise ValueError if ``x`` (numpy array or torch tensor) holds ``+inf`` or ``-inf``.

    The one rule for responses, at every boundary (``ResponseDataset``, the training packer
    and collate, the metrics): NaN marks a missing trial or padding; an infinite value is
    an error, never silently "missing" (training) or "valid" (metrics). (A non-finite
    PREDICTION is not an input error: the metrics score that neuron NaN with a warning.)
    """
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point() or bool(torch.isfinite(torch.nansum(x))):
            return  # a finite sum of the non-NaN values proves there is no +-inf (one cheap pass)
        bad = int(torch.isinf(x).sum())  # an infinite sum: count exactly (it may be an overflow)
    else:
        a = np.asarray(x)
        bad = int(np.isinf(a).sum()) if np.issubdtype(a.dtype, np.floating) else 0
    if bad:
        raise ValueError(f"expected {what} without +-inf (NaN marks a missing trial or padding), "
                         f"got {bad} infinite value(s)")


def as_tensor(x, name: str) -> tuple[torch.Tensor, bool]:
    """Return ``(tensor, came_from_numpy)``; non-float input becomes floating point."""
    if isinstance(x, torch.Tensor):
        t, from_numpy = x.detach(), False
    else:
        a = np.asarray(x)
        if a.dtype == object or a.dtype.kind not in "biuf":
            raise ValueError(f"expected {name} to be a real numeric array or tensor, got dtype {a.dtype}")
        if not a.flags.writeable or not a.flags.c_contiguous or not a.dtype.isnative:
            a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
        t, from_numpy = torch.from_numpy(a), True
        if not t.is_floating_point():
            t = t.to(torch.float64)
    if t.is_complex():
        raise ValueError(f"expected {name} to be real, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    elif t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    return t, from_numpy


def resp_4d(resp: torch.Tensor, name: str = "resp", check_inf: bool = True) -> torch.Tensor:
    """(N, R, T) or (B, N, R, T) -> (B, N, R, T); ValueError otherwise (also for +-inf, unless
    ``check_inf=False``: the caller checks them itself)."""
    if resp.ndim == 3:
        resp = resp.unsqueeze(0)
    elif resp.ndim != 4:
        raise ValueError(
            f"expected {name} of shape (B, N, R, T) or (N, R, T), got {tuple(resp.shape)}"
        )
    if resp.numel() == 0:
        raise ValueError(f"expected a non-empty {name} of shape (B, N, R, T), got {tuple(resp.shape)}")
    if check_inf:
        reject_inf(resp, name)
    return resp


def pair_4d(pred: torch.Tensor, resp: torch.Tensor, check_inf: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and batch ``pred`` (B, N, T) | (N, T) against ``resp`` (B, N, R, T) | (N, R, T)."""
    if pred.ndim == 2 and resp.ndim == 3:
        pred, resp = pred.unsqueeze(0), resp.unsqueeze(0)
    elif not (pred.ndim == 3 and resp.ndim == 4):
        raise ValueError(
            "expected pred (B, N, T) with resp (B, N, R, T), or pred (N, T) with resp "
            f"(N, R, T); got pred {tuple(pred.shape)} and resp {tuple(resp.shape)}"
        )
    resp = resp_4d(resp, check_inf=check_inf)
    B, N, R, T = resp.shape
    if tuple(pred.shape) != (B, N, T):
        raise ValueError(
            f"expected pred of shape (B, N, T) = {(B, N, T)} to match resp of shape "
            f"(B, N, R, T) = {(B, N, R, T)}, got {tuple(pred.shape)}"
        )
    if pred.device != resp.device:
        raise ValueError(f"expected pred and resp on the same device, got {pred.device} and {resp.device}")
    return pred, resp


def check_reduction(reduction: str, allowed=_REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"expected reduction in {allowed}, got {reduction!r}")


def warn_neurons(name: str, flags: torch.Tensor, what: str) -> None:
    """Log one warning naming how many (and which) neurons ``flags`` (N,) marks."""
    n_bad = int(flags.sum())
    if n_bad:
        idx = torch.nonzero(flags).flatten()[:_N_LISTED].tolist()
        more = ", ..." if n_bad > _N_LISTED else ""
        logger.warning(
            "%s: %d of %d neurons: %s (neuron indices %s%s)",
            name, n_bad, flags.numel(), what, ", ".join(map(str, idx)), more,
        )


class OutputFormat:
    """Turns float64 per-neuron values (N,) into what the caller passed in."""

    def __init__(self, dtype: torch.dtype, from_numpy: bool):
        self.dtype, self.from_numpy = dtype, from_numpy

    def __call__(self, values: torch.Tensor, reduction: str, name: str):
        if reduction == "mean":
            keep = ~torch.isnan(values)
            n_drop = int((~keep).sum())
            if n_drop == values.numel():
                logger.warning("%s: mean over neurons is NaN: all %d neurons are NaN", name, n_drop)
                values = values.new_tensor(float("nan"))
            else:
                if n_drop:
                    logger.warning(
                        "%s: mean over %d of %d neurons; %d NaN neurons dropped",
                        name, values.numel() - n_drop, values.numel(), n_drop,
                    )
                values = values[keep].mean()
        values = values.to(self.dtype)
        if self.from_numpy:
            out = values.cpu().numpy()
            return out[()] if out.ndim == 0 else out
        return values
