"""Named run profiles: what the notebooks train, on which data, for how long.

======  ===============================================================================
smoke   tests only: a tiny synthetic set (4 neurons, 4 clips of 1 s), one epoch, one seed
        (DNet, 2D-CNN and StateNet as population models, like ``quick``)
quick   the default of ``make figures``: the synthetic set only (unless datasets are
        named; 16 neurons, 16 clips of 4 s, 20 repeats), 2 seeds, at most 30 epochs
        (patience 10), AdamW lr 1e-2 with AdapTrans' own parameters at 3e-2
        (``prefilter_lr``); L, LN and NRF fitted per neuron, the costly DNet, 2D-CNN and
        StateNet as one population model each (note "quick, population fit"); meant to
        finish within 15 min on 2 CPU cores
paper   the published protocol of each dataset found under ``data/``, read from
        :data:`deepstrf_utils.runs.protocols.PROTOCOLS` (single-unit fits, 10 seeds, AdamW lr
        1e-3 without weight decay, patience 50, and per dataset the batch size, STRF window,
        2D-CNN kernel, valid-unit rule and split); on the synthetic set (no published
        protocol) NS1's protocol
======  ===============================================================================

Both real profiles use AdapTrans with ``rectify="relu"`` (ON and OFF outputs rectified, as
the synthetic neurons and the models' default) on the dataset's own band centres
(``cf_hz``, passed by the runner), so each band starts from the Willmore time constant of
its frequency.

Why ``quick`` differs from the paper's optimiser settings: its budget is ~30 epochs on a
CPU. The synthetic recovery study (``benchmarks/recovery_synthetic.py``; 20 neurons, LN
single-unit fits) found that at lr 1e-3 the AdapTrans time constants barely leave their
Willmore initialisation within that budget (cc_norm 0.81), while lr 1e-2 gives cc_norm
0.85 and fitted tau factors that correlate with the true ones (ON 0.80, OFF 0.54), and a
3x faster prefilter (lr 3e-2) 0.86 (ON 0.89, OFF 0.57); LN without AdapTrans reaches
0.72 at either lr. ``paper`` keeps lr 1e-3 for all parameters (``prefilter_lr=None``):
it reproduces the published protocol, and with up to 1000 epochs (patience 50) on a GPU
the time constants have the iterations they need.

A profile yields the runner configurations (see :func:`deepstrf_utils.runs.runner.run_configs`)
for L, LN, NRF, DNet, 2D-CNN (``ConvNet2D``) and StateNet, each without and with the
AdapTrans prefilter, for each dataset; single-unit fits as in the 2024 paper (``paper``).

Example::

    profile = get_profile("quick")
    names = profile.datasets("", data_root="data")        # ["synthetic"]
    configs = profile.configs(names)                      # 12 dicts per dataset
    run_configs(configs, profile.seeds, "build/results/results_quick.csv")
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .protocols import (PINNED_FIT_KWARGS, PROTOCOL_DATASETS, protocol_dataset_options, protocol_fit_kwargs,
                        protocol_model_kwargs)

logger = logging.getLogger(__name__)

__all__ = [
    "Profile",
    "PROFILES",
    "MODEL_NAMES",
    "MODEL_LABELS",
    "get_profile",
    "parse_datasets",
]

#: The single-unit models of the AdapTrans paper (+ StateNet of the 2025 paper), in plot order.
MODEL_NAMES: tuple[str, ...] = (
    "Linear", "LinearNonlinear", "NetworkReceptiveField", "DNet", "ConvNet2D", "StateNet",
)

#: Short labels used in figures and tables.
MODEL_LABELS: dict[str, str] = {
    "Linear": "L",
    "LinearNonlinear": "LN",
    "NetworkReceptiveField": "NRF",
    "DNet": "DNet",
    "ConvNet2D": "2D-CNN",
    "StateNet": "StateNet",
    "PopulationCNN": "Pop-CNN",
    "Transformer": "Transformer",
}

#: 2D-CNN kernel (frequency, time) per dataset: (6, 15) for the 34-band NS1-like sets,
#: (3, 7) for NAT4's 18 bands (upstream configurations).
_CNN_KERNEL = {"nat4_a1": (3, 7), "nat4_peg": (3, 7)}


@dataclass(frozen=True)
class Profile:
    """Settings of one run profile.

    Attributes:
        name: "smoke", "quick" or "paper".
        seeds: seeds (each a new split and initialisation).
        fit_kwargs: passed to ``fit`` / ``fit_single_units`` (max_epochs, patience, ...).
        mode: "single" (one model per neuron) or "population".
        mode_by_model: per model name, a mode overriding ``mode`` (``quick`` fits the costly
            DNet, 2D-CNN and StateNet as one population model, >10x cheaper than 16 single units).
        models: model class names (``models.MODELS`` keys).
        prefilters: prefilter of each variant (None = plain spectrogram).
        prefilter_kwargs: per prefilter name, constructor arguments of the prefilter
            (configuration field ``prefilter_kwargs``; the runner adds the data's ``cf_hz``).
        prefilter_fit_kwargs: per prefilter name, extra ``fit_kwargs`` of the configurations
            with that prefilter (e.g. ``{"adaptrans": {"prefilter_lr": 3e-2}}``).
        default_datasets: datasets when none are requested; None = every available one.
        dataset_options: per dataset name, keyword arguments of ``load_dataset``.
        model_kwargs: per model name, extra constructor arguments (all datasets).
        n_examples: example neurons shown per figure in the notebooks.
        top_fraction: driven bins averaged by the gradient STRFs.
        description: one line for the notebooks.
        extra_configs: per dataset name, extra runner configurations (partial dicts: model,
            mode, fit_kwargs, note, ...) added after that dataset's model x prefilter grid,
            e.g. the published reference model of the dataset (``paper``: Pennington & David
            2023 on NAT4).
        protocol: take the per-dataset fit arguments, model arguments (STRF window, 2D-CNN
            kernel) and loader options from :mod:`deepstrf_utils.runs.protocols` (``paper``);
            ``fit_kwargs`` / ``model_kwargs`` / ``dataset_options`` then hold only what the
            protocol leaves open.
    """

    name: str
    seeds: tuple[int, ...]
    fit_kwargs: dict
    mode: str = "single"
    mode_by_model: dict = field(default_factory=dict)
    models: tuple[str, ...] = MODEL_NAMES
    prefilters: tuple = (None, "adaptrans")
    prefilter_kwargs: dict = field(default_factory=dict)
    prefilter_fit_kwargs: dict = field(default_factory=dict)
    default_datasets: tuple[str, ...] | None = ("synthetic",)
    dataset_options: dict = field(default_factory=dict)
    model_kwargs: dict = field(default_factory=dict)
    n_examples: int = 4
    top_fraction: float = 0.1
    description: str = ""
    extra_configs: dict = field(default_factory=dict)
    protocol: bool = False

    # ------------------------------------------------------------------ datasets
    def datasets(self, requested: str | Sequence[str] = "", data_root: str | Path = "data") -> list[str]:
        """Datasets to run: the ``requested`` ones (comma string or list) if any, else the
        profile's defaults, else every dataset available under ``data_root``.

        Raises ``ValueError`` for an unknown name and ``FileNotFoundError`` for a requested
        real dataset whose files are missing (``make data DATASET=...`` fetches them).
        ``nwb:<path>`` items need :meth:`resolve_datasets` (their path goes in the options).
        """
        profile, names = self.resolve_datasets(requested, data_root)
        if profile is not self:
            raise ValueError("nwb:<path> datasets carry a path: use Profile.resolve_datasets, which returns "
                             "the profile with their load options")
        return names

    def resolve_datasets(self, requested: str | Sequence[str] = "", data_root: str | Path = "data",
                         base: str | Path | None = None) -> tuple["Profile", list[str]]:
        """:meth:`datasets`, also accepting ``nwb:<path>`` items -> (profile, names).

        Each ``nwb:<path>`` becomes the dataset ``nwb_<stem>`` (relative paths from ``base``,
        default the current folder); the returned profile is a copy of this one whose
        ``dataset_options`` give that name its absolute path (this profile when there is none).
        Files ``data_root/nwb/<stem>.nwb`` are the datasets ``nwb_<stem>`` as they are.
        """
        from ..datasets import DATASETS, available_datasets
        from ..datasets.nwb import nwb_label

        names, paths = [], {}
        for name in parse_datasets(requested):
            if name.startswith("nwb:"):
                path = Path(name[4:].strip()).expanduser()
                path = (path if path.is_absolute() else Path(base or Path.cwd()) / path).resolve()
                if not path.is_file():
                    raise FileNotFoundError(f"expected an NWB file for dataset {name!r}, found nothing at {path}")
                name = nwb_label(path)
                if paths.get(name, path) != path:
                    raise ValueError(f"{paths[name]} and {path} both give the dataset name {name!r}; rename one")
                paths[name] = path
            elif name == "nwb":
                raise ValueError("expected nwb:<path to a .nwb file> (or files under data/nwb/), got 'nwb' alone")
            elif name not in DATASETS and not name.startswith("nwb_"):
                raise ValueError(f"unknown dataset(s) {[name]}; expected names among {list(DATASETS)}, "
                                 f"nwb_<stem> or nwb:<path>")
            if name not in names:
                names.append(name)
        if names:
            present = set(available_datasets(data_root)) | set(paths)
            missing = [n for n in names if n not in present]
            if missing:
                raise FileNotFoundError(
                    f"dataset(s) {missing} not found under {data_root!s}; {_how_to_get(missing[0], data_root)} "
                    f"(available: {sorted(present)})"
                )
        elif self.default_datasets is not None:
            names = list(self.default_datasets)
        else:
            names = list(available_datasets(data_root))
        for name in names:
            if self.protocol and name not in PROTOCOL_DATASETS:
                logger.warning("dataset %r has no published protocol: the %s profile fits it with %s's "
                               "optimisation protocol (protocols.protocol_fit_kwargs(%r)); its own split",
                               name, self.name, FALLBACK_PROTOCOL, FALLBACK_PROTOCOL)
        if not paths:
            return self, names
        options = {**copy.deepcopy(self.dataset_options),
                   **{n: {**self.dataset_options.get(n, {}), "path": str(p)} for n, p in paths.items()}}
        return dataclasses.replace(self, dataset_options=options), names

    def options_for(self, dataset: str) -> dict:
        """``load_dataset`` keyword arguments of ``dataset`` in this profile (a copy)."""
        base = _protocol_part(self, dataset, protocol_dataset_options)
        return {**base, **copy.deepcopy(self.dataset_options.get(dataset, {}))}

    def load(self, dataset: str, data_root: str | Path = "data"):
        """Load ``dataset`` with this profile's options -> ``ResponseDataset``."""
        from ..datasets import load_dataset

        return load_dataset(dataset, root=data_root, **self.options_for(dataset))

    # ------------------------------------------------------------------ configurations
    def model_kwargs_for(self, model: str, dataset: str) -> dict:
        """Constructor arguments of ``model`` on ``dataset`` (besides n_bands, n_neurons,
        dt_ms and prefilter, which come from the data and the configuration)."""
        kwargs = {}
        if model == "ConvNet2D":
            kwargs["kernel_size"] = list(_CNN_KERNEL.get(dataset, (6, 15)))
        if self.protocol:
            kwargs.update(_protocol_part(self, dataset, protocol_model_kwargs, model))
        kwargs.update(copy.deepcopy(self.model_kwargs.get(model, {})))
        return kwargs

    def config(self, dataset: str, model: str, prefilter: str | None = None) -> dict:
        """One runner configuration (dict accepted by ``run_configs``)."""
        if model not in MODEL_LABELS:
            raise ValueError(f"expected a model name among {list(MODEL_LABELS)}, got {model!r}")
        if prefilter not in (None, "adaptrans", "willmore"):
            raise ValueError(f"expected prefilter None, 'adaptrans' or 'willmore', got {prefilter!r}")
        mode = self.mode_by_model.get(model, self.mode)
        fit_kwargs = self.fit_kwargs_for(dataset)
        if prefilter:
            fit_kwargs.update(self.prefilter_fit_kwargs.get(prefilter, {}))
        config = {
            "dataset": dataset,
            "dataset_options": self.options_for(dataset),
            "model": model,
            "model_kwargs": self.model_kwargs_for(model, dataset),
            "prefilter": prefilter,
            "mode": mode,
            "fit_kwargs": copy.deepcopy(fit_kwargs),
            "note": self.name if mode == self.mode else f"{self.name}, {mode} fit",
        }
        if prefilter is not None and self.prefilter_kwargs.get(prefilter):
            config["prefilter_kwargs"] = copy.deepcopy(self.prefilter_kwargs[prefilter])
        return config

    def fit_kwargs_for(self, dataset: str) -> dict:
        """``fit`` arguments of ``dataset`` (without the prefilter's extras): the protocol's
        explicit arguments (``protocol`` profiles) updated with ``fit_kwargs``; a copy."""
        return {**_protocol_part(self, dataset, protocol_fit_kwargs), **copy.deepcopy(self.fit_kwargs)}

    def configs(self, datasets: Sequence[str]) -> list[dict]:
        """Configurations for every dataset x model x prefilter, in that nesting order, each
        dataset followed by its ``extra_configs``."""
        if isinstance(datasets, str):
            datasets = parse_datasets(datasets)
        out = []
        for d in datasets:
            out += [self.config(d, m, p) for m in self.models for p in self.prefilters]
            out += [{"dataset": d, "dataset_options": self.options_for(d), **copy.deepcopy(extra)}
                    for extra in self.extra_configs.get(d, ())]
        return out

    def results_csv(self, results_dir: str | Path) -> Path:
        """Where this profile's results table lives: ``results_dir/results_<name>.csv``."""
        return Path(results_dir) / f"results_{self.name}.csv"

    def checkpoint_dir(self, results_dir: str | Path) -> Path:
        """Where this profile's checkpoints live: ``results_dir/checkpoints_<name>/``."""
        return Path(results_dir) / f"checkpoints_{self.name}"

    def describe(self) -> str:
        """A few lines summarising the profile (for the notebooks)."""
        fk = ", ".join(f"{k}={v}" for k, v in self.fit_kwargs.items())
        ds = "every dataset found" if self.default_datasets is None else ", ".join(self.default_datasets)
        modes = f"{self.mode} fits" + "".join(f", {m}: {v}" for m, v in self.mode_by_model.items())
        pre = "".join(f"\n  {p}: prefilter_kwargs {self.prefilter_kwargs.get(p, {})}, extra fit_kwargs "
                      f"{self.prefilter_fit_kwargs.get(p, {})} (band centres: the dataset's)"
                      for p in self.prefilters if p)
        extra = "".join(f"\n  {d}: also {c['model']} ({c.get('note', '')}, {c.get('mode', self.mode)} fit, "
                        f"{c.get('fit_kwargs', {})})" for d, cs in self.extra_configs.items() for c in cs)
        if self.protocol:
            fk = "per dataset from deepstrf_utils.runs.protocols: " + "; ".join(
                f"{d}: batch_size={v['batch_size']}, weight_decay={v['weight_decay']:g}, lr={v['lr']:g}, "
                f"patience={v['patience']}" for d, v in ((d, self.fit_kwargs_for(d)) for d in PROTOCOL_DATASETS))
        return (f"profile '{self.name}': {self.description}\n"
                f"  seeds {list(self.seeds)}; {modes}; {fk}\n"
                f"  models {', '.join(MODEL_LABELS[m] for m in self.models)}; prefilters "
                f"{[p or 'none' for p in self.prefilters]}; default datasets: {ds}{pre}{extra}")


#: the published protocol a protocol profile applies to a dataset that has none of its own (your own
#: recordings): NS1's optimisation (single units, AdamW lr 1e-3, patience 50, batch 1, STRF window 15,
#: 2D-CNN kernel (6, 15)); its valid-unit rule and split are NS1-specific and are not applied
FALLBACK_PROTOCOL = "ns1"


def _protocol_part(profile: Profile, dataset: str, getter, *args) -> dict:
    """``getter(dataset, *args)`` for a protocol profile: the dataset's own protocol, or, for a
    dataset without one, :data:`FALLBACK_PROTOCOL`'s fitting and model settings (never its dataset
    options; :meth:`Profile.datasets` logs a warning naming the dataset); {} for other profiles."""
    if not profile.protocol:
        return {}
    if dataset in PROTOCOL_DATASETS:
        return getter(dataset, *args)
    if getter is protocol_dataset_options:
        return {}
    return getter(FALLBACK_PROTOCOL, *args)


def _how_to_get(dataset: str, data_root) -> str:
    """The instruction that makes ``dataset`` available under ``data_root``."""
    if dataset == "folder":
        return (f"put your recordings in {Path(data_root) / 'folder'} (stimuli/*.wav and one folder of spike "
                f"files per unit; data/README.md, 'folder: your own recordings')")
    if dataset.startswith("nwb_"):
        return f"put the file in {Path(data_root) / 'nwb'}/ or name it nwb:<path>"
    return f"fetch them with `make data DATASET={dataset}`"


def parse_datasets(requested: str | Sequence[str] | None) -> list[str]:
    """``"ns1, nat4_a1"`` or ``["ns1"]`` -> ``["ns1", "nat4_a1"]`` (lower case, no blanks;
    ``nwb:<path>`` keeps its path as written); empty string / None / empty list -> ``[]``."""
    if requested is None:
        return []
    items = requested.split(",") if isinstance(requested, str) else list(requested)
    out = []
    for item in items:
        name = str(item).strip()
        name = "nwb:" + name[4:].strip() if name.lower().startswith("nwb:") else name.lower()
        if name and name not in out:
            out.append(name)
    return out


_FIT_COMMON = {"loss": "mse", "weight_decay": 1e-2}
#: Pennington & David (2023)'s population CNN on NAT4 (NEMS keyword
#: conv2d.10.8x3.rep3-wcn.90-relu.90-wc.90xR-lvl.R-dexp.R), fitted as they did: one population
#: model, two stages (double exponential frozen at lr 1e-3, then everything at 1e-4), normalised
#: MSE (metrics.nmse_loss), on NAT4's 10-ms bins (the data's dt_ms). Our choices where the
#: sources are silent here: no weight decay (plain Adam-like steps), batch 16 (the NAT4
#: protocol), patience 50 and up to 1000 epochs per stage.
_PENNINGTON_2023 = {
    "model": "PopulationCNN", "prefilter": None, "mode": "population", "note": "Pennington & David 2023",
    "fit_kwargs": {"protocol": "two_stage", "loss": "nmse", "lr": 1e-3, "lr_stage2": 1e-4, "weight_decay": 0.0,
                   "max_epochs": 1000, "patience": 50, "batch_size": 16, **PINNED_FIT_KWARGS},
}
#: Rançon et al. (2025)'s population Transformer where upstream reports one (NS1, NAT4 PEG), without
#: and with AdapTrans: the dataset's protocol (AdamW lr 1e-3, no weight decay, patience 50, its batch
#: size) on one population model, the configuration of protocols.PROTOCOLS[dataset]["transformer"]
_TRANSFORMER_2025 = "Rançon et al. 2025 (population)"


def _transformer_rows(dataset: str) -> tuple[dict, ...]:
    rows = []
    for prefilter in (None, "adaptrans"):
        row = {"model": "Transformer", "prefilter": prefilter, "mode": "population", "note": _TRANSFORMER_2025,
               "model_kwargs": protocol_model_kwargs(dataset, "Transformer"),
               "fit_kwargs": protocol_fit_kwargs(dataset)}
        if prefilter:
            row["prefilter_kwargs"] = {"rectify": "relu"}
        rows.append(row)
    return tuple(rows)


#: models fitted as one population model in the CPU profiles (single-unit DNet with AdapTrans
#: alone took ~145 s per seed on the quick data, 2D-CNN / StateNet more)
_POPULATION_IN_QUICK = {"DNet": "population", "ConvNet2D": "population", "StateNet": "population"}
#: AdapTrans as in the synthetic neurons and the models' default: ON and OFF rectified
_ADAPTRANS_RELU = {"adaptrans": {"rectify": "relu"}}

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        seeds=(0,),
        fit_kwargs={**_FIT_COMMON, "lr": 1e-2, "max_epochs": 1, "patience": 1, "batch_size": 4},
        mode_by_model=dict(_POPULATION_IN_QUICK),
        default_datasets=("synthetic",),
        dataset_options={"synthetic": {"n_neurons": 4, "n_clips": 4, "clip_s": 1.0, "n_repeats": 4}},
        model_kwargs={"NetworkReceptiveField": {"n_hidden": 4}, "DNet": {"n_hidden": 4}},
        prefilter_kwargs=copy.deepcopy(_ADAPTRANS_RELU),
        prefilter_fit_kwargs={"adaptrans": {"prefilter_lr": 3e-2}},
        n_examples=2,
        top_fraction=0.2,
        description="tiny synthetic data, one epoch, one seed (tests only; numbers are meaningless; not the "
                    "published protocol)",
    ),
    "quick": Profile(
        name="quick",
        seeds=(0, 1),
        fit_kwargs={**_FIT_COMMON, "lr": 1e-2, "max_epochs": 30, "patience": 10, "batch_size": 4},
        mode_by_model=dict(_POPULATION_IN_QUICK),
        default_datasets=("synthetic",),
        dataset_options={"synthetic": {"n_neurons": 16, "n_clips": 16, "clip_s": 4.0, "n_repeats": 20}},
        prefilter_kwargs=copy.deepcopy(_ADAPTRANS_RELU),
        prefilter_fit_kwargs={"adaptrans": {"prefilter_lr": 3e-2}},
        n_examples=4,
        top_fraction=0.1,
        description="synthetic data with known ground truth (16 neurons), 2 seeds, at most 30 epochs at lr 1e-2 "
                    "(AdapTrans 3e-2), DNet, 2D-CNN and StateNet fitted as population models (a short CPU run; "
                    "not the published protocol)",
    ),
    "paper": Profile(
        name="paper",
        seeds=tuple(range(10)),
        fit_kwargs={},  # everything from deepstrf_utils.runs.protocols, per dataset
        protocol=True,
        default_datasets=None,
        prefilter_kwargs=copy.deepcopy(_ADAPTRANS_RELU),
        n_examples=6,
        top_fraction=0.1,
        description="the published protocol of each dataset (deepstrf_utils.runs.protocols: single-unit fits, AdamW "
                    "lr 1e-3 without weight decay, 10 seeds, patience 50, the dataset's batch size, STRF "
                    "window, 2D-CNN kernel, valid units and split); NS1's protocol on the synthetic set, which "
                    "has none; every dataset found under the data folder",
        extra_configs={"nat4_a1": (_PENNINGTON_2023,), "nat4_peg": (_PENNINGTON_2023, *_transformer_rows("nat4_peg")),
                       "ns1": _transformer_rows("ns1")},
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (smoke, quick, paper); ValueError otherwise."""
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {list(PROFILES)}")
    return PROFILES[key]
