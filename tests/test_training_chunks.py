"""Training recurrent models on chunks of their sequences (issue 11, ``fit(..., train_chunk=(L, W))``):
exactness when the burn-in covers the whole stimulus, coverage of the loss bins, the rules."""

import numpy as np
import pytest
import torch

from deepstrf_utils.datasets.synthetic import MAX_FREQ_HZ, MIN_FREQ_HZ, generate_synthetic
from deepstrf_utils.models import build_model
from deepstrf_utils.spectrogram import band_centre_frequencies
from deepstrf_utils.training import fit, predict
from deepstrf_utils.training.chunks import chunk_windows, chunked_batch
from deepstrf_utils.training.fitting import _batch_loss, _get_loss
from deepstrf_utils.training.options import RECURRENT_AUTO, RECURRENT_CHUNK_WITHOUT_ADAPTRANS

F = 12
SYN_CF = [float(v) for v in band_centre_frequencies(F, MIN_FREQ_HZ, MAX_FREQ_HZ)]


def _statenet(seed=0, n_neurons=2, rnn="gru"):
    torch.manual_seed(seed)
    return build_model("StateNet", n_bands=F, n_neurons=n_neurons, dt_ms=5.0, prefilter="adaptrans",
                       prefilter_kwargs={"kernel_size": 16, "cf_hz": SYN_CF}, rnn=rnn)


def _padded_batch(seed=0):
    """Three stimuli of 50, 37 and 44 bins zero-padded to T = 50, a NaN target bin in the first."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([50, 37, 44])
    x = torch.randn(3, 1, F, 50, generator=g)
    y = torch.randn(3, 2, 50, generator=g)
    for b, n in enumerate(lengths.tolist()):
        x[b, ..., n:] = 0.0
        y[b, :, n:] = float("nan")
    y[0, 1, 5] = float("nan")
    return x, y, lengths


def _loss_and_grads(model, fn):
    model.zero_grad()
    loss = fn()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("loss", ["mse", "poisson", "correlation"])
@pytest.mark.parametrize("chunk", [(7, 50), (1, 60), (50, 50), (13, 100)])
def test_burn_in_covering_the_stimulus_gives_the_exact_loss_and_gradient(rnn, loss, chunk):
    model = _statenet(rnn=rnn).train()
    x, y, lengths = _padded_batch()
    if loss == "poisson":
        y = y.abs()
    loss_fn = _get_loss(loss)
    whole, g_whole = _loss_and_grads(model, lambda: _batch_loss(loss_fn, model(x, lengths=lengths), y)[0])
    chunked, g_chunked = _loss_and_grads(model, lambda: _batch_loss(loss_fn, *chunked_batch(model, x, y, lengths,
                                                                                              chunk))[0])
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)
    for a, b in zip(g_chunked, g_whole):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_a_short_burn_in_truncates_the_gradient_but_not_the_loss_bins():
    model = _statenet().train()
    x, y, lengths = _padded_batch()
    loss_fn = _get_loss("mse")
    whole, g_whole = _loss_and_grads(model, lambda: _batch_loss(loss_fn, model(x, lengths=lengths), y)[0])
    chunked, g_chunked = _loss_and_grads(model, lambda: _batch_loss(loss_fn, *chunked_batch(model, x, y, lengths,
                                                                                              (8, 4)))[0])
    assert not torch.allclose(chunked, whole, atol=1e-7)  # chunks after the first start from a zero state
    pred, target = chunked_batch(model, x, y, lengths, (8, 4))
    assert int(torch.isfinite(target).sum()) == int(torch.isfinite(y).sum())


@pytest.mark.parametrize("lengths, L, W", [([50, 37, 44], 8, 4), ([50, 37, 44], 1, 0), ([9], 4, 100),
                                           ([20, 20], 20, 3), ([1, 30], 7, 7)])
def test_chunks_cover_every_valid_bin_once_with_their_burn_in(lengths, L, W):
    T = max(lengths)
    idx, in_loss = chunk_windows(lengths, T, L, W)
    assert idx.shape == in_loss.shape == (idx.shape[0], W + L)
    counts = np.bincount(idx[in_loss].numpy(), minlength=len(lengths) * T)
    expected = np.concatenate([(np.arange(T) < n).astype(int) for n in lengths])
    np.testing.assert_array_equal(counts, expected)
    k = 0
    for b, n in enumerate(lengths):
        for s in range(0, n, L):
            first = s - min(W, s)  # burn-in of up to W bins; the first chunk starts at the onset
            np.testing.assert_array_equal(idx[k].numpy(), b * T + np.minimum(np.arange(first, first + W + L), n - 1))
            loss_pos = np.nonzero(in_loss[k].numpy())[0] + first
            np.testing.assert_array_equal(loss_pos, np.arange(s, min(s + L, n)))
            k += 1
    assert k == idx.shape[0]


@pytest.fixture(scope="module")
def syn():
    ds = generate_synthetic(n_neurons=2, n_clips=4, clip_s=0.6, n_repeats=4, n_bands=F, seed=5)
    return ds.subset([0, 1, 2]), ds.subset([3])


def test_recurrent_auto_trains_on_chunks_and_can_be_turned_off(syn):
    train, val = syn
    kw = dict(max_epochs=2, device="cpu", progress=False)
    r = fit(_statenet(), train, val, **kw)
    assert r.optimizer == "adamw" and r.train_chunk == RECURRENT_AUTO["chunk"]
    assert fit(_statenet(), train, val, train_chunk=None, **kw).train_chunk is None
    # explicit AdamW settings: whole stimuli unless asked
    assert fit(_statenet(), train, val, optimizer="adamw", **kw).train_chunk is None
    assert fit(_statenet(), train, val, optimizer="adamw", train_chunk=(16, 8), **kw).train_chunk == (16, 8)
    lin = build_model("Linear", n_bands=F, n_neurons=2, dt_ms=5.0, n_lags=4)
    assert fit(lin, train, val, **kw).train_chunk is None  # non-recurrent: L-BFGS, whole stimuli
    # without AdapTrans the recurrence carries the adaptation memory itself: longer chunks
    bare = build_model("StateNet", n_bands=F, n_neurons=2, dt_ms=5.0, prefilter=None)
    assert fit(bare, train, val, **kw).train_chunk == RECURRENT_CHUNK_WITHOUT_ADAPTRANS == (64, 64)


def test_a_chunked_fit_predicts_whole_stimuli(syn):
    train, val = syn
    model = _statenet()
    fit(model, train, val, max_epochs=3, device="cpu", progress=False, train_chunk=(16, 8))
    pred = predict(model, val, device="cpu")
    with torch.no_grad():
        x = torch.as_tensor(np.asarray(val.stimuli[0]), dtype=torch.float32)[None, None]
        whole = model.eval()(x)[0].numpy()
    np.testing.assert_allclose(pred[0], whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [(0, 4), (8, -1), (8,), "64", (8.0, 4), (True, 2), (8, 4, 2)])
def test_bad_train_chunk(syn, chunk):
    train, val = syn
    with pytest.raises(ValueError, match="train_chunk"):
        fit(_statenet(), train, val, max_epochs=1, device="cpu", progress=False, train_chunk=chunk)


@pytest.mark.parametrize("name, kw", [("Linear", dict(n_lags=4)), ("DNet", dict(n_lags=4))])
def test_non_recurrent_models_refuse_chunks(syn, name, kw):
    train, val = syn
    model = build_model(name, n_bands=F, n_neurons=2, dt_ms=5.0, **kw)
    with pytest.raises(ValueError, match="train_chunk needs a recurrent model"):
        fit(model, train, val, optimizer="adamw", max_epochs=1, device="cpu", progress=False, train_chunk=(16, 8))


def test_chunks_are_an_adamw_setting(syn):
    train, val = syn
    with pytest.raises(ValueError, match="AdamW path"):
        fit(_statenet(), train, val, optimizer="lbfgs", max_epochs=1, device="cpu", progress=False,
            train_chunk=(16, 8))


def test_fit_single_units_trains_recurrent_units_on_chunks_like_fit(syn):
    from deepstrf_utils.training import fit_single_units

    train, val = syn
    kw = dict(max_epochs=2, device="cpu", progress=False)
    models, results = fit_single_units(lambda s: _statenet(s, n_neurons=1), train, val, neurons=[1], seeds=[3], **kw)
    alone = _statenet(3, n_neurons=1)
    r = fit(alone, train.select([1]), val.select([1]), **kw)
    assert results[0].train_chunk == r.train_chunk == RECURRENT_AUTO["chunk"]
    np.testing.assert_allclose(results[0].val_loss, r.val_loss, rtol=1e-5)
    with pytest.raises(ValueError, match="train_chunk"):
        fit_single_units(lambda s: _statenet(s, n_neurons=1), train, val, batched=True, train_chunk=(16, 8), **kw)


def test_the_recurrent_auto_path_resolves_its_own_batch_size():
    from deepstrf_utils.training.options import BATCH_SIZE, _resolve_fit_options

    def resolve(model, **kw):
        args = dict(optimizer="auto", init="auto", lr=None, max_epochs=None, patience="auto", rel_tol=None,
                    train_chunk="auto")
        args.update(kw)
        return _resolve_fit_options(model, **args)

    o = resolve(_statenet())
    assert (o["batch_size"], o["train_chunk"], o["lr"]) == (RECURRENT_AUTO["batch_size"], RECURRENT_AUTO["chunk"],
                                                           RECURRENT_AUTO["lr"])
    assert resolve(_statenet(), batch_size=12)["batch_size"] == 12
    assert resolve(_statenet(), optimizer="adamw")["batch_size"] == BATCH_SIZE
    lin = build_model("Linear", n_bands=F, n_neurons=2, dt_ms=5.0, n_lags=4)
    assert resolve(lin)["batch_size"] == BATCH_SIZE
