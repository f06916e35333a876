"""Tests of deepstrf_utils.adaptrans: known answers from an independent numpy loop."""

import numpy as np
import pytest
import torch

from deepstrf_utils.adaptrans import (
    AdapTrans,
    WillmoreHighPass,
    adaptrans_filter,
    adaptrans_kernels,
    center_frequencies,
    willmore_tau_ms,
)




def reference_filter(x, a_on, a_off, w, K):
    """Direct transcription of the paper's equations, one band, replicate left padding.

    x: (T,) float64. Returns (on (T,), off (T,)).
    """
    T = len(x)
    xp = np.concatenate([np.full(K - 1, x[0]), x])
    on, off = np.zeros(T), np.zeros(T)
    for t in range(T):
        s_on = s_off = 0.0
        for k in range(1, K):
            s_on += a_on ** (k - 1) * xp[t + K - 1 - k]
            s_off += a_off ** (k - 1) * xp[t + K - 1 - k]
        c_on = 1.0 / sum(a_on ** k for k in range(K - 1))
        c_off = 1.0 / sum(a_off ** k for k in range(K - 1))
        on[t] = x[t] - w * c_on * s_on
        off[t] = c_off * s_off - w * x[t]
    return on, off


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.mark.parametrize("implementation", ["conv", "fft"])
def test_step_response_matches_equations(implementation):
    K, T, w = 25, 120, 0.75
    a_on, a_off = 0.8, 0.9
    x = np.zeros(T)
    x[20:70] = 1.0
    on_ref, off_ref = reference_filter(x, a_on, a_off, w, K)
    xt = torch.tensor(x, dtype=torch.float64).view(1, 1, 1, T)
    y = adaptrans_filter(xt, torch.tensor([a_on], dtype=torch.float64),
                         torch.tensor([a_off], dtype=torch.float64), w, K,
                         implementation=implementation)
    assert y.shape == (1, 2, 1, T)
    np.testing.assert_allclose(y[0, 0, 0].numpy(), on_ref, atol=1e-10)
    np.testing.assert_allclose(y[0, 1, 0].numpy(), off_ref, atol=1e-10)
    on, off = y[0, :, 0].numpy()
    # Figure 1B: ON jumps to 1 and decays to 1 - w; OFF dips to -w and relaxes to 1 - w;
    # at the step's end ON dips to -w and OFF jumps to +1, both decaying to 0.
    assert on[20] == pytest.approx(1.0) and off[20] == pytest.approx(-w)
    assert on[69] == pytest.approx(1 - w, abs=1e-12) and off[69] == pytest.approx(1 - w, abs=1e-12)
    assert on[70] == pytest.approx(-w) and off[70] == pytest.approx(1.0)
    assert abs(on[-1]) < 1e-12 and abs(off[-1]) < 1e-12
    # strictly monotone until the kernel (K - 1 = 24 past bins) lies inside the step
    assert np.all(np.diff(on[20:45]) < 0) and np.all(np.diff(off[20:45]) > 0)


def test_module_matches_reference_random_input():
    m = AdapTrans(3, dt_ms=5.0, tau_ms=[20.0, 40.0, 60.0], kernel_size=40).double()
    with torch.no_grad():
        m.logit_a_off.add_(torch.tensor([0.5, -0.3, 1.0], dtype=torch.float64))
        m.logit_w.add_(torch.tensor([-1.0, 0.2, 2.0], dtype=torch.float64))
    x = torch.rand(2, 1, 3, 90, dtype=torch.float64)
    y = m(x)
    for b in range(2):
        for f in range(3):
            on, off = reference_filter(x[b, 0, f].numpy(), m.a_on[f].item(), m.a_off[f].item(),
                                       m.w[f].item(), 40)
            np.testing.assert_allclose(y[b, 0, f].detach().numpy(), on, atol=1e-10)
            np.testing.assert_allclose(y[b, 1, f].detach().numpy(), off, atol=1e-10)


def test_kernels_structure():
    k = adaptrans_kernels(torch.tensor([0.5, 0.9]), torch.tensor([0.7, 0.95]), 0.6, 10)
    assert k.shape == (2, 2, 10)
    on, off = k
    assert torch.allclose(on[:, 0], torch.ones(2)) and torch.allclose(off[:, 0], torch.full((2,), -0.6))
    assert torch.allclose(on[:, 1:].sum(-1), torch.full((2,), -0.6))
    assert torch.allclose(off[:, 1:].sum(-1), torch.ones(2))
    assert torch.allclose(on[0, 2] / on[0, 1], torch.tensor(0.5))
    assert torch.allclose(off[1, 2] / off[1, 1], torch.tensor(0.95))


@pytest.mark.parametrize("implementation", ["conv", "fft"])
def test_constant_input_sustained_from_first_bin(implementation):
    m = AdapTrans(4, implementation=implementation)
    level = torch.tensor([0.5, 1.0, 2.0, 3.0]).view(1, 1, 4, 1)
    y = m(level.expand(2, 1, 4, 60))
    expected = (0.25 * level).expand(2, 2, 4, 60)
    assert torch.allclose(y, expected, atol=1e-6)


@pytest.mark.parametrize("implementation", ["conv", "fft"])
def test_causality(implementation):
    m = AdapTrans(5, kernel_size=30, implementation=implementation)
    x = torch.rand(2, 1, 5, 80)
    x2 = x.clone()
    x2[..., 41:] += torch.randn(2, 1, 5, 39)
    y, y2 = m(x), m(x2)
    if implementation == "conv":
        assert torch.equal(y[..., :41], y2[..., :41])
    else:  # exact in exact arithmetic; the FFT's float rounding spreads ~1e-7 over all bins
        assert (y[..., :41] - y2[..., :41]).abs().max().item() < 1e-6
    assert not torch.allclose(y[..., 41:], y2[..., 41:])


def test_conv_and_fft_agree():
    x = torch.rand(3, 1, 34, 999)
    outs = [AdapTrans(34, implementation=i, rectify=None)(x) for i in ("conv", "fft")]
    assert (outs[0] - outs[1]).abs().max().item() < 1e-5
    mr = AdapTrans(34, rectify="relu", kernel_size=300)
    mr.implementation = "conv"
    yc = mr(x)
    mr.implementation = "fft"
    assert (yc - mr(x)).abs().max().item() < 1e-5
    assert (yc >= 0).all()


def test_gradients_reach_all_parameters():
    m = AdapTrans(6, kernel_size=50)
    x = torch.rand(2, 1, 6, 100)
    x[..., 30:60] += 2.0
    m(x).pow(2).sum().backward()
    for name in ("logit_a_on", "logit_a_off", "logit_w"):
        g = getattr(m, name).grad
        assert g is not None and torch.isfinite(g).all() and (g.abs() > 0).all(), name


def test_parameters_stay_in_range_under_huge_steps():
    m = AdapTrans(8, kernel_size=60)
    opt = torch.optim.SGD(m.parameters(), lr=1e3)
    x = torch.rand(4, 1, 8, 150) * 5
    target = torch.randn(4, 2, 8, 150) * 10
    for _ in range(30):
        opt.zero_grad()
        loss = (m(x) - target).pow(2).mean()
        loss.backward()
        opt.step()
        for v in (m.a_on, m.a_off, m.w):
            assert torch.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()
        assert torch.isfinite(m.kernels()).all()
        assert torch.isfinite(m(x)).all()
    assert torch.isfinite(loss)


def test_a_on_and_a_off_move_apart():
    T, K = 200, 60
    x = torch.zeros(4, 1, 2, T)
    for b in range(4):
        x[b, 0, :, 20 + 10 * b: 90 + 15 * b] = 1.0 + b
    a_on_t, a_off_t, w_t = torch.tensor([0.80, 0.85]), torch.tensor([0.95, 0.97]), torch.tensor([0.5, 0.9])
    target = adaptrans_filter(x, a_on_t, a_off_t, w_t, K)
    m = AdapTrans(2, dt_ms=5.0, tau_ms=40.0, kernel_size=K)  # a_on = a_off = 0.8825 initially
    assert torch.equal(m.a_on, m.a_off)
    opt = torch.optim.Adam(m.parameters(), lr=0.1)
    for _ in range(100):
        opt.zero_grad()
        (m(x) - target).pow(2).mean().backward()
        opt.step()
    assert (m.a_off - m.a_on > 0.08).all()
    assert torch.allclose(m.a_on, a_on_t, atol=0.02)
    assert torch.allclose(m.a_off, a_off_t, atol=0.02)
    assert torch.allclose(m.w, w_t, atol=0.03)


def test_kernel_length_and_initial_values():
    m = AdapTrans(34, dt_ms=5.0)
    assert m.kernel_size == 131
    assert m.kernels().shape == (2, 34, 131)
    assert m.out_channels == 2
    assert m.cf_hz.shape == (34,) and m.cf_hz[0] == pytest.approx(500) and m.cf_hz[-1] == pytest.approx(20000)
    assert m.tau_on_ms[0].item() == pytest.approx(216.6, abs=0.05)
    assert m.tau_off_ms[-1].item() == pytest.approx(48.4, abs=0.05)
    assert m.a_on[0].item() == pytest.approx(np.exp(-5.0 / 216.608), abs=1e-6)
    assert torch.allclose(m.w, torch.full((34,), 0.75))
    assert AdapTrans(34, dt_ms=1.0).kernel_size == 651
    assert AdapTrans(3, kernel_size=17).kernel_size == 17
    assert AdapTrans(2, tau_ms=[10.0, 20.0], dt_ms=1.0).kernel_size == 61
    assert "kernel_size=131" in repr(m)


def test_center_frequencies_and_tau():
    np.testing.assert_allclose(willmore_tau_ms([500.0, 20000.0]), [216.6, 48.4], atol=0.01)
    for scale in ("mel", "log", "greenwood"):
        cf = center_frequencies(500, 20000, 34, scale)
        assert cf.shape == (34,) and np.all(np.diff(cf) > 0)
        assert cf[0] == pytest.approx(500) and cf[-1] == pytest.approx(20000)
    np.testing.assert_allclose(center_frequencies(500, 20000, 3, "log"), [500, np.sqrt(500 * 20000), 20000])
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    assert np.allclose(np.diff(mel(center_frequencies(500, 20000, 10, "mel"))), (mel(20000) - mel(500)) / 9)
    gw_x = lambda f: np.log10(f / 165.4 + 0.88) / 2.1  # noqa: E731
    assert np.allclose(np.diff(gw_x(center_frequencies(500, 20000, 10, "greenwood"))),
                       (gw_x(20000) - gw_x(500)) / 9)
    with pytest.raises(ValueError, match="scale"):
        center_frequencies(scale="bark")
    with pytest.raises(ValueError, match="min_freq"):
        center_frequencies(2000, 1000)


def test_frozen_has_no_trainable_parameters():
    m = AdapTrans(10, learnable=False)
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == 0
    assert sum(p.numel() for p in AdapTrans(10).parameters() if p.requires_grad) == 30
    assert set(m.state_dict()) == {"logit_a_on", "logit_a_off", "logit_w"}


def test_eval_cache_is_invalidated():
    m = AdapTrans(4, kernel_size=20)
    x = torch.rand(2, 1, 4, 50)
    with torch.no_grad():
        y1 = m(x)
        assert torch.equal(m(x), y1)
        m.logit_w.add_(1.0)  # in-place update, like an optimiser step
        y2 = m(x)
    assert not torch.allclose(y1, y2)
    assert torch.allclose(y2, m(x).detach(), atol=1e-6)  # same as the uncached, grad-enabled path
    m2 = AdapTrans(4, kernel_size=20)
    with torch.no_grad():
        m2(x)
    m2.load_state_dict(m.state_dict())
    with torch.no_grad():
        assert torch.allclose(m2(x), y2, atol=1e-6)
        assert m2(x.double()).dtype == torch.float64
        y3 = m2(x)
        m2.logit_a_on = torch.nn.Parameter(m2.logit_a_on.detach() + 1.0)  # replaced parameter
        y4 = m2(x)
        assert not torch.allclose(y3, y4)
        m2.logit_a_on.data.add_(1.0)  # bypasses the version counter: clear_cache() documented
        m2.clear_cache()
        assert not torch.allclose(m2(x), y4)
    with torch.no_grad():
        assert torch.allclose(m2(x), m2.train()(x).detach())


def test_willmore_high_pass():
    m = WillmoreHighPass(34)
    x = torch.rand(3, 1, 34, 200)
    y = m(x)
    assert y.shape == (3, 1, 34, 200) and (y >= 0).all()
    assert m.out_channels == 1 and len(list(m.parameters())) == 0
    ref = adaptrans_filter(x, torch.tensor(np.exp(-5.0 / willmore_tau_ms(m.cf_hz)), dtype=torch.float32),
                           torch.tensor(np.exp(-5.0 / willmore_tau_ms(m.cf_hz)), dtype=torch.float32),
                           1.0, 131)
    assert torch.allclose(y[:, 0], torch.relu(ref[:, 0]), atol=1e-5)
    assert torch.allclose(m(torch.full((1, 1, 34, 30), 2.0)), torch.zeros(1, 1, 34, 30), atol=1e-5)


@pytest.mark.parametrize("shape", [(8, 34, 999), (8, 2, 34, 999), (8, 1, 33, 999)])
def test_wrong_shape_raises(shape):
    with pytest.raises(ValueError, match=r"\(B, 1, F, T\)"):
        AdapTrans(34)(torch.zeros(shape))
    with pytest.raises(ValueError, match=r"\(B, 1, F, T\)"):
        WillmoreHighPass(34)(torch.zeros(shape))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="rectify"):
        AdapTrans(4, rectify="sigmoid")
    with pytest.raises(ValueError, match="implementation"):
        AdapTrans(4, implementation="iir")
    with pytest.raises(ValueError, match="cf_hz"):
        AdapTrans(4, cf_hz=[500, 1000])
    with pytest.raises(ValueError, match="tau_ms"):
        AdapTrans(4, tau_ms=[10.0, 20.0])
    with pytest.raises(ValueError, match="kernel_size"):
        adaptrans_kernels([0.5], [0.5], 0.5, 1)
    with pytest.raises(ValueError, match="a_on"):
        adaptrans_kernels([1.5], [0.5], 0.5, 10)


@pytest.mark.parametrize("implementation", ["conv", "fft"])
def test_gradcheck_functional(implementation):
    x = torch.rand(2, 1, 2, 12, dtype=torch.float64, requires_grad=True)
    a_on = torch.tensor([0.6, 0.8], dtype=torch.float64, requires_grad=True)
    a_off = torch.tensor([0.7, 0.9], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.5, 0.75], dtype=torch.float64, requires_grad=True)
    f = lambda x, a1, a2, w: adaptrans_filter(x, a1, a2, w, 5, implementation=implementation)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, a_on, a_off, w))
