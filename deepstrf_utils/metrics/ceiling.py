"""Metric values (float64, ``(N,)``) from prepared statistics: correlations, noise ceilings, split halves."""

from __future__ import annotations

import numpy as np
import torch

from .correlation import corr_from_moments, corr_from_centred
from .inputs import SPLIT_CHUNK_ELEMENTS, warn_neurons
from .recording import BAD_PREDICTION, SINGLE_REPEAT, TOO_SHORT, Prediction, Recording

#: the noise ceiling CCmax below which a neuron is not reliable enough to enter means and
#: figures: 1/sqrt(3) ~ 0.577, the noise ratio NP / SP < 40 of the NS1 documentation at 20
#: repeats, which bounds CCnorm by 1.73 x CCraw (the rule: :mod:`deepstrf_utils.report.reliability`)
MIN_CC_MAX = float(1.0 / np.sqrt(3.0))

# ----------------------------------------------------------------------------------------
# metric values (float64, (N,)) from prepared statistics
# ----------------------------------------------------------------------------------------
def cc_raw_values(pr: Prediction, rec: Recording, name: str) -> torch.Tensor:
    r = corr_from_centred(pr.cov, pr.var, rec.p_ybar)
    zero = pr.constant | rec.ybar_constant
    r = torch.where(zero, 0.0, r)
    nan = rec.too_short | pr.bad
    warn_neurons(name, pr.constant & ~nan, "constant prediction over the valid bins; correlation set to 0")
    warn_neurons(name, rec.ybar_constant & ~pr.constant & ~nan,
          "constant trial-averaged response over the valid bins; correlation set to 0")
    warn_neurons(name, rec.too_short, TOO_SHORT)
    warn_neurons(name, pr.bad & ~rec.too_short, BAD_PREDICTION)
    return torch.where(nan, float("nan"), r)


def signal_power_values(rec: Recording, name: str) -> torch.Tensor:
    warn_neurons(name, rec.single_repeat & ~rec.too_short, SINGLE_REPEAT)
    warn_neurons(name, rec.too_short, TOO_SHORT)
    return rec.signal_power


def noise_power_values(rec: Recording, name: str) -> torch.Tensor:
    warn_neurons(name, rec.single_repeat & ~rec.too_short, SINGLE_REPEAT)
    warn_neurons(name, rec.too_short, TOO_SHORT)
    return rec.noise_power


def _ceiling_flags(rec: Recording, name: str) -> torch.Tensor:
    """(N,) bool: no usable noise ceiling (single repeat, < 2 bins, SP <= 0); warns."""
    sp = rec.signal_power
    no_sp = rec.single_repeat | rec.too_short
    low = ~no_sp & ~(sp > 0)
    warn_neurons(name, rec.single_repeat & ~rec.too_short, SINGLE_REPEAT)
    warn_neurons(name, rec.too_short, TOO_SHORT)
    warn_neurons(name, low, "signal power <= 0 (no reliable stimulus-driven signal); value set to NaN")
    return no_sp | low


def cc_norm_values(pr: Prediction, rec: Recording, name: str) -> torch.Tensor:
    nan = _ceiling_flags(rec, name)
    r = pr.cov / torch.sqrt(pr.var * rec.signal_power.clamp_min(0.0))
    warn_neurons(name, pr.constant & ~nan & ~pr.bad, "constant prediction over the valid bins; cc_norm set to 0")
    warn_neurons(name, pr.bad & ~nan, BAD_PREDICTION)
    r = torch.where(pr.constant, 0.0, r)
    return torch.where(nan | pr.bad, float("nan"), r)


def cc_max_from_sp_values(rec: Recording, name: str) -> torch.Tensor:
    nan = _ceiling_flags(rec, name)
    return torch.where(nan, float("nan"), torch.sqrt(rec.signal_power.clamp_min(0.0) / rec.p_ybar))


def fev_values(pr: Prediction, rec: Recording, name: str) -> torch.Tensor:
    nan = _ceiling_flags(rec, name)
    warn_neurons(name, pr.bad & ~nan, BAD_PREDICTION)
    out = 1.0 - (pr.mse - rec.noise_of_mean) / rec.signal_power
    return torch.where(nan | pr.bad, float("nan"), out)


def _split_masks(R: int, n_splits: int, seed: int, device) -> torch.Tensor:
    """(S, R) float64 indicator of half A for ``n_splits`` random half-splits (seeded)."""
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.rand(n_splits, R, generator=gen, dtype=torch.float64).argsort(1)
    half = torch.zeros(n_splits, R, dtype=torch.float64)
    half.scatter_(1, order[:, : R // 2], 1.0)
    return half.to(device)


def _half_sums(Gf, Sf, n_bins, v, half):
    """Split-half moment sums of groups of bins that share their valid repeats.

    Args:
        Gf: ``(M, R * R)`` sums over the group's bins of y_r y_q (0 for missing repeats).
        Sf: ``(M, R)`` sums of y_r; ``n_bins``: ``(M,)`` bins in each group.
        v: ``(M, R)`` float64 valid repeats of each group (1 valid, 0 missing).
        half: ``(S, R)`` float64 indicator of half A for each split.

    Returns:
        six ``(M, S)`` sums over the group's kept bins of 1, a, b, a^2, b^2 and a b, with
        a and b the half means; a group where a half has no valid repeat is dropped.
    """
    R = v.shape[1]
    ha, hb = half, 1.0 - half  # (S, R)
    na, nb_ = v @ ha.T, v @ hb.T  # (M, S) valid repeats in each half
    keep = (na > 0) & (nb_ > 0)
    ia = torch.where(keep, 1.0 / na.clamp_min(1.0), 0.0)
    ib = torch.where(keep, 1.0 / nb_.clamp_min(1.0), 0.0)

    def outer(p, q):  # (S, R), (S, R) -> (R * R, S)
        return (p.unsqueeze(2) * q.unsqueeze(1)).reshape(p.shape[0], R * R).T

    return (keep * n_bins.reshape(-1, 1), (Sf @ ha.T) * ia, (Sf @ hb.T) * ib,
            (Gf @ outer(ha, ha)) * ia.square(), (Gf @ outer(hb, hb)) * ib.square(),
            (Gf @ outer(ha, hb)) * ia * ib)


def _repeat_patterns(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, R) bool -> (patterns (P, R) bool, group (M,) index of each row's pattern)."""
    M, R = valid.shape
    if bool((valid == valid[:1]).all()):  # one pattern: nothing missing, or only padding
        return valid[:1], torch.zeros(M, dtype=torch.long, device=valid.device)
    if R <= 62:  # one integer code per row: a 1-D unique is much faster than unique(dim=0)
        bits = torch.arange(R, device=valid.device)
        codes = (valid.long() << bits).sum(1)
        uniq, group = torch.unique(codes, return_inverse=True)
        return ((uniq.unsqueeze(1) >> bits) & 1).bool(), group
    return torch.unique(valid, dim=0, return_inverse=True)


def _half_corr_moments(rec: Recording, half: torch.Tensor) -> torch.Tensor:
    """(N, S) split-half correlations from per-stimulus trial moments.

    Exact for the complete and structured layouts: within a stimulus each half is the
    mean of its valid repeats; a stimulus where a half has no valid repeat is dropped
    for that split. With h the indicator of half A and G_b the per-stimulus second
    moments (0 for missing trials), sum_t a_t^2 over stimulus b is h' G_b h / n_A^2;
    stimuli with the same valid repeats are pooled and all quadratic forms for all
    splits are one matrix product.
    """
    G, S = rec.stim_moments  # (N, B, R, R), (N, B, R)
    N, B, R, _ = G.shape
    patterns, group = _repeat_patterns(rec.trial_valid.reshape(N * B, R))
    P = patterns.shape[0]
    bins = rec.stim_bins.double()  # (N, B)
    if P == 1:  # every stimulus has the same valid repeats: pool by summing over B
        Gf, Sf, n_bins = G.sum(1).reshape(N, R * R), S.sum(1), bins.sum(1)
    else:  # pool the stimuli of each (neuron, pattern) group
        idx = torch.arange(N, device=G.device).repeat_interleave(B) * P + group  # (N*B,)
        Gf = G.new_zeros(N * P, R * R).index_add_(0, idx, G.reshape(N * B, R * R))
        Sf = S.new_zeros(N * P, R).index_add_(0, idx, S.reshape(N * B, R))
        n_bins = bins.new_zeros(N * P).index_add_(0, idx, bins.reshape(N * B))
    v = patterns.double().repeat(N, 1)  # (N*P, R) valid repeats of each group
    sums = [x.reshape(N, P, -1).sum(1) for x in _half_sums(Gf, Sf, n_bins, v, half.double())]
    return corr_from_moments(*sums)


def _sum64(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last dimension, returned as float64.

    A float32 ``x`` is summed in float32 (torch's CPU reduction is a cascade sum, so the
    error grows like log(n), at the precision of the input) and then converted: asking
    ``sum`` for a float64 result converts every element first and is ~30x slower.
    """
    return x.sum(-1).double()


def _half_corr_per_bin(rec: Recording, half: torch.Tensor) -> torch.Tensor:
    """(N, S) split-half correlations for any pattern of missing cells.

    Half means per bin over the valid repeats of each half; a bin where a half has no
    valid repeat is dropped for that split. Bins where every repeat is valid (usually
    most of them) share the half sizes and go through second moments as in
    :func:`_half_corr_moments`; only the bins with missing cells are done bin by bin.
    Trials are shifted by the neuron's mean response (correlations do not change).
    """
    rows, mask = rec.centred_rows  # (N, R, L)
    N, R, L = rows.shape
    dt = rec.dtype
    cnt = mask.sum(1)  # (N, L)
    full = cnt == R
    # bins where every repeat is valid: one moment matrix per neuron
    rf = rows * full.unsqueeze(1)
    Gf = torch.bmm(rf, rf.transpose(1, 2)).double().reshape(N, R * R)
    Sf = rf.sum(2).double()
    del rf
    v = torch.ones(N, R, dtype=torch.float64, device=rows.device)
    sums = list(_half_sums(Gf, Sf, full.sum(1).double(), v, half.double()))
    # bins with some (not all) repeats missing: gather them to the front, bin by bin
    partial = (cnt > 0) & ~full
    n_part = partial.sum(1)  # (N,)
    lp = int(n_part.max())
    if lp > 0:
        order = torch.argsort(partial.to(torch.int8), dim=1, descending=True, stable=True)[:, :lp]
        inside = torch.arange(lp, device=rows.device) < n_part.unsqueeze(1)  # (N, lp)
        idx = order.unsqueeze(1).expand(N, R, lp)
        rows_p = torch.gather(rows, 2, idx) * inside.unsqueeze(1)
        mf = (torch.gather(mask, 2, idx) & inside.unsqueeze(1)).to(dt)
        tot, cnt_p = rows_p.sum(1), mf.sum(1)  # (N, lp)
        chunk = max(1, SPLIT_CHUNK_ELEMENTS // max(1, N * lp))
        parts = []
        for start in range(0, half.shape[0], chunk):
            a = half[start: start + chunk].to(dt)  # (s, R)
            sum_a = torch.matmul(a, rows_p)  # (N, s, lp)
            cnt_a = torch.matmul(a, mf)
            cnt_b = cnt_p.unsqueeze(1) - cnt_a
            ok = cnt_a.clamp(max=1) * cnt_b.clamp(max=1)  # 1 where both halves have data
            mean_a = (sum_a * ok) / cnt_a.clamp_min(1)
            mean_b = ((tot.unsqueeze(1) - sum_a) * ok) / cnt_b.clamp_min(1)
            del sum_a, cnt_a, cnt_b
            parts.append((_sum64(ok), _sum64(mean_a), _sum64(mean_b), _sum64(mean_a.square()),
                          _sum64(mean_b.square()), _sum64(mean_a * mean_b)))
        sums = [s_full + torch.cat(p, 1) for s_full, p in zip(sums, zip(*parts))]
    return corr_from_moments(*sums)


def cc_max_values(rec: Recording, n_splits: int, seed: int, name: str) -> torch.Tensor:
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise ValueError(f"expected n_splits to be a positive integer, got {n_splits!r}")
    nan = rec.single_repeat | rec.too_short
    warn_neurons(name, rec.single_repeat & ~rec.too_short, SINGLE_REPEAT)
    warn_neurons(name, rec.too_short, TOO_SHORT)
    if rec.R < 2:
        return torch.full((rec.N,), float("nan"), dtype=torch.float64, device=rec._y.device)
    half = _split_masks(rec.R, int(n_splits), seed, rec._y.device)
    if rec.layout == "general":
        rho = _half_corr_per_bin(rec, half)
    else:
        rho = _half_corr_moments(rec, half)
    rho_half = torch.nanmean(rho, 1)  # (N,)
    low = ~nan & ~(rho_half > 0)
    warn_neurons(name, low, "split-half correlation <= 0 or undefined (no reliable signal); value set to NaN")
    out = torch.sqrt(2.0 / (1.0 + 1.0 / rho_half.clamp_min(1e-300)))
    return torch.where(nan | low, float("nan"), out)


def trial_corr_values(rec: Recording, name: str) -> torch.Tensor:
    """(N,) mean over pairs of distinct repeats of their correlation (pairwise-complete)."""
    rho = rec.trial_corr  # (N, R, R)
    off = ~torch.eye(rec.R, dtype=torch.bool, device=rho.device)
    ok = ~torch.isnan(rho) & off
    n_ok = ok.sum((1, 2))
    out = torch.where(ok, rho, 0.0).sum((1, 2)) / n_ok.clamp_min(1)
    none = n_ok == 0
    nan = rec.single_repeat | rec.too_short
    warn_neurons(name, rec.single_repeat & ~rec.too_short,
          "single repeat: no trial-to-trial correlation (no noise ceiling, report cc_raw); value set to NaN")
    warn_neurons(name, rec.too_short, TOO_SHORT)
    warn_neurons(name, none & ~nan, "no pair of non-constant repeats; value set to NaN")
    return torch.where(nan | none, float("nan"), out)


def ttrc_values(pr: Prediction, rec: Recording, name: str) -> torch.Tensor:
    raw = cc_raw_values(pr, rec, name)
    ttc = trial_corr_values(rec, name)
    low = ~torch.isnan(ttc) & ~(ttc > 0)
    warn_neurons(name, low, "mean trial-to-trial correlation <= 0; value set to NaN")
    return torch.where(low, float("nan"), raw / torch.sqrt(ttc.clamp_min(1e-300)))
