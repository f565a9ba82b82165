"""Task name → its items: the one place a task is defined.

Some tasks are drawn from the corpus itself (sWUGGY from the training vocabulary, tSC from held-out
chunks): they receive the corpus rows (dicts with id, doc_id, sentence_index, chunk, split, written, text,
words, phones, stress, phone_route) and a cache folder; the same corpus and config give the same items
for every view, so every view is scored on one task set (one content hash).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from modevo.errors import ConfigError
from modevo.tasks.base import TaskSet
from modevo.tasks.config import KNOWN_TASKS, TasksConfig


def load_task(name: str, cfg: TasksConfig, rows: list[dict] | None = None, cache: Path | None = None) -> TaskSet:
    if name == "sblimp":
        from modevo.tasks.blimp import load_blimp

        # the full upstream data has 7 pairs whose members are identical: they cannot be scored
        return load_blimp(cfg.blimp_path, cfg.blimp_per_paradigm, cfg.blimp_paradigms, skip_identical=True)
    match = difflib.get_close_matches(name, KNOWN_TASKS, n=1)
    raise ConfigError(f"unknown task '{name}'" + (f"; did you mean '{match[0]}'?" if match else
                                                  f" (known: {', '.join(KNOWN_TASKS)})"))


def load_tasks(cfg: TasksConfig, rows: list[dict] | None = None, cache: Path | None = None,
               names: list[str] | None = None) -> list[TaskSet]:
    return [load_task(n, cfg, rows, cache) for n in (names or cfg.names)]
