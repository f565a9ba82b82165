"""Diversity and repetition of generated continuations (word lists): distinct-n and auto-BLEU.

A sampler can buy a good judge perplexity by repeating a safe phrase; these two say whether it did.

distinct-n (over a SET of continuations): the number of distinct n-grams over the total number of n-grams,
n-grams taken inside each continuation (never across two). 1 when no n-gram repeats; low when the set
keeps saying the same thing.

auto-BLEU (WITHIN one continuation): the idea is from the generative spoken language modelling literature
(Lakhotia et al. 2021, "On generative spoken language modeling from raw audio", TACL), which scores each
n-gram of a generated utterance by BLEU against the rest of the same utterance. For a single n-gram
hypothesis, clipped n-gram precision against the rest is 1 if that n-gram occurs there and 0 otherwise
(with no brevity penalty, which would only measure the rest's length), so what we implement is exactly:

    auto_bleu_n(u) = (1 / |NG_n(u)|) · Σ_{i} 1[ g_i ∈ NG_n(u) minus occurrence i ]

where NG_n(u) is the multiset of u's n-grams g_1..g_m (overlapping ones included): the share of n-gram
occurrences that occur again elsewhere in the same continuation. 0 for no repetition, near 1 for a
phrase said over and over. Undefined (nan) for a continuation shorter than n. Default n = 2, the order
that literature reports. Word error rate helpers live in generate/lexicon_decoder.py (edit_distance,
error_rate, word_error_rate).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from modevo.errors import InputError


def ngrams(words: Sequence, n: int) -> list[tuple]:
    """The overlapping n-grams of one sequence, in order."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n-gram order must be an integer ≥ 1 (got {n!r})")
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def distinct_n(continuations: Iterable[Sequence], n: int) -> float:
    """Distinct n-grams / total n-grams over a set of continuations (nan when there are no n-grams)."""
    counts = Counter(g for c in continuations for g in ngrams(c, n))
    total = sum(counts.values())
    return len(counts) / total if total else math.nan


def auto_bleu(words: Sequence, n: int = 2) -> float:
    """Share of the continuation's n-gram occurrences that occur again elsewhere in it (module doc)."""
    grams = ngrams(words, n)
    if not grams:
        return math.nan
    counts = Counter(grams)
    return sum(counts[g] >= 2 for g in grams) / len(grams)


def continuation_metrics(words: Sequence) -> dict:
    """Per-continuation values, for intervals over prompts (generate/summary.py): its length, its own
    distinct-1/2 (within it: a repetition measure) and auto-BLEU-2; nan where undefined (too short)."""
    return {"n_words": len(words), "distinct_1": distinct_n([words], 1), "distinct_2": distinct_n([words], 2),
            "auto_bleu_2": auto_bleu(words, 2)}
