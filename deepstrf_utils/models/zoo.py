"""Response models: spectrogram ``(B, 1, F, T)`` -> firing rate ``(B, N, T)``.

Every model is a plain ``nn.Module`` made of a **prefilter** (none, AdapTrans or Willmore's
high-pass), a **core** and a **readout**, and is strictly causal in time: the prediction at
bin ``t`` depends on inputs at bins ``<= t`` only (left padding only; an upstream version
padded symmetrically and let its models see 4 future frames).

=========================  ================================================================
``Linear``                 STRF (C, F, K) + bias per neuron
``LinearNonlinear``        Linear + per-neuron parametric output nonlinearity
``NetworkReceptiveField``  Harper et al. (2016): H sigmoid hidden STRF units -> sigmoid output
``DNet``                   Rahman et al. (2019): NRF with leaky-integrator units
``ConvNet2D``              deepSTRF 2D-CNN used in the AdapTrans paper (37,276 params, NS1)
``StateNet``               Rancon et al. (2025): locally connected layer -> GRU / LSTM
``PopulationCNN``          Pennington & David (2023) NAT4 population CNN (21,360 shared params)
=========================  ================================================================

Models with BatchNorm (``ConvNet2D``, ``StateNet``) take the normalisation statistics of a
training batch over its VALID bins only when given the stimuli's ``lengths``
(:class:`~.layers.MaskedBatchNorm2d`; ``fit`` passes them for every padded batch), so
zero padding of shorter stimuli never enters them; in eval mode (running statistics) they
are exactly causal. Every model's ``forward(x, lengths=None)`` and
``forward_core(z, lengths=None)`` accept the lengths; the models without BatchNorm ignore
them (causal, their valid bins never read the padding).

Shapes: B batch, C prefilter channels (2 with AdapTrans), F bands, T bins, K lags,
N neurons, H hidden units, R repeats.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..shapes import check_number
from ..spectral import causal_conv2d_fft, causal_strf_fft, leaky_integrate, prefiltered_strf_fft
from .base import ResponseModel, _pair, _positive_int
from .fastconv import LeanConv2d, inside_vmap
from .layers import (
    ConvBeforeNorm2d,
    LeanConvBeforeNorm2d,
    DoubleExponential,
    LocallyConnectedFrequency,
    MaskedBatchNorm2d,
    NoPrefilter,
    ParametricNonlinearity,
    ParametricSigmoid,
    as_per_neuron,
    causal_strf_conv,
    valid_mask,
)

__all__ = ["Linear", "LinearNonlinear", "NetworkReceptiveField", "DNet", "ConvNet2D", "StateNet", "PopulationCNN"]

STRF_IMPLEMENTATIONS = ("auto", "conv", "fft")
#: under ConvNet2D's implementation="auto" on a CPU, batches of at least 2 stimuli with kernels of
#: at least this many taps (k_f x k_t) run in the frequency domain (measured, 1 thread: (6, 15)
#: 2.5-5x faster than Conv2d for 8-12 stimuli; 1.4x slower for one; (3, 7) never faster)
FFT_CONV_MIN_TAPS = 48
#: the direct path runs on channels-last tensors on a CPU from this many stimuli on: oneDNN's
#: channels-last backward is ~2x faster for batches but 10-25x SLOWER for 1-2 stimuli with
#: 10 channels and (6, 15) kernels (the NS1 protocol's batch of 1) (benchmarks/README.md)
CHANNELS_LAST_MIN_BATCH = 4


# ----------------------------------------------------------------------------------------
# L, LN
# ----------------------------------------------------------------------------------------
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
        self.n_lags = _positive_int(n_lags, "n_lags")
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
        return self.forward_core(self._prefiltered(x))

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


# ----------------------------------------------------------------------------------------
# NRF, DNet
# ----------------------------------------------------------------------------------------
class NetworkReceptiveField(ResponseModel):
    """Network receptive field (Harper et al. 2016).

    H hidden units, each ``sigmoid(STRF_h * x' + b_h)`` with its own STRF ``(C, F, K)``;
    output ``r_n = ParametricSigmoid(sum_h v[n, h] h_h + b_n)``. Parameters:
    ``weight (H, C, F, K)``, ``bias (H,)``, ``out_weight (N, H)``, ``out_bias (N,)``, 3 per
    neuron in ``output_nonlinearity``.

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    def __init__(
        self, n_bands, n_neurons=1, n_hidden=20, n_lags=20, prefilter=None, prefilter_kwargs=None, dt_ms=5.0,
    ):
        super().__init__()
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self.n_hidden = _positive_int(n_hidden, "n_hidden")
        self.n_lags = _positive_int(n_lags, "n_lags")
        bound = 1.0 / math.sqrt(self.in_channels * self.n_bands * self.n_lags)
        self.weight = nn.Parameter(
            torch.empty(self.n_hidden, self.in_channels, self.n_bands, self.n_lags).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(self.n_hidden).uniform_(-bound, bound))
        out_bound = 1.0 / math.sqrt(self.n_hidden)
        self.out_weight = nn.Parameter(torch.empty(self.n_neurons, self.n_hidden).uniform_(-out_bound, out_bound))
        self.out_bias = nn.Parameter(torch.empty(self.n_neurons).uniform_(-out_bound, out_bound))
        self.output_nonlinearity = ParametricSigmoid(self.n_neurons)
        self._set_config(prefilter, prefilter_kwargs, n_hidden=self.n_hidden, n_lags=self.n_lags)

    def _strf_units(self, z: torch.Tensor) -> torch.Tensor:
        """Sigmoid STRF units: z ``(B, C, F, T)`` -> ``(B, H, T)``."""
        return torch.sigmoid(causal_strf_conv(z, self.weight, self.bias))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden-unit activities: x ``(B, 1, F, T)`` -> ``(B, H, T)``."""
        return self._strf_units(self._prefiltered(x))

    def forward_core(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The hidden layer on a prefilter output: z ``(B, C, F, T)`` -> ``(B, H, T)``."""
        return self._strf_units(z)

    def _readout_drive(self, h: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nh,bht->bnt", self.out_weight, h) + self.out_bias[:, None]

    def forward_readout(self, h: torch.Tensor) -> torch.Tensor:
        """Per-neuron weighted sum of the hidden units, then the output sigmoid: ``(B, H, T) -> (B, N, T)``."""
        return self.output_nonlinearity(self._readout_drive(h))

    def strf(self) -> torch.Tensor:
        """Hidden-unit STRFs ``(H, C, F, K)``, ``[..., k]`` = weight of the input at lag k."""
        return self.weight.clone()

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: output nonlinearity centred on ``mean`` with gain ``std``."""
        self.out_bias.zero_()
        self.output_nonlinearity.init_output(mean, std)


class DNet(NetworkReceptiveField):
    """DNet (Rahman et al. 2019): an NRF whose hidden and output units are leaky integrators.

    hidden: ``u_t = (1 - k_h) u_{t-1} + k_h sigmoid(z_t)``, ``z = STRF_h * x' + b_h``;
    output: ``v_t = (1 - k_n) v_{t-1} + k_n sigmoid(b_n z'_t)``, ``z' = W u + b``, and
    ``r = a_n v + c_n`` (the 3-parameter :class:`ParametricSigmoid` with the integrator
    between its sigmoid and its affine output). ``k = 1 / (1 + d^2)`` per unit, learnable
    (``hidden_d (H,)``, ``output_d (N,)``), initialised to ``k_init``. Zero initial state;
    the recursion is evaluated exactly and vectorised (:func:`leaky_integrate`).

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    def __init__(
        self, n_bands, n_neurons=1, n_hidden=20, n_lags=20, prefilter=None, prefilter_kwargs=None, dt_ms=5.0,
        k_init=0.5,
    ):
        super().__init__(n_bands, n_neurons, n_hidden, n_lags, prefilter, prefilter_kwargs, dt_ms)
        # k = 1 means d = 0, where dk/dd = 0: the rate could never move
        k_init = check_number(k_init, "k_init (the initial integration rate)", 0.0, 1.0, True, True)
        d0 = math.sqrt(1.0 / k_init - 1.0)
        self.hidden_d = nn.Parameter(torch.full((self.n_hidden,), d0))
        self.output_d = nn.Parameter(torch.full((self.n_neurons,), d0))
        self._set_config(prefilter, prefilter_kwargs, n_hidden=self.n_hidden, n_lags=self.n_lags, k_init=float(k_init))

    @property
    def hidden_k(self) -> torch.Tensor:
        """Hidden integration rates ``k = 1 / (1 + d^2)``, ``(H,)``."""
        return 1.0 / (1.0 + self.hidden_d**2)

    @property
    def output_k(self) -> torch.Tensor:
        """Output integration rates ``k = 1 / (1 + d^2)``, ``(N,)``."""
        return 1.0 / (1.0 + self.output_d**2)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Leaky-integrated hidden activities: x ``(B, 1, F, T)`` -> ``(B, H, T)``."""
        return leaky_integrate(super().hidden(x), self.hidden_k)

    def forward_core(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Leaky-integrated hidden layer on a prefilter output: z ``(B, C, F, T)`` -> ``(B, H, T)``."""
        return leaky_integrate(self._strf_units(z), self.hidden_k)

    def forward_readout(self, h: torch.Tensor) -> torch.Tensor:
        """Weighted sum, sigmoid, output leaky integrator, affine output: ``(B, H, T) -> (B, N, T)``."""
        z = self._readout_drive(h)
        v = leaky_integrate(self.output_nonlinearity.inner(z), self.output_k)
        return self.output_nonlinearity.outer(v)


# ----------------------------------------------------------------------------------------
# 2D CNNs
# ----------------------------------------------------------------------------------------
class DenseSigmoidReadout:
    """The readout of ConvNet2D and the Transformer: a per-neuron dense layer over the features
    (``self.readout``, a 1 x 1 ``Conv1d``) and ``self.output_nonlinearity`` (ParametricSigmoid)."""

    def forward_readout(self, h: torch.Tensor) -> torch.Tensor:
        """Per-neuron dense readout and output sigmoid: ``(B, H, T) -> (B, N, T)``."""
        return self.output_nonlinearity(self.readout(h))

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: output sigmoid centred on ``mean`` with gain ``std``."""
        self.readout.bias.zero_()
        self.output_nonlinearity.init_output(mean, std)


class _ConvModel(ResponseModel):
    """Shared sizes of the 2D-CNN models: ``kernel_size`` (k_f, k_t), ``channels``, ``hidden``, ``n_blocks``."""

    def _conv_sizes(self, kernel_size, channels, hidden, n_blocks) -> None:
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.channels = _positive_int(channels, "channels")
        self.n_hidden = _positive_int(hidden, "hidden")
        self.n_blocks = _positive_int(n_blocks, "n_blocks")


class ConvNet2D(DenseSigmoidReadout, _ConvModel):
    """deepSTRF's 2D-CNN (as used in the AdapTrans paper).

    ``n_blocks`` x [Conv2d(kernel (k_f, k_t), ``channels`` filters, no padding in frequency,
    causal left padding ``k_t - 1`` in time) -> BatchNorm2d -> LeakyReLU(0.1)], then per
    time bin: flatten (channels x F', F' = F - n_blocks (k_f - 1)) -> Linear(hidden) ->
    LeakyReLU(0.1) -> Linear(N) -> :class:`ParametricSigmoid`. The per-bin dense layers are
    1 x 1 convolutions over the flattened features (no reshape copies).
    NS1 (F = 34, (6, 15), AdapTrans, N = 1): 37,276 parameters; NAT4 (F = 18, (3, 7)): 15,748.

    The convolutions (:class:`~.layers.ConvBeforeNorm2d`) keep their bias parameters
    (``convs.<i>.bias``, counted in those published numbers) at exactly zero and outside the
    gradient: the BatchNorm after each convolution removes any constant per channel, so
    their true gradient is 0, and an optimiser would move them only on float rounding noise
    (AdamW scales that noise up to full-size steps, differently in stacked and looped fits).
    A checkpoint with non-zero biases loads and computes what it computed before.

    ``implementation``: how the convolution blocks are computed (:meth:`conv_path`), the same
    output up to float rounding: ``"conv"`` (``Conv2d``), ``"fft"``
    (:func:`~deepstrf_utils.spectral.causal_conv2d_fft`) or ``"auto"`` (default: "fft" on a
    CPU for batches of 2+ stimuli and kernels of at least :data:`FFT_CONV_MIN_TAPS` taps, e.g.
    NS1's (6, 15), else "conv").

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    def __init__(
        self, n_bands, n_neurons=1, kernel_size=(6, 15), channels=10, hidden=90, n_blocks=3,
        prefilter=None, prefilter_kwargs=None, dt_ms=5.0, negative_slope=0.1, implementation="auto",
    ):
        super().__init__()
        if implementation not in STRF_IMPLEMENTATIONS:
            raise ValueError(f"expected implementation in {STRF_IMPLEMENTATIONS}, got {implementation!r}")
        self.implementation = implementation
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self._conv_sizes(kernel_size, channels, hidden, n_blocks)
        self.negative_slope = check_number(negative_slope, "negative_slope")
        k_f, k_t = self.kernel_size
        self.out_bands = self.n_bands - self.n_blocks * (k_f - 1)
        if self.out_bands < 1:
            raise ValueError(
                f"expected n_bands > n_blocks * (k_f - 1) = {self.n_blocks * (k_f - 1)} (no frequency padding), "
                f"got n_bands={self.n_bands}"
            )
        # same parameters and keys as nn.Conv2d; the bias before BatchNorm is a constant (class docstring)
        conv = LeanConvBeforeNorm2d if k_f * k_t >= FFT_CONV_MIN_TAPS else ConvBeforeNorm2d
        self.convs = nn.ModuleList(
            conv(self.in_channels if i == 0 else self.channels, self.channels, self.kernel_size)
            for i in range(self.n_blocks)
        )
        self.norms = nn.ModuleList(MaskedBatchNorm2d(self.channels) for _ in range(self.n_blocks))
        self.dense = nn.Conv1d(self.channels * self.out_bands, self.n_hidden, 1)
        self.readout = nn.Conv1d(self.n_hidden, self.n_neurons, 1)
        self.output_nonlinearity = ParametricSigmoid(self.n_neurons)
        self._set_config(
            prefilter, prefilter_kwargs, kernel_size=self.kernel_size, channels=self.channels,
            hidden=self.n_hidden, n_blocks=self.n_blocks, negative_slope=self.negative_slope,
            implementation=implementation,
        )

    def conv_path(self, device: torch.device | str = "cpu", batch: int = 2) -> str:
        """``"fft"`` or ``"conv"``: how the convolution blocks run for ``batch`` stimuli on ``device`` (see the class)."""
        if self.implementation != "auto":
            return self.implementation
        big = self.kernel_size[0] * self.kernel_size[1] >= FFT_CONV_MIN_TAPS
        return "fft" if big and batch >= 2 and torch.device(device).type == "cpu" else "conv"

    def _conv_features(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The convolution blocks: z ``(B, C, F, T)`` -> ``(B, channels, F', T)`` (contiguous);
        BatchNorm statistics over the valid bins of ``lengths`` ``(B,)`` (None: every bin).

        :meth:`conv_path` "fft": :func:`~deepstrf_utils.spectral.causal_conv2d_fft`. "conv"
        on a CPU: kernels of at least :data:`FFT_CONV_MIN_TAPS` taps (NS1's (6, 15)) are
        :class:`~.fastconv.LeanConv2d` modules, whose backward is made of forward
        convolutions on NCHW tensors (3x faster than oneDNN's at batch 1, 1.6x than its
        channels-last backward at batch 4); smaller kernels run on channels-last tensors for
        batches of :data:`CHANNELS_LAST_MIN_BATCH` stimuli or more (oneDNN's backward is ~2x
        faster there than on NCHW tensors, and pathologically slow for one or two stimuli).
        The values are the same. Inside ``torch.func.vmap`` (stacked single units), which
        cannot query memory formats, they stay plain NCHW Conv2d.
        """
        mask = valid_mask(lengths, z.shape[0], z.shape[-1])
        if self.conv_path(z.device, z.shape[0]) == "fft":
            for conv, norm in zip(self.convs, self.norms):
                z = F.leaky_relu(norm(causal_conv2d_fft(z, conv.weight, conv.fixed_bias), mask), self.negative_slope)
            return z
        lean = isinstance(self.convs[0], LeanConv2d)  # large kernels: NCHW, backward as forward convolutions
        if z.device.type == "cpu" and z.shape[0] >= CHANNELS_LAST_MIN_BATCH and not lean and not inside_vmap(z):
            z = z.contiguous(memory_format=torch.channels_last)
        pad = (self.kernel_size[1] - 1, 0)
        for conv, norm in zip(self.convs, self.norms):
            z = F.leaky_relu(norm(conv(F.pad(z, pad)), mask), self.negative_slope)
        return z.contiguous()

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Convolutional features: x ``(B, 1, F, T)`` -> ``(B, channels, F', T)``."""
        return self._conv_features(self._prefiltered(x), lengths)

    def forward_core(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Convolutions and the shared dense layer: z ``(B, C, F, T)`` -> ``(B, hidden, T)``.

        lengths ``(B,)``: valid bins of each stimulus of a padded batch (on z's device), so
        that BatchNorm's training statistics skip the padding; None: every bin is valid.
        """
        h = self._conv_features(z, lengths).flatten(1, 2)  # (B, channels * F', T), a view
        return F.leaky_relu(self.dense(h), self.negative_slope)


class PopulationCNN(_ConvModel):
    """Pennington & David (2023) population CNN (NAT4), NEMS keyword
    ``conv2d.10.8x3.rep3-wcn.90-relu.90-wc.90xR-lvl.R-dexp.R``.

    ``n_blocks`` x [Conv2d(``channels`` filters, kernel (k_f, k_t) = (3, 8), causal in time,
    same-padded in frequency) -> ReLU] -> per time bin: flatten (channels x F) -> dense
    ``hidden`` without bias (``wcn.90``) -> ReLU with a learnable threshold per hidden unit,
    ``relu(h - threshold)`` (``relu.90``; ``threshold (hidden,)``, initialised to 0) -> dense
    ``hidden`` -> N without bias (``wc.90xR``) -> per-neuron level shift (``lvl.R``) ->
    per-neuron :class:`DoubleExponential` (``dexp.R``, ``self.output_nonlinearity``; frozen in
    the first stage of :func:`~deepstrf_utils.training.fit_two_stage`). Sizes: conv
    ``(1*24+1)*10 + 2*(10*24+1)*10 = 5,070``, dense ``10*F*90`` (16,200 for F = 18),
    thresholds 90: 21,360 shared parameters for NAT4's 18 bands (no prefilter), + 95 per neuron
    (90 readout weights, 1 level, 4 double-exponential). NAT4 bins are 10 ms (``dt_ms``).

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    def __init__(
        self, n_bands, n_neurons=1, kernel_size=(3, 8), channels=10, hidden=90, n_blocks=3,
        prefilter=None, prefilter_kwargs=None, dt_ms=10.0,
    ):
        super().__init__()
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self._conv_sizes(kernel_size, channels, hidden, n_blocks)
        k_f, k_t = self.kernel_size
        self._pad = (k_t - 1, 0, (k_f - 1) // 2, k_f // 2)  # (time left, time right, freq low, freq high)
        self.convs = nn.ModuleList(
            nn.Conv2d(self.in_channels if i == 0 else self.channels, self.channels, self.kernel_size)
            for i in range(self.n_blocks)
        )
        self.dense = nn.Conv1d(self.channels * self.n_bands, self.n_hidden, 1, bias=False)
        self.threshold = nn.Parameter(torch.zeros(self.n_hidden))
        self.readout = nn.Conv1d(self.n_hidden, self.n_neurons, 1, bias=False)
        self.level_shift = nn.Parameter(torch.zeros(self.n_neurons))
        self.output_nonlinearity = DoubleExponential(self.n_neurons)
        self._set_config(
            prefilter, prefilter_kwargs, kernel_size=self.kernel_size, channels=self.channels,
            hidden=self.n_hidden, n_blocks=self.n_blocks,
        )

    def forward_core(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Convolutions and the shared dense layer: z ``(B, C, F, T)`` -> ``(B, hidden, T)``."""
        for conv in self.convs:
            z = torch.relu(conv(F.pad(z, self._pad)))
        return torch.relu(self.dense(z.flatten(1, 2)) - self.threshold[:, None])

    def forward_readout(self, h: torch.Tensor) -> torch.Tensor:
        """Per-neuron dense readout, level shift, double exponential: ``(B, hidden, T) -> (B, N, T)``."""
        return self.output_nonlinearity(self.readout(h) + self.level_shift[:, None])

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: double exponential centred on ``mean`` with slope ``std``."""
        self.level_shift.zero_()
        self.output_nonlinearity.init_output(mean, std)


# ----------------------------------------------------------------------------------------
# StateNet
# ----------------------------------------------------------------------------------------
class StateNet(ResponseModel):
    """StateNet (Rancon et al. 2025): per-frame locally connected layer -> recurrent core.

    Per time bin: :class:`LocallyConnectedFrequency` (``channels`` = 7 outputs, kernel 7,
    stride 3, unshared weights per position, bias) -> BatchNorm over the channels ->
    sigmoid -> flatten (channels x P; P = 10 for 34 bands) -> GRU or LSTM (hidden
    ``channels * P`` unless given) -> Linear(N). NS1 (34 bands, GRU, no prefilter, N = 1):
    30,465 parameters. Zero initial recurrent state.

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    def __init__(
        self, n_bands, n_neurons=1, rnn="gru", channels=7, kernel=7, stride=3, hidden=None,
        prefilter=None, prefilter_kwargs=None, dt_ms=5.0,
    ):
        super().__init__()
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        if rnn not in ("gru", "lstm"):
            raise ValueError(f"expected rnn 'gru' or 'lstm', got {rnn!r}")
        self.rnn_type = rnn
        self.channels = _positive_int(channels, "channels")
        self.local = LocallyConnectedFrequency(
            self.in_channels, self.channels, self.n_bands, _positive_int(kernel, "kernel"), _positive_int(stride, "stride")
        )
        self.n_positions = self.local.n_positions
        n_features = self.channels * self.n_positions
        self.n_hidden = n_features if hidden is None else _positive_int(hidden, "hidden")
        self.norm = MaskedBatchNorm2d(self.channels)
        rnn_cls = nn.GRU if rnn == "gru" else nn.LSTM
        self.rnn = rnn_cls(n_features, self.n_hidden, batch_first=True)
        self.readout = nn.Linear(self.n_hidden, self.n_neurons)
        self._set_config(
            prefilter, prefilter_kwargs, rnn=rnn, channels=self.channels, kernel=self.local.kernel,
            stride=self.local.stride, hidden=self.n_hidden,
        )

    def forward_core(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Locally connected layer and recurrent layer: z ``(B, C, F, T)`` -> ``(B, hidden, T)``.

        lengths ``(B,)``: valid bins of each stimulus of a padded batch (on z's device), so
        that BatchNorm's training statistics skip the padding; None: every bin is valid.
        """
        return self.recurrent_output(self.recurrent_input(z, lengths))

    def recurrent_input(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Everything before the recurrence, bin by bin: z ``(B, C, F, T)`` -> ``(B, T, O * P)``
        (locally connected layer, BatchNorm over the valid bins, sigmoid)."""
        mask = valid_mask(lengths, z.shape[0], z.shape[-1])
        h = torch.sigmoid(self.norm(self.local(z), mask))  # (B, O, P, T)
        b, o, p, t = h.shape
        return h.permute(0, 3, 1, 2).reshape(b, t, o * p)

    def recurrent_output(self, h: torch.Tensor) -> torch.Tensor:
        """The recurrent layer from a zero state: ``(B, T, O * P)`` -> ``(B, hidden, T)`` (a view).
        Training on chunks of the sequence (:mod:`deepstrf_utils.training.chunks`) calls
        :meth:`recurrent_input` on whole stimuli and this on the chunks."""
        h, _ = self.rnn(h)  # (B, T, hidden)
        return h.transpose(1, 2)

    def forward_readout(self, h: torch.Tensor) -> torch.Tensor:
        """Per-neuron linear readout: ``(B, hidden, T) -> (B, N, T)``."""
        return self.readout(h.transpose(1, 2)).transpose(1, 2)

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: readout bias = target mean, weights scaled by ``std``."""
        std = as_per_neuron(std, self.n_neurons, "std").clamp_min(1e-6).to(self.readout.weight)
        self.readout.weight.mul_(std[:, None])
        self.readout.bias.copy_(as_per_neuron(mean, self.n_neurons, "mean").to(self.readout.bias))
