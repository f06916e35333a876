"""Reading a visual model: receptive fields, most exciting movies and in-silico experiments.

Every function takes any module mapping movies ``(B, C, H, W, T)`` to rates ``(B, N, T)``: a
fitted visual model (:mod:`deepstrf_utils.models.vision`, :mod:`deepstrf_utils.models.vision_cnn`) or the true neurons of the
synthetic population (:class:`~deepstrf_utils.datasets.synthetic_visual.VisualGroundTruth`),
so that the same experiment compares a model with the truth. Models that take behaviour
signals (``n_states > 0``) are run with the signals at 0 (a still animal).

* receptive fields: :func:`weight_rf` (a ``VisualLinearNonlinear``'s weights, ON - OFF on
  AdapTrans channels), :func:`gradient_rf` (the mean gradient of the response at a frame
  with respect to the preceding frames, over windows of given movies), :func:`rf_summary`
  (centre, polarity and peak lag of each field) and :func:`rf_recovery` (against the
  synthetic ground truth);
* :func:`most_exciting_movie`: :func:`deepstrf_utils.mei.most_exciting_input` on movies, with
  :func:`movie_statistics` for its range and energy budget;
* in silico: :func:`size_tuning` (discs or annuli of growing radius on the receptive field),
  :func:`dog_optimal_radius` (the radius where a difference-of-Gaussians field peaks),
  :func:`flash_responses` (full-field ON / OFF steps and their adaptation) and
  :func:`direction_tuning` (drifting gratings).

Shapes: B movies, C channels, H x W pixels, T frames, K lags, N neurons.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import visual_stimuli as vs
from ..models import model_device
from .mei import MEIResult, most_exciting_input

__all__ = ["weight_rf", "gradient_rf", "rf_summary", "rf_recovery", "recovery_counts", "flash_direction_summary", "movie_statistics", "most_exciting_movie",
           "size_tuning", "dog_optimal_radius", "suppression_index", "flash_responses", "direction_tuning"]


def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x) -> (B, N, T), with zero behaviour signals for models that take them."""
    n_states = int(getattr(model, "n_states", 0) or 0)
    if n_states:
        return model(x, state=torch.zeros(x.shape[0], n_states, x.shape[-1], dtype=x.dtype, device=x.device))
    return model(x)


def _frame_shape(model: nn.Module) -> tuple[int, int, int]:
    shape = getattr(model, "frame_shape", None)
    if shape is None or len(shape) != 3:
        raise ValueError(f"expected a visual model with frame_shape (C, H, W), got {type(model).__name__} without one")
    return tuple(int(v) for v in shape)


def weight_rf(model: nn.Module) -> torch.Tensor:
    """Receptive fields ``(N, C, H, W, K)`` of a ``VisualLinearNonlinear`` from its weights;
    on AdapTrans channels (ON then OFF) the luminance field is ON - OFF (OFF grows when the
    luminance falls)."""
    if not callable(getattr(model, "rf", None)):
        raise ValueError(f"expected a model with receptive-field weights (rf()), got {type(model).__name__}")
    rf = model.rf()
    c = _frame_shape(model)[0]
    return rf[:, :c] - rf[:, c:] if rf.shape[1] == 2 * c else rf


def gradient_rf(model: nn.Module, movies: torch.Tensor, n_lags: int = 8, n_windows: int = 64,
                context: int | None = None, seed: int = 0) -> torch.Tensor:
    """Mean gradient receptive fields ``(N, C, H, W, K)``: ``[n, ..., k]`` is the average over
    windows of d rate_n(t) / d x(t - k), at ``n_windows`` random frames t of ``movies``.

    movies: ``(B, C, H, W, T)`` (e.g. the training movies, padded); each window holds the
    ``context + n_lags`` frames ending at t (``context`` default: the model's prefilter
    kernel, so that AdapTrans' adaptation is in its state). Exact gradients, N backward passes.
    """
    x = torch.as_tensor(movies, dtype=torch.float32)
    if x.dim() != 5:
        raise ValueError(f"expected movies of shape (B, C, H, W, T), got {tuple(x.shape)}")
    k = int(n_lags)
    ctx = int(getattr(getattr(model, "prefilter", None), "kernel_size", 1) or 1) if context is None else int(context)
    length = ctx + k
    if x.shape[-1] < length:
        raise ValueError(f"expected movies of at least {length} frames (context {ctx} + {k} lags), got {x.shape[-1]}")
    g = torch.Generator().manual_seed(int(seed))
    b = torch.randint(0, x.shape[0], (int(n_windows),), generator=g)
    t = torch.randint(length - 1, x.shape[-1], (int(n_windows),), generator=g)
    windows = torch.stack([x[i, ..., j - length + 1:j + 1] for i, j in zip(b.tolist(), t.tolist())])
    windows = windows.to(model_device(model)).requires_grad_(True)
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            last = _run(model, windows)[:, :, -1]  # (W, N)
            grads = [torch.autograd.grad(last[:, n].sum(), windows, retain_graph=n + 1 < last.shape[1])[0]
                     for n in range(last.shape[1])]
    finally:
        model.train(was)
    g = torch.stack(grads).mean(1)  # (N, C, H, W, L)
    return g[..., -k:].flip(-1).detach().cpu()


def rf_summary(rf, window: float = 2.0, smooth_px: float = 1.0) -> pd.DataFrame:
    """Centre, polarity and peak lag of receptive fields ``(N, C, H, W, K)`` (or ``(N, H, W, K)``).

    Per neuron (channels summed): the lag k whose frame has the most energy (sum of
    squares), the pixel of largest absolute value of that frame smoothed by a Gaussian of
    ``smooth_px`` pixels (0: none; single noisy pixels of a gradient field then do not win),
    whose sign is the polarity (+1 ON, -1 OFF), and the centre as the centroid of
    ``polarity * rf`` (clipped at 0) within ``window`` pixels of it. Columns: neuron, x, y
    (pixels), polarity, peak_lag, peak.
    """
    from scipy.ndimage import gaussian_filter

    r = np.asarray(rf, dtype=np.float64)
    if r.ndim == 5:
        r = r.sum(1)
    if r.ndim != 4:
        raise ValueError(f"expected receptive fields of shape (N, C, H, W, K) or (N, H, W, K), got {np.shape(rf)}")
    rows = []
    yy, xx = np.mgrid[0:r.shape[1], 0:r.shape[2]]
    for n, field in enumerate(r):
        lag = int(np.argmax(np.square(field).reshape(-1, field.shape[-1]).sum(0)))
        frame = field[..., lag]
        smooth = gaussian_filter(frame, float(smooth_px), mode="nearest") if smooth_px else frame
        iy, ix = np.unravel_index(int(np.argmax(np.abs(smooth))), frame.shape)
        pol = 1.0 if smooth[iy, ix] >= 0 else -1.0
        near = (xx - ix) ** 2 + (yy - iy) ** 2 <= float(window) ** 2
        wgt = np.where(near, np.clip(pol * frame, 0, None), 0.0)
        total = wgt.sum()
        x, y = ((wgt * xx).sum() / total, (wgt * yy).sum() / total) if total > 0 else (float(ix), float(iy))
        rows.append({"neuron": n, "x": float(x), "y": float(y), "polarity": pol, "peak_lag": lag,
                     "peak": float(np.abs(frame).max())})
    return pd.DataFrame(rows)


def rf_recovery(summary: pd.DataFrame, ground_truth: dict) -> pd.DataFrame:
    """:func:`rf_summary` against the synthetic truth: adds the true centre and polarity, the
    centre error (pixels), whether the polarity is right, and the neuron's kind."""
    centre = np.asarray(ground_truth["centre_xy"], dtype=np.float64)
    if len(summary) != centre.shape[0]:
        raise ValueError(f"expected one summary row per true neuron ({centre.shape[0]}), got {len(summary)}")
    out = summary.copy()
    out["true_x"], out["true_y"] = centre[:, 0], centre[:, 1]
    out["true_polarity"] = np.asarray(ground_truth["polarity"], dtype=np.float64)
    out["error_px"] = np.hypot(out["x"] - out["true_x"], out["y"] - out["true_y"])
    out["polarity_ok"] = out["polarity"] == out["true_polarity"]
    out["kind"] = np.where(np.asarray(ground_truth["adapting"], dtype=bool), "adapting", "sustained")
    return out


def recovery_counts(recoveries: dict) -> pd.DataFrame:
    """One row per estimate of ``{label: rf_recovery table}``: neurons with the centre within
    1.5 pixels and the right polarity, the median centre error (pixels), neurons with the right polarity."""
    return pd.DataFrame({k: {"centre within 1.5 px and right polarity": f"{int(((r.error_px < 1.5) & r.polarity_ok).sum())}/{len(r)}",
                             "median centre error (px)": round(float(r.error_px.median()), 2),
                             "polarity right": f"{int(r.polarity_ok.sum())}/{len(r)}"}
                         for k, r in recoveries.items()}).T


def flash_direction_summary(flashes: dict, directions: dict, ground_truth: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per source (``{label: flash_responses table}``, ``{label: direction_tuning table}``):
    the median adaptation index of each planted kind at the neuron's preferred flash (its
    polarity), and the direction summary of the direction-selective neurons beside their
    planted direction. Returns ``(adaptation (kind x source), directions (neuron x (source, value)))``."""
    gt = ground_truth

    def preferred(table):
        d = table.attrs["summary"]
        kind = np.where(np.asarray(gt["adapting"])[d["neuron"]], "adapting", "sustained")
        flash = np.where(np.asarray(gt["polarity"])[d["neuron"]] > 0, "ON", "OFF")
        return d.assign(kind=kind)[d["flash"].to_numpy() == flash]

    adapt = pd.concat({k: preferred(t).groupby("kind")["adaptation"].median() for k, t in flashes.items()}, axis=1)
    ds = np.flatnonzero(np.isfinite(np.asarray(gt["direction_deg"], dtype=float)))
    dsi = pd.concat({k: t.attrs["summary"].set_index("neuron").loc[ds] for k, t in directions.items()}, axis=1)
    dsi[("truth", "planted direction")] = np.asarray(gt["direction_deg"])[ds]
    return adapt.rename_axis("median adaptation index (preferred flash)"), dsi


def movie_statistics(dataset, n_frames: int) -> dict:
    """Range, mean level and typical window energy of a movie dataset's stimuli:
    ``{"value_range", "baseline", "energy" = std * sqrt(C H W n_frames)}`` (arguments of
    :func:`most_exciting_movie`)."""
    allv = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in dataset.stimuli])
    size = int(np.prod(np.shape(dataset.stimuli[0])[:-1])) * int(n_frames)
    return {"value_range": (float(allv.min()), float(allv.max())), "baseline": float(allv.mean()),
            "energy": float(allv.std() * np.sqrt(size))}


def most_exciting_movie(model: nn.Module, neuron: int = 0, n_frames: int | None = None, **kwargs) -> MEIResult:
    """The most exciting movie ``(C, H, W, n_frames)`` of a neuron under an energy budget and a
    range (``energy``, ``baseline``, ``value_range``, e.g. from :func:`movie_statistics`):
    :func:`~deepstrf_utils.mei.most_exciting_input` on a visual model; ``caption()`` states
    the constraints."""
    _frame_shape(model)
    return most_exciting_input(model, neuron, n_bins=n_frames, **kwargs)


def _responses(model: nn.Module, movies: np.ndarray, batch: int = 16) -> np.ndarray:
    """Rates ``(M, N, T)`` to movies ``(M, H, W, T)`` (C = 1), in batches, eval mode."""
    dev = model_device(model)
    out = []
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(movies), batch):
                x = torch.as_tensor(np.asarray(movies[i:i + batch])[:, None], dtype=torch.float32, device=dev)
                out.append(_run(model, x).double().cpu().numpy())
    finally:
        model.train(was)
    return np.concatenate(out)


def dog_optimal_radius(sigma_centre: float, sigma_surround: float, weight: float) -> float:
    """Radius (pixels) of the disc that drives a difference of Gaussians most:
    ``(1 - e^{-r^2/2 sc^2}) - weight (1 - e^{-r^2/2 ss^2})`` peaks at
    ``r^2 = 2 ln(ss^2 / (weight sc^2)) / (1/sc^2 - 1/ss^2)`` (inf without surround suppression)."""
    sc2, ss2 = float(sigma_centre) ** 2, float(sigma_surround) ** 2
    if float(weight) <= 0 or ss2 <= sc2 or ss2 <= float(weight) * sc2:
        return float("inf")
    ratio = ss2 / (float(weight) * sc2)
    return float(np.sqrt(2 * np.log(ratio) / (1 / sc2 - 1 / ss2)))


def size_tuning(model: nn.Module, centres_xy, radii, kind: str = "disc", contrast: float = 1.0, n_frames: int = 40,
                onset: int = 10, measure: str = "mean") -> pd.DataFrame:
    """Responses to discs (or annuli) of growing radius centred on each neuron's field.

    centres_xy: ``(N, 2)`` centres in pixels, one per neuron of the model (e.g. from
    :func:`rf_summary` or the ground truth); radii: disc radii (annuli: inner radii, the
    outer edge beyond the frame); contrast: +1 a bright disc, -1 a dark one (use each
    neuron's polarity). The stimulus appears at frame ``onset`` and stays; the response is
    the ``"mean"`` (or ``"peak"``) rate from the onset on, minus the mean rate before it.
    Returns a long table: neuron, radius, response.
    """
    if kind not in ("disc", "annulus"):
        raise ValueError(f"expected kind 'disc' or 'annulus', got {kind!r}")
    if measure not in ("mean", "peak"):
        raise ValueError(f"expected measure 'mean' or 'peak', got {measure!r}")
    _, h, w = _frame_shape(model)
    centres = np.asarray(centres_xy, dtype=np.float64).reshape(-1, 2)
    contrast = np.broadcast_to(np.asarray(contrast, dtype=np.float64), (centres.shape[0],))
    outer = 2.0 * (h + w)
    rows = []
    for n, (c, sign) in enumerate(zip(centres, contrast)):
        movies = np.stack([vs.disc((h, w), c, outer if kind == "annulus" else r, n_frames, onset, contrast=sign,
                                   inner_radius=r if kind == "annulus" else 0.0) for r in radii])
        rate = _responses(model, movies)[:, n]  # (R, T)
        base = rate[:, :onset].mean(1)
        after = rate[:, onset:].mean(1) if measure == "mean" else rate[:, onset:].max(1)
        rows += [{"neuron": n, "radius": float(r), "response": float(v)} for r, v in zip(radii, after - base)]
    return pd.DataFrame(rows)


def suppression_index(table: pd.DataFrame) -> pd.Series:
    """Per neuron of a :func:`size_tuning` table: ``(peak - response at the largest radius) / peak``."""
    def one(g):
        g = g.sort_values("radius")
        peak = g["response"].max()
        return (peak - g["response"].iloc[-1]) / peak if peak > 0 else np.nan
    return table.groupby("neuron").apply(one)


def flash_responses(model: nn.Module, contrast: float = 0.8, duration_ms: float = 1000.0, dt_ms: float | None = None,
                    pre_ms: float = 500.0) -> pd.DataFrame:
    """Full-field ON (grey -> 0.5 (1 + contrast)) and OFF (grey -> 0.5 (1 - contrast)) steps
    of ``duration_ms``: each neuron's rate over time. Returns a long table: neuron, flash
    ("ON" / "OFF"), time_ms (0 = onset), rate, and per neuron and flash the peak, the
    sustained rate (last quarter of the step) and ``adaptation = 1 - sustained / peak``
    (rates minus the grey baseline) in ``table.attrs["summary"]``."""
    _, h, w = _frame_shape(model)
    dt = float(dt_ms if dt_ms is not None else getattr(model, "dt_ms", 25.0))
    steps = {"ON": 0.5 * (1 + contrast), "OFF": 0.5 * (1 - contrast)}
    movies = np.stack([vs.flash_sequence((h, w), [(0.5, pre_ms), (lv, duration_ms)], dt) for lv in steps.values()])
    rate = _responses(model, movies)  # (2, N, T)
    n_pre = int(round(pre_ms / dt))
    t_ms = (np.arange(rate.shape[-1]) - n_pre) * dt
    rows, summary = [], []
    for i, flash in enumerate(steps):
        base = rate[i, :, :n_pre].mean(1)
        for n in range(rate.shape[1]):
            rows += [{"neuron": n, "flash": flash, "time_ms": float(t), "rate": float(v)} for t, v in zip(t_ms, rate[i, n])]
            after = rate[i, n, n_pre:] - base[n]
            peak, sustained = float(after.max()), float(after[-max(1, after.size // 4):].mean())
            summary.append({"neuron": n, "flash": flash, "peak": peak, "sustained": sustained,
                            "adaptation": 1 - sustained / peak if peak > 0 else np.nan})
    table = pd.DataFrame(rows)
    table.attrs["summary"] = pd.DataFrame(summary)
    return table


def direction_tuning(model: nn.Module, directions=tuple(range(0, 360, 30)), sf_cyc_per_px: float = 0.125,
                     tf_hz: float = 2.0, n_frames: int = 80, skip: int = 20, dt_ms: float | None = None) -> pd.DataFrame:
    """Mean rate (after the first ``skip`` frames) to full-field gratings drifting in each
    direction (degrees; 0 = towards +x, 90 = towards +y). Returns a long table: neuron,
    direction, response; ``table.attrs["summary"]``: per neuron the preferred direction and
    ``DSI = (R_pref - R_opposite) / (R_pref + R_opposite)`` on the mean rates (rates below 0
    count as 0)."""
    _, h, w = _frame_shape(model)
    dt = float(dt_ms if dt_ms is not None else getattr(model, "dt_ms", 25.0))
    dirs = [float(d) for d in directions]
    movies = np.stack([vs.drifting_grating((h, w), n_frames, dt, d, sf_cyc_per_px, tf_hz) for d in dirs])
    resp = _responses(model, movies)[..., int(skip):].mean(-1)  # (D, N)
    table = pd.DataFrame([{"neuron": n, "direction": d, "response": float(resp[i, n])}
                          for i, d in enumerate(dirs) for n in range(resp.shape[1])])
    rows = []
    for n in range(resp.shape[1]):
        r = np.clip(resp[:, n], 0.0, None)
        i = int(np.argmax(r))
        opposite = int(np.argmin([abs(((d - dirs[i] - 180.0) + 180.0) % 360.0 - 180.0) for d in dirs]))
        total = r[i] + r[opposite]
        rows.append({"neuron": n, "preferred": dirs[i], "dsi": float((r[i] - r[opposite]) / total) if total > 0 else 0.0})
    table.attrs["summary"] = pd.DataFrame(rows)
    return table
