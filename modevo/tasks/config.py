"""Which tasks `modevo eval` scores and where their items come from.

Built-in tasks: sblimp (BLiMP, vendored subset or a path), word-order (held-out sentences against the same
words reordered), swuggy (pseudowords from the training vocabulary), tsc-topic and tsc-in-document
(held-out chunks). From files a user gives: ssc-csv and tsc-csv
(the standard StoryCloze CSV), swuggy-zr21 and sblimp-zr21 (ZeroSpeech 2021 lexical / syntactic: a gold.csv
or its sLM21 folder with the released wavs), ssc-spoken and tsc-spoken (the released spoken StoryCloze
audio: a manifest CSV or a folder).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from modevo.config import require
from modevo.tasks.storycloze import ClozeConfig
from modevo.tasks.swuggy import SwuggyConfig
from modevo.tasks.word_order import WordOrderConfig

BUILT_IN = ("sblimp", "word-order", "swuggy", "tsc-topic", "tsc-in-document")
FROM_FILES = {"ssc-csv": "storycloze_csv", "tsc-csv": "storycloze_csv", "swuggy-zr21": "zr_lexical",
              "sblimp-zr21": "zr_syntactic", "ssc-spoken": "spoken_ssc", "tsc-spoken": "spoken_tsc"}
KNOWN_TASKS = BUILT_IN + tuple(FROM_FILES)


def unknown_task(name: str) -> str:
    match = difflib.get_close_matches(name, KNOWN_TASKS, n=1)
    return f"unknown task '{name}'" + (f"; did you mean '{match[0]}'?" if match else f" (known: {', '.join(KNOWN_TASKS)})")


@dataclass
class TasksConfig:
    names: list[str] = field(default_factory=lambda: list(BUILT_IN))
    blimp_path: str | None = None  # a folder of BLiMP jsonl files (the full 67,000 pairs); None: vendored subset
    blimp_per_paradigm: int | None = None  # keep the first N pairs of each paradigm; None: all loaded
    blimp_paradigms: list[str] | None = None  # only these paradigms (UIDs); None: all 67
    swuggy: SwuggyConfig = field(default_factory=SwuggyConfig)
    cloze: ClozeConfig = field(default_factory=ClozeConfig)
    word_order: WordOrderConfig = field(default_factory=WordOrderConfig)
    storycloze_csv: str | None = None  # the standard StoryCloze CSV (ssc-csv, tsc-csv)
    # ZeroSpeech 2021: a gold.csv or the sLM21 folder holding it with the wavs (<root>/lexical/dev)
    zr_lexical: str | None = None  # swuggy-zr21
    zr_syntactic: str | None = None  # sblimp-zr21
    zr_split: str | None = None  # dev | test: names the submission file; None: the gold folder's name
    # speech views encode a released set's own audio where its files are there; false: always synthesise
    released_audio: bool = True
    # the released spoken StoryCloze: a manifest CSV (id,correct_wav,incorrect_wav[,transcript_correct,
    # transcript_incorrect]) or a folder (with manifest.csv, or slamkit's <n>_<tag>.wav layout)
    spoken_ssc: str | None = None  # ssc-spoken
    spoken_tsc: str | None = None  # tsc-spoken

    def __post_init__(self):
        require(len(self.names) > 0, "tasks.names is empty: name at least one task")
        for n in self.names:
            require(n in KNOWN_TASKS, unknown_task(n))
            if n in FROM_FILES:
                require(getattr(self, FROM_FILES[n]) is not None,
                        f"task {n} reads a file: set tasks.{FROM_FILES[n]}=<path>")
        require(self.zr_split in (None, "dev", "test"), f"zr_split must be dev or test, got '{self.zr_split}'")
        require(self.blimp_per_paradigm is None or self.blimp_per_paradigm > 0, "blimp_per_paradigm must be positive")
