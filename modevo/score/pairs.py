"""Minimal-pair scoring of one rendered task: model scores per layer, the baselines, item scores.

An item scores 1 when the correct member gets the higher log-probability, 0 when the incorrect one does,
0.5 when the two are within the tie tolerance. The sequence layout mirrors training, where utterances are
packed with the separator between them: [SEP] context-utterance SEP ... SEP continuation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modevo.score.config import ScoringConfig
from modevo.score.logprob import for_precision, score_shared_prefix, score_spans
from modevo.corpus.normalize import normalize
from modevo.tasks.base import TaskSet
from modevo.tasks.render import RenderedTask
from modevo.views.registry import SEP_ID


def item_scores(correct: np.ndarray, incorrect: np.ndarray, tol: float) -> np.ndarray:
    """(…) scores of the correct and incorrect members → 1 / 0.5 / 0 per item (ties within tol)."""
    diff = np.asarray(correct, dtype=np.float64) - np.asarray(incorrect, dtype=np.float64)
    return np.where(np.abs(diff) <= tol, 0.5, (diff > 0).astype(np.float64))


def shorter_wins(n_correct: np.ndarray, n_incorrect: np.ndarray) -> np.ndarray:
    """The length baseline: the member with fewer tokens in this view wins; equal lengths tie."""
    return item_scores(-np.asarray(n_correct, float), -np.asarray(n_incorrect, float), 0.0)


def word_overlap(task: TaskSet) -> np.ndarray:
    """(n,) the context baseline: the ending sharing the larger fraction of its word types with the context
    wins (ties 0.5); NaN for pairs without context. Words are the corpus stage's normalised words, so the
    baseline is the same for every view."""
    def words(text: str) -> set[str]:
        spoken, _ = normalize(text)
        return set(spoken.split()) if spoken else set()

    out = np.full(len(task), np.nan)
    for k, p in enumerate(task.pairs):
        if not p.context:
            continue
        ctx = set().union(*(words(t) for t in p.context))
        share = [len(w & ctx) / max(1, len(w)) for w in (words(p.correct), words(p.incorrect))]
        out[k] = item_scores(share[0], share[1], 0.0)
    return out


def sequences(rt: RenderedTask, cfg: ScoringConfig, items: np.ndarray | None = None
              ) -> tuple[list[np.ndarray], list[int], np.ndarray]:
    """The 2·n scored sequences of the rendered pairs (correct then incorrect of each), the number of
    scored tokens in each, and the indices of the pairs they belong to; `items`: only these rendered pairs."""
    seqs, scored, owner = [], [], []
    end = [SEP_ID] if cfg.score_end else []
    for i in (np.flatnonzero(rt.rendered) if items is None else items):
        ctx = rt.context[i]
        for cont in (rt.correct[i], rt.incorrect[i]):
            seq = np.concatenate([[SEP_ID], ctx, cont, end]).astype(np.int64)
            seqs.append(seq)
            scored.append(len(seq) - 1 if cfg.context == "whole" else len(cont) + len(end))
        owner.append(i)
    return seqs, scored, np.asarray(owner, dtype=np.int64)


@dataclass
class PairScores:
    """Everything per item of one task in one view/rendering, for one checkpoint (rendered items only)."""

    index: np.ndarray  # (m,) positions in the task of the rendered pairs
    sum_correct: np.ndarray  # (m, L+1) fp64
    sum_incorrect: np.ndarray  # (m, L+1)
    n_correct: np.ndarray  # (m,) scored tokens
    n_incorrect: np.ndarray  # (m,)

    def values(self, measure: str) -> tuple[np.ndarray, np.ndarray]:
        if measure == "sum":
            return self.sum_correct, self.sum_incorrect
        return self.sum_correct / self.n_correct[:, None], self.sum_incorrect / self.n_incorrect[:, None]

    def items(self, measure: str, tol: float) -> np.ndarray:
        """(m, L+1) item scores per layer for the measure ('sum' or 'mean')."""
        c, i = self.values(measure)
        return item_scores(c, i, tol)


def shares_context(rt: RenderedTask, cfg: ScoringConfig) -> bool:
    """Whether the pairs' two members continue one scored-once context (tasks with context, scoring the
    continuation only): then the context runs through the model once per pair, not once per member."""
    return cfg.context == "continuation" and any(len(rt.context[i]) for i in np.flatnonzero(rt.rendered))


def score_model(model, rt: RenderedTask, cfg: ScoringConfig, progress: bool = False,
                items: np.ndarray | None = None) -> PairScores:
    """Scores of the rendered pairs, or of `items` (ascending indices of rendered pairs: one rank's share).
    A pair's scores do not depend on which other pairs are scored with it (batch-size invariance, see
    logprob.py), so shares scored apart and merged (merge_pair_scores) equal scoring all at once."""
    desc = f"score {rt.task.name}" + (f"@{rt.rendering}" if rt.rendering else "")
    model = for_precision(model, cfg.precision)
    if items is not None:
        items = np.asarray(items, dtype=np.int64)
        if len(items) and not rt.rendered[items].all():
            raise ValueError("score_model: items must be rendered pairs")
    if shares_context(rt, cfg):  # decided on the whole task, so every share takes the same path
        end = [SEP_ID] if cfg.score_end else []
        owner = (np.flatnonzero(rt.rendered) if items is None else items).astype(np.int64)
        prefixes = [np.concatenate([[SEP_ID], rt.context[i]]).astype(np.int64) for i in owner]
        conts = [tuple(np.concatenate([c, end]).astype(np.int64) for c in (rt.correct[i], rt.incorrect[i]))
                 for i in owner]
        spans = score_shared_prefix(model, prefixes, conts, batch_size=cfg.batch_size, progress=progress, desc=desc)
    else:
        seqs, scored, owner = sequences(rt, cfg, items)
        spans = score_spans(model, seqs, scored, batch_size=cfg.batch_size, progress=progress, desc=desc)
    sums = spans.sums.reshape(len(owner), 2, -1) if len(owner) else np.zeros((0, 2, 1))
    counts = spans.counts.reshape(len(owner), 2) if len(owner) else np.zeros((0, 2), np.int64)
    return PairScores(owner, sums[:, 0], sums[:, 1], counts[:, 0], counts[:, 1])


def merge_pair_scores(parts: list[PairScores]) -> PairScores:
    """Shares of one task's pairs (scored by different ranks) → the PairScores of all of them, in index
    order, as score_model gives when it scores them together."""
    full = [p for p in parts if len(p.index)]
    if not full:
        return parts[0]
    index = np.concatenate([p.index for p in full])
    order = np.argsort(index, kind="stable")
    cat = lambda name: np.concatenate([getattr(p, name) for p in full])[order]  # noqa: E731
    return PairScores(index[order], cat("sum_correct"), cat("sum_incorrect"), cat("n_correct"), cat("n_incorrect"))


def score_ngram(lm, rt: RenderedTask, cfg: ScoringConfig) -> np.ndarray:
    """(m,) item scores of an n-gram LM on the rendered pairs, same sequences and measure as the model."""
    out = []
    for i in np.flatnonzero(rt.rendered):
        vals = []
        for cont in (rt.correct[i], rt.incorrect[i]):
            if cfg.context == "whole":
                seq, ctx = np.concatenate([rt.context[i], cont]), None
            else:
                seq, ctx = cont, rt.context[i] if len(rt.context[i]) else None
            lp = lm.logprobs(np.concatenate([seq, [SEP_ID]]) if cfg.score_end else seq, context=ctx)
            vals.append(lp.sum() if cfg.headline == "sum" else lp.mean())
        out.append(vals)
    arr = np.asarray(out, dtype=np.float64).reshape(-1, 2)
    return item_scores(arr[:, 0], arr[:, 1], cfg.tie_tolerance)
