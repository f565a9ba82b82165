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
  tokens), a corrupt resume checkpoint, a truncated milestone
- faults (issue 26): a full disk (ENOSPC, EDQUOT) in an atomic file or folder write, a milestone, last.ckpt,
  a corpus build through the CLI (finished shard kept, no temporary, a rerun finishes) and in a library's own
  write; MODEVO_CACHE naming a file; a read-only cache asked to build; a --config that is a folder; config
  values that become folder names ('..', separators, empty); cache reads: a torn corpus manifest, a corpus
  shard whose bytes changed (refused, then rebuilt alone by following the message), an unverified Arrow
  shard with a garbage header, a shard file missing, a torn shard meta.json, a view with a truncated stream /
  changed vocabulary / torn manifest / missing index, a corrupt run.json, corrupt rendering and units
  manifests, a changed rendered task set; a second trainer of one run folder (names the holder's PID) and
  `train --wait`

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

import json
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


# ------------------------------------------------------------------ faults: a full disk
import errno  # noqa: E402
import shutil  # noqa: E402

from conftest import novels_workspace, tiny_run_overrides, train_tiny  # noqa: E402

from modevo.cache import DiskFullError, atomic_dir, atomic_write_bytes  # noqa: E402


def temporaries(folder):
    return sorted(str(p) for p in Path(folder).rglob("*") if ".tmp" in p.name)


def full_disk_after(n_bytes, code=errno.ENOSPC):
    """A stand-in for a file's write that accepts n_bytes, then fails as a full disk does (the name is
    the file's, as the kernel's error carries it)."""
    def write(f, data):
        if len(data) > n_bytes:
            f.write(data[:n_bytes])
            f.flush()
            raise OSError(code, os.strerror(code), f.name)
        return f.write(data)
    return write


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on"), (errno.EDQUOT, "disk quota exceeded on")],
                         ids=["enospc", "edquot"])
def test_full_disk_in_an_atomic_write(tmp_path, monkeypatch, code, words):
    target = tmp_path / "manifest.json"
    target.write_bytes(b'{"finished": true}')
    real_open = open

    class Full:  # open() whose files take 10 bytes, then report a full disk
        def __init__(self, *a, **k):
            self.f = real_open(*a, **k)
            self.name = self.f.name

        def write(self, data):
            return full_disk_after(10, code)(self.f, data)

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr("builtins.open", Full)
    with pytest.raises(DiskFullError) as e:
        atomic_write_bytes(target, b"x" * (3 << 20))
    monkeypatch.undo()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(words) and str(target) in msg and "needs about 3 MB" in msg, msg
    assert target.read_bytes() == b'{"finished": true}' and temporaries(tmp_path) == []


def test_full_disk_in_an_atomic_dir_keeps_finished_entries(tmp_path):
    done = tmp_path / "shards" / "00000"
    with atomic_dir(done) as tmp:
        (tmp / "data").write_bytes(b"finished")
    with pytest.raises(DiskFullError) as e:
        with atomic_dir(tmp_path / "shards" / "00001") as tmp:
            (tmp / "data").write_bytes(b"y" * (2 << 20))
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "data2"))
    msg = str(e.value)
    assert str(tmp_path / "shards" / "00001") in msg and "needs more than 2 MB" in msg, msg
    assert (done / "data").read_bytes() == b"finished" and temporaries(tmp_path) == []
    assert not (tmp_path / "shards" / "00001").exists()


def test_full_disk_while_saving_a_milestone(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from modevo.train import callbacks
    from modevo.train.model import GPT
    from modevo.train.model_config import ModelConfig

    # what save_weights reads of a LightningModule; ~3 MB of fp32 weights
    Module = SimpleNamespace(model=GPT(ModelConfig(vocab_size=1500, n_layer=1, n_head=2, n_kv_head=1, d_model=256,
                                                   max_seq_len=8)))
    mb = round(sum(v.numel() * v.element_size() for v in Module.model.state_dict().values()) / 2**20)

    first = tmp_path / "tokens-000000000008.pt"
    callbacks.save_weights(Module, first, {"tokens": 8})
    before = first.read_bytes()
    real_save = torch.save

    def full(obj, path):  # half the file lands, then the disk is full
        real_save(obj, path)
        Path(path).write_bytes(Path(path).read_bytes()[:1000])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DiskFullError) as e:
        callbacks.save_weights(Module, tmp_path / "tokens-000000000016.pt", {"tokens": 16})
    msg = str(e.value)
    assert "tokens-000000000016.pt" in msg and f"(needs about {mb} MB)" in msg and "\n" not in msg, msg
    assert first.read_bytes() == before and temporaries(tmp_path) == []
    assert not (tmp_path / "tokens-000000000016.pt").exists()


def test_full_disk_under_torch_save_without_an_errno(tmp_path, monkeypatch):
    """torch.save reports a full disk as a RuntimeError ("unexpected pos", "file write failed"), no errno:
    the writer tells it by the room left on the file system."""
    import collections

    from modevo.cache import atomic_file

    monkeypatch.setattr(shutil, "disk_usage", lambda p: collections.namedtuple("U", "total used free")(1 << 30, 1 << 30, 0))

    def full(obj, path):
        Path(path).write_bytes(b"\0" * 100)
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    target = tmp_path / "tokens-000000000016.pt"
    with pytest.raises(DiskFullError) as e:
        with atomic_file(target, 5 << 20) as tmp:
            full({}, tmp)
    assert str(target) in str(e.value) and "needs about 5 MB" in str(e.value) and temporaries(tmp_path) == []
    monkeypatch.undo()
    with pytest.raises(RuntimeError):  # with room left, the same error is not a full disk: it stays itself
        with atomic_file(target, 5 << 20) as tmp:
            full({}, tmp)


def test_full_disk_while_saving_the_resume_point(tmp_path):
    from modevo.train.callbacks import ResumePoint

    last = tmp_path / "last.ckpt"
    last.write_bytes(b"step 4")

    class Trainer:
        is_global_zero = True

        def save_checkpoint(self, path, weights_only=False):
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with pytest.raises(DiskFullError) as e:
        ResumePoint(last, 1)._save(Trainer())
    assert "last.ckpt" in str(e.value) and "no space left" in str(e.value)
    assert last.read_bytes() == b"step 4" and temporaries(tmp_path) == []


def test_full_disk_during_corpus_build_is_one_line(capsys, cache, tmp_path, monkeypatch):
    """Through the CLI: the first shard is written, the second hits a full disk; one line names the
    shard, the finished shard is kept and no temporary is left; a rerun with space finishes."""
    import datasets

    src = tmp_path / "docs"
    src.mkdir()
    for i in range(2):
        (src / f"b{i}.txt").write_text("The dog ran home. It was late.\n\n" * 6)
    real = datasets.Dataset.save_to_disk
    calls = []

    def save(self, path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            (Path(path)).mkdir(parents=True, exist_ok=True)
            (Path(path) / "data-00000-of-00001.arrow").write_bytes(b"\0" * 4096)
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(path) / "data-00000-of-00001.arrow"))
        return real(self, path, *a, **k)

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", save)
    argv = ["corpus", "build", "--no-progress", "--text-only", f"source.paths=[{src}]", "source.docs_per_shard=1",
            "split.chunk_sentences=2", "split.valid_fraction=0.2", "num_proc=1"]
    one_line(capsys, argv, ["no space left on", "shards/00001", "needs more than 4 kB", "free space"])
    (shard0,) = cache.glob("corpus/*/shards/00000")
    assert (shard0 / "data.sha256").is_file() and temporaries(cache) == []
    assert not list(cache.glob("corpus/*/shards/00001")) and not list(cache.glob("corpus/*/manifest.json"))
    monkeypatch.undo()
    monkeypatch.setenv("MODEVO_CACHE", str(cache))
    assert main(argv) == 0 and list(cache.glob("corpus/*/manifest.json"))


def test_full_disk_outside_modevos_writers_is_one_line(capsys, cache, monkeypatch):
    """An ENOSPC raised by a library's own write still becomes one line naming the file."""
    def full(cfg):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/cache/some-file.arrow")

    monkeypatch.setattr("modevo.corpus.stats.collect", full)
    one_line(capsys, ["corpus", "stats"], ["no space left on /data/cache writing /data/cache/some-file.arrow"])


@pytest.mark.parametrize("error, needles", [
    (lambda: RuntimeError("logging failed"), None),
    ("wrapped", ["no space left on /data/runs writing /data/runs/mlflow.db"]),
    ("sqlite", ["no space left for the MLflow store (sqlite: database or disk is full)"]),
    ("unnamed", ["no space left on a disk this command writes to (the library did not name the file)"]),
    ("denied", ["permission denied", "(the library did not name it)"]),
    ("readonly-sqlite", ["cannot write the MLflow store (sqlite: readonly database)"]),
], ids=["other_errors_keep_their_traceback", "full_disk_wrapped_by_a_library", "sqlite_store_full", "file_unnamed",
        "permission_denied_unnamed", "sqlite_store_readonly"])
def test_full_disk_wrapped_in_another_exception(capsys, cache, monkeypatch, error, needles):
    def fail(cfg):
        if error == "wrapped":
            try:
                raise OSError(errno.ENOSPC, "No space left on device", "/data/runs/mlflow.db")
            except OSError as e:
                raise RuntimeError("MLflow could not log the metric") from e
        if error == "unnamed":
            raise OSError(errno.ENOSPC, "No space left on device")
        if error == "sqlite":
            raise RuntimeError("(sqlite3.OperationalError) database or disk is full")
        if error == "denied":
            raise PermissionError(errno.EACCES, "Permission denied")
        if error == "readonly-sqlite":
            raise RuntimeError("(sqlite3.OperationalError) attempt to write a readonly database")
        raise error()

    monkeypatch.setattr("modevo.corpus.stats.collect", fail)
    if needles is None:
        with pytest.raises(RuntimeError):
            main(["corpus", "stats"])
    else:
        one_line(capsys, ["corpus", "stats"], needles)


# ------------------------------------------------------------------ faults: cache, config and environment
def test_cache_variable_pointing_at_a_file(capsys, tmp_path, monkeypatch):
    f = tmp_path / "cache.txt"
    f.write_text("not a folder")
    monkeypatch.setenv("MODEVO_CACHE", str(f))
    one_line(capsys, ["corpus", "stats"], ["MODEVO_CACHE points at", str(f), "is a file, not a folder"])
    assert f.read_text() == "not a folder"


def test_read_only_cache_asked_to_build(capsys, cache, folder, monkeypatch):
    cache.mkdir()
    if os.geteuid() != 0:
        cache.chmod(0o555)
    else:  # root writes anywhere: the refusal a read-only folder gives, raised where modevo makes its first folder
        real = Path.mkdir

        def mkdir(self, *a, **k):
            if str(self).startswith(str(cache)):
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real(self, *a, **k)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    try:
        one_line(capsys, ["corpus", "build", "--no-progress", "--text-only", f"source.paths=[{folder}]", "num_proc=1"],
                 ["cannot use", str(cache), "permission denied", "MODEVO_CACHE"])
    finally:
        cache.chmod(0o755)
    assert list(cache.iterdir()) == []


def test_config_that_is_a_folder(capsys, cache, tmp_path):
    one_line(capsys, ["corpus", "stats", "--config", str(tmp_path)], [str(tmp_path), "is a folder, not a YAML file"])


@pytest.mark.parametrize("override, needles", [
    ("train.scale=../elsewhere", ["scale '../elsewhere' becomes a folder name", "'/'"]),
    ("train.scale=a/b", ["scale 'a/b' becomes a folder name"]),
    ("train.scale=..", ["scale '..' becomes a folder name"]),
    ("train.scale=''", ["scale must not be empty"]),
    ("corpus.name=../../etc", ["name '../../etc' becomes a folder name"]),
    ("corpus.speech.recorded=../real", ["recorded '../real' becomes a folder name"]),
], ids=["scale_parent", "scale_separator", "scale_dotdot", "scale_empty", "corpus_name_parent", "recorded_parent"])
def test_config_values_that_become_path_parts(capsys, cache, tmp_path, override, needles):
    one_line(capsys, ["train", override, f"train.runs_dir={tmp_path / 'runs'}"], needles)
    assert not (tmp_path / "runs").exists() and not cache.exists()


# ------------------------------------------------------------------ faults: every cache read is verified
SHARDED = ["corpus.source.docs_per_shard=1"]  # three books, three shards


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished tiny text-char run: its corpus, view and run folder (tests corrupt copies or restore)."""
    gen = novels_workspace(tmp_path_factory, "faults")
    ws = next(gen)
    run_dir = train_tiny(ws, "text-char", 1, *SHARDED)
    yield ws, run_dir
    next(gen, None)


@pytest.fixture
def cache_copy(trained, tmp_path, monkeypatch):
    """A private copy of the trained workspace's cache (MODEVO_CACHE points at it)."""
    (tmp, novels), _ = trained
    copy = tmp_path / "cache"
    shutil.copytree(tmp / "cache", copy)
    monkeypatch.setenv("MODEVO_CACHE", str(copy))
    return copy


def _views_argv(trained, *views):
    (tmp, novels), _ = trained
    over = [o for o in tiny_run_overrides(novels, tmp, *SHARDED) if not o.startswith("train.")]
    return ["views", "build", "--no-progress", "--views", ",".join(views), "-c", str(ROOT / "configs/views/smoke.yaml"),
            *over]


def _train_argv(trained, *extra):
    (tmp, novels), _ = trained
    return ["train", "--no-progress", "-c", str(ROOT / "configs/train/smoke.yaml"),
            *tiny_run_overrides(novels, tmp, "train.view=text-char", "train.milestones=1", *SHARDED, *extra)]


def test_corpus_manifest_that_does_not_parse(capsys, trained, cache_copy):
    (m,) = cache_copy.glob("corpus/*/manifest.json")
    m.write_text('{"name": "default", "shards": 3')  # torn
    corpus_over = [o[len("corpus."):] for o in _views_argv(trained) if o.startswith("corpus.")]
    one_line(capsys, ["corpus", "stats", "-c", str(ROOT / "configs/corpus/smoke.yaml"), *corpus_over],
             [str(m), "is corrupt (not valid JSON, line 1)", "rerun `modevo corpus build`"])


def test_changed_corpus_shard_is_refused_then_rebuilt(capsys, trained, cache_copy):
    """A corpus shard whose bytes changed since it was written: one line naming the file and the repair;
    doing what it says rebuilds that shard alone, to the same content."""
    (m,) = cache_copy.glob("corpus/*/manifest.json")
    content = json.loads(m.read_text())["content_hash"]
    shard = m.parent / "shards" / "00000"
    (arrow,) = (shard / "data").glob("*.arrow")
    data = bytearray(arrow.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    arrow.write_bytes(bytes(data))
    line = one_line(capsys, _views_argv(trained, "phone"),
                    [str(arrow), "changed since it was written (sha256 differs)", f"delete {shard} and {m}"])
    assert "only that shard is rebuilt" in line
    others = {p: p.stat().st_mtime_ns for p in (m.parent / "shards").glob("0000[1-9]/data/*.arrow")}
    shutil.rmtree(shard)
    m.unlink()
    assert main(_views_argv(trained, "phone")) == 0
    capsys.readouterr()
    assert json.loads(m.read_text())["content_hash"] == content
    assert {p: p.stat().st_mtime_ns for p in others} == others  # the other shards were not rewritten


def test_arrow_shard_with_a_garbage_header(capsys, trained, cache_copy):
    """A shard written before digests were recorded (no data.sha256) whose Arrow file is garbage: still one line."""
    (m,) = cache_copy.glob("corpus/*/manifest.json")
    shard = m.parent / "shards" / "00001"
    (shard / "data.sha256").unlink()
    (arrow,) = (shard / "data").glob("*.arrow")
    arrow.write_bytes(b"GARBAGE!" * 64 + arrow.read_bytes()[512:])
    one_line(capsys, _views_argv(trained, "phone"), [f"cache shard {shard / 'data'} cannot be read", f"delete {shard}"])


def test_shard_file_missing(capsys, trained, cache_copy):
    (m,) = cache_copy.glob("corpus/*/manifest.json")
    (state,) = (m.parent / "shards" / "00000" / "data").glob("state.json")
    state.unlink()
    one_line(capsys, _views_argv(trained, "phone"), [str(state), "is missing"])


def test_torn_shard_meta_while_finishing_a_build(capsys, trained, cache_copy):
    (m,) = cache_copy.glob("corpus/*/manifest.json")
    m.unlink()  # an unfinished build: the manifest is written from the shards' meta.json
    meta = m.parent / "shards" / "00001" / "meta.json"
    meta.write_bytes(meta.read_bytes()[:40])
    one_line(capsys, _views_argv(trained, "phone"),
             [str(meta), "is corrupt", f"delete {meta.parent} and rerun `modevo corpus build`"])


def _view_root(cache_copy):
    (root,) = [p.parent for p in cache_copy.glob("corpus/*/views/*/manifest.json") if p.parent.name.startswith("text-char")]
    return root


@pytest.mark.parametrize("damage", ["truncated_stream", "changed_vocab", "torn_manifest", "missing_index"])
def test_damaged_view_is_refused_naming_the_file(capsys, trained, cache_copy, damage):
    root = _view_root(cache_copy)
    target = {"truncated_stream": "stream-train.npy", "changed_vocab": "vocab.json", "torn_manifest": "manifest.json",
              "missing_index": "index.npy"}[damage]
    f = root / target
    if damage == "truncated_stream":
        f.write_bytes(f.read_bytes()[:-64])
    elif damage == "changed_vocab":
        f.write_text(f.read_text().replace('"a"', '"A"', 1))
    elif damage == "torn_manifest":
        f.write_bytes(f.read_bytes()[:100])
    else:
        f.unlink()
    runs = {p: p.stat().st_mtime_ns for p in trained[1].rglob("*") if p.is_file()}
    line = one_line(capsys, _train_argv(trained), [str(f), f"delete {root} and rerun `modevo views build`"])
    assert ("is corrupt" if damage == "torn_manifest" else "is missing" if damage == "missing_index"
            else "changed since it was written") in line
    assert {p: p.stat().st_mtime_ns for p in runs} == runs  # the finished run is untouched


def test_corrupt_run_json(capsys, trained, cache_copy):
    info = trained[1] / "run.json"
    kept = info.read_bytes()
    info.write_bytes(kept[: len(kept) // 2])
    try:
        one_line(capsys, _train_argv(trained), [str(info), "is corrupt", "resumes from checkpoints/last.ckpt"])
    finally:
        info.write_bytes(kept)


def test_truncated_milestone_checkpoint(trained):
    (ckpt,) = sorted((trained[1] / "checkpoints").glob("tokens-*.pt"))[-1:]
    cut = ckpt.parent.parent / "cut" / ckpt.name
    cut.parent.mkdir(exist_ok=True)
    cut.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    view = json.loads((trained[1] / "run.json").read_text())
    from modevo.score.evaluate import load_checkpoint

    with pytest.raises(InputError) as e:
        load_checkpoint(cut, view["view"], torch.load(ckpt, weights_only=True)["vocab"])
    assert str(cut) in str(e.value) and "not a readable torch file" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("what", ["rendering", "units"])
def test_corrupt_rendering_and_units_manifests(tmp_path, what):
    from modevo.corpus.render import RenderingPaths, load_rendering
    from modevo.units.build import UnitsPaths, load_units

    root = tmp_path / f"{what}-key"
    root.mkdir()
    (root / "manifest.json").write_text("{'shards': 2}")  # not JSON (single quotes)
    with pytest.raises(InputError) as e:
        if what == "rendering":
            load_rendering(RenderingPaths("fixed", root))
        else:
            load_units(UnitsPaths("fixed", root))
    msg = str(e.value)
    assert str(root / "manifest.json") in msg and "is corrupt" in msg and "\n" not in msg
    assert ("modevo corpus build" if what == "rendering" else "modevo units build") in msg


def test_changed_bpe_model(tmp_path):
    from modevo.views.bpe import load_bpe, train_bpe

    sentences = [f"the dog number {i} ran home to the old house" for i in range(200)]
    folder = train_bpe(sentences, 40, tmp_path / "tok", "text", 1000)
    assert load_bpe(folder).get_piece_size() > 0
    model = folder / "sp.model"
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(InputError) as e:
        load_bpe(folder)
    assert str(model) in str(e.value) and "changed since it was written" in str(e.value)
    assert f"delete {folder} and rerun `modevo views build`" in str(e.value)


def test_changed_rendered_task_is_rendered_again(tmp_path):
    """A rendered task set (a cache entry of `eval`) whose items changed: refused by _load, so the
    renderer's cache miss path renders it again."""
    import numpy as np

    from modevo.cache import file_digest
    from modevo.tasks.render import _load

    root = tmp_path / "task"
    root.mkdir()
    z = {f"{k}_{p}": np.zeros(1 if p == "tokens" else 2, np.int64) for k in ("correct", "incorrect", "context")
         for p in ("tokens", "offsets")}
    np.savez(root / "items.npz", in_vocab=np.ones(1), context_dropped=np.zeros(1, np.int64), **z)
    (root / "items.json").write_text(json.dumps({"skipped": [""], "files": {"items.npz": file_digest(root / "items.npz")}}))
    assert len(_load(root, None, "v", None, "k").correct) == 1
    np.savez(root / "items.npz", in_vocab=np.zeros(1), context_dropped=np.zeros(1, np.int64), **z)
    with pytest.raises(InputError) as e:
        _load(root, None, "v", None, "k")
    assert str(root / "items.npz") in str(e.value) and "changed since it was written" in str(e.value)


# ------------------------------------------------------------------ faults: one trainer per run folder
HOLD = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.seek(0); f.truncate(); f.write(f"{os.getpid()}\\n"); f.flush()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(lock, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_trainer_of_a_run_says_who_holds_it(capsys, trained, cache_copy):
    run_dir = trained[1]
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    holder = _hold(run_dir / ".lock", 60)
    try:
        one_line(capsys, _train_argv(trained), [f"run {run_dir} is being trained by PID {holder.pid}", "--wait"])
    finally:
        holder.kill()
        holder.wait()
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_train_wait_starts_when_the_holder_finishes(capsys, trained, cache_copy):
    import time

    holder = _hold(trained[1] / ".lock", 3)
    held_at = time.monotonic()
    try:
        assert main(_train_argv(trained) + ["--wait"]) == 0
        waited = time.monotonic() - held_at  # the holder kept the lock 3 s after saying so
    finally:
        holder.wait()
    out, err = capsys.readouterr()
    assert waited >= 2.9 and "run text-char:" in out and "Traceback" not in err
