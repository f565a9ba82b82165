"""Phones → words, offline: a beam search over a prefix tree of the training vocabulary's pronunciations,
scored by a word n-gram of the training text, with a small cost for phone edits.

Why: generated continuations are scored by the perplexity of their words, and phone, phone-repeat and speech
views produce no words. The corpus already holds each word's pronunciation (cmudict or g2p, as the corpus
stage chose), so the lexicon is read from the train split's rows and g2p is never called again.

Search (time-synchronous over the input phones). A hypothesis is (trie node, last order-1 words), scored
in natural-log units (higher is better):
    score = lm_weight · log P(words)  (the n-gram, end of sentence included)
          + log P(pronunciation | word) (0 for a word with one pronunciation)
          - word_penalty · words
          - edit_cost · (substituted + deleted + inserted phones)
Edits let an imperfect phone string (a recogniser's) still decode: a substitution follows any other child
of the node, a deletion (a lexicon phone missing from the input, at most one between two input phones)
follows a child without reading a phone, an insertion reads a phone and stays put. One cost for all three
keeps it simple; with exact phones the zero-edit path wins unless the LM prefers another parse by more than
edit_cost per edit. Hypotheses more than `margin` below the best are dropped, then all but the `beam` best.
Each trie node carries the best unigram log-prob of the words below it (LM look-ahead, paid on the way down
and refunded at the word's end), so a hypothesis inside a long word does not outrank one that has just paid
for a whole word; without it the search preferred long words ("made and printed in ..." → "maidstone").

Defaults (beam 16, edit_cost 10, word_penalty 0, lm_weight 1, trigram) were chosen on the valid split of the
cpu corpus (clean phones, 140 sentences): edit_cost 6 / 10 / 14 gave WER 3.7 / 3.0 / 3.2%, word_penalty ±2
and lm_weight 0.7 did not help, beam 32 gained 0.1 point at twice the time. About 1% of held-out words are
not in the train split's vocabulary: no output can match them. Noisy input wants a lower edit_cost: on
the recogniser's phones for varied mel-kmeans units (400 test utterances, PER 21.6%) edit_cost 6 gave WER
33.6% against 42.3% at 10 (pass edit_cost=6 to from_rows/load there; not tuned further).

The LM is modevo.score.ngram's interpolated Kneser-Ney model over word ids (0 = sentence boundary), so the
probability of ending the sentence is part of the score.

Phone-repeat output (one phone per frame) is first turned into a phone string by `collapse_repeats`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from modevo.cache import atomic_dir, atomic_write_json, file_digest, read_saved, stable_hash
from modevo.corpus.alignments import edit_distance
from modevo.corpus.phones import PHONES
from modevo.errors import ConfigError, InputError
from modevo.score.ngram import SEP, NGramLM

FORMAT = "modevo-lexicon-decoder-1"
ROOT = 0  # the trie's root node
_PHONE_SET = frozenset(PHONES)


# -- phone strings -------------------------------------------------------------------------------------------
def collapse_repeats(tokens: Sequence) -> list:
    """Runs of one token → one token: a phone-repeat frame sequence → its phone string.

    A phone genuinely doubled across a word boundary ("this sound": S S) becomes one phone as well: the
    frames alone cannot tell two phones from one long one, so the decoder sees one deletion there (one
    edit_cost) and still usually recovers both words."""
    out = []
    for t in tokens:
        if not out or t != out[-1]:
            out.append(t)
    return out


def check_phones(phones) -> list[str]:
    """A flat phone list (or a space-separated string) → list of str; an unknown phone is one error line."""
    if isinstance(phones, str):
        phones = phones.split()
    out = list(phones)
    for i, p in enumerate(out):
        if p not in _PHONE_SET:
            raise InputError(f"unknown phone {p!r} at position {i}: expected one of the {len(PHONES)} ARPAbet "
                             "phones without stress digits (AA, AE, ... ZH)")
    return out


# -- error rates -----------------------------------------------------------------------------------------------
def error_rate(pairs: Iterable[tuple[Sequence, Sequence]]) -> dict:
    """Corpus-level error rate of (reference, hypothesis) pairs: total edits / total reference length (a
    WER over word lists, a PER over phone lists). Also the count of pairs recovered exactly."""
    errors = n_ref = n = exact = 0
    for ref, hyp in pairs:
        d = edit_distance(ref, hyp)
        errors, n_ref, n, exact = errors + d, n_ref + len(ref), n + 1, exact + (d == 0)
    return {"rate": errors / n_ref if n_ref else 0.0, "errors": errors, "n_ref": n_ref, "n": n, "exact": exact}


def word_error_rate(ref: Sequence[str], hyp: Sequence[str]) -> float:
    """One pair's WER (edits / reference words); an empty reference gives 0 if hyp is empty, else 1."""
    return edit_distance(ref, hyp) / len(ref) if ref else float(bool(hyp))


# -- the decoder ---------------------------------------------------------------------------------------------
def _row_words(row: dict) -> tuple[list[str], list[list[str]]]:
    words, phones = list(row["words"]), [list(p) for p in row["phones"]]
    if len(words) != len(phones):
        raise InputError(f"corpus row {row.get('id', '?')}: {len(words)} words but {len(phones)} pronunciations")
    return words, phones


class LexiconDecoder:
    """A pronunciation trie over the training words plus a word n-gram; `decode(phones)` → words."""

    def __init__(self, words: list[str], prons: dict[str, dict[tuple, int]], lm: NGramLM, *, beam: int = 16,
                 edit_cost: float = 10.0, word_penalty: float = 0.0, lm_weight: float = 1.0, margin: float = 30.0,
                 built_from: str = "", symbols: str = "phones"):
        if beam < 1 or edit_cost <= 0 or margin <= edit_cost or lm_weight < 0:
            raise ConfigError(f"decoder settings need beam ≥ 1, edit_cost > 0, margin > edit_cost, lm_weight ≥ 0 "
                              f"(got beam={beam}, edit_cost={edit_cost}, margin={margin}, lm_weight={lm_weight})")
        self.words = words  # word id i + 1 ↔ words[i]; id 0 is the n-gram's sentence boundary
        self.prons = prons  # word → {pronunciation tuple: count in the train split}
        self.lm = lm
        self.beam, self.edit_cost, self.word_penalty = int(beam), float(edit_cost), float(word_penalty)
        self.lm_weight, self.margin = float(lm_weight), float(margin)
        self.built_from = built_from  # hash of the training words and pronunciations
        self.symbols = symbols  # "phones" (ARPAbet pronunciations) or "letters" (spellings: from_spellings)
        self._alphabet = frozenset(p for c in prons.values() for pron in c for p in pron)
        self._build_trie()
        self._lm_cache: dict = {}

    # -- building --------------------------------------------------------------------------------------------
    @classmethod
    def from_rows(cls, rows: Iterable[dict], order: int = 3, beam: int = 16, max_prons: int = 3,
                  **settings) -> LexiconDecoder:
        """From corpus rows (the train split's: `words` and per-word `phones`): every word's pronunciations as
        the corpus wrote them (at most max_prons per word, the most frequent) and an order-n word n-gram."""
        sentences, pron_counts = [], defaultdict(Counter)
        digest = hashlib.sha256()
        for row in rows:
            words, phones = _row_words(row)
            for w, p in zip(words, phones):
                if p:  # a word without phones can be predicted by the LM but never heard
                    pron_counts[w][tuple(check_phones(p) if settings.get("symbols", "phones") == "phones"
                                         else p)] += 1
            sentences.append(words)
            digest.update(json.dumps([words, phones]).encode())
        if not pron_counts:
            raise InputError("no words with phones to build a lexicon from: are the rows empty?")
        vocab = sorted({w for s in sentences for w in s})
        ids = {w: i + 1 for i, w in enumerate(vocab)}
        tokens = np.array([ids[w] for s in sentences for w in s], np.int64)
        offsets = np.r_[0, np.cumsum([len(s) for s in sentences])].astype(np.int64)
        lm = NGramLM.fit(tokens, offsets, vocab_size=len(vocab) + 1, order=order, end_token=True)
        prons = {w: dict(c.most_common(max_prons)) for w, c in sorted(pron_counts.items())}
        return cls(vocab, prons, lm, beam=beam, built_from=digest.hexdigest(), **settings)

    @classmethod
    def from_spellings(cls, rows: Iterable[dict], order: int = 3, beam: int = 16, **settings) -> LexiconDecoder:
        """The same search over SPELLINGS: each training word's letters are its one "pronunciation", so a
        letter string without spaces (a text view's output with word boundaries off) is segmented into
        lexicon words by the same trie, n-gram and edit costs. `decode` then takes letters, not phones."""
        spelled = ({"id": r.get("id"), "words": list(r["words"]), "phones": [list(w) for w in r["words"]]}
                   for r in rows)
        return cls.from_rows(spelled, order=order, beam=beam, max_prons=1, symbols="letters", **settings)

    def _build_trie(self) -> None:
        self.children: list[dict[str, int]] = [{}]  # node → {phone: child node}
        self.ends: list[list[tuple[int, float]]] = [[]]  # node → [(word id, log P(pronunciation | word))]
        ids = {w: i + 1 for i, w in enumerate(self.words)}
        for w, counts in self.prons.items():
            total = sum(counts.values())
            for pron, n in counts.items():
                node = ROOT
                for p in pron:
                    nxt = self.children[node].get(p)
                    if nxt is None:
                        nxt = len(self.children)
                        self.children[node][p] = nxt
                        self.children.append({})
                        self.ends.append([])
                    node = nxt
                self.ends[node].append((ids[w], math.log(n / total)))
        # LM look-ahead: each node carries the best unigram log-prob of the words below it, paid as the
        # search walks down and refunded at the word's end, so a hypothesis inside a long word is not
        # favoured over one that has just paid for a whole word.
        # The unigram is the words' train counts (their pronunciation counts summed).
        counts = {ids[w]: sum(c.values()) for w, c in self.prons.items()}
        total = sum(counts.values())
        best = np.full(len(self.children), -np.inf)
        for node in range(len(self.children) - 1, 0, -1):  # children are numbered after their parents
            for w, _ in self.ends[node]:
                best[node] = max(best[node], math.log(counts[w] / total))
            for child in self.children[node].values():
                best[node] = max(best[node], best[child])
        best[ROOT] = 0.0
        self.lookahead = (self.lm_weight * best).tolist()

    @property
    def settings(self) -> dict:
        return {"order": self.lm.order, "beam": self.beam, "edit_cost": self.edit_cost,
                "word_penalty": self.word_penalty, "lm_weight": self.lm_weight, "margin": self.margin,
                **({} if self.symbols == "phones" else {"symbols": self.symbols})}

    @property
    def content_hash(self) -> str:
        """What the decoder was built from (training words and pronunciations) and its settings."""
        return stable_hash({"format": FORMAT, "built_from": self.built_from, "settings": self.settings,
                            "prons": {w: sorted(c) for w, c in self.prons.items()}}, 64)

    # -- scoring ---------------------------------------------------------------------------------------------
    def _lm(self, keys: list[tuple[tuple, int]]) -> list[float]:
        """log P(word | history) for each (history, word) under the n-gram (word SEP: end of sentence),
        memoised; the missing ones are computed in one vectorised call."""
        cache = self._lm_cache
        if len(cache) > 1_000_000:  # bounded memory over many decodes
            cache.clear()
        missing = list({k for k in keys if k not in cache})
        if missing:
            pad = self.lm.order - 1
            windows = np.array([(SEP,) * (pad - len(h)) + h + (w,) for h, w in missing],
                               np.int64)  # (L, order): SEP padding, the history (≤ order - 1 words), the word
            # NGramLM's batch form of logprobs: one window per row, as logprobs builds them
            for k, lp in zip(missing, np.log(self.lm._probs(windows)).tolist()):
                cache[k] = lp
        return [cache[k] for k in keys]

    @staticmethod
    def _relax(hyps: dict, key: tuple, score: float, back) -> None:
        old = hyps.get(key)
        if old is None or score > old[0]:
            hyps[key] = (score, back)

    def _word_ends(self, hyps: dict, out: dict) -> None:
        """Every hypothesis at a node where words end → the root, each word scored by the LM, into out."""
        keep = self.lm.order - 1
        ending = [(node, hist, s, back, w, pron_lp) for (node, hist), (s, back) in hyps.items()
                  for w, pron_lp in self.ends[node]]
        if not ending:
            return
        lps = self._lm([(hist, w) for _, hist, _, _, w, _ in ending])
        for (node, hist, s, back, w, pron_lp), lp in zip(ending, lps):
            score = s + self.lm_weight * lp - self.lookahead[node] + pron_lp - self.word_penalty
            self._relax(out, (ROOT, (hist + (w,))[-keep:] if keep else ()), score, (w, back))

    def _close(self, hyps: dict) -> dict:
        """Moves that read no phone: word ends, then one deleted phone, then word ends after it."""
        out = dict(hyps)
        self._word_ends(hyps, out)
        floor = max(s for s, _ in out.values()) - self.margin + self.edit_cost
        deleted: dict = {}
        la = self.lookahead
        for (node, hist), (s, back) in out.items():
            if s >= floor:
                for child in self.children[node].values():
                    self._relax(deleted, (child, hist), s - self.edit_cost + la[child] - la[node], back)
        ends: dict = {}
        self._word_ends(deleted, ends)
        for extra in (deleted, ends):
            for key, (s, back) in extra.items():
                self._relax(out, key, s, back)
        return out

    def _read(self, hyps: dict, phone: str) -> dict:
        """Moves that read one phone: a match, a substitution, or an insertion (stay at the node)."""
        out: dict = {}
        floor = max(s for s, _ in hyps.values()) - self.margin + self.edit_cost
        la = self.lookahead
        for (node, hist), (s, back) in hyps.items():
            kids = self.children[node]
            match = kids.get(phone)
            if match is not None:
                self._relax(out, (match, hist), s + la[match] - la[node], back)
            if s >= floor:
                for p, child in kids.items():
                    if p != phone:
                        self._relax(out, (child, hist), s - self.edit_cost + la[child] - la[node], back)
                self._relax(out, (node, hist), s - self.edit_cost, back)
        return out

    def _prune(self, hyps: dict) -> dict:
        best = max(s for s, _ in hyps.values())
        kept = [(k, v) for k, v in hyps.items() if v[0] >= best - self.margin]
        if len(kept) > self.beam:
            kept.sort(key=lambda kv: -kv[1][0])
            kept = kept[:self.beam]
        return dict(kept)

    def decode(self, phones) -> list[str]:
        """A flat phone list (ARPAbet, no stress; or a space-separated string) → the best word sequence; a
        spelling decoder (from_spellings) takes a letter list or a string of letters instead."""
        phones = check_phones(phones) if self.symbols == "phones" else self._check_letters(phones)
        if not phones:
            return []
        hyps = {(ROOT, ()): (0.0, None)}  # back: (word id, back) linked list of the words so far, newest first
        for p in phones:
            hyps = self._prune(self._read(self._prune(self._close(hyps)), p))
        hyps = self._close(hyps)
        at_root = [(hist, s, back) for (node, hist), (s, back) in hyps.items() if node == ROOT]
        ends = self._lm([(hist, SEP) for hist, _, _ in at_root])
        finals = [(s + self.lm_weight * lp, back) for (_, s, back), lp in zip(at_root, ends)]
        # every survivor inside a word (the beam pruned the rest): the best one's finished words
        _, back = max(finals or list(hyps.values()), key=lambda f: f[0])
        out = []
        while back is not None:
            w, back = back
            out.append(self.words[w - 1])
        return out[::-1]

    def _check_letters(self, letters) -> list[str]:
        out = list(letters)
        for i, c in enumerate(out):
            if c not in self._alphabet:
                raise InputError(f"unknown letter {c!r} at position {i}: the spelling decoder knows "
                                 f"{''.join(sorted(self._alphabet))!r}")
        return out

    # -- storage ---------------------------------------------------------------------------------------------
    def save(self, root: str | Path) -> Path:
        """Write to root/<content hash[:16]>/ (lexicon.json, lm.npz, manifest.json, written last) and return
        that folder; an existing one is kept (same hash, same content)."""
        folder = Path(root) / self.content_hash[:16]
        if (folder / "manifest.json").is_file():
            return folder
        with atomic_dir(folder) as tmp:
            atomic_write_json(tmp / "lexicon.json", {"words": self.words, "prons": {
                w: [[list(p), n] for p, n in c.items()] for w, c in self.prons.items()}})
            self.lm.save(tmp / "lm.npz")
            atomic_write_json(tmp / "manifest.json", {
                "format": FORMAT, "content_hash": self.content_hash, "built_from": self.built_from,
                "settings": self.settings, "words": len(self.words),
                "artefacts": {n: file_digest(tmp / n) for n in ("lexicon.json", "lm.npz")}})
        return folder

    @classmethod
    def load(cls, folder: str | Path, **overrides) -> LexiconDecoder:
        """A saved decoder; search settings (beam, edit_cost, word_penalty, lm_weight, margin) may be overridden."""
        folder = Path(folder)
        manifest = read_saved(folder, "lexicon decoder", FORMAT)
        lexicon = json.loads((folder / "lexicon.json").read_text())
        prons = {w: {tuple(p): n for p, n in items} for w, items in lexicon["prons"].items()}
        settings = {k: v for k, v in manifest["settings"].items() if k != "order"}
        return cls(lexicon["words"], prons, NGramLM.load(folder / "lm.npz"), built_from=manifest["built_from"],
                   **{**settings, **overrides})


def evaluate_decoder(decoder: LexiconDecoder, rows: Iterable[dict]) -> dict:
    """WER of decoding each row's clean phone string (held-out rows, e.g. the test split) against its words.

    oov_words counts reference words outside the lexicon: no decoder output can match them."""
    pairs, oov = [], 0
    for row in rows:
        words, phones = _row_words(row)
        oov += sum(w not in decoder.prons for w in words)
        pairs.append((words, decoder.decode([p for word in phones for p in word])))
    r = error_rate(pairs)
    return {"wer": r["rate"], "n_words": r["n_ref"], "errors": r["errors"], "n_sentences": r["n"],
            "exact_sentences": r["exact"] / r["n"] if r["n"] else 0.0, "oov_words": oov}
