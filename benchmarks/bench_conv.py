"""One 2D-CNN convolution block, forward + backward, by implementation (issue 11). Prints a table.

For each shape (B stimuli, C input channels, F bands, T bins, kernel (k_f, k_t), 10 output
channels, causal time padding as in ``ConvNet2D``): ``Conv2d`` on NCHW tensors, ``Conv2d`` on
channels-last tensors (oneDNN), and the frequency-domain block
``spectral.causal_conv2d_fft``; median wall time of ``--reps`` runs of forward + backward
(gradients for input, weight and bias). ``ConvNet2D(implementation="auto")`` picks among them
(``models.cnn.FFT_CONV_MIN_TAPS``, ``CHANNELS_LAST_MIN_BATCH``) from these numbers.

Usage::

    python benchmarks/bench_conv.py [--threads 1] [--reps 7]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from deepstrf_utils.spectral import causal_conv2d_fft  # noqa: E402

#: (B, C, F, T, kernel): NS1 (34 bands, (6, 15)) at batch 1 (the published protocol), 2, 4, and
#: the issue-11 single-neuron fit (12 songs of ~380 bins, 8 in a step); NAT4 ((3, 7), 18 bands)
SHAPES = [
    (1, 2, 34, 999, (6, 15)), (1, 10, 29, 999, (6, 15)), (2, 10, 29, 999, (6, 15)), (4, 10, 29, 999, (6, 15)),
    (12, 2, 32, 380, (6, 15)), (8, 10, 27, 380, (6, 15)),
    (1, 2, 18, 150, (3, 7)), (1, 10, 16, 999, (3, 7)), (16, 2, 18, 150, (3, 7)), (16, 10, 16, 150, (3, 7)),
]


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# bench_conv: {platform.node()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, median of {args.reps}\n")
    print("| B | C | F | T | kernel | Conv2d NCHW (ms) | Conv2d channels-last (ms) | FFT (ms) |")
    print("|---|---|---|---|---|---:|---:|---:|")
    for b, c, f, t, kernel in SHAPES:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(b, c, f, t, generator=g, requires_grad=True)
        w = torch.randn(10, c, *kernel, generator=g, requires_grad=True)
        bias = torch.randn(10, generator=g, requires_grad=True)

        def direct(fmt):
            def run():
                y = F.conv2d(F.pad(x.contiguous(memory_format=fmt), (kernel[1] - 1, 0)), w, bias)
                torch.autograd.grad(y.sum(), (x, w, bias))
            return run

        def fft():
            torch.autograd.grad(causal_conv2d_fft(x, w, bias).sum(), (x, w, bias))

        cells = [median_ms(direct(torch.contiguous_format), args.reps),
                 median_ms(direct(torch.channels_last), args.reps), median_ms(fft, args.reps)]
        print(f"| {b} | {c} | {f} | {t} | {kernel} | " + " | ".join(f"{v:.1f}" for v in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
