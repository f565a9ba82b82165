"""Synthetic 'speech' for the units tests (no synthesiser needed), and a check that it is what it claims.

Each fake phone is a fixed chord of two sines (a crude formant pair); an utterance is leading silence, phones
of uneven durations (not multiples of 20 ms), pauses between words and trailing silence, with a rendering-
style row (start_ms, durations_ms, phones, n_samples) describing it exactly.
"""

from __future__ import annotations

import json

import numpy as np

from modevo.units.features import SAMPLE_RATE

PHONES = {"AA": (700, 1200), "IY": (300, 2300), "UW": (320, 900), "S": (5000, 6500), "M": (250, 1500),
          "T": (3000, 4200), "K": (1800, 2600), "EH": (550, 1800)}


def fake_utterance(seed: int, n_words: int = 4, utt_id: str | None = None) -> tuple[np.ndarray, dict]:
    """(int16 audio, rendering-style row) for one synthetic utterance."""
    rng = np.random.RandomState(seed)
    names = sorted(PHONES)
    words = [[names[rng.randint(len(names))] for _ in range(rng.randint(1, 4))] for _ in range(n_words)]
    t = float(rng.randint(60, 140))  # leading silence, ms
    chunks = [np.zeros(int(round(t * 16)), np.float64)]
    starts, durs, pauses = [], [], []
    for w, word in enumerate(words):
        for p in word:
            d = float(rng.randint(35, 160))
            n = int(round(d * 16))
            k = np.arange(n) / SAMPLE_RATE
            f1, f2 = PHONES[p]
            chunks.append(0.3 * np.sin(2 * np.pi * f1 * k) + 0.2 * np.sin(2 * np.pi * f2 * k)
                          + 0.01 * rng.randn(n))
            starts.append(t)
            durs.append(n / 16.0)
            t += n / 16.0
        pause = float(rng.choice([0, 0, 30, 70])) if w < n_words - 1 else 0.0
        chunks.append(np.zeros(int(round(pause * 16))))
        pauses.append(pause)
        t += int(round(pause * 16)) / 16.0
    chunks.append(np.zeros(int(round(rng.randint(60, 140) * 16))))
    audio = (np.concatenate(chunks) * 32767).astype(np.int16)
    row = {"id": utt_id or f"fake/{seed:06d}", "phones": words, "start_ms": starts, "durations_ms": durs,
           "word_pause_ms": pauses, "n_samples": len(audio)}
    return audio, row


def fake_set(n: int, seed0: int = 0) -> list[tuple[np.ndarray, dict]]:
    return [fake_utterance(seed0 + i) for i in range(n)]


def utterances(pairs):
    """Utterance objects (audio + 50 Hz labels) for a tokenizer's fit()."""
    from modevo.units.base import Utterance
    from modevo.units.features import frame_labels, n_frames

    return [Utterance(a, frame_labels(r, n_frames(len(a))), r["id"]) for a, r in pairs]


def tiny_hubert(folder):
    from transformers import HubertConfig, HubertModel

    cfg = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    import torch

    torch.manual_seed(0)
    HubertModel(cfg).save_pretrained(folder)
    return folder


def tiny_encodec(folder):
    from transformers import EncodecConfig, EncodecModel

    cfg = EncodecConfig(num_filters=4, hidden_size=16, codebook_size=64, codebook_dim=16, num_lstm_layers=1)
    import torch

    torch.manual_seed(0)
    EncodecModel(cfg).save_pretrained(folder)
    return folder


def write_fake_rendering(corpus_paths, name: str, seed: int = 0, drop_flac: bool = False):
    """A rendering of a real (text) corpus in render.py's layout, with fake audio for each row's phones.

    Durations follow the corpus row's phones, so frame labels, splits and ids are all the real thing.
    """
    import datasets
    import soundfile as sf

    from modevo.cache import stable_hash
    from modevo.corpus.render import RenderingPaths

    manifest = json.loads(corpus_paths.manifest.read_text())
    paths = RenderingPaths(name, corpus_paths.root / "renderings" / f"{name}-fake{seed}")
    hashes = []
    for i in range(manifest["shards"]):
        rows = datasets.load_from_disk(str(corpus_paths.shards / f"{i:05d}" / "data"))
        recs, chunks = [], []
        for j, r in enumerate(rows):
            audio, fake = _audio_for(r["phones"], seed * 100003 + i * 1009 + j)
            fake["id"] = r["id"]
            recs.append(fake)
            chunks.append(audio)
        folder = paths.shards / f"{i:05d}"
        folder.mkdir(parents=True)
        cols = {k: [rec[k] for rec in recs] for k in ("id", "start_ms", "durations_ms", "n_samples")}
        f = datasets.Features({"id": datasets.Value("string"), "start_ms": datasets.Sequence(datasets.Value("float32")),
                               "durations_ms": datasets.Sequence(datasets.Value("float32")),
                               "n_samples": datasets.Value("int64")})
        datasets.Dataset.from_dict(cols, features=f).save_to_disk(str(folder / "data"))
        paths.audio.mkdir(parents=True, exist_ok=True)
        if chunks and not drop_flac:
            sf.write(str(paths.audio / f"{i:05d}.flac"), np.concatenate(chunks), SAMPLE_RATE, "PCM_16", format="FLAC")
        hashes.append(stable_hash(cols, 64))
    paths.manifest.write_text(json.dumps({"name": name, "shards": manifest["shards"],
                                          "content_hash": stable_hash(hashes, 64)}))
    return paths


def _audio_for(words, seed):
    """Fake audio whose phones are the given ARPAbet words (unknown phones get a seeded chord)."""
    rng = np.random.RandomState(seed)
    t, chunks, starts, durs = 80.0, [np.zeros(80 * 16)], [], []
    for w, word in enumerate(words):
        for p in word:
            f1, f2 = PHONES.get(p, (200 + 97 * (sum(map(ord, p)) % 60), 1000 + 131 * (sum(map(ord, p)) % 40)))
            n = int(rng.randint(40, 140) * 16 + rng.randint(16))
            k = np.arange(n) / SAMPLE_RATE
            chunks.append(0.3 * np.sin(2 * np.pi * f1 * k) + 0.2 * np.sin(2 * np.pi * f2 * k) + 0.01 * rng.randn(n))
            starts.append(t)
            durs.append(n / 16.0)
            t += n / 16.0
        gap = 40 * 16 if w < len(words) - 1 else 0
        chunks.append(np.zeros(gap))
        t += gap / 16.0
    chunks.append(np.zeros(100 * 16))
    audio = (np.concatenate(chunks) * 32767).astype(np.int16)
    return audio, {"start_ms": starts, "durations_ms": durs, "n_samples": len(audio)}


def test_fake_rows_describe_their_audio():
    audio, row = fake_utterance(3)
    ends = np.asarray(row["start_ms"]) + np.asarray(row["durations_ms"])
    assert ends[-1] < row["n_samples"] / 16.0
    assert (np.diff(row["start_ms"]) > 0).all()
    first = int(round(row["start_ms"][0] * 16))
    assert np.abs(audio[:first]).max() == 0 and np.abs(audio[first:first + 160]).max() > 1000
    assert sum(len(w) for w in row["phones"]) == len(row["start_ms"])
