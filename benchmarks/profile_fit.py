"""Where the time of one fitting epoch goes, per model, on the bench_fit single-neuron data.

One epoch of ``fit`` (12 training songs, batch 8 -> 2 steps; then one validation pass over
4 songs) is split into: AdapTrans forward + backward (the prefilter alone, with the
gradient that the rest of the model would send), the rest of the forward + backward (STRF
/ convolutions / recurrence), the AdamW step, the validation pass, and the rest (Python:
batching, loss, checks, state copies) = measured epoch - the parts. For StateNet the GRU
is also timed alone. CPU time (time.process_time, robust to other jobs on the machine), medians of ``--reps`` repeats; 1 thread.

Usage::

    python benchmarks/profile_fit.py [--models Linear,StateNet] [--reps 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_fit import MODELS, SHORT, build, single_neuron_data, table  # noqa: E402
from deepstrf_utils.training import fit  # noqa: E402

import pandas as pd  # noqa: E402


def _median_time(fn, reps):
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return statistics.median(out)


def _stack(ds, idx):
    L = max(ds[i][0].shape[-1] for i in idx)
    x = torch.zeros(len(idx), 1, ds[0][0].shape[1], L)
    for j, i in enumerate(idx):
        s = ds[i][0]
        x[j, :, :, : s.shape[-1]] = s
    return x


def profile_model(name, data, reps):
    train, val, _, _ = data
    torch.manual_seed(0)
    model = build(name, train.cf_hz)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [_stack(train, list(range(0, 8))), _stack(train, list(range(8, 12)))]
    xval = _stack(val, list(range(4)))

    def pre_fb():
        for x in batches:
            z = model.prefilter(x)
            z.backward(torch.ones_like(z))

    def full_fb():
        for x in batches:
            y = model(x)
            y.square().mean().backward()

    def opt_step():
        for _ in batches:
            opt.step()

    @torch.no_grad()
    def valid():
        model.eval()
        model(xval)
        model.train()

    model.train()
    t_pre = _median_time(pre_fb, reps)
    t_full = _median_time(full_fb, reps)
    model.zero_grad()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    t_opt = _median_time(opt_step, reps)
    t_val = _median_time(valid, reps)
    row = {"model": SHORT[name], "params": sum(p.numel() for p in model.parameters())}
    # whole epochs through fit (no early stop): wall / epochs, minus the set-up (1 epoch run)
    torch.manual_seed(0)
    m1 = build(name, train.cf_hz)
    t0 = time.process_time()
    fit(m1, train, val, device="cpu", progress=False, max_epochs=1, patience=None)
    t_one = time.process_time() - t0
    n = max(2, reps)
    torch.manual_seed(0)
    m2 = build(name, train.cf_hz)
    t0 = time.process_time()
    fit(m2, train, val, device="cpu", progress=False, max_epochs=n + 1, patience=None)
    t_epoch = (time.process_time() - t0 - t_one) / n
    extra = {}
    if name == "StateNet":
        gru = model.rnn
        hs = [torch.randn(x.shape[0], x.shape[-1], gru.input_size) for x in batches]

        def gru_fb():
            for h in hs:
                out, _ = gru(h)
                out.sum().backward()
        extra["GRU f+b (s)"] = _median_time(gru_fb, reps)
    rest = t_epoch - t_full - t_opt - t_val
    row.update({
        "epoch (s)": t_epoch, "set-up (s)": t_one - t_epoch,
        "AdapTrans f+b": t_pre / t_epoch, "rest of f+b": (t_full - t_pre) / t_epoch,
        "AdamW": t_opt / t_epoch, "validation": t_val / t_epoch, "other (Python, loss, copies)": rest / t_epoch,
    })
    for k, v in extra.items():
        row[k.replace(" (s)", " share")] = v / t_epoch
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = single_neuron_data(0)
    rows = []
    for name in args.models.split(","):
        rows.append(profile_model(name, data, args.reps))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    for c in df.columns:
        if c not in ("model", "params", "epoch (s)", "set-up (s)"):
            df[c] = [f"{100 * v:.0f} %" if v == v else "" for v in df[c]]
    print(table(df))


if __name__ == "__main__":
    main()
