"""Pretrained folders: save / load round trips, the model card, refusing a config that does
not match its weights, the optional hub, and exporting a finished runner configuration."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import torch

from deepstrf_utils.models import ConvNet2D, Transformer
from deepstrf_utils.pretrained import (
    PRETRAINED_FORMAT,
    from_pretrained,
    load_card,
    render_card,
    save_pretrained,
)

ROOT = Path(__file__).resolve().parents[1]


def _transformer(seed=0):
    torch.manual_seed(seed)
    model = Transformer(8, n_neurons=2, window=5, patch=4, embedding=4, n_heads=2, positions="learned",
                        prefilter="adaptrans", prefilter_kwargs={"kernel_size": 9})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model.eval()


CARD = {"dataset": {"name": "synthetic", "version": 3}, "neuron_ids": ["u1", "u2"],
        "split": {"seed": 0, "test": ["clip3"]}, "fit_options": {"lr": 1e-3},
        "metrics": pd.DataFrame({"neuron": ["u1", "u2"], "cc_raw": [0.4, 0.5], "cc_norm": [0.6, float("nan")],
                                 "cc_max": [0.7, 0.8]})}


@pytest.mark.parametrize("weights_format", ["torch", "safetensors"])
def test_round_trip_with_card(tmp_path, weights_format):
    if weights_format == "safetensors":
        pytest.importorskip("safetensors")
    model = _transformer()
    folder = save_pretrained(model, tmp_path / "tf", card=CARD, weights_format=weights_format)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.json", "card.json", "README.md", "model.safetensors" if weights_format == "safetensors" else "model.pt"])
    loaded = from_pretrained(folder)
    x = torch.rand(2, 1, 8, 23)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.config == model.config and not loaded.training
    card = load_card(folder)
    assert card["model_class"] == "Transformer" and card["neuron_ids"] == ["u1", "u2"]
    assert card["metrics"][1] == {"neuron": "u2", "cc_raw": 0.5, "cc_norm": None, "cc_max": 0.8}
    assert card["library"]["version"] and card["created"].endswith("Z") and card["dataset"]["version"] == 3
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# Transformer fitted on synthetic") and "| u1 | 0.400 | 0.600 | 0.700 |" in readme
    assert "commit" in readme and '"window": 5' in readme and readme == render_card(card, model.config)
    assert json.loads((folder / "config.json").read_text())["format"] == PRETRAINED_FORMAT


def test_refuses_a_config_that_does_not_match_its_weights(tmp_path):
    folder = save_pretrained(_transformer(), tmp_path / "tf", card=CARD)
    header = json.loads((folder / "config.json").read_text())
    header["config"]["window"] = 6  # the learned lag bias is (heads, window): (2, 5) in the weights
    (folder / "config.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match=r"does not match its weights: shapes differ: blocks.0.lag_bias: "
                                         r"config gives \(2, 6\), weights hold \(2, 5\)"):
        from_pretrained(folder)
    header["config"]["window"], header["config"]["positions"] = 5, "rotary"
    (folder / "config.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match=r"does not match its weights: not in the model: \['blocks.0.lag_bias'\]"):
        from_pretrained(folder)
    # a card describing another model than the config and weights
    other = save_pretrained(_transformer(), tmp_path / "tf2", card=CARD)
    card = json.loads((other / "card.json").read_text())
    card["n_parameters"] += 1
    (other / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="model card describes Transformer with .* but the config and weights hold"):
        from_pretrained(other)
    # weights replaced after saving
    third = save_pretrained(_transformer(seed=1), tmp_path / "tf3", card=CARD, weights_format="torch")
    save_pretrained(_transformer(seed=2), tmp_path / "tf4", card=CARD, weights_format="torch")
    (third / "model.pt").write_bytes((tmp_path / "tf4" / "model.pt").read_bytes())
    with pytest.raises(ValueError, match="sha256 differs"):
        from_pretrained(third)


def test_bad_cards_folders_and_interrupted_saves(tmp_path, monkeypatch):
    model = _transformer()
    with pytest.raises(ValueError, match=r"unknown model card field\(s\) \['accuracy'\]"):
        save_pretrained(model, tmp_path / "a", card={"accuracy": 1})
    with pytest.raises(ValueError, match="expected 2 neuron_ids"):
        save_pretrained(model, tmp_path / "a", card={"neuron_ids": ["u1"]})
    with pytest.raises(ValueError, match=r"not in neuron_ids: \['u9'\]"):
        save_pretrained(model, tmp_path / "a", card={"neuron_ids": ["u1", "u2"], "metrics": [{"neuron": "u9"}]})
    save_pretrained(model, tmp_path / "a")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_pretrained(model, tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="neither"):
        from_pretrained(tmp_path / "missing" / "deeper" / "x")
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_pretrained(tmp_path)

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(model, tmp_path / "b", weights_format="torch")
    with pytest.raises(KeyboardInterrupt):  # replacing an existing folder: the old one survives intact
        save_pretrained(_transformer(seed=3), tmp_path / "a", weights_format="torch", overwrite=True)
    monkeypatch.undo()
    assert not (tmp_path / "b").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    x = torch.rand(1, 1, 8, 12)
    with torch.no_grad():
        assert torch.equal(from_pretrained(tmp_path / "a")(x), model(x))


def test_loads_without_the_training_code(tmp_path):
    save_pretrained(_transformer(), tmp_path / "tf", card=CARD)
    code = ("import sys; from deepstrf_utils.pretrained import from_pretrained; "
            f"m = from_pretrained({str(tmp_path / 'tf')!r}); "
            "bad = sorted(k for k in sys.modules if k.startswith(('deepstrf_utils.training', 'deepstrf_utils.runs.runner'))); "
            "assert not bad, bad; print(type(m).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Transformer"


def test_hub_names_use_the_optional_extra_only(tmp_path, monkeypatch):
    folder = save_pretrained(_transformer(), tmp_path / "tf", card=CARD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(ImportError, match=r"deepstrf_utils\[hub\]"):
        from_pretrained("someone/ns1-transformer")
    calls = []

    def snapshot_download(repo_id, revision=None, cache_dir=None):
        calls.append((repo_id, revision))
        return str(folder)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    model = from_pretrained("someone/ns1-transformer", revision="v1")
    assert calls == [("someone/ns1-transformer", "v1")] and isinstance(model, Transformer)
    assert load_card("someone/ns1-transformer")["neuron_ids"] == ["u1", "u2"]
    assert from_pretrained(str(folder)) is not None and len(calls) == 2  # a local folder never calls the hub


def test_runner_exports_a_finished_configuration(tmp_path):
    from deepstrf_utils.datasets import load_dataset
    from deepstrf_utils.runs.export import export_pretrained
    from deepstrf_utils.runs.runner import config_id, run_configs
    from deepstrf_utils.training import load_checkpoint

    opts = {"n_neurons": 3, "n_clips": 4, "clip_s": 1.0, "n_repeats": 4, "n_bands": 8}
    fit_kwargs = {"max_epochs": 1, "patience": 1, "lr": 1e-2, "batch_size": 4}
    pop = {"dataset": "synthetic", "dataset_options": opts, "model": "Transformer", "mode": "population",
           "model_kwargs": {"window": 4, "patch": 4, "embedding": 4}, "prefilter": "adaptrans",
           "fit_kwargs": fit_kwargs}
    single = {"dataset": "synthetic", "dataset_options": opts, "model": "LinearNonlinear", "mode": "single",
              "model_kwargs": {"n_lags": 4}, "fit_kwargs": fit_kwargs}
    ckpt = tmp_path / "ckpt"
    results = run_configs([pop, single], [0], tmp_path / "results.csv", root=tmp_path / "data", device="cpu",
                          checkpoint_dir=ckpt, progress=False)
    data = load_dataset("synthetic", root=tmp_path / "data", **opts)
    (folder,) = export_pretrained(ckpt, pop, 0, tmp_path / "pop", dataset=data)
    model = from_pretrained(folder)
    ref, _ = load_checkpoint(ckpt / f"{config_id(pop)}_seed0.pt")
    x = torch.as_tensor(data.stimuli[0])[None, None]
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    card = load_card(folder)
    rows = results[results["config_id"] == config_id(pop)]
    assert card["neuron_ids"] == [str(n) for n in data.neuron_ids]
    assert [m["cc_norm"] for m in card["metrics"]] == pytest.approx(rows["cc_norm"].tolist())
    assert card["dataset"]["name"] == "synthetic" and len(card["dataset"]["sha256"]) == 64
    assert card["split"]["seed"] == 0 and card["split"]["test"] == list(data.split(0)[2].stim_names)
    assert card["fit_options"]["fit_kwargs"] == fit_kwargs and card["fit_options"]["mode"] == "population"
    from deepstrf_utils.notebook import load_pretrained

    loaded, card2, test = load_pretrained(folder, tmp_path / "data")
    assert card2 == card and set(loaded) == {"population", *card["neuron_ids"]}
    assert list(test.stim_names) == card["split"]["test"] and test.n_neurons == data.n_neurons
    units = export_pretrained(ckpt, config_id(single), 0, tmp_path / "single", neurons=[data.neuron_ids[1]])
    assert [p.name for p in units] == [str(data.neuron_ids[1])]
    assert load_card(units[0])["neuron_ids"] == [str(data.neuron_ids[1])]
    one, _, test = load_pretrained(units[0], tmp_path / "data")
    assert list(one) == [str(data.neuron_ids[1])] and test.n_neurons == 1
    edited = json.loads((units[0] / "card.json").read_text())
    edited["dataset"] = {"name": "ns1", "options": {}}  # data that are not under this root: no test set
    (units[0] / "card.json").write_text(json.dumps(edited))
    assert load_pretrained(units[0], tmp_path / "data")[2] is None
    with pytest.raises(FileNotFoundError, match="found none"):
        export_pretrained(ckpt, config_id(single), 5, tmp_path / "none")
