"""The synthetic dataset and the stimulus primitives: determinism, cache, ground truth, design goals."""
import os
import re

import numpy as np
import pytest

from deepstrf_utils import stimuli as st
from deepstrf_utils.adaptrans import willmore_tau_ms
from deepstrf_utils.datasets import base, load_dataset, storage, synthetic
from deepstrf_utils.datasets.synthetic import generate_synthetic, load_synthetic, true_rate
from deepstrf_utils.metrics import cc_max, cc_norm

SMALL = dict(n_neurons=6, n_clips=4, clip_s=1.0, n_repeats=5, seed=0)
CF = 500.0 * 2.0 ** (np.arange(34) / 6.0)  # 1/6 octave apart, 500 Hz-22.6 kHz


@pytest.fixture(scope="module")
def small():
    return generate_synthetic(**SMALL)


@pytest.fixture(scope="module")
def full():
    """The project's default synthetic dataset (generated once for this module)."""
    return generate_synthetic()


# ------------------------------------------------------------------ stimuli
def test_envelope_known_values():
    env = st.envelope(12, onset_ms=10.0, rise_ms=20.0, hold_ms=10.0, fall_ms=0.0, dt_ms=5.0)
    np.testing.assert_allclose(env, [0, 0, 0.25, 0.5, 0.75, 1, 1, 1, 0, 0, 0, 0])
    step = st.envelope(6, onset_ms=5.0, rise_ms=0.0, hold_ms=10.0, fall_ms=10.0, dt_ms=5.0)
    np.testing.assert_allclose(step, [0, 1, 1, 0.5, 0, 0])
    cos = st.envelope(12, 10.0, 20.0, 10.0, 0.0, 5.0, shape="cosine")
    np.testing.assert_allclose(cos[3], 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="rise_ms, hold_ms, fall_ms >= 0"):
        st.envelope(10, 0.0, -1.0)


def test_band_profile_tone_and_band():
    p = st.band_profile(CF, 1000.0, 2000.0)
    assert p.sum() == 7 and p[np.argmin(abs(CF - 1414.0))] == 1  # 1 octave = 7 bands at 1/6 octave
    tone = st.band_profile(CF, 1100.0, 1100.0)
    assert tone.sum() == 1 and tone[np.argmin(abs(np.log2(CF / 1100.0)))] == 1
    soft = st.band_profile(CF, 1000.0, 2000.0, edge_oct=0.5)
    assert soft.sum() > p.sum() and soft.max() == 1 and np.all(soft >= p)


def test_primitives_shapes_ranges_and_determinism():
    b = st.noise_burst(CF, 100, 50.0, 20.0, 200.0, 30.0, band_hz=(1000.0, 8000.0), texture=0.3, rng=1)
    assert b.shape == (34, 100) and b.dtype == np.float32 and b.min() >= 0 and b.max() <= 1
    assert (b[:, :10] == 0).all() and (b[CF < 900] == 0).all()
    np.testing.assert_array_equal(b, st.noise_burst(CF, 100, 50.0, 20.0, 200.0, 30.0, band_hz=(1000.0, 8000.0),
                                                    texture=0.3, rng=1))
    t = st.tone_burst(CF, 50, 4000.0, 0.0, hold_ms=100.0, level=0.8)
    assert (t > 0).sum(axis=0).max() == 1 and t.max() == pytest.approx(0.8)
    assert st.silence(34, 250.0).shape == (34, 50) and not st.silence(34, 250.0).any()
    r = st.moving_ripple(CF, 200, temporal_hz=4.0, spectral_cyc_per_oct=1.0, depth=0.8, level=1.0)
    assert r.min() >= 0.2 - 1e-6 and r.max() <= 1.0 + 1e-6
    # 4 Hz at 5 ms bins: the pattern repeats every 50 bins
    np.testing.assert_allclose(r[:, :150], r[:, 50:200], atol=1e-5)
    d = st.dynamic_random_chord(CF, 100, chord_ms=25.0, density=0.3, rng=2)
    assert np.all(d[:, 0:5] == d[:, [0]]) and 0.15 < (d > 0).mean() < 0.45
    np.testing.assert_array_equal(d, st.dynamic_random_chord(CF, 100, chord_ms=25.0, density=0.3, rng=2))


def test_compose_clip_has_onsets_offsets_and_silences():
    spec, events = st.compose_clip(CF, 999, rng=3)
    assert spec.shape == (34, 999) and spec.min() >= 0 and spec.max() <= 1
    again, _ = st.compose_clip(CF, 999, rng=3)
    np.testing.assert_array_equal(spec, again)
    assert not np.array_equal(spec, st.compose_clip(CF, 999, rng=4)[0])
    assert len(events) >= 3 and {e["kind"] for e in events} <= set(st.SOUND_KINDS)
    silent = spec.max(axis=0) == 0
    assert 0.02 < silent.mean() < 0.8
    for e in events:
        assert e["offset_ms"] == pytest.approx(e["onset_ms"] + e["rise_ms"] + e["hold_ms"] + e["fall_ms"])
    with pytest.raises(ValueError, match="unknown sound kinds"):
        st.compose_clip(CF, 100, kinds={"speech": 1.0})


# ------------------------------------------------------------------ small synthetic set
def test_small_shapes_and_ground_truth(small):
    ds = small
    n, t = 6, 199  # 1 s clips at 5 ms: 199 bins (as NS1's 4.995 s -> 999)
    assert (ds.n_neurons, ds.n_stimuli, ds.n_bands) == (6, 4, 34)
    np.testing.assert_allclose(ds.cf_hz[[0, -1]], [500.0, 22627.0])
    assert all(s.shape == (34, t) for s in ds.stimuli)
    assert all(r.shape == (n, 5, t) for r in ds.responses)
    assert np.all(np.stack(ds.responses) == np.round(np.stack(ds.responses)))  # spike counts
    gt = ds.ground_truth
    assert gt["strf"].shape == (n, 2, 34, 20)
    for key in ("a_on", "a_off", "w", "tau_on_ms", "tau_off_ms"):
        assert gt[key].shape == (n, 34), key
    for key in ("bf_hz", "latency_ms", "onoff_balance", "noisy", "gain", "bias", "cc_max_true"):
        assert gt[key].shape == (n,), key
    assert len(gt["rate"]) == 4 and gt["rate"][0].shape == (n, t)
    assert len(gt["stimulus_events"]) == 4
    factor_on = gt["tau_on_ms"] / willmore_tau_ms(ds.cf_hz)[None]
    assert np.all((factor_on > 0.5 - 1e-9) & (factor_on < 2 + 1e-9))
    np.testing.assert_allclose(factor_on, factor_on[:, :1] * np.ones((1, 34)))  # on the Willmore curve
    np.testing.assert_allclose(gt["a_on"], np.exp(-5.0 / gt["tau_on_ms"]))
    assert not np.allclose(gt["tau_on_ms"], gt["tau_off_ms"])  # ON and OFF time constants differ
    assert np.all((gt["w"] >= 0.5) & (gt["w"] <= 0.95))
    assert gt["noisy"].sum() >= 1
    assert {"id", "bf_hz", "noisy", "snr"} <= set(ds.neurons.columns)
    np.testing.assert_array_equal(ds.neurons["bf_hz"], gt["bf_hz"])


def test_stored_parameters_reproduce_the_rates(small):
    rates = true_rate(small.stimuli, small.ground_truth)
    for a, b in zip(rates, small.ground_truth["rate"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_deterministic_for_a_seed(small):
    again = generate_synthetic(**SMALL)
    for a, b in zip(small.stimuli + small.responses, again.stimuli + again.responses):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(small.ground_truth["strf"], again.ground_truth["strf"])
    other = generate_synthetic(**{**SMALL, "seed": 1})
    assert not np.array_equal(small.stimuli[0], other.stimuli[0])
    assert not np.array_equal(small.ground_truth["bf_hz"], other.ground_truth["bf_hz"])
    # the stimuli do not depend on the number of neurons
    np.testing.assert_array_equal(generate_synthetic(**{**SMALL, "n_neurons": 2}).stimuli[0], small.stimuli[0])


def test_cache_is_read_not_regenerated(tmp_path, monkeypatch):
    calls = []
    real = synthetic.generate_synthetic

    def counting(**kw):
        calls.append(kw)
        return real(**kw)

    monkeypatch.setattr(synthetic, "generate_synthetic", counting)
    first = load_synthetic(tmp_path, **SMALL)
    files = os.listdir(tmp_path / "synthetic")
    assert len(files) == 1 and re.fullmatch(r"synthetic_[0-9a-f]{12}\.h5", files[0])
    second = load_synthetic(tmp_path, **SMALL)
    via_name = load_dataset("synthetic", root=tmp_path, **SMALL)
    assert len(calls) == 1
    for ds in (second, via_name):
        for a, b in zip(first.responses, ds.responses):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(first.ground_truth["rate"][2], ds.ground_truth["rate"][2])
    load_synthetic(tmp_path, **{**SMALL, "seed": 5})  # other options: another file
    assert len(calls) == 2 and len(os.listdir(tmp_path / "synthetic")) == 2
    load_synthetic(tmp_path, cache=False, **SMALL)
    assert len(calls) == 3


def test_interrupted_cache_write_then_regenerates(tmp_path, monkeypatch):
    def broken_writer(f, dataset):
        f.attrs["schema_version"] = base.SCHEMA_VERSION
        raise RuntimeError("disk full")

    monkeypatch.setattr(storage, "_write_dataset", broken_writer)
    with pytest.raises(RuntimeError, match="disk full"):
        load_synthetic(tmp_path, **SMALL)
    assert os.listdir(tmp_path / "synthetic") == []
    monkeypatch.undo()
    ds = load_synthetic(tmp_path, **SMALL)
    assert ds.n_neurons == 6 and len(os.listdir(tmp_path / "synthetic")) == 1


def test_bad_options():
    with pytest.raises(ValueError, match="n_clips >= 3"):
        generate_synthetic(n_clips=2)
    with pytest.raises(ValueError, match="n_neurons as an integer"):
        generate_synthetic(n_neurons=2.5)
    with pytest.raises(ValueError, match="clip_s long enough"):
        generate_synthetic(clip_s=0.1)


# ------------------------------------------------------------------ the default set: design goals
def test_default_layout_and_split(full):
    assert (full.n_neurons, full.n_stimuli, full.n_bands, full.dt_ms) == (50, 20, 34, 5.0)
    assert all(s.shape == (34, 999) for s in full.stimuli)
    assert full.n_repeats.tolist() == [20] * 20
    train, val, test = full.split_indices(0)
    assert (len(train), len(val), len(test)) == (14, 2, 4)
    assert not np.array_equal(test, full.split_indices(1)[2])
    kinds = {e["kind"] for ev in full.ground_truth["stimulus_events"] for e in ev}
    assert kinds == set(st.SOUND_KINDS)
    assert set(full.neurons["onoff_type"]) == {"ON", "OFF", "ON-OFF"}


def test_firing_rates_are_realistic(full):
    rate_hz = np.concatenate(full.ground_truth["rate"], axis=1) * 1000.0 / full.dt_ms
    mean = rate_hz.mean(axis=1)
    assert np.all((mean > 1.0) & (mean < 45.0))
    assert rate_hz.max() <= 400.0 + 1e-3
    np.testing.assert_allclose(mean, full.ground_truth["target_rate_hz"], rtol=1e-3)
    spikes_hz = np.concatenate([r.mean(axis=1) for r in full.responses], axis=1).mean(axis=1) * 200.0
    np.testing.assert_allclose(spikes_hz, mean, rtol=0.15)


def test_true_rate_scores_cc_norm_one_and_cc_max_matches_truth(full):
    resp = np.stack(full.responses)  # (B, N, R, T)
    rate = np.stack(full.ground_truth["rate"])  # (B, N, T)
    assert abs(float(cc_norm(rate, resp, reduction="mean")) - 1.0) < 0.05
    # ground-truth ceiling: correlation of the true rate with the trial average, computed here
    r = np.concatenate(list(rate), axis=1).astype(np.float64)
    m = np.concatenate([x.mean(axis=1) for x in full.responses], axis=1).astype(np.float64)
    r -= r.mean(axis=1, keepdims=True)
    m -= m.mean(axis=1, keepdims=True)
    truth = (r * m).sum(1) / np.sqrt((r ** 2).sum(1) * (m ** 2).sum(1))
    np.testing.assert_allclose(full.ground_truth["cc_max_true"], truth, rtol=1e-6)
    est = np.asarray(cc_max(resp))
    assert np.abs(est - truth).mean() < 0.02 and np.abs(est - truth).max() < 0.06
    # the ceiling is moderate and varies across neurons; noisy neurons have low ceilings
    noisy = full.ground_truth["noisy"]
    assert 0.5 < truth.mean() < 0.9 and truth.std() > 0.1
    assert truth[noisy].max() < truth[~noisy].min()


def _lagged(spec, n_lags=20):
    """Design matrix (T, F * n_lags + 1) of a causal linear STRF on the raw spectrogram."""
    f, t = spec.shape
    x = np.zeros((t, f * n_lags + 1))
    x[:, -1] = 1.0
    for k in range(n_lags):
        x[k:, k * f:(k + 1) * f] = spec[:, : t - k].T
    return x


def _ridge_test_cc(features, rates, fit, test, lam=10.0):
    """Correlation on the test clips of a ridge regression fitted on the fit clips.

    features: list of (T_i, D) design matrices; rates: list of (T_i, N) targets -> (N,)."""
    x = np.concatenate([features[i] for i in fit]).astype(np.float32)
    y = np.concatenate([rates[i] for i in fit]).astype(np.float32)
    gram = (x.T @ x).astype(np.float64)
    w = np.linalg.solve(gram + lam * np.eye(x.shape[1]), (x.T @ y).astype(np.float64))
    pred = np.concatenate([features[i] for i in test]) @ w
    yt = np.concatenate([rates[i] for i in test])
    return np.array([np.corrcoef(pred[:, n], yt[:, n])[0, 1] for n in range(yt.shape[1])])


def test_adaptation_matters_linear_strf_falls_short(full):
    """A ridge-fitted linear STRF (20 lags) on the raw spectrogram, fitted to the noiseless
    rates of 16 clips, predicts the other 4 clips' true rates clearly worse than the true
    model (which scores 1); on the neuron's own AdapTrans output the same linear fit does
    much better, so the shortfall is the adaptation, not only the output nonlinearity."""
    train, val, test = full.split_indices(0)
    fit = np.concatenate([train, val])
    gt = full.ground_truth
    rates = [r.T for r in gt["rate"]]
    raw = [_lagged(s) for s in full.stimuli]
    cc_raw = _ridge_test_cc(raw, rates, fit, test)
    assert np.nanmean(cc_raw) < 0.85
    assert np.nanmean(cc_raw) > 0.3  # still a sensible, stimulus-driven population
    # one OFF-dominated neuron: linear STRF on its true (rectified) ON/OFF channels
    n = int(np.flatnonzero((full.neurons["onoff_type"] == "OFF").to_numpy() & ~gt["noisy"])[0])
    params = {k: gt[k][[n]] for k in ("a_on", "a_off", "w")}
    on_off = synthetic._prefilter(np.stack(full.stimuli), params, gt["shared"]["adaptrans_kernel_size"])
    adapted = [_lagged(y[0].reshape(2 * full.n_bands, -1).numpy()) for y in on_off]
    cc_adapted = _ridge_test_cc(adapted, [r[:, [n]] for r in rates], fit, test)[0]
    assert cc_adapted > 0.9 and cc_adapted > cc_raw[n] + 0.1
