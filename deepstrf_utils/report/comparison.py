"""Comparing two models on the same neurons, splits and seeds: paired differences a reviewer accepts.

For a pair of configurations (model A, model B) of one dataset, on the neurons and seeds
both scored (a seed is a split and an initialisation, the same for both models), each
neuron's **paired difference** ``d = mean over common seeds of (A - B)`` in the metric
(CCnorm by default) gives:

- the median of ``d`` over neurons with a seeded percentile bootstrap 95 % interval
  (neurons resampled; :func:`deepstrf_utils.metrics.bootstrap_ci`), and the mean ± SEM;
- a two-sided paired **Wilcoxon signed-rank test** of ``d`` (scipy; NaN under 5 neurons);
- a **hierarchical bootstrap** interval of the median (:func:`hierarchical_bootstrap`):
  recording sites or animals (when the dataset's neuron table has such a column,
  :func:`neuron_groups`: NAT4 ``site``, NS1 ``site``), then neurons within them, then seeds
  within neurons, each resampled with replacement; neurons of one site share their
  preparation, so they are not independent, and this interval is the honest one when they
  are correlated;
- **Holm**'s step-down correction of the Wilcoxon p-values across every pair compared in
  one call (:func:`holm`);
- the number of neurons better (``d > 0``) and worse (``d < 0``) with A.

By default only neurons that pass the reliability rule for both models enter
(:func:`deepstrf_utils.report.reliability.neuron_reliability`), as in the tables and figures.
Pure functions of the results table of :func:`deepstrf_utils.runs.runner.run_configs`.

Example::

    table = compare_models(results, groups={"nat4_a1": neuron_groups(nat4)})
    print(comparison_markdown(table))
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import bootstrap_ci
from .reliability import neuron_reliability
from .tables import config_label, markdown_table

__all__ = ["HIERARCHY_COLUMNS", "holm", "hierarchical_bootstrap", "neuron_groups", "config_labels",
           "default_pairs", "paired_differences", "compare_models", "comparison_markdown"]

#: neuron-table columns naming the level above neurons, in order of preference
HIERARCHY_COLUMNS = ("site", "animal")


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order; NaN stays NaN and is not counted).

    With the m finite p-values sorted ``p_(1) <= ... <= p_(m)``, the adjusted
    ``p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        m = order.size
        adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
        out[order] = np.maximum.accumulate(adjusted)
    return out


def hierarchical_bootstrap(diffs, groups=None, statistic: str = "median", n_boot: int = 2000,
                           level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``statistic`` of the per-neuron mean of ``diffs``, resampling
    groups, then neurons within each drawn group, then seeds within each drawn neuron.

    diffs: ``(n_neurons, n_seeds)`` (or ``(n_neurons,)``), NaN = seed not scored; groups:
    ``(n_neurons,)`` labels (site / animal), None = every neuron its own group (a neuron ->
    seed bootstrap). Each resample draws as many groups as there are, with replacement, each
    drawn group as many neurons as it has, each drawn neuron as many seeds as it has; a
    neuron's value is the mean of its drawn seeds. Seeded (``numpy.random.default_rng``).
    Returns ``(low, high)``; NaN without data.
    """
    stat = {"median": np.median, "mean": np.mean}.get(statistic)
    if stat is None:
        raise ValueError(f"expected statistic 'median' or 'mean', got {statistic!r}")
    if not 0.0 < float(level) < 1.0 or int(n_boot) < 1:
        raise ValueError(f"expected 0 < level < 1 and n_boot >= 1, got level={level}, n_boot={n_boot}")
    d = np.asarray(diffs, dtype=np.float64)
    d = d[:, None] if d.ndim == 1 else d
    if d.ndim != 2:
        raise ValueError(f"expected diffs of shape (neurons, seeds), got {d.shape}")
    finite = np.isfinite(d)
    keep = finite.any(1)
    if groups is not None:
        groups = np.asarray(groups).ravel()
        if groups.shape[0] != d.shape[0]:
            raise ValueError(f"expected one group per neuron ({d.shape[0]}), got {groups.shape[0]}")
        groups = groups[keep]
    d, finite = d[keep], finite[keep]
    n = d.shape[0]
    if n == 0:
        return float("nan"), float("nan")
    counts = finite.sum(1)
    packed = np.take_along_axis(d, np.argsort(~finite, axis=1, kind="stable"), axis=1)  # finite seeds first
    n_seeds = packed.shape[1]
    g = np.arange(n) if groups is None else np.unique(groups.astype(str), return_inverse=True)[1]
    members = np.argsort(g, kind="stable")
    sizes = np.bincount(g)
    starts = np.cumsum(sizes) - sizes
    rng = np.random.default_rng(seed)
    lanes = np.arange(n_seeds)[None, :]
    stats = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        chosen = rng.integers(0, sizes.size, sizes.size)
        slot = np.repeat(chosen, sizes[chosen])
        neurons = members[starts[slot] + (rng.random(slot.size) * sizes[slot]).astype(np.int64)]
        c = counts[neurons]
        picks = (rng.random((neurons.size, n_seeds)) * c[:, None]).astype(np.int64)
        vals = np.where(lanes < c[:, None], packed[neurons[:, None], picks], 0.0)
        stats[b] = stat(vals.sum(1) / c)
    lo, hi = np.quantile(stats, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


def neuron_groups(dataset, column: str | None = None) -> pd.Series | None:
    """The level above neurons of a dataset: neuron id -> its ``column`` of the neuron table
    (default: the first of :data:`HIERARCHY_COLUMNS` present); None when the dataset has none."""
    table = getattr(dataset, "neurons", None)
    if table is None or "id" not in getattr(table, "columns", ()):
        return None
    names = [column] if column is not None else [c for c in HIERARCHY_COLUMNS if c in table.columns]
    if column is not None and column not in table.columns:
        raise ValueError(f"expected a neuron-table column {column!r}, found columns {list(table.columns)}")
    if not names:
        return None
    return pd.Series(table[names[0]].astype(str).to_numpy(), index=table["id"].astype(str), name=names[0])


def config_labels(results: pd.DataFrame) -> pd.Series:
    """config id -> a readable label, "LinearNonlinear + AdapTrans" (with the note appended where
    two configurations of a dataset would otherwise share a label)."""
    info = results.drop_duplicates("config_id").set_index("config_id")
    pre = info["prefilter"].fillna("none").astype(str)
    base = pd.Series([config_label(m, p) for m, p in zip(info["model"], pre)], index=info.index)
    dup = base.groupby([info["dataset"], base]).transform("size") > 1
    note = info["note"].fillna("").astype(str) if "note" in info else pd.Series("", index=info.index)
    return base.where(~dup, base + " (" + note + ")")


def default_pairs(results: pd.DataFrame) -> list[tuple[str, str]]:
    """The paper's question per model and dataset: (model + AdapTrans, model), as labels."""
    labels = config_labels(results)
    present = set(labels)
    return [(f"{lab} + AdapTrans", lab) for lab in dict.fromkeys(labels) if f"{lab} + AdapTrans" in present]


def paired_differences(results: pd.DataFrame, a: str, b: str, dataset: str, metric: str = "cc_norm",
                       neurons: Sequence | None = None) -> pd.DataFrame:
    """``A - B`` per neuron (rows) and seed (columns) on ``dataset``, where both scored it (NaN elsewhere).

    a, b: configuration labels (:func:`config_labels`) or config ids.
    """
    labels = config_labels(results)
    df = results[results["dataset"] == dataset]
    wide = {}
    for key, name in (("a", a), ("b", b)):
        ids = [c for c in df["config_id"].unique() if c == name or labels.get(c) == name]
        if len(ids) != 1:
            raise ValueError(f"expected one configuration {name!r} on {dataset}, found {len(ids)} "
                             f"(labels: {sorted(set(labels[df['config_id'].unique()]))})")
        part = df[df["config_id"] == ids[0]]
        wide[key] = part.pivot_table(index=part["neuron"].astype(str), columns="seed", values=metric, aggfunc="mean")
    diff = wide["a"].sub(wide["b"])  # aligned on neurons and seeds: NaN where either is missing
    if neurons is not None:
        diff = diff.reindex([str(n) for n in neurons])
    return diff.dropna(how="all")


def _row(diff: pd.DataFrame, groups, n_boot, level, seed) -> dict:
    d = diff.mean(axis=1).to_numpy(dtype=float)  # per neuron, mean over its common seeds
    n = d.size
    p = float("nan")
    if n >= 5 and np.any(d != 0):
        from scipy.stats import wilcoxon

        p = float(wilcoxon(d).pvalue)
    lo, hi = bootstrap_ci(d, "median", level=level, n_boot=n_boot, seed=seed)
    g = None if groups is None else [groups.get(str(k), str(k)) for k in diff.index]
    hlo, hhi = hierarchical_bootstrap(diff.to_numpy(dtype=float), g, "median", n_boot, level, seed)
    return {"neurons": int(n), "seeds": int(diff.notna().sum(axis=1).median()) if n else 0,
            "groups": int(len(set(g))) if g is not None else int(n),
            "median_difference": float(np.median(d)) if n else np.nan, "ci_low": lo, "ci_high": hi,
            "mean_difference": float(d.mean()) if n else np.nan,
            "sem": float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
            "n_better": int((d > 0).sum()), "n_worse": int((d < 0).sum()), "p_wilcoxon": p,
            "hier_ci_low": hlo, "hier_ci_high": hhi}


def compare_models(results: pd.DataFrame, pairs: Sequence[tuple[str, str]] | None = None, metric: str = "cc_norm",
                   groups: dict | None = None, reliable_only: bool = True, n_boot: int = 2000, level: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """Paired comparison table: one row per dataset and pair (A, B) (see the module docstring).

    pairs: (A, B) configuration labels or config ids (default :func:`default_pairs`: each model
    with against without AdapTrans); a pair absent from a dataset is skipped. groups: per
    dataset name, a mapping neuron id -> site / animal (:func:`neuron_groups`); datasets without
    one bootstrap neurons -> seeds. Columns: dataset, model_a, model_b, metric, neurons, seeds
    (median per neuron), groups, hierarchy, mean_a, mean_b, median_difference, ci_low, ci_high,
    mean_difference, sem, n_better, n_worse, p_wilcoxon, p_holm (across every row), hier_ci_low,
    hier_ci_high.
    """
    need = {"dataset", "model", "prefilter", "seed", "neuron", "config_id", metric}
    if not need <= set(results.columns):
        raise ValueError(f"expected the run_configs results table; missing columns {sorted(need - set(results.columns))}")
    results = results.assign(neuron=results["neuron"].astype(str))
    labels = config_labels(results)
    pairs = list(default_pairs(results) if pairs is None else pairs)
    reliable = None
    if reliable_only:
        rel = neuron_reliability(results, keys=("config_id",))
        reliable = rel.groupby("config_id")["neuron"].apply(lambda s: set(s[rel.loc[s.index, "reliable"]]))
    rows = []
    for ds in results["dataset"].unique():
        present = set(results.loc[results["dataset"] == ds, "config_id"])
        known = present | {labels[c] for c in present}
        grp = None
        if groups is not None and groups.get(ds) is not None:
            grp = {str(k): str(v) for k, v in dict(groups[ds]).items()}
        for a, b in pairs:
            if a not in known or b not in known:
                continue
            diff = paired_differences(results, a, b, ds, metric)
            if reliable is not None:
                ids = [c for c in present if c in (a, b) or labels[c] in (a, b)]
                ok = set.intersection(*(reliable.get(c, set()) for c in ids))
                diff = diff[diff.index.isin(ok)]
            if grp is not None:
                unknown = sorted(set(diff.index) - set(grp))
                if unknown:
                    raise ValueError(f"expected a group for every neuron of {ds}; none for {unknown[:5]}")
            per = results[(results["dataset"] == ds) & results["neuron"].isin(diff.index)]
            means = {k: per[per["config_id"].map(lambda c: c == name or labels[c] == name)][metric].mean()
                     for k, name in (("mean_a", a), ("mean_b", b))}
            rows.append({"dataset": ds, "model_a": labels.get(a, a), "model_b": labels.get(b, b), "metric": metric,
                         "hierarchy": ("group -> " if grp else "") + "neuron -> seed", **means,
                         **_row(diff, grp, n_boot, level, seed)})
    cols = ["dataset", "model_a", "model_b", "metric", "neurons", "seeds", "groups", "hierarchy", "mean_a", "mean_b",
            "median_difference", "ci_low", "ci_high", "mean_difference", "sem", "n_better", "n_worse", "p_wilcoxon",
            "p_holm", "hier_ci_low", "hier_ci_high"]
    out = pd.DataFrame(rows, columns=[c for c in cols if c != "p_holm"])
    out.insert(cols.index("p_holm"), "p_holm", holm(out["p_wilcoxon"].to_numpy()) if len(out) else [])
    return out


def _interval(lo, hi, digits):
    return f"[{lo:+.{digits}f}, {hi:+.{digits}f}]" if np.isfinite(lo) and np.isfinite(hi) else "–"


def _ci(m, lo, hi, digits):
    if not np.isfinite(m):
        return "–"
    return f"{m:+.{digits}f} {_interval(lo, hi, digits)}" if np.isfinite(lo) else f"{m:+.{digits}f}"


def _pm(m, s, digits):
    if not np.isfinite(m):
        return "–"
    return f"{m:+.{digits}f} ± {s:.{digits}f}" if np.isfinite(s) else f"{m:+.{digits}f}"


def _p(p):
    return "–" if not np.isfinite(p) else (f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}")


def comparison_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """The table of :func:`compare_models` as a GitHub markdown table for notebooks and benchmark.md
    (one row per dataset, pair and metric; the metric named in its own column)."""
    shown = pd.DataFrame({
        "Dataset": table["dataset"], "A vs B": table["model_a"] + " vs " + table["model_b"],
        "Metric": table["metric"],
        "Neurons (groups)": [f"{n} ({g})" if h.startswith("group") else f"{n}"
                             for n, g, h in zip(table["neurons"], table["groups"], table["hierarchy"])],
        "median Δ [95 % CI]": [_ci(m, lo, hi, digits) for m, lo, hi in
                               zip(table["median_difference"], table["ci_low"], table["ci_high"])],
        "hierarchical 95 % CI": [_interval(lo, hi, digits) for lo, hi in zip(table["hier_ci_low"], table["hier_ci_high"])],
        "mean Δ ± SEM": [_pm(m, s, digits) for m, s in zip(table["mean_difference"], table["sem"])],
        "better / worse": [f"{b} / {w}" for b, w in zip(table["n_better"], table["n_worse"])],
        "Wilcoxon p": [_p(p) for p in table["p_wilcoxon"]], "Holm p": [_p(p) for p in table["p_holm"]],
    })
    return markdown_table(shown, merge_sem=False)
