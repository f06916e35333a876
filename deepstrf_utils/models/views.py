"""Views of a model: one output of a population model seen as a single-unit model."""
from __future__ import annotations

from torch import nn

__all__ = ["UnitView"]


class UnitView(nn.Module):
    """Output ``index`` of a population model seen as a single-unit model.

    forward: x ``(B, 1, F, T)`` -> ``(B, 1, T)`` (= ``model(x)[:, index:index + 1]``); exposes
    the wrapped model's ``prefilter``, ``n_bands``, ``dt_ms`` (and ``n_lags`` if any), so
    that :func:`~deepstrf_utils.interpret.strfs.gradient_strf` works on it.
    """

    def __init__(self, model: nn.Module, index: int):
        super().__init__()
        self.model = model
        self.index = int(index)
        for name in ("prefilter", "n_bands", "dt_ms", "n_lags", "config"):
            if hasattr(model, name) and name != "prefilter":
                setattr(self, name, getattr(model, name))

    @property
    def prefilter(self):
        """The wrapped model's prefilter module."""
        return self.model.prefilter

    def forward(self, x):
        """x ``(B, 1, F, T)`` -> ``(B, 1, T)``."""
        return self.model(x)[:, self.index:self.index + 1]

    def receptive_field(self) -> dict:
        """The wrapped model's."""
        return self.model.receptive_field()
