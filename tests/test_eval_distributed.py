"""`modevo eval` split across 2 CPU processes (gloo): rank 0 writes exactly the summary.json and items.parquet
one process writes, whether the ranks are spawned by eval itself (score.world_size=2) or come from torchrun."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import novels_workspace, train_tiny
from modevo.config import load
from modevo.score.config import EvalConfig
from modevo.score.evaluate import evaluate_run, recorded_config

ROOT = Path(__file__).resolve().parent.parent
PARADIGMS = "[anaphor_number_agreement,regular_plural_subject_verb_agreement_1]"
OVERRIDES = ["tasks.names=[sblimp,tsc-topic]", f"tasks.blimp_paradigms={PARADIGMS}", "tasks.blimp_per_paradigm=9",
             "tasks.cloze.context_sentences=2", "score.n_boot=300"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "evaldist")


@pytest.fixture(scope="module")
def run(workdir):
    return train_tiny(workdir, "text-char")


def _cfg(*extra):
    return load(EvalConfig, ROOT / "configs/eval/smoke.yaml", [*OVERRIDES, *extra])


def _outputs(run_dir: Path) -> tuple[dict, object]:
    import pyarrow.parquet as pq

    (out,) = [p for p in (run_dir / "eval").iterdir() if (p / "summary.json").is_file()]
    return json.loads((out / "summary.json").read_text()), pq.read_table(out / "items.parquet")


def test_two_processes_write_what_one_writes(run):
    one = evaluate_run(run, _cfg(), progress=False, log_mlflow=False, force=True)
    summary1, items1 = _outputs(run)
    # an odd batch size in the split run too: neither the share nor the batch changes a score
    two = evaluate_run(run, _cfg("score.world_size=2", "score.batch_size=3"), progress=False, log_mlflow=False,
                       force=True)
    summary2, items2 = _outputs(run)
    assert set(summary1["results"]) == {"eval/sblimp", "eval/tsc-topic"}
    assert summary1["results"]["eval/tsc-topic"]["rendered"] > 1 and summary1["results"]["eval/sblimp"]["rendered"] > 1
    strip_batch = lambda s: json.loads(json.dumps(s).replace('"batch_size": 3', '"batch_size": 32'))  # noqa: E731
    assert strip_batch(summary2) == summary1  # identical content, word for word
    assert items2.equals(items1)
    assert strip_batch(json.loads(json.dumps(two))) == json.loads(json.dumps(one))  # and returns the same
    assert "world_size" not in summary2["eval_config"]["score"] and "device" not in summary2["eval_config"]["score"]
    assert summary2["eval_config"] == recorded_config(_cfg("score.batch_size=3"))


def test_a_result_scored_by_one_process_is_reused_by_two(run):
    evaluate_run(run, _cfg(), progress=False, log_mlflow=False)
    (out,) = [p for p in (run / "eval").iterdir() if (p / "summary.json").is_file()]
    stamp = (out / "summary.json").stat().st_mtime_ns
    evaluate_run(run, _cfg("score.world_size=2"), progress=False, log_mlflow=False)
    assert (out / "summary.json").stat().st_mtime_ns == stamp  # where it runs is not part of the config


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed beside this python")
def test_torchrun_launch_writes_what_one_writes(run):
    evaluate_run(run, _cfg(), progress=False, log_mlflow=False, force=True)
    summary1, items1 = _outputs(run)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "modevo", "eval",
                           "--run-ref", str(run), "--config", "configs/eval/smoke.yaml", "--no-mlflow", "--force",
                           "--no-progress", *OVERRIDES], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("eval/sblimp: acc") == 1  # rank 0 alone prints
    summary2, items2 = _outputs(run)
    assert summary2 == summary1 and items2.equals(items1)


def test_a_failing_rank_zero_does_not_leave_the_others_waiting(run):
    from modevo.errors import InputError

    with pytest.raises(InputError, match="unknown test rendering"):
        evaluate_run(run, _cfg("score.world_size=2", "score.test_renderings=[nope]"), progress=False,
                     log_mlflow=False, force=True)
