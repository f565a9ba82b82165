"""Where documents come from: text files and folders (the vendored novels by default) or a `datasets` set.

A document that cannot be read (binary, invalid UTF-8, empty) is a counted, logged skip; a source that
does not exist is an error. Paragraphs are rebuilt from the file's lines because the novels mix hard-wrapped
lines with one-paragraph-per-line layouts.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from modevo.cache import file_digest
from modevo.corpus.config import SourceConfig
from modevo.errors import InputError

log = logging.getLogger("modevo.corpus")

BUILTIN_NOVELS = "builtin:novels"


def builtin_novels_dir() -> Path:
    return Path(str(resources.files("modevo") / "resources" / "novels"))


@dataclass(frozen=True)
class DocRef:
    """One document: read from `path` inside a worker, or carried as `text` (datasets rows)."""

    doc_id: str
    origin: str
    path: str | None = None
    text: str | None = None


def _expand(entry: str) -> list[Path]:
    if entry == BUILTIN_NOVELS:  # the manifest, not a glob: NOTE.txt sits beside the novels
        folder = builtin_novels_dir()
        rows = (folder / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]
        return sorted(folder / row.split("\t")[0] for row in rows if row.strip())
    p = Path(entry).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.txt") if f.is_file())
        if not files:
            raise InputError(f"corpus source folder has no .txt files: {p}")
        return files
    if p.is_file():
        return [p]
    raise InputError(f"corpus source not found: {p}")


def list_file_documents(cfg: SourceConfig) -> tuple[list[DocRef], list[dict]]:
    """(documents, fingerprints) for file sources; fingerprints (name + sha256) feed the cache key."""
    files: list[Path] = []
    for entry in cfg.paths:
        files.extend(_expand(entry))
    if not files:
        raise InputError("no corpus source given: set source.paths or source.dataset")
    if cfg.max_documents is not None:
        files = files[: cfg.max_documents]
    docs, prints, seen = [], [], set()
    for f in files:
        doc_id = f.stem
        n = 2
        while doc_id in seen:  # two folders may hold the same file name
            doc_id = f"{f.stem}_{n}"
            n += 1
        seen.add(doc_id)
        docs.append(DocRef(doc_id=doc_id, origin=str(f), path=str(f)))
        prints.append({"doc_id": doc_id, "sha256": file_digest(f)})
    return docs, prints


def read_document(doc: DocRef) -> tuple[str | None, str | None]:
    """(text, None) or (None, skip_reason), logging one line per skipped document."""
    if doc.text is not None:
        text = doc.text
    else:
        raw = Path(doc.path).read_bytes()
        if b"\x00" in raw[:8192]:
            log.warning("skipped %s: binary file (NUL bytes), not text", doc.origin)
            return None, "binary_file"
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            log.warning("skipped %s: invalid UTF-8 at byte %d (re-encode the file as UTF-8)", doc.origin, e.start)
            return None, "invalid_utf8"
    if not text.strip():
        log.warning("skipped %s: empty document", doc.origin)
        return None, "empty_document"
    return text, None


def paragraphs(text: str) -> list[str]:
    """Blocks split at blank lines; inside a block, lines are joined except after a short line that
    lacks end punctuation (a heading such as 'CHAPTER IV'), which would otherwise glue onto prose."""
    out = []
    for block in text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
        lines = [ln.strip() for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        long_line = statistics.quantiles([len(ln) for ln in lines], n=10)[-1] if len(lines) > 2 else 0
        current: list[str] = []
        for ln in lines:
            current.append(ln)
            heading = len(ln) < 0.5 * long_line and not ln.rstrip("\"'’”)]_ ").endswith((".", "!", "?", ",", ";", ":", "-"))
            if heading:
                out.append(" ".join(current))
                current = []
        if current:
            out.append(" ".join(current))
    return out


def is_heading(paragraph: str, max_words: int = 12) -> bool:
    """A paragraph that is a heading, not prose: a chapter title, a table-of-contents line, a book's title
    ("CHAPTER IV", "THE HOUND OF THE BASKERVILLES", "Contents"): short, and ending in a letter or digit.
    The corpus marks such rows; tasks never use them as context or endings (they are not sentences)."""
    words = paragraph.split()
    end = paragraph.rstrip("\"'’”)]_* ")
    return 0 < len(words) <= max_words and end[-1:].isalnum()  # no punctuation at all at its end


def list_dataset_documents(cfg: SourceConfig) -> tuple[list[list[DocRef]], list[dict]]:
    """Rows of a `datasets` dataset as documents, grouped `docs_per_shard` to a shard."""
    ds = _open_dataset(cfg)
    if cfg.text_column not in ds.column_names:
        raise InputError(f"dataset {cfg.dataset} has no column '{cfg.text_column}' "
                         f"(columns: {', '.join(ds.column_names)}); set source.text_column")
    n = len(ds) if cfg.max_documents is None else min(len(ds), cfg.max_documents)
    name = Path(cfg.dataset).stem or "dataset"
    groups = []
    for start in range(0, n, cfg.docs_per_shard):
        rows = ds.select(range(start, min(n, start + cfg.docs_per_shard)))[cfg.text_column]
        groups.append([DocRef(doc_id=f"{name}-{start + i:08d}", origin=f"{cfg.dataset}[{start + i}]",
                              text=t if isinstance(t, str) else "") for i, t in enumerate(rows)])
    return groups, [{"dataset": cfg.dataset, "split": cfg.dataset_split, "fingerprint": ds._fingerprint, "rows": n}]


def _open_dataset(cfg: SourceConfig):
    import datasets

    datasets.disable_progress_bars()
    path = Path(cfg.dataset).expanduser()
    try:
        if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(path))
            return ds[cfg.dataset_split] if isinstance(ds, datasets.DatasetDict) else ds
        if path.is_file():
            kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text"}.get(path.suffix)
            if kind is None:
                raise InputError(f"dataset file type not supported: {path} (use .jsonl, .json, .parquet, .csv or .txt)")
            return datasets.load_dataset(kind, data_files=str(path), split="train")
        return datasets.load_dataset(cfg.dataset, split=cfg.dataset_split)
    except InputError:
        raise
    except Exception as e:  # datasets raises many types; the user needs the name and the reason
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"cannot load dataset '{cfg.dataset}': {first}") from None
