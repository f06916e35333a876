"""Fitted models against the synthetic ground truth: recovery of the AdapTrans time constants.

The synthetic neurons (:mod:`deepstrf_utils.datasets.synthetic`) are LN models on a
ReLU-rectified AdapTrans prefilter whose time constants are the Willmore curve
``tau_w(f) = 500 - 105 log10(f)`` ms times a per-neuron factor in [0.5, 2]
(``ground_truth["tau_factor_on"]`` / ``["tau_factor_off"]``, drawn independently for ON
and OFF). This module measures how well fitted AdapTrans parameters recover them.

Tau factors. A fitted prefilter has one time constant per band; a neuron only constrains
the bands it listens to. For neuron ``n`` and channel ``c`` (0 = ON, 1 = OFF) the fitted
*log factor* is the average over bands of ``log(tau_fit[n, f] / tau_w(cf_f))`` weighted by
the ground-truth STRF energy of that channel per band, ``e[n, c, f] = sum_k strf[n, c, f, k]^2``
normalised to sum to 1 over ``f`` (the bands around the neuron's best frequency). Its
``exp`` is the fitted factor; the truth is the generator's factor. The Willmore
initialisation has factor 1 (log factor 0) for every neuron, so a correlation between
fitted and true factors cannot come from the initialisation; the mean ``|log error|`` of
the fitted factors is also compared with that of the initialisation (``|log true factor|``):
learning must lower it. Only neurons whose channel carries at least ``min_share`` of their
STRF energy, and that are not the deliberately noisy ones, enter a channel's statistics
(an OFF time constant of a neuron without OFF input is not identifiable).

Shapes: N neurons, F bands, C = 2 channels (ON, OFF), K lags.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..adaptrans import willmore_tau_ms

logger = logging.getLogger(__name__)

__all__ = [
    "CHANNELS",
    "channel_band_weights",
    "channel_shares",
    "tau_log_factors",
    "prefilter_parameters",
    "tau_recovery_table",
    "tau_recovery",
    "strf_correlation",
]

#: Channel index -> name of the AdapTrans outputs (``(B, 2, F, T)``: 0 ON, 1 OFF).
CHANNELS = ("on", "off")


def _strf_array(gt_strf) -> np.ndarray:
    s = np.asarray(gt_strf, dtype=np.float64)
    if s.ndim != 4 or s.shape[1] != 2:
        raise ValueError(f"expected ground-truth STRFs of shape (N, 2, F, K) (ON, OFF), got {s.shape}")
    return s


def channel_band_weights(gt_strf) -> np.ndarray:
    """Per neuron and channel, the STRF energy per band normalised to sum 1 over bands.

    gt_strf ``(N, 2, F, K)`` -> ``(N, 2, F)``; a channel without energy gets all-zero weights.
    """
    e = (_strf_array(gt_strf) ** 2).sum(-1)
    total = e.sum(-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def channel_shares(gt_strf) -> np.ndarray:
    """Fraction of each neuron's STRF energy in the ON and the OFF channel: ``(N, 2, F, K)`` -> ``(N, 2)``."""
    e = (_strf_array(gt_strf) ** 2).sum((-1, -2))
    total = e.sum(-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def tau_log_factors(tau_ms, cf_hz, weights) -> np.ndarray:
    """Per-neuron log factor of fitted time constants over the Willmore curve.

    tau_ms ``(N, F)`` fitted time constants of one channel (ms, > 0); cf_hz ``(F,)`` band
    centres (Hz); weights ``(N, F)`` band weights summing to 1 per neuron (e.g.
    ``channel_band_weights(strf)[:, c]``). Returns ``(N,)``:
    ``sum_f weights[n, f] * log(tau_ms[n, f] / tau_w(cf_f))``, NaN where a neuron's weights
    are all zero (e.g. a channel without STRF energy).
    """
    tau = np.asarray(tau_ms, dtype=np.float64)
    cf = np.asarray(cf_hz, dtype=np.float64).ravel()
    wts = np.asarray(weights, dtype=np.float64)
    if tau.ndim != 2 or tau.shape[1] != cf.size:
        raise ValueError(f"expected tau_ms of shape (N, F) with F={cf.size} (the bands of cf_hz), got {tau.shape}")
    if wts.shape != tau.shape:
        raise ValueError(f"expected weights of shape (N, F) = {tau.shape}, like tau_ms, got {wts.shape}")
    if not np.all(tau > 0):
        raise ValueError("expected positive time constants tau_ms (ms)")
    out = (wts * (np.log(tau) - np.log(willmore_tau_ms(cf))[None])).sum(1)
    out[wts.sum(1) <= 0] = np.nan  # a neuron without weight in any band: no factor
    return out


def prefilter_parameters(models, neuron_ids: Sequence | None = None) -> dict[str, np.ndarray]:
    """AdapTrans parameters of fitted single-unit models, stacked per neuron.

    models: a sequence of models (one per neuron, in order) or a dict ``{neuron id: model}``
    (e.g. :func:`deepstrf_utils.runs.profiles.load_fitted`), each with an AdapTrans ``prefilter``
    (attributes ``tau_on_ms``, ``tau_off_ms``, ``w``, each ``(F,)``). With a dict,
    ``neuron_ids`` sets the row order (default: the dict's order; the key ``"population"``
    is skipped). Returns ``{"tau_on_ms", "tau_off_ms", "w": (N, F) float64 arrays}``.
    """
    if isinstance(models, Mapping):
        keys = [k for k in models if k != "population"] if neuron_ids is None else [str(n) for n in neuron_ids]
        missing = [k for k in keys if k not in models]
        if missing:
            raise ValueError(f"expected a fitted model for every neuron id; missing {missing[:5]}")
        models = [models[k] for k in keys]
    models = list(models)
    if not models:
        raise ValueError("expected at least one fitted model")
    out = {}
    for key in ("tau_on_ms", "tau_off_ms", "w"):
        rows = []
        for i, m in enumerate(models):
            pre = getattr(m, "prefilter", None)
            value = getattr(pre, key, None) if pre is not None else None
            if value is None:
                raise ValueError(f"expected model {i} to have an AdapTrans prefilter with attribute {key!r}, "
                                 f"got prefilter {type(pre).__name__}")
            rows.append(np.asarray(value.detach().cpu().double().numpy() if hasattr(value, "detach") else value,
                                   dtype=np.float64).ravel())
        out[key] = np.stack(rows)
    return out


def _usable(ground_truth: Mapping, min_share: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) bool: neuron and channel enter the statistics; (N, 2) channel shares."""
    share = channel_shares(ground_truth["strf"])
    noisy = np.asarray(ground_truth.get("noisy", np.zeros(share.shape[0], bool)), dtype=bool)
    return (~noisy)[:, None] & (share >= float(min_share)), share


def tau_recovery_table(fitted: Mapping, ground_truth: Mapping, cf_hz, min_share: float = 0.2,
                       neuron_ids: Sequence | None = None) -> pd.DataFrame:
    """Per neuron and channel: true and fitted tau factors (long table, N x 2 rows).

    fitted: ``tau_on_ms`` and ``tau_off_ms`` ``(N, F)`` (e.g. :func:`prefilter_parameters`),
    rows in the order of the ground truth's neurons; ground_truth: the synthetic dataset's
    ``ground_truth`` (``strf (N, 2, F, K)``, ``tau_factor_on / tau_factor_off (N,)``,
    ``noisy (N,)``); cf_hz ``(F,)``.

    Columns: neuron, channel ("ON"/"OFF"), share (channel's fraction of the STRF energy),
    used (enters the statistics: not noisy and share >= ``min_share``), true_factor,
    fitted_factor, log_error (``log fitted - log true``).
    """
    strf = _strf_array(ground_truth["strf"])
    N = strf.shape[0]
    wts = channel_band_weights(strf)
    use, share = _usable(ground_truth, min_share)
    ids = list(neuron_ids) if neuron_ids is not None else list(range(N))
    if len(ids) != N:
        raise ValueError(f"expected {N} neuron ids (one per ground-truth neuron), got {len(ids)}")
    rows = []
    for c, ch in enumerate(CHANNELS):
        key = f"tau_{ch}_ms"
        if key not in fitted:
            raise ValueError(f"expected fitted[{key!r}] of shape (N, F)")
        tau = np.asarray(fitted[key], dtype=np.float64)
        if tau.shape[0] != N:
            raise ValueError(f"expected fitted {key} for N={N} neurons (the ground truth's), got {tau.shape}")
        fit_log = tau_log_factors(tau, cf_hz, wts[:, c])
        true_log = np.log(np.asarray(ground_truth[f"tau_factor_{ch}"], dtype=np.float64).ravel())
        for n in range(N):
            rows.append({"neuron": ids[n], "channel": ch.upper(), "share": float(share[n, c]),
                         "used": bool(use[n, c]), "true_factor": float(np.exp(true_log[n])),
                         "fitted_factor": float(np.exp(fit_log[n])),
                         "log_error": float(fit_log[n] - true_log[n])})
    return pd.DataFrame(rows)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / den) if den > 0 else float("nan")


def tau_recovery(fitted: Mapping, ground_truth: Mapping, cf_hz, min_share: float = 0.2) -> dict:
    """Correlation and error of fitted tau factors against the truth (see the module docstring).

    Arguments as in :func:`tau_recovery_table` (``fitted`` may also hold ``w`` ``(N, F)``).
    Returns a dict, for ``ch`` in on, off and pooled (ON and OFF rows together):
    ``r_<ch>`` Pearson correlation of fitted vs true log factors (NaN with < 3 neurons),
    ``err_<ch>`` mean |log fitted / true factor|, ``err0_<ch>`` the same for the Willmore
    initialisation (mean |log true factor|), ``n_<ch>`` the neurons (rows) used; with ``w``
    in ``fitted``, ``r_w``: correlation of the energy-weighted fitted ``w`` with the true one
    over the non-noisy neurons.
    """
    table = tau_recovery_table(fitted, ground_truth, cf_hz, min_share)
    out = {}
    for ch, sel in (("on", table["channel"] == "ON"), ("off", table["channel"] == "OFF"),
                    ("pooled", np.ones(len(table), bool))):
        t = table[sel & table["used"]]
        fit_log, true_log = np.log(t["fitted_factor"].to_numpy()), np.log(t["true_factor"].to_numpy())
        out[f"n_{ch}"] = int(len(t))
        out[f"r_{ch}"] = _pearson(fit_log, true_log)
        out[f"err_{ch}"] = float(np.abs(fit_log - true_log).mean()) if len(t) else float("nan")
        out[f"err0_{ch}"] = float(np.abs(true_log).mean()) if len(t) else float("nan")
    if "w" in fitted and "w" in ground_truth:
        e = (_strf_array(ground_truth["strf"]) ** 2).sum((1, 3))  # (N, F): energy per band, both channels
        wts = e / np.maximum(e.sum(1, keepdims=True), 1e-300)
        w_fit = (wts * np.asarray(fitted["w"], dtype=np.float64)).sum(1)
        w_true = (wts * np.asarray(ground_truth["w"], dtype=np.float64)).sum(1)
        clean = ~np.asarray(ground_truth.get("noisy", np.zeros(len(w_fit), bool)), dtype=bool)
        out["r_w"] = _pearson(w_fit[clean], w_true[clean])
    return out


def strf_correlation(a, b) -> np.ndarray:
    """Pearson correlation of paired STRFs over all their entries, one value per item.

    a, b: arrays / tensors of the same shape ``(N, ...)`` (e.g. ``(N, F, K)``, fitted and
    true STRFs). Returns ``(N,)``; NaN where one of the pair is constant.
    """
    x = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=np.float64)
    y = np.asarray(b.detach().cpu() if hasattr(b, "detach") else b, dtype=np.float64)
    if x.shape != y.shape or x.ndim < 2:
        raise ValueError(f"expected two arrays of the same shape (N, ...), got {x.shape} and {y.shape}")
    x = x.reshape(x.shape[0], -1)
    y = y.reshape(y.shape[0], -1)
    x = x - x.mean(1, keepdims=True)
    y = y - y.mean(1, keepdims=True)
    den = np.sqrt((x * x).sum(1) * (y * y).sum(1))
    num = (x * y).sum(1)
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)
