"""Figures of the fitted models' scores (notebook 05), CCraw / CCnorm in %.

- :func:`performance_figure` -- CCnorm without vs with the prefilter per model and dataset;
- :func:`sessions_state_figure` -- state-gain recovery, CCnorm with a state gain, a core shared
  by several sessions (the synthetic experiments of :mod:`~deepstrf_utils.runs.sessions_state`).

Each sets ``fig.caption`` (what is shown, n, what was excluded and why) and puts a letter on
each panel, like every figure function of :mod:`.figures`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .plotting import label_panels, plot_paired_bars, plot_scatter_diagonal, styled
from .reliability import MIN_CC_MAX, exclusion_note, neuron_reliability, score_summary
from .tables import sessions_state_seeds

import matplotlib.pyplot as plt  # noqa: E402  (after .plotting, which picks the backend)
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

__all__ = ["performance_figure", "sessions_state_figure", "scatter_limits"]

#: how far (as a share of the reliable neurons' span) the axes stretch to show excluded neurons
EXCLUDED_REACH = 0.5


def scatter_limits(reference, extra=(), reach: float = EXCLUDED_REACH) -> tuple[float, float]:
    """Equal axis limits of a with-vs-without scatter: the span of ``reference`` (the neurons
    that set the scale), stretched to hold the ``extra`` points (e.g. excluded neurons) up to
    ``reach`` times that span on each side, padded by 5 %. Points beyond are drawn at the edge
    as arrows by :func:`performance_figure`."""
    ref = np.asarray(reference, dtype=float).ravel()
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        ref = np.array([0.0, 100.0])
    lo, hi = float(ref.min()), float(ref.max())
    span = hi - lo if hi > lo else 1.0
    ex = np.asarray(extra, dtype=float).ravel()
    ex = ex[np.isfinite(ex)]
    if ex.size:
        lo = max(min(lo, float(ex.min())), lo - reach * span)
        hi = min(max(hi, float(ex.max())), hi + reach * span)
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


def _edge_arrows(ax, x, y, lim, color) -> list:
    """Points outside ``lim`` drawn just inside the edge as arrows pointing towards them; returns
    their ``(x, y)`` values (for the caption)."""
    inset = 0.025 * (lim[1] - lim[0])
    out = []
    for xi, yi in zip(x, y):
        cx = float(np.clip(xi, lim[0] + inset, lim[1] - inset))
        cy = float(np.clip(yi, lim[0] + inset, lim[1] - inset))
        if lim[0] <= xi <= lim[1] and lim[0] <= yi <= lim[1]:
            continue
        marker = "<" if xi < lim[0] else ">" if xi > lim[1] else "v" if yi < lim[0] else "^"
        ax.scatter([cx], [cy], marker=marker, s=36, color=color, zorder=4)
        out.append((float(xi), float(yi)))
    return out


@styled
def performance_figure(results, metric: str = "cc_norm", models: Sequence[str] | None = None,
                       labels: dict | None = None, prefilter: str = "adaptrans", min_cc_max: float | None = None):
    """CCnorm (or ``metric``, in %) without vs with ``prefilter`` per model and dataset.

    ``results``: the tidy table of ``run_configs`` (one row per neuron x seed x config).
    Scores are averaged over the seeds where each neuron was scored; only neurons passing the
    reliability rule (:data:`deepstrf_utils.report.reliability.RELIABILITY_RULE`; ``min_cc_max``
    overrides the ceiling) enter the statistics. Left panel per dataset: bars, the mean with
    its SEM (thick dark line, no caps); white diamonds with thin capped lines, the median
    with a seeded bootstrap 95 % interval; n neurons and seeds in the title. Right panel: one
    point per neuron and model (with vs without): reliable neurons as dots, excluded ones as
    x at their values (the axes stretch to hold them, :func:`scatter_limits`; any further
    out are arrows at the edge, their values in the caption). Legends outside the data. One row
    per dataset. Returns ``(fig, table)``: ``table`` holds the plotted statistics (%), the
    numbers of neurons used and excluded, and ``table.attrs["caption"]`` (also
    ``fig.caption``) the caption.
    """
    import pandas as pd

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
    fig, axes = plt.subplots(len(datasets), 2, figsize=(12, 4.0 * len(datasets)), squeeze=False,
                             constrained_layout=True, gridspec_kw={"width_ratios": (1.45, 1)})
    rows, notes = [], []
    name = {"cc_norm": "CCnorm", "cc_raw": "CCraw"}.get(metric, metric)
    pre_label = "AdapTrans" if prefilter == "adaptrans" else prefilter
    width = 0.38
    for i, ds in enumerate(datasets):
        d = per[per["dataset"] == ds]
        n_seeds = int(df.loc[df["dataset"] == ds, "seed"].nunique())
        stats = {}
        for m in models:
            for p in ("none", prefilter):
                sel = d[(d["model"] == m) & (d["prefilter"] == p)]
                st = score_summary(sel.loc[sel["reliable"], metric])
                stats[(m, p)] = st
                rows.append({"dataset": ds, "model": m, "prefilter": p, f"{name} (%)": st["mean"], "SEM": st["sem"],
                             "median": st["median"], "CI low": st["ci_low"], "CI high": st["ci_high"],
                             "neurons": st["n"], "excluded": int((~sel["reliable"]).sum())})
        counts = {st["n"] for st in stats.values()}
        n_all = int(d["neuron"].nunique())
        ax = axes[i, 0]
        plot_paired_bars(ax, [labels.get(m, m) for m in models],
                         [stats[(m, "none")]["mean"] for m in models], [stats[(m, prefilter)]["mean"] for m in models],
                         [stats[(m, "none")]["sem"] for m in models], [stats[(m, prefilter)]["sem"] for m in models],
                         label_b=f"with {pre_label}", ylabel=f"{name} (%)", legend=False, width=width,
                         title=(f"{ds}: {counts.pop()} reliable of {n_all} neurons, {n_seeds} seed(s)" if len(counts) == 1
                                else f"{ds}: reliable neurons (n under each bar) of {n_all}, {n_seeds} seed(s)"))
        for k, p in enumerate(("none", prefilter)):
            x = np.arange(len(models)) + (k - 0.5) * width + 0.25 * width
            med = np.array([stats[(m, p)]["median"] for m in models])
            lo = np.array([stats[(m, p)]["ci_low"] for m in models])
            hi = np.array([stats[(m, p)]["ci_high"] for m in models])
            ax.errorbar(x, med, yerr=[med - lo, hi - med], fmt="D", ms=4, mfc="white", mec="k", ecolor="k", lw=0.8,
                        capsize=2.5, zorder=3)
            if len({st["n"] for st in stats.values()}) > 1:
                for xi, m in zip(x, models):
                    ax.annotate(f"{stats[(m, p)]['n']}", (xi - 0.25 * width, 0), xytext=(0, 2),
                                textcoords="offset points", ha="center", va="bottom")
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
        ref = np.concatenate([np.r_[x[g], y[g]] for _, _, x, y, g in pairs]) if pairs else []
        bad = np.concatenate([np.r_[x[~g], y[~g]] for _, _, x, y, g in pairs]) if pairs else []
        lim = scatter_limits(ref, bad)
        n_x, beyond = 0, []
        for k, m, x, y, good in pairs:
            ax.scatter(x[good], y[good], s=12, alpha=0.75, color=f"C{k}", label=labels.get(m, m), edgecolors="none")
            inside = (~good) & (np.clip(x, *lim) == x) & (np.clip(y, *lim) == y)
            ax.scatter(x[inside], y[inside], s=28, marker="x", linewidths=1.0, color=f"C{k}")
            n_x += int((~good).sum())
            far = _edge_arrows(ax, x[~good & ~inside], y[~good & ~inside], lim, f"C{k}")
            beyond += [f"{labels.get(m, m)} ({a:.0f}, {b:.0f})" for a, b in far]
        plot_scatter_diagonal(ax, [], [], xlabel=f"{name} without (%)", ylabel=f"{name} with {pre_label} (%)",
                              lim=lim, title=f"{ds}: per neuron\n({n_all} neurons, {n_seeds} seed(s))")
        handles = [*ax.get_legend_handles_labels()[0],
                   Line2D([], [], marker="x", ls="", color="0.3", label=f"excluded ({n_x} neuron-model pairs)")]
        if beyond:
            handles.append(Line2D([], [], marker=">", ls="", color="0.3", label=f"excluded, beyond the axes ({len(beyond)})"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        neurons = d.sort_values("reliable").drop_duplicates("neuron")
        notes.append(f"{ds} ({n_seeds} seed(s)): {exclusion_note(neurons)}"
                     + (f" {len(beyond)} excluded point(s) lie beyond the axes, drawn as arrows at the edge pointing "
                        f"to them; (without, with): {'; '.join(beyond)}." if beyond else ""))
    fig.legend(handles=[Patch(color="0.65", label="without"), Patch(color="tab:orange", label=f"with {pre_label}"),
                        Line2D([], [], color="0.15", lw=2.2, label="mean ± SEM"),
                        Line2D([], [], color="k", lw=0.8, marker="D", mfc="white", ms=4,
                               label="median, bootstrap 95 % CI")],
               loc="outside upper center", ncols=4)
    label_panels(axes.ravel())
    table = pd.DataFrame(rows)
    left = ", ".join(chr(65 + 2 * i) for i in range(len(datasets)))
    right = ", ".join(chr(66 + 2 * i) for i in range(len(datasets)))
    caption = (
        f"{name} (%) without and with {pre_label} per model, on the test stimuli, one row per dataset. ({left}) Bars: "
        f"the mean over reliable neurons with its SEM (thick dark line), each neuron averaged over the seeds where "
        f"it was scored; white diamonds with thin capped lines: the median with a seeded bootstrap 95 % interval. "
        f"({right}) One point per neuron (mean over seeds) and model, with against without {pre_label}; x marks "
        f"neurons excluded by the reliability rule (valid unit, scored, noise ceiling CCmax >= {ceiling:.2f}), drawn "
        f"at their values. " + " ".join(notes))
    table.attrs["caption"] = fig.caption = caption
    return fig, table


@styled
def sessions_state_figure(results):
    """The synthetic sessions / state experiments over seeds (:func:`~deepstrf_utils.runs.sessions_state.run_sessions_state`
    results): (A) fitted against planted relative state gain g / g0 of every neuron of every seed;
    (B) per seed, the mean CCnorm (%) over the reliable neurons with against without the state
    gain; (C) per seed, the mean CCnorm (%) of the smallest session's reliable neurons, a core
    shared by three sessions against a model trained on it alone. The caption counts the seeds
    where the new model is better and the neuron scores left out. Returns the figure."""
    need = {"experiment", "model", "neuron", "seed", "cc_norm", "reliable", "planted_gain", "fitted_gain"}
    if not need <= set(results.columns):
        raise ValueError(f"expected the run_sessions_state table with columns {sorted(need)}, got {list(results.columns)}")
    per_seed = sessions_state_seeds(results)
    n_seeds = int(results["seed"].nunique())
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.7), constrained_layout=True)
    st = results[(results["experiment"] == "state_gain") & results["fitted_gain"].notna()]
    ax = axes[0]
    ax.scatter(st["planted_gain"], st["fitted_gain"], s=12, c=st["seed"], cmap="viridis")
    lim = float(np.nanmax(np.abs(st[["planted_gain", "fitted_gain"]].to_numpy()))) * 1.1 if len(st) else 1.0
    ax.plot([-lim, lim], [-lim, lim], color="0.6", lw=0.8)
    r = per_seed.loc[per_seed["experiment"] == "state_gain", "gain_r"].dropna()
    r_text = (f"r = {r.median():.2f} ({r.min():.2f}-{r.max():.2f})" if len(r) > 1 else
              f"r = {r.iloc[0]:.2f}" if len(r) else "r undefined")
    ax.set(xlabel="planted state gain g / g0 (per unit state; g0 = 1)",
           ylabel="fitted state gain g / g0 (per unit state)", title=f"gain recovery: {r_text}")
    notes = []
    for ax, exp, title, letter in ((axes[1], "state_gain", "state input", "B"),
                                   (axes[2], "shared_core", "smallest session", "C")):
        s = per_seed[per_seed["experiment"] == exp].dropna(subset=["CCnorm baseline (%)", "CCnorm model (%)"])
        base, new = (s["baseline"].iloc[0], s["model"].iloc[0]) if len(s) else ("baseline", "model")
        both = s[["CCnorm baseline (%)", "CCnorm model (%)"]].to_numpy()
        lo = min(0.0, float(both.min()) - 5.0) if both.size else 0.0
        hi = max(100.0, float(both.max()) + 5.0) if both.size else 100.0
        ax.scatter(s["CCnorm baseline (%)"], s["CCnorm model (%)"], s=22, color="tab:blue")
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
        wins = int((s["difference (%)"] > 0).sum())
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"CCnorm (%), {base}", ylabel=f"CCnorm (%), {new}",
               title=f"{title}: better on {wins} of {len(s)} seeds")
        rows = results[(results["experiment"] == exp) & (results["model"] == new)]
        left = int((~rows["reliable"].astype(bool)).sum())
        notes.append(f"{letter}: {new} better than {base} on {wins} of {len(s)} seeds, mean difference "
                     f"{s['difference (%)'].mean():+.1f} points; {left} of {len(rows)} neuron scores left out "
                     f"(CCmax below 1/sqrt(3): no reliable stimulus-driven signal)")
    label_panels(axes)
    fig.caption = (
        f"Synthetic sessions and state experiments, {n_seeds} seed(s), each drawing new neurons, a new split and "
        "initialisation. (A) The fitted relative state gain g / g0 of each neuron (StateGain readout started from the "
        "fitted stateless LN, per unit of the state signal) against the planted one (planted with g0 = 1); colour: "
        "the seed (one colour per seed); line: identity; r: Pearson correlation per seed, median (range). (B) Per seed, the mean test CCnorm "
        "(%) over the reliable neurons, LN with a state-gain readout against LN without. (C) Per seed, the mean test "
        "CCnorm (%) over the reliable neurons of the smallest session (few training clips, the same test and "
        "validation clips as the others): a core shared by three sessions against the same model trained on that "
        "session alone (above the diagonal: the new model is better). " + "; ".join(notes) + ".")
    return fig
