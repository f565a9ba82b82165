"""Encoders: one corpus row (+ its rendering row or units) → token ids, for each view family.

Id 0 is the utterance separator in every view; real tokens start at 1. The text and phone views read the
same normalised words and phones the corpus stage wrote; word boundaries and stress follow ONE setting.
"""

from __future__ import annotations

import numpy as np

from modevo.corpus.phones import PHONES, VOWELS
from modevo.corpus.synth import frame_index
from modevo.views.bpe import load_bpe, phone_symbols
from modevo.views.config import ViewsConfig
from modevo.views.registry import SEP, ViewSpec

BOUNDARY = "|"


def phone_tokens(cfg: ViewsConfig) -> list[str]:
    """The phone inventory: 39 phones, or with stress 24 consonants + 15 vowels × 3 stresses."""
    if not cfg.stress:
        return list(PHONES)
    return [p for p in PHONES if p not in VOWELS] + [f"{v}{s}" for v in VOWELS for s in (0, 1, 2)]


def row_phones(row: dict, cfg: ViewsConfig) -> list[list[str]]:
    if not cfg.stress:
        return row["phones"]
    return [[p if s < 0 else f"{p}{s}" for p, s in zip(ps, ss)] for ps, ss in zip(row["phones"], row["stress"])]


def bpe_text(row: dict, spec: ViewSpec, cfg: ViewsConfig) -> str:
    """The string sentencepiece sees: words (or phone symbols) joined by spaces only with boundaries on."""
    joiner = " " if cfg.word_boundaries else ""
    if spec.family == "text-bpe":
        return joiner.join(row["words"])
    sym = phone_symbols(phone_tokens(cfg))
    return joiner.join("".join(sym[p] for p in word) for word in row_phones(row, cfg))


class Encoder:
    """Vocabulary and encode() of one view; frame-level views also need the rendering row or units."""

    def __init__(self, spec: ViewSpec, cfg: ViewsConfig, bpe_folder=None, mean_frames: dict | None = None,
                 n_units: int | None = None, unit_rate_hz: float = 50.0):
        self.spec, self.cfg, self.mean_frames = spec, cfg, mean_frames
        self.item_inputs: dict = {"name": spec.name}  # what an item's ids depend on (views.build sets it)
        self.unit_ms = 1000.0 / unit_rate_hz
        fam = spec.family
        if fam in ("text-bpe", "phone-bpe"):
            self.sp = load_bpe(bpe_folder)
            self.vocab = [SEP] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        elif fam == "text-char":
            self.vocab = [SEP] + list("abcdefghijklmnopqrstuvwxyz'") + ([" "] if cfg.word_boundaries else [])
        elif fam in ("phone", "phone-repeat"):
            self.vocab = [SEP] + phone_tokens(cfg) + ([BOUNDARY] if cfg.word_boundaries else [])
        elif fam == "speech":
            self.vocab = [SEP] + [f"u{i}" for i in range(n_units)]
        self.index = {t: i for i, t in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, row: dict, rendering: dict | None = None, units: np.ndarray | None = None) -> np.ndarray:
        fam = self.spec.family
        if fam in ("text-bpe", "phone-bpe"):
            return np.asarray(self.sp.encode(bpe_text(row, self.spec, self.cfg)), dtype=np.int64) + 1
        if fam == "text-char":
            text = row["text"] if self.cfg.word_boundaries else "".join(row["words"])
            return np.asarray([self.index[c] for c in text], dtype=np.int64)
        if fam == "speech":
            return self._speech(units, rendering)
        ids, words = [], row_phones(row, self.cfg)
        for w, word in enumerate(words):
            if w and self.cfg.word_boundaries:
                ids.append(self.index[BOUNDARY])
            ids.extend(self.index[p] for p in word)
        ids = np.asarray(ids, dtype=np.int64)
        if fam == "phone":
            return ids
        return self._repeat(ids, row, rendering)

    def _repeat(self, ids: np.ndarray, row: dict, rendering: dict | None) -> np.ndarray:
        """phone-repeat: each phone for its frames (≥1: a 0-frame phone still exists); boundaries once."""
        if self.spec.rendering == "mean":  # a phone never seen in training gets the overall mean
            fallback = max(1, int(round(np.mean(list(self.mean_frames.values())))))
            per_phone = [self.mean_frames.get(p, fallback) for word in row["phones"] for p in word]
        else:
            per_phone = rendering["frames"]
        counts = np.maximum(1, np.asarray(per_phone, dtype=np.int64))
        if self.cfg.word_boundaries:  # boundary tokens carry no duration
            full = np.ones(len(ids), dtype=np.int64)
            full[ids != self.index[BOUNDARY]] = counts
            counts = full
        out = np.repeat(ids, counts)
        return _dedup(out) if self.cfg.dedup_units else out

    def _speech(self, units: np.ndarray, rendering: dict) -> np.ndarray:
        """Units inside the phone span only: leading and trailing silence are not in phone-repeat either."""
        start = int(frame_index(rendering["start_ms"][0], self.unit_ms))
        end = int(frame_index(rendering["start_ms"][-1] + rendering["durations_ms"][-1], self.unit_ms))
        return self.encode_units(units[start:end])

    def encode_units(self, units: np.ndarray) -> np.ndarray:
        """Unit ids → token ids (whole, as given: a released file has no alignment to trim silence by)."""
        out = np.asarray(units, dtype=np.int64) + 1
        return _dedup(out) if self.cfg.dedup_units else out

    def decode(self, ids) -> list[str]:
        return [self.vocab[i] for i in ids]


def _dedup(ids: np.ndarray) -> np.ndarray:
    if len(ids) == 0:
        return ids
    keep = np.ones(len(ids), dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    return ids[keep]


def mean_frames(rendering_rows, corpus_rows) -> dict[str, int]:
    """Each phone type's mean 50 Hz frames over the given (train) utterances, rounded, at least 1."""
    total: dict[str, float] = {}
    count: dict[str, int] = {}
    for crow, rrow in zip(corpus_rows, rendering_rows):
        flat = [p for word in crow["phones"] for p in word]
        for p, d in zip(flat, rrow["durations_ms"]):
            total[p] = total.get(p, 0.0) + d
            count[p] = count.get(p, 0) + 1
    return {p: max(1, int(round(total[p] / count[p] / 20))) for p in total}
