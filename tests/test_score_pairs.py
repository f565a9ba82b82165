"""The scorer against the model contract: hand-built models with known answers, the last layer is the
model's own output, and scores are identical for any batch size."""

import numpy as np
import pytest
import torch
from torch import nn

from modevo.score.config import ScoringConfig
from modevo.score.logprob import score_spans
from modevo.score.pairs import item_scores, score_model, score_ngram, shorter_wins
from modevo.tasks.base import Pair, TaskSet
from modevo.tasks.render import RenderedTask
from modevo.train.model import GPT
from modevo.train.model_config import ModelConfig

V = 8


class ContractModel(nn.Module):
    """Honours the contract with fixed next-token scores: every position favours `preferred` (or none)."""

    def __init__(self, preferred: int | None, n_layer: int = 2):
        super().__init__()
        self.preferred, self.n_layer = preferred, n_layer
        self.dummy = nn.Parameter(torch.zeros(1))

    def lens(self, h):
        logits = torch.zeros(*h.shape[:-1], V)  # uniform
        if self.preferred is not None:
            logits[..., self.preferred] = 5.0
        return logits

    def forward(self, ids, return_hidden=False):
        h = torch.zeros(*ids.shape, 4)
        hiddens = [h] * (self.n_layer + 1)
        logits = self.lens(hiddens[-1])
        return (logits, hiddens) if return_hidden else logits


def rendered(pairs: list[tuple[list[int], list[int]]], context=None) -> RenderedTask:
    task = TaskSet("toy", tuple(Pair(str(i), f"c{i}", f"i{i}") for i in range(len(pairs))))
    n = len(pairs)
    ctx = [np.asarray(context or [], dtype=np.int64)] * n
    return RenderedTask(task=task, view="toy", rendering=None, correct=[np.asarray(c) for c, _ in pairs],
                        incorrect=[np.asarray(i) for _, i in pairs], context=ctx, skipped=[""] * n,
                        in_vocab=np.ones(n, bool), key="k")


def test_a_model_that_prefers_the_correct_item_scores_one():
    rt = rendered([([1, 1, 1], [2, 1, 1]), ([1], [3]), ([3, 1, 1, 1], [3, 1, 2, 1])])
    ps = score_model(ContractModel(preferred=1), rt, ScoringConfig())
    for measure in ("sum", "mean"):
        assert np.all(ps.items(measure, 1e-4) == 1.0)
    assert ps.sum_correct.shape == (3, 3)  # (items, L+1)


def test_a_uniform_model_ties_on_equal_lengths_and_prefers_the_shorter():
    equal = rendered([([1, 2, 3], [3, 2, 1]), ([4], [5])])
    ps = score_model(ContractModel(preferred=None), equal, ScoringConfig())
    assert np.all(ps.items("sum", 1e-4) == 0.5)
    assert np.all(ps.items("mean", 1e-4) == 0.5)
    unequal = rendered([([1, 2], [3, 2, 1]), ([4, 4, 4], [5])])
    ps = score_model(ContractModel(preferred=None), unequal, ScoringConfig())
    assert ps.items("sum", 1e-4)[:, -1].tolist() == [1.0, 0.0]  # the shorter member wins under sum
    assert ps.items("sum", 1e-4)[:, -1].tolist() == shorter_wins(ps.n_correct, ps.n_incorrect).tolist()
    assert np.all(ps.items("mean", 1e-4) == 0.5)  # per token they are equal
    assert np.allclose(ps.sum_correct[:, -1], -np.log(V) * np.array([2, 3]))


def test_item_scores_and_ties():
    assert item_scores([1.0, 0.0, 2.0], [0.0, 1.0, 2.00001], 1e-4).tolist() == [1.0, 0.0, 0.5]
    assert shorter_wins([1, 3, 2], [2, 1, 2]).tolist() == [1.0, 0.0, 0.5]


def test_context_is_conditioned_on_not_scored():
    rt = rendered([([1, 1], [2, 2])], context=[3, 3, 0])
    ps = score_model(ContractModel(preferred=None), rt, ScoringConfig())
    assert ps.n_correct.tolist() == [2]
    whole = score_model(ContractModel(preferred=None), rt, ScoringConfig(context="whole"))
    assert whole.n_correct.tolist() == [5]  # context (with its separator) + continuation


def _gpt(d_model=64, n_layer=2, vocab=50, seed=0):
    torch.manual_seed(seed)
    return GPT(ModelConfig(n_layer=n_layer, n_head=4, n_kv_head=2, d_model=d_model, vocab_size=vocab,
                           max_seq_len=256)).eval()


def _random_sequences(n, vocab, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [np.concatenate([[0], rng.integers(1, vocab, int(rng.integers(2, 90)))]) for _ in range(n)]
    return seqs, [int(rng.integers(1, len(s))) for s in seqs]


def test_last_layer_is_the_models_own_output():
    model = _gpt()
    seqs, scored = _random_sequences(20, 50)
    spans = score_spans(model, seqs, scored, batch_size=5)
    assert spans.sums.shape == (20, 3)
    with torch.no_grad():
        for k in (0, 7, 19):
            lp = torch.log_softmax(model(torch.as_tensor(seqs[k])[None])[0], -1).double()
            n = len(seqs[k])
            direct = sum(lp[p - 1, seqs[k][p]].item() for p in range(n - scored[k], n))
            assert spans.sums[k, -1] == pytest.approx(direct, abs=1e-4)
            # and the lens on the embedding output is layer 0
            _, hid = model(torch.as_tensor(seqs[k])[None], return_hidden=True)
            lp0 = torch.log_softmax(model.lens(hid[0])[0], -1).double()
            assert spans.sums[k, 0] == pytest.approx(sum(lp0[p - 1, seqs[k][p]].item()
                                                         for p in range(n - scored[k], n)), abs=1e-4)


@pytest.mark.parametrize("d_model,vocab", [(64, 50), (128, 700)])
def test_scores_are_identical_for_any_batch_size(d_model, vocab):
    model = _gpt(d_model=d_model, vocab=vocab)
    seqs, scored = _random_sequences(90, vocab, seed=1)
    ref = score_spans(model, seqs, scored, batch_size=1)
    for bs in (7, 64):
        got = score_spans(model, seqs, scored, batch_size=bs)
        assert np.array_equal(got.sums, ref.sums), f"batch size {bs} changed a score"
        assert np.array_equal(got.counts, ref.counts)


def test_bad_sequences_are_refused():
    model = _gpt()
    with pytest.raises(ValueError, match="n_scored"):
        score_spans(model, [np.array([0, 1, 2])], [3])
    with pytest.raises(ValueError, match="context"):
        score_spans(model, [np.zeros(300, dtype=np.int64)], [5])


def test_ngram_baseline_scores_pairs():
    from modevo.score.ngram import NGramLM

    tokens = np.array([1, 2, 3] * 50, dtype=np.int64)
    offsets = np.arange(0, 151, 3)
    lm = NGramLM.fit(tokens, offsets, V, order=2)
    rt = rendered([([1, 2, 3], [3, 2, 1]), ([1, 2], [2, 1])])
    assert score_ngram(lm, rt, ScoringConfig()).tolist() == [1.0, 1.0]


def _contexts(n, vocab, seed=0, max_ctx=120, max_cont=40):
    rng = np.random.default_rng(seed)
    prefixes = [np.concatenate([[0], rng.integers(1, vocab, int(rng.integers(0, max_ctx)))]) for _ in range(n)]
    conts = [tuple(rng.integers(1, vocab, int(rng.integers(1, max_cont))) for _ in range(2)) for _ in range(n)]
    return prefixes, conts


@pytest.mark.parametrize("d_model,vocab", [(64, 50), (128, 700)])
def test_a_shared_context_scores_as_two_full_sequences(d_model, vocab):
    from modevo.score.logprob import score_shared_prefix

    model = _gpt(d_model=d_model, vocab=vocab)
    prefixes, conts = _contexts(40, vocab, seed=2)
    shared = score_shared_prefix(model, prefixes, conts, batch_size=8)
    seqs = [np.concatenate([p, c]) for p, pair in zip(prefixes, conts) for c in pair]
    full = score_spans(model, seqs, [len(c) for pair in conts for c in pair], batch_size=8)
    assert np.array_equal(shared.counts, full.counts)
    # fp32 rounding only: a continuation of up to 40 tokens differs by far less than the tie tolerance
    assert np.abs(shared.sums - full.sums).max() < 1e-4
    assert np.abs(full.sums).min() > 1.0  # the comparison is between real log-probabilities


def test_shared_context_scores_are_identical_for_any_batch_size():
    from modevo.score.logprob import score_shared_prefix

    model = _gpt(d_model=128, vocab=700)
    prefixes, conts = _contexts(60, 700, seed=3)
    ref = score_shared_prefix(model, prefixes, conts, batch_size=1)
    for bs in (7, 64):
        got = score_shared_prefix(model, prefixes, conts, batch_size=bs)
        assert np.array_equal(got.sums, ref.sums), f"batch size {bs} changed a score"


def test_a_task_with_context_is_scored_from_one_pass_over_it(monkeypatch):
    import modevo.score.pairs as pairs_mod

    model = _gpt()
    rng = np.random.default_rng(4)
    pairs = [(rng.integers(1, 50, 6), rng.integers(1, 50, 9)) for _ in range(5)]
    rt = rendered(pairs, context=list(rng.integers(1, 50, 30)))
    calls = []
    real = pairs_mod.score_shared_prefix
    monkeypatch.setattr(pairs_mod, "score_shared_prefix", lambda *a, **k: calls.append(1) or real(*a, **k))
    ps = score_model(model, rt, ScoringConfig())
    assert calls, "a task with context did not use the shared-context scorer"
    seqs, scored, _ = pairs_mod.sequences(rt, ScoringConfig())
    full = score_spans(model, seqs, scored).sums.reshape(5, 2, -1)
    assert np.abs(ps.sum_correct - full[:, 0]).max() < 1e-4
    assert np.abs(ps.sum_incorrect - full[:, 1]).max() < 1e-4
    assert ps.n_incorrect.tolist() == [9] * 5
    # context scored too ("whole"): no sharing, the sequences are scored whole
    calls.clear()
    score_model(model, rt, ScoringConfig(context="whole"))
    assert not calls


def test_the_shared_context_scorer_refuses_what_does_not_fit():
    from modevo.score.logprob import score_shared_prefix

    model = _gpt()  # max_seq_len 256
    with pytest.raises(ValueError, match="context 256"):
        score_shared_prefix(model, [np.zeros(200, np.int64)], [(np.ones(30, np.int64), np.ones(57, np.int64))])
    with pytest.raises(ValueError, match="at least"):
        score_shared_prefix(model, [np.zeros(0, np.int64)], [(np.ones(3, np.int64), np.ones(3, np.int64))])


def test_bf16_scoring_runs_the_blocks_in_bf16_and_the_lens_in_fp32():
    from modevo.score.evaluate import protocol
    from modevo.score.logprob import Bf16Trunk, for_precision

    model = _gpt()
    rng = np.random.default_rng(5)
    rt = rendered([(rng.integers(1, 50, 6), rng.integers(1, 50, 9)) for _ in range(6)],
                  context=list(rng.integers(1, 50, 20)))
    ref = score_model(model, rt, ScoringConfig())
    low = score_model(model, rt, ScoringConfig(precision="bf16"))
    gap = np.abs(low.sum_correct - ref.sum_correct).max()
    assert 0 < gap < 0.5  # bf16 rounding, not another model
    assert model.lm_head.weight.dtype == torch.float32  # the caller's model is left as it was
    trunk = for_precision(model, "bf16")
    assert isinstance(trunk, Bf16Trunk) and for_precision(trunk, "bf16") is trunk
    states, _ = trunk.hidden_states(torch.zeros((1, 4), dtype=torch.long))
    assert all(h.dtype == torch.float32 for h in states)
    assert "bf16 blocks" in protocol(ScoringConfig(precision="bf16"))["precision"]
    assert protocol(ScoringConfig(precision="bf16"))["hash"] != protocol(ScoringConfig())["hash"]
