"""ResponseDataset, collate_responses, HDF5 files and load_dataset: shapes, rules, errors."""
import os

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from deepstrf_utils.datasets import (
    DATASETS,
    ResponseDataset,
    available_datasets,
    collate_responses,
    load_dataset,
)
from deepstrf_utils.datasets import base, storage

LENGTHS = (10, 12, 8, 9, 11)
CF = [250.0, 500.0, 1000.0, 2000.0]


def make_parts(n_neurons=3, lengths=LENGTHS, n_bands=4, seed=0):
    rng = np.random.default_rng(seed)
    stimuli = [rng.random((n_bands, t)).astype(np.float32) for t in lengths]
    responses = [rng.poisson(1.0, (n_neurons, 4, t)).astype(np.float32) for t in lengths]
    if len(lengths) == 5:
        responses[1][:, 3] = np.nan  # stimulus 1: a missing trial -> 3 repeats
        responses[2] = responses[2][:, :2].copy()  # stimulus 2: 2 repeats
        responses[4][:, :, -2:] = np.nan  # padding bins
    return stimuli, responses


def make_ds(n_neurons=3, lengths=LENGTHS, **kw):
    stimuli, responses = make_parts(n_neurons, lengths)
    n = n_neurons
    gt = {
        "rate": [np.where(np.isnan(r), 0.0, r).mean(axis=1) for r in responses],
        "bf_hz": np.arange(n, dtype=np.float64) * 100.0,
        "strf": np.arange(n * 2 * 4 * 3, dtype=np.float32).reshape(n, 2, 4, 3),
        "noisy": np.arange(n) % 2 == 0,
        "kind": np.array([f"k{i}" for i in range(n)]),
        "shared": {"kernel_size": 7, "cf": np.array(CF)},
    }
    neurons = pd.DataFrame({"area": ["A1"] * (n - 1) + ["PEG"], "depth": np.linspace(100.0, 300.0, n),
                            "single": np.ones(n, dtype=bool)})
    args = dict(stimuli=stimuli, responses=responses, dt_ms=5.0, cf_hz=CF,
                neuron_ids=[f"n{i}" for i in range(n)], neurons=neurons,
                stim_names=[f"s{i}" for i in range(len(lengths))],
                stim_types=["natural"] * len(lengths), name="toy", ground_truth=gt,
                meta={"source": "test", "opts": {"a": 1, "b": [1.5, None, "x"], "flag": True}})
    args.update(kw)
    return ResponseDataset(**args)


def assert_tree_equal(a, b):
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            assert_tree_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_tree_equal(x, y)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert type(a) is type(b) and a == b


# ------------------------------------------------------------------ construction
def test_items_shapes_dtypes_and_properties():
    ds = make_ds()
    assert len(ds) == ds.n_stimuli == 5 and ds.n_neurons == 3 and ds.n_bands == 4
    for i, t in enumerate(LENGTHS):
        stim, resp = ds[i]
        assert stim.shape == (1, 4, t) and stim.dtype == torch.float32
        assert resp.shape[0] == 3 and resp.shape[2] == t and resp.dtype == torch.float32
    np.testing.assert_array_equal(ds.n_repeats, [4, 3, 2, 4, 4])
    assert ds.n_repeats_per_neuron.shape == (5, 3)
    assert ds.duration_s == pytest.approx(sum(LENGTHS) * 5.0 / 1000.0)
    assert list(ds.neurons.columns) == ["id", "area", "depth", "single"]
    assert ds.neurons["id"].tolist() == ["n0", "n1", "n2"]
    with pytest.raises(IndexError):
        ds[5]
    means = ds.mean_responses()
    assert means[4].shape == (3, 11) and np.isnan(means[4][:, -2:]).all()
    np.testing.assert_allclose(means[1], np.nanmean(ds.responses[1], axis=1))


def test_summary_one_row():
    s = make_ds().summary()
    assert len(s) == 1
    row = s.iloc[0]
    assert (row["dataset"], row["neurons"], row["stimuli"], row["repeats"], row["bands"]) == ("toy", 3, 5, "2-4", 4)
    assert row["dt_ms"] == 5.0 and row["duration_s"] == pytest.approx(0.25)


def _bad(kind):
    stimuli, responses = make_parts()
    kw = dict(stimuli=stimuli, responses=responses, dt_ms=5.0, cf_hz=CF)
    if kind == "F vs cf_hz":
        kw["cf_hz"] = CF[:3]
    elif kind == "N":
        responses[2] = responses[2][:2]
    elif kind == "T":
        responses[1] = responses[1][..., :-1]
    elif kind == "dt":
        kw["dt_ms"] = 0.0
    elif kind == "cf order":
        kw["cf_hz"] = CF[::-1]
    elif kind == "stim ndim":
        stimuli[0] = stimuli[0][None]
    elif kind == "resp ndim":
        responses[0] = responses[0][:, 0]
    elif kind == "count":
        responses.pop()
    elif kind == "empty":
        kw["stimuli"], kw["responses"] = [], []
    elif kind == "nan stim":
        stimuli[3][0, 0] = np.nan
    elif kind == "ids":
        kw["neuron_ids"] = ["a", "a", "b"]
    elif kind == "table":
        kw["neurons"] = pd.DataFrame({"area": ["A1"] * 2})
    elif kind == "names":
        kw["stim_names"] = ["x"]
    elif kind == "gt rate":
        kw["ground_truth"] = {"rate": [np.zeros((3, 5))] * 5}
    elif kind == "split key":
        kw["split_spec"] = {"test": "random", "tset_fraction": 0.2}
    elif kind == "split index":
        kw["split_spec"] = {"test": [0, 7]}
    elif kind == "array input":
        kw["stimuli"] = np.stack([s[:, :8] for s in stimuli])
    return kw


@pytest.mark.parametrize("kind, match", [
    ("F vs cf_hz", r"\(F, T\) with F=3"),
    ("N", r"N=3"),
    ("T", r"T=12"),
    ("dt", r"dt_ms > 0"),
    ("cf order", r"increasing"),
    ("stim ndim", r"shape \(F, T\)"),
    ("resp ndim", r"shape \(N, R, T\)"),
    ("count", r"one response per stimulus"),
    ("empty", r"at least one stimulus"),
    ("nan stim", r"finite"),
    ("ids", r"unique neuron_ids"),
    ("table", r"N=3 rows"),
    ("names", r"stim_names of length B=5"),
    ("gt rate", r"ground_truth\['rate'\]\[0\]"),
    ("split key", r"tset_fraction"),
    ("split index", r"\[0, 5\)"),
    ("array input", r"list of \(F, T_i\)"),
])
def test_constructor_validation(kind, match):
    with pytest.raises(ValueError, match=match):
        ResponseDataset(**_bad(kind))


# ------------------------------------------------------------------ collate
def test_collate_pads_and_masks():
    ds = make_ds()
    batch = [ds[0], ds[1], ds[2]]  # T = 10, 12, 8; R = 4, 4, 2
    stim, resp, mask = collate_responses(batch)
    assert stim.shape == (3, 1, 4, 12) and resp.shape == (3, 3, 4, 12) and mask.shape == (3, 12)
    assert mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [10, 12, 8]
    assert torch.equal(stim[0, :, :, :10], batch[0][0]) and (stim[0, :, :, 10:] == 0).all()
    assert (stim[2, :, :, 8:] == 0).all()
    assert torch.equal(resp[2, :, :2, :8], batch[2][1])
    assert torch.isnan(resp[2, :, 2:]).all() and torch.isnan(resp[2, :, :, 8:]).all()
    assert torch.isnan(resp[0, :, :, 10:]).all()
    # numpy items and a DataLoader work the same way
    loader = torch.utils.data.DataLoader(ds, batch_size=5, collate_fn=collate_responses)
    s2, r2, m2 = next(iter(loader))
    assert s2.shape == (5, 1, 4, 12) and r2.shape == (5, 3, 4, 12) and m2.sum().item() == sum(LENGTHS)


def test_collate_bad_inputs():
    ds = make_ds()
    with pytest.raises(ValueError, match="non-empty"):
        collate_responses([])
    other = make_ds(n_neurons=2)
    with pytest.raises(ValueError, match="N=3"):
        collate_responses([ds[0], other[0]])
    with pytest.raises(ValueError, match=r"\(1, F, T\)"):
        collate_responses([(ds[0][0][0], ds[0][1])])
    with pytest.raises(ValueError, match="F=4"):
        collate_responses([ds[0], (torch.zeros(1, 5, 10), torch.zeros(3, 1, 10))])


# ------------------------------------------------------------------ splits
def test_random_split_is_a_deterministic_partition():
    ds = make_ds(lengths=(6,) * 20, split_spec={"test": "random", "test_fraction": 0.2, "val_fraction": 0.1})
    splits = {seed: ds.split_indices(seed) for seed in range(4)}
    for train, val, test in splits.values():
        assert (len(train), len(val), len(test)) == (14, 2, 4)
        assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(20))
    for a, b in zip(ds.split_indices(1), splits[1]):
        np.testing.assert_array_equal(a, b)
    assert len({tuple(s[2]) for s in splits.values()}) > 1  # test sets differ across seeds
    tr, va, te = ds.split(3)
    assert te.stim_names == [ds.stim_names[i] for i in splits[3][2]]
    assert tr.n_stimuli + va.n_stimuli + te.n_stimuli == 20
    assert "4 of 20" in ds.split_rule and "2 stimuli" in ds.split_rule


def test_fixed_and_repeated_split_rules():
    ds = make_ds(lengths=(6,) * 10, split_spec={"test": [3, 6, 9], "n_val": 2})
    vals = set()
    for seed in range(5):
        train, val, test = ds.split_indices(seed)
        assert test.tolist() == [3, 6, 9] and len(val) == 2 and not set(val) & {3, 6, 9}
        vals.add(tuple(val))
    assert len(vals) > 1
    assert "[3, 6, 9]" in ds.split_rule
    # 'repeated': stimuli with more than one repeat form the test set
    stimuli, _ = make_parts(lengths=(6,) * 6)
    responses = [np.ones((2, 1 if i < 4 else 5, 6), dtype=np.float32) for i in range(6)]
    rep = ResponseDataset(stimuli, responses, 10.0, CF, split_spec={"test": "repeated", "n_val": 1})
    train, val, test = rep.split_indices(0)
    assert test.tolist() == [4, 5] and len(val) == 1 and len(train) == 3
    assert "presented more than once" in rep.split_rule
    single = ResponseDataset(stimuli, [np.ones((2, 1, 6))] * 6, 10.0, CF, split_spec={"test": "repeated"})
    with pytest.raises(ValueError, match="more than one repeat"):
        single.split(0)
    with pytest.raises(ValueError, match="cannot split"):
        make_ds(lengths=(6, 6), split_spec={"test": "random", "n_test": 1, "n_val": 1}).split(0)


def test_subset_keeps_ground_truth_and_remaps_fixed_test():
    ds = make_ds(split_spec={"test": [1, 4]})
    sub = ds.subset([4, 0, 3])
    assert sub.stim_names == ["s4", "s0", "s3"]
    np.testing.assert_array_equal(sub.responses[0], ds.responses[4])
    np.testing.assert_array_equal(sub.ground_truth["rate"][0], ds.ground_truth["rate"][4])
    assert sub.split_spec["test"] == [0]
    assert sub.meta["stimulus_indices"] == [4, 0, 3]
    assert sub.subset([2]).meta["stimulus_indices"] == [3]
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        ds.subset([5])


# ------------------------------------------------------------------ select
@pytest.mark.parametrize("choice", [["n2", "n0"], [2, 0], np.array([2, 0])])
def test_select_keeps_everything_aligned(choice):
    ds = make_ds()
    sel = ds.select(choice)
    assert sel.neuron_ids.tolist() == ["n2", "n0"]
    assert sel.neurons["id"].tolist() == ["n2", "n0"] and sel.neurons["area"].tolist() == ["PEG", "A1"]
    for i in range(ds.n_stimuli):
        np.testing.assert_array_equal(sel.responses[i], ds.responses[i][[2, 0]])
        np.testing.assert_array_equal(sel.ground_truth["rate"][i], ds.ground_truth["rate"][i][[2, 0]])
    np.testing.assert_array_equal(sel.ground_truth["bf_hz"], [200.0, 0.0])
    np.testing.assert_array_equal(sel.ground_truth["strf"], ds.ground_truth["strf"][[2, 0]])
    assert sel.ground_truth["kind"].tolist() == ["k2", "k0"]
    np.testing.assert_array_equal(sel.ground_truth["shared"]["cf"], CF)  # shared: never sliced
    assert ds.n_neurons == 3  # the original is untouched


def test_select_mask_and_errors():
    ds = make_ds()
    assert ds.select(np.array([False, True, True])).neuron_ids.tolist() == ["n1", "n2"]
    assert ds.select("n1").n_neurons == 1
    with pytest.raises(ValueError, match="unknown neuron ids"):
        ds.select(["n9"])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ds.select([3])
    with pytest.raises(ValueError, match=r"mask of shape \(N,\)"):
        ds.select(np.array([True, False]))


# ------------------------------------------------------------------ HDF5
def test_hdf5_round_trip_is_exact(tmp_path):
    ds = make_ds(split_spec={"test": [1, 4], "n_val": 1, "description": "toy rule"})
    path = ds.to_hdf5(tmp_path / "sub" / "toy.h5")
    assert path.is_file() and os.listdir(tmp_path / "sub") == ["toy.h5"]
    back = ResponseDataset.from_hdf5(path)
    assert (back.name, back.dt_ms, back.stim_names, back.stim_types) == (ds.name, ds.dt_ms, ds.stim_names, ds.stim_types)
    np.testing.assert_array_equal(back.cf_hz, ds.cf_hz)
    np.testing.assert_array_equal(back.neuron_ids, ds.neuron_ids)
    for a, b in zip(ds.stimuli + ds.responses, back.stimuli + back.responses):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)  # NaN positions included
    pd.testing.assert_frame_equal(back.neurons, ds.neurons)
    assert_tree_equal(ds.ground_truth, back.ground_truth)
    assert_tree_equal(ds.meta, back.meta)
    assert back.split_spec == ds.split_spec and back.split_rule == ds.split_rule
    for a, b in zip(ds.split_indices(2), back.split_indices(2)):
        np.testing.assert_array_equal(a, b)


def test_hdf5_without_ground_truth(tmp_path):
    stimuli, responses = make_parts()
    ds = ResponseDataset(stimuli, responses, 10.0, CF)
    back = ResponseDataset.from_hdf5(ds.to_hdf5(tmp_path / "plain.h5"))
    assert back.ground_truth is None and back.meta == {} and back.neuron_ids.tolist() == ["0", "1", "2"]


def test_hdf5_schema_mismatch_and_missing(tmp_path):
    path = make_ds().to_hdf5(tmp_path / "toy.h5")
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = base.SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="schema_version"):
        ResponseDataset.from_hdf5(path)
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        ResponseDataset.from_hdf5(tmp_path / "nothere.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="could not open"):
        ResponseDataset.from_hdf5(tmp_path / "junk.h5")


def test_interrupted_write_leaves_no_loadable_file(tmp_path, monkeypatch):
    ds = make_ds()
    good = ds.to_hdf5(tmp_path / "toy.h5")
    before = good.read_bytes()

    def broken_writer(f, dataset):
        f.attrs["schema_version"] = base.SCHEMA_VERSION
        f.create_dataset("cf_hz", data=dataset.cf_hz)
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(storage, "_write_dataset", broken_writer)
    with pytest.raises(KeyboardInterrupt):
        ds.to_hdf5(tmp_path / "new.h5")
    with pytest.raises(KeyboardInterrupt):
        ds.to_hdf5(good)  # overwriting: the old file survives intact
    assert sorted(os.listdir(tmp_path)) == ["toy.h5"]
    assert good.read_bytes() == before
    # a file killed before its 'complete' mark (e.g. a leftover temp file) is refused
    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as f:
        f.attrs["schema_version"] = base.SCHEMA_VERSION
    with pytest.raises(ValueError, match="incomplete"):
        ResponseDataset.from_hdf5(partial)


def test_unsupported_meta_value_is_an_error(tmp_path):
    ds = make_ds(meta={"table": pd.DataFrame({"a": [1]})})
    with pytest.raises(ValueError, match="DataFrame"):
        ds.to_hdf5(tmp_path / "x.h5")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ load_dataset
def test_load_dataset_names(tmp_path):
    assert set(DATASETS) == {"synthetic", "ns1", "nat4_a1", "nat4_peg", "wehr", "folder", "torc", "nwb"}
    with pytest.raises(ValueError, match="synthetic, ns1, nat4_a1, nat4_peg, wehr, folder, torc, nwb"):
        load_dataset("ns2", root=tmp_path)
    assert available_datasets(tmp_path)[0] == "synthetic"
    assert available_datasets(tmp_path) == ["synthetic"]  # nothing downloaded in an empty root


def test_load_dataset_dispatch(tmp_path, monkeypatch):
    from deepstrf_utils.datasets import folder, nat4, ns1

    monkeypatch.setattr(nat4, "load_nat4", lambda **kw: kw)
    monkeypatch.setattr(ns1, "load_ns1", lambda **kw: kw)
    monkeypatch.setattr(folder, "load_folder", lambda path, **kw: (path, kw))
    assert load_dataset("nat4_peg", root=tmp_path, download=True) == {"root": tmp_path, "download": True,
                                                                       "area": "PEG"}
    assert load_dataset("NAT4_A1", root=tmp_path)["area"] == "A1"
    assert load_dataset("ns1", root=tmp_path, valid_units="all")["valid_units"] == "all"
    assert load_dataset("folder", root=tmp_path, dt_ms=10.0) == (tmp_path / "folder", {"dt_ms": 10.0})
    assert load_dataset("folder", path="mine")[0] == "mine"
    with pytest.raises(ValueError, match="fixes"):
        load_dataset("nat4_a1", root=tmp_path, area="PEG")
    monkeypatch.setattr(ns1, "is_available", lambda root, **kw: True)
    assert available_datasets(tmp_path) == ["synthetic", "ns1"]
