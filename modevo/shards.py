"""Arrow shards through `datasets`, including empty ones.

`datasets` saves a zero-row dataset but cannot load it back (IndexError in concat_tables), and a shard of
a skipped document is legitimately empty. An empty shard is therefore written as its schema alone.

Every shard's files are hashed when written (`<folder>.sha256` beside it) and checked when read: a shard
changed or torn since (a bad disk, a stray edit, a copy cut short) is one error naming it and what rebuilds
it, never silently used. Shards written before the digests existed are read unchecked.
"""

from __future__ import annotations

import json
from pathlib import Path

from modevo.errors import InputError

EMPTY = "empty.json"
DIGEST = ".sha256"  # suffix of the sidecar: {"files": {relative name: sha256}}


class ShardedDir:
    """The layout every cached stage output shares: <root>/shards/<NNNNN>/ and <root>/manifest.json
    (written last). Mixed into the stages' frozen path dataclasses, which define `root`."""

    root: Path

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"


def save_shard(folder: str | Path, table: dict[str, list], features) -> None:
    """Write a shard (inside the caller's atomic_dir) and, last, the sha256 of each of its files."""
    import datasets

    folder = Path(folder)
    if any(len(v) for v in table.values()):
        datasets.Dataset.from_dict(table, features=features).save_to_disk(str(folder))
    else:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / EMPTY).write_text(json.dumps(features.to_dict()))
    digest_path(folder).write_text(json.dumps({"files": file_digests(folder)}, sort_keys=True))


def digest_path(folder: Path) -> Path:
    return folder.with_name(folder.name + DIGEST)


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of each file of the folder, by relative name."""
    from modevo.cache import file_digest

    return {p.relative_to(folder).as_posix(): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _rebuild_hint(folder: Path) -> str:
    """How to rebuild one shard of a ShardedDir (<root>/shards/<NNNNN>/data): the stage resumes missing
    shards once its manifest is gone, so only that shard is computed again."""
    shard = folder.parent
    if shard.parent.name == "shards":
        return (f"delete {shard} and {shard.parent.parent / 'manifest.json'}, then rerun the command that built "
                "it (only that shard is rebuilt)")
    return f"delete {shard} and rerun the command that built it"


def verify_shard(folder: Path) -> None:
    """Raise one InputError line if a file the shard was written with is missing or changed."""
    from modevo.cache import read_json, verify_files

    sidecar = digest_path(folder)
    if sidecar.is_file():  # else written before digests were recorded
        verify_files(folder, read_json(sidecar, _rebuild_hint(folder)).get("files", {}), "cache shard",
                     _rebuild_hint(folder))


def load_shard(folder: str | Path):
    import datasets

    folder = Path(folder)
    verify_shard(folder)
    try:
        if (folder / EMPTY).exists():
            features = datasets.Features.from_dict(json.loads((folder / EMPTY).read_text()))
            return datasets.Dataset.from_dict({k: [] for k in features}, features=features)
        return datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError, OSError, KeyError) as e:
        # an unverified (older) shard that is torn or not Arrow; pyarrow's errors subclass these
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise InputError(f"cache shard {folder} cannot be read ({reason}); {_rebuild_hint(folder)}") from None


def load_shards(folders: list[str | Path]):
    """The shards back to back, in order (an all-empty set gives an empty dataset with the schema)."""
    import datasets

    parts = [load_shard(f) for f in folders]
    full = [p for p in parts if len(p)]
    if not full:
        return parts[0] if parts else datasets.Dataset.from_dict({})
    return datasets.concatenate_datasets(full) if len(full) > 1 else full[0]
