"""File helpers shared by the loaders: MATLAB v5 files and spike-time binning.

- :func:`loadmat` reads a MATLAB v5 ``.mat`` file (structs as attribute objects) and turns
  every failure into a ValueError / FileNotFoundError naming the file;
  :func:`mat_field` reads a struct field, naming the fields found when it is missing.
- :func:`bin_spike_times` counts spike times into bins (:func:`spike_bin_index`: the bin of each); :func:`stack_trials` stacks the
  neurons' ``(R_n, T)`` trials into one NaN-padded ``(N, R_max, T)`` response.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = ["loadmat", "mat_field", "spike_bin_index", "bin_spike_times", "stack_trials"]


def loadmat(path: Path, what: str = "the") -> dict:
    """Read the MATLAB v5 file ``path`` (``squeeze_me``, structs as objects) -> dict.

    ``what`` names the release in the messages (e.g. ``"NS1"``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a v7.3 (HDF5) file, or a truncated / corrupted one.
    """
    from scipy.io import loadmat as _scipy_loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected the {what} file {path}, found nothing")
    try:
        return _scipy_loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError as err:   # v7.3 (HDF5) .mat
        raise ValueError(f"{path} is a MATLAB v7.3 (HDF5) file; the {what} release uses v5 .mat "
                         f"files, so this one is not from it") from err
    except (MatReadError, ValueError, OSError, EOFError, TypeError) as err:
        raise ValueError(f"could not read {path} as a MATLAB .mat file (truncated or "
                         f"corrupted?): {err}") from err


def mat_field(struct, name: str, path: Path, where: str):
    """Field ``name`` of a MATLAB struct read from ``path``; ValueError naming ``where`` and the
    fields present when it is missing."""
    if not hasattr(struct, name):
        have = sorted(getattr(struct, "_fieldnames", []) or [])
        raise ValueError(f"{path}: expected a field '{name}' in {where}, found fields {have}")
    return getattr(struct, name)


def spike_bin_index(times_ms, dt_ms: float, onset_bin: int = 0) -> np.ndarray:
    """Bin of each spike: ``floor(t / dt_ms) + onset_bin`` (int64, ``(n_spikes,)``); bin
    ``onset_bin + k`` = ``[k dt, (k + 1) dt)`` ms after stimulus onset."""
    t = np.asarray(times_ms, dtype=np.float64).ravel()
    return np.floor(t / dt_ms).astype(np.int64) + int(onset_bin)


def bin_spike_times(times_ms, n_bins: int, dt_ms: float, onset_bin: int = 0) -> np.ndarray:
    """Count spikes in bins of width ``dt_ms``: bin ``onset_bin + k`` = ``[k dt, (k + 1) dt)`` ms.

    Args:
        times_ms: (n_spikes,) spike times in ms from stimulus onset (finite).
        n_bins: T. dt_ms: bin width. onset_bin: the bin where the stimulus starts (the
            number of pre-stimulus bins of a padded response).

    Returns:
        (T,) float32 spike counts; spikes before bin 0 or at/after bin T are dropped (their
        number is ``len(times_ms) - counts.sum()``).
    """
    idx = spike_bin_index(times_ms, dt_ms, onset_bin)
    idx = idx[(idx >= 0) & (idx < n_bins)]
    return np.bincount(idx, minlength=n_bins).astype(np.float32)


def stack_trials(per_neuron: Sequence[Optional[np.ndarray]], n_bins: int) -> np.ndarray:
    """Stack per-neuron ``(R_n, T)`` arrays into ``(N, R_max, T)``, NaN-padding missing trials.

    ``None`` (a neuron without responses to this stimulus) gives all-NaN trials.
    """
    r_max = max([a.shape[0] for a in per_neuron if a is not None] + [1])
    out = np.full((len(per_neuron), r_max, n_bins), np.nan, dtype=np.float32)
    for n, a in enumerate(per_neuron):
        if a is not None:
            out[n, :a.shape[0]] = a
    return out
