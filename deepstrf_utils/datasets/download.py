"""Download, check, extract and cache the public datasets.

Every dataset lives in ``<root>/<name>/`` (``root`` defaults to ``data``):

=========  =========================================================  ======================
name       files (as the original release names them)                 source
=========  =========================================================  ======================
ns1        ``MetadataSHEnCneurons.mat``, ``spikesandwav/``            OSF ayw2p (no account)
nat4_a1    ``A1_NAT4_ozgf.fs100.ch18.tgz``, ``A1_pred_correlation.csv``,  Zenodo 8044773
           ``A1_single_sites/`` (from ``A1_single_sites.zip``)
nat4_peg   the same with ``PEG_``                                     Zenodo 8044773
wehr       ``crcns-ac1.zip`` (or its extracted ``wehr/Results``,      CRCNS ac-1 (free
           ``wehr/Stimuli``)                                          account, manual)
=========  =========================================================  ======================

Command line (what ``make data DATASET=...`` runs)::

    python -m deepstrf_utils.datasets.download ns1 --root data

Guarantees: a download goes to ``<file>.part`` and resumes from it (HTTP Range) after an
interruption; the finished file is checked against the size and checksum published by the
host (OSF / Zenodo file metadata) before it is renamed into place; an archive is extracted
into a temporary folder next to its destination and renamed when complete. So an
interrupted download or extraction never leaves a half-written file or folder where the
loaders look. Preprocessed datasets are cached as HDF5 (`cache_file`, `cached_dataset`)
through the atomic `ResponseDataset.to_hdf5`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from tqdm.auto import tqdm

from ..files import temp_folder

log = logging.getLogger(__name__)

#: bump to invalidate every preprocessed cache when a loader's output changes
CACHE_VERSION = 1

OSF_DOWNLOAD = "https://osf.io/download/{guid}/"
OSF_META = "https://api.osf.io/v2/files/{guid}/"
ZENODO_RECORD = 8044773
ZENODO_DOWNLOAD = "https://zenodo.org/records/{record}/files/{key}?download=1"
ZENODO_META = "https://zenodo.org/api/records/{record}"
CRCNS_AC1_PAGE = "https://crcns.org/data-sets/ac/ac-1/about"


@dataclass
class RemoteFile:
    """One file of a release.

    Attributes:
        name: file name in ``<root>/<dataset>/``.
        url: download address.
        host: "osf", "zenodo" or "manual" (where size/checksum metadata come from).
        key: the host's identifier (OSF GUID, Zenodo file key).
        extract_to: for an archive, the folder (in ``<root>/<dataset>/``) it unpacks to;
            the loaders need that folder, not the archive.
    """
    name: str
    url: str
    host: str
    key: str = ""
    extract_to: Optional[str] = None


@dataclass
class DatasetSpec:
    """Where a dataset comes from and which paths its loader needs."""
    name: str
    files: List[RemoteFile]
    required: List[str]              # paths (relative to <root>/<name>) the loader reads
    source: str
    manual: bool = False
    instructions: str = ""
    alternatives: Dict[str, str] = field(default_factory=dict)   # required -> also accepted


def _osf(name: str, guid: str, extract_to: Optional[str] = None) -> RemoteFile:
    return RemoteFile(name, OSF_DOWNLOAD.format(guid=guid), "osf", guid, extract_to)


def _zenodo(name: str, extract_to: Optional[str] = None) -> RemoteFile:
    return RemoteFile(name, ZENODO_DOWNLOAD.format(record=ZENODO_RECORD, key=name), "zenodo",
                      name, extract_to)


def _nat4_spec(area: str) -> DatasetSpec:
    return DatasetSpec(
        name=f"nat4_{area.lower()}",
        files=[_zenodo(f"{area}_NAT4_ozgf.fs100.ch18.tgz"),
               _zenodo(f"{area}_pred_correlation.csv"),
               _zenodo(f"{area}_single_sites.zip", extract_to=f"{area}_single_sites")],
        required=[f"{area}_NAT4_ozgf.fs100.ch18.tgz", f"{area}_pred_correlation.csv",
                  f"{area}_single_sites"],
        source=f"Zenodo record {ZENODO_RECORD} (https://doi.org/10.5281/zenodo.{ZENODO_RECORD})",
    )


DATASETS: Dict[str, DatasetSpec] = {
    "ns1": DatasetSpec(
        name="ns1",
        files=[_osf("MetadataSHEnCneurons.mat", "gdwyd"),
               _osf("spikesandwav.zip", "5nxga", extract_to="spikesandwav"),
               _osf("ReadMe.rtf", "f3rtm")],
        required=["MetadataSHEnCneurons.mat", "spikesandwav"],
        source="OSF project ayw2p (https://osf.io/ayw2p/)",
    ),
    "nat4_a1": _nat4_spec("A1"),
    "nat4_peg": _nat4_spec("PEG"),
    "wehr": DatasetSpec(
        name="wehr",
        files=[RemoteFile("crcns-ac1.zip", CRCNS_AC1_PAGE, "manual", "ac-1/crcns-ac1.zip",
                          extract_to="crcns-ac1")],
        required=["crcns-ac1"],
        alternatives={"crcns-ac1": "crcns-ac1.zip"},
        source=f"CRCNS ac-1 ({CRCNS_AC1_PAGE}), doi:10.6080/K0KW5CXR",
        manual=True,
        instructions=("CRCNS needs a free account, so this file is downloaded by hand: log in at "
                      "https://crcns.org, open " + CRCNS_AC1_PAGE + " -> 'Download', fetch "
                      "crcns-ac1.zip and put it (or its extracted content, a folder holding "
                      "wehr/Results and wehr/Stimuli) in {folder}/"),
    ),
}


# ----------------------------------------------------------------------------- checks
def dataset_dir(name: str, root="data") -> Path:
    """``<root>/<name>``, the folder of one dataset."""
    return Path(root) / name


def missing_files(name: str, root="data") -> List[str]:
    """Required paths of dataset ``name`` that are absent from ``<root>/<name>``."""
    spec = _spec(name)
    folder = dataset_dir(name, root)
    out = []
    for rel in spec.required:
        alt = spec.alternatives.get(rel)
        if (folder / rel).exists() or (alt is not None and (folder / alt).exists()):
            continue
        out.append(rel)
    return out


def not_found_message(name: str, root="data", missing: Optional[Sequence[str]] = None) -> str:
    """The text of the FileNotFoundError raised when a dataset is not on disk."""
    spec = _spec(name)
    folder = dataset_dir(name, root)
    missing = list(missing_files(name, root) if missing is None else missing)
    missing = [f"{m} (or {spec.alternatives[m]})" if m in spec.alternatives else m for m in missing]
    msg = (f"dataset '{name}' not found: expected {', '.join(missing)} in {folder}/ "
           f"(source: {spec.source}). ")
    if spec.manual:
        msg += spec.instructions.format(folder=folder)
    else:
        msg += (f"Get it with `make data DATASET={name}` (or `python -m "
                f"deepstrf_utils.datasets.download {name} --root {root}`), or call the loader "
                f"with download=True. URLs: " + "; ".join(f.url for f in spec.files))
    return msg


def require(name: str, root="data", download: bool = False) -> Path:
    """Make sure dataset ``name`` is in ``<root>/<name>``; download it if allowed.

    Returns:
        the dataset folder.

    Raises:
        FileNotFoundError: files missing and ``download=False`` (or a manual dataset); the
            message names the files, the folder and the command / URL that gets them.
    """
    missing = missing_files(name, root)
    if not missing:
        return dataset_dir(name, root)
    if download and not _spec(name).manual:
        fetch(name, root)
        missing = missing_files(name, root)
        if not missing:
            return dataset_dir(name, root)
    raise FileNotFoundError(not_found_message(name, root, missing))


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"expected a dataset name among {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name]


# ----------------------------------------------------------------------------- downloads
def _hash_file(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path, size: Optional[int] = None, checksum: Optional[str] = None) -> None:
    """Check a file's size and checksum (``"md5:..."`` / ``"sha256:..."``).

    Raises:
        ValueError: naming the file, the expected and the found value.
    """
    path = Path(path)
    if size is not None and path.stat().st_size != int(size):
        raise ValueError(f"{path}: size {path.stat().st_size} bytes, expected {size} "
                         "(truncated or corrupted download)")
    if checksum:
        algo, _, expected = checksum.partition(":")
        if not expected:
            algo, expected = "md5", algo
        found = _hash_file(path, algo)
        if found.lower() != expected.lower():
            raise ValueError(f"{path}: {algo} checksum {found}, expected {expected} "
                             "(corrupted download)")


def download_file(url: str, dest, size: Optional[int] = None, checksum: Optional[str] = None,
                  progress: bool = True, timeout: float = 60.0, chunk: int = 1 << 20) -> Path:
    """Download ``url`` to ``dest`` with resume and verification.

    Bytes go to ``dest + ".part"``; an existing ``.part`` file is resumed with an HTTP Range
    request (restarted if the server ignores it). When complete, the size (``size``, else
    the server's Content-Length) and ``checksum`` are checked, then the file is renamed to
    ``dest``. A transfer that stops early raises OSError and keeps the ``.part`` file for the
    next call; a failed size/checksum check deletes it and raises ValueError.

    Args:
        url: http(s) or file URL. dest: destination path.
        size: expected size in bytes. checksum: ``"md5:<hex>"`` or ``"sha256:<hex>"``.
        progress: tqdm progress bar.

    Returns:
        ``dest`` as a Path.

    Raises:
        ValueError: size or checksum mismatch. OSError (incl. urllib.error.URLError): network
            error or interrupted transfer.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    if size is not None and done > int(size):
        part.unlink()
        done = 0
    request = urllib.request.Request(url, headers={"User-Agent": "deepstrf-repro"})
    if done and not (size is not None and done == int(size)):
        request.add_header("Range", f"bytes={done}-")
    total = size
    if not (size is not None and done == int(size)):
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status = getattr(resp, "status", None) or resp.getcode()
            if done and status != 206:          # server ignored the Range header
                log.info("%s: server does not resume, restarting", url)
                done = 0
            length = resp.headers.get("Content-Length")
            if total is None and length is not None:
                total = done + int(length)
            mode = "ab" if done else "wb"
            with open(part, mode) as f, tqdm(total=total, initial=done, unit="B",
                                             unit_scale=True, desc=dest.name,
                                             disable=not progress) as bar:
                while True:
                    block = resp.read(chunk)
                    if not block:
                        break
                    f.write(block)
                    bar.update(len(block))
    got = part.stat().st_size if part.exists() else 0
    if total is not None and got < int(total):
        raise OSError(f"download of {url} stopped at {got} of {total} bytes; {part} is kept, "
                      "run the same command again to resume")
    try:
        verify_file(part, total, checksum)
    except ValueError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _read_json(url: str, timeout: float = 60.0) -> dict:
    req = urllib.request.Request(url, headers={"User-Agent": "deepstrf-repro",
                                               "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def remote_metadata(file: RemoteFile) -> Tuple[Optional[int], Optional[str]]:
    """(size in bytes, checksum) that the host publishes for ``file``; (None, None) if unknown.

    OSF: ``api.osf.io/v2/files/<guid>`` (``size``, ``extra.hashes.sha256``/``md5``).
    Zenodo: ``zenodo.org/api/records/<id>`` (``files[].size``, ``files[].checksum``).
    """
    try:
        if file.host == "osf":
            attrs = _read_json(OSF_META.format(guid=file.key))["data"]["attributes"]
            hashes = (attrs.get("extra") or {}).get("hashes") or {}
            if hashes.get("sha256"):
                return attrs.get("size"), "sha256:" + hashes["sha256"]
            if hashes.get("md5"):
                return attrs.get("size"), "md5:" + hashes["md5"]
            return attrs.get("size"), None
        if file.host == "zenodo":
            files = _read_json(ZENODO_META.format(record=ZENODO_RECORD)).get("files", [])
            if isinstance(files, dict):             # InvenioRDM "entries" layout
                files = list((files.get("entries") or {}).values())
            for entry in files:
                if entry.get("key") == file.key or entry.get("filename") == file.key:
                    return entry.get("size") or entry.get("filesize"), entry.get("checksum")
    except (OSError, ValueError, KeyError) as err:
        log.warning("could not read the published size/checksum of %s (%s); "
                    "checking the size against Content-Length only", file.name, err)
    return None, None


def extract_archive(archive, target) -> Path:
    """Unpack a .zip / .tar(.gz) into ``target`` atomically.

    Extraction goes to a temporary folder next to ``target``, renamed to ``target`` when
    complete. If the archive holds a single top-level folder, that folder's content becomes
    ``target`` (``spikesandwav.zip`` -> ``spikesandwav/``). Members with absolute paths or
    ``..`` are refused.

    Raises:
        ValueError: unreadable / corrupted archive or unsafe member path (names the file).
    """
    archive, target = Path(archive), Path(target)
    tmp = temp_folder(target, suffix=".extract")
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    for member in zf.namelist():
                        _check_member(member, archive)
                    zf.extractall(tmp)
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive, "r:*") as tf:
                    for member in tf.getmembers():
                        _check_member(member.name, archive)
                    try:
                        tf.extractall(tmp, filter="data")
                    except TypeError:       # Python without extraction filters
                        tf.extractall(tmp)
            else:
                raise ValueError(f"{archive} is not a zip or tar archive (corrupted download?)")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
            raise ValueError(f"could not extract {archive} (truncated or corrupted): {err}") from err
        entries = [p for p in tmp.iterdir() if not p.name.startswith("__MACOSX")]
        src = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(src, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_member(name: str, archive: Path) -> None:
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"{archive}: refusing unsafe member path {name!r}")


def fetch(name: str, root="data", progress: bool = True,
          metadata: Optional[Callable[[RemoteFile], Tuple[Optional[int], Optional[str]]]] = None
          ) -> Path:
    """Download (resuming) and extract dataset ``name`` into ``<root>/<name>``.

    Files already complete are skipped; archives are extracted once and then deleted to save
    space. Manual datasets (wehr) raise FileNotFoundError with instructions unless present.

    Args:
        metadata: function giving (size, checksum) of a RemoteFile; default
            `remote_metadata` (host APIs). Tests pass their own.

    Returns:
        the dataset folder.
    """
    spec = _spec(name)
    folder = dataset_dir(name, root)
    if spec.manual:
        if missing_files(name, root):
            raise FileNotFoundError(not_found_message(name, root))
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    metadata = metadata or remote_metadata
    for file in spec.files:
        final = folder / (file.extract_to or file.name)
        if final.exists():
            log.info("%s: present", final)
            continue
        dest = folder / file.name
        if not dest.exists():
            size, checksum = metadata(file)
            log.info("downloading %s from %s", file.name, file.url)
            download_file(file.url, dest, size=size, checksum=checksum, progress=progress)
        if file.extract_to:
            log.info("extracting %s -> %s", dest, final)
            extract_archive(dest, final)
            dest.unlink()
    return folder


# ----------------------------------------------------------------------------- cache
def cache_key(name: str, options: Optional[dict] = None) -> dict:
    """What identifies a preprocessed cache: `CACHE_VERSION`, the dataset name and the
    loader options; hashed into the file name (`cache_file`), stored in the file and compared
    when it is read."""
    return {"v": CACHE_VERSION, "name": name, "options": options or {}}


def cache_file(name: str, root="data", options: Optional[dict] = None) -> Path:
    """Path of the preprocessed HDF5 cache of dataset ``name`` built with ``options``.

    The file name carries a hash of `cache_key` (the options and `CACHE_VERSION`), so
    different options never share a cache: ``<root>/<name>/<name>_<hash12>.h5``.
    """
    key = json.dumps(cache_key(name, options), sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return dataset_dir(name, root) / f"{name}_{digest}.h5"


def cached_dataset(name: str, root, options: dict, build: Callable[[], "object"],
                   cache: bool = True):
    """Return the cached preprocessed dataset, or build it, cache it and return it.

    Args:
        name, root, options: identify the cache file (`cache_file`).
        build: function returning a ResponseDataset (called on a cache miss).
        cache: False skips reading and writing the cache.
    """
    from .base import ResponseDataset

    path = cache_file(name, root, options)
    if cache and path.is_file():
        try:
            log.info("reading cached %s", path)
            return ResponseDataset.from_hdf5(path, options=cache_key(name, options))
        except ValueError as err:        # stale, damaged, incomplete or for other options: rebuild
            log.warning("ignoring cache %s (%s); rebuilding", path, err)
    ds = build()
    if cache:
        ds.to_hdf5(path, options=cache_key(name, options))
    return ds


# ----------------------------------------------------------------------------- CLI
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``python -m deepstrf_utils.datasets.download NAME [--root data]``."""
    parser = argparse.ArgumentParser(
        prog="python -m deepstrf_utils.datasets.download",
        description="Download and unpack a dataset into <root>/<name>/ (resumable, checked).")
    parser.add_argument("name", choices=sorted(DATASETS))
    parser.add_argument("--root", default="data", help="data folder (default: data)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        folder = fetch(args.name, args.root, progress=not args.no_progress)
    except FileNotFoundError as err:
        sys.stderr.write(f"{err}\n")
        return 1
    sys.stdout.write(f"{args.name}: ready in {folder}/\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
