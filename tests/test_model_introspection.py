"""Each model answers for itself: its receptive field, whether its core can be shared, and which
parameters are exempt from weight decay; interpretability and training code ask it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrf_utils import training
from deepstrf_utils.interpret.dstrf import receptive_field
from deepstrf_utils.models import (
    MODELS,
    MultiSessionModel,
    ResponseModel,
    StateGainModel,
    UnitView,
    build_model,
)
from test_models import F_BANDS, SMALL

KERNEL = 12  # AdapTrans taps of the models built here


def make(name, prefilter=None, n_neurons=2):
    torch.manual_seed(0)
    return build_model(name, n_bands=F_BANDS, n_neurons=n_neurons, prefilter=prefilter,
                       prefilter_kwargs={"kernel_size": KERNEL} if prefilter else None, **SMALL[name])


# the core's bins per output bin, from each model's own sizes (None: unbounded memory)
CORE_BINS = {
    "Linear": SMALL["Linear"]["n_lags"],
    "LinearNonlinear": SMALL["LinearNonlinear"]["n_lags"],
    "NetworkReceptiveField": SMALL["NetworkReceptiveField"]["n_lags"],
    "DNet": None,
    "ConvNet2D": 3 * (SMALL["ConvNet2D"]["kernel_size"][1] - 1) + 1,
    "PopulationCNN": 3 * (SMALL["PopulationCNN"]["kernel_size"][1] - 1) + 1,
    "StateNet": None,
    "Transformer": 1 * (SMALL["Transformer"]["window"] - 1) + 1,
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("prefilter", [None, "adaptrans"])
def test_receptive_field_known_answer(name, prefilter):
    model = make(name, prefilter)
    p = KERNEL if prefilter else 1
    core = CORE_BINS[name]
    expected = {"prefilter": p, "core": core, "total": None if core is None else p + core - 1}
    assert model.receptive_field() == expected
    assert receptive_field(model) == expected
    assert receptive_field(UnitView(model, 1)) == expected
    assert receptive_field(StateGainModel(model, n_states=1)) == expected


@pytest.mark.parametrize("name", sorted(MODELS))
def test_receptive_field_bounds_what_the_output_reads(name):
    """Perturbing the input just outside the receptive field leaves the last bin unchanged (to float
    rounding: some paths run in the frequency domain); just inside it changes it (a finite core only)."""
    model = make(name, "adaptrans").eval()
    total = model.receptive_field()["total"]
    if total is None:
        pytest.skip("unbounded memory")
    T = total + 5
    x = torch.rand(1, 1, F_BANDS, T, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model(x)[..., -1]
        outside, inside = x.clone(), x.clone()
        outside[..., T - total - 1] += 10.0
        inside[..., T - total] += 10.0
        torch.testing.assert_close(model(outside)[..., -1], base, rtol=0, atol=1e-6)
        assert (model(inside)[..., -1] - base).abs().max() > 1e-5


def test_shared_cores_are_the_models_with_a_linear_readout():
    shared = {name for name, cls in MODELS.items() if cls.shares_core()}
    assert shared == {"NetworkReceptiveField", "ConvNet2D", "StateNet", "PopulationCNN", "Transformer"}
    for name in sorted(set(MODELS) - shared):
        with pytest.raises(ValueError, match="core can be shared"):
            make(name).linear_readout()
        with pytest.raises(ValueError, match=r"expected a core among \['NetworkReceptiveField', 'ConvNet2D'"):
            MultiSessionModel(name, dict(n_bands=F_BANDS, **SMALL[name]), {"a": 2})


@pytest.mark.parametrize("name", ["NetworkReceptiveField", "ConvNet2D", "StateNet", "PopulationCNN", "Transformer"])
def test_linear_readout_computes_the_models_readout(name):
    model = make(name).eval()
    readout = model.linear_readout()
    h = torch.rand(2, readout.n_hidden, 9, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(readout(h), model.forward_readout(h), rtol=1e-6, atol=1e-7)


def test_no_decay_names_come_from_the_models_wherever_they_sit():
    dnet = make("DNet", "adaptrans")
    exempt = {"prefilter.logit_a_on", "prefilter.logit_a_off", "prefilter.logit_w", "hidden_d", "output_d"}
    assert dnet.no_decay_names() == exempt
    assert training.no_decay_names(dnet) == exempt
    wrapped = StateGainModel(dnet, n_states=1)
    assert training.no_decay_names(wrapped) == {f"model.{n}" for n in exempt}
    nrf = make("NetworkReceptiveField")
    assert nrf.no_decay_names() == set() and training.no_decay_names(nrf) == set()
    core = MultiSessionModel("ConvNet2D", dict(n_bands=F_BANDS, prefilter="adaptrans", **SMALL["ConvNet2D"]), {"a": 2})
    assert training.no_decay_names(core) == {"core.prefilter.logit_a_on", "core.prefilter.logit_a_off",
                                            "core.prefilter.logit_w"}


class _GainModel(ResponseModel):
    """A new model that the interpretability and training code have never heard of: an STRF of
    ``n_lags`` bins times a learned gain that must not be decayed."""

    def __init__(self, n_bands, n_neurons=1, n_lags=4, prefilter=None, prefilter_kwargs=None, dt_ms=5.0):
        super().__init__()
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self.n_lags = n_lags
        self.weight = nn.Parameter(torch.randn(n_neurons, self.in_channels, n_bands, n_lags) * 0.1)
        self.gain = nn.Parameter(torch.ones(n_neurons))
        self._set_config(prefilter, prefilter_kwargs, n_lags=n_lags)

    @property
    def core_receptive_field(self) -> int:
        return self.n_lags

    def forward_core(self, z, lengths=None):
        z = torch.nn.functional.pad(z, (self.n_lags - 1, 0))
        return torch.nn.functional.conv2d(z, self.weight.flip(-1))[:, :, 0]

    def forward_readout(self, h):
        return self.gain[:, None] * h

    def no_decay_names(self) -> set[str]:
        return super().no_decay_names() | {"gain"}


def test_a_new_model_is_read_without_editing_interpret_or_training():
    model = _GainModel(F_BANDS, 2, n_lags=4, prefilter="adaptrans", prefilter_kwargs={"kernel_size": KERNEL})
    assert receptive_field(model) == {"prefilter": KERNEL, "core": 4, "total": KERNEL + 3}
    assert "gain" in training.no_decay_names(model)
    opt, _, _ = training.optim.make_adamw(model, lr=1e-3, weight_decay=0.1)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decay[id(model.gain)] == 0.0 and decay[id(model.weight)] == pytest.approx(0.1)
