"""The public metrics: cc_raw, signal and noise power, cc_norm, cc_max, trial correlations, ttrc, fev, score."""

from __future__ import annotations

import torch

from .ceiling import (
    cc_max_from_sp_values,
    cc_max_values,
    cc_norm_values,
    cc_raw_values,
    fev_values,
    noise_power_values,
    signal_power_values,
    trial_corr_values,
    ttrc_values,
)
from .inputs import check_reduction
from .recording import setup_pair, setup_recording

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
    check_reduction(reduction)
    with torch.no_grad():
        pr, rec, out = setup_pair(pred, resp)
        return out(cc_raw_values(pr, rec, "cc_raw"), reduction, "cc_raw")


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
    check_reduction(reduction)
    with torch.no_grad():
        rec, out = setup_recording(resp)
        return out(signal_power_values(rec, "signal_power"), reduction, "signal_power")


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
    check_reduction(reduction)
    with torch.no_grad():
        rec, out = setup_recording(resp)
        return out(noise_power_values(rec, "noise_power"), reduction, "noise_power")


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
    check_reduction(reduction)
    with torch.no_grad():
        pr, rec, out = setup_pair(pred, resp)
        return out(cc_norm_values(pr, rec, "cc_norm"), reduction, "cc_norm")


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
    check_reduction(reduction)
    with torch.no_grad():
        rec, out = setup_recording(resp)
        return out(cc_max_values(rec, n_splits, seed, "cc_max"), reduction, "cc_max")


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
    check_reduction(reduction)
    with torch.no_grad():
        rec, out = setup_recording(resp)
        return out(cc_max_from_sp_values(rec, "cc_max_from_sp"), reduction, "cc_max_from_sp")


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
    check_reduction(reduction)
    with torch.no_grad():
        rec, out = setup_recording(resp)
        name = "mean_trial_correlation"
        return out(trial_corr_values(rec, name), reduction, name)


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
    check_reduction(reduction)
    with torch.no_grad():
        pr, rec, out = setup_pair(pred, resp)
        return out(ttrc_values(pr, rec, "ttrc"), reduction, "ttrc")


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
    check_reduction(reduction)
    with torch.no_grad():
        pr, rec, out = setup_pair(pred, resp)
        return out(fev_values(pr, rec, "fev"), reduction, "fev")


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
    check_reduction(reduction)
    with torch.no_grad():
        pr, rec, out = setup_pair(pred, resp)
        values = {
            "cc_raw": cc_raw_values(pr, rec, "cc_raw"),
            "cc_norm": cc_norm_values(pr, rec, "cc_norm"),
            "cc_max": cc_max_values(rec, n_splits, seed, "cc_max"),
            "cc_max_from_sp": cc_max_from_sp_values(rec, "cc_max_from_sp"),
            "ttrc": ttrc_values(pr, rec, "ttrc"),
            "mean_trial_correlation": trial_corr_values(rec, "mean_trial_correlation"),
            "fev": fev_values(pr, rec, "fev"),
            "signal_power": signal_power_values(rec, "signal_power"),
            "noise_power": noise_power_values(rec, "noise_power"),
        }
        return {k: out(v, reduction, k) for k, v in values.items()}
