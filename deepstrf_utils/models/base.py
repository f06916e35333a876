"""The shared plumbing of the response models: the prefilter slot, config, input checks, and
what a model says about itself.

:func:`make_prefilter` builds the prefilter of a model (none, AdapTrans, Willmore or a
module); :class:`ResponseModel` is the base of every model in :mod:`.zoo`: it validates
``n_bands`` / ``n_neurons`` / ``dt_ms``, owns ``self.prefilter`` and ``self.in_channels``
(C), records every effective constructor value in ``self.config`` (plain JSON values, via
:func:`deepstrf_utils.plain.to_plain`; a string prefilter's ``prefilter_kwargs`` as the
prefilter resolved them, its ``config``) and checks stimuli ``(B, 1, F, T)``. Each model
answers for itself, so that interpretability and training code ask it instead of checking
its class: :meth:`ResponseModel.receptive_field`, :meth:`ResponseModel.shares_core` /
:meth:`ResponseModel.linear_readout` (a core shared by several sessions) and
:meth:`ResponseModel.no_decay_names` (parameters exempt from weight decay).
"""

from __future__ import annotations

from torch import nn

from ..plain import to_plain
from ..shapes import check_int, check_number, check_stimulus
from .layers import NoPrefilter

__all__ = ["PREFILTERS", "MODEL_ADAPTRANS_RECTIFY", "make_prefilter", "check_pair", "check_prefilter_kwargs", "ResponseModel"]

PREFILTERS = ("adaptrans", "willmore")

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
            from .. import adaptrans  # imported here so that models without prefilter never need it

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


def check_prefilter_kwargs(prefilter_kwargs) -> dict:
    """``prefilter_kwargs`` as a dict ({} for None); ValueError for anything else."""
    if prefilter_kwargs is not None and not isinstance(prefilter_kwargs, dict):
        raise ValueError(f"expected prefilter_kwargs as a dict or None, got {type(prefilter_kwargs).__name__}")
    return prefilter_kwargs or {}


def check_pair(value, name: str) -> tuple[int, int]:
    """``value`` as a pair of ints >= 1 (frequency, time), e.g. a kernel size; ValueError / TypeError
    naming ``name`` (:func:`~deepstrf_utils.shapes.check_int`)."""
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"expected {name} as a pair (frequency, time), got {value!r}") from None
    return check_int(a, f"{name}[0]", 1), check_int(b, f"{name}[1]", 1)


class ResponseModel(nn.Module):
    """Base of the response models: ``forward(x) = forward_readout(forward_core(prefilter(x)))``.

    The three slots: ``self.prefilter`` (an ``nn.Module``, :func:`make_prefilter`),
    :meth:`forward_core` (the shared part: prefilter output ``(B, C, F, T)`` -> features
    ``(B, H, T)``) and :meth:`forward_readout` (the per-neuron part: features ``(B, H, T)``
    -> response ``(B, N, T)``). A new readout (per session, state gain) is a subclass that
    overrides :meth:`forward_readout` (and builds its own readout parameters) without
    touching the core; a new core overrides :meth:`forward_core`. Parameters keep their
    historical names at the top level of the model (``weight``, ``convs``, ``readout``,
    ``output_nonlinearity``...), so state dicts and checkpoints are unchanged.
    Also: common constructor plumbing, input validation and ``config``.

    What a model says about itself (subclasses override): :attr:`core_receptive_field` and
    :meth:`receptive_field` (used by dSTRFs and MEIs), :attr:`readout_attributes` /
    :meth:`shares_core` / :meth:`linear_readout` (a core shared by several recording
    sessions, :class:`~.multisession.MultiSessionModel`) and :meth:`no_decay_names` (what
    AdamW must not weight-decay).
    """

    #: the attributes of the per-neuron readout, left out when the core is shared by several
    #: sessions (:class:`~.multisession.MultiSessionModel`); empty: the core cannot be shared
    #: (the readout is not a per-neuron linear map of the core's features)
    readout_attributes: tuple[str, ...] = ()
    #: the output nonlinearity of that readout, named as :class:`~.readouts.LinearReadout` names it
    readout_nonlinearity: str | None = None

    def _setup(self, n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms) -> None:
        self.n_bands = check_int(n_bands, "n_bands", 1)
        self.n_neurons = check_int(n_neurons, "n_neurons", 1)
        self.dt_ms = check_number(dt_ms, "dt_ms (the bin width in ms)", 0.0, low_open=True)
        self.prefilter = make_prefilter(prefilter, self.n_bands, self.dt_ms, **check_prefilter_kwargs(prefilter_kwargs))
        self.in_channels = int(self.prefilter.out_channels)

    def _set_config(self, prefilter, prefilter_kwargs, **kwargs) -> None:
        if isinstance(prefilter, nn.Module):
            prefilter = f"module:{type(prefilter).__name__}"
        elif prefilter is not None:
            # the prefilter's EFFECTIVE constructor values (rectification filled in by
            # make_prefilter, band centres, time constants and kernel length as resolved), so a
            # saved model rebuilds exactly even after a module default changes
            prefilter_kwargs = {k: v for k, v in self.prefilter.config.items() if k not in ("n_bands", "dt_ms")}
        self.config = to_plain(
            dict(
                n_bands=self.n_bands,
                n_neurons=self.n_neurons,
                **kwargs,
                prefilter=prefilter,
                prefilter_kwargs=dict(prefilter_kwargs) if prefilter_kwargs else None,
                dt_ms=self.dt_ms,
            )
        )

    def _check_stimulus(self, x) -> None:
        """Check x: a finite ``(B, 1, F, T)`` tensor with F = ``n_bands`` and B >= 1 (ValueError),
        of the dtype of the model's parameters (TypeError: nothing is cast), see
        :func:`~deepstrf_utils.shapes.check_stimulus`."""
        param = next(self.parameters(), None)
        check_stimulus(x, self.n_bands, None if param is None else param.dtype)

    def forward(self, x, lengths=None):
        """x ``(B, 1, F, T)`` -> ``(B, N, T)``: prefilter -> :meth:`forward_core` -> :meth:`forward_readout`.

        lengths: optional ``(B,)`` integer tensor on the model's device, the number of valid
        bins of each stimulus of a zero-padded batch (padding at the end); cores with
        batch statistics (BatchNorm) compute them over the valid bins only. None: every
        bin is valid (and the result is exactly that of a model without the argument).
        """
        return self.forward_readout(self.forward_core(self.prefiltered(x), lengths))

    def forward_core(self, z, lengths=None):
        """The core on the prefilter output: z ``(B, C, F, T)`` (and the optional valid
        ``lengths`` ``(B,)``) -> features ``(B, H, T)``."""
        raise NotImplementedError

    def forward_readout(self, h):
        """The readout: features ``(B, H, T)`` -> response ``(B, N, T)``."""
        raise NotImplementedError

    def prefiltered(self, x):
        """Validate x ``(B, 1, F, T)`` and return the prefilter output ``(B, C, F, T)``."""
        self._check_stimulus(x)
        return self.prefilter(x)

    @property
    def core_receptive_field(self) -> int | None:
        """Bins of the prefilter output that the core reads per output bin; None for an unbounded
        memory (a recurrence or leaky integration)."""
        return None

    def receptive_field(self) -> dict:
        """Temporal receptive field in bins: ``{"prefilter": P, "core": C or None, "total": P + C - 1
        or None}``; P is the prefilter's kernel length (AdapTrans ``kernel_size``; 1 without a
        prefilter), C :attr:`core_receptive_field`."""
        p = int(getattr(self.prefilter, "kernel_size", 1) or 1)
        core = self.core_receptive_field
        return {"prefilter": p, "core": core, "total": None if core is None else p + int(core) - 1}

    @classmethod
    def shares_core(cls) -> bool:
        """Whether the prefilter and core of this model can be shared by several recording
        sessions, each with its own readout (:meth:`linear_readout`)."""
        return bool(cls.readout_attributes)

    def linear_readout(self):
        """The readout as a :class:`~.readouts.LinearReadout` computing :meth:`forward_readout`
        exactly (weights copied); ValueError for a model whose core cannot be shared."""
        raise ValueError(f"expected a model whose core can be shared (a per-neuron linear readout of its "
                         f"features), got {type(self).__name__}")

    def no_decay_names(self) -> set[str]:
        """Names (in this module) of the parameters that AdamW must not weight-decay: time constants
        and gains, not weights. Here every parameter of the prefilter (AdapTrans' ``logit_a_on``,
        ``logit_a_off``, ``logit_w``: decay would pull ``a = sigmoid(logit)`` towards 0.5, i.e. tau
        ~ 7 ms at 5 ms bins, and the ON/OFF weight ``w`` towards 0.5)."""
        return {f"prefilter.{n}" for n, _ in self.prefilter.named_parameters()}
