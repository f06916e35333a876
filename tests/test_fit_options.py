"""One options object for the three fitting entry points: fit, fit_single_units and fit_sessions
take the same FitOptions (same names, same defaults), as an object or as keyword arguments; an
unknown option is a TypeError naming it; fit_sessions' AdamW settings come from the same resolver."""
import dataclasses
import inspect

import pytest
import torch

from deepstrf_utils.datasets.synthetic import generate_synthetic
from deepstrf_utils.models import build_model
from deepstrf_utils.training import (ADAMW_FIT_KWARGS, FitOptions, fit, fit_sessions, fit_single_units,
                                     resolve_fit_options)
from deepstrf_utils.training.options import SESSIONS_AUTO, WEIGHT_DECAY

F = 8
ENTRY_POINTS = (fit, fit_single_units, fit_sessions)
QUIET = dict(device="cpu", progress=False)


@pytest.fixture(scope="module")
def splits():
    return generate_synthetic(n_neurons=2, n_clips=6, clip_s=0.4, n_repeats=2, n_bands=F, seed=0).split(0)


def ln(n=2, seed=0):
    torch.manual_seed(seed)
    return build_model("LinearNonlinear", n_bands=F, n_neurons=n, n_lags=3)


def test_the_three_entry_points_take_the_same_options_with_the_same_defaults():
    defaults = {f.name: f.default for f in dataclasses.fields(FitOptions)}
    assert {"loss", "optimizer", "init", "lr", "patience", "batch_size", "train_chunk", "seed"} <= set(defaults)
    for fn in ENTRY_POINTS:
        params = inspect.signature(fn).parameters
        got = {n: params[n].default for n in defaults if n in params}
        assert got == defaults, fn.__name__
        assert all(params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in defaults), fn.__name__


@pytest.mark.parametrize("fn", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_an_unknown_option_is_a_type_error_naming_it(splits, fn):
    train, val, _ = splits
    first = (lambda s: ln(1, s)) if fn is fit_single_units else ln()
    with pytest.raises(TypeError, match=rf"{fn.__name__}\(\) got an unknown option 'lrr' \(did you mean 'lr'\?\)"):
        fn(first, train, val, lrr=1e-3, **QUIET)
    with pytest.raises(TypeError, match=r"unknown option 'n_epochs'"):
        fn(first, train, val, options={"n_epochs": 3})
    with pytest.raises(TypeError, match=r"expected options to be a FitOptions .* got 'mse' \(str\)"):
        fn(first, train, val, "mse") if fn is not fit_single_units else fn(first, train, val, None, None, "mse")


def test_an_options_object_and_keywords_give_the_same_fit_and_keywords_override_it(splits):
    train, val, _ = splits
    kw = dict(optimizer="adamw", max_epochs=3, batch_size=2, seed=3, **QUIET)
    a, b, c = ln(), ln(), ln()
    ra = fit(a, train, val, **kw)
    rb = fit(b, train, val, FitOptions(**kw))
    rc = fit(c, train, val, FitOptions(**{**kw, "max_epochs": 1}), max_epochs=3)
    assert ra.train_loss == rb.train_loss == rc.train_loss and len(ra.train_loss) == 3
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, rtol=0, atol=0)
        torch.testing.assert_close(c.state_dict()[k], v, rtol=0, atol=0)
    ms, rs = fit_single_units(lambda s: ln(1, s), train, val, options=FitOptions(**kw), neurons=[0])
    assert rs[0].optimizer == "adamw" and len(rs[0].train_loss) == 3


def test_fit_sessions_resolves_through_the_same_rule_to_its_adamw_defaults():
    """fit_sessions' defaults (AdamW, lr 1e-3, weight decay 1e-2, batch 8, patience 50) are the
    resolver's rule for that entry point, for every model; what it cannot do is refused."""
    for model in (ln(), build_model("NetworkReceptiveField", n_bands=F, n_neurons=2, n_lags=3)):
        o = resolve_fit_options(model, FitOptions(), entry="fit_sessions")
        assert (o["optimizer"], o["init"], o["train_chunk"], o["starts"]) == ("adamw", None, None, [])
        assert (o["lr"], o["weight_decay"], o["batch_size"], o["patience"], o["max_epochs"], o["rel_tol"]) == (
            1e-3, 1e-2, 8, 50, 1000, 0.0)
    assert {k: v for k, v in ADAMW_FIT_KWARGS.items() if k in SESSIONS_AUTO} == SESSIONS_AUTO
    assert ADAMW_FIT_KWARGS["weight_decay"] == WEIGHT_DECAY
    assert resolve_fit_options(ln(), FitOptions(lr=3e-3, patience=None), entry="fit_sessions")["lr"] == 3e-3
    for bad, word in ((dict(optimizer="lbfgs"), "optimizer"), (dict(init="ridge"), "init"),
                      (dict(train_chunk=(16, 8)), "train_chunk"), (dict(scheduler="plateau"), "scheduler")):
        with pytest.raises(ValueError, match=word):
            resolve_fit_options(ln(), FitOptions(**bad), entry="fit_sessions")
    with pytest.raises(ValueError, match="expected entry"):
        resolve_fit_options(ln(), FitOptions(), entry="fit_session")


def test_fit_sessions_defaults_equal_its_previous_explicit_settings(splits):
    train, val, _ = splits
    a, b = ln(), ln()
    ra = fit_sessions(a, train, val, max_epochs=4, **QUIET)
    rb = fit_sessions(b, train, val, lr=1e-3, weight_decay=1e-2, batch_size=8, patience=50, max_epochs=4, **QUIET)
    assert ra.train_loss == rb.train_loss and ra.val_loss == rb.val_loss
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, rtol=0, atol=0)
