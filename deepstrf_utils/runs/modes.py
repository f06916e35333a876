"""The runner's state and multi-session configurations (called by :mod:`deepstrf_utils.runs.runner`).

``mode: "state"``: the configuration's model followed by a state gain
(:class:`~deepstrf_utils.models.StateGainModel`) on a dataset with state signals (e.g. NAT4
with its pupil signal); ``mode: "sessions"``: the configuration's model as a core shared by
the sessions named in ``config["sessions"]`` (``{session id: {"dataset": name,
"dataset_options": {...}, "neurons": [ids] or None}}``), one readout per session
(:class:`~deepstrf_utils.models.MultiSessionModel`). Both are fitted with
:func:`~deepstrf_utils.training.fit_sessions`; one row per neuron (``session:neuron`` ids
in sessions mode).
"""
from __future__ import annotations

from typing import Callable

import pandas as pd

from ..datasets import SessionSet
from ..models import MultiSessionModel, StateGainModel, count_parameters
from ..training import evaluate_sessions, fit_sessions, seed_everything

__all__ = ["SESSION_MODES", "load_sessions", "fit_session_config"]

SESSION_MODES = ("state", "sessions")


def load_sessions(spec: dict, load: Callable, root) -> SessionSet:
    """``{session id: {"dataset", "dataset_options", "neurons"}}`` -> SessionSet (``load`` = load_dataset)."""
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"expected 'sessions' as {{session id: {{'dataset': name, ...}}}}, got {spec!r}")
    out = {}
    for key, s in spec.items():
        if not isinstance(s, dict) or not isinstance(s.get("dataset"), str):
            raise ValueError(f"expected session {key!r} as {{'dataset': name, 'dataset_options': {{}}, "
                             f"'neurons': None}}, got {s!r}")
        ds = load(s["dataset"], root=root, **dict(s.get("dataset_options") or {}))
        out[key] = ds.select([str(n) for n in s["neurons"]]) if s.get("neurons") else ds
    return SessionSet(out)


def fit_session_config(cfg: dict, data, seed: int, build: Callable, device, progress: bool):
    """Fit and score a normalised ``"state"`` / ``"sessions"`` configuration for one seed.

    ``build(cfg, dataset, n_neurons)`` builds the configuration's zoo model (the runner's).
    Returns (scores with neuron, cc_raw, cc_norm, cc_max, n_params, epochs, wall_s; the model).
    """
    if cfg["mode"] == "sessions":
        if not isinstance(data, SessionSet):
            raise ValueError("expected mode 'sessions' with a 'sessions' field naming the sessions")
        first = data[data.ids[0]]
        template = build(cfg, first, 1)
        seed_everything(seed)
        model = MultiSessionModel(cfg["model"], template.config, data.n_neurons)
    else:
        if getattr(data, "states", None) is None:
            raise ValueError(f"expected mode 'state' on a dataset with state signals; '{data.name}' has none")
        seed_everything(seed)
        model = StateGainModel(build(cfg, data, data.n_neurons), n_states=len(data.state_names),
                               state_names=data.state_names)
    train, val, test = data.split(seed)
    result = fit_sessions(model, train, val, device=device, seed=seed, progress=progress, **cfg["fit_kwargs"])
    scores = evaluate_sessions(model, test, check_stimulus_format=cfg["fit_kwargs"].get("check_stimulus_format", True))
    if cfg["mode"] == "sessions":
        scores["neuron"] = scores["session"].astype(str) + ":" + scores["neuron"].astype(str)
    scores = scores.drop(columns=["session"])
    scores["n_params"] = count_parameters(model)
    scores["epochs"] = result.epochs
    scores["wall_s"] = result.wall_s
    return pd.DataFrame(scores), model
