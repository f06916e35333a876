"""Training speed benchmarks (prints markdown tables; numbers go to benchmarks/README.md).

1. time per epoch of every model, with and without AdapTrans, on NS1-shaped data
   (34 bands, 999 bins of 5 ms, 20 stimuli, 1 neuron, batch_size 8 -> 3 steps per epoch);
2. batched single-unit fitting of U neurons (``fit_single_units``) against a loop of U
   separate ``fit`` calls, same epochs (the loop is timed on a few units and scaled to U);
3. one training step (forward + backward + AdamW) of the NS1 ConvNet2D with AdapTrans on
   one 5 s stimulus (1, 1, 34, 999), against a bare stack of its three convolutions;
4. peak resident memory (``resource.getrusage``) of the whole run.

Usage::

    python benchmarks/bench_training.py            # full run (several minutes on 2 cores)
    python benchmarks/bench_training.py --quick    # seconds: smaller U, fewer epochs
    python benchmarks/bench_training.py --only step,batched --units 64 --device cpu
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from deepstrf_utils.datasets import ResponseDataset  # noqa: E402
from deepstrf_utils.models import build_model, count_parameters  # noqa: E402
from deepstrf_utils.training import fit, fit_single_units  # noqa: E402

F_NS1, T_NS1, B_NS1 = 34, 999, 20

MODELS = {
    "Linear": {},
    "LinearNonlinear": {},
    "NetworkReceptiveField": {},
    "DNet": {},
    "ConvNet2D": {},
    "PopulationCNN": {},
    "StateNet": {},
}


def ns1_like(n_neurons: int, n_stimuli: int = B_NS1, n_repeats: int = 2, seed: int = 0) -> ResponseDataset:
    """Random NS1-shaped data: n_stimuli spectrograms (34, 999), responses (N, R, 999)."""
    rng = np.random.default_rng(seed)
    stims = [rng.random((F_NS1, T_NS1), dtype=np.float32) for _ in range(n_stimuli)]
    resps = [rng.poisson(0.2, size=(n_neurons, n_repeats, T_NS1)).astype(np.float32) for _ in range(n_stimuli)]
    return ResponseDataset(stims, resps, dt_ms=5.0, cf_hz=NS1_CF, name="ns1-like")


#: rectification of AdapTrans in every benchmark ("relu": the models' default; set by --rectify)
ADAPTRANS_KWARGS = {}


#: the band centres of ns1_like (the models are built on the data's bands)
NS1_CF = [float(v) for v in np.geomspace(500, 22627, F_NS1)]


def build(name, prefilter, n_neurons=1):
    kw = {"prefilter_kwargs": {**ADAPTRANS_KWARGS, "cf_hz": NS1_CF}} if prefilter == "adaptrans" else {}
    return build_model(name, n_bands=F_NS1, n_neurons=n_neurons, dt_ms=5.0, prefilter=prefilter,
                       **MODELS[name], **kw)


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print(flush=True)


def bench_epochs(args):
    ds = ns1_like(1)
    rows = []
    for name in args.models:
        for pre in (None, "adaptrans"):
            torch.manual_seed(0)
            model = build(name, pre)
            # one warm-up epoch, then timed epochs (no validation, no early stopping)
            fit(model, ds, None, optimizer="adamw", max_epochs=1, batch_size=8, device=args.device, progress=False)
            t0 = time.perf_counter()
            fit(model, ds, None, optimizer="adamw", max_epochs=args.epochs, batch_size=8, device=args.device,
                progress=False)
            per = (time.perf_counter() - t0) / args.epochs
            rows.append((name, pre or "-", f"{count_parameters(model):,}", f"{per:.2f}"))
    print(f"### Time per epoch, NS1-shaped (20 x (34, 999), batch 8, 1 neuron, {args.epochs} epochs)\n")
    table(["model", "prefilter", "parameters", "s / epoch"], rows)


def bench_batched(args):
    U = args.units
    ds = ns1_like(U)
    val = ns1_like(U, n_stimuli=2, seed=1)
    rows = []
    kw = dict(optimizer="adamw", max_epochs=args.epochs, patience=None, batch_size=8, device=args.device,
              progress=False)
    stack_kw = {"max_stack": args.max_stack} if args.max_stack else {}
    for name in args.batched_models:
        for pre in (None, "adaptrans"):
            def model_fn(s, name=name, pre=pre):
                return build(name, pre)

            # warm-up on 2 units
            fit_single_units(model_fn, ds, val, neurons=[0, 1], batched=True, **{**kw, "max_epochs": 1})
            t0, c0 = time.perf_counter(), time.process_time()
            _, res = fit_single_units(model_fn, ds, val, batched=True, **kw, **stack_kw)
            t_batched, c_batched = time.perf_counter() - t0, time.process_time() - c0
            n_loop = min(args.loop_units, U)
            fit(model_fn(0), ds.select([0]), val.select([0]), **{**kw, "max_epochs": 1})  # warm-up
            t0, c0 = time.perf_counter(), time.process_time()
            for u in range(n_loop):
                torch.manual_seed(0)
                fit(model_fn(0), ds.select([u]), val.select([u]), **kw)
            t_loop = (time.perf_counter() - t0) * U / n_loop
            c_loop = (time.process_time() - c0) * U / n_loop
            rows.append((name, pre or "-", U, "yes" if res[0].batched else "no (loop)", f"{t_batched:.1f}",
                         f"{t_loop:.1f}" + ("" if n_loop == U else f" (from {n_loop})"),
                         f"{t_loop / t_batched:.1f}x", f"{c_loop / c_batched:.1f}x"))
    print(f"### {U} single units: batched fit_single_units vs. a loop of fit ({args.epochs} epochs, "
          f"20 x (34, 999), batch 8{f', max_stack {args.max_stack}' if args.max_stack else ''})\n")
    table(["model", "prefilter", "units", "vmapped", "batched (s)", "loop (s)", "speed-up (wall)",
           "speed-up (CPU time)"], rows)


def bench_step(args):
    dev = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    x = torch.rand(1, 1, F_NS1, T_NS1, device=dev)
    y = torch.rand(1, 1, T_NS1, device=dev)
    rows = []

    def timed(model, forward, n):
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        times = []
        for i in range(n + 3):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = forward(x)
            loss = ((out - y) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times), 1000 * min(times)

    for pre in ("adaptrans", None):
        for impl in ("auto", "conv"):  # "auto": the blocks in the frequency domain on a CPU
            torch.manual_seed(0)
            model = build("ConvNet2D", pre).to(dev).train()
            model.implementation = impl
            med, best = timed(model, model, args.steps)
            rows.append((f"ConvNet2D{' + AdapTrans' if pre else ''} ({model.conv_path(dev, x.shape[0])})",
                         f"{count_parameters(model):,}", f"{med:.1f}", f"{best:.1f}"))
    # bare stack of the same three convolutions (C = 2 -> 10 -> 10 -> 10, kernel (6, 15), causal pad)
    convs = torch.nn.Sequential(*[torch.nn.Conv2d(2 if i == 0 else 10, 10, (6, 15)) for i in range(3)]).to(dev)
    x2 = torch.rand(1, 2, F_NS1, T_NS1, device=dev)

    def bare(_):
        h = x2
        for c in convs:
            h = c(torch.nn.functional.pad(h, (14, 0)))
        return h.mean((1, 2)).unsqueeze(1)

    med, best = timed(convs, bare, args.steps)
    rows.append(("bare 3 x Conv2d (2 -> 10 ch, (6, 15))", f"{count_parameters(convs):,}", f"{med:.1f}", f"{best:.1f}"))
    print(f"### One training step (forward + backward + AdamW) on (1, 1, 34, 999), {args.steps} steps\n")
    table(["model", "parameters", "median (ms)", "best (ms)"], rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes for a fast check")
    p.add_argument("--only", default="epochs,batched,step", help="comma list of: epochs, batched, step")
    p.add_argument("--device", default="cpu")
    p.add_argument("--units", type=int, default=None, help="neurons for the batched benchmark (default 64)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--models", default=None, help="comma list restricting the models of every benchmark")
    p.add_argument("--max-stack", type=int, default=None, help="fit_single_units(max_stack=...) (memory bound)")
    p.add_argument("--loop-units", type=int, default=None, help="units timed in the loop (scaled to --units)")
    p.add_argument("--rectify", choices=["relu", "none"], default="relu",
                   help="AdapTrans outputs: relu (the models' default) or none (linear: fused STRF path)")
    args = p.parse_args(argv)
    if args.rectify == "none":
        ADAPTRANS_KWARGS["rectify"] = None
    if args.threads:
        torch.set_num_threads(args.threads)
    args.units = args.units or (8 if args.quick else 64)
    args.epochs = args.epochs or (1 if args.quick else 3)
    args.loop_units = args.loop_units or (2 if args.quick else 8)
    args.steps = 5 if args.quick else 30
    args.models_all = ["Linear", "ConvNet2D"] if args.quick else list(MODELS)
    args.batched_models = ["Linear"] if args.quick else ["Linear", "LinearNonlinear", "NetworkReceptiveField",
                                                          "DNet", "ConvNet2D"]
    print(f"# bench_training.py  {time.strftime('%Y-%m-%d %H:%M')}  torch {torch.__version__}  "
          f"{platform.processor() or platform.machine()}  {os.cpu_count()} CPUs, {torch.get_num_threads()} threads"
          f"{'  (quick)' if args.quick else ''}\n")
    if args.models:
        keep = args.models.split(",")
        args.models = [m for m in keep if m in MODELS]
        args.batched_models = [m for m in args.batched_models if m in keep]
    else:
        args.models = args.models_all
    only = set(args.only.split(","))
    t0 = time.perf_counter()
    if "step" in only:
        bench_step(args)
    if "epochs" in only:
        bench_epochs(args)
    if "batched" in only:
        bench_batched(args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS: {peak:.0f} MiB; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
