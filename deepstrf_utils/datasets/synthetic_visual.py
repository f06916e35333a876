"""A simulated visual population with known ground truth: the embedded default for vision.

:func:`load_synthetic_visual` returns a :class:`~.movies.MovieDataset` generated
deterministically from its options (about a second for the defaults).

Stimuli (luminance movies in [0, 1] around grey 0.5, :mod:`deepstrf_utils.visual_stimuli`):
each movie is four segments in a random order, binary white noise, a natural-like movie (a
window drifting and jumping over a 1/f image), a drifting grating (the directions in turn
over the movies) and full-field ON and OFF flashes of varied contrast and duration, so that
every random split of the movies (training, validation for early stopping, test) holds
every kind (with one kind per movie, a validation set of gratings alone kept the early
stop of the AdapTrans CNN at its first epoch).

Neurons (drawn from the models' own family: AdapTrans per pixel + a linear receptive field
+ softplus): neuron n fires

``rate_n(t) = amplitude_n * softplus( sum_{h, w, k} rf[n, h, w, k] z_n[h, w, t - k] + bias_n ) * (1 + behaviour_gain_n * running(t))``

spikes per frame, where ``z_n`` is the luminance contrast ``x - 0.5`` for a **sustained**
neuron and, for an **adapting (transient)** neuron, its polarity's rectified AdapTrans
channel of the luminance (``relu(ON)`` for an ON cell, ``relu(OFF)`` for an OFF cell;
``adaptrans_filter`` per pixel with the neuron's ``tau_ms`` and ``w``). The receptive field
is a difference of Gaussians (centre ``sigma_centre``, surround ``sigma_surround`` with
relative weight ``surround_weight``) times a monophasic temporal kernel of ``N_LAGS``
frames; its sign is the polarity for sustained cells (ON +, OFF -) and + for adapting
cells (the polarity is in the channel). A **direction-selective** neuron's centre moves
with the lag (``speed_px`` pixels per frame against ``direction_deg``), so it prefers motion
in ``direction_deg``. A third of the neurons have a **behavioural gain** on the running
speed (``dataset.states``, name ``"running"``: a slow random signal, 0 when still; one
trace per movie, the same on every repeat). Spikes are Poisson, ``n_repeats`` trials.

``dataset.ground_truth``: ``rate`` (list of B ``(N, T_i)``), ``segments`` (per movie
``"kind:start-stop,..."``, :func:`movie_segments`), per neuron ``polarity`` (+1 ON,
-1 OFF), ``centre_xy (N, 2)`` (pixels, the centre at the peak lag), ``sigma_centre``,
``sigma_surround``, ``surround_weight``, ``adapting`` (bool), ``tau_ms`` (NaN if not
adapting), ``w``, ``direction_deg`` (NaN if not direction-selective), ``speed_px``,
``behaviour_gain``, ``rf (N, H, W, K)``, ``amplitude``, ``bias``, and ``shared`` (frame
shape, ``dt_ms``, lags, AdapTrans kernel length). :class:`VisualGroundTruth` rebuilds the
true neurons as a module from it, so that the in-silico experiments run on the truth
exactly as on a fitted model.

Shapes: B movies, H x W pixels, T frames, K lags, N neurons, R repeats.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import visual_stimuli as vs
from ..adaptrans import adaptrans_filter, default_kernel_size
from ..models.layers import causal_strf_conv
from ..shapes import check_movie
from .movies import MovieDataset
from .state import slow_state

logger = logging.getLogger(__name__)

__all__ = ["load_synthetic_visual", "draw_visual_population", "VisualGroundTruth", "visual_stimulus_set",
           "movie_segments", "N_LAGS"]

#: lags of the true receptive fields (frames)
N_LAGS = 8
#: fractions of direction-selective and behaviour-modulated neurons (half the neurons adapt:
#: every block of four is an adapting ON, an adapting OFF, a sustained ON and a sustained OFF cell)
DS_FRACTION, BEHAVIOUR_FRACTION = 0.25, 1.0 / 3.0
#: time constants of the adapting neurons (ms), drawn log-uniformly
TAU_RANGE_MS = (100.0, 400.0)


def _dog(frame_hw, centre_xy, sigma_c, sigma_s, weight) -> np.ndarray:
    h, w = frame_hw
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = (x - centre_xy[0]) ** 2 + (y - centre_xy[1]) ** 2
    centre = np.exp(-r2 / (2 * sigma_c ** 2)) / (2 * np.pi * sigma_c ** 2)
    surround = np.exp(-r2 / (2 * sigma_s ** 2)) / (2 * np.pi * sigma_s ** 2)
    return centre - weight * surround


def draw_visual_population(rng: np.random.Generator, n_neurons: int, frame_hw=(16, 16), dt_ms: float = 25.0) -> dict:
    """Per-neuron parameters of the ground truth (before calibration): a dict of ``(N, ...)`` arrays."""
    n = int(n_neurons)
    h, w = (int(v) for v in frame_hw)
    margin = min(3.0, (min(h, w) - 1) / 3.0)
    polarity = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    adapting = (np.arange(n) // 2) % 2 == 0  # neurons 0-3: ON / OFF adapting, ON / OFF sustained, and so on
    ds = rng.permutation(n) < int(round(DS_FRACTION * n))
    behave = rng.permutation(n) < int(round(BEHAVIOUR_FRACTION * n))
    centre = np.stack([rng.uniform(margin, w - 1 - margin, n), rng.uniform(margin, h - 1 - margin, n)], axis=1)
    sigma_c = rng.uniform(0.8, 1.4, n)
    sigma_s = sigma_c * rng.uniform(2.5, 3.5, n)
    weight = rng.uniform(0.6, 0.9, n)
    tau = np.where(adapting, np.exp(rng.uniform(*np.log(TAU_RANGE_MS), n)), np.nan)
    direction = np.where(ds, rng.integers(0, 8, n) * 45.0, np.nan)
    speed = np.where(ds, rng.uniform(0.4, 0.7, n), 0.0)
    peak = rng.uniform(1.5, 2.5, n)  # peak lag of the temporal kernel (frames)
    k = np.arange(N_LAGS, dtype=np.float64)
    temporal = ((k[None] + 1) / (peak[:, None] + 1)) ** 2 * np.exp(2 * (1 - (k[None] + 1) / (peak[:, None] + 1)))
    rf = np.zeros((n, h, w, N_LAGS))
    for i in range(n):
        th = np.deg2rad(direction[i]) if ds[i] else 0.0
        for lag in range(N_LAGS):
            shift = -speed[i] * (lag - peak[i])  # where a stimulus moving at the preferred velocity was
            c = centre[i] + shift * np.array([np.cos(th), np.sin(th)])
            sign = 1.0 if adapting[i] else polarity[i]
            rf[i, :, :, lag] = sign * temporal[i, lag] * _dog((h, w), c, sigma_c[i], sigma_s[i], weight[i])
    return {"polarity": polarity, "adapting": adapting, "centre_xy": centre, "sigma_centre": sigma_c,
            "sigma_surround": sigma_s, "surround_weight": weight, "tau_ms": tau,
            "w": np.where(adapting, rng.uniform(0.6, 0.9, n), np.nan), "direction_deg": direction,
            "speed_px": speed, "behaviour_gain": np.where(behave, rng.uniform(0.5, 1.5, n), 0.0), "rf": rf}


class VisualGroundTruth(nn.Module):
    """The true neurons of :func:`load_synthetic_visual` as a module (see the module docstring).

    forward: x ``(B, 1, H, W, T)`` (and optionally ``state`` ``(B, 1, T)``, the running speed;
    None = still) -> noiseless rates ``(B, N, T)`` in spikes per frame.
    """

    def __init__(self, truth: dict, frame_hw, dt_ms: float, adaptation_taps: int):
        super().__init__()
        self.frame_shape = (1, *(int(v) for v in frame_hw))
        self.dt_ms, self.adaptation_taps = float(dt_ms), int(adaptation_taps)
        for key in ("polarity", "tau_ms", "w", "behaviour_gain", "amplitude", "bias"):
            self.register_buffer(key, torch.as_tensor(np.asarray(truth[key], dtype=np.float64), dtype=torch.float32))
        self.register_buffer("adapting", torch.as_tensor(np.asarray(truth["adapting"], dtype=bool)))
        self.register_buffer("rf", torch.as_tensor(np.asarray(truth["rf"]), dtype=torch.float32))
        self.n_neurons = int(self.rf.shape[0])

    @classmethod
    def from_ground_truth(cls, ground_truth: dict) -> "VisualGroundTruth":
        """Rebuild the true neurons from a dataset's ``ground_truth`` (any neuron selection)."""
        shared = ground_truth.get("shared", {})
        return cls(ground_truth, shared["frame_shape"][1:], shared["dt_ms"], shared["adaptation_taps"])

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        """The linear drive ``sum rf * z + bias`` of every neuron: ``(B, 1, H, W, T)`` -> ``(B, N, T)``."""
        check_movie(x, self.frame_shape)
        b, _, h, w, t = x.shape
        flat = x.reshape(b, 1, h * w, t)
        rf = self.rf.reshape(self.n_neurons, 1, h * w, -1)
        out = torch.empty(b, self.n_neurons, t, dtype=x.dtype, device=x.device)
        still = torch.nonzero(~self.adapting).flatten()
        if still.numel():
            out[:, still] = causal_strf_conv(flat - vs.MEAN_LUMINANCE, rf[still], self.bias[still])
        for i in torch.nonzero(self.adapting).flatten().tolist():
            a = float(np.exp(-self.dt_ms / float(self.tau_ms[i])))
            y = adaptrans_filter(flat, a, a, float(self.w[i]), self.adaptation_taps, rectify="relu")
            channel = 0 if float(self.polarity[i]) > 0 else 1
            out[:, i] = causal_strf_conv(y[:, channel:channel + 1], rf[i:i + 1], self.bias[i:i + 1])[:, 0]
        return out

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        rate = self.amplitude[:, None] * F.softplus(self.drive(x))
        if state is not None:
            rate = rate * (1.0 + self.behaviour_gain[:, None] * state[:, :1].to(rate.dtype))
        return rate


def visual_stimulus_set(rng: np.random.Generator, frame_hw=(16, 16), dt_ms: float = 25.0, n_movies: int = 8,
                        segment_frames: int = 80, n_directions: int = 8) -> tuple[list[np.ndarray], list[str], list[str]]:
    """The movies of :func:`load_synthetic_visual` -> (movies ``(1, H, W, T)``, names, segments).

    Each movie is one segment of ``segment_frames`` frames of each kind, in a random order:
    white noise, a natural-like movie, a drifting grating (directions in turn over the
    movies, ``n_directions`` evenly spaced) and full-field flashes (grey, then a step to a
    random level, repeated). ``segments[i]`` describes movie i as ``"kind:start-stop,..."``
    (:func:`movie_segments` reads it back), so that every split of the movies holds every kind.
    """
    movies, names, segments = [], [], []
    for i in range(int(n_movies)):
        direction = 360.0 * (i % max(int(n_directions), 1)) / max(int(n_directions), 1)
        steps = []
        while sum(d for _, d in steps) < segment_frames * dt_ms:
            steps += [(0.5, float(rng.choice([250, 500, 750]))),
                      (float(rng.choice([0.05, 0.25, 0.75, 0.95])), float(rng.choice([250, 500, 1000])))]
        parts = {"white_noise": vs.white_noise(rng, frame_hw, segment_frames),
                 "natural": vs.natural_like(rng, frame_hw, segment_frames),
                 f"grating{int(direction):03d}": vs.drifting_grating(frame_hw, segment_frames, dt_ms, direction,
                                                                     phase=rng.uniform(0, 2 * np.pi)),
                 "flashes": vs.flash_sequence(frame_hw, steps, dt_ms)[..., :segment_frames]}
        order = rng.permutation(list(parts))
        movies.append(np.concatenate([parts[k] for k in order], axis=-1)[None].astype(np.float32))
        names.append(f"movie_{i:02d}")
        segments.append(",".join(f"{k}:{j * segment_frames}-{(j + 1) * segment_frames}" for j, k in enumerate(order)))
    return movies, names, segments


def movie_segments(description: str) -> list[tuple[str, int, int]]:
    """``"kind:start-stop,..."`` (a movie's entry of ``ground_truth["segments"]``) -> [(kind, start, stop)]."""
    out = []
    for part in str(description).split(","):
        kind, span = part.split(":")
        a, b = span.split("-")
        out.append((kind, int(a), int(b)))
    return out


def load_synthetic_visual(n_neurons: int = 16, frame_hw=(16, 16), dt_ms: float = 25.0, n_repeats: int = 5,
                          n_movies: int = 10, segment_frames: int = 80, n_directions: int = 8, mean_rate: float = 0.4,
                          seed: int = 0) -> MovieDataset:
    """The synthetic visual population (module docstring) as a MovieDataset with ground truth.

    Defaults: 16 neurons, 16 x 16 pixels, 25 ms frames, 10 movies of 4 segments of 80 frames
    (white noise, natural-like, a drifting grating, flashes; 3,200 frames, 80 s), 5 repeats, mean rate about ``mean_rate`` spikes per frame. Split: random
    test and validation movies per seed (20 % each: early stopping needs more than the one or
    two movies of a 10 % share, whose kind varies).
    """
    for key, v in {"n_neurons": n_neurons, "n_repeats": n_repeats, "n_movies": n_movies,
                   "segment_frames": segment_frames}.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"expected {key} as a positive integer, got {v!r}")
    if not float(dt_ms) > 0 or not float(mean_rate) > 0:
        raise ValueError(f"expected dt_ms > 0 and mean_rate > 0, got {dt_ms}, {mean_rate}")
    frame_hw = tuple(int(v) for v in frame_hw)
    rng_pop, rng_stim, rng_state, rng_spk = (np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 22]).spawn(4))
    truth = draw_visual_population(rng_pop, n_neurons, frame_hw, dt_ms)
    taps = default_kernel_size(TAU_RANGE_MS[1], dt_ms)
    movies, names, segments = visual_stimulus_set(rng_stim, frame_hw, dt_ms, n_movies, segment_frames, n_directions)
    # calibrate on every movie: unit-variance drive, then a bias and an amplitude per neuron
    truth.update(amplitude=np.ones(n_neurons), bias=np.zeros(n_neurons))
    model = VisualGroundTruth(truth, frame_hw, dt_ms, taps)
    with torch.no_grad():
        drives = [model.drive(torch.from_numpy(m[None])).double()[0].numpy() for m in movies]
    cat = np.concatenate(drives, axis=1)
    scale = rng_pop.uniform(1.5, 2.5, n_neurons) / cat.std(1).clip(1e-9)
    offset = rng_pop.uniform(-1.0, -0.5, n_neurons) - scale * cat.mean(1)
    truth["rf"] = truth["rf"] * scale[:, None, None, None]
    truth["bias"] = offset
    pre = scale[:, None] * cat + offset[:, None]
    truth["amplitude"] = float(mean_rate) / np.log1p(np.exp(pre)).mean(1)
    model = VisualGroundTruth(truth, frame_hw, dt_ms, taps)
    states, rates, responses = [], [], []
    for m in movies:
        running = np.maximum(slow_state(rng_state, m.shape[-1], dt_ms, tau_s=2.0), 0.0).astype(np.float32)
        with torch.no_grad():
            rate = model(torch.from_numpy(m[None]), torch.from_numpy(running[None]))[0].numpy()
        states.append(running)
        rates.append(rate.astype(np.float32))
        responses.append(rng_spk.poisson(np.broadcast_to(rate[:, None, :], (n_neurons, n_repeats, rate.shape[1])))
                         .astype(np.float32))
    kind = np.where(truth["adapting"], "adapting", "sustained")
    neurons = pd.DataFrame({"polarity": np.where(truth["polarity"] > 0, "ON", "OFF"), "kind": kind,
                            "direction_selective": np.isfinite(truth["direction_deg"]),
                            "behaviour": truth["behaviour_gain"] > 0})
    gt = {**truth, "rate": rates, "segments": segments, "shared": {"frame_shape": [1, *frame_hw], "dt_ms": float(dt_ms), "n_lags": N_LAGS,
                                             "adaptation_taps": int(taps), "model": "amplitude * softplus(rf * z + bias)"
                                             " * (1 + behaviour_gain * running)"}}
    options = dict(n_neurons=int(n_neurons), frame_hw=list(frame_hw), dt_ms=float(dt_ms), n_repeats=int(n_repeats),
                   n_movies=int(n_movies), segment_frames=int(segment_frames), n_directions=int(n_directions),
                   mean_rate=float(mean_rate), seed=int(seed))
    return MovieDataset(movies, responses, dt_ms, neurons=neurons, stim_names=names, stim_types=["mixed"] * len(movies),
                        name="synthetic_visual", ground_truth=gt, meta={"source": "synthetic_visual", "options": options},
                        split_spec={"test": "random", "test_fraction": 0.2, "val_fraction": 0.2},
                        states=states, state_names=["running"])
