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
