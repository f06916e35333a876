"""Defects that bent fits (issue 24, items 4-5): a model of another bin width or other bands,
Ctrl-C leaving the last weights, weight decay / batch size ignored on the default path, the
chunked full-batch objective of non-mean losses, MultiSessionModel's config, the 2D-CNN's
conv biases before BatchNorm. Each test failed on the code before its fix."""
import copy
import inspect

import numpy as np
import pytest
import torch

from deepstrf_utils import metrics
from deepstrf_utils.datasets import ResponseDataset
from deepstrf_utils.models import MultiSessionModel, build_model
from deepstrf_utils.training import (evaluate, fit, fit_sessions, fit_single_units, load_checkpoint, predict,
                                     save_checkpoint)

F = 6
CF = [float(v) for v in np.geomspace(500.0, 8000.0, F)]


def _data(n_stim=6, n_bins=30, n_neurons=2, dt_ms=5.0, seed=0, lengths=None, name="tiny"):
    """Random stimuli (F bands) and Poisson responses driven by the first bands, 4 repeats."""
    rng = np.random.default_rng(seed)
    lengths = [n_bins] * n_stim if lengths is None else lengths
    stims = [rng.random((F, t)).astype(np.float32) for t in lengths]
    resps = [rng.poisson(1.0 + 3.0 * s[:n_neurons, None, :] * np.arange(1, n_neurons + 1)[:, None, None],
                         (n_neurons, 4, s.shape[1])).astype(np.float32) for s in stims]
    return ResponseDataset(stims, resps, dt_ms=dt_ms, cf_hz=CF, neuron_ids=[f"n{i}" for i in range(n_neurons)],
                           name=name)


def _model(name="NetworkReceptiveField", seed=0, n_neurons=2, cf_hz=CF, dt_ms=5.0, **kw):
    torch.manual_seed(seed)
    if name == "ConvNet2D":
        kw = dict(kernel_size=(3, 5), channels=3, hidden=6, n_blocks=2, **kw)
    else:
        kw = dict(n_lags=5, **({"n_hidden": 3} if name in ("NetworkReceptiveField", "DNet") else {}), **kw)
    pre = {"prefilter": "adaptrans", "prefilter_kwargs": {"kernel_size": 12, "cf_hz": cf_hz}} if cf_hz else {}
    return build_model(name, n_bands=F, n_neurons=n_neurons, dt_ms=dt_ms, **pre, **kw)


QUIET = dict(device="cpu", progress=False)


# ------------------------------------------------------------------ stimulus format
def test_a_model_of_another_bin_width_or_other_bands_is_refused_everywhere():
    """Before: fit / predict / evaluate / fit_single_units / fit_sessions took a model built for
    10-ms bins or for the default mel bands on 5-ms data of other bands without a word (the
    AdapTrans time constants then mean something else). Now a ValueError names both values,
    and ``check_stimulus_format=False`` lets a deliberate mismatch through."""
    train, val = _data(4), _data(2, seed=1)
    def mel(n_neurons=2):  # default bands: mel 500 Hz - 20 kHz
        torch.manual_seed(0)
        return build_model("LinearNonlinear", n_bands=F, n_neurons=n_neurons, n_lags=5, prefilter="adaptrans",
                           prefilter_kwargs={"kernel_size": 12})

    def slow(n_neurons=2):
        return _model("LinearNonlinear", dt_ms=10.0, n_neurons=n_neurons)

    for build, match in ((mel, r"cf_hz=\[ *500\..*20000\.\] Hz but the training set 'tiny' has cf_hz=\[ *500\..*8000\.\]"),
                         (slow, r"dt_ms=10 ms but the training set 'tiny' has dt_ms=5 ms")):
        with pytest.raises(ValueError, match=match):
            fit(build(), train, val, max_epochs=1, **QUIET)
        with pytest.raises(ValueError, match=match):
            fit_single_units(lambda s: build(1), train, val, max_epochs=1, **QUIET)
        with pytest.raises(ValueError, match="check_stimulus_format=False"):
            predict(build(), val)
        with pytest.raises(ValueError, match="check_stimulus_format=False"):
            evaluate(build(), val)
        with pytest.raises(ValueError, match="session 'a'"):
            fit_sessions(build(), {"a": train}, {"a": val}, max_epochs=1, **QUIET)
    # the validation set is checked too, and a deliberate mismatch is allowed
    with pytest.raises(ValueError, match="validation set"):
        fit(_model("LinearNonlinear"), train, _data(2, dt_ms=10.0), max_epochs=1, **QUIET)
    model = mel()
    r = fit(model, train, val, max_epochs=1, check_stimulus_format=False, **QUIET)
    assert r.epochs == 1
    assert len(predict(model, val, check_stimulus_format=False)) == 2
    # the right model passes
    fit(_model("LinearNonlinear"), train, val, max_epochs=1, **QUIET)


# ------------------------------------------------------------------ Ctrl-C
def _interrupt_hook(counter: list, at: int | None):
    """Forward pre-hook counting training-mode forward passes in ``counter[0]``; raises
    KeyboardInterrupt (Ctrl-C) at pass ``at``. A closure, so that copies of the model share it."""
    def hook(module, args):
        if module.training:
            counter[0] += 1
            if at is not None and counter[0] == at:
                raise KeyboardInterrupt
    return hook


def _state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("path", [dict(optimizer="adamw", lr=0.05, batch_size=2), dict(optimizer="lbfgs", init=None)])
def test_ctrl_c_restores_the_best_weights_and_keeps_the_result(path, caplog):
    """Before: Ctrl-C during fit left the model at the weights of the interrupted step (mid
    epoch, mid line search) and the FitResult was lost. Now the weights are those of the best
    epoch so far, exactly those of a fit stopped after the completed epochs, and the
    re-raised KeyboardInterrupt carries the FitResult (stop_reason "interrupted")."""
    train, val = _data(4), _data(2, seed=1)
    kw = dict(patience=None, seed=3, **QUIET, **path)
    epochs = 3
    ref, count = _model(), [0]
    ref.register_forward_pre_hook(_interrupt_hook(count, None))
    r_ref = fit(ref, train, val, max_epochs=epochs, **kw)
    model = _model()
    model.register_forward_pre_hook(_interrupt_hook([0], count[0] + 2))  # inside the next epoch
    with pytest.raises(KeyboardInterrupt) as info:
        fit(model, train, val, max_epochs=50, **kw)
    res = info.value.fit_result
    assert res.stop_reason == "interrupted" and res.epochs == epochs and res.best_epoch == r_ref.best_epoch
    np.testing.assert_allclose(res.val_loss, r_ref.val_loss, rtol=1e-6)
    for k, v in _state(ref).items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert not model.training
    assert "interrupted" in caplog.text


def test_ctrl_c_in_single_units_and_sessions_keeps_the_units_so_far():
    """fit_single_units (loop and stack) and fit_sessions: the units / model fitted so far,
    with their best weights, on the re-raised KeyboardInterrupt (before: nothing kept)."""
    train, val = _data(4), _data(2, seed=1)
    kw = dict(optimizer="adamw", lr=0.05, batch_size=2, patience=None, **QUIET)

    def unit(s, hook=None):
        m = _model(seed=s, n_neurons=1)
        if hook is not None:
            m.register_forward_pre_hook(hook)
        return m

    # a loop of units: interrupted in the second unit's third epoch
    count = [0]
    ref_models, ref_results = fit_single_units(lambda s: unit(s, _interrupt_hook(count, None)), train, val,
                                               seeds=[1, 2], max_epochs=2, batched=False, **kw)
    per_unit = count[0] // 2
    with pytest.raises(KeyboardInterrupt) as info:
        fit_single_units(lambda s: unit(s, _interrupt_hook([0], None if s == 1 else per_unit + 1)), train, val,
                         seeds=[1, 2], max_epochs=20, batched=False, **kw)
    models, results = info.value.fit_result
    assert len(models) == len(results) == 2
    assert results[0].stop_reason == "max_epochs" and results[0].epochs == 20
    assert results[1].stop_reason == "interrupted" and results[1].epochs == 2
    for k, v in _state(ref_models[1]).items():
        torch.testing.assert_close(models[1].state_dict()[k], v, rtol=0, atol=0, msg=k)
    # a stack of units: every unit gets its best weights so far
    count = [0]
    ref_models, _ = fit_single_units(lambda s: unit(s, _interrupt_hook(count, None)), train, val, seeds=[1, 2],
                                     max_epochs=2, batched=True, **kw)
    with pytest.raises(KeyboardInterrupt) as info:
        fit_single_units(lambda s: unit(s, _interrupt_hook([0], count[0] + 1)), train, val, seeds=[1, 2],
                         max_epochs=20, batched=True, **kw)
    models, results = info.value.fit_result
    assert [r.stop_reason for r in results] == ["interrupted"] * 2 and [r.epochs for r in results] == [2, 2]
    for m, ref in zip(models, ref_models):
        for k, v in _state(ref).items():
            torch.testing.assert_close(m.state_dict()[k], v, rtol=1e-6, atol=1e-7, msg=k)
    # several sessions
    fk = dict(lr=0.05, batch_size=2, patience=None, **QUIET)
    ref, count = _model(), [0]
    ref.register_forward_pre_hook(_interrupt_hook(count, None))
    r_ref = fit_sessions(ref, {"a": train}, {"a": val}, max_epochs=2, **fk)
    model = _model()
    model.register_forward_pre_hook(_interrupt_hook([0], count[0] + 1))
    with pytest.raises(KeyboardInterrupt) as info:
        fit_sessions(model, {"a": train}, {"a": val}, max_epochs=20, **fk)
    res = info.value.fit_result
    assert res.stop_reason == "interrupted" and res.epochs == 2 and res.best_epoch == r_ref.best_epoch
    for k, v in _state(ref).items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)


# ------------------------------------------------------------------ weight decay and batch size
def test_weight_decay_and_batch_size_are_never_silently_ignored():
    """Before: fit(model, train, val, weight_decay=10, batch_size=1) ran unregularised
    full-batch L-BFGS. Now an explicit weight_decay / batch_size selects AdamW (where they
    apply) unless optimizer="lbfgs" is explicit: there weight_decay is an L2 penalty (the fit
    is its stationary point) and batch_size a ValueError. None defaults tell unset from given."""
    for fn in (fit, fit_single_units):
        params = inspect.signature(fn).parameters
        assert params["weight_decay"].default is None and params["batch_size"].default is None
    train, val = _data(4), _data(2, seed=1)
    kw = dict(max_epochs=2, seed=1, **QUIET)
    r = fit(_model(), train, val, weight_decay=10.0, batch_size=1, **kw)
    assert r.optimizer == "adamw"
    same = _model()
    fit(same, train, val, optimizer="adamw", weight_decay=10.0, batch_size=1, **kw)
    other = _model()
    r = fit(other, train, val, optimizer="adamw", weight_decay=0.0, batch_size=1, **kw)
    assert fit(_model(), train, val, batch_size=2, **kw).optimizer == "adamw"
    assert fit(_model("Linear"), train, val, **kw).optimizer == "lbfgs"
    # explicit L-BFGS: the L2 penalty wd / 2 ||w||^2 on the weights (not on AdapTrans' time constants)
    wd = 0.05
    lin = build_model("Linear", n_bands=F, n_neurons=2, n_lags=5)
    free = build_model("Linear", n_bands=F, n_neurons=2, n_lags=5)
    lkw = dict(optimizer="lbfgs", init=None, patience=None, max_epochs=40, init_output=False, **QUIET)
    fit(lin, train, None, weight_decay=wd, **lkw)
    fit(free, train, None, **lkw)
    assert lin.weight.norm() < 0.8 * free.weight.norm()
    x = torch.stack([torch.as_tensor(s) for s in train.stimuli])[:, None]
    target = torch.as_tensor(np.stack([r.mean(1) for r in train.responses]))
    data_loss = metrics.mse_loss(lin(x), target, reduction="none").mean()
    grads = torch.autograd.grad(data_loss, [lin.weight, lin.bias])
    for g, p in zip(grads, (lin.weight, lin.bias)):  # stationary: grad(data) + wd * w = 0
        assert (g + wd * p).abs().max() < 1e-2 * max(float(g.abs().max()), 1e-3)
    with pytest.raises(ValueError, match="batch_size is a setting of the AdamW path"):
        fit(_model(), train, val, optimizer="lbfgs", batch_size=4, **kw)


# ------------------------------------------------------------------ chunked full-batch objective
def test_the_full_batch_objective_of_many_stimuli_is_the_true_loss():
    """Before: with more than LBFGS_CHUNK (64) training stimuli, L-BFGS minimised the mean of
    per-chunk losses weighted by bins, not the loss: for "nmse" and "correlation" its starting
    loss differed from the true one. Now the reported (and optimised) value is the loss on
    every training stimulus at once, for every named loss."""
    train = _data(70, n_bins=12, seed=2)
    x = torch.stack([torch.as_tensor(s) for s in train.stimuli])[:, None]
    target = torch.as_tensor(np.stack([r.mean(1) for r in train.responses]))
    for loss in ("nmse", "correlation", "mse", "poisson"):
        model = _model("DNet", cf_hz=None)
        with torch.no_grad():
            true = float(metrics.get_loss(loss)(model.train()(x), target, reduction="none").mean())
        r = fit(model, train, None, loss=loss, optimizer="lbfgs", init=None, init_output=False, max_epochs=1,
                **QUIET)
        assert r.init_train_loss == pytest.approx(true, rel=1e-5), loss


@pytest.mark.parametrize("loss", ["mse", "nmse", "poisson", "correlation"])
def test_chunked_objective_and_gradient_equal_the_unchunked_ones(loss):
    """Value and gradient of the objective in chunks of 3 stimuli (of different lengths, with
    missing bins) = in one chunk = the loss function on the whole batch."""
    from deepstrf_utils.training.fitting import _get_loss
    from deepstrf_utils.training.objective import full_batch_objective
    from deepstrf_utils.training.packing import _Packed

    ds = _data(7, lengths=[30, 22, 41, 30, 17, 35, 28], seed=4)
    ds.responses[1][0, :, 5:9] = np.nan  # missing bins of one neuron
    tr = _Packed.from_dataset(ds, torch.device("cpu"))
    model = _model("DNet", cf_hz=CF).train()
    with torch.no_grad():
        model.output_nonlinearity.init_output(torch.tensor([2.0, 3.0]), torch.tensor([1.0, 1.5]))
    params = [p for p in model.parameters() if p.requires_grad]
    out = {}
    for chunk in (3, 64):
        last = {}
        value = float(full_batch_objective(model, tr, loss, _get_loss(loss), params, last, chunk=chunk)())
        out[chunk] = (value, [p.grad.clone() for p in params], last["per"].clone())
    direct = metrics.get_loss(loss)(model(tr.stim), tr.target, reduction="none")
    assert out[64][0] == pytest.approx(float(direct.detach().mean()), rel=1e-6)
    assert out[3][0] == pytest.approx(out[64][0], rel=1e-6)
    torch.testing.assert_close(out[3][2], out[64][2], rtol=1e-5, atol=1e-7)
    for g3, g64 in zip(out[3][1], out[64][1]):
        torch.testing.assert_close(g3, g64, rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------ MultiSessionModel config
def test_multi_session_config_is_the_effective_core_config_and_a_module_core_round_trips(tmp_path):
    """Before: config kept the caller's raw core config (band centres, AdapTrans kernel and
    rectification not pinned) and a core given as a module stored {} (no rebuild). Now it
    is the built core's own config, and a module core round-trips through a checkpoint."""
    raw = MultiSessionModel("NetworkReceptiveField", dict(n_bands=F, n_hidden=3, prefilter="adaptrans"), {"a": 2})
    pk = raw.config["core_config"]["prefilter_kwargs"]
    assert {"cf_hz", "kernel_size", "rectify", "tau_ms"} <= set(pk) and pk["rectify"] == "relu"
    assert raw.config["core_config"]["n_lags"] == raw.core.n_lags and "n_neurons" not in raw.config["core_config"]
    core = _model("ConvNet2D", n_neurons=5)
    multi = MultiSessionModel(core, sessions={"a": 2, "b": 3})
    assert multi.config["core_config"]["prefilter_kwargs"]["cf_hz"] == CF
    rebuilt = build_model("MultiSessionModel", **multi.config)
    assert rebuilt.config == multi.config
    save_checkpoint(tmp_path / "m.pt", multi)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    x = torch.rand(2, 1, F, 25)
    multi.eval()
    for key in ("a", "b"):
        torch.testing.assert_close(loaded(x, session=key), multi(x, session=key))
    with pytest.raises(ValueError, match="core_config only with a core given by name"):
        MultiSessionModel(core, {"n_bands": F}, {"a": 1})

    class Identity(torch.nn.Module):
        out_channels = 1

        def forward(self, x):
            return x

    custom = build_model("NetworkReceptiveField", n_bands=F, n_hidden=3, n_lags=5, prefilter=Identity())
    save_checkpoint(tmp_path / "c.pt", MultiSessionModel(custom, sessions={"a": 1}))
    with pytest.raises(ValueError, match="custom prefilter module"):
        load_checkpoint(tmp_path / "c.pt")


# ------------------------------------------------------------------ ConvNet2D biases before BatchNorm
def test_convnet2d_conv_biases_stay_zero_and_old_checkpoints_still_compute_the_same():
    """Before: AdamW moved the conv biases before BatchNorm (true gradient 0) on float noise,
    so stacked and looped fits differed by 5-16 % of the prediction SD. Now they stay exactly
    0 (the parameter count is unchanged) and a checkpoint with non-zero biases computes what
    an nn.Conv2d with those biases computes."""
    from deepstrf_utils.models import count_parameters

    train, val = _data(4), _data(2, seed=1)
    model = _model("ConvNet2D")
    n_params = count_parameters(model)
    fit(model, train, val, optimizer="adamw", lr=0.05, batch_size=2, max_epochs=3, patience=None, **QUIET)
    assert all(not conv.bias.detach().any() for conv in model.convs)
    assert count_parameters(model) == n_params
    old = model.state_dict()
    for i in range(len(model.convs)):
        old[f"convs.{i}.bias"] = torch.linspace(-0.5, 0.5, model.channels)
    model.load_state_dict(old)
    model.eval()
    x = torch.rand(3, 1, F, 25)
    z = model.prefilter(x)
    for conv, norm in zip(model.convs, model.norms):
        z = torch.nn.functional.leaky_relu(
            norm(torch.nn.functional.conv2d(torch.nn.functional.pad(z, (4, 0)), conv.weight, old[
                f"convs.{list(model.convs).index(conv)}.bias"])), model.negative_slope)
    torch.testing.assert_close(model.features(x), z, rtol=1e-5, atol=1e-6)


def test_the_runner_lets_a_deliberate_band_choice_through():
    """A runner configuration that chooses its own band centres (min_freq / max_freq / scale /
    cf_hz in prefilter_kwargs) asks for the mismatch: it fits and scores without the check."""
    from deepstrf_utils.runs.runner import run_config

    cfg = {"dataset": "tiny", "model": "LinearNonlinear", "model_kwargs": {"n_lags": 5}, "prefilter": "adaptrans",
           "prefilter_kwargs": {"scale": "mel", "kernel_size": 12}, "mode": "population",
           "fit_kwargs": {"max_epochs": 1}}
    rows = run_config(cfg, _data(6), seed=0, device="cpu", progress=False)
    assert len(rows) == 2 and rows["cc_raw"].notna().all()
