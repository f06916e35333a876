"""Behavioural state signals of a :class:`~deepstrf_utils.datasets.base.ResponseDataset`.

A state signal is a per-bin variable recorded with the responses (pupil size, running
speed, ...). A dataset holds S of them per stimulus, ``(S, T_i)`` float32 arrays aligned
with the stimulus bins, named by ``state_names`` (S,); NaN marks a bin where the state is
unknown (training leaves such bins out of the loss, like a missing response). For a
stimulus presented R times the state is the trial average of the R traces: a state-gain
readout is linear in the state, so its prediction of the trial-averaged response is exact.

* :func:`check_states` validates the signals (the dataset constructor calls it);
* :func:`bin_time_series` averages a sampled signal (e.g. a pupil trace) into time bins;
* :func:`slow_state` draws a slow random state signal;
* :func:`plant_state_gain` turns a synthetic dataset into one whose neurons are modulated
  by a known per-neuron state gain and offset (NEMS' StateGain model), ground truth stored.

Shapes: B stimuli, S state signals, N neurons, R repeats, T time bins.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["check_states", "bin_time_series", "slow_state", "plant_state_gain"]


def check_states(states: Sequence[Any] | None, state_names: Sequence[str] | None,
                 n_bins: Sequence[int]) -> tuple[list[np.ndarray] | None, list[str]]:
    """Validate per-stimulus state signals -> (list of B ``(S, T_i)`` float32 arrays or None, names).

    ``states``: None, or one ``(S, T_i)`` array per stimulus (T_i = ``n_bins[i]``, the same
    S for all); NaN = unknown, inf is refused. ``state_names``: S unique names (default
    ``"state0"``...). Raises ValueError naming the expected shape.
    """
    if states is None:
        if state_names:
            raise ValueError(f"expected no state_names without states, got {list(state_names)}")
        return None, []
    if not isinstance(states, (list, tuple)) or len(states) != len(n_bins):
        what = f"{len(states)} items" if isinstance(states, (list, tuple)) else type(states).__name__
        raise ValueError(f"expected states as a list of B={len(n_bins)} (S, T_i) arrays, one per stimulus, got {what}")
    out = []
    for i, (s, t) in enumerate(zip(states, n_bins)):
        s = np.asarray(s.detach().cpu().numpy() if hasattr(s, "detach") else s, dtype=np.float32)
        if s.ndim == 1:
            s = s[None]
        n_s = out[0].shape[0] if out else s.shape[0]
        if s.ndim != 2 or s.shape != (n_s, t) or n_s == 0:
            raise ValueError(f"expected state {i} of shape (S, T)=({n_s}, {t}) (T bins like its stimulus), got {s.shape}")
        if np.isinf(s).any():
            raise ValueError(f"expected state {i} finite or NaN (missing), got inf")
        out.append(np.ascontiguousarray(s))
    n_s = out[0].shape[0]
    names = [f"state{k}" for k in range(n_s)] if state_names is None else [str(v) for v in state_names]
    if len(names) != n_s or len(set(names)) != n_s:
        raise ValueError(f"expected {n_s} unique state_names (one per state signal), got {names}")
    return out, names


def bin_time_series(times: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """A sampled signal in time bins -> ``(C, T)``.

    Args:
        times: ``(n,)`` sample times, ascending. values: ``(n, C)`` samples (NaN = unknown).
        edges: ``(T + 1,)`` bin edges, ascending, in the unit of ``times``; bin k = ``[edges[k], edges[k+1])``.

    Returns:
        per bin, the mean of the finite samples inside it; NaN where its samples are all NaN;
        where it holds no sample, the linear interpolation of the finite samples at its centre
        (NaN outside the sampled span).
    """
    times, values = np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)
    idx = np.searchsorted(times, edges, side="left")
    count = np.diff(idx)
    finite = np.isfinite(values)
    pad = np.zeros((1, values.shape[1]))                    # reduceat needs every index < its length
    s = np.add.reduceat(np.concatenate([np.where(finite, values, 0.0), pad]), idx, axis=0)[:-1]
    k = np.add.reduceat(np.concatenate([finite.astype(np.float64), pad]), idx, axis=0)[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where((count[:, None] > 0) & (k > 0), s / np.maximum(k, 1), np.nan)
    centres = 0.5 * (edges[1:] + edges[:-1])
    for c in range(values.shape[1]):
        ok = finite[:, c]
        empty = count == 0
        if ok.any() and empty.any():
            out[empty, c] = np.interp(centres[empty], times[ok], values[ok, c], left=np.nan, right=np.nan)
    return out.T


def slow_state(rng: np.random.Generator, n_bins: int, dt_ms: float, tau_s: float = 1.0,
               n_states: int = 1) -> np.ndarray:
    """A slow random signal ``(S, T)``: white noise low-passed with time constant ``tau_s``,
    scaled to zero mean and unit standard deviation, clipped to [-2, 2]."""
    a = float(np.exp(-dt_ms / (1000.0 * tau_s)))
    noise = rng.standard_normal((n_states, n_bins))
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for t in range(1, n_bins):
        x[:, t] = a * x[:, t - 1] + np.sqrt(1 - a * a) * noise[:, t]
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True).clip(1e-9)
    return np.clip(x, -2.0, 2.0).astype(np.float32)


def plant_state_gain(ds, n_states: int = 1, gain_range: float = 0.4, offset_range: float = 0.3,
                     tau_s: float = 1.0, seed: int = 0, state_names: Sequence[str] | None = None):
    """A copy of a synthetic dataset whose neurons are modulated by slow random states.

    Each stimulus gets S slow state signals ``s (S, T_i)`` (:func:`slow_state`); neuron n's
    rate becomes ``max(0, (1 + g[n] . s) * rate + (d[n] . s) * mean_rate[n])`` with
    ``g, d (N, S)`` drawn uniformly in ``[-gain_range, gain_range]`` and
    ``[-offset_range, offset_range]`` (NEMS' StateGain, gain 1 and offset 0 at s = 0);
    the spikes are redrawn (Poisson, same repeats, seeded). Ground truth added:
    ``state_gain (N, S)``, ``state_offset (N, S)`` (offset in units of the mean rate),
    ``rate`` replaced by the modulated rates, ``rate_stateless`` the old ones.

    Args:
        ds: a dataset with ``ground_truth["rate"]`` (e.g. ``load_dataset("synthetic")``).
    Returns:
        ResponseDataset with ``states`` and ``state_names``.
    """
    gt = ds.ground_truth or {}
    if "rate" not in gt:
        raise ValueError(f"expected a synthetic dataset with ground_truth['rate'], got '{ds.name}' without one")
    if int(n_states) < 1:
        raise ValueError(f"expected n_states >= 1, got {n_states}")
    rng_state, rng_par, rng_spk = (np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 14]).spawn(3))
    n = ds.n_neurons
    g = rng_par.uniform(-gain_range, gain_range, (n, n_states))
    d = rng_par.uniform(-offset_range, offset_range, (n, n_states))
    mean_rate = np.concatenate([np.asarray(r, np.float64) for r in gt["rate"]], axis=1).mean(1)
    states, rates, responses = [], [], []
    for r0, resp in zip(gt["rate"], ds.responses):
        s = slow_state(rng_state, r0.shape[1], ds.dt_ms, tau_s, n_states)
        rate = np.maximum(0.0, (1.0 + g @ s) * r0 + (d @ s) * mean_rate[:, None]).astype(np.float32)
        counts = rng_spk.poisson(np.broadcast_to(rate[:, None, :], resp.shape)).astype(np.float32)
        responses.append(np.where(np.isnan(resp), np.nan, counts).astype(np.float32))
        states.append(s)
        rates.append(rate)
    truth = {**gt, "rate": rates, "rate_stateless": gt["rate"], "state_gain": g, "state_offset": d}
    truth["shared"] = {**gt.get("shared", {}), "state_model": "rate = max(0, (1 + g.s) rate0 + (d.s) mean(rate0))",
                       "state_tau_s": float(tau_s)}
    meta = {**ds.meta, "state": {"seed": int(seed), "n_states": int(n_states), "gain_range": float(gain_range),
                                 "offset_range": float(offset_range), "tau_s": float(tau_s)}}
    names = list(state_names) if state_names is not None else [f"state{k}" for k in range(n_states)]
    return ds.replace(responses=responses, states=states, state_names=names, ground_truth=truth, meta=meta,
                      name=f"{ds.name}_state")
