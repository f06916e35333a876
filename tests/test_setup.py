"""The set-up files agree with each other: one torch pin, one Python floor, every benchmark run by
a make target, and the figures of a run kept out of the committed gallery."""
import re
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKEFILE = (REPO / "Makefile").read_text()


def _make_var(name: str) -> str:
    m = re.search(rf"^{name}\s*[:?]?=\s*(.*)$", MAKEFILE, flags=re.M)
    assert m, f"expected {name} in the Makefile"
    return m.group(1).strip()


def test_one_torch_pin_in_makefile_and_environment_yml():
    version = _make_var("TORCH_VERSION")
    env = (REPO / "environment.yml").read_text()
    pins = re.findall(r"-\s*torch\s*([=<>!~]=?\s*[0-9.]+)", env)
    assert pins == [f"=={version}"], f"environment.yml pins torch {pins}, the Makefile {version}"


def test_cpu_build_is_the_default_and_comes_from_the_cpu_index():
    assert _make_var("TORCH") == "cpu"
    assert "+cpu" in _make_var("TORCH_PKG_cpu")
    assert "download.pytorch.org/whl/cpu" in _make_var("TORCH_IDX_cpu")


def test_python_floor_is_the_same_everywhere():
    floor = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert floor == ">=3.11"
    assert "sys.version_info; assert v >= (3, 11)" in MAKEFILE
    assert sys.version_info >= (3, 11)
    assert "python=3.11" in (REPO / "environment.yml").read_text()


def test_every_benchmark_script_is_run_by_a_make_target():
    listed = set(_make_var("BENCH_QUICK").split()) | set(_make_var("BENCH_LONG").split())
    scripts = {p.stem for p in (REPO / "benchmarks").glob("*.py") if not p.stem.startswith("_")}  # _x.py: helpers
    assert scripts - listed == set(), f"benchmarks not run by make bench / make bench-long: {sorted(scripts - listed)}"
    assert listed - scripts == set(), f"make lists benchmarks that do not exist: {sorted(listed - scripts)}"


def test_dependency_floors_are_parsed_from_pyproject():
    import importlib.util

    spec = importlib.util.spec_from_file_location("floors", REPO / "scripts" / "dependency_floors.py")
    floors = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floors)
    got = floors.floors()
    assert "torch" not in got and got["numpy"] and got["matplotlib"] == "3.9"


def test_lab_keeps_the_users_backend_and_runs_as_root():
    lab = MAKEFILE.split("\nlab:")[1].split("\n\n")[0]
    assert "env -u MPLBACKEND" in lab and "--no-browser" in lab and "--allow-root" in lab
    assert not re.search(r"^export MPLBACKEND", MAKEFILE, flags=re.M), "MPLBACKEND must not leak into make lab"


def test_runs_write_figures_outside_the_committed_gallery(tmp_path, monkeypatch):
    from deepstrf_utils.notebook import setup_run

    monkeypatch.chdir(REPO)
    ctx = setup_run("smoke", "", "cpu", data_root=str(tmp_path / "data"), results_dir=str(tmp_path / "res"))
    assert ctx.fig_dir == (REPO / "build" / "figures" / "smoke").resolve()
    assert ctx.fig_dir != (REPO / "figures").resolve()


def test_publish_gallery_replaces_pngs_and_refuses_an_empty_run(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_notebooks", REPO / "scripts" / "run_notebooks.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    run, gallery = tmp_path / "run", tmp_path / "gallery"
    run.mkdir()
    gallery.mkdir()
    (gallery / "stale.png").write_bytes(b"old")
    (gallery / "README.md").write_text("captions")
    with pytest.raises(FileNotFoundError, match="finished quick run"):
        runner.publish_gallery(run, gallery)
    (run / "fig_a.png").write_bytes(b"png")
    (run / "fig_a.pdf").write_bytes(b"pdf")
    (run / "fig_a.caption.md").write_text("What fig_a shows, n = 3.\n")
    (run / "fig1_adaptrans.png").write_bytes(b"png")
    (run / "fig1_adaptrans.caption.md").write_text("Figure 1 of the paper.\n")
    (run / "benchmark.md").write_text("| table |")
    runner.publish_gallery(run, gallery)
    assert sorted(p.name for p in gallery.iterdir()) == ["README.md", "benchmark.md", "fig1_adaptrans.png", "fig_a.png"]
    # figures/README.md: every figure with its caption, in the notebooks' order, regenerated from the run
    readme = (gallery / "README.md").read_text()
    assert readme.index("## fig1_adaptrans") < readme.index("## fig_a")
    assert "![fig_a](fig_a.png)\n\nWhat fig_a shows, n = 3." in readme and "captions" not in readme.splitlines()


def test_citation_file_names_the_paper_and_the_licence():
    text = (REPO / "CITATION.cff").read_text()
    assert text.startswith("cff-version: 1.2.0")
    preferred = text.split("preferred-citation:")[1].split("references:")[0]
    assert "doi: 10.1371/journal.pcbi.1012288" in preferred
    assert "license: MIT" in text and (REPO / "LICENSE").read_text().startswith("MIT")
