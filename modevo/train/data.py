"""Packed token windows of one view, as a LightningDataModule.

The train split's utterances lie end to end, each followed by the separator (id 0), in the view's
memory-mapped stream (`ViewData.stream`); windows of seq_len + 1 tokens (stride seq_len) are sliced straight
from it and cast to int64 per batch. Step s of the run reads a batch fixed by (seed, s) alone —
the epoch's seeded permutation of windows — so a resumed run sees exactly the batches an uninterrupted
one would, whatever was consumed before the kill. No per-token Python: everything is numpy slicing.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from modevo.views.build import ViewData

WINDOW_LOG_ENV = "MODEVO_WINDOW_LOG"


class StepBatches(Dataset):
    """Item k is micro-batch k of the run from global step `start` on, as this rank sees it:
    (batch_size / (world · accumulate), seq_len + 1) int64.

    The global batch of step s (`batch_size` windows, `window_ids(s)`) is a function of (seed, s) alone. It
    splits into `accumulate` micro-batches of consecutive rows, and each micro-batch into `world` equal
    slices, one per rank: rank r's part of micro-batch m is global rows m·B/A + r·b ... m·B/A + (r+1)·b - 1
    with b = B/(A·W). So every optimizer step consumes the same windows whatever the ranks and the
    accumulation, and a resumed run sees exactly what an uninterrupted one would.

    Its length is the whole run's micro-batches even when resuming: Lightning restores its batch index within
    the epoch and would end a shorter "epoch" early and restart the loader; max_steps ends the run instead.
    With MODEVO_WINDOW_LOG set to a folder, each item's window ids are appended to
    <folder>/windows-rank<r>.jsonl (off by default; the distributed tests compare them)."""

    def __init__(self, stream: np.ndarray, seq_len: int, batch_size: int, seed: int, start: int, total: int,
                 rank: int = 0, world: int = 1, accumulate: int = 1):
        self.stream, self.seq_len, self.batch_size, self.seed = stream, seq_len, batch_size, seed
        self.n_windows = (len(stream) - 1) // seq_len
        if self.n_windows < 1:
            raise ValueError(f"the training stream has {len(stream)} tokens, fewer than one window of {seq_len + 1}")
        if batch_size % (world * accumulate) or not 0 <= rank < world:
            raise ValueError(f"a global batch of {batch_size} windows does not split into {accumulate} micro-batches "
                             f"over {world} ranks (rank {rank})")
        self.start, self.total = start, total
        self.rank, self.world, self.accumulate = rank, world, accumulate
        self.micro_rows = batch_size // (world * accumulate)  # rows per rank per micro-batch
        self._log = None

    def __len__(self) -> int:
        return self.total * self.accumulate

    def window_ids(self, step: int) -> np.ndarray:
        """The global batch of `step`: batch_size window ids, a function of (seed, step) alone."""
        first = step * self.batch_size
        ids = np.empty(self.batch_size, dtype=np.int64)
        for j in range(self.batch_size):
            epoch, pos = divmod(first + j, self.n_windows)
            ids[j] = _permutation(self.seed, epoch, self.n_windows)[pos]
        return ids

    def item_window_ids(self, k: int) -> tuple[int, int, np.ndarray]:
        """(step, micro-batch, this rank's window ids) of item k."""
        step, micro = divmod(k, self.accumulate)
        step += self.start
        first = micro * (self.batch_size // self.accumulate) + self.rank * self.micro_rows
        ids = self.window_ids(step)[first:first + self.micro_rows]
        folder = os.environ.get(WINDOW_LOG_ENV)
        if folder:
            if self._log is None:
                Path(folder).mkdir(parents=True, exist_ok=True)
                self._log = open(Path(folder) / f"windows-rank{self.rank}.jsonl", "a", buffering=1)
            self._log.write(json.dumps({"step": step, "micro": micro, "rank": self.rank, "ids": ids.tolist()}) + "\n")
        return step, micro, ids

    def __getitem__(self, k: int) -> torch.Tensor:
        starts = self.item_window_ids(k)[2] * self.seq_len
        rows = np.stack([self.stream[s:s + self.seq_len + 1] for s in starts]).astype(np.int64)
        return torch.from_numpy(rows)


_PERM_CACHE: dict = {}


def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    key = (seed, epoch, n)
    if key not in _PERM_CACHE:
        if len(_PERM_CACHE) > 4:
            _PERM_CACHE.clear()
        _PERM_CACHE[key] = np.random.default_rng([seed, epoch]).permutation(n)
    return _PERM_CACHE[key]


class ValidWindows(Dataset):
    """The first windows of the valid split (fixed, so every validation scores the same tokens)."""

    def __init__(self, stream: np.ndarray, seq_len: int, max_tokens: int):
        n = min((len(stream) - 1) // seq_len, max(1, max_tokens // seq_len))
        self.stream, self.seq_len, self.n = stream, seq_len, max(0, n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        s = i * self.seq_len
        return torch.from_numpy(self.stream[s:s + self.seq_len + 1].astype(np.int64))


class ViewDataModule(L.LightningDataModule):
    def __init__(self, view: ViewData, seq_len: int, batch_size: int, seed: int, total_steps: int,
                 val_max_tokens: int, start_step: int = 0):
        super().__init__()
        self.view, self.seq_len, self.batch_size, self.seed = view, seq_len, batch_size, seed
        self.total_steps, self.start_step, self.val_max_tokens = total_steps, start_step, val_max_tokens
        # the view's memory-mapped streams themselves (uint16/uint32): no packed copy, no int64 stream
        self.train_stream = view.stream("train")
        self.valid_stream = view.stream("valid")

    @property
    def windows_per_epoch(self) -> int:
        return (len(self.train_stream) - 1) // self.seq_len

    def train_dataloader(self):
        """This rank's micro-batches (sharded here, explicitly: the Trainer runs with
        use_distributed_sampler=False, as a distributed sampler over whole step batches would hand each rank
        a slice of the step sequence instead of a slice of every step)."""
        trainer = self.trainer  # attached by Lightning before it asks for the loader
        rank, world, accumulate = ((trainer.global_rank, trainer.world_size, trainer.accumulate_grad_batches)
                                   if trainer is not None else (0, 1, 1))
        ds = StepBatches(self.train_stream, self.seq_len, self.batch_size, self.seed, self.start_step,
                         self.total_steps, rank=rank, world=world, accumulate=accumulate)
        return DataLoader(ds, batch_size=None, shuffle=False, num_workers=0)

    def validation_loader(self, batch_size: int | None = None):
        """Used by the Validation callback on a global-step schedule, not by Lightning's own val loop; its loss
        is independent of the batch size (fp64 sums), so a rank uses its micro-batch size."""
        ds = ValidWindows(self.valid_stream, self.seq_len, self.val_max_tokens)
        return DataLoader(ds, batch_size=batch_size or self.batch_size, shuffle=False, num_workers=0)


def steps_for(budget: str, max_tokens: int, epochs: float, windows_per_epoch: int, batch_size: int,
              seq_len: int) -> int:
    """Optimizer steps of a run: equal tokens (`tokens`, and the cap of `converged`) or equal passes."""
    if budget == "epochs":
        return max(1, math.ceil(epochs * windows_per_epoch / batch_size))
    return max(1, math.ceil(max_tokens / (batch_size * seq_len)))
