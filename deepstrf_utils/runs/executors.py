"""Where jobs run: in this process, in local subprocesses (submitit), or on Slurm (submitit).

======================  ===================================================================
``"local"``             in this process, one job after another (the default; no dependency)
``"submitit-local"``    submitit's ``LocalExecutor``: each job in its own subprocess on this
                        machine, at most ``max_parallel`` at a time (default: 1)
``"slurm"``             submitit's ``SlurmExecutor``: one Slurm job array (``map_array``),
                        parameters from :func:`slurm_parameters`
======================  ===================================================================

An executor runs a picklable function ``fn(spec)`` on every spec (plain dicts) and either
waits (:meth:`Executor.run`, a tqdm bar over finished jobs) or returns right after the
submission (:meth:`Executor.submit`). The job function writes its own result and error
files; the executor only reports the jobs that ended without reaching that point (killed,
out of memory, past the time limit) with their log file, so the caller can record them.
``submitit`` is imported only by the executors that need it (``pip install .[cluster]``).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

__all__ = ["EXECUTORS", "THREAD_ENV", "make_executor", "slurm_parameters", "read_cluster_config", "in_flight", "Executor"]

EXECUTORS = ("local", "submitit-local", "slurm")
#: environment variables that size the thread pools of OpenMP, MKL and OpenBLAS: set for each
#: job with a thread count (``runner.job_threads``), before its Python starts under submitit-local
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

#: cluster option -> submitit SlurmExecutor parameter
_SLURM_KEYS = {"partition": "partition", "gpus_per_job": "gpus_per_node", "time_min": "time",
               "mem_gb": "mem", "array_parallelism": "array_parallelism", "cpus_per_task": "cpus_per_task",
               "account": "account", "qos": "qos", "constraint": "constraint", "setup": "setup",
               "job_name": "job_name"}
#: options of the cluster config that are not Slurm parameters
_OTHER_KEYS = {"max_parallel", "neurons_per_job", "timeout_min"}


def _submitit():
    try:
        import submitit
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the 'submitit-local' and 'slurm' executors need submitit: "
                          "pip install -e '.[cluster]' (or pip install submitit)") from err
    return submitit


def read_cluster_config(path: str | os.PathLike) -> dict:
    """Cluster options from a JSON or TOML file (keys of :func:`slurm_parameters`, plus
    ``max_parallel`` and ``neurons_per_job``). ValueError for another extension or an unknown key."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"expected a cluster configuration file at {path}")
    if path.suffix == ".json":
        options = json.loads(path.read_text())
    elif path.suffix == ".toml":
        import tomllib

        options = tomllib.loads(path.read_text())
    else:
        raise ValueError(f"expected a .json or .toml cluster configuration, got {path.name}")
    check_cluster_options(options)
    return options


def check_cluster_options(options: dict) -> dict:
    """Raise ValueError for a key that is neither a Slurm option nor a runner option."""
    if not isinstance(options, dict):
        raise ValueError(f"expected cluster options as a dict, got {type(options).__name__}")
    unknown = set(options) - set(_SLURM_KEYS) - _OTHER_KEYS
    if unknown:
        raise ValueError(f"unknown cluster option(s) {sorted(unknown)}; expected keys among "
                         f"{sorted(set(_SLURM_KEYS) | _OTHER_KEYS)}")
    return options


def slurm_parameters(options: dict) -> dict:
    """submitit ``SlurmExecutor.update_parameters`` arguments from cluster ``options``:
    partition, gpus_per_job (-> gpus_per_node), time_min (-> time, minutes), mem_gb
    (-> mem, "<n>GB"), array_parallelism, cpus_per_task, account, qos, constraint, setup
    (shell lines run before the job, e.g. ``["source /shared/venv/bin/activate"]``)."""
    check_cluster_options(options)
    params = {"job_name": "deepstrf", "time": 60, "cpus_per_task": 2}
    for key, value in options.items():
        if key in _SLURM_KEYS and value not in (None, ""):
            params[_SLURM_KEYS[key]] = value
    if "mem" in params:
        params["mem"] = f"{float(params['mem']):g}GB"
    for key in ("time", "gpus_per_node", "array_parallelism", "cpus_per_task"):
        if key in params:
            params[key] = int(params[key])
    if "setup" in params and isinstance(params["setup"], str):
        params["setup"] = [params["setup"]]
    return params


class Executor:
    """Runs ``fn(spec)`` for every spec. Subclasses: in-process, submitit local, Slurm."""

    name = "local"

    def run(self, fn: Callable[[dict], object], specs: Sequence[dict], progress: bool = True) -> list[dict]:
        """Run and wait; one outcome per spec: ``{"lost": None | why it ended without
        finishing, "log": log file or None}``."""
        out = []
        for spec in tqdm(specs, disable=not progress, desc="jobs", unit="job"):
            fn(spec)
            out.append({"lost": None, "log": None})
        return out

    def submit(self, fn, specs) -> list[dict]:
        raise ValueError("the local executor runs in this process and cannot submit without waiting; "
                         "use executor 'submitit-local' or 'slurm'")


class _Submitit(Executor):
    def __init__(self, folder, options: dict):
        self.folder = Path(folder)
        self.options = dict(options)

    def _executor(self):
        raise NotImplementedError

    def _wait(self, jobs, bar=None):
        pending = dict(enumerate(jobs))
        outcomes = {}
        while pending:
            for i, job in list(pending.items()):
                if job.done():
                    outcomes[i] = _outcome(job)
                    del pending[i]
                    if bar is not None:
                        bar.update(1)
            if pending:
                time.sleep(0.2)
        return [outcomes[i] for i in range(len(jobs))]

    def submit(self, fn, specs) -> list[dict]:
        ex = self._executor()
        jobs = ex.map_array(fn, list(specs))
        return [{"executor": self.name, "executor_job_id": str(j.job_id), "log": str(j.paths.stderr)}
                for j in jobs]


def _outcome(job) -> dict:
    log = str(job.paths.stderr)
    if not job.paths.result_pickle.exists():  # killed, out of memory, past its time limit ...
        return {"lost": f"the job process ended without finishing (submitit job {job.job_id}, state {job.state}); "
                        "see its log", "log": log}
    try:
        job.result()
    except Exception as err:  # the job function raised outside the runner's own error handling
        first = str(err).strip().splitlines()
        return {"lost": f"{type(err).__name__}: {first[0] if first else ''} (submitit job {job.job_id})", "log": log}
    return {"lost": None, "log": log}


class SubmititLocal(_Submitit):
    """submitit's LocalExecutor: subprocesses on this machine, ``max_parallel`` at a time;
    ``threads``: the size of each job's OpenMP / MKL / OpenBLAS thread pools (their
    environment variables, set before the job's Python starts), None: inherited."""

    name = "submitit-local"

    def __init__(self, folder, options: dict, threads: int | None = None):
        super().__init__(folder, options)
        self.threads = threads

    def _executor(self):
        ex = _submitit().LocalExecutor(folder=self.folder)
        ex.update_parameters(timeout_min=float(self.options.get("timeout_min", 24 * 60)))
        if self.threads:
            setup = [f"export {var}={int(self.threads)}" for var in THREAD_ENV]
            try:
                ex.update_parameters(setup=setup)
            except ValueError:  # a submitit without local setup lines: the job sets torch's own count
                logger.info("submitit-local: this submitit cannot run setup lines; each job sets %d torch "
                            "threads itself", self.threads)
        return ex

    def run(self, fn, specs, progress=True):
        ex = self._executor()
        width = max(1, int(self.options.get("max_parallel") or 1))
        specs = list(specs)
        outcomes: list = [None] * len(specs)
        running: dict = {}
        nxt = 0
        with tqdm(total=len(specs), disable=not progress, desc="jobs", unit="job") as bar:
            while nxt < len(specs) or running:
                while nxt < len(specs) and len(running) < width:
                    running[nxt] = ex.submit(fn, specs[nxt])
                    nxt += 1
                for i, job in list(running.items()):
                    if job.done():
                        outcomes[i] = _outcome(job)
                        del running[i]
                        bar.update(1)
                if running:
                    time.sleep(0.1)
        return outcomes


class Slurm(_Submitit):
    """submitit's SlurmExecutor: one job array, parameters from :func:`slurm_parameters`."""

    name = "slurm"

    def _executor(self):
        ex = _submitit().SlurmExecutor(folder=self.folder)
        ex.update_parameters(**slurm_parameters(self.options))
        return ex

    def run(self, fn, specs, progress=True):
        jobs = self._executor().map_array(fn, list(specs))
        logger.info("slurm: submitted %d jobs (array %s); logs in %s", len(jobs),
                    jobs[0].job_id.split("_")[0] if jobs else "-", self.folder)
        with tqdm(total=len(jobs), disable=not progress, desc="jobs", unit="job") as bar:
            return self._wait(jobs, bar=bar)


def make_executor(name: str = "local", folder: str | os.PathLike | None = None, options: dict | None = None,
                  threads: int | None = None):
    """The executor called ``name`` (:data:`EXECUTORS`); ``folder`` holds submitit's logs and
    pickles; ``options`` are cluster options (:func:`slurm_parameters`, ``max_parallel``);
    ``threads``: each submitit-local job's thread pools (None: inherited)."""
    key = str(name or "local").strip().lower()
    if key not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; expected one of {list(EXECUTORS)}")
    options = check_cluster_options(dict(options or {}))
    if key == "local":
        return Executor()
    if folder is None:
        raise ValueError(f"executor {key!r} needs a folder for its logs")
    return SubmititLocal(folder, options, threads) if key == "submitit-local" else Slurm(folder, options)


#: Slurm states of a job that is still queued or running
_ALIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD",
          "REQUEUE_FED"}


def in_flight(record: dict | None, folder: str | os.PathLike, grace_s: float = 120.0) -> bool:
    """Whether a job submitted without waiting (its ``record``) is still queued or running:
    a live process for submitit-local, a queued/running Slurm state (``sacct``) for slurm;
    a job submitted less than ``grace_s`` ago counts as in flight while Slurm has no state yet."""
    if not record:
        return False
    jid = str(record.get("executor_job_id", ""))
    if record.get("executor") == "submitit-local":
        try:
            os.kill(int(jid), 0)
        except (ValueError, ProcessLookupError, PermissionError):
            return False
        return True
    if record.get("executor") == "slurm":
        state = _submitit().SlurmJob(folder=Path(folder), job_id=jid).state.split(" ")[0]
        if state in _ALIVE:
            return True
        return state == "UNKNOWN" and time.time() - float(record.get("submitted", 0)) < grace_s
    return False
