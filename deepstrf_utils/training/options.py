"""The fitting options shared by :func:`~.fitting.fit`, :func:`~.stacked.fit_single_units` and
:func:`~.sessions.fit_sessions` (:class:`FitOptions`: one set of names, one set of defaults), the
two optimiser paths, and :func:`resolve_fit_options`, the one rule that resolves ``"auto"`` / None
per model family and entry point (chosen in ``benchmarks/bench_fit_quality.py`` on real and
mismatched data; speed in ``bench_fit.py``)."""
from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Callable

import torch
from torch import nn

from ..adaptrans import AdapTrans
from ..models import LinearNonlinear, NetworkReceptiveField, Transformer
from .chunks import check_train_chunk, supports_chunks
from .warmstart import supports_ridge_init

__all__ = ["FitOptions", "with_fit_options", "resolve_fit_options", "ADAMW_FIT_KWARGS", "LBFGS_ITERATIONS_PER_EPOCH",
           "LBFGS_CHUNK", "RECURRENT_AUTO", "RIDGE_START_PATIENCE", "RECURRENT_CHUNK_WITHOUT_ADAPTRANS", "WEIGHT_DECAY",
           "LBFGS_MIN_EPOCHS", "RIDGE_START_MIN_EPOCHS", "LN_STARTS", "LN_STARTS_FEW_STIMULI", "ADAMW_AUTO",
           "FEW_STIMULI_AUTO", "SESSIONS_AUTO"]


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How to fit: the options of :func:`~.fitting.fit`, :func:`~.stacked.fit_single_units` and
    :func:`~.sessions.fit_sessions`, with their one set of defaults.

    Each entry point takes ``options=FitOptions(...)`` and the same names as keyword arguments
    (a keyword overrides the field: ``fit(model, train, val, lr=1e-3)``); a name that is not an
    option is a TypeError naming it. ``"auto"`` / None values are resolved per model family and
    entry point by :func:`resolve_fit_options` (the defaults per family: :func:`~.fitting.fit`).

    Fields:
        loss: "mse", "poisson", "correlation", ... or a callable
            ``loss(pred (B, N, T), resp (B, N, R, T), reduction="none") -> (N,)``; the batch loss
            is the mean over the neurons that have data in the batch.
        optimizer: "auto" (per model family), "adamw" or "lbfgs".
        init: "auto" (the ridge STRF start where the L-BFGS path fits a Linear / LN model),
            "ridge" or None (the model's own weights).
        lr: learning rate (None: 1e-3 AdamW, 1.0 L-BFGS, or the family's :data:`ADAMW_AUTO` /
            :data:`RECURRENT_AUTO`); given with ``optimizer="auto"``, it selects AdamW.
        weight_decay: None: :data:`WEIGHT_DECAY` on the AdamW path (decoupled, on weights only),
            none on the L-BFGS path (there an L2 penalty ``weight_decay / 2 * ||w||^2``). Time
            constants and gains are exempt (:func:`~.optim.no_decay_names`).
        max_epochs: None: 1000 (AdamW), 200 (L-BFGS).
        patience: epochs without improvement of the validation loss before stopping; "auto":
            50 (AdamW), 3 (L-BFGS), the family's own (:data:`ADAMW_AUTO`, :data:`RECURRENT_AUTO`);
            None: run ``max_epochs`` and keep the best weights.
        batch_size: stimuli per AdamW step and per validation pass (None: 8, or the family's).
        rel_tol: relative improvement the validation loss must make (None: 0 AdamW, 1e-4 L-BFGS).
        min_delta: absolute improvement the validation loss must make.
        scheduler: None or "plateau" (LR x ``factor`` after ``patience`` bad epochs; defaults
            factor 0.5, patience max(1, patience // 5); override in ``scheduler_kwargs``).
        clip_grad: max L2 norm of the gradient (per unit in :func:`~.stacked.fit_single_units`).
        prefilter_lr: AdamW learning rate of the ``prefilter.*`` parameters (None: ``lr``).
        train_chunk: ``(L, W)``: recurrent models trained on chunks of ``L`` bins with ``W`` bins
            of burn-in (:mod:`.chunks`); "auto": :func:`resolve_fit_options`; None: whole stimuli.
        init_output: first set the output at the training target's per-neuron mean / std
            (models with ``init_output``).
        device: "auto" (cuda if available), "cpu", "cuda", ...
        seed: fixes torch / numpy / random and the data order.
        progress: a tqdm bar over epochs.
        check_stimulus_format: ValueError when the model's ``dt_ms`` / band centres differ from
            the data's (:mod:`.stimulus_format`); False allows it.
    """

    loss: str | Callable = "mse"
    optimizer: str = "auto"
    init: str | None = "auto"
    lr: float | None = None
    weight_decay: float | None = None
    max_epochs: int | None = None
    patience: int | None | str = "auto"
    batch_size: int | None = None
    rel_tol: float | None = None
    min_delta: float = 0.0
    scheduler: str | None = None
    scheduler_kwargs: dict | None = None
    clip_grad: float | None = None
    prefilter_lr: float | None = None
    train_chunk: tuple[int, int] | None | str = "auto"
    init_output: bool = True
    device: str | torch.device = "auto"
    seed: int = 0
    progress: bool = True
    check_stimulus_format: bool = True

    @classmethod
    def names(cls) -> list[str]:
        """The option names, in field order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def of(cls, options: "FitOptions | dict | None" = None, overrides: dict | None = None,
           function: str = "fit") -> "FitOptions":
        """``options`` (a FitOptions, a dict of its fields or None: the defaults) with ``overrides``
        (keyword arguments of ``function``) on top. TypeError naming an unknown option."""
        if options is None:
            options = cls()
        elif isinstance(options, dict):
            options, overrides = cls(), {**options, **(overrides or {})}
        elif not isinstance(options, cls):
            raise TypeError(f"expected options to be a FitOptions (or a dict of its fields) or None, got "
                            f"{options!r} ({type(options).__name__})"[:300])
        overrides = overrides or {}
        known = cls.names()
        for name in overrides:
            if name not in known:
                near = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise TypeError(f"{function}() got an unknown option {name!r}{hint}; its options are "
                                f"{', '.join(known)}")
        return dataclasses.replace(options, **overrides) if overrides else options

    def as_dict(self) -> dict:
        """Option name -> value (the values themselves, not copies)."""
        return {name: getattr(self, name) for name in self.names()}


def with_fit_options(function: Callable) -> Callable:
    """Give ``function`` (which takes ``options=None, **kwargs``) a signature that lists every
    :class:`FitOptions` field as a keyword-only parameter with its default, so that ``help()``,
    notebooks and ``inspect.signature`` show the options."""
    sig = inspect.signature(function)
    own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
             for f in dataclasses.fields(FitOptions)]
    function.__signature__ = sig.replace(parameters=own + extra)
    return function


#: the previous defaults of :func:`fit` (AdamW lr 1e-3, weight decay 1e-2, batch 8, patience 50) as
#: explicit arguments; the published protocol of each dataset is
#: ``deepstrf_utils.runs.protocols.protocol_fit_kwargs(dataset)``
ADAMW_FIT_KWARGS = dict(optimizer="adamw", init=None, lr=1e-3, weight_decay=1e-2, max_epochs=1000, patience=50,
                        batch_size=8, rel_tol=0.0)
#: L-BFGS iterations between two validation checks: one "epoch" of the L-BFGS path
LBFGS_ITERATIONS_PER_EPOCH = 5
#: stimuli per forward pass when L-BFGS accumulates its full-batch gradient (bounds memory)
LBFGS_CHUNK = 64
#: stimuli per AdamW step (and per validation pass) when ``batch_size`` is None
BATCH_SIZE = 8
#: AdamW's decoupled weight decay when ``weight_decay`` is None (the L-BFGS path: none)
WEIGHT_DECAY = 1e-2
#: what arguments left at None / "auto" become on each path
_DEFAULTS = {
    "adamw": dict(lr=1e-3, max_epochs=1000, patience=50, rel_tol=0.0),
    "lbfgs": dict(lr=1.0, max_epochs=200, patience=3, rel_tol=1e-4),
}
#: L-BFGS: patience cannot stop a fit from a random start before this many epochs (its
#: validation loss often rises in the first epochs before it falls; benchmarks/bench_fit_quality.py)
LBFGS_MIN_EPOCHS = 10
#: L-BFGS patience (epochs) after a closed-form ridge start (Linear / LN), and the epochs it
#: runs at least: the start must get the chance to be left (benchmarks/bench_fit_quality.py)
RIDGE_START_PATIENCE = 3
RIDGE_START_MIN_EPOCHS = 5
#: the L-BFGS starts that ``optimizer="auto"`` fits a LinearNonlinear model from, keeping the one
#: with the lower validation loss: the closed-form ridge start (its penalty kept) and the random
#: start. Neither was as accurate as AdamW on every set alone (TORC unit without AdapTrans: ridge
#: start 0.26 vs random 0.45 test CCnorm; starling song: 0.60 vs -0.02); the race was on every
#: real and mismatched set but the starling song (benchmarks/README.md, bench_fit_quality.py)
LN_STARTS = ("ridge", None)
#: the starts of :data:`LN_STARTS` when the training set has no more stimuli than one AdamW
#: batch (:data:`BATCH_SIZE`): the ridge start (L-BFGS) and the AdamW path of
#: :data:`ADAMW_FIT_KWARGS` ("adamw"), the better on validation kept. On the starling song (6
#: training segments, 2 short validation segments) the random L-BFGS start reached the lowest
#: validation loss on one split with a flat prediction (test CCnorm -0.05, AdamW 0.17, ridge
#: start 0.72: the validation segments carried little signal), and the ridge start alone fell
#: 0.20 below AdamW on another; racing it against AdamW was never more than 0.004 below AdamW
#: (mean +0.12 with AdapTrans, +0.45 without) at 2.4-3.2x AdamW's CPU time, a few seconds
#: (benchmarks/README.md, bench_fit_quality.py)
LN_STARTS_FEW_STIMULI = ("ridge", "adamw")
#: AdamW settings that ``optimizer="auto"`` uses for NetworkReceptiveField and DNet: L-BFGS
#: (random start, or after AdamW warm-up epochs) fell 0.10-0.45 test CCnorm below AdamW on some
#: neurons of the TORC unit and of the mismatched population; lr 3e-3 with patience 20 matched
#: AdamW at lr 1e-3 / patience 50 on every one (worst -0.04) at about 0.4x its CPU time
#: (benchmarks/README.md, bench_fit_quality.py). Only with more training stimuli than one batch
#: (``batch_size``): with one AdamW step per epoch (the starling song's 6 training segments) lr
#: 3e-3 left 2 of 5 fits at a flat prediction (test CCnorm ~0.03); there the AdamW defaults
#: (:data:`FEW_STIMULI_AUTO`) apply.
ADAMW_AUTO = dict(lr=3e-3, max_epochs=1000, patience=20, rel_tol=0.0, batch_size=8)
#: the rule of ``optimizer="auto"`` for a training set of no more stimuli than one AdamW batch
#: (:data:`BATCH_SIZE`; the starling song's 6 training segments): every model but Linear / LN
#: (:data:`LN_STARTS_FEW_STIMULI`) and the Transformer (not measured) takes the AdamW path with
#: AdamW's own defaults (those of :data:`ADAMW_FIT_KWARGS`: lr 1e-3, weight decay 1e-2, batch 8,
#: patience 50, whole stimuli). With one or two AdamW steps per epoch the faster settings stop
#: too soon (NRF / DNet at lr 3e-3: flat fits, test CCnorm ~0.03; StateNet with
#: :data:`RECURRENT_AUTO`: 0.20 below AdamW on average with AdapTrans, worst split -0.60, -0.48
#: on whole songs: the short patience, not the chunks), and L-BFGS from the random start fell
#: below AdamW on some splits (NRF -0.10, DNet without AdapTrans -0.40, 2D-CNN -0.07 / -0.12);
#: the better of L-BFGS and AdamW on validation was still 0.04-0.10 below AdamW on some
#: splits (benchmarks/README.md, bench_fit_quality.py)
FEW_STIMULI_AUTO = "adamw"
#: AdamW settings that ``optimizer="auto"`` uses for recurrent models that have no better
#: path (measured, ``benchmarks/README.md``: L-BFGS is not better than AdamW there):
#: training on chunks of 16 bins with 8 bins of burn-in (``fit(..., train_chunk=(16, 8))``,
#: :mod:`.chunks`), 4 stimuli per step, lr 2e-3, patience 8: the published protocol's test
#: accuracy at about 1/6 of its CPU time for StateNet on one neuron of ~4,000 bins
#: Not with few training stimuli (:data:`FEW_STIMULI_AUTO`) for a GRU / LSTM model
RECURRENT_AUTO = dict(lr=2e-3, max_epochs=1000, patience=8, rel_tol=0.0, chunk=(16, 8), batch_size=4)
#: the chunk of :data:`RECURRENT_AUTO` for a recurrent model WITHOUT an AdapTrans prefilter. The
#: short chunk suits models whose slow adaptation is in AdapTrans (run on whole songs before the
#: chunks); without it the recurrence must carry that memory itself, and 16 / 8 bins cost StateNet
#: 0.08-0.10 test CCnorm (0.70-0.72 against 0.80 on whole songs, 2 seeds), 64 / 64 none (0.78-0.81)
#: at 0.6x the whole-song CPU time (benchmarks/README.md)
RECURRENT_CHUNK_WITHOUT_ADAPTRANS = (64, 64)


def is_recurrent(model: nn.Module) -> bool:
    """A GRU / LSTM or an attention core inside: models that ``optimizer="auto"`` sends to AdamW
    (:data:`RECURRENT_AUTO`; the Transformer on whole stimuli: L-BFGS stopped it at a poor early
    plateau, benchmarks/bench_transformer.py)."""
    return any(isinstance(m, (nn.RNNBase, Transformer)) for m in model.modules())


#: what ``optimizer="auto"`` gives :func:`~.sessions.fit_sessions`: AdamW at :data:`ADAMW_FIT_KWARGS`'
#: settings (lr 1e-3, patience 50, batch 8, weight decay 1e-2) for every model: the sessions' batches
#: are interleaved in one minibatch loop (there is no L-BFGS path over sessions)
SESSIONS_AUTO = dict(lr=1e-3, max_epochs=1000, patience=50, rel_tol=0.0, batch_size=8)
#: the entry points :func:`resolve_fit_options` knows
ENTRIES = ("fit", "fit_single_units", "fit_sessions")


def resolve_fit_options(model: nn.Module, options: FitOptions, n_stimuli: int | None = None,
                        force_adamw: bool = False, entry: str = "fit") -> dict:
    """The effective optimiser settings of ``options`` for ``model``: every ``"auto"`` / None resolved.

    The one rule of the three entry points (``entry``: "fit", "fit_single_units", "fit_sessions"):

    * ``optimizer="auto"`` takes AdamW when an AdamW-only setting is given (``lr``,
      ``prefilter_lr``, ``scheduler``, ``clip_grad``) or ``force_adamw`` (``fit_single_units(...,
      batched=True)``); else, per family: a recurrent model (:func:`is_recurrent`) AdamW with
      :data:`RECURRENT_AUTO`; NetworkReceptiveField / DNet AdamW with :data:`ADAMW_AUTO` (when
      ``n_stimuli``, the number of training stimuli, exceeds its batch; None: it does; else the
      AdamW defaults); ``weight_decay`` or ``batch_size`` given: AdamW (so that they apply);
      otherwise L-BFGS. With an AdamW setting, a recurrent model keeps :data:`RECURRENT_AUTO`'s
      other defaults and an NRF / DNet :data:`ADAMW_AUTO`'s.
    * With ``n_stimuli`` <= :data:`BATCH_SIZE` (one AdamW step per epoch) and ``optimizer="auto"``:
      :data:`FEW_STIMULI_AUTO` (the AdamW defaults) for every model but Linear / LN and the
      Transformer; LinearNonlinear races :data:`LN_STARTS_FEW_STIMULI` (its ridge start and the
      AdamW path).
    * ``entry="fit_sessions"``: AdamW with :data:`SESSIONS_AUTO` for every model, no ridge start
      and whole stimuli, no scheduler (``optimizer="lbfgs"``, ``init="ridge"``, a ``train_chunk`` or a
      ``scheduler``: ValueError).
    * ``init="auto"``: the ridge start on the L-BFGS path for Linear / LN (:data:`LN_STARTS`: LN
      races it against its random start); ``starts`` lists the L-BFGS starts (init, patience,
      minimum epochs) to fit and race.
    * ``weight_decay`` None: :data:`WEIGHT_DECAY` on the AdamW path, 0 on the L-BFGS path.
      ``batch_size`` with ``optimizer="lbfgs"``: ValueError.
    * ``train_chunk="auto"``: :data:`RECURRENT_AUTO`'s ``chunk`` (:data:`RECURRENT_CHUNK_WITHOUT_ADAPTRANS`
      without AdapTrans) when the auto rule chose AdamW for a recurrent model that can be
      chunked (and no AdamW setting was given), else None.

    Returns a dict: optimizer, init, train_chunk, lr, weight_decay, starts, batch_size, max_epochs,
    patience, rel_tol.
    """
    if entry not in ENTRIES:
        raise ValueError(f"expected entry in {ENTRIES}, got {entry!r}")
    o = options
    optimizer, init, lr, batch_size, weight_decay = o.optimizer, o.init, o.lr, o.batch_size, o.weight_decay
    patience, train_chunk = o.patience, o.train_chunk
    defaults = None
    few_stimuli = n_stimuli is not None and n_stimuli <= BATCH_SIZE  # one AdamW step per epoch
    chosen = optimizer == "auto"
    if entry == "fit_sessions":
        if optimizer not in ("auto", "adamw") or init not in ("auto", None):
            raise ValueError(f"fit_sessions trains by AdamW from the model's own weights; got optimizer={optimizer!r}, "
                             f"init={init!r} (expected optimizer 'auto' or 'adamw', init 'auto' or None)")
        if o.scheduler is not None:
            raise ValueError(f"fit_sessions has no learning-rate scheduler; got scheduler={o.scheduler!r} (expected None)")
        if not (isinstance(train_chunk, str) and train_chunk == "auto") and train_chunk is not None:
            raise ValueError(f"fit_sessions trains on whole stimuli; got train_chunk={train_chunk!r} (expected 'auto' "
                             "or None)")
        optimizer, init, train_chunk, defaults = "adamw", None, None, SESSIONS_AUTO
    elif optimizer == "auto":
        adamw_only = (lr, o.prefilter_lr, o.scheduler, o.clip_grad)
        optimizer = "adamw" if force_adamw or any(v is not None for v in adamw_only) else "lbfgs"
        attention = any(isinstance(m, Transformer) for m in model.modules())
        if optimizer == "lbfgs" and few_stimuli and not supports_ridge_init(model) and not attention:
            optimizer = FEW_STIMULI_AUTO  # with AdamW's own defaults (ADAMW_FIT_KWARGS' settings)
        elif optimizer == "lbfgs" and is_recurrent(model):
            optimizer, defaults = "adamw", RECURRENT_AUTO
        elif optimizer == "lbfgs" and isinstance(model, NetworkReceptiveField):  # DNet too
            optimizer, defaults = "adamw", ADAMW_AUTO
        elif optimizer == "lbfgs" and (weight_decay is not None or batch_size is not None):
            optimizer = "adamw"  # minibatch settings: they apply on the AdamW path only
    prefilter_lr, scheduler, clip_grad = o.prefilter_lr, o.scheduler, o.clip_grad
    max_epochs, rel_tol = o.max_epochs, o.rel_tol
    if optimizer not in _DEFAULTS:
        raise ValueError(f"expected optimizer 'auto', 'adamw' or 'lbfgs', got {optimizer!r}")
    if optimizer == "lbfgs" and (prefilter_lr is not None or scheduler is not None or clip_grad is not None):
        raise ValueError("prefilter_lr, scheduler and clip_grad are AdamW settings; got them with optimizer='lbfgs'")
    if optimizer == "lbfgs" and batch_size is not None:
        raise ValueError(f"batch_size is a setting of the AdamW path (L-BFGS takes every training stimulus in "
                         f"each step); got batch_size={batch_size!r} with optimizer='lbfgs': leave it unset or "
                         "pass optimizer='adamw'")
    starts = None
    if init == "auto":
        init = "ridge" if optimizer == "lbfgs" and supports_ridge_init(model) else None
        if init == "ridge" and isinstance(model, LinearNonlinear):
            starts = LN_STARTS_FEW_STIMULI if chosen and few_stimuli else LN_STARTS
    if init not in (None, "ridge"):
        raise ValueError(f"expected init 'auto', 'ridge' or None, got {init!r}")
    if init == "ridge" and not supports_ridge_init(model):
        raise ValueError(f"init='ridge' needs a Linear or LinearNonlinear model, got {type(model).__name__}")
    d = defaults or _DEFAULTS[optimizer]
    auto_patience = isinstance(patience, str) and patience == "auto"

    def start(i):  # an L-BFGS start (its init, patience, minimum epochs), or "adamw": the AdamW path
        if i == "adamw":
            a = ADAMW_FIT_KWARGS
            return dict(init=None, optimizer="adamw", lr=a["lr"], weight_decay=a["weight_decay"],
                        batch_size=a["batch_size"], patience=a["patience"] if auto_patience else patience,
                        max_epochs=a["max_epochs"] if max_epochs is None else max_epochs,
                        rel_tol=a["rel_tol"] if rel_tol is None else rel_tol)
        p = (RIDGE_START_PATIENCE if i == "ridge" else d["patience"]) if auto_patience else patience
        return dict(init=i, optimizer="lbfgs", patience=p,
                    min_epochs=RIDGE_START_MIN_EPOCHS if i == "ridge" else LBFGS_MIN_EPOCHS)

    starts = [start(i) for i in (starts or (init,))] if optimizer == "lbfgs" else []
    if auto_patience:
        patience = starts[0]["patience"] if starts else d["patience"]
    if isinstance(train_chunk, str) and train_chunk == "auto":
        train_chunk = d.get("chunk") if supports_chunks(model) else None
        if train_chunk is not None and not isinstance(getattr(model, "prefilter", None), AdapTrans):
            train_chunk = RECURRENT_CHUNK_WITHOUT_ADAPTRANS
    train_chunk = check_train_chunk(train_chunk, model)
    if train_chunk is not None and optimizer != "adamw":
        raise ValueError(f"train_chunk is a setting of the AdamW path; got it with optimizer={optimizer!r}")
    if weight_decay is None:
        weight_decay = WEIGHT_DECAY if optimizer == "adamw" else 0.0
    return dict(optimizer=optimizer, init=init, train_chunk=train_chunk, lr=d["lr"] if lr is None else lr,
                weight_decay=weight_decay, starts=starts,
                batch_size=d.get("batch_size", BATCH_SIZE) if batch_size is None else batch_size,
                max_epochs=d["max_epochs"] if max_epochs is None else max_epochs,
                patience=patience,
                rel_tol=d["rel_tol"] if rel_tol is None else rel_tol)
