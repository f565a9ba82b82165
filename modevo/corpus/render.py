"""Speech renderings of the corpus: audio rendered FROM each row's phones, with exact per-phone durations.

Layout, beside the text corpus it renders (the key hashes the corpus content, the rendering's knobs, the
seed, the resolved backend and STAGE_VERSION):
    <corpus>/renderings/<name>-<key>/shards/<NNNNN>/   durations and parameters (`datasets` folder) + meta.json
    <corpus>/renderings/<name>-<key>/audio/<NNNNN>.flac the shard's utterances back to back (evictable)
    <corpus>/renderings/<name>-<key>/manifest.json      written last
Durations and parameters are what lasts; audio is a deterministic function of (phones, parameters), so a
missing FLAC is re-rendered on demand and equals the original sample for sample.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modevo.cache import atomic_dir, atomic_write_json, clean_stale_tmp, read_json, stable_hash
from modevo.config import to_dict
from modevo.corpus import synth
from modevo.corpus.build import _SHARD_AGAIN, CorpusPaths, load_manifest
from modevo.corpus.config import CorpusConfig
from modevo.corpus.render_config import RenderingConfig, draw
from modevo.errors import InputError, MissingToolError
from modevo.frames import phone_frames
from modevo.shards import ShardedDir, load_shard, load_shards, save_shard

log = logging.getLogger("modevo.corpus")

STAGE_VERSION = "corpus-render-1"
RECORDED_STAGE_VERSION = "corpus-recorded-1"  # the recorded rendering (a real speech corpus's own audio)
# Where MBROLA is absent each MBROLA voice is replaced by a fixed espeak-ng voice of a similar kind.
FALLBACK_VOICES = {"us1": "espeak-en-us+f3", "us2": "espeak-en-us+m3", "us3": "espeak-en-us+m7",
                   "en1": "espeak-en-gb-x-rp+m3"}


@dataclass(frozen=True)
class RenderingPaths(ShardedDir):
    name: str
    root: Path

    @property
    def audio(self) -> Path:
        return self.root / "audio"


def resolve_voices(rcfg: RenderingConfig, allow_fallback: bool) -> tuple[list[str], bool]:
    """(voices to use, fallback?) after checking the synthesisers this machine has."""
    synth.require_backend("espeak")
    needs_mbrola = any(synth.VOICES.get(v) is not None and synth.VOICES[v].backend == "mbrola" for v in rcfg.voices)
    for v in rcfg.voices:
        if v not in synth.VOICES:
            raise InputError(f"unknown voice '{v}' (known: {', '.join(sorted(synth.VOICES))})")
    if not needs_mbrola or synth.backend_available("mbrola"):
        return list(rcfg.voices), False
    if not allow_fallback:
        synth.require_backend("mbrola")
    return [FALLBACK_VOICES.get(v, v) for v in rcfg.voices], True


def is_recorded(cfg: CorpusConfig, name: str) -> bool:
    """Whether a rendering is the corpus source's own recordings (speech.recorded) rather than synthesised."""
    return name == cfg.speech.recorded


def rendering_paths(cfg: CorpusConfig, corpus: CorpusPaths, manifest: dict, name: str) -> tuple[RenderingPaths, dict]:
    if is_recorded(cfg, name):  # its knobs only voice the task items: the recordings and alignment key it
        key_inputs = {"stage": RECORDED_STAGE_VERSION, "corpus": manifest["content_hash"], "name": name}
        info = {"voices": [], "fallback": False, "recorded": True, "key_inputs": key_inputs}
        return RenderingPaths(name, corpus.root / "renderings" / f"{name}-{stable_hash(key_inputs)}"), info
    rcfg = cfg.speech.renderings[name]
    voices, fallback = resolve_voices(rcfg, cfg.speech.allow_fallback)
    key_inputs = {"stage": STAGE_VERSION, "corpus": manifest["content_hash"], "name": name,
                  "rendering": to_dict(rcfg) | {"enabled": None}, "voices": voices, "seed": cfg.speech.seed}
    info = {"voices": voices, "fallback": fallback, "key_inputs": key_inputs}
    return RenderingPaths(name, corpus.root / "renderings" / f"{name}-{stable_hash(key_inputs)}"), info


def utterance_params(name: str, rcfg: RenderingConfig, voices: list[str], utt_id: str, seed: int) -> synth.RenderParams:
    knobs = draw(name, rcfg, utt_id, seed)
    # the draw picks from the configured voices; the resolved list maps them one to one (fallback)
    knobs["voice"] = voices[rcfg.voices.index(knobs["voice"])]
    return synth.RenderParams(**knobs)


def _render_rows(rows, name, rcfg, voices, seed):
    """Yield (record, audio) per row of one corpus shard."""
    for r in rows:
        yield render_utterance(r, utterance_params(name, rcfg, voices, r["id"], seed))


def render_utterance(row: dict, params: synth.RenderParams) -> tuple[dict, np.ndarray]:
    """One corpus-like row (id, phones, stress) → its rendering record and int16 audio. The ONE way an
    utterance becomes speech: the corpus renderings and the task items both come through here."""
    out = synth.render(row["phones"], row["stress"], params)
    n_per_word = [len(p) for p in row["phones"]]
    # times are stored as float32: frames come from the stored values so readers recompute them exactly
    starts = _phone_starts(out, n_per_word).astype(np.float32).astype(np.float64)
    frames = phone_frames(starts, out.durations_ms)
    record = {"id": row["id"], "voice": params.voice, "rate_wpm": params.rate_wpm, "pitch": params.pitch,
              "pitch_range": float(params.pitch_range), "backend": out.backend,
              "durations_ms": out.durations_ms.astype(np.float32).tolist(),
              "start_ms": starts.astype(np.float32).tolist(), "frames": frames.tolist(),
              "word_pause_ms": out.word_pause_ms.astype(np.float32).tolist(),
              "leading_ms": float(out.leading_ms), "trailing_ms": float(out.trailing_ms),
              "n_samples": int(len(out.audio)), "mismatches": int(out.mismatches)}
    return record, out.audio


def _phone_starts(out: "synth.Rendering", n_per_word: list[int]) -> np.ndarray:
    """Absolute start time of every phone: leading silence, phones, and the pause after each word."""
    starts = np.empty(len(out.durations_ms), dtype=np.float64)
    t, i = out.leading_ms, 0
    for w, n in enumerate(n_per_word):
        for _ in range(n):
            starts[i] = t
            t += out.durations_ms[i]
            i += 1
        t += out.word_pause_ms[w]
    return starts


def _features():
    import datasets

    f32, i32, s = datasets.Value("float32"), datasets.Value("int32"), datasets.Value("string")
    return datasets.Features({
        "id": s, "voice": s, "rate_wpm": i32, "pitch": i32, "pitch_range": f32, "backend": s,
        "durations_ms": datasets.Sequence(f32), "start_ms": datasets.Sequence(f32),
        "frames": datasets.Sequence(i32), "word_pause_ms": datasets.Sequence(f32),
        "leading_ms": f32, "trailing_ms": f32, "n_samples": datasets.Value("int64"), "mismatches": i32,
    })


def _write_shard(args) -> dict:
    import datasets
    import soundfile as sf

    datasets.disable_progress_bars()
    index, corpus_shard, out_root, name, rcfg, voices, seed, keep_audio = args
    rows = load_shard(Path(corpus_shard) / "data")
    out_root = Path(out_root)
    records, voice_count, samples, words, phones, mismatches = [], Counter(), 0, 0, 0, 0
    audio_path = out_root / "audio" / f"{index:05d}.flac"
    with atomic_dir(out_root / "shards" / f"{index:05d}") as tmp:
        writer = sf.SoundFile(str(tmp / "audio.flac"), "w", synth.SAMPLE_RATE, 1, "PCM_16", format="FLAC") \
            if keep_audio and len(rows) else None
        for (rec, audio), row in zip(_render_rows(rows, name, rcfg, voices, seed), rows):
            records.append(rec)
            if writer is not None:
                writer.write(audio)
            voice_count[rec["voice"]] += 1
            samples += rec["n_samples"]
            words += len(row["words"])
            phones += len(rec["durations_ms"])
            mismatches += rec["mismatches"]
        if writer is not None:
            writer.close()
        table = {k: [r[k] for r in records] for k in _features()}
        save_shard(tmp / "data", table, _features())
        meta = {"index": index, "utterances": len(records), "seconds": samples / synth.SAMPLE_RATE, "words": words,
                "phones": phones, "mismatches": mismatches, "voices": dict(voice_count),
                "backends": dict(Counter(r["backend"] for r in records)),
                "content_hash": stable_hash([[r[k] for k in ("id", "voice", "durations_ms", "n_samples")] for r in records], 64)}
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
        if writer is not None:
            audio_path.parent.mkdir(parents=True, exist_ok=True)
            # the audio leaves the shard folder last; the shard's rename then marks both as done
            (tmp / "audio.flac").replace(audio_path)
    return meta


def build_rendering(cfg: CorpusConfig, name: str, progress: bool = True) -> RenderingPaths:
    from tqdm.auto import tqdm

    manifest, corpus = load_manifest(cfg)
    if name not in cfg.speech.renderings:
        raise InputError(f"no rendering named '{name}' (declared: {', '.join(cfg.speech.renderings)})")
    rcfg = cfg.speech.renderings[name]
    paths, info = rendering_paths(cfg, corpus, manifest, name)
    if paths.manifest.exists():
        return paths
    if info.get("recorded"):
        return _build_recorded(cfg, name, manifest, corpus, paths, progress)
    if info["fallback"]:
        log.warning("rendering %s: MBROLA voices absent, using espeak-ng voices %s (runs are tagged "
                    "synth_fallback=espeak)", name, ", ".join(info["voices"]))
    paths.shards.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(paths.shards)
    clean_stale_tmp(paths.audio)
    n = manifest["shards"]
    todo = [(i, str(corpus.shards / f"{i:05d}"), str(paths.root), name, rcfg, info["voices"], cfg.speech.seed,
             cfg.speech.keep_audio) for i in range(n) if not (paths.shards / f"{i:05d}").exists()]
    bar = tqdm(total=n, initial=n - len(todo), desc=f"render {name}", unit="shard", disable=not progress)
    seconds = 0.0
    if cfg.num_proc > 1 and len(todo) > 1:
        with mp.get_context("fork").Pool(min(cfg.num_proc, len(todo))) as pool:
            for meta in pool.imap_unordered(_write_shard, todo):
                seconds += meta["seconds"]
                bar.update(1)
                bar.set_postfix(audio_h=f"{seconds / 3600:.2f}")
    else:
        for args in todo:
            seconds += _write_shard(args)["seconds"]
            bar.update(1)
            bar.set_postfix(audio_h=f"{seconds / 3600:.2f}")
    bar.close()
    metas = [read_json(paths.shards / f"{i:05d}" / "meta.json", _SHARD_AGAIN.format(paths.shards / f"{i:05d}"))
             for i in range(n)]
    stats = aggregate(metas, paths)
    atomic_write_json(paths.manifest, {
        "name": name, "key": paths.root.name, "stage_version": STAGE_VERSION, "corpus": manifest["content_hash"],
        "config": to_dict(rcfg), "voices": info["voices"], "fallback": info["fallback"],
        "backend": "espeak" if info["fallback"] else sorted(stats["backends"])[0] if stats["backends"] else None,
        "tolerance_ms": synth.TOLERANCE_MS, "shards": n, "seed": cfg.speech.seed,
        "content_hash": stable_hash([m["content_hash"] for m in metas], 64), "stats": stats})
    return paths


def aggregate(metas: list[dict], paths: RenderingPaths) -> dict:
    voices, backends = Counter(), Counter()
    for m in metas:
        voices.update(m["voices"])
        backends.update(m["backends"])
    seconds = sum(m["seconds"] for m in metas)
    utts = sum(m["utterances"] for m in metas)
    disk = sum(f.stat().st_size for f in paths.audio.glob("*.flac")) if paths.audio.is_dir() else 0
    return {
        "utterances": utts, "hours": seconds / 3600, "words_per_s": sum(m["words"] for m in metas) / seconds if seconds else 0.0,
        "phones_per_s": sum(m["phones"] for m in metas) / seconds if seconds else 0.0,
        "mismatches": sum(m["mismatches"] for m in metas), "phones": sum(m["phones"] for m in metas),
        "voices": {v: c / utts for v, c in sorted(voices.items())} if utts else {},
        "backends": dict(backends), "audio_bytes": disk,
        "audio_mb_per_hour": disk / 1e6 / (seconds / 3600) if seconds else 0.0,
    }


def build_renderings(cfg: CorpusConfig, names: list[str] | None = None, progress: bool = True) -> dict[str, RenderingPaths]:
    """Build every enabled rendering (or the named ones); missing synthesisers are one clear error."""
    if names is None:
        names = [n for n, r in cfg.speech.renderings.items() if r.enabled]
    return {n: build_rendering(cfg, n, progress) for n in names}


def load_rendering(paths: RenderingPaths):

    manifest = read_json(paths.manifest, "delete it and rerun `modevo corpus build` (finished shards are kept)")
    return load_shards([paths.shards / f"{i:05d}" / "data" for i in range(manifest["shards"])])


def iter_shard_audio(cfg: CorpusConfig, paths: RenderingPaths, index: int):
    """Yield (id, int16 audio) for every utterance of one shard, streaming from its FLAC (memory stays at
    one utterance); an evicted FLAC is re-rendered and re-cached first."""
    import soundfile as sf

    rows = load_shard(paths.shards / f"{index:05d}" / "data")
    flac = paths.audio / f"{index:05d}.flac"
    if not flac.exists():
        if read_json(paths.manifest, "delete it and rerun `modevo corpus build` (finished shards are kept)").get("backend") == RECORDED_BACKEND:
            _regenerate_recorded(cfg, paths, index)
        else:
            _regenerate(cfg, paths, index, rows)
    with sf.SoundFile(str(flac)) as f:
        for utt_id, n in zip(rows["id"], rows["n_samples"]):
            yield utt_id, f.read(n, dtype="int16")


def _regenerate(cfg: CorpusConfig, paths: RenderingPaths, index: int, rendered) -> None:
    import soundfile as sf

    from modevo.cache import atomic_write_bytes

    _, corpus = load_manifest(cfg)
    rows = load_shard(corpus.shards / f"{index:05d}" / "data")
    chunks = []
    for row, rec in zip(rows, rendered):
        params = synth.RenderParams(voice=rec["voice"], rate_wpm=rec["rate_wpm"], pitch=rec["pitch"],
                                    pitch_range=round(float(rec["pitch_range"]), 3))
        out = synth.render(row["phones"], row["stress"], params)
        if len(out.audio) != rec["n_samples"]:
            raise MissingToolError(f"re-rendering {rec['id']} gave {len(out.audio)} samples, the cache says "
                                   f"{rec['n_samples']}: the synthesiser changed since this rendering was built; "
                                   f"rebuild it (delete {paths.root})")
        chunks.append(out.audio)
    import io

    buf = io.BytesIO()
    sf.write(buf, np.concatenate(chunks) if chunks else np.zeros(0, np.int16), synth.SAMPLE_RATE, "PCM_16", format="FLAC")
    atomic_write_bytes(paths.audio / f"{index:05d}.flac", buf.getvalue())


def evict_audio(paths: RenderingPaths) -> int:
    """Delete a rendering's cached audio; returns the bytes freed. Durations and parameters stay."""
    freed = 0
    for f in paths.audio.glob("*.flac"):
        freed += f.stat().st_size
        f.unlink()
    return freed


# -- the recorded rendering: a real speech corpus's own audio and alignment -------------------------------------
RECORDED_BACKEND = "recorded"


def _recorded_problem(cfg: CorpusConfig, name: str, manifest: dict) -> str | None:
    from modevo.corpus.speech_sources import ALIGNMENT_OPTIONS

    speech = manifest["stats"].get("speech")
    if speech is None:
        return (f"rendering '{name}' is the recordings of a real speech corpus, and corpus '{cfg.name}' is text: "
                "set source.recordings (LibriSpeech folders or lhotse manifests), or use a synthetic rendering")
    if speech["aligned_utterances"] < speech["utterances"]:
        return (f"corpus '{cfg.name}' has no alignment ({speech['aligned_utterances']} of {speech['utterances']} "
                f"utterances aligned), so frame views of '{name}' cannot be built: give {ALIGNMENT_OPTIONS}")
    return None


def _recorded_shard(rows, out_root: Path, index: int, keep_audio: bool, check: bool = True):
    """(records, audio chunks) of one corpus shard's recorded utterances, read again from the source."""
    from modevo.corpus.speech_sources import read_utterance_audio

    records, chunks = [], []
    for r in rows:
        audio, _ = read_utterance_audio(json.loads(r["audio_ref"]))
        if check and len(audio) != r["n_samples"]:
            raise InputError(f"recording of {r['id']} now has {len(audio)} samples, the corpus says {r['n_samples']}: "
                             "the source audio changed since the corpus was built; rebuild the corpus")
        frames = phone_frames(r["start_ms"], r["durations_ms"])
        records.append({"id": r["id"], "voice": r["speaker"], "rate_wpm": 0, "pitch": 0, "pitch_range": 1.0,
                        "backend": RECORDED_BACKEND, "durations_ms": r["durations_ms"], "start_ms": r["start_ms"],
                        "frames": frames.tolist(), "word_pause_ms": r["word_pause_ms"],
                        "leading_ms": r["leading_ms"], "trailing_ms": r["trailing_ms"], "n_samples": len(audio),
                        "mismatches": r["lexicon_mismatches"]})
        chunks.append(audio)
    return records, chunks


def _write_recorded_shard(args) -> dict:
    import datasets
    import soundfile as sf

    datasets.disable_progress_bars()
    index, corpus_shard, out_root, keep_audio = args
    rows = load_shard(Path(corpus_shard) / "data")
    out_root = Path(out_root)
    records, chunks = _recorded_shard(rows, out_root, index, keep_audio)
    audio_path = out_root / "audio" / f"{index:05d}.flac"
    with atomic_dir(out_root / "shards" / f"{index:05d}") as tmp:
        if keep_audio and records:
            sf.write(str(tmp / "audio.flac"), np.concatenate(chunks), synth.SAMPLE_RATE, "PCM_16", format="FLAC")
        save_shard(tmp / "data", {k: [r[k] for r in records] for k in _features()}, _features())
        meta = {"index": index, "utterances": len(records), "seconds": sum(len(c) for c in chunks) / synth.SAMPLE_RATE,
                "words": sum(len(r["words"]) for r in rows), "phones": sum(len(r["durations_ms"]) for r in records),
                "mismatches": sum(r["mismatches"] for r in records), "voices": dict(Counter(r["voice"] for r in records)),
                "backends": {RECORDED_BACKEND: len(records)} if records else {},
                "content_hash": stable_hash([[r[k] for k in ("id", "voice", "durations_ms", "n_samples")] for r in records], 64)}
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
        if keep_audio and records:
            audio_path.parent.mkdir(parents=True, exist_ok=True)
            (tmp / "audio.flac").replace(audio_path)
    return meta


def _build_recorded(cfg: CorpusConfig, name: str, manifest: dict, corpus: CorpusPaths, paths: RenderingPaths,
                    progress: bool) -> RenderingPaths:
    from tqdm.auto import tqdm

    problem = _recorded_problem(cfg, name, manifest)
    if problem:
        raise InputError(problem)
    paths.shards.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(paths.shards)
    clean_stale_tmp(paths.audio)
    n = manifest["shards"]
    todo = [(i, str(corpus.shards / f"{i:05d}"), str(paths.root), cfg.speech.keep_audio) for i in range(n)
            if not (paths.shards / f"{i:05d}").exists()]
    bar = tqdm(total=n, initial=n - len(todo), desc=f"recorded {name}", unit="shard", disable=not progress)
    if cfg.num_proc > 1 and len(todo) > 1:
        with mp.get_context("fork").Pool(min(cfg.num_proc, len(todo))) as pool:
            for _ in pool.imap_unordered(_write_recorded_shard, todo):
                bar.update(1)
    else:
        for args in todo:
            _write_recorded_shard(args)
            bar.update(1)
    bar.close()
    metas = [read_json(paths.shards / f"{i:05d}" / "meta.json", _SHARD_AGAIN.format(paths.shards / f"{i:05d}"))
             for i in range(n)]
    stats = aggregate(metas, paths)
    speech = manifest["stats"]["speech"]
    atomic_write_json(paths.manifest, {
        "name": name, "key": paths.root.name, "stage_version": RECORDED_STAGE_VERSION,
        "corpus": manifest["content_hash"], "config": {"recorded": True},
        "voices": sorted(stats["voices"]), "fallback": False, "backend": RECORDED_BACKEND,
        "alignment_sources": speech["alignment_sources"], "tolerance_ms": {},
        "shards": n, "seed": None, "content_hash": stable_hash([m["content_hash"] for m in metas], 64), "stats": stats})
    return paths


def _regenerate_recorded(cfg: CorpusConfig, paths: RenderingPaths, index: int) -> None:
    """An evicted recorded FLAC is read again from the source recordings (never synthesised)."""
    import io

    import soundfile as sf

    from modevo.cache import atomic_write_bytes

    _, corpus = load_manifest(cfg)
    rows = load_shard(corpus.shards / f"{index:05d}" / "data")
    _, chunks = _recorded_shard(rows, paths.root, index, True)
    buf = io.BytesIO()
    sf.write(buf, np.concatenate(chunks) if chunks else np.zeros(0, np.int16), synth.SAMPLE_RATE, "PCM_16", format="FLAC")
    atomic_write_bytes(paths.audio / f"{index:05d}.flac", buf.getvalue())
