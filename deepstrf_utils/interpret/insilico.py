"""In-silico experiments with AdapTrans (notebook 02): paper Figure 1 and the OFF-response results.

Shapes: F frequency bands, T time bins, K kernel taps.

The AdapTrans paper (Rançon et al. 2024) reports that its ON/OFF channels reproduce
physiological OFF-response properties: OFF responses are larger after abrupt sound
offsets than after slow fades, and grow with the duration of the preceding sound,
saturating on the scale of the adaptation time constant. The paper's exact stimulus
protocol is not published in the material available to us, so the protocol below is our
own design, stated in each function's docstring:

* every sound is a trapezoid envelope applied identically to all bands (a broadband
  noise-like spectrogram): silence, a linear rise, a plateau, a linear fall, silence;
* the *sound onset* is the first bin of the rise, the *sound offset* the first bin at
  which the envelope is back to zero (for an abrupt offset, the first silent bin);
* ON amplitude = peak of the rectified ON channel from sound onset to the start of the
  fall; OFF amplitude = peak of the rectified OFF channel from sound offset to the end of
  the trial (so the OFF channel's sustained level during the sound, ``(1 - w) x``, is
  never counted as an OFF response).

The same stimuli run through whole fitted models (and tone steps per band) are in
:mod:`deepstrf_utils.interpret.insilico_models`.
"""

from __future__ import annotations

import logging
import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ..adaptrans import adaptrans_filter, adaptrans_kernels, center_frequencies, default_kernel_size, willmore_tau_ms

logger = logging.getLogger(__name__)

__all__ = [
    "step_response",
    "box_spectrogram",
    "bode",
    "trapezoid_envelope",
    "trapezoid_batch",
    "check_times_ms",
    "on_response_vs_rise_time",
    "off_response_vs_fall_time",
    "off_response_vs_duration",
]


# --------------------------------------------------------------------------------------
# Figure 1
# --------------------------------------------------------------------------------------
def _kernel_size_bins(tau_bins: float, kernel_size: Optional[int]) -> int:
    if not (tau_bins > 0):
        raise ValueError(f"tau_bins must be > 0, got {tau_bins}")
    return default_kernel_size(tau_bins, 1.0) if kernel_size is None else int(kernel_size)


def step_response(w: float = 0.75, tau_bins: float = 20.0, n_bins: int = 300, onset: int = 50,
                  offset: int = 200, kernel_size: Optional[int] = None,
                  tau_off_bins: Optional[float] = None) -> dict:
    """ON/OFF responses to a unit step (paper Figure 1B, top), computed in float64.

    Args:
        w: weight of the present bin (0 <= w <= 1).
        tau_bins: time constant in bins (``a = exp(-1 / tau_bins)``), for ON and OFF unless
            ``tau_off_bins`` is given.
        n_bins: T; the step is 1 for ``onset <= t < offset`` and 0 elsewhere.
        kernel_size: K; default ``ceil(3 * tau) + 1``.

    Returns:
        dict with ``"t"`` (T,) bin indices, ``"x"`` (T,) the step, ``"on"`` (T,), ``"off"``
        (T,), and ``"kernels"`` (2, K) (``[:, k]`` = weight of ``x[t-k]``). With w = 0.75:
        ON jumps to 1 and decays to 0.25, OFF dips to -0.75 and relaxes to 0.25; at the
        step's end ON dips to -0.75, OFF jumps to 1, both decay to 0.
    """
    if not (0 <= onset < offset <= n_bins):
        raise ValueError(f"expected 0 <= onset < offset <= n_bins, got onset={onset}, offset={offset}, n_bins={n_bins}")
    tau_off_bins = tau_bins if tau_off_bins is None else tau_off_bins
    K = _kernel_size_bins(max(tau_bins, tau_off_bins), kernel_size)
    x = np.zeros(n_bins)
    x[onset:offset] = 1.0
    a_on = torch.tensor([math.exp(-1.0 / tau_bins)], dtype=torch.float64)
    a_off = torch.tensor([math.exp(-1.0 / tau_off_bins)], dtype=torch.float64)
    w_t = torch.tensor([float(w)], dtype=torch.float64)
    y = adaptrans_filter(torch.from_numpy(x).view(1, 1, 1, -1), a_on, a_off, w_t, K, implementation="conv")
    kern = adaptrans_kernels(a_on, a_off, w_t, K)[:, 0]
    return {"t": np.arange(n_bins), "x": x, "on": y[0, 0, 0].numpy(), "off": y[0, 1, 0].numpy(),
            "kernels": kern.numpy()}


def box_spectrogram(n_bands: int = 128, n_bins: int = 400, onset: int = 50, offset: int = 250,
                    dt_ms: float = 5.0, min_freq: float = 500.0, max_freq: float = 20000.0,
                    scale: str = "mel", w: float = 0.75, kernel_size: Optional[int] = None) -> dict:
    """A box spectrogram and its ON/OFF outputs (paper Figure 1B, heatmaps).

    All ``n_bands`` bands are 1 for ``onset <= t < offset``; each band is filtered with its
    Willmore time constant ``500 - 105 log10(cf)`` ms, so low bands decay more slowly.

    Returns:
        dict with ``"x"``, ``"on"``, ``"off"`` (F, T) arrays, ``"cf_hz"`` (F,),
        ``"tau_ms"`` (F,), ``"dt_ms"`` and ``"kernel_size"``.
    """
    if not (0 <= onset < offset <= n_bins):
        raise ValueError(f"expected 0 <= onset < offset <= n_bins, got onset={onset}, offset={offset}, n_bins={n_bins}")
    cf = center_frequencies(min_freq, max_freq, n_bands, scale)
    tau = willmore_tau_ms(cf)
    K = default_kernel_size(tau, dt_ms) if kernel_size is None else int(kernel_size)
    x = np.zeros((n_bands, n_bins))
    x[:, onset:offset] = 1.0
    a = torch.from_numpy(np.exp(-dt_ms / tau))
    y = adaptrans_filter(torch.from_numpy(x)[None, None], a, a, float(w), K)
    return {"x": x, "on": y[0, 0].numpy(), "off": y[0, 1].numpy(), "cf_hz": cf, "tau_ms": tau,
            "dt_ms": float(dt_ms), "kernel_size": K}


def bode(tau_bins: float, w: float, n_freq: int = 512, kernel_size: Optional[int] = None,
         floor_db: float = -200.0):
    """Magnitude responses of the ON and OFF kernels (paper Figure 1C).

    ``H(omega) = sum_k h[k] exp(-i omega k)`` (the kernels' DTFT), evaluated on
    ``n_freq`` frequencies from 0 to pi rad/sample. At omega = 0 both gains are
    ``1 - w`` (``-inf`` dB for w = 1, reported as ``floor_db``).

    Args:
        tau_bins: time constant in samples (``a = exp(-1 / tau_bins)``), shared by ON and OFF.
        w: weight of the present sample.
        kernel_size: K; default ``ceil(3 * tau_bins) + 1``.
        floor_db: lower bound of the returned dB values.

    Returns:
        (omega (n_freq,), |H_on| in dB (n_freq,), |H_off| in dB (n_freq,)).
    """
    K = _kernel_size_bins(tau_bins, kernel_size)
    a = torch.tensor([math.exp(-1.0 / tau_bins)], dtype=torch.float64)
    kern = adaptrans_kernels(a, a, torch.tensor([float(w)], dtype=torch.float64), K)[:, 0].numpy()  # (2, K)
    omega = np.linspace(0.0, np.pi, int(n_freq))
    H = kern @ np.exp(-1j * np.outer(np.arange(K), omega))  # (2, n_freq)
    mag = np.abs(H)
    floor = 10.0 ** (floor_db / 20.0)
    db = 20.0 * np.log10(np.maximum(mag, floor))
    return omega, db[0], db[1]


# --------------------------------------------------------------------------------------
# OFF/ON responses to trapezoid sounds
# --------------------------------------------------------------------------------------
def trapezoid_envelope(n_bins: int, dt_ms: float, onset_ms: float, rise_ms: float, hold_ms: float,
                       fall_ms: float, level: float = 1.0) -> np.ndarray:
    """Trapezoid sound envelope sampled at bin times ``t_i = i * dt_ms``.

    0 before ``onset_ms``; linear rise to ``level`` over ``rise_ms`` (0: a step at onset);
    plateau for ``hold_ms``; linear fall to 0 over ``fall_ms`` (0: a step down). The sound
    ends at ``onset_ms + rise_ms + hold_ms + fall_ms``.

    Returns:
        (T,) float64 envelope.
    """
    for name, v in (("dt_ms", dt_ms),):
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v}")
    for name, v in (("onset_ms", onset_ms), ("rise_ms", rise_ms), ("hold_ms", hold_ms), ("fall_ms", fall_ms)):
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    t = np.arange(int(n_bins)) * float(dt_ms)
    t0 = float(onset_ms)
    t1 = t0 + rise_ms + hold_ms
    t2 = t1 + fall_ms
    up = np.clip((t - t0) / rise_ms, 0, 1) if rise_ms > 0 else (t >= t0).astype(float)
    down = np.clip((t2 - t) / fall_ms, 0, 1) if fall_ms > 0 else (t < t2).astype(float)
    return level * np.minimum(up, down)


def _prefilter_info(prefilter: nn.Module, need_off: bool):
    for attr in ("n_bands", "dt_ms", "kernel_size", "cf_hz", "out_channels"):
        if not hasattr(prefilter, attr):
            raise ValueError(f"expected an AdapTrans-like prefilter with attribute {attr!r} "
                             f"(n_bands, dt_ms, kernel_size, cf_hz, out_channels), got {type(prefilter).__name__}")
    if need_off and prefilter.out_channels < 2:
        raise ValueError(f"expected a prefilter with an OFF channel (out_channels = 2), "
                         f"got out_channels = {prefilter.out_channels} ({type(prefilter).__name__})")
    t = next(iter(prefilter.parameters()), None)
    if t is None:
        t = next(iter(prefilter.buffers()), None)
    device = t.device if t is not None else torch.device("cpu")
    dtype = t.dtype if t is not None and t.is_floating_point() else torch.get_default_dtype()
    return device, dtype


def trapezoid_batch(dt, conditions, level, onset_ms, post_ms):
    """One broadband trapezoid envelope per condition (rise, hold, fall in ms) at bin width ``dt``
    (ms), of height ``level``, starting at ``onset_ms``, ``post_ms`` of silence after the longest.

    Returns the envelopes (B, T) and per condition the bins (onset, fall start, offset).
    """
    ends = [onset_ms + r + h + f for r, h, f in conditions]
    n_bins = int(math.ceil((max(ends) + post_ms) / dt)) + 1
    env = np.stack([trapezoid_envelope(n_bins, dt, onset_ms, r, h, f, level) for r, h, f in conditions])
    t = np.arange(n_bins) * dt
    eps = 1e-9 * dt
    marks = []
    for r, h, f in conditions:
        t1 = onset_ms + r + h
        marks.append((int(np.argmax(t >= onset_ms - eps)), int(np.argmax(t >= t1 - eps)),
                      int(np.argmax(t >= t1 + f - eps))))
    return env, marks


def _run_trapezoids(prefilter, conditions, level, onset_ms, post_ms, need_off):
    """Filter one trapezoid per condition (rise, hold, fall in ms).

    Returns outputs (B, C, F, T) as numpy, and per condition the bins (onset, fall start, offset).
    """
    device, dtype = _prefilter_info(prefilter, need_off)
    env, marks = trapezoid_batch(float(prefilter.dt_ms), conditions, level, onset_ms, post_ms)
    x = torch.as_tensor(env, dtype=dtype, device=device)[:, None, None, :].expand(-1, 1, prefilter.n_bands, -1)
    with torch.no_grad():
        y = prefilter(x.contiguous()).double().cpu().numpy()
    return y, marks


def _tidy(prefilter, values, amplitudes, column) -> pd.DataFrame:
    """amplitudes (n_conditions, F) -> long DataFrame (band, cf_hz, column, amplitude)."""
    F = prefilter.n_bands
    cf = np.asarray(prefilter.cf_hz, dtype=float)
    return pd.DataFrame({
        "band": np.tile(np.arange(F), len(values)),
        "cf_hz": np.tile(cf, len(values)),
        column: np.repeat(np.asarray(values, dtype=float), F),
        "amplitude": np.asarray(amplitudes).reshape(-1),
    })


def check_times_ms(values, name, positive=False) -> list:
    """``values`` (a number or a sequence of times in ms) as a list of floats; ValueError naming
    ``name`` when it is empty or holds a non-finite, negative (or, ``positive``, zero) time."""
    vals = [float(v) for v in np.atleast_1d(np.asarray(values, dtype=float))]
    if len(vals) == 0 or any((not np.isfinite(v)) or v < 0 or (positive and v <= 0) for v in vals):
        raise ValueError(f"expected a non-empty list of {'positive' if positive else 'non-negative'} {name}, got {values!r}")
    return vals


def _checked_timing(prefilter: nn.Module, need_off: bool, hold_ms) -> tuple[float, float]:
    """Check the prefilter; return its bin width and the plateau length (ms) of a trapezoid protocol."""
    _prefilter_info(prefilter, need_off)
    return float(prefilter.dt_ms), (_default_hold(prefilter) if hold_ms is None else float(hold_ms))


def _default_hold(prefilter) -> float:
    return (prefilter.kernel_size - 1) * float(prefilter.dt_ms)


def off_response_vs_fall_time(prefilter: nn.Module, fall_times_ms: Sequence[float], level: float = 1.0,
                              hold_ms: Optional[float] = None, rise_ms: float = 0.0, onset_ms: Optional[float] = None,
                              post_ms: Optional[float] = None) -> pd.DataFrame:
    """OFF amplitude per band as a function of the sound's fall time.

    Protocol (ours; the paper's exact protocol is not published): for each fall time, a
    broadband trapezoid sound (same envelope in every band) of height ``level``: silence
    until ``onset_ms`` (default 10 bins), rise over ``rise_ms`` (default 0, abrupt),
    plateau of ``hold_ms`` (default ``(K - 1) * dt_ms``, long enough for every band to
    reach its adapted steady state), linear fall over ``fall_ms`` (0 = abrupt), then
    ``post_ms`` of silence (default ``K * dt_ms``). The OFF amplitude is the peak of the
    rectified OFF channel from the sound offset (first bin where the envelope is back to 0)
    to the end of the trial. Expected (and published) trend: largest for abrupt offsets,
    decreasing as the fall time increases.

    Args:
        prefilter: an ``AdapTrans``-like module (attributes n_bands, dt_ms, kernel_size,
            cf_hz, out_channels = 2); evaluated without gradients.
        fall_times_ms: fall times in ms (>= 0).

    Returns:
        DataFrame with one row per band x fall time: band, cf_hz, fall_ms, amplitude.
    """
    falls = check_times_ms(fall_times_ms, "fall times (ms)")
    dt, hold = _checked_timing(prefilter, True, hold_ms)
    onset = 10 * dt if onset_ms is None else float(onset_ms)
    post = prefilter.kernel_size * dt if post_ms is None else float(post_ms)
    y, marks = _run_trapezoids(prefilter, [(rise_ms, hold, f) for f in falls], level, onset, post, True)
    amp = np.stack([np.maximum(y[i, 1, :, off:], 0).max(axis=-1) for i, (_, _, off) in enumerate(marks)])
    return _tidy(prefilter, falls, amp, "fall_ms")


def on_response_vs_rise_time(prefilter: nn.Module, rise_times_ms: Sequence[float], level: float = 1.0,
                             hold_ms: Optional[float] = None, onset_ms: Optional[float] = None) -> pd.DataFrame:
    """ON amplitude per band as a function of the sound's rise time.

    Protocol (ours; not published in the paper): silence until ``onset_ms`` (default
    ``K * dt_ms``, so that the kernel sees only silence before the sound), a linear rise
    to ``level`` over the rise time (0 = abrupt), a plateau of ``hold_ms`` (default
    ``(K - 1) * dt_ms``), an abrupt offset. The ON amplitude is the peak of the rectified
    ON channel from the sound onset to the start of the fall. Expected trend: largest
    for abrupt onsets (``level``), decreasing with the rise time towards the sustained
    level ``(1 - w) * level``.

    Returns:
        DataFrame with one row per band x rise time: band, cf_hz, rise_ms, amplitude.
    """
    rises = check_times_ms(rise_times_ms, "rise times (ms)")
    dt, hold = _checked_timing(prefilter, False, hold_ms)
    onset = prefilter.kernel_size * dt if onset_ms is None else float(onset_ms)
    y, marks = _run_trapezoids(prefilter, [(r, hold, 0.0) for r in rises], level, onset, dt, False)
    amp = np.stack([np.maximum(y[i, 0, :, on:fall], 0).max(axis=-1) for i, (on, fall, _) in enumerate(marks)])
    return _tidy(prefilter, rises, amp, "rise_ms")


def off_response_vs_duration(prefilter: nn.Module, durations_ms: Sequence[float], level: float = 1.0,
                             rise_ms: float = 0.0, fall_ms: float = 0.0, onset_ms: Optional[float] = None,
                             post_ms: Optional[float] = None) -> pd.DataFrame:
    """OFF amplitude per band as a function of the preceding sound's duration.

    Protocol (ours; not published in the paper): silence until ``onset_ms`` (default
    ``K * dt_ms``, so that every sound is preceded by a silence longer than the kernel), a
    broadband sound of the given total duration (rise ``rise_ms`` + plateau + fall
    ``fall_ms``; both default 0, i.e. a box), then ``post_ms`` of silence (default
    ``K * dt_ms``). OFF amplitude as in ``off_response_vs_fall_time``: the peak of the
    rectified OFF channel from the sound offset on. Expected (and published) trend: it grows
    with the duration and saturates on the scale of the adaptation time constant (for
    AdapTrans, exactly at ``(K - 1) * dt_ms``), more slowly in low-frequency bands (longer
    tau).

    Returns:
        DataFrame with one row per band x duration: band, cf_hz, duration_ms, amplitude.
    """
    durs = check_times_ms(durations_ms, "durations (ms)", positive=True)
    if any(d < rise_ms + fall_ms for d in durs):
        raise ValueError(f"expected every duration >= rise_ms + fall_ms = {rise_ms + fall_ms} ms, got {durs}")
    _prefilter_info(prefilter, need_off=True)
    dt = float(prefilter.dt_ms)
    onset = prefilter.kernel_size * dt if onset_ms is None else float(onset_ms)
    post = prefilter.kernel_size * dt if post_ms is None else float(post_ms)
    conds = [(rise_ms, d - rise_ms - fall_ms, fall_ms) for d in durs]
    y, marks = _run_trapezoids(prefilter, conds, level, onset, post, True)
    amp = np.stack([np.maximum(y[i, 1, :, off:], 0).max(axis=-1) for i, (_, _, off) in enumerate(marks)])
    return _tidy(prefilter, durs, amp, "duration_ms")
