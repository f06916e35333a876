"""Recovery study on the synthetic set: does LN + AdapTrans beat LN, and are tau recovered?

The synthetic neurons (``deepstrf_utils.datasets.synthetic``) are LN models on a
ReLU-rectified AdapTrans prefilter whose time constants are the Willmore curve times a
per-neuron factor in [0.5, 2] (ON and OFF independent), with ``w`` in [0.5, 0.95].
This script measures, on the test split:

A. identifiability of the design: how much a neuron's noiseless rate changes when its true
   tau_on / tau_off are scaled by 0.5 or 2 (everything else fixed), in units of its signal
   variance and of the Poisson noise of the trial average;
B. single-unit fits with the training engine (``fit_single_units``) for several fitting
   choices, with the closed-form ridge STRF as the floor: mean cc_norm on the test clips,
   and the recovery of AdapTrans' parameters near each neuron's best frequency.

Tau recovery: :func:`deepstrf_utils.interpret.groundtruth.tau_recovery` (see that module). For each
neuron and channel (ON, OFF), the fitted per-band time constants are summarised by an
energy-weighted mean of ``log(tau_fit / tau_willmore(cf))`` over the bands, the weights
being the ground-truth STRF energy of that channel per band; ``exp`` of it is the fitted
*factor*, compared with the generator's per-neuron factor (correlation, and mean |log
error| against that of the Willmore initialisation, factor 1). Only neurons whose channel
carries >= 20 % of their STRF energy (and that are not the deliberately noisy ones) enter
a channel's statistics.

Learning rate of the AdapTrans parameters: ``fit_single_units`` has one learning rate for
all parameters, so a faster prefilter is emulated by reparameterising it
(``logit = s * raw``): with Adam, a step on ``raw`` moves the logit ``s`` times further,
i.e. learning rate ``s * lr`` for the prefilter only (weight decay unchanged).

Usage::

    python benchmarks/recovery_synthetic.py                   # 20 neurons, every config
    python benchmarks/recovery_synthetic.py --neurons 50 --configs ln,at_relu_s30
    python benchmarks/recovery_synthetic.py --list

Timings on the shared 2-core machine are noisy: treat them as provisional.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from deepstrf_utils.adaptrans import (  # noqa: E402
    _filter_with_kernels,
    _kernels_from_log,
    default_kernel_size,
    willmore_tau_ms,
)
from deepstrf_utils.datasets.synthetic import load_synthetic, true_rate  # noqa: E402
from deepstrf_utils.interpret.groundtruth import channel_shares, tau_recovery  # noqa: E402
from deepstrf_utils.models import LinearNonlinear, fit_ridge_strf  # noqa: E402
from deepstrf_utils.training import evaluate, fit_single_units  # noqa: E402

logger = logging.getLogger("recovery")

#: the study's base fitting budget (the first quick profile; configurations override lr / loss).
#: The quick profile now uses lr 1e-2 and a prefilter lr of 3e-2, the study's recommendation.
QUICK_FIT = {"loss": "mse", "lr": 1e-3, "weight_decay": 1e-2, "max_epochs": 30, "patience": 5, "batch_size": 4}


class ScaledAdapTrans(nn.Module):
    """AdapTrans with a learning-rate multiplier and per-neuron fixed values (study helper).

    Same filter as :class:`deepstrf_utils.adaptrans.AdapTrans` (kernels built by the same
    code) but the logits are ``lr_scale * raw`` with ``raw`` the trained parameters, so
    Adam moves them ``lr_scale`` times faster. ``learnable=False`` stores them as buffers
    (the oracle / fixed-Willmore controls).

    forward: x ``(B, 1, F, T)`` -> ``(B, 2, F, T)`` (ON, OFF).
    """

    out_channels = 2

    def __init__(self, cf_hz, dt_ms=5.0, tau_on_ms=None, tau_off_ms=None, w0=0.75, kernel_size=None,
                 rectify="relu", lr_scale=1.0, learnable=True):
        super().__init__()
        cf = np.asarray(cf_hz, dtype=np.float64)
        tau_w = willmore_tau_ms(cf)
        tau_on = tau_w if tau_on_ms is None else np.broadcast_to(np.asarray(tau_on_ms, float), cf.shape)
        tau_off = tau_w if tau_off_ms is None else np.broadcast_to(np.asarray(tau_off_ms, float), cf.shape)
        w0 = np.broadcast_to(np.asarray(w0, float), cf.shape)
        self.cf_hz, self.dt_ms, self.rectify, self.lr_scale = cf, float(dt_ms), rectify, float(lr_scale)
        self.kernel_size = int(kernel_size or default_kernel_size(tau_w, dt_ms))
        for name, value in (("raw_a_on", _logit(np.exp(-dt_ms / tau_on))),
                            ("raw_a_off", _logit(np.exp(-dt_ms / tau_off))),
                            ("raw_w", _logit(w0))):
            t = torch.as_tensor(value / self.lr_scale, dtype=torch.float32)
            if learnable:
                self.register_parameter(name, nn.Parameter(t))
            else:
                self.register_buffer(name, t)

    @property
    def w(self):
        """(F,) weight of the present bin."""
        return torch.sigmoid(self.lr_scale * self.raw_w)

    @property
    def tau_on_ms(self):
        """(F,) ON time constant in ms."""
        return self.dt_ms / nn.functional.softplus(-self.lr_scale * self.raw_a_on)

    @property
    def tau_off_ms(self):
        """(F,) OFF time constant in ms."""
        return self.dt_ms / nn.functional.softplus(-self.lr_scale * self.raw_a_off)

    def forward(self, x):
        """x (B, 1, F, T) -> (B, 2, F, T)."""
        s = self.lr_scale
        kern = _kernels_from_log(nn.functional.logsigmoid(s * self.raw_a_on),
                                 nn.functional.logsigmoid(s * self.raw_a_off), self.w, self.kernel_size)
        return _filter_with_kernels(x, kern, self.rectify, "fft")


def _logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


# ------------------------------------------------------------------------------ configurations
#: name -> settings; prefilter: None | "adaptrans" (library class) | "scaled" (ScaledAdapTrans)
CONFIGS: dict[str, dict] = {
    "ridge": {"kind": "ridge"},
    "ridge_at_true": {"kind": "ridge", "prefilter": "true"},
    "ridge_at_willmore": {"kind": "ridge", "prefilter": "willmore_relu"},
    "ln": {"prefilter": None},
    "at_lin": {"prefilter": "adaptrans", "rectify": None},
    "at_relu": {"prefilter": "adaptrans", "rectify": "relu"},
    "at_relu_fixed_willmore": {"prefilter": "scaled", "rectify": "relu", "learnable": False},
    "at_relu_fixed_true": {"prefilter": "scaled", "rectify": "relu", "learnable": False, "true": True},
    "at_lin_s10": {"prefilter": "scaled", "rectify": None, "lr_scale": 10.0},
    "at_relu_s10": {"prefilter": "scaled", "rectify": "relu", "lr_scale": 10.0},
    "at_relu_s30": {"prefilter": "scaled", "rectify": "relu", "lr_scale": 30.0},
    "at_relu_s30_k256": {"prefilter": "scaled", "rectify": "relu", "lr_scale": 30.0, "kernel_size": 256},
    "at_relu_s30_poisson": {"prefilter": "scaled", "rectify": "relu", "lr_scale": 30.0, "fit": {"loss": "poisson"},
                            "nonlinearity": "softplus"},
    "at_relu_s30_lags30": {"prefilter": "scaled", "rectify": "relu", "lr_scale": 30.0, "n_lags": 30},
    "ln_lr1e-2": {"prefilter": None, "fit": {"lr": 1e-2}},
    "at_relu_lr1e-2": {"prefilter": "adaptrans", "rectify": "relu", "fit": {"lr": 1e-2}},
    "at_relu_lr1e-2_s3": {"prefilter": "scaled", "rectify": "relu", "lr_scale": 3.0, "fit": {"lr": 1e-2}},
    "ln_poisson_lr1e-2": {"prefilter": None, "fit": {"loss": "poisson", "lr": 1e-2}, "nonlinearity": "softplus"},
    "at_relu_poisson_lr1e-2": {"prefilter": "adaptrans", "rectify": "relu", "fit": {"loss": "poisson", "lr": 1e-2},
                               "nonlinearity": "softplus"},
    "at_lin_poisson_lr1e-2": {"prefilter": "adaptrans", "rectify": None, "fit": {"loss": "poisson", "lr": 1e-2},
                              "nonlinearity": "softplus"},
    "at_relu_s30_long": {"prefilter": "scaled", "rectify": "relu", "lr_scale": 30.0,
                         "fit": {"max_epochs": 100, "patience": 10}},
    "ln_long": {"prefilter": None, "fit": {"max_epochs": 100, "patience": 10}},
}


# ------------------------------------------------------------------------------ A: identifiability
def sensitivity_table(ds, factors=(0.5, 2.0)) -> pd.DataFrame:
    """Change of each neuron's noiseless rate when its true tau_on or tau_off is scaled.

    Returns one row per (channel, factor) with medians over the non-noisy neurons whose
    channel carries >= 20 % of their STRF energy of
    ``frac_signal`` = sum (r' - r)^2 / sum (r - mean r)^2 (fraction of the signal variance)
    and ``chi2_per_bin`` = mean (r' - r)^2 / (mean r / R), the squared change in units of
    the Poisson variance of the R-trial average (> 1 per bin: easily detectable).
    """
    gt = ds.ground_truth
    stims = list(ds.stimuli)
    base = np.concatenate(true_rate(stims, gt), axis=1).astype(np.float64)
    share = channel_shares(gt["strf"])
    R = ds.responses[0].shape[1]
    rows = []
    for c, ch in enumerate(("on", "off")):
        ok = ~np.asarray(gt["noisy"], bool) & (share[:, c] >= 0.2)
        for f in factors:
            g = dict(gt)
            g[f"a_{ch}"] = np.exp(-ds.dt_ms / (np.asarray(gt[f"tau_{ch}_ms"]) * f))
            pert = np.concatenate(true_rate(stims, g), axis=1).astype(np.float64)
            d2 = ((pert - base) ** 2).sum(1)
            sig = ((base - base.mean(1, keepdims=True)) ** 2).sum(1)
            chi = ((pert - base) ** 2).mean(1) / (base.mean(1) / R)
            rows.append({"channel": ch.upper(), "tau factor": f, "neurons": int(ok.sum()),
                         "frac_signal (median)": float(np.median((d2 / sig)[ok])),
                         "frac_signal (min)": float(np.min((d2 / sig)[ok])),
                         "chi2_per_bin (median)": float(np.median(chi[ok]))})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ B: fits
def recovery_stats(fitted: dict, ds, min_share: float = 0.2) -> dict:
    """:func:`deepstrf_utils.interpret.groundtruth.tau_recovery` of the fitted prefilters on ``ds``.

    fitted: ``tau_on_ms, tau_off_ms, w`` arrays (N, F) and ``cf_hz`` (F,). Returns r_on,
    r_off, r_pooled (Pearson of log factors), err_* (mean |log fitted / true factor|),
    err0_* (the Willmore initialisation's), n_*, r_w.
    """
    return tau_recovery(fitted, ds.ground_truth, fitted["cf_hz"], min_share=min_share)


def _model_fn(cfg, ds, neurons):
    """seed -> single-unit LN model for configuration ``cfg`` (called once per unit, in order)."""
    cf = [float(v) for v in ds.cf_hz]
    n_lags = cfg.get("n_lags", 20)
    nl = cfg.get("nonlinearity", "sigmoid")
    pf = cfg.get("prefilter")
    gt = ds.ground_truth
    it = iter(neurons)

    def make(seed):
        n = next(it)
        if pf is None:
            return LinearNonlinear(ds.n_bands, 1, n_lags, dt_ms=ds.dt_ms, nonlinearity=nl)
        if pf == "adaptrans":
            kw = {"cf_hz": cf, "rectify": cfg.get("rectify")}
            if "kernel_size" in cfg:
                kw["kernel_size"] = cfg["kernel_size"]
            return LinearNonlinear(ds.n_bands, 1, n_lags, prefilter="adaptrans", prefilter_kwargs=kw,
                                   dt_ms=ds.dt_ms, nonlinearity=nl)
        true = cfg.get("true", False)
        mod = ScaledAdapTrans(
            cf, ds.dt_ms,
            tau_on_ms=gt["tau_on_ms"][n] if true else None,
            tau_off_ms=gt["tau_off_ms"][n] if true else None,
            w0=gt["w"][n] if true else 0.75,
            kernel_size=int(gt["shared"]["adaptrans_kernel_size"]) if true else cfg.get("kernel_size"),
            rectify=cfg.get("rectify"), lr_scale=cfg.get("lr_scale", 1.0), learnable=cfg.get("learnable", True))
        return LinearNonlinear(ds.n_bands, 1, n_lags, prefilter=mod, dt_ms=ds.dt_ms, nonlinearity=nl)

    return make


def run_config(name: str, ds, split_seed: int = 0, fit_seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """Fit configuration ``name`` on every neuron of ``ds`` -> (summary row, per-neuron table)."""
    cfg = CONFIGS[name]
    train, val, test = ds.split(split_seed)
    t0 = time.perf_counter()
    fitted = None
    if cfg.get("kind") == "ridge":
        if cfg.get("prefilter") == "true":  # per neuron, its own true (rectified) prefilter
            parts = []
            gt = ds.ground_truth
            for n in range(ds.n_neurons):
                mod = ScaledAdapTrans(ds.cf_hz, ds.dt_ms, gt["tau_on_ms"][n], gt["tau_off_ms"][n], gt["w"][n],
                                      int(gt["shared"]["adaptrans_kernel_size"]), "relu", learnable=False)
                model, _ = fit_ridge_strf(train.select([n]), val.select([n]), n_lags=20, prefilter=mod)
                parts.append(evaluate(model, test.select([n])))
            scores = pd.concat(parts, ignore_index=True)
        elif cfg.get("prefilter") == "willmore_relu":  # AdapTrans fixed at its initialisation, ReLU
            mod = ScaledAdapTrans(ds.cf_hz, ds.dt_ms, rectify="relu", learnable=False)
            model, _ = fit_ridge_strf(train, val, n_lags=cfg.get("n_lags", 20), prefilter=mod)
            scores = evaluate(model, test)
        else:
            model, _ = fit_ridge_strf(train, val, n_lags=cfg.get("n_lags", 20))
            scores = evaluate(model, test)
        epochs = 0
    else:
        kw = {**QUICK_FIT, **cfg.get("fit", {})}
        neurons = list(range(ds.n_neurons))
        models, results = fit_single_units(_model_fn(cfg, ds, neurons), train, val, seed=fit_seed,
                                           device="cpu", progress=False, **kw)
        scores = pd.concat([evaluate(m, test.select([u])) for u, m in enumerate(models)], ignore_index=True)
        epochs = float(np.mean([r.epochs for r in results]))
        if cfg.get("prefilter") is not None:
            with torch.no_grad():
                pfs = [m.prefilter for m in models]
                fitted = {k: np.stack([getattr(p, k).detach().double().numpy() for p in pfs])
                          for k in ("tau_on_ms", "tau_off_ms", "w")}
            fitted["cf_hz"] = np.asarray(ds.cf_hz, np.float64)
    wall = time.perf_counter() - t0
    clean = ~np.asarray(ds.ground_truth["noisy"], bool)
    row = {"config": name, "cc_norm": float(np.nanmean(scores["cc_norm"])),
           "cc_norm_clean": float(np.nanmean(scores["cc_norm"].to_numpy()[clean])),
           "epochs": epochs, "wall_s": wall}
    if fitted is not None:
        row.update(recovery_stats(fitted, ds))
    scores["config"] = name
    return row, scores


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--neurons", type=int, default=20, help="first N neurons of the default synthetic set")
    ap.add_argument("--configs", default="ridge,ridge_at_willmore,ln,at_lin,at_relu,at_relu_fixed_willmore,"
                                         "at_relu_fixed_true,at_relu_lr1e-2,at_relu_lr1e-2_s3")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--root", default="data")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-sensitivity", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--csv", default=None, help="append the summary rows to this CSV")
    args = ap.parse_args(argv)
    if args.list:
        for k, v in CONFIGS.items():
            print(f"{k:28s} {v}")
        return
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    full = load_synthetic(root=args.root)
    ds = full.select(list(range(min(args.neurons, full.n_neurons))))
    print(f"synthetic set: {full.n_neurons} neurons (using {ds.n_neurons}), {full.n_stimuli} clips, "
          f"split seed {args.split_seed}, quick fit budget {QUICK_FIT}")
    if not args.skip_sensitivity:
        print("\nA. rate change when the true tau is scaled (median over non-noisy neurons)")
        print(sensitivity_table(ds).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    rows = []
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        if name not in CONFIGS:
            raise ValueError(f"unknown configuration {name!r}; expected one of {list(CONFIGS)}")
        row, _ = run_config(name, ds, args.split_seed)
        rows.append(row)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    table = pd.DataFrame(rows)
    print("\nB. single-unit fits (test split): cc_norm mean, tau-factor recovery")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        table.assign(neurons=ds.n_neurons, split_seed=args.split_seed).to_csv(
            args.csv, mode="a", header=not os.path.exists(args.csv), index=False)


if __name__ == "__main__":
    main()
