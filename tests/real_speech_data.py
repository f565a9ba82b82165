"""Test data for the real-speech sources: utterances rendered by modevo's own synthesiser, written out in the
layouts real corpora come in (LibriSpeech folders, lhotse manifests, MFA TextGrids, Kaldi CTM), with the
rendering's exact durations as the alignment, so reading them back must give the synthetic rows again."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modevo.config import load
from modevo.corpus.build import build, load_corpus
from modevo.corpus.config import CorpusConfig
from modevo.corpus.render import build_rendering, iter_shard_audio, load_rendering

SR = 16000


@dataclass
class Utt:
    utt_id: str
    speaker: str
    chapter: str
    row: dict  # the synthetic corpus row
    rend: dict  # its `fixed` rendering row
    audio: np.ndarray  # int16, 16 kHz

    @property
    def transcript(self) -> str:
        return self.row["text"].upper()

    def phone_segments(self, digits: bool = True):
        """(label, start ms, end ms, word index, position in word, phones in word) per phone."""
        out, i = [], 0
        for w, (word, stress) in enumerate(zip(self.row["phones"], self.row["stress"])):
            for k, (p, s) in enumerate(zip(word, stress)):
                start = float(self.rend["start_ms"][i])
                end = start + float(self.rend["durations_ms"][i])
                out.append((p + (str(s) if s >= 0 and digits else ""), start, end, w, k, len(word)))
                i += 1
        return out

    def word_segments(self):
        segs = self.phone_segments()
        return [(word, min(s[1] for s in segs if s[3] == w), max(s[2] for s in segs if s[3] == w))
                for w, word in enumerate(self.row["words"])]


@dataclass
class Synthetic:
    utts: list[Utt] = field(default_factory=list)

    def by_id(self) -> dict[str, Utt]:
        return {u.utt_id: u for u in self.utts}


def make_synthetic(novels: Path, tmp: Path, per_doc: int = 6, rendering: str = "fixed") -> Synthetic:
    """A small text corpus of `novels`, rendered (`fixed`): each usable utterance, LibriSpeech-named."""
    cfg = load(CorpusConfig, None, [f"source.paths=[{novels}]", f"source.max_sentences_per_document={per_doc}",
                                    "source.start_sentence=1", "split.chunk_sentences=2", "num_proc=1",
                                    f"cache_dir={tmp / 'synthetic-cache'}"])
    corpus = build(cfg, progress=False)
    rpaths = build_rendering(cfg, rendering, progress=False)
    rows = {r["id"]: r for r in load_corpus(corpus)}
    rend = {r["id"]: r for r in load_rendering(rpaths)}
    n_shards = json.loads(rpaths.manifest.read_text())["shards"]
    audio = {}
    for i in range(n_shards):
        for utt_id, pcm in iter_shard_audio(cfg, rpaths, i):
            audio[utt_id] = pcm
    docs = sorted({r["doc_id"] for r in rows.values()})
    out = Synthetic()
    for rid, row in sorted(rows.items(), key=lambda kv: (kv[1]["doc_id"], kv[1]["sentence_index"])):
        if min(rend[rid]["durations_ms"]) <= 0:  # a TextGrid cannot hold an empty interval
            continue
        d = docs.index(row["doc_id"])
        spk, chap = str(100 + d), str(200 + d)
        out.utts.append(Utt(f"{spk}-{chap}-{row['sentence_index']:04d}", spk, chap, row, rend[rid], audio[rid]))
    return out


def write_librispeech(syn: Synthetic, root: Path, rate: int = SR, channels: int = 1) -> Path:
    import soundfile as sf

    chapters: dict[tuple, list[Utt]] = {}
    for u in syn.utts:
        chapters.setdefault((u.speaker, u.chapter), []).append(u)
    for (spk, chap), utts in chapters.items():
        folder = root / spk / chap
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for u in utts:
            x = u.audio.astype(np.float64) / 32768.0
            if rate != SR:  # a plain linear interpolation: the reader must resample it back to 16 kHz
                n = int(round(len(x) * rate / SR))
                x = np.interp(np.arange(n) * SR / rate, np.arange(len(x)), x)
            data = np.stack([x] * channels, axis=1) if channels > 1 else x
            sf.write(str(folder / f"{u.utt_id}.flac"), data, rate, "PCM_16", format="FLAC")
            lines.append(f"{u.utt_id} {u.transcript}")
        (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def write_textgrids(syn: Synthetic, folder: Path, ipa: dict | None = None, phones_tier: bool = True) -> Path:
    """One MFA-style TextGrid per utterance (words + phones tiers, ARPAbet with stress digits, or IPA via
    the `ipa` map), times the rendering's exact ones."""
    from praatio import textgrid
    from praatio.utilities.constants import Interval

    for u in syn.utts:
        total = len(u.audio) / SR
        tg = textgrid.Textgrid()
        words = [Interval(s / 1000.0, e / 1000.0, w) for w, s, e in u.word_segments()]
        tg.addTier(textgrid.IntervalTier("words", words, 0, total))
        if phones_tier:
            label = (lambda p: ipa[p.rstrip("012")]) if ipa else (lambda p: p)
            phones = [Interval(s / 1000.0, e / 1000.0, label(p)) for p, s, e, *_ in u.phone_segments()]
            tg.addTier(textgrid.IntervalTier("phones", phones, 0, total))
        sub = folder / u.speaker
        sub.mkdir(parents=True, exist_ok=True)
        tg.save(str(sub / f"{u.utt_id}.TextGrid"), format="long_textgrid", includeBlankSpaces=True)
    return folder


def write_ctm(syn: Synthetic, path: Path, positions: bool = True) -> Path:
    """A Kaldi phone CTM (with word-position suffixes, or without: then words come from the lexicon)."""
    lines = []
    for u in syn.utts:
        for p, s, e, _, k, n in u.phone_segments():
            pos = ("_S" if n == 1 else "_B" if k == 0 else "_E" if k == n - 1 else "_I") if positions else ""
            lines.append(f"{u.utt_id} 1 {s / 1000.0:.9f} {(e - s) / 1000.0:.9f} {p}{pos}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_lhotse(syn: Synthetic, audio_root: Path, manifest: Path, with_alignment: bool = True,
                 book_field: bool = True) -> Path:
    """lhotse cuts over the LibriSpeech-layout flacs (written first), one supervision per cut, alignments as
    lhotse AlignmentItems in recording time, and the document as a custom 'book' field."""
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    cuts = []
    for u in syn.utts:
        rec = Recording.from_file(audio_root / u.speaker / u.chapter / f"{u.utt_id}.flac", recording_id=u.utt_id)
        ali = None
        if with_alignment:
            ali = {"word": [AlignmentItem(w, s / 1000.0, (e - s) / 1000.0) for w, s, e in u.word_segments()],
                   "phone": [AlignmentItem(p, s / 1000.0, (e - s) / 1000.0) for p, s, e, *_ in u.phone_segments()]}
        sup = SupervisionSegment(id=u.utt_id, recording_id=rec.id, start=0.0, duration=rec.duration, channel=0,
                                 text=u.transcript, speaker=u.speaker, alignment=ali,
                                 custom={"book": f"book-{u.chapter}"} if book_field else None)
        cuts.append(MonoCut(id=u.utt_id, start=0.0, duration=rec.duration, channel=0, supervisions=[sup],
                            recording=rec))
    CutSet.from_cuts(cuts).to_file(manifest)
    return manifest


def make_layouts(tmp: Path, per_doc: int = 6, n_docs: int = 2) -> dict:
    """The synthetic utterances of two small novels and every layout written from them."""
    from conftest import write_novel

    novels = tmp / "novels"
    novels.mkdir(parents=True)
    for i in range(n_docs):
        write_novel(novels / f"book{i}.txt", seed=i)
    syn = make_synthetic(novels, tmp, per_doc=per_doc)
    assert len(syn.utts) >= 8
    ls = write_librispeech(syn, tmp / "LibriSpeech")
    return {"tmp": tmp, "syn": syn, "librispeech": ls, "textgrids": write_textgrids(syn, tmp / "mfa"),
            "ctm": write_ctm(syn, tmp / "kaldi" / "phones.ctm"),
            "ctm_plain": write_ctm(syn, tmp / "kaldi_plain" / "phones.ctm", positions=False),
            "lhotse": write_lhotse(syn, ls, tmp / "cuts.jsonl.gz")}


def real_cfg(data, cache, *extra, fmt="librispeech", paths=None, alignments=None):
    """A corpus config over one of the layouts (LibriSpeech folders by default)."""
    paths = paths if paths is not None else [data["librispeech"]]
    over = [f"source.recordings.format={fmt}", f"source.recordings.paths={json.dumps([str(p) for p in paths])}",
            "split.chunk_sentences=2", "num_proc=1", f"cache_dir={cache}", "name=real-test"]
    if alignments is not None:
        over.append(f"source.recordings.alignments={json.dumps([str(a) for a in alignments])}")
    return load(CorpusConfig, None, over + list(extra))
