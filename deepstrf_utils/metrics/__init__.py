"""Prediction metrics and training losses for auditory neural responses.

Conventions (see docs/ARCHITECTURE.md):

- ``pred``: model prediction, ``(B, N, T)`` or ``(N, T)``.
- ``resp``: recording, ``(B, N, R, T)`` or ``(N, R, T)``; NaN marks a missing trial or
  padding. A bin where every repeat is NaN is padding and is dropped, jointly from
  ``pred`` and ``resp``, separately for each neuron.
- **Stimuli are concatenated along time before anything is computed**: every mean,
  variance, covariance, correlation and signal power below is taken over the valid bins
  of all B stimuli at once (``B * T`` bins minus padding), never per stimulus and then
  averaged. This matters: mixing a concatenated covariance with a per-stimulus signal
  power lets a perfect model score far above 1.
- Variances are population variances (divide by the number of valid bins, "power").
- Metrics are pure functions: torch in -> torch out (same device), numpy in -> numpy out.
  They are evaluation tools and are computed without gradients; train with the losses.
- ``reduction="none"`` (default) returns per-neuron values ``(N,)``; ``"mean"`` returns
  the mean over neurons, ignoring NaN, and logs a warning naming how many neurons were
  dropped. Every NaN a metric returns is announced by a logged warning saying why.

Metrics: :func:`cc_raw`, :func:`signal_power`, :func:`noise_power`, :func:`cc_norm`,
:func:`cc_max`, :func:`cc_max_from_sp`, :func:`mean_trial_correlation`, :func:`ttrc`,
:func:`fev`, and :func:`score` (all of them at once, sharing the work). Stimulus-specific
part of equal-length stimuli (TORCs): :func:`stimulus_specific`, :func:`cc_norm_specific`,
and the stimulus-blind :func:`mean_psth`.

Summaries: :func:`bootstrap_ci` (seeded percentile bootstrap of a median or mean);
:data:`MIN_CC_MAX`, the noise ceiling of a reliable neuron.

Losses (differentiable, NaN-masked): :func:`mse_loss`, :func:`nmse_loss`, :func:`poisson_loss`,
:func:`correlation_loss`, and :func:`get_loss`.

References: Sahani & Linden (2003) NIPS 15, signal power; Hsu, Borst & Theunissen (2004)
Network 15, CCmax; Schoppe et al. (2016) Front Comput Neurosci 10:10, CCnorm;
Pennington & David (2023) PLOS Comput Biol 19:e1011110, trial-to-trial normalisation.
"""

from ..submodules import lazy_submodules
from .bootstrap import bootstrap_ci
from .ceiling import MIN_CC_MAX
from .correlation import masked_corr
from .inputs import trial_average
from .specific import cc_norm_specific, mean_psth, stimulus_specific
from .losses import LOSSES, correlation_loss, get_loss, mse_loss, nmse_loss, poisson_loss
from .scores import (
    cc_max,
    cc_max_from_sp,
    cc_norm,
    cc_raw,
    fev,
    mean_trial_correlation,
    noise_power,
    score,
    signal_power,
    ttrc,
)

__all__ = [
    "MIN_CC_MAX",
    "cc_raw",
    "signal_power",
    "noise_power",
    "cc_norm",
    "cc_max",
    "cc_max_from_sp",
    "mean_trial_correlation",
    "ttrc",
    "fev",
    "score",
    "stimulus_specific",
    "cc_norm_specific",
    "mean_psth",
    "mse_loss",
    "nmse_loss",
    "poisson_loss",
    "correlation_loss",
    "get_loss",
    "LOSSES",
    "trial_average",
    "masked_corr",
    "bootstrap_ci",
]

__getattr__, __dir__ = lazy_submodules(__name__, __path__, globals())
del lazy_submodules
