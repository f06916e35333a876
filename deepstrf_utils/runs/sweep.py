"""A profile's sweep from the command line: cost plan, submission without waiting, collection.

    python -m deepstrf_utils.runs --profile paper --plan            # jobs, fits, time estimate
    python -m deepstrf_utils.runs --profile paper --executor slurm  # submit, return at once
    python -m deepstrf_utils.runs --profile paper --executor slurm  # again: collect (+ resubmit
                                                               # failed / lost jobs)

(``make figures PROFILE=paper PLAN=1`` and ``make sweep`` call it.) The results and job
files are those of notebook 03 (``<results dir>/results_<profile>.csv``, ``..._jobs/``),
so once every job has finished, ``make figures`` runs no fit: it reads them.

The wall-time estimate times a short probe of each configuration on this machine: one
neuron (single-unit fits) or the whole population on the seed-0 split, a fit of
``probe_epochs`` epochs timed whole (after a one-epoch warm-up fit) gives seconds per
epoch; x epochs x fits. Epochs per fit are a
range: early stopping can end a fit after ``patience + 1`` epochs (low) and runs at most
``max_epochs`` (high). The estimate is sequential on this machine, without the speed-up
of stacking single units (so rather pessimistic for L / LN / NRF) and without job overheads.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from .. import training
from . import jobs, runner
from .executors import EXECUTORS, check_cluster_options, in_flight, read_cluster_config
from .profiles import get_profile

logger = logging.getLogger(__name__)

__all__ = ["plan_table", "probe_seconds_per_epoch", "format_plan", "job_table", "main"]


def probe_seconds_per_epoch(config: dict, dataset, epochs: int = 2, device="cpu") -> float:
    """Seconds per training epoch of ``config`` on ``dataset`` (seed-0 split): one neuron for a
    single-unit configuration, every neuron for a population one. One warm-up fit of one
    epoch, then a fit of ``epochs`` epochs timed whole (set-up included) / ``epochs``."""
    cfg = runner.normalise_config(config)
    if cfg["neurons"] is not None:
        dataset = dataset.select(cfg["neurons"])
    if cfg["mode"] == "single":
        dataset = dataset.select([dataset.neuron_ids[0]])
    train, val, _ = dataset.split(0)
    fit_kwargs = {**cfg["fit_kwargs"], "patience": None}
    quiet = logging.getLogger("deepstrf_utils.training")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        for n in (1, int(epochs)):
            training.seed_everything(0)
            model = runner.build_config_model(cfg, dataset, dataset.n_neurons)
            result = training.fit(model, train, val, device=device, progress=False,
                                  **{**fit_kwargs, "max_epochs": n})
    finally:
        quiet.setLevel(level)
    return result.wall_s / max(result.epochs, 1)


def plan_table(configs, seeds, root="data", chunk_size=None, probe_epochs: int = 2, device="cpu",
               probe: bool = True) -> pd.DataFrame:
    """One row per configuration: dataset, model, prefilter, mode, neurons, seeds, jobs, fits,
    epochs (low, high), probe s/epoch, estimated hours (low, high) on this machine."""
    loader = runner.DatasetCache(root)
    rows = []
    for cfg in (runner.normalise_config(c) for c in configs):
        dataset = loader(cfg)
        n = len(runner.config_neuron_ids(cfg, dataset))
        planned = runner.plan_jobs([cfg], seeds, root, chunk_size, loader=loader)
        fits = len(seeds) * (n if cfg["mode"] == "single" else 1)
        fk = {"max_epochs": 1000, "patience": 50, **cfg["fit_kwargs"]}
        high = int(fk["max_epochs"])
        low = high if fk["patience"] is None else min(high, int(fk["patience"]) + 1)
        spe = probe_seconds_per_epoch(cfg, dataset, probe_epochs, device) if probe else float("nan")
        rows.append({"dataset": cfg["dataset"], "model": cfg["model"], "prefilter": cfg["prefilter"] or "none",
                     "mode": cfg["mode"], "neurons": n, "seeds": len(seeds), "jobs": len(planned), "fits": fits,
                     "epochs low": low, "epochs high": high, "probe s/epoch": spe,
                     "hours low": spe * low * fits / 3600, "hours high": spe * high * fits / 3600})
    return pd.DataFrame(rows)


def format_plan(table: pd.DataFrame, device: str, probe_epochs: int) -> str:
    """The plan as text: per dataset x model x prefilter, then totals, and how it was estimated."""
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500):
        body = table.to_string(index=False, float_format=lambda v: f"{v:.3g}")
    total = table[["jobs", "fits", "hours low", "hours high"]].sum()
    return (f"{body}\n\ntotal: {int(total['jobs'])} jobs, {int(total['fits'])} fits, estimated "
            f"{_duration(total['hours low'])} to {_duration(total['hours high'])} on this machine ({device}), one fit "
            f"after another\nestimate: a probe of each configuration ({probe_epochs} epochs timed whole after a "
            "warm-up fit, one neuron for "
            "single-unit fits, the whole population otherwise, seed-0 split) gives seconds per epoch; x epochs per "
            "fit (low: patience + 1, early stopping at the earliest; high: max_epochs) x fits. Stacked single "
            "units run faster than this; job start-up overheads are not included.")


def _duration(hours: float) -> str:
    if not hours == hours:  # NaN: no probe
        return "?"
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.0f} s"


def job_table(configs, seeds, out_csv, root="data", chunk_size=None) -> pd.DataFrame:
    """Status of every job of the sweep: job_id, dataset, model, prefilter, seed, neurons,
    status ("done", "failed", "queued" for submitted and still queued/running, "missing"),
    error and log (failed jobs)."""
    planned = runner.plan_jobs(configs, seeds, root, chunk_size)
    folder = jobs.jobs_dir(out_csv)
    status = jobs.job_status(planned, folder, jobs.read_table(out_csv, runner.RESULT_COLUMNS, damaged="quarantine"),
                             runner.RESULT_COLUMNS)
    queued = jobs.read_submissions(folder)
    errors = jobs.read_errors(folder).set_index("job_id")
    rows = []
    for job, st in zip(planned, status):
        if st != "done" and in_flight(queued.get(job.job_id), folder / "logs"):
            st = "queued"
        err = errors.loc[job.job_id] if st == "failed" and job.job_id in errors.index else None
        rows.append({"job_id": job.job_id, "dataset": job.config["dataset"], "model": job.config["model"],
                     "prefilter": job.config["prefilter"] or "none", "seed": job.seed,
                     "neurons": f"{job.start}-{job.stop}", "status": st,
                     "error": None if err is None else err["error"], "log": None if err is None else err["log"]})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deepstrf_utils.runs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--datasets", default="", help="comma list; empty: the profile's default")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--results-dir", default="build/results")
    ap.add_argument("--executor", default="slurm", choices=EXECUTORS)
    ap.add_argument("--cluster-config", default="", help="JSON or TOML file of cluster options")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="cluster option overriding the file, e.g. partition=gpu (repeatable)")
    ap.add_argument("--plan", action="store_true", help="print the cost plan and exit")
    ap.add_argument("--probe-epochs", type=int, default=2)
    ap.add_argument("--status", action="store_true", help="list the jobs' status, submit nothing")
    args = ap.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("deepstrf_utils").setLevel(logging.INFO)
    try:
        profile = get_profile(args.profile)
        profile, names = profile.resolve_datasets(args.datasets, args.data_root)
        cluster = cluster_options(args.cluster_config, args.set)
    except (ValueError, FileNotFoundError) as err:
        print(f"[sweep] {err}", file=sys.stderr)
        return 2
    configs, seeds = profile.configs(names), list(profile.seeds)
    # absolute: the jobs may start in another folder (a Slurm node)
    args.data_root, args.results_dir = Path(args.data_root).resolve(), Path(args.results_dir).resolve()
    out_csv = profile.results_csv(args.results_dir)
    chunk = cluster.get("neurons_per_job")
    device = training.resolve_device(args.device).type
    if args.plan:
        table = plan_table(configs, seeds, args.data_root, chunk, args.probe_epochs, device)
        print(f"cost plan of profile '{profile.name}' on {', '.join(names)}:\n")
        print(format_plan(table, device, args.probe_epochs))
        return 0
    if not args.status:
        runner.run_configs(configs, seeds, out_csv, root=args.data_root, device=args.device,
                           checkpoint_dir=profile.checkpoint_dir(args.results_dir), executor=args.executor,
                           cluster=cluster, wait=False)
    table = job_table(configs, seeds, out_csv, args.data_root, chunk)
    counts = table["status"].value_counts()
    print(f"[sweep] {len(table)} jobs: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in
                                                  ("done", "queued", "failed", "missing")))
    for row in table[table["status"] == "failed"].itertuples():
        print(f"  FAILED {row.job_id} ({row.dataset} {row.model} {row.prefilter}, seed {row.seed}, neurons "
              f"{row.neurons}): {row.error}\n    log: {row.log}")
    if counts.get("done", 0) == len(table):
        print(f"[sweep] complete: {out_csv} (run `make figures` with the same PROFILE for the figures)")
    else:
        print("[sweep] run the same command again to collect finished jobs and resubmit failed or lost ones")
    return 0


def cluster_options(path: str = "", overrides=()) -> dict:
    """Cluster options from the file ``path`` (if any) and ``KEY=VALUE`` overrides (empty values ignored)."""
    options = read_cluster_config(path) if path else {}
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ValueError(f"expected a cluster option as KEY=VALUE, got {item!r}")
        if value.strip():
            options[key.strip()] = _number(value.strip())
    return check_cluster_options(options)


def _number(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


if __name__ == "__main__":
    sys.exit(main())
