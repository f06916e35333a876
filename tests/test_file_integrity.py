"""Damaged, edited and foreign files never give a silent wrong result: HDF5 caches, model
checkpoints and results tables either load exactly what was written or raise a ValueError
naming the file and what was expected; every write honours the umask and cleans the
temporary files of interrupted writes."""
import logging
import os
import shutil
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from deepstrf_utils.runs import jobs as J
from deepstrf_utils.runs import runner
from deepstrf_utils.datasets import ResponseDataset
from deepstrf_utils.datasets import download as dl
from deepstrf_utils.datasets.synthetic import cache_path, generate_synthetic, load_synthetic
from deepstrf_utils.models import LinearNonlinear
from deepstrf_utils.training import load_checkpoint, save_checkpoint

TINY = dict(n_neurons=3, n_clips=3, clip_s=0.25, n_repeats=2, n_bands=6)
FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_v1_ln_adaptrans.pt"


@pytest.fixture(scope="module")
def tiny():
    return generate_synthetic(**TINY)


def _equal(a, b) -> bool:
    """Deep equality of nested dicts / lists / arrays / scalars (NaN equals NaN)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, np.generic, float)) and not isinstance(a, str):
        a_, b_ = np.asarray(a), np.asarray(b)
        if a_.dtype.kind in "OUS" or b_.dtype.kind in "OUS":
            return a_.shape == b_.shape and [str(x) for x in a_.ravel()] == [str(x) for x in b_.ravel()]
        return a_.shape == b_.shape and np.array_equal(a_, b_, equal_nan=True)
    return a == b


def _same_dataset(a, b) -> bool:
    return (_equal(a.stimuli, b.stimuli) and _equal(a.responses, b.responses) and _equal(a.cf_hz, b.cf_hz)
            and list(a.neuron_ids) == list(b.neuron_ids) and list(a.stim_names) == list(b.stim_names)
            and list(a.stim_types) == list(b.stim_types) and a.name == b.name and a.dt_ms == b.dt_ms
            and a.split_spec == b.split_spec and a.neurons.equals(b.neurons)
            and _equal(a.ground_truth, b.ground_truth) and _equal(a.meta, b.meta))


# ----------------------------------------------------------------------------- HDF5 caches
def test_cache_byte_flips_never_load_changed_values(tmp_path, tiny):
    path = tmp_path / "ds.h5"
    tiny.to_hdf5(path)
    clean = path.read_bytes()
    targeted = {}
    with h5py.File(path, "r") as f:        # the uncompressed arrays: band centres, ground truth, table, meta
        def visit(name, node):
            if isinstance(node, h5py.Dataset) and node.id.get_offset() is not None and node.dtype.kind == "f":
                targeted[name] = node.id.get_offset()
        f.visititems(visit)
    assert "cf_hz" in targeted
    assert any(n.startswith("ground_truth") for n in targeted) and any(n.startswith("meta") for n in targeted)
    positions = sorted(set(targeted.values()) | set(np.linspace(0, len(clean) - 1, 60).astype(int).tolist()))
    silent = []
    for pos in positions:
        damaged = bytearray(clean)
        damaged[pos] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            loaded = ResponseDataset.from_hdf5(path)
        except ValueError as err:
            for name, offset in targeted.items():
                if offset == pos:
                    assert f"/{name}" in str(err) and str(path) in str(err)
            continue
        if not _same_dataset(loaded, tiny):
            silent.append(pos)
    assert not silent, f"byte flips at {silent} loaded changed values without an error"


def test_cache_written_for_other_options_is_rebuilt(tmp_path, caplog):
    three = load_synthetic(root=tmp_path, seed=1, **TINY)
    assert three.n_neurons == 3
    five_path = cache_path(tmp_path, seed=1, **{**TINY, "n_neurons": 5})
    shutil.copy(cache_path(tmp_path, seed=1, **TINY), five_path)      # a foreign cache at this path
    with caplog.at_level(logging.WARNING):
        five = load_synthetic(root=tmp_path, seed=1, **{**TINY, "n_neurons": 5})
    assert five.n_neurons == 5
    assert "n_neurons=3" in caplog.text and str(five_path) in caplog.text
    assert ResponseDataset.from_hdf5(five_path).n_neurons == 5          # rebuilt in place
    # the preprocessed caches of the real datasets: the same check
    built = []

    def build(n):
        return lambda: built.append(n) or generate_synthetic(**{**TINY, "n_neurons": n})

    dl.cached_dataset("ns1", tmp_path, {"valid_units": "single"}, build(2))
    shutil.copy(dl.cache_file("ns1", tmp_path, {"valid_units": "single"}),
                dl.cache_file("ns1", tmp_path, {"valid_units": "noise_ratio"}))
    ds = dl.cached_dataset("ns1", tmp_path, {"valid_units": "noise_ratio"}, build(4))
    assert ds.n_neurons == 4 and built == [2, 4]
    with pytest.raises(ValueError, match=r"options\.valid_units='single' \(asked: 'noise_ratio'\)"):
        ResponseDataset.from_hdf5(dl.cache_file("ns1", tmp_path, {"valid_units": "single"}),
                                  options=dl.cache_key("ns1", {"valid_units": "noise_ratio"}))


def _as_version_2(path):
    """Turn a file into what the writer of schema version 2 produced (no digests, no options)."""
    with h5py.File(path, "r+") as f:
        del f["_checksums"]
        for key in ("digest", "options"):
            if key in f.attrs:
                del f.attrs[key]
        f.attrs["schema_version"] = 2


def test_old_caches_are_rebuilt_and_old_files_still_load(tmp_path, tiny, caplog):
    load_synthetic(root=tmp_path, **TINY)
    cache = cache_path(tmp_path, **TINY)
    _as_version_2(cache)
    before = cache.stat().st_mtime_ns
    with caplog.at_level(logging.WARNING):
        ds = load_synthetic(root=tmp_path, **TINY)
    assert "schema_version 2" in caplog.text and cache.stat().st_mtime_ns != before   # rebuilt
    with h5py.File(cache, "r") as f:
        assert int(f.attrs["schema_version"]) == 3 and "_checksums" in f
    # a dataset file a user wrote with the previous version still loads, with a warning
    path = tmp_path / "mine.h5"
    tiny.to_hdf5(path)
    _as_version_2(path)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _same_dataset(ResponseDataset.from_hdf5(path), tiny)
    assert "cannot be verified" in caplog.text
    assert ds.n_neurons == 3


def test_hdf5_with_a_deleted_response_names_it(tmp_path, tiny):
    path = tmp_path / "ds.h5"
    tiny.to_hdf5(path)
    with h5py.File(path, "r+") as f:
        del f["responses/000001"]
    with pytest.raises(ValueError, match=r"ds\.h5.*missing: /responses/000001"):
        ResponseDataset.from_hdf5(path)
    _as_version_2(path)          # no digests to compare: the reader names the node it expected
    with pytest.raises(ValueError, match=r"ds\.h5: expected the HDF5 node /responses/000001"):
        ResponseDataset.from_hdf5(path)


def test_interrupted_write_temp_files_are_cleaned(tmp_path, tiny):
    target, csv = tmp_path / "ds.h5", tmp_path / "results.csv"
    stale = tmp_path / ".ds.h5.k2x_9abc.tmp"         # names of the writers' temporary files
    fresh = tmp_path / ".ds.h5.f00d.tmp"              # another write of the same file, in progress
    other = tmp_path / ".other.h5.k2x_9abc.tmp"       # another target's
    old_csv = tmp_path / ".results.csv.a1b2c3.tmp"
    for p in (stale, fresh, other, old_csv):
        p.write_bytes(b"half a file")
    hour_ago = time.time() - 3600
    for p in (stale, other, old_csv):
        os.utime(p, (hour_ago, hour_ago))
    tiny.to_hdf5(target)
    assert not stale.exists() and fresh.exists() and other.exists() and old_csv.exists()
    J.write_table(pd.DataFrame({"a": [1]}), csv)
    assert not old_csv.exists() and csv.exists() and other.exists()


def test_written_files_follow_the_umask(tmp_path, tiny):
    model = LinearNonlinear(n_bands=4, n_neurons=1, n_lags=3)
    previous = os.umask(0o022)
    try:
        for umask in (0o022, 0o077, 0o002):
            os.umask(umask)
            folder = tmp_path / f"u{umask:o}"
            paths = [tiny.to_hdf5(folder / "ds.h5"), folder / "model.pt", folder / "results.csv"]
            save_checkpoint(paths[1], model)
            J.write_table(pd.DataFrame({"a": [1]}), paths[2])
            with zipfile.ZipFile(folder / "two.zip", "w") as zf:     # two top-level files: the folder is built
                zf.writestr("a.txt", "a")
                zf.writestr("b.txt", "b")
            extracted = dl.extract_archive(folder / "two.zip", folder / "two")
            assert extracted.stat().st_mode & 0o777 == 0o777 & ~umask
            for p in paths + [extracted / "a.txt"]:
                assert p.stat().st_mode & 0o777 == 0o666 & ~umask, (p.name, oct(p.stat().st_mode))
    finally:
        os.umask(previous)


# ----------------------------------------------------------------------------- checkpoints
def _model():
    torch.manual_seed(0)
    return LinearNonlinear(n_bands=4, n_neurons=2, n_lags=3, prefilter="adaptrans")


def _edit(path, change):
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)


def test_checkpoint_flipped_weight_bytes_are_refused(tmp_path):
    model, path = _model(), tmp_path / "m.pt"
    save_checkpoint(path, model)
    raw = path.read_bytes()
    weight = model.state_dict()["weight"].numpy().tobytes()
    at = raw.find(weight)
    assert at > 0
    damaged = bytearray(raw)
    damaged[at + 7] ^= 0x40         # one byte of a float32: that weight becomes huge
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"m\.pt.*digests.*these differ: weights weight"):
        load_checkpoint(path)
    # flips anywhere: a clear error or exactly the saved model, never a raw torch error
    for pos in np.linspace(0, len(raw) - 1, 60).astype(int):
        damaged = bytearray(raw)
        damaged[pos] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            loaded, _ = load_checkpoint(path)
        except ValueError as err:
            assert "m.pt" in str(err)
            continue
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
        assert loaded.config == model.config


def test_checkpoint_nan_weights_are_refused(tmp_path):
    model, path = _model(), tmp_path / "m.pt"
    with torch.no_grad():
        model.weight[0, 0, 0, 0] = float("nan")
    save_checkpoint(path, model)
    with pytest.raises(ValueError, match=r"m\.pt.*expected finite weights, found NaN or inf in weight.*allow_nonfinite"):
        load_checkpoint(path)
    loaded, _ = load_checkpoint(path, allow_nonfinite=True)
    assert torch.isnan(loaded.weight[0, 0, 0, 0])


@pytest.mark.parametrize("key, value", [("kernel_size", 40), ("rectify", None), ("dt_ms", 10.0)])
def test_checkpoint_edited_config_is_refused(tmp_path, key, value):
    model, path = _model(), tmp_path / "m.pt"
    save_checkpoint(path, model)

    def change(payload):
        (payload["config"] if key == "dt_ms" else payload["config"]["prefilter_kwargs"])[key] = value
    _edit(path, change)
    with pytest.raises(ValueError, match=r"m\.pt.*these differ: the model class and config"):
        load_checkpoint(path)


def test_checkpoint_of_the_previous_format_loads_and_missing_keys_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        model, info = load_checkpoint(FIXTURE)
    x = torch.linspace(0, 1, 4 * 12).reshape(1, 1, 4, 12)
    with torch.no_grad():
        # the same model as when it was saved (float rounding may differ with the thread count)
        torch.testing.assert_close(model(x), info["expected_output"], rtol=1e-6, atol=1e-7)
    assert "has no digests" in caplog.text
    # an old file whose config lacks a key: today's default is used, and said
    path = tmp_path / "old.pt"
    shutil.copy(FIXTURE, path)
    _edit(path, lambda p: p["config"]["prefilter_kwargs"].pop("rectify"))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_checkpoint(path)
    assert "lacks prefilter_kwargs.rectify" in caplog.text and "rectify='relu'" in caplog.text


def test_checkpoint_versions_are_compared(tmp_path, caplog):
    path = tmp_path / "m.pt"
    save_checkpoint(path, _model())
    _edit(path, lambda p: p.update(torch_version="1.13.1", library_version="0.0.9"))
    with caplog.at_level(logging.WARNING):
        load_checkpoint(path)
    assert "saved by deepstrf_utils 0.0.9 with torch 1.13.1" in caplog.text


def test_checkpoint_class_and_weights_mismatch_and_truncation(tmp_path):
    path = tmp_path / "old.pt"
    shutil.copy(FIXTURE, path)
    _edit(path, lambda p: p.update(model_class="DNet"))              # a class that does not take the config
    with pytest.raises(ValueError, match=r"old\.pt.*could not rebuild a DNet from the stored config"):
        load_checkpoint(path)
    shutil.copy(FIXTURE, path)

    def shrink(p):                                                   # weights of another model size
        p["state_dict"]["weight"] = p["state_dict"]["weight"][:1]
    _edit(path, shrink)
    with pytest.raises(ValueError, match=r"(?s)old\.pt.*expected weights that fit a LinearNonlinear.*size mismatch for weight"):
        load_checkpoint(path)
    full = FIXTURE.read_bytes()
    for size in (0, 10, len(full) // 2, len(full) - 20):
        path.write_bytes(full[:size])
        with pytest.raises(ValueError, match=r"could not read .*old\.pt.* as a deepstrf_utils checkpoint"):
            load_checkpoint(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"old\.pt"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- results tables
def _rows(cid, seed, neurons, value):
    return pd.DataFrame([{c: 0 for c in runner.RESULT_COLUMNS} | {"config_id": cid, "seed": seed, "neuron": n,
                                                                  "cc_raw": value, "note": "", "prefilter": "none"}
                         for n in neurons])[runner.RESULT_COLUMNS]


def _plan(tmp_path):
    cfg = runner.normalise_config({"dataset": "synthetic", "model": "Linear"})
    cid = runner.config_id(cfg)
    out = tmp_path / "results.csv"
    plan = J.make_jobs(cfg, cid, [0], ["a", "b", "c", "d"], population=False, chunk_size=2)
    return cid, out, J.jobs_dir(out), plan


def test_truncated_results_are_never_merged(tmp_path, caplog):
    cid, out, folder, plan = _plan(tmp_path)
    J.write_result(plan[0], _rows(cid, 0, ["a", "b"], 0.123456), folder)
    J.write_result(plan[1], _rows(cid, 0, ["c", "d"], 0.654321), folder)
    merged = J.merge_results(out, folder, runner.RESULT_COLUMNS, order=plan)
    assert len(merged) == 4
    text = out.read_text()
    cut = text.rindex("0.654321") + 4                                 # inside the last row's number
    out.write_text(text[:cut])
    with pytest.raises(ValueError, match=r"results\.csv: expected a CSV table ending with a newline"):
        J.read_table(out, runner.RESULT_COLUMNS)
    with caplog.at_level(logging.WARNING):
        merged = J.merge_results(out, folder, runner.RESULT_COLUMNS, order=plan)
    assert len(merged) == 4 and list(merged["cc_raw"]) == [0.123456] * 2 + [0.654321] * 2
    assert "results.csv is damaged" in caplog.text and list(tmp_path.glob("results.csv.damaged-*"))
    # a job file cut inside a row: moved aside, not merged, its job runs again
    job_file = plan[1].result_path(folder)
    text = job_file.read_text()
    job_file.write_text(text[:text.rindex("0.654321") + 3])
    out.unlink()
    assert J.job_status(plan, folder, columns=runner.RESULT_COLUMNS) == ["done", "missing"]
    assert list(J.merge_results(out, folder, runner.RESULT_COLUMNS, order=plan)["neuron"]) == ["a", "b"]
    # ... and one cut exactly at a row's end: a neuron short of its job
    J.write_result(plan[1], _rows(cid, 0, ["c", "d"], 0.654321), folder)
    lines = job_file.read_text().splitlines(keepends=True)
    job_file.write_text("".join(lines[:-1]))
    out.unlink()
    assert list(J.merge_results(out, folder, runner.RESULT_COLUMNS, order=plan)["neuron"]) == ["a", "b"]
    assert len(list(job_file.parent.glob("*.damaged-*"))) == 2


def test_binary_garbage_results_are_refused(tmp_path, caplog):
    cid, out, folder, plan = _plan(tmp_path)
    J.write_result(plan[0], _rows(cid, 0, ["a", "b"], 0.5), folder)
    out.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"results\.csv: expected a CSV table \(UTF-8 text\)"):
        J.read_table(out, runner.RESULT_COLUMNS)
    with caplog.at_level(logging.WARNING):
        merged = J.merge_results(out, folder, runner.RESULT_COLUMNS, order=plan)
    assert list(merged["neuron"]) == ["a", "b"] and "results.csv is damaged" in caplog.text
    out.write_text("config_id,seed,neuron\nabc,0,a,1.5,extra\n")        # a row wider than its header
    with pytest.raises(ValueError, match=r"results\.csv, row 2: expected 3 fields"):
        J.read_table(out)
