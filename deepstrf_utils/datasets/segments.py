"""Cut long stimuli into equal segments, so that a recording of one song can be split in time.

Splits are by stimulus (:meth:`ResponseDataset.split`); a dataset of one long song (the
starling unit of ``../shared/data/meliza_starling``: one 9.3-s song) has nothing to split.
:func:`split_in_time` cuts every stimulus into ``n_segments`` consecutive segments of equal
length, each a stimulus of its own, so the usual split draws training, validation and test
segments. A segment starts without the sound that preceded it: a model's filters (AdapTrans,
the STRF lags) start from the segment's first bin, as for any stimulus.
"""
from __future__ import annotations

import logging

import numpy as np

from .base import ResponseDataset

logger = logging.getLogger(__name__)

__all__ = ["split_in_time"]


def split_in_time(dataset: ResponseDataset, n_segments: int, split_spec: dict | None = None) -> ResponseDataset:
    """Each stimulus of ``dataset`` cut into ``n_segments`` consecutive segments of equal length.

    Stimulus ``i`` of ``T_i`` bins gives segments of ``T_i // n_segments`` bins (the last
    ``T_i % n_segments`` bins are dropped, logged); stimuli, responses and state signals are cut
    alike. Segment ``k`` of stimulus ``"A8"`` is named ``"A8[k]"``.

    Args:
        dataset: any :class:`ResponseDataset`.
        n_segments: K >= 2 segments per stimulus.
        split_spec: split rule of the result (default: 20 % of the segments for testing and
            10 % for validation, drawn at random per seed, at least one each).

    Returns:
        ResponseDataset with ``B * K`` stimuli; ``meta["segments"]`` lists each one's source
        stimulus and ``[start, stop)`` bins. A per-stimulus ground truth is not carried over.

    Example (the starling unit, 10 segments of 0.93 s; 7 train / 1 validation / 2 test)::

        song = load_dataset("folder", path="../shared/data/meliza_starling/data/starling")
        train, val, test = split_in_time(song, 10).split(seed=0)
    """
    if isinstance(n_segments, bool) or int(n_segments) != n_segments or n_segments < 2:
        raise ValueError(f"expected n_segments as an integer >= 2, got {n_segments!r}")
    k = int(n_segments)
    short = [(name, int(t)) for name, t in zip(dataset.stim_names, dataset.n_bins) if t < k]
    if short:
        raise ValueError(f"expected stimuli of at least n_segments={k} bins, got {short}")
    stimuli, responses, states, names, types, segments = [], [], [], [], [], []
    for i, (name, t) in enumerate(zip(dataset.stim_names, dataset.n_bins)):
        seg = int(t) // k
        if t % k:
            logger.info("split_in_time: the last %d of %d bins of %s are dropped", t % k, t, name)
        for j in range(k):
            a, b = j * seg, (j + 1) * seg
            stimuli.append(dataset.stimuli[i][:, a:b].copy())
            responses.append(dataset.responses[i][:, :, a:b].copy())
            if dataset.states is not None:
                states.append(dataset.states[i][:, a:b].copy())
            names.append(f"{name}[{j}]")
            types.append(dataset.stim_types[i])
            segments.append({"stimulus": name, "start_bin": a, "stop_bin": b})
    if split_spec is None:
        split_spec = {"test": "random", "test_fraction": 0.2, "val_fraction": 0.1,
                      "description": f"segments of {k} per stimulus, drawn at random per seed"}
    if dataset.ground_truth is not None:
        logger.info("split_in_time: the ground truth of %s is not carried over to its segments", dataset.name)
    meta = {key: v for key, v in dataset.meta.items() if key != "stimulus_indices"}
    meta.update(segments=segments, n_segments=k)
    return dataset.replace(stimuli=stimuli, responses=responses, stim_names=names, stim_types=types,
                           split_spec=split_spec, ground_truth=None, meta=meta,
                           states=states if dataset.states is not None else None)
