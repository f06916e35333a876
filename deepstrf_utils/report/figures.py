"""Multi-panel figures of notebooks 01 and 02, the STRF table, and the gallery's captions.

Every figure function builds its figure under :data:`~deepstrf_utils.report.plotting.STYLE`, puts a
letter on each panel, and sets ``fig.caption``: what is shown, with n, and what was excluded
and why (:func:`~deepstrf_utils.report.plotting.save_figure` writes it beside the image).

- :func:`plot_dataset_example` -- a stimulus with rasters and PSTHs (notebook 01);
- :func:`noise_ceiling_figure` -- CCmax per neuron with the reliability threshold (notebook 01);
- :func:`figure1_adaptrans` -- the AdapTrans kernels, step / box responses, Bode magnitudes
  (paper Figure 1, notebook 02);
- :func:`insilico_off_figure` -- OFF / ON amplitude vs fall time, duration, rise time (notebook 02);
- :func:`plot_strf_table` -- a table of STRF images with colour bars (notebook 04);
- :func:`gallery_markdown` -- ``figures/README.md``: every figure of a run with its caption.

Notebook 04's figures: :mod:`.figures_strfs` and :mod:`.figures_interpret`; notebook 05's:
:mod:`.figures_results`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..metrics import trial_average
from .plotting import (CAPTION_SUFFIX, label_panels, log_axis, plot_band_heatmap, plot_bode, plot_cochleagram,
                       plot_histogram, plot_kernel_stem, plot_psth, plot_raster, plot_strf, plot_trace,
                       plot_vs_frequency, read_caption, response_unit, styled, to_numpy)

# after .plotting, which picks the non-interactive backend when there is no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["plot_dataset_example", "noise_ceiling_figure", "figure1_adaptrans", "insilico_off_figure",
           "plot_by_band", "plot_strf_table", "GALLERY_ORDER", "gallery_markdown"]


@styled
def plot_dataset_example(dataset, stimulus: int = 0, neurons: Sequence[int] | None = None, n_neurons: int = 3,
                         response_label: str | None = None):
    """Cochleagram of one stimulus of ``dataset`` with the raster and PSTH (trial-averaged
    response, in spikes/s for spike counts) of a few neurons (default: the ``n_neurons`` with
    the largest variance of their trial average on that stimulus). Returns the figure."""
    if not 0 <= stimulus < dataset.n_stimuli:
        raise ValueError(f"expected a stimulus index in [0, {dataset.n_stimuli}), got {stimulus}")
    spec = dataset.stimuli[stimulus]
    resp = np.asarray(dataset.responses[stimulus], dtype=float)  # (N, R, T)
    if neurons is None:
        with np.errstate(all="ignore"):
            var = np.nan_to_num(np.nanvar(trial_average(resp, axis=1), axis=-1), nan=-1.0)
        neurons = list(np.argsort(-var)[: min(n_neurons, resp.shape[0])])
    unit, factor = response_unit(dataset)
    unit = response_label or unit
    n = len(neurons)
    fig = plt.figure(figsize=(8, 2.2 + 1.6 * n), constrained_layout=True)
    gs = fig.add_gridspec(1 + n, 2, width_ratios=(1, 1), height_ratios=(1.4,) + (1,) * n)
    ax0 = fig.add_subplot(gs[0, :])
    plot_cochleagram(ax0, spec, dataset.dt_ms, dataset.cf_hz, clabel="input level (a.u.)",
                     title=f"{dataset.name}: {dataset.stim_names[stimulus]}")
    panels = [ax0]
    for i, u in enumerate(neurons):
        ax_r = fig.add_subplot(gs[1 + i, 0], sharex=ax0)
        plot_raster(ax_r, resp[u], dataset.dt_ms, title=f"neuron {dataset.neuron_ids[u]}: raster")
        ax_p = fig.add_subplot(gs[1 + i, 1], sharex=ax0)
        plot_psth(ax_p, trial_average(resp[u], axis=0) * factor, dataset.dt_ms, ylabel=f"PSTH ({unit})",
                  title=f"neuron {dataset.neuron_ids[u]}: PSTH")
        panels += [ax_r, ax_p]
    label_panels(panels)
    reps = int(np.sum(np.any(np.isfinite(resp[neurons[0]]), axis=-1))) if n else 0
    fig.caption = (
        f"{dataset.name}, stimulus {dataset.stim_names[stimulus]}. (A) Cochleagram (time in s, band centre "
        f"frequency in kHz, colour: input level). (B-{chr(65 + 2 * n)}) For the {n} neurons of the "
        f"{dataset.n_neurons} with the largest variance of their trial-averaged response on this stimulus: "
        f"raster (one row per trial, {reps} trials for the first) and PSTH (trial average, {unit}, "
        f"{dataset.dt_ms:g} ms bins). Nothing excluded.")
    return fig


@styled
def noise_ceiling_figure(ceilings: dict, repeats: dict, min_cc_max: float | None = None):
    """Noise ceilings and repeats per dataset: (A) histogram of CCmax per neuron with the
    reliability threshold (``min_cc_max``, default :data:`~deepstrf_utils.report.reliability.MIN_CC_MAX`)
    as a vertical line; (B) histogram of repeats per stimulus. ``ceilings``: ``{dataset: (N,)}``
    CCmax (NaN: no repeated stimulus); ``repeats``: ``{dataset: (B,)}``. Returns the figure."""
    from .reliability import MIN_CC_MAX

    threshold = MIN_CC_MAX if min_cc_max is None else float(min_cc_max)
    if set(ceilings) != set(repeats) or not ceilings:
        raise ValueError(f"expected ceilings and repeats for the same datasets, got {sorted(ceilings)} and "
                         f"{sorted(repeats)}")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3), constrained_layout=True)
    notes = []
    top = max(int(np.nanmax(to_numpy(r))) for r in repeats.values())
    for name in ceilings:
        cc = to_numpy(ceilings[name]).ravel()
        ok = np.isfinite(cc)
        plot_histogram(axes[0], cc, bins=np.linspace(0, 1, 21), xlabel="noise ceiling CCmax",
                       label=f"{name} (n = {int(ok.sum())})")
        plot_histogram(axes[1], repeats[name], bins=np.arange(0.5, top + 1.5), xlabel="repeats per stimulus (#)",
                       label=f"{name} ({len(to_numpy(repeats[name]).ravel())} stimuli)")
        below = int((cc[ok] < threshold).sum())
        notes.append(f"{name}: {ok.sum()} of {cc.size} neurons with a ceiling, {below} below the threshold"
                     + (f", {int((~ok).sum())} without a repeated stimulus (no ceiling, not drawn)" if (~ok).any() else ""))
    axes[0].axvline(threshold, color="k", ls="--", lw=1, label=f"reliability threshold {threshold:.2f}")
    axes[0].set_xlim(0, 1)
    axes[0].set_title("noise ceiling per neuron")
    axes[1].set_title("repeats per stimulus")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:  # head-room above the bars for the legend
        n_entries = len(ax.get_legend_handles_labels()[1])
        ax.set_ylim(0, ax.get_ylim()[1] * (1.1 + 0.13 * n_entries))
        ax.legend(loc="upper left")
    label_panels(axes)
    fig.caption = (
        f"(A) Distribution of the noise ceiling CCmax (split-half correlation of the test responses with the "
        f"Spearman-Brown correction) over neurons; dashed: the reliability threshold 1/sqrt(3) = {threshold:.2f}: "
        f"neurons below it are excluded from means and drawn as x in the performance figure. (B) How often each "
        f"stimulus was repeated. " + "; ".join(notes) + ".")
    return fig


@styled
def figure1_adaptrans(step: dict, box: dict, bode_curves: Sequence[dict], kernel_step: dict | None = None,
                      omega_max: float = 1.75, db_min: float = -40.0, dt_ms: float = 5.0):
    """The paper's Figure 1 from :mod:`deepstrf_utils.interpret.insilico` outputs, time in ms.

    (A, B) the ON and OFF kernels (``kernel_step["kernels"]`` (2, K), default ``step``'s);
    (C) a unit step and its ON / OFF responses (``step_response`` dict); (D-F) the box
    spectrogram and its ON and OFF outputs (``box_spectrogram`` dict); (G, H) Bode magnitudes
    of ON and OFF: ``bode_curves`` is a list of dicts with ``omega``, ``on_db``, ``off_db``,
    ``w``, ``tau`` (samples), drawn from 0 to ``omega_max`` rad/sample (in Hz) and from
    ``db_min`` dB; (I) the Willmore time constants. ``dt_ms``: the bin width of the step,
    kernels and Bode plots. Returns the figure.
    """
    ks = (kernel_step or step)["kernels"]
    fig = plt.figure(figsize=(11.5, 9.5), constrained_layout=True)
    gs = fig.add_gridspec(3, 3, height_ratios=(1, 1.1, 1))
    panels = []
    for j, (name, color) in enumerate((("ON", "tab:red"), ("OFF", "tab:blue"))):
        ax = fig.add_subplot(gs[0, j])
        plot_kernel_stem(ax, ks[j], color=color, title=f"{name} kernel", dt_ms=dt_ms)
        panels.append(ax)
    ax = fig.add_subplot(gs[0, 2])
    t_ms = np.arange(len(step["x"])) * dt_ms
    plot_trace(ax, step["x"], t_ms, label="input step", color="k", lw=1, xlabel="time (ms)")
    plot_trace(ax, step["on"], t_ms, label="ON", color="tab:red", xlabel="time (ms)")
    plot_trace(ax, step["off"], t_ms, label="OFF", color="tab:blue", title="step response", xlabel="time (ms)")
    ax.axhline(0, color="k", lw=0.4)
    lo = min(float(np.min(step["on"])), float(np.min(step["off"])))
    ax.set_ylim(lo - 0.1, 1.6)  # head-room above the data for the legend
    ax.legend(loc="upper center", ncols=3, handlelength=1.2, columnspacing=1.0)
    panels.append(ax)
    for j, (key, title) in enumerate((("x", "box spectrogram"), ("on", "ON output"), ("off", "OFF output"))):
        ax = fig.add_subplot(gs[1, j])
        plot_band_heatmap(ax, box[key], dt_ms=box["dt_ms"], cf_hz=box["cf_hz"], signed=key != "x",
                          colorbar=True, clabel="input level (a.u.)" if key == "x" else "output (input units)",
                          title=title)
        panels.append(ax)
    styles = {}
    taus = sorted({c["tau"] for c in bode_curves})
    for j, (key, name) in enumerate((("on_db", "ON"), ("off_db", "OFF"))):
        ax = fig.add_subplot(gs[2, j])
        for c in bode_curves:
            color = styles.setdefault(c["w"], f"C{len(styles)}")
            ls = "-" if c["tau"] == taus[0] else "--"
            plot_bode(ax, c["omega"], c[key], label=f"w = {c['w']:g}, tau = {c['tau'] * dt_ms:g} ms", color=color,
                      linestyle=ls, dt_ms=dt_ms)
        ax.set_xlim(0, omega_max / (2 * np.pi * dt_ms / 1000.0))
        ax.set_ylim(db_min, 3)
        ax.set_title(f"{name} magnitude")
        if j == 0:  # the ON curves leave the lower right empty
            ax.legend(loc="lower right", ncols=1)
        panels.append(ax)
    ax = fig.add_subplot(gs[2, 2])
    plot_vs_frequency(ax, box["cf_hz"], box["tau_ms"], ylabel="time constant tau (ms)", linestyle="-", marker="",
                      title="Willmore initialisation")
    panels.append(ax)
    label_panels(panels)
    on_bins = np.flatnonzero(np.asarray(step["x"]) > 0)
    sustained = float(step["on"][on_bins[-1]]) if on_bins.size else float("nan")
    fig.caption = (
        f"AdapTrans (Rançon et al. 2024, Figure 1), {dt_ms:g} ms bins. (A, B) ON and OFF kernels (weight of the "
        f"input at each lag; w = 0.75). (C) A unit step and its ON and OFF responses (sustained level 1 - w = "
        f"{sustained:.2f}); the signed (linear) outputs, as in the 2024 figure. (D) A {box['x'].shape[0]}-band box "
        f"spectrogram and (E, F) its ON and OFF outputs with each band's Willmore time constant: low bands adapt "
        f"more slowly. (G, H) Bode magnitude of the ON and OFF kernels for w in "
        f"{{{', '.join(f'{w:g}' for w in styles)}}} and tau in {{{', '.join(f'{t * dt_ms:g}' for t in taus)}}} ms "
        f"(solid / dashed), modulation frequency in Hz up to {omega_max / (2 * np.pi * dt_ms / 1000.0):.0f} Hz; "
        f"both are high-pass with a DC gain of 1 - w (w = 1: no DC gain, drawn down to {db_min:g} dB). (I) The "
        f"Willmore time constants tau(f) = 500 - 105 log10(f) ms that initialise each band.")
    return fig


def plot_by_band(ax, df, x: str, xlabel: str, y: str = "amplitude", ylabel: str = "amplitude (a.u.)",
                 n_shown: int = 5, title: str | None = None, legend: bool = True):
    """Lines of ``y`` against ``x`` for ``n_shown`` bands spread from low to high frequency,
    from a tidy DataFrame with columns band, cf_hz, ``x``, ``y`` (insilico outputs), ``x`` on
    a log axis (:func:`~deepstrf_utils.report.plotting.log_axis`; symmetric-log when a condition is 0)."""
    for col in ("band", "cf_hz", x, y):
        if col not in df.columns:
            raise ValueError(f"expected a DataFrame with column {col!r}; got {list(df.columns)}")
    bands = np.unique(df["band"].to_numpy())
    shown = bands[np.unique(np.linspace(0, len(bands) - 1, min(n_shown, len(bands))).round().astype(int))]
    cmap = plt.get_cmap("viridis")
    for i, b in enumerate(shown):
        d = df[df["band"] == b].sort_values(x)
        ax.plot(d[x], d[y], marker="o", ms=3, color=cmap(i / max(len(shown) - 1, 1)),
                label=f"{d['cf_hz'].iloc[0] / 1000:.1f} kHz")
    log_axis(ax, df[x].to_numpy(float))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(title="band")
    if title:
        ax.set_title(title)
    return len(shown)


@styled
def insilico_off_figure(fall, duration, rise, n_shown: int = 5):
    """OFF amplitude vs fall time (A) and preceding duration (B), ON amplitude vs rise time (C)
    of a prefilter (tables of :func:`~deepstrf_utils.interpret.insilico.off_response_vs_fall_time`,
    :func:`~deepstrf_utils.interpret.insilico.off_response_vs_duration`,
    :func:`~deepstrf_utils.interpret.insilico.on_response_vs_rise_time`), ``n_shown`` bands from low
    (dark) to high (light) frequency, every condition on a log axis (symmetric-log with 0 ms);
    one legend. Returns the figure."""
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.5), constrained_layout=True)
    shown = plot_by_band(axes[0], fall, "fall_ms", "fall time (ms)", ylabel="OFF amplitude (a.u.)",
                         title="OFF vs fall time", legend=False, n_shown=n_shown)
    plot_by_band(axes[1], duration, "duration_ms", "preceding sound duration (ms)", ylabel="OFF amplitude (a.u.)",
                 title="OFF vs duration", legend=False, n_shown=n_shown)
    plot_by_band(axes[2], rise, "rise_ms", "rise time (ms)", ylabel="ON amplitude (a.u.)", title="ON vs rise time",
                 legend=False, n_shown=n_shown)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=5, title="band")
    label_panels(axes)
    n_bands = int(fall["band"].nunique())
    fig.caption = (
        f"In-silico ON/OFF experiments on AdapTrans alone (Willmore initialisation, w = 0.75; our protocol: "
        f"broadband trapezoid sounds, the same envelope in every band). (A) OFF amplitude (peak of the rectified "
        f"OFF channel after the offset) against the fall time; (B) against the duration of the preceding sound; "
        f"(C) ON amplitude (peak of the rectified ON channel during the sound) against the rise time. {shown} of "
        f"{n_bands} bands shown, from low (dark) to high (light) frequency. Conditions on log axes; a 0 ms "
        f"condition sits on a symmetric-log axis, linear below the smallest non-zero condition.")
    return fig


def _colorbar(fig, mesh, axes, label: str, extend: str = "neither"):
    cb = fig.colorbar(mesh, ax=list(axes), shrink=0.9, pad=0.02, aspect=15, extend=extend)
    cb.set_label(label)
    return cb


@styled
def plot_strf_table(rows: Sequence[Sequence], dt_ms: float, cf_hz=None, row_labels: Sequence[str] | None = None,
                    col_labels: Sequence[str] | None = None, panel_size=(2.4, 2.0), share_row_scale: bool = True,
                    col_groups: Sequence[int] | None = None, vmax: float | None = None,
                    colorbar_label: str | dict = "weight (a.u.)", n_lags: int | None = None, letters: bool = True):
    """Table of STRF images: ``rows[i][j]`` is an (F, K) STRF or None (blank panel).

    Colour scales, each with its colour bar labelled ``colorbar_label`` (a str, or ``{group
    id: label}`` with ``col_groups``): with ``share_row_scale`` the panels of a row share one
    symmetric scale and one colour bar; with ``col_groups`` (one id per column) only the columns
    with the same id do (e.g. the ON and OFF STRFs of one model, but not the ground truth,
    which has other units), one colour bar per group and row; without either, every panel has
    its own. ``vmax`` sets one scale ``[-vmax, vmax]`` for every panel and one colour bar for
    the table, with arrows when an entry lies beyond it. ``n_lags`` crops every panel to lags
    ``0 .. n_lags - 1``. ``letters`` labels the panels A, B, ... in reading order. Returns the
    figure."""
    nrows = len(rows)
    ncols = max(len(r) for r in rows) if nrows else 0
    if nrows == 0 or ncols == 0:
        raise ValueError("expected at least one row with one STRF")
    groups = list(col_groups) if col_groups is not None else [0] * ncols
    if len(groups) < ncols:
        raise ValueError(f"expected col_groups with one id per column ({ncols}), got {len(groups)}")
    labels = colorbar_label if isinstance(colorbar_label, dict) else {g: colorbar_label for g in groups}
    if any(g not in labels for g in groups):
        raise ValueError(f"expected a colour-bar label for every column group {sorted(set(groups))}, got {labels}")
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols + 0.6, panel_size[1] * nrows),
                             squeeze=False, constrained_layout=True)
    crop = (lambda a: a[:, : int(n_lags)]) if n_lags is not None else (lambda a: a)
    scales = {}  # scale key -> [largest |entry|, [(i, j, STRF)], group]
    for i, row in enumerate(rows):
        row = [None if s is None else crop(to_numpy(s)) for s in row]
        for j in range(ncols):
            s = row[j] if j < len(row) else None
            if s is None:
                axes[i, j].axis("off")
                continue
            key = "all" if vmax is not None else (i, groups[j]) if (col_groups is not None or share_row_scale) else (i, j)
            entry = scales.setdefault(key, [0.0, [], groups[j]])
            entry[0] = max(entry[0], float(np.nanmax(np.abs(s))) if s.size else 0.0)
            entry[1].append((i, j, s))
    for key, (limit, cells, group) in scales.items():
        lim = float(vmax) if vmax is not None else (limit if limit > 0 else 1.0)
        for i, j, s in cells:
            ax = axes[i, j]
            title = col_labels[j] if (col_labels is not None and i == 0 and j < len(col_labels)) else None
            mesh = plot_strf(ax, s, dt_ms, cf_hz, vmax=lim, colorbar=False, title=title)
            if j > 0:
                ax.set_ylabel("")
            elif row_labels is not None:
                ax.set_ylabel(f"{row_labels[i]}\nfrequency (kHz)")
            if i < nrows - 1:
                ax.set_xlabel("")
        beyond = vmax is not None and limit > float(vmax)
        _colorbar(fig, mesh, [axes[i, j] for i, j, _ in cells] if key != "all" else axes.ravel(), labels[group],
                  extend="both" if beyond else "neither")
    shown = [axes[i, j] for i in range(nrows) for j in range(ncols) if axes[i, j].axison]
    if letters and len(shown) > 1:
        label_panels(shown)
    return fig


#: the order of the gallery (name prefixes, the notebooks' order); other figures follow by name
GALLERY_ORDER = ("fig_datasets_", "fig_noise_ceiling", "fig1_adaptrans", "fig_insilico_off", "fig_strfs_onoff_",
                 "fig_strfs_nrf_hidden_", "fig_strfs_gradient_", "fig_adaptrans_params_", "fig_synthetic_recovery",
                 "fig_dstrf_moments_", "fig_dpc_spectra_", "fig_dpcs_", "fig_mei_", "fig_insilico_models_",
                 "fig_insilico_bands_", "fig_performance", "fig_sessions_state", "fig_vision_")


def gallery_markdown(folder: str | os.PathLike, title: str = "Figures",
                     intro: str = "") -> str:
    """Markdown of every figure in ``folder`` (its PNGs, in :data:`GALLERY_ORDER`, others by
    name): one section per figure with the image and the caption that
    :func:`~deepstrf_utils.report.plotting.save_figure` wrote beside it ("no caption" when missing).
    Raises FileNotFoundError when ``folder`` holds no PNG."""
    folder = Path(folder)
    names = [p.stem for p in folder.glob("*.png")]
    if not names:
        raise FileNotFoundError(f"expected figures (*.png) in {folder}, found none")

    def rank(name):
        hit = [i for i, prefix in enumerate(GALLERY_ORDER) if name.startswith(prefix)]
        return (hit[0] if hit else len(GALLERY_ORDER), name)

    parts = [f"# {title}\n"] + ([intro.strip() + "\n"] if intro.strip() else [])
    for name in sorted(names, key=rank):
        caption = read_caption(folder, name)
        parts.append(f"## {name}\n\n![{name}]({name}.png)\n\n"
                     + (caption if caption else f"*(no caption: {name}{CAPTION_SUFFIX} missing)*") + "\n")
    return "\n".join(parts)
