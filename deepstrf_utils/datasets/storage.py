"""HDF5 storage of a :class:`~deepstrf_utils.datasets.base.ResponseDataset` (versioned, atomic).

:func:`write_hdf5` writes a temporary file in the target folder, marks it ``complete`` and
moves it into place with ``os.replace``; :func:`read_hdf5` refuses files without the mark
or with another ``schema_version``. The dataset class is passed in (``cls``), so this module
does not import :mod:`.base` (base imports it). The layout is the same for every dataset
class; the attribute ``format`` names the class (``FILE_FORMAT``: a file holding a
:class:`~deepstrf_utils.datasets.movies.MovieDataset` is refused by ``ResponseDataset.from_hdf5``
with the class to use), spectrograms keep their band centres in ``cf_hz`` and other stimulus
formats store their constructor values in the JSON attribute ``format_kwargs``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch

__all__ = ["SCHEMA_VERSION", "write_hdf5", "read_hdf5"]

#: Version of the HDF5 layout written by :meth:`ResponseDataset.to_hdf5`. Bump it when the
#: layout changes; :meth:`ResponseDataset.from_hdf5` refuses any version not in
#: :data:`READABLE_VERSIONS`. Version 2 added the optional ``states`` group (behavioural
#: state signals); a version-1 file reads as a dataset without states.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


def write_hdf5(ds, path: str | os.PathLike) -> Path:
    """Write dataset ``ds`` to ``path`` atomically (temp file + ``os.replace``) -> the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            _write_dataset(f, ds)
            f.attrs["complete"] = True
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return path


def read_hdf5(path: str | os.PathLike, cls):
    """Read a file written by :func:`write_hdf5` into a ``cls`` (a ResponseDataset class)."""
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
        return _read_dataset(f, cls)


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


def _read_tree(node: h5py.Group | h5py.Dataset) -> Any:
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


def _read_table(group: h5py.Group) -> pd.DataFrame:
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


def _read_dataset(f: h5py.File, cls):
    stored, want = str(f.attrs.get("format", _file_format(cls))), _file_format(cls)
    if stored != want:
        raise ValueError(f"{f.filename} holds a {stored.split('.')[-1]}, not a {want.split('.')[-1]}: "
                         f"read it with {stored.split('.')[-1]}.from_hdf5")
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
