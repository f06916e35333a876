"""Building blocks of the response models (``nn`` modules and small tensor helpers).

* :func:`causal_strf_conv`: a bank of STRFs ``(U, C, F, K)`` applied causally (conv2d, or
  matrix products over the lags on a CPU: :mod:`.fastconv`); its frequency-domain twins
  live in :mod:`deepstrf_utils.spectral`.
* :class:`ParametricNonlinearity` / :class:`ParametricSigmoid`: 3 parameters per neuron,
  ``y = a * g(b * x) + c``.
* :class:`DoubleExponential`: NEMS' per-neuron output nonlinearity (4 parameters).
* :class:`LocallyConnectedFrequency`: unshared weights per frequency position (StateNet).
* :class:`NoPrefilter`: the identity prefilter (``out_channels = 1``).
* :class:`MaskedBatchNorm2d`: BatchNorm whose batch statistics cover the valid (unpadded)
  time bins only; :func:`valid_mask` turns stimulus lengths into the ``(B, T)`` mask.
* :func:`as_per_neuron`, :func:`model_device`: small helpers.

Shapes: B batch, C channels, F bands, T bins, K lags, N neurons, U units (N or H). Like
the helpers of :mod:`deepstrf_utils.spectral`, these blocks are vmap-safe (out-of-place,
no data-dependent control flow).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .fastconv import LeanConv2d, lag_products_pay_off, strf_by_lag_products

__all__ = [
    "causal_strf_conv",
    "ParametricNonlinearity",
    "ParametricSigmoid",
    "DoubleExponential",
    "LocallyConnectedFrequency",
    "NoPrefilter",
    "MaskedBatchNorm2d",
    "ConvBeforeNorm2d",
    "LeanConvBeforeNorm2d",
    "valid_mask",
    "as_per_neuron",
    "model_device",
]


def as_per_neuron(value, n: int, name: str) -> torch.Tensor:
    """Return ``value`` (a scalar or ``n`` values) as a float64 tensor of shape ``(n,)``."""
    t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"expected {name} as a scalar or {n} values (one per neuron), got {t.numel()}")
    if not torch.isfinite(t).all():
        raise ValueError(f"expected finite {name}, got {t.tolist()}")
    return t.clone()


def causal_strf_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Apply STRFs causally: ``y[b, u, t] = bias[u] + sum_{c,f,k} weight[u, c, f, k] x[b, c, f, t - k]``.

    x: ``(B, C, F, T)``; weight: ``(U, C, F, K)`` in lag order (``[..., k]`` multiplies
    the input ``k`` bins in the past, ``k = 0`` the present bin); bias: ``(U,)`` or None.
    Inputs before the first bin count as zero (left zero padding only). Returns
    ``(B, U, T)``. On a CPU, banks of at most ``C F`` units (an NRF's hidden layer) run as
    matrix products over the lags (:func:`~.fastconv.strf_by_lag_products`: the same values,
    forward + backward ~2x faster at batch 1 and ~8x for a single unit at batch 8, measured
    in ``benchmarks/README.md``); otherwise, and inside ``torch.func.vmap``, one conv2d.
    """
    if lag_products_pay_off(x, weight):
        return strf_by_lag_products(x, weight, bias)
    k = weight.shape[-1]
    # conv2d is a cross-correlation over the left-padded input: tap j reads x[t + j - (K - 1)],
    # i.e. lag K - 1 - j, hence the flip of the lag axis.
    out = F.conv2d(F.pad(x, (k - 1, 0)), torch.flip(weight, dims=(-1,)), bias)
    return out[:, :, 0, :]


def _inverse_softplus(y: float) -> float:
    """Return ``x`` with ``softplus(x) = y`` (``y > 0``)."""
    return y + math.log(-math.expm1(-y))


class ParametricNonlinearity(nn.Module):
    """Per-neuron output nonlinearity ``y = a * g(b * x) + c`` with 3 parameters per neuron.

    ``g`` is one of ``"sigmoid"``, ``"softplus"``, ``"exp"``, ``"relu"``; ``a = softplus(rho)``
    is kept positive, the slope ``b`` and baseline ``c`` are free. The input offset is left
    out on purpose: every model feeds it a layer that already has a bias.

    Default initialisation: ``a = 1, b = 1, c = 0``, so a fresh model (pre-activations of
    order 1) is in the unsaturated range of ``g``. Call :meth:`init_output` with the mean
    and standard deviation of the target of each neuron to start at the data's scale.

    forward: x ``(..., N, T)`` -> ``(..., N, T)``.
    """

    _G = {
        # name: (function, g(0), average slope around 0)
        "sigmoid": (torch.sigmoid, 0.5, 0.25),
        "softplus": (F.softplus, math.log(2.0), 0.5),
        "exp": (torch.exp, 1.0, 1.0),
        "relu": (torch.relu, 0.0, 0.5),
    }

    def __init__(self, n: int, kind: str = "sigmoid"):
        super().__init__()
        if kind not in self._G:
            raise ValueError(f"expected nonlinearity in {sorted(self._G)}, got {kind!r}")
        self.n = int(n)
        self.kind = kind
        self.raw_amplitude = nn.Parameter(torch.full((self.n,), _inverse_softplus(1.0)))
        self.slope = nn.Parameter(torch.ones(self.n))
        self.baseline = nn.Parameter(torch.zeros(self.n))

    @property
    def amplitude(self) -> torch.Tensor:
        """Output amplitude ``a > 0``, ``(N,)``."""
        return F.softplus(self.raw_amplitude)

    def inner(self, x: torch.Tensor) -> torch.Tensor:
        """``g(b * x)`` for x ``(..., N, T)``."""
        return self._G[self.kind][0](self.slope[:, None] * x)

    def outer(self, u: torch.Tensor) -> torch.Tensor:
        """``a * u + c`` for u ``(..., N, T)``."""
        return self.amplitude[:, None] * u + self.baseline[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(..., N, T)`` -> ``a * g(b * x) + c``, same shape."""
        return self.outer(self.inner(x))

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Set ``a`` and ``c`` so that an input around 0 maps to ``mean`` with gain ``std``.

        mean, std: scalars or ``(N,)`` (the target's per-neuron mean and standard deviation).
        """
        mean = as_per_neuron(mean, self.n, "mean")
        std = as_per_neuron(std, self.n, "std").clamp_min(1e-6)
        _, g0, g1 = self._G[self.kind]
        a = std / g1
        raw = a + torch.log(-torch.expm1(-a))  # inverse softplus
        self.raw_amplitude.copy_(raw.to(self.raw_amplitude))
        self.slope.fill_(1.0)
        self.baseline.copy_((mean - a * g0).to(self.baseline))

    def extra_repr(self) -> str:
        return f"n={self.n}, kind={self.kind!r}"


class ParametricSigmoid(ParametricNonlinearity):
    """``y = a * sigmoid(b * x) + c`` per neuron (3 parameters each); x ``(..., N, T)``."""

    def __init__(self, n: int):
        super().__init__(n, kind="sigmoid")


class DoubleExponential(nn.Module):
    """NEMS double exponential per neuron: ``base + amplitude * exp(-exp(-exp(kappa) * (x - shift)))``.

    4 parameters per neuron (``base``, ``amplitude``, ``kappa``, ``shift``), initialised to
    ``0, 1, 0, 0``; see :meth:`init_output`. forward: x ``(..., N, T)`` -> same shape.
    """

    def __init__(self, n: int):
        super().__init__()
        self.n = int(n)
        self.base = nn.Parameter(torch.zeros(self.n))
        self.amplitude = nn.Parameter(torch.ones(self.n))
        self.kappa = nn.Parameter(torch.zeros(self.n))
        self.shift = nn.Parameter(torch.zeros(self.n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(..., N, T)`` -> ``(..., N, T)``."""
        z = torch.exp(self.kappa)[:, None] * (x - self.shift[:, None])
        return self.base[:, None] + self.amplitude[:, None] * torch.exp(-torch.exp(-z))

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Set ``base`` and ``amplitude`` so that x = 0 maps to ``mean`` with slope ``std``.

        mean, std: scalars or ``(N,)``.
        """
        mean = as_per_neuron(mean, self.n, "mean")
        std = as_per_neuron(std, self.n, "std").clamp_min(1e-6)
        # at x = shift = 0, kappa = 0: value amplitude / e, slope amplitude / e
        self.kappa.zero_()
        self.shift.zero_()
        self.amplitude.copy_((std * math.e).to(self.amplitude))
        self.base.copy_((mean - std).to(self.base))

    def extra_repr(self) -> str:
        return f"n={self.n}"


class LocallyConnectedFrequency(nn.Module):
    """Locally connected layer over frequency, applied to every time bin independently.

    Like a Conv1d over frequency (kernel ``kernel``, stride ``stride``, no padding) but each
    of the ``P = (F - kernel) // stride + 1`` positions has its own weights
    ``(out_channels, in_channels, kernel)`` and bias ``(out_channels,)``.

    forward: x ``(B, C, F, T)`` -> ``(B, out_channels, P, T)``.
    """

    def __init__(self, in_channels: int, out_channels: int, n_bands: int, kernel: int = 7, stride: int = 3):
        super().__init__()
        if kernel < 1 or stride < 1 or n_bands < kernel:
            raise ValueError(
                f"expected 1 <= kernel <= n_bands and stride >= 1, got kernel={kernel}, "
                f"stride={stride}, n_bands={n_bands}"
            )
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel, self.stride = int(kernel), int(stride)
        self.n_positions = (n_bands - kernel) // stride + 1
        bound = 1.0 / math.sqrt(in_channels * kernel)
        self.weight = nn.Parameter(
            torch.empty(self.n_positions, out_channels, in_channels, kernel).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(self.n_positions, out_channels).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(B, C, F, T)`` -> ``(B, O, P, T)``."""
        patches = x.unfold(2, self.kernel, self.stride)  # (B, C, P, T, kernel), a view
        out = torch.einsum("bcptk,pock->bopt", patches, self.weight)
        return out + self.bias.t()[None, :, :, None]

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel={self.kernel}, stride={self.stride}, positions={self.n_positions}"
        )


class NoPrefilter(nn.Module):
    """Identity prefilter: x ``(B, 1, F, T)`` -> x; ``out_channels = 1``."""

    out_channels = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x unchanged, ``(B, 1, F, T)``."""
        return x


def valid_mask(lengths: torch.Tensor | None, batch: int, n_bins: int) -> torch.Tensor | None:
    """Valid time bins of a padded batch: lengths ``(B,)`` -> mask ``(B, T)`` bool (None -> None).

    ``lengths[b]`` is the number of real bins of stimulus b (the rest, at the end, is
    padding); the mask is built on the device of ``lengths`` (give them on the model's device).
    ValueError unless an integer tensor ``(B,)`` with values in ``[1, T]`` (a stimulus without
    a valid bin would leave BatchNorm's statistics NaN); the values are not read inside
    ``torch.func.vmap`` over the lengths.
    """
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor) or tuple(lengths.shape) != (batch,) or lengths.is_floating_point():
        shape = (f"{tuple(lengths.shape)} {lengths.dtype}" if isinstance(lengths, torch.Tensor)
                 else type(lengths).__name__)
        raise ValueError(f"expected lengths as a tensor of shape (B,) = ({batch},) of integers (valid bins per "
                         f"stimulus), got {shape}")
    try:
        bad = bool(((lengths < 1) | (lengths > n_bins)).any())
    except RuntimeError:  # vmap over the lengths: values cannot be read here
        bad = False
    if bad:
        raise ValueError(f"expected lengths (valid bins per stimulus) between 1 and T={n_bins}, "
                         f"got {lengths.tolist()}")
    return torch.arange(n_bins, device=lengths.device)[None, :] < lengths[:, None]


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` over ``(B, C, H, T)`` whose batch statistics cover valid bins only.

    ``forward(x, mask=None)``: with ``mask`` ``(B, T)`` bool (True = a real bin, False =
    padding) in training mode, the per-channel mean and (biased) variance are taken over
    the valid bins of every item and every H position only, the running statistics are
    updated from them (unbiased variance, ``momentum`` as BatchNorm), and every bin is
    normalised with them (padded bins too; causal models never read them back). Without
    a mask, or in eval mode (running statistics), it IS ``nn.BatchNorm2d`` (bit for bit).
    Same parameters, buffers and state-dict keys as ``nn.BatchNorm2d``; vmap-safe.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x ``(B, C, H, T)``, mask ``(B, T)`` bool or None -> ``(B, C, H, T)``."""
        use_batch_stats = self.training or not self.track_running_stats
        if mask is None or not use_batch_stats:
            return super().forward(x)
        self._check_input_dim(x)
        if tuple(mask.shape) != (x.shape[0], x.shape[-1]):
            raise ValueError(f"expected a mask of shape (B, T) = ({x.shape[0]}, {x.shape[-1]}), "
                             f"got {tuple(mask.shape)}")
        m = mask[:, None, None, :]  # (B, 1, 1, T)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        n = mask.sum().to(x.dtype) * x.shape[2]  # valid elements per channel
        mean = torch.where(m, x, zero).sum((0, 2, 3)) / n
        centred = x - mean[None, :, None, None]
        var = torch.where(m, centred, zero).square().sum((0, 2, 3)) / n
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked
                unbiased = var.detach() * (n / (n - 1).clamp_min(1))
                self.running_mean.mul_(1 - factor).add_(factor * mean.detach())
                self.running_var.mul_(1 - factor).add_(factor * unbiased)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


class ConvBeforeNorm2d(nn.Conv2d):
    """``nn.Conv2d`` whose bias is a constant: used detached, created at zero, never trained.

    Before a BatchNorm a per-channel constant has no effect in training mode (the batch mean
    removes it) and only shifts the running mean in eval mode, so the bias's true gradient is
    0; an optimiser would move it on float rounding noise alone (AdamW scales that noise up to
    full-size steps). The bias stays a parameter (same state-dict keys and parameter count as
    ``nn.Conv2d``; a stored non-zero bias is used as it is). ``forward(x (B, C, H, W))`` as
    ``nn.Conv2d`` (zero padding mode only).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.bias is None or self.padding_mode != "zeros":
            raise ValueError("expected ConvBeforeNorm2d with a bias and padding_mode='zeros'")
        with torch.no_grad():  # after the default initialisation: the random stream is unchanged
            self.bias.zero_()

    @property
    def fixed_bias(self) -> torch.Tensor:
        """The bias as a constant (detached)."""
        return self.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight, self.fixed_bias)


class LeanConvBeforeNorm2d(ConvBeforeNorm2d, LeanConv2d):
    """:class:`ConvBeforeNorm2d` with :class:`~.fastconv.LeanConv2d`'s CPU backward (the
    2D-CNN's large kernels): a constant bias, the weight's gradient from forward convolutions."""


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (or buffer); CPU for a model with neither."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")
