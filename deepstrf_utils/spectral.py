"""Frequency-domain helpers (ground floor: imports only torch).

* :func:`fast_fft_length`: the smallest ``2^i 3^j 5^k >= n`` (a fast transform length).
* :func:`padded_rfft`: ``torch.fft.rfft(x, n)`` of a short real signal with a lean backward.
* :func:`causal_filter_fft`: a bank of causal filters per band (AdapTrans' ON/OFF kernels)
  in the frequency domain, with a backward of three transforms.
* :func:`causal_strf_fft`: a bank of STRFs ``(U, C, F, K)`` applied causally, in the
  frequency domain (the same result as ``models.layers.causal_strf_conv``).
* :func:`prefiltered_strf_fft`: a linear prefilter with replicate left padding (AdapTrans
  with ``rectify=None``) followed by STRFs, fused into one frequency-domain product.
* :func:`causal_conv2d_fft`: a 2-D convolution layer (valid in frequency, causal in time,
  as the 2D-CNN's ``Conv2d`` on a left-padded input) computed in the frequency domain.
* :func:`leaky_integrate`: the DNet leaky integrator ``u_t = (1 - k) u_{t-1} + k s_t``,
  evaluated exactly for all bins at once (causal FFT convolution, zero initial state).

Shapes: B batch, C channels, F bands, T bins, K lags, U units (neurons or hidden units).
All operations are out-of-place and free of data-dependent Python control flow, so a
model built from them can be run through ``torch.func.functional_call`` + ``torch.vmap``.
"""

from __future__ import annotations

import torch

__all__ = [
    "fast_fft_length",
    "padded_rfft",
    "causal_filter_fft",
    "causal_strf_fft",
    "prefiltered_strf_fft",
    "causal_conv2d_fft",
    "leaky_integrate",
]


def fast_fft_length(n: int) -> int:
    """Smallest ``2^i 3^j 5^k >= n``: a fast transform length for pocketfft and cuFFT."""
    n = int(n)
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


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
    if not torch.is_grad_enabled():
        return torch.fft.rfft(x, n=n)
    # With grad mode on, always go through the autograd Function: its forward is the plain
    # transform, and it also covers tensors that need a gradient without saying so
    # (``requires_grad`` is False on the wrappers of ``torch.func.vmap``).
    return _PaddedRfft.apply(x, n)


class _CausalFilter(torch.autograd.Function):
    """``y[b, c, f, t] = sum_j h[c, f, j] x[b, f, t - j]``: x ``(B, F, T)``, h ``(C, F, K)`` ->
    ``(B, C, F, T)``, zero before the first bin, by transforms of ``n >= T + K - 1`` points.

    Backward, with ``G = rfft(dy, n)``: ``dh = irfft(sum_b conj(X) G)[:K]`` (the correlation of
    the output gradient with the input) and ``dx = irfft(sum_c conj(H) G)[:T]``, three
    transforms in all (autograd's generic backward of the same forward also zero-fills,
    rescales and sums the spectra: ~1.3x more time at NS1 size on a CPU thread). The
    transforms the backward needs are recomputed from the saved inputs, so the backward
    is itself differentiable.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, h, n):
        spec = torch.fft.rfft(x, n=n).unsqueeze(-3) * torch.fft.rfft(h, n=n)
        return torch.fft.irfft(spec, n=n)[..., : x.shape[-1]]

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, h, n = inputs
        ctx.save_for_backward(x, h)
        ctx.n = n

    @staticmethod
    def backward(ctx, grad_y):
        x, h = ctx.saved_tensors
        n = ctx.n
        spec_g = torch.fft.rfft(grad_y, n=n)  # (B, C, F, W)
        grad_x = grad_h = None
        if ctx.needs_input_grad[1]:
            prod = torch.fft.rfft(x, n=n).conj().unsqueeze(-3) * spec_g
            prod = prod.sum(0) if prod.shape[0] > 1 else prod[0]
            grad_h = torch.fft.irfft(prod, n=n)[..., : h.shape[-1]]
        if ctx.needs_input_grad[0]:
            prod = torch.fft.rfft(h, n=n).conj() * spec_g
            grad_x = torch.fft.irfft(prod.sum(-3), n=n)[..., : x.shape[-1]]
        return grad_x, grad_h, None


def causal_filter_fft(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Causal filtering of each band by C kernels: ``y[b, c, f, t] = sum_j h[c, f, j] x[b, f, t - j]``.

    x: ``(B, F, T)``; h: ``(C, F, K)`` (``[..., j]`` = weight of ``x[t - j]``). Inputs before
    the first bin count as zero. Returns ``(B, C, F, T)``, the same values as a direct
    convolution up to float rounding; differentiable in both, with a lean backward.
    """
    if x.dim() != 3 or h.dim() != 3 or h.shape[1] != x.shape[1]:
        raise ValueError(f"expected x (B, F, T) and h (C, F, K) with the same F, got {tuple(x.shape)} and "
                         f"{tuple(h.shape)}")
    return _CausalFilter.apply(x, h, fast_fft_length(x.shape[-1] + h.shape[-1] - 1))


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


def _spectral_apply(spec_x: torch.Tensor, spec_g: torch.Tensor, n_fft: int, n_bins: int) -> torch.Tensor:
    """``y[b, u] = irfft(sum_q X[b, q] G[u, q])[:T]``.

    spec_x: complex ``(B, Q, W)``; spec_g: complex ``(U, Q, W)``; returns real ``(B, U, T)``.
    """
    b, q, n_w = spec_x.shape
    xs = torch.view_as_real(spec_x).permute(2, 3, 0, 1).reshape(n_w, 2 * b, q)  # (W, [Re; Im] B, Q)
    y = _SpectralProduct.apply(xs, torch.view_as_real(spec_g))
    return torch.fft.irfft(torch.view_as_complex(y.contiguous()), n=n_fft)[..., :n_bins]


def causal_strf_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`~deepstrf_utils.models.layers.causal_strf_conv` computed in the frequency domain (same result up to rounding).

    x: ``(B, C, F, T)``; weight: ``(U, C, F, K)`` in lag order; bias: ``(U,)`` or None.
    Inputs before the first bin count as zero. Returns ``(B, U, T)``. The transform of the
    stimulus is shared by all U STRFs: ``y = irfft(sum_{c,f} X[b,c,f] W[u,c,f])`` with
    zero padding to ``>= T + K - 1`` bins (no wrap-around).
    """
    b, c, f, t = x.shape
    u, _, _, k = weight.shape
    n = fast_fft_length(t + k - 1)
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
    sees ``z`` with zero left padding, as :func:`~deepstrf_utils.models.layers.causal_strf_conv` does. Writing
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
    n = fast_fft_length(t + kh + k - 2)
    spec_x = torch.fft.rfft(x[:, 0] - x0, n=n)  # (B, F, W)
    # g = sum_c h_c * weight_c (Kh + K - 1 taps), composed on a short transform (no wrap-around),
    # so that the long transform is taken once per band and unit instead of once per channel
    m = fast_fft_length(kh + k - 1)
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


def _mix(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``y[i, o, p] = sum_c x[i, c, p] g[o, c, p]``: one fused multiply-add per c (memory-bound, few channels)."""
    y = x[:, None, 0] * g[None, :, 0]
    for c in range(1, x.shape[1]):
        y = torch.addcmul(y, x[:, None, c], g[None, :, c])
    return y


class _ChannelMix(torch.autograd.Function):
    """``y[b, o, p] = sum_c x[b, c, p] g[o, c, p]`` (complex) with a backward of the same form.

    For a few channels a loop of fused multiply-adds is ~2x faster on a CPU than ``einsum``
    or one ``bmm`` per transform point (tiny matrices), and the two gradients are the same
    product again, ``dx[b, c] = sum_o dy[b, o] conj(g[o, c])`` and ``dg[o, c] = sum_b
    dy[b, o] conj(x[b, c])``, instead of autograd's broadcast products and reductions
    (~3x less backward time).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, g):
        return _mix(x, g)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad_y):
        x, g = ctx.saved_tensors
        grad_x = _mix(grad_y, g.conj().transpose(0, 1)) if ctx.needs_input_grad[0] else None
        grad_g = _mix(grad_y.transpose(0, 1), x.conj().transpose(0, 1)) if ctx.needs_input_grad[1] else None
        return grad_x, grad_g


def _mix_channels(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``y[b, o, p] = sum_c x[b, c, p] g[o, c, p]`` (complex ``(B, C, P)``, ``(O, C, P)`` -> ``(B, O, P)``)."""
    return _ChannelMix.apply(x, g)


def causal_conv2d_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(F.pad(x, (k_t - 1, 0)), weight, bias)`` computed in the frequency domain.

    x: ``(B, C, F, T)``; weight: ``(O, C, k_f, k_t)`` (a ``Conv2d`` weight: cross-correlation,
    no padding in frequency, ``k_t - 1`` zeros before the first bin); bias ``(O,)`` or None.
    Returns ``(B, O, F - k_f + 1, T)``, equal to the convolution up to float rounding.

    The cross-correlation is a full 2-D convolution with the kernel flipped in both axes;
    its output row ``f + k_f - 1`` is the valid row f. A transform of ``F`` rows wraps only
    into the first ``k_f - 1`` rows, which are dropped, so no frequency padding is needed;
    time is padded to ``>= T + k_t - 1`` bins. The work is one product per input channel
    and transform point instead of ``k_f k_t`` multiply-adds per output point: for the
    NS1 2D-CNN ((6, 15) kernels, 10 channels) a forward + backward of a block costs ~0.6x
    the direct convolution on one CPU thread; for (3, 7) kernels the direct one is faster
    (``benchmarks/README.md``).
    """
    b, c, f, t = x.shape
    o, c_w, k_f, k_t = weight.shape
    if c_w != c or k_f > f:
        raise ValueError(f"expected a weight (O, C={c}, k_f <= F={f}, k_t), got {tuple(weight.shape)}")
    n = fast_fft_length(t + k_t - 1)
    spec_x = torch.fft.rfft2(x, s=(f, n))  # (B, C, F, W)
    spec_w = torch.fft.rfft2(weight.flip(-2, -1), s=(f, n))  # (O, C, F, W)
    n_w = spec_x.shape[-1]
    spec_y = _mix_channels(spec_x.reshape(b, c, f * n_w), spec_w.reshape(o, c, f * n_w)).reshape(b, o, f, n_w)
    y = torch.fft.irfft2(spec_y, s=(f, n))[:, :, k_f - 1:, :t]
    return y if bias is None else y + bias[:, None, None]


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
    n_fft = fast_fft_length(2 * t_len - 1)
    spec = padded_rfft(s, n_fft) * padded_rfft(kernel, n_fft)
    return torch.fft.irfft(spec, n=n_fft, dim=-1)[..., :t_len]
