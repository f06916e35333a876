"""Per-job overhead of the runner's executors (prints a markdown table for benchmarks/README.md).

A tiny grid (Linear, 1 epoch, 4 synthetic neurons in jobs of one neuron each) is run with
``run_configs`` in this process (``executor="local"``) and with submitit's local executor
(``executor="submitit-local"``, one subprocess at a time), each ``--reps`` times into a fresh
folder. Overhead per job = (submitit-local wall - in-process wall) / jobs: the start of a
Python process that imports torch and the package, unpickling, loading the (cached)
dataset, and the polling of the parent.

Usage::

    python benchmarks/bench_jobs.py [--reps 3] [--jobs 4]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from deepstrf_utils import runner  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=4, help="jobs of one neuron each")
    args = ap.parse_args(argv)
    n = int(args.jobs)
    config = {"dataset": "synthetic", "dataset_options": {"n_neurons": n, "n_clips": 6, "clip_s": 1.0,
                                                          "n_bands": 16, "n_repeats": 4},
              "model": "Linear", "model_kwargs": {"n_lags": 6}, "fit_kwargs": {"max_epochs": 1, "batch_size": 4}}
    walls = {"local": [], "submitit-local": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        runner.run_configs([config], [0], Path(tmp) / "warm.csv", root=root, device="cpu", progress=False)
        for rep in range(args.reps):
            for ex in walls:
                t0 = time.perf_counter()
                df = runner.run_configs([config], [0], Path(tmp) / f"{ex}_{rep}.csv", root=root, device="cpu",
                                        progress=False, executor=ex, chunk_size=1)
                walls[ex].append(time.perf_counter() - t0)
                assert len(df) == n, f"expected {n} rows from {ex}, got {len(df)}"
    loc, sub = statistics.median(walls["local"]), statistics.median(walls["submitit-local"])
    print(f"{platform.node()} ({os.cpu_count()} cores), torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}, "
          f"{time.strftime('%Y-%m-%d')}; {n} jobs of one neuron, median of {args.reps} runs\n")
    print("| executor | wall per grid (s) | per job (s) | runs (s) |")
    print("|---|---:|---:|---|")
    for ex, vals in walls.items():
        print(f"| {ex} | {statistics.median(vals):.2f} | {statistics.median(vals) / n:.2f} | "
              f"{', '.join(f'{v:.1f}' for v in vals)} |")
    print(f"\noverhead per job (submitit-local - in-process): {(sub - loc) / n:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
