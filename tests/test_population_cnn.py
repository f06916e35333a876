"""Pennington & David (2023)'s population CNN as published: the learnable ReLU thresholds,
the normalised MSE, the two-stage fit, and its row in the paper profile."""

import numpy as np
import pytest
import torch

from deepstrf_utils import metrics, training
from deepstrf_utils.runs import runner
from deepstrf_utils.datasets.synthetic import load_synthetic
from deepstrf_utils.models import PopulationCNN, count_parameters
from deepstrf_utils.runs.profiles import get_profile


def test_population_cnn_parameters_as_published():
    """conv2d.10.8x3.rep3-wcn.90-relu.90-wc.90xR-lvl.R-dexp.R on 18 bands: the shared part
    counted from the architecture (before: 21,270, the 90 ReLU thresholds missing)."""
    F, C, kt, kf, H = 18, 10, 8, 3, 90
    conv = (1 * kf * kt + 1) * C + 2 * (C * kf * kt + 1) * C  # 250 + 2 x 2,410
    shared = conv + C * F * H + H  # dense without bias + one threshold per hidden unit
    per_neuron = H + 1 + 4  # readout weights, level shift, double exponential
    assert shared == 21_360
    for n in (1, 5):
        model = PopulationCNN(F, n_neurons=n)
        assert count_parameters(model) == shared + n * per_neuron
    assert model.threshold.shape == (H,) and model.dt_ms == 10.0


def test_relu_threshold_is_per_hidden_unit():
    torch.manual_seed(0)
    model = PopulationCNN(6, n_neurons=2, channels=2, hidden=4, kernel_size=(3, 4)).eval()
    z = torch.rand(1, 1, 6, 20)
    with torch.no_grad():
        drive = model.dense(torch.relu(model.convs[2](torch.nn.functional.pad(
            torch.relu(model.convs[1](torch.nn.functional.pad(
                torch.relu(model.convs[0](torch.nn.functional.pad(z, model._pad))), model._pad))),
            model._pad))).flatten(1, 2))
        model.threshold.copy_(torch.tensor([0.0, 1e6, -1e6, 0.1]))
        h = model.forward_core(z)
    torch.testing.assert_close(h[0, 0], torch.relu(drive[0, 0]))
    assert torch.all(h[0, 1] == 0)  # a huge threshold silences unit 1
    torch.testing.assert_close(h[0, 2], drive[0, 2] + 1e6)
    torch.testing.assert_close(h[0, 3], torch.relu(drive[0, 3] - 0.1))


def test_nmse_loss_known_answers():
    pred = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 1.0], [5.0, 5.0, 5.0]]])  # (1, 3, 3)
    resp = torch.tensor([[[[1.0, 1.0, 1.0]], [[0.0, 2.0, float("nan")]], [[0.0, 0.0, 0.0]]]])  # (1, 3, 1, 3)
    per = metrics.nmse_loss(pred, resp, reduction="none")
    # neuron 0: (0 + 1 + 4) / 3 over mean square 1; neuron 1: (0 + 4) / 2 over (0 + 4) / 2;
    # neuron 2: a target of zeros has no scale -> 0
    torch.testing.assert_close(per, torch.tensor([5.0 / 3.0, 1.0, 0.0]))
    torch.testing.assert_close(metrics.nmse_loss(pred, resp), torch.tensor((5.0 / 3.0 + 1.0) / 2))
    # every neuron weighs the same whatever its scale
    torch.testing.assert_close(metrics.nmse_loss(10 * pred, 10 * resp, reduction="none"), per)
    assert metrics.get_loss("nmse") is metrics.nmse_loss
    p = pred.clone().requires_grad_(True)
    metrics.nmse_loss(p, resp).backward()
    assert torch.isfinite(p.grad).all() and torch.all(p.grad[0, 2] == 0)


@pytest.fixture(scope="module")
def nat4_like(tmp_path_factory):
    """A small synthetic population on 18 bands (NAT4's spectrogram size)."""
    ds = load_synthetic(root=tmp_path_factory.mktemp("data"), n_neurons=3, n_clips=6, clip_s=1.0, n_bands=18,
                        n_repeats=4)
    return ds


def test_fit_two_stage_freezes_the_output_nonlinearity_first(nat4_like):
    train, val, _ = nat4_like.split(0)
    torch.manual_seed(0)
    model = PopulationCNN(18, n_neurons=3, channels=3, hidden=8, kernel_size=(3, 4), dt_ms=nat4_like.dt_ms)
    seen = {}
    original_fit = training.two_stage.fit

    def spy(m, *args, **kwargs):  # the weights each stage starts from and ends with
        before = {k: v.detach().clone() for k, v in m.state_dict().items()}
        frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
        res = original_fit(m, *args, **kwargs)
        seen.setdefault("stages", []).append((before, {k: v.detach().clone() for k, v in m.state_dict().items()},
                                              frozen, kwargs["lr"]))
        return res

    training.two_stage.fit = spy
    try:
        res = training.fit_two_stage(model, train, val, max_epochs=3, patience=2, batch_size=2, device="cpu",
                                     progress=False)
    finally:
        training.two_stage.fit = original_fit
    (b1, a1, frozen1, lr1), (b2, a2, frozen2, lr2) = seen["stages"]
    dexp = [k for k in a1 if k.startswith("output_nonlinearity.")]
    assert sorted(frozen1) == sorted(dexp) and frozen2 == set() and (lr1, lr2) == (1e-3, 1e-4)
    # stage 1 trains everything but the double exponential (set to the data's scale first)
    assert all(torch.equal(a1[k], b2[k]) for k in a1)
    assert not torch.equal(a1["dense.weight"], b1["dense.weight"])
    mean, std = training.packing._Packed.from_dataset(train, torch.device("cpu")).target_stats()
    torch.testing.assert_close(a1["output_nonlinearity.amplitude"], (std * np.e).float())
    # stage 2 trains it too, from the stage-1 weights (no new init_output)
    assert not torch.equal(a2["output_nonlinearity.amplitude"], a1["output_nonlinearity.amplitude"])
    assert all(p.requires_grad for p in model.parameters())
    n2 = res.lr.count(1e-4)  # one history for both stages, the stage boundary in lr
    assert n2 >= 1 and res.epochs - n2 >= 1 and res.lr == [1e-3] * (res.epochs - n2) + [1e-4] * n2
    assert res.epochs == len(res.train_loss) == len(res.val_loss) and res.best_epoch >= res.epochs - n2
    with pytest.raises(ValueError, match="readout_gain"):
        training.fit_two_stage(model, train, val, frozen=("readout_gain",), max_epochs=1, device="cpu",
                               progress=False)


def test_paper_profile_carries_the_pennington_row(nat4_like, tmp_path):
    profile = get_profile("paper")
    rows = [c for c in profile.configs(["nat4_a1", "nat4_peg", "ns1"]) if c.get("note") == "Pennington & David 2023"]
    assert [c["dataset"] for c in rows] == ["nat4_a1", "nat4_peg"]
    cfg = rows[0]
    assert cfg["model"] == "PopulationCNN" and cfg["mode"] == "population" and cfg["prefilter"] is None
    assert cfg["fit_kwargs"]["protocol"] == "two_stage" and cfg["fit_kwargs"]["loss"] == "nmse"
    assert (cfg["fit_kwargs"]["lr"], cfg["fit_kwargs"]["lr_stage2"]) == (1e-3, 1e-4)
    # the runner fits it with the two-stage protocol (shortened here)
    quick = {**cfg, "dataset": "synthetic", "model_kwargs": {"channels": 2, "hidden": 6, "kernel_size": [3, 4]},
             "fit_kwargs": {**cfg["fit_kwargs"], "max_epochs": 2, "patience": 1, "batch_size": 2}}
    rows = runner.run_config(quick, nat4_like, seed=0, device="cpu", progress=False)
    assert len(rows) == 3 and rows["epochs"].between(2, 4).all() and rows["note"].eq("Pennington & David 2023").all()
    with pytest.raises(ValueError, match="population"):
        runner.run_config({**quick, "mode": "single"}, nat4_like, seed=0, device="cpu", progress=False)
