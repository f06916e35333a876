"""Checkpoints: :func:`save_checkpoint` stores everything needed to rebuild a model,
:func:`load_checkpoint` rebuilds it (strict: every stored tensor must match the model).
"""
from __future__ import annotations

import os
import tempfile

import torch
from torch import nn

from ..models import build_model
from ..plain import from_plain, to_plain
from .device import resolve_device

CHECKPOINT_FORMAT = "deepstrf_utils.checkpoint/1"

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **info) -> None:
    """Save weights, model class name, ``model.config`` and ``info`` (e.g. dataset, split_seed,
    seed, metrics) to ``path`` atomically (temp file + ``os.replace``).

    ``load_checkpoint`` rebuilds the model from this file alone (via ``models.build_model``).
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ValueError(f"expected {type(model).__name__} to have a dict `config` attribute "
                         "(the constructor arguments) so that it can be rebuilt")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_class": type(model).__name__,
        "config": to_plain(config, tensors="keep"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "info": to_plain(info, tensors="keep"),
        "torch_version": str(torch.__version__),
    }
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_ckpt_", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild a model saved with :func:`save_checkpoint` -> ``(model, info)`` (model in eval mode)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"expected a checkpoint file at {path!r}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"expected a deepstrf_utils checkpoint ({CHECKPOINT_FORMAT}) in {path!r}")
    model = build_model(payload["model_class"], **payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.to(resolve_device(device)).eval()
    return model, from_plain(payload["info"])
