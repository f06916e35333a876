"""Notebook 04's figures that read a fitted model: dSTRFs at moments of a stimulus, dPCs, most /
least exciting inputs, and in-silico ON/OFF experiments on whole models.

Fitted models come as ``{neuron id: model}`` (:func:`~deepstrf_utils.notebook.load_fitted`; a
population fit also under ``"population"``) or ``{label: model}``; ``dataset`` is the one they
were fitted on. dSTRF, dPC and MEI panels show the lags that hold the structure: the lag axis
is cropped to the smallest window from lag 0 holding ``share`` (99 %) of the panels' summed
squared values (:func:`~deepstrf_utils.report.plotting.lag_window`), stated in each caption beside the
model's whole receptive field. Every figure function sets ``fig.caption``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from .figures import plot_strf_table
from .plotting import (label_panels, lag_window, log_axis, plot_vs_frequency, response_unit, styled,
                       symmetric_limit, to_numpy)

import matplotlib.pyplot as plt  # noqa: E402  (after .plotting, which picks the backend)

__all__ = ["driven_moments", "dstrf_moments_figure", "dpc_figures", "mei_figure", "plot_explained",
           "plot_onoff_curves", "plot_band_steps", "insilico_models_figure", "insilico_bands_figure",
           "INSILICO_CONDITIONS"]

#: the conditions of notebook 04's in-silico experiments on fitted models (ms)
INSILICO_CONDITIONS = dict(fall_times_ms=[0, 25, 100, 400], durations_ms=[25, 100, 400, 800],
                           rise_times_ms=[0, 25, 100, 400])


def driven_moments(model, stimulus, first: int, n: int, gap: int | None = None) -> list[int]:
    """The ``n`` bins ``t >= first`` of one stimulus ``(F, T)`` where the model's (first output's)
    prediction is highest, at least ``gap`` bins apart (default ``(T - first) // n``, at most 10
    and at least 1), sorted (:func:`~deepstrf_utils.interpret.strfs.select_driven_bins`)."""
    from ..interpret.strfs import select_driven_bins

    x = torch.as_tensor(np.asarray(stimulus), dtype=torch.float32)
    T = x.shape[-1]
    if not 0 <= first < T:
        raise ValueError(f"expected 0 <= first < T = {T} bins, got first={first}")
    gap = max(1, min(10, (T - first) // max(int(n), 1))) if gap is None else int(gap)
    was = model.training
    model.eval()
    with torch.no_grad():
        pred = model(x.reshape(1, 1, x.shape[-2], T))[0, :1].cpu()
    model.train(was)
    mask = select_driven_bins([pred], first + 1, n_bins=n, min_gap=gap)[0][0]
    return [int(t) for t in torch.nonzero(mask).ravel()]


def _rf_text(models: Mapping, dt_ms: float) -> str:
    from ..interpret.dstrf import default_n_lags

    return ", ".join(f"{lab} {default_n_lags(m) * dt_ms:g} ms" for lab, m in models.items())


@styled
def dstrf_moments_figure(dataset, models: Mapping, stimulus, neuron_id, n_moments: int = 4, share: float = 0.99):
    """dSTRFs (:func:`~deepstrf_utils.interpret.dstrf.dstrf`, whole receptive field) of one neuron for each
    model of ``models`` (``{label: model}``, rows) at the ``n_moments`` bins where the last
    model's prediction is highest (:func:`driven_moments`; each with a complete window),
    lags cropped to the ``share`` energy window; one colour scale and bar per row."""
    from ..interpret.dstrf import default_n_lags, dstrf

    unit, factor = response_unit(dataset)
    R = max(default_n_lags(m) for m in models.values())
    T = np.asarray(stimulus).shape[-1]
    moments = driven_moments(list(models.values())[-1], stimulus, min(R, T) - 1, n_moments)
    rows = [[factor * d for d in dstrf(m, stimulus, n_lags=R, times=moments)[0]] for m in models.values()]
    L = lag_window([d for row in rows for d in row], share=share)
    fig = plot_strf_table(rows, dataset.dt_ms, dataset.cf_hz, row_labels=list(models), n_lags=L,
                          col_labels=[f"t = {t * dataset.dt_ms / 1000:.2f} s" for t in moments],
                          colorbar_label=f"dSTRF ({unit}\nper input unit)")
    fig.suptitle(f"{dataset.name}: dSTRFs of neuron {neuron_id} at {len(moments)} moments of a test stimulus")
    fig.caption = (
        f"{dataset.name}: dSTRFs (d predicted rate at t / d input at t - lag, {unit} per unit of input level) of "
        f"neuron {neuron_id} for {', '.join(models)} (rows) at the {len(moments)} bins of the longest test "
        f"stimulus where the {list(models)[-1]} prediction is highest (columns; at least a few bins apart, each "
        f"with a complete window). Lags cropped to 0-{(L - 1) * dataset.dt_ms:g} ms: the smallest window from lag "
        f"0 holding {100 * share:g} % of the panels' summed squared dSTRF; the receptive fields (AdapTrans kernel "
        f"- 1 + the core's lags) are {_rf_text(models, dataset.dt_ms)}. One colour scale and colour bar per row.")
    return fig


def plot_explained(ax, explained, label: str | None = None, color: str | None = None):
    """Share of each neuron's dSTRF energy per dPC (``explained`` ``(N, P)``, from
    :func:`deepstrf_utils.interpret.dstrf.dpcs`): thin line per neuron, median thick, in percent."""
    e = 100.0 * to_numpy(explained)
    if e.ndim != 2:
        raise ValueError(f"expected explained shares of shape (N, P), got {e.shape}")
    k = np.arange(1, e.shape[1] + 1)
    line = ax.plot(k, np.nanmedian(e, 0), marker="o", lw=2, color=color, label=label)[0]
    for row in e:
        ax.plot(k, row, lw=0.6, alpha=0.4, color=line.get_color())
    ax.set_xlabel("dPC")
    ax.set_ylabel("energy explained (%)")
    ax.set_xticks(k)


@styled
def dpc_figures(dataset, models: Mapping[str, Mapping], stimulus, neurons: Sequence, n_bins: int = 16,
                n_components: int = 3, share: float = 0.99):
    """dPCs (:func:`~deepstrf_utils.interpret.dstrf.dstrf_pcs`) of each model of ``models`` (``{label:
    {neuron id: model}}``) from the dSTRFs at each neuron's ``n_bins`` most driven bins of
    ``stimulus``. Returns ``(spectra, components)``: the share of energy per dPC (thin:
    neurons, thick: median), and for the first neuron the mean dSTRF and dPCs per model (rows;
    lags cropped to the ``share`` energy window of the unit-norm panels)."""
    from ..interpret.dstrf import default_n_lags, dstrf_pcs

    unit, factor = response_unit(dataset)
    spectra, ax = plt.subplots(figsize=(5.6, 3.4), constrained_layout=True)
    rows, labels, used = [], [], []
    for i, (lab, fits) in enumerate(models.items()):
        shares = []
        for nid in neurons:
            m = fits[nid]
            R = default_n_lags(m)
            bins = driven_moments(m, stimulus, R - 1, n_bins)
            res = dstrf_pcs(m, [stimulus], n_components=min(n_components, len(bins)), times=[bins])
            shares.append(res["explained"][0])
            used.append(len(bins))
            if nid == neurons[0]:
                rows.append([factor * np.asarray(res["mean"][0])] + list(res["components"][0]))
                labels.append(lab)
        plot_explained(ax, np.array(shares), label=lab, color=f"C{i}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{dataset.name}: dPC spectra, {len(neurons)} neurons")
    spectra.caption = (
        f"{dataset.name}: share of the dSTRF energy carried by each dPC (uncentred principal components of a "
        f"neuron's dSTRFs over bins) for {', '.join(models)}; thin lines: the {len(neurons)} example neurons "
        f"({', '.join(map(str, neurons))}), thick: their median. The dSTRFs are taken at each neuron's "
        f"{min(used) if min(used) == max(used) else f'{min(used)}-{max(used)}'} most driven bins of the longest test stimulus (at least a few bins apart), so the "
        f"spectra describe its strongly driven states, not the whole stimulus set.")
    norm = [[r / (np.linalg.norm(r) or 1.0) for r in row] for row in rows]
    L = lag_window([r for row in norm for r in row], share=share)
    comps = plot_strf_table(rows, dataset.dt_ms, dataset.cf_hz, row_labels=labels, col_groups=[0] + [1] * n_components,
                            col_labels=["mean dSTRF"] + [f"dPC {k + 1}" for k in range(n_components)], n_lags=L,
                            colorbar_label={0: f"mean dSTRF\n({unit} per input unit)", 1: "dPC weight (unit norm)"})
    comps.suptitle(f"{dataset.name}: mean dSTRF and dPCs of neuron {neurons[0]}")
    comps.caption = (
        f"{dataset.name}: the mean dSTRF ({unit} per unit of input level) and the first {n_components} dPCs (unit "
        f"vectors, sign agreeing with the mean) of neuron {neurons[0]} for {', '.join(labels)} (rows), from the "
        f"dSTRFs at its most driven bins of the longest test stimulus. Lags cropped to 0-{(L - 1) * dataset.dt_ms:g}"
        f" ms, the smallest window from lag 0 holding {100 * share:g} % of the summed squared panels (each scaled to "
        f"unit norm); the receptive fields are "
        f"{_rf_text({lab: models[lab][neurons[0]] for lab in labels}, dataset.dt_ms)}. Colour bars: one for the "
        f"mean dSTRF and one for the dPCs of each row.")
    return spectra, comps


@styled
def mei_figure(dataset, train, plain: Mapping, adaptrans: Mapping, neurons: Sequence, n_starts: int = 3,
               steps: int = 60, share: float = 0.99):
    """Most exciting inputs of LN (``plain``) and LN + AdapTrans (``adaptrans``), and the least
    exciting input of LN + AdapTrans, for each of ``neurons`` (rows), over a window as long as
    the LN + AdapTrans receptive field, under the energy and range of ``train``'s stimuli
    (:func:`~deepstrf_utils.interpret.mei.stimulus_statistics`): the deviation from the mean level by lag
    before the response bin, one colour scale (99th percentile of |x|) and bar, lags cropped to
    the ``share`` energy window. The caption gives the constraints, each input's response and
    the share of entries pinned at the range bounds."""
    from ..interpret.dstrf import receptive_field
    from ..interpret.mei import least_exciting_input, most_exciting_input, stimulus_statistics

    T_mei = receptive_field(adaptrans[neurons[0]])["total"]
    stats = stimulus_statistics(train, T_mei)
    kw = dict(n_bins=T_mei, energy=stats["energy"], baseline=stats["baseline"], value_range=stats["value_range"],
              n_starts=n_starts, steps=steps)
    lo, hi = stats["value_range"]
    rows, lines, pinned = [], [], []
    for nid in neurons:
        best = {"LN MEI": most_exciting_input(plain[nid], **kw), "LN + AdapTrans MEI": most_exciting_input(adaptrans[nid], **kw),
                "LN + AdapTrans least exciting": least_exciting_input(adaptrans[nid], **kw)}
        rows.append([(r.input - stats["baseline"]).flip(-1) for r in best.values()])  # lag order: 0 = response bin
        tol = 1e-4 * (hi - lo)
        pinned += [((r.input <= lo + tol) | (r.input >= hi - tol)).flip(-1) for r in best.values()]
        lines.append(f"neuron {nid}: " + ", ".join(f"{k} {r.response[r.best]:.3g}" for k, r in best.items()))
    vmax, clipped = symmetric_limit([x for row in rows for x in row], percentile=99)
    L = lag_window([x for row in rows for x in row], share=share)
    fig = plot_strf_table(rows, dataset.dt_ms, dataset.cf_hz, row_labels=[f"neuron {n}" for n in neurons],
                          col_labels=[k.replace("AdapTrans ", "AdapTrans\n") for k in best], vmax=vmax, n_lags=L,
                          colorbar_label="input - training mean\n(input units)")
    fig.suptitle(f"{dataset.name}: input minus mean level, by lag before the response bin")
    at = torch.stack(pinned).float().mean((0, 1))  # (lags,) share of entries at the range bounds
    n_lags = int(getattr(plain[neurons[0]], "n_lags", 0) or 0)
    fig.caption = (
        f"{dataset.name}: most exciting inputs of LN and LN + AdapTrans and the least exciting input of LN + "
        f"AdapTrans (columns) for {len(neurons)} example neurons (rows), as the deviation from the training "
        f"stimuli's mean level (input units), lag 0 = the bin whose response is optimised. Constraints: "
        f"{best['LN + AdapTrans MEI'].caption()}. Model responses to each input: {'; '.join(lines)}. One symmetric "
        f"colour scale, the 99th percentile of |x| over the panels (+-{vmax:.3g}); {100 * clipped:.1f} % of the "
        f"entries lie beyond it (end colours, arrows). Entries at the range bounds [{lo:.3g}, {hi:.3g}]: "
        f"{100 * at[:n_lags].mean():.0f} % within the LN's STRF (lags < {n_lags * dataset.dt_ms:g} ms), "
        f"{100 * at[n_lags:].mean():.0f} % beyond (where the LN is blind and the input keeps its random start). "
        f"Lags cropped to 0-{(L - 1) * dataset.dt_ms:g} ms of the {T_mei * dataset.dt_ms:g} ms window: the smallest "
        f"window from lag 0 holding {100 * share:g} % of the panels' summed squared deviation.")
    return fig


def plot_onoff_curves(axes, df, stat: str = "relative"):
    """In-silico ON/OFF curves of whole models beside their AdapTrans alone (three panels).

    ``df``: :func:`deepstrf_utils.interpret.insilico_models.model_onoff_curves` outputs (concatenated); per
    label and source, the median over neurons of ``stat`` against the condition: OFF vs
    fall time (``axes[0]``), OFF vs preceding duration (``axes[1]``), ON vs rise time
    (``axes[2]``), every condition axis logarithmic (:func:`~deepstrf_utils.report.plotting.log_axis`:
    symmetric-log with a 0 ms condition); whole model solid, its AdapTrans alone dashed, one
    colour per label. The legend is left to the caller (e.g. one for the figure)."""
    need = {"label", "source", "experiment", "x_ms", stat}
    if not need <= set(df.columns) or len(axes) != 3:
        raise ValueError(f"expected three axes and a model_onoff_curves table with columns {sorted(need)}")
    panels = (("fall", "fall time (ms)", "OFF"), ("duration", "preceding sound duration (ms)", "OFF"),
              ("rise", "rise time (ms)", "ON"))
    labels = list(dict.fromkeys(df["label"]))
    for ax, (kind, xlabel, which) in zip(axes, panels):
        for i, lab in enumerate(labels):
            for source, ls in (("model", "-"), ("adaptrans", "--")):
                d = df[(df["label"] == lab) & (df["source"] == source) & (df["experiment"] == kind)]
                if d.empty:
                    continue
                m = d.groupby("x_ms")[stat].median()
                ax.plot(m.index, m.to_numpy(), ls, marker="o", ms=3, color=f"C{i}",
                        label=f"{lab}: {'whole model' if source == 'model' else 'its AdapTrans'}")
        values = df.loc[df["experiment"] == kind, "x_ms"].to_numpy(float)
        if values.size and np.any(values > 0):
            log_axis(ax, values)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{which} amplitude ({'fraction of max' if stat == 'relative' else 'a.u.'})")
        ax.set_title(f"{which} vs {xlabel.split(' (')[0]}")


def _population_or_units(fits: Mapping, neurons: Sequence):
    """``(model, neuron indices)`` of a population fit, or None for single-unit fits."""
    if "population" in fits:
        order = [k for k in fits if k != "population"]
        return fits["population"], [order.index(n) for n in neurons]
    return None


@styled
def insilico_models_figure(dataset, adaptrans: Mapping, cnn: Mapping | None = None, conditions: dict | None = None):
    """Notebook 02's ON/OFF experiments through LN + AdapTrans (``adaptrans``, every neuron, band
    weights = its STRF energy per band), a 2D-CNN + AdapTrans (``cnn``, a population fit) and,
    on the synthetic set, the true neurons (:func:`plot_onoff_curves`). Returns ``(fig,
    summary)``: the median absolute amplitudes per experiment, label, source and condition."""
    import pandas as pd

    from ..datasets.synthetic import GroundTruthNeurons
    from ..interpret.insilico_models import model_onoff_curves
    from ..interpret.strfs import weight_strf

    conds = dict(INSILICO_CONDITIONS if conditions is None else conditions)
    ids = [str(n) for n in dataset.neuron_ids if str(n) in adaptrans]
    tables = [model_onoff_curves(adaptrans[n], label="LN + AdapTrans", neuron_ids=[n], **conds,
                                 band_weights=(weight_strf(adaptrans[n])[0] ** 2).sum((0, 2)).numpy()) for n in ids]
    pop = _population_or_units(cnn or {}, ids)
    if pop is not None:
        tables.append(model_onoff_curves(pop[0], neurons=pop[1], label="2D-CNN + AdapTrans", neuron_ids=ids, **conds))
    gt = dataset.ground_truth
    if gt is not None and "strf" in gt:
        rows = [[str(n) for n in dataset.neuron_ids].index(n) for n in ids]
        tables.append(model_onoff_curves(GroundTruthNeurons(gt, dataset.cf_hz, dataset.dt_ms), neurons=rows,
                                         label="truth", neuron_ids=ids,
                                         band_weights=(np.asarray(gt["strf"])[rows] ** 2).sum((1, 3)), **conds))
    curves = pd.concat(tables, ignore_index=True)
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.6), constrained_layout=True)
    plot_onoff_curves(axes, curves)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
    label_panels(axes)
    fig.suptitle(f"{dataset.name}: in-silico ON/OFF curves, median over {len(ids)} neurons")
    dropped = curves[curves["relative"].isna()].groupby(["label", "source"])["neuron"].nunique()
    fig.caption = (
        f"{dataset.name}: (A) OFF amplitude against the fall time, (B) against the preceding sound's duration, "
        f"(C) ON amplitude against the rise time, of broadband sounds through whole fitted models (solid) and "
        f"their learned AdapTrans alone (dashed), as a fraction of each neuron's largest value, median over "
        f"{len(ids)} neurons; labels: {', '.join(dict.fromkeys(curves['label']))}. Conditions (ms) on log axes "
        f"(symmetric-log with 0 ms). OFF: peak after the offset of the response minus the response to the same "
        f"sound continued; ON: peak above the response to silence. A neuron whose response never exceeds its "
        f"reference has no relative curve and is left out of the median"
        + (": " + ", ".join(f"{n} of {lab} ({src})" for (lab, src), n in dropped.items()) if len(dropped) else
           " (none here)") + ".")
    summary = curves.groupby(["experiment", "label", "source", "x_ms"])["amplitude"].median().unstack("x_ms")
    return fig, summary


def plot_band_steps(axes, df, neurons: Sequence):
    """ON and OFF amplitude per band of tone steps, one row of two panels per neuron.

    ``df``: :func:`deepstrf_utils.interpret.insilico_models.model_band_steps` outputs (concatenated);
    ``axes`` ``(len(neurons), 2)``: ON left, OFF right, against the band centre frequency (log
    axis, kHz); one colour per label, the whole model solid, its AdapTrans alone dashed. Each
    curve is divided by the largest ON *or* OFF amplitude over bands of its label, neuron and
    source, so the shapes of models with other output scales compare while a weak OFF response
    stays small beside the ON one (a curve of zeros is drawn at 0). The legend is left to the
    caller."""
    need = {"label", "neuron", "source", "response", "cf_hz", "amplitude"}
    axes = np.asarray(axes, dtype=object).reshape(-1, 2) if len(neurons) else np.empty((0, 2))
    if not need <= set(df.columns) or axes.shape[0] != len(neurons):
        raise ValueError(f"expected axes (len(neurons), 2) and a model_band_steps table with columns {sorted(need)}")
    peak = df.groupby(["label", "neuron", "source"])["amplitude"].transform("max")
    df = df.assign(scaled=df["amplitude"] / peak.where(peak > 0, 1.0))
    labels = list(dict.fromkeys(df["label"]))
    for row, nid in zip(axes, neurons):
        for ax, resp in zip(row, ("on", "off")):
            for i, lab in enumerate(labels):
                for source, ls in (("model", "-"), ("adaptrans", "--")):
                    d = df[(df["label"] == lab) & (df["neuron"] == nid) & (df["source"] == source)
                           & (df["response"] == resp)].sort_values("cf_hz")
                    if not d.empty:
                        plot_vs_frequency(ax, d["cf_hz"], d["scaled"], color=f"C{i}", linestyle=ls,
                                          marker="." if ls == "-" else "", ylabel=f"{resp.upper()} (fraction of max)",
                                          label=f"{lab}: {'whole model' if source == 'model' else 'its AdapTrans'}",
                                          title=f"neuron {nid}: {resp.upper()}")
            ax.set_ylim(-0.03, 1.05)


@styled
def insilico_bands_figure(dataset, adaptrans: Mapping, cnn: Mapping | None, neurons: Sequence,
                          hold_ms: float = 100.0, level: float = 1.0):
    """Tone steps per band (:func:`~deepstrf_utils.interpret.insilico_models.model_band_steps`) through LN +
    AdapTrans, a 2D-CNN + AdapTrans and, on the synthetic set, the true neurons, for each of
    ``neurons`` (rows: ON, OFF; :func:`plot_band_steps`). Returns ``(fig, peaks)``: per curve
    the band of the peak (kHz) and the peak's absolute value."""
    import pandas as pd

    from ..datasets.synthetic import GroundTruthNeurons
    from ..interpret.insilico_models import model_band_steps

    kw = dict(hold_ms=hold_ms, level=level)
    tables = [model_band_steps(adaptrans[n], label="LN + AdapTrans", neuron_ids=[n], **kw) for n in neurons]
    pop = _population_or_units(cnn or {}, neurons)
    if pop is not None:
        tables.append(model_band_steps(pop[0], neurons=pop[1], label="2D-CNN + AdapTrans", neuron_ids=list(neurons),
                                       **kw))
    elif cnn:
        tables += [model_band_steps(cnn[n], label="2D-CNN + AdapTrans", neuron_ids=[n], **kw) for n in neurons]
    gt = dataset.ground_truth
    if gt is not None and "strf" in gt:
        ids = [str(n) for n in dataset.neuron_ids]
        tables.append(model_band_steps(GroundTruthNeurons(gt, dataset.cf_hz, dataset.dt_ms),
                                       neurons=[ids.index(str(n)) for n in neurons], label="truth",
                                       neuron_ids=list(neurons), **kw))
    steps = pd.concat(tables, ignore_index=True)
    fig, axes = plt.subplots(len(neurons), 2, figsize=(10, 3.0 * len(neurons)), squeeze=False,
                             constrained_layout=True)
    plot_band_steps(axes, steps, list(neurons))
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
    label_panels(axes.ravel())
    fig.suptitle(f"{dataset.name}: tone steps per band ({hold_ms:g} ms, level {level:g}, one band per step)")
    on = ", ".join(chr(65 + 2 * i) for i in range(len(neurons)))
    off = ", ".join(chr(66 + 2 * i) for i in range(len(neurons)))
    fig.caption = (
        f"{dataset.name}: ON ({on}) and OFF ({off}) amplitude of {len(neurons)} example neurons (rows) for a "
        f"{hold_ms:g} ms step of level {level:g} in a single band, against the band's centre frequency (kHz, log "
        f"axis); labels: {', '.join(dict.fromkeys(steps['label']))}. Each curve is divided by the largest ON or OFF "
        f"amplitude over bands of its model, neuron and source, so a weak OFF response stays small beside the ON "
        f"one. Solid: the whole model; dashed: its learned AdapTrans alone (which filters each band on its own: "
        f"how much each band's ON / OFF channel transmits the step). A curve of zeros (no offset-evoked response) "
        f"is drawn at 0. Multi-band and broadband sounds are not shown here.")
    best = steps.loc[steps.groupby(["neuron", "label", "source", "response"])["amplitude"].idxmax()]
    peaks = best.assign(peak_khz=best["cf_hz"] / 1000).pivot_table(
        index=["neuron", "label", "source"], columns="response", values=["peak_khz", "amplitude"])
    return fig, peaks
