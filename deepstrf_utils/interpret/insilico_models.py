"""In-silico ON/OFF experiments on whole fitted models (notebook 04), beside their AdapTrans alone.

Shapes: F frequency bands, T time bins, N neurons (model outputs).

The stimuli of :mod:`deepstrf_utils.interpret.insilico` (notebook 02: broadband trapezoids varying the
fall time, the preceding duration and the rise time) and tone steps in one band at a time
(:func:`model_band_steps`) are run through any spectrogram model ``(B, 1, F, T) -> (B, N, T)``
with attributes ``n_bands`` and ``dt_ms`` (the zoo, population models, the synthetic truth
:class:`~deepstrf_utils.datasets.synthetic.GroundTruthNeurons`), and the same protocol through
the model's own ON/OFF prefilter alone, with notebook 02's measures.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from .insilico import (check_times_ms, trapezoid_batch, off_response_vs_duration, off_response_vs_fall_time,
                       on_response_vs_rise_time, trapezoid_envelope)

__all__ = ["model_onoff_curves", "model_band_steps", "band_masks", "CORE_CONTEXT_BINS"]


#: bins of silence granted to a model's core (beyond its prefilter) before and after each sound
CORE_CONTEXT_BINS = 64
#: default conditions of :func:`model_onoff_curves` (ms)
FALL_TIMES_MS = (0, 10, 25, 50, 100, 200, 400)
DURATIONS_MS = (25, 50, 100, 200, 400, 800)
RISE_TIMES_MS = (0, 10, 25, 50, 100, 200, 400)


def _model_bands_dt(model) -> tuple:
    n_bands, dt = getattr(model, "n_bands", None), getattr(model, "dt_ms", None)
    if n_bands is None or dt is None:
        raise ValueError(f"expected a model with attributes n_bands and dt_ms (a spectrogram model "
                         f"(B, 1, F, T) -> (B, N, T)), got {type(model).__name__}")
    return int(n_bands), float(dt)


def _onoff_prefilter(model, n: int):
    """Neuron n's ON/OFF prefilter (``model.prefilter_of(n)`` or ``model.prefilter``), None if it has none."""
    pre = model.prefilter_of(n) if hasattr(model, "prefilter_of") else getattr(model, "prefilter", None)
    if pre is None or getattr(pre, "out_channels", 1) < 2 or not hasattr(pre, "kernel_size"):
        return None
    return pre


def _protocol_bins(model) -> tuple[int, int]:
    """(R, P): bins of silence before and after each sound, and the default plateau in bins.

    R = K - 1 + max(n_lags, CORE_CONTEXT_BINS) (K = taps of the model's prefilter, or of neuron 0's
    for a model with ``prefilter_of``); P = K - 1 (every band adapted), or R without a prefilter."""
    pre = getattr(model, "prefilter", None)
    if pre is None and hasattr(model, "prefilter_of"):
        pre = model.prefilter_of(0)
    taps = int(getattr(pre, "kernel_size", 1) or 1)
    R = taps - 1 + max(int(getattr(model, "n_lags", 0) or 0), CORE_CONTEXT_BINS)
    return R, (taps - 1 if taps > 1 else R)


def _neuron_selection(N: int, neurons, neuron_ids) -> tuple[list, list]:
    idx = list(range(N)) if neurons is None else [int(n) for n in np.atleast_1d(neurons)]
    if any(not 0 <= n < N for n in idx):
        raise ValueError(f"expected neuron indices in [0, {N}) (the model has N={N} outputs), got {neurons!r}")
    ids = list(neuron_ids) if neuron_ids is not None else idx
    if len(ids) != len(idx):
        raise ValueError(f"expected one neuron id per selected neuron ({len(idx)}), got {len(ids)}")
    return idx, ids


def _model_run(model, env: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Envelopes (B, T) played in the bands ``bands`` (B, F) (weights: 1 = the band carries the
    envelope, 0 = silent; all ones = broadband) -> the model's responses (B, N, T), float64 numpy, no grad."""
    params = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    x = torch.as_tensor(bands[:, None, :, None] * env[:, None, None, :], dtype=torch.float32)
    if params is not None:
        x = x.to(params.device)
    was = getattr(model, "training", False)
    model.eval()
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        model.train(was)
    y = np.asarray(y.detach().double().cpu().numpy() if hasattr(y, "detach") else y, dtype=np.float64)
    if y.ndim != 3 or y.shape[0] != env.shape[0] or y.shape[2] != env.shape[1]:
        raise ValueError(f"expected the model to return (B, N, T) = ({env.shape[0]}, N, {env.shape[1]}), got {y.shape}")
    return y


def _model_onoff(model, conds, level, onset_ms, post_ms, n_bands, dt, bands=None) -> tuple:
    """ON and OFF amplitudes, each (n_conditions, N), of the model for trapezoids (rise, hold, fall
    in ms) played in ``bands`` (n_conditions, F) (default broadband), in one forward pass.

    ON: peak of the response minus the response to silence from the onset to the start of the
    fall, rectified; OFF: peak from the offset on of the response minus the response to the same
    sound continued to the end of the trial (no offset), rectified."""
    bands = np.ones((len(conds), n_bands)) if bands is None else np.asarray(bands, dtype=np.float64)
    env, marks = trapezoid_batch(dt, conds, level, onset_ms, post_ms)
    n_bins = env.shape[1]
    cont = np.stack([trapezoid_envelope(n_bins, dt, onset_ms, r, n_bins * dt, 0.0, level) for r, _, _ in conds])
    y = _model_run(model, np.concatenate([env, cont, np.zeros((1, n_bins))]),
                   np.concatenate([bands, bands, np.zeros((1, n_bands))]))
    resp, resp_cont, silence = y[: len(conds)], y[len(conds): 2 * len(conds)], y[-1]
    on = np.stack([np.maximum(resp[i, :, a:b] - silence[:, a:b], 0).max(axis=-1) for i, (a, b, _) in enumerate(marks)])
    off = np.stack([np.maximum(resp[i, :, c:] - resp_cont[i, :, c:], 0).max(axis=-1) for i, (_, _, c) in enumerate(marks)])
    return on, off


def _model_experiment(model, kind, values, level, hold_ms, onset_ms, post_ms, n_bands, dt):
    """Amplitudes (n_values, N) of the model for one broadband experiment (fall / duration / rise)."""
    if kind == "fall":
        conds = [(0.0, hold_ms, v) for v in values]
    elif kind == "duration":
        if any(v <= 0 for v in values):
            raise ValueError(f"expected positive durations (ms), got {values}")
        conds = [(0.0, v, 0.0) for v in values]
    else:
        conds = [(v, hold_ms, 0.0) for v in values]
    on, off = _model_onoff(model, conds, level, onset_ms, post_ms, n_bands, dt)
    return on if kind == "rise" else off


def _relative(out: pd.DataFrame, keys: list) -> pd.DataFrame:
    peak = out.groupby(keys)["amplitude"].transform("max")
    out["relative"] = out["amplitude"] / peak.where(peak > 0)
    return out


def model_onoff_curves(model, neurons: Optional[Sequence[int]] = None, fall_times_ms: Sequence[float] = FALL_TIMES_MS,
                       durations_ms: Sequence[float] = DURATIONS_MS, rise_times_ms: Sequence[float] = RISE_TIMES_MS,
                       level: float = 1.0, band_weights=None, label: str = "model",
                       neuron_ids: Optional[Sequence] = None) -> pd.DataFrame:
    """Notebook 02's ON/OFF experiments run through a whole fitted model, beside its AdapTrans alone.

    Stimuli: the broadband trapezoids of :func:`off_response_vs_fall_time`,
    :func:`off_response_vs_duration` and :func:`on_response_vs_rise_time` (same envelope in
    every band), each preceded and followed by ``R`` bins of silence, ``R = K - 1 +
    max(n_lags, CORE_CONTEXT_BINS)`` (K = the prefilter's taps, ``model.prefilter`` or
    ``model.prefilter_of(0)``; 64 bins cover the cores of the zoo, e.g. 43 for the 2D-CNN),
    so that the model starts from its steady response to silence; plateau ``(K - 1) * dt``
    for the fall- and rise-time experiments (R bins without a prefilter). Amplitudes of the
    model (ours; the paper measures only the prefilter):

    * **OFF** (fall time, preceding duration): the peak, from the sound offset to the end of
      the trial, of the response minus the response to the *same sound continued* (no
      offset), rectified: the offset-evoked part, without the tail of a sustained response;
    * **ON** (rise time): the peak from the sound onset to the start of the fall of the
      response minus the response to silence, rectified.

    Beside them (``source = "adaptrans"``), the same protocol on the model's own prefilter
    alone (``model.prefilter``, or ``model.prefilter_of(n)`` per neuron, e.g. the synthetic
    truth :class:`~deepstrf_utils.datasets.synthetic.GroundTruthNeurons`): the per-band amplitudes of
    notebook 02 averaged over bands with ``band_weights`` ``(N, F)`` (e.g. the neuron's STRF
    energy per band; default uniform). Skipped for a model without an ON/OFF prefilter.

    Args:
        model: ``(B, 1, F, T) -> (B, N, T)`` with attributes ``n_bands`` and ``dt_ms``.
        neurons: output indices (default all).
        label: value of the ``label`` column (e.g. "LN + AdapTrans", "truth").
        neuron_ids: names of the selected neurons for the ``neuron`` column (default indices).

    Returns:
        Long DataFrame with columns label, neuron, source ("model" / "adaptrans"),
        experiment ("fall" / "duration" / "rise"), x_ms, amplitude, relative (amplitude over
        its maximum across conditions, per label, neuron, source and experiment; NaN if 0).
    """
    n_bands, dt = _model_bands_dt(model)
    values = {"fall": check_times_ms(fall_times_ms, "fall times (ms)"),
              "duration": check_times_ms(durations_ms, "durations (ms)", positive=True),
              "rise": check_times_ms(rise_times_ms, "rise times (ms)")}
    R, P = _protocol_bins(model)
    onset = post = R * dt
    hold = P * dt
    amps = {k: _model_experiment(model, k, v, level, hold, onset, post, n_bands, dt) for k, v in values.items()}
    idx, ids = _neuron_selection(amps["fall"].shape[1], neurons, neuron_ids)
    wts = None if band_weights is None else np.asarray(band_weights, dtype=np.float64).reshape(len(idx), n_bands)
    rows = []
    for j, n in enumerate(idx):
        for kind, v in values.items():
            for x, a in zip(v, amps[kind][:, n]):
                rows.append((label, ids[j], "model", kind, x, float(a)))
        pre = _onoff_prefilter(model, n)
        if pre is None:
            continue
        w = np.full(n_bands, 1.0 / n_bands) if wts is None else wts[j] / max(wts[j].sum(), 1e-300)
        tables = {"fall": off_response_vs_fall_time(pre, values["fall"], level, hold_ms=hold, onset_ms=onset,
                                                     post_ms=post),
                  "duration": off_response_vs_duration(pre, values["duration"], level, onset_ms=onset, post_ms=post),
                  "rise": on_response_vs_rise_time(pre, values["rise"], level, hold_ms=hold, onset_ms=onset)}
        for kind, df in tables.items():
            col = {"fall": "fall_ms", "duration": "duration_ms", "rise": "rise_ms"}[kind]
            per = df.pivot(index=col, columns="band", values="amplitude").to_numpy() @ w
            for x, a in zip(values[kind], per):
                rows.append((label, ids[j], "adaptrans", kind, x, float(a)))
    out = pd.DataFrame(rows, columns=["label", "neuron", "source", "experiment", "x_ms", "amplitude"])
    return _relative(out, ["label", "neuron", "source", "experiment"])


def band_masks(n_bands: int, width_bands: int = 1) -> np.ndarray:
    """One row per band f: 1 on the bands within ``(width_bands - 1) / 2`` of f (clipped at the
    edges), 0 elsewhere. Returns (F, F) float64; ``width_bands = 1`` gives the identity."""
    if int(width_bands) != width_bands or width_bands < 1 or width_bands % 2 == 0:
        raise ValueError(f"expected width_bands a positive odd integer (bands per step, centred), got {width_bands!r}")
    half = (int(width_bands) - 1) // 2
    b = np.arange(int(n_bands))
    return (np.abs(b[:, None] - b[None, :]) <= half).astype(np.float64)


def model_band_steps(model, neurons: Optional[Sequence[int]] = None, hold_ms: Optional[float] = None,
                     level: float = 1.0, width_bands: int = 1, label: str = "model",
                     neuron_ids: Optional[Sequence] = None, cf_hz=None) -> pd.DataFrame:
    """Tone steps per band: ON and OFF amplitude of a whole model for a step of sound in one band.

    Protocol (ours): for every band f, a stimulus ``(1, F, T)`` silent everywhere except in band
    f (and its neighbours with ``width_bands`` > 1, see :func:`band_masks`), where it is
    ``level`` for ``hold_ms`` (default ``(K - 1) * dt``: every band adapted; ``R * dt``
    without a prefilter), abrupt onset and offset, with ``R`` bins of silence before and after
    (R as in :func:`model_onoff_curves`). All F steps, their continued versions (no offset)
    and silence go through the model in one batch ``(2F + 1, 1, F, T)``. Per band and neuron,
    as in :func:`model_onoff_curves`: **ON** = peak from onset to offset of the response minus
    the response to silence, rectified; **OFF** = peak from the offset on of the response minus
    the response to the same step continued, rectified (the offset-evoked part).

    Beside them (``source = "adaptrans"``), for a model with an ON/OFF prefilter
    (``model.prefilter`` or ``model.prefilter_of(n)``): notebook 02's per-band amplitudes of
    the prefilter alone for the same step (:func:`on_response_vs_rise_time` with rise 0,
    :func:`off_response_vs_fall_time` with fall 0; same hold, onset and silence after),
    averaged over the bands of the step (with one band: that band's value). AdapTrans filters
    each band on its own, so a step in band f drives only channel f of the prefilter.

    Args:
        model: ``(B, 1, F, T) -> (B, N, T)`` with attributes ``n_bands`` and ``dt_ms``.
        neurons: output indices (default all); ``neuron_ids`` their names (default indices).
        hold_ms: the step's duration in ms (> 0).
        width_bands: bands per step (odd, centred on f; default 1).
        cf_hz: band centre frequencies (F,) in Hz for the ``cf_hz`` column (default the model's
            or its prefilter's ``cf_hz``; NaN when unknown).

    Returns:
        Long DataFrame with columns label, neuron, source ("model" / "adaptrans"), response
        ("on" / "off"), band (the step's centre band f), cf_hz, amplitude, relative (amplitude
        over its maximum across bands per label, neuron, source and response; NaN if 0).
    """
    n_bands, dt = _model_bands_dt(model)
    R, P = _protocol_bins(model)
    hold = P * dt if hold_ms is None else float(hold_ms)
    if not (np.isfinite(hold) and hold > 0):
        raise ValueError(f"expected hold_ms > 0 (the step's duration in ms), got {hold_ms!r}")
    if not np.isfinite(level):
        raise ValueError(f"expected a finite level, got {level!r}")
    masks = band_masks(n_bands, width_bands)
    if cf_hz is None:
        cf_hz = getattr(model, "cf_hz", getattr(getattr(model, "prefilter", None), "cf_hz", None))
    cf = np.full(n_bands, np.nan) if cf_hz is None else np.asarray(cf_hz, dtype=np.float64).reshape(-1)
    if cf.size != n_bands:
        raise ValueError(f"expected cf_hz with one entry per band (F={n_bands}), got {cf.size}")
    onset = post = R * dt
    amps = dict(zip(("on", "off"), _model_onoff(model, [(0.0, hold, 0.0)] * n_bands, level, onset, post, n_bands,
                                                  dt, bands=masks)))
    idx, ids = _neuron_selection(amps["on"].shape[1], neurons, neuron_ids)
    share = masks / masks.sum(1, keepdims=True)  # mean over the bands of each step
    parts = []
    for j, n in enumerate(idx):
        per = {("model", k): a[:, n] for k, a in amps.items()}
        pre = _onoff_prefilter(model, n)
        if pre is not None:
            on = on_response_vs_rise_time(pre, [0.0], level, hold_ms=hold, onset_ms=onset)
            off = off_response_vs_fall_time(pre, [0.0], level, hold_ms=hold, onset_ms=onset, post_ms=post)
            per[("adaptrans", "on")] = share @ on.sort_values("band")["amplitude"].to_numpy()
            per[("adaptrans", "off")] = share @ off.sort_values("band")["amplitude"].to_numpy()
        for (source, resp), a in per.items():
            parts.append(pd.DataFrame({"label": label, "neuron": [ids[j]] * n_bands, "source": source,
                                       "response": resp, "band": np.arange(n_bands), "cf_hz": cf, "amplitude": a}))
    return _relative(pd.concat(parts, ignore_index=True), ["label", "neuron", "source", "response"])
