"""Notebook helpers for several sessions and behavioural state (notebooks 03 and 05).

Two experiments on the synthetic ground truth, sized by the run profile:

* ``state_gain``: a synthetic population whose neurons are modulated by a slow random state
  with known per-neuron gains and offsets (:func:`~deepstrf_utils.datasets.plant_state_gain`);
  an LN model without and with a state-gain readout (:class:`~deepstrf_utils.models.StateGainModel`);
  scores on the test stimuli and the fitted against the planted relative gains;
* ``shared_core``: three synthetic sessions of different neurons (one with little data); an
  NRF core shared by the three sessions (:class:`~deepstrf_utils.models.MultiSessionModel`)
  against an NRF trained on the smallest session alone, scored on that session's test set.

:func:`run_sessions_state` writes one row per neuron and model to
``results_dir/sessions_state_<profile>.csv`` (atomic; reused when present);
:func:`sessions_state_table` summarises it, :func:`~deepstrf_utils.report.figures_results.sessions_state_figure`
draws it.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..datasets import SessionSet, plant_state_gain
from ..datasets.synthetic import generate_synthetic
from ..files import atomic_write, quarantine, read_csv_text
from ..models import MultiSessionModel, StateGainModel, build_model
from ..training import evaluate_sessions, fit_sessions

__all__ = ["SIZES", "run_sessions_state", "sessions_state_table"]

#: profile -> sizes of the two experiments (smoke: seconds, for CI; quick: the tests' sizes)
SIZES = {
    "smoke": dict(state=dict(n_neurons=6, n_clips=6, clip_s=1.0, n_repeats=5), sessions_clips=8, small_clips=[0, 2, 4, 6],
                  sessions_neurons=4, fit=dict(max_epochs=5, patience=5)),
    "quick": dict(state=dict(n_neurons=10, n_clips=12, clip_s=2.0, n_repeats=20), sessions_clips=14, small_clips=[0, 2, 5, 7, 9],
                  sessions_neurons=6, fit=dict(max_epochs=300, patience=20)),
    "paper": dict(state=dict(n_neurons=30, n_clips=20, clip_s=5.0, n_repeats=20), sessions_clips=20, small_clips=[0, 2, 5, 7, 9, 13, 16],
                  sessions_neurons=10, fit=dict(max_epochs=1000, patience=50)),
}


def _scores(model, test, experiment, label, seed, wall_s, **extra) -> pd.DataFrame:
    table = evaluate_sessions(model, test)
    return table.assign(experiment=experiment, model=label, seed=seed, wall_s=wall_s, **extra)


def _state_experiment(size: dict, seed: int, device) -> pd.DataFrame:
    ds = generate_synthetic(n_bands=16, seed=seed, **size["state"])
    data = plant_state_gain(ds, seed=seed, gain_range=0.5, tau_s=0.3, state_names=["state"])
    train, val, test = data.split(seed)
    kw = dict(n_bands=16, n_neurons=data.n_neurons, n_lags=20, nonlinearity="softplus")
    fk = dict(size["fit"], lr=1e-2, batch_size=4, weight_decay=0.0, device=device, progress=False, seed=seed)
    rows = []
    for label in ("LN", "LN + state gain"):
        torch.manual_seed(seed)
        model = build_model("LinearNonlinear", **kw)
        if label != "LN":
            model = StateGainModel(model, n_states=1, state_names=["state"])
        t0 = time.perf_counter()
        fit_sessions(model, train, val, **fk)
        fitted = model.state_gain.relative_gain()[:, 0].cpu().numpy() if label != "LN" else np.nan
        rows.append(_scores(model, test, "state_gain", label, seed, time.perf_counter() - t0,
                            planted_gain=data.ground_truth["state_gain"][:, 0], fitted_gain=fitted))
    return pd.concat(rows, ignore_index=True)


def _sessions_experiment(size: dict, seed: int, device) -> pd.DataFrame:
    n, b = size["sessions_neurons"], size["sessions_clips"]
    ds = generate_synthetic(n_neurons=3 * n, n_clips=b, clip_s=1.5, n_repeats=10, n_bands=16, seed=seed + 2)
    small = size["small_clips"]
    sessions = SessionSet({"big1": ds.select(range(0, n)), "big2": ds.select(range(n, 2 * n)).subset(range(1, b)),
                           "small": ds.select(range(2 * n, 3 * n)).subset(small)})
    train, val, test = sessions.split(seed)
    core = dict(n_bands=16, n_hidden=16, n_lags=15)
    fk = dict(size["fit"], lr=1e-2, batch_size=2, weight_decay=0.0, device=device, progress=False, seed=seed)
    rows = []
    for label in ("NRF, smallest session alone", "NRF core shared by 3 sessions"):
        torch.manual_seed(seed)
        if label.startswith("NRF core"):
            model, tr, va = MultiSessionModel("NetworkReceptiveField", core, sessions.n_neurons), train, val
        else:
            model, tr, va = build_model("NetworkReceptiveField", n_neurons=n, **core), train["small"], val["small"]
        t0 = time.perf_counter()
        fit_sessions(model, tr, va, **fk)
        rows.append(_scores(model, {"small": test["small"]} if label.startswith("NRF core") else test["small"],
                            "shared_core", label, seed, time.perf_counter() - t0,
                            train_stimuli=train["small"].n_stimuli))
    return pd.concat(rows, ignore_index=True).assign(session="small")


def run_sessions_state(profile: str, results_dir, seed: int = 0, device="cpu") -> pd.DataFrame:
    """Run (or read back) both experiments for ``profile`` -> one row per neuron and model.

    Columns: experiment, model, session, neuron, cc_raw, cc_norm, cc_max, seed, wall_s, and
    planted_gain / fitted_gain (state experiment) or train_stimuli (sessions experiment).
    """
    if profile not in SIZES:
        raise ValueError(f"expected a profile in {sorted(SIZES)}, got {profile!r}")
    path = Path(results_dir) / f"sessions_state_{profile}.csv"
    if path.exists():
        try:
            return pd.read_csv(io.StringIO(read_csv_text(path)), dtype={"neuron": str, "session": str})
        except ValueError as err:      # damaged: moved aside, computed again
            quarantine(path, str(err))
    size = SIZES[profile]
    table = pd.concat([_state_experiment(size, seed, device), _sessions_experiment(size, seed, device)],
                      ignore_index=True)
    atomic_write(path, lambda fh: table.to_csv(fh, index=False))
    return table


def sessions_state_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment and model: neurons, scored neurons, CCnorm (%) mean ± SEM over the
    scored ones, fit time, gain recovery r."""
    rows = []
    for (exp, model), g in results.groupby(["experiment", "model"], sort=False):
        cc = g["cc_norm"].dropna()
        row = {"experiment": exp, "model": model, "neurons": int(len(g)), "scored": int(len(cc)),
               "CCnorm (%)": 100.0 * cc.mean(),
               "SEM": 100.0 * cc.std(ddof=1) / np.sqrt(len(cc)) if len(cc) > 1 else np.nan,
               "fit_s": g["wall_s"].iloc[0], "gain_r": np.nan}
        if "fitted_gain" in g and g["fitted_gain"].notna().sum() > 2:
            row["gain_r"] = float(np.corrcoef(g["fitted_gain"], g["planted_gain"])[0, 1])
        rows.append(row)
    return pd.DataFrame(rows)
