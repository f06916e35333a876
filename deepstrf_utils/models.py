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
``PopulationCNN``          Pennington & David (2023) NAT4 population CNN
=========================  ================================================================

Models with BatchNorm (``ConvNet2D``, ``StateNet``) pool the normalisation statistics over
all bins of the batch in training mode, as BatchNorm always does; in eval mode (running
statistics) they are exactly causal.

``fit_ridge_strf`` fits a Linear model to all neurons at once in closed form.

Shapes: B batch, C prefilter channels (2 with AdapTrans), F bands, T bins, K lags,
N neurons, H hidden units, R repeats.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    DoubleExponential,
    LocallyConnectedFrequency,
    NoPrefilter,
    ParametricNonlinearity,
    ParametricSigmoid,
    as_per_neuron,
    causal_strf_conv,
    causal_strf_fft,
    leaky_integrate,
    model_device,
    prefiltered_strf_fft,
)

__all__ = [
    "model_device",
    "Linear",
    "LinearNonlinear",
    "NetworkReceptiveField",
    "DNet",
    "ConvNet2D",
    "StateNet",
    "PopulationCNN",
    "ParametricSigmoid",
    "ParametricNonlinearity",
    "DoubleExponential",
    "leaky_integrate",
    "make_prefilter",
    "build_model",
    "count_parameters",
    "fit_ridge_strf",
    "MODELS",
]

logger = logging.getLogger(__name__)

PREFILTERS = ("adaptrans", "willmore")
STRF_IMPLEMENTATIONS = ("auto", "conv", "fft")


# ----------------------------------------------------------------------------------------
# shared plumbing
# ----------------------------------------------------------------------------------------
#: Rectification of AdapTrans when a model is built with ``prefilter="adaptrans"``.
MODEL_ADAPTRANS_RECTIFY = "relu"


def make_prefilter(prefilter, n_bands: int, dt_ms: float = 5.0, **prefilter_kwargs) -> nn.Module:
    """Build the prefilter of a model.

    prefilter: None (identity, 1 channel), ``"adaptrans"`` (:class:`AdapTrans`, 2 channels
    ON/OFF), ``"willmore"`` (:class:`WillmoreHighPass`, 1 channel) or an ``nn.Module``
    mapping ``(B, 1, F, T)`` to ``(B, C, F, T)`` that exposes ``out_channels`` (= C).
    ``n_bands`` and ``dt_ms`` are passed to the string prefilters with ``prefilter_kwargs``.
    Returns an ``nn.Module`` with an ``out_channels`` attribute.

    ``"adaptrans"`` inside a model defaults to ``rectify="relu"`` (:data:`MODEL_ADAPTRANS_RECTIFY`),
    unlike the bare :class:`AdapTrans` (``rectify=None``, the paper's Figure 1): with linear
    outputs the ON/OFF channels are linear in the same input, the ON/OFF STRFs have a null
    space and the time constants cannot be recovered (measured in
    ``benchmarks/recovery_synthetic.py``). Pass ``prefilter_kwargs={"rectify": None}`` for the
    linear variant.
    """
    if prefilter is None:
        if prefilter_kwargs:
            raise ValueError(f"prefilter_kwargs given without a prefilter: {sorted(prefilter_kwargs)}")
        return NoPrefilter()
    if isinstance(prefilter, nn.Module):
        if not isinstance(getattr(prefilter, "out_channels", None), int):
            raise ValueError(
                f"expected a prefilter module with an integer attribute out_channels (its number of "
                f"output channels C), got {type(prefilter).__name__} without one"
            )
        return prefilter
    if isinstance(prefilter, str):
        name = prefilter.lower()
        if name in PREFILTERS:
            from . import adaptrans  # imported here so that models without prefilter never need it

            if name == "adaptrans":
                prefilter_kwargs = {"rectify": MODEL_ADAPTRANS_RECTIFY, **prefilter_kwargs}
                return adaptrans.AdapTrans(int(n_bands), dt_ms=float(dt_ms), **prefilter_kwargs)
            return adaptrans.WillmoreHighPass(int(n_bands), dt_ms=float(dt_ms), **prefilter_kwargs)
        if name.startswith("module:"):
            raise ValueError(
                f"this config was saved from a model with a custom prefilter module ({prefilter[7:]}); "
                "it cannot be rebuilt from the config: pass the module itself as prefilter"
            )
    raise ValueError(f"expected prefilter None, 'adaptrans', 'willmore' or an nn.Module, got {prefilter!r}")


def _jsonable(value):
    """Convert tuples, numpy arrays / scalars and tensors to plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.detach().cpu().numpy())
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"expected a JSON-serialisable constructor argument, got {type(value).__name__}")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"expected {name} to be a positive integer, got {value!r}")
    return int(value)


def _pair(value, name: str) -> tuple[int, int]:
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"expected {name} as a pair (frequency, time), got {value!r}") from None
    return _positive_int(a, f"{name}[0]"), _positive_int(b, f"{name}[1]")


class _ResponseModel(nn.Module):
    """Common constructor plumbing, input validation and config of the response models."""

    def _setup(self, n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms) -> None:
        self.n_bands = _positive_int(n_bands, "n_bands")
        self.n_neurons = _positive_int(n_neurons, "n_neurons")
        if not (isinstance(dt_ms, (int, float)) and dt_ms > 0):
            raise ValueError(f"expected dt_ms > 0 (bin width in ms), got {dt_ms!r}")
        self.dt_ms = float(dt_ms)
        if prefilter_kwargs is not None and not isinstance(prefilter_kwargs, dict):
            raise ValueError(f"expected prefilter_kwargs as a dict or None, got {type(prefilter_kwargs).__name__}")
        self.prefilter = make_prefilter(prefilter, self.n_bands, self.dt_ms, **(prefilter_kwargs or {}))
        self.in_channels = int(self.prefilter.out_channels)

    def _set_config(self, prefilter, prefilter_kwargs, **kwargs) -> None:
        if isinstance(prefilter, nn.Module):
            prefilter = f"module:{type(prefilter).__name__}"
        self.config = _jsonable(
            dict(
                n_bands=self.n_bands,
                n_neurons=self.n_neurons,
                **kwargs,
                prefilter=prefilter,
                prefilter_kwargs=dict(prefilter_kwargs) if prefilter_kwargs else None,
                dt_ms=self.dt_ms,
            )
        )

    def _check_stimulus(self, x: torch.Tensor) -> None:
        if (not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.n_bands
                or x.shape[3] < 1):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"expected a stimulus of shape (B, 1, F, T) with F={self.n_bands}, got {got}"
            )

    def _prefiltered(self, x: torch.Tensor) -> torch.Tensor:
        """Validate x ``(B, 1, F, T)`` and return the prefilter output ``(B, C, F, T)``."""
        self._check_stimulus(x)
        return self.prefilter(x)


# ----------------------------------------------------------------------------------------
# L, LN
# ----------------------------------------------------------------------------------------
class Linear(_ResponseModel):
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
        from .adaptrans import AdapTrans

        return isinstance(self.prefilter, AdapTrans) and self.prefilter.rectify is None

    def strf_path(self) -> str:
        """How :meth:`linear_drive` computes the STRF: ``"fused"``, ``"fft"`` or ``"conv"``.

        ``"fused"``: un-rectified AdapTrans and STRF as one frequency-domain product
        (:func:`~deepstrf_utils.layers.prefiltered_strf_fft`); ``"fft"``: prefilter, then
        :func:`~deepstrf_utils.layers.causal_strf_fft`; ``"conv"``: prefilter, then
        :func:`~deepstrf_utils.layers.causal_strf_conv`. All three give the same output up
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
        z = self._prefiltered(x)
        if path == "fft":
            return causal_strf_fft(z, self.weight, self.bias)
        return causal_strf_conv(z, self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(B, 1, F, T)`` -> predicted response ``(B, N, T)``."""
        return self.linear_drive(x)

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(B, 1, F, T)`` -> ``(B, N, T)``."""
        return self.output_nonlinearity(self.linear_drive(x))

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: zero STRF bias, nonlinearity centred on ``mean`` with gain ``std``."""
        self.bias.zero_()
        self.output_nonlinearity.init_output(mean, std)


# ----------------------------------------------------------------------------------------
# NRF, DNet
# ----------------------------------------------------------------------------------------
class NetworkReceptiveField(_ResponseModel):
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

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden-unit activities: x ``(B, 1, F, T)`` -> ``(B, H, T)``."""
        return torch.sigmoid(causal_strf_conv(self._prefiltered(x), self.weight, self.bias))

    def _readout_drive(self, h: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nh,bht->bnt", self.out_weight, h) + self.out_bias[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(B, 1, F, T)`` -> ``(B, N, T)``."""
        return self.output_nonlinearity(self._readout_drive(self.hidden(x)))

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
        if not (0.0 < float(k_init) < 1.0):  # k = 1 means d = 0, where dk/dd = 0: the rate could never move
            raise ValueError(f"expected k_init in (0, 1), got {k_init!r}")
        d0 = math.sqrt(1.0 / float(k_init) - 1.0)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(B, 1, F, T)`` -> ``(B, N, T)``."""
        z = self._readout_drive(self.hidden(x))
        v = leaky_integrate(self.output_nonlinearity.inner(z), self.output_k)
        return self.output_nonlinearity.outer(v)


# ----------------------------------------------------------------------------------------
# 2D CNNs
# ----------------------------------------------------------------------------------------
class ConvNet2D(_ResponseModel):
    """deepSTRF's 2D-CNN (as used in the AdapTrans paper).

    ``n_blocks`` x [Conv2d(kernel (k_f, k_t), ``channels`` filters, no padding in frequency,
    causal left padding ``k_t - 1`` in time) -> BatchNorm2d -> LeakyReLU(0.1)], then per
    time bin: flatten (channels x F', F' = F - n_blocks (k_f - 1)) -> Linear(hidden) ->
    LeakyReLU(0.1) -> Linear(N) -> :class:`ParametricSigmoid`. The per-bin dense layers are
    1 x 1 convolutions over the flattened features (no reshape copies).
    NS1 (F = 34, (6, 15), AdapTrans, N = 1): 37,276 parameters; NAT4 (F = 18, (3, 7)): 15,748.

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    def __init__(
        self, n_bands, n_neurons=1, kernel_size=(6, 15), channels=10, hidden=90, n_blocks=3,
        prefilter=None, prefilter_kwargs=None, dt_ms=5.0, negative_slope=0.1,
    ):
        super().__init__()
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.channels = _positive_int(channels, "channels")
        self.n_hidden = _positive_int(hidden, "hidden")
        self.n_blocks = _positive_int(n_blocks, "n_blocks")
        self.negative_slope = float(negative_slope)
        k_f, k_t = self.kernel_size
        self.out_bands = self.n_bands - self.n_blocks * (k_f - 1)
        if self.out_bands < 1:
            raise ValueError(
                f"expected n_bands > n_blocks * (k_f - 1) = {self.n_blocks * (k_f - 1)} (no frequency padding), "
                f"got n_bands={self.n_bands}"
            )
        self.convs = nn.ModuleList(
            nn.Conv2d(self.in_channels if i == 0 else self.channels, self.channels, self.kernel_size)
            for i in range(self.n_blocks)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(self.channels) for _ in range(self.n_blocks))
        self.dense = nn.Conv1d(self.channels * self.out_bands, self.n_hidden, 1)
        self.readout = nn.Conv1d(self.n_hidden, self.n_neurons, 1)
        self.output_nonlinearity = ParametricSigmoid(self.n_neurons)
        self._set_config(
            prefilter, prefilter_kwargs, kernel_size=self.kernel_size, channels=self.channels,
            hidden=self.n_hidden, n_blocks=self.n_blocks, negative_slope=self.negative_slope,
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutional features: x ``(B, 1, F, T)`` -> ``(B, channels, F', T)``."""
        h = self._prefiltered(x)
        pad = (self.kernel_size[1] - 1, 0)
        for conv, norm in zip(self.convs, self.norms):
            h = F.leaky_relu(norm(conv(F.pad(h, pad))), self.negative_slope)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(B, 1, F, T)`` -> ``(B, N, T)``."""
        h = self.features(x).flatten(1, 2)  # (B, channels * F', T), a view
        h = F.leaky_relu(self.dense(h), self.negative_slope)
        return self.output_nonlinearity(self.readout(h))

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: output sigmoid centred on ``mean`` with gain ``std``."""
        self.readout.bias.zero_()
        self.output_nonlinearity.init_output(mean, std)


class PopulationCNN(_ResponseModel):
    """Pennington & David (2023) population CNN (NAT4).

    ``n_blocks`` x [Conv2d(``channels`` filters, kernel (k_f, k_t) = (3, 8), causal in time,
    same-padded in frequency) -> ReLU] -> per time bin: flatten (channels x F) -> dense
    ``hidden`` without bias -> ReLU -> dense ``hidden`` -> N without bias -> per-neuron level
    shift -> per-neuron :class:`DoubleExponential` (``self.output_nonlinearity``; freeze it for
    the first fitting stage). 18 bands, no prefilter: 21,270 shared parameters + 95 per neuron.

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    def __init__(
        self, n_bands, n_neurons=1, kernel_size=(3, 8), channels=10, hidden=90, n_blocks=3,
        prefilter=None, prefilter_kwargs=None, dt_ms=5.0,
    ):
        super().__init__()
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.channels = _positive_int(channels, "channels")
        self.n_hidden = _positive_int(hidden, "hidden")
        self.n_blocks = _positive_int(n_blocks, "n_blocks")
        k_f, k_t = self.kernel_size
        self._pad = (k_t - 1, 0, (k_f - 1) // 2, k_f // 2)  # (time left, time right, freq low, freq high)
        self.convs = nn.ModuleList(
            nn.Conv2d(self.in_channels if i == 0 else self.channels, self.channels, self.kernel_size)
            for i in range(self.n_blocks)
        )
        self.dense = nn.Conv1d(self.channels * self.n_bands, self.n_hidden, 1, bias=False)
        self.readout = nn.Conv1d(self.n_hidden, self.n_neurons, 1, bias=False)
        self.level_shift = nn.Parameter(torch.zeros(self.n_neurons))
        self.output_nonlinearity = DoubleExponential(self.n_neurons)
        self._set_config(
            prefilter, prefilter_kwargs, kernel_size=self.kernel_size, channels=self.channels,
            hidden=self.n_hidden, n_blocks=self.n_blocks,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(B, 1, F, T)`` -> ``(B, N, T)``."""
        h = self._prefiltered(x)
        for conv in self.convs:
            h = torch.relu(conv(F.pad(h, self._pad)))
        h = torch.relu(self.dense(h.flatten(1, 2)))
        z = self.readout(h) + self.level_shift[:, None]
        return self.output_nonlinearity(z)

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: double exponential centred on ``mean`` with slope ``std``."""
        self.level_shift.zero_()
        self.output_nonlinearity.init_output(mean, std)


# ----------------------------------------------------------------------------------------
# StateNet
# ----------------------------------------------------------------------------------------
class StateNet(_ResponseModel):
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
        self.norm = nn.BatchNorm2d(self.channels)
        rnn_cls = nn.GRU if rnn == "gru" else nn.LSTM
        self.rnn = rnn_cls(n_features, self.n_hidden, batch_first=True)
        self.readout = nn.Linear(self.n_hidden, self.n_neurons)
        self._set_config(
            prefilter, prefilter_kwargs, rnn=rnn, channels=self.channels, kernel=self.local.kernel,
            stride=self.local.stride, hidden=hidden,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(B, 1, F, T)`` -> ``(B, N, T)``."""
        h = torch.sigmoid(self.norm(self.local(self._prefiltered(x))))  # (B, O, P, T)
        b, o, p, t = h.shape
        h = h.permute(0, 3, 1, 2).reshape(b, t, o * p)  # (B, T, O * P)
        h, _ = self.rnn(h)  # (B, T, hidden)
        return self.readout(h).transpose(1, 2)

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: readout bias = target mean, weights scaled by ``std``."""
        std = as_per_neuron(std, self.n_neurons, "std").clamp_min(1e-6).to(self.readout.weight)
        self.readout.weight.mul_(std[:, None])
        self.readout.bias.copy_(as_per_neuron(mean, self.n_neurons, "mean").to(self.readout.bias))


# ----------------------------------------------------------------------------------------
# registry, helpers
# ----------------------------------------------------------------------------------------
MODELS: dict[str, type[nn.Module]] = {
    "Linear": Linear,
    "LinearNonlinear": LinearNonlinear,
    "NetworkReceptiveField": NetworkReceptiveField,
    "DNet": DNet,
    "ConvNet2D": ConvNet2D,
    "StateNet": StateNet,
    "PopulationCNN": PopulationCNN,
}


def build_model(name: str, **config) -> nn.Module:
    """Build ``MODELS[name](**config)``; ``build_model(type(m).__name__, **m.config)`` rebuilds ``m``."""
    if name not in MODELS:
        raise ValueError(f"expected a model name in {sorted(MODELS)}, got {name!r}")
    return MODELS[name](**config)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters of ``model`` (shared tensors counted once)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


# ----------------------------------------------------------------------------------------
# closed-form ridge STRF
# ----------------------------------------------------------------------------------------
def _unpack_data(data, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return (stimuli [(F, T_i)], trial-averaged responses [(N, T_i)], NaN = missing)."""
    if hasattr(data, "stimuli") and hasattr(data, "responses"):
        stimuli, responses = data.stimuli, data.responses
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        stimuli, responses = data
    else:
        raise ValueError(
            f"expected {name} as an object with .stimuli and .responses or a tuple (stimuli, responses), "
            f"got {type(data).__name__}"
        )
    stimuli = [np.asarray(s, dtype=np.float64) for s in stimuli]
    responses = [np.asarray(r, dtype=np.float64) for r in responses]
    if len(stimuli) == 0 or len(stimuli) != len(responses):
        raise ValueError(
            f"expected {name} to hold as many stimuli as responses (at least one), got {len(stimuli)} and {len(responses)}"
        )
    averaged = []
    for i, (s, r) in enumerate(zip(stimuli, responses)):
        if s.ndim != 2 or r.ndim != 3 or r.shape[2] != s.shape[1]:
            raise ValueError(
                f"expected {name} stimulus {i} of shape (F, T_i) and response of shape (N, R_i, T_i) with the "
                f"same T_i, got {s.shape} and {r.shape}"
            )
        if s.shape[0] != stimuli[0].shape[0] or r.shape[0] != responses[0].shape[0]:
            raise ValueError(
                f"expected every {name} stimulus to have F={stimuli[0].shape[0]} bands and every response "
                f"N={responses[0].shape[0]} neurons, got {s.shape} and {r.shape} for item {i}"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins stay NaN
            averaged.append(np.nanmean(r, axis=1))
    return stimuli, averaged


def _prefilter_channels(model: Linear, stimuli: list[np.ndarray]) -> list[np.ndarray]:
    """Run the model's (fixed) prefilter on each stimulus: list of ``(C, F, T_i)`` float64."""
    out = []
    with torch.no_grad():
        for s in stimuli:
            x = torch.as_tensor(s, dtype=torch.float32)[None, None]
            out.append(model.prefilter(x)[0].double().numpy())
    return out


def _lagged_design(channels: np.ndarray, n_lags: int) -> np.ndarray:
    """Causal lagged design ``(T, C * F * K)``: column (c, f, k) holds x[c, f, t - k] (0 before start)."""
    c, f, t = channels.shape
    flat = channels.reshape(c * f, t)
    padded = np.concatenate([np.zeros((c * f, n_lags - 1)), flat], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_lags, axis=1)  # (CF, T, K): x[t - K + 1 + j]
    lagged = windows[:, :, ::-1]  # [:, t, k] = x[t - k]
    return np.ascontiguousarray(lagged.transpose(1, 0, 2)).reshape(t, c * f * n_lags)


def _masked_corr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pearson correlation per column over the rows where ``mask``: (T, N) each -> (N,)."""
    n = mask.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(mask, pred, 0.0)
        y = np.where(mask, target, 0.0)
        dp = np.where(mask, p - p.sum(0) / n, 0.0)
        dy = np.where(mask, y - y.sum(0) / n, 0.0)
        cc = (dp * dy).sum(0) / np.sqrt((dp**2).sum(0) * (dy**2).sum(0))
    return np.where(np.isfinite(cc), cc, np.nan)


def fit_ridge_strf(
    train, val, n_lags: int = 20, alphas=np.logspace(-3, 6, 19), prefilter=None,
    prefilter_kwargs: dict | None = None, dt_ms: float | None = None,
) -> tuple[Linear, dict[str, Any]]:
    """Closed-form ridge-regression STRFs for all neurons at once.

    train, val: objects with ``.stimuli`` (list of ``(F, T_i)``) and ``.responses`` (list of
    ``(N, R_i, T_i)``, NaN = missing trial / padding), e.g. a ``ResponseDataset``, or tuples
    ``(stimuli, responses)`` of such lists. Responses are trial-averaged (nanmean); bins
    where the averaged target is NaN are dropped (per neuron).

    The causal lagged design (K = ``n_lags``) is built from the prefilter channels
    (``prefilter`` None, ``"adaptrans"``, ``"willmore"`` or a fixed module; AdapTrans gets
    ``learnable=False`` unless given, and ``cf_hz`` / ``dt_ms`` are taken from ``train``
    when it has them). The bias is not regularised (design and targets are centred, which
    is exactly an unpenalised bias column). ``X'X`` and ``X'Y`` are accumulated once, the
    eigendecomposition of the centred ``X'X`` is reused for every alpha, and alpha (on the
    scale of ``X'X``, a sum over training bins) is chosen per neuron as the one whose
    prediction correlates best with the trial-averaged validation response. Neurons with
    different missing-bin patterns are solved in groups sharing one pattern.

    Returns ``(model, info)``: a :class:`Linear` model ``(N, C, F, K)`` with the weights
    loaded (eval mode), and ``info`` with ``alpha`` ``(N,)``, ``cc_val`` ``(N,)``,
    ``alphas`` ``(A,)``, ``cc_val_grid`` ``(A, N)``, ``n_train_bins`` ``(N,)``.
    """
    stim_tr, resp_tr = _unpack_data(train, "train")
    stim_va, resp_va = _unpack_data(val, "val")
    n_bands, n_neurons = stim_tr[0].shape[0], resp_tr[0].shape[0]
    if stim_va[0].shape[0] != n_bands or resp_va[0].shape[0] != n_neurons:
        raise ValueError(
            f"expected val with F={n_bands} bands and N={n_neurons} neurons like train, "
            f"got F={stim_va[0].shape[0]}, N={resp_va[0].shape[0]}"
        )
    n_lags = _positive_int(n_lags, "n_lags")
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1)
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
        raise ValueError(f"expected a non-empty grid of finite alphas >= 0, got {alphas}")
    if dt_ms is None:
        dt_ms = float(getattr(train, "dt_ms", None) or 5.0)

    if isinstance(prefilter, nn.Module):
        prefilter, kwargs = copy.deepcopy(prefilter), None
    else:
        kwargs = dict(prefilter_kwargs or {})
        if isinstance(prefilter, str):
            cf_hz = getattr(train, "cf_hz", None)
            if cf_hz is not None and "cf_hz" not in kwargs:
                kwargs["cf_hz"] = [float(v) for v in np.asarray(cf_hz)]
            if prefilter.lower() == "adaptrans":
                kwargs.setdefault("learnable", False)
        kwargs = kwargs or None
    model = Linear(n_bands, n_neurons, n_lags, prefilter=prefilter, prefilter_kwargs=kwargs, dt_ms=dt_ms).eval()
    ch_tr = _prefilter_channels(model, stim_tr)
    ch_va = _prefilter_channels(model, stim_va)
    n_features = ch_tr[0].shape[0] * n_bands * n_lags

    y_tr = np.concatenate([r.T for r in resp_tr], axis=0)  # (T_total, N)
    y_va = np.concatenate([r.T for r in resp_va], axis=0)
    valid_tr, valid_va = np.isfinite(y_tr), np.isfinite(y_va)
    y_tr, y_va = np.where(valid_tr, y_tr, 0.0), np.where(valid_va, y_va, 0.0)
    x_va = np.concatenate([_lagged_design(c, n_lags) for c in ch_va], axis=0)  # (T_val, D)
    starts = np.cumsum([0] + [c.shape[-1] for c in ch_tr])

    weights = np.zeros((n_features, n_neurons))
    bias = np.zeros(n_neurons)
    cc_grid = np.full((alphas.size, n_neurons), np.nan)
    n_bins = valid_tr.sum(0)
    patterns, group_of = np.unique(valid_tr.T, axis=0, return_inverse=True)
    group_of = np.asarray(group_of).reshape(-1)
    for g, rows_valid in enumerate(patterns):
        cols = np.flatnonzero(group_of == g)
        n = int(rows_valid.sum())
        if n == 0:
            logger.warning("fit_ridge_strf: neurons %s have no valid training bins; STRF left at 0", cols.tolist())
            continue
        xtx = np.zeros((n_features, n_features))
        xty = np.zeros((n_features, cols.size))
        sum_x = np.zeros(n_features)
        for i, c in enumerate(ch_tr):
            keep = rows_valid[starts[i]:starts[i + 1]]
            if not keep.any():
                continue
            x = _lagged_design(c, n_lags)[keep]
            y = y_tr[starts[i]:starts[i + 1]][keep][:, cols]
            xtx += x.T @ x
            xty += x.T @ y
            sum_x += x.sum(0)
        mean_x = sum_x / n
        mean_y = y_tr[rows_valid][:, cols].sum(0) / n
        gram = xtx - n * np.outer(mean_x, mean_x)
        cross = xty - n * np.outer(mean_x, mean_y)
        evals, evecs = np.linalg.eigh(gram)
        evals = np.clip(evals, 0.0, None)
        proj = evecs.T @ cross  # (D, Ng)
        z_va = (x_va - mean_x) @ evecs  # (T_val, D)
        for a, alpha in enumerate(alphas):
            denom = evals + alpha
            scale = np.divide(1.0, denom, out=np.zeros_like(denom), where=denom > 0)
            pred = z_va @ (proj * scale[:, None])
            cc_grid[a, cols] = _masked_corr(pred, y_va[:, cols], valid_va[:, cols])
        best = np.argmax(np.where(np.isnan(cc_grid[:, cols]), -np.inf, cc_grid[:, cols]), axis=0)
        denom = evals[:, None] + alphas[best][None, :]
        scale = np.divide(1.0, denom, out=np.zeros_like(denom), where=denom > 0)
        w = evecs @ (proj * scale)
        weights[:, cols] = w
        bias[cols] = mean_y - mean_x @ w

    all_nan = np.all(np.isnan(cc_grid), axis=0)
    best = np.argmax(np.where(np.isnan(cc_grid), -np.inf, cc_grid), axis=0)
    if all_nan.any():
        logger.warning(
            "fit_ridge_strf: no validation correlation for neurons %s (constant or missing response)",
            np.flatnonzero(all_nan).tolist(),
        )
    alpha = np.where(all_nan, np.nan, alphas[best])
    cc_val = np.where(all_nan, np.nan, cc_grid[best, np.arange(n_neurons)])
    c = model.in_channels
    model.load_strf(weights.T.reshape(n_neurons, c, n_bands, n_lags), bias)
    info = dict(alpha=alpha, cc_val=cc_val, alphas=alphas, cc_val_grid=cc_grid, n_train_bins=n_bins)
    return model, info
