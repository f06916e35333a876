"""Building blocks shared by the response models of :mod:`deepstrf_utils.models`.

* :func:`causal_strf_conv`: a bank of STRFs ``(U, C, F, K)`` applied causally.
* :func:`causal_strf_fft`: the same result computed in the frequency domain.
* :func:`prefiltered_strf_fft`: a linear prefilter with replicate left padding (AdapTrans
  with ``rectify=None``) followed by STRFs, fused into one frequency-domain product.
* :func:`leaky_integrate`: the DNet leaky integrator ``u_t = (1 - k) u_{t-1} + k s_t``,
  evaluated exactly for all bins at once (causal FFT convolution, zero initial state).
* :class:`ParametricNonlinearity` / :class:`ParametricSigmoid`: 3 parameters per neuron,
  ``y = a * g(b * x) + c``.
* :class:`DoubleExponential`: NEMS' per-neuron output nonlinearity (4 parameters).
* :class:`LocallyConnectedFrequency`: unshared weights per frequency position (StateNet).
* :class:`NoPrefilter`: the identity prefilter (``out_channels = 1``).

Shapes: B batch, C channels, F bands, T bins, K lags, N neurons, U units (N or H).
All operations are out-of-place and free of data-dependent Python control flow, so a
model built from them can be run through ``torch.func.functional_call`` + ``torch.vmap``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "causal_strf_conv",
    "causal_strf_fft",
    "prefiltered_strf_fft",
    "leaky_integrate",
    "ParametricNonlinearity",
    "ParametricSigmoid",
    "DoubleExponential",
    "LocallyConnectedFrequency",
    "NoPrefilter",
    "as_per_neuron",
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
    ``(B, U, T)``.
    """
    k = weight.shape[-1]
    # conv2d is a cross-correlation over the left-padded input: tap j reads x[t + j - (K - 1)],
    # i.e. lag K - 1 - j, hence the flip of the lag axis.
    out = F.conv2d(F.pad(x, (k - 1, 0)), torch.flip(weight, dims=(-1,)), bias)
    return out[:, :, 0, :]


def _fft_size(n: int) -> int:
    """Smallest ``2^i 3^j 5^k >= n``: a fast transform length for pocketfft and cuFFT."""
    from .adaptrans import _fast_fft_length

    return _fast_fft_length(int(n))


class _SpectralProduct(torch.autograd.Function):
    """``Y[b, u, w] = sum_q X[b, q, w] G[u, q, w]`` (complex), as real matrix products.

    xs: real ``(W, 2B, Q)``, the rows ``[Re X; Im X]`` per frequency; g: real
    ``(U, Q, W, 2)`` (``torch.view_as_real`` of G, no copy). Returns real ``(B, U, W, 2)``
    (``view_as_real`` of Y). With ``P = xs @ [Re G, Im G]`` (one ``bmm``, ``(W, 2B, 2U)``):
    ``Re Y = Re X Re G - Im X Im G`` and ``Im Y = Re X Im G + Im X Re G``. Real BLAS is
    several times faster than a complex einsum on CPU.

    It has its own ``torch.vmap`` rule: vmap's generic rule for ``bmm`` turns "stimulus
    shared, G batched over units" into ``units x W`` matrix-vector products (~50x slower on
    CPU); this rule folds the vmapped units into U (or into B when only X is batched), so
    ``vmap(functional_call)`` over stacked single-unit models (training's batched path)
    runs one matrix product per frequency for all units, like a population model.
    """

    @staticmethod
    def forward(xs, g):
        n_w, b2, q = xs.shape
        u = g.shape[0]
        gm = g.permute(2, 1, 0, 3).reshape(n_w, q, 2 * u)  # (W, Q, [U, Re/Im])
        p = torch.bmm(xs, gm).view(n_w, 2, b2 // 2, u, 2)  # (W, Re/Im X, B, U, Re/Im G)
        y_re = p[:, 0, :, :, 0] - p[:, 1, :, :, 1]
        y_im = p[:, 0, :, :, 1] + p[:, 1, :, :, 0]
        return torch.stack([y_re, y_im], dim=-1).permute(1, 2, 0, 3)  # (B, U, W, 2)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad_y):
        xs, g = ctx.saved_tensors
        n_w, b2, q = xs.shape
        u = g.shape[0]
        gy = grad_y.permute(2, 0, 1, 3)  # (W, B, U, 2)
        gr, gi = gy[..., 0], gy[..., 1]
        # rows Re X: (dRe Y, dIm Y); rows Im X: (dIm Y, -dRe Y), interleaved like gm's columns
        m = torch.stack([torch.stack([gr, gi], -1), torch.stack([gi, -gr], -1)], 1).reshape(n_w, b2, 2 * u)
        grad_xs = grad_g = None
        if ctx.needs_input_grad[0]:
            gm = g.permute(2, 1, 0, 3).reshape(n_w, q, 2 * u)
            grad_xs = torch.bmm(m, gm.transpose(1, 2))
        if ctx.needs_input_grad[1]:
            grad_g = torch.bmm(xs.transpose(1, 2), m).view(n_w, q, u, 2).permute(2, 1, 0, 3)
        return grad_xs, grad_g

    @staticmethod
    def vmap(info, in_dims, xs, g):
        x_dim, g_dim = in_dims
        if x_dim is None:  # shared stimulus, per-unit G (V, U, Q, W, 2): fold V into U
            g = g.movedim(g_dim, 0)
            v, u = g.shape[:2]
            y = _SpectralProduct.apply(xs, g.reshape(v * u, *g.shape[2:]))
            return y.view(y.shape[0], v, u, *y.shape[2:]), 1
        if g_dim is None:  # per-unit X (V, W, 2B, Q), shared G: fold V into B
            xs = xs.movedim(x_dim, 0)
            v, n_w, b2, q = xs.shape
            xs = xs.view(v, n_w, 2, b2 // 2, q).permute(1, 2, 0, 3, 4).reshape(n_w, v * b2, q)
            y = _SpectralProduct.apply(xs, g)
            return y.view(v, b2 // 2, *y.shape[1:]), 0
        # both batched: fold V into the frequencies (one product per unit and frequency)
        xs = xs.movedim(x_dim, 0)
        g = g.movedim(g_dim, 0)
        v, n_w = xs.shape[:2]
        g = g.permute(1, 2, 0, 3, 4).reshape(g.shape[1], g.shape[2], v * n_w, 2)
        y = _SpectralProduct.apply(xs.reshape(v * n_w, *xs.shape[2:]), g)
        return y.view(y.shape[0], y.shape[1], v, n_w, 2), 2


class _PaddedRfft(torch.autograd.Function):
    """``torch.fft.rfft(g, n)`` of a short real signal g ``(..., L)``, ``L <= n``, with a lean backward.

    PyTorch's generic backward of rfft builds the full zero-filled two-sided spectrum and
    runs a complex-to-complex transform; the gradient of a real signal only needs
    ``Re(R^H dY)``, i.e. one complex-to-real transform of ``dY`` with the bins that stand
    for two conjugate frequencies halved: ``n * irfft(dY')[..., :L]``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(g, n):
        return torch.fft.rfft(g, n=n)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.n, ctx.length = inputs[1], inputs[0].shape[-1]

    @staticmethod
    def backward(ctx, grad_spec):
        n = ctx.n
        last = n // 2 if n % 2 == 0 else None  # the Nyquist bin (even n) stands for one frequency
        scale = torch.full((grad_spec.shape[-1],), 0.5 * n, dtype=grad_spec.real.dtype, device=grad_spec.device)
        scale[0] = n
        if last is not None:
            scale[last] = n
        return torch.fft.irfft(grad_spec * scale, n=n)[..., : ctx.length], None


def padded_rfft(x: torch.Tensor, n: int) -> torch.Tensor:
    """``torch.fft.rfft(x, n=n)`` of a real ``(..., L)`` signal, ``L <= n``, zero padded.

    Same values; when ``x`` needs a gradient, the backward is one complex-to-real
    transform (:class:`_PaddedRfft`) instead of PyTorch's generic complex-to-complex one
    on the full two-sided spectrum.
    """
    if x.shape[-1] > n:
        raise ValueError(f"expected a signal of at most n={n} samples, got {x.shape[-1]}")
    if not (x.requires_grad or torch._C._functorch.is_functorch_wrapped_tensor(x)):
        return torch.fft.rfft(x, n=n)
    return _PaddedRfft.apply(x, n)


def _spectral_apply(spec_x: torch.Tensor, spec_g: torch.Tensor, n_fft: int, n_bins: int) -> torch.Tensor:
    """``y[b, u] = irfft(sum_q X[b, q] G[u, q])[:T]``.

    spec_x: complex ``(B, Q, W)``; spec_g: complex ``(U, Q, W)``; returns real ``(B, U, T)``.
    """
    b, q, n_w = spec_x.shape
    xs = torch.view_as_real(spec_x).permute(2, 3, 0, 1).reshape(n_w, 2 * b, q)  # (W, [Re; Im] B, Q)
    y = _SpectralProduct.apply(xs, torch.view_as_real(spec_g))
    return torch.fft.irfft(torch.view_as_complex(y.contiguous()), n=n_fft)[..., :n_bins]


def causal_strf_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`causal_strf_conv` computed in the frequency domain (same result up to rounding).

    x: ``(B, C, F, T)``; weight: ``(U, C, F, K)`` in lag order; bias: ``(U,)`` or None.
    Inputs before the first bin count as zero. Returns ``(B, U, T)``. The transform of the
    stimulus is shared by all U STRFs: ``y = irfft(sum_{c,f} X[b,c,f] W[u,c,f])`` with
    zero padding to ``>= T + K - 1`` bins (no wrap-around).
    """
    b, c, f, t = x.shape
    u, _, _, k = weight.shape
    n = _fft_size(t + k - 1)
    spec_x = padded_rfft(x, n).reshape(b, c * f, -1)
    spec_w = padded_rfft(weight, n).reshape(u, c * f, -1)
    y = _spectral_apply(spec_x, spec_w, n, t)
    return y if bias is None else y + bias[:, None]


def prefiltered_strf_fft(
    x: torch.Tensor, kernels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """A linear causal prefilter with replicate padding followed by STRFs, fused (exact).

    The prefilter is ``z[b, c, f, t] = sum_j h[c, f, j] x[b, f, t - j]`` with the first frame
    replicated to the left (``x[t < 0] = x[0]``, AdapTrans with ``rectify=None``); the STRF
    sees ``z`` with zero left padding, as :func:`causal_strf_conv` does. Writing
    ``x = x[0] + (x - x[0])`` and ``z = h * (x - x[0]) + (sum_j h) x[0]`` (zero padded) gives

        y[b, u, t] = bias[u] + sum_f (g[u, f] * (x - x[0])[b, f])[t]
                     + sum_f x[b, f, 0] s[u, f, min(t, K - 1)]

    with ``g[u, f] = sum_c h[c, f] * weight[u, c, f]`` (one filter of ``Kh + K - 1`` taps
    per band) and ``s[u, f, k] = sum_c (sum_j h[c, f, j]) sum_{l <= k} weight[u, c, f, l]``
    (the STRF's step response to the constant part). The first term is one product per
    frequency of the stimulus transform, shared by all units; per unit it costs
    ``F x n_freq`` complex multiply-adds, whatever the number of prefilter channels C.

    x: ``(B, 1, F, T)``; kernels: ``(C, F, Kh)`` (``[..., j]`` = weight of ``x[t - j]``; may
    carry a leading vmap dimension); weight: ``(U, C, F, K)`` in lag order; bias: ``(U,)``
    or None. Returns ``(B, U, T)``, equal to ``causal_strf_conv(prefilter(x), weight, bias)``.
    """
    b, _, f, t = x.shape
    u, c, _, k = weight.shape
    kh = kernels.shape[-1]
    x0 = x[:, 0, :, :1]  # (B, F, 1)
    n = _fft_size(t + kh + k - 2)
    spec_x = torch.fft.rfft(x[:, 0] - x0, n=n)  # (B, F, W)
    # g = sum_c h_c * weight_c (Kh + K - 1 taps), composed on a short transform (no wrap-around),
    # so that the long transform is taken once per band and unit instead of once per channel
    m = _fft_size(kh + k - 1)
    g = torch.fft.irfft((padded_rfft(kernels, m).unsqueeze(0) * padded_rfft(weight, m)).sum(1), n=m)
    spec_g = padded_rfft(g[..., : kh + k - 1], n)  # (U, F, W)
    y = _spectral_apply(spec_x, spec_g, n, t)
    # constant part: x0 through the prefilter gain, then the STRF's (zero-padded) step response
    step = torch.einsum("cf,ucfk->ufk", kernels.sum(-1), weight.cumsum(-1))  # (U, F, K)
    y_step = torch.einsum("bf,ufk->buk", x0[..., 0], step)  # (B, U, K)
    if t <= k:
        y_step = y_step[..., :t]
    else:
        y_step = torch.cat([y_step, y_step[..., -1:].expand(b, u, t - k)], dim=-1)
    y = y + y_step
    return y if bias is None else y + bias[:, None]


def leaky_integrate(s: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Leaky integration along time: ``u_t = (1 - k) u_{t-1} + k s_t`` with ``u_{-1} = 0``.

    s: ``(..., U, T)``; k: ``(U,)`` in (0, 1]. Returns ``(..., U, T)``. Exact closed form
    ``u_t = sum_{j=0}^{t} k (1 - k)^j s_{t-j}``, computed as a causal FFT convolution with
    the full-length kernel (no Python loop over time), differentiable in ``s`` and ``k``.
    """
    t_len = s.shape[-1]
    lags = torch.arange(t_len, dtype=s.dtype, device=s.device)
    # (1 - k)^j by pow: exact at k = 1 (kernel [1, 0, 0, ...]), gradient included
    kernel = k[:, None] * torch.pow(1.0 - k[:, None], lags)  # (U, T): weight of s_{t-j}
    n_fft = _fft_size(2 * t_len - 1)
    spec = padded_rfft(s, n_fft) * padded_rfft(kernel, n_fft)
    return torch.fft.irfft(spec, n=n_fft, dim=-1)[..., :t_len]


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


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (or buffer); CPU for a model with neither."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")
