"""Optimisation pieces shared by :func:`~.fitting.fit` and :func:`~.stacked.fit_single_units`.

- :func:`no_decay_names`: the parameters AdamW must not weight-decay (time constants, gains);
  ``lr_factors`` / ``decay_factors``: per-parameter learning-rate and decay factors;
- ``StackedAdamW``: AdamW over stacked ``(U, ...)`` parameters, one state per unit (the
  same update as ``torch.optim.AdamW``); ``clip_per_unit``: per-unit gradient clipping;
- ``Plateau``: vectorised reduce-LR-on-plateau (one state per unit), ``make_plateau``.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn


logger = logging.getLogger(__name__)

#: parameters whose name starts with this prefix get ``prefilter_lr``
PREFILTER_PREFIX = "prefilter."

__all__ = ["no_decay_names", "PREFILTER_PREFIX"]


class Plateau:
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


def make_plateau(scheduler, scheduler_kwargs, n, lr, patience):
    if scheduler is None:
        return None
    if scheduler != "plateau":
        raise ValueError(f"expected scheduler None or 'plateau', got {scheduler!r}")
    kw = {"factor": 0.5, "patience": max(1, patience // 5)}
    kw.update(scheduler_kwargs or {})
    return Plateau(n, lr, **kw)


def lr_factors(names, lr, prefilter_lr, what) -> dict:
    """Parameter name -> learning-rate factor relative to ``lr``: ``prefilter_lr / lr`` for
    ``prefilter.*`` parameters when ``prefilter_lr`` is set, else 1.0."""
    names = list(names)
    if prefilter_lr is None:
        return {n: 1.0 for n in names}
    scale = float(prefilter_lr) / float(lr)
    out = {n: (scale if _is_prefilter(n) else 1.0) for n in names}
    if not any(_is_prefilter(n) for n in names):
        logger.warning("prefilter_lr=%g is ignored: %s has no trainable '%s*' parameter", prefilter_lr, what,
                       PREFILTER_PREFIX)
    return out


def _is_prefilter(name: str) -> bool:
    """A parameter of a prefilter: ``prefilter.*``, or ``<wrapper>.prefilter.*`` inside a
    wrapped model (``core.prefilter.*`` of a MultiSessionModel, ``model.prefilter.*``)."""
    return name.startswith(PREFILTER_PREFIX) or f".{PREFILTER_PREFIX}" in name


def make_adamw(model: nn.Module, lr: float, weight_decay: float, prefilter_lr: float | None = None):
    """AdamW over ``model``'s trainable parameters -> ``(optimizer, params, group_scales)``.

    Param groups by (learning-rate factor, weight-decay factor): ``prefilter_lr`` for the
    prefilter's parameters, no decay for :func:`no_decay_names`; ``group_scales[i]`` is the
    learning-rate factor of group i (for the plateau scheduler). Dense floating parameters on
    a device with torch's fused AdamW kernel (CPU, CUDA) take it: the same update in one call,
    where at batch 1 the default per-parameter loop costs ~4x more (``benchmarks/bench_upstream.py``).
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    lr_scales = lr_factors([n for n, _ in named], lr, prefilter_lr, type(model).__name__)
    wd_scales = decay_factors([n for n, _ in named], no_decay_names(model))
    groups = {}
    for n, p in named:
        groups.setdefault((lr_scales[n], wd_scales[n]), []).append(p)
    params = [p for _, p in named]
    fused = _fused_adamw_ok(params)
    opt = torch.optim.AdamW([{"params": ps, "lr": lr * sc, "weight_decay": weight_decay * wd}
                             for (sc, wd), ps in groups.items()], lr=lr, weight_decay=weight_decay,
                            fused=fused or None)
    if fused:
        opt.register_step_post_hook(_VersionBump(params))
    return opt, params, [sc for sc, _ in groups]


class _VersionBump:
    """Optimiser step hook: mark ``params`` as modified in place. torch's fused AdamW kernel
    writes them without bumping their version counters (torch 2.13), on which caches keyed
    on a parameter's version rely (AdapTrans' evaluation kernels: a stale cache would score
    the validation set with the kernels of an earlier step)."""

    def __init__(self, params):
        self.params = list(params)

    def __call__(self, optimizer, args, kwargs) -> None:
        for p in self.params:
            torch.autograd.graph.increment_version(p)


_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _fused_adamw_ok(params) -> bool:
    """Whether torch's fused AdamW kernel takes every parameter: dense, floating, on a device
    this torch has the kernel for (CPU from torch 2.4 on; torch's own list, used by its check)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:  # pragma: no cover - torch versions without the list
        devices = {"cuda"}
    if not hasattr(torch.autograd.graph, "increment_version"):  # pragma: no cover - older torch: see _VersionBump
        return False
    return bool(params) and all(p.device.type in devices and p.dtype in _FUSED_DTYPES and p.layout == torch.strided
                                for p in params)


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of ``model``'s parameters that AdamW must NOT weight-decay.

    These are time constants and gains, not weights: decaying them pulls them towards the
    arbitrary value their parametrisation has at 0, a bias that is strongest where the data
    say little. Each module of ``model`` that names its own (``module.no_decay_names()``, e.g.
    :meth:`~deepstrf_utils.models.ResponseModel.no_decay_names`: the prefilter's parameters,
    and DNet's leaky-integrator ``hidden_d`` / ``output_d``) is asked, wherever it sits in
    ``model``; every ``prefilter.*`` parameter of any other module is exempt too (AdapTrans'
    ``logit_a_on``, ``logit_a_off``, ``logit_w``).
    """
    out = {n for n, _ in model.named_parameters() if _is_prefilter(n)}
    for prefix, mod in model.named_modules():
        own = getattr(mod, "no_decay_names", None)
        if callable(own):
            dot = f"{prefix}." if prefix else ""
            out.update(f"{dot}{n}" for n in own())
    return out


def decay_factors(names, no_decay: set) -> dict:
    """Parameter name -> weight-decay factor: 0.0 for ``no_decay`` names, else 1.0."""
    return {n: (0.0 if n in no_decay else 1.0) for n in names}


class StackedAdamW:
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


def clip_per_unit(params: dict, max_norm: float):
    """Scale each unit's gradient (over all its parameters) to L2 norm <= max_norm."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    if not grads:
        return
    sq = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0)
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))
