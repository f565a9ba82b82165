"""`modevo eval` end to end on tiny trained runs: summaries, per-item parquet, layer PNGs, MLflow metrics
and tags, the speech test grid, caching, and one clear line for what a user can get wrong."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import novels_workspace, train_tiny
from modevo.cli import main
from modevo.config import load
from modevo.corpus import synth
from modevo.errors import ConfigError, InputError
from modevo.score.config import EvalConfig
from modevo.score.evaluate import evaluate_run
from modevo.tasks.registry import load_task
from modevo.train.config import TrainStageConfig

ROOT = Path(__file__).resolve().parent.parent
PARADIGMS = "[anaphor_number_agreement,regular_plural_subject_verb_agreement_1]"
needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "eval")


def _train(workdir, view):
    return train_tiny(workdir, view)


def _cfg(*extra):
    return load(EvalConfig, ROOT / "configs/eval/smoke.yaml",
                ["tasks.names=[sblimp]", f"tasks.blimp_paradigms={PARADIGMS}", "tasks.blimp_per_paradigm=10",
                 "score.n_boot=500", *extra])


@pytest.fixture(scope="module")
def char_run(workdir):
    return _train(workdir, "text-char")


def test_eval_writes_summary_items_plots_and_mlflow(char_run):
    import pyarrow.parquet as pq
    from mlflow.tracking import MlflowClient

    results = evaluate_run(char_run, _cfg(), progress=False)
    (ckpt, summaries), = results.items()
    s = summaries["eval/sblimp"]
    task = load_task("sblimp", _cfg().tasks)
    assert s["task_hash"] == task.content_hash and s["items"] == 20 and s["rendered"] == 20
    n_layer = load(TrainStageConfig, char_run / "config.yaml").model.n_layer
    assert [r["layer"] for r in s["layers"]] == list(range(n_layer + 1))
    assert s["layers"][-1]["mean"] == s["acc"]["mean"]  # the last layer is the headline
    assert s["acc"]["lo"] <= s["acc"]["mean"] <= s["acc"]["hi"]
    assert set(s["baselines"]) == {"shorter_wins", "ngram"}
    assert set(s["breakdowns"]["paradigm"]) == set(PARADIGMS.strip("[]").split(","))
    assert s["protocol"]["headline"] == "sum" and s["mde"]["between_runs"] > 0
    out = char_run / "eval" / Path(ckpt).stem
    table = pq.read_table(out / "items.parquet").to_pydict()
    assert len(table["id"]) == 20 and all(len(x) == n_layer + 1 for x in table["layer_scores"])
    assert sum(table["score"]) / 20 == pytest.approx(s["acc"]["mean"])
    assert (out / "eval_sblimp.png").stat().st_size > 1000
    assert json.loads((out / "summary.json").read_text())["results"]["eval/sblimp"]["acc"] == s["acc"]

    info = json.loads((char_run / "run.json").read_text())
    client = MlflowClient(info["tracking_uri"])
    run = client.get_run(info["mlflow_run_id"])
    assert run.data.tags["task_hash.sblimp"] == task.content_hash
    assert json.loads(run.data.tags["scoring_protocol"])["hash"] == run.data.tags["protocol_hash"]
    curve = client.get_metric_history(info["mlflow_run_id"], "eval/sblimp/layer_acc")
    assert sorted(m.step for m in curve) == list(range(n_layer + 1))
    assert "eval/sblimp/baseline_ngram" in run.data.metrics
    assert run.data.metrics["eval/sblimp/field/morphology/acc"] == s["breakdowns"]["field"]["morphology"]["acc"]
    arts = [a.path for a in client.list_artifacts(info["mlflow_run_id"], f"eval/{Path(ckpt).stem}")]
    assert any(a.endswith(".png") for a in arts)


def test_rerun_reuses_rendered_items_and_gives_the_same_numbers(char_run, workdir):
    first = evaluate_run(char_run, _cfg(), progress=False, log_mlflow=False)
    rendered = sorted((workdir[0] / "cache").rglob("tasks/*/items.json"))
    again = evaluate_run(char_run, _cfg("score.batch_size=3"), progress=False, log_mlflow=False)
    assert sorted((workdir[0] / "cache").rglob("tasks/*/items.json")) == rendered
    strip = lambda r: {k: {m: v for m, v in s.items() if m != "protocol"} for k, s in next(iter(r.values())).items()}
    assert strip(first) == strip(again)  # batch size changes nothing


def test_all_three_tasks_with_their_baselines(char_run, capsys):

    cfg = _cfg("tasks.names=[sblimp,swuggy,tsc-topic,tsc-in-document]", "tasks.swuggy.n_words=8",
               "tasks.swuggy.oov_words=4", "tasks.swuggy.per_word=2", "tasks.cloze.context_sentences=2")
    summaries = next(iter(evaluate_run(char_run, cfg, progress=False, log_mlflow=False).values()))
    assert {"eval/sblimp", "eval/swuggy", "eval/tsc-topic"} <= set(summaries)
    assert summaries["eval/swuggy"]["items"] >= 20
    sw = summaries["eval/swuggy"]
    assert set(sw["breakdowns"]) == {"set", "band", "length"}
    # pseudowords never occur in training by design: the in-vocabulary subset is judged on the real word
    assert sw["in_vocab"]["n"] == sw["breakdowns"]["set"]["in_vocab"]["n"] > 0
    topic = summaries["eval/tsc-topic"]
    assert "word_overlap" in topic["baselines"] and "cluster bootstrap" in topic["acc"]["method"]
    assert "word_overlap" not in summaries["eval/sblimp"]["baselines"]


def test_a_scored_checkpoint_is_reused_unless_forced(char_run):
    cfg = _cfg("score.n_boot=300")
    first = evaluate_run(char_run, cfg, progress=False, log_mlflow=False)
    summary = char_run / "eval" / Path(next(iter(first))).stem / "summary.json"
    stamp = summary.stat().st_mtime_ns
    assert evaluate_run(char_run, cfg, progress=False, log_mlflow=False) == first
    assert summary.stat().st_mtime_ns == stamp  # nothing scored or written again
    evaluate_run(char_run, cfg, progress=False, log_mlflow=False, force=True)
    assert summary.stat().st_mtime_ns != stamp


def test_all_milestones_give_a_training_curve(char_run):
    results = evaluate_run(char_run, _cfg("score.checkpoints=all"), progress=False)
    assert len(results) == 2  # train.milestones=2
    steps = sorted(s["eval/sblimp"]["tokens_seen"] for s in results.values())
    assert steps[0] < steps[1]


def test_milestones_before_the_last_get_only_the_milestone_tasks(char_run):
    cfg = _cfg("tasks.names=[sblimp,tsc-topic]", "tasks.cloze.context_sentences=2", "score.checkpoints=all",
               "score.milestone_tasks=[sblimp]")
    results = evaluate_run(char_run, cfg, progress=False, log_mlflow=False)
    first, last = (results[k] for k in sorted(results))
    assert set(first) == {"eval/sblimp"} and set(last) == {"eval/sblimp", "eval/tsc-topic"}
    assert first["eval/sblimp"]["tokens_seen"] < last["eval/sblimp"]["tokens_seen"]


def test_milestone_tasks_must_be_among_the_tasks():
    with pytest.raises(ConfigError, match="score.milestone_tasks names swuggy, which is not in tasks.names"):
        _cfg("score.milestone_tasks=[swuggy]")


@needs_espeak
def test_speech_run_is_scored_on_the_rendering_grid(workdir):
    run = _train(workdir, "speech-fixed")
    summaries = next(iter(evaluate_run(run, _cfg(), progress=False, log_mlflow=False).values()))
    assert set(summaries) == {"eval/sblimp", "eval/sblimp/test-varied", "eval/sblimp/test-heldout"}
    assert summaries["eval/sblimp"]["test_rendering"] == "fixed"
    assert all(s["rendered"] + sum(s["skipped"].values()) == 20 for s in summaries.values())

    # speech@varied of the same unit tokenizer hears the same grid: its items come from the same rendering
    from modevo.corpus import render as corpus_render
    from modevo.tasks import render as tasks_render

    cache = workdir[0] / "cache"
    before = sorted(cache.rglob("tasks/*/items.json"))
    stage = load(TrainStageConfig, run / "config.yaml")
    fixed = tasks_render.ItemRenderer(stage, "speech-fixed", max_len=stage.model.max_seq_len, progress=False)
    varied = tasks_render.ItemRenderer(stage, "speech-varied", max_len=stage.model.max_seq_len, progress=False)
    task = load_task("sblimp", _cfg().tasks)
    calls = []
    real = corpus_render.render_utterance
    tasks_render.render_utterance = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        for rendering in ("fixed", "varied", "heldout"):
            a, b = fixed.render(task, rendering), varied.render(task, rendering)
            assert all(np.array_equal(x, y) for x, y in zip(a.correct, b.correct)) and b.view == "speech@varied/mel-kmeans"
    finally:
        tasks_render.render_utterance = real
    assert calls == [] and sorted(cache.rglob("tasks/*/items.json")) == before  # nothing synthesised again
    # phone-repeat@fixed hears the same audio but encodes phones: its items are its own
    assert fixed.cache_key(task, "fixed") != tasks_render.ItemRenderer(
        stage, "phone-repeat@fixed", max_len=stage.model.max_seq_len, progress=False).cache_key(task, "fixed")


def test_checkpoint_of_another_view_is_refused(char_run, workdir):
    other = workdir[0] / "other-run"
    shutil.copytree(char_run, other)
    payload_src = next(iter(sorted((char_run / "checkpoints").glob("tokens-*.pt"))))
    import torch

    payload = torch.load(payload_src, weights_only=True)
    payload["view"] = "phone"
    for p in (other / "checkpoints").glob("tokens-*.pt"):
        torch.save(payload, p)
    with pytest.raises(InputError, match="is of view phone, not text-char"):
        evaluate_run(other, _cfg(), progress=False, log_mlflow=False)


def test_cli_eval_all_and_by_mlflow_id(char_run, workdir, capsys):
    runs_dir = str(workdir[0] / "runs")
    extra = ["--tasks", "sblimp", f"tasks.blimp_paradigms={PARADIGMS}", "tasks.blimp_per_paradigm=5",
             "score.n_boot=200"]
    assert main(["eval", "--all", "--scale", "smoke", "--runs-dir", runs_dir, "--no-progress", "--no-mlflow",
                 *extra]) == 0
    assert "eval/sblimp: acc" in capsys.readouterr().out
    run_id = json.loads((char_run / "run.json").read_text())["mlflow_run_id"]
    assert main(["eval", "--run", run_id, "--runs-dir", runs_dir, "--no-progress", "--no-mlflow", *extra]) == 0
    first = sorted((char_run / "checkpoints").glob("tokens-*.pt"))[0]  # a milestone named alone is scored alone
    capsys.readouterr()
    assert main(["eval", "--run", str(first), "--no-progress", "--no-mlflow", *extra]) == 0
    out = capsys.readouterr().out
    assert out.count("eval/sblimp: acc") == 1 and f"{first.name} eval/sblimp" in out


@pytest.mark.parametrize("argv,message", [
    (["--run", "runs/nowhere/checkpoints/tokens-1.pt"], "no such run folder or checkpoint"),
    (["--run", "0123456789abcdef"], "no MLflow store"),
    ([], "name what to score"),
    (["--run", "x", "tasks.names=[sblimpp]"], "unknown task 'sblimpp'"),
    (["--run", "x", "score.headline=median"], "score.headline"),
    (["--run", "x", "score.tost_margin=2"], "tost_margin"),
])
def test_cli_eval_bad_input_is_one_line(argv, message, tmp_path, capsys):
    assert main(["eval", "--runs-dir", str(tmp_path), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err


def test_not_a_run_folder(tmp_path):
    with pytest.raises(InputError, match="not a run folder"):
        evaluate_run(tmp_path, EvalConfig(), progress=False)


def test_compare_two_runs_on_common_items(char_run, workdir, capsys):
    from modevo.score.compare import compare

    evaluate_run(char_run, _cfg(), progress=False, log_mlflow=False)
    same = compare([char_run], [char_run])
    assert same["n_common"] == 20 and same["diff"]["mean"] == 0.0
    assert same["verdict"].startswith("equivalent")  # identical runs: a zero-width CI inside ±2 points
    phone = _train(workdir, "phone")
    evaluate_run(phone, _cfg(), progress=False, log_mlflow=False)
    c = compare([char_run], [phone])
    assert c["views"] == ["text-char", "phone"] and c["verdict"] in (
        "b higher", "b lower", "cannot tell", "equivalent within ±2 points")
    assert main(["compare", "--a", str(char_run), "--b", str(phone)]) == 0
    assert "n=20 items both rendered" in capsys.readouterr().out


def test_compare_refuses_different_task_sets(char_run, workdir, capsys):
    other = workdir[0] / "other-tasks"
    shutil.copytree(char_run, other, ignore=shutil.ignore_patterns("eval"))
    evaluate_run(char_run, _cfg(), progress=False, log_mlflow=False)
    evaluate_run(other, _cfg("tasks.blimp_per_paradigm=5"), progress=False, log_mlflow=False)
    capsys.readouterr()
    assert main(["compare", "--a", str(char_run), "--b", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert "different task sets" in err and err.count("\n") == 0


def test_zerospeech_gold_in_and_submission_out(char_run, workdir, tmp_path):
    from test_tasks_zerospeech import LEX_HEADER, SYN_HEADER, lex_rows, syn_rows, write

    from modevo.tasks.zerospeech import read_submission

    for kind in ("lexical", "syntactic"):
        (tmp_path / kind / "dev").mkdir(parents=True)
    lex = write(tmp_path / "lexical" / "dev" / "gold.csv", LEX_HEADER, lex_rows())
    syn = write(tmp_path / "syntactic" / "dev" / "gold.csv", SYN_HEADER, syn_rows())
    cfg = _cfg("tasks.names=[swuggy-zr21,sblimp-zr21]", f"tasks.zr_lexical={lex}", f"tasks.zr_syntactic={syn}")
    phone = _train(workdir, "phone")
    for run, text_view in ((phone, False), (char_run, True)):
        (ckpt, summaries), = evaluate_run(run, cfg, progress=False, log_mlflow=False).items()
        lexical = summaries["eval/swuggy-zr21"]
        sub = lexical["zerospeech_submission"]
        if text_view:  # pseudowords have no spelling: nothing renders, nothing is scored, no file says 50%
            assert lexical["skipped"] == {"no_spelling": lexical["items"]} and lexical["rendered"] == 0
            assert lexical["not_scored"] == f"n=0: no_spelling {lexical['items']}" and lexical["mde"] is None
            assert sub["path"] is None and not (run / "eval" / ckpt.removesuffix(".pt") / "zerospeech" / "lexical").exists()
        else:
            scores = read_submission(sub["path"])
            assert Path(sub["path"]).relative_to(run / "eval").parts[-3:] == ("zerospeech", "lexical", "dev.txt")
            assert len(scores) == len(lex_rows())  # every wav of the gold file has a line
            assert lexical["rendered"] == lexical["items"] and sub["tie_filled_pairs"] == 0
            assert lexical["aggregate"] == "group" and lexical["groups"] == 4
        assert summaries["eval/sblimp-zr21"]["zerospeech_submission"]["path"]
