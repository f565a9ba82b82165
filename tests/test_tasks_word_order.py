"""word-order items: from held-out sentences only, the same words (and the same phones, permuted) in both
members, deterministic whatever the row order, every skip counted; the rendered members of a pair are
permutations of each other in every view family whose tokens are its phones or characters."""

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import novels_workspace, tiny_run_overrides
from modevo.config import load
from modevo.corpus import synth
from modevo.corpus.build import sentence_row
from modevo.corpus.phones import cmu_dict, split_stress
from modevo.errors import ConfigError, InputError
from modevo.score.config import EvalConfig
from modevo.tasks.config import BUILT_IN, TasksConfig
from modevo.tasks.registry import DRAWN_FROM_CORPUS, load_task, load_tasks
from modevo.tasks.word_order import (KINDS, SKIP_REASONS, WordOrderConfig, build_word_order, reorder,
                                     with_stress, word_class)

ROOT = Path(__file__).resolve().parent.parent
VOCAB = ("the", "a", "man", "woman", "house", "walked", "slowly", "into", "garden", "said", "nothing", "at",
         "all", "yesterday", "morning", "it", "was", "cold", "and", "dark", "old", "dog", "ran", "home", "his",
         "sister", "never", "saw", "window", "light")


def pron(word: str) -> tuple[list[str], list[int]]:
    return split_stress(cmu_dict()[word])


def make_row(doc, i, chunk, split, words, heading=False):
    words = list(words)
    phones, stress = zip(*(pron(w) for w in words)) if words else ((), ())
    return {"id": f"{doc}/{i:06d}", "doc_id": doc, "sentence_index": i, "chunk": chunk, "split": split,
            "written": " ".join(words), "text": " ".join(words), "words": words, "phones": [list(p) for p in phones],
            "stress": [list(s) for s in stress], "heading": heading}


def corpus(n_docs=3, n_chunks=8, chunk_sentences=20, held=None, seed=0, lengths=(2, 24)):
    """Documents of `n_chunks` chunks of random sentences; `held` maps chunk index → split (others train);
    by default chunks 2 (valid), 5 (test) and 6 (valid) are held out."""
    held = held if held is not None else {2: "valid", 5: "test", 6: "valid"}
    rng = random.Random(seed)
    rows = []
    for d in range(n_docs):
        for i in range(n_chunks * chunk_sentences):
            chunk = i // chunk_sentences
            words = [rng.choice(VOCAB) for _ in range(rng.randint(*lengths))]
            rows.append(make_row(f"doc{d}", i, chunk, held.get(chunk, "train"), words))
    return rows


@pytest.fixture(scope="module")
def rows():
    return corpus()


def by_id(rows):
    return {r["id"]: r for r in rows}


def test_members_hold_the_same_words_and_phones(rows):
    index = by_id(rows)
    ts = build_word_order(rows, WordOrderConfig())
    assert ts.name == "word-order" and ts.breakdowns == ("kind", "distance", "word_class") and len(ts) > 100
    for p in ts.pairs:
        src = index[p.id]
        assert src["split"] in ("valid", "test") and 4 <= len(src["words"]) <= 20
        assert p.correct == " ".join(src["words"]) and p.incorrect != p.correct
        assert sorted(p.incorrect.split()) == sorted(p.correct.split())  # the same words, reordered
        assert p.context == () and p.group == f"{src['doc_id']}/{src['chunk']}"
        # phones: the corpus row's, with its stress digits, and the incorrect member's are the same, permuted,
        # word by word in the incorrect member's order
        assert p.correct_phones == tuple(tuple(cmu_dict()[w]) for w in src["words"])
        assert Counter(p.incorrect_phones) == Counter(p.correct_phones)
        assert p.incorrect_phones == tuple(tuple(cmu_dict()[w]) for w in p.incorrect.split())


def test_every_held_out_sentence_is_a_pair_or_a_counted_skip(rows):
    ts = build_word_order(rows, WordOrderConfig())
    src = ts.source
    held = [r for r in rows if r["split"] != "train"]
    assert src["held_out_sentences"] == len(held)
    assert set(src["skipped"]) == set(SKIP_REASONS)
    assert src["built"] + sum(src["skipped"].values()) == len(held)
    assert src["pairs"] == len(ts) == src["built"] and src["dropped_by_max_pairs"] == 0
    assert src["skipped"]["too_short"] == sum(len(r["words"]) < 4 for r in held)
    assert src["skipped"]["too_long"] == sum(len(r["words"]) > 20 for r in held)
    assert sum(src["kinds"].values()) == len(ts) and set(src["kinds"]) == set(KINDS)
    assert src["chunks"] == len({p.group for p in ts.pairs}) and src["documents"] == 3


def test_only_held_out_splits_are_used(rows):
    index = by_id(rows)
    only_test = build_word_order(rows, WordOrderConfig(splits=["test"]))
    assert {index[p.id]["split"] for p in only_test.pairs} == {"test"}
    # training rows never become items: rewriting every training sentence leaves the ids as they were,
    # unless a rewritten training sentence now equals a held-out one or its reordering
    train_free = [r for r in rows if r["split"] != "train"]
    assert {p.id for p in build_word_order(train_free, WordOrderConfig()).pairs} >= \
        {p.id for p in build_word_order(rows, WordOrderConfig()).pairs}
    with pytest.raises(InputError, match="no sentences in the held-out splits valid, test"):
        build_word_order([r for r in rows if r["split"] == "train"], WordOrderConfig())


def test_same_items_whatever_the_row_order(rows):
    a = build_word_order(rows, WordOrderConfig())
    shuffled = list(rows)
    random.Random(1).shuffle(shuffled)
    b = build_word_order(shuffled, WordOrderConfig())
    assert a.pairs == b.pairs and a.content_hash == b.content_hash
    c = build_word_order(rows, WordOrderConfig(seed=1))
    assert c.content_hash != a.content_hash
    # another seed draws other reorderings of the same sentences (a few more or fewer hit a counted skip)
    ca, cc = {p.id: p for p in a.pairs}, {p.id: p for p in c.pairs}
    assert len(ca.keys() & cc.keys()) > 0.95 * len(ca)
    assert all(ca[i].correct == cc[i].correct for i in ca.keys() & cc.keys())
    assert sum(ca[i].incorrect != cc[i].incorrect for i in ca.keys() & cc.keys()) > 0.5 * len(ca)


def test_identical_neighbours_give_a_counted_skip_not_a_pair():
    rows = corpus()
    rows.append(make_row("doc9", 0, 0, "valid", ["had"] * 6))  # every reordering is the same string
    ts = build_word_order(rows, WordOrderConfig())
    base = build_word_order(corpus(), WordOrderConfig())
    assert "doc9/000000" not in {p.id for p in ts.pairs}
    assert ts.source["skipped"]["same_string"] == base.source["skipped"]["same_string"] + 1


def test_a_reordering_that_is_a_corpus_sentence_is_skipped():
    cfg = WordOrderConfig(min_words=2, span_share=0)  # two words: the one swap possible
    held = make_row("doc0", 0, 0, "valid", ["he", "said"])
    other = make_row("doc0", 1, 0, "valid", ["the", "dog", "ran", "home"])
    assert len(build_word_order([held, other], cfg)) == 2
    ts = build_word_order([held, other, make_row("doc1", 0, 0, "train", ["said", "he"])], cfg)
    assert [p.id for p in ts.pairs] == ["doc0/000001"] and ts.source["skipped"]["swap_is_a_sentence"] == 1


def test_headings_repeats_and_training_sentences_are_skipped():
    words = ["the", "old", "dog", "ran", "home"]
    rows = [make_row("doc0", 0, 0, "valid", words, heading=True),
            make_row("doc0", 1, 0, "valid", ["his", "sister", "never", "saw", "the", "light"]),
            make_row("doc0", 2, 0, "valid", ["his", "sister", "never", "saw", "the", "light"]),
            make_row("doc0", 3, 0, "test", ["it", "was", "cold", "and", "dark"]),
            make_row("doc1", 0, 0, "train", ["it", "was", "cold", "and", "dark"])]
    ts = build_word_order(rows, WordOrderConfig())
    assert [p.id for p in ts.pairs] == ["doc0/000001"]
    assert {k: v for k, v in ts.source["skipped"].items() if v} == {"heading": 1, "repeated_text": 1,
                                                                     "in_training": 1}


def test_a_text_the_renderer_would_change_is_skipped():
    odd = make_row("doc0", 1, 0, "valid", ["the", "old", "dog", "ran", "home"])
    odd["words"][0] = "The"  # not the normaliser's output (a row read from elsewhere): it would say "the"
    rows = [make_row("doc0", 0, 0, "valid", ["the", "old", "dog", "ran", "home"]), odd]
    ts = build_word_order(rows, WordOrderConfig())
    assert [p.id for p in ts.pairs] == ["doc0/000000"] and ts.source["skipped"]["renormalises"] == 1


@pytest.mark.parametrize("span_share", [0.0, 0.5, 1.0])
def test_reorder_draws_a_swap_or_a_span_move(span_share):
    cfg = WordOrderConfig(span_share=span_share)
    rng = random.Random(0)
    kinds = Counter()
    for _ in range(400):
        n = rng.randint(4, 20)
        order, kind, distance, changed = reorder(n, rng, cfg)
        kinds[kind] += 1
        assert sorted(order) == list(range(n)) and order != list(range(n))
        moved = [i for i in range(n) if order[i] != i]
        assert changed == list(range(changed[0], changed[-1] + 1)) and set(moved) <= set(changed)
        if kind == "adjacent-swap":
            assert distance == 1 and len(changed) == 2 and moved == changed
        else:
            size = len(changed) - distance  # the span's length; the words it passes: distance
            assert cfg.span_min <= size <= cfg.span_max and 1 <= distance <= cfg.max_shift
            block = [order[i] for i in changed]  # a rotation: the span and the passed words trade places
            assert block in (changed[size:] + changed[:size], changed[distance:] + changed[:distance])
    assert set(kinds) == ({"adjacent-swap"} if span_share == 0 else {"span-move"} if span_share == 1 else set(KINDS))


def test_breakdown_labels(rows):
    ts = build_word_order(rows, WordOrderConfig())
    for p in ts.pairs:
        assert [k for k, _ in p.labels] == ["kind", "distance", "word_class"]
        assert p.label("kind") in KINDS and p.label("word_class") in ("function", "content", "mixed")
        assert p.label("distance") == "1" if p.label("kind") == "adjacent-swap" else 1 <= int(p.label("distance")) <= 3
    assert {p.label("kind") for p in ts.pairs} == set(KINDS)
    assert {p.label("distance") for p in ts.pairs} == {"1", "2", "3"}
    swaps = build_word_order(rows, WordOrderConfig(span_share=0))
    assert {p.label("kind") for p in swaps.pairs} == {"adjacent-swap"}


def test_word_class_of_the_moved_words():
    assert word_class(["the", "of"]) == "function" and word_class(["didn't", "it's"]) == "function"
    assert word_class(["dog", "garden"]) == "content" and word_class(["the", "dog"]) == "mixed"
    cfg = WordOrderConfig(span_share=0)
    only_function = build_word_order([make_row("d", 0, 0, "valid", ["it", "was", "at", "his"])], cfg)
    only_content = build_word_order([make_row("d", 0, 0, "valid", ["woman", "walked", "slowly", "home"])], cfg)
    assert only_function.pairs[0].label("word_class") == "function"
    assert only_content.pairs[0].label("word_class") == "content"


def test_stress_digits_come_from_the_row():
    assert with_stress(["HH", "AH", "L", "OW"], [-1, 0, -1, 1]) == ("HH", "AH0", "L", "OW1")
    with pytest.raises(InputError, match="2 phones but 1 stress marks"):
        with_stress(["HH", "AH"], [0])


def test_max_pairs_keeps_a_seeded_sample_in_corpus_order(rows):
    full = build_word_order(rows, WordOrderConfig())
    cut = build_word_order(rows, WordOrderConfig(max_pairs=25))
    assert len(cut) == 25 and cut.source["dropped_by_max_pairs"] == len(full) - 25
    order = [p.id for p in full.pairs]
    assert [order.index(p.id) for p in cut.pairs] == sorted(order.index(p.id) for p in cut.pairs)
    assert set(cut.pairs) <= set(full.pairs)
    assert build_word_order(rows, WordOrderConfig(max_pairs=25)).content_hash == cut.content_hash


def test_malformed_rows_are_one_error(rows):
    bad = [dict(r) for r in rows[:50]] + [{k: v for k, v in rows[60].items() if k != "stress"}]
    with pytest.raises(InputError, match=r"corpus row 50 \(doc0/000060\) lacks stress"):
        build_word_order(bad, WordOrderConfig())
    short = make_row("doc0", 0, 0, "valid", ["the", "old", "dog", "ran", "home"])
    short["stress"] = short["stress"][:-1]
    with pytest.raises(InputError, match="doc0/000000 has 5 words, 5 phone lists and 4 stress lists"):
        build_word_order([short], WordOrderConfig())


def test_nothing_to_build_says_why():
    rows = [make_row("doc0", 0, 0, "valid", ["the", "dog"]), make_row("doc0", 1, 0, "valid", ["had"] * 5)]
    with pytest.raises(InputError, match="no items from 2 held-out sentences \\(too_short 1, same_string 1\\)"):
        build_word_order(rows, WordOrderConfig())


@pytest.mark.parametrize("override, message", [
    ("tasks.word_order.min_words=1", "tasks.word_order: min_words must be at least 2"),
    ("tasks.word_order.max_words=3", "tasks.word_order: max_words must be >= min_words"),
    ("tasks.word_order.span_share=1.5", "tasks.word_order: span_share must be within [0, 1]"),
    ("tasks.word_order.span_min=1", "tasks.word_order: needs 2 <= span_min <= span_max"),
    ("tasks.word_order.max_shift=0", "tasks.word_order: max_shift must be at least 1"),
    ("tasks.word_order.max_pairs=0", "tasks.word_order: max_pairs must be positive"),
    ("tasks.word_order.splits=[valid,train]", "tasks.word_order: splits must be held-out splits"),
    ("tasks.word_order.splits=[]", "tasks.word_order: splits is empty"),
    ("tasks.word_order.min_wrds=3", "unknown key 'tasks.word_order.min_wrds'; did you mean 'min_words'?"),
])
def test_config_errors_are_one_line(override, message):
    with pytest.raises(ConfigError) as e:
        load(EvalConfig, None, [override])
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_span_needs_room_unless_swaps_only():
    with pytest.raises(ConfigError, match="min_words must exceed span_min"):
        load(EvalConfig, None, ["tasks.word_order.min_words=3", "tasks.word_order.span_min=3",
                                "tasks.word_order.span_max=3"])
    assert load(EvalConfig, None, ["tasks.word_order.min_words=2", "tasks.word_order.span_share=0"])


def test_registry_and_config(rows):
    assert BUILT_IN[BUILT_IN.index("sblimp") + 1] == "word-order" and "word-order" in DRAWN_FROM_CORPUS
    assert "word-order" in TasksConfig().names
    cfg = load(EvalConfig, ROOT / "configs/eval/smoke.yaml", ["tasks.word_order.max_pairs=30"]).tasks
    ts = load_task("word-order", cfg, rows)
    assert len(ts) == 30 and ts.content_hash == build_word_order(rows, WordOrderConfig(max_pairs=30)).content_hash
    for scale in ("smoke", "cpu"):
        names = load(EvalConfig, ROOT / f"configs/eval/{scale}.yaml").tasks.names
        assert names[names.index("sblimp") + 1] == "word-order"
    with pytest.raises(ConfigError, match="task word-order is drawn from the corpus"):
        load_task("word-order", cfg, None)
    # a corpus without held-out sentences: a logged skip, the other tasks still load
    only = TasksConfig(names=["word-order", "sblimp"], blimp_per_paradigm=1)
    tasks = load_tasks(only, [r for r in rows if r["split"] == "train"])
    assert [t.name for t in tasks] == ["sblimp"]


# ---------------------------------------------------------------- rendered in the views

SENTENCES = ["The old dog ran home slowly at night.", "His sister never saw the light in the window.",
             "It was cold and dark in the garden that morning.", "A woman walked into the house and said nothing."]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "word-order-render")


def _renderer(workspace, view, *extra, max_len=64):
    from modevo.tasks.render import ItemRenderer
    from modevo.train.config import TrainStageConfig

    tmp, novels = workspace
    stage = load(TrainStageConfig, ROOT / "configs/train/smoke.yaml", tiny_run_overrides(novels, tmp, *extra))
    return ItemRenderer(stage, view, max_len=max_len, progress=False)


def _task_and_rows(renderer):
    """Word-order items from held-out rows made by the corpus stage itself (its normalisation and g2p)."""
    rows = []
    for i, text in enumerate(SENTENCES):
        row, reason = sentence_row(text, renderer.corpus_cfg)
        assert row is not None, reason
        rows.append(row | {"id": f"doc0/{i:06d}", "doc_id": "doc0", "sentence_index": i, "chunk": 0,
                           "split": "valid", "heading": False})
    for share in (0.0, 1.0):  # both kinds
        ts = build_word_order(rows, WordOrderConfig(span_share=share, seed=3))
        assert len(ts) == len(SENTENCES)
        yield ts, {r["id"]: r for r in rows}


@pytest.mark.parametrize("view, extra", [("text-char", ()), ("text-bpe", ()), ("phone", ()), ("phone-bpe", ()),
                                         ("phone", ("views.stress=true",))])
def test_rendered_members_are_permutations(workspace, view, extra):
    r = _renderer(workspace, view, *extra)
    for ts, rows in _task_and_rows(r):
        rt = r.render(ts)
        assert rt.skip_counts() == {}
        for i, p in enumerate(ts.pairs):
            good, bad = rt.correct[i], rt.incorrect[i]
            assert not np.array_equal(good, bad)
            if view in ("text-bpe", "phone-bpe"):  # pieces differ; the characters (phone symbols) they spell do not
                assert Counter("".join(r.encoder.decode(good))) == Counter("".join(r.encoder.decode(bad)))
            else:  # one token per character / phone: the same multiset of ids
                assert Counter(good.tolist()) == Counter(bad.tolist())
            # the correct member is exactly what training would have seen for the corpus row
            assert np.array_equal(good, r.encoder.encode(rows[p.id]))


@pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")
def test_phone_repeat_at_mean_members_are_permutations(workspace):
    r = _renderer(workspace, "phone-repeat@mean", max_len=1024)
    ts, rows = next(_task_and_rows(r))
    rt = r.render(ts)
    assert rt.skip_counts() == {}
    for i, p in enumerate(ts.pairs):  # each phone type lasts its mean frames: the same ids, reordered
        assert Counter(rt.correct[i].tolist()) == Counter(rt.incorrect[i].tolist())
        assert np.array_equal(rt.correct[i], r.encoder.encode(rows[p.id]))
