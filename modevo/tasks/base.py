"""A task is a named set of minimal pairs: (correct, incorrect), optional context, breakdown labels.

Items are written text (sentences or words); each view renders them through the corpus stage's
normalisation and phones, so the model sees exactly what training looked like. `phones` lets an item give
its pronunciation directly (pseudowords without a trusted spelling route).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property

from modevo.cache import stable_hash
from modevo.errors import InputError


@dataclass(frozen=True)
class Pair:
    id: str
    correct: str
    incorrect: str
    context: tuple[str, ...] = ()  # sentences before the continuation (tSC); empty for sBLIMP and sWUGGY
    labels: tuple[tuple[str, str], ...] = ()  # breakdowns, e.g. (("field", "syntax"), ("paradigm", "..."))
    group: str = ""  # the bootstrap's cluster (a document for tSC); "" = the pair is its own cluster
    # pronunciations given by the source ([[phones of word 1], ...]); None: from the corpus stage's g2p
    correct_phones: tuple[tuple[str, ...], ...] | None = None
    incorrect_phones: tuple[tuple[str, ...], ...] | None = None
    # released audio (a file name inside the task's source["audio_dir"]): speech views encode this file
    # instead of synthesising the item; None: synthesised from the phones like every other item
    correct_audio: str | None = None
    incorrect_audio: str | None = None
    # whose voice synthesises the item: pairs sharing a speaker get the same voice, rate and pitch draw (a
    # ZeroSpeech gold voice); "" = a draw of the pair's own
    speaker: str = ""

    def label(self, key: str, default: str = "") -> str:
        return dict(self.labels).get(key, default)


@dataclass(frozen=True)
class TaskSet:
    """Pairs of one task with their provenance; `content_hash` is what every number carries."""

    name: str  # sblimp | swuggy | tsc-topic | ...
    pairs: tuple[Pair, ...]
    source: dict = field(default_factory=dict)  # where the items came from (path, subset, seed, counts)
    breakdowns: tuple[str, ...] = ()  # label keys reported separately, in order
    # lexical tasks: the incorrect member is a non-word by design, so "every word of the pair occurs in
    # training" is judged on the correct member (and context) alone
    incorrect_is_nonword: bool = False
    # "pair": accuracy is the mean over pairs; "group": the mean over groups of each group's mean over its
    # pairs (ZeroSpeech: pairs of one id averaged over voices first, then ids), as the official scorer does
    aggregate: str = "pair"
    # each member is a whole sequence (a released spoken story: context and ending in one file): a member
    # longer than the model's window keeps its last tokens instead of being skipped
    whole_sequence: bool = False

    def __post_init__(self):
        if not self.pairs:
            raise InputError(f"task {self.name} has no items")
        seen: set[str] = set()
        for p in self.pairs:
            if p.id in seen:
                raise InputError(f"task {self.name}: duplicate item id '{p.id}'")
            seen.add(p.id)

    @cached_property  # the pairs are immutable: hash once
    def content_hash(self) -> str:
        """Hash of the items only (ids, texts, context, labels, phones), not of where they were read from."""
        return stable_hash({"task": self.name, "pairs": [_hashed(p) for p in self.pairs]}, 16)

    @property
    def audio(self) -> str:
        """'released' when speech views read the task's own audio files, else 'synthesised'."""
        return "released" if any(p.correct_audio or p.incorrect_audio for p in self.pairs) else "synthesised"

    def __len__(self) -> int:
        return len(self.pairs)


# fields added after task sets were first hashed: left out while at their default, so the hash of every task
# made before them (and of every number that carries it) is unchanged
_LATER_FIELDS = {"correct_audio": None, "incorrect_audio": None, "speaker": ""}


def _hashed(p: Pair) -> dict:
    return {k: v for k, v in asdict(p).items() if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]}
