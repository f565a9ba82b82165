"""ZeroSpeech 2021 (sLM21) lexical and syntactic gold.csv in, submission score files out.

Where the format comes from (public code, read for the column names, none of it copied):
- zerospeech/zerospeech2021, zerospeech2021/lexical.py and zerospeech2021/syntactic.py (the official
  2021 scorer): gold.csv is read with a header row, comma separated, indexed by `filename`; the lexical
  file has the columns `filename, id, voice, frequency, word, phones, length, correct`, the syntactic one
  `filename, id, voice, type, subtype, correct, transcription` (the column order there is inferred from
  the scorer's positional lookups; we read by header name, never by position). `correct` is 1 for the
  real word / grammatical sentence and 0 for the pseudoword / ungrammatical one. The scorer credits a
  pair 1 when the correct member scores higher, 0.5 on a tie, and averages over voices by `id`
  (lexical) or by (`type`, `subtype`, `id`) (syntactic).
- zerospeech/benchmarks, zerospeech/benchmarks/sLM_21/lexical.py: pairs lexical rows by (`voice`, `id`)
  (the 2021 scorer paired them by row order) and notes that in the released dataset the pseudowords'
  `word` is empty, so a pseudoword has only its IPA `phones`.
- zerospeech/benchmarks, zerospeech/benchmarks/_benchmarks/sLM_21/instructions.md and the 2021 scorer's
  validate(): a submission holds lexical/dev.txt, lexical/test.txt, syntactic/dev.txt,
  syntactic/test.txt; each line is `<filename> <score>` (one space, no header, the wav's name without
  folder or extension, any float; order does not matter) and every wav of the set needs exactly one line.

How we read them:
- the task names default to "swuggy-zr21" and "sblimp-zr21", apart from the corpus-drawn "swuggy" and the
  BLiMP-text "sblimp" (pass name= to change them).
- rows are paired by their id and voice (syntactic: type, subtype, id and voice where those columns
  exist, as the scorer groups), never by row order: shuffled rows give the same TaskSet. Pairs are
  sorted by that key. Pair ids are f"{id}/{voice}" (syntactic: f"{type}/{subtype}/{id}/{voice}"); a
  pair's `group` is its item without the voice, so the bootstrap resamples items with all their voices,
  as the scorer's per-item mean over voices does.
- lexical labels: voice, frequency band (the scorer's bands oov, 1-5, 6-20, 21-100, >100 with its own
  binning, [0,1) [1,5) [5,20) [20,100) [100,inf), kept as is so breakdowns match the official tables;
  "unknown" when empty) and length; syntactic labels: voice, type, subtype.
- sWUGGY pseudowords have no usable spelling: Pair.incorrect is "" and both members carry their
  pronunciation from the IPA `phones` column mapped to our 39 phones (modevo.tasks.ipa), one word each:
  ((p1, p2, ...),). Pair.correct is the real word's spelling. The item renderer renders phone and speech
  views from those phones and skips the pair in text views with the count "no_spelling". A spelling
  given for a pseudoword (older releases) is ignored and counted (source["nonword_spellings_ignored"]).
  A pair whose IPA holds a symbol we cannot map is dropped: source["unmappable"] counts the symbols,
  source["dropped_unmappable"] the pairs.
- a syntactic pair whose two sentences are identical is kept (the scorer counts it a tie) and listed in
  source["identical"].
- source["filenames"] = {pair_id: [correct_filename, incorrect_filename]} (and source["dropped_filenames"]
  for dropped pairs) so scores can be written back with submission_scores() and write_submission().

Every problem is one InputError line naming the file, the line (1-based, the header is line 1) and the
problem: missing file, empty file, invalid UTF-8, missing columns, a wrong field count, an empty key
field, a bad `correct`, a duplicate filename, a duplicate (id, voice, correct) row, an unpaired row.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from pathlib import Path

from modevo.cache import atomic_write_bytes
from modevo.errors import InputError
from modevo.tasks.base import Pair, TaskSet
from modevo.tasks.ipa import ipa_to_arpabet

LEXICAL_REQUIRED = ("filename", "id", "voice", "word", "phones", "correct")
SYNTACTIC_REQUIRED = ("filename", "id", "voice", "transcription", "correct")
# the official scorer's frequency bands (pandas.cut over [0, 1, 5, 20, 100, inf), right=False)
FREQUENCY_BANDS = ((1, "oov"), (5, "1-5"), (20, "6-20"), (100, "21-100"), (math.inf, ">100"))


def frequency_band(count: float) -> str:
    return next(label for upper, label in FREQUENCY_BANDS if count < upper)


def _natural(s: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t)


def _read_rows(path: str | Path, required: tuple[str, ...], what: str) -> tuple[Path, list[tuple[int, dict]]]:
    """A gold.csv → (path, [(line number, {column: stripped value})]) with the file-level checks done."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{what} gold file not found: {file}")
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise InputError(f"{what} gold file {file}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise InputError(f"{what} gold file {file}, line {line}: not valid UTF-8") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InputError(f"{what} gold file {file}, line 1: empty file (no header, no rows)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
        dup = [h for h, n in Counter(header).items() if n > 1]
        if dup:
            raise InputError(f"{what} gold file {file}, line 1: duplicate column(s) {', '.join(map(repr, dup))}")
        missing = [c for c in required if c not in header]
        if missing:
            raise InputError(f"{what} gold file {file}, line 1: missing column(s) "
                             f"{', '.join(map(repr, missing))} (found: {', '.join(header)})")
        rows = []
        for fields in reader:
            n = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise InputError(f"{what} gold file {file}, line {n}: expected {len(header)} fields, "
                                 f"got {len(fields)}")
            rows.append((n, {h: f.strip() for h, f in zip(header, fields)}))
    except csv.Error as e:
        raise InputError(f"{what} gold file {file}, line {reader.line_num}: malformed CSV ({e})") from None
    if not rows:
        raise InputError(f"{what} gold file {file}, line 1: empty file (a header and no rows)")
    return file, rows


def _pair_rows(file: Path, rows: list[tuple[int, dict]], key_cols: tuple[str, ...], what: str,
               members: tuple[str, str]) -> dict[tuple, dict[int, tuple[int, dict]]]:
    """Rows → {key: {1: (line, row), 0: (line, row)}}, checking values, duplicates and that all are paired."""
    where = f"{what} gold file {file}"
    by_key: dict[tuple, dict[int, tuple[int, dict]]] = {}
    filenames: dict[str, int] = {}
    for n, row in rows:
        for col in ("filename", *key_cols):
            if not row[col]:
                raise InputError(f"{where}, line {n}: empty '{col}'")
        if re.search(r"\s", row["filename"]):
            raise InputError(f"{where}, line {n}: filename '{row['filename']}' contains whitespace "
                             "(a submission line is '<filename> <score>')")
        if row["filename"] in filenames:
            raise InputError(f"{where}, line {n}: duplicate filename '{row['filename']}' "
                             f"(first at line {filenames[row['filename']]})")
        filenames[row["filename"]] = n
        value = row["correct"]
        if value not in ("0", "1"):
            raise InputError(f"{where}, line {n}: 'correct' must be 0 or 1, got '{value}'")
        key = tuple(row[c] for c in key_cols)
        slot = by_key.setdefault(key, {})
        if int(value) in slot:
            desc = ", ".join(f"{c} '{v}'" for c, v in zip(key_cols, key))
            raise InputError(f"{where}, line {n}: duplicate row for {desc}, correct={value} "
                             f"(first at line {slot[int(value)][0]})")
        slot[int(value)] = (n, row)
    for key, slot in by_key.items():
        if len(slot) != 2:
            (have, (n, _)), = slot.items()
            desc = ", ".join(f"{c} '{v}'" for c, v in zip(key_cols, key))
            raise InputError(f"{where}, line {n}: unpaired row: {desc} has a {members[have]} "
                             f"(correct={have}) but no {members[1 - have]} (correct={1 - have})")
    return by_key


def _ordered(by_key: dict) -> list:
    return sorted(by_key, key=lambda k: tuple(_natural(v) for v in k))


def load_lexical_gold(path: str | Path, *, name: str = "swuggy-zr21") -> TaskSet:
    """sWUGGY pairs (real word vs pseudoword, one pair per id and voice) from a ZeroSpeech 2021 lexical gold.csv."""
    what = "ZeroSpeech lexical"
    file, rows = _read_rows(path, LEXICAL_REQUIRED, what)
    where = f"{what} gold file {file}"
    key_cols = ("id", "voice")
    by_key = _pair_rows(file, rows, key_cols, what, ("pseudoword", "real word"))
    has_freq = "frequency" in rows[0][1]
    has_len = "length" in rows[0][1]
    unmappable: Counter = Counter()
    pairs, filenames, dropped, dropped_files = [], {}, [], {}
    ignored_spellings = 0
    for key in _ordered(by_key):
        (nw_line, word_row), (nn_line, nonword_row) = by_key[key][1], by_key[key][0]
        item, voice = key
        pid = f"{item}/{voice}"
        if not word_row["word"]:
            raise InputError(f"{where}, line {nw_line}: real word (correct=1) has an empty 'word'")
        if nonword_row["word"]:
            ignored_spellings += 1
        mapped, bad = [], []
        for n, row in ((nw_line, word_row), (nn_line, nonword_row)):
            if not row["phones"]:
                raise InputError(f"{where}, line {n}: empty 'phones'")
            phones, missing = ipa_to_arpabet(row["phones"])
            if not phones and not missing:
                raise InputError(f"{where}, line {n}: 'phones' '{row['phones']}' holds no phone")
            mapped.append(tuple(phones))
            bad.extend(missing)
        files = [word_row["filename"], nonword_row["filename"]]
        if bad:
            unmappable.update(bad)
            dropped.append(pid)
            dropped_files[pid] = files
            continue
        labels = [("voice", voice)]
        if has_freq:
            freq = word_row["frequency"]
            if not freq:
                band = "unknown"
            else:
                try:
                    count = float(freq)
                except ValueError:
                    count = -1.0
                if not count >= 0:
                    raise InputError(f"{where}, line {nw_line}: 'frequency' must be a count >= 0, got '{freq}'")
                band = frequency_band(count)
            labels.append(("frequency", band))
        if has_len and word_row["length"]:
            labels.append(("length", word_row["length"]))
        pairs.append(Pair(id=pid, correct=word_row["word"], incorrect="", labels=tuple(labels), group=item,
                          correct_phones=(mapped[0],), incorrect_phones=(mapped[1],)))
        filenames[pid] = files
    if not pairs:
        raise InputError(f"{where}: no usable pairs ({len(dropped)} dropped for unmappable IPA symbols: "
                         f"{', '.join(sorted(unmappable))})")
    breakdowns = tuple(k for k, present in (("frequency", has_freq), ("length", has_len), ("voice", True))
                       if present)
    source = {
        "path": str(file.resolve()), "format": "zerospeech2021-lexical", "rows": len(rows),
        "pairs": len(pairs), "items": len({p.group for p in pairs}),
        "voices": sorted({p.label("voice") for p in pairs}),
        "filenames": filenames, "unmappable": dict(sorted(unmappable.items())),
        "dropped_unmappable": len(dropped), "dropped_ids": dropped, "dropped_filenames": dropped_files,
        "nonword_spellings_ignored": ignored_spellings,
    }
    return TaskSet(name=name, pairs=tuple(pairs), source=source, breakdowns=breakdowns, incorrect_is_nonword=True)


def load_syntactic_gold(path: str | Path, *, name: str = "sblimp-zr21") -> TaskSet:
    """sBLIMP pairs (grammatical vs ungrammatical sentence per item and voice) from a ZeroSpeech 2021
    syntactic gold.csv. Sentences go through the corpus stage's normalisation and g2p like BLiMP text."""
    what = "ZeroSpeech syntactic"
    file, rows = _read_rows(path, SYNTACTIC_REQUIRED, what)
    where = f"{what} gold file {file}"
    typed = tuple(c for c in ("type", "subtype") if c in rows[0][1])
    key_cols = (*typed, "id", "voice")
    by_key = _pair_rows(file, rows, key_cols, what, ("ungrammatical sentence", "grammatical sentence"))
    pairs, filenames, identical = [], {}, []
    for key in _ordered(by_key):
        (ng, good), (nb, bad) = by_key[key][1], by_key[key][0]
        for n, row in ((ng, good), (nb, bad)):
            if not row["transcription"]:
                raise InputError(f"{where}, line {n}: empty 'transcription'")
        pid = "/".join(key)
        if good["transcription"] == bad["transcription"]:
            identical.append(pid)  # kept: the official scorer counts such a pair as a tie
        labels = (("voice", key[-1]),) + tuple(zip(typed, key[:len(typed)]))
        pairs.append(Pair(id=pid, correct=good["transcription"], incorrect=bad["transcription"], labels=labels,
                          group="/".join(key[:-1])))
        filenames[pid] = [good["filename"], bad["filename"]]
    source = {
        "path": str(file.resolve()), "format": "zerospeech2021-syntactic", "rows": len(rows),
        "pairs": len(pairs), "items": len({p.group for p in pairs}),
        "voices": sorted({p.label("voice") for p in pairs}), "filenames": filenames,
        "identical": identical,
    }
    return TaskSet(name=name, pairs=tuple(pairs), source=source, breakdowns=(*typed, "voice"))


def submission_scores(task: TaskSet, per_item: dict[str, tuple[float, float]],
                      fill: float | None = None) -> dict[str, float]:
    """Our per-pair (score of correct, score of incorrect) log-probabilities → {wav filename: score}.

    Uses task.source["filenames"] from load_lexical_gold/load_syntactic_gold. A pair absent from
    `per_item` (not renderable in this view) and a pair dropped at loading are left out, or get `fill`
    when given: the official validator wants every wav, and equal scores count as a tie (0.5).
    """
    names = task.source.get("filenames")
    if not isinstance(names, dict):
        raise InputError(f"task {task.name} has no source['filenames']: it was not read from a ZeroSpeech gold.csv")
    out: dict[str, float] = {}
    for pid, scores in per_item.items():
        if pid not in names:
            raise InputError(f"task {task.name}: scored pair '{pid}' is not one of its ZeroSpeech pairs")
        if len(scores) != 2:
            raise InputError(f"task {task.name}: pair '{pid}' needs (score_correct, score_incorrect), got {scores!r}")
        for fname, s in zip(names[pid], scores):
            out[fname] = float(s)
    if fill is not None:
        for files in (*names.values(), *task.source.get("dropped_filenames", {}).values()):
            for fname in files:
                out.setdefault(fname, float(fill))
    return out


def write_submission(path: str | Path, scores: dict[str, float]) -> Path:
    """Write `<filename> <score>` lines (sorted by filename, no header, one space) atomically.

    The official layout is <submission>/lexical/{dev,test}.txt and <submission>/syntactic/{dev,test}.txt.
    Scores are written with repr(), which reads back to the same float.
    """
    if not scores:
        raise InputError(f"submission {path}: no scores to write")
    lines = []
    for fname in sorted(scores):
        s = scores[fname]
        if not isinstance(fname, str) or not fname or re.search(r"\s", fname):
            raise InputError(f"submission {path}: bad filename {fname!r} (non-empty, no whitespace)")
        try:
            value = float(s)
        except (TypeError, ValueError):
            raise InputError(f"submission {path}: score of '{fname}' is not a number: {s!r}") from None
        if not math.isfinite(value):
            raise InputError(f"submission {path}: score of '{fname}' is not finite: {value}")
        lines.append(f"{fname} {value!r}\n")
    atomic_write_bytes(path, "".join(lines).encode("utf-8"))
    return Path(path)


def read_submission(path: str | Path) -> dict[str, float]:
    """A submission file → {filename: score}, checked line by line as the official validator does."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"submission file not found: {file}")
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"submission file {file}: not valid UTF-8 (byte {e.start})") from None
    out: dict[str, float] = {}
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.strip().split(" ")
        if len(fields) != 2:
            raise InputError(f"submission file {file}, line {n}: must be '<filename> <score>', got '{line}'")
        try:
            value = float(fields[1])
        except ValueError:
            raise InputError(f"submission file {file}, line {n}: score '{fields[1]}' is not a float") from None
        if fields[0] in out:
            raise InputError(f"submission file {file}, line {n}: duplicate filename '{fields[0]}'")
        out[fields[0]] = value
    if not out:
        raise InputError(f"submission file {file}: empty")
    return out
