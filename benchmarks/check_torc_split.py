"""TORC split check: a ridge STRF's test CCnorm and TORC-specific CCnorm on the shared ferret A1
unit, with the held-out TORCs' inverse-polarity partners kept in training (the loader's
default) versus whole densities held out (both TORCs of 3 test and 2 validation densities).

    python benchmarks/check_torc_split.py [--path ../shared/data/torc_ferret_a1] [--seeds 6]
"""
import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from deepstrf_utils.datasets import load_dataset
from deepstrf_utils.metrics import cc_norm
from deepstrf_utils.metrics.specific import cc_norm_specific
from deepstrf_utils.models.ridge import fit_ridge_strf


def score(train, val, test, n_lags):
    model, _ = fit_ridge_strf(train, val, n_lags=n_lags)
    with torch.no_grad():
        pred = model(torch.from_numpy(np.stack(test.stimuli))[:, None]).numpy()
    resp = np.stack(test.responses)
    return float(cc_norm(pred, resp)[0]), float(cc_norm_specific(pred, resp)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"
                                              / "torc_ferret_a1"))
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--n-lags", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    data = load_dataset("torc", path=args.path)
    dens = np.array(data.meta["densities_cyc_per_oct"])
    uniq = np.unique(dens)
    rows = {"partner in training (default)": [], "whole density held out": []}
    for seed in range(args.seeds):
        rows["partner in training (default)"].append(score(*data.split(seed), args.n_lags))
        pick = np.random.default_rng(seed).permutation(uniq)
        test = np.flatnonzero(np.isin(dens, pick[:3]))
        val = np.flatnonzero(np.isin(dens, pick[3:5]))
        train = np.setdiff1d(np.arange(data.n_stimuli), np.concatenate([test, val]))
        rows["whole density held out"].append(score(data.subset(train), data.subset(val), data.subset(test),
                                                     args.n_lags))
    print(f"ridge STRF (n_lags={args.n_lags}, no prefilter) on {data.neuron_ids[0]}, {args.seeds} seeds: "
          "mean (min - max)")
    print(f"{'split':32s} {'test CCnorm':>22s} {'TORC-specific CCnorm':>24s}")
    for name, values in rows.items():
        v = np.array(values)
        print(f"{name:32s} {v[:, 0].mean():8.3f} ({v[:, 0].min():.3f} - {v[:, 0].max():.3f})"
              f" {v[:, 1].mean():8.3f} ({v[:, 1].min():.3f} - {v[:, 1].max():.3f})")


if __name__ == "__main__":
    main()
