"""Write a ResponseDataset as an NWB file, and fitted models' predictions beside it.

:func:`to_nwb` lays a dataset out the way :func:`.nwb.load_nwb` reads it back exactly
(same stimuli, responses, neuron table, names, split rule, meta and states):

* **Stimuli**, in the stimulus templates, one series per stimulus: its waveform as an
  ndx-sound ``AcousticWaveformSeries`` named by the stimulus where the waveform is known
  (``waveforms=``: a folder of WAVs named by the stimuli, or ``{name: (wave, sr)}``; float32
  where that is exact, as for WAV samples, else float64, so that the front end gives back the
  same cochleagram); the
  dataset's spectrogram as a ``DecompositionSeries`` (data ``(T, 1, F)``, rate ``1000 /
  dt_ms``, metric ``"power"``, unit ``"dB above the floor"``, one band per row of its
  ``bands`` table: ``band_mean`` = the band centre ``cf_hz``, ``band_limits`` = the
  geometric midpoints to the neighbouring bands), named by the stimulus, or
  ``<name>_spectrogram`` beside a waveform (linked to it as its source).
* **Presentations**: the ``trials`` table (or a TimeIntervals table named ``intervals``),
  columns ``stimulus`` (name), ``stim_type`` and ``repeat``; each recorded trial becomes one
  presentation lasting its T_i bins, repeat by repeat (every stimulus's first trial, then
  every second trial, ...), ``gap_s`` of silence apart. Trials where no neuron has data are
  not presentations.
* **Units**: ``unit_name`` = the neuron id, each column of ``dataset.neurons`` a column.
  Spike times are rebuilt from the binned counts: the c spikes of a bin are spread evenly
  inside it, at ``(j + 0.5) / c`` of the bin (j = 0..c-1), so binning them again at the same
  ``dt_ms`` gives the same counts exactly. Missing trials or bins (NaN) are left out of the
  unit's ``obs_intervals`` (written only when something is missing). The units table's
  spike-time ``resolution`` is ``dt_ms``: the times are known to one bin.
* **States**: one TimeSeries per state signal in the processing module ``behavior``,
  timestamps at the bin centres of every presentation: the per-stimulus trial average
  (what the dataset holds) written at each presentation of its stimulus.
* What NWB has no field for (dataset name, split rule, ``meta``, stimulus order and types,
  state names) goes into a JSON record in the file's scratch space (``DATASET_RECORD``).
  The ground truth of simulated data is not written.

:func:`add_predictions` stores a model's predictions in the processing module
``deepstrf_predictions``: a TimeSeries ``(sum T_i, N)`` at the bin centres of each
stimulus's first presentation, with the model card (JSON) as its ``comments``, and a table
``<name>_scores`` of per-neuron scores when given; :func:`read_predictions` reads them back.
Every write goes to a temporary file that replaces ``path`` only when complete.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from ..plain import to_plain
from ..spectrogram import load_wav, n_frames
from .nwb import DATASET_RECORD, find_wav, object_name, open_nwb, read_presentations, require_pynwb

log = logging.getLogger(__name__)

__all__ = ["to_nwb", "add_predictions", "read_predictions", "PREDICTIONS_MODULE", "spike_times_from_counts"]

#: processing module holding fitted models' predictions
PREDICTIONS_MODULE = "deepstrf_predictions"
_RESERVED = {"id", "spike_times", "obs_intervals", "electrodes", "electrode_group", "waveform_mean",
             "waveform_sd", "waveforms", "unit_name"}


def spike_times_from_counts(counts: np.ndarray, start_s: float, dt_ms: float) -> np.ndarray:
    """Spike times (s) whose binning at ``dt_ms`` from ``start_s`` gives ``counts`` (T,) exactly.

    The c spikes of bin k sit at ``start_s + (k + (j + 0.5) / c) * dt`` for j = 0..c-1.
    NaN bins give no spikes.
    """
    c = np.nan_to_num(np.asarray(counts, dtype=np.float64)).astype(np.int64)
    k = np.repeat(np.arange(c.size), c)
    per = np.repeat(c, c)
    j = np.arange(k.size) - np.repeat(np.cumsum(c) - c, c)
    return start_s + (k + (j + 0.5) / np.maximum(per, 1)) * dt_ms / 1000.0


def _check_counts(dataset) -> None:
    for i, r in enumerate(dataset.responses):
        v = r[np.isfinite(r)]
        if v.size and (np.any(v < 0) or np.any(v != np.round(v))):
            bad = v[(v < 0) | (v != np.round(v))][0]
            raise ValueError(f"to_nwb writes spike counts as spike times; response {i} ('{dataset.stim_names[i]}') "
                             f"has a value {bad:g} that is not a count (continuous responses such as a membrane "
                             f"potential have no spike times)")


def _waveform_map(dataset, waveforms) -> dict:
    """{stimulus name: (wave, sr)} from a folder of WAVs or a mapping; each checked against T_i."""
    if waveforms is None:
        return {}
    if isinstance(waveforms, (str, os.PathLike)):
        folder = Path(waveforms)
        if not folder.is_dir():
            raise FileNotFoundError(f"expected a folder of WAVs named by the stimuli at {folder}, found none")
        found = {n: find_wav(folder, n) for n in dataset.stim_names}
        waves = {n: load_wav(f) for n, f in found.items() if f is not None}
    elif isinstance(waveforms, Mapping):
        waves = {str(k): (np.asarray(v[0], dtype=np.float64).ravel(), float(v[1])) for k, v in waveforms.items()}
    else:
        raise TypeError(f"expected waveforms as a folder of WAVs or a {{name: (wave, sr)}} dict, got "
                        f"{type(waveforms).__name__}")
    unknown = sorted(set(waves) - set(dataset.stim_names))
    if unknown:
        raise ValueError(f"waveforms for stimuli the dataset does not have: {unknown[:5]}")
    for name, (wave, sr) in waves.items():
        T = int(dataset.n_bins[dataset.stim_names.index(name)])
        if n_frames(wave.size, sr, dataset.dt_ms) != T:
            raise ValueError(f"the waveform of {name!r} ({wave.size / sr * 1000:.1f} ms) gives "
                             f"{n_frames(wave.size, sr, dataset.dt_ms)} bins of {dataset.dt_ms:g} ms, the dataset's "
                             f"stimulus has {T} (a padded stimulus has no waveform of its length)")
    return waves


def _bands(cf: np.ndarray):
    from pynwb.misc import FrequencyBandsTable

    lg = np.log(cf)
    step = np.diff(lg) if cf.size > 1 else np.array([np.log(2) / 6])
    edges = np.exp(np.concatenate([[lg[0] - step[0] / 2], (lg[1:] + lg[:-1]) / 2, [lg[-1] + step[-1] / 2]]))
    table = FrequencyBandsTable()
    for k, f in enumerate(cf):
        table.add_band(band_name=f"{f:.1f} Hz", band_limits=[edges[k], edges[k + 1]], band_mean=float(f))
    return table


def _presentations(dataset, gap_s: float) -> list:
    """[(start_s, stimulus index, trial index)], repeat by repeat, trials with data only."""
    has = [np.flatnonzero(~np.isnan(r).all(axis=(0, 2))) for r in dataset.responses]
    rows, t = [], gap_s
    for k in range(max(len(h) for h in has)):
        for i, h in enumerate(has):
            if k < len(h):
                rows.append((t, i, int(h[k])))
                t += dataset.n_bins[i] * dataset.dt_ms / 1000.0 + gap_s
    return rows


def _runs(mask: np.ndarray) -> list:
    """[(first, last + 1)] of the runs of True in a 1-D mask."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _subject(dataset, subject: Optional[Mapping]) -> dict:
    """Subject fields: ``subject`` (else ``dataset.meta["subject"]``), with NWB's "unknown" values
    for what it lacks (sex ``"U"``; age ``"P0D/"``, i.e. 0 days or older), and a warning."""
    given = dict(subject if subject is not None else dataset.meta.get("subject") or {})
    if not isinstance(subject, (Mapping, type(None))):
        raise TypeError(f"expected subject as a dict of pynwb Subject fields or a Subject, got {type(subject).__name__}")
    fields = {"subject_id": str(dataset.name), **given}
    unknown = [k for k in ("species", "sex", "age") if k not in given and not (k == "age" and "date_of_birth" in given)]
    fields.setdefault("sex", "U")
    if "date_of_birth" not in given:
        fields.setdefault("age", "P0D/")
    if unknown:
        fields.setdefault("description", f"{', '.join(unknown)} not given to to_nwb (unknown)")
        log.warning("to_nwb: subject %s not given; written as unknown (sex 'U', age 'P0D/' = 0 days or older). "
                    "Sharing on DANDI wants them: pass subject={'species': ..., 'sex': ..., 'age': 'P90D'}",
                    "/".join(unknown))
    return fields


def _plain_meta(meta: dict) -> dict:
    out = {}
    for k, v in meta.items():
        try:
            out[str(k)] = to_plain(v)
        except ValueError as err:
            log.warning("to_nwb: meta[%r] not written (%s)", k, err)
    return out


def _atomic(path: Path, write) -> Path:
    """Run ``write(tmp)`` on a temporary file beside ``path``, then move it into place."""
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.nwb")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def to_nwb(dataset, path, waveforms=None, intervals: str = "trials", gap_s: float = 0.5,
           session_start_time: Optional[datetime.datetime] = None, identifier: Optional[str] = None,
           session_description: Optional[str] = None, subject: Optional[Mapping] = None,
           overwrite: bool = False, **nwb_fields: Any) -> Path:
    """Write ``dataset`` to the NWB file ``path`` (layout in the module docstring), atomically.

    Args:
        dataset: a ResponseDataset whose responses are spike counts (NaN = missing).
        waveforms: the stimuli's sounds where known: a folder of WAVs named by the stimuli, or
            ``{name: (wave (n,), sr)}``; each must give the stimulus's T_i bins at ``dt_ms``.
        intervals: presentation table, ``"trials"`` or another TimeIntervals name.
        gap_s: silence between presentations (s).
        session_start_time: default now (UTC). identifier: default a random UUID.
        subject: ``pynwb.file.Subject`` fields (subject_id, species, age, sex, ...) or a Subject;
            default ``dataset.meta["subject"]``; sex / age not given are written as NWB's
            unknown values (``"U"``, ``"P0D/"``), with a warning.
        overwrite: replace an existing file.
        **nwb_fields: other NWBFile fields (experimenter, institution, lab, keywords, ...).

    Returns:
        the path written.
    """
    require_pynwb()
    from ndx_sound import AcousticWaveformSeries
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject
    from pynwb.misc import DecompositionSeries

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if not gap_s >= 0:
        raise ValueError(f"expected gap_s >= 0, got {gap_s}")
    _check_counts(dataset)
    clash = sorted(set(dataset.neurons.columns) & (_RESERVED - {"id"}))
    if clash:
        raise ValueError(f"neuron table columns {clash} are reserved names of the NWB units table; rename them")
    waves = _waveform_map(dataset, waveforms)
    dt, names = dataset.dt_ms, list(dataset.stim_names)
    nwb = NWBFile(
        session_description=session_description or f"{dataset.name}: {dataset.n_neurons} neurons, "
                                                   f"{dataset.n_stimuli} stimuli (written by deepstrf_utils)",
        identifier=identifier or str(uuid.uuid4()),
        session_start_time=session_start_time or datetime.datetime.now(datetime.timezone.utc),
        subject=subject if isinstance(subject, Subject) else Subject(**_subject(dataset, subject)), **nwb_fields)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Neither source_timeseries", UserWarning)
        for i, name in enumerate(names):
            wave_ts = None
            if name in waves:
                wave, sr = waves[name]
                small = wave.astype(np.float32)         # float32 where exact (WAV samples), else float64
                wave_ts = AcousticWaveformSeries(name=object_name(name), rate=sr,
                                                 data=small if np.array_equal(small, wave) else wave,
                                                 starting_time=0.0, description=f"sound of stimulus {name}")
                nwb.add_stimulus_template(wave_ts)
            nwb.add_stimulus_template(DecompositionSeries(
                name=object_name(name) + ("_spectrogram" if wave_ts is not None else ""),
                data=dataset.stimuli[i].T[:, None, :], metric="power", unit="dB above the floor",
                bands=_bands(dataset.cf_hz), rate=1000.0 / dt, starting_time=0.0, source_timeseries=wave_ts,
                description=f"spectrogram of stimulus {name} as the model sees it ({dataset.n_bands} bands, "
                            f"{dt:g} ms bins; {dataset.meta.get('preprocessing', 'deepstrf_utils dataset')})"))
    rows = _presentations(dataset, float(gap_s))
    table = nwb.trials if intervals == "trials" else None
    if intervals == "trials":
        for col, doc in (("stimulus", "name of the sound presented"), ("stim_type", "kind of stimulus"),
                         ("repeat", "trial index of this stimulus in the dataset")):
            nwb.add_trial_column(col, doc)
    else:
        table = TimeIntervals(name=intervals, description="sound presentations")
        for col, doc in (("stimulus", "name of the sound presented"), ("stim_type", "kind of stimulus"),
                         ("repeat", "trial index of this stimulus in the dataset")):
            table.add_column(col, doc)
        nwb.add_time_intervals(table)
    for t0, i, r in rows:
        kw = dict(start_time=t0, stop_time=t0 + dataset.n_bins[i] * dt / 1000.0, stimulus=names[i],
                  stim_type=dataset.stim_types[i], repeat=r)
        nwb.add_trial(**kw) if intervals == "trials" else table.add_row(**kw)
    _write_units(nwb, dataset, rows)
    series = _write_states(nwb, dataset, rows, TimeSeries)
    record = {"format": 1, "writer": "deepstrf_utils.datasets.nwb_write", "name": dataset.name, "dt_ms": dt,
              "split_spec": to_plain(dataset.split_spec), "meta": _plain_meta(dataset.meta), "stim_names": names,
              "stim_types": list(dataset.stim_types), "state_names": list(dataset.state_names or []),
              "state_series": series, "ground_truth_written": False}
    nwb.add_scratch(np.array([json.dumps(record)]), name=DATASET_RECORD,
                    description="deepstrf_utils dataset fields NWB has no place for (JSON)")

    def write(tmp):
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)

    _atomic(path, write)
    if dataset.ground_truth is not None:
        log.info("to_nwb: the ground truth of %s is not written", dataset.name)
    log.info("wrote %s (%d units, %d stimuli, %d presentations)", path, dataset.n_neurons, len(names), len(rows))
    return path


def _write_units(nwb, dataset, rows) -> None:
    """The units table, built from whole arrays (adding units one by one converts every spike time)."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units

    dt = dataset.dt_ms
    missing = any(np.isnan(r).any() for r in dataset.responses)
    times, obs, n_times, n_obs = [], [], [], []
    for n in range(dataset.n_neurons):
        unit_times, unit_obs = [], []
        for t0, i, r in rows:
            trial = dataset.responses[i][n, r]
            unit_times.append(spike_times_from_counts(trial, t0, dt))
            unit_obs += [[t0 + a * dt / 1000.0, t0 + b * dt / 1000.0] for a, b in _runs(~np.isnan(trial))]
        times.append(np.concatenate(unit_times))
        obs.append(np.asarray(unit_obs, dtype=np.float64).reshape(-1, 2))
        n_times.append(times[-1].size)
        n_obs.append(len(unit_obs))
    columns = [VectorData(name="unit_name", description="neuron id in the deepstrf_utils dataset",
                          data=np.array([str(v) for v in dataset.neuron_ids], dtype=object))]
    for c in (c for c in dataset.neurons.columns if c != "id"):
        values = [_cell(v) for v in dataset.neurons[c]]
        text = any(isinstance(v, str) for v in values)
        columns.append(VectorData(name=str(c), description=f"neuron table column {c}",
                                  data=np.array([str(v) for v in values], dtype=object) if text else np.array(values)))
    spike_times = VectorData(name="spike_times", description="spike times (s), rebuilt from binned counts",
                             data=np.concatenate(times))
    columns += [spike_times, VectorIndex(name="spike_times_index", data=np.cumsum(n_times), target=spike_times)]
    if missing:
        intervals = VectorData(name="obs_intervals", description="bins with a recorded response",
                               data=np.concatenate(obs))
        columns += [intervals, VectorIndex(name="obs_intervals_index", data=np.cumsum(n_obs), target=intervals)]
    nwb.units = Units(name="units", id=np.arange(dataset.n_neurons), columns=columns, resolution=dt / 1000.0,
                      description="units of the deepstrf_utils dataset; spike times rebuilt from counts per bin")


def _cell(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return v
    return "" if v is None else str(v)


def _write_states(nwb, dataset, rows, TimeSeries) -> list:
    if dataset.states is None:
        return []
    module = nwb.create_processing_module("behavior", "behavioural state signals")
    dt, names = dataset.dt_ms, []
    for s, label in enumerate(dataset.state_names):
        stamps = [t0 + (np.arange(dataset.n_bins[i]) + 0.5) * dt / 1000.0 for t0, i, _ in rows]
        data = [dataset.states[i][s] for _, i, _ in rows]
        name = object_name(label)
        module.add(TimeSeries(name=name, data=np.concatenate(data), timestamps=np.concatenate(stamps), unit="a.u.",
                              description=f"state signal {label}: its trial average per stimulus, written at "
                                          f"every presentation of the stimulus (deepstrf_utils)"))
        names.append(name)
    return names


# ----------------------------------------------------------------------------- predictions
def add_predictions(path, name: str, predictions: Sequence[np.ndarray], stim_names: Sequence[str],
                    neuron_ids: Sequence[str], dt_ms: float, card: Optional[dict] = None,
                    scores: Optional[pd.DataFrame] = None, intervals: str = "trials",
                    stimulus_column: str = "stimulus", pad_before_ms: float = 0.0) -> Path:
    """Store predictions ``(N, T_i)`` per stimulus beside the recording in the NWB file ``path``.

    Each stimulus's prediction is placed at the bins of its first presentation in the table
    ``intervals`` (window start = onset - ``pad_before_ms``, as the dataset was read). ``card``
    (JSON-able dict: model, config, ...) goes in the series' ``comments``; ``scores`` (one row
    per neuron, e.g. :func:`~deepstrf_utils.training.evaluate`) becomes the table
    ``<name>_scores``. The file is rewritten atomically.
    """
    require_pynwb()
    from hdmf.common import DynamicTable
    from pynwb import NWBHDF5IO, TimeSeries

    path = Path(path)
    preds = [np.asarray(p, dtype=np.float32) for p in predictions]
    if len(preds) != len(stim_names) or any(p.ndim != 2 or p.shape[0] != len(neuron_ids) for p in preds):
        raise ValueError(f"expected one (N, T_i) prediction per stimulus with N={len(neuron_ids)}, got "
                         f"{[p.shape for p in preds][:4]} for {len(stim_names)} stimuli")
    with open_nwb(path) as nwbfile:
        pres, _ = read_presentations(nwbfile, path, intervals, stimulus_column)
    first = pres.groupby("stimulus")["start"].min()
    missing = [s for s in stim_names if s not in first.index]
    if missing:
        raise ValueError(f"{path}: stimuli {missing[:5]} have no presentation in {intervals!r}")
    order = sorted(range(len(preds)), key=lambda i: first[stim_names[i]])
    stamps = [first[stim_names[i]] - pad_before_ms / 1000.0 + (np.arange(preds[i].shape[1]) + 0.5) * dt_ms / 1000.0
              for i in order]
    info = {**to_plain(card or {}), "stim_names": [str(stim_names[i]) for i in order],
            "n_bins": [int(preds[i].shape[1]) for i in order], "neuron_ids": [str(v) for v in neuron_ids],
            "dt_ms": float(dt_ms)}

    def write(tmp):
        shutil.copyfile(path, tmp)
        with NWBHDF5IO(str(tmp), "a") as io:
            nwb = io.read()
            module = nwb.processing.get(PREDICTIONS_MODULE) or nwb.create_processing_module(
                PREDICTIONS_MODULE, "predictions of fitted deepstrf_utils models (model card in each series' comments)")
            if object_name(name) in module.data_interfaces:
                raise ValueError(f"{path} already holds predictions named {name!r}; choose another name")
            module.add(TimeSeries(name=object_name(name), data=np.concatenate([preds[i].T for i in order]),
                                  timestamps=np.concatenate(stamps), unit="spikes per bin", comments=json.dumps(info),
                                  description=f"predicted response of each unit (columns: card neuron_ids) at the "
                                              f"first presentation of each stimulus, {dt_ms:g} ms bins"))
            if scores is not None:
                module.add(DynamicTable.from_dataframe(scores.reset_index(drop=True), name=f"{object_name(name)}_scores",
                                                       table_description=f"per-neuron scores of {name}"))
            io.write(nwb)

    return _atomic(path, write)


def read_predictions(path, name: Optional[str] = None) -> dict:
    """Predictions stored by :func:`add_predictions`: ``{name: {"predictions": list of (N, T_i),
    "stim_names", "neuron_ids", "card", "scores" (DataFrame or None)}}`` (only ``name`` if given)."""
    path = Path(path)
    out = {}
    with open_nwb(path) as nwbfile:
        module = nwbfile.processing.get(PREDICTIONS_MODULE)
        series = {k: v for k, v in (module.data_interfaces.items() if module else [])
                  if type(v).__name__ == "TimeSeries"}
        if name is not None and object_name(name) not in series:
            raise ValueError(f"{path}: expected predictions named {name!r}, found {sorted(series)}")
        for key, ts in series.items():
            if name is not None and key != object_name(name):
                continue
            card = json.loads(ts.comments)
            data = np.asarray(ts.data[:], dtype=np.float32)
            cuts = np.cumsum([0] + card["n_bins"])
            table = module.data_interfaces.get(f"{key}_scores")
            out[key] = {"predictions": [np.ascontiguousarray(data[a:b].T) for a, b in zip(cuts[:-1], cuts[1:])],
                        "stim_names": card["stim_names"], "neuron_ids": card["neuron_ids"], "card": card,
                        "scores": table.to_dataframe().reset_index(drop=True) if table is not None else None}
    return out
