"""Bad corpus input: each case is one clear line (exit 2) or a counted skip, never a traceback."""

import json

from modevo.cli import main


def run(capsys, *argv):
    code = main(["corpus", "build", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def build_with(capsys, folder, *extra):
    return run(capsys, f"source.paths=[{folder}]", "split.chunk_sentences=2", "num_proc=1", *extra)


def skips_of(out):
    line = [ln for ln in out.splitlines() if ln.startswith("skipped:")][0]
    return line


def test_missing_path_is_one_line(capsys, cache, tmp_path):
    code, out, err = run(capsys, f"source.paths=[{tmp_path / 'nope'}]")
    assert code == 2
    assert err.strip().splitlines() == [f"modevo: error: corpus source not found: {tmp_path / 'nope'}"]


def test_empty_folder_is_one_line(capsys, cache, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, f"source.paths=[{tmp_path / 'empty'}]")
    assert code == 2 and "has no .txt files" in err and len(err.strip().splitlines()) == 1


def test_empty_file_counted(capsys, cache, folder):
    (folder / "empty.txt").write_text("")
    code, out, err = build_with(capsys, folder)
    assert code == 0 and "document:empty_document 1" in skips_of(out)
    assert "empty.txt: empty document" in err


def test_binary_file_counted(capsys, cache, folder):
    (folder / "blob.txt").write_bytes(bytes(range(256)) * 10)
    code, out, err = build_with(capsys, folder)
    assert code == 0 and "document:binary_file 1" in skips_of(out)
    assert "blob.txt: binary file" in err


def test_invalid_utf8_counted_with_offset(capsys, cache, folder):
    (folder / "latin1.txt").write_bytes("Caf\xe9 au lait. It was good.".encode("latin-1"))
    code, out, err = build_with(capsys, folder)
    assert code == 0 and "document:invalid_utf8 1" in skips_of(out)
    assert "invalid UTF-8 at byte 3" in err


def test_huge_line_counted(capsys, cache, folder):
    (folder / "huge.txt").write_text("word " * 10_000)  # 50,000 characters, no sentence end
    code, out, _ = build_with(capsys, folder)
    assert code == 0 and "too_long 1" in skips_of(out)


def test_digits_only_counted(capsys, cache, folder):
    (folder / "digits.txt").write_text("1234567890\n\n42\n")
    code, out, _ = build_with(capsys, folder)
    assert code == 0 and "no_letters 2" in skips_of(out)


def test_non_latin_counted(capsys, cache, folder):
    (folder / "greek.txt").write_text("Ἐν ἀρχῇ ἦν ὁ λόγος.\n\nВ начале было Слово.\n")
    code, out, _ = build_with(capsys, folder)
    assert code == 0 and "non_latin 2" in skips_of(out)


def test_nothing_left_is_one_line(capsys, cache, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "digits.txt").write_text("1234\n")
    code, _, err = run(capsys, f"source.paths=[{d}]", "num_proc=1")
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("modevo: error: corpus default: no sentence survived")


def test_bad_config_key_is_one_line(capsys, cache):
    code, _, err = run(capsys, "text.max_wrods=3")
    assert code == 2
    assert err.strip() == "modevo: error: unknown key 'text.max_wrods'; did you mean 'max_words'?"


def test_missing_dataset_is_one_line(capsys, cache, tmp_path):
    code, _, err = run(capsys, f"source.dataset={tmp_path / 'none.jsonl'}")
    assert code == 2 and err.startswith("modevo: error: cannot load dataset") and len(err.strip().splitlines()) == 1


def test_dataset_wrong_column_is_one_line(capsys, cache, tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"body": "It was dark."}) + "\n")
    code, _, err = run(capsys, f"source.dataset={f}")
    assert code == 2 and "has no column 'text' (columns: body)" in err
