"""Log-mel features at exactly 50 Hz and frame-level phone labels from a rendering's exact alignment.

Frame rule (every 50 Hz tokenizer follows it, so units, labels and phone-repeat frames line up):
    n_frames(n_samples) = ceil(n_samples / 320)
Frame i stands for samples [320 i, 320 i + 320), i.e. [20 i, 20 i + 20) ms; the last frame may be partial
(it lies in the trailing silence). Its analysis window (25 ms = 400 samples, Hann) is centred on the
frame's centre, sample 320 i + 160, with zeros outside the audio. Ceil rather than floor: a phone that
ends at the very last sample still owns its last frame (render.py counts frame_index(end) of them).

A phone starting at s ms and ending at e ms owns frames frame_index(s) <= i < frame_index(e) (halves up), the rule by
which render.py fills each rendering row's `frames` column: a frame belongs to the phone that holds its
centre. Frames no phone owns (leading and trailing silence, word pauses) are labelled "SIL".
torchaudio cannot be imported beside the CPU torch here, so the filterbank is built below.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from modevo.frames import frame_index

SAMPLE_RATE = 16000
HOP = 320  # samples: 20 ms, 50 Hz
WIN = 400  # samples: 25 ms
N_FFT = 512  # the 400-sample window zero-padded to the next power of two: 257 bins of 31.25 Hz
N_MELS = 80
FRAME_MS = 1000.0 * HOP / SAMPLE_RATE  # 20.0
SILENCE = "SIL"
LOG_FLOOR = 1e-6  # power floor before the log: exact digital silence (MBROLA pauses) maps to log(1e-6)


def n_frames(n_samples: int) -> int:
    """Number of 50 Hz frames for an utterance of n_samples at 16 kHz: ceil(n / 320)."""
    return -(-int(n_samples) // HOP)


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)  # HTK mel scale


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=4)
def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangular filters, equally spaced on the HTK mel scale, peak 1 (no area
    normalisation), evaluated at the FFT bin frequencies. Same construction as torchaudio's
    `melscale_fbanks(norm=None, mel_scale="htk")`."""
    f_max = sample_rate / 2 if f_max is None else f_max
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)  # (F,)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))  # (M + 2,)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]  # (M,) each
    up = (bins[:, None] - lo[None]) / (mid - lo)[None]  # (F, M)
    down = (hi[None] - bins[:, None]) / (hi - mid)[None]
    fb = np.clip(np.minimum(up, down), 0.0, None)
    if (fb.max(axis=0) == 0).any():
        raise ValueError(f"{n_mels} mel filters are too narrow for a {n_fft}-point FFT: some are empty")
    return torch.from_numpy(fb.astype(np.float32))


@functools.lru_cache(maxsize=1)
def _window() -> torch.Tensor:
    return torch.hann_window(WIN, periodic=True, dtype=torch.float32)  # (400,)


def to_float(audio: np.ndarray) -> torch.Tensor:
    """int16 samples → float32 in [-1, 1)."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n,), got {audio.shape}")
    if np.issubdtype(audio.dtype, np.integer):
        return torch.from_numpy(audio.astype(np.float32) / 32768.0)
    return torch.from_numpy(audio.astype(np.float32))


def log_mel(audio: np.ndarray) -> torch.Tensor:
    """(n,) int16 at 16 kHz → (T, 80) float32 natural-log mel power, T = n_frames(n)."""
    x = to_float(audio)  # (n,)
    t = n_frames(len(x))
    if t == 0:
        return torch.zeros(0, N_MELS)
    left = WIN // 2 - HOP // 2  # 40 samples: the window of frame 0 starts 40 samples before the audio
    right = HOP * (t - 1) + WIN - left - len(x)  # so that the last window fits
    x = torch.nn.functional.pad(x, (left, max(right, 0)))
    frames = x.unfold(0, WIN, HOP)[:t]  # (T, 400)
    spec = torch.fft.rfft(frames * _window(), n=N_FFT)  # (T, 257)
    power = spec.real.square() + spec.imag.square()
    mel = rows_matmul(power, mel_filterbank())  # (T, 80)
    return torch.log(mel.clamp_min(LOG_FLOOR))


MIN_ROWS = 16  # BLAS multiplies 1-3 rows by another kernel (other rounding): never give it fewer than this


def rows_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., K) @ (K, N) with at least MIN_ROWS rows in the product (zero rows added, then dropped), so each
    row's result does not depend on how many rows came with it: a lone utterance and a batch agree bit for
    bit."""
    flat = a.reshape(-1, a.shape[-1])
    n = len(flat)
    if n < MIN_ROWS:
        flat = torch.cat([flat, flat.new_zeros(MIN_ROWS - n, flat.shape[1])])
    return (flat @ b)[:n].reshape(*a.shape[:-1], b.shape[1])


def log_mel_batch(audios: Sequence[np.ndarray], device="cpu") -> tuple[torch.Tensor, list[int]]:
    """Several utterances at once → ((B, T_max, 80) float32 log-mel on `device`, [T_i]). Each utterance is
    zero-padded at the end to the longest; frame i < T_i of utterance b reads only samples of its own window,
    which lie inside [0, 320 T_i + 80): the zeros that stand in for samples past its end are the zeros
    log_mel() pads with, so rows < T_i are those of log_mel(audios[b]) (bit-equal on the CPU: tested).
    Rows >= T_i are padding, to be dropped by the caller."""
    xs = [to_float(a) for a in audios]
    ts = [n_frames(len(x)) for x in xs]
    t_max = max(ts, default=0)
    if t_max == 0:
        return torch.zeros(len(xs), 0, N_MELS, device=device), ts
    left = WIN // 2 - HOP // 2
    total = HOP * (t_max - 1) + WIN  # left padding + audio + right padding, the same for every row
    x = torch.zeros(len(xs), total)
    for b, xb in enumerate(xs):
        x[b, left:left + len(xb)] = xb[:total - left]
    x = x.to(device)
    frames = x.unfold(1, WIN, HOP)[:, :t_max]  # (B, T, 400)
    spec = torch.fft.rfft(frames * _window().to(device), n=N_FFT)  # (B, T, 257)
    power = spec.real.square() + spec.imag.square()
    mel = rows_matmul(power, mel_filterbank().to(device))  # (B, T, 80)
    return torch.log(mel.clamp_min(LOG_FLOOR)), ts


def flat_phones(phones: Sequence) -> list[str]:
    """A corpus row's phones (a list of words, each a list of phones) or an already flat list → flat list."""
    out: list[str] = []
    for p in phones:
        if isinstance(p, str):
            out.append(p)
        else:
            out.extend(p)
    return out


def frame_labels(row: dict, n_frames: int, phones: Sequence | None = None, frame_ms: float = FRAME_MS) -> np.ndarray:
    """(n_frames,) phone label per frame of one rendered utterance ("SIL" where no phone is).

    `row` is a rendering row (start_ms, durations_ms per phone); the phone names come from `phones` or, if
    None, from row["phones"] (the corpus row's nested list). frame_ms = 20 gives the 50 Hz labels; other
    frame rates (a pooled k-means tokenizer's 1000 / 25 ms, EnCodec's 1000 / 75 ms) use the same centre rule.
    """
    names = flat_phones(row["phones"] if phones is None else phones)
    starts = np.asarray(row["start_ms"], dtype=np.float64)
    ends = starts + np.asarray(row["durations_ms"], dtype=np.float64)
    if not (len(names) == len(starts) == len(ends)):
        raise ValueError(f"utterance {row.get('id', '?')}: {len(names)} phones but {len(starts)} start times")
    labels = np.full(n_frames, SILENCE, dtype=object)
    first, last = frame_index(starts, frame_ms), frame_index(ends, frame_ms)
    for name, a, b in zip(names, first, last):
        labels[max(a, 0):min(b, n_frames)] = name  # phones never overlap, so neither do their frames
    return labels.astype(str)



NORM_CHUNK = 65536


def norm_stats(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation of feats (N, D), summed in fp64 by fixed chunks of rows (an
    fp64 copy of a million frames would be 640 MB); std floored at 1e-5."""
    total = torch.zeros(feats.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(feats.shape[1], dtype=torch.float64)
    for a in range(0, len(feats), NORM_CHUNK):
        f = feats[a:a + NORM_CHUNK].double()
        total += f.sum(0)
        total_sq += f.square().sum(0)
    mean = total / len(feats)
    std = (total_sq / len(feats) - mean.square()).clamp_min(0).sqrt().clamp_min(1e-5)
    return mean.float(), std.float()  # (D,), (D,)
