"""Result tables: the summary of a results CSV in the seed README's layout, and Markdown.

- :func:`summary_table`: one row per configuration of :func:`~deepstrf_utils.runs.runner.run_configs`'
  results (means ± SEM and medians with bootstrap intervals over the reliable neurons);
- :func:`markdown_table`: any table as GitHub Markdown (no ``tabulate`` needed);
- :func:`config_label`: "ConvNet2D + AdapTrans", the readable name of a model and its prefilter;
- :func:`sessions_state_seeds`, :func:`sessions_state_table`: the synthetic sessions / state
  experiments (:func:`~deepstrf_utils.runs.sessions_state.run_sessions_state`) per seed and over seeds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..runs.sessions_state import STATE_LABELS
from .reliability import MIN_CC_MAX, neuron_reliability, score_summary

__all__ = ["summary_table", "markdown_table", "config_label", "PREFILTER_NAMES", "sessions_state_seeds",
           "sessions_state_table"]

#: prefilter name in a results table -> its name in tables and figures
PREFILTER_NAMES = {"adaptrans": "AdapTrans", "willmore": "Willmore"}


def config_label(model, prefilter) -> str:
    """``"<model> + <prefilter name>"``, or the model alone without a prefilter (None, "", "none", NaN)."""
    name = str(model)
    if isinstance(prefilter, str) and prefilter not in ("", "none", "nan"):
        name += " + " + PREFILTER_NAMES.get(prefilter, prefilter)
    return name


def summary_table(results: pd.DataFrame, min_cc_max: float | None = None) -> pd.DataFrame:
    """Summary in the seed README's layout, one row per configuration.

    Columns: Dataset, Model ("ConvNet2D + AdapTrans"), Note, Parameters (per fitted model:
    per unit in "single" mode), CCraw (%), CCraw SEM, CCnorm (%), CCnorm SEM, then the
    medians with a seeded bootstrap 95 % interval (CCraw median (%), CCraw CI low / high,
    the same for CCnorm), Neurons (those entering the statistics), Excluded (the others),
    Seeds. Each neuron is first averaged over the seeds where it was scored, then the
    neurons that pass the reliability rule (:data:`~.reliability.RELIABILITY_RULE`;
    ``min_cc_max`` overrides the ceiling) are summarised; SEM is across neurons (std with
    ddof=1 / sqrt(n)). NaN scores (e.g. CCnorm without repeats) are left out.
    """
    needed = ["dataset", "model", "prefilter", "note", "seed", "neuron", "cc_raw", "cc_norm", "cc_max", "n_params",
              "config_id"]
    missing = [c for c in needed if c not in results.columns]
    if missing:
        raise ValueError(f"expected the results table of run_configs; missing columns {missing}")
    per_neuron = neuron_reliability(results, keys=("config_id",),
                                    min_cc_max=MIN_CC_MAX if min_cc_max is None else min_cc_max)
    rows = []
    for cid, grp in per_neuron.groupby("config_id", sort=False):
        info = results[results["config_id"] == cid].iloc[0]
        row = {"Dataset": info["dataset"], "Model": config_label(info["model"], info["prefilter"]),
               "Note": "" if pd.isna(info["note"]) else str(info["note"]),
               "Parameters": _median_int(results.loc[results["config_id"] == cid, "n_params"])}
        ok = grp[grp["reliable"]]
        for col, label in (("cc_raw", "CCraw"), ("cc_norm", "CCnorm")):
            st = score_summary(100 * ok[col].to_numpy(dtype=float))
            row[f"{label} (%)"], row[f"{label} SEM"] = st["mean"], st["sem"]
            row[f"{label} median (%)"], row[f"{label} CI low"], row[f"{label} CI high"] = \
                st["median"], st["ci_low"], st["ci_high"]
        row["Neurons"] = int(ok["neuron"].nunique())
        row["Excluded"] = int(len(grp) - len(ok))
        row["Seeds"] = int(results.loc[results["config_id"] == cid, "seed"].nunique())
        rows.append(row)
    cols = ["Dataset", "Model", "Note", "Parameters", "CCraw (%)", "CCraw SEM", "CCnorm (%)", "CCnorm SEM",
            "CCraw median (%)", "CCraw CI low", "CCraw CI high", "CCnorm median (%)", "CCnorm CI low",
            "CCnorm CI high", "Neurons", "Excluded", "Seeds"]
    return pd.DataFrame(rows, columns=cols)


def _median_int(values: pd.Series):
    """Median of the finite ``values`` as an int; NaN when there is none (every neuron excluded)."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    return int(v.median()) if len(v) else np.nan


def markdown_table(df: pd.DataFrame, digits: int = 1, merge_sem: bool = True) -> str:
    """Render ``df`` as a GitHub markdown table (no ``tabulate`` needed).

    Floats get ``digits`` decimals, integers thousands separators; with ``merge_sem`` a
    column "X SEM" next to "X (%)" is merged into it as "43.7 ± 1.2". NaN -> "–".
    """
    table = df.copy()
    if merge_sem:
        for col in list(table.columns):
            if col.endswith(" SEM"):
                base = col[:-4] + " (%)"
                if base in table.columns:
                    table[base] = [_fmt_pm(m, s, digits) for m, s in zip(table[base], table[col])]
                    table = table.drop(columns=col)
            if col.endswith(" CI low") and col[:-7] + " CI high" in table.columns:
                base, high = col[:-7] + " median (%)", col[:-7] + " CI high"
                if base in table.columns:  # "median [low, high]" under "X median [95 % CI]"
                    table[base] = [_fmt_ci(m, lo, hi, digits) for m, lo, hi in zip(table[base], table[col], table[high])]
                    table = table.drop(columns=[col, high]).rename(columns={base: col[:-7] + " median [95 % CI]"})
    header = [str(c) for c in table.columns]
    lines = [[_fmt(v, digits) for v in row] for row in table.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) if c in df.columns else True for c in table.columns]
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out)


def _fmt(v, digits):
    if isinstance(v, str):
        return v.replace("|", "\\|")
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}f}"
    return str(v)


def _fmt_ci(m, lo, hi, digits):
    if m is None or not np.isfinite(m):
        return "–"
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _fmt_pm(m, s, digits):
    if m is None or not np.isfinite(m):
        return "–"
    if s is None or not np.isfinite(s):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def sessions_state_seeds(results: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment and seed: each model's mean CCnorm (%) over the reliable neurons,
    the new model minus its baseline, and (state) the gain recovery r over every neuron."""
    rows = []
    for (exp, seed), g in results.groupby(["experiment", "seed"], sort=True):
        base, new = STATE_LABELS if exp == "state_gain" else sorted(set(g["model"]), key=lambda m: "shared" in m)
        cc = {m: 100.0 * g[(g["model"] == m) & g["reliable"].astype(bool)]["cc_norm"].mean() for m in (base, new)}
        row = {"experiment": exp, "seed": int(seed), "baseline": base, "model": new,
               "reliable": int(g[g["model"] == new]["reliable"].astype(bool).sum()),
               "neurons": int((g["model"] == new).sum()), "CCnorm baseline (%)": cc[base],
               "CCnorm model (%)": cc[new], "difference (%)": cc[new] - cc[base], "gain_r": np.nan}
        st = g[(g["model"] == new) & g["fitted_gain"].notna()] if "fitted_gain" in g else g.iloc[:0]
        if len(st) > 2:
            row["gain_r"] = float(np.corrcoef(st["fitted_gain"], st["planted_gain"])[0, 1])
        rows.append(row)
    return pd.DataFrame(rows)


def sessions_state_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment and model, spread over seeds: the per-seed mean CCnorm (%) over the
    reliable neurons (mean, min, max over seeds), on how many seeds the model beats its
    baseline, the fit time (median per seed) and, for the state-gain model, the gain
    recovery r (median, min, max over seeds)."""
    per_seed = sessions_state_seeds(results)
    rows = []
    for (exp, model), g in results.groupby(["experiment", "model"], sort=False):
        s = per_seed[per_seed["experiment"] == exp]
        cc = s["CCnorm model (%)"] if model in set(s["model"]) else s["CCnorm baseline (%)"]
        new = model in set(s["model"])
        rows.append({"experiment": exp, "model": model, "seeds": int(len(s)),
                     "reliable / neurons": f"{int(g['reliable'].astype(bool).sum())} / {len(g)}",
                     "CCnorm (%)": cc.mean(), "CCnorm min (%)": cc.min(), "CCnorm max (%)": cc.max(),
                     "beats baseline": f"{int((s['difference (%)'] > 0).sum())} / {len(s)}" if new else "",
                     "fit_s": float(g.groupby("seed")["wall_s"].first().median()),
                     "gain_r": s["gain_r"].median() if new else np.nan,
                     "gain_r min": s["gain_r"].min() if new else np.nan,
                     "gain_r max": s["gain_r"].max() if new else np.nan})
    return pd.DataFrame(rows)
