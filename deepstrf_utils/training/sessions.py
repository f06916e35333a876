"""Training on several recording sessions and with behavioural state: :func:`fit_sessions`.

:func:`fit_sessions` trains a :class:`~deepstrf_utils.models.MultiSessionModel` (shared core,
per-session readouts), a :class:`~deepstrf_utils.models.StateGainModel` or any zoo model on
one or several sessions (a :class:`~deepstrf_utils.datasets.SessionSet`, a dict of
datasets or one dataset), with :func:`~.fitting.fit`'s protocol and pieces (loss, AdamW
param groups, NaN checks, best weights restored):

* each epoch visits every batch of every session once, in a seeded interleaved order (the
  batches of all sessions shuffled together: no session is starved, none dominates an
  epoch's end);
* early stopping on the validation loss: of the one session, or with several sessions the
  **mean over sessions of each session's validation loss relative to its value at the start**
  (each a mean over its neurons), so that every session counts the same whatever its firing
  rates: a plain sum let the sessions with the largest losses decide, and stopped while a
  session with low rates (and little data) still improved;
* then (``refine_readouts``, the default for a MultiSessionModel with several sessions and
  validation data) each session's readout is refined with the core frozen, from the joint
  fit's best weights, with its own early stopping on its own validation loss, the joint
  fit's weights kept unless it improves on them: a session with few batches, whose readout
  had few steps when the joint early stop came, gets the steps it needs;
* models with state signals (``model.n_states > 0``) get each batch's state ``(B, S, T)``;
  bins where a state is NaN are left out of the loss.

:func:`fit_new_session` freezes the shared core and fits only a new session's readout
(transfer to a new recording) in one call; :func:`predict_sessions` and
:func:`evaluate_sessions` give per-session predictions and per-neuron scores.

Shapes: B stimuli, F bands, T bins, N neurons (per session), S state signals.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..datasets.sessions import SessionSet
from ..models import MultiSessionModel, model_device
from .arguments import check_fit_call, check_train_val
from .device import resolve_device, seed_everything
from .fitting import (FitResult, _batch_loss, _check_fit_args, _check_output, _check_parameters_finite, _concat_time,
                      _get_loss, _init_output, _nan_error)
from .optim import make_adamw
from .packing import _Packed, accepts_lengths
from .prediction import evaluate
from .stimulus_format import check_stimulus_format as check_format
from .stopping import INTERRUPTED, INTERRUPTED_RESULT, EarlyStopping, keep_interrupted

logger = logging.getLogger(__name__)

__all__ = ["SessionFitResult", "fit_sessions", "fit_new_session", "predict_sessions", "evaluate_sessions",
           "as_sessions", "combined_val_loss"]


@dataclass
class SessionFitResult(FitResult):
    """A :class:`FitResult` whose ``val_loss`` is the early-stopping criterion (one session: its
    validation loss; several: the mean of each session's loss relative to its starting value,
    :func:`combined_val_loss`); ``session_val_loss[session]`` holds each session's per-epoch
    validation loss, ``session_val_start`` its loss at the start, ``sessions`` the ids trained and
    ``readout_refits[session]`` the result of refining that session's readout (``refine_readouts``)."""

    session_val_loss: dict = field(default_factory=dict)
    session_val_start: dict = field(default_factory=dict)
    sessions: list = field(default_factory=list)
    readout_refits: dict = field(default_factory=dict)


def as_sessions(data, model: nn.Module | None = None) -> SessionSet:
    """A SessionSet from a SessionSet, a dict of datasets, or one dataset (keyed by the
    model's only session when the model is a one-session MultiSessionModel)."""
    if data is None or isinstance(data, SessionSet):
        return data
    if isinstance(data, dict):
        return SessionSet(data)
    if isinstance(model, MultiSessionModel):
        if len(model.session_ids) != 1:
            raise ValueError(f"expected a SessionSet or {{session: dataset}} for a model with sessions "
                             f"{model.session_ids}, got one dataset")
        return SessionSet({model.session_ids[0]: data})
    return SessionSet({str(getattr(data, "name", "session")).replace(".", "_") or "session": data})


def _n_states(model) -> int:
    return int(getattr(model, "n_states", 0) or 0)


def _check_model(model, sessions: SessionSet) -> None:
    """ValueError unless the model knows every session and takes the sessions' state signals."""
    if isinstance(model, MultiSessionModel):
        unknown = [k for k in sessions if k not in model.session_ids]
        if unknown:
            raise ValueError(f"unknown session(s) {unknown} for this model; expected ids among {model.session_ids} "
                             "(add one with model.add_session or fit_new_session)")
    elif len(sessions) != 1:
        raise ValueError(f"expected one session for a {type(model).__name__} (no per-session readouts), "
                         f"got {sessions.ids}: use a MultiSessionModel")
    s = _n_states(model)
    if s:
        names = sessions.state_names
        if len(names) != s:
            raise ValueError(f"expected datasets with S={s} state signals for this model, got {names or 'none'}")
        want = getattr(model, "state_names", None)
        if want is not None and list(want) != list(names):
            raise ValueError(f"expected the state signals {want} for this model, got {names}")


def _forward(model, x, key, state, lengths=None):
    kwargs = {}
    if lengths is not None and accepts_lengths(model):
        kwargs["lengths"] = lengths
    if isinstance(model, MultiSessionModel):
        kwargs["session"] = key
    if state is not None:
        kwargs["state"] = state
    return model(x, **kwargs)


def _pack(model, sessions: SessionSet, dev) -> dict:
    with_state = _n_states(model) > 0
    return {k: _Packed.from_dataset(ds, dev, with_state=with_state) for k, ds in sessions.items()}


def _epoch_batches(packs: dict, batch_size: int, gen: torch.Generator) -> list:
    """Every batch of every session once, ``(session, stimulus indices)``, in a seeded shuffled order."""
    batches = []
    for key, p in packs.items():
        order = torch.randperm(p.n_stimuli, generator=gen).tolist()
        batches += [(key, order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


@torch.no_grad()
def _session_val_losses(model, packs: dict, loss_fn, batch_size: int, epoch: int) -> dict:
    """Per session: the mean over its neurons of the loss on its concatenated validation stimuli."""
    model.eval()
    out = {}
    for key, p in packs.items():
        preds, targets = [], []
        for start in range(0, p.n_stimuli, batch_size):
            idx = list(range(start, min(start + batch_size, p.n_stimuli)))
            x, y = p.batch(idx)
            preds.append(_concat_time(_forward(model, x, key, p.batch_state(idx))))
            targets.append(_concat_time(y))
        target = torch.cat(targets, 2)
        per = loss_fn(torch.cat(preds, 2), target.unsqueeze(2), reduction="none")
        valid = torch.isfinite(target).any(2).any(0)
        if not bool(torch.isfinite(per[valid]).all()):
            raise _nan_error(epoch, per, valid, p.neuron_ids, f"validation loss of session {key!r}")
        out[key] = float(per[valid].mean()) if bool(valid.any()) else float("nan")
    return out


def combined_val_loss(per_session: dict, start: dict) -> float:
    """The early-stopping criterion of :func:`fit_sessions`: one session's validation loss as it
    is; with several, the mean over sessions of ``loss / loss at the start`` (sessions whose
    start is 0 or undefined count unscaled; NaN sessions are left out)."""
    if len(per_session) == 1:
        return float(next(iter(per_session.values())))
    rel = [v / start[k] if math.isfinite(start.get(k, math.nan)) and start[k] > 0 else v
           for k, v in per_session.items() if math.isfinite(v)]
    return float(np.mean(rel)) if rel else float("nan")


def fit_sessions(model: nn.Module, train, val=None, loss="mse", lr: float = 1e-3, weight_decay: float = 1e-2,
                 max_epochs: int = 1000, patience: int | None = 50, batch_size: int = 8,
                 clip_grad: float | None = None, device="auto", seed: int = 0, progress: bool = True,
                 min_delta: float = 0.0, init_output: bool = True,
                 prefilter_lr: float | None = None, check_stimulus_format: bool = True,
                 refine_readouts: bool | None = None, keep_start: bool = False) -> SessionFitResult:
    """Fit ``model`` on one or several sessions (see the module docstring for the protocol).

    Args:
        model: a MultiSessionModel (one readout per session id of ``train``), a
            StateGainModel or any zoo model (one session); trained in place.
        train, val: a SessionSet, ``{session id: ResponseDataset}`` or one ResponseDataset;
            with a state model the datasets must carry the model's state signals.
        check_stimulus_format: ValueError when the model's ``dt_ms`` or band centres differ
            from a session's (:mod:`.stimulus_format`); False allows it.
        refine_readouts: refine each session's readout with the core frozen after the joint
            fit (module docstring); None: for a MultiSessionModel with several sessions and a
            validation set.
        keep_start: the starting weights compete with the epochs (``best_epoch = -1`` when
            no epoch beats them on the validation set): a fine-tuning never ends worse.
        Other arguments as :func:`~.fitting.fit` (no LR scheduler here). Ctrl-C restores the
        best weights so far and re-raises with the result so far as ``err.fit_result``
        (``stop_reason="interrupted"``, :mod:`.stopping`).

    Returns:
        SessionFitResult: ``val_loss`` per epoch is the early-stopping criterion
        (:func:`combined_val_loss`), ``session_val_loss[session]`` the per-session losses.

    Raises:
        ValueError: a session the model does not know, sessions with another F / dt_ms,
            missing or other state signals, a model output of the wrong N.
    """
    check_fit_call(locals(), "fit_sessions")  # types, ranges, model, device: before any work
    _check_fit_args(lr, max_epochs, patience, batch_size, clip_grad, prefilter_lr)
    if refine_readouts and (not isinstance(model, MultiSessionModel) or val is None):
        raise ValueError(f"refine_readouts needs a MultiSessionModel and a validation set, got a "
                         f"{type(model).__name__} and val={'None' if val is None else 'given'}")
    t0 = time.perf_counter()
    tr_sets, va_sets = as_sessions(train, model), as_sessions(val, model)
    _check_model(model, tr_sets)
    if va_sets is not None:
        _check_model(model, va_sets)
        missing = [k for k in tr_sets if k not in va_sets]
        if missing:
            raise ValueError(f"expected a validation set for every training session, missing {missing}")
    for key, ds in tr_sets.items():  # each session's validation set belongs to it, and both to the model
        check_train_val(ds, va_sets[key] if va_sets is not None else None, model)
    if check_stimulus_format:
        for part, sets in (("training", tr_sets), ("validation", va_sets or {})):
            for key, ds in sets.items():
                check_format(model, ds, f"{part} set of session {key!r}")
    dev = resolve_device(device)
    seed_everything(seed)
    model.to(dev)
    tr, va = _pack(model, tr_sets, dev), (_pack(model, va_sets, dev) if va_sets is not None else None)
    for key, p in tr.items():
        p.check_neurons_have_data(f"training (session {key!r})")
        if init_output:
            if isinstance(model, MultiSessionModel):
                model.init_output(*p.target_stats(), session=key)
            else:
                _init_output(model, *p.target_stats())
    loss_fn = _get_loss(loss)
    gen = torch.Generator().manual_seed(seed)
    opt, params, _ = make_adamw(model, lr, weight_decay, prefilter_lr)
    res = SessionFitResult(sessions=list(tr), session_val_loss={k: [] for k in (va or {})})
    if va is not None:
        res.session_val_start = _session_val_losses(model, va, loss_fn, batch_size, 0)
    stopper = EarlyStopping(res, va is not None, patience, min_delta, 0.0, model=model)
    if keep_start and va is not None:
        stopper.keep(model, combined_val_loss(res.session_val_start, res.session_val_start))
    checked = set()
    bar = tqdm(range(max_epochs), disable=not progress, desc="fit sessions", leave=False)
    try:
        for epoch in bar:
            model.train()
            total, nb = 0.0, 0
            for key, idx in _epoch_batches(tr, batch_size, gen):
                x, y = tr[key].batch(idx)
                pred = _forward(model, x, key, tr[key].batch_state(idx), tr[key].batch_lengths(idx))
                if key not in checked:
                    _check_output(pred, x, tr[key].n_neurons, f"{tr[key].name}' (session '{key}")
                    checked.add(key)
                batch_loss, per, valid = _batch_loss(loss_fn, pred, y)
                value = float(batch_loss.detach())
                if not math.isfinite(value):
                    raise _nan_error(epoch, per, valid, tr[key].neuron_ids)
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                if clip_grad is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip_grad)
                opt.step()
                total, nb = total + value, nb + 1
            _check_parameters_finite(model, epoch)
            res.train_loss.append(total / max(nb, 1))
            res.lr.append(float(lr))
            v = float("nan")
            if va is not None:
                per_session = _session_val_losses(model, va, loss_fn, batch_size, epoch)
                for k, value in per_session.items():
                    res.session_val_loss[k].append(value)
                v = combined_val_loss(per_session, res.session_val_start)
            res.val_loss.append(v)
            if stopper.update(model, epoch, v):
                res.stopped_early = True
                break
    except KeyboardInterrupt as err:
        stopper.restore_interrupted(model)
        model.eval()
        res.epochs, res.stop_reason, res.wall_s = len(res.train_loss), INTERRUPTED, time.perf_counter() - t0
        keep_interrupted(err, res, f"fit_sessions {type(model).__name__}", res.epochs, res.best_epoch)
        raise
    res.epochs = len(res.train_loss)
    res.stop_reason = "patience" if res.stopped_early else "max_epochs" if va is not None else "no validation set"
    stopper.restore(model)
    if refine_readouts is None:
        refine_readouts = isinstance(model, MultiSessionModel) and len(tr) > 1 and va is not None
    if refine_readouts:
        kw = dict(loss=loss, lr=lr, weight_decay=weight_decay, max_epochs=max_epochs, patience=patience,
                  batch_size=batch_size, clip_grad=clip_grad, device=device, seed=seed, progress=False,
                  min_delta=min_delta, init_output=False, check_stimulus_format=False, keep_start=True)
        for key in tr:
            try:
                res.readout_refits[key] = fit_new_session(model, key, tr_sets[key], va_sets[key], **kw)
            except KeyboardInterrupt as err:
                res.readout_refits[key], res.stop_reason = getattr(err, INTERRUPTED_RESULT, None), INTERRUPTED
                keep_interrupted(err, res, f"fit_sessions {type(model).__name__} (readout of {key!r})", res.epochs,
                                 res.best_epoch)
                raise
    model.eval()
    res.wall_s = time.perf_counter() - t0
    logger.info("fit_sessions %s on %s: %d epochs, best %d (val %.4g), %.1f s", type(model).__name__, list(tr),
                res.epochs, res.best_epoch, res.best_val_loss, res.wall_s)
    return res


def fit_new_session(model: MultiSessionModel, session, train, val=None, **fit_kwargs) -> SessionFitResult:
    """Transfer to a new recording: freeze the shared core, add ``session`` (if new) and fit
    only its readout (and state gain) on ``train`` / ``val`` (ResponseDatasets). The core is
    unfrozen afterwards; the other sessions' readouts are left unchanged."""
    if not isinstance(model, MultiSessionModel):
        raise ValueError(f"expected a MultiSessionModel, got {type(model).__name__}")
    key = str(session)
    if key not in model.session_ids:
        model.add_session(key, train.n_neurons)
    frozen = [(n, p) for n, p in model.named_parameters()
              if not (n.startswith(f"readouts.{key}.") or n.startswith(f"state_gains.{key}."))]
    was = [p.requires_grad for _, p in frozen]
    model.freeze_core(True)
    for _, p in frozen:
        p.requires_grad_(False)
    try:
        return fit_sessions(model, {key: train}, None if val is None else {key: val}, **fit_kwargs)
    finally:
        for (_, p), r in zip(frozen, was):
            p.requires_grad_(r)
        model.freeze_core(False)


@torch.no_grad()
def predict_sessions(model: nn.Module, dataset, session=None, device=None, batch_size: int = 16,
                     check_stimulus_format: bool = True) -> list[np.ndarray]:
    """Predictions of a session / state model for every stimulus of ``dataset``: B ``(N, T_i)`` arrays.

    ``session``: the readout to use (MultiSessionModel; may be omitted with one session).
    State models read ``dataset.states`` (a NaN state bin is predicted with state 0).
    ``check_stimulus_format``: as in :func:`~.prediction.predict`.
    """
    if check_stimulus_format:
        check_format(model, dataset)
    dev = model_device(model) if device is None else resolve_device(device)
    model.to(dev)
    was_training = model.training
    model.eval()
    p = _Packed.from_dataset(dataset, dev, with_state=_n_states(model) > 0)
    key = model.session_key(session) if isinstance(model, MultiSessionModel) else None
    out = []
    try:
        for start in range(0, p.n_stimuli, batch_size):
            idx = list(range(start, min(start + batch_size, p.n_stimuli)))
            x, _ = p.batch(idx)
            pred = _forward(model, x, key, p.batch_state(idx)).float().cpu().numpy()
            out += [pred[j, :, :p._lengths_list[i]].copy() for j, i in enumerate(idx)]
    finally:
        model.train(was_training)
    return out


def evaluate_sessions(model: nn.Module, data, device=None, check_stimulus_format: bool = True) -> pd.DataFrame:
    """Per-neuron CCraw / CCnorm / CCmax of every session (``evaluate``), with a ``session`` column;
    ``check_stimulus_format`` as in :func:`~.prediction.predict`."""
    sessions = as_sessions(data, model)
    _check_model(model, sessions)
    rows = []
    for key, ds in sessions.items():
        preds = predict_sessions(model, ds, key if isinstance(model, MultiSessionModel) else None, device,
                                 check_stimulus_format=check_stimulus_format)
        rows.append(evaluate(None, ds, predictions=preds).assign(session=key))
    table = pd.concat(rows, ignore_index=True)
    return table[["session"] + [c for c in table.columns if c != "session"]]
