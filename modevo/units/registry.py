"""Tokenizer names → classes, and the mapping from a UnitsConfig to a tokenizer's settings."""

from __future__ import annotations

from pathlib import Path

from modevo.errors import ConfigError, InputError
from modevo.frames import DEFAULT_RATE_HZ, pool_factor
from modevo.units.base import SpeechTokenizer, pool_params, read_manifest
from modevo.units.config import UnitsConfig


def tokenizer_class(name: str) -> type[SpeechTokenizer]:
    # imported on demand: hubert/encodec pull in transformers only when used
    if name == "mel-kmeans":
        from modevo.units.mel_kmeans import MelKMeans as cls
    elif name == "phonetic-kmeans":
        from modevo.units.phonetic_kmeans import PhoneticKMeans as cls
    elif name == "hubert-kmeans":
        from modevo.units.hubert_kmeans import HubertKMeans as cls
    elif name == "encodec":
        from modevo.units.encodec import EncodecTokenizer as cls
    else:
        raise InputError(f"unknown tokenizer '{name}' (known: mel-kmeans, phonetic-kmeans, hubert-kmeans, encodec)")
    return cls


def tokenizer_params(cfg: UnitsConfig, rate_hz: float = DEFAULT_RATE_HZ) -> dict:
    """The settings of cfg.tokenizer taken from the config (only those it uses, so that changing another
    tokenizer's knob leaves this one's cache key alone), for units at rate_hz. The rate is the caller's (a
    view names it), not a UnitsConfig field: it enters the params as `pool` only when not 50 Hz, so every
    50 Hz key stays as it was."""
    pool = pool_factor(rate_hz)  # a rate that is not 50 Hz / n: one ConfigError
    params = _config_params(cfg)
    if pool > 1:
        cls = tokenizer_class(cfg.tokenizer)
        if not cls.poolable:
            raise ConfigError(f"{cls.name} cannot give units at {rate_hz:g} Hz (it supports {cls.native_rate}); "
                              "the k-means tokenizers (mel-kmeans, phonetic-kmeans, hubert-kmeans) give 50 Hz / n")
        params.update(pool_params(pool))
    return params


def _config_params(cfg: UnitsConfig) -> dict:
    kmeans = {"k": cfg.k, "iterations": cfg.iterations, "seed": cfg.seed, "max_train_frames": cfg.max_train_frames}
    if cfg.kmeans_batch:  # only when set: full-batch Lloyd keeps the keys tokenizers had before the option
        kmeans["kmeans_batch"] = cfg.kmeans_batch
    precision = {"precision": cfg.precision} if cfg.precision != "fp32" else {}
    if precision and cfg.tokenizer not in ("hubert-kmeans", "encodec"):
        raise InputError(f"units.precision={cfg.precision} applies to hubert-kmeans and encodec only "
                         f"({cfg.tokenizer} runs in fp32)")
    if cfg.tokenizer == "mel-kmeans":
        return {**kmeans, "normalize": cfg.normalize}
    if cfg.tokenizer == "phonetic-kmeans":
        c = cfg.classifier
        return {**kmeans, "channels": c.channels, "layers": c.layers, "kernel": c.kernel, "epochs": c.epochs,
                "lr": c.lr, "batch_windows": c.batch_windows, "window_frames": c.window_frames, "dtype": c.dtype}
    if cfg.tokenizer == "hubert-kmeans":
        return {**kmeans, "weights": cfg.weights, "layer": cfg.layer, **precision}
    if cfg.tokenizer == "encodec":
        return {"weights": cfg.weights, "codebook": cfg.codebook, **precision}
    raise InputError(f"unknown tokenizer '{cfg.tokenizer}'")


def make_tokenizer(cfg: UnitsConfig, rate_hz: float = DEFAULT_RATE_HZ) -> SpeechTokenizer:
    """An untrained tokenizer as cfg describes, giving units at rate_hz (hubert/encodec check and load their
    weights here)."""
    return tokenizer_class(cfg.tokenizer).from_params(tokenizer_params(cfg, rate_hz))


def load_tokenizer(folder: str | Path, **overrides) -> SpeechTokenizer:
    """A trained tokenizer from its folder, whatever its kind (read from manifest.json)."""
    return tokenizer_class(read_manifest(folder)["tokenizer"]).load(folder, **overrides)
