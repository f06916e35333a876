"""Checkpoints: :func:`save_checkpoint` stores everything needed to rebuild a model,
:func:`load_checkpoint` rebuilds it (strict: every stored tensor must match the model).

A checkpoint (format ``deepstrf_utils.checkpoint/2``) holds the model class, its ``config``,
the weights (``state_dict``), the caller's ``info``, the library and torch versions, and
SHA-256 digests of each weight tensor, of the class + config and of the info. Loading
recomputes the digests and refuses a file whose weights or config changed after it was
saved (a damaged disk or copy, or an edit), naming what differs; it also refuses
non-finite weights, wraps unreadable files, a class that does not take its config and
weights that do not fit their model in a ValueError naming the file, and warns when the
config lacks a key (today's default is then used) or the versions differ. Checkpoints of
format 1 (no digests) still load, with a warning that they cannot be verified.
"""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

from .. import __version__
from ..files import atomic_write, content_digest
from ..models import build_model
from ..plain import flatten, from_plain, to_plain
from .device import resolve_device

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "deepstrf_utils.checkpoint/2"
#: Formats :func:`load_checkpoint` reads: 1 (before digests and the library version) and 2.
READABLE_FORMATS = ("deepstrf_utils.checkpoint/1", CHECKPOINT_FORMAT)

__all__ = ["CHECKPOINT_FORMAT", "READABLE_FORMATS", "save_checkpoint", "load_checkpoint"]


def _digests(model_class: str, config, state_dict: dict, info) -> dict:
    return {"config": content_digest([model_class, config]), "info": content_digest(info),
            "weights": {k: content_digest(v) for k, v in state_dict.items()}}


def _nonfinite(state_dict: dict) -> list[str]:
    return [k for k, v in state_dict.items()
            if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **info) -> None:
    """Save weights, model class name, ``model.config`` and ``info`` (e.g. dataset, split_seed,
    seed, metrics) to ``path`` atomically (temp file + ``os.replace``), with the library and
    torch versions and the digests :func:`load_checkpoint` checks.

    ``load_checkpoint`` rebuilds the model from this file alone (via ``models.build_model``).
    Non-finite weights are saved with a warning (``load_checkpoint`` refuses them by default).
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ValueError(f"expected {type(model).__name__} to have a dict `config` attribute "
                         "(the constructor arguments) so that it can be rebuilt")
    model_class = type(model).__name__
    config = to_plain(config, tensors="keep")
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    info = to_plain(info, tensors="keep")
    bad = _nonfinite(state_dict)
    if bad:
        log.warning("saving %s with non-finite weights in %s (the fit diverged?); load_checkpoint refuses them "
                    "unless allow_nonfinite=True", path, ", ".join(bad))
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_class": model_class,
        "config": config,
        "state_dict": state_dict,
        "info": info,
        "torch_version": str(torch.__version__),
        "library_version": __version__,
        "digests": _digests(model_class, config, state_dict, info),
    }
    atomic_write(path, lambda fh: torch.save(payload, fh), binary=True)


def _read(path: str) -> dict:
    """The checkpoint's payload; ValueError naming the file when it is not one."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises OSError, EOFError, RuntimeError, UnpicklingError ...
        raise ValueError(f"could not read {path!r} as a deepstrf_utils checkpoint (truncated or corrupted?): "
                         f"{type(err).__name__}: {err}") from err
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt not in READABLE_FORMATS:
        raise ValueError(f"expected a deepstrf_utils checkpoint (format {' or '.join(READABLE_FORMATS)}) in "
                         f"{path!r}, found format {fmt!r}")
    missing = [k for k in ("model_class", "config", "state_dict", "info") if k not in payload]
    if missing or not isinstance(payload["config"], dict) or not isinstance(payload["state_dict"], dict):
        raise ValueError(f"expected a checkpoint with model_class, config (dict), state_dict (dict) and info in "
                         f"{path!r}; missing or malformed: {missing or ['config / state_dict']}")
    return payload


def _verify(payload: dict, path: str) -> None:
    """Compare the stored digests with the payload's content; ValueError naming what changed."""
    stored = payload.get("digests")
    if not isinstance(stored, dict) or not isinstance(stored.get("weights"), dict):
        raise ValueError(f"{path!r}: expected the digests of a {CHECKPOINT_FORMAT} checkpoint, found none "
                         "(the file was edited or damaged)")
    now = _digests(payload["model_class"], payload["config"], payload["state_dict"], payload["info"])
    weights = sorted(k for k in set(now["weights"]) | set(stored["weights"])
                     if now["weights"].get(k) != stored["weights"].get(k))
    what = []
    if weights:
        what.append(f"weights {', '.join(weights[:6])}{' ...' if len(weights) > 6 else ''}")
    if now["config"] != stored.get("config"):
        what.append(f"the model class and config ({payload['model_class']}, {payload['config']})")
    if now["info"] != stored.get("info"):
        what.append("the info")
    if what:
        raise ValueError(f"{path!r}: expected the checkpoint's content to match the SHA-256 digests saved with it; "
                         f"these differ: {'; '.join(what)}. The file was damaged or edited after it was saved: "
                         "restore it or fit the model again")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", allow_nonfinite: bool = False):
    """Rebuild a model saved with :func:`save_checkpoint` -> ``(model, info)`` (model in eval mode).

    Args:
        path: the checkpoint file. device: where to put the model.
        allow_nonfinite: load weights holding NaN or inf (refused by default).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a readable checkpoint (truncated, corrupted, other format); weights,
            class or config that no longer match their digests; non-finite weights; a class
            that does not take the stored config; weights that do not fit the model.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"expected a checkpoint file at {path!r}")
    payload = _read(path)
    name = payload["model_class"]
    if payload["format"] == CHECKPOINT_FORMAT:
        _verify(payload, path)
    else:
        log.warning("%s: checkpoint format %s has no digests; its weights and config cannot be verified "
                    "(save it again to add them)", path, payload["format"])
    lib, tv = payload.get("library_version"), payload.get("torch_version")
    if (lib is not None and lib != __version__) or tv != str(torch.__version__):
        log.warning("%s was saved by deepstrf_utils %s with torch %s; loading with deepstrf_utils %s, torch %s",
                    path, lib or "(not recorded)", tv, __version__, torch.__version__)
    bad = _nonfinite(payload["state_dict"])
    if bad and not allow_nonfinite:
        raise ValueError(f"{path!r}: expected finite weights, found NaN or inf in {', '.join(bad)} (the fit "
                         "diverged?); pass allow_nonfinite=True to load them anyway")
    try:
        model = build_model(name, **payload["config"])
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{path!r}: could not rebuild a {name} from the stored config "
                         f"({type(err).__name__}: {err}); the class does not match its config") from err
    used = flatten(to_plain(model.config))
    lacking = sorted(set(used) - set(flatten(to_plain(payload["config"]))))
    if lacking:
        log.warning("%s: the stored %s config lacks %s; today's defaults were used: %s", path, name,
                    ", ".join(lacking), ", ".join(f"{k}={used[k]!r}" for k in lacking))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path!r}: expected weights that fit a {name} built from the stored config, got "
                         f"others: {err}") from err
    model.to(resolve_device(device)).eval()
    return model, from_plain(payload["info"])
