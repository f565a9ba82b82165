"""Spoken StoryCloze as released (sSC, tSC): one audio file per whole story, a correct and an incorrect one.

The release (Hassid et al. 2023, "Textually Pretrained Speech Language Models"; slp-rl/SpokenStoryCloze)
synthesises each five-sentence story — four context sentences and an ending — into ONE file per version,
so a speech model scores the whole file and the two files differ only in their ending. Items are read
from either of:

- a manifest CSV that covers any release: `id,correct_wav,incorrect_wav[,transcript_correct,
  transcript_incorrect]` (a header row; wav paths relative to the manifest's folder or absolute;
  transcripts are the whole story's text). A folder holding `manifest.csv` is read the same way.
- a folder of wavs in the flat layout that slamkit (slp-rl/slamkit, slamkit/metric/modelling_metric.py,
  the release authors' evaluation code) reads: `<n>_<tag>.wav`, two files per story number n. slamkit pairs
  them by sorting on n and takes the first as the positive; modevo never relies on listing order: the tag
  must say which file is the right ending (`correct`/`incorrect`, `pos`/`neg`, `positive`/`negative`,
  `true`/`false`), else one line asks for a manifest. A `<stem>.txt` beside a wav is its transcript.

Every member is a whole sequence (TaskSet.whole_sequence): speech views encode the released file; text and
phone views read the transcript, and without one they skip the story with the count `no_transcript`. A
story longer than the model's window keeps its last tokens (its ending and as much context as fits).
Problems with the manifest are one InputError line naming file, line and problem; a wav that is named but
absent is a counted, listed skip (`audio_missing`) at rendering, as for the ZeroSpeech sets.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from pathlib import Path

from modevo.errors import InputError
from modevo.tasks.base import Pair, TaskSet

log = logging.getLogger("modevo.tasks")

MANIFEST_REQUIRED = ("id", "correct_wav", "incorrect_wav")
MANIFEST_OPTIONAL = ("transcript_correct", "transcript_incorrect")
POSITIVE = {"correct", "pos", "positive", "true"}
NEGATIVE = {"incorrect", "neg", "negative", "false"}


def load_spoken_storycloze(path: str | Path, variant: str) -> TaskSet:
    """A released spoken StoryCloze set (manifest CSV, a folder with manifest.csv, or slamkit's flat folder of
    wavs) as the task "ssc-spoken" or "tsc-spoken"."""
    if variant not in ("ssc", "tsc"):
        raise InputError(f"spoken StoryCloze variant must be ssc or tsc, got '{variant}'")
    p = Path(path)
    if p.is_dir() and not (p / "manifest.csv").is_file():
        (stories, root), layout = _flat_folder(p), "flat-folder"
    elif p.is_dir() or p.is_file():
        (stories, root), layout = _manifest(p / "manifest.csv" if p.is_dir() else p), "manifest"
    else:
        raise InputError(f"spoken StoryCloze manifest or folder not found: {p}")
    pairs, missing = [], []
    for sid, good, bad, t_good, t_bad in stories:
        for f in (good, bad):
            if not (root / f).is_file():
                missing.append(f)
        pairs.append(Pair(id=f"{variant}/{sid}", correct=t_good, incorrect=t_bad, correct_audio=good,
                          incorrect_audio=bad))
    if missing:
        log.warning("spoken StoryCloze %s: %d named wav file(s) are absent (e.g. %s): their stories are skipped in "
                    "speech views (audio_missing)", p, len(missing), missing[0])
    source = {"path": str(p.resolve()), "format": f"spoken-storycloze-{layout}", "stories": len(pairs),
              "audio": "released", "audio_dir": str(root.resolve()), "missing_audio": sorted(missing),
              "transcripts": sum(1 for q in pairs if q.correct and q.incorrect)}
    return TaskSet(name=f"{variant}-spoken", pairs=tuple(pairs), source=source, whole_sequence=True)


def _manifest(file: Path) -> tuple[list[tuple[str, str, str, str, str]], Path]:
    where = f"spoken StoryCloze manifest {file}"
    try:
        text = file.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{where}: cannot read ({e.strerror})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        if not any(header):
            raise InputError(f"{where}, line 1: empty file (no header)")
        missing = [c for c in MANIFEST_REQUIRED if c not in header]
        if missing:
            raise InputError(f"{where}, line 1: missing column(s) {', '.join(map(repr, missing))} "
                             f"(found: {', '.join(header)}; expected id,correct_wav,incorrect_wav"
                             f"[,{','.join(MANIFEST_OPTIONAL)}])")
        stories, seen = [], {}
        for cells in reader:
            n = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise InputError(f"{where}, line {n}: expected {len(header)} fields, got {len(cells)}")
            rec = {h: c.strip() for h, c in zip(header, cells)}
            for c in MANIFEST_REQUIRED:
                if not rec[c]:
                    raise InputError(f"{where}, line {n}: empty '{c}'")
            if rec["id"] in seen:
                raise InputError(f"{where}, line {n}: duplicate id '{rec['id']}' (first at line {seen[rec['id']]})")
            seen[rec["id"]] = n
            if rec["correct_wav"] == rec["incorrect_wav"]:
                raise InputError(f"{where}, line {n}: correct_wav and incorrect_wav are the same file")
            stories.append((rec["id"], rec["correct_wav"], rec["incorrect_wav"], rec.get("transcript_correct", ""),
                            rec.get("transcript_incorrect", "")))
    except csv.Error as e:
        raise InputError(f"{where}, line {reader.line_num}: malformed CSV ({e})") from None
    if not stories:
        raise InputError(f"{where}: a header and no stories")
    return stories, file.parent


def _flat_folder(folder: Path) -> tuple[list[tuple[str, str, str, str, str]], Path]:
    where = f"spoken StoryCloze folder {folder}"
    by_story: dict[str, dict[bool, Path]] = {}
    for wav in sorted(folder.glob("*.wav")):
        m = re.fullmatch(r"(\d+)_(.+)", wav.stem)
        if not m:
            raise InputError(f"{where}: '{wav.name}' is not named <number>_<tag>.wav (or write a manifest.csv: "
                             "id,correct_wav,incorrect_wav)")
        tag = m.group(2).lower()
        words = set(re.split(r"[^a-z]+", tag))
        right = bool(words & POSITIVE) and not words & NEGATIVE
        wrong = bool(words & NEGATIVE)
        if right == wrong:
            raise InputError(f"{where}: cannot tell whether '{wav.name}' is the correct or the incorrect ending (its "
                             f"tag should say correct/incorrect, pos/neg or true/false); write a manifest.csv")
        slot = by_story.setdefault(m.group(1), {})
        if right in slot:
            raise InputError(f"{where}: story {m.group(1)} has two {'correct' if right else 'incorrect'} files "
                             f"({slot[right].name}, {wav.name})")
        slot[right] = wav
    if not by_story:
        raise InputError(f"{where}: no wav files (and no manifest.csv)")
    stories = []
    for sid in sorted(by_story, key=int):
        slot = by_story[sid]
        if len(slot) != 2:
            (only,) = slot.values()
            raise InputError(f"{where}: story {sid} has only one file ({only.name}); each story needs a correct "
                             "and an incorrect version")
        texts = [_transcript(slot[k]) for k in (True, False)]
        stories.append((sid, slot[True].name, slot[False].name, *texts))
    return stories, folder


def _transcript(wav: Path) -> str:
    txt = wav.with_suffix(".txt")
    if not txt.is_file():
        return ""
    try:
        return " ".join(txt.read_text(encoding="utf-8").split())
    except (UnicodeDecodeError, OSError) as e:
        raise InputError(f"transcript {txt} cannot be read as UTF-8 text ({e})") from None
