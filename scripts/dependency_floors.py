#!/usr/bin/env python
"""The oldest dependency versions that ``pyproject.toml`` admits, as pip requirements.

    python scripts/dependency_floors.py            # prints "numpy==1.24", ... (torch excluded)
    python scripts/dependency_floors.py --check    # exit 1 unless the installed versions are those

``make test-floors`` installs them in ``.venv-floors`` (beside the pinned torch) and runs the
test suite there, so every ``>=`` floor the project claims is a version that was tested.
Reads the base dependencies and the ``test`` and ``notebooks`` extras.
"""
from __future__ import annotations

import argparse
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRAS = ("test", "notebooks")
#: pinned separately by the Makefile (TORCH_VERSION), whose build (CPU / CUDA) matters
SKIP = {"torch"}


def floors(pyproject: Path = REPO / "pyproject.toml") -> dict[str, str]:
    """``{package: floor}`` for every ``name>=x`` requirement of the base dependencies and extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project["optional-dependencies"].get(extra, [])
    out: dict[str, str] = {}
    for req in reqs:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(;.*)?", req)
        if m is None:
            raise ValueError(f"expected requirements of the form 'name>=version' in {pyproject}, got {req!r}")
        name, floor = m.group(1).lower(), m.group(2)
        if name not in SKIP:
            out[name] = floor
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare the installed versions with the floors")
    args = parser.parse_args(argv)
    wanted = floors()
    if not args.check:
        print("\n".join(f"{name}=={floor}.*" if floor.count(".") == 1 else f"{name}=={floor}"
                        for name, floor in wanted.items()))
        return 0
    wrong = []
    for name, floor in wanted.items():
        try:
            got = version(name)
        except PackageNotFoundError:
            got = "missing"
        if not (got == floor or got.startswith(floor + ".")):
            wrong.append(f"{name}: expected {floor}, installed {got}")
    if wrong:
        print("dependency floors not installed:\n  " + "\n  ".join(wrong), file=sys.stderr)
        return 1
    print(f"{len(wanted)} dependencies at their floors: " + ", ".join(f"{n} {v}" for n, v in wanted.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
