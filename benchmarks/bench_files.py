"""What the checked files cost: writing and reading a dataset HDF5 file (digests of every
node) and a checkpoint (digests of every tensor). Prints a markdown table for
benchmarks/README.md.

The dataset is the synthetic one at the sizes given (default: the quick profile's 16
neurons x 16 clips of 4 s x 20 repeats, 34 bands), written with ``to_hdf5`` and read with
``from_hdf5`` ``--reps`` times each (median wall and CPU seconds); the checkpoint is an NS1
2D-CNN + AdapTrans. The same script runs against an older checkout (``PYTHONPATH=<it>``)
for a before / after comparison, as it uses only ``to_hdf5`` / ``from_hdf5`` /
``save_checkpoint`` / ``load_checkpoint``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_files.py [--reps 5] [--neurons 16 --clips 16 --clip-s 4]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

if "deepstrf_utils" not in sys.modules and not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

import deepstrf_utils  # noqa: E402
from deepstrf_utils.datasets import ResponseDataset  # noqa: E402
from deepstrf_utils.datasets.synthetic import generate_synthetic  # noqa: E402
from deepstrf_utils.models import ConvNet2D  # noqa: E402
from deepstrf_utils.training import load_checkpoint, save_checkpoint  # noqa: E402
from _timing import median_wall_cpu  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--neurons", type=int, default=16)
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--clip-s", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ds = generate_synthetic(n_neurons=args.neurons, n_clips=args.clips, clip_s=args.clip_s,
                            n_repeats=args.repeats)
    model = ConvNet2D(n_bands=34, n_neurons=1, prefilter="adaptrans")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        h5, pt = Path(tmp) / "ds.h5", Path(tmp) / "m.pt"
        timed = [("dataset to_hdf5", lambda: ds.to_hdf5(h5), h5),
                 ("dataset from_hdf5", lambda: ResponseDataset.from_hdf5(h5), h5),
                 ("checkpoint save (2D-CNN + AdapTrans)", lambda: save_checkpoint(pt, model), pt),
                 ("checkpoint load", lambda: load_checkpoint(pt), pt)]
        for name, fn, path in timed:  # no warm-up: each write starts from the previous file
            rows.append((name, *median_wall_cpu(fn, args.reps, warmup=False), path.stat().st_size))
    print(f"deepstrf_utils at {Path(deepstrf_utils.__file__).parent.parent}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; dataset {args.neurons} neurons x {args.clips} clips "
          f"of {args.clip_s:g} s x {args.repeats} repeats; median of {args.reps}\n")
    print("| operation | wall s | CPU s | file MB |")
    print("|---|---:|---:|---:|")
    for name, wall, cpu, size in rows:
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {size / 1e6:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
