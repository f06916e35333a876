"""Tests of the job machinery of the runner: the plan (configuration x seed x chunk of
neurons), per-job result files, the merge, failures recorded and retried, and the
executors (in-process, submitit's local executor, the Slurm parameters)."""
import pandas as pd
import pytest

from deepstrf_utils import runner, training

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
