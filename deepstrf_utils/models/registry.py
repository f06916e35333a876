"""The model registry: names -> classes, rebuilding from a config, parameter counts."""

from __future__ import annotations

from torch import nn

from .multisession import MultiSessionModel, StateGainModel
from .zoo import ConvNet2D, DNet, Linear, LinearNonlinear, NetworkReceptiveField, PopulationCNN, StateNet

__all__ = ["MODELS", "build_model", "count_parameters"]

MODELS: dict[str, type[nn.Module]] = {
    "Linear": Linear,
    "LinearNonlinear": LinearNonlinear,
    "NetworkReceptiveField": NetworkReceptiveField,
    "DNet": DNet,
    "ConvNet2D": ConvNet2D,
    "StateNet": StateNet,
    "PopulationCNN": PopulationCNN,
    "MultiSessionModel": MultiSessionModel,
    "StateGainModel": StateGainModel,
}


def build_model(name: str, **config) -> nn.Module:
    """Build ``MODELS[name](**config)``; ``build_model(type(m).__name__, **m.config)`` rebuilds ``m``."""
    if name not in MODELS:
        raise ValueError(f"expected a model name in {sorted(MODELS)}, got {name!r}")
    return MODELS[name](**config)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters of ``model`` (shared tensors counted once)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))
