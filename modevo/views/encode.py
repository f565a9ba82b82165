"""Encoders: one corpus row (+ its rendering row or units) → token ids. One class per kind of encoding; a
view family (views/families.py) says which one it uses and with what.

Id 0 is the utterance separator in every view; real tokens start at 1. The text and phone views read the
same normalised words and phones the corpus stage wrote; word boundaries and stress follow ONE setting.
"""

from __future__ import annotations

import abc

import numpy as np

from modevo.corpus.phones import PHONES, VOWELS
from modevo.frames import DEFAULT_RATE_HZ, frame_index, frame_ms, phone_frames
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


def word_text(row: dict, cfg: ViewsConfig) -> str:
    """What text BPE reads: the words, joined by spaces only with boundaries on."""
    return (" " if cfg.word_boundaries else "").join(row["words"])


def phone_text(row: dict, cfg: ViewsConfig) -> str:
    """What phone BPE reads: one symbol per phone, words joined by spaces only with boundaries on."""
    sym = phone_symbols(phone_tokens(cfg))
    return (" " if cfg.word_boundaries else "").join("".join(sym[p] for p in word) for word in row_phones(row, cfg))


def bpe_text(row: dict, spec: ViewSpec, cfg: ViewsConfig) -> str:
    """The string sentencepiece sees for a BPE view (its family says which text that is)."""
    return spec.view_family.bpe_text(row, cfg)


class Encoder(abc.ABC):
    """Vocabulary and encode() of one view; frame-level views also need the rendering row or units."""

    vocab: list[str]

    def __init__(self, spec: ViewSpec, cfg: ViewsConfig):
        self.spec, self.cfg = spec, cfg
        self.item_inputs: dict = {"name": spec.name}  # what an item's ids depend on (the family sets it)

    def _index(self) -> None:
        self.index = {t: i for i, t in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    @abc.abstractmethod
    def encode(self, row: dict, rendering: dict | None = None, units: np.ndarray | None = None) -> np.ndarray:
        """One utterance's token ids (no separator)."""

    def decode(self, ids) -> list[str]:
        return [self.vocab[i] for i in ids]


class BpeEncoder(Encoder):
    """sentencepiece pieces of the family's BPE text (words for text-bpe, phone symbols for phone-bpe)."""

    def __init__(self, spec: ViewSpec, cfg: ViewsConfig, bpe_folder):
        super().__init__(spec, cfg)
        self.sp = load_bpe(bpe_folder)
        self.vocab = [SEP] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        self._index()

    def encode(self, row, rendering=None, units=None) -> np.ndarray:
        return np.asarray(self.sp.encode(bpe_text(row, self.spec, self.cfg)), dtype=np.int64) + 1


class CharEncoder(Encoder):
    """One token per character of the normalised text (a space between words only with boundaries on)."""

    def __init__(self, spec: ViewSpec, cfg: ViewsConfig):
        super().__init__(spec, cfg)
        self.vocab = [SEP] + list("abcdefghijklmnopqrstuvwxyz'") + ([" "] if cfg.word_boundaries else [])
        self._index()

    def encode(self, row, rendering=None, units=None) -> np.ndarray:
        text = row["text"] if self.cfg.word_boundaries else "".join(row["words"])
        return np.asarray([self.index[c] for c in text], dtype=np.int64)


class PhoneEncoder(Encoder):
    """One token per phone (a boundary token between words only with boundaries on)."""

    def __init__(self, spec: ViewSpec, cfg: ViewsConfig):
        super().__init__(spec, cfg)
        self.vocab = [SEP] + phone_tokens(cfg) + ([BOUNDARY] if cfg.word_boundaries else [])
        self._index()

    def encode(self, row, rendering=None, units=None) -> np.ndarray:
        ids = []
        for w, word in enumerate(row_phones(row, self.cfg)):
            if w and self.cfg.word_boundaries:
                ids.append(self.index[BOUNDARY])
            ids.extend(self.index[p] for p in word)
        return np.asarray(ids, dtype=np.int64)


class RepeatEncoder(PhoneEncoder):
    """Each phone repeated for its frames at the view's rate (≥1: a 0-frame phone still exists); boundaries
    once. Frames come from the rendering row's times, or with `mean_frames` from each phone type's mean."""

    def __init__(self, spec: ViewSpec, cfg: ViewsConfig, mean_frames: dict | None = None):
        super().__init__(spec, cfg)
        self.mean_frames = mean_frames

    def encode(self, row, rendering=None, units=None) -> np.ndarray:
        ids = super().encode(row)
        if self.mean_frames is not None:  # a phone never seen in training gets the overall mean
            fallback = max(1, int(round(np.mean(list(self.mean_frames.values())))))
            per_phone = [self.mean_frames.get(p, fallback) for word in row["phones"] for p in word]
        else:
            per_phone = phone_frames(rendering["start_ms"], rendering["durations_ms"], self.spec.rate_hz)
        counts = np.maximum(1, np.asarray(per_phone, dtype=np.int64))
        if self.cfg.word_boundaries:  # boundary tokens carry no duration
            full = np.ones(len(ids), dtype=np.int64)
            full[ids != self.index[BOUNDARY]] = counts
            counts = full
        out = np.repeat(ids, counts)
        return dedup(out) if self.cfg.dedup_units else out


class UnitEncoder(Encoder):
    """Speech units of the utterance's audio, inside its phone span; `collapse` (or the views setting
    dedup_units) collapses runs of one unit."""

    def __init__(self, spec: ViewSpec, cfg: ViewsConfig, n_units: int, unit_rate_hz: float = DEFAULT_RATE_HZ,
                 collapse: bool = False):
        super().__init__(spec, cfg)
        self.unit_ms = frame_ms(unit_rate_hz)
        self.collapse = collapse or cfg.dedup_units
        self.vocab = [SEP] + [f"u{i}" for i in range(n_units)]
        self._index()

    def encode(self, row, rendering=None, units=None) -> np.ndarray:
        """Units inside the phone span only: leading and trailing silence are not in phone-repeat either."""
        return self.encode_units(span_units(units, rendering, self.unit_ms))

    def encode_units(self, units: np.ndarray) -> np.ndarray:
        """Unit ids → token ids (whole, as given: a released file has no alignment to trim silence by)."""
        out = np.asarray(units, dtype=np.int64) + 1
        return dedup(out) if self.collapse else out


def span_units(units: np.ndarray, rendering: dict, unit_ms: float) -> np.ndarray:
    """The units from the first phone's start to the last phone's end (the rule's frame boundaries)."""
    start = int(frame_index(rendering["start_ms"][0], unit_ms))
    end = int(frame_index(rendering["start_ms"][-1] + rendering["durations_ms"][-1], unit_ms))
    return np.asarray(units)[start:end]


_UNIT_CHAR_BASE = 0x4E00  # CJK ideographs: 20,992 code points NFKC leaves alone, none a space


def unit_text(units: np.ndarray) -> str:
    """Units as one character each, the string unit BPE learns merges on (no spaces: units have no words)."""
    return "".join(chr(_UNIT_CHAR_BASE + int(u)) for u in units)


class UnitBpeEncoder(Encoder):
    """sentencepiece BPE over an utterance's unit string (its phone span, as the speech view)."""

    def __init__(self, spec: ViewSpec, cfg: ViewsConfig, bpe_folder, unit_rate_hz: float = DEFAULT_RATE_HZ):
        super().__init__(spec, cfg)
        self.unit_ms = frame_ms(unit_rate_hz)
        self.sp = load_bpe(bpe_folder)
        self.vocab = [SEP] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        self._index()

    def encode(self, row, rendering=None, units=None) -> np.ndarray:
        return self.encode_units(span_units(units, rendering, self.unit_ms))

    def encode_units(self, units: np.ndarray) -> np.ndarray:
        return np.asarray(self.sp.encode(unit_text(units)), dtype=np.int64) + 1


def dedup(ids: np.ndarray) -> np.ndarray:
    """Runs of one token collapsed to one."""
    if len(ids) == 0:
        return ids
    keep = np.ones(len(ids), dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    return ids[keep]


def mean_frames(rendering_rows, corpus_rows, rate_hz: float = DEFAULT_RATE_HZ) -> dict[str, int]:
    """Each phone type's mean frames at rate_hz over the given (train) utterances, rounded, at least 1."""
    total: dict[str, float] = {}
    count: dict[str, int] = {}
    for crow, rrow in zip(corpus_rows, rendering_rows):
        flat = [p for word in crow["phones"] for p in word]
        for p, d in zip(flat, rrow["durations_ms"]):
            total[p] = total.get(p, 0.0) + d
            count[p] = count.get(p, 0) + 1
    step = frame_ms(rate_hz)
    return {p: max(1, int(round(total[p] / count[p] / step))) for p in total}


def make_encoder(spec: ViewSpec, cfg: ViewsConfig, **resources) -> Encoder:
    """The encoder of a view given what it reads (bpe_folder, mean_frames, n_units, unit_rate_hz)."""
    return spec.view_family.encoder(spec, cfg, **resources)
