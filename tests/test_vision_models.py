"""Visual models: AdapTrans per pixel, shapes, causality, rebuilding, checkpoints, readouts, bad inputs."""
import numpy as np
import pytest
import torch

from deepstrf_utils.adaptrans import AdapTrans
from deepstrf_utils.models import (VISUAL_MODELS, GaussianReadout, PixelAdapTrans, RecurrentVisualNet,
                                   SpatioTemporalCNN, VisualLinearNonlinear, build_model)
from deepstrf_utils.training import load_checkpoint, save_checkpoint

FRAME = (1, 8, 9)
SMALL = {
    "VisualLinearNonlinear": {"n_lags": 4},
    "SpatioTemporalCNN": {"channels": (3, 2), "spatial_kernels": (3, 3), "temporal_kernels": (3, 2)},
    "RecurrentVisualNet": {"channels": (3,), "spatial_kernels": (3,), "temporal_kernels": (2,), "pool": 2,
                           "n_embed": 5, "n_hidden": 6, "n_states": 2},
}
CASES = [(name, pre, readout) for name in VISUAL_MODELS for pre in (None, "adaptrans")
         for readout in (("gaussian", "factorised") if name == "SpatioTemporalCNN" else (None,))]


def make(name, prefilter=None, readout=None, n_neurons=3, frame=FRAME):
    kw = dict(SMALL[name])
    if readout:
        kw["readout"] = readout
    pk = {"tau_ms": 60.0} if prefilter else None  # short AdapTrans kernel: 3 x 60 / 25 + 1 = 9 taps
    torch.manual_seed(0)
    return VISUAL_MODELS[name](frame, n_neurons=n_neurons, prefilter=prefilter, prefilter_kwargs=pk, dt_ms=25.0, **kw)


def call(model, x):
    if getattr(model, "n_states", 0):
        return model(x, state=torch.linspace(0, 1, x.shape[-1]).expand(x.shape[0], model.n_states, -1).contiguous())
    return model(x)


def test_visual_models_are_registered_apart_from_the_auditory_ones():
    from deepstrf_utils.models import MODELS

    assert set(VISUAL_MODELS) == {"VisualLinearNonlinear", "SpatioTemporalCNN", "RecurrentVisualNet"}
    assert not set(VISUAL_MODELS) & set(MODELS)


@pytest.mark.parametrize("per_pixel", [True, False])
def test_pixel_adaptrans_is_adaptrans_on_the_reshaped_bands(per_pixel):
    """Per pixel: the movie reshaped to (B, 1, C H W, T) through AdapTrans with those bands;
    shared: every pixel's time course through a one-band AdapTrans. ON channels first."""
    torch.manual_seed(1)
    frame = (2, 3, 4)
    pre = PixelAdapTrans(frame, dt_ms=10.0, tau_ms=50.0, per_pixel=per_pixel, rectify="relu")
    with torch.no_grad():  # distinct parameters per pixel, so that a wrong reshape shows
        for p in pre.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x = torch.rand(2, *frame, 30)
    y = pre(x)
    assert y.shape == (2, 4, 3, 4, 30)
    bands = pre.adaptrans
    if per_pixel:
        ref = bands(x.reshape(2, 1, 24, 30)).reshape(2, 2, 2, 3, 4, 30)
    else:
        ref = bands(x.reshape(48, 1, 1, 30)).reshape(2, 2, 3, 4, 2, 30).permute(0, 4, 1, 2, 3, 5)
    torch.testing.assert_close(y, ref.reshape(2, 4, 3, 4, 30), rtol=0, atol=0)
    # the ON channel of input channel 1 at pixel (2, 3) is AdapTrans of that pixel alone
    one = AdapTrans(1, dt_ms=10.0, tau_ms=50.0, rectify="relu", kernel_size=pre.kernel_size)
    k = 1 * 12 + 2 * 4 + 3 if per_pixel else 0
    with torch.no_grad():
        for name in ("logit_a_on", "logit_a_off", "logit_w"):
            getattr(one, name).copy_(getattr(bands, name)[k:k + 1])
    torch.testing.assert_close(y[:, [1, 3], 2, 3], one(x[:, 1:2, 2, 3][:, :, None])[:, :, 0], rtol=1e-5, atol=1e-6)
    assert tuple(pre.tau_on_ms.shape) == (frame if per_pixel else ())


@pytest.mark.parametrize("name,prefilter,readout", CASES)
def test_shapes_and_causality(name, prefilter, readout):
    """Output (B, N, T); changing frames from t0 on leaves every output before t0 unchanged
    (and changes some output from t0 on: the check can fail)."""
    model = make(name, prefilter, readout).eval()
    torch.manual_seed(2)
    x = torch.rand(2, *FRAME, 25)
    y = call(model, x)
    assert y.shape == (2, 3, 25) and torch.isfinite(y).all()
    t0 = 13
    x2 = x.clone()
    x2[..., t0:] = torch.rand_like(x2[..., t0:])
    y2 = call(model, x2)
    torch.testing.assert_close(y2[..., :t0], y[..., :t0], rtol=0, atol=0)
    assert (y2[..., t0:] - y[..., t0:]).abs().max() > 1e-6


@pytest.mark.parametrize("name,prefilter,readout", CASES)
def test_build_model_round_trip_and_checkpoint(tmp_path, name, prefilter, readout):
    model = make(name, prefilter, readout).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(2, *FRAME, 20)
    again = build_model(name, **model.config)
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(call(again.eval(), x), call(model, x), rtol=0, atol=0)
    assert again.config == model.config
    save_checkpoint(tmp_path / "m.pt", model, seed=3)
    loaded, info = load_checkpoint(tmp_path / "m.pt")
    assert type(loaded) is type(model) and info == {"seed": 3}
    torch.testing.assert_close(call(loaded, x), call(model, x), rtol=0, atol=0)


def test_config_holds_the_effective_prefilter_values():
    model = make("SpatioTemporalCNN", "adaptrans", "gaussian")
    kw = model.config["prefilter_kwargs"]
    assert kw["rectify"] == "relu" and kw["kernel_size"] == 9 and kw["per_pixel"] is True and kw["tau_ms"] == 60.0
    assert model.config["frame_shape"] == [1, 8, 9] and model.prefilter.out_channels == 2


def test_gaussian_readout_gradient_with_respect_to_position():
    """d output / d position by autograd equals central finite differences (float64), and is not zero."""
    torch.manual_seed(3)
    readout = GaussianReadout(3, (7, 9), 4, init_sigma=0.25).double()
    h = torch.randn(2, 3, 7, 9, 5, dtype=torch.float64)
    out = readout(h).sum()
    (grad,) = torch.autograd.grad(out, readout.position)
    num = torch.zeros_like(grad)
    eps = 1e-6
    with torch.no_grad():
        for i in range(4):
            for j in range(2):
                readout.position[i, j] += eps
                up = readout(h).sum()
                readout.position[i, j] -= 2 * eps
                down = readout(h).sum()
                readout.position[i, j] += eps
                num[i, j] = (up - down) / (2 * eps)
    torch.testing.assert_close(grad, num, rtol=1e-5, atol=1e-8)
    assert grad.abs().min() > 1e-6
    # the narrowest window (half a pixel) is centred on the pixel at its position
    with torch.no_grad():
        readout.raw_sigma.fill_(-20.0)
        readout.position.copy_(torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [-1.0, 1.0]], dtype=torch.float64))
    masks = readout.masks().detach()
    peaks = [np.unravel_index(int(m.argmax()), (7, 9)) for m in masks]
    assert peaks == [(0, 0), (6, 8), (3, 4), (6, 0)] and float(masks.flatten(1).max(1).values.min()) > 0.5
    torch.testing.assert_close(readout.position_pixels()[1], torch.tensor([8.0, 6.0], dtype=torch.float64))


def test_visual_linear_rf_is_the_weight_in_lag_order():
    model = VisualLinearNonlinear((1, 4, 5), n_neurons=2, n_lags=3, nonlinearity=None)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        model.weight[1, 0, 2, 3, 2] = 1.5  # neuron 1 reads pixel (y=2, x=3) two frames back
    x = torch.zeros(1, 1, 4, 5, 10)
    x[0, 0, 2, 3, 4] = 1.0
    with torch.no_grad():
        y = model(x)[0]
    assert y[1].nonzero().flatten().tolist() == [6] and float(y[1, 6]) == 1.5 and float(y[0].abs().sum()) == 0.0


def test_bad_inputs_raise_clear_errors():
    model = make("SpatioTemporalCNN", None, "gaussian")
    with pytest.raises(ValueError, match=r"\(B, C, H, W, T\) with \(C, H, W\)=\(1, 8, 9\)"):
        model(torch.rand(2, 1, 8, 30))
    with pytest.raises(ValueError, match=r"\(B, C, H, W, T\)"):
        model(torch.rand(2, 1, 9, 8, 30))
    with pytest.raises(ValueError, match="frame_shape as \\(C, H, W\\)"):
        SpatioTemporalCNN((8, 9), 2)
    with pytest.raises(ValueError, match="readout in"):
        SpatioTemporalCNN(FRAME, 2, readout="mask")
    with pytest.raises(ValueError, match="odd spatial kernel"):
        SpatioTemporalCNN(FRAME, 2, spatial_kernels=(4,))
    with pytest.raises(ValueError, match="one length"):
        SpatioTemporalCNN(FRAME, 2, channels=(2, 2), spatial_kernels=(3,), temporal_kernels=(2,))
    with pytest.raises(ValueError, match="prefilter None, 'adaptrans' or an nn.Module"):
        SpatioTemporalCNN(FRAME, 2, prefilter="willmore")
    with pytest.raises(ValueError, match="tau_ms as a scalar"):
        PixelAdapTrans(FRAME, tau_ms=np.ones((2, 2)))
    rnn = make("RecurrentVisualNet")
    x = torch.rand(1, *FRAME, 6)
    with pytest.raises(ValueError, match="expected a state \\(B, S, T\\) with S=2"):
        rnn(x)
    with pytest.raises(ValueError, match=r"\(B, S, T\)=\(1, 2, 6\)"):
        rnn(x, state=torch.zeros(1, 2, 5))
    with pytest.raises(ValueError, match="n_states=0"):
        RecurrentVisualNet(FRAME, 2, n_states=0)(x, state=torch.zeros(1, 1, 6))


@pytest.mark.parametrize("name", ["VisualLinearNonlinear", "SpatioTemporalCNN", "RecurrentVisualNet"])
def test_movies_are_checked_strictly(name):
    """As for spectrograms (shapes.check_stimulus): an empty batch, a NaN / inf value (named by
    movie, row, column and frame), a dtype other than the parameters' (TypeError, nothing cast)
    and a non-tensor are refused with what was expected."""
    model = make(name)
    state = (lambda b, t: {"state": torch.zeros(b, 2, t)}) if name == "RecurrentVisualNet" else (lambda b, t: {})
    with pytest.raises(ValueError, match=r"at least one movie \(B >= 1\)"):
        model(torch.rand(0, *FRAME, 6), **state(0, 6))
    x = torch.rand(2, *FRAME, 6)
    x[1, 0, 3, 4, 5] = float("nan")
    with pytest.raises(ValueError, match=r"finite movie .* NaN in movie 1 at row 3, column 4, frame 5"):
        model(x, **state(2, 6))
    x[1, 0, 3, 4, 5] = float("inf")
    with pytest.raises(ValueError, match="got inf in movie 1"):
        model(x, **state(2, 6))
    with pytest.raises(TypeError, match=r"dtype float32, got torch.float64: convert it with x.float\(\)"):
        model(torch.rand(2, *FRAME, 6, dtype=torch.float64), **state(2, 6))
    with pytest.raises(TypeError, match="torch.Tensor movie"):
        model(np.zeros((2, *FRAME, 6), dtype=np.float32), **state(2, 6))
    model.double()
    assert model(torch.rand(2, *FRAME, 6, dtype=torch.float64), **{k: v.double() for k, v in state(2, 6).items()}).dtype == torch.float64


def test_pixel_adaptrans_alone_computes_in_the_movie_dtype():
    pre = PixelAdapTrans(FRAME, dt_ms=25.0)
    assert pre(torch.rand(1, *FRAME, 5, dtype=torch.float64)).shape == (1, 2, *FRAME[1:], 5)
    with pytest.raises(TypeError, match="float32 or float64"):
        pre(torch.rand(1, *FRAME, 5).half())
