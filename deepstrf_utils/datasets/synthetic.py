"""A simulated auditory-cortex population with known ground truth: the embedded default.

:func:`load_synthetic` returns a :class:`ResponseDataset` generated deterministically from
its options (seconds on a laptop) and cached to ``root/synthetic/synthetic_<hash>.h5``.

Stimuli (NS1-like): ``n_clips`` clips of ``round(clip_s / dt) - 1`` bins (999 bins of 5 ms
for 5 s, like NS1's 4.995 s clips) on ``n_bands`` log-spaced bands from 500 Hz to
22.6 kHz (34 bands, 1/6 octave apart), in thresholded log-power units in [0, 1], built by
:func:`deepstrf_utils.stimuli.compose_clip`: tones, noise bands, moving ripples and a few
dynamic random chords, with varied rise and fall times, separated by silences of varied
length — the sound onsets, offsets and sustained parts that make ON/OFF adaptation matter.

Neurons: each neuron n is the model

``rate_n(t) = gain_n * softplus( sum_{c, f, k} strf[n, c, f, k] * y_n[c, f, t - k] + bias_n )``

in spikes per bin, where ``y_n = relu(AdapTrans(x; a_on[n], a_off[n], w[n]))`` is the
(rectified) ON/OFF prefiltered spectrogram (``adaptrans_filter``, ``rectify="relu"``,
replicate padding) and the STRF has ``K = 20`` lags (100 ms, zero padding before the clip
start). Per neuron: a best frequency ``bf_hz``, a spectral bandwidth, a latency, a
biphasic temporal profile, an ON/OFF balance ``onoff_balance`` in [-1, 1] (ON-dominated
near +1, OFF near -1, ON-OFF near 0; the ON channel gets weight ``(1 + b) / 2`` and the OFF
channel ``(1 - b) / 2``), time constants on the Willmore curve scaled by a per-neuron
factor in [0.5, 2] (``tau_on`` and ``tau_off`` independent), and ``w`` in [0.5, 0.95].
Gain and bias are calibrated so that each neuron fires at a target mean rate (5-40
spikes/s; the deliberately noisy neurons 1.5-4 spikes/s with a weak drive). Spikes are
Poisson per bin, ``n_repeats`` independent trials.

``dataset.ground_truth`` holds ``rate`` (list of B ``(N, T_i)`` noiseless rates),
``strf (N, 2, F, K)``, ``a_on, a_off, w, tau_on_ms, tau_off_ms (N, F)``, ``bf_hz,
latency_ms, onoff_balance, noisy, gain, bias, target_rate_hz, cc_max_true (N,)``,
``stimulus_events`` (per clip, the sounds of :func:`compose_clip`) and ``shared``
(kernel size, rectification, nonlinearity, lags). ``cc_max_true`` is the correlation of
the true rate with the trial-averaged response over all clips: the ceiling that ``cc_max``
estimates. The ``neurons`` table has ``id, bf_hz, onoff_type, noisy, snr, noise_ratio,
mean_rate_hz, cc_max_true``; ``snr = Var_t(rate) / mean_t(rate)`` is the per-trial ratio of
signal variance to Poisson noise variance, ``noise_ratio = 1 / snr``.

Split rule: 4 clips drawn at random for the test set (per seed), 2 for validation, the rest
for training (scaled with ``n_clips``: 20 % and 10 %, at least 1 each).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from ..adaptrans import AdapTrans, adaptrans_filter, default_kernel_size, willmore_tau_ms
from ..spectrogram import band_centre_frequencies
from ..stimuli import compose_clip
from .base import ResponseDataset

logger = logging.getLogger(__name__)

#: bump when the generator changes its output, so that old caches are not reused
GENERATOR_VERSION = 1
#: STRF lags of the ground-truth neurons (K = 20 bins = 100 ms at 5 ms)
N_LAGS = 20
MIN_FREQ_HZ = 500.0
MAX_FREQ_HZ = 22627.0
#: fraction of neurons made deliberately noisy (low rate, weak drive); at least one when N >= 4
NOISY_FRACTION = 0.15
#: ON-dominated, OFF-dominated and ON-OFF neurons, in these proportions
ONOFF_TYPES = {"ON": 0.45, "OFF": 0.2, "ON-OFF": 0.35}
#: highest instantaneous rate of a ground-truth neuron (spikes/s)
MAX_PEAK_HZ = 400.0


def _options(n_neurons, n_clips, clip_s, n_repeats, dt_ms, n_bands, seed) -> dict:
    """Validated, normalised options (the key of the cache hash)."""
    given = {"n_neurons": n_neurons, "n_clips": n_clips, "n_repeats": n_repeats, "n_bands": n_bands, "seed": seed}
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"expected {key} as an integer, got {value!r}")
    if min(n_neurons, n_clips, n_repeats) < 1:
        raise ValueError(f"expected n_neurons, n_clips, n_repeats >= 1, got {n_neurons}, {n_clips}, {n_repeats}")
    if n_clips < 3:
        raise ValueError(f"expected n_clips >= 3 (train, validation and test clips), got {n_clips}")
    if n_bands < 2:
        raise ValueError(f"expected n_bands >= 2, got {n_bands}")
    if not float(dt_ms) > 0:
        raise ValueError(f"expected dt_ms > 0, got {dt_ms}")
    n_bins = int(round(float(clip_s) * 1000.0 / float(dt_ms))) - 1
    if n_bins < 2 * N_LAGS:
        raise ValueError(
            f"expected clip_s long enough for at least {2 * N_LAGS} bins of {dt_ms} ms, got clip_s={clip_s}"
        )
    return {**{k: int(v) for k, v in given.items()}, "clip_s": float(clip_s), "dt_ms": float(dt_ms)}


def cache_key(**options: Any) -> dict:
    """What identifies a synthetic cache: the normalised options (defaults filled in) and
    ``GENERATOR_VERSION``; stored in the cache file and compared when it is read."""
    defaults = dict(n_neurons=50, n_clips=20, clip_s=5.0, n_repeats=20, dt_ms=5.0, n_bands=34, seed=0)
    unknown = set(options) - set(defaults)
    if unknown:
        raise ValueError(f"unknown synthetic options {sorted(unknown)}; expected among {sorted(defaults)}")
    defaults.update(options)
    return {**_options(**defaults), "generator_version": GENERATOR_VERSION}


def cache_path(root: str | Path = "data", **options: Any) -> Path:
    """Cache file of :func:`load_synthetic` for these options: ``root/synthetic/synthetic_<hash>.h5``.

    The hash (12 hex digits of SHA-256) covers every option and ``GENERATOR_VERSION``
    (:func:`cache_key`).
    """
    key = json.dumps(cache_key(**options), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(root) / "synthetic" / f"synthetic_{digest}.h5"


def _temporal_profile(rng: np.random.Generator, latency_ms: float, dt_ms: float) -> np.ndarray:
    """Biphasic temporal kernel (K,): gamma-shaped excitation peaking at ``latency_ms``,
    then a weaker, slower suppression; k = 0 is the present bin."""
    t = np.arange(N_LAGS) * dt_ms
    width = rng.uniform(3.0, 8.0)
    onset = max(latency_ms - 2.0 * width, 0.0)
    u = np.clip(t - onset, 0.0, None) / width
    exc = u ** 2 * np.exp(-u)
    exc /= exc.max()
    inh_delay = latency_ms + rng.uniform(15.0, 30.0)
    inh_width = rng.uniform(10.0, 20.0)
    inh = np.exp(-0.5 * ((t - inh_delay) / inh_width) ** 2)
    return exc - rng.uniform(0.2, 0.5) * inh


def _spectral_profile(cf: np.ndarray, bf_hz: float, sigma_oct: float) -> np.ndarray:
    return np.exp(-0.5 * (np.log2(cf / bf_hz) / sigma_oct) ** 2)


def _draw_neurons(rng: np.random.Generator, n_neurons: int, cf: np.ndarray, dt_ms: float) -> dict:
    """Per-neuron parameters of the ground-truth models (unscaled STRFs)."""
    n_f = cf.size
    span = np.log2(cf[-1] / cf[0])
    types = list(ONOFF_TYPES)
    kind = rng.choice(len(types), size=n_neurons, p=np.array(list(ONOFF_TYPES.values())))
    balance = np.where(kind == 0, rng.uniform(0.5, 1.0, n_neurons),
                       np.where(kind == 1, rng.uniform(-1.0, -0.5, n_neurons), rng.uniform(-0.3, 0.3, n_neurons)))
    bf = cf[0] * 2 ** rng.uniform(0.05 * span, 0.95 * span, n_neurons)
    off_shift = rng.uniform(-0.3, 0.3, n_neurons)  # octaves between ON and OFF fields
    sigma = rng.uniform(0.25, 0.8, n_neurons)
    latency = rng.uniform(10.0, 30.0, n_neurons)
    off_delay = rng.uniform(0.0, 15.0, n_neurons)
    factor_on = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_neurons))
    factor_off = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_neurons))
    w = rng.uniform(0.5, 0.95, n_neurons)
    n_noisy = max(1, int(round(NOISY_FRACTION * n_neurons))) if n_neurons >= 4 else 0
    noisy = np.zeros(n_neurons, dtype=bool)
    noisy[rng.choice(n_neurons, size=n_noisy, replace=False)] = True
    strength = np.where(noisy, rng.uniform(0.4, 0.8, n_neurons), rng.uniform(1.5, 3.0, n_neurons))
    threshold = rng.uniform(-1.5, 0.0, n_neurons)
    target = np.where(noisy, np.exp(rng.uniform(np.log(1.5), np.log(4.0), n_neurons)),
                      np.exp(rng.uniform(np.log(5.0), np.log(40.0), n_neurons)))

    strf = np.zeros((n_neurons, 2, n_f, N_LAGS))
    for n in range(n_neurons):
        on = _spectral_profile(cf, bf[n], sigma[n])[:, None] * _temporal_profile(rng, latency[n], dt_ms)[None]
        off = (_spectral_profile(cf, bf[n] * 2 ** off_shift[n], sigma[n])[:, None]
               * _temporal_profile(rng, latency[n] + off_delay[n], dt_ms)[None])
        strf[n, 0] = 0.5 * (1 + balance[n]) * on
        strf[n, 1] = 0.5 * (1 - balance[n]) * off

    tau_w = willmore_tau_ms(cf)
    tau_on = factor_on[:, None] * tau_w[None, :]
    tau_off = factor_off[:, None] * tau_w[None, :]
    return {
        "strf": strf,
        "tau_on_ms": tau_on,
        "tau_off_ms": tau_off,
        "a_on": np.exp(-dt_ms / tau_on),
        "a_off": np.exp(-dt_ms / tau_off),
        "w": np.repeat(w[:, None], n_f, axis=1),
        "bf_hz": bf,
        "latency_ms": latency,
        "onoff_balance": balance,
        "onoff_type": np.array([types[k] for k in kind]),
        "tau_factor_on": factor_on,
        "tau_factor_off": factor_off,
        "noisy": noisy,
        "strength": strength,
        "threshold": threshold,
        "target_rate_hz": target,
    }


def _prefilter(stim: np.ndarray, params: dict, kernel_size: int) -> torch.Tensor:
    """Each neuron's rectified AdapTrans output for stimuli (B, F, T) -> (B, N, 2, F, T) float32."""
    n, n_f = params["a_on"].shape
    b, _, t = stim.shape
    x = torch.from_numpy(np.ascontiguousarray(stim, dtype=np.float32))
    x = x.unsqueeze(1).repeat(1, n, 1, 1).reshape(b, 1, n * n_f, t)  # neurons stacked along bands
    y = adaptrans_filter(
        x,
        torch.from_numpy(params["a_on"].reshape(-1)),
        torch.from_numpy(params["a_off"].reshape(-1)),
        torch.from_numpy(params["w"].reshape(-1)),
        kernel_size,
        rectify="relu",
    )  # (B, 2, N*F, T)
    return y.reshape(b, 2, n, n_f, t).transpose(1, 2)


def _linear_drive(y: torch.Tensor, strf: np.ndarray) -> np.ndarray:
    """Causal STRF of each neuron on its own prefiltered input: (B, N, 2, F, T) -> (B, N, T) float64.

    ``z[b, n, t] = sum_{c, f, k} strf[n, c, f, k] * y[b, n, c, f, t - k]`` (zero before t = 0).
    """
    b, n, c, n_f, t = y.shape
    w = torch.from_numpy(np.asarray(strf, dtype=np.float32)).reshape(n, c * n_f, -1)
    per_lag = torch.matmul(w.transpose(1, 2).unsqueeze(0), y.reshape(b, n, c * n_f, t))  # (B, N, K, T)
    z = torch.zeros(b, n, t)
    for k in range(min(w.shape[-1], t)):
        z[..., k:] += per_lag[:, :, k, : t - k]
    return z.numpy().astype(np.float64)


def _drive(stimuli: list[np.ndarray], params: dict, strf: np.ndarray, kernel_size: int,
           chunk: int = 4) -> list[np.ndarray]:
    """Linear drive (N, T_i) of every stimulus, a few equal-length stimuli per call."""
    out: list[np.ndarray] = []
    with torch.no_grad():
        i = 0
        while i < len(stimuli):
            j = i + 1
            while j < len(stimuli) and j - i < chunk and stimuli[j].shape == stimuli[i].shape:
                j += 1
            y = _prefilter(np.stack(stimuli[i:j]), params, kernel_size)
            out.extend(list(_linear_drive(y, strf)))
            i = j
    return out


def true_rate(stimuli: list[np.ndarray], ground_truth: dict) -> list[np.ndarray]:
    """Noiseless rates (spikes/bin) of the ground-truth neurons for any stimuli.

    Args:
        stimuli: list of ``(F, T_i)`` spectrograms on the dataset's bands.
        ground_truth: ``dataset.ground_truth`` of a synthetic dataset.

    Returns:
        list of ``(N, T_i)`` float32 arrays.
    """
    params = {k: np.asarray(ground_truth[k], dtype=np.float64) for k in ("a_on", "a_off", "w")}
    strf = np.asarray(ground_truth["strf"], dtype=np.float64)
    if strf.shape[1:3] != (2, params["a_on"].shape[1]):
        raise ValueError(f"expected ground_truth['strf'] of shape (N, 2, F, K), got {strf.shape}")
    gain, bias = np.asarray(ground_truth["gain"]), np.asarray(ground_truth["bias"])
    kernel_size = int(ground_truth["shared"]["adaptrans_kernel_size"])
    stims = []
    for i, s in enumerate(stimuli):
        s = np.asarray(s, dtype=np.float32)
        if s.ndim != 2 or s.shape[0] != strf.shape[2]:
            raise ValueError(f"expected stimulus {i} of shape (F, T) with F={strf.shape[2]}, got {s.shape}")
        stims.append(s)
    drive = _drive(stims, params, strf, kernel_size)
    return [(gain[:, None] * np.logaddexp(0.0, z + bias[:, None])).astype(np.float32) for z in drive]


def _limit_strength(zn: np.ndarray, strength: np.ndarray, threshold: np.ndarray,
                    target_hz: np.ndarray) -> np.ndarray:
    """Largest strength <= the drawn one whose peak rate is at most ``MAX_PEAK_HZ``.

    ``zn (N, T)`` is the unit-variance drive; with ``v = softplus(s zn + threshold)`` and a
    gain setting the mean rate to ``target_hz``, the peak rate is ``target_hz max(v) / mean(v)``,
    which grows with ``s``. Bisection per neuron (vectorised over neurons).
    """
    def peak(s):
        v = np.logaddexp(0.0, s[:, None] * zn + threshold[:, None])
        return target_hz * v.max(axis=1) / v.mean(axis=1)

    ok = peak(strength) <= MAX_PEAK_HZ
    lo, hi = np.zeros_like(strength), strength.copy()
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        good = peak(mid) <= MAX_PEAK_HZ
        lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
    return np.where(ok, strength, lo)


def generate_synthetic(n_neurons: int = 50, n_clips: int = 20, clip_s: float = 5.0, n_repeats: int = 20,
                       dt_ms: float = 5.0, n_bands: int = 34, seed: int = 0) -> ResponseDataset:
    """Generate the synthetic dataset (no cache); see the module docstring for the model.

    Stimuli, neurons and spikes use independent random streams derived from ``seed``, so
    the stimuli do not change with ``n_neurons`` or ``n_repeats``.

    Returns:
        ResponseDataset: B = n_clips stimuli ``(F, T)``, responses ``(N, R, T)`` spike counts.
    """
    opts = _options(n_neurons, n_clips, clip_s, n_repeats, dt_ms, n_bands, seed)
    n_bins = int(round(opts["clip_s"] * 1000.0 / dt_ms)) - 1
    rng_stim, rng_neur, rng_spk = (np.random.default_rng(s) for s in np.random.SeedSequence(opts["seed"]).spawn(3))
    cf = band_centre_frequencies(n_bands, MIN_FREQ_HZ, MAX_FREQ_HZ)

    stimuli, events = [], []
    for _ in range(n_clips):
        spec, ev = compose_clip(cf, n_bins, dt_ms=dt_ms, rng=rng_stim)
        stimuli.append(spec)
        events.append(ev)

    p = _draw_neurons(rng_neur, n_neurons, cf, dt_ms)
    kernel_size = default_kernel_size(np.concatenate([p["tau_on_ms"].ravel(), p["tau_off_ms"].ravel()]), dt_ms)
    drive = _drive(stimuli, p, p["strf"], kernel_size)
    # calibrate: unit-variance drive scaled by `strength`, shifted to `threshold`; the
    # strength is lowered where needed so that the peak rate stays below MAX_PEAK_HZ
    allz = np.concatenate(drive, axis=1)
    mu, sd = allz.mean(axis=1), allz.std(axis=1)
    sd = np.where(sd > 0, sd, 1.0)
    p["strength"] = _limit_strength((allz - mu[:, None]) / sd[:, None], p["strength"], p["threshold"],
                                    p["target_rate_hz"])
    scale = p["strength"] / sd
    strf = p["strf"] * scale[:, None, None, None]
    bias = p["threshold"] - mu * scale
    nl = [np.logaddexp(0.0, scale[:, None] * z + bias[:, None]) for z in drive]
    mean_nl = np.concatenate(nl, axis=1).mean(axis=1)
    gain = p["target_rate_hz"] * dt_ms / 1000.0 / mean_nl
    rates = [(gain[:, None] * v).astype(np.float32) for v in nl]

    responses = [rng_spk.poisson(np.broadcast_to(r[:, None, :], (n_neurons, n_repeats, n_bins))).astype(np.float32)
                 for r in rates]

    all_rate = np.concatenate(rates, axis=1).astype(np.float64)
    all_mean = np.concatenate([r.mean(axis=1) for r in responses], axis=1).astype(np.float64)
    rc = all_rate - all_rate.mean(axis=1, keepdims=True)
    mc = all_mean - all_mean.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cc_true = (rc * mc).sum(1) / np.sqrt((rc ** 2).sum(1) * (mc ** 2).sum(1))
        snr = all_rate.var(axis=1) / all_rate.mean(axis=1)

    ids = [f"syn{n:03d}" for n in range(n_neurons)]
    neurons = pd.DataFrame({
        "id": ids,
        "bf_hz": p["bf_hz"],
        "onoff_type": p["onoff_type"],
        "noisy": p["noisy"],
        "snr": snr,
        "noise_ratio": 1.0 / snr,
        "mean_rate_hz": all_rate.mean(axis=1) * 1000.0 / dt_ms,
        "cc_max_true": cc_true,
    })
    ground_truth = {
        "rate": rates,
        "strf": strf,
        "a_on": p["a_on"],
        "a_off": p["a_off"],
        "w": p["w"],
        "tau_on_ms": p["tau_on_ms"],
        "tau_off_ms": p["tau_off_ms"],
        "bf_hz": p["bf_hz"],
        "latency_ms": p["latency_ms"],
        "onoff_balance": p["onoff_balance"],
        "onoff_type": p["onoff_type"],
        "tau_factor_on": p["tau_factor_on"],
        "tau_factor_off": p["tau_factor_off"],
        "noisy": p["noisy"],
        "gain": gain,
        "bias": bias,
        "target_rate_hz": p["target_rate_hz"],
        "cc_max_true": cc_true,
        "stimulus_events": events,
        "shared": {
            "adaptrans_kernel_size": int(kernel_size),
            "rectify": "relu",
            "n_lags": N_LAGS,
            "nonlinearity": "rate = gain * softplus(strf * relu(adaptrans(x)) + bias), spikes per bin",
            "strf_padding": "zeros before the clip start; AdapTrans replicates the first frame",
        },
    }
    n_test = max(1, int(round(0.2 * n_clips)))
    n_val = max(1, int(round(0.1 * n_clips)))
    return ResponseDataset(
        stimuli=stimuli,
        responses=responses,
        dt_ms=dt_ms,
        cf_hz=cf,
        neuron_ids=ids,
        neurons=neurons,
        stim_names=[f"clip_{i:02d}" for i in range(n_clips)],
        stim_types=["synthetic"] * n_clips,
        name="synthetic",
        split_spec={"test": "random", "n_test": n_test, "n_val": n_val,
                    "description": "synthetic: random test and validation clips per seed"},
        ground_truth=ground_truth,
        meta={"source": "deepstrf_utils.datasets.synthetic", "generator_version": GENERATOR_VERSION,
              "options": opts, "units": "spike counts per bin; stimulus in thresholded log-power [0, 1]"},
    )


def load_synthetic(root: str | Path = "data", n_neurons: int = 50, n_clips: int = 20, clip_s: float = 5.0,
                   n_repeats: int = 20, dt_ms: float = 5.0, n_bands: int = 34, seed: int = 0,
                   cache: bool = True) -> ResponseDataset:
    """The synthetic dataset, read from its cache or generated (and cached) if absent.

    Args:
        root: data folder; the cache is ``root/synthetic/synthetic_<hash of options>.h5``.
        n_neurons (N), n_clips (B), clip_s, n_repeats (R), dt_ms, n_bands (F), seed: options.
        cache: read / write the cache file (False: always generate, write nothing).

    Returns:
        ResponseDataset with ``ground_truth`` (see the module docstring).
    """
    opts = dict(n_neurons=n_neurons, n_clips=n_clips, clip_s=clip_s, n_repeats=n_repeats, dt_ms=dt_ms,
                n_bands=n_bands, seed=seed)
    return read_or_generate(cache_path(root, **opts), lambda: generate_synthetic(**opts), cache,
                            options=cache_key(**opts))


def read_or_generate(path: Path, generate, cache: bool = True, options: dict | None = None) -> ResponseDataset:
    """The dataset cached at ``path``, or ``generate()`` written there (``cache=False``: generate only).

    ``options``: what identifies the cache (e.g. :func:`cache_key`), stored in the file and
    compared when it is read. A cache file that is unreadable, damaged, of an older schema or
    written for other options is logged (naming what differs) and regenerated.
    """
    if cache and path.is_file():
        try:
            ds = ResponseDataset.from_hdf5(path, options=options)
            logger.info("synthetic dataset read from cache %s", path)
            return ds
        except (ValueError, OSError, KeyError) as exc:
            logger.warning("ignoring unreadable synthetic cache %s (%s); regenerating", path, exc)
    ds = generate()
    if cache:
        ds.to_hdf5(path, options=options)
    return ds


class GroundTruthNeurons:
    """The synthetic population's true neurons as a callable model (no gradients).

    ``ground_truth``: a synthetic dataset's ``ground_truth``; ``cf_hz`` ``(F,)`` and ``dt_ms``
    its bands and bin width. Calling it maps a stimulus batch ``(B, 1, F, T)`` (tensor) to the
    noiseless rates ``(B, N, T)`` (spikes per bin, float32 tensor), through
    :func:`true_rate`. :meth:`prefilter_of` returns neuron
    ``n``'s true AdapTrans (its own tau ON / OFF and w per band, rectified, fixed), so that the
    in-silico experiments (:func:`deepstrf_utils.interpret.insilico_models.model_onoff_curves`) can put the
    truth beside fitted models.
    """

    def __init__(self, ground_truth: Mapping, cf_hz, dt_ms: float):
        for key in ("strf", "a_on", "a_off", "w", "tau_on_ms", "tau_off_ms", "gain", "bias", "shared"):
            if key not in ground_truth:
                raise ValueError(f"expected a synthetic dataset's ground_truth with key {key!r}")
        self.ground_truth = ground_truth
        self.cf_hz = np.asarray(cf_hz, dtype=np.float64)
        self.dt_ms = float(dt_ms)
        self.n_bands = int(self.cf_hz.size)
        self.n_neurons = int(np.asarray(ground_truth["strf"]).shape[0])
        self.training = False

    def eval(self):
        """No-op (API of ``nn.Module``)."""
        return self

    def train(self, mode: bool = True):
        """No-op (API of ``nn.Module``)."""
        return self

    def __call__(self, x):
        if not hasattr(x, "shape") or len(x.shape) != 4 or x.shape[1] != 1 or x.shape[2] != self.n_bands:
            raise ValueError(f"expected a stimulus of shape (B, 1, F, T) with F={self.n_bands}, got "
                             f"{tuple(x.shape) if hasattr(x, 'shape') else type(x).__name__}")
        stims = [np.asarray(s, dtype=np.float32) for s in x[:, 0].detach().cpu().numpy()]
        return torch.as_tensor(np.stack(true_rate(stims, self.ground_truth)))

    def prefilter_of(self, n: int):
        """Neuron ``n``'s true AdapTrans: a fixed ``AdapTrans`` (rectified) with its parameters."""
        gt = self.ground_truth
        pre = AdapTrans(self.n_bands, dt_ms=self.dt_ms, cf_hz=self.cf_hz, tau_ms=np.asarray(gt["tau_on_ms"])[n],
                        kernel_size=int(gt["shared"]["adaptrans_kernel_size"]), learnable=False,
                        rectify=gt["shared"].get("rectify", "relu"))
        with torch.no_grad():
            for name, key in (("logit_a_on", "a_on"), ("logit_a_off", "a_off"), ("logit_w", "w")):
                p = np.asarray(gt[key], dtype=np.float64)[n]
                getattr(pre, name).copy_(torch.as_tensor(np.log(p) - np.log1p(-p)))
        pre.clear_cache()
        return pre
