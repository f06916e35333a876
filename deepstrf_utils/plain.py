"""Plain Python values for configs (JSON) and checkpoints (``torch.load(weights_only=True)``).

One conversion for the whole package: :func:`to_plain` turns numpy arrays and scalars,
tuples, tensors, DataFrames and dataclasses into builtins (dicts, lists, numbers,
strings, None), and :func:`from_plain` restores the DataFrames it marked. Nothing else in
the package converts values by hand.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["to_plain", "from_plain", "flatten"]

_DATAFRAME_KEY = "__dataframe__"


def to_plain(value: Any, tensors: str = "list") -> Any:
    """Recursively convert ``value`` to builtins.

    tensors: ``"list"`` turns tensors into (nested) lists, as JSON needs; ``"keep"`` keeps
    them as detached CPU tensors, as a checkpoint may. DataFrames become
    ``{"__dataframe__": {column: list}}`` and dataclasses a dict of their fields.
    Anything else raises ``ValueError`` naming the type.
    """
    if tensors not in ("list", "keep"):
        raise ValueError(f"expected tensors='list' or 'keep', got {tensors!r}")
    import torch  # local: keeps this ground-floor module importable without torch

    if isinstance(value, np.generic):  # before the builtins: np.float64 is a float subclass
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): to_plain(v, tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, tensors) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value if tensors == "keep" else value.numpy().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(value, pd.DataFrame):
        return {_DATAFRAME_KEY: {str(c): to_plain(value[c].tolist(), tensors) for c in value.columns}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name), tensors) for f in dataclasses.fields(value)}
    raise ValueError(
        "expected numbers, strings, None, lists, tuples, dicts, arrays, tensors, DataFrames or "
        f"dataclasses, got {type(value).__name__}"
    )


def from_plain(value: Any) -> Any:
    """Inverse of :func:`to_plain` for the DataFrames it marked; everything else unchanged."""
    if isinstance(value, dict):
        if set(value) == {_DATAFRAME_KEY}:
            import pandas as pd

            return pd.DataFrame(value[_DATAFRAME_KEY])
        return {k: from_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_plain(v) for v in value]
    return value


def flatten(value: Any, prefix: str = "") -> dict:
    """Nested dicts -> one dict with dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``);
    anything that is not a dict is a leaf."""
    if not isinstance(value, dict):
        return {prefix[:-1]: value} if prefix else {"": value}
    out = {}
    for key, item in value.items():
        out.update(flatten(item, f"{prefix}{key}."))
    return out
