"""Most (and least) exciting inputs (MEIs) of a fitted model, by gradient ascent on the input.

For a neuron (or a hidden unit) of a model, the MEI is the spectrogram window ``(F, T)``
that maximises the unit's response at the window's last bin under explicit constraints:

* **energy** (contrast) budget: ``||x - baseline||_2 <= energy`` (the Euclidean norm over all
  F x T entries of the deviation from a baseline level). A unit whose response grows with
  contrast spends the whole budget (the optimum is on the sphere: for a linear unit, exactly
  ``energy`` along its STRF), and the bins it is blind to stay at the baseline instead of
  being forced to carry energy; ``achieved_energy`` reports what was used;
* **range**: every entry in ``value_range = (lo, hi)``, e.g. the range of the dataset's
  stimuli (:func:`stimulus_statistics`);
* optional **smoothness**: a penalty ``smoothness x`` (mean squared difference between
  neighbouring bins in time + the same between neighbouring bands) subtracted from the
  objective.

At least one of energy and range must be given (a linear unit has no bounded maximum
otherwise). After every step the input is projected on the constraint set: the energy
ball, then the range box, alternated ``n_projections`` times when both are given (the
range then holds exactly and the energy to within the reported ``achieved_energy``).
Steps follow the normalised gradient (projected gradient ascent: for a linear unit under
the energy constraint its fixed point is exactly the STRF direction; per-coordinate
optimisers such as Adam drift to sign patterns instead). Several random starts (one seed
each: the baseline plus Gaussian noise of a tenth of the per-entry budget) run as one batch. The
least exciting input is the same search with ``direction="min"``.

The window length defaults to the model's receptive field (prefilter included,
:func:`~deepstrf_utils.interpret.dstrf.receptive_field`), so that the response at the last bin sees the
whole window and nothing of AdapTrans' replicated first frame.

A visual model (one with ``stimulus_shape(n_bins)``, e.g. ``SpatioTemporalCNN``) gets a
movie window ``(C, H, W, T)`` instead (the most exciting movie); the energy is then over
all C x H x W x T entries and the smoothness penalty covers time and both spatial axes.

Shapes: S starts, F bands, T bins, N neurons (movies: C channels, H x W pixels).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .dstrf import default_n_lags, receptive_field
from ..models import model_device

__all__ = ["MEIResult", "most_exciting_input", "least_exciting_input", "stimulus_statistics"]

logger = logging.getLogger(__name__)


@dataclass
class MEIResult:
    """Output of :func:`most_exciting_input`.

    input: ``(F, T)`` (movies: ``(C, H, W, T)``) the best input over starts; inputs: ``(S, F, T)`` every start's final
    input; trajectory: ``(S, steps + 1)`` the unit's response (without the smoothness
    penalty) after projection at every step, step 0 = the projected random start;
    response: ``(S,)`` the final responses; best: index of the best start; model_response:
    ``(N, T)`` the model's full prediction to ``input``; achieved_energy: ``(S,)``
    ``||x - baseline||``; seeds; constraints: the settings used (a dict, for captions).
    """

    input: torch.Tensor
    inputs: torch.Tensor
    trajectory: np.ndarray
    response: np.ndarray
    best: int
    model_response: torch.Tensor
    achieved_energy: np.ndarray
    seeds: list
    constraints: dict = field(default_factory=dict)

    def caption(self) -> str:
        """One line stating the constraints (for figure captions)."""
        c = self.constraints
        parts = [f"{c['direction']}imise {c['target']} at the last of {c['n_bins']} bins"]
        if c["energy"] is not None:
            parts.append(f"||x - {c['baseline']:.3g}|| <= {c['energy']:.3g}")
        if c["value_range"] is not None:
            parts.append(f"x in [{c['value_range'][0]:.3g}, {c['value_range'][1]:.3g}]")
        parts.append(f"smoothness penalty {c['smoothness']:g}")
        parts.append(f"{len(self.seeds)} starts, {c['steps']} projected gradient steps (lr {c['lr']:g} x scale)")
        return "; ".join(parts)


def stimulus_statistics(dataset, n_bins: int) -> dict:
    """Range, mean level and typical window energy of a dataset's stimuli.

    ``dataset``: anything :func:`~deepstrf_utils.interpret.strfs.as_stimulus_list` accepts. Returns
    ``{"value_range": (min, max), "baseline": mean, "energy": std * sqrt(F * n_bins)}``:
    ``energy`` is the expected ``||x - mean||`` of an ``(F, n_bins)`` window with the
    dataset's overall variance, a natural contrast budget for an MEI.
    """
    from .strfs import as_stimulus_list

    items = as_stimulus_list(dataset)
    allv = torch.cat([x.reshape(-1) for x in items]).double()
    F_ = items[0].shape[2]
    return {"value_range": (float(allv.min()), float(allv.max())), "baseline": float(allv.mean()),
            "energy": float(allv.std() * np.sqrt(F_ * int(n_bins)))}


def _unit_objective(model, layer, unit, neuron):
    """A function x (S, 1, F, T) -> (S,) response of the target unit at the last bin, and its name."""
    if layer is None:
        def run(x):
            pred = model(x)
            if pred.ndim != 3:
                raise ValueError(f"expected the model to return (B, N, T), got {tuple(pred.shape)}")
            return pred[:, neuron, -1]
        return run, f"neuron {neuron}"
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            names = [n for n in modules if n]
            raise ValueError(f"expected layer to be one of the model's module names {names}, got {layer!r}")
        module = modules[layer]
    elif isinstance(layer, nn.Module):
        module = layer
    else:
        raise ValueError(f"expected layer as a module name or an nn.Module, got {type(layer).__name__}")

    def run(x):
        store = {}
        handle = module.register_forward_hook(lambda _m, _i, out: store.__setitem__("a", out))
        try:
            model(x)
        finally:
            handle.remove()
        if "a" not in store:
            raise ValueError(f"the layer {layer!r} was not called by the model's forward pass")
        a = store["a"]
        if not isinstance(a, torch.Tensor) or a.ndim < 3 or a.shape[-1] != x.shape[-1]:
            raise ValueError(f"expected the layer's output as (B, C, ..., T) with T={x.shape[-1]}, "
                             f"got {tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__}")
        if not 0 <= int(unit) < a.shape[1]:
            raise ValueError(f"expected unit in [0, {a.shape[1]}) (channels of layer {layer!r}), got {unit}")
        return a[:, int(unit), ..., -1].reshape(x.shape[0], -1).mean(1)
    return run, f"unit {unit} of {layer if isinstance(layer, str) else type(layer).__name__}"


def _smoothness(x: torch.Tensor) -> torch.Tensor:
    """Mean squared neighbour differences in time and frequency, per start: x (S, F, T) -> (S,).
    Movies x (S, C, H, W, T): the same over time, rows and columns."""
    dt = (x[..., 1:] - x[..., :-1]).pow(2).flatten(1).mean(1) if x.shape[-1] > 1 else x.new_zeros(x.shape[0])
    if x.dim() == 5:
        dy = (x[:, :, 1:] - x[:, :, :-1]).pow(2).flatten(1).mean(1) if x.shape[2] > 1 else x.new_zeros(x.shape[0])
        dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).flatten(1).mean(1) if x.shape[3] > 1 else x.new_zeros(x.shape[0])
        return dt + dy + dx
    df = (x[:, 1:] - x[:, :-1]).pow(2).flatten(1).mean(1) if x.shape[1] > 1 else x.new_zeros(x.shape[0])
    return dt + df


def _input_layout(model: nn.Module, n_bins: int | None):
    """(shape of one input without the batch axis, function adding the model's input axes, T):
    ``(F, T)`` and ``x[:, None]`` for a spectrogram model, ``(C, H, W, T)`` and the identity for
    a visual model (``stimulus_shape``)."""
    if callable(getattr(model, "stimulus_shape", None)):
        if n_bins is None:
            n_bins = default_n_lags(model, receptive_field(model))
        return tuple(model.stimulus_shape(int(n_bins))), (lambda x: x), int(n_bins)
    n_bands = getattr(model, "n_bands", None)
    if n_bands is None:
        raise ValueError("expected a model with an n_bands attribute (F of its input spectrogram (B, 1, F, T))")
    T = default_n_lags(model, receptive_field(model)) if n_bins is None else int(n_bins)
    return (int(n_bands), T), (lambda x: x[:, None]), T


def most_exciting_input(model: nn.Module, neuron: int = 0, n_bins: int | None = None, energy: float | None = None,
                        baseline: float = 0.0, value_range: Sequence[float] | None = None, smoothness: float = 0.0,
                        n_starts: int = 4, seeds: Sequence[int] | None = None, steps: int = 200, lr: float = 0.05,
                        direction: str = "max", layer=None, unit: int = 0, n_projections: int = 20) -> MEIResult:
    """Most exciting input of one neuron (or hidden unit) under stated constraints.

    Args:
        model: ``(B, 1, F, T) -> (B, N, T)``; run in eval mode (flag restored), untouched.
        neuron: output index (ignored when ``layer`` is given).
        n_bins: T of the window; default the receptive field (prefilter included).
        energy: the budget ``||x - baseline||_2 <= energy`` (None: no energy constraint).
        baseline: the level the energy is measured from (e.g. the dataset's mean).
        value_range: ``(lo, hi)`` every entry is clipped to (None: no range).
        smoothness: weight of the smoothness penalty (0: none).
        n_starts, seeds: random starts (default seeds ``0 .. n_starts - 1``).
        steps, lr: projected gradient steps of norm ``lr x scale x sqrt(F T)`` along the
            normalised gradient; scale = ``hi - lo``, else ``energy / sqrt(F T)`` (so with an
            energy constraint a step moves by ``lr x energy``).
        direction: ``"max"`` (MEI) or ``"min"`` (least exciting input).
        layer, unit: a hidden unit instead of an output neuron: ``layer`` a module name of
            ``model.named_modules()`` (or the module), ``unit`` its channel; the objective is
            the channel's output at the last bin, averaged over any other axes (e.g. bands).

    Returns:
        :class:`MEIResult`.
    """
    if direction not in ("max", "min"):
        raise ValueError(f"expected direction 'max' or 'min', got {direction!r}")
    if energy is None and value_range is None:
        raise ValueError("expected at least one constraint: energy (||x - baseline||) and/or value_range (lo, hi)")
    if energy is not None and not float(energy) > 0:
        raise ValueError(f"expected energy > 0, got {energy}")
    if value_range is not None:
        lo, hi = (float(v) for v in value_range)
        if not lo < hi:
            raise ValueError(f"expected value_range (lo, hi) with lo < hi, got {value_range!r}")
        if energy is not None and not lo <= baseline <= hi:
            raise ValueError(f"expected the baseline {baseline} inside value_range {value_range!r}")
    seeds = list(range(int(n_starts))) if seeds is None else [int(s) for s in seeds]
    if not seeds or int(steps) < 1:
        raise ValueError(f"expected at least one start and one step, got seeds={seeds}, steps={steps}")
    shape, as_input, T = _input_layout(model, n_bins)
    size, S = int(np.prod(shape)), len(seeds)
    device = model_device(model)
    objective, target = _unit_objective(model, layer, unit, int(neuron))
    if layer is None:
        with torch.no_grad():
            was = model.training
            model.eval()
            n_out = model(as_input(torch.zeros(1, *shape, device=device))).shape[1]
            model.train(was)
        if not 0 <= int(neuron) < n_out:
            raise ValueError(f"expected neuron in [0, {n_out}) (the model has N={n_out} outputs), got {neuron}")
    scale = (hi - lo) if value_range is not None else float(energy) / np.sqrt(size)
    per_start = (-1,) + (1,) * len(shape)

    def project(x):
        for _ in range(int(n_projections) if (energy is not None and value_range is not None) else 1):
            if energy is not None:
                d = x - baseline
                shrink = (float(energy) / d.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
                x = baseline + d * shrink.view(per_start)
            if value_range is not None:
                x = x.clamp(lo, hi)
        return x

    init = torch.stack([torch.randn(*shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
    noise = 0.1 * (float(energy) / np.sqrt(size) if energy is not None else (hi - lo) / 4)
    x = project((baseline + noise * init).to(device)).requires_grad_(True)
    step = float(lr) * scale * np.sqrt(size)  # the norm of one step
    sign = 1.0 if direction == "max" else -1.0
    traj = np.zeros((S, int(steps) + 1))
    was_training = model.training
    model.eval()
    try:
        for i in range(int(steps) + 1):
            with torch.enable_grad():
                resp = objective(as_input(x))
                if i == int(steps):
                    traj[:, i] = resp.detach().cpu().numpy()
                    break
                loss = -(sign * resp).sum()
                if smoothness:
                    loss = loss + float(smoothness) * _smoothness(x).sum()
                if not resp.requires_grad:
                    raise ValueError("expected a response that is differentiable with respect to the input spectrogram")
                (g,) = torch.autograd.grad(loss, x)
            traj[:, i] = resp.detach().cpu().numpy()
            with torch.no_grad():  # normalised (per start) projected gradient step
                g = g / g.flatten(1).norm(dim=1).clamp_min(1e-30).view(per_start)
                x.copy_(project(x - step * g))
        with torch.no_grad():
            final = x.detach()
            best = int(np.argmax(sign * traj[:, -1]))
            pred = model(as_input(final[best][None]))[0]
    finally:
        model.train(was_training)
    achieved = (final - baseline).flatten(1).norm(dim=1).cpu().numpy()
    constraints = {"direction": direction, "target": target, "n_bins": T, "energy": energy, "baseline": float(baseline),
                   "value_range": None if value_range is None else (lo, hi), "smoothness": float(smoothness),
                   "steps": int(steps), "lr": float(lr)}
    return MEIResult(input=final[best].cpu(), inputs=final.cpu(), trajectory=traj, response=traj[:, -1].copy(),
                     best=best, model_response=pred.detach().cpu(), achieved_energy=achieved, seeds=seeds,
                     constraints=constraints)


def least_exciting_input(model: nn.Module, neuron: int = 0, **kwargs) -> MEIResult:
    """The input that minimises the unit's response: :func:`most_exciting_input` with ``direction="min"``."""
    return most_exciting_input(model, neuron, direction="min", **kwargs)
