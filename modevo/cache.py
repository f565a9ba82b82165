"""Content-addressed caches shared by every stage: stable keys and atomic writes.

A stage's cache key hashes its inputs, the output-relevant part of its config and the stage's own
VERSION constant, never the whole code version: a change elsewhere must not invalidate hours of cache.
Writes go to a temporary sibling and are renamed into place, so a killed process leaves either nothing
or a complete entry.
"""

from __future__ import annotations

import contextlib
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
    return Path(os.environ.get("MODEVO_CACHE") or configured)


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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


def read_saved(folder: str | Path, what: str, fmt: str) -> dict:
    """The manifest of a folder a `save()` wrote (manifest.json with "format" and "artefacts": name → sha256),
    after checking it is that format and every artefact is present and unchanged; else one clear error."""
    from modevo.errors import InputError

    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise InputError(f"{folder} is not a saved {what}: manifest.json is missing")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != fmt:
        raise InputError(f"{folder}: {what} format {manifest.get('format')!r}, expected {fmt!r}: rebuild it")
    for name, digest in manifest.get("artefacts", {}).items():
        if not (folder / name).is_file() or file_digest(folder / name) != digest:
            raise InputError(f"{what} artefact {folder / name} is missing or changed since it was saved")
    return manifest
