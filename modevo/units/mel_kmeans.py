"""`mel-kmeans`: k-means on 50 Hz log-mel frames (optionally mean/variance normalised, optionally pooled to
50 Hz / n: FrameKMeans). The offline default.

Why the default K = 500 (the paper: 2048 HuBERT clusters on 960 h of real speech). Our cpu corpus is
~30 h of synthetic speech from ~40 phones (+ silence) and at most three training voices. 500 units is
~12 per phone: enough to keep what factor C is about (the same phone split by voice, pitch, rate and
position in the phone, which `varied` has and `fixed` lacks), while each unit still gets ~2000 of the
1 M training frames (stable centroids) and occurs ~10^4 times in the few million tokens a CPU-scale LM
sees (so its embedding is learnt). 500 is also HuBERT's second-iteration target count and within the
range (50-2000) GSLM compared. The paper's 2048 is one `k=2048` away for the paper scale.
"""

from __future__ import annotations

import numpy as np
import torch

from modevo.units import kmeans
from modevo.units.base import FrameKMeans, pool_params
from modevo.units.features import N_MELS, log_mel, log_mel_batch, norm_stats

DEFAULT_K = 500


def _frames(utterances, max_frames: int, feature):
    """(features (T_i, D), utterance) per utterance, the last one clipped so the total is max_frames at most."""
    total = 0
    for u in utterances:
        if total >= max_frames:
            break
        f = feature(u.audio)[:max_frames - total]  # (T_i, D)
        yield f, u
        total += len(f)
    if total == 0:
        raise ValueError("no training frames: the utterance list is empty")


def collect_frames(utterances, max_frames: int, feature) -> tuple[list[torch.Tensor], list[np.ndarray | None]]:
    """feature(audio) per utterance until max_frames are gathered: ([(T_i, D)], [labels_i or None])."""
    feats, labels = [], []
    for f, u in _frames(utterances, max_frames, feature):
        feats.append(f)
        labels.append(None if u.labels is None else np.asarray(u.labels)[:len(f)])
    return feats, labels


def stack_frames(utterances, max_frames: int, feature, dim: int, lengths: list[int] | None = None) -> torch.Tensor:
    """The same frames written into one (N, dim) fp32 buffer: one copy of the training frames in memory
    (a list then torch.cat would hold two). The buffer is allocated at max_frames rows but pages never
    written are never resident. `lengths`, if given, gets each utterance's row count (pooling must not
    average across an utterance boundary)."""
    buf = torch.empty(max_frames, dim)
    total = 0
    for f, _ in _frames(utterances, max_frames, feature):
        buf[total:total + len(f)] = f
        total += len(f)
        if lengths is not None:
            lengths.append(len(f))
    return buf[:total]


def kmeans_stats(km: kmeans.KMeansResult) -> dict:
    """How k-means went, for the tokenizer's manifest."""
    out = {"kmeans_iterations": km.iterations, "kmeans_converged": km.converged,
           "kmeans_mean_sq_distance": km.mean_sq_distance}
    if km.history and len(km.history) > 1 and not km.converged:  # mini-batch: the inertia of every epoch
        out["kmeans_inertia_per_epoch"] = km.history
    return out


def kmeans_params(kmeans_batch: int) -> dict:
    """The mini-batch size among a tokenizer's params only when set: full-batch Lloyd (0) keeps the keys of
    tokenizers trained before the option existed."""
    return {"kmeans_batch": kmeans_batch} if kmeans_batch else {}


class MelKMeans(FrameKMeans):
    name = "mel-kmeans"

    def __init__(self, k: int = DEFAULT_K, iterations: int = 40, seed: int = 0, normalize: bool = True,
                 max_train_frames: int = 1_000_000, kmeans_batch: int = 0, pool: int = 1):
        super().__init__(pool)
        self.k, self.iterations, self.seed, self.kmeans_batch = k, iterations, seed, kmeans_batch
        self.normalize, self.max_train_frames = normalize, max_train_frames
        self.vocab_size = k
        self.mean = torch.zeros(N_MELS)  # (80,)
        self.std = torch.ones(N_MELS)  # (80,)
        self.centroids: torch.Tensor | None = None  # (K, 80)

    def params(self) -> dict:
        return {"k": self.k, "iterations": self.iterations, "seed": self.seed, "normalize": self.normalize,
                "max_train_frames": self.max_train_frames, **kmeans_params(self.kmeans_batch),
                **pool_params(self.pool)}

    @classmethod
    def from_params(cls, params: dict) -> "MelKMeans":
        return cls(**params)

    def features(self, audio: np.ndarray) -> torch.Tensor:
        return (log_mel(audio) - self.mean) / self.std  # (T, 80)

    def features_batch(self, audios) -> tuple[torch.Tensor, list[int]]:
        mel, ts = log_mel_batch(audios, self.device)  # (B, T, 80): rows < T_b are log_mel(audios[b])
        return (mel - self.mean.to(self.device)) / self.std.to(self.device), ts

    def fit(self, utterances) -> "MelKMeans":
        # max_train_frames counts 50 Hz frames at every pool, so one budget draws the same audio at any rate
        lengths: list[int] = []
        x = stack_frames(utterances, self.max_train_frames, log_mel, N_MELS, lengths)  # (N, 80)
        if self.normalize:  # statistics of the 50 Hz frames: features() normalises those, then pools
            self.mean, self.std = norm_stats(x)
            x.sub_(self.mean).div_(self.std)  # in place: no second copy of a million frames
        if self.pool > 1:  # within each utterance, as encode() pools (the pooled copy is 1 / pool the size)
            x = torch.cat([self.pooled(f) for f in x.split(lengths)])  # (N / pool, 80)
        km = kmeans.run(x, self.k, self.iterations, self.seed, device=self.device, batch_size=self.kmeans_batch)
        self.centroids = km.centroids
        self.stats = {"train_frames": len(x), **kmeans_stats(km)}
        return self

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids.numpy(), "mel_mean": self.mean.numpy(), "mel_std": self.std.numpy()}

    def _restore(self, arrays: dict[str, np.ndarray], manifest: dict) -> None:
        self.centroids = torch.from_numpy(arrays["centroids"])
        self.mean, self.std = torch.from_numpy(arrays["mel_mean"]), torch.from_numpy(arrays["mel_std"])
