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
- `tasks.zr_lexical` / `tasks.zr_syntactic` name a gold.csv or the folder holding it. In the sLM21 layout
  (<root>/lexical/dev/gold.csv beside <filename>.wav for every row) the wavs are the items' audio: speech
  views encode those files (TaskSet.audio == "released"); without wavs (or with tasks.released_audio=false)
  speech is synthesised from the gold phones as for every other task ("synthesised"). The split (dev/test)
  is the folder's name, or tasks.zr_split.
- the task names default to "swuggy-zr21" and "sblimp-zr21", apart from the corpus-drawn "swuggy" and the
  BLiMP-text "sblimp" (pass name= to change them).
- a member is one (id, voice, filename) row (syntactic: type, subtype, id, voice, filename). One wav may
  serve several pairs: real gold files reuse a pseudoword's file across ids and voices, so a filename may
  repeat. The same member twice is a repeated row, kept once and listed (source["repeated_rows"]).
- lexical pairs are formed as zerospeech/benchmarks' sLM_21 lexical.py forms them: every real word of an
  (id, voice) against every pseudoword of the same (id, voice) (one pair in released files). Pair ids are
  f"{id}/{voice}" (with both filenames appended when an (id, voice) has several pairs). Syntactic pairs are
  one per (type, subtype, id, voice), id f"{type}/{subtype}/{id}/{voice}"; the 2021 scorer pairs syntactic
  rows by file order instead, and any disagreement between the two is counted and logged.
- a pair's `group` is its item without the voice; TaskSet.aggregate = "group": accuracy is the mean over
  items of each item's mean over its pairs, exactly the official by-pair table's mean, and the bootstrap
  resamples items with all their voices.
- with synthesised audio, each gold voice is one modevo speaker (Pair.speaker = "zr21/<voice>"): all its
  items get one voice, rate and pitch draw, so a shared file is the same audio in every pair; the eval
  summary says which modevo voice stood in for each gold voice.
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
field, a bad `correct`, one member listed as both correct and incorrect, an unpaired row, two grammatical
(or ungrammatical) sentences for one syntactic item and voice.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import math
import re
from collections import Counter
from pathlib import Path

from modevo.cache import atomic_write_bytes
from modevo.errors import InputError
from modevo.tasks.base import Pair, TaskSet
from modevo.tasks.ipa import ipa_to_arpabet

log = logging.getLogger("modevo.tasks")

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


def resolve_gold(path: str | Path, what: str) -> tuple[Path, str | None]:
    """A gold.csv or the folder holding it (sLM21 layout: lexical/dev/gold.csv beside its wavs) → (gold file,
    split): the split is the folder's name when it is 'dev' or 'test', else None."""
    p = Path(path)
    if p.is_dir():
        gold = p / "gold.csv"
        if not gold.is_file():
            raise InputError(f"{what} folder {p} has no gold.csv (the sLM21 layout is "
                             f"<root>/{'lexical' if 'lexical' in what else 'syntactic'}/<dev|test>/gold.csv beside the wavs)")
    elif p.exists() or p.suffix == ".csv":
        gold = p
    else:
        raise InputError(f"{what} gold file or folder not found: {p}")
    split = gold.parent.name if gold.parent.name in ("dev", "test") else None
    return gold, split


def _audio_dir(gold: Path, released_audio: bool) -> Path | None:
    """The folder whose wavs speech views read: the gold file's own, when it holds any (and they are wanted)."""
    if not released_audio:
        return None
    folder = gold.parent
    return folder if next(folder.glob("*.wav"), None) is not None else None


def _members(file: Path, rows: list[tuple[int, dict]], key_cols: tuple[str, ...], what: str,
             members: tuple[str, str]) -> tuple[dict[tuple, dict[int, list[tuple[int, dict]]]], list[dict]]:
    """Rows → {key: {1: [(line, row), ...], 0: [...]}} and the repeated rows left out.

    A member is one (key, filename) row: one audio file may serve several pairs (real gold files reuse a
    pseudoword's file across ids and voices), so a filename may repeat; the same (key, filename) twice is a
    repeated row, kept once and listed; twice with different `correct` values is an error."""
    where = f"{what} gold file {file}"
    by_key: dict[tuple, dict[int, list[tuple[int, dict]]]] = {}
    seen: dict[tuple, tuple[int, int]] = {}
    repeated = []
    for n, row in rows:
        for col in ("filename", *key_cols):
            if not row[col]:
                raise InputError(f"{where}, line {n}: empty '{col}'")
        if re.search(r"\s", row["filename"]):
            raise InputError(f"{where}, line {n}: filename '{row['filename']}' contains whitespace "
                             "(a submission line is '<filename> <score>')")
        value = row["correct"]
        if value not in ("0", "1"):
            raise InputError(f"{where}, line {n}: 'correct' must be 0 or 1, got '{value}'")
        key = tuple(row[c] for c in key_cols)
        member = (*key, row["filename"])
        if member in seen:
            first, was = seen[member]
            desc = ", ".join(f"{c} '{v}'" for c, v in zip((*key_cols, "filename"), member))
            if was != int(value):
                raise InputError(f"{where}, line {n}: {desc} is correct={value} here but correct={was} at line {first}")
            repeated.append({"line": n, "first_line": first, "filename": row["filename"]})
            continue
        seen[member] = (n, int(value))
        by_key.setdefault(key, {0: [], 1: []})[int(value)].append((n, row))
    for key, slot in by_key.items():
        for have in (0, 1):
            if not slot[1 - have]:
                n = slot[have][0][0]
                desc = ", ".join(f"{c} '{v}'" for c, v in zip(key_cols, key))
                raise InputError(f"{where}, line {n}: unpaired row: {desc} has a {members[have]} "
                                 f"(correct={have}) but no {members[1 - have]} (correct={1 - have})")
    if repeated:
        log.warning("%s: %d repeated row(s) left out (same %s and filename; first: line %d)", where, len(repeated),
                    ", ".join(key_cols), repeated[0]["line"])
    return by_key, repeated


def _ordered(by_key: dict) -> list:
    return sorted(by_key, key=lambda k: tuple(_natural(v) for v in k))


def _audio_source(audio: Path | None, filenames) -> dict:
    if audio is None:
        return {"audio": "synthesised", "audio_dir": None}
    missing = sorted({f for f in filenames if not (audio / f"{f}.wav").is_file()})
    if missing:
        log.warning("%s: %d file(s) named in gold.csv have no wav (e.g. %s.wav): their pairs are skipped in speech "
                    "views (audio_missing)", audio, len(missing), missing[0])
    return {"audio": "released", "audio_dir": str(audio.resolve()), "missing_audio": missing}


def load_lexical_gold(path: str | Path, *, name: str = "swuggy-zr21", released_audio: bool = True,
                      split: str | None = None) -> TaskSet:
    """sWUGGY pairs from a ZeroSpeech 2021 lexical gold.csv (or its folder), paired as the official scorer
    pairs them: every real word of an (id, voice) against every pseudoword of the same (id, voice); the
    accuracy is the mean over ids of each id's mean over its pairs (TaskSet.aggregate = "group")."""
    what = "ZeroSpeech lexical"
    gold, folder_split = resolve_gold(path, what)
    file, rows = _read_rows(gold, LEXICAL_REQUIRED, what)
    where = f"{what} gold file {file}"
    audio = _audio_dir(file, released_audio)
    key_cols = ("id", "voice")
    by_key, repeated = _members(file, rows, key_cols, what, ("pseudoword", "real word"))
    has_freq = "frequency" in rows[0][1]
    has_len = "length" in rows[0][1]
    unmappable: Counter = Counter()
    pairs, filenames, dropped, dropped_files = [], {}, [], {}
    ignored_spellings = 0
    phones_of: dict[int, tuple | list] = {}

    def phones(n: int, row: dict):
        if n not in phones_of:
            if not row["phones"]:
                raise InputError(f"{where}, line {n}: empty 'phones'")
            mapped, missing = ipa_to_arpabet(row["phones"])
            if not mapped and not missing:
                raise InputError(f"{where}, line {n}: 'phones' '{row['phones']}' holds no phone")
            phones_of[n] = (tuple(mapped), missing)
        return phones_of[n]

    for key in _ordered(by_key):
        item, voice = key
        words, nonwords = by_key[key][1], by_key[key][0]
        many = len(words) * len(nonwords) > 1
        for (nw_line, word_row), (nn_line, nonword_row) in itertools.product(words, nonwords):
            pid = f"{item}/{voice}" + (f"/{word_row['filename']}/{nonword_row['filename']}" if many else "")
            if not word_row["word"]:
                raise InputError(f"{where}, line {nw_line}: real word (correct=1) has an empty 'word'")
            if nonword_row["word"]:
                ignored_spellings += 1
            (wp, wbad), (np_, nbad) = phones(nw_line, word_row), phones(nn_line, nonword_row)
            files = [word_row["filename"], nonword_row["filename"]]
            if wbad or nbad:
                unmappable.update(wbad + nbad)
                dropped.append(pid)
                dropped_files[pid] = files
                continue
            labels = [("voice", voice)]
            if has_freq:
                labels.append(("frequency", _band(word_row["frequency"], f"{where}, line {nw_line}")))
            if has_len and word_row["length"]:
                labels.append(("length", word_row["length"]))
            pairs.append(Pair(id=pid, correct=word_row["word"], incorrect="", labels=tuple(labels), group=item,
                              correct_phones=(wp,), incorrect_phones=(np_,), speaker=f"zr21/{voice}",
                              correct_audio=f"{files[0]}.wav" if audio else None,
                              incorrect_audio=f"{files[1]}.wav" if audio else None))
            filenames[pid] = files
    if not pairs:
        raise InputError(f"{where}: no usable pairs ({len(dropped)} dropped for unmappable IPA symbols: "
                         f"{', '.join(sorted(unmappable))})")
    breakdowns = tuple(k for k, present in (("frequency", has_freq), ("length", has_len), ("voice", True))
                       if present)
    source = {
        "path": str(file.resolve()), "format": "zerospeech2021-lexical", "rows": len(rows),
        "pairs": len(pairs), "items": len({p.group for p in pairs}), "split": split or folder_split,
        "split_from": "option" if split else ("folder" if folder_split else None),
        "voices": sorted({p.label("voice") for p in pairs}),
        "filenames": filenames, "unmappable": dict(sorted(unmappable.items())),
        "dropped_unmappable": len(dropped), "dropped_ids": dropped, "dropped_filenames": dropped_files,
        "nonword_spellings_ignored": ignored_spellings, "repeated_rows": repeated,
        "shared_files": sum(1 for c in Counter(f for fs in filenames.values() for f in set(fs)).values() if c > 1),
        **_audio_source(audio, {f for fs in filenames.values() for f in fs}),
    }
    return TaskSet(name=name, pairs=tuple(pairs), source=source, breakdowns=breakdowns, incorrect_is_nonword=True,
                   aggregate="group")


def _band(freq: str, at: str) -> str:
    if not freq:
        return "unknown"
    try:
        count = float(freq)
    except ValueError:
        count = -1.0
    if not count >= 0:
        raise InputError(f"{at}: 'frequency' must be a count >= 0, got '{freq}'")
    return frequency_band(count)


def load_syntactic_gold(path: str | Path, *, name: str = "sblimp-zr21", released_audio: bool = True,
                        split: str | None = None) -> TaskSet:
    """sBLIMP pairs (grammatical vs ungrammatical sentence per item and voice) from a ZeroSpeech 2021
    syntactic gold.csv (or its folder). Sentences go through the corpus stage's normalisation and g2p like
    BLiMP text. The accuracy is the mean over (type, subtype, id) of each one's mean over voices, as the
    official scorer aggregates; the scorer pairs rows by file order (the k-th grammatical row with the k-th
    ungrammatical one), so where that order disagrees with the (type, subtype, id, voice) pairing used here
    the disagreements are counted (source["row_order_disagreements"]) and logged."""
    what = "ZeroSpeech syntactic"
    gold, folder_split = resolve_gold(path, what)
    file, rows = _read_rows(gold, SYNTACTIC_REQUIRED, what)
    where = f"{what} gold file {file}"
    audio = _audio_dir(file, released_audio)
    typed = tuple(c for c in ("type", "subtype") if c in rows[0][1])
    key_cols = (*typed, "id", "voice")
    by_key, repeated = _members(file, rows, key_cols, what, ("ungrammatical sentence", "grammatical sentence"))
    pairs, filenames, identical = [], {}, []
    for key in _ordered(by_key):
        slot = by_key[key]
        for kind, label in ((1, "grammatical"), (0, "ungrammatical")):
            if len(slot[kind]) > 1:
                desc = ", ".join(f"{c} '{v}'" for c, v in zip(key_cols, key))
                raise InputError(f"{where}, line {slot[kind][1][0]}: a second {label} sentence for {desc} "
                                 f"(first at line {slot[kind][0][0]}); a syntactic item is one pair per voice")
        (ng, good), (nb, bad) = slot[1][0], slot[0][0]
        for n, row in ((ng, good), (nb, bad)):
            if not row["transcription"]:
                raise InputError(f"{where}, line {n}: empty 'transcription'")
        pid = "/".join(key)
        if good["transcription"] == bad["transcription"]:
            identical.append(pid)  # kept: the official scorer counts such a pair as a tie
        labels = (("voice", key[-1]),) + tuple(zip(typed, key[:len(typed)]))
        files = [good["filename"], bad["filename"]]
        pairs.append(Pair(id=pid, correct=good["transcription"], incorrect=bad["transcription"], labels=labels,
                          group="/".join(key[:-1]), speaker=f"zr21/{key[-1]}",
                          correct_audio=f"{files[0]}.wav" if audio else None,
                          incorrect_audio=f"{files[1]}.wav" if audio else None))
        filenames[pid] = files
    # the official scorer's pairing: k-th kept correct=1 row with the k-th kept correct=0 row, in file order
    kept = {(n, k) for slot in by_key.values() for k in (0, 1) for n, _ in slot[k]}
    by_order = [sorted(n for n, k in kept if k == kind) for kind in (1, 0)]
    line_pairs = {(g[0], b[0]) for slot in by_key.values() for g, b in zip(slot[1], slot[0])}
    disagree = sum(1 for pair in zip(*by_order) if pair not in line_pairs)
    if disagree:
        log.warning("%s: the official scorer pairs rows by file order; %d of its pairs differ from the pairing "
                    "by %s, so its number on this file will differ from modevo's", where, disagree, ", ".join(key_cols))
    source = {
        "path": str(file.resolve()), "format": "zerospeech2021-syntactic", "rows": len(rows),
        "pairs": len(pairs), "items": len({p.group for p in pairs}), "split": split or folder_split,
        "split_from": "option" if split else ("folder" if folder_split else None),
        "voices": sorted({p.label("voice") for p in pairs}), "filenames": filenames,
        "identical": identical, "repeated_rows": repeated, "row_order_disagreements": disagree,
        **_audio_source(audio, {f for fs in filenames.values() for f in fs}),
    }
    return TaskSet(name=name, pairs=tuple(pairs), source=source, breakdowns=(*typed, "voice"), aggregate="group")


def submission_scores(task: TaskSet, per_item: dict[str, tuple[float, float]],
                      fill: float | None = None, conflicts: list | None = None) -> dict[str, float]:
    """Our per-pair (score of correct, score of incorrect) log-probabilities → {wav filename: score}.

    Uses task.source["filenames"] from load_lexical_gold/load_syntactic_gold. A pair absent from
    `per_item` (not renderable in this view) and a pair dropped at loading are left out, or get `fill`
    when given: the official validator wants every wav, and equal scores count as a tie (0.5). A file that
    serves several pairs keeps its first score; a later pair that scored it differently is appended to
    `conflicts` (when given): the official scorer would then not reproduce our number exactly.
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
            if fname in out:
                if conflicts is not None and abs(out[fname] - float(s)) > 1e-9 * max(1.0, abs(float(s))):
                    conflicts.append(fname)
                continue
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
