"""HDF5 storage of a :class:`~deepstrf_utils.datasets.base.ResponseDataset` (versioned, atomic, checked).

:func:`write_hdf5` writes a temporary file in the target folder (:func:`deepstrf_utils.files.atomic_path`),
stores a SHA-256 digest of every dataset and attribute (``_checksums``: one per HDF5 node;
the ``digest`` attribute: of that table) and, when given, the options that generated the
data (``options``), marks it ``complete`` and moves it into place. :func:`read_hdf5`
refuses files without the mark or with another ``schema_version``, recomputes every digest
(a damaged or edited node raises a ValueError naming it) and, when ``options`` are passed,
compares them with the stored ones (a ValueError naming what differs; the cache loaders
then rebuild the file). The dataset class is passed in (``cls``), so this module does not
import :mod:`.base` (base imports it). The layout is the same for every dataset
class; the attribute ``format`` names the class (``FILE_FORMAT``: a file holding a
:class:`~deepstrf_utils.datasets.movies.MovieDataset` is refused by ``ResponseDataset.from_hdf5``
with the class to use), spectrograms keep their band centres in ``cf_hz`` and other stimulus
formats store their constructor values in the JSON attribute ``format_kwargs``.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

import h5py
import numpy as np
import pandas as pd
import torch

from ..files import atomic_path, content_digest
from ..plain import flatten

__all__ = ["SCHEMA_VERSION", "write_hdf5", "read_hdf5"]

log = logging.getLogger(__name__)

#: Version of the HDF5 layout written by :meth:`ResponseDataset.to_hdf5`. Bump it when the
#: layout changes; :meth:`ResponseDataset.from_hdf5` refuses any version not in
#: :data:`READABLE_VERSIONS`. Version 2 added the optional ``states`` group (behavioural
#: state signals); a version-1 file reads as a dataset without states. Version 3 added the
#: digests (``_checksums``, ``digest``) and the generating ``options``; files of versions 1
#: and 2 load with a warning that they cannot be verified, and a cache (read with
#: ``options``) of those versions is refused, hence rebuilt.
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
_CHECKSUMS = "_checksums"
_UNCHECKED_ATTRS = ("digest", "complete")


def write_hdf5(ds, path: str | os.PathLike, options: Optional[dict] = None) -> Path:
    """Write dataset ``ds`` to ``path`` atomically -> the path.

    ``options``: the options that generated ``ds`` (JSON-serialisable; stored, and compared
    by :func:`read_hdf5` when it is given options).
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            _write_dataset(f, ds)
            if options is not None:
                f.attrs["options"] = _options_json(options)
            sums = {name: content_digest(node) for name, node in _snapshot(f, path).items()}
            f.create_dataset(_CHECKSUMS, data=json.dumps(sums, sort_keys=True), dtype=h5py.string_dtype())
            f.attrs["digest"] = content_digest(sums)
            f.attrs["complete"] = True
    return path


def read_hdf5(path: str | os.PathLike, cls, options: Optional[dict] = None):
    """Read a file written by :func:`write_hdf5` into a ``cls`` (a ResponseDataset class).

    ``options``: when given, the file must have been written with these options (a cache);
    files of versions before 3 (no options, no digests) are then refused too.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a dataset file, an incomplete write, an unreadable version, a node
            whose content no longer matches its digest, a missing node, other options.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a ResponseDataset HDF5 file at {path}, found none")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"expected a ResponseDataset HDF5 file at {path}, could not open it: {exc}") from exc
    with f:
        if "schema_version" not in f.attrs:
            raise ValueError(f"expected a ResponseDataset HDF5 file with a 'schema_version' attribute: {path}")
        version = int(f.attrs["schema_version"])
        if version not in READABLE_VERSIONS:
            raise ValueError(
                f"{path} has schema_version {version}, this code reads versions {READABLE_VERSIONS}; "
                "regenerate the file (delete it and reload)"
            )
        if not bool(f.attrs.get("complete", False)):
            raise ValueError(f"{path} is an incomplete write (no 'complete' mark); delete it and regenerate")
        snapshot = _snapshot(f, path)
        if version >= 3:
            _verify(f, snapshot, path)
        elif options is not None:
            raise ValueError(f"{path} has schema_version {version}, written before digests and generating "
                             f"options were stored (version 3); it cannot be checked, so it is not used as a cache")
        else:
            log.warning("%s has schema_version %d (no digests): its contents cannot be verified; "
                        "write it again with to_hdf5 to add them", path, version)
    if options is not None:
        _compare_options(snapshot["/"]["attrs"].get("options"), options, path)
    _check_format(_Node(snapshot, "/"), cls, path)
    try:
        return _read_dataset(_Node(snapshot, "/"), cls)
    except KeyError as exc:
        raise ValueError(f"{path}: expected the HDF5 node {exc.args[0]} of a ResponseDataset file, it is "
                         f"missing (the file was edited or damaged); delete it and regenerate") from exc


# ----------------------------------------------------------------------------- checks
def _snapshot(f: h5py.File, path: Path) -> dict:
    """Every node of ``f`` (but the checksum table) -> ``{"attrs": {...}, "data": value}``
    (groups have no "data"); the root's ``digest`` and ``complete`` attributes are left out."""
    out = {}

    def add(name: str, node) -> None:
        if name == _CHECKSUMS:
            return
        attrs = {k: node.attrs[k] for k in node.attrs if not (name == "/" and k in _UNCHECKED_ATTRS)}
        entry = {"attrs": attrs}
        if isinstance(node, h5py.Dataset):
            try:
                entry["data"] = node[()]
            except (OSError, ValueError) as exc:
                raise ValueError(f"{path}: could not read the HDF5 node /{name} (damaged file?): {exc}; "
                                 "delete it and regenerate") from exc
        out[name if name == "/" else f"/{name}"] = entry

    try:
        add("/", f)
        f.visititems(add)
    except (OSError, RuntimeError, KeyError) as exc:
        raise ValueError(f"{path}: could not read its HDF5 structure (damaged file?): {exc}; "
                         "delete it and regenerate") from exc
    return out


def _verify(f: h5py.File, snapshot: dict, path: Path) -> None:
    """Compare every node's digest with the stored table; ValueError naming the nodes that
    differ, are missing or were added."""
    try:
        stored = json.loads(f[_CHECKSUMS][()])
        if content_digest(stored) != str(f.attrs["digest"]):
            raise ValueError("digest mismatch")
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise ValueError(f"{path}: its checksum table ({_CHECKSUMS} and the 'digest' attribute) is missing or "
                         f"damaged ({exc}); delete the file and regenerate it") from exc
    now = {name: content_digest(node) for name, node in snapshot.items()}
    changed = sorted(n for n in now if n in stored and stored[n] != now[n])
    missing = sorted(set(stored) - set(now))
    added = sorted(set(now) - set(stored))
    if changed or missing or added:
        parts = [f"{what}: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
                 for what, names in (("changed", changed), ("missing", missing), ("added", added)) if names]
        raise ValueError(f"{path}: expected every HDF5 node to match the SHA-256 digest stored when it was "
                         f"written; {'; '.join(parts)} (the file was damaged or edited); delete it and regenerate")


def _options_json(options: dict) -> str:
    return json.dumps(options, sort_keys=True, default=str)


def _compare_options(stored: Any, options: dict, path: Path) -> None:
    """ValueError naming every option whose stored value differs from ``options``."""
    want = flatten(json.loads(_options_json(options)))
    if stored is None:
        raise ValueError(f"{path}: expected a cache written for the options {want}, the file stores no options")
    have = flatten(json.loads(str(stored)))
    diff = [f"{k}={have.get(k, '<absent>')!r} (asked: {want.get(k, '<absent>')!r})"
            for k in sorted(set(want) | set(have)) if have.get(k, "<absent>") != want.get(k, "<absent>")]
    if diff:
        raise ValueError(f"{path}: expected a cache written for this call's options; it was written for "
                         f"other ones: {', '.join(diff)}")


class _Node:
    """Read-only view of a node of a :func:`_snapshot` with the parts of the h5py API the
    readers below use (``attrs``, ``node[key]``, ``node[()]``, ``len``, ``in``, ``name``).
    A missing child raises KeyError with its path."""

    def __init__(self, snapshot: dict, name: str):
        self._snap, self.name = snapshot, name
        self.attrs = snapshot[name]["attrs"]

    def _child(self, key: str) -> str:
        return f"/{key}" if self.name == "/" else f"{self.name}/{key}"

    def __getitem__(self, key):
        if key == ():
            return self._snap[self.name]["data"]
        child = self._child(key)
        if child not in self._snap:
            raise KeyError(child)
        return _Node(self._snap, child)

    def __contains__(self, key: str) -> bool:
        return self._child(key) in self._snap

    def __len__(self) -> int:
        prefix = self._child("")
        return sum(1 for n in self._snap if n.startswith(prefix) and "/" not in n[len(prefix):])


# ----------------------------------------------------------------------------- HDF5 layout
def _item_key(i: int) -> str:
    return f"{i:06d}"


def _write_tree(group: h5py.Group, key: str, value: Any) -> None:
    """Write a nested dict/list/array/scalar under ``group[key]`` with a ``_type`` tag."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, dict):
        g = group.create_group(key)
        g.attrs["_type"] = "dict"
        g.attrs["_keys"] = json.dumps([str(k) for k in value])
        for j, (k, v) in enumerate(value.items()):
            _write_tree(g, _item_key(j), v)
    elif isinstance(value, (list, tuple)):
        g = group.create_group(key)
        g.attrs["_type"] = "list"
        g.attrs["_len"] = len(value)
        for j, v in enumerate(value):
            _write_tree(g, _item_key(j), v)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind in "US" or value.dtype == object:
            ds = group.create_dataset(key, data=np.asarray([str(v) for v in value.ravel()], dtype=object),
                                      dtype=h5py.string_dtype())
            ds.attrs["_type"] = "str_array"
            ds.attrs["_shape"] = value.shape
        else:
            ds = group.create_dataset(key, data=value)
            ds.attrs["_type"] = "array"
    elif value is None:
        ds = group.create_dataset(key, data=0)
        ds.attrs["_type"] = "none"
    elif isinstance(value, (bool, np.bool_)):
        ds = group.create_dataset(key, data=bool(value))
        ds.attrs["_type"] = "bool"
    elif isinstance(value, (int, np.integer)):
        ds = group.create_dataset(key, data=np.int64(value))
        ds.attrs["_type"] = "int"
    elif isinstance(value, (float, np.floating)):
        ds = group.create_dataset(key, data=np.float64(value))
        ds.attrs["_type"] = "float"
    elif isinstance(value, str):
        ds = group.create_dataset(key, data=value, dtype=h5py.string_dtype())
        ds.attrs["_type"] = "str"
    else:
        raise ValueError(
            f"cannot store a {type(value).__name__} in HDF5; expected dict, list, numpy array, "
            "number, bool, str or None in ground_truth / meta"
        )


def _read_tree(node) -> Any:
    kind = node.attrs["_type"]
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind == "dict":
        keys = json.loads(node.attrs["_keys"])
        return {k: _read_tree(node[_item_key(j)]) for j, k in enumerate(keys)}
    if kind == "list":
        return [_read_tree(node[_item_key(j)]) for j in range(int(node.attrs["_len"]))]
    if kind == "array":
        return node[()]
    if kind == "str_array":
        flat = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in node[()]])
        return flat.reshape(tuple(node.attrs["_shape"]))
    if kind == "none":
        return None
    if kind == "bool":
        return bool(node[()])
    if kind == "int":
        return int(node[()])
    if kind == "float":
        return float(node[()])
    if kind == "str":
        v = node[()]
        return v.decode() if isinstance(v, bytes) else str(v)
    raise ValueError(f"unknown node type {kind!r} in {node.name}")


def _write_table(group: h5py.Group, table: pd.DataFrame) -> None:
    group.attrs["_columns"] = json.dumps([str(c) for c in table.columns])
    for j, col in enumerate(table.columns):
        series = table[col]
        key = _item_key(j)
        if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
            ds = group.create_dataset(key, data=series.to_numpy())
            ds.attrs["_kind"] = "numeric"
        else:
            values = ["" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in series]
            ds = group.create_dataset(key, data=np.asarray(values, dtype=object), dtype=h5py.string_dtype())
            ds.attrs["_kind"] = "str"


def _read_table(group) -> pd.DataFrame:
    columns = json.loads(group.attrs["_columns"])
    data = {}
    for j, col in enumerate(columns):
        ds = group[_item_key(j)]
        if ds.attrs["_kind"] == "str":
            data[col] = [v.decode() if isinstance(v, bytes) else str(v) for v in ds[()]]
        else:
            data[col] = ds[()]
    return pd.DataFrame(data, columns=columns)


def _write_dataset(f: h5py.File, ds) -> None:
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["format"] = _file_format(type(ds))
    f.attrs["name"] = ds.name
    f.attrs["dt_ms"] = ds.dt_ms
    f.attrs["split_spec"] = json.dumps(ds.split_spec)
    fmt = ds._format_kwargs()
    if "cf_hz" in fmt:
        f.create_dataset("cf_hz", data=fmt.pop("cf_hz"))
    if fmt:
        f.attrs["format_kwargs"] = json.dumps(fmt)
    f.create_dataset("neuron_ids", data=np.asarray(ds.neuron_ids.tolist(), dtype=object), dtype=h5py.string_dtype())
    f.create_dataset("stim_names", data=np.asarray(ds.stim_names, dtype=object), dtype=h5py.string_dtype())
    f.create_dataset("stim_types", data=np.asarray(ds.stim_types, dtype=object), dtype=h5py.string_dtype())
    gs, gr = f.create_group("stimuli"), f.create_group("responses")
    for i, (s, r) in enumerate(zip(ds.stimuli, ds.responses)):
        gs.create_dataset(_item_key(i), data=s, compression="gzip", compression_opts=4, shuffle=True)
        gr.create_dataset(_item_key(i), data=r, compression="gzip", compression_opts=4, shuffle=True)
    _write_table(f.create_group("neurons"), ds.neurons)
    if getattr(ds, "states", None) is not None:
        g = f.create_group("states")
        g.attrs["names"] = json.dumps(list(ds.state_names))
        for i, s in enumerate(ds.states):
            g.create_dataset(_item_key(i), data=s, compression="gzip", compression_opts=4, shuffle=True)
    f.attrs["has_ground_truth"] = ds.ground_truth is not None
    if ds.ground_truth is not None:
        _write_tree(f, "ground_truth", ds.ground_truth)
    _write_tree(f, "meta", ds.meta)


def _decode_strings(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _file_format(cls) -> str:
    return getattr(cls, "FILE_FORMAT", "deepstrf_utils.ResponseDataset")


def _check_format(f, cls, path: Path) -> None:
    """ValueError when the file holds another dataset class than ``cls`` (``format`` attribute)."""
    stored, want = str(f.attrs.get("format", _file_format(cls))), _file_format(cls)
    if stored != want:
        raise ValueError(f"{path} holds a {stored.split('.')[-1]}, not a {want.split('.')[-1]}: "
                         f"read it with {stored.split('.')[-1]}.from_hdf5")


def _read_dataset(f, cls):
    n_stim = len(f["stimuli"])
    fmt = {"cf_hz": f["cf_hz"][()]} if "cf_hz" in f else {}
    fmt.update(json.loads(f.attrs.get("format_kwargs", "{}")))
    return cls(
        stimuli=[f["stimuli"][_item_key(i)][()] for i in range(n_stim)],
        responses=[f["responses"][_item_key(i)][()] for i in range(n_stim)],
        dt_ms=float(f.attrs["dt_ms"]),
        **fmt,
        neuron_ids=_decode_strings(f["neuron_ids"][()]),
        neurons=_read_table(f["neurons"]),
        stim_names=_decode_strings(f["stim_names"][()]),
        stim_types=_decode_strings(f["stim_types"][()]),
        name=str(f.attrs["name"]),
        split_spec=json.loads(f.attrs["split_spec"]),
        ground_truth=_read_tree(f["ground_truth"]) if bool(f.attrs["has_ground_truth"]) else None,
        meta=_read_tree(f["meta"]),
        states=[f["states"][_item_key(i)][()] for i in range(n_stim)] if "states" in f else None,
        state_names=json.loads(f["states"].attrs["names"]) if "states" in f else None,
    )
