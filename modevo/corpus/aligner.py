"""A built-in forced aligner (pocketsphinx), and its phone boundary error against exact synthetic durations.

`modevo corpus align` is for recordings with transcripts and no alignment. pocketsphinx's wheel ships an
en-US acoustic model, so it runs offline. It is given OUR lexicon, not its own dictionary: each word's phones
are the corpus's (cmudict, g2p-en for out-of-vocabulary words), so the aligned phones are the phone view's
phones and only their times are estimated. Decoding runs twice per utterance: once to align words
(`set_align_text`), then again for phone times (`set_alignment`); times come in 10 ms frames. The result is
one MFA-style TextGrid per utterance (words and phones tiers, ARPAbet with the lexicon's stress digits), which
the corpus then reads like any other alignment (`source.recordings.alignments`).

Because the synthetic renderings have exact phone durations, the aligner can be measured, which no corpus
with real speech can do: `modevo corpus align --measure` aligns `fixed` and `varied` rendered utterances and
reports, per voice, the median and 90th percentile of |aligned - true| over every phone boundary (each
phone's start and the last phone's end) and the share within 20 ms.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from modevo.corpus.alignments import Alignment, Segment
from modevo.corpus.synth import SAMPLE_RATE
from modevo.errors import MissingToolError

log = logging.getLogger("modevo.corpus")

FRAME_MS = 10.0  # pocketsphinx's frame period (100 frames/s)
NAME = "pocketsphinx"


class PocketsphinxAligner:
    """Forced alignment with a fixed lexicon {word: [ARPAbet phones without stress]}."""

    def __init__(self, lexicon: dict[str, list[str]]):
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise MissingToolError("pocketsphinx is not installed: pip install pocketsphinx "
                                   "(its wheel ships the en-US model the aligner uses)") from None
        self._tmp = tempfile.TemporaryDirectory(prefix="modevo-ps-")
        dict_path = Path(self._tmp.name) / "lexicon.dict"
        dict_path.write_text("".join(f"{w} {' '.join(p)}\n" for w, p in sorted(lexicon.items()) if p))
        self.lexicon = dict(lexicon)
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", dict=str(dict_path))

    def align(self, audio: np.ndarray, words: list[str], utt_id: str = "") -> Alignment | None:
        """int16 16 kHz audio + its words → Alignment (ms), or None when pocketsphinx finds none."""
        pcm = np.ascontiguousarray(audio, dtype=np.int16).tobytes()
        d = self.decoder
        try:
            d.set_align_text(" ".join(words))
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            d.set_alignment()
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            ali = d.get_alignment()
        except (RuntimeError, ValueError) as e:
            log.warning("pocketsphinx could not align %s: %s", utt_id, e)
            return None
        if ali is None:
            return None
        word_segs, phone_segs = [], []
        for w in ali:
            start, end = w.start * FRAME_MS, (w.start + w.duration) * FRAME_MS
            if w.name.startswith("<") or w.name.upper() in ("SIL", "<SIL>"):
                phone_segs.append(Segment("sil", start, end))
                continue
            word_segs.append(Segment(w.name.split("(")[0], start, end))
            for p in w:
                phone_segs.append(Segment(p.name, p.start * FRAME_MS, (p.start + p.duration) * FRAME_MS))
        if [s.label for s in word_segs] != list(words):
            log.warning("pocketsphinx aligned other words than the transcript's for %s", utt_id)
            return None
        return Alignment(utt_id=utt_id, phones=phone_segs, words=word_segs,
                         total_ms=len(audio) * 1000.0 / SAMPLE_RATE, source=NAME)


def write_textgrid(ali: Alignment, stress: list[list[int]], path: Path) -> None:
    """An alignment as an MFA-style TextGrid; vowels carry the lexicon's stress digits (pocketsphinx has none)."""
    from praatio import textgrid
    from praatio.utilities.constants import Interval

    total = ali.total_ms / 1000.0
    flat_stress = iter(s for word in stress for s in word)
    phones = []
    for seg in ali.phones:
        if seg.label == "sil":
            continue
        s = next(flat_stress)
        phones.append(Interval(seg.start_ms / 1000.0, min(seg.end_ms / 1000.0, total), seg.label + (str(s) if s >= 0 else "")))
    tg = textgrid.Textgrid()
    tg.addTier(textgrid.IntervalTier("words", [Interval(w.start_ms / 1000.0, min(w.end_ms / 1000.0, total), w.label)
                                               for w in ali.words], 0, total))
    tg.addTier(textgrid.IntervalTier("phones", phones, 0, total))
    path.parent.mkdir(parents=True, exist_ok=True)
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True)


def align_corpus_source(cfg, out: Path, progress: bool = True) -> dict:
    """Align every utterance of cfg's recordings source (transcripts + audio, no alignment) with pocketsphinx
    and write one TextGrid per utterance under `out`; returns counts."""
    import dataclasses
    from collections import Counter

    from tqdm.auto import tqdm

    from modevo.corpus.audio_io import AudioProblem
    from modevo.corpus.build import sentence_row
    from modevo.corpus.speech_sources import plan_units, read_utterance_audio, unit_utterances
    from modevo.errors import InputError

    rcfg = cfg.source.recordings
    if rcfg is None:
        raise InputError("`modevo corpus align` needs a recordings source: set source.recordings (LibriSpeech "
                         "folders or lhotse manifests); a text corpus has no audio to align")
    units, _ = plan_units(dataclasses.replace(rcfg, alignments=[]))
    todo, lexicon, counts = [], {}, Counter()
    for unit in units:
        for utt in unit_utterances(unit):
            row, reason = sentence_row(utt.transcript, cfg) if utt.transcript.strip() else (None, "no_transcript")
            if row is None:
                counts[f"skipped:{reason}"] += 1
                continue
            lexicon.update(zip(row["words"], row["phones"]))
            todo.append((utt, row))
    aligner = PocketsphinxAligner(lexicon)
    for utt, row in tqdm(todo, desc="align (pocketsphinx)", unit="utt", disable=not progress):
        try:
            audio, _ = read_utterance_audio(utt.audio_ref)
        except AudioProblem as e:
            counts[f"skipped:audio:{e.reason}"] += 1
            continue
        ali = aligner.align(audio, row["words"], utt.utt_id)
        if ali is None:
            counts["failed"] += 1
            continue
        write_textgrid(ali, row["stress"], out / utt.speaker / f"{utt.utt_id}.TextGrid")
        counts["aligned"] += 1
    return dict(counts)


# -- measuring the aligner on exact synthetic durations -------------------------------------------------------
def boundary_errors(ali: Alignment, start_ms, durations_ms) -> np.ndarray | None:
    """|aligned - true| (ms) at every phone boundary: each phone's start and the last phone's end."""
    hyp = [s for s in ali.phones if s.label != "sil"]
    if len(hyp) != len(start_ms):
        return None
    true = np.concatenate([np.asarray(start_ms, np.float64), [float(start_ms[-1]) + float(durations_ms[-1])]])
    got = np.asarray([s.start_ms for s in hyp] + [hyp[-1].end_ms], dtype=np.float64)
    return np.abs(got - true)


def measure(cfg, renderings: list[str], max_utterances: int, progress: bool = True) -> dict:
    """The aligner's phone boundary error on rendered utterances (test split first, then valid, then train),
    per rendering and voice. Each chosen utterance is rendered exactly as its rendering renders it (same drawn
    voice, rate, pitch and range), so a whole 30-hour rendering need not exist to measure a few hundred."""
    from collections import defaultdict

    from tqdm.auto import tqdm

    from modevo.cache import atomic_write_json
    from modevo.corpus.build import load_corpus, load_manifest
    from modevo.corpus.render import render_utterance, resolve_voices, utterance_params
    from modevo.errors import InputError

    manifest, corpus = load_manifest(cfg)
    for name in renderings:
        if name not in cfg.speech.renderings or name == cfg.speech.recorded:
            raise InputError(f"--measure needs synthetic renderings (exact durations); '{name}' is not one "
                             f"(declared: {', '.join(n for n in cfg.speech.renderings if n != cfg.speech.recorded)})")
    ds = load_corpus(corpus)
    order = {"test": 0, "valid": 1, "train": 2}
    keyed = sorted(zip(ds["split"], ds["id"], range(len(ds))), key=lambda t: (order[t[0]], t[1]))[:max_utterances]
    rows = [ds[i] for _, _, i in keyed]
    lexicon = {w: p for r in rows for w, p in zip(r["words"], r["phones"])}
    aligner = PocketsphinxAligner(lexicon)
    out_rows = []
    for name in renderings:
        rcfg = cfg.speech.renderings[name]
        voices, fallback = resolve_voices(rcfg, cfg.speech.allow_fallback)
        errors, failed, utts = defaultdict(list), defaultdict(int), defaultdict(int)
        for row in tqdm(rows, desc=f"align {name}", unit="utt", disable=not progress):
            rec, audio = render_utterance(row, utterance_params(name, rcfg, voices, row["id"], cfg.speech.seed))
            voice = rec["voice"]
            utts[voice] += 1
            ali = aligner.align(audio, row["words"], row["id"])
            err = None if ali is None else boundary_errors(ali, rec["start_ms"], rec["durations_ms"])
            if err is None:
                failed[voice] += 1
            else:
                errors[voice].append(err)
        for voice in sorted(utts):
            e = np.concatenate(errors[voice]) if errors[voice] else np.zeros(0)
            out_rows.append({"rendering": name, "voice": voice, "utterances": utts[voice], "failed": failed[voice],
                             "boundaries": int(e.size),
                             "median_ms": float(np.median(e)) if e.size else float("nan"),
                             "p90_ms": float(np.percentile(e, 90)) if e.size else float("nan"),
                             "within_20ms": float(np.mean(e <= 20.0)) if e.size else float("nan"),
                             "mean_ms": float(np.mean(e)) if e.size else float("nan"), "fallback": fallback})
    result = {"aligner": NAME, "frame_ms": FRAME_MS, "utterances": len(rows), "corpus": manifest["name"],
              "corpus_key": manifest["key"], "renderings": renderings, "rows": out_rows}
    atomic_write_json(corpus.root / "aligner" / "boundary_error.json", result)
    return result


def write_results(result: dict, folder: Path, how: str) -> list[Path]:
    """results/<scale>/aligner_error.md and .csv: the measured boundary error and how it was obtained."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    cols = ["rendering", "voice", "utterances", "failed", "boundaries", "median_ms", "p90_ms", "within_20ms", "mean_ms"]
    with open(folder / "aligner_error.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in result["rows"]:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k in cols})
    lines = [f"# Forced-aligner phone boundary error ({result['aligner']}) on exact synthetic durations", "",
             how, "",
             "| rendering | voice | utterances | failed | boundaries | median (ms) | p90 (ms) | within 20 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['rendering']} | {r['voice']} | {r['utterances']} | {r['failed']} | {r['boundaries']} | "
                     f"{r['median_ms']:.1f} | {r['p90_ms']:.1f} | {100 * r['within_20ms']:.1f}% |")
    lines += ["", "A boundary is each phone's start and the utterance's last phone end; the error is |aligned − "
              "true| with the rendering's exact durations as truth. pocketsphinx works in 10 ms frames, so 5 ms is "
              "its quantisation floor. The aligner gets the corpus's own lexicon (the phones are the rendered "
              "ones), so this measures timing only."]
    (folder / "aligner_error.md").write_text("\n".join(lines) + "\n")
    return [folder / "aligner_error.md", folder / "aligner_error.csv"]
