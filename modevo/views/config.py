"""Settings every view shares, so a factor's two views differ only in what the factor names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from modevo.config import require


@dataclass
class InterleaveConfig:
    """interleaved@R/T: how training utterances mix text and speech (views/encode.py InterleavedEncoder)."""
    speech_share: float = 0.5  # expected share of each utterance's words given as speech units
    mean_span_words: float = 4.0  # mean words per speech span (text spans: scaled to give the share)
    seed: int = 0  # span draws: a generator per (seed, utterance id)

    def __post_init__(self):
        require(0.0 < self.speech_share <= 1.0, f"interleave.speech_share must be in (0, 1], got {self.speech_share}")
        require(self.mean_span_words >= 1.0, f"interleave.mean_span_words must be at least 1, got {self.mean_span_words}")


@dataclass
class ViewsConfig:
    # Word boundaries and stress are ONE setting for all text and phone views (recorded with each view).
    # Off by default: speech has no boundary tokens, so with boundaries on, phone→phone-repeat→speech would
    # change two things at once (length or variability, and boundaries).
    word_boundaries: bool = False
    stress: bool = False
    text_bpe_vocab: int = 4000
    # phone-bpe's vocabulary is searched so its tokens per word come closest to text-bpe's
    phone_bpe_candidates: list[int] = field(default_factory=lambda: [500, 1000, 2000, 4000, 8000])
    bpe_max_sentences: int = 200_000  # train-split sentences sentencepiece sees (it samples beyond this)
    # phone-repeat@mean takes each phone type's mean duration from this rendering's train split
    mean_from: str = "varied"
    dedup_units: bool = False  # collapse repeated units in frame-level views (a proposed remedy)
    tokenizer: str = "mel-kmeans"  # the speech tokenizer of speech-fixed / speech-varied
    interleave: InterleaveConfig = field(default_factory=InterleaveConfig)
    views: list[str] = field(default_factory=lambda: [
        "text-bpe", "text-char", "phone-bpe", "phone", "phone-repeat@mean", "phone-repeat@fixed",
        "phone-repeat@varied", "speech-fixed", "speech-varied"])

    def __post_init__(self):
        require(self.text_bpe_vocab >= 50, "text_bpe_vocab must be at least 50")
        require(len(self.phone_bpe_candidates) > 0 and min(self.phone_bpe_candidates) >= 50,
                "phone_bpe_candidates must be sizes of at least 50")
        require(self.bpe_max_sentences > 100,
                "bpe_max_sentences must be more than 100 (sentencepiece's smallest sample)")
        from modevo.views.registry import parse_view

        for v in self.views:
            parse_view(v, self.tokenizer)  # a misspelt view fails here, naming the closest


def keyed(views: dict) -> dict:
    """The views settings as a cache or run key sees them: blocks added after keys existed are left out at
    their defaults, so adding a setting does not invalidate every cached view item and trained run."""
    out = dict(views)
    if out.get("interleave") == dataclasses.asdict(InterleaveConfig()):
        out.pop("interleave")
    return out
