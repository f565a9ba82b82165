"""All-layer scoring (modevo.score.logprob.score_spans) against a true lower bound of its cost, same items.

The reference ("floor") does only the work no all-layer scorer can avoid: sequences grouped by EXACT
length (no padding token anywhere, no filler rows), one forward pass per group through
`model.hidden_states` (the L+1 hidden states, no full-vocabulary logits), then per layer the lens (final
norm + LM head) on exactly the scored positions and a log-softmax gather; no fp64 bookkeeping, no
per-item sums. Any scorer computes at least these FLOPs, so the floor is a lower bound on the work; it is
also a lower bound in time as far as the batches allow (an exact-length group is as large as the items
permit, up to --batch-size; score_spans' padded batches can be larger, which is the one way it may beat the
floor on a CPU that likes big matrices — the table says how many token rows each actually computed).
score_spans adds what makes scores identical at every batch size: lengths padded to a multiple of
PAD_MULTIPLE, filler rows up to MIN_ROWS, lens rows to a multiple of LENS_ROWS, fp64 sums. Items are
synthetic token sequences whose lengths follow each task's shape in a 4k-BPE view and in a 50 Hz frame view
(measured at cpu scale); the model is the cpu shape at random init, fp32 as scoring runs.

    python bench/eval_layerwise.py [--items 256] [--batch-size 32]
"""

from __future__ import annotations

import argparse

import numpy as np

import common  # noqa: F401
from common import interleaved, machine, recipe, save, table, verdict

# (name, item length range, scored span range or None = all but the first token); lengths in tokens
TASKS = [("sblimp text-bpe", (8, 24), None), ("swuggy text-bpe", (3, 8), None),
         ("tsc text-bpe", (90, 170), (12, 30)), ("sblimp 50 Hz frames", (80, 300), None),
         ("tsc 50 Hz frames", (400, 511), (60, 150))]


def items(n: int, length: tuple, scored: tuple | None, vocab: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    seqs, spans = [], []
    for _ in range(n):
        T = int(rng.integers(length[0], length[1] + 1))
        seq = rng.integers(1, vocab, T)
        seq[0] = 0  # the separator every item starts with
        seqs.append(seq)
        spans.append(T - 1 if scored is None else min(T - 1, int(rng.integers(scored[0], scored[1] + 1))))
    return seqs, spans


def exact_length_batches(seqs, batch_size: int) -> list[list[int]]:
    """Indices grouped by exact length, each group cut into batches of at most batch_size: no padding."""
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        groups.setdefault(len(s), []).append(i)
    return [idx[k:k + batch_size] for _, idx in sorted(groups.items()) for k in range(0, len(idx), batch_size)]


def floor(model, seqs, spans, batches) -> None:
    """The lower bound: exact-length batches, hidden states only, the lens at the scored positions only."""
    import torch

    with torch.no_grad():
        for idx in batches:
            n = len(seqs[idx[0]])
            ids = torch.from_numpy(np.stack([seqs[i] for i in idx]))  # (B, n): all the same length
            rows = torch.cat([torch.full((spans[i],), b) for b, i in enumerate(idx)])
            cols = torch.cat([torch.arange(n - spans[i] - 1, n - 1) for i in idx])
            tgt = ids[rows, cols + 1]
            for h in model.hidden_states(ids)[0]:
                logits = model.lens(h[rows, cols][None])[0]  # (N, V): scored positions only
                (logits.gather(1, tgt[:, None])[:, 0] - torch.logsumexp(logits, 1)).sum()


def token_rows(seqs, batch_size: int) -> int:
    """Token rows score_spans' forwards compute (its buckets, padding and filler rows), for the table."""
    from modevo.score.logprob import MIN_ROWS, padded_length

    buckets: dict[int, int] = {}
    for s in seqs:
        buckets[padded_length(len(s))] = buckets.get(padded_length(len(s)), 0) + 1
    total = 0
    for T, count in buckets.items():
        for k in range(0, count, batch_size):
            total += max(min(batch_size, count - k), -(-MIN_ROWS // T)) * T
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=256, help="sequences per task (two per pair)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--goal", type=float, default=1.2)
    args = ap.parse_args()
    import torch

    from modevo.score.logprob import score_spans
    from modevo.train.model import GPT

    cfg, _, _, _ = recipe("cpu", 4000)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    rows, total_ours, total_floor, record = [], 0.0, 0.0, {}
    for t, (name, length, scored) in enumerate(TASKS):
        seqs, spans = items(args.items, length, scored, cfg.vocab_size, seed=t)
        batches = exact_length_batches(seqs, args.batch_size)
        secs = interleaved({"ours": lambda: score_spans(model, seqs, spans, batch_size=args.batch_size),
                            "floor": lambda: floor(model, seqs, spans, batches)}, args.rounds)
        total_ours, total_floor = total_ours + secs["ours"], total_floor + secs["floor"]
        real = sum(map(len, seqs))
        record[name] = {"items_per_s": args.items / secs["ours"], "ratio": secs["ours"] / secs["floor"],
                        "token_rows_ours_per_real": token_rows(seqs, args.batch_size) / real,
                        "floor_batches": len(batches)}
        rows.append([name, f"{real / len(seqs):.0f}", f"{args.items / secs['ours']:,.0f}",
                     f"{args.items / secs['floor']:,.0f}", f"{token_rows(seqs, args.batch_size) / real:.2f}",
                     f"{real / len(batches):.0f}", f"{secs['ours'] / secs['floor']:.2f}"])
    print(f"eval_layerwise: cpu shape ({cfg.n_layer}L d{cfg.d_model}, {cfg.n_layer + 1} layers scored, fp32), "
          f"{args.items} items per task, batch {args.batch_size}; {machine()}")
    print(table(["task shape", "mean len", "items/s", "floor items/s", "ours rows/real", "floor rows/forward",
                 "cost / floor"], rows))
    ratio = total_ours / total_floor
    save("eval_layerwise", {"tasks": record, "ratio": ratio, "goal": args.goal, "reference": "exact-length floor"})
    print(verdict("all-layer scoring cost / lower bound (exact-length, no padding), all tasks", ratio, args.goal,
                  higher_is_better=False))


if __name__ == "__main__":
    main()
