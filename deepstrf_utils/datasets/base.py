"""One dataset type for every source: stimuli (spectrograms) and neural responses.

A :class:`ResponseDataset` holds B stimuli, each an ``(F, T_i)`` spectrogram, and the
responses of N neurons to them, each ``(N, R_i, T_i)`` (R_i repeats, NaN marks a missing
trial or padding). Item ``i`` is ``(stim (1, F, T_i), resp (N, R_i, T_i))`` as float32
tensors, and :func:`~deepstrf_utils.datasets.collate.collate_responses` pads a list of items
into a batch.

Splits are by stimulus, never by time bin, and follow the dataset's ``split_spec``:

``{"test": "random", "test_fraction": 0.2, "val_fraction": 0.1}``
    test stimuli drawn at random (seeded) — a new test set for every seed;
``{"test": [3, 6, 9, 19], ...}``
    a fixed test set (e.g. Rahman's NS1 test clips), the same for every seed;
``{"test": "repeated", ...}``
    the stimuli presented more than once (NAT4's 18 x 20-repeat test set).

``n_test`` / ``n_val`` (integers) override the fractions. ``groups`` (B labels) keeps
stimuli that belong together on the training side: held-out (test, then validation) stimuli
are drawn so that every group keeps at least one training stimulus (TORCs: the two TORCs of
a spectral density). The validation set is drawn at
random (seeded) from the non-test stimuli, at least one stimulus; train is the rest.
``val_fraction`` is a fraction of all stimuli, or of the non-test ones with
``"val_from": "rest"`` (NAT4's 80/20 split of the estimation stimuli).
:attr:`ResponseDataset.split_rule` states the rule in words. Neurons that did not hear every
stimulus get their own split of the stimuli they heard (:mod:`.splits`).

Files: :meth:`ResponseDataset.to_hdf5` writes a versioned HDF5 file (attribute
``schema_version``) atomically (temporary file in the same folder, then ``os.replace``),
so an interrupted write never leaves a file that loads as valid.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..metrics import trial_average
from ..metrics.inputs import reject_inf
from ..shapes import check_int
from .state import check_states
from .tree import copy_tree, select_ground_truth, subset_ground_truth
from .storage import SCHEMA_VERSION, read_hdf5, write_hdf5  # noqa: F401  (SCHEMA_VERSION: public here)

logger = logging.getLogger(__name__)


_DEFAULT_SPLIT = {"test": "random", "test_fraction": 0.2, "val_fraction": 0.1}
_TEST_RULES = ("random", "repeated")


# ----------------------------------------------------------------------------- helpers
def _shape(x: Any) -> Any:
    """Shape of an array, or a short description of a list of arrays (for messages)."""
    if isinstance(x, (list, tuple)):
        return f"a list of {len(x)} items"
    return tuple(np.shape(x))


def _as_float_array(x: Any, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"expected {what} as a numeric array, got {type(x).__name__}") from exc
    return np.ascontiguousarray(arr)


class ResponseDataset(Dataset):
    """Stimuli and neural responses, the one dataset type of every source.

    Args:
        stimuli: list of B spectrograms, each ``(F, T_i)`` (non-negative, float).
        responses: list of B recordings, each ``(N, R_i, T_i)``: spike counts per bin or a
            continuous signal (membrane potential); NaN marks a missing trial or padding;
            ``+-inf`` is rejected (ValueError).
        dt_ms: bin width in ms (> 0).
        cf_hz: ``(F,)`` band centre frequencies in Hz, increasing.
        neuron_ids: ``(N,)`` unique identifiers; stored as strings (default ``"0"..."N-1"``).
        neurons: optional ``pandas.DataFrame`` with one row per neuron (fields such as
            area, depth, noise_ratio, snr where the source has them). An ``id`` column, if
            present, must equal ``neuron_ids``; it is added otherwise.
        stim_names: ``(B,)`` names (default ``"stim_000"``...).
        stim_types: ``(B,)`` kinds, e.g. ``"natural"`` (default ``"unknown"``).
        name: dataset name, e.g. ``"ns1"``.
        split_spec: how :meth:`split` works (see the module docstring); default a random
            20 % test set and 10 % validation set per seed.
        ground_truth: optional dict of known answers (simulations). Conventions used by
            :meth:`select` and :meth:`subset`: arrays whose first axis has length N are
            per-neuron; lists of length B are per-stimulus (their items' first axis, if of
            length N, is per-neuron too); anything under the key ``"shared"`` is kept whole.
        meta: free dict of provenance (source, options, preprocessing).
        states, state_names: optional behavioural state signals, one ``(S, T_i)`` array per
            stimulus (NaN = unknown), and their S names (:mod:`.state`).

    Item ``i``: ``(stim (1, F, T_i) float32 tensor, resp (N, R_i, T_i) float32 tensor)``.
    """

    def __init__(
        self,
        stimuli: Sequence[Any],
        responses: Sequence[Any],
        dt_ms: float,
        cf_hz: Any,
        neuron_ids: Iterable[Any] | None = None,
        neurons: pd.DataFrame | None = None,
        stim_names: Sequence[str] | None = None,
        stim_types: Sequence[str] | None = None,
        name: str = "dataset",
        split_spec: dict | None = None,
        ground_truth: dict | None = None,
        meta: dict | None = None,
        states: Sequence[Any] | None = None,
        state_names: Sequence[str] | None = None,
    ):
        if isinstance(stimuli, (np.ndarray, torch.Tensor)) or isinstance(responses, (np.ndarray, torch.Tensor)):
            raise ValueError(
                "expected stimuli as a list of (F, T_i) arrays and responses as a list of "
                f"(N, R_i, T_i) arrays, got arrays of shape {_shape(stimuli)} and {_shape(responses)}"
            )
        stimuli, responses = list(stimuli), list(responses)
        if len(stimuli) == 0:
            raise ValueError("expected at least one stimulus, got an empty list")
        if len(stimuli) != len(responses):
            raise ValueError(
                f"expected one response per stimulus, got {len(stimuli)} stimuli and {len(responses)} responses"
            )
        try:
            dt_ms = float(dt_ms)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"expected dt_ms as a positive number, got {dt_ms!r}") from exc
        if not np.isfinite(dt_ms) or dt_ms <= 0:
            raise ValueError(f"expected dt_ms > 0 (bin width in ms), got {dt_ms}")
        self._init_format(cf_hz)

        stims, resps = [], []
        n_neurons = None
        for i, (s, r) in enumerate(zip(stimuli, responses)):
            s = self._check_stimulus(_as_float_array(s, f"stimulus {i}"), i)
            r = _as_float_array(r, f"response {i}")
            if s.shape[-1] == 0:
                raise ValueError(f"expected stimulus {i} with at least one time bin, got shape {s.shape}")
            if not np.all(np.isfinite(s)):
                raise ValueError(f"expected stimulus {i} to be finite (no NaN/inf); NaN is for responses only")
            if r.ndim != 3:
                raise ValueError(f"expected response {i} of shape (N, R, T), got {r.shape}")
            reject_inf(r, f"response {i}")
            if n_neurons is None:
                n_neurons = r.shape[0]
                if n_neurons == 0:
                    raise ValueError(f"expected at least one neuron, got response 0 of shape {r.shape}")
            if r.shape[0] != n_neurons:
                raise ValueError(
                    f"expected response {i} of shape (N, R, T) with N={n_neurons} (as in response 0), got {r.shape}"
                )
            if r.shape[1] == 0:
                raise ValueError(f"expected response {i} with at least one repeat, got shape {r.shape}")
            if r.shape[2] != s.shape[-1]:
                raise ValueError(
                    f"expected response {i} with T={s.shape[-1]} bins like its stimulus {s.shape}, got {r.shape}"
                )
            stims.append(s)
            resps.append(r)
        n_stim = len(stims)

        if neuron_ids is None:
            ids = np.array([str(k) for k in range(n_neurons)])
        else:
            ids = np.array([str(v) for v in np.asarray(list(neuron_ids)).ravel()])
        if ids.shape != (n_neurons,):
            raise ValueError(f"expected neuron_ids of shape (N,) with N={n_neurons}, got {ids.shape}")
        if len(set(ids.tolist())) != n_neurons:
            raise ValueError("expected unique neuron_ids, got duplicates")

        if neurons is None:
            table = pd.DataFrame({"id": ids})
        else:
            if not isinstance(neurons, pd.DataFrame):
                raise ValueError(f"expected neurons as a pandas.DataFrame, got {type(neurons).__name__}")
            if len(neurons) != n_neurons:
                raise ValueError(f"expected a neurons table with N={n_neurons} rows, got {len(neurons)}")
            table = neurons.reset_index(drop=True).copy()
            if "id" in table.columns:
                if [str(v) for v in table["id"]] != ids.tolist():
                    raise ValueError("expected neurons['id'] equal to neuron_ids (same order)")
                table["id"] = ids
            else:
                table.insert(0, "id", ids)

        stim_names = [f"stim_{i:03d}" for i in range(n_stim)] if stim_names is None else [str(v) for v in stim_names]
        stim_types = ["unknown"] * n_stim if stim_types is None else [str(v) for v in stim_types]
        if len(stim_names) != n_stim:
            raise ValueError(f"expected stim_names of length B={n_stim}, got {len(stim_names)}")
        if len(stim_types) != n_stim:
            raise ValueError(f"expected stim_types of length B={n_stim}, got {len(stim_types)}")

        if ground_truth is not None:
            if not isinstance(ground_truth, dict):
                raise ValueError(f"expected ground_truth as a dict or None, got {type(ground_truth).__name__}")
            rate = ground_truth.get("rate")
            if rate is not None:
                if not isinstance(rate, list) or len(rate) != n_stim:
                    raise ValueError(f"expected ground_truth['rate'] as a list of B={n_stim} (N, T_i) arrays")
                for i, x in enumerate(rate):
                    if _shape(x) != (n_neurons, stims[i].shape[-1]):
                        raise ValueError(
                            f"expected ground_truth['rate'][{i}] of shape (N, T)=({n_neurons}, "
                            f"{stims[i].shape[-1]}), got {_shape(x)}"
                        )

        self.states, self.state_names = check_states(states, state_names, [s.shape[-1] for s in stims])
        self.stimuli: list[np.ndarray] = stims
        self.responses: list[np.ndarray] = resps
        self.dt_ms = dt_ms
        self.neuron_ids = ids
        self.neurons = table
        self.stim_names = stim_names
        self.stim_types = stim_types
        self.name = str(name)
        self.ground_truth = ground_truth
        self.meta = dict(meta) if meta is not None else {}
        self.split_spec = self._check_split_spec(_DEFAULT_SPLIT if split_spec is None else split_spec)

    # ------------------------------------------------------------------ stimulus format
    # Spectrograms here; a subclass with another stimulus format (movies.MovieDataset)
    # overrides these four methods and inherits everything else.
    def _init_format(self, cf_hz) -> None:
        """Validate and set the format attributes (``cf_hz``) before the stimuli are checked."""
        cf = np.asarray(cf_hz, dtype=np.float64)
        if cf.ndim != 1 or cf.size == 0:
            raise ValueError(f"expected cf_hz of shape (F,), got {cf.shape}")
        if not np.all(np.isfinite(cf)) or np.any(cf <= 0) or np.any(np.diff(cf) <= 0):
            raise ValueError("expected cf_hz positive and strictly increasing (low to high), got " f"{cf}")
        self.cf_hz = cf

    def _check_stimulus(self, s: np.ndarray, i: int) -> np.ndarray:
        """Stimulus ``i`` as stored: an ``(F, T)`` array with F = ``len(cf_hz)`` (ValueError otherwise)."""
        if s.ndim != 2 or s.shape[0] != self.cf_hz.size:
            raise ValueError(f"expected stimulus {i} of shape (F, T) with F={self.cf_hz.size} (len(cf_hz)), got {s.shape}")
        return s

    def _format_kwargs(self) -> dict:
        """The constructor arguments that describe the stimulus format (copies), for new views."""
        return {"cf_hz": self.cf_hz.copy()}

    def _item_stimulus(self, s: np.ndarray) -> torch.Tensor:
        """A stored stimulus as the item's tensor, ``(1, F, T)``."""
        return torch.from_numpy(s).unsqueeze(0)

    # ------------------------------------------------------------------ basic access
    def __len__(self) -> int:
        return len(self.stimuli)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ``i``: ``(stim (1, F, T_i), resp (N, R_i, T_i))`` float32 tensors."""
        if not -len(self) <= int(i) < len(self):
            raise IndexError(f"stimulus index {i} out of range for {len(self)} stimuli")
        return self._item_stimulus(self.stimuli[i]), torch.from_numpy(self.responses[i])

    def __repr__(self) -> str:
        return (
            f"ResponseDataset(name={self.name!r}, neurons={self.n_neurons}, stimuli={self.n_stimuli}, "
            f"bands={self.n_bands}, dt_ms={self.dt_ms:g}, duration_s={self.duration_s:.1f})"
        )

    def state_item(self, i: int) -> torch.Tensor | None:
        """State signals of stimulus ``i``, ``(S, T_i)`` float32 (NaN = unknown), or None without states."""
        return None if self.states is None else torch.from_numpy(self.states[i])

    def replace(self, **changes) -> "ResponseDataset":
        """A new dataset with the same fields except ``changes`` (constructor arguments), validated."""
        keys = ("stimuli", "responses", "dt_ms", "neuron_ids", "neurons", "stim_names", "stim_types",
                "name", "split_spec", "ground_truth", "meta", "states", "state_names")
        return type(self)(**{**{k: getattr(self, k) for k in keys}, **self._format_kwargs(), **changes})

    @property
    def n_neurons(self) -> int:
        """N, the number of neurons."""
        return int(self.responses[0].shape[0])

    @property
    def n_bands(self) -> int:
        """F, the number of frequency bands."""
        return int(self.cf_hz.size)

    @property
    def n_stimuli(self) -> int:
        """B, the number of stimuli."""
        return len(self.stimuli)

    @property
    def n_bins(self) -> np.ndarray:
        """``(B,)`` number of time bins T_i of each stimulus."""
        return np.array([s.shape[-1] for s in self.stimuli], dtype=np.int64)

    @property
    def n_repeats(self) -> np.ndarray:
        """``(B,)`` repeats per stimulus: trials r with a non-NaN value for some neuron and bin."""
        return np.array([int((~np.isnan(r)).any(axis=(0, 2)).sum()) for r in self.responses], dtype=np.int64)

    @property
    def n_repeats_per_neuron(self) -> np.ndarray:
        """``(B, N)`` repeats per stimulus and neuron (trials not all-NaN for that neuron)."""
        return np.stack([(~np.isnan(r)).any(axis=2).sum(axis=1) for r in self.responses]).astype(np.int64)

    @property
    def duration_s(self) -> float:
        """Total stimulus duration in seconds, sum of T_i * dt_ms / 1000."""
        return float(self.n_bins.sum() * self.dt_ms / 1000.0)

    # ------------------------------------------------------------------ splits
    def _check_split_spec(self, spec: dict) -> dict:
        if not isinstance(spec, dict):
            raise ValueError(f"expected split_spec as a dict, got {type(spec).__name__}")
        spec = dict(spec)
        unknown = set(spec) - {"test", "test_fraction", "val_fraction", "n_test", "n_val", "val_from", "description",
                               "groups"}
        if unknown:
            raise ValueError(
                "expected split_spec keys among test, test_fraction, val_fraction, n_test, n_val, val_from, "
                f"description, groups; got unknown {sorted(unknown)}"
            )
        if spec.get("groups") is not None:
            groups = [str(g) for g in spec["groups"]]
            if len(groups) != self.n_stimuli:
                raise ValueError(f"expected split_spec['groups'] with one label per stimulus (B={self.n_stimuli}), "
                                 f"got {len(groups)}")
            spec["groups"] = groups
        if spec.get("val_from", "all") not in ("all", "rest"):
            raise ValueError(f"expected split_spec['val_from'] 'all' or 'rest', got {spec['val_from']!r}")
        test = spec.setdefault("test", "random")
        if isinstance(test, str):
            if test not in _TEST_RULES:
                raise ValueError(f"expected split_spec['test'] in {_TEST_RULES} or a list of indices, got {test!r}")
        else:
            try:
                idx = [int(v) for v in test]
            except (TypeError, ValueError) as exc:
                raise ValueError(f"expected split_spec['test'] as a rule name or stimulus indices, got {test!r}") from exc
            if any(not 0 <= v < self.n_stimuli for v in idx) or len(set(idx)) != len(idx):
                raise ValueError(
                    f"expected split_spec['test'] as unique stimulus indices in [0, {self.n_stimuli}), got {idx}"
                )
            spec["test"] = idx
        for key in ("test_fraction", "val_fraction"):
            if key in spec:
                v = float(spec[key])
                if not 0.0 <= v < 1.0:
                    raise ValueError(f"expected split_spec['{key}'] in [0, 1), got {v}")
                spec[key] = v
        for key in ("n_test", "n_val"):
            if key in spec and spec[key] is not None:
                v = int(spec[key])
                if v < 0:
                    raise ValueError(f"expected split_spec['{key}'] >= 0, got {v}")
                spec[key] = v
        return spec

    def _n_test_random(self) -> int:
        spec = self.split_spec
        if spec.get("n_test") is not None:
            return max(1, spec["n_test"])
        return max(1, int(round(spec.get("test_fraction", 0.2) * self.n_stimuli)))

    def _n_val(self, n_rest: int | None = None) -> int:
        spec = self.split_spec
        if spec.get("n_val") is not None:
            return max(1, spec["n_val"])
        base = n_rest if spec.get("val_from", "all") == "rest" and n_rest is not None else self.n_stimuli
        return max(1, int(round(spec.get("val_fraction", 0.1) * base)))

    def split_indices(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stimulus indices ``(train, val, test)`` of :meth:`split`, each sorted, a partition of range(B)."""
        from .splits import draw_keeping_groups

        spec, b = self.split_spec, self.n_stimuli
        rng = np.random.default_rng(check_int(seed, "seed (of the split)", 0))
        order = np.arange(b)
        test_rule = spec["test"]
        if test_rule == "random":
            n_test = self._n_test_random()
            test = (np.sort(rng.permutation(b)[:n_test]) if spec.get("groups") is None
                    else draw_keeping_groups(rng, order, n_test, spec["groups"], "test"))
        elif test_rule == "repeated":
            test = order[self.n_repeats > 1]
            if test.size == 0:
                raise ValueError("split_spec test='repeated' needs stimuli with more than one repeat; none here")
        else:
            test = np.array(sorted(test_rule), dtype=np.int64)
        rest = np.setdiff1d(order, test)
        n_val = self._n_val(rest.size)
        if rest.size < n_val + 1:
            raise ValueError(
                f"cannot split {b} stimuli: {test.size} test leave {rest.size}, fewer than {n_val} validation + 1 train"
            )
        val = (np.sort(rng.permutation(rest)[:n_val]) if spec.get("groups") is None
               else draw_keeping_groups(rng, rest, n_val, spec["groups"], "validation", held=test))
        train = np.setdiff1d(rest, val)
        return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)

    def split(self, seed: int = 0) -> tuple["ResponseDataset", "ResponseDataset", "ResponseDataset"]:
        """Train, validation and test subsets for ``seed``, following ``split_spec``.

        Deterministic per seed; see :attr:`split_rule` for the rule in words. A neuron that
        did not hear every stimulus gets its own split of the stimuli it heard (NaN outside
        it); one with too few is excluded, listed in each part's ``meta["split_excluded"]``
        (:func:`.splits.split_by_neuron`).
        """
        from .splits import split_by_neuron

        return split_by_neuron(self, check_int(seed, "seed (of the split)", 0))

    @property
    def split_rule(self) -> str:
        """The split rule of this dataset in one or two sentences."""
        spec, b = self.split_spec, self.n_stimuli
        test = spec["test"]
        if test == "random":
            t = f"test: {self._n_test_random()} of {b} stimuli drawn at random for each seed"
        elif test == "repeated":
            t = f"test: the {int((self.n_repeats > 1).sum())} of {b} stimuli presented more than once (fixed)"
        else:
            t = f"test: the fixed stimuli {list(test)} (same for every seed)"
        n_val = self._n_val(b - (self._n_test_random() if test == "random" else
                                 int((self.n_repeats > 1).sum()) if test == "repeated" else len(test)))
        noun = "stimulus" if n_val == 1 else "stimuli"
        sentence = f"{t}; validation: {n_val} {noun} drawn at random per seed from the rest; train: the remaining stimuli."
        if spec.get("groups") is not None:
            sentence += " Held-out stimuli are drawn so that each group keeps a training stimulus."
        if spec.get("description"):
            sentence = f"{spec['description']} ({sentence})"
        return sentence

    # ------------------------------------------------------------------ views
    def subset(self, indices: Iterable[int]) -> "ResponseDataset":
        """A new dataset with the stimuli ``indices`` (in that order); arrays are copied.

        A fixed test list in ``split_spec`` is re-indexed to the kept stimuli (a random rule
        is kept as is); ``meta["stimulus_indices"]`` records the positions in the original.
        """
        if isinstance(indices, torch.Tensor):
            indices = indices.cpu().numpy()
        idx = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices))
        if idx.dtype == bool:
            if idx.shape != (self.n_stimuli,):
                raise ValueError(f"expected a boolean stimulus mask of shape (B,)=({self.n_stimuli},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).ravel()
        if idx.size == 0:
            raise ValueError("expected at least one stimulus index for subset, got none")
        if np.any(idx < 0) or np.any(idx >= self.n_stimuli):
            raise ValueError(f"expected stimulus indices in [0, {self.n_stimuli}), got {idx.tolist()}")
        idx_list = idx.tolist()
        spec = dict(self.split_spec)
        if isinstance(spec["test"], list):
            pos = {old: new for new, old in enumerate(idx_list)}
            spec["test"] = [pos[t] for t in spec["test"] if t in pos]
            if not spec["test"]:
                spec["test"] = "random"
        if spec.get("groups") is not None:
            spec["groups"] = [spec["groups"][i] for i in idx_list]
        meta = copy_tree(self.meta)
        parent = self.meta.get("stimulus_indices")
        meta["stimulus_indices"] = [int(parent[i]) for i in idx_list] if parent is not None else idx_list
        return type(self)(
            stimuli=[self.stimuli[i].copy() for i in idx_list],
            responses=[self.responses[i].copy() for i in idx_list],
            dt_ms=self.dt_ms,
            **self._format_kwargs(),
            neuron_ids=self.neuron_ids.copy(),
            neurons=self.neurons.copy(),
            stim_names=[self.stim_names[i] for i in idx_list],
            stim_types=[self.stim_types[i] for i in idx_list],
            name=self.name,
            split_spec=spec,
            ground_truth=subset_ground_truth(self.ground_truth, idx_list, self.n_stimuli),
            meta=meta,
            states=None if self.states is None else [self.states[i].copy() for i in idx_list],
            state_names=self.state_names or None,
        )

    def _neuron_indices(self, neurons: Any) -> np.ndarray:
        if isinstance(neurons, (str, int, np.integer)):
            neurons = [neurons]
        if isinstance(neurons, torch.Tensor):
            neurons = neurons.cpu().numpy()
        arr = np.asarray(list(neurons) if not isinstance(neurons, np.ndarray) else neurons)
        if arr.size == 0:
            raise ValueError("expected at least one neuron to select, got none")
        if arr.dtype == bool:
            if arr.shape != (self.n_neurons,):
                raise ValueError(f"expected a boolean neuron mask of shape (N,)=({self.n_neurons},), got {arr.shape}")
            return np.flatnonzero(arr)
        if np.issubdtype(arr.dtype, np.integer):
            idx = arr.astype(np.int64).ravel()
            if np.any(idx < -self.n_neurons) or np.any(idx >= self.n_neurons):
                raise ValueError(f"expected neuron indices in [0, {self.n_neurons}), got {idx.tolist()}")
            return idx % self.n_neurons
        lookup = {nid: k for k, nid in enumerate(self.neuron_ids.tolist())}
        missing = [str(v) for v in arr.ravel() if str(v) not in lookup]
        if missing:
            raise ValueError(f"unknown neuron ids {missing[:5]}; expected ids among neuron_ids or integer indices")
        return np.array([lookup[str(v)] for v in arr.ravel()], dtype=np.int64)

    def select(self, neurons: Any) -> "ResponseDataset":
        """A new dataset with only some neurons, in the given order.

        Args:
            neurons: neuron ids (strings, see ``neuron_ids``), integer indices, or a boolean
                mask of shape ``(N,)``.

        The per-neuron table and the ground truth (per-neuron arrays, per-stimulus rates)
        are sliced the same way, so they stay aligned.
        """
        idx = self._neuron_indices(neurons)
        n = self.n_neurons
        return type(self)(
            stimuli=[s.copy() for s in self.stimuli],
            responses=[r[idx].copy() for r in self.responses],
            dt_ms=self.dt_ms,
            **self._format_kwargs(),
            neuron_ids=self.neuron_ids[idx],
            neurons=self.neurons.iloc[idx].reset_index(drop=True),
            stim_names=list(self.stim_names),
            stim_types=list(self.stim_types),
            name=self.name,
            split_spec=dict(self.split_spec),
            ground_truth=select_ground_truth(self.ground_truth, idx, n),
            meta=copy_tree(self.meta),
            states=copy_tree(self.states),
            state_names=self.state_names or None,
        )

    # ------------------------------------------------------------------ summaries
    def mean_responses(self) -> list[np.ndarray]:
        """Trial-averaged responses, a list of B ``(N, T_i)`` arrays (NaN where no trial)."""
        return [trial_average(r, axis=1).astype(np.float32, copy=False) for r in self.responses]

    def summary(self) -> pd.DataFrame:
        """One-row table: name, neurons, stimuli, repeats, duration, bin width, bands, range."""
        reps = self.n_repeats
        rep = f"{reps.min()}" if reps.min() == reps.max() else f"{reps.min()}-{reps.max()}"
        return pd.DataFrame(
            [
                {
                    "dataset": self.name,
                    "neurons": self.n_neurons,
                    "stimuli": self.n_stimuli,
                    "repeats": rep,
                    "duration_s": round(self.duration_s, 3),
                    "dt_ms": self.dt_ms,
                    "bands": self.n_bands,
                    "f_min_hz": float(self.cf_hz[0]),
                    "f_max_hz": float(self.cf_hz[-1]),
                    "ground_truth": self.ground_truth is not None,
                }
            ]
        )

    # ------------------------------------------------------------------ HDF5
    def to_hdf5(self, path: str | os.PathLike, options: dict | None = None) -> Path:
        """Write the dataset to an HDF5 file (schema ``SCHEMA_VERSION``), atomically.

        The file is written to a temporary file in the same folder and moved into place
        with ``os.replace``; an error (or a kill) during the write leaves no file at
        ``path``, and the temporary file lacks the ``complete`` mark that
        :meth:`from_hdf5` requires. Every node carries a SHA-256 digest; ``options`` (the
        options that generated the data, for a cache) are stored for :meth:`from_hdf5`.
        Returns the path written.
        """
        path = write_hdf5(self, path, options=options)
        logger.info("wrote %s (%d neurons, %d stimuli)", path, self.n_neurons, self.n_stimuli)
        return path

    @classmethod
    def from_hdf5(cls, path: str | os.PathLike, options: dict | None = None) -> "ResponseDataset":
        """Read a dataset written by :meth:`to_hdf5`; with ``options``, only a file written
        with the same options (a cache).

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: not a dataset file, an incomplete write, another
                ``schema_version`` than ``SCHEMA_VERSION``, a node that no longer matches
                its digest (damaged or edited; the message names it), other options.
        """
        return read_hdf5(path, cls, options=options)
