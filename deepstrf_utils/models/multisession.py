"""Models over several recording sessions and models with a behavioural-state input.

* :class:`MultiSessionModel`: the prefilter and core of a zoo model (``ConvNet2D``,
  ``NetworkReceptiveField``, ``StateNet``, ``PopulationCNN``, ``Transformer``, with or
  without AdapTrans),
  shared by every session, and one :class:`~.readouts.LinearReadout` per session
  (:class:`~.readouts.SessionReadouts`), optionally followed by a per-session
  :class:`~.readouts.StateGain`: ``forward(x, session=..., state=...)``.
* :class:`StateGainModel`: any zoo model followed by a :class:`~.readouts.StateGain`:
  ``forward(x, state=...)``.

Both store their constructor values in ``config`` and rebuild with
``build_model(type(m).__name__, **m.config)``. Shapes: B batch, F bands, T bins,
H features, N neurons (per session), S state signals.
"""
from __future__ import annotations

import torch
from torch import nn

from ..plain import to_plain
from .readouts import LinearReadout, SessionReadouts, StateGain, check_session_id
from .zoo import MODELS

__all__ = ["MultiSessionModel", "StateGainModel"]


def _zoo_model(name, config: dict, what: str) -> nn.Module:
    if isinstance(name, nn.Module):
        return name
    cls = MODELS.get(str(name))
    if cls is None:
        raise ValueError(f"expected {what} as a model name in {list(MODELS)} or a model, got {name!r}")
    return cls(**dict(config or {}))


class StateGainModel(nn.Module):
    """Any zoo model followed by a state gain (NEMS' StateGain): ``y = (g0 + g . s) model(x) + d0 + d . s``.

    Args:
        model: a zoo model (module) or its class name; ``model_config``: its constructor
            values when ``model`` is a name (``model.config``).
        n_states: S, the number of state signals; ``state_names``: their names (kept in
            ``config`` to check a dataset's signals).

    forward: x ``(B, 1, F, T)``, state ``(B, S, T)`` -> ``(B, N, T)``.
    """

    def __init__(self, model="LinearNonlinear", model_config: dict | None = None, n_states: int = 1,
                 state_names=None):
        super().__init__()
        self.model = _zoo_model(model, model_config, "model")
        self.n_bands, self.n_neurons, self.dt_ms = self.model.n_bands, self.model.n_neurons, self.model.dt_ms
        self.state_gain = StateGain(self.n_neurons, n_states)
        self.n_states = self.state_gain.n_states
        self.state_names = None if state_names is None else [str(v) for v in state_names]
        if self.state_names is not None and len(self.state_names) != self.n_states:
            raise ValueError(f"expected {self.n_states} state_names, got {self.state_names}")
        self.config = to_plain(dict(model=type(self.model).__name__, model_config=self.model.config,
                                    n_states=self.n_states, state_names=self.state_names))

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x ``(B, 1, F, T)``, state ``(B, S, T)`` -> ``(B, N, T)``; ``lengths`` (B,): valid bins
        of a padded batch, passed to the inner model (BatchNorm statistics over valid bins)."""
        if state is None:
            raise ValueError(f"expected a state (B, S, T) with S={self.n_states} for {type(self).__name__}, got None")
        y = self.model(x) if lengths is None else self.model(x, lengths=lengths)
        return self.state_gain(y, state)

    def init_output(self, mean, std) -> None:
        """Start the inner model at the data's scale (the state gain starts as the identity)."""
        init = getattr(self.model, "init_output", None)
        if callable(init):
            init(mean, std)

    def receptive_field(self) -> dict:
        """The inner model's (the state gain acts bin by bin)."""
        return self.model.receptive_field()


class MultiSessionModel(nn.Module):
    """A shared core (prefilter + core of a zoo model) with one readout per recording session.

    Args:
        core: the zoo model whose prefilter and core are shared: its class name (one of
            ``ConvNet2D``, ``NetworkReceptiveField``, ``StateNet``, ``PopulationCNN``, ``Transformer``) or such
            a model itself (its prefilter and core weights are kept; its readout is dropped).
        core_config: that model's constructor values when ``core`` is a name (``n_neurons``
            is ignored: the readouts own the neurons), e.g. ``dict(n_bands=34, prefilter="adaptrans")``.
        sessions: ``{session id: N}``, the number of neurons of each session.
        n_states: S > 0 adds a :class:`StateGain` per session after its readout (``state``
            then required in :meth:`forward`); ``state_names`` their names.

    ``config["core_config"]`` is the core's EFFECTIVE configuration (the built model's own
    ``config`` without ``n_neurons``: band centres, kernel length and rectification of its
    AdapTrans as resolved), so ``build_model("MultiSessionModel", **config)`` and checkpoints
    rebuild it exactly, also when ``core`` was a module; a core whose prefilter is a custom
    module cannot be described and is refused there, with a message (as for any zoo model).

    Parameters: ``core.*`` (the zoo model without its readout), ``readouts.<session>.*`` and,
    with states, ``state_gains.<session>.*``. ``forward(x (B, 1, F, T), session, state (B, S, T))``
    -> ``(B, N_session, T)``; ``session`` may be omitted when there is one session.
    """

    def __init__(self, core="ConvNet2D", core_config: dict | None = None, sessions: dict | None = None,
                 n_states: int = 0, state_names=None):
        super().__init__()
        if isinstance(core, nn.Module) and core_config:
            raise ValueError(f"expected core_config only with a core given by name, got a {type(core).__name__} "
                             f"module and core_config {sorted(core_config)}")
        self.core = _zoo_model(core, {k: v for k, v in dict(core_config or {}).items() if k != "n_neurons"}, "core")
        if not getattr(self.core, "shares_core", lambda: False)():
            raise ValueError(f"expected a core among {[n for n, c in MODELS.items() if c.shares_core()]}, got {core!r}")
        self.readout_kind = self.core.readout_nonlinearity
        self.n_hidden = self._drop_readout(self.core.readout_attributes)
        self.n_bands, self.dt_ms = self.core.n_bands, self.core.dt_ms
        self.n_states = int(n_states)
        if self.n_states < 0:
            raise ValueError(f"expected n_states >= 0, got {n_states}")
        self.state_names = None if state_names is None else [str(v) for v in state_names]
        self.readouts = SessionReadouts()
        self.state_gains = nn.ModuleDict() if self.n_states else None
        self._core_frozen = False
        # the built core's own effective values (a module core's too), not the caller's
        self._core_config = {k: v for k, v in dict(getattr(self.core, "config", {})).items() if k != "n_neurons"}
        if not sessions:
            raise ValueError("expected sessions as {session id: number of neurons}, got none")
        for key, n in dict(sessions).items():
            self.add_session(key, n)

    def _drop_readout(self, names) -> int:
        n_hidden = int(self.core.n_hidden)
        for name in names:
            delattr(self.core, name)
        self.core.n_neurons = None  # the neurons belong to the readouts
        return n_hidden

    @property
    def config(self) -> dict:
        """Constructor values (``build_model("MultiSessionModel", **config)`` rebuilds the model)."""
        return to_plain(dict(core=type(self.core).__name__, core_config=self._core_config,
                             sessions={k: r.n_neurons for k, r in self.readouts.items()},
                             n_states=self.n_states, state_names=self.state_names))

    @property
    def session_ids(self) -> list[str]:
        return list(self.readouts.keys())

    def n_neurons_of(self, session) -> int:
        return self.readouts[self.readouts.check(session)].n_neurons

    def add_session(self, session, n_neurons: int, readout: LinearReadout | None = None) -> None:
        """Add a session with its own new readout (and state gain); ValueError if it exists."""
        key = check_session_id(session)
        if key in self.readouts:
            raise ValueError(f"session {key!r} exists already; expected a new id (known: {self.session_ids})")
        readout = readout or LinearReadout(self.n_hidden, n_neurons, self.readout_kind)
        self.readouts[key] = readout.to(next(self.core.parameters()).device)
        if self.n_states:
            self.state_gains[key] = StateGain(readout.n_neurons, self.n_states).to(readout.weight.device)

    @classmethod
    def from_model(cls, model: nn.Module, session="session0", n_states: int = 0, state_names=None):
        """A one-session model that computes exactly ``model`` (its weights copied)."""
        out = cls(type(model).__name__, model.config, {check_session_id(session): model.n_neurons}, n_states, state_names)
        core_state = {k: v for k, v in model.state_dict().items() if k in out.core.state_dict()}
        out.core.load_state_dict(core_state)
        out.readouts[str(session)] = model.linear_readout()
        return out.to(next(model.parameters()).device)

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The shared core: x ``(B, 1, F, T)`` -> ``(B, H, T)``; ``lengths`` (B,) the valid bins
        of a padded batch (BatchNorm statistics over valid bins)."""
        return self.core.forward_core(self.core.prefiltered(x), lengths=lengths)

    def session_key(self, session) -> str:
        """The readout key of ``session``: the only session when ``session`` is None and there is
        one; ValueError naming the known sessions otherwise."""
        if session is None:
            if len(self.readouts) != 1:
                raise ValueError(f"expected session= one of {self.session_ids}, got None")
            return self.session_ids[0]
        return self.readouts.check(session)

    def forward(self, x: torch.Tensor, session=None, state: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x ``(B, 1, F, T)`` -> ``(B, N_session, T)``; ``state (B, S, T)`` when the model has
        states; ``lengths`` (B,) the valid bins of a padded batch."""
        key = self.session_key(session)
        y = self.readouts[key](self.features(x, lengths=lengths))
        if self.n_states:
            if state is None:
                raise ValueError(f"expected a state (B, S, T) with S={self.n_states}, got None")
            y = self.state_gains[key](y, state)
        elif state is not None:
            raise ValueError("expected no state: this model was built with n_states=0")
        return y

    def init_output(self, mean, std, session=None) -> None:
        """Start ``session``'s readout at its data's scale (per-neuron mean and std)."""
        self.readouts[self.session_key(session)].init_output(mean, std)

    def freeze_core(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) the prefilter and core: no gradient, and kept in eval mode
        (BatchNorm statistics fixed) while the readouts train."""
        self._core_frozen = bool(frozen)
        for p in self.core.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self._core_frozen:
            self.core.eval()
        return self
