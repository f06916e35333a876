"""CCnorm a reader can trust: reliability rule, median and bootstrap interval, excluded neurons drawn (issue 10, item 7)."""
import numpy as np
import pandas as pd
import pytest

from deepstrf_utils.metrics import bootstrap_ci
from deepstrf_utils.report.reliability import MIN_CC_MAX, neuron_reliability, score_summary


def test_bootstrap_ci_known_samples():
    assert bootstrap_ci([2.0, 2.0, 2.0, np.nan]) == (2.0, 2.0)
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    assert all(np.isnan(bootstrap_ci([np.nan])))
    v = np.array([1.0, 4.0, 2.0, 8.0, 5.0, 7.0])
    # the same seeded resampling written out: percentile interval of the resampled medians
    rng = np.random.default_rng(7)
    meds = np.median(v[rng.integers(0, 6, size=(500, 6))], axis=1)
    assert bootstrap_ci(v, "median", n_boot=500, seed=7) == pytest.approx(tuple(np.quantile(meds, [0.025, 0.975])))
    assert bootstrap_ci(v, seed=1) == bootstrap_ci(v, seed=1)
    # the mean of a large normal sample: close to mean ± 1.96 SEM
    x = np.random.default_rng(0).normal(10.0, 2.0, 400)
    lo, hi = bootstrap_ci(x, "mean", n_boot=4000)
    sem = x.std(ddof=1) / np.sqrt(x.size)
    assert lo == pytest.approx(x.mean() - 1.96 * sem, abs=0.25 * sem)
    assert hi == pytest.approx(x.mean() + 1.96 * sem, abs=0.25 * sem)
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_ci(x, "mode")
    st = score_summary([1.0, 2.0, 3.0, np.nan])
    assert st["n"] == 3 and st["median"] == 2.0 and st["mean"] == 2.0 and st["sem"] == pytest.approx(1 / np.sqrt(3))


def _results():
    """4 neurons x 2 seeds x (none, adaptrans): a reliable pair, a low-ceiling neuron with a huge
    CCnorm, a neuron the split excluded, and a reliable one."""
    rows = []
    spec = {"a": (0.5, 0.8, ""), "b": (0.6, 0.9, ""), "noisy": (0.9, 0.2, ""), "few": (np.nan, np.nan, "heard 2 stimuli")}
    for cid, pre, gain in (("c0", "none", 1.0), ("c1", "adaptrans", 1.2)):
        for seed in (0, 1):
            for nid, (cc, cmax, why) in spec.items():
                norm = cc * gain / cmax if np.isfinite(cc) else np.nan
                if nid == "noisy":
                    norm = 2.5  # 250 %: the unbounded CCnorm of a neuron with a tiny ceiling
                rows.append({"dataset": "synthetic", "model": "LinearNonlinear", "prefilter": pre, "note": "",
                             "mode": "single", "seed": seed, "neuron": nid, "cc_raw": cc * gain if why == "" else np.nan,
                             "cc_norm": norm, "cc_max": cmax, "n_params": 10, "epochs": 1, "wall_s": 0.1,
                             "config_id": cid, "excluded_reason": why})
    return pd.DataFrame(rows)


def test_reliability_rule_and_exclusion_counts_in_the_summary():
    from deepstrf_utils.report.tables import markdown_table, summary_table

    rel = neuron_reliability(_results()).set_index(["config_id", "neuron"])
    assert rel.loc[("c0", "a"), "reliable"] and rel.loc[("c0", "b"), "reliable"]
    assert not rel.loc[("c0", "noisy"), "reliable"]
    assert rel.loc[("c0", "noisy"), "excluded_reason"] == f"noise ceiling CCmax 0.20 < {MIN_CC_MAX:.2f}"
    assert rel.loc[("c0", "few"), "excluded_reason"] == "excluded by the split: heard 2 stimuli"
    assert rel.loc[("c0", "few"), "n_seeds"] == 0
    table = summary_table(_results()).set_index("Model")
    row = table.loc["LinearNonlinear"]
    assert row["Neurons"] == 2 and row["Excluded"] == 2
    # mean of a and b only: (0.5/0.8 + 0.6/0.9)/2, not pulled up by the 250 % neuron
    assert row["CCnorm (%)"] == pytest.approx(100 * (0.5 / 0.8 + 0.6 / 0.9) / 2)
    assert row["CCnorm median (%)"] == pytest.approx(row["CCnorm (%)"])
    assert row["CCnorm CI low"] <= row["CCnorm median (%)"] <= row["CCnorm CI high"]
    md = markdown_table(summary_table(_results()))
    assert "CCnorm median [95 % CI]" in md.splitlines()[0] and "| Excluded |" in md.splitlines()[0]
    # a looser ceiling lets the noisy neuron in
    assert summary_table(_results(), min_cc_max=0.1)["Neurons"].tolist() == [3, 3]


def test_performance_figure_draws_excluded_neurons_and_says_how_many_in_the_caption():
    import matplotlib.pyplot as plt

    from deepstrf_utils.report.figures_results import performance_figure

    fig, table = performance_figure(_results(), models=["LinearNonlinear"])
    scatter_ax = fig.axes[1]
    # the noisy neuron (250 % with and without) lies far beyond the reliable neurons' span: an arrow at
    # the edge, its values in the caption, not an x clipped to the axes as if it were a value there
    lo, hi = scatter_ax.get_xlim()
    arrows = [c for c in scatter_ax.collections if len(c.get_offsets()) == 1
              and np.allclose(np.asarray(c.get_offsets()), hi - 0.025 * (hi - lo))]
    assert len(arrows) == 1 and "(without, with): LinearNonlinear (250, 250)" in table.attrs["caption"]
    dots = [c for c in scatter_ax.collections if c.get_label() == "LinearNonlinear"]
    assert len(dots[0].get_offsets()) == 2
    caption = table.attrs["caption"]
    assert "2 of 4 neurons excluded" in caption and "noise ceiling CCmax <" in caption and "split" in caption
    assert "1 excluded point(s) lie beyond the axes" in caption
    assert (table["neurons"] == 2).all() and (table["excluded"] == 2).all()
    plt.close(fig)
