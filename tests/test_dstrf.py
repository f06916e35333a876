"""Tests of deepstrf_utils.interpret.dstrf: per-bin Jacobians (dSTRFs) and their principal components."""
import numpy as np
import pytest
import torch
from torch import nn

from deepstrf_utils.interpret.dstrf import dpcs, dstrf, dstrf_pcs, iter_dstrf, receptive_field
from deepstrf_utils.models import ConvNet2D, DNet, Linear, LinearNonlinear

F, K = 6, 5


def _x(t=60, f=F, seed=0):
    return torch.rand(f, t, generator=torch.Generator().manual_seed(seed))


def _reference(model, x, n, t, K):
    """One backward per bin: d pred[n, t] / d x[:, t - k] for k < K (0 before the start)."""
    x = x[None, None].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[0, n, t], x)
    g = g[0, 0]
    out = torch.zeros(g.shape[0], K)
    for k in range(min(K, t + 1)):
        out[:, k] = g[:, t - k]
    return out


def test_linear_dstrf_is_the_weight_strf_at_every_bin():
    torch.manual_seed(0)
    model = Linear(F, n_neurons=3, n_lags=K)
    d = dstrf(model, _x())
    assert d.shape == (3, 60, F, K) and receptive_field(model)["total"] == K
    W = model.weight.detach()[:, 0]
    assert torch.equal(d[:, K - 1:], W[:, None].expand(-1, 60 - K + 1, -1, -1))
    # before bin K - 1 the lags reaching before the start are zero
    torch.testing.assert_close(d[:, 2, :, :3], W[..., :3], rtol=0, atol=0)
    assert torch.all(d[:, 2, :, 3:] == 0)


def test_linear_adaptrans_dstrf_is_weights_convolved_with_full_kernels():
    Ka = 131  # the full AdapTrans length at 5 ms: the adaptation tail must be kept
    torch.manual_seed(0)
    model = Linear(F, n_neurons=2, n_lags=K, prefilter="adaptrans", prefilter_kwargs={"rectify": None, "kernel_size": Ka})
    R = receptive_field(model)["total"]
    assert R == K + Ka - 1
    d = dstrf(model, _x(t=R + 40), times=range(R - 1, R + 40))
    assert d.shape == (2, 41, F, R)
    W = model.weight.detach().double()
    kern = model.prefilter.kernels().detach().double()  # (2, F, Ka)
    expected = torch.zeros(2, F, R, dtype=torch.float64)
    for j in range(K):
        expected[:, :, j:j + Ka] += (W[:, :, :, j, None] * kern[None]).sum(1)
    torch.testing.assert_close(d.double(), expected[:, None].expand_as(d), rtol=1e-4, atol=1e-6)
    assert expected[..., -1].abs().max() > 1e-5  # the oldest lag (end of the tail) is not zero


def test_linear_neuron_has_one_dpc_explaining_everything():
    torch.manual_seed(0)
    model = Linear(F, n_neurons=2, n_lags=K, prefilter="adaptrans", prefilter_kwargs={"rectify": None, "kernel_size": 8})
    res = dstrf_pcs(model, [_x(t=50), _x(t=40, seed=1)], n_components=2)
    R = K + 7
    # by default only bins with a complete window: (50 - R + 1) + (40 - R + 1)
    assert res["components"].shape == (2, 2, F, R) and res["weights"].shape == (2, 90 - 2 * (R - 1), 2)
    np.testing.assert_allclose(res["explained"][:, 0], 1.0, atol=1e-6)
    assert np.all(res["explained"][:, 1] < 1e-6)
    # the first dPC is the (normalised) dSTRF itself, with a positive sign
    late = dstrf(model, _x(t=50), times=[49])[:, 0].double().numpy()
    ref = late / np.linalg.norm(late.reshape(2, -1), axis=1)[:, None, None]
    np.testing.assert_allclose(res["components"][:, 0], ref, atol=1e-5)


def test_nonlinear_neuron_has_several_dpcs():
    torch.manual_seed(0)
    model = LinearNonlinear(F, n_neurons=1, n_lags=K, prefilter="adaptrans", prefilter_kwargs={"kernel_size": 8})
    d = dstrf(model, _x(t=80))
    res = dpcs(d, 3)
    assert np.all(np.isfinite(d.numpy())) and res["explained"][0, 0] < 1 - 1e-4
    assert np.all(np.diff(res["explained"][0]) <= 1e-12) and res["explained"].sum() <= 1 + 1e-9


def test_convnet_dstrf_equals_one_backward_per_bin_and_time_chunks_agree():
    torch.manual_seed(0)
    model = ConvNet2D(12, n_neurons=2, kernel_size=(3, 4), channels=3, hidden=8, n_blocks=2, prefilter="adaptrans",
                      prefilter_kwargs={"kernel_size": 9}).eval()
    R = receptive_field(model)["total"]
    assert R == 9 + 2 * 3 + 1 - 1
    x = _x(t=70, f=12)
    d = dstrf(model, x, batch_size=5)
    assert d.shape == (2, 70, 12, R) and torch.isfinite(d).all() and d.abs().sum() > 0
    for n, t in [(0, 3), (1, 20), (0, 45), (1, 69)]:
        torch.testing.assert_close(d[n, t], _reference(model, x, n, t, R), rtol=1e-4, atol=1e-6)
    chunked = dstrf(model, x, time_chunk=17, times=range(10, 70, 3))
    torch.testing.assert_close(chunked, d[:, 10:70:3], rtol=1e-4, atol=1e-6)


def test_unbounded_memory_model_gets_exact_last_lags():
    torch.manual_seed(0)
    model = DNet(F, n_neurons=2, n_lags=K)
    assert receptive_field(model)["total"] is None
    x = _x(t=30)
    d = dstrf(model, x, n_lags=8, times=[5, 29])
    assert d.shape == (2, 2, F, 8)
    torch.testing.assert_close(d[1, 1], _reference(model, x, 1, 29, 8), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(d[0, 0], _reference(model, x, 0, 5, 8), rtol=1e-4, atol=1e-6)


def test_iter_dstrf_chunks_neurons_and_concatenates_stimuli():
    torch.manual_seed(0)
    model = Linear(F, n_neurons=5, n_lags=K)
    chunks = list(iter_dstrf(model, [_x(t=20), _x(t=30)], neuron_chunk=2))
    assert [c[0].tolist() for c in chunks] == [[0, 1], [2, 3], [4]]
    assert chunks[0][1].shape == (2, 50, F, K)


class _NoGrad(nn.Module):
    n_bands = F

    def forward(self, x):
        return x[:, 0].detach().sum(1, keepdim=True).round()


def test_bad_inputs_raise_value_errors():
    torch.manual_seed(0)
    model = Linear(F, n_neurons=2, n_lags=K)
    with pytest.raises(ValueError, match=r"neuron indices in \[0, 2\)"):
        dstrf(model, _x(), neurons=[2])
    with pytest.raises(ValueError, match="time bins in"):
        dstrf(model, _x(), times=[60])
    with pytest.raises(ValueError, match="F=6 bands"):
        dstrf(model, torch.rand(7, 30))
    with pytest.raises(ValueError, match=r"spectrogram \(B, 1, F, T\)"):
        dstrf(nn.Linear(4, 4), torch.rand(6, 30))
    with pytest.raises(ValueError, match="differentiable"):
        dstrf(_NoGrad(), _x())
    with pytest.raises(ValueError, match="N, T, F, K"):
        dpcs(np.zeros((3, 4, 5)))


@pytest.mark.parametrize("prefilter,kwargs", [("adaptrans", {"kernel_size": 9}), ("adaptrans", {"kernel_size": 9, "rectify": None}),
                                              ("willmore", {"kernel_size": 7})])
def test_chain_rule_through_the_prefilter_equals_direct_differentiation(prefilter, kwargs):
    torch.manual_seed(0)
    cnn = ConvNet2D(12, n_neurons=2, kernel_size=(3, 4), channels=3, hidden=8, n_blocks=2, prefilter=prefilter,
                    prefilter_kwargs=kwargs).eval()
    ln = LinearNonlinear(12, n_neurons=2, n_lags=K, prefilter=prefilter, prefilter_kwargs=kwargs)
    x = _x(t=50, f=12)
    for model in (cnn, ln):
        fused = model is ln and "rectify" in kwargs  # Linear fuses an un-rectified AdapTrans: "auto" goes direct
        chain = dstrf(model, x, method="auto" if fused else "chain", times=range(0, 50, 2))
        direct = dstrf(model, x, method="direct", times=range(0, 50, 2))
        assert chain.shape == direct.shape == (2, 25, 12, receptive_field(model)["total"])
        torch.testing.assert_close(chain, direct, rtol=1e-4, atol=1e-6)
        assert direct.abs().max() > 0
    with pytest.raises(ValueError, match="method='chain' expects an AdapTrans"):
        dstrf(Linear(F, n_lags=K), _x(), method="chain")
