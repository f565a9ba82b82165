"""Corpus and unit building speed: audio seconds produced (summed over the training renderings) per second
of wall time, units included — the reference is real time itself, measured in the same run.

Builds the cpu reproduction's corpus stage (text, phones, the fixed and varied renderings) and its unit
stage (the tokenizer trained on the renderings, every rendering encoded) into a fresh temporary cache, with
every core the machine has (corpus.num_proc defaults to all). By default at the cpu reproduction's own size
(10 novels × ≤2,800 sentences, ~30 h per rendering; ~7 min here): the unit tokenizer's k-means is a fixed
cost (40 Lloyd iterations over at most 1 M frames, ~20-40 s at this CPU's fp32 matmul peak), so a smaller
corpus understates the rate the reproduction gets (4 novels × 300 sentences: ~255x, measured).

    python bench/corpus_build.py [--documents 10] [--sentences 2800] [--tokenizers mel-kmeans]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import common  # noqa: F401
from common import build_corpus_and_units, machine, save, table, verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--documents", type=int, default=10, help="vendored novels (10: all of them)")
    ap.add_argument("--sentences", type=int, default=2800, help="per document (2,800: the cpu corpus)")
    ap.add_argument("--tokenizers", default="mel-kmeans", help="comma-separated unit tokenizers to build")
    ap.add_argument("--goal", type=float, default=500.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="modevo-bench-") as tmp:
        out = build_corpus_and_units(Path(tmp), args.documents, args.sentences, args.tokenizers.split(","))
    audio = sum(out["audio_seconds"].values())
    wall = sum(s["seconds"] for s in out["stages"].values())
    rows = [[name, f"{s['seconds']:.1f}", f"{audio / s['seconds']:,.0f}", f"{s['peak_rss'] / 2**20:,.0f}"]
            for name, s in out["stages"].items()]
    rows.append(["all stages", f"{wall:.1f}", f"{audio / wall:,.0f}", ""])
    renders = ", ".join(f"{k} {v / 3600:.2f} h" for k, v in out["audio_seconds"].items())
    print(f"corpus_build: {out['sentences']:,} sentences ({args.documents} novels × ≤{args.sentences}), "
          f"audio {renders}; {machine()}")
    print(table(["stage", "seconds", "x real time", "peak RSS MB"], rows))
    save("corpus_build", {**out, "x_real_time": audio / wall, "goal": args.goal})
    print(verdict("audio seconds per wall second, corpus + units", audio / wall, args.goal))


if __name__ == "__main__":
    main()
