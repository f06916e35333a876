"""The synthetic population outside the models' family: determinism, rates, refractoriness,
the oracle, adaptation that is not AdapTrans' linear form, and a ridge STRF that falls short."""
import numpy as np
import pytest
import torch

from deepstrf_utils.adaptrans import adaptrans_filter
from deepstrf_utils.datasets import load_dataset
from deepstrf_utils.datasets import synthetic, synthetic_mismatched as mis
from deepstrf_utils.datasets.collate import collate_responses
from deepstrf_utils.metrics import cc_norm
from deepstrf_utils.models.ridge import fit_ridge_strf
from deepstrf_utils.stimuli import burst

SMALL = dict(n_neurons=4, n_clips=4, clip_s=(0.6, 0.8), n_repeats=6)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The default mismatched population (12 neurons, 20 clips of 1.5-2 s, 8 repeats)."""
    return load_dataset("synthetic", root=tmp_path_factory.mktemp("mis"), population="mismatched")


def _padded(ds, arrays=None):
    stim, resp, _ = collate_responses([ds[i] for i in range(len(ds))])
    if arrays is None:
        return stim, resp.numpy()
    out = np.zeros((len(arrays), arrays[0].shape[0], resp.shape[-1]), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, :, : a.shape[1]] = a
    return stim, resp.numpy(), out


def test_generation_is_deterministic_by_seed_and_cached(tmp_path):
    a = mis.generate_mismatched(seed=1, **SMALL)
    b = mis.generate_mismatched(seed=1, **SMALL)
    c = mis.generate_mismatched(seed=2, **SMALL)
    assert all(np.array_equal(x, y) for x, y in zip(a.responses, b.responses))
    assert all(np.array_equal(x, y) for x, y in zip(a.ground_truth["rate"], b.ground_truth["rate"]))
    assert not np.array_equal(a.stimuli[0][:, :50], c.stimuli[0][:, :50])
    first = load_dataset("synthetic", root=tmp_path, population="mismatched", seed=1, **SMALL)
    assert mis.cache_path(tmp_path, seed=1, **SMALL).is_file()
    again = load_dataset("synthetic", root=tmp_path, population="mismatched", seed=1, **SMALL)
    assert all(np.array_equal(x, y) for x, y in zip(first.responses, again.responses))
    assert again.ground_truth["neuron_type"].tolist() == a.ground_truth["neuron_type"].tolist()
    assert again.meta["options"]["population"] == "mismatched"


def test_the_default_population_and_its_cache_are_unchanged(tmp_path):
    default = synthetic.cache_path(tmp_path)
    assert default.name.startswith("synthetic_") and "mismatched" not in default.name
    assert mis.cache_path(tmp_path) != default and mis.cache_path(tmp_path).parent == default.parent
    assert mis.cache_path(tmp_path, seed=1) != mis.cache_path(tmp_path)
    small = load_dataset("synthetic", root=tmp_path, population="model_family", n_neurons=2, n_clips=3, clip_s=1.0,
                         n_repeats=2)
    assert small.name == "synthetic" and synthetic.cache_path(tmp_path, n_neurons=2, n_clips=3, clip_s=1.0,
                                                              n_repeats=2).is_file()
    with pytest.raises(ValueError, match="population"):
        load_dataset("synthetic", root=tmp_path, population="mirror")
    with pytest.raises(ValueError, match="unknown options"):
        load_dataset("synthetic", root=tmp_path, population="mismatched", n_lags=3)
    with pytest.raises(ValueError, match="multiple of the 0.5 ms"):
        mis.generate_mismatched(dt_ms=5.25, **SMALL)


def test_sizes_rates_types_and_oracle(full):
    assert full.n_neurons == 12 and full.n_stimuli == 20 and full.n_bands == 32 and full.dt_ms == 5.0
    assert set(full.n_repeats.tolist()) == {8}
    assert full.n_bins.min() >= 300 and full.n_bins.max() <= 400
    train, val, test = full.split(0)
    assert (train.n_stimuli, val.n_stimuli, test.n_stimuli) == (12, 4, 4)
    assert 3500 < train.n_bins.sum() < 4800
    assert set(full.neurons["neuron_type"]) == set(mis.NEURON_TYPES)
    observed = np.array([np.mean([r[n].mean() for r in full.responses]) for n in range(full.n_neurons)]) * 200.0
    assert np.all((observed > 5) & (observed < 30)), observed
    assert np.all((full.neurons["mean_rate_hz"] > 5) & (full.neurons["mean_rate_hz"] < 30))
    _, resp, oracle = _padded(full, full.ground_truth["rate"])
    score = cc_norm(oracle, resp)
    assert 0.97 < np.median(score) < 1.03 and score.min() > 0.9, score
    # true_rate recomputes the stored ground truth from the stimuli
    again = mis.true_rate(full.stimuli[:2], full.ground_truth)
    np.testing.assert_allclose(again[1], full.ground_truth["rate"][1], rtol=1e-5, atol=1e-7)


def test_refractory_period_is_honoured_and_the_expected_counts_are_exact():
    rng = np.random.default_rng(0)
    tau_abs, tau_rel = np.array([1.0, 2.5]), np.array([2.0, 6.0])
    lam = np.full((1, 2, 200), 400.0)  # 400 spikes/s for 1 s (bins of 5 ms)
    spikes = mis.simulate_spikes(lam, tau_abs, tau_rel, 200, rng, dt_ms=5.0)
    assert spikes.shape == (1, 2, 200, 2000) and spikes.max() == 1
    for n in range(2):
        for r in range(200):
            t = np.flatnonzero(spikes[0, n, r]) * mis.FINE_DT_MS
            assert np.all(np.diff(t) > tau_abs[n]), (n, r, np.diff(t).min())
    # the observed mean count per bin matches the exact expected count of the same process
    expected = mis.expected_counts(lam, tau_abs, tau_rel, 5.0)
    observed = spikes.reshape(1, 2, 200, 200, 10).sum(-1).mean(2)
    np.testing.assert_allclose(observed.mean(-1), expected.mean(-1), rtol=0.03)
    assert expected[0, 1].mean() < expected[0, 0].mean() < 400 * 0.005  # refractoriness lowers the rate


def test_depression_adapts_with_a_level_dependent_shape_unlike_a_linear_high_pass():
    steps = {level: np.full((1, 200), level) for level in (0.25, 1.0)}  # 1 s tone steps
    out = {level: mis.depress(u, 0.4, 300.0, 5.0)[0] for level, u in steps.items()}
    for d in out.values():
        assert np.all(np.diff(d) <= 1e-12) and d[-1] < 0.7 * d[0]  # the response decays
    shape = {level: d / d[0] for level, d in out.items()}
    assert shape[1.0][40] < shape[0.25][40] - 0.1  # louder: deeper and faster depletion
    # a fixed linear filter (AdapTrans' ON channel) gives the same shape at every level
    lin = {level: adaptrans_filter(torch.tensor(u, dtype=torch.float32).reshape(1, 1, 1, -1), torch.tensor([0.95]),
                                   torch.tensor([0.95]), torch.tensor([0.8]), 60)[0, 0, 0].numpy()
           for level, u in steps.items()}
    np.testing.assert_allclose(lin[1.0] / lin[1.0][0], lin[0.25] / lin[0.25][0], atol=1e-5)


def test_onset_neurons_adapt_to_a_long_sound(full):
    gt = full.ground_truth
    onset = np.flatnonzero(gt["neuron_type"] == "onset")
    assert onset.size
    for n in onset:
        bf = gt["bf_hz"][n]
        step = burst(full.cf_hz, 340, 200.0, hold_ms=1000.0, band_hz=(bf / 1.6, bf * 1.6), dt_ms=5.0)
        rate = mis.true_rate([step], gt)[0][n]
        assert rate[40:80].max() > 3 * rate[200:240].mean(), (n, rate[40:80].max(), rate[200:240].mean())


def test_a_ridge_strf_cannot_fit_the_mismatched_neurons(full):
    train, val, test = full.split(0)
    model, _ = fit_ridge_strf(train, val, n_lags=20)
    stim, resp, oracle = _padded(test, test.ground_truth["rate"])
    with torch.no_grad():
        pred = model(stim).numpy()
    ridge, best = cc_norm(pred, resp), cc_norm(oracle, resp)
    assert np.nanmean(ridge) < np.nanmean(best) - 0.25, (ridge, best)
