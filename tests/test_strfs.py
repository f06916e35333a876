"""Tests of deepstrf_utils.interpret.strfs: weight and gradient STRFs (known answers, shapes, errors)."""
import numpy as np
import pytest
import torch

from deepstrf_utils.models import (ConvNet2D, DNet, Linear, LinearNonlinear, NetworkReceptiveField, StateNet)
from deepstrf_utils.interpret.strfs import gradient_strf, onoff_strfs, select_driven_bins, weight_strf

F, K, T = 6, 5, 60


def _stimuli(n=3, t=T, f=F, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, f, t, generator=g)


def _linear(prefilter=None, n_neurons=3, **pk):
    torch.manual_seed(0)
    return Linear(F, n_neurons=n_neurons, n_lags=K, prefilter=prefilter, prefilter_kwargs=pk or None)


@pytest.mark.parametrize("method", ["vmap", "batch"])
def test_linear_gradient_strf_equals_weight_strf(method):
    model = _linear()
    g = gradient_strf(model, _stimuli(), method=method)
    assert g.shape == (3, F, K)
    torch.testing.assert_close(g, weight_strf(model)[:, 0], rtol=0, atol=1e-6)


def test_prefiltered_gradient_equals_onoff_weights():
    # Linear on AdapTrans output: d pred / d (ON, OFF) are exactly the two weight STRFs
    model = _linear("adaptrans", kernel_size=8)
    g = gradient_strf(model, _stimuli(), wrt="prefiltered")
    assert g.shape == (3, 2, F, K)
    torch.testing.assert_close(g, weight_strf(model), rtol=0, atol=1e-6)
    parts = onoff_strfs(model)
    torch.testing.assert_close(parts["on"], weight_strf(model)[:, 0])
    torch.testing.assert_close(parts["off"], weight_strf(model)[:, 1])


def test_input_gradient_through_adaptrans_is_strf_convolved_with_kernels():
    # known answer: G[n, f, k] = sum_c sum_j W[n, c, f, j] kern[c, f, k - j] (full convolution)
    Ka = 8
    model = _linear("adaptrans", kernel_size=Ka, rectify=None)  # linear AdapTrans: a known answer
    K_eff = K + Ka - 1
    g = gradient_strf(model, _stimuli(t=80), n_lags=K_eff)
    W = weight_strf(model).double()  # (N, 2, F, K)
    kern = model.prefilter.kernels().detach().double()  # (2, F, Ka)
    expected = torch.zeros(3, F, K_eff, dtype=torch.float64)
    for j in range(K):
        expected[:, :, j:j + Ka] += (W[:, :, :, j, None] * kern[None]).sum(1)
    # the oldest lag can touch the replicate-padded first frame; compare the others
    torch.testing.assert_close(g[..., :-1].double(), expected[..., :-1], rtol=1e-4, atol=1e-6)


def test_gradient_through_rectified_adaptrans_does_not_vanish():
    # the earlier defect: at a silent stimulus a ReLU-rectified AdapTrans has zero slope
    torch.manual_seed(1)
    model = LinearNonlinear(F, n_neurons=2, n_lags=K, prefilter="adaptrans",
                            prefilter_kwargs={"rectify": "relu", "kernel_size": 8})
    silent = torch.zeros(2, 1, F, T)
    assert gradient_strf(model, silent).abs().max() == 0  # the defect, reproduced on purpose
    g = gradient_strf(model, _stimuli())
    assert g.shape == (2, F, K)
    assert torch.isfinite(g).all()
    assert (g.abs().amax(dim=(1, 2)) > 1e-4).all()  # every neuron has a non-zero STRF


def test_nonlinear_model_matches_brute_force_and_restores_mode():
    torch.manual_seed(2)
    model = NetworkReceptiveField(F, n_neurons=2, n_hidden=4, n_lags=K, prefilter="adaptrans",
                                  prefilter_kwargs={"kernel_size": 8})
    model.train()
    x = _stimuli(n=2)
    g = gradient_strf(model, x, top_fraction=0.2, chunk_size=7)
    assert model.training  # training flag restored
    assert all(p.grad is None for p in model.parameters())
    # brute force: one backward per (neuron, selected bin)
    model.eval()
    with torch.no_grad():
        preds = [model(x[b:b + 1])[0] for b in range(2)]
    masks = select_driven_bins(preds, K, 0.2)
    expected = torch.zeros(2, F, K, dtype=torch.float64)
    counts = torch.zeros(2)
    for b in range(2):
        for n, t in masks[b].nonzero().tolist():
            xb = x[b:b + 1].clone().requires_grad_(True)
            model(xb)[0, n, t].backward()
            expected[n] += xb.grad[0, 0, :, t - K + 1:t + 1].flip(-1).double()
            counts[n] += 1
    expected /= counts[:, None, None].double()
    torch.testing.assert_close(g.double(), expected, rtol=1e-4, atol=1e-7)


def test_select_driven_bins_counts_and_causal_window():
    preds = [torch.arange(10.0)[None].repeat(2, 1), torch.zeros(2, 3)]  # second too short
    masks = select_driven_bins(preds, n_lags=4, top_fraction=0.25)
    # candidates: bins 3..9 of the first stimulus (7) -> ceil(0.25 * 7) = 2 per neuron
    assert masks[0].sum(1).tolist() == [2, 2]
    assert masks[0][:, 8:].all() and not masks[1].any()
    with pytest.raises(ValueError, match="at least one stimulus with T >= n_lags=4 bins, the longest has T=3"):
        select_driven_bins([torch.zeros(2, 3), torch.zeros(2, 2)], n_lags=4)


def test_select_driven_bins_exact_count_with_a_minimum_gap():
    # neuron 0 peaks at 10, 11, 12 (one event) and 30; neuron 1 rises with t; bins 0..3 not candidates
    p = torch.zeros(2, 40)
    p[0, [10, 11, 12, 30, 2]] = torch.tensor([5.0, 4.0, 3.0, 2.0, 9.0])
    p[1] = torch.arange(40.0)
    second = torch.zeros(2, 20)
    second[0, 15] = 2.5
    masks = select_driven_bins([p, second], n_lags=5, n_bins=3, min_gap=5)
    assert torch.nonzero(masks[0][0]).ravel().tolist() == [10, 30] and masks[1][0].nonzero().ravel().tolist() == [15]
    assert torch.nonzero(masks[0][1]).ravel().tolist() == [39, 34, 29][::-1]  # 5 bins apart, from the top
    assert not masks[1][1].any()  # the first stimulus holds the three largest of neuron 1
    # without a gap: the exact count, the three largest
    masks = select_driven_bins([p], n_lags=5, n_bins=3)
    assert torch.nonzero(masks[0][0]).ravel().tolist() == [10, 11, 12]
    with pytest.raises(ValueError, match="n_bins"):
        select_driven_bins([p], n_lags=5, n_bins=0)
    with pytest.raises(ValueError, match="min_gap"):
        select_driven_bins([p], n_lags=5, min_gap=0)


@pytest.mark.parametrize("cls,kwargs", [
    (DNet, {"n_hidden": 3, "n_lags": K}),
    (ConvNet2D, {"kernel_size": (2, 3), "channels": 2, "hidden": 4, "n_blocks": 2}),
    (StateNet, {"channels": 2, "kernel": 3, "stride": 2}),
])
def test_gradient_strf_shapes_for_deep_models(cls, kwargs):
    torch.manual_seed(3)
    model = cls(F, n_neurons=2, prefilter="adaptrans", prefilter_kwargs={"kernel_size": 8}, **kwargs)
    g = gradient_strf(model, list(_stimuli(n=2)[:, 0]), n_lags=K, neurons=[1])
    assert g.shape == (1, F, K) and torch.isfinite(g).all() and g.abs().max() > 0
    gp = gradient_strf(model, _stimuli(n=2), n_lags=K, wrt="prefiltered")
    assert gp.shape == (2, 2, F, K)


def test_bad_inputs():
    model = _linear()
    with pytest.raises(ValueError, match=r"F=6"):
        gradient_strf(model, torch.rand(2, 1, F + 1, T))
    with pytest.raises(ValueError, match=r"\(B, 1, F, T\)"):
        gradient_strf(model, torch.rand(2, 3, F, T))
    with pytest.raises(ValueError, match="top_fraction"):
        gradient_strf(model, _stimuli(), top_fraction=0.0)
    with pytest.raises(ValueError, match="n_lags"):
        gradient_strf(model, _stimuli(t=K - 1))
    with pytest.raises(ValueError, match="wrt"):
        gradient_strf(model, _stimuli(), wrt="output")
    with pytest.raises(ValueError, match="neuron indices"):
        gradient_strf(model, _stimuli(), neurons=[5])
    with pytest.raises(ValueError, match=r"\(N, 2, F, K\)"):
        onoff_strfs(model)  # no AdapTrans: one channel
    with pytest.raises(ValueError, match="strf"):
        weight_strf(torch.nn.Identity())


def test_accepts_numpy_and_dataset_like_stimuli():
    model = _linear()

    class _DS:
        stimuli = [np.random.default_rng(0).random((F, 40)).astype(np.float32) for _ in range(2)]

    g = gradient_strf(model, _DS())
    torch.testing.assert_close(g, weight_strf(model)[:, 0], rtol=0, atol=1e-6)
