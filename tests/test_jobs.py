"""Tests of the job machinery of the runner: the plan (configuration x seed x chunk of
neurons), per-job result files, the merge, failures recorded and retried, and the
executors (in-process, submitit's local executor, the Slurm parameters)."""
import pandas as pd
import pytest

from deepstrf_utils.runs import runner
from deepstrf_utils import training

SYN = dict(n_neurons=4, n_clips=6, clip_s=1.0, n_bands=16, n_repeats=6)
FAST = {"max_epochs": 2, "batch_size": 4}


def _config(model="Linear", **kw):
    return {"dataset": "synthetic", "dataset_options": SYN, "model": model, "model_kwargs": {"n_lags": 6},
            "fit_kwargs": dict(FAST), "note": "jobs", **kw}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_failing_configuration_is_recorded_and_retried(tmp_path, data_root, monkeypatch):
    """Issue 10, item 8: one failing configuration must not abort run_configs."""
    real = training.fit_single_units
    calls = []

    def flaky(model_fn, *args, **kwargs):
        name = type(model_fn(0)).__name__
        calls.append(name)
        if name == "LinearNonlinear":
            raise FloatingPointError("loss is nan at epoch 1 (neuron n0)")
        return real(model_fn, *args, **kwargs)

    monkeypatch.setattr(training, "fit_single_units", flaky)
    good, bad = _config("Linear"), _config("LinearNonlinear")
    out = tmp_path / "results.csv"
    df = runner.run_configs([bad, good], seeds=[0], out_csv=out, root=data_root, device="cpu", progress=False)
    assert set(df["model"]) == {"Linear"} and len(df) == SYN["n_neurons"]
    failed = runner.failed_jobs(out)
    assert len(failed) == 1
    row = failed.iloc[0]
    assert row["config_id"] == runner.config_id(bad) and row["seed"] == 0 and row["model"] == "LinearNonlinear"
    assert "FloatingPointError: loss is nan at epoch 1" in row["error"]
    assert "Traceback" in open(row["log"]).read()
    # the rerun retries the failed configuration only; once it succeeds, no failure is left
    monkeypatch.setattr(training, "fit_single_units", lambda *a, **k: (calls.append("retry"), real(*a, **k))[1])
    df2 = runner.run_configs([bad, good], seeds=[0], out_csv=out, root=data_root, device="cpu", progress=False)
    assert calls.count("retry") == 1
    assert len(df2) == 2 * SYN["n_neurons"] and set(df2["model"]) == {"Linear", "LinearNonlinear"}
    assert runner.failed_jobs(out).empty
    pd.testing.assert_frame_equal(df2[df2["model"] == "Linear"].reset_index(drop=True), df.reset_index(drop=True))


# ----------------------------------------------------------------------------- plan and merge


def test_make_jobs_chunks_and_ids():
    from deepstrf_utils.runs.jobs import make_jobs

    cfg = runner.normalise_config(_config())
    cid = runner.config_id(cfg)
    ids = ["a", "b", "c", "d", "e"]
    jobs = make_jobs(cfg, cid, [0, 1], ids, population=False, chunk_size=2)
    assert [j.job_id for j in jobs] == [f"{cid}/seed{s}_{a}-{b}" for s in (0, 1) for a, b in ((0, 2), (2, 4), (4, 5))]
    assert [j.neurons for j in jobs[:3]] == [("a", "b"), ("c", "d"), ("e",)]
    assert [j.job_id for j in make_jobs(cfg, cid, [0, 1], ids, population=False, chunk_size=2)] == \
        [j.job_id for j in jobs]  # deterministic
    assert [(j.start, j.stop) for j in make_jobs(cfg, cid, [3], ids, population=False)] == [(0, 5)]
    assert [(j.start, j.stop) for j in make_jobs(cfg, cid, [3], ids, population=True, chunk_size=2)] == [(0, 5)]
    with pytest.raises(ValueError, match="chunk_size"):
        make_jobs(cfg, cid, [0], ids, population=False, chunk_size=0)
    with pytest.raises(ValueError, match="at least one neuron"):
        make_jobs(cfg, cid, [0], [], population=False)


def _rows(cid, seed, neurons, value):
    return pd.DataFrame([{c: 0 for c in runner.RESULT_COLUMNS} | {"config_id": cid, "seed": seed, "neuron": n,
                                                                  "cc_raw": value, "note": "", "prefilter": "none"}
                         for n in neurons])[runner.RESULT_COLUMNS]


def test_status_and_merge(tmp_path):
    from deepstrf_utils.runs import jobs as J

    cfg = runner.normalise_config(_config())
    cid = runner.config_id(cfg)
    out = tmp_path / "results.csv"
    folder = J.jobs_dir(out)
    assert folder == tmp_path / "results_jobs"
    plan = J.make_jobs(cfg, cid, [0], ["a", "b", "c", "d", "e", "f"], population=False, chunk_size=2)
    # rows already in the CSV (an older run) cover job 0 and half of job 1
    J.write_table(_rows(cid, 0, ["a", "b", "c"], 0.1), out)
    J.write_result(plan[2], _rows(cid, 0, ["e", "f"], 0.3), folder)
    J.write_error(plan[1], FloatingPointError("nan at epoch 3"), folder)
    assert J.job_status(plan, folder, J.read_table(out, runner.RESULT_COLUMNS)) == ["done", "failed", "done"]
    failed = J.read_errors(folder)
    assert list(failed["job_id"]) == [plan[1].job_id] and failed.loc[0, "error"] == "FloatingPointError: nan at epoch 3"
    assert failed.loc[0, "log"] == str(plan[1].error_path(folder))
    merged = J.merge_results(out, folder, runner.RESULT_COLUMNS, order=plan)
    assert list(merged["neuron"]) == ["a", "b", "c", "e", "f"]
    assert list(J.read_table(out)["neuron"]) == ["a", "b", "c", "e", "f"]  # written atomically, no temp left
    assert not list(tmp_path.glob(".tmp*")) and not list(folder.rglob(".tmp*"))
    # the failed job succeeds: its error record goes, its new rows join; a duplicate row never does
    J.write_result(plan[1], _rows(cid, 0, ["c", "d"], 0.2), folder)
    assert not plan[1].error_path(folder).exists() and J.read_errors(folder).empty
    merged = J.merge_results(out, folder, runner.RESULT_COLUMNS, order=plan)
    assert list(merged["neuron"]) == ["a", "b", "c", "d", "e", "f"]  # plan order, whatever finished first
    assert list(merged["cc_raw"]) == [0.1, 0.1, 0.1, 0.2, 0.3, 0.3]  # "c" kept from the CSV
    other = _rows("0123456789ab", 0, ["z"], 0.9)  # a configuration outside this plan keeps its place, first
    J.write_table(pd.concat([merged, other], ignore_index=True), out)
    assert list(J.merge_results(out, folder, runner.RESULT_COLUMNS, order=plan)["neuron"]) == list("zabcdef")
    assert J.job_status(plan, folder) == ["missing", "done", "done"]  # job 0 only in the CSV


def test_chunked_jobs_equal_one_job(tmp_path, data_root):
    cfg = _config("LinearNonlinear", prefilter="adaptrans", prefilter_kwargs={"kernel_size": 16})
    whole = runner.run_configs([cfg], [0], tmp_path / "a.csv", root=data_root, device="cpu", progress=False)
    parts = runner.run_configs([cfg], [0], tmp_path / "b.csv", root=data_root, device="cpu", progress=False,
                               chunk_size=3)
    assert len(list((tmp_path / "b_jobs").rglob("*.csv"))) == 2
    cols = ["neuron", "cc_raw", "cc_norm", "cc_max", "n_params", "epochs"]
    # the same fits; a different stack size changes float rounding only
    pd.testing.assert_frame_equal(parts[cols], whole[cols], check_exact=False, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- executors


def test_unknown_executor_and_local_cannot_detach(tmp_path, data_root):
    from deepstrf_utils.runs.executors import make_executor

    with pytest.raises(ValueError, match="unknown executor 'sge'"):
        make_executor("sge", tmp_path)
    with pytest.raises(ValueError, match="unknown cluster option"):
        make_executor("slurm", tmp_path, {"gpus": 1})
    with pytest.raises(ValueError, match="cannot submit without waiting"):
        runner.run_configs([_config()], [0], tmp_path / "r.csv", root=data_root, device="cpu", progress=False,
                           wait=False)


def test_package_imports_without_submitit():
    import subprocess
    import sys

    code = ("import sys; import deepstrf_utils.runs.runner, deepstrf_utils.runs.executors, deepstrf_utils.runs.jobs; "
            "assert 'submitit' not in sys.modules, 'submitit imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_slurm_parameters_reach_the_sbatch_file(tmp_path):
    """No Slurm here: check what submitit would write into the array's sbatch file."""
    from deepstrf_utils.runs.executors import read_cluster_config, slurm_parameters

    slurm = pytest.importorskip("submitit.slurm.slurm")
    path = tmp_path / "cluster.toml"
    path.write_text('partition = "gpu"\ngpus_per_job = 1\ntime_min = 90\nmem_gb = 16\narray_parallelism = 8\n'
                    'setup = ["source /shared/deepstrf/.venv/bin/activate"]\nneurons_per_job = 64\n')
    options = read_cluster_config(path)
    params = slurm_parameters(options)
    assert params == {"job_name": "deepstrf", "time": 90, "cpus_per_task": 2, "partition": "gpu", "gpus_per_node": 1,
                      "mem": "16GB", "array_parallelism": 8, "setup": ["source /shared/deepstrf/.venv/bin/activate"]}
    text = slurm._make_sbatch_string(command="python -m submitit.core._submit x", folder=tmp_path, map_count=20,
                                     **params)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=90",
                 "#SBATCH --mem=16GB", "#SBATCH --array=0-19%8", "#SBATCH --cpus-per-task=2",
                 "source /shared/deepstrf/.venv/bin/activate"):
        assert line in text
    (tmp_path / "bad.json").write_text('{"partitoin": "gpu"}')
    with pytest.raises(ValueError, match="partitoin"):
        read_cluster_config(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=".json or .toml"):
        read_cluster_config(path.rename(tmp_path / "cluster.yml"))


def _grid():
    """Smoke grid: Linear single units in 2 chunks of 2 neurons and a population LN that
    fails (negative learning rate) -> 3 jobs, 2 of them succeed."""
    return [_config("Linear", fit_kwargs={"max_epochs": 20, "patience": None, "batch_size": 4}),
            _config("LinearNonlinear", mode="population", fit_kwargs={**FAST, "lr": -1.0})]


def _wait_for_pid(folder, timeout=120.0):
    """pid of the first job whose log says it started (runner.run_job logs it)."""
    import re
    import time

    t0 = time.time()
    while time.time() - t0 < timeout:
        for log in folder.glob("*.err"):
            m = re.search(r"job \S+/seed0_0-2 started \(pid (\d+),", log.read_text())
            if m:
                return int(m.group(1))
        time.sleep(0.02)
    raise AssertionError(f"no job started within {timeout} s in {folder}")


@pytest.fixture
def restore_threads():
    """This process's torch threads as they were, after the test."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_submitit_local_kill_resume_and_failures_match_in_process(tmp_path, data_root, restore_threads):
    import os
    import signal
    import threading

    pytest.importorskip("submitit")
    import torch

    from deepstrf_utils.runs import jobs as J

    grid = _grid()
    kw = dict(root=data_root, device="cpu", progress=False, chunk_size=2)
    ref = runner.run_configs(grid, [0], tmp_path / "ref.csv", **kw)
    torch.set_num_threads(2)  # the threads the 2 jobs that run at once share
    out = tmp_path / "sub.csv"
    folder = J.jobs_dir(out)
    box = {}
    thread = threading.Thread(target=lambda: box.update(df=runner.run_configs(
        grid, [0], out, executor="submitit-local", cluster={"max_parallel": 2}, **kw)))
    thread.start()
    pid = _wait_for_pid(folder / "logs")
    os.kill(pid, signal.SIGKILL)  # the job's own process, mid-way
    thread.join(timeout=300)
    assert not thread.is_alive()
    killed = J.make_jobs(runner.normalise_config(grid[0]), runner.config_id(grid[0]), [0], ["n"] * 4, False, 2)[0]
    assert not killed.result_path(folder).exists()
    assert not list(folder.rglob(".tmp*"))  # nothing half-written
    failed = runner.failed_jobs(out).set_index("job_id")
    assert set(failed.index) == {killed.job_id, f"{runner.config_id(grid[1])}/seed0_0-4"}
    assert "ended without finishing" in failed.loc[killed.job_id, "error"]
    bad = failed.drop(index=killed.job_id)
    assert bad["error"].str.contains("ValueError").all() and (bad["model"] == "LinearNonlinear").all()
    for log in failed["log"]:
        assert log.endswith(".err") and os.path.exists(log)
    assert "Traceback" in open(bad["log"].iloc[0]).read()
    threads = runner.job_threads("submitit-local", {"max_parallel": 2})  # the cores shared by 2 jobs at once
    assert threads == 1  # 2 threads here, 2 jobs at once (the in-process reference's 1 thread: same arithmetic)
    starts = [line for log in (folder / "logs").glob("*.err") for line in log.read_text().splitlines()
              if " started (pid " in line]
    assert len(starts) == 3 and all(f"{threads} torch threads, OMP_NUM_THREADS={threads} at start" in line
                                    for line in starts)
    assert len(box["df"]) == len(ref) - 2  # the killed chunk's two neurons are missing
    # rerun: only the failed and the missing jobs run again; the finished job files stay untouched
    finished = {p: p.stat().st_mtime_ns for p in folder.rglob("*.csv")}
    assert len(finished) == 1
    df = runner.run_configs(grid, [0], out, executor="submitit-local", cluster={"max_parallel": 2}, **kw)
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert len(list((folder / "logs").glob("*.err"))) == 3 + 2  # 3 first-run jobs + 2 retried
    assert set(runner.failed_jobs(out)["model"]) == {"LinearNonlinear"}
    cols = [c for c in runner.RESULT_COLUMNS if c != "wall_s"]
    pd.testing.assert_frame_equal(df[cols], ref[cols], check_exact=True)
    assert len(df) == SYN["n_neurons"]


@pytest.mark.slow
def test_submit_without_waiting_then_collect(tmp_path, data_root):
    import time

    pytest.importorskip("submitit")
    from deepstrf_utils.runs import jobs as J
    from deepstrf_utils.runs.sweep import job_table

    cfg = _config()
    out = tmp_path / "r.csv"
    kw = dict(root=data_root, device="cpu", progress=False, executor="submitit-local")
    first = runner.run_configs([cfg], [0], out, wait=False, **kw)
    assert first.empty and len(J.read_submissions(J.jobs_dir(out))) == 1
    assert list(job_table([cfg], [0], out, data_root)["status"]) == ["queued"]
    again = runner.run_configs([cfg], [0], out, wait=False, **kw)  # still running: not submitted twice
    assert again.empty and len(list((J.jobs_dir(out) / "logs").glob("*_submitted.pkl"))) == 1
    t0 = time.time()
    while job_table([cfg], [0], out, data_root)["status"].iloc[0] != "done":
        assert time.time() - t0 < 120, "the submitted job did not finish"
        time.sleep(0.2)
    collected = runner.run_configs([cfg], [0], out, wait=False, **kw)
    ref = runner.run_configs([cfg], [0], tmp_path / "ref.csv", root=data_root, device="cpu", progress=False)
    cols = [c for c in runner.RESULT_COLUMNS if c != "wall_s"]
    pd.testing.assert_frame_equal(collected[cols], ref[cols], check_exact=True)
    assert len(list((J.jobs_dir(out) / "logs").glob("*_submitted.pkl"))) == 1


def test_plan_counts_jobs_fits_and_extrapolates_the_probe(data_root, monkeypatch):
    from deepstrf_utils.runs import sweep

    configs = [_config(fit_kwargs={"max_epochs": 100, "patience": 10}),
               _config("DNet", mode="population", model_kwargs={"n_lags": 6, "n_hidden": 4},
                       fit_kwargs={"batch_size": 4})]
    monkeypatch.setattr(sweep, "probe_seconds_per_epoch", lambda cfg, ds, epochs, device: 0.5)
    table = sweep.plan_table(configs, [0, 1, 2], data_root, chunk_size=3)
    assert list(table["jobs"]) == [3 * 2, 3] and list(table["fits"]) == [3 * 4, 3]
    assert list(table["epochs low"]) == [11, 51] and list(table["epochs high"]) == [100, 1000]  # fit defaults
    assert table.loc[0, "hours high"] == pytest.approx(0.5 * 100 * 12 / 3600)
    assert table.loc[1, "hours low"] == pytest.approx(0.5 * 51 * 3 / 3600)
    text = sweep.format_plan(table, "cpu", 2)
    assert "9 jobs, 15 fits" in text and "patience + 1" in text


def test_probe_times_real_epochs(data_root):
    from deepstrf_utils.datasets.synthetic import load_synthetic
    from deepstrf_utils.runs.sweep import probe_seconds_per_epoch

    s = probe_seconds_per_epoch(_config(), load_synthetic(root=data_root, **SYN), epochs=2)
    assert 0 < s < 60


def test_failures_travel_with_the_results(tmp_path, data_root):
    bad = _config("LinearNonlinear", fit_kwargs={**FAST, "lr": -1.0})
    df = runner.run_configs([_config(), bad], [0], tmp_path / "r.csv", root=data_root, device="cpu",
                            progress=False)
    failed = pd.DataFrame(df.attrs["failed"])
    assert list(failed["model"]) == ["LinearNonlinear"] and "expected lr > 0" in failed.loc[0, "error"]
    pd.concat([df, df])  # plain records in attrs: pandas can still combine such tables


def test_make_figures_plan_prints_the_plan(tmp_path, monkeypatch, capsys):
    """`make figures PLAN=1` -> scripts/run_notebooks.py --plan: the plan, no notebook run."""
    import importlib.util
    from pathlib import Path

    from deepstrf_utils.runs import sweep

    spec = importlib.util.spec_from_file_location("run_notebooks", Path(__file__).parents[1] / "scripts" /
                                                  "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sweep, "probe_seconds_per_epoch", lambda cfg, ds, epochs, device: 0.25)
    monkeypatch.setattr(module, "run", lambda *a, **k: pytest.fail("--plan must not run the notebooks"))
    rc = module.main(["--plan", "--profile", "smoke", "--device", "cpu", "--data-root", str(tmp_path),
                      "--set", "partition=gpu", "--set", "mem_gb="])
    text = capsys.readouterr().out
    assert rc == 0 and "cost plan of profile 'smoke' on synthetic" in text
    assert "total: 12 jobs, 30 fits" in text  # 6 single-unit configs x 4 neurons + 6 population fits
    assert module.main(["--executor", "pbs"]) == 2 and "unknown executor 'pbs'" in capsys.readouterr().err


def test_cluster_options_from_file_and_overrides(tmp_path):
    from deepstrf_utils.runs.sweep import cluster_options

    path = tmp_path / "c.json"
    path.write_text('{"partition": "cpu", "time_min": 30}')
    assert cluster_options(str(path), ["partition=gpu", "gpus_per_job=1", "mem_gb=", "mem_gb=7.5"]) == \
        {"partition": "gpu", "time_min": 30, "gpus_per_job": 1, "mem_gb": 7.5}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        cluster_options("", ["partition"])
    with pytest.raises(ValueError, match="unknown cluster option"):
        cluster_options("", ["nodes=2"])
