"""The published protocol per dataset as data, and the paper profile reading it (issue 10, item 1)."""
import inspect

import pytest

from deepstrf_utils import training
from deepstrf_utils.runs import protocols
from deepstrf_utils.runs.profiles import PROFILES, get_profile
from deepstrf_utils.runs.runner import config_id
from deepstrf_utils.training import fit


def test_every_dataset_has_every_setting_with_a_source():
    keys = set(protocols.PROTOCOLS["ns1"])
    assert {"batch_size", "weight_decay", "lr", "patience", "seeds", "split", "valid_units", "n_lags",
            "cnn_kernel", "dt_ms"} <= keys
    for name in ("ns1", "nat4_a1", "nat4_peg", "wehr", "synthetic"):
        facts = protocols.get_protocol(name)
        assert set(facts) == keys, name
        for key, fact in facts.items():
            assert fact.source, (name, key)
            # where ours is not the published value (or the sources are silent) a reason is recorded
            assert fact.matches or fact.why, (name, key)
    with pytest.raises(ValueError, match="no protocol for dataset"):
        protocols.get_protocol("nope")


def test_paper_profile_uses_the_table_per_dataset():
    paper = get_profile("paper")
    expected = {"ns1": (1, (6, 15), 15), "nat4_a1": (16, (3, 7), 15), "nat4_peg": (16, (3, 7), 15),
                "wehr": (1, (6, 15), 15)}
    for ds, (batch, kernel, lags) in expected.items():
        for model in ("LinearNonlinear", "ConvNet2D"):
            for pre in (None, "adaptrans"):
                c = paper.config(ds, model, pre)
                fk = c["fit_kwargs"]
                assert fk["batch_size"] == batch and fk["weight_decay"] == 0.0, (ds, model, pre)
                assert fk["lr"] == 1e-3 and fk["patience"] == 50 and fk["loss"] == "mse"
                assert c["mode"] == "single"
        assert paper.config(ds, "ConvNet2D")["model_kwargs"]["kernel_size"] == list(kernel)
        assert paper.config(ds, "LinearNonlinear")["model_kwargs"]["n_lags"] == lags
        assert paper.config(ds, "DNet")["model_kwargs"]["n_lags"] == lags
        assert paper.fit_kwargs_for(ds) == protocols.protocol_fit_kwargs(ds)
    assert len(paper.seeds) == protocols.PROTOCOLS["ns1"]["seeds"].ours
    rectify = protocols.PROTOCOLS["ns1"]["adaptrans_rectify"].ours
    assert paper.config("ns1", "LinearNonlinear", "adaptrans")["prefilter_kwargs"]["rectify"] == rectify
    # the loader options select the protocol's split: NAT4's 80/20 train/validation of the estimation set
    assert paper.options_for("nat4_a1")["val_fraction"] == 0.2
    assert paper.options_for("ns1") == {"valid_units": "single", "split": "random"}
    configs = paper.configs(["ns1", "nat4_a1", "wehr"])
    # 6 models x 2 prefilters per dataset, plus the Pennington & David (2023) population row on NAT4 and
    # the population Transformer (without / with AdapTrans) on NS1
    assert len({config_id(c) for c in configs}) == 3 * 6 * 2 + 1 + 2
    assert [c["note"] for c in configs if c["model"] == "PopulationCNN"] == ["Pennington & David 2023"]


def test_paper_profile_carries_the_population_transformer_where_upstream_reports_one():
    from deepstrf_utils.models import build_model, count_parameters

    paper = get_profile("paper")
    rows = [c for c in paper.configs(["ns1", "nat4_a1", "nat4_peg", "wehr"]) if c["model"] == "Transformer"]
    assert [(c["dataset"], c["prefilter"]) for c in rows] == [("ns1", None), ("ns1", "adaptrans"),
                                                             ("nat4_peg", None), ("nat4_peg", "adaptrans")]
    for c in rows:
        assert c["mode"] == "population" and c["fit_kwargs"] == protocols.protocol_fit_kwargs(c["dataset"])
        assert c["model_kwargs"] == protocols.protocol_model_kwargs(c["dataset"], "Transformer")
    assert rows[1]["prefilter_kwargs"] == {"rectify": "relu"} and rows[2]["fit_kwargs"]["batch_size"] == 16
    peg = build_model("Transformer", n_bands=18, n_neurons=1, dt_ms=10.0, **rows[2]["model_kwargs"])
    assert count_parameters(peg) == 28_436  # upstream: 28,437 per neuron (a 4-parameter output sigmoid)
    assert peg.config["window"] == 32 and "320 ms" in protocols.PROTOCOLS["nat4_peg"]["transformer"].why


def test_paper_fit_arguments_are_explicit_so_new_fit_defaults_do_not_move_them():
    """EVERY argument of fit() is spelled out by the paper profile's configurations (the
    runner's own device / seed / progress aside), for every dataset and model, the
    Pennington & David row included: a future change of a default of fit() (optimiser,
    ridge start, relative tolerance, recurrent chunks...) cannot move the paper numbers.
    Before, optimizer, init, rel_tol and train_chunk were left to "an explicit lr means AdamW"."""
    set_by_runner = {"model", "train", "val", "device", "seed", "progress"}
    every = set(inspect.signature(fit).parameters) - set_by_runner
    single_units = set(inspect.signature(training.fit_single_units).parameters)
    paper = get_profile("paper")
    configs = paper.configs(list(protocols.PROTOCOL_DATASETS))
    assert {c["model"] for c in configs} >= {"ConvNet2D", "StateNet", "PopulationCNN"}
    for c in configs:
        fk = c["fit_kwargs"]
        missing = every - set(fk)
        assert not missing, (c["dataset"], c["model"], sorted(missing))
        assert (fk["optimizer"], fk["init"], fk["rel_tol"], fk["train_chunk"]) == ("adamw", None, 0.0, None)
        if c["mode"] == "single":
            assert set(fk) <= single_units, sorted(set(fk) - single_units)


def test_only_the_paper_profile_claims_the_published_protocol():
    for name, prof in PROFILES.items():
        text = prof.describe().replace("not the published protocol", "")
        assert ("the published protocol" in text) == prof.protocol, name
    assert get_profile("paper").protocol and not get_profile("quick").protocol


def test_protocol_markdown_renders_the_table():
    md = protocols.protocol_markdown()
    lines = md.splitlines()
    assert lines[0] == "| dataset | setting | published protocol (source) | ours | why |"
    n_rows = sum(len(v) for v in protocols.PROTOCOLS.values())
    assert len(lines) == 2 + n_rows
    row = next(line for line in lines if line.startswith("| ns1 | batch_size |"))
    assert "| 1 |" in row and "as published" in row
    assert all(line.count("|") - line.count("\\|") == 6 for line in lines)
    assert protocols.protocol_markdown(["wehr"]).count("| wehr |") == len(protocols.PROTOCOLS["wehr"])
    choices = protocols.protocol_markdown(choices_only=True).splitlines()
    assert 2 < len(choices) < len(lines) and all("as published" not in line for line in choices)
    assert any(line.startswith("| wehr | split |") for line in choices)


def test_paper_profile_on_a_dataset_without_protocol_uses_ns1s_and_says_so(tmp_path, caplog):
    from deepstrf_utils.runs.profiles import FALLBACK_PROTOCOL, get_profile
    from deepstrf_utils.runs.protocols import protocol_fit_kwargs, protocol_model_kwargs

    paper = get_profile("paper")
    assert paper.fit_kwargs_for("folder") == protocol_fit_kwargs(FALLBACK_PROTOCOL)
    assert paper.model_kwargs_for("LinearNonlinear", "folder")["n_lags"] == \
        protocol_model_kwargs(FALLBACK_PROTOCOL, "LinearNonlinear")["n_lags"]
    assert paper.options_for("folder") == {}  # NS1's valid-unit rule and split never apply
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "stimuli").mkdir()
    (tmp_path / "folder" / "spikes").mkdir()
    with caplog.at_level("WARNING", logger="deepstrf_utils.runs.profiles"):
        assert paper.datasets("folder", tmp_path) == ["folder"]
    assert "no published protocol" in caplog.text and "'folder'" in caplog.text


def test_missing_folder_dataset_says_where_to_put_recordings(tmp_path):
    from deepstrf_utils.runs.profiles import get_profile

    with pytest.raises(FileNotFoundError) as err:
        get_profile("quick").datasets("folder", tmp_path)
    assert "make data" not in str(err.value) and str(tmp_path / "folder") in str(err.value)
