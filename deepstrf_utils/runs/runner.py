"""Run many configurations x seeds into one tidy, resumable CSV.

A configuration is a dict::

    {"dataset": "ns1", "dataset_options": {...}, "model": "ConvNet2D", "model_kwargs": {...},
     "prefilter": None | "adaptrans" | "willmore", "prefilter_kwargs": {...},
     "mode": "single" | "population" | "state" | "sessions", "fit_kwargs": {...},
     "neurons": None | [ids], "note": "...", "sessions": None | {id: {"dataset", "dataset_options", "neurons"}}}

Modes "state" (a state-gain readout on a dataset with state signals) and "sessions" (a core
shared by the sessions named in "sessions", one readout each): :mod:`.modes`.

The "adaptrans" and "willmore" prefilters are built on the DATASET's band centres
(``cf_hz=dataset.cf_hz``, ``dt_ms=dataset.dt_ms``), so each band starts from the Willmore
time constant of its own frequency; ``prefilter_kwargs`` (e.g. ``{"rectify": "relu"}``,
``{"kernel_size": 48}``) are added on top and may override ``cf_hz``. Setting any of
``min_freq`` / ``max_freq`` / ``scale`` there selects computed centres instead.
``fit_kwargs`` go to ``fit`` / ``fit_single_units`` (e.g. ``lr``, ``prefilter_lr``, ``patience``);
``"protocol": "two_stage"`` fits a population model with ``training.fit_two_stage`` instead.

For each seed the dataset is split anew (``dataset.split(seed)``) and every model is
initialised after ``torch.manual_seed(seed)``; "single" fits one model per neuron (batched,
:func:`~deepstrf_utils.training.fit_single_units`), "population" one model with N outputs
(:func:`~deepstrf_utils.training.fit`). Each neuron is scored on the test stimuli
(:func:`~deepstrf_utils.training.evaluate`; single units: every unit's predictions stacked,
one vectorised metrics call). Results: one row per neuron x seed x configuration.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .. import training
from ..datasets import load_dataset
from ..datasets.splits import drop_excluded
from ..models import build_model, count_parameters
from ..shapes import check_int
from . import jobs
from .executors import THREAD_ENV, in_flight, make_executor, slurm_parameters
from .modes import SESSION_MODES, fit_session_config, load_sessions

logger = logging.getLogger(__name__)

__all__ = ["run_configs", "run_config", "run_job", "plan_jobs", "failed_jobs", "config_id", "normalise_config",
           "prefilter_kwargs_for", "build_config_model", "config_neuron_ids", "load_config_data", "DatasetCache",
           "find_checkpoints", "RESULT_COLUMNS", "job_threads", "available_cores"]

#: Columns of the results CSV, in order.
RESULT_COLUMNS = [
    "dataset", "model", "prefilter", "note", "mode", "seed", "neuron", "cc_raw", "cc_norm",
    "cc_max", "n_params", "epochs", "wall_s", "config_id", "excluded_reason",
]

_CONFIG_KEYS = {"dataset", "dataset_options", "model", "model_kwargs", "prefilter", "prefilter_kwargs",
                "mode", "fit_kwargs", "neurons", "note", "sessions"}
_DEFAULTS = {"dataset_options": {}, "model_kwargs": {}, "prefilter": None, "prefilter_kwargs": {},
             "mode": "single", "fit_kwargs": {}, "neurons": None, "note": "", "sessions": None}
#: prefilter_kwargs that select computed band centres instead of the dataset's cf_hz
_CENTRE_KEYS = ("cf_hz", "min_freq", "max_freq", "scale")


def normalise_config(config: dict) -> dict:
    """``config`` with every field present (defaults filled in, the caller's dicts copied),
    checked: ValueError naming an unknown key, a field of the wrong type or a value out of
    place (module docstring)."""
    if not isinstance(config, dict):
        raise ValueError(f"expected a configuration dict, got {type(config).__name__}")
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise ValueError(f"unknown configuration key(s) {sorted(unknown)}; expected keys among {sorted(_CONFIG_KEYS)}")
    for key in ("dataset", "model"):
        if not isinstance(config.get(key), str):
            raise ValueError(f"expected configuration field {key!r} as a string, got {config.get(key)!r}")
    out = {**_DEFAULTS, **config}
    for key in ("dataset_options", "model_kwargs", "prefilter_kwargs", "fit_kwargs"):
        if out[key] is None:
            out[key] = {}
        if not isinstance(out[key], dict):
            raise ValueError(f"expected configuration field {key!r} as a dict, got {type(out[key]).__name__}")
        out[key] = dict(out[key])  # never modify the caller's dicts
    if out["mode"] not in ("single", "population", *SESSION_MODES):
        raise ValueError(f"expected mode 'single', 'population', 'state' or 'sessions', got {out['mode']!r}")
    if (out["mode"] == "sessions") != (out["sessions"] is not None):
        raise ValueError("expected a 'sessions' field exactly when mode is 'sessions'")
    if out["prefilter"] not in (None, "adaptrans", "willmore"):
        raise ValueError(f"expected prefilter None, 'adaptrans' or 'willmore', got {out['prefilter']!r}")
    for key in ("n_bands", "n_neurons", "dt_ms", "prefilter", "prefilter_kwargs"):
        if key in out["model_kwargs"]:
            raise ValueError(f"model_kwargs must not set {key!r}: it comes from the dataset / the 'prefilter' "
                             "and 'prefilter_kwargs' fields")
    if out["prefilter_kwargs"] and out["prefilter"] is None:
        raise ValueError(f"prefilter_kwargs {sorted(out['prefilter_kwargs'])} given without a prefilter: "
                         "expected prefilter 'adaptrans' or 'willmore'")
    for key in ("n_bands", "dt_ms"):
        if key in out["prefilter_kwargs"]:
            raise ValueError(f"prefilter_kwargs must not set {key!r}: it comes from the dataset")
    if "cf_hz" in out["prefilter_kwargs"]:
        out["prefilter_kwargs"]["cf_hz"] = [float(v) for v in np.asarray(out["prefilter_kwargs"]["cf_hz"]).ravel()]
    for key in ("device", "seed", "progress"):
        if key in out["fit_kwargs"]:
            raise ValueError(f"fit_kwargs must not set {key!r}: run_configs sets it")
    if out["neurons"] is not None:
        out["neurons"] = [str(n) for n in out["neurons"]]
    out["note"] = "" if out["note"] is None else str(out["note"])
    return out


def config_id(config: dict) -> str:
    """Stable 12-hex-digit hash of a (normalised) configuration: same dict -> same id.

    An empty ``prefilter_kwargs`` and a None ``sessions`` are left out of the hash, so
    configurations written before those fields existed keep their ids.
    """
    cfg = normalise_config(config)
    if not cfg["prefilter_kwargs"]:
        del cfg["prefilter_kwargs"]
    if cfg["sessions"] is None:
        del cfg["sessions"]
    text = json.dumps(cfg, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def prefilter_kwargs_for(config: dict, dataset) -> dict | None:
    """The ``prefilter_kwargs`` a configuration's model gets on ``dataset``.

    For "adaptrans" / "willmore": ``{"cf_hz": [dataset.cf_hz as floats], **config["prefilter_kwargs"]}``
    (the dataset's centres are left out when the config sets any of cf_hz / min_freq /
    max_freq / scale: a deliberate choice, so its fits and scores run with
    ``check_stimulus_format=False`` unless ``fit_kwargs`` say otherwise); None without a
    prefilter. ``dt_ms`` is passed as the model's bin width.
    """
    cfg = normalise_config(config)
    if cfg["prefilter"] is None:
        return None
    own = dict(cfg["prefilter_kwargs"])
    if any(k in own for k in _CENTRE_KEYS):
        return own
    cf = np.asarray(dataset.cf_hz, dtype=np.float64).ravel()
    if cf.shape != (dataset.n_bands,):
        raise ValueError(f"expected dataset.cf_hz of shape (F,) with F={dataset.n_bands}, got {cf.shape}")
    return {"cf_hz": [float(v) for v in cf], **own}


def build_config_model(config: dict, dataset, n_neurons: int):
    """The model of a normalised configuration on ``dataset``, with ``n_neurons`` outputs
    (the dataset's bands, bin width and, with a prefilter, :func:`prefilter_kwargs_for`)."""
    return build_model(config["model"], n_bands=dataset.n_bands, n_neurons=n_neurons, dt_ms=float(dataset.dt_ms),
                       prefilter=config["prefilter"], prefilter_kwargs=prefilter_kwargs_for(config, dataset),
                       **config["model_kwargs"])


def run_config(config: dict, dataset, seed: int, device="auto", checkpoint_dir=None,
               progress: bool = True, neurons: Sequence | None = None) -> pd.DataFrame:
    """Fit and evaluate one configuration for one seed on an already loaded ``dataset``.

    Split with ``dataset.split(seed)``, optional neuron selection, model(s) built after
    ``torch.manual_seed(seed)``, fitted with ``fit_kwargs`` and ``seed``, scored on the
    test split. Returns one row per neuron with :data:`RESULT_COLUMNS`; ``wall_s`` is the
    fit time of the whole (configuration, seed), shared by its rows. ``neurons`` (ids, single
    mode only): fit and score only these neurons of the configuration's split (one job's
    chunk); each unit's fit is the same as in the whole stack.
    """
    cfg = normalise_config(config)
    cid = config_id(cfg)
    if cfg["neurons"] is not None:
        dataset = dataset.select(cfg["neurons"])
    excluded: dict = {}
    if cfg["mode"] in SESSION_MODES:  # several sessions or state signals: one model, its own splits
        if neurons is not None:
            raise ValueError(f"expected neurons=None for mode {cfg['mode']!r} (one model for every neuron)")
        scores, model = fit_session_config(cfg, dataset, seed, build_config_model, device, progress)
        models = [model]
    else:
        dataset, train, val, test, excluded = split_for_fit(dataset, seed)
        if neurons is not None:
            if cfg["mode"] == "population":
                raise ValueError("expected neurons=None for a population fit (one model for every neuron)")
            chunk = [str(n) for n in neurons]
            excluded = {n: excluded[n] for n in chunk if n in excluded}
            keep = [n for n in chunk if n not in excluded]
            if dataset is not None and keep:
                train, val, test = (d.select(keep) for d in (train, val, test))
                dataset = test
            else:
                dataset = None
    fit_kwargs = dict(cfg["fit_kwargs"])
    if any(k in cfg["prefilter_kwargs"] for k in _CENTRE_KEYS):  # band centres chosen by the config, deliberately
        fit_kwargs.setdefault("check_stimulus_format", False)
    check = fit_kwargs.get("check_stimulus_format", True)
    fit_fn = training.get_fit_procedure(fit_kwargs.pop("protocol", "standard"))
    if fit_fn is not training.fit and cfg["mode"] != "population":
        raise ValueError("expected mode 'population' for a fit_kwargs 'protocol' other than 'standard'")
    if cfg["mode"] in SESSION_MODES:
        pass
    elif dataset is None:  # every neuron excluded by the split: their rows, no fit
        scores = pd.DataFrame({"neuron": list(excluded), "cc_raw": np.nan, "cc_norm": np.nan, "cc_max": np.nan,
                               "n_params": np.nan, "epochs": 0, "wall_s": 0.0})
        models = []
    elif cfg["mode"] == "population":
        training.seed_everything(seed)
        model = build_config_model(cfg, dataset, dataset.n_neurons)
        result = fit_fn(model, train, val, device=device, seed=seed, progress=progress, **fit_kwargs)
        scores = training.evaluate(model, test, check_stimulus_format=check)
        scores["n_params"] = count_parameters(model)
        scores["epochs"] = result.epochs
        scores["wall_s"] = result.wall_s
        models = [model]
    else:
        def model_fn(s):
            return build_config_model(cfg, dataset, 1)

        models, results = training.fit_single_units(model_fn, train, val, seeds=seed, device=device,
                                                    seed=seed, progress=progress, **fit_kwargs)
        # every unit's predictions stacked to (N, T_i) per stimulus, scored in one metrics call
        preds = training.predict_units(models, test, check_stimulus_format=check)
        scores = training.evaluate(None, test, predictions=preds)
        scores["n_params"] = [count_parameters(m) for m in models]
        scores["epochs"] = [r.epochs for r in results]
        scores["wall_s"] = [r.wall_s for r in results]
        scores["neuron"] = list(dataset.neuron_ids)
    scores = _with_excluded(scores, excluded)
    scores["dataset"] = cfg["dataset"]
    scores["model"] = cfg["model"]
    scores["prefilter"] = cfg["prefilter"] or "none"
    scores["note"] = cfg["note"]
    scores["mode"] = cfg["mode"]
    scores["seed"] = int(seed)
    scores["config_id"] = cid
    if checkpoint_dir is not None and models:
        folder = Path(checkpoint_dir)
        info = {"dataset": cfg["dataset"], "dataset_options": cfg["dataset_options"], "split_seed": int(seed),
                "seed": int(seed), "config": cfg, "config_id": cid}
        if cfg["mode"] != "single":
            training.save_checkpoint(folder / f"{cid}_seed{seed}.pt", models[0], metrics=scores, **info)
        else:
            for u, m in enumerate(models):
                nid = str(scores["neuron"].iloc[u])
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in nid)
                training.save_checkpoint(folder / f"{cid}_seed{seed}_{safe}.pt", m,
                                         metrics=scores.iloc[[u]].reset_index(drop=True), neuron=nid, **info)
    return scores[RESULT_COLUMNS]


def config_neuron_ids(config: dict, dataset) -> list[str]:
    """The neuron ids of a normalised configuration's results on ``dataset`` (its ``neurons``, or
    every neuron; ``session:neuron`` in mode "sessions")."""
    if config["mode"] == "sessions":  # results name a session's neuron "session:neuron"
        return [f"{key}:{n}" for key, ds in dataset.items() for n in ds.neuron_ids]
    return [str(n) for n in (config["neurons"] if config["neurons"] is not None else dataset.neuron_ids)]


def load_config_data(config: dict, root):
    """The dataset of a normalised configuration, or its SessionSet in mode 'sessions'."""
    if config["sessions"] is not None:
        return load_sessions(config["sessions"], load_dataset, root)
    return load_dataset(config["dataset"], root=root, **config["dataset_options"])


def split_for_fit(dataset, seed: int):
    """``dataset.split(seed)`` without the neurons the split excluded (too few stimuli heard)
    -> (dataset, train, val, test, excluded {id: reason}); all None but ``excluded`` when
    every neuron is excluded (:func:`deepstrf_utils.datasets.splits.drop_excluded`)."""
    return drop_excluded(dataset, *dataset.split(seed))


def _with_excluded(scores: pd.DataFrame, excluded: dict) -> pd.DataFrame:
    """Scores of the fitted neurons plus one NaN row per excluded neuron, with ``excluded_reason``."""
    scores = scores.copy()
    scores["excluded_reason"] = ""
    if excluded and not scores["neuron"].isin(list(excluded)).all():
        extra = pd.DataFrame({"neuron": list(excluded), "excluded_reason": list(excluded.values())})
        for col in ("cc_raw", "cc_norm", "cc_max", "n_params", "wall_s"):
            extra[col] = np.nan
        extra["epochs"] = 0
        scores = pd.concat([scores, extra], ignore_index=True)
    elif excluded:
        scores["excluded_reason"] = [excluded.get(str(n), "") for n in scores["neuron"]]
    return scores


class DatasetCache:
    """``load_dataset`` keeping the last dataset in memory (one at a time): called with a
    normalised configuration, returns its dataset (or SessionSet), loading only when the
    dataset, its options or its sessions differ from the previous call's."""

    def __init__(self, root):
        self.root, self.key, self.dataset = root, None, None

    def __call__(self, config: dict):
        key = (config["dataset"], json.dumps(config["dataset_options"], sort_keys=True, default=str),
               json.dumps(config["sessions"], sort_keys=True, default=str))
        if key != self.key:
            self.key, self.dataset = None, None  # free the previous one first
            self.dataset = load_config_data(config, self.root)
            self.key = key
        return self.dataset


def plan_jobs(configs: Sequence[dict], seeds: Sequence[int], root="data", chunk_size: int | None = None,
              loader=None) -> list[jobs.Job]:
    """The jobs of configurations x seeds (:class:`deepstrf_utils.runs.jobs.Job`): per configuration
    and seed, its neurons in chunks of ``chunk_size`` (None: one job with every neuron;
    population fits: always one). Loads each dataset once to read its neuron ids."""
    loader = loader or DatasetCache(root)
    out = []
    for cfg in (normalise_config(c) for c in configs):
        ids = config_neuron_ids(cfg, loader(cfg))
        out += jobs.make_jobs(cfg, config_id(cfg), [int(s) for s in seeds], ids, cfg["mode"] != "single",
                              chunk_size)
    return out


def _job_log() -> str | None:
    """stderr file of the submitit job running this process (None outside submitit)."""
    try:
        import submitit

        return str(submitit.JobEnvironment().paths.stderr)
    except Exception:  # not inside a submitit job (or submitit absent)
        return None


def run_job(spec: dict, loader=None) -> str:
    """Run one job (a spec made by :func:`run_configs`): fit and score its neurons, save their
    checkpoints, then write its result file (atomically, last); on an exception write its
    error record instead. Returns "done" or "failed". Picklable by reference (submitit)."""
    job = jobs.Job(**spec["job"])
    folder = Path(spec["folder"])
    log = _job_log()
    if log is not None:  # own process: messages go to the job's log file
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("deepstrf_utils").setLevel(logging.INFO)
    omp_at_start = os.environ.get("OMP_NUM_THREADS", "unset")
    if spec.get("num_threads"):
        threads = int(spec["num_threads"])
        torch.set_num_threads(threads)
        for var in THREAD_ENV:  # libraries started later in this process, and its children
            os.environ[var] = str(threads)
    logger.info("job %s started (pid %d, %s torch threads, OMP_NUM_THREADS=%s at start): %s %s, seed %d, "
                "neurons %d-%d", job.job_id, os.getpid(), _torch_threads(), omp_at_start, job.config["dataset"],
                job.config["model"], job.seed, job.start, job.stop)
    try:
        cfg = job.config
        dataset = loader(cfg) if loader is not None else load_config_data(cfg, spec["root"])
        everyone = len(job.neurons) == len(config_neuron_ids(cfg, dataset))
        t0 = time.perf_counter()
        rows = run_config(cfg, dataset, job.seed, device=spec["device"], checkpoint_dir=spec["checkpoint_dir"],
                          progress=False, neurons=None if everyone else list(job.neurons))
    except Exception as err:
        logger.warning("job %s failed: %s: %s", job.job_id, type(err).__name__, err, exc_info=log is not None)
        jobs.write_error(job, err, folder, log=log)
        return "failed"
    jobs.write_result(job, rows, folder)
    logger.info("job %s: %d neurons in %.1f s", job.job_id, len(rows), time.perf_counter() - t0)
    return "done"


def failed_jobs(out_csv) -> pd.DataFrame:
    """The failed jobs of the results CSV ``out_csv`` (no result file, an error record): one row
    each with job_id, config_id, dataset, model, prefilter, seed, start, stop, error and log
    (the job's log file, or its error record holding the traceback)."""
    return jobs.read_errors(jobs.jobs_dir(out_csv))


def run_configs(configs: Sequence[dict], seeds: Sequence[int], out_csv, root="data", device="auto",
                checkpoint_dir=None, progress: bool = True, executor: str = "local", cluster: dict | None = None,
                chunk_size: int | None = None, wait: bool = True) -> pd.DataFrame:
    """Run every configuration for every seed as jobs; merge their results into ``out_csv``; resume.

    The grid is cut into jobs (:func:`plan_jobs`: configuration x seed x chunk of
    ``chunk_size`` neurons). Jobs whose neurons are all in ``out_csv`` or in a finished job
    file (``<out_csv stem>_jobs/``) are skipped; the others (failed or missing) run through
    ``executor`` ("local": in this process; "submitit-local": subprocesses; "slurm": a job
    array; see :mod:`deepstrf_utils.runs.executors`, options in ``cluster``). Each job writes its
    checkpoints and then its own result file atomically; a job that raises (e.g. a
    ``FloatingPointError``) writes an error record instead and the others go on (listed by
    :func:`failed_jobs`, logged as warnings, and as records in ``results.attrs["failed"]``); the next
    call retries it. ``wait=False`` submits and returns what is finished so far; a later
    call skips the jobs still queued or running and collects the rest.

    Returns the full results table (old + new rows, one per neuron x seed x configuration)
    with :data:`RESULT_COLUMNS`.
    """
    configs = [normalise_config(c) for c in configs]
    seeds = [check_int(s, f"seeds[{i}]", 0) for i, s in enumerate(seeds)]
    if not configs or not seeds:
        raise ValueError("expected at least one configuration and one seed")
    out_csv = Path(out_csv)
    folder = jobs.jobs_dir(out_csv)
    cluster = dict(cluster or {})
    chunk_size = chunk_size or cluster.pop("neurons_per_job", None) or None
    ex = make_executor(executor, folder / "logs", cluster, threads=job_threads(executor, cluster))
    # the device, once, before any job: jobs on this machine must find it here (a Slurm node is
    # checked by its jobs: this machine may be a login node without a GPU)
    training.resolve_device(device, available=ex.name != "slurm")
    if not wait and ex.name == "local":
        raise ValueError("the local executor runs in this process and cannot submit without waiting; "
                         "use executor 'submitit-local' or 'slurm'")
    loader = DatasetCache(root)
    planned = plan_jobs(configs, seeds, root, chunk_size, loader=loader)
    status = jobs.job_status(planned, folder, jobs.read_table(out_csv, RESULT_COLUMNS, damaged="quarantine"),
                             RESULT_COLUMNS)
    todo = [j for j, s in zip(planned, status) if s != "done"]
    if not wait:
        queued = jobs.read_submissions(folder)
        todo = [j for j in todo if not in_flight(queued.get(j.job_id), folder / "logs")]
    logger.info("run_configs: %d jobs, %d done, %d failed before, %d to run (%s)", len(planned),
                status.count("done"), status.count("failed"), len(todo), ex.name)
    specs = [{"job": {k: getattr(j, k) for k in ("config", "config_id", "seed", "start", "stop", "neurons")},
              "folder": str(folder.resolve()), "root": str(Path(root).resolve()), "device": device,
              "checkpoint_dir": None if checkpoint_dir is None else str(Path(checkpoint_dir).resolve()),
              "num_threads": job_threads(ex.name, cluster)} for j in todo]
    try:
        if not todo:
            pass
        elif ex.name == "local":
            ex.run(lambda spec: run_job(spec, loader=loader), specs, progress=progress)
        elif wait:
            for job, outcome in zip(todo, ex.run(run_job, specs, progress=progress)):
                if outcome["lost"] and not job.result_path(folder).exists():
                    jobs.write_error(job, outcome["lost"], folder, log=outcome["log"])
        else:
            jobs.record_submission(todo, ex.submit(run_job, specs), folder)
    finally:
        results = jobs.merge_results(out_csv, folder, RESULT_COLUMNS, order=planned)
    status = jobs.job_status(planned, folder, results)
    failed = jobs.read_errors(folder, [j.job_id for j, st in zip(planned, status) if st == "failed"])
    for row in failed.itertuples():
        logger.warning("run_configs: job %s (%s %s, seed %d) failed: %s -- log: %s", row.job_id, row.dataset,
                       row.model, row.seed, row.error, row.log)
    results = results.reset_index(drop=True)
    results.attrs["failed"] = failed.to_dict("records")
    return results


def _torch_threads() -> int:
    return torch.get_num_threads()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def job_threads(executor: str, cluster: dict, cores: int | None = None) -> int | None:
    """Threads of each job: with ``submitit-local``, the cores shared by the jobs that run at
    once, ``max(1, cores // max_parallel)``, so that ``max_parallel`` jobs never oversubscribe
    the CPU; ``cores``: this process's torch threads (the physical cores by default, or the
    count the user set), at most :func:`available_cores`. The Slurm allocation's
    ``cpus_per_task`` on a cluster; None (unchanged) in process."""
    if executor == "submitit-local":
        cores = min(_torch_threads(), available_cores()) if cores is None else int(cores)
        return max(1, cores // max(1, int(cluster.get("max_parallel") or 1)))
    if executor == "slurm":
        return slurm_parameters(cluster)["cpus_per_task"]
    return None


def find_checkpoints(config: dict | str, seed: int, checkpoint_dir: str | Path) -> list[Path]:
    """Checkpoint files written by :func:`run_configs` for ``config`` (a configuration or its id)
    and ``seed``: one per neuron in single-unit mode, one in population mode (sorted; empty if none)."""
    cid = config if isinstance(config, str) else config_id(config)
    folder = Path(checkpoint_dir)
    pop = folder / f"{cid}_seed{int(seed)}.pt"
    if pop.exists():
        return [pop]
    return sorted(folder.glob(f"{cid}_seed{int(seed)}_*.pt"))
