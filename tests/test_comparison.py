"""Model comparison on planted differences: the paired median and its bootstrap interval, the
Wilcoxon test, Holm's correction, the hierarchical bootstrap, and the markdown table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepstrf_utils.report.comparison import (
    compare_models,
    comparison_markdown,
    config_labels,
    default_pairs,
    hierarchical_bootstrap,
    holm,
    neuron_groups,
    paired_differences,
)


def _results(effect: float, n_neurons=40, seeds=(0, 1, 2), noise=0.03, site_sd=0.0, n_sites=8, rng_seed=0):
    """LN and LN + AdapTrans on the same neurons and seeds: AdapTrans = LN + effect (+ site and noise)."""
    rng = np.random.default_rng(rng_seed)
    base = rng.uniform(0.3, 0.8, n_neurons)
    site_of = np.arange(n_neurons) % n_sites
    site_shift = rng.normal(0.0, site_sd, n_sites)
    rows = []
    for s in seeds:
        for u in range(n_neurons):
            b = base[u] + rng.normal(0, 0.01)
            a = b + effect + site_shift[site_of[u]] + rng.normal(0, noise)
            for pre, cid, v in ((None, "c_ln", b), ("adaptrans", "c_lna", a)):
                rows.append({"dataset": "syn", "model": "LinearNonlinear", "prefilter": pre or "none", "note": "",
                             "seed": s, "neuron": f"n{u}", "cc_norm": v, "cc_raw": 0.8 * v, "cc_max": 0.9,
                             "config_id": cid})
    groups = {f"n{u}": f"site{site_of[u]}" for u in range(n_neurons)}
    return pd.DataFrame(rows), groups


def test_holm_on_known_p_values():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.2]), [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(holm([0.5, np.nan, 0.01]), [0.5, np.nan, 0.02])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])
    assert holm([]).shape == (0,)


def test_a_planted_plus_005_is_found_and_a_zero_difference_is_not():
    found, _ = _results(0.05)
    row = compare_models(found).iloc[0]
    assert (row["model_a"], row["model_b"]) == ("LinearNonlinear + AdapTrans", "LinearNonlinear")
    assert row["neurons"] == 40 and row["seeds"] == 3 and row["hierarchy"] == "neuron -> seed"
    assert row["median_difference"] == pytest.approx(0.05, abs=0.01)
    assert 0 < row["ci_low"] < 0.05 < row["ci_high"] and 0 < row["hier_ci_low"] < row["hier_ci_high"]
    assert row["p_wilcoxon"] < 1e-6 and row["n_better"] == 40 and row["n_worse"] == 0
    assert row["mean_a"] - row["mean_b"] == pytest.approx(row["mean_difference"])
    null, _ = _results(0.0, rng_seed=1)
    row = compare_models(null).iloc[0]
    assert row["ci_low"] < 0 < row["ci_high"] and row["hier_ci_low"] < 0 < row["hier_ci_high"]
    assert row["p_wilcoxon"] > 0.05 and 10 < row["n_better"] < 30


def test_hierarchical_bootstrap_widens_when_neurons_within_a_site_are_correlated():
    results, groups = _results(0.05, n_neurons=64, noise=0.005, site_sd=0.04, rng_seed=2)
    flat = compare_models(results).iloc[0]
    hier = compare_models(results, groups={"syn": groups}).iloc[0]
    assert hier["hierarchy"] == "group -> neuron -> seed" and hier["groups"] == 8 and flat["groups"] == 64
    width_flat, width_hier = flat["hier_ci_high"] - flat["hier_ci_low"], hier["hier_ci_high"] - hier["hier_ci_low"]
    assert width_hier > 2.5 * width_flat  # 8 sites carry the spread, not 64 independent neurons
    assert flat["ci_low"] == hier["ci_low"] and flat["p_wilcoxon"] == hier["p_wilcoxon"]
    # independent neurons: the site level changes little
    indep, groups = _results(0.05, n_neurons=64, noise=0.03, site_sd=0.0, rng_seed=3)
    a = compare_models(indep).iloc[0]
    b = compare_models(indep, groups={"syn": groups}).iloc[0]
    assert (b["hier_ci_high"] - b["hier_ci_low"]) < 1.5 * (a["hier_ci_high"] - a["hier_ci_low"])


def test_hierarchical_bootstrap_known_cases():
    d = np.array([[0.1, 0.1], [0.1, np.nan], [0.1, 0.1]])
    assert hierarchical_bootstrap(d) == pytest.approx((0.1, 0.1))
    assert hierarchical_bootstrap(d, groups=["a", "a", "b"], statistic="mean") == pytest.approx((0.1, 0.1))
    assert np.isnan(hierarchical_bootstrap(np.full((3, 2), np.nan))[0])
    lo, hi = hierarchical_bootstrap(np.arange(20.0), seed=4)
    assert (lo, hi) == hierarchical_bootstrap(np.arange(20.0), seed=4) and lo < 9.5 < hi
    with pytest.raises(ValueError, match="one group per neuron"):
        hierarchical_bootstrap(d, groups=["a"])
    with pytest.raises(ValueError, match="statistic"):
        hierarchical_bootstrap(d, statistic="mode")


def test_pairs_align_on_common_neurons_and_seeds_and_reliability():
    results, _ = _results(0.05, n_neurons=6)
    # model B misses seed 2 of neuron n0, and n5 has no noise ceiling (excluded by the reliability rule)
    results = results[~((results["config_id"] == "c_ln") & (results["neuron"] == "n0") & (results["seed"] == 2))]
    results.loc[results["neuron"] == "n5", "cc_max"] = np.nan
    diff = paired_differences(results, "LinearNonlinear + AdapTrans", "c_ln", "syn")
    assert diff.shape == (6, 3) and np.isnan(diff.loc["n0", 2]) and diff.notna().sum().sum() == 17
    row = compare_models(results).iloc[0]
    assert row["neurons"] == 5 and row["seeds"] == 3
    assert compare_models(results, reliable_only=False).iloc[0]["neurons"] == 6
    assert default_pairs(results) == [("LinearNonlinear + AdapTrans", "LinearNonlinear")]
    assert dict(config_labels(results)) == {"c_ln": "LinearNonlinear", "c_lna": "LinearNonlinear + AdapTrans"}
    with pytest.raises(ValueError, match="expected one configuration 'DNet' on syn"):
        paired_differences(results, "DNet", "c_ln", "syn")
    with pytest.raises(ValueError, match="a group for every neuron"):
        compare_models(results, groups={"syn": {"n1": "s"}})
    with pytest.raises(ValueError, match="missing columns"):
        compare_models(results.drop(columns="config_id"))


def test_holm_runs_across_every_pair_and_the_table_renders():
    a, _ = _results(0.05)
    b, _ = _results(0.0, rng_seed=1)
    b = b.assign(dataset="other")
    table = compare_models(pd.concat([a, b], ignore_index=True))
    assert list(table["dataset"]) == ["syn", "other"]
    np.testing.assert_allclose(table["p_holm"], holm(table["p_wilcoxon"]))
    md = comparison_markdown(table)
    lines = md.splitlines()
    assert lines[0].startswith("| Dataset | A vs B | Metric | Neurons (groups) | median Δ [95 % CI]") and len(lines) == 4
    assert "LinearNonlinear + AdapTrans vs LinearNonlinear | cc_norm |" in lines[2] and "40 / 0" in lines[2]
    # two metrics of the same pairs: each row names its metric
    both = pd.concat([table, compare_models(a, metric="cc_raw")], ignore_index=True)
    rows = comparison_markdown(both).splitlines()[2:]
    assert [r.split(" | ")[2] for r in rows] == ["cc_norm", "cc_norm", "cc_raw"]


def test_neuron_groups_reads_the_hierarchy_column():
    class Data:
        neurons = pd.DataFrame({"id": ["a-1", "a-2", "b-1"], "site": ["a", "a", "b"], "animal": ["x", "x", "x"]})

    assert dict(neuron_groups(Data())) == {"a-1": "a", "a-2": "a", "b-1": "b"}
    assert dict(neuron_groups(Data(), "animal")) == {"a-1": "x", "a-2": "x", "b-1": "x"}
    Data.neurons = Data.neurons.drop(columns=["site", "animal"])
    assert neuron_groups(Data()) is None
    with pytest.raises(ValueError, match="column 'site'"):
        neuron_groups(Data(), "site")


def test_known_answer_with_an_outlier_neuron():
    """6 neurons x 2 seeds: AdapTrans +0.10 / +0.12 per seed, one neuron -0.3 lower."""
    rows = []
    for seed in (0, 1):
        for u in range(6):
            rows.append({"dataset": "syn", "model": "LinearNonlinear", "prefilter": "none", "seed": seed, "note": "",
                         "neuron": str(u), "cc_norm": 0.5 + 0.01 * u, "config_id": "a", "cc_raw": 0.0, "cc_max": 0.9})
            rows.append({"dataset": "syn", "model": "LinearNonlinear", "prefilter": "adaptrans", "seed": seed,
                         "note": "", "neuron": str(u), "config_id": "b", "cc_raw": 0.0, "cc_max": 0.9,
                         "cc_norm": 0.6 + 0.01 * u + (0.02 if seed else 0.0) - (0.3 if u == 5 else 0)})
    r = compare_models(pd.DataFrame(rows)).iloc[0]
    assert r["neurons"] == 6 and (r["n_better"], r["n_worse"]) == (5, 1)
    assert r["mean_difference"] == pytest.approx((5 * 0.11 + (0.11 - 0.3)) / 6)
    assert r["mean_b"] == pytest.approx(0.525) and r["median_difference"] == pytest.approx(0.11)
    assert 0 < r["p_wilcoxon"] <= 1 and r["p_holm"] == r["p_wilcoxon"]
