"""Tests of the in-silico ON/OFF experiments on whole models (insilico_models.model_onoff_curves) and of
the synthetic truth as a model (datasets.synthetic.GroundTruthNeurons)."""
import numpy as np
import pytest
import torch

from deepstrf_utils.adaptrans import adaptrans_filter
from deepstrf_utils.datasets.synthetic import GroundTruthNeurons, generate_synthetic
from deepstrf_utils.interpret.insilico import off_response_vs_fall_time, on_response_vs_rise_time
from deepstrf_utils.interpret.insilico_models import CORE_CONTEXT_BINS, band_masks, model_band_steps, model_onoff_curves
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


# ---------------------------------------------------------------------------------------
# tone steps per band (insilico_models.model_band_steps)
# ---------------------------------------------------------------------------------------
def _band(df, source, response):
    d = df[(df["source"] == source) & (df["response"] == response)].sort_values("band")
    return d["amplitude"].to_numpy()


def test_band_steps_of_a_linear_strf_in_one_band_respond_only_in_that_band():
    model = Linear(F, n_neurons=1, n_lags=4)
    w = torch.zeros(1, 1, F, 4)
    w[0, 0, 3] = torch.tensor([0.5, 0.25, 0.125, 0.0625])
    model.load_strf(w, torch.tensor([0.3]))
    df = model_band_steps(model, hold_ms=100.0, level=2.0)
    on, off = _band(df, "model", "on"), _band(df, "model", "off")
    expected = np.zeros(F)
    expected[3] = 2.0 * 0.9375  # level x the STRF's sum over lags (the step lasts longer than the STRF)
    np.testing.assert_allclose(on, expected, rtol=1e-6, atol=0)
    assert np.all(on[np.arange(F) != 3] == 0.0)  # exactly: other bands never reach the STRF
    assert np.all(off == 0.0)  # an excitatory STRF only falls back at the offset
    assert set(df["source"]) == {"model"} and df["cf_hz"].isna().all()  # no prefilter: no cf_hz, no AdapTrans rows
    # three bands per step: bands 2, 3 and 4 now reach band 3
    wide = _band(model_band_steps(model, hold_ms=100.0, width_bands=3), "model", "on")
    np.testing.assert_allclose(wide, np.where(np.abs(np.arange(F) - 3) <= 1, 0.9375, 0.0), rtol=1e-6, atol=0)


def test_band_steps_of_an_off_channel_readout_peak_at_its_band():
    k, w0 = 4, 0.75
    model = Linear(F, n_neurons=1, n_lags=1, prefilter="adaptrans",
                   prefilter_kwargs={"tau_ms": 50.0, "w0": w0, "rectify": "relu"})
    w = torch.zeros(1, 2, F, 1)
    w[0, 1, k] = 1.0
    model.load_strf(w, torch.zeros(1))
    df = model_band_steps(model)  # default hold: (K - 1) dt, every band adapted
    off, on = _band(df, "model", "off"), _band(df, "model", "on")
    assert int(np.argmax(off)) == k and np.all(off[np.arange(F) != k] == 0.0)
    assert off[k] == pytest.approx(w0, abs=1e-4)  # OFF jumps to the level, the continued step stays at (1 - w)
    # during the step the rectified OFF channel rises from 0 towards (1 - w), reached at the last tap
    assert 0.9 * (1 - w0) < on[k] <= (1 - w0) + 1e-6 and np.all(on[np.arange(F) != k] == 0.0)
    # the prefilter alone: after a full adaptation both channels jump to the level in every band
    np.testing.assert_allclose(_band(df, "adaptrans", "off"), 1.0, atol=1e-5)
    np.testing.assert_allclose(_band(df, "adaptrans", "on"), 1.0, atol=1e-5)
    np.testing.assert_allclose(df["cf_hz"].to_numpy()[:F], model.prefilter.cf_hz, rtol=1e-6)
    rel = df[(df["source"] == "model") & (df["response"] == "off")]["relative"].to_numpy()
    assert rel[k] == 1.0 and np.all(rel[np.arange(F) != k] == 0.0)


def test_band_steps_adaptrans_column_equals_notebook_02_per_band_values():
    torch.manual_seed(0)
    model = LinearNonlinear(F, n_neurons=2, n_lags=3, prefilter="adaptrans", prefilter_kwargs={"rectify": "relu"})
    with torch.no_grad():  # different tau and w per band, so the per-band values differ
        model.prefilter.logit_w.copy_(torch.linspace(-1.0, 2.0, F))
        model.prefilter.logit_a_off.add_(torch.linspace(-2.0, 1.0, F))
    hold, dt = 60.0, model.dt_ms
    df = model_band_steps(model, hold_ms=hold, neurons=[1], neuron_ids=["b"], label="LN")
    R = model.prefilter.kernel_size - 1 + max(model.n_lags, CORE_CONTEXT_BINS)
    on = on_response_vs_rise_time(model.prefilter, [0.0], hold_ms=hold, onset_ms=R * dt)
    off = off_response_vs_fall_time(model.prefilter, [0.0], hold_ms=hold, onset_ms=R * dt, post_ms=R * dt)
    np.testing.assert_allclose(_band(df, "adaptrans", "on"), on.sort_values("band")["amplitude"], rtol=0, atol=0)
    np.testing.assert_allclose(_band(df, "adaptrans", "off"), off.sort_values("band")["amplitude"], rtol=0, atol=0)
    assert np.ptp(_band(df, "adaptrans", "off")) > 0.05  # a 60-ms step: bands adapt by different amounts
    # three bands per step: the mean of the three bands' values
    wide = model_band_steps(model, hold_ms=hold, neurons=[1], width_bands=3)
    np.testing.assert_allclose(_band(wide, "adaptrans", "off"),
                               band_masks(F, 3) @ off.sort_values("band")["amplitude"].to_numpy() / band_masks(F, 3).sum(1))
    assert set(df["neuron"]) == {"b"} and set(df["label"]) == {"LN"}
    assert len(df) == 2 * 2 * F  # (model, adaptrans) x (on, off) x bands
    assert set(df.columns) == {"label", "neuron", "source", "response", "band", "cf_hz", "amplitude", "relative"}


class _Counting(torch.nn.Module):
    """Wraps a model and records the batch size of every forward call."""

    def __init__(self, model):
        super().__init__()
        self.model, self.n_bands, self.dt_ms, self.calls = model, model.n_bands, model.dt_ms, []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return self.model(x)


def test_band_steps_run_every_band_in_one_batch_and_truth_has_its_prefilters():
    torch.manual_seed(0)
    wrapped = _Counting(LinearNonlinear(F, n_neurons=3, n_lags=4))
    df = model_band_steps(wrapped)
    assert len(wrapped.calls) == 1 and wrapped.calls[0][:3] == (2 * F + 1, 1, F)
    assert df.groupby(["neuron", "response"]).size().eq(F).all() and df["neuron"].nunique() == 3
    ds = generate_synthetic(n_neurons=2, n_clips=3, clip_s=0.5, n_repeats=2, n_bands=8, seed=1)
    truth = GroundTruthNeurons(ds.ground_truth, ds.cf_hz, ds.dt_ms)
    t = model_band_steps(truth, hold_ms=100.0, label="truth")
    assert set(t["source"]) == {"model", "adaptrans"} and len(t) == 2 * 2 * 2 * 8
    np.testing.assert_allclose(t["cf_hz"].to_numpy()[:8], ds.cf_hz)
    assert np.all(t["amplitude"] >= 0) and np.all(np.isfinite(t["amplitude"]))


def test_band_steps_reject_bad_inputs():
    model = LinearNonlinear(F, n_neurons=2, n_lags=4)
    with pytest.raises(ValueError, match=r"neuron indices in \[0, 2\)"):
        model_band_steps(model, neurons=[2])
    with pytest.raises(ValueError, match="n_bands and dt_ms"):
        model_band_steps(torch.nn.Identity())
    for hold in (0.0, -5.0, float("nan")):
        with pytest.raises(ValueError, match="hold_ms > 0"):
            model_band_steps(model, hold_ms=hold)
    with pytest.raises(ValueError, match="width_bands a positive odd integer"):
        model_band_steps(model, width_bands=2)
    with pytest.raises(ValueError, match=r"cf_hz with one entry per band \(F=6\)"):
        model_band_steps(model, cf_hz=[1000.0, 2000.0])
