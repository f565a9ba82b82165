"""`phonetic-kmeans`: k-means on the hidden layer of a small frame classifier trained on our exact alignments.

HuBERT's units are phonetic because its targets were; we have the exact phone of every frame, so a few
1-D conv layers over log-mel trained with cross-entropy to predict it give a phonetic representation
offline, in minutes. k-means on the last hidden layer (not on the phone posteriors) keeps within-phone
variation (voice, pitch, context) the way HuBERT's units do, rather than collapsing to ~40 phones.
Training is seeded (initialisation, window order) and may run in bf16 autocast; the hidden features that
k-means sees and that encode() computes are always fp32, so units depend only on the saved weights.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from modevo.units import kmeans
from modevo.units.base import FrameKMeans, pool_params
from modevo.units.features import N_MELS, SILENCE, log_mel, log_mel_batch, norm_stats
from modevo.units.mel_kmeans import DEFAULT_K, collect_frames, kmeans_params, kmeans_stats

log = logging.getLogger("modevo.units")


class FrameClassifier(nn.Module):
    """(B, 80, T) normalised log-mel → hidden (B, C, T) → phone logits (B, P, T); 'same' padding."""

    def __init__(self, n_classes: int, channels: int = 256, layers: int = 3, kernel: int = 5, n_in: int = N_MELS):
        super().__init__()
        blocks = []
        for i in range(layers):
            blocks += [nn.Conv1d(n_in if i == 0 else channels, channels, kernel, padding=kernel // 2), nn.GELU()]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Conv1d(channels, n_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)  # (B, C, T)
        return h, self.head(h)  # (B, C, T), (B, P, T)

    def hidden_masked(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) input, (B, 1, T) 1 on real frames and 0 on padding → (B, C, T) hidden features. Each
        layer's input is zero past an utterance's end, as 'same' padding makes it for the utterance alone,
        so real frames get the values of forward() on the utterance by itself."""
        h = x * mask
        for layer in self.body:
            h = layer(h)
            if isinstance(layer, nn.GELU):
                h = h * mask
        return h


class PhoneticKMeans(FrameKMeans):
    name = "phonetic-kmeans"

    def __init__(self, k: int = DEFAULT_K, iterations: int = 40, seed: int = 0, max_train_frames: int = 1_000_000,
                 channels: int = 256, layers: int = 3, kernel: int = 5, epochs: int = 3, lr: float = 2e-3,
                 batch_windows: int = 32, window_frames: int = 256, dtype: str = "bfloat16", kmeans_batch: int = 0,
                 pool: int = 1):
        super().__init__(pool)
        self.k, self.iterations, self.seed, self.max_train_frames = k, iterations, seed, max_train_frames
        self.kmeans_batch = kmeans_batch
        self.arch = {"channels": channels, "layers": layers, "kernel": kernel}
        self.train_cfg = {"epochs": epochs, "lr": lr, "batch_windows": batch_windows,
                          "window_frames": window_frames, "dtype": dtype}
        self.vocab_size = k
        self.phones: list[str] = []
        self.mean, self.std = torch.zeros(N_MELS), torch.ones(N_MELS)  # (80,)
        self.model: FrameClassifier | None = None
        self.centroids: torch.Tensor | None = None  # (K, C)

    def params(self) -> dict:
        return {"k": self.k, "iterations": self.iterations, "seed": self.seed,
                "max_train_frames": self.max_train_frames, **self.arch, **self.train_cfg,
                **kmeans_params(self.kmeans_batch), **pool_params(self.pool)}

    @classmethod
    def from_params(cls, params: dict) -> "PhoneticKMeans":
        return cls(**params)

    # -- features -----------------------------------------------------------------------------------
    def _mel(self, audio: np.ndarray) -> torch.Tensor:
        return (log_mel(audio) - self.mean) / self.std  # (T, 80)

    def features(self, audio: np.ndarray) -> torch.Tensor:
        return self.hidden(self._mel(audio))

    @torch.no_grad()
    def hidden(self, mel: torch.Tensor) -> torch.Tensor:
        """(T, 80) normalised log-mel → (T, C) fp32 hidden features of one utterance (on the CPU)."""
        self.model.eval()
        dev = next(self.model.parameters()).device
        return self.model(mel.T.unsqueeze(0).to(dev))[0][0].T.contiguous().cpu()

    @torch.no_grad()
    def features_batch(self, audios) -> tuple[torch.Tensor, list[int]]:
        """Padded batch on self.device, padding masked before every conv (FrameClassifier.hidden_masked)."""
        self.model.eval()
        mel, ts = log_mel_batch(audios, self.device)  # (B, T, 80)
        mel = (mel - self.mean.to(self.device)) / self.std.to(self.device)
        mask = (torch.arange(mel.shape[1], device=self.device)[None] < torch.tensor(ts, device=self.device)[:, None])
        h = self.model.hidden_masked(mel.transpose(1, 2), mask[:, None].float())  # (B, C, T)
        return h.transpose(1, 2), ts

    def _move(self, device: str) -> None:
        if self.model is not None:
            self.model.to(device)

    # -- training -----------------------------------------------------------------------------------
    def fit(self, utterances) -> "PhoneticKMeans":
        # The classifier learns the 50 Hz labels from 50 Hz frames (max_train_frames counts those); only the
        # hidden features k-means sees are pooled, as encode() pools them.
        feats, labels = collect_frames(utterances, self.max_train_frames, log_mel)
        if any(lab is None for lab in labels):
            raise ValueError("phonetic-kmeans needs frame labels for every training utterance")
        self.mean, self.std = norm_stats(torch.cat(feats))
        feats = [(f - self.mean) / self.std for f in feats]
        self.phones = sorted(set(np.concatenate(labels).tolist()) | {SILENCE})
        index = {p: i for i, p in enumerate(self.phones)}
        targets = [torch.tensor([index[p] for p in lab], dtype=torch.int64) for lab in labels]
        with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
            torch.manual_seed(self.seed)
            self.model = FrameClassifier(len(self.phones), **self.arch)
        accuracy = self._train(torch.cat(feats), torch.cat(targets))
        h = torch.cat([self.pooled(self.hidden(f)) for f in feats])  # (N / pool, C), exactly as encode() does
        km = kmeans.run(h, self.k, self.iterations, self.seed, device=self.device, batch_size=self.kmeans_batch)
        self._move(self.device)  # trained on the CPU; encoding runs on the tokenizer's device
        self.centroids = km.centroids
        self.stats = {"train_frames": len(h), "classifier_train_accuracy": accuracy, "phones": len(self.phones),
                      **kmeans_stats(km)}
        return self

    def _train(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Cross-entropy on windows cut from all training frames back to back (x (N, 80), y (N,)).

        Windows cross utterance boundaries only where silence meets silence; every frame is seen once per
        epoch, in a seeded order. Returns the last epoch's frame accuracy.
        """
        w, b = self.train_cfg["window_frames"], self.train_cfg["batch_windows"]
        n_win = -(-len(x) // w)
        pad = n_win * w - len(x)
        xw = torch.nn.functional.pad(x, (0, 0, 0, pad)).view(n_win, w, -1).transpose(1, 2)  # (W, 80, w)
        yw = torch.nn.functional.pad(y, (0, pad), value=-100).view(n_win, w)  # (W, w); -100: padding
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.train_cfg["lr"], weight_decay=0.01)
        steps = self.train_cfg["epochs"] * -(-n_win // b)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, self.train_cfg["lr"], total_steps=steps, pct_start=0.1)
        amp = self.train_cfg["dtype"] == "bfloat16"
        self.model.train()
        correct = seen = 0
        for epoch in range(self.train_cfg["epochs"]):
            correct = seen = 0
            order = torch.randperm(n_win, generator=gen)
            for a in range(0, n_win, b):
                sel = order[a:a + b]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    _, logits = self.model(xw[sel])  # (B, P, w)
                loss = nn.functional.cross_entropy(logits.float(), yw[sel])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                mask = yw[sel] != -100
                correct += int((logits.argmax(1) == yw[sel])[mask].sum())
                seen += int(mask.sum())
            log.info("phonetic-kmeans classifier epoch %d: frame accuracy %.3f", epoch + 1, correct / max(seen, 1))
        return correct / max(seen, 1)

    # -- use ----------------------------------------------------------------------------------------

    def predict_phones(self, audio: np.ndarray) -> np.ndarray:
        """(T,) the classifier's phone per frame (a diagnostic: how well the alignment was learnt)."""
        with torch.no_grad():
            dev = next(self.model.parameters()).device
            _, logits = self.model(self._mel(audio).T.unsqueeze(0).to(dev))
        return np.asarray(self.phones)[logits[0].argmax(0).cpu().numpy()]

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {"centroids": self.centroids.numpy(), "mel_mean": self.mean.numpy(), "mel_std": self.std.numpy(),
               "phones": np.asarray(self.phones, dtype=str)}
        out.update({f"classifier.{k}": v.detach().cpu().numpy() for k, v in self.model.state_dict().items()})
        return out

    def _restore(self, arrays: dict[str, np.ndarray], manifest: dict) -> None:
        self.centroids = torch.from_numpy(arrays["centroids"])
        self.mean, self.std = torch.from_numpy(arrays["mel_mean"]), torch.from_numpy(arrays["mel_std"])
        self.phones = arrays["phones"].tolist()
        self.model = FrameClassifier(len(self.phones), **self.arch)
        state = {k.removeprefix("classifier."): torch.from_numpy(v) for k, v in arrays.items()
                 if k.startswith("classifier.")}
        self.model.load_state_dict(state)
        self.model.eval().to(self.device)
