"""Spectro-temporal receptive fields (STRFs) of fitted models.

Two kinds of STRF are read from a model:

* **weight STRFs** (:func:`weight_strf`, :func:`onoff_strfs`): the first-layer weights of
  the models that have them (L, LN, NRF, DNet), ``(N or H, C, F, K)``; with AdapTrans the
  two input channels are the ON (``c = 0``) and OFF (``c = 1``) STRFs.
* **gradient STRFs** (:func:`gradient_strf`): for any differentiable model, the derivative of
  the predicted response at time ``t`` with respect to the input spectrogram at ``t - k``,
  evaluated at the *real* stimulus and averaged over the time bins where the neuron is
  most strongly driven. For a linear model without prefilter this is exactly its weight
  STRF; for a nonlinear model it is the locally linear STRF around its preferred stimuli.

Gradients are taken at real stimulus times on purpose: one earlier implementation
differentiated at a silent stimulus, where a rectifying AdapTrans has zero slope, and
returned all-zero STRFs. The computation is vectorised: per chunk of selected (neuron,
time bin) pairs of a stimulus, one batched forward pass (one stimulus copy per pair) and
one backward pass of the summed objective (or, with ``method="vmap"``, one forward and a
vmapped backward); no Python loop over neurons x bins.

Shapes: B stimuli, C channels, F bands, T bins, K lags, N neurons, H hidden units.
``strf[..., f, k]`` is the weight / sensitivity of the input in band ``f`` at lag ``k``
(``k = 0`` is the present bin).
"""

from __future__ import annotations

import logging
import math
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..models.layers import model_device as _model_device

__all__ = [
    "gradient_strf",
    "weight_strf",
    "onoff_strfs",
    "select_driven_bins",
    "as_stimulus_list",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def as_stimulus_list(stimuli, n_bands: int | None = None) -> list[torch.Tensor]:
    """Normalise stimuli to a list of ``(1, 1, F, T_i)`` float32 tensors.

    Accepts a tensor ``(B, 1, F, T)``, ``(1, F, T)`` or ``(F, T)``; a list of tensors or
    arrays ``(1, F, T_i)`` / ``(F, T_i)``; or a ``ResponseDataset`` (its ``stimuli``).
    Raises ``ValueError`` naming the expected shapes otherwise, or when the number of
    bands differs from ``n_bands``.
    """
    if hasattr(stimuli, "stimuli") and not isinstance(stimuli, (torch.Tensor, np.ndarray)):
        stimuli = list(stimuli.stimuli)
    items: list[torch.Tensor] = []
    if isinstance(stimuli, (torch.Tensor, np.ndarray)):
        x = torch.as_tensor(stimuli)
        if x.ndim == 2:
            x = x[None, None]
        elif x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(
                "expected stimuli of shape (B, 1, F, T), (1, F, T) or (F, T), "
                f"got {tuple(torch.as_tensor(stimuli).shape)}"
            )
        items = [x[b : b + 1] for b in range(x.shape[0])]
    elif isinstance(stimuli, Iterable):
        for i, s in enumerate(stimuli):
            x = torch.as_tensor(s)
            if x.ndim == 2:
                x = x[None, None]
            elif x.ndim == 3 and x.shape[0] == 1:
                x = x[None]
            elif not (x.ndim == 4 and x.shape[:2] == (1, 1)):
                raise ValueError(
                    f"expected stimulus {i} of shape (1, F, T) or (F, T), got {tuple(x.shape)}"
                )
            items.append(x)
    else:
        raise ValueError(
            "expected stimuli as a tensor (B, 1, F, T), a list of (1, F, T) arrays or a "
            f"ResponseDataset, got {type(stimuli).__name__}"
        )
    if not items:
        raise ValueError("expected at least one stimulus, got none")
    items = [x.to(torch.float32) for x in items]
    bands = {x.shape[2] for x in items}
    if len(bands) != 1:
        raise ValueError(f"expected every stimulus to have the same number of bands F, got {sorted(bands)}")
    if n_bands is not None and items[0].shape[2] != n_bands:
        raise ValueError(
            f"expected stimuli with F={n_bands} bands (the model's n_bands), got F={items[0].shape[2]}"
        )
    return items




def _model_attr(model: nn.Module, name: str):
    value = getattr(model, name, None)
    if value is None:
        config = getattr(model, "config", None)
        if isinstance(config, dict):
            value = config.get(name)
    return value


def _resolve_n_lags(model: nn.Module, n_lags: int | None) -> int:
    if n_lags is None:
        n_lags = _model_attr(model, "n_lags")
    if n_lags is None:
        dt_ms = _model_attr(model, "dt_ms") or 5.0
        n_lags = max(1, int(round(250.0 / float(dt_ms))))  # 250 ms of history by default
    n_lags = int(n_lags)
    if n_lags < 1:
        raise ValueError(f"expected n_lags >= 1 (number of time lags K), got {n_lags}")
    return n_lags


def _find_prefilter(model: nn.Module, prefilter: nn.Module | None) -> nn.Module:
    if prefilter is not None:
        return prefilter
    found = getattr(model, "prefilter", None)
    if isinstance(found, nn.Module):
        return found
    raise ValueError(
        "wrt='prefiltered' needs a prefilter module: expected the model to have a "
        "`prefilter` attribute (e.g. AdapTrans) or pass prefilter=<module>"
    )


def select_driven_bins(
    predictions: Sequence[torch.Tensor], n_lags: int, top_fraction: float = 0.1, n_bins: int | None = None,
    min_gap: int = 1,
) -> list[torch.Tensor]:
    """Boolean masks of each neuron's most strongly driven time bins.

    ``predictions``: one ``(N, T_i)`` tensor per stimulus. Only bins ``t >= n_lags - 1``
    (whose K-bin history lies inside the stimulus) are candidates; per neuron, the
    ``ceil(top_fraction * n_candidates)`` bins (at least one) with the largest prediction
    over all stimuli are selected, or exactly ``n_bins`` when given (fewer only when the
    stimuli cannot hold them). With ``min_gap`` > 1 the bins are picked greedily from the
    largest prediction down, skipping any bin closer than ``min_gap`` bins to one already
    picked in the same stimulus (e.g. distinct moments of a stimulus for dSTRFs). Returns one
    ``(N, T_i)`` bool mask per stimulus.
    """
    if not 0.0 < float(top_fraction) <= 1.0:
        raise ValueError(f"expected 0 < top_fraction <= 1, got {top_fraction}")
    if n_bins is not None and int(n_bins) < 1:
        raise ValueError(f"expected n_bins >= 1 (or None for top_fraction), got {n_bins}")
    if int(min_gap) < 1:
        raise ValueError(f"expected min_gap >= 1 bin, got {min_gap}")
    starts = []
    chunks = []
    offset = 0
    for p in predictions:
        valid = p[:, n_lags - 1 :]
        starts.append(offset)
        chunks.append(valid)
        offset += valid.shape[1]
    if offset == 0:
        longest = max(p.shape[1] for p in predictions)
        raise ValueError(
            f"expected at least one stimulus with T >= n_lags={n_lags} bins, the longest has T={longest}"
        )
    allv = torch.cat(chunks, dim=1)  # (N, total)
    n_sel = int(n_bins) if n_bins is not None else max(1, int(math.ceil(float(top_fraction) * offset)))
    flat = torch.zeros_like(allv, dtype=torch.bool)
    if int(min_gap) == 1:
        idx = torch.topk(allv, min(n_sel, offset), dim=1).indices  # (N, n_sel)
        flat.scatter_(1, idx, True)
    else:
        item = torch.cat([torch.full((c.shape[1],), k) for k, c in enumerate(chunks)])
        for n in range(allv.shape[0]):
            chosen: list[int] = []
            for t in torch.argsort(allv[n], descending=True).tolist():
                if all(item[t] != item[c] or abs(t - c) >= int(min_gap) for c in chosen):
                    chosen.append(t)
                    if len(chosen) == n_sel:
                        break
            flat[n, chosen] = True
    masks = []
    for p, start, valid in zip(predictions, starts, chunks):
        m = torch.zeros(p.shape, dtype=torch.bool, device=p.device)
        m[:, n_lags - 1 :] = flat[:, start : start + valid.shape[1]]
        masks.append(m)
    return masks


# ----------------------------------------------------------------------------------------
# gradient STRF
# ----------------------------------------------------------------------------------------
def gradient_strf(
    model: nn.Module,
    stimuli,
    n_lags: int | None = None,
    top_fraction: float = 0.1,
    wrt: str = "input",
    neurons: Sequence[int] | None = None,
    chunk_size: int = 256,
    prefilter: nn.Module | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """Gradient (locally linear) STRF of every output neuron of ``model``.

    For each neuron ``n``, the derivative ``d pred[n, t] / d x[f, t - k]`` is evaluated at
    the real stimuli and averaged over the neuron's strongly driven bins ``t`` (the top
    ``top_fraction`` of its predicted response over all stimuli, among bins with a full
    K-bin history).

    Args:
        model: module mapping ``(B, 1, F, T) -> (B, N, T)``; run in eval mode (its training
            flag is restored afterwards); parameters are not modified, no ``.grad`` is set.
        stimuli: tensor ``(B, 1, F, T)``, list of ``(1, F, T_i)`` / ``(F, T_i)`` arrays, or a
            ``ResponseDataset``.
        n_lags: K; default the model's ``n_lags`` (attribute or config), else 250 ms.
        top_fraction: fraction of candidate bins averaged per neuron, in (0, 1].
        wrt: ``"input"`` (the spectrogram, result ``(N, F, K)``) or ``"prefiltered"`` (the
            output of the model's ``prefilter``, e.g. AdapTrans ON/OFF, result
            ``(N, C, F, K)``).
        neurons: optional subset of output indices; result then has ``len(neurons)`` rows.
        chunk_size: number of (neuron, bin) pairs per batched backward pass.
        prefilter: the prefilter module, if not ``model.prefilter``.
        method: ``"batch"`` (a batch of stimulus copies, one per (neuron, bin) pair, cropped
            after the chunk's last selected bin; one backward pass of the summed objective
            ``sum_m pred[m, n_m, t_m]``; valid because batch items are independent in eval
            mode), ``"vmap"`` (one forward per stimulus, then a vmapped backward with one-hot
            cotangents via ``is_grads_batched``), or ``"auto"`` (= "batch", which was the
            faster of the two for every model here on CPU; e.g. 10x for ConvNet2D).

    Returns:
        CPU float32 tensor ``(N, F, K)`` (``wrt="input"``) or ``(N, C, F, K)``.
    """
    if wrt not in ("input", "prefiltered"):
        raise ValueError(f"expected wrt='input' or 'prefiltered', got {wrt!r}")
    if method not in ("auto", "vmap", "batch"):
        raise ValueError(f"expected method='auto', 'vmap' or 'batch', got {method!r}")
    if int(chunk_size) < 1:
        raise ValueError(f"expected chunk_size >= 1, got {chunk_size}")
    n_bands = _model_attr(model, "n_bands")
    items = as_stimulus_list(stimuli, n_bands=int(n_bands) if n_bands is not None else None)
    K = _resolve_n_lags(model, n_lags)
    device = _model_device(model)
    pre = _find_prefilter(model, prefilter) if wrt == "prefiltered" else None

    was_training = model.training
    model.eval()
    try:
        # 1) predictions without graph, to choose the driven bins
        with torch.no_grad():
            preds = []
            for x in items:
                p = model(x.to(device))
                if p.ndim != 3 or p.shape[0] != 1 or p.shape[2] != x.shape[-1]:
                    raise ValueError(
                        f"expected the model to return (B, N, T) = (1, N, {x.shape[-1]}), got {tuple(p.shape)}"
                    )
                preds.append(p[0].float())
        n_out = preds[0].shape[0]
        if neurons is None:
            neuron_idx = torch.arange(n_out)
        else:
            neuron_idx = torch.as_tensor(list(neurons), dtype=torch.long)
            if neuron_idx.numel() == 0 or neuron_idx.min() < 0 or neuron_idx.max() >= n_out:
                raise ValueError(f"expected neuron indices in [0, {n_out}), got {list(neurons)}")
        preds = [p[neuron_idx.to(p.device)] for p in preds]
        masks = select_driven_bins(preds, K, top_fraction)

        n_sel = len(neuron_idx)
        total = None
        counts = torch.zeros(n_sel, dtype=torch.float64)
        use = method
        for x, mask in zip(items, masks):
            pairs = mask.nonzero().cpu()  # (P, 2): (row in neuron_idx, t)
            if pairs.numel() == 0:
                continue
            for start in range(0, pairs.shape[0], int(chunk_size)):
                chunk = pairs[start : start + int(chunk_size)]
                rows, times = chunk[:, 0], chunk[:, 1]
                outs = neuron_idx[rows]
                if use == "vmap":
                    g = _pair_gradients_vmap(model, x.to(device), outs, times, K, pre)
                else:
                    g = _pair_gradients_batch(model, x.to(device), outs, times, K, pre)
                g = g.detach().to("cpu", torch.float64)  # (M, C, F, K)
                if total is None:
                    total = torch.zeros((n_sel,) + tuple(g.shape[1:]), dtype=torch.float64)
                total.index_add_(0, rows, g)
                counts.index_add_(0, rows, torch.ones(len(rows), dtype=torch.float64))
    finally:
        model.train(was_training)

    strf = total / counts.clamp_min(1.0).view(-1, *([1] * (total.ndim - 1)))
    strf = strf.to(torch.float32)
    if wrt == "input":
        strf = strf[:, 0]
    return strf


def _capture(model, x, pre):
    """Forward ``x``; return (pred (B, N, T), target tensor to differentiate against).

    With the model's own prefilter, a model made of prefilter -> ``forward_core`` ->
    ``forward_readout`` (every ``ResponseModel``) is run through those three steps, so the
    prefilter output exists even where ``forward`` would skip it (Linear / LN fuse an
    un-rectified AdapTrans with the STRFs into one frequency-domain product); the result is
    the same function. Any other model: a forward hook on the prefilter module.
    """
    if pre is None:
        return model(x), x
    core, readout = getattr(model, "forward_core", None), getattr(model, "forward_readout", None)
    if pre is getattr(model, "prefilter", None) and callable(core) and callable(readout):
        y = pre(x)
        return readout(core(y)), y
    store = {}

    def hook(_module, _inp, out):
        store["y"] = out
        return out

    handle = pre.register_forward_hook(hook)
    try:
        pred = model(x)
    finally:
        handle.remove()
    if "y" not in store:
        raise ValueError("the prefilter module was not called by the model's forward pass")
    return pred, store["y"]


def _gather_lags(grad: torch.Tensor, times: torch.Tensor, K: int) -> torch.Tensor:
    """grad (M, C, F, T), times (M,) -> (M, C, F, K) with [..., k] = grad[..., t - k]."""
    lags = torch.arange(K, device=grad.device)
    idx = times.to(grad.device)[:, None] - lags[None, :]  # (M, K), all >= 0
    M, C, F, _ = grad.shape
    idx = idx[:, None, None, :].expand(M, C, F, K)
    return torch.gather(grad, 3, idx)


def _pair_gradients_vmap(model, x, outs, times, K, pre):
    """One forward of x (1, 1, F, T); batched VJP with one one-hot cotangent per pair."""
    t_max = int(times.max()) + 1
    x = x[..., :t_max].detach().clone().requires_grad_(True)  # causal: crop after t_max
    pred, target = _capture(model, x, pre)
    M = len(outs)
    cot = torch.zeros((M,) + tuple(pred.shape), dtype=pred.dtype, device=pred.device)
    ar = torch.arange(M, device=pred.device)
    cot[ar, 0, outs.to(pred.device), times.to(pred.device)] = 1.0
    (grad,) = torch.autograd.grad(pred, target, grad_outputs=cot, is_grads_batched=True)
    return _gather_lags(grad[:, 0], times, K)  # (M, C, F, K)


def _pair_gradients_batch(model, x, outs, times, K, pre):
    """A batch of M copies of x (1, 1, F, T); backward of sum_m pred[m, n_m, t_m]."""
    t_max = int(times.max()) + 1
    M = len(outs)
    xb = x[..., :t_max].detach().expand(M, -1, -1, -1).clone().requires_grad_(True)
    pred, target = _capture(model, xb, pre)
    ar = torch.arange(M, device=pred.device)
    objective = pred[ar, outs.to(pred.device), times.to(pred.device)].sum()
    (grad,) = torch.autograd.grad(objective, target)
    return _gather_lags(grad, times, K)


# ----------------------------------------------------------------------------------------
# weight STRFs
# ----------------------------------------------------------------------------------------
def weight_strf(model: nn.Module) -> torch.Tensor:
    """First-layer weight STRF of a model with a ``strf()`` method.

    Returns a detached CPU tensor ``(N or H, C, F, K)`` (``[..., k]`` = weight of the input
    at lag ``k``); C = 2 (ON, OFF) with AdapTrans, 1 without. Raises ``ValueError`` for
    models without weight STRFs (use :func:`gradient_strf` for those).
    """
    fn = getattr(model, "strf", None)
    if not callable(fn):
        raise ValueError(
            f"expected a model with a strf() method (Linear, LinearNonlinear, "
            f"NetworkReceptiveField, DNet), got {type(model).__name__}; use gradient_strf"
        )
    w = torch.as_tensor(fn()).detach().to("cpu", torch.float32)
    if w.ndim != 4:
        raise ValueError(f"expected model.strf() to return (N, C, F, K), got {tuple(w.shape)}")
    return w


def onoff_strfs(model_or_strf) -> dict[str, torch.Tensor]:
    """Split a two-channel STRF into its ON and OFF parts.

    ``model_or_strf``: a model with ``strf()`` (and an AdapTrans prefilter) or a tensor /
    array ``(N, 2, F, K)`` (e.g. ``gradient_strf(..., wrt="prefiltered")``).
    Returns ``{"on": (N, F, K), "off": (N, F, K)}`` (channel 0 ON, channel 1 OFF).
    """
    if isinstance(model_or_strf, nn.Module):
        w = weight_strf(model_or_strf)
    else:
        w = torch.as_tensor(model_or_strf).detach().to("cpu", torch.float32)
    if w.ndim != 4 or w.shape[1] != 2:
        raise ValueError(
            f"expected a two-channel (ON, OFF) STRF of shape (N, 2, F, K), got {tuple(w.shape)}; "
            "is the model fitted with an AdapTrans prefilter?"
        )
    return {"on": w[:, 0], "off": w[:, 1]}
