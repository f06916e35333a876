"""Fit-quality benchmark: every model x optimiser path x seed on real and mismatched data.

Why: fitting defaults chosen on the built-in synthetic population (drawn from the models'
own AdapTrans + LN family, where a ridge start is already near the truth) cannot tell a
good optimiser from one that stops early. This benchmark scores each fitting path on

- ``torc``: the real ferret A1 unit listening to TORCs (``../shared/data/torc_ferret_a1``),
  split by TORC; the split changes with the seed;
- ``mismatched``: single-unit fits of neurons that are NOT drawn from the model family
  (``load_dataset("synthetic", population="mismatched")``; its first 4 neurons are one
  onset, sustained, offset and sideband neuron), the split of seed 0;
- ``starling``: the starling unit of ``../shared/data/meliza_starling`` with a reliable
  response to its one song (st11_1_2_1), the song cut into 10 segments of 0.93 s
  (``datasets.segments.split_in_time``: 6 train, 2 validation, 2 test; seed i is the i-th
  split whose test and validation segments both carry a reliable response, :func:`starling_split`);
- ``family``: single-unit fits of neurons of the built-in synthetic population.

For each unit x model (Linear, LinearNonlinear, NetworkReceptiveField, DNet, ConvNet2D,
StateNet) x prefilter (AdapTrans or none) x path x seed (the seed initialises the model and
orders the batches; on TORCs it also draws the split) one row: test CCnorm (on TORCs also
the TORC-specific CCnorm: responses and prediction minus their mean over the test TORCs),
epochs, best epoch, stop reason, wall and CPU time (1 thread), and how far the AdapTrans
parameters moved from their initialisation (largest change of a logit). Baselines per unit
and split: the closed-form ridge STRF (no prefilter, and on the initial AdapTrans channels)
and, on TORCs, the mean PSTH of the training TORCs.

Paths: ``auto`` = ``fit(model, train, val)`` with the library's defaults of the code being
run (its rows carry a fingerprint of the fitting code, so the rows of older defaults stay
apart); ``adamw`` = ``**ADAMW_FIT_KWARGS`` (the reference the defaults must match); and the
candidates of :data:`PATHS`.

Resumable: every fit appends one row to ``--csv`` as it ends; rows already there (same
dataset, unit, model, prefilter, path, seed, fingerprint) are skipped. ``--summary`` prints
the tables: per dataset x model x prefilter x path the mean test CCnorm, its spread over
units and seeds, the worst unit / seed relative to AdamW (same unit and seed), the median
CPU time and its ratio to AdamW's.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_fit_quality.py --datasets starling,family \\
        --models Linear,LinearNonlinear --paths auto,adamw --seeds 0,1,2 --csv build/fq.csv
    python benchmarks/bench_fit_quality.py --summary build/fq.csv
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import hashlib
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _tables import markdown_rows  # noqa: E402

from deepstrf_utils import metrics  # noqa: E402
from deepstrf_utils.datasets import ResponseDataset, load_dataset  # noqa: E402
from deepstrf_utils.datasets.segments import split_in_time  # noqa: E402
from deepstrf_utils.datasets.torc import mean_psth_baseline  # noqa: E402
from deepstrf_utils.datasets.synthetic import generate_synthetic  # noqa: E402
from deepstrf_utils.models import build_model, fit_ridge_strf  # noqa: E402
from deepstrf_utils.training import ADAMW_FIT_KWARGS, fit, predict  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
STARLING = SHARED / "meliza_starling" / "data" / "starling"
TORC = SHARED / "torc_ferret_a1"

MODELS = ("Linear", "LinearNonlinear", "NetworkReceptiveField", "DNet", "ConvNet2D", "StateNet")
SHORT = {"Linear": "L", "LinearNonlinear": "LN", "NetworkReceptiveField": "NRF", "DNet": "DNet",
         "ConvNet2D": "2D-CNN", "StateNet": "StateNet", "ridge": "ridge STRF", "mean PSTH": "mean PSTH"}
DATASETS = ("torc", "mismatched", "starling", "family")
#: the starling song's 10 segments: 2 test, 2 validation (one segment of ~2 spikes per trial
#: is too little to stop on), 6 train, drawn per seed
STARLING_SPLIT = {"test": "random", "n_test": 2, "n_val": 2}
#: files whose contents define what ``fit``'s defaults do: the ``auto`` rows carry their hash
DEFAULTS_FILES = ("deepstrf_utils/training/options.py", "deepstrf_utils/training/fitting.py",
                  "deepstrf_utils/training/warmstart.py", "deepstrf_utils/training/stopping.py",
                  "deepstrf_utils/training/chunks.py")

#: fitting paths: name -> fit keyword arguments ("auto" = the library's defaults). Keys starting
#: with "_" are prototype settings that :func:`prototype` applies around the ``fit`` call:
#: ``_min_epochs`` (patience cannot stop an L-BFGS fit before that many epochs), ``_ridge_folds``
#: (the ridge start's penalty by k-fold cross-validation on the training stimuli; None: on the
#: validation set), ``_l2`` (the ridge start's penalty kept on the STRF in the L-BFGS phase, times
#: that factor; 0: dropped). Every path spells them out, so that its rows mean the same thing
#: whatever the library's defaults are.
PATHS: dict = {
    "auto": {},
    "adamw": dict(ADAMW_FIT_KWARGS),
    # L-BFGS from a random start: the previous rule (a check every 5 iterations, patience 2) and variants
    "lbfgs-p2": dict(optimizer="lbfgs", init=None, patience=2, _min_epochs=0),
    "lbfgs-p5": dict(optimizer="lbfgs", init=None, patience=5, _min_epochs=0),
    "lbfgs-p2-m10": dict(optimizer="lbfgs", init=None, patience=2, _min_epochs=10),
    "lbfgs-p3-m10": dict(optimizer="lbfgs", init=None, patience=3, _min_epochs=10),
    # L / LN from the ridge start: the previous rule (penalty on the validation set, dropped, patience 1)
    "ridgeval-p1": dict(optimizer="lbfgs", init="ridge", patience=1, _min_epochs=0, _ridge_folds=None, _l2=0.0),
    "ridgecv-p1": dict(optimizer="lbfgs", init="ridge", patience=1, _min_epochs=0, _ridge_folds=4, _l2=0.0),
    "ridgecv-p3-m5": dict(optimizer="lbfgs", init="ridge", patience=3, _min_epochs=5, _ridge_folds=4, _l2=0.0),
    "ridgecv-l2-p3-m5": dict(optimizer="lbfgs", init="ridge", patience=3, _min_epochs=5, _ridge_folds=4, _l2=1.0),
    "ridgecv-adamw-p20": dict(optimizer="adamw", init="ridge", lr=1e-3, weight_decay=1e-2, batch_size=8,
                              max_epochs=1000, patience=20, _ridge_folds=4),
    # the better of two paths on the validation set (both fitted from the same initial weights)
    "race-ridge-random": dict(_race=("ridgecv-l2-p3-m5", "lbfgs-p3-m10")),
    # a few AdamW epochs from the random start, then L-BFGS (its start: the best warm-up epoch)
    "warm20-lbfgs-p3-m5": dict(optimizer="lbfgs", init=None, patience=3, _min_epochs=5, _warmup=20),
    "warm10-lbfgs-p3-m5": dict(optimizer="lbfgs", init=None, patience=3, _min_epochs=5, _warmup=10),
    # AdamW, faster: larger steps, shorter patience
    "adamw-3e-3-p20": dict(ADAMW_FIT_KWARGS, lr=3e-3, patience=20),
    "adamw-1e-2-plateau-p20": dict(ADAMW_FIT_KWARGS, lr=1e-2, patience=20, scheduler="plateau"),
    # StateNet: chunked AdamW of RECURRENT_AUTO with other chunks / whole songs
    "recurrent-16x8": dict(optimizer="adamw", lr=2e-3, patience=8, batch_size=4, max_epochs=1000,
                           train_chunk=(16, 8)),
    "recurrent-64x64": dict(optimizer="adamw", lr=2e-3, patience=8, batch_size=4, max_epochs=1000,
                            train_chunk=(64, 64)),
    "recurrent-whole": dict(optimizer="adamw", lr=2e-3, patience=8, batch_size=4, max_epochs=1000,
                            train_chunk=None),
}


@contextlib.contextmanager
def prototype(options: dict):
    """Apply a path's prototype settings (keys starting with "_", see :data:`PATHS`) to the
    library for the duration of one fit; everything is restored after."""
    from deepstrf_utils.training import options as opts
    from deepstrf_utils.training import warmstart

    if not any(k.startswith("_") for k in options):  # nothing to patch (also runs on older library code)
        yield
        return
    saved = (opts.LBFGS_MIN_EPOCHS, opts.RIDGE_START_MIN_EPOCHS, warmstart.ridge_init, warmstart.ridge_penalty)
    if "_min_epochs" in options:
        opts.LBFGS_MIN_EPOCHS = opts.RIDGE_START_MIN_EPOCHS = int(options["_min_epochs"])
    if "_ridge_folds" in options:
        warmstart.ridge_init = functools.partial(saved[2], folds=options["_ridge_folds"])
    if "_l2" in options:
        factor = float(options["_l2"])

        def ridge_penalty(model, sol, target, std=None):
            if not factor:
                return None
            return saved[3](model, dict(sol, alpha=np.asarray(sol["alpha"]) * factor), target, std=std)

        warmstart.ridge_penalty = ridge_penalty
    try:
        yield
    finally:
        opts.LBFGS_MIN_EPOCHS, opts.RIDGE_START_MIN_EPOCHS, warmstart.ridge_init, warmstart.ridge_penalty = saved


def defaults_fingerprint() -> str:
    """8 hex digits of the contents of :data:`DEFAULTS_FILES` (those that exist)."""
    h = hashlib.sha1()
    for rel in DEFAULTS_FILES:
        p = ROOT / rel
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:8]


@dataclass
class Unit:
    """One single-unit fitting problem: a neuron and its train / val / test parts."""

    dataset: str
    unit: str
    split_seed: int
    train: ResponseDataset
    val: ResponseDataset
    test: ResponseDataset


# ----------------------------------------------------------------------------- data
def starling_split(index: int) -> tuple:
    """(train, val, test) of the starling song: the ``index``-th split (in the order of the split
    seeds 0, 1, 2...) whose test AND validation segments both carry a reliable response (finite
    cc_max: the unit fires in few segments; with no spike in the test segments no model can be
    scored, with none in the validation segments early stopping follows noise)."""
    if not STARLING.is_dir():
        raise FileNotFoundError(f"expected the starling recording at {STARLING}")
    ds = load_dataset("folder", path=str(STARLING), dt_ms=5.0, n_bands=32)
    # units with a reliable response to the song (st49_2_4_1 has none at 5 ms: cc_max NaN)
    reliable = np.isfinite(np.asarray(metrics.cc_max(ds.responses[0], reduction="none"), dtype=float))
    cut = split_in_time(ds.select(np.flatnonzero(reliable)), 10, split_spec=STARLING_SPLIT)
    found = -1
    for seed in range(1000):
        parts = cut.split(seed)
        if all(np.isfinite(np.asarray(metrics.cc_max(np.concatenate(p.responses, -1), reduction="none"))).all()
               for p in parts[1:]):
            found += 1
            if found == index:
                return parts
    raise ValueError(f"fewer than {index + 1} usable splits of the starling song")


def load_units(name: str, split_seed: int, n_units: int) -> list[Unit]:
    """The single-unit problems of dataset ``name`` for one split."""
    if name == "family":
        ds = generate_synthetic(n_neurons=max(n_units, 1), n_clips=20, clip_s=1.9, n_repeats=10, dt_ms=5.0,
                                n_bands=32, seed=0)
        idx = np.arange(20)
        parts = ds.subset(idx[:12]), ds.subset(idx[12:16]), ds.subset(idx[16:])
    elif name == "mismatched":  # the first 4 neurons are one of each type: onset, sustained, offset, sideband
        ds = load_dataset("synthetic", root=str(ROOT / "data"), population="mismatched")
        parts = ds.split(0)
    elif name == "starling":
        parts = starling_split(split_seed)
    elif name == "torc":
        ds = load_dataset("torc", path=str(TORC))
        parts = ds.split(split_seed)
    else:
        raise SystemExit(f"unknown dataset {name!r}; expected among {DATASETS}")
    train, val, test = parts
    ids = list(train.neuron_ids)[:n_units]
    return [Unit(name, str(u), split_seed, train.select([u]), val.select([u]), test.select([u])) for u in ids]


# ----------------------------------------------------------------------------- scoring
def score(pred: list, test: ResponseDataset, dataset: str) -> dict:
    p = np.concatenate([np.asarray(x, dtype=np.float32) for x in pred], axis=1)
    r = np.concatenate([np.asarray(x, dtype=np.float32) for x in test.responses], axis=-1)
    out = dict(cc_norm=float(np.asarray(metrics.cc_norm(p, r, reduction="none"))[0]),
               cc_raw=float(np.asarray(metrics.cc_raw(p, r, reduction="none"))[0]))
    out["cc_specific"] = float("nan")
    if dataset == "torc":  # the TORC-specific part: prediction and responses minus their mean over test TORCs
        out["cc_specific"] = float(np.asarray(metrics.cc_norm_specific(
            np.stack([np.asarray(x, dtype=np.float32) for x in pred]), np.stack(test.responses)))[0])
    return out


def adaptrans_logits(model) -> dict:
    pre = getattr(model, "prefilter", None)
    return {k: v.detach().clone() for k, v in pre.named_parameters()} if pre is not None else {}


def build(name: str, unit: Unit, prefilter: str | None):
    kw = {"cf_hz": [float(c) for c in unit.train.cf_hz]} if prefilter else None
    return build_model(name, n_bands=unit.train.n_bands, n_neurons=1, dt_ms=float(unit.train.dt_ms),
                       prefilter=prefilter, prefilter_kwargs=kw)


def fit_path(model, unit: Unit, path: str, seed: int):
    """Fit ``model`` (in place) along ``path``; a race fits each of its paths from a copy of the
    initial weights and keeps the one with the lowest validation loss (its FitResult, with
    ``stop_reason`` "race <winner>: <reason>" and the epochs of all)."""
    options = dict(PATHS[path])
    if "_race" in options:
        start = copy.deepcopy(model.state_dict())
        fits = []
        for sub in options["_race"]:
            model.load_state_dict(start)
            res = fit_path(model, unit, sub, seed)
            fits.append((res.best_val_loss, sub, res, copy.deepcopy(model.state_dict())))
        best = min(fits, key=lambda f: f[0] if np.isfinite(f[0]) else np.inf)
        model.load_state_dict(best[3])
        res = best[2]
        res.stop_reason = f"race {best[1]}: {res.stop_reason}"
        res.epochs = sum(f[2].epochs for f in fits)
        return res
    kwargs = {k: v for k, v in options.items() if not k.startswith("_")}
    warm = None
    if options.get("_warmup"):  # prototype: AdamW epochs (lr 3e-3), the best of them kept, then L-BFGS
        warm = fit(model, unit.train, unit.val, device="cpu", seed=seed, progress=False,
                   **dict(ADAMW_FIT_KWARGS, lr=3e-3, max_epochs=int(options["_warmup"]), patience=None))
        kwargs["init_output"] = False
    with prototype(options):
        res = fit(model, unit.train, unit.val, device="cpu", seed=seed, progress=False, **kwargs)
    if warm is not None:
        res.epochs += warm.epochs
    return res


def run_fit(unit: Unit, model_name: str, prefilter: str | None, path: str, seed: int) -> dict:
    torch.manual_seed(seed)
    model = build(model_name, unit, prefilter)
    before = adaptrans_logits(model)
    t0, c0 = time.perf_counter(), time.process_time()
    res = fit_path(model, unit, path, seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = adaptrans_logits(model)
    moved = max((float((after[k] - before[k]).abs().max()) for k in before), default=float("nan"))
    pred = predict(model, unit.test, device="cpu")
    return dict(epochs=res.epochs, best_epoch=res.best_epoch, stop_reason=res.stop_reason, optimizer=res.optimizer,
                val_loss=float(res.best_val_loss),
                init=str(res.init), train_chunk=str(res.train_chunk), wall_s=wall, cpu_s=cpu,
                adaptrans_moved=moved, **score(pred, unit.test, unit.dataset))


def run_ridge(unit: Unit, prefilter: str | None) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    model, _ = fit_ridge_strf(unit.train, unit.val, n_lags=20, prefilter=prefilter)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    pred = predict(model, unit.test, device="cpu")
    return dict(epochs=0, best_epoch=-1, stop_reason="closed form", optimizer="ridge", init="", train_chunk="None",
                wall_s=wall, cpu_s=cpu, adaptrans_moved=float("nan"), **score(pred, unit.test, unit.dataset))


def run_mean_psth(unit: Unit) -> dict:
    """The stimulus-blind predictor (TORCs only): the mean PSTH of the training TORCs."""
    if unit.dataset != "torc":
        return {}
    pred = list(mean_psth_baseline(unit.train, unit.test))
    return dict(epochs=0, best_epoch=-1, stop_reason="closed form", optimizer="mean PSTH", init="", train_chunk="None",
                wall_s=0.0, cpu_s=0.0, adaptrans_moved=float("nan"), **score(pred, unit.test, unit.dataset))


# ----------------------------------------------------------------------------- summary
def path_label(row) -> str:
    return f"auto@{row['fingerprint']}" if row["path"] == "auto" else row["path"]


def offline_race(df: pd.DataFrame, paths: list) -> pd.DataFrame:
    """Rows of the virtual path "race(a|b...)": per unit, model, prefilter and seed, the row of
    ``paths`` with the lowest validation loss (what a race on the validation set keeps), with the
    CPU / wall time and epochs of all of them (a race runs every path). Needs ``val_loss``."""
    key = ["dataset", "unit", "model", "prefilter", "seed"]
    sub = df[df["path"].isin(paths)].drop_duplicates(key + ["path"], keep="last")
    rows = []
    for _, g in sub.groupby(key, sort=False):
        if len(g) < len(paths) or not np.isfinite(g["val_loss"].to_numpy(dtype=float)).all():
            continue
        best = g.loc[g["val_loss"].astype(float).idxmin()].copy()
        best["stop_reason"] = f"{best['path']}: {best['stop_reason']}"
        best["path"] = "race(" + " + ".join(paths) + ")"
        for col in ("cpu_s", "wall_s", "epochs"):
            best[col] = g[col].sum()
        rows.append(best)
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame, reference: str = "adamw", matched: bool = True) -> pd.DataFrame:
    """Per dataset x model x prefilter x path: mean test CCnorm, its spread, the worst
    unit / seed relative to ``reference`` on the same unit and seed, CPU time and its ratio.

    ``matched``: only the (unit, seed) rows that ``reference`` has too, so that every path of a
    dataset x model x prefilter is averaged over the same fits (the closed-form baselines are
    kept whole). "CPU vs AdamW": median over those fits of the CPU time ratio to the reference's
    fit of the same unit and seed. "seeds differ": the share of units whose test CCnorm is not
    the same for every seed (0: every seed gave the same fit)."""
    df = df.copy()
    df["label"] = df.apply(path_label, axis=1)
    key = ["dataset", "unit", "model", "prefilter", "seed"]
    ref_rows = df[df["path"] == reference].drop_duplicates(key, keep="last")
    ref = ref_rows.set_index(key)
    rows = []
    order = {m: i for i, m in enumerate(list(MODELS) + ["ridge", "mean PSTH"])}
    for (ds, model, pre, label), g in df.groupby(["dataset", "model", "prefilter", "label"], sort=False):
        g = g.drop_duplicates(key, keep="last")
        if matched and model not in ("ridge", "mean PSTH") and label != reference:
            g = g[pd.MultiIndex.from_frame(g[key]).isin(ref.index)]
            if g.empty:
                continue
        r = ref.reindex(pd.MultiIndex.from_frame(g[key]))
        diff = g["cc_norm"].to_numpy() - r["cc_norm"].to_numpy()
        has_ref = np.isfinite(diff)
        rows.append({
            "dataset": ds, "model": SHORT.get(model, model), "AdapTrans": "yes" if pre == "adaptrans" else "no",
            "path": label, "units x seeds": f"{g['unit'].nunique()} x {g['seed'].nunique()}",
            "test CCnorm (mean)": float(g["cc_norm"].mean()),
            "min-max": f"{g['cc_norm'].min():.3f}-{g['cc_norm'].max():.3f}",
            "vs AdamW (mean)": float(np.nanmean(diff)) if has_ref.any() else float("nan"),
            "worst vs AdamW": float(np.nanmin(diff)) if has_ref.any() else float("nan"),
            "TORC-specific (mean)": float(g["cc_specific"].mean()) if ds == "torc" else float("nan"),
            "epochs (median)": float(g["epochs"].median()),
            "stops": ", ".join(f"{k} {v}" for k, v in g["stop_reason"].value_counts().items()),
            "CPU s (median)": float(g["cpu_s"].median()),
            "CPU vs AdamW": (f"{float(np.nanmedian(g['cpu_s'].to_numpy() / r['cpu_s'].to_numpy())):.2f}x"
                             if has_ref.any() else ""),
            "seeds differ": float(np.mean([u["cc_norm"].round(6).nunique() > 1 for _, u in g.groupby("unit")]))
            if g["seed"].nunique() > 1 and ds not in ("torc", "starling") else float("nan"),
            "AdapTrans moved (median)": float(g["adaptrans_moved"].median()),
            "_o": (DATASETS.index(ds) if ds in DATASETS else 9, order.get(model, 99), pre != "adaptrans"),
        })
    out = pd.DataFrame(rows).sort_values("_o", kind="stable").drop(columns="_o")
    if not (out["dataset"] == "torc").any():
        out = out.drop(columns="TORC-specific (mean)")
    return out


#: per model, the path that stands for "the defaults" in :func:`compare` when the model's
#: default is not the ``auto`` rows' (none today: the defaults of the 2D-CNN and StateNet
#: depend on the training set's size, so their ``auto`` rows are compared)
DEFAULT_PATH: dict = {}
#: the same for the previous defaults (2D-CNN: L-BFGS, patience 2, no minimum; StateNet unchanged)
PREVIOUS_PATH = {("ConvNet2D", "adaptrans"): "lbfgs-p2", ("ConvNet2D", "none"): "lbfgs-p2",
                 ("StateNet", "adaptrans"): "recurrent-16x8", ("StateNet", "none"): "recurrent-64x64"}


def compare(df: pd.DataFrame, new: str, old: str, reference: str = "adamw") -> pd.DataFrame:
    """The headline table: per dataset x model x prefilter, AdamW (``reference``), the previous
    defaults (path label ``old``) and the new ones (``new``; :data:`DEFAULT_PATH` /
    :data:`PREVIOUS_PATH` for the models measured through named paths), each over the fits
    AdamW has too: mean test CCnorm, mean and worst difference to AdamW on the same unit and
    seed, median CPU time ratio to AdamW."""
    df = df.copy()
    df["label"] = df.apply(path_label, axis=1)
    key = ["dataset", "unit", "model", "prefilter", "seed"]
    ref = df[df["label"] == reference].drop_duplicates(key, keep="last").set_index(key)
    rows = []
    for (ds, model, pre), g in ref.reset_index().groupby(["dataset", "model", "prefilter"], sort=False):
        row = {"dataset": ds, "model": SHORT.get(model, model), "AdapTrans": "yes" if pre == "adaptrans" else "no",
               "units x seeds": f"{g['unit'].nunique()} x {g['seed'].nunique()}",
               "AdamW": float(g["cc_norm"].mean())}
        for name, label in (("previous", PREVIOUS_PATH.get((model, pre), old)), ("new", DEFAULT_PATH.get((model, pre), new))):
            # "a+b": the rows of label a, those of b where a has none (the same code measured twice)
            labels = label.split("+")
            h = df[df["label"].isin(labels) & (df["dataset"] == ds) & (df["model"] == model) & (df["prefilter"] == pre)]
            h = h.assign(_rank=h["label"].map({x: i for i, x in enumerate(labels)}))
            h = h.sort_values("_rank", kind="stable").drop_duplicates(key, keep="first")
            h = h[pd.MultiIndex.from_frame(h[key]).isin(ref.index)]
            r = ref.reindex(pd.MultiIndex.from_frame(h[key]))
            d = h["cc_norm"].to_numpy() - r["cc_norm"].to_numpy()
            ok = np.isfinite(d)
            row[f"{name}"] = float(h["cc_norm"].mean()) if len(h) else float("nan")
            row[f"{name} - AdamW (mean / worst)"] = (f"{np.nanmean(d):+.3f} / {np.nanmin(d):+.3f}" if ok.any() else "")
            row[f"{name} CPU vs AdamW"] = (f"{np.nanmedian(h['cpu_s'].to_numpy() / r['cpu_s'].to_numpy()):.2f}x"
                                           if ok.any() else "")
            row[f"{name} fits"] = f"{int(ok.sum())}/{len(g)}"
        if ds == "torc":
            row["TORC-specific AdamW / new"] = (f"{g['cc_specific'].mean():.3f} / "
                                               f"{h['cc_specific'].mean():.3f}" if len(h) else "")
        rows.append(row)
    order = {m: i for i, m in enumerate(SHORT[m] for m in MODELS)}
    out = pd.DataFrame(rows)
    out["_o"] = [(DATASETS.index(d) if d in DATASETS else 9, order.get(m, 99), a == "no")
                 for d, m, a in zip(out["dataset"], out["model"], out["AdapTrans"])]
    return out.sort_values("_o", kind="stable").drop(columns="_o")


def applies(path: str, model: str) -> bool:
    """Whether ``path`` can fit ``model``: ridge starts need L / LN, the chunk paths a recurrent model."""
    if "_race" in PATHS[path]:
        return all(applies(p, model) for p in PATHS[path]["_race"])
    if PATHS[path].get("init") == "ridge" and model not in ("Linear", "LinearNonlinear"):
        return False
    if model == "StateNet" and PATHS[path].get("optimizer") == "lbfgs":  # measured no better (issue 11)
        return False
    return not path.startswith("recurrent-") or model == "StateNet"


# ----------------------------------------------------------------------------- main
def append_row(path: str, row: dict) -> None:
    """Append one row to the CSV at ``path``; when the row brings new columns, the file is
    rewritten with all of them (to a temporary file, then renamed: never a half-written CSV).
    One process per file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    if os.path.exists(path):
        with open(path) as f:
            header = f.readline().rstrip("\n").split(",")
        if set(row) - set(header):
            old = pd.read_csv(path, dtype={"unit": str})
            tmp = path + ".tmp"
            pd.concat([old, pd.DataFrame([row])], ignore_index=True).to_csv(tmp, index=False)
            os.replace(tmp, path)
            return
        pd.DataFrame([row]).reindex(columns=header).to_csv(path, mode="a", header=False, index=False)
        return
    pd.DataFrame([row]).to_csv(path, index=False)


def machine_line() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s), load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated models (and 'ridge', 'mean PSTH')")
    p.add_argument("--prefilters", default="adaptrans,none")
    p.add_argument("--paths", default="auto,adamw", help=f"comma-separated, among {sorted(PATHS)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--units", type=int, default=4, help="units per dataset (single-unit fits)")
    p.add_argument("--csv", default="build/fit_quality.csv", help="append one row per fit; done rows are skipped")
    p.add_argument("--summary", nargs="*", default=None, help="print the tables of these CSVs (default: --csv)")
    p.add_argument("--dry-run", action="store_true", help="list the fits that would run")
    p.add_argument("--race", action="append", default=[],
                   help="with --summary: add the virtual path race(a|b), e.g. --race ridgecv-l2-p3-m5,lbfgs-p3-m10")
    p.add_argument("--compare", default="", help="with --summary: 'NEW,OLD' path labels (e.g. auto@2a9a6681+"
                   "auto@2b45a151,auto@5012cef8; a+b: a's rows, b's where a has none): the headline table of the "
                   "new defaults, the previous ones and AdamW")
    p.add_argument("--only", default="", help="with --summary: only these paths (and the baselines; 'race' for races)")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    pd.set_option("display.width", 250)

    if args.summary is not None:
        files = args.summary or [args.csv]
        df = pd.concat([pd.read_csv(f, dtype={"unit": str}) for f in files], ignore_index=True)
        for race in args.race:
            df = pd.concat([df, offline_race(df, race.split(","))], ignore_index=True)
        if args.only:
            df = df[df["path"].isin(args.only.split(",")) | df["model"].isin(["ridge", "mean PSTH"])
                    | (df["path"].str.startswith("race(")) if "race" in args.only else
                    df["path"].isin(args.only.split(",")) | df["model"].isin(["ridge", "mean PSTH"])]
        if args.compare:
            new, old = args.compare.split(",")
            print(markdown_rows(compare(df, new, old)))
            return
        print(markdown_rows(summary(df)))
        return
    paths = [x for x in args.paths.split(",") if x]
    for x in paths:
        if x not in PATHS:
            raise SystemExit(f"unknown path {x!r}; expected among {sorted(PATHS)}")
    models = [m for m in args.models.split(",") if m]
    prefilters = [None if x == "none" else x for x in args.prefilters.split(",") if x]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    fp = defaults_fingerprint()
    done = set()
    if os.path.exists(args.csv):
        old = pd.read_csv(args.csv, dtype={"unit": str})
        for _, r in old.iterrows():
            done.add((r["dataset"], str(r["unit"]), r["model"], r["prefilter"], r["path"], int(r["seed"]),
                      r["fingerprint"] if r["path"] == "auto" else ""))
    print(f"# bench_fit_quality: {machine_line()}, defaults fingerprint {fp}", flush=True)

    def record(row):
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        append_row(args.csv, row)

    for ds_name in [d for d in args.datasets.split(",") if d]:
        split_seeds = seeds if ds_name in ("torc", "starling") else [0]
        for split_seed in split_seeds:
            units = load_units(ds_name, split_seed, args.units)
            for unit in units:
                seeds_here = [split_seed] if ds_name in ("torc", "starling") else seeds
                base = dict(dataset=ds_name, unit=unit.unit, split_seed=split_seed,
                            n_train_bins=int(sum(unit.train.n_bins)))
                jobs = []
                for seed in seeds_here:
                    if "ridge" in models:
                        jobs += [("ridge", pre, "closed", seed) for pre in prefilters]
                    if "mean PSTH" in models:
                        jobs.append(("mean PSTH", None, "closed", seed))
                    for model in models:
                        if model in ("ridge", "mean PSTH"):
                            continue
                        jobs += [(model, pre, path, seed) for pre in prefilters for path in paths
                                 if applies(path, model)]
                for model, pre, path, seed in jobs:
                    pre_s = pre or "none"
                    key = (ds_name, unit.unit, model, pre_s, path, seed, fp if path == "auto" else "")
                    if key in done:
                        continue
                    if args.dry_run:
                        print("would run", key)
                        continue
                    load = os.getloadavg()[0]
                    if model == "ridge":
                        out = run_ridge(unit, pre)
                    elif model == "mean PSTH":
                        out = run_mean_psth(unit)
                        if not out:
                            continue
                    else:
                        out = run_fit(unit, model, pre, path, seed)
                    record(dict(base, model=model, prefilter=pre_s, path=path, seed=seed, fingerprint=fp,
                                load=load, date=time.strftime("%Y-%m-%d %H:%M", time.gmtime()), **out))
                    done.add(key)


if __name__ == "__main__":
    main()
