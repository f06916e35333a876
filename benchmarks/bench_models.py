"""Time one training step (forward + backward + AdamW) of each response model.

Usage: python benchmarks/bench_models.py [--bins 999] [--bands 34] [--repeats 20] [--threads 2]

Prints a table: model, prefilter, parameters, median ms per step. Also times the bare stack
of three Conv2d layers (kernel (6, 15), 10 channels) that bounds ConvNet2D from below.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from deepstrf_utils.models import MODELS, count_parameters


def time_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> float:
    """Median wall time (ms) of one forward + MSE backward + AdamW step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if i >= 3:  # warm-up
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


class BareConvs(nn.Module):
    """Three Conv2d (kernel (6, 15), 10 channels) with causal padding, nothing else."""

    def __init__(self, in_channels=2):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(in_channels if i == 0 else 10, 10, (6, 15)) for i in range(3))

    def forward(self, x):
        for conv in self.convs:
            x = conv(F.pad(x, (14, 0)))
        return x.mean(dim=(1, 2))[:, None, :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bins", type=int, default=999)
    parser.add_argument("--bands", type=int, default=34)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(1, 1, args.bands, args.bins)
    rows = []
    bare = BareConvs(2)
    rows.append(("bare 3 x Conv2d (2 ch in)", "-", count_parameters(bare),
                 time_step(bare, torch.rand(1, 2, args.bands, args.bins), torch.rand(1, 1, args.bins), args.repeats)))
    for name in args.models:
        for prefilter in (None, "adaptrans"):
            model = MODELS[name](args.bands, n_neurons=1, prefilter=prefilter)
            y = torch.rand(1, 1, args.bins)
            rows.append((name, str(prefilter), count_parameters(model), time_step(model, x, y, args.repeats)))
    print(f"one training step, input (1, 1, {args.bands}, {args.bins}), {args.threads} threads, "
          f"torch {torch.__version__}")
    print(f"{'model':28s} {'prefilter':10s} {'params':>8s} {'ms/step':>9s}")
    for name, pre, n, ms in rows:
        print(f"{name:28s} {pre:10s} {n:8d} {ms:9.1f}")


if __name__ == "__main__":
    main()
