"""Each tokenizer: ids in [0, vocab) at its frame rate, identical across runs and after save/load.

HuBERT and EnCodec run on tiny random-init configs saved with save_pretrained (no weights can be had here).
"""

import importlib.util
import json
import math

import numpy as np
import pytest

from modevo.errors import InputError, MissingToolError
from modevo.units import quality
from modevo.units.config import FrameClassifierConfig, UnitsConfig
from modevo.units.features import frame_labels
from modevo.units.registry import load_tokenizer, make_tokenizer
from tests.test_units_fakes import fake_set, tiny_encodec, tiny_hubert, utterances

needs_transformers = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                                        reason="transformers not installed (needed for HuBERT and EnCodec)")

SMALL = dict(k=12, iterations=8, max_train_frames=20000)
CLASSIFIER = FrameClassifierConfig(channels=32, layers=2, kernel=3, epochs=30, lr=5e-3, batch_windows=4, window_frames=32)


@pytest.fixture(scope="module")
def train():
    return fake_set(16)


@pytest.fixture(scope="module")
def heldout():
    return fake_set(4, seed0=1000)


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory):
    return tiny_hubert(tmp_path_factory.mktemp("hubert"))


@pytest.fixture(scope="module")
def encodec_dir(tmp_path_factory):
    return tiny_encodec(tmp_path_factory.mktemp("encodec"))


def configs(hubert_dir, encodec_dir):
    return {
        "mel-kmeans": UnitsConfig(tokenizer="mel-kmeans", **SMALL),
        "phonetic-kmeans": UnitsConfig(tokenizer="phonetic-kmeans", classifier=CLASSIFIER, **SMALL),
        "hubert-kmeans": UnitsConfig(tokenizer="hubert-kmeans", weights=str(hubert_dir), layer=1, **SMALL),
        "encodec": UnitsConfig(tokenizer="encodec", weights=str(encodec_dir)),
    }


@pytest.mark.parametrize("name", ["mel-kmeans", "phonetic-kmeans", pytest.param("hubert-kmeans", marks=needs_transformers),
                                  pytest.param("encodec", marks=needs_transformers)])
def test_tokenizer_rate_range_determinism_and_save_load(name, train, heldout, hubert_dir, encodec_dir, tmp_path):
    cfg = configs(hubert_dir, encodec_dir)[name]
    tok = make_tokenizer(cfg).fit(utterances(train))
    rate = 75.0 if name == "encodec" else 50.0
    assert tok.frame_rate_hz == rate
    assert tok.vocab_size == (64 if name == "encodec" else 12)
    audio = heldout[0][0]
    units = tok.encode(audio)
    assert units.dtype == np.int64 and units.ndim == 1
    assert len(units) == tok.n_frames(len(audio)) == math.ceil(len(audio) / 16000 * rate - 1e-9)
    assert units.min() >= 0 and units.max() < tok.vocab_size
    assert np.array_equal(units, tok.encode(audio))
    tok.save(tmp_path / "a")
    again = load_tokenizer(tmp_path / "a")
    assert type(again) is type(tok) and again.vocab_size == tok.vocab_size
    for a, _ in heldout:
        assert np.array_equal(again.encode(a), tok.encode(a))
    # a second training run from the same data and seed gives the same artefacts, hence the same hash
    if name != "hubert-kmeans":  # (same code path as mel-kmeans; skipped to keep the suite fast)
        twin = make_tokenizer(cfg).fit(utterances(train))
        assert twin.save(tmp_path / "b")["content_hash"] == json.loads((tmp_path / "a" / "manifest.json").read_text())["content_hash"]


@needs_transformers
def test_encodec_units_are_the_models_first_codebook(encodec_dir, heldout):
    import torch

    from modevo.units.features import to_float
    from modevo.units.resample import resample

    tok = make_tokenizer(UnitsConfig(tokenizer="encodec", weights=str(encodec_dir)))
    audio = heldout[1][0]
    x = resample(to_float(audio), 16000, 24000).view(1, 1, -1)
    with torch.no_grad():
        codes = tok.model.encode(x, bandwidth=tok.model.config.target_bandwidths[0]).audio_codes  # (1, 1, nq, T)
    assert np.array_equal(tok.encode(audio), codes[0, 0, 0].numpy())
    second = make_tokenizer(UnitsConfig(tokenizer="encodec", weights=str(encodec_dir), codebook=1)).encode(audio)
    assert np.array_equal(second, codes[0, 0, 1].numpy())


def test_kmeans_units_are_phonetic_on_easy_fake_speech(train, heldout):
    """Sanity, not a benchmark: fake phones are pure chords, so both k-means tokenizers find them."""
    for cfg in (UnitsConfig(tokenizer="mel-kmeans", **SMALL),
                UnitsConfig(tokenizer="phonetic-kmeans", classifier=CLASSIFIER, **SMALL)):
        tok = make_tokenizer(cfg).fit(utterances(train))
        counts = {}
        for a, row in heldout:
            u = tok.encode(a)
            quality.add_counts(counts, quality.joint_counts(frame_labels(row, len(u)), u))
        q = quality.scores(counts)
        assert q["pnmi"] > 0.6 and q["phone_purity"] > 0.75, (cfg.tokenizer, q)


def test_changed_artefact_or_manifest_is_refused(train, tmp_path):
    tok = make_tokenizer(UnitsConfig(tokenizer="mel-kmeans", **SMALL)).fit(utterances(train))
    tok.save(tmp_path / "t")
    np.save(tmp_path / "t" / "centroids.npy", np.zeros((12, 80), np.float32))
    with pytest.raises(InputError, match="changed since training"):
        load_tokenizer(tmp_path / "t")
    tok.save(tmp_path / "u")
    m = json.loads((tmp_path / "u" / "manifest.json").read_text())
    m["params"]["k"] = 13
    (tmp_path / "u" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match="edited after training"):
        load_tokenizer(tmp_path / "u")
    with pytest.raises(InputError, match="manifest.json is missing"):
        load_tokenizer(tmp_path / "nothing")


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("name", ["hubert-kmeans", "encodec"])
def test_missing_weights_folder_is_one_clear_line(name, tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(MissingToolError) as err:
        make_tokenizer(UnitsConfig(tokenizer=name, weights=str(missing)))
    msg = _one_line(err)
    assert str(missing) in msg and "config.json" in msg and "does not exist" in msg
    with pytest.raises(MissingToolError) as err:
        make_tokenizer(UnitsConfig(tokenizer=name))
    assert "weights=" in _one_line(err)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingToolError) as err:
        make_tokenizer(UnitsConfig(tokenizer=name, weights=str(empty)))
    assert "no config.json" in _one_line(err)


@needs_transformers
def test_wrong_model_type_is_one_clear_line(hubert_dir, encodec_dir, tmp_path):
    with pytest.raises(MissingToolError) as err:
        make_tokenizer(UnitsConfig(tokenizer="encodec", weights=str(hubert_dir)))
    msg = _one_line(err)
    assert str(hubert_dir) in msg and "'hubert'" in msg and "expected 'encodec'" in msg
    with pytest.raises(MissingToolError) as err:
        make_tokenizer(UnitsConfig(tokenizer="hubert-kmeans", weights=str(encodec_dir)))
    assert "expected 'hubert'" in _one_line(err)
    no_weights = tmp_path / "config-only"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(json.dumps({"model_type": "hubert"}))
    with pytest.raises(MissingToolError) as err:
        make_tokenizer(UnitsConfig(tokenizer="hubert-kmeans", weights=str(no_weights)))
    assert "no model.safetensors" in _one_line(err)


@needs_transformers
def test_hubert_layer_out_of_range(hubert_dir):
    with pytest.raises(InputError, match="layer=5 is out of range"):
        make_tokenizer(UnitsConfig(tokenizer="hubert-kmeans", weights=str(hubert_dir), layer=5))


@needs_transformers
def test_hubert_features_are_the_models_hidden_states(hubert_dir, heldout):
    """Dropping the blocks above the chosen layer and padding to ceil(n / 320) frames changes nothing."""
    import torch
    from transformers import HubertModel

    from modevo.units.features import to_float

    full = HubertModel.from_pretrained(str(hubert_dir)).eval()
    audio = heldout[2][0][: 320 * 40]  # a whole number of frames: no padding beyond the model's own
    x = torch.nn.functional.pad(to_float(audio), (0, 80)).unsqueeze(0)
    with torch.no_grad():
        want = full(x, output_hidden_states=True).hidden_states
    for layer in (0, 1, 2):
        tok = make_tokenizer(UnitsConfig(tokenizer="hubert-kmeans", weights=str(hubert_dir), layer=layer))
        got = tok.features(audio)
        assert got.shape == (40, 32)
        assert torch.allclose(got, want[layer][0], atol=1e-5)


def test_collected_and_stacked_frames_are_the_same_frames(train):
    import torch

    from modevo.units.features import log_mel
    from modevo.units.mel_kmeans import collect_frames, stack_frames

    utts = utterances(train)
    per_utt = sum(len(log_mel(u.audio)) for u in utts[:2])
    cap = per_utt + 7  # ends partway into the third utterance
    feats, labels = collect_frames(utts, cap, log_mel)
    stacked = stack_frames(utts, cap, log_mel, feats[0].shape[1])
    assert len(feats) == 3 and len(feats[2]) == 7 and sum(map(len, feats)) == len(stacked) == cap
    assert torch.equal(torch.cat(feats), stacked)
    assert [len(lab) for lab in labels] == [len(f) for f in feats]
    with pytest.raises(ValueError, match="no training frames"):
        stack_frames([], cap, log_mel, feats[0].shape[1])
