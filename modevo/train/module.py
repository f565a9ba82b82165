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


class LanguageModel(L.LightningModule):
    def __init__(self, model_cfg: ModelConfig, recipe: RecipeConfig, total_steps: int):
        super().__init__()
        self.model = GPT(model_cfg)
        self.recipe, self.total_steps = recipe, total_steps
        if recipe.compile:
            self.model.compile()  # in place: the state dict keeps its keys; model.forward(...) stays eager

    @property
    def tokens_per_step(self) -> int:
        return self.recipe.batch_size * self.recipe.seq_len * max(1, self.trainer.world_size if self._trainer else 1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        ids, targets = batch[:, :-1], batch[:, 1:]  # (B, T), (B, T)
        _, loss = self.model(ids, targets=targets)
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=True, logger=False)
        return loss

    @torch.no_grad()
    def validation_loss(self, loader) -> float:
        """Mean token loss over the fixed validation windows, summed in fp64 (independent of batching)."""
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
        decay = [p for p in self.model.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.dim() < 2]  # norms
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": r.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=r.lr, betas=(r.beta1, r.beta2))
        warmup = int(r.warmup_fraction * self.total_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_lambda(s, self.total_steps, warmup, r.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
