"""Spread over seeds of the two synthetic experiments of notebooks 03 / 05 (several sessions,
behavioural state): ``deepstrf_utils.runs.sessions_state`` at a profile's sizes, one row per seed.

Prints, as markdown: per seed, the state-gain recovery r and the mean CCnorm (reliable
neurons) of LN without / with the state gain, and of the smallest session's NRF alone / with
the shared core; then the summary over seeds (``sessions_state_table``) and CPU time.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sessions_state.py --profile quick --seeds 0-7
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from deepstrf_utils.report.tables import markdown_table, sessions_state_seeds, sessions_state_table  # noqa: E402
from deepstrf_utils.runs.sessions_state import SIZES, sessions_experiment, state_experiment  # noqa: E402


def _seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", choices=sorted(SIZES))
    ap.add_argument("--seeds", default="0-7", help="e.g. 0-7 or 8-15 or 0,3,5")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("deepstrf_utils").setLevel(logging.ERROR)
    size = SIZES[args.profile]
    parts, cpu = [], {}
    for seed in _seeds(args.seeds):
        c0 = time.process_time()
        parts += [state_experiment(size, seed), sessions_experiment(size, seed)]
        cpu[seed] = time.process_time() - c0
    import pandas as pd

    results = pd.concat(parts, ignore_index=True)
    per_seed = sessions_state_seeds(results)
    print(f"profile {args.profile}, seeds {args.seeds}, {args.threads} thread(s); CPU s per seed (both experiments): "
          f"median {pd.Series(cpu).median():.1f}\n")
    for exp in ("state_gain", "shared_core"):
        print(markdown_table(per_seed[per_seed["experiment"] == exp], digits=2), "\n")
    print(markdown_table(sessions_state_table(results), digits=2))


if __name__ == "__main__":
    main()
