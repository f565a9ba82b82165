"""`modevo views build`: every view of the corpus as memory-mapped token streams, one per split.

Layout (beside the corpus; the key hashes the corpus content, the view's settings, the BPE model or
rendering/units it reads and STAGE_VERSION):
    <corpus>/views/<view>-<key>/stream-<split>.npy  that split's utterances in corpus order, EACH followed by
                                                    the separator 0 (uint16; uint32 above 65,535 types)
    <corpus>/views/<view>-<key>/index.npy            (n, 2) int64 per utterance, corpus order: its start in
                                                    its split's stream and its length (separator excluded)
    <corpus>/views/<view>-<key>/splits.npy           (n,) uint8: each utterance's split, a code into SPLITS
    <corpus>/views/<view>-<key>/ids.json             utterance ids, in corpus order
    <corpus>/views/<view>-<key>/vocab.json, manifest.json (written last)
All views of one utterance come from the same corpus row: the corpus order is the order of every view.
The streams are written shard by shard while encoding (only one corpus shard's rows, renderings and units
are in memory at a time) and read memory-mapped: training slices its windows straight from them.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import logging
from array import array
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from modevo.cache import atomic_dir, file_digest, read_json, stable_hash, verify_files
from modevo.corpus.build import CorpusPaths, build, load_corpus, load_manifest
from modevo.corpus.config import CorpusConfig
from modevo.corpus.render import RenderingPaths, build_rendering
from modevo.errors import InputError
from modevo.frames import DEFAULT_RATE_HZ
from modevo.units.config import UnitsConfig
from modevo.views.bpe import train_bpe
from modevo.views.config import ViewsConfig
from modevo.views.encode import Encoder
from modevo.views.registry import ViewSpec, parse_view

if TYPE_CHECKING:
    from modevo.units.build import UnitsPaths

log = logging.getLogger("modevo.views")

STAGE_VERSION = "views-2"  # 2: per-split memory-mapped streams written shard by shard
SPLITS = ("train", "valid", "test")


@dataclass
class ViewsStageConfig:
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    units: UnitsConfig = field(default_factory=UnitsConfig)
    views: ViewsConfig = field(default_factory=ViewsConfig)


def stream_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (at most 65,535 types), uint32 above."""
    return np.dtype(np.uint16 if vocab_size <= 65535 else np.uint32)


@dataclass(frozen=True, eq=False)
class ViewData:
    """A built view, memory-mapped: utterance i is stream(its split)[start:start + length]."""

    spec: ViewSpec
    root: Path
    vocab: list[str]
    manifest: dict
    index: np.ndarray  # (n, 2) int64: start in its split's stream, length
    split_codes: np.ndarray  # (n,) uint8: code into SPLITS
    streams: dict = field(repr=False)  # split → (tokens,) memmap, separators in place

    def stream(self, split: str) -> np.ndarray:
        """The split's utterances in corpus order, each followed by the separator 0 (a read-only memmap)."""
        if split not in self.streams:
            raise InputError(f"no split '{split}' in view {self.spec.name} (splits: {', '.join(SPLITS)})")
        return self.streams[split]

    def utterance(self, i: int) -> np.ndarray:
        start, n = (int(x) for x in self.index[i])
        return np.asarray(self.streams[SPLITS[self.split_codes[i]]][start:start + n])

    def split_mask(self, split: str) -> np.ndarray:
        return np.asarray(self.split_codes) == SPLITS.index(split)

    def __len__(self) -> int:
        return len(self.split_codes)

    @cached_property
    def ids(self) -> list[str]:
        return read_json(self.root / "ids.json", f"delete {self.root} and rerun `modevo views build`")

    @cached_property
    def splits(self) -> list[str]:
        return [SPLITS[c] for c in np.asarray(self.split_codes).tolist()]


def _shard_table(folder: Path, columns: list[str] | None = None) -> list[dict]:
    """One `datasets` shard as row dicts (plain Python values, as the whole-corpus loaders give)."""
    from modevo.shards import load_shard

    ds = load_shard(folder)
    cols = columns or ds.column_names
    if not len(ds):
        return []
    return [dict(zip(cols, vals)) for vals in zip(*(ds[c] for c in cols))]


def _corpus_rows(corpus: CorpusPaths) -> list[dict]:
    ds = load_corpus(corpus)
    return [dict(zip(ds.column_names, vals)) for vals in zip(*(ds[c] for c in ds.column_names))]


class ViewContext:
    """What several views share while one `views build` runs: the corpus, BPE models, renderings, units.

    The corpus is read shard by shard (`iter_shards`); `rows` (every row at once, for task construction)
    is loaded on first use only."""

    def __init__(self, stage: ViewsStageConfig, progress: bool):
        self.stage, self.progress = stage, progress
        build(stage.corpus, progress=progress)
        self.manifest, self.corpus = load_manifest(stage.corpus)
        self._rows: list[dict] | None = None
        self._cache: dict = {}

    @property
    def rows(self) -> list[dict]:
        if self._rows is None:
            self._rows = _corpus_rows(self.corpus)
        return self._rows

    def train_rows(self) -> list[dict]:
        return [r for r in self.rows if r["split"] == "train"]

    def iter_shards(self):
        """(shard index, its corpus rows) in corpus order, one shard in memory at a time."""
        for i in range(self.manifest["shards"]):
            yield i, _shard_table(self.corpus.shards / f"{i:05d}" / "data")

    def iter_rows(self, split: str | None = None):
        """Corpus rows in order (of one split), streamed shard by shard."""
        for _, rows in self.iter_shards():
            yield from (r for r in rows if split is None or r["split"] == split)

    def sample_rows(self, n: int) -> list[dict]:
        """The first n valid rows, or (a corpus without a valid split) the first n rows; read until found."""
        valid, first = [], []
        for r in self.iter_rows():
            if len(first) < n:
                first.append(r)
            if r["split"] == "valid":
                valid.append(r)
                if len(valid) == n:
                    break
        return valid or first

    def rendered_rows(self, name: str, split: str, tokenizer: str | None = None, rate_hz: float = DEFAULT_RATE_HZ):
        """(corpus row, rendering row, units or None) of a split's utterances, in corpus order, shard by shard."""
        paths, _ = self.rendering(name)
        units = self.units(name, tokenizer, rate_hz)[0] if tokenizer else None
        for shard, rows in self.iter_shards():
            rows = [r for r in rows if r["split"] == split]
            if rows:
                rend = rendering_shard(paths, shard)
                uu = units_shard(units, shard) if units is not None else {}
                yield from ((r, rend[r["id"]], np.asarray(uu[r["id"]]) if units is not None else None) for r in rows)

    def bpe_folder(self, spec: ViewSpec, vocab_size: int) -> Path:
        """The family's sentencepiece model of vocab_size over its train-split sentences (trained if missing)."""
        key = (spec.family, spec.rendering, spec.tokenizer, spec.rate_hz, vocab_size)
        if key not in self._cache:
            fam = spec.view_family
            sentences = _Reiterable(lambda: fam.bpe_sentences(spec, self))
            root = Path(self.stage.units.tokenizers_dir)
            self._cache[key] = train_bpe(sentences, vocab_size, root, spec.family, self.stage.views.bpe_max_sentences)
        return self._cache[key]

    def rendering(self, name: str) -> tuple[RenderingPaths, str]:
        """A rendering's folders (built if missing) and its cache key; `rendering_shard` reads its rows."""
        key = ("rendering", name)
        if key not in self._cache:
            paths = build_rendering(self.stage.corpus, name, progress=self.progress)
            self._cache[key] = (paths, paths.root.name)
        return self._cache[key]

    def units(self, rendering: str, tokenizer: str, rate_hz: float = DEFAULT_RATE_HZ) -> tuple[UnitsPaths, dict]:
        """The units folders of one rendering, tokenizer and frame rate (built if missing) and the units
        manifest; `units_shard` reads them."""
        from modevo.units.build import build_units

        key = ("units", rendering, tokenizer, rate_hz)
        if key not in self._cache:
            ucfg = dataclasses.replace(copy.deepcopy(self.stage.units), tokenizer=tokenizer)
            for name in dict.fromkeys(list(ucfg.renderings) + [rendering]):
                build_rendering(self.stage.corpus, name, progress=self.progress)
            # a rendering outside units.renderings is encoded with their codebook, never trained on
            rate = {} if rate_hz == DEFAULT_RATE_HZ else {"rate_hz": rate_hz}
            paths = build_units(ucfg, self.stage.corpus, progress=self.progress, also=[rendering], **rate)[rendering]
            self._cache[key] = (paths, read_json(paths.manifest, "delete it and rerun `modevo units build` (finished shards are kept)"))
        return self._cache[key]


class _Reiterable:
    """An iterable that can be walked more than once, each time streaming afresh (train_bpe hashes its
    sentences, then trains on them)."""

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return iter(self.make())


def rendering_shard(paths: RenderingPaths, index: int) -> dict[str, dict]:
    """One shard of a rendering: rows (id, frames, durations_ms, start_ms) by utterance id."""
    rows = _shard_table(paths.shards / f"{index:05d}" / "data", ["id", "frames", "durations_ms", "start_ms"])
    return {r["id"]: r for r in rows}


def units_shard(paths: UnitsPaths, index: int) -> dict[str, list]:
    """One shard of a rendering's units: unit ids by utterance id."""
    return {r["id"]: r["units"] for r in _shard_table(paths.shards / f"{index:05d}" / "data", ["id", "units"])}


def encoder_and_inputs(spec: ViewSpec, ctx: ViewContext) -> tuple[Encoder, dict, dict]:
    """The encoder of a view, what its cache key depends on, and extra info for its manifest.

    The encoder also carries `item_inputs`: what a task item's ids depend on apart from the item and the
    rendering it is heard in. Two views with equal item_inputs give every item the same ids, so task items
    are rendered once for both (speech@fixed and speech@varied of one unit tokenizer hear the same test
    grid; their training units differ, their codebook does not)."""
    enc, inputs, info = spec.view_family.prepare(spec, ctx)
    enc.item_inputs = {"corpus": ctx.manifest["content_hash"], **enc.item_inputs}
    return enc, {"corpus": ctx.manifest["content_hash"], **inputs}, info


def view_settings(cfg: ViewsConfig) -> dict:
    return {"word_boundaries": cfg.word_boundaries, "stress": cfg.stress, "dedup_units": cfg.dedup_units}


def build_view(spec: ViewSpec, ctx: ViewContext) -> Path:
    enc, inputs, info = encoder_and_inputs(spec, ctx)
    key = stable_hash({"stage": STAGE_VERSION, "view": spec.name, "settings": view_settings(ctx.stage.views),
                       "inputs": inputs})
    root = ctx.corpus.root / "views" / f"{spec.folder}-{key}"
    if (root / "manifest.json").exists():
        return root
    fam = spec.view_family
    rend = ctx.rendering(fam.row_rendering(spec))[0] if fam.row_rendering(spec) is not None else None
    units = ctx.units(spec.rendering, spec.tokenizer, spec.rate_hz)[0] if fam.reads_units else None
    with atomic_dir(root) as tmp:
        out = StreamWriter(tmp, stream_dtype(len(enc)))
        for shard, rows in ctx.iter_shards():  # one shard's rows, rendering rows and units at a time
            rr = rendering_shard(rend, shard) if rend is not None and rows else None
            uu = units_shard(units, shard) if units is not None and rows else None
            out.add_shard(rows, [enc.encode(r, rendering=rr[r["id"]] if rr is not None else None,
                                            units=np.asarray(uu[r["id"]]) if uu is not None else None)
                                 for r in rows])
        summary = out.close()
        lengths = summary.pop("lengths")
        manifest = {
            "view": spec.name, "family": spec.family, "paper_name": spec.paper_name, "granularity": spec.granularity,
            "rendering": spec.rendering, "tokenizer": spec.tokenizer, "rate_hz": spec.rate_hz, "settings": view_settings(ctx.stage.views),
            "inputs": inputs, "stage_version": STAGE_VERSION, "key": key, "vocab_size": len(enc),
            "tokens_per_word": summary["tokens"] / max(1, summary.pop("words")),
            "empty_utterances": int((lengths == 0).sum()), **summary, **info, **enc.stats(),
        }
        (tmp / "vocab.json").write_text(json.dumps(enc.vocab))
        # sha256 of every file, checked by load_view: a changed or torn file is never trained or scored on
        manifest["files"] = {p.name: file_digest(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
    return root


class StreamWriter:
    """Writes a view's folder incrementally: per split, a .npy stream appended shard by shard (the header
    is rewritten with the final length at the end), the per-utterance index and ids. Memory holds one
    shard's tokens plus 17 bytes per utterance (split code, start, length)."""

    def __init__(self, folder: Path, dtype: np.dtype):
        self.folder, self.dtype = Path(folder), np.dtype(dtype)
        self.files = {s: open(self.folder / f"stream-{s}.npy", "wb") for s in SPLITS}
        self.header = {s: self._header(0) for s in SPLITS}
        for s, f in self.files.items():
            f.write(self.header[s])
        self.length = dict.fromkeys(SPLITS, 0)  # tokens written per split, separators included
        self.digest = {s: hashlib.sha256() for s in SPLITS}
        self.words = {s: 0 for s in SPLITS}
        self.utterances = {s: 0 for s in SPLITS}
        self.codes, self.starts, self.lengths = array("B"), array("q"), array("q")
        self.ids = open(self.folder / "ids.json", "w")
        self.ids.write("[")
        self.n = 0

    def _header(self, n: int) -> bytes:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                   "fortran_order": False, "shape": (n,)})
        return buf.getvalue()

    def add_shard(self, rows: list[dict], pieces: list[np.ndarray]) -> None:
        """One shard's rows (corpus order) and their tokens (separators not included)."""
        per_split: dict = {s: [] for s in SPLITS}
        for r, p in zip(rows, pieces):
            s = r["split"]
            code = SPLITS.index(s)
            self.codes.append(code)
            self.starts.append(self.length[s])
            self.lengths.append(len(p))
            self.length[s] += len(p) + 1
            self.words[s] += len(r["words"])
            self.utterances[s] += 1
            per_split[s].extend((p, _SEP))
            self.ids.write(("," if self.n else "") + json.dumps(r["id"]))
            self.n += 1
        for s, parts in per_split.items():
            if parts:
                data = np.concatenate(parts).astype(self.dtype, copy=False).tobytes()
                self.files[s].write(data)
                self.digest[s].update(data)

    def close(self) -> dict:
        """Finish the files; returns the manifest's counts, the content hash and the lengths (n,) array."""
        self.ids.write("]")
        self.ids.close()
        for s, f in self.files.items():
            header = self._header(self.length[s])
            if len(header) == len(self.header[s]):
                f.seek(0)
                f.write(header)
                f.close()
            else:  # a numpy whose header size depends on the length: write the file again behind it
                f.close()
                self._rewrite(s, header)
        codes = np.frombuffer(self.codes, dtype=np.uint8) if self.n else np.zeros(0, np.uint8)
        lengths = np.frombuffer(self.lengths, dtype=np.int64) if self.n else np.zeros(0, np.int64)
        starts = np.frombuffer(self.starts, dtype=np.int64) if self.n else np.zeros(0, np.int64)
        np.save(self.folder / "index.npy", np.stack([starts, lengths], axis=1).reshape(-1, 2))
        np.save(self.folder / "splits.npy", codes)
        content = stable_hash([self.digest[s].hexdigest() for s in SPLITS]
                              + [_digest(lengths), _digest(codes), str(self.dtype)], 64)
        splits = {s: {"utterances": self.utterances[s], "tokens": self.length[s] - self.utterances[s],
                      "words": self.words[s]} for s in SPLITS}
        return {"utterances": self.n, "tokens": int(lengths.sum()), "words": sum(self.words.values()),
                "splits": splits, "dtype": str(self.dtype), "content_hash": content, "lengths": lengths}

    def _rewrite(self, split: str, header: bytes) -> None:
        path = self.folder / f"stream-{split}.npy"
        tmp = path.with_name(path.name + ".tmp")
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            src.seek(len(self.header[split]))
            dst.write(header)
            while chunk := src.read(1 << 24):
                dst.write(chunk)
        tmp.replace(path)


_SEP = np.zeros(1, np.int64)


def _digest(tokens: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(tokens).tobytes()).hexdigest()


def build_views(stage: ViewsStageConfig, names: list[str] | None = None, progress: bool = True) -> dict[str, Path]:
    """Build every configured view (or the named ones) and return their folders by canonical name."""
    from tqdm.auto import tqdm

    specs = [parse_view(n, stage.views.tokenizer) for n in (names or stage.views.views)]
    ctx = ViewContext(stage, progress)
    out = {}
    for spec in tqdm(specs, desc="views", unit="view", disable=not progress):
        out[spec.name] = build_view(spec, ctx)
    return out


def load_view(root: Path, verify: bool = True) -> ViewData:
    """A built view, memory-mapped (nothing is read into memory but the index and the vocabulary). `verify`
    checks every file against the sha256 recorded when it was written (one read of the streams)."""
    root = Path(root)
    if not (root / "manifest.json").exists():
        raise InputError(f"{root} is not a built view (no manifest.json)")
    again = f"delete {root} and rerun `modevo views build`"
    manifest = read_json(root / "manifest.json", again)
    if verify:
        verify_files(root, manifest.get("files", {}), "view", again)  # views built before digests: unchecked
    if not (root / "stream-train.npy").exists():
        raise InputError(f"{root} was built by an older modevo (stage {manifest.get('stage_version')}, no "
                         f"stream-train.npy): run `modevo views build` again")
    return ViewData(spec=parse_view(manifest["view"]), root=root, vocab=read_json(root / "vocab.json", again),
                    manifest=manifest, index=np.load(root / "index.npy", mmap_mode="r"),
                    split_codes=np.load(root / "splits.npy", mmap_mode="r"),
                    streams={s: np.load(root / f"stream-{s}.npy", mmap_mode="r") for s in SPLITS})
