"""The figures of notebook 06 (vision): stimuli and true receptive fields, prediction accuracy
with and without AdapTrans, receptive-field recovery, size tuning, most exciting movies,
flash and direction experiments, and the Allen check.

Every panel labels its axes with units (pixels, ms, spikes per frame, correlation), every
image has a colour bar with its unit, panels are lettered (A, B, ...) and no text is under
8 pt (:data:`~.plotting.STYLE`). Each figure function returns the figure with its caption
in ``fig.caption`` (what is shown and what is left out); save it with
:func:`~.plotting.save_figure` (300 dpi PNG, PDF, ``<name>.caption.md``).
Shapes: N neurons, H x W pixels, K lags.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .plotting import label_panels, plot_psth, plot_raster, plot_scatter_diagonal, styled, symmetric_limit, to_numpy

__all__ = ["plot_frame", "figure_population", "figure_prefilter_scores", "figure_rfs", "figure_size_tuning",
           "figure_meis", "figure_flash_direction", "figure_allen"]

KIND_COLOURS = {"adapting": "tab:orange", "sustained": "tab:blue", "unknown": "tab:gray"}


def plot_frame(ax, image, vmax: float | None = None, signed: bool = True, clabel: str = "weight (a.u.)",
               colorbar: bool = True, title: str | None = None, cmap: str | None = None):
    """An ``(H, W)`` map with pixel axes; signed maps use a diverging colour map centred at 0."""
    img = to_numpy(image)
    if img.ndim != 2:
        raise ValueError(f"expected an image of shape (H, W), got {img.shape}")
    if signed:
        v = vmax if vmax is not None else (float(np.abs(img).max()) or 1.0)
        im = ax.imshow(img, cmap=cmap or "RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
    else:
        im = ax.imshow(img, cmap=cmap or "gray", vmin=0.0, vmax=vmax if vmax is not None else 1.0,
                       interpolation="nearest")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label(clabel)
    return im


def _peak_frame(rf) -> np.ndarray:
    """The frame ``(H, W)`` at the lag of largest |value| of a field ``(H, W, K)`` or ``(C, H, W, K)``."""
    r = to_numpy(rf)
    r = r.sum(0) if r.ndim == 4 else r
    return r[..., int(np.argmax(np.abs(r).reshape(-1, r.shape[-1]).max(0)))]


@styled
def figure_population(dataset, neurons: Sequence[int], movie: int = 0):
    """Top: one frame of each segment kind of movie ``movie``; middle: the true receptive
    fields of ``neurons`` at their peak lag; bottom: the spikes, PSTH and true rate of the
    first neuron over that movie, and its mean luminance, segments labelled."""
    from ..datasets.synthetic_visual import movie_segments

    gt = dataset.ground_truth
    segs = movie_segments(gt["segments"][movie])
    ncol = max(len(segs), len(neurons), 3)
    fig, axes = plt.subplots(3, ncol, figsize=(3.1 * ncol, 8.4), constrained_layout=True, squeeze=False)
    stim = dataset.stimuli[movie][0]
    for j, (kind, a, b) in enumerate(segs):
        plot_frame(axes[0, j], stim[..., (a + b) // 2], signed=False, clabel="luminance (0-1)",
                   title=f"{kind}\nframe {(a + b) // 2}")
    # an adapting cell's field acts on its polarity's AdapTrans channel: signed by polarity, it reads on luminance
    fields = [gt["rf"][n] * (gt["polarity"][n] if gt["adapting"][n] else 1.0) for n in neurons]
    vmax, _ = symmetric_limit(fields, 100)
    for j, (n, field) in enumerate(zip(neurons, fields)):
        t = "ON" if gt["polarity"][n] > 0 else "OFF"
        kind = "adapting" if gt["adapting"][n] else "sustained"
        ds = "" if np.isnan(gt["direction_deg"][n]) else f", DS {gt['direction_deg'][n]:.0f} deg"
        plot_frame(axes[1, j], _peak_frame(field), vmax, clabel="true RF on luminance (a.u.)",
                   title=f"neuron {n}\n{t}, {kind}{ds}")
    dt = float(dataset.dt_ms)
    n0 = neurons[0]
    plot_raster(axes[2, 0], dataset.responses[movie][n0], dt, title=f"neuron {n0}, {dataset.stim_names[movie]}")
    plot_psth(axes[2, 1], dataset.responses[movie][n0], dt, pred=gt["rate"][movie][n0], ylabel="rate (spikes / frame)")
    axes[2, 1].lines[-1].set_label("true rate")
    axes[2, 1].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes[2, 2].plot(np.arange(stim.shape[-1]) * dt / 1000.0, stim.mean((0, 1)), color="k")
    axes[2, 2].set_xlabel("time (s)")
    axes[2, 2].set_ylabel("mean luminance (0-1)")
    for ax in axes[2, :3]:
        for kind, a, b in segs:
            ax.axvline(a * dt / 1000.0, color="0.6", lw=0.6)
            ax.text((a + b) / 2 * dt / 1000.0, 1.0, kind, transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom")
    for ax in list(axes[2, 3:]) + list(axes[0, len(segs):]) + list(axes[1, len(neurons):]):
        ax.axis("off")
    label_panels([axes[0, j] for j in range(len(segs))] + [axes[1, j] for j in range(len(neurons))]
                 + list(axes[2, :3]))
    fig.caption = ("Synthetic population: a frame of each segment of a movie; true receptive fields at their peak lag, "
                 "one colour scale, signed as on luminance (an adapting cell's field acts on its polarity's rectified "
                 "AdapTrans channel); a neuron's spikes, PSTH and true rate over the movie, segments marked.")
    return fig


@styled
def figure_prefilter_scores(scores: pd.DataFrame, tests: Sequence[dict], metric: str = "cc_norm"):
    """Per model, each neuron's test score with AdapTrans against without (averaged over seeds),
    coloured by the planted kind; the paired tests in the titles."""
    models = list(dict.fromkeys(scores["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.4 * len(models), 4.2), constrained_layout=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        sub = scores[scores["model"] == model]
        wide = sub.groupby(["neuron", "kind", "prefilter"])[metric].mean().unstack("prefilter").reset_index()
        for kind, g in wide.groupby("kind"):
            plot_scatter_diagonal(ax, g["none"], g["adaptrans"], f"{metric} without prefilter", f"{metric} with AdapTrans",
                                  lim=(-0.2, 1.0), label=kind, color=KIND_COLOURS.get(kind, "k"), s=24)
        line = "\n".join(f"{t['kind']}: {t['n_better']}/{t['n']} better, p={t['p_value']:.3g}"
                         for t in tests if t["model"] == model)
        ax.set_title(f"{model}\n{line}")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    n_nan = int(scores[metric].isna().sum())
    label_panels(axes[0])
    fig.caption = (f"Test {metric} per neuron (mean over seeds) with AdapTrans per pixel against without; "
                 f"Wilcoxon signed-rank over neurons of each kind. {n_nan} neuron-fits with undefined {metric} "
                 "(no reliable signal) are left out.")
    return fig


@styled
def figure_rfs(fields: dict, ground_truth: dict, neurons: Sequence[int], recoveries: dict | None = None):
    """Rows: the true receptive field (signed as on luminance) and each estimate in ``fields``
    (``{label: (N, C, H, W, K) or (N, H, W, K)}``), at each one's peak lag, for ``neurons``;
    each panel its own symmetric colour scale (a noisy estimate would flatten the others). ``recoveries`` (``{label: vision_interpret.rf_recovery
    table}``) marks the true centre (+) and each estimate's centre (o)."""
    gt = ground_truth
    truth = np.asarray(gt["rf"]) * np.where(np.asarray(gt["adapting"], bool), np.asarray(gt["polarity"]), 1.0)[:, None, None, None]
    rows = {"truth": truth, **{k: to_numpy(v) for k, v in fields.items()}}
    fig, axes = plt.subplots(len(rows), len(neurons), figsize=(2.9 * len(neurons), 2.6 * len(rows)),
                             constrained_layout=True, squeeze=False)
    for i, (label, rf) in enumerate(rows.items()):
        for j, n in enumerate(neurons):
            plot_frame(axes[i, j], _peak_frame(rf[n]), None, clabel=f"{label} (a.u.)", title=f"{label}, neuron {n}")
            axes[i, j].plot(*np.asarray(gt["centre_xy"])[n], "k+", ms=9)
            if recoveries and label in recoveries:
                r = recoveries[label].set_index("neuron").loc[n]
                axes[i, j].plot(r["x"], r["y"], "o", mfc="none", mec="k", ms=9)
    label_panels(axes.ravel())
    fig.caption = ("Receptive fields at their peak lag: truth (signed as on luminance) and estimates, each panel its "
                 "own symmetric colour scale; + true centre, o the centre read from that row's field. Fields on "
                 "AdapTrans channels are shown as ON - OFF.")
    return fig


@styled
def figure_size_tuning(tables: dict, neurons: Sequence[int], optimal: dict | None = None):
    """Size-tuning curves of ``neurons``: one line per source in ``tables`` (``{label: size_tuning
    table}``), each normalised to its peak; dotted: the DoG's optimal radius (``optimal`` {n: r})."""
    fig, axes = plt.subplots(1, len(neurons), figsize=(3.2 * len(neurons), 3.2), constrained_layout=True, squeeze=False)
    for ax, n in zip(axes[0], neurons):
        for label, table in tables.items():
            g = table[table["neuron"] == n].sort_values("radius")
            peak = g["response"].abs().max() or 1.0
            ax.plot(g["radius"], g["response"] / peak, marker="o", ms=3, label=label)
        if optimal and n in optimal and np.isfinite(optimal[n]):
            ax.axvline(optimal[n], color="k", ls=":", lw=1, label="DoG optimum")
        ax.set_xlabel("disc radius (pixels)")
        ax.set_ylabel("response / peak")
        ax.set_title(f"neuron {n}")
    axes[0, -1].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    label_panels(axes[0])
    fig.caption = ("Size tuning: mean rate during a disc of the neuron's polarity centred on its field, minus the "
                 "grey baseline, normalised to each curve's peak (surround suppression: the fall beyond the peak).")
    return fig


@styled
def figure_meis(meis: dict, ground_truth: dict | None = None):
    """Most exciting movies (``{neuron: MEIResult}``): the last four frames of each (input -
    baseline), one colour scale per neuron; the true RF at its peak lag beside, if given."""
    neurons = list(meis)
    ncol = 4 + (ground_truth is not None)
    fig, axes = plt.subplots(len(neurons), ncol, figsize=(2.7 * ncol, 2.5 * len(neurons)), constrained_layout=True,
                             squeeze=False)
    for i, n in enumerate(neurons):
        res = meis[n]
        movie = to_numpy(res.input)[0] - res.constraints["baseline"]
        frames = [movie[..., -k] for k in range(4, 0, -1)]
        vmax, _ = symmetric_limit(frames, 100)
        for j, frame in enumerate(frames):
            plot_frame(axes[i, j], frame, vmax, clabel="luminance - baseline (0-1 scale)", colorbar=j == 3,
                       title=f"neuron {n}, frame t-{3 - j}")
        if ground_truth is not None:
            plot_frame(axes[i, 4], _peak_frame(ground_truth["rf"][n]), None, clabel="true RF (a.u.)", title="true RF")
    caption = meis[neurons[0]].caption() if neurons else ""
    label_panels([ax for ax in axes.ravel() if ax.get_label() != "<colorbar>"])
    fig.caption = f"Most exciting movies (last four frames; the response is read at frame t). Constraints: {caption}."
    return fig


@styled
def figure_flash_direction(flash_tables: dict, direction_tables: dict, flash_neurons: Sequence[int],
                           ds_neuron: int | None, dt_label: str = "time from onset (ms)"):
    """Left: ON / OFF full-field step responses of ``flash_neurons`` for each source (``{label:
    flash_responses table}``); right: direction tuning of ``ds_neuron`` (polar)."""
    n = len(flash_neurons)
    fig = plt.figure(figsize=(3.4 * (n + 1), 3.4), constrained_layout=True)
    for j, neuron in enumerate(flash_neurons):
        ax = fig.add_subplot(1, n + 1, j + 1)
        for (label, table), ls in zip(flash_tables.items(), ("-", "--", ":")):
            for flash, colour in (("ON", "tab:red"), ("OFF", "tab:blue")):
                g = table[(table["neuron"] == neuron) & (table["flash"] == flash)]
                ax.plot(g["time_ms"], g["rate"], ls=ls, color=colour, label=f"{label} {flash}")
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlabel(dt_label)
        ax.set_ylabel("rate (spikes / frame)")
        ax.set_title(f"neuron {neuron}: flashes")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax = fig.add_subplot(1, n + 1, n + 1, projection="polar")
    if ds_neuron is not None:
        for label, table in direction_tables.items():
            g = table[table["neuron"] == ds_neuron].sort_values("direction")
            theta = np.deg2rad(np.r_[g["direction"], g["direction"].iloc[:1]])
            r = np.r_[g["response"], g["response"].iloc[:1]]
            ax.plot(theta, r / (np.abs(r).max() or 1.0), marker="o", ms=3, label=label)
        ax.set_title(f"neuron {ds_neuron}: direction tuning\n(mean rate / max; angle: motion direction)")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.1, 1.0))
    label_panels([ax for ax in fig.axes if ax.get_label() != "<colorbar>"])
    fig.caption = ("Full-field ON and OFF steps (grey to 0.9 / 0.1 luminance at 0 ms) and direction tuning to drifting "
                 "gratings, truth and fitted models; rates in spikes per frame.")
    return fig


@styled
def figure_allen(table: pd.DataFrame, summary: pd.DataFrame):
    """Allen check: per neuron, CNN against ridge test correlation (averaged over seeds), and
    the distributions of the three models' per-neuron correlations."""
    wide = table.pivot_table(index="neuron", columns="model", values="cc_raw", aggfunc="mean")
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.2), constrained_layout=True)
    plot_scatter_diagonal(axes[0], wide["ridge"], wide["cnn"], "ridge RF: test correlation", "CNN: test correlation",
                          lim=(-0.8, 0.8), s=12)
    row = summary[summary["seed"] == "all seeds"].iloc[0]
    axes[0].set_title(f"CNN better for {int(row['cnn_better'])}/{int(row['neurons'])} neurons"
                      + (f"\nWilcoxon p={row['wilcoxon_p']:.3g}" if "wilcoxon_p" in row else ""))
    bins = np.linspace(-1, 1, 41)
    for m in wide.columns:
        axes[1].hist(wide[m].dropna(), bins=bins, histtype="step", lw=1.5, label=f"{m} (median {wide[m].median():.3f})")
    axes[1].axvline(0, color="k", lw=0.6)
    axes[1].set_xlabel("test correlation over 18 images (per neuron)")
    axes[1].set_ylabel("neurons (#)")
    axes[1].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    n_seeds = table["seed"].nunique()
    label_panels(axes)
    fig.caption = (f"Allen V1 natural scenes (212 neurons, 18 test images, {n_seeds} seeds of the validation draw): "
                 "per-neuron correlation between prediction and response over the test images (no noise ceiling "
                 "exists: one averaged response per image); cnn_shuffled = the same CNN fitted on shuffled images "
                 "(chance level). Neurons with a constant prediction (undefined correlation) are left out.")
    return fig
