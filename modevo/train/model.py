"""The decoder every condition trains: a small Llama-style GPT in one file.

Pre-norm blocks (RMSNorm) with rotary position embeddings, grouped-query causal attention (attention.py:
SDPA, with an fp32 backward when training on a CPU) behind one fused QKV projection, a SwiGLU MLP, no
biases, and an LM head tied to the token embedding by default.

The contract train and score are built against:
    model(ids)                           → logits (B, T, V), float32 even when the model runs in bf16
    model(ids, return_hidden=True)       → (logits, hiddens): L+1 tensors (B, T, C), the embedding output
                                           and each block's output (the residual stream after the block)
    model(ids, targets=t)                → (logits, loss): mean cross-entropy in fp32, ignore_index -100
    model(ids, targets=t, return_hidden=True) → (logits, loss, hiddens)
    model.lens(h)                        → LM head over final_norm(h), float32 logits; the forward computes
                                           its logits as lens(hiddens[-1]), so the two are equal exactly
    model.hidden_states(ids, past=None, past_len=None) → (hiddens, kv): the L+1 hidden states without the
                                           full-vocabulary logits (scoring applies the lens where it needs
                                           it), and each block's keys and values of ids (B, K, T, D). With
                                           `past` (an earlier call's kv, rows right-padded) and `past_len`
                                           (B,) its valid lengths, ids continue those prefixes: row b's
                                           token t sits at position past_len[b] + t and attends to the
                                           first past_len[b] past keys and causally to ids
    model.param_counts()                 → {"total", "non_embedding"} (tied weights counted once)
    model.config                         → the ModelConfig
The model builds on the meta device (`with torch.device("meta"): GPT(cfg)`) without allocating; such a
model becomes real with `model.to_empty(device=...)` followed by `model.init_weights()`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from modevo.errors import ConfigError
from modevo.train.attention import causal_attention, masked_attention
from modevo.train.model_config import ModelConfig

IGNORE_INDEX = -100
INIT_STD = 0.02


class RMSNorm(nn.Module):
    """x / rms(x) · weight, with the statistics in fp32 whatever the input dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def rope_tables(seq_len: int, head_dim: int, theta: float, device, dtype,
                positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (T, 1, D/2), of the rotate-half (Llama / Hugging Face) layout; (B, T, 1, D/2) for
    per-row `positions` (B, T). Computed in fp32 per forward: cheap next to the model, identical for every
    batch size, and nothing to re-make after `to_empty` or a dtype change."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    if positions is None:
        pos = torch.arange(seq_len, device=device, dtype=torch.float32)
        angles = torch.outer(pos, inv_freq)[:, None, :]  # (T, 1, D/2): one row per position, shared by heads
    else:
        angles = (positions.to(torch.float32)[..., None] * inv_freq)[:, :, None, :]  # (B, T, 1, D/2)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_i, x_{i+D/2}) of x (B, T, heads, D) by its position's angle."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, T, heads, D/2) each
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)  # (B, T, heads, D)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, (cfg.n_head + 2 * cfg.n_kv_head) * cfg.head_dim, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.proj.is_residual_out = True  # init scaled by 1/sqrt(2·n_layer)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, past=None, mask=None):
        """→ (output (B, T, C), this call's rotated keys and values (B, K, T, D) each). With past (k, v)
        (B, K, P, D) each, the queries attend to past and new keys where mask (B, 1, T, P+T) is True."""
        B, T, C = x.shape
        H, K, D = self.n_head, self.n_kv_head, self.head_dim
        qk, v = self.qkv(x).view(B, T, H + 2 * K, D).split([H + K, K], dim=2)  # (B, T, H+K, D), (B, T, K, D)
        qk = apply_rope(qk, cos, sin)  # queries and keys rotated together, before the transpose: one pass
        q, k = qk.split([H, K], dim=2)  # (B, T, H, D), (B, T, K, D)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, D)
        if past is None:
            y = causal_attention(q, k, v, self.dropout if self.training else 0.0)  # (B, H, T, D)
        else:
            y = masked_attention(q, torch.cat([past[0], k], 2), torch.cat([past[1], v], 2), mask)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(y), (k, v)


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.ff_dim, bias=False)  # gate and up, fused
        self.down = nn.Linear(cfg.ff_dim, cfg.d_model, bias=False)
        self.down.is_residual_out = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # (B, T, F) each
        return self.down(F.silu(gate) * up)  # (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, past=None, mask=None):
        a, kv = self.attn(self.attn_norm(x), cos, sin, past, mask)
        x = x + self.drop(a)  # (B, T, C)
        x = x + self.drop(self.mlp(self.mlp_norm(x)))  # (B, T, C)
        return x, kv


class GPT(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()  # again: the fields may have been assigned after construction
        if config.vocab_size <= 0:
            raise ConfigError("model.vocab_size is 0 (unset): set it from the view's vocabulary before "
                              "building the model, e.g. GPT(cfg.with_vocab(view_vocab_size))")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.final_norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        # training only: recompute each block's activations in the backward instead of keeping them (the same
        # loss and gradients, less memory, about a third more compute); set by the trainer, not part of the shape
        self.activation_checkpointing = False
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """normal(0, 0.02) everywhere, residual output projections scaled by 1/sqrt(2·n_layer), norms 1.
        A no-op on the meta device; call it after `to_empty` to materialise a meta-built model (`to_empty`
        gives the head and the embedding separate tensors again: tying happens here)."""
        if self.config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layer)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                std = residual_std if getattr(module, "is_residual_out", False) else INIT_STD
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)  # a tied matrix is drawn twice above, both times at 0.02

    def lens(self, h: torch.Tensor) -> torch.Tensor:
        """Logit lens: final_norm then LM head over any residual-stream state h (B, T, C) → (B, T, V) fp32."""
        h = self.final_norm(h.to(self.final_norm.weight.dtype))
        return self.lm_head(h).float()

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None, return_hidden: bool = False):
        if ids.dim() != 2:
            raise ValueError(f"ids must be (batch, time), got shape {tuple(ids.shape)}")
        B, T = ids.shape
        if T > self.config.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds the model's max_seq_len {self.config.max_seq_len}")
        if T == 0:
            raise ValueError("ids is an empty sequence (time length 0)")
        x = self.drop(self.tok_emb(ids))  # (B, T, C)
        cos, sin = rope_tables(T, self.config.head_dim, self.config.rope_theta, x.device, x.dtype)  # (T, 1, D/2)
        hiddens = [x] if return_hidden else None
        checkpointed = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            if checkpointed:
                x, _ = torch.utils.checkpoint.checkpoint(block, x, cos, sin, use_reentrant=False)  # (B, T, C)
            else:
                x, _ = block(x, cos, sin)  # (B, T, C)
            if hiddens is not None:
                hiddens.append(x)
        logits = self.lens(x)  # (B, T, V) fp32
        out = (logits,)
        if targets is not None:
            if targets.shape != ids.shape:
                raise ValueError(f"targets shape {tuple(targets.shape)} differs from ids shape {tuple(ids.shape)}")
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
            out += (loss,)
        if hiddens is not None:
            out += (hiddens,)
        return out[0] if len(out) == 1 else out

    @torch.no_grad()
    def hidden_states(self, ids: torch.Tensor, past: list | None = None, past_len: torch.Tensor | None = None):
        """(hiddens, kv) of ids (B, T) without the logits: L+1 states (B, T, C) and each block's (k, v) of
        ids. Given past (a list of L (k, v), each (B, K, P, D), rows right-padded) and past_len (B,), ids
        continue row b's first past_len[b] tokens: the same states as one forward over prefix + ids, up to
        rounding (scoring shares a context between two continuations this way)."""
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError(f"ids must be a non-empty (batch, time) tensor, got shape {tuple(ids.shape)}")
        B, T = ids.shape
        P = 0 if past is None else past[0][0].shape[2]
        if P + T > self.config.max_seq_len:
            raise ValueError(f"sequence length {P + T} exceeds the model's max_seq_len {self.config.max_seq_len}")
        x = self.tok_emb(ids)  # (B, T, C)
        mask = positions = None
        if past is not None:
            if len(past) != len(self.blocks) or past_len is None or past_len.shape != (B,):
                raise ValueError("past needs one (k, v) per block and past_len one length per row")
            steps = torch.arange(T, device=ids.device)
            positions = past_len.to(ids.device)[:, None] + steps  # (B, T)
            seen = torch.arange(P, device=ids.device)[None, None, :] < past_len.to(ids.device)[:, None, None]  # (B, 1, P)
            causal = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril()  # (T, T)
            mask = torch.cat([seen.expand(B, T, P), causal.expand(B, T, T)], 2)[:, None]  # (B, 1, T, P+T)
        cos, sin = rope_tables(T, self.config.head_dim, self.config.rope_theta, x.device, x.dtype, positions)
        hiddens, kv = [x], []
        for n, block in enumerate(self.blocks):
            x, layer_kv = block(x, cos, sin, None if past is None else past[n], mask)  # (B, T, C)
            hiddens.append(x)
            kv.append(layer_kv)
        return hiddens, kv

    def param_counts(self) -> dict[str, int]:
        """Total parameters (a tied matrix counted once) and non-embedding ones (without the token
        embedding and the LM head). Works on the meta device."""
        total = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        embedding = self.tok_emb.weight.numel()
        if not self.config.tie_embeddings:
            embedding += self.lm_head.weight.numel()
        return {"total": total, "non_embedding": total - embedding}
