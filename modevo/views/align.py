"""Token ↔ utterance alignment: which phone and which word each token of an encoded utterance stands for.

`ViewFamily.token_alignment(spec, encoder, row, rendering, units)` returns a TokenAlignment of the ids
`encoder.encode(row, rendering, units)` gives, built by the helpers here (one per kind of encoding, as
encode.py has one encoder per kind). The probes (score/probe.py) read phone and word labels through it, so
no stage outside views knows how a view's tokens relate to the corpus row.

    phone[t]   index of the phone (the row's phones flattened in order) token t stands for; -1: none (a
               word-boundary token, a frame in a pause, a text view's token)
    word[t]    index of the word token t belongs to; -1: none (a boundary token, a frame between words)

Rules per encoding:
    phones            one token per phone; boundary tokens -1
    phone-repeat      each phone's label repeated for its frames (the encoder's own counts); a collapsed run
                      keeps its first frame's labels
    units             frame i at the view's rate holds the phone whose frames (modevo.frames' rule) include
                      it; frames in word pauses -1; a collapsed run keeps its first frame's labels
    BPE pieces        a piece stands for the LAST phone / word it completes (the label a model at that position
                      has just read); characters are matched one by one, sentencepiece's dummy '▁' skipped
    characters        each letter its word, spaces -1 (text views have no phone labels)
A BPE utterance whose pieces do not spell its text back (an unknown piece) has no alignment: None.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modevo.frames import frame_index

SPACE = "\u2581"


@dataclass
class TokenAlignment:
    phone: np.ndarray  # (n_tokens,) int64, -1 = no phone
    word: np.ndarray  # (n_tokens,) int64, -1 = no word

    def __len__(self) -> int:
        return len(self.word)

    def word_final(self) -> np.ndarray:
        """Positions of the last token of each word present (the token where the word is complete), in order."""
        w = self.word
        last = np.flatnonzero((w >= 0) & (np.append(w[1:], -2) != w))
        return last


def _flat_words(row: dict) -> np.ndarray:
    """The word index of each phone of the row, flattened in order."""
    return np.asarray([w for w, ps in enumerate(row["phones"]) for _ in ps], dtype=np.int64)


def phone_alignment(row: dict, word_boundaries: bool) -> TokenAlignment:
    """One token per phone, a boundary token between words with boundaries on (PhoneEncoder)."""
    phone, word, k = [], [], 0
    for w, ps in enumerate(row["phones"]):
        if w and word_boundaries:
            phone.append(-1)
            word.append(-1)
        for _ in ps:
            phone.append(k)
            word.append(w)
            k += 1
    return TokenAlignment(np.asarray(phone, dtype=np.int64), np.asarray(word, dtype=np.int64))


def _collapse(ids: np.ndarray, al: TokenAlignment) -> TokenAlignment:
    """The labels of a run-collapsed sequence (encode.dedup): each run keeps its first token's."""
    if len(ids) == 0:
        return al
    keep = np.ones(len(ids), dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    return TokenAlignment(al.phone[keep], al.word[keep])


def repeat_alignment(encoder, row: dict, rendering: dict | None) -> TokenAlignment:
    """RepeatEncoder: the phone labels repeated by the encoder's own frame counts (then collapsed likewise)."""
    from modevo.views.encode import BOUNDARY, PhoneEncoder

    ids = PhoneEncoder.encode(encoder, row)  # the phone tokens before repetition
    base = phone_alignment(row, encoder.cfg.word_boundaries)
    counts = _repeat_counts(encoder, row, rendering)
    if encoder.cfg.word_boundaries:
        full = np.ones(len(ids), dtype=np.int64)
        full[ids != encoder.index[BOUNDARY]] = counts
        counts = full
    out = TokenAlignment(np.repeat(base.phone, counts), np.repeat(base.word, counts))
    return _collapse(np.repeat(ids, counts), out) if encoder.cfg.dedup_units else out


def _repeat_counts(encoder, row: dict, rendering: dict | None) -> np.ndarray:
    """Frames per phone exactly as RepeatEncoder.encode counts them (at least 1)."""
    from modevo.frames import phone_frames

    if encoder.mean_frames is not None:
        fallback = max(1, int(round(np.mean(list(encoder.mean_frames.values())))))
        per_phone = [encoder.mean_frames.get(p, fallback) for word in row["phones"] for p in word]
    else:
        per_phone = phone_frames(rendering["start_ms"], rendering["durations_ms"], encoder.spec.rate_hz)
    return np.maximum(1, np.asarray(per_phone, dtype=np.int64))


def frame_alignment(row: dict, rendering: dict, unit_ms: float, n_units: int | None = None) -> TokenAlignment:
    """Labels of the frames span_units keeps (first phone's start to last phone's end) at unit_ms per frame."""
    starts = np.asarray(rendering["start_ms"], dtype=np.float32).astype(np.float64)
    ends = starts + np.asarray(rendering["durations_ms"], dtype=np.float32).astype(np.float64)
    first = int(frame_index(float(np.asarray(rendering["start_ms"][0], dtype=np.float64)), unit_ms))
    last = int(frame_index(float(np.asarray(rendering["start_ms"][-1], dtype=np.float64))
                           + float(np.asarray(rendering["durations_ms"][-1], dtype=np.float64)), unit_ms))
    n = max(0, last - first)
    if n_units is not None:
        n = min(n, max(0, n_units - first))  # span_units slices what the units have
    phone = np.full(n, -1, dtype=np.int64)
    s, e = frame_index(starts, unit_ms) - first, frame_index(ends, unit_ms) - first
    for j, (a, b) in enumerate(zip(s, e)):
        phone[max(a, 0):max(min(b, n), 0)] = j
    words = _flat_words(row)
    word = np.where(phone >= 0, words[np.maximum(phone, 0)] if len(words) else -1, -1)
    return TokenAlignment(phone, word.astype(np.int64))


def unit_alignment(encoder, row: dict, rendering: dict, units) -> TokenAlignment:
    """UnitEncoder: one token per frame of the phone span, runs collapsed where the encoder collapses them."""
    al = frame_alignment(row, rendering, encoder.unit_ms, None if units is None else len(units))
    if not getattr(encoder, "collapse", False):
        return al
    first = int(frame_index(rendering["start_ms"][0], encoder.unit_ms))
    ids = np.asarray(units, dtype=np.int64)[first:first + len(al)]
    return _collapse(ids, al)


def after_mark(al: TokenAlignment) -> TokenAlignment:
    """An alignment with one unlabelled token in front (an interleaved item's speech mark)."""
    return TokenAlignment(np.concatenate([[-1], al.phone]).astype(np.int64),
                          np.concatenate([[-1], al.word]).astype(np.int64))


def piece_alignment(pieces: list[str], text: str, phone_of: np.ndarray, word_of: np.ndarray) -> TokenAlignment | None:
    """sentencepiece pieces of `text` (per character: phone_of, word_of; -1 for spaces) → each piece's labels:
    those of the last non-space character it covers. None where the pieces do not spell the text."""
    phone, word, p = [], [], 0
    for piece in pieces:
        last = -1
        for c in piece.replace(SPACE, " "):
            if c == " " and (p >= len(text) or text[p] != " "):
                continue  # sentencepiece's dummy prefix (or a space the text does not have)
            if p >= len(text) or text[p] != c:
                return None
            if c != " ":
                last = p
            p += 1
        phone.append(int(phone_of[last]) if last >= 0 else -1)
        word.append(int(word_of[last]) if last >= 0 else -1)
    if p != len(text):
        return None
    return TokenAlignment(np.asarray(phone, dtype=np.int64), np.asarray(word, dtype=np.int64))


def char_labels(words: list[str], sep: str, per_word_phones: list[list] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(phone_of, word_of) per character of sep.join(words); with per_word_phones each character IS a phone
    (phone BPE's one symbol per phone), else phone_of is -1 throughout."""
    phone_of, word_of, k = [], [], 0
    for w, token in enumerate(words):
        if w and sep:
            phone_of.extend([-1] * len(sep))
            word_of.extend([-1] * len(sep))
        for _ in token:
            phone_of.append(k if per_word_phones is not None else -1)
            word_of.append(w)
            k += 1
    return np.asarray(phone_of, dtype=np.int64), np.asarray(word_of, dtype=np.int64)


def text_bpe_alignment(encoder, row: dict, text: str) -> TokenAlignment | None:
    """BpeEncoder over the words (text-bpe): word labels only."""
    sep = " " if encoder.cfg.word_boundaries else ""
    phone_of, word_of = char_labels(list(row["words"]), sep)
    return piece_alignment(encoder.sp.encode(text, out_type=str), text, phone_of, word_of)


def phone_bpe_alignment(encoder, row: dict, text: str) -> TokenAlignment | None:
    """BpeEncoder over one symbol per phone (phone-bpe): each piece its last phone and that phone's word."""
    sep = " " if encoder.cfg.word_boundaries else ""
    symbols = ["x" * len(ps) for ps in row["phones"]]
    phone_of, word_of = char_labels(symbols, sep, per_word_phones=row["phones"])
    return piece_alignment(encoder.sp.encode(text, out_type=str), text, phone_of, word_of)


def char_alignment(encoder, row: dict) -> TokenAlignment:
    """CharEncoder: each letter its word; a space (boundaries on) none."""
    if encoder.cfg.word_boundaries:
        text = row["text"]
        before = np.cumsum([c == " " for c in text]) if text else np.zeros(0, dtype=np.int64)
        word_of = np.asarray([-1 if c == " " else int(n) for c, n in zip(text, before)], dtype=np.int64)
    else:
        _, word_of = char_labels(list(row["words"]), "")
    return TokenAlignment(np.full(len(word_of), -1, dtype=np.int64), word_of)


def unit_bpe_alignment(encoder, row: dict, rendering: dict, units) -> TokenAlignment | None:
    """UnitBpeEncoder: pieces over the span's unit characters, each piece its last frame's labels."""
    from modevo.views.encode import span_units, unit_text

    span = span_units(units, rendering, encoder.unit_ms)
    frames = frame_alignment(row, rendering, encoder.unit_ms, len(units))
    text = unit_text(span)
    if len(frames) != len(text):
        return None
    return piece_alignment(encoder.sp.encode(text, out_type=str), text, frames.phone, frames.word)
