"""`modevo units build`: train a speech tokenizer on renderings' train split, encode every utterance, score.

Layout:
    tokenizers/<tokenizer>/<key>/            artefacts + manifest.json (key: STAGE_VERSION, the tokenizer's
                                              settings, the corpus and rendering content hashes, weights digest)
    <rendering>/units/<tokenizer>-<key>/shards/<NNNNN>/   per-utterance unit arrays (`datasets` folder) +
                                              meta.json (with held-out phone×unit counts)
    <rendering>/units/<tokenizer>-<key>/quality.json      purity and PNMI on valid+test utterances
    <rendering>/units/<tokenizer>-<key>/manifest.json     written last
Units sit beside the rendering they encode (its folder already keys corpus + rendering knobs); evicting the
rendering's audio keeps them. Every write is atomic and a killed encode resumes from finished shards.
Units at a rate other than 50 Hz (rate_hz, e.g. 25) come from a tokenizer whose params hold `pool`, so both
its key and the units folder (keyed by its content hash) differ from the 50 Hz ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modevo.cache import atomic_dir, atomic_write_json, clean_stale_tmp, read_json, stable_hash
from modevo.corpus.build import CorpusPaths, load_manifest
from modevo.corpus.config import CorpusConfig
from modevo.corpus.render import RenderingPaths, iter_shard_audio
from modevo.errors import InputError
from modevo.frames import DEFAULT_RATE_HZ
from modevo.shards import ShardedDir, load_shard, load_shards, save_shard
from modevo.units import quality
from modevo.units.base import LOCATION_PARAMS, MANIFEST, SpeechTokenizer, Utterance, check_weights, read_manifest, weights_digest
from modevo.units.config import UnitsConfig
from modevo.units.features import FRAME_MS, SILENCE, flat_phones, frame_labels, n_frames
from modevo.units.registry import load_tokenizer, make_tokenizer, tokenizer_class, tokenizer_params

log = logging.getLogger("modevo.units")

# Bump when the same inputs and config would give different tokenizers or units.
STAGE_VERSION = "units-1"
HELDOUT = ("valid", "test")
_SHARD_AGAIN = "delete {} and rerun `modevo units build` (only that shard is rebuilt)"


@dataclass(frozen=True)
class UnitsPaths(ShardedDir):
    rendering: str
    root: Path

    @property
    def quality(self) -> Path:
        return self.root / "quality.json"


def tokenizers_root(cfg: UnitsConfig) -> Path:
    return Path(os.environ.get("MODEVO_TOKENIZERS") or cfg.tokenizers_dir)


def rendering_manifest(paths: RenderingPaths) -> dict:
    if not paths.manifest.is_file():
        raise InputError(f"rendering '{paths.name}' is not built ({paths.manifest} is missing): "
                         "run `modevo corpus build` first")
    return read_json(paths.manifest, "delete it and rerun `modevo corpus build` (finished shards are kept)")


# -- which utterances train the tokenizer ----------------------------------------------------------------
def _shard(folder: Path, columns: list[str]):
    import datasets

    datasets.disable_progress_bars()
    return load_shard(folder / "data").select_columns(columns)


def _priority(seed: int, rendering: str, utt_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{rendering}\x00{utt_id}".encode()).digest()


def select_training(corpus: CorpusPaths, renderings: list[RenderingPaths], max_frames: int, seed: int) -> dict:
    """Train-split utterances of all renderings in a seeded order, until max_frames 50 Hz frames (50 Hz at
    every unit rate: the budget is audio, and pooled tokenizers see the same utterances).

    Returns {(rendering index, shard): set of ids} plus totals. The order is a hash of (seed, rendering,
    id), so the sample is spread over documents and renderings and does not move when a shard is added.
    """
    candidates = []
    for r_idx, paths in enumerate(renderings):
        for shard in range(rendering_manifest(paths)["shards"]):
            text = _shard(corpus.shards / f"{shard:05d}", ["id", "split"])[:]
            split = dict(zip(text["id"], text["split"]))
            rows = _shard(paths.shards / f"{shard:05d}", ["id", "n_samples"])[:]
            for utt_id, n in zip(rows["id"], rows["n_samples"]):
                if split.get(utt_id) == "train":
                    candidates.append((_priority(seed, paths.name, utt_id), r_idx, shard, utt_id, n_frames(n)))
    candidates.sort()
    chosen, frames = defaultdict(set), 0
    for _, r_idx, shard, utt_id, n in candidates:
        if frames >= max_frames:
            break
        chosen[(r_idx, shard)].add(utt_id)
        frames += n
    if not chosen:
        raise InputError("no train-split utterance in renderings " + ", ".join(p.name for p in renderings))
    return {"chosen": dict(chosen), "utterances": sum(len(v) for v in chosen.values()), "frames": frames}


def iter_training(corpus_cfg: CorpusConfig, corpus: CorpusPaths, renderings: list[RenderingPaths],
                  selection: dict, progress: bool = True):
    """Utterance (audio + 50 Hz phone labels) for each selected id, streaming shard by shard. The labels stay
    at 50 Hz at every unit rate: phonetic-kmeans' classifier learns them from 50 Hz frames, before pooling."""
    from tqdm.auto import tqdm

    bar = tqdm(total=selection["utterances"], desc="units: reading training audio", unit="utt", disable=not progress)
    for (r_idx, shard), ids in sorted(selection["chosen"].items()):
        paths = renderings[r_idx]
        text = _shard(corpus.shards / f"{shard:05d}", ["id", "phones"])[:]
        phones = dict(zip(text["id"], text["phones"]))
        rows = {r["id"]: r for r in _shard(paths.shards / f"{shard:05d}", ["id", "start_ms", "durations_ms"])}
        for utt_id, audio in iter_shard_audio(corpus_cfg, paths, shard):
            if utt_id in ids:
                labels = frame_labels(rows[utt_id], n_frames(len(audio)), phones[utt_id])
                yield Utterance(audio=audio, labels=labels, id=utt_id)
                bar.update(1)
    bar.close()


# -- training ----------------------------------------------------------------------------------------------
def tokenizer_key(cfg: UnitsConfig, corpus_manifest: dict, renderings: list[RenderingPaths],
                  rate_hz: float = DEFAULT_RATE_HZ) -> tuple[str, dict]:
    cls = tokenizer_class(cfg.tokenizer)
    params = tokenizer_params(cfg, rate_hz)  # `pool` only below 50 Hz: 50 Hz keys are as they were
    weights = None
    if "weights" in params:
        weights = weights_digest(check_weights(params["weights"], cls.model_type, cls.name))
    inputs = None
    if cls.trainable:
        inputs = {"corpus": corpus_manifest["content_hash"],
                  "renderings": {p.name: rendering_manifest(p)["content_hash"] for p in renderings}}
    key_inputs = {"stage": STAGE_VERSION, "tokenizer": cls.name, "weights": weights, "trained_on": inputs,
                  "params": {k: v for k, v in params.items() if k not in LOCATION_PARAMS}}
    return stable_hash(key_inputs), key_inputs


def train_tokenizer(cfg: UnitsConfig, corpus_cfg: CorpusConfig, renderings: list[RenderingPaths],
                    progress: bool = True, rate_hz: float = DEFAULT_RATE_HZ) -> Path:
    """Train cfg.tokenizer for units at rate_hz on the train split of `renderings` (one shared codebook);
    returns its folder, tokenizers/<name>/<key>/. A finished folder with the same key is reused as it is."""
    corpus_manifest, corpus = load_manifest(corpus_cfg)
    key, key_inputs = tokenizer_key(cfg, corpus_manifest, renderings, rate_hz)
    folder = tokenizers_root(cfg) / cfg.tokenizer / key
    if (folder / MANIFEST).is_file():
        log.debug("tokenizer %s is cached at %s", cfg.tokenizer, folder)
        return folder
    tok: SpeechTokenizer = make_tokenizer(cfg, rate_hz).to(cfg.device, cfg.batch_size)
    if tok.trainable:
        sel = select_training(corpus, renderings, cfg.max_train_frames, cfg.seed)
        log.info("training %s on %d utterances (%.2f h) of %s", tok.name, sel["utterances"],
                 sel["frames"] * FRAME_MS / 3.6e6, ", ".join(p.name for p in renderings))
        tok.fit(iter_training(corpus_cfg, corpus, renderings, sel, progress))
        tok.trained_on = {**key_inputs["trained_on"], "utterances": sel["utterances"], "frames": sel["frames"],
                          "hours": sel["frames"] * FRAME_MS / 3.6e6, "split": "train"}
    clean_stale_tmp(folder.parent)
    with atomic_dir(folder) as tmp:
        tok.save(tmp, extra={"key": key, "key_inputs": key_inputs, "stage_version": STAGE_VERSION})
    return folder


# -- encoding ----------------------------------------------------------------------------------------------
def units_paths(rendering: RenderingPaths, tokenizer_folder: Path) -> UnitsPaths:
    m = read_manifest(tokenizer_folder)
    key = stable_hash({"stage": STAGE_VERSION, "tokenizer": m["content_hash"]})
    return UnitsPaths(rendering.name, rendering.root / "units" / f"{m['tokenizer']}-{key}")


def _features():
    import datasets

    return datasets.Features({"id": datasets.Value("string"), "units": datasets.Sequence(datasets.Value("int32"))})


READ_GROUP = 8  # utterances read ahead per batch: a group of READ_GROUP · batch_size is sorted by length


def _groups(items, size: int):
    group = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _encode_shard(tok: SpeechTokenizer, corpus_cfg: CorpusConfig, corpus: CorpusPaths, rendering: RenderingPaths,
                  shard: int, out: UnitsPaths) -> dict:
    """Units of one shard's utterances, encoded in length-sorted batches (tok.encode_batch), written in the
    shard's own order; the same units for any batch size (tests/test_units_batched.py)."""
    meta_rows = {r["id"]: r for r in _shard(rendering.shards / f"{shard:05d}", ["id", "start_ms", "durations_ms"])}
    text = {r["id"]: r for r in _shard(corpus.shards / f"{shard:05d}", ["id", "split", "phones"])}
    frame_ms = 1000.0 / tok.frame_rate_hz  # the units' own rate (pooled: 40 ms at 25 Hz), so labels line up
    ids, units, counts, frames, samples = [], [], {}, 0, 0
    audio_stream = iter_shard_audio(corpus_cfg, rendering, shard)
    for group in _groups(audio_stream, READ_GROUP * max(1, getattr(tok, "batch_size", 1))):
        encoded = tok.encode_batch([audio for _, audio in group])
        for (utt_id, audio), u in zip(group, encoded):
            if len(u) != tok.n_frames(len(audio)):
                raise RuntimeError(f"{tok.name} gave {len(u)} units for {len(audio)} samples, expected "
                                   f"{tok.n_frames(len(audio))}")
            ids.append(utt_id)
            units.append(u.astype(np.int32))
            frames += len(u)
            samples += len(audio)
            if text[utt_id]["split"] in HELDOUT:  # phone labels at the tokenizer's own frame rate
                labels = frame_labels(meta_rows[utt_id], len(u), flat_phones(text[utt_id]["phones"]), frame_ms)
                quality.add_counts(counts, quality.joint_counts(labels, u))
    with atomic_dir(out.shards / f"{shard:05d}") as tmp:
        save_shard(tmp / "data", {"id": ids, "units": units}, _features())
        meta = {"index": shard, "utterances": len(ids), "frames": frames, "seconds": samples / 16000,
                "heldout_counts": counts, "content_hash": stable_hash([[i, u.tolist()] for i, u in zip(ids, units)], 64)}
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
    return meta


_WORKER: dict = {}


def _worker_init(tokenizer_folder: str, device: str, batch_size: int, threads: int) -> None:
    """A shard worker (spawned: a fresh interpreter, so no OpenMP state forked mid-use): its share of the
    threads and its own copy of the tokenizer."""
    import torch

    import datasets

    torch.set_num_threads(threads)
    datasets.disable_progress_bars()
    _WORKER["tok"] = load_tokenizer(tokenizer_folder).to(device, batch_size)


def _worker_shard(args) -> tuple[int, dict]:
    corpus_cfg, corpus, rendering, shard, out = args
    return shard, _encode_shard(_WORKER["tok"], corpus_cfg, corpus, rendering, shard, out)


def encode_rendering(corpus_cfg: CorpusConfig, rendering: RenderingPaths, tokenizer_folder: str | Path,
                     progress: bool = True, device: str = "cpu", batch_size: int = 16,
                     num_workers: int = 1) -> UnitsPaths:
    """Units of every utterance of one rendering (all splits), then held-out quality; idempotent, resumable.

    Utterances go through the tokenizer in length-sorted batches of batch_size on `device`; with
    num_workers > 1 (CPU) shards are encoded by that many spawned processes, each with its share of the
    threads. Neither changes a unit (each shard's content hash is the same: tested)."""
    from tqdm.auto import tqdm

    import datasets

    datasets.disable_progress_bars()
    tokenizer_folder = Path(tokenizer_folder)
    out = units_paths(rendering, tokenizer_folder)
    if out.manifest.is_file():
        return out
    _, corpus = load_manifest(corpus_cfg)
    n = rendering_manifest(rendering)["shards"]
    out.shards.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(out.shards)
    todo = [i for i in range(n) if not (out.shards / f"{i:05d}").exists()]
    tok = load_tokenizer(tokenizer_folder).to(device, batch_size)
    bar = tqdm(total=n, initial=n - len(todo), desc=f"units {tok.name} {rendering.name}", unit="shard",
               disable=not progress)
    seconds = 0.0
    workers = min(num_workers, len(todo))
    if workers > 1 and tok.device != "cpu":
        log.info("units: num_workers=%d ignored on %s (one process feeds the device)", num_workers, tok.device)
        workers = 1
    if workers > 1:
        import multiprocessing as mp

        import torch

        threads = max(1, torch.get_num_threads() // workers)
        ctx = mp.get_context("spawn")  # torch's thread pools are not fork-safe once used (the parent loaded it)
        jobs = [(corpus_cfg, corpus, rendering, i, out) for i in todo]
        with ctx.Pool(workers, initializer=_worker_init,
                      initargs=(str(tokenizer_folder), "cpu", batch_size, threads)) as pool:
            for _, meta in pool.imap_unordered(_worker_shard, jobs):
                seconds += meta["seconds"]
                bar.update(1)
                bar.set_postfix(audio_h=f"{seconds / 3600:.2f}")
    else:
        for i in todo:
            seconds += _encode_shard(tok, corpus_cfg, corpus, rendering, i, out)["seconds"]
            bar.update(1)
            bar.set_postfix(audio_h=f"{seconds / 3600:.2f}")
    bar.close()
    scores = unit_quality(out)
    metas = [read_json(out.shards / f"{i:05d}" / "meta.json", _SHARD_AGAIN.format(out.shards / f"{i:05d}"))
             for i in range(n)]
    tm = read_manifest(tokenizer_folder)
    atomic_write_json(out.manifest, {
        "rendering": rendering.name, "rendering_key": rendering.root.name, "stage_version": STAGE_VERSION,
        "tokenizer": tm["tokenizer"], "tokenizer_folder": str(tokenizer_folder), "tokenizer_hash": tm["content_hash"],
        "vocab_size": tm["vocab_size"], "frame_rate_hz": tm["frame_rate_hz"], "shards": n,
        "utterances": sum(m["utterances"] for m in metas), "frames": sum(m["frames"] for m in metas),
        "hours": sum(m["seconds"] for m in metas) / 3600,
        "content_hash": stable_hash([m["content_hash"] for m in metas], 64), "quality": scores})
    return out


def unit_quality(out: UnitsPaths) -> dict:
    """Purity and PNMI of the units on held-out (valid + test) utterances, from the shards' counts; written
    to quality.json. Reported without silence frames (the main figure: pauses are trivially pure) and with."""
    counts: dict = {}
    for meta in sorted(out.shards.glob("*/meta.json")):
        quality.add_counts(counts, read_json(meta, _SHARD_AGAIN.format(meta.parent))["heldout_counts"])
    result = {"split": "+".join(HELDOUT), "speech": quality.scores(quality.drop(counts, (SILENCE,))),
              "with_silence": quality.scores(counts)}
    atomic_write_json(out.quality, result)
    return result


def load_units(paths: UnitsPaths):
    """The units of one rendering as a `datasets.Dataset` (id, units), shards in order."""

    if not paths.manifest.is_file():
        raise InputError(f"units for rendering '{paths.rendering}' are not built ({paths.manifest} is missing)")
    n = read_json(paths.manifest, "delete it and rerun `modevo units build` (finished shards are kept)")["shards"]
    return load_shards([paths.shards / f"{i:05d}" / "data" for i in range(n)])


# -- the whole stage -----------------------------------------------------------------------------------------
def build_units(cfg: UnitsConfig, corpus_cfg: CorpusConfig, progress: bool = True,
                rate_hz: float = DEFAULT_RATE_HZ, also: list[str] | tuple = ()) -> dict[str, UnitsPaths]:
    """Train (or reuse) the tokenizer(s) and encode every rendering in cfg.renderings, units at rate_hz.

    Train-role renderings train one shared codebook on the union of their train splits (or one each with
    per_rendering); eval-role renderings (e.g. the held-out voice) are encoded with the shared one, and so
    are the renderings in `also` (a knob-alone rendering of factor C's sweep is heard through the very
    codebook speech-fixed and speech-varied use, so the two differ in the rendering alone).
    """
    from modevo.corpus.render import rendering_paths

    tokenizer_params(cfg, rate_hz)  # a rate the tokenizer cannot give is refused before any work
    manifest, corpus = load_manifest(corpus_cfg)
    also = [n for n in also if n not in cfg.renderings]
    paths = {}
    for name in list(cfg.renderings) + also:
        if name not in corpus_cfg.speech.renderings:
            raise InputError(f"no rendering named '{name}' (declared: {', '.join(corpus_cfg.speech.renderings)})")
        paths[name] = rendering_paths(corpus_cfg, corpus, manifest, name)[0]
        rendering_manifest(paths[name])
    train = [n for n in cfg.renderings if corpus_cfg.speech.renderings[n].role == "train"]
    if not train:
        raise InputError("units: no train-role rendering among " + ", ".join(cfg.renderings))
    out = {}
    for name in list(cfg.renderings) + also:
        if cfg.per_rendering and name in train:
            folder = train_tokenizer(cfg, corpus_cfg, [paths[name]], progress, rate_hz)
        else:  # cached after the first
            folder = train_tokenizer(cfg, corpus_cfg, [paths[n] for n in train], progress, rate_hz)
        out[name] = encode_rendering(corpus_cfg, paths[name], folder, progress, device=cfg.device,
                                     batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    return out
