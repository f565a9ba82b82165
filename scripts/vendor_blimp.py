"""Vendor a fixed subset of BLiMP into modevo/resources/blimp so sBLIMP runs without the shared data.

Per paradigm file: rank the pairs by sha256 of "UID/pairID", keep the first N, write them in their original
file order as the source's own bytes (so the loader reads the full data and the subset alike). Pairs whose
two sentences are equal (7 upstream) are not minimal pairs and are never picked. Usage:

    python scripts/vendor_blimp.py --source /work/shared/data/blimp [--per-paradigm 60] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from modevo.cache import file_digest  # noqa: E402
from modevo.tasks.blimp import load_blimp, parse_line  # noqa: E402

UPSTREAM = "alexwarstadt/blimp"
COMMIT = "3e56b06fcabca9b30822fc66435fca6b1aa40bb1"
CITATION = ("Alex Warstadt, Alicia Parrish, Haokun Liu, Anhad Mohananey, Wei Peng, Sheng-Fu Wang, "
            "Samuel R. Bowman. 2020. BLiMP: The Benchmark of Linguistic Minimal Pairs for English. "
            "TACL 8:377-392.")


def rank_key(uid: str, pair_id: str) -> str:
    return hashlib.sha256(f"{uid}/{pair_id}".encode()).hexdigest()


def subset(file: Path, n: int) -> tuple[list[bytes], dict, int, list[str]]:
    """(kept raw lines in file order, first record, pairs in the source, excluded identical ids)."""
    lines = [ln for ln in file.read_bytes().splitlines(keepends=True) if ln.strip()]
    recs = [parse_line(ln.decode("utf-8"), f"{file}, line {i}") for i, ln in enumerate(lines, 1)]
    excluded = [f"{r['UID']}/{r['pairID']}" for r in recs if r["sentence_good"] == r["sentence_bad"]]
    eligible = [i for i, r in enumerate(recs) if r["sentence_good"] != r["sentence_bad"]]
    picked = sorted(sorted(eligible, key=lambda i: rank_key(recs[i]["UID"], recs[i]["pairID"]))[:n])
    kept = [lines[i] if lines[i].endswith(b"\n") else lines[i] + b"\n" for i in picked]
    return kept, recs[0], len(recs), excluded


def note(n: int, n_files: int, excluded: list[str]) -> str:
    return f"""BLiMP subset: {n} minimal pairs from each of the {n_files} BLiMP paradigms, one upstream jsonl file per
paradigm (fields sentence_good, sentence_bad, field, linguistics_term, UID, ..., pairID). This is modevo's
embedded default for the sBLIMP task (modevo.tasks.blimp.load_blimp); the full data loads the same way.

Selection rule (scripts/vendor_blimp.py): in each paradigm file, rank the pairs by sha256 of
"UID/pairID" (hex, ascending), keep the first {n}, and write them in their original file order as the
unmodified source lines. Pairs whose sentence_good equals sentence_bad are not minimal pairs and are never
picked ({len(excluded)} upstream):
{textwrap.fill(", ".join(excluded) or "none", 104, initial_indent="  ", subsequent_indent="  ")}
MANIFEST.tsv lists per paradigm the pairs kept and in the source and the sha256 of the source and subset files.

Source: GitHub {UPSTREAM}, folder data/, commit {COMMIT}.
Licence: CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/), as stated in the upstream README.
Attribution: {CITATION}
Changes: selection of {n} of 1,000 pairs per paradigm; no line altered.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, type=Path, help="folder of the 67 upstream BLiMP jsonl files")
    ap.add_argument("--per-paradigm", type=int, default=60)
    ap.add_argument("--out", type=Path, default=Path("modevo/resources/blimp"))
    args = ap.parse_args(argv)

    files = sorted(args.source.glob("*.jsonl"), key=lambda f: f.name)
    if not files:
        ap.error(f"no *.jsonl files in {args.source}")
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.jsonl"):  # a re-run must not leave paradigms of an earlier source behind
        old.unlink()
    rows = ["uid\tfield\tlinguistics_term\tpairs_kept\tpairs_source\tsource_sha256\tsubset_sha256"]
    all_excluded: list[str] = []
    for f in files:
        kept, first, n_source, excluded = subset(f, args.per_paradigm)
        all_excluded += excluded
        dest = args.out / f.name
        dest.write_bytes(b"".join(kept))
        rows.append("\t".join([first["UID"], first["field"], first["linguistics_term"], str(len(kept)),
                               str(n_source), file_digest(f), file_digest(dest)]))
    (args.out / "MANIFEST.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (args.out / "NOTE.txt").write_text(note(args.per_paradigm, len(files), all_excluded), encoding="utf-8")
    ts = load_blimp(args.out)  # the subset must pass the loader's checks
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"{len(files)} paradigms, {len(ts)} pairs, {size / 1024:.0f} KB in {args.out}; "
          f"content hash {ts.content_hash}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
