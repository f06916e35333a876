"""Per-neuron statistics of a recording and of a prediction (stimuli concatenated along time)."""

from __future__ import annotations

from functools import cached_property

import torch

from .correlation import corr_from_moments, masked_extremes_equal, centre
from .inputs import as_tensor, OutputFormat, pair_4d, resp_4d, reject_inf

class Recording:
    """Per-neuron statistics of ``resp`` (B, N, R, T), stimuli concatenated along time;
    ValueError on +-inf (checked with the first pass over the trials).

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
        finite = bool(torch.isfinite(s.sum()))  # a finite total proves: no NaN, no +-inf
        if not finite:
            reject_inf(y, "resp")  # ValueError on +-inf
        if layout in (None, "complete") and (finite or not bool(torch.isnan(s).any())):
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
        self.all_valid = self.layout == "complete"  # no padding, no missing trial
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
        return centre(self.ybar, None if self.all_valid else self.valid, self.nb)

    @cached_property
    def p_ybar(self) -> torch.Tensor:
        """(N,) P(ybar): power (population variance) of the trial average."""
        return self.ybar_centred.square().sum(1) / self.nb

    @cached_property
    def ybar_constant(self) -> torch.Tensor:
        """(N,) bool: the trial average takes one value over the valid bins."""
        return masked_extremes_equal(self.ybar, None if self.all_valid else self.valid)

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
        # R_t is constant within each stimulus: per-stimulus sums of the deviations from the
        # trial average, d_r = y_r - ybar, are enough (:attr:`deviation_sums`)
        d1, w = self.deviation_sums  # (N, B, R), (N, B)
        v0 = self.trial_valid.double()  # (N, B, R)
        r_nb = v0.sum(2)  # (N, B) valid repeats per stimulus
        l_nb = self.stim_bins.double()  # (N, B)
        multi = r_nb >= 2  # (N, B)
        v = v0 * multi.unsqueeze(2)  # (N, B, R)
        c = (d1 * v).sum(1) / (v * l_nb.unsqueeze(2)).sum(1).clamp_min(1.0)  # (N, R)
        c_b = c.unsqueeze(1)
        scatter = w + (v * (l_nb.unsqueeze(2) * c_b.square() - 2.0 * c_b * d1)).sum(2)
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

    @cached_property
    def deviation_sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(D1 (N, B, R), W (N, B)) float64 per-stimulus sums of the deviations from the trial
        average, d_rt = y_rt - ybar_t: ``D1[n, b, r] = sum_t d_rt`` (0 for a missing trial) and
        ``W[n, b] = sum_r sum_t d_rt^2`` over the valid trials (complete / structured layouts).

        Complete layout: both from the deviations, computed one stimulus at a time (a block
        that stays in cache, no full-size temporary), without the R x R trial moments. Structured layout: from :attr:`stim_moments` (with n valid repeats,
        ``sum_t d_r = S_r - sum_q S_q / n`` and
        ``sum_t d_r^2 = G_rr - 2 sum_q G_rq / n + sum_qq' G_qq' / n^2``; rows of missing trials
        are 0 in G and S).
        """
        v0 = self.trial_valid.double()  # (N, B, R)
        if self.layout == "complete":
            y, ybar = self._y, self._ybar_w  # (B, N, R, T), (N, B, T)
            B, N, R, T = y.shape
            d1 = torch.empty(B, N, R, dtype=y.dtype, device=y.device)
            norm = torch.empty(B, N, dtype=y.dtype, device=y.device)
            dev = torch.empty(N, R, T, dtype=y.dtype, device=y.device)  # one stimulus's deviations
            for b in range(B):
                torch.sub(y[b], ybar[:, b].unsqueeze(1), out=dev)
                torch.sum(dev, 2, out=d1[b])
                torch.linalg.vector_norm(dev.view(N, R * T), dim=1, out=norm[b])
            return d1.permute(1, 0, 2).double(), norm.t().double().square()
        G, S = self.stim_moments  # (N, B, R, R), (N, B, R)
        inv_r = 1.0 / v0.sum(2).clamp_min(1.0)  # (N, B)
        d1 = v0 * (S - (S.sum(2) * inv_r).unsqueeze(2))
        row = G.sum(3)  # (N, B, R)
        d2 = v0 * (torch.diagonal(G, dim1=2, dim2=3) - 2.0 * inv_r.unsqueeze(2) * row
                   + (row.sum(2) * inv_r.square()).unsqueeze(2))
        return d1, d2.sum(2)

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
        return corr_from_moments(n, sx, sx.transpose(1, 2), sxx, sxx.transpose(1, 2), sxy)


class Prediction:
    """``pred`` (B, N, T) as float64 rows (N, L) with masks relative to a recording."""

    def __init__(self, pred3: torch.Tensor, rec: Recording):
        B, N, T = pred3.shape
        p = torch.empty((N, B, T), dtype=torch.float64, device=pred3.device).copy_(pred3.permute(1, 0, 2))
        p = p.view(N, B * T)
        valid = None if rec.all_valid else rec.valid
        if bool(torch.isfinite(p.sum())):  # a finite sum proves every value finite
            self.bad = torch.zeros(N, dtype=torch.bool, device=p.device)
            self.p = p if valid is None else torch.where(valid, p, 0.0)
        else:
            finite = torch.isfinite(p)
            self.bad = (~finite & rec.valid).any(1)  # (N,) non-finite where resp is valid
            self.p = torch.where(rec.valid & finite, p, 0.0)
        self._rec = rec
        self.constant = masked_extremes_equal(self.p, valid)
        pc = centre(self.p, valid, rec.nb)
        self.var = pc.square().sum(1) / rec.nb  # (N,) Var(pred)
        self.cov = (pc * rec.ybar_centred).sum(1) / rec.nb  # (N,) cov(pred, ybar)

    @cached_property
    def mse(self) -> torch.Tensor:
        """(N,) mean squared error of the prediction to the trial average over the valid bins."""
        rec = self._rec
        return torch.where(rec.valid, self.p - rec.ybar, 0.0).square().sum(1) / rec.nb


def setup_pair(pred, resp):
    p, p_np = as_tensor(pred, "pred")
    r, r_np = as_tensor(resp, "resp")
    p, r = pair_4d(p, r, check_inf=False)  # Recording rejects +-inf in its first pass
    rec = Recording(r)
    return Prediction(p, rec), rec, OutputFormat(r.dtype, p_np or r_np)


def setup_recording(resp):
    r, r_np = as_tensor(resp, "resp")
    r = resp_4d(r, check_inf=False)  # Recording rejects +-inf in its first pass
    return Recording(r), OutputFormat(r.dtype, r_np)


SINGLE_REPEAT = "single repeat: no noise ceiling, report cc_raw; value set to NaN"
TOO_SHORT = "fewer than 2 valid (non-padding) bins; value set to NaN"
BAD_PREDICTION = "prediction is NaN/inf at valid bins; value set to NaN"


def _pair_moments(rec: Recording):
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
