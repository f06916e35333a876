"""The model registry: names -> classes, rebuilding from a config, parameter counts."""

from __future__ import annotations

from torch import nn

from .multisession import MultiSessionModel, StateGainModel
from .vision import VisualLinearNonlinear
from .vision_cnn import RecurrentVisualNet, SpatioTemporalCNN
from .zoo import MODELS

__all__ = ["MODELS", "COMPOSITE_MODELS", "VISUAL_MODELS", "build_model", "count_parameters"]

#: Models built around a zoo model, called with extra inputs (``session=``, ``state=``):
#: rebuilt by :func:`build_model` (and checkpoints) but not in ``MODELS``, whose models all
#: take a stimulus alone.
COMPOSITE_MODELS: dict[str, type[nn.Module]] = {
    "MultiSessionModel": MultiSessionModel,
    "StateGainModel": StateGainModel,
}

#: Models of movies ``(B, C, H, W, T)`` (``models/vision.py``, ``models/vision_cnn.py``): rebuilt by :func:`build_model`
#: (and checkpoints); not in ``MODELS``, whose models all take a spectrogram.
VISUAL_MODELS: dict[str, type[nn.Module]] = {
    "VisualLinearNonlinear": VisualLinearNonlinear,
    "SpatioTemporalCNN": SpatioTemporalCNN,
    "RecurrentVisualNet": RecurrentVisualNet,
}


def build_model(name: str, **config) -> nn.Module:
    """Build ``MODELS[name](**config)``; ``build_model(type(m).__name__, **m.config)`` rebuilds ``m``."""
    classes = {**MODELS, **COMPOSITE_MODELS, **VISUAL_MODELS}
    if name not in classes:
        raise ValueError(f"expected a model name in {sorted(classes)}, got {name!r}")
    return classes[name](**config)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters of ``model`` (shared tensors counted once)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))
