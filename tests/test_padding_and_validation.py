"""Fits that real datasets exercise and the synthetic default does not: neurons without
validation data (stacked = looped single units) and batches of stimuli of unequal lengths
(BatchNorm statistics over the valid bins only)."""

import logging

import numpy as np
import pytest
import torch

from deepstrf_utils.datasets import ResponseDataset
from deepstrf_utils.models import build_model
from deepstrf_utils.training import fit, fit_single_units

CF = np.geomspace(500, 8000, 8)


def _sets(n_neurons=3, seed=0, lengths=((40, 44, 36, 41, 38), (39, 42))):
    """Train / validation sets: F=8 bands, stimuli of unequal lengths, 3 repeats."""
    rng = np.random.default_rng(seed)
    out = []
    for lens in lengths:
        stims = [rng.random((8, t)).astype(np.float32) for t in lens]
        resps = [rng.poisson(2.0 + 2.0 * s[:n_neurons].mean(0) * np.arange(1, n_neurons + 1)[:, None, None],
                             (n_neurons, 3, s.shape[1])).astype(np.float32) for s in stims]
        out.append((stims, resps))
    return out


def _dataset(stims, resps):
    return ResponseDataset(stims, resps, dt_ms=5.0, cf_hz=CF, neuron_ids=[f"u{i}" for i in range(resps[0].shape[0])],
                           name="tiny")


# ----------------------------------------------------------------------------- item 3
def test_unit_without_validation_data_equals_loop_and_warns(caplog):
    """A unit whose validation responses are all NaN is fitted as without a validation set,
    stacked or looped alike (before: the stack returned its initial weights, best_epoch -1,
    silently, while the loop kept its last weights), with a warning naming it."""
    (ts, tr), (vs, vr) = _sets()
    vr = [r.copy() for r in vr]
    for r in vr:
        r[1] = np.nan  # neuron u1 has no validation data
    train, val = _dataset(ts, tr), _dataset(vs, vr)
    kw = dict(lr=0.01, max_epochs=5, patience=1, batch_size=2, device="cpu", seed=3, progress=False)

    def model_fn(s):
        torch.manual_seed(s)
        return build_model("Linear", n_bands=8, n_lags=6)

    with caplog.at_level(logging.WARNING, logger="deepstrf_utils"):
        stacked, rs = fit_single_units(model_fn, train, val, seeds=[1, 2, 3], batched=True, **kw)
    assert any("u1" in rec.getMessage() and "validation" in rec.getMessage() for rec in caplog.records)
    looped, rl = fit_single_units(model_fn, train, val, seeds=[1, 2, 3], batched=False, **kw)
    for u in range(3):
        assert (rs[u].epochs, rs[u].best_epoch, rs[u].stopped_early) == (rl[u].epochs, rl[u].best_epoch,
                                                                         rl[u].stopped_early)
        for k, v in looped[u].state_dict().items():
            torch.testing.assert_close(stacked[u].state_dict()[k], v, atol=1e-6, rtol=1e-6, msg=f"{k} unit {u}")
    # the unit without validation data ran every epoch and kept its last weights
    assert rs[1].epochs == 5 and rs[1].best_epoch == 4 and not rs[1].stopped_early
    assert (stacked[1].weight - model_fn(2).weight).abs().max() > 1e-3
    # the same unit alone through fit(): the same rule and the same weights
    caplog.clear()
    alone = model_fn(2)
    with caplog.at_level(logging.WARNING, logger="deepstrf_utils"):
        r = fit(alone, train.select(["u1"]), val.select(["u1"]), **kw)
    assert (r.epochs, r.best_epoch) == (5, 4)
    assert any("u1" in rec.getMessage() for rec in caplog.records)
    torch.testing.assert_close(alone.weight, looped[1].weight)
