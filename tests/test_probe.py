"""`modevo probe`: linear probes of every layer, their controls, token alignment through the view family."""

import json

import numpy as np
import pytest

from conftest import novels_workspace, tiny_run_overrides, train_tiny
from modevo.cli import main
from modevo.score.probe import PROBES, ProbeConfig, fit_linear, phone_features, probe_layer

FAST = dict(max_positions=300, max_utterances=60, steps=20, n_boot=200, weight_decays=[1e-3, 1e-1])


def _blobs(n, n_classes, dim, seed, informative=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    if informative:  # the label itself, one-hot, in the first n_classes features; noise in the rest
        X[:, :n_classes] = np.eye(n_classes, dtype=np.float32)[y]
    return X, y


def test_a_probe_on_features_that_contain_the_label_reaches_100():
    X, y = _blobs(1200, 5, 24, 0)
    groups = np.arange(len(y)) // 6  # six positions per "utterance"
    Xte, yte = _blobs(600, 5, 24, 1)
    out = probe_layer(X, y, groups, Xte, yte, 5, ProbeConfig(**FAST), seed=0)
    assert out["correct"].mean() >= 0.99
    majority = (yte == np.bincount(y).argmax()).mean()
    assert abs(out["shuffled_correct"].mean() - majority) < 0.08  # shuffled labels: no better than the prior


def test_shuffled_and_uninformative_features_stay_at_majority():
    rng = np.random.default_rng(2)
    y = (rng.random(1500) < 0.7).astype(int)  # a 70/30 label; features carry nothing
    X = rng.normal(size=(1500, 16)).astype(np.float32)
    yte = (rng.random(800) < 0.7).astype(int)
    Xte = rng.normal(size=(800, 16)).astype(np.float32)
    acc = (fit_linear(X, y, 2, 1e-1, 30)(Xte) == yte).mean()
    assert abs(acc - (yte == 1).mean()) < 0.05


def test_phone_feature_table_covers_the_inventory():
    from modevo.corpus.phones import PHONES, VOWELS

    table = phone_features()
    assert set(table) == set(PHONES)
    assert {v["voicing"] for v in table.values()} == {"voiced", "voiceless"}
    assert all(table[v]["voicing"] == "voiced" and table[v]["manner"] in ("vowel", "diphthong") for v in VOWELS)
    assert table["P"] == {"place": "bilabial", "manner": "stop", "voicing": "voiceless"}


def test_probe_config_refuses_unknown_probe():
    from modevo.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown probe 'phones'"):
        ProbeConfig(probes=["phones"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "probe")


@pytest.fixture(scope="module")
def repeat_run(workdir):
    return train_tiny(workdir, "phone-repeat@varied")


@pytest.mark.parametrize("view", ["text-bpe", "text-char", "phone-bpe", "phone", "phone-repeat@varied",
                                  "phone-repeat@mean"])
def test_every_token_is_aligned_through_its_family(workdir, view):
    """The family's token_alignment labels exactly the tokens its encoder gives, word-finals in order."""
    _check_alignment(workdir, view)


@pytest.mark.slow
@pytest.mark.parametrize("view", ["speech@varied/mel-kmeans", "speech-dedup@varied/mel-kmeans",
                                  "speech-bpe@varied/mel-kmeans", "speech@varied/mel-kmeans:25hz",
                                  "interleaved@varied/mel-kmeans"])
def test_every_unit_is_aligned_through_its_family(workdir, view):
    """Units: each frame its phone by modevo.frames' rule, collapsed runs and unit BPE pieces alike."""
    _check_alignment(workdir, view)


def _check_alignment(workdir, view):
    from pathlib import Path

    from modevo.config import load
    from modevo.train.config import TrainStageConfig
    from modevo.views.build import ViewContext, encoder_and_inputs
    from modevo.views.registry import parse_view

    tmp, novels = workdir
    root = Path(__file__).resolve().parent.parent
    stage = load(TrainStageConfig, root / "configs/train/smoke.yaml", tiny_run_overrides(novels, tmp))
    ctx = ViewContext(stage, False)
    spec = parse_view(view)
    fam = spec.view_family
    enc, _, _ = encoder_and_inputs(spec, ctx)
    rendering = fam.row_rendering(spec)
    tokenizer = spec.tokenizer if fam.reads_units else None
    source = (ctx.rendered_rows(rendering, "train", tokenizer, spec.rate_hz) if fam.item_speech(spec)
              else ((r, None, None) for r in ctx.iter_rows("train")))
    n = 0
    for row, rend, units in source:
        ids = enc.encode_item(row, rendering=rend, units=units)  # probes read items, as the tasks hear them
        al = fam.token_alignment(spec, enc, row, rend, units)
        assert al is not None and len(al) == len(ids)
        n += 1
        finals = al.word_final()
        if fam.reads_units:  # a collapsed run or a piece may swallow a short word: in order, none twice
            assert al.word[finals].tolist() == sorted(set(al.word[finals].tolist()))
            continue
        assert al.word[finals].tolist() == list(range(len(row["words"])))  # each word once, in order
        if spec.granularity in ("phone", "frame"):
            flat = [p for ws in row["phones"] for p in ws]
            assert sorted(set(al.phone[al.phone >= 0].tolist())) == list(range(len(flat)))
    assert n > 10


def test_tiny_run_gets_probes_json_with_every_layer(repeat_run):
    from modevo.score.probe import probe_run

    result = probe_run(repeat_run, ProbeConfig(**FAST), progress=False)
    path = repeat_run / "probes" / result["checkpoint"].removesuffix(".pt") / "probes.json"
    saved = json.loads(path.read_text())
    assert set(saved["probes"]) | set(saved["skipped"]) == set(PROBES)
    assert set(saved["probes"]) >= {"phone", "place", "manner", "voicing", "speaker", "word"}
    n_states = saved["n_layer"] + 1
    for name, r in saved["probes"].items():
        assert [x["layer"] for x in r["layers"]] == list(range(n_states)), name
        assert r["layers"][-1]["relative_depth"] == 1.0
        for x in r["layers"]:
            assert x["lo"] <= x["acc"] <= x["hi"] and 0 <= x["shuffled_acc"] <= 1
        assert r["n_test"] > 0 and r["majority"]["acc"] < 1
    # phone-repeat's input IS the phone: layer 0 (the embeddings) reads it off
    assert saved["probes"]["phone"]["layers"][0]["acc"] > 0.9
    # MLflow, beside layer_acc of eval: one point per layer
    from mlflow.tracking import MlflowClient

    info = json.loads((repeat_run / "run.json").read_text())
    history = MlflowClient(info["tracking_uri"]).get_metric_history(info["mlflow_run_id"], "probe/phone/layer_acc")
    assert sorted(m.step for m in history) == list(range(n_states))
    # a second call with the same settings reuses the file
    assert probe_run(repeat_run, ProbeConfig(**FAST), progress=False, log_mlflow=False)["key"] == saved["key"]


def test_text_view_skips_what_it_cannot_label(workdir, capsys):
    from modevo.score.probe import probe_run

    run = train_tiny(workdir, "text-char")
    result = probe_run(run, ProbeConfig(**FAST), progress=False, log_mlflow=False)
    assert set(result["probes"]) == {"word"}
    assert set(result["skipped"]) == {"phone", "place", "manner", "voicing", "speaker", "pitch"}
    assert "reads no rendering" in result["skipped"]["speaker"]


def test_cli_probe_writes_figures_and_a_missing_run_is_one_line(repeat_run, tmp_path, capsys):
    assert main(["probe", "--run", str(repeat_run), "--probes", "phone,voicing", "--max-positions", "100",
                 "--max-utterances", "30", "--no-mlflow", "--no-progress", "--out", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "phone" in out and "majority" in out
    assert {p.name for p in (tmp_path / "fig").iterdir()} == {"probe_phone.png", "probe_voicing.png"}

    assert main(["probe", "--run", str(tmp_path / "no-such-run"), "--no-mlflow"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modevo: error:") and "no-such-run" in err[0]
