"""The train stage's config: one run = one view × one model × one budget × one seed.

`TrainStageConfig` composes what a run needs: the corpus, units and views settings (the views stage), the
model shape and the recipe. configs/train/<scale>.yaml include the views and model files of that scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modevo.config import require, require_name
from modevo.train.model_config import ModelConfig
from modevo.views.build import ViewsStageConfig


@dataclass
class RecipeConfig:
    """The training recipe: tuned once per scale on text-bpe's validation loss, then frozen for all views."""

    view: str = "text-bpe"
    scale: str = "smoke"  # a label recorded with the run (smoke | cpu | paper)
    seed: int = 0
    # speech-tokens: max_tokens counts only the view's speech units (an interleaved view trains on
    # max_tokens / its speech_token_share tokens in all, seeing as many units as speech@R/T does)
    budget: Literal["tokens", "epochs", "converged", "speech-tokens"] = "tokens"
    # warm start (TWIST): a run folder or milestone whose weights initialise this run, token rows matched by
    # token (text-bpe's pieces inside an interleaved vocabulary); None: a fresh initialisation
    init_from: str | None = None
    max_tokens: int = 200_000  # `tokens`: train exactly this many; `converged`: at most this many
    epochs: float = 1.0  # `epochs`: passes over the view's training windows
    patience: int = 3  # `converged`: validations without improvement before stopping
    # windows per optimizer step: the GLOBAL batch, whatever the devices. Each of the devices × num_nodes
    # ranks takes batch_size / (devices · num_nodes · accumulate) windows per micro-batch, so a run's math
    # (and its run key) does not depend on where it runs.
    batch_size: int = 8
    seq_len: int = 256  # tokens per window (the context length)
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr · min_lr_ratio
    warmup_fraction: float = 0.05  # of the total steps
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    precision: Literal["auto", "bf16-mixed", "32-true"] = "auto"  # auto: bf16 where the CPU has bf16 units
    # torch.compile the training forward/backward (fuses the norm, rotary, SwiGLU and loss elementwise work;
    # bench/train_throughput.py: 1.47x over eager on 2 CPU cores, with the fp32 attention backward). Costs ~20 s of compilation per run, so the
    # seconds-long smoke runs leave it off. Validation and scoring run the same weights eagerly.
    compile: bool = False
    val_every_tokens: int = 50_000
    val_max_tokens: int = 65_536  # validation windows are the first ones of the valid split, this many tokens
    milestones: int = 4  # checkpoints at budget/2^k tokens for k < milestones (scored later by `eval`)
    checkpoint_every_steps: int = 50  # the resume point (last.ckpt)
    accelerator: str = "cpu"
    devices: int = 1  # processes per node (GPUs, or CPU processes with gloo)
    num_nodes: int = 1
    # auto: one process, or ddp over devices × num_nodes; fsdp shards weights, gradients and AdamW states
    # over the ranks with the decoder block as the wrap unit (GPUs)
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation)
    activation_checkpointing: bool = False  # recompute each decoder block in the backward: less memory
    runs_dir: str = "runs"  # run folders and, by default, the MLflow store
    tracking_uri: str | None = None  # any MLflow URI; None: sqlite:///<runs_dir>/mlflow.db
    experiment: str = "modevo"

    def __post_init__(self):
        require_name(self.scale, "scale")  # runs/<scale>/<view>/...: never outside runs_dir
        for name in ("max_tokens", "batch_size", "seq_len", "val_every_tokens", "val_max_tokens", "milestones",
                     "checkpoint_every_steps", "devices", "num_nodes", "accumulate", "patience"):
            require(getattr(self, name) > 0, f"{name} must be positive")
        require(self.epochs > 0, "epochs must be positive")
        require(self.lr > 0 and 0 <= self.min_lr_ratio <= 1, "lr must be positive and min_lr_ratio in [0, 1]")
        require(0 <= self.warmup_fraction < 1, "warmup_fraction must be in [0, 1)")
        require(self.grad_clip >= 0 and self.weight_decay >= 0, "grad_clip and weight_decay must be >= 0")
        shards = self.world_size * self.accumulate
        require(self.batch_size % shards == 0,
                f"batch_size ({self.batch_size}) is the global batch: it must be divisible by devices × num_nodes × "
                f"accumulate ({self.devices} × {self.num_nodes} × {self.accumulate} = {shards})")
        require(self.strategy != "fsdp" or self.accelerator in ("gpu", "cuda"),
                f"strategy fsdp needs accelerator gpu (got {self.accelerator}); on CPU processes use ddp")
        from modevo.views.registry import parse_view

        parse_view(self.view)  # a misspelt view is one line naming the closest

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def micro_batch(self) -> int:
        """Windows per rank per micro-batch: batch_size / (devices · num_nodes · accumulate)."""
        return self.batch_size // (self.world_size * self.accumulate)


@dataclass
class TrainStageConfig(ViewsStageConfig):
    model: ModelConfig = field(default_factory=ModelConfig)
    train: RecipeConfig = field(default_factory=RecipeConfig)
