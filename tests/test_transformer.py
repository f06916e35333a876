"""Tests of the causal Transformer core: blockwise banded attention, causality across blocks,
the window bound, shapes and counts, composition with the readouts, dSTRFs, and a fit."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepstrf_utils.interpret.dstrf import dstrf, receptive_field
from deepstrf_utils.models import (
    MultiSessionModel,
    StateGainModel,
    Transformer,
    banded_attention,
    build_model,
    count_parameters,
)

F_BANDS = 8


def _dense_reference(q, k, v, window, lag_bias=None):
    """The same attention with a dense (T, T) banded causal mask: the definition."""
    t = q.shape[-2]
    pos = torch.arange(t)
    lag = pos[:, None] - pos[None, :]
    allowed = (lag >= 0) & (lag < window)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if lag_bias is not None:
        scores = scores + lag_bias[:, lag.clamp(0, window - 1)][None]
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v


@pytest.mark.parametrize("t,window", [(1, 4), (3, 4), (8, 4), (37, 5), (40, 1), (12, 40)])
@pytest.mark.parametrize("bias", [False, True])
def test_blockwise_attention_equals_dense_banded_mask_in_float64(t, window, bias):
    g = torch.Generator().manual_seed(t * 100 + window)
    q, k, v = (torch.randn(2, 3, t, 4, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(3))
    lag_bias = torch.randn(3, window, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    out = banded_attention(q, k, v, window, lag_bias)
    ref = _dense_reference(q, k, v, window, lag_bias)
    assert out.shape == (2, 3, t, 4)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn(out.shape, dtype=torch.float64, generator=g)
    leaves = [q, k, v] + ([lag_bias] if bias else [])
    grads = torch.autograd.grad((out * w).sum(), leaves)
    grads_ref = torch.autograd.grad((ref * w).sum(), leaves)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_blockwise_attention_cost_is_linear_in_time():
    """50,000 bins: a dense (T, T) mask would hold 2.5e9 entries (10 GB); blocks hold 2 W per bin."""
    q = torch.randn(1, 1, 50_000, 4)
    out = banded_attention(q, q, q, 4)
    assert out.shape == q.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[..., :200, :], _dense_reference(q[..., :200, :], q[..., :200, :],
                                                                   q[..., :200, :], 4), rtol=1e-5, atol=1e-6)


def _model(prefilter=None, positions="rotary", window=5, n_layers=2, seed=0, **kw):
    torch.manual_seed(seed)
    return Transformer(F_BANDS, n_neurons=3, window=window, patch=4, embedding=4, n_heads=2, n_layers=n_layers,
                       positions=positions, prefilter=prefilter, **kw)


@pytest.mark.parametrize("positions", ["rotary", "learned", "none"])
@pytest.mark.parametrize("t0", [4, 5, 6, 13, 29])  # block boundaries at multiples of the window (5)
def test_causal_across_window_blocks(positions, t0):
    """Changing the input from t0 on leaves every output before t0 bit for bit unchanged,
    wherever t0 falls relative to the attention blocks, in train and eval mode."""
    model = _model(positions=positions)
    with torch.no_grad():  # the learned lag bias starts at 0: move it so that it matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    x = torch.rand(2, 1, F_BANDS, 31, generator=torch.Generator().manual_seed(1))
    x2 = x.clone()
    x2[..., t0:] = 3 * torch.rand(x[..., t0:].shape, generator=torch.Generator().manual_seed(2))
    for mode in (model.eval, model.train):
        mode()
        with torch.no_grad():
            y, y2 = model(x), model(x2)
        assert torch.equal(y[..., :t0], y2[..., :t0])
        assert (y[..., t0:] - y2[..., t0:]).abs().max() > 1e-4


@pytest.mark.parametrize("n_layers", [1, 2])
def test_the_window_bounds_the_context(n_layers):
    """An input at bin t0 reaches the outputs t0 .. t0 + n_layers (W - 1) and no later one."""
    model = _model(n_layers=n_layers).eval()
    rf = model.core_receptive_field
    assert rf == n_layers * 4 + 1 and receptive_field(model) == {"prefilter": 1, "core": rf, "total": rf}
    x = torch.rand(1, 1, F_BANDS, 40, generator=torch.Generator().manual_seed(3))
    x2 = x.clone()
    t0 = 7
    x2[..., t0] += 2.0
    with torch.no_grad():
        diff = (model(x) - model(x2)).abs().amax(dim=(0, 1))
    assert diff[t0 + rf - 1] > 1e-6 and torch.all(diff[t0 + rf:] < 1e-6) and torch.all(diff[:t0] == 0)


def test_shapes_config_and_bad_arguments():
    model = _model("adaptrans")
    y = model(torch.rand(3, 1, F_BANDS, 17))
    assert y.shape == (3, 3, 17) and model.in_channels == 2
    assert model.forward_core(model.prefilter(torch.rand(3, 1, F_BANDS, 17))).shape == (3, 8, 17)
    cfg = Transformer(34, window=64).config
    assert cfg["patch"] == 34 and cfg["feedforward"] == 4 * 48 and cfg["window"] == 64
    with pytest.raises(ValueError, match="patch to divide n_bands=8"):
        Transformer(F_BANDS, patch=3)
    with pytest.raises(ValueError, match="positions in"):
        Transformer(F_BANDS, positions="absolute")
    with pytest.raises(ValueError, match="multiple of n_heads=3"):
        Transformer(F_BANDS, embedding=4, n_heads=3)
    with pytest.raises(ValueError, match="multiple of n_heads=2"):  # rotary needs an even head width
        Transformer(F_BANDS, embedding=6, patch=8, n_heads=2)
    with pytest.raises(ValueError, match=r"window >= 1 \(a positive integer\), got 0"):
        Transformer(F_BANDS, window=0)
    with pytest.raises(ValueError, match=r"\(B, 1, F, T\) with F=8"):
        model(torch.rand(2, 1, F_BANDS + 1, 10))


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_build_model_round_trip_with_adaptrans(positions):
    model = _model("adaptrans", positions=positions, dropout=0.1).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    rebuilt = build_model("Transformer", **json.loads(json.dumps(model.config)))
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    x = torch.rand(2, 1, F_BANDS, 23)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))
    assert rebuilt.config == model.config


def test_parameter_counts():
    # NAT4 PEG, the scale of upstream's population Transformer (28,437 per neuron, whose output
    # sigmoid has 4 parameters): patches 6 x 16 -> d = 48, one layer, one head
    peg = Transformer(18, patch=6, embedding=16, window=32, dt_ms=10.0)
    d, ff = 48, 192
    embed = 6 * 16 + 16
    block = (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * 2 * d
    assert count_parameters(peg) == embed + block + (d + 1) + 3 == 28_436
    learned = Transformer(18, patch=6, embedding=16, window=32, n_heads=2, n_layers=3, positions="learned")
    assert count_parameters(learned) == embed + 3 * (block + 2 * 32) + d + 1 + 3
    assert count_parameters(Transformer(18, n_neurons=5, patch=6, embedding=16, prefilter="adaptrans")) == (
        2 * 6 * 16 + 16 + block + 5 * (d + 1 + 3) + 3 * 18)


def test_composes_with_session_and_state_readouts():
    model = _model("adaptrans").eval()
    x = torch.rand(2, 1, F_BANDS, 19)
    multi = MultiSessionModel.from_model(model, session="a").eval()
    with torch.no_grad():
        torch.testing.assert_close(multi(x, session="a"), model(x))
    multi.add_session("b", 4)
    assert multi(x, session="b").shape == (2, 4, 19)
    rebuilt = build_model("MultiSessionModel", **json.loads(json.dumps(multi.config)))
    rebuilt.load_state_dict(multi.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x, session="b"), multi(x, session="b"))
    readout = model.linear_readout()
    with torch.no_grad():
        torch.testing.assert_close(readout(model.forward_core(model.prefilter(x))), model(x))
    gain = StateGainModel("Transformer", model.config, n_states=1)
    assert gain(x, state=torch.zeros(2, 1, 19)).shape == (2, 3, 19)


def test_dstrf_is_exact_through_the_window_and_the_prefilter():
    """The dSTRF covers window + prefilter taps - 1 lags and equals one backward pass per bin."""
    model = _model("adaptrans", window=4, n_layers=1, prefilter_kwargs={"kernel_size": 7}).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.qkv.weight.mul_(3.0)  # sharper attention: a stronger test of the window
    rf = receptive_field(model)
    assert rf == {"prefilter": 7, "core": 4, "total": 10}
    x = torch.rand(F_BANDS, 45, generator=torch.Generator().manual_seed(4))
    d = dstrf(model, x, batch_size=7)
    assert d.shape == (3, 45, F_BANDS, 10)
    for n, t in [(0, 2), (1, 9), (2, 27), (0, 44)]:
        xg = x[None, None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xg)[0, n, t], xg)
        g = g[0, 0]
        assert torch.all(g[:, : max(t - 9, 0)].abs() < 1e-7)  # nothing beyond the receptive field (FFT rounding)
        ref = torch.zeros(F_BANDS, 10)
        for k in range(min(10, t + 1)):
            ref[:, k] = g[:, t - k]
        torch.testing.assert_close(d[n, t], ref, rtol=1e-4, atol=1e-6)
    direct = dstrf(model, x, method="direct", times=range(0, 45, 3))
    torch.testing.assert_close(direct, d[:, ::3], rtol=1e-4, atol=1e-6)


def test_fit_learns_on_a_tiny_synthetic_set():
    """fit's defaults (AdamW for attention cores, see training.options) learn the synthetic neurons."""
    from deepstrf_utils.datasets import load_dataset
    from deepstrf_utils.training import evaluate, fit

    data = load_dataset("synthetic", n_neurons=2, n_clips=10, clip_s=2.0, n_repeats=6, seed=3, n_bands=16)
    train, val, test = data.split(seed=0)
    torch.manual_seed(0)
    model = Transformer(data.n_bands, n_neurons=2, window=16, patch=8, embedding=8, dt_ms=data.dt_ms,
                        prefilter="adaptrans", prefilter_kwargs={"cf_hz": list(data.cf_hz)})
    before = evaluate(model, test)["cc_norm"].to_numpy()
    result = fit(model, train, val, progress=False)
    after = evaluate(model, test)["cc_norm"].to_numpy()
    assert result.optimizer == "adamw" and result.train_chunk is None and result.stopped_early
    assert np.all(np.isfinite(after)) and np.mean(after) > 0.55 and np.mean(after) > np.mean(before) + 0.3


def test_most_exciting_input_through_autograd():
    """MEI of a Transformer + AdapTrans neuron over its receptive field: the ascent raises the
    response above that of the mean input and of its random starts, within the constraints."""
    from deepstrf_utils.interpret.mei import most_exciting_input

    model = _model("adaptrans", window=4, n_layers=1, prefilter_kwargs={"kernel_size": 7}).eval()
    R = receptive_field(model)["total"]
    res = most_exciting_input(model, neuron=1, n_bins=R, energy=2.0, baseline=0.5, value_range=(0.0, 1.0),
                              n_starts=2, steps=40)
    assert res.input.shape == (F_BANDS, R) and torch.isfinite(res.input).all()
    assert float(res.input.min()) >= 0.0 and float(res.input.max()) <= 1.0
    assert np.all(res.trajectory[:, -1] > res.trajectory[:, 0])
    with torch.no_grad():
        flat = float(model(torch.full((1, 1, F_BANDS, R), 0.5))[0, 1, -1])
    assert res.response[res.best] > flat
