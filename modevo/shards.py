"""Arrow shards through `datasets`, including empty ones.

`datasets` saves a zero-row dataset but cannot load it back (IndexError in concat_tables), and a shard of
a skipped document is legitimately empty. An empty shard is therefore written as its schema alone.
"""

from __future__ import annotations

import json
from pathlib import Path

EMPTY = "empty.json"


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
    import datasets

    folder = Path(folder)
    if any(len(v) for v in table.values()):
        datasets.Dataset.from_dict(table, features=features).save_to_disk(str(folder))
    else:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / EMPTY).write_text(json.dumps(features.to_dict()))


def load_shard(folder: str | Path):
    import datasets

    folder = Path(folder)
    if (folder / EMPTY).exists():
        features = datasets.Features.from_dict(json.loads((folder / EMPTY).read_text()))
        return datasets.Dataset.from_dict({k: [] for k in features}, features=features)
    return datasets.load_from_disk(str(folder))


def load_shards(folders: list[str | Path]):
    """The shards back to back, in order (an all-empty set gives an empty dataset with the schema)."""
    import datasets

    parts = [load_shard(f) for f in folders]
    full = [p for p in parts if len(p)]
    if not full:
        return parts[0] if parts else datasets.Dataset.from_dict({})
    return datasets.concatenate_datasets(full) if len(full) > 1 else full[0]
