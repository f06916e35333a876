"""Early stopping, the best weights, and what an interrupted fit keeps.

:class:`EarlyStopping` is the best-epoch bookkeeping of :func:`~.fitting.fit` (both
optimiser paths) and :func:`~.sessions.fit_sessions`: the best validation loss, the weights
at it (restored at the end) and the checks since it last improved. :func:`improved` is the
one improvement test (also used per unit by :func:`~.stacked.fit_single_units`).

Interrupting a fit (Ctrl-C, ``KeyboardInterrupt``) restores the best weights so far (or,
without a validation set, those of the last completed epoch; before any epoch completed,
the starting weights), and :func:`keep_interrupted` attaches what was learned to the
re-raised exception as its attribute :data:`INTERRUPTED_RESULT` (``err.fit_result``):
a :class:`~.fitting.FitResult` with ``stop_reason="interrupted"`` for :func:`fit` and
:func:`fit_sessions`, ``(models, results)`` of the units fitted so far for
:func:`fit_single_units`::

    try:
        fit(model, train, val)
    except KeyboardInterrupt as err:
        result = err.fit_result      # the model holds the best weights so far
"""
from __future__ import annotations

import logging
import math

from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["EarlyStopping", "improved", "keep_interrupted", "INTERRUPTED_RESULT", "INTERRUPTED"]

#: the attribute of a re-raised ``KeyboardInterrupt`` that holds the result of the interrupted fit
INTERRUPTED_RESULT = "fit_result"
#: ``FitResult.stop_reason`` of an interrupted fit
INTERRUPTED = "interrupted"


def improved(v: float, best: float, min_delta: float, rel_tol: float) -> bool:
    """The early-stopping test: ``v`` beats ``best`` by more than ``max(min_delta, rel_tol * |best|)``."""
    if not math.isfinite(best):
        return math.isfinite(v)
    return v < best - max(min_delta, rel_tol * abs(best))


def _snapshot(model: nn.Module) -> dict:
    return {k: t.detach().clone() for k, t in model.state_dict().items()}


class EarlyStopping:
    """Best validation loss, the weights at it and the checks since it improved.

    ``res``: the :class:`~.fitting.FitResult` whose ``best_epoch`` / ``best_val_loss`` it
    keeps up to date. Without a validation set (``has_val=False``) every epoch is the best
    one and the last weights stay. ``model``: when given, its starting weights are kept
    for :meth:`restore_interrupted` (an interrupt before the first epoch ends restores them).
    ``min_epochs``: patience cannot end the fit before that many epochs: the validation loss
    of a fit from a random start often rises before it falls, and a fit from a closed-form
    start must get the chance to leave it (:data:`~.options.LBFGS_MIN_EPOCHS`).
    """

    def __init__(self, res, has_val: bool, patience, min_delta: float, rel_tol: float,
                 model: nn.Module | None = None, min_epochs: int = 0):
        self.res, self.has_val, self.patience, self.min_epochs = res, has_val, patience, int(min_epochs)
        self.min_delta, self.rel_tol = min_delta, rel_tol
        self.best_val, self.best_state, self.since_best = math.inf, None, 0
        self.last_state = _snapshot(model) if model is not None else None

    def keep(self, model: nn.Module, v: float) -> None:
        """Make the current weights, with validation loss ``v``, the best so far (a closed-form start)."""
        self.best_val = self.res.best_val_loss = v
        self.best_state = _snapshot(model)

    def update(self, model: nn.Module, epoch: int, v: float) -> bool:
        """Record ``epoch``'s validation loss ``v``; True when patience has run out (and
        ``min_epochs`` epochs have run)."""
        if not self.has_val:
            self.res.best_epoch = epoch
            if self.last_state is not None:  # what an interrupt in the next epoch falls back to
                self.last_state = _snapshot(model)
            return False
        if improved(v, self.best_val, self.min_delta, self.rel_tol):
            self.keep(model, v)
            self.since_best, self.res.best_epoch = 0, epoch
        else:
            self.since_best += 1
        return self.patience is not None and self.since_best >= self.patience and epoch + 1 >= self.min_epochs

    def restore(self, model: nn.Module) -> None:
        """Load the best weights (nothing to do without a validation set: the last weights stay)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def restore_interrupted(self, model: nn.Module) -> None:
        """After an interrupt: the best weights, else those of the last completed epoch (or
        the start), never the half-updated weights of the epoch that was cut."""
        state = self.best_state if self.best_state is not None else self.last_state
        if state is not None:
            model.load_state_dict(state)


def keep_interrupted(err: BaseException, result, what: str, epochs: int, best_epoch) -> None:
    """Attach ``result`` to the interrupt ``err`` (attribute :data:`INTERRUPTED_RESULT`) and log it.

    Called by the fitting functions before they re-raise ``err``; ``what`` names the fit in
    the log line, ``epochs`` / ``best_epoch`` say how far it got.
    """
    setattr(err, INTERRUPTED_RESULT, result)
    logger.warning("%s interrupted after %d epoch(s): best weights (epoch %s) restored; the result so far is "
                   "the exception's .%s", what, epochs, best_epoch, INTERRUPTED_RESULT)
