"""Cost of dSTRFs (deepstrf_utils.interpret.dstrf) on NS1-sized data: time and peak memory.

The target configuration is a 2D-CNN + AdapTrans population model (NS1: F = 34 bands,
kernel (6, 15), 3 blocks, AdapTrans 131 taps -> receptive field R = 173 bins) with 64 output
neurons, on one 1,000-bin stimulus, K = R lags. The computation needs exactly N x R
forward + backward passes of the model over the stimulus (batch copies), so its time is
linear in the number of neurons (``--method direct``: N x R passes; ``chain``, the default
for an AdapTrans model: N x Rc passes of the core, Rc = 43, then the exact chain rule through
AdapTrans): each run measures ``--neurons`` of them (in one process,
so that its peak RSS is its own), and the table extrapolates to 64. The comparison row is
the naive exact method, one backward pass per (neuron, bin): N x T passes.

    python benchmarks/bench_interpret.py [--neurons 1] [--bins 1000] [--repeats 3] [--threads 2]

Prints a markdown table: median wall time of ``--repeats`` runs (a fresh process each), the
extrapolation to 64 neurons, and the peak RSS of the process (MiB; ``ru_maxrss``) with the
size of the returned tensor.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def worker(args) -> dict:
    import torch

    from deepstrf_utils.interpret.dstrf import dstrf, receptive_field
    from deepstrf_utils.models import ConvNet2D, LinearNonlinear

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model == "ConvNet2D":
        model = ConvNet2D(34, n_neurons=64, prefilter="adaptrans").eval()
    else:
        model = LinearNonlinear(34, n_neurons=64, n_lags=20, prefilter="adaptrans").eval()
    x = torch.rand(34, args.bins, generator=torch.Generator().manual_seed(1))
    R = receptive_field(model)["total"]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    d = dstrf(model, x, neurons=list(range(args.neurons)), batch_size=args.batch_size, method=args.method)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    core = receptive_field(model)["core"]
    return {"wall_s": wall, "peak_mib": peak, "base_mib": base, "R": R, "core": core, "shape": list(d.shape),
            "out_mib": d.numel() * 4 / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ConvNet2D", choices=["ConvNet2D", "LinearNonlinear"])
    p.add_argument("--neurons", type=int, default=1)
    p.add_argument("--bins", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--method", default="auto", choices=["auto", "chain", "direct"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    runs = []
    for _ in range(args.repeats):
        cmd = [sys.executable, __file__, "--worker", "--model", args.model, "--neurons", str(args.neurons),
               "--bins", str(args.bins), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
               "--method", args.method]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        runs.append(json.loads(out))
    r = runs[0]
    wall = statistics.median(x["wall_s"] for x in runs)
    per = wall / args.neurons
    stride = r["R"] if args.method == "direct" else r["core"]
    passes = args.neurons * stride
    walls = ", ".join(f"{x['wall_s']:.1f}" for x in runs)
    print(f"dSTRFs of {args.model} + AdapTrans (64 outputs), T = {args.bins} bins, K = R = {r['R']}, "
          f"batch {args.batch_size}, {args.threads} threads, median of {args.repeats} runs (fresh process each); "
          f"wall times per run: {walls} s")
    print("| model | method | neurons measured | passes (N x R or N x Rc) | time (s) | s / neuron | 64 neurons (extrapolated) "
          "| naive N x T passes, 64 neurons (extrapolated) | peak RSS (MiB) | output (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    naive = f"{64 * per * args.bins / stride / 60:.0f} min" if args.method == "direct" else "- (run --method direct)"
    print(f"| {args.model} + AdapTrans | {args.method} | {args.neurons} | {passes} | {wall:.1f} | {per:.1f} | {64 * per / 60:.1f} min "
          f"| {naive} | {statistics.median(x['peak_mib'] for x in runs):.0f} "
          f"(at start {r['base_mib']:.0f}) | {r['out_mib']:.0f} |")


if __name__ == "__main__":
    main()
