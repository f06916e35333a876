"""NS1: ferret A1 responses to 20 natural sound clips (Harper et al. 2016, OSF ayw2p).

Release layout (``<root>/ns1/``, what `download.fetch('ns1')` produces)::

    MetadataSHEnCneurons.mat   struct array ``neuron`` (1 x 119): fields path, depth,
                               NoiseRatio, singleN, singleT, NrOfElectrodes, ElectrodeNumber
    spikesandwav/<path>        one .mat per unit (``neuron(i).path``, e.g.
                               dataAC/E1P02.R.SH.En.C/cluster.02.data.mat): struct ``data``
                               with ``data.set`` (1 x 32: 20 natural clips, then 12 DRCs),
                               ``data.set(j).repeats`` (1 x R) and ``.repeats(r).t`` = spike
                               times in ms from clip onset
    spikesandwav/SH.En.C/      the clip waveforms, WAV files without extension:
                               source.1.sound.0.snr.0.token.0.fw.2.frozen.{1..12} (clips 0-11)
                               source.2.sound.0.snr.0.token.0.fw.1.frozen.{1..8}  (clips 12-19)

Valid units (``valid_units``):

* ``"single"`` (default, 73 of 119): ``singleT`` is "Yes" or "Maybe" and ``depth >= 0``, the
  rule of the upstream deepSTRF code that produced the AdapTrans paper's NS1 numbers;
* ``"noise_ratio"``: ``NoiseRatio < 40`` (the rule stated in the upstream README);
* ``"both"``: both conditions; ``"all"``: every unit.

Preprocessing: each clip -> `cochleagram` (34 log bands, 500 Hz - 22.6 kHz, causal 10 ms
Hann window, 5 ms hop, floor 60 dB below the loudest bin of the 20 clips, shifted to >= 0);
4.995 s -> 999 bins. Spike times -> counts in bins ``[k dt, (k+1) dt)`` ms (no smoothing),
spikes before onset or after the clip dropped; responses ``(N, 20, 999)`` per clip, NaN where
a unit has fewer than the largest number of repeats. DRC sets (13-32) are not loaded (their
waveforms are not in the release).

Splits (``split``): ``"random"`` (default) 4 test + 2 validation clips drawn per seed, the
rest (14) train; ``"rahman"`` the fixed test clips [3, 6, 9, 19] of Rahman et al. (2019),
validation 2 random clips per seed.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd

from ..spectrogram import apply_floor, cochleagram, load_wav
from . import download as dl
from .base import ResponseDataset
from .io import bin_spike_times, loadmat, mat_field, stack_trials

log = logging.getLogger(__name__)

__all__ = ["load_ns1", "read_ns1_metadata", "read_ns1_unit", "select_units", "NS1_WAV_FILES",
           "RAHMAN_TEST_CLIPS", "is_available"]

NAME = "ns1"
N_CLIPS = 20
RAHMAN_TEST_CLIPS = [3, 6, 9, 19]
WAV_DIR = "SH.En.C"
#: clip index -> waveform file in spikesandwav/SH.En.C (numeric, not lexicographic, order)
NS1_WAV_FILES = ([f"source.1.sound.0.snr.0.token.0.fw.2.frozen.{i}" for i in range(1, 13)]
                 + [f"source.2.sound.0.snr.0.token.0.fw.1.frozen.{i}" for i in range(1, 9)])
META_FIELDS = ("path", "depth", "NoiseRatio", "singleT")
VALID_RULES = ("single", "noise_ratio", "both", "all")
#: clip categories named by Rahman et al. (2019/2020); the others are not documented
CLIP_CATEGORIES = {0: "water", 3: "ferret vocalisation", 6: "insects buzzing", 8: "speech",
                   9: "speech", 10: "speech", 11: "speech", 19: "water"}


def is_available(root, **_) -> bool:
    """Whether the NS1 files are in ``<root>/ns1``."""
    return not dl.missing_files(NAME, root)


def _as_list(x) -> list:
    """MATLAB struct array loaded with squeeze_me -> list of structs (1 element -> [x])."""
    if isinstance(x, np.ndarray):
        return list(x.ravel())
    return [x]


def _num(struct, name: str) -> float:
    """A numeric scalar field of a MATLAB struct, NaN when absent or empty."""
    value = np.asarray(getattr(struct, name, np.nan), dtype=float).ravel()
    return float(value[0]) if value.size else float("nan")


def read_ns1_metadata(path) -> pd.DataFrame:
    """Read ``MetadataSHEnCneurons.mat`` into one row per unit.

    Returns:
        DataFrame with columns id (the unit file path without ``.mat``), path, depth,
        noise_ratio, single_t, single_n, n_electrodes, electrode (NaN/"" when absent).

    Raises:
        ValueError: no ``neuron`` struct, or a missing field (path, depth, NoiseRatio,
            singleT); names the file and the fields found.
    """
    path = Path(path)
    mat = loadmat(path, "NS1")
    if "neuron" not in mat:
        raise ValueError(f"{path}: expected a struct array 'neuron', found variables "
                         f"{sorted(k for k in mat if not k.startswith('__'))}")
    rows = []
    for k, unit in enumerate(_as_list(mat["neuron"])):
        for name in META_FIELDS:
            mat_field(unit, name, path, f"neuron({k + 1})")
        unit_path = str(unit.path)
        rows.append({
            "id": unit_path[:-4] if unit_path.endswith(".mat") else unit_path,
            "path": unit_path,
            "depth": _num(unit, "depth"),
            "noise_ratio": _num(unit, "NoiseRatio"),
            "single_t": str(unit.singleT),
            "single_n": _num(unit, "singleN"),
            "n_electrodes": _num(unit, "NrOfElectrodes"),
            "electrode": _num(unit, "ElectrodeNumber"),
            "area": "A1",
        })
    return pd.DataFrame(rows)


def select_units(meta: pd.DataFrame, valid_units: str = "single",
                 max_noise_ratio: float = 40.0) -> pd.DataFrame:
    """Rows of `read_ns1_metadata` that pass the valid-unit rule (see module docstring)."""
    if valid_units not in VALID_RULES:
        raise ValueError(f"expected valid_units in {VALID_RULES}, got {valid_units!r}")
    single = meta["single_t"].isin(["Yes", "Maybe"]) & (meta["depth"] >= 0)
    quiet = meta["noise_ratio"] < max_noise_ratio
    keep = {"single": single, "noise_ratio": quiet, "both": single & quiet,
            "all": pd.Series(True, index=meta.index)}[valid_units]
    return meta[keep.to_numpy()].reset_index(drop=True)


def read_ns1_unit(path, n_clips: int = N_CLIPS) -> List[List[np.ndarray]]:
    """Spike times (ms from clip onset) of one unit file: ``[clip][repeat] -> (n_spikes,)``.

    Raises:
        ValueError: missing ``data`` / ``set`` / ``repeats`` / ``t`` or fewer than
            ``n_clips`` sets; names the file.
    """
    path = Path(path)
    mat = loadmat(path, "NS1")
    if "data" not in mat:
        raise ValueError(f"{path}: expected a struct 'data' (with data.set(j).repeats(r).t), "
                         f"found variables {sorted(k for k in mat if not k.startswith('__'))}")
    sets = _as_list(mat_field(mat["data"], "set", path, "data"))
    if len(sets) < n_clips:
        raise ValueError(f"{path}: expected at least {n_clips} stimulus sets in data.set, "
                         f"found {len(sets)}")
    out = []
    for j in range(n_clips):
        repeats = _as_list(mat_field(sets[j], "repeats", path, f"data.set({j + 1})"))
        out.append([np.atleast_1d(np.asarray(
            mat_field(rep, "t", path, f"data.set({j + 1}).repeats({r + 1})"), dtype=np.float64)).ravel()
            for r, rep in enumerate(repeats)])
    return out


def _unit_file(folder: Path, rel: str) -> Path:
    p = folder / "spikesandwav" / rel
    if p.is_file():
        return p
    alt = p.with_name(p.stem + "_1.mat")   # a few release files carry a "_1" suffix
    if alt.is_file():
        return alt
    raise FileNotFoundError(f"NS1 unit file {p} (listed in MetadataSHEnCneurons.mat) not found; "
                            "re-extract spikesandwav.zip (`make data DATASET=ns1`)")


def _build(folder: Path, valid_units: str, max_noise_ratio: float, split: str, dt_ms: float,
           n_bands: int, min_freq: float, max_freq: float, threshold_db: float,
           units: Optional[List[str]] = None) -> ResponseDataset:
    meta = select_units(read_ns1_metadata(folder / "MetadataSHEnCneurons.mat"), valid_units,
                        max_noise_ratio)
    if units is not None:
        meta = meta[meta["id"].isin(units)].reset_index(drop=True)
    if meta.empty:
        raise ValueError(f"no NS1 unit passes valid_units={valid_units!r}")
    # stimuli
    raw, cf_hz, rates = [], None, []
    for j, fname in enumerate(NS1_WAV_FILES):
        wav_path = folder / "spikesandwav" / WAV_DIR / fname
        x, sr = load_wav(wav_path)
        rates.append(sr)
        try:
            spec_db, cf_hz = cochleagram(x, sr, n_bands=n_bands, min_freq=min_freq,
                                         max_freq=max_freq, hop_ms=dt_ms, threshold_db=None)
        except ValueError as err:
            raise ValueError(f"{wav_path}: {err}") from err
        raw.append(spec_db)
    ref = max(float(s.max()) for s in raw)
    stimuli = [apply_floor(s, threshold_db, ref) for s in raw]
    # responses
    per_clip = [[] for _ in range(N_CLIPS)]
    from tqdm.auto import tqdm
    for rel in tqdm(meta["path"], desc="NS1 units", disable=len(meta) < 10):
        spikes = read_ns1_unit(_unit_file(folder, rel))
        for j in range(N_CLIPS):
            T = stimuli[j].shape[1]
            per_clip[j].append(np.stack([bin_spike_times(t, T, dt_ms) for t in spikes[j]])
                               if spikes[j] else None)
    responses = [stack_trials(per_clip[j], stimuli[j].shape[1]) for j in range(N_CLIPS)]
    if split == "random":
        split_spec = {"test": "random", "n_test": 4, "n_val": 2}
    else:
        split_spec = {"test": list(RAHMAN_TEST_CLIPS), "n_val": 2}
    return ResponseDataset(
        stimuli=stimuli, responses=responses, dt_ms=dt_ms, cf_hz=cf_hz,
        neuron_ids=list(meta["id"]), neurons=meta, stim_names=[f"nat{j + 1:02d}" for j in range(N_CLIPS)],
        stim_types=["natural"] * N_CLIPS, name=NAME, split_spec=split_spec,
        meta={"source": "Harper et al. 2016, OSF ayw2p", "valid_units": valid_units,
              "max_noise_ratio": max_noise_ratio, "split": split,
              "wav_files": list(NS1_WAV_FILES), "sample_rates_hz": rates,
              "clip_categories": {str(k): v for k, v in CLIP_CATEGORIES.items()},
              "threshold_db": threshold_db, "ref_db": ref,
              "preprocessing": "cochleagram (causal 10 ms Hann, hop dt_ms, 34 log bands "
                               "500-22627 Hz, 60 dB floor re the loudest bin of the 20 clips); "
                               "spike counts per bin, floor(t / dt_ms)"},
    )


def load_ns1(root="data", download: bool = False, valid_units: str = "single",
             max_noise_ratio: float = 40.0, split: str = "random", dt_ms: float = 5.0,
             n_bands: int = 34, min_freq: float = 500.0, max_freq: float = 22627.0,
             threshold_db: float = 60.0, units: Optional[List[str]] = None,
             cache: bool = True) -> ResponseDataset:
    """Load NS1 as a ResponseDataset (20 clips; responses ``(N, 20, 999)`` at 5 ms).

    Args:
        root: data folder; files in ``<root>/ns1/`` (see module docstring).
        download: fetch missing files from OSF (resumable, checksum-checked).
        valid_units: "single" (default, singleT Yes/Maybe and depth >= 0: 73 units),
            "noise_ratio" (NoiseRatio < ``max_noise_ratio``), "both" or "all".
        split: "random" (4 test + 2 val clips per seed) or "rahman" (test clips
            [3, 6, 9, 19], 2 random val clips per seed).
        dt_ms, n_bands, min_freq, max_freq, threshold_db: front-end settings (`cochleagram`).
        units: optional list of unit ids to keep (after the valid-unit rule).
        cache: read/write the preprocessed HDF5 cache ``<root>/ns1/ns1_<hash>.h5``.

    Returns:
        ResponseDataset named "ns1": stimuli ``(34, 999)``, responses ``(N, 20, 999)`` spike
        counts, neurons with depth / noise_ratio / single_t and ``site`` (the release folder of
        the unit's file: units recorded together, the level above neurons in comparisons).

    Raises:
        FileNotFoundError: data absent (names files, folder and `make data DATASET=ns1`).
        ValueError: bad option, unreadable or incomplete .mat / WAV (names the file).
    """
    if split not in ("random", "rahman"):
        raise ValueError(f"expected split 'random' or 'rahman', got {split!r}")
    if valid_units not in VALID_RULES:
        raise ValueError(f"expected valid_units in {VALID_RULES}, got {valid_units!r}")
    folder = dl.require(NAME, root, download)
    options = dict(valid_units=valid_units, max_noise_ratio=max_noise_ratio, split=split,
                   dt_ms=dt_ms, n_bands=n_bands, min_freq=min_freq, max_freq=max_freq,
                   threshold_db=threshold_db, units=sorted(units) if units else None)
    ds = dl.cached_dataset(NAME, root, options, lambda: _build(folder, **options), cache=cache)
    # the level above units: the release folder of each unit's file (its recording, e.g. E1P02.R.SH.En.C)
    ds.neurons["site"] = [Path(str(p)).parent.name or str(p) for p in ds.neurons["path"]]
    return ds
