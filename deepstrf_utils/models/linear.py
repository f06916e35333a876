"""The linear models: ``Linear`` (an STRF (C, F, K) + bias per neuron) and ``LinearNonlinear``
(the same with a per-neuron parametric output nonlinearity).

Causal: the prediction at bin ``t`` reads the prefiltered spectrogram at bins ``t - K + 1 .. t``
only. The STRF bank runs as a causal convolution, as matrix products over lags, or in the
frequency domain (fused with a linear AdapTrans), whichever is faster for the batch
(``implementation="auto"``); the values are the same to float rounding.

Shapes: B batch, C prefilter channels (2 with AdapTrans), F bands, T bins, K lags, N neurons.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..shapes import check_int
from ..spectral import causal_strf_fft, prefiltered_strf_fft
from .base import ResponseModel
from .fastconv import STRF_IMPLEMENTATIONS
from .layers import NoPrefilter, ParametricNonlinearity, ParametricSigmoid, as_per_neuron, causal_strf_conv

__all__ = ["Linear", "LinearNonlinear"]

class Linear(ResponseModel):
    """Linear STRF model: ``r[b, n, t] = bias[n] + sum_{c,f,k} w[n, c, f, k] x'[b, c, f, t - k]``.

    ``x'`` is the prefilter output ``(B, C, F, T)`` (C = 2 with AdapTrans). Inputs before
    the start count as zero. Parameters: ``weight (N, C, F, K)`` in lag order
    (``[..., k]`` = weight of the input ``k`` bins in the past), ``bias (N,)``.

    ``implementation``: ``"auto"`` (default), ``"conv"`` or ``"fft"``: how the STRF is
    applied (:meth:`strf_path`); every choice gives the same output up to float rounding.
    With an un-rectified AdapTrans, "auto" fuses AdapTrans and the STRF into one
    frequency-domain product whose stimulus transform is shared by all neurons, and by all
    vmapped single-unit models in ``training.fit_single_units`` (6x faster for one unit,
    ~40x for 64 stacked units on CPU than AdapTrans followed by conv2d).

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    def __init__(self, n_bands, n_neurons=1, n_lags=20, prefilter=None, prefilter_kwargs=None, dt_ms=5.0,
                 implementation="auto"):
        super().__init__()
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self.n_lags = check_int(n_lags, "n_lags", 1)
        if implementation not in STRF_IMPLEMENTATIONS:
            raise ValueError(f"expected implementation in {STRF_IMPLEMENTATIONS}, got {implementation!r}")
        self.implementation = implementation
        bound = 1.0 / math.sqrt(self.in_channels * self.n_bands * self.n_lags)
        self.weight = nn.Parameter(
            torch.empty(self.n_neurons, self.in_channels, self.n_bands, self.n_lags).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(self.n_neurons).uniform_(-bound, bound))
        self._set_config(prefilter, prefilter_kwargs, n_lags=self.n_lags, implementation=implementation)

    def _linear_prefilter(self) -> bool:
        """True when the prefilter is an un-rectified AdapTrans (a linear filter: fusable)."""
        from ..adaptrans import AdapTrans

        return isinstance(self.prefilter, AdapTrans) and self.prefilter.rectify is None

    def strf_path(self) -> str:
        """How :meth:`linear_drive` computes the STRF: ``"fused"``, ``"fft"`` or ``"conv"``.

        ``"fused"``: un-rectified AdapTrans and STRF as one frequency-domain product
        (:func:`~deepstrf_utils.spectral.prefiltered_strf_fft`); ``"fft"``: prefilter, then
        :func:`~deepstrf_utils.spectral.causal_strf_fft`; ``"conv"``: prefilter, then
        :func:`~deepstrf_utils.models.layers.causal_strf_conv`. All three give the same output up
        to float rounding. ``"auto"`` (and ``"fft"``) use "fused" whenever the prefilter is
        an un-rectified AdapTrans. Otherwise ``"auto"`` uses "conv" without a prefilter
        (the input is shared by all units, even across vmapped single-unit models, and a
        dense conv2d is fastest) and "fft" after any other prefilter (a per-unit prefilter
        output under vmap makes conv2d a grouped convolution, several times slower).
        """
        if self._linear_prefilter() and self.implementation != "conv":
            return "fused"
        shared_input = isinstance(self.prefilter, NoPrefilter)
        if self.implementation == "conv" or (self.implementation == "auto" and shared_input):
            return "conv"
        return "fft"

    def linear_drive(self, x: torch.Tensor) -> torch.Tensor:
        """The linear STRF output before any nonlinearity: x ``(B, 1, F, T)`` -> ``(B, N, T)``."""
        path = self.strf_path()
        if path == "fused":
            self._check_stimulus(x)
            kernels = self.prefilter.kernels().to(dtype=x.dtype)
            return prefiltered_strf_fft(x, kernels, self.weight, self.bias)
        return self.forward_core(self.prefiltered(x))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x ``(B, 1, F, T)`` -> predicted response ``(B, N, T)`` (``lengths`` ``(B,)``: ignored, causal).

        The core is the STRF bank (:meth:`linear_drive`, which takes the stimulus itself so
        that it can fuse an un-rectified AdapTrans with the STRFs); the readout is
        :meth:`forward_readout`.
        """
        return self.forward_readout(self.linear_drive(x))

    def forward_core(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The STRF bank on a prefilter output: z ``(B, C, F, T)`` -> ``(B, N, T)``."""
        if self.strf_path() == "fft":
            return causal_strf_fft(z, self.weight, self.bias)
        return causal_strf_conv(z, self.weight, self.bias)

    def forward_readout(self, h: torch.Tensor) -> torch.Tensor:
        """The readout of the linear model: the identity, h ``(B, N, T)`` -> ``(B, N, T)``."""
        return h

    def strf(self) -> torch.Tensor:
        """STRFs ``(N, C, F, K)``, ``[..., k]`` = weight of the input at lag k (k = 0: present).

        A copy that still carries the graph (usable in penalties); ``.detach()`` to plot.
        """
        return self.weight.clone()

    @torch.no_grad()
    def load_strf(self, strf, bias=None) -> None:
        """Set the weights from STRFs ``(N, C, F, K)`` in lag order and an optional bias ``(N,)``."""
        strf = torch.as_tensor(np.asarray(strf), dtype=self.weight.dtype)
        if tuple(strf.shape) != tuple(self.weight.shape):
            raise ValueError(f"expected STRFs of shape (N, C, F, K) = {tuple(self.weight.shape)}, got {tuple(strf.shape)}")
        self.weight.copy_(strf)
        if bias is not None:
            self.bias.copy_(as_per_neuron(bias, self.n_neurons, "bias").to(self.bias))

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: bias = per-neuron target mean (``std`` unused here)."""
        self.bias.copy_(as_per_neuron(mean, self.n_neurons, "mean").to(self.bias))

    @property
    def core_receptive_field(self) -> int:
        """The STRF's ``n_lags`` bins."""
        return int(self.n_lags)


class LinearNonlinear(Linear):
    """Linear STRF + per-neuron parametric output nonlinearity (LN model).

    ``r = a * g(b * (STRF * x') ) + c`` with ``g`` = ``nonlinearity`` in ``"sigmoid"`` (the
    3-parameter :class:`ParametricSigmoid`), ``"softplus"``, ``"exp"`` or ``"relu"``; the
    nonlinearity module is ``self.output_nonlinearity``.

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    def __init__(
        self, n_bands, n_neurons=1, n_lags=20, prefilter=None, prefilter_kwargs=None, dt_ms=5.0,
        nonlinearity="sigmoid", implementation="auto",
    ):
        super().__init__(n_bands, n_neurons, n_lags, prefilter, prefilter_kwargs, dt_ms, implementation)
        if nonlinearity == "sigmoid":
            self.output_nonlinearity = ParametricSigmoid(self.n_neurons)
        else:
            self.output_nonlinearity = ParametricNonlinearity(self.n_neurons, kind=nonlinearity)
        self._set_config(prefilter, prefilter_kwargs, n_lags=self.n_lags, nonlinearity=nonlinearity,
                         implementation=implementation)

    def forward_readout(self, h: torch.Tensor) -> torch.Tensor:
        """The per-neuron output nonlinearity: h ``(B, N, T)`` -> ``(B, N, T)``."""
        return self.output_nonlinearity(h)

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: zero STRF bias, nonlinearity centred on ``mean`` with gain ``std``."""
        self.bias.zero_()
        self.output_nonlinearity.init_output(mean, std)
