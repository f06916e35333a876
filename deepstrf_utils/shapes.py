"""The input checks shared by every prefilter, model and fitting function (ground floor:
imports only torch): the stimulus checks and the checks of scalar arguments.

A stimulus is a spectrogram batch ``(B, 1, F, T)``: B >= 1 stimuli, one input channel, F
bands, T >= 1 time bins, finite floating-point values; or a movie batch ``(B, C, H, W, T)``
(:func:`check_movie`: C channels, 1 for luminance, H x W pixels, T >= 1 frames; an image is
a one-frame movie) with the same rules. Nothing is cast: a model takes
stimuli of its parameters' dtype (float32 unless the model was converted, e.g. with
``model.double()``); a prefilter used on its own computes in the stimulus' dtype, float32 or
float64.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Union

import torch

__all__ = ["FLOAT_DTYPES", "check_stimulus", "check_movie", "check_int", "check_number"]

#: the dtypes the prefilters compute in (their FFT paths take float32 or float64)
FLOAT_DTYPES = (torch.float32, torch.float64)


def _dtype_text(dtypes) -> str:
    names = [str(d).replace("torch.", "") for d in dtypes]
    return names[0] if len(names) == 1 else " or ".join(names)


def check_stimulus(x, n_bands: Optional[int] = None,
                   dtype: Union[torch.dtype, Sequence[torch.dtype], None] = None) -> None:
    """Raise unless ``x`` is a finite floating-point tensor ``(B, 1, F, T)`` with B, T >= 1.

    n_bands: the expected F, or None to accept any. dtype: the dtype expected (a model's
    parameter dtype), a sequence of accepted dtypes, or None for :data:`FLOAT_DTYPES`.

    Raises:
        TypeError: ``x`` is not a tensor, or not of the expected dtype (the message names
            the dtype expected and how to convert: ``x.float()``).
        ValueError: a wrong shape (names ``(B, 1, F, T)``, ``F=n_bands`` when given, and the
            shape passed), an empty batch (B = 0), or a NaN / inf value (names the first
            stimulus, band and bin that hold one, and how many such values there are). A NaN
            bin would make every later bin of the output NaN, and through the FFT paths
            (AdapTrans, the fused STRF, DNet's integrator, the FFT 2D-CNN) every earlier one
            too. The finite check is one reduction over ``x`` (its sum); inside ``torch.func.vmap`` over the
            stimuli, where values cannot be read, it is skipped.
    """
    if not torch.is_tensor(x):
        raise TypeError(f"expected a torch.Tensor stimulus of shape (B, 1, F, T), got {type(x).__name__}")
    f_txt = f" with F={n_bands}" if n_bands is not None else ""
    if x.dim() != 4 or x.shape[1] != 1 or (n_bands is not None and x.shape[2] != n_bands) or x.shape[-1] < 1:
        raise ValueError(f"expected a stimulus of shape (B, 1, F, T){f_txt}, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"expected at least one stimulus (B >= 1) in a batch (B, 1, F, T){f_txt}, "
                         f"got an empty batch {tuple(x.shape)}")
    _check_values(x, dtype, "stimulus (B, 1, F, T)", ("stimulus", "band", "bin"), "bins")


def _check_values(x: torch.Tensor, dtype, what: str, axes: Sequence[str], fill: str) -> None:
    """TypeError unless ``x.dtype`` is accepted (``dtype``: one, a sequence, or None for
    :data:`FLOAT_DTYPES`); ValueError naming the first non-finite value by the names of its
    indices (``axes``, one per axis but the channel axis 1). A finite sum proves every value
    finite (a NaN or inf would make it NaN / inf): one reduction without a temporary, ~35x
    cheaper than ``isfinite(x).all()`` on a CPU (benchmarks/bench_stimulus_check.py); a sum
    that overflowed is settled by the exact test. Inside ``torch.func.vmap``, where values
    cannot be read, the finite check is skipped."""
    accepted = FLOAT_DTYPES if dtype is None else ((dtype,) if isinstance(dtype, torch.dtype) else tuple(dtype))
    if x.dtype not in accepted:
        hint = "x.float()" if torch.float32 in accepted else f"x.to({accepted[0]})"
        raise TypeError(f"expected a {what} of dtype {_dtype_text(accepted)}, got {x.dtype}: convert it with {hint}")
    total = x.detach().sum()
    try:
        ok = bool(torch.isfinite(total))
    except RuntimeError:  # torch.func.vmap over the stimuli: values cannot be read here
        return
    if not ok and not bool(torch.isfinite(x).all()):
        bad = ~torch.isfinite(x)
        first = tuple(int(v) for v in bad.nonzero()[0])
        kind = "NaN" if bool(torch.isnan(x[first])) else "inf"
        where = " at ".join([f"{axes[0]} {first[0]}", ", ".join(f"{a} {i}" for a, i in zip(axes[1:], first[2:]))])
        raise ValueError(
            f"expected a finite {what.split(' ')[0]} (no NaN / inf: NaN marks missing trials in responses only), "
            f"got {kind} in {where} ({int(bad.sum())} non-finite value(s) in the batch {tuple(x.shape)}); "
            f"fill or drop those {fill} first"
        )


def check_movie(x, frame_shape: Optional[Sequence[int]] = None,
                dtype: Union[torch.dtype, Sequence[torch.dtype], None] = None) -> None:
    """Raise unless ``x`` is a finite floating-point movie batch ``(B, C, H, W, T)`` with B, T >= 1.

    frame_shape: the expected ``(C, H, W)``, or None to accept any. dtype: as in
    :func:`check_stimulus` (a model passes its parameters' dtype).

    Raises:
        TypeError: ``x`` is not a tensor, or not of the expected dtype (the message says how
            to convert: ``x.float()``).
        ValueError: a wrong shape (names ``(B, C, H, W, T)``, the expected ``(C, H, W)`` when
            given, and the shape passed), an empty batch (B = 0), or a NaN / inf value (names
            the first movie, row, column and frame that hold one, and how many there are).
    """
    want = "(B, C, H, W, T)" + ("" if frame_shape is None else
                                " with (C, H, W)=({}, {}, {})".format(*(int(v) for v in frame_shape)))
    if not torch.is_tensor(x):
        raise TypeError(f"expected a torch.Tensor movie of shape {want}, got {type(x).__name__}")
    if x.dim() != 5 or x.shape[-1] < 1 or (frame_shape is not None and tuple(x.shape[1:4]) != tuple(frame_shape)):
        raise ValueError(f"expected a movie of shape {want}, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"expected at least one movie (B >= 1) in a batch {want}, got an empty batch {tuple(x.shape)}")
    _check_values(x, dtype, "movie (B, C, H, W, T)", ("movie", "row", "column", "frame"), "frames")


def check_int(value, name: str, minimum: Optional[int] = None, none_ok: bool = False):
    """``value`` as an ``int`` (None passes when ``none_ok``).

    TypeError unless an integer (a bool or a string is not; a float with an integral value,
    e.g. 3.0 from a JSON file, is); ValueError below ``minimum``. Messages name ``name``,
    the expected type and range, and the value passed.
    """
    if value is None and none_ok:
        return None
    kind = "a positive integer" if minimum == 1 else "an integer"
    want = (f"{name} >= {minimum} ({kind}" if minimum is not None else f"{name} ({kind}") + \
        (" or None)" if none_ok else ")")
    integral = isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value) == int(value))
    if isinstance(value, bool) or not integral:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            raise ValueError(f"expected {want}, got {value!r}")
        raise TypeError(f"expected {want}, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"expected {want}, got {value}")
    return value


def check_number(value, name: str, low: Optional[float] = None, high: Optional[float] = None,
                 low_open: bool = False, high_open: bool = False, none_ok: bool = False):
    """``value`` as a finite ``float`` in the interval from ``low`` to ``high`` (None passes
    when ``none_ok``); ``low_open`` / ``high_open`` exclude the bound itself.

    TypeError unless a real number (a bool or a string such as ``"1e-3"`` is not); ValueError
    for NaN, +-inf or a value outside the interval. Messages name ``name``, the expected
    range and the value passed.
    """
    if value is None and none_ok:
        return None
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    want = f"{name}{' ' + ' and '.join(parts) if parts else ''} (a finite number{' or None' if none_ok else ''})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected {want}, got {value!r} ({type(value).__name__})")
    v = float(value)
    if (not math.isfinite(v) or (low is not None and (v <= low if low_open else v < low))
            or (high is not None and (v >= high if high_open else v > high))):
        raise ValueError(f"expected {want}, got {value!r}")
    return v
