"""Notebook 04's STRF figures: weight and gradient STRFs, learned AdapTrans parameters, and the
recovery of the synthetic ground truth.

Fitted models come as ``{neuron id: model}`` (:func:`~deepstrf_utils.notebook.load_fitted`);
``dataset`` is the :class:`~deepstrf_utils.datasets.ResponseDataset` they were fitted on (bands,
bin width, ids, ground truth). Each figure function returns the figure with ``fig.caption``
set (what is shown, n, what was excluded), every panel lettered and every STRF panel with a
colour bar and its unit.

- :func:`example_neurons` -- the neurons the figures show;
- :func:`onoff_strf_figure`, :func:`nrf_hidden_figure`, :func:`gradient_strf_figure`;
- :func:`adaptrans_params_figure` -- tau ON / OFF (log axes) and w per band;
- :func:`synthetic_recovery_figure` -- STRF and tau-factor recovery (synthetic set).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .figures import plot_strf_table
from .plotting import label_panels, plot_scatter_diagonal, plot_vs_frequency, response_unit, styled, to_numpy

import matplotlib.pyplot as plt  # noqa: E402  (after .plotting, which picks the backend)
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

__all__ = ["example_neurons", "onoff_strf_figure", "nrf_hidden_figure", "gradient_strf_figure",
           "adaptrans_params_figure", "plot_tau_recovery", "synthetic_recovery_figure"]


def example_neurons(dataset, n: int, seed: int = 0) -> list[str]:
    """Ids of the ``n`` neurons whose trial-averaged response varies most over the test
    stimuli of ``dataset.split(seed)`` (the examples notebook 04 shows)."""
    test = dataset.split(seed)[2]
    with np.errstate(all="ignore"):
        var = np.array([np.nanvar(np.concatenate([np.nanmean(r[u], 0) for r in test.responses]))
                        for u in range(dataset.n_neurons)])
    return [str(dataset.neuron_ids[u]) for u in np.argsort(-np.nan_to_num(var, nan=-1.0))[: int(n)]]


def _truth(dataset, key: str = "strf"):
    gt = dataset.ground_truth
    return gt if gt is not None and key in gt else None


def _index(dataset, nid) -> int:
    return [str(n) for n in dataset.neuron_ids].index(str(nid))


@styled
def onoff_strf_figure(dataset, plain: Mapping, adaptrans: Mapping, neurons: Sequence):
    """Per neuron (row): the STRF of the plain LN model, the ON and OFF STRFs of LN + AdapTrans
    and, when the dataset has a ground truth, the true ON and OFF STRFs; colour scales (and
    bars): LN | LN + AdapTrans ON and OFF | truth."""
    from ..interpret.strfs import onoff_strfs, weight_strf

    gt = _truth(dataset)
    cols = ["LN", "LN + AdapTrans ON", "LN + AdapTrans OFF"] + (["true ON", "true OFF"] if gt else [])
    rows = []
    for nid in neurons:
        parts = onoff_strfs(adaptrans[nid])
        row = [weight_strf(plain[nid])[0, 0], parts["on"][0], parts["off"][0]]
        if gt:
            u = _index(dataset, nid)
            row += [gt["strf"][u, 0], gt["strf"][u, 1]]
        rows.append(row)
    fig = plot_strf_table(rows, dataset.dt_ms, dataset.cf_hz, row_labels=[f"neuron {n}" for n in neurons],
                          col_labels=cols, col_groups=[0, 1, 1, 2, 2],
                          colorbar_label={0: "LN weight (a.u.)", 1: "LN + AdapTrans\nweight (a.u.)",
                                          2: "true weight (a.u.)"})
    K = rows[0][0].shape[-1]
    fig.caption = (
        f"{dataset.name}: weight STRFs of {len(neurons)} of the {dataset.n_neurons} neurons (rows: "
        f"{', '.join(map(str, neurons))}). Columns: the plain LN model's "
        f"STRF, the ON and OFF STRFs of LN + AdapTrans" + (", the true ON and OFF STRFs of the simulation" if gt else "")
        + f". Lag 0-{(K - 1) * dataset.dt_ms:g} ms (0 = the present bin), frequency in kHz; red excitatory, blue "
        f"suppressive. Colour scales, one colour bar each per row: the LN STRF; the ON and OFF STRFs of LN + "
        f"AdapTrans together" + ("; the truth (other units)" if gt else "") + ". Weights in model units (a.u.: "
        "the linear drive per unit of input level).")
    return fig


@styled
def nrf_hidden_figure(dataset, nrf, neuron_id, ncols: int = 5):
    """The hidden-unit STRFs of one fitted NRF (``nrf``, weight STRFs ``(H, 1, F, K)``), ordered by
    the magnitude of their read-out weight, ``ncols`` per row, one colour scale per row."""
    from ..interpret.strfs import weight_strf

    hidden = weight_strf(nrf)[:, 0]  # (H, F, K)
    out = getattr(nrf, "out_weight", None)
    order = (np.argsort(-np.abs(out.detach().cpu().numpy()[0])) if out is not None else np.arange(hidden.shape[0]))
    rows = [list(hidden[order[i:i + ncols]]) for i in range(0, len(order), ncols)]
    fig = plot_strf_table(rows, dataset.dt_ms, dataset.cf_hz, share_row_scale=True,
                          row_labels=[f"units {i + 1}-{min(i + ncols, len(order))}" for i in range(0, len(order), ncols)],
                          colorbar_label="weight (a.u.)")
    fig.suptitle(f"{dataset.name}: NRF hidden units of neuron {neuron_id}")
    fig.caption = (
        f"{dataset.name}: the STRFs of the {len(order)} hidden units of the NRF fitted to neuron {neuron_id} (plain "
        f"spectrogram input), in order of the magnitude of their read-out weight (strongest first, reading "
        f"order); lag in ms, frequency in kHz; one colour scale and colour bar per row.")
    return fig


@styled
def gradient_strf_figure(dataset, models: Mapping[str, Mapping], stimuli, neurons: Sequence, n_lags: int,
                         top_fraction: float = 0.1):
    """Gradient STRFs (:func:`~deepstrf_utils.interpret.strfs.gradient_strf`, with respect to the input
    spectrogram) of each model of ``models`` (``{label: {neuron id: model}}``, columns) for each
    of ``neurons`` (rows), at ``stimuli`` (e.g. the test set), averaged over each neuron's top
    ``top_fraction`` driven bins; in output units per input unit (spikes/s for spike counts);
    one colour scale per row."""
    from ..interpret.strfs import gradient_strf

    unit, factor = response_unit(dataset)
    rows = [[factor * gradient_strf(models[m][nid], stimuli, n_lags=n_lags, top_fraction=top_fraction)[0]
             for m in models] for nid in neurons]
    fig = plot_strf_table(rows, dataset.dt_ms, dataset.cf_hz, row_labels=[f"neuron {n}" for n in neurons],
                          col_labels=list(models), colorbar_label=f"d rate / d input\n({unit} per input unit)")
    fig.caption = (
        f"{dataset.name}: gradient STRFs (d predicted rate at t / d input spectrogram at t - lag, {unit} per unit "
        f"of input level) of {', '.join(models)} for {len(neurons)} example neurons (rows), evaluated at the "
        f"{len(stimuli) if hasattr(stimuli, '__len__') else ''} test stimuli and averaged over each neuron's "
        f"{100 * top_fraction:g} % most driven bins (bins whose {n_lags}-bin history lies in the stimulus). Lag "
        f"0-{(n_lags - 1) * dataset.dt_ms:g} ms; one colour scale and colour bar per row.")
    return fig


@styled
def adaptrans_params_figure(dataset, adaptrans: Mapping, w0: float = 0.75):
    """Fitted AdapTrans parameters per band of every LN + AdapTrans fit (``{neuron id: model}``):
    (A) tau ON and (B) tau OFF in ms on log axes, (C) w; thin lines per neuron, the median
    thick, the initialisation dashed (Willmore tau, ``w0``) and, with a ground truth, the
    median of the true values in black. One legend for the figure."""
    from ..adaptrans import willmore_tau_ms

    keys = (("tau_on_ms", "tau ON (ms, log axis)"), ("tau_off_ms", "tau OFF (ms, log axis)"),
            ("w", "w: adaptation weight\n(steady-state gain 1 - w)"))
    fits = {k: np.stack([to_numpy(getattr(m.prefilter, k)) for m in adaptrans.values()]) for k, _ in keys}
    gt = dataset.ground_truth
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.5), constrained_layout=True)
    for ax, (key, label) in zip(axes, keys):
        for v in fits[key]:
            ax.plot(dataset.cf_hz, v, color="tab:orange", alpha=0.25, lw=0.8)
        plot_vs_frequency(ax, dataset.cf_hz, np.median(fits[key], 0), label="fitted (median)", ylabel=label,
                          color="tab:orange", linestyle="-", lw=2)
        init = willmore_tau_ms(dataset.cf_hz) if key != "w" else np.full(dataset.n_bands, w0)
        ax.plot(dataset.cf_hz, init, "k--", lw=1, label="initialisation")
        if gt is not None and key in gt:
            ax.plot(dataset.cf_hz, np.median(np.asarray(gt[key]), 0), "k-", lw=1.5, label="true (median)")
        if key != "w":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
    fig.suptitle(f"{dataset.name}: AdapTrans parameters of {len(adaptrans)} LN + AdapTrans fits")
    label_panels(axes)
    hi = {k: float(np.max(fits[k])) for k in ("tau_on_ms", "tau_off_ms")}
    fig.caption = (
        f"{dataset.name}: the AdapTrans parameters of the LN + AdapTrans fits of all {len(adaptrans)} neurons, per "
        f"band against its centre frequency (kHz, log axis): (A) tau ON and (B) tau OFF in ms on log axes (largest "
        f"fitted: {hi['tau_on_ms']:.0f} and {hi['tau_off_ms']:.0f} ms), (C) w, the weight of the adaptation tail "
        f"(a constant input settles both channels at 1 - w). Thin lines: neurons; thick: their median; dashed: the "
        f"initialisation (Willmore time constants, w = {w0:g})"
        + ("; black: the median of the true values of the simulated neurons" if gt is not None and "w" in gt else "")
        + ". No neuron excluded.")
    return fig


def plot_tau_recovery(ax, table, title: str | None = None, s: float = 16):
    """Fitted against true AdapTrans time-constant factors, one point per row of ``table``.

    ``table``: :func:`deepstrf_utils.interpret.groundtruth.tau_recovery_table` (columns channel, used,
    true_factor, fitted_factor; optionally stacked over seeds: a point per neuron, channel and
    seed). Only rows with ``used`` are drawn: ON in red, OFF in blue, on log axes, with the
    identity line (perfect recovery) and the Willmore initialisation (factor 1, dotted).
    """
    need = {"channel", "used", "true_factor", "fitted_factor"}
    if not need <= set(table.columns):
        raise ValueError(f"expected a tau_recovery_table with columns {sorted(need)}, got {list(table.columns)}")
    t = table[table["used"].astype(bool)]
    vals = np.concatenate([t["true_factor"].to_numpy(float), t["fitted_factor"].to_numpy(float), [0.5, 2.0]])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    lim = (0.9 * vals.min(), 1.1 * vals.max())
    for ch, color in (("ON", "tab:red"), ("OFF", "tab:blue")):
        sel = t[t["channel"] == ch]
        plot_scatter_diagonal(ax, sel["true_factor"], sel["fitted_factor"], xlabel="true tau factor (x Willmore)",
                              ylabel="fitted tau factor (x Willmore)", lim=lim, label=f"tau {ch} (n = {len(sel)})",
                              color=color, s=s)
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":", label="initialisation")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(FixedLocator([0.5, 0.7, 1.0, 1.4, 2.0]))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title)


@styled
def synthetic_recovery_figure(dataset, plain: Mapping, adaptrans_by_seed: Mapping[int, Mapping], seed: int):
    """Recovery of the synthetic ground truth by LN + AdapTrans: (A) per neuron, the correlation
    of the fitted ON / OFF STRFs with the true ones and of the plain LN STRF with the true ON
    STRF (seed ``seed``; box and points); (B) fitted against true tau factors, one point per
    neuron, channel and seed of ``adaptrans_by_seed`` (``{seed: {neuron id: model}}``).
    Returns ``(fig, stats)``: per seed, :func:`~deepstrf_utils.interpret.groundtruth.tau_recovery`."""
    import pandas as pd

    from ..interpret.groundtruth import prefilter_parameters, strf_correlation, tau_recovery, tau_recovery_table
    from ..interpret.strfs import weight_strf

    gt = dataset.ground_truth
    if gt is None or "tau_factor_on" not in gt:
        raise ValueError(f"expected a synthetic dataset with true tau factors, got {dataset.name!r} without them")
    ids = [str(n) for n in dataset.neuron_ids]
    ada = adaptrans_by_seed[seed]
    on_off = np.stack([to_numpy(weight_strf(ada[n])[0]) for n in ids])  # (N, 2, F, K)
    plain_strf = np.stack([to_numpy(weight_strf(plain[n])[0, 0]) for n in ids])
    strf_r = pd.DataFrame({"ON": strf_correlation(on_off[:, 0], gt["strf"][:, 0]),
                           "OFF": strf_correlation(on_off[:, 1], gt["strf"][:, 1]),
                           "plain LN\nvs true ON": strf_correlation(plain_strf, gt["strf"][:, 0])}, index=ids)
    params = {s: prefilter_parameters(m, ids) for s, m in adaptrans_by_seed.items()}
    table = pd.concat([tau_recovery_table(params[s], gt, dataset.cf_hz, neuron_ids=ids).assign(seed=s)
                       for s in params])
    stats = pd.DataFrame([{"seed": s, **tau_recovery(params[s], gt, dataset.cf_hz)} for s in params]).set_index("seed")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    cols = [strf_r[c].dropna() for c in strf_r]
    axes[0].boxplot(cols, tick_labels=list(strf_r.columns), showfliers=False)
    rng = np.random.default_rng(0)
    for k, c in enumerate(cols):
        axes[0].scatter(k + 1 + rng.uniform(-0.12, 0.12, len(c)), c, s=12, color="0.3", zorder=3)
    axes[0].set_ylabel("correlation with the true STRF")
    axes[0].set_title(f"STRF recovery: {len(ids)} neurons, seed {seed}")
    n_seeds = len(params)
    plot_tau_recovery(axes[1], table, title=f"tau factors: neuron x channel x seed ({n_seeds} seeds)\n"
                                            f"r = {stats['r_pooled'].mean():.2f} (mean of the per-seed r)")
    label_panels(axes)
    used = table[table["used"].astype(bool)]
    fig.caption = (
        f"{dataset.name}: recovery of the simulated neurons by LN + AdapTrans. (A) Per neuron ({len(ids)}, seed "
        f"{seed}; points over boxes of median and quartiles, whiskers 1.5 IQR), the correlation of the fitted ON "
        f"and OFF STRFs with the true ones, and of the plain LN STRF with the true ON STRF. (B) Fitted against true "
        f"tau factor (the neuron's tau over the Willmore curve, log-averaged over the bands it listens to, weighted "
        f"by its true STRF energy in that channel), one point per neuron, channel and seed ({n_seeds} seeds: "
        f"{int((used['channel'] == 'ON').sum())} ON and {int((used['channel'] == 'OFF').sum())} OFF points); r: the "
        f"Pearson correlation of the log factors, ON and OFF pooled, per seed, averaged over seeds. A neuron enters "
        f"a channel only with at least 20 % of its STRF energy there and not among the deliberately noisy ones "
        f"({int((~table['used'].astype(bool)).sum())} neuron-channel-seed rows left out). The initialisation has "
        f"factor 1 for every neuron (dotted).")
    return fig, stats
