"""CPU-fast forms of the models' two convolutions, with the same values as ``F.conv2d``.

On a CPU, oneDNN's ``conv2d`` backward is 5-15x slower than its forward for the shapes of
the paper's models at batch 1 (NS1 protocol; ``benchmarks/bench_upstream.py``), while its
forward and BLAS matrix products are fast. Two replacements, used by the models when they
pay off (outside ``torch.func.vmap``, whose stacked single units keep ``conv2d``):

* :func:`strf_by_lag_products`: a bank of STRFs ``(U, C, F, K)`` applied causally as one
  matrix product ``(K U, C F) @ (C F, T + K - 1)`` followed by a sum of K shifted rows
  (:class:`_LagSum`); its backward is two matrix products. Cost ``K U`` rows: used when
  ``U <= C F`` (an NRF's 20 hidden units; not a population of hundreds of neurons).
* :func:`conv2d_forward_backward`: ``F.conv2d`` (valid, stride 1) whose backward is made of
  forward convolutions: the input gradient is the correlation of the zero-padded output
  gradient with the flipped, transposed kernels, the weight gradient the correlation of
  the input with the output gradient (batch as channels). :class:`LeanConv2d` is the
  ``nn.Conv2d`` that uses it (same parameters, state-dict keys and hooks); the 2D-CNN's
  large kernels use it (it is slower than oneDNN for small kernels such as (3, 7)).

Shapes: B batch, C channels, F bands, T bins, K lags, U units.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["STRF_IMPLEMENTATIONS", "inside_vmap", "strf_by_lag_products", "lag_products_pay_off", "conv2d_forward_backward",
           "LeanConv2d"]

#: the ``implementation`` choices of Linear / LN and ConvNet2D: "auto" (the faster of the two for the
#: batch), "conv" (direct convolution) or "fft" (frequency domain); the values are the same
STRF_IMPLEMENTATIONS = ("auto", "conv", "fft")


def inside_vmap(t: torch.Tensor) -> bool:
    """Whether ``t`` is a ``torch.func.vmap`` wrapper (vmap cannot query memory formats)."""
    try:
        t.is_contiguous(memory_format=torch.channels_last)
    except RuntimeError:  # "NYI: querying is_contiguous inside of vmap for memory_format ..."
        return True
    return False


class _LagSum(torch.autograd.Function):
    """``y[b, u, t] = sum_k z[k, u, b, t + K - 1 - k]``: z ``(K, U, B, T + K - 1)``, contiguous -> ``(B, U, T)``.

    Forward: one reduction over a strided view of z's storage that steps one row forward and
    one bin back per lag (no copy of z). Backward: ``dz[k, u, b, s] = dy[b, u, s + k - (K - 1)]``
    (zero outside), a strided view of the gradient padded by ``K - 1`` zeros on both sides,
    made contiguous (one copy).
    """

    @staticmethod
    def forward(z, n_bins):
        k, u, b, padded = z.shape
        view = z.as_strided((k, b, u, n_bins), (u * b * padded - 1, padded, b * padded, 1), z.storage_offset() + k - 1)
        return view.sum(0)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.padded = inputs[0].shape[-1]

    @staticmethod
    def backward(ctx, grad):
        b, u, n_bins = grad.shape
        k = ctx.padded - n_bins + 1
        gpad = F.pad(grad, (k - 1, k - 1)).contiguous()  # (B, U, T + 2 K - 2)
        width = gpad.shape[-1]
        return gpad.as_strided((k, u, b, ctx.padded), (1, width, u * width, 1)).contiguous(), None


def lag_products_pay_off(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`strf_by_lag_products` is the faster form: on a CPU, outside vmap,
    with at most ``C F`` units (its intermediate holds ``K U`` rows per stimulus)."""
    u, c, f, _ = weight.shape
    return x.device.type == "cpu" and u <= c * f and not inside_vmap(weight) and not inside_vmap(x)


def strf_by_lag_products(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``y[b, u, t] = bias[u] + sum_{c,f,k} weight[u, c, f, k] x[b, c, f, t - k]`` (zero before
    the first bin) as one matrix product over the lags and a shifted sum.

    x: ``(B, C, F, T)``; weight: ``(U, C, F, K)`` in lag order; bias: ``(U,)`` or None.
    Returns ``(B, U, T)``, equal to ``causal_strf_conv`` up to float rounding.
    """
    b, c, f, t = x.shape
    u, _, _, k = weight.shape
    xp = F.pad(x, (k - 1, 0)).reshape(b, c * f, t + k - 1).transpose(0, 1)  # (C F, B, T + K - 1)
    rows = weight.permute(3, 0, 1, 2).reshape(k * u, c * f)  # row k U + u: unit u at lag k
    # one 2-D product, its result in the layout the lag sum reads (no transposing copy; a view for B = 1)
    z = (rows @ xp.reshape(c * f, b * (t + k - 1))).view(k, u, b, t + k - 1)
    y = _LagSum.apply(z, t)
    return y if bias is None else y + bias[:, None]


class _Conv2dForwardBackward(torch.autograd.Function):
    """``F.conv2d(x, w, b)`` (valid, stride 1) with a backward made of forward convolutions."""

    @staticmethod
    def forward(x, weight, bias):
        return F.conv2d(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        kh, kw = weight.shape[-2:]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(F.pad(grad, (kw - 1, kw - 1, kh - 1, kh - 1)), weight.flip(2, 3).transpose(0, 1))
        if ctx.needs_input_grad[1]:
            grad_w = F.conv2d(x.transpose(0, 1), grad.transpose(0, 1)).transpose(0, 1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b


def conv2d_forward_backward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` (no padding, stride 1, no groups): x ``(B, C, H, W)``,
    weight ``(O, C, kh, kw)`` -> ``(B, O, H - kh + 1, W - kw + 1)``; same values and gradients,
    with the backward as forward convolutions (several times faster on a CPU at batch 1)."""
    return _Conv2dForwardBackward.apply(x, weight, bias)


class LeanConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose backward, for NCHW inputs on a CPU outside ``torch.func.vmap``, is
    :func:`conv2d_forward_backward` (same values; for stride 1, no padding, dilation or
    groups, as the 2D-CNN's blocks). Other inputs take ``nn.Conv2d``'s own path."""

    def _conv_forward(self, input, weight, bias):
        plain = (self.stride == (1, 1) and self.padding == (0, 0) and self.dilation == (1, 1) and self.groups == 1
                 and self.padding_mode == "zeros")
        if plain and input.device.type == "cpu" and not inside_vmap(input) and input.is_contiguous():
            return conv2d_forward_backward(input, weight, bias)
        return super()._conv_forward(input, weight, bias)
