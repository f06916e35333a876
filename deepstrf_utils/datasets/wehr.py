"""Wehr: rat A1 whole-cell membrane potential to natural sounds (CRCNS ac-1).

Machens, Wehr & Zador (2004); data: Asari, Machens, Wehr & Zador (2009), CRCNS ac-1,
doi:10.6080/K0KW5CXR. A free CRCNS account is needed, so the archive is downloaded by hand:
put ``crcns-ac1.zip`` (or its extracted content) in ``<root>/wehr/``.

Release layout used (from the zip)::

    wehr/Results/<yyyymmdd-animal-NNN>/<trial>.mat   one folder per cell (25), one file per
        trial with ``triggers`` (struct array; ``.type`` e.g. 'naturalsound', ``.time`` =
        1-based sample index of the stimulus onset in the trace, ``.param.description``,
        ``.param.duration`` in ms) and ``response`` (``.trace``, ``.scale``, ``.sf`` Hz)
    wehr/Stimuli/{fragments,category1,category2,category3}/<k>.mat   ``stimulus`` with
        ``.samples`` and ``.param.description`` / ``.param.sf``

Dataset built by `load_wehr`:

* cells = the 25 session folders in name order; valid cells (default): the 21 used by
  Rançon et al. (2024, 2025), indices ``WEHR_VALID_CELLS`` = all but 1, 2, 8 (unresponsive,
  Machens et al. 2004) and 4 (too little data);
* a stimulus = one natural-sound clip (trigger description); the trials of a cell with the
  same description are its repeats; clips are the union over the kept cells, so responses
  are ``(N, R_max, T)`` with NaN where a cell did not hear a clip (cells heard 3-63 clips);
* response = membrane potential (mV, ``trace * scale``) from the trigger onset for the
  trigger's duration, averaged in blocks of ``dt_ms`` (20 samples at 4 kHz for 5 ms);
  optional per-trial baseline removal (``subtract_median``);
* stimulus = `cochleagram` of the clip (hop ``dt_ms``; ``max_freq`` None -> min(22627,
  0.95 sr/2)), floored 60 dB below the loudest bin of all clips;
* split: each cell's own clips, drawn per seed: 20 % test, 10 % validation (at least one
  each), the rest train; a cell with fewer than 3 clips is excluded from that run with a
  logged reason (:mod:`.splits`; the protocol table: :mod:`deepstrf_utils.runs.protocols`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from ..spectrogram import apply_floor, cochleagram
from . import download as dl
from .base import ResponseDataset
from .io import loadmat, mat_field

log = logging.getLogger(__name__)

__all__ = ["load_wehr", "find_wehr_root", "read_wehr_trial", "read_wehr_stimulus",
           "WEHR_VALID_CELLS", "is_available"]

NAME = "wehr"
#: indices (in session-name order) of the 21 of 25 cells used by Rançon et al. 2024/2025
WEHR_VALID_CELLS = (0, 3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24)
NATURAL_TYPES = ("naturalsound", "nauralsound", "natural")   # 'nauralsound' (sic) in the release
STIM_DIRS = ("fragments", "category1", "category2", "category3")


def is_available(root, **_) -> bool:
    """Whether the Wehr archive or its extracted folders are in ``<root>/wehr``."""
    return not dl.missing_files(NAME, root)


def _first(x):
    return x.ravel()[0] if isinstance(x, np.ndarray) and x.dtype == object else x


def find_wehr_root(folder) -> Path:
    """The ``wehr`` folder (holding ``Results/`` and ``Stimuli/``) under ``folder``.

    Extracts ``crcns-ac1.zip`` (atomically, into ``crcns-ac1/``) when only the zip is there.

    Raises:
        FileNotFoundError: neither the folders nor the zip (message: where to put them).
    """
    folder = Path(folder)

    def search() -> Optional[Path]:
        for pattern in ("Results", "*/Results", "*/*/Results", "*/*/*/Results"):
            for cand in sorted(folder.glob(pattern)):
                if cand.is_dir() and (cand.parent / "Stimuli").is_dir():
                    return cand.parent
        return None

    found = search()
    if found is None and (folder / "crcns-ac1.zip").is_file():
        log.info("extracting %s", folder / "crcns-ac1.zip")
        dl.extract_archive(folder / "crcns-ac1.zip", folder / "crcns-ac1")
        found = search()
    if found is None:
        raise FileNotFoundError(dl.not_found_message(NAME, folder.parent, ["wehr/Results", "wehr/Stimuli"]))
    return found


def read_wehr_stimulus(path) -> Tuple[str, np.ndarray, float]:
    """(description, waveform (n,), sample rate) of a ``Stimuli/<dir>/<k>.mat`` file."""
    path = Path(path)
    mat = loadmat(path, "CRCNS ac-1")
    if "stimulus" not in mat:
        raise ValueError(f"{path}: expected a struct 'stimulus' (samples, param)")
    stim = _first(mat["stimulus"])
    param = _first(mat_field(stim, "param", path, "stimulus"))
    samples = stim.samples if hasattr(stim, "samples") else mat_field(stim, "sample", path, "stimulus")
    return (str(mat_field(param, "description", path, "stimulus.param")),
            np.asarray(samples, dtype=np.float64).ravel(),
            float(mat_field(param, "sf", path, "stimulus.param")))


def read_wehr_trial(path) -> Optional[Tuple[str, np.ndarray, float]]:
    """(description, Vm segment in mV from stimulus onset, sample rate) of one trial file.

    Returns None when the trial is not a natural-sound trial.

    Raises:
        ValueError: missing ``triggers`` / ``response`` fields (names file and field).
    """
    path = Path(path)
    mat = loadmat(path, "CRCNS ac-1")
    for key in ("triggers", "response"):
        if key not in mat:
            raise ValueError(f"{path}: expected a struct '{key}', found variables "
                             f"{sorted(k for k in mat if not k.startswith('__'))}")
    trig = _first(mat["triggers"])
    if str(mat_field(trig, "type", path, "triggers")).lower().strip() not in NATURAL_TYPES:
        return None
    param = _first(mat_field(trig, "param", path, "triggers"))
    descr = str(mat_field(param, "description", path, "triggers.param"))
    duration_ms = float(mat_field(param, "duration", path, "triggers.param"))
    onset = int(np.asarray(mat_field(trig, "time", path, "triggers")).ravel()[0]) - 1   # 1-based
    resp = _first(mat["response"])
    trace = np.asarray(mat_field(resp, "trace", path, "response"), dtype=np.float64).ravel()
    scale = float(np.asarray(getattr(resp, "scale", 1.0)).ravel()[0])
    sf = float(mat_field(resp, "sf", path, "response"))
    n = int(round(duration_ms * sf / 1000.0))
    if onset < 0 or onset >= trace.size:
        raise ValueError(f"{path}: trigger time {onset + 1} is outside the trace "
                         f"({trace.size} samples)")
    return descr, trace[onset:onset + n] * scale, sf


def _block_mean(x: np.ndarray, sf: float, dt_ms: float, n_bins: int) -> np.ndarray:
    """Average a trace in blocks of dt_ms -> (n_bins,), NaN beyond the end of the trace."""
    block = int(round(dt_ms * sf / 1000.0))
    if block < 1:
        raise ValueError(f"dt_ms={dt_ms} is shorter than one sample at {sf} Hz")
    m = min(n_bins, x.size // block)
    out = np.full(n_bins, np.nan, dtype=np.float32)
    out[:m] = x[:m * block].reshape(m, block).mean(axis=1)
    return out


def _build(folder: Path, valid_cells: str, dt_ms: float, n_bands: int, min_freq: float,
           max_freq: Optional[float], threshold_db: float, subtract_median: bool,
           test_fraction: float, val_fraction: float) -> ResponseDataset:
    root = find_wehr_root(folder)
    stim_index: Dict[str, Tuple[str, np.ndarray, float]] = {}
    for sub in STIM_DIRS:
        for f in sorted((root / "Stimuli" / sub).glob("*.mat")):
            descr, wave, sr = read_wehr_stimulus(f)
            stim_index.setdefault(descr, (f"{sub}/{f.stem}", wave, sr))
    sessions = sorted(p for p in (root / "Results").iterdir() if p.is_dir() and p.name[:4].isdigit())
    if not sessions:
        raise FileNotFoundError(f"expected one folder per cell (yyyymmdd-...) in {root / 'Results'}")
    cells = list(range(len(sessions))) if valid_cells == "all" else [i for i in WEHR_VALID_CELLS if i < len(sessions)]
    if valid_cells != "all" and len(sessions) != 25:
        log.warning("%s holds %d cell folders, the release has 25: WEHR_VALID_CELLS indices may not "
                    "match", root / "Results", len(sessions))
    trials: Dict[int, Dict[str, List[Tuple[np.ndarray, float]]]] = {}
    for n, i in enumerate(cells):
        for f in sorted(sessions[i].glob("*.mat")):
            got = read_wehr_trial(f)
            if got is None:
                continue
            descr, seg, sf = got
            if descr not in stim_index:
                log.warning("%s: clip %r has no stimulus file; trial skipped", f, descr)
                continue
            trials.setdefault(n, {}).setdefault(descr, []).append((seg, sf))
    clips = sorted({d for per in trials.values() for d in per}, key=lambda d: stim_index[d][0])
    if not clips:
        raise ValueError(f"no natural-sound trial found in {root / 'Results'}")
    rates = [stim_index[d][2] for d in clips]
    if max_freq is None:
        max_freq = min(22627.0, 0.95 * min(rates) / 2)
    raw = []
    for d in clips:
        name, wave, sr = stim_index[d]
        spec_db, cf_hz = cochleagram(wave, sr, n_bands=n_bands, min_freq=min_freq,
                                     max_freq=max_freq, hop_ms=dt_ms, threshold_db=None)
        raw.append(spec_db)
    ref = max(float(s.max()) for s in raw)
    stimuli = [apply_floor(s, threshold_db, ref) for s in raw]
    responses = []
    for j, d in enumerate(clips):
        T = stimuli[j].shape[1]
        r_max = max([len(trials.get(n, {}).get(d, [])) for n in range(len(cells))])
        r = np.full((len(cells), r_max, T), np.nan, dtype=np.float32)
        for n in range(len(cells)):
            for k, (seg, sf) in enumerate(trials.get(n, {}).get(d, [])):
                r[n, k] = _block_mean(seg - np.median(seg) if subtract_median else seg, sf, dt_ms, T)
        responses.append(r)
    ids = [sessions[i].name for i in cells]
    neurons = pd.DataFrame({"id": ids, "cell_index": cells, "area": "A1",
                            "n_clips": [len(trials.get(n, {})) for n in range(len(cells))]})
    return ResponseDataset(
        stimuli=stimuli, responses=responses, dt_ms=dt_ms, cf_hz=cf_hz, neuron_ids=ids,
        neurons=neurons, stim_names=[stim_index[d][0] for d in clips],
        stim_types=["natural"] * len(clips), name=NAME,
        split_spec={"test": "random", "test_fraction": test_fraction, "val_fraction": val_fraction},
        meta={"source": "CRCNS ac-1 (Asari, Machens, Wehr & Zador 2009)",
              "valid_cells": valid_cells, "descriptions": clips, "max_freq_hz": float(max_freq),
              "response": "membrane potential (mV), block mean per bin"
                          + (", per-trial median removed" if subtract_median else ""),
              "threshold_db": threshold_db, "ref_db": ref},
    )


def load_wehr(root="data", download: bool = False, valid_cells: str = "rancon",
              dt_ms: float = 5.0, n_bands: int = 34, min_freq: float = 500.0,
              max_freq: Optional[float] = None, threshold_db: float = 60.0,
              subtract_median: bool = False, test_fraction: float = 0.2,
              val_fraction: float = 0.1, cache: bool = True) -> ResponseDataset:
    """Load the Wehr membrane-potential data (CRCNS ac-1) as a ResponseDataset.

    Args:
        root: data folder; ``crcns-ac1.zip`` or its content in ``<root>/wehr/``.
        download: CRCNS needs a login, so this only explains where to put the file.
        valid_cells: "rancon" (default, the 21 cells `WEHR_VALID_CELLS`) or "all" (25).
        dt_ms, n_bands, min_freq, max_freq, threshold_db: front end (`cochleagram`).
        subtract_median: remove each trial's median Vm before binning.
        test_fraction, val_fraction: random split fractions (per seed).
        cache: read/write the preprocessed HDF5 cache.

    Returns:
        ResponseDataset "wehr": responses ``(N, R_max, T_i)`` in mV, NaN where a cell did not
        hear clip i (or for missing trials).

    Raises:
        FileNotFoundError: archive absent (message: where to put it, CRCNS page).
        ValueError: bad option or malformed .mat (names the file and field).
    """
    if valid_cells not in ("rancon", "all"):
        raise ValueError(f"expected valid_cells 'rancon' or 'all', got {valid_cells!r}")
    folder = dl.require(NAME, root, download)
    options = dict(valid_cells=valid_cells, dt_ms=dt_ms, n_bands=n_bands, min_freq=min_freq,
                   max_freq=max_freq, threshold_db=threshold_db, subtract_median=subtract_median,
                   test_fraction=test_fraction, val_fraction=val_fraction)
    return dl.cached_dataset(NAME, root, options, lambda: _build(folder, **options), cache=cache)
