"""Settings every view shares, so a factor's two views differ only in what the factor names."""

from __future__ import annotations

from dataclasses import dataclass, field

from modevo.config import require


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
