"""The LightningModule every condition trains: the same decoder and the same recipe; only the view changes."""

from __future__ import annotations

import math

import lightning as L
import torch

from modevo.train.config import RecipeConfig
from modevo.train.model import GPT
from modevo.train.model_config import ModelConfig


def lr_lambda(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warmup, then cosine from 1 to min_ratio at the last step."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _plain_name(name: str) -> str:
    """A parameter's name without the wrappers FSDP and activation checkpointing insert."""
    return name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")


class LanguageModel(L.LightningModule):
    def __init__(self, model_cfg: ModelConfig, recipe: RecipeConfig, total_steps: int):
        super().__init__()
        self.model = GPT(model_cfg)
        self.recipe, self.total_steps = recipe, total_steps
        self._no_decay = {n for n, p in self.model.named_parameters() if p.dim() < 2}  # the norms' weights
        # under fsdp, Lightning's checkpointing policy wraps the sharded blocks instead (run.make_strategy)
        self.model.activation_checkpointing = recipe.activation_checkpointing and recipe.strategy != "fsdp"
        if recipe.compile:
            self.model.compile()  # in place: the state dict keeps its keys; model.forward(...) stays eager

    @property
    def tokens_per_step(self) -> int:
        """Tokens per optimizer step: the global batch (batch_size windows) × seq_len, whatever the ranks."""
        return self.recipe.batch_size * self.recipe.seq_len

    def _sharded_wrapper(self):
        """The FSDP module wrapping this one during an fsdp fit, else None."""
        wrapper = self._trainer.strategy.model if self._trainer is not None else None
        if wrapper is None or wrapper is self:
            return None
        from torch.distributed.fsdp import FullyShardedDataParallel

        return wrapper if isinstance(wrapper, FullyShardedDataParallel) else None

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """Clip the global gradient norm; under fsdp through the root FSDP module (the norm over every rank's
        shard: torch.nn.utils.clip_grad_norm_ would see one shard, and Lightning refuses it)."""
        if not gradient_clip_val:
            return
        wrapper = self._sharded_wrapper()
        if wrapper is not None:
            wrapper.clip_grad_norm_(gradient_clip_val)
        else:
            self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val,
                                gradient_clip_algorithm=gradient_clip_algorithm)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        ids, targets = batch[:, :-1], batch[:, 1:]  # (B, T), (B, T)
        _, loss = self.model(ids, targets=targets)
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=True, logger=False)
        return loss

    def validation_loss(self, loader) -> float:
        """Mean token loss over the fixed validation windows, summed in fp64 (independent of batching). Every
        rank computes it on the same weights and windows, so every rank takes the same early-stopping
        decision; under fsdp the call goes through the root FSDP module (its parameters gathered)."""
        wrapper = self._sharded_wrapper()
        if wrapper is not None:
            from lightning.pytorch.strategies.strategy import _ForwardRedirection

            with torch.no_grad():  # as Lightning's own validation loop: FSDP then registers no backward hooks
                return _ForwardRedirection()(wrapper, self, "_validation_loss", loader)
        return self._validation_loss(loader)

    @torch.no_grad()
    def _validation_loss(self, loader) -> float:
        was_training = self.model.training
        self.model.eval()
        total, count = 0.0, 0
        for batch in loader:
            batch = batch.to(self.device)
            ids, targets = batch[:, :-1], batch[:, 1:]
            logits = self.model.forward(ids)  # (B, T, V) fp32; eager even when training is compiled
            losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
            total += float(losses.double().sum())
            count += losses.numel()
        self.model.train(was_training)
        return total / max(1, count)

    def configure_optimizers(self):
        r = self.recipe
        # by name, not by p.dim(): under fsdp (use_orig_params) a parameter is a flat view of its shard here
        flat = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        decay = [p for n, p in flat.items() if _plain_name(n) not in self._no_decay]
        no_decay = [p for n, p in flat.items() if _plain_name(n) in self._no_decay]  # norms
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": r.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=r.lr, betas=(r.beta1, r.beta2))
        warmup = int(r.warmup_fraction * self.total_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_lambda(s, self.total_steps, warmup, r.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
