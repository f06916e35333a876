"""The vision experiments of notebook 06: settings per profile, fits with and without AdapTrans,
the paired test over neurons, and the Allen natural-scenes check.

Floor of the runs (``runs/``): imports datasets, models, training and metrics. Shapes: B
movies, C channels, H x W pixels, T frames, N neurons.

* :data:`VISION_SETTINGS` / :func:`vision_settings`: data sizes, models, fitting arguments
  and seeds of the smoke / quick / paper profiles;
* :func:`fit_visual_model`, :func:`compare_prefilters`: each model with and without AdapTrans
  per pixel, per-neuron test scores (``cc_norm``, ``cc_raw``) with the neuron's planted kind;
* :func:`paired_prefilter_test`: AdapTrans vs none over the neurons of one kind (Wilcoxon
  signed-rank, paired by neuron, scores averaged over seeds first);
* :func:`allen_check` / :func:`allen_summary`: a CNN core with a spatial readout against the
  ridge receptive field on the Allen V1 natural scenes, per seed (validation images drawn
  per seed), per-neuron correlation over the 18 test images (no noise ceiling exists), and
  an image-shuffled control of the same CNN (the chance level of this check);
  :func:`find_allen_root` looks for the data.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..datasets.allen import is_available as allen_available
from ..models import VISUAL_MODELS, fit_ridge_rf
from ..training import evaluate, fit
from ..training.device import seed_everything

logger = logging.getLogger(__name__)

#: the folder above the package (the repository root of a source checkout)
SOURCE_ROOT = Path(__file__).resolve().parents[2]

__all__ = ["VISION_SETTINGS", "vision_settings", "fit_visual_model", "compare_prefilters", "paired_prefilter_test",
           "find_allen_root", "allen_check", "allen_summary"]

#: AdamW for the CNN; its validation loss rises for 10-25 epochs before it falls (more with
#: AdapTrans), hence a long patience (15 stopped AdapTrans fits at their first epochs)
_ADAMW = {"optimizer": "adamw", "lr": 5e-3, "batch_size": 2, "prefilter_lr": 1e-2}
_CNN = {"channels": [6], "spatial_kernels": [9], "temporal_kernels": [8], "readout": "factorised"}
_ALLEN_CNN = {"channels": [8], "spatial_kernels": [9], "temporal_kernels": [1], "readout": "gaussian",
              "nonlinearity": None}
#: AdamW for the Allen CNN: with L-BFGS's patience of 2 its validation loss never beat the
#: initial (mean) prediction, so early stopping kept an untrained core
_ALLEN_FIT = {"optimizer": "adamw", "lr": 3e-3, "batch_size": 8, "patience": 20, "max_epochs": 300}

#: per profile: the synthetic population's options, the models (name -> constructor
#: arguments), the fitting arguments and AdapTrans arguments per model, the seeds, the Allen
#: check's seeds and fitting arguments, the windows of the gradient receptive fields and the
#: steps of the MEI search
VISION_SETTINGS: dict[str, dict] = {
    "smoke": {
        "data": {"n_neurons": 6, "frame_hw": [8, 8], "n_repeats": 3, "n_movies": 5, "segment_frames": 24},
        "models": {"VisualLinearNonlinear": {"n_lags": 6},
                   "SpatioTemporalCNN": {**_CNN, "channels": [3], "spatial_kernels": [5], "temporal_kernels": [4]}},
        "fit": {"VisualLinearNonlinear": {"max_epochs": 1}, "SpatioTemporalCNN": {**_ADAMW, "max_epochs": 1}},
        "seeds": [0], "allen_seeds": [0], "allen_fit": {"max_epochs": 1}, "n_windows": 16, "mei_steps": 10,
    },
    "quick": {
        "data": {"n_neurons": 16},
        "models": {"VisualLinearNonlinear": {"n_lags": 8}, "SpatioTemporalCNN": dict(_CNN)},
        "fit": {"VisualLinearNonlinear": {}, "SpatioTemporalCNN": {**_ADAMW, "patience": 40, "max_epochs": 300}},
        "seeds": [0, 1], "allen_seeds": [0, 1, 2], "allen_fit": dict(_ALLEN_FIT), "n_windows": 128, "mei_steps": 150,
    },
    "paper": {
        "data": {"n_neurons": 24, "n_repeats": 10},
        "models": {"VisualLinearNonlinear": {"n_lags": 8}, "SpatioTemporalCNN": dict(_CNN)},
        "fit": {"VisualLinearNonlinear": {}, "SpatioTemporalCNN": {**_ADAMW, "patience": 50, "max_epochs": 500}},
        "seeds": [0, 1, 2, 3, 4], "allen_seeds": list(range(10)), "allen_fit": dict(_ALLEN_FIT), "n_windows": 256,
        "mei_steps": 300,
    },
}


def vision_settings(profile: str) -> dict:
    """A copy of :data:`VISION_SETTINGS` for ``profile`` (smoke, quick, paper); ValueError otherwise."""
    key = str(profile).strip().lower()
    if key not in VISION_SETTINGS:
        raise ValueError(f"unknown profile {profile!r}; expected one of {list(VISION_SETTINGS)}")
    return copy.deepcopy(VISION_SETTINGS[key])


def fit_visual_model(name: str, model_kwargs: dict, train, val, prefilter=None, fit_kwargs: dict | None = None,
                     seed: int = 0, device: str = "cpu", prefilter_kwargs: dict | None = None):
    """Build ``name`` (a visual model) for ``train``'s frames and neurons, seed it, fit it -> (model, FitResult).

    A ``VisualLinearNonlinear`` starts from the closed-form ridge receptive fields on its own
    (initial) prefilter channels (:func:`~deepstrf_utils.models.fit_ridge_rf`), as ``fit`` starts
    the auditory Linear / LN models; then ``fit`` trains everything, AdapTrans included.
    ``prefilter_lr`` is dropped without a prefilter; ``prefilter_kwargs`` go to the prefilter.
    """
    if name not in VISUAL_MODELS:
        raise ValueError(f"expected a visual model name in {sorted(VISUAL_MODELS)}, got {name!r}")
    kwargs = dict(fit_kwargs or {})
    if prefilter is None:
        kwargs.pop("prefilter_lr", None)
    seed_everything(seed)
    model = VISUAL_MODELS[name](train.frame_shape, train.n_neurons, prefilter=prefilter, dt_ms=train.dt_ms,
                                prefilter_kwargs=(prefilter_kwargs or None) if prefilter else None, **model_kwargs)
    if name == "VisualLinearNonlinear":
        ridge, _ = fit_ridge_rf(train, val, n_lags=model.n_lags, prefilter=model.prefilter)
        with torch.no_grad():
            model.weight.copy_(ridge.weight)
            model.bias.copy_(ridge.bias)
    result = fit(model, train, val, seed=seed, device=device, progress=False, **kwargs)
    return model, result


def compare_prefilters(dataset, settings: dict, seeds=None, device: str = "cpu"):
    """Every model of ``settings`` with and without AdapTrans, on ``dataset.split(seed)`` per seed.

    Returns ``(scores, models)``: scores is a long table (model, prefilter, seed, neuron,
    cc_norm, cc_raw, kind, epochs, fit_s) with ``kind`` the planted kind of the neuron when
    the dataset has a ground truth (``adapting`` / ``sustained``), and ``models`` maps
    ``(model, prefilter, seed)`` to the fitted module.
    """
    seeds = settings["seeds"] if seeds is None else list(seeds)
    gt = dataset.ground_truth or {}
    kind = np.where(np.asarray(gt["adapting"], bool), "adapting", "sustained") if "adapting" in gt else "unknown"
    rows, models = [], {}
    for seed in seeds:
        train, val, test = dataset.split(seed)
        for name, kwargs in settings["models"].items():
            for prefilter in (None, "adaptrans"):
                model, res = fit_visual_model(name, kwargs, train, val, prefilter, settings["fit"].get(name), seed, device,
                                              settings.get("prefilter_kwargs", {}).get(name))
                scores = evaluate(model, test)
                label = prefilter or "none"
                models[(name, label, seed)] = model.eval()
                rows.append(scores.assign(model=name, prefilter=label, seed=seed, kind=kind, epochs=res.epochs,
                                          fit_s=res.wall_s))
                logger.info("%s + %s, seed %d: mean cc_norm %.3f (%d epochs, %.1f s)", name, label, seed,
                            scores["cc_norm"].mean(), res.epochs, res.wall_s)
    table = pd.concat(rows, ignore_index=True)
    return table[["model", "prefilter", "seed", "neuron", "kind", "cc_norm", "cc_raw", "epochs", "fit_s"]], models


def paired_prefilter_test(scores: pd.DataFrame, model: str, kind: str | None = "adapting", metric: str = "cc_norm") -> dict:
    """AdapTrans vs no prefilter for ``model`` over the neurons of ``kind`` (None: all), paired
    by neuron after averaging over seeds: Wilcoxon signed-rank test (two-sided).

    Returns ``{"model", "kind", "metric", "n", "mean_none", "mean_adaptrans", "median_difference",
    "n_better", "statistic", "p_value"}``.
    """
    sub = scores[scores["model"] == model]
    if kind is not None:
        sub = sub[sub["kind"] == kind]
    wide = sub.groupby(["neuron", "prefilter"])[metric].mean().unstack("prefilter")
    if not {"none", "adaptrans"} <= set(wide.columns):
        raise ValueError(f"expected scores of {model} with prefilter 'none' and 'adaptrans', got {list(wide.columns)}")
    wide = wide.dropna()
    diff = wide["adaptrans"] - wide["none"]
    if len(diff) < 2 or np.allclose(diff, 0):
        stat, p = np.nan, np.nan
    else:
        res = stats.wilcoxon(wide["adaptrans"], wide["none"])
        stat, p = float(res.statistic), float(res.pvalue)
    return {"model": model, "kind": kind or "all", "metric": metric, "n": int(len(diff)),
            "mean_none": float(wide["none"].mean()), "mean_adaptrans": float(wide["adaptrans"].mean()),
            "median_difference": float(diff.median()), "n_better": int((diff > 0).sum()), "statistic": stat,
            "p_value": p}


def find_allen_root(data_root, repo: str | Path | None = None) -> Path | None:
    """The folder holding ``allen_v1_scenes/``: ``data_root`` if it has it, else the project's
    shared data folder (``../shared/data`` beside the repository root ``repo``; default: the
    source tree this package was imported from, :data:`SOURCE_ROOT`), else None."""
    candidates = [Path(data_root), Path(repo or SOURCE_ROOT).resolve().parent / "shared" / "data"]
    return next((c for c in candidates if allen_available(c)), None)


def _shuffled(dataset, seed: int):
    """The dataset with its images permuted among the training and validation stimuli (the
    test images untouched): a model fitted on it can only learn chance."""
    test = set(np.asarray(dataset.split_spec["test"]).tolist())
    rest = [i for i in range(dataset.n_stimuli) if i not in test]
    perm = np.random.default_rng(1000 + seed).permutation(rest)
    order = list(range(dataset.n_stimuli))
    for i, j in zip(rest, perm):
        order[i] = int(j)
    return dataset.replace(stimuli=[dataset.stimuli[j] for j in order])


def allen_check(dataset, seeds=(0, 1, 2), cnn_kwargs: dict | None = None, fit_kwargs: dict | None = None,
                shuffled_control: bool = True, device: str = "cpu") -> pd.DataFrame:
    """CNN core + spatial readout vs the ridge receptive field on the Allen natural scenes.

    Per seed: ``dataset.split(seed)`` (fixed 18 test images, 20 validation images drawn from
    the 100 training ones); the ridge RF on the pixels with alpha per neuron chosen on the
    validation correlation (:func:`~deepstrf_utils.models.fit_ridge_rf`); a
    :class:`~deepstrf_utils.models.SpatioTemporalCNN` (one-frame kernels, ``cnn_kwargs``)
    fitted by :func:`~deepstrf_utils.training.fit` with early stopping on the validation
    images; and, with ``shuffled_control``, the same CNN fitted on images shuffled among the
    training and validation stimuli. Scores: per-neuron correlation over the test images
    (``cc_raw``; no ceiling exists). Returns a long table: seed, neuron, model, cc_raw.
    """
    cnn = {**_ALLEN_CNN, **(cnn_kwargs or {})}
    rows = []
    for seed in seeds:
        train, val, test = dataset.split(seed)
        ridge, _ = fit_ridge_rf(train, val, n_lags=1)
        rows.append(evaluate(ridge, test).assign(model="ridge"))
        runs = [("cnn", train, val)]
        if shuffled_control:
            s_train, s_val, _ = _shuffled(dataset, seed).split(seed)
            runs.append(("cnn_shuffled", s_train, s_val))
        for label, tr, va in runs:
            model, _ = fit_visual_model("SpatioTemporalCNN", cnn, tr, va, None, fit_kwargs, seed, device)
            rows.append(evaluate(model, test).assign(model=label))
        for r in rows[-len(runs) - 1:]:
            r["seed"] = seed
    table = pd.concat(rows, ignore_index=True)
    return table[["seed", "neuron", "model", "cc_raw"]]


def allen_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per seed and over seeds: mean and median test correlation of each model and the
    number of neurons where the CNN beats the ridge RF (and a paired Wilcoxon test over
    neurons, CNN vs ridge, on the seed-averaged scores in the "all seeds" row)."""
    wide = table.pivot_table(index=["seed", "neuron"], columns="model", values="cc_raw")
    rows = []
    for seed, g in list(wide.groupby(level="seed")) + [("all seeds", wide.groupby(level="neuron").mean())]:
        row = {"seed": seed}
        for m in g.columns:
            row[f"{m}_mean"], row[f"{m}_median"] = float(g[m].mean()), float(g[m].median())
        ok = g[["cnn", "ridge"]].dropna()
        row["cnn_better"], row["neurons"] = int((ok["cnn"] > ok["ridge"]).sum()), int(len(ok))
        if seed == "all seeds" and len(ok) > 1:
            row["wilcoxon_p"] = float(stats.wilcoxon(ok["cnn"], ok["ridge"]).pvalue)
        rows.append(row)
    return pd.DataFrame(rows)
