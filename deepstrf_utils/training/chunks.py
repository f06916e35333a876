"""Training a recurrent model on chunks of its sequences (truncated back-propagation with burn-in).

A GRU's cost on a CPU grows with the number of sequential time steps and hardly with the
batch (``benchmarks/README.md``, issue 11). During TRAINING only, ``fit(...,
train_chunk=(L, W))`` therefore cuts every stimulus of a batch into chunks of ``L`` bins,
each preceded by up to ``W`` bins of burn-in context, and runs all chunks of the batch as
one recurrent batch of ``W + L`` steps:

- everything before the recurrence (prefilter, locally connected layer, BatchNorm over the
  valid bins, sigmoid: ``model.recurrent_input``) runs on the whole stimuli, exactly as
  without chunks;
- chunk k of a stimulus covers its bins ``[k L, (k + 1) L)``; its window starts
  ``min(W, k L)`` bins earlier, from a zero recurrent state (the first chunk has no burn-in:
  its zero state is the model's true state at the stimulus onset);
- the loss is taken on the chunk's own ``L`` bins only, so every valid training bin enters
  the loss exactly once, and the batch loss is the same pooled loss over the same bins as
  without chunks (exact, with an exact gradient, when ``W`` >= the longest stimulus: every
  window then starts at the onset).

Validation, early stopping, prediction and evaluation run the model on whole stimuli from a
zero state: the model is unchanged, only its training gradient is truncated to ``W + L``
steps. Models that can be chunked expose ``recurrent_input(z, lengths) -> (B, T, D)`` and
``recurrent_output((K, S, D)) -> (K, H, S)`` around their recurrence (e.g. ``StateNet``).

Shapes: B stimuli, F bands, T time bins, N neurons, K chunks, S = W + L window bins.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["supports_chunks", "check_train_chunk", "chunk_windows", "chunked_batch"]


def supports_chunks(model: nn.Module) -> bool:
    """Whether ``model`` can be trained on chunks (it has ``recurrent_input`` / ``recurrent_output``)."""
    return all(callable(getattr(model, name, None))
               for name in ("recurrent_input", "recurrent_output", "forward_readout", "prefiltered"))


def check_train_chunk(train_chunk, model: nn.Module) -> tuple[int, int] | None:
    """``None`` or ``(L, W)`` -> validated ``(L, W)`` ints (or None).

    Raises:
        ValueError: not a pair of integers with ``L >= 1`` and ``W >= 0``, or a model
            without ``recurrent_input`` / ``recurrent_output`` (not a chunkable recurrent model).
    """
    if train_chunk is None:
        return None
    ok = isinstance(train_chunk, (tuple, list)) and len(train_chunk) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in train_chunk)
    if not ok or int(train_chunk[0]) < 1 or int(train_chunk[1]) < 0:
        raise ValueError(f"expected train_chunk None or (L, W) with integers L >= 1 (chunk bins) and W >= 0 "
                         f"(burn-in bins), got {train_chunk!r}")
    if not supports_chunks(model):
        raise ValueError(f"train_chunk needs a recurrent model with recurrent_input / recurrent_output "
                         f"(e.g. StateNet), got {type(model).__name__}; use train_chunk=None")
    return int(train_chunk[0]), int(train_chunk[1])


def chunk_windows(lengths: Sequence[int], n_bins: int, length: int, burn_in: int):
    """Index the chunk windows of a padded batch.

    Args:
        lengths: valid bins of each of the B stimuli (each <= ``n_bins``).
        n_bins: T, the padded length of the batch.
        length, burn_in: L and W.

    Returns:
        idx ``(K, W + L)`` int64: position ``b * T + t`` (in the batch flattened over
        stimuli and time) of each window bin; bins past a stimulus' end repeat its last bin
        (they come after the chunk's loss bins, so a causal model never uses them);
        in_loss ``(K, W + L)`` bool: the chunk's own valid bins, where the loss is taken.
    """
    S = burn_in + length
    rows, keep = [], []
    offsets = np.arange(S)
    for b, n in enumerate(int(v) for v in lengths):
        starts = np.arange(0, n, length)                        # chunk starts s
        first = starts - np.minimum(burn_in, starts)            # window starts s - min(W, s)
        pos = first[:, None] + offsets[None, :]                  # (k, S)
        keep.append((pos >= starts[:, None]) & (pos < np.minimum(starts + length, n)[:, None]))
        rows.append(b * n_bins + np.minimum(pos, n - 1))
    idx = torch.from_numpy(np.concatenate(rows).astype(np.int64))
    return idx, torch.from_numpy(np.concatenate(keep))


def chunked_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None,
                  train_chunk: tuple[int, int]):
    """The training forward pass on chunks (see the module docstring).

    Args:
        model: a chunkable model (:func:`supports_chunks`).
        x: stimuli ``(B, 1, F, T)`` (zero padding at the end).
        y: target ``(B, N, T)`` (NaN = missing or padding).
        lengths: valid bins ``(B,)`` on the device, or None when every stimulus has T bins.
        train_chunk: ``(L, W)``.

    Returns:
        pred ``(K, N, W + L)`` and target ``(K, N, W + L)``, NaN outside each chunk's loss bins:
        give them to the loss as a batch of K sequences.
    """
    length, burn_in = train_chunk
    B, N, T = y.shape
    h = model.recurrent_input(model.prefiltered(x), lengths)               # (B, T, D)
    lens = [T] * B if lengths is None else lengths.tolist()
    idx, in_loss = chunk_windows(lens, T, length, burn_in)
    idx, in_loss = idx.to(h.device), in_loss.to(h.device)
    K, S = idx.shape
    hc = h.reshape(B * T, h.shape[-1]).index_select(0, idx.flatten()).view(K, S, h.shape[-1])
    pred = model.forward_readout(model.recurrent_output(hc))                 # (K, N, S)
    target = y.transpose(1, 2).reshape(B * T, N).index_select(0, idx.flatten()).view(K, S, N).transpose(1, 2)
    target = target.masked_fill(~in_loss[:, None, :], float("nan"))
    return pred, target
