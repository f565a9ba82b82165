"""Task items go through the same corpus and views code as training data; a pair shares one voice."""

from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_run_overrides
from modevo.config import load
from modevo.corpus import synth
from modevo.corpus.build import sentence_row
from modevo.score.pairs import word_overlap
from modevo.tasks.base import Pair, TaskSet
from modevo.tasks.render import ItemRenderer
from modevo.train.config import TrainStageConfig

ROOT = Path(__file__).resolve().parent.parent
needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")


def _renderer(novels, tmp_path, view):
    stage = load(TrainStageConfig, ROOT / "configs/train/smoke.yaml", tiny_run_overrides(novels, tmp_path))
    return ItemRenderer(stage, view, max_len=64, progress=False)


def test_items_encode_like_training_rows(novels, cache, tmp_path):
    r = _renderer(novels, tmp_path, "phone")
    task = TaskSet("toy", (Pair("a", "The old house was dark.", "The dark house was old."),
                           Pair("b", "Watson looked at 5 dogs.", "Watson look at 5 dogs.")))
    rt = r.render(task)
    row, _ = sentence_row("Watson looked at 5 dogs.", r.corpus_cfg)
    expected = r.encoder.encode(row)
    assert np.array_equal(rt.correct[1], expected)  # the corpus stage's normalisation and g2p, the view's encoder
    assert len(rt.correct[1]) == sum(len(p) for p in row["phones"])  # "five" spoken, one token per phone
    assert rt.skipped == ["", ""] and rt.in_vocab.tolist() == [True, False]  # "five" never occurs in training


def test_phones_without_spelling_skip_text_views(novels, cache, tmp_path):
    pair = Pair("p", "cat", "", correct_phones=(("K", "AE", "T"),), incorrect_phones=(("K", "AE", "P"),))
    task = TaskSet("lex", (pair,))
    assert _renderer(novels, tmp_path, "text-char").render(task).skip_counts() == {"no_spelling": 1}
    phone = _renderer(novels, tmp_path, "phone")
    rt = phone.render(task)
    assert phone.encoder.decode(rt.incorrect[0]) == ["K", "AE", "P"]
    assert phone.encoder.decode(rt.correct[0]) == ["K", "AE", "T"]


def test_too_long_items_are_counted(novels, cache, tmp_path):
    long = " ".join(["the dark house"] * 40)
    rt = _renderer(novels, tmp_path, "phone").render(TaskSet("t", (Pair("x", long, long + " again"),)))
    assert rt.skip_counts() == {"too_long": 1}


@needs_espeak
def test_both_members_of_a_pair_share_one_voice_and_rate(novels, cache, tmp_path):
    r = _renderer(novels, tmp_path, "phone-repeat@varied")
    # identical members: any difference would come from drawing voice/rate per member instead of per pair
    pairs = tuple(Pair(f"id{i}", "the cold wind blew over the moor", "the cold wind blew over the moor")
                  for i in range(6))
    rt = r.render(TaskSet("same", pairs), "varied")
    assert all(np.array_equal(c, i) for c, i in zip(rt.correct, rt.incorrect))
    assert len({len(c) for c in rt.correct}) > 1  # and the draws do vary from pair to pair


def test_word_overlap_baseline():
    task = TaskSet("ctx", (
        Pair("1", "the hound ran over the moor", "she bought a new hat today", context=("The hound was on the moor.",)),
        Pair("2", "a b", "c d", context=("e f.",)),
        Pair("3", "no context here", "none at all"),
    ))
    scores = word_overlap(task)
    assert scores[0] == 1.0 and scores[1] == 0.5 and np.isnan(scores[2])


def test_a_long_context_loses_its_oldest_tokens(novels, cache, tmp_path):
    r = _renderer(novels, tmp_path, "phone")
    context = tuple(["The moor was dark and the wind was cold."] * 5)
    rt = r.render(TaskSet("ctx", (Pair("x", "Watson looked at the old house.", "The hound was never seen again.",
                                       context=context),)))
    assert rt.skipped == [""]
    full = np.concatenate([np.append(r.encode_row(r.row(t, "c")[0], None, "x"), 0) for t in context])
    room = 64 - 1 - max(len(rt.correct[0]), len(rt.incorrect[0]))
    assert len(rt.context[0]) == room and np.array_equal(rt.context[0], full[-room:])
    assert rt.context_dropped[0] == len(full) - room > 0
