"""Bad inputs to models, prefilters, fit / evaluate and the runner: each gives a clear error
(its type, and a message naming what was expected and what was got), never a silent wrong
result or a raw torch / numpy error. Shapes: B stimuli, F bands, T bins, N neurons."""
import logging
import math

import numpy as np
import pytest
import torch

from deepstrf_utils.runs import runner
from deepstrf_utils.adaptrans import AdapTrans, WillmoreHighPass, adaptrans_filter
from deepstrf_utils.datasets import ResponseDataset
from deepstrf_utils.datasets.synthetic import generate_synthetic
from deepstrf_utils.models import MultiSessionModel, StateGainModel, build_model
from deepstrf_utils.models.registry import MODELS
from deepstrf_utils.shapes import check_stimulus
from deepstrf_utils.training import (evaluate, fit, fit_sessions, fit_single_units, fit_two_stage, predict,
                                     resolve_device, seed_everything)

from test_models import SMALL  # small constructor values of every model

F, T = 16, 40
PREFILTERS = (None, "adaptrans", "willmore")
CASES = [(name, pre) for name in MODELS for pre in PREFILTERS]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def make(name, prefilter=None, **kw):
    torch.manual_seed(0)
    return MODELS[name](F, 2, prefilter=prefilter, **{**SMALL[name], **kw}).eval()


def stimulus(b=3, t=T, dtype=torch.float32):
    return torch.rand(b, 1, F, t, generator=torch.Generator().manual_seed(1)).to(dtype)


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(n_neurons=3, n_clips=6, clip_s=0.5, n_repeats=3, n_bands=F, seed=0)


@pytest.fixture(scope="module")
def splits(data):
    return data.split(0)


def ln(n=3, **kw):
    return build_model("LinearNonlinear", n_bands=F, n_neurons=n, n_lags=4, **kw)


FAST = dict(max_epochs=1, device="cpu", progress=False)


# ----------------------------------------------------------------------------- stimuli into models
@pytest.mark.parametrize("name,prefilter", CASES)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_model_rejects_a_nonfinite_bin_naming_stimulus_band_and_bin(name, prefilter, value):
    """One NaN / inf bin made the whole output NaN (every earlier bin too on the FFT paths):
    now a ValueError naming the stimulus, band and bin."""
    x = stimulus()
    x[1, 0, 3, 25] = value
    kind = "NaN" if math.isnan(value) else "inf"
    with pytest.raises(ValueError, match=rf"finite stimulus .* got {kind} in stimulus 1 at band 3, bin 25"):
        make(name, prefilter)(x)


@pytest.mark.parametrize("module", [lambda: AdapTrans(F), lambda: WillmoreHighPass(F),
                                    lambda: AdapTrans(F, rectify="relu", kernel_size=8)])
def test_prefilters_alone_reject_nonfinite_and_empty_input(module):
    x = stimulus()
    x[2, 0, 15, 0] = math.inf
    with pytest.raises(ValueError, match=r"got inf in stimulus 2 at band 15, bin 0 \(1 non-finite value"):
        module()(x)
    with pytest.raises(ValueError, match=r"expected at least one stimulus \(B >= 1\).*got an empty batch \(0, 1, 16, 40\)"):
        module()(stimulus(0))
    with pytest.raises(ValueError, match="finite stimulus"):
        adaptrans_filter(x, 0.5, 0.6, 0.7, kernel_size=20)


def test_a_finite_batch_whose_sum_overflows_passes_the_check():
    """The check proves finiteness from the sum; a sum that overflows is settled exactly."""
    x = torch.full((2, 1, 3, 4), 3e38)
    check_stimulus(x, 3)
    x[1, 0, 2, 3] = -math.inf
    with pytest.raises(ValueError, match=r"got inf in stimulus 1 at band 2, bin 3"):
        check_stimulus(x, 3)


@pytest.mark.parametrize("name,prefilter", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.int64])
def test_every_model_rejects_another_dtype_naming_the_one_expected(name, prefilter, dtype):
    """float64 / float16 stimuli reached a raw "expected scalar type" error: nothing is cast,
    a TypeError names the model's dtype and the conversion."""
    with pytest.raises(TypeError, match=rf"of dtype float32, got {dtype}: convert it with x.float\(\)"):
        make(name, prefilter)(stimulus(dtype=dtype))


@pytest.mark.parametrize("name", ["Linear", "DNet", "ConvNet2D"])
def test_a_float64_model_takes_float64_stimuli(name):
    model = make(name, "adaptrans")
    x = stimulus()
    with torch.no_grad():
        y32 = model(x)
        y64 = model.double()(x.double())
    assert y64.dtype == torch.float64
    torch.testing.assert_close(y64.float(), y32, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match=r"dtype float64, got torch.float32: convert it with x.to\(torch.float64\)"):
        model(x)


def test_float64_models_predict_and_are_refused_by_fit(splits):
    """predict gives a model its parameters' dtype; fit trains float32 models (float32 data)."""
    train, val, test = splits
    model = ln()
    p32 = predict(model, test)
    p64 = predict(model.double(), test)
    np.testing.assert_allclose(p64[0], p32[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match=r"expected a float32 model \(fit trains on float32 data\), got parameters "
                                        r"of dtype torch.float64: convert it with model.float\(\)"):
        fit(model, train, val, **FAST)


def test_prefilters_compute_in_float32_or_float64_only():
    x = stimulus()
    for module in (AdapTrans(F), WillmoreHighPass(F)):
        assert module(x.double()).dtype == torch.float64
        for dtype in (torch.float16, torch.bfloat16, torch.int32):
            with pytest.raises(TypeError, match=rf"dtype float32 or float64, got {dtype}"):
                module(x.to(dtype))


@pytest.mark.parametrize("name,prefilter", CASES)
def test_every_model_rejects_an_empty_batch(name, prefilter):
    """B = 0 raised an MKL FFT error with AdapTrans; every model now says what it expected."""
    with pytest.raises(ValueError, match=r"at least one stimulus \(B >= 1\) in a batch \(B, 1, F, T\) with F=16, "
                                         r"got an empty batch \(0, 1, 16, 40\)"):
        make(name, prefilter)(stimulus(0))


@pytest.mark.parametrize("name,prefilter", CASES)
def test_every_model_rejects_the_wrong_number_of_bands(name, prefilter):
    with pytest.raises(ValueError, match=r"\(B, 1, F, T\) with F=16, got \(3, 1, 17, 40\)"):
        make(name, prefilter)(torch.rand(3, 1, 17, T))


def test_composite_models_share_the_stimulus_check():
    multi = MultiSessionModel("NetworkReceptiveField", dict(n_bands=F, n_hidden=3, n_lags=4), {"a": 2})
    gain = StateGainModel(ln(2), n_states=1)
    x = stimulus()
    x[0, 0, 0, 5] = math.nan
    with pytest.raises(ValueError, match="got NaN in stimulus 0 at band 0, bin 5"):
        multi(x)
    with pytest.raises(ValueError, match="got NaN in stimulus 0 at band 0, bin 5"):
        gain(x, torch.zeros(3, 1, T))
    with pytest.raises(TypeError, match="dtype float32"):
        multi(stimulus(dtype=torch.float64))


def test_models_still_run_under_vmap_over_stimuli():
    """Inside torch.func.vmap over the stimuli the values cannot be read: the check is skipped there."""
    model = make("Linear")
    x = torch.rand(4, 2, 1, F, T)
    with torch.no_grad():
        out = torch.func.vmap(model)(x)
        torch.testing.assert_close(out, torch.stack([model(v) for v in x]))


@pytest.mark.parametrize("lengths,match", [([0, 40, 40], "between 1 and T=40, got \\[0, 40, 40\\]"),
                                           ([-1, 40, 40], "between 1 and T=40"),
                                           ([41, 40, 40], "between 1 and T=40"),
                                           ([5.0, 40.0, 40.0], "tensor of shape \\(B,\\) = \\(3,\\) of integers .* torch.float32")])
@pytest.mark.parametrize("name", ["ConvNet2D", "StateNet"])
def test_bad_valid_lengths_are_refused(name, lengths, match):
    """A stimulus with no valid bin left BatchNorm's statistics NaN, silently."""
    model = make(name).train()
    with pytest.raises(ValueError, match=match):
        model(stimulus(), lengths=torch.tensor(lengths))


# ----------------------------------------------------------------------------- constructor values
@pytest.mark.parametrize("dt_ms", [math.inf, 0.0, -5.0, math.nan])
def test_dt_ms_is_checked_where_it_enters(dt_ms, data):
    """dt_ms=inf reported "kernel_size must be >= 2, got None"; models without a prefilter accepted it."""
    match = r"expected dt_ms \(the bin width in ms\) > 0 \(a finite number\), got"
    for make_one in (lambda: AdapTrans(F, dt_ms=dt_ms), lambda: WillmoreHighPass(F, dt_ms=dt_ms)):
        with pytest.raises(ValueError, match=match):
            make_one()
    for name in MODELS:
        for prefilter in PREFILTERS:
            with pytest.raises(ValueError, match=match):
                make(name, prefilter, dt_ms=dt_ms)
    with pytest.raises(ValueError, match=r"dt_ms > 0 \(bin width in ms\)"):
        ResponseDataset(data.stimuli, data.responses, dt_ms, data.cf_hz)
    with pytest.raises(TypeError, match=r"dt_ms \(the bin width in ms\) > 0 \(a finite number\), got '5' \(str\)"):
        AdapTrans(F, dt_ms="5")


@pytest.mark.parametrize("build,error,match", [
    (lambda: AdapTrans(F, kernel_size=2.5), ValueError, r"kernel_size .* >= 2 \(an integer or None\), got 2.5"),
    (lambda: AdapTrans(F, kernel_size=math.nan), ValueError, r"kernel_size .* got nan"),
    (lambda: AdapTrans(2.5), ValueError, r"n_bands >= 1 \(a positive integer\), got 2.5"),
    (lambda: AdapTrans("16"), TypeError, r"n_bands >= 1 \(a positive integer\), got '16' \(str\)"),
    (lambda: AdapTrans(F, w0="0.5"), TypeError, r"w0 .* > 0 and < 1 \(a finite number\), got '0.5'"),
    (lambda: AdapTrans(F, learnable="no"), TypeError, r"learnable to be True or False, got 'no'"),
    (lambda: AdapTrans(F, max_freq=math.inf), ValueError, r"max_freq \(Hz\) > 0 \(a finite number\), got inf"),
    (lambda: make("Linear", "adaptrans", prefilter_kwargs={"w0": math.nan}), ValueError, r"w0 .* got nan"),
    (lambda: make("Linear", "adaptrans", prefilter_kwargs={"min_freq": math.nan}), ValueError, r"min_freq .* nan"),
    (lambda: make("Linear", n_lags=0), ValueError, r"n_lags >= 1 \(a positive integer\), got 0"),
    (lambda: MODELS["Linear"](F, n_neurons=0), ValueError, r"n_neurons >= 1 \(a positive integer\), got 0"),
    (lambda: make("DNet", k_init="0.5"), TypeError, r"k_init .* got '0.5' \(str\)"),
    (lambda: make("ConvNet2D", negative_slope=math.nan), ValueError, r"negative_slope \(a finite number\), got nan"),
])
def test_constructor_values_of_the_wrong_type_or_range(build, error, match):
    with pytest.raises(error, match=match):
        build()


# ----------------------------------------------------------------------------- fit / evaluate
def _val_of(splits, n):
    return splits[1].select(list(splits[1].neuron_ids[:n]))


def test_the_training_set_as_validation_set_is_refused(splits):
    train, val, _ = splits
    match = "expected a validation set other than the training set, got the same dataset"
    with pytest.raises(ValueError, match=match):
        fit(ln(), train, train, **FAST)
    with pytest.raises(ValueError, match=match):
        fit_single_units(lambda s: ln(1), train, train, **FAST)
    with pytest.raises(ValueError, match=match):
        fit_sessions(ln(), train, train, **FAST)
    copy = train.subset(list(range(len(train))))  # another object, the same stimuli
    with pytest.raises(ValueError, match=rf"all {len(train)} validation stimuli of .* in the training set"):
        fit(ln(), train, copy, **FAST)


def test_validation_stimuli_shared_with_training_are_named_in_a_warning(data, caplog):
    tr_idx, va_idx, _ = (list(map(int, i)) for i in data.split_indices(0))
    train, both = data.subset(tr_idx), data.subset(sorted([tr_idx[0], *va_idx]))
    with caplog.at_level(logging.WARNING, logger="deepstrf_utils"):
        fit(ln(), train, both, **FAST)
    shared = [r.getMessage() for r in caplog.records if "also training stimuli" in r.getMessage()]
    assert len(shared) == 1 and f"1 of {len(both)} validation stimuli" in shared[0]
    assert data.stim_names[tr_idx[0]] in shared[0]


@pytest.mark.parametrize("fit_fn", ["fit", "fit_single_units", "fit_sessions"])
def test_validation_with_other_neurons_is_refused_up_front(splits, fit_fn):
    """A validation set with fewer neurons raised IndexError inside the ridge start."""
    train, val, _ = splits
    call = {"fit": lambda v: fit(ln(), train, v, **FAST),
            "fit_single_units": lambda v: fit_single_units(lambda s: ln(1), train, v, **FAST),
            "fit_sessions": lambda v: fit_sessions(ln(), train, v, **FAST)}[fit_fn]
    with pytest.raises(ValueError, match=r"validation set to have the training set's N=3 neurons .*, got N=2"):
        call(_val_of(splits, 2))
    reordered = val.select(list(val.neuron_ids[::-1]))
    with pytest.raises(ValueError, match=r"got neuron 'syn002' at position 0 where the training set has 'syn000'"):
        call(reordered)


def test_a_model_built_for_another_bin_width_or_band_count_is_refused(splits):
    train, val, _ = splits
    # (the model's bin width and band centres: training.stimulus_format, tests/test_fit_defects.py)
    with pytest.raises(ValueError, match=r"the model was built for bins of dt_ms=10 ms but the training set .* "
                                         r"has dt_ms=5 ms"):
        fit(ln(prefilter="adaptrans", dt_ms=10.0), train, val, **FAST)
    with pytest.raises(ValueError, match=r"dt_ms=2.5 ms but the training set .* has dt_ms=5 ms"):
        fit_single_units(lambda s: ln(1, dt_ms=2.5), train, val, **FAST)
    with pytest.raises(ValueError, match=r"training set's bands F = 16 .* n_bands=12"):
        fit(build_model("Linear", n_bands=12, n_neurons=3), train, val, **FAST)


BAD_FIT_ARGUMENTS = [
    (dict(lr="1e-3"), TypeError, r"expected lr > 0 \(a finite number or None\), got '1e-3' \(str\)"),
    (dict(lr=math.nan), ValueError, r"lr > 0 .* got nan"),
    (dict(lr=math.inf), ValueError, r"lr > 0 .* got inf"),
    (dict(weight_decay="0.1"), TypeError, r"weight_decay >= 0 \(a finite number or None\), got '0.1'"),
    (dict(weight_decay=-1.0), ValueError, r"weight_decay >= 0 .* got -1.0"),
    (dict(max_epochs=0), ValueError, r"max_epochs >= 1 \(a positive integer or None\), got 0"),
    (dict(max_epochs="3"), TypeError, r"max_epochs >= 1 .* got '3' \(str\)"),
    (dict(max_epochs=2.5), ValueError, r"max_epochs >= 1 .* got 2.5"),
    (dict(patience=-1), ValueError, r"patience >= 1 .* got -1"),
    (dict(patience=1.5), ValueError, r"patience >= 1 .* got 1.5"),
    (dict(batch_size=0), ValueError, r"batch_size >= 1 .* got 0"),
    (dict(clip_grad="1"), TypeError, r"clip_grad > 0 .* got '1'"),
    (dict(min_delta=math.nan), ValueError, r"min_delta >= 0 .* got nan"),
    (dict(rel_tol="0.1"), TypeError, r"rel_tol >= 0 and < 1 .* got '0.1'"),
    (dict(prefilter_lr=0.0), ValueError, r"prefilter_lr > 0 .* got 0.0"),
    (dict(seed="a"), TypeError, r"expected seed \(an integer\), got 'a' \(str\)"),
    (dict(seed=1.5), ValueError, r"seed \(an integer\), got 1.5"),
    (dict(progress="no"), TypeError, r"progress to be True or False, got 'no'"),
    (dict(scheduler_kwargs=[1]), TypeError, r"scheduler_kwargs to be a dict or None, got \[1\]"),
    (dict(loss=3), TypeError, r"loss to be a loss name such as 'mse' or a callable, got 3"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD_FIT_ARGUMENTS)
def test_bad_fit_arguments_name_the_argument_and_what_was_expected(splits, kwargs, error, match):
    """lr="1e-3" raised a raw comparison TypeError deep inside the checks."""
    train, val, _ = splits
    kw = {**FAST, **kwargs}
    with pytest.raises(error, match=match):
        fit(ln(), train, val, **kw)
    with pytest.raises(error, match=match):
        fit_single_units(lambda s: ln(1), train, val, **kw)
    with pytest.raises(error, match=match):  # the same options, checked the same way
        fit_sessions(ln(), train, val, **kw)


def test_fit_single_units_and_two_stage_arguments(splits):
    train, val, _ = splits
    with pytest.raises(TypeError, match=r"seeds to be an int, a sequence of ints .* got 'a'"):
        fit_single_units(lambda s: ln(1), train, val, seeds="a", **FAST)
    with pytest.raises(ValueError, match=r"compact_below > 0 and <= 1 .* got nan"):
        fit_single_units(lambda s: ln(1), train, val, compact_below=math.nan, **FAST)
    with pytest.raises(ValueError, match=r"max_stack >= 1 .* got 0"):
        fit_single_units(lambda s: ln(1), train, val, max_stack=0, **FAST)
    with pytest.raises(TypeError, match=r"model_fn to be a callable"):
        fit_single_units(ln(1), train, val, **FAST)
    with pytest.raises(TypeError, match=r"lr > 0 .* got '1e-3'"):
        fit_two_stage(ln(), train, val, lr="1e-3", **FAST)
    with pytest.raises(ValueError, match=r"lr_stage2 > 0 \(a finite number\), got nan"):
        fit_two_stage(ln(), train, val, lr_stage2=math.nan, **FAST)
    # fit_sessions takes fit's options: "auto" / None resolve to its AdamW defaults (test_fit_options)
    with pytest.raises(TypeError, match=r"expected patience .*got 'soon'"):
        fit_sessions(ln(), train, val, patience="soon", **FAST)


def test_missing_or_wrong_datasets_and_models(splits, data):
    """train=None raised "object of type 'NoneType' has no len()"."""
    train, val, test = splits
    with pytest.raises(TypeError, match=r"expected train \(the training set\) as a ResponseDataset .* got None"):
        fit(ln(), None, val, **FAST)
    with pytest.raises(TypeError, match=r"expected train \(the training set\) as a ResponseDataset"):
        fit_single_units(lambda s: ln(1), None, val, **FAST)
    with pytest.raises(TypeError, match=r"expected train as a SessionSet, a dict .* got None"):
        fit_sessions(ln(), None, val, **FAST)
    with pytest.raises(TypeError, match=r"expected val \(the validation set\) as a ResponseDataset .* item 0 is a int"):
        fit(ln(), train, [1, 2], **FAST)
    with pytest.raises(TypeError, match=r"expected model to be a torch.nn.Module .* got None"):
        fit(None, train, val, **FAST)
    with pytest.raises(TypeError, match=r"expected dataset as a ResponseDataset .* got None"):
        evaluate(ln(), None)
    with pytest.raises(TypeError, match=r"expected model to be a torch.nn.Module or None, got 'LN'"):
        evaluate("LN", test)
    with pytest.raises(ValueError, match=r"expected prediction 0 of shape \(N, T\) with T=\d+ .* got \(\d+,\)"):
        evaluate(None, test, predictions=[np.zeros(s.shape[-1]) for s in test.stimuli])
    with pytest.raises(ValueError, match=r"expected prediction 1 of shape \(N, T\) with T=\d+ .* got \(3, 5\)"):
        evaluate(None, train, predictions=[np.zeros((3, train.stimuli[0].shape[-1]))] + [np.zeros((3, 5))] * (len(train) - 1))
    with pytest.raises(ValueError, match=r"expected batch_size >= 1 \(a positive integer\), got 0"):
        predict(ln(), test, batch_size=0)
    with pytest.raises(TypeError, match=r"seed \(an integer\), got 'a'"):
        seed_everything("a")
    with pytest.raises(ValueError, match=r"seed \(of the split\) >= 0 \(an integer\), got -1"):
        data.split(-1)
    with pytest.raises(TypeError, match=r"seed \(of the split\) >= 0 \(an integer\), got 'a'"):
        data.split("a")


# ----------------------------------------------------------------------------- device
@NO_CUDA
def test_cuda_without_cuda_is_refused_up_front_saying_how_to_get_a_cuda_build(splits, tmp_path):
    """device="cuda" on a CPU-only build raised torch's raw AssertionError, in run_configs per job."""
    train, val, test = splits
    match = r"device='cuda'.*no (CUDA support|usable GPU).*make env TORCH=cuda"
    if torch.version.cuda is not None:  # a CUDA build without a GPU: the message differs
        match = r"device='cuda'.*finds no usable GPU"
    for call in (lambda: resolve_device("cuda"), lambda: fit(ln(), train, val, device="cuda", max_epochs=1),
                 lambda: fit_single_units(lambda s: ln(1), train, val, device="cuda", max_epochs=1),
                 lambda: fit_sessions(ln(), train, val, device="cuda", max_epochs=1),
                 lambda: evaluate(ln(), test, device="cuda")):
        with pytest.raises(ValueError, match=match):
            call()
    out = tmp_path / "r.csv"
    cfg = {"dataset": "synthetic", "model": "Linear", "fit_kwargs": {"max_epochs": 1}}
    with pytest.raises(ValueError, match=match):
        runner.run_configs([cfg], [0], out, root=tmp_path / "data", device="cuda", progress=False)
    assert not (tmp_path / "data").exists() and not list(tmp_path.glob("r_jobs/**/*.csv"))  # no job ran
    assert resolve_device("cuda:1", available=False) == torch.device("cuda", 1)  # a Slurm node's device


def test_unknown_devices_are_refused():
    with pytest.raises(ValueError, match=r"expected device 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(TypeError, match=r"expected device .* got 1.5"):
        resolve_device(1.5)
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(None).type in ("cpu", "cuda")


def test_run_configs_checks_its_seeds(tmp_path):
    cfg = {"dataset": "synthetic", "model": "Linear"}
    with pytest.raises(TypeError, match=r"seeds\[1\] >= 0 \(an integer\), got 'a'"):
        runner.run_configs([cfg], [0, "a"], tmp_path / "r.csv", root=tmp_path, progress=False)


# ----------------------------------------------------------------------------- job threads
def test_submitit_local_jobs_share_the_cores():
    """Each submitit-local job took every core: MAX_PARALLEL=2 ran at 2x oversubscription."""
    assert runner.job_threads("submitit-local", {"max_parallel": 2}, cores=8) == 4
    assert runner.job_threads("submitit-local", {"max_parallel": 3}, cores=8) == 2
    assert runner.job_threads("submitit-local", {"max_parallel": 4}, cores=2) == 1   # at least one
    assert runner.job_threads("submitit-local", {}, cores=6) == 6                    # one job at a time
    own = min(torch.get_num_threads(), runner.available_cores())  # this process's threads by default
    assert runner.job_threads("submitit-local", {"max_parallel": 2}) == max(1, own // 2)
    assert runner.job_threads("local", {"max_parallel": 2}, cores=8) is None         # in process: unchanged
    assert runner.job_threads("slurm", {"cpus_per_task": 4}) == 4


def test_prefilter_kwargs_must_be_a_dict_for_auditory_and_visual_models():
    from deepstrf_utils.models import VisualLinearNonlinear

    with pytest.raises(ValueError, match="expected prefilter_kwargs as a dict or None, got list"):
        build_model("LinearNonlinear", n_bands=4, n_neurons=1, prefilter="adaptrans", prefilter_kwargs=["relu"])
    with pytest.raises(ValueError, match="expected prefilter_kwargs as a dict or None, got str"):
        VisualLinearNonlinear((1, 4, 4), 1, n_lags=2, dt_ms=25.0, prefilter="adaptrans", prefilter_kwargs="relu")
