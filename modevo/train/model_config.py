"""The decoder's shape: one dataclass, loaded from configs/model/<scale>.yaml.

`vocab_size` is not a property of a scale but of a view (≈40 characters to thousands of BPE pieces or
speech units): the YAML leaves it at 0 ("unset") and the train stage fills it in from the view
(`cfg.with_vocab(n)`); building a model while it is still 0 raises ConfigError.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from modevo.config import require


def swiglu_hidden(d_model: int, multiple: int = 64) -> int:
    """The SwiGLU width that matches a 4·d GELU MLP in parameters: 8/3·d, rounded up to `multiple`."""
    return -(-8 * d_model // (3 * multiple)) * multiple


@dataclass
class ModelConfig:
    vocab_size: int = 0  # 0 = unset: set from the view at run time
    n_layer: int = 6
    n_head: int = 8
    n_kv_head: int = 4  # grouped-query attention: each K/V head serves n_head // n_kv_head query heads
    d_model: int = 256
    d_ff: int | None = None  # SwiGLU intermediate size; None → 8/3·d_model rounded up to a multiple of 64
    max_seq_len: int = 512
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True  # the LM head reuses the token embedding matrix
    dropout: float = 0.0  # on attention weights and on each residual branch (training only)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Value checks (raise ValueError; `modevo.config.load` turns them into ConfigError)."""
        require(self.vocab_size >= 0, f"vocab_size must be positive (or 0 = unset), got {self.vocab_size}")
        for name in ("n_layer", "n_head", "n_kv_head", "d_model", "max_seq_len"):
            value = getattr(self, name)
            require(value > 0, f"{name} must be positive, got {value}")
        require(self.d_ff is None or self.d_ff > 0, f"d_ff must be positive or null, got {self.d_ff}")
        require(self.d_model % self.n_head == 0,
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        require(self.n_kv_head <= self.n_head and self.n_head % self.n_kv_head == 0,
                f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        require(self.head_dim % 2 == 0,
                f"head dim d_model/n_head = {self.head_dim} must be even for rotary embeddings")
        require(self.rope_theta > 0, f"rope_theta must be positive, got {self.rope_theta}")
        require(self.norm_eps > 0, f"norm_eps must be positive, got {self.norm_eps}")
        require(0.0 <= self.dropout < 1.0, f"dropout must lie in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def ff_dim(self) -> int:
        """The SwiGLU intermediate size actually built (d_ff, or its default)."""
        return self.d_ff if self.d_ff is not None else swiglu_hidden(self.d_model)

    def with_vocab(self, vocab_size: int) -> "ModelConfig":
        """A copy with the view's vocabulary size filled in (validated)."""
        require(vocab_size > 0, f"vocab_size must be positive, got {vocab_size}")
        return dataclasses.replace(self, vocab_size=vocab_size)
