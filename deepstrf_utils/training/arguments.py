"""Up-front checks of what is passed to :func:`~.fitting.fit`, :func:`~.stacked.fit_single_units`,
:func:`~.sessions.fit_sessions` and :func:`~.prediction.evaluate`, before any work starts.

* :func:`check_fit_call`: every argument of a fitting function by name (its ``locals()`` at
  entry): numbers of the right type and range (TypeError / ValueError naming the argument,
  the expected type and range, and the value), the model, the datasets, the device.
* :func:`check_train_val`: a training and a validation set that belong together: not the
  same stimuli (the same object, or every validation stimulus also a training one: refused;
  some shared: a warning naming them), the same neurons (N and ids), bands (F) and bin width
  (``dt_ms``), also the model's.
* :func:`check_dataset`, :func:`check_predictions`: the arguments of :func:`evaluate`.

Shapes: B stimuli, F bands, T time bins, N neurons, R repeats.
"""
from __future__ import annotations

import hashlib
import logging
import numbers
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..shapes import check_int, check_number
from .device import resolve_device

logger = logging.getLogger(__name__)

__all__ = ["check_fit_call", "check_train_val", "check_dataset", "check_predictions"]


def _bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"expected {name} to be True or False, got {value!r} ({type(value).__name__})")


def _bool_or_none(value, name):
    if value is not None:
        _bool(value, name)


def _patience(value, name):
    if not (isinstance(value, str) and value == "auto"):
        check_int(value, name, 1, none_ok=True)


def _str_or_none(value, name):
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected {name} to be a name (str) or None, got {value!r} ({type(value).__name__})")


def _dict_or_none(value, name):
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"expected {name} to be a dict or None, got {value!r} ({type(value).__name__})")


def _loss(value, name):
    if not (isinstance(value, str) or callable(value)):
        raise TypeError(f"expected {name} to be a loss name such as 'mse' or a callable, got {value!r}")


def _seeds(value, name):
    if value is None or isinstance(value, numbers.Integral) and not isinstance(value, bool):
        check_int(value, name, none_ok=True)
        return
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"expected {name} to be an int, a sequence of ints (one per unit) or None, got {value!r}")
    for i, s in enumerate(value):
        check_int(s, f"{name}[{i}]")


def _positive(none_ok):
    return lambda v, n: check_number(v, n, 0.0, low_open=True, none_ok=none_ok)


def _count(none_ok):
    return lambda v, n: check_int(v, n, 1, none_ok=none_ok)


#: the numeric and flag arguments of the fitting functions: name -> check(value, name).
#: None is accepted where the function resolves it to a default ("auto" for patience).
_RULES: dict[str, Callable] = {
    "lr": _positive(True),
    "prefilter_lr": _positive(True),
    "lr_stage2": _positive(False),
    "clip_grad": _positive(True),
    "weight_decay": lambda v, n: check_number(v, n, 0.0, none_ok=True),
    "min_delta": lambda v, n: check_number(v, n, 0.0),
    "rel_tol": lambda v, n: check_number(v, n, 0.0, 1.0, high_open=True, none_ok=True),
    "compact_below": lambda v, n: check_number(v, n, 0.0, 1.0, low_open=True),
    "max_epochs": _count(True),
    "batch_size": _count(True),
    "max_stack": _count(True),
    "patience": _patience,
    "seed": lambda v, n: check_int(v, n),
    "seeds": _seeds,
    "progress": _bool,
    "init_output": _bool,
    "check_stimulus_format": _bool,
    "keep_start": _bool,
    "refine_readouts": _bool_or_none,
    "batched": _bool_or_none,
    "scheduler": _str_or_none,
    "scheduler_kwargs": _dict_or_none,
    "loss": _loss,
}
#: fit_sessions resolves no None / "auto": its numbers are required
_REQUIRED = {"fit_sessions": {"lr": _positive(False), "max_epochs": _count(False), "batch_size": _count(False),
                              "weight_decay": lambda v, n: check_number(v, n, 0.0)}}


def check_dataset(data, what: str = "dataset") -> None:
    """TypeError unless ``data`` is a dataset of ``(stim (1, F, T), resp (N, R, T))`` items (a
    ``ResponseDataset``); ValueError when it is empty. The message names ``what``."""
    want = f"expected {what} as a ResponseDataset (items (stim (1, F, T), resp (N, R, T)))"
    if data is None or isinstance(data, (str, bytes, dict)) or not (hasattr(data, "__len__")
                                                                    and hasattr(data, "__getitem__")):
        raise TypeError(f"{want}, got {data!r}"[:300])
    if len(data) == 0:
        raise ValueError(f"{want} with at least one stimulus, got an empty one")
    if hasattr(data, "stimuli"):  # a ResponseDataset: its items were checked when it was built
        return
    try:
        item = data[0]
    except Exception as err:  # noqa: BLE001 - any failure to index means: not a dataset of items
        raise TypeError(f"{want}, got a {type(data).__name__} whose item 0 cannot be read "
                        f"({type(err).__name__}: {err})") from None
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise TypeError(f"{want}, got a {type(data).__name__} whose item 0 is a {type(item).__name__}")


def check_fit_call(arguments: dict, function: str = "fit") -> None:
    """Check the arguments of a fitting function (its ``locals()`` on entry) before any work.

    The numbers and flags (:data:`_RULES`; TypeError for a wrong type, e.g. ``lr="1e-3"``,
    ValueError for a value out of range, both naming the argument and the expected type and
    range), the model (a float32 ``nn.Module``; ``model_fn``: a callable), ``train`` and
    ``val`` (:func:`check_dataset`, :func:`check_train_val`; fit_sessions checks each of its
    sessions itself), and ``device`` (:func:`~.device.resolve_device`: a CUDA device on a
    machine or torch build without CUDA is refused here, with how to get a CUDA build).
    """
    required = _REQUIRED.get(function, {})
    for name, value in arguments.items():
        rule = required.get(name, _RULES.get(name))
        if rule is not None:
            rule(value, name)
    if function == "fit_sessions" and isinstance(arguments.get("patience"), str):
        raise TypeError(f"expected patience to be a positive integer or None for fit_sessions, "
                        f"got {arguments['patience']!r}")
    if "model" in arguments:
        model = arguments["model"]
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected model to be a torch.nn.Module (e.g. build_model('LinearNonlinear', ...)), "
                            f"got {model!r}"[:300])
        other = sorted({str(p.dtype) for p in model.parameters() if p.dtype != torch.float32})
        if other:
            raise TypeError(f"expected a float32 model ({function} trains on float32 data), got parameters of "
                            f"dtype {', '.join(other)}: convert it with model.float()")
    model_fn = arguments.get("model_fn", len)
    if not callable(model_fn) or isinstance(model_fn, nn.Module):
        raise TypeError(f"expected model_fn to be a callable seed -> nn.Module (e.g. lambda seed: "
                        f"build_model(...)), got {type(model_fn).__name__}")
    if function == "fit_sessions":
        if arguments.get("train") is None:
            raise TypeError("expected train as a SessionSet, a dict {session id: ResponseDataset} or a "
                            "ResponseDataset, got None")
    else:
        if "train" in arguments:
            check_dataset(arguments["train"], "train (the training set)")
        if arguments.get("val") is not None:
            check_dataset(arguments["val"], "val (the validation set)")
        if "train" in arguments:
            check_train_val(arguments["train"], arguments.get("val"), arguments.get("model"))
    if "device" in arguments:
        resolve_device(arguments["device"])


def _name(data) -> str:
    return str(getattr(data, "name", type(data).__name__))


def _digest(stimulus) -> str:
    a = np.ascontiguousarray(np.asarray(stimulus, dtype=np.float32))
    return hashlib.sha1(repr(a.shape).encode() + a.tobytes()).hexdigest()


def _shared_stimuli(train, val) -> list[str]:
    """Names of the validation stimuli whose spectrogram is also a training stimulus'."""
    seen = {_digest(s) for s in train.stimuli}
    names = getattr(val, "stim_names", None) or [f"stimulus {i}" for i in range(len(val.stimuli))]
    return [str(n) for n, s in zip(names, val.stimuli) if _digest(s) in seen]


def check_train_val(train, val, model: nn.Module | None = None) -> None:
    """Check that ``val`` is a validation set of ``train`` (and both suit ``model``), up front.

    ValueError (naming both values) when: ``val`` is ``train``, or every validation stimulus
    is also a training stimulus (early stopping would follow the training fit); the two
    differ in the number of neurons N, their ids (validation losses would be matched to
    other neurons), the bands F or the bin width ``dt_ms``; the model's ``n_bands`` differs
    from the training set's (the model's bin width and band centres against the data's:
    :func:`~.stimulus_format.check_stimulus_format`, which the fitting functions call unless
    told not to). Some validation stimuli shared with the training set: a warning naming them.
    Either may be None (nothing to compare).
    """
    if train is not None and model is not None:
        for attr, what in (("n_bands", "bands F"),):
            have, want = getattr(model, attr, None), getattr(train, attr, None)
            if have is not None and want is not None and float(have) != float(want):
                raise ValueError(f"expected a model with the training set's {what} = {want} ('{_name(train)}'), "
                                 f"got a {type(model).__name__} with {attr}={have}: build it with "
                                 f"{attr}=dataset.{attr}")
    if train is None or val is None:
        return
    if val is train:
        raise ValueError(f"expected a validation set other than the training set, got the same dataset "
                         f"'{_name(train)}' twice: early stopping would follow the training fit; pass "
                         "train, val, test = dataset.split(seed) or val=None")
    n_tr, n_va = getattr(train, "n_neurons", None), getattr(val, "n_neurons", None)
    if n_tr is not None and n_va is not None and int(n_tr) != int(n_va):
        raise ValueError(f"expected the validation set to have the training set's N={n_tr} neurons "
                         f"('{_name(train)}'), got N={n_va} ('{_name(val)}')")
    ids_tr, ids_va = getattr(train, "neuron_ids", None), getattr(val, "neuron_ids", None)
    if ids_tr is not None and ids_va is not None:
        ids_tr, ids_va = [str(v) for v in ids_tr], [str(v) for v in ids_va]
        if ids_tr != ids_va:
            i = next(k for k, (a, b) in enumerate(zip(ids_tr, ids_va)) if a != b)
            raise ValueError(f"expected the validation set's neurons in the training set's order, got neuron "
                             f"{ids_va[i]!r} at position {i} where the training set has {ids_tr[i]!r}: "
                             "select the same neurons in both (dataset.select(ids))")
    for attr, what in (("n_bands", "bands F"), ("dt_ms", "bin width dt_ms")):
        a, b = getattr(train, attr, None), getattr(val, attr, None)
        if a is not None and b is not None and float(a) != float(b):
            raise ValueError(f"expected the validation set to have the training set's {what} = {a} "
                             f"('{_name(train)}'), got {b} ('{_name(val)}')")
    if hasattr(train, "stimuli") and hasattr(val, "stimuli"):
        shared = _shared_stimuli(train, val)
        if shared and len(shared) == len(val.stimuli):
            raise ValueError(f"expected validation stimuli that are not training stimuli, got all "
                             f"{len(shared)} validation stimuli of '{_name(val)}' in the training set "
                             f"'{_name(train)}' too: early stopping would follow the training fit; pass "
                             "train, val, test = dataset.split(seed) or val=None")
        if shared:
            logger.warning("%d of %d validation stimuli of '%s' are also training stimuli (%s): their "
                           "validation loss measures the training fit, and early stopping may stop late",
                           len(shared), len(val.stimuli), _name(val), ", ".join(shared[:5])
                           + (", ..." if len(shared) > 5 else ""))


def check_predictions(predictions, dataset) -> list[np.ndarray]:
    """``predictions`` for ``dataset``: one ``(N, T_i)`` array per stimulus, T_i the stimulus'
    bins -> float32 arrays. ValueError naming the first one of the wrong count or shape."""
    if isinstance(predictions, (str, bytes, dict)) or not hasattr(predictions, "__len__"):
        raise TypeError(f"expected predictions as a list of (N, T_i) arrays, one per stimulus, got "
                        f"{type(predictions).__name__}")
    if len(predictions) != len(dataset):
        raise ValueError(f"expected {len(dataset)} predictions (one per stimulus), got {len(predictions)}")
    out = []
    for i, p in enumerate(predictions):
        a = np.asarray(p, dtype=np.float32)
        t = int(np.shape(dataset[i][0])[-1])
        if a.ndim != 2 or a.shape[1] != t:
            raise ValueError(f"expected prediction {i} of shape (N, T) with T={t} (the bins of stimulus {i}), "
                             f"got {a.shape}")
        out.append(a)
    return out
