"""A dataset collated once into padded tensors on the training device (:class:`Packed`).

Padding goes through the package's one collation path
(:mod:`deepstrf_utils.datasets.collate`) and the target is the one trial average
(:func:`deepstrf_utils.metrics.trial_average`).
Shapes: B stimuli, F bands, T time bins, N neurons, R repeats.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..datasets.collate import check_items, pad_to_longest
from ..metrics import trial_average


def dataset_neuron_ids(dataset) -> list:
    ids = getattr(dataset, "neuron_ids", None)
    n = _n_neurons(dataset)
    if ids is None:
        return list(range(n))
    ids = list(np.asarray(ids).tolist())
    if len(ids) != n:
        raise ValueError(f"dataset.neuron_ids has {len(ids)} entries, expected N={n}")
    return ids


def _n_neurons(dataset) -> int:
    n = getattr(dataset, "n_neurons", None)
    if n is not None:
        return int(n)
    if len(dataset) == 0:
        raise ValueError("expected a dataset with at least one stimulus, got an empty one")
    return int(dataset[0][1].shape[0])


def dataset_name(dataset) -> str:
    return str(getattr(dataset, "name", type(dataset).__name__))


def neuron_positions(dataset, neurons) -> list[int]:
    """Neuron ids (from ``dataset.neuron_ids``) or integer positions -> positions."""
    ids = dataset_neuron_ids(dataset)
    if neurons is None:
        return list(range(len(ids)))
    lookup = {nid: i for i, nid in enumerate(ids)}
    out = []
    for n in neurons:
        key = n.item() if isinstance(n, np.generic) else n
        if key in lookup:
            out.append(lookup[key])
        elif isinstance(key, (int, np.integer)) and 0 <= int(key) < len(ids):
            out.append(int(key))
        else:
            raise ValueError(
                f"neuron {n!r} is neither an id in dataset.neuron_ids ({ids[:5]}...) nor a "
                f"position in [0, {len(ids)})"
            )
    return out


class Packed:
    """A dataset collated ONCE into padded tensors on the training device.

    stim (B, 1, F, Tmax) float32 (zero padding), target (B, N, Tmax) float32 trial average
    (NaN where no repeat is valid or in padding), lengths (B,) int64 (CPU; a copy on the
    device gives each padded training batch its valid lengths); with ``with_state``,
    state (B, S, Tmax) float32 (zero padding like the stimuli; a NaN state bin becomes 0
    and its target NaN, so it is left out of the loss), else None.
    A batch is an index_select plus a trim to the batch's longest stimulus.
    """

    def __init__(self, stim, target, lengths, neuron_ids, name, state=None):
        self.stim = stim
        self.state = state
        self.target = target
        self.lengths = lengths
        self._lengths_dev = lengths.to(stim.device)
        self.neuron_ids = list(neuron_ids)
        self.name = name
        self._lengths_list = lengths.tolist()

    @property
    def n_stimuli(self) -> int:
        return int(self.stim.shape[0])

    @property
    def n_neurons(self) -> int:
        return int(self.target.shape[1])

    @classmethod
    def from_dataset(cls, dataset, device: torch.device, positions: Sequence[int] | None = None,
                     with_state: bool = False):
        if len(dataset) == 0:
            raise ValueError(f"expected a non-empty dataset, got '{dataset_name(dataset)}' with 0 stimuli")
        ids = dataset_neuron_ids(dataset)
        stims, resps = check_items([dataset[i] for i in range(len(dataset))])
        if positions is not None:
            resps = [r[list(positions)] for r in resps]
        stim_all, lengths = pad_to_longest(stims, 0.0)
        target_all, _ = pad_to_longest([trial_average(r, axis=1) for r in resps], float("nan"))
        if positions is not None:
            ids = [ids[p] for p in positions]
        state = None
        if with_state:
            if getattr(dataset, "states", None) is None:
                raise ValueError(f"expected dataset '{dataset_name(dataset)}' with state signals (dataset.states), "
                                 "got none")
            state, _ = pad_to_longest([torch.as_tensor(s, dtype=torch.float32) for s in dataset.states], 0.0)
            missing = torch.isnan(state).any(1, keepdim=True)                  # (B, 1, Tmax)
            target_all = target_all.masked_fill(missing, float("nan"))
            state = state.masked_fill(missing, 0.0).to(device)
        return cls(stim_all.to(device), target_all.to(device), lengths, ids, dataset_name(dataset), state)

    def select(self, positions: Sequence[int]) -> "Packed":
        """The same stimuli with only the neurons at ``positions``."""
        pos = torch.as_tensor(list(positions), dtype=torch.long, device=self.target.device)
        return Packed(self.stim, self.target.index_select(1, pos), self.lengths,
                       [self.neuron_ids[int(p)] for p in positions], self.name, self.state)

    def batch(self, idx: Sequence[int]):
        """Stimuli ``idx`` -> (stim (b, 1, F, L), target (b, N, L)), L = longest of the batch."""
        L = max(self._lengths_list[i] for i in idx)
        if len(idx) == self.n_stimuli and list(idx) == list(range(self.n_stimuli)):
            return self.stim[..., :L], self.target[..., :L]
        ind = torch.as_tensor(list(idx), dtype=torch.long, device=self.stim.device)
        return self.stim.index_select(0, ind)[..., :L], self.target.index_select(0, ind)[..., :L]

    def batch_state(self, idx: Sequence[int]):
        """State of stimuli ``idx``, ``(b, S, L)`` like :meth:`batch` (None without state)."""
        if self.state is None:
            return None
        L = max(self._lengths_list[i] for i in idx)
        ind = torch.as_tensor(list(idx), dtype=torch.long, device=self.state.device)
        return self.state.index_select(0, ind)[..., :L]

    def batch_lengths(self, idx: Sequence[int]) -> torch.Tensor | None:
        """Valid bins of stimuli ``idx`` as a ``(b,)`` int64 tensor on the device, or None when
        they all have the batch's length (no padding: the models' exact unpadded path)."""
        lens = [self._lengths_list[i] for i in idx]
        if min(lens) == max(lens):
            return None
        ind = torch.as_tensor(list(idx), dtype=torch.long, device=self._lengths_dev.device)
        return self._lengths_dev.index_select(0, ind)

    def batches(self, order: Sequence[int], batch_size: int, with_lengths: bool = False):
        """Batches of ``order``: (stim, target), or (stim, target, lengths | None) with ``with_lengths``."""
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if with_lengths:
                yield (*self.batch(idx), self.batch_lengths(idx))
            else:
                yield self.batch(idx)

    def target_stats(self):
        """Per-neuron mean and standard deviation of the trial-averaged target over valid bins -> ((N,), (N,))."""
        y = self.target.transpose(0, 1).reshape(self.n_neurons, -1)
        ok = torch.isfinite(y)
        n = ok.sum(1).clamp(min=1)
        y0 = torch.where(ok, y, torch.zeros((), dtype=y.dtype, device=y.device))
        mean = y0.sum(1) / n
        var = torch.where(ok, (y0 - mean[:, None]) ** 2, torch.zeros((), dtype=y.dtype, device=y.device)).sum(1) / n
        return mean.cpu(), var.sqrt().cpu()

    def has_data(self) -> torch.Tensor:
        """Per neuron: whether it has at least one valid (finite) target bin -> (N,) bool on the CPU."""
        return torch.isfinite(self.target).any(2).any(0).cpu()

    def check_neurons_have_data(self, what: str) -> None:
        valid = self.has_data()
        if not bool(valid.all()):
            bad = [self.neuron_ids[i] for i in torch.nonzero(~valid).flatten().tolist()]
            raise ValueError(f"neuron(s) {bad} have no valid trial in the {what} set of '{self.name}'")


def accepts_lengths(model) -> bool:
    """Whether ``model.forward`` takes a ``lengths`` keyword (the valid bins of a padded batch).

    Training passes ``lengths`` to such models for every padded batch (every
    ``ResponseModel``: BatchNorm statistics over valid bins); any other module is called
    with the stimulus alone, as before.
    """
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "lengths" in params


def epoch_order(n: int, generator: torch.Generator) -> list[int]:
    return torch.randperm(n, generator=generator).tolist()
