"""Latent transcription (issue 25, part 2): `modevo lens` reads each layer through the logit lens restricted to
the text vocabulary at positions inside a spoken word: Recall@k of the word's first text piece and the next
word's, beside a shuffled-target baseline."""

import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import novels_workspace, train_tiny
from modevo.corpus import synth
from modevo.score.lens import (TARGETS, LensConfig, Word, lens_ranks, readout, summarise_layers, word_positions,
                               word_recalls)

ROOT = Path(__file__).resolve().parent.parent
needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")


class FakeLensModel:
    """hidden_states(ids) → given per-layer states (1, T, V); lens = identity: the logits are the states."""

    def __init__(self, states: dict[int, torch.Tensor]):
        self.states = states  # id of the sequence's first token → list of (T, V) per layer
        self.config = types.SimpleNamespace(n_layer=len(next(iter(states.values()))) - 1)

    def hidden_states(self, ids):
        return [h[None] for h in self.states[int(ids[0, 0])]], None

    def lens(self, h):
        return h.float()


def test_readout_finds_a_planted_text_token_and_the_shuffle_does_not():
    """Layer 1 plants the current word's target at every position of it, layer 2 the next word's at the word's
    last position only: recall@1 is 1 exactly there (any-position 1, mean 1/3 for the last-only one)."""
    rng = np.random.default_rng(0)
    n_text, vocab, per_word, n_words = 50, 64, 3, 6
    text_ids = np.arange(1, n_text + 1)
    seqs, words, states = [], [], {}
    for u in range(30):
        T = 1 + per_word * n_words + 2  # mark, words, a trailing pause
        ids = np.full(T, u)
        targets = rng.integers(1, n_text + 1, n_words)
        layers = [torch.randn(T, vocab) for _ in range(3)]
        for w in range(n_words):
            pos = np.arange(1 + per_word * w, 1 + per_word * (w + 1))
            words.append(Word(u, pos, int(targets[w]), int(targets[w + 1]) if w + 1 < n_words else -1))
            layers[1][pos, targets[w]] = 10.0
            if w + 1 < n_words:
                layers[2][pos[-1], targets[w + 1]] = 10.0
                layers[2][pos[:-1], targets[w + 1]] = -10.0  # and nowhere else in the word
            layers[0][pos, 60] = 50.0  # a unit id: outside the text vocabulary, never ranked
        states[u] = layers
        seqs.append(ids)
    model = FakeLensModel(states)
    ks = (1, 5, 10)
    mean, anyhit, n_pos = readout(model, seqs, words, text_ids, ks, seed=0)
    assert mean.shape == (len(words), 3, len(TARGETS), 3) and n_pos == len(words) * per_word
    cur, nxt, sh = TARGETS.index("current"), TARGETS.index("next"), TARGETS.index("shuffled_current")
    assert np.all(mean[:, 1, cur, 0] == 1.0)  # planted at every position: rank 0 everywhere
    has_next = ~np.isnan(mean[:, 2, nxt, 0])
    assert has_next.sum() == 30 * (n_words - 1)  # the last word of an utterance has no next word
    assert np.allclose(mean[has_next, 2, nxt, 0], 1 / per_word) and np.all(anyhit[has_next, 2, nxt, 0] == 1.0)
    assert np.nanmean(mean[:, 1, sh, 0]) < 0.1  # a random word's piece: about 1/50 coincide
    assert 0.1 < np.nanmean(mean[:, 0, cur, 2]) < 0.3  # no signal: recall@10 of 50 ≈ 0.2 (the unit id not counted)

    cfg = LensConfig(n_boot=200)
    layers = summarise_layers(mean, anyhit, np.asarray([w.utt for w in words]), ks, cfg)
    assert [r["layer"] for r in layers] == [0, 1, 2] and layers[1]["depth"] == 0.5
    assert layers[1]["recall"]["current"]["1"]["mean"] == 1.0
    for row in layers:
        for measure in ("recall", "recall_any"):
            for target in TARGETS:
                for k in ("1", "5", "10"):
                    e = row[measure][target][k]
                    assert e["lo"] - 1e-12 <= e["mean"] <= e["hi"] + 1e-12
    assert layers[2]["recall"]["next"]["1"]["n"] == 30 * (n_words - 1)
    assert layers[1]["recall"]["shuffled_current"]["1"]["hi"] < 0.2


def test_lens_ranks_agree_with_the_model_output_and_count_ties_against():
    from modevo.train.model import GPT
    from modevo.train.model_config import ModelConfig

    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=40, d_model=16, n_layer=2, n_head=2, n_kv_head=1, max_seq_len=32)).eval()
    ids = np.random.default_rng(0).integers(0, 40, 20)
    text = np.arange(1, 25)
    pos, targets = np.arange(3, 20), np.tile([[5, 7, -1]], (17, 1))
    ranks = lens_ranks(model, ids, pos, targets, text)
    assert ranks.shape == (3, 17, 3) and np.all(ranks[..., 2] == -1)
    logits = model(torch.as_tensor(ids)[None])[0, pos][:, torch.as_tensor(text)].detach()  # the last layer
    for j, t in enumerate((5, 7)):
        want = (logits >= logits[:, t - 1:t]).sum(-1) - 1
        assert ranks[2, :, j].tolist() == want.tolist()
    tied = FakeLensModel({0: [torch.zeros(4, 8)]})  # every logit equal: the target ranks last, not first
    assert lens_ranks(tied, np.zeros(4, dtype=int), np.arange(1, 4), np.full((3, 1), 2), np.arange(1, 6)).max() == 4
    # any-position vs mean: hits at one of three positions
    r = np.array([[[0], [9], [9]]])  # (L+1=1, P=3, M=1)
    m, a = word_recalls(r, [slice(0, 3)], (1,))
    assert m[0, 0, 0, 0] == pytest.approx(1 / 3) and a[0, 0, 0, 0] == 1.0


def test_word_positions_are_the_words_own_units_in_the_speech_only_sequence(tmp_path):
    from modevo.frames import frame_index
    from modevo.views.bpe import train_bpe
    from modevo.views.config import InterleaveConfig, ViewsConfig
    from modevo.views.encode import InterleavedEncoder
    from modevo.views.registry import parse_view

    words_pool = "the old man walked down to the river".split()
    rng = np.random.default_rng(0)
    folder = train_bpe(["".join(rng.choice(words_pool, 6)) for _ in range(200)], 40, tmp_path, "text-bpe", 500)
    enc = InterleavedEncoder(parse_view("interleaved@varied/mel-kmeans"),
                             ViewsConfig(interleave=InterleaveConfig(speech_share=0.5)), folder, n_units=20)
    words = list(rng.choice(words_pool, 7))
    phones = [["AH"] * int(rng.integers(1, 4)) for _ in words]
    starts, durs, t = [], [], 130.0
    for w in phones:
        for _ in w:
            d = float(rng.integers(30, 120))
            starts += [t]
            durs += [d]
            t += d
        t += 60.0
    row, rendering = {"id": "x", "words": words, "phones": phones}, {"start_ms": starts, "durations_ms": durs}
    units = rng.integers(0, 20, int(t / 20) + 10)
    ids = enc.encode_item(row, rendering, units)
    frames = enc.word_frames(row, rendering)
    start = int(frame_index(starts[0], enc.unit_ms))
    pos = word_positions(frames, start, len(ids))
    for w, p in enumerate(pos):
        assert (ids[p] - enc.unit_offset).tolist() == units[frames[w, 0]:frames[w, 1]].tolist()
    assert pos[0][0] == 1 and pos[-1][-1] == len(ids) - 1  # the span starts and ends with a word
    cut = word_positions(frames, start, 6)  # a window of 6 tokens: later words lose positions, none past it
    assert max(p.max() for p in cut if len(p)) == 5 and not len(cut[-1])
    assert all(len(p) <= 1 for p in word_positions(frames, start, len(ids), "last"))


# -- at smoke scale: train an interleaved run and its speech-only twin, read them, compare ------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "lens")


@needs_espeak
def test_modevo_lens_writes_every_layer_and_a_figure(workdir, capsys):
    from modevo.cli import main

    view = "interleaved@varied/mel-kmeans"
    mixed = train_tiny(workdir, view)
    speech_only = train_tiny(workdir, view, 2, "views.interleave.speech_share=1.0")
    out = workdir[0] / "lens-out"
    argv = ["lens", "--run", str(mixed), "--run", str(speech_only), "--utterances", "20", "--n-boot", "200",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "recall@5 of the heard word" in printed and "figure" in printed
    for run in (mixed, speech_only):
        res = json.loads(next((run / "lens").glob("*/lens.json")).read_text())
        assert res["n_words"] > 0 and res["n_positions"] >= res["n_words"]
        assert [r["layer"] for r in res["layers"]] == list(range(res["n_layers"] + 1))
        for row in res["layers"]:
            for target in TARGETS:
                for k in ("1", "5", "10"):
                    e = row["recall"][target][k]
                    assert e["lo"] - 1e-12 <= e["mean"] <= e["hi"] + 1e-12, (row["layer"], target, k, e)
    assert json.loads(next((speech_only / "lens").glob("*/lens.json")).read_text())["mixture"]["speech_share"] == 1.0
    png = out / "lens.png"
    assert png.is_file() and png.stat().st_size > 20_000 and (out / "lens.csv").is_file()
    # MLflow: one point per layer
    from mlflow.tracking import MlflowClient

    info = json.loads((mixed / "run.json").read_text())
    hist = MlflowClient(info["tracking_uri"]).get_metric_history(info["mlflow_run_id"], "lens/recall_at_5_current")
    assert sorted(m.step for m in hist) == list(range(res["n_layers"] + 1))
    # a rerun with the same settings reuses lens.json
    stamp = next((mixed / "lens").glob("*/lens.json")).stat().st_mtime_ns
    assert main(["lens", "--run", str(mixed), "--utterances", "20", "--n-boot", "200", "--no-progress",
                 "--no-mlflow"]) == 0
    assert next((mixed / "lens").glob("*/lens.json")).stat().st_mtime_ns == stamp

    # a view without text tokens: one line, exit 2 (the speech view's units are those the runs above built)
    fake = workdir[0] / "speech-run"
    fake.mkdir()
    (fake / "config.yaml").write_text((mixed / "config.yaml").read_text().replace(view, "speech@varied/mel-kmeans"))
    capsys.readouterr()
    assert main(["lens", "--run", str(fake), "--no-progress", "--no-mlflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "view speech@varied/mel-kmeans has no text tokens" in err
    assert main(["lens", "--run", str(workdir[0] / "nothing"), "--no-mlflow"]) == 2
    assert "no such run folder" in capsys.readouterr().err
