"""Datasets: one :class:`ResponseDataset` type for every source, and :func:`load_dataset`.

Sources (``name`` of :func:`load_dataset`):

============  ===============================================================
synthetic     simulated AdapTrans -> ON/OFF STRF population, known ground truth
ns1           ferret A1, natural sounds (Harper et al. 2016)
nat4_a1       ferret A1, NAT4 (Pennington & David 2023)
nat4_peg      ferret PEG, NAT4
wehr          rat A1 membrane potential (CRCNS ac-1)
folder        your own recordings in a folder (see ``datasets/folder.py``)
============  ===============================================================

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
from .movies import MovieDataset, images_as_movies
from .sessions import SessionSet
from .state import plant_state_gain

logger = logging.getLogger(__name__)

#: name -> (module, loader function, fixed keyword arguments)
_SOURCES: dict[str, tuple[str, str, dict]] = {
    "synthetic": ("synthetic", "load_synthetic", {}),
    "ns1": ("ns1", "load_ns1", {}),
    "nat4_a1": ("nat4", "load_nat4", {"area": "A1"}),
    "nat4_peg": ("nat4", "load_nat4", {"area": "PEG"}),
    "wehr": ("wehr", "load_wehr", {}),
    "folder": ("folder", "load_folder", {}),
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
        name: one of ``synthetic, ns1, nat4_a1, nat4_peg, wehr, folder``.
        root: data folder; each source lives in its own sub-folder (``root/ns1`` ...).
        download: fetch missing files of a public source (ignored by ``synthetic`` and
            ``folder``).
        **options: passed to the source's loader (e.g. ``n_neurons`` for synthetic; for
            ``folder``, ``path`` is the folder to read and defaults to ``root/folder``).

    Returns:
        ResponseDataset with items ``(stim (1, F, T_i), resp (N, R_i, T_i))``.
    """
    key = str(name).lower()
    if key not in _SOURCES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    _, load, fixed = _loader(key)
    if key == "synthetic":
        return load(root=root, **options)
    if key == "folder":
        path = options.pop("path", Path(root) / "folder")
        return load(path, **options)
    clash = set(fixed) & set(options)
    if clash:
        raise ValueError(f"dataset {name!r} fixes {sorted(clash)}; do not pass them as options")
    return load(root=root, download=download, **fixed, **options)


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

    ``folder`` is listed when ``root/folder`` holds files. The notebooks use this to pick
    what to run.
    """
    root = Path(root)
    names = ["synthetic"]
    for name in DATASETS[1:]:
        if _present(root, name):
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
    "load_dataset",
]
