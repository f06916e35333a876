"""Your own recordings: a folder of WAV stimuli and per-stimulus spike files.

Layout (the one of the Meliza lab's starling data, ``melizalab/comp-neurosci``)::

    <path>/
      stimuli/A8.wav               one WAV per stimulus (any sample rate, mono or stereo)
      spikes/<unit>/A8.txt         spike times of <unit> to stimulus A8, one line per trial
      spikes/<unit>/A8.npy         ... or a NumPy array (R, T) of responses already binned
                                   at dt_ms (spike counts, or any signal)

* neurons = the sub-folders of ``spikes/`` (sorted by name); stimuli = the WAV files of
  ``stimuli/`` (sorted by name) that at least one unit has a response file for.
* ``.txt``: one line per trial; spike times in **ms from stimulus onset**, separated by
  spaces, tabs or commas; an empty line is a trial without spikes. Negative times (before
  onset) and times at or after the end of the stimulus (``T * dt_ms``) are dropped. A spike
  at time ``s`` goes to bin ``floor(s / dt_ms)``.
* ``.npy``: ``(R, T)`` or ``(T,)`` (one trial); T must equal the stimulus's bin count.
* Units heard different numbers of trials: responses are padded with NaN to the largest R;
  a unit without a file for a stimulus gets all-NaN trials.
* Stimuli become cochleagrams (`deepstrf_utils.spectrogram.cochleagram`, hop = ``dt_ms``),
  floored at ``threshold_db`` below the loudest bin of the whole stimulus set.

A folder may also use ``stimuli/`` + ``responses/`` instead of ``spikes/``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd

from ..spectrogram import cochleagram_set, load_wav
from .base import ResponseDataset
from .io import bin_spike_times, stack_trials  # noqa: F401  (part of this loader's public names)

log = logging.getLogger(__name__)

__all__ = ["load_folder", "bin_spike_times", "read_spike_file", "stack_trials",
           "is_available"]

_SPLIT = re.compile(r"[\s,;]+")


def read_spike_file(path) -> List[np.ndarray]:
    """Read a spike-time text file: one line per trial, times in ms.

    Returns:
        list of R arrays (one per line; an empty line is an empty trial). A trailing
        newline does not add a trial.

    Raises:
        ValueError: a value that is not a number (names file, line and token).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: expected a text file of spike times, could not decode it") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    trials = []
    for i, line in enumerate(lines, start=1):
        tokens = [tok for tok in _SPLIT.split(line.strip()) if tok]
        try:
            trials.append(np.array([float(tok) for tok in tokens], dtype=np.float64))
        except ValueError as err:
            raise ValueError(f"{path}, line {i}: expected spike times in ms separated by "
                             f"spaces or commas, got {line.strip()[:60]!r}") from err
    return trials


def _response_dir(path: Path) -> Path:
    for name in ("spikes", "responses"):
        if (path / name).is_dir():
            return path / name
    raise FileNotFoundError(f"expected a 'spikes/' (or 'responses/') folder with one "
                            f"sub-folder per unit in {path}, found none")


def is_available(root, **_) -> bool:
    """Whether ``root/folder`` (the default location for load_dataset('folder')) is usable."""
    path = Path(root) / "folder"
    return (path / "stimuli").is_dir() and any((path / d).is_dir() for d in ("spikes", "responses"))


def load_folder(path, dt_ms: float = 5.0, n_bands: int = 34, min_freq: float = 500.0,
                max_freq: Optional[float] = None, window_ms: float = 10.0,
                threshold_db: float = 60.0, sr: Optional[float] = None,
                split_spec: Optional[dict] = None, name: str = "folder") -> ResponseDataset:
    """Load a folder of WAV stimuli and per-unit spike files (layout in the module docstring).

    Args:
        path: the folder (holding ``stimuli/`` and ``spikes/``).
        dt_ms: bin width (ms) of spectrograms and responses.
        n_bands, min_freq, window_ms, threshold_db: `cochleagram` settings.
        max_freq: highest band centre (Hz); None = ``min(22627, 0.95 * sr / 2)`` of the
            lowest sample rate among the stimuli (logged).
        sr: expected sample rate (Hz) of every WAV; a file at another rate raises.
        split_spec: ResponseDataset split rule; default a random 20 % test / 10 % val per
            seed.
        name: dataset name.

    Returns:
        ResponseDataset: stimuli ``(F, T_i)``, responses ``(N, R_max, T_i)`` (NaN-padded),
        neuron_ids = unit folder names, stim_names = WAV stems.

    Raises:
        FileNotFoundError: missing folder / no WAV / no unit folder.
        ValueError: unreadable WAV, wrong sample rate, bad spike file, an ``.npy`` of the wrong
            length.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"expected a recordings folder at {path}, found none")
    stim_dir = path / "stimuli"
    wavs = sorted(stim_dir.glob("*.wav")) if stim_dir.is_dir() else []
    if not wavs:
        raise FileNotFoundError(f"expected WAV stimuli in {stim_dir}/ (e.g. stimuli/A8.wav), found none")
    resp_dir = _response_dir(path)
    units = sorted(p for p in resp_dir.iterdir() if p.is_dir())
    if not units:
        raise FileNotFoundError(f"expected one sub-folder per unit in {resp_dir}/, found none")

    # keep the stimuli that at least one unit responded to
    def response_file(unit: Path, stem: str) -> Optional[Path]:
        for ext in (".txt", ".npy"):
            if (unit / f"{stem}{ext}").is_file():
                return unit / f"{stem}{ext}"
        return None

    used = [w for w in wavs if any(response_file(u, w.stem) for u in units)]
    if not used:
        raise FileNotFoundError(f"no unit folder in {resp_dir}/ has a response file named after "
                                f"a stimulus of {stim_dir}/ (e.g. {units[0].name}/{wavs[0].stem}.txt)")
    skipped = sorted({f.stem for u in units for f in u.iterdir()} - {w.stem for w in wavs})
    if skipped:
        log.info("%s: responses without a stimulus WAV are skipped: %s", path, ", ".join(skipped))

    waves = [load_wav(w, sr=sr) for w in used]
    stimuli, cf_hz, front = cochleagram_set(waves, names=[str(w) for w in used], n_bands=n_bands,
                                            min_freq=min_freq, max_freq=max_freq, window_ms=window_ms,
                                            hop_ms=dt_ms, threshold_db=threshold_db, where=str(path))
    rates, ref, max_freq = front["sample_rates_hz"], front["ref_db"], front["max_freq_hz"]

    responses = []
    for w, spec in zip(used, stimuli):
        T = spec.shape[1]
        per_unit = []
        for unit in units:
            f = response_file(unit, w.stem)
            if f is None:
                per_unit.append(None)
            elif f.suffix == ".txt":
                trials = read_spike_file(f)
                per_unit.append(np.stack([bin_spike_times(t, T, dt_ms) for t in trials])
                                if trials else None)
            else:
                try:
                    arr = np.load(f, allow_pickle=False)
                except (ValueError, OSError) as err:
                    raise ValueError(f"{f}: could not read the NumPy array: {err}") from err
                arr = np.atleast_2d(np.asarray(arr, dtype=np.float32))
                if arr.ndim != 2 or arr.shape[1] != T:
                    raise ValueError(f"{f}: expected an array (R, T) with T={T} bins of {dt_ms} ms "
                                     f"(the length of {w.name}), got shape {arr.shape}")
                per_unit.append(arr)
        responses.append(stack_trials(per_unit, T))

    neurons = pd.DataFrame({"id": [u.name for u in units]})
    return ResponseDataset(
        stimuli=stimuli, responses=responses, dt_ms=dt_ms, cf_hz=cf_hz,
        neuron_ids=[u.name for u in units], neurons=neurons,
        stim_names=[w.stem for w in used], stim_types=["unknown"] * len(used), name=name,
        split_spec=split_spec or {"test": "random", "test_fraction": 0.2, "val_fraction": 0.1},
        meta={"source": str(path), "sample_rates_hz": rates, "max_freq_hz": float(max_freq),
              "threshold_db": threshold_db, "ref_db": ref,
              "preprocessing": "cochleagram (causal 10 ms Hann, hop dt_ms, log bands), "
                               "spike times binned with floor(t / dt_ms), t >= 0"},
    )
