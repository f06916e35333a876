"""What a fitted model says about a neuron (floor 4: imports models, datasets and below).

- :mod:`.strfs` -- weight STRFs, ON/OFF STRFs, gradient STRFs of nonlinear models
- :mod:`.dstrf` -- dSTRFs (per-bin Jacobians, exact through the prefilter) and dPCs
- :mod:`.mei` -- most / least exciting inputs under stated constraints
- :mod:`.insilico` -- the paper's Figure 1 helpers, OFF / ON responses of the prefilter vs fall
  time, preceding duration and rise time
- :mod:`.insilico_models` -- the same experiments and tone steps per band on whole fitted models
- :mod:`.groundtruth` -- fitted prefilters and STRFs against the synthetic ground truth

Submodules are imported on first use.
"""
from ..submodules import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, __path__, globals())
del lazy_submodules
