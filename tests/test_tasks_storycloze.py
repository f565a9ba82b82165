"""tSC items: from held-out chunks only, windows inside one chunk, length-matched distractors from the right
place, deterministic; the StoryCloze CSV loader gives the right pairs and one clear InputError per problem."""

import csv
import math
import random

import pytest

from modevo.corpus.normalize import normalize
from modevo.errors import ConfigError, InputError
from modevo.tasks.storycloze import ClozeConfig, build_tsc, load_storycloze_csv, n_phones

WORDS = ("the", "a", "man", "woman", "house", "walked", "slowly", "into", "garden", "said", "nothing", "at",
         "all", "yesterday", "morning", "extraordinary", "it", "was", "cold", "and", "dark", "don't")


def tag(n: int) -> str:
    """A unique lowercase word for sentence n, so every text is unique unless a test repeats one."""
    s = ""
    n += 26 * 26
    while n:
        n, d = divmod(n, 26)
        s = chr(97 + d) + s
    return "q" + s


def make_row(doc, i, chunk, split, text):
    words = text.split()
    return {"id": f"{doc}/{i:06d}", "doc_id": doc, "sentence_index": i, "chunk": chunk, "split": split,
            "written": text, "text": text, "words": words, "phones": [list(w.replace("'", "")) for w in words]}


def corpus(n_docs=4, n_chunks=12, chunk_sentences=20, held=None, seed=0, lengths=(1, 18)):
    """Documents of `n_chunks` chunks; `held` maps chunk index → split (others are train). Fake phones (one
    per letter) and sentences of 1-18 words; the default holds out chunks 4 and 5 (both valid: adjacent
    chunks of one split), 7 (test) and 8 (valid), and a short last chunk."""
    held = held if held is not None else {4: "valid", 5: "valid", 7: "test", 8: "valid", n_chunks - 1: "test"}
    rng = random.Random(seed)
    rows, n = [], 0
    for d in range(n_docs):
        doc = f"doc{d}"
        total = n_chunks * chunk_sentences - 7  # the last chunk is short
        for i in range(total):
            chunk = i // chunk_sentences
            k = rng.randint(*lengths)
            text = " ".join([tag(n)] + [rng.choice(WORDS) for _ in range(k - 1)])
            n += 1
            rows.append(make_row(doc, i, chunk, held.get(chunk, "train"), text))
    return rows


@pytest.fixture(scope="module")
def rows():
    return corpus()


def index(rows):
    by_id = {r["id"]: r for r in rows}
    by_text = {}
    for r in rows:
        by_text.setdefault(r["text"], []).append(r)
    return by_id, by_text


@pytest.mark.parametrize("n", [1, 3, 5])
def test_windows_stay_in_one_held_out_chunk(rows, n):
    by_id, _ = index(rows)
    cfg = ClozeConfig(context_sentences=n)
    ts = build_tsc(rows, cfg, "topic")
    assert ts.name == "tsc-topic" and ts.breakdowns == ("document",)
    held_chunks = {}
    for r in rows:
        if r["split"] != "train":
            held_chunks.setdefault((r["doc_id"], r["chunk"]), []).append(r)
    assert ts.source["windows"] == sum(max(0, len(c) - n) for c in held_chunks.values())
    assert ts.source["chunks"] == len(held_chunks)
    assert ts.source["pairs"] + sum(ts.source["skipped"].values()) == ts.source["windows"]
    assert ts.source["pairs"] == len(ts) > 0.9 * ts.source["windows"]
    for p in ts.pairs:
        end = by_id[p.id.split("/", 1)[1]]
        assert p.correct == end["text"] and end["split"] in ("valid", "test")
        assert len(p.context) == n
        before = [by_id[f"{end['doc_id']}/{end['sentence_index'] - k:06d}"] for k in range(n, 0, -1)]
        assert p.context == tuple(r["text"] for r in before)
        assert {(r["doc_id"], r["chunk"], r["split"]) for r in before} == {(end["doc_id"], end["chunk"], end["split"])}
        assert p.group == end["doc_id"] and p.labels == (("variant", "topic"), ("document", end["doc_id"]))
    # the first N sentences of every chunk are never an ending: windows start fresh at each chunk, even where
    # two chunks of the same split touch (chunks 4 and 5 here)
    starts = {f"topic/{c[i]['id']}" for c in held_chunks.values() for i in range(min(n, len(c)))}
    assert not starts & {p.id for p in ts.pairs}


def test_window_breaks_at_a_gap_in_the_rows(rows):
    kept = [r for r in rows if r["id"] != "doc0/000085"]  # a sentence missing in the middle of chunk 4
    ts = build_tsc(kept, ClozeConfig(), "topic")
    ids = {p.id for p in ts.pairs}
    assert "topic/doc0/000084" in ids and not {f"topic/doc0/{i:06d}" for i in range(86, 89)} & ids
    assert "topic/doc0/000089" in ids


@pytest.mark.parametrize("variant", ["topic", "in-document"])
def test_distractors_are_length_matched_held_out_and_from_the_right_place(rows, variant):
    by_id, by_text = index(rows)
    cfg = ClozeConfig()
    ts = build_tsc(rows, cfg, variant)
    assert ts.name == f"tsc-{variant}" and len(ts) > 250
    for p in ts.pairs:
        end = by_id[p.id.split("/", 1)[1]]
        assert p.incorrect != p.correct
        sources = by_text[p.incorrect]
        assert all(r["split"] != "train" for r in sources)  # never a training sentence
        target = n_phones(end)
        assert abs(n_phones(sources[0]) - target) <= 0.10 * target
        if variant == "topic":
            assert all(r["doc_id"] != end["doc_id"] for r in sources)
        else:
            (src,) = sources
            assert src["doc_id"] == end["doc_id"]
            assert abs(src["sentence_index"] - end["sentence_index"]) >= cfg.min_distance_sentences
    # the distractors are spread out, not one sentence over and over
    assert len({p.incorrect for p in ts.pairs}) > len(ts) / 3


def test_in_document_never_from_the_window_with_no_minimum_distance():
    # one document, one held-out chunk: with min distance 0 only the window excludes candidates
    texts = ["aa bb", "cc dd", "ee ff", "gg hh", "ii jj", "kk ll"]
    rows = [make_row("d", i, 0, "valid", t) for i, t in enumerate(texts)]
    ts = build_tsc(rows, ClozeConfig(context_sentences=2, min_distance_sentences=0, tolerance=0.0), "in-document")
    for p in ts.pairs:
        i = int(p.id.rsplit("/", 1)[1])
        assert p.incorrect not in texts[i - 2:i + 1]


def test_no_length_match_and_same_text_are_skipped_and_counted():
    rows = [make_row("a", i, 0, "valid", t) for i, t in enumerate(["xx yy", "yes", "zz ww", "unmatchable" * 9])]
    rows += [make_row("b", i, 0, "test", t) for i, t in enumerate(["yes", "yes", "abc", "xyzw"])]
    ts = build_tsc(rows, ClozeConfig(context_sentences=1, tolerance=0.0), "topic")
    # a/1 "yes" (3 phones): b's "yes" is the same text (never), so b/2 "abc"; a/2 "zz ww" (4): b/3 "xyzw";
    # a/3 (99 phones): nothing; b/1 "yes": a's only 3-phone sentence is "yes" again, skipped;
    # b/2 "abc" (3): a/1 "yes"; b/3 "xyzw" (4): a/0 "xx yy" or a/2 "zz ww"
    got = {p.id: p.incorrect for p in ts.pairs}
    assert got["topic/a/000001"] == "abc" and got["topic/a/000002"] == "xyzw" and got["topic/b/000002"] == "yes"
    assert got["topic/b/000003"] in ("xx yy", "zz ww")
    assert set(got) == {"topic/a/000001", "topic/a/000002", "topic/b/000002", "topic/b/000003"}
    assert ts.source["skipped"]["no_length_match"] == 2 and ts.source["windows"] == 6


def test_no_train_sentence_is_ever_used():
    rows = corpus(n_docs=3, n_chunks=6, held={1: "valid", 4: "test"})
    train_texts = {r["text"] for r in rows if r["split"] == "train"}
    for v in ("topic", "in-document"):
        for p in build_tsc(rows, ClozeConfig(min_distance_sentences=30), v).pairs:
            assert not ({p.correct, p.incorrect, *p.context} & train_texts)
    with pytest.raises(InputError, match="no sentences in the held-out splits valid, test"):
        build_tsc([r for r in rows if r["split"] == "train"], ClozeConfig(), "topic")
    only_test = build_tsc(rows, ClozeConfig(splits=["test"]), "topic")
    assert {p.id.split("/")[1] for p in only_test.pairs} == {"doc0", "doc1", "doc2"}
    assert all(int(p.id.rsplit("/", 1)[1]) // 20 == 4 for p in only_test.pairs)


def test_deterministic_and_order_free(rows):
    cfg = ClozeConfig()
    for v in ("topic", "in-document"):
        a = build_tsc(rows, cfg, v)
        shuffled = list(rows)
        random.Random(1).shuffle(shuffled)
        b = build_tsc(shuffled, cfg, v)
        assert a.content_hash == b.content_hash and a.pairs == b.pairs
        assert build_tsc(rows, ClozeConfig(seed=1), v).content_hash != a.content_hash
        assert len({p.id for p in a.pairs}) == len(a)
    assert build_tsc(rows, cfg, "topic").content_hash != build_tsc(rows, cfg, "in-document").content_hash


def test_max_pairs_is_a_seeded_subset_in_corpus_order(rows):
    full = build_tsc(rows, ClozeConfig(), "topic")
    few = build_tsc(rows, ClozeConfig(max_pairs=50), "topic")
    assert len(few) == 50 and few.source["dropped_by_max_pairs"] == len(full) - 50
    order = [p.id for p in full.pairs]
    assert [order.index(p.id) for p in few.pairs] == sorted(order.index(p.id) for p in few.pairs)
    assert set(few.pairs) <= set(full.pairs)
    assert build_tsc(rows, ClozeConfig(max_pairs=50), "topic").content_hash == few.content_hash


def test_window_words_one_context_cut_for_every_view(rows):
    """context + the longer ending ≤ window_words: the most recent words are kept, the cut is in the task set
    itself (so every view and the word-overlap baseline see the same context), and how much was kept is said."""
    from modevo.tasks.storycloze import _fit_context

    assert _fit_context([["a", "b", "c"], ["d", "e"]], 3, 6) == ("c", "d e")
    assert _fit_context([["a", "b", "c"], ["d", "e"]], 3, None) == ("a b c", "d e")
    assert _fit_context([["a", "b"]], 6, 6) == ()
    full = build_tsc(rows, ClozeConfig(), "topic")
    cut = build_tsc(rows, ClozeConfig(window_words=15), "topic")
    ends = {p.id: p for p in full.pairs}
    assert cut.content_hash != full.content_hash and cut.source["window_words"] == 15
    for p in cut.pairs:
        longer = max(len(p.correct.split()), len(p.incorrect.split()))
        kept = " ".join(p.context).split()
        assert 0 < len(kept) <= 15 - longer
        whole = " ".join(ends[p.id].context).split() if p.id in ends else None
        if whole is not None:
            assert kept == whole[len(whole) - len(kept):]  # the most recent words, in order
    stats = cut.source["context_words"]
    assert stats["max"] <= 14 and stats["mean"] < stats["full_sentences_mean"]
    assert cut.source["skipped"]["ending_fills_window"] > 0  # 1-18 word endings: some leave no room
    with pytest.raises(ValueError, match="window_words"):  # load() turns it into a one-line ConfigError
        ClozeConfig(window_words=1)


def test_headings_are_never_context_ending_or_distractor():
    rows = corpus()
    marked = {r["id"] for k, r in enumerate(rows) if r["split"] != "train" and k % 9 == 0}
    for r in rows:
        r["heading"] = r["id"] in marked
    ts = build_tsc(rows, ClozeConfig(), "topic")
    by_text = {r["text"]: r["id"] for r in rows}
    used = {by_text[t] for p in ts.pairs for t in (*p.context, p.correct, p.incorrect)}
    assert used and not used & marked and ts.source["skipped"]["heading"] > 0


def test_bad_config_and_rows(rows):
    with pytest.raises(ConfigError, match="unknown tSC variant 'in_document'; did you mean 'in-document'"):
        build_tsc(rows, ClozeConfig(), "in_document")
    for bad in ({"context_sentences": 0}, {"tolerance": -0.1}, {"splits": ["train"]}, {"max_pairs": 0}):
        with pytest.raises(ValueError):
            ClozeConfig(**bad)
    broken = [dict(r) for r in rows[:5]]
    del broken[2]["phones"]
    with pytest.raises(InputError, match=r"corpus row 2 \(doc0/000002\) lacks phones"):
        build_tsc(broken, ClozeConfig(), "topic")
    one_doc = [r for r in rows if r["doc_id"] == "doc0"]
    with pytest.raises(InputError, match="tSC topic: no items"):
        build_tsc(one_doc, ClozeConfig(), "topic")  # no other document to draw from


def test_cpu_scale_gives_over_1000_pairs_per_variant():
    """The cpu corpus: 10 documents of ~2,460 sentences in chunks of 20, 5% valid + 5% test (~124 held-out
    chunks, ~2,480 sentences), sentence lengths spread like novels' (1-60 words, most 5-25)."""
    rng = random.Random(3)
    rows = []
    for d in range(10):
        n_chunks = 123
        held = rng.sample(range(n_chunks), 12)
        split = {c: ("valid" if k < 6 else "test") for k, c in enumerate(held)}
        for i in range(n_chunks * 20):
            k = max(1, min(60, round(math.exp(rng.gauss(2.6, 0.7)))))
            text = " ".join([tag(d * 10000 + i)] + [rng.choice(WORDS) for _ in range(k - 1)])
            rows.append(make_row(f"doc{d}", i, i // 20, split.get(i // 20, "train"), text))
    assert 2300 < sum(r["split"] != "train" for r in rows) < 2600
    for v in ("topic", "in-document"):
        ts = build_tsc(rows, ClozeConfig(), v)
        assert len(ts) >= 1000 and ts.source["documents"] == 10, ts.source


def test_normalised_text_is_a_fixed_point_of_normalize(rows):
    """The renderer normalises items again: on the corpus's `text` that must change nothing."""
    written = ["Mr. Holmes was seated at the breakfast table.", "He paid £5 in 1884, i.e. too much!",
               "CHAPTER IV.", "George III was king; the boys' dog barked.", "\u201cDon't!\u201d she cried.",
               "It was 4.30 on the 21st of June 1850--and cold.", "XLII.", "Caf\u00e9 na\u00efve & co."]
    for w in written:
        spoken, reason = normalize(w)
        assert reason is None and normalize(spoken) == (spoken, None), w
    for p in build_tsc(rows, ClozeConfig(), "topic").pairs[:50]:
        for t in (p.correct, p.incorrect, *p.context):
            assert normalize(t) == (t, None)


def test_text_that_normalize_would_change_is_not_used():
    # normalize is idempotent on its own output (tests/test_properties.py), so the guard is for rows whose text
    # did not come from it: "book iv" would become "book four"
    texts = ["aa bb", "cc dd", "the book iv", "ee ff", "gg hh"]
    rows = [make_row("a", i, 0, "valid", t) for i, t in enumerate(texts)]
    rows += [make_row("b", i, 0, "test", t) for i, t in enumerate(["ab cd", "ef gh", "the book iv", "ij kl"])]
    ts = build_tsc(rows, ClozeConfig(context_sentences=1, tolerance=0.5), "topic")
    assert all("book iv" not in " ".join((p.correct, p.incorrect, *p.context)) for p in ts.pairs)
    assert ts.source["skipped"]["renormalises"] == 4 and ts.source["unstable_texts"] == 2


# ---------------------------------------------------------------- the StoryCloze CSV

HEADER = ["InputStoryid", "InputSentence1", "InputSentence2", "InputSentence3", "InputSentence4",
          "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2", "AnswerRightEnding"]


def story(k, answer=1):
    right, wrong = f"Story {k} ended well.", f"Story {k} turned into a fish."
    endings = [right, wrong] if answer == 1 else [wrong, right]
    return [f"id-{k}", f"Tom woke up {k}.", "He was hungry.", "He went to the kitchen.", "The fridge was empty.",
            *endings, str(answer)]


def write_csv(path, rows, header=HEADER):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    return path


def test_valid_csv_ssc_and_tsc(tmp_path):
    f = write_csv(tmp_path / "cloze.csv", [story(k, 1 + k % 2) for k in range(6)])
    ssc = load_storycloze_csv(f, "ssc")
    assert ssc.name == "ssc-csv" and len(ssc) == 6
    for k, p in enumerate(ssc.pairs):
        assert p.id == f"ssc/id-{k}" and p.group == f"id-{k}"
        assert p.correct == f"Story {k} ended well." and p.incorrect == f"Story {k} turned into a fish."
        assert p.context == (f"Tom woke up {k}.", "He was hungry.", "He went to the kitchen.", "The fridge was empty.")
    tsc = load_storycloze_csv(f, "tsc")
    assert tsc.name == "tsc-csv" and len(tsc) == 6
    rights = {f"Story {k} ended well." for k in range(6)}
    for k, p in enumerate(tsc.pairs):
        assert p.id == f"tsc/id-{k}" and p.correct == f"Story {k} ended well."
        assert p.incorrect in rights and p.incorrect != p.correct
    assert load_storycloze_csv(f, "tsc").content_hash == tsc.content_hash
    assert len({load_storycloze_csv(f, "tsc", seed=s).content_hash for s in range(4)}) > 1
    assert tsc.source["stories"] == 6 and len(tsc.source["sha256"]) == 64
    # a byte-order mark and blank lines are fine; column order does not matter
    g = tmp_path / "bom.csv"
    order = [7, 0, 5, 6, 1, 2, 3, 4]
    write_csv(g, [[s[i] for i in order] for s in (story(0), story(1))], header=[HEADER[i] for i in order])
    g.write_bytes(b"\xef\xbb\xbf" + g.read_bytes() + b"\r\n\r\n")
    assert [p.correct for p in load_storycloze_csv(g, "ssc").pairs] == ["Story 0 ended well.", "Story 1 ended well."]


def test_tsc_skips_another_story_with_the_same_right_ending(tmp_path):
    a, b, c = story(0), story(1), story(2)
    b[5] = a[5]  # stories 0 and 1 share their right ending: only story 2's can be their distractor
    ts = load_storycloze_csv(write_csv(tmp_path / "c.csv", [a, b, c]), "tsc")
    assert [p.incorrect for p in ts.pairs[:2]] == [c[5], c[5]]


def bad_case(name, tmp_path):
    f = tmp_path / f"{name}.csv"
    good = [story(k) for k in range(3)]
    if name == "missing_file":
        return tmp_path / "nope.csv", "file not found"
    if name == "missing_columns":
        write_csv(f, [r[:5] + r[6:7] for r in good], header=HEADER[:5] + HEADER[6:7])
        return f, r"line 1: missing column\(s\) RandomFifthSentenceQuiz1, AnswerRightEnding"
    if name == "empty_cell":
        good[1][3] = "  "
        write_csv(f, good)
        return f, "data row 2 \\(line 3\\): column InputSentence3 is empty"
    if name == "bad_answer":
        good[2][7] = "3"
        write_csv(f, good)
        return f, "data row 3 \\(line 4\\): AnswerRightEnding must be 1 or 2, got '3'"
    if name == "duplicate_id":
        good[2][0] = "id-0"
        write_csv(f, good)
        return f, "data row 3 \\(line 4\\): duplicate InputStoryid 'id-0' \\(first at data row 1\\)"
    if name == "invalid_utf8":
        write_csv(f, good)
        f.write_bytes(f.read_bytes().replace(b"hungry", b"hun\xffgry", 2))
        return f, "line 2: not valid UTF-8"
    if name == "header_only":
        write_csv(f, [])
        return f, "header but no data rows"
    if name == "empty_file":
        f.write_bytes(b"")
        return f, "empty file \\(no header\\)"
    if name == "short_row":
        good[1] = good[1][:6]
        write_csv(f, good)
        return f, "data row 2 \\(line 3\\): 6 fields, the header has 8"
    if name == "identical_endings":
        good[0][6] = good[0][5]
        write_csv(f, good)
        return f, "data row 1 \\(line 2\\): the two endings are identical"
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["missing_file", "missing_columns", "empty_cell", "bad_answer", "duplicate_id",
                                  "invalid_utf8", "header_only", "empty_file", "short_row", "identical_endings"])
def test_malformed_csv_is_one_clear_error(tmp_path, name):
    f, problem = bad_case(name, tmp_path)
    with pytest.raises(InputError, match=problem) as err:
        load_storycloze_csv(f, "ssc")
    msg = str(err.value)
    assert "\n" not in msg and str(f) in msg


def test_tsc_needs_two_stories_and_known_variants(tmp_path):
    f = write_csv(tmp_path / "one.csv", [story(0)])
    assert len(load_storycloze_csv(f, "ssc")) == 1
    with pytest.raises(InputError, match=f"{f}: tsc needs at least 2 stories.*found 1"):
        load_storycloze_csv(f, "tsc")
    with pytest.raises(ConfigError, match="unknown StoryCloze CSV variant 'ssc2'; did you mean 'ssc'"):
        load_storycloze_csv(f, "ssc2")
