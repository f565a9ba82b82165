"""Batched unit encoding gives the units of one-by-one encoding, whatever the batch size and workers.

mel-kmeans is exact (features bit-equal, so units equal). phonetic-kmeans and hubert-kmeans pad a batch and
mask the padding; their real frames agree with the lone utterance's up to floating-point rounding (convs and
attention over other lengths take other kernels), bounded here, and their units are equal. k-means runs
on a device and in mini-batches for K = 2048. CUDA-only paths are skipped without CUDA.
"""

import importlib.util
import json

import numpy as np
import pytest
import torch

from modevo.errors import InputError
from modevo.units import kmeans
from modevo.units.config import FrameClassifierConfig, UnitsConfig
from modevo.units.features import log_mel, log_mel_batch
from modevo.units.registry import make_tokenizer
from tests.test_units_fakes import fake_set, tiny_hubert, utterances

needs_transformers = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                                        reason="transformers not installed (needed for HuBERT)")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SMALL = dict(k=12, iterations=8, max_train_frames=20000)
CLASSIFIER = FrameClassifierConfig(channels=32, layers=2, kernel=3, epochs=5, lr=5e-3, batch_windows=4,
                                   window_frames=32)
FEATURE_ATOL = 1e-4  # padded-and-masked vs lone utterance, fp32 (measured ~1e-6)


@pytest.fixture(scope="module")
def train():
    return fake_set(12)


@pytest.fixture(scope="module")
def audios():
    """Held-out utterances of many lengths, plus the edge cases: empty, one sample, one frame exactly."""
    out = [a for a, _ in fake_set(9, seed0=500)]
    rng = np.random.default_rng(0)
    out += [np.zeros(0, np.int16), np.array([7], np.int16), (rng.standard_normal(320) * 3000).astype(np.int16),
            out[0][:1234]]
    return out


def test_log_mel_batch_rows_are_each_utterances_log_mel_exactly(audios):
    mel, ts = log_mel_batch(audios)
    assert mel.shape == (len(audios), max(ts), 80)
    for b, a in enumerate(audios):
        assert torch.equal(mel[b, :ts[b]], log_mel(a))


def _tok(name, train, **kw):
    extra = {"classifier": CLASSIFIER} if name == "phonetic-kmeans" else {}
    return make_tokenizer(UnitsConfig(tokenizer=name, **SMALL, **extra, **kw)).fit(utterances(train))


def test_mel_kmeans_batched_units_equal_one_by_one_exactly(train, audios):
    tok = _tok("mel-kmeans", train)
    alone = [tok.encode(a) for a in audios]
    for bs in (1, 3, 16):
        got = tok.to("cpu", bs).encode_batch(audios)
        assert [len(u) for u in got] == [tok.n_frames(len(a)) for a in audios]
        for a, b in zip(alone, got):
            np.testing.assert_array_equal(a, b)
        feats, ts = tok.features_batch(audios)
        for b, a in enumerate(audios):
            assert torch.equal(feats[b, :ts[b]], tok.features(a))


def _check_close_and_equal_units(tok, audios):
    """Features within FEATURE_ATOL of the lone utterance's, units equal, at several batch sizes."""
    alone = [tok.encode(a) for a in audios]
    for bs in (1, 4, 16):
        tok.to("cpu", bs)
        keep = [a for a in audios if len(a)]
        feats, ts = tok.features_batch(keep)
        for b, a in enumerate(keep):
            ref = tok.features(a)
            assert feats[b, :ts[b]].shape == ref.shape
            assert (feats[b, :ts[b]] - ref).abs().max() <= FEATURE_ATOL
        for a, b in zip(alone, tok.encode_batch(audios)):
            np.testing.assert_array_equal(a, b)


def test_phonetic_kmeans_batched_padding_is_masked(train, audios):
    tok = _tok("phonetic-kmeans", train)
    _check_close_and_equal_units(tok, audios)
    # without the mask, padding would reach the last frames of the shorter utterances through the convs
    mel, ts = log_mel_batch(audios[:2])
    short = int(np.argmin(ts))
    h_unmasked = tok.model(((mel - tok.mean) / tok.std).transpose(1, 2))[0].transpose(1, 2)
    ref = tok.features(audios[short])
    assert (h_unmasked[short, :ts[short]] - ref).abs().max() > 1e-3


@needs_transformers
def test_hubert_kmeans_batched_matches_one_by_one(train, audios, tmp_path):
    tok = _tok("hubert-kmeans", train[:6], weights=str(tiny_hubert(tmp_path / "hubert")), layer=1)
    _check_close_and_equal_units(tok, audios)


def test_precision_and_device_are_refused_in_one_line_where_they_cannot_run(tmp_path):
    with pytest.raises(InputError, match="hubert-kmeans and encodec only"):
        make_tokenizer(UnitsConfig(tokenizer="mel-kmeans", precision="bf16"))
    if importlib.util.find_spec("transformers") is not None:
        tok = make_tokenizer(UnitsConfig(tokenizer="hubert-kmeans", weights=str(tiny_hubert(tmp_path / "h")),
                                         layer=1, precision="bf16", **SMALL))
        assert tok.params()["precision"] == "bf16"
        with pytest.raises(InputError, match="only on CUDA"):
            tok.features(np.ones(640, np.int16))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            make_tokenizer(UnitsConfig(tokenizer="mel-kmeans")).to("cuda")
    assert make_tokenizer(UnitsConfig(tokenizer="mel-kmeans")).to("auto").device in ("cpu", "cuda")


def test_new_defaults_keep_tokenizer_params_as_before():
    """Full-batch Lloyd and fp32 add nothing to a tokenizer's params: cached tokenizers keep their keys."""
    from modevo.units.registry import tokenizer_params

    assert set(tokenizer_params(UnitsConfig())) == {"k", "iterations", "seed", "max_train_frames", "normalize"}
    assert tokenizer_params(UnitsConfig(kmeans_batch=4096))["kmeans_batch"] == 4096


# -- k-means on a device and in mini-batches ---------------------------------------------------------------
def test_lloyd_with_device_cpu_is_the_same_fit():
    x = torch.randn(3000, 8, generator=torch.Generator().manual_seed(1))
    a, b = kmeans.run(x, 20, 10, seed=3), kmeans.run(x, 20, 10, seed=3, device="cpu")
    assert torch.equal(a.centroids, b.centroids) and a.iterations == b.iterations
    assert all(h1 >= h2 for h1, h2 in zip(a.history, a.history[1:]))  # Lloyd never increases inertia


def test_minibatch_kmeans_k2048_runs_and_converges():
    """K = 2048 (the paper's) on random clustered data: every epoch lowers the inertia, well below the
    seeding's, and the fit is deterministic for a seed."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(256, 16, generator=gen) * 4
    x = centres[torch.randint(256, (40000,), generator=gen)] + torch.randn(40000, 16, generator=gen)
    km = kmeans.run(x, 2048, iters=4, seed=0, batch_size=8192)
    assert km.centroids.shape == (2048, 16) and km.iterations == 4 and len(km.history) == 5
    assert all(h1 > h2 for h1, h2 in zip(km.history, km.history[1:])), km.history
    assert km.history[-1] < 0.9 * km.history[0]
    assert km.mean_sq_distance == pytest.approx(kmeans.inertia_of(x, km.centroids))
    again = kmeans.run(x, 2048, iters=4, seed=0, batch_size=8192)
    assert torch.equal(km.centroids, again.centroids)


def test_minibatch_kmeans_tokenizer_records_epochs(train):
    tok = _tok("mel-kmeans", train, kmeans_batch=2000)
    assert tok.params()["kmeans_batch"] == 2000
    assert len(tok.stats["kmeans_inertia_per_epoch"]) == SMALL["iterations"] + 1


@needs_cuda
def test_kmeans_and_encoding_on_cuda(train, audios):
    x = torch.randn(20000, 16, generator=torch.Generator().manual_seed(0))
    km = kmeans.run(x, 2048, iters=3, seed=0, batch_size=8192, device="cuda")
    assert km.centroids.device.type == "cpu" and km.history[-1] < km.history[0]
    lloyd = kmeans.run(x, 256, iters=5, seed=0, device="cuda")
    assert lloyd.centroids.shape == (256, 16)
    tok = _tok("mel-kmeans", train)
    cpu = [tok.encode(a) for a in audios]
    gpu = tok.to("cuda", 8).encode_batch(audios)
    agree = np.mean(np.concatenate([a == b for a, b in zip(cpu, gpu) if len(a)]))
    assert agree > 0.99  # the GPU's FFT and matmul round differently: a rare near-tie frame may flip


# -- the stage: shards encoded in batches and by workers ----------------------------------------------------
@pytest.fixture
def corpus(novels, cache, tmp_path, monkeypatch):
    from modevo.config import load
    from modevo.corpus.build import build
    from modevo.corpus.config import CorpusConfig

    monkeypatch.setenv("MODEVO_TOKENIZERS", str(tmp_path / "tokenizers"))
    cfg = load(CorpusConfig, None, [f"source.paths=[{novels}]", "source.max_sentences_per_document=12",
                                    "split.chunk_sentences=4", "num_proc=1"])
    return cfg, build(cfg, progress=False)


def test_encode_rendering_same_content_for_any_batch_size_and_workers(corpus, tmp_path):
    import shutil

    from modevo.units.build import encode_rendering, load_units, train_tokenizer
    from tests.test_units_fakes import write_fake_rendering

    cfg, cpaths = corpus
    fixed = write_fake_rendering(cpaths, "fixed", 0)
    folder = train_tokenizer(UnitsConfig(k=16, iterations=10, max_train_frames=2000), cfg, [fixed], progress=False)
    runs = []
    for bs, workers in ((1, 1), (7, 1), (3, 2)):
        out = encode_rendering(cfg, fixed, folder, progress=False, batch_size=bs, num_workers=workers)
        manifest = json.loads(out.manifest.read_text())
        metas = [json.loads((out.shards / f"{i:05d}" / "meta.json").read_text()) for i in range(manifest["shards"])]
        runs.append((manifest["content_hash"], [m["content_hash"] for m in metas], manifest["quality"],
                     {r["id"]: r["units"] for r in load_units(out)}))
        shutil.rmtree(out.root)
    assert len({json.dumps(r[:3], sort_keys=True) for r in runs}) == 1
    assert runs[0][3] == runs[1][3] == runs[2][3]
    assert manifest["shards"] >= 2  # the workers run really had shards to share
