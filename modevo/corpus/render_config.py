"""Named speech renderings: each a block of knobs from which per-utterance parameters are drawn.

`fixed` is one voice at neutral rate, pitch and range; `varied` draws voice, rate, pitch and pitch range per
utterance; the knob-alone renderings (speaker, rate, pitch, range) vary one knob and hold the rest at
`fixed`'s values, so a sweep can decompose factor C. A draw is a pure function of (seed, utterance id,
rendering name). One voice (`held_out_voice`) never appears in a training rendering: it is reserved for
evaluation renderings (role: eval), an unseen speaker.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Literal

from modevo.config import require, require_name


@dataclass
class RenderingConfig:
    voices: list[str] = field(default_factory=lambda: ["us1"])
    rate_wpm: tuple[int, int] = (160, 160)  # espeak-ng -s, drawn uniformly (integer)
    pitch: tuple[int, int] = (50, 50)  # espeak-ng -p, 0-99
    pitch_range: tuple[float, float] = (1.0, 1.0)  # scale of pitch excursions around the utterance mean
    role: Literal["train", "eval"] = "train"  # eval renderings may use the held-out voice; train ones never
    enabled: bool = True  # built by `modevo corpus build`; a declared but disabled rendering costs nothing

    def __post_init__(self):
        require(len(self.voices) > 0, "a rendering needs at least one voice")
        for name, (lo, hi) in (("rate_wpm", self.rate_wpm), ("pitch", self.pitch), ("pitch_range", self.pitch_range)):
            require(lo <= hi, f"{name} range is empty: [{lo}, {hi}]")
        require(80 <= self.rate_wpm[0] and self.rate_wpm[1] <= 450, "rate_wpm must lie in [80, 450]")
        require(0 <= self.pitch[0] and self.pitch[1] <= 99, "pitch must lie in [0, 99]")
        require(0 < self.pitch_range[0] and self.pitch_range[1] <= 3, "pitch_range must lie in (0, 3]")


def default_renderings() -> dict[str, RenderingConfig]:
    fixed = dict(voices=["us1"], rate_wpm=(160, 160), pitch=(50, 50), pitch_range=(1.0, 1.0))
    speakers = ["us1", "us2", "en1"]
    return {
        "fixed": RenderingConfig(**fixed),
        "varied": RenderingConfig(voices=speakers, rate_wpm=(120, 210), pitch=(30, 70), pitch_range=(0.5, 1.6)),
        "speaker": RenderingConfig(**{**fixed, "voices": speakers}, enabled=False),
        "rate": RenderingConfig(**{**fixed, "rate_wpm": (120, 210)}, enabled=False),
        "pitch": RenderingConfig(**{**fixed, "pitch": (30, 70)}, enabled=False),
        "range": RenderingConfig(**{**fixed, "pitch_range": (0.5, 1.6)}, enabled=False),
        "heldout": RenderingConfig(voices=["us3"], role="eval", enabled=False),
        # the corpus source's own recordings (speech.recorded): audio and durations come from the recordings
        # and their alignment, never from these knobs; task items, which have no recordings, are synthesised
        # with them (varied's: many voices, as the paper's items were TTS)
        "real": RenderingConfig(voices=speakers, rate_wpm=(120, 210), pitch=(30, 70), pitch_range=(0.5, 1.6),
                                enabled=False),
    }


@dataclass
class SpeechConfig:
    renderings: dict[str, RenderingConfig] = field(default_factory=default_renderings)
    held_out_voice: str = "us3"
    # The rendering that is the corpus source's own recordings (a real speech source, with an alignment),
    # not synthesised: `phone-repeat@real` and `speech@real/<tokenizer>` are the paper's own conditions.
    recorded: str = "real"
    seed: int = 0
    keep_audio: bool = True  # keep rendered audio as FLAC (evictable; regenerated on demand when missing)
    # Where MBROLA is absent, render with espeak-ng's own voices instead of failing; runs are tagged.
    allow_fallback: bool = True

    def __post_init__(self):
        require_name(self.recorded, "recorded")  # the recorded rendering's folder
        for name, r in self.renderings.items():
            require(name.replace("-", "").replace("_", "").isalnum(), f"rendering name '{name}' must be alphanumeric")
            if r.role == "train":
                require(self.held_out_voice not in r.voices,
                        f"rendering '{name}' uses the held-out voice '{self.held_out_voice}'; "
                        "only role: eval renderings may")


def _uniform(rng: random.Random, lo: float, hi: float) -> float:
    return lo if lo == hi else rng.uniform(lo, hi)


def draw(name: str, cfg: RenderingConfig, utterance_id: str, seed: int) -> dict:
    """Per-utterance knobs, reproducible from (seed, utterance id, rendering name) on any machine."""
    digest = hashlib.sha256(f"{seed}\x00{name}\x00{utterance_id}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    return {
        "voice": cfg.voices[rng.randrange(len(cfg.voices))],
        "rate_wpm": int(round(_uniform(rng, *cfg.rate_wpm))),
        "pitch": int(round(_uniform(rng, *cfg.pitch))),
        "pitch_range": round(_uniform(rng, *cfg.pitch_range), 3),
    }
