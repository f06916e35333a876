"""The median-timing helper shared by the benchmark scripts; not a benchmark itself.

Imported as ``from _timing import median_wall_cpu``: the scripts run as
``python benchmarks/<name>.py``, which puts this folder on ``sys.path``.
"""
from __future__ import annotations

import statistics
import time

__all__ = ["median_wall_cpu"]


def median_wall_cpu(fn, repeats: int, warmup: bool = True) -> tuple[float, float]:
    """Run ``fn()`` ``repeats`` times (after one untimed call when ``warmup``) and return the
    median wall time and the median process CPU time, in seconds."""
    if warmup:
        fn()  # kernel caches, allocator
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)
