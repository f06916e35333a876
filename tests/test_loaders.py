"""Loaders of the real datasets, tested on miniature files in the releases' own formats.

Each builder below writes a few units / cells / stimuli with the file names, folder layout
and struct fields of the original release (NS1 on OSF, NAT4 on Zenodo, CRCNS ac-1), so the
real parsing code runs end to end. The shared real recordings (NEMS signal files of
eno052d-a1, the Meliza starling units) are used when present and skipped otherwise.
"""
import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.io import savemat, wavfile

from deepstrf_utils.datasets import download as dl
from deepstrf_utils.datasets.folder import load_folder, read_spike_file
from deepstrf_utils.datasets.nat4 import (epoch_names, extract_epoch, load_nat4, normalise_stim,
                                          read_nems_recording)
from deepstrf_utils.datasets.ns1 import NS1_WAV_FILES, load_ns1, read_ns1_unit
from deepstrf_utils.datasets.wehr import WEHR_VALID_CELLS, load_wehr
from deepstrf_utils.spectrogram import load_wav

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ENO = SHARED / "nems_signals_eno052d" / "eno052d-a1"
STARLING = SHARED / "meliza_starling" / "data" / "starling"


# ----------------------------------------------------------------------------- builders
def _struct_array(records, fields):
    arr = np.empty((1, len(records)), dtype=[(f, "O") for f in fields])
    for i, rec in enumerate(records):
        for f in fields:
            arr[0, i][f] = rec[f]
    return arr


def _tone_wav(path, freq, sr=48000, dur_s=0.1):
    t = np.arange(int(round(dur_s * sr))) / sr
    wavfile.write(path, sr, (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16))


NS1_UNITS = [  # (singleT, depth, NoiseRatio): "single" keeps units 0, 1, 4; "noise_ratio" 0-3
    ("Yes", 300.0, 20.0), ("Maybe", 500.0, 30.0), ("No", 400.0, 35.0),
    ("Yes", -1.0, 10.0), ("Yes", 800.0, 55.0)]


def make_ns1(root, R=3, dur_s=0.1, rng=None):
    """Miniature OSF ayw2p release: MetadataSHEnCneurons.mat + spikesandwav/ (20 WAVs, units)."""
    rng = rng or np.random.default_rng(0)
    folder = Path(root) / "ns1"
    wav_dir = folder / "spikesandwav" / "SH.En.C"
    wav_dir.mkdir(parents=True)
    for j, name in enumerate(NS1_WAV_FILES):
        _tone_wav(wav_dir / name, 600 + 400 * j, dur_s=dur_s)
    meta, spikes = [], {}
    for u, (single_t, depth, noise) in enumerate(NS1_UNITS):
        rel = f"dataAC/E1P{u:02d}.R.SH.En.C/cluster.{u + 1:02d}.data.mat"
        meta.append(dict(file=Path(rel).name, path=rel, depth=np.array([[depth]]),
                         NoiseRatio=np.array([[noise]]), singleN=np.array([[1.0]]),
                         singleT=single_t, NrOfElectrodes=np.array([[32.0]]),
                         ElectrodeNumber=np.array([[u + 1.0]])))
        sets = []
        for j in range(32):          # 20 natural clips then 12 DRCs, as in the release
            n_rep = (R - 1 if (u == 1 and j == 5) else R) if j < 20 else 5
            reps = [dict(t=np.sort(rng.uniform(-30, 1000 * dur_s + 30, size=6))[None, :])
                    for _ in range(n_rep)]
            sets.append(dict(repeats=_struct_array(reps, ["t"])))
            spikes[(u, j)] = [r["t"].ravel() for r in reps]
        path = folder / "spikesandwav" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        savemat(path, {"data": {"set": _struct_array(sets, ["repeats"])}})
    savemat(folder / "MetadataSHEnCneurons.mat", {"neuron": _struct_array(meta, list(meta[0]))})
    return folder, spikes


def _nems_files(rec, signals, epochs):
    """{file name: bytes} of a NEMS recording; signals: name -> (chans, fs, data or spikes)."""
    out = {}
    ep = "start,end,name\n" + "".join(f"{s},{e},{n}\n" for s, e, n in epochs)
    for sig, (chans, fs, payload) in signals.items():
        out[f"{rec}.{sig}.json"] = json.dumps({"name": sig, "recording": rec, "chans": chans,
                                               "fs": fs, "meta": {}}).encode()
        out[f"{rec}.{sig}.epoch.csv"] = ep.encode()
        if isinstance(payload, dict):
            buf = io.BytesIO()
            with h5py.File(buf, "w") as h5:
                for c, t in payload.items():
                    h5.create_dataset(c, data=t)
            out[f"{rec}.{sig}.h5"] = buf.getvalue()
        else:
            out[f"{rec}.{sig}.csv"] = "\n".join(",".join(f"{v:g}" for v in row)
                                                for row in payload.T).encode() + b"\n"
    return out


def _write_tgz(path, rec, files):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{rec}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def make_nat4(root, area="A1", rng=None):
    """Miniature Zenodo 8044773 release for one area: 3 est + 2 repeated stimuli, 2 sites."""
    rng = rng or np.random.default_rng(1)
    folder = Path(root) / f"nat4_{area.lower()}"
    (folder / f"{area}_single_sites").mkdir(parents=True)
    fs, T, F = 100, 15, 18                    # 0.15 s stimuli at 10 ms
    cells = ["ARM029a-01-1", "ARM029a-02-1", "ARM030b-05-2", "ARM030b-07-1"]
    est = ["STIM_cat1_a.wav", "STIM_cat2_b.wav", "STIM_cat3_c.wav"]
    val = ["STIM_00cat10_x.wav", "STIM_00cat11_y.wav"]
    names = val + est                          # as in the release: repeated sounds first
    stim = rng.uniform(0, 3, size=(F, T * len(names)))
    resp = rng.poisson(1.0, size=(len(cells), T * len(names))).astype(float)
    resp[2:, T * 2:T * 3] = np.nan             # site ARM030b did not hear est[0]
    epochs = [(k * T / fs, (k + 1) * T / fs, n) for k, n in enumerate(names)]
    rec = f"{area}_NAT4_ozgf.fs100.ch18"
    _write_tgz(folder / f"{rec}.tgz", rec,
               _nems_files(rec, {"resp": (cells, fs, resp), "stim": ([f"{i}" for i in range(F)], fs, stim)},
                           epochs))
    pd.DataFrame({"cellid": cells, "sig_auditory": [True, False, True, True],
                  "r_test": [0.3, 0.1, 0.4, 0.2]}).to_csv(folder / f"{area}_pred_correlation.csv", index=False)
    truth = {}
    for site, site_cells, n_rep in (("ARM029a", cells[:2], 4), ("ARM030b", cells[2:], 3)):
        ep, spikes, t0 = [], {c: [] for c in site_cells}, 0.0
        for rep in range(n_rep):
            for n in val + (est[:1] if rep == 0 else []):    # est sounds are played once
                ep.append((t0, t0 + 0.15, n))
                for c in site_cells:
                    t = np.sort(rng.uniform(t0 - 0.05, t0 + 0.2, size=5))
                    spikes[c].append(t)
                    truth.setdefault((c, n), []).append(np.floor((t[(t >= t0) & (t < t0 + 0.15)] - t0) / 0.01))
                t0 += 0.3
        _write_tgz(folder / f"{area}_single_sites" / f"{site}.tgz", site,
                   _nems_files(site, {"resp": (site_cells, 1000, {c: np.concatenate(v) for c, v in spikes.items()})},
                               ep))
    return folder, dict(cells=cells, names=names, stim=stim, resp=resp, truth=truth, T=T)


def _trial_mat(path, descr, onset, trace, sf=4000.0, ttype="naturalsound", duration_ms=None):
    duration_ms = duration_ms if duration_ms is not None else 1000.0 * (trace.size - onset) / sf
    savemat(path, {
        "triggers": _struct_array([dict(type=ttype, time=float(onset + 1),
                                        param=dict(description=descr, duration=duration_ms))],
                                  ["type", "time", "param"]),
        "response": dict(trace=trace[None, :] / 0.1, scale=0.1, sf=sf)})


def make_wehr(root, n_cells=5, as_zip=True, rng=None):
    """Miniature CRCNS ac-1 zip: wehr/Results/<session>/*.mat and wehr/Stimuli/fragments/*.mat."""
    rng = rng or np.random.default_rng(2)
    base = Path(root) / "build" / "wehr"
    sr_stim = 48000.0
    for k in range(3):
        d = base / "Stimuli" / "fragments"
        d.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(0.1 * sr_stim)) / sr_stim
        savemat(d / f"{k + 1}.mat", {"stimulus": dict(samples=np.sin(2 * np.pi * 1000 * (k + 1) * t),
                                                      param=dict(description=f"fragment {k + 1}", sf=sr_stim))})
    heard = {}
    for c in range(n_cells):
        session = base / "Results" / f"2003{c:04d}-mw-{c + 1:03d}"
        session.mkdir(parents=True)
        clips = [0, 1] if c % 2 == 0 else [1, 2]
        heard[c] = clips
        for k in clips:
            for rep in range(2 if c == 3 and k == 1 else 3):
                trace = -60 + rng.normal(size=600)           # 150 ms at 4 kHz
                _trial_mat(session / f"trial{k}{rep}.mat", f"fragment {k + 1}", 100, trace,
                           duration_ms=100.0)
        _trial_mat(session / "tone.mat", "tone 1 kHz", 0, rng.normal(size=400), ttype="tone")
    savemat(base / "Summary.mat", {"summary": 1.0})
    folder = Path(root) / "wehr"
    folder.mkdir(parents=True)
    if as_zip:
        with zipfile.ZipFile(folder / "crcns-ac1.zip", "w") as zf:
            for p in sorted(base.rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(base.parent))
    else:
        base.rename(folder / "crcns-ac1")
    return folder, heard


# ----------------------------------------------------------------------------- NS1
def test_ns1_miniature_release(tmp_path):
    folder, spikes = make_ns1(tmp_path)
    ds = load_ns1(tmp_path)
    assert ds.name == "ns1" and ds.n_stimuli == 20 and ds.n_bands == 34
    assert list(ds.neuron_ids) == ["dataAC/E1P00.R.SH.En.C/cluster.01.data",
                                   "dataAC/E1P01.R.SH.En.C/cluster.02.data",
                                   "dataAC/E1P04.R.SH.En.C/cluster.05.data"]
    T = 20                                       # 0.1 s clips at 5 ms
    assert ds.stimuli[0].shape == (34, T) and ds.responses[0].shape == (3, 3, T)
    assert ds.stimuli[0].min() >= 0
    # unit 1 heard clip 5 twice: third trial is NaN, the others are not
    assert np.isnan(ds.responses[5][1, 2]).all() and not np.isnan(ds.responses[5][0]).any()
    # exact counts: spikes in [0, 100) ms of unit 4, clip 7, repeat 2
    t = spikes[(4, 7)][2]
    expected = np.bincount(np.floor(t[(t >= 0) & (t < 100)] / 5).astype(int), minlength=T)
    np.testing.assert_array_equal(ds.responses[7][2, 2], expected)
    # splits: random 4 test + 2 val, different per seed; rahman fixed
    tr, va, te = ds.split_indices(0)
    assert (len(tr), len(va), len(te)) == (14, 2, 4)
    assert not np.array_equal(te, ds.split_indices(1)[2])
    # the other valid-unit rule and the Rahman split
    ds2 = load_ns1(tmp_path, valid_units="noise_ratio", split="rahman", cache=False)
    assert list(ds2.neurons["noise_ratio"]) == [20.0, 30.0, 35.0, 10.0]   # NoiseRatio < 40
    assert list(ds.neurons["site"]) == ["E1P00.R.SH.En.C", "E1P01.R.SH.En.C", "E1P04.R.SH.En.C"]
    both = load_ns1(tmp_path, valid_units="both", cache=False)
    assert list(both.neurons["single_t"]) == ["Yes", "Maybe"]
    assert list(ds2.split_indices(0)[2]) == [3, 6, 9, 19]
    assert list(ds2.split_indices(5)[2]) == [3, 6, 9, 19]
    # cache: second call reads the HDF5 file written by the first
    assert len(list(folder.glob("ns1_*.h5"))) == 1
    again = load_ns1(tmp_path)
    np.testing.assert_array_equal(again.responses[5], ds.responses[5])


def test_ns1_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MetadataSHEnCneurons.mat.*make data DATASET=ns1"):
        load_ns1(tmp_path)
    folder, _ = make_ns1(tmp_path)
    # a unit file without data.set(j).repeats
    unit = folder / "spikesandwav" / "dataAC/E1P00.R.SH.En.C/cluster.01.data.mat"
    savemat(unit, {"data": {"set": _struct_array([dict(other=1.0)] * 32, ["other"])}})
    with pytest.raises(ValueError, match=r"cluster.01.data.mat.*'repeats'"):
        read_ns1_unit(unit)
    with pytest.raises(ValueError, match="cluster.01.data.mat.*'repeats'"):
        load_ns1(tmp_path, cache=False)
    # truncated metadata
    meta = folder / "MetadataSHEnCneurons.mat"
    meta.write_bytes(meta.read_bytes()[:200])
    with pytest.raises(ValueError, match="MetadataSHEnCneurons.mat"):
        load_ns1(tmp_path, cache=False)
    # metadata missing a field
    savemat(meta, {"neuron": _struct_array([dict(path="x.mat", depth=1.0)], ["path", "depth"])})
    with pytest.raises(ValueError, match="'NoiseRatio'"):
        load_ns1(tmp_path, cache=False)
    with pytest.raises(ValueError, match="valid_units"):
        load_ns1(tmp_path, valid_units="good")


# ----------------------------------------------------------------------------- NAT4
def test_nat4_miniature_release(tmp_path):
    folder, info = make_nat4(tmp_path)
    ds = load_nat4(tmp_path, area="A1")
    cells, T = info["cells"], info["T"]
    assert ds.name == "nat4_a1" and ds.dt_ms == pytest.approx(10.0)
    assert list(ds.neuron_ids) == [cells[0], cells[2], cells[3]]          # sig_auditory only
    assert list(ds.neurons["site"]) == ["ARM029a", "ARM030b", "ARM030b"] and set(ds.neurons["animal"]) == {"ARM"}
    assert list(ds.stim_names) == info["names"]
    assert all(s.shape == (18, T) for s in ds.stimuli)
    # est stimuli: one trial from the population recording, NaN where the site was absent
    est0 = ds.responses[2]
    assert est0.shape == (3, 1, T)
    np.testing.assert_array_equal(est0[0, 0], info["resp"][0, 2 * T:3 * T])
    assert np.isnan(est0[1:]).all()
    # repeated stimuli: trial by trial from the sites (4 and 3 repeats -> NaN-padded to 4)
    rep = ds.responses[0]
    assert rep.shape == (3, 4, T)
    assert np.isnan(rep[1:, 3]).all() and not np.isnan(rep[1:, :3]).any()
    for n, c in enumerate(ds.neuron_ids):
        for r, bins in enumerate(info["truth"][(c, info["names"][0])]):
            np.testing.assert_array_equal(rep[n, r], np.bincount(bins.astype(int), minlength=T))
    # split: the repeated stimuli are the test set, for every seed
    assert list(ds.split_indices(0)[2]) == [0, 1] == list(ds.split_indices(3)[2])
    # NEMS norm.l1: per channel log(1 + 10 x) then min-max
    y = np.log1p(10 * info["stim"])
    y = (y - y.min(1, keepdims=True)) / (y.max(1, keepdims=True) - y.min(1, keepdims=True))
    np.testing.assert_allclose(ds.stimuli[0], y[:, :T], atol=1e-5)
    assert ds.meta["stim_norm"] == "nems"
    # without the single sites: averaged trace, fixed STIM_00 test set
    pop = load_nat4(tmp_path, area="A1", single_sites=False, auditory_only=False, cache=False)
    assert pop.n_neurons == 4 and pop.responses[0].shape == (4, 1, T)
    assert list(pop.split_indices(0)[2]) == [0, 1]


def test_nat4_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"A1_NAT4_ozgf.fs100.ch18.tgz.*nat4_a1"):
        load_nat4(tmp_path, area="A1")
    with pytest.raises(ValueError, match="area"):
        load_nat4(tmp_path, area="V1")
    folder, _ = make_nat4(tmp_path)
    csv = folder / "A1_pred_correlation.csv"
    pd.DataFrame({"cell": ["x"], "r": [1]}).to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"A1_pred_correlation.csv.*'cellid'"):
        load_nat4(tmp_path, cache=False)
    tgz = folder / "A1_NAT4_ozgf.fs100.ch18.tgz"
    tgz.write_bytes(tgz.read_bytes()[:300])
    with pytest.raises(ValueError, match="A1_NAT4_ozgf.fs100.ch18.tgz"):
        load_nat4(tmp_path, cache=False)


@pytest.mark.skipif(not ENO.is_dir(), reason="shared NEMS recording eno052d-a1 absent")
def test_nems_signal_files_real_recording():
    rec = read_nems_recording(ENO)
    assert sorted(rec) == ["pupil", "resp"]
    resp = rec["resp"]
    assert resp.fs == 10 and resp.chans == ["eno052d-a1"] and resp.data.shape == (1, 13439)
    assert np.nansum(resp.data) == 4948
    assert resp.meta["runclass"] == "VOC" and rec["pupil"].data.shape == (1, 13439)
    names = epoch_names(resp)
    assert names == ["STIM_ferretmixed41.wav", "STIM_ferretmixed42.wav"]
    x41, x42 = (extract_epoch(resp, n) for n in names)
    assert x41.shape == (120, 1, 55) and x42.shape == (120, 1, 55)   # 5.5 s trials at 10 Hz
    assert x41.sum() + x42.sum() == 4948                             # the epochs cover every spike
    with pytest.raises(ValueError, match="no epoch named 'STIM_x'"):
        extract_epoch(resp, "STIM_x")
    with pytest.raises(ValueError, match=r"expected signal\(s\) \['stim'\]"):
        read_nems_recording(ENO, signals=["resp", "stim"])


def test_normalise_stim_methods():
    x = np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 4.0]])
    y = normalise_stim(x, "nems")
    np.testing.assert_allclose(y[0], (np.log1p(10 * x[0]) - 0) / np.log1p(30), rtol=1e-6)
    assert y.min() == 0 and y.max() == 1
    g = normalise_stim(x, "log1p_global")
    assert g.min() == 0 and g.max() == pytest.approx(1)
    with pytest.raises(ValueError, match="stim_norm"):
        normalise_stim(x, "zscore")


# ----------------------------------------------------------------------------- Wehr
def test_wehr_miniature_release(tmp_path):
    folder, heard = make_wehr(tmp_path)
    ds = load_wehr(tmp_path)
    kept = [c for c in WEHR_VALID_CELLS if c < 5]                     # cells 0 and 3
    assert list(ds.neurons["cell_index"]) == kept
    assert list(ds.stim_names) == ["fragments/1", "fragments/2", "fragments/3"]
    T = 20                                                          # 0.1 s at 5 ms
    assert all(s.shape == (34, T) for s in ds.stimuli)
    for j in range(3):
        for n, c in enumerate(kept):
            r = ds.responses[j][n]
            if j in heard[c]:
                n_rep = 2 if (c == 3 and j == 1) else 3
                assert not np.isnan(r[:n_rep]).any() and np.isnan(r[n_rep:]).all()
            else:
                assert np.isnan(r).all()                            # cell did not hear clip j
    # the membrane potential is the 5 ms (20-sample) block mean of trace * scale in mV
    assert np.nanmean(ds.responses[0]) == pytest.approx(-60, abs=0.3)
    all_cells = load_wehr(tmp_path, valid_cells="all", cache=False)
    assert all_cells.n_neurons == 5


def test_wehr_missing_and_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"crcns-ac1.*crcns.org"):
        load_wehr(tmp_path)
    folder, _ = make_wehr(tmp_path, as_zip=False)
    trial = sorted((folder / "crcns-ac1" / "Results").glob("*/trial00.mat"))[0]
    savemat(trial, {"triggers": _struct_array([dict(type="naturalsound", time=1.0)], ["type", "time"]),
                    "response": dict(trace=np.zeros((1, 10)), scale=1.0, sf=4000.0)})
    with pytest.raises(ValueError, match=r"trial00.mat.*'param'"):
        load_wehr(tmp_path, cache=False)


# ----------------------------------------------------------------------------- folder
@pytest.mark.skipif(not STARLING.is_dir(), reason="shared Meliza starling recordings absent")
def test_folder_real_starling_recordings():
    ds = load_folder(STARLING)
    assert list(ds.neuron_ids) == ["st11_1_2_1", "st49_2_4_1"] and list(ds.stim_names) == ["A8"]
    spec, resp = ds.stimuli[0], ds.responses[0]
    T = spec.shape[1]
    wave, sr = load_wav(STARLING / "stimuli" / "A8.wav")
    assert sr == 20000 and T == int(np.floor((wave.size + 0.5) / 100))    # 100 samples per bin
    assert resp.shape == (2, 10, T)
    assert not np.isnan(resp[1]).any()                               # st49: 10 trials
    assert not np.isnan(resp[0, :5]).any() and np.isnan(resp[0, 5:]).all()   # st11: 5, padded
    assert ds.cf_hz[-1] == pytest.approx(9500.0)                     # 0.95 * 20 kHz / 2
    for n, unit in enumerate(ds.neuron_ids):
        trials = read_spike_file(STARLING / "spikes" / unit / "A8.txt")
        expected = sum(int(((t >= 0) & (t < T * 5.0)).sum()) for t in trials)
        assert np.nansum(resp[n]) == expected


def _make_folder(root, sr=16000):
    (root / "stimuli").mkdir(parents=True)
    _tone_wav(root / "stimuli" / "a.wav", 1000, sr=sr, dur_s=0.1)
    _tone_wav(root / "stimuli" / "b.wav", 2000, sr=sr, dur_s=0.05)
    for unit in ("u1", "u2"):
        (root / "spikes" / unit).mkdir(parents=True)
    (root / "spikes" / "u1" / "a.txt").write_text("-5, 1.0, 12.5\n\n99.9 100.0\n")
    np.save(root / "spikes" / "u2" / "a.npy", np.ones((2, 20)))
    (root / "spikes" / "u2" / "b.txt").write_text("0 4.99 5\n")


def test_folder_layout_txt_npy_and_missing(tmp_path):
    _make_folder(tmp_path)
    ds = load_folder(tmp_path, sr=16000)
    assert list(ds.stim_names) == ["a", "b"] and ds.stimuli[0].shape == (34, 20)
    a, b = ds.responses
    assert a.shape == (2, 3, 20) and b.shape == (2, 1, 10)
    np.testing.assert_array_equal(a[0, 0, :3], [1, 0, 1])     # -5 dropped; 1.0 -> bin 0; 12.5 -> bin 2
    assert np.nansum(a[0, 1]) == 0 and a[0, 2, 19] == 1        # empty trial; 99.9 in, 100.0 out
    np.testing.assert_array_equal(a[1, :2], 1.0)               # u2: 2 binned trials from .npy
    assert np.isnan(a[1, 2]).all()
    assert np.isnan(b[0]).all() and list(b[1, 0, :2]) == [2, 1]   # u1 never heard b


def test_folder_bad_inputs(tmp_path):
    _make_folder(tmp_path)
    with pytest.raises(ValueError, match=r"a.wav has sample rate 16000 Hz, expected sr=44100"):
        load_folder(tmp_path, sr=44100)
    np.save(tmp_path / "spikes" / "u2" / "a.npy", np.ones((2, 7)))
    with pytest.raises(ValueError, match=r"a.npy: expected an array \(R, T\) with T=20"):
        load_folder(tmp_path)
    (tmp_path / "spikes" / "u1" / "a.txt").write_text("1.0 abc\n")
    with pytest.raises(ValueError, match=r"a.txt, line 1"):
        load_folder(tmp_path)
    (tmp_path / "stimuli" / "a.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(ValueError, match="a.wav"):
        load_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="spikes"):
        (tmp_path / "x" / "stimuli").mkdir(parents=True)
        _tone_wav(tmp_path / "x" / "stimuli" / "a.wav", 1000)
        load_folder(tmp_path / "x")


# ----------------------------------------------------------------------------- downloads
class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    fail_after = None        # bytes sent before the connection drops (first request only)

    def do_GET(self):
        data, start = self.payload, 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if type(self).fail_after is not None:
            body, type(self).fail_after = body[:type(self).fail_after], None
            self.wfile.write(body)
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.bin"
    httpd.shutdown()


def test_download_resumes_and_verifies(tmp_path, server):
    data = np.random.default_rng(0).bytes(300_000)
    _RangeHandler.payload = data
    md5 = "md5:" + hashlib.md5(data).hexdigest()
    dest = tmp_path / "file.bin"
    _RangeHandler.fail_after = 100_000               # the first attempt is cut off
    with pytest.raises(OSError, match="stopped at 100000 of 300000 bytes"):
        dl.download_file(server, dest, size=len(data), checksum=md5, progress=False)
    part = tmp_path / "file.bin.part"
    assert not dest.exists() and 0 < part.stat().st_size < len(data)
    dl.download_file(server, dest, size=len(data), checksum=md5, progress=False)   # resumes
    assert dest.read_bytes() == data and not part.exists()
    # a wrong checksum deletes the partial file and raises, leaving no file in place
    other = tmp_path / "other.bin"
    with pytest.raises(ValueError, match="checksum"):
        dl.download_file(server, other, checksum="md5:" + "0" * 32, progress=False)
    assert not other.exists() and not (tmp_path / "other.bin.part").exists()


def test_fetch_extracts_atomically_and_cli(tmp_path, monkeypatch, server):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("spikesandwav/SH.En.C/readme.txt", "x")
    _RangeHandler.payload = buf.getvalue()
    files = [dl.RemoteFile("MetadataSHEnCneurons.mat", server, "osf", "k1"),
             dl.RemoteFile("spikesandwav.zip", server, "osf", "k2", extract_to="spikesandwav")]
    spec = dl.DatasetSpec("ns1", files, ["MetadataSHEnCneurons.mat", "spikesandwav"], "test")
    monkeypatch.setitem(dl.DATASETS, "ns1", spec)
    folder = dl.fetch("ns1", tmp_path, progress=False, metadata=lambda f: (None, None))
    assert (folder / "spikesandwav" / "SH.En.C" / "readme.txt").is_file()
    assert not (folder / "spikesandwav.zip").exists() and dl.missing_files("ns1", tmp_path) == []
    assert not list(folder.glob(".*extract"))
    # a corrupted archive raises and leaves no spikesandwav folder behind
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="bad.zip"):
        dl.extract_archive(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    # the command line of `make data`
    assert dl.main(["ns1", "--root", str(tmp_path), "--no-progress"]) == 0
    assert dl.main(["wehr", "--root", str(tmp_path)]) == 1        # manual: prints where to put it


def test_cache_file_depends_on_options(tmp_path):
    a = dl.cache_file("ns1", tmp_path, {"split": "random"})
    b = dl.cache_file("ns1", tmp_path, {"split": "rahman"})
    assert a != b and a.parent == tmp_path / "ns1" and a.suffix == ".h5"
    assert dl.cache_file("ns1", tmp_path, {"split": "random"}) == a
