"""Recordings in NWB files (Neurodata Without Borders, with the ``ndx-sound`` extension).

:func:`load_nwb` (``load_dataset("nwb", path=...)``) reads one NWB file into a
:class:`~deepstrf_utils.datasets.base.ResponseDataset`; :mod:`.nwb_write` writes one. Both
need the optional extra ``[nwb]`` (pynwb, ndx-sound), imported only when a file is read or
written, so this module imports without it.

What is read
------------
* **Units**: the ``units`` table. Neuron ids = its ``unit_name`` column when there is one,
  else the table's integer ids. Every scalar column (quality labels, ...) becomes a column of
  ``dataset.neurons``; units with electrodes also get ``location`` (the electrodes'
  locations, also as ``area``), ``electrode_group_name`` and ``electrode_ids`` (rows of the
  electrodes table). Where the
  table has ``obs_intervals``, a bin whose centre lies outside every observation interval of
  a unit is NaN (not recorded) for that unit.
* **Presentations**: the ``trials`` table, or the TimeIntervals table named by
  ``intervals``: one row per sound presentation, ``start_time`` = sound onset. The stimulus
  identity is the column ``stimulus_column`` (default: the first of ``STIMULUS_COLUMNS``
  present); the presentations of one identity are its repeats, in time order.
* **Stimuli** (``stimuli=``): ``"waveform"``: each identity's sound, from a folder of WAVs
  (``wav_dir``: ``<identity>``, ``<identity>.wav`` or a WAV with that stem), or cut out of
  one continuous sound series at the identity's first presentation (``sound_series``), or the
  ``AcousticWaveformSeries`` (any 1-D TimeSeries with a rate) named by the identity in the
  file's stimulus templates or stimuli; turned into cochleagrams by the project's front end
  (:func:`~deepstrf_utils.spectrogram.cochleagram_set`, hop = ``dt_ms``, one dB scale for the
  set). ``"spectrogram"``: the ``DecompositionSeries`` named ``<identity>`` or
  ``<identity>_spectrogram`` (what :func:`.nwb_write.to_nwb` writes when no waveform is
  known), used as stored; band centres = the bands' ``band_mean``. ``"auto"``: waveforms
  when every stimulus has one, else stored spectrograms.
* **Responses**: for a stimulus of T bins, each presentation's window is
  ``[onset - pad_before_ms, onset + T dt + pad_after_ms)``, cut into bins of ``dt_ms``;
  spike ``t`` goes to bin ``floor((t - window start) / dt)`` (:func:`.io.bin_spike_times`).
  The stimulus gets silent bins over the padding: from waveforms the front end pads them
  (the cochleagram floor, 0, after a sound's tail has left the analysis window, as in the
  ``folder`` loader); stored spectrograms get the set's minimum. Item i: ``(N, R_i, T_i)`` counts, R_i = its presentations.
* **States** (``states=[name, ...]``): TimeSeries found by name anywhere in the file
  (acquisition, processing modules and their containers, e.g. a pupil trace), averaged per
  bin over the samples inside it (linear interpolation for bins without a sample), then over
  the presentations of each stimulus (NaN-aware): ``dataset.states``, ``(S, T_i)``.

Errors (ValueError naming the file and what was expected): no units table; no presentation
table; presentations without a stimulus identity; overlapping presentations; a stimulus
without a waveform (or spectrogram); units with spikes, none of them inside a presentation
window (pass ``units=`` to leave them out). A one-line summary of what was read is logged at
WARNING (shown without any logging set up) and kept in ``dataset.meta["summary"]``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..plain import from_plain
from ..spectrogram import cochleagram_set, load_wav
from .base import ResponseDataset
from .io import bin_spike_times
from .state import bin_time_series

log = logging.getLogger(__name__)

__all__ = ["load_nwb", "nwb_files", "nwb_label", "is_available", "require_pynwb", "STIMULUS_COLUMNS",
           "DATASET_RECORD", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'deepstrf_utils[nwb]' (pynwb and ndx-sound)"
#: presentation-table columns taken as the stimulus identity, in this order
STIMULUS_COLUMNS = ("stimulus", "stimulus_name", "stim_name", "stim", "sound", "sound_name",
                    "stimulus_file", "wav_file", "wav")
#: name of the JSON record (scratch data) in which to_nwb keeps what NWB has no field for
DATASET_RECORD = "deepstrf_dataset"
_UNIT_SKIP = {"spike_times", "obs_intervals", "electrodes", "electrode_group", "waveform_mean",
              "waveform_sd", "waveforms", "unit_name"}
_DEFAULT_SPLIT = {"test": "random", "test_fraction": 0.2, "val_fraction": 0.1}
_TOL_S = 1e-9


def require_pynwb():
    """Import pynwb and ndx-sound (registers ``AcousticWaveformSeries``) -> the pynwb module."""
    try:
        import pynwb
        import ndx_sound  # noqa: F401
    except ImportError as err:
        raise ImportError(f"NWB files need the optional extra [nwb]: {INSTALL_HINT}") from err
    return pynwb


def nwb_label(path) -> str:
    """Dataset name of an NWB file in the notebooks: ``nwb_<stem>`` (lower case, ``[a-z0-9_]``)."""
    stem = re.sub(r"[^0-9a-z_]+", "_", Path(path).stem.lower()).strip("_")
    return f"nwb_{stem or 'file'}"


def nwb_files(root) -> dict:
    """``{nwb_label: path}`` of the files ``root/nwb/*.nwb`` (sorted); ValueError on a label clash."""
    folder = Path(root) / "nwb"
    out: dict = {}
    for p in sorted(folder.glob("*.nwb")) if folder.is_dir() else []:
        label = nwb_label(p)
        if label in out:
            raise ValueError(f"{out[label]} and {p} both give the dataset name {label!r}; rename one")
        out[label] = p
    return out


def is_available(root, **_) -> bool:
    """Whether ``root/nwb/`` holds NWB files (each is a dataset ``nwb_<stem>``)."""
    return bool(nwb_files(root))


@contextlib.contextmanager
def open_nwb(path: Path):
    """The NWBFile at ``path``, open for reading until exit (FileNotFoundError: none; ValueError: unreadable)."""
    pynwb = require_pynwb()
    if not path.is_file():
        raise FileNotFoundError(f"expected an NWB file at {path}, found nothing")
    io = None
    try:
        io = pynwb.NWBHDF5IO(str(path), "r")
        with warnings.catch_warnings():   # pynwb's advice on a spectrogram without a source series
            warnings.filterwarnings("ignore", "Neither source_timeseries", UserWarning)
            nwbfile = io.read()
    except Exception as err:  # h5py / hdmf raise many kinds on a damaged file
        if io is not None:
            io.close()
        raise ValueError(f"could not read {path} as an NWB file (not HDF5, truncated, or an "
                         f"unknown extension): {err}") from err
    try:
        yield nwbfile
    finally:
        io.close()


def _text(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _record(nwbfile) -> dict:
    """The JSON record to_nwb left in the scratch space ({} for other files)."""
    scratch = getattr(nwbfile, "scratch", None) or {}
    if DATASET_RECORD not in scratch:
        return {}
    data = scratch[DATASET_RECORD].data
    data = data if isinstance(data, (str, bytes)) else np.asarray(data[()]).ravel()[0]
    try:
        return json.loads(_text(data))
    except (ValueError, IndexError) as err:
        raise ValueError(f"the scratch record '{DATASET_RECORD}' is not the JSON to_nwb writes: {err}") from err


# ----------------------------------------------------------------------------- units
def _read_units(nwbfile, path: Path, keep: Optional[Sequence[str]]):
    """-> (ids (N,), neurons DataFrame, spike times list of N sorted arrays (s), obs list or None)."""
    from hdmf.common.table import VectorIndex

    units = nwbfile.units
    if units is None or len(units) == 0:
        raise ValueError(f"{path}: expected a units table with the spike times of the sorted units "
                         f"(nwbfile.units), found {'none' if units is None else 'an empty one'}")
    if "spike_times" not in units.colnames:
        raise ValueError(f"{path}: expected a 'spike_times' column in the units table, found {list(units.colnames)}")
    n = len(units)
    names = [_text(v) for v in units["unit_name"].data[:]] if "unit_name" in units.colnames \
        else [str(int(v)) for v in units.id[:]]
    if len(set(names)) != n:
        raise ValueError(f"{path}: expected unique unit names in the units table, got duplicates")
    table = {"id": names}
    for col in units.colnames:
        if col in _UNIT_SKIP or isinstance(units[col], VectorIndex):
            continue
        values = np.asarray(units[col].data[:])
        if values.ndim == 1:
            table[col] = [_text(v) for v in values] if values.dtype.kind in "SOU" else values
    neurons = pd.DataFrame(table)
    if "electrodes" in units.colnames or "electrode_group" in units.colnames:
        neurons = _electrode_columns(units, neurons)
    idx = list(range(n))
    if keep is not None:
        keep = [str(k) for k in ([keep] if isinstance(keep, str) else keep)]
        lookup = {v: i for i, v in enumerate(names)}
        missing = [k for k in keep if k not in lookup]
        if missing or not keep:
            raise ValueError(f"{path}: expected units= among the unit ids {names[:10]}, got unknown {missing or keep}")
        idx = [lookup[k] for k in keep]
        neurons = neurons.iloc[idx].reset_index(drop=True)
    spikes = [np.sort(np.asarray(units.get_unit_spike_times(i), dtype=np.float64).ravel()) for i in idx]
    obs = None
    if "obs_intervals" in units.colnames:
        obs = [_merge(np.asarray(units.get_unit_obs_intervals(i), dtype=np.float64).reshape(-1, 2)) for i in idx]
    return np.array([names[i] for i in idx]), neurons, spikes, obs


def _electrode_columns(units, neurons: pd.DataFrame) -> pd.DataFrame:
    """``location`` (also ``area``), ``electrode_group_name`` and ``electrode_ids`` of each unit."""
    loc, group, elec = [], [], []
    for i in range(len(units)):
        rows = units["electrodes"][i] if "electrodes" in units.colnames else None
        g = units["electrode_group"].data[i] if "electrode_group" in units.colnames else None
        if rows is not None and "location" in rows:
            loc.append("/".join(dict.fromkeys(str(v) for v in rows["location"])))
        else:
            loc.append(str(g.location) if g is not None else "")
        if g is not None:
            group.append(str(g.name))
        else:
            group.append("/".join(dict.fromkeys(str(v) for v in rows["group_name"]))
                         if rows is not None and "group_name" in rows else "")
        elec.append(",".join(str(v) for v in rows.index) if rows is not None else "")
    out = neurons.copy()
    for col, values in (("location", loc), ("area", loc), ("electrode_group_name", group), ("electrode_ids", elec)):
        if col not in out.columns:
            out[col] = values
    return out


def _merge(intervals: np.ndarray) -> np.ndarray:
    """Sorted, non-overlapping union of ``(K, 2)`` intervals."""
    if intervals.size == 0:
        return intervals.reshape(0, 2)
    iv = intervals[np.argsort(intervals[:, 0])]
    out = [list(iv[0])]
    for a, b in iv[1:]:
        if a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.asarray(out)


def _inside(t: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Boolean mask: ``t`` inside the union ``intervals`` (sorted, disjoint), ``[a, b)``."""
    if intervals.size == 0:
        return np.zeros(t.shape, dtype=bool)
    k = np.searchsorted(intervals[:, 0], t, side="right") - 1
    return (k >= 0) & (t < intervals[np.maximum(k, 0), 1])


# ----------------------------------------------------------------------------- presentations
def read_presentations(nwbfile, path: Path, intervals: str, column: Optional[str]):
    """-> (DataFrame row, start, stop, stimulus[, stim_type] sorted by start; the identity column)."""
    tables = dict(nwbfile.intervals or {})
    table = nwbfile.trials if intervals == "trials" else tables.get(intervals)
    if table is None or len(table) == 0:
        raise ValueError(f"{path}: expected sound presentations in the TimeIntervals table {intervals!r}, "
                         f"found {'an empty one' if table is not None else 'none'} (tables: {sorted(tables)}); "
                         f"pass intervals='<table name>'")
    cols = list(table.colnames)
    if column is None:
        found = [c for c in STIMULUS_COLUMNS if c in cols]
        if not found:
            raise ValueError(f"{path}: the presentations in {intervals!r} have no stimulus identity: expected a "
                             f"column naming the sound of each presentation (one of {list(STIMULUS_COLUMNS)}), "
                             f"found columns {cols}; pass stimulus_column='<column>'")
        column = found[0]
    elif column not in cols:
        raise ValueError(f"{path}: expected the stimulus column {column!r} in {intervals!r}, found columns {cols}")
    ident = [_text(v) for v in table[column].data[:]]
    empty = [i for i, v in enumerate(ident) if v.strip() in ("", "nan", "None")]
    if empty:
        raise ValueError(f"{path}: presentations {empty[:5]} of {intervals!r} have no stimulus identity "
                         f"(empty {column!r}; {len(empty)} of {len(ident)} rows)")
    start = np.asarray(table["start_time"].data[:], dtype=np.float64)
    stop = np.asarray(table["stop_time"].data[:], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(start) | ~np.isfinite(stop) | (stop <= start))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{path}: expected finite start_time < stop_time in {intervals!r}, got row {i}: "
                         f"{start[i]} - {stop[i]} s ({bad.size} such rows)")
    pres = pd.DataFrame({"row": np.arange(len(ident)), "start": start, "stop": stop, "stimulus": ident})
    if "stim_type" in cols:
        pres["stim_type"] = [_text(v) for v in table["stim_type"].data[:]]
    pres = pres.sort_values("start", kind="stable").reset_index(drop=True)
    over = np.flatnonzero(pres["start"].to_numpy()[1:] < pres["stop"].to_numpy()[:-1] - _TOL_S)
    if over.size:
        a, b = pres.iloc[over[0]], pres.iloc[over[0] + 1]
        raise ValueError(f"{path}: presentations overlap in {intervals!r}: row {a.row} ({a.stimulus!r}, "
                         f"{a.start:.4f}-{a.stop:.4f} s) and row {b.row} ({b.stimulus!r}, from {b.start:.4f} s); "
                         f"{over.size} overlapping pair(s); expected one sound at a time (one row per "
                         f"presentation, start_time = onset, stop_time = offset)")
    return pres, column


# ----------------------------------------------------------------------------- stimuli
def object_name(name: str) -> str:
    """The NWB object name of a stimulus (``/`` is not allowed in names: ``|``)."""
    return str(name).replace("/", "|")


def _series(nwbfile, acquisition: bool = False) -> dict:
    """Series by name: the stimulus templates, else the stimuli (else the acquisition)."""
    out: dict = {}
    for group in ((nwbfile.acquisition,) if acquisition else ()) + (nwbfile.stimulus, nwbfile.stimulus_template):
        out.update({k: v for k, v in (group or {}).items()})
    return out


def _is_spectrogram(ts) -> bool:
    return type(ts).__name__ == "DecompositionSeries"


def _samples(ts, what: str) -> tuple:
    """``(wave (n,), rate)`` of a 1-D (or ``(n, channels)``, averaged) sound series."""
    if ts.rate is None:
        raise ValueError(f"{what}: expected a sound series with a sampling rate, got timestamps only")
    x = np.asarray(ts.data[:], dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f"{what}: expected a waveform of shape (n,) or (n, channels), got {x.shape}")
    return x * float(ts.conversion or 1.0) + float(getattr(ts, "offset", 0.0) or 0.0), float(ts.rate)


def find_wav(folder: Path, name: str) -> Optional[Path]:
    """The WAV of ``name`` in ``folder`` (``name``, ``name.wav`` / ``.WAV``, a stem of any case); None if none."""
    for cand in (folder / name, folder / f"{name}.wav", folder / f"{name}.WAV"):
        if cand.is_file():
            return cand
    stem = Path(name).stem.lower()
    hits = [p for p in sorted(folder.iterdir()) if p.suffix.lower() == ".wav" and p.stem.lower() == stem]
    return hits[0] if hits else None


def _waveforms(nwbfile, path, names, pres, wav_dir, sound_series) -> dict:
    """{identity: (wave, sr)} for the identities whose sound can be found."""
    out = {}
    if wav_dir is not None:
        folder = Path(wav_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"expected a folder of WAV stimuli at {folder}, found none")
        for name in names:
            f = find_wav(folder, name)
            if f is not None:
                out[name] = load_wav(f)
        return out
    series = _series(nwbfile, acquisition=sound_series is not None)
    if sound_series is not None:
        if sound_series not in series:
            raise ValueError(f"{path}: expected a sound series {sound_series!r}, found series {sorted(series)[:20]}")
        ts = series[sound_series]
        x, sr = _samples(ts, f"{path}: {sound_series}")
        t0 = float(ts.starting_time or 0.0)
        for name in names:
            first = pres[pres["stimulus"] == name].iloc[0]
            a = int(round((first["start"] - t0) * sr))
            b = a + int(round((first["stop"] - first["start"]) * sr))
            if a < 0 or b > x.size:
                raise ValueError(f"{path}: the first presentation of {name!r} ({first['start']:.3f}-"
                                 f"{first['stop']:.3f} s) lies outside the sound series {sound_series!r}")
            out[name] = (x[a:b], sr)
        return out
    for name in names:
        ts = series.get(object_name(name))
        if ts is not None and not _is_spectrogram(ts) and ts.data is not None and np.ndim(ts.data) in (1, 2):
            out[name] = _samples(ts, f"{path}: stimulus {name}")
    return out


def _spectrograms(nwbfile, path, names) -> dict:
    """{identity: (spec (F, T), cf_hz (F,), rate)} of the stored DecompositionSeries."""
    series, out = _series(nwbfile), {}
    for name in names:
        keys = (object_name(name), object_name(name) + "_spectrogram")
        ts = next((series[k] for k in keys if k in series and _is_spectrogram(series[k])), None)
        if ts is None:
            continue
        data = np.asarray(ts.data[:], dtype=np.float32)
        if data.ndim == 3:
            data = data[:, 0, :]
        bands = ts.bands.to_dataframe()
        cf = (np.asarray(bands["band_mean"], dtype=np.float64) if "band_mean" in bands
              else np.sqrt(np.prod(np.stack(bands["band_limits"].to_numpy()), axis=1)))
        if ts.rate is None or data.ndim != 2 or data.shape[1] != cf.size:
            raise ValueError(f"{path}: expected the spectrogram {ts.name!r} as (T, 1, F) with a rate and F bands, "
                             f"got data {data.shape}, {cf.size} bands, rate {ts.rate}")
        out[name] = (np.ascontiguousarray(data.T), cf, float(ts.rate))
    return out


def _read_stimuli(nwbfile, path, names, pres, column, mode, wav_dir, sound_series, dt_ms, front, pad_ms):
    """-> (list of (F, T) spectrograms, cf_hz, dt_ms, (pre, post) bins, info dict).

    ``pad_ms = (before, after)``: silence kept around each stimulus. Waveforms are padded by
    the front end (`cochleagram_set`'s ``pad_bins``: a sound's last samples reach the first bins
    after it, as in the ``folder`` loader); stored spectrograms with their lowest value.
    """
    if mode not in ("auto", "waveform", "spectrogram"):
        raise ValueError(f"expected stimuli='auto', 'waveform' or 'spectrogram', got {mode!r}")
    waves = _waveforms(nwbfile, path, names, pres, wav_dir, sound_series) if mode != "spectrogram" else {}
    specs = _spectrograms(nwbfile, path, names) if mode != "waveform" and wav_dir is None and sound_series is None else {}
    if mode == "waveform" or (mode == "auto" and (len(waves) == len(names) or not specs)):
        missing = [n for n in names if n not in waves]
        if missing:
            where = (f"a WAV named after it in {wav_dir}" if wav_dir is not None else
                     f"its presentations inside the sound series {sound_series!r}" if sound_series is not None else
                     f"an AcousticWaveformSeries named {missing[0]!r} in the stimulus templates or stimuli")
            raise ValueError(f"{path}: stimulus {missing[0]!r} ({int((pres['stimulus'] == missing[0]).sum())} "
                             f"presentations) has no waveform: expected {where}, found series "
                             f"{sorted(_series(nwbfile))[:12]}; {len(missing)} of {len(names)} stimuli lack one. "
                             f"Pass wav_dir=<folder of WAVs named by the {column!r} column> or "
                             f"sound_series=<a continuous sound series>")
        dt = 5.0 if dt_ms is None else float(dt_ms)
        pad = _pad_bins(pad_ms[0], dt, "pad_before_ms"), _pad_bins(pad_ms[1], dt, "pad_after_ms")
        stimuli, cf, info = cochleagram_set([waves[n] for n in names], names=[f"{path}: stimulus {n}" for n in names],
                                            hop_ms=dt, where=str(path), pad_bins=pad, **front)
        source = "wav_dir" if wav_dir is not None else "sound_series" if sound_series is not None else "waveform"
        return stimuli, cf, dt, pad, {"stimuli_from": source, **info}
    missing = [n for n in names if n not in specs]
    if missing:
        raise ValueError(f"{path}: stimulus {missing[0]!r} has no stored spectrogram (a DecompositionSeries named "
                         f"{missing[0]!r} or '{missing[0]}_spectrogram'){' and no waveform' if mode == 'auto' else ''}; "
                         f"{len(missing)} of {len(names)} stimuli lack one")
    rates = {round(v[2], 9) for v in specs.values()}
    cfs = {tuple(v[1]) for v in specs.values()}
    if len(rates) != 1 or len(cfs) != 1:
        raise ValueError(f"{path}: expected every stored spectrogram on the same bins and bands, got rates "
                         f"{sorted(rates)} Hz and {len(cfs)} sets of band centres")
    dt = 1000.0 / rates.pop()
    if dt_ms is not None and abs(float(dt_ms) - dt) > 1e-6 * dt:
        raise ValueError(f"{path}: the stored spectrograms have {dt:g} ms bins, got dt_ms={dt_ms}; load with "
                         f"dt_ms={dt:g} (or None), or store the waveforms to choose the bin width")
    stimuli = [specs[n][0] for n in names]
    pre, post = _pad_bins(pad_ms[0], dt, "pad_before_ms"), _pad_bins(pad_ms[1], dt, "pad_after_ms")
    silence = float(min(s.min() for s in stimuli))
    stimuli = [np.pad(s, ((0, 0), (pre, post)), constant_values=silence) for s in stimuli]
    return stimuli, specs[names[0]][1], dt, (pre, post), {"stimuli_from": "spectrogram"}


# ----------------------------------------------------------------------------- states
def _find_timeseries(nwbfile, name: str, path: Path):
    """The one TimeSeries named ``name`` outside the stimulus groups (acquisition, processing, ...)."""
    from pynwb import TimeSeries

    sounds = {id(v) for g in (nwbfile.stimulus, nwbfile.stimulus_template) for v in (g or {}).values()}
    every = [o for o in nwbfile.objects.values() if isinstance(o, TimeSeries) and id(o) not in sounds]
    hits = [o for o in every if o.name == name]
    if len(hits) != 1:
        raise ValueError(f"{path}: expected one TimeSeries named {name!r} for the state signal, found "
                         f"{len(hits) or 'none'}; TimeSeries in the file: {sorted({o.name for o in every})[:20]}")
    return hits[0]


def _read_states(nwbfile, path, wanted, windows, n_bins, dt_ms):
    """-> (list of B (S, T_i) arrays, names) averaged over each stimulus' presentations."""
    per_stim = [[] for _ in windows]
    labels = []
    for name in wanted:
        ts = _find_timeseries(nwbfile, name, path)
        v = np.asarray(ts.data[:], dtype=np.float64)
        v = (v.reshape(v.shape[0], -1)) * float(ts.conversion or 1.0) + float(getattr(ts, "offset", 0.0) or 0.0)
        t = (np.asarray(ts.timestamps[:], dtype=np.float64) if ts.timestamps is not None
             else float(ts.starting_time or 0.0) + np.arange(v.shape[0]) / float(ts.rate))
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
        labels += [name] if v.shape[1] == 1 else [f"{name}:{c}" for c in range(v.shape[1])]
        for i, (starts, T) in enumerate(zip(windows, n_bins)):
            per_stim[i].append(np.stack([bin_time_series(t, v, w0 + np.arange(T + 1) * dt_ms / 1000.0) for w0 in starts]))
    states = []
    for traces in per_stim:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)      # all-NaN bins stay NaN
            states.append(np.concatenate([np.nanmean(x, axis=0) for x in traces], axis=0).astype(np.float32))
    return states, labels


# ----------------------------------------------------------------------------- loader
def _pad_bins(pad_ms: float, dt_ms: float, what: str) -> int:
    n = float(pad_ms) / dt_ms
    if pad_ms < 0 or abs(n - round(n)) > 1e-6:
        raise ValueError(f"expected {what} >= 0 and a multiple of dt_ms={dt_ms:g}, got {pad_ms}")
    return int(round(n))


def load_nwb(path, dt_ms: Optional[float] = None, intervals: str = "trials", stimulus_column: Optional[str] = None,
             stimuli: str = "auto", wav_dir=None, sound_series: Optional[str] = None,
             pad_before_ms: float = 0.0, pad_after_ms: float = 0.0, units: Optional[Sequence[str]] = None,
             states: Optional[Sequence[str]] = None, n_bands: int = 34, min_freq: float = 500.0,
             max_freq: Optional[float] = None, window_ms: float = 10.0, threshold_db: float = 60.0,
             split_spec: Optional[dict] = None, name: Optional[str] = None) -> ResponseDataset:
    """Read one NWB file into a ResponseDataset (what is read and the rules: module docstring).

    Args:
        path: the ``.nwb`` file.
        dt_ms: bin width (ms); None = the stored spectrograms' bins, or 5 ms from waveforms.
        intervals: the presentation table (``"trials"`` or a TimeIntervals table's name).
        stimulus_column: its column holding the stimulus identity (default: see module doc).
        stimuli: ``"auto"``, ``"waveform"`` or ``"spectrogram"`` (module docstring).
        wav_dir: a folder of WAVs named by the identities (instead of sounds in the file).
        sound_series: one continuous sound series to cut each stimulus out of.
        pad_before_ms, pad_after_ms: silence kept before / after each stimulus (multiples of dt_ms).
        units: unit ids to keep (in this order); default all.
        states: names of TimeSeries read as state signals; None = those to_nwb stored (if any).
        n_bands, min_freq, max_freq, window_ms, threshold_db: the cochleagram front end
            (:func:`~deepstrf_utils.spectrogram.cochleagram_set`).
        split_spec, name: as in ResponseDataset (default: what to_nwb stored, else a random
            20 % test / 10 % validation split and the name ``nwb_<stem>``).

    Returns:
        ResponseDataset: stimuli ``(F, T_i)``, responses ``(N, R_i, T_i)`` spike counts (NaN =
        not observed), ``states`` ``(S, T_i)`` when asked.
    """
    path = Path(path)
    with open_nwb(path) as nwbfile:
        record = _record(nwbfile)
        ids, neurons, spikes, obs = _read_units(nwbfile, path, units)
        pres, column = read_presentations(nwbfile, path, intervals, stimulus_column)
        names = list(dict.fromkeys(pres["stimulus"]))
        stored = record.get("stim_names") or []
        if sorted(stored) == sorted(names):
            names = list(stored)
        front = dict(n_bands=n_bands, min_freq=min_freq, max_freq=max_freq, window_ms=window_ms,
                     threshold_db=threshold_db)
        specs, cf_hz, dt, (pre, post), info = _read_stimuli(nwbfile, path, names, pres, column, stimuli, wav_dir,
                                                            sound_series, dt_ms, front,
                                                            (float(pad_before_ms), float(pad_after_ms)))
        n_bins = [s.shape[1] for s in specs]
        groups = [pres[pres["stimulus"] == n] for n in names]
        windows = [g["start"].to_numpy() - pre * dt / 1000.0 for g in groups]
        _check_durations(path, names, groups, n_bins, pre + post, dt)
        responses = [_bin_window(spikes, obs, w, T, dt) for w, T in zip(windows, n_bins)]
        kept = _check_units(path, ids, spikes, windows, n_bins, dt)
        wanted = record.get("state_series") if states is None else list(states)
        st, st_names = (_read_states(nwbfile, path, wanted, windows, n_bins, dt) if wanted else (None, None))
    if st is not None and states is None and record.get("state_names"):
        st_names = list(record["state_names"])
    ours = sorted(stored) == sorted(names)
    types = (list(record["stim_types"]) if ours and record.get("stim_types") else
             [str(g["stim_type"].iloc[0]) if "stim_type" in g else "unknown" for g in groups])
    reps = [len(g) for g in groups]
    n_spikes = sum(s.size for s in spikes)
    rep = f"{min(reps)}" if min(reps) == max(reps) else f"{min(reps)}-{max(reps)}"
    summary = (f"{path.name}: {len(ids)} units, {len(names)} stimuli x {rep} repeats "
               f"({len(pres)} presentations in '{intervals}', identity column '{column}'), stimuli from "
               f"{info['stimuli_from']} ({cf_hz.size} bands), {dt:g} ms bins, padding {pre * dt:g} / {post * dt:g} ms, "
               f"{kept} of {n_spikes} spikes inside the presentation windows"
               + (f", states {st_names}" if st_names else ""))
    log.warning("read %s", summary)
    options = {"path": str(path), "intervals": intervals, "stimulus_column": column, "pad_before_ms": pre * dt,
               "pad_after_ms": post * dt, "dt_ms": dt, **{k: v for k, v in info.items() if k != "sample_rates_hz"}}
    meta = {**from_plain(record.get("meta") or {"source": str(path)}), "nwb": options, "summary": summary}
    return ResponseDataset(
        stimuli=specs, responses=responses, dt_ms=dt, cf_hz=cf_hz, neuron_ids=ids, neurons=neurons,
        stim_names=names, stim_types=types, name=name or record.get("name") or nwb_label(path),
        split_spec=split_spec or record.get("split_spec") or dict(_DEFAULT_SPLIT), meta=meta,
        states=st, state_names=st_names)


def _check_durations(path, names, groups, n_bins, n_pad, dt):
    for name, g, T in zip(names, groups, n_bins):
        dur = (g["stop"] - g["start"]).to_numpy() * 1000.0
        off = np.abs(dur - (T - n_pad) * dt) > dt + 1e-6
        if off.any():
            log.warning("%s: %d of %d presentations of %r last %.1f-%.1f ms, its sound %g ms (more than one bin apart)",
                        path, int(off.sum()), off.size, name, dur.min(), dur.max(), (T - n_pad) * dt)


def _bin_window(spikes, obs, starts, n_bins: int, dt_ms: float) -> np.ndarray:
    """``(N, R, T)`` spike counts of each unit in each window ``[start, start + T dt)``."""
    out = np.zeros((len(spikes), len(starts), n_bins), dtype=np.float32)
    span = n_bins * dt_ms / 1000.0
    for r, w0 in enumerate(starts):
        centres = w0 + (np.arange(n_bins) + 0.5) * dt_ms / 1000.0
        for n, t in enumerate(spikes):
            lo, hi = np.searchsorted(t, [w0, w0 + span], side="left")
            out[n, r] = bin_spike_times((t[lo:hi] - w0) * 1000.0, n_bins, dt_ms)
            if obs is not None:
                out[n, r][~_inside(centres, obs[n])] = np.nan
    return out


def _check_units(path, ids, spikes, windows, n_bins, dt) -> int:
    """Spikes inside any presentation window; ValueError for units with spikes, none inside."""
    raw = np.concatenate([np.stack([w, w + T * dt / 1000.0], axis=1) for w, T in zip(windows, n_bins)])
    raw = raw[np.argsort(raw[:, 0])]
    shared = int((raw[1:, 0] < raw[:-1, 1] - _TOL_S).sum())
    if shared:
        log.warning("%s: with the padding, %d pairs of presentation windows overlap: spikes there count in both "
                    "trials (less padding avoids it)", path, shared)
    wins = _merge(raw)
    inside = [int(_inside(t, wins).sum()) for t in spikes]
    lost = [i for i, (t, k) in enumerate(zip(spikes, inside)) if t.size and k == 0]
    if lost:
        t = spikes[lost[0]]
        raise ValueError(f"{path}: the spike times of unit(s) {[str(ids[i]) for i in lost[:8]]} lie outside every "
                         f"presentation window (unit {ids[lost[0]]}: {t.size} spikes at {t[0]:.3f}-{t[-1]:.3f} s; "
                         f"presentations {wins[0, 0]:.3f}-{wins[-1, 1]:.3f} s): spike times in another clock or "
                         f"unit (ms, samples)? Leave such units out with units=[...]")
    silent = [str(ids[i]) for i, t in enumerate(spikes) if t.size == 0]
    if silent:
        log.warning("%s: units without any spike: %s", path, silent[:10])
    return sum(inside)
