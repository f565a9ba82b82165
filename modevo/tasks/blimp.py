"""sBLIMP items: BLiMP's written minimal pairs (Warstadt et al. 2020), one jsonl file per paradigm.

The default is the vendored subset (modevo/resources/blimp, 60 pairs per paradigm, see its NOTE.txt) so the
project runs without the shared data; a folder of the full upstream files, or one file, reads the same way.
Every problem in a file is one InputError line naming the file and line, never a traceback deep inside
scoring: a silently broken pair would shift an accuracy without anyone noticing.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from modevo.errors import InputError
from modevo.tasks.base import Pair, TaskSet

VENDORED = Path(__file__).resolve().parents[1] / "resources" / "blimp"
REQUIRED = ("sentence_good", "sentence_bad", "UID", "pairID", "field", "linguistics_term")


def parse_line(line: str, where: str) -> dict:
    """One jsonl line → the six required fields as non-empty strings (pairID may be an int upstream).

    `where` ("file, line N") prefixes every error. The good == bad check is left to the caller, since
    upstream BLiMP has such pairs and the caller decides whether to skip them.
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    rec = {}
    for key in REQUIRED:
        if key not in obj:
            raise InputError(f"{where}: field '{key}' is missing")
        value = obj[key]
        if key == "pairID" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            kind = "an int or a string" if key == "pairID" else "a string"
            raise InputError(f"{where}: field '{key}' must be {kind}, got {type(value).__name__}")
        if not value.strip():
            raise InputError(f"{where}: field '{key}' is empty")
        rec[key] = value
    return rec


def _jsonl_files(path: Path) -> list[Path]:
    if not path.exists():
        raise InputError(f"BLiMP path not found: {path}")
    if path.is_file():
        return [path]
    files = sorted((f for f in path.glob("*.jsonl") if f.is_file() and not f.name.startswith(".")),
                   key=lambda f: f.name)
    if not files:
        raise InputError(f"BLiMP folder has no *.jsonl files: {path}")
    return files


def _read_file(file: Path, seen: dict[str, str], skip_identical: bool, skipped: list[str]) -> list[Pair]:
    """The pairs of one paradigm file, in file order; `seen` maps ids already read to where (across files)."""
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise InputError(f"BLiMP file {file}: cannot read ({e.strerror})") from None
    pairs: list[Pair] = []
    uid = None
    for n, bline in enumerate(raw.split(b"\n"), 1):
        where = f"BLiMP file {file}, line {n}"
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{where}: not valid UTF-8") from None
        if not line.strip():
            continue
        rec = parse_line(line, where)
        if uid is None:
            uid = rec["UID"]
        elif rec["UID"] != uid:
            raise InputError(f"{where}: UID '{rec['UID']}' differs from '{uid}' of the lines before")
        pid = f"{rec['UID']}/{rec['pairID']}"
        if pid in seen:
            raise InputError(f"{where}: duplicate pairID '{rec['pairID']}' in paradigm '{uid}' "
                             f"(first at {seen[pid]})")
        seen[pid] = f"{file.name}, line {n}"
        if rec["sentence_good"] == rec["sentence_bad"]:
            if skip_identical:
                skipped.append(pid)
                continue
            raise InputError(f"{where}: sentence_good and sentence_bad are identical (not a minimal pair; "
                             f"skip_identical=True drops such pairs, upstream BLiMP has 7)")
        labels = (("field", rec["field"]), ("paradigm", uid), ("phenomenon", rec["linguistics_term"]))
        pairs.append(Pair(id=pid, correct=rec["sentence_good"], incorrect=rec["sentence_bad"], labels=labels))
    if uid is None:
        raise InputError(f"BLiMP file {file}: empty (no pairs)")
    return pairs


def load_blimp(path: str | Path | None = None, per_paradigm: int | None = None,
               paradigms: list[str] | None = None, *, skip_identical: bool = False) -> TaskSet:
    """BLiMP pairs as the "sblimp" TaskSet; files sorted by name so the order and content hash are stable.

    path: a folder of *.jsonl files or one file (default: the vendored subset). per_paradigm keeps the first
    N pairs of each paradigm in file order; paradigms keeps only those UIDs. skip_identical drops pairs whose
    two sentences are equal (7 in the full upstream data) instead of failing; their ids go to source.
    """
    root = Path(path) if path is not None else VENDORED
    if per_paradigm is not None and (isinstance(per_paradigm, bool) or not isinstance(per_paradigm, int)
                                     or per_paradigm < 1):
        raise InputError(f"BLiMP per_paradigm must be a positive integer, got {per_paradigm!r}")
    files = _jsonl_files(root)
    seen: dict[str, str] = {}
    skipped: list[str] = []
    by_uid: dict[str, list[Pair]] = {}
    for f in files:
        for p in _read_file(f, seen, skip_identical, skipped):
            by_uid.setdefault(p.label("paradigm"), []).append(p)
    if paradigms is not None:
        wanted = list(dict.fromkeys(paradigms))
        if not wanted:
            raise InputError("BLiMP paradigms filter is empty (use None for all paradigms)")
        unknown = [u for u in wanted if u not in by_uid]
        if unknown:
            hints = []
            for u in unknown:
                close = difflib.get_close_matches(u, list(by_uid), n=1, cutoff=0.0)
                hints.append(f"'{u}' (closest: '{close[0]}')" if close else f"'{u}'")
            raise InputError(f"unknown BLiMP paradigm {', '.join(hints)} in {root}")
        by_uid = {u: ps for u, ps in by_uid.items() if u in wanted}
    pairs = tuple(p for ps in by_uid.values() for p in (ps[:per_paradigm] if per_paradigm else ps))
    resolved = root.resolve()
    source = {
        "path": str(resolved),
        "vendored": resolved == VENDORED or VENDORED in resolved.parents,
        "files": [f.name for f in files],
        "pairs": len(pairs),
        "per_paradigm": per_paradigm,
        "paradigms": len(by_uid),
    }
    if skip_identical:
        source["skipped_identical"] = skipped
    return TaskSet(name="sblimp", pairs=pairs, source=source, breakdowns=("field", "phenomenon", "paradigm"))
