"""Visual response models (prefilter, base, linear): movies ``(B, C, H, W, T)`` -> firing rate ``(B, N, T)``.

Like the auditory models, each is a plain ``nn.Module`` made of a **prefilter**, a **core**
and a **readout**, strictly causal in time (the output at frame t depends on frames <= t):

* :class:`PixelAdapTrans`: AdapTrans (:class:`~deepstrf_utils.adaptrans.AdapTrans`, the same
  module and mathematics) on every pixel's luminance time course, ON and OFF channels:
  ``(B, C, H, W, T)`` -> ``(B, 2C, H, W, T)``; time constants per pixel or one shared set;
* :class:`VisualResponseModel`: the base of the visual models, a
  :class:`~.base.ResponseModel` whose stimuli are movies (the movie check
  :func:`~deepstrf_utils.shapes.check_movie`, ``frame_shape`` instead of ``n_bands``, the
  receptive field in frames);
* :class:`VisualLinearNonlinear`: a spatiotemporal receptive field per neuron
  ``(N, C, H, W, K)`` and an output nonlinearity (none = linear); :func:`fit_ridge_rf` gives
  its closed-form ridge solution (reusing :func:`~.ridge.fit_ridge_strf` on pixels as bands).

The CNN and recurrent visual models are in :mod:`.vision_cnn`, their readouts in
:mod:`.vision_readouts`. Every model stores its effective constructor values in ``config``
and is rebuilt by ``build_model(type(m).__name__, **m.config)``. Shapes: B movies, C
channels, H x W pixels, T frames, K lags, N neurons.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..adaptrans import AdapTrans
from ..plain import to_plain
from ..shapes import check_int, check_movie, check_number
from .base import MODEL_ADAPTRANS_RECTIFY, ResponseModel, check_prefilter_kwargs
from .layers import ParametricNonlinearity, causal_strf_conv
from .ridge import fit_ridge_strf

__all__ = ["PixelAdapTrans", "MovieIdentity", "make_visual_prefilter", "VisualResponseModel", "VisualLinearNonlinear",
           "fit_ridge_rf", "check_frame_shape", "output_nonlinearity", "VISUAL_TAU_MS", "VISUAL_ADAPTRANS_W0"]

#: default AdapTrans time constant of the visual prefilter (ms), the same in every pixel
VISUAL_TAU_MS = 200.0
#: initial weight of the present frame of AdapTrans in a visual model (``prefilter="adaptrans"``):
#: with the auditory 0.75 (three quarters of a steady luminance removed) the CNN's validation
#: loss on the synthetic population never beat its first epoch on split seed 0, while from 0.25
#: both the CNN and the LN fitted, the adapting cells better than without AdapTrans
#: (``benchmarks/README.md``)
VISUAL_ADAPTRANS_W0 = 0.25


def check_frame_shape(value) -> tuple[int, int, int]:
    """``value`` as a frame shape ``(C, H, W)`` of ints >= 1; ValueError / TypeError naming it."""
    try:
        c, h, w = value
    except (TypeError, ValueError):
        raise ValueError(f"expected frame_shape as (C, H, W), got {value!r}") from None
    return check_int(c, "frame_shape[0] (C)", 1), check_int(h, "frame_shape[1] (H)", 1), check_int(w, "frame_shape[2] (W)", 1)


class PixelAdapTrans(nn.Module):
    """AdapTrans on each pixel: ``(B, C, H, W, T)`` -> ``(B, 2C, H, W, T)``.

    Channels ``[0, C)`` are ON, ``[C, 2C)`` OFF (channel c of the input in each half). The
    filter is an :class:`~deepstrf_utils.adaptrans.AdapTrans` whose bands are the pixels:
    with ``per_pixel=True`` it has ``C H W`` bands (the movie reshaped to ``(B, 1, C H W, T)``:
    a_on, a_off and w per pixel); with ``per_pixel=False`` one band shared by every pixel
    (each pixel's time course filtered as its own stimulus).

    Args:
        frame_shape: ``(C, H, W)``; dt_ms: frame duration in ms.
        tau_ms: initial time constant (ms), a scalar or per pixel ``(C, H, W)`` (per_pixel only).
        w0, kernel_size, learnable, rectify, implementation: as for AdapTrans (kernel
            ``ceil(3 max(tau) / dt) + 1`` taps by default; ``rectify="relu"`` is what
            ``make_visual_prefilter("adaptrans")`` uses).
        per_pixel: time constants and weights per pixel (True) or shared (False).
    """

    def __init__(self, frame_shape, dt_ms: float = 25.0, tau_ms=VISUAL_TAU_MS, w0: float = 0.75,
                 kernel_size: Optional[int] = None, learnable: bool = True, rectify: Optional[str] = None,
                 per_pixel: bool = True, implementation: str = "auto"):
        super().__init__()
        self.frame_shape = check_frame_shape(frame_shape)
        self.per_pixel = bool(per_pixel)
        n = int(np.prod(self.frame_shape)) if self.per_pixel else 1
        tau = np.asarray(tau_ms, dtype=np.float64)
        if tau.ndim and (not self.per_pixel or tau.shape != self.frame_shape):
            raise ValueError(f"expected tau_ms as a scalar{' or (C, H, W)=' + str(self.frame_shape) if self.per_pixel else ''}"
                             f" (ms), got shape {tau.shape}")
        self.adaptrans = AdapTrans(n, dt_ms=float(dt_ms), tau_ms=tau.reshape(-1) if tau.ndim else float(tau), w0=w0,
                                   kernel_size=kernel_size, learnable=learnable, rectify=rectify,
                                   implementation=implementation)
        self.dt_ms, self.kernel_size = self.adaptrans.dt_ms, self.adaptrans.kernel_size
        self.out_channels = 2 * self.frame_shape[0]
        self.config = to_plain(dict(frame_shape=list(self.frame_shape), dt_ms=self.dt_ms, tau_ms=tau,
                                    w0=float(w0), kernel_size=self.kernel_size, learnable=bool(learnable),
                                    rectify=rectify, per_pixel=self.per_pixel, implementation=implementation))

    def _map(self, v: torch.Tensor) -> torch.Tensor:
        return v.reshape(self.frame_shape) if self.per_pixel else v.reshape(())

    @property
    def tau_on_ms(self) -> torch.Tensor:
        """ON time constants (ms): ``(C, H, W)`` per pixel, or a scalar tensor when shared."""
        return self._map(self.adaptrans.tau_on_ms)

    @property
    def tau_off_ms(self) -> torch.Tensor:
        """OFF time constants (ms), like :attr:`tau_on_ms`."""
        return self._map(self.adaptrans.tau_off_ms)

    @property
    def w(self) -> torch.Tensor:
        """Weights of the present frame, like :attr:`tau_on_ms`."""
        return self._map(self.adaptrans.w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(B, C, H, W, T)`` -> ``(B, 2C, H, W, T)`` (ON channels, then OFF)."""
        check_movie(x, self.frame_shape)
        b, c, h, w, t = x.shape
        if self.per_pixel:
            return self.adaptrans(x.reshape(b, 1, c * h * w, t)).reshape(b, 2 * c, h, w, t)
        y = self.adaptrans(x.reshape(b * c * h * w, 1, 1, t))  # (B C H W, 2, 1, T)
        return y.reshape(b, c, h, w, 2, t).permute(0, 4, 1, 2, 3, 5).reshape(b, 2 * c, h, w, t)


class MovieIdentity(nn.Module):
    """The identity prefilter of a visual model: ``(B, C, H, W, T)`` -> itself; ``out_channels = C``."""

    def __init__(self, channels: int):
        super().__init__()
        self.out_channels = check_int(channels, "channels", 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def make_visual_prefilter(prefilter, frame_shape, dt_ms: float = 25.0, **prefilter_kwargs) -> nn.Module:
    """The prefilter of a visual model: None (identity, C channels), ``"adaptrans"``
    (:class:`PixelAdapTrans`, 2C channels; unless given, ``rectify="relu"`` as in the
    auditory models and ``w0`` = :data:`VISUAL_ADAPTRANS_W0`) or an ``nn.Module``
    ``(B, C, H, W, T) -> (B, C', H, W, T)`` with an integer ``out_channels``."""
    frame_shape = check_frame_shape(frame_shape)
    if prefilter is None:
        if prefilter_kwargs:
            raise ValueError(f"prefilter_kwargs given without a prefilter: {sorted(prefilter_kwargs)}")
        return MovieIdentity(frame_shape[0])
    if isinstance(prefilter, nn.Module):
        if not isinstance(getattr(prefilter, "out_channels", None), int):
            raise ValueError(f"expected a prefilter module with an integer attribute out_channels, got "
                             f"{type(prefilter).__name__} without one")
        return prefilter
    if isinstance(prefilter, str) and prefilter.lower() == "adaptrans":
        kwargs = {"rectify": MODEL_ADAPTRANS_RECTIFY, "w0": VISUAL_ADAPTRANS_W0, **prefilter_kwargs}
        return PixelAdapTrans(frame_shape, dt_ms=float(dt_ms), **kwargs)
    if isinstance(prefilter, str) and prefilter.startswith("module:"):
        raise ValueError(f"this config was saved from a model with a custom prefilter module ({prefilter[7:]}); "
                         "it cannot be rebuilt from the config: pass the module itself as prefilter")
    raise ValueError(f"expected prefilter None, 'adaptrans' or an nn.Module for a visual model, got {prefilter!r}")


class VisualResponseModel(ResponseModel):
    """Base of the visual models: a :class:`~.base.ResponseModel` whose stimuli are movies,
    ``forward(x) = forward_readout(forward_core(prefilter(x)))``.

    Validates ``frame_shape`` ``(C, H, W)``, ``n_neurons`` and ``dt_ms``, owns
    ``self.prefilter`` and ``self.in_channels`` (C after the prefilter), records the
    effective constructor values in ``config`` and checks movies ``(B, C, H, W, T)``
    (:func:`~deepstrf_utils.shapes.check_movie`: finite, B >= 1, of the parameters' dtype).
    ``lengths`` (the valid frames of a padded batch) reaches the core, whose batch
    normalisation takes its statistics over the valid frames only. Inherited: what a model
    says about itself (:meth:`~.base.ResponseModel.receptive_field` in frames, from
    :attr:`core_receptive_field`; no shared core; the prefilter's parameters not decayed).
    """

    def _setup(self, frame_shape, n_neurons, prefilter, prefilter_kwargs, dt_ms) -> None:
        self.frame_shape = check_frame_shape(frame_shape)
        self.n_neurons = check_int(n_neurons, "n_neurons", 1)
        self.dt_ms = check_number(dt_ms, "dt_ms (the frame duration in ms)", 0.0, low_open=True)
        self.prefilter = make_visual_prefilter(prefilter, self.frame_shape, self.dt_ms,
                                               **check_prefilter_kwargs(prefilter_kwargs))
        self.in_channels = int(self.prefilter.out_channels)

    def _set_config(self, prefilter, prefilter_kwargs, **kwargs) -> None:
        if isinstance(prefilter, nn.Module):
            prefilter, prefilter_kwargs = f"module:{type(prefilter).__name__}", None
        elif prefilter is not None:  # the prefilter's effective values, as for the auditory models
            prefilter_kwargs = {k: v for k, v in self.prefilter.config.items() if k not in ("frame_shape", "dt_ms")}
        self.config = to_plain(dict(frame_shape=list(self.frame_shape), n_neurons=self.n_neurons, **kwargs,
                                    prefilter=prefilter, prefilter_kwargs=prefilter_kwargs or None, dt_ms=self.dt_ms))

    def _check_stimulus(self, x) -> None:
        """Check x: a finite movie batch ``(B, C, H, W, T)`` with ``(C, H, W)`` = ``frame_shape``
        and B >= 1 (ValueError), of the dtype of the model's parameters (TypeError)."""
        param = next(self.parameters(), None)
        check_movie(x, self.frame_shape, None if param is None else param.dtype)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x ``(B, C, H, W, T)`` -> ``(B, N, T)``; ``lengths`` ``(B,)``: the valid frames of a
        zero-padded batch (batch statistics over them only; None = every frame valid)."""
        return self.forward_readout(self.forward_core(self.prefiltered(x), lengths))

    def prefiltered(self, x: torch.Tensor) -> torch.Tensor:
        """Validate x ``(B, C, H, W, T)`` and return the prefilter output ``(B, C', H, W, T)``."""
        self._check_stimulus(x)
        return self.prefilter(x)

    @property
    def core_receptive_field(self) -> int | None:
        """Frames of the prefilter output the core reads per output frame (``n_lags``); None
        for an unbounded memory (a recurrent core)."""
        return None if getattr(self, "n_lags", None) is None else int(self.n_lags)

    def stimulus_shape(self, n_frames: int) -> tuple[int, ...]:
        """The shape of one input movie of ``n_frames`` frames: ``(C, H, W, n_frames)``."""
        return (*self.frame_shape, int(n_frames))

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: the output nonlinearity centred on ``mean`` with gain ``std``."""
        out = getattr(self, "output_nonlinearity", None)
        if out is not None:
            out.init_output(mean, std)


def output_nonlinearity(kind, n: int):
    """The per-neuron output nonlinearity of a visual model: None, or a
    :class:`~.layers.ParametricNonlinearity` of ``kind`` for ``n`` neurons (ValueError naming the kinds)."""
    if kind is None:
        return None
    if kind not in ("softplus", "sigmoid", "exp", "relu"):
        raise ValueError(f"expected nonlinearity None, 'softplus', 'sigmoid', 'exp' or 'relu', got {kind!r}")
    return ParametricNonlinearity(n, kind=kind)


class VisualLinearNonlinear(VisualResponseModel):
    """A spatiotemporal receptive field per neuron and an output nonlinearity.

    ``r_n(t) = g_n(sum_{c,h,w,k} RF[n, c, h, w, k] x'[c, h, w, t - k] + b_n)`` with x' the
    prefilter output (frames before the first count as zero) and ``g_n`` a
    :class:`~.layers.ParametricNonlinearity` (``nonlinearity=None``: linear). Parameters:
    ``weight`` ``(N, C', H, W, K)``, ``bias`` ``(N,)``. forward: ``(B, C, H, W, T)`` -> ``(B, N, T)``.
    """

    def __init__(self, frame_shape, n_neurons: int = 1, n_lags: int = 8, nonlinearity: Optional[str] = "softplus",
                 prefilter=None, prefilter_kwargs=None, dt_ms: float = 25.0):
        super().__init__()
        self._setup(frame_shape, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self.n_lags = check_int(n_lags, "n_lags", 1)
        c, h, w = self.frame_shape
        bound = 1.0 / math.sqrt(self.in_channels * h * w * self.n_lags)
        self.weight = nn.Parameter(torch.empty(self.n_neurons, self.in_channels, h, w, self.n_lags).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(self.n_neurons))
        self.output_nonlinearity = output_nonlinearity(nonlinearity, self.n_neurons)
        self._set_config(prefilter, prefilter_kwargs, n_lags=self.n_lags, nonlinearity=nonlinearity)

    def forward_core(self, z: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, c, h, w, t = z.shape
        weight = self.weight.reshape(self.n_neurons, c, h * w, self.n_lags)
        return causal_strf_conv(z.reshape(b, c, h * w, t), weight, self.bias)

    def forward_readout(self, u: torch.Tensor) -> torch.Tensor:
        return u if self.output_nonlinearity is None else self.output_nonlinearity(u)

    def rf(self) -> torch.Tensor:
        """The receptive fields ``(N, C', H, W, K)`` (``[..., k]`` weighs frame t - k), detached."""
        return self.weight.detach().clone()


def fit_ridge_rf(train, val, n_lags: int = 8, alphas=np.logspace(-3, 6, 19), prefilter=None,
                 prefilter_kwargs: dict | None = None):
    """Closed-form ridge receptive fields of every neuron -> ``(VisualLinearNonlinear, info)``.

    train, val: MovieDatasets (or objects with ``.stimuli`` ``(C, H, W, T_i)``, ``.responses``
    ``(N, R_i, T_i)``, ``.dt_ms``). The pixels are the bands of
    :func:`~deepstrf_utils.models.ridge.fit_ridge_strf` (causal lagged design of ``n_lags``
    frames, unpenalised bias, alpha per neuron chosen on the validation correlation from
    ``alphas``); ``prefilter="adaptrans"`` builds a :class:`PixelAdapTrans` (``prefilter_kwargs``;
    rectified by default) and fits on its fixed ON/OFF channels. Returns a linear
    (``nonlinearity=None``) :class:`VisualLinearNonlinear` with the fitted receptive fields
    (eval mode) and ``fit_ridge_strf``'s info.
    """
    frame = getattr(train, "frame_shape", None) or tuple(np.shape(train.stimuli[0])[:3])
    dt_ms = float(getattr(train, "dt_ms", 25.0))
    model = VisualLinearNonlinear(frame, train.responses[0].shape[0], n_lags, nonlinearity=None, prefilter=prefilter,
                                  prefilter_kwargs=prefilter_kwargs, dt_ms=dt_ms)
    inner = model.prefilter.adaptrans if isinstance(model.prefilter, PixelAdapTrans) else None
    if inner is not None and not model.prefilter.per_pixel:
        raise ValueError("fit_ridge_rf needs per-pixel AdapTrans (per_pixel=True): the pixels are its bands")

    def flat(data):
        return [np.asarray(s, dtype=np.float32).reshape(-1, np.shape(s)[-1]) for s in data.stimuli], data.responses

    linear, info = fit_ridge_strf(flat(train), flat(val), n_lags=n_lags, alphas=alphas, prefilter=inner, dt_ms=dt_ms)
    with torch.no_grad():
        c, h, w = model.frame_shape
        weight = linear.strf().reshape(model.n_neurons, -1, c, h, w, n_lags)
        model.weight.copy_(weight.reshape(model.weight.shape))
        model.bias.copy_(linear.bias.detach())
    return model.eval(), info
