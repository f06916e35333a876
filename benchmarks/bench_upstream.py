"""Three workloads side by side with upstream deepstrf 0.1.0 (figures measured by issue 21 on 2 cores).

- ``ccnorm``: Schoppe CCnorm (``metrics.cc_norm``) of 18 stimuli x 777 neurons x 20 repeats x
  150 bins (NAT4 A1's test set), float32, no missing trial; and one pass over the recording
  (``resp.sum()``) as the floor.
- ``nrf``: NRF + AdapTrans (34 bands, 20 hidden units, 15 lags: NS1's protocol), one epoch of
  20 NS1-size stimuli (34 x 999 bins), batch 1: per stimulus forward, MSE to a target,
  backward, AdamW step (upstream's training step), with the library's AdamW
  (``training.optim.make_adamw``, as ``fit`` uses it).
- ``cnn``: the NS1 2D-CNN + AdapTrans (kernel (6, 15), 37,276 parameters), the same epoch;
  and a bare stack of its 3 convolutions (2 -> 10 -> 10 -> 10 channels, causal padding) as
  the floor.

Each row: median over ``--repeats`` runs (after one warm-up run) of the wall time and the
process CPU time, with the 1-minute load average before the row. Upstream's figures cannot
be run here; they are quoted as measured by the issue (2 cores).

Usage::

    python benchmarks/bench_upstream.py                      # every workload, torch's threads
    OMP_NUM_THREADS=1 python benchmarks/bench_upstream.py --threads 1 --repeats 7
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from deepstrf_utils.metrics import cc_norm  # noqa: E402
from deepstrf_utils.models import ConvNet2D, NetworkReceptiveField  # noqa: E402
from deepstrf_utils.training.optim import make_adamw  # noqa: E402
from _timing import median_wall_cpu as timed  # noqa: E402

#: upstream's times (s) and today's at the issue's filing (s), as measured by the issue on 2 cores
UPSTREAM = {"ccnorm": 3.0, "nrf": 0.641, "cnn": 30.1}
AT_FILING = {"ccnorm": 0.516, "nrf": 0.128, "cnn": 1.84}
GOAL = {"ccnorm": 20, "nrf": 10, "cnn": 25}
F_NS1, T_NS1, N_STIM = 34, 999, 20


def ccnorm_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(18, 777, 1, 150, generator=g) * 3.0
    resp = torch.poisson(rate.expand(18, 777, 20, 150).contiguous(), generator=g)
    pred = rate[:, :, 0] + 0.5 * torch.rand(18, 777, 150, generator=g)
    return pred, resp


def epoch_fn(model, stimuli, targets):
    opt, _, _ = make_adamw(model, lr=1e-3, weight_decay=0.0)
    model.train()

    def run():
        for x, y in zip(stimuli, targets):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def ns1_epoch_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    stimuli = [torch.rand(1, 1, F_NS1, T_NS1, generator=g) for _ in range(N_STIM)]
    targets = [torch.rand(1, 1, T_NS1, generator=g) for _ in range(N_STIM)]
    return stimuli, targets


class BareConvs(torch.nn.Module):
    """The 2D-CNN's three convolutions alone on a 2-channel input (the AdapTrans output's shape)."""

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(2 if i == 0 else 10, 10, (6, 15)) for i in range(3))

    def forward(self, x):
        h = x.expand(-1, 2, -1, -1)
        for c in self.convs:
            h = c(torch.nn.functional.pad(h, (14, 0)))
        return h.mean((1, 2)).unsqueeze(1)


def rows(which, repeats):
    out = []
    if "ccnorm" in which:
        pred, resp = ccnorm_data()
        load = os.getloadavg()[0]
        w, c = timed(lambda: cc_norm(pred, resp), repeats)
        out.append(("ccnorm", "Schoppe CCnorm, 18 x 777 x 20 x 150", w, c, load))
        load = os.getloadavg()[0]
        w, c = timed(lambda: resp.sum(), repeats)
        out.append(("", "  floor: one pass over the recording (resp.sum())", w, c, load))
    stimuli, targets = ns1_epoch_data()
    if "nrf" in which:
        torch.manual_seed(0)
        model = NetworkReceptiveField(F_NS1, n_hidden=20, n_lags=15, prefilter="adaptrans")
        load = os.getloadavg()[0]
        w, c = timed(epoch_fn(model, stimuli, targets), repeats)
        out.append(("nrf", "NRF + AdapTrans, epoch of 20 NS1 stimuli, batch 1", w, c, load))
    if "cnn" in which:
        torch.manual_seed(0)
        model = ConvNet2D(F_NS1, kernel_size=(6, 15), prefilter="adaptrans")
        load = os.getloadavg()[0]
        w, c = timed(epoch_fn(model, stimuli, targets), repeats)
        out.append(("cnn", "2D-CNN + AdapTrans (NS1), same epoch", w, c, load))
        torch.manual_seed(0)
        load = os.getloadavg()[0]
        w, c = timed(epoch_fn(BareConvs(), stimuli, targets), repeats)
        out.append(("", "  floor: bare stack of its 3 convolutions", w, c, load))
    return out


def fmt(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="ccnorm,nrf,cnn")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# bench_upstream: {platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), median of {args.repeats}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| workload | upstream (issue, 2 cores) | at filing (issue) | now: wall | now: CPU | load | "
          "speed-up vs upstream (wall) | goal |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, label, wall, cpu, load in rows(set(args.only.split(",")), args.repeats):
        up = UPSTREAM.get(key)
        cells = [label, fmt(up) if up else "", fmt(AT_FILING[key]) if key else "", fmt(wall), fmt(cpu),
                 f"{load:.1f}", f"{up / wall:.1f}x" if up else "", f">= {GOAL[key]}x" if key else ""]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
