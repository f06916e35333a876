"""Published numbers the figures compare against (seed README of the 2024 paper)."""
from __future__ import annotations

__all__ = ["PUBLISHED"]

#: Published CCraw / CCnorm (%) of the seed README (2024, all with AdapTrans).
PUBLISHED = [
    {"dataset": "ns1", "model": "ConvNet2D", "prefilter": "adaptrans", "cc_raw": 43.7, "cc_norm": 65.3,
     "n_params": 37276},
    {"dataset": "wehr", "model": "NetworkReceptiveField", "prefilter": "adaptrans", "cc_raw": 26.0,
     "cc_norm": 26.3, "n_params": None},
    {"dataset": "nat4_a1", "model": "ConvNet2D", "prefilter": "adaptrans", "cc_raw": 32.6, "cc_norm": 56.9,
     "n_params": 15748},
    {"dataset": "nat4_peg", "model": "ConvNet2D", "prefilter": "adaptrans", "cc_raw": 37.2, "cc_norm": 62.4,
     "n_params": None},
]
