"""``python -m deepstrf_utils.runs``: the sweep command line (:func:`~deepstrf_utils.runs.sweep.main`)."""
import sys

from .sweep import main

sys.exit(main())
