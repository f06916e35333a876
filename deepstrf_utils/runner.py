"""Run many configurations x seeds into one tidy, resumable CSV, and summarise it.

A configuration is a dict::

    {"dataset": "ns1", "dataset_options": {...}, "model": "ConvNet2D", "model_kwargs": {...},
     "prefilter": None | "adaptrans" | "willmore", "prefilter_kwargs": {...},
     "mode": "single" | "population" | "state" | "sessions", "fit_kwargs": {...},
     "neurons": None | [ids], "note": "...", "sessions": None | {id: {"dataset", "dataset_options", "neurons"}}}

Modes "state" (a state-gain readout on a dataset with state signals) and "sessions" (a core
shared by the sessions named in "sessions", one readout each): :mod:`.session_runs`.

The "adaptrans" and "willmore" prefilters are built on the DATASET's band centres
(``cf_hz=dataset.cf_hz``, ``dt_ms=dataset.dt_ms``), so each band starts from the Willmore
time constant of its own frequency; ``prefilter_kwargs`` (e.g. ``{"rectify": "relu"}``,
``{"kernel_size": 48}``) are added on top and may override ``cf_hz``. Setting any of
``min_freq`` / ``max_freq`` / ``scale`` there selects computed centres instead.
``fit_kwargs`` go to ``fit`` / ``fit_single_units`` (e.g. ``lr``, ``prefilter_lr``, ``patience``).

For each seed the dataset is split anew (``dataset.split(seed)``) and every model is
initialised after ``torch.manual_seed(seed)``; "single" fits one model per neuron (batched,
:func:`~deepstrf_utils.training.fit_single_units`), "population" one model with N outputs
(:func:`~deepstrf_utils.training.fit`). Each neuron is scored on the test stimuli
(:func:`~deepstrf_utils.training.evaluate`; single units: every unit's predictions stacked,
one vectorised metrics call). Results: one row per neuron x seed x configuration.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import training
from .session_runs import SESSION_MODES, fit_session_config, load_sessions

logger = logging.getLogger(__name__)

__all__ = ["run_configs", "run_config", "config_id", "prefilter_kwargs_for", "summary_table", "markdown_table",
           "RESULT_COLUMNS"]

#: Columns of the results CSV, in order.
RESULT_COLUMNS = [
    "dataset", "model", "prefilter", "note", "mode", "seed", "neuron", "cc_raw", "cc_norm",
    "cc_max", "n_params", "epochs", "wall_s", "config_id",
]

_CONFIG_KEYS = {"dataset", "dataset_options", "model", "model_kwargs", "prefilter", "prefilter_kwargs",
                "mode", "fit_kwargs", "neurons", "note", "sessions"}
_DEFAULTS = {"dataset_options": {}, "model_kwargs": {}, "prefilter": None, "prefilter_kwargs": {},
             "mode": "single", "fit_kwargs": {}, "neurons": None, "note": "", "sessions": None}
#: prefilter_kwargs that select computed band centres instead of the dataset's cf_hz
_CENTRE_KEYS = ("cf_hz", "min_freq", "max_freq", "scale")


def _normalise(config: dict) -> dict:
    if not isinstance(config, dict):
        raise ValueError(f"expected a configuration dict, got {type(config).__name__}")
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise ValueError(f"unknown configuration key(s) {sorted(unknown)}; expected keys among {sorted(_CONFIG_KEYS)}")
    for key in ("dataset", "model"):
        if not isinstance(config.get(key), str):
            raise ValueError(f"expected configuration field {key!r} as a string, got {config.get(key)!r}")
    out = {**_DEFAULTS, **config}
    for key in ("dataset_options", "model_kwargs", "prefilter_kwargs", "fit_kwargs"):
        if out[key] is None:
            out[key] = {}
        if not isinstance(out[key], dict):
            raise ValueError(f"expected configuration field {key!r} as a dict, got {type(out[key]).__name__}")
        out[key] = dict(out[key])  # never modify the caller's dicts
    if out["mode"] not in ("single", "population", *SESSION_MODES):
        raise ValueError(f"expected mode 'single', 'population', 'state' or 'sessions', got {out['mode']!r}")
    if (out["mode"] == "sessions") != (out["sessions"] is not None):
        raise ValueError("expected a 'sessions' field exactly when mode is 'sessions'")
    if out["prefilter"] not in (None, "adaptrans", "willmore"):
        raise ValueError(f"expected prefilter None, 'adaptrans' or 'willmore', got {out['prefilter']!r}")
    for key in ("n_bands", "n_neurons", "dt_ms", "prefilter", "prefilter_kwargs"):
        if key in out["model_kwargs"]:
            raise ValueError(f"model_kwargs must not set {key!r}: it comes from the dataset / the 'prefilter' "
                             "and 'prefilter_kwargs' fields")
    if out["prefilter_kwargs"] and out["prefilter"] is None:
        raise ValueError(f"prefilter_kwargs {sorted(out['prefilter_kwargs'])} given without a prefilter: "
                         "expected prefilter 'adaptrans' or 'willmore'")
    for key in ("n_bands", "dt_ms"):
        if key in out["prefilter_kwargs"]:
            raise ValueError(f"prefilter_kwargs must not set {key!r}: it comes from the dataset")
    if "cf_hz" in out["prefilter_kwargs"]:
        out["prefilter_kwargs"]["cf_hz"] = [float(v) for v in np.asarray(out["prefilter_kwargs"]["cf_hz"]).ravel()]
    for key in ("device", "seed", "progress"):
        if key in out["fit_kwargs"]:
            raise ValueError(f"fit_kwargs must not set {key!r}: run_configs sets it")
    if out["neurons"] is not None:
        out["neurons"] = [str(n) for n in out["neurons"]]
    out["note"] = "" if out["note"] is None else str(out["note"])
    return out


def config_id(config: dict) -> str:
    """Stable 12-hex-digit hash of a (normalised) configuration: same dict -> same id.

    An empty ``prefilter_kwargs`` and a None ``sessions`` are left out of the hash, so
    configurations written before those fields existed keep their ids.
    """
    cfg = _normalise(config)
    if not cfg["prefilter_kwargs"]:
        del cfg["prefilter_kwargs"]
    if cfg["sessions"] is None:
        del cfg["sessions"]
    text = json.dumps(cfg, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def prefilter_kwargs_for(config: dict, dataset) -> dict | None:
    """The ``prefilter_kwargs`` a configuration's model gets on ``dataset``.

    For "adaptrans" / "willmore": ``{"cf_hz": [dataset.cf_hz as floats], **config["prefilter_kwargs"]}``
    (the dataset's centres are left out when the config sets any of cf_hz / min_freq /
    max_freq / scale); None without a prefilter. ``dt_ms`` is passed as the model's bin width.
    """
    cfg = _normalise(config)
    if cfg["prefilter"] is None:
        return None
    own = dict(cfg["prefilter_kwargs"])
    if any(k in own for k in _CENTRE_KEYS):
        return own
    cf = np.asarray(dataset.cf_hz, dtype=np.float64).ravel()
    if cf.shape != (dataset.n_bands,):
        raise ValueError(f"expected dataset.cf_hz of shape (F,) with F={dataset.n_bands}, got {cf.shape}")
    return {"cf_hz": [float(v) for v in cf], **own}


def _build(config: dict, dataset, n_neurons: int):
    from .models import build_model

    return build_model(config["model"], n_bands=dataset.n_bands, n_neurons=n_neurons, dt_ms=float(dataset.dt_ms),
                       prefilter=config["prefilter"], prefilter_kwargs=prefilter_kwargs_for(config, dataset),
                       **config["model_kwargs"])


def run_config(config: dict, dataset, seed: int, device="auto", checkpoint_dir=None,
               progress: bool = True) -> pd.DataFrame:
    """Fit and evaluate one configuration for one seed on an already loaded ``dataset``.

    Split with ``dataset.split(seed)``, optional neuron selection, model(s) built after
    ``torch.manual_seed(seed)``, fitted with ``fit_kwargs`` and ``seed``, scored on the
    test split. Returns one row per neuron with :data:`RESULT_COLUMNS`; ``wall_s`` is the
    fit time of the whole (configuration, seed), shared by its rows.
    """
    from .models import count_parameters

    cfg = _normalise(config)
    cid = config_id(cfg)
    if cfg["neurons"] is not None:
        dataset = dataset.select(cfg["neurons"])
    train, val, test = dataset.split(seed) if cfg["mode"] != "sessions" else (None, None, None)
    fit_kwargs = dict(cfg["fit_kwargs"])
    if cfg["mode"] in SESSION_MODES:
        scores, model = fit_session_config(cfg, dataset, seed, _build, device, progress)
        models = [model]
    elif cfg["mode"] == "population":
        training.seed_everything(seed)
        model = _build(cfg, dataset, dataset.n_neurons)
        result = training.fit(model, train, val, device=device, seed=seed, progress=progress, **fit_kwargs)
        scores = training.evaluate(model, test)
        scores["n_params"] = count_parameters(model)
        scores["epochs"] = result.epochs
        scores["wall_s"] = result.wall_s
        models = [model]
    else:
        def model_fn(s):
            return _build(cfg, dataset, 1)

        models, results = training.fit_single_units(model_fn, train, val, seeds=seed, device=device,
                                                    seed=seed, progress=progress, **fit_kwargs)
        # every unit's predictions stacked to (N, T_i) per stimulus, scored in one metrics call
        preds = training.predict_units(models, test)
        scores = training.evaluate(None, test, predictions=preds)
        scores["n_params"] = [count_parameters(m) for m in models]
        scores["epochs"] = [r.epochs for r in results]
        scores["wall_s"] = [r.wall_s for r in results]
        scores["neuron"] = list(dataset.neuron_ids)
    scores["dataset"] = cfg["dataset"]
    scores["model"] = cfg["model"]
    scores["prefilter"] = cfg["prefilter"] or "none"
    scores["note"] = cfg["note"]
    scores["mode"] = cfg["mode"]
    scores["seed"] = int(seed)
    scores["config_id"] = cid
    if checkpoint_dir is not None:
        folder = Path(checkpoint_dir)
        info = {"dataset": cfg["dataset"], "dataset_options": cfg["dataset_options"], "split_seed": int(seed),
                "seed": int(seed), "config": cfg, "config_id": cid}
        if cfg["mode"] != "single":
            training.save_checkpoint(folder / f"{cid}_seed{seed}.pt", models[0], metrics=scores, **info)
        else:
            for u, m in enumerate(models):
                nid = str(scores["neuron"].iloc[u])
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in nid)
                training.save_checkpoint(folder / f"{cid}_seed{seed}_{safe}.pt", m,
                                         metrics=scores.iloc[[u]].reset_index(drop=True), neuron=nid, **info)
    return scores[RESULT_COLUMNS]


def _read_results(out_csv: Path) -> pd.DataFrame:
    if not out_csv.exists():
        return pd.DataFrame(columns=RESULT_COLUMNS)
    df = pd.read_csv(out_csv, dtype={"neuron": str, "config_id": str, "note": str, "prefilter": str},
                     keep_default_na=False, na_values=[""])
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"expected {out_csv} to hold the results columns; missing {missing}")
    df["note"] = df["note"].fillna("")
    return df


def _write_atomic(df: pd.DataFrame, out_csv: Path) -> None:
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_results_", suffix=".csv", dir=out_csv.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            df.to_csv(fh, index=False)
        os.replace(tmp, out_csv)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def run_configs(configs: Sequence[dict], seeds: Sequence[int], out_csv, root="data", device="auto",
                checkpoint_dir=None, progress: bool = True) -> pd.DataFrame:
    """Run every configuration for every seed; append results to ``out_csv``; resume.

    ``(config_id, seed)`` pairs already in ``out_csv`` are skipped, so an interrupted run
    continues where it stopped; each new (configuration, seed) is appended atomically
    (the whole CSV is rewritten through a temp file + ``os.replace``). Datasets are loaded
    once per (name, options) with ``load_dataset(name, root, **dataset_options)``.

    Returns the full results table (old + new rows) with :data:`RESULT_COLUMNS`.
    """
    from .datasets import load_dataset

    configs = [_normalise(c) for c in configs]
    seeds = [int(s) for s in seeds]
    if not configs or not seeds:
        raise ValueError("expected at least one configuration and one seed")
    out_csv = Path(out_csv)
    results = _read_results(out_csv)
    done = set(zip(results["config_id"].astype(str), results["seed"].astype(int)))
    todo = [(c, s) for c in configs for s in seeds if (config_id(c), s) not in done]
    if len(todo) < len(configs) * len(seeds):
        logger.info("run_configs: %d of %d runs already in %s", len(configs) * len(seeds) - len(todo),
                    len(configs) * len(seeds), out_csv)
    cache: dict = {}
    for cfg, seed in tqdm(todo, disable=not progress, desc="runs"):
        key = (cfg["dataset"], json.dumps(cfg["dataset_options"], sort_keys=True, default=str))
        if cfg["sessions"] is not None:
            key = ("sessions", json.dumps(cfg["sessions"], sort_keys=True, default=str))
        if key not in cache:
            cache.clear()  # keep one dataset in memory at a time
            cache[key] = (load_dataset(cfg["dataset"], root=root, **cfg["dataset_options"]) if cfg["sessions"] is None
                          else load_sessions(cfg["sessions"], load_dataset, root))
        t0 = time.perf_counter()
        rows = run_config(cfg, cache[key], seed, device=device, checkpoint_dir=checkpoint_dir, progress=progress)
        logger.info("run_configs: %s %s seed %d: %d neurons in %.1f s", cfg["dataset"], cfg["model"], seed,
                    len(rows), time.perf_counter() - t0)
        results = rows if results.empty else pd.concat([results, rows], ignore_index=True)
        _write_atomic(results, out_csv)
    return results.reset_index(drop=True)


# ----------------------------------------------------------------------------- summaries

_PREFILTER_NAMES = {"adaptrans": "AdapTrans", "willmore": "Willmore"}


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Summary in the seed README's layout, one row per configuration.

    Columns: Dataset, Model ("ConvNet2D + AdapTrans"), Note, Parameters (per fitted model:
    per unit in "single" mode), CCraw (%), CCraw SEM, CCnorm (%), CCnorm SEM, Neurons,
    Seeds. Each neuron is first averaged over seeds, then neurons are averaged; SEM is
    across neurons (std with ddof=1 / sqrt(n)). NaN scores (e.g. CCnorm without repeats)
    are left out of the means.
    """
    needed = ["dataset", "model", "prefilter", "note", "seed", "neuron", "cc_raw", "cc_norm", "n_params", "config_id"]
    missing = [c for c in needed if c not in results.columns]
    if missing:
        raise ValueError(f"expected the results table of run_configs; missing columns {missing}")
    per_neuron = training.average_over_seeds(results, keys=("config_id",), values=("cc_raw", "cc_norm"))
    rows = []
    for cid, grp in per_neuron.groupby("config_id", sort=False):
        info = results[results["config_id"] == cid].iloc[0]
        pre = info["prefilter"]
        name = str(info["model"])
        if isinstance(pre, str) and pre not in ("", "none", "nan"):
            name += " + " + _PREFILTER_NAMES.get(pre, pre)
        row = {"Dataset": info["dataset"], "Model": name,
               "Note": "" if pd.isna(info["note"]) else str(info["note"]),
               "Parameters": int(results.loc[results["config_id"] == cid, "n_params"].median())}
        for col, label in (("cc_raw", "CCraw"), ("cc_norm", "CCnorm")):
            v = grp[col].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            row[f"{label} (%)"] = 100 * v.mean() if v.size else np.nan
            row[f"{label} SEM"] = 100 * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else np.nan
        row["Neurons"] = int(grp["neuron"].nunique())
        row["Seeds"] = int(results.loc[results["config_id"] == cid, "seed"].nunique())
        rows.append(row)
    cols = ["Dataset", "Model", "Note", "Parameters", "CCraw (%)", "CCraw SEM", "CCnorm (%)", "CCnorm SEM",
            "Neurons", "Seeds"]
    return pd.DataFrame(rows, columns=cols)


def markdown_table(df: pd.DataFrame, digits: int = 1, merge_sem: bool = True) -> str:
    """Render ``df`` as a GitHub markdown table (no ``tabulate`` needed).

    Floats get ``digits`` decimals, integers thousands separators; with ``merge_sem`` a
    column "X SEM" next to "X (%)" is merged into it as "43.7 ± 1.2". NaN -> "–".
    """
    table = df.copy()
    if merge_sem:
        for col in list(table.columns):
            if col.endswith(" SEM"):
                base = col[:-4] + " (%)"
                if base in table.columns:
                    table[base] = [_fmt_pm(m, s, digits) for m, s in zip(table[base], table[col])]
                    table = table.drop(columns=col)
    header = [str(c) for c in table.columns]
    lines = [[_fmt(v, digits) for v in row] for row in table.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) if c in df.columns else True for c in table.columns]
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out)


def _fmt(v, digits):
    if isinstance(v, str):
        return v.replace("|", "\\|")
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}f}"
    return str(v)


def _fmt_pm(m, s, digits):
    if m is None or not np.isfinite(m):
        return "–"
    if s is None or not np.isfinite(s):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"
