"""Spectrogram-domain stimulus primitives on (F, T) grids.

Everything here builds spectrograms directly (no waveform): arrays ``(F, T)`` of float32
in the units of a thresholded log-power cochleagram scaled to ``[0, 1]`` — 0 is silence
(at or below the threshold), about 1 is loud. Because the scale is logarithmic, a linear
ramp of the envelope is a ramp in dB, and overlapping sounds are combined with
``max`` (the louder one dominates a band), not summed.

Primitives (times in ms, converted with the bin width ``dt_ms``):

- :func:`envelope`: onset, rise time, hold, fall time -> ``(T,)`` in [0, 1];
- :func:`band_profile`: which bands a sound covers -> ``(F,)`` in [0, 1];
- :func:`burst`, :func:`tone_burst`, :func:`noise_burst`: envelope x band profile, with
  optional spectro-temporal texture (noise);
- :func:`silence`: zeros of a given duration;
- :func:`moving_ripple`: spectro-temporal ripple with temporal rate (Hz) and spectral
  density (cycles/octave); upward or downward with the sign of the temporal rate;
- :func:`dynamic_random_chord` (DRC): random chords of tone pips;
- :func:`torc_spectrogram`: a TORC (temporally orthogonal ripple combination, Klein et al.
  2000) from its ripple parameters, as baphy builds them, averaged within each time bin;
- :func:`compose_clip`: an NS1-like clip, a sequence of these sounds separated by
  silences of varied length, with varied rise and fall times.

All random draws go through a seeded ``numpy.random.Generator`` (pass a seed or a
Generator), so the same arguments always give the same stimulus.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "as_rng",
    "envelope",
    "band_profile",
    "burst",
    "tone_burst",
    "noise_burst",
    "silence",
    "moving_ripple",
    "dynamic_random_chord",
    "compose_clip",
    "torc_spectrogram",
    "SOUND_KINDS",
]

#: kinds of sounds :func:`compose_clip` draws from, with their default probabilities
SOUND_KINDS: dict[str, float] = {"tone": 0.3, "noise": 0.3, "ripple": 0.25, "drc": 0.15}


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed (int or None) or the Generator itself."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _check_cf(cf_hz: Any) -> np.ndarray:
    cf = np.asarray(cf_hz, dtype=np.float64)
    if cf.ndim != 1 or cf.size == 0 or np.any(cf <= 0) or np.any(np.diff(cf) <= 0):
        raise ValueError(f"expected cf_hz of shape (F,), positive and increasing, got shape {cf.shape}")
    return cf


def _check_bins(n_bins: Any) -> int:
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"expected n_bins (T) as a positive integer, got {n_bins!r}")
    return int(n_bins)


def _check_dt(dt_ms: float) -> float:
    if not dt_ms > 0:
        raise ValueError(f"expected dt_ms > 0 (bin width in ms), got {dt_ms}")
    return float(dt_ms)


def envelope(
    n_bins: int,
    onset_ms: float,
    rise_ms: float = 0.0,
    hold_ms: float = 100.0,
    fall_ms: float = 0.0,
    dt_ms: float = 5.0,
    shape: str = "linear",
) -> np.ndarray:
    """Trapezoid envelope: silence, rise, hold, fall, silence.

    Bin ``t`` covers ``[t dt, (t + 1) dt)`` ms. The envelope is 0 before ``onset_ms``,
    rises to 1 over ``rise_ms`` (reached at the end of the rise; ``rise_ms <= dt_ms`` is a
    step), stays at 1 for ``hold_ms`` and falls back to 0 over ``fall_ms`` (a step when
    ``<= dt_ms``). ``shape="cosine"`` uses raised-cosine ramps instead of linear ones.

    Returns:
        ``(T,)`` float32 in [0, 1].
    """
    n_bins, dt_ms = _check_bins(n_bins), _check_dt(dt_ms)
    if min(rise_ms, hold_ms, fall_ms) < 0:
        raise ValueError(f"expected rise_ms, hold_ms, fall_ms >= 0, got {rise_ms}, {hold_ms}, {fall_ms}")
    if shape not in ("linear", "cosine"):
        raise ValueError(f"expected shape 'linear' or 'cosine', got {shape!r}")
    tau = np.arange(n_bins) * dt_ms - float(onset_ms)  # time since onset at each bin start
    up = np.clip((tau + dt_ms) / max(rise_ms, dt_ms), 0.0, 1.0)
    up[tau < 0] = 0.0
    fall_start = rise_ms + hold_ms
    down = np.clip(1.0 - (tau - fall_start + dt_ms) / max(fall_ms, dt_ms), 0.0, 1.0)
    down[tau < fall_start] = 1.0
    env = np.minimum(up, down)
    if shape == "cosine":
        env = 0.5 - 0.5 * np.cos(np.pi * env)
    return env.astype(np.float32)


def band_profile(cf_hz: Any, low_hz: float | None = None, high_hz: float | None = None,
                 edge_oct: float = 0.0) -> np.ndarray:
    """Which bands a sound covers.

    Args:
        cf_hz: ``(F,)`` band centre frequencies (Hz).
        low_hz, high_hz: band edges (None: lowest / highest band). If no centre frequency
            falls inside, the band nearest to the geometric centre is used (a pure tone).
        edge_oct: width in octaves of raised-cosine skirts outside the edges (0: sharp).

    Returns:
        ``(F,)`` float32 in [0, 1].
    """
    cf = _check_cf(cf_hz)
    lo = cf[0] if low_hz is None else float(low_hz)
    hi = cf[-1] if high_hz is None else float(high_hz)
    if not 0 < lo <= hi:
        raise ValueError(f"expected 0 < low_hz <= high_hz, got {lo}, {hi}")
    x = np.log2(cf)
    dist = np.maximum(np.log2(lo) - x, 0.0) + np.maximum(x - np.log2(hi), 0.0)  # octaves outside
    dist[dist < 1e-9] = 0.0  # edges are inclusive (tolerant to float rounding of cf_hz)
    prof = (dist == 0).astype(np.float64)
    if edge_oct > 0:
        skirt = 0.5 + 0.5 * np.cos(np.pi * np.clip(dist / edge_oct, 0.0, 1.0))
        prof = np.maximum(prof, np.where(dist < edge_oct, skirt, 0.0))
    if not np.any(dist == 0):
        prof[np.argmin(np.abs(x - 0.5 * (np.log2(lo) + np.log2(hi))))] = 1.0
    return prof.astype(np.float32)


def burst(
    cf_hz: Any,
    n_bins: int,
    onset_ms: float,
    rise_ms: float = 0.0,
    hold_ms: float = 100.0,
    fall_ms: float = 0.0,
    band_hz: tuple[float, float] | None = None,
    level: float = 1.0,
    dt_ms: float = 5.0,
    texture: float = 0.0,
    edge_oct: float = 0.0,
    rng: int | np.random.Generator | None = None,
    shape: str = "linear",
) -> np.ndarray:
    """A sound burst: envelope (:func:`envelope`) x band profile (:func:`band_profile`) x level.

    ``texture > 0`` multiplies every (band, bin) by ``1 + texture * N(0, 1)`` (seeded by
    ``rng``), the fluctuations of a noise; ``texture = 0`` is a steady (tone-like) sound.

    Returns:
        ``(F, T)`` float32 in [0, 1].
    """
    cf = _check_cf(cf_hz)
    if not 0 <= level <= 1:
        raise ValueError(f"expected level in [0, 1] (0 silence, 1 loud), got {level}")
    if texture < 0:
        raise ValueError(f"expected texture >= 0, got {texture}")
    env = envelope(n_bins, onset_ms, rise_ms, hold_ms, fall_ms, dt_ms, shape)
    lo, hi = (None, None) if band_hz is None else band_hz
    spec = np.outer(band_profile(cf, lo, hi, edge_oct), env).astype(np.float64) * level
    if texture > 0:
        spec *= 1.0 + texture * as_rng(rng).standard_normal(spec.shape)
    return np.clip(spec, 0.0, 1.0).astype(np.float32)


def tone_burst(cf_hz: Any, n_bins: int, freq_hz: float, onset_ms: float, rise_ms: float = 0.0,
               hold_ms: float = 100.0, fall_ms: float = 0.0, level: float = 1.0, dt_ms: float = 5.0,
               shape: str = "linear") -> np.ndarray:
    """A pure tone burst: the band nearest to ``freq_hz`` only, no texture. ``(F, T)``."""
    cf = _check_cf(cf_hz)
    k = int(np.argmin(np.abs(np.log2(cf) - np.log2(float(freq_hz)))))
    return burst(cf, n_bins, onset_ms, rise_ms, hold_ms, fall_ms, (cf[k], cf[k]), level, dt_ms, shape=shape)


def noise_burst(cf_hz: Any, n_bins: int, onset_ms: float, rise_ms: float = 0.0, hold_ms: float = 100.0,
                fall_ms: float = 0.0, band_hz: tuple[float, float] | None = None, level: float = 1.0,
                dt_ms: float = 5.0, texture: float = 0.15, rng: int | np.random.Generator | None = None,
                shape: str = "linear") -> np.ndarray:
    """A (band-limited) noise burst: like :func:`burst` with texture, broadband by default. ``(F, T)``."""
    return burst(cf_hz, n_bins, onset_ms, rise_ms, hold_ms, fall_ms, band_hz, level, dt_ms, texture,
                 0.0, rng, shape)


def silence(n_bands: int, duration_ms: float, dt_ms: float = 5.0) -> np.ndarray:
    """Silence: zeros of shape ``(F, round(duration_ms / dt_ms))``."""
    if int(n_bands) != n_bands or n_bands < 1:
        raise ValueError(f"expected n_bands (F) as a positive integer, got {n_bands!r}")
    if duration_ms < 0:
        raise ValueError(f"expected duration_ms >= 0, got {duration_ms}")
    return np.zeros((int(n_bands), int(round(duration_ms / _check_dt(dt_ms)))), dtype=np.float32)


def moving_ripple(
    cf_hz: Any,
    n_bins: int,
    temporal_hz: float = 4.0,
    spectral_cyc_per_oct: float = 1.0,
    depth: float = 0.9,
    phase: float = 0.0,
    level: float = 1.0,
    dt_ms: float = 5.0,
) -> np.ndarray:
    """Moving spectro-temporal ripple.

    ``level * (1 - depth/2 + depth/2 * sin(2 pi (temporal_hz t + spectral_cyc_per_oct x) + phase))``
    with ``t`` in s and ``x`` in octaves above the lowest band. With positive
    ``temporal_hz`` the ripple moves downward in frequency, upward with negative.

    Returns:
        ``(F, T)`` float32 in ``[level (1 - depth), level]``.
    """
    cf, n_bins, dt_ms = _check_cf(cf_hz), _check_bins(n_bins), _check_dt(dt_ms)
    if not 0 <= depth <= 1:
        raise ValueError(f"expected depth in [0, 1], got {depth}")
    if not 0 <= level <= 1:
        raise ValueError(f"expected level in [0, 1], got {level}")
    t = np.arange(n_bins) * dt_ms / 1000.0
    x = np.log2(cf / cf[0])
    arg = 2 * np.pi * (temporal_hz * t[None, :] + spectral_cyc_per_oct * x[:, None]) + phase
    return (level * (1.0 - 0.5 * depth + 0.5 * depth * np.sin(arg))).astype(np.float32)


def dynamic_random_chord(
    cf_hz: Any,
    n_bins: int,
    chord_ms: float = 25.0,
    density: float = 0.3,
    level_range: tuple[float, float] = (0.3, 1.0),
    dt_ms: float = 5.0,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Dynamic random chord (DRC): a sequence of chords of ``chord_ms`` each.

    In every chord each band is on with probability ``density``, at a level drawn
    uniformly from ``level_range``; off bands are silent.

    Returns:
        ``(F, T)`` float32 in [0, 1].
    """
    cf, n_bins, dt_ms = _check_cf(cf_hz), _check_bins(n_bins), _check_dt(dt_ms)
    if not 0 <= density <= 1:
        raise ValueError(f"expected density in [0, 1], got {density}")
    lo, hi = level_range
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"expected 0 <= level_range[0] <= level_range[1] <= 1, got {level_range}")
    r = as_rng(rng)
    bins_per_chord = max(1, int(round(chord_ms / dt_ms)))
    n_chords = -(-n_bins // bins_per_chord)
    on = r.random((cf.size, n_chords)) < density
    levels = np.where(on, r.uniform(lo, hi, (cf.size, n_chords)), 0.0)
    return np.repeat(levels, bins_per_chord, axis=1)[:, :n_bins].astype(np.float32)


def _draw_band(r: np.random.Generator, cf: np.ndarray, width_oct: tuple[float, float]) -> tuple[float, float]:
    """A band [low, high] in Hz of random width (octaves) inside the cf range."""
    span = np.log2(cf[-1] / cf[0])
    width = min(r.uniform(*width_oct), span)
    start = r.uniform(0.0, span - width)
    return float(cf[0] * 2 ** start), float(cf[0] * 2 ** (start + width))


def compose_clip(
    cf_hz: Any,
    n_bins: int,
    dt_ms: float = 5.0,
    rng: int | np.random.Generator | None = None,
    kinds: dict[str, float] | None = None,
    gap_ms: tuple[float, float] = (20.0, 800.0),
    rise_ms: tuple[float, float] = (0.0, 150.0),
    hold_ms: tuple[float, float] = (50.0, 900.0),
    fall_ms: tuple[float, float] = (0.0, 300.0),
    level_range: tuple[float, float] = (0.5, 1.0),
    overlap_prob: float = 0.15,
) -> tuple[np.ndarray, list[dict]]:
    """An NS1-like clip built from the primitives of this module.

    The clip alternates silences and sounds. Each silence lasts a duration drawn
    log-uniformly from ``gap_ms`` (short gaps and long ones); each sound is a tone, a
    textured band of noise, a moving ripple or a DRC (probabilities ``kinds``, default
    :data:`SOUND_KINDS`) under a trapezoid envelope with rise, hold and fall times drawn
    uniformly from ``rise_ms``, ``hold_ms``, ``fall_ms`` (rises and falls shorter than a
    bin are steps: about a quarter of them are made abrupt on purpose). With probability
    ``overlap_prob`` the next sound starts before the previous one ends instead of after a
    silence. Sounds combine with ``max`` (log-power scale).

    Args:
        cf_hz: ``(F,)`` band centre frequencies (Hz).
        n_bins: T, length of the clip in bins.
        dt_ms: bin width (ms).
        rng: seed or ``numpy.random.Generator``.

    Returns:
        ``spec (F, T)`` float32 in [0, 1], and the list of sound events, each a dict with
        ``kind, onset_ms, rise_ms, hold_ms, fall_ms, offset_ms, low_hz, high_hz, level``
        (and ``temporal_hz, spectral_cyc_per_oct`` for ripples) — the sound's offset is
        ``offset_ms = onset + rise + hold + fall``.
    """
    cf, n_bins, dt_ms = _check_cf(cf_hz), _check_bins(n_bins), _check_dt(dt_ms)
    r = as_rng(rng)
    kinds = dict(SOUND_KINDS if kinds is None else kinds)
    if not kinds or any(p < 0 for p in kinds.values()) or sum(kinds.values()) <= 0:
        raise ValueError(f"expected kinds as a dict of non-negative probabilities, got {kinds}")
    unknown = set(kinds) - set(SOUND_KINDS)
    if unknown:
        raise ValueError(f"unknown sound kinds {sorted(unknown)}; expected among {sorted(SOUND_KINDS)}")
    names = sorted(kinds)
    probs = np.array([kinds[k] for k in names], dtype=np.float64)
    probs /= probs.sum()
    if not 0 < gap_ms[0] <= gap_ms[1]:
        raise ValueError(f"expected 0 < gap_ms[0] <= gap_ms[1], got {gap_ms}")

    spec = np.zeros((cf.size, n_bins), dtype=np.float32)
    events: list[dict] = []
    clip_ms = n_bins * dt_ms
    t = float(np.exp(r.uniform(np.log(gap_ms[0]), np.log(gap_ms[1]))))  # leading silence
    while t < clip_ms:
        kind = names[int(r.choice(len(names), p=probs))]
        rise = 0.0 if r.random() < 0.25 else float(r.uniform(*rise_ms))
        fall = 0.0 if r.random() < 0.25 else float(r.uniform(*fall_ms))
        hold = float(r.uniform(*hold_ms))
        level = float(r.uniform(*level_range))
        event: dict[str, Any] = {"kind": kind, "onset_ms": t, "rise_ms": rise, "hold_ms": hold,
                                 "fall_ms": fall, "offset_ms": t + rise + hold + fall, "level": level}
        env = envelope(n_bins, t, rise, hold, fall, dt_ms)
        if kind == "tone":
            k = int(r.integers(cf.size))
            lo = hi = float(cf[k])
            sound = np.outer(band_profile(cf, lo, hi), env) * level
        elif kind == "noise":
            lo, hi = _draw_band(r, cf, (1.0, np.log2(cf[-1] / cf[0])))
            sound = burst(cf, n_bins, t, rise, hold, fall, (lo, hi), level, dt_ms, texture=0.2,
                          edge_oct=0.3, rng=r)
        elif kind == "ripple":
            lo, hi = _draw_band(r, cf, (2.0, np.log2(cf[-1] / cf[0])))
            w_t = float(r.uniform(1.0, 16.0) * r.choice([-1.0, 1.0]))
            w_s = float(r.uniform(0.0, 1.5))
            event.update(temporal_hz=w_t, spectral_cyc_per_oct=w_s)
            ripple = moving_ripple(cf, n_bins, w_t, w_s, depth=0.9, phase=float(r.uniform(0, 2 * np.pi)),
                                   level=level, dt_ms=dt_ms)
            sound = ripple * np.outer(band_profile(cf, lo, hi, edge_oct=0.3), env)
        else:  # drc
            lo, hi = float(cf[0]), float(cf[-1])
            chords = dynamic_random_chord(cf, n_bins, chord_ms=float(r.choice([20.0, 25.0, 50.0])),
                                          density=float(r.uniform(0.2, 0.4)), level_range=(0.3, level),
                                          dt_ms=dt_ms, rng=r)
            sound = chords * env[None, :]
        event.update(low_hz=lo, high_hz=hi)
        spec = np.maximum(spec, sound.astype(np.float32))
        events.append(event)
        end = event["offset_ms"]
        if r.random() < overlap_prob:
            t = float(r.uniform(t + rise, end))  # the next sound starts during this one
        else:
            t = end + float(np.exp(r.uniform(np.log(gap_ms[0]), np.log(gap_ms[1]))))
    return np.clip(spec, 0.0, 1.0).astype(np.float32), events


def _ripple_sum(rates_hz: np.ndarray, densities: np.ndarray, phases: np.ndarray, amps: np.ndarray,
                t_s: np.ndarray, x_oct: np.ndarray) -> np.ndarray:
    """``S(x, t) = sum_i A_i sin(2 pi (w_i t + Omega_i x) + phi_i)`` on a grid -> ``(X, T)``."""
    arg = 2 * np.pi * (rates_hz[:, None, None] * t_s[None, None, :] + densities[:, None, None] * x_oct[None, :, None])
    return np.einsum("i,ixt->xt", amps, np.sin(arg + phases[:, None, None]))


def torc_spectrogram(
    cf_hz: Any,
    dt_ms: float,
    rates_hz: Any,
    densities: Any,
    phases_deg: Any,
    amplitudes: Any = None,
    lowest_hz: float = 250.0,
    highest_hz: float = 8000.0,
    duration_ms: float = 750.0,
    pre_ms: float = 0.0,
    post_ms: float = 0.0,
    depth: float = 0.9,
) -> np.ndarray:
    """The spectro-temporal envelope of a TORC (baphy's linear "LIN" TORCs), bin-averaged.

    A TORC (Klein, Depireux, Simon & Shamma 2000, J Comput Neurosci 9:85) is a sum of moving
    ripples on a log-frequency axis,
    ``S(x, t) = sum_i A_i sin(2 pi (w_i t + Omega_i x) + phi_i)``, with ``x`` in octaves above
    ``lowest_hz`` and ``t`` in s from the TORC onset. Its envelope is
    ``E = 1 + depth * S / max|S|`` during the TORC (``depth`` = baphy's modulation depth m),
    0 in the silences before (``pre_ms``) and after (``post_ms``) it and outside
    ``[lowest_hz, highest_hz]``. ``max|S|`` is taken as baphy's generator does, over a grid of
    ``1 / (16 max|w_i|)`` s by ``1 / (16 max(max|Omega_i|, 1 / bandwidth))`` octaves spanning
    the TORC and its bandwidth ``log2(highest_hz / lowest_hz)``.

    Band ``f`` takes the envelope at ``x = log2(cf_hz[f] / lowest_hz)``; bin ``k`` covers
    ``[k dt, (k + 1) dt)`` ms of the trial (silence included) and holds the exact mean of the
    envelope over that interval (a bin straddling the onset or offset averages envelope and
    silence), computed in closed form from the integral of each sine.

    Args:
        cf_hz: ``(F,)`` band centre frequencies (Hz), increasing.
        dt_ms: bin width (ms).
        rates_hz: ``(I,)`` temporal rates ``w_i`` (Hz; the sign sets the direction).
        densities: ripple density ``Omega`` (cycles / octave): one value for every ripple, or ``(I,)``.
        phases_deg: ``(I,)`` phases ``phi_i`` in degrees.
        amplitudes: ``(I,)`` ripple amplitudes ``A_i`` (None: all 1).
        lowest_hz, highest_hz: the TORC's frequency range (Hz).
        duration_ms, pre_ms, post_ms: TORC duration and the silences around it (ms).
        depth: modulation depth m in [0, 1].

    Returns:
        ``(F, T)`` float32 with ``T = round((pre_ms + duration_ms + post_ms) / dt_ms)``; values
        in ``[1 - depth, 1 + depth]`` during the TORC, 0 in silence.
    """
    cf, dt_ms = _check_cf(cf_hz), _check_dt(dt_ms)
    rates = np.atleast_1d(np.asarray(rates_hz, dtype=np.float64))
    n_rip = rates.size
    if rates.ndim != 1 or n_rip == 0 or not np.all(np.isfinite(rates)):
        raise ValueError(f"expected rates_hz of shape (I,), finite, got {np.shape(rates_hz)}")

    def per_ripple(value: Any, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        arr = np.full(n_rip, float(arr)) if arr.ndim == 0 else arr
        if arr.shape != (n_rip,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"expected {what} of shape ({n_rip},) like rates_hz (or one value), got {np.shape(value)}")
        return arr

    omega = per_ripple(densities, "densities")
    phases = np.deg2rad(per_ripple(phases_deg, "phases_deg"))
    amps = per_ripple(1.0 if amplitudes is None else amplitudes, "amplitudes")
    if not 0 < lowest_hz < highest_hz:
        raise ValueError(f"expected 0 < lowest_hz < highest_hz, got {lowest_hz}, {highest_hz}")
    if not duration_ms > 0 or min(pre_ms, post_ms) < 0:
        raise ValueError(f"expected duration_ms > 0 and pre_ms, post_ms >= 0, got {duration_ms}, {pre_ms}, {post_ms}")
    if not 0 <= depth <= 1:
        raise ValueError(f"expected depth in [0, 1], got {depth}")

    # max|S| on baphy's grid
    bandwidth = float(np.log2(highest_hz / lowest_hz))
    dur_s = duration_ms / 1000.0
    t_step = 1.0 / (16.0 * max(np.abs(rates).max(), 1.0 / dur_s))
    x_step = 1.0 / (16.0 * max(np.abs(omega).max(), 1.0 / bandwidth))
    grid_t = np.arange(int(round(dur_s / t_step / 2)) * 2) * t_step
    grid_x = np.arange(int(round(bandwidth / x_step / 2)) * 2) * x_step
    peak = float(np.abs(_ripple_sum(rates, omega, phases, amps, grid_t, grid_x)).max())
    if peak < 1e-7:
        peak = float(np.abs(amps).sum())

    # exact bin means: integrate each sine over the part of the bin inside the TORC
    n_bins = int(round((pre_ms + duration_ms + post_ms) / dt_ms))
    edges = (np.arange(n_bins + 1) * dt_ms - pre_ms) / 1000.0  # s from the TORC onset
    a, b = np.clip(edges[:-1], 0.0, dur_s), np.clip(edges[1:], 0.0, dur_s)
    inside = (b - a)  # (T,) seconds of TORC in each bin
    x = np.log2(cf / lowest_hz)
    spatial = 2 * np.pi * omega[:, None] * x[None, :] + phases[:, None]  # (I, F)
    integral = np.zeros((cf.size, n_bins))
    for i in range(n_rip):
        if rates[i] == 0:
            integral += amps[i] * np.sin(spatial[i])[:, None] * inside[None, :]
        else:
            k = 2 * np.pi * rates[i]
            integral += amps[i] * (np.cos(k * a[None, :] + spatial[i][:, None])
                                   - np.cos(k * b[None, :] + spatial[i][:, None])) / k
    spec = (inside[None, :] + depth * integral / peak) / (dt_ms / 1000.0)
    band_in = (x >= -1e-9) & (x <= bandwidth + 1e-9)
    spec[~band_in] = 0.0
    return spec.astype(np.float32)
