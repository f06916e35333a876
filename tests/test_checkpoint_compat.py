"""Checkpoints written before the model classes moved load with today's code and predict the same.

``fixtures/zoo_checkpoints/``: one checkpoint of every registered model (with and without
AdapTrans) and of the composite models, written by ``fixtures/make_zoo_checkpoints.py`` with
the code named in its README, and ``expected.pt``: the stimulus and each model's prediction.
"""
from pathlib import Path

import pytest
import torch

from deepstrf_utils.models import MODELS
from deepstrf_utils.training import load_checkpoint

FOLDER = Path(__file__).parent / "fixtures" / "zoo_checkpoints"
EXPECTED = torch.load(FOLDER / "expected.pt", weights_only=True)


def test_every_registered_model_has_a_checkpoint_written_before_the_move():
    names = {name.split("_")[0] for name in EXPECTED["expected"]}
    assert set(MODELS) <= names, f"no old checkpoint of {sorted(set(MODELS) - names)}"


@pytest.mark.parametrize("name", sorted(EXPECTED["expected"]))
def test_old_checkpoint_loads_and_predicts_the_same(name):
    model, _ = load_checkpoint(FOLDER / f"{name}.pt")
    case = EXPECTED["expected"][name]
    assert type(model).__name__ == name.split("_")[0]
    with torch.no_grad():
        got = model.eval()(EXPECTED["stimulus"], **case["inputs"])
    torch.testing.assert_close(got, case["prediction"], rtol=1e-6, atol=1e-7)
