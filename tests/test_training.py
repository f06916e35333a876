"""Tests of deepstrf_utils.training / runner: fitting protocol, batched single units,
reproducibility, checkpoints, the resumable runner and its summary."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from deepstrf_utils.runs import runner
from deepstrf_utils.report.tables import markdown_table, summary_table
from deepstrf_utils import training
from deepstrf_utils.training import fitting as training_fit
from deepstrf_utils.training import optim, packing
from deepstrf_utils.adaptrans import AdapTrans, center_frequencies, willmore_tau_ms
from deepstrf_utils.datasets import ResponseDataset
from deepstrf_utils.datasets.synthetic import load_synthetic
from deepstrf_utils.models import build_model
from deepstrf_utils.training import (
    FitResult,
    evaluate,
    fit,
    fit_single_units,
    load_checkpoint,
    predict,
    save_checkpoint,
)

SYN = dict(n_neurons=4, n_clips=6, clip_s=1.0, n_bands=16, n_repeats=6)
F = SYN["n_bands"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def dataset(data_root):
    return load_synthetic(root=data_root, **SYN)


@pytest.fixture(scope="module")
def splits(dataset):
    return dataset.split(0)


def _synthetic_bands(n_bands=F):
    """The synthetic datasets' band centres (log-spaced 500 Hz - 22.6 kHz)."""
    from deepstrf_utils.datasets.synthetic import MAX_FREQ_HZ, MIN_FREQ_HZ
    from deepstrf_utils.spectrogram import band_centre_frequencies

    return [float(v) for v in band_centre_frequencies(n_bands, MIN_FREQ_HZ, MAX_FREQ_HZ)]


def _linear(n_neurons=1, prefilter=None, seed=0, model="Linear", **kw):
    torch.manual_seed(seed)
    kw.setdefault("n_lags", 8)
    if prefilter == "adaptrans":
        kw.setdefault("prefilter_kwargs", {"kernel_size": 24, "cf_hz": _synthetic_bands()})
    return build_model(model, n_bands=F, n_neurons=n_neurons, dt_ms=5.0, prefilter=prefilter, **kw)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _val_loss(model, val):
    """Validation loss recomputed independently (mse to the trial mean, concatenated stimuli)."""
    preds = predict(model, val)
    num = den = 0.0
    for p, (_, r) in zip(preds, (val[i] for i in range(len(val)))):
        target = np.nanmean(r.numpy(), axis=1)
        num += np.nansum((p - target) ** 2, axis=1)
        den += np.isfinite(target).sum(1)
    return float(np.mean(num / den))


# ----------------------------------------------------------------------------- fit


def test_fit_reduces_loss_and_restores_best(splits):
    train, val, _ = splits
    model = _linear(n_neurons=4, prefilter="adaptrans")
    res = fit(model, train, val, lr=0.005, max_epochs=25, patience=4, batch_size=2, device="cpu",
              progress=False)
    assert isinstance(res, FitResult)
    assert res.epochs == len(res.train_loss) == len(res.val_loss) == len(res.lr)
    assert res.train_loss[-1] < res.train_loss[0]
    assert min(res.val_loss) < res.val_loss[0]
    assert res.best_epoch == int(np.argmin(res.val_loss))
    # the setting overshoots, so the best epoch is not the last one: restoring matters
    assert res.best_epoch < res.epochs - 1
    assert _val_loss(model, val) == pytest.approx(res.best_val_loss, rel=1e-5)
    assert res.history.shape == (res.epochs, 4)
    assert not model.training


def test_early_stopping_patience(splits):
    train, val, _ = splits
    model = _linear(n_neurons=4)
    res = fit(model, train, val, lr=0.02, max_epochs=200, patience=3, batch_size=2, device="cpu",
              progress=False)
    assert res.stopped_early
    assert res.epochs == res.best_epoch + 1 + 3 < 200
    assert all(v >= res.best_val_loss for v in res.val_loss[res.best_epoch + 1:])
    # no early stopping without patience: runs max_epochs
    res2 = fit(_linear(n_neurons=4), train, val, lr=0.02, max_epochs=6, patience=None, batch_size=2,
               device="cpu", progress=False)
    assert res2.epochs == 6 and not res2.stopped_early


def test_fit_rejects_wrong_neuron_count(splits):
    train, val, _ = splits
    with pytest.raises(ValueError, match=r"N=3.*N=4"):
        fit(_linear(n_neurons=3), train, val, max_epochs=1, device="cpu", progress=False)


def test_fit_rejects_neuron_without_trials():
    rng = np.random.default_rng(0)
    stims = [rng.random((F, 40)).astype(np.float32) for _ in range(3)]
    resps = [rng.random((2, 3, 40)).astype(np.float32) for _ in range(3)]
    for r in resps:
        r[1] = np.nan
    ds = ResponseDataset(stims, resps, dt_ms=5.0, cf_hz=np.geomspace(500, 8000, F), neuron_ids=["a", "b"])
    with pytest.raises(ValueError, match=r"\['b'\].*no valid trial"):
        fit(_linear(n_neurons=2), ds, None, max_epochs=1, device="cpu", progress=False)


@pytest.mark.parametrize("optimizer", ["adamw", "lbfgs"])
def test_nan_loss_names_epoch_and_neuron(splits, optimizer):
    train, val, _ = splits
    model = _linear(n_neurons=4)
    with torch.no_grad():
        model.bias[2] = float("nan")
    with pytest.raises(FloatingPointError, match=r"epoch 0.*'syn002'"):
        fit(model, train, val, max_epochs=2, device="cpu", progress=False, init_output=False, optimizer=optimizer,
            init=None)


def test_nan_parameter_names_parameter(splits):
    train, val, _ = splits

    def nan_gradient(pred, resp, reduction="none"):  # a finite loss whose gradient is NaN
        sq = (pred - resp[:, :, 0]).nan_to_num().square().mean((0, 2))
        return sq + 0.0 * (pred - pred.detach()).abs().sqrt().mean((0, 2))

    with pytest.raises(FloatingPointError, match=r"parameter\(s\) \['weight', 'bias'\] became NaN/inf at epoch 0"):
        fit(_linear(n_neurons=4), train, val, loss=nan_gradient, optimizer="adamw", max_epochs=2, device="cpu",
            progress=False)


def test_bad_arguments(splits):
    train, val, _ = splits
    with pytest.raises(ValueError, match="lr"):
        fit(_linear(n_neurons=4), train, val, lr=0.0, device="cpu", progress=False)
    with pytest.raises(ValueError, match="scheduler"):
        fit(_linear(n_neurons=4), train, val, scheduler="cosine", max_epochs=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="seeds"):
        fit_single_units(lambda s: _linear(), train, val, seeds=[0, 1], device="cpu", progress=False)


def test_reproducible_metrics(splits):
    train, val, test = splits
    runs = []
    for _ in range(2):
        model = _linear(n_neurons=4, prefilter="adaptrans", seed=3)
        res = fit(model, train, val, max_epochs=4, batch_size=2, seed=5, device="cpu", progress=False,
                  optimizer="adamw")
        runs.append((res.train_loss, res.val_loss, evaluate(model, test)))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    pd.testing.assert_frame_equal(runs[0][2], runs[1][2])
    # a different data seed changes the batch order, hence the fit
    model = _linear(n_neurons=4, prefilter="adaptrans", seed=3)
    res = fit(model, train, val, max_epochs=4, batch_size=2, seed=6, device="cpu", progress=False,
              optimizer="adamw")
    assert res.train_loss != runs[0][0]


def test_plateau_matches_torch_scheduler():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1)
    ours = optim._Plateau(1, 1.0, factor=0.5, patience=2, cooldown=1)
    values = [5, 4, 4, 4, 4, 3.9999, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2]
    for v in values:
        ref.step(v)
        assert ours.step(np.array([v]))[0] == pytest.approx(opt.param_groups[0]["lr"])
    assert opt.param_groups[0]["lr"] < 0.2


# ----------------------------------------------------------------------------- single units


@pytest.mark.parametrize("model_name,prefilter_lr", [("Linear", None), ("LinearNonlinear", None),
                                                     ("LinearNonlinear", 0.006)])
def test_batched_single_units_equal_separate_fits(splits, model_name, prefilter_lr):
    train, val, _ = splits
    seeds = [11, 12, 13]
    kw = dict(lr=0.002, max_epochs=6, patience=2, batch_size=2, clip_grad=0.05, scheduler="plateau",
              scheduler_kwargs={"patience": 1}, device="cpu", seed=4, progress=False, prefilter_lr=prefilter_lr)

    def model_fn(s):
        return _linear(prefilter="adaptrans", seed=s, model=model_name)

    models, results = fit_single_units(model_fn, train, val, neurons=["syn000", "syn002", "syn003"], seeds=seeds,
                                       batched=True, **kw)
    assert len(models) == len(results) == 3
    assert all(r.batched for r in results)
    for u, (nid, s) in enumerate(zip(["syn000", "syn002", "syn003"], seeds)):
        torch.manual_seed(s)
        ref = model_fn(s)
        r = fit(ref, train.select([nid]), val.select([nid]), **kw)
        assert results[u].neuron == nid
        assert (results[u].epochs, results[u].best_epoch, results[u].stopped_early) == \
            (r.epochs, r.best_epoch, r.stopped_early)
        # float rounding (FFT STRF paths, vmapped vs plain reductions) makes the loss histories
        # agree to ~1e-4, the conv path to ~1e-7
        np.testing.assert_allclose(results[u].train_loss, r.train_loss, rtol=5e-4)
        np.testing.assert_allclose(results[u].val_loss, r.val_loss, rtol=5e-4)
        np.testing.assert_allclose(results[u].lr, r.lr)
        for (k, a), b in zip(ref.state_dict().items(), models[u].state_dict().values()):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=0, msg=f"{k} of unit {nid}")
        # the AdapTrans parameters were trained inside the vmapped stack
        init = model_fn(s).prefilter.logit_a_on
        assert (models[u].prefilter.logit_a_on - init).abs().max() > 1e-4
    # early stopping differed between units, yet each got its own best weights
    assert len({r.epochs for r in results}) > 1 or any(r.stopped_early for r in results)
    if model_name == "Linear" or prefilter_lr is not None:
        # stacks of at most 2 units (memory bound) give the same fits (up to the rounding of
        # matrix products of another size: the 1e-4 after a few epochs)
        chunked, _ = fit_single_units(model_fn, train, val, neurons=["syn000", "syn002", "syn003"],
                                      seeds=seeds, max_stack=2, batched=True, **kw)
        for a, b in zip(models, chunked):
            for k, v in a.state_dict().items():
                torch.testing.assert_close(b.state_dict()[k], v, atol=1e-4, rtol=0)


def _tiny_sets(n_bands=8, n_neurons=3, seed=0):
    """Tiny random train / val sets: F=8 bands, 36-44 bins, 3 neurons, 3 repeats."""
    rng = np.random.default_rng(seed)
    cf = np.geomspace(500, 8000, n_bands)
    out = []
    for n_stim in (5, 2):
        lens = rng.integers(36, 45, n_stim)
        stims = [rng.random((n_bands, t)).astype(np.float32) for t in lens]
        resps = [rng.poisson(2.0 + 2.0 * s[:n_neurons].mean(0) * np.arange(1, n_neurons + 1)[:, None, None],
                             (n_neurons, 3, s.shape[1])).astype(np.float32) for s in stims]
        out.append(ResponseDataset(stims, resps, dt_ms=5.0, cf_hz=cf, neuron_ids=["u0", "u1", "u2"],
                                   name="tiny"))
    return out


def _tiny_model(name, seed):
    torch.manual_seed(seed)
    pre = {"prefilter": "adaptrans", "prefilter_kwargs": {"kernel_size": 12, "cf_hz": list(np.geomspace(500, 8000, 8))}}
    if name == "ConvNet2D":
        # nothing frozen: the conv biases before BatchNorm are constants of the model (ConvBeforeNorm2d)
        return build_model(name, n_bands=8, kernel_size=(3, 5), channels=3, hidden=6, n_blocks=2, **pre)
    return build_model(name, n_bands=8, n_hidden=3, n_lags=6, **pre)


@pytest.mark.parametrize("model_name", ["NetworkReceptiveField", "DNet", "ConvNet2D"])
def test_batched_deep_single_units_equal_separate_fits(model_name):
    train, val = _tiny_sets()
    seeds = [21, 22, 23]
    kw = dict(lr=0.01, max_epochs=3, patience=1, batch_size=2, clip_grad=0.5, device="cpu", seed=2,
              progress=False)

    def model_fn(s):
        return _tiny_model(model_name, s)

    models, results = fit_single_units(model_fn, train, val, seeds=seeds, batched=True, **kw)
    assert all(r.batched for r in results)
    for u, (nid, s) in enumerate(zip(["u0", "u1", "u2"], seeds)):
        ref = model_fn(s)
        r = fit(ref, train.select([nid]), val.select([nid]), **kw)
        assert (results[u].epochs, results[u].best_epoch) == (r.epochs, r.best_epoch)
        np.testing.assert_allclose(results[u].train_loss, r.train_loss, rtol=1e-4)
        np.testing.assert_allclose(results[u].val_loss, r.val_loss, rtol=1e-4)
        ref_state = ref.state_dict()
        for k, v in models[u].state_dict().items():  # parameters and buffers (BatchNorm statistics)
            torch.testing.assert_close(v, ref_state[k], atol=1e-4, rtol=1e-4, msg=f"{k} of unit {nid}")
        for a, b in zip(predict(models[u], val), predict(ref, val)):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
        # the prefilter was trained inside the stack
        assert (models[u].prefilter.logit_a_on - model_fn(s).prefilter.logit_a_on).abs().max() > 1e-4


def test_single_units_loop_fallback_and_nan(splits):
    train, val, _ = splits
    # batched=False forces the loop; results are the same kind of objects
    models, results = fit_single_units(lambda s: _linear(seed=s), train, val, neurons=[1, 2], max_epochs=2,
                                       device="cpu", progress=False, batched=False)
    assert [r.neuron for r in results] == ["syn001", "syn002"] and not any(r.batched for r in results)

    def bad(s):
        m = _linear(seed=s)
        with torch.no_grad():
            m.weight.fill_(float("nan"))
        return m

    for optimizer in ("adamw", "lbfgs"):
        with pytest.raises(FloatingPointError, match=r"epoch 0.*neuron"):
            fit_single_units(bad, train, val, max_epochs=2, device="cpu", progress=False, init_output=False,
                             optimizer=optimizer, init=None)


def test_single_units_keep_frozen_parameters_frozen(splits):
    # as in fit(), a parameter with requires_grad=False is not trained inside the stack
    train, _, _ = splits

    def model_fn(s):
        m = _linear(seed=s)
        m.bias.requires_grad_(False)
        return m

    models, _ = fit_single_units(model_fn, train, None, neurons=[0, 1], seeds=3, max_epochs=2, batch_size=2,
                                 device="cpu", progress=False, init_output=False, batched=True)
    ref = model_fn(3)
    for m in models:
        torch.testing.assert_close(m.bias, ref.bias, atol=0, rtol=0)
        assert (m.weight - ref.weight).abs().max() > 1e-4


def _one_adamw_step(train, batched, model="Linear", weight_decay=0.1, **kw):
    """One AdamW step (val=None, one batch holding every training stimulus) on a ``model`` +
    AdapTrans unit fitted to neuron 1 -> (parameters before, gradients of the mse at the start, after)."""
    def model_fn(s):
        extra = {"n_hidden": 3} if model in ("NetworkReceptiveField", "DNet") else {}
        return _linear(prefilter="adaptrans", seed=s, model=model, **extra)

    start = model_fn(7)
    packed = packing._Packed.from_dataset(train, torch.device("cpu"), [1])
    x, y = packed.batch(list(range(packed.n_stimuli)))
    training_fit._batch_loss(training_fit._get_loss("mse"), start(x), y)[0].backward()
    before = {k: v.detach().clone() for k, v in start.named_parameters()}
    grads = {k: v.grad.detach().clone() for k, v in start.named_parameters()}
    common = dict(max_epochs=1, batch_size=len(train), device="cpu", progress=False, init_output=False,
                  weight_decay=weight_decay, **kw)
    if batched:
        models, _ = fit_single_units(model_fn, train, None, neurons=[0, 1], seeds=7, batched=True, **common)
        model = models[1]
    else:
        torch.manual_seed(7)
        model = model_fn(7)
        fit(model, train.select([1]), None, **common)
    return before, grads, {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize("batched", [False, True])
def test_prefilter_lr_known_first_step(splits, batched):
    # AdamW's first step (bias-corrected m = g, sqrt(v) = |g|) is known in closed form:
    # p1 = p0 * (1 - rate * wd) - rate * g / (|g| + eps), with rate = prefilter_lr for the
    # prefilter.* parameters and lr for every other one (and wd = 0 for the prefilter).
    train, _, _ = splits
    lr, plr, wd = 1e-3, 3e-2, 0.1
    before, grads, after = _one_adamw_step(train, batched, lr=lr, prefilter_lr=plr)
    assert {k for k in before if k.startswith("prefilter.")} == {"prefilter.logit_a_on", "prefilter.logit_a_off",
                                                                 "prefilter.logit_w"}
    for k, p0 in before.items():
        rate = plr if k.startswith("prefilter.") else lr
        decay = 0.0 if k.startswith("prefilter.") else wd
        g = grads[k]
        expected = p0 * (1 - rate * decay) - rate * g / (g.abs() + 1e-8)
        torch.testing.assert_close(after[k], expected, rtol=0, atol=2e-3 * rate, msg=f"first AdamW step of {k}")
        assert (g.abs() > 1e-6).sum() >= min(3, g.numel()), k  # the check is not vacuous
    # prefilter_lr=None is the old single-rate AdamW, bit for bit equal to prefilter_lr=lr
    _, _, a = _one_adamw_step(train, batched, lr=lr)
    _, _, b = _one_adamw_step(train, batched, lr=lr, prefilter_lr=lr)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
    with pytest.raises(ValueError, match="prefilter_lr"):
        fit(_linear(), train.select([0]), None, prefilter_lr=0.0, device="cpu", progress=False)


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("model", ["LinearNonlinear", "DNet"])
def test_weight_decay_spares_time_constants(splits, batched, model):
    # a huge weight decay (lr * wd = 0.2: decayed parameters shrink by 20 % in one step)
    # must leave AdapTrans' logits and DNet's integrator parameters to their gradient alone:
    # p1 = p0 - lr * g / (|g| + eps) for them, p1 = 0.8 p0 - lr * g / (|g| + eps) for weights
    train, _, _ = splits
    lr, wd = 1e-2, 20.0
    before, grads, after = _one_adamw_step(train, batched, model=model, lr=lr, weight_decay=wd)
    exempt = {"prefilter.logit_a_on", "prefilter.logit_a_off", "prefilter.logit_w"}
    if model == "DNet":
        exempt |= {"hidden_d", "output_d"}
    extra = {"n_hidden": 3} if model == "DNet" else {}
    assert training.no_decay_names(_linear(prefilter="adaptrans", model=model, **extra)) == exempt
    assert exempt < set(before) and len(set(before) - exempt) >= 4
    tol = 2e-3 * lr
    for k, p0 in before.items():
        g = grads[k]
        decay = 0.0 if k in exempt else wd
        expected = p0 * (1 - lr * decay) - lr * g / (g.abs() + 1e-8)
        torch.testing.assert_close(after[k], expected, rtol=0, atol=tol, msg=f"first AdamW step of {k}")
        if k in exempt and k != "prefilter.logit_w":  # logit_w starts at logit(0.5) = 0
            # the check is not vacuous: decay would have moved these by far more than tol
            assert float((p0.abs() * lr * wd).max()) > 100 * tol, k


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path, splits):
    train, val, test = splits
    model = _linear(n_neurons=4, prefilter="adaptrans", model="LinearNonlinear")
    fit(model, train, val, max_epochs=2, device="cpu", progress=False)
    scores = evaluate(model, test)
    path = tmp_path / "ckpt" / "model.pt"
    save_checkpoint(path, model, dataset="synthetic", split_seed=0, seed=0, metrics=scores)
    assert path.exists() and not list(path.parent.glob(".tmp*"))
    loaded, info = load_checkpoint(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    for a, b in zip(predict(model, test), predict(loaded, test)):
        np.testing.assert_array_equal(a, b)
    assert info["dataset"] == "synthetic" and info["split_seed"] == 0
    pd.testing.assert_frame_equal(info["metrics"], scores)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_evaluate_columns(splits):
    train, val, test = splits
    model = _linear(n_neurons=4)
    fit(model, train, val, max_epochs=3, device="cpu", progress=False)
    df = evaluate(model, test)
    assert list(df.columns) == ["neuron", "cc_raw", "cc_norm", "cc_max"]
    assert df["neuron"].tolist() == list(test.neuron_ids)
    assert np.all(np.abs(df["cc_raw"]) <= 1)
    preds = predict(model, test)
    assert [p.shape for p in preds] == [(4, test[i][0].shape[-1]) for i in range(len(test))]


def test_predict_units_evaluates_like_one_unit_at_a_time(splits):
    # stacking the units' predictions and scoring them in one metrics call gives the same
    # rows as evaluating every unit on its own one-neuron copy of the test set
    train, val, test = splits
    models, _ = fit_single_units(lambda s: _linear(prefilter="adaptrans", seed=s, model="LinearNonlinear"),
                                 train, val, seeds=[1, 2, 3, 4], max_epochs=2, batch_size=4, device="cpu",
                                 progress=False)
    preds = training.predict_units(models, test)
    assert [p.shape for p in preds] == [(4, test[i][0].shape[-1]) for i in range(len(test))]
    fast = evaluate(None, test, predictions=preds)
    slow = pd.concat([evaluate(m, test.select([u])) for u, m in enumerate(models)], ignore_index=True)
    assert fast["neuron"].tolist() == slow["neuron"].tolist() == list(test.neuron_ids)
    assert fast[["cc_raw", "cc_norm", "cc_max"]].notna().all().all()
    # cc_raw and cc_norm agree bit for bit; cc_max to float32 rounding (~3e-8: reduction order over N)
    pd.testing.assert_frame_equal(fast, slow, check_exact=False, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="model or predictions"):
        evaluate(None, test)
    with pytest.raises(ValueError, match="at least one model"):
        training.predict_units([], test)
    with pytest.raises(ValueError, match="single-unit"):
        training.predict_units([_linear(n_neurons=2)], test)


# ----------------------------------------------------------------------------- runner


def test_run_configs_writes_and_resumes(tmp_path, data_root, monkeypatch):
    calls = []
    real = training.fit_single_units

    def counting(*args, **kwargs):
        calls.append(kwargs.get("seed"))
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "fit_single_units", counting)
    config = {"dataset": "synthetic", "dataset_options": SYN, "model": "Linear",
              "model_kwargs": {"n_lags": 6}, "prefilter": "adaptrans", "mode": "single",
              "fit_kwargs": {"max_epochs": 2, "batch_size": 4}, "note": "test"}
    out = tmp_path / "results.csv"
    df = runner.run_configs([config], seeds=[0, 1], out_csv=out, root=data_root, device="cpu",
                            checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert calls == [0, 1]
    assert len(df) == 2 * SYN["n_neurons"]
    assert list(df.columns) == runner.RESULT_COLUMNS
    on_disk = pd.read_csv(out, dtype={"neuron": str, "excluded_reason": str})
    on_disk["excluded_reason"] = on_disk["excluded_reason"].fillna("")  # "" (not excluded) is read back as NaN
    assert len(on_disk) == len(df) and set(on_disk["seed"]) == {0, 1}
    assert on_disk["config_id"].nunique() == 1 and on_disk["prefilter"].iloc[0] == "adaptrans"
    assert len(list((tmp_path / "ckpt").glob("*.pt"))) == 2 * SYN["n_neurons"]
    # second call: everything is there, nothing is fitted; a new seed adds one run
    df2 = runner.run_configs([config], seeds=[0, 1, 2], out_csv=out, root=data_root, device="cpu",
                             progress=False)
    assert calls == [0, 1, 2]
    assert len(df2) == 3 * SYN["n_neurons"]
    pd.testing.assert_frame_equal(df2.iloc[: len(df)].reset_index(drop=True),
                                  on_disk.astype(df2.dtypes.to_dict()), check_dtype=False)
    table = summary_table(df2)
    assert table.loc[0, "Model"] == "Linear + AdapTrans" and table.loc[0, "Seeds"] == 3
    assert "| Dataset |" in markdown_table(table)


def test_config_validation_and_id():
    base = {"dataset": "synthetic", "model": "Linear"}
    assert runner.config_id(base) == runner.config_id({**base, "note": "", "mode": "single"})
    assert runner.config_id(base) != runner.config_id({**base, "note": "x"})
    # ids written before the prefilter_kwargs field existed are unchanged (empty -> left out)
    assert runner.config_id(base) == "4a2847cc8b16"
    at = {**base, "prefilter": "adaptrans"}
    assert runner.config_id(at) == runner.config_id({**at, "prefilter_kwargs": {}})
    assert runner.config_id(at) != runner.config_id({**at, "prefilter_kwargs": {"rectify": "relu"}})
    with pytest.raises(ValueError, match="without a prefilter"):
        runner.config_id({**base, "prefilter_kwargs": {"rectify": "relu"}})
    with pytest.raises(ValueError, match="model_kwargs must not set 'prefilter_kwargs'"):
        runner.config_id({**at, "model_kwargs": {"prefilter_kwargs": {}}})
    with pytest.raises(ValueError, match="prefilter_kwargs must not set 'dt_ms'"):
        runner.config_id({**at, "prefilter_kwargs": {"dt_ms": 10.0}})
    with pytest.raises(ValueError, match="unknown configuration key"):
        runner.config_id({**base, "modle": "x"})
    with pytest.raises(ValueError, match="mode"):
        runner.config_id({**base, "mode": "both"})


def test_summary_table_known_answer():
    rows = []
    # neuron a: seeds 0.2, 0.4 -> 0.3; neuron b: 0.5, 0.7 -> 0.6; mean 0.45, SEM 0.15
    for nid, vals in (("a", (0.2, 0.4)), ("b", (0.5, 0.7))):
        for seed, v in enumerate(vals):
            rows.append({"dataset": "ns1", "model": "ConvNet2D", "prefilter": "none", "note": "",
                         "mode": "single", "seed": seed, "neuron": nid, "cc_raw": v, "cc_norm": 2 * v,
                         "cc_max": 0.8, "n_params": 1234, "epochs": 3, "wall_s": 1.0, "config_id": "c1"})
    table = summary_table(pd.DataFrame(rows))
    row = table.iloc[0]
    assert row["Model"] == "ConvNet2D" and row["Parameters"] == 1234 and row["Neurons"] == 2
    assert row["CCraw (%)"] == pytest.approx(45.0)
    assert row["CCraw SEM"] == pytest.approx(15.0)
    assert row["CCnorm (%)"] == pytest.approx(90.0)
    md = markdown_table(table).splitlines()
    assert md[0].startswith("| Dataset | Model | Note | Parameters | CCraw (%) | CCnorm (%)")
    assert "45.0 ± 15.0" in md[2] and "1,234" in md[2]


@pytest.mark.parametrize("prefilter", ["adaptrans", "willmore"])
def test_runner_prefilter_starts_from_dataset_bands(dataset, prefilter):
    # the synthetic bands are log-spaced 500 Hz - 22.6 kHz, not the default mel 500 Hz - 20 kHz
    assert not np.allclose(dataset.cf_hz, center_frequencies(n_bands=F))
    cfg = {"dataset": "synthetic", "model": "LinearNonlinear", "model_kwargs": {"n_lags": 6},
           "prefilter": prefilter, "prefilter_kwargs": {"kernel_size": 20}}
    model = runner.build_config_model(runner.normalise_config(cfg), dataset, 1)
    np.testing.assert_allclose(model.prefilter.cf_hz, dataset.cf_hz)
    assert model.prefilter.dt_ms == dataset.dt_ms and model.prefilter.kernel_size == 20
    if prefilter == "adaptrans":
        np.testing.assert_allclose(model.prefilter.tau_on_ms.detach().numpy(), willmore_tau_ms(dataset.cf_hz),
                                   rtol=1e-4)
        np.testing.assert_allclose(model.prefilter.tau_off_ms.detach().numpy(), willmore_tau_ms(dataset.cf_hz),
                                   rtol=1e-4)
    # the centres are stored in the config as plain floats: it survives JSON and rebuilds the model
    rebuilt = build_model("LinearNonlinear", **json.loads(json.dumps(model.config)))
    np.testing.assert_array_equal(rebuilt.prefilter.cf_hz, model.prefilter.cf_hz)
    # explicit band options win over the dataset's centres; the caller's dict is left alone
    own = {"min_freq": 500.0, "max_freq": 20000.0}
    kw = runner.prefilter_kwargs_for({**cfg, "prefilter_kwargs": own}, dataset)
    assert kw == own and "cf_hz" not in own
    assert runner.prefilter_kwargs_for({**cfg, "prefilter": None, "prefilter_kwargs": {}}, dataset) is None


def test_runner_relu_adaptrans_custom_bands_round_trip(tmp_path, data_root, dataset):
    # rectify="relu", the dataset's own cf_hz and a prefilter learning rate through the whole
    # runner: fit, evaluate, checkpoint, reload; the reloaded units reproduce the CSV scores
    config = {"dataset": "synthetic", "dataset_options": SYN, "model": "LinearNonlinear",
              "model_kwargs": {"n_lags": 6}, "prefilter": "adaptrans",
              "prefilter_kwargs": {"rectify": "relu", "kernel_size": 16},
              "fit_kwargs": {"max_epochs": 3, "batch_size": 4, "lr": 0.005, "prefilter_lr": 0.015}}
    df = runner.run_configs([config], seeds=[1], out_csv=tmp_path / "r.csv", root=data_root, device="cpu",
                            checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert len(df) == SYN["n_neurons"] and df["cc_raw"].notna().all()
    _, _, test = dataset.split(1)
    for u, row in df.iterrows():
        path = tmp_path / "ckpt" / f"{row['config_id']}_seed1_{row['neuron']}.pt"
        model, info = load_checkpoint(path)
        pf = model.prefilter
        assert isinstance(pf, AdapTrans) and pf.rectify == "relu" and pf.kernel_size == 16
        np.testing.assert_allclose(pf.cf_hz, dataset.cf_hz)
        assert isinstance(model.config["prefilter_kwargs"]["cf_hz"], list)
        assert json.loads(json.dumps(model.config)) == model.config
        assert info["config"]["prefilter_kwargs"] == {"rectify": "relu", "kernel_size": 16}
        # ReLU on both channels: the prefilter output is never negative (the signed one is)
        x = test[0][0][None]
        with torch.no_grad():
            assert float(pf(x).min()) >= 0.0
            assert float(AdapTrans(F, cf_hz=dataset.cf_hz, kernel_size=16)(x).min()) < 0.0
        scores = evaluate(model, test.select([row["neuron"]]))
        assert scores.loc[0, "cc_raw"] == pytest.approx(row["cc_raw"], abs=1e-6)
        assert scores.loc[0, "cc_norm"] == pytest.approx(row["cc_norm"], abs=1e-6, nan_ok=True)


def test_batched_none_stacks_only_where_it_pays_off(splits):
    """Auto mode: a stack for units sharing their input (no prefilter, fused linear AdapTrans),
    a loop on CPU for units that each filter the stimulus (rectified AdapTrans)."""
    from deepstrf_utils.training import stacking_pays_off

    train, val, _ = splits
    cpu = torch.device("cpu")
    assert stacking_pays_off(_linear(), cpu)
    assert stacking_pays_off(_linear(prefilter="adaptrans"), torch.device("cuda"))
    kw = dict(neurons=[0, 1], max_epochs=1, device="cpu", progress=False, optimizer="adamw")
    _, res = fit_single_units(lambda s: _linear(seed=s), train, val, **kw)
    assert all(r.batched for r in res)
    relu = lambda s: _linear(prefilter="adaptrans", seed=s)  # noqa: E731  (models rectify by default)
    assert not stacking_pays_off(relu(0), cpu)
    _, res = fit_single_units(relu, train, val, **kw)
    assert not any(r.batched for r in res)


def test_stacked_restore_is_strict():
    """The best weights of a stacked unit are loaded strictly: a key of the stack that the
    model lacks, or a model entry that the stack lacks, raises naming it (strict=False
    skipped both silently)."""
    from deepstrf_utils.training.stacked import _load_unit_state

    model = _linear(prefilter="adaptrans")
    state = {k: v.clone() + 1.0 for k, v in model.state_dict().items()}
    # non-persistent buffers (AdapTrans' fixed kernel) are part of a stacked unit's state
    state.update({n: b.clone() for n, b in model.named_buffers() if n not in state})
    target = {k: v.clone() for k, v in state.items()}
    _load_unit_state(model, state)
    for k, v in model.state_dict().items():
        assert torch.equal(v, target[k])
    renamed = dict(state)
    key = next(iter(model.state_dict()))
    renamed["renamed." + key] = renamed.pop(key)
    with pytest.raises(ValueError, match=rf"missing keys \['{key}'\].*unexpected keys \['renamed.{key}'\]"):
        _load_unit_state(model, renamed)


def test_training_batches_and_public_collate_share_one_padding():
    """_Packed (training), the prediction batches and collate_responses pad the same way:
    the packed target is the trial average of the collated responses, NaN in the padding."""
    from deepstrf_utils.datasets import collate_responses
    from deepstrf_utils.datasets.collate import pad_to_longest
    from deepstrf_utils.metrics import trial_average
    from deepstrf_utils.training.prediction import _stimulus_batches

    rng = np.random.default_rng(0)
    stims = [rng.random((3, t)) for t in (5, 7, 4)]
    resps = [rng.random((2, r, t)) for r, t in zip((2, 3, 1), (5, 7, 4))]
    resps[1][0, :, 6] = np.nan  # a bin without any valid trial for neuron 0
    ds = ResponseDataset(stims, resps, dt_ms=5.0, cf_hz=[500.0, 1000.0, 2000.0], name="toy")
    stim, resp, mask = collate_responses([ds[i] for i in range(len(ds))])
    packed = packing._Packed.from_dataset(ds, torch.device("cpu"))
    assert torch.equal(packed.stim, stim)
    assert torch.equal(packed.lengths, mask.sum(1))
    assert torch.allclose(packed.target, trial_average(resp, axis=2), equal_nan=True)
    assert torch.isnan(packed.target[1, 0, 6]) and torch.isnan(packed.target[0, :, 5:]).all()
    x, idx, lens = _stimulus_batches(ds, batch_size=8)[0]
    assert idx == [2, 0, 1] and lens == [4, 5, 7]
    assert torch.equal(x, stim[idx])
    padded, lengths = pad_to_longest([torch.ones(1, 2), torch.ones(2, 3)], fill=-1.0)
    assert padded.tolist() == [[[1, 1, -1], [-1, -1, -1]], [[1, 1, 1], [1, 1, 1]]]
    assert lengths.tolist() == [2, 3]
