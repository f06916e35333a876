"""Tests of deepstrf_utils.models: shapes, causality, gradients, counts, STRFs, fitting."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from deepstrf_utils.adaptrans import AdapTrans
from deepstrf_utils.models import (
    MODELS,
    ConvNet2D,
    DNet,
    Linear,
    LinearNonlinear,
    NetworkReceptiveField,
    ParametricSigmoid,
    PopulationCNN,
    StateNet,
    build_model,
    count_parameters,
    fit_ridge_strf,
    leaky_integrate,
    make_prefilter,
)

F_BANDS, T_BINS, N_NEURONS = 16, 40, 2
# small configurations of every model, so that each test runs in milliseconds
SMALL = {
    "Linear": dict(n_lags=6),
    "LinearNonlinear": dict(n_lags=6),
    "NetworkReceptiveField": dict(n_hidden=4, n_lags=6),
    "DNet": dict(n_hidden=4, n_lags=6),
    "ConvNet2D": dict(kernel_size=(3, 5), channels=4, hidden=8),
    "StateNet": dict(channels=3),
    "PopulationCNN": dict(channels=4, hidden=8, kernel_size=(3, 4)),
    "Transformer": dict(window=6, patch=4, embedding=4, n_heads=2, positions="learned"),
}
CASES = [(name, pre) for name in MODELS for pre in (None, "adaptrans")]


def make(name, prefilter=None, n_bands=F_BANDS, n_neurons=N_NEURONS, seed=0):
    torch.manual_seed(seed)
    return MODELS[name](n_bands, n_neurons=n_neurons, prefilter=prefilter, **SMALL[name])


def stimulus(b=2, f=F_BANDS, t=T_BINS, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, f, t, generator=g)


def test_registry_holds_every_model():
    assert set(MODELS) == {
        "Linear", "LinearNonlinear", "NetworkReceptiveField", "DNet", "ConvNet2D", "StateNet", "PopulationCNN",
        "Transformer",
    }


@pytest.mark.parametrize("name,prefilter", CASES)
def test_output_shape(name, prefilter):
    model = make(name, prefilter).eval()
    y = model(stimulus(b=3))
    assert y.shape == (3, N_NEURONS, T_BINS)
    assert torch.isfinite(y).all()
    assert model.in_channels == (2 if prefilter == "adaptrans" else 1)


@pytest.mark.parametrize("name,prefilter", CASES)
def test_causal(name, prefilter):
    """Changing the input from t0 on leaves every output before t0 unchanged."""
    model = make(name, prefilter).eval()
    x = stimulus()
    t0 = 23
    x2 = x.clone()
    x2[..., t0:] = torch.rand(x[..., t0:].shape, generator=torch.Generator().manual_seed(5)) * 3
    with torch.no_grad():
        y, y2 = model(x), model(x2)
    torch.testing.assert_close(y[..., :t0], y2[..., :t0], atol=1e-5, rtol=0)
    assert (y[..., t0:] - y2[..., t0:]).abs().max() > 1e-4  # the future change is seen from t0 on
    has_batchnorm = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if not has_batchnorm:  # without batch statistics, causal in training mode too
        model.train()
        with torch.no_grad():
            torch.testing.assert_close(model(x)[..., :t0], model(x2)[..., :t0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,prefilter", CASES)
def test_backward_reaches_every_parameter(name, prefilter):
    model = make(name, prefilter)
    x = stimulus()
    weights = torch.randn(2, N_NEURONS, T_BINS, generator=torch.Generator().manual_seed(3))
    # the 2D-CNN's conv biases before BatchNorm are constants (exactly 0, no gradient: ConvBeforeNorm2d)
    fixed = {n for n, _ in model.named_parameters() if name == "ConvNet2D" and n.startswith("convs.")
             and n.endswith(".bias")}
    model.train()
    (model(x) * weights).sum().backward()  # training mode (batch statistics) runs
    for pname, p in model.named_parameters():
        assert (p.grad is None) if pname in fixed else (p.grad is not None and torch.isfinite(p.grad).all()), pname
    model.zero_grad(set_to_none=True)
    model.eval()
    (model(x) * weights).sum().backward()
    for pname, p in model.named_parameters():
        if pname in fixed:
            assert p.grad is None and not p.detach().abs().any(), pname
            continue
        assert p.grad is not None, pname
        assert p.grad.abs().max() > 0, f"no gradient reaches {pname}"
    if prefilter == "adaptrans":
        assert any(n.startswith("prefilter.") for n, _ in model.named_parameters())


@pytest.mark.parametrize("name,prefilter", CASES)
def test_wrong_input_shape(name, prefilter):
    model = make(name, prefilter)
    for bad in (torch.rand(2, F_BANDS, T_BINS), torch.rand(2, 2, F_BANDS, T_BINS), torch.rand(2, 1, F_BANDS + 1, T_BINS)):
        with pytest.raises(ValueError, match=rf"\(B, 1, F, T\) with F={F_BANDS}"):
            model(bad)


@pytest.mark.parametrize("name", list(MODELS))
def test_build_model_round_trip(name):
    model = make(name, "adaptrans", seed=0)
    with torch.no_grad():  # move parameters away from their initial values
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    config = json.loads(json.dumps(model.config))
    rebuilt = build_model(type(model).__name__, **config)
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    x = stimulus()
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))
    assert rebuilt.config == model.config


def test_pinned_parameter_counts():
    assert count_parameters(ConvNet2D(34, kernel_size=(6, 15), prefilter="adaptrans")) == 37_276
    assert count_parameters(ConvNet2D(18, kernel_size=(3, 7), prefilter="adaptrans", dt_ms=10.0)) == 15_748
    assert count_parameters(StateNet(34, rnn="gru")) == 30_465
    # 3 x conv (250 + 2410 + 2410) + dense 180 x 90 without bias + 90 relu thresholds = 21,360
    # shared; 90 + 1 + 4 per neuron (Pennington & David 2023)
    assert count_parameters(PopulationCNN(18, n_neurons=1)) == 21_360 + 95
    assert count_parameters(PopulationCNN(18, n_neurons=7)) == 21_360 + 7 * 95
    assert count_parameters(LinearNonlinear(34, n_neurons=2, n_lags=20, prefilter="adaptrans")) == 2 * (
        2 * 34 * 20 + 1 + 3
    ) + 3 * 34
    assert count_parameters(DNet(34, n_hidden=20, n_lags=20)) == count_parameters(
        NetworkReceptiveField(34, n_hidden=20, n_lags=20)
    ) + 21
    assert count_parameters(ParametricSigmoid(5)) == 15


def test_count_parameters_trainable_only():
    model = ConvNet2D(34, prefilter="adaptrans")
    model.prefilter.requires_grad_(False)
    assert count_parameters(model) == 37_276 - 102
    assert count_parameters(model, trainable_only=False) == 37_276


def test_strf_shapes():
    assert Linear(12, n_neurons=3, n_lags=7).strf().shape == (3, 1, 12, 7)
    assert LinearNonlinear(12, n_neurons=3, n_lags=7, prefilter="adaptrans").strf().shape == (3, 2, 12, 7)
    assert NetworkReceptiveField(12, n_neurons=3, n_hidden=5, n_lags=7).strf().shape == (5, 1, 12, 7)
    assert DNet(12, n_neurons=3, n_hidden=5, n_lags=7, prefilter="adaptrans").strf().shape == (5, 2, 12, 7)


def test_strf_lag_orientation():
    """A Linear model whose only nonzero weight is at lag 3 delays an impulse by 3 bins."""
    model = Linear(8, n_neurons=1, n_lags=6)
    strf = torch.zeros(1, 1, 8, 6)
    strf[0, 0, 2, 3] = 1.5
    model.load_strf(strf, bias=[0.0])
    x = torch.zeros(1, 1, 8, 20)
    x[0, 0, 2, 5] = 1.0
    with torch.no_grad():
        y = model(x)[0, 0]
    expected = torch.zeros(20)
    expected[8] = 1.5
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(model.strf().detach(), strf)
    with pytest.raises(ValueError, match=r"\(N, C, F, K\)"):
        model.load_strf(torch.zeros(1, 1, 8, 5))


def _leaky_loop(s, k):
    u = torch.zeros_like(s[..., 0])
    out = []
    for t in range(s.shape[-1]):
        u = (1 - k) * u + k * s[..., t]
        out.append(u)
    return torch.stack(out, dim=-1)


def test_leaky_integrate_equals_loop_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    s = torch.rand(3, 5, 60, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.tensor([1.0, 0.9, 0.5, 0.1, 0.01], dtype=torch.float64, requires_grad=True)
    fast, slow = leaky_integrate(s, k), _leaky_loop(s, k)
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=0)
    w = torch.randn(fast.shape, generator=g, dtype=torch.float64)
    grads_fast = torch.autograd.grad((fast * w).sum(), (s, k))
    grads_slow = torch.autograd.grad((slow * w).sum(), (s, k))
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)
    # float32, the dtype of the models
    torch.testing.assert_close(leaky_integrate(s.detach().float(), k.detach().float()),
                               _leaky_loop(s.detach(), k.detach()).float(), atol=1e-5, rtol=0)


def test_dnet_is_a_leaky_nrf():
    """DNet forward = NRF hidden units and output sigmoid each run through the slow recursion."""
    torch.manual_seed(0)
    model = DNet(10, n_neurons=2, n_hidden=3, n_lags=4).eval()
    with torch.no_grad():
        model.hidden_d.copy_(torch.tensor([0.3, 1.0, 3.0]))
        model.output_d.copy_(torch.tensor([0.0, 2.0]))  # k = 1 (no memory) and k = 0.2
    x = stimulus(f=10, t=30)
    with torch.no_grad():
        h = _leaky_loop(NetworkReceptiveField.hidden(model, x).double(), model.hidden_k.double())
        z = torch.einsum("nh,bht->bnt", model.out_weight.double(), h) + model.out_bias.double()[:, None]
        ps = model.output_nonlinearity
        v = _leaky_loop(torch.sigmoid(ps.slope.double()[:, None] * z), model.output_k.double())
        expected = ps.amplitude.double()[:, None] * v + ps.baseline.double()[:, None]
        torch.testing.assert_close(model(x).double(), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.output_k, torch.tensor([1.0, 0.2]))


def test_parametric_nonlinearities_and_init_output():
    torch.manual_seed(0)
    x = torch.zeros(1, 3, 5)
    for kind in ("sigmoid", "softplus", "exp", "relu"):
        model = LinearNonlinear(6, n_neurons=3, n_lags=2, nonlinearity=kind)
        assert count_parameters(model.output_nonlinearity) == 9
        model.init_output(mean=[10.0, -2.0, 0.5], std=[3.0, 0.1, 1.0])
        out = model.output_nonlinearity(x)
        torch.testing.assert_close(out[0, :, 0], torch.tensor([10.0, -2.0, 0.5]), atol=1e-4, rtol=0)
    sig = ParametricSigmoid(2)
    y = sig(torch.tensor([[[-50.0, 0.0, 50.0]] * 2]))
    torch.testing.assert_close(y[0, 0], torch.tensor([0.0, 0.5, 1.0]))  # a = 1, b = 1, c = 0 at init
    with pytest.raises(ValueError, match="nonlinearity"):
        LinearNonlinear(6, nonlinearity="tanh")
    for name in MODELS:  # every model can start at the target's scale
        model = make(name).eval()
        model.init_output(mean=[5.0, 7.0], std=[0.1, 0.1])
        with torch.no_grad():
            mean_out = model(stimulus()).mean(dim=(0, 2))
        assert torch.all((mean_out - torch.tensor([5.0, 7.0])).abs() < 1.0), (name, mean_out)


def test_make_prefilter_and_bad_arguments():
    assert make_prefilter(None, 8).out_channels == 1
    assert make_prefilter("adaptrans", 8, 5.0).out_channels == 2
    assert make_prefilter("willmore", 8, 5.0).out_channels == 1
    with pytest.raises(ValueError, match="prefilter"):
        make_prefilter("gammatone", 8)
    with pytest.raises(ValueError, match="out_channels"):
        make_prefilter(nn.Identity(), 8)
    with pytest.raises(ValueError, match="model name"):
        build_model("Mamba", n_bands=8)
    with pytest.raises(ValueError, match="n_bands > "):
        ConvNet2D(10, kernel_size=(6, 15))
    with pytest.raises(ValueError, match="rnn"):
        StateNet(34, rnn="transformer")

    class Doubler(nn.Module):
        out_channels = 3

        def forward(self, x):
            return torch.cat([x, 2 * x, 3 * x], dim=1)

    model = NetworkReceptiveField(8, n_hidden=2, n_lags=3, prefilter=Doubler())
    assert model.strf().shape == (2, 3, 8, 3)
    assert model.config["prefilter"] == "module:Doubler"
    with pytest.raises(ValueError, match="custom prefilter"):
        build_model("NetworkReceptiveField", **model.config)


def test_vmap_over_single_unit_copies():
    """N single-unit models run as one vmapped call over stacked parameters (training engine)."""
    from torch.func import functional_call, stack_module_state

    for name in ("Linear", "LinearNonlinear", "NetworkReceptiveField", "DNet"):
        copies = [make(name, "adaptrans", n_neurons=1, seed=s) for s in range(3)]
        params, buffers = stack_module_state(copies)
        base = copy.deepcopy(copies[0]).to("meta")
        x = stimulus()

        def run(p, b):
            return functional_call(base, (p, b), (x,))

        out = torch.vmap(run)(params, buffers)  # (copies, B, 1, T)
        for i, m in enumerate(copies):
            torch.testing.assert_close(out[i], m(x), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------
# recovering a planted STRF
# ----------------------------------------------------------------------------------------
def _planted_strf(n_channels, n_bands, n_lags, seed):
    """A smooth spectro-temporal receptive field: excitatory then inhibitory, (C, F, K)."""
    rng = np.random.default_rng(seed)
    f = np.arange(n_bands)[:, None]
    k = np.arange(n_lags)[None, :]
    strf = []
    for _ in range(n_channels):
        f0, k0 = rng.uniform(2, n_bands - 3), rng.uniform(1, 3)
        exc = np.exp(-((f - f0) ** 2) / 4.0 - (k - k0) ** 2 / 2.0)
        inh = 0.6 * np.exp(-((f - f0 - 1.5) ** 2) / 4.0 - (k - k0 - 2.5) ** 2 / 2.0)
        strf.append(exc - inh)
    return np.stack(strf)


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_linear_adam_recovers_planted_strf():
    torch.manual_seed(0)
    n_bands, n_lags = 8, 6
    planted = torch.as_tensor(_planted_strf(1, n_bands, n_lags, seed=1), dtype=torch.float32)[None]
    x = torch.randn(4, 1, n_bands, 150, generator=torch.Generator().manual_seed(2))
    truth = Linear(n_bands, n_lags=n_lags)
    truth.load_strf(planted, bias=[0.3])
    with torch.no_grad():
        y = truth(x) + 0.5 * torch.randn(4, 1, 150, generator=torch.Generator().manual_seed(3))
    model = Linear(n_bands, n_lags=n_lags)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert _corr(model.strf().detach(), planted) > 0.95
    assert abs(float(model.bias.detach()) - 0.3) < 0.1


def test_ln_trains_on_rates_of_any_scale_after_init_output():
    """Targets in the tens (e.g. spikes/s): init_output puts the LN model at the data's scale."""
    torch.manual_seed(0)
    n_bands, n_lags = 8, 5
    planted = torch.as_tensor(_planted_strf(1, n_bands, n_lags, seed=2), dtype=torch.float32)[None]
    x = torch.randn(4, 1, n_bands, 120, generator=torch.Generator().manual_seed(4))
    truth = LinearNonlinear(n_bands, n_lags=n_lags)
    truth.load_strf(planted, bias=[0.0])
    truth.output_nonlinearity.init_output(mean=40.0, std=15.0)
    with torch.no_grad():
        y = truth(x)
    model = LinearNonlinear(n_bands, n_lags=n_lags)
    model.init_output(mean=y.mean(), std=y.std())
    with torch.no_grad():
        start = ((model(x) - y) ** 2).mean()
    assert start < 2 * y.var()  # starts at the data's scale, not (0, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert loss < 0.05 * y.var()
    assert _corr(model.strf().detach(), planted) > 0.95


def _ridge_data(rng, strfs, n_stim, n_bins, n_repeats, noise, prefilter=None):
    """Stimuli (F, T) and noisy repeated responses (N, R, T) from planted STRFs (N, C, F, K)."""
    n_neurons, _, n_bands, n_lags = strfs.shape
    truth = Linear(n_bands, n_neurons=n_neurons, n_lags=n_lags, prefilter=prefilter)
    truth.load_strf(strfs, bias=np.linspace(-1, 1, n_neurons))
    stimuli, responses = [], []
    for _ in range(n_stim):
        s = rng.standard_normal((n_bands, n_bins)).astype(np.float32)
        with torch.no_grad():
            clean = truth(torch.as_tensor(s)[None, None])[0].numpy()
        r = clean[:, None, :] + noise * rng.standard_normal((n_neurons, n_repeats, n_bins))
        stimuli.append(s)
        responses.append(r)
    return stimuli, responses


def test_fit_ridge_strf_recovers_planted_strfs():
    rng = np.random.default_rng(0)
    n_bands, n_lags = 8, 6
    strfs = np.stack([_planted_strf(1, n_bands, n_lags, seed=s) for s in range(3)])  # (3, 1, F, K)
    train = _ridge_data(rng, strfs, n_stim=4, n_bins=120, n_repeats=3, noise=2.0)
    val = _ridge_data(rng, strfs, n_stim=2, n_bins=120, n_repeats=3, noise=2.0)
    train[1][0][:, :, -10:] = np.nan  # padding: every repeat missing
    train[1][1][1, 0, :] = np.nan  # one missing trial of neuron 1: still averaged over the rest
    train[1][2][2, :, 50:60] = np.nan  # neuron 2 has its own missing bins (solved in its own group)
    model, info = fit_ridge_strf(train, val, n_lags=n_lags)
    assert isinstance(model, Linear) and model.strf().shape == (3, 1, n_bands, n_lags)
    for n in range(3):
        assert _corr(model.strf()[n].detach(), strfs[n]) > 0.9
    torch.testing.assert_close(model.bias.detach(), torch.tensor([-1.0, 0.0, 1.0]), atol=0.3, rtol=0)
    assert info["alpha"].shape == (3,) and info["cc_val"].shape == (3,)
    assert np.all(np.isfinite(info["alpha"])) and np.all(np.isin(info["alpha"], info["alphas"]))
    assert info["cc_val_grid"].shape == (19, 3)
    np.testing.assert_allclose(info["cc_val"], np.nanmax(info["cc_val_grid"], axis=0))
    assert info["n_train_bins"].tolist() == [470, 470, 460]

    # the reported validation cc is the one of the returned model
    with torch.no_grad():
        pred = np.concatenate([model(torch.as_tensor(s)[None, None])[0].numpy() for s in val[0]], axis=1)
    target = np.concatenate([r.mean(1) for r in val[1]], axis=1)
    for n in range(3):
        assert abs(_corr(pred[n], target[n]) - info["cc_val"][n]) < 1e-4

    # few bins for 64 weights and noisy data: validation picks an interior ridge strength
    rng = np.random.default_rng(1)
    strfs8 = np.stack([_planted_strf(1, n_bands, 8, seed=s) for s in range(3)])
    small_train = _ridge_data(rng, strfs8, n_stim=1, n_bins=80, n_repeats=1, noise=1.0)
    small_val = _ridge_data(rng, strfs8, n_stim=2, n_bins=100, n_repeats=1, noise=1.0)
    _, small = fit_ridge_strf(small_train, small_val, n_lags=8)
    grid = small["cc_val_grid"]
    assert np.all(small["alpha"] > small["alphas"][0]) and np.all(small["alpha"] < small["alphas"][-1])
    assert np.all(small["cc_val"] > np.maximum(grid[0], grid[-1]) + 0.005)


def test_fit_ridge_strf_with_fixed_adaptrans():
    """The design is built from the fixed ON/OFF channels: the planted model is reproduced.

    Weights are compared through predictions: with a_on = a_off (the initialisation) the
    lagged ON/OFF design of each band has rank K + 1, not 2 K (each lagged exponential
    average is a combination of the later ones and of the input), so ON/OFF STRFs are only
    defined up to that null space.
    """
    rng = np.random.default_rng(0)
    n_bands, n_lags = 8, 5
    strfs = _planted_strf(2, n_bands, n_lags, seed=4)[None]  # ON and OFF STRFs, (1, 2, F, K)
    train = _ridge_data(rng, strfs, 3, 150, 1, noise=0.01, prefilter="adaptrans")
    val = _ridge_data(rng, strfs, 2, 150, 1, noise=0.01, prefilter="adaptrans")
    test = _ridge_data(rng, strfs, 2, 150, 1, noise=0.0, prefilter="adaptrans")
    model, info = fit_ridge_strf(train, val, n_lags=n_lags, prefilter="adaptrans", alphas=np.logspace(-6, 0, 7))
    assert isinstance(model.prefilter, AdapTrans)
    assert count_parameters(model.prefilter) == 0  # learnable=False by default here: fixed prefilter
    assert model.strf().shape == (1, 2, n_bands, n_lags)
    assert info["cc_val"][0] > 0.999
    with torch.no_grad():
        pred = np.stack([model(torch.as_tensor(s)[None, None])[0, 0].numpy() for s in test[0]])
    truth = np.stack([r[0, 0] for r in test[1]])
    assert _corr(pred, truth) > 0.999
    # exact away from the first K - 1 bins, where the zero padding breaks the null-space identity
    np.testing.assert_allclose(pred[:, n_lags - 1:], truth[:, n_lags - 1:], atol=0.02 * truth.std())
    # without the prefilter the same data are fitted much worse
    _, raw = fit_ridge_strf(train, val, n_lags=n_lags)
    assert raw["cc_val"][0] < 0.99


def test_fit_ridge_strf_bad_input():
    stim = [np.zeros((8, 30))]
    with pytest.raises(ValueError, match=r"\(N, R_i, T_i\)"):
        fit_ridge_strf((stim, [np.zeros((2, 30))]), (stim, [np.zeros((2, 1, 30))]))
    with pytest.raises(ValueError, match="stimuli"):
        fit_ridge_strf(stim, (stim, [np.zeros((2, 1, 30))]))


# ----------------------------------------------------------------------------------------
# frequency-domain STRF paths ("fused" AdapTrans + STRF, "fft") against the convolution
# ----------------------------------------------------------------------------------------
def _randomise_adaptrans(model, seed):
    """Distinct a_on != a_off per band and w != w0, so that ON and OFF really differ."""
    g = torch.Generator().manual_seed(seed)
    f = model.n_bands
    with torch.no_grad():
        model.prefilter.logit_a_on.copy_(torch.empty(f).uniform_(1.0, 4.0, generator=g))
        model.prefilter.logit_a_off.copy_(torch.empty(f).uniform_(-1.0, 2.0, generator=g))
        model.prefilter.logit_w.copy_(torch.empty(f).uniform_(-1.5, 2.5, generator=g))
        model.bias.normal_(generator=g)


def _pair_of_models(cls, impl_a, impl_b, seed=0, **kwargs):
    torch.manual_seed(seed)
    a = cls(implementation=impl_a, **kwargs)
    b = cls(implementation=impl_b, **kwargs)
    b.load_state_dict(a.state_dict())
    return a, b


def _outputs_and_grads(model, x, weights):
    x = x.clone().requires_grad_(True)
    y = model(x)
    names = [n for n, p in model.named_parameters()]
    grads = torch.autograd.grad((y * weights).sum(), [p for _, p in model.named_parameters()] + [x])
    return y.detach(), dict(zip(names + ["input"], grads))


def _assert_rel_close(a, b, rel, what):
    scale = b.abs().max().clamp_min(1e-12)
    err = (a - b).abs().max()
    assert err <= rel * scale, f"{what}: max error {err:.3g} > {rel:g} x {scale:.3g}"


@pytest.mark.parametrize("cls", [Linear, LinearNonlinear])
@pytest.mark.parametrize("n_bands,n_bins,kernel_size,step", [
    (8, 300, None, True),  # default AdapTrans kernel (K = 131 at 5 ms), longer than 2 T / 3
    (34, 120, 40, False),
    (12, 4, 9, True),  # T shorter than the STRF (n_lags = 6)
])
def test_fused_adaptrans_strf_equals_conv(cls, n_bands, n_bins, kernel_size, step):
    """Linear AdapTrans + STRF in one frequency-domain product == AdapTrans then conv2d."""
    kw = dict(n_bands=n_bands, n_neurons=3, n_lags=6, prefilter="adaptrans",
              prefilter_kwargs={"rectify": None} if kernel_size is None
              else {"rectify": None, "kernel_size": kernel_size})
    fused, conv = _pair_of_models(cls, "auto", "conv", **kw)
    assert fused.strf_path() == "fused" and conv.strf_path() == "conv"
    _randomise_adaptrans(fused, seed=n_bins)
    conv.load_state_dict(fused.state_dict())
    a_on, a_off = fused.prefilter.a_on, fused.prefilter.a_off
    assert (a_on - a_off).abs().min() > 0.01 and (fused.prefilter.w - 0.75).abs().max() > 0.05
    x = stimulus(b=2, f=n_bands, t=n_bins, seed=n_bins)
    if step:  # a loud onset at t = 0: the replicate padding carries it into the past
        x[..., : max(1, n_bins // 3)] += 4.0
    weights = torch.randn(2, 3, n_bins, generator=torch.Generator().manual_seed(7))
    y_f, g_f = _outputs_and_grads(fused, x, weights)
    y_c, g_c = _outputs_and_grads(conv, x, weights)
    _assert_rel_close(y_f, y_c, 1e-5, "output")
    for name in g_c:
        _assert_rel_close(g_f[name], g_c[name], 1e-5, f"gradient of {name}")
    torch.testing.assert_close(fused.strf(), conv.strf())


def test_fused_path_is_exact_in_float64():
    fused, conv = _pair_of_models(Linear, "fft", "conv", n_bands=10, n_neurons=2, n_lags=5,
                                  prefilter="adaptrans", prefilter_kwargs={"rectify": None, "kernel_size": 30})
    fused.double(), conv.double()
    _randomise_adaptrans(fused, seed=3)
    conv.load_state_dict(fused.state_dict())
    x = stimulus(b=2, f=10, t=90).double() + 2.0
    with torch.no_grad():
        torch.testing.assert_close(fused(x), conv(x), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("prefilter,kwargs", [
    (None, None), ("willmore", None), ("adaptrans", {"rectify": "relu", "kernel_size": 25}),
])
def test_fft_strf_equals_conv(prefilter, kwargs):
    """prefilter, then the STRF by FFT == prefilter, then conv2d (any prefilter)."""
    fft, conv = _pair_of_models(LinearNonlinear, "fft", "conv", n_bands=9, n_neurons=2, n_lags=7,
                                prefilter=prefilter, prefilter_kwargs=kwargs)
    assert fft.strf_path() == "fft"
    x = stimulus(b=2, f=9, t=70, seed=4)
    x[..., :10] += 3.0
    weights = torch.randn(2, 2, 70, generator=torch.Generator().manual_seed(8))
    y_f, g_f = _outputs_and_grads(fft, x, weights)
    y_c, g_c = _outputs_and_grads(conv, x, weights)
    _assert_rel_close(y_f, y_c, 1e-5, "output")
    for name in g_c:
        _assert_rel_close(g_f[name], g_c[name], 1e-5, f"gradient of {name}")


def test_strf_paths_chosen_by_auto_and_bad_implementation():
    assert Linear(8).strf_path() == "conv"  # shared input: the dense convolution is fastest
    linear = {"rectify": None}
    assert Linear(8, prefilter="adaptrans", prefilter_kwargs=linear).strf_path() == "fused"
    assert Linear(8, prefilter="adaptrans", prefilter_kwargs=linear, implementation="conv").strf_path() == "conv"
    # models rectify AdapTrans by default (identifiable ON/OFF STRFs): STRF by FFT per unit
    assert Linear(8, prefilter="adaptrans").prefilter.rectify == "relu"
    assert Linear(8, prefilter="adaptrans").strf_path() == "fft"
    assert Linear(8, prefilter="willmore").strf_path() == "fft"
    model = LinearNonlinear(8, prefilter="adaptrans", implementation="fft")
    assert build_model("LinearNonlinear", **model.config).implementation == "fft"
    with pytest.raises(ValueError, match="implementation"):
        Linear(8, implementation="fast")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_path_is_causal_with_long_kernels(dtype):
    """No wrap-around of the circular FFT: a change at t0 never reaches earlier outputs.

    float32: within rounding (atol 1e-6); float64: to 1e-12 even for a change 100x the
    signal (any wrap-around of the circular convolution would show at O(1)).
    """
    torch.manual_seed(0)
    model = Linear(6, n_neurons=2, n_lags=30, prefilter="adaptrans",
                   prefilter_kwargs={"rectify": None, "kernel_size": 200}).to(dtype).eval()
    assert model.strf_path() == "fused"
    _randomise_adaptrans(model, seed=1)
    x = stimulus(b=2, f=6, t=250, seed=2).to(dtype)
    gain, atol = (3.0, 1e-6) if dtype == torch.float32 else (100.0, 1e-12)
    for t0 in (1, 120, 249):
        x2 = x.clone()
        x2[..., t0:] += gain * torch.rand(x2[..., t0:].shape, generator=torch.Generator().manual_seed(t0)).to(dtype)
        with torch.no_grad():
            y, y2 = model(x), model(x2)
        torch.testing.assert_close(y[..., :t0], y2[..., :t0], atol=atol, rtol=0)
        assert (y[..., t0] - y2[..., t0]).abs().max() > 1e-3


@pytest.mark.parametrize("prefilter,kwargs,impl", [
    ("adaptrans", {"rectify": None}, "auto"),  # fused: stimulus shared, G per unit
    (None, None, "fft"),  # STRF by FFT on the shared stimulus
    ("adaptrans", {"rectify": "relu"}, "auto"),  # per-unit prefilter output and per-unit G
])
def test_frequency_paths_under_vmap_equal_a_loop(prefilter, kwargs, impl):
    """Stacked single-unit models under vmap(functional_call): outputs and gradients == loop."""
    from torch.func import functional_call, stack_module_state

    copies = []
    for s in range(3):
        torch.manual_seed(s)
        # 2 outputs per copy, so that folding the vmapped copies and the outputs together matters
        m = LinearNonlinear(8, n_neurons=2, n_lags=5, prefilter=prefilter, prefilter_kwargs=kwargs,
                            implementation=impl)
        if prefilter == "adaptrans":
            _randomise_adaptrans(m, seed=s)
        copies.append(m)
    params, buffers = stack_module_state(copies)
    base = copy.deepcopy(copies[0]).to("meta")
    x = stimulus(b=2, f=8, t=60, seed=9)
    weights = torch.randn(3, 2, 2, 60, generator=torch.Generator().manual_seed(1))
    out = torch.vmap(lambda p, b: functional_call(base, (p, b), (x,)))(params, buffers)  # (3, B, 2, T)
    grads = torch.autograd.grad((out * weights).sum(), list(params.values()))
    for i, m in enumerate(copies):
        y = m(x)
        torch.testing.assert_close(out[i], y, atol=1e-5, rtol=1e-5)
        ref = torch.autograd.grad((y * weights[i]).sum(), list(m.parameters()))
        for name, g_stack, g_ref in zip(params, grads, ref):
            torch.testing.assert_close(g_stack[i], g_ref, atol=1e-5, rtol=1e-4, msg=name)


def test_fft_paths_vmapped_over_stimuli():
    """vmap over stimuli with one shared model (the X-batched rule), gradients included."""
    torch.manual_seed(0)
    model = Linear(8, n_neurons=2, n_lags=5, prefilter="adaptrans")
    _randomise_adaptrans(model, seed=0)
    xs = stimulus(b=6, f=8, t=50, seed=3).view(3, 2, 1, 8, 50)
    out = torch.vmap(model)(xs)
    g_v = torch.autograd.grad(out.sum(), list(model.parameters()))
    ref = torch.stack([model(x) for x in xs])
    g_r = torch.autograd.grad(ref.sum(), list(model.parameters()))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_v, g_r):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("n", [16, 15])
def test_padded_rfft_equals_rfft_values_and_gradients(n):
    from deepstrf_utils.spectral import padded_rfft

    torch.manual_seed(0)
    x = torch.randn(3, 2, 11, dtype=torch.float64, requires_grad=True)
    ref = torch.fft.rfft(x, n=n)
    out = padded_rfft(x, n)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    (ga,) = torch.autograd.grad((out * g.conj()).real.sum(), x)
    (gb,) = torch.autograd.grad((ref * g.conj()).real.sum(), x)
    torch.testing.assert_close(ga, gb)
    with pytest.raises(ValueError, match="at most n=8"):
        padded_rfft(x, 8)


def test_models_reject_bad_stimuli_with_the_shared_message():
    """One stimulus check for prefilters and models: ValueError naming (B, 1, F, T) and F;
    TypeError naming the dtype expected (nothing is cast)."""
    for prefilter in (None, "adaptrans"):
        model = Linear(F_BANDS, N_NEURONS, n_lags=4, prefilter=prefilter)
        with pytest.raises(TypeError, match=r"stimulus \(B, 1, F, T\) of dtype float32, got torch.int64"):
            model(torch.ones(1, 1, F_BANDS, 5, dtype=torch.int64))
        with pytest.raises(ValueError, match=rf"\(B, 1, F, T\) with F={F_BANDS}"):
            model(torch.rand(1, 1, F_BANDS + 1, 5))
        with pytest.raises(TypeError, match=r"torch.Tensor stimulus of shape \(B, 1, F, T\)"):
            model(np.zeros((1, 1, F_BANDS, 5), dtype=np.float32))


def test_every_model_is_prefilter_core_readout():
    x = torch.rand(2, 1, F_BANDS, T_BINS)
    for name, cls in MODELS.items():
        torch.manual_seed(0)
        model = cls(F_BANDS, N_NEURONS, **SMALL[name]).eval()
        with torch.no_grad():
            h = model.forward_core(model.prefilter(x))
            assert h.dim() == 3 and h.shape[0] == 2 and h.shape[-1] == T_BINS, name
            torch.testing.assert_close(model.forward_readout(h), model(x), rtol=1e-5, atol=1e-6)
