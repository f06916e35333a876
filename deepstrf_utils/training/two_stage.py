"""Fitting procedures built on :func:`~.fitting.fit`: the two-stage fit of Pennington & David (2023).

:func:`fit_two_stage` fits a population model in two stages, as NEMS fits the
``...-lvl.R-dexp.R`` models: first with the output nonlinearity frozen (at the data's
scale, :meth:`init_output`), then every parameter at a lower learning rate.
:data:`FIT_PROCEDURES` names the procedures, so that a runner configuration can ask for one
(``fit_kwargs={"protocol": "two_stage", ...}``: the configuration key keeps its name so that
configuration ids do not change); :func:`get_fit_procedure` looks one up.

Shapes: B stimuli, F bands, T time bins, N neurons, R repeats.
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

from torch import nn

from .arguments import check_fit_call
from .fitting import FitResult, fit

logger = logging.getLogger(__name__)

__all__ = ["fit_two_stage", "FIT_PROCEDURES", "get_fit_procedure"]


def fit_two_stage(
    model: nn.Module,
    train,
    val=None,
    loss="nmse",
    lr: float = 1e-3,
    lr_stage2: float = 1e-4,
    frozen: Sequence[str] = ("output_nonlinearity",),
    **fit_kwargs,
) -> FitResult:
    """Two-stage fit (Pennington & David 2023): output nonlinearity frozen, then everything.

    Stage 1: :func:`fit` with every parameter whose name starts with one of ``frozen``
    (default the per-neuron double exponential, ``output_nonlinearity.*``) frozen, at
    learning rate ``lr`` (1e-3), after ``init_output`` has set the output nonlinearity to
    the training data's scale. Stage 2: :func:`fit` of every trainable parameter from the
    stage-1 weights (best weights, restored), at ``lr_stage2`` (1e-4), without a new
    ``init_output``. Both stages use ``loss`` (default ``"nmse"``,
    :func:`~deepstrf_utils.metrics.nmse_loss`), the same seed and data order, and the
    other ``fit_kwargs`` (patience, batch_size, max_epochs per stage, ...). The frozen
    parameters get their ``requires_grad`` back afterwards, also after an error.

    Args:
        model: ``forward((B, 1, F, T)) -> (B, N, T)``, trained in place.
        train, val: ``ResponseDataset`` (items ``(stim (1, F, T), resp (N, R, T))``).
        frozen: name prefixes of the parameters frozen in stage 1 (each must match one).
        fit_kwargs: passed to both :func:`fit` calls (not ``init_output``: stage 1 uses its
            value, default True; stage 2 always False).

    Returns:
        One :class:`FitResult` for both stages: histories concatenated (``lr`` shows the
        stage boundary), ``best_epoch`` / ``best_val_loss`` those of stage 2 (counted from
        the first epoch of stage 1), ``epochs`` and ``wall_s`` summed.
    """
    check_fit_call({"model": model, "lr": lr, "lr_stage2": lr_stage2, **fit_kwargs}, "fit_two_stage")
    if isinstance(frozen, str):
        frozen = (frozen,)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    unmatched = [f for f in frozen if not any(n.startswith(f) for n, _ in named)]
    if unmatched:
        raise ValueError(f"expected trainable parameters named {unmatched}* in {type(model).__name__} "
                         f"to freeze in stage 1; its parameters: {sorted({n.split('.')[0] for n, _ in named})}")
    to_freeze = [p for n, p in named if any(n.startswith(f) for f in frozen)]
    init_output = fit_kwargs.pop("init_output", True)
    try:
        for p in to_freeze:
            p.requires_grad_(False)
        first = fit(model, train, val, loss=loss, lr=lr, init_output=init_output, **fit_kwargs)
    finally:
        for p in to_freeze:
            p.requires_grad_(True)
    logger.info("fit_two_stage: stage 1 (%s frozen, lr %g): %d epochs, best %d", list(frozen), lr, first.epochs,
                first.best_epoch)
    second = fit(model, train, val, loss=loss, lr=lr_stage2, init_output=False, **fit_kwargs)
    out = FitResult(
        train_loss=first.train_loss + second.train_loss,
        val_loss=first.val_loss + second.val_loss,
        lr=first.lr + second.lr,
        best_epoch=first.epochs + second.best_epoch if second.best_epoch >= 0 else -1,
        best_val_loss=second.best_val_loss,
        epochs=first.epochs + second.epochs,
        wall_s=first.wall_s + second.wall_s,
        stopped_early=second.stopped_early,
        neuron=second.neuron,
    )
    return out


#: Named fitting procedures: ``name -> function(model, train, val, **fit_kwargs) -> FitResult``.
FIT_PROCEDURES: dict[str, Callable[..., FitResult]] = {"standard": fit, "two_stage": fit_two_stage}


def get_fit_procedure(name: str) -> Callable[..., FitResult]:
    """The fitting function called ``name`` in :data:`FIT_PROCEDURES` ("standard": :func:`fit`)."""
    if name not in FIT_PROCEDURES:
        raise ValueError(f"expected a fitting procedure in {sorted(FIT_PROCEDURES)}, got {name!r}")
    return FIT_PROCEDURES[name]
