"""Speech units at 50 Hz / n: k-means tokenizers pool n 50 Hz feature frames before k-means, and the rate
threads through params, keys, folders and unit quality without changing anything at 50 Hz."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from modevo.config import load
from modevo.corpus.build import build
from modevo.corpus.config import CorpusConfig
from modevo.errors import ConfigError, InputError
from modevo.units import kmeans, quality
from modevo.units.base import pool_frames
from modevo.units.config import FrameClassifierConfig, UnitsConfig
from modevo.units.features import SILENCE, flat_phones, frame_labels, log_mel, n_frames, norm_stats
from modevo.units.registry import load_tokenizer, make_tokenizer, tokenizer_params
from tests.test_units_fakes import fake_set, tiny_hubert, utterances, write_fake_rendering

needs_transformers = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                                        reason="transformers not installed (needed for HuBERT)")

SMALL = dict(k=12, iterations=8, max_train_frames=20000)
CLASSIFIER = FrameClassifierConfig(channels=32, layers=2, kernel=3, epochs=3, lr=5e-3, batch_windows=4,
                                   window_frames=32)


@pytest.fixture(scope="module")
def train():
    return fake_set(12)


@pytest.fixture(scope="module")
def audios():
    """Held-out utterances of many lengths, plus the edge cases: empty, one sample, one frame, three frames
    (a pool-2 partial last group)."""
    out = [a for a, _ in fake_set(6, seed0=500)]
    rng = np.random.default_rng(0)
    out += [np.zeros(0, np.int16), np.array([7], np.int16), (rng.standard_normal(320) * 3000).astype(np.int16),
            out[0][:3 * 320 - 5]]
    return out


# -- pooling ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t,pool", [(8, 2), (7, 2), (7, 3), (7, 4), (3, 5), (1, 2)])
def test_pooled_frames_are_the_mean_of_each_group_and_the_partial_last_one(t, pool):
    x = torch.randn(t, 5, generator=torch.Generator().manual_seed(t * 10 + pool))
    got = pool_frames(x, pool)
    assert got.shape == (math.ceil(t / pool), 5)
    want = [x[a:a + pool].double().mean(0).numpy() for a in range(0, t, pool)]  # the last group may be partial
    np.testing.assert_allclose(got.numpy(), np.stack(want), rtol=1e-6, atol=1e-7)
    assert pool_frames(x, 1) is x  # pool 1: the 50 Hz features themselves
    assert pool_frames(x[:0], pool).shape == (0, 5)


def test_tokenizer_pools_its_own_features_and_counts_frames(audios):
    tok = make_tokenizer(UnitsConfig(**SMALL), rate_hz=25.0)
    assert tok.frame_rate_hz == 25.0 and tok.pool == 2
    a = audios[0]
    mel = log_mel(a)
    pooled = tok.pooled(tok.features(a))
    assert len(pooled) == math.ceil(len(mel) / 2)
    np.testing.assert_allclose(pooled[-1].numpy(), mel[2 * (len(pooled) - 1):].mean(0).numpy(), rtol=1e-5, atol=1e-6)
    slow = make_tokenizer(UnitsConfig(**SMALL), rate_hz=12.5)
    for n in (0, 1, 319, 320, 321, 640, 641, 961, 1281, 16000, 16321):
        assert tok.n_frames(n) == math.ceil(n_frames(n) / 2)
        assert slow.n_frames(n) == math.ceil(n_frames(n) / 4)
        assert make_tokenizer(UnitsConfig(**SMALL)).n_frames(n) == n_frames(n)
    with pytest.raises(InputError, match="pool must be a whole number"):
        type(tok)(pool=0)


# -- training and encoding at 25 Hz ----------------------------------------------------------------------
def test_pool2_mel_kmeans_trains_on_pooled_frames_and_encodes_at_25hz(train, audios, tmp_path):
    tok = make_tokenizer(UnitsConfig(**SMALL), rate_hz=25.0).fit(utterances(train))
    # k-means saw each utterance's normalised log-mel pooled within the utterance, nothing else
    mels = [log_mel(a) for a, _ in train]
    mean, std = norm_stats(torch.cat(mels))
    x = torch.cat([pool_frames((m - mean) / std, 2) for m in mels])
    assert tok.stats["train_frames"] == len(x) == sum(math.ceil(len(m) / 2) for m in mels)
    assert torch.equal(tok.centroids, kmeans.run(x, 12, 8, 0).centroids)
    for a in audios:
        units = tok.encode(a)
        assert len(units) == tok.n_frames(len(a)) == math.ceil(n_frames(len(a)) / 2)
        assert units.dtype == np.int64 and (len(units) == 0 or (units.min() >= 0 and units.max() < 12))
    manifest = tok.save(tmp_path / "t")
    assert manifest["frame_rate_hz"] == 25.0 and manifest["params"]["pool"] == 2
    again = load_tokenizer(tmp_path / "t")
    assert again.frame_rate_hz == 25.0 and again.pool == 2
    assert np.array_equal(again.encode(audios[0]), tok.encode(audios[0]))


@pytest.mark.parametrize("name", ["mel-kmeans", "phonetic-kmeans"])
def test_encode_batch_equals_encode_one_by_one_at_pool2(name, train, audios):
    extra = {"classifier": CLASSIFIER} if name == "phonetic-kmeans" else {}
    tok = make_tokenizer(UnitsConfig(tokenizer=name, **SMALL, **extra), rate_hz=25.0).fit(utterances(train))
    assert tok.stats["train_frames"] == sum(math.ceil(n_frames(len(a)) / 2) for a, _ in train)
    alone = [tok.encode(a) for a in audios]
    assert [len(u) for u in alone] == [math.ceil(n_frames(len(a)) / 2) for a in audios]
    for bs in (1, 3, 16):
        got = tok.to("cpu", bs).encode_batch(audios)
        for a, b in zip(alone, got):
            np.testing.assert_array_equal(a, b)


@needs_transformers
def test_pool2_hubert_kmeans_trains_and_encodes_at_25hz(train, audios, tmp_path):
    cfg = UnitsConfig(tokenizer="hubert-kmeans", weights=str(tiny_hubert(tmp_path / "h")), layer=1, **SMALL)
    tok = make_tokenizer(cfg, rate_hz=25.0).fit(utterances(train[:6]))
    assert tok.frame_rate_hz == 25.0 and tok.params()["pool"] == 2
    assert tok.stats["train_frames"] == sum(math.ceil(n_frames(len(a)) / 2) for a, _ in train[:6])
    alone = [tok.encode(a) for a in audios]
    assert [len(u) for u in alone] == [math.ceil(n_frames(len(a)) / 2) for a in audios]
    for a, b in zip(alone, tok.to("cpu", 4).encode_batch(audios)):
        np.testing.assert_array_equal(a, b)


# -- keys, errors ----------------------------------------------------------------------------------------
def test_50hz_params_are_unchanged_and_other_rates_add_pool():
    for cfg in (UnitsConfig(), UnitsConfig(tokenizer="phonetic-kmeans"), UnitsConfig(kmeans_batch=4096),
                UnitsConfig(tokenizer="hubert-kmeans", weights="w"), UnitsConfig(tokenizer="encodec", weights="w")):
        assert tokenizer_params(cfg) == tokenizer_params(cfg, rate_hz=50.0)
        assert "pool" not in tokenizer_params(cfg)
    assert set(tokenizer_params(UnitsConfig())) == {"k", "iterations", "seed", "max_train_frames", "normalize"}
    assert tokenizer_params(UnitsConfig(), rate_hz=25.0) == {**tokenizer_params(UnitsConfig()), "pool": 2}
    assert tokenizer_params(UnitsConfig(tokenizer="hubert-kmeans", weights="w"), rate_hz=10.0)["pool"] == 5
    assert make_tokenizer(UnitsConfig()).params() == make_tokenizer(UnitsConfig(), rate_hz=50.0).params()
    assert "pool" not in make_tokenizer(UnitsConfig()).params()


def test_encodec_refuses_another_rate_in_one_line():
    cfg = UnitsConfig(tokenizer="encodec", weights="/nowhere")
    for call in (lambda: tokenizer_params(cfg, rate_hz=25.0), lambda: make_tokenizer(cfg, rate_hz=25.0)):
        with pytest.raises(ConfigError) as err:  # refused on the rate, before the weights are looked for
            call()
        msg = str(err.value)
        assert "\n" not in msg and "encodec" in msg and "25 Hz" in msg and "75 Hz" in msg


@pytest.mark.parametrize("rate", [30.0, 60.0, 0.0, 20.0])
def test_a_rate_that_is_not_50hz_over_n_is_one_clear_error(rate):
    with pytest.raises(ConfigError, match="not 50 Hz divided by a whole number") as err:
        tokenizer_params(UnitsConfig(), rate_hz=rate)
    assert "\n" not in str(err.value)


def test_cli_units_build_rate_errors_are_one_line(tmp_path, capsys):
    from modevo.cli import main

    assert main(["units", "build", "--rate", "30hz"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "30 Hz is not 50 Hz divided by a whole number" in err
    assert main(["units", "build", "--rate", "25", "--no-progress"]) == 2
    assert "<number>hz" in capsys.readouterr().err
    # a corpus source that does not exist: were the rate not checked first, this would fail on the corpus
    assert main(["units", "build", "--rate", "25hz", "--tokenizer", "encodec", "--no-progress",
                 f"corpus.source.paths=[{tmp_path / 'absent'}]", "units.weights=/nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "encodec cannot give units at 25 Hz" in err


# -- the stage: folders, manifests, quality at 40 ms -----------------------------------------------------
@pytest.fixture
def corpus(novels, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("MODEVO_TOKENIZERS", str(tmp_path / "tokenizers"))
    cfg = load(CorpusConfig, None, [f"source.paths=[{novels}]", "source.max_sentences_per_document=12",
                                    "split.chunk_sentences=4", "num_proc=1"])
    return cfg, build(cfg, progress=False)


def _rows(folder):
    import datasets

    return {r["id"]: r for r in datasets.load_from_disk(str(folder / "data"))}


def test_25hz_units_have_their_own_folders_manifest_and_40ms_quality(corpus, monkeypatch):
    from modevo.corpus import render
    from modevo.corpus.build import load_manifest
    from modevo.units.build import build_units, load_units, tokenizer_key

    cfg, cpaths = corpus
    fixed = write_fake_rendering(cpaths, "fixed", 0)
    monkeypatch.setattr(render, "rendering_paths", lambda c, corpus, m, name: (fixed, {}))
    ucfg = UnitsConfig(k=16, iterations=10, max_train_frames=2000, renderings=["fixed"])
    corpus_manifest, _ = load_manifest(cfg)
    key50, inputs50 = tokenizer_key(ucfg, corpus_manifest, [fixed])
    assert (key50, inputs50) == tokenizer_key(ucfg, corpus_manifest, [fixed], rate_hz=50.0)
    assert "pool" not in inputs50["params"]
    key25, inputs25 = tokenizer_key(ucfg, corpus_manifest, [fixed], rate_hz=25.0)
    assert key25 != key50 and inputs25["params"]["pool"] == 2

    at50 = build_units(ucfg, cfg, progress=False)["fixed"]
    at25 = build_units(ucfg, cfg, progress=False, rate_hz=25.0)["fixed"]
    m50, m25 = json.loads(at50.manifest.read_text()), json.loads(at25.manifest.read_text())
    assert at25.root != at50.root and at25.root.parent == at50.root.parent == fixed.root / "units"
    assert m50["frame_rate_hz"] == 50.0 and m25["frame_rate_hz"] == 25.0
    assert m25["tokenizer_folder"] != m50["tokenizer_folder"]
    assert m25["tokenizer_folder"].endswith(key25) and m50["tokenizer_folder"].endswith(key50)
    tok_manifest = json.loads((Path(m25["tokenizer_folder"]) / "manifest.json").read_text())
    assert tok_manifest["params"]["pool"] == 2 and tok_manifest["frame_rate_hz"] == 25.0

    # the 25 Hz units: ceil(n50 / 2) each, and their held-out counts are those of 40 ms phone labels
    units25 = {r["id"]: np.asarray(r["units"]) for r in load_units(at25)}
    counts40, counts20 = {}, {}
    for shard in range(m25["shards"]):
        rendering = _rows(fixed.shards / f"{shard:05d}")
        text = _rows(cpaths.shards / f"{shard:05d}")
        shard_counts = json.loads((at25.shards / f"{shard:05d}" / "meta.json").read_text())["heldout_counts"]
        want = {}
        for utt_id, row in rendering.items():
            u = units25[utt_id]
            assert len(u) == math.ceil(n_frames(row["n_samples"]) / 2)
            if text[utt_id]["split"] in ("valid", "test"):
                phones = flat_phones(text[utt_id]["phones"])
                quality.add_counts(want, quality.joint_counts(frame_labels(row, len(u), phones, 40.0), u))
                quality.add_counts(counts20, quality.joint_counts(frame_labels(row, len(u), phones, 20.0), u))
        assert quality.add_counts({}, shard_counts) == want
        quality.add_counts(counts40, want)
    assert counts40 and counts40 != counts20  # 20 ms labels would not line up with these units
    assert m25["quality"]["speech"] == quality.scores(quality.drop(counts40, (SILENCE,)))
    assert m25["frames"] == sum(len(u) for u in units25.values())
