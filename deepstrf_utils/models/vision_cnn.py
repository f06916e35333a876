"""Visual CNN models: a causal factorised spatiotemporal core with a spatial readout, and the
same core with behaviour inputs and a GRU. Movies ``(B, C, H, W, T)`` -> rate ``(B, N, T)``.

* :class:`SpatioTemporalCore`: per layer a spatial convolution over channels, then a causal
  temporal convolution per channel, batch normalisation over the valid frames, ELU;
* :class:`SpatioTemporalCNN`: the core and a per-neuron
  :class:`~.vision_readouts.GaussianReadout` or :class:`~.vision_readouts.FactorisedReadout`
  (after stcnn and the neuralpredictors core + readout models);
* :class:`RecurrentVisualNet`: the same core, pooled and embedded per frame, with behaviour
  signals (running speed, pupil, ...) concatenated, a GRU, a linear readout and the state
  gain of :class:`~.readouts.StateGain` (a CNN + GRU with behaviour inputs, after the
  multimodal model of mouse V1 in freely moving mice).

Shapes: B movies, C channels, H x W pixels, T frames, N neurons, S behaviour signals.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..shapes import check_int
from .layers import MaskedBatchNorm2d, valid_mask
from .readouts import StateGain
from .vision import VisualResponseModel, output_nonlinearity
from .vision_readouts import READOUTS

__all__ = ["SpatioTemporalCore", "SpatioTemporalCNN", "RecurrentVisualNet"]


class SpatioTemporalCore(nn.Module):
    """Causal factorised layers: per layer a spatial conv (channels mixed, zero padding, same
    size; replicate padding gave the border pixels several times the weight of the others,
    and gradient receptive fields their largest values at the corners) on each frame, a causal temporal conv per channel, batch normalisation
    (statistics over the valid frames of a padded batch: :class:`~.layers.MaskedBatchNorm2d`)
    and ELU. ``(B, C, H, W, T)`` (and ``lengths`` ``(B,)``) -> ``(B, C_L, H, W, T)``."""

    def __init__(self, in_channels: int, channels, spatial_kernels, temporal_kernels):
        super().__init__()
        channels, spatial_kernels, temporal_kernels = (list(v) for v in (channels, spatial_kernels, temporal_kernels))
        if not channels or not len(channels) == len(spatial_kernels) == len(temporal_kernels):
            raise ValueError(f"expected channels, spatial_kernels and temporal_kernels of one length >= 1, got "
                             f"{channels}, {spatial_kernels}, {temporal_kernels}")
        self.spatial, self.temporal = nn.ParameterList(), nn.ParameterList()
        self.spatial_bias = nn.ParameterList()
        self.norms = nn.ModuleList()
        c_in = in_channels
        for c, ks, kt in zip(channels, spatial_kernels, temporal_kernels):
            c, ks, kt = check_int(c, "channels", 1), check_int(ks, "spatial_kernels", 1), check_int(kt, "temporal_kernels", 1)
            if ks % 2 == 0:
                raise ValueError(f"expected odd spatial kernel sizes (same-size maps), got {ks}")
            bound = 1.0 / math.sqrt(c_in * ks * ks)
            self.spatial.append(nn.Parameter(torch.empty(c, c_in, ks, ks).uniform_(-bound, bound)))
            self.spatial_bias.append(nn.Parameter(torch.zeros(c)))
            tk = torch.zeros(c, kt)
            tk[:, 0] = 1.0  # a temporal kernel starts as the identity (lag 0), plus noise
            self.temporal.append(nn.Parameter(tk + 0.1 * torch.randn(c, kt) / math.sqrt(kt)))
            self.norms.append(MaskedBatchNorm2d(c))
            c_in = c
        self.out_channels = c_in
        self.n_lags = sum(int(k.shape[1]) - 1 for k in self.temporal) + 1

    def forward(self, z: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, _, h, w, t = z.shape
        mask = valid_mask(lengths, b, t)
        for ws, bs, wt, norm in zip(self.spatial, self.spatial_bias, self.temporal, self.norms):
            c, ks, kt = ws.shape[0], ws.shape[-1], wt.shape[1]
            frames = z.permute(0, 4, 1, 2, 3).reshape(b * t, -1, h, w)
            frames = F.conv2d(frames, ws, bs, padding=ks // 2)
            u = frames.reshape(b, t, c, h * w).permute(0, 2, 3, 1)  # (B, C, H W, T)
            # causal per-channel temporal filter: [..., k] of wt weighs frame t - k
            u = F.conv2d(F.pad(u, (kt - 1, 0)), wt.flip(-1).reshape(c, 1, 1, kt), groups=c)
            z = F.elu(norm(u, mask)).reshape(b, c, h, w, t)
        return z


class SpatioTemporalCNN(VisualResponseModel):
    """Causal spatiotemporal CNN core with a per-neuron spatial readout.

    Args:
        frame_shape: ``(C, H, W)``; n_neurons: N.
        channels, spatial_kernels, temporal_kernels: per layer the feature maps, the odd
            spatial kernel size and the temporal kernel length (frames).
        readout: ``"factorised"`` (:class:`FactorisedReadout`, the default) or ``"gaussian"``
            (:class:`GaussianReadout`). On the synthetic population (16 x 16 pixels, fields
            of 1-1.5 pixels) the Gaussian positions, started at random, mostly stayed where
            they started within the fit's budget while the factorised masks found the fields
            (``benchmarks/README.md``); nonlinearity: per-neuron output nonlinearity
            (``"softplus"``, ``"sigmoid"``, ``"exp"``, ``"relu"`` or None).
        prefilter, prefilter_kwargs, dt_ms: as for every model (``"adaptrans"``: PixelAdapTrans).

    forward: ``(B, C, H, W, T)`` -> ``(B, N, T)``; the temporal receptive field of the core is
    ``n_lags = sum(k_t - 1) + 1`` frames (plus the prefilter's kernel).
    """

    def __init__(self, frame_shape, n_neurons: int = 1, channels=(8,), spatial_kernels=(9,), temporal_kernels=(8,),
                 readout: str = "factorised", nonlinearity: Optional[str] = "softplus", prefilter=None,
                 prefilter_kwargs=None, dt_ms: float = 25.0):
        super().__init__()
        self._setup(frame_shape, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        if readout not in READOUTS:
            raise ValueError(f"expected readout in {sorted(READOUTS)}, got {readout!r}")
        self.core = SpatioTemporalCore(self.in_channels, channels, spatial_kernels, temporal_kernels)
        self.n_lags = self.core.n_lags
        self.readout = READOUTS[readout](self.core.out_channels, self.frame_shape[1:], self.n_neurons)
        self.output_nonlinearity = output_nonlinearity(nonlinearity, self.n_neurons)
        self._set_config(prefilter, prefilter_kwargs, channels=list(channels), spatial_kernels=list(spatial_kernels),
                         temporal_kernels=list(temporal_kernels), readout=readout, nonlinearity=nonlinearity)

    def forward_core(self, z: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Prefilter output ``(B, C', H, W, T)`` -> feature maps ``(B, C_L, H, W, T)``."""
        return self.core(z, lengths)

    def forward_readout(self, h: torch.Tensor) -> torch.Tensor:
        y = self.readout(h)
        return y if self.output_nonlinearity is None else self.output_nonlinearity(y)


class RecurrentVisualNet(VisualResponseModel):
    """CNN core + behaviour inputs + GRU + linear readout + state gain.

    Per frame: the factorised core's feature maps are average-pooled to ``pool x pool``,
    flattened and embedded (linear, ``n_embed``, ELU); the S behaviour signals (``state``
    ``(B, S, T)``) are appended; a GRU (``n_hidden`` units) runs over time; a linear readout
    per neuron and the output nonlinearity give the rate, which the
    :class:`~.readouts.StateGain` of the same signals scales and offsets
    (``y = (g0 + g . s) r + d0 + d . s``). With ``n_states=0`` there is no behaviour input
    and no state gain. forward: x ``(B, C, H, W, T)``, state ``(B, S, T)`` -> ``(B, N, T)``.
    """

    def __init__(self, frame_shape, n_neurons: int = 1, channels=(8,), spatial_kernels=(9,), temporal_kernels=(4,),
                 pool: int = 4, n_embed: int = 32, n_hidden: int = 32, n_states: int = 0, state_names=None,
                 nonlinearity: Optional[str] = "softplus", prefilter=None, prefilter_kwargs=None, dt_ms: float = 25.0):
        super().__init__()
        self._setup(frame_shape, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self.core = SpatioTemporalCore(self.in_channels, channels, spatial_kernels, temporal_kernels)
        self.pool = check_int(pool, "pool", 1)
        self.n_states = int(n_states)
        if self.n_states < 0:
            raise ValueError(f"expected n_states >= 0, got {n_states}")
        self.state_names = None if state_names is None else [str(v) for v in state_names]
        if self.state_names is not None and len(self.state_names) != self.n_states:
            raise ValueError(f"expected {self.n_states} state_names, got {self.state_names}")
        self.embed = nn.Linear(self.core.out_channels * self.pool * self.pool, check_int(n_embed, "n_embed", 1))
        self.gru = nn.GRU(self.embed.out_features + self.n_states, check_int(n_hidden, "n_hidden", 1), batch_first=True)
        self.readout = nn.Linear(self.gru.hidden_size, self.n_neurons)
        self.output_nonlinearity = output_nonlinearity(nonlinearity, self.n_neurons)
        self.state_gain = StateGain(self.n_neurons, self.n_states) if self.n_states else None
        self.n_lags = self.core.n_lags
        self._set_config(prefilter, prefilter_kwargs, channels=list(channels), spatial_kernels=list(spatial_kernels),
                         temporal_kernels=list(temporal_kernels), pool=self.pool, n_embed=self.embed.out_features,
                         n_hidden=self.gru.hidden_size, n_states=self.n_states, state_names=self.state_names,
                         nonlinearity=nonlinearity)

    @property
    def core_receptive_field(self) -> None:
        """None: the GRU's memory is unbounded."""
        return None

    def _check_state(self, state, x) -> None:
        if self.n_states and state is None:
            raise ValueError(f"expected a state (B, S, T) with S={self.n_states} for {type(self).__name__}, got None")
        if not self.n_states and state is not None:
            raise ValueError("expected no state: this model was built with n_states=0")
        if state is not None and (not torch.is_tensor(state) or tuple(state.shape) != (x.shape[0], self.n_states, x.shape[-1])):
            got = tuple(state.shape) if torch.is_tensor(state) else type(state).__name__
            raise ValueError(f"expected a state of shape (B, S, T)=({x.shape[0]}, {self.n_states}, {x.shape[-1]}), got {got}")

    def forward(self, x: torch.Tensor, state: Optional[torch.Tensor] = None,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x ``(B, C, H, W, T)`` (and ``state`` ``(B, S, T)`` when ``n_states > 0``) -> ``(B, N, T)``."""
        z = self.prefiltered(x)
        self._check_state(state, x)
        h = self.core(z, lengths)                                          # (B, C, H, W, T)
        b, c, _, _, t = h.shape
        pooled = F.adaptive_avg_pool2d(h.permute(0, 4, 1, 2, 3).reshape(b * t, c, *h.shape[2:4]), self.pool)
        e = F.elu(self.embed(pooled.reshape(b, t, -1)))                    # (B, T, E)
        if state is not None:
            e = torch.cat([e, state.transpose(1, 2).to(e.dtype)], dim=-1)
        y = self.readout(self.gru(e)[0]).transpose(1, 2)                   # (B, N, T)
        if self.output_nonlinearity is not None:
            y = self.output_nonlinearity(y)
        return y if self.state_gain is None else self.state_gain(y, state)
