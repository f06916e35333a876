"""Files the library writes: one atomic writer that honours the umask, and content digests.

- :func:`atomic_path` (a context manager) gives a temporary path beside the target,
  ``.<name>.<random>.tmp``, created like ``open()`` creates files (mode ``0o666`` minus the
  process umask, so group members read results on a shared filesystem when the umask lets
  them); on success the file is moved onto the target with ``os.replace`` (no ``fsync``: a
  killed process never leaves a partial file, and the digests and CSV checks catch what a
  power loss could), and temporary files of the same target left by interrupted writes (not
  modified since :data:`STALE_AFTER_S` seconds before this write began; those present when
  the process first wrote in the folder: one scan per folder and process) are removed; on an
  error the temporary file is removed. An interrupted write therefore never leaves a
  half-written file at the target.
- :func:`atomic_write` opens that temporary file and calls ``write(fh)``; :func:`temp_folder`
  makes a folder beside a target (umask permissions) to build it and move it into place.
- :func:`read_csv_text` reads a CSV the library wrote and checks that it is whole: UTF-8
  text, ending with a newline (a file cut inside a row does not), every row as wide as the
  header; :func:`quarantine` moves a damaged file aside (``<name>.damaged-<time>``) so that
  what it held is computed again.
- :func:`content_digest` is the SHA-256 of nested dicts / lists / strings / numbers / None /
  bytes / numpy arrays / torch tensors, independent of dict order; HDF5 caches and
  checkpoints store it to detect damaged or edited files.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import secrets
import stat
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["STALE_AFTER_S", "atomic_path", "atomic_write", "clean_stale_temps", "temp_folder",
           "read_csv_text", "quarantine", "content_digest"]

#: A temporary file of a target not modified for this many seconds before a write of the
#: same target began belongs to an interrupted write and is removed by that write.
STALE_AFTER_S = 60.0


#: Temporary files of the writers: ``.<target name>.<letters, digits, _>.tmp``.
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")
#: folder -> {target name: temporary files of it} as found when this process first wrote in
#: the folder: stale temporary files come from processes interrupted before, so one scan
#: per folder and process finds them (a scan per write would cost O(files) each time in a
#: folder of 10^5 checkpoints).
_TEMPS_FOUND: dict[str, dict[str, list[str]]] = {}


def _found_in(folder: str | os.PathLike) -> dict[str, list[str]]:
    """``{target name: its temporary files}`` in ``folder`` as of this process's first scan of it."""
    folder = os.path.abspath(folder)
    found = _TEMPS_FOUND.get(folder)
    if found is None:
        found = {}
        try:
            for entry in os.scandir(folder):
                m = _TEMP_NAME.match(entry.name)
                if m:
                    found.setdefault(m.group("target"), []).append(entry.name)
        except OSError:
            pass
        _TEMPS_FOUND[folder] = found
    return found


def _create_temp(path: Path, suffix: str = ".tmp", folder: bool = False) -> Path:
    """A new empty file (or ``folder``) ``.<name>.<random><suffix>`` beside ``path``, with the
    permissions of a new file (0o666) or folder (0o777) minus the umask."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
        try:
            if folder:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary {'folder' if folder else 'file'} for {path} in {path.parent}")


def temp_folder(path: str | os.PathLike, suffix: str = ".extract") -> Path:
    """A new empty folder ``.<name>.<random><suffix>`` beside ``path`` (permissions 0o777 minus
    the umask, as ``os.mkdir`` gives, unlike ``tempfile.mkdtemp``'s 0o700), e.g. to build a
    folder and move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _create_temp(path, suffix, folder=True)


def clean_stale_temps(path: str | os.PathLike, before: float) -> list[Path]:
    """Remove the temporary files of ``path`` (``.<name>.<letters, digits, _>.tmp``) last modified before
    the time ``before`` (seconds since the epoch) -> the files removed.

    Looks among the temporary files present when this process first wrote in the folder
    (one directory scan per folder and process); the ones found are looked at once.
    """
    path = Path(path)
    removed = []
    for name in _found_in(path.parent).pop(path.name, []):
        tmp = path.parent / name
        with suppress(OSError):   # gone already, or not ours to remove
            st = os.lstat(tmp)
            if stat.S_ISREG(st.st_mode) and st.st_mtime < before:
                os.remove(tmp)
                removed.append(tmp)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through; replace ``path`` with it on success.

    The folder is created when missing. The temporary file exists (empty) when yielded, with
    the permissions ``open()`` would give a new file (0o666 minus the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    _found_in(path.parent)                # the folder's first scan by this process, before our own temp
    tmp = _create_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.remove(tmp)
        raise
    clean_stale_temps(path, started - STALE_AFTER_S)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], binary: bool = False) -> Path:
    """Write ``path`` atomically: ``write(fh)`` on a temporary file (text with ``newline=""``,
    or ``binary``), then ``os.replace`` (see :func:`atomic_path`) -> the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") if binary else open(tmp, "w", newline="", encoding="utf-8") as fh:
            write(fh)
    return Path(path)


def read_csv_text(path: str | os.PathLike) -> str:
    """The text of the CSV file ``path``, checked to be whole.

    Raises:
        ValueError (naming the file and the line): bytes that are not UTF-8 text, a last
        row without its newline (the file was cut inside a row), a row with more or fewer
        fields than the header, a NUL byte or an unterminated quote.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: expected a CSV table (UTF-8 text), found bytes that are not text at byte "
                         f"{err.start} (binary garbage?)") from err
    if not text.strip():
        raise ValueError(f"{path}: expected a CSV table with a header row, the file is empty")
    if not text.endswith("\n"):
        last = text.rsplit("\n", 1)[-1]
        raise ValueError(f"{path}: expected a CSV table ending with a newline; it ends inside a row (truncated): "
                         f"{last[:60]!r}")
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise ValueError(f"{path}: expected a CSV table, could not parse it: {err}") from err
    width = len(rows[0]) if rows else 0
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != width and not (width == 1 and not row):   # a 1-column blank row
            raise ValueError(f"{path}, row {line}: expected {width} fields as in the header, got {len(row)}")
    return text


def quarantine(path: str | os.PathLike, reason: str) -> Path:
    """Move the damaged file ``path`` to ``<name>.damaged-<YYYYmmddTHHMMSS>`` beside it (a WARNING
    names both and ``reason``) -> the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target, n = path.with_name(f"{path.name}.damaged-{stamp}"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, target)
    log.warning("%s is damaged (%s); moved it to %s, what it held is computed again", path, reason, target.name)
    return target


# ----------------------------------------------------------------------------- digests
def _feed(h, value: Any) -> None:
    """Add a canonical, typed encoding of ``value`` to the hash ``h``."""
    if value is None:
        h.update(b"N;")
    elif isinstance(value, (bool, np.bool_)):
        h.update(b"B1;" if value else b"B0;")
    elif isinstance(value, (int, np.integer)):
        h.update(b"I%d;" % int(value))
    elif isinstance(value, (float, np.floating)):
        h.update(b"F" + float(value).hex().encode() + b";")
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        h.update(b"S%d:" % len(raw) + raw)
    elif isinstance(value, (bytes, bytearray, np.bytes_)):
        h.update(b"Y%d:" % len(value) + bytes(value))
    elif isinstance(value, dict):
        h.update(b"D%d:" % len(value))
        for key in sorted(value, key=str):
            _feed(h, str(key))
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(b"L%d:" % len(value))
        for item in value:
            _feed(h, item)
    elif isinstance(value, np.ndarray):
        h.update(b"A" + str(value.shape).encode() + value.dtype.str.encode() + b":")
        if value.dtype.kind in "OUS":
            for item in value.ravel():
                _feed(h, item.item() if isinstance(item, np.generic) else item)
        else:
            h.update(np.ascontiguousarray(value).tobytes())
    elif hasattr(value, "detach") and hasattr(value, "dtype"):      # a torch tensor
        import torch

        t = value.detach().cpu().contiguous()
        h.update(b"T" + str(tuple(t.shape)).encode() + str(t.dtype).encode() + b":")
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        raise ValueError(f"expected dicts, lists, strings, numbers, None, bytes, arrays or tensors "
                         f"to digest, got {type(value).__name__}")


def content_digest(value: Any) -> str:
    """SHA-256 (hex) of ``value``: nested dicts (in any key order), lists / tuples, str, bytes,
    int, float (exact bits), bool, None, numpy arrays (dtype, shape and bytes) and torch
    tensors. Equal values give equal digests; any changed bit of an array changes it."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()
