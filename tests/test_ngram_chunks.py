"""The n-gram baseline fitted shard by shard (chunks of whole utterances, counts merged) equals the one-shot
fit exactly; the reference below is the one-shot estimator as it was before chunked fitting existed."""

import numpy as np
import pytest

from modevo.errors import InputError
from modevo.score.ngram import NGramLM, stream_chunks


def _reference_fit(tokens, offsets, V, order, discount=None, end_token=False):
    """The pre-chunking NGramLM.fit body (validation left out): every count from one padded stream."""
    from modevo.score.ngram import _discounts

    tokens, offsets = np.asarray(tokens).astype(np.int64), np.asarray(offsets).astype(np.int64)
    pad, e, n_utt = order - 1, int(end_token), len(offsets) - 1
    utt = np.repeat(np.arange(n_utt), np.diff(offsets))
    events = np.arange(len(tokens)) + pad * (utt + 1) + e * utt
    stream = np.zeros(len(tokens) + (pad + e) * n_utt, np.int64)
    stream[events] = tokens
    if end_token:
        i = np.arange(n_utt)
        events = np.concatenate([events, offsets[1:] + pad * (i + 1) + i])
    key = np.zeros(len(events), np.int64)
    for j in range(order):
        key = key * V + stream[events - pad + j]
    keys, raw = np.unique(key, return_counts=True)
    counts, tables, discounts = raw, [], []
    for k in range(order, 0, -1):
        if k < order:
            keys, inv = np.unique(keys % V**k, return_inverse=True)
            cont = np.bincount(inv)
            raw = np.bincount(inv, weights=raw).astype(np.int64)
            counts = cont if k == 1 else np.where(keys < V ** (k - 1), raw, cont)
        d = _discounts(counts) if discount is None else np.full(3, float(discount))
        hist, hinv = np.unique(keys // V, return_inverse=True)
        denom = np.bincount(hinv, weights=counts)
        sub = np.minimum(d[np.minimum(counts, 3) - 1], counts)
        alpha = (counts - sub) / denom[hinv]
        gamma = np.bincount(hinv, weights=sub) / denom
        tables.append((keys, alpha, hist, gamma))
        discounts.append(d)
    return NGramLM(order, V, np.array(discounts[::-1]), tables[::-1], bool(end_token))


def _random_corpus(seed, n=400, V=30):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 12, size=n)  # empty utterances included
    zipf = np.minimum(rng.zipf(1.5, size=int(lengths.sum())), V - 1).astype(np.int64)  # ids 1..V-1
    return zipf, np.r_[0, np.cumsum(lengths)].astype(np.int64), V


def _stream(tokens, offsets):
    """The views' split stream: each utterance followed by the separator 0."""
    out = np.zeros(len(tokens) + len(offsets) - 1, np.uint16)
    pos = 0
    for a, b in zip(offsets[:-1], offsets[1:]):
        out[pos:pos + b - a] = tokens[a:b]
        pos += b - a + 1
    return out


def _assert_same(a, b):
    assert a.order == b.order and a.vocab_size == b.vocab_size and a.end_token == b.end_token
    np.testing.assert_array_equal(a.discounts, b.discounts)
    for ta, tb in zip(a.tables, b.tables, strict=True):
        for x, y in zip(ta, tb, strict=True):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("end_token", [False, True])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_equals_reference(seed, order, end_token):
    tokens, offsets, V = _random_corpus(seed)
    _assert_same(NGramLM.fit(tokens, offsets, V, order=order, end_token=end_token),
                 _reference_fit(tokens, offsets, V, order, end_token=end_token))


@pytest.mark.parametrize("chunk_tokens", [1, 7, 64, 10_000])
@pytest.mark.parametrize("end_token", [False, True])
@pytest.mark.parametrize("order", [1, 3])
def test_chunked_stream_fit_is_identical(chunk_tokens, order, end_token):
    tokens, offsets, V = _random_corpus(3)
    stream = _stream(tokens, offsets)
    ref = _reference_fit(tokens, offsets, V, order, end_token=end_token)
    lm = NGramLM.fit_chunks(stream_chunks(stream, chunk_tokens), V, order=order, end_token=end_token)
    _assert_same(lm, ref)
    seq = tokens[:20]
    np.testing.assert_array_equal(lm.logprobs(seq), ref.logprobs(seq))


def test_chunks_cut_at_separators_only():
    tokens, offsets, V = _random_corpus(5, n=50)
    stream = _stream(tokens, offsets)
    got = list(stream_chunks(stream, 5))
    assert len(got) > 1
    joined_t = np.concatenate([t for t, _ in got])
    np.testing.assert_array_equal(joined_t, tokens)
    assert sum(len(o) - 1 for _, o in got) == len(offsets) - 1
    for t, o in got:
        assert o[0] == 0 and o[-1] == len(t)


def test_fixed_discount_and_merging_many_small_chunks():
    tokens, offsets, V = _random_corpus(7, n=2000)
    ref = _reference_fit(tokens, offsets, V, 3, discount=0.5)
    lm = NGramLM.fit_chunks(stream_chunks(_stream(tokens, offsets), 3), V, order=3, discount=0.5, merge_every=16)
    _assert_same(lm, ref)


def test_stream_errors_are_one_line():
    with pytest.raises(InputError, match="must end with the separator"):
        list(stream_chunks(np.array([1, 2, 0, 3], np.uint16), 2))
    with pytest.raises(InputError, match="no tokens to count"):
        NGramLM.fit_chunks(stream_chunks(np.zeros(3, np.uint16), 2), 5)
