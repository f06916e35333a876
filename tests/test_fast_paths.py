"""The faster forms of CCnorm and of the models' convolutions keep every value: outputs and
gradients against the previous implementation, in float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepstrf_utils import metrics as M
from deepstrf_utils.metrics import recording as MR
from deepstrf_utils.metrics.inputs import reject_inf
from deepstrf_utils.models import ConvNet2D, NetworkReceptiveField, fastconv, layers
from deepstrf_utils.models.fastconv import conv2d_forward_backward, inside_vmap, strf_by_lag_products
from deepstrf_utils.spectral import causal_filter_fft, fast_fft_length


def _recording(dtype=torch.float64, shape=(6, 40, 20, 150), seed=0):
    g = torch.Generator().manual_seed(seed)
    b, n, r, t = shape
    rate = torch.rand(b, n, 1, t, generator=g, dtype=torch.float64) * 3
    resp = torch.poisson(rate.expand(b, n, r, t).contiguous(), generator=g) + 5.0  # an offset: cancellation
    pred = rate[:, :, 0] + 0.5 * torch.rand(b, n, t, generator=g, dtype=torch.float64)
    return pred.to(dtype), resp.to(dtype)


def test_complete_recordings_keep_the_noise_estimator_values():
    """The complete layout (deviations per stimulus) against the trial-moment formulas that the
    structured layout keeps, on the same complete data, in float64; float32 stays close."""
    pred, resp = _recording()
    fast, moments = MR.Recording(resp), MR.Recording(resp, layout="structured")
    assert (fast.layout, moments.layout) == ("complete", "structured")
    for name in ("signal_power", "noise_power", "noise_of_mean", "p_ybar"):
        torch.testing.assert_close(getattr(fast, name), getattr(moments, name), rtol=1e-12, atol=0)
    d1, w = fast.deviation_sums
    d1_ref, w_ref = moments.deviation_sums
    torch.testing.assert_close(d1, d1_ref, rtol=0, atol=1e-9)
    torch.testing.assert_close(w, w_ref, rtol=1e-12, atol=0)
    cc64 = M.cc_norm(pred, resp)
    cc32 = M.cc_norm(pred.float(), resp.float())
    torch.testing.assert_close(cc32.double(), cc64, rtol=0, atol=2e-5)
    # and the definition (Schoppe et al. 2016, Sahani & Linden's SP with every repeat valid)
    y = resp.permute(1, 2, 0, 3).reshape(resp.shape[1], resp.shape[2], -1).numpy()
    p = pred.permute(1, 0, 2).reshape(pred.shape[1], -1).numpy()
    R = y.shape[1]
    sp = (y.sum(1).var(1) - y.var(2).sum(1)) / (R * (R - 1))
    cov = ((p - p.mean(1, keepdims=True)) * (y.mean(1) - y.mean(1).mean(1, keepdims=True))).mean(1)
    np.testing.assert_allclose(cc64.numpy(), cov / np.sqrt(p.var(1) * sp), rtol=1e-10)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_are_found_by_the_one_pass_check(value):
    pred, resp = _recording(shape=(2, 3, 4, 20))
    bad = resp.clone()
    bad[1, 2, 3, 4] = value
    with pytest.raises(ValueError, match=r"resp without \+-inf .*got 1 infinite"):
        M.cc_norm(pred, bad)
    bad[0, 0, 0, 0] = float("nan")  # NaN next to inf: still found
    with pytest.raises(ValueError, match=r"got 1 infinite"):
        M.cc_norm(pred, bad)
    bad[0, 0, 1, 0] = -value  # +inf and -inf: their sum is NaN, both are counted
    with pytest.raises(ValueError, match=r"got 2 infinite"):
        M.signal_power(bad)
    with pytest.raises(ValueError, match=r"got 2 infinite"):
        reject_inf(bad, "resp")
    huge = resp.float() * 1e36  # finite values whose sum overflows float32: not an error
    assert torch.isinf(huge.sum()) and torch.isfinite(huge).all()
    assert M.signal_power(huge).shape == (3,)


def _gradients(fn, *leaves, seed=5):
    out = fn(*leaves)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return out, torch.autograd.grad(out, leaves, g)


@pytest.mark.parametrize("b,c,f,t,u,k", [(1, 2, 34, 99, 20, 15), (3, 1, 8, 40, 4, 6), (2, 2, 5, 7, 10, 9)])
def test_strf_lag_products_equal_conv2d_values_and_gradients(b, c, f, t, u, k):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, c, f, t, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(u, c, f, k, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(u, generator=g, dtype=torch.float64, requires_grad=True)

    def conv2d(x, w, bias):  # the previous causal_strf_conv
        return F.conv2d(F.pad(x, (k - 1, 0)), torch.flip(w, dims=(-1,)), bias)[:, :, 0, :]

    out, grads = _gradients(strf_by_lag_products, x, w, bias)
    ref, grads_ref = _gradients(conv2d, x, w, bias)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for a, r in zip(grads, grads_ref):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
    assert fastconv.lag_products_pay_off(x, w) == (u <= c * f)
    torch.testing.assert_close(layers.causal_strf_conv(x, w, bias), ref, rtol=1e-12, atol=1e-12)


def test_stacked_units_keep_conv2d_inside_vmap():
    x = torch.rand(2, 1, 6, 30, dtype=torch.float64)
    weights = torch.randn(5, 3, 1, 6, 4, dtype=torch.float64)
    seen = []

    def unit(w):
        seen.append(inside_vmap(w) and not fastconv.lag_products_pay_off(x, w))
        return layers.causal_strf_conv(x, w)

    out = torch.func.vmap(unit)(weights)
    assert seen == [True] and not inside_vmap(x)
    for i in range(5):
        torch.testing.assert_close(out[i], strf_by_lag_products(x, weights[i]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("b,c,o,h,w,kh,kw", [(1, 2, 10, 34, 60, 6, 15), (3, 10, 4, 9, 20, 3, 7), (2, 1, 1, 5, 5, 5, 1)])
def test_conv2d_with_forward_convolutions_as_backward(b, c, o, h, w, kh, kw):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(o, c, kh, kw, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(o, generator=g, dtype=torch.float64, requires_grad=True)
    out, grads = _gradients(conv2d_forward_backward, x, weight, bias)
    ref, grads_ref = _gradients(F.conv2d, x, weight, bias)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    for a, r in zip(grads, grads_ref):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
    _, (gw,) = _gradients(lambda w_: conv2d_forward_backward(x.detach(), w_, None), weight)
    torch.testing.assert_close(gw, grads_ref[1], rtol=1e-12, atol=1e-12)


def _model_gradients(model, x):
    out = model(x)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype)
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad(out, params, g, allow_unused=True)  # the 2D-CNN's conv biases are constants
    return out, {n: v for n, v in zip(names, grads) if v is not None}


@pytest.mark.parametrize("name", ["NetworkReceptiveField", "ConvNet2D"])
def test_models_at_batch_one_keep_their_values_and_gradients(monkeypatch, name):
    """NRF + AdapTrans and the NS1 2D-CNN + AdapTrans (training mode, batch 1): outputs and every
    parameter's gradient against the previous conv2d paths, float64."""
    torch.manual_seed(0)
    if name == "NetworkReceptiveField":
        model = NetworkReceptiveField(34, n_hidden=20, n_lags=15, prefilter="adaptrans")
    else:
        model = ConvNet2D(34, kernel_size=(6, 15), prefilter="adaptrans")
    model = model.double().train()
    x = torch.rand(1, 1, 34, 120, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    if name == "ConvNet2D":  # the fast paths are the ones taken
        assert all(isinstance(c, fastconv.LeanConv2d) for c in model.convs) and model.conv_path("cpu", 1) == "conv"
    else:
        assert fastconv.lag_products_pay_off(model.prefilter(x), model.weight)
    out, grads = _model_gradients(model, x)
    monkeypatch.setattr(layers, "lag_products_pay_off", lambda *a: False)
    monkeypatch.setattr(fastconv, "conv2d_forward_backward", F.conv2d)
    ref, grads_ref = _model_gradients(model, x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert set(grads) == set(grads_ref)
    for key in grads:
        torch.testing.assert_close(grads[key], grads_ref[key], rtol=1e-10, atol=1e-12, msg=key)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_make_adamw_takes_the_fused_kernel_with_the_same_steps(dtype):
    """The library's AdamW (fused kernel on a CPU; two param groups: decay and the prefilter's
    learning rate) against torch's per-parameter loop with the same groups, over 30 steps."""
    from deepstrf_utils.training.optim import make_adamw

    torch.manual_seed(0)
    model = NetworkReceptiveField(6, n_hidden=3, n_lags=4, prefilter="adaptrans").to(dtype)
    twin = NetworkReceptiveField(6, n_hidden=3, n_lags=4, prefilter="adaptrans").to(dtype)
    twin.load_state_dict(model.state_dict())
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt, params, scales = make_adamw(model, 3e-3, 1e-2, prefilter_lr=1e-2)
    assert opt.defaults["fused"] and len(opt.param_groups) == len(scales) >= 2
    ref_opt, _, _ = make_adamw(twin, 3e-3, 1e-2, prefilter_lr=1e-2)
    for group in ref_opt.param_groups:
        group["fused"], group["foreach"] = None, False  # torch's single-tensor loop
    x = torch.rand(1, 1, 6, 50, generator=torch.Generator().manual_seed(3), dtype=dtype)
    y = torch.rand(1, 1, 50, generator=torch.Generator().manual_seed(4), dtype=dtype)
    for _ in range(30):
        for m, o in ((model, opt), (twin, ref_opt)):
            o.zero_grad(set_to_none=True)
            F.mse_loss(m(x), y).backward()
            o.step()
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert not torch.equal(p, start[name]), name  # every parameter moved
        torch.testing.assert_close(p, q, msg=name, **tol)


def _direct_filter(x, h):
    """The definition: ``y[b, c, f, t] = sum_j h[c, f, j] x[b, f, t - j]``, zero before the first bin."""
    t, k = x.shape[-1], h.shape[-1]
    xp = F.pad(x, (k - 1, 0))
    return sum(h[None, :, :, j, None] * xp[:, None, :, k - 1 - j: k - 1 - j + t] for j in range(k))


@pytest.mark.parametrize("b,c,f,t,k", [(1, 2, 34, 200, 131), (3, 2, 5, 40, 7), (2, 1, 3, 5, 9)])
def test_causal_filter_fft_values_and_gradients(b, c, f, t, k):
    """The frequency-domain filter bank and its own backward against the definition, float64;
    its forward is the previous AdapTrans FFT path's (the same transforms, bit for bit)."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(b, f, t, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.randn(c, f, k, generator=g, dtype=torch.float64, requires_grad=True)
    out, grads = _gradients(causal_filter_fft, x, h)
    ref, grads_ref = _gradients(_direct_filter, x, h)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for a, r in zip(grads, grads_ref):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
    n = fast_fft_length(t + k - 1)
    previous = torch.fft.irfft(torch.fft.rfft(x, n=n).unsqueeze(1) * torch.fft.rfft(h, n=n), n=n)[..., :t]
    assert torch.equal(out, previous)
    # one input without a gradient, and the backward differentiated again (second order)
    _, (gh,) = _gradients(lambda h_: causal_filter_fft(x.detach(), h_), h)
    torch.testing.assert_close(gh, grads_ref[1], rtol=1e-12, atol=1e-12)
    small = (x[:1, :2, :6].detach().requires_grad_(), h[:, :2, :3].detach().requires_grad_())
    assert torch.autograd.gradgradcheck(causal_filter_fft, small)


def test_causal_filter_fft_under_vmap_and_bad_shapes():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 30, generator=g, dtype=torch.float64)
    hs = torch.randn(3, 2, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)  # 3 units' kernels
    out = torch.func.vmap(lambda h_: causal_filter_fft(x, h_))(hs)
    grads = torch.func.vmap(torch.func.grad(lambda h_: causal_filter_fft(x, h_).square().sum()))(hs)
    for i in range(3):
        torch.testing.assert_close(out[i], _direct_filter(x, hs[i]), rtol=1e-12, atol=1e-12)
        (ref,) = torch.autograd.grad(_direct_filter(x, hs[i]).square().sum(), hs)
        torch.testing.assert_close(grads[i], ref[i], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"x \(B, F, T\) and h \(C, F, K\) with the same F, got \(2, 4, 30\) and \(2, 5, 6\)"):
        causal_filter_fft(x, torch.zeros(2, 5, 6, dtype=torch.float64))


def test_fused_adamw_steps_invalidate_the_adaptrans_evaluation_cache():
    """torch's fused AdamW kernel does not bump the parameters' version counters; make_adamw's
    step hook does, so AdapTrans' cached evaluation kernels follow every step (a stale cache
    scored validation sets with the kernels of an earlier step)."""
    from deepstrf_utils.training.optim import make_adamw

    torch.manual_seed(0)
    model = NetworkReceptiveField(6, n_hidden=3, n_lags=4, prefilter="adaptrans")
    x = torch.rand(1, 1, 6, 40, generator=torch.Generator().manual_seed(1))
    opt, _, _ = make_adamw(model, 1e-2, 0.0)
    for _ in range(3):
        with torch.no_grad():
            model.eval()(x)  # fills the cache
        model.train()
        opt.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        opt.step()
        with torch.no_grad():
            cached = model.eval()(x)
            model.prefilter.clear_cache()
            fresh = model(x)
        torch.testing.assert_close(cached, fresh, rtol=0, atol=0)
