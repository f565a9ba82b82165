"""`hubert-kmeans`: k-means on one layer of a local HuBERT model (the paper's units: 2048 clusters).

The weights come from a local folder (no downloads here); the tokenizer records the folder and a digest of
its files, and refuses to encode with different weights. HuBERT's conv front end emits
floor((n - 400) / 320) + 1 frames; the audio is zero-padded at the end to 320 T + 80 samples so it emits
exactly T = ceil(n / 320), the project's 50 Hz frame rule (frame i's window starts at sample 320 i, 2.5 ms
later than the log-mel window: well inside a frame).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from modevo.errors import InputError
from modevo.units import kmeans
from modevo.units.base import (FrameKMeans, check_precision, check_weights, model_dtype, pool_params, precision_params,
                               weights_digest)
from modevo.units.features import HOP, WIN, n_frames, to_float
from modevo.units.mel_kmeans import collect_frames, kmeans_params, kmeans_stats

log = logging.getLogger("modevo.units")

DEFAULT_LAYER = 6  # HuBERT-base layer 6: the layer GSLM clustered; layer 9 was HuBERT's own iteration-2 target


def load_hubert(folder: Path):
    """(model, normalise waveform?) from a local transformers HuBERT folder, in eval mode, fp32."""
    from transformers import HubertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # HubertForCTC heads etc. are not used: do not warn about them
    model = HubertModel.from_pretrained(str(folder), local_files_only=True).eval().float()
    # Large/xlarge checkpoints expect zero-mean unit-variance input (their feature extractor's do_normalize);
    # base does not. Follow preprocessor_config.json where shipped, else the front end's norm type.
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        normalize = bool(json.loads(pre.read_text()).get("do_normalize", False))
    else:
        normalize = model.config.feat_extract_norm == "layer"
    return model, normalize


class _Given(torch.nn.Module):
    """Stands in for the conv front end when its output was computed already (features_batch)."""

    def forward(self, input_values):
        return input_values


class HubertKMeans(FrameKMeans):
    name = "hubert-kmeans"
    model_type = "hubert"

    def __init__(self, weights: str | None = None, layer: int = DEFAULT_LAYER, k: int = 500, iterations: int = 40,
                 seed: int = 0, max_train_frames: int = 1_000_000, kmeans_batch: int = 0, precision: str = "fp32",
                 pool: int = 1):
        super().__init__(pool)
        self.kmeans_batch, self.precision = kmeans_batch, check_precision(precision)
        self.folder = check_weights(weights, self.model_type, self.name)
        self.layer, self.k, self.iterations, self.seed, self.max_train_frames = layer, k, iterations, seed, max_train_frames
        self.vocab_size = k
        self.digest = weights_digest(self.folder)
        self.model, self.normalize = load_hubert(self.folder)
        n_layers = self.model.config.num_hidden_layers
        if not 0 <= layer <= n_layers:
            raise InputError(f"hubert-kmeans layer={layer} is out of range: the model in {self.folder} has "
                             f"layers 0 (conv features) to {n_layers}")
        # Blocks above the wanted layer cannot change it: drop them (layer 6 of 12 halves the cost). One block
        # more is kept because stable-layer-norm models (large) normalise only the last hidden state returned.
        self.model.encoder.layers = self.model.encoder.layers[: min(layer + 1, n_layers)]
        self.centroids: torch.Tensor | None = None  # (K, hidden)

    def params(self) -> dict:
        # the folder is where to find the weights, not what they are: the digest goes into the key instead
        return {"weights": str(self.folder), "layer": self.layer, "k": self.k, "iterations": self.iterations,
                "seed": self.seed, "max_train_frames": self.max_train_frames, **kmeans_params(self.kmeans_batch),
                **precision_params(self.precision), **pool_params(self.pool)}

    @classmethod
    def from_params(cls, params: dict) -> "HubertKMeans":
        return cls(**params)

    def extra_manifest(self) -> dict:
        return {"weights_digest": self.digest}

    def _move(self, device: str) -> None:
        self.model.to(device=device, dtype=model_dtype(self.precision, device, self.name))

    def _wave(self, audio: np.ndarray) -> torch.Tensor:
        """(320 T + 80,) the model's input for one utterance, on the model's device and dtype."""
        t = n_frames(len(audio))
        x = to_float(audio)
        if self.normalize:
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)  # as Wav2Vec2FeatureExtractor
        x = torch.nn.functional.pad(x, (0, HOP * t + (WIN - HOP) - len(x)))  # (320 T + 80,)
        return x.to(self.device, model_dtype(self.precision, self.device, self.name))

    @torch.no_grad()
    def features(self, audio: np.ndarray) -> torch.Tensor:
        """(n,) int16 → (T, hidden) fp32 hidden states of self.layer (on the CPU), T = ceil(n / 320)."""
        t = n_frames(len(audio))
        out = self.model(self._wave(audio).unsqueeze(0), output_hidden_states=True)
        return out.hidden_states[self.layer][0, :t].float().cpu()

    @torch.no_grad()
    def features_batch(self, audios) -> tuple[torch.Tensor, list[int]]:
        """The conv front end runs on each utterance alone (base models group-normalise over time, so
        padding would change every frame); its frames are then padded into one batch and the transformer
        runs with an attention mask: padded frames are zeroed before the positional conv (as the zero
        padding of a lone utterance) and never attended to. Real frames agree with features() up to
        floating-point rounding (attention with and without a mask takes other kernels): tests bound it
        and check the units are equal."""
        ts = [n_frames(len(a)) for a in audios]
        convs = [self.model.feature_extractor(self._wave(a)[None])[0] for a in audios]  # (C, T_b) each
        t_max = max(ts)
        feats = convs[0].new_zeros(len(audios), convs[0].shape[0], t_max)  # (B, C, T)
        for b, c in enumerate(convs):
            feats[b, :, :c.shape[1]] = c
        # sample-level mask: only its row sums are read (→ T_b frames each by the conv length rule)
        samples = HOP * t_max + (WIN - HOP)
        mask = (torch.arange(samples, device=self.device)[None]
                < torch.tensor([HOP * t + (WIN - HOP) for t in ts], device=self.device)[:, None]).long()
        front, self.model.feature_extractor = self.model.feature_extractor, _Given()
        try:
            out = self.model(feats, attention_mask=mask, output_hidden_states=True)
        finally:
            self.model.feature_extractor = front
        return out.hidden_states[self.layer].float(), ts

    def fit(self, utterances) -> "HubertKMeans":
        feats, _ = collect_frames(utterances, self.max_train_frames, self.features)  # budget: 50 Hz frames
        x = torch.cat([self.pooled(f) for f in feats])  # (N / pool, hidden)
        km = kmeans.run(x, self.k, self.iterations, self.seed, device=self.device, batch_size=self.kmeans_batch)
        self.centroids = km.centroids
        self.stats = {"train_frames": len(x), **kmeans_stats(km)}
        return self

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids.numpy()}

    def _restore(self, arrays: dict[str, np.ndarray], manifest: dict) -> None:
        if manifest.get("weights_digest") != self.digest:
            raise InputError(f"the HuBERT weights in {self.folder} differ from those this tokenizer was trained "
                             "with (digest mismatch): retrain it or point weights= at the original folder")
        self.centroids = torch.from_numpy(arrays["centroids"])
