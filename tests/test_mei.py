"""Tests of deepstrf_utils.interpret.mei: most / least exciting inputs under stated constraints."""
import numpy as np
import pytest
import torch

from deepstrf_utils.interpret.mei import least_exciting_input, most_exciting_input, stimulus_statistics
from deepstrf_utils.models import ConvNet2D, Linear, NetworkReceptiveField

F, K = 8, 10


def _planted_linear():
    """A Linear model whose neuron 1 has a planted STRF: a tuned excitation then suppression."""
    torch.manual_seed(0)
    model = Linear(F, n_neurons=2, n_lags=K)
    f = np.arange(F)[:, None]
    k = np.arange(K)[None, :]
    strf = np.exp(-0.5 * ((f - 3) / 1.2) ** 2) * (np.exp(-0.5 * ((k - 2) / 1.0) ** 2) - 0.5 * np.exp(-0.5 * ((k - 6) / 1.5) ** 2))
    w = model.weight.detach().clone()
    w[1, 0] = torch.as_tensor(strf, dtype=torch.float32)
    model.load_strf(w)
    return model, strf


def _corr(a, b):
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_mei_of_linear_model_under_energy_constraint_is_its_strf():
    model, strf = _planted_linear()
    res = most_exciting_input(model, neuron=1, energy=3.0, n_starts=3, steps=60)
    assert res.input.shape == (F, K) and res.inputs.shape == (3, F, K) and res.trajectory.shape == (3, 61)
    # the window's last bin is lag 0: input[f, T - 1 - k] pairs with strf[f, k]
    assert _corr(res.input.numpy()[:, ::-1], strf) > 0.95
    np.testing.assert_allclose(res.achieved_energy, 3.0, rtol=1e-5)
    assert np.all(res.trajectory[:, -1] > res.trajectory[:, 0])  # ascent raised the response
    assert res.model_response.shape == (2, K)
    torch.testing.assert_close(res.model_response[1, -1], torch.tensor(res.response[res.best], dtype=torch.float32))
    assert "||x - 0|| <= 3" in res.caption()


def test_least_exciting_input_is_the_negative_strf_and_range_is_enforced():
    model, strf = _planted_linear()
    res = least_exciting_input(model, 1, energy=2.0, baseline=0.5, value_range=(0.0, 1.0), steps=80, n_starts=2)
    x = res.input.numpy()
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert _corr(x[:, ::-1], strf) < -0.8
    assert res.constraints["direction"] == "min" and np.all(res.trajectory[:, -1] < res.trajectory[:, 0])


def test_mei_is_reproducible_from_seeds_and_covers_the_receptive_field():
    torch.manual_seed(0)
    model = ConvNet2D(12, n_neurons=2, kernel_size=(3, 4), channels=3, hidden=8, n_blocks=2, prefilter="adaptrans",
                      prefilter_kwargs={"kernel_size": 9})
    a = most_exciting_input(model, 1, value_range=(0.0, 1.0), seeds=[4, 5], steps=5)
    b = most_exciting_input(model, 1, value_range=(0.0, 1.0), seeds=[4, 5], steps=5)
    assert a.input.shape == (12, 9 + 2 * 3)  # receptive field: AdapTrans taps - 1 + core lags
    torch.testing.assert_close(a.inputs, b.inputs)
    assert model.training  # flag restored


def test_blind_bins_stay_at_the_baseline_under_an_energy_budget():
    model, strf = _planted_linear()  # K = 10 lags: a 30-bin window has 20 bins the neuron never sees
    res = most_exciting_input(model, 1, n_bins=30, energy=3.0, baseline=0.5, value_range=(0.0, 1.0), steps=80)
    dev = (res.input - 0.5).numpy()
    assert np.abs(dev[:, :20]).max() < 0.05 and np.abs(dev[:, 20:]).max() > 0.3
    assert _corr(res.input.numpy()[:, -1:-K - 1:-1], strf) > 0.85  # < 1: the range clips the peak


def test_hidden_unit_mei_and_smoothness_penalty():
    torch.manual_seed(0)
    model = NetworkReceptiveField(F, n_neurons=1, n_hidden=4, n_lags=K)
    res = most_exciting_input(model, layer="output_nonlinearity", unit=0, energy=2.0, steps=30, n_starts=2)
    assert np.all(res.trajectory[:, -1] >= res.trajectory[:, 0])
    rough = most_exciting_input(model, 0, energy=2.0, steps=40, n_starts=1)
    smooth = most_exciting_input(model, 0, energy=2.0, steps=40, n_starts=1, smoothness=50.0)
    tv = lambda x: float((x[:, 1:] - x[:, :-1]).pow(2).mean())  # noqa: E731
    assert tv(smooth.input) < tv(rough.input)


def test_stimulus_statistics_and_bad_inputs():
    stats = stimulus_statistics([np.zeros((F, 20)), np.ones((F, 20))], n_bins=K)
    assert stats["value_range"] == (0.0, 1.0) and stats["baseline"] == 0.5
    np.testing.assert_allclose(stats["energy"], np.std(np.r_[np.zeros(160), np.ones(160)], ddof=1) * np.sqrt(F * K))
    model, _ = _planted_linear()
    with pytest.raises(ValueError, match="at least one constraint"):
        most_exciting_input(model, 0)
    with pytest.raises(ValueError, match=r"neuron in \[0, 2\)"):
        most_exciting_input(model, 2, energy=1.0)
    with pytest.raises(ValueError, match="module names"):
        most_exciting_input(model, 0, energy=1.0, layer="nope")
    with pytest.raises(ValueError, match="direction"):
        most_exciting_input(model, 0, energy=1.0, direction="up")
