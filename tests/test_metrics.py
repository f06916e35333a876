"""Tests of deepstrf_utils.metrics: known answers, exact agreement with independent NumPy
formulas, missing data, edge cases and losses. Everything is seeded and small."""

import logging

import numpy as np
import pytest
import torch

from deepstrf_utils import metrics as M
from deepstrf_utils.metrics import ceiling as MC
from deepstrf_utils.metrics import recording as MR

LOGGER = "deepstrf_utils.metrics"


# ----------------------------------------------------------------------------------------
# helpers: synthetic data and independent NumPy reference formulas
# ----------------------------------------------------------------------------------------
def oracle_rate(B=5, N=3, T=150, seed=0):
    """(B, N, T) rates in counts per bin whose mean level differs strongly between stimuli."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    offsets = np.linspace(0.05, 1.0, B)  # 1..20 "Hz-equivalent" with 50 ms bins
    rate = np.empty((B, N, T))
    for b in range(B):
        for n in range(N):
            period = 12 + 9 * n + rng.uniform(0, 4)
            rate[b, n] = offsets[b] + 0.25 * (1 + np.sin(2 * np.pi * t / period + rng.uniform(0, 6)))
    return rate


def poisson_resp(rate, R=20, seed=1):
    rng = np.random.default_rng(seed)
    B, N, T = rate.shape
    return rng.poisson(rate[:, :, None, :], size=(B, N, R, T)).astype(np.float64)


def concat(resp):
    """(B, N, R, T) -> (N, R, B*T), stimuli concatenated along time."""
    B, N, R, T = resp.shape
    return resp.transpose(1, 2, 0, 3).reshape(N, R, B * T)


def np_sp_np(y):
    """Sahani & Linden on (N, R, L): SP = (Var(sum_r y_r) - sum_r Var(y_r)) / (R (R - 1))."""
    R = y.shape[1]
    sp = (np.var(y.sum(1), axis=-1) - np.var(y, axis=-1).sum(1)) / (R * (R - 1))
    noise = np.var(y, axis=-1).mean(1) - sp
    return sp, noise


def np_cc(pred, resp):
    """Independent NumPy cc_raw / cc_norm on complete data (no NaN)."""
    B, N, T = pred.shape
    p = pred.transpose(1, 0, 2).reshape(N, B * T)
    y = concat(resp)
    ybar = y.mean(1)
    pc = p - p.mean(1, keepdims=True)
    yc = ybar - ybar.mean(1, keepdims=True)
    cov = (pc * yc).mean(1)
    sp, _ = np_sp_np(y)
    raw = cov / np.sqrt(pc.var(1) * yc.var(1))
    norm = cov / np.sqrt(pc.var(1) * sp)
    return raw, norm


@pytest.fixture(scope="module")
def data():
    rate = oracle_rate()
    return rate, poisson_resp(rate)


# ----------------------------------------------------------------------------------------
# the oracle: a perfect model scores cc_norm ~ 1
# ----------------------------------------------------------------------------------------
def test_oracle_true_rate_scores_one(data):
    rate, resp = data
    raw = M.cc_raw(rate, resp)
    norm = M.cc_norm(rate, resp)
    assert np.all(np.abs(norm - 1) < 0.03), norm
    assert np.all(raw < 0.95), raw
    # the defect we must not repeat: concatenated covariance / per-stimulus signal power
    B = resp.shape[0]
    sp_per_stim = np.mean([np_sp_np(resp[b])[0] for b in range(B)], axis=0)
    p = concat(rate[:, :, None, :])[:, 0]
    ybar = concat(resp).mean(1)
    cov = ((p - p.mean(1, keepdims=True)) * (ybar - ybar.mean(1, keepdims=True))).mean(1)
    assert np.all(cov / np.sqrt(p.var(1) * sp_per_stim) > 1.2)
    # the other noise corrections agree with it
    assert np.all(np.abs(M.fev(rate, resp) - 1) < 0.05)
    assert np.allclose(M.cc_max(resp), raw / norm, atol=0.02)
    assert np.allclose(M.cc_max_from_sp(resp) * norm, raw, rtol=1e-12)


def test_affine_invariance(data):
    rate, resp = data
    pred = rate + np.random.default_rng(3).normal(0, 0.2, rate.shape)
    for f in (M.cc_raw, M.cc_norm, M.ttrc):
        ref = f(pred, resp)
        np.testing.assert_allclose(f(2.5 * pred - 3.0, resp), ref, rtol=1e-10)
        np.testing.assert_allclose(f(-pred, resp), -ref, rtol=1e-10)
    assert not np.allclose(M.fev(2.0 * pred, resp), M.fev(pred, resp), atol=0.05)


def test_cc_matches_independent_numpy(data):
    rate, resp = data
    pred = rate ** 1.5 + np.random.default_rng(4).normal(0, 0.1, rate.shape)
    raw_ref, norm_ref = np_cc(pred, resp)
    np.testing.assert_allclose(M.cc_raw(pred, resp), raw_ref, rtol=1e-10)
    np.testing.assert_allclose(M.cc_norm(pred, resp), norm_ref, rtol=1e-10)
    out = M.cc_norm(torch.from_numpy(pred), torch.from_numpy(resp))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == (3,)
    np.testing.assert_allclose(out.numpy(), norm_ref, rtol=1e-10)
    out32 = M.cc_norm(torch.from_numpy(pred).float(), torch.from_numpy(resp).float())
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), norm_ref, rtol=1e-4)
    # unbatched (N, T) / (N, R, T): a single stimulus
    np.testing.assert_allclose(M.cc_norm(pred[2], resp[2]), np_cc(pred[2:3], resp[2:3])[1], rtol=1e-10)


def test_signal_and_noise_power_sahani_linden(data):
    _, resp = data
    sp_ref, np_ref = np_sp_np(concat(resp))
    np.testing.assert_allclose(M.signal_power(resp), sp_ref, rtol=1e-10)
    np.testing.assert_allclose(M.noise_power(resp), np_ref, rtol=1e-10)
    # SP = (R P(ybar) - mean_r P(y_r)) / (R - 1)
    y = concat(resp)
    R = y.shape[1]
    np.testing.assert_allclose(sp_ref, (R * y.mean(1).var(1) - y.var(2).mean(1)) / (R - 1), rtol=1e-12)


def test_signal_power_limits():
    rng = np.random.default_rng(5)
    noise = rng.normal(2.0, 1.0, size=(6, 4, 30, 100))
    sp, npow = M.signal_power(noise), M.noise_power(noise)
    assert np.all(np.abs(sp) < 0.01) and np.allclose(npow, 1.0, atol=0.05)
    clean = np.broadcast_to(rng.normal(size=(6, 4, 1, 100)), (6, 4, 5, 100)).copy()
    var = concat(clean)[:, 0].var(1)
    np.testing.assert_allclose(M.signal_power(clean), var, rtol=1e-12)
    np.testing.assert_allclose(M.noise_power(clean), 0.0, atol=1e-12)
    np.testing.assert_allclose(M.cc_max(clean), 1.0, rtol=1e-12)
    np.testing.assert_allclose(M.cc_max_from_sp(clean), 1.0, rtol=1e-12)
    np.testing.assert_allclose(M.mean_trial_correlation(clean), 1.0, rtol=1e-12)


# ----------------------------------------------------------------------------------------
# missing data
# ----------------------------------------------------------------------------------------
def test_padding_gives_the_unpadded_answer(data):
    rate, resp = data
    pred = rate + 0.3 * np.cos(rate * 7)
    B, N, R, T = resp.shape
    # pad time (ragged stimuli) and repeats with NaN; pred holds garbage in the padding
    resp_p = np.full((B, N, R + 2, T + 7), np.nan)
    resp_p[:, :, :R, :T] = resp
    pred_p = np.full((B, N, T + 7), 1e6)
    pred_p[:, :, :T] = pred
    pred_p[0, :, T:] = np.nan
    ref = M.score(pred, resp)
    got = M.score(pred_p, resp_p)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-10, err_msg=key)
    # different lengths per stimulus: drop the tail of stimulus 1 in both
    resp_r = resp_p.copy()
    resp_r[1, :, :, T - 20:] = np.nan
    keep = np.ones(B * T, bool)
    keep[T + T - 20: 2 * T] = False
    y = concat(resp)[:, :, keep]
    p = concat(pred[:, :, None, :])[:, 0][:, keep]
    sp_ref, _ = np_sp_np(y)
    cov = ((p - p.mean(1, keepdims=True)) * (y.mean(1) - y.mean(1).mean(1, keepdims=True))).mean(1)
    np.testing.assert_allclose(M.signal_power(resp_r), sp_ref, rtol=1e-10)
    np.testing.assert_allclose(M.cc_norm(pred_p, resp_r), cov / np.sqrt(p.var(1) * sp_ref), rtol=1e-10)


def test_computation_layouts_agree(data):
    """complete / structured (whole missing trials) / general (missing cells) paths."""
    _, resp = data
    t = torch.from_numpy(resp)
    half = MC._split_masks(resp.shape[2], 16, 0, "cpu")
    recs = [MR.Recording(t, layout=k) for k in (None, "structured", "general")]
    assert [r.layout for r in recs] == ["complete", "structured", "general"]
    missing = t.clone()
    missing[1, :, 3] = np.nan  # whole trials missing in some stimuli
    missing[4, 0, 5:9] = np.nan
    missing[2, :, :, 140:] = np.nan  # and padding
    recs_m = [MR.Recording(missing), MR.Recording(missing, layout="general")]
    assert [r.layout for r in recs_m] == ["structured", "general"]
    for group in (recs, recs_m):
        ref = group[0]
        ref_half = MC._half_corr_moments(ref, half) if ref.layout != "general" else None
        for rec in group[1:]:
            torch.testing.assert_close(rec.signal_power, ref.signal_power, rtol=1e-10, atol=0)
            torch.testing.assert_close(rec.noise_power, ref.noise_power, rtol=1e-10, atol=0)
            torch.testing.assert_close(MC.trial_corr_values(rec, "t"), MC.trial_corr_values(ref, "t"),
                                       rtol=1e-10, atol=0)
            fn = MC._half_corr_per_bin if rec.layout == "general" else MC._half_corr_moments
            torch.testing.assert_close(fn(rec, half), ref_half, rtol=1e-10, atol=0)


def test_repeat_patterns_grouping():
    """Pooling stimuli by their valid repeats: integer codes (R <= 62) and rows (R > 62)."""
    g = torch.Generator().manual_seed(0)
    for R in (5, 20, 70):
        valid = torch.rand(40, R, generator=g) < 0.5
        valid[::3] = valid[0]  # repeated patterns
        patterns, group = MC._repeat_patterns(valid)
        assert torch.equal(patterns[group], valid)
        assert patterns.shape[0] == torch.unique(valid, dim=0).shape[0]
        one, zeros = MC._repeat_patterns(valid[:1].expand(7, R))
        assert one.shape == (1, R) and torch.equal(zeros, torch.zeros(7, dtype=torch.long))


def test_float32_matches_float64(data):
    """float32 input (accumulated in float32, then float64) agrees with float64 input."""
    rate, resp = data
    resp = resp + 20.0  # a high baseline, where cancellation would show
    cells = resp.copy()
    cells[np.random.default_rng(3).random(resp.shape) < 0.05] = np.nan
    trials = resp.copy()
    trials[1, :, 4:9] = np.nan
    trials[3, :, :, 120:] = np.nan
    for r in (resp, trials, cells):
        ref = M.score(rate, r, n_splits=8)
        got = M.score(rate.astype(np.float32), r.astype(np.float32), n_splits=8)
        for key in ref:
            assert got[key].dtype == np.float32
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-4, err_msg=key)


def test_missing_trials_oracle():
    """Stimuli with 20, 15, 10, 20 and 12 repeats, plus scattered missing cells.

    Estimator spread over seeds here is ~0.012 (unbiased), hence the 0.04 tolerance."""
    rate = oracle_rate(seed=7)
    resp = poisson_resp(rate, seed=8)
    for b, r in enumerate((20, 15, 10, 20, 12)):
        resp[b, :, r:] = np.nan
    norm = M.cc_norm(rate, resp)
    assert np.all(np.abs(norm - 1) < 0.04), norm
    assert np.all(np.abs(M.fev(rate, resp) - 1) < 0.08)
    cells = resp.copy()
    cells[np.random.default_rng(9).random(resp.shape) < 0.1] = np.nan
    assert np.all(np.abs(M.cc_norm(rate, cells) - 1) < 0.04)
    assert np.allclose(M.cc_max(cells, n_splits=20), M.cc_max_from_sp(cells), atol=0.03)
    # one trial missing everywhere == the recording without it
    resp = poisson_resp(rate, seed=10)
    dropped = resp.copy()
    dropped[:, :, 4] = np.nan
    np.testing.assert_allclose(M.signal_power(dropped), np_sp_np(concat(np.delete(resp, 4, 2)))[0], rtol=1e-10)


# ----------------------------------------------------------------------------------------
# edge cases: defined values, logged warnings, no silent NaN
# ----------------------------------------------------------------------------------------
def test_constant_prediction(data, caplog):
    rate, resp = data
    pred = rate.copy()
    pred[:, 1] = 0.7
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        norm = M.cc_norm(pred, resp)
        raw = M.cc_raw(pred, resp)
    assert norm[1] == 0.0 and raw[1] == 0.0 and np.all(np.isfinite(norm))
    assert "constant prediction" in caplog.text


def test_single_repeat(data, caplog):
    rate, resp = data
    one = resp.copy()
    one[:, 0, 1:] = np.nan  # neuron 0 has a single repeat
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        norm = M.cc_norm(rate, one)
    assert np.isnan(norm[0]) and np.all(np.isfinite(norm[1:]))
    assert "single repeat: no noise ceiling, report cc_raw" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        mean = M.cc_norm(rate, one, reduction="mean")
    assert mean == pytest.approx(norm[1:].mean(), rel=1e-12)
    assert "1 NaN neurons dropped" in caplog.text
    assert np.isfinite(M.cc_raw(rate, one)[0])
    for f in (M.signal_power, M.noise_power, M.cc_max, M.mean_trial_correlation):
        assert np.isnan(f(one[:, :1])[0])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert np.all(np.isnan(M.cc_norm(rate[:, :, :], resp[:, :, :1])))
        assert np.isnan(M.cc_norm(rate, resp[:, :, :1], reduction="mean"))
    assert "all 3 neurons are NaN" in caplog.text


def test_no_signal_power(caplog):
    rng = np.random.default_rng(11)
    resp = np.ones((3, 2, 10, 50))
    resp[:, 1] = rng.normal(size=(3, 10, 50))  # pure noise: SP ~ 0, may be negative
    resp[:, 1] -= resp[:, 1].mean(1, keepdims=True) - rng.normal(0, 1e-3, size=(3, 1, 50))
    pred = rng.normal(size=(3, 2, 50))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        out = M.cc_norm(pred, resp)
        f = M.fev(pred, resp)
    assert np.isnan(out[0]) and np.isnan(f[0])  # constant response: SP = 0
    assert "signal power <= 0" in caplog.text
    assert M.cc_raw(pred, resp)[0] == 0.0


def test_non_finite_prediction(data, caplog):
    rate, resp = data
    pred = rate.copy()
    pred[2, 2, 5] = np.inf
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        out = M.cc_norm(pred, resp)
    assert np.isnan(out[2]) and np.all(np.isfinite(out[:2]))
    assert "NaN/inf" in caplog.text


def test_cc_max_seeded(data):
    _, resp = data
    a = M.cc_max(resp, n_splits=30, seed=1)
    np.testing.assert_array_equal(a, M.cc_max(resp, n_splits=30, seed=1))
    assert not np.array_equal(a, M.cc_max(resp, n_splits=30, seed=2))
    np.testing.assert_allclose(a, M.cc_max(resp, n_splits=30, seed=2), atol=0.01)
    with pytest.raises(ValueError, match="n_splits"):
        M.cc_max(resp, n_splits=0)


def test_cc_max_split_half_numpy(data):
    """Split-half correlation and Spearman-Brown written out for two given splits."""
    _, resp = data
    y = concat(resp)
    half = MC._split_masks(20, 2, 0, "cpu").numpy().astype(bool)
    rho = []
    for h in half:
        a, b = y[:, h].mean(1), y[:, ~h].mean(1)
        rho.append([np.corrcoef(a[n], b[n])[0, 1] for n in range(y.shape[0])])
    rho = np.mean(rho, 0)
    np.testing.assert_allclose(M.cc_max(resp, n_splits=2, seed=0), np.sqrt(2 / (1 + 1 / rho)), rtol=1e-10)


def test_trial_correlation_and_ttrc(data):
    rate, resp = data
    y = concat(resp)
    R = y.shape[1]
    ref = np.array([(np.corrcoef(y[n]).sum() - R) / (R * (R - 1)) for n in range(y.shape[0])])
    ttc = M.mean_trial_correlation(resp)
    np.testing.assert_allclose(ttc, ref, rtol=1e-10)
    np.testing.assert_allclose(M.ttrc(rate, resp), M.cc_raw(rate, resp) / np.sqrt(ref), rtol=1e-10)


def test_fev_formula(data):
    rate, resp = data
    y = concat(resp)
    sp, noise = np_sp_np(y)
    ybar = y.mean(1)
    R = y.shape[1]
    mean_pred = np.broadcast_to(ybar.mean(1)[None, :, None], rate.shape)
    np.testing.assert_allclose(M.fev(mean_pred, resp), 0.0, atol=1e-10)
    p = concat(rate[:, :, None, :])[:, 0]
    ref = 1 - (((p - ybar) ** 2).mean(1) - noise / R) / sp
    np.testing.assert_allclose(M.fev(rate, resp), ref, rtol=1e-10)


def test_shapes_types_and_bad_input(data):
    rate, resp = data
    t = M.cc_raw(torch.from_numpy(rate).float(), torch.from_numpy(resp).float(), reduction="mean")
    assert isinstance(t, torch.Tensor) and t.ndim == 0
    assert isinstance(M.cc_raw(rate, resp, reduction="mean"), np.floating)
    assert M.signal_power(resp.astype(np.int64)).dtype == np.float64
    with pytest.raises(ValueError, match=r"\(B, N, T\)"):
        M.cc_norm(rate[:, :2], resp)
    with pytest.raises(ValueError, match=r"\(B, N, R, T\)"):
        M.cc_norm(rate, resp[0])
    with pytest.raises(ValueError, match=r"\(B, N, R, T\)"):
        M.signal_power(resp[0, 0])
    with pytest.raises(ValueError, match="reduction"):
        M.cc_raw(rate, resp, reduction="sum")
    scores = M.score(rate, resp)
    assert set(scores) == {"cc_raw", "cc_norm", "cc_max", "cc_max_from_sp", "ttrc",
                           "mean_trial_correlation", "fev", "signal_power", "noise_power"}
    np.testing.assert_array_equal(scores["cc_max"], M.cc_max(resp))
    np.testing.assert_array_equal(scores["cc_norm"], M.cc_norm(rate, resp))


# ----------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------
def test_mse_loss_manual_and_masked():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 8, generator=g, dtype=torch.float64, requires_grad=True)
    resp = torch.rand(2, 3, 4, 8, generator=g, dtype=torch.float64)
    resp[0, 1, :, 5:] = np.nan  # padding in neuron 1
    resp[1, 2, 0] = np.nan  # a missing trial
    target = torch.nanmean(resp, 2)
    valid = ~torch.isnan(target)
    err = torch.where(valid, pred - torch.nan_to_num(target), 0.0).square()
    per_neuron = err.sum((0, 2)) / valid.sum((0, 2))
    torch.testing.assert_close(M.mse_loss(pred, resp, reduction="none"), per_neuron)
    torch.testing.assert_close(M.mse_loss(pred, resp), err.sum() / valid.sum())
    torch.testing.assert_close(M.mse_loss(pred, resp, reduction="sum"), err.sum())
    torch.testing.assert_close(M.mse_loss(pred, target), err.sum() / valid.sum())  # averaged target
    # unequal valid counts: pooled mean != mean of per-neuron losses
    assert not torch.isclose(M.mse_loss(pred, resp), per_neuron.mean())
    loss = M.mse_loss(pred, resp)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[0, 1, 5:] == 0).all() and (pred.grad[0, 1, :5] != 0).all()
    full = torch.rand(2, 3, 4, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(M.mse_loss(pred, full), M.mse_loss(pred, full, reduction="none").mean())


def test_poisson_loss():
    g = torch.Generator().manual_seed(1)
    pred = (torch.rand(2, 2, 6, generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    resp = torch.poisson(torch.full((2, 2, 3, 6), 2.0, dtype=torch.float64), generator=g)
    resp[1, 0, :, 4:] = np.nan
    ybar = torch.nanmean(resp, 2)
    valid = ~torch.isnan(ybar)
    elem = torch.where(valid, pred - torch.nan_to_num(ybar) * torch.log(pred), 0.0)
    torch.testing.assert_close(M.poisson_loss(pred, resp), elem.sum() / valid.sum())
    M.poisson_loss(pred, resp).backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad[1, 0, 4:] == 0).all()
    zero = torch.zeros(2, 2, 6, dtype=torch.float64, requires_grad=True)
    out = M.poisson_loss(zero, resp, reduction="none", eps=1e-8)
    assert out.shape == (2,) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="non-negative"):
        M.poisson_loss(pred, -resp)


def test_correlation_loss():
    rate = oracle_rate(B=2, N=3, T=40)
    resp = torch.from_numpy(poisson_resp(rate, R=5))
    resp[0, 2, :, 30:] = np.nan
    pred = (torch.from_numpy(rate) + 0.1 * torch.randn(2, 3, 40, generator=torch.Generator().manual_seed(2),
                                                         dtype=torch.float64)).requires_grad_()
    loss = M.correlation_loss(pred, resp, reduction="none", eps=0.0)
    torch.testing.assert_close(loss, 1 - M.cc_raw(pred.detach(), resp))
    M.correlation_loss(pred, resp).backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad[0, 2, 30:] == 0).all()
    flat = torch.full((2, 3, 40), 0.5, dtype=torch.float64, requires_grad=True)
    out = M.correlation_loss(flat, resp)
    out.backward()
    assert out.item() == pytest.approx(1.0) and torch.isfinite(flat.grad).all()


def test_get_loss():
    assert M.get_loss("mse") is M.mse_loss
    assert M.get_loss("Poisson") is M.poisson_loss
    assert M.get_loss("correlation") is M.correlation_loss
    assert M.get_loss(M.mse_loss) is M.mse_loss
    with pytest.raises(ValueError, match="mse"):
        M.get_loss("l1")
    with pytest.raises(ValueError, match="reduction"):
        M.mse_loss(torch.zeros(1, 1, 3), torch.zeros(1, 1, 2, 3), reduction="avg")
    with pytest.raises(ValueError, match=r"\(B, N, R, T\)"):
        M.mse_loss(torch.zeros(1, 2, 3), torch.zeros(1, 1, 2, 3))


def test_trial_average_numpy_and_torch_agree_and_mark_empty_bins():
    from deepstrf_utils.metrics import trial_average

    r = np.array([[[1.0, np.nan, 5.0], [3.0, np.nan, np.nan]]], dtype=np.float32)  # (N=1, R=2, T=3)
    out = trial_average(r)
    assert out.dtype == np.float32 and out.shape == (1, 3)
    np.testing.assert_array_equal(out, np.array([[2.0, np.nan, 5.0]], dtype=np.float32))
    t = trial_average(torch.from_numpy(r))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), out)


def test_masked_corr_known_answers_masks_and_types():
    a = np.array([[1.0, 2.0, 3.0, 4.0, 100.0], [1.0, 1.0, 1.0, 1.0, 2.0]])
    b = np.array([[2.0, 4.0, 6.0, 8.0, -50.0], [3.0, 1.0, 2.0, 5.0, 0.0]])
    valid = np.array([[True, True, True, True, False], [True, True, True, True, False]])
    r = M.masked_corr(a, b, valid)
    assert isinstance(r, np.ndarray) and r.dtype == np.float64 and r.shape == (2,)
    assert r[0] == pytest.approx(1.0, abs=1e-15)  # the outlier bin is masked out
    assert np.isnan(r[1])  # a constant over the valid bins: no correlation
    # against numpy on random data, torch in -> torch out
    rng = np.random.default_rng(1)
    x, y = rng.random((3, 40)), rng.random((3, 40))
    keep = rng.random((3, 40)) > 0.3
    t = M.masked_corr(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(keep))
    assert isinstance(t, torch.Tensor)
    ref = [np.corrcoef(x[i][keep[i]], y[i][keep[i]])[0, 1] for i in range(3)]
    np.testing.assert_allclose(t.numpy(), ref, rtol=1e-12)
    # valid=None: the finite bins of both; fewer than 2 valid bins -> NaN
    x2 = x.copy()
    x2[0, :20] = np.nan
    np.testing.assert_allclose(M.masked_corr(x2, y)[0], np.corrcoef(x[0, 20:], y[0, 20:])[0, 1], rtol=1e-12)
    assert np.isnan(M.masked_corr(np.array([1.0, 2.0]), np.array([3.0, 5.0]), np.array([True, False])))
    with pytest.raises(ValueError, match="same shape"):
        M.masked_corr(x, y[:, :3])
    with pytest.raises(ValueError, match="bool mask"):
        M.masked_corr(x, y, keep[:, :3])


def test_cc_raw_is_masked_corr_of_the_trial_average():
    """One correlation: cc_raw equals masked_corr(pred, trial average) where both are defined."""
    rng = np.random.default_rng(2)
    resp = rng.random((2, 3, 4, 30))  # (B, N, R, T)
    resp[0, 1, :, 25:] = np.nan  # padding
    resp[1, 2, 1] = np.nan  # a missing trial
    pred = rng.random((2, 3, 30))
    ybar = M.trial_average(resp).transpose(1, 0, 2).reshape(3, -1)
    p = pred.transpose(1, 0, 2).reshape(3, -1)
    np.testing.assert_allclose(M.cc_raw(pred, resp), M.masked_corr(p, ybar, np.isfinite(ybar)), rtol=1e-13)
