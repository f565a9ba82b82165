"""Which tasks `modevo eval` scores and where their items come from."""

from __future__ import annotations

from dataclasses import dataclass, field

from modevo.config import require

KNOWN_TASKS = ("sblimp",)


@dataclass
class TasksConfig:
    names: list[str] = field(default_factory=lambda: ["sblimp"])
    blimp_path: str | None = None  # a folder of BLiMP jsonl files (the full 67,000 pairs); None: vendored subset
    blimp_per_paradigm: int | None = None  # keep the first N pairs of each paradigm; None: all loaded
    blimp_paradigms: list[str] | None = None  # only these paradigms (UIDs); None: all 67

    def __post_init__(self):
        require(len(self.names) > 0, "tasks.names is empty: name at least one task")
        for n in self.names:
            require(n in KNOWN_TASKS, f"unknown task '{n}' (known: {', '.join(KNOWN_TASKS)})")
        require(self.blimp_per_paradigm is None or self.blimp_per_paradigm > 0, "blimp_per_paradigm must be positive")
