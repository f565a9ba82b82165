"""Real read speech as a corpus source: LibriSpeech folders and lhotse manifests (LibriHeavy's format).

Each utterance becomes one corpus row, the same row a text source gives (written and normalised text,
phones, stress, document, chunk, split) plus what the recording adds: its speaker, where its audio is, and,
from a forced alignment (modevo.corpus.alignments), the phones actually aligned with per-phone start times and
durations, pauses and leading/trailing silence. The lexicon's phones for the same words sit beside the
aligned ones with the per-utterance edit distance between them. The `real` rendering (speech.recorded) is
then these timings and the recording's own audio (modevo.corpus.render).

Documents are what held-out chunks are drawn from, as for text: a LibriSpeech chapter, or in a lhotse
manifest the recording (LibriHeavy: one chapter file of one book), the speaker or any custom field
(`source.recordings.document`). A document's utterances keep their source order (recording, start time).

Work units: one LibriSpeech chapter each; in a lhotse manifest, runs of whole documents of about
`utterances_per_shard` utterances, found by one streaming pass over the manifest (ids and counts only; the
manifest is never held in memory). A document must be contiguous in the manifest (lhotse's recipes write
them so); one that is not is an error naming it.

Skips (counted by reason, logged one line each): audio missing, unreadable or empty (``audio:...``); an
alignment that is missing, has unknown phone labels, overlaps, has negative times, disagrees with the
transcript's words or with the audio's length beyond `length_tolerance_ms` (``alignment:...``); and the text
reasons of the text corpus (too long, nothing speakable).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modevo.corpus.alignments import AlignmentIndex, Skip, edit_distance, from_lhotse, timing
from modevo.corpus.audio_io import AudioProblem, read_file, read_lhotse
from modevo.corpus.config import CorpusConfig, RecordingsConfig
from modevo.corpus.synth import SAMPLE_RATE
from modevo.errors import InputError

log = logging.getLogger("modevo.corpus")

ALIGNMENT_OPTIONS = ("source.recordings.alignments (MFA TextGrids or a Kaldi phone CTM), lhotse supervisions "
                     "with word/phone alignments, or `modevo corpus align` (pocketsphinx)")


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    doc_id: str
    speaker: str
    transcript: str
    audio_ref: dict  # {"kind": "file", "path", "offset_s", "duration_s"} | {"kind": "lhotse", "recording", ...}
    order: tuple = ()
    lhotse_alignment: object = None  # a supervision's alignment dict, if any


# -- LibriSpeech ----------------------------------------------------------------------------------------------
def _librispeech_chapters(root: Path) -> list[Path]:
    if not root.is_dir():
        raise InputError(f"LibriSpeech root not found: {root}")
    found = sorted(root.rglob("*.trans.txt"))
    if not found:
        raise InputError(f"no <speaker>-<chapter>.trans.txt under {root}: not a LibriSpeech layout "
                         "(<root>/<speaker>/<chapter>/<utt>.flac)")
    return found


def _read_trans(path: Path) -> list[tuple[str, str]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt, _, text = line.strip().partition(" ")
        if not text:
            log.warning("%s:%d: utterance %s has no transcript", path, n, utt)
        out.append((utt, text))
    return out


def _librispeech_utterances(unit: dict) -> list[Utterance]:
    trans = Path(unit["trans"])
    folder = trans.parent
    speaker = trans.name.split("-")[0]
    utts = []
    for i, (utt, text) in enumerate(_read_trans(trans)[unit.get("start", 0):unit.get("stop")]):
        audio = next((folder / f"{utt}{ext}" for ext in (".flac", ".wav") if (folder / f"{utt}{ext}").exists()),
                     folder / f"{utt}.flac")
        utts.append(Utterance(utt, unit["doc_id"], speaker, text,
                              {"kind": "file", "path": str(audio), "offset_s": 0.0, "duration_s": None}, (i,)))
    return utts


def _files_print(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


# -- lhotse ---------------------------------------------------------------------------------------------------
def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _lines(path: Path, start: int = 0, stop: int | None = None):
    """(index, parsed JSON) of the manifest's lines start..stop, streaming (only those lines are parsed)."""
    with _open_text(path) as f:
        for i, line in enumerate(f):
            if stop is not None and i >= stop:
                break
            if i >= start and line.strip():
                yield i, json.loads(line)


def _manifest_kind(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"lhotse manifest not found: {path}")
    try:
        first = next((d for _, d in _lines(path, 0, 50)), None)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not a lhotse JSONL manifest: {str(e)[:120]}") from None
    if first is None:
        raise InputError(f"lhotse manifest {path} is empty")
    if "Cut" in str(first.get("type", "")) or "supervisions" in first:
        return "cuts"
    if "sources" in first:
        return "recordings"
    if "recording_id" in first and "duration" in first:
        return "supervisions"
    raise InputError(f"{path}: first line is not a lhotse cut, recording or supervision (keys: {', '.join(first)})")


def _doc_of(sup: dict, cut: dict | None, field: str) -> str:
    if field == "recording":
        return str(sup.get("recording_id") or (cut or {}).get("recording", {}).get("id") or "")
    if field == "speaker":
        return str(sup.get("speaker") or "unknown")
    for holder in (sup.get("custom"), (cut or {}).get("custom")):
        if holder and field in holder:
            return str(holder[field])
    raise InputError(f"supervision {sup.get('id')} has no field '{field}' for source.recordings.document "
                     "(use recording, speaker or a custom field the manifest has)")


def _lhotse_plan(cfg: RecordingsConfig) -> tuple[list[dict], list[dict], bool]:
    paths = [Path(p).expanduser() for p in cfg.paths]
    kinds = [_manifest_kind(p) for p in paths]
    if all(k == "cuts" for k in kinds):
        sources = [{"cuts": str(p)} for p in paths]
    elif kinds == ["recordings", "supervisions"]:
        sources = [{"recordings": str(paths[0]), "supervisions": str(paths[1])}]
    else:
        raise InputError("source.recordings.paths for lhotse: CutSet manifests, or one RecordingSet then one "
                         f"SupervisionSet manifest (got {', '.join(kinds)})")
    units, prints, aligned, total = [], [], False, 0
    seen_docs: set[str] = set()
    for src in sources:
        main = Path(src.get("cuts") or src["supervisions"])
        prints.append({"manifest": str(main), "sha256": _digest(main)})
        if "recordings" in src:
            prints.append({"manifest": src["recordings"], "sha256": _digest(Path(src["recordings"]))})
        current, count, prev_doc, stop_at = None, 0, None, None
        for i, d in _lines(main):
            sups = d.get("supervisions", []) if "cuts" in src else [d]
            cut = d if "cuts" in src else None
            if not sups:
                continue
            aligned = aligned or any((s.get("alignment") or {}).get("phone") for s in sups)
            doc = _doc_of(sups[0], cut, cfg.document)
            if doc != prev_doc:
                if doc in seen_docs:
                    raise InputError(f"{main}: document '{doc}' is not contiguous in the manifest (line {i + 1}); "
                                     "sort the manifest by document (e.g. by recording id)")
                seen_docs.add(doc)
                if current is not None and count >= cfg.utterances_per_shard:
                    units.append(current | {"stop": i})
                    current, count = None, 0
                if current is None:
                    current = {"kind": "lhotse", **src, "start": i, "document": cfg.document}
                prev_doc = doc
            count += len(sups)
            total += len(sups)
            if cfg.max_utterances is not None and total >= cfg.max_utterances:
                stop_at = i + 1
                break
        if current is not None:
            units.append(current | {"stop": stop_at})
        if cfg.max_utterances is not None and total >= cfg.max_utterances:
            break
    for u in units:
        u["aligned"] = aligned
    return units, prints, aligned


def _digest(path: Path) -> str:
    from modevo.cache import file_digest

    return file_digest(path)


def _lhotse_utterances(unit: dict) -> list[Utterance]:
    from lhotse import Recording, SupervisionSegment
    from lhotse.serialization import deserialize_item

    recordings = None
    if "recordings" in unit:  # the recordings manifest (one line per audio file) is held; supervisions stream
        recordings = {d["id"]: d for _, d in _lines(Path(unit["recordings"]))}
    main = Path(unit.get("cuts") or unit["supervisions"])
    out = []
    for i, d in _lines(main, unit["start"], unit["stop"]):
        if "cuts" in unit:
            cut = deserialize_item(d)
            rec, base, sups, cut_custom = cut.recording, cut.start, cut.supervisions, d
        else:
            sup = SupervisionSegment.from_dict(d)
            rec_d = recordings.get(sup.recording_id)
            rec = None if rec_d is None else Recording.from_dict(rec_d)
            base, sups, cut_custom = 0.0, [sup], None
        for sup in sups:
            text = sup.text
            if not text and sup.custom and sup.custom.get("texts"):
                text = sup.custom["texts"][0]  # LibriHeavy: [cased with punctuation, normalised]
            doc = _doc_of(sup.to_dict(), cut_custom, unit["document"])
            if rec is None:
                ref = {"kind": "missing", "recording_id": sup.recording_id}
            else:
                ref = {"kind": "lhotse", "recording": rec.to_dict(), "offset_s": float(base + sup.start),
                       "duration_s": float(sup.duration)}
            out.append(Utterance(sup.id, doc, sup.speaker or "unknown", text or "", ref,
                                 (sup.recording_id, float(base + sup.start), i), sup.alignment))
    return out


# -- both -----------------------------------------------------------------------------------------------------
def plan_units(cfg: RecordingsConfig) -> tuple[list[dict], list[dict]]:
    """Work units (JSON-able dicts, one per shard) and the fingerprints that key the corpus."""
    index = AlignmentIndex(cfg.alignments) if cfg.alignments else None
    if cfg.format == "librispeech":
        units, prints, total = [], [], 0
        for root in cfg.paths:
            for trans in _librispeech_chapters(Path(root).expanduser()):
                n = len(_read_trans(trans))
                if cfg.max_utterances is not None:
                    n = min(n, cfg.max_utterances - total)
                    if n <= 0:
                        break
                doc = trans.name.removesuffix(".trans.txt")
                units.append({"kind": "librispeech", "trans": str(trans), "doc_id": doc, "start": 0, "stop": n,
                              "aligned": index is not None})
                prints.append({"doc_id": doc, "trans": _digest(trans), "files": _files_print(trans.parent)})
                total += n
        aligned = index is not None
    else:
        units, prints, aligned = _lhotse_plan(cfg)
        aligned = aligned or index is not None
        for u in units:
            u["aligned"] = aligned
    if not units:
        raise InputError("no utterance found in source.recordings.paths")
    if index is not None:
        prints.append({"alignments": hashlib.sha256(json.dumps(index.fingerprint()).encode()).hexdigest()[:16]})
    return units, prints


def unit_utterances(unit: dict) -> list[Utterance]:
    utts = _librispeech_utterances(unit) if unit["kind"] == "librispeech" else _lhotse_utterances(unit)
    return sorted(utts, key=lambda u: (u.doc_id, u.order)) if unit["kind"] == "lhotse" else utts


def read_utterance_audio(ref: dict) -> tuple[np.ndarray, list[str]]:
    """An utterance's audio reference (as stored in the corpus row) → 16 kHz mono int16."""
    if ref["kind"] == "file":
        return read_file(ref["path"], ref.get("offset_s") or 0.0, ref.get("duration_s"))
    if ref["kind"] == "lhotse":
        from lhotse import Recording

        rec = Recording.from_dict(json.loads(json.dumps(ref["recording"])))  # from_dict consumes its argument
        return read_lhotse(rec, ref["offset_s"], ref["duration_s"])
    raise AudioProblem("recording_missing", f"recording {ref.get('recording_id')} is not in the manifest")


@dataclass
class UnitResult:
    rows: list[dict]
    skips: Counter
    unknown_labels: Counter
    notes: Counter
    stress_from: Counter
    sources: Counter


_ALIGN_CACHE: dict[tuple, AlignmentIndex] = {}


def _index(cfg: RecordingsConfig) -> AlignmentIndex | None:
    if not cfg.alignments:
        return None
    key = tuple(cfg.alignments)
    if key not in _ALIGN_CACHE:  # per process: a CTM is read once, not per shard
        _ALIGN_CACHE.clear()
        _ALIGN_CACHE[key] = AlignmentIndex(cfg.alignments)
    return _ALIGN_CACHE[key]


def process_unit(unit: dict, cfg: CorpusConfig) -> UnitResult:
    """Rows of one work unit (documents with chunk and split assigned), with skips counted by reason."""
    from modevo.corpus.build import assign_splits, sentence_row

    rcfg = cfg.source.recordings
    index = _index(rcfg)
    res = UnitResult([], Counter(), Counter(), Counter(), Counter(), Counter())
    by_doc: dict[str, list[dict]] = {}
    for utt in unit_utterances(unit):
        row = _utterance_row(utt, unit, cfg, rcfg, index, res, sentence_row)
        if row is not None:
            by_doc.setdefault(row["doc_id"], []).append(row)
    for doc_id, rows in by_doc.items():
        n_chunks = -(-len(rows) // cfg.split.chunk_sentences)
        labels = assign_splits(doc_id, n_chunks, cfg)
        for i, row in enumerate(rows):
            chunk = i // cfg.split.chunk_sentences
            row.update(sentence_index=i, chunk=chunk, split=labels[chunk])
            res.rows.append(row)
        if n_chunks < 3:
            res.skips["document:too_few_chunks_for_heldout"] += 1
    return res


def _utterance_row(utt: Utterance, unit: dict, cfg: CorpusConfig, rcfg: RecordingsConfig, index, res: UnitResult,
                   sentence_row) -> dict | None:
    if not utt.transcript.strip():
        res.skips["no_transcript"] += 1
        log.warning("skipped %s: no transcript", utt.utt_id)
        return None
    row, reason = sentence_row(utt.transcript, cfg)
    if row is None:
        res.skips[reason] += 1
        return None
    try:
        audio, notes = read_utterance_audio(utt.audio_ref)
    except AudioProblem as e:
        res.skips[f"audio:{e.reason}"] += 1
        log.warning("skipped %s: %s", utt.utt_id, e)
        return None
    res.notes.update(notes)
    lexicon, lex_stress = row["phones"], row["stress"]
    ali = index.get(utt.utt_id) if index is not None else None
    if ali is None and utt.lhotse_alignment:
        ref = utt.audio_ref
        ali = from_lhotse(utt.lhotse_alignment, utt.utt_id, ref.get("offset_s") or 0.0,
                          ref.get("duration_s") or len(audio) / SAMPLE_RATE)
    audio_ms = len(audio) * 1000.0 / SAMPLE_RATE
    extra = {"speaker": utt.speaker, "audio_ref": json.dumps(utt.audio_ref, sort_keys=True), "n_samples": len(audio),
             "lexicon_phones": lexicon, "lexicon_mismatches": 0, "aligned": False, "alignment_source": "",
             "durations_ms": [], "start_ms": [], "word_pause_ms": [], "leading_ms": 0.0, "trailing_ms": 0.0}
    if ali is None and unit.get("aligned"):
        res.skips["alignment:missing"] += 1
        log.warning("skipped %s: no alignment for it", utt.utt_id)
        return None
    if ali is not None:
        t = timing(ali, row["words"], lexicon, lex_stress, audio_ms, rcfg.length_tolerance_ms)
        if isinstance(t, Skip):
            res.skips[f"alignment:{t.reason}"] += 1
            res.unknown_labels.update(t.labels)
            log.warning("skipped %s: alignment %s%s", utt.utt_id, t.reason.replace("_", " "),
                        f" ({t.detail})" if t.detail else "")
            return None
        res.stress_from.update(t.stress_from)
        res.sources[ali.source] += 1
        f32 = lambda xs: np.asarray(xs, dtype=np.float32).tolist()  # noqa: E731
        extra.update(aligned=True, alignment_source=ali.source, durations_ms=f32(t.durations_ms),
                     start_ms=f32(t.start_ms), word_pause_ms=f32(t.word_pause_ms),
                     leading_ms=float(np.float32(t.leading_ms)), trailing_ms=float(np.float32(t.trailing_ms)),
                     lexicon_mismatches=sum(edit_distance(a, b) for a, b in zip(t.phones, lexicon)))
        row["phones"], row["stress"] = t.phones, t.stress
        row["phone_route"] = ["alignment"] * len(row["words"])
    else:
        res.sources["none"] += 1
    return row | extra | {"id": utt.utt_id, "doc_id": utt.doc_id, "heading": False}


SPEECH_COLUMNS = ("speaker", "audio_ref", "n_samples", "lexicon_phones", "lexicon_mismatches", "aligned",
                  "alignment_source", "durations_ms", "start_ms", "word_pause_ms", "leading_ms", "trailing_ms")


def speech_features() -> dict:
    import datasets

    s, f32 = datasets.Value("string"), datasets.Value("float32")
    return {"speaker": s, "audio_ref": s, "n_samples": datasets.Value("int64"),
            "lexicon_phones": datasets.Sequence(datasets.Sequence(s)), "lexicon_mismatches": datasets.Value("int32"),
            "aligned": datasets.Value("bool"), "alignment_source": s, "durations_ms": datasets.Sequence(f32),
            "start_ms": datasets.Sequence(f32), "word_pause_ms": datasets.Sequence(f32), "leading_ms": f32,
            "trailing_ms": f32}


def unit_stats(res: UnitResult) -> dict:
    """A shard's speech statistics (meta.json): seconds, speakers, alignment sources, lexicon mismatches."""
    rows = res.rows
    aligned = [r for r in rows if r["aligned"]]
    return {"seconds": sum(r["n_samples"] for r in rows) / SAMPLE_RATE,
            "speakers": sorted({r["speaker"] for r in rows}),
            "aligned_utterances": len(aligned), "utterances": len(rows),
            "alignment_sources": dict(res.sources),
            "aligned_phones": sum(len(r["durations_ms"]) for r in aligned),
            "lexicon_phones": sum(sum(len(p) for p in r["lexicon_phones"]) for r in aligned),
            "lexicon_mismatches": sum(r["lexicon_mismatches"] for r in aligned),
            "utterances_with_mismatch": sum(r["lexicon_mismatches"] > 0 for r in aligned),
            "unknown_phone_labels": dict(res.unknown_labels), "audio_notes": dict(res.notes),
            "stress_from": dict(res.stress_from)}


def aggregate_speech(metas: list[dict]) -> dict:
    counters = {k: Counter() for k in ("alignment_sources", "unknown_phone_labels", "audio_notes", "stress_from")}
    for m in metas:
        for k, c in counters.items():
            c.update(m[k])
    sums = {k: sum(m[k] for m in metas) for k in ("seconds", "aligned_utterances", "utterances", "aligned_phones",
                                                  "lexicon_phones", "lexicon_mismatches", "utterances_with_mismatch")}
    speakers = sorted({s for m in metas for s in m["speakers"]})
    return {**sums, "hours": sums["seconds"] / 3600, "speakers": len(speakers),
            "speaker_ids": speakers[:1000],
            "lexicon_mismatch_rate": sums["lexicon_mismatches"] / sums["lexicon_phones"] if sums["lexicon_phones"] else 0.0,
            **{k: dict(sorted(c.items())) for k, c in counters.items()}}
