"""Training, prediction, evaluation and checkpoints (the paper's fitting protocol).

Protocol (Rançon et al. 2024, upstream scripts): mean-squared error to the trial-averaged
response, AdamW with lr 1e-3 (weight decay on weights only, not on time constants / gains:
:func:`no_decay_names`), early stopping on the validation loss with patience 50 and the
best weights restored. Options: LR-on-plateau, gradient clipping, other losses.

- :func:`fit` trains one model (a single unit or a population model with N outputs).
- :func:`fit_single_units` trains N independent single-unit models *together*: their
  parameters are stacked and evaluated with ``torch.func.vmap`` so that one forward/backward
  and one optimiser step serve every unit; each unit keeps its own weights, AdapTrans
  parameters, gradient clipping, learning rate and early stopping, so the result equals N
  separate :func:`fit` calls with the same seeds and batch order.
- :func:`predict` / :func:`evaluate` give predictions and per-neuron CCraw / CCnorm / CCmax.
- :func:`save_checkpoint` / :func:`load_checkpoint` store everything needed to rebuild.

Multi-configuration, multi-seed runs (one tidy CSV) live in :mod:`deepstrf_utils.runner`.

Shapes: B stimuli, F bands, T time bins, N neurons, R repeats, U stacked single units.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .layers import model_device as _model_device

logger = logging.getLogger(__name__)

__all__ = [
    "FitResult",
    "fit",
    "fit_single_units",
    "no_decay_names",
    "predict",
    "predict_units",
    "evaluate",
    "save_checkpoint",
    "load_checkpoint",
    "seed_everything",
    "resolve_device",
    "average_over_seeds",
    "run_configs",
    "summary_table",
]

CHECKPOINT_FORMAT = "deepstrf_utils.checkpoint/1"


# ----------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    if torch.cuda.is_available() or _mps_available():
        torch.manual_seed(seed)
    else:
        # the same seeding of torch's (only) CPU generator; torch.manual_seed would also
        # queue a lazy CUDA seeding with a captured traceback (~0.7 ms a call), which adds
        # up when fit_single_units seeds every unit
        torch.default_generator.manual_seed(seed)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else -> ``torch.device``."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)




def _get_loss(loss: str | Callable) -> Callable:
    """Loss name (``"mse"``, ``"poisson"``, ``"correlation"``) or callable -> callable.

    The callable takes ``pred (B, N, T)``, ``resp (B, N, R, T)`` (NaN = missing) and
    ``reduction="none"`` and returns per-neuron losses ``(N,)``.
    """
    if callable(loss):
        return loss
    if not isinstance(loss, str):
        raise ValueError(f"expected loss to be a name such as 'mse' or a callable, got {loss!r}")
    from . import metrics

    builtin = metrics.get_loss(loss)

    def averaged(pred, resp, reduction="mean"):
        # training passes its trial-averaged target as (B, N, 1, T); the built-in losses
        # take it as (B, N, T) directly: the same values with fewer passes over the data
        if resp.dim() == 4 and resp.shape[2] == 1:
            resp = resp[:, :, 0]
        return builtin(pred, resp, reduction=reduction)

    averaged.__name__ = getattr(builtin, "__name__", str(loss))
    return averaged


def _neuron_ids(dataset) -> list:
    ids = getattr(dataset, "neuron_ids", None)
    n = _n_neurons(dataset)
    if ids is None:
        return list(range(n))
    ids = list(np.asarray(ids).tolist())
    if len(ids) != n:
        raise ValueError(f"dataset.neuron_ids has {len(ids)} entries, expected N={n}")
    return ids


def _n_neurons(dataset) -> int:
    n = getattr(dataset, "n_neurons", None)
    if n is not None:
        return int(n)
    if len(dataset) == 0:
        raise ValueError("expected a dataset with at least one stimulus, got an empty one")
    return int(dataset[0][1].shape[0])


def _dataset_name(dataset) -> str:
    return str(getattr(dataset, "name", type(dataset).__name__))


def _neuron_positions(dataset, neurons) -> list[int]:
    """Neuron ids (from ``dataset.neuron_ids``) or integer positions -> positions."""
    ids = _neuron_ids(dataset)
    if neurons is None:
        return list(range(len(ids)))
    lookup = {nid: i for i, nid in enumerate(ids)}
    out = []
    for n in neurons:
        key = n.item() if isinstance(n, np.generic) else n
        if key in lookup:
            out.append(lookup[key])
        elif isinstance(key, (int, np.integer)) and 0 <= int(key) < len(ids):
            out.append(int(key))
        else:
            raise ValueError(
                f"neuron {n!r} is neither an id in dataset.neuron_ids ({ids[:5]}...) nor a "
                f"position in [0, {len(ids)})"
            )
    return out


# ----------------------------------------------------------------------------- data packing


class _Packed:
    """A dataset collated ONCE into padded tensors on the training device.

    stim (B, 1, F, Tmax) float32 (zero padding), target (B, N, Tmax) float32 trial average
    (NaN where no repeat is valid or in padding), lengths (B,) int64.
    A batch is an index_select plus a trim to the batch's longest stimulus.
    """

    def __init__(self, stim, target, lengths, neuron_ids, name):
        self.stim = stim
        self.target = target
        self.lengths = lengths
        self.neuron_ids = list(neuron_ids)
        self.name = name
        self._lengths_list = lengths.tolist()

    @property
    def n_stimuli(self) -> int:
        return int(self.stim.shape[0])

    @property
    def n_neurons(self) -> int:
        return int(self.target.shape[1])

    @classmethod
    def from_dataset(cls, dataset, device: torch.device, positions: Sequence[int] | None = None):
        if len(dataset) == 0:
            raise ValueError(f"expected a non-empty dataset, got '{_dataset_name(dataset)}' with 0 stimuli")
        ids = _neuron_ids(dataset)
        stims, targets = [], []
        for i in range(len(dataset)):
            stim, resp = dataset[i][:2]
            stim = torch.as_tensor(stim, dtype=torch.float32)
            resp = torch.as_tensor(resp, dtype=torch.float32)
            if stim.dim() != 3 or stim.shape[0] != 1:
                raise ValueError(f"expected stimulus item {i} of shape (1, F, T), got {tuple(stim.shape)}")
            if resp.dim() != 3 or resp.shape[2] != stim.shape[2]:
                raise ValueError(
                    f"expected response item {i} of shape (N, R, T) with T={stim.shape[2]}, "
                    f"got {tuple(resp.shape)}"
                )
            if positions is not None:
                resp = resp[list(positions)]
            finite = torch.isfinite(resp)
            count = finite.sum(1)
            total = torch.where(finite, resp, torch.zeros(())).sum(1)
            mean = total / count.clamp(min=1)
            mean[count == 0] = float("nan")
            stims.append(stim)
            targets.append(mean)
        F = stims[0].shape[1]
        if any(s.shape[1] != F for s in stims):
            raise ValueError(f"expected every stimulus to have F={F} bands, got {[s.shape[1] for s in stims]}")
        lengths = torch.tensor([s.shape[2] for s in stims], dtype=torch.int64)
        tmax = int(lengths.max())
        n = targets[0].shape[0]
        stim_all = torch.zeros(len(stims), 1, F, tmax)
        target_all = torch.full((len(stims), n, tmax), float("nan"))
        for i, (s, t) in enumerate(zip(stims, targets)):
            stim_all[i, :, :, : s.shape[2]] = s
            target_all[i, :, : s.shape[2]] = t
        if positions is not None:
            ids = [ids[p] for p in positions]
        return cls(stim_all.to(device), target_all.to(device), lengths, ids, _dataset_name(dataset))

    def select(self, positions: Sequence[int]) -> "_Packed":
        """The same stimuli with only the neurons at ``positions``."""
        pos = torch.as_tensor(list(positions), dtype=torch.long, device=self.target.device)
        return _Packed(self.stim, self.target.index_select(1, pos), self.lengths,
                       [self.neuron_ids[int(p)] for p in positions], self.name)

    def batch(self, idx: Sequence[int]):
        """Stimuli ``idx`` -> (stim (b, 1, F, L), target (b, N, L)), L = longest of the batch."""
        L = max(self._lengths_list[i] for i in idx)
        if len(idx) == self.n_stimuli and list(idx) == list(range(self.n_stimuli)):
            return self.stim[..., :L], self.target[..., :L]
        ind = torch.as_tensor(list(idx), dtype=torch.long, device=self.stim.device)
        return self.stim.index_select(0, ind)[..., :L], self.target.index_select(0, ind)[..., :L]

    def batches(self, order: Sequence[int], batch_size: int):
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start:start + batch_size])

    def target_stats(self):
        """Per-neuron mean and standard deviation of the trial-averaged target over valid bins -> ((N,), (N,))."""
        y = self.target.transpose(0, 1).reshape(self.n_neurons, -1)
        ok = torch.isfinite(y)
        n = ok.sum(1).clamp(min=1)
        y0 = torch.where(ok, y, torch.zeros((), dtype=y.dtype, device=y.device))
        mean = y0.sum(1) / n
        var = torch.where(ok, (y0 - mean[:, None]) ** 2, torch.zeros((), dtype=y.dtype, device=y.device)).sum(1) / n
        return mean.cpu(), var.sqrt().cpu()

    def check_neurons_have_data(self, what: str) -> None:
        valid = torch.isfinite(self.target).any(2).any(0).cpu()
        if not bool(valid.all()):
            bad = [self.neuron_ids[i] for i in torch.nonzero(~valid).flatten().tolist()]
            raise ValueError(f"neuron(s) {bad} have no valid trial in the {what} set of '{self.name}'")


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


def _epoch_order(n: int, generator: torch.Generator) -> list[int]:
    return torch.randperm(n, generator=generator).tolist()


# ----------------------------------------------------------------------------- result type


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


class _Plateau:
    """Vectorised reduce-LR-on-plateau (mode "min", relative threshold), one state per unit.

    Same rule as ``torch.optim.lr_scheduler.ReduceLROnPlateau``: a value improves when
    ``v < best * (1 - threshold)``; after more than ``patience`` bad epochs the LR is
    multiplied by ``factor`` (not below ``min_lr``), then ``cooldown`` epochs are ignored.
    """

    def __init__(self, n, lr, factor=0.5, patience=10, threshold=1e-4, cooldown=0, min_lr=0.0):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"expected a plateau factor in (0, 1), got {factor}")
        self.lr = np.full(n, float(lr))
        self.best = np.full(n, np.inf)
        self.bad = np.zeros(n, dtype=int)
        self.cool = np.zeros(n, dtype=int)
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.cooldown, self.min_lr = cooldown, min_lr

    def step(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        mask = np.ones(len(values), bool) if mask is None else np.asarray(mask, bool)
        better = mask & (values < self.best * (1.0 - self.threshold))
        self.best = np.where(better, values, self.best)
        self.bad = np.where(better, 0, np.where(mask, self.bad + 1, self.bad))
        cooling = mask & (self.cool > 0)
        self.cool = np.where(cooling, self.cool - 1, self.cool)
        self.bad = np.where(cooling, 0, self.bad)
        reduce = mask & (self.bad > self.patience)
        new_lr = np.maximum(self.lr * self.factor, self.min_lr)
        reduce &= (self.lr - new_lr) > 1e-8
        self.lr = np.where(reduce, new_lr, self.lr)
        self.cool = np.where(reduce, self.cooldown, self.cool)
        self.bad = np.where(reduce | (mask & (self.bad > self.patience)), 0, self.bad)
        return self.lr


def _make_plateau(scheduler, scheduler_kwargs, n, lr, patience):
    if scheduler is None:
        return None
    if scheduler != "plateau":
        raise ValueError(f"expected scheduler None or 'plateau', got {scheduler!r}")
    kw = {"factor": 0.5, "patience": max(1, patience // 5)}
    kw.update(scheduler_kwargs or {})
    return _Plateau(n, lr, **kw)


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


# ----------------------------------------------------------------------------- fit

#: parameters whose name starts with this prefix get ``prefilter_lr``
PREFILTER_PREFIX = "prefilter."


def _lr_scales(names, lr, prefilter_lr, what) -> dict:
    """Parameter name -> learning-rate factor relative to ``lr``: ``prefilter_lr / lr`` for
    ``prefilter.*`` parameters when ``prefilter_lr`` is set, else 1.0."""
    names = list(names)
    if prefilter_lr is None:
        return {n: 1.0 for n in names}
    scale = float(prefilter_lr) / float(lr)
    out = {n: (scale if n.startswith(PREFILTER_PREFIX) else 1.0) for n in names}
    if not any(n.startswith(PREFILTER_PREFIX) for n in names):
        logger.warning("prefilter_lr=%g is ignored: %s has no trainable '%s*' parameter", prefilter_lr, what,
                       PREFILTER_PREFIX)
    return out


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of ``model``'s parameters that AdamW must NOT weight-decay.

    These are time constants and gains, not weights: decaying them pulls them towards the
    arbitrary value their parametrisation has at 0, a bias that is strongest where the data
    say little. Exempt are

    - every ``prefilter.*`` parameter (AdapTrans' ``logit_a_on``, ``logit_a_off``,
      ``logit_w``: decay would pull ``a = sigmoid(logit)`` towards 0.5, i.e. tau ~ 7 ms at
      5 ms bins, and the ON/OFF weight ``w`` towards 0.5);
    - DNet's leaky-integrator parameters ``hidden_d`` / ``output_d`` (decay would pull
      ``d`` to 0, i.e. the integration rate ``k = 1 / (1 + d^2)`` to 1: no integration),
      found by module type wherever a DNet sits in ``model``.
    """
    from .models import DNet

    out = {n for n, _ in model.named_parameters() if n.startswith(PREFILTER_PREFIX)}
    for prefix, mod in model.named_modules():
        if isinstance(mod, DNet):
            dot = f"{prefix}." if prefix else ""
            out.update(f"{dot}{n}" for n in ("hidden_d", "output_d"))
    return out


def _decay_scales(names, no_decay: set) -> dict:
    """Parameter name -> weight-decay factor: 0.0 for ``no_decay`` names, else 1.0."""
    return {n: (0.0 if n in no_decay else 1.0) for n in names}


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
    gen = torch.Generator().manual_seed(seed)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    # param groups by (learning-rate factor, weight-decay factor): prefilter_lr, and no decay
    # for time constants / gains (no_decay_names)
    lr_scales = _lr_scales([n for n, _ in named], lr, prefilter_lr, type(model).__name__)
    wd_scales = _decay_scales([n for n, _ in named], no_decay_names(model))
    groups = {}
    for n, p in named:
        groups.setdefault((lr_scales[n], wd_scales[n]), []).append(p)
    group_scales = [sc for sc, _ in groups]
    opt = torch.optim.AdamW([{"params": ps, "lr": lr * sc, "weight_decay": weight_decay * wd}
                             for (sc, wd), ps in groups.items()], lr=lr, weight_decay=weight_decay)
    plateau = _make_plateau(scheduler, scheduler_kwargs, 1, lr, patience or 50)
    cur_lr = float(lr)
    res = FitResult(neuron=neuron)
    best_state = None
    best_val, since_best = math.inf, 0
    checked = False
    bar = tqdm(range(max_epochs), disable=not progress, desc="fit", leave=False)
    for epoch in bar:
        model.train()
        order = _epoch_order(tr.n_stimuli, gen)
        total, nb = 0.0, 0
        for x, y in tr.batches(order, batch_size):
            pred = model(x)
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


# ----------------------------------------------------------------------------- single units


class _Stack:
    """U single-unit models (same class/config) stacked for ``vmap``.

    params / buffers: dicts name -> (U, ...) tensors; forward(x (B, 1, F, T)) -> (B, U, T).
    Slots can be dropped (``keep``) when units stop, so finished units cost nothing.
    """

    def __init__(self, models: list[nn.Module], device):
        from torch.func import stack_module_state

        self.base = copy.deepcopy(models[0]).to(device)
        params, buffers = stack_module_state(models)
        # frozen parameters (requires_grad=False) stay frozen, as in fit()
        self.trainable = {n for n, p in models[0].named_parameters() if p.requires_grad}
        self.params = {k: v.detach().to(device).requires_grad_(k in self.trainable) for k, v in params.items()}
        self.buffers = {k: v.detach().to(device).clone() for k, v in buffers.items()}

    def _call(self, p, b, x):
        from torch.func import functional_call

        return functional_call(self.base, (p, b), (x,))

    def forward(self, x, n_units):
        from torch.func import vmap

        out = vmap(self._call, in_dims=(0, 0, None), randomness="different")(self.params, self.buffers, x)
        if out.dim() != 4 or out.shape[2] != 1:
            raise ValueError(f"expected each single-unit model to return (B, 1, T), got {tuple(out.shape[1:])}")
        return out[:, :, 0, :].transpose(0, 1)

    def train(self, mode=True):
        self.base.train(mode)

    def keep(self, slots: torch.Tensor):
        self.params = {k: v.detach()[slots].clone().requires_grad_(k in self.trainable)
                       for k, v in self.params.items()}
        self.buffers = {k: v[slots].clone() for k, v in self.buffers.items()}


class _StackedAdamW:
    """AdamW over stacked (U, ...) parameters with a per-unit learning rate, step count and
    an ``active`` mask (inactive units are left untouched); same update as torch.optim.AdamW.

    ``lr_scale``: parameter name -> factor on the unit's learning rate (``prefilter_lr / lr``
    for prefilter parameters, the same as a separate torch param group); default 1.0.
    ``wd_scale``: parameter name -> factor on ``weight_decay`` (0.0 for the time constants
    and gains of :func:`no_decay_names`, as the param groups of :func:`fit`); default 1.0.
    """

    def __init__(self, params: dict, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8, lr_scale=None,
                 wd_scale=None):
        self.params = params
        n = next(iter(params.values())).shape[0] if params else 0
        self.lr = np.full(n, float(lr))
        self.lr_scale = {k: 1.0 for k in params}
        self.lr_scale.update(lr_scale or {})
        self.wd_scale = {k: 1.0 for k in params}
        self.wd_scale.update(wd_scale or {})
        self.steps = np.zeros(n)
        self.wd, self.betas, self.eps = weight_decay, betas, eps
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}

    def keep(self, slots: torch.Tensor, params: dict):
        idx = slots.cpu().numpy()
        self.params = params
        self.lr, self.steps = self.lr[idx], self.steps[idx]
        self.m = {k: v[slots].clone() for k, v in self.m.items()}
        self.v = {k: v[slots].clone() for k, v in self.v.items()}

    @torch.no_grad()
    def step(self, active: np.ndarray):
        b1, b2 = self.betas
        self.steps = self.steps + active
        steps = np.maximum(self.steps, 1)
        bc1 = 1.0 - b1**steps
        bc2_sqrt = np.sqrt(1.0 - b2**steps)
        all_active = bool(active.all())
        for k, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            dev = p.device
            lr_k = self.lr if self.lr_scale[k] == 1.0 else self.lr * self.lr_scale[k]
            lr = torch.as_tensor(lr_k, dtype=p.dtype, device=dev).view(shape)
            step_size = torch.as_tensor(lr_k / bc1, dtype=p.dtype, device=dev).view(shape)
            denom_scale = torch.as_tensor(bc2_sqrt, dtype=p.dtype, device=dev).view(shape)
            m_new = self.m[k].lerp(g, 1 - b1)
            v_new = self.v[k] * b2 + (1 - b2) * g * g
            wd = self.wd * self.wd_scale[k]
            p_new = p * (1 - lr * wd) if wd != 0.0 else p
            p_new = p_new - step_size * m_new / (v_new.sqrt() / denom_scale + self.eps)
            if all_active:
                self.m[k], self.v[k] = m_new, v_new
                p.copy_(p_new)
            else:
                a = torch.as_tensor(active, device=dev).view(shape)
                self.m[k] = torch.where(a, m_new, self.m[k])
                self.v[k] = torch.where(a, v_new, self.v[k])
                p.copy_(torch.where(a, p_new, p))
            p.grad = None


def _clip_per_unit(params: dict, max_norm: float):
    """Scale each unit's gradient (over all its parameters) to L2 norm <= max_norm."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    if not grads:
        return
    sq = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0)
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))


def stacking_pays_off(model: nn.Module, device: torch.device) -> bool:
    """Whether stacking single units in one vmapped module is faster than a loop of fits.

    Measured rule (``benchmarks/bench_training.py``, batched rows; ``benchmarks/README.md``):
    on a GPU, always. On a CPU, only when every unit sees the same input -- no prefilter, a
    prefilter without parameters or buffers, or the fused linear AdapTrans + STRF path of
    Linear / LinearNonlinear. With a per-unit (learnable, rectified) AdapTrans each unit
    filters the stimulus itself: the work per unit is the same stacked or not, and on 2 CPU
    cores the stack ran at 0.4-1.0x the speed of a loop (memory-bound on ~300 MB
    intermediates) while holding every unit's activations in memory at once.
    """
    if device.type != "cpu":
        return True
    strf_path = getattr(model, "strf_path", None)
    if callable(strf_path) and strf_path() == "fused":
        return True
    pre = getattr(model, "prefilter", None)
    if pre is None:
        return True
    return next(pre.parameters(), None) is None and next(pre.buffers(), None) is None


def fit_single_units(
    model_fn: Callable[[int], nn.Module],
    train,
    val=None,
    neurons: Sequence | None = None,
    seeds: int | Sequence[int] | None = None,
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
    batched: bool | None = None,
    compact_below: float = 0.5,
    init_output: bool = True,
    max_stack: int | None = None,
    prefilter_lr: float | None = None,
):
    """Fit one independent single-unit model per neuron, all in one vmapped module.

    Unit u is ``model_fn(seeds[u])`` (built after ``torch.manual_seed(seeds[u])``; it must
    have one output). The U models are stacked (``torch.func.stack_module_state``) and run
    with ``vmap(functional_call)`` on the shared stimulus batch (B, 1, F, T) -> (B, U, T);
    the training loss is the SUM over units of each unit's own loss, so each unit receives
    exactly the gradient of its separate fit. Clipping (``clip_grad``, per unit), AdamW
    state, LR-on-plateau and early stopping are per unit; a unit that stopped is frozen
    and dropped from the stack once fewer than ``compact_below`` of the stacked units are
    still training; each unit gets its own best weights back. Data order is shared
    (``seed``), so the result equals separate ``fit(model_fn(s), train.select([n]),
    val.select([n]), seed=seed, ...)`` calls. BatchNorm running statistics are stacked per
    unit. Models that cannot be vmapped (e.g. nn.GRU / nn.LSTM cores) fall back to a loop
    of separate fits, with a log message; ``batched=None`` stacks only where it pays off
    (:func:`stacking_pays_off`), ``batched=False`` forces the loop, ``True`` forces the stack
    and forbids the fallback.

    Args:
        model_fn: ``seed -> nn.Module`` with ``n_neurons=1``.
        neurons: neuron ids (``train.neuron_ids``) or positions; None = all N neurons.
        max_stack: fit at most this many units per stack (chunks run one after another;
            results are identical); bounds memory for large models (activations scale with
            units x batch). None: all units in one stack.
        init_output: call each unit's ``init_output(mean, std)`` with its own training target's
            statistics (as :func:`fit` does).
        seeds: one seed per unit, a single int for all units, or None (= ``seed``).
        prefilter_lr: learning rate of each unit's ``prefilter.*`` parameters (per-parameter
            rate in the stacked AdamW; equals a separate param group in :func:`fit`); None: ``lr``.
        weight_decay: as in :func:`fit`; the same parameters (:func:`no_decay_names`) are
            exempt, through a per-parameter decay factor in the stacked AdamW.
        other arguments: as in :func:`fit`.

    Returns:
        (models, results): U fitted single-unit models (eval mode, on ``device``) and U
        :class:`FitResult` (``neuron`` = the unit's id, ``wall_s`` = the whole batched fit).
    """
    _check_fit_args(lr, max_epochs, patience, batch_size, clip_grad, prefilter_lr)
    t0 = time.perf_counter()
    dev = resolve_device(device)
    positions = _neuron_positions(train, neurons)
    U = len(positions)
    if U == 0:
        raise ValueError("expected at least one neuron to fit, got an empty list")
    if seeds is None:
        seeds = [seed] * U
    elif isinstance(seeds, (int, np.integer)):
        seeds = [int(seeds)] * U
    seeds = [int(s) for s in seeds]
    if len(seeds) != U:
        raise ValueError(f"expected {U} seeds (one per neuron), got {len(seeds)}")
    models = []
    for s in seeds:
        seed_everything(s)
        m = model_fn(s)
        if not isinstance(m, nn.Module):
            raise ValueError(f"expected model_fn(seed) to return an nn.Module, got {type(m).__name__}")
        models.append(m.to(dev))
    seed_everything(seed)
    tr = _Packed.from_dataset(train, dev, positions)
    va = _Packed.from_dataset(val, dev, positions) if val is not None else None
    tr.check_neurons_have_data("training")
    _probe_output(models[0], tr.select([0]))
    if init_output:
        mean, std = tr.target_stats()  # per unit, computed once for all units
        for u, m in enumerate(models):
            _init_output(m, mean[u:u + 1], std[u:u + 1])

    use_batched = batched if batched is not None else stacking_pays_off(models[0], dev)
    if batched is None and not use_batched:
        logger.info("fit_single_units: fitting %d units of %s in a loop (each unit filters the stimulus "
                    "with its own prefilter; stacking does not pay off on %s)", U, type(models[0]).__name__,
                    dev.type)
    if use_batched and U > 1:
        reason = _unbatchable_reason(models)
        if reason is None:
            try:
                step = U if max_stack is None else max(1, int(max_stack))
                out_models, out_results = [], []
                for start in range(0, U, step):
                    chunk = list(range(start, min(U, start + step)))
                    ms, rs = _fit_stacked(
                        models[start:start + step], tr.select(chunk) if step < U else tr,
                        (va.select(chunk) if step < U else va) if va is not None else None,
                        loss, lr, weight_decay, max_epochs, patience, batch_size, scheduler,
                        scheduler_kwargs, clip_grad, seed, progress, min_delta, compact_below, t0, dev,
                        prefilter_lr)
                    out_models += ms
                    out_results += rs
                for r in out_results:
                    r.wall_s = time.perf_counter() - t0
                return out_models, out_results
            except (RuntimeError, NotImplementedError) as err:  # vmap / functional_call limits
                if batched:
                    raise
                reason = f"vmap failed ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
                models = []
                for u, s in enumerate(seeds):
                    seed_everything(s)
                    models.append(model_fn(s).to(dev))
                    if init_output:
                        _init_output(models[-1], mean[u:u + 1], std[u:u + 1])
        if batched:
            raise ValueError(f"cannot batch {type(models[0]).__name__}: {reason}")
        logger.warning("fit_single_units: %s cannot be batched (%s); fitting %d units in a loop",
                       type(models[0]).__name__, reason, U)
    results = []
    for u in tqdm(range(U), disable=not progress or U == 1, desc="units", leave=False):
        t_u = time.perf_counter()
        seed_everything(seed)
        r = _fit_packed(models[u], tr.select([u]), va.select([u]) if va is not None else None,
                        loss, lr, weight_decay, max_epochs, patience, batch_size, scheduler,
                        scheduler_kwargs, clip_grad, seed, progress and U == 1, min_delta, t_u,
                        neuron=tr.neuron_ids[u], prefilter_lr=prefilter_lr)
        results.append(r)
    wall = time.perf_counter() - t0
    for r in results:
        r.wall_s = wall
    return models, results


def _unbatchable_reason(models) -> str | None:
    base = models[0]
    for m in models[1:]:
        if type(m) is not type(base):
            return "model_fn returned different classes"
        if getattr(m, "config", None) != getattr(base, "config", None):
            return "model_fn returned models with different configurations"
    shapes = {k: tuple(v.shape) for k, v in base.state_dict().items()}
    for m in models[1:]:
        if {k: tuple(v.shape) for k, v in m.state_dict().items()} != shapes:
            return "the units' parameter shapes differ"
    for mod in base.modules():
        if isinstance(mod, nn.RNNBase):
            return f"{type(mod).__name__} (cuDNN/fused RNN kernels have no vmap batching rule)"
    return None


def _fit_stacked(models, tr, va, loss, lr, weight_decay, max_epochs, patience, batch_size,
                 scheduler, scheduler_kwargs, clip_grad, seed, progress, min_delta,
                 compact_below, t0, dev, prefilter_lr=None):
    loss_fn = _get_loss(loss)
    U = len(models)
    ids = tr.neuron_ids
    stack = _Stack(models, dev)
    scales = _lr_scales([k for k in stack.params if k in stack.trainable], lr, prefilter_lr,
                        type(models[0]).__name__)
    wd_scales = _decay_scales(list(stack.params), no_decay_names(models[0]))
    opt = _StackedAdamW(stack.params, lr, weight_decay, lr_scale=scales, wd_scale=wd_scales)
    plateau = _make_plateau(scheduler, scheduler_kwargs, U, lr, patience or 50)
    gen = torch.Generator().manual_seed(seed)
    results = [FitResult(neuron=ids[u], batched=True) for u in range(U)]
    # per-unit state (full size U); slots -> units mapping for the (possibly compacted) stack
    best_params = {k: v.detach().clone() for k, v in stack.params.items()}
    best_buffers = {k: v.detach().clone() for k, v in stack.buffers.items()}
    best_val = np.full(U, np.inf)
    since_best = np.zeros(U, dtype=int)
    active_u = np.ones(U, bool)
    slots = np.arange(U)  # unit index of each stacked slot
    tr_s, va_s = tr, va
    checked = False
    bar = tqdm(range(max_epochs), disable=not progress, desc=f"fit {U} units", leave=False)
    for epoch in bar:
        active_s = active_u[slots]
        stack.train(True)
        order = _epoch_order(tr.n_stimuli, gen)
        sums = torch.zeros(len(slots), dtype=torch.float64)
        nb = 0
        for x, y in tr_s.batches(order, batch_size):
            pred = stack.forward(x, len(slots))
            if not checked:
                _check_output(pred, x, len(slots), tr.name)
                checked = True
            per = loss_fn(pred, y.unsqueeze(2), reduction="none")
            valid = torch.isfinite(y).any(2).any(0)
            act = torch.as_tensor(active_s, device=per.device)
            per = torch.where(valid & act, per, torch.zeros((), dtype=per.dtype, device=per.device))
            per_cpu = per.detach().double().cpu()
            if not bool(torch.isfinite(per_cpu).all()):
                bad = [ids[slots[i]] for i in torch.nonzero(~torch.isfinite(per_cpu)).flatten().tolist()]
                raise FloatingPointError(f"loss is NaN/inf at epoch {epoch} for neuron(s) {bad}")
            per.sum().backward()
            if clip_grad is not None:
                _clip_per_unit(stack.params, clip_grad)
            opt.step(active_s)
            sums += per_cpu
            nb += 1
        _check_stacked_finite(stack, epoch, [ids[s] for s in slots], active_s)
        train_loss = (sums / max(nb, 1)).numpy()
        if va_s is not None:
            stack.train(False)
            v_per, v_valid = _val_losses(None, va_s, loss_fn, batch_size, stacked=stack)
            v = np.where(v_valid.cpu().numpy(), v_per.double().cpu().numpy(), np.nan)
            bad = active_s & ~np.isfinite(v) & v_valid.cpu().numpy()
            if bad.any():
                raise FloatingPointError(f"validation loss is NaN/inf at epoch {epoch} for neuron(s) "
                                         f"{[ids[slots[i]] for i in np.nonzero(bad)[0]]}")
        else:
            v = np.full(len(slots), np.nan)
        improved_s = np.zeros(len(slots), bool)
        for i, u in enumerate(slots):
            if not active_s[i]:
                continue
            r = results[u]
            r.train_loss.append(float(train_loss[i]))
            r.val_loss.append(float(v[i]))
            r.lr.append(float(opt.lr[i]))
            if va_s is None:
                r.best_epoch = epoch
                improved_s[i] = True
            elif v[i] < best_val[u] - min_delta:
                best_val[u], since_best[u] = v[i], 0
                r.best_epoch, r.best_val_loss = epoch, float(v[i])
                improved_s[i] = True
            else:
                since_best[u] += 1
        if improved_s.any():
            _store_best(stack, best_params, best_buffers, slots, improved_s)
        if plateau is not None and va_s is not None:
            full = np.full(U, np.nan)
            full[slots] = v
            mask = np.zeros(U, bool)
            mask[slots] = active_s
            lrs = plateau.step(np.nan_to_num(full, nan=np.inf), mask)
            opt.lr = np.where(active_s, lrs[slots], opt.lr)
        if va_s is not None and patience is not None:
            stop = active_s & (since_best[slots] >= patience)
            for i in np.nonzero(stop)[0]:
                results[slots[i]].stopped_early = True
            active_u[slots[stop]] = False
        n_act = int(active_u.sum())
        bar.set_postfix(active=n_act)
        if n_act == 0:
            break
        if n_act < len(slots) * compact_below:
            keep = np.nonzero(active_u[slots])[0]
            kt = torch.as_tensor(keep, dtype=torch.long, device=dev)
            stack.keep(kt)
            opt.keep(kt, stack.params)
            slots = slots[keep]
            tr_s, va_s = tr.select(slots.tolist()), (va.select(slots.tolist()) if va is not None else None)
            logger.debug("fit_single_units: compacted the stack to %d units at epoch %d", len(slots), epoch)
    wall = time.perf_counter() - t0
    out = []
    for u, m in enumerate(models):
        state = {k: v[u] for k, v in best_params.items()}
        state.update({k: v[u] for k, v in best_buffers.items()})
        m.load_state_dict(state, strict=False)
        m.eval()
        r = results[u]
        r.epochs = len(r.train_loss)
        r.wall_s = wall
        out.append(m)
    logger.info("fit_single_units: %d units of %s in %.1f s (batched)", U, type(models[0]).__name__, wall)
    return out, results


@torch.no_grad()
def _store_best(stack, best_params, best_buffers, slots, improved_s):
    idx_s = torch.as_tensor(np.nonzero(improved_s)[0], dtype=torch.long)
    idx_u = torch.as_tensor(slots[improved_s], dtype=torch.long)
    for store, cur in ((best_params, stack.params), (best_buffers, stack.buffers)):
        for k, v in cur.items():
            d = v.device
            store[k].index_copy_(0, idx_u.to(d), v.detach().index_select(0, idx_s.to(d)))


def _check_stacked_finite(stack, epoch, slot_ids, active_s):
    oks = []
    names = list(stack.params)
    for k in names:
        oks.append(torch.isfinite(stack.params[k].detach()).flatten(1).all(1))
    if not oks:
        return
    ok = torch.stack(oks).cpu().numpy()  # (P, U)
    bad = ~ok & active_s[None, :]
    if bad.any():
        p_idx, u_idx = np.nonzero(bad)
        raise FloatingPointError(
            f"parameter(s) {sorted({names[i] for i in p_idx})} became NaN/inf at epoch {epoch} "
            f"for neuron(s) {sorted({slot_ids[i] for i in u_idx}, key=str)}"
        )


# ----------------------------------------------------------------------------- predict / evaluate


def _stimulus_batches(dataset, batch_size: int):
    """Stimuli of ``dataset`` zero-padded into batches of similar length ->
    list of (x (b, 1, F, L) float32, stimulus indices, lengths)."""
    n = len(dataset)
    stims = [torch.as_tensor(dataset[i][0], dtype=torch.float32) for i in range(n)]
    for i, s in enumerate(stims):
        if s.dim() != 3 or s.shape[0] != 1:
            raise ValueError(f"expected stimulus item {i} of shape (1, F, T), got {tuple(s.shape)}")
    order = sorted(range(n), key=lambda i: stims[i].shape[2])
    out = []
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        lens = [stims[i].shape[2] for i in idx]
        x = torch.zeros(len(idx), 1, stims[idx[0]].shape[1], max(lens))
        for j, i in enumerate(idx):
            x[j, :, :, : lens[j]] = stims[i]
        out.append((x, idx, lens))
    return out


@torch.no_grad()
def _predict_batches(model: nn.Module, batches, n: int, device) -> list[np.ndarray]:
    dev = _model_device(model) if device is None else resolve_device(device)
    model.to(dev)
    was_training = model.training
    model.eval()
    out: list = [None] * n
    try:
        for x, idx, lens in batches:
            pred = model(x.to(dev)).detach().float().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = pred[j, :, : lens[j]].copy()
    finally:
        model.train(was_training)
    return out


def predict(model: nn.Module, dataset, device: str | torch.device | None = None,
            batch_size: int = 16) -> list[np.ndarray]:
    """Model predictions for every stimulus of ``dataset``: a list of (N, T_i) float32 arrays.

    Runs in eval mode (the model's train/eval mode is restored afterwards); stimuli of
    similar length are batched together. ``device=None`` uses the model's device; any
    other value moves the model there.
    """
    return _predict_batches(model, _stimulus_batches(dataset, batch_size), len(dataset), device)


def predict_units(models: Sequence[nn.Module], dataset, device: str | torch.device | None = None,
                  batch_size: int = 16) -> list[np.ndarray]:
    """Predictions of U single-unit models (each ``(B, 1, F, T) -> (B, 1, T)``, e.g. from
    :func:`fit_single_units`) stacked per stimulus: a list of (U, T_i) float32 arrays, row u
    from ``models[u]``. The stimuli are collated once for all models; pass the result to
    ``evaluate(None, dataset, predictions=...)`` to score all units in one metrics call.
    """
    if len(models) == 0:
        raise ValueError("expected at least one model, got an empty list")
    batches = _stimulus_batches(dataset, batch_size)
    n = len(dataset)
    per_model = []
    for u, m in enumerate(models):
        preds = _predict_batches(m, batches, n, device)
        if n and preds[0].shape[0] != 1:
            raise ValueError(f"expected single-unit models with output (B, 1, T); model {u} returns "
                             f"{preds[0].shape[0]} outputs")
        per_model.append(preds)
    return [np.concatenate([p[i] for p in per_model], axis=0) for i in range(n)]


def _concat_responses(dataset) -> np.ndarray:
    """Responses of every stimulus concatenated along time -> (N, Rmax, sum T_i), NaN-padded."""
    resps = [np.asarray(dataset[i][1], dtype=np.float32) for i in range(len(dataset))]
    rmax = max(r.shape[1] for r in resps)
    n = resps[0].shape[0]
    total = sum(r.shape[2] for r in resps)
    out = np.full((n, rmax, total), np.nan, dtype=np.float32)
    t = 0
    for r in resps:
        out[:, : r.shape[1], t: t + r.shape[2]] = r
        t += r.shape[2]
    return out


def evaluate(model: nn.Module | None, dataset, device: str | torch.device | None = None,
             predictions: list[np.ndarray] | None = None) -> pd.DataFrame:
    """Per-neuron accuracy on the concatenated stimuli of ``dataset`` (usually the test set).

    Returns a DataFrame with one row per neuron: neuron (id), cc_raw, cc_norm, cc_max
    (NaN where undefined, e.g. cc_norm/cc_max with a single repeat). ``predictions``
    (list of (N, T_i), e.g. from :func:`predict_units`) skips the forward pass; ``model``
    may then be None.
    """
    from . import metrics

    if predictions is None:
        if model is None:
            raise ValueError("expected a model or predictions (a list of (N, T_i) arrays), got neither")
        preds = predict(model, dataset, device)
    else:
        preds = predictions
    if len(preds) != len(dataset):
        raise ValueError(f"expected {len(dataset)} predictions (one per stimulus), got {len(preds)}")
    pred = np.concatenate([np.asarray(p, dtype=np.float32) for p in preds], axis=1)
    resp = _concat_responses(dataset)
    if pred.shape[0] != resp.shape[0]:
        raise ValueError(f"the model outputs N={pred.shape[0]} neurons but dataset "
                         f"'{_dataset_name(dataset)}' has N={resp.shape[0]}")
    return pd.DataFrame({
        "neuron": _neuron_ids(dataset),
        "cc_raw": np.asarray(metrics.cc_raw(pred, resp, reduction="none"), dtype=float),
        "cc_norm": np.asarray(metrics.cc_norm(pred, resp, reduction="none"), dtype=float),
        "cc_max": np.asarray(metrics.cc_max(resp, reduction="none"), dtype=float),
    })


def average_over_seeds(results: pd.DataFrame, keys: Sequence[str] = ("config_id",),
                       values: Sequence[str] = ("cc_raw", "cc_norm", "cc_max")) -> pd.DataFrame:
    """Per-neuron means over seeds: one row per (``keys``..., neuron) with the NaN-aware
    mean of ``values`` and ``n_seeds``. Average these over neurons for a summary."""
    missing = [c for c in (*keys, "neuron", "seed", *values) if c not in results.columns]
    if missing:
        raise ValueError(f"expected results columns {missing} (one row per neuron x seed)")
    g = results.groupby([*keys, "neuron"], sort=False, dropna=False)
    out = g[list(values)].mean()
    out["n_seeds"] = g["seed"].nunique()
    return out.reset_index()


# ----------------------------------------------------------------------------- checkpoints


def _plain(value):
    """Make ``value`` storable with torch.load(weights_only=True): builtins, lists, dicts."""
    if isinstance(value, pd.DataFrame):
        return {"__dataframe__": {c: _plain(value[c].tolist()) for c in value.columns}}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, FitResult):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    raise ValueError(f"checkpoint info values must be numbers, strings, lists, dicts, arrays or "
                     f"DataFrames, got {type(value).__name__}")


def _unplain(value):
    if isinstance(value, dict):
        if set(value) == {"__dataframe__"}:
            return pd.DataFrame(value["__dataframe__"])
        return {k: _unplain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    return value


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **info) -> None:
    """Save weights, model class name, ``model.config`` and ``info`` (e.g. dataset, split_seed,
    seed, metrics) to ``path`` atomically (temp file + ``os.replace``).

    ``load_checkpoint`` rebuilds the model from this file alone (via ``models.build_model``).
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ValueError(f"expected {type(model).__name__} to have a dict `config` attribute "
                         "(the constructor arguments) so that it can be rebuilt")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_class": type(model).__name__,
        "config": _plain(config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "info": _plain(info),
        "torch_version": str(torch.__version__),
    }
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_ckpt_", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild a model saved with :func:`save_checkpoint` -> ``(model, info)`` (model in eval mode)."""
    from .models import build_model

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"expected a checkpoint file at {path!r}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"expected a deepstrf_utils checkpoint ({CHECKPOINT_FORMAT}) in {path!r}")
    model = build_model(payload["model_class"], **payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.to(resolve_device(device)).eval()
    return model, _unplain(payload["info"])


# ----------------------------------------------------------------------------- runner (re-exported)


def run_configs(configs, seeds, out_csv, root="data", device="auto", checkpoint_dir=None, progress=True):
    """Run configurations x seeds into one tidy, resumable CSV; see :func:`deepstrf_utils.runner.run_configs`."""
    from .runner import run_configs as _run_configs

    return _run_configs(configs, seeds, out_csv, root=root, device=device, checkpoint_dir=checkpoint_dir,
                        progress=progress)


def summary_table(results):
    """Per-configuration summary (Dataset, Model, Note, Parameters, CCraw (%), CCnorm (%) ± SEM);
    see :func:`deepstrf_utils.runner.summary_table`."""
    from .runner import summary_table as _summary_table

    return _summary_table(results)
