"""Word order (`word-order`): a held-out sentence against the same words in another order.

sBLIMP and tSC sit at chance for every condition at the cpu budget, so they cannot show factor B on syntax.
This task asks the simplest syntactic question a small model can answer: which of two orders of the SAME
words is the sentence? Both members hold exactly the same words, and so the same characters and the same
phones (a permutation of them): no view can win by length or by a word the other member lacks. It is
reported beside sBLIMP, never instead of it (BLiMP's phenomena are not word order).

Rules (`build_word_order`; every number below is a `WordOrderConfig` field):

- Source: the corpus rows of the held-out splits (valid and test by default; `train` is refused), sorted by
  (document, position), so the same rows in any order give the same task set (one content hash). One pair
  per sentence at most.
- A sentence qualifies if it has `min_words`..`max_words` words (4-20: 20 words at the 99th percentile of
  22.2 frames a word measured on the smoke renderings still fit a 512-frame window, so frame views render
  what text views do), is not a heading, is not a repeat of an earlier held-out sentence or of any training
  sentence (a memorised sentence would be recalled, not judged), and is stable under the renderer's
  normalisation. Each other sentence is counted in `source["skipped"]` under its first reason.
- The incorrect member: with a generator seeded by (seed, row id), a kind is drawn, "span-move" with
  probability `span_share` and "adjacent-swap" otherwise:
    * adjacent-swap: two neighbouring words trade places (w1 w2 → w2 w1), the pair drawn uniformly;
    * span-move: a span of `span_min`..`span_max` words moves 1..`max_shift` positions left or right past
      the words beside it (the span and the words it passes trade places as two blocks).
  A draw whose result is the same string (identical neighbours: "had had") is skipped and counted
  (`same_string`), not drawn again; so is a result that is itself a sentence of the corpus, any split
  (`swap_is_a_sentence`: "said he" is as good as "he said").
- The written members are the row's normalised words joined by spaces (what training saw); each member gives
  its phones explicitly (`Pair.correct_phones`, `incorrect_phones`: the row's phones with the stress digits
  of its `stress`, e.g. AH0), the incorrect one the same per-word phones permuted, so the renderer's g2p is
  never asked and both members are spoken from exactly the same phones.
- Breakdowns: `kind` (adjacent-swap, span-move); `distance`, how many positions the moved word or span
  travels (1 for a swap; the words it passes travel the span's length the other way); `word_class` of the
  words whose order changes (the span and the words it passes): "function" if all are closed-class words
  (the stoplist FUNCTION_WORDS below, plus any "n't" contraction), "content" if none are, else "mixed".
- `Pair.group` is the held-out chunk (`doc_id/chunk`): sentences of one chunk share a passage, so the
  bootstrap resamples chunks.
- `max_pairs`: a seeded sample of that many pairs, kept in corpus order (smoke keeps it small).

Not every reordering is ungrammatical ("she looked up quickly" / "she looked quickly up"): such pairs are
noise that lowers every view's ceiling alike. Building takes well under a second at the cpu scale (~2,500
held-out sentences), so nothing is cached.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from modevo.cache import stable_hash
from modevo.config import require
from modevo.corpus.normalize import normalize
from modevo.errors import InputError
from modevo.tasks.base import Pair, TaskSet

NAME = "word-order"
KINDS = ("adjacent-swap", "span-move")
HELD_OUT = ("valid", "test")
ROW_KEYS = ("id", "doc_id", "sentence_index", "chunk", "split", "text", "words", "phones", "stress")
SKIP_REASONS = ("too_short", "too_long", "heading", "repeated_text", "in_training", "renormalises",
                "same_string", "swap_is_a_sentence")

# closed-class English words (determiners, pronouns, prepositions, conjunctions, auxiliaries, modals,
# particles, wh-words), lowercase as the corpus normalises them; with "n't" contractions, "function" words
FUNCTION_WORDS = frozenset("""
a an the this that these those some any no every each either neither all both half such what which whose
i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself she her
hers herself it its itself they them their theirs themselves one ones who whom whoever whatever whichever
of in on at by for with from to into onto upon about above across after against along amid among around
as before behind below beneath beside besides between beyond down during except inside like near off out
outside over past since through throughout till toward towards under underneath until unto up within
without via per
and or but nor so yet if then than because though although unless whether while whereas where when why how
once lest
be am is are was were been being have has had having do does did done doing
will would shall should can could may might must ought
not never there here very too also just only even still now again ever quite rather
i'm i've i'll i'd you're you've you'll you'd he's he'll he'd she's she'll she'd it's it'll we're we've
we'll we'd they're they've they'll they'd that's there's here's what's who's let's
""".split())


@dataclass
class WordOrderConfig:
    min_words: int = 4  # a sentence qualifies with min_words..max_words words
    max_words: int = 20  # 20 words fit a 512-frame window at the 99th percentile of frames per word
    span_share: float = 0.5  # the share of sentences given a span-move (the rest: an adjacent swap)
    span_min: int = 2  # a moved span has span_min..span_max words
    span_max: int = 3
    max_shift: int = 3  # a span moves 1..max_shift positions
    max_pairs: int | None = None  # keep a seeded sample of this many pairs (in corpus order); None: all
    seed: int = 0
    splits: list[str] = field(default_factory=lambda: list(HELD_OUT))  # held-out splits the items come from

    def __post_init__(self):
        require(self.min_words >= 2, "min_words must be at least 2 (a swap needs two words)")
        require(self.max_words >= self.min_words, "max_words must be >= min_words")
        require(0.0 <= self.span_share <= 1.0, "span_share must be within [0, 1]")
        require(2 <= self.span_min <= self.span_max, "needs 2 <= span_min <= span_max")
        require(self.max_shift >= 1, "max_shift must be at least 1")
        require(self.span_share == 0 or self.min_words > self.span_min,
                "min_words must exceed span_min when span_share > 0 (a span needs a word to pass)")
        require(self.max_pairs is None or self.max_pairs > 0, "max_pairs must be positive (or null for all)")
        require(len(self.splits) > 0, "splits is empty: name at least one held-out split")
        require("train" not in self.splits,
                "splits must be held-out splits: 'train' would score training text")


def is_function_word(word: str) -> bool:
    return word in FUNCTION_WORDS or word.endswith("n't")


def word_class(words: list[str]) -> str:
    """'function' if every word is a closed-class word, 'content' if none is, else 'mixed'."""
    f = sum(is_function_word(w) for w in words)
    return "function" if f == len(words) else "content" if f == 0 else "mixed"


def with_stress(phones: list[str], stress: list[int]) -> tuple[str, ...]:
    """One word's phones with the corpus row's stress digits appended to its vowels: AH + 0 → AH0."""
    if len(phones) != len(stress):
        raise InputError(f"{len(phones)} phones but {len(stress)} stress marks")
    return tuple(p + str(s) if s >= 0 else p for p, s in zip(phones, stress))


def reorder(n: int, rng: random.Random, cfg: WordOrderConfig) -> tuple[list[int], str, int, list[int]]:
    """(the new order as indices into the n words, kind, distance, indices of the words whose order
    changes). Draws: the kind, then (swap) the pair, or (span) its length, shift, block start, direction."""
    span = cfg.span_share > 0 and n > cfg.span_min and rng.random() < cfg.span_share
    order = list(range(n))
    if not span:
        i = rng.randrange(n - 1)
        order[i], order[i + 1] = i + 1, i
        return order, "adjacent-swap", 1, [i, i + 1]
    size = rng.randint(cfg.span_min, min(cfg.span_max, n - 1))
    shift = rng.randint(1, min(cfg.max_shift, n - size))
    start = rng.randrange(n - size - shift + 1)  # the block of span + passed words: [start, start+size+shift)
    block = list(range(start, start + size + shift))
    if rng.random() < 0.5:  # the span is the block's head and moves right past `shift` words
        moved = block[size:] + block[:size]
    else:  # the span is the block's tail and moves left
        moved = block[shift:] + block[:shift]
    order[start:start + size + shift] = moved
    return order, "span-move", shift, block


def _held_out(rows: list[dict], splits: list[str]) -> tuple[list[dict], set[str], set[str]]:
    """(held-out rows sorted by document and position, every corpus text, the training texts)."""
    wanted = set(splits)
    held, texts, train = [], set(), set()
    for n, r in enumerate(rows):
        missing = [k for k in ROW_KEYS if k not in r]
        if missing:
            raise InputError(f"word-order: corpus row {n} ({r.get('id', 'no id')}) lacks {', '.join(missing)}")
        text = " ".join(r["words"])
        texts.add(text)
        if r["split"] == "train":
            train.add(text)
        if r["split"] in wanted:
            held.append(r)
    if not held:
        raise InputError(f"word-order: the corpus has no sentences in the held-out splits {', '.join(splits)}")
    held.sort(key=lambda r: (r["doc_id"], r["sentence_index"], r["id"]))
    return held, texts, train


def build_word_order(rows: list[dict], cfg: WordOrderConfig, cache: Path | None = None) -> TaskSet:
    """The word-order items from the corpus rows' held-out splits (see the module docstring for the rules).

    rows: corpus rows (dicts with id, doc_id, sentence_index, chunk, split, text, words, phones, stress;
    `heading` optional); `cache` is accepted for the registry's uniform call and unused (building is fast).
    """
    held, texts, train = _held_out(rows, cfg.splits)
    skipped = Counter({k: 0 for k in SKIP_REASONS})
    seen: set[str] = set()
    pairs: list[Pair] = []
    for r in held:
        words = list(r["words"])
        text = " ".join(words)
        if r.get("heading"):  # a title or contents line is not a sentence (corpus stage marks it)
            skipped["heading"] += 1
            continue
        if len(words) < cfg.min_words:
            skipped["too_short"] += 1
            continue
        if len(words) > cfg.max_words:
            skipped["too_long"] += 1
            continue
        if r.get("heading"):
            skipped["heading"] += 1
            continue
        if text in seen:
            skipped["repeated_text"] += 1
            continue
        seen.add(text)
        if text in train:
            skipped["in_training"] += 1
            continue
        if normalize(text) != (text, None):  # the renderer normalises again: it must keep these words
            skipped["renormalises"] += 1
            continue
        rng = random.Random(stable_hash([NAME, cfg.seed, r["id"]]))
        order, kind, distance, changed = reorder(len(words), rng, cfg)
        swapped = " ".join(words[i] for i in order)
        if swapped == text:
            skipped["same_string"] += 1
            continue
        if swapped in texts:
            skipped["swap_is_a_sentence"] += 1
            continue
        if normalize(swapped) != (swapped, None):
            skipped["renormalises"] += 1
            continue
        if len(r["phones"]) != len(words) or len(r["stress"]) != len(words):
            raise InputError(f"word-order: corpus row {r['id']} has {len(words)} words, {len(r['phones'])} "
                             f"phone lists and {len(r['stress'])} stress lists")
        try:
            phones = [with_stress(p, s) for p, s in zip(r["phones"], r["stress"])]
        except InputError as e:
            raise InputError(f"word-order: corpus row {r['id']}: {e}") from None
        pairs.append(Pair(
            id=str(r["id"]), correct=text, incorrect=swapped, group=f"{r['doc_id']}/{r['chunk']}",
            labels=(("kind", kind), ("distance", str(distance)),
                    ("word_class", word_class([words[i] for i in changed]))),
            correct_phones=tuple(phones), incorrect_phones=tuple(phones[i] for i in order)))
    built = len(pairs)
    if cfg.max_pairs is not None and built > cfg.max_pairs:
        keep = sorted(random.Random(stable_hash([f"{NAME}-sample", cfg.seed])).sample(range(built), cfg.max_pairs))
        pairs = [pairs[i] for i in keep]
    if not pairs:
        reasons = ", ".join(f"{k} {v}" for k, v in skipped.items() if v)
        raise InputError(f"word-order: no items from {len(held)} held-out sentences ({reasons})")
    kinds = Counter(p.label("kind") for p in pairs)
    source = {
        "corpus": "held-out sentences", "splits": list(cfg.splits), "seed": cfg.seed,
        "min_words": cfg.min_words, "max_words": cfg.max_words, "span_share": cfg.span_share,
        "span_words": [cfg.span_min, cfg.span_max], "max_shift": cfg.max_shift, "max_pairs": cfg.max_pairs,
        "held_out_sentences": len(held), "built": built, "skipped": dict(skipped),
        "dropped_by_max_pairs": built - len(pairs), "pairs": len(pairs), "kinds": {k: kinds[k] for k in KINDS},
        "chunks": len({p.group for p in pairs}), "documents": len({p.group.rsplit("/", 1)[0] for p in pairs}),
    }
    return TaskSet(name=NAME, pairs=tuple(pairs), source=source, breakdowns=("kind", "distance", "word_class"))
