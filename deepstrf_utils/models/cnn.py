"""The 2D convolutional networks: ``ConvNet2D`` (deepSTRF's 2D-CNN, used in the AdapTrans paper:
37,276 parameters on NS1 with AdapTrans) and ``PopulationCNN`` (Pennington & David 2023's NAT4
population CNN: 21,360 shared parameters + 95 per neuron).

Their BatchNorm layers take the statistics of a training batch over its VALID bins only when
given the stimuli's ``lengths`` (:class:`~.layers.MaskedBatchNorm2d`; ``fit`` passes them for
every padded batch), so zero padding never enters them; in eval mode they are exactly causal.

Shapes: B batch, C prefilter channels (2 with AdapTrans), F bands, T bins, N neurons, H hidden units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..shapes import check_int, check_number
from ..spectral import causal_conv2d_fft
from .base import ResponseModel, check_pair
from .fastconv import STRF_IMPLEMENTATIONS, LeanConv2d, inside_vmap
from .layers import (ConvBeforeNorm2d, DoubleExponential, LeanConvBeforeNorm2d, MaskedBatchNorm2d, ParametricSigmoid,
                     valid_mask)
from .readouts import DenseSigmoidReadout, LinearReadout

__all__ = ["ConvNet2D", "PopulationCNN", "FFT_CONV_MIN_TAPS", "CHANNELS_LAST_MIN_BATCH"]

#: under ConvNet2D's implementation="auto" on a CPU, batches of at least 2 stimuli with kernels of
#: at least this many taps (k_f x k_t) run in the frequency domain (measured, 1 thread: (6, 15)
#: 2.5-5x faster than Conv2d for 8-12 stimuli; 1.4x slower for one; (3, 7) never faster)
FFT_CONV_MIN_TAPS = 48
#: the direct path runs on channels-last tensors on a CPU from this many stimuli on: oneDNN's
#: channels-last backward is ~2x faster for batches but 10-25x SLOWER for 1-2 stimuli with
#: 10 channels and (6, 15) kernels (the NS1 protocol's batch of 1) (benchmarks/README.md)
CHANNELS_LAST_MIN_BATCH = 4

class _ConvModel(ResponseModel):
    """Shared sizes of the 2D-CNN models: ``kernel_size`` (k_f, k_t), ``channels``, ``hidden``, ``n_blocks``."""

    def _conv_sizes(self, kernel_size, channels, hidden, n_blocks) -> None:
        self.kernel_size = check_pair(kernel_size, "kernel_size")
        self.channels = check_int(channels, "channels", 1)
        self.n_hidden = check_int(hidden, "hidden", 1)
        self.n_blocks = check_int(n_blocks, "n_blocks", 1)

    @property
    def core_receptive_field(self) -> int:
        """``n_blocks * (k_t - 1) + 1`` bins: each causal convolution adds ``k_t - 1``."""
        return int(self.n_blocks) * (int(self.kernel_size[1]) - 1) + 1


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
        return self._conv_features(self.prefiltered(x), lengths)

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

    #: the per-neuron dense readout, its level shift and double exponential
    readout_attributes = ("readout", "level_shift", "output_nonlinearity")
    readout_nonlinearity = "double_exponential"

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

    def linear_readout(self) -> LinearReadout:
        """The readout as a :class:`~.readouts.LinearReadout` (the level shift as its bias)."""
        return LinearReadout.copy_of(self.readout.weight[:, :, 0], self.level_shift, "double_exponential",
                                     self.output_nonlinearity)
