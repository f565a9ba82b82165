"""Speech units → phones, offline: a small frame classifier trained on the rendering's exact alignments.

Why: a speech view generates unit ids, and words are needed to score a continuation. No offline ASR exists
here, but every training utterance has exact phone times, so each unit frame has a known phone (or SIL).
A unit-id embedding and a few 1-D convs ('same' padding; receptive field 1 + layers · (kernel - 1) frames,
11 = 220 ms at 50 Hz by default) predict each frame's label; decoding takes the argmax per frame, collapses
runs and drops SIL, and the phone string goes to the lexicon decoder for words.

Inputs are raw unit ids 0..K-1 of one rendering's tokenizer at the units' frame rate (a speech view's token
id is unit + 1: subtract 1 first), taken inside the phone span as the speech views take them (leading and
trailing silence dropped), so the recogniser sees what a model trained on the view generates. Training
concatenates utterances with PAD frames between them (an embedding of zeros, as the convs' zero padding
gives at an utterance's edges), so a frame never sees another utterance and decoding one utterance alone
sees what training saw. Training is seeded (initialisation, subsample, window order) and runs on the CPU.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modevo.cache import atomic_dir, atomic_write_json, file_digest, read_saved, stable_hash
from modevo.corpus.phones import PHONES
from modevo.errors import ConfigError, InputError
from modevo.frames import DEFAULT_RATE_HZ, frame_index, frame_ms
from modevo.generate.lexicon_decoder import LexiconDecoder, collapse_repeats, error_rate
from modevo.machine import choose_threads
from modevo.units.features import SILENCE, flat_phones, frame_labels

log = logging.getLogger("modevo.generate")

FORMAT = "modevo-unit-recogniser-1"
LABELS = (*PHONES, SILENCE)  # fixed order: label i is the same phone in every recogniser
IGNORE = -100  # cross-entropy's ignore index: PAD frames between utterances


class FrameTagger(nn.Module):
    """(B, T) unit ids (PAD = n_units) → (B, n_labels, T) logits."""

    def __init__(self, n_units: int, n_labels: int = len(LABELS), dim: int = 64, channels: int = 128,
                 layers: int = 5, kernel: int = 3):
        super().__init__()
        self.embed = nn.Embedding(n_units + 1, dim, padding_idx=n_units)  # PAD embeds to zeros
        blocks = []
        for i in range(layers):
            blocks += [nn.Conv1d(dim if i == 0 else channels, channels, kernel, padding=kernel // 2), nn.GELU()]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Conv1d(channels, n_labels, 1)

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.embed(units).transpose(1, 2)))  # (B, P, T)


def span_frames(rendering: dict, rate_hz: float) -> tuple[int, int]:
    """First and last-plus-one frame of the phone span (the speech views' rule: modevo.views.encode.span_units)."""
    step = frame_ms(rate_hz)
    start = int(frame_index(rendering["start_ms"][0], step))
    end = int(frame_index(rendering["start_ms"][-1] + rendering["durations_ms"][-1], step))
    return start, end


def labelled_frames(row: dict, rendering: dict, units, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """One utterance's units inside its phone span and each frame's label index (into LABELS): the
    rendering's exact alignment at the units' rate (modevo.units.features.frame_labels)."""
    units = np.asarray(units, np.int64)
    names = frame_labels(rendering, len(units), row["phones"], frame_ms(rate_hz))
    start, end = span_frames(rendering, rate_hz)
    index = {p: i for i, p in enumerate(LABELS)}
    return units[start:end], np.array([index[p] for p in names[start:end]], np.int64)


class UnitRecogniser:
    """A trained FrameTagger and what it was trained for (tokenizer, rendering, rate); `phones(units)` and
    `words(units, decoder)` decode one utterance."""

    def __init__(self, vocab_size: int, rate_hz: float = DEFAULT_RATE_HZ, rendering: str = "",
                 tokenizer_hash: str = "", dim: int = 64, channels: int = 128, layers: int = 5, kernel: int = 3,
                 epochs: int = 3, lr: float = 3e-3, batch_windows: int = 16, window_frames: int = 256,
                 max_train_frames: int = 1_000_000, seed: int = 0):
        if vocab_size < 1 or kernel < 1 or kernel % 2 == 0 or layers < 1 or epochs < 1 or lr <= 0:
            raise ConfigError(f"recogniser settings need vocab_size ≥ 1, an odd kernel, layers ≥ 1, epochs ≥ 1 "
                              f"and lr > 0 (got {vocab_size}, {kernel}, {layers}, {epochs}, {lr})")
        self.vocab_size, self.rate_hz = int(vocab_size), float(rate_hz)
        self.rendering, self.tokenizer_hash = rendering, tokenizer_hash
        self.arch = {"dim": dim, "channels": channels, "layers": layers, "kernel": kernel}
        self.train_cfg = {"epochs": epochs, "lr": lr, "batch_windows": batch_windows, "window_frames": window_frames,
                          "max_train_frames": max_train_frames, "seed": seed}
        self.model = FrameTagger(self.vocab_size, **self.arch)
        self.trained_on: dict = {}
        self.stats: dict = {}

    @property
    def receptive_field(self) -> int:
        return 1 + self.arch["layers"] * (self.arch["kernel"] - 1)

    @property
    def settings(self) -> dict:
        return {"vocab_size": self.vocab_size, "rate_hz": self.rate_hz, "rendering": self.rendering,
                "tokenizer_hash": self.tokenizer_hash, **self.arch, **self.train_cfg}

    @property
    def content_hash(self) -> str:
        """What decides the weights: the training frames' digest and every setting."""
        return stable_hash({"format": FORMAT, "settings": self.settings, "trained_on": self.trained_on}, 64)

    # -- training ----------------------------------------------------------------------------------------------
    def fit(self, rendered: Iterable[tuple[dict, dict, np.ndarray]]) -> UnitRecogniser:
        """Train on (corpus row, rendering row, units) triples (`ViewContext.rendered_rows(rendering, "train",
        tokenizer, rate_hz)`): each utterance's span frames labelled by the exact alignment."""
        return self.fit_frames(labelled_frames(r, rend, u, self.rate_hz) for r, rend, u in rendered)

    def fit_frames(self, utterances: Iterable[tuple[np.ndarray, np.ndarray]]) -> UnitRecogniser:
        """Train on (units (T,), label indices (T,)) pairs; at most max_train_frames, a seeded subsample."""
        data = [(np.asarray(u, np.int64), np.asarray(y, np.int64)) for u, y in utterances]
        data = [(u, y) for u, y in data if len(u)]
        if not data:
            raise InputError("no frames to train the recogniser on: are the training utterances empty?")
        for u, y in data:
            if len(u) != len(y):
                raise InputError(f"an utterance has {len(u)} units but {len(y)} frame labels")
            if u.min() < 0 or u.max() >= self.vocab_size:
                bad = int(u.min()) if u.min() < 0 else int(u.max())
                raise InputError(f"unit id {bad} is outside 0..{self.vocab_size - 1} (vocab_size={self.vocab_size})")
        rng = np.random.default_rng(self.train_cfg["seed"])
        chosen, frames = [], 0
        for i in rng.permutation(len(data)):
            if frames >= self.train_cfg["max_train_frames"]:
                break
            chosen.append(data[i])
            frames += len(data[i][0])
        digest = hashlib.sha256()
        for u, y in chosen:
            digest.update(u.tobytes() + b"|" + y.tobytes() + b"/")
        self.trained_on = {"utterances": len(chosen), "frames": frames, "digest": digest.hexdigest()}
        x, y = self._concatenate(chosen)
        threads, why = choose_threads()
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)  # the count is set, never left to the library (modevo.machine)
        try:
            log.info("recogniser: %d utterances, %d frames, %d threads (%s)", len(chosen), frames, threads, why)
            self.stats = {"train_frame_accuracy": self._train(x, y)}
        finally:
            torch.set_num_threads(previous)
        return self

    def _concatenate(self, data: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Utterances back to back, half a receptive field of PAD frames (label IGNORE) between them."""
        gap = self.receptive_field // 2
        pad_u, pad_y = np.full(gap, self.vocab_size, np.int64), np.full(gap, IGNORE, np.int64)
        xs, ys = [pad_u], [pad_y]
        for u, y in data:
            xs += [u, pad_u]
            ys += [y, pad_y]
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    def _train(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Cross-entropy over windows cut from the concatenation, every frame once per epoch in a seeded order;
        returns the last epoch's frame accuracy."""
        cfg = self.train_cfg
        w, b = cfg["window_frames"], cfg["batch_windows"]
        n_win = -(-len(x) // w)
        pad = n_win * w - len(x)
        xw = nn.functional.pad(x, (0, pad), value=self.vocab_size).view(n_win, w)
        yw = nn.functional.pad(y, (0, pad), value=IGNORE).view(n_win, w)
        gen = torch.Generator().manual_seed(cfg["seed"])
        with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
            torch.manual_seed(cfg["seed"])
            self.model = FrameTagger(self.vocab_size, **self.arch)
        opt = torch.optim.AdamW(self.model.parameters(), lr=cfg["lr"], weight_decay=0.01)
        steps = cfg["epochs"] * -(-n_win // b)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg["lr"], total_steps=steps, pct_start=0.1)
        self.model.train()
        accuracy = 0.0
        for epoch in range(cfg["epochs"]):
            correct = seen = 0
            order = torch.randperm(n_win, generator=gen)
            for a in range(0, n_win, b):
                sel = order[a:a + b]
                logits = self.model(xw[sel])  # (B, P, w)
                loss = nn.functional.cross_entropy(logits, yw[sel], ignore_index=IGNORE)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                mask = yw[sel] != IGNORE
                correct += int((logits.argmax(1) == yw[sel])[mask].sum())
                seen += int(mask.sum())
            accuracy = correct / max(seen, 1)
            log.info("recogniser epoch %d: frame accuracy %.3f", epoch + 1, accuracy)
        self.model.eval()
        return accuracy

    # -- decoding ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def frame_labels(self, units) -> np.ndarray:
        """(T,) the most likely label (a phone or SIL) of each frame of one utterance's unit ids."""
        units = np.asarray(units, np.int64)
        if units.ndim != 1:
            raise InputError(f"units must be a 1-D sequence of unit ids (got shape {units.shape})")
        if not len(units):
            return np.zeros(0, dtype=str)
        if units.min() < 0 or units.max() >= self.vocab_size:
            bad = int(units.min()) if units.min() < 0 else int(units.max())
            raise InputError(f"unit id {bad} is outside 0..{self.vocab_size - 1}: a speech view's token id is "
                             "its unit + 1 (subtract 1 first)")
        self.model.eval()
        logits = self.model(torch.from_numpy(units)[None])[0]  # (P, T)
        return np.asarray(LABELS)[logits.argmax(0).numpy()]

    def phones(self, units) -> list[str]:
        """One utterance's units → its phone string: argmax per frame, runs collapsed, SIL dropped."""
        return [p for p in collapse_repeats(self.frame_labels(units).tolist()) if p != SILENCE]

    def words(self, units, decoder: LexiconDecoder) -> list[str]:
        return decoder.decode(self.phones(units))

    # -- storage -----------------------------------------------------------------------------------------------
    def save(self, root: str | Path) -> Path:
        """Write to root/<content hash[:16]>/ (weights.npz: the state dict; manifest.json, written last) and
        return that folder; an existing one is kept."""
        folder = Path(root) / self.content_hash[:16]
        if (folder / "manifest.json").is_file():
            return folder
        with atomic_dir(folder) as tmp:
            state = {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
            with open(tmp / "weights.npz", "wb") as f:
                np.savez(f, **state)
            atomic_write_json(tmp / "manifest.json", {
                "format": FORMAT, "content_hash": self.content_hash, "settings": self.settings,
                "labels": list(LABELS), "trained_on": self.trained_on, "stats": self.stats,
                "artefacts": {"weights.npz": file_digest(tmp / "weights.npz")}})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> UnitRecogniser:
        folder = Path(folder)
        manifest = read_saved(folder, "unit recogniser", FORMAT)
        if manifest.get("labels") != list(LABELS):
            raise InputError(f"{folder}: the recogniser's phone labels differ from this modevo's: retrain it")
        rec = cls(**manifest["settings"])
        rec.trained_on, rec.stats = manifest["trained_on"], manifest["stats"]
        with np.load(folder / "weights.npz", allow_pickle=False) as z:
            rec.model.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
        rec.model.eval()
        return rec


# -- from a views context ----------------------------------------------------------------------------------------
def train_recogniser(ctx, rendering: str, tokenizer: str, rate_hz: float = DEFAULT_RATE_HZ,
                     **settings) -> UnitRecogniser:
    """A recogniser for one rendering's units from one tokenizer at one rate, trained on the train split
    (ctx: a modevo.views.build.ViewContext; its units are built if missing)."""
    _, manifest = ctx.units(rendering, tokenizer, rate_hz)
    rec = UnitRecogniser(manifest["vocab_size"], manifest["frame_rate_hz"], rendering, manifest["tokenizer_hash"],
                         **settings)
    return rec.fit(ctx.rendered_rows(rendering, "train", tokenizer, rate_hz))


def evaluate_recogniser(rec: UnitRecogniser, decoder: LexiconDecoder | None,
                        rendered: Iterable[tuple[dict, dict, np.ndarray]]) -> dict:
    """Held-out (corpus row, rendering row, units) triples (e.g. `ctx.rendered_rows(rendering, "test",
    tokenizer, rate_hz)`) → frame accuracy on the span, PER of the decoded phone string against the row's
    phones, and (with a decoder) WER of its words against the row's words."""
    correct = frames = 0
    phone_pairs, word_pairs = [], []
    for row, rendering, units in rendered:
        u, y = labelled_frames(row, rendering, units, rec.rate_hz)
        predicted = rec.frame_labels(u)
        correct += int((predicted == np.asarray(LABELS)[y]).sum())
        frames += len(y)
        phones = [p for p in collapse_repeats(predicted.tolist()) if p != SILENCE]
        phone_pairs.append((flat_phones(row["phones"]), phones))
        if decoder is not None:
            word_pairs.append((list(row["words"]), decoder.decode(phones)))
    if not phone_pairs:
        raise InputError("no held-out utterances to evaluate the recogniser on")
    per = error_rate(phone_pairs)
    out = {"rendering": rec.rendering, "rate_hz": rec.rate_hz, "utterances": per["n"],
           "frame_accuracy": correct / max(frames, 1), "frames": frames, "per": per["rate"], "n_phones": per["n_ref"]}
    if decoder is not None:
        wer = error_rate(word_pairs)
        out.update(wer=wer["rate"], n_words=wer["n_ref"], exact_sentences=wer["exact"] / wer["n"])
    return out
