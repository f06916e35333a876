"""Fitting benchmark: one neuron, fitted to its early stop (issue 11). Prints markdown tables.

Data (the shape of the issue's real recording): ONE synthetic ground-truth neuron
(``deepstrf_utils.datasets.synthetic``: rectified AdapTrans ON/OFF channels -> STRF ->
softplus, Poisson spikes), 20 songs cut to random lengths of 1.5-1.9 s (the generator
makes equal clips; cutting the end of a clip keeps the causal ground truth exact), 32
log-spaced bands, 5 ms bins, 10 trials; 12 training, 4 validation, 4 test songs (about
4,000 training bins).

For each model (L, LN, NRF, DNet, ConvNet2D, StateNet), each with AdapTrans, and each
``--modes`` entry, and each seed: wall time of the whole ``fit`` call (to its early stop),
epochs, best epoch, and test CCnorm (and the correlation with the true noiseless rate,
``cc_true``). ``ridge``: ``fit_ridge_strf`` on the same (rectified, initial) AdapTrans
channels, the closed-form reference.

Modes:
- ``today``: the published / pre-issue-11 defaults passed explicitly (AdamW lr 1e-3,
  weight decay 1e-2, batch 8, up to 1000 epochs, patience 50, no ridge start), i.e.
  ``training.ADAMW_FIT_KWARGS``;
- ``defaults``: ``fit(model, train, val)`` with the library's current defaults (since
  issue 11: full-batch L-BFGS, ridge start for L / LN; StateNet: AdamW on chunks of the
  sequences, ``training.options.RECURRENT_AUTO``);
- ``set:k=v+k=v...``: a prototype on the AdamW path (:func:`mode_kwargs`), e.g.
  ``set:lr=2e-3+patience=8+chunk=16x8+batch_size=4``.

Usage::

    python benchmarks/bench_fit.py                        # everything, 3 seeds (long: today's StateNet)
    python benchmarks/bench_fit.py --models Linear,LinearNonlinear --modes defaults --seeds 0
    python benchmarks/bench_fit.py --cap StateNet=120 --csv build/bench_fit.csv   # cap epochs, append a CSV
    python benchmarks/bench_fit.py --summary build/a.csv build/b.csv              # median tables of CSVs
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from _tables import markdown_rows  # noqa: E402

from deepstrf_utils.datasets import ResponseDataset  # noqa: E402
from deepstrf_utils.datasets.synthetic import generate_synthetic  # noqa: E402
from deepstrf_utils.models import build_model, fit_ridge_strf  # noqa: E402
from deepstrf_utils.training import evaluate, fit, predict  # noqa: E402

N_BANDS, DT_MS, N_REPEATS = 32, 5.0, 10
N_TRAIN, N_VAL, N_TEST = 12, 4, 4
MIN_S, MAX_S = 1.5, 1.9

MODELS = ("Linear", "LinearNonlinear", "NetworkReceptiveField", "DNet", "ConvNet2D", "StateNet")
SHORT = {"Linear": "L", "LinearNonlinear": "LN", "NetworkReceptiveField": "NRF", "DNet": "DNet",
         "ConvNet2D": "2D-CNN", "StateNet": "StateNet", "ridge": "ridge STRF"}

#: the settings `fit` used by default before issue 11 (the paper's protocol), passed explicitly
TODAY = dict(optimizer="adamw", init=None, lr=1e-3, weight_decay=1e-2, max_epochs=1000, patience=50, batch_size=8,
             scheduler=None, min_delta=0.0, rel_tol=0.0, prefilter_lr=None)

MODES = {"today": TODAY, "defaults": {}}
#: mode -> fitting function with fit's signature (default: training.fit)
FITTERS: dict = {}


def mode_kwargs(mode: str) -> dict:
    """A mode's ``fit`` arguments: a name of :data:`MODES`, or ``set:k=v+k=v...`` for a prototype
    on the AdamW path, e.g. ``set:lr=3e-3+patience=10+chunk=64x32+batch_size=8`` (``chunk=LxW``
    is ``train_chunk=(L, W)``, ``chunk=none`` whole stimuli)."""
    if mode in MODES:
        return dict(MODES[mode])
    if not mode.startswith("set:"):
        raise SystemExit(f"unknown mode {mode!r}; expected among {sorted(MODES)} or 'set:k=v+...'")
    out = dict(optimizer="adamw", init=None, max_epochs=1000, train_chunk=None)
    for item in mode[4:].split("+"):
        k, v = item.split("=")
        if k == "chunk":
            out["train_chunk"] = None if v == "none" else tuple(int(u) for u in v.split("x"))
        elif k in ("patience", "batch_size", "max_epochs"):
            out[k] = int(v)
        else:
            out[k] = float(v)
    return out


def single_neuron_data(data_seed: int = 0):
    """(train, val, test, true_test_rates): one ground-truth neuron, songs of 1.5-1.9 s.

    true_test_rates: list of (1, T_i) noiseless rates of the test songs (spikes / bin).
    """
    n_clips = N_TRAIN + N_VAL + N_TEST
    ds = generate_synthetic(n_neurons=1, n_clips=n_clips, clip_s=MAX_S + DT_MS / 1000.0, n_repeats=N_REPEATS,
                            dt_ms=DT_MS, n_bands=N_BANDS, seed=data_seed)
    rng = np.random.default_rng(1000 + data_seed)
    lengths = np.round(rng.uniform(MIN_S, MAX_S, n_clips) * 1000.0 / DT_MS).astype(int)
    stims = [np.asarray(s)[:, :n] for s, n in zip(ds.stimuli, lengths)]
    resps = [np.asarray(r)[:, :, :n] for r, n in zip(ds.responses, lengths)]
    rates = [np.asarray(r)[:, :n] for r, n in zip(ds.ground_truth["rate"], lengths)]

    def part(idx, name):
        return ResponseDataset([stims[i] for i in idx], [resps[i] for i in idx], dt_ms=DT_MS, cf_hz=ds.cf_hz,
                               neuron_ids=ds.neuron_ids, name=name)

    idx = np.arange(n_clips)
    tr, va, te = idx[:N_TRAIN], idx[N_TRAIN:N_TRAIN + N_VAL], idx[N_TRAIN + N_VAL:]
    return part(tr, "bench-train"), part(va, "bench-val"), part(te, "bench-test"), [rates[i] for i in te]


def cc_true(model, test, true_rates) -> float:
    """Correlation of the test prediction with the noiseless ground-truth rate."""
    pred = np.concatenate([p[0] for p in predict(model, test, device="cpu")])
    rate = np.concatenate([r[0] for r in true_rates])
    return float(np.corrcoef(pred, rate)[0, 1])


def build(name, cf_hz, n_bands=N_BANDS):
    """``name`` with AdapTrans on the data's band centres ``cf_hz``."""
    return build_model(name, n_bands=n_bands, n_neurons=1, dt_ms=DT_MS, prefilter="adaptrans",
                       prefilter_kwargs={"cf_hz": [float(v) for v in cf_hz]})


def run_one(name, mode, seed, data, cap=None):
    train, val, test, rates = data
    torch.manual_seed(seed)
    model = build(name, train.cf_hz)
    kwargs = mode_kwargs(mode)
    if cap is not None:
        kwargs["max_epochs"] = min(int(cap), int(kwargs.get("max_epochs", 10**9)))
    t0, c0 = time.perf_counter(), time.process_time()
    res = FITTERS.get(mode, fit)(model, train, val, device="cpu", seed=seed, progress=False, **kwargs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ev = evaluate(model, test, device="cpu")
    return dict(model=name, mode=mode, seed=seed, wall_s=wall, cpu_s=cpu, epochs=res.epochs, best_epoch=res.best_epoch,
                s_per_epoch=wall / max(res.epochs, 1), stopped_early=bool(res.stopped_early),
                stop_reason=getattr(res, "stop_reason", ""), train_chunk=str(getattr(res, "train_chunk", None)),
                capped=cap is not None and not res.stopped_early,
                cc_norm=float(ev.cc_norm.iloc[0]), cc_raw=float(ev.cc_raw.iloc[0]), cc_true=cc_true(model, test, rates))


def run_ridge(data, seed=0):
    train, val, test, rates = data
    t0, c0 = time.perf_counter(), time.process_time()
    model, _ = fit_ridge_strf(train, val, n_lags=20, prefilter="adaptrans")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ev = evaluate(model, test, device="cpu")
    return dict(model="ridge", mode="closed form", seed=seed, wall_s=wall, cpu_s=cpu, epochs=0, best_epoch=-1, s_per_epoch=np.nan,
                stopped_early=False, stop_reason="", capped=False, cc_norm=float(ev.cc_norm.iloc[0]),
                cc_raw=float(ev.cc_raw.iloc[0]), cc_true=cc_true(model, test, rates))


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Medians over seeds per (model, mode)."""
    rows = []
    order = {m: i for i, m in enumerate(list(MODELS) + ["ridge"])}
    for (model, mode), g in df.groupby(["model", "mode"], sort=False):
        rows.append({
            "model": SHORT.get(model, model), "mode": mode, "seeds": len(g),
            "wall s (median)": float(g.wall_s.median()),
            "wall s (min-max)": f"{g.wall_s.min():.3g}-{g.wall_s.max():.3g}",
            "CPU s (median)": float(g.cpu_s.median()) if "cpu_s" in g else float("nan"),
            "epochs (median)": float(g.epochs.median()), "best epoch (median)": float(g.best_epoch.median()),
            "s / epoch": float(g.s_per_epoch.median()),
            "capped": int(g.capped.astype(bool).sum()),
            "test CCnorm (median)": float(g.cc_norm.median()),
            "CCnorm (min-max)": f"{g.cc_norm.min():.3f}-{g.cc_norm.max():.3f}",
            "cc with true rate": float(g.cc_true.median()),
            "_o": order.get(model, 99),
        })
    return pd.DataFrame(rows).sort_values(["_o", "mode"], kind="stable").drop(columns="_o")


def compare(df: pd.DataFrame, base: str = "today", new: str = "defaults") -> pd.DataFrame:
    """Side by side per model: medians over seeds of ``base`` and ``new`` rows, and the speed-ups."""
    rows = []
    for model in [m for m in MODELS if m in set(df.model)]:
        a, b = df[(df.model == model) & (df["mode"] == base)], df[(df.model == model) & (df["mode"] == new)]
        if a.empty or b.empty:
            continue
        rows.append({
            "model": SHORT[model], "seeds": f"{len(a)} / {len(b)}",
            f"{base} wall s": float(a.wall_s.median()), f"{base} CPU s": float(a.cpu_s.median()),
            f"{base} epochs": float(a.epochs.median()), f"{base} CCnorm": float(a.cc_norm.median()),
            f"{new} wall s": float(b.wall_s.median()), f"{new} CPU s": float(b.cpu_s.median()),
            f"{new} epochs": float(b.epochs.median()), f"{new} CCnorm": float(b.cc_norm.median()),
            "speed-up wall": f"{a.wall_s.median() / b.wall_s.median():.1f}x",
            "speed-up CPU": f"{a.cpu_s.median() / b.cpu_s.median():.1f}x",
        })
    return pd.DataFrame(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated model names (and/or 'ridge')")
    p.add_argument("--modes", default="today,defaults", help=f"comma-separated, among {sorted(MODES)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--cap", default="", help="per-model epoch caps, e.g. StateNet=120,ConvNet2D=300")
    p.add_argument("--no-ridge", action="store_true")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed 1-epoch fit before each model x mode")
    p.add_argument("--csv", default=None, help="append every row to this CSV")
    p.add_argument("--summary", default=None, nargs="+", help="only print the median tables of these CSVs")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    if args.summary:
        df = pd.concat([pd.read_csv(f) for f in args.summary], ignore_index=True)
        print(markdown_rows(summary(df)))
        print()
        print(markdown_rows(compare(df)))
        return
    caps = {k: int(v) for k, v in (c.split("=") for c in args.cap.split(",") if c)}
    models = [m for m in args.models.split(",") if m and m != "ridge"]
    modes = [m for m in args.modes.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    for m in modes:
        mode_kwargs(m)
    print(f"# bench_fit: {platform.node()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    data = single_neuron_data(args.data_seed)
    print(f"# train bins {int(sum(data[0].n_bins))}, val {int(sum(data[1].n_bins))}, test {int(sum(data[2].n_bins))}",
          flush=True)
    rows = []

    def record(row):
        rows.append(row)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        if args.csv:
            os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
            pd.DataFrame([row]).to_csv(args.csv, mode="a", header=not os.path.exists(args.csv), index=False)

    if not args.no_ridge or "ridge" in args.models.split(","):
        record(run_ridge(data))
    for name in models:
        for mode in modes:
            if not args.no_warmup:  # first calls (allocator, autograd, L-BFGS code) cost ~2 s once per process
                run_one(name, mode, 99, data, cap=1)
            for seed in seeds:
                record(run_one(name, mode, seed, data, cap=caps.get(name)))
    print()
    print(markdown_rows(summary(pd.DataFrame(rows))))


if __name__ == "__main__":
    main()
