"""Tests of deepstrf_utils.interpret.insilico: shapes, known values and the published OFF-response trends."""

import numpy as np
import pytest
import torch

from deepstrf_utils.adaptrans import AdapTrans, WillmoreHighPass
from deepstrf_utils.interpret.insilico import (
    bode,
    box_spectrogram,
    off_response_vs_duration,
    off_response_vs_fall_time,
    on_response_vs_rise_time,
    step_response,
    trapezoid_envelope,
)




@pytest.fixture(scope="module")
def prefilter():
    torch.manual_seed(0)
    return AdapTrans(34, dt_ms=5.0)


def _table(df, column):
    """(n_conditions, F) amplitudes, conditions in increasing order."""
    return df.pivot(index=column, columns="band", values="amplitude").sort_index().to_numpy()


def test_step_response_figure_1b():
    s = step_response(w=0.75, tau_bins=20, n_bins=300, onset=50, offset=200)
    assert s["x"].shape == s["on"].shape == s["off"].shape == (300,)
    assert s["kernels"].shape == (2, 61)
    on, off = s["on"], s["off"]
    assert on[49] == 0 and off[49] == 0
    assert on[50] == pytest.approx(1.0) and off[50] == pytest.approx(-0.75)
    assert on[199] == pytest.approx(0.25) and off[199] == pytest.approx(0.25)
    assert on[200] == pytest.approx(-0.75) and off[200] == pytest.approx(1.0)
    assert on[-1] == pytest.approx(0.0) and off[-1] == pytest.approx(0.0)
    # slower OFF time constant: OFF relaxes more slowly than ON decays
    s2 = step_response(tau_bins=5, tau_off_bins=20)
    assert abs(s2["off"][60] - 0.25) > abs(s2["on"][60] - 0.25)


def test_box_spectrogram_low_bands_decay_slower():
    b = box_spectrogram(n_bands=128, n_bins=400, onset=50, offset=250)
    assert b["x"].shape == b["on"].shape == b["off"].shape == (128, 400)
    assert b["cf_hz"].shape == (128,) and b["kernel_size"] == 131
    t = 50 + 10  # 50 ms after onset
    assert b["on"][0, t] > b["on"][-1, t]  # low band still high, high band adapted
    assert np.all(np.diff(b["on"][:, t]) <= 1e-12)
    np.testing.assert_allclose(b["on"][:, 249], 0.25, atol=1e-9)
    np.testing.assert_allclose(b["off"][:, 250], 1.0, atol=1e-9)


def test_bode_known_values():
    for tau in (5, 20):
        for w in (0.1, 0.6, 1.0):
            om, on_db, off_db = bode(tau, w, n_freq=256)
            assert om.shape == on_db.shape == off_db.shape == (256,)
            assert om[0] == 0 and om[-1] == pytest.approx(np.pi)
            dc = 20 * np.log10(1 - w) if w < 1 else -200.0
            assert on_db[0] == pytest.approx(dc) and off_db[0] == pytest.approx(dc)
            assert on_db[-1] > on_db[0]  # ON is a high-pass
    # OFF at Nyquist with a slowly decaying tail is dominated by its -w present tap
    _, _, off_db = bode(20, 0.6)
    assert off_db[-1] == pytest.approx(20 * np.log10(0.6), abs=0.5)
    # direct DTFT check at one frequency
    om, on_db, _ = bode(5, 0.6, n_freq=3, kernel_size=16)
    a = np.exp(-1 / 5)
    tail = a ** np.arange(15) / np.sum(a ** np.arange(15))
    h = np.concatenate([[1.0], -0.6 * tail])
    H = np.sum(h * np.exp(-1j * om[1] * np.arange(16)))
    assert on_db[1] == pytest.approx(20 * np.log10(abs(H)))


def test_trapezoid_envelope():
    e = trapezoid_envelope(12, 1.0, onset_ms=2, rise_ms=2, hold_ms=3, fall_ms=4, level=2.0)
    np.testing.assert_allclose(e, [0, 0, 0, 1, 2, 2, 2, 2, 1.5, 1, 0.5, 0])
    e0 = trapezoid_envelope(6, 1.0, 1, 0, 2, 0)
    np.testing.assert_allclose(e0, [0, 1, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="fall_ms"):
        trapezoid_envelope(6, 1.0, 1, 0, 2, -1)


def test_off_response_decreases_with_fall_time(prefilter):
    falls = [0, 10, 20, 50, 100, 200, 500]
    df = off_response_vs_fall_time(prefilter, falls)
    assert list(df.columns) == ["band", "cf_hz", "fall_ms", "amplitude"]
    assert len(df) == 34 * len(falls)
    amp = _table(df, "fall_ms")
    np.testing.assert_allclose(amp[0], 1.0, atol=1e-5)  # abrupt offset: OFF jumps to the level
    assert np.all(np.diff(amp, axis=0) < 0)
    assert np.all(amp > 0)


def test_on_response_decreases_with_rise_time(prefilter):
    rises = [0, 10, 50, 200, 500]
    amp = _table(on_response_vs_rise_time(prefilter, rises), "rise_ms")
    assert amp.shape == (5, 34)
    np.testing.assert_allclose(amp[0], 1.0, atol=1e-5)
    assert np.all(np.diff(amp, axis=0) < 0) and np.all(amp > 0.25 - 1e-6)
    assert WillmoreHighPass(34).out_channels == 1
    assert on_response_vs_rise_time(WillmoreHighPass(34), [0, 100]).shape == (68, 4)


def test_off_response_grows_with_duration_and_saturates(prefilter):
    durs = [10, 50, 100, 200, 400, 650, 1000]
    df = off_response_vs_duration(prefilter, durs)
    assert list(df.columns) == ["band", "cf_hz", "duration_ms", "amplitude"]
    amp = _table(df, "duration_ms")
    assert np.all(np.diff(amp[:5], axis=0) > 0)  # grows ...
    np.testing.assert_allclose(amp[-2:], 1.0, atol=1e-5)  # ... and saturates after K - 1 bins
    # more slowly in low-frequency bands (longer tau)
    assert np.all(np.diff(amp[1], axis=0) > 0)
    assert amp[1, 0] < 0.5 * amp[1, -1]


def test_bad_inputs(prefilter):
    with pytest.raises(ValueError, match="OFF channel"):
        off_response_vs_fall_time(WillmoreHighPass(34), [0, 10])
    with pytest.raises(ValueError, match="fall times"):
        off_response_vs_fall_time(prefilter, [-5])
    with pytest.raises(ValueError, match="durations"):
        off_response_vs_duration(prefilter, [0, 10])
    with pytest.raises(ValueError, match="prefilter"):
        off_response_vs_duration(torch.nn.Identity(), [10])
    with pytest.raises(ValueError, match="onset"):
        step_response(onset=100, offset=50)
