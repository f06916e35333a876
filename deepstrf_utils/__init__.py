"""deepstrf_utils: deep models of auditory neural responses with the AdapTrans prefilter.

Rooms by role, each a floor above the ones it imports (docs/ARCHITECTURE.md):

- ground: :mod:`~deepstrf_utils.metrics` (CCraw, CCnorm, CCmax, losses), the cochleagram
  front end :mod:`~deepstrf_utils.spectrogram`, synthetic :mod:`~deepstrf_utils.stimuli`,
  FFT helpers :mod:`~deepstrf_utils.spectral`, checks :mod:`~deepstrf_utils.shapes`,
  :mod:`~deepstrf_utils.plain`, :mod:`~deepstrf_utils.files`, :mod:`~deepstrf_utils.submodules`,
  synthetic movies :mod:`~deepstrf_utils.visual_stimuli`
- :mod:`~deepstrf_utils.adaptrans` -- the AdapTrans ON/OFF prefilter and the Willmore baseline;
  :mod:`~deepstrf_utils.models` -- the model zoo (prefilter -> core -> readout), ridge STRF
- :mod:`~deepstrf_utils.datasets` -- one canonical dataset type and its loaders
- :mod:`~deepstrf_utils.training` -- fitting, single units in one stack, sessions, evaluation,
  checkpoints; :mod:`~deepstrf_utils.pretrained` -- pretrained folders (config, weights, card)
- :mod:`~deepstrf_utils.interpret` -- what a fitted model says: weight / gradient STRFs, dSTRFs
  and dPCs, most exciting inputs, in-silico ON/OFF experiments, ground-truth comparisons
- :mod:`~deepstrf_utils.runs` -- configurations x seeds as resumable jobs (runner, executors,
  the sweep command line ``python -m deepstrf_utils.runs``), run profiles, the published
  protocols and numbers, the sessions / state experiment modes
- :mod:`~deepstrf_utils.report` -- result tables, the reliability rule, paired model
  comparison, plotting and every figure with its caption
- :mod:`~deepstrf_utils.notebook` -- the notebooks' run context (``setup_run``, ``load_fitted``)
- vision (movies ``(B, C, H, W, T)``) in the same rooms: ``datasets.MovieDataset``,
  ``models.vision`` / ``models.vision_cnn``, ``interpret.vision``, ``runs.vision``,
  ``report.figures_vision``

Submodules are found on disk and imported on first use (``deepstrf_utils.interpret.dstrf``),
so ``import deepstrf_utils`` stays cheap.
"""
from .submodules import lazy_submodules

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_submodules(__name__, __path__, globals())
del lazy_submodules
