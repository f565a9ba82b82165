"""`encodec`: one codebook of a local EnCodec model's residual quantiser (75 Hz at 24 kHz), nothing learnt.

The first codebook (the default) carries the coarsest, most content-bearing code; later ones refine the
residual. Audio is resampled 16 → 24 kHz by a fixed sinc filter (resample.py). EnCodec pads each conv so
that it emits ceil(n24 / hop) frames, hop = prod(upsampling_ratios) = 320 at 24 kHz, i.e. 75 Hz.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from modevo.errors import InputError
from modevo.units.base import SpeechTokenizer, check_precision, check_weights, model_dtype, precision_params, weights_digest
from modevo.units.features import SAMPLE_RATE, to_float
from modevo.units.resample import resample


def load_encodec(folder):
    from transformers import EncodecModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    return EncodecModel.from_pretrained(str(folder), local_files_only=True).eval().float()


class EncodecTokenizer(SpeechTokenizer):
    name = "encodec"
    trainable = False
    model_type = "encodec"
    native_rate = "its model's own rate only: 75 Hz for facebook/encodec_24khz"  # codes cannot be averaged

    def __init__(self, weights: str | None = None, codebook: int = 0, precision: str = "fp32"):
        super().__init__()
        self.precision = check_precision(precision)
        self.folder = check_weights(weights, self.model_type, self.name)
        self.codebook = codebook
        self.digest = weights_digest(self.folder)
        self.model = load_encodec(self.folder)
        cfg = self.model.config
        if cfg.chunk_length_s is not None:
            raise InputError(f"encodec weights in {self.folder} encode in overlapping chunks (the 48 kHz music "
                             "model): use the 24 kHz model (facebook/encodec_24khz)")
        if not 0 <= codebook < cfg.num_quantizers:
            raise InputError(f"encodec codebook={codebook} is out of range: the model in {self.folder} has "
                             f"codebooks 0 to {cfg.num_quantizers - 1}")
        self.sample_rate = cfg.sampling_rate
        self.hop = math.prod(cfg.upsampling_ratios)
        self.frame_rate_hz = self.sample_rate / self.hop
        self.vocab_size = cfg.codebook_size
        self.channels = cfg.audio_channels

    def params(self) -> dict:
        return {"weights": str(self.folder), "codebook": self.codebook, **precision_params(self.precision)}

    @classmethod
    def from_params(cls, params: dict) -> "EncodecTokenizer":
        return cls(**params)

    def extra_manifest(self) -> dict:
        return {"weights_digest": self.digest}

    def fit(self, utterances) -> "EncodecTokenizer":
        return self  # the codebooks come with the weights

    def n_frames(self, n_samples: int) -> int:
        n_out = -(-n_samples * self.sample_rate // SAMPLE_RATE)  # resampled length
        return -(-n_out // self.hop)

    def _move(self, device: str) -> None:
        self.model.to(device=device, dtype=model_dtype(self.precision, device, self.name))

    # encode_batch: the default loop. EnCodec's convs pad each utterance's edges by reflection, so a padded
    # batch would change its last frames; one utterance at a time on the device is exact.
    @torch.no_grad()
    def encode(self, audio: np.ndarray) -> np.ndarray:
        if len(audio) == 0:
            return np.zeros(0, dtype=np.int64)
        x = resample(to_float(audio), SAMPLE_RATE, self.sample_rate)  # (n24,)
        x = x.to(self.device, model_dtype(self.precision, self.device, self.name))
        x = x.view(1, 1, -1).expand(1, self.channels, -1)  # (1, channels, n24): mono copied to each channel
        scale = None
        if self.model.config.normalize:  # as EncodecModel._encode_frame: unit RMS, scale kept aside
            scale = x.mean(1, keepdim=True).square().mean(-1, keepdim=True).sqrt() + 1e-8
            x = x / scale
        residual = self.model.encoder(x)  # (1, D, T)
        # the residual quantiser, stopped at the wanted codebook (later ones cannot change it)
        for layer in self.model.quantizer.layers[: self.codebook + 1]:
            codes = layer.encode(residual)  # (1, T)
            residual = residual - layer.decode(codes)
        return codes[0].to(torch.int64).cpu().numpy()

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, arrays: dict[str, np.ndarray], manifest: dict) -> None:
        if manifest.get("weights_digest") != self.digest:
            raise InputError(f"the EnCodec weights in {self.folder} differ from those this tokenizer was saved "
                             "with (digest mismatch): point weights= at the original folder")
