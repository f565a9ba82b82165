"""Peak memory of the corpus + unit build at N and 2N sentences: the ratio says whether memory grows with
the corpus (a streaming build stays flat; one that holds the corpus in memory doubles). Peak RSS is summed
over the whole process tree (worker pools included), sampled every 0.2 s; each build runs in a fresh cache.

    python bench/memory.py [--documents 4] [--sentences 150]   (N = documents × sentences)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import common  # noqa: F401
from common import build_corpus_and_units, machine, save, table, verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--documents", type=int, default=4)
    ap.add_argument("--sentences", type=int, default=150, help="per document at N (2N doubles it)")
    ap.add_argument("--tokenizers", default="mel-kmeans")
    ap.add_argument("--goal", type=float, default=1.2)
    args = ap.parse_args()
    results = {}
    for mult in (1, 2):
        with tempfile.TemporaryDirectory(prefix="modevo-bench-") as tmp:
            results[mult] = build_corpus_and_units(Path(tmp), args.documents, args.sentences * mult,
                                                   args.tokenizers.split(","))
    rows = []
    for name in results[1]["stages"]:
        a, b = (results[m]["stages"][name]["peak_rss"] / 2**20 for m in (1, 2))
        rows.append([name, f"{a:,.0f}", f"{b:,.0f}", f"{b / a:.2f}"])
    peak = {m: max(s["peak_rss"] for s in results[m]["stages"].values()) for m in (1, 2)}
    print(f"memory: N = {results[1]['sentences']:,} sentences, 2N = {results[2]['sentences']:,}; {machine()}")
    print(table(["stage", "peak RSS MB at N", "at 2N", "2N / N"], rows))
    ratio = peak[2] / peak[1]
    save("memory", {"n": results[1], "2n": results[2], "ratio": ratio, "goal": args.goal})
    print(verdict("peak RSS at 2N / at N", ratio, args.goal, higher_is_better=False))


if __name__ == "__main__":
    main()
