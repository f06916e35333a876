"""Figure helpers used by the notebooks.

Every helper draws on a given matplotlib ``Axes`` and labels each axis with its unit:
time in s or ms, frequency in kHz, magnitudes in dB. STRFs use a diverging colormap
centred at 0. :func:`save_figure` writes ``<name>.png`` (150 dpi) and ``<name>.pdf``.

Without a display (and without a backend chosen through ``MPLBACKEND``, as Jupyter does),
matplotlib is switched to the non-interactive "Agg" backend on import.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Sequence

import matplotlib

if (
    "MPLBACKEND" not in os.environ
    and not os.environ.get("DISPLAY")
    and not os.environ.get("WAYLAND_DISPLAY")
    and sys.platform.startswith("linux")
    and "matplotlib.pyplot" not in sys.modules
):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

from .metrics import trial_average  # noqa: E402

__all__ = [
    "save_figure",
    "to_numpy",
    "band_edges",
    "plot_cochleagram",
    "plot_raster",
    "plot_psth",
    "plot_strf",
    "plot_strf_grid",
    "plot_band_heatmap",
    "plot_kernel_stem",
    "plot_trace",
    "plot_bode",
    "plot_paired_bars",
    "plot_scatter_diagonal",
    "plot_vs_frequency",
    "plot_histogram",
    "plot_by_band",
    "plot_tau_recovery",
    "plot_onoff_curves",
    "plot_band_steps",
    "plot_explained",
    "symmetric_limit",
    "STRF_CMAP",
]

logger = logging.getLogger(__name__)

STRF_CMAP = "RdBu_r"
"""Diverging colormap for signed quantities (STRFs, ON/OFF outputs): red +, blue -."""


def to_numpy(a) -> np.ndarray:
    """Tensor / array / list -> float numpy array (detached, on CPU)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=float)


def save_figure(fig, name: str, folder: str | os.PathLike = "figures", dpi: int = 150,
                formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``folder/name.png`` (``dpi``) and ``folder/name.pdf``.

    ``name`` is a stable file stem without extension or directory. The folder is created.
    Returns the written paths, PNG first.
    """
    name = str(name)
    if not name or "/" in name or "\\" in name or name.endswith((".png", ".pdf")):
        raise ValueError(f"expected a figure name without folder or extension, e.g. 'fig1_adaptrans', got {name!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in formats:
        path = folder / f"{name}.{ext}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    logger.info("saved figure %s", ", ".join(str(p) for p in paths))
    return paths


def band_edges(cf_hz) -> np.ndarray:
    """Edges (F + 1,) in Hz around band centres ``cf_hz`` (F,), geometric midpoints."""
    cf = to_numpy(cf_hz).ravel()
    if cf.size == 1:
        return np.array([cf[0] / 2 ** 0.25, cf[0] * 2 ** 0.25])
    if np.any(cf <= 0) or np.any(np.diff(cf) <= 0):
        raise ValueError("expected cf_hz (F,) positive and increasing, low to high")
    mid = np.sqrt(cf[1:] * cf[:-1])
    first = cf[0] ** 2 / mid[0]
    last = cf[-1] ** 2 / mid[-1]
    return np.concatenate([[first], mid, [last]])


def _khz_axis(ax, axis="y"):
    fmt = FuncFormatter(lambda v, _pos: f"{v / 1000:g}")
    getattr(ax, f"{axis}axis").set_major_formatter(fmt)
    getattr(ax, f"{axis}axis").set_minor_formatter(FuncFormatter(lambda v, _p: ""))


def _freq_mesh(ax, data, x_edges, cf_hz, cmap, vmin, vmax, colorbar, clabel):
    """pcolormesh of data (F, X) with log-frequency y axis in kHz."""
    if cf_hz is None:
        y_edges = np.arange(data.shape[0] + 1) - 0.5
        mesh = ax.pcolormesh(x_edges, y_edges, data, cmap=cmap, vmin=vmin, vmax=vmax, shading="flat",
                             rasterized=True)
        ax.set_ylabel("frequency band (index)")
    else:
        cf = to_numpy(cf_hz).ravel()
        if cf.size != data.shape[0]:
            raise ValueError(f"expected cf_hz with F={data.shape[0]} entries, got {cf.size}")
        mesh = ax.pcolormesh(x_edges, band_edges(cf), data, cmap=cmap, vmin=vmin, vmax=vmax, shading="flat",
                             rasterized=True)
        ax.set_yscale("log")
        _khz_axis(ax, "y")
        ax.set_ylabel("frequency (kHz)")
    if colorbar:
        cb = ax.figure.colorbar(mesh, ax=ax, pad=0.02)
        cb.set_label(clabel)
    return mesh


def plot_cochleagram(ax, spec, dt_ms: float, cf_hz=None, cmap: str = "magma", colorbar: bool = True,
                     clabel: str = "level (a.u.)", title: str | None = None):
    """Spectrogram ``spec`` (F, T): time in s, frequency in kHz (band index if no ``cf_hz``)."""
    s = to_numpy(spec)
    if s.ndim == 3 and s.shape[0] == 1:
        s = s[0]
    if s.ndim != 2:
        raise ValueError(f"expected a spectrogram of shape (F, T) or (1, F, T), got {s.shape}")
    t_edges = np.arange(s.shape[1] + 1) * dt_ms / 1000.0
    mesh = _freq_mesh(ax, s, t_edges, cf_hz, cmap, None, None, colorbar, clabel)
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title)
    return mesh


def plot_raster(ax, resp, dt_ms: float, color: str = "k", title: str | None = None):
    """Raster of one neuron's trials ``resp`` (R, T) in s.

    Binned spike counts (non-negative integers) are drawn as one tick per non-empty bin;
    other data (e.g. membrane potential) as a trial x time image. NaN trials are skipped.
    """
    r = to_numpy(resp)
    if r.ndim != 2:
        raise ValueError(f"expected responses of shape (R, T), got {r.shape}")
    keep = ~np.all(np.isnan(r), axis=1)
    r = r[keep]
    t = (np.arange(r.shape[1]) + 0.5) * dt_ms / 1000.0
    finite = r[np.isfinite(r)]
    is_counts = finite.size > 0 and np.all(finite >= 0) and np.allclose(finite, np.round(finite))
    if is_counts:
        events = [t[np.nan_to_num(row) > 0] for row in r]
        ax.eventplot(events, colors=color, lineoffsets=np.arange(len(events)), linelengths=0.8, linewidths=0.8)
        ax.set_ylim(-0.5, max(len(events), 1) - 0.5)
    else:
        ax.imshow(r, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                  extent=(0, r.shape[1] * dt_ms / 1000.0, -0.5, r.shape[0] - 0.5))
    ax.set_xlim(0, r.shape[1] * dt_ms / 1000.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("trial (#)")
    if title:
        ax.set_title(title)


def plot_psth(ax, resp, dt_ms: float, pred=None, ylabel: str = "response (a.u.)", label: str = "data",
              color: str = "k", title: str | None = None):
    """Trial-averaged response of ``resp`` (R, T) or (T,) against time (s); optional
    prediction ``pred`` (T,) overlaid."""
    r = to_numpy(resp)
    if r.ndim == 2:
        m = trial_average(r, axis=0)
    elif r.ndim == 1:
        m = r
    else:
        raise ValueError(f"expected responses of shape (R, T) or (T,), got {r.shape}")
    t = (np.arange(m.size) + 0.5) * dt_ms / 1000.0
    ax.plot(t, m, color=color, lw=1, label=label)
    if pred is not None:
        p = to_numpy(pred).ravel()
        if p.size != m.size:
            raise ValueError(f"expected a prediction of T={m.size} bins, got {p.size}")
        ax.plot(t, p, color="tab:red", lw=1, label="prediction")
        ax.legend(frameon=False, fontsize="small")
    ax.set_xlim(0, m.size * dt_ms / 1000.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def plot_strf(ax, strf, dt_ms: float, cf_hz=None, vmax: float | None = None, colorbar: bool = True,
              clabel: str = "weight (a.u.)", title: str | None = None):
    """STRF image ``strf`` (F, K): lag in ms (0 = present bin) on x, frequency on y (kHz),
    diverging colormap symmetric about 0 (``vmax`` defaults to max |strf|)."""
    s = to_numpy(strf)
    if s.ndim != 2:
        raise ValueError(f"expected an STRF of shape (F, K), got {s.shape}")
    if vmax is None:
        vmax = float(np.nanmax(np.abs(s))) if s.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    lag_edges = (np.arange(s.shape[1] + 1) - 0.5) * dt_ms
    mesh = _freq_mesh(ax, s, lag_edges, cf_hz, STRF_CMAP, -vmax, vmax, colorbar, clabel)
    ax.set_xlabel("lag (ms)")
    if title:
        ax.set_title(title)
    return mesh


def plot_strf_grid(strfs, dt_ms: float, cf_hz=None, titles: Sequence[str] | None = None, ncols: int = 5,
                   shared_scale: bool = False, panel_size=(2.4, 2.0), suptitle: str | None = None):
    """Grid of STRF images from ``strfs`` (M, F, K). Returns the figure."""
    s = to_numpy(strfs)
    if s.ndim != 3:
        raise ValueError(f"expected STRFs of shape (M, F, K), got {s.shape}")
    M = s.shape[0]
    ncols = max(1, min(ncols, M))
    nrows = int(np.ceil(M / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                             squeeze=False, constrained_layout=True)
    vmax = float(np.nanmax(np.abs(s))) if shared_scale else None
    for i, ax in enumerate(axes.flat):
        if i >= M:
            ax.axis("off")
            continue
        plot_strf(ax, s[i], dt_ms, cf_hz, vmax=vmax, colorbar=False,
                  title=titles[i] if titles is not None else f"#{i}")
        if i % ncols:
            ax.set_ylabel("")
        if i < M - ncols:
            ax.set_xlabel("")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_band_heatmap(ax, data, dt_ms: float | None = None, cf_hz=None, signed: bool = True,
                      colorbar: bool = True, clabel: str = "amplitude (a.u.)", title: str | None = None):
    """Band x time heatmap ``data`` (F, T) (e.g. AdapTrans ON or OFF output); time in ms if
    ``dt_ms`` is given, else in samples; signed data on a diverging map centred at 0."""
    d = to_numpy(data)
    if d.ndim != 2:
        raise ValueError(f"expected data of shape (F, T), got {d.shape}")
    scale = dt_ms if dt_ms is not None else 1.0
    x_edges = np.arange(d.shape[1] + 1) * scale
    if signed:
        vmax = float(np.nanmax(np.abs(d))) or 1.0
        mesh = _freq_mesh(ax, d, x_edges, cf_hz, STRF_CMAP, -vmax, vmax, colorbar, clabel)
    else:
        mesh = _freq_mesh(ax, d, x_edges, cf_hz, "magma", None, None, colorbar, clabel)
    ax.set_xlabel("time (ms)" if dt_ms is not None else "time (samples)")
    if title:
        ax.set_title(title)
    return mesh


def plot_kernel_stem(ax, kernel, color: str = "C0", label: str | None = None, title: str | None = None,
                     dt_ms: float | None = None):
    """Stem plot of a temporal kernel ``kernel`` (K,), ``[k]`` = weight of x[t - k]; lag in
    samples (or ms with ``dt_ms``)."""
    k = to_numpy(kernel).ravel()
    lags = np.arange(k.size) * (dt_ms if dt_ms is not None else 1.0)
    markerline, stemlines, baseline = ax.stem(lags, k, label=label, basefmt="k-")
    plt.setp(markerline, color=color, markersize=3)
    plt.setp(stemlines, color=color, linewidth=1)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("lag (ms)" if dt_ms is not None else "lag (samples)")
    ax.set_ylabel("weight")
    if title:
        ax.set_title(title)


def plot_trace(ax, y, x=None, label: str | None = None, color: str | None = None, xlabel: str = "time (samples)",
               ylabel: str = "amplitude (a.u.)", title: str | None = None, **kwargs):
    """Line plot of ``y`` (T,) against ``x`` (default sample index), labelled axes."""
    yy = to_numpy(y).ravel()
    xx = np.arange(yy.size) if x is None else to_numpy(x).ravel()
    ax.plot(xx, yy, label=label, color=color, **kwargs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def plot_bode(ax, omega, magnitude_db, label: str | None = None, color: str | None = None,
              linestyle: str = "-", title: str | None = None):
    """Bode magnitude: ``magnitude_db`` (W,) in dB against ``omega`` (W,) in rad/sample."""
    ax.plot(to_numpy(omega), to_numpy(magnitude_db), label=label, color=color, linestyle=linestyle, lw=1.2)
    ax.set_xlabel("frequency (rad/sample)")
    ax.set_ylabel("magnitude (dB)")
    if title:
        ax.set_title(title)


def plot_paired_bars(ax, labels: Sequence[str], values_a, values_b, err_a=None, err_b=None,
                     label_a: str = "without AdapTrans", label_b: str = "with AdapTrans",
                     ylabel: str = "CCnorm (%)", colors=("0.65", "tab:orange"), title: str | None = None):
    """Paired bars per group (e.g. model): ``values_a`` / ``values_b`` (G,) with optional
    error bars ``err_a`` / ``err_b`` (G,) (e.g. SEM over neurons). NaN bars are left out."""
    va, vb = to_numpy(values_a).ravel(), to_numpy(values_b).ravel()
    G = len(labels)
    if va.size != G or vb.size != G:
        raise ValueError(f"expected values_a and values_b with {G} entries (one per label), got {va.size}, {vb.size}")
    ea = None if err_a is None else to_numpy(err_a).ravel()
    eb = None if err_b is None else to_numpy(err_b).ravel()
    x = np.arange(G)
    width = 0.38
    ax.bar(x - width / 2, np.nan_to_num(va), width, yerr=ea, color=colors[0], label=label_a, capsize=3,
           error_kw={"lw": 1})
    ax.bar(x + width / 2, np.nan_to_num(vb), width, yerr=eb, color=colors[1], label=label_b, capsize=3,
           error_kw={"lw": 1})
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title)


def plot_scatter_diagonal(ax, x, y, xlabel: str, ylabel: str, lim=None, label: str | None = None,
                          color: str | None = None, title: str | None = None, s: float = 10):
    """Scatter ``y`` against ``x`` (paired per item, e.g. neuron) with the identity line;
    equal axis limits ``lim`` (default spanning both)."""
    xx, yy = to_numpy(x).ravel(), to_numpy(y).ravel()
    if xx.size != yy.size:
        raise ValueError(f"expected x and y of the same length, got {xx.size} and {yy.size}")
    ax.scatter(xx, yy, s=s, alpha=0.7, label=label, color=color, edgecolors="none")
    if lim is None:
        both = np.concatenate([xx, yy])
        both = both[np.isfinite(both)]
        lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        lim = (lo - pad, hi + pad)
    ax.plot(lim, lim, color="k", lw=0.8, ls="--")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def plot_vs_frequency(ax, cf_hz, values, label: str | None = None, ylabel: str = "value", color: str | None = None,
                      marker: str = "o", linestyle: str = "", title: str | None = None, **kwargs):
    """``values`` (F,) against band centre frequency ``cf_hz`` (F,) on a log axis in kHz."""
    cf = to_numpy(cf_hz).ravel()
    v = to_numpy(values).ravel()
    if cf.size != v.size:
        raise ValueError(f"expected values with one entry per band (F={cf.size}), got {v.size}")
    ax.plot(cf, v, marker=marker, linestyle=linestyle, label=label, color=color, markersize=3, **kwargs)
    ax.set_xscale("log")
    _khz_axis(ax, "x")
    ax.set_xlabel("frequency (kHz)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def plot_histogram(ax, values, bins=20, xlabel: str = "value", label: str | None = None, color: str | None = None,
                   title: str | None = None, **kwargs):
    """Histogram of the finite entries of ``values``; y axis = count of items."""
    v = to_numpy(values).ravel()
    v = v[np.isfinite(v)]
    ax.hist(v, bins=bins, label=label, color=color, alpha=0.7, **kwargs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count (#)")
    if title:
        ax.set_title(title)


# ----------------------------------------------------------------------------------------
# figure-level helpers of the notebooks
# ----------------------------------------------------------------------------------------
def plot_by_band(ax, df, x: str, xlabel: str, y: str = "amplitude", ylabel: str = "amplitude (a.u.)",
                 n_shown: int = 5, title: str | None = None):
    """Lines of ``y`` against ``x`` for ``n_shown`` bands spread from low to high frequency,
    from a tidy DataFrame with columns band, cf_hz, ``x``, ``y`` (insilico outputs)."""
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
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize="x-small", title="band")
    if title:
        ax.set_title(title)


def plot_tau_recovery(ax, table, title: str | None = None, s: float = 16):
    """Fitted against true AdapTrans time-constant factors, one point per neuron and channel.

    ``table``: :func:`deepstrf_utils.groundtruth.tau_recovery_table` (columns channel, used,
    true_factor, fitted_factor; optionally stacked over seeds). Only rows with ``used`` are
    drawn: ON in red, OFF in blue, on log axes, with the identity line (perfect recovery)
    and the Willmore initialisation (factor 1, dotted).
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
    ticks = [0.5, 0.7, 1.0, 1.4, 2.0]
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.legend(frameon=False, fontsize="x-small")
    if title:
        ax.set_title(title)


def plot_onoff_curves(axes, df, stat: str = "relative"):
    """In-silico ON/OFF curves of whole models beside their AdapTrans alone (three panels).

    ``df``: :func:`deepstrf_utils.insilico_models.model_onoff_curves` outputs (concatenated); per
    label and source, the median over neurons of ``stat`` against the condition: OFF vs
    fall time (``axes[0]``), OFF vs preceding duration (``axes[1]``, log x), ON vs rise time
    (``axes[2]``); whole model solid, its AdapTrans alone dashed, one colour per label.
    """
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
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{which} amplitude ({'fraction of max' if stat == 'relative' else 'a.u.'})")
        ax.set_title(f"{which} vs {xlabel.split(' (')[0]}")
    axes[1].set_xscale("log")
    durations = np.unique(df.loc[df["experiment"] == "duration", "x_ms"].to_numpy(float))
    axes[1].xaxis.set_major_locator(FixedLocator(durations))
    axes[1].xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes[1].xaxis.set_minor_formatter(NullFormatter())
    axes[0].legend(frameon=False, fontsize="xx-small")


def plot_band_steps(axes, df, neurons: Sequence):
    """ON and OFF amplitude per band of tone steps, one row of two panels per neuron.

    ``df``: :func:`deepstrf_utils.insilico_models.model_band_steps` outputs (concatenated);
    ``axes`` ``(len(neurons), 2)``: ON left, OFF right, against the band centre frequency (log
    axis, kHz); one colour per label, the whole model solid, its AdapTrans alone dashed. Each
    curve is divided by the largest ON *or* OFF amplitude over bands of its label, neuron and
    source, so the shapes of models with other output scales compare while a weak OFF response
    stays small beside the ON one (a curve of zeros is drawn at 0)."""
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
    if len(neurons):
        axes[0, 0].legend(frameon=False, fontsize="xx-small")


def symmetric_limit(arrays, percentile: float = 99.0) -> tuple[float, float]:
    """Symmetric colour limit of signed images: the ``percentile`` of |x| over the finite entries
    of all ``arrays`` (each any shape). Returns ``(vmax, clipped)``, ``clipped`` the share of
    entries with |x| > vmax (drawn at the end colours); vmax = 1 when every entry is 0."""
    if not 0 < percentile <= 100:
        raise ValueError(f"expected a percentile in (0, 100], got {percentile}")
    a = np.abs(np.concatenate([to_numpy(x).ravel() for x in arrays])) if len(arrays) else np.zeros(0)
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError("expected at least one finite entry")
    vmax = float(np.percentile(a, percentile))
    vmax = vmax if vmax > 0 else (float(a.max()) or 1.0)
    return vmax, float(np.mean(a > vmax))


def plot_explained(ax, explained, label: str | None = None, color: str | None = None):
    """Share of each neuron's dSTRF energy per dPC (``explained`` ``(N, P)``, from
    :func:`deepstrf_utils.dstrf.dpcs`): thin line per neuron, median thick, in percent."""
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
