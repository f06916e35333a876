"""Fitting one model along several paths from the same weights, keeping the best: :func:`race`.

``fit``'s default for a LinearNonlinear model runs L-BFGS from two starts (the closed-form
ridge STRF and the random initialisation, :data:`~.options.LN_STARTS`) and keeps the fit
with the lower validation loss; the starts and their validation losses are recorded in
``FitResult.raced``. With a single run it is just that run.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

from torch import nn

from .stopping import INTERRUPTED_RESULT

__all__ = ["race"]


def _state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _better(v: float, than: float) -> bool:
    """A finite validation loss beats NaN (no validation set) and any larger one."""
    return math.isfinite(v) and (not math.isfinite(than) or v < than)


def race(model: nn.Module, runs: Sequence[Callable], t0: float | None = None):
    """Each ``run(model) -> FitResult`` from the weights ``model`` has now; the run with the
    lowest ``best_val_loss`` is kept (its weights loaded into ``model``, its result returned;
    the first run without a validation set). The kept result's ``raced`` lists every run's
    ``init``, ``best_val_loss`` and ``epochs``, and its ``wall_s`` covers all runs (from
    ``t0``, a ``time.perf_counter()`` value). An interrupt (Ctrl-C) during a later run keeps
    the better of the earlier best and the interrupted run's best weights, and re-raises
    with that result as the exception's ``fit_result``.
    """
    if len(runs) == 1:
        return runs[0](model)
    start = _state(model)
    kept, kept_state, tried = None, None, []
    for run in runs:
        model.load_state_dict(start)
        try:
            res = run(model)
        except KeyboardInterrupt as err:
            partial = getattr(err, INTERRUPTED_RESULT, None)
            if kept is not None and (partial is None or not _better(partial.best_val_loss, kept.best_val_loss)):
                model.load_state_dict(kept_state)
                setattr(err, INTERRUPTED_RESULT, kept)
            raise
        tried.append(dict(init=res.init, best_val_loss=float(res.best_val_loss), epochs=int(res.epochs)))
        if kept is None or _better(res.best_val_loss, kept.best_val_loss):
            kept, kept_state = res, _state(model)
    model.load_state_dict(kept_state)
    kept.raced = tried
    if t0 is not None:
        kept.wall_s = time.perf_counter() - t0
    return kept
