"""Jobs of a sweep: one job = (configuration, seed, chunk of neurons), its files, the plan, the merge.

The runner (:func:`deepstrf_utils.runs.runner.run_configs`) cuts a grid of configurations x
seeds into :class:`Job` s. Each job owns two files in the sweep's job folder
(``<results csv stem>_jobs/``, see :func:`jobs_dir`)::

    <config_id>/seed<seed>_<start>-<stop>.csv          its result rows (written last, atomically)
    <config_id>/seed<seed>_<start>-<stop>.error.json   why it failed (error, traceback, log path)

``start:stop`` are the positions of the job's neurons in the configuration's neuron list
(one chunk with every neuron unless a chunk size is given; population fits are always one
job). A job is *done* when every (config_id, seed, neuron) it covers is in a finished
result file or in the merged results CSV; a failed job (error record, no result) and a
missing one are both run again by the next call. Every file is written through a
temporary file in the same folder and ``os.replace`` (:func:`deepstrf_utils.files.atomic_write`,
permissions from the umask), so an interrupted job or two runs at once never leave a
half-written file: at worst two runs compute the same job twice and write identical rows.
A result file damaged afterwards (cut inside a row, not text, rows of the wrong width, or
not one row per neuron of its job) is never merged: it is moved aside
(``<name>.damaged-<time>``, with a warning) and its job counts as missing, so it is
computed again; a damaged results CSV is moved aside likewise and rebuilt from the job files.

The results CSV is the merge of its previous rows and every finished job file
(:func:`merge_results`), one row per (config_id, seed, neuron).
"""
from __future__ import annotations

import io
import json
import os
import re
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from ..files import atomic_write, quarantine, read_csv_text

__all__ = ["Job", "make_jobs", "jobs_dir", "job_status", "write_result", "write_error", "read_errors",
           "merge_results", "read_table", "read_job_result", "write_table", "record_submission", "read_submissions", "KEY"]

#: Columns identifying one result row.
KEY = ("config_id", "seed", "neuron")
_DTYPES = {"neuron": str, "config_id": str, "note": str, "prefilter": str, "excluded_reason": str}


@dataclass(frozen=True)
class Job:
    """One unit of work: ``config`` (a normalised configuration dict) fitted with ``seed`` on
    the neurons at positions ``start:stop`` of its neuron list (ids in ``neurons``)."""

    config: dict
    config_id: str
    seed: int
    start: int
    stop: int
    neurons: tuple

    @property
    def name(self) -> str:
        """File stem of the job: ``seed<seed>_<start>-<stop>``."""
        return f"seed{self.seed}_{self.start}-{self.stop}"

    @property
    def job_id(self) -> str:
        """Deterministic id: ``<config_id>/seed<seed>_<start>-<stop>``."""
        return f"{self.config_id}/{self.name}"

    def result_path(self, folder: str | os.PathLike) -> Path:
        return Path(folder) / self.config_id / f"{self.name}.csv"

    def error_path(self, folder: str | os.PathLike) -> Path:
        return Path(folder) / self.config_id / f"{self.name}.error.json"


def jobs_dir(out_csv: str | os.PathLike) -> Path:
    """Job folder of a results CSV: ``results_quick.csv`` -> ``results_quick_jobs/`` beside it."""
    out_csv = Path(out_csv)
    return out_csv.parent / f"{out_csv.stem}_jobs"


def make_jobs(config: dict, config_id: str, seeds: Sequence[int], neuron_ids: Sequence, population: bool,
              chunk_size: int | None = None) -> list[Job]:
    """The jobs of one configuration: per seed, the neuron list cut into chunks of
    ``chunk_size`` (None or a population fit: one chunk of every neuron)."""
    ids = tuple(str(n) for n in neuron_ids)
    if not ids:
        raise ValueError(f"expected at least one neuron for configuration {config_id}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"expected chunk_size None or a positive integer, got {chunk_size!r}")
    step = len(ids) if population or chunk_size is None else chunk_size
    return [Job(config, config_id, int(s), a, min(a + step, len(ids)), ids[a:a + step])
            for s in seeds for a in range(0, len(ids), step)]


def read_table(path: str | os.PathLike, columns: Sequence[str] | None = None, damaged: str = "raise") -> pd.DataFrame:
    """A results table (CSV) with neuron / config_id / note / prefilter as strings ("" notes
    kept); an empty table with ``columns`` when the file does not exist. ValueError when
    ``columns`` are missing.

    A damaged file (cut inside a row, not text, rows of the wrong width: see
    :func:`deepstrf_utils.files.read_csv_text`) raises a ValueError naming it
    (``damaged="raise"``), or is moved aside with a warning and read as empty
    (``damaged="quarantine"``, what the runner does: its rows are then computed again).
    """
    if damaged not in ("raise", "quarantine"):
        raise ValueError(f"expected damaged='raise' or 'quarantine', got {damaged!r}")
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=list(columns or []))
    try:
        df = pd.read_csv(io.StringIO(read_csv_text(path)), dtype=_DTYPES, keep_default_na=False, na_values=[""])
        if columns is not None and "excluded_reason" in columns and "excluded_reason" not in df.columns:
            df["excluded_reason"] = ""  # tables written before per-neuron splits
        missing = [c for c in (columns or []) if c not in df.columns]
        if missing:
            raise ValueError(f"expected {path} to hold the results columns; missing {missing}")
    except ValueError as err:   # pandas' ParserError / EmptyDataError are ValueErrors
        if damaged == "raise":
            raise ValueError(f"{err} -- delete or move the file; its jobs are then computed again") from err
        quarantine(path, str(err))
        return pd.DataFrame(columns=list(columns or []))
    if "note" in df.columns:
        df["note"] = df["note"].fillna("")
    if "excluded_reason" in df.columns:
        df["excluded_reason"] = df["excluded_reason"].fillna("")
    return df


_JOB_FILE = re.compile(r"^seed(-?\d+)_(\d+)-(\d+)\.csv$")


def read_job_result(path: str | os.PathLike, columns: Sequence[str]) -> pd.DataFrame | None:
    """The rows of the job result file ``path`` (``<config_id>/seed<s>_<start>-<stop>.csv``),
    or None when it is damaged: unreadable (see :func:`read_table`), or not exactly one row
    per neuron of its job with its config_id and seed. A damaged file is moved aside with a
    warning, so that its job counts as missing and runs again."""
    path = Path(path)
    df = read_table(path, columns, damaged="quarantine")
    if not path.exists():
        return None
    m = _JOB_FILE.match(path.name)
    if m is not None:
        seed, n = int(m.group(1)), int(m.group(3)) - int(m.group(2))
        ok = (len(df) == n and df["neuron"].astype(str).nunique() == n
              and (df["config_id"].astype(str) == path.parent.name).all()
              and (pd.to_numeric(df["seed"], errors="coerce") == seed).all())
        if not ok:
            quarantine(path, f"expected {n} rows, one per neuron of job {path.parent.name}/{path.stem} with its "
                             f"config_id and seed {seed}; found {len(df)}")
            return None
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` to the CSV ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    atomic_write(path, lambda fh: df.to_csv(fh, index=False))


def write_result(job: Job, rows: pd.DataFrame, folder: str | os.PathLike) -> Path:
    """Store a finished job's rows (atomically) and drop its error record, if any."""
    path = job.result_path(folder)
    write_table(rows, path)
    job.error_path(folder).unlink(missing_ok=True)
    return path


def write_error(job: Job, error: BaseException | str, folder: str | os.PathLike, log: str | None = None,
                tb: str | None = None) -> Path:
    """Record why ``job`` failed: ``<job>.error.json`` with the error text, the traceback, the
    log file (``log``; the record itself when None) and where / when."""
    path = job.error_path(folder)
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    if tb is None and isinstance(error, BaseException):
        tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    cfg = job.config
    record = {"job_id": job.job_id, "config_id": job.config_id, "seed": job.seed, "start": job.start,
              "stop": job.stop, "dataset": cfg.get("dataset"), "model": cfg.get("model"),
              "prefilter": cfg.get("prefilter") or "none", "error": text, "traceback": tb or "",
              "log": str(log) if log else str(path), "host": socket.gethostname(), "pid": os.getpid(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write(path, lambda fh: json.dump(record, fh, indent=1))
    return path


def read_errors(folder: str | os.PathLike, job_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Error records under the job ``folder`` (only ``job_ids`` when given) whose job has no
    result file: columns job_id, config_id, dataset, model, prefilter, seed, start, stop,
    error, log, time (one row per failed job, sorted by job_id)."""
    cols = ["job_id", "config_id", "dataset", "model", "prefilter", "seed", "start", "stop", "error", "log",
            "time"]
    wanted = None if job_ids is None else set(job_ids)
    rows = []
    for path in sorted(Path(folder).glob("*/*.error.json")):
        if path.with_name(path.name.replace(".error.json", ".csv")).exists():
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):  # being replaced by another run: skip, seen next time
            continue
        if wanted is None or rec.get("job_id") in wanted:
            rows.append({c: rec.get(c) for c in cols})
    return pd.DataFrame(rows, columns=cols)


def _finished_keys(results: pd.DataFrame) -> set:
    if results.empty:
        return set()
    return set(zip(results["config_id"].astype(str), results["seed"].astype(int), results["neuron"].astype(str)))


def job_status(jobs: Sequence[Job], folder: str | os.PathLike, results: pd.DataFrame | None = None,
               columns: Sequence[str] | None = None) -> list[str]:
    """Status of each job: "done" (every neuron of it in a result file of ``folder`` or in
    ``results``), "failed" (an error record and no result) or "missing". With ``columns``
    (the results columns), each result file is checked first (:func:`read_job_result`): a
    damaged one is moved aside and its job is not done."""
    folder = Path(folder)
    finished = _finished_keys(results) if results is not None else set()
    out = []
    for job in jobs:
        path = job.result_path(folder)
        if path.exists() and columns is not None:
            read_job_result(path, columns)
        if path.exists() or all((job.config_id, job.seed, n) in finished for n in job.neurons):
            out.append("done")
        elif job.error_path(folder).exists():
            out.append("failed")
        else:
            out.append("missing")
    return out


def merge_results(out_csv: str | os.PathLike, folder: str | os.PathLike, columns: Sequence[str],
                  order: Sequence[Job] = ()) -> pd.DataFrame:
    """Merge the rows already in ``out_csv`` with every finished job file under ``folder``:
    one row per (config_id, seed, neuron) -- the first one seen wins, the CSV's own rows
    first -- ordered as the jobs of ``order`` and their neurons (rows of other jobs first, in
    their previous order), so the table does not depend on which job finished first. Writes
    ``out_csv`` atomically when it changes; returns the merged table with ``columns``. A
    damaged results CSV or job file is moved aside with a warning and not merged
    (:func:`read_table`, :func:`read_job_result`)."""
    out_csv, folder = Path(out_csv), Path(folder)
    base = read_table(out_csv, columns, damaged="quarantine")[list(columns)]
    parts = [read_job_result(p, columns) for p in sorted(folder.glob("*/*.csv"))]
    parts = [p[list(columns)] for p in [base, *parts] if p is not None and not p.empty]
    if not parts:
        return base.reset_index(drop=True)
    merged = pd.concat(parts, ignore_index=True)
    keys = list(zip(merged["config_id"].astype(str), merged["seed"].astype(int), merged["neuron"].astype(str)))
    merged = merged[~pd.Series(keys).duplicated().to_numpy()]
    rank = {(j.config_id, j.seed, n): i for i, (j, n) in enumerate((j, n) for j in order for n in j.neurons)}
    where = [rank.get(k, -1) for k, dup in zip(keys, pd.Series(keys).duplicated()) if not dup]
    merged = merged.iloc[pd.Series(where).argsort(kind="stable").to_numpy()].reset_index(drop=True)
    if len(merged) != len(base) or not merged[["config_id", "neuron"]].equals(base[["config_id", "neuron"]]) or \
            not (merged["seed"].astype(int).to_numpy() == base["seed"].astype(int).to_numpy()).all():
        write_table(merged, out_csv)
    return merged


def read_submissions(folder: str | os.PathLike) -> dict:
    """``{job_id: record}`` of the jobs submitted without waiting (``submitted.json``)."""
    path = Path(folder) / "submitted.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"expected a JSON object of submitted jobs in {path}: {err}") from err


def record_submission(jobs: Sequence[Job], records: Sequence[dict], folder: str | os.PathLike) -> Path:
    """Add the executor's records (executor, executor_job_id, log) of ``jobs`` to
    ``submitted.json`` (atomically), with the submission time."""
    if len(jobs) != len(records):
        raise ValueError(f"expected one submission record per job, got {len(records)} for {len(jobs)} jobs")
    path = Path(folder) / "submitted.json"
    known = read_submissions(folder)
    now = time.time()
    for job, rec in zip(jobs, records):
        known[job.job_id] = {**rec, "submitted": now}
    atomic_write(path, lambda fh: json.dump(known, fh, indent=1))
    return path
