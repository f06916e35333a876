"""Datasets: one :class:`ResponseDataset` type for every source, and :func:`load_dataset`.

Sources (``name`` of :func:`load_dataset`):

============  ===============================================================
synthetic     simulated AdapTrans -> ON/OFF STRF population, known ground truth;
              ``population="mismatched"``: neurons outside the models' family
              (``datasets/synthetic_mismatched.py``)
ns1           ferret A1, natural sounds (Harper et al. 2016)
nat4_a1       ferret A1, NAT4 (Pennington & David 2023)
nat4_peg      ferret PEG, NAT4
wehr          rat A1 membrane potential (CRCNS ac-1)
folder        your own recordings in a folder (see ``datasets/folder.py``)
torc          a ferret A1 unit and baphy TORCs (``datasets/torc.py``; ``path`` = folder)
nwb           one NWB file (``path=``; optional extra ``[nwb]``; ``datasets/nwb.py``)
nwb_<stem>    the NWB file ``root/nwb/<stem>.nwb``
============  ===============================================================

:func:`to_nwb` writes a dataset as an NWB file (``datasets/nwb_write.py``).

The real-source loaders are imported lazily, so this package imports even when one of
them (or its optional dependency) is missing.

Movies (:class:`~.movies.MovieDataset`, stimuli ``(C, H, W, T_i)``) have their own names,
loaded by :func:`load_visual_dataset` (kept apart from ``DATASETS``, whose datasets the
auditory notebooks run):

================  ============================================================
synthetic_visual  simulated ON/OFF centre-surround population, known ground truth
allen_v1_scenes   mouse V1, flashed natural scenes (Allen Brain Observatory)
================  ============================================================
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from .base import SCHEMA_VERSION, ResponseDataset
from .collate import collate_responses
from .segments import split_in_time
from .movies import MovieDataset, images_as_movies
from .sessions import SessionSet
from .nwb_write import add_predictions, read_predictions, to_nwb
from .state import plant_state_gain
from ..submodules import lazy_submodules

logger = logging.getLogger(__name__)

#: name -> (module, loader function, fixed keyword arguments)
_SOURCES: dict[str, tuple[str, str, dict]] = {
    "synthetic": ("synthetic", "load_synthetic", {}),
    "ns1": ("ns1", "load_ns1", {}),
    "nat4_a1": ("nat4", "load_nat4", {"area": "A1"}),
    "nat4_peg": ("nat4", "load_nat4", {"area": "PEG"}),
    "wehr": ("wehr", "load_wehr", {}),
    "folder": ("folder", "load_folder", {}),
    "torc": ("torc", "load_torc", {}),
    "nwb": ("nwb", "load_nwb", {}),
}

#: Names accepted by :func:`load_dataset`.
DATASETS: tuple[str, ...] = tuple(_SOURCES)

#: movie sources: name -> (module, loader function)
_VISUAL_SOURCES: dict[str, tuple[str, str]] = {
    "synthetic_visual": ("synthetic_visual", "load_synthetic_visual"),
    "allen_v1_scenes": ("allen", "load_allen_scenes"),
}
#: Names accepted by :func:`load_visual_dataset`.
VISUAL_DATASETS: tuple[str, ...] = tuple(_VISUAL_SOURCES)


def load_visual_dataset(name: str, root: str | Path = "data", **options: Any) -> MovieDataset:
    """Load a movie dataset by name (``synthetic_visual``, ``allen_v1_scenes``) -> MovieDataset.

    ``root``: the data folder (the Allen file is ``root/allen_v1_scenes/allen_v1_scenes.npz``;
    the synthetic population ignores it); ``options`` go to the source's loader.
    """
    key = str(name).lower()
    if key not in _VISUAL_SOURCES:
        raise ValueError(f"unknown visual dataset {name!r}; expected one of {', '.join(VISUAL_DATASETS)}")
    module_name, func_name = _VISUAL_SOURCES[key]
    load = getattr(importlib.import_module(f"{__name__}.{module_name}"), func_name)
    return load(**options) if key == "synthetic_visual" else load(root=root, **options)


def _loader(name: str):
    module_name, func_name, fixed = _SOURCES[name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    return module, getattr(module, func_name), fixed


def load_dataset(name: str, root: str | Path = "data", download: bool = False, **options: Any) -> ResponseDataset:
    """Load a dataset by name as a :class:`ResponseDataset`.

    Args:
        name: one of ``synthetic, ns1, nat4_a1, nat4_peg, wehr, folder, torc, nwb``, or
            ``nwb_<stem>`` (the file ``root/nwb/<stem>.nwb``), or ``nwb:<path>``.
        root: data folder; each source lives in its own sub-folder (``root/ns1`` ...).
        download: fetch missing files of a public source (ignored by ``synthetic`` and
            ``folder``).
        **options: passed to the source's loader (e.g. ``n_neurons`` for synthetic, and
            ``population="mismatched"`` for the population outside the models' family; for
            ``folder`` and ``torc``, ``path`` is the folder to read and defaults to
            ``root/folder`` / ``root/torc``; for ``nwb``, ``path`` is the file to read).

    Returns:
        ResponseDataset with items ``(stim (1, F, T_i), resp (N, R_i, T_i))``.
    """
    key = str(name).lower()
    if key.startswith("nwb_") and "path" in options:
        key = "nwb"
    elif key.startswith("nwb:") or key.startswith("nwb_"):
        key, spec = dataset_spec(name, root)
        options = {**spec, **options}
    if key not in _SOURCES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    _, load, fixed = _loader(key)
    if key == "synthetic":
        population = options.pop("population", "model_family")
        if population == "mismatched":
            from .synthetic_mismatched import load_mismatched

            return load_mismatched(root=root, **options)
        if population != "model_family":
            raise ValueError(f"expected population 'model_family' (the default) or 'mismatched' for the synthetic "
                             f"dataset, got {population!r}")
        return load(root=root, **options)
    if key in ("folder", "torc"):
        path = options.pop("path", Path(root) / key)
        return load(path, **options)
    if key == "nwb":
        if "path" not in options:
            raise ValueError("expected path=<file.nwb> for load_dataset('nwb')")
        return load(options.pop("path"), **options)
    clash = set(fixed) & set(options)
    if clash:
        raise ValueError(f"dataset {name!r} fixes {sorted(clash)}; do not pass them as options")
    return load(root=root, download=download, **fixed, **options)


def dataset_spec(name: str, root: str | Path = "data") -> tuple[str, dict]:
    """``(source, options)`` of a dataset name: ``"nwb:<path>"`` -> ``("nwb", {"path": path})``;
    ``"nwb_<stem>"`` -> the file ``root/nwb/<stem>.nwb`` (FileNotFoundError if none);
    any other name -> ``(name, {})``."""
    text = str(name)
    if text.lower().startswith("nwb:"):
        path = text[4:].strip()
        if not path:
            raise ValueError(f"expected nwb:<path to an .nwb file>, got {name!r}")
        return "nwb", {"path": path}
    if text.lower().startswith("nwb_"):
        from .nwb import nwb_files

        files = nwb_files(root)
        if text.lower() not in files:
            raise FileNotFoundError(f"expected the NWB file of dataset {name!r} in {Path(root) / 'nwb'}/, found "
                                    f"{sorted(files) or 'none'}")
        return "nwb", {"path": str(files[text.lower()])}
    return text.lower(), {}


def _present(root: Path, name: str) -> bool:
    """Whether the files of source ``name`` are under ``root``.

    Asks the source module's ``is_available(root, **fixed)`` when it has one, otherwise
    looks for a non-empty sub-folder named after the source.
    """
    try:
        module, _, fixed = _loader(name)
    except ImportError as exc:  # a loader module or its dependency is missing
        logger.debug("dataset %s unavailable: %s", name, exc)
        return False
    check = getattr(module, "is_available", None)
    if callable(check):
        try:
            return bool(check(root, **fixed))
        except (OSError, ValueError) as exc:
            logger.debug("is_available(%s) failed: %s", name, exc)
            return False
    folder = root / _SOURCES[name][0]
    return folder.is_dir() and any(folder.iterdir())


def available_datasets(root: str | Path = "data") -> list[str]:
    """Names of the datasets whose files are present under ``root`` (``synthetic`` always).

    ``folder`` is listed when ``root/folder`` holds files, and each NWB file
    ``root/nwb/<stem>.nwb`` as ``nwb_<stem>``. The notebooks use this to pick what to run.
    """
    root = Path(root)
    names = ["synthetic"]
    for name in DATASETS[1:]:
        if name == "nwb":
            from .nwb import nwb_files

            names += list(nwb_files(root))
        elif _present(root, name):
            names.append(name)
    return names


__all__ = [
    "DATASETS",
    "VISUAL_DATASETS",
    "SCHEMA_VERSION",
    "ResponseDataset",
    "MovieDataset",
    "images_as_movies",
    "load_visual_dataset",
    "SessionSet",
    "plant_state_gain",
    "available_datasets",
    "collate_responses",
    "dataset_spec",
    "load_dataset",
    "split_in_time",
    "to_nwb",
    "add_predictions",
    "read_predictions",
]

__getattr__, __dir__ = lazy_submodules(__name__, __path__, globals())
del lazy_submodules
