"""Causal attention for the decoder: PyTorch's SDPA, except for CPU training, where the backward runs in fp32.

Why: on this CPU (2 cores, AMX) the flash-attention backward kernel is the largest cost of a training step
(~42% after torch.compile, bench/train_throughput.py), and it is *faster* in fp32 than in bf16 (~68 vs ~80 ms
per layer at the cpu shape, measured). So CPU training runs the same flash forward in the model's dtype and
its backward on fp32 copies of q, k, v, out and dO: +13% training tokens/s, and gradients closer to an fp32
reference than the bf16 backward's (tests/test_attention.py). Anywhere else (CUDA, no grad, dropout)
the plain `F.scaled_dot_product_attention` runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# torch >= 2.5 shares K/V heads inside SDPA (faster than repeating them, measured on this CPU)
_SDPA_GQA = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 5)
_CPU_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_CPU_FLASH_BACKWARD = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)


class _CpuCausalAttention(torch.autograd.Function):
    """q, k, v (B, H, T, D) of one dtype, as many K/V heads as query heads → out (B, H, T, D)."""

    @staticmethod
    def forward(ctx, q, k, v):
        out, lse = _CPU_FLASH(q, k, v, 0.0, True)  # lse (B, H, T) fp32: the softmax normaliser per query
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        f32 = torch.float32
        dq, dk, dv = _CPU_FLASH_BACKWARD(grad_out.to(f32), q.to(f32), k.to(f32), v.to(f32), out.to(f32), lse,
                                         0.0, True)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """q (B, H, T, D), k and v (B, K, T, D) with H a multiple of K (grouped-query) → (B, H, T, D)."""
    H, K = q.shape[1], k.shape[1]
    if (q.device.type == "cpu" and torch.is_grad_enabled() and dropout_p == 0.0 and _CPU_FLASH_BACKWARD is not None
            and (q.requires_grad or k.requires_grad or v.requires_grad)):
        if K != H:
            k, v = k.repeat_interleave(H // K, dim=1), v.repeat_interleave(H // K, dim=1)  # (B, H, T, D)
        dtype = v.dtype  # under autocast the rotated q, k may be fp32 while v is bf16: SDPA's autocast casts
        return _CpuCausalAttention.apply(q.to(dtype), k.to(dtype), v)
    if K == H:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
    if _SDPA_GQA:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p, enable_gqa=True)
    k, v = k.repeat_interleave(H // K, dim=1), v.repeat_interleave(H // K, dim=1)  # (B, H, T, D)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inference only: q (B, H, T, D) against k, v (B, K, S, D) where mask (B, 1, T, S) is True → (B, H, T, D).
    Used to continue cached prefixes (keys of earlier tokens first), so the causal rule is in the mask."""
    H, K = q.shape[1], k.shape[1]
    if K != H:
        if _SDPA_GQA:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        k, v = k.repeat_interleave(H // K, dim=1), v.repeat_interleave(H // K, dim=1)  # (B, H, S, D)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
