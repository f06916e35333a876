"""A fitted model's card, and its predictions stored beside the recording in an NWB file.

- :func:`model_card` -> dict (JSON-able): the model class, its ``config`` (enough for
  ``build_model`` to rebuild it), parameter count, library and torch versions, the dataset it
  predicts (name, bins, bands, neurons), and where given the fit summary and the score summary.
- :func:`predictions_to_nwb` writes the model's predictions of a dataset read from (or
  written to) an NWB file into that file (:func:`~deepstrf_utils.datasets.nwb_write.add_predictions`:
  processing module ``deepstrf_predictions``, the card as the series' comments).

Shapes: B stimuli, N neurons, T_i bins of stimulus i.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import __version__
from ..datasets.nwb_write import add_predictions
from ..models import count_parameters
from ..plain import to_plain
from .prediction import predict

__all__ = ["model_card", "predictions_to_nwb"]


def model_card(model: nn.Module, dataset=None, scores: Optional[pd.DataFrame] = None, fit_result=None,
               **extra) -> dict:
    """What a reader of stored predictions needs to know about the model (a JSON-able dict).

    ``scores``: per-neuron table from ``evaluate`` (its medians are summarised); ``fit_result``:
    a ``FitResult`` (its one-line summary); ``extra``: any further fields (e.g. ``seed``).
    """
    card = {"model": type(model).__name__, "config": to_plain(getattr(model, "config", {})),
            "n_parameters": count_parameters(model), "library": "deepstrf_utils", "library_version": __version__,
            "torch_version": str(torch.__version__)}
    if dataset is not None:
        card["dataset"] = {"name": dataset.name, "dt_ms": float(dataset.dt_ms), "n_bands": int(dataset.n_bands),
                           "n_neurons": int(dataset.n_neurons), "n_stimuli": int(dataset.n_stimuli)}
    if fit_result is not None:
        card["fit"] = fit_result.summary() if hasattr(fit_result, "summary") else str(fit_result)
    if scores is not None:
        card["scores_median"] = {c: float(np.nanmedian(scores[c])) if scores[c].notna().any() else None
                                 for c in scores.columns if c != "neuron" and pd.api.types.is_numeric_dtype(scores[c])}
    card.update(to_plain(extra))
    return card


def predictions_to_nwb(path, model: nn.Module, dataset, name: Optional[str] = None,
                       predictions: Optional[Sequence[np.ndarray]] = None, scores: Optional[pd.DataFrame] = None,
                       fit_result=None, device=None, **card_fields):
    """Store ``model``'s predictions of ``dataset`` (any subset of the file's stimuli) in the NWB
    file ``path`` that holds the recording, with its :func:`model_card`.

    ``predictions`` (B ``(N, T_i)`` arrays) skips the forward pass (e.g. a state-gain model's
    output from ``predict_sessions``); the presentation table, identity column and padding are
    those the dataset was read with (``dataset.meta["nwb"]``; to_nwb's defaults otherwise).
    Returns the path.
    """
    preds = predict(model, dataset, device) if predictions is None else list(predictions)
    opts = dataset.meta.get("nwb", {})
    card = model_card(model, dataset, scores=scores, fit_result=fit_result, **card_fields)
    return add_predictions(path, name or type(model).__name__, preds, dataset.stim_names, dataset.neuron_ids,
                           dataset.dt_ms, card=card, scores=scores, intervals=opts.get("intervals", "trials"),
                           stimulus_column=opts.get("stimulus_column", "stimulus"),
                           pad_before_ms=opts.get("pad_before_ms", 0.0))
