"""NAT4: ferret A1 and PEG population responses to natural sounds (Pennington & David 2023).

Release (Zenodo 8044773), in ``<root>/nat4_a1/`` (or ``nat4_peg/`` with ``PEG_``)::

    A1_NAT4_ozgf.fs100.ch18.tgz   NEMS population recording (read here WITHOUT NEMS)
    A1_pred_correlation.csv       one row per cell: columns ``cellid``, ``sig_auditory``, ...
    A1_single_sites/<site>.tgz    NEMS recordings of each site with every trial (from
                                  A1_single_sites.zip)

A NEMS recording is a folder (or a .tgz of one) of per-signal files::

    <rec>.<signal>.json        {"name", "recording", "chans", "fs", "meta", ["segments"]}
    <rec>.<signal>.csv         rasterized signal, time x channels, no header (NaN = no data)
    <rec>.<signal>.h5          (instead of .csv) point process: one dataset of spike times in
                               seconds per channel
    <rec>.<signal>.epoch.csv   header ``start,end,name`` (seconds), names such as TRIAL,
                               REFERENCE, PreStimSilence, ``STIM_<sound>``

`read_nems_recording` and `extract_epoch` parse this layout.

Dataset built by `load_nat4`:

* stimuli: every ``STIM_`` epoch of the population recording (595: 577 single-repeat sounds,
  then the 18 repeated test sounds, 1.5 s = 150 bins at 10 ms), cut from the ``stim``
  signal (18 bands, fs 100 Hz);
* stimulus normalisation ``stim_norm="nems"`` (default): NEMS0's ``norm.l1`` =
  ``xforms.normalize_sig(sig='stim', norm_method='minmax', log_compress=1)``: per channel
  ``y = log(1 + 10 x)`` (negative x set to 0), then min-max scaled to [0, 1] over the whole
  recording. ``"log1p_global"``: upstream deepSTRF 0.1.0 (global log1p then one min-max);
  ``None``: as stored;
* responses: spike counts per 10 ms bin, ``(N, R, 150)``; single-repeat stimuli from the
  population recording (R = 1, NaN where a cell was not recorded); the 18 test stimuli
  trial by trial (R = 20) from the single-site recordings (spike times binned with
  ``floor((t - epoch start) / dt)``), NaN for cells of other sites;
* neurons: the auditory cells of ``<area>_pred_correlation.csv`` (``sig_auditory`` true;
  777 A1, 339 PEG) when ``auditory_only`` (default);
* split: test = the stimuli with more than one repeat (``{"test": "repeated"}``), validation
  20 % of the rest (the single-repeat estimation stimuli) at random per seed, train the
  remainder (80/20, Pennington & David 2023); cells that did not hear every stimulus get
  their own split of the stimuli they heard (:mod:`.splits`).
"""
from __future__ import annotations

import io
import json
import logging
import re
import tarfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from . import download as dl
from .base import ResponseDataset

log = logging.getLogger(__name__)

__all__ = ["load_nat4", "read_nems_recording", "extract_epoch", "epoch_names",
           "normalise_stim", "NemsSignal", "is_available"]

AREAS = ("A1", "PEG")
TEST_REGEX = r"^STIM_00"        # name prefix of the repeated sounds in the NAT4 release


@dataclass
class NemsSignal:
    """One signal of a NEMS recording.

    Attributes:
        name, recording: signal and recording names. fs: sampling rate (Hz).
        chans: (C,) channel names. epochs: DataFrame with columns start, end (s), name.
        data: (C, T) rasterized values (None for a point process).
        spikes: channel -> spike times (s) for a point process (None otherwise).
        meta: the ``meta`` dict of the json file.
    """
    name: str
    recording: str
    fs: float
    chans: List[str]
    epochs: pd.DataFrame
    data: Optional[np.ndarray] = None
    spikes: Optional[Dict[str, np.ndarray]] = None
    meta: dict = field(default_factory=dict)
    segments: Optional[list] = None


def is_available(root, area: str = "A1", **_) -> bool:
    """Whether the NAT4 files of ``area`` are in ``<root>/nat4_<area>``."""
    return not dl.missing_files(f"nat4_{area.lower()}", root)


# ----------------------------------------------------------------------------- NEMS files
class _Source:
    """Uniform access to the files of a recording folder or .tgz (by base name)."""

    def __init__(self, path: Path):
        self.path = path
        self._tar = None
        if path.is_dir():
            self.files = {p.name: p for p in path.rglob("*") if p.is_file()}
        elif path.is_file():
            try:
                self._tar = tarfile.open(path, "r:*")
                self.files = {Path(m.name).name: m for m in self._tar.getmembers() if m.isfile()}
            except (tarfile.TarError, EOFError, OSError) as err:
                raise ValueError(f"could not read {path} as a .tgz NEMS recording "
                                 f"(truncated or corrupted?): {err}") from err
        else:
            raise FileNotFoundError(f"expected a NEMS recording (folder or .tgz) at {path}")

    def read(self, name: str) -> bytes:
        try:
            if self._tar is None:
                return self.files[name].read_bytes()
            return self._tar.extractfile(self.files[name]).read()
        except (tarfile.TarError, EOFError, OSError, KeyError, AttributeError) as err:
            raise ValueError(f"{self.path}: could not read member {name} (truncated or "
                             f"corrupted archive?): {err}") from err

    def close(self):
        if self._tar is not None:
            self._tar.close()


def read_nems_recording(path, signals: Optional[List[str]] = None,
                        optional: Sequence[str] = ()) -> Dict[str, NemsSignal]:
    """Read a NEMS recording (folder or .tgz of ``<rec>.<signal>.*`` files), without NEMS.

    Args:
        path: the folder or .tgz.
        signals: names to read (default all signals that have a json file).
        optional: names also read where the recording has them (e.g. ``["pupil"]``).

    Returns:
        dict signal name -> `NemsSignal`: ``data (C, T)`` from the csv (time x channels in
        the file), or ``spikes`` from an .h5 point process.

    Raises:
        FileNotFoundError: no such path. ValueError: no signal json, a requested signal
            missing, a csv whose width differs from ``chans``, an unreadable member.
    """
    path = Path(path)
    src = _Source(path)
    try:
        jsons = {n[:-5].rsplit(".", 1)[-1]: n for n in src.files
                 if n.endswith(".json") and not n.endswith(".meta.json")}
        if not jsons:
            raise ValueError(f"{path}: expected NEMS signal files <rec>.<signal>.json, found "
                             f"{sorted(src.files)[:10]}")
        wanted = list(jsons) if signals is None else list(signals)
        wanted += [s for s in optional if s in jsons and s not in wanted]
        missing = [s for s in wanted if s not in jsons]
        if missing:
            raise ValueError(f"{path}: expected signal(s) {missing}, found {sorted(jsons)}")
        out = {}
        for sig in wanted:
            jname = jsons[sig]
            base = jname[:-5]                         # <rec>.<signal>
            try:
                info = json.loads(src.read(jname).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ValueError(f"{path}: {jname} is not valid JSON: {err}") from err
            if "fs" not in info:
                raise ValueError(f"{path}: {jname} lacks the field 'fs'")
            chans = [str(c) for c in (info.get("chans") or [])]
            epochs = _read_epochs(src, base + ".epoch.csv", path)
            s = NemsSignal(name=info.get("name", sig), recording=info.get("recording", ""),
                           fs=float(info["fs"]), chans=chans, epochs=epochs,
                           meta=info.get("meta") or {}, segments=info.get("segments"))
            if base + ".csv" in src.files:
                try:
                    table = pd.read_csv(io.BytesIO(src.read(base + ".csv")), header=None,
                                        dtype=np.float32)
                except (ValueError, pd.errors.ParserError) as err:
                    raise ValueError(f"{path}: {base}.csv is not a numeric csv: {err}") from err
                data = table.to_numpy().T                        # (C, T)
                if chans and data.shape[0] != len(chans):
                    raise ValueError(f"{path}: {base}.csv has {data.shape[0]} columns, expected "
                                     f"{len(chans)} (the chans of {jname})")
                s.data = np.ascontiguousarray(data)
            elif base + ".h5" in src.files:
                import h5py
                with h5py.File(io.BytesIO(src.read(base + ".h5")), "r") as h5:
                    names = chans or sorted(h5.keys())
                    absent = [c for c in names if c not in h5]
                    if absent:
                        raise ValueError(f"{path}: {base}.h5 lacks spike times of {absent[:5]}")
                    s.spikes = {c: np.asarray(h5[c][...], dtype=np.float64).ravel() for c in names}
                    s.chans = list(names)
            else:
                raise ValueError(f"{path}: signal '{sig}' has no {base}.csv or {base}.h5")
            out[sig] = s
        return out
    finally:
        src.close()


def _read_epochs(src: _Source, name: str, path: Path) -> pd.DataFrame:
    if name not in src.files:
        raise ValueError(f"{path}: expected the epoch file {name}")
    try:
        ep = pd.read_csv(io.BytesIO(src.read(name)))
    except (ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: {name} is not a start,end,name csv: {err}") from err
    missing = {"start", "end", "name"} - set(ep.columns)
    if missing:
        raise ValueError(f"{path}: {name} lacks column(s) {sorted(missing)}; found {list(ep.columns)}")
    return ep[["start", "end", "name"]]


def epoch_names(signal: NemsSignal, regex: str = r"^STIM_") -> List[str]:
    """Unique epoch names matching ``regex``, in order of first occurrence."""
    pat = re.compile(regex)
    seen = dict.fromkeys(n for n in signal.epochs.sort_values("start", kind="stable")["name"]
                         if pat.search(str(n)))
    return list(seen)


def extract_epoch(signal: NemsSignal, name: str, dt_ms: Optional[float] = None,
                  n_bins: Optional[int] = None) -> np.ndarray:
    """Every occurrence of epoch ``name``: ``(R, C, T)``.

    Rasterized signals are sliced at ``round(start * fs) : round(end * fs)`` (NEMS'
    convention); point processes are binned at ``dt_ms`` (default ``1000 / fs``):
    spike ``t`` -> bin ``floor((t - start) / dt)``. ``n_bins`` forces T (cropping, or NaN
    padding rasterized data).

    Raises:
        ValueError: no epoch of that name (names the signal and a few names found).
    """
    rows = signal.epochs[signal.epochs["name"] == name]
    if rows.empty:
        some = list(dict.fromkeys(signal.epochs["name"]))[:8]
        raise ValueError(f"signal '{signal.name}' of {signal.recording}: no epoch named {name!r}; "
                         f"names include {some}")
    out = []
    if signal.spikes is not None:
        dt_s = (dt_ms / 1000.0) if dt_ms else 1.0 / signal.fs
        for start, end in zip(rows["start"], rows["end"]):
            T = n_bins if n_bins is not None else int(round((end - start) / dt_s))
            counts = np.zeros((len(signal.chans), T), dtype=np.float32)
            for c, chan in enumerate(signal.chans):
                t = signal.spikes[chan]
                idx = np.floor((t[(t >= start) & (t < end)] - start) / dt_s + 1e-9).astype(np.int64)
                idx = idx[(idx >= 0) & (idx < T)]
                counts[c] = np.bincount(idx, minlength=T)
            out.append(counts)
        return np.stack(out)
    data = signal.data
    for start, end in zip(rows["start"], rows["end"]):
        a, b = int(round(start * signal.fs)), int(round(end * signal.fs))
        piece = data[:, a:b]
        if n_bins is not None:
            fixed = np.full((data.shape[0], n_bins), np.nan, dtype=np.float32)
            fixed[:, :min(n_bins, piece.shape[1])] = piece[:, :n_bins]
            piece = fixed
        out.append(piece)
    lengths = {p.shape[1] for p in out}
    if len(lengths) > 1:
        T = min(lengths)
        log.warning("%s: occurrences of %s differ in length %s; cropped to %d bins",
                    signal.recording, name, sorted(lengths), T)
        out = [p[:, :T] for p in out]
    return np.stack(out).astype(np.float32)


def normalise_stim(data: np.ndarray, method: Optional[str] = "nems") -> np.ndarray:
    """Normalise a (F, T) stimulus signal (the whole recording) as NEMS or upstream did.

    ``"nems"``: per channel ``log(1 + 10 max(x, 0))`` then min-max to [0, 1] (NEMS0
    ``norm.l1``). ``"log1p_global"``: ``log1p(x)`` then one global min-max. None: unchanged.
    """
    x = np.asarray(data, dtype=np.float64)
    if method is None:
        return x.astype(np.float32)
    if method == "nems":
        y = np.log1p(10.0 * np.clip(np.nan_to_num(x, nan=0.0), 0.0, None))
        y[np.isnan(x)] = np.nan
        lo = np.nanmin(y, axis=1, keepdims=True)
        span = np.nanmax(y, axis=1, keepdims=True) - lo
        return ((y - lo) / np.where(span > 0, span, 1.0)).astype(np.float32)
    if method == "log1p_global":
        y = np.log1p(x)
        lo, hi = np.nanmin(y), np.nanmax(y)
        return ((y - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)
    raise ValueError(f"expected stim_norm 'nems', 'log1p_global' or None, got {method!r}")


# ----------------------------------------------------------------------------- loader
def _auditory_cells(csv: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(csv)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"could not read {csv} as a csv: {err}") from err
    missing = {"cellid", "sig_auditory"} - set(table.columns)
    if missing:
        raise ValueError(f"{csv}: expected columns 'cellid' and 'sig_auditory', missing "
                         f"{sorted(missing)}; found {list(table.columns)[:12]}")
    table["sig_auditory"] = table["sig_auditory"].astype(str).str.lower().isin(["true", "1", "1.0"])
    return table


def _state_signals(rec: Dict[str, NemsSignal], wanted: Sequence[str], names: List[str], n_bins: List[int],
                   fs: float, where: Path):
    """The state signals ``wanted`` that the recording has -> (B ``(S, T_i)`` arrays or None, names).

    Each stimulus gets the NaN-aware trial average of its occurrences (rasterized signals).
    """
    have = [w for w in wanted if w in rec and rec[w].data is not None]
    if not have:
        return None, None
    for w in have:
        if abs(rec[w].fs - fs) > 1e-9:
            raise ValueError(f"{where}: expected the {w} signal at the resp rate fs={fs} Hz, got fs={rec[w].fs}")
    states = []
    for name, t in zip(names, n_bins):
        rows = [extract_epoch(rec[w], name, n_bins=t) for w in have]     # (R, C_w, T) each
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)              # all-NaN bins stay NaN
            states.append(np.concatenate([np.nanmean(r, axis=0) for r in rows], axis=0).astype(np.float32))
    labels = [w if len(rec[w].chans) <= 1 else f"{w}:{c}" for w in have for c in (rec[w].chans or [w])]
    return states, labels


def _build(folder: Path, area: str, auditory_only: bool, single_sites: bool,
           stim_norm: Optional[str], val_fraction: float, state_signals: Sequence[str] = ()) -> ResponseDataset:
    pop_path = folder / f"{area}_NAT4_ozgf.fs100.ch18.tgz"
    if not pop_path.exists() and (folder / f"{area}_NAT4_ozgf.fs100.ch18").is_dir():
        pop_path = folder / f"{area}_NAT4_ozgf.fs100.ch18"
    rec = read_nems_recording(pop_path, signals=["resp", "stim"], optional=list(state_signals))
    resp, stim = rec["resp"], rec["stim"]
    if resp.data is None or stim.data is None:
        raise ValueError(f"{pop_path}: expected rasterized (csv) resp and stim signals")
    if abs(resp.fs - stim.fs) > 1e-9:
        raise ValueError(f"{pop_path}: resp fs {resp.fs} differs from stim fs {stim.fs}")
    dt_ms = 1000.0 / resp.fs
    stim.data = normalise_stim(stim.data, stim_norm)
    names = epoch_names(resp)
    if not names:
        raise ValueError(f"{pop_path}: no STIM_ epochs in the resp epochs")
    cells = list(resp.chans)
    table = _auditory_cells(folder / f"{area}_pred_correlation.csv")
    aud = dict(zip(table["cellid"].astype(str), table["sig_auditory"]))
    keep = [i for i, c in enumerate(cells) if aud.get(c, False)] if auditory_only else list(range(len(cells)))
    if not keep:
        raise ValueError(f"no cell of {pop_path} is marked sig_auditory in {area}_pred_correlation.csv")
    kept = [cells[i] for i in keep]

    stimuli, responses = [], []
    for name in names:
        spec = extract_epoch(stim, name)[0]                          # (F, T)
        r = extract_epoch(resp, name, n_bins=spec.shape[1])[:, keep]  # (R, N, T)
        stimuli.append(np.nan_to_num(spec, nan=0.0))
        responses.append(np.ascontiguousarray(r.transpose(1, 0, 2)))
    test = [j for j, n in enumerate(names) if re.search(TEST_REGEX, n)]
    if single_sites:
        site_dir = folder / f"{area}_single_sites"
        sites = sorted(p for p in site_dir.iterdir() if p.name.endswith((".tgz", ".tar.gz")) or p.is_dir())
        if not sites:
            raise FileNotFoundError(f"expected per-site recordings (<site>.tgz) in {site_dir}/")
        index = {c: n for n, c in enumerate(kept)}
        trials: Dict[int, Dict[int, np.ndarray]] = {}
        from tqdm.auto import tqdm
        for site in tqdm(sites, desc=f"NAT4 {area} sites", disable=len(sites) < 5):
            srec = read_nems_recording(site, signals=["resp"])["resp"]
            counts = srec.epochs["name"].value_counts()
            for j, name in enumerate(names):
                if counts.get(name, 0) < 2:
                    continue
                r = extract_epoch(srec, name, dt_ms=dt_ms, n_bins=stimuli[j].shape[1])
                for c, chan in enumerate(srec.chans):
                    if chan in index:
                        trials.setdefault(j, {})[index[chan]] = r[:, c]
        if not trials:
            raise ValueError(f"no stimulus of {pop_path} is repeated in the recordings of {site_dir}/")
        for j, per_cell in trials.items():
            r_max = max(a.shape[0] for a in per_cell.values())
            full = np.full((len(kept), r_max, stimuli[j].shape[1]), np.nan, dtype=np.float32)
            for n, a in per_cell.items():
                full[n, :a.shape[0]] = a
            responses[j] = full
        split_spec = {"test": "repeated", "val_fraction": val_fraction, "val_from": "rest"}
        test = sorted(trials)
    else:
        if not test:
            raise ValueError(f"{pop_path}: no stimulus name matches {TEST_REGEX!r}")
        split_spec = {"test": test, "val_fraction": val_fraction, "val_from": "rest"}
    neurons = table.set_index(table["cellid"].astype(str)).reindex(kept).reset_index(drop=True)
    neurons.insert(0, "id", kept)
    neurons["area"] = area
    neurons = neurons.drop(columns=["cellid"])
    F = stimuli[0].shape[0]
    states, state_names = _state_signals(rec, state_signals, names, [s.shape[1] for s in stimuli], resp.fs, pop_path)
    return ResponseDataset(
        states=states, state_names=state_names,
        stimuli=stimuli, responses=responses, dt_ms=dt_ms,
        cf_hz=_ozgf_centres(F), neuron_ids=kept, neurons=neurons,
        stim_names=names, stim_types=["natural"] * len(names), name=f"nat4_{area.lower()}",
        split_spec=split_spec,
        meta={"source": f"Pennington & David 2023, Zenodo {dl.ZENODO_RECORD}", "area": area,
              "stim_norm": stim_norm, "auditory_only": auditory_only,
              "test_from_single_sites": single_sites, "test_stimuli": [names[j] for j in test],
              "cf_hz_note": "ozgf band centres are approximate: log-spaced 200 Hz - 20 kHz",
              "preprocessing": "stim: " + str(stim_norm) + " normalisation over the whole "
                               "recording; resp: spike counts per bin"},
    )


def _ozgf_centres(F: int) -> np.ndarray:
    """Approximate centres of NEMS 'ozgf' gammatone bands (log-spaced 200 Hz - 20 kHz)."""
    return np.geomspace(200.0, 20000.0, F)


def load_nat4(root="data", download: bool = False, area: str = "A1",
              auditory_only: bool = True, single_sites: bool = True,
              stim_norm: Optional[str] = "nems", val_fraction: float = 0.2,
              cache: bool = True, state_signals: Sequence[str] = ("pupil",)) -> ResponseDataset:
    """Load NAT4 A1 or PEG as a ResponseDataset (see module docstring for the rules).

    Args:
        root: data folder; files in ``<root>/nat4_a1/`` or ``<root>/nat4_peg/``.
        download: fetch missing files from Zenodo (resumable, checksum-checked).
        area: "A1" or "PEG".
        auditory_only: keep the cells with ``sig_auditory`` in ``<area>_pred_correlation.csv``.
        single_sites: take the 18 test stimuli trial by trial (R = 20) from
            ``<area>_single_sites/``; False keeps the population recording's single
            (averaged) trace and fixes the test set to the ``STIM_00`` stimuli.
        stim_norm: "nems" (default), "log1p_global" or None (`normalise_stim`).
        val_fraction: fraction of the non-test (estimation) stimuli drawn per seed as
            validation set (0.2: the published 80/20 split).
        cache: read/write the preprocessed HDF5 cache in the dataset folder.
        state_signals: behavioural state signals to read where the population recording has
            them (default pupil), as ``dataset.states`` (trial average per stimulus).

    Returns:
        ResponseDataset "nat4_a1" / "nat4_peg": stimuli ``(18, 150)`` at 10 ms, responses
        ``(N, R, 150)`` spike counts (R = 1 train/val, 20 test), NaN = cell not recorded.

    Raises:
        FileNotFoundError: data absent (names the files and `make data DATASET=nat4_a1`).
        ValueError: bad option or a malformed file (names it).
    """
    if area not in AREAS:
        raise ValueError(f"expected area 'A1' or 'PEG', got {area!r}")
    name = f"nat4_{area.lower()}"
    folder = dl.require(name, root, download)
    options = dict(area=area, auditory_only=auditory_only, single_sites=single_sites,
                   stim_norm=stim_norm, val_fraction=val_fraction, state_signals=list(state_signals))
    return with_sites(dl.cached_dataset(name, root, options, lambda: _build(folder, **options), cache=cache))


def with_sites(ds: ResponseDataset) -> ResponseDataset:
    """Add the recording hierarchy to the neuron table (in place; returns ``ds``): ``site``, the
    first part of a NEMS cell id ``<site>-<electrode>-<unit>`` (``ARM029a-01-1`` -> ``ARM029a``),
    and ``animal``, the site's leading letters (``ARM``)."""
    sites = [str(c).split("-")[0] for c in ds.neuron_ids]
    ds.neurons["site"] = sites
    ds.neurons["animal"] = [re.match(r"[A-Za-z]*", s).group(0) or s for s in sites]
    return ds
