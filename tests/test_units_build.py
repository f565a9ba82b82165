"""The units stage end to end on a real text corpus with fake renderings (render.py's layout, fake audio)."""

import json
from pathlib import Path

import numpy as np
import pytest

from modevo.config import load
from modevo.corpus.build import build, load_corpus
from modevo.corpus.config import CorpusConfig
from modevo.errors import ConfigError, InputError
from modevo.units.build import encode_rendering, load_units, select_training, train_tokenizer, units_paths
from modevo.units.config import UnitsConfig
from modevo.units.features import n_frames
from tests.test_units_fakes import write_fake_rendering


@pytest.fixture
def corpus(novels, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("MODEVO_TOKENIZERS", str(tmp_path / "tokenizers"))
    cfg = load(CorpusConfig, None, [f"source.paths=[{novels}]", "source.max_sentences_per_document=12",
                                    "split.chunk_sentences=4", "num_proc=1"])
    paths = build(cfg, progress=False)
    return cfg, paths


def units_cfg(**kw):
    return UnitsConfig(**{"k": 16, "iterations": 10, "max_train_frames": 2000, **kw})


def test_train_encode_score_and_reuse(corpus, tmp_path):
    cfg, cpaths = corpus
    fixed, varied = write_fake_rendering(cpaths, "fixed", 0), write_fake_rendering(cpaths, "varied", 1)
    ucfg = units_cfg()
    folder = train_tokenizer(ucfg, cfg, [fixed, varied], progress=False)
    assert folder.parent == tmp_path / "tokenizers" / "mel-kmeans"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["trained_on"]["renderings"]) == {"fixed", "varied"}
    assert manifest["trained_on"]["frames"] >= 2000 and manifest["stage_version"] == "units-1"
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert train_tokenizer(ucfg, cfg, [fixed, varied], progress=False) == folder  # cached
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp
    assert train_tokenizer(units_cfg(k=17), cfg, [fixed, varied], progress=False) != folder
    assert train_tokenizer(ucfg, cfg, [fixed], progress=False) != folder  # per-rendering codebook

    out = encode_rendering(cfg, fixed, folder, progress=False)
    assert out.root.parent == fixed.root / "units"
    units = load_units(out)
    corpus_ids = load_corpus(cpaths)["id"]
    assert sorted(units["id"]) == sorted(corpus_ids)
    import datasets

    rows = datasets.load_from_disk(str(fixed.shards / "00000" / "data"))
    n_samples = dict(zip(rows["id"], rows["n_samples"]))
    for r in units:
        if r["id"] in n_samples:
            assert len(r["units"]) == n_frames(n_samples[r["id"]])
        assert 0 <= min(r["units"]) and max(r["units"]) < 16
    q = json.loads(out.quality.read_text())
    assert q["split"] == "valid+test" and q["speech"]["frames"] > 0 and 0 < q["speech"]["pnmi"] <= 1
    assert q["with_silence"]["frames"] > q["speech"]["frames"]
    assert json.loads(out.manifest.read_text())["quality"] == q


def test_encode_resumes_from_finished_shards_and_matches(corpus):
    cfg, cpaths = corpus
    fixed = write_fake_rendering(cpaths, "fixed", 0)
    folder = train_tokenizer(units_cfg(), cfg, [fixed], progress=False)
    out = encode_rendering(cfg, fixed, folder, progress=False)
    first = {r["id"]: r["units"] for r in load_units(out)}
    content = json.loads(out.manifest.read_text())["content_hash"]
    # a killed run: the manifest and one shard are missing, a temporary is left behind
    import shutil

    out.manifest.unlink()
    shutil.rmtree(out.shards / "00001")
    (out.shards / ".00001.tmp-1-dead").mkdir()
    assert units_paths(fixed, folder) == out
    again = encode_rendering(cfg, fixed, folder, progress=False)
    assert again == out and json.loads(out.manifest.read_text())["content_hash"] == content
    assert {r["id"]: r["units"] for r in load_units(out)} == first
    assert not list(out.shards.glob(".*"))


def test_training_sample_is_train_split_and_seeded(corpus):
    cfg, cpaths = corpus
    fixed, varied = write_fake_rendering(cpaths, "fixed", 0), write_fake_rendering(cpaths, "varied", 1)
    split = dict(zip(*(load_corpus(cpaths)[c] for c in ("id", "split"))))
    a = select_training(cpaths, [fixed, varied], 1500, seed=0)
    assert a == select_training(cpaths, [fixed, varied], 1500, seed=0)
    chosen = [(r, i) for (r, _), ids in a["chosen"].items() for i in ids]
    assert {r for r, _ in chosen} == {0, 1}  # both renderings contribute
    assert all(split[i] == "train" for _, i in chosen)
    assert a["frames"] >= 1500
    everything = select_training(cpaths, [fixed], 10**9, seed=0)
    assert everything["utterances"] == sum(s == "train" for s in split.values())
    assert select_training(cpaths, [fixed, varied], 1500, seed=1)["chosen"] != a["chosen"]


def test_unbuilt_rendering_and_config_errors(corpus, tmp_path):
    cfg, cpaths = corpus
    from modevo.corpus.render import RenderingPaths

    with pytest.raises(InputError, match="rendering 'ghost' is not built"):
        train_tokenizer(units_cfg(), cfg, [RenderingPaths("ghost", tmp_path / "nowhere")], progress=False)
    with pytest.raises(ConfigError, match="did you mean 'phonetic-kmeans'"):
        load(UnitsConfig, None, ["tokenizer=phonetic-kmean"])
    with pytest.raises(ConfigError, match="kernel must be a positive odd number"):
        load(UnitsConfig, None, ["classifier.kernel=4"])
    assert load(UnitsConfig, None, ["k=64", "classifier.epochs=1"]).classifier.epochs == 1
    assert np.int64(load(UnitsConfig).k) == 500


def test_build_units_shares_a_codebook_unless_per_rendering(corpus, monkeypatch):
    from modevo.corpus import render
    from modevo.units.build import build_units

    cfg, cpaths = corpus
    fakes = {n: write_fake_rendering(cpaths, n, i) for i, n in enumerate(["fixed", "varied", "heldout"])}
    monkeypatch.setattr(render, "rendering_paths", lambda c, corpus, m, name: (fakes[name], {}))
    shared = build_units(units_cfg(renderings=["fixed", "varied", "heldout"]), cfg, progress=False)
    folders = {n: json.loads(p.manifest.read_text())["tokenizer_folder"] for n, p in shared.items()}
    assert len(set(folders.values())) == 1  # heldout (role eval) is encoded with the train renderings' codebook
    trained_on = json.loads((Path(folders["fixed"]) / "manifest.json").read_text())["trained_on"]
    assert set(trained_on["renderings"]) == {"fixed", "varied"}
    own = build_units(units_cfg(renderings=["fixed", "varied", "heldout"], per_rendering=True), cfg, progress=False)
    folders = {n: json.loads(p.manifest.read_text())["tokenizer_folder"] for n, p in own.items()}
    assert folders["fixed"] != folders["varied"] and folders["heldout"] not in (folders["fixed"], folders["varied"])


def _has_espeak():
    from modevo.corpus import synth

    return synth.backend_available("espeak")


@pytest.mark.skipif(not _has_espeak(), reason="espeak-ng not installed")
def test_real_rendering_units_line_up_with_phone_frames(corpus):
    """With a synthesiser: units of a real rendering have one unit per 50 Hz frame and the frame labels
    cover exactly the frames render.py counts per phone."""
    from modevo.corpus.render import build_rendering, load_rendering
    from modevo.corpus.synth import frame_index
    from modevo.units.build import build_units
    from modevo.units.features import frame_labels

    cfg, cpaths = corpus
    rendering = build_rendering(cfg, "fixed", progress=False)
    out = build_units(units_cfg(renderings=["fixed"]), cfg, progress=False)["fixed"]
    units = {r["id"]: r["units"] for r in load_units(out)}
    text = {r["id"]: r["phones"] for r in load_corpus(cpaths)}
    rows = load_rendering(rendering)
    for r in rows:
        t = n_frames(r["n_samples"])
        assert len(units[r["id"]]) == t
        labels = frame_labels(r, t, text[r["id"]])
        starts = np.asarray(r["start_ms"], np.float64)
        ends = starts + np.asarray(r["durations_ms"], np.float64)
        # one frame rule everywhere: the labels own exactly the frames the rendering stored, phone by phone
        frames = frame_index(ends) - frame_index(starts)
        assert frames.tolist() == list(r["frames"])
        assert (labels != "SIL").sum() == frames.sum()
    q = json.loads(out.quality.read_text())["speech"]
    assert q["pnmi"] > 0.1  # far from chance even for 16 mel clusters on a few sentences
