"""deepstrf_utils: deep models of auditory neural responses with the AdapTrans prefilter.

One module per concept (see docs/ARCHITECTURE.md):

- :mod:`deepstrf_utils.adaptrans` -- the AdapTrans ON/OFF prefilter and the Willmore baseline
- :mod:`deepstrf_utils.models` -- L, LN, NRF, DNet, 2D-CNN, StateNet, population CNN, ridge STRF
- :mod:`deepstrf_utils.metrics` -- CCraw, CCnorm, CCmax, signal power, losses
- :mod:`deepstrf_utils.datasets` -- one canonical dataset type and its loaders
- :mod:`deepstrf_utils.training` -- fitting, batched single-unit fitting, evaluation, checkpoints
- :mod:`deepstrf_utils.runner` -- configurations x seeds into one resumable results table
- :mod:`deepstrf_utils.pretrained`, :mod:`deepstrf_utils.runner_export` -- pretrained folders (config,
  weights, model card), written from a model or from a finished runner configuration
- :mod:`deepstrf_utils.comparison` -- paired model comparison (bootstrap and hierarchical intervals,
  Wilcoxon, Holm)
- :mod:`deepstrf_utils.jobs`, :mod:`deepstrf_utils.executors`, :mod:`deepstrf_utils.sweep` -- the runner's
  jobs and their files, where they run (in process, submitit subprocesses, Slurm), cost plan and sweeps
- :mod:`deepstrf_utils.strfs` -- weight and gradient STRFs
- :mod:`deepstrf_utils.insilico` -- in-silico ON/OFF experiments (paper Figure 1 and beyond)
- :mod:`deepstrf_utils.profiles`, :mod:`deepstrf_utils.session`, :mod:`deepstrf_utils.published`
  -- run profiles, notebook set-up and fitted-model lookup, the published numbers
- :mod:`deepstrf_utils.plotting` -- panel helpers, the figures' style, ``save_figure`` (PNG, PDF, caption)
- :mod:`deepstrf_utils.figures`, :mod:`deepstrf_utils.figures_strfs`, :mod:`deepstrf_utils.figures_interpret`,
  :mod:`deepstrf_utils.figures_results` -- the notebooks' figures, each with its caption
- vision (movies ``(B, C, H, W, T)``): ``datasets.MovieDataset``, ``models.visual``, :mod:`deepstrf_utils.visual_stimuli`,
  :mod:`deepstrf_utils.vision_interpret`, :mod:`deepstrf_utils.vision_runs`, :mod:`deepstrf_utils.vision_figures`

Submodules are imported on first use, so ``import deepstrf_utils`` stays cheap.
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "adaptrans", "models", "metrics", "datasets", "training", "strfs", "insilico",
    "plotting", "stimuli", "spectrogram", "spectral", "plain", "profiles", "session",
    "published", "groundtruth", "runner", "jobs", "executors", "sweep", "figures", "shapes",
    "figures_strfs", "figures_interpret", "figures_results", "pretrained", "runner_export", "comparison",
    "visual_stimuli", "vision_interpret", "vision_runs", "vision_figures",
}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
