"""Time the metrics on a NAT4-sized test set and a small one; prints a table.

    python benchmarks/bench_metrics.py [--repeats 3] [--threads N] [--cpu-time]
        [--sizes nat4,ns1] [--layouts complete,structured,general]

Sizes: NAT4 A1 test set (777 neurons x 18 stimuli x 20 repeats x 150 bins, float32) and
an NS1-like one (73 neurons x 4 stimuli x 20 repeats x 999 bins). Layouts: complete (no
NaN), structured (whole trials missing in some stimuli, padding) and general (scattered
missing cells, the slow exact path). Times are medians over --repeats runs: wall-clock,
or process CPU time with --cpu-time (steadier on a shared machine; with one thread it is
close to the wall time on an idle one).
"""

from __future__ import annotations

import argparse
import time

import torch

from deepstrf_utils import metrics as M

SIZES = {  # key: (label, (B, N, R, T))
    "nat4": ("NAT4 A1 (777x18x20x150)", (18, 777, 20, 150)),
    "ns1": ("NS1-like (73x4x20x999)", (4, 73, 20, 999)),
}


def make_data(B, N, R, T, layout, seed=0):
    """(pred (B, N, T), resp (B, N, R, T)) float32 with the given missing-data layout."""
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(B, N, 1, T, generator=g) * 3.0
    resp = torch.poisson(rate.expand(B, N, R, T).contiguous(), generator=g)
    pred = rate[:, :, 0] + 0.5 * torch.rand(B, N, T, generator=g)
    if layout == "structured":
        resp[0, :, R // 2:] = float("nan")  # stimulus 0 has half the repeats
        resp[-1, :, :, T - T // 5:] = float("nan")  # last stimulus is shorter
    elif layout == "general":
        resp[torch.rand(resp.shape, generator=g) < 0.02] = float("nan")
    return pred, resp


def median_time(fn, repeats, clock=time.perf_counter):
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--layouts", default="complete,structured,general")
    parser.add_argument("--sizes", default="nat4,ns1", help=f"comma-separated, from {sorted(SIZES)}")
    parser.add_argument("--cpu-time", action="store_true", help="time process CPU, not wall")
    args = parser.parse_args()
    unknown = sorted(set(args.sizes.split(",")) - set(SIZES))
    if unknown:
        parser.error(f"unknown size(s) {unknown}; expected names from {sorted(SIZES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    funcs = {
        "cc_raw": lambda p, r: M.cc_raw(p, r),
        "cc_norm": lambda p, r: M.cc_norm(p, r),
        "cc_max": lambda p, r: M.cc_max(r),
        "ttrc": lambda p, r: M.ttrc(p, r),
        "fev": lambda p, r: M.fev(p, r),
        "score (all)": lambda p, r: M.score(p, r),
    }
    clock = time.process_time if args.cpu_time else time.perf_counter
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}, "
          f"{'CPU' if args.cpu_time else 'wall'} time")
    header = f"{'size':26s} {'layout':11s} " + " ".join(f"{k:>12s}" for k in funcs)
    print(header)
    print("-" * len(header))
    for size_key in args.sizes.split(","):
        size_name, shape = SIZES[size_key]
        for layout in args.layouts.split(","):
            pred, resp = make_data(*shape, layout)
            cells = []
            for fn in funcs.values():
                fn(pred, resp)  # warm-up
                cells.append(median_time(lambda: fn(pred, resp), args.repeats, clock))
            print(f"{size_name:26s} {layout:11s} " + " ".join(f"{t * 1e3:10.0f}ms" for t in cells))


if __name__ == "__main__":
    main()
