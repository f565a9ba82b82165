"""What checking every cache read costs: sha256 of a view's files and of a corpus shard, against what
reading them costs anyway.

Since issue 26 a view's manifest records the sha256 of each of its files and `load_view` checks them, and
every Arrow shard (corpus, renderings, units) carries data.sha256 that `load_shard` checks. This bench times,
in alternation (bench/common.interleaved), on synthetic data of the real layout:

  view   load_view(verify=False) (memory-maps, reads nothing) | the check alone (sha256 of every file
         against the manifest) | one pass over every token of the streams (the least any consumer of the view
         reads: one epoch reads each token once)
  shard  load_shard + every row as Python values, unchecked (what `views build` does per shard) | the check
         alone (sha256 of the shard's files against data.sha256)

Files are in the page cache (just written): this is the CPU cost of sha256, not the disk's.

    python bench/verify_cost.py                    # 50M-token view, 20k-row shard
    python bench/verify_cost.py --tokens 5000000   # quicker
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import common  # noqa: F401
from common import interleaved, machine, save, table

TRAIN_TOKENS_PER_S = 8628  # cpu shape (6L d256), bench/RESULTS.md "mfu" table: training reads this many per s


def make_view(root: Path, tokens: int, vocab: int = 4000, seed: int = 0) -> Path:
    from modevo.cache import file_digest
    from modevo.views.build import StreamWriter, stream_dtype

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    out = StreamWriter(root, stream_dtype(vocab))
    per_shard, done, n = 2000, 0, 0
    while done < tokens:
        lens = rng.integers(5, 60, per_shard)
        rows = [{"id": f"u{n + i}", "split": "train" if (n + i) % 20 else "valid", "words": ["w"] * int(k // 2)}
                for i, k in enumerate(lens)]
        out.add_shard(rows, [rng.integers(1, vocab, int(k)) for k in lens])
        done, n = done + int(lens.sum()), n + per_shard
    summary = out.close()
    summary.pop("lengths")
    (root / "vocab.json").write_text(json.dumps(["<sep>"] + [f"t{i}" for i in range(1, vocab)]))
    manifest = {"view": "text-bpe", "stage_version": "bench", **summary}
    manifest["files"] = {p.name: file_digest(p) for p in sorted(root.iterdir()) if p.is_file()}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def make_shard(folder: Path, rows: int, seed: int = 0) -> Path:
    import datasets

    from modevo.shards import save_shard

    rng = np.random.default_rng(seed)
    words = [f"word{i}" for i in range(5000)]
    table_ = {"id": [], "split": [], "text": [], "words": [], "phones": []}
    for i in range(rows):
        ws = [words[j] for j in rng.integers(0, len(words), int(rng.integers(4, 25)))]
        table_["id"].append(f"doc{i // 100}-{i}")
        table_["split"].append("train")
        table_["text"].append(" ".join(ws))
        table_["words"].append(ws)
        table_["phones"].append([["AH", "B", "K"][: 1 + len(w) % 3] for w in ws])
    s = datasets.Value("string")
    features = datasets.Features({"id": s, "split": s, "text": s, "words": datasets.Sequence(s),
                                  "phones": datasets.Sequence(datasets.Sequence(s))})
    save_shard(folder, table_, features)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=50_000_000, help="tokens in the synthetic view (uint16)")
    ap.add_argument("--rows", type=int, default=20_000, help="rows in the synthetic corpus shard")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import datasets

    import modevo.shards as shards
    from modevo.cache import verify_files
    from modevo.views.build import load_view

    datasets.disable_progress_bars()

    with tempfile.TemporaryDirectory(prefix="modevo-verify-") as tmp:
        view_root = make_view(Path(tmp) / "view", args.tokens)
        shard = make_shard(Path(tmp) / "shards" / "00000" / "data", args.rows)
        view_bytes = sum(p.stat().st_size for p in view_root.iterdir())
        shard_bytes = sum(p.stat().st_size for p in shard.rglob("*") if p.is_file())

        def read_all():
            v = load_view(view_root, verify=False)
            return sum(int(np.add.reduce(v.stream(s), dtype=np.int64)) for s in ("train", "valid", "test"))

        def rows():
            real = shards.verify_shard
            shards.verify_shard = lambda folder: None  # the read alone; the check is timed apart
            try:
                ds = shards.load_shard(shard)
                return [dict(zip(ds.column_names, vals)) for vals in zip(*(ds[c] for c in ds.column_names))]
            finally:
                shards.verify_shard = real

        recorded = json.loads((view_root / "manifest.json").read_text())["files"]
        t = interleaved({"open": lambda: load_view(view_root, verify=False),
                         "check": lambda: verify_files(view_root, recorded, "view", ""),
                         "one pass": read_all,
                         "shard": rows, "shard check": lambda: shards.verify_shard(shard)}, args.rounds)
    hash_s = t["check"]
    epoch_s = args.tokens / TRAIN_TOKENS_PER_S
    out = [["view: open (memory-map)", f"{view_bytes / 2**20:.0f} MB", t["open"]],
           ["view: the check (sha256 of every file)", f"{view_bytes / 2**20:.0f} MB", t["check"]],
           ["view: one pass over every token", f"{view_bytes / 2**20:.0f} MB", t["one pass"]],
           ["shard: load + every row, unchecked", f"{shard_bytes / 2**20:.1f} MB", t["shard"]],
           ["shard: the check (sha256 of its files)", f"{shard_bytes / 2**20:.1f} MB", t["shard check"]]]
    print(f"verify_cost: {args.tokens:,} tokens (uint16), {args.rows:,} shard rows, median of {args.rounds}; {machine()}")
    print(table(["what", "size", "seconds"], [[a, b, f"{c:.3f}"] for a, b, c in out]))
    print(f"sha256 of the view: {hash_s:.2f} s ({view_bytes / 2**20 / max(hash_s, 1e-9):.0f} MB/s) = "
          f"{hash_s / t['one pass']:.2f}x one pass over its tokens; "
          f"{100 * hash_s / epoch_s:.3f}% of one epoch of cpu-shape training ({TRAIN_TOKENS_PER_S} tokens/s)")
    shard_ratio = (t["shard"] + t["shard check"]) / t["shard"]
    print(f"RATIO checked / unchecked shard read: {shard_ratio:.2f}x")
    save("verify_cost", {"tokens": args.tokens, "rows": args.rows, "seconds": t, "view_bytes": view_bytes,
                         "shard_bytes": shard_bytes, "view_hash_s": hash_s, "shard_ratio": shard_ratio})


if __name__ == "__main__":
    main()
