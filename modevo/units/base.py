"""The interface every speech tokenizer follows, and how its artefacts are written and checked.

A tokenizer maps 16 kHz int16 audio to a 1-D array of unit ids in [0, vocab_size) at frame_rate_hz.
It is deterministic given its artefacts. A saved tokenizer is a folder of plain files (arrays as .npy,
whose bytes depend only on their content, so retraining gives the same content hash) plus manifest.json,
written last, with a sha256 per artefact, their combined content hash and what the tokenizer was trained
on (corpus and rendering hashes). Loading checks every digest: a changed file is refused, not used.
"""

from __future__ import annotations

import abc
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from modevo.cache import file_digest, stable_hash
from modevo.errors import InputError, MissingToolError
from modevo.frames import BASE_RATE_HZ

MANIFEST = "manifest.json"
LOCATION_PARAMS = ("weights",)  # say where an input lies, not what it is: left out of the content hash
FORMAT_VERSION = 1


@dataclass
class Utterance:
    """One training utterance: audio plus its 50 Hz frame labels (phonetic-kmeans needs them)."""

    audio: np.ndarray  # (n,) int16, 16 kHz
    labels: np.ndarray | None = None  # (n_frames(n),) str, one phone (or "SIL") per 20 ms frame
    id: str = ""


class SpeechTokenizer(abc.ABC):
    name: ClassVar[str]
    trainable: ClassVar[bool] = True  # False: nothing is learnt from our corpus (EnCodec's codebook is fixed)
    model_type: ClassVar[str | None] = None  # transformers model_type of the local weights it needs, if any
    poolable: ClassVar[bool] = False  # True: its 50 Hz frames can be averaged down to 50 Hz / n (the `pool` param)
    native_rate: ClassVar[str] = "50 Hz"  # the rates it can give, as a refusal names them
    frame_rate_hz: float  # an instance value: a pooled tokenizer's rate depends on its params
    vocab_size: int

    def __init__(self) -> None:
        self.trained_on: dict = {}  # corpus/rendering hashes and amounts, recorded in the manifest
        self.stats: dict = {}  # what training measured (inertia, classifier accuracy), for the record

    # -- what each tokenizer implements -------------------------------------------------------------
    @abc.abstractmethod
    def params(self) -> dict:
        """The settings that decide the tokenizer's output (go into its cache key and manifest)."""

    @abc.abstractmethod
    def fit(self, utterances) -> "SpeechTokenizer":
        """Learn from an iterable of Utterance (read once, in order). Returns self."""

    @abc.abstractmethod
    def n_frames(self, n_samples: int) -> int:
        """Exact number of units encode() returns for n_samples of 16 kHz audio."""

    @abc.abstractmethod
    def encode(self, audio: np.ndarray) -> np.ndarray:
        """(n,) int16 at 16 kHz → (n_frames(n),) int64 unit ids in [0, vocab_size)."""

    @abc.abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """The learnt arrays to save, by file stem."""

    @abc.abstractmethod
    def _restore(self, arrays: dict[str, np.ndarray], manifest: dict) -> None:
        """Set the learnt state from saved arrays (the inverse of _arrays)."""

    @classmethod
    @abc.abstractmethod
    def from_params(cls, params: dict) -> "SpeechTokenizer":
        """A fresh, untrained tokenizer with these settings."""

    # -- batched encoding, device ------------------------------------------------------------------
    device: str = "cpu"  # where encode_batch runs (runtime only: not a param, not in any cache key)
    batch_size: int = 16  # utterances per encode_batch forward

    def to(self, device: str = "cpu", batch_size: int | None = None) -> "SpeechTokenizer":
        """Run on `device` ("cpu", "cuda", "auto"), batch_size utterances per forward. Tokenizers with
        tensors override _move to move them. Returns self."""
        self.device = resolve_device(device)
        if batch_size is not None:
            if batch_size < 1:
                raise ValueError(f"batch_size must be positive, got {batch_size}")
            self.batch_size = batch_size
        self._move(self.device)
        return self

    def _move(self, device: str) -> None:
        """Put the tokenizer's tensors and models on device (nothing to do by default)."""

    def encode_batch(self, audios) -> list[np.ndarray]:
        """encode() of each (n_i,) int16 16 kHz utterance; the same arrays encode() gives one by one. The
        default loops; tokenizers with a batched forward override it (padding is masked: it never changes a
        unit)."""
        return [self.encode(a) for a in audios]

    # -- shared -------------------------------------------------------------------------------------
    def extra_manifest(self) -> dict:
        """Anything else a tokenizer must record (e.g. the digest of external weights)."""
        return {}

    def save(self, folder: str | Path, extra: dict | None = None) -> dict:
        """Write the artefacts and then manifest.json (plus `extra` fields, e.g. the cache key) into folder;
        callers make it atomic. Returns the manifest."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        digests = {}
        for stem, arr in sorted(self._arrays().items()):
            path = folder / f"{stem}.npy"
            np.save(path, np.ascontiguousarray(arr), allow_pickle=False)
            digests[path.name] = file_digest(path)
        manifest = {
            "format": FORMAT_VERSION, "tokenizer": self.name, "frame_rate_hz": self.frame_rate_hz,
            "vocab_size": self.vocab_size, "params": self.params(), "trained_on": self.trained_on,
            "stats": self.stats, "artefacts": digests, **self.extra_manifest(), **(extra or {}),
        }
        manifest["content_hash"] = content_hash(manifest)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        return manifest

    @classmethod
    def load(cls, folder: str | Path, **overrides) -> "SpeechTokenizer":
        """A saved tokenizer; overrides replace recorded params that say where, not what (e.g. weights=
        for a moved weights folder: its digest is still checked)."""
        manifest = read_manifest(folder)
        if manifest["tokenizer"] != cls.name:
            raise InputError(f"{folder} holds a '{manifest['tokenizer']}' tokenizer, not '{cls.name}'")
        tok = cls.from_params({**manifest["params"], **overrides})
        tok.trained_on, tok.stats = manifest.get("trained_on", {}), manifest.get("stats", {})
        if content_hash(manifest) != manifest["content_hash"]:
            raise InputError(f"{folder}/{MANIFEST} was edited after training (content hash differs): retrain it")
        tok._restore(read_arrays(folder, manifest), manifest)
        return tok

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, frame_rate_hz={self.frame_rate_hz})"


def resolve_device(device: str) -> str:
    """"cpu", "cuda" (refused in one line where no CUDA device is), "cuda:N" or "auto" (cuda when present)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device={device} but torch sees no CUDA device here: use device=cpu or device=auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"unknown device '{device}' (cpu, cuda, cuda:N or auto)")
    return device


PRECISIONS = ("fp32", "fp16", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision '{precision}' ({', '.join(PRECISIONS)})")
    return precision


def precision_params(precision: str) -> dict:
    """A tokenizer's precision among its params only when not fp32 (fp16/bf16 units differ from fp32 ones,
    so they get their own content hash; fp32 keeps the keys of tokenizers made before the option)."""
    return {"precision": precision} if precision != "fp32" else {}


def model_dtype(precision: str, device: str, tokenizer: str):
    """The torch dtype a neural tokenizer runs in: fp16/bf16 only on CUDA (refused on the CPU, where they
    would be slow and give other units than the fp32 the CPU tests check)."""
    import torch

    if precision == "fp32":
        return torch.float32
    if not str(device).startswith("cuda"):
        raise InputError(f"{tokenizer} precision={precision} runs only on CUDA (units.device=cuda or auto on a "
                         "GPU machine); on the CPU use precision=fp32")
    return torch.float16 if precision == "fp16" else torch.bfloat16


def length_batches(lengths, batch_size: int) -> list[list[int]]:
    """Indices sorted by length (longest first, stable) and cut into batches of batch_size: each batch pads
    to about its own length."""
    order = sorted(range(len(lengths)), key=lambda i: -int(lengths[i]))
    return [order[a:a + batch_size] for a in range(0, len(order), batch_size)]


def content_hash(manifest: dict) -> str:
    """What decides the units: the artefacts' digests, the settings that shape the output (not where the
    weights lie) and any external weights' digest. Equal hashes → equal units for equal audio."""
    params = {k: v for k, v in manifest["params"].items() if k not in LOCATION_PARAMS}
    return stable_hash({"tokenizer": manifest["tokenizer"], "params": params, "artefacts": manifest["artefacts"],
                        "weights_digest": manifest.get("weights_digest")}, 64)


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder} is not a trained tokenizer: {MANIFEST} is missing")
    return json.loads(path.read_text())


def read_arrays(folder: str | Path, manifest: dict) -> dict[str, np.ndarray]:
    """Every artefact the manifest lists, each checked against its sha256."""
    folder = Path(folder)
    out = {}
    for name, digest in manifest["artefacts"].items():
        path = folder / name
        if not path.is_file() or file_digest(path) != digest:
            raise InputError(f"tokenizer artefact {path} is missing or changed since training (sha256 differs "
                             "from manifest.json): retrain it")
        out[name.removesuffix(".npy")] = np.load(path, allow_pickle=False)
    return out


# -- local transformers weights -------------------------------------------------------------------------
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def check_weights(path: str | None, model_type: str, tokenizer: str) -> Path:
    """The local folder of a transformers model of model_type, or MissingToolError in one line."""
    expected = (f"a local transformers folder with config.json (model_type '{model_type}') and "
                f"model.safetensors or pytorch_model.bin, e.g. saved by save_pretrained")
    if not path:
        raise MissingToolError(f"{tokenizer} needs weights=<folder>: {expected}")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise MissingToolError(f"{tokenizer} weights folder {folder} does not exist: expected {expected}")
    config = folder / "config.json"
    if not config.is_file():
        raise MissingToolError(f"{tokenizer} weights folder {folder} has no config.json: expected {expected}")
    try:
        found = json.loads(config.read_text()).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise MissingToolError(f"{config} is not valid JSON: expected {expected}") from None
    if found != model_type:
        raise MissingToolError(f"{tokenizer} weights folder {folder} holds model_type '{found}', "
                               f"expected '{model_type}': {expected}")
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise MissingToolError(f"{tokenizer} weights folder {folder} has no model.safetensors or "
                               f"pytorch_model.bin: expected {expected}")
    return folder


def weights_digest(folder: Path) -> str:
    """sha256 over config.json and the weight files: the tokenizer's output depends on all of them."""
    names = sorted(f for f in os.listdir(folder)
                   if f == "config.json" or f == "preprocessor_config.json"
                   or f.endswith((".safetensors", ".bin", ".index.json")))
    return stable_hash({n: file_digest(folder / n) for n in names}, 64)


def check_pool(pool) -> int:
    """pool: how many 50 Hz frames make one unit (modevo.frames.pool_factor of the rate)."""
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        raise InputError(f"pool must be a whole number of 50 Hz frames >= 1, got {pool!r}")
    return pool


def pool_params(pool: int) -> dict:
    """The pool among a tokenizer's params only when > 1: 50 Hz tokenizers keep the keys they had before."""
    return {"pool": pool} if pool > 1 else {}


def pool_frames(feats, pool: int):
    """(T, D) 50 Hz features → (ceil(T / pool), D): the mean of each run of `pool` consecutive frames, a final
    partial run averaging the frames it has. pool 1 returns feats itself (50 Hz units stay bit for bit).

    Summed as a fixed sequence of elementwise adds (not a reduction kernel, whose order may depend on the
    shape), so a pooled frame's bits depend only on its own frames: an utterance pooled alone and pooled out
    of a padded batch agree exactly, as encode() and encode_batch() must."""
    import torch

    if pool == 1 or len(feats) == 0:
        return feats
    t = len(feats)
    n = -(-t // pool)
    groups = torch.nn.functional.pad(feats, (0, 0, 0, n * pool - t)).view(n, pool, -1)  # zeros add nothing
    total = groups[:, 0]
    for j in range(1, pool):
        total = total + groups[:, j]
    counts = torch.full((n, 1), float(pool), dtype=feats.dtype, device=feats.device)
    counts[-1] = t - (n - 1) * pool
    return total / counts


class FrameKMeans(SpeechTokenizer):
    """A tokenizer that assigns one feature vector per frame to its nearest k-means centroid: mel-kmeans,
    phonetic-kmeans and hubert-kmeans differ only in `features`. The features come at 50 Hz; with pool p > 1
    each run of p frames is averaged first (pool_frames), for k-means training and for assignment alike, so
    the units come at 50 / p Hz."""

    poolable = True
    native_rate = "50 Hz / n (50, 25, 12.5, 10 Hz...)"
    centroids = None  # (K, D) torch.Tensor once trained or loaded

    def __init__(self, pool: int = 1) -> None:
        super().__init__()
        self.pool = check_pool(pool)
        self.frame_rate_hz = BASE_RATE_HZ / self.pool

    @abc.abstractmethod
    def features(self, audio: np.ndarray):
        """(n,) int16 at 16 kHz → (n50, D) float32 tensor of 50 Hz frames, n50 = features.n_frames(n)."""

    def pooled(self, feats):
        """(n50, D) 50 Hz features → (n_frames, D) at this tokenizer's rate."""
        return pool_frames(feats, self.pool)

    def n_frames(self, n_samples: int) -> int:
        from modevo.units.features import n_frames

        return -(-n_frames(n_samples) // self.pool)

    def features_batch(self, audios) -> tuple:
        """Several utterances → ((B, T_max, D) float32 on self.device, [T_i]) of 50 Hz frames: rows < T_i of
        utterance b equal features(audios[b]); rows past T_i are padding. Default: features() one by one,
        padded."""
        import torch

        feats = [self.features(a) for a in audios]
        ts = [len(f) for f in feats]
        dim = max((f.shape[1] for f in feats if f.ndim == 2), default=0)
        out = torch.zeros(len(feats), max(ts, default=0), dim, device=self.device)
        for b, f in enumerate(feats):
            out[b, :len(f)] = f.to(self.device)
        return out, ts

    def encode(self, audio: np.ndarray) -> np.ndarray:
        from modevo.units import kmeans

        if self.centroids is None:
            raise RuntimeError(f"{self.name} is not trained: call fit() or load()")
        if self.n_frames(len(audio)) == 0:
            return np.zeros(0, dtype=np.int64)
        return kmeans.assign(self.pooled(self.features(audio)), self.centroids).numpy()

    def encode_batch(self, audios) -> list[np.ndarray]:
        """Length-sorted batches of batch_size utterances through features_batch on self.device; each
        utterance's real frames (padding dropped, then pooled) are assigned to their nearest centroid."""
        import torch

        from modevo.units import kmeans

        if self.centroids is None:
            raise RuntimeError(f"{self.name} is not trained: call fit() or load()")
        out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(audios)
        lengths = [len(a) for a in audios]
        centroids = self.centroids.to(self.device)
        for idx in length_batches(lengths, self.batch_size):
            idx = [i for i in idx if self.n_frames(lengths[i]) > 0]
            if not idx:
                continue
            feats, ts = self.features_batch([audios[i] for i in idx])  # (B, T, D)
            # pooled per utterance from its real frames only: a last partial run never averages in padding
            pooled = [self.pooled(feats[b, :t]) for b, t in enumerate(ts)]
            units = kmeans.assign(torch.cat(pooled).float(), centroids).cpu().numpy()
            for i, piece in zip(idx, np.split(units, np.cumsum([len(p) for p in pooled])[:-1])):
                out[i] = piece
        return out
