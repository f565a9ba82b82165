"""The trainer: every view trains at smoke, runs land in MLflow with their tags, a killed run resumes to
identical weights, and a finished run is not retrained."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from modevo.config import load
from modevo.corpus import synth
from modevo.machine import cpu_model
from modevo.train.config import TrainStageConfig
from modevo.train.data import StepBatches, steps_for
from modevo.train.module import lr_lambda

from conftest import tiny_run_overrides as overrides

ROOT = Path(__file__).resolve().parent.parent
needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")
ALL_VIEWS = ["text-bpe", "text-char", "phone-bpe", "phone", "phone-repeat@mean", "phone-repeat@fixed",
             "phone-repeat@varied", "speech-fixed", "speech-varied"]


def test_lr_schedule():
    assert lr_lambda(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_lambda(9, 100, 10, 0.1) == pytest.approx(1.0)
    assert lr_lambda(99, 100, 10, 0.1) == pytest.approx(0.1, abs=1e-3)


def test_step_batches_are_a_function_of_the_step():
    import numpy as np

    stream = np.arange(1000)
    a = StepBatches(stream, 16, 4, seed=0, start=0, total=20)
    b = StepBatches(stream, 16, 4, seed=0, start=7, total=20)
    assert torch.equal(a[7], b[0]) and torch.equal(a[19], b[12])
    assert len(b) == 20  # the whole run, so Lightning never ends a resumed epoch early
    # an epoch visits every window once
    seen = np.concatenate([a.window_ids(s) for s in range(a.n_windows // 4)])
    assert len(set(seen.tolist())) == len(seen)
    assert steps_for("tokens", 1000, 1.0, 50, 4, 16) == 16
    assert steps_for("epochs", 1000, 2.0, 50, 4, 16) == 25


@needs_espeak
def test_the_unit_tokenizer_identifies_speech_runs_only():
    from modevo.train.run import run_key

    key = lambda view, tok: run_key(load(TrainStageConfig, ROOT / "configs/train/cpu.yaml",
                                         [f"train.view={view}", f"views.tokenizer={tok}"]))
    assert key("phone-repeat@varied", "mel-kmeans") == key("phone-repeat@varied", "phonetic-kmeans")
    assert key("speech-varied", "mel-kmeans") != key("speech-varied", "phonetic-kmeans")
    assert key("phone-repeat@varied", "mel-kmeans") != key("phone-repeat@fixed", "mel-kmeans")


def test_every_view_trains_and_lands_in_mlflow(novels, cache, tmp_path):
    import mlflow

    from modevo.train.run import train

    for view in ALL_VIEWS:
        stage = load(TrainStageConfig, ROOT / "configs/train/smoke.yaml", overrides(novels, tmp_path, f"train.view={view}"))
        info = train(stage, progress=False)
        assert info["status"] == "finished", view
        res = info["results"]
        assert res["tokens_seen"] >= 2048 and res["final_valid_loss"] > 0
        assert res["params_non_embedding"] < res["params_total"]
        assert len(info["checkpoints"]) >= 2  # milestones plus the final weights
        # what the numbers depend on beyond the config: one stretch of training on this processor and thread count
        assert info["compute"] == [{"processor": cpu_model(), "threads": torch.get_num_threads(), "gpu": "",
                                    "from_step": 0}]
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'runs').resolve() / 'mlflow.db'}")
    exp = client.get_experiment_by_name("modevo")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.scale = 'smoke'")
    assert sorted(r.data.tags["view"] for r in runs) == sorted(
        v if not v.startswith("speech-") else f"speech@{v.split('-')[1]}/mel-kmeans" for v in ALL_VIEWS)
    run = next(r for r in runs if r.data.tags["view"] == "phone")
    assert run.data.tags["factors"] == "A,B" and run.data.tags["budget"] == "tokens" and run.data.tags["seed"] == "0"
    assert len(run.data.tags["corpus_hash"]) == 64 and run.data.tags["code_version"]
    assert run.data.tags["threads"] == str(torch.get_num_threads()) and run.data.tags["processor"] == cpu_model()
    history = client.get_metric_history(run.info.run_id, "valid_loss")
    assert len(history) >= 2 and all(h.step % 128 == 0 for h in history)  # steps are tokens seen
    assert client.get_metric_history(run.info.run_id, "epochs")
    # the resolved config is an artifact inside the runs folder, not in ./mlruns of the working directory
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["config.yaml"]
    assert run.info.artifact_uri.removeprefix("file://").startswith(str((tmp_path / "runs" / "artifacts").resolve()))
    assert not (Path.cwd() / "mlruns").exists()


@needs_espeak
def test_finished_run_is_not_retrained(novels, cache, tmp_path):
    from modevo.train.run import train

    # 16 steps, validation every 5: the last validation happens at the end of training, off the schedule
    stage = load(TrainStageConfig, ROOT / "configs/train/smoke.yaml",
                 overrides(novels, tmp_path, "train.view=phone", "train.val_every_tokens=640"))
    first = train(stage, progress=False)
    assert [h["step"] for h in first["validation"]] == [5, 10, 15, 16]
    again = train(stage, progress=False)
    assert again["mlflow_run_id"] == first["mlflow_run_id"] and again["results"] == first["results"]


@needs_espeak
def test_killed_run_resumes_to_identical_weights(novels, tmp_path):
    from modevo.train.run import train

    extra = ["train.view=phone", "train.max_tokens=8192", "train.checkpoint_every_steps=8"]
    env = dict(os.environ, MODEVO_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    args = overrides(novels, tmp_path, *extra)
    # build the view first so the killed process spends its time training
    os.environ["MODEVO_CACHE"] = str(tmp_path / "cache")
    try:
        from modevo.views.build import build_views
        build_views(load(TrainStageConfig, ROOT / "configs/train/smoke.yaml", args), ["phone"], progress=False)
        proc = subprocess.Popen([sys.executable, "-m", "modevo", "train", "--no-progress", "-c",
                                 str(ROOT / "configs/train/smoke.yaml"), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, last = time.time() + 180, None
        while time.time() < deadline and proc.poll() is None:
            found = list((tmp_path / "runs").glob("smoke/phone/*/checkpoints/last.ckpt"))
            if found:
                last = found[0]
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert last is not None, "no resume point was written before the deadline"
        info = json.loads((last.parent.parent / "run.json").read_text())
        assert info["status"] == "running"
        resumed = train(load(TrainStageConfig, ROOT / "configs/train/smoke.yaml", args), progress=False)
        clean = train(load(TrainStageConfig, ROOT / "configs/train/smoke.yaml",
                           overrides(novels, tmp_path / "clean", *extra)), progress=False)
    finally:
        del os.environ["MODEVO_CACHE"]
    assert resumed["results"]["steps"] == clean["results"]["steps"]
    a = torch.load(resumed["checkpoints"][-1], weights_only=True)["state_dict"]
    b = torch.load(clean["checkpoints"][-1], weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["results"]["final_valid_loss"] == clean["results"]["final_valid_loss"]
    assert resumed["validation"] == clean["validation"]
    # the killed process and this one may use different thread counts: a new stretch only where it changed
    stretches = resumed["compute"]
    assert stretches[0]["from_step"] == 0 and 1 <= len(stretches) <= 2 and all(s["threads"] >= 1 for s in stretches)
    assert len(stretches) == 1 or (stretches[1]["from_step"] > 0 and stretches[1]["threads"] != stretches[0]["threads"])


def test_compiled_training_matches_eager_and_saves_plain_weights(novels, cache, tmp_path):
    """train.compile=true: the run trains, its loss tracks the eager run's, and its milestones load into an
    eager model under the same keys (nn.Module.compile works in place)."""
    from modevo.train.run import load_run_weights, train

    infos = {}
    for flag in ("false", "true"):
        stage = load(TrainStageConfig, ROOT / "configs/train/smoke.yaml",
                     overrides(novels, tmp_path / flag, "train.view=text-char", f"train.compile={flag}"))
        infos[flag] = train(stage, progress=False)
    eager, compiled = (infos[f]["results"]["final_valid_loss"] for f in ("false", "true"))
    assert abs(eager - compiled) < 0.05 * eager  # bf16 or fp32: the same recipe, other kernels
    model, payload = load_run_weights(infos["true"]["checkpoints"][-1])
    assert not any(k.startswith("_orig_mod") for k in payload["state_dict"])
    keys = {f: Path(infos[f]["run_dir"]).name for f in infos}  # <budget>-seed<seed>-<key>
    assert keys["true"] != keys["false"]  # compile is part of the recipe, so of the run key


def test_a_busy_sqlite_store_is_waited_for_and_other_errors_are_not():
    import sqlite3

    from modevo.train.run import transient_store_error, with_store_retries

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "ok"

    assert with_store_retries(flaky, "testing", first_wait_s=0.001) == "ok" and len(calls) == 3
    assert not transient_store_error(ValueError("database is locked"))  # not the store's error type
    assert not transient_store_error(sqlite3.OperationalError("no such table: runs"))  # a real fault
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        with_store_retries(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table: runs")), "x",
                           first_wait_s=0.001)
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # still busy after every attempt: raised
        with_store_retries(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("database is locked")), "x",
                           attempts=2, first_wait_s=0.001)
