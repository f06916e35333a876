"""A simulated population whose neurons are NOT drawn from the models' family.

The default synthetic population (:mod:`.synthetic`) is AdapTrans + LN: the models' mirror
image, good for unit tests and useless for choosing fitting defaults. Here each neuron is

1. **band-wise compressive input**: ``u[f, t] = x[f, t] ** gamma`` (``gamma`` 0.3-0.7);
2. **synaptic depression** per band (Tsodyks-Markram resources, :func:`depress`): a fresh
   synapse passes ``u``, each bin releases ``U u R`` of its resources ``R``, which recover
   towards 1 with ``tau_rec``; the output is ``u R``. The depletion, hence the adaptation,
   deepens and speeds up with the sound level (not a linear filter);
3. a **spectro-temporal filter** ``strf (F, K)`` (K = 30 lags, 150 ms at 5 ms) on the depressed
   input: ``z[t] = sum_{f, k} strf[f, k] d[f, t - k]``, in units of z's standard deviation;
4. a **rectifying, saturating output** with a threshold:
   ``lambda = r_max q(z) + r_spont``, ``q(z) = [z - theta]_+^2 / ([z - theta]_+^2 + c50^2)``
   (spikes/s; ``r_max`` 150-350), the threshold ``theta`` calibrated so that the neuron
   fires at its target mean rate;
5. **spiking with refractoriness** at 0.5 ms (:func:`simulate_spikes`): in each fine step a
   spike occurs with probability ``1 - exp(-lambda g(a) dt)``, ``a`` the time since the last
   spike, ``g(a) = 0`` up to the absolute refractory time ``tau_abs`` (1-2.5 ms), then
   ``1 - exp(-(a - tau_abs) / tau_rel)`` (relative refractory, ``tau_rel`` 2-6 ms; 1 from
   ``tau_abs + 6 tau_rel`` on); spikes are counted in the dataset's bins.

Neuron types (``neurons["neuron_type"]``): **onset** (strong, slow depression, biphasic
temporal kernel), **sustained** (weak depression, monophasic), **offset** (suppression then
delayed excitation, i.e. a response after the sound ends), **sideband** (excitatory centre,
inhibitory spectral flanks). Target rates are drawn log-uniformly in 6-25 spikes/s.

Stimuli: ``n_clips`` song-like clips of 1.5-2 s drawn by
:func:`deepstrf_utils.stimuli.compose_clip` (tones, noise bands, ripples, chords, shorter
gaps than the default population) on ``n_bands`` log bands from 250 Hz to 8 kHz.

``dataset.ground_truth``: ``rate`` (list of B ``(N, T_i)``: the exact expected spike count
per bin, from the age distribution of the refractory process, so an oracle can be scored),
the per-neuron parameters ``neuron_type, bf_hz, gamma, U, tau_rec_ms, strf (N, F, K),
z_mean, z_std, theta, c50, r_max_hz, r_spont_hz, tau_abs_ms, tau_rel_ms,
target_rate_hz, cc_max_true`` (N,), ``stimulus_events`` and ``shared``. :func:`true_rate`
computes the same expected counts for any stimuli.

Split: 4 test and 4 validation clips drawn per seed (20 % each, at least 1), the rest for
training (12 of 20: about 4,200 training bins of 5 ms).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import cc_raw
from ..spectrogram import band_centre_frequencies
from ..stimuli import compose_clip
from .base import ResponseDataset
from .synthetic import read_or_generate

logger = logging.getLogger(__name__)

__all__ = ["load_mismatched", "generate_mismatched", "true_rate", "depress", "simulate_spikes",
           "expected_counts", "cache_key", "cache_path", "NEURON_TYPES", "DEFAULTS"]

#: bump when the generator changes its output, so that old caches are not reused
GENERATOR_VERSION = 1
#: options of :func:`load_mismatched` and their defaults
DEFAULTS = dict(n_neurons=12, n_clips=20, clip_s=(1.5, 2.0), n_repeats=8, dt_ms=5.0, n_bands=32, seed=0)
#: neuron types and their proportions
NEURON_TYPES = {"onset": 0.3, "sustained": 0.25, "offset": 0.2, "sideband": 0.25}
N_LAGS = 30
FINE_DT_MS = 0.5
MIN_FREQ_HZ, MAX_FREQ_HZ = 250.0, 8000.0
TARGET_RATE_HZ = (6.0, 25.0)


# ----------------------------------------------------------------------------- options and cache
def _options(n_neurons, n_clips, clip_s, n_repeats, dt_ms, n_bands, seed) -> dict:
    given = {"n_neurons": n_neurons, "n_clips": n_clips, "n_repeats": n_repeats, "n_bands": n_bands, "seed": seed}
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"expected {key} as an integer, got {value!r}")
    if min(n_neurons, n_repeats) < 1 or n_clips < 3 or n_bands < 2:
        raise ValueError(f"expected n_neurons, n_repeats >= 1, n_clips >= 3, n_bands >= 2, got {n_neurons}, "
                         f"{n_repeats}, {n_clips}, {n_bands}")
    lo, hi = (float(clip_s), float(clip_s)) if np.ndim(clip_s) == 0 else (float(clip_s[0]), float(clip_s[1]))
    if not 0 < lo <= hi:
        raise ValueError(f"expected clip_s as a duration or a range (low, high) of seconds, 0 < low <= high, "
                         f"got {clip_s!r}")
    steps = float(dt_ms) / FINE_DT_MS
    if not float(dt_ms) > 0 or abs(steps - round(steps)) > 1e-9:
        raise ValueError(f"expected dt_ms a positive multiple of the {FINE_DT_MS} ms spiking step, got {dt_ms}")
    if lo * 1000.0 / float(dt_ms) < 2 * N_LAGS:
        raise ValueError(f"expected clips of at least {2 * N_LAGS} bins of {dt_ms} ms, got clip_s={clip_s!r}")
    return {**{k: int(v) for k, v in given.items()}, "clip_s": [lo, hi], "dt_ms": float(dt_ms)}


def cache_key(**options: Any) -> dict:
    """What identifies a cache of :func:`load_mismatched`: the normalised options, the
    population name and ``GENERATOR_VERSION``; stored in the file and compared when it is read."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)} of the mismatched synthetic population; expected "
                         f"among {sorted(DEFAULTS)}")
    opts = _options(**{**DEFAULTS, **options})
    return {**opts, "population": "mismatched", "generator_version": GENERATOR_VERSION}


def cache_path(root: str | Path = "data", **options: Any) -> Path:
    """Cache file of :func:`load_mismatched`: ``root/synthetic/synthetic_mismatched_<hash>.h5``.

    The hash covers :func:`cache_key`: every option, the population name and ``GENERATOR_VERSION``.
    """
    key = json.dumps(cache_key(**options), sort_keys=True)
    return Path(root) / "synthetic" / f"synthetic_mismatched_{hashlib.sha256(key.encode()).hexdigest()[:12]}.h5"


# ----------------------------------------------------------------------------- the neuron stages
def depress(u: np.ndarray, U: np.ndarray, tau_rec_ms: np.ndarray, dt_ms: float) -> np.ndarray:
    """Synaptic depression (Tsodyks-Markram resources) of inputs ``u (..., F, T)`` in [0, 1].

    Per band, with resources ``R`` (1 at the start): the output is ``d[t] = u[t] R[t]``, bin t
    releases ``U u[t] R[t]`` and the rest recovers towards 1:
    ``R[t + 1] = 1 - (1 - R[t] + U u[t] R[t]) exp(-dt / tau_rec)``. ``U`` and ``tau_rec_ms``
    broadcast against ``u[..., 0]`` (e.g. ``(N, 1)`` per neuron).

    Returns:
        ``d`` of the shape of ``u``, float64.
    """
    u = np.asarray(u, dtype=np.float64)
    decay = np.exp(-float(dt_ms) / np.asarray(tau_rec_ms, dtype=np.float64))
    U = np.asarray(U, dtype=np.float64)
    res = np.ones(u.shape[:-1])
    out = np.empty_like(u)
    for t in range(u.shape[-1]):
        out[..., t] = u[..., t] * res
        res = 1.0 - (1.0 - res + U * out[..., t]) * decay
    return out


def _recovery(tau_abs_ms: np.ndarray, tau_rel_ms: np.ndarray) -> np.ndarray:
    """``(N, A)`` recovery ``g`` at ages 1..A fine steps since the last spike (1 at age A and beyond)."""
    n_age = int(np.ceil(np.max(tau_abs_ms + 6.0 * tau_rel_ms) / FINE_DT_MS)) + 1
    age_ms = np.arange(1, n_age + 1) * FINE_DT_MS
    g = 1.0 - np.exp(-(age_ms[None, :] - tau_abs_ms[:, None]) / tau_rel_ms[:, None])
    g = np.where(age_ms[None, :] <= tau_abs_ms[:, None], 0.0, g)
    g[:, -1] = 1.0
    return g


def _fine(lam_hz: np.ndarray, dt_ms: float) -> np.ndarray:
    """Intensity per bin ``(..., T)`` -> per fine step ``(..., T * steps)`` (held within a bin)."""
    return np.repeat(lam_hz, int(round(dt_ms / FINE_DT_MS)), axis=-1)


def expected_counts(lam_hz: np.ndarray, tau_abs_ms, tau_rel_ms, dt_ms: float) -> np.ndarray:
    """Exact expected spike counts per bin of the refractory process (:func:`simulate_spikes`).

    Propagates the distribution over the time since the last spike (fully recovered at the
    start) through every fine step.

    Args:
        lam_hz: ``(B, N, T)`` intensity (spikes/s), held within each bin of ``dt_ms``.
        tau_abs_ms, tau_rel_ms: ``(N,)`` refractory times.

    Returns:
        ``(B, N, T)`` expected counts per bin.
    """
    g = _recovery(np.asarray(tau_abs_ms, float), np.asarray(tau_rel_ms, float))  # (N, A)
    lam = _fine(np.asarray(lam_hz, dtype=np.float64), dt_ms)
    b, n, steps = lam.shape
    p = np.zeros((b, n, g.shape[1]))
    p[..., -1] = 1.0
    out = np.empty((b, n, steps))
    for s in range(steps):
        hazard = -np.expm1(-lam[..., s, None] * g[None] * (FINE_DT_MS / 1000.0))  # (B, N, A)
        fire = p * hazard
        out[..., s] = fire.sum(-1)
        stay = p - fire
        p = np.concatenate([out[..., s, None], stay[..., :-2], stay[..., -2:].sum(-1, keepdims=True)], axis=-1)
    per_bin = int(round(dt_ms / FINE_DT_MS))
    return out.reshape(b, n, -1, per_bin).sum(-1)


def simulate_spikes(lam_hz: np.ndarray, tau_abs_ms, tau_rel_ms, n_repeats: int, rng, dt_ms: float | None = None):
    """Spike trains of the refractory process at the fine step (0.5 ms).

    In each fine step a neuron whose last spike was ``a`` steps ago fires with probability
    ``1 - exp(-lambda g(a) dt)`` (fully recovered at the start; ``g`` in the module docstring).

    Args:
        lam_hz: ``(B, N, T)`` intensity (spikes/s) per bin of ``dt_ms`` (None: per fine step).
        tau_abs_ms, tau_rel_ms: ``(N,)``. n_repeats: R. rng: ``numpy.random.Generator``.

    Returns:
        ``(B, N, R, T_fine)`` uint8 spikes (0 / 1) per fine step.
    """
    g = _recovery(np.asarray(tau_abs_ms, float), np.asarray(tau_rel_ms, float))
    lam = np.asarray(lam_hz, dtype=np.float64)
    lam = lam if dt_ms is None else _fine(lam, dt_ms)
    b, n, steps = lam.shape
    n_age = g.shape[1]
    age = np.full((b, n, n_repeats), n_age - 1)
    rows = np.arange(n)[None, :, None]
    spikes = np.zeros((b, n, n_repeats, steps), dtype=np.uint8)
    for s in range(steps):
        hazard = -np.expm1(-lam[..., s, None] * g[rows, age] * (FINE_DT_MS / 1000.0))
        fire = rng.random(age.shape) < hazard
        spikes[..., s] = fire
        age = np.where(fire, 0, np.minimum(age + 1, n_age - 1))
    return spikes


def _drive(stimuli: list[np.ndarray], gt: dict, dt_ms: float) -> list[np.ndarray]:
    """Standardised filter output z ``(N, T_i)`` of every stimulus (stages 1-3)."""
    gamma, U, tau = (np.asarray(gt[k], dtype=np.float64) for k in ("gamma", "U", "tau_rec_ms"))
    strf = np.asarray(gt["strf"], dtype=np.float64)
    n, n_f, n_lags = strf.shape
    out = []
    for i, x in enumerate(stimuli):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != n_f:
            raise ValueError(f"expected stimulus {i} of shape (F, T) with F={n_f}, got {x.shape}")
        u = np.clip(x, 0.0, None)[None] ** gamma[:, None, None]          # (N, F, T)
        d = depress(u, U[:, None], tau[:, None], dt_ms)
        t = x.shape[1]
        z = np.zeros((n, t))
        for k in range(min(n_lags, t)):
            z[:, k:] += np.einsum("nf,nft->nt", strf[:, :, k], d[:, :, : t - k])
        out.append((z - np.asarray(gt["z_mean"])[:, None]) / np.asarray(gt["z_std"])[:, None])
    return out


def _intensity(z: np.ndarray, gt: dict) -> np.ndarray:
    """Stage 4: ``(N, T)`` standardised drive -> intensity in spikes/s."""
    theta, c50, r_max, r_spont = (np.asarray(gt[k], dtype=np.float64)[:, None]
                                  for k in ("theta", "c50", "r_max_hz", "r_spont_hz"))
    above = np.clip(z - theta, 0.0, None) ** 2
    return r_max * above / (above + c50 ** 2) + r_spont


def _pad_stack(arrays: list[np.ndarray]) -> np.ndarray:
    t_max = max(a.shape[-1] for a in arrays)
    out = np.zeros((len(arrays),) + arrays[0].shape[:-1] + (t_max,))
    for i, a in enumerate(arrays):
        out[i, ..., : a.shape[-1]] = a
    return out


def _counts_from(lams: list[np.ndarray], gt: dict, dt_ms: float) -> list[np.ndarray]:
    exp = expected_counts(_pad_stack(lams), gt["tau_abs_ms"], gt["tau_rel_ms"], dt_ms)
    return [exp[i, :, : lam.shape[-1]].astype(np.float32) for i, lam in enumerate(lams)]


def true_rate(stimuli: list[np.ndarray], ground_truth: dict) -> list[np.ndarray]:
    """Noiseless responses of the mismatched neurons: expected spike counts per bin.

    Args:
        stimuli: list of ``(F, T_i)`` spectrograms on the dataset's bands and bins.
        ground_truth: ``dataset.ground_truth`` of a mismatched synthetic dataset.

    Returns:
        list of ``(N, T_i)`` float32 arrays (spikes per bin).
    """
    dt_ms = float(ground_truth["shared"]["dt_ms"])
    lams = [_intensity(z, ground_truth) for z in _drive(list(stimuli), ground_truth, dt_ms)]
    return _counts_from(lams, ground_truth, dt_ms)


# ----------------------------------------------------------------------------- the population
def _gamma_kernel(t_ms: np.ndarray, latency_ms: float, width_ms: float) -> np.ndarray:
    u = np.clip(t_ms - max(latency_ms - 2.0 * width_ms, 0.0), 0.0, None) / width_ms
    k = u ** 2 * np.exp(-u)
    return k / k.max()


def _draw_neurons(rng: np.random.Generator, n_neurons: int, cf: np.ndarray, dt_ms: float) -> dict:
    """Per-neuron parameters of stages 1-5 (filter in raw units; z standardised later)."""
    types = list(NEURON_TYPES)
    kind = rng.choice(len(types), size=n_neurons, p=np.array(list(NEURON_TYPES.values())))
    kind[: min(n_neurons, len(types))] = np.arange(min(n_neurons, len(types)))  # every type when N >= 4
    names = np.array([types[k] for k in kind])
    span = np.log2(cf[-1] / cf[0])
    bf = cf[0] * 2 ** rng.uniform(0.1 * span, 0.9 * span, n_neurons)
    t_ms = np.arange(N_LAGS) * dt_ms
    x_oct = np.log2(cf[None, :] / bf[:, None])  # (N, F)
    strf = np.zeros((n_neurons, cf.size, N_LAGS))
    U = np.empty(n_neurons)
    tau_rec = np.empty(n_neurons)
    for n, name in enumerate(names):
        sigma = rng.uniform(0.2, 0.5)
        spectral = np.exp(-0.5 * (x_oct[n] / sigma) ** 2)
        lat, width = rng.uniform(10.0, 25.0), rng.uniform(4.0, 8.0)
        exc = _gamma_kernel(t_ms, lat, width)
        if name == "onset":
            temporal = exc - rng.uniform(0.6, 0.9) * _gamma_kernel(t_ms, lat + rng.uniform(15, 30), 2 * width)
            U[n], tau_rec[n] = rng.uniform(0.3, 0.6), rng.uniform(200.0, 600.0)
        elif name == "sustained":
            temporal = exc
            U[n], tau_rec[n] = rng.uniform(0.02, 0.08), rng.uniform(50.0, 150.0)
        elif name == "offset":
            late = _gamma_kernel(t_ms, lat + rng.uniform(40.0, 70.0), 1.5 * width)
            temporal = late * exc.sum() / late.sum() * rng.uniform(1.0, 1.2) - exc
            U[n], tau_rec[n] = rng.uniform(0.1, 0.3), rng.uniform(100.0, 300.0)
        else:  # sideband: excitatory centre, inhibitory flanks
            spectral = spectral - rng.uniform(0.5, 0.8) * np.exp(-0.5 * (x_oct[n] / (2.5 * sigma)) ** 2)
            temporal = exc
            U[n], tau_rec[n] = rng.uniform(0.1, 0.3), rng.uniform(100.0, 300.0)
        strf[n] = spectral[:, None] * temporal[None, :]
    offset = names == "offset"
    target = np.exp(rng.uniform(*np.log(TARGET_RATE_HZ), n_neurons))
    return {
        "neuron_type": names,
        "bf_hz": bf,
        "gamma": rng.uniform(0.3, 0.7, n_neurons),
        "U": U,
        "tau_rec_ms": tau_rec,
        "strf": strf,
        "theta": np.zeros(n_neurons),  # set by the rate calibration
        "c50": rng.uniform(1.0, 2.5, n_neurons),
        "r_max_hz": rng.uniform(150.0, 350.0, n_neurons),
        # offset neurons fire spontaneously more, so that suppression during the sound shows
        "r_spont_hz": target * np.where(offset, rng.uniform(0.2, 0.4, n_neurons), rng.uniform(0.05, 0.2, n_neurons)),
        "tau_abs_ms": rng.uniform(1.0, 2.5, n_neurons),
        "tau_rel_ms": rng.uniform(2.0, 6.0, n_neurons),
        "target_rate_hz": target,
    }


def _threshold_for(z: np.ndarray, goal_hz: np.ndarray, gt: dict) -> np.ndarray:
    """Per neuron, the threshold theta whose mean intensity over ``z (N, L)`` is ``goal_hz`` (bisection)."""
    lo, hi = np.full(z.shape[0], -20.0), np.full(z.shape[0], 20.0)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        mean = _intensity(z, {**gt, "theta": mid}).mean(axis=1)
        lo, hi = np.where(mean > goal_hz, mid, lo), np.where(mean > goal_hz, hi, mid)
    return 0.5 * (lo + hi)


def generate_mismatched(n_neurons: int = 12, n_clips: int = 20, clip_s=(1.5, 2.0), n_repeats: int = 8,
                        dt_ms: float = 5.0, n_bands: int = 32, seed: int = 0) -> ResponseDataset:
    """Generate the mismatched population (no cache); see the module docstring for the model.

    Stimuli, neurons and spikes use independent random streams derived from ``seed``.

    Returns:
        ResponseDataset: B = n_clips stimuli ``(F, T_i)``, responses ``(N, R, T_i)`` spike counts.
    """
    opts = _options(n_neurons, n_clips, clip_s, n_repeats, dt_ms, n_bands, seed)
    rng_stim, rng_neur, rng_spk = (np.random.default_rng(s) for s in np.random.SeedSequence(opts["seed"]).spawn(3))
    cf = band_centre_frequencies(n_bands, MIN_FREQ_HZ, MAX_FREQ_HZ)
    stimuli, events = [], []
    for _ in range(n_clips):
        n_bins = int(round(rng_stim.uniform(*opts["clip_s"]) * 1000.0 / dt_ms))
        spec, ev = compose_clip(cf, n_bins, dt_ms=dt_ms, rng=rng_stim, gap_ms=(20.0, 300.0), hold_ms=(30.0, 400.0),
                                fall_ms=(0.0, 150.0))
        stimuli.append(spec)
        events.append(ev)

    gt = _draw_neurons(rng_neur, n_neurons, cf, dt_ms)
    gt.update(z_mean=np.zeros(n_neurons), z_std=np.ones(n_neurons))
    raw = np.concatenate(_drive(stimuli, gt, dt_ms), axis=1)
    gt["z_mean"], gt["z_std"] = raw.mean(axis=1), np.where(raw.std(axis=1) > 0, raw.std(axis=1), 1.0)
    z = _drive(stimuli, gt, dt_ms)
    # calibration: the threshold theta is set (bisection) so that the mean intensity meets a
    # goal, and the goal is corrected a few times so the exact expected rate (after
    # refractoriness) meets the neuron's target rate; the peak intensity stays r_max + r_spont
    zz = np.concatenate(z, axis=1)
    goal = gt["target_rate_hz"].copy()
    for _ in range(4):
        gt["theta"] = _threshold_for(zz, goal, gt)
        rates = _counts_from([_intensity(zi, gt) for zi in z], gt, dt_ms)
        mean_hz = np.concatenate(rates, axis=1).mean(axis=1) * 1000.0 / dt_ms
        goal = goal * gt["target_rate_hz"] / mean_hz
    lams = [_intensity(zi, gt) for zi in z]
    rates = _counts_from(lams, gt, dt_ms)
    per_bin = int(round(dt_ms / FINE_DT_MS))
    spikes = simulate_spikes(_pad_stack(lams), gt["tau_abs_ms"], gt["tau_rel_ms"], n_repeats, rng_spk, dt_ms)
    responses = []
    for i, r in enumerate(rates):
        t = r.shape[1]
        fine = spikes[i, :, :, : t * per_bin].reshape(n_neurons, n_repeats, t, per_bin)
        responses.append(fine.sum(-1).astype(np.float32))

    all_rate = np.concatenate(rates, axis=1).astype(np.float64)
    cc_true = cc_raw(all_rate, np.concatenate(responses, axis=2).astype(np.float64))  # the ceiling cc_max estimates
    gt.update(rate=rates, cc_max_true=cc_true, stimulus_events=events, shared={
        "dt_ms": float(dt_ms), "fine_dt_ms": FINE_DT_MS, "n_lags": N_LAGS, "population": "mismatched",
        "model": "x**gamma -> synaptic depression (U, tau_rec) -> strf -> r_max q(z) + r_spont, "
                 "q = [z - theta]_+^2 / ([z - theta]_+^2 + c50^2) -> refractory spiking at 0.5 ms",
    })
    ids = [f"mis{n:03d}" for n in range(n_neurons)]
    neurons = pd.DataFrame({"id": ids, "bf_hz": gt["bf_hz"], "neuron_type": gt["neuron_type"],
                            "mean_rate_hz": all_rate.mean(axis=1) * 1000.0 / dt_ms, "cc_max_true": cc_true})
    n_held = max(1, int(round(0.2 * n_clips)))
    return ResponseDataset(
        stimuli=stimuli, responses=responses, dt_ms=dt_ms, cf_hz=cf, neuron_ids=ids, neurons=neurons,
        stim_names=[f"clip_{i:02d}" for i in range(n_clips)], stim_types=["synthetic"] * n_clips,
        name="synthetic_mismatched",
        split_spec={"test": "random", "n_test": n_held, "n_val": n_held,
                    "description": "mismatched synthetic: random test and validation clips per seed"},
        ground_truth=gt,
        meta={"source": "deepstrf_utils.datasets.synthetic_mismatched", "generator_version": GENERATOR_VERSION,
              "options": {**opts, "population": "mismatched"},
              "units": "spike counts per bin; stimulus in thresholded log-power [0, 1]"},
    )


def load_mismatched(root: str | Path = "data", cache: bool = True, **options: Any) -> ResponseDataset:
    """The mismatched population, read from its cache or generated (and cached) if absent.

    Args:
        root: data folder; the cache is :func:`cache_path` (``root/synthetic/...``).
        cache: read / write the cache file (False: always generate, write nothing).
        **options: ``n_neurons=12, n_clips=20, clip_s=(1.5, 2.0), n_repeats=8, dt_ms=5.0,
            n_bands=32, seed=0`` (:data:`DEFAULTS`).

    Returns:
        ResponseDataset with ``ground_truth`` (module docstring).
    """
    opts = {**DEFAULTS, **options}
    return read_or_generate(cache_path(root, **options), lambda: generate_mismatched(**opts), cache,
                            options=cache_key(**options))
