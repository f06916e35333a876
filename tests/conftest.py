"""Shared test settings: one torch thread (tiny tensors run faster and reproducibly),
headless matplotlib, and the path of the optional shared real-data folder."""
import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

torch.set_num_threads(1)

#: ../shared/data beside the checkout; tests that need it skip when it is absent.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real-data folder not found at {SHARED_DATA}")
    return SHARED_DATA
