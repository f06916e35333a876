"""Pearson correlation: the one NaN-masked correlation of the package, and correlation from sums."""

from __future__ import annotations

import torch

from .inputs import as_tensor

__all__ = ["masked_corr", "centre", "corr_from_centred"]


def masked_extremes_equal(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """(N, L), (N, L) bool (None: every bin valid) -> (N,) bool: x takes a single value over
    the valid bins."""
    if valid is None:
        return x.amax(1) == x.amin(1)  # (two reductions: ~10x faster than aminmax on a CPU)
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=x.device)
    return torch.where(valid, x, -inf).amax(1) == torch.where(valid, x, inf).amin(1)


_REL_TOL = 1e-12  # a variance below this fraction of the mean square counts as 0


def corr_from_moments(n, sa, sb, saa, sbb, sab) -> torch.Tensor:
    """Pearson correlation from sums over n points; NaN where undefined."""
    nn_ = n.clamp_min(1.0)
    cov = sab / nn_ - sa * sb / nn_.square()
    va = saa / nn_ - (sa / nn_).square()
    vb = sbb / nn_ - (sb / nn_).square()
    ok = (n >= 2) & (va > _REL_TOL * saa.abs() / nn_) & (vb > _REL_TOL * sbb.abs() / nn_)
    ok = ok & (va > 0) & (vb > 0)
    return torch.where(ok, cov / torch.sqrt(va.clamp_min(1e-300) * vb.clamp_min(1e-300)), float("nan"))


def centre(x: torch.Tensor, valid: torch.Tensor | None, n: torch.Tensor) -> torch.Tensor:
    """x ``(..., L)`` minus its mean over the ``valid`` bins, 0 elsewhere.

    x must already be 0 at invalid bins; n ``(...)`` is the number of valid bins (>= 1);
    ``valid=None``: every bin is valid.
    """
    centred = x - (x.sum(-1) / n)[..., None]
    return centred if valid is None else torch.where(valid, centred, 0.0)


def corr_from_centred(cov: torch.Tensor, var_a: torch.Tensor, var_b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation ``cov / sqrt(var_a var_b)`` from (co)variances of centred data."""
    return cov / torch.sqrt(var_a * var_b)


def masked_corr(a, b, valid=None):
    """Pearson correlation of ``a`` and ``b`` along the last axis, over the bins where ``valid``.

    a, b: ``(..., L)``; valid: ``(..., L)`` bool (None: where both are finite). Returns
    ``(...)`` float64, NaN where fewer than 2 valid bins or either side is constant over
    them (no correlation defined). numpy in -> numpy out, torch in -> torch out. This is
    the correlation of :func:`cc_raw` (same centring and moments), without its per-neuron
    warnings and its "constant -> 0" convention: a plain building block, e.g. for the
    ridge solver's validation scores.
    """
    ta, a_np = as_tensor(a, "a")
    tb, b_np = as_tensor(b, "b")
    if ta.shape != tb.shape:
        raise ValueError(f"expected a and b of the same shape (..., L), got {tuple(ta.shape)} and {tuple(tb.shape)}")
    if valid is None:
        tv = torch.isfinite(ta) & torch.isfinite(tb)
    else:
        tv = torch.as_tensor(valid, device=ta.device)
        if tv.dtype != torch.bool or tv.shape != ta.shape:
            raise ValueError(f"expected valid as a bool mask of shape {tuple(ta.shape)}, got {tv.dtype} {tuple(tv.shape)}")
    with torch.no_grad():
        n = tv.sum(-1).double()
        nb = n.clamp_min(1.0)
        ac = centre(torch.where(tv, ta.double(), 0.0), tv, nb)
        bc = centre(torch.where(tv, tb.double(), 0.0), tv, nb)
        r = corr_from_centred((ac * bc).sum(-1) / nb, ac.square().sum(-1) / nb, bc.square().sum(-1) / nb)
        r = torch.where((n >= 2) & torch.isfinite(r), r, float("nan"))
    if a_np or b_np:
        out = r.cpu().numpy()
        return out[()] if out.ndim == 0 else out
    return r
