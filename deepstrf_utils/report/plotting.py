"""Figure helpers used by the notebooks.

Every helper draws on a given matplotlib ``Axes`` and labels each axis with its unit: lags
and durations in ms, position within a stimulus in s, frequency in kHz (Hz for modulation
frequencies), magnitudes in dB, firing rates in spikes/s, CCraw / CCnorm in %. STRFs use a
diverging colormap centred at 0. One style for every figure (:data:`STYLE`, applied by
:func:`styled` to the figure functions: no text under 8 pt), panel letters
(:func:`label_panels`), the lag window that holds a panel's energy (:func:`lag_window`).
:func:`save_figure` writes ``<name>.png`` (300 dpi), ``<name>.pdf`` and the figure's caption
``<name>.caption.md`` (the ``caption`` attribute that every figure function sets).

Without a display (and without a backend chosen through ``MPLBACKEND``, as Jupyter does),
matplotlib is switched to the non-interactive "Agg" backend on import.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
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
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter  # noqa: E402

from ..metrics import trial_average  # noqa: E402

__all__ = [
    "STYLE",
    "styled",
    "label_panels",
    "lag_window",
    "response_unit",
    "log_axis",
    "save_figure",
    "read_caption",
    "to_numpy",
    "band_edges",
    "plot_cochleagram",
    "plot_raster",
    "plot_psth",
    "plot_strf",
    "plot_band_heatmap",
    "plot_kernel_stem",
    "plot_trace",
    "plot_bode",
    "plot_paired_bars",
    "plot_scatter_diagonal",
    "plot_vs_frequency",
    "plot_histogram",
    "symmetric_limit",
    "STRF_CMAP",
]

logger = logging.getLogger(__name__)

STRF_CMAP = "RdBu_r"
"""Diverging colormap for signed quantities (STRFs, ON/OFF outputs): red +, blue -."""

#: matplotlib settings of every figure of the project (font sizes in pt; none below 8)
STYLE = {
    "font.size": 9.0, "axes.titlesize": 10.0, "axes.labelsize": 9.0, "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5, "legend.fontsize": 8.5, "legend.title_fontsize": 8.5, "figure.titlesize": 11.0,
    "legend.frameon": False, "savefig.dpi": 300,
}
#: size of the panel letters (pt)
LETTER_SIZE = 12.0
#: the file written beside each saved figure with its caption
CAPTION_SUFFIX = ".caption.md"


def styled(fn):
    """Decorator of a figure function: it builds its figure under :data:`STYLE`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _letter(i: int) -> str:
    """0 -> "A", 25 -> "Z", 26 -> "AA"."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def label_panels(axes, start: int = 0) -> list[str]:
    """Bold letters A, B, ... at the top left of each of ``axes`` (in the given order, from
    letter number ``start``), outside the axes so they never cover data. Returns the letters.
    The letters are ``Annotation`` artists with ``gid="panel-letter"``."""
    letters = []
    for i, ax in enumerate(axes):
        letter = _letter(start + i)
        ax.annotate(letter, xy=(0, 1), xycoords="axes fraction", xytext=(-4, 6), textcoords="offset points",
                    ha="right", va="bottom", fontweight="bold", fontsize=LETTER_SIZE, gid="panel-letter")
        letters.append(letter)
    return letters


def lag_window(arrays, share: float = 0.99, min_lags: int = 1) -> int:
    """Smallest number of lags ``L`` such that lags ``0 .. L-1`` hold ``share`` of the summed
    squared entries of ``arrays`` (each ``(..., K_i)``, lag last; a shorter array has no energy
    at the lags it lacks): the window a figure crops its lag axis to. At least ``min_lags`` and
    at most ``K = max K_i``; K when every entry is 0."""
    if not 0 < share <= 1:
        raise ValueError(f"expected a share in (0, 1], got {share}")
    mats = [to_numpy(a) for a in arrays]
    if not mats or any(m.ndim < 1 or m.shape[-1] == 0 for m in mats):
        raise ValueError(f"expected arrays with lags on the last axis, got shapes {[m.shape for m in mats]}")
    K = max(m.shape[-1] for m in mats)
    energy = np.zeros(K)
    for m in mats:
        energy[: m.shape[-1]] += np.nansum(m.reshape(-1, m.shape[-1]) ** 2, axis=0)
    total = float(energy.sum())
    if total <= 0:
        return K
    n = int(np.searchsorted(np.cumsum(energy) / total, share - 1e-12) + 1)
    return int(min(K, max(n, int(min_lags))))


def response_unit(dataset) -> tuple[str, float]:
    """``(unit label, factor)`` of a dataset's responses for figures: spike counts per bin
    become ``("spikes/s", 1000 / dt_ms)``; other responses keep their unit (``"a.u."``
    unless ``dataset.meta["units"]`` says otherwise) with factor 1."""
    units = str((getattr(dataset, "meta", None) or {}).get("units", "spike counts per bin"))
    if "spike" in units.lower():
        return "spikes/s", 1000.0 / float(dataset.dt_ms)
    return (units.split(";")[0].strip() or "a.u."), 1.0


def log_axis(ax, values, axis: str = "x"):
    """Log scale on ``axis`` with a tick at each of ``values`` (ms, counts, ...); a 0 among them
    is kept on a symmetric-log axis, linear below the smallest positive value."""
    v = np.unique(to_numpy(values).ravel())
    v = v[np.isfinite(v)]
    if np.any(v < 0):
        raise ValueError(f"expected non-negative values for a log axis, got {v.min()}")
    positive = v[v > 0]
    if positive.size == 0:
        raise ValueError("expected at least one positive value for a log axis")
    if np.any(v == 0):
        getattr(ax, f"set_{axis}scale")("symlog", linthresh=float(positive.min()), linscale=0.5)
    else:
        getattr(ax, f"set_{axis}scale")("log")
    target = getattr(ax, f"{axis}axis")
    target.set_major_locator(FixedLocator(v))
    target.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    target.set_minor_formatter(NullFormatter())


def to_numpy(a) -> np.ndarray:
    """Tensor / array / list -> float numpy array (detached, on CPU)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=float)


def _atomic_write(path: Path, write) -> None:
    """``write(temporary path)`` then rename onto ``path``: an interrupted write leaves no file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> the usual permissions of a new file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_figure(fig, name: str, folder: str | os.PathLike = "figures", dpi: int = 300,
                formats: Sequence[str] = ("png", "pdf"), caption: str | None = None) -> list[Path]:
    """Save ``fig`` as ``folder/name.png`` (``dpi``) and ``folder/name.pdf``, and its caption
    as ``folder/name.caption.md``.

    ``name`` is a stable file stem without extension or directory. The folder is created.
    ``caption``: the text saying what is shown (default: ``fig.caption``, which every figure
    function of the library sets); a figure without one is saved with a warning (logged).
    Every file is written to a temporary name and renamed. Returns the written paths: the
    images in ``formats`` order, then the caption file when there is one.
    """
    name = str(name)
    if not name or "/" in name or "\\" in name or name.endswith((".png", ".pdf")):
        raise ValueError(f"expected a figure name without folder or extension, e.g. 'fig1_adaptrans', got {name!r}")
    caption = caption if caption is not None else getattr(fig, "caption", None)
    if caption is not None and not isinstance(caption, str):
        raise TypeError(f"expected the caption as a str, got {type(caption).__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in formats:
        path = folder / f"{name}.{ext}"
        _atomic_write(path, lambda tmp: fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight"))
        paths.append(path)
    if caption:
        path = folder / f"{name}{CAPTION_SUFFIX}"
        _atomic_write(path, lambda tmp: Path(tmp).write_text(caption.strip() + "\n", encoding="utf-8"))
        paths.append(path)
    else:
        logger.warning("figure %s saved without a caption", name)
    logger.info("saved figure %s", ", ".join(str(p) for p in paths))
    return paths


def read_caption(folder: str | os.PathLike, name: str) -> str | None:
    """The caption :func:`save_figure` wrote beside figure ``name`` in ``folder``, or None."""
    path = Path(folder) / f"{name}{CAPTION_SUFFIX}"
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


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
        ax.legend()
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
              linestyle: str = "-", title: str | None = None, dt_ms: float | None = None):
    """Bode magnitude: ``magnitude_db`` (W,) in dB against ``omega`` (W,) in rad/sample, drawn
    in Hz (``omega / (2 pi dt)``) when the bin width ``dt_ms`` is given."""
    om = to_numpy(omega)
    x = om if dt_ms is None else om / (2 * np.pi * float(dt_ms) / 1000.0)
    ax.plot(x, to_numpy(magnitude_db), label=label, color=color, linestyle=linestyle, lw=1.2)
    ax.set_xlabel("frequency (rad/sample)" if dt_ms is None else "modulation frequency (Hz)")
    ax.set_ylabel("magnitude (dB)")
    if title:
        ax.set_title(title)


def plot_paired_bars(ax, labels: Sequence[str], values_a, values_b, err_a=None, err_b=None,
                     label_a: str = "without AdapTrans", label_b: str = "with AdapTrans",
                     ylabel: str = "CCnorm (%)", colors=("0.65", "tab:orange"), title: str | None = None,
                     legend: bool = True, width: float = 0.38):
    """Paired bars per group (e.g. model): ``values_a`` / ``values_b`` (G,) with optional
    error bars ``err_a`` / ``err_b`` (G,) (e.g. SEM over neurons: thick dark lines without
    caps). NaN bars are left out. ``legend=False`` leaves the legend to the caller."""
    va, vb = to_numpy(values_a).ravel(), to_numpy(values_b).ravel()
    G = len(labels)
    if va.size != G or vb.size != G:
        raise ValueError(f"expected values_a and values_b with {G} entries (one per label), got {va.size}, {vb.size}")
    ea = None if err_a is None else to_numpy(err_a).ravel()
    eb = None if err_b is None else to_numpy(err_b).ravel()
    x = np.arange(G)
    err = {"lw": 2.2, "ecolor": "0.15", "capsize": 0}
    ax.bar(x - width / 2, np.nan_to_num(va), width, yerr=ea, color=colors[0], label=label_a, error_kw=err)
    ax.bar(x + width / 2, np.nan_to_num(vb), width, yerr=eb, color=colors[1], label=label_b, error_kw=err)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="k", lw=0.5)
    if legend:
        ax.legend()
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
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count (#)")
    if title:
        ax.set_title(title)


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
