"""`modevo corpus build`: documents → sentences → normalised spoken text → phones → Arrow shards.

Layout of one corpus in the cache (the key hashes inputs + output-relevant config + STAGE_VERSION):
    <cache>/corpus/<key>/shards/<NNNNN>/   one `datasets` folder per work unit, plus meta.json
    <cache>/corpus/<key>/manifest.json      written last: a corpus without it is unfinished
Each shard is written to a temporary folder and renamed, so a killed build resumes from finished shards.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from modevo.cache import atomic_dir, atomic_write_json, cache_root, clean_stale_tmp, read_json, stable_hash
from modevo.config import to_dict
from modevo.corpus.config import TEXT_KEY_EXCLUDES, CorpusConfig
from modevo.corpus.normalize import normalize, split_sentences
from modevo.corpus.phones import ROUTE_G2P, cmu_dict, word_phones
from modevo.corpus.sources import (DocRef, is_heading, list_dataset_documents, list_file_documents, paragraphs,
                                   read_document)
from modevo.errors import InputError
from modevo.shards import ShardedDir, load_shards, save_shard

log = logging.getLogger("modevo.corpus")

# Bump when the text stage's output changes for the same inputs and config.
STAGE_VERSION = "corpus-text-3"  # 3: heading column  # 2: roman numerals after a keyword only when 2+ letters (normalize idempotent)
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class CorpusPaths(ShardedDir):
    root: Path


def output_config(cfg: CorpusConfig) -> dict:
    """The part of the config that decides what the text corpus contains."""
    d = to_dict(cfg)
    for key in TEXT_KEY_EXCLUDES:
        d.pop(key, None)
    if d["source"].get("recordings") is None:  # text sources keep the key they had before recordings existed
        d["source"].pop("recordings", None)
    return d


def plan(cfg: CorpusConfig) -> tuple[list[list[DocRef]], dict, CorpusPaths]:
    """Work units (one list of documents per shard), the cache key inputs and where the corpus lives."""
    if cfg.source.recordings is not None:
        from modevo.corpus.speech_sources import plan_units

        units, prints = plan_units(cfg.source.recordings)
    elif cfg.source.dataset:
        units, prints = list_dataset_documents(cfg.source)
    else:
        docs, prints = list_file_documents(cfg.source)
        units = [[d] for d in docs]
    key_inputs = {"stage": STAGE_VERSION, "config": output_config(cfg), "inputs": prints}
    root = cache_root(cfg.cache_dir) / "corpus" / stable_hash(key_inputs)
    return units, key_inputs, CorpusPaths(root)


def assign_splits(doc_id: str, n_chunks: int, cfg: CorpusConfig) -> list[str]:
    """Chunks of one document → split names. Every document of ≥3 chunks gets valid and test chunks."""
    labels = ["train"] * n_chunks
    if n_chunks < 3:
        return labels
    rng = random.Random(f"{cfg.split.seed}:{doc_id}")
    n_valid = max(1, round(n_chunks * cfg.split.valid_fraction)) if cfg.split.valid_fraction > 0 else 0
    n_test = max(1, round(n_chunks * cfg.split.test_fraction)) if cfg.split.test_fraction > 0 else 0
    held = rng.sample(range(n_chunks), min(n_chunks - 1, n_valid + n_test))
    for i, c in enumerate(held):
        labels[c] = "valid" if i < n_valid else "test"
    return labels


def sentence_row(written: str, cfg: CorpusConfig) -> tuple[dict | None, str | None]:
    """One written sentence → (row fields, None) or (None, skip reason)."""
    if len(written) > cfg.text.max_chars:
        return None, "too_long"
    spoken, reason = normalize(written)
    if spoken is None:
        return None, reason
    words = spoken.split()
    if len(words) > cfg.text.max_words:
        return None, "too_long"
    if len(words) < cfg.text.min_words:
        return None, "too_short"
    phones, stress, routes = [], [], []
    for w in words:
        p, s, route = word_phones(w)
        if not p:
            return None, "no_phones"
        phones.append(p)
        stress.append(s)
        routes.append(route)
    return {"written": written, "text": spoken, "words": words, "phones": phones, "stress": stress,
            "phone_route": routes}, None


def process_document(doc: DocRef, cfg: CorpusConfig) -> tuple[list[dict], Counter]:
    """Rows of one document with chunk and split assigned; skip counts by reason."""
    skips: Counter = Counter()
    text, reason = read_document(doc)
    if text is None:
        skips[f"document:{reason}"] += 1
        return [], skips
    # (sentence, whether its paragraph is a heading): headings stay training text but are marked
    sentences = [(s, is_heading(para)) for para in paragraphs(text) for s in split_sentences(para)]
    start = cfg.source.start_sentence
    stop = None if cfg.source.max_sentences_per_document is None else start + cfg.source.max_sentences_per_document
    kept = []
    for written, heading in sentences[start:stop]:
        row, reason = sentence_row(written, cfg)
        if row is None:
            skips[reason] += 1
        else:
            kept.append(row | {"heading": heading})
    n_chunks = -(-len(kept) // cfg.split.chunk_sentences)
    labels = assign_splits(doc.doc_id, n_chunks, cfg)
    for i, row in enumerate(kept):
        chunk = i // cfg.split.chunk_sentences
        row.update(id=f"{doc.doc_id}/{i:06d}", doc_id=doc.doc_id, sentence_index=i, chunk=chunk,
                   split=labels[chunk])
    if n_chunks and n_chunks < 3:
        skips["document:too_few_chunks_for_heldout"] += 1  # counted, not dropped: all train
    return kept, skips


COLUMNS = ("id", "doc_id", "sentence_index", "chunk", "split", "written", "text", "words", "phones", "stress",
           "phone_route", "heading")


def _shard_stats(rows: list[dict], skips: Counter, docs: list) -> dict:
    per_split = {s: {"documents": set(), "chunks": set(), "sentences": 0, "words": 0, "phones": 0} for s in SPLITS}
    g2p_words = 0
    for r in rows:
        st = per_split[r["split"]]
        st["documents"].add(r["doc_id"])
        st["chunks"].add((r["doc_id"], r["chunk"]))
        st["sentences"] += 1
        st["words"] += len(r["words"])
        st["phones"] += sum(len(p) for p in r["phones"])
        g2p_words += sum(route == ROUTE_G2P for route in r["phone_route"])
    return {
        "documents": sorted({r["doc_id"] for r in rows}) if docs is None else [d.doc_id for d in docs],
        "splits": {s: {k: (len(v) if isinstance(v, set) else v) for k, v in st.items()} for s, st in per_split.items()},
        "g2p_words": g2p_words,
        "skips": dict(sorted(skips.items())),
    }


def _write_shard(args: tuple[int, list[DocRef], CorpusConfig, str]) -> dict:
    index, docs, cfg, shard_root = args
    import datasets

    datasets.disable_progress_bars()
    rows, skips = [], Counter()
    columns, features = COLUMNS, _features()
    if cfg.source.recordings is not None:  # one work unit of recorded utterances (speech_sources)
        from modevo.corpus.speech_sources import SPEECH_COLUMNS, process_unit, speech_features, unit_stats

        res = process_unit(docs, cfg)
        rows, skips = res.rows, res.skips
        meta = _shard_stats(rows, skips, None) | {"speech": unit_stats(res)}
        columns = COLUMNS + SPEECH_COLUMNS
        features = datasets.Features({**features, **speech_features()})
    else:
        for doc in docs:
            r, s = process_document(doc, cfg)
            rows.extend(r)
            skips.update(s)
        meta = _shard_stats(rows, skips, docs)
    meta["index"] = index
    meta["content_hash"] = stable_hash([[r[c] for c in columns] for r in rows], length=64)
    with atomic_dir(Path(shard_root) / f"{index:05d}") as tmp:
        table = {c: [r[c] for r in rows] for c in columns}
        save_shard(tmp / "data", table, features)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return meta


def _features():
    import datasets

    s, i = datasets.Value("string"), datasets.Value("int32")
    return datasets.Features({
        "id": s, "doc_id": s, "sentence_index": i, "chunk": i, "split": s, "written": s, "text": s,
        "words": datasets.Sequence(s), "phones": datasets.Sequence(datasets.Sequence(s)),
        "stress": datasets.Sequence(datasets.Sequence(datasets.Value("int8"))), "phone_route": datasets.Sequence(s),
        "heading": datasets.Value("bool"),
    })


def build(cfg: CorpusConfig, progress: bool = True) -> CorpusPaths:
    """Build (or finish building) the corpus; returns its location. Idempotent."""
    from tqdm.auto import tqdm

    units, key_inputs, paths = plan(cfg)
    if paths.manifest.exists():
        log.debug("corpus %s is cached at %s", cfg.name, paths.root)
        return paths
    paths.shards.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(paths.shards)
    todo = [(i, docs, cfg, str(paths.shards)) for i, docs in enumerate(units)
            if not (paths.shards / f"{i:05d}").exists()]
    bar = tqdm(total=len(units), initial=len(units) - len(todo), desc=f"corpus {cfg.name}", unit="shard",
               disable=not progress)
    if todo:
        if cfg.num_proc > 1 and len(todo) > 1:
            cmu_dict()  # load once before forking: workers share it copy-on-write
            ctx = mp.get_context("fork")
            done_sentences = 0
            with ctx.Pool(min(cfg.num_proc, len(todo))) as pool:
                for meta in pool.imap_unordered(_write_shard, todo):
                    done_sentences += sum(meta["splits"][s]["sentences"] for s in SPLITS)
                    bar.update(1)
                    bar.set_postfix(sentences=done_sentences)
        else:
            for args in todo:
                _write_shard(args)
                bar.update(1)
    bar.close()
    metas = [read_json(paths.shards / f"{i:05d}" / "meta.json", _SHARD_AGAIN.format(paths.shards / f"{i:05d}"))
             for i in range(len(units))]
    stats = aggregate(metas)
    if stats["splits"]["train"]["sentences"] == 0:
        raise InputError(f"corpus {cfg.name}: no sentence survived (skips: {stats['skips'] or 'none'}); "
                         "check the sources and text limits")
    manifest = {
        "name": cfg.name,
        "key": paths.root.name,
        "stage_version": STAGE_VERSION,
        "config": key_inputs["config"],
        "inputs": key_inputs["inputs"],
        "shards": len(units),
        "content_hash": stable_hash([m["content_hash"] for m in metas], length=64),
        "stats": stats,
    }
    atomic_write_json(paths.manifest, manifest)
    return paths


def aggregate(metas: list[dict]) -> dict:
    splits = {s: {"documents": 0, "chunks": 0, "sentences": 0, "words": 0, "phones": 0} for s in SPLITS}
    skips: Counter = Counter()
    g2p = 0
    for m in metas:
        for s in SPLITS:
            for k, v in m["splits"][s].items():
                splits[s][k] += v
        skips.update(m["skips"])
        g2p += m["g2p_words"]
    words = sum(splits[s]["words"] for s in SPLITS)
    out = {"splits": splits, "skips": dict(sorted(skips.items())), "g2p_words": g2p,
           "g2p_share": g2p / words if words else 0.0,
           "documents_total": sum(len(m["documents"]) for m in metas)}
    if any("speech" in m for m in metas):
        from modevo.corpus.speech_sources import aggregate_speech

        out["speech"] = aggregate_speech([m["speech"] for m in metas if "speech" in m])
    return out


_SHARD_AGAIN = "delete {} and rerun `modevo corpus build` (only that shard is rebuilt)"


def load_manifest(cfg: CorpusConfig) -> tuple[dict, CorpusPaths]:
    _, _, paths = plan(cfg)
    if not paths.manifest.exists():
        raise InputError(f"corpus '{cfg.name}' is not built yet: run `modevo corpus build --config ...` first")
    return read_json(paths.manifest, "delete it and rerun `modevo corpus build` (finished shards are kept)"), paths


def load_corpus(paths: CorpusPaths, split: str | None = None):
    """The corpus as one `datasets.Dataset` (optionally one split), shards in order."""

    manifest = read_json(paths.manifest, "delete it and rerun `modevo corpus build` (finished shards are kept)")
    ds = load_shards([paths.shards / f"{i:05d}" / "data" for i in range(manifest["shards"])])
    if split is not None:
        ds = ds.filter(lambda s: s == split, input_columns="split")
    return ds
