"""Issue 26, part 3: what modevo prints — the UI's runs-list address, the training bar, a quiet experiment
creation, the job lock only for two jobs that really run, make smoke's closing summary, --scale's help."""

import glob
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import modevo
from modevo.errors import InputError
from modevo.jobs import PARENT_ENV, heavy_job
from modevo.report import ui
from modevo.report.smoke_summary import summary_lines
from modevo.train.callbacks import progress_text, token_progress_bar

ROOT = Path(__file__).resolve().parent.parent


# ---- modevo ui: the experiment's runs list ----

def test_runs_list_url_from_the_experiment_id(monkeypatch):
    asked = []

    def fake(url, path, body=None, params=None, timeout=30.0):
        asked.append((path, params))
        return {"experiment": {"experiment_id": "7", "name": "modevo", "lifecycle_stage": "active"}}

    monkeypatch.setattr(ui, "_request", fake)
    assert ui.runs_list_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000/#/experiments/7/runs"
    assert asked == [("/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": "modevo"})]

    def missing(*a, **k):
        raise InputError("MLflow at http://127.0.0.1:5000: Could not find experiment with name 'modevo'")

    monkeypatch.setattr(ui, "_request", missing)  # a store without the experiment yet: the bare address
    assert ui.runs_list_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_the_runs_route_is_mlflows_own():
    """The hash route is the one the installed MLflow UI defines for an experiment's runs tab."""
    import mlflow

    build = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    route = ui.RUNS_ROUTE.split("#", 1)[1].replace("{experiment_id}", ":experimentId")
    assert route == "/experiments/:experimentId/runs"
    assert any(f'"{route}"' in Path(p).read_text(errors="ignore") for p in glob.glob(str(build / "*.js")))


@pytest.mark.slow
def test_ui_prints_the_runs_list_of_a_tmp_store(tmp_path):
    from mlflow.tracking import MlflowClient

    runs = tmp_path / "runs"
    runs.mkdir()
    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    client.create_experiment("something-else")
    exp_id = client.create_experiment("modevo", artifact_location=str(runs / "artifacts"))
    handle = ui.serve(runs, port=0, block=False)
    try:
        assert handle.runs_url == f"{handle.url}/#/experiments/{exp_id}/runs"
        assert exp_id != "0"  # not the Default experiment's id by accident
    finally:
        handle.stop()


# ---- the training progress bar ----

def test_progress_text_counts_tokens_and_steps():
    assert progress_text(300, 610, 8192) == "2.5M/5.0M tokens, step 300/610"
    assert progress_text(0, 40, 16 * 128) == "0/81.9k tokens, step 0/40"
    assert progress_text(152_588, 152_588, 65_536) == "10.0B/10.0B tokens, step 152,588/152,588"
    assert "Epoch" not in progress_text(1, 2, 3)


def test_the_bar_describes_tokens_not_epochs():
    class Trainer:
        global_step, max_steps, max_epochs, current_epoch = 300, 610, -1, 0

    class Module:
        tokens_per_step = 8192

    bar = token_progress_bar()
    assert bar.describe(Trainer(), Module()) == "2.5M/5.0M tokens, step 300/610"
    assert "Epoch" not in bar.describe(Trainer(), Module())


def test_a_training_run_shows_tokens_and_creates_its_experiment_quietly(tmp_path, caplog, monkeypatch):
    """Lightning's 'Experiment with name modevo not found. Creating it.' is no longer a warning: the
    experiment is created before the logger looks for it."""
    from modevo.train.run import ensure_experiment
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with caplog.at_level(logging.WARNING):
        ensure_experiment(uri, "modevo", str(tmp_path / "artifacts"))
        ensure_experiment(uri, "modevo", str(tmp_path / "artifacts"))  # idempotent
    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name("modevo")
    assert exp is not None and exp.artifact_location.endswith("artifacts")
    assert not [r for r in caplog.records if "not found" in r.getMessage()]


# ---- the heavy-job lock: a warning only for two jobs that really run ----

FORKED = ("import os, sys; from modevo.jobs import heavy_job\n"
          "with heavy_job('modevo train --view phone'):\n"
          "    pid = os.fork()\n"
          "    if pid == 0:\n"
          "        sys.stdin.read(); os._exit(0)\n"
          "    print(pid, flush=True); os._exit(0)\n")  # killed-like: the parent never unlocks


def _env():
    return {**{k: v for k, v in os.environ.items() if k != PARENT_ENV},
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.skipif(sys.platform == "win32", reason="advisory file locks are POSIX")
def test_a_child_left_behind_by_a_dead_job_does_not_hold_the_lock(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MODEVO_LOCK_DIR", str(tmp_path))
    p = subprocess.Popen([sys.executable, "-c", FORKED], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env={**_env(), "MODEVO_LOCK_DIR": str(tmp_path)})
    child = int(p.stdout.readline())
    p.wait(timeout=30)
    try:
        os.kill(child, 0)  # the forked child is still alive, with the lock file open
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="modevo"), heavy_job("modevo eval --all") as shared:
            assert shared is False
        assert not [r for r in caplog.records if "another modevo job" in r.getMessage()]
    finally:
        p.stdin.close()
        for _ in range(300):
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            import time
            time.sleep(0.1)


CHILD = ("import logging, sys; from modevo.jobs import heavy_job\n"
         "logging.basicConfig(level=logging.WARNING)\n"
         "with heavy_job('modevo eval --all') as shared:\n"
         "    print('shared' if shared else 'alone', flush=True)\n")


@pytest.mark.skipif(sys.platform == "win32", reason="advisory file locks are POSIX")
def test_a_job_started_by_the_holder_does_not_warn_about_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEVO_LOCK_DIR", str(tmp_path))
    with heavy_job("modevo factor C"):
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60,
                             env={**_env(), "MODEVO_LOCK_DIR": str(tmp_path)})
    assert out.stdout.strip() == "alone" and "another modevo job" not in out.stderr


# ---- make smoke's closing summary ----

def _run(runs, view, name, scores, status="finished"):
    d = runs / "smoke" / view / name
    (d / "eval" / "tokens-000000081920").mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"status": status, "view": view}))
    results = {k: ({"not_scored": True} if v is None else {"acc": {"mean": v}}) for k, v in scores.items()}
    (d / "eval" / "tokens-000000081920" / "summary.json").write_text(json.dumps({"results": results}))


def test_smoke_summary_says_what_was_built_where_and_what_next(tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "text-bpe", "tokens-seed0-aa", {"sblimp": 0.512, "swuggy": 0.75})
    _run(runs, "speech-fixed", "tokens-seed0-bb", {"sblimp": 0.5, "swuggy": None, "sblimp/test-varied": 0.4})
    _run(runs, "phone", "tokens-seed0-cc", {"sblimp": 0.5}, status="running")
    text = "\n".join(summary_lines("smoke", runs, tmp_path / "results", cache_dir=tmp_path / "cache"))
    assert text.startswith("== make smoke: done ==")
    assert f"2 finished, 2 views, in {runs / 'smoke'}/<view>/<run>/" in text
    assert str(runs / "mlflow.db") in text
    assert "51.2" in text and "75.0" in text and "test-varied" not in text
    assert f"make report SCALE=smoke` writes them to {tmp_path / 'results' / 'smoke'}/" in text
    assert "make ui" in text and "make paper SCALE=cpu" in text
    (tmp_path / "results" / "smoke").mkdir(parents=True)
    (tmp_path / "results" / "smoke" / "table4.md").write_text("|")
    assert f"tables   {tmp_path / 'results' / 'smoke'}/: table3.md" in "\n".join(
        summary_lines("smoke", runs, tmp_path / "results"))
    assert "none finished" in "\n".join(summary_lines("smoke", tmp_path / "empty", tmp_path / "results"))


def test_make_smoke_ends_with_the_summary():
    smoke = (ROOT / "Makefile").read_text().split("\nsmoke:", 1)[1].split("\n\n", 1)[0]
    assert smoke.strip().splitlines()[-1].strip() == "@$(PY) -m modevo.report.smoke_summary --scale smoke"


# ---- --scale says what it takes and its default ----

@pytest.mark.parametrize("argv", [["plan", "--help"], ["factor", "--help"], ["report", "--help"]])
def test_scale_has_help_and_default(argv, capsys):
    from modevo.cli import main

    with pytest.raises(SystemExit):
        main(argv)
    out = " ".join(capsys.readouterr().out.split())
    assert "--scale SCALE" in out and "smoke (" in out and "(default: cpu)" in out
    assert modevo  # the package under test is the worktree's


def test_a_run_with_its_bar_counts_tokens_and_warns_of_no_missing_experiment(novels, cache, tmp_path):
    """`modevo train` with the bar on, on a fresh store: tokens and steps on the bar, never 'Epoch 0/-2', and
    no 'experiment not found, creating it' line."""
    from conftest import tiny_run_overrides

    cmd = [sys.executable, "-m", "modevo", "train", "-c", str(ROOT / "configs/train/smoke.yaml"), "--view",
           "text-char", *tiny_run_overrides(novels, tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env={**_env(), "MODEVO_CACHE": str(cache), "COLUMNS": "200", "OMP_NUM_THREADS": "1"})
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-2000:]
    assert "tokens, step" in text and "Epoch 0/-2" not in text and "Epoch" not in text
    assert "not found. Creating it" not in text
