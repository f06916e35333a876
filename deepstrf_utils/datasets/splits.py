"""Per-neuron splits: each neuron's train / validation / test stimuli drawn from the stimuli IT heard.

Neurons of one dataset may have heard different stimuli (Wehr cells heard 3-63 clips each;
folder datasets; any recording with missing trials per neuron). A split drawn over the union
of stimuli would leave such a neuron without validation or test stimuli in many seeds (and
without training stimuli in some). Here the split is per neuron:

* a neuron **heard** stimulus i when its response to i has at least one finite value;
* a neuron that heard every stimulus gets the dataset's usual split
  (:meth:`ResponseDataset.split_indices`, unchanged);
* any other neuron gets its own split of its heard stimuli, following the dataset's
  ``split_spec``: a fixed test rule ("repeated" or a list) keeps the fixed test stimuli it
  heard; a random rule draws ``test_fraction`` (or ``n_test / B``) of them; the validation
  set is ``val_fraction`` (or ``n_val / B``) of its heard stimuli (of its non-test ones with
  ``val_from="rest"``); at least one stimulus each, the rest train (``groups`` is not
  applied to these own splits). The draw is seeded by
  ``(seed, neuron id)``, so it does not depend on the other neurons;
* a neuron with too few stimuli (fewer than 3 heard, or no fixed test stimulus heard, or
  fewer than 2 heard outside the test set) is **excluded**: its responses are NaN in every
  part and ``meta["split_excluded"]`` maps its id to the reason (logged). When every neuron
  is excluded, each part holds one all-NaN stimulus and the list, so a caller can report
  them (:func:`drop_excluded`) instead of failing.

The three parts are datasets over the union of the stimuli that some neuron uses in that
part; a neuron's responses to a stimulus outside its own part are NaN there (training,
losses and metrics treat NaN as missing).
"""
from __future__ import annotations

import logging
import zlib

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["heard_matrix", "neuron_split", "split_by_neuron", "drop_excluded", "draw_keeping_groups", "TRAIN", "VAL",
           "TEST"]

#: codes of :func:`neuron_split`'s assignment matrix
NONE, TRAIN, VAL, TEST = 0, 1, 2, 3
_PARTS = (TRAIN, VAL, TEST)


def draw_keeping_groups(rng: np.random.Generator, pool, n: int, groups, what: str = "held-out",
                        held=()) -> np.ndarray:
    """``n`` stimuli of ``pool`` drawn in a seeded random order, so that every group keeps a training stimulus.

    ``groups`` holds one label per stimulus of the dataset; a stimulus is skipped when taking
    it would leave its group with no stimulus outside ``held`` and the ones already drawn.

    Returns:
        sorted ``(n,)`` int64 indices. Raises ValueError when fewer than ``n`` can be drawn.
    """
    labels = [str(g) for g in groups]
    held_set = {int(i) for i in np.asarray(held).ravel()}
    left: dict = {}
    for i, g in enumerate(labels):
        if i not in held_set:
            left[g] = left.get(g, 0) + 1
    chosen = []
    for i in rng.permutation(np.asarray(pool, dtype=np.int64)):
        if len(chosen) == n:
            break
        if left[labels[i]] > 1:
            chosen.append(int(i))
            left[labels[i]] -= 1
    if len(chosen) < n:
        raise ValueError(f"cannot draw {n} {what} stimuli keeping a training stimulus in every group: only "
                         f"{len(chosen)} can be drawn from {len(pool)} candidates in {len(left)} groups")
    return np.sort(np.array(chosen, dtype=np.int64))


def heard_matrix(dataset) -> np.ndarray:
    """``(N, B)`` bool: neuron n has at least one finite response value to stimulus i."""
    return np.stack([np.isfinite(r).any(axis=(1, 2)) for r in dataset.responses], axis=1)


def _fraction(spec: dict, count_key: str, frac_key: str, default: float, n_stimuli: int) -> float:
    if spec.get(count_key) is not None:
        return float(spec[count_key]) / n_stimuli
    return float(spec.get(frac_key, default))


def _own_split(dataset, heard: np.ndarray, seed: int, nid: str):
    """One neuron's (train, val, test) stimulus indices from its ``heard`` (B,) mask, or a reason string."""
    spec, b = dataset.split_spec, dataset.n_stimuli
    idx = np.flatnonzero(heard)
    h = idx.size
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(str(nid).encode())])
    rule = spec["test"]
    if rule == "random":
        if h < 3:
            return f"heard {h} stimuli, fewer than 3 (one each for train, validation and test)"
        n_test = max(1, int(round(_fraction(spec, "n_test", "test_fraction", 0.2, b) * h)))
        n_test = min(n_test, h - 2)
        test = np.sort(rng.permutation(idx)[:n_test])
    else:
        fixed = np.flatnonzero(dataset.n_repeats > 1) if rule == "repeated" else np.asarray(rule, dtype=np.int64)
        test = np.intersect1d(idx, fixed)
        if test.size == 0:
            return f"heard none of the {fixed.size} fixed test stimuli"
    rest = np.setdiff1d(idx, test)
    if rest.size < 2:
        return f"heard {rest.size} stimuli outside the test set, fewer than 2 (train and validation)"
    base = rest.size if spec.get("val_from", "all") == "rest" else h
    n_val = max(1, int(round(_fraction(spec, "n_val", "val_fraction", 0.1, b) * base)))
    n_val = min(n_val, rest.size - 1)
    val = np.sort(rng.permutation(rest)[:n_val])
    return np.setdiff1d(rest, val), val, test


def neuron_split(dataset, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Per-neuron split -> (assignment ``(N, B)`` int8 with codes NONE / TRAIN / VAL / TEST,
    excluded ``{neuron id: reason}``). See the module docstring for the rule."""
    heard = heard_matrix(dataset)
    n, b = heard.shape
    assign = np.zeros((n, b), dtype=np.int8)
    excluded: dict = {}
    full = heard.all(axis=1)
    if full.any():
        parts = dataset.split_indices(seed)
        for code, part in zip(_PARTS, parts):
            assign[np.ix_(np.flatnonzero(full), part)] = code
    for k in np.flatnonzero(~full):
        nid = str(dataset.neuron_ids[k])
        own = _own_split(dataset, heard[k], seed, nid)
        if isinstance(own, str):
            excluded[nid] = own
            logger.warning("split of '%s' (seed %d): neuron %s excluded: %s", dataset.name, seed, nid, own)
            continue
        for code, part in zip(_PARTS, own):
            assign[k, part] = code
    return assign, excluded


def split_by_neuron(dataset, seed: int = 0):
    """(train, val, test) datasets of the per-neuron split (module docstring); each part's
    ``meta["split_excluded"]`` is ``{neuron id: reason}`` of the excluded neurons."""
    assign, excluded = neuron_split(dataset, seed)
    out = []
    for code, what in zip(_PARTS, ("training", "validation", "test")):
        stims = np.flatnonzero((assign == code).any(axis=0))
        if stims.size == 0 and len(excluded) == dataset.n_neurons:
            stims = np.array([0])  # every neuron excluded: a one-stimulus part, all NaN, that lists them
        elif stims.size == 0:
            raise ValueError(f"cannot split '{dataset.name}' (seed {seed}): no neuron has {what} stimuli "
                             f"(excluded: {excluded})")
        part = dataset.subset(stims)
        for pos, i in enumerate(stims):
            outside = assign[:, i] != code
            if outside.any():
                part.responses[pos][outside] = np.nan
        part.meta["split_excluded"] = dict(excluded)
        out.append(part)
    return tuple(out)


def drop_excluded(dataset, *parts):
    """Drop the neurons a split excluded (``parts[0].meta["split_excluded"]``) from ``dataset``
    and every part -> (dataset, parts..., excluded {id: reason}). With every neuron excluded
    the datasets are returned as None."""
    excluded = dict(parts[0].meta.get("split_excluded") or {}) if parts else {}
    if not excluded:
        return (dataset, *parts, excluded)
    keep = [nid for nid in dataset.neuron_ids.tolist() if nid not in excluded]
    if not keep:
        return (None, *(None for _ in parts), excluded)
    return (dataset.select(keep), *(p.select(keep) for p in parts), excluded)
