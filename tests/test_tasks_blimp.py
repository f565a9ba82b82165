"""sBLIMP source: the vendored subset loads and is intact; every malformed file is one clear InputError."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from modevo.cache import file_digest
from modevo.errors import InputError
from modevo.tasks.blimp import VENDORED, load_blimp

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "blimp"  # ../shared beside the checkout
REPO = Path(__file__).resolve().parents[1]


def rec(pid, good="The cat sleeps.", bad="The cat sleep.", uid="toy_agreement", **over):
    d = {"sentence_good": f"{good} {pid}", "sentence_bad": f"{bad} {pid}", "field": "morphology",
         "linguistics_term": "s-v_agreement", "UID": uid, "simple_LM_method": True, "pairID": str(pid)}
    d.update(over)
    return d


def write(path, *lines):
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def test_vendored_subset_loads():
    ts = load_blimp()
    assert ts.name == "sblimp" and ts.breakdowns == ("field", "phenomenon", "paradigm")
    per = {}
    for p in ts.pairs:
        per[p.label("paradigm")] = per.get(p.label("paradigm"), 0) + 1
        assert p.id == f"{p.label('paradigm')}/{p.id.split('/')[1]}" and p.correct != p.incorrect
    assert len(per) == 67 and min(per.values()) >= 50
    assert {p.label("field") for p in ts.pairs} == {"syntax", "morphology", "semantics", "syntax_semantics",
                                                  "syntax/semantics"}
    assert len({p.id for p in ts.pairs}) == len(ts)
    assert ts.source["vendored"] is True and len(ts.source["files"]) == 67 and ts.source["pairs"] == len(ts)


def test_content_hash_stable_and_sensitive(tmp_path):
    assert load_blimp().content_hash == load_blimp().content_hash
    d = tmp_path / "b"
    d.mkdir()
    f = write(d / "toy.jsonl", rec(0), rec(1))
    h = load_blimp(d).content_hash
    assert load_blimp(d).source["vendored"] is False
    write(f, rec(0), rec(1, bad="The cats sleeps."))
    assert load_blimp(d).content_hash != h


def test_one_file_and_filters():
    one = load_blimp(VENDORED / "adjunct_island.jsonl")
    assert len(one) == 60 and {p.label("paradigm") for p in one.pairs} == {"adjunct_island"}
    assert one.source["vendored"] is True
    few = load_blimp(per_paradigm=3)
    assert len(few) == 67 * 3
    full = load_blimp()
    first = [p for p in full.pairs if p.label("paradigm") == "passive_1"][:3]
    assert [p for p in few.pairs if p.label("paradigm") == "passive_1"] == first
    sub = load_blimp(paradigms=["passive_2", "adjunct_island"], per_paradigm=5)
    assert [p.label("paradigm") for p in sub.pairs] == ["adjunct_island"] * 5 + ["passive_2"] * 5  # file order


def test_unknown_paradigm_suggests_closest():
    with pytest.raises(InputError, match=r"'adjunct_islnd' \(closest: 'adjunct_island'\)"):
        load_blimp(paradigms=["adjunct_islnd"])


def test_int_pair_id_and_blank_lines(tmp_path):
    f = write(tmp_path / "toy.jsonl", rec(0, pairID=0), "", "   ", rec(1, pairID=1))
    assert [p.id for p in load_blimp(f).pairs] == ["toy_agreement/0", "toy_agreement/1"]


@pytest.mark.parametrize("bad, problem", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    (rec(1, sentence_good=None), "field 'sentence_good' must be a string"),
    ({k: v for k, v in rec(1).items() if k != "sentence_bad"}, "field 'sentence_bad' is missing"),
    ({k: v for k, v in rec(1).items() if k != "UID"}, "field 'UID' is missing"),
    ({k: v for k, v in rec(1).items() if k != "pairID"}, "field 'pairID' is missing"),
    (rec(1, pairID=1.5), "field 'pairID' must be an int or a string, got float"),
    (rec(1, field=3), "field 'field' must be a string, got int"),
    ({k: v for k, v in rec(1).items() if k != "linguistics_term"}, "field 'linguistics_term' is missing"),
    (rec(1) | {"sentence_good": "  "}, "field 'sentence_good' is empty"),
    (rec(1) | {"sentence_bad": "Same.", "sentence_good": "Same."}, "sentence_good and sentence_bad are identical"),
    (rec(0), "duplicate pairID '0' in paradigm 'toy_agreement'"),
    (rec(1, uid="other"), "UID 'other' differs from 'toy_agreement'"),
])
def test_malformed_line_is_one_error(tmp_path, bad, problem):
    f = write(tmp_path / "toy.jsonl", rec(0), "", bad)
    with pytest.raises(InputError) as e:
        load_blimp(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and "line 3" in msg and problem in msg, msg


def test_identical_pairs_can_be_skipped(tmp_path):
    f = write(tmp_path / "toy.jsonl", rec(0), rec(1) | {"sentence_bad": "Same.", "sentence_good": "Same."})
    ts = load_blimp(f, skip_identical=True)
    assert [p.id for p in ts.pairs] == ["toy_agreement/0"]
    assert ts.source["skipped_identical"] == ["toy_agreement/1"]


def test_duplicate_across_files_of_one_paradigm(tmp_path):
    write(tmp_path / "a.jsonl", rec(0))
    write(tmp_path / "b.jsonl", rec(1), rec(0))
    with pytest.raises(InputError, match=r"b\.jsonl, line 2: duplicate pairID '0'.*first at a\.jsonl, line 1"):
        load_blimp(tmp_path)


def test_path_problems(tmp_path):
    with pytest.raises(InputError, match="BLiMP path not found: .*nope"):
        load_blimp(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="BLiMP folder has no \\*.jsonl files"):
        load_blimp(tmp_path)
    f = write(tmp_path / "empty.jsonl", "", "  ")
    with pytest.raises(InputError, match=f"BLiMP file {f}: empty"):
        load_blimp(tmp_path)
    (tmp_path / "bin.jsonl").write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(InputError, match=r"bin\.jsonl, line 1: not valid UTF-8"):
        load_blimp(tmp_path / "bin.jsonl")
    with pytest.raises(InputError, match="per_paradigm must be a positive integer"):
        load_blimp(per_paradigm=0)


def test_manifest_matches_vendored_files():
    with open(VENDORED / "MANIFEST.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert sorted(r["uid"] + ".jsonl" for r in rows) == sorted(f.name for f in VENDORED.glob("*.jsonl"))
    for r in rows:
        f = VENDORED / f"{r['uid']}.jsonl"
        assert file_digest(f) == r["subset_sha256"], f"{f.name} differs from MANIFEST.tsv"
        assert len(f.read_text(encoding="utf-8").splitlines()) == int(r["pairs_kept"]) == 60


def test_note_gives_licence_and_attribution():
    note = (VENDORED / "NOTE.txt").read_text(encoding="utf-8")
    for s in ("CC BY 4.0", "Warstadt", "3e56b06fcabca9b30822fc66435fca6b1aa40bb1", "no line altered"):
        assert s in note


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="full BLiMP not on this machine")
def test_vendor_script_reproduces_subset_and_full_data_loads(tmp_path):
    out = tmp_path / "blimp"
    subprocess.run([sys.executable, str(REPO / "scripts/vendor_blimp.py"), "--source", str(SHARED),
                    "--out", str(out)], check=True, capture_output=True)
    for f in sorted(VENDORED.iterdir()):
        assert (out / f.name).read_bytes() == f.read_bytes(), f.name
    full = {ln for f in SHARED.glob("*.jsonl") for ln in f.read_bytes().splitlines()}
    assert all(ln in full for f in VENDORED.glob("*.jsonl") for ln in f.read_bytes().splitlines())
    with pytest.raises(InputError, match="identical"):
        load_blimp(SHARED)
    ts = load_blimp(SHARED, skip_identical=True)
    assert len(ts) == 67000 - 7 and len(ts.source["skipped_identical"]) == 7
