"""The corpus stage's config: where text comes from, how sentences are kept, split and stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modevo.config import require, require_name
from modevo.corpus.render_config import SpeechConfig


@dataclass
class RecordingsConfig:
    """Real read speech as the corpus source: one row per utterance (its transcript), with its audio and,
    when given, a forced alignment (modevo.corpus.speech_sources, modevo.corpus.alignments)."""

    # librispeech: corpus roots laid out <root>/<speaker>/<chapter>/<utt>.flac + <speaker>-<chapter>.trans.txt
    # lhotse: CutSet manifests (.jsonl / .jsonl.gz; LibriHeavy ships these), or one RecordingSet and one
    # SupervisionSet manifest (recordings first), read lazily
    format: Literal["librispeech", "lhotse"] = "librispeech"
    paths: list[str] = field(default_factory=list)
    # Forced alignments: folders or files of MFA TextGrids (<utt>.TextGrid, words + phones tiers) and/or
    # Kaldi phone CTM files (utt channel start dur phone). Empty: lhotse supervisions' own alignments when
    # present, else none (text and phone views work; frame views refuse).
    alignments: list[str] = field(default_factory=list)
    # The document (the unit held-out chunks are drawn from): librispeech: the chapter; lhotse: "recording"
    # (its recording id), "speaker", or the name of a custom field of the supervision or cut ("book")
    document: str = "recording"
    # An utterance whose alignment and audio lengths differ by more than this is a counted skip
    length_tolerance_ms: float = 100.0
    max_utterances: int | None = None  # the first N utterances in source order (tests, pilots)
    utterances_per_shard: int = 500  # lhotse: whole documents, about this many utterances per shard

    def __post_init__(self):
        require(len(self.paths) > 0, "source.recordings.paths must name at least one corpus root or manifest")
        require(self.length_tolerance_ms >= 0, "length_tolerance_ms must be >= 0")
        require(self.max_utterances is None or self.max_utterances > 0, "max_utterances must be positive")
        require(self.utterances_per_shard > 0, "utterances_per_shard must be positive")
        require(bool(self.document.strip()), "document must name a field")


@dataclass
class SourceConfig:
    # Text files or folders of .txt files; "builtin:novels" is the vendored public-domain subset.
    paths: list[str] = field(default_factory=lambda: ["builtin:novels"])
    # Or a `datasets` dataset: a local folder saved with save_to_disk, a local json/parquet/text file,
    # or a hub name (works only with a network). When set, `paths` is ignored.
    dataset: str | None = None
    dataset_split: str = "train"
    text_column: str = "text"
    docs_per_shard: int = 200  # datasets rows (documents) per shard
    max_documents: int | None = None  # take the first N documents (sorted by path)
    # Keep at most N sentences of each document, starting at `start_sentence` (skips title pages).
    start_sentence: int = 0
    max_sentences_per_document: int | None = None
    # Or real speech (audio + transcripts, optionally aligned): one utterance per row; `paths`, `dataset`
    # and the sentence limits above are then ignored.
    recordings: RecordingsConfig | None = None

    def __post_init__(self):
        require(self.docs_per_shard > 0, "docs_per_shard must be positive")
        require(self.start_sentence >= 0, "start_sentence must be >= 0")
        require(self.max_documents is None or self.max_documents > 0, "max_documents must be positive")
        require(self.max_sentences_per_document is None or self.max_sentences_per_document > 0,
                "max_sentences_per_document must be positive")


@dataclass
class TextConfig:
    min_words: int = 1
    max_words: int = 60  # longer sentences are skipped (reason too_long): they would not fit a context
    max_chars: int = 600  # of the written sentence, before normalisation

    def __post_init__(self):
        require(self.min_words > 0, "min_words must be positive")
        require(self.max_words >= self.min_words, "max_words must be >= min_words")
        require(self.max_chars > 0, "max_chars must be positive")


@dataclass
class SplitConfig:
    chunk_sentences: int = 20  # contiguous sentences per chunk; chunks are the unit of assignment
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 0

    def __post_init__(self):
        require(self.chunk_sentences > 0, "chunk_sentences must be positive")
        require(0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1, "fractions must be in [0, 1)")
        require(self.valid_fraction + self.test_fraction < 1, "valid_fraction + test_fraction must be < 1")


@dataclass
class CorpusConfig:
    name: str = "default"
    source: SourceConfig = field(default_factory=SourceConfig)
    text: TextConfig = field(default_factory=TextConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)  # renderings: keyed separately from text
    cache_dir: str = "cache"  # relative to the working directory; MODEVO_CACHE overrides it
    num_proc: int = 2  # worker processes; does not change the output

    def __post_init__(self):
        require(self.num_proc > 0, "num_proc must be positive")
        require_name(self.name, "name")  # a folder name (alignments/<name>-<aligner>)


# Fields that change how the build runs but not what it writes: left out of the cache key.
RUNTIME_ONLY = ("cache_dir", "num_proc", "name")
# Fields of later sub-stages (renderings) that have their own cache keys: left out of the text key.
TEXT_KEY_EXCLUDES = RUNTIME_ONLY + ("speech",)
