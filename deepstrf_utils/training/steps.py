"""The pieces every training loop of the package shares (:func:`~.fitting.fit`,
:func:`~.stacked.fit_single_units`, :func:`~.sessions.fit_sessions`): the loss function and
its masked batch value, output and parameter checks, the starting output scale, the
validation losses and which neurons have validation data.

Shapes: B stimuli, F bands, T time bins, N neurons, R repeats.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
from torch import nn

from .. import metrics
from .packing import Packed

logger = logging.getLogger(__name__)

def loss_function(loss: str | Callable) -> Callable:
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


def masked_batch_loss(loss_fn, pred, target):
    """pred (B, N, T), target (B, N, T) -> (mean loss over neurons with data, per-neuron (N,), valid (N,))."""
    per = loss_fn(pred, target.unsqueeze(2), reduction="none")
    valid = torch.isfinite(target).flatten(2).any(2).any(0)
    per = torch.where(valid, per, torch.zeros((), dtype=per.dtype, device=per.device))
    return per.sum() / valid.sum().clamp(min=1), per, valid


def concat_time(x):
    """(B, N, T) -> (1, N, B*T): stimuli concatenated along time."""
    return x.permute(1, 0, 2).reshape(1, x.shape[1], -1)


def nan_error(epoch, per, valid, neuron_ids, what="loss"):
    bad = (~torch.isfinite(per.detach()) & valid).cpu()
    names = [neuron_ids[i] for i in torch.nonzero(bad).flatten().tolist()]
    return FloatingPointError(f"{what} is NaN/inf at epoch {epoch} for neuron(s) {names}")


def check_output(pred, x, n_expected, name):
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


@torch.no_grad()
def probe_output(model: nn.Module, packed: Packed) -> None:
    """Check the model's output shape on the first stimulus (eval mode, no state change)."""
    was_training = model.training
    model.eval()
    try:
        x, _ = packed.batch([0])
        check_output(model(x), x, packed.n_neurons, packed.name)
    finally:
        model.train(was_training)


def set_output_scale(model: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Call ``model.init_output(mean, std)`` (if the model has it) with the training target's
    per-neuron mean and std (``Packed.target_stats()``), so that the output nonlinearity
    starts at the data's scale."""
    init = getattr(model, "init_output", None)
    if callable(init):
        init(mean, std)


def check_fit_args(lr, max_epochs, patience, batch_size, clip_grad, prefilter_lr=None, rel_tol=0.0):
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


def check_parameters_finite(model, epoch):
    params = list(model.named_parameters())
    if not params:
        return
    ok = torch.stack([torch.isfinite(p.detach()).all() for _, p in params])
    if not bool(ok.all()):
        bad = [n for (n, _), o in zip(params, ok.tolist()) if not o]
        raise FloatingPointError(f"parameter(s) {bad} became NaN/inf at epoch {epoch}")


def validation_coverage(va) -> np.ndarray:
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


@torch.no_grad()
def validation_losses(model, va, loss_fn, batch_size, stacked):
    """Per-neuron (or per-unit) loss on the concatenated validation stimuli -> ((N,), valid (N,))."""
    preds, targets = [], []
    if stacked is None:
        model.eval()
    for x, y in va.batches(list(range(va.n_stimuli)), batch_size):
        if stacked is None:
            pred = model(x)
        else:
            pred = stacked.forward(x, y.shape[1])
        preds.append(concat_time(pred))
        targets.append(concat_time(y))
    pred = torch.cat(preds, 2)
    target = torch.cat(targets, 2)
    per = loss_fn(pred, target.unsqueeze(2), reduction="none")
    valid = torch.isfinite(target).any(2).any(0)
    return per, valid
