"""Tests of the fitting defaults chosen by ``benchmarks/bench_fit_quality.py``: the ridge
start's penalty by cross-validation on the training stimuli, early stopping that cannot end a
fit before it has left its start, and L / LN fits whose AdapTrans parameters move."""

import numpy as np
import pytest
import torch

from deepstrf_utils.datasets import ResponseDataset
from deepstrf_utils.models import build_model
from deepstrf_utils.training.packing import _Packed
from deepstrf_utils.training.warmstart import ridge_strf

F, K = 8, 5


def _packed(ds):
    p = _Packed.from_dataset(ds, torch.device("cpu"))
    return p.stim, p.target, p.lengths


def _noisy_linear_set(seed=0, lengths=(60, 75, 50, 80, 65, 70), noise=1.0):
    """Responses of a planted STRF (no prefilter) plus Gaussian noise, one neuron, 2 trials."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(1, 1, F, K)).astype(np.float32)
    truth = build_model("Linear", n_bands=F, n_neurons=1, n_lags=K)
    truth.load_strf(w, bias=[0.5])
    stims = [rng.random((F, t)).astype(np.float32) for t in lengths]
    with torch.no_grad():
        rates = [truth(torch.as_tensor(s)[None, None])[0].numpy() for s in stims]
    resps = [(r[:, None, :] + noise * rng.normal(size=(1, 2, r.shape[1]))).astype(np.float32) for r in rates]
    return ResponseDataset(stims, resps, dt_ms=5.0, cf_hz=np.geomspace(500, 8000, F))


def _explicit_cv_mse(ds_train, alpha, folds):
    """k-fold error of the ridge solution at ``alpha`` (absolute), whole stimuli per fold, by hand."""
    from deepstrf_utils.models.ridge import _lagged_design

    xs = [_lagged_design(np.asarray(s, np.float64)[None], K) for s in ds_train.stimuli]
    ys = [np.nanmean(np.asarray(r, np.float64)[0], axis=0) for r in ds_train.responses]
    fold_of = np.arange(len(xs)) % folds
    se, n = 0.0, 0
    for k in range(folds):
        xtr = np.concatenate([x for x, f in zip(xs, fold_of) if f != k])
        ytr = np.concatenate([y for y, f in zip(ys, fold_of) if f != k])
        mx, my = xtr.mean(0), ytr.mean()
        w = np.linalg.solve((xtr - mx).T @ (xtr - mx) + alpha * np.eye(xtr.shape[1]), (xtr - mx).T @ (ytr - my))
        for x, y, f in zip(xs, ys, fold_of):
            if f == k:
                se += float((((x - mx) @ w + my - y) ** 2).sum())
                n += len(y)
    return se / n


def test_ridge_penalty_is_cross_validated_on_the_training_stimuli():
    ds = _noisy_linear_set()
    train, val = ds.subset([0, 1, 2, 3]), ds.subset([4, 5])
    prefilter = build_model("Linear", n_bands=F, n_neurons=1, n_lags=K).prefilter
    sol = ridge_strf(prefilter, K, _packed(train), _packed(val), folds=2)
    # the reported cross-validated error is the k-fold error of refits at the chosen penalty
    np.testing.assert_allclose(sol["cv_mse"][0], _explicit_cv_mse(train, sol["alpha"][0], 2), rtol=1e-6)
    # a decade more or less penalty cross-validates worse
    for factor in (0.1, 10.0):
        assert _explicit_cv_mse(train, factor * sol["alpha"][0], 2) > sol["cv_mse"][0]
    assert np.isfinite(sol["val_mse"][0])


def test_ridge_start_does_not_look_at_the_validation_set():
    """The validation set is the bar early stopping uses: it must not also pick the penalty
    (which made the start's validation loss optimistic by construction)."""
    ds = _noisy_linear_set(noise=3.0)
    train = ds.subset([0, 1, 2, 3])
    prefilter = build_model("Linear", n_bands=F, n_neurons=1, n_lags=K).prefilter
    a = ridge_strf(prefilter, K, _packed(train), _packed(ds.subset([4])))
    b = ridge_strf(prefilter, K, _packed(train), _packed(ds.subset([5])))
    assert a["alpha"][0] == b["alpha"][0]
    torch.testing.assert_close(a["weight"], b["weight"])
    assert a["val_mse"][0] != b["val_mse"][0]  # each is still scored on its own validation set


def test_ridge_cross_validation_on_one_long_stimulus():
    """A single training stimulus (one song split in time) is cut into blocks of bins."""
    ds = _noisy_linear_set(lengths=(300, 80))
    prefilter = build_model("Linear", n_bands=F, n_neurons=1, n_lags=K).prefilter
    sol = ridge_strf(prefilter, K, _packed(ds.subset([0])), _packed(ds.subset([1])), folds=3)
    assert np.isfinite(sol["cv_mse"][0]) and sol["alpha"][0] > 0
    with pytest.raises(ValueError, match="folds >= 2"):
        ridge_strf(prefilter, K, _packed(ds.subset([0])), None, folds=1)
