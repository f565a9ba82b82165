"""Forced alignments → the timing of a corpus row: phones, stress, per-phone start and duration, pauses.

Readers for the usual tools' output, each giving an `Alignment` (word and phone segments in ms, relative to
the utterance's audio):
- Montreal Forced Aligner TextGrids (a words tier and a phones tier; read with praatio),
- Kaldi phone CTM (`utt channel start dur phone`, times in seconds; word-position suffixes _B _I _E _S
  give word boundaries when present),
- lhotse supervision alignments (`word` / `phone` AlignmentItem lists).

`map_label` turns one phone label into our 39 ARPAbet phones: ARPAbet with or without stress digits (MFA's
ARPAbet models, Kaldi, pocketsphinx) or MFA's IPA phone set; silence labels (``sil``, ``sp``, ``spn``, empty)
are pauses, never phones; anything else is unknown (counted, and the utterance skipped).

`timing` then checks an alignment against the transcript and the audio and lays it out exactly as a
synthetic rendering is laid out: ``start_ms[i+1] = start_ms[i] + durations_ms[i]`` inside a word (a gap
inside a word joins the phone before it, as the synthesiser's do), the gap after a word is that word's
pause, and what lies before the first and after the last phone is leading and trailing silence. A problem
is a `Skip` with a reason, never an exception: the corpus counts it.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modevo.corpus.phones import PHONES, VOWELS
from modevo.errors import InputError

log = logging.getLogger("modevo.corpus")

PAUSE_LABELS = frozenset({"", "sil", "sp", "spn", "nsn", "<eps>", "<sil>", "sil_b", "sil_e", "sil_i", "sil_s",
                          "spn_b", "spn_e", "spn_i", "spn_s", "<unk>", "[noise]", "[laughter]", "+spn+", "+nsn+"})
EPS_MS = 0.01  # gaps and overlaps below this are the rounding of written times, not silence
KALDI_POSITION = re.compile(r"^(.+)_([BIES])$")
_ARPABET = re.compile(r"^([A-Z]{1,2})([012])?$")
_LOWER_ARPABET = frozenset(p.lower() for p in PHONES if len(p) == 2)

# MFA's IPA phone set (english_us_mfa, english_mfa) → ARPAbet, after dropping length (ː), aspiration (ʰ),
# palatalisation (ʲ), nasalisation and the tie bar. Allophones go to their phoneme: c/ɟ (k/g before front
# vowels) → K/G, ç (h before j) → HH, ɾ (flap) and ʔ (glottal stop for t) → T, ɲ → N, ʎ/ɫ → L. A syllabic
# consonant is two phones (cmudict spells "button" B AH T AH N): the segment's time is split between them.
IPA: dict[str, tuple[str, ...]] = {
    "aj": ("AY",), "aɪ": ("AY",), "aw": ("AW",), "aʊ": ("AW",), "ej": ("EY",), "eɪ": ("EY",),
    "ow": ("OW",), "oʊ": ("OW",), "əw": ("OW",), "əʊ": ("OW",), "ɔj": ("OY",), "ɔɪ": ("OY",),
    "i": ("IY",), "ɪ": ("IH",), "e": ("EH",), "ɛ": ("EH",), "æ": ("AE",), "a": ("AE",), "ɑ": ("AA",),
    "ɒ": ("AA",), "ɔ": ("AO",), "o": ("OW",), "ʊ": ("UH",), "u": ("UW",), "ʉ": ("UW",), "ə": ("AH",),
    "ɐ": ("AH",), "ʌ": ("AH",), "ɚ": ("ER",), "ɝ": ("ER",), "ɜ": ("ER",),
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "ɡ": ("G",), "g": ("G",), "c": ("K",),
    "ɟ": ("G",), "ʔ": ("T",), "ɾ": ("T",), "f": ("F",), "v": ("V",), "θ": ("TH",), "ð": ("DH",), "s": ("S",),
    "z": ("Z",), "ʃ": ("SH",), "ʒ": ("ZH",), "h": ("HH",), "ç": ("HH",), "tʃ": ("CH",), "ʧ": ("CH",),
    "dʒ": ("JH",), "ʤ": ("JH",), "m": ("M",), "n": ("N",), "ɲ": ("N",), "ŋ": ("NG",), "l": ("L",),
    "ɫ": ("L",), "ʎ": ("L",), "ɹ": ("R",), "r": ("R",), "w": ("W",), "j": ("Y",),
    "m̩": ("AH", "M"), "n̩": ("AH", "N"), "l̩": ("AH", "L"), "ɫ̩": ("AH", "L"), "ɹ̩": ("ER",),
}
_IPA_DROP = frozenset("\u02d0\u02d1\u02b0\u02b2\u0303\u0361\u035c")  # ː ˑ ʰ ʲ ̃ and tie bars


@dataclass(frozen=True)
class Segment:
    label: str
    start_ms: float
    end_ms: float


@dataclass
class Alignment:
    """One utterance's alignment, times in ms from the start of the utterance's audio."""

    utt_id: str
    phones: list[Segment]
    words: list[Segment] | None = None  # None: the format has no words (a phone CTM)
    total_ms: float | None = None  # the audio length the alignment states (a TextGrid's xmax), if any
    source: str = ""


@dataclass(frozen=True)
class Skip:
    reason: str  # counted as "alignment:<reason>"
    detail: str = ""
    labels: tuple[str, ...] = ()  # the unknown phone labels, for the counts


@dataclass
class Timing:
    """What a row takes from an alignment (phones grouped by transcript word)."""

    phones: list[list[str]]
    stress: list[list[int]]
    start_ms: list[float]
    durations_ms: list[float]
    word_pause_ms: list[float]
    leading_ms: float
    trailing_ms: float
    stress_from: dict = field(default_factory=dict)  # "alignment" | "lexicon" | "first-vowel": words


# -- phone labels ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def map_label(label: str) -> tuple[str, tuple[tuple[str, int | None], ...]]:
    """("pause", ()) | ("phone", ((ARPAbet, stress or None), ...)) | ("unknown", ()) for one phone label.
    A Kaldi word-position suffix (_B, _I, _E, _S) is ignored here (see `kaldi_position`)."""
    raw = unicodedata.normalize("NFC", label.strip())
    if raw.lower() in PAUSE_LABELS:
        return "pause", ()
    m = KALDI_POSITION.match(raw)
    if m:
        inner = map_label(m.group(1))
        if inner[0] != "unknown":
            return inner
    up = raw.upper() if raw.isascii() and (raw.isupper() or raw.rstrip("012").lower() in _LOWER_ARPABET) else raw
    m = _ARPABET.match(up)
    if m and m.group(1) in PHONES:
        base = m.group(1)
        if base in VOWELS:
            return "phone", ((base, int(m.group(2)) if m.group(2) is not None else None),)
        return "phone", ((base, -1),)
    ipa = unicodedata.normalize("NFC", "".join(ch for ch in unicodedata.normalize("NFD", raw) if ch not in _IPA_DROP))
    parts = IPA.get(ipa)
    if parts:
        return "phone", tuple((p, None if p in VOWELS else -1) for p in parts)
    return "unknown", ()


def kaldi_position(label: str) -> str | None:
    m = KALDI_POSITION.match(label.strip())
    return m.group(2) if m else None


# -- readers --------------------------------------------------------------------------------------------------
def read_textgrid(path: str | Path, utt_id: str | None = None) -> Alignment:
    """An MFA TextGrid: a words tier and a phones tier (named 'words'/'phones', or '<speaker> - words').
    A TextGrid without a phones tier is an InputError naming the tiers it has."""
    from praatio import textgrid

    path = Path(path)
    try:
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    except Exception as e:  # noqa: BLE001 (praatio raises several types for a malformed file)
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"TextGrid {path} cannot be read: {first}") from None
    names = list(tg.tierNames)

    def tier(kind: str):
        hits = [n for n in names if n.lower() == kind or n.lower().endswith(f" - {kind}")]
        return tg.getTier(hits[0]) if hits else None

    phones, words = tier("phones"), tier("words")
    if phones is None:
        raise InputError(f"TextGrid {path} has no phones tier (tiers: {', '.join(names) or 'none'}); "
                         "an MFA alignment has 'words' and 'phones' tiers")
    return Alignment(
        utt_id=utt_id or path.stem,
        phones=[Segment(e.label, e.start * 1000.0, e.end * 1000.0) for e in phones.entries],
        words=None if words is None else [Segment(e.label, e.start * 1000.0, e.end * 1000.0) for e in words.entries],
        total_ms=(tg.maxTimestamp - tg.minTimestamp) * 1000.0, source="textgrid")


def read_ctm(path: str | Path) -> dict[str, Alignment]:
    """A Kaldi phone CTM: `utt channel start dur phone [confidence]` per line. A malformed line, a negative
    time or duration, or overlapping phones of one utterance is an InputError naming the line."""
    path = Path(path)
    segs: dict[str, list[Segment]] = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts or line.startswith(";;"):
                continue
            try:
                utt, start, dur, label = parts[0], float(parts[2]), float(parts[3]), parts[4]
            except (IndexError, ValueError):
                raise InputError(f"{path}:{n}: not a CTM line (utt channel start duration phone): "
                                 f"{line.strip()[:80]!r}") from None
            if start < 0 or dur < 0:
                raise InputError(f"{path}:{n}: negative time in CTM line {line.strip()[:80]!r}")
            prev = segs[utt][-1] if segs[utt] else None
            seg = Segment(label, start * 1000.0, (start + dur) * 1000.0)
            if prev is not None and seg.start_ms < prev.end_ms - EPS_MS:
                raise InputError(f"{path}:{n}: phone {label} of {utt} starts at {start:.3f} s, before the previous "
                                 f"phone ends ({prev.end_ms / 1000:.3f} s): overlapping or unsorted CTM")
            segs[utt].append(seg)
    return {u: Alignment(utt_id=u, phones=s, source="ctm") for u, s in segs.items()}


def from_lhotse(alignment: dict, utt_id: str, offset_s: float, duration_s: float) -> Alignment | None:
    """A lhotse supervision's alignment dict ({'word': [...], 'phone': [...]}) → Alignment, times relative
    to the utterance. lhotse keeps alignment items in recording time; items that already lie inside
    [0, duration] while the utterance starts later are taken as utterance-relative."""
    if not alignment or not alignment.get("phone"):
        return None
    items = alignment["phone"]
    first = min(it.start for it in items)
    shift = offset_s
    if offset_s > 0 and first < offset_s - 1e-3 and max(it.start + it.duration for it in items) <= duration_s + 1e-3:
        shift = 0.0

    def segs(xs):
        return [Segment(it.symbol, (it.start - shift) * 1000.0, (it.start + it.duration - shift) * 1000.0) for it in xs]

    return Alignment(utt_id=utt_id, phones=segs(items),
                     words=segs(alignment["word"]) if alignment.get("word") else None,
                     total_ms=None, source="lhotse")


class AlignmentIndex:
    """Alignments of a corpus by utterance id, from folders/files of TextGrids and CTM files. TextGrids are
    read when asked for; a CTM is read whole once (per process)."""

    def __init__(self, paths: list[str]):
        self.textgrids: dict[str, Path] = {}
        self.ctm_files: list[Path] = []
        for entry in paths:
            p = Path(entry).expanduser()
            if p.is_dir():
                found = sorted(p.rglob("*.TextGrid")) + sorted(p.rglob("*.textgrid"))
                ctms = sorted(p.rglob("*.ctm"))
                if not found and not ctms:
                    raise InputError(f"alignment folder {p} holds no .TextGrid or .ctm files")
                for f in found:
                    self.textgrids.setdefault(f.stem, f)
                self.ctm_files.extend(ctms)
            elif p.is_file():
                if p.suffix.lower() == ".textgrid":
                    self.textgrids.setdefault(p.stem, p)
                else:
                    self.ctm_files.append(p)
            else:
                raise InputError(f"alignment path not found: {p}")
        self._ctm: dict[str, Alignment] | None = None

    @property
    def empty(self) -> bool:
        return not self.textgrids and not self.ctm_files

    def fingerprint(self) -> list:
        files = sorted(set(self.textgrids.values())) + self.ctm_files
        return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]

    def get(self, utt_id: str) -> Alignment | None:
        if utt_id in self.textgrids:
            return read_textgrid(self.textgrids[utt_id], utt_id)
        if self._ctm is None:
            self._ctm = {}
            for f in self.ctm_files:
                self._ctm.update(read_ctm(f))
        return self._ctm.get(utt_id)


# -- alignment → row timing -----------------------------------------------------------------------------------
def _norm_word(w: str) -> str:
    return w.strip().lower().strip(".,;:!?\"()[]")


def _edit_ops(a: list[str], b: list[str]) -> list[int | None]:
    """For each item of a, the index in b it is matched or substituted to (None: inserted in a)."""
    n, m = len(a), len(b)
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + (a[i - 1] != b[j - 1]), cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    out: list[int | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (a[i - 1] != b[j - 1]):
            out[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return out


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (substitutions, deletions, insertions each 1) between two sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j - 1] + (x != y), prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return prev[-1]


def timing(ali: Alignment, words: list[str], lexicon: list[list[str]], lexicon_stress: list[list[int]],
           audio_ms: float, tolerance_ms: float) -> Timing | Skip:
    """Check one alignment against its transcript words and audio length; lay it out as a rendering does."""
    # 1. labels → phones (pauses dropped), each split part a phone with its share of the segment
    flat: list[tuple[str, int | None, float, float, str]] = []  # phone, stress, start, end, raw label
    unknown = []
    for seg in ali.phones:
        if seg.start_ms < -EPS_MS or seg.end_ms < seg.start_ms - EPS_MS:
            return Skip("negative_time", f"{seg.label} at {seg.start_ms:.1f}-{seg.end_ms:.1f} ms")
        kind, parts = map_label(seg.label)
        if kind == "pause":
            continue
        if kind == "unknown":
            unknown.append(seg.label)
            continue
        step = (seg.end_ms - seg.start_ms) / len(parts)
        for k, (p, s) in enumerate(parts):
            flat.append((p, s, seg.start_ms + k * step, seg.start_ms + (k + 1) * step, seg.label))
    if unknown:
        return Skip("unknown_phone", ", ".join(sorted(set(unknown))), tuple(unknown))
    if not flat:
        return Skip("no_phones")
    for a, b in zip(flat, flat[1:]):
        if b[2] < a[3] - EPS_MS:
            return Skip("overlapping", f"{a[4]} and {b[4]} overlap at {b[2]:.1f} ms")
    # 2. words: the alignment's own word tier (must equal the transcript), else word positions, else the lexicon
    owner: list[int]
    if ali.words is not None:
        spans = [w for w in ali.words if _norm_word(w.label) not in PAUSE_LABELS]
        said = [_norm_word(w.label) for w in spans]
        if said != list(words):
            return Skip("word_mismatch", f"alignment says {' '.join(said)[:60]!r}, transcript {' '.join(words)[:60]!r}")
        owner = []
        for p in flat:
            mid = 0.5 * (p[2] + p[3])
            hit = next((k for k, w in enumerate(spans) if w.start_ms - EPS_MS <= mid <= w.end_ms + EPS_MS), None)
            if hit is None:
                return Skip("phone_outside_words", f"{p[4]} at {p[2]:.1f} ms")
            owner.append(hit)
    elif any(kaldi_position(s.label) for s in ali.phones):
        owner, w = [], -1
        for p in flat:
            pos = kaldi_position(p[4])
            if pos in ("B", "S") or w < 0:
                w += 1
            owner.append(w)
    else:
        lex_flat = [p for word in lexicon for p in word]
        lex_word = [w for w, word in enumerate(lexicon) for _ in word]
        ops = _edit_ops([p[0] for p in flat], lex_flat)
        owner, last = [], 0
        for j in ops:
            last = lex_word[j] if j is not None else last
            owner.append(last)
    if owner != sorted(owner):
        return Skip("word_order", "phones do not follow the word order")
    n_words = len(words)
    grouped = [[] for _ in range(n_words)]
    for k, w in enumerate(owner):
        if w >= n_words:
            return Skip("word_mismatch", f"more aligned words than the transcript's {n_words}")
        grouped[w].append(k)
    if any(not g for g in grouped):
        return Skip("word_without_phones", words[next(i for i, g in enumerate(grouped) if not g)])
    # 3. stress: the alignment's digits; else the lexicon's when the word's phones equal it; else first vowel
    phones, stress, stress_from = [], [], defaultdict(int)
    for w, idx in enumerate(grouped):
        ph = [flat[k][0] for k in idx]
        st = [flat[k][1] for k in idx]
        if all(s is not None for s in st):
            stress_from["alignment"] += 1
        elif ph == lexicon[w]:
            st = list(lexicon_stress[w])
            stress_from["lexicon"] += 1
        else:
            first = True
            for i, (p, s) in enumerate(zip(ph, st)):
                if s is None:
                    st[i] = 1 if first else 0
                if p in VOWELS:
                    first = False
            stress_from["first-vowel"] += 1
        phones.append(ph)
        stress.append([int(s) for s in st])
    # 4. times, laid out as a rendering: gaps inside a word join the phone before, gaps after it are its pause
    starts = [p[2] for p in flat]
    ends = [p[3] for p in flat]
    durations, pauses = [], [0.0] * n_words
    for k in range(len(flat)):
        end = ends[k]
        if k + 1 < len(flat):
            gap = starts[k + 1] - end
            if owner[k + 1] == owner[k]:
                if gap > EPS_MS:
                    end = starts[k + 1]
            elif gap > EPS_MS:
                pauses[owner[k]] = gap
        durations.append(end - starts[k])
    end_ms = ends[-1]
    if ali.total_ms is not None and abs(ali.total_ms - audio_ms) > tolerance_ms:
        return Skip("length_mismatch", f"alignment {ali.total_ms:.0f} ms, audio {audio_ms:.0f} ms")
    if end_ms > audio_ms + tolerance_ms:
        return Skip("length_mismatch", f"alignment ends at {end_ms:.0f} ms, audio is {audio_ms:.0f} ms")
    if end_ms > audio_ms:  # within the tolerance: the last phone ends with the audio
        durations[-1] = max(0.0, audio_ms - starts[-1])
        end_ms = starts[-1] + durations[-1]
    return Timing(phones=phones, stress=stress, start_ms=starts, durations_ms=durations, word_pause_ms=pauses,
                  leading_ms=starts[0], trailing_ms=max(0.0, audio_ms - end_ms), stress_from=dict(stress_from))
