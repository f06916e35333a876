"""Reporting results (top floor below the notebook context: imports runs, interpret and below).

- :mod:`.tables` -- ``summary_table`` (the seed README's layout), ``markdown_table``
- :mod:`.reliability` -- which neurons enter means and figures; median and bootstrap interval
- :mod:`.comparison` -- paired model comparison: bootstrap and hierarchical intervals, Wilcoxon, Holm
- :mod:`.plotting` -- panel helpers, one figure style, ``save_figure`` (PNG, PDF, caption)
- :mod:`.figures` (notebooks 01, 02, the STRF table, the gallery README), :mod:`.figures_strfs`
  and :mod:`.figures_interpret` (notebook 04), :mod:`.figures_results` (notebook 05): the
  notebooks' figures, each with its caption

Submodules are imported on first use.
"""
from ..submodules import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, __path__, globals())
del lazy_submodules
