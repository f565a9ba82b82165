"""The frame rule, with the frame rate as a value: how a time becomes a frame at any rate.

Every frame-level thing in modevo (a rendering's per-phone frames, phone-repeat views, speech units, the
units' phone labels, the plan's length estimates) counts frames with THIS rule, so that they agree on every
tie at every rate:

    frame i at rate R covers [i, i + 1) * 1000 / R ms
    a boundary at t ms falls on frame boundary floor(t / frame_ms + 0.5)   (the nearest one, halves up)
    a phone from s to e ms owns frames frame_index(s) <= i < frame_index(e): the frames whose centre it holds

50 Hz (20 ms) is the default, the paper's rate. A lower rate R must divide 50 Hz into a whole number of base
frames (25, 12.5, 10 Hz...): speech units at R pool that many 50 Hz feature frames, so a phone-repeat view
and a speech view at one rate stay on one grid.
"""

from __future__ import annotations

import re

import numpy as np

from modevo.errors import ConfigError

BASE_RATE_HZ = 50.0  # the rate every feature extractor here emits, and the default rate of every frame view
DEFAULT_RATE_HZ = BASE_RATE_HZ


def frame_ms(rate_hz: float = DEFAULT_RATE_HZ) -> float:
    return 1000.0 / rate_hz


def frame_index(ms, frame_ms: float = 1000.0 / DEFAULT_RATE_HZ) -> np.ndarray:
    """The frame boundary nearest to a time, halves rounded up: THE rule every stage uses (a rendering's
    frames, the units' frame labels, the speech views' phone span), so they agree on every tie."""
    return np.floor(np.asarray(ms, dtype=np.float64) / frame_ms + 0.5).astype(np.int64)


def phone_frames(start_ms, durations_ms, rate_hz: float = DEFAULT_RATE_HZ) -> np.ndarray:
    """Frames per phone at `rate_hz` from its stored (float32) start and duration: the frames sum to the
    rounded span and no rounding error accumulates; a short phone can get 0 frames. Times are read as float32
    first, as a rendering stores them, so every reader recomputes the same frames."""
    starts = np.asarray(start_ms, dtype=np.float32).astype(np.float64)
    durations = np.asarray(durations_ms, dtype=np.float32).astype(np.float64)
    step = frame_ms(rate_hz)
    return frame_index(starts + durations, step) - frame_index(starts, step)


def pool_factor(rate_hz: float) -> int:
    """How many 50 Hz frames make one frame at rate_hz; a rate that is not 50 Hz / n is one clear error."""
    n = BASE_RATE_HZ / rate_hz if rate_hz > 0 else 0.0
    if rate_hz <= 0 or rate_hz > BASE_RATE_HZ or abs(n - round(n)) > 1e-9:
        raise ConfigError(f"frame rate {rate_hz:g} Hz is not 50 Hz divided by a whole number "
                          "(e.g. 50, 25, 12.5 or 10 Hz)")
    return int(round(n))


_RATE = re.compile(r"^(\d+(?:\.\d+)?)hz$")


def parse_rate(text: str) -> float:
    """'25hz' → 25.0, checked by pool_factor; anything else is one error naming the form."""
    m = _RATE.match(text.strip().lower())
    if not m:
        raise ConfigError(f"frame rate '{text}' is not of the form <number>hz (e.g. 25hz, 12.5hz)")
    rate = float(m.group(1))
    pool_factor(rate)
    return rate


def rate_suffix(rate_hz: float) -> str:
    """The view-name suffix of a rate: '' at the default, ':25hz' otherwise (so 50 Hz names stay as they were)."""
    return "" if rate_hz == DEFAULT_RATE_HZ else f":{rate_hz:g}hz"
