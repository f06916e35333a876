"""Tests of the fast fitting path (issue 11): ridge STRF start, full-batch L-BFGS, stop
reasons, the rules that pick the optimiser, and the channels-last 2D-CNN."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F_

from deepstrf_utils.datasets import ResponseDataset
from deepstrf_utils.datasets.synthetic import MAX_FREQ_HZ, MIN_FREQ_HZ, generate_synthetic
from deepstrf_utils.models import build_model, fit_ridge_strf
from deepstrf_utils.spectrogram import band_centre_frequencies
from deepstrf_utils.training import ADAMW_FIT_KWARGS, fit, fit_single_units, predict
from deepstrf_utils.training.options import RIDGE_START_MIN_EPOCHS
from deepstrf_utils.training.packing import _Packed
from deepstrf_utils.training.warmstart import ridge_init, ridge_strf

F = 12
K = 6
#: the synthetic datasets' band centres for F bands (the models must be built on the data's bands)
SYN_CF = [float(v) for v in band_centre_frequencies(F, MIN_FREQ_HZ, MAX_FREQ_HZ)]


@pytest.fixture(scope="module")
def syn():
    """Two ground-truth neurons, 6 clips of 1 s, 12 bands: (train, val, test)."""
    ds = generate_synthetic(n_neurons=2, n_clips=6, clip_s=1.0, n_repeats=6, n_bands=F, seed=3)
    return ds.subset([0, 1, 2, 3]), ds.subset([4]), ds.subset([5])


def _model(name="Linear", prefilter="adaptrans", seed=0, n_neurons=2, **kw):
    torch.manual_seed(seed)
    if name in ("Linear", "LinearNonlinear", "NetworkReceptiveField", "DNet"):
        kw.setdefault("n_lags", K)
    if prefilter == "adaptrans":
        kw.setdefault("prefilter_kwargs", {"kernel_size": 16, "cf_hz": SYN_CF})
    return build_model(name, n_bands=F, n_neurons=n_neurons, dt_ms=5.0, prefilter=prefilter, **kw)


def _packed(ds):
    p = _Packed.from_dataset(ds, torch.device("cpu"))
    return p.stim, p.target, p.lengths


def _train_mse(model, ds):
    """Mean-squared error of the model on the trial-averaged responses, per neuron, all bins pooled."""
    preds = predict(model, ds, device="cpu")
    se, n = 0.0, 0
    for p, r in zip(preds, ds.responses):
        y = np.nanmean(np.asarray(r, dtype=np.float64), axis=1)
        se = se + ((np.asarray(p, dtype=np.float64) - y) ** 2).sum(1)
        n += y.shape[1]
    return se / n


def test_ridge_init_is_the_closed_form_solution(syn):
    train, val, _ = syn
    model = _model()
    sol = ridge_init(model, _packed(train), _packed(val))
    # the same penalty through fit_ridge_strf (eigendecomposition, on the same fixed channels)
    for n in range(2):
        ref, _ = fit_ridge_strf(train.select([n]), val.select([n]), n_lags=K, prefilter=model.prefilter,
                                alphas=[sol["alpha"][n]])
        torch.testing.assert_close(model.weight[n:n + 1].detach(), ref.weight.detach(), atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(model.bias[n:n + 1].detach(), ref.bias.detach(), atol=1e-6, rtol=1e-4)
    # the model's training loss at the start IS the ridge solution's training loss
    np.testing.assert_allclose(_train_mse(model, train), sol["train_mse"], rtol=1e-4)
    # and the best alpha of the grid has the lowest validation error of the grid
    assert np.all(np.isfinite(sol["val_mse"])) and np.all(sol["alpha"] > 0)


def test_fit_starts_from_the_ridge_solution(syn):
    """fit's default on a Linear model: the starting point's losses are the ridge losses,
    and the returned model is never worse on the validation set than that start."""
    train, val, _ = syn
    sol = ridge_strf(_model().prefilter, K, _packed(train), _packed(val))
    model = _model()
    res = fit(model, train, val, device="cpu", progress=False)
    assert (res.optimizer, res.init) == ("lbfgs", "ridge")
    np.testing.assert_allclose(res.init_train_loss, sol["train_mse"].mean(), rtol=1e-4)
    np.testing.assert_allclose(res.init_val_loss, sol["val_mse"].mean(), rtol=1e-4)
    assert res.best_val_loss <= res.init_val_loss
    assert res.stop_reason in ("patience", "converged", "max_epochs") and res.wall_s > 0
    assert "lbfgs + ridge init" in res.summary()


def test_ln_ridge_start_predicts_like_the_ridge_model(syn):
    train, val, test = syn
    lin, ln = _model("Linear"), _model("LinearNonlinear")
    ridge_init(lin, _packed(train), _packed(val))
    ridge_init(ln, _packed(train), _packed(val))
    a = np.concatenate([p for p in predict(lin, test)], 1)
    b = np.concatenate([p for p in predict(ln, test)], 1)
    for n in range(2):
        assert np.corrcoef(a[n], b[n])[0, 1] > 0.98  # the same prediction up to the sigmoid's curvature


def test_lbfgs_recovers_a_planted_linear_neuron():
    """Noise-free responses of a known STRF (no prefilter): L-BFGS from a random start finds it."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(1, 1, F, K)).astype(np.float32)
    stims = [rng.random((F, t)).astype(np.float32) for t in (80, 95, 70, 90, 85, 60)]
    truth = build_model("Linear", n_bands=F, n_neurons=1, n_lags=K)
    truth.load_strf(w, bias=[0.3])
    rates = predict(truth, ResponseDataset(stims, [np.zeros((1, 1, s.shape[1]), np.float32) for s in stims],
                                           dt_ms=5.0, cf_hz=np.geomspace(500, 8000, F)))
    ds = ResponseDataset(stims, [r[:, None, :] for r in rates], dt_ms=5.0, cf_hz=np.geomspace(500, 8000, F))
    train, val = ds.subset([0, 1, 2, 3]), ds.subset([4, 5])
    model = _model(prefilter=None, n_neurons=1, seed=1)
    res = fit(model, train, val, optimizer="lbfgs", init=None, max_epochs=60, device="cpu", progress=False)
    assert res.optimizer == "lbfgs" and res.init is None
    np.testing.assert_allclose(model.weight.detach().numpy(), w, atol=1e-3)
    assert abs(float(model.bias.detach()) - 0.3) < 1e-3
    assert res.best_val_loss < 1e-6 * np.var(np.concatenate(rates, 1))


def test_stop_reasons(syn):
    train, val, _ = syn
    kw = dict(device="cpu", progress=False)
    assert fit(_model(), train, None, max_epochs=2, **kw).stop_reason == "no validation set"
    assert fit(_model(), train, val, max_epochs=1, patience=None, **kw).stop_reason == "max_epochs"
    r = fit(_model(), train, val, max_epochs=200, patience=1, rel_tol=0.5, **kw)
    # patience ends an L-BFGS fit from a ridge start after RIDGE_START_MIN_EPOCHS epochs at the earliest
    assert (r.stop_reason, r.stopped_early, r.epochs) == ("patience", True, RIDGE_START_MIN_EPOCHS)
    r = fit(_model(), train, val, lr=1e-3, max_epochs=30, patience=1, rel_tol=0.5, **kw)
    assert (r.optimizer, r.stop_reason, r.epochs, r.best_epoch) == ("adamw", "patience", 2, 0)
    assert fit(_model(), train, val, lr=1e-3, max_epochs=2, patience=None, **kw).stop_reason == "max_epochs"


def test_explicit_adamw_settings_keep_the_published_protocol(syn):
    train, val, _ = syn
    kw = dict(max_epochs=3, device="cpu", progress=False, seed=4)
    a = fit(_model(seed=2), train, val, lr=1e-3, **kw)
    b = fit(_model(seed=2), train, val, **{**ADAMW_FIT_KWARGS, **kw})
    assert (a.optimizer, a.init, b.optimizer, b.init) == ("adamw", None, "adamw", None)
    assert a.train_loss == b.train_loss and a.val_loss == b.val_loss
    assert fit(_model(), train, val, prefilter_lr=1e-2, **kw).optimizer == "adamw"
    assert fit(_model(), train, val, optimizer="adamw", **kw).lr == [1e-3] * 3
    # the ridge start is explicit-only with AdamW, automatic with L-BFGS for L / LN only
    assert fit(_model(), train, val, lr=1e-3, init="ridge", **kw).init == "ridge"
    r = fit(_model("NetworkReceptiveField"), train, val, optimizer="lbfgs", **kw)
    # a random start is not a candidate: the weights of an epoch come back (never the random ones)
    assert r.init is None and r.optimizer == "lbfgs" and r.best_epoch >= 0


def test_recurrent_models_get_adamw_by_default(syn):
    from deepstrf_utils.training.fitting import RECURRENT_AUTO

    train, val, _ = syn
    r = fit(_model("StateNet", prefilter=None), train, val, max_epochs=2, device="cpu", progress=False)
    assert (r.optimizer, r.init, r.lr) == ("adamw", None, [RECURRENT_AUTO["lr"]] * 2)
    r = fit(_model("StateNet", prefilter=None), train, val, optimizer="adamw", max_epochs=1, device="cpu",
            progress=False)
    assert r.lr == [ADAMW_FIT_KWARGS["lr"]]


@pytest.mark.parametrize("kwargs, match", [
    (dict(optimizer="sgd"), "optimizer"),
    (dict(optimizer="lbfgs", prefilter_lr=1e-2), "AdamW settings"),
    (dict(init="zeros"), "init"),
    (dict(rel_tol=1.5), "rel_tol"),
])
def test_bad_fit_options(syn, kwargs, match):
    train, val, _ = syn
    with pytest.raises(ValueError, match=match):
        fit(_model(), train, val, max_epochs=1, device="cpu", progress=False, **kwargs)
    with pytest.raises(ValueError, match="Linear or LinearNonlinear"):
        fit(_model("NetworkReceptiveField"), train, val, init="ridge", device="cpu", progress=False)


def test_single_units_lbfgs_equal_separate_fits(syn):
    train, val, _ = syn
    kw = dict(max_epochs=4, device="cpu", progress=False)
    models, results = fit_single_units(lambda s: _model(seed=s, n_neurons=1), train, val, seeds=[5, 6], **kw)
    for u, (nid, s) in enumerate(zip(train.neuron_ids, [5, 6])):
        ref = _model(seed=s, n_neurons=1)
        r = fit(ref, train.select([nid]), val.select([nid]), **kw)
        assert (results[u].optimizer, results[u].init, results[u].stop_reason) == (r.optimizer, r.init, r.stop_reason)
        np.testing.assert_allclose(results[u].train_loss, r.train_loss, rtol=1e-5)
        torch.testing.assert_close(models[u].weight, ref.weight)


def test_convnet2d_channels_last_gives_the_nchw_values():
    torch.manual_seed(0)
    m = build_model("ConvNet2D", n_bands=F, n_neurons=1, kernel_size=(3, 5), channels=4, hidden=6, n_blocks=2,
                    prefilter="adaptrans", prefilter_kwargs={"kernel_size": 16})
    x = torch.rand(4, 1, F, 40)  # CHANNELS_LAST_MIN_BATCH stimuli: the channels-last path
    z = m.prefilter(x)
    ref = z
    for conv, norm in zip(m.convs, m.norms):
        ref = F_.leaky_relu(norm(F_.conv2d(F_.pad(ref, (4, 0)), conv.weight, conv.bias)), m.negative_slope)
    got = m.features(x)
    assert got.is_contiguous()
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    got.sum().backward()
    g = m.convs[0].weight.grad.clone()
    m.zero_grad()
    ref.sum().backward()
    torch.testing.assert_close(g, m.convs[0].weight.grad, atol=1e-4, rtol=1e-3)  # float32 sums in another order


@pytest.mark.parametrize("lengths, n_lags, n_channels", [([50, 3, 17], 5, 6), ([7], 10, 3), ([1, 1], 3, 2),
                                                         ([40, 41], 1, 4)])
def test_lagged_gram_equals_the_product_of_the_design(lengths, n_lags, n_channels):
    """X'X from the lag-0 columns and the stimuli's last rows = the explicit product, stimuli
    shorter than the lags included."""
    from deepstrf_utils.models.ridge import lagged_design, lagged_gram

    rng = np.random.default_rng(1)
    x = np.concatenate([lagged_design(rng.standard_normal((n_channels, 1, n)), n_lags) for n in lengths])
    gram = lagged_gram(x, lengths, n_lags)
    np.testing.assert_allclose(gram, x.T @ x, rtol=0, atol=1e-12 * np.abs(x.T @ x).max())
    with pytest.raises(ValueError, match="stacked lagged design"):
        lagged_gram(x[1:], lengths, n_lags)


def test_ridge_paths_agree_with_and_without_missing_bins(syn):
    """A missing target bin sends ridge_strf down the explicit X'X path; with the bin
    restored the Toeplitz X'X gives the same solution as the explicit one on complete data."""
    train, val, _ = syn
    model = _model()
    tr, va = _packed(train), _packed(val)
    fast = ridge_strf(model.prefilter, K, tr, va)
    import deepstrf_utils.training.warmstart as ws

    real = ws.lagged_gram
    ws.lagged_gram = lambda x, lengths, n_lags: x.T @ x  # the explicit product
    try:
        slow = ridge_strf(model.prefilter, K, tr, va)
    finally:
        ws.lagged_gram = real
    np.testing.assert_allclose(fast["weight"].numpy(), slow["weight"].numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fast["alpha"], slow["alpha"])
    target = tr[1].clone()
    target[0, 0, 5] = float("nan")
    gap = ridge_strf(model.prefilter, K, (tr[0], target, tr[2]), va)
    assert np.all(np.isfinite(gap["weight"].numpy()))
    assert not torch.equal(gap["weight"][0], fast["weight"][0])


@pytest.mark.parametrize("shape, kernel", [((3, 2, 32, 50), (6, 15)), ((2, 10, 9, 7), (3, 7)), ((1, 1, 4, 3), (4, 5))])
def test_causal_conv2d_fft_equals_the_padded_convolution(shape, kernel):
    """Values and gradients (input, weight, bias) of the frequency-domain 2-D convolution =
    Conv2d on the causally left-padded input; kernels longer than the signal included."""
    from deepstrf_utils.spectral import causal_conv2d_fft

    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, shape[1], *kernel, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    ref = F_.conv2d(F_.pad(x, (kernel[1] - 1, 0)), w, b)
    out = causal_conv2d_fft(x, w, b)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    up = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for a, c in zip(torch.autograd.grad((ref * up).sum(), (x, w, b)), torch.autograd.grad((out * up).sum(), (x, w, b))):
        torch.testing.assert_close(c, a, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="expected a weight"):
        causal_conv2d_fft(x, w[:, :1] if shape[1] > 1 else w.expand(4, 2, *kernel), b)


def test_convnet2d_paths_agree():
    """ConvNet2D gives the same output and gradients with its Conv2d and FFT blocks, in
    training (masked BatchNorm on a padded batch) and eval mode; "auto" picks FFT on a CPU
    for (6, 15) kernels only, and the choice is in the config."""
    torch.manual_seed(0)
    conv = build_model("ConvNet2D", n_bands=20, n_neurons=2, prefilter="adaptrans", implementation="conv")
    fft = build_model("ConvNet2D", n_bands=20, n_neurons=2, prefilter="adaptrans", implementation="fft")
    fft.load_state_dict(conv.state_dict())
    x = torch.rand(3, 1, 20, 60)
    lengths = torch.tensor([60, 45, 30])
    for train in (True, False):
        conv.train(train), fft.train(train)
        a, b = conv(x, lengths=lengths), fft(x, lengths=lengths)
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    conv.train(), fft.train()
    trained = [n for n, _ in conv.named_parameters() if not (n.startswith("convs.") and n.endswith(".bias"))]
    ga = torch.autograd.grad(conv(x, lengths=lengths).square().mean(), [conv.get_parameter(n) for n in trained])
    gb = torch.autograd.grad(fft(x, lengths=lengths).square().mean(), [fft.get_parameter(n) for n in trained])
    for u, v in zip(ga, gb):
        torch.testing.assert_close(v, u, rtol=1e-3, atol=1e-5)
    assert build_model("ConvNet2D", n_bands=20).conv_path("cpu") == "fft"
    assert build_model("ConvNet2D", n_bands=20).conv_path("cuda") == "conv"
    assert build_model("ConvNet2D", n_bands=18, kernel_size=(3, 7)).conv_path("cpu") == "conv"
    assert fft.config["implementation"] == "fft"
    with pytest.raises(ValueError, match="implementation"):
        build_model("ConvNet2D", n_bands=20, implementation="winograd")


def test_channel_mix_gradients():
    """The hand-written backward of the complex channel mixing = autograd's (gradcheck)."""
    from deepstrf_utils.spectral import _mix_channels

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 7, dtype=torch.complex128, generator=g, requires_grad=True)
    w = torch.randn(5, 4, 7, dtype=torch.complex128, generator=g, requires_grad=True)
    torch.testing.assert_close(_mix_channels(x, w), torch.einsum("bcp,ocp->bop", x, w))
    assert torch.autograd.gradcheck(_mix_channels, (x, w))


def test_auto_paths_and_starts():
    """What optimizer="auto" picks per model: L from the ridge start, LN from the ridge start and
    a random start (the better kept), NRF / DNet AdamW (ADAMW_AUTO), the 2D-CNN L-BFGS from its
    random start; each L-BFGS start with its patience and minimum number of epochs; an explicit
    patience is kept; AdamW has no L-BFGS start."""
    from deepstrf_utils.training.options import (_DEFAULTS, ADAMW_AUTO, LBFGS_MIN_EPOCHS, RIDGE_START_MIN_EPOCHS,
                                                 RIDGE_START_PATIENCE, _resolve_fit_options)

    def resolved(model, **kw):
        args = dict(optimizer="auto", init="auto", lr=None, max_epochs=None, patience="auto", rel_tol=None)
        args.update(kw)
        o = _resolve_fit_options(model, **args)
        return o["optimizer"], o["patience"], [(s["init"], s["patience"], s["min_epochs"]) for s in o["starts"]]

    ridge = ("ridge", RIDGE_START_PATIENCE, RIDGE_START_MIN_EPOCHS)
    random = (None, _DEFAULTS["lbfgs"]["patience"], LBFGS_MIN_EPOCHS)
    assert resolved(_model("Linear")) == ("lbfgs", RIDGE_START_PATIENCE, [ridge])
    assert resolved(_model("LinearNonlinear")) == ("lbfgs", RIDGE_START_PATIENCE, [ridge, random])
    assert resolved(_model("LinearNonlinear"), init="ridge")[2] == [ridge]
    assert resolved(_model("Linear"), init=None)[2] == [random]
    cnn = _model("ConvNet2D", prefilter=None, kernel_size=(3, 5), channels=3, hidden=6, n_blocks=2)
    assert resolved(cnn)[2] == [random]
    for name in ("NetworkReceptiveField", "DNet"):
        assert resolved(_model(name)) == ("adamw", ADAMW_AUTO["patience"], [])
        assert resolved(_model(name), optimizer="lbfgs")[2] == [random]
    assert resolved(_model("Linear"), patience=4) == ("lbfgs", 4, [("ridge", 4, RIDGE_START_MIN_EPOCHS)])
    assert resolved(_model("Linear"), optimizer="adamw") == ("adamw", 50, [])


def test_bracketed_alpha_search_finds_the_grid_minimum():
    """Searching the alpha grid from its middle outwards finds each neuron's best grid value
    (unimodal errors, minima at the edges and inside) with fewer solves than the grid."""
    from deepstrf_utils.training.warmstart import _bracketed_search

    grid = [10.0 ** e for e in range(-4, 2)]
    for minima in ([-4.0], [1.0], [-1.3, 0.2], [-2.6], [-4.0, 1.0]):
        calls = []

        def solve(a):
            calls.append(a)
            return None, torch.tensor([(math.log10(a) - m) ** 2 for m in minima], dtype=torch.float64)

        tried = _bracketed_search(solve, grid)
        keys = sorted(tried)
        best = [keys[i] for i in torch.stack([tried[a][1] for a in keys]).argmin(0).tolist()]
        full = [grid[int(np.argmin([(math.log10(a) - m) ** 2 for a in grid]))] for m in minima]
        assert best == full and len(calls) == len(set(calls))
    assert len(_bracketed_search(lambda a: (None, torch.tensor([(math.log10(a) + 1.2) ** 2])), grid)) == 3
    # a failing factorisation at small alphas is skipped
    tried = _bracketed_search(lambda a: None if a < 1e-2 else (None, torch.tensor([math.log10(a) ** 2 + 0.0])), grid)
    assert min(tried) == 1e-2 and 1.0 in tried


def test_convnet2d_memory_format_by_batch():
    """Regression (NS1 protocol, batch 1): oneDNN's channels-last backward took 2-4 s per step
    for one or two stimuli with 10 channels and (6, 15) kernels (~80 ms on NCHW). A single
    stimulus runs NCHW Conv2d; 2-3 stimuli with (6, 15) kernels the FFT path; 4+ stimuli with
    small kernels channels-last Conv2d."""
    from deepstrf_utils.models.cnn import CHANNELS_LAST_MIN_BATCH

    seen = []
    for kernel, batch, path, channels_last in [((6, 15), 1, "conv", False), ((6, 15), 2, "fft", None),
                                               ((3, 7), 2, "conv", False), ((3, 7), CHANNELS_LAST_MIN_BATCH,
                                                                            "conv", True)]:
        m = build_model("ConvNet2D", n_bands=20, kernel_size=kernel, prefilter="adaptrans")
        assert m.conv_path("cpu", batch) == path
        hook = m.convs[1].register_forward_pre_hook(
            lambda mod, inp: seen.append(inp[0].is_contiguous(memory_format=torch.channels_last)
                                         and not inp[0].is_contiguous()))
        m(torch.rand(batch, 1, 20, 30))
        hook.remove()
        if path == "fft":
            assert not seen  # no Conv2d module called
        else:
            assert seen.pop() is channels_last
