"""TORC spectrograms (known answers), the TORC loader on a miniature file in baphy's exported
format, the stimulus-specific metrics, and the shared real unit (skipped when absent)."""
import json

import numpy as np
import pytest
import torch

from deepstrf_utils.datasets import load_dataset
from deepstrf_utils.datasets.torc import load_torc, mean_psth_baseline
from deepstrf_utils.metrics import cc_norm
from deepstrf_utils.metrics.specific import cc_norm_specific, mean_psth, stimulus_specific
from deepstrf_utils.spectrogram import band_centre_frequencies
from deepstrf_utils.stimuli import torc_spectrogram

RATES = np.arange(4, 49, 4)


# ----------------------------------------------------------------------------- spectrogram
def test_single_ripple_is_the_expected_sinusoid_along_time_and_log_frequency():
    cf = band_centre_frequencies(32, 250, 8000)
    x = np.log2(cf / 250)
    dt = 1.0
    spec = torc_spectrogram(cf, dt, [4.0], 1.0, [0.0], depth=0.9, duration_ms=750)
    t_mid = (np.arange(750) + 0.5) * dt / 1000  # bin centres (s)
    # the mean of sin over a bin of width d centred on c is sinc(w d) sin(w c ...): exact
    expected = 1 + 0.9 * np.sinc(4.0 * dt / 1000) * np.sin(
        2 * np.pi * (4.0 * t_mid[None, :] + 1.0 * x[:, None]))
    np.testing.assert_allclose(spec, expected, atol=2e-6)
    # along log-frequency at a fixed bin: one cycle per octave
    col = spec[:, 100] - 1
    np.testing.assert_allclose(col / np.abs(col).max(),
                               np.sin(2 * np.pi * (4.0 * t_mid[100] + x)), atol=2e-3)


def test_torc_has_a_250_ms_period_silence_is_zero_and_the_envelope_stays_in_range():
    cf = band_centre_frequencies(32, 250, 8000)
    rng = np.random.default_rng(0)
    phases = rng.uniform(-180, 180, 12)
    spec = torc_spectrogram(cf, 10.0, RATES, -0.6, phases, pre_ms=100, post_ms=100, depth=0.9)
    assert spec.shape == (32, 95)
    assert np.all(spec[:, :10] == 0) and np.all(spec[:, 85:] == 0)
    torc = spec[:, 10:85]
    np.testing.assert_allclose(torc[:, :25], torc[:, 25:50], atol=1e-5)  # 250 ms = 25 bins
    np.testing.assert_allclose(torc[:, :25], torc[:, 50:75], atol=1e-5)
    assert np.isclose(torc.mean(), 1.0, atol=0.02)
    fine = torc_spectrogram(cf, 1.0, RATES, -0.6, phases, depth=0.9)
    # max|S| is taken on baphy's grid, which may miss the true peak by a fraction of a percent
    assert 0.8 * 0.9 < np.abs(fine - 1).max() < 1.01 * 0.9
    flat = torc_spectrogram(cf, 1.0, RATES, -0.6, phases, depth=0.0)
    np.testing.assert_allclose(flat, 1.0, atol=1e-6)


def test_bin_averaging_equals_the_mean_of_finer_bins_including_partial_onset_bins():
    cf = band_centre_frequencies(8, 250, 8000)
    phases = np.linspace(0, 300, 12)
    fine = torc_spectrogram(cf, 1.0, RATES, 1.4, phases, pre_ms=7, post_ms=13)
    coarse = torc_spectrogram(cf, 5.0, RATES, 1.4, phases, pre_ms=7, post_ms=13)
    assert fine.shape[1] == 770 and coarse.shape[1] == 154
    np.testing.assert_allclose(coarse, fine.reshape(8, 154, 5).mean(axis=2), atol=1e-5)
    assert 0 < coarse[0, 1] < coarse[0, 2]  # the bin holding the onset (7 ms) is part silence


def test_bands_outside_the_torc_range_are_silent_and_bad_inputs_raise():
    cf = np.array([125.0, 250.0, 1000.0, 8000.0, 16000.0])
    spec = torc_spectrogram(cf, 10.0, RATES, 0.4, np.zeros(12))
    assert np.all(spec[[0, 4]] == 0) and np.all(spec[1:4] > 0)
    with pytest.raises(ValueError, match="phases_deg of shape"):
        torc_spectrogram(cf, 10.0, RATES, 0.4, np.zeros(11))
    with pytest.raises(ValueError, match="depth"):
        torc_spectrogram(cf, 10.0, RATES, 0.4, np.zeros(12), depth=1.5)
    with pytest.raises(ValueError, match="lowest_hz"):
        torc_spectrogram(cf, 10.0, RATES, 0.4, np.zeros(12), lowest_hz=8000, highest_hz=250)


# ----------------------------------------------------------------------------- miniature files
FS, PRE, DUR, POST = 1000, 0.12, 0.25, 0.12
N_SAMPLES = int(round((PRE + DUR + POST) * FS))  # 490
DENSITIES = [0.4, 0.4, -0.4, -0.4, 0.0, 0.0]


def _write_mini(folder, n_reps=10, names=None, raster=None):
    """Six TORCs (three densities x 2), n_reps repetitions, in the shared folder's format.

    Planted raster: trial (b, r) has r + 1 spikes in sample 140 + b (TORC onset = sample 120),
    and one spike in every sample 370-379 (right after the TORC). TORC 1 and 3 are the
    inverse-polarity partners of TORC 0 and 2 (phases + 180 degrees).
    """
    names = names or [f"TORC_{i:02d}" for i in range(len(DENSITIES))]
    rng = np.random.default_rng(1)
    phases = [rng.uniform(-180, 180, 4).round() for _ in DENSITIES]
    phases[1], phases[3] = phases[0] + 180, phases[2] - 180
    torcs = [{"Rates": [4, 8, 12, 16], "Phase": ph.tolist(), "Scales": [d] * 4, "RippleAmplitude": [1] * 4,
              "LowestFrequency": 250, "HighestFrequency": 8000} for d, ph in zip(DENSITIES, phases)]
    params = {"names": names, "fs": FS, "pre_s": PRE, "post_s": POST, "dur_s": DUR, "torcs": torcs,
              "presentation_order": list(range(1, len(DENSITIES) + 1)) * n_reps, "source": "test"}
    (folder / "torc_params.json").write_text(json.dumps(params))
    if raster is None:
        raster = np.zeros((len(DENSITIES), n_reps, N_SAMPLES), dtype=np.uint8)
        for b in range(len(DENSITIES)):
            for r in range(n_reps):
                raster[b, r, 140 + b] = r + 1
        raster[:, :, 370:380] = 1
    np.savez(folder / "torc_raster.npz", raster=raster)
    return folder


def test_mini_torc_shapes_binning_repetitions_and_silence(tmp_path):
    folder = _write_mini(tmp_path)
    ds = load_dataset("torc", path=folder, n_test=1, n_val=1)
    assert ds.n_stimuli == 6 and ds.n_neurons == 1 and ds.n_bands == 32 and ds.dt_ms == 10.0
    assert ds.neuron_ids.tolist() == [folder.name]
    assert ds.neurons.loc[0, "area"] == "A1" and ds.neurons.loc[0, "species"] == "ferret"
    assert ds.meta["repetitions"] == [4, 5, 6, 7, 8, 9] and ds.meta["silence_ms"] == [100.0, 100.0]
    assert ds.meta["inverse_pairs"] == [[0, 1], [2, 3]]
    r = ds.responses[2]
    assert r.shape == (1, 6, (100 + 250 + 100) // 10)
    # the kept window starts at sample 20: sample 142 (TORC 2) -> bin 12, counts r + 1 for r = 4..9
    np.testing.assert_array_equal(r[0, :, 12], np.arange(5, 11))
    np.testing.assert_array_equal(r[0, :, 35], 10)  # samples 370-379: ten 1-spike samples summed
    assert r.sum() == np.arange(5, 11).sum() + 6 * 10
    stim = ds.stimuli[2]
    assert np.all(stim[:, :10] == 0) and np.all(stim[:, 35:] == 0) and np.all(stim[:, 10:35] > 0)
    assert 0.9 < stim.max() <= 1.0 + 1e-2
    # inverse-polarity partners: envelopes mirror each other around 1 / (1 + m)
    np.testing.assert_allclose(ds.stimuli[0][:, 10:35] + ds.stimuli[1][:, 10:35], 2 / 1.9, atol=1e-5)


def test_mini_torc_options_change_what_is_kept(tmp_path):
    folder = _write_mini(tmp_path)
    ds = load_torc(folder, dt_ms=5, repetitions="all", silence_ms=(20, 10), n_test=1, n_val=1)
    r = ds.responses[0]
    assert r.shape == (1, 10, (20 + 250 + 10) // 5)
    # the kept window starts at sample 100; sample 140 -> bin 8
    np.testing.assert_array_equal(r[0, :, 8], np.arange(1, 11))
    assert ds.meta["silence_ms"] == [20.0, 10.0] and ds.meta["torc_onset_ms"] == 20.0
    assert np.all(ds.stimuli[0][:, :4] == 0) and np.all(ds.stimuli[0][:, 4:54] > 0)
    two = load_torc(folder, repetitions=[0, 9], n_test=1, n_val=1)
    np.testing.assert_array_equal(two.responses[0][0, :, 12], [1, 10])


def test_mini_torc_split_is_disjoint_deterministic_and_keeps_each_density_in_training(tmp_path):
    ds = load_torc(_write_mini(tmp_path), n_test=2, n_val=1)
    dens = ds.meta["densities_cyc_per_oct"]
    seen = set()
    for seed in range(8):
        tr, va, te = ds.split_indices(seed)
        assert np.array_equal(np.sort(np.concatenate([tr, va, te])), np.arange(6))
        assert len(te) == 2 and len(va) == 1 and len(tr) == 3
        for i in np.concatenate([va, te]):
            assert dens[i] in {dens[j] for j in tr}
        assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), ds.split_indices(seed)))
        seen.add(tuple(te))
        parts = ds.split(seed)
        assert [p.stim_names for p in parts] == [[ds.stim_names[i] for i in idx] for idx in (tr, va, te)]
    assert len(seen) > 2  # a new test set per seed
    assert "training" in ds.split_rule and "group" in ds.split_rule
    free = load_torc(tmp_path, n_test=2, n_val=1, keep_partner_in_train=False)
    assert "groups" not in free.split_spec
    with pytest.raises(ValueError, match="keeping a training stimulus in every group"):
        load_torc(tmp_path, n_test=3, n_val=1).split_indices(0)


def test_mini_torc_groups_survive_subset_and_hdf5(tmp_path):
    ds = load_torc(_write_mini(tmp_path), n_test=1, n_val=1)
    sub = ds.subset([0, 1, 2, 3])
    assert sub.split_spec["groups"] == ds.split_spec["groups"][:4]
    back = type(ds).from_hdf5(ds.to_hdf5(tmp_path / "torc.h5"))
    assert back.split_spec == ds.split_spec
    assert all(np.array_equal(a, b) for a, b in zip(back.split_indices(3), ds.split_indices(3)))


def test_mini_torc_bad_files_and_options_raise_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="torc_params.json"):
        load_torc(tmp_path)
    folder = _write_mini(tmp_path)
    with pytest.raises(TypeError, match="bogus"):
        load_dataset("torc", path=folder, bogus=1)
    with pytest.raises(ValueError, match="repetitions"):
        load_torc(folder, repetitions="late")
    with pytest.raises(ValueError, match=r"repetition indices in \[0, 10\)"):
        load_torc(folder, repetitions=[3, 12])
    with pytest.raises(ValueError, match="at most the recorded silences"):
        load_torc(folder, silence_ms=150)
    with pytest.raises(ValueError, match="multiple of 1 ms"):
        load_torc(folder, dt_ms=2.5)
    with pytest.raises(ValueError, match="multiple of 20 ms"):
        load_torc(folder, dt_ms=20)
    bad = tmp_path / "bad"
    bad.mkdir()
    _write_mini(bad, raster=np.zeros((5, 10, N_SAMPLES), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(6, R, 490\).*got \(5, 10, 490\)"):
        load_torc(bad)
    (bad / "torc_raster.npz").unlink()
    with pytest.raises(FileNotFoundError, match="torc_raster.npz"):
        load_torc(bad)


# ----------------------------------------------------------------------------- metrics
def test_stimulus_specific_parts_and_cc_norm_specific_known_answers():
    rng = np.random.default_rng(0)
    b, n, r, t = 5, 2, 8, 60
    shared = 5 + 3 * np.sin(np.linspace(0, 6, t))          # the time course of every stimulus
    own = rng.standard_normal((b, n, t))                     # what depends on the stimulus
    truth = shared[None, None] + own
    resp = truth[:, :, None, :] + 0.3 * rng.standard_normal((b, n, r, t))
    p_res, r_res = stimulus_specific(truth, resp)
    np.testing.assert_allclose(p_res, own - own.mean(0), atol=1e-12)
    np.testing.assert_allclose(r_res.mean(0).mean(1), 0, atol=1e-12)
    # noise (trial-to-trial scatter) is unchanged by the subtraction
    np.testing.assert_allclose(np.diff(r_res, axis=2), np.diff(resp, axis=2), atol=1e-12)
    good = cc_norm_specific(truth, resp)
    assert good.shape == (n,) and np.all(good > 0.97)
    blind = np.broadcast_to(mean_psth(resp)[None], (b, n, t))
    assert np.all(cc_norm(blind, resp) > 0.3)                        # the shared course scores
    np.testing.assert_allclose(cc_norm_specific(blind, resp), 0.0)   # but knows nothing specific
    tt = cc_norm_specific(torch.from_numpy(truth), torch.from_numpy(resp))
    assert isinstance(tt, torch.Tensor) and np.allclose(tt.numpy(), good)


def test_stimulus_specific_rejects_unequal_lengths_and_bad_shapes():
    resp = np.ones((3, 1, 2, 10))
    resp[1, :, :, 8:] = np.nan
    with pytest.raises(ValueError, match="equal length"):
        stimulus_specific(np.ones((3, 1, 10)), resp)
    with pytest.raises(ValueError, match=r"B >= 2"):
        stimulus_specific(np.ones((1, 1, 10)), np.ones((1, 1, 2, 10)))
    with pytest.raises(ValueError, match=r"pred of shape \(B, N, T\)"):
        stimulus_specific(np.ones((3, 1, 9)), np.ones((3, 1, 2, 10)))


# ----------------------------------------------------------------------------- the real unit
def test_real_torc_unit(shared_data):
    folder = shared_data / "torc_ferret_a1"
    if not folder.is_dir():
        pytest.skip(f"no TORC unit at {folder}")
    ds = load_dataset("torc", path=folder)
    assert ds.n_stimuli == 30 and ds.n_bands == 32 and set(ds.n_repeats.tolist()) == {6}
    assert set(ds.n_bins.tolist()) == {95}
    rate = ds.neurons.loc[0, "mean_rate_hz"]
    assert 25 < rate < 36, rate  # ~30 spikes/s in repetitions 4-9
    early = load_torc(folder, repetitions=[0, 1, 2, 3])
    assert early.neurons.loc[0, "mean_rate_hz"] < 3  # the near-silent state left out by default
    ccs, spec = [], []
    for seed in range(3):
        tr, va, te = ds.split(seed)
        assert (tr.n_stimuli, va.n_stimuli, te.n_stimuli) == (20, 4, 6)
        pred = mean_psth_baseline(tr, te)
        resp = np.stack(te.responses)
        ccs.append(float(cc_norm(pred, resp)[0]))
        spec.append(float(cc_norm_specific(pred, resp)[0]))
    assert min(ccs) > 0.8, ccs          # the shared time course explains most of the response
    assert max(np.abs(spec)) < 0.05, spec
