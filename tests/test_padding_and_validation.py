"""Fits that real datasets exercise and the synthetic default does not: neurons without
validation data (stacked = looped single units) and batches of stimuli of unequal lengths
(BatchNorm statistics over the valid bins only)."""

import logging

import numpy as np
import pytest
import torch

from deepstrf_utils.datasets import ResponseDataset
from deepstrf_utils.models import build_model
from deepstrf_utils.training import fit, fit_single_units

CF = np.geomspace(500, 8000, 8)


def _sets(n_neurons=3, seed=0, lengths=((40, 44, 36, 41, 38), (39, 42))):
    """Train / validation sets: F=8 bands, stimuli of unequal lengths, 3 repeats."""
    rng = np.random.default_rng(seed)
    out = []
    for lens in lengths:
        stims = [rng.random((8, t)).astype(np.float32) for t in lens]
        resps = [rng.poisson(2.0 + 2.0 * s[:n_neurons].mean(0) * np.arange(1, n_neurons + 1)[:, None, None],
                             (n_neurons, 3, s.shape[1])).astype(np.float32) for s in stims]
        out.append((stims, resps))
    return out


def _dataset(stims, resps):
    return ResponseDataset(stims, resps, dt_ms=5.0, cf_hz=CF, neuron_ids=[f"u{i}" for i in range(resps[0].shape[0])],
                           name="tiny")


# ----------------------------------------------------------------------------- item 3
def test_unit_without_validation_data_equals_loop_and_warns(caplog):
    """A unit whose validation responses are all NaN is fitted as without a validation set,
    stacked or looped alike (before: the stack returned its initial weights, best_epoch -1,
    silently, while the loop kept its last weights), with a warning naming it."""
    (ts, tr), (vs, vr) = _sets()
    vr = [r.copy() for r in vr]
    for r in vr:
        r[1] = np.nan  # neuron u1 has no validation data
    train, val = _dataset(ts, tr), _dataset(vs, vr)
    kw = dict(lr=0.01, max_epochs=5, patience=1, batch_size=2, device="cpu", seed=3, progress=False)

    def model_fn(s):
        torch.manual_seed(s)
        return build_model("Linear", n_bands=8, n_lags=6)

    with caplog.at_level(logging.WARNING, logger="deepstrf_utils"):
        stacked, rs = fit_single_units(model_fn, train, val, seeds=[1, 2, 3], batched=True, **kw)
    assert any("u1" in rec.getMessage() and "validation" in rec.getMessage() for rec in caplog.records)
    looped, rl = fit_single_units(model_fn, train, val, seeds=[1, 2, 3], batched=False, **kw)
    for u in range(3):
        assert (rs[u].epochs, rs[u].best_epoch, rs[u].stopped_early) == (rl[u].epochs, rl[u].best_epoch,
                                                                         rl[u].stopped_early)
        for k, v in looped[u].state_dict().items():
            torch.testing.assert_close(stacked[u].state_dict()[k], v, atol=1e-6, rtol=1e-6, msg=f"{k} unit {u}")
    # the unit without validation data ran every epoch and kept its last weights
    assert rs[1].epochs == 5 and rs[1].best_epoch == 4 and not rs[1].stopped_early
    assert (stacked[1].weight - model_fn(2).weight).abs().max() > 1e-3
    # the same unit alone through fit(): the same rule and the same weights
    caplog.clear()
    alone = model_fn(2)
    with caplog.at_level(logging.WARNING, logger="deepstrf_utils"):
        r = fit(alone, train.select(["u1"]), val.select(["u1"]), **kw)
    assert (r.epochs, r.best_epoch) == (5, 4)
    assert any("u1" in rec.getMessage() for rec in caplog.records)
    torch.testing.assert_close(alone.weight, looped[1].weight)


# ----------------------------------------------------------------------------- item 4
def test_masked_batchnorm_uses_valid_bins_only():
    """Training mode, unequal lengths: the batch statistics (and the running statistics
    updated from them) are those of the valid bins alone, and the valid part of the output
    equals plain BatchNorm on the valid bins without any padding."""
    from deepstrf_utils.models.layers import MaskedBatchNorm2d, valid_mask

    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 30) * 2 + 1
    lengths = torch.tensor([30, 12, 20])
    x[1, ..., 12:] = 0.0  # zero padding, as the packer pads stimuli
    x[2, ..., 20:] = 0.0
    masked = MaskedBatchNorm2d(4, momentum=0.3)
    with torch.no_grad():
        masked.weight.uniform_(0.5, 2.0)
        masked.bias.uniform_(-1.0, 1.0)
    plain = torch.nn.BatchNorm2d(4, momentum=0.3)
    plain.load_state_dict(masked.state_dict())
    y = masked(x, valid_mask(lengths, 3, 30))
    # the valid bins of every item side by side along time: no padding at all
    valid = torch.cat([x[b:b + 1, ..., :n] for b, n in enumerate(lengths.tolist())], dim=-1)  # (1, 4, 5, 62)
    ref = plain(valid)
    got = torch.cat([y[b:b + 1, ..., :n] for b, n in enumerate(lengths.tolist())], dim=-1)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(masked.running_mean, plain.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(masked.running_var, plain.running_var, rtol=1e-5, atol=1e-6)
    assert int(masked.num_batches_tracked) == 1
    # without a mask, and in eval mode, it is nn.BatchNorm2d bit for bit
    plain2 = torch.nn.BatchNorm2d(4, momentum=0.3)
    plain2.load_state_dict(masked.state_dict())
    assert torch.equal(masked(x), plain2(x))
    assert torch.equal(masked.running_var, plain2.running_var)
    masked.eval()
    plain2.eval()
    assert torch.equal(masked(x, valid_mask(lengths, 3, 30)), plain2(x))
    with pytest.raises(ValueError, match=r"lengths as a tensor of shape \(B,\)"):
        valid_mask(torch.tensor([3, 4]), 3, 30)


@pytest.mark.parametrize("name,kwargs", [("ConvNet2D", {"kernel_size": (3, 5), "channels": 3, "hidden": 6}),
                                         ("StateNet", {"channels": 3, "kernel": 3, "stride": 2})])
def test_padded_batch_gives_statistics_of_valid_bins(name, kwargs):
    """ConvNet2D / StateNet in training mode on a padded batch with its lengths: the first
    BatchNorm's batch statistics are those of its input over the valid bins (before: pooled
    over the zero padding, e.g. a variance 0.176 against 0.036 on real data), and the valid
    part of the output does not depend on how much padding there is; a stimulus alone
    (no padding) gives the same output as the same stimulus padded within a batch."""
    torch.manual_seed(1)
    model = build_model(name, n_bands=8, n_neurons=2, prefilter="adaptrans",
                        prefilter_kwargs={"kernel_size": 6}, **kwargs).train()
    norm = model.norms[0] if name == "ConvNet2D" else model.norm
    norm.momentum = 1.0  # running statistics = the last batch's statistics
    captured = {}
    first = model.convs[0] if name == "ConvNet2D" else model.local
    first.register_forward_hook(lambda m, i, o: captured.__setitem__("z", o.detach()))
    a, b = torch.rand(1, 1, 8, 40), torch.rand(1, 1, 8, 24)
    x = torch.zeros(2, 1, 8, 40)
    x[0], x[1, ..., :24] = a[0], b[0]
    lengths = torch.tensor([40, 24])
    out = model(x, lengths=lengths)
    z = captured["z"]  # (2, C, H, 40) the first BatchNorm's input
    vals = torch.cat([z[0].flatten(1), z[1, ..., :24].flatten(1)], dim=1)  # (C, valid elements)
    torch.testing.assert_close(norm.running_mean, vals.mean(1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norm.running_var, vals.var(1, unbiased=True), rtol=1e-5, atol=1e-6)
    # more padding, same valid output
    x_long = torch.zeros(2, 1, 8, 55)
    x_long[..., :40] = x
    out_long = model(x_long, lengths=lengths)
    torch.testing.assert_close(out_long[0, :, :40], out[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_long[1, :, :24], out[1, :, :24], rtol=1e-5, atol=1e-5)
    # a stimulus alone (no padding, the plain BatchNorm path) = the same stimulus padded
    alone = model(b)
    padded = torch.zeros(1, 1, 8, 40)
    padded[..., :24] = b
    torch.testing.assert_close(model(padded, lengths=torch.tensor([24]))[..., :24], alone, rtol=1e-5, atol=1e-5)


def test_fit_passes_lengths_of_padded_batches_only():
    """fit gives a model the valid lengths of every padded training batch (None for a batch
    of equal lengths: the unpadded path, bit for bit as before)."""
    from deepstrf_utils.models import ConvNet2D

    seen = []

    class Recording(ConvNet2D):
        def forward(self, x, lengths=None):
            if self.training:
                seen.append((x.shape[-1], None if lengths is None else lengths.tolist()))
            return super().forward(x, lengths)

    (ts, tr), (vs, vr) = _sets(lengths=((40, 30, 30, 30), (39, 42)))
    torch.manual_seed(0)
    model = Recording(8, n_neurons=3, kernel_size=(3, 5), channels=3, hidden=6)
    fit(model, _dataset(ts, tr), _dataset(vs, vr), optimizer="adamw", max_epochs=2, batch_size=2, device="cpu",
        progress=False)
    assert len(seen) == 4
    for t, lens in seen:
        if lens is None:
            assert t == 30
        else:
            assert t == 40 and sorted(lens) == [30, 40]
