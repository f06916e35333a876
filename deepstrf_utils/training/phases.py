"""Fits in two phases: one :class:`~.fitting.FitResult` for both.

The L-BFGS path of :func:`~.fitting.fit` from a random start first runs a few AdamW epochs
(:data:`~.options.LBFGS_WARMUP`) and then L-BFGS from the best of them; :func:`join_phases`
makes the two results one history.
"""
from __future__ import annotations

__all__ = ["join_phases"]


def join_phases(first, second):
    """``second`` (modified and returned) with ``first``'s epochs before its own.

    The per-epoch lists (``train_loss``, ``val_loss``, ``lr``) are concatenated, ``epochs``
    added, and ``best_epoch`` counted over both phases: ``second``'s best epoch shifted by
    ``first.epochs``, or, when no epoch of ``second`` beat its start (``best_epoch`` -1:
    the weights ``first`` ended with were kept), ``first``'s best epoch. ``wall_s``,
    ``stop_reason``, ``optimizer`` and ``init`` stay ``second``'s.
    """
    n = int(first.epochs)
    second.train_loss = list(first.train_loss) + list(second.train_loss)
    second.val_loss = list(first.val_loss) + list(second.val_loss)
    second.lr = list(first.lr) + list(second.lr)
    second.best_epoch = n + second.best_epoch if second.best_epoch >= 0 else first.best_epoch
    second.epochs = n + int(second.epochs)
    return second
