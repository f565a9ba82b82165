"""Task name → its items: the one place a task is defined."""

from __future__ import annotations

import difflib

from modevo.errors import ConfigError
from modevo.tasks.base import TaskSet
from modevo.tasks.config import KNOWN_TASKS, TasksConfig


def load_task(name: str, cfg: TasksConfig) -> TaskSet:
    if name == "sblimp":
        from modevo.tasks.blimp import load_blimp

        # the full upstream data has 7 pairs whose members are identical: they cannot be scored
        return load_blimp(cfg.blimp_path, cfg.blimp_per_paradigm, cfg.blimp_paradigms, skip_identical=True)
    match = difflib.get_close_matches(name, KNOWN_TASKS, n=1)
    raise ConfigError(f"unknown task '{name}'" + (f"; did you mean '{match[0]}'?" if match else
                                                  f" (known: {', '.join(KNOWN_TASKS)})"))


def load_tasks(cfg: TasksConfig, names: list[str] | None = None) -> list[TaskSet]:
    return [load_task(n, cfg) for n in (names or cfg.names)]
