"""Cost of the stimulus check (``shapes.check_stimulus``: shape, dtype and one finite pass)
against one forward (eval, no gradient) and one forward + backward of every model, on an
NS1-size batch: B = 20 stimuli of 999 bins, F = 34 bands.

A model call runs the check once, and once more when it calls its AdapTrans / Willmore
prefilter module (a public module of its own; the fused AdapTrans + STRF path of L / LN
reads only the prefilter's kernels). The table gives the check alone, then per model the
forward and forward + backward times and the share of the checks in them (``checks`` =
the checks one forward runs, counted). Median of ``--repeats`` runs,
wall and CPU (``time.process_time``) time.

    python benchmarks/bench_stimulus_check.py [--threads 1] [--batch 20] [--repeats 7]
"""
from __future__ import annotations

import argparse
import os

import torch

from deepstrf_utils import adaptrans
from deepstrf_utils.models import base
from deepstrf_utils.models.registry import MODELS
from deepstrf_utils.shapes import check_stimulus
from _timing import median_wall_cpu

#: NS1 constructor values of the published models (34 bands, 1 neuron)
NS1_KWARGS = {"Linear": {"n_lags": 20}, "LinearNonlinear": {"n_lags": 20}, "NetworkReceptiveField": {"n_lags": 20},
              "DNet": {"n_lags": 20}, "ConvNet2D": {}, "StateNet": {}, "PopulationCNN": {}}


def _median_ms(fn, repeats: int) -> tuple[float, float]:
    wall, cpu = median_wall_cpu(fn, repeats)
    return 1e3 * wall, 1e3 * cpu


def _checks_per_call(model, x) -> int:
    """How many times one forward of ``model`` runs the stimulus check."""
    calls = []

    def counted(*a, **k):
        calls.append(1)
        return check_stimulus(*a, **k)

    saved = base.check_stimulus, adaptrans.check_stimulus
    base.check_stimulus = adaptrans.check_stimulus = counted
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        base.check_stimulus, adaptrans.check_stimulus = saved
    return len(calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--bins", type=int, default=999)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 34, args.bins)
    print(f"stimulus check vs model calls, B={args.batch}, F=34, T={args.bins}, threads={args.threads}, "
          f"median of {args.repeats}, load {os.getloadavg()[0]:.2f}")
    check_w, check_c = _median_ms(lambda: check_stimulus(x, 34, torch.float32), args.repeats)
    print(f"check_stimulus alone: {check_w:.3f} ms wall, {check_c:.3f} ms CPU")
    naive_w, naive_c = _median_ms(lambda: bool(torch.isfinite(x).all()), args.repeats)
    print(f"for comparison, bool(torch.isfinite(x).all()): {naive_w:.3f} ms wall, {naive_c:.3f} ms CPU\n")
    head = f"{'model':<24}{'prefilter':<11}{'checks':>7}{'fwd ms':>10}{'share':>8}{'fwd+bwd ms':>12}{'share':>8}"
    print(head)
    print("-" * len(head))
    for name, cls in MODELS.items():
        for prefilter in (None, "adaptrans"):
            model = cls(34, 1, prefilter=prefilter, **NS1_KWARGS[name])
            checks = _checks_per_call(model, x)

            def forward():
                model.eval()
                with torch.no_grad():
                    model(x)

            def step():
                model.train()
                model.zero_grad(set_to_none=True)
                model(x).square().mean().backward()

            fwd, _ = _median_ms(forward, args.repeats)
            both, _ = _median_ms(step, max(3, args.repeats // 2))
            cost = checks * check_w
            print(f"{name:<24}{str(prefilter):<11}{checks:>7}{fwd:>10.1f}{100 * cost / fwd:>7.1f}%"
                  f"{both:>12.1f}{100 * cost / both:>7.1f}%")


if __name__ == "__main__":
    main()
