"""Per-neuron splits where neurons heard different stimuli (issue 10, item 2)."""
import logging

import numpy as np
import pandas as pd
import pytest

from deepstrf_utils.datasets import ResponseDataset
from deepstrf_utils.datasets.splits import TEST, TRAIN, VAL, heard_matrix, neuron_split
from deepstrf_utils.training import average_over_seeds, evaluate


def _dataset(n_stimuli=100, heard=None, n_neurons=3, T=6, R=2, seed=0, split_spec=None):
    """Random responses; ``heard`` maps a neuron index to the stimuli it heard (NaN elsewhere)."""
    rng = np.random.default_rng(seed)
    stims = [rng.random((3, T)).astype(np.float32) for _ in range(n_stimuli)]
    resps = []
    for i in range(n_stimuli):
        r = rng.poisson(2.0, (n_neurons, R, T)).astype(np.float32)
        for n, clips in (heard or {}).items():
            if i not in clips:
                r[n] = np.nan
        resps.append(r)
    return ResponseDataset(stims, resps, dt_ms=5.0, cf_hz=[500.0, 1000.0, 2000.0], name="toy",
                           neuron_ids=[f"c{n}" for n in range(n_neurons)],
                           split_spec=split_spec or {"test": "random", "test_fraction": 0.2, "val_fraction": 0.1})


def test_a_cell_that_heard_3_of_100_clips_always_gets_train_val_and_test_clips_of_its_own():
    clips = [7, 42, 93]
    ds = _dataset(heard={1: clips})
    for seed in range(300):
        assign, excluded = neuron_split(ds, seed)
        assert not excluded
        own = assign[1]
        assert set(np.flatnonzero(own)) == set(clips)  # only its own clips
        assert [(own == code).sum() for code in (TRAIN, VAL, TEST)] == [1, 1, 1]
        # neurons that heard everything keep the dataset's usual split
        tr, va, te = ds.split_indices(seed)
        assert set(np.flatnonzero(assign[0] == TEST)) == set(te.tolist())
        assert set(np.flatnonzero(assign[0] == VAL)) == set(va.tolist())


def test_split_datasets_hold_each_neuron_only_on_its_own_part():
    clips = list(range(0, 100, 4))  # 25 clips
    ds = _dataset(heard={1: clips, 2: [1, 2, 3, 5, 6, 9]})
    assign, _ = neuron_split(ds, 3)
    parts = ds.split(3)
    for code, part in zip((TRAIN, VAL, TEST), parts):
        stims = part.meta["stimulus_indices"]
        h = heard_matrix(part)
        assert np.array_equal(h, assign[:, stims] == code)  # finite exactly on the neuron's own part
    # cell 1 (25 clips): 5 test, 2 validation (10 % of 25, rounded), 18 train
    assert [(assign[1] == c).sum() for c in (TEST, VAL, TRAIN)] == [5, 2, 18]
    # the metrics score each neuron on its own test clips only
    rng = np.random.default_rng(1)
    test = parts[2]
    preds = [rng.random((3, s.shape[1])).astype(np.float32) for s in test.stimuli]
    full = evaluate(None, test, predictions=preds)
    own = [k for k, i in enumerate(test.meta["stimulus_indices"]) if assign[2, i] == TEST]
    alone = evaluate(None, test.subset(own).select([2]), predictions=[preds[k][2:3] for k in own])
    assert full.loc[2, "cc_raw"] == pytest.approx(alone.loc[0, "cc_raw"], abs=1e-6)


def test_fixed_test_rule_and_val_from_rest():
    spec = {"test": [0, 1, 2, 3], "val_fraction": 0.2, "val_from": "rest"}
    ds = _dataset(n_stimuli=24, heard={1: [0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 2: [10, 11, 12]},
                  split_spec=spec)
    tr, va, te = ds.split_indices(0)
    assert te.tolist() == [0, 1, 2, 3] and va.size == 4 and tr.size == 16  # 20 % of the 20 non-test stimuli
    assign, excluded = neuron_split(ds, 0)
    assert np.flatnonzero(assign[1] == TEST).tolist() == [0]
    assert (assign[1] == VAL).sum() == 2 and (assign[1] == TRAIN).sum() == 8
    assert excluded == {"c2": "heard none of the 4 fixed test stimuli"}


def test_a_two_clip_neuron_is_excluded_with_a_reason_and_the_run_goes_on(caplog):
    from deepstrf_utils.runs.runner import RESULT_COLUMNS, run_config

    ds = _dataset(n_stimuli=12, heard={1: [0, 2, 4, 6, 8, 10], 2: [4, 9]}, T=30, R=3)  # c1: its own split
    with caplog.at_level(logging.WARNING):
        _, _, test = ds.split(0)
    assert test.meta["split_excluded"] == {"c2": "heard 2 stimuli, fewer than 3 (one each for train, "
                                                  "validation and test)"}
    assert "c2 excluded" in caplog.text
    assert np.isnan(np.concatenate([r[2].ravel() for r in test.responses])).all()
    for mode, batched in (("single", True), ("single", False), ("population", None)):
        fk = {"max_epochs": 2, "batch_size": 4} if batched is None else {"max_epochs": 2, "batch_size": 4,
                                                                          "batched": batched}
        cfg = {"dataset": "toy", "model": "LinearNonlinear", "model_kwargs": {"n_lags": 3}, "mode": mode,
               "fit_kwargs": fk}
        rows = run_config(cfg, ds, seed=0, progress=False)
        assert list(rows.columns) == RESULT_COLUMNS
        assert rows["neuron"].tolist() == ["c0", "c1", "c2"]
        assert rows["excluded_reason"].tolist()[:2] == ["", ""] and "fewer than 3" in rows["excluded_reason"].iloc[2]
        assert rows[["cc_raw"]].iloc[:2].notna().all().all() and np.isnan(rows["cc_raw"].iloc[2])
    # every neuron excluded: rows with reasons, no fit, no abort
    lonely = _dataset(n_stimuli=6, heard={0: [0], 1: [1, 2], 2: [3]})
    rows = run_config({"dataset": "toy", "model": "Linear", "fit_kwargs": {"max_epochs": 1}}, lonely, 0,
                      progress=False)
    assert len(rows) == 3 and (rows["excluded_reason"] != "").all() and rows["cc_raw"].isna().all()


def test_average_over_seeds_counts_only_the_seeds_where_the_neuron_was_scored():
    results = pd.DataFrame({
        "config_id": ["a"] * 6, "neuron": ["x", "x", "x", "y", "y", "y"], "seed": [0, 1, 2, 0, 1, 2],
        "cc_raw": [0.5, np.nan, 0.7, 0.1, 0.2, 0.3], "cc_norm": [0.6, np.nan, np.nan, np.nan, np.nan, np.nan],
    })
    out = average_over_seeds(results, values=("cc_raw", "cc_norm")).set_index("neuron")
    assert out.loc["x", "n_seeds"] == 2 and out.loc["y", "n_seeds"] == 3
    assert out.loc["x", "cc_raw"] == pytest.approx(0.6) and out.loc["x", "cc_norm"] == pytest.approx(0.6)
    never = results.assign(cc_raw=np.nan, cc_norm=np.nan)
    assert (average_over_seeds(never, values=("cc_raw", "cc_norm"))["n_seeds"] == 0).all()
