"""Content-addressed caches shared by every stage: stable keys and atomic writes.

A stage's cache key hashes its inputs, the output-relevant part of its config and the stage's own
VERSION constant, never the whole code version: a change elsewhere must not invalidate hours of cache.
Writes go to a temporary sibling and are renamed into place, so a killed process leaves either nothing
or a complete entry.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator


def stable_hash(obj: Any, length: int = 16) -> str:
    """sha256 of canonical JSON (sorted keys), truncated: equal content → equal key on any machine."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_root(configured: str) -> Path:
    from modevo.errors import InputError

    root = Path(os.environ.get("MODEVO_CACHE") or configured)
    if root.exists() and not root.is_dir():  # else every stage fails later with NotADirectoryError
        where = "MODEVO_CACHE" if os.environ.get("MODEVO_CACHE") else "corpus.cache_dir"
        raise InputError(f"{where} points at {root}, which is a file, not a folder: point it at a folder")
    return root


# -- disk full: one line naming where and how much, and no temporary left behind ---------------------------
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """ENOSPC/EDQUOT whose message says what the user needs: the file being written and, when known, its
    size. Still an OSError (callers that catch OSError keep working); the CLI prints it as one line. Built by
    `disk_full`; the plain OSError signature keeps it picklable across worker pools."""

    def __str__(self) -> str:
        return self.strerror


def disk_full(path: str | Path, nbytes: int | None = None, code: int = errno.ENOSPC,
              at_least: bool = False) -> DiskFullError:
    size = f"{max(1, round(nbytes / 2**20))} MB" if nbytes and nbytes >= 2**20 else f"{max(1, round((nbytes or 0) / 1024))} kB"
    need = f" (needs {'more than' if at_least else 'about'} {size})" if nbytes else ""
    what = "no space left" if code == errno.ENOSPC else "disk quota exceeded"
    return DiskFullError(code, f"{what} on {Path(path).parent} writing {path}{need}: free space there or point "
                               "MODEVO_CACHE / --runs-dir at a larger disk, then rerun (finished work is kept)",
                         str(path))


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in NO_SPACE


def _no_room(folder: Path, nbytes: int | None) -> bool:
    """Whether the file system of `folder` lacks room for nbytes (or is full): how a write that failed
    without an errno (torch.save's RuntimeError "file write failed") is told to be a full disk."""
    try:
        return shutil.disk_usage(folder).free < max(nbytes or 0, 64 << 10)
    except OSError:
        return False


def fault_line(e: BaseException) -> str | None:
    """The one line the CLI prints for a fault the user can act on (a full disk, a folder modevo may not
    write), also when a library wrapped the OSError in its own exception; None for the rest (bugs keep their
    traceback)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, DiskFullError):
            return str(e)
        if isinstance(e, OSError) and e.errno in NO_SPACE:  # a library's own write: the size is unknown
            if e.filename:
                return str(disk_full(e.filename, None, e.errno))
            return ("no space left on a disk this command writes to (the library did not name the file): free space "
                    "or point MODEVO_CACHE / --runs-dir at a larger disk, then rerun (finished work is kept)")
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = "read-only file system" if e.errno == errno.EROFS else "permission denied"
            where = e.filename or "a file this command writes to (the library did not name it)"
            return (f"cannot use {where}: {why}; make it writable or point MODEVO_CACHE / --runs-dir / --out "
                    "at a folder that is")
        if "attempt to write a readonly database" in str(e):  # sqlite (the MLflow store) on a read-only file
            return ("cannot write the MLflow store (sqlite: readonly database): make runs/mlflow.db and its folder "
                    "writable or point --runs-dir / train.tracking_uri elsewhere")
        if "database or disk is full" in str(e):  # sqlite (the MLflow store), through SQLAlchemy and MLflow
            return ("no space left for the MLflow store (sqlite: database or disk is full): free space on its disk "
                    "or point --runs-dir / train.tracking_uri elsewhere, then rerun (finished work is kept)")
        e = e.__cause__ or e.__context__
    return None


def _size(path: Path) -> int:
    try:
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    except OSError:
        return 0


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that becomes `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():  # another worker finished the same entry first: keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, path)
    except BaseException as e:
        full = (is_disk_full(e) or (isinstance(e, RuntimeError) and _no_room(path.parent, None))) \
            and not isinstance(e, DiskFullError)
        written = _size(tmp) if full else 0  # what the entry had reached: a lower bound of what it needs
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise disk_full(path, written or None, getattr(e, "errno", None) or errno.ENOSPC, at_least=True) from None
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path, nbytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary sibling path to write; it becomes `path` only if the block finishes, and is removed
    otherwise (a full disk is a DiskFullError naming `path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        written = _size(tmp)
        with contextlib.suppress(OSError):
            tmp.unlink()
        full = is_disk_full(e) or (isinstance(e, RuntimeError) and _no_room(path.parent, nbytes))
        if full and not isinstance(e, DiskFullError):
            code = e.errno if isinstance(e, OSError) else errno.ENOSPC
            raise disk_full(path, nbytes or written or None, code, at_least=not nbytes) from None
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path, len(data)) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def clean_stale_tmp(folder: str | Path) -> int:
    """Remove temporaries left by killed processes (names start with '.' and hold '.tmp-')."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for entry in folder.iterdir():
        if entry.name.startswith(".") and ".tmp-" in entry.name:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed += 1
    return removed


def verify_files(folder: str | Path, recorded: dict[str, str], what: str, rebuild: str) -> None:
    """Every file named in `recorded` (relative name → sha256 at write time) is present and unchanged;
    else one InputError line naming the first that is not, and how to rebuild. Files not named are ignored."""
    from modevo.errors import InputError

    folder = Path(folder)
    for name, digest in sorted(recorded.items()):
        path = folder / name
        if not path.is_file():
            raise InputError(f"{what} {folder}: {path} is missing; {rebuild}")
        if file_digest(path) != digest:
            raise InputError(f"{what} {folder}: {path} changed since it was written (sha256 differs); {rebuild}")


def read_json(path: str | Path, rebuild: str) -> Any:
    """A JSON file modevo wrote, parsed; one that is torn, empty or not JSON is one InputError line naming it
    and what rebuilds it (`rebuild`, e.g. "delete it and rerun `modevo corpus build`")."""
    from modevo.errors import InputError

    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"line {e.lineno}" if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise InputError(f"{path} is corrupt (not valid JSON, {where}): {rebuild}") from None


def read_run_json(run_dir: str | Path) -> dict:
    """A run folder's run.json ({} when it has none); a corrupt one is one line saying how to recover."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return {}
    return read_json(path, "delete it and rerun `modevo train` for this run: it resumes from checkpoints/last.ckpt "
                           "under a new MLflow run")


def read_saved(folder: str | Path, what: str, fmt: str) -> dict:
    """The manifest of a folder a `save()` wrote (manifest.json with "format" and "artefacts": name → sha256),
    after checking it is that format and every artefact is present and unchanged; else one clear error."""
    from modevo.errors import InputError

    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise InputError(f"{folder} is not a saved {what}: manifest.json is missing")
    manifest = read_json(path, f"rebuild the {what} (delete {folder})")
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InputError(f"{folder}: {what} format {found!r}, expected {fmt!r}: rebuild it")
    for name, digest in manifest.get("artefacts", {}).items():
        if not (folder / name).is_file() or file_digest(folder / name) != digest:
            raise InputError(f"{what} artefact {folder / name} is missing or changed since it was saved")
    return manifest
