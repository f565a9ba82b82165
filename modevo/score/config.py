"""`modevo eval`'s config: which tasks, and the scoring protocol recorded with every number.

Precedence as everywhere: dataclass defaults < --config YAML < key=value overrides (e.g. score.headline=mean).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modevo.config import require
from modevo.tasks.config import TasksConfig


@dataclass
class ScoringConfig:
    headline: Literal["sum", "mean"] = "sum"  # log-probability summed or averaged over tokens (both are kept)
    tie_tolerance: float = 1e-4  # |logp(correct) - logp(incorrect)| within this (nats) is a tie: 0.5
    context: Literal["continuation", "whole"] = "continuation"  # score only the continuation, or context too
    score_end: bool = False  # also score the separator after the continuation (end of utterance)
    batch_size: int = 32  # sequences per forward pass; scores are identical for any value
    # the blocks' precision when scoring; the lens and log-softmax are fp32 either way. bf16 is faster on
    # CPUs with bf16 matrix units; use it only where bench/precision_check.py shows it flips no decision
    # beyond near-ties (the precision is recorded in the protocol, so the two never mix in one table)
    precision: Literal["fp32", "bf16"] = "fp32"
    n_boot: int = 10_000
    level: float = 0.95
    tost_margin: float = 0.02  # equivalence margin, accuracy units (±2 points)
    seed: int = 0  # of the bootstrap
    ngram_order: int = 3
    test_renderings: list[str] | None = None  # speech items' renderings; None: the view's own + the grid
    checkpoints: Literal["final", "all"] = "final"  # all: every milestone (the training curve)
    # with checkpoints=all: the milestones before the last are scored on these tasks only, on the view's own
    # test rendering (the curve); the last gets every task and the whole grid. None: every milestone in full
    milestone_tasks: list[str] | None = None
    # Where scoring runs (not part of any result: left out of the recorded eval config). device: the model
    # on cpu, cuda, cuda:N or auto; fp32 on CUDA rounds differently from the CPU, so a CUDA device is named in
    # the protocol. world_size > 1: that many processes (torch.distributed, gloo) each score a share of every
    # task's items and rank 0 writes exactly what one process writes; under torchrun the ranks come from
    # the environment (WORLD_SIZE, RANK) instead.
    device: str = "cpu"
    world_size: int = 1

    def __post_init__(self):
        require(self.tie_tolerance >= 0, "tie_tolerance must be >= 0")
        require(self.batch_size > 0 and self.n_boot > 0, "batch_size and n_boot must be positive")
        require(0 < self.level < 1, "level must be in (0, 1)")
        require(0 < self.tost_margin < 0.5, "tost_margin must be in (0, 0.5)")
        require(self.ngram_order >= 1, "ngram_order must be >= 1")
        require(self.world_size >= 1, "world_size must be >= 1")
        require(self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:"),
                "device must be cpu, cuda, cuda:N or auto")


# where-it-runs keys: not recorded in summary.json's eval_config, so results are reused across them
RUNTIME_ONLY = ("device", "world_size")


@dataclass
class EvalConfig:
    tasks: TasksConfig = field(default_factory=TasksConfig)
    score: ScoringConfig = field(default_factory=ScoringConfig)

    def __post_init__(self):
        for n in self.score.milestone_tasks or []:
            require(n in self.tasks.names, f"score.milestone_tasks names {n}, which is not in tasks.names "
                    f"({', '.join(self.tasks.names)})")
