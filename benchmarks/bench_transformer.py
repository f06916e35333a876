"""The Transformer core: attention cost against T, and which optimiser ``fit`` should give it.

``scaling``: forward + backward time of one banded attention layer (d = 48, one head,
window W = 32) on one stimulus of T bins, blockwise (:func:`banded_attention`) against the
same attention with a dense (T, T) banded mask; median of 5 runs, 1 thread.

``fit``: the Transformer with AdapTrans (window 32, patch = all bands, embedding 48) fitted
by ``fit`` with
- ``lbfgs``: full-batch L-BFGS, what ``optimizer="auto"`` chose for any non-recurrent model
  before the Transformer rule (``optimizer="lbfgs"``);
- ``auto``: ``fit(model, train, val)``, today's defaults;
- ``adamw``: the published protocol's AdamW (lr 1e-3, no weight decay, patience 50, batch 1);
- ``adamw-recurrent``: the AdamW settings ``fit`` gives recurrent models
  (``training.options.RECURRENT_AUTO``: lr 2e-3, 4 stimuli per step, patience 8; weight
  decay 1e-2; whole stimuli);
on two data sets: ``synthetic`` (``bench_fit.single_neuron_data``: one ground-truth neuron,
20 songs of 1.5-1.9 s, 32 bands; test CCnorm) and ``starling`` (the two real Meliza starling
units, shared folder ``../shared/data/meliza_starling/data/starling``, folder loader: one 9.3 s
song, cut into 8 segments of 232 bins and cross-validated: each segment predicted by a model
fitted on 6 others with the next one for validation; CCnorm of the whole song's out-of-fold
prediction; each unit fitted alone; wall / CPU seconds summed over the 8 fits).
``ln-reference``: an LN model (20 lags, AdapTrans) with ``fit``'s defaults on the same data, as
a measure of how predictable the data are. Medians over seeds (initialisations) printed.

Usage::

    python benchmarks/bench_transformer.py             # scaling (what make bench runs)
    python benchmarks/bench_transformer.py fit --data synthetic,starling --modes lbfgs,auto,adamw --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from deepstrf_utils.metrics import cc_norm, cc_raw  # noqa: E402
from deepstrf_utils.models import LinearNonlinear, Transformer, banded_attention  # noqa: E402
from deepstrf_utils.training import evaluate, fit, predict  # noqa: E402

STARLING = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "meliza_starling" / "data" / "starling"
MODES = {
    "lbfgs": dict(optimizer="lbfgs"),
    "auto": dict(),
    "adamw": dict(optimizer="adamw", lr=1e-3, weight_decay=0.0, patience=50, batch_size=1, max_epochs=1000),
    "adamw-recurrent": dict(optimizer="adamw", lr=2e-3, patience=8, batch_size=4, max_epochs=1000),
}


def _dense(q, k, v, window):
    t = q.shape[-2]
    pos = torch.arange(t)
    lag = pos[:, None] - pos[None, :]
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(~((lag >= 0) & (lag < window)), float("-inf"))
    return torch.softmax(scores, -1) @ v


def scaling(lengths=(500, 1000, 2000, 4000, 8000), window=32, repeats=5):
    rows = []
    for t in lengths:
        row = {"T": t}
        for name, fn in (("blockwise", lambda q, k, v: banded_attention(q, k, v, window)),
                         ("dense mask", lambda q, k, v: _dense(q, k, v, window))):
            if name == "dense mask" and t > 4000:
                row[f"{name} ms"] = float("nan")
                continue
            times = []
            for _ in range(repeats):
                q, k, v = (torch.randn(1, 1, t, 48, requires_grad=True) for _ in range(3))
                t0 = time.perf_counter()
                fn(q, k, v).sum().backward()
                times.append(1000 * (time.perf_counter() - t0))
            row[f"{name} ms"] = statistics.median(times)
        rows.append(row)
    return pd.DataFrame(rows)


def starling_segments(n_segments: int = 8):
    """The starling song cut into ``n_segments`` equal segments (``datasets.split_in_time``)."""
    from deepstrf_utils.datasets import load_dataset
    from deepstrf_utils.datasets.segments import split_in_time

    return split_in_time(load_dataset("folder", path=str(STARLING)), n_segments)


def build(mode, data, seed):
    torch.manual_seed(seed)
    pre = {"prefilter": "adaptrans", "prefilter_kwargs": {"cf_hz": [float(c) for c in data.cf_hz]}}
    if mode == "ln-reference":
        return LinearNonlinear(data.n_bands, 1, n_lags=20, dt_ms=data.dt_ms, **pre)
    return Transformer(data.n_bands, 1, window=32, dt_ms=data.dt_ms, **pre)


def run(mode, tr, va, seed):
    model = build(mode, tr, seed)
    t0, c0 = time.perf_counter(), time.process_time()
    res = fit(model, tr, va, device="cpu", seed=seed, progress=False, **MODES.get(mode, {}))
    return model, res, time.perf_counter() - t0, time.process_time() - c0


def fit_rows(data_names, modes, seeds):
    from bench_fit import single_neuron_data

    rows = []

    def record(**row):
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        rows.append(row)

    for data_name in data_names:
        for seed in seeds:
            for mode in modes:
                if data_name == "synthetic":
                    tr, va, te, _ = single_neuron_data(0)
                    model, res, wall, cpu = run(mode, tr, va, seed)
                    ev = evaluate(model, te, device="cpu")
                    record(data=data_name, unit="synthetic", mode=mode, optimizer=res.optimizer, seed=seed,
                           wall_s=wall, cpu_s=cpu, epochs=float(res.epochs), cc_raw=float(ev["cc_raw"].iloc[0]),
                           cc_norm=float(ev["cc_norm"].iloc[0]))
                    continue
                seg = starling_segments()
                k = seg.n_stimuli
                for unit in seg.neuron_ids:
                    one = seg.select([unit])
                    preds, walls, cpus, epochs, opt = [], 0.0, 0.0, [], ""
                    for fold in range(k):  # test segment `fold`, validation the next, train the rest
                        val_i = (fold + 1) % k
                        tr = one.subset([i for i in range(k) if i not in (fold, val_i)])
                        model, res, wall, cpu = run(mode, tr, one.subset([val_i]), seed)
                        preds.append(predict(model, one.subset([fold]), device="cpu")[0])
                        walls, cpus, opt = walls + wall, cpus + cpu, res.optimizer
                        epochs.append(res.epochs)
                    pred = np.concatenate(preds, axis=-1)  # (1, T): the whole song, each bin predicted out of fold
                    resp = np.concatenate([np.asarray(r) for r in one.responses], axis=-1)  # (1, R, T)
                    record(data=data_name, unit=unit, mode=mode, optimizer=opt, seed=seed, wall_s=walls, cpu_s=cpus,
                           epochs=float(np.median(epochs)), cc_raw=float(cc_raw(pred, resp)[0]),
                           cc_norm=float(cc_norm(pred, resp)[0]))
    return pd.DataFrame(rows)


def _table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |"
            for r in df.itertuples(index=False)]
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", default="scaling", choices=("scaling", "fit"))
    p.add_argument("--data", default="synthetic,starling")
    p.add_argument("--modes", default="lbfgs,auto,adamw-recurrent,adamw,ln-reference")
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(f"# bench_transformer {args.what}: {platform.node()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    if args.what == "scaling":
        print(_table(scaling()))
        return
    df = fit_rows([d for d in args.data.split(",") if d], [m for m in args.modes.split(",") if m],
                  [int(s) for s in args.seeds.split(",") if s])
    summary = df.groupby(["data", "unit", "mode", "optimizer"], sort=False).agg(
        seeds=("seed", "size"), wall_s=("wall_s", "median"), cpu_s=("cpu_s", "median"), epochs=("epochs", "median"),
        cc_raw=("cc_raw", "median"), cc_norm=("cc_norm", "median"), cc_norm_min=("cc_norm", "min"),
        cc_norm_max=("cc_norm", "max")).reset_index()
    print()
    print(_table(summary))


if __name__ == "__main__":
    main()
