"""The markdown table printer shared by the benchmark scripts; not a benchmark itself.

Imported as ``from _tables import markdown_rows``: the scripts run as
``python benchmarks/<name>.py``, which puts this folder on ``sys.path``.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["markdown_rows"]


def markdown_rows(df: pd.DataFrame) -> str:
    """``df`` as a GitHub markdown table, floats to 3 significant digits."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)
