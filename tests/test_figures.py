"""Figures a reader can trust: every figure function returns a figure with lettered panels,
colour bars with units, legends off the data, no text under 8 pt and a caption; save_figure
writes a 300 dpi PNG, the PDF and the caption; the gallery README is made from the captions.

No image comparison: the tests read the artists back (labels, scales, offsets, extents).
"""
import struct

import numpy as np
import pandas as pd
import pytest
import torch

import matplotlib.pyplot as plt
from matplotlib.text import Annotation

from deepstrf_utils.report.plotting import STYLE, label_panels, lag_window, log_axis, response_unit, save_figure


# ----------------------------------------------------------------------------------------
# checks shared by every figure
# ----------------------------------------------------------------------------------------
def _letters(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts
            if isinstance(t, Annotation) and t.get_gid() == "panel-letter"]


def _colorbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def _data_points(ax):
    """Display coordinates of what an axes draws: line vertices (segments sampled), scatter
    offsets, error-bar segments, bar corners and centres."""
    pts = []
    for line in ax.lines:
        xy = line.get_transform().transform(np.column_stack(line.get_data()).astype(float))
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        for a, b in zip(xy[:-1], xy[1:]):
            pts.append(a + np.linspace(0, 1, 40)[:, None] * (b - a))
        pts.append(xy)
    for col in ax.collections:
        if hasattr(col, "get_segments") and col.get_segments():
            for seg in col.get_segments():
                seg = col.get_transform().transform(np.asarray(seg, dtype=float))
                for a, b in zip(seg[:-1], seg[1:]):
                    pts.append(a + np.linspace(0, 1, 40)[:, None] * (b - a))
        elif len(col.get_offsets()):
            pts.append(col.get_offset_transform().transform(np.asarray(col.get_offsets(), dtype=float)))
    for patch in ax.patches:
        box = patch.get_window_extent()
        if box.width > 0 and box.height > 0:
            pts.append(np.array([[box.x0, box.y0], [box.x1, box.y1], [box.x0, box.y1], [box.x1, box.y0],
                                 [(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2]]))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def _legend_covers_data(fig, draw: bool = True) -> list:
    """(legend, axes, n points) for every legend that lies over data of an axes."""
    if draw:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [(lg, [ax]) for ax in fig.axes if (lg := ax.get_legend()) is not None]
    legends += [(lg, fig.axes) for lg in fig.legends]
    hits = []
    for lg, axes in legends:
        box = lg.get_window_extent(renderer)
        for ax in axes:
            if ax.get_label() == "<colorbar>":
                continue
            pts = _data_points(ax)
            clip = ax.get_window_extent(renderer)
            inside_ax = (pts[:, 0] >= clip.x0) & (pts[:, 0] <= clip.x1) & (pts[:, 1] >= clip.y0) & (pts[:, 1] <= clip.y1)
            inside = inside_ax & (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
            if inside.any():
                hits.append((lg, ax, int(inside.sum())))
    return hits


def _small_text(fig, minimum: float = 8.0) -> list:
    return [(t.get_text(), t.get_fontsize()) for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))
            if hasattr(t, "get_text") and t.get_text().strip() and t.get_visible() and t.get_fontsize() < minimum]


def _letters_overlap_text(fig) -> list:
    renderer = fig.canvas.get_renderer()
    letters = [t for ax in fig.axes for t in ax.texts if t.get_gid() == "panel-letter"]
    others = [t for ax in fig.axes for t in (ax.title, ax._left_title, ax._right_title) if t.get_text()]
    return [(a.get_text(), b.get_text()) for a in letters for b in others
            if a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer))]


def check_figure(fig, n_panels: int, caption: bool = True):
    """The properties every multi-panel figure of the project must have."""
    letters = _letters(fig)
    assert letters == [chr(65 + i) for i in range(n_panels)], letters
    fig.canvas.draw()  # once: the checks below read the drawn layout
    assert not _legend_covers_data(fig, draw=False)
    assert not _small_text(fig), _small_text(fig)
    assert not _letters_overlap_text(fig)
    if caption:
        assert isinstance(fig.caption, str) and len(fig.caption) > 80
    for cb in _colorbars(fig):
        assert "(" in cb.get_ylabel() and ")" in cb.get_ylabel(), f"colour bar without a unit: {cb.get_ylabel()!r}"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------------------
# plotting helpers
# ----------------------------------------------------------------------------------------
def _png_size(path):
    head = path.read_bytes()[:24]
    return struct.unpack(">II", head[16:24])


def test_save_figure_writes_300_dpi_png_pdf_and_caption(tmp_path, caplog):
    fig = plt.figure(figsize=(2.0, 1.0))
    fig.add_axes([0, 0, 1, 1]).axis("off")
    fig.patch.set_facecolor("k")
    fig.caption = "A black box, for a test."
    paths = save_figure(fig, "fig_box", tmp_path)
    assert [p.name for p in paths] == ["fig_box.png", "fig_box.pdf", "fig_box.caption.md"]
    w, h = _png_size(paths[0])
    assert abs(w - 660) <= 4 and abs(h - 360) <= 4  # (2 + 0.2) x (1 + 0.2) inch (tight bbox pad) at 300 dpi
    assert paths[2].read_text() == "A black box, for a test.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary left
    assert oct(paths[0].stat().st_mode & 0o777) != oct(0o600)
    # an explicit caption wins; none -> a warning and no caption file
    assert save_figure(fig, "fig_box2", tmp_path, caption="other")[2].read_text() == "other\n"
    del fig.caption
    with caplog.at_level("WARNING"):
        assert len(save_figure(fig, "fig_plain", tmp_path, dpi=100)) == 2
    assert "without a caption" in caplog.text
    with pytest.raises(TypeError, match="caption as a str"):
        save_figure(fig, "fig_bad", tmp_path, caption=3)


def test_label_panels_lag_window_log_axis_and_units():
    fig, axes = plt.subplots(1, 3)
    assert label_panels(axes) == ["A", "B", "C"] and _letters(fig) == ["A", "B", "C"]
    assert label_panels(axes[:1], start=26) == ["AA"]
    # lags 0, 1 hold 1 + 1 of 2.01 units of energy; the third lag the rest
    a = np.array([[1.0, 1.0, 0.1, 0.0]])
    assert lag_window([a], share=0.4) == 1 and lag_window([a], share=0.99) == 2 and lag_window([a], share=1.0) == 3
    assert lag_window([np.zeros((2, 5))]) == 5 and lag_window([a], share=0.4, min_lags=3) == 3
    assert lag_window([a, np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0]])], share=0.9) == 7  # different K
    with pytest.raises(ValueError, match="share"):
        lag_window([a], share=0)
    log_axis(axes[0], [0, 5, 20, 400])
    log_axis(axes[1], [10, 100])
    assert axes[0].get_xscale() == "symlog" and axes[1].get_xscale() == "log"
    assert list(axes[0].get_xticks()) == [0, 5, 20, 400]
    with pytest.raises(ValueError, match="non-negative"):
        log_axis(axes[2], [-1, 2])

    class D:
        dt_ms, meta = 5.0, {"units": "spike counts per bin; stimulus in thresholded log-power [0, 1]"}

    assert response_unit(D()) == ("spikes/s", 200.0)
    D.meta = {"units": "mV; membrane potential"}
    assert response_unit(D()) == ("mV", 1.0)
    assert STYLE["savefig.dpi"] == 300 and min(v for k, v in STYLE.items() if "size" in k) >= 8


def test_strf_table_has_a_colour_bar_per_scale_group_and_crops_lags():
    from deepstrf_utils.report.figures import plot_strf_table

    rng = np.random.default_rng(0)
    cf = [500.0, 1000.0, 2000.0, 4000.0]
    rows = [[rng.normal(size=(4, 10)) for _ in range(5)] for _ in range(2)]
    fig = plot_strf_table(rows, 5.0, cf, col_groups=[0, 1, 1, 2, 2], row_labels=["a", "b"],
                          colorbar_label={0: "LN (a.u.)", 1: "ON/OFF (a.u.)", 2: "truth (a.u.)"})
    assert [cb.get_ylabel() for cb in _colorbars(fig)] == ["LN (a.u.)", "ON/OFF (a.u.)", "truth (a.u.)"] * 2
    check_figure(fig, 10, caption=False)  # a building block: the figure functions that use it caption it
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    # ON and OFF of a row share one scale, the truth its own
    assert panels[1].collections[0].get_clim() == panels[2].collections[0].get_clim()
    assert panels[1].collections[0].get_clim() != panels[3].collections[0].get_clim()
    fig = plot_strf_table(rows, 5.0, cf, n_lags=4)  # one scale per row; 4 of 10 lags
    assert len(_colorbars(fig)) == 2 and _colorbars(fig)[0].get_ylabel() == "weight (a.u.)"
    ax = [a for a in fig.axes if a.get_label() != "<colorbar>"][0]
    assert ax.get_xlim() == pytest.approx((-2.5, 17.5))  # lags 0..3 at 5 ms, bin edges
    fig = plot_strf_table(rows, 5.0, cf, vmax=0.5, colorbar_label="x (u)")
    assert len(_colorbars(fig)) == 1 and _colorbars(fig)[0]._colorbar.extend == "both"
    with pytest.raises(ValueError, match="colour-bar label for every column group"):
        plot_strf_table(rows, 5.0, cf, col_groups=[0, 1, 1, 2, 2], colorbar_label={0: "a"})


# ----------------------------------------------------------------------------------------
# notebooks 01, 02
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    """A small synthetic dataset (6 neurons, 10 ms bins: short AdapTrans kernels)."""
    from deepstrf_utils.datasets.synthetic import generate_synthetic

    return generate_synthetic(n_neurons=6, n_clips=6, clip_s=1.2, n_repeats=4, dt_ms=10.0, n_bands=8, seed=1)


def test_dataset_example_psth_in_spikes_per_second(small):
    from deepstrf_utils.report.figures import plot_dataset_example
    from deepstrf_utils.metrics import trial_average

    fig = plot_dataset_example(small, stimulus=0, neurons=[0, 2])
    check_figure(fig, 5)
    psth = [ax for ax in fig.axes if "PSTH" in ax.get_ylabel()]
    assert len(psth) == 2 and psth[0].get_ylabel() == "PSTH (spikes/s)"
    expected = trial_average(np.asarray(small.responses[0][0], dtype=float), axis=0) * 1000.0 / small.dt_ms
    np.testing.assert_allclose(psth[0].lines[0].get_ydata(), expected)


def test_noise_ceiling_figure_draws_the_reliability_threshold():
    from deepstrf_utils.report.figures import noise_ceiling_figure
    from deepstrf_utils.report.reliability import MIN_CC_MAX

    fig = noise_ceiling_figure({"a": np.array([0.3, 0.8, 0.9, np.nan])}, {"a": np.array([20, 20, 1])})
    check_figure(fig, 2)
    ax = fig.axes[0]
    vlines = [ln for ln in ax.lines if np.allclose(ln.get_xdata(), MIN_CC_MAX)]
    assert len(vlines) == 1 and "0.58" in vlines[0].get_label()
    assert "3 of 4 neurons with a ceiling, 1 below the threshold" in fig.caption
    assert "1 without a repeated stimulus" in fig.caption
    with pytest.raises(ValueError, match="same datasets"):
        noise_ceiling_figure({"a": [0.5]}, {"b": [2]})


def test_figure1_in_ms_and_hz_with_the_legend_off_the_step_response():
    from deepstrf_utils.interpret import insilico
    from deepstrf_utils.report.figures import figure1_adaptrans

    step = insilico.step_response(w=0.75, tau_bins=20.0, n_bins=300, onset=50, offset=200)
    box = insilico.box_spectrogram(n_bands=16, n_bins=200, onset=20, offset=120, dt_ms=5.0)
    curves = []
    for tau in (5.0, 20.0):
        for w in (0.1, 1.0):
            omega, on_db, off_db = insilico.bode(tau_bins=tau, w=w, n_freq=64)
            curves.append({"omega": omega, "on_db": on_db, "off_db": off_db, "w": w, "tau": tau})
    fig = figure1_adaptrans(step, box, curves, kernel_step=insilico.step_response(w=0.75, tau_bins=5.0), dt_ms=5.0)
    check_figure(fig, 9)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert panels[0].get_xlabel() == "lag (ms)" and panels[2].get_xlabel() == "time (ms)"
    assert panels[6].get_xlabel() == "modulation frequency (Hz)"
    assert panels[2].lines[2].get_xdata()[-1] == pytest.approx(299 * 5.0)
    assert panels[6].get_xlim()[1] == pytest.approx(1.75 / (2 * np.pi * 0.005))
    assert "tau = 25 ms" in panels[6].get_legend_handles_labels()[1][0]
    assert all("(" in cb.get_ylabel() for cb in _colorbars(fig)) and len(_colorbars(fig)) == 3


def test_insilico_off_figure_puts_every_condition_on_a_log_axis():
    from deepstrf_utils.interpret import insilico
    from deepstrf_utils.adaptrans import AdapTrans
    from deepstrf_utils.report.figures import insilico_off_figure

    pre = AdapTrans(n_bands=6, dt_ms=10.0)
    fig = insilico_off_figure(insilico.off_response_vs_fall_time(pre, [0, 10, 20, 100]),
                              insilico.off_response_vs_duration(pre, [20, 100, 400]),
                              insilico.on_response_vs_rise_time(pre, [0, 10, 100]), n_shown=3)
    check_figure(fig, 3)
    assert [ax.get_xscale() for ax in fig.axes] == ["symlog", "log", "symlog"]
    assert len(fig.legends) == 1 and "3 of 6 bands" in fig.caption


# ----------------------------------------------------------------------------------------
# notebook 05
# ----------------------------------------------------------------------------------------
def _results(noisy_cc_norm=2.5, models=("Linear", "LinearNonlinear")):
    rows = []
    spec = {"a": (0.5, 0.8), "b": (0.6, 0.9), "c": (0.55, 0.85), "noisy": (0.9, 0.2)}
    for model in models:
        for pre, gain in (("none", 1.0), ("adaptrans", 1.2)):
            for seed in (0, 1, 2):
                for nid, (cc, cmax) in spec.items():
                    norm = noisy_cc_norm if nid == "noisy" else cc * gain / cmax
                    rows.append({"dataset": "synthetic", "model": model, "prefilter": pre, "seed": seed, "neuron": nid,
                                 "cc_raw": cc * gain, "cc_norm": norm, "cc_max": cmax, "config_id": f"{model}{pre}"})
    return pd.DataFrame(rows)


def test_performance_figure_legends_off_the_bars_n_and_seeds_in_titles_sem_vs_ci():
    from deepstrf_utils.report.figures_results import performance_figure

    fig, table = performance_figure(_results(), labels={"Linear": "L", "LinearNonlinear": "LN"})
    check_figure(fig, 2)
    bars, scatter = fig.axes[0], fig.axes[1]
    assert bars.get_title() == "synthetic: 3 reliable of 4 neurons, 3 seed(s)"
    assert bars.get_ylabel() == "CCnorm (%)" and table["CCnorm (%)"].iloc[0] == pytest.approx(
        100 * np.mean([0.5 / 0.8, 0.6 / 0.9, 0.55 / 0.85]))
    # the SEM (thick, no caps, on the bar's centre) and the CI (thin, capped, white diamonds, offset)
    sem = [c for c in bars.containers if type(c).__name__ == "ErrorbarContainer" and c.has_yerr and not c.has_xerr]
    widths = sorted({round(float(c.lines[2][0].get_linewidth()[0]), 2) for c in sem})
    assert widths == [0.8, 2.2]
    diamonds = [ln for ln in bars.lines if ln.get_marker() == "D"]
    bar_centres = sorted(p.get_x() + p.get_width() / 2 for p in bars.patches)
    assert len(diamonds) == 2 and not set(np.round(diamonds[0].get_xdata(), 6)) & set(np.round(bar_centres, 6))
    assert diamonds[0].get_markerfacecolor() == "white"
    # the excluded neuron (250 %) is far beyond the reliable span: an arrow at the edge, its values in the caption
    arrows = [c for c in scatter.collections if len(c.get_offsets()) == 1 and np.all(np.asarray(c.get_offsets()) > 80)]
    assert len(arrows) == 2 and np.asarray(arrows[0].get_offsets()).max() < scatter.get_xlim()[1]
    assert "2 excluded point(s) lie beyond the axes" in fig.caption and "L (250, 250); LN (250, 250)" in fig.caption
    assert fig.caption == table.attrs["caption"]
    # ... and one within reach is drawn at its own value, inside the axes
    fig, _ = performance_figure(_results(noisy_cc_norm=0.86))
    xs = [c for c in fig.axes[1].collections if len(c.get_offsets()) == 1
          and np.allclose(np.asarray(c.get_offsets()), 86.0)]
    assert len(xs) == 2  # L and LN: one x each, at (86, 86), not clipped
    lo, hi = fig.axes[1].get_xlim()
    assert lo < 86.0 < hi


def test_sessions_state_figure_same_quantity_on_both_gain_axes_and_ccnorm_in_percent():
    """Over seeds: every neuron's gains in A, one point per seed in B and C (the mean CCnorm in %
    over the reliable neurons), the seeds where the new model is better counted."""
    from deepstrf_utils.report.figures_results import sessions_state_figure

    rows = []
    for seed in (0, 1):
        for i in range(5):
            g = -0.4 + 0.2 * i
            for model in ("LN", "LN + state gain"):
                rows.append({"experiment": "state_gain", "model": model, "neuron": f"n{i}", "seed": seed,
                             "planted_gain": g, "fitted_gain": 0.9 * g if model != "LN" else np.nan,
                             "reliable": i != 4, "cc_norm": 0.5 + 0.05 * i + (0.1 if model != "LN" else 0.0)})
            for model in ("NRF, smallest session alone", "NRF core shared by 3 sessions"):
                rows.append({"experiment": "shared_core", "model": model, "neuron": f"s{i}", "seed": seed,
                             "planted_gain": np.nan, "fitted_gain": np.nan, "reliable": True,
                             "cc_norm": 0.6 + 0.02 * i + (0.05 * seed if "shared" in model else 0.0)})
    fig = sessions_state_figure(pd.DataFrame(rows))
    check_figure(fig, 3)
    a, b, c = fig.axes[:3]
    assert "g / g0" in a.get_xlabel() and "g / g0" in a.get_ylabel() and "r = 1.00" in a.get_title()
    assert b.get_xlabel() == "CCnorm (%), LN"
    np.testing.assert_allclose(np.asarray(b.collections[0].get_offsets())[0], [57.5, 67.5])  # neurons 0-3, in %
    assert b.get_title() == "state input: better on 2 of 2 seeds"
    assert c.get_title() == "smallest session: better on 1 of 2 seeds"
    assert "2 seed(s)" in fig.caption and "2 of 10 neuron scores left out" in fig.caption
    with pytest.raises(ValueError, match="run_sessions_state"):
        sessions_state_figure(pd.DataFrame({"x": [1]}))


def test_gallery_markdown_orders_figures_and_writes_each_caption(tmp_path):
    from deepstrf_utils.report.figures import gallery_markdown

    for name in ("fig_performance", "fig1_adaptrans", "fig_vision_extra"):
        fig = plt.figure(figsize=(1, 1))
        if name != "fig_vision_extra":
            fig.caption = f"Caption of {name}."
        save_figure(fig, name, tmp_path, formats=("png",))
    text = gallery_markdown(tmp_path, intro="From a test run.")
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads == ["## fig1_adaptrans", "## fig_performance", "## fig_vision_extra"]
    assert "![fig1_adaptrans](fig1_adaptrans.png)\n\nCaption of fig1_adaptrans." in text
    assert "no caption" in text and text.startswith("# Figures\n\nFrom a test run.")
    with pytest.raises(FileNotFoundError, match="png"):
        gallery_markdown(tmp_path / "empty")


# ----------------------------------------------------------------------------------------
# notebook 04, on small untrained models (the figures, not the fits, are under test)
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fits(small):
    from deepstrf_utils.models import build_model
    from deepstrf_utils.models import UnitView

    torch.manual_seed(0)
    ids = [str(n) for n in small.neuron_ids]
    kw = dict(n_bands=small.n_bands, dt_ms=small.dt_ms)
    pre = dict(prefilter="adaptrans", prefilter_kwargs={"cf_hz": list(small.cf_hz), "rectify": "relu"})
    out = {"LN": {n: build_model("LinearNonlinear", n_lags=20, **kw).eval() for n in ids},
           "LN + AdapTrans": {n: build_model("LinearNonlinear", n_lags=20, **kw, **pre).eval() for n in ids},
           "NRF": {n: build_model("NetworkReceptiveField", n_lags=6, n_hidden=7, **kw).eval() for n in ids},
           "NRF + AdapTrans": {n: build_model("NetworkReceptiveField", n_lags=6, n_hidden=3, **kw, **pre).eval()
                               for n in ids}}
    cnn = build_model("ConvNet2D", n_neurons=len(ids), kernel_size=(3, 3), **kw, **pre).eval()
    out["2D-CNN + AdapTrans"] = {"population": cnn, **{n: UnitView(cnn, i) for i, n in enumerate(ids)}}
    return out


def test_example_neurons_and_onoff_strf_figure(small, fits):
    from deepstrf_utils.report.figures_strfs import example_neurons, onoff_strf_figure

    ids = example_neurons(small, 2)
    assert len(ids) == 2 and set(ids) <= {str(n) for n in small.neuron_ids}
    fig = onoff_strf_figure(small, fits["LN"], fits["LN + AdapTrans"], ids)
    check_figure(fig, 10)  # 2 neurons x (LN, ON, OFF, true ON, true OFF)
    assert [cb.get_ylabel().split("\n")[0] for cb in _colorbars(fig)][:3] == ["LN weight (a.u.)", "LN + AdapTrans",
                                                                              "true weight (a.u.)"]
    assert f"2 of the 6 neurons (rows: {ids[0]}, {ids[1]})" in fig.caption


def test_nrf_hidden_and_gradient_strf_figures(small, fits):
    from deepstrf_utils.report.figures_strfs import gradient_strf_figure, nrf_hidden_figure

    nid = str(small.neuron_ids[0])
    fig = nrf_hidden_figure(small, fits["NRF"][nid], nid, ncols=5)
    check_figure(fig, 7)
    assert len(_colorbars(fig)) == 2  # one per row of 5
    models = {k: fits[k] for k in ("LN + AdapTrans", "NRF + AdapTrans")}
    fig = gradient_strf_figure(small, models, small.split(0)[2], [nid], n_lags=6, top_fraction=0.2)
    check_figure(fig, 2)
    assert len(_colorbars(fig)) == 1 and "spikes/s per input unit" in _colorbars(fig)[0].get_ylabel()


def test_adaptrans_params_figure_log_tau_axes_and_a_labelled_w(small, fits):
    from deepstrf_utils.report.figures_strfs import adaptrans_params_figure

    fig = adaptrans_params_figure(small, fits["LN + AdapTrans"])
    check_figure(fig, 3)
    a, b, c = fig.axes
    assert a.get_yscale() == "log" and b.get_yscale() == "log" and c.get_yscale() == "linear"
    assert c.get_ylabel().startswith("w: ") and "1 - w" in c.get_ylabel()
    assert len(fig.legends) == 1 and "all 6 neurons" in fig.caption
    assert len(a.lines) == 6 + 3  # a line per neuron, the median, the initialisation, the truth


def test_synthetic_recovery_figure_points_per_neuron_channel_and_seed(small, fits):
    from deepstrf_utils.report.figures_strfs import synthetic_recovery_figure

    by_seed = {0: fits["LN + AdapTrans"], 1: fits["LN + AdapTrans"]}
    fig, stats = synthetic_recovery_figure(small, fits["LN"], by_seed, seed=0)
    check_figure(fig, 2)
    assert list(stats.index) == [0, 1]
    title = fig.axes[1].get_title()
    assert "neuron x channel x seed (2 seeds)" in title and "mean of the per-seed r" in title
    import re

    n_on, n_off = map(int, re.search(r"(\d+) ON and (\d+) OFF points", fig.caption).groups())
    assert sum(len(c.get_offsets()) for c in fig.axes[1].collections) == n_on + n_off > 0
    assert "one point per neuron, channel and seed (2 seeds" in fig.caption
    with pytest.raises(ValueError, match="true tau factors"):
        synthetic_recovery_figure(small.replace(ground_truth=None), fits["LN"], by_seed, 0)


def test_driven_moments_uses_select_driven_bins_with_a_gap():
    from deepstrf_utils.report.figures_interpret import driven_moments

    class Ramp(torch.nn.Module):
        def forward(self, x):
            return x.sum(2)  # (B, 1, T): the summed input

    stim = np.zeros((2, 30), dtype=np.float32)
    stim[:, [5, 6, 7, 20, 21]] = [[5, 4, 3, 2, 1]] * 2
    assert driven_moments(Ramp(), stim, first=0, n=2, gap=3) == [5, 20]
    assert driven_moments(Ramp(), stim, first=0, n=3, gap=1) == [5, 6, 7]
    assert driven_moments(Ramp(), stim, first=10, n=2, gap=1) == [20, 21]
    with pytest.raises(ValueError, match="first"):
        driven_moments(Ramp(), stim, first=30, n=2)


def test_dstrf_and_dpc_figures_crop_the_lags_to_the_energy_window(small, fits):
    from deepstrf_utils.interpret.dstrf import default_n_lags
    from deepstrf_utils.report.figures_interpret import dpc_figures, dstrf_moments_figure

    nid = str(small.neuron_ids[0])
    stim = small.stimuli[0]
    models = {lab: fits[lab][nid] for lab in ("LN + AdapTrans", "2D-CNN + AdapTrans")}
    fig = dstrf_moments_figure(small, models, stim, nid, n_moments=2)
    check_figure(fig, 4)
    R = max(default_n_lags(m) for m in models.values())
    right = max(ax.get_xlim()[1] for ax in fig.axes if ax.get_label() != "<colorbar>")
    assert right < (R - 0.5) * small.dt_ms and "99 % of the panels' summed squared dSTRF" in fig.caption
    assert len(_colorbars(fig)) == 2 and "spikes/s" in _colorbars(fig)[0].get_ylabel()
    spectra, comps = dpc_figures(small, {lab: fits[lab] for lab in ("LN", "LN + AdapTrans")}, stim,
                                 [nid, str(small.neuron_ids[1])], n_bins=4, n_components=2)
    assert len(spectra.axes) == 1 and not _legend_covers_data(spectra) and "2 example neurons" in spectra.caption
    check_figure(comps, 6)
    assert [cb.get_ylabel().split("\n")[0] for cb in _colorbars(comps)] == ["mean dSTRF", "dPC weight (unit norm)"] * 2


def test_mei_figure_one_scale_and_the_constraints_in_the_caption(small, fits):
    from deepstrf_utils.report.figures_interpret import mei_figure

    nid = str(small.neuron_ids[0])
    fig = mei_figure(small, small.split(0)[0], fits["LN"], fits["LN + AdapTrans"], [nid], n_starts=1, steps=3)
    check_figure(fig, 3)
    assert len(_colorbars(fig)) == 1 and "input units" in _colorbars(fig)[0].get_ylabel()
    assert "||x - " in fig.caption and "1 starts, 3 projected gradient steps" in fig.caption


def test_insilico_figures_of_fitted_models(small, fits):
    from deepstrf_utils.report.figures_interpret import insilico_bands_figure, insilico_models_figure

    conds = dict(fall_times_ms=[0, 100], durations_ms=[50, 200], rise_times_ms=[0, 100])
    fig, summary = insilico_models_figure(small, fits["LN + AdapTrans"], fits["2D-CNN + AdapTrans"], conds)
    check_figure(fig, 3)
    assert [ax.get_xscale() for ax in fig.axes] == ["symlog", "log", "symlog"] and len(fig.legends) == 1
    assert set(summary.index.get_level_values("label")) == {"LN + AdapTrans", "2D-CNN + AdapTrans", "truth"}
    show = [str(n) for n in small.neuron_ids[:2]]
    fig, peaks = insilico_bands_figure(small, fits["LN + AdapTrans"], fits["2D-CNN + AdapTrans"], show, hold_ms=50.0)
    check_figure(fig, 4)
    assert len(fig.legends) == 1 and set(peaks.index.get_level_values("neuron")) == set(show)
