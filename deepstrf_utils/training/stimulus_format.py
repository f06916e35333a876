"""Does a model expect the stimuli of a dataset? :func:`check_stimulus_format`.

A model counts its lags and time constants in bins of its ``dt_ms``, and AdapTrans (or the
Willmore high-pass) sets each band's time constant from the band's centre frequency
``cf_hz``. Fitted to, or evaluated on, data of another bin width or other band centres,
those numbers silently mean something else (a 5-ms model on 10-ms data has every time
constant doubled). :func:`fit`, :func:`fit_single_units`, :func:`fit_sessions`,
:func:`predict` and :func:`evaluate` therefore compare the model's stimulus format with the
dataset's and raise a ValueError naming both; ``check_stimulus_format=False`` lets a
deliberate mismatch through. A visual model (``frame_shape`` ``(C, H, W)``) is compared with
a movie dataset's frames the same way, and a model of one kind of stimulus (movies or
spectrograms) is refused on data of the other.
"""
from __future__ import annotations

import numpy as np
from torch import nn

__all__ = ["check_stimulus_format", "model_stimulus_format", "CF_RTOL"]

#: relative tolerance on band centres (float32 storage, rounding through configs)
CF_RTOL = 1e-4


def model_stimulus_format(model: nn.Module) -> list[tuple[str, float | None, np.ndarray | None]]:
    """What ``model`` expects: ``(where, dt_ms, cf_hz)`` for the model itself (``cf_hz`` None)
    and for every sub-module with band centres (a prefilter: ``cf_hz`` (F,) and its ``dt_ms``)."""
    out = []
    dt = getattr(model, "dt_ms", None)
    if isinstance(dt, (int, float)):
        out.append(("the model", float(dt), None))
    for name, mod in model.named_modules():
        cf = getattr(mod, "cf_hz", None)
        if isinstance(cf, np.ndarray) and cf.ndim == 1:
            mdt = getattr(mod, "dt_ms", None)
            out.append((f"its {type(mod).__name__} ({name or 'model'})",
                        float(mdt) if isinstance(mdt, (int, float)) else None, cf))
    return out


def _bands(cf: np.ndarray) -> str:
    return np.array2string(np.asarray(cf, dtype=float), precision=0, separator=", ", threshold=8, edgeitems=3,
                           floatmode="fixed", max_line_width=200) + " Hz"


def check_stimulus_format(model: nn.Module, dataset, what: str = "dataset") -> None:
    """ValueError unless ``model``'s bin width and band centres are those of ``dataset``.

    ``dataset``: anything with ``dt_ms`` and ``cf_hz`` (a ResponseDataset); a value the
    dataset does not have is not compared. ``what`` names the dataset in the message
    ("training set", "validation set", "session 'rec1'", ...).
    """
    d_dt = getattr(dataset, "dt_ms", None)
    d_cf = getattr(dataset, "cf_hz", None)
    name = f"{what} '{getattr(dataset, 'name', '')}'" if getattr(dataset, "name", None) else what
    hint = " (or pass check_stimulus_format=False to use it anyway)"
    _check_frames(model, dataset, name, hint)
    for where, dt, cf in model_stimulus_format(model):
        if dt is not None and d_dt is not None and not np.isclose(dt, float(d_dt), rtol=1e-6, atol=0.0):
            raise ValueError(
                f"{where} was built for bins of dt_ms={dt:g} ms but the {name} has dt_ms={float(d_dt):g} ms: lags "
                f"and time constants would mean something else; build it with dt_ms=data.dt_ms{hint}")
        if cf is None or d_cf is None:
            continue
        d_cf = np.asarray(d_cf, dtype=float).reshape(-1)
        if cf.shape != d_cf.shape or not np.allclose(cf, d_cf, rtol=CF_RTOL, atol=0.0):
            raise ValueError(
                f"{where} has band centres cf_hz={_bands(cf)} but the {name} has cf_hz={_bands(d_cf)}: its "
                f"initial time constants are those of other frequencies; build it with "
                f"prefilter_kwargs={{'cf_hz': list(data.cf_hz)}}{hint}")


def _frames(obj):
    shape = getattr(obj, "frame_shape", None)
    return None if shape is None else tuple(int(v) for v in shape)


def _check_frames(model: nn.Module, dataset, name: str, hint: str) -> None:
    """ValueError when a visual model's ``frame_shape`` (C, H, W) is not the movie dataset's, or
    when a model of movies meets spectrograms (a dataset with ``cf_hz``) or the reverse."""
    m_frames, d_frames = _frames(model), _frames(dataset)
    kind = type(model).__name__
    if m_frames is not None and d_frames is not None and m_frames != d_frames:
        raise ValueError(f"the model ({kind}) was built for movie frames (C, H, W)={m_frames} but the {name} has "
                         f"frames {d_frames}: build it with frame_shape=data.frame_shape{hint}")
    if m_frames is not None and d_frames is None and getattr(dataset, "cf_hz", None) is not None:
        raise ValueError(f"the model ({kind}) takes movies (B, C, H, W, T) with (C, H, W)={m_frames} but the {name} "
                         f"holds spectrograms (F={len(dataset.cf_hz)} bands): use a model of spectrograms{hint}")
    if m_frames is None and d_frames is not None and getattr(model, "n_bands", None) is not None:
        raise ValueError(f"the model ({kind}) takes spectrograms (B, 1, F, T) with F={model.n_bands} but the {name} "
                         f"holds movies with frames (C, H, W)={d_frames}: use a visual model "
                         f"(models.VISUAL_MODELS){hint}")
