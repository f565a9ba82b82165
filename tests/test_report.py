"""`modevo report` on a handful of fake runs in a temporary MLflow store: exactly the given conditions and
tasks, Table 3 deltas for the factor pairs present, every format written, mixed task sets refused."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from modevo.cli import main
from modevo.errors import InputError
from modevo.report.report import default_out, report
from modevo.score.config import ScoringConfig
from modevo.score.evaluate import _write_items, items_table, protocol, summarise
from modevo.score.pairs import PairScores
from modevo.tasks.base import Pair, TaskSet
from modevo.tasks.render import RenderedTask

N = 60


def _task(name, shift=""):
    return TaskSet(name, tuple(Pair(f"{name}/{i}", f"good {i}{shift}", f"bad {i}") for i in range(N)))


def _fake_run(runs_dir: Path, view: str, acc: dict[str, float], seed=0, shift=""):
    """A finished run folder + MLflow run with tags like the trainer's, scored like `modevo eval`."""
    from mlflow.tracking import MlflowClient

    folder = runs_dir / "smoke" / view.replace("/", "_") / f"tokens-seed{seed}"
    (folder / "eval" / "tokens-000000001000").mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("modevo") or client.get_experiment(client.create_experiment("modevo"))
    run = client.create_run(exp.experiment_id, tags={"view": view, "scale": "smoke", "seed": str(seed),
                                                     "run_dir": str(folder), "factors": "A"})
    client.set_terminated(run.info.run_id, "FINISHED")
    (folder / "config.yaml").write_text("train: {view: " + view + "}\n")  # a run folder holds its config
    (folder / "run.json").write_text(json.dumps({"mlflow_run_id": run.info.run_id, "results": {
        "tokens_seen": 1000, "epochs": 1.5, "tokens_per_word": 2.0}}))
    sc, summaries, tables = ScoringConfig(n_boot=300), {}, []
    rng = np.random.default_rng(sum(map(ord, view)))  # stable across processes
    for name, p in acc.items():
        task = _task(name, shift)
        rt = RenderedTask(task, view, None, [np.ones(3)] * N, [np.ones(3)] * N, [np.zeros(0)] * N, [""] * N,
                          np.ones(N, bool), "k")
        wins = rng.random((N, 3)) < p  # (items, L+1): correct preferred with probability p
        ps = PairScores(np.arange(N), np.where(wins, -1.0, -2.0), np.full((N, 3), -1.5), np.full(N, 3),
                        np.full(N, 3))
        s = summarise(rt, ps, np.full(N, 0.5), sc)
        s.update(checkpoint="tokens-000000001000.pt", tokens_seen=1000, protocol=protocol(sc))
        summaries[f"eval/{name}"] = s
        tables.append(items_table(rt, ps, np.full(N, 0.5), sc, "tokens-000000001000.pt"))
    out = folder / "eval" / "tokens-000000001000"
    _write_items(out / "items.parquet", tables)
    (out / "summary.json").write_text(json.dumps({"protocol": protocol(sc), "results": summaries}))
    return folder


@pytest.fixture
def runs_dir(tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    _fake_run(d, "text-bpe", {"sblimp": 0.6, "swuggy": 0.9})
    _fake_run(d, "phone-bpe", {"sblimp": 0.55, "swuggy": 0.85})
    _fake_run(d, "phone", {"sblimp": 0.5, "swuggy": 0.8})
    return d


def test_unit_quality_sits_beside_factor_c(tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    _fake_run(d, "phone-repeat@varied", {"swuggy": 0.8})
    run = _fake_run(d, "speech@varied/mel-kmeans", {"swuggy": 0.55})
    info = json.loads((run / "run.json").read_text())
    info["results"]["units"] = {"tokenizer": "mel-kmeans", "vocab_size": 500,
                                "quality": {"pnmi": 0.52, "phone_purity": 0.6, "cluster_purity": 0.3, "units_used": 480}}
    (run / "run.json").write_text(json.dumps(info))
    out = report("smoke", tmp_path / "r", d, factor="C", views=["phone-repeat@varied", "speech-varied"])
    assert out["units"] == [{"condition": "speech-varied (mel-kmeans, synthetic)", "tokenizer": "mel-kmeans",
                             "K": 500, "PNMI": "0.520", "phone purity": "0.600", "cluster purity": "0.300",
                             "units used": 480}]
    assert [(r["factor"], r["task"]) for r in out["table3"]] == [("C", "swuggy")]
    assert (tmp_path / "r" / "units.md").is_file()


def test_report_has_exactly_the_given_conditions_and_tasks(runs_dir, tmp_path):
    out = report("smoke", tmp_path / "results", runs_dir)
    assert [r["view"] for r in out["table4"]] == ["text-bpe", "phone-bpe", "phone"]
    assert {k for r in out["table4"] for k in r if k in ("swuggy", "sblimp", "tsc-topic")} == {"swuggy", "sblimp"}
    assert out["table4"][0]["sblimp paper*"] == "74.9"  # the paper's number beside ours, marked
    # every fake run beats the constant 0.5 n-gram on swuggy (p = 0.8-0.9), and the row says so
    assert all(r["swuggy − n-gram"].endswith("beats it") for r in out["table4"])
    glance = (tmp_path / "results" / "table4_compact.md").read_text()
    assert "| text-bpe | 0.00 M | 1.5 |" in glance and "3g 50.0 ✓" in glance
    pairs = {(r["from"], r["to"], r["task"]) for r in out["table3"]}
    assert pairs == {("text-bpe", "phone-bpe", "sblimp"), ("text-bpe", "phone-bpe", "swuggy")}  # only pairs present
    for r in out["table3"]:
        assert r["n"] == N and r["verdict"] in ("higher after", "lower after", "cannot tell",
                                                "equivalent within ±2 points")
        # beside the headline (sum): the length-normalised score's delta and each view's shorter-wins baseline
        assert re.fullmatch(r"[+-]\d+\.\d \[[+-]\d+\.\d+, [+-]\d+\.\d+\]", r["delta_abs (mean)"]), r
        assert re.fullmatch(r"\d+\.\d", r["from_shorter_wins"]) and re.fullmatch(r"\d+\.\d", r["to_shorter_wins"])
    names = {p.name for p in out["files"]}
    assert {"table4.md", "table4.csv", "table4.tex", "table3.md", "fig1_tokens.png", "fig2_layers.png",
            "fig4_factor_deltas.png", "provenance.json"} <= names
    assert "fig3_swuggy_layers.png" not in names  # it repeated Fig. 2's sWUGGY panel
    assert "_delta" not in (tmp_path / "results" / "table3.csv").read_text()  # figure numbers are not a column
    md = (tmp_path / "results" / "table4.md").read_text()
    assert "secondary digest (unverified)" in md and "task sets: sblimp" in md
    prov = json.loads((tmp_path / "results" / "provenance.json").read_text())
    assert set(prov["runs"]) == {"text-bpe", "phone-bpe", "phone"} and set(prov["task_hashes"]) == {"sblimp", "swuggy"}


def test_whole_report_lists_conditions_in_the_papers_order_whatever_mlflow_returns(tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    for view in ("phone", "speech@varied/mel-kmeans", "text-bpe", "phone-repeat@varied", "phone-bpe"):
        _fake_run(d, view, {"swuggy": 0.8})  # registered in an order that is neither the paper's nor by name
    out = report("smoke", tmp_path / "r", d)
    assert [r["view"] for r in out["table4"]] == ["text-bpe", "phone-bpe", "phone", "phone-repeat@varied",
                                                  "speech@varied/mel-kmeans"]


def test_factor_report_names_the_missing_condition(runs_dir, tmp_path, capsys):
    # views the user names must all be there: one line naming the first that is not
    assert main(["report", "--scale", "smoke", "--views", "text-bpe,text-char", "--runs-dir", str(runs_dir),
                 "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no scored smoke run of text-char" in err and "modevo train" in err
    # a factor reports the pairs it has, and its tables name the condition still missing
    assert main(["report", "--scale", "smoke", "--factor", "A", "--runs-dir", str(runs_dir),
                 "--out", str(tmp_path / "r")]) == 0
    assert "no scored smoke run of text-char yet" in capsys.readouterr().err
    for name in ("table3.md", "table4.md"):
        assert "not yet scored, so absent from these tables: text-char" in (tmp_path / "r" / name).read_text()
    prov = json.loads((tmp_path / "r" / "provenance.json").read_text())
    assert set(prov["runs"]) == {"text-bpe", "phone-bpe", "phone"}


def test_mixed_task_sets_are_refused(runs_dir, tmp_path):
    _fake_run(runs_dir, "text-char", {"sblimp": 0.6}, shift="x")  # other items → another task-set hash
    with pytest.raises(InputError, match="task sblimp was scored on different task sets"):
        report("smoke", tmp_path / "r", runs_dir)


def test_cli_report_prints_tables(runs_dir, tmp_path, capsys):
    assert main(["report", "--scale", "smoke", "--runs-dir", str(runs_dir), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "Table 3 (smoke)" in out and "Table 4 (smoke)" in out and "phone-bpe" in out


def test_wall_times_per_stage_from_the_pipeline_log(runs_dir, tmp_path):
    log = runs_dir / "smoke" / "pipeline-times.jsonl"
    recs = [("train", "phone seed 0 (tokens)", 120.0, 0), ("corpus", "smoke text", 30.0, 0),
            ("train", "phone seed 0 (tokens)", 600.0, 1), ("train", "text-bpe seed 0 (tokens)", 60.0, 0)]
    log.write_text("".join(json.dumps({"stage": st, "what": w, "seconds": s, "exit": e,
                                       "started": f"2026-11-25T0{i}:00:00Z"}) + "\n" for i, (st, w, s, e) in enumerate(recs)))
    report("smoke", tmp_path / "r", runs_dir)
    md = (tmp_path / "r" / "wall_times.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[1].startswith("| corpus | smoke text")
    assert "| train | phone seed 0 (tokens) | 2026-11-25T00:00:00Z | 2 | 12.0 |" in md  # the killed attempt counts
    assert "| train | all train |  |  | 13.0 |" in md and lines[-1].startswith("| total |") and "| 13.5 |" in lines[-1]
    # the host and its load beside each step: the same step takes 2-3x longer on another CPU or beside a job
    with open(log, "a") as f:
        f.write(json.dumps({"stage": "eval", "what": "scoring phone", "seconds": 60.0, "exit": 0, "cpus": 2,
                            "started": "2026-12-04T18:00:00Z", "processor": "AMD EPYC",
                            "load_at_end": [2.5, 2.2, 1.94]}) + "\n")
    report("smoke", tmp_path / "r", runs_dir)
    md = (tmp_path / "r" / "wall_times.md").read_text()
    assert "| eval | scoring phone | 2026-12-04T18:00:00Z | 1 | 1.0 | AMD EPYC ×2, load 1.9 |" in md
    log.write_text("not json\n")
    with pytest.raises(InputError, match="line 1 is not JSON"):
        report("smoke", tmp_path / "r", runs_dir)
    prov = json.loads((tmp_path / "r" / "provenance.json").read_text())
    assert prov["machine"]["cpus"] >= 1 and prov["generated"].startswith("20")


def test_one_factor_never_writes_over_the_whole_papers_tables():
    assert default_out("cpu") == Path("results/cpu")
    assert default_out("cpu", "A") == Path("results/cpu/factor-a")
    assert default_out("cpu", "C", "phonetic-kmeans") == Path("results/cpu/factor-c-phonetic-kmeans")


def test_speech_grid_lists_every_test_rendering_own_first(runs_dir, tmp_path):
    _fake_run(runs_dir, "speech@fixed/mel-kmeans", {"swuggy": 0.7, "swuggy/test-varied": 0.6})
    out = report("smoke", tmp_path / "r", runs_dir)
    md = (tmp_path / "r" / "speech_grid.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| speech-fixed")]
    assert len(rows) == 2 and "| yes |" in rows[0] and "| yes |" not in rows[1]
    assert all("test-" not in k for r in out["table4"] for k in r)  # the grid stays out of Table 4


def test_a_run_whose_last_checkpoint_is_unscored_is_left_out(runs_dir, tmp_path):
    from modevo.score.compare import latest_eval

    folder = _fake_run(runs_dir, "text-char", {"sblimp": 0.6, "swuggy": 0.9})  # scored at 1,000 tokens
    (folder / "checkpoints").mkdir()
    for tokens in (1000, 2000):  # ... but it trained on to 2,000: an earlier milestone must not stand in
        (folder / "checkpoints" / f"tokens-{tokens:012d}.pt").write_bytes(b"")
    out = report("smoke", tmp_path / "r", runs_dir)
    assert "text-char" not in [r["view"] for r in out["table4"]]
    with pytest.raises(InputError, match="last checkpoint tokens-000000002000.pt has not been scored .only earlier"):
        latest_eval(folder)


def test_fig1_bands_are_the_interval_table4_prints(tmp_path):
    """With several seeds the band is Table 4's interval over seeds × items, not seed 0's bootstrap."""
    from modevo.report.collect import by_condition, collect
    from modevo.report.figures import interval
    from modevo.report.tables import _fmt

    d = tmp_path / "runs"
    d.mkdir()
    for seed in (0, 1):
        _fake_run(d, "text-bpe", {"swuggy": 0.8}, seed=seed)
    out = report("smoke", tmp_path / "r", d)
    runs = by_condition(collect("smoke", d))["text-bpe"]
    assert len(runs) == 2
    assert _fmt(*interval(runs, "eval/swuggy", max(runs[0].evals))) == out["table4"][0]["swuggy"]


def test_an_interval_that_just_excludes_zero_does_not_print_a_zero_bound():
    from modevo.report.tables import interval_text

    assert interval_text(-1.46, -3.04, -0.04) == "-1.5 [-3.0, -0.04]"  # was "[-3.0, -0.0]" beside "lower after"
    assert interval_text(0.8, 0.003, 1.6) == "+0.8 [+0.003, +1.6]"
    assert interval_text(0.0, -1.25, 0.0) == "+0.0 [-1.2, +0.0]"  # a bound that is 0 stays 0.0
