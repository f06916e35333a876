"""Multi-panel figures of the notebooks, composed from the panel helpers of :mod:`.plotting`.

- :func:`plot_dataset_example` -- a stimulus with rasters and trial averages (notebook 01);
- :func:`figure1_adaptrans` -- the AdapTrans step / box / Bode figure (paper Figure 1, notebook 02);
- :func:`plot_strf_table` -- a table of STRFs, rows x columns (notebook 04);
- :func:`performance_figure` -- CCnorm without vs with the prefilter per model and dataset (notebook 05).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .metrics import trial_average
from .plotting import (plot_band_heatmap, plot_bode, plot_cochleagram, plot_kernel_stem, plot_paired_bars,
                       plot_psth, plot_raster, plot_scatter_diagonal, plot_strf, plot_trace, plot_vs_frequency,
                       to_numpy)

# after .plotting, which picks the non-interactive backend when there is no display
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_dataset_example", "figure1_adaptrans", "plot_strf_table", "performance_figure"]


def plot_dataset_example(dataset, stimulus: int = 0, neurons: Sequence[int] | None = None, n_neurons: int = 3,
                         response_label: str | None = None):
    """Cochleagram of one stimulus of ``dataset`` with the raster and trial-averaged
    response of a few neurons (default: the ``n_neurons`` with the most repeats and the
    largest response variance on that stimulus). Returns the figure."""
    if not 0 <= stimulus < dataset.n_stimuli:
        raise ValueError(f"expected a stimulus index in [0, {dataset.n_stimuli}), got {stimulus}")
    spec = dataset.stimuli[stimulus]
    resp = np.asarray(dataset.responses[stimulus], dtype=float)  # (N, R, T)
    if neurons is None:
        with np.errstate(all="ignore"):
            var = np.nan_to_num(np.nanvar(trial_average(resp, axis=1), axis=-1), nan=-1.0)
        neurons = list(np.argsort(-var)[: min(n_neurons, resp.shape[0])])
    units = response_label or ("spikes / bin" if "spike" in str(dataset.meta.get("units", "spike")) else "a.u.")
    n = len(neurons)
    fig = plt.figure(figsize=(8, 2.2 + 1.6 * n), constrained_layout=True)
    gs = fig.add_gridspec(1 + n, 2, width_ratios=(1, 1), height_ratios=(1.4,) + (1,) * n)
    ax0 = fig.add_subplot(gs[0, :])
    plot_cochleagram(ax0, spec, dataset.dt_ms, dataset.cf_hz,
                     title=f"{dataset.name}: {dataset.stim_names[stimulus]}")
    for i, u in enumerate(neurons):
        ax_r = fig.add_subplot(gs[1 + i, 0], sharex=ax0)
        plot_raster(ax_r, resp[u], dataset.dt_ms, title=f"neuron {dataset.neuron_ids[u]}")
        ax_p = fig.add_subplot(gs[1 + i, 1], sharex=ax0)
        plot_psth(ax_p, resp[u], dataset.dt_ms, ylabel=f"mean ({units})", title="trial average")
    return fig


def figure1_adaptrans(step: dict, box: dict, bode_curves: Sequence[dict], kernel_step: dict | None = None,
                      omega_max: float = 1.75, db_min: float = -40.0):
    """The paper's Figure 1 from :mod:`deepstrf_utils.insilico` outputs.

    (A) stem plots of the ON and OFF kernels (``kernel_step["kernels"]`` (2, K), default
    ``step``'s); (B) the step and its ON/OFF responses (``step_response`` dict), and the box
    spectrogram with its ON and OFF outputs (``box_spectrogram`` dict, heatmaps);
    (C) Bode magnitudes of ON and OFF: ``bode_curves`` is a list of dicts with ``omega``,
    ``on_db``, ``off_db``, ``w``, ``tau`` (samples), drawn from 0 to ``omega_max`` rad/sample
    and from ``db_min`` dB (w = 1 has no DC gain: -inf dB). Returns the figure.
    """
    ks = (kernel_step or step)["kernels"]
    fig = plt.figure(figsize=(12, 10), constrained_layout=True)
    gs = fig.add_gridspec(3, 3, height_ratios=(1, 1.1, 1))
    for j, (name, color) in enumerate((("ON", "tab:red"), ("OFF", "tab:blue"))):
        ax = fig.add_subplot(gs[0, j])
        plot_kernel_stem(ax, ks[j], color=color, title=f"A  {name} kernel")
    ax = fig.add_subplot(gs[0, 2])
    plot_trace(ax, step["x"], label="input step", color="k", lw=1)
    plot_trace(ax, step["on"], label="ON", color="tab:red")
    plot_trace(ax, step["off"], label="OFF", color="tab:blue", title="B  step response")
    ax.axhline(0, color="k", lw=0.4)
    ax.legend(frameon=False, fontsize="small")
    for j, (key, title) in enumerate((("x", "box spectrogram"), ("on", "ON output"), ("off", "OFF output"))):
        ax = fig.add_subplot(gs[1, j])
        plot_band_heatmap(ax, box[key], dt_ms=box["dt_ms"], cf_hz=box["cf_hz"], signed=key != "x",
                          colorbar=True, title=f"B  {title}")
    styles = {}
    for j, (key, name) in enumerate((("on_db", "ON"), ("off_db", "OFF"))):
        ax = fig.add_subplot(gs[2, j])
        for c in bode_curves:
            color = styles.setdefault(c["w"], f"C{len(styles)}")
            ls = "-" if c["tau"] == min(cc["tau"] for cc in bode_curves) else "--"
            plot_bode(ax, c["omega"], c[key], label=f"w={c['w']:g}, tau={c['tau']:g}", color=color, linestyle=ls)
        ax.set_xlim(0, omega_max)
        ax.set_ylim(db_min, 3)
        ax.set_title(f"C  {name} magnitude")
        if j == 1:
            ax.legend(frameon=False, fontsize="x-small", ncol=2)
    ax = fig.add_subplot(gs[2, 2])
    plot_vs_frequency(ax, box["cf_hz"], box["tau_ms"], ylabel="time constant tau (ms)", linestyle="-", marker="",
                      title="Willmore initialisation")
    return fig


def plot_strf_table(rows: Sequence[Sequence], dt_ms: float, cf_hz=None, row_labels: Sequence[str] | None = None,
                    col_labels: Sequence[str] | None = None, panel_size=(2.4, 2.0), share_row_scale: bool = True,
                    col_groups: Sequence[int] | None = None, vmax: float | None = None,
                    colorbar_label: str | None = None):
    """Table of STRF images: ``rows[i][j]`` is an (F, K) STRF or None (blank panel).

    With ``share_row_scale`` the panels of a row share one symmetric colour scale; with
    ``col_groups`` (one id per column) only the columns with the same id do (e.g. the ON
    and OFF STRFs of one model, but not the ground truth, which has other units). ``vmax``
    sets one symmetric scale ``[-vmax, vmax]`` for every panel instead; ``colorbar_label``
    (with ``vmax``) adds one colour bar for the table, with arrows when an entry lies beyond
    the scale. Returns the figure."""
    if colorbar_label is not None and vmax is None:
        raise ValueError("expected vmax (one colour scale for every panel) with colorbar_label")
    nrows = len(rows)
    ncols = max(len(r) for r in rows) if nrows else 0
    if nrows == 0 or ncols == 0:
        raise ValueError("expected at least one row with one STRF")
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                             squeeze=False, constrained_layout=True)
    groups = list(col_groups) if col_groups is not None else [0] * ncols
    if len(groups) < ncols:
        raise ValueError(f"expected col_groups with one id per column ({ncols}), got {len(groups)}")
    for i, row in enumerate(rows):
        scale = {}
        for j, s in enumerate(row):
            if s is not None:
                scale[groups[j]] = max(scale.get(groups[j], 0.0), float(np.nanmax(np.abs(to_numpy(s)))))
        for j in range(ncols):
            ax = axes[i, j]
            s = row[j] if j < len(row) else None
            if s is None:
                ax.axis("off")
                continue
            lim = vmax if vmax is not None else (scale[groups[j]] if (share_row_scale or col_groups is not None) else None)
            title = col_labels[j] if (col_labels is not None and i == 0) else None
            mesh = plot_strf(ax, s, dt_ms, cf_hz, vmax=lim, colorbar=False, title=title)
            if j > 0:
                ax.set_ylabel("")
            elif row_labels is not None:
                ax.set_ylabel(f"{row_labels[i]}\nfrequency (kHz)")
            if i < nrows - 1:
                ax.set_xlabel("")
    if colorbar_label is not None:
        beyond = any(s is not None and float(np.nanmax(np.abs(to_numpy(s)))) > vmax for r in rows for s in r)
        cb = fig.colorbar(mesh, ax=axes, shrink=0.8, pad=0.02, extend="both" if beyond else "neither")
        cb.set_label(colorbar_label)
    return fig


def performance_figure(results, metric: str = "cc_norm", models: Sequence[str] | None = None,
                       labels: dict | None = None, prefilter: str = "adaptrans", min_cc_max: float | None = None):
    """CCnorm (or ``metric``) without vs with ``prefilter`` per model and dataset.

    ``results``: the tidy table of ``run_configs`` (one row per neuron x seed x config).
    Scores are averaged over the seeds where each neuron was scored; only neurons passing the
    reliability rule (:data:`deepstrf_utils.reliability.RELIABILITY_RULE`; ``min_cc_max``
    overrides the ceiling) enter the statistics: bars show their mean ± SEM, black dots
    their median with a seeded bootstrap 95 % interval. The scatter shows one point per
    neuron and model (with vs without): reliable neurons as dots, excluded ones as x
    (clipped to the axes, whose range the reliable neurons set). One row of panels per
    dataset. Returns ``(fig, table)``: ``table`` holds the plotted statistics (%), the
    numbers of neurons used and excluded, and ``table.attrs["caption"]`` the caption (what
    is drawn, how many neurons were excluded and why).
    """
    import pandas as pd

    from .reliability import MIN_CC_MAX, exclusion_note, neuron_reliability, score_summary

    need = {"dataset", "model", "prefilter", "seed", "neuron", "cc_raw", "cc_norm", "cc_max", metric}
    if not need <= set(results.columns):
        raise ValueError(f"expected the run_configs results table with columns {sorted(need)}")
    df = results.copy()
    df["prefilter"] = df["prefilter"].fillna("none").astype(str)
    df = df[df["prefilter"].isin(["none", prefilter])]
    if df.empty:
        raise ValueError("expected at least one result row with prefilter 'none' or the given prefilter")
    ceiling = MIN_CC_MAX if min_cc_max is None else float(min_cc_max)
    per = neuron_reliability(df, keys=("dataset", "model", "prefilter"), min_cc_max=ceiling)
    per[metric] = 100.0 * per[metric]
    models = list(models or [m for m in per["model"].unique()])
    labels = labels or {}
    datasets = list(per["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 3.8 * len(datasets)), squeeze=False,
                             constrained_layout=True, gridspec_kw={"width_ratios": (1.6, 1)})
    rows, notes = [], []
    name = {"cc_norm": "CCnorm", "cc_raw": "CCraw"}.get(metric, metric)
    pre_label = "AdapTrans" if prefilter == "adaptrans" else prefilter
    for i, ds in enumerate(datasets):
        d = per[per["dataset"] == ds]
        stats = {}
        for m in models:
            for p in ("none", prefilter):
                sel = d[(d["model"] == m) & (d["prefilter"] == p)]
                st = score_summary(sel.loc[sel["reliable"], metric])
                stats[(m, p)] = st
                rows.append({"dataset": ds, "model": m, "prefilter": p, f"{name} (%)": st["mean"], "SEM": st["sem"],
                             "median": st["median"], "CI low": st["ci_low"], "CI high": st["ci_high"],
                             "neurons": st["n"], "excluded": int((~sel["reliable"]).sum())})
        ax = axes[i, 0]
        plot_paired_bars(ax, [labels.get(m, m) for m in models],
                         [stats[(m, "none")]["mean"] for m in models], [stats[(m, prefilter)]["mean"] for m in models],
                         [stats[(m, "none")]["sem"] for m in models], [stats[(m, prefilter)]["sem"] for m in models],
                         label_b=f"with {pre_label}", ylabel=f"{name} (%)",
                         title=f"{ds}: reliable neurons, mean ± SEM; median, 95 % CI (black)")
        for k, p in enumerate(("none", prefilter)):
            x = np.arange(len(models)) + (k - 0.5) * 0.38
            med = np.array([stats[(m, p)]["median"] for m in models])
            lo = np.array([stats[(m, p)]["ci_low"] for m in models])
            hi = np.array([stats[(m, p)]["ci_high"] for m in models])
            ax.errorbar(x, med, yerr=[med - lo, hi - med], fmt="o", color="k", ms=3, lw=0.8, capsize=2,
                        label="median, bootstrap 95 % CI" if k == 0 else None)
        ax.legend(frameon=False, fontsize="x-small")
        ax = axes[i, 1]
        wide = d.pivot_table(index=["model", "neuron"], columns="prefilter", values=metric)
        ok = d.pivot_table(index=["model", "neuron"], columns="prefilter", values="reliable", aggfunc="all")
        pairs = []
        if {"none", prefilter} <= set(wide.columns):
            for k, m in enumerate(models):
                if m not in wide.index.get_level_values(0):
                    continue
                w = wide.loc[m].dropna()
                good = ok.loc[m].reindex(w.index).fillna(False).all(axis=1).to_numpy(dtype=bool)
                pairs.append((k, m, w["none"].to_numpy(), w[prefilter].to_numpy(), good))
        ref = np.concatenate([np.r_[x[g], y[g]] for _, _, x, y, g in pairs]) if pairs else np.array([])
        ref = ref[np.isfinite(ref)]
        if ref.size == 0:
            ref = np.array([0.0, 100.0])
        lo_v, hi_v = float(ref.min()), float(ref.max())
        pad = 0.05 * (hi_v - lo_v if hi_v > lo_v else 1.0)
        lim = (lo_v - pad, hi_v + pad)
        first_x = True
        for k, m, x, y, good in pairs:
            ax.scatter(x[good], y[good], s=10, alpha=0.7, color=f"C{k}", label=labels.get(m, m), edgecolors="none")
            if (~good).any():
                ax.scatter(np.clip(x[~good], *lim), np.clip(y[~good], *lim), s=22, marker="x", linewidths=0.9,
                           color=f"C{k}", label="excluded (reliability rule)" if first_x else None)
                first_x = False
        plot_scatter_diagonal(ax, [], [], xlabel=f"{name} without (%)", ylabel=f"{name} with {pre_label} (%)",
                              lim=lim, title=f"{ds}: per neuron")
        ax.legend(frameon=False, fontsize="x-small")
        neurons = d.sort_values("reliable").drop_duplicates("neuron")
        notes.append(f"{ds}: {exclusion_note(neurons)}")
    table = pd.DataFrame(rows)
    table.attrs["caption"] = (
        f"{name} (%) without and with {pre_label} per model. Left: bars, mean over reliable neurons ± SEM "
        f"(each neuron averaged over the seeds where it was scored); black dots, median with a seeded bootstrap "
        f"95 % interval. Right: one point per neuron and model, with against without {pre_label}; x marks "
        f"neurons excluded by the reliability rule (valid unit, scored, noise ceiling CCmax >= {ceiling:.2f}), "
        f"clipped to the axes. " + " ".join(notes))
    return fig, table
