"""ZeroSpeech 2021 gold.csv in and submission out: pairing by id and voice, IPA mapping, one-line errors."""

import random
import re

import pytest

from modevo.errors import InputError
from modevo.tasks.ipa import ipa_to_arpabet
from modevo.tasks.zerospeech import (frequency_band, load_lexical_gold, load_syntactic_gold, read_submission,
                                     submission_scores, write_submission)

LEX_HEADER = "filename,id,voice,frequency,word,phones,length,correct"
SYN_HEADER = "filename,id,voice,type,subtype,correct,transcription"

# (id, frequency, word, word IPA, pseudoword IPA): IPA in the forms the mapper accepts
LEX_ITEMS = [
    ("1", "0", "cat", "k æ t", "k ɪ t"),
    ("2", "3", "ship", "ʃɪp", "ʃʌb"),
    ("3", "12", "change", "tʃˈeɪndʒ", "tʃˈaɪndʒ"),
    ("10", "250", "bird", "bɝd", "bɜːɹt"),
]
VOICES = ("Alex", "Bruce")


def lex_rows(items=LEX_ITEMS, voices=VOICES):
    rows = []
    for item, freq, word, wp, np_ in items:
        for v in voices:
            rows.append(f"w{item}{v},{item},{v},{freq},{word},{wp},{len(wp.split())},1")
            rows.append(f"n{item}{v},{item},{v},{freq},,{np_},{len(np_.split())},0")
    return rows


def write(path, header, rows):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


SYN_ITEMS = [
    ("1", "agreement", "simple", "the dog barks", "the dog bark"),
    ("2", "agreement", "across", "the dogs that bite bark", "the dogs that bite barks"),
    ("1", "island", "wh", "what did he see", "what did he see that"),
]


def syn_rows(items=SYN_ITEMS, voices=VOICES):
    rows = []
    for item, typ, sub, good, bad in items:
        for v in voices:
            rows.append(f"g{typ}{sub}{item}{v},{item},{v},{typ},{sub},1,{good}")
            rows.append(f"b{typ}{sub}{item}{v},{item},{v},{typ},{sub},0,{bad}")
    return rows


# -- IPA ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ipa,phones", [
    ("kæt", "K AE T"), ("ʃɪp", "SH IH P"), ("tʃeɪndʒ", "CH EY N JH"), ("bɝd", "B ER D"),
    ("ˈbɜːd", "B ER D"), ("b ɜː ɹ d", "B ER D"), ("t͡ʃɪn", "CH IH N"), ("t ʃ", "T SH"),
    ("dʒʌmp", "JH AH M P"), ("ɡoʊ", "G OW"), ("gəʊ", "G OW"), ("θɪŋ", "TH IH NG"), ("ðɛm", "DH EH M"),
    ("ʒ", "ZH"), ("jɛs", "Y EH S"), ("hiː", "HH IY"), ("fuːd", "F UW D"), ("bʊk", "B UH K"),
    ("ɹɛd", "R EH D"), ("rɛd", "R EH D"), ("bɔɪ", "B OY"), ("haʊs", "HH AW S"), ("laɪk", "L AY K"),
    ("lɒt", "L AA T"), ("fɑðɚ", "F AA DH ER"), ("ɔːl", "AO L"), ("bʌtn̩", "B AH T AH N"),
    ("b æ t ə ɹ z", "B AE T ER Z"), ("ə ɹ aʊ n d", "AH R AW N D"), ("ˌæb.ˈsɛnt", "AE B S EH N T"),
])
def test_ipa_known_words(ipa, phones):
    assert ipa_to_arpabet(ipa) == (phones.split(), [])


def test_ipa_unmappable_reported_not_dropped():
    phones, bad = ipa_to_arpabet("xɑʔt")
    assert phones == ["AA", "T"] and bad == ["x", "ʔ"]
    phones, bad = ipa_to_arpabet("kãt")  # an unknown diacritic stays on its letter
    assert phones == ["K", "T"] and bad == ["ã"]


# -- lexical --------------------------------------------------------------------------------------------

def test_lexical_pairs_by_id_and_voice(tmp_path):
    ts = load_lexical_gold(write(tmp_path / "gold.csv", LEX_HEADER, lex_rows()))
    assert ts.name == "swuggy-zr21" and len(ts) == 8
    assert [p.id for p in ts.pairs][:4] == ["1/Alex", "1/Bruce", "2/Alex", "2/Bruce"]
    assert ts.pairs[-1].id == "10/Bruce"  # natural order: 10 after 3
    p = {p.id: p for p in ts.pairs}["3/Alex"]
    assert p.correct == "change" and p.incorrect == ""
    assert p.correct_phones == (("CH", "EY", "N", "JH"),) and p.incorrect_phones == (("CH", "AY", "N", "JH"),)
    assert p.label("voice") == "Alex" and p.label("frequency") == "6-20" and p.group == "3"
    b = {p.id: p for p in ts.pairs}["10/Bruce"]
    assert b.correct_phones == (("B", "ER", "D"),) and b.incorrect_phones == (("B", "ER", "T"),)
    assert b.label("frequency") == ">100"
    assert ts.source["filenames"]["3/Alex"] == ["w3Alex", "n3Alex"]
    assert ts.source["unmappable"] == {} and ts.source["dropped_unmappable"] == 0
    assert ts.breakdowns == ("frequency", "length", "voice")


def test_shuffled_rows_same_taskset(tmp_path):
    rows = lex_rows()
    a = load_lexical_gold(write(tmp_path / "a.csv", LEX_HEADER, rows))
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    assert shuffled != rows
    b = load_lexical_gold(write(tmp_path / "b.csv", LEX_HEADER, shuffled))
    assert a.content_hash == b.content_hash and a.pairs == b.pairs
    assert a.source["filenames"] == b.source["filenames"]
    # columns in another order read the same (by name, never position)
    cols = LEX_HEADER.split(",")
    perm = [cols.index(c) for c in reversed(cols)]
    rev = [",".join(r.split(",")[i] for i in perm) for r in shuffled]
    c = load_lexical_gold(write(tmp_path / "c.csv", ",".join(reversed(cols)), rev))
    assert c.content_hash == a.content_hash
    srows = syn_rows()
    s1 = load_syntactic_gold(write(tmp_path / "s1.csv", SYN_HEADER, srows))
    random.Random(5).shuffle(srows)
    s2 = load_syntactic_gold(write(tmp_path / "s2.csv", SYN_HEADER, srows))
    assert s1.content_hash == s2.content_hash and s1.source["filenames"] == s2.source["filenames"]


def test_content_hash_sensitive(tmp_path):
    a = load_lexical_gold(write(tmp_path / "a.csv", LEX_HEADER, lex_rows()))
    items = [LEX_ITEMS[0][:4] + ("k ɛ t",), *LEX_ITEMS[1:]]
    b = load_lexical_gold(write(tmp_path / "b.csv", LEX_HEADER, lex_rows(items)))
    assert a.content_hash != b.content_hash


def test_unmappable_pair_dropped_and_counted(tmp_path):
    items = [*LEX_ITEMS, ("4", "1", "loch", "lɒx", "lɒʔ")]
    ts = load_lexical_gold(write(tmp_path / "gold.csv", LEX_HEADER, lex_rows(items)))
    assert len(ts) == 8 and not any(p.id.startswith("4/") for p in ts.pairs)
    assert ts.source["unmappable"] == {"x": 2, "ʔ": 2}  # one per voice
    assert ts.source["dropped_unmappable"] == 2 and ts.source["dropped_ids"] == ["4/Alex", "4/Bruce"]
    assert ts.source["dropped_filenames"]["4/Alex"] == ["w4Alex", "n4Alex"]


def test_frequency_bands_match_official_binning():
    assert [frequency_band(c) for c in (0, 1, 4, 5, 19, 20, 99, 100, 5000)] == \
        ["oov", "1-5", "1-5", "6-20", "6-20", "21-100", "21-100", ">100", ">100"]


def test_nonword_spelling_ignored(tmp_path):
    rows = [r.replace(",,", ",kit,") if re.match(r"n1[A-Z]", r) else r for r in lex_rows()]
    ts = load_lexical_gold(write(tmp_path / "gold.csv", LEX_HEADER, rows))
    assert all(p.incorrect == "" for p in ts.pairs) and ts.source["nonword_spellings_ignored"] == 2


# -- syntactic ------------------------------------------------------------------------------------------

def test_syntactic_pairs(tmp_path):
    ts = load_syntactic_gold(write(tmp_path / "gold.csv", SYN_HEADER, syn_rows()))
    assert ts.name == "sblimp-zr21" and len(ts) == 6 and ts.breakdowns == ("type", "subtype", "voice")
    p = {p.id: p for p in ts.pairs}["island/wh/1/Bruce"]  # id 1 exists in two types: keyed by type too
    assert p.correct == "what did he see" and p.incorrect == "what did he see that"
    assert p.label("type") == "island" and p.label("subtype") == "wh" and p.label("voice") == "Bruce"
    assert p.group == "island/wh/1" and p.correct_phones is None
    assert ts.source["filenames"][p.id] == ["gislandwh1Bruce", "bislandwh1Bruce"]


# -- errors: one line naming file, line and problem ------------------------------------------------------

def _one_line(exc, file, line=None, *words):
    msg = str(exc.value)
    assert "\n" not in msg and str(file) in msg
    if line is not None:
        assert f"line {line}:" in msg, msg
    for w in words:
        assert w in msg, msg


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as e:
        load_lexical_gold(tmp_path / "nope.csv")
    _one_line(e, tmp_path / "nope.csv", None, "not found")


def test_empty_file(tmp_path):
    f = tmp_path / "gold.csv"
    f.write_text("")
    with pytest.raises(InputError) as e:
        load_lexical_gold(f)
    _one_line(e, f, 1, "empty")
    f.write_text(LEX_HEADER + "\n\n")
    with pytest.raises(InputError) as e:
        load_syntactic_gold(f)
    _one_line(e, f, 1, "empty")


def test_invalid_utf8(tmp_path):
    f = tmp_path / "gold.csv"
    f.write_bytes(("\n".join([LEX_HEADER, *lex_rows()[:2]]) + "\n").encode() + b"x\xff,1,Alex,0,,k,1,0\n")
    with pytest.raises(InputError) as e:
        load_lexical_gold(f)
    _one_line(e, f, 4, "UTF-8")


def test_missing_columns(tmp_path):
    f = write(tmp_path / "gold.csv", "filename,id,word,correct", ["a,1,cat,1"])
    with pytest.raises(InputError) as e:
        load_lexical_gold(f)
    _one_line(e, f, 1, "missing column", "'voice'", "'phones'")
    g = write(tmp_path / "syn.csv", "filename,id,voice,correct", ["a,1,Alex,1"])
    with pytest.raises(InputError) as e:
        load_syntactic_gold(g)
    _one_line(e, g, 1, "missing column", "'transcription'")


def test_unpaired(tmp_path):
    rows = lex_rows()
    del rows[3]  # the pseudoword of id 1, voice Bruce; its word is line 4 (header is line 1)
    f = write(tmp_path / "gold.csv", LEX_HEADER, rows)
    with pytest.raises(InputError) as e:
        load_lexical_gold(f)
    _one_line(e, f, 4, "unpaired", "id '1'", "voice 'Bruce'", "no pseudoword")
    srows = syn_rows()
    del srows[0]  # the grammatical sentence of agreement/simple/1/Alex; the lone row is now line 2
    g = write(tmp_path / "syn.csv", SYN_HEADER, srows)
    with pytest.raises(InputError) as e:
        load_syntactic_gold(g)
    _one_line(e, g, 2, "unpaired", "no grammatical sentence")


def test_repeated_row_kept_once_and_listed(tmp_path):
    rows = lex_rows()
    rows.append(rows[0])  # the same (id, voice, filename) again: line 18
    ts = load_lexical_gold(write(tmp_path / "gold.csv", LEX_HEADER, rows))
    assert len(ts) == 8 and ts.source["repeated_rows"] == [{"line": 18, "first_line": 2, "filename": "w1Alex"}]


def test_one_member_both_correct_and_incorrect_is_one_line(tmp_path):
    rows = lex_rows()
    rows.append(re.sub(r",1$", ",0", rows[0]))
    f = write(tmp_path / "gold.csv", LEX_HEADER, rows)
    with pytest.raises(InputError) as e:
        load_lexical_gold(f)
    _one_line(e, f, 18, "filename 'w1Alex'", "correct=0 here but correct=1 at line 2")


def test_shared_foil_serves_several_pairs(tmp_path):
    """Real gold files reuse one pseudoword's file across ids and voices: every row is a member, the file
    scores the same in each pair, and an (id, voice) with two foils gives two pairs (the official merge)."""
    rows = lex_rows()
    rows[3] = rows[3].replace("n1Bruce", "n1Alex")  # id 1: both voices use one foil file
    rows.append("n1Alex,2,Alex,3,,k ɪ t,3,0")  # ... which is also a second foil of id 2 / Alex
    ts = load_lexical_gold(write(tmp_path / "gold.csv", LEX_HEADER, rows))
    ids = [p.id for p in ts.pairs]
    assert "1/Bruce" in ids and "2/Alex/w2Alex/n1Alex" in ids and "2/Alex/w2Alex/n2Alex" in ids
    assert ts.source["filenames"]["1/Bruce"] == ["w1Bruce", "n1Alex"] and ts.source["shared_files"] == 2  # n1Alex, and w2Alex (two foils)
    assert ts.aggregate == "group" and len({p.group for p in ts.pairs}) == 4
    per_item = {p.id: (-1.0, -2.0 if "n1Alex" not in ts.source["filenames"][p.id] else -3.0) for p in ts.pairs}
    conflicts = []
    scores = submission_scores(ts, per_item, conflicts=conflicts)
    assert scores["n1Alex"] == -3.0 and conflicts == [] and len(scores) == 15


def test_syntactic_two_sentences_for_one_voice_is_one_line(tmp_path):
    rows = syn_rows()
    rows.append(rows[0].replace("gagreementsimple1Alex", "other"))
    f = write(tmp_path / "gold.csv", SYN_HEADER, rows)
    with pytest.raises(InputError) as e:
        load_syntactic_gold(f)
    _one_line(e, f, 14, "a second grammatical sentence", "first at line 2")


@pytest.mark.parametrize("value", ["2", "yes", "", "1.5"])
def test_bad_correct(tmp_path, value):
    rows = lex_rows()
    rows[2] = re.sub(r",1$", f",{value}", rows[2])
    f = write(tmp_path / "gold.csv", LEX_HEADER, rows)
    with pytest.raises(InputError) as e:
        load_lexical_gold(f)
    _one_line(e, f, 4, "'correct' must be 0 or 1")


@pytest.mark.parametrize("row,edit,line,needles", [
    (1, lambda r: r + ",extra", 3, ("expected 8 fields, got 9",)),
    (0, lambda r: r.replace(",1,Alex,", ",,Alex,"), 2, ("empty 'id'",)),
    (0, lambda r: r.replace(",cat,", ",,"), 2, ("real word", "empty 'word'")),
    (0, lambda r: r.replace(",0,cat,", ",lots,cat,"), 2, ("'frequency'",)),
], ids=["field-count", "empty-id", "empty-word", "bad-frequency"])
def test_wrong_field_count_and_empty_fields(tmp_path, row, edit, line, needles):
    rows = lex_rows()
    rows[row] = edit(rows[row])
    f = write(tmp_path / "gold.csv", LEX_HEADER, rows)
    with pytest.raises(InputError) as e:
        load_lexical_gold(f)
    _one_line(e, f, line, *needles)


# -- submission -----------------------------------------------------------------------------------------

def test_submission_round_trip(tmp_path):
    ts = load_lexical_gold(write(tmp_path / "gold.csv", LEX_HEADER, lex_rows()))
    per_item = {p.id: (-1.0 / (k + 3), -12.345678901234567 * (k + 1)) for k, p in enumerate(ts.pairs)}
    scores = submission_scores(ts, per_item)
    assert len(scores) == 16 and scores["w3Alex"] == per_item["3/Alex"][0]
    assert scores["n3Alex"] == per_item["3/Alex"][1]
    out = write_submission(tmp_path / "sub" / "lexical" / "dev.txt", scores)
    lines = out.read_text().splitlines()
    assert len(lines) == 16 and lines == sorted(lines, key=lambda ln: ln.split(" ")[0])
    for ln in lines:
        assert re.fullmatch(r"[A-Za-z0-9]+ -?[0-9.e+-]+", ln), ln  # '<filename> <score>', one space
    assert read_submission(out) == scores  # same numbers, bit for bit
    assert not list(out.parent.glob(".*tmp*"))  # the atomic write left no temporary


def test_submission_fill_and_errors(tmp_path):
    items = [*LEX_ITEMS, ("4", "1", "loch", "lɒx", "lɒk")]
    ts = load_lexical_gold(write(tmp_path / "gold.csv", LEX_HEADER, lex_rows(items)))
    partial = {"1/Alex": (-1.0, -2.0)}
    assert set(submission_scores(ts, partial)) == {"w1Alex", "n1Alex"}
    full = submission_scores(ts, partial, fill=0.0)
    assert len(full) == 20 and full["w4Alex"] == 0.0 and full["w2Bruce"] == 0.0 and full["w1Alex"] == -1.0
    with pytest.raises(InputError, match="not one of its ZeroSpeech pairs"):
        submission_scores(ts, {"99/Alex": (0.0, 0.0)})
    with pytest.raises(InputError, match="not finite"):
        write_submission(tmp_path / "x.txt", {"a": float("nan")})
    with pytest.raises(InputError, match="bad filename"):
        write_submission(tmp_path / "x.txt", {"a b": 1.0})
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1.0\nb\n")
    with pytest.raises(InputError, match=r"line 2: must be '<filename> <score>'"):
        read_submission(bad)


def test_group_aggregate_is_the_official_mean_of_item_means():
    """Item A has three pairs (1, 0, 0), item B one (1): the official score is (1/3 + 1) / 2, not 2/4."""
    import numpy as np

    from modevo.score.config import ScoringConfig
    from modevo.score.evaluate import summarise
    from modevo.score.pairs import PairScores
    from modevo.tasks.base import Pair, TaskSet
    from modevo.tasks.render import RenderedTask

    pairs = tuple(Pair(id=f"{g}/{k}", correct="a", incorrect="b", group=g, labels=(("voice", f"v{k}"),))
                  for g, k in (("A", 0), ("A", 1), ("A", 2), ("B", 0)))
    empty = [np.zeros(1, np.int64)] * 4
    for aggregate, expected in (("group", (1 / 3 + 1) / 2), ("pair", 0.5)):
        task = TaskSet(name="toy", pairs=pairs, breakdowns=("voice",), aggregate=aggregate)
        rt = RenderedTask(task=task, view="phone", rendering=None, correct=empty, incorrect=empty,
                          context=[np.zeros(0, np.int64)] * 4, skipped=[""] * 4, in_vocab=np.ones(4, bool), key="k")
        good = np.array([[0.0, -1.0], [0.0, -3.0], [0.0, -3.0], [0.0, -1.0]])  # (4, L+1): the last layer decides
        bad = np.array([[0.0, -2.0], [0.0, -2.0], [0.0, -2.0], [0.0, -2.0]])
        ps = PairScores(np.arange(4), good, bad, np.ones(4), np.ones(4))
        s = summarise(rt, ps, np.full(4, 0.5), ScoringConfig(n_boot=200))
        assert abs(s["acc"]["mean"] - expected) < 1e-12 and s["acc"]["n"] == (2 if aggregate == "group" else 4)
        assert abs(s["layers"][-1]["mean"] - expected) < 1e-12
        assert s["breakdowns"]["voice"]["v0"]["acc"] == 1.0  # voice v0: A/0 and B/0 both right
