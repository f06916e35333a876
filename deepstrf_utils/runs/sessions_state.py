"""The synthetic experiments of several sessions and behavioural state (notebooks 03 and 05).

Two experiments on the synthetic ground truth, sized by the run profile and repeated over
its seeds (each seed draws new neurons, a new split and a new initialisation):

* ``state_gain``: a synthetic population whose neurons are modulated by a slow random state
  with known per-neuron gains and offsets (:func:`~deepstrf_utils.datasets.plant_state_gain`);
  an LN model without a state input, and the same LN with a state-gain readout
  (:class:`~deepstrf_utils.models.StateGainModel`) started from the fitted stateless LN (as
  NEMS starts its state models from the stimulus model: the gains then get every epoch of
  the early-stopping budget, instead of being cut short while the LN overfits); scores on the
  test stimuli and the fitted against the planted relative gains;
* ``shared_core``: three synthetic sessions of different neurons (:func:`synthetic_sessions`),
  one with few training clips but the same validation and test clips as the others; an NRF
  core shared by the three sessions (:class:`~deepstrf_utils.models.MultiSessionModel`,
  :func:`~deepstrf_utils.training.fit_sessions`: early stopping on the sessions' relative
  validation losses, then each readout refined with the core frozen) against an NRF trained
  on that session alone, scored on its test set.

:func:`run_sessions_state` writes one row per seed, neuron and model to
``results_dir/sessions_state_<profile>_v<RESULTS_VERSION>.csv`` (atomic; reused when present);
:func:`~deepstrf_utils.report.tables.sessions_state_table` (spread over seeds) and
:func:`~deepstrf_utils.report.tables.sessions_state_seeds` (one row per seed) summarise it,
:func:`~deepstrf_utils.report.figures_results.sessions_state_figure` draws it. A neuron is
``reliable`` when its noise ceiling reaches :data:`~deepstrf_utils.metrics.MIN_CC_MAX`; CCnorm
(in %) means are over the reliable neurons, as everywhere in the project.
"""
from __future__ import annotations

import copy
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..datasets import SessionSet, plant_state_gain
from ..datasets.synthetic import generate_synthetic
from ..files import atomic_write, quarantine, read_csv_text
from ..metrics import MIN_CC_MAX
from ..models import MultiSessionModel, StateGainModel, build_model
from ..training import evaluate_sessions, fit_sessions

__all__ = ["SIZES", "RESULTS_VERSION", "STATE_LABELS", "synthetic_sessions", "state_experiment", "sessions_experiment",
           "run_sessions_state"]

#: bumped when the experiments change, so that an older results file is not read back
RESULTS_VERSION = 2

#: profile -> seeds and sizes of the two experiments (smoke: seconds, for CI). ``sessions``:
#: neurons per session, clips of the two big sessions (the second loses one), the clips every
#: session keeps for test and validation, the small session's training clips, the shared core
SIZES = {
    "smoke": dict(seeds=(0,), state=dict(n_neurons=6, n_clips=6, clip_s=1.0, n_repeats=5),
                  sessions=dict(n_neurons=4, n_clips=8, n_test=2, n_val=1, small_train=2, core="NetworkReceptiveField",
                                core_kwargs=dict(n_hidden=8, n_lags=15)),
                  fit=dict(max_epochs=5, patience=5)),
    "quick": dict(seeds=tuple(range(8)), state=dict(n_neurons=10, n_clips=12, clip_s=2.0, n_repeats=20),
                  sessions=dict(n_neurons=8, n_clips=16, n_test=4, n_val=2, small_train=2, core="NetworkReceptiveField",
                                core_kwargs=dict(n_hidden=32, n_lags=15)),
                  fit=dict(max_epochs=300, patience=20)),
    "paper": dict(seeds=tuple(range(10)), state=dict(n_neurons=30, n_clips=20, clip_s=5.0, n_repeats=20),
                  sessions=dict(n_neurons=10, n_clips=20, n_test=4, n_val=2, small_train=3, core="NetworkReceptiveField",
                                core_kwargs=dict(n_hidden=32, n_lags=15)),
                  fit=dict(max_epochs=1000, patience=50)),
}

#: the two models of the state experiment: without and with the state-gain readout
STATE_LABELS = ("LN", "LN + state gain")
_CORE_LABELS = {"NetworkReceptiveField": "NRF", "ConvNet2D": "2D-CNN", "PopulationCNN": "Pop-CNN"}


def _session_labels(core: str) -> tuple[str, str]:
    name = _CORE_LABELS.get(core, core)
    return f"{name}, smallest session alone", f"{name} core shared by 3 sessions"


def _scores(model, test, experiment, label, seed, wall_s, **extra) -> pd.DataFrame:
    table = evaluate_sessions(model, test)
    return table.assign(experiment=experiment, model=label, seed=seed, wall_s=wall_s,
                        reliable=table["cc_max"].to_numpy() >= MIN_CC_MAX, **extra)


def state_experiment(size: dict, seed: int, device="cpu") -> pd.DataFrame:
    """The state-gain experiment for one seed -> one row per neuron and model (module docstring)."""
    ds = generate_synthetic(n_bands=16, seed=seed, **size["state"])
    data = plant_state_gain(ds, seed=seed, gain_range=0.5, tau_s=0.3, state_names=["state"])
    train, val, test = data.split(seed)
    kw = dict(n_bands=16, n_neurons=data.n_neurons, n_lags=20, nonlinearity="softplus")
    fk = dict(size["fit"], lr=1e-2, batch_size=4, weight_decay=0.0, device=device, progress=False, seed=seed)
    planted = data.ground_truth["state_gain"][:, 0]
    torch.manual_seed(seed)
    ln = build_model("LinearNonlinear", **kw)
    t0 = time.perf_counter()
    fit_sessions(ln, train, val, **fk)
    rows = [_scores(ln, test, "state_gain", STATE_LABELS[0], seed, time.perf_counter() - t0, planted_gain=planted,
                    fitted_gain=np.nan)]
    model = StateGainModel(copy.deepcopy(ln), n_states=1, state_names=["state"])  # from the fitted stateless LN
    t0 = time.perf_counter()
    fit_sessions(model, train, val, init_output=False, **fk)
    rows.append(_scores(model, test, "state_gain", STATE_LABELS[1], seed, time.perf_counter() - t0, planted_gain=planted,
                        fitted_gain=model.state_gain.relative_gain()[:, 0].cpu().numpy()))
    return pd.concat(rows, ignore_index=True)


def synthetic_sessions(size: dict, seed: int) -> SessionSet:
    """Three sessions of different synthetic neurons: ``big1`` (all clips), ``big2`` (one clip
    fewer) and ``small`` (``small_train`` training clips); every session keeps ``n_test`` test
    and ``n_val`` validation clips, drawn per seed by its split."""
    s = size["sessions"]
    n, b = s["n_neurons"], s["n_clips"]
    ds = generate_synthetic(n_neurons=3 * n, n_clips=b, clip_s=1.5, n_repeats=10, n_bands=16, seed=seed + 2)

    def split(part):
        return part.replace(split_spec={"test": "random", "n_test": s["n_test"], "n_val": s["n_val"],
                                        "description": "sessions experiment: the same test and validation counts "
                                                       "in every session"})

    n_small = s["n_test"] + s["n_val"] + s["small_train"]
    return SessionSet({"big1": split(ds.select(range(0, n))), "big2": split(ds.select(range(n, 2 * n)).subset(range(1, b))),
                       "small": split(ds.select(range(2 * n, 3 * n)).subset(range(n_small)))})


def sessions_experiment(size: dict, seed: int, device="cpu") -> pd.DataFrame:
    """The shared-core experiment for one seed -> one row per neuron of the small session and model."""
    sessions = synthetic_sessions(size, seed)
    train, val, test = sessions.split(seed)
    name = size["sessions"]["core"]
    core = dict(n_bands=16, **size["sessions"]["core_kwargs"])
    fk = dict(size["fit"], lr=1e-2, batch_size=2, weight_decay=0.0, device=device, progress=False, seed=seed)
    labels = _session_labels(name)
    rows = []
    for label in labels:
        torch.manual_seed(seed)
        if label == labels[1]:
            model, tr, va = MultiSessionModel(name, core, sessions.n_neurons), train, val
        else:
            model = build_model(name, n_neurons=sessions["small"].n_neurons, **core)
            tr, va = train["small"], val["small"]
        t0 = time.perf_counter()
        fit_sessions(model, tr, va, **fk)
        rows.append(_scores(model, {"small": test["small"]} if label == labels[1] else test["small"],
                            "shared_core", label, seed, time.perf_counter() - t0,
                            train_stimuli=train["small"].n_stimuli, test_stimuli=test["small"].n_stimuli))
    return pd.concat(rows, ignore_index=True).assign(session="small")


def run_sessions_state(profile: str, results_dir, seeds=None, device="cpu") -> pd.DataFrame:
    """Run (or read back) both experiments for ``profile`` over ``seeds`` (None: the profile's)
    -> one row per seed, neuron and model.

    Columns: experiment, model, session, neuron, cc_raw, cc_norm, cc_max, reliable, seed,
    wall_s, and planted_gain / fitted_gain (state experiment) or train_stimuli / test_stimuli
    (sessions experiment).
    """
    if profile not in SIZES:
        raise ValueError(f"expected a profile in {sorted(SIZES)}, got {profile!r}")
    size = SIZES[profile]
    seeds = tuple(size["seeds"] if seeds is None else seeds)
    tag = "" if seeds == tuple(size["seeds"]) else "_seeds" + "-".join(str(s) for s in seeds)
    path = Path(results_dir) / f"sessions_state_{profile}{tag}_v{RESULTS_VERSION}.csv"
    if path.exists():
        try:
            return pd.read_csv(io.StringIO(read_csv_text(path)), dtype={"neuron": str, "session": str})
        except ValueError as err:      # damaged: moved aside, computed again
            quarantine(path, str(err))
    table = pd.concat([part for seed in seeds for part in (state_experiment(size, seed, device),
                                                           sessions_experiment(size, seed, device))],
                      ignore_index=True)
    atomic_write(path, lambda fh: table.to_csv(fh, index=False))
    return table
