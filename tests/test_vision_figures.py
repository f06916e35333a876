"""The figures of notebook 06 follow the project's figure rules (tests/test_figures.py::check_figure):
lettered panels, colour bars with units, legends off the data, no text under 8 pt, a caption in
``fig.caption``; saved at 300 dpi with their caption file."""
import numpy as np
import pandas as pd
import pytest
import torch

import matplotlib.pyplot as plt

from deepstrf_utils.datasets.synthetic_visual import VisualGroundTruth, load_synthetic_visual
from deepstrf_utils.interpret import vision as vi
from deepstrf_utils.models import VisualLinearNonlinear, fit_ridge_rf
from deepstrf_utils.report import figures_vision as vf
from deepstrf_utils.report.figures import GALLERY_ORDER
from deepstrf_utils.report.plotting import save_figure
from test_figures import _png_size, check_figure


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def pop():
    torch.set_num_threads(1)
    return load_synthetic_visual(n_neurons=6, frame_hw=(8, 8), n_repeats=3, n_movies=5, segment_frames=24, seed=1)


@pytest.fixture(scope="module")
def ridge(pop):
    train, val, _ = pop.split(0)
    model, _ = fit_ridge_rf(train, val, n_lags=4, alphas=np.logspace(0, 4, 5))
    return model


def test_population_and_rf_figures(pop, ridge):
    fig = vf.figure_population(pop, [0, 1, 2])
    letters = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "panel-letter"]
    check_figure(fig, len(letters))
    assert len(letters) >= 3 + 3 + 3  # segment frames, true fields, raster / PSTH / luminance
    rec = vi.rf_recovery(vi.rf_summary(vi.weight_rf(ridge)), pop.ground_truth)
    fig = vf.figure_rfs({"ridge": vi.weight_rf(ridge)}, pop.ground_truth, [0, 1, 2], {"ridge": rec})
    check_figure(fig, 6)
    labels = sorted({ax.get_label() for ax in fig.axes})
    assert "<colorbar>" in labels


def test_scores_size_tuning_flash_and_direction_figures(pop):
    rng = np.random.default_rng(0)
    rows = [{"model": m, "prefilter": p, "seed": s, "neuron": n, "kind": "adapting" if n < 3 else "sustained",
             "cc_norm": float(rng.uniform(0, 1))}
            for m in ("VisualLinearNonlinear", "SpatioTemporalCNN") for p in ("none", "adaptrans") for s in (0, 1)
            for n in range(6)]
    tests = [{"model": m, "kind": k, "n_better": 2, "n": 3, "p_value": 0.5}
             for m in ("VisualLinearNonlinear", "SpatioTemporalCNN") for k in ("adapting", "sustained")]
    check_figure(vf.figure_prefilter_scores(pd.DataFrame(rows), tests), 2)
    gt = pop.ground_truth
    truth = VisualGroundTruth.from_ground_truth(gt)
    sizes = vi.size_tuning(truth, gt["centre_xy"][:2], [0.5, 1.5, 3.0], contrast=gt["polarity"][:2], n_frames=12, onset=4)
    check_figure(vf.figure_size_tuning({"truth": sizes}, [0, 1], {0: 1.0}), 2)
    flashes = vi.flash_responses(truth)
    tuning = vi.direction_tuning(truth, directions=range(0, 360, 90), n_frames=24, skip=8)
    fig = vf.figure_flash_direction({"truth": flashes}, {"truth": tuning}, [0, 1], 0)
    check_figure(fig, 3)


def test_mei_and_allen_figures_and_the_saved_files(pop, tmp_path):
    torch.manual_seed(0)
    model = VisualLinearNonlinear((1, 8, 8), n_neurons=2, n_lags=4, nonlinearity=None)
    meis = {n: vi.most_exciting_movie(model, neuron=n, n_frames=4, energy=2.0, baseline=0.5, steps=5, n_starts=1)
            for n in (0, 1)}
    fig = vf.figure_meis(meis, pop.ground_truth)
    check_figure(fig, 10)
    cbars = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert "luminance - baseline (0-1 scale)" in cbars
    rng = np.random.default_rng(1)
    table = pd.DataFrame([{"seed": s, "neuron": n, "model": m, "cc_raw": float(rng.uniform(-0.5, 0.5))}
                          for s in range(3) for n in range(20) for m in ("ridge", "cnn", "cnn_shuffled")])
    from deepstrf_utils.runs.vision import allen_summary

    fig = vf.figure_allen(table, allen_summary(table))
    check_figure(fig, 2)
    paths = save_figure(fig, "fig_vision_allen", tmp_path)
    assert [p.name for p in paths] == ["fig_vision_allen.png", "fig_vision_allen.pdf", "fig_vision_allen.caption.md"]
    w, _ = _png_size(paths[0])
    assert w > fig.get_size_inches()[0] * 300 * 0.8  # 300 dpi
    assert "3 seeds" in paths[2].read_text()


def test_vision_figures_have_a_place_in_the_gallery():
    assert "fig_vision_" in GALLERY_ORDER
    assert GALLERY_ORDER.index("fig_vision_") > GALLERY_ORDER.index("fig_sessions_state")
