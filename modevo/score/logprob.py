"""Log-probabilities of scored token spans at EVERY layer, in one forward pass per batch.

Built only against the model contract (DESIGN.md, modevo/train/model.py): `model.hidden_states(ids)` →
the L+1 hidden states without the full-vocabulary logits (a model with only `model(ids, return_hidden=True)`
works too, paying for logits nothing reads), and `model.lens(h)` → logits. Layer l's log-probability of
token t is log_softmax(lens(hiddens[l]))[t]; layer L is the model's own output, so the last layer IS the
headline.

Shared contexts (`score_shared_prefix`): two continuations of one context (a tSC pair's endings) are scored
from ONE pass over the context, whose keys and values the continuations attend to
(`model.hidden_states(ids, past, past_len)`), instead of two full sequences. Same numbers up to fp32
rounding (tests bound the difference; bench/eval_speed.py measures it and the time saved).

Numerics: the model runs in fp32; per-token log-probabilities are fp32, their sums fp64. The lens is applied
only at the positions that predict a scored token (not the whole padded batch), which is both the cheap
way and what keeps padding out of every number.

Batch-size invariance: sequences are grouped by a padded length that depends on their own length only
(rounded up to `PAD_MULTIPLE`), so a sequence's tensor shape apart from the batch dimension never changes
with the batch size, and every matrix product has enough rows for BLAS to take the same kernel (measured
here with MKL: 1-15 rows take other kernels whose sums round differently, 16+ rows give bit-equal rows
whatever their number): a batch with fewer than `MIN_ROWS` token rows gets all-separator filler rows,
which nothing reads. Tests check scores are identical for batch sizes 1, 7 and 64.

Cost (bench/eval_layerwise.py): padding lengths to 8 rather than 32 keeps the short items of the lexical
and syntactic tasks (5-20 BPE tokens) from paying for 2-6x their own length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_MULTIPLE = 8
MIN_ROWS = 64  # a batch's forward sees at least this many token rows (filler sequences where needed)
LENS_ROWS = 64  # the lens sees a multiple of this many rows: BLAS picks other kernels for a few rows


@dataclass
class SpanScores:
    """Per sequence: summed log-probability of its scored span at each layer, and the span's length."""

    sums: np.ndarray  # (n, L+1) float64: layer 0 = embeddings through the lens, L = the model's output
    counts: np.ndarray  # (n,) int64: scored tokens

    @property
    def means(self) -> np.ndarray:
        return self.sums / np.maximum(self.counts, 1)[:, None]  # (n, L+1)


def padded_length(n: int) -> int:
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE


class Bf16Trunk:
    """A model whose blocks run in bf16 while the lens (final norm, LM head) and every log-softmax stay in
    fp32: the hidden states are cast up before the lens. Scoring uses it only under score.precision=bf16,
    which a paired check against fp32 must justify (bench/precision_check.py: pair decisions flipped
    beyond near-ties); the precision is part of the scoring protocol."""

    def __init__(self, model):
        import copy

        import torch

        if not hasattr(model, "hidden_states"):
            raise ValueError("bf16 scoring needs the contract's model.hidden_states")
        self.config = getattr(model, "config", None)
        self._fp32 = model
        self._trunk = copy.deepcopy(model).to(torch.bfloat16).eval()

    def parameters(self):
        return self._fp32.parameters()

    def hidden_states(self, ids, past=None, past_len=None):
        states, kv = self._trunk.hidden_states(ids, past=past, past_len=past_len)
        return [h.float() for h in states], kv  # kv stays bf16: only the trunk reads it

    def lens(self, h):
        return self._fp32.lens(h)


def for_precision(model, precision: str):
    """The model as scoring runs it: itself (fp32) or a Bf16Trunk."""
    if precision == "fp32" or (precision == "bf16" and isinstance(model, Bf16Trunk)):
        return model
    if precision == "bf16":
        return Bf16Trunk(model)
    raise ValueError(f"unknown scoring precision {precision!r} (fp32 or bf16)")


def _states(model, ids):
    """The L+1 hidden states of ids: without logits where the model offers it (the contract's
    hidden_states), else through the forward."""
    if hasattr(model, "hidden_states"):
        return model.hidden_states(ids)[0]
    return model(ids, return_hidden=True)[1]


def _lens_logprobs(model, h_at, tgt):
    """(N, C) states that predict (N,) target tokens → (N,) fp32 log-probabilities through the lens. The
    lens sees a multiple of LENS_ROWS rows (zero rows after the real ones) so BLAS keeps one kernel."""
    import torch

    rows = -(-len(h_at) // LENS_ROWS) * LENS_ROWS
    h_at = torch.cat([h_at, h_at.new_zeros(rows - len(h_at), h_at.shape[1])])  # (N', C)
    logits = model.lens(h_at[None])[0, :len(tgt)].float()  # (N, V) fp32
    return logits.gather(1, tgt[:, None].to(logits.device))[:, 0] - torch.logsumexp(logits, dim=1)  # (N,)


def score_spans(model, sequences: list[np.ndarray], n_scored: list[int], batch_size: int = 32,
                progress: bool = False, desc: str = "score") -> SpanScores:
    """Sum of log p(token | prefix) over the last n_scored[i] tokens of sequences[i], every layer.

    A sequence must start with the token every scored position can condition on (the separator); its
    first token is never scored."""
    import torch
    from tqdm.auto import tqdm

    if len(sequences) != len(n_scored):
        raise ValueError("sequences and n_scored differ in length")
    n = len(sequences)
    lengths = np.asarray([len(s) for s in sequences], dtype=np.int64)
    scored = np.asarray(n_scored, dtype=np.int64)
    if n and (scored.min() < 1 or np.any(scored > lengths - 1)):
        raise ValueError("each sequence needs 1 <= n_scored <= len - 1 (the first token is context only)")
    max_len = getattr(getattr(model, "config", None), "max_seq_len", None)
    if max_len is not None and n and lengths.max() > max_len:
        raise ValueError(f"a sequence of {lengths.max()} tokens exceeds the model's context {max_len}")
    n_layers = None
    sums = counts = None
    device = next(model.parameters()).device
    buckets: dict[int, list[int]] = {}
    for i in np.argsort(lengths, kind="stable"):
        buckets.setdefault(padded_length(int(lengths[i])), []).append(int(i))
    batches = [(T, idx[k:k + batch_size]) for T, idx in sorted(buckets.items()) for k in range(0, len(idx), batch_size)]
    with torch.no_grad():
        for T, idx in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
            if max_len is not None:
                T = min(T, max_len)
            n_rows = max(len(idx), -(-MIN_ROWS // T))  # filler rows after the real ones keep BLAS on one kernel
            ids = torch.zeros((n_rows, T), dtype=torch.long)  # (B', T), right-padded with the separator
            pos, tgt, owner = [], [], []
            for b, i in enumerate(idx):
                seq = torch.as_tensor(np.asarray(sequences[i], dtype=np.int64))
                ids[b, :len(seq)] = seq
                start = len(seq) - int(scored[i])
                pos.append(torch.stack([torch.full((int(scored[i]),), b), torch.arange(start - 1, len(seq) - 1)], 1))
                tgt.append(seq[start:])
                owner.append(torch.full((int(scored[i]),), b))
            pos, tgt, owner = torch.cat(pos), torch.cat(tgt), torch.cat(owner)  # (N, 2), (N,), (N,)
            hiddens = _states(model, ids.to(device))
            if sums is None:
                n_layers = len(hiddens)
                sums = np.zeros((n, n_layers), dtype=np.float64)
                counts = np.zeros(n, dtype=np.int64)
            for layer, h in enumerate(hiddens):
                h_at = h[pos[:, 0], pos[:, 1]]  # (N, C): the states that predict the scored tokens
                token_lp = _lens_logprobs(model, h_at, tgt)  # (N,)
                per_seq = np.zeros(len(idx), dtype=np.float64)
                np.add.at(per_seq, owner.numpy(), token_lp.double().cpu().numpy())  # fp64 sums, fixed order
                sums[idx, layer] = per_seq
            counts[idx] = scored[idx]
    if sums is None:
        return SpanScores(np.zeros((0, 0)), np.zeros(0, dtype=np.int64))
    return SpanScores(sums, counts)


def score_shared_prefix(model, prefixes: list[np.ndarray], continuations: list[tuple[np.ndarray, np.ndarray]],
                        batch_size: int = 32, progress: bool = False, desc: str = "score") -> SpanScores:
    """For pair i: the summed log p of every token of continuations[i][0] and [1] given prefixes[i], every
    layer, with the prefix run once for both. prefixes[i] starts with the separator (never scored).
    Returns 2n rows: pair i's first continuation at row 2i, its second at 2i + 1.

    Batching keeps batch-size invariance: pairs are grouped by (padded prefix length, padded length of the
    longer continuation), so a row's tensor shapes depend on its own lengths only, and a batch has at least
    MIN_ROWS token rows (filler pairs after the real ones)."""
    import torch
    from tqdm.auto import tqdm

    n = len(prefixes)
    if len(continuations) != n:
        raise ValueError("prefixes and continuations differ in length")
    if not hasattr(model, "hidden_states"):  # a contract model without a prefix cache: two full sequences
        seqs = [np.concatenate([p, c]) for p, pair in zip(prefixes, continuations) for c in pair]
        return score_spans(model, seqs, [len(c) for pair in continuations for c in pair], batch_size, progress, desc)
    p_len = np.asarray([len(p) for p in prefixes], dtype=np.int64)
    c_len = np.asarray([[len(c) for c in pair] for pair in continuations], dtype=np.int64).reshape(n, 2)
    if n and (p_len.min() < 1 or c_len.min() < 1):
        raise ValueError("each prefix needs at least the separator and each continuation at least one token")
    max_len = getattr(getattr(model, "config", None), "max_seq_len", None)
    if max_len is not None and n and (p_len + c_len.max(1)).max() > max_len:
        raise ValueError(f"a sequence of {(p_len + c_len.max(1)).max()} tokens exceeds the model's context {max_len}")
    device = next(model.parameters()).device
    buckets: dict[tuple[int, int], list[int]] = {}
    for i in range(n):
        P, E = padded_length(int(p_len[i])), padded_length(int(c_len[i].max()))
        if max_len is not None:
            P = min(P, max_len - int(c_len[i].max()))
            E = min(E, max_len - P)
        buckets.setdefault((P, E), []).append(i)
    batches = [(P, E, idx[k:k + batch_size]) for (P, E), idx in sorted(buckets.items())
               for k in range(0, len(idx), batch_size)]
    sums = counts = None
    with torch.no_grad():
        for P, E, idx in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
            rows = max(len(idx), -(-MIN_ROWS // (P + 2 * E)))  # filler pairs keep BLAS on one kernel
            pre = torch.zeros((rows, P), dtype=torch.long)  # (B, P) right-padded with the separator
            cont = torch.zeros((2 * rows, E), dtype=torch.long)  # (2B, E): both continuations of each pair
            plen = torch.ones(rows, dtype=torch.long)  # a filler's prefix is the separator alone
            for b, i in enumerate(idx):
                pre[b, :p_len[i]] = torch.as_tensor(np.asarray(prefixes[i], dtype=np.int64))
                plen[b] = int(p_len[i])
                for j in range(2):
                    cont[2 * b + j, :c_len[i, j]] = torch.as_tensor(np.asarray(continuations[i][j], dtype=np.int64))
            h_pre, kv = model.hidden_states(pre.to(device))
            past = [(k.repeat_interleave(2, 0), v.repeat_interleave(2, 0)) for k, v in kv]  # (2B, K, P, D)
            h_cont, _ = model.hidden_states(cont.to(device), past=past, past_len=plen.repeat_interleave(2).to(device))
            if sums is None:
                sums = np.zeros((2 * n, len(h_cont)), dtype=np.float64)
                counts = np.zeros(2 * n, dtype=np.int64)
            # a continuation's first token is predicted by its prefix's last state, the rest by its own states
            last = [h[torch.arange(rows), plen - 1] for h in h_pre]  # per layer (B, C)
            tgt, owner, at = [], [], []
            for b, i in enumerate(idx):
                for j in range(2):
                    m = int(c_len[i, j])
                    tgt.append(cont[2 * b + j, :m])
                    owner.append(torch.full((m,), 2 * b + j))
                    at.append(torch.arange(-1, m - 1))  # -1: the prefix's last state
            tgt, owner, at = torch.cat(tgt), torch.cat(owner), torch.cat(at)  # (N,) each
            first = at < 0
            for layer in range(len(h_cont)):
                h_at = h_cont[layer][owner, at.clamp(min=0)]  # (N, C)
                h_at[first] = last[layer][owner[first] // 2]
                token_lp = _lens_logprobs(model, h_at, tgt)  # (N,)
                per_row = np.zeros(2 * len(idx), dtype=np.float64)
                np.add.at(per_row, owner.numpy(), token_lp.double().cpu().numpy())  # fp64 sums, fixed order
                dest = np.stack([2 * np.asarray(idx), 2 * np.asarray(idx) + 1], 1).reshape(-1)
                sums[dest, layer] = per_row
            counts[dest] = c_len[idx].reshape(-1)
    if sums is None:
        return SpanScores(np.zeros((0, 0)), np.zeros(0, dtype=np.int64))
    return SpanScores(sums, counts)
