"""Packed token windows of one view, as a LightningDataModule.

The train split's utterances are laid end to end with the separator (id 0) between them and cut into
windows of seq_len + 1 tokens (stride seq_len). Step s of the run reads a batch fixed by (seed, s) alone —
the epoch's seeded permutation of windows — so a resumed run sees exactly the batches an uninterrupted
one would, whatever was consumed before the kill. No per-token Python: everything is numpy slicing.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from modevo.views.build import ViewData


def pack(view: ViewData, split: str) -> np.ndarray:
    """The split's utterances in corpus order, each followed by the separator, as one int64 stream."""
    idx = np.flatnonzero(view.split_mask(split))
    if len(idx) == 0:
        return np.zeros(0, dtype=np.int64)
    lengths = view.offsets[idx + 1] - view.offsets[idx]
    out = np.zeros(int(lengths.sum()) + len(idx), dtype=np.int64)
    pos = 0
    for i, n in zip(idx, lengths):  # per utterance, not per token
        out[pos:pos + n] = view.tokens[view.offsets[i]:view.offsets[i + 1]]
        pos += n + 1  # the zero left in place is the separator
    return out


class StepBatches(Dataset):
    """Item k is the full batch of global step start + k: (batch_size, seq_len + 1) int64.

    Its length is the whole run's steps even when resuming: Lightning restores its batch index within the
    epoch and would end a shorter "epoch" early and restart the loader; max_steps ends the run instead."""

    def __init__(self, stream: np.ndarray, seq_len: int, batch_size: int, seed: int, start: int, total: int):
        self.stream, self.seq_len, self.batch_size, self.seed = stream, seq_len, batch_size, seed
        self.n_windows = (len(stream) - 1) // seq_len
        if self.n_windows < 1:
            raise ValueError(f"the training stream has {len(stream)} tokens, fewer than one window of {seq_len + 1}")
        self.start, self.total = start, total

    def __len__(self) -> int:
        return self.total

    def window_ids(self, step: int) -> np.ndarray:
        first = step * self.batch_size
        ids = np.empty(self.batch_size, dtype=np.int64)
        for j in range(self.batch_size):
            epoch, pos = divmod(first + j, self.n_windows)
            ids[j] = _permutation(self.seed, epoch, self.n_windows)[pos]
        return ids

    def __getitem__(self, k: int) -> torch.Tensor:
        starts = self.window_ids(self.start + k) * self.seq_len
        rows = np.stack([self.stream[s:s + self.seq_len + 1] for s in starts])
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
        return torch.from_numpy(self.stream[s:s + self.seq_len + 1].copy())


class ViewDataModule(L.LightningDataModule):
    def __init__(self, view: ViewData, seq_len: int, batch_size: int, seed: int, total_steps: int,
                 val_max_tokens: int, start_step: int = 0):
        super().__init__()
        self.view, self.seq_len, self.batch_size, self.seed = view, seq_len, batch_size, seed
        self.total_steps, self.start_step, self.val_max_tokens = total_steps, start_step, val_max_tokens
        self.train_stream = pack(view, "train")
        self.valid_stream = pack(view, "valid")

    @property
    def windows_per_epoch(self) -> int:
        return (len(self.train_stream) - 1) // self.seq_len

    def train_dataloader(self):
        ds = StepBatches(self.train_stream, self.seq_len, self.batch_size, self.seed, self.start_step,
                         self.total_steps)
        return DataLoader(ds, batch_size=None, shuffle=False, num_workers=0)

    def validation_loader(self):
        """Used by the Validation callback on a global-step schedule, not by Lightning's own val loop."""
        ds = ValidWindows(self.valid_stream, self.seq_len, self.val_max_tokens)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=False, num_workers=0)


def steps_for(budget: str, max_tokens: int, epochs: float, windows_per_epoch: int, batch_size: int,
              seq_len: int) -> int:
    """Optimizer steps of a run: equal tokens (`tokens`, and the cap of `converged`) or equal passes."""
    if budget == "epochs":
        return max(1, math.ceil(epochs * windows_per_epoch / batch_size))
    return max(1, math.ceil(max_tokens / (batch_size * seq_len)))
