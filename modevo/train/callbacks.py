"""What happens around the optimizer steps: metrics against tokens seen, validation on a global-step
schedule (so a resumed run validates at the same steps), milestone checkpoints for `eval`, and the resume
point. Everything is keyed by the global step, never by the dataloader's batch index, and acts once per
optimizer step (Lightning calls on_train_batch_end once per micro-batch under gradient accumulation).

Under several ranks every rank runs these callbacks (a sharded model needs every rank to gather its
weights), and rank zero alone writes files and logs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import lightning as L
import torch


def save_weights(module, path: Path, extra: dict, state_dict: dict | None = None) -> None:
    """Weights + the model config + what they are, loadable with torch.load(weights_only=True). Written to a
    temporary sibling that a failure (a full disk) removes: finished milestones are never touched."""
    from modevo.cache import atomic_file

    state_dict = module.model.state_dict() if state_dict is None else state_dict
    payload = {"state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
               "model_config": dataclasses.asdict(module.model.config), **extra}
    nbytes = sum(v.numel() * v.element_size() for v in payload["state_dict"].values())
    with atomic_file(path, nbytes) as tmp:
        torch.save(payload, tmp)


def model_state_dict(trainer, module) -> dict | None:
    """The decoder's full state dict (keys of GPT.state_dict()) on rank zero, None elsewhere. Every rank must
    call it: under fsdp it gathers the shards (a collective); otherwise each rank holds the whole model."""
    if module._sharded_wrapper() is not None:
        full = trainer.strategy.lightning_module_state_dict()
        return {k[len("model."):]: v for k, v in full.items() if k.startswith("model.")} if trainer.is_global_zero else None
    return module.model.state_dict() if trainer.is_global_zero else None


class OnOptimizerStep(L.Callback):
    """Calls on_step(trainer, module, outputs) once after each optimizer step, however many micro-batches
    it took (the global step changes on the micro-batch that stepped)."""

    _last_step: int | None = None

    def on_train_start(self, trainer, module):
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step != self._last_step:
            self._last_step = trainer.global_step
            self.on_step(trainer, module, outputs)

    def on_step(self, trainer, module, outputs):
        raise NotImplementedError


class TrainingProgress(OnOptimizerStep):
    """Train loss, learning rate, tokens/s, tokens seen and epochs, logged with step = tokens seen."""

    def __init__(self, windows_per_epoch: int, log_every: int = 10):
        self.windows_per_epoch, self.log_every = windows_per_epoch, log_every
        self._t0 = self._s0 = None

    def on_step(self, trainer, module, outputs):
        step = trainer.global_step
        if self._t0 is None:
            self._t0, self._s0 = time.perf_counter(), step
        tokens = step * module.tokens_per_step
        elapsed = time.perf_counter() - self._t0
        tok_s = (step - self._s0) * module.tokens_per_step / elapsed if elapsed > 0 else 0.0
        module.log("tok_s", tok_s, prog_bar=True, logger=False)  # tokens and steps: the bar's own label
        if step % self.log_every == 0 or step == trainer.max_steps:
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            windows = step * module.recipe.batch_size  # the global batch: every rank's windows together
            metrics = {"train_loss": float(loss), "lr": trainer.optimizers[0].param_groups[0]["lr"],
                       "tokens_per_s": tok_s, "tokens_seen": float(tokens),
                       "epochs": windows / max(1, self.windows_per_epoch)}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=tokens)


class Validation(OnOptimizerStep):
    """Validation loss every `every` global steps and at the end; early stopping for `converged`."""

    def __init__(self, loader, every: int, patience: int | None, run_dir: Path):
        self.loader, self.every, self.patience, self.run_dir = loader, every, patience, run_dir
        self.best, self.bad, self.history = math.inf, 0, []

    def _validate(self, trainer, module, show: bool = True):
        step = trainer.global_step
        if self.history and self.history[-1]["step"] == step:
            return
        loss = module.validation_loss(self.loader)
        tokens = step * module.tokens_per_step
        self.history.append({"step": step, "tokens": tokens, "valid_loss": loss})
        for logger in trainer.loggers:
            logger.log_metrics({"valid_loss": loss}, step=tokens)
        if show:  # the progress bar; Lightning forbids self.log() once training has ended
            module.log("valid_loss", loss, prog_bar=True, logger=False)
        if loss < self.best - 1e-4:
            self.best, self.bad = loss, 0
        else:
            self.bad += 1
        if self.patience is not None and self.bad >= self.patience:
            trainer.should_stop = True

    def on_step(self, trainer, module, outputs):
        if trainer.global_step % self.every == 0:
            self._validate(trainer, module)

    def on_train_end(self, trainer, module):
        self._validate(trainer, module, show=False)

    def state_dict(self):
        return {"best": self.best, "bad": self.bad, "history": self.history}

    def load_state_dict(self, state):
        self.best, self.bad, self.history = state["best"], state["bad"], state["history"]


class Milestones(OnOptimizerStep):
    """Weights at token milestones (budget/2^k), saved for `eval` to score later, and the final weights when
    training ends (tokens-<tokens seen>.pt); written by rank zero."""

    def __init__(self, folder: Path, milestone_tokens: list[int], extra: dict):
        self.folder, self.todo, self.extra = folder, sorted(milestone_tokens), extra
        self._saved: set[int] = set()  # the same on every rank: whether to gather is decided without the file system

    def _save(self, trainer, module, tokens: int):
        self._saved.add(tokens)
        state = model_state_dict(trainer, module)  # every rank: a collective under fsdp
        if trainer.is_global_zero:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_weights(module, self.folder / f"tokens-{tokens:012d}.pt",
                         {**self.extra, "tokens": tokens, "step": trainer.global_step}, state)

    def on_step(self, trainer, module, outputs):
        tokens = trainer.global_step * module.tokens_per_step
        if self.todo and tokens >= self.todo[0]:
            self._save(trainer, module, tokens)
        while self.todo and tokens >= self.todo[0]:
            self.todo.pop(0)

    def on_train_end(self, trainer, module):
        tokens = trainer.global_step * module.tokens_per_step
        if tokens not in self._saved:  # the final weights (rewritten, identical, when a resumed run had them)
            self._save(trainer, module, tokens)


class ResumePoint(OnOptimizerStep):
    """last.ckpt (weights, optimizer, scheduler, callback states) every N steps, written atomically by rank
    zero; every rank resumes from it (under fsdp a full, unsharded checkpoint)."""

    def __init__(self, path: Path, every: int):
        self.path, self.every = path, every

    def _save(self, trainer):
        from modevo.cache import disk_full, is_disk_full

        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            trainer.save_checkpoint(tmp, weights_only=False)  # every rank calls it; rank zero writes (then a barrier)
        except BaseException as e:  # a full disk: the previous last.ckpt stays the resume point
            tmp.unlink(missing_ok=True)
            if is_disk_full(e):
                raise disk_full(self.path, None, e.errno) from None
            raise
        if trainer.is_global_zero:
            os.replace(tmp, self.path)

    def on_step(self, trainer, module, outputs):
        if trainer.global_step % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer, module):
        self._save(trainer)


def checkpoint_step(path: Path) -> int:
    """The global step stored in a Lightning checkpoint, read with weights_only=True (tensors and plain values
    only, as Lightning's own resume reads it): a file that needs full unpickling is refused, never run."""
    from modevo.errors import InputError

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        return int(ckpt["global_step"])
    except Exception as e:  # noqa: BLE001 (corrupt, truncated, foreign or unsafe: one line for all)
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"{path}: not a resume checkpoint modevo can read ({reason}); delete it to restart "
                         f"this run from step 0") from None


def write_json(path: Path, obj: dict) -> None:
    from modevo.cache import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def _count(n: float) -> str:
    """1234 → '1.2k', 5_005_312 → '5.0M', 1.1e9 → '1.1B' (tokens on a progress bar)."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{int(n)}"


def progress_text(step: int, total_steps: int, tokens_per_step: int) -> str:
    """The training bar's description: '1.2M/5.0M tokens, step 300/610' (not Lightning's 'Epoch 0/-2': a run
    is a number of optimizer steps over an endless stream of windows, so epochs say nothing while it runs)."""
    return (f"{_count(step * tokens_per_step)}/{_count(total_steps * tokens_per_step)} tokens, "
            f"step {step:,}/{total_steps:,}")


def token_progress_bar():
    """Lightning's progress bar (rich where it is installed, else tqdm) counting optimizer steps and tokens:
    its total is max_steps, its position the global step (so a resumed run starts where it stopped and
    accumulation's micro-batches do not count), its description progress_text()."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
    from lightning.pytorch.utilities.imports import _RICH_AVAILABLE

    base = RichProgressBar if _RICH_AVAILABLE else TQDMProgressBar

    class TokenProgressBar(base):
        def describe(self, trainer, module) -> str:
            return progress_text(trainer.global_step, trainer.max_steps, module.tokens_per_step)

        def get_metrics(self, trainer, module):
            items = super().get_metrics(trainer, module)
            items.pop("v_num", None)
            return items

        def _show(self, trainer, module) -> None:
            if self.is_disabled:
                return
            text = self.describe(trainer, module)
            if base is RichProgressBar:
                if self.train_progress_bar_id is None:
                    self._initialize_train_progress_bar_id()
                if self.progress is not None and self.train_progress_bar_id is not None:
                    self.progress.update(self.train_progress_bar_id, total=trainer.max_steps,
                                         completed=trainer.global_step, description=text)
                self._update_metrics(trainer, module)
                self.refresh()
            else:
                bar = self.train_progress_bar
                if bar is not None:
                    bar.total = trainer.max_steps
                    bar.n = trainer.global_step
                    bar.set_description(text, refresh=False)
                    bar.set_postfix(self.get_metrics(trainer, module))

        def _get_train_description(self, current_epoch: int) -> str:  # rich: the bar's first label
            return self.describe(self.trainer, self.trainer.lightning_module)

        def on_train_epoch_start(self, trainer, module):
            super().on_train_epoch_start(trainer, module)
            self._show(trainer, module)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self._show(trainer, module)

        def on_train_epoch_end(self, trainer, module):
            self._show(trainer, module)

    return TokenProgressBar()
