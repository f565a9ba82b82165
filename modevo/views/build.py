"""`modevo views build`: every view of the corpus as a flat token array with an index per utterance.

Layout (beside the corpus; the key hashes the corpus content, the view's settings, the BPE model or
rendering/units it reads and STAGE_VERSION):
    <corpus>/views/<view>-<key>/tokens.npy   all utterances back to back (uint16 when the vocabulary fits)
    <corpus>/views/<view>-<key>/offsets.npy  (n+1,) int64: utterance i is tokens[offsets[i]:offsets[i+1]]
    <corpus>/views/<view>-<key>/rows.json    ids, splits and words per utterance, in corpus order
    <corpus>/views/<view>-<key>/vocab.json, manifest.json (written last)
All views of one utterance come from the same corpus row: rows.json is the corpus order for every view.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modevo.cache import atomic_dir, stable_hash
from modevo.corpus.build import CorpusPaths, build, load_corpus, load_manifest
from modevo.corpus.config import CorpusConfig
from modevo.corpus.render import build_rendering, load_rendering
from modevo.errors import InputError
from modevo.units.config import UnitsConfig
from modevo.views.bpe import train_bpe
from modevo.views.config import ViewsConfig
from modevo.views.encode import Encoder, bpe_text, mean_frames
from modevo.views.registry import ViewSpec, parse_view

log = logging.getLogger("modevo.views")

STAGE_VERSION = "views-1"


@dataclass
class ViewsStageConfig:
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    units: UnitsConfig = field(default_factory=UnitsConfig)
    views: ViewsConfig = field(default_factory=ViewsConfig)


@dataclass(frozen=True)
class ViewData:
    """A built view, loaded: tokens of utterance i are tokens[offsets[i]:offsets[i+1]]."""

    spec: ViewSpec
    root: Path
    tokens: np.ndarray
    offsets: np.ndarray
    ids: list[str]
    splits: list[str]
    vocab: list[str]
    manifest: dict

    def utterance(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def split_mask(self, split: str) -> np.ndarray:
        return np.asarray([s == split for s in self.splits])


def _corpus_rows(corpus: CorpusPaths) -> list[dict]:
    ds = load_corpus(corpus)
    return [dict(zip(ds.column_names, vals)) for vals in zip(*(ds[c] for c in ds.column_names))]


class ViewContext:
    """What several views share while one `views build` runs: corpus rows, BPE models, renderings, units."""

    def __init__(self, stage: ViewsStageConfig, progress: bool):
        self.stage, self.progress = stage, progress
        build(stage.corpus, progress=progress)
        self.manifest, self.corpus = load_manifest(stage.corpus)
        self.rows = _corpus_rows(self.corpus)
        self._cache: dict = {}

    def train_rows(self) -> list[dict]:
        return [r for r in self.rows if r["split"] == "train"]

    def bpe_folder(self, spec: ViewSpec, vocab_size: int) -> Path:
        key = (spec.family, vocab_size)
        if key not in self._cache:
            cfg = self.stage.views
            sentences = [bpe_text(r, spec, cfg) for r in self.train_rows()]
            root = Path(self.stage.units.tokenizers_dir)
            self._cache[key] = train_bpe(sentences, vocab_size, root, spec.family, cfg.bpe_max_sentences)
        return self._cache[key]

    def rendering(self, name: str) -> tuple[dict, str]:
        """Rendering rows by utterance id (built if missing) and the rendering's cache key."""
        key = ("rendering", name)
        if key not in self._cache:
            paths = build_rendering(self.stage.corpus, name, progress=self.progress)
            ds = load_rendering(paths)
            cols = ["id", "frames", "durations_ms", "start_ms"]
            self._cache[key] = ({r[0]: dict(zip(cols, r)) for r in zip(*(ds[c] for c in cols))}, paths.root.name)
        return self._cache[key]

    def units(self, rendering: str, tokenizer: str) -> tuple[dict, dict]:
        """Units by utterance id for one rendering and tokenizer, and the units manifest."""
        from modevo.units.build import build_units, load_units

        key = ("units", rendering, tokenizer)
        if key not in self._cache:
            ucfg = dataclasses.replace(copy.deepcopy(self.stage.units), tokenizer=tokenizer)
            if rendering not in ucfg.renderings:
                ucfg.renderings = list(ucfg.renderings) + [rendering]
            for name in ucfg.renderings:
                build_rendering(self.stage.corpus, name, progress=self.progress)
            paths = build_units(ucfg, self.stage.corpus, progress=self.progress)[rendering]
            ds = load_units(paths)
            self._cache[key] = (dict(zip(ds["id"], ds["units"])), json.loads(paths.manifest.read_text()))
        return self._cache[key]


def _text_bpe_tokens_per_word(ctx: ViewContext) -> float:
    spec = parse_view("text-bpe")
    enc = Encoder(spec, ctx.stage.views, bpe_folder=ctx.bpe_folder(spec, ctx.stage.views.text_bpe_vocab))
    return _tokens_per_word(enc, ctx)


def _tokens_per_word(enc: Encoder, ctx: ViewContext) -> float:
    sample = [r for r in ctx.rows if r["split"] == "valid"][:2000] or ctx.rows[:2000]
    return sum(len(enc.encode(r)) for r in sample) / max(1, sum(len(r["words"]) for r in sample))


def _phone_bpe_vocab(ctx: ViewContext) -> tuple[int, dict]:
    """phone-bpe's vocabulary: the candidate whose tokens per word is closest to text-bpe's."""
    target = _text_bpe_tokens_per_word(ctx)
    spec = parse_view("phone-bpe")
    measured = {}
    for v in ctx.stage.views.phone_bpe_candidates:
        enc = Encoder(spec, ctx.stage.views, bpe_folder=ctx.bpe_folder(spec, v))
        measured[v] = _tokens_per_word(enc, ctx)
    best = min(measured, key=lambda v: (abs(measured[v] - target), v))
    return best, {"text_bpe_tokens_per_word": target, "phone_bpe_tokens_per_word": measured}


def encoder_and_inputs(spec: ViewSpec, ctx: ViewContext) -> tuple[Encoder, dict, dict]:
    """The encoder of a view, what its cache key depends on, and extra info for its manifest.

    The encoder also carries `item_inputs`: what a task item's ids depend on apart from the item and the
    rendering it is heard in. Two views with equal item_inputs give every item the same ids, so task items
    are rendered once for both (speech@fixed and speech@varied of one unit tokenizer hear the same test
    grid; their training units differ, their codebook does not)."""
    enc, inputs, info = _encoder_and_inputs(spec, ctx)
    enc.item_inputs = {"corpus": inputs["corpus"], **enc.item_inputs}
    return enc, inputs, info


def _encoder_and_inputs(spec: ViewSpec, ctx: ViewContext) -> tuple[Encoder, dict, dict]:
    cfg = ctx.stage.views
    inputs: dict = {"corpus": ctx.manifest["content_hash"]}
    info: dict = {}
    if spec.family == "text-bpe":
        folder = ctx.bpe_folder(spec, cfg.text_bpe_vocab)
        inputs["bpe"] = folder.name
        enc = Encoder(spec, cfg, bpe_folder=folder)
        enc.item_inputs = {"name": spec.name, "bpe": folder.name}
        return enc, inputs, {"bpe_model": str(folder)}
    if spec.family == "phone-bpe":
        vocab, info = _phone_bpe_vocab(ctx)
        folder = ctx.bpe_folder(spec, vocab)
        inputs["bpe"] = folder.name
        enc = Encoder(spec, cfg, bpe_folder=folder)
        enc.item_inputs = {"name": spec.name, "bpe": folder.name}
        return enc, inputs, {"bpe_model": str(folder), "vocab_search": info}
    if spec.family == "phone-repeat" and spec.rendering == "mean":
        rend, key = ctx.rendering(cfg.mean_from)
        train = ctx.train_rows()
        means = mean_frames([rend[r["id"]] for r in train], train)
        inputs["mean_from"] = key
        enc = Encoder(spec, cfg, mean_frames=means)
        enc.item_inputs = {"name": spec.name, "mean_from": key}
        return enc, inputs, {"mean_frames": means}
    if spec.family == "phone-repeat":
        _, key = ctx.rendering(spec.rendering)
        inputs["rendering"] = key
        enc = Encoder(spec, cfg)
        enc.item_inputs = {"name": spec.family}  # an item's frames come from the rendering it is heard in
        return enc, inputs, {}
    if spec.family == "speech":
        _, key = ctx.rendering(spec.rendering)
        _, um = ctx.units(spec.rendering, spec.tokenizer)
        inputs.update(rendering=key, units=um["content_hash"])
        enc = Encoder(spec, cfg, n_units=um["vocab_size"], unit_rate_hz=um["frame_rate_hz"])
        enc.item_inputs = {"name": f"speech_{spec.tokenizer}", "tokenizer": um["tokenizer_hash"],
                           "frame_rate_hz": um["frame_rate_hz"]}
        return enc, inputs, {"units": {
            k: um[k] for k in ("tokenizer", "tokenizer_hash", "vocab_size", "frame_rate_hz", "quality")}}
    enc = Encoder(spec, cfg)
    enc.item_inputs = {"name": spec.name}
    return enc, inputs, {}


def view_settings(cfg: ViewsConfig) -> dict:
    return {"word_boundaries": cfg.word_boundaries, "stress": cfg.stress, "dedup_units": cfg.dedup_units}


def build_view(spec: ViewSpec, ctx: ViewContext) -> Path:
    enc, inputs, info = encoder_and_inputs(spec, ctx)
    key = stable_hash({"stage": STAGE_VERSION, "view": spec.name, "settings": view_settings(ctx.stage.views),
                       "inputs": inputs})
    root = ctx.corpus.root / "views" / f"{spec.name.replace('/', '_')}-{key}"
    if (root / "manifest.json").exists():
        return root
    rend = ctx.rendering(spec.rendering)[0] if spec.frame_level and spec.rendering != "mean" else None
    units = ctx.units(spec.rendering, spec.tokenizer)[0] if spec.family == "speech" else None
    pieces = []
    for r in ctx.rows:
        rr = rend[r["id"]] if rend is not None else None
        pieces.append(enc.encode(r, rendering=rr, units=np.asarray(units[r["id"]]) if units is not None else None))
    lengths = np.asarray([len(p) for p in pieces], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    dtype = np.uint16 if len(enc) <= 65535 else np.int32
    tokens = np.concatenate(pieces).astype(dtype) if pieces else np.zeros(0, dtype)
    words = np.asarray([len(r["words"]) for r in ctx.rows])
    splits = np.asarray([r["split"] for r in ctx.rows])
    per_split = {s: {"utterances": int((splits == s).sum()), "tokens": int(lengths[splits == s].sum()),
                     "words": int(words[splits == s].sum())} for s in ("train", "valid", "test")}
    manifest = {
        "view": spec.name, "family": spec.family, "paper_name": spec.paper_name, "granularity": spec.granularity,
        "rendering": spec.rendering, "tokenizer": spec.tokenizer, "settings": view_settings(ctx.stage.views),
        "inputs": inputs, "stage_version": STAGE_VERSION, "key": key, "vocab_size": len(enc),
        "utterances": len(ctx.rows), "tokens": int(lengths.sum()), "splits": per_split,
        "tokens_per_word": float(lengths.sum() / max(1, words.sum())),
        "empty_utterances": int((lengths == 0).sum()),
        "content_hash": stable_hash([_digest(tokens), _digest(offsets)], 64),
        **info,
    }
    with atomic_dir(root) as tmp:
        np.save(tmp / "tokens.npy", tokens)
        np.save(tmp / "offsets.npy", offsets)
        (tmp / "rows.json").write_text(json.dumps({"ids": [r["id"] for r in ctx.rows], "splits": splits.tolist(),
                                                   "words": words.tolist()}))
        (tmp / "vocab.json").write_text(json.dumps(enc.vocab))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
    return root


def _digest(tokens: np.ndarray) -> str:
    import hashlib

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


def load_view(root: Path) -> ViewData:
    root = Path(root)
    if not (root / "manifest.json").exists():
        raise InputError(f"{root} is not a built view (no manifest.json)")
    manifest = json.loads((root / "manifest.json").read_text())
    rows = json.loads((root / "rows.json").read_text())
    return ViewData(spec=parse_view(manifest["view"]), root=root, tokens=np.load(root / "tokens.npy"),
                    offsets=np.load(root / "offsets.npy"), ids=rows["ids"], splits=rows["splits"],
                    vocab=json.loads((root / "vocab.json").read_text()), manifest=manifest)
