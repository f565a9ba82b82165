"""Task name → its items: the one place a task is defined.

Some tasks are drawn from the corpus itself (sWUGGY from the training vocabulary, tSC and word-order from
held-out chunks): they receive the corpus rows (dicts with id, doc_id, sentence_index, chunk, split, written, text,
words, phones, stress, phone_route) and a cache folder; the same corpus and config give the same items
for every view, so every view is scored on one task set (one content hash).
"""

from __future__ import annotations

import logging
from pathlib import Path

from modevo.errors import ConfigError, InputError
from modevo.tasks.base import TaskSet
from modevo.tasks.config import TasksConfig, unknown_task

log = logging.getLogger("modevo.tasks")


def load_task(name: str, cfg: TasksConfig, rows: list[dict] | None = None, cache: Path | None = None,
              progress: bool = True) -> TaskSet:
    if name == "sblimp":
        from modevo.tasks.blimp import load_blimp

        # the full upstream data has 7 pairs whose members are identical: they cannot be scored
        return load_blimp(cfg.blimp_path, cfg.blimp_per_paradigm, cfg.blimp_paradigms, skip_identical=True)
    if name == "swuggy":
        from modevo.tasks.swuggy import build_swuggy

        return build_swuggy(_need(rows, name), cfg.swuggy, cache, progress)
    if name in ("tsc-topic", "tsc-in-document"):
        from modevo.tasks.storycloze import build_tsc

        return build_tsc(_need(rows, name), cfg.cloze, name.removeprefix("tsc-"), cache)
    if name == "word-order":
        from modevo.tasks.word_order import build_word_order

        return build_word_order(_need(rows, name), cfg.word_order, cache)
    if name in ("ssc-csv", "tsc-csv"):
        from modevo.tasks.storycloze import load_storycloze_csv

        return load_storycloze_csv(cfg.storycloze_csv, name.removesuffix("-csv"), seed=cfg.cloze.seed)
    if name == "swuggy-zr21":
        from modevo.tasks.zerospeech import load_lexical_gold

        return load_lexical_gold(cfg.zr_lexical, released_audio=cfg.released_audio, split=cfg.zr_split)
    if name == "sblimp-zr21":
        from modevo.tasks.zerospeech import load_syntactic_gold

        return load_syntactic_gold(cfg.zr_syntactic, released_audio=cfg.released_audio, split=cfg.zr_split)
    if name in ("ssc-spoken", "tsc-spoken"):
        from modevo.tasks.spoken_storycloze import load_spoken_storycloze

        variant = name.removesuffix("-spoken")
        return load_spoken_storycloze(getattr(cfg, f"spoken_{variant}"), variant)
    raise ConfigError(unknown_task(name))


def _need(rows, name: str) -> list[dict]:
    if not rows:
        raise ConfigError(f"task {name} is drawn from the corpus: it needs the corpus rows")
    return rows


DRAWN_FROM_CORPUS = ("swuggy", "tsc-topic", "tsc-in-document", "word-order")


def load_tasks(cfg: TasksConfig, rows: list[dict] | None = None, cache: Path | None = None,
               names: list[str] | None = None, progress: bool = True) -> list[TaskSet]:
    """The named tasks. One drawn from the corpus that this corpus cannot supply (a tiny corpus has no
    far-away in-document distractor) is a logged skip, so the other tasks are still scored; a task read
    from a file the user gave fails loudly."""
    out = []
    for n in names or cfg.names:
        try:
            out.append(load_task(n, cfg, rows, cache, progress))
        except InputError as e:
            if n not in DRAWN_FROM_CORPUS:
                raise
            log.warning("task %s skipped: %s", n, e)
    if not out:
        raise InputError(f"none of the tasks {', '.join(names or cfg.names)} has items in this corpus")
    return out
