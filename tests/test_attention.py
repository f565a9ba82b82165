"""The CPU training attention (flash forward, fp32 backward) against PyTorch's SDPA in fp32."""

import pytest
import torch
import torch.nn.functional as F

from modevo.train.attention import causal_attention


def _inputs(dtype, heads=4, kv_heads=2, T=40, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, heads, T, D, generator=g)
    k = torch.randn(2, kv_heads, T, D, generator=g)
    v = torch.randn(2, kv_heads, T, D, generator=g)
    dout = torch.randn(2, heads, T, D, generator=g)
    return [t.to(dtype).requires_grad_() for t in (q, k, v)], dout.to(dtype)


def _reference(q, k, v, dout):
    """fp32 SDPA with the K/V heads repeated: output and input gradients."""
    q, k, v = (t.detach().float().requires_grad_() for t in (q, k, v))
    rep = q.shape[1] // k.shape[1]
    out = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), is_causal=True)
    out.backward(dout.float())
    return out.detach(), [t.grad for t in (q, k, v)]


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_fp32_matches_sdpa(kv_heads):
    (q, k, v), dout = _inputs(torch.float32, kv_heads=kv_heads)
    out = causal_attention(q, k, v)
    out.backward(dout)
    ref_out, ref_grads = _reference(q, k, v, dout)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    for got, want in zip((q.grad, k.grad, v.grad), ref_grads):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_bf16_backward_at_least_as_close_as_sdpa_bf16():
    """The fp32 backward is the point: its bf16 gradients are no further from fp32 than SDPA's own bf16 ones."""
    (q, k, v), dout = _inputs(torch.bfloat16, T=128, D=16, seed=1)
    causal_attention(q, k, v).backward(dout)
    ours = [t.grad.float() for t in (q, k, v)]
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    F.scaled_dot_product_attention(q2, k2, v2, is_causal=True, enable_gqa=True).backward(dout)
    sdpa = [t.grad.float() for t in (q2, k2, v2)]
    _, ref = _reference(q, k, v, dout)
    for o, s, r in zip(ours, sdpa, ref):
        assert (o - r).abs().max() <= (s - r).abs().max() * 1.05 + 1e-3


def test_causal_future_does_not_leak():
    (q, k, v), _ = _inputs(torch.float32)
    out = causal_attention(q, k, v)
    k2, v2 = k.detach().clone(), v.detach().clone()
    k2[:, :, 20:] += 5.0
    v2[:, :, 20:] -= 5.0
    out2 = causal_attention(q, k2.requires_grad_(), v2.requires_grad_())
    torch.testing.assert_close(out[:, :, :20], out2[:, :, :20])
    assert not torch.allclose(out[:, :, 20:], out2[:, :, 20:])


def test_mixed_dtypes_under_autocast():
    """Rotated q, k can be fp32 while v is bf16 under autocast; the result is bf16 like SDPA's."""
    (q, k, v), dout = _inputs(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = causal_attention(q, k, v.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    out.float().backward(dout)
    assert q.grad is not None and q.grad.dtype == torch.float32


def test_no_grad_uses_plain_sdpa_and_agrees():
    (q, k, v), _ = _inputs(torch.float32)
    with torch.no_grad():
        a = causal_attention(q, k, v)
    b = causal_attention(q, k, v)
    torch.testing.assert_close(a, b.detach(), atol=1e-6, rtol=1e-6)
