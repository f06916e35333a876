"""Time to_nwb and load_dataset("nwb") on the synthetic default; prints a table.

    python benchmarks/bench_nwb.py [--repeats 3] [--root data]

Writes the synthetic default (50 neurons x 20 clips of 5 s x 20 repeats, spike counts in
5 ms bins) to an NWB file in a temporary folder, reads it back, checks that the round trip
is exact, and reports the median wall and CPU time of each step over --repeats runs with
the file size. Needs the optional extra [nwb].
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from deepstrf_utils.datasets import load_dataset, to_nwb


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--root", default="data", help="data root holding the synthetic cache")
    args = ap.parse_args()
    logging.getLogger("deepstrf_utils").setLevel(logging.ERROR)
    ds = load_dataset("synthetic", root=args.root)
    subject = {"subject_id": "synthetic", "species": "n/a", "sex": "U", "age": "P0D/"}
    rows = {"to_nwb": [], "load_dataset('nwb')": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.nwb"
        for _ in range(args.repeats):
            path.unlink(missing_ok=True)
            _, w, c = timed(lambda: to_nwb(ds, path, subject=subject))
            rows["to_nwb"].append((w, c))
            back, w, c = timed(lambda: load_dataset("nwb", path=path))
            rows["load_dataset('nwb')"].append((w, c))
        size = os.path.getsize(path) / 1e6
    exact = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(ds.responses, back.responses)) and \
        all(np.array_equal(a, b) for a, b in zip(ds.stimuli, back.stimuli))
    spikes = int(sum(np.nansum(r) for r in ds.responses))
    print(f"synthetic default: {ds.n_neurons} neurons, {ds.n_stimuli} stimuli x {ds.n_repeats.max()} repeats, "
          f"{spikes:,} spikes; file {size:.1f} MB; round trip exact: {exact}; median of {args.repeats}")
    print(f"  {'step':<22}{'wall s':>8}{'CPU s':>8}")
    for step, vals in rows.items():
        print(f"  {step:<22}{statistics.median(v[0] for v in vals):>8.2f}{statistics.median(v[1] for v in vals):>8.2f}")


if __name__ == "__main__":
    main()
