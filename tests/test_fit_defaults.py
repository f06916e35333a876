"""Tests of the fitting defaults chosen by ``benchmarks/bench_fit_quality.py``: the ridge
start's penalty by cross-validation on the training stimuli, early stopping that cannot end a
fit before it has left its start, and L / LN fits whose AdapTrans parameters move."""

import numpy as np
import pytest
import torch

from deepstrf_utils.datasets import ResponseDataset
from deepstrf_utils.models import build_model
from deepstrf_utils.training.packing import Packed
from deepstrf_utils.training.options import FitOptions, resolve_fit_options
from deepstrf_utils.training.warmstart import ridge_strf


def resolve(model, optimizer=None, n_stimuli=None, **options):
    """resolve_fit_options for these options (``optimizer`` may come first, as a position)."""
    if optimizer is not None:
        options["optimizer"] = optimizer
    return resolve_fit_options(model, FitOptions(**options), n_stimuli=n_stimuli)

F, K = 8, 5


def _packed(ds):
    p = Packed.from_dataset(ds, torch.device("cpu"))
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
    from deepstrf_utils.models.ridge import lagged_design

    xs = [lagged_design(np.asarray(s, np.float64)[None], K) for s in ds_train.stimuli]
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


def test_early_stopping_cannot_stop_before_min_epochs():
    """A validation curve that rises for two epochs, then falls: patience 2 alone stops at
    epoch 2 and keeps epoch 0; with min_epochs the fall is found and kept."""
    from deepstrf_utils.training.fitting import FitResult
    from deepstrf_utils.training.stopping import EarlyStopping

    curve = [1.0, 1.1, 1.2, 0.9, 0.7, 0.75, 0.8, 0.85]
    model = torch.nn.Linear(1, 1)

    def run(min_epochs):
        res = FitResult()
        stopper = EarlyStopping(res, True, patience=2, min_delta=0.0, rel_tol=0.0, min_epochs=min_epochs)
        for epoch, v in enumerate(curve):
            if stopper.update(model, epoch, v):
                return epoch, res.best_epoch
        return None, res.best_epoch

    assert run(0) == (2, 0)
    assert run(5) == (6, 4)


def _small_mismatched_neuron():
    """One neuron of a small mismatched population (not of the models' family) on which
    L-BFGS from a random start used to stop after 3 epochs keeping epoch 0 (seeds 1 and 5)."""
    from deepstrf_utils.datasets.synthetic_mismatched import generate_mismatched

    ds = generate_mismatched(n_neurons=3, n_clips=8, clip_s=(0.6, 0.8), n_repeats=4, n_bands=12).select([2])
    return ds.subset(range(5)), ds.subset([5, 6])


def _small_nrf(ds, seed):
    torch.manual_seed(seed)
    return build_model("NetworkReceptiveField", n_bands=12, n_neurons=1, dt_ms=5.0, prefilter="adaptrans", n_lags=8,
                       n_hidden=8, prefilter_kwargs={"kernel_size": 24, "cf_hz": [float(c) for c in ds.cf_hz]})


def test_lbfgs_from_a_random_start_does_not_stop_on_the_early_rise():
    """Its validation loss rose in epochs 1-2; patience 2 stopped there and restored epoch 0,
    with stop_reason "patience" as if all were well."""
    from deepstrf_utils.training import fit
    from deepstrf_utils.training.options import LBFGS_MIN_EPOCHS

    train, val = _small_mismatched_neuron()
    for seed in (1, 5):
        r = fit(_small_nrf(train, seed), train, val, optimizer="lbfgs", init=None, device="cpu", progress=False,
                seed=seed)
        assert r.val_loss[1] > r.val_loss[0]  # the early rise is there
        assert r.epochs >= LBFGS_MIN_EPOCHS and r.best_epoch > 0
        assert r.best_val_loss < 0.98 * r.val_loss[0]


def _planted_adaptrans_set(name, n_train=6):
    """Poisson responses of a model whose AdapTrans is far from the initial one (ON slower,
    OFF faster, more weight on the present bin), clips of 1.5 s, 12 bands: ``n_train``
    training clips, 2 validation clips."""
    from deepstrf_utils.stimuli import compose_clip

    cf = np.geomspace(500, 8000, 12)
    rng = np.random.default_rng(0)
    stims = [compose_clip(cf, 300, dt_ms=5.0, rng=rng)[0] for _ in range(n_train + 2)]
    torch.manual_seed(123)
    truth = build_model(name, n_bands=12, n_neurons=1, n_lags=8, dt_ms=5.0, prefilter="adaptrans",
                        prefilter_kwargs={"cf_hz": list(cf), "kernel_size": 60})
    with torch.no_grad():
        truth.prefilter.logit_a_on.add_(1.5)
        truth.prefilter.logit_a_off.sub_(1.0)
        truth.prefilter.logit_w.add_(1.0)
        w = torch.zeros_like(truth.weight)
        w[0, 0, 4:7, 1:4], w[0, 1, 6:9, 2:5] = 1.0, -0.7
        truth.weight.copy_(w)
        truth.bias.zero_()
        rates = [0.3 * torch.nn.functional.softplus(truth.linear_drive(torch.as_tensor(s)[None, None]))[0].numpy()
                 for s in stims]
    resp = [rng.poisson(np.repeat(r[:, None, :], 6, axis=1)).astype(np.float32) for r in rates]
    ds = ResponseDataset(stims, resp, dt_ms=5.0, cf_hz=cf)
    return ds.subset(range(n_train)), ds.subset([n_train, n_train + 1]), cf


@pytest.mark.parametrize("name", ["Linear", "LinearNonlinear"])
def test_linear_models_leave_their_ridge_start_and_learn_adaptrans(name):
    """L / LN from the ridge start (whose penalty the validation set chose, then the bar with
    patience 1) stopped at that start: best_epoch -1, AdapTrans exactly at its initialisation,
    so the learned time constants read off the fit were the initial ones."""
    from deepstrf_utils.training import fit

    train, val, cf = _planted_adaptrans_set(name)
    torch.manual_seed(0)
    model = build_model(name, n_bands=12, n_neurons=1, n_lags=8, dt_ms=5.0, prefilter="adaptrans",
                        prefilter_kwargs={"cf_hz": list(cf), "kernel_size": 60})
    start = {k: v.detach().clone() for k, v in model.prefilter.named_parameters()}
    r = fit(model, train, val, init="ridge", device="cpu", progress=False)
    assert r.init == "ridge" and r.best_epoch >= 0 and r.best_val_loss < r.init_val_loss
    moved = max(float((v.detach() - start[k]).abs().max()) for k, v in model.prefilter.named_parameters())
    assert moved > 0.1


@pytest.mark.parametrize("n_train", [9, 6])
def test_linear_nonlinear_races_its_two_starts(n_train):
    """LN by default: L-BFGS from the ridge start and from the random start, the better on the
    validation set kept (its weights in the model); fit_single_units does the same per unit.
    With no more training stimuli than one AdamW batch (8), the second start is the AdamW path."""
    from deepstrf_utils.training import fit, fit_single_units
    from deepstrf_utils.training.fitting import loss_function, _validation_loss
    from deepstrf_utils.training.packing import Packed

    train, val, cf = _planted_adaptrans_set("LinearNonlinear", n_train=n_train)
    expected = [("lbfgs", "ridge"), ("lbfgs", None) if n_train > 8 else ("adamw", None)]

    def model(seed=0):
        torch.manual_seed(seed)
        return build_model("LinearNonlinear", n_bands=12, n_neurons=1, n_lags=8, dt_ms=5.0, prefilter="adaptrans",
                           prefilter_kwargs={"cf_hz": list(cf), "kernel_size": 60})

    m = model()
    r = fit(m, train, val, device="cpu", progress=False)
    assert [(c["optimizer"], c["init"]) for c in r.raced] == expected
    assert r.best_val_loss == min(c["best_val_loss"] for c in r.raced)
    kept = r.raced[int(np.argmin([c["best_val_loss"] for c in r.raced]))]
    assert (r.optimizer, r.init) == (kept["optimizer"], kept["init"])
    va = Packed.from_dataset(val, torch.device("cpu"))
    np.testing.assert_allclose(_validation_loss(m, va, loss_function("mse"), 8, 0), r.best_val_loss, rtol=1e-5)
    models, results = fit_single_units(lambda s: model(), train, val, device="cpu", progress=False)
    assert [(c["optimizer"], c["init"]) for c in results[0].raced] == expected
    np.testing.assert_allclose(results[0].best_val_loss, r.best_val_loss, rtol=1e-4)


def test_linear_default_fits_are_deterministic():
    """Linear's default (closed-form ridge start, full-batch L-BFGS) does not depend on the
    seed: every seed gives the same fit (fit's docstring says so; benchmarks report one fit)."""
    from deepstrf_utils.training import fit

    train, val, cf = _planted_adaptrans_set("Linear")
    weights = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = build_model("Linear", n_bands=12, n_neurons=1, n_lags=8, dt_ms=5.0, prefilter="adaptrans",
                        prefilter_kwargs={"cf_hz": list(cf), "kernel_size": 60})
        fit(m, train, val, device="cpu", progress=False, seed=seed)
        weights.append({k: v.detach().clone() for k, v in m.state_dict().items()})
    for k in weights[0]:
        torch.testing.assert_close(weights[0][k], weights[1][k], rtol=0, atol=0, msg=k)


def test_nrf_dnet_auto_adamw_settings_follow_the_training_set_size():
    """NRF / DNet: ADAMW_AUTO (lr 3e-3, patience 20) with more training stimuli than one batch;
    with a single AdamW step per epoch the AdamW defaults (lr 1e-3, patience 50)."""
    from deepstrf_utils.training.options import ADAMW_AUTO, FitOptions, resolve_fit_options

    model = build_model("DNet", n_bands=F, n_neurons=1, n_lags=K, n_hidden=3)
    many = resolve_fit_options(model, FitOptions(), n_stimuli=ADAMW_AUTO["batch_size"] + 1)
    few = resolve_fit_options(model, FitOptions(), n_stimuli=ADAMW_AUTO["batch_size"])
    assert (many["optimizer"], many["lr"], many["patience"]) == ("adamw", ADAMW_AUTO["lr"], ADAMW_AUTO["patience"])
    assert (few["optimizer"], few["lr"], few["patience"]) == ("adamw", 1e-3, 50)


def test_linear_nonlinear_auto_starts_follow_the_training_set_size():
    """LN, optimizer="auto": the ridge start raced against the random L-BFGS start with more
    training stimuli than one AdamW batch, against the AdamW path of ADAMW_FIT_KWARGS with
    fewer (the random start's validation win on two short validation segments was not real);
    an explicit optimizer="lbfgs" keeps the two L-BFGS starts."""
    from deepstrf_utils.training.options import ADAMW_FIT_KWARGS, BATCH_SIZE

    model = build_model("LinearNonlinear", n_bands=F, n_neurons=1, n_lags=K)
    args = dict(init="auto", lr=None, max_epochs=None, patience="auto", rel_tol=None)
    many = resolve(model, "auto", **args, n_stimuli=BATCH_SIZE + 1)
    few = resolve(model, "auto", **args, n_stimuli=BATCH_SIZE)
    lbfgs = resolve(model, "lbfgs", **args, n_stimuli=BATCH_SIZE)
    assert [(s["optimizer"], s["init"]) for s in many["starts"]] == [("lbfgs", "ridge"), ("lbfgs", None)]
    assert [(s["optimizer"], s["init"]) for s in lbfgs["starts"]] == [("lbfgs", "ridge"), ("lbfgs", None)]
    assert [(s["optimizer"], s["init"]) for s in few["starts"]] == [("lbfgs", "ridge"), ("adamw", None)]
    adamw = few["starts"][1]
    assert {k: adamw[k] for k in ("lr", "weight_decay", "batch_size", "patience", "max_epochs", "rel_tol")} == {
        k: ADAMW_FIT_KWARGS[k] for k in ("lr", "weight_decay", "batch_size", "patience", "max_epochs", "rel_tol")}


def test_recurrent_auto_settings_follow_the_training_set_size():
    """StateNet, optimizer="auto": RECURRENT_AUTO (chunks, lr 2e-3, batch 4, patience 8) with
    more training stimuli than one AdamW batch; with fewer, the AdamW defaults of
    ADAMW_FIT_KWARGS on whole stimuli (the short patience fell far below AdamW there)."""
    from deepstrf_utils.training.options import ADAMW_FIT_KWARGS, BATCH_SIZE, RECURRENT_AUTO

    model = build_model("StateNet", n_bands=F, n_neurons=1, dt_ms=5.0, prefilter="adaptrans",
                        prefilter_kwargs={"cf_hz": list(np.geomspace(500, 8000, F))})
    args = dict(optimizer="auto", init="auto", lr=None, max_epochs=None, patience="auto", rel_tol=None,
                train_chunk="auto")
    keys = ("lr", "batch_size", "patience", "max_epochs", "weight_decay", "rel_tol")
    many = resolve(model, **args, n_stimuli=BATCH_SIZE + 1)
    few = resolve(model, **args, n_stimuli=BATCH_SIZE)
    assert (many["optimizer"], many["train_chunk"], many["lr"], many["batch_size"], many["patience"]) == (
        "adamw", RECURRENT_AUTO["chunk"], RECURRENT_AUTO["lr"], RECURRENT_AUTO["batch_size"],
        RECURRENT_AUTO["patience"])
    assert (few["optimizer"], few["train_chunk"]) == ("adamw", None)
    assert {k: few[k] for k in keys} == {k: ADAMW_FIT_KWARGS[k] for k in keys}


@pytest.mark.parametrize("name", ["ConvNet2D", "NetworkReceptiveField", "StateNet"])
def test_few_training_stimuli_take_the_adamw_defaults(name):
    """With no more training stimuli than one AdamW batch, optimizer="auto" gives every model
    but L / LN and the Transformer AdamW's own defaults (ADAMW_FIT_KWARGS' settings, whole
    stimuli); with more, the 2D-CNN keeps L-BFGS. The Transformer keeps RECURRENT_AUTO."""
    from deepstrf_utils.training.options import (ADAMW_FIT_KWARGS, BATCH_SIZE, FEW_STIMULI_AUTO, RECURRENT_AUTO)

    kw = {"n_lags": K} if name == "NetworkReceptiveField" else {}
    model = build_model(name, n_bands=32 if name == "ConvNet2D" else F, n_neurons=1, dt_ms=5.0, **kw)
    args = dict(optimizer="auto", init="auto", lr=None, max_epochs=None, patience="auto", rel_tol=None,
                train_chunk="auto")
    keys = ("lr", "batch_size", "patience", "max_epochs", "weight_decay", "rel_tol")
    few = resolve(model, **args, n_stimuli=BATCH_SIZE)
    assert (few["optimizer"], few["init"], few["train_chunk"]) == (FEW_STIMULI_AUTO, None, None) == ("adamw", None, None)
    assert {k: few[k] for k in keys} == {k: ADAMW_FIT_KWARGS[k] for k in keys}
    if name == "ConvNet2D":
        assert resolve(model, **args, n_stimuli=BATCH_SIZE + 1)["optimizer"] == "lbfgs"
    transformer = build_model("Transformer", n_bands=F, n_neurons=1, dt_ms=5.0)
    t = resolve(transformer, **args, n_stimuli=BATCH_SIZE)
    assert (t["optimizer"], t["lr"], t["patience"]) == ("adamw", RECURRENT_AUTO["lr"], RECURRENT_AUTO["patience"])
