"""Tests of the in-silico ON/OFF experiments on whole models (insilico.model_onoff_curves) and of
the synthetic truth as a model (datasets.synthetic.GroundTruthNeurons)."""
import numpy as np
import pytest
import torch

from deepstrf_utils.adaptrans import adaptrans_filter
from deepstrf_utils.datasets.synthetic import GroundTruthNeurons, generate_synthetic
from deepstrf_utils.insilico import model_onoff_curves
from deepstrf_utils.models import Linear, LinearNonlinear

F = 6


def _readout(channel, w0=0.75):
    """Linear model reading one AdapTrans channel, averaged over bands, at lag 0 (a known answer)."""
    model = Linear(F, n_neurons=1, n_lags=1, prefilter="adaptrans",
                   prefilter_kwargs={"tau_ms": 50.0, "w0": w0, "rectify": "relu"})
    w = torch.zeros(1, 2, F, 1)
    w[0, channel] = 1.0 / F
    model.load_strf(w, torch.zeros(1))
    return model


def _curve(df, source, experiment):
    d = df[(df["source"] == source) & (df["experiment"] == experiment)].sort_values("x_ms")
    return d["amplitude"].to_numpy()


def test_on_readout_model_matches_its_adaptrans_and_off_readout_has_known_values():
    on = model_onoff_curves(_readout(0))
    np.testing.assert_allclose(_curve(on, "model", "rise"), _curve(on, "adaptrans", "rise"), atol=1e-5)
    assert _curve(on, "model", "rise")[0] == pytest.approx(1.0, abs=1e-5)  # abrupt onset: ON = level
    off = model_onoff_curves(_readout(1), fall_times_ms=[0, 50, 200], durations_ms=[25, 100, 400, 800])
    # abrupt offset after a settled sound: the OFF channel jumps to the level (prefilter measure) while the
    # whole model's offset-evoked part is that minus the sustained OFF level (1 - w): w = 0.75
    assert _curve(off, "adaptrans", "fall")[0] == pytest.approx(1.0, abs=1e-5)
    assert _curve(off, "model", "fall")[0] == pytest.approx(0.75, abs=1e-4)
    for src in ("model", "adaptrans"):
        assert np.all(np.diff(_curve(off, src, "fall")) < 0)  # smaller after slower fades
        assert np.all(np.diff(_curve(off, src, "duration")) >= -1e-6)  # larger after longer sounds
    assert set(off.columns) == {"label", "neuron", "source", "experiment", "x_ms", "amplitude", "relative"}
    assert off.groupby(["source", "experiment"])["relative"].max().eq(1.0).all()


def test_model_without_prefilter_has_only_model_rows_and_population_neurons():
    torch.manual_seed(0)
    model = LinearNonlinear(F, n_neurons=3, n_lags=4)
    df = model_onoff_curves(model, neurons=[0, 2], neuron_ids=["a", "c"], label="LN")
    assert set(df["source"]) == {"model"} and set(df["neuron"]) == {"a", "c"} and set(df["label"]) == {"LN"}
    assert np.all(np.isfinite(df["amplitude"])) and np.all(df["amplitude"] >= 0)
    with pytest.raises(ValueError, match=r"neuron indices in \[0, 3\)"):
        model_onoff_curves(model, neurons=[3])
    with pytest.raises(ValueError, match="n_bands and dt_ms"):
        model_onoff_curves(torch.nn.Identity())


def test_ground_truth_neurons_reproduce_the_rates_and_prefilters():
    ds = generate_synthetic(n_neurons=3, n_clips=3, clip_s=0.5, n_repeats=2, n_bands=8, seed=1)
    truth = GroundTruthNeurons(ds.ground_truth, ds.cf_hz, ds.dt_ms)
    x = torch.as_tensor(ds.stimuli[0])[None, None]
    np.testing.assert_allclose(truth(x)[0].numpy(), ds.ground_truth["rate"][0], rtol=1e-5, atol=1e-7)
    gt = ds.ground_truth
    pre = truth.prefilter_of(2)
    expected = adaptrans_filter(x.double(), torch.as_tensor(gt["a_on"][2]), torch.as_tensor(gt["a_off"][2]),
                                torch.as_tensor(gt["w"][2]), gt["shared"]["adaptrans_kernel_size"], rectify="relu")
    torch.testing.assert_close(pre(x).double(), expected, rtol=1e-4, atol=1e-5)
    df = model_onoff_curves(truth, fall_times_ms=[0, 100], durations_ms=[50, 400], rise_times_ms=[0, 100],
                            label="truth")
    assert set(df["source"]) == {"model", "adaptrans"} and df["neuron"].nunique() == 3
    with pytest.raises(ValueError, match=r"\(B, 1, F, T\) with F=8"):
        truth(torch.zeros(1, 1, 5, 10))
