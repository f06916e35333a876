"""Training, prediction, evaluation and checkpoints.

Default fit (issue 11): full-batch L-BFGS with early stopping on the validation loss (Linear
/ LN models start from the closed-form ridge STRF, :mod:`.warmstart`). The published
protocol (Rançon et al. 2024, upstream scripts) is ``fit(..., **ADAMW_FIT_KWARGS)`` (or any
explicit AdamW setting): mean-squared error to the trial-averaged response, AdamW with lr
1e-3 (weight decay on weights only, not on time constants / gains: :func:`no_decay_names`),
early stopping on the validation loss with patience 50 and the best weights restored.
Options: LR-on-plateau, gradient clipping, other losses.

- :mod:`.fitting` -- :func:`fit` trains one model (a single unit or a population model with N
  outputs) and returns a :class:`FitResult`;
- :mod:`.stacked` -- :func:`fit_single_units` trains N independent single-unit models
  *together* (``torch.func.vmap`` over stacked parameters; the result equals N separate
  :func:`fit` calls with the same seeds and batch order);
- :mod:`.two_stage` -- :func:`fit_two_stage` (Pennington & David 2023: output nonlinearity
  frozen, then everything at a lower rate), :data:`FIT_PROCEDURES` / :func:`get_fit_procedure`;
- :mod:`.optim` -- the stacked AdamW, per-unit clipping, LR-on-plateau, :func:`no_decay_names`;
- :mod:`.prediction` -- :func:`predict`, :func:`predict_units`, :func:`evaluate` (per-neuron
  CCraw / CCnorm / CCmax), :func:`average_over_seeds`;
- :mod:`.sessions` -- :func:`fit_sessions` (several recording sessions, shared core, state
  inputs), :func:`fit_new_session` (frozen core, new readout), per-session evaluation;
- :mod:`.checkpoints` -- :func:`save_checkpoint` / :func:`load_checkpoint`;
- :mod:`.export` -- :func:`model_card`, :func:`predictions_to_nwb` (predictions beside the
  recording in an NWB file);
- :mod:`.warmstart` -- the closed-form ridge STRF start of Linear / LN models;
- :mod:`.stopping` -- early stopping, the best weights, what a Ctrl-C keeps (``err.fit_result``);
- :mod:`.objective` -- the L-BFGS full-batch objective, exact over chunks for every named loss;
- :mod:`.stimulus_format` -- :func:`check_stimulus_format`: the model's bin width and band
  centres against the data's (fit, predict and evaluate refuse a mismatch);
- :mod:`.chunks` -- recurrent models trained on chunks of their sequences with burn-in
  (``fit(..., train_chunk=(L, W))``, the default for StateNet);
- :mod:`.packing` -- a dataset collated once on the training device; :mod:`.device` -- seeding.

Multi-configuration, multi-seed runs (one tidy CSV: ``run_configs``, ``summary_table``)
live one floor up, in :mod:`deepstrf_utils.runs.runner`; nothing here imports it.

Shapes: B stimuli, F bands, T time bins, N neurons, R repeats, U stacked single units.
"""
from .checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from .device import resolve_device, seed_everything
from .prediction import average_over_seeds, evaluate, predict, predict_units
from .export import model_card, predictions_to_nwb
from .fitting import LBFGS_ITERATIONS_PER_EPOCH, ADAMW_FIT_KWARGS, FitResult, fit
from .stimulus_format import check_stimulus_format
from .optim import PREFILTER_PREFIX, no_decay_names
from .two_stage import FIT_PROCEDURES, fit_two_stage, get_fit_procedure
from .stacked import fit_single_units, stacking_pays_off
from .sessions import SessionFitResult, evaluate_sessions, fit_new_session, fit_sessions, predict_sessions
from ..submodules import lazy_submodules

__all__ = [
    "FitResult",
    "fit",
    "check_stimulus_format",
    "ADAMW_FIT_KWARGS",
    "LBFGS_ITERATIONS_PER_EPOCH",
    "fit_single_units",
    "fit_two_stage",
    "FIT_PROCEDURES",
    "get_fit_procedure",
    "fit_sessions",
    "fit_new_session",
    "predict_sessions",
    "evaluate_sessions",
    "SessionFitResult",
    "stacking_pays_off",
    "no_decay_names",
    "predict",
    "predict_units",
    "evaluate",
    "save_checkpoint",
    "load_checkpoint",
    "seed_everything",
    "resolve_device",
    "average_over_seeds",
    "model_card",
    "predictions_to_nwb",
    "CHECKPOINT_FORMAT",
    "PREFILTER_PREFIX",
]

__getattr__, __dir__ = lazy_submodules(__name__, __path__, globals())
del lazy_submodules
