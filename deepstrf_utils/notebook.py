"""The notebooks' run context: resolve a notebook's parameters and find what it fitted.

- :func:`setup_run` -> :class:`RunContext` (profile, datasets, device, absolute folders; its
  ``fitted`` loads a configuration's fitted models, ``save`` saves a figure with its caption),
  :func:`repo_root`;
- :func:`load_fitted`: models rebuilt from the checkpoints that
  :func:`~deepstrf_utils.runs.runner.run_configs` wrote (a population model's outputs as
  :class:`~deepstrf_utils.models.UnitView` s);
- :func:`load_pretrained`: a pretrained folder (:mod:`~deepstrf_utils.pretrained`) read the
  same way, with the test stimuli of its card's split.

Top floor: imports :mod:`~deepstrf_utils.runs`, :mod:`~deepstrf_utils.report` (to save
figures), :mod:`~deepstrf_utils.pretrained` and :mod:`~deepstrf_utils.training`; nothing imports it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .datasets import load_dataset
from .models import UnitView
from .pretrained import dataset_fingerprint, from_pretrained, load_card
from .report.plotting import plt, save_figure
from .runs.profiles import Profile, get_profile
from .runs.runner import find_checkpoints
from .training import load_checkpoint

__all__ = ["load_fitted", "load_pretrained", "RunContext", "repo_root", "setup_run"]

logger = logging.getLogger(__name__)


def load_fitted(config: dict, seed: int, checkpoint_dir: str | Path, device: str = "cpu") -> dict:
    """Models fitted by ``run_configs`` for ``config`` and ``seed``, rebuilt from their
    checkpoints, as ``{neuron_id: model}`` (eval mode, on ``device``). In population mode
    every neuron maps to a :class:`UnitView` of the one population model (its output for
    that neuron), and the population model itself is under the key ``"population"``.
    FileNotFoundError if nothing was saved."""
    paths = find_checkpoints(config, seed, checkpoint_dir)
    if not paths:
        raise FileNotFoundError(
            f"expected checkpoints of {config.get('model')} (prefilter {config.get('prefilter')}) on "
            f"{config.get('dataset')}, seed {seed}, in {checkpoint_dir}; run notebook 03 first"
        )
    out = {}
    for path in paths:
        model, info = load_checkpoint(path, device=device)
        if "neuron" in info:
            out[str(info["neuron"])] = model
            continue
        ids = info.get("neuron_ids")
        if ids is None:
            metrics = info.get("metrics")
            ids = list(metrics["neuron"]) if metrics is not None and "neuron" in metrics else None
        if ids is None:
            raise ValueError(f"expected the neuron ids of population checkpoint {path} in its info")
        out.update(_population_units(model, ids))
    return out


def _population_units(model: nn.Module, ids) -> dict:
    """``{"population": model, id: UnitView(model, i)}`` for the outputs of a population model."""
    return {"population": model, **{str(nid): UnitView(model, i) for i, nid in enumerate(ids)}}


def load_pretrained(folder_or_name, data_root: str | Path = "data", device: str = "cpu"):
    """A pretrained model read like :func:`load_fitted` -> ``(units, card, test)``.

    units: ``{neuron id: model}`` (a :class:`UnitView` per output of a population model, the
    model itself under ``"population"``); card: its model card; test: the test stimuli of the
    card's split of its dataset (loaded from ``data_root`` with the card's loader options,
    restricted to the card's neurons), or None when that dataset is not available (logged).
    """
    model = from_pretrained(folder_or_name, device=device)
    card = load_card(folder_or_name)
    ids = card.get("neuron_ids") or [f"output{i}" for i in range(int(getattr(model, "n_neurons", 1) or 1))]
    info, split = card.get("dataset") or {}, card.get("split") or {}
    test = None
    try:
        data = load_dataset(info["name"], root=data_root, **(info.get("options") or {}))
        if info.get("sha256") and dataset_fingerprint(data)["sha256"] != info["sha256"]:
            logger.warning("the data of %s differ from those the model was fitted on (content hash)", info["name"])
        data = data.select([n for n in ids if n in set(map(str, data.neuron_ids))]) if card.get("neuron_ids") else data
        names = split.get("test")
        test = (data.subset([i for i, n in enumerate(data.stim_names) if str(n) in set(names)]) if names
                else data.split(int(split.get("seed") or 0))[2])
    except (KeyError, TypeError, ValueError, FileNotFoundError) as err:
        logger.warning("no test stimuli for the pretrained model (%s: %s)", type(err).__name__, err)
    units = {str(ids[0]): model} if len(ids) == 1 else _population_units(model, ids)
    return units, card, test


@dataclass
class RunContext:
    """Resolved notebook parameters: profile, datasets, device and absolute folders."""

    profile: Profile
    datasets: list
    device: str
    data_root: Path
    fig_dir: Path
    results_dir: Path

    @property
    def results_csv(self) -> Path:
        """This profile's results table (``results_dir/results_<profile>.csv``)."""
        return self.profile.results_csv(self.results_dir)

    @property
    def checkpoint_dir(self) -> Path:
        """This profile's checkpoint folder."""
        return self.profile.checkpoint_dir(self.results_dir)

    def load(self, dataset: str):
        """``load_dataset`` with the profile's options for ``dataset``."""
        return self.profile.load(dataset, self.data_root)

    def save(self, fig, name: str) -> str:
        """Save ``fig`` into ``fig_dir`` (:func:`~deepstrf_utils.report.plotting.save_figure`: PNG, PDF and
        its caption), close it, and return the caption as Markdown for the notebook, e.g.
        ``display(fig, Markdown(ctx.save(fig, "fig1_adaptrans")))``."""
        save_figure(fig, name, self.fig_dir)
        plt.close(fig)
        return f"*Figure `{name}`*: {getattr(fig, 'caption', None) or '(no caption)'}"

    def fitted(self, dataset: str, model: str, prefilter: str | None = None, seed: int | None = None) -> dict:
        """The models notebook 03 fitted for this profile's configuration of ``model`` (with
        ``prefilter``) on ``dataset``, seed ``seed`` (default the profile's first), as
        :func:`load_fitted` returns them: ``{neuron id: model}``."""
        seed = self.profile.seeds[0] if seed is None else int(seed)
        return load_fitted(self.profile.config(dataset, model, prefilter), seed, self.checkpoint_dir)


def repo_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``pyproject.toml``;
    ``start`` itself if there is none."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists():
            return folder
    return here


def setup_run(profile: str = "quick", datasets: str = "", device: str = "auto", data_root: str = "data",
              fig_dir: str = "", results_dir: str = "build/results") -> RunContext:
    """Resolve the notebooks' parameters into a :class:`RunContext`.

    Relative folders are taken relative to the repository root (found from the current
    directory); an empty ``fig_dir`` means ``build/figures/<profile>``, so a notebook run from
    JupyterLab or ``make figures`` never overwrites the committed gallery ``figures/`` (which
    ``make gallery`` regenerates); ``fig_dir`` and ``results_dir`` are created. ``device="auto"`` becomes "cuda" when
    available, else "cpu". Logging is set to INFO for ``deepstrf_utils`` messages.
    ``datasets`` may name NWB files as ``nwb:<path>`` (relative to the repository root): each
    is the dataset ``nwb_<stem>`` of the returned context's profile.
    """
    root = repo_root()

    def resolve(p) -> Path:
        p = Path(p).expanduser()
        return (p if p.is_absolute() else root / p).resolve()

    prof = get_profile(profile)
    fig_dir = fig_dir or Path("build") / "figures" / prof.name
    data_root, fig_dir, results_dir = resolve(data_root), resolve(fig_dir), resolve(results_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("deepstrf_utils").setLevel(logging.INFO)
    prof, names = prof.resolve_datasets(datasets, data_root, base=root)
    return RunContext(prof, names, str(device), data_root, fig_dir, results_dir)
