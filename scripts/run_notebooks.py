#!/usr/bin/env python
"""Execute the project's notebooks 01..06 in order with papermill.

    python scripts/run_notebooks.py --profile quick --datasets "" --device auto \
        --out build/notebooks [--only 01,02] [--executor local|submitit-local|slurm] \
        [--cluster-config cluster.toml] [--set partition=gpu ...] [--plan]

Each notebook runs with its working directory set to ``notebooks/`` and receives (among the
parameters its ``parameters`` cell declares; the others are not passed) absolute paths for DATA_ROOT, FIG_DIR and RESULTS_DIR (defaults: ``<repo>/data``,
``<repo>/build/figures/<profile>``, ``<repo>/build/results``), so relative paths never depend on
where the script is launched and no run writes into the committed gallery ``figures/``.
``--publish-gallery build/figures/quick`` copies a finished quick run's PNGs and tables into
``figures/`` and writes ``figures/README.md`` from the figures' captions (``make gallery``). Executed copies (with outputs) go to ``--out``. On failure the script
stops, names the notebook and the failing cell, and exits with status 1.

``--datasets`` may name NWB files as ``nwb:<path>`` (relative to the current folder; made
absolute before the notebooks see them).

Notebook 03 runs its fits through ``--executor`` (``EXECUTOR``; options from
``--cluster-config`` and ``--set KEY=VALUE`` as ``CLUSTER``) and waits for them. ``--plan``
prints the cost plan of the profile (jobs, fits, estimated wall time) and runs nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"


def find_notebooks(notebook_dir: Path = NOTEBOOK_DIR, only: str = "") -> list[Path]:
    """Sorted ``NN_*.ipynb`` files of ``notebook_dir``, filtered by the comma list ``only``
    of two-digit prefixes (empty = all). Raises FileNotFoundError / ValueError."""
    books = sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb"))
    if not books:
        raise FileNotFoundError(f"expected notebooks named NN_*.ipynb in {notebook_dir}, found none")
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    if wanted:
        prefixes = {p.name[:2] for p in books}
        unknown = [w for w in wanted if w.zfill(2) not in prefixes]
        if unknown:
            raise ValueError(f"expected --only prefixes among {sorted(prefixes)}, got unknown {unknown}")
        books = [p for p in books if p.name[:2] in {w.zfill(2) for w in wanted}]
    return books


def kernel_name() -> str:
    """Kernelspec to run with: ``python3`` when its interpreter is the current Python.

    The venv's ``python3`` kernelspec starts ``python -m ipykernel_launcher``, which
    jupyter_client resolves to ``sys.executable`` (this interpreter). A spec naming another
    interpreter is reported on stderr (the notebooks would then run in that environment).
    """
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except Exception:  # no python3 spec: jupyter_client falls back to ipykernel's native one
        return "python3"
    exe = argv[0] if argv else "python"
    if exe not in ("python", "python3") and Path(exe).resolve() != Path(sys.executable).resolve():
        print(f"warning: kernelspec 'python3' runs {exe}, not {sys.executable}", file=sys.stderr)
    return "python3"


def declared_parameters(book: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (papermill's own inspection).

    A notebook without such a cell declares none. Raises ValueError naming the notebook when
    its file cannot be read as a notebook."""
    from papermill.inspection import inspect_notebook

    try:
        return set(inspect_notebook(str(book)))
    except Exception as err:  # unreadable / invalid notebook file
        raise ValueError(f"expected a readable notebook with a 'parameters' cell: {book}: {err}") from err


def parameters_for(book: Path, params: dict) -> dict:
    """The subset of ``params`` that ``book`` declares in its ``parameters`` cell, so papermill
    never injects (and warns about) a name the notebook does not use, e.g. ``CLUSTER``
    outside notebook 03."""
    names = declared_parameters(book)
    return {k: v for k, v in params.items() if k in names}


def failing_cell(err, output_path: Path) -> str:
    """Describe the failing cell of a papermill error: index, execution count, first line."""
    import nbformat

    where = ""
    try:
        nb = nbformat.read(str(output_path), as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
                where = f"cell {i} (code cell [{cell.get('execution_count')}]): {first[:100]!r}"
                break
    except Exception:  # executed copy unreadable: fall back to the error's own data
        pass
    if not where and getattr(err, "exec_count", None) is not None:
        where = f"code cell [{err.exec_count}]"
    return where or "unknown cell"


def default_fig_dir(profile: str) -> Path:
    """Where a profile's figures go unless told otherwise: ``<repo>/build/figures/<profile>``
    (ignored by git), never the committed gallery ``figures/``."""
    return REPO / "build" / "figures" / str(profile).strip().lower()


#: what the committed gallery holds: the quick profile's PNGs and its benchmark table (and README.md,
#: written from the captions saved beside the PNGs)
GALLERY_PATTERNS = ("*.png", "benchmark.md")

GALLERY_INTRO = (
    "Every figure of the quick-profile run on the built-in synthetic population, with the caption its figure "
    "function wrote beside it (what is shown, n, what was excluded and why). Written by `make gallery` "
    "(`deepstrf_utils.report.figures.gallery_markdown`); do not edit by hand. The PDFs and captions of any run are in "
    "`build/figures/<profile>/`."
)


def publish_gallery(source: Path, gallery: Path = REPO / "figures") -> list[Path]:
    """Replace the gallery's PNGs and tables by those of ``source`` (a finished quick run) and
    write ``gallery/README.md``: one section per figure with its image and the caption saved
    beside it in ``source``. Files the run did not write are removed, so the gallery never
    shows a stale figure. Raises FileNotFoundError when ``source`` holds no PNG."""
    import shutil

    from deepstrf_utils.report.figures import gallery_markdown

    source = Path(source)
    new = sorted(p for pattern in GALLERY_PATTERNS for p in source.glob(pattern))
    if not any(p.suffix == ".png" for p in new):
        raise FileNotFoundError(f"expected the PNGs of a finished quick run in {source}; run `make figures` first")
    readme = gallery_markdown(source, title="Figures (quick profile)", intro=GALLERY_INTRO)
    for old in (p for pattern in GALLERY_PATTERNS for p in gallery.glob(pattern)):
        old.unlink()
    out = []
    for p in new:
        shutil.copy2(p, gallery / p.name)
        out.append(gallery / p.name)
    tmp = gallery / ".README.md.tmp"
    tmp.write_text(readme, encoding="utf-8")
    tmp.replace(gallery / "README.md")
    return out + [gallery / "README.md"]


def run(profile: str, datasets: str, device: str, out: Path, only: str = "", data_root: Path | None = None,
        fig_dir: Path | None = None, results_dir: Path | None = None, timeout: int | None = None,
        notebook_dir: Path = NOTEBOOK_DIR, executor: str = "local", cluster: dict | None = None) -> int:
    """Execute the notebooks; return 0 on success, 1 on the first failure (message on stderr)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    books = find_notebooks(Path(notebook_dir), only)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    params = {
        "PROFILE": profile,
        "DATASETS": datasets,
        "DEVICE": device,
        "DATA_ROOT": str(Path(data_root or REPO / "data").resolve()),
        "FIG_DIR": str(Path(fig_dir or default_fig_dir(profile)).resolve()),
        "RESULTS_DIR": str(Path(results_dir or REPO / "build" / "results").resolve()),
        "EXECUTOR": executor,
        "CLUSTER": dict(cluster or {}),
    }
    kernel = kernel_name()
    for book in books:
        target = out / book.name
        t0 = time.time()
        print(f"[run_notebooks] {book.name} (profile={profile}) ...", flush=True)
        try:
            pm.execute_notebook(
                str(book), str(target), parameters=parameters_for(book, params), kernel_name=kernel,
                cwd=str(book.parent), progress_bar=False, execution_timeout=timeout,
            )
        except PapermillExecutionError as err:
            where = failing_cell(err, target)
            print(
                f"[run_notebooks] FAILED: notebook {book.name}, {where}\n"
                f"  {err.ename}: {err.evalue}\n  executed copy with the traceback: {target}",
                file=sys.stderr,
            )
            return 1
        except Exception as err:  # kernel died, timeout, bad notebook file ...
            print(f"[run_notebooks] FAILED: notebook {book.name}: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
        print(f"[run_notebooks] {book.name} done in {time.time() - t0:.0f} s -> {target}", flush=True)
    return 0


def absolute_nwb_paths(datasets: str, base: Path | None = None) -> str:
    """The comma list ``datasets`` with each ``nwb:<path>`` made absolute (from ``base``, default
    the current folder), so that the notebooks, run from ``notebooks/``, find the same files."""
    out = []
    for item in datasets.split(","):
        name = item.strip()
        if name.lower().startswith("nwb:") and name[4:].strip():
            path = Path(name[4:].strip()).expanduser()
            name = "nwb:" + str(path if path.is_absolute() else (Path(base or Path.cwd()) / path).resolve())
        out.append(name)
    return ",".join(n for n in out if n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick", help="run profile: smoke, quick or paper")
    ap.add_argument("--datasets", default="", help="comma list of datasets; empty = all available")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    ap.add_argument("--out", default=str(REPO / "build" / "notebooks"), help="folder for executed copies")
    ap.add_argument("--only", default="", help="comma list of notebook prefixes, e.g. 01,02")
    ap.add_argument("--data-root", default=None, help="dataset folder (default <repo>/data)")
    ap.add_argument("--fig-dir", default=None, help="figure folder (default <repo>/build/figures/<profile>)")
    ap.add_argument("--results-dir", default=None, help="results folder (default <repo>/build/results)")
    ap.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (default none)")
    ap.add_argument("--executor", default="local", help="where notebook 03 fits: local, submitit-local or slurm")
    ap.add_argument("--cluster-config", default="", help="JSON or TOML file of cluster options (slurm)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="cluster option overriding the file, e.g. partition=gpu (repeatable; empty values ignored)")
    ap.add_argument("--plan", action="store_true", help="print the cost plan and run nothing")
    ap.add_argument("--publish-gallery", default=None, metavar="RUN_FIG_DIR",
                    help="copy a finished quick run's PNGs and benchmark.md into figures/, write figures/README.md "
                         "from their captions, and exit")
    args = ap.parse_args(argv)
    args.datasets = absolute_nwb_paths(args.datasets)
    try:
        if args.publish_gallery:
            copied = publish_gallery(Path(args.publish_gallery))
            print(f"[run_notebooks] gallery: {len(copied)} files copied into {REPO / 'figures'}")
            return 0
        from deepstrf_utils.runs.executors import EXECUTORS
        from deepstrf_utils.runs.sweep import cluster_options

        if args.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {args.executor!r}; expected one of {list(EXECUTORS)}")
        cluster = cluster_options(args.cluster_config, args.set)
        if args.plan:
            from deepstrf_utils.runs.sweep import main as sweep

            return sweep(["--plan", "--profile", args.profile, "--datasets", args.datasets, "--device", args.device,
                          "--data-root", str(Path(args.data_root or REPO / "data").resolve())]
                         + [f"--set={k}={v}" for k, v in cluster.items() if k == "neurons_per_job"])
        return run(args.profile, args.datasets, args.device, Path(args.out), args.only,
                   data_root=args.data_root and Path(args.data_root),
                   fig_dir=args.fig_dir and Path(args.fig_dir),
                   results_dir=args.results_dir and Path(args.results_dir), timeout=args.timeout,
                   executor=args.executor, cluster=cluster)
    except (FileNotFoundError, ValueError) as err:
        print(f"[run_notebooks] {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
