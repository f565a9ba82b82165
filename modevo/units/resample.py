"""Deterministic band-limited resampling (16 kHz → EnCodec's 24 kHz) without torchaudio.

Windowed-sinc polyphase filter, the construction of torchaudio's `sinc_interp_hann` resampler: for a
rational ratio new/orig (after dividing by their gcd), each of the `new` output phases is a dot product
of the input with its own sinc kernel (Hann-windowed, cut off at rolloff · the lower Nyquist). Kernels are
built in fp64 and applied as one strided conv1d in fp32, so the output depends only on the input.
16 zero crossings (torchaudio uses 6): a 7 kHz tone comes through within 1% instead of 28%.
"""

from __future__ import annotations

import functools
import math

import torch


@functools.lru_cache(maxsize=8)
def _kernels(orig: int, new: int, zero_crossings: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """((new, 1, L) fp32 kernels, half width in input samples) for ratio new/orig (coprime)."""
    base = min(orig, new) * rolloff  # cut-off, in units where the input rate is `orig`
    width = math.ceil(zero_crossings * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None] / orig  # (1, L)
    t = (-torch.arange(new, dtype=torch.float64)[:, None] / new + idx) * base  # (new, L)
    t = t.clamp(-zero_crossings, zero_crossings)
    window = torch.cos(t * math.pi / zero_crossings / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t))
    return (sinc * window * (base / orig)).float().unsqueeze(1), width


def resample(x: torch.Tensor, orig_hz: int, new_hz: int, zero_crossings: int = 16, rolloff: float = 0.99) -> torch.Tensor:
    """(n,) float waveform at orig_hz → (ceil(n · new_hz / orig_hz),) at new_hz."""
    if orig_hz == new_hz:
        return x
    g = math.gcd(orig_hz, new_hz)
    orig, new = orig_hz // g, new_hz // g
    kernels, width = _kernels(orig, new, zero_crossings, rolloff)
    n = x.shape[-1]
    padded = torch.nn.functional.pad(x.float().view(1, 1, n), (width, width + orig))  # (1, 1, n + 2w + orig)
    y = torch.nn.functional.conv1d(padded, kernels, stride=orig)  # (1, new, frames)
    y = y.transpose(1, 2).reshape(-1)  # phases interleaved: (frames · new,)
    return y[: -(-n * new // orig)]
