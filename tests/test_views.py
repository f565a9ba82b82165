"""The modality registry and the views built from one corpus."""

import json

import numpy as np
import pytest

from modevo.config import load
from modevo.corpus import synth
from modevo.errors import ConfigError
from modevo.views.build import ViewsStageConfig, build_views, load_view
from modevo.views.encode import dedup, make_encoder
from modevo.views.registry import FACTORS, factor_pairs, factors_of, parse_view

needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")
NON_SPEECH = ["text-bpe", "text-char", "phone-bpe", "phone", "phone-repeat@mean", "phone-repeat@fixed",
              "phone-repeat@varied"]


def test_parse_views_and_aliases():
    assert parse_view("speech-varied").name == "speech@varied/mel-kmeans"
    assert parse_view("speech@fixed/phonetic-kmeans").tokenizer == "phonetic-kmeans"
    assert parse_view("phone-repeat@mean").rendering == "mean"
    assert parse_view("phone").paper_name == "Phone-Raw"
    with pytest.raises(ConfigError, match="unknown view 'phone-repet@varied'; did you mean 'phone-repeat@varied'"):
        parse_view("phone-repet@varied")
    with pytest.raises(ConfigError, match="needs a rendering"):
        parse_view("phone-repeat")


def test_misspelt_view_in_config_is_one_line():
    with pytest.raises(ConfigError, match="did you mean 'text-char'"):
        load(ViewsStageConfig, None, ["views.views=[text-chr]"])


def test_factor_pairs_are_defined_once():
    assert [(a.name, b.name) for a, b in factor_pairs("A")] == [("text-bpe", "phone-bpe"), ("text-char", "phone")]
    assert factors_of(parse_view("phone")) == ["A", "B"]
    assert factors_of(parse_view("speech-varied")) == ["C"]
    assert set(FACTORS) == {"A", "B", "C"}


def test_dedup():
    assert dedup(np.array([3, 3, 4, 4, 4, 3, 5])).tolist() == [3, 4, 3, 5]


@pytest.fixture
def views_cfg(novels, tmp_path):
    return load(ViewsStageConfig, None, [
        f"corpus.source.paths=[{novels}]", "corpus.source.max_sentences_per_document=30", "corpus.num_proc=1",
        "corpus.split.chunk_sentences=5", f"units.tokenizers_dir={tmp_path / 'tok'}", "views.text_bpe_vocab=60",
        "views.phone_bpe_candidates=[50,60,80]", "units.k=8", "units.max_train_frames=20000", "units.iterations=5"])


@needs_espeak
def test_views_round_trip_lengths_and_one_row(views_cfg, cache):
    roots = build_views(views_cfg, NON_SPEECH, progress=False)
    views = {n: load_view(r) for n, r in roots.items()}
    ids = views["phone"].ids
    assert all(v.ids == ids for v in views.values())  # every view of one utterance comes from one row
    from modevo.corpus.build import load_corpus, load_manifest
    from modevo.corpus.render import build_rendering, load_rendering

    _, corpus = load_manifest(views_cfg.corpus)
    rows = load_corpus(corpus)
    rend = load_rendering(build_rendering(views_cfg.corpus, "varied", progress=False))
    for i in range(0, len(ids), 7):
        row = rows[i]
        assert rows[i]["id"] == ids[i] == rend[i]["id"]
        # invertible views round-trip
        assert "".join(views["text-char"].vocab[t] for t in views["text-char"].utterance(i)) == "".join(row["words"])
        assert [views["phone"].vocab[t] for t in views["phone"].utterance(i)] == [p for w in row["phones"] for p in w]
        # phone-repeat@varied has exactly the rendering's frames (a 0-frame phone still appears once)
        assert len(views["phone-repeat@varied"].utterance(i)) == sum(max(1, f) for f in rend[i]["frames"])
        # dedup of phone-repeat gives back the phones (up to repeated identical neighbours)
        assert dedup(views["phone-repeat@varied"].utterance(i)).tolist() == dedup(views["phone"].utterance(i)).tolist()
    # BPE decodes back to its input
    enc = make_encoder(parse_view("text-bpe"), views_cfg.views, bpe_folder=views["text-bpe"].manifest["bpe_model"])
    for i in range(0, len(ids), 11):
        pieces = views["text-bpe"].utterance(i).astype(int) - 1
        assert enc.sp.decode(pieces.tolist()) == "".join(rows[i]["words"])
    # the length ladder
    tok = {n: v.manifest["tokens"] for n, v in views.items()}
    assert tok["text-bpe"] < tok["text-char"] and tok["phone-bpe"] < tok["phone"] < tok["phone-repeat@varied"]


@needs_espeak
def test_views_are_cached_and_deterministic(views_cfg, cache, tmp_path, monkeypatch):
    a = build_views(views_cfg, ["phone-bpe", "phone-repeat@mean"], progress=False)
    assert build_views(views_cfg, ["phone-bpe", "phone-repeat@mean"], progress=False) == a
    monkeypatch.setenv("MODEVO_CACHE", str(tmp_path / "again"))
    b = build_views(views_cfg, ["phone-bpe", "phone-repeat@mean"], progress=False)
    for name in a:
        ma = json.loads((a[name] / "manifest.json").read_text())
        mb = json.loads((b[name] / "manifest.json").read_text())
        assert ma["content_hash"] == mb["content_hash"]


@needs_espeak
def test_word_boundaries_and_stress_settings(views_cfg, cache):
    import dataclasses

    cfg = dataclasses.replace(views_cfg, views=dataclasses.replace(views_cfg.views, word_boundaries=True, stress=True))
    roots = build_views(cfg, ["text-char", "phone", "phone-repeat@fixed"], progress=False)
    phone = load_view(roots["phone"])
    assert "|" in phone.vocab and "AH0" in phone.vocab and len(phone.vocab) == 1 + 24 + 45 + 1
    char = load_view(roots["text-char"])
    assert " " in char.vocab
    rep = load_view(roots["phone-repeat@fixed"])
    bar = rep.vocab.index("|")
    # a boundary token carries no duration: it appears once per word gap
    for i in range(0, len(rep.ids), 9):
        assert (rep.utterance(i) == bar).sum() == (phone.utterance(i) == phone.vocab.index("|")).sum()
