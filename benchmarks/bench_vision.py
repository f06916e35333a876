"""Time the visual models on a movie batch: forward + backward (+ AdamW step) per model.

Usage: python benchmarks/bench_vision.py [--batch 8] [--size 16] [--frames 160] [--neurons 16]
                                         [--repeats 10] [--threads 1] [--device cpu|cuda]

Prints a table: model, prefilter, parameters, median wall ms and CPU ms per training step
(forward, MSE backward, AdamW) on movies ``(B, 1, size, size, frames)`` and N neurons, and
the same for PixelAdapTrans alone (forward + backward). On a GPU the wall time is measured
after ``torch.cuda.synchronize()``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from deepstrf_utils.models import PixelAdapTrans, VISUAL_MODELS, count_parameters

CONFIGS = {
    "VisualLinearNonlinear": {"n_lags": 8},
    "SpatioTemporalCNN": {"channels": [6], "spatial_kernels": [9], "temporal_kernels": [8], "readout": "factorised"},
    "SpatioTemporalCNN (gaussian)": {"channels": [6], "spatial_kernels": [9], "temporal_kernels": [8], "readout": "gaussian"},
    "SpatioTemporalCNN (2 layers)": {"channels": [8, 8], "spatial_kernels": [9, 5], "temporal_kernels": [8, 4]},
    "RecurrentVisualNet": {"channels": [6], "spatial_kernels": [9], "temporal_kernels": [4]},
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_step(step, repeats: int, device) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``step()`` over ``repeats`` runs after 2 warm-ups."""
    wall, cpu = [], []
    for i in range(repeats + 2):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        _sync(device)
        if i >= 2:
            wall.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.process_time() - c0))
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--frames", type=int, default=160)
    p.add_argument("--neurons", type=int, default=16)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    frame = (1, args.size, args.size)
    x = torch.rand(args.batch, *frame, args.frames, device=device)
    y = torch.rand(args.batch, args.neurons, args.frames, device=device)
    rows = []
    pre = PixelAdapTrans(frame, dt_ms=25.0, rectify="relu").to(device)
    xg = x.clone().requires_grad_(True)
    rows.append(("PixelAdapTrans alone (fwd + bwd)", "-", count_parameters(pre),
                 *time_step(lambda: pre(xg).square().mean().backward(), args.repeats, device)))
    for label, kwargs in CONFIGS.items():
        name = label.split(" ")[0]
        for prefilter in (None, "adaptrans"):
            model = VISUAL_MODELS[name](frame, args.neurons, prefilter=prefilter, dt_ms=25.0, **kwargs).to(device)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

            def step(model=model, opt=opt):
                opt.zero_grad(set_to_none=True)
                F.mse_loss(model(x), y).backward()
                opt.step()

            rows.append((label, str(prefilter), count_parameters(model), *time_step(step, args.repeats, device)))
    print(f"one training step on movies ({args.batch}, 1, {args.size}, {args.size}, {args.frames}), "
          f"{args.neurons} neurons, device {device}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'model':34s} {'prefilter':10s} {'params':>7s} {'wall ms':>9s} {'CPU ms':>9s}")
    for label, prefilter, n, wall, cpu in rows:
        print(f"{label:34s} {prefilter:10s} {n:7d} {wall:9.1f} {cpu:9.1f}")


if __name__ == "__main__":
    main()
