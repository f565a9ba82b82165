"""Scoring levers for the cpu reproduction, each against the path it replaces, on the same items.

Contenders, per task shape (the cpu model shape at random init, fp32 as scoring runs):
- before: every member a full sequence [SEP] context continuation, through `model(ids, return_hidden=True)`,
  which also computes the full-vocabulary logits at every position (nothing reads them);
- no logits: the same sequences through `model.hidden_states` (the lens only at scored positions);
- shared context: `score_shared_prefix`, the context once per pair, both continuations from its cached
  keys and values (what tasks with context use now).
Shapes follow the cpu task sets: tSC pairs cut to `cloze.window_words` = 22 words (context + ending), an
ending of 8-16 words, at ~1.3 tokens per word (4k BPE) and ~15 frames per word (50 Hz); sBLIMP sentences
of 5-15 words without context. Besides time, the largest |difference| of a summed log-probability from the
"before" path and the pair decisions that flip (there must be none beyond near-ties).

    python bench/eval_speed.py [--pairs 128] [--batch-size 32]
"""

from __future__ import annotations

import argparse

import common  # noqa: F401
from common import interleaved, machine, recipe, save, table, verdict

# name, vocabulary, tokens per word, (ending words lo, hi), window words (None: no context)
SHAPES = [("tsc text-bpe", 4000, 1.3, (8, 16), 22), ("tsc 50 Hz frames", 501, 15.0, (8, 16), 22),
          ("sblimp 50 Hz frames", 501, 15.0, (5, 15), None)]


class LogitsForward:
    """The model as the scorer used it before: only the contract's forward (full logits every position)."""

    def __init__(self, model):
        self.model, self.config = model, model.config

    def __call__(self, ids, return_hidden=False):
        return self.model(ids, return_hidden=return_hidden)

    def parameters(self):
        return self.model.parameters()

    def lens(self, h):
        return self.model.lens(h)


def pairs(n: int, vocab: int, per_word: float, ending: tuple, window: int | None, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    prefixes, conts = [], []
    for _ in range(n):
        words = int(rng.integers(ending[0], ending[1] + 1))
        ctx_words = (window - words) if window else 0
        ctx = rng.integers(1, vocab, int(round(ctx_words * per_word)))
        prefixes.append(np.concatenate([[0], ctx]).astype(np.int64))
        conts.append(tuple(rng.integers(1, vocab, max(1, int(round((words + d) * per_word)))) for d in (0, 1)))
    return prefixes, conts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=128, help="pairs per task shape")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--goal", type=float, default=1.25, help="speed-up of the new path on tSC shapes")
    ap.add_argument("--shape", default="cpu", help="model recipe (cpu; smoke keeps the test fast)")
    args = ap.parse_args()
    import numpy as np
    import torch

    from modevo.score.logprob import score_shared_prefix, score_spans
    from modevo.score.pairs import item_scores
    from modevo.train.model import GPT

    rows, record, before_total, after_total = [], {}, 0.0, 0.0
    for t, (name, vocab, per_word, ending, window) in enumerate(SHAPES):
        cfg, _, _, _ = recipe(args.shape, vocab)
        torch.manual_seed(0)
        model = GPT(cfg).eval()
        prefixes, conts = pairs(args.pairs, vocab, per_word, ending, window, seed=t)
        room = cfg.max_seq_len
        keep = [i for i in range(len(prefixes)) if len(prefixes[i]) + max(map(len, conts[i])) <= room]
        prefixes, conts = [prefixes[i] for i in keep], [conts[i] for i in keep]
        seqs = [np.concatenate([p, c]) for p, pair in zip(prefixes, conts) for c in pair]
        spans = [len(c) for pair in conts for c in pair]
        old = LogitsForward(model)
        fns = {"before": lambda: score_spans(old, seqs, spans, batch_size=args.batch_size),
               "no logits": lambda: score_spans(model, seqs, spans, batch_size=args.batch_size)}
        if window:
            fns["shared context"] = lambda: score_shared_prefix(model, prefixes, conts, batch_size=args.batch_size)
        secs = interleaved(fns, args.rounds)
        ref = fns["before"]().sums
        new_name = "shared context" if window else "no logits"
        new = fns[new_name]().sums
        diff = float(np.abs(new - ref).max())
        decide = lambda s: item_scores(s[0::2, -1], s[1::2, -1], 1e-4)  # noqa: E731
        margin = np.abs(ref[0::2, -1] - ref[1::2, -1])
        flips = int(((decide(new) != decide(ref)) & (margin > 2 * diff)).sum())
        record[name] = {"seconds": secs, "max_abs_diff_nats": diff, "flips_beyond_near_ties": flips,
                        "pairs": len(prefixes)}
        if window:
            before_total, after_total = before_total + secs["before"], after_total + secs[new_name]
        rows.append([name, str(len(prefixes)), f"{np.mean([len(s) for s in seqs]):.0f}", f"{secs['before']:.2f}",
                     f"{secs['no logits']:.2f}", f"{secs.get('shared context', float('nan')):.2f}",
                     f"{secs['before'] / secs[new_name]:.2f}", f"{diff:.1e}", str(flips)])
    print(f"eval_speed: {args.shape} shape ({cfg.n_layer}L d{cfg.d_model}, all layers scored, fp32), batch "
          f"{args.batch_size}; {machine()}")
    print(table(["task shape", "pairs", "mean seq len", "before s", "no logits s", "shared ctx s", "speed-up",
                 "max |Δ| nats", "flips"], rows))
    ratio = before_total / after_total
    save("eval_speed", {"shapes": record, "ratio": ratio, "goal": args.goal})
    print(verdict("scoring speed-up on tSC shapes (shared context + no logits vs before)", ratio, args.goal))


if __name__ == "__main__":
    main()
