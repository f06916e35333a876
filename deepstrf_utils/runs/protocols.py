"""The published fitting protocol of each dataset, as data, each value with its source.

One table, :data:`PROTOCOLS`: per dataset (``ns1``, ``nat4_a1``, ``nat4_peg``, ``wehr``,
``synthetic``) and per setting a :class:`Fact` holding what the published sources say
(``published``, None where they are silent), what this package uses (``ours``), where the
published value comes from (``source``) and, where the two differ or the sources are silent
or disagree, why we chose ours (``why``).

The ``paper`` profile (:mod:`deepstrf_utils.runs.profiles`) reads its per-dataset settings from
here: :func:`protocol_fit_kwargs` (EXPLICIT ``fit`` arguments, so the profile does not move
when ``fit``'s defaults change), :func:`protocol_model_kwargs` (STRF window, 2D-CNN kernel)
and :func:`protocol_dataset_options` (valid-unit rule and split of the loader).
:func:`protocol_markdown` renders the README's "published protocol | ours | why" table.

Example::

    protocol_fit_kwargs("ns1")["batch_size"]            # 1
    protocol_model_kwargs("nat4_a1", "ConvNet2D")       # {"kernel_size": [3, 7]}
    print(protocol_markdown())
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = [
    "Fact",
    "PROTOCOLS",
    "PROTOCOL_DATASETS",
    "get_protocol",
    "protocol_fit_kwargs",
    "PINNED_FIT_KWARGS",
    "protocol_model_kwargs",
    "protocol_dataset_options",
    "protocol_markdown",
]


@dataclass(frozen=True)
class Fact:
    """One protocol setting.

    Attributes:
        published: the published value (None: the sources are silent).
        ours: the value this package uses in the ``paper`` profile.
        source: where the published value comes from (paper, upstream script, data release).
        why: why ours differs from / fills in the published value ("" when they agree).
    """

    published: Any
    ours: Any
    source: str
    why: str = ""

    @property
    def matches(self) -> bool:
        """Whether ours is the published value."""
        return self.published is not None and self.published == self.ours


_SCRIPTS = "upstream deepSTRF training scripts (Rançon et al. 2024)"
_P2024 = "Rançon, Masquelier & Cottereau 2024, PLOS Comput Biol (single-unit fits)"
_PD2023 = "Pennington & David 2023, PLOS Comput Biol; NAT4 release (Zenodo 8044773)"


def _common(batch_size: Fact, n_lags: Fact, kernel: Fact, transformer: Fact) -> dict[str, Fact]:
    """Settings shared by every dataset, plus the per-dataset batch size, STRF window, CNN kernel
    and Transformer configuration."""
    return {
        "fit_mode": Fact("single", "single", _P2024),
        "loss": Fact("mse", "mse", _SCRIPTS + ": MSE to the trial-averaged response"),
        "optimiser": Fact("AdamW", "AdamW", _SCRIPTS),
        "lr": Fact(1e-3, 1e-3, _SCRIPTS),
        "weight_decay": Fact(0.0, 0.0, _SCRIPTS + ": AdamW with weight_decay=0"),
        "patience": Fact(50, 50, _SCRIPTS + ": early stopping on the validation loss, best weights restored"),
        "max_epochs": Fact(None, 1000, _SCRIPTS,
                           "the scripts stop on patience only; 1000 is our safety cap (a fit that reaches it "
                           "reports stopped_early=False in its FitResult)"),
        "adaptrans_rectify": Fact(None, "relu", "the 2024 paper's Figure 1 shows linear (signed) ON/OFF "
                                  "outputs; later upstream code applies ReLU to both",
                                  "the sources disagree; we follow the later upstream code (also the "
                                  "synthetic neurons' and the models' default); 'linear' stays available"),
        "seeds": Fact(10, 10, _SCRIPTS + ": 10 seeds, each a new split and initialisation"),
        "batch_size": batch_size,
        "n_lags": n_lags,
        "cnn_kernel": kernel,
        "transformer": transformer,
    }


_NS1_KERNEL = Fact((6, 15), (6, 15), "deepSTRF 2D-CNN for NS1 (37,276 parameters with AdapTrans)")
_NAT4_KERNEL = Fact((3, 7), (3, 7), "deepSTRF 2D-CNN for NAT4 (15,748 parameters with AdapTrans)")
_WINDOW_15 = Fact(15, 15, "NS1 training scripts: STRF window of 15 bins (75 ms at 5 ms)")

_UPSTREAM_2025 = "upstream deepSTRF 0.1.0 (PyPI) benchmark table and Transformer class (Rançon et al. 2025)"
_BOUNDED = ("a bounded attention window (320 ms) so that the cost grows linearly with T, where upstream attends "
            "to the whole past; rotary (relative) positions instead of absolute sinusoids, so that a response "
            "does not depend on the time since the stimulus onset")
#: the Transformer configurations (``models.Transformer`` arguments) of the paper profile
TRANSFORMER_NAT4 = {"patch": 6, "embedding": 16, "n_layers": 1, "n_heads": 1, "window": 32, "positions": "rotary",
                    "dropout": 0.1}
TRANSFORMER_NS1 = {"patch": 34, "embedding": 48, "n_layers": 1, "n_heads": 1, "window": 64, "positions": "rotary",
                   "dropout": 0.1}
_TRANSFORMER_PEG = Fact(
    "population Transformer: frequency patches of 6 bands x 16 values (token width 48), 1 layer, 1 head, "
    "feed-forward 4 x 48, absolute sinusoidal positions, dropout 0.1, whole causal past; 28,437 parameters "
    "per neuron; CCraw / CCnorm 39.7 / 55.5 %", TRANSFORMER_NAT4,
    _UPSTREAM_2025 + "; patch and embedding inferred from the published parameter count",
    _BOUNDED + "; 28,436 parameters per neuron (our output sigmoid has 3 parameters, upstream's 4)")
_TRANSFORMER_NS1 = Fact(
    "population Transformer, CCraw / CCnorm 53.9 / 73.0 %; configuration not stated (the class defaults: one "
    "token of all bands per bin, 48 values, 1 layer, 1 head, dropout 0.1)", TRANSFORMER_NS1, _UPSTREAM_2025,
    "the upstream class defaults; " + _BOUNDED)


def _nat4(area: str) -> dict[str, Fact]:
    facts = _common(
        Fact(16, 16, _SCRIPTS + " for NAT4"),
        Fact(None, 15, "silent for NAT4",
             "the NS1 scripts' 15 bins (150 ms at NAT4's 10 ms bins), inside the (3, 7) 2D-CNN's "
             "19-bin receptive field"),
        _NAT4_KERNEL,
        _TRANSFORMER_PEG if area == "PEG" else Fact(
            None, TRANSFORMER_NAT4, "no Transformer reported on NAT4 A1",
            "the NAT4 PEG configuration (same 18 bands at 10 ms); not in the paper profile"),
    )
    facts.update({
        "recording": Fact(f"{area} units of a population recording", f"{area} units of a population recording",
                          _PD2023, "fitted one unit at a time, as in the 2024 paper (fit_mode)"),
        "valid_units": Fact("auditory cells (sig_auditory)", "auditory cells (sig_auditory)",
                            _PD2023 + ": <area>_pred_correlation.csv"),
        "dt_ms": Fact(10.0, 10.0, _PD2023 + ": 'ozgf.fs100.ch18', 18 bands at 100 Hz"),
        "split": Fact("test: the 18 stimuli x 20 repeats; the 577 single-repeat estimation stimuli "
                      "split 80/20 into train/validation per seed",
                      "test: the 18 stimuli x 20 repeats; the 577 single-repeat estimation stimuli "
                      "split 80/20 into train/validation per seed",
                      _PD2023 + "; " + _SCRIPTS),
    })
    return facts


PROTOCOLS: dict[str, dict[str, Fact]] = {
    "ns1": {
        **_common(Fact(1, 1, _SCRIPTS + " for NS1"), _WINDOW_15, _NS1_KERNEL, _TRANSFORMER_NS1),
        "recording": Fact("single units", "single units", "Harper et al. 2016, OSF ayw2p"),
        "valid_units": Fact("singleT Yes/Maybe and depth >= 0 (73 of 119 units)",
                            "singleT Yes/Maybe and depth >= 0 (73 of 119 units)",
                            "upstream NS1 loader code",
                            "upstream docs say noise ratio < 40 instead; the code's rule is what the "
                            "published numbers were computed with"),
        "dt_ms": Fact(5.0, 5.0, "Harper et al. 2016: 999 bins of 5 ms per 4.995 s clip"),
        "split": Fact("random 14 train / 2 validation / 4 test clips per seed",
                      "random 14 train / 2 validation / 4 test clips per seed", _SCRIPTS,
                      "Rahman's fixed test clips 3, 6, 9, 19 stay available as load_ns1(split='rahman')"),
    },
    "nat4_a1": _nat4("A1"),
    "nat4_peg": _nat4("PEG"),
    "wehr": {
        **_common(Fact(1, 1, _SCRIPTS + " for Wehr"),
                  Fact(None, 15, "silent for Wehr", "the NS1 scripts' 15 bins, at the same 5 ms bins"),
                  Fact(None, (6, 15), "silent for Wehr", "the NS1 kernel: the same 34-band, 5 ms front end"),
                  Fact(None, TRANSFORMER_NS1, "no Transformer reported on Wehr",
                       "the NS1 configuration (same front end); not in the paper profile")),
        "recording": Fact("whole-cell membrane potential of single cells",
                          "whole-cell membrane potential of single cells", "Machens, Wehr & Zador 2004; CRCNS ac-1"),
        "valid_units": Fact("21 of 25 cells (all but 1, 2, 8 unresponsive and 4 too little data)",
                            "21 of 25 cells (all but 1, 2, 8 unresponsive and 4 too little data)",
                            "Rançon et al. 2024, 2025"),
        "dt_ms": Fact(None, 5.0, "silent", "the NS1 bin width, so the same models and windows apply"),
        "split": Fact("each cell's own clips (3-63 per cell) split with fixed per-cell counts",
                      "each cell's own clips: 20 % test, 10 % validation (at least 1 each), the rest "
                      "train, drawn per seed; cells with fewer than 3 clips excluded (listed)",
                      _SCRIPTS + " for Wehr",
                      "upstream's exact per-cell counts were not available to us; per-cell fractions "
                      "with at least one clip in each set are the closest rule we can state"),
    },
    "synthetic": {
        **_common(Fact(None, 1, "no published protocol (simulated data)", "NS1's protocol, which the "
                       "synthetic set imitates (5 ms bins, 34 bands, 20 repeats)"),
                  Fact(None, 20, "no published protocol", "the simulated STRFs' length (20 lags)"),
                  Fact(None, (6, 15), "no published protocol", "the NS1 kernel (same front end)"),
                  Fact(None, TRANSFORMER_NS1, "no published protocol", "the NS1 configuration (same front end)")),
        "recording": Fact(None, "simulated single units", "datasets/synthetic.py", "built-in data"),
        "valid_units": Fact(None, "every simulated neuron", "datasets/synthetic.py", "no unit is invalid"),
        "dt_ms": Fact(None, 5.0, "datasets/synthetic.py", "as NS1"),
        "split": Fact(None, "random test (20 %) and validation (10 %) clips per seed",
                      "datasets/synthetic.py", "as NS1's random clip split"),
    },
}

#: Datasets with a protocol entry.
PROTOCOL_DATASETS: tuple[str, ...] = tuple(PROTOCOLS)

#: ``load_dataset`` options that select the protocol's valid-unit rule and split.
_DATASET_OPTIONS = {
    "ns1": {"valid_units": "single", "split": "random"},
    "nat4_a1": {"auditory_only": True, "val_fraction": 0.2},
    "nat4_peg": {"auditory_only": True, "val_fraction": 0.2},
    "wehr": {"valid_cells": "rancon", "test_fraction": 0.2, "val_fraction": 0.1},
    "synthetic": {},
}

#: models with an STRF window ``n_lags``
_STRF_MODELS = ("Linear", "LinearNonlinear", "NetworkReceptiveField", "DNet")

#: the ``fit`` arguments every published protocol shares, spelled out so that no default of
#: ``fit`` decides them: AdamW (the papers' optimiser) on whole stimuli, the constructor's
#: initialisation (no ridge start), early stopping on any improvement (no relative
#: tolerance), no LR schedule, no clipping, outputs started at the data's scale
PINNED_FIT_KWARGS = {
    "optimizer": "adamw",
    "init": None,
    "rel_tol": 0.0,
    "train_chunk": None,
    "scheduler": None,
    "scheduler_kwargs": None,
    "clip_grad": None,
    "min_delta": 0.0,
    "init_output": True,
    "prefilter_lr": None,
    "check_stimulus_format": True,
}


def get_protocol(dataset: str) -> dict[str, Fact]:
    """The protocol of ``dataset`` (a copy): setting name -> :class:`Fact`."""
    key = str(dataset).strip().lower()
    if key not in PROTOCOLS:
        raise ValueError(f"no protocol for dataset {dataset!r}; expected one of {list(PROTOCOLS)}")
    return dict(PROTOCOLS[key])


def protocol_fit_kwargs(dataset: str) -> dict:
    """EXPLICIT ``fit`` / ``fit_single_units`` arguments of the protocol of ``dataset``.

    Every argument of ``fit`` is spelled out (also those equal to today's defaults) except
    the ones the runner sets per job (``device``, ``seed``, ``progress``), so the ``paper``
    profile does not move when ``fit``'s defaults do (a test checks that every argument is
    here): AdamW on whole stimuli from the constructor's initialisation, no relative
    tolerance on early stopping.
    """
    p = get_protocol(dataset)
    return {
        "loss": p["loss"].ours,
        "lr": float(p["lr"].ours),
        "weight_decay": float(p["weight_decay"].ours),
        "max_epochs": int(p["max_epochs"].ours),
        "patience": int(p["patience"].ours),
        "batch_size": int(p["batch_size"].ours),
        **PINNED_FIT_KWARGS,
    }


def protocol_model_kwargs(dataset: str, model: str) -> dict:
    """Constructor arguments the protocol fixes for ``model`` on ``dataset``: the STRF window
    ``n_lags`` (L, LN, NRF, DNet), the 2D-CNN ``kernel_size`` (frequency, time) and the
    Transformer's configuration (window, frequency patches, width, layers, positions, dropout)."""
    p = get_protocol(dataset)
    if model in _STRF_MODELS:
        return {"n_lags": int(p["n_lags"].ours)}
    if model == "ConvNet2D":
        return {"kernel_size": [int(v) for v in p["cnn_kernel"].ours]}
    if model == "Transformer":
        return dict(p["transformer"].ours)
    return {}


def protocol_dataset_options(dataset: str) -> dict:
    """``load_dataset`` options selecting the protocol's valid-unit rule and split (a copy)."""
    get_protocol(dataset)
    return copy.deepcopy(_DATASET_OPTIONS[str(dataset).strip().lower()])


def _cell(value: Any) -> str:
    if value is None:
        return "(not stated)"
    if isinstance(value, tuple):
        return "(" + ", ".join(str(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("|", "\\|")


def protocol_markdown(datasets: Sequence[str] | None = None, choices_only: bool = False) -> str:
    """The protocol as a GitHub markdown table: dataset | setting | published protocol | ours | why.

    ``why`` is "as published" where ours is the published value without a remark, and the
    recorded reason otherwise; the source follows the published value. ``choices_only``
    keeps only the rows with a recorded reason (sources silent, disagreeing, or ours
    differs): the README's reproduction notes.
    """
    names = list(PROTOCOLS) if datasets is None else [str(d).strip().lower() for d in datasets]
    lines = ["| dataset | setting | published protocol (source) | ours | why |", "|:---|:---|:---|:---|:---|"]
    for name in names:
        for key, fact in get_protocol(name).items():
            if choices_only and not fact.why:
                continue
            why = fact.why or ("as published" if fact.matches else "")
            lines.append(f"| {name} | {key} | {_cell(fact.published)} ({_cell(fact.source)}) | "
                         f"{_cell(fact.ours)} | {_cell(why)} |")
    return "\n".join(lines)
