"""Speed of the AdapTrans implementations (depthwise conv1d vs FFT), forward + backward.

Prints one table row per implementation x K x T (B = 20, F = 34 by default): the median
time of a training step through the prefilter (kernels rebuilt from the parameters, the
filtering, and the backward pass to the parameters and the input), and, per K x T, the
maximum absolute difference between the implementations' outputs.

    python benchmarks/bench_adaptrans.py [--reps 3] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from deepstrf_utils.adaptrans import AdapTrans, _choose_implementation


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(model: AdapTrans, x: torch.Tensor, reps: int) -> float:
    """Median wall time (ms) of forward + backward of ``model(x).square().mean()``."""
    times = []
    for i in range(reps + 1):  # first run is a warm-up
        model.zero_grad(set_to_none=True)
        x.grad = None
        _sync(x.device)
        t0 = time.perf_counter()
        model(x).square().mean().backward()
        _sync(x.device)
        if i > 0:
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--bands", type=int, default=34)
    p.add_argument("--kernel-sizes", type=int, nargs="+", default=[131, 651, 1301])
    p.add_argument("--bins", type=int, nargs="+", default=[999, 5000])
    p.add_argument("--implementations", nargs="+", default=["conv", "fft"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    print(f"AdapTrans forward+backward, B={args.batch}, F={args.bands}, device={device}, "
          f"threads={torch.get_num_threads()}, median of {args.reps}")
    head = f"{'impl':>6} {'K':>6} {'T':>6} {'ms':>10} {'auto picks':>11} {'max|diff|':>10}"
    print(head)
    print("-" * len(head))
    for K in args.kernel_sizes:
        for T in args.bins:
            x = torch.rand(args.batch, 1, args.bands, T, device=device, requires_grad=True)
            outs = {}
            for impl in args.implementations:
                m = AdapTrans(args.bands, kernel_size=K, implementation=impl).to(device)
                ms = time_step(m, x, args.reps)
                with torch.no_grad():
                    outs[impl] = m(x)
                diff = ""
                if len(outs) > 1:
                    ref = next(iter(outs.values()))
                    diff = f"{(outs[impl] - ref).abs().max().item():.2e}"
                auto = _choose_implementation(K, T, device)
                print(f"{impl:>6} {K:>6} {T:>6} {ms:>10.1f} {auto:>11} {diff:>10}", flush=True)


if __name__ == "__main__":
    main()
