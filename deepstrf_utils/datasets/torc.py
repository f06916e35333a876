"""TORCs: a ferret A1 unit listening to temporally orthogonal ripple combinations (baphy).

Ferret labs record TORCs (Klein, Depireux, Simon & Shamma 2000) routinely; baphy stores
their ripple parameters rather than the spectrograms, so this loader rebuilds each TORC's
spectro-temporal envelope (:func:`deepstrf_utils.stimuli.torc_spectrogram`) and bins the
spike raster beside it.

Files in the folder (``path``):

``torc_params.json``
    ``names`` (B TORC names), ``fs`` (raster samples per s), ``pre_s``, ``dur_s``, ``post_s``
    (silence, TORC, silence of every trial), ``torcs`` (B dicts, same order as ``names``:
    ``Rates`` (I,) Hz, ``Phase`` (I,) degrees, ``Scales`` (one density in cyc/oct, or (I,)
    equal values), ``RippleAmplitude`` (I,), ``LowestFrequency``, ``HighestFrequency`` Hz),
    optionally ``presentation_order`` and ``source``.
``torc_raster.npz``
    ``raster``: spike counts ``(B, R, n_samples)`` with ``n_samples = (pre_s + dur_s + post_s) fs``,
    repetition r of every TORC along axis 1.

Decisions (each an option, recorded in ``dataset.meta``):

* **Repetitions**: ``repetitions=(4, ..., 9)`` by default (R = 6). In the shared recording
  ``torc_ferret_a1`` the unit is almost silent in repetitions 0-3 (0.1-1.5 spikes/s, no
  sound-evoked response, versus ~30 spikes/s later): a different state, not repeats.
  ``repetitions="all"`` keeps every repetition; a sequence of indices keeps those.
* **Silence kept**: ``silence_ms=100`` of the silence before and after each TORC (onset and
  offset responses, spontaneous rate); a pair ``(before, after)`` sets them apart.
* **Bins**: ``dt_ms=10``: spikes summed over whole raster samples per bin (``dt_ms`` must be
  a multiple of the sample period, and the kept window a whole number of bins); the
  spectrogram holds the mean of the envelope within each bin.
* **Bands**: ``n_bands=32`` log-spaced band centres from ``LowestFrequency`` to
  ``HighestFrequency`` (both included; ``cf_hz``). The stimulus is baphy's linear envelope
  ``1 + m S / max|S|`` (m = ``depth`` = 0.9) divided by ``1 + m``, so the loudest bin is 1
  and silence 0, like the other datasets' scale.
* **Split** by TORC: 6 test and 4 validation TORCs drawn per seed, 20 for training. TORCs
  come in *inverse-polarity pairs*: each spectral density is used by two TORCs whose phases
  differ by 180 degrees, so one's ripple sum is the other's negated (``S_j = -S_i``; true
  of all 15 pairs of the shared unit, listed in ``meta["inverse_pairs"]``). By default
  (``keep_partner_in_train=True``) the held-out TORCs are drawn so that the other TORC of
  their density stays in training (``split_spec["groups"]``): every tested ripple pattern
  was seen in training with the opposite polarity, as in the usual estimation of an STRF
  from a full TORC set, and a model is tested on predicting the response to the inverted
  pattern (a rectifying neuron answers it with other spikes, not the mirror image).
  Holding a whole density out tests extrapolation instead: the densities are 0.2 cyc/oct
  apart over 5 octaves, orthogonal along frequency up to about 1/F on the band axis, so a
  linear STRF predicts a held-out density only through that leak; scale-free scores still
  reward the leak's shape (on the shared unit a ridge STRF scored a TORC-specific CCnorm of
  0.14 with pairs split apart and 0.16 with whole densities held out, mean of 6 seeds, seed
  ranges -0.24 to 0.34 and -0.49 to 0.37; ``benchmarks/check_torc_split.py``).
  ``keep_partner_in_train=False`` draws the held-out TORCs at random.

The neuron table has ``id`` (default the folder name), ``area`` ``"A1"``, ``species``
``"ferret"`` and ``mean_rate_hz`` (kept repetitions and bins).

Scores: most of the response is a time course shared by every TORC (onset, adaptation,
offset), so a stimulus-blind prediction (:func:`mean_psth_baseline`) already scores a high
CCnorm; :func:`deepstrf_utils.metrics.cc_norm_specific` scores the TORC-specific part.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..metrics.specific import mean_psth
from ..spectrogram import band_centre_frequencies
from ..stimuli import torc_spectrogram
from .base import ResponseDataset

logger = logging.getLogger(__name__)

__all__ = ["load_torc", "is_available", "read_torc_files", "mean_psth_baseline", "DEFAULT_REPETITIONS",
           "PARAMS_FILE", "RASTER_FILE"]

PARAMS_FILE = "torc_params.json"
RASTER_FILE = "torc_raster.npz"
#: repetitions kept by default: 0-3 of the shared recording are a different (near-silent) state
DEFAULT_REPETITIONS = (4, 5, 6, 7, 8, 9)
_TORC_KEYS = ("Rates", "Phase", "Scales", "LowestFrequency", "HighestFrequency")


def is_available(root, **_) -> bool:
    """Whether ``root/torc`` holds the two TORC files."""
    return all((Path(root) / "torc" / name).is_file() for name in (PARAMS_FILE, RASTER_FILE))


def read_torc_files(path: str | Path) -> tuple[dict, np.ndarray]:
    """Read and check ``torc_params.json`` and ``torc_raster.npz`` in folder ``path``.

    Returns:
        ``(params, raster)``: the JSON dict and the raster ``(B, R, n_samples)`` as float64.

    Raises:
        FileNotFoundError: a missing folder or file (names it).
        ValueError: a malformed file, or a raster whose shape does not match the parameters.
    """
    folder = Path(path)
    files = {name: folder / name for name in (PARAMS_FILE, RASTER_FILE)}
    for name, file in files.items():
        if not file.is_file():
            raise FileNotFoundError(f"expected the TORC file {file} ({PARAMS_FILE} and {RASTER_FILE} in {folder}), "
                                    "found nothing")
    try:
        params = json.loads(files[PARAMS_FILE].read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"could not read {files[PARAMS_FILE]} as JSON: {exc}") from exc
    missing = [k for k in ("names", "fs", "pre_s", "dur_s", "post_s", "torcs") if k not in params]
    if missing:
        raise ValueError(f"{files[PARAMS_FILE]}: expected keys names, fs, pre_s, dur_s, post_s, torcs; missing {missing}")
    names, torcs = list(params["names"]), list(params["torcs"])
    if len(names) == 0 or len(torcs) != len(names):
        raise ValueError(f"{files[PARAMS_FILE]}: expected one dict in 'torcs' per name, got {len(torcs)} torcs "
                         f"for {len(names)} names")
    for i, t in enumerate(torcs):
        lacking = [k for k in _TORC_KEYS if k not in t]
        if lacking:
            raise ValueError(f"{files[PARAMS_FILE]}: torcs[{i}] ({names[i]}) lacks {lacking}; expected keys {list(_TORC_KEYS)}")
    try:
        with np.load(files[RASTER_FILE]) as npz:
            if "raster" not in npz.files:
                raise ValueError(f"{files[RASTER_FILE]}: expected an array 'raster', found {npz.files}")
            raster = np.asarray(npz["raster"], dtype=np.float64)
    except (OSError, EOFError) as exc:
        raise ValueError(f"could not read {files[RASTER_FILE]} as a .npz file: {exc}") from exc
    n_samples = int(round((float(params["pre_s"]) + float(params["dur_s"]) + float(params["post_s"]))
                          * float(params["fs"])))
    if raster.ndim != 3 or raster.shape[0] != len(names) or raster.shape[2] != n_samples:
        raise ValueError(f"{files[RASTER_FILE]}: expected a raster of shape (B, R, n_samples) = ({len(names)}, R, "
                         f"{n_samples}) for {len(names)} names and (pre_s + dur_s + post_s) * fs samples, "
                         f"got {raster.shape}")
    if not np.all(np.isfinite(raster)) or np.any(raster < 0):
        raise ValueError(f"{files[RASTER_FILE]}: expected non-negative finite spike counts")
    return params, raster


def _repetitions(repetitions: Any, n_reps: int) -> list[int]:
    if isinstance(repetitions, str):
        if repetitions != "all":
            raise ValueError(f"expected repetitions 'all' or a sequence of indices, got {repetitions!r}")
        return list(range(n_reps))
    try:
        reps = [int(r) for r in repetitions]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"expected repetitions 'all' or a sequence of indices, got {repetitions!r}") from exc
    if not reps or len(set(reps)) != len(reps) or any(not 0 <= r < n_reps for r in reps):
        raise ValueError(f"expected unique repetition indices in [0, {n_reps}), got {reps}")
    return reps


def _silences(silence_ms: Any, pre_ms: float, post_ms: float) -> tuple[float, float]:
    pair = np.broadcast_to(np.asarray(silence_ms, dtype=np.float64), (2,)) if np.ndim(silence_ms) == 0 \
        else np.asarray(silence_ms, dtype=np.float64)
    if pair.shape != (2,) or np.any(pair < 0):
        raise ValueError(f"expected silence_ms as one value >= 0 or a pair (before, after), got {silence_ms!r}")
    if pair[0] > pre_ms + 1e-9 or pair[1] > post_ms + 1e-9:
        raise ValueError(f"expected silence_ms at most the recorded silences ({pre_ms:g} ms before, {post_ms:g} ms "
                         f"after), got {tuple(pair.tolist())}")
    return float(pair[0]), float(pair[1])


def _whole(value_ms: float, step_ms: float, what: str) -> int:
    n = value_ms / step_ms
    if abs(n - round(n)) > 1e-6:
        raise ValueError(f"expected {what} = {value_ms:g} ms to be a multiple of {step_ms:g} ms")
    return int(round(n))


def _inverse_pairs(torcs: list) -> list[list[int]]:
    """Pairs ``[i, j]`` of TORCs with the same rates and density and phases 180 degrees apart (``S_j = -S_i``)."""
    pairs, used = [], set()
    for i, a in enumerate(torcs):
        for j in range(i + 1, len(torcs)):
            b = torcs[j]
            if i in used or j in used or len(a["Rates"]) != len(b["Rates"]):
                continue
            same = (np.allclose(a["Rates"], b["Rates"]) and np.allclose(a["Scales"], b["Scales"])
                    and np.allclose(a.get("RippleAmplitude", 1), b.get("RippleAmplitude", 1)))
            if same and np.allclose((np.asarray(a["Phase"], float) - np.asarray(b["Phase"], float)) % 360, 180):
                pairs.append([i, j])
                used.update((i, j))
    return pairs


def load_torc(path: str | Path, dt_ms: float = 10.0, n_bands: int = 32,
              repetitions: str | Sequence[int] = DEFAULT_REPETITIONS, silence_ms: float | Sequence[float] = 100.0,
              depth: float = 0.9, n_test: int = 6, n_val: int = 4, keep_partner_in_train: bool = True,
              neuron_id: str | None = None,
              species: str = "ferret", area: str = "A1") -> ResponseDataset:
    """A TORC recording as a :class:`ResponseDataset` (decisions: module docstring).

    Args:
        path: folder holding ``torc_params.json`` and ``torc_raster.npz``.
        dt_ms: bin width (ms), a multiple of the raster's sample period.
        n_bands: F, log-spaced bands over the TORCs' frequency range.
        repetitions: indices of the repetitions to keep, or ``"all"``.
        silence_ms: silence kept before and after each TORC (ms), or ``(before, after)``.
        depth: the TORCs' modulation depth m (baphy's default 0.9).
        n_test, n_val: TORCs held out for testing and validation per seed.
        keep_partner_in_train: draw the held-out TORCs so that the other TORC of each one's
            density (its inverse-polarity partner) stays in training (False: at random).
        neuron_id: the unit's id (default: the folder's name). species, area: its metadata.

    Returns:
        ResponseDataset: B TORCs, stimuli ``(F, T)`` in [0, 1], responses ``(1, R, T)`` spike
        counts per bin, ``T = (before + dur + after) / dt_ms``.
    """
    folder = Path(path)
    params, raster = read_torc_files(folder)
    fs = float(params["fs"])
    sample_ms = 1000.0 / fs
    pre_ms, dur_ms, post_ms = (1000.0 * float(params[k]) for k in ("pre_s", "dur_s", "post_s"))
    if not float(dt_ms) > 0:
        raise ValueError(f"expected dt_ms > 0, got {dt_ms}")
    per_bin = _whole(float(dt_ms), sample_ms, "dt_ms")
    if per_bin < 1:
        raise ValueError(f"expected dt_ms >= the raster's sample period {sample_ms:g} ms, got {dt_ms}")
    reps = _repetitions(repetitions, raster.shape[1])
    before, after = _silences(silence_ms, pre_ms, post_ms)
    window_ms = before + dur_ms + after
    n_bins = _whole(window_ms, float(dt_ms), "the kept window (silence before + TORC + silence after)")
    start = _whole(pre_ms - before, sample_ms, "the silence dropped before the TORC")
    kept = raster[:, reps, start:start + n_bins * per_bin]
    counts = kept.reshape(kept.shape[0], len(reps), n_bins, per_bin).sum(axis=3)

    lows = {float(t["LowestFrequency"]) for t in params["torcs"]}
    highs = {float(t["HighestFrequency"]) for t in params["torcs"]}
    if len(lows) != 1 or len(highs) != 1:
        raise ValueError(f"expected every TORC on the same frequency range, got lowest {sorted(lows)} and "
                         f"highest {sorted(highs)} Hz")
    low, high = lows.pop(), highs.pop()
    if isinstance(n_bands, bool) or int(n_bands) != n_bands or n_bands < 2:
        raise ValueError(f"expected n_bands as an integer >= 2, got {n_bands!r}")
    cf = band_centre_frequencies(int(n_bands), low, high)
    stimuli, densities = [], []
    for i, t in enumerate(params["torcs"]):
        scales = np.atleast_1d(np.asarray(t["Scales"], dtype=np.float64))
        if not np.allclose(scales, scales[0]):
            raise ValueError(f"expected one ripple density per TORC, got Scales {scales.tolist()} for "
                             f"{params['names'][i]}")
        spec = torc_spectrogram(cf, float(dt_ms), t["Rates"], scales if scales.size > 1 else scales[0], t["Phase"],
                                t.get("RippleAmplitude"), low, high, dur_ms, before, after, depth)
        stimuli.append(spec / (1.0 + depth))
        densities.append(round(float(scales[0]), 6))

    names = [str(n) for n in params["names"]]
    pairs = _inverse_pairs(params["torcs"])
    nid = folder.resolve().name if neuron_id is None else str(neuron_id)
    rate = float(counts.mean() * 1000.0 / float(dt_ms))
    neurons = pd.DataFrame({"id": [nid], "area": [area], "species": [species], "mean_rate_hz": [rate]})
    groups = [f"density {d:+g}" for d in densities]
    split_spec = {"test": "random", "n_test": int(n_test), "n_val": int(n_val),
                  "description": "TORCs drawn at random per seed"}
    if keep_partner_in_train:
        split_spec.update(groups=groups, description="TORCs: the other TORC of each held-out TORC's density "
                                                     "stays in training")
    meta = {
        "source": str(params.get("source", folder)),
        "path": str(folder),
        "repetitions": reps,
        "silence_ms": [before, after],
        "torc_onset_ms": before,
        "torc_duration_ms": dur_ms,
        "dt_ms": float(dt_ms),
        "depth": float(depth),
        "densities_cyc_per_oct": densities,
        "keep_partner_in_train": bool(keep_partner_in_train),
        "inverse_pairs": pairs,
        "units": "spike counts per bin; stimulus: baphy's linear TORC envelope / (1 + depth), silence 0",
    }
    logger.info("TORC unit %s: %d TORCs, repetitions %s, %d bins of %g ms, %.1f spikes/s", nid, len(names), reps,
                n_bins, dt_ms, rate)
    return ResponseDataset(
        stimuli=stimuli,
        responses=[c[None].astype(np.float32) for c in counts],
        dt_ms=float(dt_ms),
        cf_hz=cf,
        neuron_ids=[nid],
        neurons=neurons,
        stim_names=names,
        stim_types=["torc"] * len(names),
        name="torc",
        split_spec=split_spec,
        meta=meta,
    )


def mean_psth_baseline(train: ResponseDataset, test: ResponseDataset) -> np.ndarray:
    """The stimulus-blind prediction: the mean PSTH over the training stimuli, for every test stimulus.

    Every stimulus of ``train`` and ``test`` must have the same number of bins T (TORCs do).

    Returns:
        ``(B_test, N, T)`` float32 (:func:`deepstrf_utils.metrics.mean_psth` of the training
        responses, repeated).
    """
    lengths = set(train.n_bins.tolist()) | set(test.n_bins.tolist())
    if len(lengths) != 1:
        raise ValueError(f"expected train and test stimuli of one length T, got lengths {sorted(lengths)}")
    psth = mean_psth(np.stack(train.responses))
    return np.repeat(psth[None], test.n_stimuli, axis=0).astype(np.float32)
