"""dSTRFs (per-bin Jacobians of a fitted model) and their principal components (dPCs).

The **dSTRF** of neuron ``n`` at time bin ``t`` is the derivative of the model's prediction
with respect to the *raw* input spectrogram window ending at ``t``::

    dstrf[n, t, f, k] = d pred[n, t] / d x[f, t - k],   k = 0 .. K - 1  (k = 0: present bin)

evaluated at a real stimulus. The prefilter (AdapTrans) is inside the differentiation, so
its whole memory counts: by default ``K`` is the model's full receptive field,
``K = (prefilter taps - 1) + core lags`` (:func:`receptive_field`), e.g. 130 + 43 = 173
bins for a 2D-CNN (kernel 15, 3 blocks) on a 131-tap AdapTrans, 130 + 20 = 150 for an LN
model with 20 lags; nothing of the adaptation tail is truncated. For a linear model the
dSTRF is the same at every bin (its weight STRF, convolved with the AdapTrans kernels when
there is one); for a nonlinear model it shows how the locally linear tuning changes with
the stimulus context. Lags that reach before the stimulus start (``t - k < 0``) are 0; at
``k = t`` the entry includes AdapTrans' replicated first frame.

Exact and batched computation (no Python loop over bins). When the receptive field ``R`` is
finite, the bins ``t`` of one residue class ``t = r (mod R)`` have disjoint input windows,
so one backward pass of ``sum_{t = r mod R} pred[n, t]`` yields the dSTRFs of all of them at
once, exactly: a neuron needs ``R`` backward passes whatever the stimulus length. These
passes run as one batch of stimulus copies per chunk (``batch_size`` copies, one per
(neuron, residue class); batch items are independent in eval mode). With an AdapTrans or
Willmore prefilter (band-wise: ``y = act(h * x)`` per band), the default ``method="chain"``
differentiates only the core, with respect to the prefilter output, so the stride is the
core's receptive field ``Rc`` (43 instead of 173 for the 2D-CNN: ~6x faster, measured in
``benchmarks/bench_interpret.py``), and applies the chain rule through the prefilter
exactly: the core Jacobian times the rectifier's slope, convolved over lags with the
prefilter kernels (FFT), lags before the stimulus start folded onto its replicated first
frame. ``method="direct"`` differentiates the whole model (tests check both agree). Models with an
unbounded memory (DNet's leaky integrators, StateNet's GRU, unknown modules) get one copy
per (neuron, bin), cropped after the chunk's last bin (causality makes that exact) and
``K`` then covers only the last ``K`` lags of the memory (default: prefilter taps - 1 +
``n_lags`` or 50 bins). Long recordings are cut into segments of ``time_chunk`` bins, each
run with the ``R - 1`` bins of context it needs (exact for finite ``R``).

The **dPCs** (:func:`dpcs`) are the principal axes of one neuron's dSTRFs over bins: the
right singular vectors of the ``(T, F * K)`` matrix of its dSTRFs, *not* centred (the
second-moment matrix, so that a linear neuron, whose dSTRFs are all equal, has one dPC
carrying 100 % of the energy: its STRF), with the share of the total energy each explains.

Shapes: N neurons, T time bins, F bands, K lags, P components.
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..adaptrans import AdapTrans, WillmoreHighPass
from ..models import model_device
from .strfs import as_stimulus_list

__all__ = ["receptive_field", "default_n_lags", "dstrf", "iter_dstrf", "dpcs", "dstrf_pcs"]

logger = logging.getLogger(__name__)

#: lags kept by default for a model of unbounded memory without ``n_lags``
DEFAULT_UNBOUNDED_LAGS = 50


# ----------------------------------------------------------------------------------------
# receptive field
# ----------------------------------------------------------------------------------------
def receptive_field(model: nn.Module) -> dict:
    """Temporal receptive field of a response model, in bins: what the model says
    (``model.receptive_field()``, e.g. :meth:`~deepstrf_utils.models.ResponseModel.receptive_field`).

    Returns ``{"prefilter": P, "core": C or None, "total": P + C - 1 or None}``: ``P`` is the
    prefilter's kernel length (AdapTrans ``kernel_size``; 1 without a prefilter); ``C`` the
    bins the core reads per output bin (Linear / LN / NRF: ``n_lags``; 2D CNNs:
    ``n_blocks * (k_t - 1) + 1``; Transformer: ``n_layers * (window - 1) + 1``, its attention
    window); ``None`` for an unbounded memory (DNet, StateNet). A module that does not say is
    asked through the module it wraps (``.model``), else read as unbounded behind its
    ``prefilter``'s kernel.
    """
    own = getattr(model, "receptive_field", None)
    if callable(own):
        return own()
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module):
        return receptive_field(inner)
    pre = getattr(model, "prefilter", None)
    p = int(getattr(pre, "kernel_size", 1) or 1) if isinstance(pre, nn.Module) else 1
    return {"prefilter": p, "core": None, "total": None}


def default_n_lags(model: nn.Module, rf: dict | None = None) -> int:
    """Default K of :func:`dstrf` (and MEI window): the full receptive field when finite, else
    the prefilter's taps - 1 + the model's ``n_lags`` (or ``DEFAULT_UNBOUNDED_LAGS``)."""
    rf = receptive_field(model) if rf is None else rf
    if rf["total"] is not None:
        return rf["total"]
    n_lags = getattr(model, "n_lags", None)
    return rf["prefilter"] - 1 + int(n_lags if n_lags is not None else DEFAULT_UNBOUNDED_LAGS)


# ----------------------------------------------------------------------------------------
# batched Jacobian windows
# ----------------------------------------------------------------------------------------
def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    try:
        pred = model(x)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ValueError(
            f"expected a model mapping a spectrogram (B, 1, F, T) to predictions (B, N, T); calling it on "
            f"a stimulus of shape {tuple(x.shape)} failed: {exc}"
        ) from exc
    if not isinstance(pred, torch.Tensor) or pred.ndim != 3 or pred.shape[0] != x.shape[0] or pred.shape[2] != x.shape[-1]:
        got = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
        raise ValueError(f"expected the model to return (B, N, T) = ({x.shape[0]}, N, {x.shape[-1]}), got {got}")
    return pred


def _input_grad(model, xb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gradient of ``sum(pred * mask)`` with respect to the batch of copies ``xb`` (B, 1, F, T)."""
    xb = xb.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        pred = _forward(model, xb)
        if not pred.requires_grad:
            raise ValueError(
                "expected a prediction that is differentiable with respect to the input spectrogram; the "
                "model's output does not depend on its input through autograd (detached or non-differentiable path)"
            )
        (grad,) = torch.autograd.grad((pred * mask.to(pred.dtype)).sum(), xb, allow_unused=True)
    if grad is None:
        raise ValueError(
            "expected a prediction that is differentiable with respect to the input spectrogram; autograd "
            "found no path from the input to the output"
        )
    return grad[:, 0]  # (B, F, T)


def _gather_windows(grad: torch.Tensor, item: torch.Tensor, times: torch.Tensor, K: int, span: int) -> torch.Tensor:
    """grad (B, F, T), per selected pair (item, time) -> windows (P, F, K), [..., k] = grad[item, :, t - k].

    Lags ``k >= span`` (outside the pair's own input window) and ``t - k < 0`` are set to 0.
    """
    lags = torch.arange(K, device=grad.device)
    idx = times.to(grad.device)[:, None] - lags[None, :]  # (P, K)
    valid = (idx >= 0) & (lags[None, :] < span)
    bands = torch.arange(grad.shape[1], device=grad.device)
    out = grad[item.to(grad.device)[:, None, None], bands[None, :, None], idx.clamp_min(0)[:, None, :]]
    return out * valid[:, None, :].to(out.dtype)


class _NoPrefilterCall(Exception):
    """The prefilter module was not called by the model (e.g. a fused Linear path)."""


def _prefilter_grad(model, pre, xb: torch.Tensor, mask: torch.Tensor):
    """Gradient of ``sum(pred * mask)`` w.r.t. the prefilter output of the copies ``xb``.

    The prefilter's output is replaced by a leaf tensor through a forward hook, so autograd
    stops there. Returns (grad (B, C, F, T), prefilter output (B, C, F, T)).
    """
    store = {}

    def hook(_module, _inp, out):
        store["y"] = out.detach().requires_grad_(True)
        return store["y"]

    handle = pre.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            pred = _forward(model, xb.detach())
    finally:
        handle.remove()
    if "y" not in store:
        raise _NoPrefilterCall
    grad = None
    if pred.requires_grad:
        (grad,) = torch.autograd.grad((pred * mask.to(pred.dtype)).sum(), store["y"], allow_unused=True)
    if grad is None:
        raise ValueError(
            "expected a prediction that is differentiable with respect to the input spectrogram; autograd "
            "found no path from the prefilter output to the model's output"
        )
    return grad, store["y"].detach()


def _compose(jc: torch.Tensor, mwin: torch.Tensor, kern: torch.Tensor, times: torch.Tensor, R: int) -> torch.Tensor:
    """Chain rule through a band-wise prefilter ``y = act(h * x)`` (AdapTrans, Willmore).

    jc (P, C, F, Rc): d pred / d y[c, f, t - l]; mwin (P, C, F, Rc): act'(.) at the same
    entries; kern (C, F, Kp): h. Returns (P, F, R), R = Rc + Kp - 1:
    ``sum_c sum_l jc[.., l] mwin[.., l] h[c, f, k - l]`` (a full convolution over lags), with
    the lags that reach before the stimulus start (``t - k < 0``) folded into lag ``t``, since
    the prefilter replicates the first frame to the left.
    """
    n = jc.shape[-1] + kern.shape[-1] - 1
    a = (jc * mwin).double()
    prod = torch.fft.rfft(a, n=n) * torch.fft.rfft(kern.double(), n=n)[None]
    out = torch.fft.irfft(prod, n=n)[..., :R].sum(1)  # (P, F, R)
    lags = torch.arange(R, device=out.device)
    beyond = lags[None, :] > times.to(out.device)[:, None]  # (P, R)
    early = beyond.any(1).nonzero(as_tuple=True)[0]
    if early.numel():
        folded = (out[early] * beyond[early, None, :]).sum(-1)  # (P', F)
        t_e = times.to(out.device)[early]
        out[early, :, t_e] = out[early, :, t_e] + folded
        out = out * (~beyond)[:, None, :]
    return out


def _segment_dstrf(model, x, neurons, times, K, R, batch_size, n_out, factor=None):
    """dSTRFs of ``neurons`` at ``times`` (sorted, within x) of one stimulus x (1, 1, F, T).

    ``factor``: None (differentiate the whole model w.r.t. x) or ``(prefilter, kernels
    (C, F, Kp), rectified, Rc)`` to differentiate the core w.r.t. the prefilter output (bins
    of one residue class mod Rc share a pass) and chain with the prefilter's Jacobian.
    Returns (len(neurons), len(times), F, K) on x's device.
    """
    F_, T = x.shape[2], x.shape[-1]
    n_sel, n_t = len(neurons), len(times)
    out = torch.zeros(n_sel, n_t, F_, K, dtype=x.dtype, device=x.device)
    stride = factor[3] if factor is not None else R
    if stride is not None:
        # one item per (neuron, residue class of t mod stride); each item covers every selected t of its class
        classes = torch.unique(times % stride)
        items = torch.cartesian_prod(torch.arange(n_sel), classes).view(-1, 2)
    else:
        # unbounded memory: one item per (neuron, bin)
        items = torch.cartesian_prod(torch.arange(n_sel), times).view(-1, 2)
    pos_of = torch.full((T,), -1, dtype=torch.long)
    pos_of[times] = torch.arange(n_t)
    for start in range(0, items.shape[0], int(batch_size)):
        chunk = items[start:start + int(batch_size)]
        rows, keys = chunk[:, 0], chunk[:, 1]
        if stride is not None:
            sel = (times[None, :] % stride) == keys[:, None]  # (B, n_t)
        else:
            sel = times[None, :] == keys[:, None]
        t_end = int(times[sel.any(0)].max()) + 1
        mask = torch.zeros(len(chunk), n_out, t_end, dtype=torch.bool)
        item_idx, t_idx = sel.nonzero(as_tuple=True)
        mask[item_idx, neurons[rows[item_idx]], times[t_idx]] = True
        xb = x[..., :t_end].expand(len(chunk), -1, -1, -1)
        t_pairs = times[t_idx]
        if factor is None:
            grad = _input_grad(model, xb, mask.to(x.device))
            win = _gather_windows(grad, item_idx, t_pairs, K, R if R is not None else K)  # (P, F, K)
        else:
            pre, kern, rectified, Rc = factor
            grad, y = _prefilter_grad(model, pre, xb, mask.to(x.device))
            B, C = grad.shape[:2]
            jc = _gather_windows(grad.reshape(B, C * F_, -1), item_idx, t_pairs, Rc, Rc).view(-1, C, F_, Rc)
            act = (y[:1] > 0).to(grad.dtype) if rectified else torch.ones_like(y[:1])
            mwin = _gather_windows(act.reshape(1, C * F_, -1), torch.zeros_like(item_idx), t_pairs, Rc, Rc)
            full = _compose(jc, mwin.view(-1, C, F_, Rc), kern.to(grad.device), t_pairs, R)  # (P, F, R)
            win = full[..., :K] if K <= R else torch.nn.functional.pad(full, (0, K - R))
        out[rows[item_idx].to(x.device), pos_of[t_pairs].to(x.device)] = win.to(out.dtype)
    return out


def _factor_info(model, rf, method):
    """(prefilter, kernels, rectified, Rc) when the chain rule through the prefilter applies, else None."""
    if method == "direct" or rf["total"] is None or rf["prefilter"] <= 1:
        return None
    inner = model
    while not hasattr(inner, "prefilter") and isinstance(getattr(inner, "model", None), nn.Module):
        inner = inner.model
    pre = getattr(inner, "prefilter", None)
    if not isinstance(pre, (AdapTrans, WillmoreHighPass)):
        return None
    with torch.no_grad():
        kern = pre.kernels().detach()
    rectified = isinstance(pre, WillmoreHighPass) or pre.rectify == "relu"
    return pre, kern, rectified, rf["core"]


def _indices(values, n: int, what: str, bound: str) -> torch.Tensor:
    """``values`` (None: all of ``range(n)``) as int64 indices, each in [0, n); ValueError naming
    ``what`` and the ``bound`` otherwise."""
    if values is None:
        return torch.arange(n)
    idx = torch.as_tensor(np.atleast_1d(np.asarray(values)), dtype=torch.long)
    if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= n:
        raise ValueError(f"expected {what} in [0, {n}) ({bound}), got {values!r}")
    return idx


def _check_neurons(neurons, n_out: int) -> torch.Tensor:
    return _indices(neurons, n_out, "neuron indices", f"the model has N={n_out} outputs")


def _check_times(times, T: int) -> torch.Tensor:
    return torch.unique(_indices(times, T, "time bins", f"the stimulus has T={T} bins"))


def dstrf(model: nn.Module, stimulus, n_lags: int | None = None, neurons: Sequence[int] | None = None,
          times: Sequence[int] | None = None, batch_size: int = 16, time_chunk: int | None = None,
          method: str = "auto") -> torch.Tensor:
    """dSTRFs of a model on one stimulus: ``(N, T', F, K)``.

    Args:
        model: module mapping ``(B, 1, F, T) -> (B, N, T)`` (any model of the zoo, a
            ``UnitView``); evaluated in eval mode (its training flag is restored), parameters
            untouched.
        stimulus: one spectrogram ``(F, T)``, ``(1, F, T)`` or ``(1, 1, F, T)``.
        n_lags: K; default the full receptive field (:func:`receptive_field`), prefilter
            memory included. A smaller K drops the older lags (logged).
        neurons: output indices (default all N).
        times: time bins to return (default all T); sorted, duplicates removed.
        batch_size: stimulus copies per forward / backward pass (memory ~ batch_size x the
            activations of one pass over the segment).
        time_chunk: cut the stimulus into segments of this many bins (plus the ``R - 1`` bins
            of context each needs; for an unbounded memory each segment is run from bin 0).
        method: ``"direct"`` (differentiate the whole model w.r.t. the input: R passes per
            neuron), ``"chain"`` (for an AdapTrans / Willmore prefilter and a finite core:
            differentiate the core w.r.t. the prefilter output, Rc passes per neuron, then
            apply the chain rule through the band-wise prefilter exactly: a convolution of
            the core Jacobian, times the rectifier's slope, with the prefilter kernels) or
            ``"auto"`` (= "chain" where it applies, else "direct"; both give the same values
            up to float rounding).

    Returns:
        CPU float32 tensor ``(len(neurons), len(times), F, K)``:
        ``[n, i, f, k] = d pred[neurons[n], times[i]] / d x[f, times[i] - k]``.
    """
    items = as_stimulus_list(stimulus, n_bands=getattr(model, "n_bands", None))
    if len(items) != 1:
        raise ValueError(f"expected one stimulus (F, T) or (1, F, T), got {len(items)}; use iter_dstrf for several")
    if int(batch_size) < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    if time_chunk is not None and int(time_chunk) < 1:
        raise ValueError(f"expected time_chunk >= 1 or None, got {time_chunk}")
    if method not in ("auto", "chain", "direct"):
        raise ValueError(f"expected method 'auto', 'chain' or 'direct', got {method!r}")
    device = model_device(model)
    x = items[0].to(device)
    T = x.shape[-1]
    rf = receptive_field(model)
    R = rf["total"]
    K = default_n_lags(model, rf) if n_lags is None else int(n_lags)
    if K < 1:
        raise ValueError(f"expected n_lags >= 1 (number of lags K), got {n_lags}")
    if R is not None and K < R:
        logger.info("dstrf: n_lags=%d is shorter than the receptive field (%d bins): older lags are dropped", K, R)
    t_sel = _check_times(times, T)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            n_out = _forward(model, x[..., : min(T, 8)]).shape[1]
        idx = _check_neurons(neurons, n_out)
        factor = _factor_info(model, rf, method)
        if method == "chain" and factor is None:
            raise ValueError("method='chain' expects an AdapTrans or WillmoreHighPass prefilter and a core of "
                             f"finite memory, got receptive field {rf}")
        chunk = T if time_chunk is None else int(time_chunk)
        parts = []
        for t0 in range(0, T, chunk):
            seg_t = t_sel[(t_sel >= t0) & (t_sel < t0 + chunk)]
            if seg_t.numel() == 0:
                continue
            start = 0 if R is None else max(0, int(seg_t.min()) - R + 1)
            args = (model, x[..., start:], idx, seg_t - start, K, R, batch_size, n_out)
            try:
                parts.append(_segment_dstrf(*args, factor=factor))
            except _NoPrefilterCall:  # e.g. Linear's fused AdapTrans + STRF path: differentiate directly
                if method == "chain":
                    raise ValueError("method='chain': the model never calls its prefilter module") from None
                factor = None
                parts.append(_segment_dstrf(*args))
    finally:
        model.train(was_training)
    return torch.cat(parts, dim=1).to("cpu", torch.float32)


def iter_dstrf(model: nn.Module, stimuli, n_lags: int | None = None, neurons: Sequence[int] | None = None,
               times: Sequence[Sequence[int]] | None = None, neuron_chunk: int = 8,
               **kwargs) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """dSTRFs over several stimuli, a chunk of neurons at a time (bounded memory).

    ``stimuli``: as :func:`~deepstrf_utils.interpret.strfs.as_stimulus_list` (tensor, list, dataset);
    ``times``: optional list (one entry per stimulus) of bins to use. Yields
    ``(neuron indices (n,), dSTRFs (n, sum_i T'_i, F, K))``, the bins of all stimuli
    concatenated in order; peak memory ~ ``neuron_chunk x sum_i T'_i x F x K`` floats plus one
    pass of :func:`dstrf`. ``kwargs`` go to :func:`dstrf`.
    """
    items = as_stimulus_list(stimuli, n_bands=getattr(model, "n_bands", None))
    if times is not None and len(times) != len(items):
        raise ValueError(f"expected one entry of times per stimulus ({len(items)}), got {len(times)}")
    if int(neuron_chunk) < 1:
        raise ValueError(f"expected neuron_chunk >= 1, got {neuron_chunk}")
    if neurons is None:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                neurons = range(_forward(model, items[0][..., :8].to(model_device(model))).shape[1])
        finally:
            model.train(was_training)
    neurons = list(neurons)
    for s in range(0, len(neurons), int(neuron_chunk)):
        sub = neurons[s:s + int(neuron_chunk)]
        parts = [dstrf(model, x, n_lags, sub, None if times is None else times[i], **kwargs) for i, x in enumerate(items)]
        yield torch.as_tensor(sub), torch.cat(parts, dim=1)


# ----------------------------------------------------------------------------------------
# dPCs
# ----------------------------------------------------------------------------------------
def dpcs(dstrfs, n_components: int = 3) -> dict:
    """Principal components of each neuron's dSTRFs (uncentred: second moment over bins).

    Args:
        dstrfs: ``(N, T, F, K)`` (tensor or array), e.g. from :func:`dstrf`.
        n_components: P (at most ``min(T, F * K)``).

    Returns:
        dict with ``components`` ``(N, P, F, K)`` (unit norm; sign chosen so that each
        component has a positive dot product with the neuron's mean dSTRF), ``explained``
        ``(N, P)`` (share of the total energy ``sum_t ||dstrf_t||^2`` per component, in
        [0, 1]), ``weights`` ``(N, T, P)`` (the projection of each bin's dSTRF on each dPC),
        all float64 numpy arrays. A neuron whose dSTRFs are all zero gets NaN shares.
    """
    d = np.asarray(dstrfs.detach().cpu() if hasattr(dstrfs, "detach") else dstrfs, dtype=np.float64)
    if d.ndim != 4:
        raise ValueError(f"expected dSTRFs of shape (N, T, F, K), got {d.shape}")
    N, T, F_, K = d.shape
    P = int(n_components)
    if not 1 <= P <= min(T, F_ * K):
        raise ValueError(f"expected 1 <= n_components <= min(T, F * K) = {min(T, F_ * K)}, got {n_components}")
    comps = np.zeros((N, P, F_ * K))
    share = np.full((N, P), np.nan)
    weights = np.zeros((N, T, P))
    for n in range(N):
        a = d[n].reshape(T, F_ * K)
        total = float((a * a).sum())
        if total <= 0:
            continue
        if T <= F_ * K:
            _, s, vt = np.linalg.svd(a, full_matrices=False)
            v, ev = vt[:P], s[:P] ** 2
        else:  # many bins: eigen-decomposition of the (F K x F K) second-moment matrix
            evals, evecs = np.linalg.eigh(a.T @ a)
            v, ev = evecs[:, ::-1][:, :P].T, np.clip(evals[::-1][:P], 0.0, None)
        sign = np.sign(v @ a.mean(0))
        sign[sign == 0] = 1.0
        v = v * sign[:, None]
        comps[n], share[n], weights[n] = v, ev / total, a @ v.T
    return {"components": comps.reshape(N, P, F_, K), "explained": share, "weights": weights}


def dstrf_pcs(model: nn.Module, stimuli, n_components: int = 3, n_lags: int | None = None,
              neurons: Sequence[int] | None = None, times: Sequence[Sequence[int]] | None = None,
              neuron_chunk: int = 8, **kwargs) -> dict:
    """dPCs of a model's neurons over stimuli, computed a chunk of neurons at a time.

    Arguments as :func:`iter_dstrf`; by default (``times=None``) only the bins whose whole
    K-lag window lies inside their stimulus (``t >= K - 1``) enter, so that the stimulus
    start does not masquerade as a change of tuning; stimuli shorter than K are skipped.
    Returns :func:`dpcs`' dict for all neurons (rows in the order of ``neurons``), plus
    ``neurons`` ``(N,)`` and ``mean`` ``(N, F, K)``, the average dSTRF (the gradient STRF over
    the same bins). Only one chunk of dSTRFs is held at a time.
    """
    items = as_stimulus_list(stimuli, n_bands=getattr(model, "n_bands", None))
    if times is None:
        K = default_n_lags(model, receptive_field(model)) if n_lags is None else int(n_lags)
        keep = [i for i, x in enumerate(items) if x.shape[-1] >= K]
        if not keep:
            raise ValueError(f"expected at least one stimulus with T >= K = {K} bins (a complete window)")
        items = [items[i] for i in keep]
        times = [range(K - 1, x.shape[-1]) for x in items]
    out = {"neurons": [], "components": [], "explained": [], "weights": [], "mean": []}
    for idx, d in iter_dstrf(model, items, n_lags, neurons, times, neuron_chunk, **kwargs):
        res = dpcs(d, n_components)
        out["neurons"].append(idx.numpy())
        out["mean"].append(d.double().mean(1).numpy())
        for key in ("components", "explained", "weights"):
            out[key].append(res[key])
    return {k: np.concatenate(v) for k, v in out.items()}
