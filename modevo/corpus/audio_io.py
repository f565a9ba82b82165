"""Recorded audio → the 16 kHz mono int16 samples every later stage reads (the synthetic renderings' format).

A file (or a lhotse recording) is read at its own rate, mixed down to mono (the mean of its channels) and
resampled to 16 kHz with the corpus stage's deterministic resampler (the one the espeak renderings use), so a
recording reaches the unit tokenizers exactly as a rendering does. What had to be changed is returned as
notes (counted by the corpus); what cannot be read is an `AudioProblem` whose `reason` is the counted skip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modevo.corpus.synth import SAMPLE_RATE, _resample
from modevo.errors import InputError


class AudioProblem(InputError):
    """Recorded audio that cannot be used; `reason` is the counted skip reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def to_pcm16k(data: np.ndarray, rate: int) -> tuple[np.ndarray, list[str]]:
    """(n, channels) or (n,) float samples in [-1, 1] at `rate` → (int16 mono 16 kHz, notes)."""
    data = np.asarray(data, dtype=np.float64)
    notes = []
    if data.ndim == 2:
        if data.shape[1] > 1:
            notes.append(f"mixed down {data.shape[1]} channels")
        data = data.mean(axis=1)
    pcm = np.clip(np.round(data * 32768.0), -32768, 32767).astype(np.int16)
    if int(rate) != SAMPLE_RATE:
        notes.append(f"resampled {int(rate)}→{SAMPLE_RATE} Hz")
        pcm = _resample(pcm, int(rate))
    return pcm, notes


def read_file(path: str | Path, offset_s: float = 0.0, duration_s: float | None = None) -> tuple[np.ndarray, list[str]]:
    """A segment of an audio file (whole by default) as 16 kHz mono int16, and what was changed."""
    import soundfile as sf

    file = Path(path)
    if not file.is_file():
        raise AudioProblem("audio_missing", f"audio file not found: {file}")
    try:
        with sf.SoundFile(str(file)) as f:
            rate = f.samplerate
            start = int(round(offset_s * rate))
            if start:
                f.seek(start)
            frames = -1 if duration_s is None else int(round(duration_s * rate))
            data = f.read(frames, dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 (libsndfile's errors: one reason for all)
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise AudioProblem("audio_unreadable", f"audio file {file} cannot be read: {first}") from None
    if data.shape[0] == 0:
        raise AudioProblem("audio_empty", f"audio file {file} holds no samples")
    return to_pcm16k(data, rate)


def read_lhotse(recording, offset_s: float, duration_s: float) -> tuple[np.ndarray, list[str]]:
    """A segment of a lhotse Recording (any of its source types) as 16 kHz mono int16."""
    try:
        data = recording.load_audio(offset=offset_s, duration=duration_s)  # (channels, n) float32
    except Exception as e:  # noqa: BLE001 (lhotse raises many types: missing file, decoder, bad offset)
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        missing = isinstance(e, (FileNotFoundError,)) or "No such file" in first or "not found" in first.lower()
        raise AudioProblem("audio_missing" if missing else "audio_unreadable",
                           f"recording {recording.id} cannot be read: {first}") from None
    data = np.asarray(data)
    if data.size == 0:
        raise AudioProblem("audio_empty", f"recording {recording.id} holds no samples")
    return to_pcm16k(data.T, recording.sampling_rate)
