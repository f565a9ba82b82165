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

    def stats(self) -> dict:
        """What encoding the view's utterances measured, for its manifest (most encoders: nothing)."""
        return {}

    def encode_item(self, row: dict, rendering: dict | None = None, units: np.ndarray | None = None) -> np.ndarray:
        """A task item's or a prompt's ids: as a training utterance, except where a view trains on a mixture
        and is tested on one modality (interleaved views hear items as speech only)."""
        return self.encode(row, rendering=rendering, units=units)

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


TEXT_MARK, SPEECH_MARK = "<text>", "<speech>"


class InterleavedEncoder(Encoder):
    """Word-level interleaving of text and speech in one vocabulary: [SEP] + text-bpe pieces + units + the two
    modality marks. A training utterance is cut at word boundaries into spans that alternate between the
    words' text-bpe pieces and the units of the same words (from the first word's first phone to the last
    word's last phone, pauses inside included); each span opens with its modality's mark. Span lengths (in
    words) are geometric, drawn from a generator seeded by (seed, utterance id): speech spans average
    mean_span_words, text spans mean_span_words·(1-s)/s, so a share s of the words is spoken on average
    (s = 1: speech only, in the joint vocabulary). Task items and prompts are speech only: the mark, then
    the utterance's units, as speech@R/T hears them."""

    def __init__(self, spec: ViewSpec, cfg: ViewsConfig, bpe_folder, n_units: int,
                 unit_rate_hz: float = DEFAULT_RATE_HZ):
        super().__init__(spec, cfg)
        self.sp = load_bpe(bpe_folder)
        self.unit_ms = frame_ms(unit_rate_hz)
        self.share, self.mean_words, self.seed = (cfg.interleave.speech_share, cfg.interleave.mean_span_words,
                                                  cfg.interleave.seed)
        pieces = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        self.unit_offset = 1 + len(pieces)  # unit u is token unit_offset + u
        self.vocab = [SEP] + pieces + [f"u{i}" for i in range(n_units)] + [TEXT_MARK, SPEECH_MARK]
        self._index()
        self.text_ids = np.arange(1, self.unit_offset)  # what a text-vocabulary readout ranks (modevo lens)
        self.counts = {"tokens": 0, "unit_tokens": 0, "words": 0, "spoken_words": 0}

    def text_pieces(self, words: list[str]) -> np.ndarray:
        """Token ids of these words as text-bpe writes them (word boundaries as the views setting says)."""
        text = (" " if self.cfg.word_boundaries else "").join(words)
        return np.asarray(self.sp.encode(text), dtype=np.int64) + 1

    def word_frames(self, row: dict, rendering: dict) -> np.ndarray:
        """(words, 2) unit index of each word's first frame and the frame after its last, at the units' rate."""
        n = np.cumsum([len(w) for w in row["phones"]])
        first, last = np.concatenate([[0], n[:-1]]), n - 1
        start, dur = np.asarray(rendering["start_ms"]), np.asarray(rendering["durations_ms"])
        return np.stack([frame_index(start[first], self.unit_ms), frame_index(start[last] + dur[last], self.unit_ms)],
                        axis=1).astype(np.int64)

    def spans(self, row: dict) -> list[tuple[str, int, int]]:
        """(modality, first word, end word) spans of one utterance, alternating, seeded by its id."""
        import zlib

        n = len(row["words"])
        if self.share >= 1.0 or self.share <= 0.0:
            return [("speech" if self.share >= 1.0 else "text", 0, n)]
        rng = np.random.default_rng([self.seed, zlib.crc32(row["id"].encode())])
        mean = {"speech": self.mean_words, "text": self.mean_words * (1 - self.share) / self.share}
        modality = "speech" if rng.random() < self.share else "text"
        out, w = [], 0
        while w < n:
            length = int(rng.geometric(1.0 / max(1.0, mean[modality])))
            out.append((modality, w, min(n, w + length)))
            w += length
            modality = "text" if modality == "speech" else "speech"
        return out

    def encode(self, row, rendering=None, units=None) -> np.ndarray:
        frames, units = self.word_frames(row, rendering), np.asarray(units, dtype=np.int64)
        pieces = []
        for modality, a, b in self.spans(row):
            if modality == "text":
                pieces += [[self.index[TEXT_MARK]], self.text_pieces(row["words"][a:b])]
            else:
                pieces += [[self.index[SPEECH_MARK]], units[frames[a, 0]:frames[b - 1, 1]] + self.unit_offset]
                self.counts["unit_tokens"] += len(pieces[-1])
                self.counts["spoken_words"] += b - a
        out = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, dtype=np.int64)
        self.counts["tokens"] += len(out)
        self.counts["words"] += len(row["words"])
        return out

    def stats(self) -> dict:
        """The mixture as built: the share of tokens that are units (train.budget=speech-tokens divides by
        it) and of words that were spoken."""
        c = self.counts
        return {"speech_token_share": c["unit_tokens"] / max(1, c["tokens"]),
                "speech_word_share": c["spoken_words"] / max(1, c["words"])}

    def encode_item(self, row, rendering=None, units=None) -> np.ndarray:
        return self.encode_units(span_units(units, rendering, self.unit_ms))

    def encode_units(self, units: np.ndarray) -> np.ndarray:
        """Speech only: the mark, then the units (a released file's units whole)."""
        return np.concatenate([[self.index[SPEECH_MARK]], np.asarray(units, dtype=np.int64) + self.unit_offset])


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
