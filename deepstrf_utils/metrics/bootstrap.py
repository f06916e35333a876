"""Bootstrap confidence interval of a summary statistic (median or mean) over neurons."""
from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_ci"]

_STATS = {"median": np.median, "mean": np.mean}


def bootstrap_ci(values, statistic: str = "median", level: float = 0.95, n_boot: int = 10000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` ("median" or "mean") of ``values``.

    ``values`` (n,) array-like; NaN / inf are left out. ``n_boot`` resamples of the n finite
    values with replacement, drawn with ``numpy.random.default_rng(seed)`` (the same seed
    gives the same interval); the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles of the resampled statistic. Returns ``(low, high)``; ``(nan, nan)`` without a
    finite value; ``(v, v)`` for a single value v.
    """
    if statistic not in _STATS:
        raise ValueError(f"expected statistic 'median' or 'mean', got {statistic!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"expected level in (0, 1), got {level}")
    if int(n_boot) < 1:
        raise ValueError(f"expected n_boot >= 1, got {n_boot}")
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(int(n_boot), v.size))
    stats = _STATS[statistic](v[idx], axis=1)
    lo, hi = np.quantile(stats, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)
