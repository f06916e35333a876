"""Export a finished runner configuration as pretrained folders (:mod:`deepstrf_utils.pretrained`).

:func:`export_pretrained` reads the checkpoints that :func:`deepstrf_utils.runs.runner.run_configs`
wrote for one configuration and seed (``<config id>_seed<seed>.pt`` for a population or
session model, ``<config id>_seed<seed>_<neuron>.pt`` per single unit) and writes one
pretrained folder per model, its card filled from the checkpoint: the dataset (name,
loader options and, when the loaded dataset is passed, its source, version and content
hash), the neuron ids, the split (seed, rule and the stimuli of each part), the runner
configuration's fitting options and the per-neuron test metrics.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..pretrained import dataset_fingerprint, save_pretrained
from ..training import load_checkpoint
from .runner import config_id, find_checkpoints, normalise_config

__all__ = ["export_pretrained"]


def _split_info(info: dict, dataset) -> dict:
    split = {"seed": info.get("split_seed")}
    if dataset is not None:
        split["rule"] = getattr(dataset, "split_rule", None)
        parts = dataset.split(int(info.get("split_seed", 0)))
        split.update({name: [str(s) for s in part.stim_names] for name, part in zip(("train", "val", "test"), parts)})
    return split


def export_pretrained(checkpoint_dir, config: dict | str, seed: int, folder, dataset=None, neurons=None,
                      description: str = "", overwrite: bool = False) -> list[Path]:
    """Write the models of one finished configuration and seed as pretrained folders -> their paths.

    config: the runner configuration (dict) or its id; dataset: the loaded dataset (optional:
    adds its fingerprint and the stimuli of each split part to the card); neurons: for a
    single-unit configuration, the neuron ids to export (None: every unit, one sub-folder
    ``folder/<neuron>`` each); a population or session model is written to ``folder``.
    """
    cid = config if isinstance(config, str) else config_id(config)
    paths = find_checkpoints(cid, seed, checkpoint_dir)
    if not paths:
        raise FileNotFoundError(f"expected checkpoints {cid}_seed{int(seed)}[_<neuron>].pt in {checkpoint_dir} "
                                "(written by run_configs(..., checkpoint_dir=...) for a finished configuration), "
                                "found none")
    wanted = None if neurons is None else {str(n) for n in neurons}
    single = paths[0].stem != f"{cid}_seed{int(seed)}"  # one checkpoint per unit
    out = []
    for path in paths:
        model, info = load_checkpoint(path)
        neuron = info.get("neuron")
        if wanted is not None and neuron is not None and neuron not in wanted:
            continue
        cfg = normalise_config(info["config"]) if isinstance(info.get("config"), dict) else {}
        metrics = info.get("metrics")
        if isinstance(metrics, pd.DataFrame) and "neuron" in metrics:
            ids = [str(n) for n in metrics["neuron"]]
            metrics = metrics[[c for c in ("neuron", "seed", "cc_raw", "cc_norm", "cc_max") if c in metrics]]
        else:
            ids, metrics = ([str(neuron)] if neuron is not None else None), None
        ds_card = {"name": info.get("dataset"), "options": info.get("dataset_options")}
        if dataset is not None:
            ds_card.update(dataset_fingerprint(dataset))
        n_out = getattr(model, "n_neurons", None)
        card = {"dataset": ds_card, "neuron_ids": ids if ids and (n_out is None or len(ids) == n_out) else None,
                "split": _split_info(info, dataset),
                "fit_options": {"mode": cfg.get("mode"), "seed": info.get("seed"), "fit_kwargs": cfg.get("fit_kwargs"),
                                "model_kwargs": cfg.get("model_kwargs"), "prefilter": cfg.get("prefilter"),
                                "config_id": info.get("config_id"), "note": cfg.get("note")},
                "metrics": metrics, "description": description}
        target = Path(folder) / _safe(neuron) if single and neuron is not None else Path(folder)
        out.append(save_pretrained(model, target, card=card, overwrite=overwrite))
    if wanted is not None and not out:
        raise ValueError(f"expected neurons among the exported configuration's units, got {sorted(wanted)[:5]}")
    return out


def _safe(name) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
