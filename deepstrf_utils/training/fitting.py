"""Fitting one model (a single unit or a population model with N outputs): :func:`fit`.

Two paths, both minimising the loss (default mean-squared error) to the trial-averaged
response with early stopping on the validation loss and the best weights restored;
``optimizer="auto"`` picks one per model family, as measured on real and mismatched data
(``benchmarks/bench_fit_quality.py``; the rules in :mod:`.options`):

- ``optimizer="lbfgs"`` (the default of L, LN, the 2D-CNNs): full-batch L-BFGS (strong-Wolfe
  line search), a validation check every :data:`LBFGS_ITERATIONS_PER_EPOCH` iterations, stop
  after ``patience`` = 3 checks without a relative improvement of 1e-4, but not before a
  minimum number of epochs; Linear / LN models start from the closed-form ridge STRF on their
  own prefilter channels (:mod:`.warmstart`), LN also from its random start (:mod:`.race`).
- ``optimizer="adamw"`` (the default of NRF / DNet and of recurrent models, with their own
  settings; or any explicit ``lr``, ``prefilter_lr``, ``scheduler``, ``clip_grad``,
  ``weight_decay`` or ``batch_size``): AdamW (weight decay on weights only, not on time
  constants / gains: :func:`~.optim.no_decay_names`), minibatches, early stopping with patience 50.
  :data:`ADAMW_FIT_KWARGS` spells out the previous defaults (lr 1e-3, weight decay 1e-2,
  batch 8); the published protocol of each dataset (e.g. NS1: batch 1, no weight decay) is
  ``deepstrf_utils.runs.protocols.protocol_fit_kwargs(dataset)``, which the paper profile passes.

Shapes: B stimuli, F bands, T time bins, N neurons, R repeats.
"""
from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import metrics

from .arguments import check_fit_call
from .chunks import chunked_batch
from .device import resolve_device, seed_everything
from .objective import full_batch_objective
from .optim import _make_plateau, make_adamw
from .options import (LBFGS_CHUNK, LBFGS_ITERATIONS_PER_EPOCH, ADAMW_FIT_KWARGS, RECURRENT_AUTO,  # noqa: F401
                      _resolve_fit_options)
from .packing import _epoch_order, _Packed, accepts_lengths
from .race import race
from .stimulus_format import check_stimulus_format as check_format
from .stopping import INTERRUPTED, EarlyStopping, keep_interrupted

logger = logging.getLogger(__name__)

__all__ = ["FitResult", "fit", "ADAMW_FIT_KWARGS", "LBFGS_ITERATIONS_PER_EPOCH"]

@dataclass
class FitResult:
    """Outcome of one fit.

    train_loss, val_loss: per-epoch losses (val_loss is NaN without a validation set);
    lr: learning rate used in each epoch; best_epoch: 0-based index of the epoch whose
    weights were restored; epochs: epochs run; wall_s: wall-clock seconds of the whole fit
    (for :func:`fit_single_units`, of the batched fit shared by all units);
    stopped_early: patience ran out before max_epochs; stop_reason: why the fit ended
    ("patience", "max_epochs", "converged": L-BFGS made no progress, "no validation set",
    "interrupted": Ctrl-C, see :mod:`.stopping`);
    optimizer: "adamw" or "lbfgs"; init: "ridge" (closed-form STRF start) or None;
    init_train_loss, init_val_loss: losses of the starting point (L-BFGS path; NaN
    otherwise); neuron: the unit's id (single-unit fits); batched: trained inside a vmapped
    stack; train_chunk: ``(L, W)`` when trained on chunks of the sequences, else None. On
    the L-BFGS path a closed-form start (``init="ridge"``) competes with the epochs:
    ``best_epoch = -1`` means no epoch beat it on the validation set and the starting
    weights were kept. raced: when several L-BFGS starts were fitted and the best kept
    (LinearNonlinear's default, :mod:`.race`), each start's ``init``, ``best_val_loss`` and
    ``epochs``; else empty.
    """

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = float("nan")
    epochs: int = 0
    wall_s: float = 0.0
    stopped_early: bool = False
    stop_reason: str = ""
    optimizer: str = "adamw"
    init: str | None = None
    init_train_loss: float = float("nan")
    init_val_loss: float = float("nan")
    neuron: object = None
    batched: bool = False
    train_chunk: tuple | None = None
    raced: list = field(default_factory=list)

    def summary(self) -> str:
        """One line: epochs, best epoch, wall time, why it stopped."""
        return (f"{self.optimizer}{' + ' + self.init + ' init' if self.init else ''}: {self.epochs} epochs, "
                f"best {self.best_epoch}, {self.wall_s:.1f} s, stopped: {self.stop_reason or '?'}")

    @property
    def history(self) -> pd.DataFrame:
        """Per-epoch table: epoch, train_loss, val_loss, lr."""
        return pd.DataFrame({
            "epoch": np.arange(len(self.train_loss)),
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "lr": self.lr,
        })


def _get_loss(loss: str | Callable) -> Callable:
    """Loss name (``"mse"``, ``"poisson"``, ``"correlation"``) or callable -> callable.

    The callable takes ``pred (B, N, T)``, ``resp (B, N, R, T)`` (NaN = missing) and
    ``reduction="none"`` and returns per-neuron losses ``(N,)``.
    """
    if callable(loss):
        return loss
    if not isinstance(loss, str):
        raise ValueError(f"expected loss to be a name such as 'mse' or a callable, got {loss!r}")
    builtin = metrics.get_loss(loss)

    def averaged(pred, resp, reduction="mean"):
        # training passes its trial-averaged target as (B, N, 1, T); the built-in losses
        # take it as (B, N, T) directly: the same values with fewer passes over the data
        if resp.dim() == 4 and resp.shape[2] == 1:
            resp = resp[:, :, 0]
        return builtin(pred, resp, reduction=reduction)

    averaged.__name__ = getattr(builtin, "__name__", str(loss))
    return averaged


@torch.no_grad()
def _probe_output(model: nn.Module, packed: _Packed) -> None:
    """Check the model's output shape on the first stimulus (eval mode, no state change)."""
    was_training = model.training
    model.eval()
    try:
        x, _ = packed.batch([0])
        _check_output(model(x), x, packed.n_neurons, packed.name)
    finally:
        model.train(was_training)


def _init_output(model: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Call ``model.init_output(mean, std)`` (if the model has it) with the training target's
    per-neuron mean and std (``_Packed.target_stats()``), so that the output nonlinearity
    starts at the data's scale."""
    init = getattr(model, "init_output", None)
    if callable(init):
        init(mean, std)


def _check_fit_args(lr, max_epochs, patience, batch_size, clip_grad, prefilter_lr=None, rel_tol=0.0):
    if rel_tol is None or not 0.0 <= rel_tol < 1.0:
        raise ValueError(f"expected rel_tol in [0, 1), got {rel_tol}")
    if not lr > 0:
        raise ValueError(f"expected lr > 0, got {lr}")
    if prefilter_lr is not None and not prefilter_lr > 0:
        raise ValueError(f"expected prefilter_lr > 0 or None, got {prefilter_lr}")
    if int(max_epochs) < 1:
        raise ValueError(f"expected max_epochs >= 1, got {max_epochs}")
    if patience is not None and int(patience) < 1:
        raise ValueError(f"expected patience >= 1 or None, got {patience}")
    if int(batch_size) < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    if clip_grad is not None and not clip_grad > 0:
        raise ValueError(f"expected clip_grad > 0 or None, got {clip_grad}")


def _batch_loss(loss_fn, pred, target):
    """pred (B, N, T), target (B, N, T) -> (mean loss over neurons with data, per-neuron (N,), valid (N,))."""
    per = loss_fn(pred, target.unsqueeze(2), reduction="none")
    valid = torch.isfinite(target).flatten(2).any(2).any(0)
    per = torch.where(valid, per, torch.zeros((), dtype=per.dtype, device=per.device))
    return per.sum() / valid.sum().clamp(min=1), per, valid


def _concat_time(x):
    """(B, N, T) -> (1, N, B*T): stimuli concatenated along time."""
    return x.permute(1, 0, 2).reshape(1, x.shape[1], -1)


def _nan_error(epoch, per, valid, neuron_ids, what="loss"):
    bad = (~torch.isfinite(per.detach()) & valid).cpu()
    names = [neuron_ids[i] for i in torch.nonzero(bad).flatten().tolist()]
    return FloatingPointError(f"{what} is NaN/inf at epoch {epoch} for neuron(s) {names}")


def _check_output(pred, x, n_expected, name):
    if pred.dim() != 3 or pred.shape[0] != x.shape[0] or pred.shape[2] != x.shape[-1]:
        raise ValueError(
            f"expected the model to return (B, N, T) = ({x.shape[0]}, {n_expected}, {x.shape[-1]}), "
            f"got {tuple(pred.shape)}"
        )
    if pred.shape[1] != n_expected:
        raise ValueError(
            f"the model outputs N={pred.shape[1]} neurons but dataset '{name}' has N={n_expected}: "
            "build the model with n_neurons equal to the dataset's number of neurons"
        )


def fit(
    model: nn.Module,
    train,
    val=None,
    loss: str | Callable = "mse",
    lr: float | None = None,
    weight_decay: float | None = None,
    max_epochs: int | None = None,
    patience: int | None | str = "auto",
    batch_size: int | None = None,
    scheduler: str | None = None,
    scheduler_kwargs: dict | None = None,
    clip_grad: float | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
    min_delta: float = 0.0,
    init_output: bool = True,
    prefilter_lr: float | None = None,
    optimizer: str = "auto",
    init: str | None = "auto",
    rel_tol: float | None = None,
    train_chunk: tuple[int, int] | None | str = "auto",
    check_stimulus_format: bool = True,
) -> FitResult:
    """Fit ``model`` to the trial-averaged responses of ``train``.

    stim (B, 1, F, T) -> pred (B, N, T) vs. the trial mean of resp (B, N, R, T); NaN bins
    are ignored. After each epoch the validation loss is computed on the concatenated
    validation stimuli; training stops when it has not improved (by more than
    ``max(min_delta, rel_tol * best)``) for ``patience`` epochs, and the best weights
    (parameters and buffers) are restored. Without ``val`` (or with ``patience=None``) it
    runs ``max_epochs`` epochs and keeps the last weights (``val=None``) or the best ones.

    **Defaults (``optimizer="auto"``, no AdamW setting given), per model family** (chosen on a
    ferret A1 unit, a starling unit and a mismatched synthetic population, accuracy first:
    ``benchmarks/bench_fit_quality.py``, ``benchmarks/README.md``):

    - Linear: L-BFGS from the closed-form ridge STRF on its own prefilter channels
      (``init="ridge"``, :func:`~.warmstart.ridge_init`: penalty chosen by cross-validation on
      the training stimuli, then kept on the STRF, :func:`~.warmstart.ridge_penalty`).
      Deterministic: every seed gives the same fit.
    - LinearNonlinear: L-BFGS from the ridge start and from the random start; the fit with the
      lower validation loss is kept (:data:`~.options.LN_STARTS`, ``FitResult.raced``).
    - NetworkReceptiveField, DNet: AdamW with :data:`~.options.ADAMW_AUTO` (lr 3e-3, patience 20).
    - recurrent models (a GRU / LSTM / attention core, e.g. StateNet): AdamW with
      :data:`RECURRENT_AUTO`, trained on chunks of the sequences (``train_chunk``).
    - the other models (2D-CNNs): L-BFGS from the random start.

    L-BFGS: one epoch = :data:`LBFGS_ITERATIONS_PER_EPOCH` (5) iterations (``lr`` 1.0) on the
    loss over ALL training stimuli (in chunks of :data:`LBFGS_CHUNK` stimuli, value and gradient
    exact for every named loss: :mod:`.objective`), up to 200 epochs, ``patience`` 3,
    ``rel_tol`` 1e-4, never stopped by patience before :data:`~.options.LBFGS_MIN_EPOCHS` (10)
    epochs from a random start (its validation loss often rises first) or
    :data:`~.options.RIDGE_START_MIN_EPOCHS` (5) from the ridge start, which competes with the
    epochs (see :class:`FitResult`). No weight decay unless ``weight_decay`` is given with
    ``optimizer="lbfgs"`` (an L2 penalty); an explicit ``weight_decay`` or ``batch_size`` with
    ``optimizer="auto"`` selects AdamW.

    **AdamW (``optimizer="adamw"``, or any explicit ``lr``, ``prefilter_lr``, ``scheduler``,
    ``clip_grad``, ``weight_decay`` or ``batch_size``).** Each epoch visits the training stimuli in
    a seeded random order in batches of ``batch_size`` and takes AdamW steps (``lr``
    default 1e-3, ``weight_decay``); ``max_epochs`` default 1000, ``patience`` 50,
    ``rel_tol`` 0, no ridge start unless ``init="ridge"``. ``fit(model, train, val,
    **ADAMW_FIT_KWARGS)`` gives the previous defaults; the published protocol of a dataset
    is ``fit(model, train, val, **protocols.protocol_fit_kwargs(dataset))``.

    Args:
        model: ``forward((B, 1, F, T)) -> (B, N, T)`` with N = ``train.n_neurons``; trained in place
            (moved to ``device``).
        train, val: ``ResponseDataset`` (items ``(stim (1, F, T), resp (N, R, T))``).
        loss: "mse" (default), "poisson", "correlation", or a callable
            ``loss(pred (B, N, T), resp (B, N, R, T), reduction="none") -> (N,)``.
            The batch loss is the mean over neurons that have data in the batch.
        scheduler: None or "plateau" (LR x ``factor`` after ``patience`` bad epochs;
            defaults factor=0.5, patience=max(1, patience // 5); override via ``scheduler_kwargs``).
        clip_grad: max L2 norm of the whole gradient (None: no clipping).
        device: "auto" (cuda if available), "cpu", "cuda", ...
        seed: fixes torch / numpy / random and the data order.
        progress: show a tqdm bar over epochs.
        init_output: first call ``model.init_output(mean, std)`` (models that have it) with
            the per-neuron mean / std of the training target, so the output starts at the
            data's scale.
        weight_decay: None: 1e-2 on the AdamW path, none on the L-BFGS path. AdamW's
            decoupled weight decay, applied to the weights only; with ``optimizer="lbfgs"``
            the L2 penalty ``weight_decay / 2 * ||w||^2`` on the same weights. Time
            constants and gains are exempt (:func:`no_decay_names`): every ``prefilter.*``
            parameter (AdapTrans' ``logit_a_on / logit_a_off / logit_w``) and DNet's
            integrator parameters ``hidden_d / output_d``. Decay would pull the logits to 0,
            i.e. ``a -> 0.5`` (tau ~ 7 ms at 5 ms bins) and ``w -> 0.5``, most strongly in
            bands with little gradient, biasing the learned time constants.
        prefilter_lr: AdamW learning rate of the prefilter's parameters (names starting with
            ``"prefilter."``, e.g. AdapTrans' ``logit_a_on / logit_a_off / logit_w``); None: ``lr``
            for every parameter. The plateau scheduler scales both rates by the same factor;
            ``FitResult.lr`` records the main rate.
        optimizer: "auto" (per model family, above), "lbfgs" or "adamw".
        init: "auto" ("ridge" for Linear / LN on the L-BFGS path, LN also None: both raced; else
            None), "ridge" or None (the model's own, random, start).
        lr, max_epochs, patience, rel_tol: None / "auto" = the chosen path's default (above).
        batch_size: AdamW's batch (stimuli per step); also the validation pass's chunk. None:
            8 (:data:`RECURRENT_AUTO`'s on that path); with ``optimizer="lbfgs"``, ValueError.
        train_chunk: ``(L, W)``: AdamW trains on chunks of ``L`` bins of each stimulus, each
            with up to ``W`` bins of burn-in context before it, all chunks of a batch in one
            recurrent pass (truncated back-propagation; :mod:`.chunks`); the loss covers
            every valid bin once, validation and prediction use whole stimuli. "auto":
            :data:`RECURRENT_AUTO`'s (16, 8) for recurrent models with AdapTrans on the auto
            path, (64, 64) without it (the recurrence then holds the adaptation memory; the
            chunks bound what it can learn to about L + W bins), else None (whole stimuli). Only for models with ``recurrent_input`` /
            ``recurrent_output`` (e.g. StateNet), else ValueError.
        check_stimulus_format: ValueError when the model's ``dt_ms`` or its prefilter's band
            centres ``cf_hz`` differ from the data's (:mod:`.stimulus_format`); False allows it.

    Ctrl-C (``KeyboardInterrupt``) restores the best weights so far and re-raises, with the
    :class:`FitResult` so far (``stop_reason="interrupted"``) as ``err.fit_result`` (:mod:`.stopping`).

    Returns:
        FitResult with the per-epoch history, best_epoch, epochs, wall_s, stop_reason,
        optimizer, init.

    Raises:
        ValueError: model output N differs from the dataset's N, a neuron has no valid trial in
            ``train``, or the model's bin width / band centres are not the data's.
        FloatingPointError: NaN/inf in the loss or in a parameter (names the epoch and the
            neuron or parameter).
    """
    check_fit_call(locals())  # types, ranges, datasets (train vs val), device: before any work
    o = _resolve_fit_options(model, optimizer, init, lr, max_epochs, patience, rel_tol, prefilter_lr, scheduler,
                             clip_grad, train_chunk=train_chunk, batch_size=batch_size, weight_decay=weight_decay,
                             n_stimuli=len(train))
    batch_size = o["batch_size"]
    if check_stimulus_format:
        for part, what in ((train, "training set"), (val, "validation set")):
            if part is not None:
                check_format(model, part, what)
    _check_fit_args(o["lr"], o["max_epochs"], o["patience"], batch_size, clip_grad, prefilter_lr, o["rel_tol"])
    t0 = time.perf_counter()
    dev = resolve_device(device)
    seed_everything(seed)
    model.to(dev)
    tr = _Packed.from_dataset(train, dev)
    va = _Packed.from_dataset(val, dev) if val is not None else None
    _probe_output(model, tr)
    stats = tr.target_stats()
    if init_output:
        _init_output(model, *stats)
    if o["optimizer"] == "lbfgs":  # from each start of o["starts"]; the better on validation kept (:mod:`.race`)
        return race(model, [functools.partial(_lbfgs_from, start=s, tr=tr, va=va, loss=loss, o=o, stats=stats,
                                              batch_size=batch_size, seed=seed, progress=progress, min_delta=min_delta,
                                              t0=t0) for s in o["starts"]], t0)
    if o["init"] == "ridge":
        _ridge_start(model, tr, va, stats)
    res = _fit_packed(model, tr, va, loss, o["lr"], o["weight_decay"], o["max_epochs"], o["patience"], batch_size,
                      scheduler, scheduler_kwargs, clip_grad, seed, progress, min_delta, t0,
                      prefilter_lr=prefilter_lr, rel_tol=o["rel_tol"], train_chunk=o["train_chunk"])
    res.init = o["init"]
    return res


def _lbfgs_from(model, start, tr, va, loss, o, stats, batch_size, seed, progress, min_delta, t0,
                neuron=None) -> FitResult:
    """L-BFGS from ``start["init"]``: "ridge" (the closed-form STRF, its penalty kept) or None (the current weights)."""
    penalty = _ridge_start(model, tr, va, stats) if start["init"] == "ridge" else None
    return _fit_packed_lbfgs(model, tr, va, loss, o["lr"], o["max_epochs"], start["patience"], batch_size, seed,
                             progress, min_delta, o["rel_tol"], t0, neuron=neuron, init=start["init"],
                             weight_decay=o["weight_decay"], min_epochs=start["min_epochs"], penalty=penalty)


def _ridge_start(model, tr, va, stats):
    """Closed-form ridge STRF on the model's current prefilter channels (:func:`.warmstart.ridge_init`);
    returns its penalty for the gradient phase (:func:`.warmstart.ridge_penalty`)."""
    from .warmstart import ridge_init, ridge_penalty

    val = (va.stim, va.target, va.lengths) if va is not None else None
    sol = ridge_init(model, (tr.stim, tr.target, tr.lengths), val, mean=stats[0], std=stats[1])
    logger.info("ridge start for %s: alpha %s", type(model).__name__, np.array2string(sol["alpha"], precision=3))
    return ridge_penalty(model, sol, tr.target, std=stats[1])


def _validation_loss(model, va, loss_fn, batch_size: int, epoch: int) -> float:
    """Mean validation loss over the neurons with valid bins; NaN without a validation set."""
    if va is None:
        return float("nan")
    v_per, v_valid = _val_losses(model, va, loss_fn, batch_size, stacked=None)
    if not bool(torch.isfinite(v_per[v_valid]).all()):
        raise _nan_error(epoch, v_per, v_valid, va.neuron_ids, "validation loss")
    return float(v_per[v_valid].mean()) if bool(v_valid.any()) else float("nan")


def _checked_sets(tr, va):
    """Check the packed training / validation sets; the validation set, or None when no neuron
    has validation data (then fitted as without a validation set)."""
    tr.check_neurons_have_data("training")
    if va is not None and va.n_neurons != tr.n_neurons:
        raise ValueError(f"expected the validation set to have N={tr.n_neurons} neurons, got {va.n_neurons}")
    if va is not None and not bool(_validation_coverage(va).any()):
        return None
    return va


def _fit_packed(model, tr, va, loss, lr, weight_decay, max_epochs, patience, batch_size,
                scheduler, scheduler_kwargs, clip_grad, seed, progress, min_delta, t0,
                neuron=None, prefilter_lr=None, rel_tol=0.0, train_chunk=None) -> FitResult:
    loss_fn = _get_loss(loss)
    va = _checked_sets(tr, va)
    gen = torch.Generator().manual_seed(seed)
    # param groups: prefilter_lr, and no decay for time constants / gains (no_decay_names)
    opt, params, group_scales = make_adamw(model, lr, weight_decay, prefilter_lr)
    plateau = _make_plateau(scheduler, scheduler_kwargs, 1, lr, patience or 50)
    lrs = [float(lr)]
    res = FitResult(neuron=neuron, train_chunk=train_chunk)
    stopper = EarlyStopping(res, va is not None, patience, min_delta, rel_tol, model=model)
    checked = [train_chunk is not None]  # chunks: the output was checked by _probe_output
    pass_lengths = accepts_lengths(model)  # padded batches: BatchNorm statistics over valid bins

    def epoch_step(epoch) -> bool:
        model.train()
        order = _epoch_order(tr.n_stimuli, gen)
        total, nb = 0.0, 0
        for x, y, lengths in tr.batches(order, batch_size, with_lengths=True):
            if train_chunk is not None:
                pred, y = chunked_batch(model, x, y, lengths, train_chunk)
            else:
                pred = model(x, lengths=lengths) if pass_lengths and lengths is not None else model(x)
            if not checked[0]:
                _check_output(pred, x, tr.n_neurons, tr.name)
                checked[0] = True
            batch_loss, per, valid = _batch_loss(loss_fn, pred, y)
            value = float(batch_loss.detach())
            if not math.isfinite(value):
                raise _nan_error(epoch, per, valid, tr.neuron_ids)
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            if clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(params, clip_grad)
            opt.step()
            total += value
            nb += 1
        _check_parameters_finite(model, epoch)
        res.train_loss.append(total / max(nb, 1))
        res.lr.append(lrs[-1])
        v = _validation_loss(model, va, loss_fn, batch_size, epoch)
        res.val_loss.append(v)
        out_of_patience = stopper.update(model, epoch, v)
        if plateau is not None and va is not None:
            lrs.append(float(plateau.step(np.array([v]))[0]))
            for g, sc in zip(opt.param_groups, group_scales):
                g["lr"] = lrs[-1] * sc
        bar.set_postfix(train=f"{res.train_loss[-1]:.4g}", val=f"{v:.4g}", best=res.best_epoch)
        res.stopped_early = out_of_patience
        return out_of_patience

    bar = tqdm(range(max_epochs), disable=not progress, desc="fit", leave=False)
    return _run_epochs(model, res, stopper, bar, t0, "adamw", epoch_step)


def _fit_packed_lbfgs(model, tr, va, loss, lr, max_epochs, patience, batch_size, seed, progress, min_delta,
                      rel_tol, t0, neuron=None, init=None, weight_decay=0.0, min_epochs=0, penalty=None) -> FitResult:
    """Full-batch L-BFGS with a validation check every LBFGS_ITERATIONS_PER_EPOCH iterations (see :func:`fit`)."""
    loss_fn = _get_loss(loss)
    va = _checked_sets(tr, va)
    params = [p for p in model.parameters() if p.requires_grad]
    res = FitResult(neuron=neuron, init=init)
    last = {}
    closure = full_batch_objective(model, tr, loss, loss_fn, params, last, LBFGS_CHUNK, weight_decay, penalty)
    opt = torch.optim.LBFGS(params, lr=lr, max_iter=LBFGS_ITERATIONS_PER_EPOCH, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-12)

    model.train()
    closure()  # the starting point's training loss (and a first gradient, which L-BFGS recomputes)
    if not math.isfinite(last["value"]):  # reported as epoch 0: the start of the first epoch
        raise _nan_error(0, last["per"], last["valid"], tr.neuron_ids)
    res.init_train_loss = last["value"]
    res.init_val_loss = _validation_loss(model, va, loss_fn, batch_size, 0)
    stopper = EarlyStopping(res, va is not None, patience, min_delta, rel_tol, model=model, min_epochs=min_epochs)
    if init is not None and va is not None:  # a closed-form start competes with the epochs; a random one does not
        stopper.keep(model, res.init_val_loss)

    def epoch_step(epoch) -> bool:
        model.train()
        opt.step(closure)
        if not math.isfinite(last["value"]):
            raise _nan_error(epoch, last["per"], last["valid"], tr.neuron_ids)
        _check_parameters_finite(model, epoch)
        res.train_loss.append(last["value"])
        res.lr.append(float(lr))
        v = _validation_loss(model, va, loss_fn, batch_size, epoch)
        res.val_loss.append(v)
        out_of_patience = stopper.update(model, epoch, v)
        bar.set_postfix(train=f"{res.train_loss[-1]:.4g}", val=f"{v:.4g}", best=res.best_epoch)
        state = opt.state[params[0]] if params else {}
        if len(res.train_loss) > 1 and res.train_loss[-1] == res.train_loss[-2] and state.get("n_iter", 0) > 0:
            res.stop_reason = "converged"
            return True
        res.stopped_early = out_of_patience
        return out_of_patience

    bar = tqdm(range(max_epochs), disable=not progress, desc=f"fit {type(model).__name__} (L-BFGS)", leave=False)
    return _run_epochs(model, res, stopper, bar, t0, "lbfgs", epoch_step)


def _run_epochs(model, res, stopper, bar, t0, optimizer, epoch_step) -> FitResult:
    """The epoch loop of both paths: ``epoch_step(epoch)`` runs one epoch, True = stop. Then the
    best weights are restored. On an interrupt (Ctrl-C) the best weights so far are restored and
    the ``KeyboardInterrupt`` re-raised with the result so far as ``err.fit_result`` (:mod:`.stopping`)."""
    try:
        for epoch in bar:
            if epoch_step(epoch):
                break
    except KeyboardInterrupt as err:
        stopper.restore_interrupted(model)
        res.epochs, res.stop_reason = len(res.train_loss), INTERRUPTED
        keep_interrupted(err, _finish(model, res, bar, t0, optimizer), f"fit {type(model).__name__}", res.epochs,
                         res.best_epoch)
        raise
    res.epochs = len(res.train_loss)
    stopper.restore(model)
    return _finish(model, res, bar, t0, optimizer)


def _finish(model, res, bar, t0, optimizer) -> FitResult:
    """Common end of both paths: stop reason, eval mode, wall time, bar and log line."""
    model.eval()
    res.optimizer = optimizer
    if not res.stop_reason:
        res.stop_reason = ("patience" if res.stopped_early else
                           "no validation set" if not any(math.isfinite(v) for v in res.val_loss) else "max_epochs")
    res.wall_s = time.perf_counter() - t0
    bar.set_postfix_str(f"stopped ({res.stop_reason}) after {res.epochs} epochs, best {res.best_epoch}, "
                        f"{res.wall_s:.1f} s")
    bar.close()
    logger.info("fit %s: %s (val %.4g)", type(model).__name__, res.summary(), res.best_val_loss)
    return res


def _validation_coverage(va) -> np.ndarray:
    """Per neuron: whether it has validation data, (N,) bool; logs a warning naming those without.

    The rule, the same in :func:`fit` and :func:`~.stacked.fit_single_units` (stacked or
    looped): a neuron without any valid validation bin cannot be early-stopped, so it is
    fitted as without a validation set (``max_epochs`` epochs, the last weights kept,
    ``best_epoch`` the last epoch); in a population model it is simply left out of the
    validation loss, which the other neurons define.
    """
    has = va.has_data().numpy()
    if not has.all():
        missing = [va.neuron_ids[i] for i in np.nonzero(~has)[0]]
        what = ("fitted without early stopping (max_epochs epochs, last weights kept)" if not has.any()
                else "left out of the validation loss (early stopping follows the other neurons)")
        logger.warning("neuron(s) %s have no valid trial in the validation set of '%s': %s", missing, va.name, what)
    return has


def _check_parameters_finite(model, epoch):
    params = list(model.named_parameters())
    if not params:
        return
    ok = torch.stack([torch.isfinite(p.detach()).all() for _, p in params])
    if not bool(ok.all()):
        bad = [n for (n, _), o in zip(params, ok.tolist()) if not o]
        raise FloatingPointError(f"parameter(s) {bad} became NaN/inf at epoch {epoch}")


@torch.no_grad()
def _val_losses(model, va, loss_fn, batch_size, stacked):
    """Per-neuron (or per-unit) loss on the concatenated validation stimuli -> ((N,), valid (N,))."""
    preds, targets = [], []
    if stacked is None:
        model.eval()
    for x, y in va.batches(list(range(va.n_stimuli)), batch_size):
        if stacked is None:
            pred = model(x)
        else:
            pred = stacked.forward(x, y.shape[1])
        preds.append(_concat_time(pred))
        targets.append(_concat_time(y))
    pred = torch.cat(preds, 2)
    target = torch.cat(targets, 2)
    per = loss_fn(pred, target.unsqueeze(2), reduction="none")
    valid = torch.isfinite(target).any(2).any(0)
    return per, valid
