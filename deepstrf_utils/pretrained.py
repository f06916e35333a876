"""Pretrained models: a folder holding a fitted model's config, weights and model card.

:func:`save_pretrained` writes, atomically (a temporary folder renamed into place, so an
interrupted save never leaves a folder that loads)::

    folder/
      config.json          format, model class, its full config (constructor values),
                           parameter shapes, weights file name and its sha256
      model.safetensors    the state dict (safetensors when installed, else model.pt,
                           read back with torch.load(weights_only=True))
      card.json            the model card: dataset (name, source, version, content hash),
                           neuron ids, split, fitting options, per-neuron test metrics,
                           library version and git commit, date
      README.md            the card rendered as text

:func:`from_pretrained` rebuilds the model from such a folder with the model registry only
(no training code is imported), checks that the config matches the weights (names and
shapes; a clear ``ValueError`` otherwise) and that the weights are the ones saved (sha256),
and returns it in eval mode. A name ``"user/repo"`` that is not a local folder is fetched
from the Hugging Face hub when the optional extra is installed
(``pip install 'deepstrf_utils[hub]'``); a local folder never needs it.

Example::

    save_pretrained(model, "build/pretrained/ns1_cnn", card={"dataset": {"name": "ns1"},
                    "neuron_ids": ids, "metrics": scores})
    model = from_pretrained("build/pretrained/ns1_cnn")
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .models import build_model, count_parameters
from .plain import to_plain

__all__ = ["PRETRAINED_FORMAT", "CARD_FIELDS", "save_pretrained", "from_pretrained", "load_card", "render_card",
           "card_summary", "dataset_fingerprint", "library_info"]

PRETRAINED_FORMAT = "deepstrf_utils.pretrained/1"
#: what a card given to :func:`save_pretrained` may hold (the rest is filled in)
CARD_FIELDS = ("dataset", "neuron_ids", "split", "fit_options", "metrics", "description", "license", "citation")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_METRIC_KEYS = ("cc_raw", "cc_norm", "cc_max")


# ----------------------------------------------------------------------------- provenance
def library_info() -> dict:
    """``{"name", "version", "git_commit", "git_dirty"}`` of this library (commit None outside a git checkout)."""
    from . import __version__

    root = Path(__file__).resolve().parent
    commit, dirty = None, None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            commit = out.stdout.strip()
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "."],
                                    capture_output=True, text=True, timeout=10)
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"name": "deepstrf_utils", "version": __version__, "git_commit": commit, "git_dirty": dirty,
            "torch": str(torch.__version__)}


def dataset_fingerprint(dataset) -> dict:
    """What identifies the data a model was fitted on: ``{"name", "source", "version", "sha256",
    "n_neurons", "n_stimuli", "dt_ms"}``; ``sha256`` hashes every stimulus and response (float32)."""
    h = hashlib.sha256()
    for stim, resp in zip(dataset.stimuli, dataset.responses):
        h.update(np.ascontiguousarray(stim, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(resp, dtype=np.float32).tobytes())
    meta = dict(getattr(dataset, "meta", {}) or {})
    version = next((meta[k] for k in ("version", "generator_version", "release") if k in meta), None)
    return to_plain({"name": dataset.name, "source": meta.get("source"), "version": version,
                     "sha256": h.hexdigest(), "n_neurons": dataset.n_neurons, "n_stimuli": dataset.n_stimuli,
                     "dt_ms": float(dataset.dt_ms)})


# ----------------------------------------------------------------------------- card
def _metrics_rows(metrics) -> list[dict]:
    if metrics is None:
        return []
    if hasattr(metrics, "to_dict"):  # a DataFrame of evaluate() / the runner
        metrics = metrics.to_dict("records")
    rows = []
    for row in metrics:
        if not isinstance(row, dict) or "neuron" not in row:
            raise ValueError(f"expected metrics as rows with a 'neuron' key (e.g. evaluate()'s table), got {row!r}")
        keep = {"neuron": str(row["neuron"])}
        for k, v in row.items():
            if k in _METRIC_KEYS or k == "seed":
                keep[k] = None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)
        rows.append(keep)
    return rows


def _make_card(model: nn.Module, card: dict | None) -> dict:
    card = dict(card or {})
    unknown = sorted(set(card) - set(CARD_FIELDS))
    if unknown:
        raise ValueError(f"unknown model card field(s) {unknown}; expected fields among {list(CARD_FIELDS)}")
    n_out = getattr(model, "n_neurons", None)
    ids = card.get("neuron_ids")
    if ids is not None:
        ids = [str(v) for v in ids]
        if isinstance(n_out, int) and len(ids) != n_out:
            raise ValueError(f"expected {n_out} neuron_ids (the model's outputs), got {len(ids)}")
    metrics = _metrics_rows(card.get("metrics"))
    if ids is not None:
        strangers = sorted({r["neuron"] for r in metrics} - set(ids))
        if strangers:
            raise ValueError(f"metrics name neurons that are not in neuron_ids: {strangers[:5]}")
    dataset = card.get("dataset")
    if isinstance(dataset, str):
        dataset = {"name": dataset}
    if dataset is not None and not isinstance(dataset, dict):
        raise ValueError(f"expected the card's dataset as a name or a dict, got {type(dataset).__name__}")
    out = {
        "model_class": type(model).__name__,
        "n_parameters": count_parameters(model, trainable_only=False),
        "dataset": dataset, "neuron_ids": ids, "split": card.get("split"), "fit_options": card.get("fit_options"),
        "metrics": metrics, "description": card.get("description", ""), "license": card.get("license"),
        "citation": card.get("citation"), "library": library_info(),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return to_plain(out)


def _fmt(v, digits=3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if np.isfinite(v) else "–"
    return str(v).replace("|", "\\|")


def render_card(card: dict, config: dict | None = None) -> str:
    """The model card as a README (markdown): model, data, split, fitting, test metrics, provenance."""
    ds = card.get("dataset") or {}
    lib = card.get("library") or {}
    lines = [f"# {card['model_class']} fitted on {ds.get('name', 'an unnamed dataset')}", ""]
    if card.get("description"):
        lines += [card["description"], ""]
    lines += ["## Model", "", f"- class: `{card['model_class']}`, {card['n_parameters']:,} parameters"]
    if config is not None:
        lines += ["- config (constructor values):", "", "```json", json.dumps(config, indent=1, sort_keys=True),
                  "```"]
    lines += ["", "## Data", ""]
    for key in ("name", "source", "version", "sha256", "n_neurons", "n_stimuli", "dt_ms"):
        if ds.get(key) is not None:
            lines.append(f"- {key}: {ds[key]}")
    ids = card.get("neuron_ids")
    if ids:
        shown = ", ".join(ids[:20]) + (f", ... ({len(ids)} in all)" if len(ids) > 20 else "")
        lines.append(f"- neurons ({len(ids)}): {shown}")
    if card.get("split"):
        lines += ["", "## Split", "", "```json", json.dumps(card["split"], indent=1, sort_keys=True), "```"]
    if card.get("fit_options"):
        lines += ["", "## Fitting options", "", "```json", json.dumps(card["fit_options"], indent=1, sort_keys=True),
                  "```"]
    rows = card.get("metrics") or []
    if rows:
        keys = [k for k in ("seed", *_METRIC_KEYS) if any(k in r for r in rows)]
        lines += ["", "## Test metrics (per neuron)", "", "| neuron | " + " | ".join(keys) + " |",
                  "|:---|" + "---:|" * len(keys)]
        lines += ["| " + " | ".join([_fmt(r["neuron"])] + [_fmt(r.get(k)) for k in keys]) + " |" for r in rows]
        for k in _METRIC_KEYS:
            vals = np.array([r[k] for r in rows if r.get(k) is not None], dtype=float)
            if vals.size:
                lines.append(f"\n{k}: median {np.median(vals):.3f}, mean {vals.mean():.3f} over {vals.size} rows")
    lines += ["", "## Provenance", "", f"- library: {lib.get('name')} {lib.get('version')}, commit "
              f"{lib.get('git_commit') or 'unknown'}" + (" (uncommitted changes)" if lib.get("git_dirty") else ""),
              f"- torch: {lib.get('torch')}", f"- created: {card.get('created')}"]
    for key in ("license", "citation"):
        if card.get(key):
            lines.append(f"- {key}: {card[key]}")
    lines += ["", "## Load", "", "```python", "from deepstrf_utils.pretrained import from_pretrained",
              "model = from_pretrained(\"<this folder or user/repo>\")", "```", ""]
    return "\n".join(lines)


def card_summary(card: dict) -> str:
    """One line (markdown) about a model card: model, parameters, dataset, neurons, median test
    CCnorm, library version and commit, date."""
    ds, lib = card.get("dataset") or {}, card.get("library") or {}
    cc = [r["cc_norm"] for r in card.get("metrics") or [] if r.get("cc_norm") is not None]
    n = len(card.get("neuron_ids") or [])
    return (f"**{card['model_class']}** ({card['n_parameters']:,} parameters) fitted on "
            f"{ds.get('name', 'an unnamed dataset')}" + (f", {n} neuron(s)" if n else "")
            + (f", test CCnorm median {np.median(cc):.3f} over {len(cc)} row(s)" if cc else "")
            + f"; {lib.get('name')} {lib.get('version')} @ {str(lib.get('git_commit') or 'unknown')[:10]}, "
            f"{card.get('created')}")


# ----------------------------------------------------------------------------- save / load
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _have_safetensors() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def save_pretrained(model: nn.Module, folder, card: dict | None = None, overwrite: bool = False,
                    weights_format: str = "auto") -> Path:
    """Write ``model`` as a pretrained folder (see the module docstring) -> the folder's path.

    card: the fields of :data:`CARD_FIELDS`: ``dataset`` (a name or a dict, e.g.
    :func:`dataset_fingerprint`), ``neuron_ids`` (one per output), ``split``, ``fit_options``,
    ``metrics`` (rows or a DataFrame with ``neuron`` and cc_raw / cc_norm / cc_max),
    ``description``, ``license``, ``citation``; the model class, parameter count, library
    version, git commit and date are added. ``weights_format``: ``"auto"`` (safetensors when
    installed, else torch), ``"safetensors"`` or ``"torch"``. An existing folder is replaced
    only with ``overwrite=True``.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ValueError(f"expected {type(model).__name__} to have a dict `config` (its constructor values)")
    if weights_format not in ("auto", "safetensors", "torch"):
        raise ValueError(f"expected weights_format 'auto', 'safetensors' or 'torch', got {weights_format!r}")
    use_st = _have_safetensors() if weights_format == "auto" else weights_format == "safetensors"
    if use_st and not _have_safetensors():
        raise ImportError("weights_format='safetensors' needs the safetensors package: pip install "
                          "'deepstrf_utils[hub]' (or safetensors)")
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} exists already; pass overwrite=True to replace it")
    built = _make_card(model, card)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp_{folder.name}_", dir=folder.parent))
    try:
        weights = tmp / ("model.safetensors" if use_st else "model.pt")
        if use_st:
            from safetensors.torch import save_file

            save_file(state, str(weights), metadata={"format": PRETRAINED_FORMAT})
        else:
            torch.save(state, weights)
        header = {"format": PRETRAINED_FORMAT, "model_class": type(model).__name__,
                  "config": to_plain(config), "weights": weights.name, "weights_sha256": _sha256(weights),
                  "parameters": {k: list(v.shape) for k, v in state.items()}}
        (tmp / "config.json").write_text(json.dumps(header, indent=1, sort_keys=True))
        (tmp / "card.json").write_text(json.dumps(built, indent=1, sort_keys=True))
        (tmp / "README.md").write_text(render_card(built, header["config"]))
        old = None
        if folder.exists():
            old = folder.with_name(f".old_{folder.name}_{os.getpid()}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _resolve(folder_or_name, revision=None, cache_dir=None) -> Path:
    path = Path(os.fspath(folder_or_name)).expanduser()
    if path.is_dir():
        return path
    name = os.fspath(folder_or_name)
    if not _HUB_NAME.match(name):
        raise FileNotFoundError(f"expected a pretrained folder (with config.json) or a hub name 'user/repo', "
                                f"got {name!r}, which is neither")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ImportError(f"{name!r} is not a local folder; to fetch it from the Hugging Face hub install the "
                          "optional extra: pip install 'deepstrf_utils[hub]'") from None
    return Path(snapshot_download(repo_id=name, revision=revision, cache_dir=cache_dir))


def _read_header(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected a pretrained folder with config.json, found none in {folder}")
    header = json.loads(path.read_text())
    if not isinstance(header, dict) or header.get("format") != PRETRAINED_FORMAT:
        raise ValueError(f"expected a {PRETRAINED_FORMAT} config.json in {folder}, got format "
                         f"{header.get('format') if isinstance(header, dict) else type(header).__name__!r}")
    return header


def _load_weights(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"expected the weights file {path}, found none")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError(f"{path.name} needs the safetensors package: pip install 'deepstrf_utils[hub]' "
                              "(or safetensors)") from None
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"expected a state dict in {path}, got {type(state).__name__}")
    return state


def _check_match(model: nn.Module, state: dict, header: dict) -> None:
    """ValueError unless ``state`` has exactly the model's tensors with their shapes."""
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    shapes = [f"{k}: config gives {tuple(want[k].shape)}, weights hold {tuple(state[k].shape)}"
              for k in sorted(set(want) & set(state)) if tuple(want[k].shape) != tuple(state[k].shape)]
    if missing or extra or shapes:
        parts = ([f"missing from the weights: {missing[:8]}"] if missing else []) + \
                ([f"not in the model: {extra[:8]}"] if extra else []) + (["shapes differ: " + "; ".join(shapes[:8])]
                                                                         if shapes else [])
        raise ValueError(f"the model config ({header['model_class']}, {json.dumps(header['config'], sort_keys=True)}) "
                         f"does not match its weights: " + " | ".join(parts))


def from_pretrained(folder_or_name, device: str | torch.device = "cpu", revision: str | None = None,
                    cache_dir=None) -> nn.Module:
    """Rebuild a model saved by :func:`save_pretrained` -> the model, in eval mode on ``device``.

    folder_or_name: a local folder, or a Hugging Face hub repository ``"user/repo"`` (needs the
    ``[hub]`` extra; ``revision`` and ``cache_dir`` are passed to ``snapshot_download``).
    Raises ValueError when the config does not match the weights (names, shapes) or the
    weights are not the ones saved (sha256), FileNotFoundError for a missing folder or file.
    """
    folder = _resolve(folder_or_name, revision, cache_dir)
    header = _read_header(folder)
    weights = folder / str(header.get("weights", "model.pt"))
    state = _load_weights(weights)
    model = build_model(header["model_class"], **header["config"])
    _check_match(model, state, header)
    card_path = folder / "card.json"
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        n = count_parameters(model, trainable_only=False)
        if card.get("model_class") != header["model_class"] or card.get("n_parameters") != n:
            raise ValueError(f"the model card describes {card.get('model_class')} with {card.get('n_parameters')} "
                             f"parameters, but the config and weights hold {header['model_class']} with {n}")
    digest = header.get("weights_sha256")
    if digest and _sha256(weights) != digest:
        raise ValueError(f"{weights} is not the weights file saved with this config (sha256 differs): the folder "
                         "was modified after save_pretrained")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def load_card(folder_or_name, revision: str | None = None, cache_dir=None) -> dict:
    """The model card (``card.json``) of a pretrained folder or hub repository, as a dict."""
    folder = _resolve(folder_or_name, revision, cache_dir)
    path = folder / "card.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected a model card card.json in {folder}, found none")
    return json.loads(path.read_text())
