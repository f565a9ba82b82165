"""Topic StoryCloze (tSC): N sentences of context, then the true next sentence vs a length-matched distractor.

Two sources:

- `build_tsc` draws the items from OUR corpus's held-out chunks (valid and test by default), so every view
  is scored on text it never trained on, normalised and phonemised by the same corpus stage. A window is N
  consecutive sentences of one chunk plus the next sentence of that chunk (the true ending); windows never
  cross a chunk boundary, since two chunks of the same split need not be adjacent in the document. The
  distractor is another held-out sentence whose phone count is within ±tolerance of the true ending's, so
  neither member wins by being shorter:
    * variant "topic": from ANOTHER document (the paper's tSC: a random ending, off topic);
    * variant "in-document": from the SAME document, at least `min_distance_sentences` from the true ending
      and outside the window (same characters and style, wrong place: harder).
  The choice is seeded by the item id, so the same rows and config give the same task set (one content
  hash) whatever order the rows come in. A window with no length-matched candidate is skipped and counted.
  The texts are the corpus's normalised `text`, which the renderer normalises again: a sentence that this
  would change (normalize is idempotent on its own output, but a row's text may come from elsewhere, e.g.
  "book iv" → "book four") is neither used in a window nor drawn as a distractor, and the windows it spoils are counted.
  Building takes well under a second at the cpu scale (~2,500 held-out sentences), so nothing is cached.

- `load_storycloze_csv` reads the standard StoryCloze CSV (Mostafazadeh et al. 2016; the validation/test
  files with InputStoryid, InputSentence1..4, RandomFifthSentenceQuiz1/2, AnswerRightEnding) at a path the
  user gives: "ssc" pits the right ending against the original wrong one (task "ssc-csv"), "tsc" against the
  right ending of another story, chosen by a seeded draw (task "tsc-csv"). Every problem in the file is one
  InputError line naming the file, the data row (and its line) and the problem.
"""

from __future__ import annotations

import bisect
import csv
import difflib
import io
import random
from dataclasses import dataclass, field
from pathlib import Path

from modevo.cache import file_digest, stable_hash
from modevo.config import require
from modevo.corpus.normalize import normalize
from modevo.errors import ConfigError, InputError
from modevo.tasks.base import Pair, TaskSet

VARIANTS = ("topic", "in-document")
CSV_VARIANTS = ("ssc", "tsc")
HELD_OUT = ("valid", "test")
ROW_KEYS = ("id", "doc_id", "sentence_index", "chunk", "split", "text", "phones")
CSV_COLUMNS = ("InputStoryid", "InputSentence1", "InputSentence2", "InputSentence3", "InputSentence4",
               "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2", "AnswerRightEnding")


@dataclass
class ClozeConfig:
    context_sentences: int = 3  # N sentences before the ending: ONE N per scale, the same for every view
    # context + the longer ending hold at most this many words: the context keeps its most recent words
    # (cut from the oldest), ONE cut for every view, so a 50 Hz view's window holds what a text view sees.
    # None: the N whole sentences (a frame view's window may then cut context that text views keep)
    window_words: int | None = None
    tolerance: float = 0.10  # distractor phones within ±10% of the true ending's phones
    min_distance_sentences: int = 50  # in-document distractor: this far (by sentence_index) from the ending
    max_pairs: int | None = None  # keep a seeded sample of this many pairs (in corpus order); None: all
    seed: int = 0
    splits: list[str] = field(default_factory=lambda: list(HELD_OUT))  # held-out splits the items come from

    def __post_init__(self):
        require(self.context_sentences >= 1, "context_sentences must be at least 1")
        require(self.window_words is None or self.window_words >= 2, "window_words must be at least 2 (or null)")
        require(0 <= self.tolerance < 1, "tolerance must be in [0, 1)")
        require(self.min_distance_sentences >= 0, "min_distance_sentences must be non-negative")
        require(self.max_pairs is None or self.max_pairs > 0, "max_pairs must be positive (or null for all)")
        require(len(self.splits) > 0, "splits is empty: name at least one held-out split")
        require("train" not in self.splits, "splits must be held-out splits: 'train' would score training text")


def _check_variant(variant: str, known: tuple[str, ...], what: str) -> None:
    if variant not in known:
        match = difflib.get_close_matches(variant, known, n=1)
        raise ConfigError(f"unknown {what} variant '{variant}'" + (f"; did you mean '{match[0]}'?" if match
                                                                  else f" (known: {', '.join(known)})"))


def n_phones(row: dict) -> int:
    return sum(len(p) for p in row["phones"])


def _held_out(rows: list[dict], splits: list[str]) -> list[dict]:
    """The rows of the held-out splits, sorted by (document, position); malformed rows are one error."""
    wanted = set(splits)
    held = []
    for n, r in enumerate(rows):
        missing = [k for k in ROW_KEYS if k not in r]
        if missing:
            raise InputError(f"tSC: corpus row {n} ({r.get('id', 'no id')}) lacks {', '.join(missing)}")
        if r["split"] in wanted:
            held.append(r)
    if not held:
        raise InputError(f"tSC: the corpus has no sentences in the held-out splits {', '.join(splits)}")
    held.sort(key=lambda r: (r["doc_id"], r["sentence_index"]))
    return held


def _windows(held: list[dict], n: int) -> list[tuple[list[dict], dict]]:
    """(context rows, ending row) for every N+1 consecutive sentences of one chunk, in corpus order."""
    out = []
    run: list[dict] = []
    for r in held:  # sorted by document, then position: a chunk is a run of one (doc, chunk) ...
        if run and (r["doc_id"], r["chunk"]) == (run[-1]["doc_id"], run[-1]["chunk"]) \
                and r["sentence_index"] == run[-1]["sentence_index"] + 1:  # ... without gaps
            run.append(r)
        else:
            run = [r]
        if len(run) > n:
            out.append((run[-n - 1:-1], run[-1]))
    return out


def _fit_context(sentences: list[list[str]], ending_words: int, window_words: int | None) -> tuple[str, ...]:
    """The context sentences (as word lists, oldest first) cut so that context + ending ≤ window_words words:
    the most recent words are kept and the oldest kept sentence may lose its beginning. () if nothing fits."""
    if window_words is None:
        return tuple(" ".join(w) for w in sentences)
    room = window_words - ending_words
    kept: list[str] = []
    for words in reversed(sentences):
        if room <= 0:
            break
        kept.append(" ".join(words[-room:]))
        room -= min(room, len(words))
    return tuple(reversed(kept))


def _context_stats(kept: list[int], full: list[int]) -> dict:
    """How much context the items keep (words), beside what N whole sentences would have given."""
    if not kept:
        return {}
    return {"mean": round(float(sum(kept) / len(kept)), 2), "min": min(kept), "max": max(kept),
            "full_sentences_mean": round(float(sum(full) / max(1, len(full))), 2)}


def _choose(candidates: list[dict], key: list) -> dict:
    return candidates[random.Random(stable_hash(key)).randrange(len(candidates))]


def build_tsc(rows: list[dict], cfg: ClozeConfig, variant: str, cache: Path | None = None) -> TaskSet:
    """The tSC items of one variant ("topic" or "in-document") from the corpus rows' held-out chunks.

    rows: corpus rows (dicts with id, doc_id, sentence_index, chunk, split, text, phones); other splits are
    ignored. `cache` is accepted for the registry's uniform call and unused (building is fast).
    """
    _check_variant(variant, VARIANTS, "tSC")
    held = _held_out(rows, cfg.splits)
    length = {r["id"]: n_phones(r) for r in held}
    # the renderer normalises items again: a text that would change would not be what training saw
    unstable = {r["id"] for r in held if normalize(r["text"]) != (r["text"], None)}
    headings = {r["id"] for r in held if r.get("heading")}  # not sentences: never context, ending or distractor
    by_len = sorted((r for r in held if r["id"] not in unstable and r["id"] not in headings),  # candidates, in a row-order-free order
                    key=lambda r: (length[r["id"]], r["id"]))
    lens = [length[r["id"]] for r in by_len]
    windows = _windows(held, cfg.context_sentences)
    pairs: list[Pair] = []
    skipped = {"no_length_match": 0, "renormalises": 0, "ending_fills_window": 0, "heading": 0}
    kept_words: list[int] = []
    for context, end in windows:
        if unstable and any(r["id"] in unstable for r in (*context, end)):
            skipped["renormalises"] += 1
            continue
        if headings and any(r["id"] in headings for r in (*context, end)):
            skipped["heading"] += 1
            continue
        target = length[end["id"]]
        lo = bisect.bisect_left(lens, target - cfg.tolerance * target - 1e-9)
        hi = bisect.bisect_right(lens, target + cfg.tolerance * target + 1e-9)
        if variant == "topic":
            cands = [c for c in by_len[lo:hi] if c["doc_id"] != end["doc_id"] and c["text"] != end["text"]]
        else:
            first = context[0]["sentence_index"]
            cands = [c for c in by_len[lo:hi]
                     if c["doc_id"] == end["doc_id"] and c["text"] != end["text"]
                     and abs(c["sentence_index"] - end["sentence_index"]) >= cfg.min_distance_sentences
                     and not first <= c["sentence_index"] <= end["sentence_index"]]
        if not cands:
            skipped["no_length_match"] += 1
            continue
        pid = f"{variant}/{end['id']}"
        other = _choose(cands, ["tsc", cfg.seed, pid])
        kept = _fit_context([r["text"].split() for r in context], max(len(end["text"].split()), len(other["text"].split())),
                            cfg.window_words)
        if not kept:
            skipped["ending_fills_window"] += 1
            continue
        kept_words.append(sum(len(t.split()) for t in kept))
        pairs.append(Pair(id=pid, correct=end["text"], incorrect=other["text"],
                          context=kept, group=str(end["doc_id"]),
                          labels=(("variant", variant), ("document", str(end["doc_id"])))))
    matched = len(pairs)
    if cfg.max_pairs is not None and len(pairs) > cfg.max_pairs:
        keep = sorted(random.Random(stable_hash(["tsc-sample", cfg.seed, variant])).sample(range(len(pairs)),
                                                                                           cfg.max_pairs))
        pairs = [pairs[i] for i in keep]
    if not pairs:
        raise InputError(f"tSC {variant}: no items: {len(windows)} windows of {cfg.context_sentences}+1 held-out "
                         f"sentences, {skipped['no_length_match']} without a distractor within "
                         f"±{cfg.tolerance:.0%} phones")
    source = {
        "corpus": "held-out chunks", "variant": variant, "splits": list(cfg.splits),
        "context_sentences": cfg.context_sentences, "tolerance": cfg.tolerance,
        "min_distance_sentences": cfg.min_distance_sentences, "seed": cfg.seed, "max_pairs": cfg.max_pairs,
        "held_out_sentences": len(held), "chunks": len({(r["doc_id"], r["chunk"]) for r in held}),
        "windows": len(windows), "matched": matched, "pairs": len(pairs), "skipped": skipped,
        "dropped_by_max_pairs": matched - len(pairs), "documents": len({p.group for p in pairs}),
        "unstable_texts": len(unstable), "window_words": cfg.window_words,
        "context_words": _context_stats(kept_words, [sum(len(r["text"].split()) for r in c) for c, _ in windows]),
    }
    return TaskSet(name=f"tsc-{variant}", pairs=tuple(pairs), source=source, breakdowns=("document",))


# ---------------------------------------------------------------- the standard StoryCloze CSV

def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, int, list[str]]]]:
    """(header, [(data row number, line number, cells)]) of a UTF-8 CSV; blank lines are skipped."""
    where = f"StoryCloze CSV {path}"
    if not path.is_file():
        raise InputError(f"{where}: file not found" if not path.exists() else f"{where}: not a file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{where}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise InputError(f"{where}, line {line}: not valid UTF-8 (byte {raw[e.start]:#04x})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    records = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
            else:
                records.append((len(records) + 1, reader.line_num, cells))
    except csv.Error as e:
        raise InputError(f"{where}, line {reader.line_num}: malformed CSV ({e})") from None
    if header is None:
        raise InputError(f"{where}: empty file (no header)")
    return header, records


def load_storycloze_csv(path: str | Path, variant: str, seed: int = 0) -> TaskSet:
    """StoryCloze stories as the "ssc-csv" or "tsc-csv" TaskSet, in file order; context = the 4 sentences.

    variant "ssc": incorrect = the story's own wrong ending. "tsc": incorrect = the right ending of another
    story (a different text), drawn by a generator seeded with (seed, story id). Texts are written form: the
    renderer normalises them like training text.
    """
    _check_variant(variant, CSV_VARIANTS, "StoryCloze CSV")
    path = Path(path)
    where = f"StoryCloze CSV {path}"
    header, records = _read_csv(path)
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{where}, line 1: missing column(s) {', '.join(missing)} (header: {', '.join(header)})")
    dup = sorted({c for c in header if header.count(c) > 1 and c in CSV_COLUMNS})
    if dup:
        raise InputError(f"{where}, line 1: column(s) {', '.join(dup)} appear more than once")
    if not records:
        raise InputError(f"{where}: header but no data rows")
    col = {c: header.index(c) for c in CSV_COLUMNS}
    stories = []  # (id, context, right, wrong)
    seen: dict[str, int] = {}
    for n, line, cells in records:
        at = f"{where}, data row {n} (line {line})"
        if len(cells) != len(header):
            raise InputError(f"{at}: {len(cells)} fields, the header has {len(header)}")
        rec = {}
        for c, i in col.items():
            value = cells[i].strip()
            if not value:
                raise InputError(f"{at}: column {c} is empty")
            rec[c] = value
        sid = rec["InputStoryid"]
        if sid in seen:
            raise InputError(f"{at}: duplicate InputStoryid '{sid}' (first at data row {seen[sid]})")
        seen[sid] = n
        answer = rec["AnswerRightEnding"]
        if answer not in ("1", "2"):
            raise InputError(f"{at}: AnswerRightEnding must be 1 or 2, got '{answer}'")
        endings = (rec["RandomFifthSentenceQuiz1"], rec["RandomFifthSentenceQuiz2"])
        right, wrong = endings[int(answer) - 1], endings[2 - int(answer)]
        if variant == "ssc" and right == wrong:
            raise InputError(f"{at}: the two endings are identical (not a minimal pair)")
        context = tuple(rec[f"InputSentence{k}"] for k in range(1, 5))
        stories.append((sid, context, right, wrong, at))
    if variant == "tsc" and len(stories) < 2:
        raise InputError(f"{where}: tsc needs at least 2 stories (the distractor is another story's right "
                         f"ending), found {len(stories)}")
    pairs = []
    for i, (sid, context, right, wrong, at) in enumerate(stories):
        if variant == "tsc":  # rejection draws (a repeated ending text is rare); a full scan as the fallback
            rng = random.Random(stable_hash(["tsc-csv", seed, sid]))
            for _ in range(32):
                j = rng.randrange(len(stories) - 1)
                j += j >= i  # any story but this one
                if stories[j][2] != right:
                    break
            else:
                others = [k for k in range(len(stories)) if stories[k][2] != right]
                if not others:
                    raise InputError(f"{at}: no other story has a different right ending to serve as distractor")
                j = rng.choice(others)
            wrong = stories[j][2]
        pairs.append(Pair(id=f"{variant}/{sid}", correct=right, incorrect=wrong, context=context, group=sid,
                          labels=(("variant", variant),)))
    source = {"path": str(path.resolve()), "sha256": file_digest(path), "variant": variant, "seed": seed,
              "stories": len(stories), "pairs": len(pairs)}
    return TaskSet(name=f"{variant}-csv", pairs=tuple(pairs), source=source)
