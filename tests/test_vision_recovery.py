"""The synthetic visual ground truth recovered, and the in-silico experiments on known neurons:
receptive-field centres and polarity, AdapTrans helping where the planted cells adapt (paired
Wilcoxon over neurons), size tuning of a difference-of-Gaussians neuron, direction tuning,
flash adaptation, gradient receptive fields and the most exciting movie of a linear neuron."""
import numpy as np
import pytest
import torch

from deepstrf_utils.interpret import vision as vi
from deepstrf_utils.datasets.synthetic_visual import VisualGroundTruth, load_synthetic_visual
from deepstrf_utils.models import VisualLinearNonlinear, fit_ridge_rf
from deepstrf_utils.training import evaluate
from deepstrf_utils.runs.vision import paired_prefilter_test


@pytest.fixture(scope="module")
def population():
    """16 neurons (8 adapting) on 10 x 10 pixels, 12 movies of white noise, natural-like,
    grating and flash segments; the last three movies are the test set."""
    torch.set_num_threads(1)
    pop = load_synthetic_visual(n_neurons=16, frame_hw=(10, 10), n_repeats=5, n_movies=12, segment_frames=60, seed=3)
    return pop.replace(split_spec={"test": [9, 10, 11], "n_val": 2})


@pytest.fixture(scope="module")
def ridge_fits(population):
    train, val, test = population.split(0)
    out = {}
    for label, pre in (("none", None), ("adaptrans", "adaptrans")):
        model, _ = fit_ridge_rf(train, val, n_lags=6, prefilter=pre, alphas=np.logspace(-1, 5, 7))
        out[label] = (model, evaluate(model, test))
    return out


@pytest.mark.slow
def test_rf_centres_and_polarity_recovered(population, ridge_fits):
    """Ridge receptive fields on the luminance: centre within 1.5 pixels and the right ON/OFF
    polarity for at least 13 of 16 neurons (adapting ones included)."""
    model, _ = ridge_fits["none"]
    table = vi.rf_recovery(vi.rf_summary(vi.weight_rf(model)), population.ground_truth)
    good = (table["error_px"] < 1.5) & table["polarity_ok"]
    assert good.sum() >= 13, table
    assert table["polarity_ok"].mean() >= 0.85


@pytest.mark.slow
def test_adaptrans_helps_where_the_planted_cells_adapt(population, ridge_fits):
    """Paired over the adapting neurons, the receptive field on AdapTrans' ON/OFF channels
    predicts test responses better than the one on the luminance (Wilcoxon p < 0.05)."""
    import pandas as pd

    kind = np.where(population.ground_truth["adapting"], "adapting", "sustained")
    scores = pd.concat([s.assign(model="VisualLinearNonlinear", prefilter=label, seed=0, kind=kind)
                        for label, (_, s) in ridge_fits.items()])
    test = paired_prefilter_test(scores, "VisualLinearNonlinear", "adapting")
    assert test["n"] == 8 and test["n_better"] >= 7 and test["p_value"] < 0.05, test
    assert test["mean_adaptrans"] > test["mean_none"] + 0.03


def test_size_tuning_of_a_dog_neuron_peaks_at_its_optimal_radius(population):
    """Discs on the true neurons: every sustained neuron's response peaks within half a pixel
    of the radius where its difference of Gaussians peaks, then falls (surround suppression)."""
    gt = population.ground_truth
    truth = VisualGroundTruth.from_ground_truth(gt)
    radii = np.arange(0.5, 6.01, 0.5)
    table = vi.size_tuning(truth, gt["centre_xy"], radii, contrast=gt["polarity"], n_frames=24, onset=8)
    si = vi.suppression_index(table)
    for n in np.flatnonzero(~gt["adapting"] & np.isnan(gt["direction_deg"])):
        g = table[table["neuron"] == n]
        best = g["radius"].to_numpy()[np.argmax(g["response"].to_numpy())]
        opt = vi.dog_optimal_radius(gt["sigma_centre"][n], gt["sigma_surround"][n], gt["surround_weight"][n])
        assert abs(best - opt) <= 0.5, (n, best, opt)
        assert si[n] > 0.1  # the largest disc drives it less than the best one
    annuli = vi.size_tuning(truth, gt["centre_xy"][:1], [0.0, 2.0, 4.0], kind="annulus", contrast=gt["polarity"][:1],
                            n_frames=24, onset=8)
    # an annulus that spares the centre drives the surround alone: the response falls below the full field's
    assert annuli["response"].iloc[1] < annuli["response"].iloc[0]
    assert vi.dog_optimal_radius(1.0, 3.0, 0.0) == float("inf")


def test_direction_and_flash_experiments_on_the_truth(population):
    gt = population.ground_truth
    truth = VisualGroundTruth.from_ground_truth(gt)
    tuning = vi.direction_tuning(truth, directions=range(0, 360, 45), n_frames=64, skip=16)
    summary = tuning.attrs["summary"]
    ds = np.isfinite(gt["direction_deg"])
    assert ds.any()
    for n in np.flatnonzero(ds):
        err = abs((summary.loc[n, "preferred"] - gt["direction_deg"][n] + 180) % 360 - 180)
        assert err <= 45, (n, summary.loc[n, "preferred"], gt["direction_deg"][n])
    assert summary["dsi"][ds].mean() > summary["dsi"][~ds].mean() + 0.3
    flashes = vi.flash_responses(truth).attrs["summary"]
    pref = flashes[flashes["flash"] == np.where(gt["polarity"][flashes["neuron"]] > 0, "ON", "OFF")]
    adapting = gt["adapting"][pref["neuron"].to_numpy()]
    assert pref["adaptation"][adapting].min() > 0.3
    assert pref["adaptation"][~adapting].abs().max() < 0.1


def test_gradient_rf_of_the_truth_finds_every_centre(population):
    gt = population.ground_truth
    truth = VisualGroundTruth.from_ground_truth(gt)
    movies = torch.from_numpy(np.stack([population.stimuli[i] for i in range(3)]))
    rf = vi.gradient_rf(truth, movies, n_lags=6, n_windows=32)
    assert rf.shape == (16, 1, 10, 10, 6)
    table = vi.rf_recovery(vi.rf_summary(rf), gt)
    assert table["polarity_ok"].all() and table["error_px"].max() < 1.0, table


def test_most_exciting_movie_of_a_linear_neuron_is_its_receptive_field():
    torch.manual_seed(0)
    model = VisualLinearNonlinear((1, 6, 6), n_neurons=2, n_lags=4, nonlinearity=None)
    result = vi.most_exciting_movie(model, neuron=1, n_frames=4, energy=2.0, baseline=0.5, steps=60, n_starts=2)
    assert result.input.shape == (1, 6, 6, 4)
    rf = model.rf()[1, 0].flip(-1)  # frame t - k at position K - 1 - k of the window
    r = np.corrcoef((result.input[0] - 0.5).ravel(), rf.ravel())[0, 1]
    assert r > 0.99 and abs(result.achieved_energy[result.best] - 2.0) < 1e-4
    assert "||x - 0.5|| <= 2" in result.caption()
