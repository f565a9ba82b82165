"""`modevo plan` marks exactly what is cached and what would run; `modevo factor` runs the missing steps."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import tiny_run_overrides
from modevo.cli import main
from modevo.corpus import synth
from modevo.errors import ConfigError
from modevo.pipeline import format_plan, plan
from modevo.views.registry import factor_views

ROOT = Path(__file__).resolve().parent.parent
needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")
EVAL = ["tasks.names=[sblimp]", "tasks.blimp_per_paradigm=2", "score.n_boot=200"]


def _plan(novels, tmp_path, views):
    over = [o for o in tiny_run_overrides(novels, tmp_path) if not o.startswith("train.runs_dir")]
    return plan("smoke", views, [0], runs_dir=tmp_path / "runs", configs=ROOT / "configs", overrides=over,
                eval_overrides=EVAL)


def _status(steps):
    return [(s.stage, s.what.split(" (")[0].split(":")[0], s.done) for s in steps]


def test_factor_views_come_from_the_registry():
    assert factor_views("A") == ["text-bpe", "phone-bpe", "text-char", "phone"]
    assert "speech@varied/mel-kmeans" in factor_views("c") and len(factor_views("all")) == 9
    assert "speech@fixed/phonetic-kmeans" in factor_views("C", "phonetic-kmeans")  # TOKENIZER= reaches the views
    with pytest.raises(ConfigError, match="unknown factor"):
        factor_views("D")


def test_plan_on_a_half_built_cache_lists_exactly_the_missing_steps(novels, cache, tmp_path):
    views = ["text-char", "phone"]
    steps = _plan(novels, tmp_path, views)
    assert _status(steps) == [("corpus", "smoke text and phones", False),
                              ("train", "text-char seed 0", False), ("eval", "text-char seed 0", False),
                              ("generate", "text-char seed 0", False),
                              ("train", "phone seed 0", False), ("eval", "phone seed 0", False),
                              ("generate", "phone seed 0", False)]
    assert all(s.estimate_s is not None and s.estimate_s > 0 for s in steps)
    # build the corpus and train + score one condition: exactly those steps turn cached
    corpus = steps[0].command[3:]
    assert main(corpus + ["--no-progress"]) == 0
    train = steps[1].command[3:]
    train[train.index("--config") + 1] = str(ROOT / "configs/train/smoke.yaml")
    assert main(train) == 0
    assert main(["eval", "--all", "--scale", "smoke", "--runs-dir", str(tmp_path / "runs"), "--no-progress",
                 "--no-mlflow", "--config", str(ROOT / "configs/eval/smoke.yaml"), *EVAL]) == 0
    after = _plan(novels, tmp_path, views)
    assert [s.done for s in after] == [True, True, True, False, False, False, False]
    text = format_plan(after)
    assert "4 of 7 steps to run" in text and "cached" in text
    # sampled and judged (a few prompts: the step's own defaults are the paper's 100 × 10): that step turns cached
    run = next((tmp_path / "runs").glob("smoke/text-char/*"))
    assert main(["generate", "--run", str(run), "--prompts", "3", "--seeds", "2", "--no-progress"]) == 0
    assert [s.done for s in _plan(novels, tmp_path, views)] == [True, True, True, True, False, False, False]


@needs_espeak
def test_plan_lists_renderings_and_units_for_frame_views(novels, cache, tmp_path):
    steps = _plan(novels, tmp_path, ["phone-repeat@mean", "speech@fixed/mel-kmeans"])
    stages = [s.stage for s in steps]
    assert stages == ["corpus", "rendering", "rendering", "units", "train", "eval", "generate", "train", "eval",
                      "generate"]
    assert {s.what for s in steps if s.stage == "rendering"} == {"speech rendering 'fixed'",
                                                                 "speech rendering 'varied'"}  # mean_from=varied


@needs_espeak
def test_plan_at_25hz_builds_its_units_and_halves_frame_estimates(novels, cache, tmp_path):
    at50 = _plan(novels, tmp_path, factor_views("C"))
    at25 = _plan(novels, tmp_path, factor_views("C", rate_hz=25))
    units = [s for s in at25 if s.stage == "units"]
    assert len(units) == 1 and units[0].command.count("--rate") == 1
    assert units[0].command[units[0].command.index("--rate") + 1] == "25hz" and "at 25hz" in units[0].what
    assert "--rate" not in next(s for s in at50 if s.stage == "units").command
    assert [s.what.split(" seed")[0] for s in at25 if s.stage == "train"] == [
        "phone-repeat@varied:25hz", "speech@varied/mel-kmeans:25hz", "phone-repeat@fixed:25hz",
        "speech@fixed/mel-kmeans:25hz"]
    score = lambda steps: sum(s.estimate_s for s in steps if s.stage == "eval")  # noqa: E731
    assert score(at25) < 0.75 * score(at50)  # half the frames to read, the same items to render


def test_plan_cli_bad_scale_is_one_line(capsys, tmp_path):
    assert main(["plan", "A", "--scale", "nosuch", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no training config for scale 'nosuch'" in err


def test_factor_a_end_to_end_prints_its_table3_rows(novels, cache, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the steps name configs/ relative to the project, as the Makefile does
    eval_cfg = tmp_path / "eval.yaml"
    eval_cfg.write_text("tasks:\n  names: [sblimp]\n  blimp_per_paradigm: 2\nscore:\n  n_boot: 200\n")
    over = [o for o in tiny_run_overrides(novels, tmp_path) if not o.startswith("train.runs_dir")]
    argv = ["factor", "A", "--scale", "smoke", "--runs-dir", str(tmp_path / "runs"), "--eval-config", str(eval_cfg),
            "--out", str(tmp_path / "results"), *over]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Table 3 (smoke), factor A" in out
    assert "| A | text-bpe | phone-bpe | sblimp |" in out and "| A | text-char | phone | sblimp |" in out
    assert (tmp_path / "results" / "table3.md").is_file() and (tmp_path / "results" / "fig2_layers.png").is_file()
    times = [json.loads(ln) for ln in (tmp_path / "runs" / "smoke" / "pipeline-times.jsonl").read_text().splitlines()]
    assert [t["stage"] for t in times] == ["corpus"] + ["train"] * 4 + ["eval", "generate"]  # each run, timed once
    assert all(t["exit"] == 0 and t["seconds"] > 0 and t["processor"] and t["cpus"] for t in times)
    assert times[-2]["what"] == ("scoring text-bpe seed 0, phone-bpe seed 0, text-char seed 0, phone seed 0 "
                                 "(and any other unscored run of the scale)")  # which runs the one eval step was for
    judged = sorted((tmp_path / "runs").glob("smoke/*/*/samples/*/judged.json"))
    assert len(judged) == 4  # every condition's continuations judged, so Table 4 gets its column
    assert "continuation PPL" in out
    assert "| total |" in (tmp_path / "results" / "wall_times.md").read_text()
    prov = json.loads((tmp_path / "results" / "provenance.json").read_text())
    trained = [r for rs in prov["runs"].values() for r in rs]
    assert len(trained) == 4 and all(int(r["threads"]) >= 1 and r["processor"] for r in trained)
    # a second call finds every step cached and runs nothing
    assert main(["plan", "A", "--scale", "smoke", "--runs-dir", str(tmp_path / "runs"), "--eval-config",
                 str(eval_cfg), *over]) == 0
    assert "0 of 13 steps to run" in capsys.readouterr().out  # corpus + 4 conditions × (train, eval, generate)
    # the same runs packed and unpacked on another machine (no weights): still nothing to run there, and the
    # factor's tables come out of them
    assert main(["runs", "pack", "--scale", "smoke", "--out", str(tmp_path / "bundles"), "--runs-dir",
                 str(tmp_path / "runs")]) == 0
    assert main(["runs", "unpack", str(tmp_path / "bundles"), "--runs-dir", str(tmp_path / "elsewhere")]) == 0
    assert "unpacked 4 run(s)" in capsys.readouterr().out
    assert not list((tmp_path / "elsewhere").rglob("*.pt"))
    assert main(["plan", "A", "--scale", "smoke", "--runs-dir", str(tmp_path / "elsewhere"), "--eval-config",
                 str(eval_cfg), *over]) == 0
    plan = capsys.readouterr().out
    assert "0 of 13 steps to run" in plan and "no weights" not in plan
    # a bundle scored but never sampled (as results/cpu's 2026-12-04 runs): nothing to run, and the plan says why
    # its continuations are missing instead of calling them cached
    for samples in (tmp_path / "elsewhere").glob("smoke/phone/*/samples"):
        shutil.rmtree(samples)
    assert main(["plan", "A", "--scale", "smoke", "--runs-dir", str(tmp_path / "elsewhere"), "--eval-config",
                 str(eval_cfg), *over]) == 0
    plan = capsys.readouterr().out
    assert "0 of 13 steps to run" in plan and "1 step(s) of unpacked runs cannot run here" in plan
    marked = [ln for ln in plan.splitlines() if ln.split()[1:3] == ["no", "weights"]]
    assert len(marked) == 1 and marked[0].startswith("generate") and "phone seed 0: continuations" in marked[0]
    assert main(["report", "--scale", "smoke", "--factor", "A", "--runs-dir", str(tmp_path / "elsewhere"),
                 "--out", str(tmp_path / "results-elsewhere")]) == 0
    assert "| A | text-char | phone | sblimp |" in capsys.readouterr().out
