"""Notebooks: committed clean, parameterised, and executable end to end (PROFILE="smoke").

Executions go to a temporary folder (data cache, figures, results); notebook 04 and 05 read
what 03 wrote, so 03 is executed first whichever test asks.
"""
import importlib.util
from pathlib import Path

import nbformat
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NAMES = [p.name for p in NOTEBOOKS]
PARAMETERS = ("PROFILE", "DATASETS", "DEVICE", "DATA_ROOT", "FIG_DIR", "RESULTS_DIR")

# stable figure names each notebook must write (smoke profile: synthetic data only)
EXPECTED = {
    "01": ["fig_datasets_synthetic.png", "fig_noise_ceiling.png", "fig_noise_ceiling.pdf"],
    "02": ["fig1_adaptrans.png", "fig1_adaptrans.pdf", "fig_insilico_off.png"],
    "03": [],
    "04": ["fig_strfs_onoff_synthetic.png", "fig_strfs_nrf_hidden_synthetic.png",
           "fig_strfs_gradient_synthetic.png", "fig_adaptrans_params_synthetic.png",
           "fig_synthetic_recovery.png", "fig_dstrf_moments_synthetic.png", "fig_dpc_spectra_synthetic.png",
           "fig_dpcs_synthetic.pdf", "fig_mei_synthetic.png", "fig_insilico_models_synthetic.png",
           "fig_insilico_bands_synthetic.png", "fig_insilico_bands_synthetic.pdf"],
    "05": ["fig_performance.png", "fig_performance.pdf", "benchmark.md", "fig_sessions_state.png",
           "fig_sessions_state.pdf"],
    "06": ["fig_vision_population.png", "fig_vision_population.pdf", "fig_vision_adaptrans.png",
           "fig_vision_rfs.png", "fig_vision_size_tuning.png", "fig_vision_mei.png", "fig_vision_flash_direction.png",
           "fig_vision_flash_direction.pdf"],
}


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", REPO / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_six_notebooks_present():
    assert [n[:2] for n in NAMES] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_committed_clean_with_parameters_cell(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("outputs") == [] for c in code), "commit notebooks without outputs"
    assert all(c.get("execution_count") is None for c in code), "commit notebooks without execution counts"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "expected exactly one cell tagged 'parameters'"
    names = {line.split("=")[0].strip() for line in tagged[0].source.splitlines() if "=" in line}
    assert set(PARAMETERS) <= names
    assert 'PROFILE = "quick"' in tagged[0].source and 'DATASETS = ""' in tagged[0].source
    longest = max(len(c.source.splitlines()) for c in code)
    assert longest <= 35, "a code cell this long belongs in deepstrf_utils"
    total = sum(1 for c in code for line in c.source.splitlines() if line.strip())
    assert total <= 90, f"{total} lines of code: a notebook tells the story, its helpers and figures live in deepstrf_utils"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run a notebook once per session (03 before 04/05); returns the run folders."""
    pm = pytest.importorskip("papermill")
    root = tmp_path_factory.mktemp("notebooks")
    dirs = {k: root / k for k in ("out", "data", "figures", "results")}
    dirs["out"].mkdir()
    done = set()
    runner = _load_runner()

    def run(prefix):
        needs = ["03"] if prefix in ("04", "05") else []
        for p in needs + [prefix]:
            if p in done:
                continue
            book = next(b for b in NOTEBOOKS if b.name.startswith(p))
            pm.execute_notebook(
                str(book), str(dirs["out"] / book.name), kernel_name=runner.kernel_name(), cwd=str(book.parent),
                progress_bar=False, parameters={
                    "PROFILE": "smoke", "DATASETS": "", "DEVICE": "cpu", "DATA_ROOT": str(dirs["data"]),
                    "FIG_DIR": str(dirs["figures"]), "RESULTS_DIR": str(dirs["results"])})
            done.add(p)
        return dirs

    return run


@pytest.mark.notebook
@pytest.mark.parametrize("prefix", ["01", "02", "03", "04", "05", "06"])
def test_notebook_executes_with_smoke_profile(executed, prefix):
    dirs = executed(prefix)
    for name in EXPECTED[prefix]:
        assert (dirs["figures"] / name).stat().st_size > 0, f"{prefix} did not write {name}"
        if name.endswith(".png"):  # every figure is saved with its caption
            caption = dirs["figures"] / name.replace(".png", ".caption.md")
            assert len(caption.read_text()) > 80, f"{prefix}: {name} has no caption"
    if prefix == "03":
        import pandas as pd

        df = pd.read_csv(dirs["results"] / "results_smoke.csv")
        # 6 models x {none, adaptrans} x 4 synthetic neurons x 1 seed
        assert len(df) == 6 * 2 * 4 and set(df["prefilter"]) == {"none", "adaptrans"}
        assert any((dirs["results"] / "checkpoints_smoke").glob("*.pt"))
    if prefix == "06":
        import pandas as pd

        df = pd.read_csv(dirs["results"] / "vision_scores_smoke.csv")
        # 2 models x {none, adaptrans} x 6 synthetic neurons x 1 seed
        assert len(df) == 2 * 2 * 6 and set(df["prefilter"]) == {"none", "adaptrans"}
    if prefix == "05":
        text = (dirs["figures"] / "benchmark.md").read_text()
        assert "43.7" in text and "65.3" in text and "ConvNet2D + AdapTrans" in text
        assert "LN + AdapTrans vs LN, cc_raw" in text and "tau recovery of LN + AdapTrans" in text


@pytest.mark.notebook
def test_runner_names_failing_notebook_and_cell(tmp_path, capsys):
    runner = _load_runner()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE = "quick"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise RuntimeError('boom')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = tmp_path / "books"
    folder.mkdir()
    nbformat.write(nb, str(folder / "01_broken.ipynb"))
    rc = runner.run("smoke", "", "cpu", tmp_path / "out", notebook_dir=folder, fig_dir=tmp_path / "f",
                    results_dir=tmp_path / "r", data_root=tmp_path / "d")
    err = capsys.readouterr().err
    assert rc == 1
    assert "01_broken.ipynb" in err and "raise RuntimeError('boom')" in err and "RuntimeError: boom" in err


def test_runner_passes_each_notebook_only_its_declared_parameters():
    runner = _load_runner()
    every = {k: "x" for k in PARAMETERS + ("EXECUTOR", "CLUSTER")}
    by_prefix = {p.name[:2]: p for p in NOTEBOOKS}
    assert set(runner.parameters_for(by_prefix["03"], every)) == set(every)  # 03 fits through EXECUTOR / CLUSTER
    for prefix in ("01", "02", "04", "05", "06"):
        assert set(runner.parameters_for(by_prefix[prefix], every)) == set(PARAMETERS), prefix


@pytest.mark.notebook
def test_runner_does_not_inject_undeclared_parameters(tmp_path, capsys):
    """papermill warned "Passed unknown parameter: CLUSTER" for notebooks without it: the runner
    now passes only the declared names (the second cell fails if CLUSTER was injected)."""
    runner = _load_runner()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE = "quick"\nFIG_DIR = "figures"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "assert 'CLUSTER' not in globals() and 'EXECUTOR' not in globals(), 'undeclared parameter injected'\n"
        "assert PROFILE == 'smoke' and FIG_DIR != 'figures'")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = tmp_path / "books"
    folder.mkdir()
    nbformat.write(nb, str(folder / "01_declared.ipynb"))
    rc = runner.run("smoke", "", "cpu", tmp_path / "out", notebook_dir=folder, fig_dir=tmp_path / "f",
                    results_dir=tmp_path / "r", data_root=tmp_path / "d", cluster={"partition": "gpu"})
    assert rc == 0, capsys.readouterr().err


def test_runner_rejects_unknown_prefix(capsys):
    runner = _load_runner()
    assert runner.main(["--only", "09", "--out", str(REPO / "build" / "never_written")]) == 2
    assert "09" in capsys.readouterr().err


def test_save_figure_writes_png_and_pdf(tmp_path):
    import matplotlib.pyplot as plt

    from deepstrf_utils.report.plotting import plot_strf, save_figure

    fig, ax = plt.subplots()
    plot_strf(ax, [[0.0, 1.0], [-1.0, 0.5]], dt_ms=5.0, cf_hz=[1000.0, 2000.0])
    assert ax.get_xlabel() == "lag (ms)" and ax.get_ylabel() == "frequency (kHz)"
    paths = save_figure(fig, "fig_test", tmp_path / "figs")
    plt.close(fig)
    assert [p.name for p in paths] == ["fig_test.png", "fig_test.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="without folder or extension"):
        save_figure(fig, "fig_test.png", tmp_path)


def test_plot_tau_recovery_draws_used_rows_on_log_axes():
    import matplotlib.pyplot as plt
    import pandas as pd

    from deepstrf_utils.report.figures_strfs import plot_tau_recovery

    table = pd.DataFrame({"channel": ["ON", "ON", "OFF", "OFF"], "used": [True, True, True, False],
                          "true_factor": [0.5, 2.0, 1.0, 1.5], "fitted_factor": [0.6, 1.8, 1.1, np.nan]})
    fig, ax = plt.subplots()
    plot_tau_recovery(ax, table)
    counts = [len(c.get_offsets()) for c in ax.collections]
    plt.close(fig)
    assert counts == [2, 1] and ax.get_xscale() == "log" and ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="tau_recovery_table"):
        plot_tau_recovery(ax, table.drop(columns="used"))


def test_profiles_configs_and_dataset_resolution(tmp_path):
    from deepstrf_utils.runs.profiles import MODEL_NAMES, get_profile
    from deepstrf_utils.runs.runner import config_id

    quick, paper = get_profile("quick"), get_profile("paper")
    configs = quick.configs(["synthetic", "nat4_a1"])
    assert len(configs) == 2 * len(MODEL_NAMES) * 2
    assert {(c["model"], c["prefilter"]) for c in configs} == {(m, p) for m in MODEL_NAMES for p in (None, "adaptrans")}
    cnn = [c for c in configs if c["model"] == "ConvNet2D"]
    assert {tuple(c["model_kwargs"]["kernel_size"]) for c in cnn} == {(6, 15), (3, 7)}
    assert len({config_id(c) for c in configs}) == len(configs)  # accepted by the runner, all distinct
    assert paper.fit_kwargs_for("ns1")["patience"] == 50 and len(paper.seeds) == 10
    # AdapTrans: rectified, with its own learning rate in quick only; nothing extra without a prefilter
    for c in configs:
        if c["prefilter"] == "adaptrans":
            assert c["prefilter_kwargs"] == {"rectify": "relu"} and c["fit_kwargs"]["prefilter_lr"] == 3e-2
        else:
            assert "prefilter_kwargs" not in c and "prefilter_lr" not in c["fit_kwargs"]
        assert c["fit_kwargs"]["lr"] == 1e-2
    p_at = paper.config("ns1", "LinearNonlinear", "adaptrans")
    assert p_at["prefilter_kwargs"] == {"rectify": "relu"} and p_at["mode"] == "single"
    assert p_at["fit_kwargs"]["lr"] == 1e-3 and p_at["fit_kwargs"]["prefilter_lr"] is None
    assert quick.options_for("synthetic")["n_neurons"] >= 14  # enough neurons for a tau correlation
    assert quick.datasets("", tmp_path) == ["synthetic"]
    assert paper.datasets("", tmp_path) == ["synthetic"]  # nothing downloaded under tmp_path
    with pytest.raises(FileNotFoundError, match="make data DATASET=ns1"):
        quick.datasets("ns1", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        quick.datasets("nope", tmp_path)
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("fast")


def test_symmetric_limit_and_one_colour_bar_for_an_input_table():
    import matplotlib.pyplot as plt

    from deepstrf_utils.report.figures import plot_strf_table
    from deepstrf_utils.report.plotting import symmetric_limit

    a = np.linspace(-1.0, 1.0, 101).reshape(1, 101)  # |x|: 0, 0.02, ..., 1 twice
    b = np.array([[0.0, 10.0]])  # one outlier
    vmax, clipped = symmetric_limit([a, b], percentile=99)
    assert vmax == pytest.approx(np.percentile(np.abs(np.r_[a.ravel(), b.ravel()]), 99))
    assert clipped == pytest.approx(np.mean(np.abs(np.r_[a.ravel(), b.ravel()]) > vmax)) and 0 < clipped < 0.05
    assert symmetric_limit([np.zeros((2, 2))]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="percentile in"):
        symmetric_limit([a], percentile=0)
    rows = [[a.repeat(3, 0), b.repeat(3, 0)]]
    fig = plot_strf_table(rows, 5.0, [500.0, 1000.0, 2000.0], vmax=vmax, colorbar_label="input - mean (a.u.)")
    images = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "input - mean (a.u.)"
    assert all(ax.collections[0].get_clim() == (-vmax, vmax) for ax in images)  # one scale, set from the data
    assert len(images) == 2
    plt.close(fig)
    fig = plot_strf_table(rows, 5.0, colorbar_label="x (u)")  # without vmax: one scale and bar per row
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"] == ["x (u)"]
    plt.close(fig)


def test_plot_band_steps_draws_model_and_adaptrans_per_neuron():
    import matplotlib.pyplot as plt
    import pandas as pd

    from deepstrf_utils.report.figures_interpret import plot_band_steps

    cf = np.array([500.0, 1000.0, 2000.0])
    df = pd.concat([pd.DataFrame({"label": "LN", "neuron": n, "source": s, "response": r, "band": np.arange(3),
                                  "cf_hz": cf, "amplitude": np.array([0.1, 0.5, 0.2]) * (1 if r == "on" else 0.5)})
                    for n in ("a", "b") for s in ("model", "adaptrans") for r in ("on", "off")])
    fig, axes = plt.subplots(2, 2)
    plot_band_steps(axes, df, ["a", "b"])
    assert all(len(ax.lines) == 2 and ax.get_xscale() == "log" for ax in axes.flat)
    # one scale per label, neuron and source over ON and OFF: the OFF curve stays half the ON one
    np.testing.assert_allclose(axes[0, 0].lines[0].get_ydata(), [0.2, 1.0, 0.4])
    np.testing.assert_allclose(axes[0, 1].lines[0].get_ydata(), [0.1, 0.5, 0.2])
    assert [ln.get_linestyle() for ln in axes[0, 0].lines] == ["-", "--"]
    assert axes[1, 1].get_title() == "neuron b: OFF" and axes[0, 0].get_xlabel() == "frequency (kHz)"
    plt.close(fig)
    with pytest.raises(ValueError, match="model_band_steps table"):
        plot_band_steps(axes, df.drop(columns="cf_hz"), ["a", "b"])
