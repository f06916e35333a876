"""Prediction metrics and training losses for auditory neural responses.

Conventions (see docs/ARCHITECTURE.md):

- ``pred``: model prediction, ``(B, N, T)`` or ``(N, T)``.
- ``resp``: recording, ``(B, N, R, T)`` or ``(N, R, T)``; NaN marks a missing trial or
  padding. A bin where every repeat is NaN is padding and is dropped, jointly from
  ``pred`` and ``resp``, separately for each neuron.
- **Stimuli are concatenated along time before anything is computed**: every mean,
  variance, covariance, correlation and signal power below is taken over the valid bins
  of all B stimuli at once (``B * T`` bins minus padding), never per stimulus and then
  averaged. This matters: mixing a concatenated covariance with a per-stimulus signal
  power lets a perfect model score far above 1.
- Variances are population variances (divide by the number of valid bins, "power").
- Metrics are pure functions: torch in -> torch out (same device), numpy in -> numpy out.
  They are evaluation tools and are computed without gradients; train with the losses.
- ``reduction="none"`` (default) returns per-neuron values ``(N,)``; ``"mean"`` returns
  the mean over neurons, ignoring NaN, and logs a warning naming how many neurons were
  dropped. Every NaN a metric returns is announced by a logged warning saying why.

Metrics: :func:`cc_raw`, :func:`signal_power`, :func:`noise_power`, :func:`cc_norm`,
:func:`cc_max`, :func:`cc_max_from_sp`, :func:`mean_trial_correlation`, :func:`ttrc`,
:func:`fev`, and :func:`score` (all of them at once, sharing the work).

Losses (differentiable, NaN-masked): :func:`mse_loss`, :func:`poisson_loss`,
:func:`correlation_loss`, and :func:`get_loss`.

References: Sahani & Linden (2003) NIPS 15, signal power; Hsu, Borst & Theunissen (2004)
Network 15, CCmax; Schoppe et al. (2016) Front Comput Neurosci 10:10, CCnorm;
Pennington & David (2023) PLOS Comput Biol 19:e1011110, trial-to-trial normalisation.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Callable

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = [
    "cc_raw",
    "signal_power",
    "noise_power",
    "cc_norm",
    "cc_max",
    "cc_max_from_sp",
    "mean_trial_correlation",
    "ttrc",
    "fev",
    "score",
    "mse_loss",
    "poisson_loss",
    "correlation_loss",
    "get_loss",
    "LOSSES",
    "trial_average",
]

_REDUCTIONS = ("none", "mean")
_N_LISTED = 5  # neuron indices quoted in a warning
# Elements (N * S * L) per chunk of half-splits in the cc_max path for missing trials.
_SPLIT_CHUNK_ELEMENTS = 1 << 23


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
def _as_tensor(x, name: str) -> tuple[torch.Tensor, bool]:
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


def _resp_4d(resp: torch.Tensor, name: str = "resp") -> torch.Tensor:
    """(N, R, T) or (B, N, R, T) -> (B, N, R, T); ValueError otherwise."""
    if resp.ndim == 3:
        resp = resp.unsqueeze(0)
    elif resp.ndim != 4:
        raise ValueError(
            f"expected {name} of shape (B, N, R, T) or (N, R, T), got {tuple(resp.shape)}"
        )
    if resp.numel() == 0:
        raise ValueError(f"expected a non-empty {name} of shape (B, N, R, T), got {tuple(resp.shape)}")
    return resp


def _pair_4d(pred: torch.Tensor, resp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and batch ``pred`` (B, N, T) | (N, T) against ``resp`` (B, N, R, T) | (N, R, T)."""
    if pred.ndim == 2 and resp.ndim == 3:
        pred, resp = pred.unsqueeze(0), resp.unsqueeze(0)
    elif not (pred.ndim == 3 and resp.ndim == 4):
        raise ValueError(
            "expected pred (B, N, T) with resp (B, N, R, T), or pred (N, T) with resp "
            f"(N, R, T); got pred {tuple(pred.shape)} and resp {tuple(resp.shape)}"
        )
    resp = _resp_4d(resp)
    B, N, R, T = resp.shape
    if tuple(pred.shape) != (B, N, T):
        raise ValueError(
            f"expected pred of shape (B, N, T) = {(B, N, T)} to match resp of shape "
            f"(B, N, R, T) = {(B, N, R, T)}, got {tuple(pred.shape)}"
        )
    if pred.device != resp.device:
        raise ValueError(f"expected pred and resp on the same device, got {pred.device} and {resp.device}")
    return pred, resp


def _check_reduction(reduction: str, allowed=_REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"expected reduction in {allowed}, got {reduction!r}")


def _warn(name: str, flags: torch.Tensor, what: str) -> None:
    """Log one warning naming how many (and which) neurons ``flags`` (N,) marks."""
    n_bad = int(flags.sum())
    if n_bad:
        idx = torch.nonzero(flags).flatten()[:_N_LISTED].tolist()
        more = ", ..." if n_bad > _N_LISTED else ""
        logger.warning(
            "%s: %d of %d neurons: %s (neuron indices %s%s)",
            name, n_bad, flags.numel(), what, ", ".join(map(str, idx)), more,
        )


class _Output:
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


# ----------------------------------------------------------------------------------------
# shared statistics of a recording (stimuli concatenated along time)
# ----------------------------------------------------------------------------------------
def _masked_extremes_equal(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(N, L), (N, L) bool -> (N,) bool: x takes a single value over the valid bins."""
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=x.device)
    return torch.where(valid, x, -inf).amax(1) == torch.where(valid, x, inf).amin(1)


class _Recording:
    """Per-neuron statistics of ``resp`` (B, N, R, T), stimuli concatenated along time.

    The trials are kept in the caller's (B, N, R, T) memory order (no transposed copy);
    per-neuron summaries are (N, B, ...) and "rows" (N, L) with L = B * T are the
    concatenated stimuli. Trial-level arrays stay in the input dtype; everything
    reduced over repeats or bins is float64.

    Three layouts of missing data, from fastest to slowest:
    - ``"complete"``: no NaN at all;
    - ``"structured"``: each repeat of each stimulus is either fully valid or fully NaN
      on that stimulus's non-padding bins (padding bins and missing whole trials);
    - ``"general"``: missing cells anywhere (per-bin computations).
    In the complete and structured layouts every statistic (noise, split halves, trial
    correlations) comes from one set of per-stimulus second moments (:attr:`stim_moments`,
    one batched matrix product over the trials). Repeat indices that are NaN everywhere
    (padding of the R axis) are removed first.
    """

    def __init__(self, resp4: torch.Tensor, layout: str | None = None):
        y = resp4.contiguous()  # (B, N, R, T): a no-op for the usual contiguous input
        self.dtype = y.dtype
        s = y.sum(2)  # (B, N, T), NaN where any repeat is missing
        if layout in (None, "complete") and not bool(torch.isnan(s).any()):
            self.layout = "complete"
            self._y, self._missing = y, None
            B, N, R, T = y.shape
            self.count = torch.full((N, B, T), R, dtype=torch.int32, device=y.device)
            self.trial_valid = torch.ones((N, B, R), dtype=torch.bool, device=y.device)
            sum_r = s.permute(1, 0, 2)
        else:
            missing = torch.isnan(y)
            miss = missing.to(y.dtype)  # float counts: faster to sum than bool, exact
            cells = y.shape[3] - miss.sum(3)  # (B, N, R) valid bins per trial
            keep = (cells > 0).any(1).any(0)  # (R,) repeat indices with any data
            if not bool(keep.all()):
                y, missing, miss = y[:, :, keep], missing[:, :, keep], miss[:, :, keep]
                cells = cells[:, :, keep]
            self._y, self._missing = y, missing
            count = y.shape[2] - miss.sum(2)  # (B, N, T) valid repeats per bin
            del miss
            self.count = count.to(torch.int32).permute(1, 0, 2)  # (N, B, T)
            cells = cells.to(torch.int32).permute(1, 0, 2)  # (N, B, R)
            n_stim_bins = (self.count > 0).sum(2, dtype=torch.int32)  # (N, B)
            self.trial_valid = cells > 0
            structured = bool(((cells == 0) | (cells == n_stim_bins.unsqueeze(2))).all())
            self.layout = "structured" if structured and layout != "general" else "general"
            sum_r = torch.nansum(y, 2).permute(1, 0, 2)
        self.B, self.N, self.R, self.T = self._y.shape
        self.valid3 = self.count > 0  # (N, B, T) not padding
        self.stim_bins = self.valid3.sum(2)  # (N, B) valid bins per stimulus
        self.n_bins = self.stim_bins.sum(1)  # (N,)
        self.valid = self.valid3.reshape(self.N, -1)  # (N, L)
        self.multi = (self.count >= 2).reshape(self.N, -1)  # (N, L) bins with a noise estimate
        self.single_repeat = ~self.multi.any(1)  # (N,) no bin with two valid repeats
        self.too_short = self.n_bins < 2  # (N,)
        self._ybar_w = sum_r / self.count.clamp_min(1).to(self.dtype)  # (N, B, T)

    # -- trials --------------------------------------------------------------------------
    @cached_property
    def mask_bn(self) -> torch.Tensor | None:
        """(B, N, R, T) bool valid cells, None when nothing is missing."""
        return None if self._missing is None else ~self._missing

    @cached_property
    def kappa(self) -> torch.Tensor:
        """(N,) mean response of each neuron over its valid bins, in the input dtype."""
        return (self.ybar.sum(1) / self.nb).to(self.dtype)

    # -- trial average -------------------------------------------------------------------
    @cached_property
    def ybar(self) -> torch.Tensor:
        """(N, L) float64 trial average (nanmean over R), 0 at padding."""
        return self._ybar_w.reshape(self.N, -1).double()

    @cached_property
    def nb(self) -> torch.Tensor:
        """(N,) float64 number of valid bins, at least 1 (to divide by)."""
        return self.n_bins.double().clamp_min(1)

    @cached_property
    def ybar_centred(self) -> torch.Tensor:
        """(N, L) float64 trial average minus its mean over valid bins, 0 at padding."""
        mean = self.ybar.sum(1) / self.nb
        return torch.where(self.valid, self.ybar - mean[:, None], 0.0)

    @cached_property
    def p_ybar(self) -> torch.Tensor:
        """(N,) P(ybar): power (population variance) of the trial average."""
        return self.ybar_centred.square().sum(1) / self.nb

    @cached_property
    def ybar_constant(self) -> torch.Tensor:
        """(N,) bool: the trial average takes one value over the valid bins."""
        return _masked_extremes_equal(self.ybar, self.valid)

    # -- noise ---------------------------------------------------------------------------
    @cached_property
    def _noise(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(noise power (N,), noise power of the trial average (N,)), NaN-free inputs.

        Repeat offsets c_r = mean over bins with >= 2 valid repeats of (y_rt - ybar_t);
        within-bin scatter of offset-corrected trials S_t = sum_r (e_rt - mean_r e_rt)^2,
        e_rt = y_rt - ybar_t - c_r over valid repeats; sigma2_t = S_t / (R_t - 1), and
        bins with a single valid repeat get the pooled sum_t S_t / sum_t (R_t - 1).
        Returns mean_t sigma2_t and mean_t sigma2_t / R_t over the valid bins.
        """
        if self.layout == "general":
            return self._noise_per_bin()
        # R_t is constant within each stimulus: per-stimulus sums are enough, and they
        # follow from the per-stimulus moments (G, S) of the valid repeats: with n valid
        # repeats, d_r = y_r - ybar has sum_t d_r = S_r - sum_q S_q / n and
        # sum_t d_r^2 = G_rr - 2 sum_q G_rq / n + sum_qq' G_qq' / n^2 (rows of missing
        # trials are 0 in G and S, and kept out by v below).
        G, S = self.stim_moments  # (N, B, R, R), (N, B, R)
        v0 = self.trial_valid.double()  # (N, B, R)
        r_nb = v0.sum(2)  # (N, B) valid repeats per stimulus
        inv_r = 1.0 / r_nb.clamp_min(1.0)
        d1 = v0 * (S - (S.sum(2) * inv_r).unsqueeze(2))  # (N, B, R)
        row = G.sum(3)  # (N, B, R)
        d2 = v0 * (torch.diagonal(G, dim1=2, dim2=3) - 2.0 * inv_r.unsqueeze(2) * row
                   + (row.sum(2) * inv_r.square()).unsqueeze(2))
        l_nb = self.stim_bins.double()  # (N, B)
        multi = r_nb >= 2  # (N, B)
        v = v0 * multi.unsqueeze(2)  # (N, B, R)
        c = (d1 * v).sum(1) / (v * l_nb.unsqueeze(2)).sum(1).clamp_min(1.0)  # (N, R)
        c_b = c.unsqueeze(1)
        scatter = (v * (d2 - 2.0 * c_b * d1 + l_nb.unsqueeze(2) * c_b.square())).sum(2)
        scatter = scatter - l_nb * (v * c_b).sum(2).square() / r_nb.clamp_min(1.0)
        scatter = torch.where(multi, scatter.clamp_min(0.0), 0.0)  # (N, B)
        dof = torch.where(multi, l_nb * (r_nb - 1.0), 0.0)
        pooled = scatter.sum(1) / dof.sum(1)  # (N,) NaN for single-repeat neurons
        sigma2 = torch.where(multi, scatter / dof.clamp_min(1.0), pooled[:, None])  # (N, B)
        sigma2 = torch.where(l_nb > 0, sigma2, 0.0)
        noise = (l_nb * sigma2).sum(1) / self.nb
        noise_of_mean = (l_nb * sigma2 / r_nb.clamp_min(1.0)).sum(1) / self.nb
        return noise, noise_of_mean

    def _noise_per_bin(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Same estimator as :attr:`_noise`, bin by bin (any pattern of missing cells).

        Works on the trials in their own (B, N, R, T) order; the sums over repeats
        weighted by the offsets c_r are batched matrix products.
        """
        dt = self.dtype
        B, N, R, T = self._y.shape
        cnt = self.count.permute(1, 0, 2)  # (B, N, T) valid repeats per bin
        multi = cnt >= 2
        inf = float("inf")
        # d = y - ybar on valid cells, 0 at missing ones (NaN exactly there)
        d = self._y - self._ybar_w.permute(1, 0, 2).unsqueeze(2)
        d.nan_to_num_(nan=0.0, posinf=inf, neginf=-inf)
        mf = self.mask_bn.to(dt).view(B * N, R, T)
        # c_r: mean of d over the cells of bins with >= 2 valid repeats (d = 0 if R_t = 1)
        n_multi = torch.bmm(mf, multi.to(dt).view(B * N, T, 1)).view(B, N, R).sum(0)  # (N, R)
        c = d.sum(3).sum(0) / n_multi.clamp_min(1)  # (N, R)
        cb = c.unsqueeze(0).expand(B, N, R).reshape(B * N, 1, R)
        sum_d2 = torch.linalg.vecdot(d, d, dim=2)  # (B, N, T)
        sum_cd = torch.bmm(cb, d.view(B * N, R, T)).view(B, N, T)
        del d
        sums_c = torch.bmm(torch.cat([cb, cb.square()], 1), mf).view(B, N, 2, T)
        del mf
        sum_c, sum_c2 = sums_c[:, :, 0], sums_c[:, :, 1]
        scatter = sum_d2 - 2.0 * sum_cd + sum_c2 - sum_c.square() / cnt.clamp_min(1).to(dt)
        scatter = torch.where(multi, scatter.double().clamp_min(0.0), 0.0)
        scatter = scatter.permute(1, 0, 2).reshape(self.N, -1)  # (N, L)
        cnt = self.count.reshape(self.N, -1).double()
        multi = self.multi
        dof = torch.where(multi, cnt - 1.0, 0.0)
        pooled = scatter.sum(1) / dof.sum(1)
        sigma2 = torch.where(multi, scatter / dof.clamp_min(1.0), pooled[:, None])
        sigma2 = torch.where(self.valid, sigma2, 0.0)
        noise = sigma2.sum(1) / self.nb
        noise_of_mean = (sigma2 / cnt.clamp_min(1.0)).sum(1) / self.nb
        return noise, noise_of_mean

    @cached_property
    def noise_power(self) -> torch.Tensor:
        """(N,) mean over valid bins of the single-trial noise variance sigma2_t."""
        return torch.where(self.single_repeat | self.too_short, float("nan"), self._noise[0])

    @cached_property
    def noise_of_mean(self) -> torch.Tensor:
        """(N,) mean_t sigma2_t / R_t: expected noise power left in the trial average."""
        return torch.where(self.single_repeat | self.too_short, float("nan"), self._noise[1])

    @cached_property
    def signal_power(self) -> torch.Tensor:
        """(N,) SP = P(ybar) - mean_t sigma2_t / R_t (NaN: single repeat or < 2 bins)."""
        return self.p_ybar - self.noise_of_mean

    # -- single trials: per-stimulus second moments (complete / structured layouts) -----
    @cached_property
    def stim_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(G (N, B, R, R), S (N, B, R)) float64 per-stimulus sums of y_r y_q and y_r.

        Trials are shifted by the neuron's mean response first (correlations do not
        change; it avoids cancellation); missing trials and padding contribute 0. One
        batched matrix product over the (B, N, R, T) trials in their own memory order;
        the products accumulate in the input dtype and are returned as float64.
        """
        B, N, R, T = self._y.shape
        yk = self._y - self.kappa[None, :, None, None]
        if self._missing is not None:  # NaN exactly at the missing cells; inf stays inf
            yk.nan_to_num_(nan=0.0, posinf=float("inf"), neginf=float("-inf"))
        flat = yk.view(B * N, R, T)
        G = torch.bmm(flat, flat.transpose(1, 2)).view(B, N, R, R).permute(1, 0, 2, 3).double()
        S = yk.sum(3).permute(1, 0, 2).double()
        return G, S

    @cached_property
    def centred_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, R, L) trials minus the neuron's mean response, 0 at missing cells, and
        their (N, R, L) bool mask (the general layout's per-bin computations share them)."""
        N, B, R, T = self._y.permute(1, 0, 2, 3).shape
        mask = self.mask_bn.permute(1, 2, 0, 3).reshape(N, R, B * T)
        rows = (self._y - self.kappa[None, :, None, None]).permute(1, 2, 0, 3).reshape(N, R, B * T)
        return rows.masked_fill_(~mask, 0.0), mask

    @cached_property
    def trial_corr(self) -> torch.Tensor:
        """(N, R, R) float64 pairwise-complete correlation of every pair of repeats."""
        n, sx, sxx, sxy = _pair_moments(self)
        return _corr_from_moments(n, sx, sx.transpose(1, 2), sxx, sxx.transpose(1, 2), sxy)


class _Prediction:
    """``pred`` (B, N, T) as float64 rows (N, L) with masks relative to a recording."""

    def __init__(self, pred3: torch.Tensor, rec: _Recording):
        B, N, T = pred3.shape
        p = pred3.permute(1, 0, 2).reshape(N, B * T).double()
        finite = torch.isfinite(p)
        self.bad = (~finite & rec.valid).any(1)  # (N,) non-finite where resp is valid
        self.p = torch.where(rec.valid & finite, p, 0.0)
        self.constant = _masked_extremes_equal(self.p, rec.valid)
        mean = self.p.sum(1) / rec.nb
        pc = torch.where(rec.valid, self.p - mean[:, None], 0.0)
        self.var = pc.square().sum(1) / rec.nb  # (N,) Var(pred)
        self.cov = (pc * rec.ybar_centred).sum(1) / rec.nb  # (N,) cov(pred, ybar)
        self.mse = torch.where(rec.valid, self.p - rec.ybar, 0.0).square().sum(1) / rec.nb


def _setup_pair(pred, resp):
    p, p_np = _as_tensor(pred, "pred")
    r, r_np = _as_tensor(resp, "resp")
    p, r = _pair_4d(p, r)
    rec = _Recording(r)
    return _Prediction(p, rec), rec, _Output(r.dtype, p_np or r_np)


def _setup_resp(resp):
    r, r_np = _as_tensor(resp, "resp")
    r = _resp_4d(r)
    return _Recording(r), _Output(r.dtype, r_np)


_SINGLE_REPEAT = "single repeat: no noise ceiling, report cc_raw; value set to NaN"
_TOO_SHORT = "fewer than 2 valid (non-padding) bins; value set to NaN"
_BAD_PRED = "prediction is NaN/inf at valid bins; value set to NaN"


# ----------------------------------------------------------------------------------------
# metric values (float64, (N,)) from prepared statistics
# ----------------------------------------------------------------------------------------
def _cc_raw_values(pr: _Prediction, rec: _Recording, name: str) -> torch.Tensor:
    r = pr.cov / torch.sqrt(pr.var * rec.p_ybar)
    zero = pr.constant | rec.ybar_constant
    r = torch.where(zero, 0.0, r)
    nan = rec.too_short | pr.bad
    _warn(name, pr.constant & ~nan, "constant prediction over the valid bins; correlation set to 0")
    _warn(name, rec.ybar_constant & ~pr.constant & ~nan,
          "constant trial-averaged response over the valid bins; correlation set to 0")
    _warn(name, rec.too_short, _TOO_SHORT)
    _warn(name, pr.bad & ~rec.too_short, _BAD_PRED)
    return torch.where(nan, float("nan"), r)


def _signal_power_values(rec: _Recording, name: str) -> torch.Tensor:
    _warn(name, rec.single_repeat & ~rec.too_short, _SINGLE_REPEAT)
    _warn(name, rec.too_short, _TOO_SHORT)
    return rec.signal_power


def _noise_power_values(rec: _Recording, name: str) -> torch.Tensor:
    _warn(name, rec.single_repeat & ~rec.too_short, _SINGLE_REPEAT)
    _warn(name, rec.too_short, _TOO_SHORT)
    return rec.noise_power


def _ceiling_flags(rec: _Recording, name: str) -> torch.Tensor:
    """(N,) bool: no usable noise ceiling (single repeat, < 2 bins, SP <= 0); warns."""
    sp = rec.signal_power
    no_sp = rec.single_repeat | rec.too_short
    low = ~no_sp & ~(sp > 0)
    _warn(name, rec.single_repeat & ~rec.too_short, _SINGLE_REPEAT)
    _warn(name, rec.too_short, _TOO_SHORT)
    _warn(name, low, "signal power <= 0 (no reliable stimulus-driven signal); value set to NaN")
    return no_sp | low


def _cc_norm_values(pr: _Prediction, rec: _Recording, name: str) -> torch.Tensor:
    nan = _ceiling_flags(rec, name)
    r = pr.cov / torch.sqrt(pr.var * rec.signal_power.clamp_min(0.0))
    _warn(name, pr.constant & ~nan & ~pr.bad, "constant prediction over the valid bins; cc_norm set to 0")
    _warn(name, pr.bad & ~nan, _BAD_PRED)
    r = torch.where(pr.constant, 0.0, r)
    return torch.where(nan | pr.bad, float("nan"), r)


def _cc_max_from_sp_values(rec: _Recording, name: str) -> torch.Tensor:
    nan = _ceiling_flags(rec, name)
    return torch.where(nan, float("nan"), torch.sqrt(rec.signal_power.clamp_min(0.0) / rec.p_ybar))


def _fev_values(pr: _Prediction, rec: _Recording, name: str) -> torch.Tensor:
    nan = _ceiling_flags(rec, name)
    _warn(name, pr.bad & ~nan, _BAD_PRED)
    out = 1.0 - (pr.mse - rec.noise_of_mean) / rec.signal_power
    return torch.where(nan | pr.bad, float("nan"), out)


def _split_masks(R: int, n_splits: int, seed: int, device) -> torch.Tensor:
    """(S, R) float64 indicator of half A for ``n_splits`` random half-splits (seeded)."""
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.rand(n_splits, R, generator=gen, dtype=torch.float64).argsort(1)
    half = torch.zeros(n_splits, R, dtype=torch.float64)
    half.scatter_(1, order[:, : R // 2], 1.0)
    return half.to(device)


_REL_TOL = 1e-12  # a variance below this fraction of the mean square counts as 0


def _corr_from_moments(n, sa, sb, saa, sbb, sab) -> torch.Tensor:
    """Pearson correlation from sums over n points; NaN where undefined."""
    nn_ = n.clamp_min(1.0)
    cov = sab / nn_ - sa * sb / nn_.square()
    va = saa / nn_ - (sa / nn_).square()
    vb = sbb / nn_ - (sb / nn_).square()
    ok = (n >= 2) & (va > _REL_TOL * saa.abs() / nn_) & (vb > _REL_TOL * sbb.abs() / nn_)
    ok = ok & (va > 0) & (vb > 0)
    return torch.where(ok, cov / torch.sqrt(va.clamp_min(1e-300) * vb.clamp_min(1e-300)), float("nan"))


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


def _half_corr_moments(rec: _Recording, half: torch.Tensor) -> torch.Tensor:
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
    return _corr_from_moments(*sums)


def _sum64(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last dimension, returned as float64.

    A float32 ``x`` is summed in float32 (torch's CPU reduction is a cascade sum, so the
    error grows like log(n), at the precision of the input) and then converted: asking
    ``sum`` for a float64 result converts every element first and is ~30x slower.
    """
    return x.sum(-1).double()


def _half_corr_per_bin(rec: _Recording, half: torch.Tensor) -> torch.Tensor:
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
        chunk = max(1, _SPLIT_CHUNK_ELEMENTS // max(1, N * lp))
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
    return _corr_from_moments(*sums)


def _cc_max_values(rec: _Recording, n_splits: int, seed: int, name: str) -> torch.Tensor:
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise ValueError(f"expected n_splits to be a positive integer, got {n_splits!r}")
    nan = rec.single_repeat | rec.too_short
    _warn(name, rec.single_repeat & ~rec.too_short, _SINGLE_REPEAT)
    _warn(name, rec.too_short, _TOO_SHORT)
    if rec.R < 2:
        return torch.full((rec.N,), float("nan"), dtype=torch.float64, device=rec._y.device)
    half = _split_masks(rec.R, int(n_splits), seed, rec._y.device)
    if rec.layout == "general":
        rho = _half_corr_per_bin(rec, half)
    else:
        rho = _half_corr_moments(rec, half)
    rho_half = torch.nanmean(rho, 1)  # (N,)
    low = ~nan & ~(rho_half > 0)
    _warn(name, low, "split-half correlation <= 0 or undefined (no reliable signal); value set to NaN")
    out = torch.sqrt(2.0 / (1.0 + 1.0 / rho_half.clamp_min(1e-300)))
    return torch.where(nan | low, float("nan"), out)


def _pair_moments(rec: _Recording):
    """Pairwise-complete sums for every pair of repeats, each (N, R, R) float64:
    n (bins where both are valid), sx[r, q] (sum of y_r there), sxx[r, q] (of y_r^2),
    sxy (of y_r y_q)."""
    if rec.layout == "complete":
        G, S = rec.stim_moments
        G, S = G.sum(1), S.sum(1)
        n = rec.n_bins.double()[:, None, None].expand_as(G)
        return n, S.unsqueeze(2).expand_as(G), torch.diagonal(G, dim1=1, dim2=2).unsqueeze(2).expand_as(G), G
    if rec.layout == "structured":
        # G and S are 0 for missing trials: only the other member of a pair needs a mask
        G, S = rec.stim_moments  # (N, B, R, R), (N, B, R)
        v = rec.trial_valid.double()  # (N, B, R)
        vt = v.transpose(1, 2)  # (N, R, B)
        n = torch.bmm(vt * rec.stim_bins.double().unsqueeze(1), v)
        sx = torch.bmm(S.transpose(1, 2), v)
        sxx = torch.bmm(torch.diagonal(G, dim1=2, dim2=3).transpose(1, 2), v)
        return n, sx, sxx, G.sum(1)
    xc, mask = rec.centred_rows  # (N, R, L)
    mf = mask.to(rec.dtype)
    mt = mf.transpose(1, 2)
    n = torch.bmm(mf, mt).double()
    sx = torch.bmm(xc, mt).double()
    sxx = torch.bmm(xc.square(), mt).double()
    sxy = torch.bmm(xc, xc.transpose(1, 2)).double()
    return n, sx, sxx, sxy


def _trial_corr_values(rec: _Recording, name: str) -> torch.Tensor:
    """(N,) mean over pairs of distinct repeats of their correlation (pairwise-complete)."""
    rho = rec.trial_corr  # (N, R, R)
    off = ~torch.eye(rec.R, dtype=torch.bool, device=rho.device)
    ok = ~torch.isnan(rho) & off
    n_ok = ok.sum((1, 2))
    out = torch.where(ok, rho, 0.0).sum((1, 2)) / n_ok.clamp_min(1)
    none = n_ok == 0
    nan = rec.single_repeat | rec.too_short
    _warn(name, rec.single_repeat & ~rec.too_short,
          "single repeat: no trial-to-trial correlation (no noise ceiling, report cc_raw); value set to NaN")
    _warn(name, rec.too_short, _TOO_SHORT)
    _warn(name, none & ~nan, "no pair of non-constant repeats; value set to NaN")
    return torch.where(nan | none, float("nan"), out)


def _ttrc_values(pr: _Prediction, rec: _Recording, name: str) -> torch.Tensor:
    raw = _cc_raw_values(pr, rec, name)
    ttc = _trial_corr_values(rec, name)
    low = ~torch.isnan(ttc) & ~(ttc > 0)
    _warn(name, low, "mean trial-to-trial correlation <= 0; value set to NaN")
    return torch.where(low, float("nan"), raw / torch.sqrt(ttc.clamp_min(1e-300)))


# ----------------------------------------------------------------------------------------
# public metrics
# ----------------------------------------------------------------------------------------
def cc_raw(pred, resp, reduction: str = "none"):
    """Pearson correlation between the prediction and the trial-averaged response.

    The trial average is the NaN-aware mean over repeats; stimuli are concatenated along
    time and padding bins (all repeats NaN) are dropped from both ``pred`` and ``resp``
    before correlating.

    Args:
        pred: prediction ``(B, N, T)`` or ``(N, T)``.
        resp: recording ``(B, N, R, T)`` or ``(N, R, T)``, NaN = missing / padding.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> NaN-aware mean over neurons.

    Returns:
        ``(N,)`` (or a scalar) in ``[-1, 1]``. A constant prediction (or a constant trial
        average) gives 0 with a warning; a neuron with fewer than 2 valid bins or a
        non-finite prediction at a valid bin gives NaN with a warning.
    """
    _check_reduction(reduction)
    with torch.no_grad():
        pr, rec, out = _setup_pair(pred, resp)
        return out(_cc_raw_values(pr, rec, "cc_raw"), reduction, "cc_raw")


def signal_power(resp, reduction: str = "none"):
    """Signal power (Sahani & Linden 2003): variance of the stimulus-driven response.

    With R valid repeats in every bin this is exactly
    ``SP = (R P(ybar) - mean_r P(y_r)) / (R - 1)
         = (Var(sum_r y_r) - sum_r Var(y_r)) / (R (R - 1))``,
    with P the power (population variance over the valid bins of the concatenated
    stimuli), ybar the trial average and y_r single trials.

    Missing trials (R_t valid repeats in bin t) use the estimator that reduces to the
    formula above when nothing is missing:

    1. repeat offsets ``c_r``: mean over bins with R_t >= 2 of ``y_rt - ybar_t``
       (the formula's per-trial variances ignore a trial's mean level; so does this);
    2. within-bin scatter of the offset-corrected trials ``e_rt = y_rt - c_r``:
       ``S_t = sum_r (e_rt - mean_r e_rt)^2`` and single-trial noise variance
       ``sigma2_t = S_t / (R_t - 1)``; a bin with a single valid repeat gets the pooled
       ``sum_t S_t / sum_t (R_t - 1)``;
    3. ``SP = P(ybar) - mean_t(sigma2_t / R_t)`` (the noise power left in the average).

    Stimuli are concatenated along time; padding bins are dropped.

    Args:
        resp: ``(B, N, R, T)`` or ``(N, R, T)``, NaN = missing / padding.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> NaN-aware mean over neurons.

    Returns:
        ``(N,)`` signal power (can be slightly negative for noise-only neurons). NaN with
        a warning for a neuron without any bin holding two valid repeats (single repeat).
    """
    _check_reduction(reduction)
    with torch.no_grad():
        rec, out = _setup_resp(resp)
        return out(_signal_power_values(rec, "signal_power"), reduction, "signal_power")


def noise_power(resp, reduction: str = "none"):
    """Noise power (Sahani & Linden 2003): single-trial variance not driven by the stimulus.

    With R valid repeats in every bin, ``NP = mean_r P(y_r) - SP``; in general (see
    :func:`signal_power`) ``NP = mean_t sigma2_t``, the mean single-trial noise variance,
    which equals the former when nothing is missing. Stimuli are concatenated along
    time; padding bins are dropped.

    Args:
        resp: ``(B, N, R, T)`` or ``(N, R, T)``, NaN = missing / padding.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> NaN-aware mean over neurons.

    Returns:
        ``(N,)`` noise power, NaN with a warning for single-repeat neurons.
    """
    _check_reduction(reduction)
    with torch.no_grad():
        rec, out = _setup_resp(resp)
        return out(_noise_power_values(rec, "noise_power"), reduction, "noise_power")


def cc_norm(pred, resp, reduction: str = "none"):
    """Normalised correlation coefficient (Schoppe et al. 2016).

    ``cc_norm = cov(pred, ybar) / sqrt(Var(pred) * SP)``, where the covariance, the
    variance and the signal power SP (:func:`signal_power`) are ALL computed on the same
    concatenated stimuli (stimuli concatenated along time, padding dropped). Equivalently
    ``cc_raw / cc_max_from_sp``. Invariant to ``a * pred + b`` with ``a > 0``. Not clipped:
    noise can push a near-perfect model slightly above 1.

    Args:
        pred: prediction ``(B, N, T)`` or ``(N, T)``.
        resp: recording ``(B, N, R, T)`` or ``(N, R, T)``, NaN = missing / padding.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> NaN-aware mean over neurons.

    Returns:
        ``(N,)`` or a scalar. Edge cases, each with a logged warning: constant prediction
        -> 0; single repeat -> NaN (no noise ceiling: report :func:`cc_raw`); SP <= 0 ->
        NaN; fewer than 2 valid bins or a non-finite prediction -> NaN.
    """
    _check_reduction(reduction)
    with torch.no_grad():
        pr, rec, out = _setup_pair(pred, resp)
        return out(_cc_norm_values(pr, rec, "cc_norm"), reduction, "cc_norm")


def cc_max(resp, n_splits: int = 126, seed: int = 0, reduction: str = "none"):
    """Noise ceiling from split-half correlations (Hsu et al. 2004, as in Schoppe et al.).

    For each of ``n_splits`` random half-splits of the repeats (drawn with a seeded
    generator, not enumerated; half A has ``R // 2`` repeats, half B the rest), correlate
    the two half-averages over the concatenated stimuli; ``rho_half`` is the mean over
    splits and ``cc_max = sqrt(2 / (1 + 1 / rho_half))`` (Spearman-Brown: the expected
    correlation of the full trial average with the noise-free response). With missing
    trials, each half is averaged over its valid repeats in each bin, and a bin where a
    half has none is dropped for that split. Exact for even R; for odd R the halves differ
    by one repeat and the correction is approximate. Then ``cc_raw / cc_max`` estimates
    ``cc_norm``.

    Args:
        resp: ``(B, N, R, T)`` or ``(N, R, T)``, NaN = missing / padding.
        n_splits: number of random half-splits.
        seed: seed of the splits (the result is deterministic given the seed).
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> NaN-aware mean over neurons.

    Returns:
        ``(N,)`` ceiling in ``(0, 1]``; NaN with a warning for single-repeat neurons and
        for ``rho_half <= 0``.
    """
    _check_reduction(reduction)
    with torch.no_grad():
        rec, out = _setup_resp(resp)
        return out(_cc_max_values(rec, n_splits, seed, "cc_max"), reduction, "cc_max")


def cc_max_from_sp(resp, reduction: str = "none"):
    """Noise ceiling from the signal power: ``sqrt(SP / P(ybar))``.

    SP / P(ybar) estimates the fraction of the trial average's power that is signal, so
    its square root estimates the correlation of the trial average with the noise-free
    response. By construction ``cc_raw / cc_max_from_sp == cc_norm``. Stimuli are
    concatenated along time; padding bins are dropped.

    Args:
        resp: ``(B, N, R, T)`` or ``(N, R, T)``, NaN = missing / padding.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> NaN-aware mean over neurons.

    Returns:
        ``(N,)`` in ``(0, 1]``; NaN with a warning for single repeat or SP <= 0.
    """
    _check_reduction(reduction)
    with torch.no_grad():
        rec, out = _setup_resp(resp)
        return out(_cc_max_from_sp_values(rec, "cc_max_from_sp"), reduction, "cc_max_from_sp")


def mean_trial_correlation(resp, reduction: str = "none"):
    """Mean trial-to-trial correlation (Pennington & David 2023).

    Pearson correlation between every pair of distinct repeats over the concatenated
    stimuli (pairwise-complete: the bins where both repeats are valid), averaged over
    pairs. A pair involving a repeat that is constant over those bins (e.g. a silent
    trial) has no defined correlation and is left out of the average.

    Args:
        resp: ``(B, N, R, T)`` or ``(N, R, T)``, NaN = missing / padding.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> NaN-aware mean over neurons.

    Returns:
        ``(N,)``; NaN with a warning for a single repeat or no usable pair.
    """
    _check_reduction(reduction)
    with torch.no_grad():
        rec, out = _setup_resp(resp)
        name = "mean_trial_correlation"
        return out(_trial_corr_values(rec, name), reduction, name)


def ttrc(pred, resp, reduction: str = "none"):
    """Trial-to-trial-normalised correlation (Pennington & David 2023).

    ``ttrc = cc_raw / sqrt(mean_trial_correlation)``: the raw correlation with the trial
    average divided by the square root of the mean correlation between single repeats
    (see :func:`mean_trial_correlation`). Stimuli are concatenated along time; padding
    bins are dropped. Note the scale: sqrt(mean trial correlation) is the ceiling of a
    SINGLE-trial correlation, while cc_raw is computed against the average of R trials,
    so a noise-free model scores about sqrt((P(s) + NP) / (P(s) + NP / R)) >= 1 here
    (P(s) the signal power, NP the noise power); for a ceiling-corrected score of the
    trial average use :func:`cc_norm` or ``cc_raw / cc_max``.

    Args:
        pred: prediction ``(B, N, T)`` or ``(N, T)``.
        resp: recording ``(B, N, R, T)`` or ``(N, R, T)``, NaN = missing / padding.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> NaN-aware mean over neurons.

    Returns:
        ``(N,)``; NaN with a warning for a single repeat or a mean trial correlation <= 0.
    """
    _check_reduction(reduction)
    with torch.no_grad():
        pr, rec, out = _setup_pair(pred, resp)
        return out(_ttrc_values(pr, rec, "ttrc"), reduction, "ttrc")


def fev(pred, resp, reduction: str = "none"):
    """Fraction of explainable variance explained.

    ``fev = 1 - (MSE(pred, ybar) - N_bar) / SP`` with MSE the mean squared error to the
    trial average over the valid bins, ``N_bar = mean_t sigma2_t / R_t`` the noise power
    left in the trial average and SP = P(ybar) - N_bar (see :func:`signal_power`), all on
    the concatenated stimuli (padding dropped). A constant prediction equal to the mean
    response scores exactly 0; the noise-free response scores about 1. Unlike the
    correlation metrics this is NOT invariant to rescaling or offsetting ``pred``.

    Args:
        pred: prediction ``(B, N, T)`` or ``(N, T)``, in the units of ``resp``.
        resp: recording ``(B, N, R, T)`` or ``(N, R, T)``, NaN = missing / padding.
        reduction: ``"none"`` -> ``(N,)``; ``"mean"`` -> NaN-aware mean over neurons.

    Returns:
        ``(N,)`` (can be negative); NaN with a warning for a single repeat or SP <= 0.
    """
    _check_reduction(reduction)
    with torch.no_grad():
        pr, rec, out = _setup_pair(pred, resp)
        return out(_fev_values(pr, rec, "fev"), reduction, "fev")


def score(pred, resp, reduction: str = "none", n_splits: int = 126, seed: int = 0) -> dict:
    """All metrics at once, sharing the work (one pass over the recording).

    Args:
        pred: prediction ``(B, N, T)`` or ``(N, T)``.
        resp: recording ``(B, N, R, T)`` or ``(N, R, T)``, NaN = missing / padding.
        reduction: ``"none"`` -> values ``(N,)``; ``"mean"`` -> NaN-aware means.
        n_splits, seed: as in :func:`cc_max`.

    Returns:
        dict with keys ``cc_raw, cc_norm, cc_max, cc_max_from_sp, ttrc,
        mean_trial_correlation, fev, signal_power, noise_power``, each as the single
        function would return it.
    """
    _check_reduction(reduction)
    with torch.no_grad():
        pr, rec, out = _setup_pair(pred, resp)
        values = {
            "cc_raw": _cc_raw_values(pr, rec, "cc_raw"),
            "cc_norm": _cc_norm_values(pr, rec, "cc_norm"),
            "cc_max": _cc_max_values(rec, n_splits, seed, "cc_max"),
            "cc_max_from_sp": _cc_max_from_sp_values(rec, "cc_max_from_sp"),
            "ttrc": _ttrc_values(pr, rec, "ttrc"),
            "mean_trial_correlation": _trial_corr_values(rec, "mean_trial_correlation"),
            "fev": _fev_values(pr, rec, "fev"),
            "signal_power": _signal_power_values(rec, "signal_power"),
            "noise_power": _noise_power_values(rec, "noise_power"),
        }
        return {k: out(v, reduction, k) for k, v in values.items()}


# ----------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------
_LOSS_REDUCTIONS = ("mean", "sum", "none")


def _loss_inputs(pred, resp):
    """-> pred (B, N, T), target (B, N, T) with 0 at invalid bins, valid (B, N, T) bool."""
    p, _ = _as_tensor(pred, "pred") if not isinstance(pred, torch.Tensor) else (pred, False)
    if not isinstance(resp, torch.Tensor):
        resp, _ = _as_tensor(resp, "resp")
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
    _check_reduction(reduction, _LOSS_REDUCTIONS)
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
    _check_reduction(reduction, _LOSS_REDUCTIONS)
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
    "poisson": poisson_loss,
    "correlation": correlation_loss,
}


def get_loss(name) -> Callable[..., torch.Tensor]:
    """Loss function by name: ``"mse"``, ``"poisson"`` or ``"correlation"``.

    A callable is returned unchanged. Every loss has the signature
    ``loss(pred (B, N, T), resp (B, N, R, T) | (B, N, T), reduction="mean")``.
    """
    if callable(name):
        return name
    if not isinstance(name, str) or name.lower() not in LOSSES:
        raise ValueError(f"expected a loss name in {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name.lower()]
