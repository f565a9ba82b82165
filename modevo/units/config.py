"""The units stage's config: which speech tokenizer, its size and training budget, where artefacts go."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modevo.config import require

TokenizerName = Literal["mel-kmeans", "phonetic-kmeans", "hubert-kmeans", "encodec"]


@dataclass
class FrameClassifierConfig:
    """phonetic-kmeans' frame classifier: conv layers over log-mel, trained to predict each frame's phone."""

    channels: int = 256
    layers: int = 3  # receptive field 1 + layers · (kernel - 1) frames: 13 frames = 260 ms by default
    kernel: int = 5
    epochs: int = 3
    lr: float = 2e-3
    batch_windows: int = 32
    window_frames: int = 256  # frames per training window (5.12 s)
    dtype: Literal["bfloat16", "float32"] = "bfloat16"  # training only; features for k-means are fp32

    def __post_init__(self):
        require(self.channels > 0 and self.layers > 0, "classifier channels and layers must be positive")
        require(self.kernel > 0 and self.kernel % 2 == 1, "classifier kernel must be a positive odd number")
        require(self.epochs > 0 and self.lr > 0, "classifier epochs and lr must be positive")
        require(self.batch_windows > 0 and self.window_frames > 0, "batch_windows and window_frames must be positive")


@dataclass
class UnitsConfig:
    tokenizer: TokenizerName = "mel-kmeans"
    k: int = 500  # clusters (k-means tokenizers); why 500 at the cpu scale: see mel_kmeans.py
    iterations: int = 40  # at most this many Lloyd iterations (stops when no assignment changes)
    max_train_frames: int = 1_000_000  # 50 Hz frames from the train split at any unit rate (1 M ≈ 5.6 h of audio)
    seed: int = 0
    normalize: bool = True  # mel-kmeans: per-dimension mean/variance normalisation before k-means
    layer: int = 6  # hubert-kmeans: 0 = conv features, i = output of transformer block i
    weights: str | None = None  # hubert-kmeans / encodec: local transformers folder (save_pretrained layout)
    codebook: int = 0  # encodec: which residual codebook (0 = the first, coarsest)
    classifier: FrameClassifierConfig = field(default_factory=FrameClassifierConfig)
    # The renderings to encode. Their codebook is shared, trained on the union of their train-split
    # utterances, so fixed and varied speech use the same units; per_rendering trains one per rendering.
    renderings: list[str] = field(default_factory=lambda: ["fixed", "varied"])
    per_rendering: bool = False
    tokenizers_dir: str = "tokenizers"  # relative to the working directory; MODEVO_TOKENIZERS overrides it
    # Where and how encoding (and k-means) runs; none of these is in a cache key. Units do not depend on
    # batch_size or num_workers (tested: batched == one by one); a CUDA device may round differently.
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (cuda when present)
    batch_size: int = 16  # utterances per batched forward (length-sorted, padded, padding masked)
    num_workers: int = 1  # encoding processes over a rendering's shards (CPU; each takes its share of threads)
    # hubert-kmeans / encodec on CUDA only: fp16 or bf16 weights and activations (other units than fp32,
    # so part of the tokenizer's settings and content hash); refused on the CPU
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    # k-means: 0 = full-batch Lloyd (`iterations` passes); B > 0 = mini-batch k-means over B-frame batches
    # (`iterations` epochs), on `device`: the option for K = 2048 over millions of frames
    kmeans_batch: int = 0

    def __post_init__(self):
        require(self.k > 1, "k must be at least 2")
        require(self.iterations > 0, "iterations must be positive")
        require(self.max_train_frames > 0, "max_train_frames must be positive")
        require(self.layer >= 0, "layer must be >= 0")
        require(self.codebook >= 0, "codebook must be >= 0")
        require(len(self.renderings) > 0, "renderings must name at least one rendering")
        require(self.batch_size > 0 and self.num_workers > 0, "batch_size and num_workers must be positive")
        require(self.kmeans_batch >= 0, "kmeans_batch must be >= 0 (0: full-batch Lloyd)")
        require(self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:"),
                "device must be cpu, cuda, cuda:N or auto")
        # a missing `weights` is reported when the tokenizer is made (MissingToolError, like a bad folder)


# Fields that change where or how the stage runs, not what a tokenizer learns: left out of its cache key.
RUNTIME_ONLY = ("renderings", "per_rendering", "tokenizers_dir", "device", "batch_size", "num_workers")
