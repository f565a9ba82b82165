"""Interpolated Kneser-Ney n-gram baseline: normalisation, a hand-computed case, a pure-Python reference,
persistence and input errors."""

from collections import Counter

import numpy as np
import pytest

from modevo.errors import InputError
from modevo.score.ngram import FALLBACK_DISCOUNT, NGramLM, fit_ngram


def flat(utts, dtype=np.uint16):
    """Utterance lists → (tokens, offsets) in the views layout."""
    tokens = np.array([t for u in utts for t in u], dtype)
    offsets = np.r_[0, np.cumsum([len(u) for u in utts])].astype(np.int64)
    return tokens, offsets


def toy_corpus(seed=0, n=300, V=8):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(1, V - 1, size=rng.integers(1, 7))) for _ in range(n)]  # id V-1 never seen


def probs_via_logprobs(lm, history):
    """(V,) P(w | history) for every id, one logprobs call per candidate."""
    return np.array([np.exp(lm.logprobs([w], context=history)[0]) for w in range(lm.vocab_size)])


@pytest.mark.parametrize("end_token", [False, True])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_next_token_distributions_sum_to_one(order, end_token):
    V = 8
    lm = NGramLM.fit(*flat(toy_corpus()), V, order=order, end_token=end_token)
    for history in ([], [1], [1, 2], [3, 4, 5], [7, 7], [6, 0]):
        p = probs_via_logprobs(lm, history)
        assert abs(p.sum() - 1) < 1e-9, history
        assert np.all(p > 0)
        np.testing.assert_allclose(np.exp(lm.next_logprobs(history)), p, rtol=1e-12)


def test_hand_computed_bigram():
    # Utterances [1 2], [1 3], [2 3]; V=4, order 2, one fixed discount D=0.5, no end event.
    # Bigrams with SEP padding: (0,1)×2, (1,2), (1,3), (0,2), (2,3).
    lm = fit_ngram(*flat([[1, 2], [1, 3], [2, 3]]), 4, order=2, discount=0.5)
    D = 0.5
    # Unigram continuation counts N1+(• w): 1 ← {0}; 2 ← {1, 0}; 3 ← {1, 2}. Total 5, three types.
    gamma1 = D * 3 / 5
    p1 = {0: gamma1 / 4, 1: (1 - D) / 5 + gamma1 / 4, 2: (2 - D) / 5 + gamma1 / 4, 3: (2 - D) / 5 + gamma1 / 4}
    assert p1[1] == pytest.approx(0.175) and p1[2] == pytest.approx(0.375)
    # P(1 | SEP): c(0,1)=2, c(0,2)=1 → (2-D)/3 + (2 distinct·D/3)·P1(1)
    p_1_sep = (2 - D) / 3 + (2 * D / 3) * p1[1]
    # P(3 | 1): c(1,2)=1, c(1,3)=1 → (1-D)/2 + (2·D/2)·P1(3)
    p_3_1 = (1 - D) / 2 + (2 * D / 2) * p1[3]
    np.testing.assert_allclose(np.exp(lm.logprobs([1, 3])), [p_1_sep, p_3_1], rtol=1e-12)
    assert lm.score([1, 3]) == pytest.approx(np.log(p_1_sep) + np.log(p_3_1), rel=1e-12)
    # seen history with an unseen continuation: only the backoff share, (1·D/1)·P1(1)
    assert np.exp(lm.logprobs([1], context=[2])[0]) == pytest.approx(D * p1[1], rel=1e-12)
    # unseen history (3 never precedes anything): the unigram distribution itself
    np.testing.assert_allclose(np.exp(lm.next_logprobs([3])), [p1[w] for w in range(4)], rtol=1e-12)


def reference_model(utts, V, order, end_token):
    """Dict-based interpolated modified KN written independently of the numpy code: P(w | history)."""
    seqs = [[0] * (order - 1) + list(map(int, u)) + ([0] if end_token else []) for u in utts]
    ends = [range(order - 1, len(s)) for s in seqs]
    raw = {k: Counter(tuple(s[i - k + 1:i + 1]) for s, r in zip(seqs, ends) for i in r) for k in range(1, order + 1)}
    counts = {order: raw[order]}
    for k in range(1, order):
        lefts = Counter(g[1:] for g in raw[k + 1])  # distinct seen (k+1)-grams per suffix
        counts[k] = {g: raw[k][g] if (k >= 2 and g[0] == 0) else lefts[g] for g in raw[k]}

    def discounts(cs):
        n = Counter(min(c, 5) for c in cs.values())
        n1, n2, n3, n4 = (n[i] for i in (1, 2, 3, 4))
        if min(n1, n2, n3, n4) > 0:
            y = n1 / (n1 + 2 * n2)
            d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
            if all(0 < di <= i + 1 for i, di in enumerate(d)):
                return d
        return (0.75, 0.75, 0.75)

    D = {k: discounts(counts[k]) for k in counts}

    def prob(history, w, k=order):
        if k == 0:
            return 1 / V
        h = tuple(history[len(history) - k + 1:]) if k > 1 else ()
        lower = prob(history, w, k - 1)
        seen = {g: c for g, c in counts[k].items() if g[:-1] == h}
        if not seen:
            return lower
        disc = {g: min(D[k][min(c, 3) - 1], c) for g, c in seen.items()}
        total = sum(seen.values())
        c = seen.get(h + (w,), 0)
        return (c - disc.get(h + (w,), 0)) / total + sum(disc.values()) / total * lower

    return prob, D


@pytest.mark.parametrize("end_token", [False, True])
def test_matches_reference_order3(end_token):
    V, utts = 8, toy_corpus(seed=1, n=120)
    lm = NGramLM.fit(*flat(utts), V, order=3, end_token=end_token)
    prob, D = reference_model(utts, V, 3, end_token)
    np.testing.assert_allclose(lm.discounts, [D[1], D[2], D[3]], rtol=1e-12)
    assert np.any(lm.discounts != FALLBACK_DISCOUNT), "the corpus should exercise modified discounts"
    for history in ([], [2], [1, 2], [3, 3], [7, 1], [5, 0]):
        padded = [0, 0] + history
        expected = [prob(padded, w) for w in range(V)]
        np.testing.assert_allclose(np.exp(lm.next_logprobs(history)), expected, rtol=1e-10)


def test_seen_sequence_beats_shuffled():
    rng = np.random.default_rng(2)
    utts = [[1, 2, 3, 4, 5, 6]] * 30 + [list(rng.integers(1, 9, size=6)) for _ in range(30)]
    for order in (2, 3):
        lm = NGramLM.fit(*flat(utts), 10, order=order)
        assert lm.score([1, 2, 3, 4, 5, 6]) > lm.score([4, 1, 6, 3, 5, 2]) + 3


def test_unseen_tokens_have_positive_probability():
    lm = NGramLM.fit(*flat([[1, 2, 3]] * 5), 50, order=3)
    lp = lm.logprobs([1, 49, 2, 0, 17])  # 49, 0 (SEP) and 17 never occur in training
    assert np.all(np.isfinite(lp)) and np.all(lp < 0)
    assert lp[1] > np.log(1e-6)


def test_order1_unigram_with_degenerate_counts():
    # counts 3, 2, 1, 1 on ids 1..4: n4 = 0, so modified discounts are degenerate → one D = 0.75
    V, N, D = 6, 7, FALLBACK_DISCOUNT
    lm = NGramLM.fit(*flat([[1, 1, 2], [1, 2, 3], [4]]), V, order=1)
    np.testing.assert_array_equal(lm.discounts, [[D, D, D]])
    backoff = D * 4 / N / V  # 4 seen types each give D to the uniform distribution
    expected = [backoff, (3 - D) / N + backoff, (2 - D) / N + backoff, (1 - D) / N + backoff,
                (1 - D) / N + backoff, backoff]
    np.testing.assert_allclose(np.exp(lm.next_logprobs()), expected, rtol=1e-12)
    # order 1 ignores history
    np.testing.assert_array_equal(lm.logprobs([1, 2, 5], context=[4, 4]), lm.logprobs([1, 2, 5]))


def test_save_load_roundtrip(tmp_path):
    lm = NGramLM.fit(*flat(toy_corpus(), dtype=np.int32), 8, order=3, end_token=True)
    path = tmp_path / "lm.bin"  # saved at exactly this path, no suffix added
    lm.save(path)
    again = NGramLM.load(path)
    assert (again.order, again.vocab_size, again.end_token) == (3, 8, True)
    np.testing.assert_array_equal(again.discounts, lm.discounts)
    for seq, ctx in (([1, 2, 3, 0], None), ([6, 7, 1], [2, 2, 3]), ([5], [])):
        np.testing.assert_array_equal(again.logprobs(seq, ctx), lm.logprobs(seq, ctx))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable n-gram model"):
        NGramLM.load(tmp_path / "junk.npz")


def test_context_changes_only_the_first_tokens():
    utts = [[1, 2, 3, 1, 2, 3]] * 10 + [[4, 5, 6, 4, 5, 6]] * 10
    lm = NGramLM.fit(*flat(utts), 8, order=3)
    seq = [3, 1, 2, 3, 4]
    plain, ctx = lm.logprobs(seq), lm.logprobs(seq, context=[1, 2])
    assert ctx[0] > plain[0] + 1  # "1 2" predicts 3
    assert ctx[1] != plain[1]
    np.testing.assert_array_equal(ctx[2:], plain[2:])  # beyond order-1 positions the history is the same


def _bad(kind):
    tokens, offsets = flat([[1, 2], [3]])
    if kind == "decreasing offsets":
        return NGramLM.fit(tokens, np.array([0, 2, 1, 3]), 5)
    if kind == "offsets end":
        return NGramLM.fit(tokens, np.array([0, 2]), 5)
    if kind == "id >= vocab":
        return NGramLM.fit(tokens, offsets, 3)
    if kind == "order 0":
        return NGramLM.fit(tokens, offsets, 5, order=0)
    if kind == "SEP inside":
        return NGramLM.fit(np.array([1, 0, 2]), np.array([0, 3]), 5)
    if kind == "key overflow":
        return NGramLM.fit(tokens, offsets, 2**16, order=4)
    if kind == "seq id":
        return NGramLM.fit(tokens, offsets, 5).logprobs([1, 5])


@pytest.mark.parametrize("kind,match", [
    ("decreasing offsets", "offsets decrease"), ("offsets end", "offsets must run from 0"),
    ("id >= vocab", "tokens holds id 3"), ("order 0", "order must be an integer ≥ 1"),
    ("SEP inside", "SEP"), ("key overflow", "63-bit"), ("seq id", "seq holds id 5")])
def test_bad_input_raises_one_line_input_error(kind, match):
    with pytest.raises(InputError, match=match) as err:
        _bad(kind)
    assert "\n" not in str(err.value)
