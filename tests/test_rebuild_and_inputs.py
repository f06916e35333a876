"""A saved model rebuilds itself exactly (every effective constructor value in ``config``),
gradient STRFs with respect to the prefilter output of every model, and one rule for
infinite responses (rejected at the boundary)."""

import numpy as np
import pytest
import torch

from deepstrf_utils import adaptrans
from deepstrf_utils.models import base as models_base
from deepstrf_utils.models import build_model
from deepstrf_utils.training import load_checkpoint, save_checkpoint


# ----------------------------------------------------------------------------- item 6
@pytest.mark.parametrize("name,kwargs", [("LinearNonlinear", {"n_lags": 6}), ("ConvNet2D", {"kernel_size": (3, 5)}),
                                         ("StateNet", {})])
@pytest.mark.parametrize("prefilter", ["adaptrans", "willmore"])
def test_checkpoint_rebuilds_after_module_defaults_change(tmp_path, monkeypatch, name, kwargs, prefilter):
    """A checkpoint holds every effective constructor value: changing the model-level AdapTrans
    rectification default, the Willmore time constants or the default kernel length after
    saving does not change what the reloaded model predicts (before: the rectification was
    filled from a module global that config did not record, and the band centres, time
    constants and kernel length were recomputed from the current defaults)."""
    torch.manual_seed(0)
    model = build_model(name, n_bands=16, n_neurons=2, prefilter=prefilter, **kwargs).eval()
    x = torch.rand(2, 1, 16, 50)
    with torch.no_grad():
        before = model(x)
    save_checkpoint(tmp_path / "m.pt", model)
    monkeypatch.setattr(models_base, "MODEL_ADAPTRANS_RECTIFY", None)
    monkeypatch.setattr(adaptrans, "willmore_tau_ms", lambda cf: np.full(np.shape(cf), 20.0))
    monkeypatch.setattr(adaptrans, "default_kernel_size", lambda tau, dt: 5)
    monkeypatch.setattr(adaptrans, "center_frequencies", lambda *a, **k: np.geomspace(100.0, 1000.0, 16))
    fresh = build_model(name, n_bands=16, n_neurons=2, prefilter=prefilter, **kwargs)
    assert fresh.prefilter.kernel_size == 5  # the defaults did change
    rebuilt, _ = load_checkpoint(tmp_path / "m.pt")
    with torch.no_grad():
        after = rebuilt(x)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert rebuilt.config == model.config
    if prefilter == "adaptrans":
        assert model.config["prefilter_kwargs"]["rectify"] == "relu"
        assert rebuilt.prefilter.rectify == "relu"
    assert model.config["prefilter_kwargs"]["kernel_size"] == rebuilt.prefilter.kernel_size != 5


def test_config_records_resolved_values():
    m = build_model("StateNet", n_bands=34, prefilter="adaptrans", prefilter_kwargs={"rectify": None})
    assert m.config["hidden"] == 70  # resolved from hidden=None
    pk = m.config["prefilter_kwargs"]
    assert pk["rectify"] is None and len(pk["cf_hz"]) == 34 and len(pk["tau_ms"]) == 34
    assert pk["kernel_size"] == m.prefilter.kernel_size and pk["learnable"] is True and pk["w0"] == 0.75
    assert build_model("StateNet", **m.config).config == m.config


# ----------------------------------------------------------------------------- item 8
@pytest.mark.parametrize("name", ["Linear", "LinearNonlinear"])
@pytest.mark.parametrize("method", ["batch", "vmap"])
def test_prefiltered_gradient_strf_with_fused_linear_adaptrans(name, method):
    """gradient_strf(wrt="prefiltered") on Linear / LN with the linear (fused) AdapTrans
    (before: ValueError, the prefilter's forward hook never fired on the fused path). For
    Linear the gradient w.r.t. the ON/OFF outputs is the weight STRF itself."""
    from deepstrf_utils.interpret.strfs import gradient_strf, weight_strf

    torch.manual_seed(0)
    model = build_model(name, n_bands=6, n_neurons=3, n_lags=5, prefilter="adaptrans",
                        prefilter_kwargs={"rectify": None, "kernel_size": 8})
    assert model.strf_path() == "fused"
    x = torch.rand(3, 1, 6, 60, generator=torch.Generator().manual_seed(0))
    g = gradient_strf(model, x, wrt="prefiltered", method=method)
    assert g.shape == (3, 2, 6, 5)
    if name == "Linear":
        torch.testing.assert_close(g, weight_strf(model), rtol=0, atol=1e-5)
    else:  # the same through the unfused conv path
        ref = build_model(name, **{**model.config, "implementation": "conv"})
        ref.load_state_dict(model.state_dict())
        torch.testing.assert_close(g, gradient_strf(ref, x, wrt="prefiltered", method=method), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_responses_are_rejected_at_every_boundary(value):
    """One rule for +-inf in responses: a ValueError at the boundary (before: "missing" in
    training, where the target masks non-finite bins, but "valid" in the metrics, which
    mask NaN only), while NaN stays "missing" everywhere."""
    from deepstrf_utils import metrics
    from deepstrf_utils.datasets import ResponseDataset, collate_responses

    rng = np.random.default_rng(0)
    stims = [rng.random((4, 30)), rng.random((4, 20))]
    resps = [rng.random((2, 3, 30)), rng.random((2, 3, 20))]
    resps[1][0, 1, 5] = np.nan
    ResponseDataset(stims, resps, dt_ms=5.0, cf_hz=[500, 1000, 2000, 4000])  # NaN: fine
    bad = [r.copy() for r in resps]
    bad[1][1, 2, 7] = value
    with pytest.raises(ValueError, match=r"response 1 without \+-inf"):
        ResponseDataset(stims, bad, dt_ms=5.0, cf_hz=[500, 1000, 2000, 4000])
    # training's packer and the public collate (any dataset-like list of items)
    items = [(torch.as_tensor(s[None], dtype=torch.float32), torch.as_tensor(r, dtype=torch.float32))
             for s, r in zip(stims, bad)]
    with pytest.raises(ValueError, match=r"response 1 without \+-inf"):
        collate_responses(items)
    # the metrics: responses and predictions, numpy and torch
    pred = rng.random((2, 30))
    resp = pred[:, None, :] + 0.1 * rng.random((2, 4, 30))  # a driven response: finite scores
    assert np.all(np.isfinite(metrics.cc_norm(pred, resp)))
    resp_bad = resp.copy()
    resp_bad[0, 1, 3] = value
    for fn in (metrics.cc_raw, metrics.cc_norm, metrics.fev):
        with pytest.raises(ValueError, match=r"resp without \+-inf"):
            fn(pred, resp_bad)
        with pytest.raises(ValueError, match=r"resp without \+-inf"):
            fn(torch.as_tensor(pred), torch.as_tensor(resp_bad))
    for fn in (metrics.signal_power, metrics.cc_max):
        with pytest.raises(ValueError, match=r"resp without \+-inf"):
            fn(resp_bad)
