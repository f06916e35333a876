"""Fitting one model (a single unit or a population model with N outputs): :func:`fit`.

Protocol (Rançon et al. 2024, upstream scripts): mean-squared error to the trial-averaged
response, AdamW with lr 1e-3 (weight decay on weights only, not on time constants / gains:
:func:`~.optim.no_decay_names`), early stopping on the validation loss with patience 50 and
the best weights restored. Options: LR-on-plateau, gradient clipping, other losses.

Shapes: B stimuli, F bands, T time bins, N neurons, R repeats.
"""
from __future__ import annotations

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

from .device import resolve_device, seed_everything
from .optim import _make_plateau, make_adamw
from .packing import _epoch_order, _Packed, accepts_lengths

logger = logging.getLogger(__name__)

__all__ = ["FitResult", "fit"]


@dataclass
class FitResult:
    """Outcome of one fit.

    train_loss, val_loss: per-epoch losses (val_loss is NaN without a validation set);
    lr: learning rate used in each epoch; best_epoch: 0-based index of the epoch whose
    weights were restored; epochs: epochs run; wall_s: wall-clock seconds of the whole fit
    (for :func:`fit_single_units`, of the batched fit shared by all units);
    stopped_early: patience ran out before max_epochs; neuron: the unit's id (single-unit
    fits); batched: trained inside a vmapped stack.
    """

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = float("nan")
    epochs: int = 0
    wall_s: float = 0.0
    stopped_early: bool = False
    neuron: object = None
    batched: bool = False

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


def _check_fit_args(lr, max_epochs, patience, batch_size, clip_grad, prefilter_lr=None):
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
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    max_epochs: int = 1000,
    patience: int | None = 50,
    batch_size: int = 8,
    scheduler: str | None = None,
    scheduler_kwargs: dict | None = None,
    clip_grad: float | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
    min_delta: float = 0.0,
    init_output: bool = True,
    prefilter_lr: float | None = None,
) -> FitResult:
    """Fit ``model`` to the trial-averaged responses of ``train`` (the paper's protocol).

    Each epoch visits the training stimuli in a seeded random order in batches of
    ``batch_size`` (stim (B, 1, F, T) -> pred (B, N, T) vs. the trial mean of resp
    (B, N, R, T); NaN bins are ignored), takes AdamW steps (``lr``, ``weight_decay``),
    then computes the validation loss on the concatenated validation stimuli. Training
    stops when the validation loss has not improved (by more than ``min_delta``) for
    ``patience`` epochs, and the best weights (parameters and buffers) are restored.
    Without ``val`` (or with ``patience=None``) it runs ``max_epochs`` epochs and keeps
    the last weights (``val=None``) or the best ones.

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
        weight_decay: AdamW's decoupled weight decay, applied to the weights only. Time
            constants and gains are exempt (:func:`no_decay_names`): every ``prefilter.*``
            parameter (AdapTrans' ``logit_a_on / logit_a_off / logit_w``) and DNet's
            integrator parameters ``hidden_d / output_d``. Decay would pull the logits to 0,
            i.e. ``a -> 0.5`` (tau ~ 7 ms at 5 ms bins) and ``w -> 0.5``, most strongly in
            bands with little gradient, biasing the learned time constants.
        prefilter_lr: AdamW learning rate of the prefilter's parameters (names starting with
            ``"prefilter."``, e.g. AdapTrans' ``logit_a_on / logit_a_off / logit_w``); None: ``lr``
            for every parameter. The plateau scheduler scales both rates by the same factor;
            ``FitResult.lr`` records the main rate.

    Returns:
        FitResult with the per-epoch history, best_epoch, epochs, wall_s, stopped_early.

    Raises:
        ValueError: model output N differs from the dataset's N, or a neuron has no valid
            trial in ``train``.
        FloatingPointError: NaN/inf in the loss or in a parameter (names the epoch and the
            neuron or parameter).
    """
    _check_fit_args(lr, max_epochs, patience, batch_size, clip_grad, prefilter_lr)
    t0 = time.perf_counter()
    dev = resolve_device(device)
    seed_everything(seed)
    model.to(dev)
    tr = _Packed.from_dataset(train, dev)
    va = _Packed.from_dataset(val, dev) if val is not None else None
    _probe_output(model, tr)
    if init_output:
        _init_output(model, *tr.target_stats())
    return _fit_packed(model, tr, va, loss, lr, weight_decay, max_epochs, patience, batch_size,
                       scheduler, scheduler_kwargs, clip_grad, seed, progress, min_delta, t0,
                       prefilter_lr=prefilter_lr)


def _fit_packed(model, tr, va, loss, lr, weight_decay, max_epochs, patience, batch_size,
                scheduler, scheduler_kwargs, clip_grad, seed, progress, min_delta, t0,
                neuron=None, prefilter_lr=None) -> FitResult:
    loss_fn = _get_loss(loss)
    tr.check_neurons_have_data("training")
    if va is not None and va.n_neurons != tr.n_neurons:
        raise ValueError(f"expected the validation set to have N={tr.n_neurons} neurons, got {va.n_neurons}")
    if va is not None and not bool(_validation_coverage(va).any()):
        va = None  # no neuron has validation data: fitted as without a validation set
    gen = torch.Generator().manual_seed(seed)
    # param groups: prefilter_lr, and no decay for time constants / gains (no_decay_names)
    opt, params, group_scales = make_adamw(model, lr, weight_decay, prefilter_lr)
    plateau = _make_plateau(scheduler, scheduler_kwargs, 1, lr, patience or 50)
    cur_lr = float(lr)
    res = FitResult(neuron=neuron)
    best_state = None
    best_val, since_best = math.inf, 0
    checked = False
    pass_lengths = accepts_lengths(model)  # padded batches: BatchNorm statistics over valid bins
    bar = tqdm(range(max_epochs), disable=not progress, desc="fit", leave=False)
    for epoch in bar:
        model.train()
        order = _epoch_order(tr.n_stimuli, gen)
        total, nb = 0.0, 0
        for x, y, lengths in tr.batches(order, batch_size, with_lengths=True):
            pred = model(x, lengths=lengths) if pass_lengths and lengths is not None else model(x)
            if not checked:
                _check_output(pred, x, tr.n_neurons, tr.name)
                checked = True
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
        res.lr.append(cur_lr)
        if va is not None:
            v_per, v_valid = _val_losses(model, va, loss_fn, batch_size, stacked=None)
            if not bool(torch.isfinite(v_per[v_valid]).all()):
                raise _nan_error(epoch, v_per, v_valid, va.neuron_ids, "validation loss")
            v = float(v_per[v_valid].mean()) if bool(v_valid.any()) else float("nan")
        else:
            v = float("nan")
        res.val_loss.append(v)
        if va is None:
            res.best_epoch = epoch
        elif v < best_val - min_delta:
            best_val, since_best = v, 0
            res.best_epoch, res.best_val_loss = epoch, v
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        else:
            since_best += 1
        if plateau is not None and va is not None:
            cur_lr = float(plateau.step(np.array([v]))[0])
            for g, sc in zip(opt.param_groups, group_scales):
                g["lr"] = cur_lr * sc
        bar.set_postfix(train=f"{res.train_loss[-1]:.4g}", val=f"{v:.4g}")
        if va is not None and patience is not None and since_best >= patience:
            res.stopped_early = True
            break
    res.epochs = len(res.train_loss)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    res.wall_s = time.perf_counter() - t0
    logger.info("fit %s: %d epochs, best %d (val %.4g), %.1f s", type(model).__name__, res.epochs,
                res.best_epoch, res.best_val_loss, res.wall_s)
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
