"""Bad input, one test per case: a clear one-line error (exit status 2, no traceback) or a counted skip.

Covered here (mostly through the command line, `modevo.cli.main` in-process):
- corpus files: only punctuation, control characters, UTF-16 (another encoding), a non-text file named as
  the source
- configs through the CLI: unknown key in a YAML file, wrong type, a YAML file that is not a mapping, invalid
  YAML, a missing --config file, an override without '=', a scalar for a block, negative / too small sizes
  (num_proc, text_bpe_vocab, bpe_max_sentences, batch_size), misspelt view names (--views, --view, plan
  --views) with the closest one suggested
- CLI arguments: unknown option, a non-integer option, an unknown stage, a missing subcommand, an invalid
  choice, non-integer --seeds, an unknown factor, runs that do not exist (compare, report, generate),
  generate with nothing named
- checkpoints: unreadable file, a torch file that is not a milestone, a file that needs full unpickling
  (refused, never run), weights that do not fit their own model config (shape), another vocabulary (size or
  tokens), a corrupt resume checkpoint

Covered elsewhere (not repeated here):
- tests/test_corpus_bad_input.py: missing path, empty folder, empty / binary / invalid UTF-8 files, a huge
  line, digits only, other scripts (Greek, Cyrillic), nothing left, unknown key with suggestion, missing
  dataset, dataset without the text column
- tests/test_config.py: unknown key (override and YAML) with the closest key, wrong types, value checks,
  invalid YAML, missing config file, self-including defaults, negative sizes
- tests/test_tasks_zerospeech.py: gold.csv missing / empty / invalid UTF-8 / missing columns / unpaired ids /
  a repeated (id, voice, filename) row (kept once, listed) / one file both correct and incorrect / two
  grammatical sentences for one item and voice / bad 'correct' / wrong field counts
- tests/test_released_benchmarks.py: a gold row whose wav is missing, an unreadable wav (counted, listed
  skips), a wav of another rate or stereo (resampled / mixed down, counted), a folder without gold.csv, a
  released set that does not exist (CLI), spoken StoryCloze manifests with a missing column / duplicate
  id / one file for both endings / an empty cell / no stories, flat folders with ambiguous tags / one file
  per story / other names / no wavs
- tests/test_tasks_storycloze.py: StoryCloze CSV missing file / missing columns / empty cell / bad answer /
  duplicate ids / invalid UTF-8 / header only / empty / short row / identical endings; unknown variants
- tests/test_tasks_blimp.py: unknown paradigm with the closest, malformed lines, duplicate pair ids, paths
- tests/test_units_tokenizers.py: weights folders missing or of the wrong model type, tokenizer artefacts
  changed since training (hash mismatch), hubert layer out of range
- tests/test_units_build.py: unbuilt rendering, misspelt tokenizer, bad kernel
- tests/test_eval.py: a checkpoint of another view, eval CLI errors (no run, unknown task, bad headline)
- tests/test_views.py: misspelt view names; tests/test_report_ui.py: missing store, busy port
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modevo.cli import main
from modevo.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


def one_line(capsys, argv, needles, code=2):
    """Run the CLI; assert the exit status and that stderr is ONE line holding every needle, no traceback."""
    try:
        got = main(argv)
    except SystemExit as e:  # argparse exits itself
        got = e.code
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert got == code, (got, err)
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("modevo"), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ------------------------------------------------------------------ corpus files (counted skips)
def build(capsys, folder, *extra):
    code = main(["corpus", "build", "--no-progress", "--text-only", f"source.paths=[{folder}]",
                 "split.chunk_sentences=2", "num_proc=1", *extra])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, err
    return [ln for ln in out.splitlines() if ln.startswith("skipped:")][0], err


def test_corpus_only_punctuation_is_counted(capsys, cache, folder):
    (folder / "punct.txt").write_text("... !!! ---\n\n* * *\n\n?!\n")
    skipped, _ = build(capsys, folder)
    assert "no_letters 3" in skipped


def test_corpus_control_characters_are_counted(capsys, cache, folder):
    (folder / "bell.txt").write_text("It rang\x07 twice.\n\nA form\x0c feed here.\n")
    skipped, _ = build(capsys, folder)
    assert "control_chars 2" in skipped


def test_corpus_utf16_file_is_skipped_naming_it(capsys, cache, folder):
    (folder / "wide.txt").write_bytes("It was a dark night.".encode("utf-16"))
    skipped, err = build(capsys, folder)
    assert "document:" in skipped and "wide.txt" in err


def test_corpus_source_that_is_an_image(capsys, cache, tmp_path):
    f = tmp_path / "photo.png"
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert main(["corpus", "build", "--no-progress", "--text-only", f"source.paths=[{f}]", "num_proc=1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines() == [  # the skip, named, then one error
        f"modevo: skipped {f}: binary file (NUL bytes), not text",
        "modevo: error: corpus default: no sentence survived (skips: {'document:binary_file': 1}); check the "
        "sources and text limits"]


# ------------------------------------------------------------------ configs through the CLI
@pytest.mark.parametrize("yaml_text, needles", [
    ("text:\n  max_wrods: 3\n", ["unknown key 'text.max_wrods'", "did you mean 'max_words'"]),
    ("- a\n- b\n", ["cfg.yaml", "expected a mapping"]),
    ("a: [1, 2\n", ["cfg.yaml", "not valid YAML"]),
    ("split:\n  chunk_sentences: many\n", ["'split.chunk_sentences' expects an integer", "'many'"]),
], ids=["unknown_key_in_file", "not_a_mapping", "invalid_yaml", "wrong_type_in_file"])
def test_config_file_problems(capsys, cache, tmp_path, yaml_text, needles):
    (tmp_path / "cfg.yaml").write_text(yaml_text)
    one_line(capsys, ["corpus", "stats", "--config", str(tmp_path / "cfg.yaml")], needles)


@pytest.mark.parametrize("argv, needles", [
    (["corpus", "stats", "--config", "/no/such/cfg.yaml"], ["config file not found: /no/such/cfg.yaml"]),
    (["corpus", "stats", "text.max_words=abc"], ["'text.max_words' expects an integer, got 'abc'"]),
    (["corpus", "stats", "max_words"], ["override 'max_words' is not key=value"]),
    (["corpus", "stats", "source=5"], ["'source' expects a mapping", "got 5"]),
    (["corpus", "stats", "source.paths=5"], ["'source.paths' expects a list"]),
    (["corpus", "build", "--num-proc", "0"], ["num_proc must be positive"]),
    (["views", "stats", "views.text_bpe_vocab=-5"], ["text_bpe_vocab must be at least 50"]),
    (["views", "stats", "views.bpe_max_sentences=50"], ["bpe_max_sentences must be more than 100"]),
    (["train", "train.batch_size=-1"], ["batch_size must be positive"]),
    (["views", "build", "--views", "text-chr"], ["unknown view 'text-chr'", "did you mean 'text-char'"]),
    (["train", "--view", "phone-repet@varied"], ["did you mean 'phone-repeat@varied'"]),
    (["plan", "--views", "phone-bpee"], ["unknown view 'phone-bpee'", "did you mean 'phone-bpe'"]),
    (["views", "stats", "views.views=[speech-varid]"], ["did you mean 'speech-varied'"]),
], ids=["missing_config_file", "wrong_type_override", "override_without_equals", "scalar_for_block",
        "scalar_for_list", "num_proc_zero", "negative_bpe_vocab", "bpe_sample_too_small", "negative_batch_size",
        "misspelt_view_views_build", "misspelt_view_train", "misspelt_view_plan", "misspelt_view_config"])
def test_config_problems_on_the_command_line(capsys, cache, tmp_path, argv, needles):
    one_line(capsys, argv, needles)


# ------------------------------------------------------------------ CLI arguments
@pytest.mark.parametrize("argv, needles", [
    (["corpus", "build", "--bogus"], ["unrecognized arguments: --bogus", "see modevo corpus build --help"]),
    (["corpus", "build", "--num-proc", "x"], ["--num-proc: invalid int value: 'x'", "modevo corpus build --help"]),
    (["nonsense"], ["invalid choice: 'nonsense'", "'corpus'"]),
    (["corpus"], ["required: COMMAND"]),
    (["eval", "--checkpoints", "some"], ["invalid choice: 'some'", "'final', 'all'"]),
    (["ui", "--port", "abc"], ["--port: invalid int value: 'abc'"]),
    (["plan", "--seeds", "0,a"], ["--seeds takes comma-separated integers", "'0,a'"]),
    (["plan", "D"], ["unknown factor 'D'"]),
    (["factor", "Z"], ["unknown factor 'Z'"]),
], ids=["unknown_option", "non_integer_option", "unknown_stage", "missing_subcommand", "invalid_choice",
        "non_integer_port", "non_integer_seeds", "unknown_factor_plan", "unknown_factor_run"])
def test_cli_argument_problems(capsys, cache, argv, needles):
    one_line(capsys, argv, needles)


def test_compare_runs_that_do_not_exist(capsys, tmp_path):
    one_line(capsys, ["compare", "--a", str(tmp_path / "x"), "--b", str(tmp_path / "y")],
             ["no such run folder or checkpoint", str(tmp_path / "x")])


def test_generate_without_a_run_or_runs(capsys, tmp_path):
    one_line(capsys, ["generate"], ["name what to generate from", "--all"])
    one_line(capsys, ["generate", "--all", "--scale", "cpu", "--runs-dir", str(tmp_path / "runs")],
             ["no MLflow store at", "train a run first"])


def test_eval_of_a_file_that_is_not_a_checkpoint(capsys, tmp_path):
    (tmp_path / "runs.txt").write_text("runs/cpu/phone\n")
    one_line(capsys, ["eval", "--run", str(tmp_path / "runs.txt"), "--no-mlflow"],
             ["is a file but not a checkpoint", "runs.txt"])


def test_report_without_runs(capsys, tmp_path):
    one_line(capsys, ["report", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")],
             ["no MLflow store", str(tmp_path / "runs")])


# ------------------------------------------------------------------ checkpoints
def _tiny_payload(view="text-char", vocab=("<s>", "a", "b", "c")):
    from modevo.train.model import GPT
    from modevo.train.model_config import ModelConfig

    cfg = ModelConfig(vocab_size=len(vocab), n_layer=1, n_head=2, n_kv_head=1, d_model=16, max_seq_len=8)
    model = GPT(cfg)
    import dataclasses

    return {"state_dict": model.state_dict(), "model_config": dataclasses.asdict(cfg), "view": view,
            "vocab": list(vocab), "tokens": 8}


def _load(path, vocab=("<s>", "a", "b", "c")):
    from modevo.score.evaluate import load_checkpoint

    with pytest.raises(InputError) as e:
        load_checkpoint(path, "text-char", list(vocab))
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def test_checkpoint_that_is_not_a_torch_file(tmp_path):
    f = tmp_path / "tokens-000000000008.pt"
    f.write_bytes(b"not a checkpoint at all")
    assert "cannot be loaded as modevo weights; not a readable torch file" in _load(f)


def test_torch_file_that_is_not_a_milestone(tmp_path):
    f = tmp_path / "tokens-000000000008.pt"
    torch.save({"weights": torch.zeros(3)}, f)
    assert "not a modevo milestone (state_dict + model_config)" in _load(f)


class Gadget:  # a class that a full unpickler would construct
    pass


def test_checkpoint_needing_full_unpickling_is_refused(tmp_path):
    f = tmp_path / "tokens-000000000008.pt"
    torch.save({**_tiny_payload(), "extra": Gadget()}, f)
    assert "holds objects other than tensors and plain values (tests.test_bad_input.Gadget; refused" in _load(f)


def test_checkpoint_whose_weights_do_not_fit_its_shape(tmp_path):
    payload = _tiny_payload()
    payload["model_config"]["d_model"] = 32  # weights of d_model 16 under a config of 32
    f = tmp_path / "tokens-000000000008.pt"
    torch.save(payload, f)
    msg = _load(f)
    assert "its weights do not fit its model config: size mismatch for tok_emb.weight" in msg


def test_checkpoint_of_another_vocabulary(tmp_path):
    f = tmp_path / "tokens-000000000008.pt"
    torch.save(_tiny_payload(vocab=("<s>", "a", "b", "c", "d")), f)
    msg = _load(f)
    assert "vocabulary of 5 tokens" in msg and "(4 tokens)" in msg


def test_checkpoint_with_same_size_other_tokens(tmp_path):
    f = tmp_path / "tokens-000000000008.pt"
    torch.save(_tiny_payload(vocab=("<s>", "x", "y", "z")), f)
    assert "is not view text-char's here" in _load(f)


def test_good_checkpoint_loads(tmp_path):
    from modevo.score.evaluate import load_checkpoint

    f = tmp_path / "tokens-000000000008.pt"
    torch.save(_tiny_payload(), f)
    model, payload = load_checkpoint(f, "text-char", ["<s>", "a", "b", "c"])
    assert payload["view"] == "text-char" and not model.training


def test_corrupt_resume_checkpoint_is_one_line(tmp_path):
    from modevo.train.callbacks import checkpoint_step

    f = tmp_path / "last.ckpt"
    f.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError) as e:
        checkpoint_step(f)
    assert "\n" not in str(e.value) and "last.ckpt: not a resume checkpoint" in str(e.value)
    torch.save({"global_step": 7, "state_dict": {}}, f)
    assert checkpoint_step(f) == 7


def test_unreachable_tracking_uri_is_one_line_and_writes_nothing(tmp_path):
    """An http tracking server nobody listens on: one line, before any view is built or run folder made."""
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "modevo", "train", "-c", str(ROOT / "configs/train/smoke.yaml"),
                           "--view", "phone", f"train.tracking_uri=http://127.0.0.1:{port}",
                           f"train.runs_dir={runs}"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MODEVO_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"http://127.0.0.1:{port}" in lines[0] and "unreachable" in lines[0]
    assert not (tmp_path / "cache").exists() and not runs.exists()
