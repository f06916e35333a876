"""Readouts that are not tied to one model: per-session readouts and the state gain.

* :class:`LinearReadout`: per-neuron weighted sum of the core's features, bias and an
  optional per-neuron output nonlinearity, ``(B, H, T) -> (B, N, T)``: the readout of
  ``ConvNet2D`` and ``Transformer`` (sigmoid), ``NetworkReceptiveField`` (sigmoid),
  ``StateNet`` (none) and ``PopulationCNN`` (double exponential) as a module of its own
  (``model.linear_readout()`` copies a model's readout into one, :meth:`LinearReadout.copy_of`);
* :class:`DenseSigmoidReadout`: the readout of ``ConvNet2D`` and ``Transformer`` (a mixin).
* :class:`SessionReadouts`: one readout per recording session (a ``ModuleDict`` keyed by
  session id), ``forward(h, session)``.
* :class:`StateGain`: NEMS' state-gain readout, per neuron a gain and an offset linear in
  the state, ``y = (g0 + g . s) * x + (d0 + d . s)``.

Shapes: B batch, H features, N neurons, S state signals, T time bins.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..shapes import check_int
from .layers import DoubleExponential, ParametricNonlinearity, as_per_neuron

__all__ = ["LinearReadout", "DenseSigmoidReadout", "SessionReadouts", "StateGain", "check_session_id"]

NONLINEARITIES = (None, "sigmoid", "softplus", "exp", "relu", "double_exponential")


def check_session_id(session) -> str:
    """A session id as a string usable as a ``ModuleDict`` key (ValueError otherwise)."""
    key = str(session)
    if not key or "." in key:
        raise ValueError(f"expected a session id as a non-empty name without '.', got {session!r}")
    return key


class LinearReadout(nn.Module):
    """Per-neuron readout ``y[b, n, t] = g_n(sum_h W[n, h] h[b, h, t] + bias[n])``.

    nonlinearity: None (identity), ``"sigmoid"`` / ``"softplus"`` / ``"exp"`` / ``"relu"``
    (:class:`ParametricNonlinearity`, 3 parameters per neuron) or ``"double_exponential"``
    (:class:`DoubleExponential`). forward: h ``(B, H, T)`` -> ``(B, N, T)``.
    """

    def __init__(self, n_hidden: int, n_neurons: int, nonlinearity: str | None = "sigmoid"):
        super().__init__()
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"expected a readout nonlinearity in {NONLINEARITIES}, got {nonlinearity!r}")
        self.n_hidden = check_int(n_hidden, "n_hidden", 1)
        self.n_neurons = check_int(n_neurons, "n_neurons", 1)
        self.nonlinearity = nonlinearity
        bound = 1.0 / math.sqrt(self.n_hidden)
        self.weight = nn.Parameter(torch.empty(self.n_neurons, self.n_hidden).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(self.n_neurons).uniform_(-bound, bound))
        if nonlinearity == "double_exponential":
            self.output_nonlinearity = DoubleExponential(self.n_neurons)
        elif nonlinearity is not None:
            self.output_nonlinearity = ParametricNonlinearity(self.n_neurons, kind=nonlinearity)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h ``(B, H, T)`` -> ``(B, N, T)``."""
        if h.dim() != 3 or h.shape[1] != self.n_hidden:
            raise ValueError(f"expected core features of shape (B, H, T) with H={self.n_hidden}, got {tuple(h.shape)}")
        y = torch.einsum("nh,bht->bnt", self.weight, h) + self.bias[:, None]
        return y if self.nonlinearity is None else self.output_nonlinearity(y)

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale (per-neuron target ``mean`` and ``std``, scalars or ``(N,)``)."""
        if self.nonlinearity is None:
            std = as_per_neuron(std, self.n_neurons, "std").clamp_min(1e-6).to(self.weight)
            self.weight.mul_(std[:, None])
            self.bias.copy_(as_per_neuron(mean, self.n_neurons, "mean").to(self.bias))
        else:
            self.bias.zero_()
            self.output_nonlinearity.init_output(mean, std)

    def extra_repr(self) -> str:
        return f"n_hidden={self.n_hidden}, n_neurons={self.n_neurons}, nonlinearity={self.nonlinearity!r}"

    @classmethod
    @torch.no_grad()
    def copy_of(cls, weight: torch.Tensor, bias: torch.Tensor, nonlinearity: str | None = None,
                output_nonlinearity: nn.Module | None = None) -> "LinearReadout":
        """A readout computing ``output_nonlinearity(weight @ h + bias)`` exactly: ``weight`` (N, H)
        and ``bias`` (N,) copied, the output nonlinearity's state loaded (its kind named by
        ``nonlinearity``), on ``weight``'s device."""
        out = cls(weight.shape[1], weight.shape[0], nonlinearity)
        out.weight.copy_(weight)
        out.bias.copy_(bias)
        if nonlinearity is not None:
            out.output_nonlinearity.load_state_dict(output_nonlinearity.state_dict())
        return out.to(weight.device)


class DenseSigmoidReadout:
    """The readout of ConvNet2D and the Transformer: a per-neuron dense layer over the features
    (``self.readout``, a 1 x 1 ``Conv1d``) and ``self.output_nonlinearity`` (ParametricSigmoid).
    A linear readout: the model's core can be shared by several sessions."""

    readout_attributes = ("readout", "output_nonlinearity")
    readout_nonlinearity = "sigmoid"

    def forward_readout(self, h: torch.Tensor) -> torch.Tensor:
        """Per-neuron dense readout and output sigmoid: ``(B, H, T) -> (B, N, T)``."""
        return self.output_nonlinearity(self.readout(h))

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: output sigmoid centred on ``mean`` with gain ``std``."""
        self.readout.bias.zero_()
        self.output_nonlinearity.init_output(mean, std)

    def linear_readout(self) -> LinearReadout:
        """The readout as a :class:`LinearReadout` computing :meth:`forward_readout` exactly."""
        return LinearReadout.copy_of(self.readout.weight[:, :, 0], self.readout.bias, "sigmoid",
                                     self.output_nonlinearity)


class SessionReadouts(nn.ModuleDict):
    """One readout per recording session: ``readouts[session]`` maps ``(B, H, T)`` to ``(B, N_session, T)``."""

    def forward(self, h: torch.Tensor, session: str) -> torch.Tensor:
        """h ``(B, H, T)`` -> ``(B, N_session, T)`` through the readout of ``session``."""
        return self[self.check(session)](h)

    def check(self, session) -> str:
        """The key of ``session``; ValueError naming the known sessions when it is unknown."""
        key = str(session)
        if key not in self:
            raise ValueError(f"unknown session {session!r}; expected one of {list(self.keys())}")
        return key


class StateGain(nn.Module):
    """NEMS' state gain: ``y[b, n, t] = (g0[n] + g[n] . s[b, :, t]) x[b, n, t] + d0[n] + d[n] . s[b, :, t]``.

    Parameters: ``gain_delta (N,)`` (``g0 = 1 + gain_delta``: weight decay pulls the gain to
    1, not 0), ``gain (N, S)``, ``offset0 (N,)``, ``offset (N, S)``; all zero at start, so a
    new state gain is the identity. forward: x ``(B, N, T)``, state ``(B, S, T)`` -> ``(B, N, T)``.
    """

    def __init__(self, n_neurons: int, n_states: int):
        super().__init__()
        self.n_neurons = check_int(n_neurons, "n_neurons", 1)
        self.n_states = check_int(n_states, "n_states", 1)
        self.gain_delta = nn.Parameter(torch.zeros(self.n_neurons))
        self.gain = nn.Parameter(torch.zeros(self.n_neurons, self.n_states))
        self.offset0 = nn.Parameter(torch.zeros(self.n_neurons))
        self.offset = nn.Parameter(torch.zeros(self.n_neurons, self.n_states))

    @property
    def gain0(self) -> torch.Tensor:
        """The gain at state 0, ``(N,)``."""
        return 1.0 + self.gain_delta

    def check_state(self, state, x: torch.Tensor) -> None:
        """ValueError unless ``state`` is a ``(B, S, T)`` tensor matching x ``(B, N, T)``."""
        want = (x.shape[0], self.n_states, x.shape[-1])
        if not isinstance(state, torch.Tensor) or tuple(state.shape) != want:
            got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(f"expected a state of shape (B, S, T)={want} (S state signals, T bins like the "
                             f"stimulus), got {got}")

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """x ``(B, N, T)``, state ``(B, S, T)`` -> ``(B, N, T)``."""
        self.check_state(state, x)
        s = state.to(x.dtype)
        gain = self.gain0[:, None] + torch.einsum("ns,bst->bnt", self.gain, s)
        return gain * x + self.offset0[:, None] + torch.einsum("ns,bst->bnt", self.offset, s)

    def relative_gain(self) -> torch.Tensor:
        """The state's gain relative to the gain at state 0, ``g / g0``, ``(N, S)`` (detached)."""
        return (self.gain / self.gain0[:, None]).detach()

    def extra_repr(self) -> str:
        return f"n_neurons={self.n_neurons}, n_states={self.n_states}"
