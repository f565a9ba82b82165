"""The judge: a word n-gram LM that scores generated continuations by their perplexity, offline.

The paper judges Whisper transcripts with Llama-3.1-8B; offline we judge the continuations' words with an
interpolated modified Kneser-Ney word n-gram (order 3 by default) — modevo.score.ngram.NGramLM, the same
estimator the pair baselines use, over word ids — trained on the corpus's TRAIN split word sequences only.
Prompts (and so the continuations' contexts) come from the test split (generate/prompts.py), so the judge
never saw a prompt or a continuation: `assert_held_out` checks a set of rows against what it trained on.

Word ids: 0 is the sentence boundary (the n-gram's SEP), 1..|V| the train vocabulary in sorted order, and
|V|+1 is <unk>. <unk> never occurs in training, so its probability is what interpolated KN gives an unseen
id: only the uniform floor reached through every order's back-off mass, γ_3(h)·γ_2(h')·γ_1 / (|V|+2) (γ
of an unseen history is 1) — a heavy but finite penalty for each out-of-vocabulary word. All OOV words share that one
class, so the OOV rate is reported beside every perplexity: a judge that sees many OOV words is measuring
something else, and a view that invents non-words is only partly penalised for them.

Sentence handling, stated once: a sequence is scored after order-1 start-of-sentence boundaries, then the
context words (history only: the prompt, never scored), then its words one by one; with end=True the end
of sentence (the boundary id after the last word) is one more scored event and counts in n_scored —
pass end=True only for continuations the model ended itself (samples.jsonl `stopped_at_separator`), since
one cut at a length cap did not end there. Perplexity is corpus-level: exp(−Σ log p / Σ n_scored).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from modevo.cache import atomic_dir, atomic_write_json, file_digest, read_saved, stable_hash
from modevo.errors import InputError
from modevo.score.ngram import SEP, NGramLM

FORMAT = "modevo-word-judge-1"
UNK = "<unk>"
END = "</s>"  # the name of the end-of-sentence event in `next_word_probs`


def _check_words(words, what: str) -> list[str]:
    if isinstance(words, str) or not all(isinstance(w, str) and w for w in words):
        raise InputError(f"{what} must be a list of non-empty word strings (got {str(words)[:60]!r})")
    return list(words)


class WordJudge:
    """A word-level KN n-gram over the train split's words; `log_prob`, `perplexity`, save/load."""

    def __init__(self, vocab: list[str], lm: NGramLM, trained_on: str, train_ids: list[str],
                 n_train_words: int):
        self.vocab = vocab  # word i ↔ id i + 1
        self.lm = lm
        self.trained_on = trained_on  # sha256 of the train sentences (ids and words) in corpus order
        self.train_ids = train_ids  # ids of the rows it trained on: what `assert_held_out` refuses
        self.n_train_words = n_train_words
        self._ids = {w: i + 1 for i, w in enumerate(vocab)}
        self.unk_id = len(vocab) + 1

    @property
    def order(self) -> int:
        return self.lm.order

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def from_rows(cls, rows: Iterable[dict], order: int = 3) -> WordJudge:
        """From corpus rows: only those with split == "train" are used (the rest are skipped, not counted)."""
        sentences, ids = [], []
        digest = hashlib.sha256()
        for row in rows:
            if row.get("split") != "train":
                continue
            words = _check_words(row["words"], f"corpus row {row.get('id', '?')} words")
            if not words:
                continue
            sentences.append(words)
            ids.append(str(row.get("id", len(ids))))
            digest.update(json.dumps([ids[-1], words]).encode() + b"\n")
        if not sentences:
            raise InputError("no train-split rows with words to train the judge on")
        vocab = sorted({w for s in sentences for w in s})
        if UNK in vocab:
            raise InputError(f"the train split holds the word {UNK!r}, which the judge keeps for unknown words")
        index = {w: i + 1 for i, w in enumerate(vocab)}
        tokens = np.array([index[w] for s in sentences for w in s], np.int64)
        offsets = np.r_[0, np.cumsum([len(s) for s in sentences])].astype(np.int64)
        # vocab_size: boundary + words + <unk>; end_token: the end of sentence is a predicted event
        lm = NGramLM.fit(tokens, offsets, vocab_size=len(vocab) + 2, order=order, end_token=True)
        return cls(vocab, lm, digest.hexdigest(), ids, len(tokens))

    def assert_held_out(self, rows: Iterable[dict]) -> None:
        """Refuse rows (e.g. the prompts' corpus rows) the judge trained on: a train-split row or a train id."""
        train = set(self.train_ids)
        seen = [str(r.get("id")) for r in rows if r.get("split") == "train" or str(r.get("id")) in train]
        if seen:
            raise InputError(f"{len(seen)} row(s) the judge was trained on would be judged (e.g. {seen[0]!r}): "
                             "prompts must come from the test split")

    # -- scoring ----------------------------------------------------------------------------------------------
    def encode(self, words: Sequence[str]) -> np.ndarray:
        """Word ids, <unk> for words outside the train vocabulary."""
        return np.array([self._ids.get(w, self.unk_id) for w in words], np.int64)

    def log_prob(self, words: Sequence[str], context: Sequence[str] = (), end: bool = True) -> tuple[float, int]:
        """(Σ natural-log P, n_scored) of `words` after start boundaries + context (module doc); n_scored is
        len(words), + 1 when end=True (the end-of-sentence event)."""
        words = _check_words(words, "words")
        seq = self.encode(words)
        if end:
            seq = np.r_[seq, SEP]
        ctx = self.encode(_check_words(context, "context"))
        return float(self.lm.logprobs(seq, context=ctx).sum()), len(seq)

    def score_all(self, sentences: Sequence[Sequence[str]], contexts=None, ends=True) -> dict:
        """Per-sentence arrays: log_prob (Σ ln P), n_scored, n_words, n_oov. contexts: one word list per
        sentence or None; ends: one bool for all or one per sentence."""
        n = len(sentences)
        contexts = [()] * n if contexts is None else list(contexts)
        ends = [bool(ends)] * n if isinstance(ends, (bool, np.bool_)) else [bool(e) for e in ends]
        if len(contexts) != n or len(ends) != n:
            raise InputError(f"{n} sentences but {len(contexts)} contexts and {len(ends)} end flags")
        lp, ns = zip(*(self.log_prob(s, c, e) for s, c, e in zip(sentences, contexts, ends))) if n else ((), ())
        return {"log_prob": np.array(lp, float), "n_scored": np.array(ns, np.int64),
                "n_words": np.array([len(s) for s in sentences], np.int64),
                "n_oov": np.array([sum(w not in self._ids for w in s) for s in sentences], np.int64)}

    def perplexity(self, sentences: Sequence[Sequence[str]], contexts=None, ends=True) -> float:
        """Corpus-level perplexity exp(−Σ log p / Σ n_scored) (module doc; see `report` for the OOV rate)."""
        s = self.score_all(sentences, contexts, ends)
        total = int(s["n_scored"].sum())
        if total == 0:
            raise InputError("nothing to score: every sentence is empty and none scores its end")
        return math.exp(-float(s["log_prob"].sum()) / total)

    def report(self, sentences: Sequence[Sequence[str]], contexts=None, ends=True) -> dict:
        """Perplexity with the OOV rate beside it (OOV words are scored as <unk>) and the judge's identity."""
        s = self.score_all(sentences, contexts, ends)
        total, n_words, n_oov = int(s["n_scored"].sum()), int(s["n_words"].sum()), int(s["n_oov"].sum())
        return {"perplexity": math.exp(-float(s["log_prob"].sum()) / total) if total else math.nan,
                "log_prob": float(s["log_prob"].sum()), "n_scored": total, "n_words": n_words,
                "n_oov": n_oov, "oov_rate": n_oov / n_words if n_words else 0.0,
                "n_sentences": len(sentences), **self.identity}

    def next_word_probs(self, history: Sequence[str] = ()) -> dict[str, float]:
        """P(next | start boundaries + history) over every word, <unk> and the end of sentence </s>."""
        p = np.exp(self.lm.next_logprobs(self.encode(_check_words(history, "history"))))
        return {END: float(p[SEP]), **{w: float(p[i + 1]) for i, w in enumerate(self.vocab)},
                UNK: float(p[self.unk_id])}

    # -- identity, save and load ------------------------------------------------------------------------------
    @property
    def content_hash(self) -> str:
        """What the judge is: its format, order and the train sentences it was estimated from."""
        return stable_hash({"format": FORMAT, "order": self.order, "trained_on": self.trained_on}, 64)

    @property
    def identity(self) -> dict:
        """Recorded beside every number the judge gives."""
        return {"judge": f"word {self.order}-gram, interpolated modified Kneser-Ney, train split",
                "judge_hash": self.content_hash, "judge_vocab": len(self.vocab),
                "judge_train_words": self.n_train_words, "judge_train_sentences": len(self.train_ids)}

    def save(self, root: str | Path) -> Path:
        """Write root/<content hash[:16]>/ (vocab.json, lm.npz, manifest.json written last) and return it;
        an existing folder of the same hash is kept (same hash, same content)."""
        folder = Path(root) / self.content_hash[:16]
        if (folder / "manifest.json").is_file():
            return folder
        with atomic_dir(folder) as tmp:
            atomic_write_json(tmp / "vocab.json", {"vocab": self.vocab, "train_ids": self.train_ids})
            self.lm.save(tmp / "lm.npz")
            atomic_write_json(tmp / "manifest.json", {
                "format": FORMAT, "content_hash": self.content_hash, "trained_on": self.trained_on,
                "order": self.order, "n_train_words": self.n_train_words,
                "artefacts": {n: file_digest(tmp / n) for n in ("vocab.json", "lm.npz")}})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> WordJudge:
        folder = Path(folder)
        manifest = read_saved(folder, "judge", FORMAT)
        saved = json.loads((folder / "vocab.json").read_text())
        judge = cls(saved["vocab"], NGramLM.load(folder / "lm.npz"), manifest["trained_on"], saved["train_ids"],
                    int(manifest["n_train_words"]))
        if judge.content_hash != manifest["content_hash"]:
            raise InputError(f"{folder}: the judge's content hash does not match its manifest")
        return judge
