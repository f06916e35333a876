"""Fitting N independent single-unit models together: :func:`fit_single_units`.

Their parameters are stacked and evaluated with ``torch.func.vmap`` so that one
forward/backward and one optimiser step serve every unit; each unit keeps its own weights,
AdapTrans parameters, gradient clipping, learning rate and early stopping, so the result
equals N separate :func:`~.fitting.fit` calls with the same seeds and batch order.

Shapes: B stimuli, F bands, T time bins, U stacked single units.
"""
from __future__ import annotations

import copy
import functools
import logging
import time
from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from .arguments import check_fit_call
from .device import resolve_device, seed_everything
from .fitting import (FitResult, _check_fit_args, _check_output, _fit_packed, _get_loss,
                      _init_output, _lbfgs_from, _probe_output, _resolve_fit_options, _ridge_start, _val_losses,
                      _validation_coverage)
from .optim import _clip_per_unit, _decay_scales, _lr_scales, _make_plateau, _StackedAdamW, no_decay_names
from .packing import _epoch_order, _neuron_positions, _Packed, accepts_lengths
from .race import race
from .stimulus_format import check_stimulus_format as check_format
from .stopping import INTERRUPTED, INTERRUPTED_RESULT, improved, keep_interrupted

logger = logging.getLogger(__name__)

__all__ = ["fit_single_units", "stacking_pays_off"]


class _Stack:
    """U single-unit models (same class/config) stacked for ``vmap``.

    params / buffers: dicts name -> (U, ...) tensors; forward(x (B, 1, F, T)) -> (B, U, T).
    Slots can be dropped (``keep``) when units stop, so finished units cost nothing.
    """

    def __init__(self, models: list[nn.Module], device):
        self.base = copy.deepcopy(models[0]).to(device)
        params, buffers = stack_module_state(models)
        # frozen parameters (requires_grad=False) stay frozen, as in fit()
        self.trainable = {n for n, p in models[0].named_parameters() if p.requires_grad}
        self.params = {k: v.detach().to(device).requires_grad_(k in self.trainable) for k, v in params.items()}
        self.buffers = {k: v.detach().to(device).clone() for k, v in buffers.items()}
        self.pass_lengths = accepts_lengths(self.base)

    def _call(self, p, b, x, lengths):
        kwargs = {"lengths": lengths} if lengths is not None else {}
        return functional_call(self.base, (p, b), (x,), kwargs)

    def forward(self, x, n_units, lengths=None):
        """x (B, 1, F, T) shared by the units, lengths (B,) or None -> (B, U, T)."""
        lengths = lengths if self.pass_lengths else None
        out = vmap(self._call, in_dims=(0, 0, None, None), randomness="different")(self.params, self.buffers, x,
                                                                                    lengths)
        if out.dim() != 4 or out.shape[2] != 1:
            raise ValueError(f"expected each single-unit model to return (B, 1, T), got {tuple(out.shape[1:])}")
        return out[:, :, 0, :].transpose(0, 1)

    def train(self, mode=True):
        self.base.train(mode)

    def keep(self, slots: torch.Tensor):
        self.params = {k: v.detach()[slots].clone().requires_grad_(k in self.trainable)
                       for k, v in self.params.items()}
        self.buffers = {k: v[slots].clone() for k, v in self.buffers.items()}


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
    batched: bool | None = None,
    compact_below: float = 0.5,
    init_output: bool = True,
    max_stack: int | None = None,
    prefilter_lr: float | None = None,
    optimizer: str = "auto",
    init: str | None = "auto",
    rel_tol: float | None = None,
    train_chunk: tuple[int, int] | None | str = "auto",
    check_stimulus_format: bool = True,
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

    Optimiser, as in :func:`fit`: ``optimizer="auto"`` picks the path of the model family
    (L-BFGS for L, LN (both starts raced per unit) and the 2D-CNN; AdamW for NRF / DNet and
    recurrent models) unless an AdamW setting (``lr``, ``prefilter_lr``, ``scheduler``,
    ``clip_grad``) or ``batched=True`` is given; L-BFGS fits the units one by one (never stacked). Recurrent units trained on chunks (``train_chunk``, as in
    :func:`fit`) are fitted one by one too. Each result records ``optimizer``, ``init``,
    ``stop_reason`` and ``train_chunk``. Ctrl-C (``KeyboardInterrupt``) gives every unit its
    best weights so far and re-raises with ``err.fit_result = (models, results)`` of the units
    fitted so far (the interrupted ones with ``stop_reason="interrupted"``; :mod:`.stopping`).

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
    check_fit_call(locals(), "fit_single_units")  # types, ranges, datasets (train vs val), device
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
    check_fit_call({"model": models[0], "train": train}, "fit_single_units")  # float32 units, data F and dt_ms
    o = _resolve_fit_options(models[0], optimizer, init, lr, max_epochs, patience, rel_tol, prefilter_lr, scheduler,
                             clip_grad, force_adamw=batched is True, train_chunk=train_chunk, batch_size=batch_size,
                             weight_decay=weight_decay, n_stimuli=len(train))
    batch_size, weight_decay = o["batch_size"], o["weight_decay"]
    if check_stimulus_format:
        for part, what in ((train, "training set"), (val, "validation set")):
            if part is not None:
                check_format(models[0], part, what)
    if o["optimizer"] == "lbfgs" and batched:
        raise ValueError("optimizer='lbfgs' fits units one by one; it cannot be combined with batched=True")
    if o["train_chunk"] is not None and batched:
        raise ValueError("train_chunk fits units one by one; it cannot be combined with batched=True")
    lr, max_epochs, patience, rel_tol = o["lr"], o["max_epochs"], o["patience"], o["rel_tol"]
    _check_fit_args(lr, max_epochs, patience, batch_size, clip_grad, prefilter_lr, rel_tol)
    seed_everything(seed)
    tr = _Packed.from_dataset(train, dev, positions)
    va = _Packed.from_dataset(val, dev, positions) if val is not None else None
    tr.check_neurons_have_data("training")
    _probe_output(models[0], tr.select([0]))
    mean, std = tr.target_stats()  # per unit, computed once for all units

    def start(u, m):
        """Unit u's starting point: output at the data's scale, then (AdamW path, init="ridge") the
        ridge STRF; the L-BFGS path sets its starts itself (:func:`~.fitting._lbfgs_from`)."""
        if init_output:
            _init_output(m, mean[u:u + 1], std[u:u + 1])
        if o["init"] == "ridge" and o["optimizer"] != "lbfgs":
            _ridge_start(m, tr.select([u]), va.select([u]) if va is not None else None, (mean[u:u + 1], std[u:u + 1]))

    for u, m in enumerate(models):
        start(u, m)

    use_batched = batched if batched is not None else stacking_pays_off(models[0], dev)
    if o["optimizer"] == "lbfgs" or o["train_chunk"] is not None:
        use_batched = False  # L-BFGS and chunked training fit the units one by one
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
                    with _units_so_far(out_models, out_results):
                        ms, rs = _fit_stacked(
                            models[start:start + step], tr.select(chunk) if step < U else tr,
                            (va.select(chunk) if step < U else va) if va is not None else None,
                            loss, lr, weight_decay, max_epochs, patience, batch_size, scheduler,
                            scheduler_kwargs, clip_grad, seed, progress, min_delta, compact_below, t0, dev,
                            prefilter_lr, rel_tol)
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
                    start(u, models[-1])
        if batched:
            raise ValueError(f"cannot batch {type(models[0]).__name__}: {reason}")
        logger.warning("fit_single_units: %s cannot be batched (%s); fitting %d units in a loop",
                       type(models[0]).__name__, reason, U)
    results = []
    for u in tqdm(range(U), disable=not progress or U == 1, desc="units", leave=False):
        t_u = time.perf_counter()
        seed_everything(seed)
        va_u = va.select([u]) if va is not None else None
        with _units_so_far(models[:u + 1], results):
            if o["optimizer"] == "lbfgs":  # every start of o["starts"]; the better on validation kept
                r = race(models[u], [functools.partial(
                    _lbfgs_from, start=s, tr=tr.select([u]), va=va_u, loss=loss, o=o,
                    stats=(mean[u:u + 1], std[u:u + 1]), batch_size=batch_size, seed=seed,
                    progress=progress and U == 1, min_delta=min_delta, t0=t_u, neuron=tr.neuron_ids[u])
                    for s in o["starts"]], t_u)
            else:
                r = _fit_packed(models[u], tr.select([u]), va_u, loss, lr, weight_decay, max_epochs, patience,
                                batch_size, scheduler, scheduler_kwargs, clip_grad, seed, progress and U == 1,
                                min_delta, t_u, neuron=tr.neuron_ids[u], prefilter_lr=prefilter_lr, rel_tol=rel_tol,
                                train_chunk=o["train_chunk"])
        if o["optimizer"] != "lbfgs":  # on the L-BFGS path each start's result says its own
            r.init = o["init"]
        results.append(r)
    wall = time.perf_counter() - t0
    for r in results:
        r.wall_s = wall
    return models, results


@contextmanager
def _units_so_far(models: list, results: list):
    """On an interrupt inside the block, set ``err.fit_result`` to ``(models, results)``: the
    units finished before it (``results``, fitted ``models`` first, then the model being fitted)
    plus what the interrupted fit kept (a unit's ``FitResult``, or a stack's ``(models,
    results)``), then re-raise (:mod:`.stopping`)."""
    try:
        yield
    except KeyboardInterrupt as err:
        part = getattr(err, INTERRUPTED_RESULT, None)
        ms, rs = list(models), list(results)
        if isinstance(part, tuple):
            ms, rs = ms + list(part[0]), rs + list(part[1])
        else:
            rs += [part] if isinstance(part, FitResult) else []
            ms = ms[:len(rs)]
        setattr(err, INTERRUPTED_RESULT, (ms, rs))
        raise


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
                 compact_below, t0, dev, prefilter_lr=None, rel_tol=0.0):
    loss_fn = _get_loss(loss)
    U = len(models)
    ids = tr.neuron_ids
    # units without validation data are fitted as fit(val=None) fits them (see _validation_coverage)
    has_val = _validation_coverage(va) if va is not None else np.zeros(U, bool)
    if va is not None and not has_val.any():
        va = None
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
    interrupted = None
    try:
        for epoch in bar:
            active_s = active_u[slots]
            stack.train(True)
            order = _epoch_order(tr.n_stimuli, gen)
            sums = torch.zeros(len(slots), dtype=torch.float64)
            nb = 0
            for x, y, lengths in tr_s.batches(order, batch_size, with_lengths=True):
                pred = stack.forward(x, len(slots), lengths)
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
                if va_s is None or not has_val[u]:
                    r.best_epoch = epoch
                    improved_s[i] = True
                elif improved(float(v[i]), float(best_val[u]), min_delta, rel_tol):
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
                mask[slots] = active_s & has_val[slots]
                lrs = plateau.step(np.nan_to_num(full, nan=np.inf), mask)
                opt.lr = np.where(active_s, lrs[slots], opt.lr)
            if va_s is not None and patience is not None:
                stop = active_s & has_val[slots] & (since_best[slots] >= patience)
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
    except KeyboardInterrupt as err:  # every unit keeps its best weights so far (below)
        interrupted = err

    wall = time.perf_counter() - t0
    out = []
    for u, m in enumerate(models):
        state = {k: v[u] for k, v in best_params.items()}
        state.update({k: v[u] for k, v in best_buffers.items()})
        _load_unit_state(m, state)
        m.eval()
        r = results[u]
        r.epochs = len(r.train_loss)
        r.wall_s = wall
        r.stop_reason = ("patience" if r.stopped_early else INTERRUPTED if interrupted is not None
                         else "max_epochs" if va is not None else "no validation set")
        out.append(m)
    if interrupted is not None:
        keep_interrupted(interrupted, (out, results), f"fit_single_units ({U} stacked units)",
                         max(r.epochs for r in results), [r.best_epoch for r in results])
        raise interrupted
    logger.info("fit_single_units: %d units of %s in %.1f s (batched)", U, type(models[0]).__name__, wall)
    return out, results


def _load_unit_state(model: nn.Module, state: dict) -> None:
    """Load one unit's best ``state`` (its stacked parameters and buffers) into ``model``, strictly.

    Every entry of ``model.state_dict()`` must come from ``state`` (only ``_extra_state``
    entries, which are not tensors of the stack, keep the model's own value), and every
    entry of ``state`` must be a parameter or buffer of ``model``; non-persistent buffers
    (e.g. AdapTrans' fixed ``kernel``) are set directly. Raises ValueError naming the
    missing / unexpected keys instead of skipping them.
    """
    own = model.state_dict()
    non_persistent = {n for n, _ in model.named_buffers()} - set(own)
    missing = [k for k in own if k not in state and not k.endswith("_extra_state")]
    unexpected = [k for k in state if k not in own and k not in non_persistent]
    if missing or unexpected:
        raise ValueError(f"cannot restore the best weights of {type(model).__name__}: missing keys "
                         f"{missing}, unexpected keys {unexpected}")
    model.load_state_dict({k: state.get(k, v) for k, v in own.items()}, strict=True)
    with torch.no_grad():
        for name in non_persistent & set(state):
            model.get_buffer(name).copy_(state[name])


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
