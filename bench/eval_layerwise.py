"""All-layer scoring (modevo.score.logprob.score_spans) against its ideal cost, on the same items.

The ideal: the items sorted by length and cut into the same batches, each padded only to its longest
item, ONE forward pass keeping the L+1 hidden states, and one LM-head projection per layer at exactly the
scored positions. score_spans does that plus what makes scores identical at every batch size (lengths
padded to a multiple of PAD_MULTIPLE, lens rows to a multiple of LENS_ROWS) and its bookkeeping (fp64 sums
per item). Items are synthetic token sequences whose lengths follow each task's shape in a 4k-BPE view and
in a 50 Hz frame view (measured at cpu scale); the model is the cpu shape at random init, fp32 as scoring runs.

    python bench/eval_layerwise.py [--items 256] [--batch-size 32]
"""

from __future__ import annotations

import argparse

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


def ideal(model, seqs, spans, batch_size: int) -> None:
    import numpy as np
    import torch

    order = np.argsort([len(s) for s in seqs], kind="stable")
    with torch.no_grad():
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            T = max(len(seqs[i]) for i in idx)
            ids = torch.zeros((len(idx), T), dtype=torch.long)
            rows, cols, tgt = [], [], []
            for b, i in enumerate(idx):
                n = len(seqs[i])
                ids[b, :n] = torch.from_numpy(seqs[i])
                rows += [b] * spans[i]
                cols += range(n - spans[i] - 1, n - 1)
                tgt.append(torch.from_numpy(seqs[i][n - spans[i]:]))
            rows, cols, tgt = torch.tensor(rows), torch.tensor(cols), torch.cat(tgt)
            _, hiddens = model(ids, return_hidden=True)
            for h in hiddens:
                logits = model.lens(h[rows, cols][None])[0]
                (logits.gather(1, tgt[:, None])[:, 0] - torch.logsumexp(logits, 1)).sum()


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
    rows, total_ours, total_ideal, record = [], 0.0, 0.0, {}
    for t, (name, length, scored) in enumerate(TASKS):
        seqs, spans = items(args.items, length, scored, cfg.vocab_size, seed=t)
        secs = interleaved({"ours": lambda: score_spans(model, seqs, spans, batch_size=args.batch_size),
                            "ideal": lambda: ideal(model, seqs, spans, args.batch_size)}, args.rounds)
        total_ours, total_ideal = total_ours + secs["ours"], total_ideal + secs["ideal"]
        record[name] = {"items_per_s": args.items / secs["ours"], "ratio": secs["ours"] / secs["ideal"]}
        rows.append([name, f"{sum(map(len, seqs)) / len(seqs):.0f}", f"{args.items / secs['ours']:,.0f}",
                     f"{args.items / secs['ideal']:,.0f}", f"{secs['ours'] / secs['ideal']:.2f}"])
    print(f"eval_layerwise: cpu shape ({cfg.n_layer}L d{cfg.d_model}, {cfg.n_layer + 1} layers scored, fp32), "
          f"{args.items} items per task, batch {args.batch_size}; {machine()}")
    print(table(["task shape", "mean len", "items/s", "ideal items/s", "cost / ideal"], rows))
    ratio = total_ours / total_ideal
    save("eval_layerwise", {"tasks": record, "ratio": ratio, "goal": args.goal})
    print(verdict("all-layer scoring cost / ideal, all tasks", ratio, args.goal, higher_is_better=False))


if __name__ == "__main__":
    main()
