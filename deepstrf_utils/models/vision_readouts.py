"""Per-neuron spatial readouts of a visual core: feature maps ``(B, C, H, W, T)`` -> ``(B, N, T)``.

* :class:`GaussianReadout`: each neuron reads the core's feature map through a Gaussian
  window at a learned position ``mu`` (``(N, 2)``, ``(x, y)`` in [-1, 1] frame coordinates)
  with a learned width, then weighs the C features: ``y_n = sum_c w[n, c] sum_hw
  g_n(h, w) h[c, h, w] + b_n``. As the width shrinks the window samples the map at ``mu``
  (the Gaussian readout of neuralpredictors, Lurz et al. 2021, whose training samples the
  position from the Gaussian and reads one bilinearly interpolated point; here the window
  is the expectation of that sampling, deterministic and differentiable in ``mu`` and the
  width everywhere).
* :class:`FactorisedReadout`: a spatial mask per neuron times feature weights (Klindt et
  al. 2017): ``y_n = sum_c w[n, c] sum_hw m[n, h, w] h[c, h, w] + b_n``.

Both are linear in the features and applied at every time bin; the output nonlinearity
belongs to the model. Shapes: B batch, C features, H x W feature map, T bins, N neurons.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..shapes import check_int

__all__ = ["GaussianReadout", "FactorisedReadout", "READOUTS"]


def _check_features(h: torch.Tensor, channels: int, hw: tuple[int, int]) -> None:
    if h.dim() != 5 or h.shape[1] != channels or tuple(h.shape[2:4]) != tuple(hw):
        raise ValueError(f"expected core features of shape (B, C, H, W, T) with C={channels}, (H, W)={tuple(hw)}, "
                         f"got {tuple(h.shape)}")


class _SpatialReadout(nn.Module):
    """What both readouts share: ``y_n = sum_c features[n, c] sum_hw masks()[n, h, w] h[c, h, w] + bias[n]``."""

    def _setup(self, in_channels: int, map_shape, n_neurons: int) -> None:
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.map_shape = tuple(check_int(v, "map_shape", 1) for v in map_shape)
        self.n_neurons = check_int(n_neurons, "n_neurons", 1)

    def _features_and_bias(self) -> None:
        scale = 1.0 / math.sqrt(self.in_channels)
        self.features = nn.Parameter(torch.empty(self.n_neurons, self.in_channels).normal_(0.0, scale))
        self.bias = nn.Parameter(torch.zeros(self.n_neurons))

    def masks(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h ``(B, C, H, W, T)`` -> ``(B, N, T)``."""
        _check_features(h, self.in_channels, self.map_shape)
        pooled = torch.einsum("bchwt,nhw->bnct", h, self.masks())
        return torch.einsum("bnct,nc->bnt", pooled, self.features) + self.bias[:, None]

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, map_shape={self.map_shape}, n_neurons={self.n_neurons}"


class GaussianReadout(_SpatialReadout):
    """Gaussian readout (see the module docstring).

    Args:
        in_channels: C of the feature map; map_shape: its ``(H, W)``; n_neurons: N.
        init_sigma: starting width of every window, in frame units (1 = half the frame).

    Parameters: ``position`` ``(N, 2)`` (``(x, y)``, started uniformly in [-0.5, 0.5]),
    ``raw_sigma`` ``(N,)`` (width ``softplus(raw_sigma) + half a pixel``), ``features``
    ``(N, C)``, ``bias`` ``(N,)``. forward: ``(B, C, H, W, T)`` -> ``(B, N, T)``.
    """

    def __init__(self, in_channels: int, map_shape, n_neurons: int, init_sigma: float = 0.3):
        super().__init__()
        self._setup(in_channels, map_shape, n_neurons)
        if not float(init_sigma) > 0:
            raise ValueError(f"expected init_sigma > 0 (frame units), got {init_sigma}")
        self.min_sigma = 1.0 / max(max(self.map_shape) - 1, 1)
        self.position = nn.Parameter(torch.empty(self.n_neurons, 2).uniform_(-0.5, 0.5))
        raw = math.log(math.expm1(max(float(init_sigma) - self.min_sigma, 1e-3)))
        self.raw_sigma = nn.Parameter(torch.full((self.n_neurons,), raw))
        self._features_and_bias()
        h, w = self.map_shape
        self.register_buffer("grid_y", torch.linspace(-1.0, 1.0, h) if h > 1 else torch.zeros(1), persistent=False)
        self.register_buffer("grid_x", torch.linspace(-1.0, 1.0, w) if w > 1 else torch.zeros(1), persistent=False)

    @property
    def sigma(self) -> torch.Tensor:
        """Window width per neuron, ``(N,)``, frame units."""
        return F.softplus(self.raw_sigma) + self.min_sigma

    def masks(self) -> torch.Tensor:
        """The normalised Gaussian windows ``(N, H, W)`` (each sums to 1)."""
        s2 = 2.0 * self.sigma.pow(2)[:, None, None]
        dx = (self.grid_x[None, None, :] - self.position[:, 0, None, None]).pow(2)
        dy = (self.grid_y[None, :, None] - self.position[:, 1, None, None]).pow(2)
        g = torch.exp(-(dx + dy) / s2)
        return g / g.flatten(1).sum(1).clamp_min(1e-30)[:, None, None]

    def position_pixels(self) -> torch.Tensor:
        """Positions ``(N, 2)`` as ``(x, y)`` in pixels of the feature map (detached)."""
        h, w = self.map_shape
        scale = torch.tensor([max(w - 1, 0) / 2.0, max(h - 1, 0) / 2.0], device=self.position.device)
        return ((self.position.detach() + 1.0) * scale).cpu()


class FactorisedReadout(_SpatialReadout):
    """Factorised readout: spatial mask ``(N, H, W)`` x feature weights ``(N, C)`` + bias.

    Parameters: ``mask`` ``(N, H, W)``, ``features`` ``(N, C)``, ``bias`` ``(N,)``. The mask
    in use is ``mask / sqrt(H W)`` (:meth:`masks`), started at a uniform ``1 / (H W)`` plus
    10 % noise: stored ``sqrt(H W)`` times larger, its entries are of the scale of an Adam
    step (whose size does not depend on a parameter's scale); stored at ``1 / (H W)``, the
    first steps of AdamW at lr 5e-3 turned the masks to noise and the CNN overfitted
    (``benchmarks/README.md``). forward: ``(B, C, H, W, T)`` -> ``(B, N, T)``.
    """

    def __init__(self, in_channels: int, map_shape, n_neurons: int):
        super().__init__()
        self._setup(in_channels, map_shape, n_neurons)
        h, w = self.map_shape
        self.scale = 1.0 / math.sqrt(h * w)
        self.mask = nn.Parameter((1.0 + 0.1 * torch.randn(self.n_neurons, h, w)) * self.scale)
        self._features_and_bias()

    def masks(self) -> torch.Tensor:
        """The spatial masks in use, ``mask / sqrt(H W)``, ``(N, H, W)``."""
        return self.mask * self.scale


#: readout name -> class (the ``readout`` argument of the visual models)
READOUTS = {"gaussian": GaussianReadout, "factorised": FactorisedReadout}
