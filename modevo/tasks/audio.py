"""Released benchmark audio → the 16 kHz mono int16 samples every unit tokenizer reads.

A released file is read with soundfile, mixed down to mono (the mean of its channels) and resampled to
16 kHz with the units stage's own resampler, so a released item reaches the tokenizer exactly as our own
renderings do. What had to be changed is said (`notes`), never hidden; what cannot be read is an
`AudioProblem` whose `reason` becomes the item's counted skip reason.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from modevo.errors import InputError

SAMPLE_RATE = 16_000


class AudioProblem(InputError):
    """A released audio file that cannot be used; `reason` is the counted skip reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def read_audio(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """(n,) int16 samples at 16 kHz, and what was changed to get there (e.g. 'resampled 22050→16000 Hz')."""
    import soundfile as sf
    import torch

    from modevo.units.resample import resample

    file = Path(path)
    if not file.is_file():
        raise AudioProblem("audio_missing", f"audio file not found: {file}")
    try:
        data, rate = sf.read(str(file), dtype="float32", always_2d=True)  # (n, channels)
    except Exception as e:  # noqa: BLE001 (libsndfile's errors are one class per backend: one reason for all)
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise AudioProblem("audio_unreadable", f"audio file {file} cannot be read: {first}") from None
    if data.shape[0] == 0:
        raise AudioProblem("audio_empty", f"audio file {file} holds no samples")
    notes = []
    if data.shape[1] > 1:
        notes.append(f"mixed down {data.shape[1]} channels")
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        notes.append(f"resampled {rate}→{SAMPLE_RATE} Hz")
        mono = resample(torch.from_numpy(np.ascontiguousarray(mono)), int(rate), SAMPLE_RATE).numpy()
    pcm = np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)
    return pcm, notes


def fingerprint(folder: str | Path, names) -> str:
    """A digest of the named files' sizes and modification times (missing ones included as missing): a
    rewritten file changes it, so cached renderings of released audio are redone, without reading every
    file on each run."""
    h = hashlib.sha256()
    root = Path(folder)
    for name in sorted(set(names)):
        try:
            st = (root / name).stat()
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{name}\0missing\n".encode())
    return h.hexdigest()[:16]
