"""Networks of STRF units: ``NetworkReceptiveField`` (Harper et al. 2016: H sigmoid hidden STRF
units -> a sigmoid output unit) and ``DNet`` (Rahman et al. 2019: the NRF with leaky-integrator
hidden and output units).

Shapes: B batch, C prefilter channels (2 with AdapTrans), F bands, T bins, K lags, N neurons,
H hidden units.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..shapes import check_int, check_number
from ..spectral import leaky_integrate
from .base import ResponseModel
from .layers import ParametricSigmoid, causal_strf_conv
from .readouts import LinearReadout

__all__ = ["NetworkReceptiveField", "DNet"]

class NetworkReceptiveField(ResponseModel):
    """Network receptive field (Harper et al. 2016).

    H hidden units, each ``sigmoid(STRF_h * x' + b_h)`` with its own STRF ``(C, F, K)``;
    output ``r_n = ParametricSigmoid(sum_h v[n, h] h_h + b_n)``. Parameters:
    ``weight (H, C, F, K)``, ``bias (H,)``, ``out_weight (N, H)``, ``out_bias (N,)``, 3 per
    neuron in ``output_nonlinearity``.

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    #: the output unit: a per-neuron weighted sum of the hidden units and a sigmoid
    readout_attributes = ("out_weight", "out_bias", "output_nonlinearity")
    readout_nonlinearity = "sigmoid"

    def __init__(
        self, n_bands, n_neurons=1, n_hidden=20, n_lags=20, prefilter=None, prefilter_kwargs=None, dt_ms=5.0,
    ):
        super().__init__()
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self.n_hidden = check_int(n_hidden, "n_hidden", 1)
        self.n_lags = check_int(n_lags, "n_lags", 1)
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
        return self._strf_units(self.prefiltered(x))

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

    @property
    def core_receptive_field(self) -> int:
        """The hidden STRFs' ``n_lags`` bins."""
        return int(self.n_lags)

    def linear_readout(self) -> LinearReadout:
        """The output unit as a :class:`~.readouts.LinearReadout` (weights copied)."""
        return LinearReadout.copy_of(self.out_weight, self.out_bias, "sigmoid", self.output_nonlinearity)


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

    #: the output unit integrates over time: not a linear readout, the core cannot be shared
    readout_attributes = ()
    linear_readout = ResponseModel.linear_readout

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

    @property
    def core_receptive_field(self) -> None:
        """None: the leaky integrators remember the whole past."""
        return None

    def no_decay_names(self) -> set[str]:
        """The prefilter's parameters and the leaky integrators' ``hidden_d`` / ``output_d`` (decay
        would pull ``d`` to 0, i.e. the integration rate ``k = 1 / (1 + d^2)`` to 1: no integration)."""
        return super().no_decay_names() | {"hidden_d", "output_d"}
