import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from deepstrf_utils.plain import from_plain, to_plain


def test_to_plain_converts_numpy_tuples_and_tensors_to_builtins():
    value = {"a": (1, np.int64(2)), "b": np.array([0.5, 1.5]), 3: torch.tensor([1.0, 2.0]), "c": None}
    assert to_plain(value) == {"a": [1, 2], "b": [0.5, 1.5], "3": [1.0, 2.0], "c": None}


def test_to_plain_keeps_tensors_and_round_trips_dataframes():
    df = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    out = to_plain({"t": torch.ones(2, requires_grad=True), "df": df}, tensors="keep")
    assert isinstance(out["t"], torch.Tensor) and not out["t"].requires_grad
    back = from_plain(out)
    pd.testing.assert_frame_equal(back["df"], df)


def test_to_plain_dataclass_and_bad_values():
    @dataclasses.dataclass
    class D:
        a: int
        b: tuple

    assert to_plain(D(1, (2, 3))) == {"a": 1, "b": [2, 3]}
    with pytest.raises(ValueError, match="got object"):
        to_plain(object())
    with pytest.raises(ValueError, match="tensors="):
        to_plain(1, tensors="numpy")


def test_to_plain_turns_numpy_float_subclasses_into_builtins():
    # np.float64 is a subclass of float: it must still become a plain float, or
    # torch.load(weights_only=True) refuses the checkpoint that holds it
    out = to_plain({"x": np.float64(0.5), "y": [np.float64(1.5)]})
    assert type(out["x"]) is float and type(out["y"][0]) is float
