"""Log-probabilities of scored token spans at EVERY layer, in one forward pass per batch.

Built only against the model contract (DESIGN.md): `model(ids, return_hidden=True)` → (logits, hiddens)
with L+1 hidden states, and `model.lens(h)` → logits. Layer l's log-probability of token t is
log_softmax(lens(hiddens[l]))[t]; layer L is the model's own output, so the last layer IS the headline.

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
            _, hiddens = model(ids.to(device), return_hidden=True)
            if sums is None:
                n_layers = len(hiddens)
                sums = np.zeros((n, n_layers), dtype=np.float64)
                counts = np.zeros(n, dtype=np.int64)
            for layer, h in enumerate(hiddens):
                h_at = h[pos[:, 0], pos[:, 1]]  # (N, C): the states that predict the scored tokens
                rows = -(-len(h_at) // LENS_ROWS) * LENS_ROWS
                h_at = torch.cat([h_at, h_at.new_zeros(rows - len(h_at), h_at.shape[1])])  # (N', C)
                logits = model.lens(h_at[None])[0, :len(tgt)].float()  # (N, V) fp32
                token_lp = logits.gather(1, tgt[:, None].to(device))[:, 0] - torch.logsumexp(logits, dim=1)  # (N,)
                per_seq = np.zeros(len(idx), dtype=np.float64)
                np.add.at(per_seq, owner.numpy(), token_lp.double().cpu().numpy())  # fp64 sums, fixed order
                sums[idx, layer] = per_seq
            counts[idx] = scored[idx]
    if sums is None:
        return SpanScores(np.zeros((0, 0)), np.zeros(0, dtype=np.int64))
    return SpanScores(sums, counts)
