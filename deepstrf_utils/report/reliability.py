"""Which neurons enter means and figures: the reliability rule, and the summaries we report.

CCnorm divides by the neuron's noise ceiling; when the stimulus-driven signal is tiny the
ceiling is tiny and CCnorm is unbounded (points at 250 %, means driven by one noisy
neuron). The rule (:data:`RELIABILITY_RULE`), computed from the data, never per neuron by
hand:

1. the neuron passed the dataset's valid-unit rule (the loaders keep only those:
   :mod:`deepstrf_utils.runs.protocols`, ``valid_units``);
2. it was scored in at least one seed (a split can exclude a neuron that heard too few
   stimuli: ``excluded_reason`` in the results);
3. its noise ceiling, CCmax (Hsu et al. 2004, split-half on the test responses, averaged
   over the seeds where it was scored), is at least :data:`MIN_CC_MAX` = 1/sqrt(3) ~ 0.577.
   Since ``CCmax^2 = SP / (SP + NP / R)`` (SP, NP: signal and noise power per trial, R
   repeats), this is the noise ratio ``NP / SP < 40`` of the NS1 documentation at NS1's and
   NAT4's R = 20 test repeats; it bounds CCnorm ~ CCraw / CCmax by 1.73 x CCraw.
   Where no neuron of a configuration has a ceiling (single-repeat data), step 3 is skipped.

Every neuron stays in the results CSV; :func:`neuron_reliability` adds ``reliable`` and
``excluded_reason``, summaries count the excluded ones, figures draw them with a distinct
marker (x). :func:`score_summary` gives the mean ± SEM beside the median and a seeded bootstrap
95 % interval (:func:`deepstrf_utils.metrics.bootstrap_ci`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import MIN_CC_MAX, bootstrap_ci
from ..training import average_over_seeds

__all__ = ["MIN_CC_MAX", "RELIABILITY_RULE", "neuron_reliability", "score_summary", "exclusion_note"]

RELIABILITY_RULE = (
    "A neuron enters means and figures as reliable when it passed the dataset's valid-unit rule, was "
    "scored in at least one seed (a split excludes a neuron that heard fewer than 3 stimuli), and its noise "
    f"ceiling CCmax (split-half, test responses, mean over seeds) is at least {MIN_CC_MAX:.3f} = 1/sqrt(3): "
    "the noise ratio < 40 of the NS1 documentation at 20 repeats, which bounds CCnorm by 1.73 x CCraw. "
    "Data without repeats (no ceiling for any neuron) skip the ceiling step. Excluded neurons stay in the "
    "results CSV and are drawn with a distinct marker (x)."
)


def _reason(row, ceiling_known: bool, min_cc_max: float) -> str:
    if row["n_seeds"] == 0:
        split = row.get("_split_reason", "")
        return f"excluded by the split: {split}" if split else "not scored (NaN in every seed)"
    if not ceiling_known:
        return ""
    if not np.isfinite(row["cc_max"]):
        return "no noise ceiling (split-half correlation <= 0 or fewer than 2 repeats)"
    if row["cc_max"] < min_cc_max:
        return f"noise ceiling CCmax {row['cc_max']:.2f} < {min_cc_max:.2f}"
    return ""


def neuron_reliability(results: pd.DataFrame, keys: Sequence[str] = ("config_id",),
                       min_cc_max: float = MIN_CC_MAX) -> pd.DataFrame:
    """Per (``keys``..., neuron): means over scored seeds of cc_raw / cc_norm / cc_max,
    ``n_seeds``, ``reliable`` (bool) and ``excluded_reason`` ("" when reliable), following
    :data:`RELIABILITY_RULE`. ``results``: the tidy table of ``run_configs``."""
    keys = list(keys)
    need = [*keys, "neuron", "seed", "cc_raw", "cc_norm", "cc_max"]
    missing = [c for c in need if c not in results.columns]
    if missing:
        raise ValueError(f"expected the results table of run_configs; missing columns {missing}")
    per = average_over_seeds(results, keys=keys, values=("cc_raw", "cc_norm", "cc_max"))
    if "excluded_reason" in results.columns:
        reasons = results.assign(_r=results["excluded_reason"].fillna("").astype(str))
        reasons = reasons[reasons["_r"] != ""].groupby([*keys, "neuron"], sort=False)["_r"].last()
        per = per.merge(reasons.rename("_split_reason").reset_index(), on=[*keys, "neuron"], how="left")
        per["_split_reason"] = per["_split_reason"].fillna("")
    else:
        per["_split_reason"] = ""
    known = per.groupby(keys, sort=False, dropna=False)["cc_max"].transform(lambda v: np.isfinite(v).any())
    per["excluded_reason"] = [_reason(row, bool(k), min_cc_max) for (_, row), k in zip(per.iterrows(), known)]
    per["reliable"] = per["excluded_reason"] == ""
    return per.drop(columns="_split_reason")


def score_summary(values, seed: int = 0, level: float = 0.95) -> dict:
    """Mean, SEM (std ddof=1 / sqrt(n)), median and bootstrap ``level`` interval of the median
    (seeded) of the finite ``values`` -> dict(mean, sem, median, ci_low, ci_high, n)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    lo, hi = bootstrap_ci(v, "median", level=level, seed=seed)
    return {"mean": v.mean() if v.size else np.nan,
            "sem": v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else np.nan,
            "median": float(np.median(v)) if v.size else np.nan, "ci_low": lo, "ci_high": hi, "n": int(v.size)}


def exclusion_note(reliability: pd.DataFrame) -> str:
    """One sentence: how many neurons (rows of ``reliability``, from :func:`neuron_reliability`)
    were excluded and why (reason kinds with counts)."""
    n = len(reliability)
    bad = reliability[~reliability["reliable"]]
    if bad.empty:
        return f"All {n} neurons pass the reliability rule (CCmax >= {MIN_CC_MAX:.2f})."
    kinds = bad["excluded_reason"].str.replace(r"CCmax [-0-9.]+ <", "CCmax <", regex=True)
    parts = [f"{c} {k}" for k, c in kinds.value_counts().items()]
    return f"{len(bad)} of {n} neurons excluded from means (drawn as x): " + "; ".join(parts) + "."
