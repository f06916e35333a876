"""Running experiments: configurations x seeds as jobs, into one resumable results table
(floor 4: imports training, pretrained and below).

- :mod:`.runner` -- ``run_configs`` (jobs merged into one CSV, checkpoints), ``config_id``,
  ``find_checkpoints``
- :mod:`.jobs` -- jobs and their files (atomic result files, error records, merging)
- :mod:`.executors` -- where jobs run: in process, submitit subprocesses, Slurm
- :mod:`.sweep` -- the command line (``python -m deepstrf_utils.runs``): cost plan, submit, collect
- :mod:`.profiles` -- the smoke / quick / paper run profiles
- :mod:`.protocols` -- the published protocol of each dataset, as data with sources;
  :mod:`.published` -- the published numbers
- :mod:`.modes` -- the experiment modes "state" and "sessions" of a configuration
- :mod:`.sessions_state` -- the synthetic sessions / state experiments of notebooks 03 and 05
- :mod:`.export` -- a finished configuration as pretrained folders

Submodules are imported on first use.
"""
from ..submodules import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, __path__, globals())
del lazy_submodules
