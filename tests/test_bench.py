"""The benchmarks run and print their ratio line (tiny shapes here; the figures come from `make bench`).
Nothing is timed against a threshold: only that each script works and reports what it measured."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def bench_out(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEVO_BENCH_OUT", str(tmp_path / "out"))
    return tmp_path / "out"


def bench(name, *args):
    proc = subprocess.run([sys.executable, f"bench/{name}.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("RATIO "), proc.stdout
    return proc.stdout, last


def _ratio(line):
    return float(re.search(r": ([0-9.]+)(x|%)", line).group(1))


def test_gpu_train_runs_tiny_on_cpu(bench_out):
    out, last = bench("gpu_train", "--tiny", "--steps", "2", "--sentences", "20")
    assert "smoke shape" in out and "memory-mapped" in out and "StepBatches" in out and _ratio(last) > 0
    record = json.loads((bench_out / "gpu_train.jsonl").read_text().splitlines()[-1])
    assert record["view"] == "text-bpe" and record["train_tokens"] > 0 and record["world"] == 1


def test_train_throughput_smoke_shape(bench_out):
    out, last = bench("train_throughput", "--scale", "smoke", "--rounds", "1", "--steps", "1", "--eager-only")
    assert "hf eager" in out and "modevo eager" in out and "parameters both" in out and _ratio(last) > 0
    assert "eager vs eager" in last  # like with like: the headline never sets compiled against eager
    record = json.loads((bench_out / "train_throughput.jsonl").read_text().splitlines()[-1])
    assert record["ratio"] == record["ratio_eager"] and record["ratio_compiled"] is None


def test_mfu_smoke_shape():
    out, last = bench("mfu", "--shapes", "smoke", "--rounds", "1")
    assert re.search(r"smoke .* [0-9.]+%", out) and "goal is for the cpu shape" in last and _ratio(last) > 0


def test_eval_layerwise_few_items():
    out, last = bench("eval_layerwise", "--items", "6", "--rounds", "1")
    assert "tsc 50 Hz frames" in out and "lower bound" in last and _ratio(last) > 0


def test_corpus_build_and_memory_tiny(bench_out):
    out, last = bench("corpus_build", "--documents", "1", "--sentences", "12")
    assert "units mel-kmeans" in out and _ratio(last) > 0
    out, last = bench("memory", "--documents", "1", "--sentences", "6")
    assert "2N / N" in out and _ratio(last) > 0
    records = [json.loads(line) for line in (bench_out / "memory.jsonl").read_text().splitlines()]
    assert records[-1]["n"]["sentences"] < records[-1]["2n"]["sentences"]


def test_memory_views_tiny(bench_out):
    out, last = bench("memory_views", "--documents", "1", "--sentences", "30", "--views", "phone,phone-repeat@varied",
                      "--train-tokens", "1024")
    assert "4N / N" in out and "stream B/token" in out and _ratio(last) > 0
    record = json.loads((bench_out / "memory_views.jsonl").read_text().splitlines()[-1])
    assert record["n"]["utterances"] < record["4n"]["utterances"]
    assert record["4n"]["views"]["phone"]["dtype"] == "uint16"


def test_coverage_runs_few_replications():
    out, last = bench("coverage", "--reps", "6", "--n-boot", "100", "--tasks", "tsc-topic,zr21-group")
    assert "paired Δ, 3 seeds each" in out and "chunk (not printed)" in out and "TOST type I" in out
    assert 0 < _ratio(last) <= 100


def test_eval_speed_few_pairs(bench_out):
    out, last = bench("eval_speed", "--pairs", "4", "--rounds", "1")
    assert "shared ctx s" in out and _ratio(last) > 0
    record = json.loads((bench_out / "eval_speed.jsonl").read_text().splitlines()[-1])
    for shape in record["shapes"].values():  # the faster paths give the same numbers, up to fp32 rounding
        assert shape["max_abs_diff_nats"] < 1e-3 and shape["flips_beyond_near_ties"] == 0


def test_precision_check_on_a_tiny_trained_run(tmp_path_factory, bench_out):
    from conftest import novels_workspace, train_tiny

    gen = novels_workspace(tmp_path_factory, "precision")
    workspace = next(gen)
    try:
        run = train_tiny(workspace, "text-char")
        out, last = bench("precision_check", "--run", str(run), "--config", "configs/eval/smoke.yaml",
                          "tasks.names=[sblimp,tsc-topic]", "tasks.blimp_per_paradigm=2", "--max-pairs", "40")
    finally:
        next(gen, None)
    assert "acc bf16" in out and "bf16 scoring" in out and _ratio(last) > 0
    record = json.loads((bench_out / "precision_check.jsonl").read_text().splitlines()[-1])
    assert {"sblimp", "tsc-topic"} <= set(record["tasks"])
    for task in record["tasks"].values():
        assert 0 < task["pairs"] <= 40 and task["max_abs_diff_nats"] > 0  # bf16 is not fp32: it differs
        assert task["flips"] >= task["flips_beyond_tolerance"]


def test_verify_cost_runs_tiny(bench_out):
    out, last = bench("verify_cost", "--tokens", "200000", "--rows", "300", "--rounds", "1")
    assert "the check (sha256 of every file)" in out and "sha256 of the view" in out and _ratio(last) > 0
    record = json.loads((bench_out / "verify_cost.jsonl").read_text().splitlines()[-1])
    assert record["tokens"] == 200000 and record["view_bytes"] > 400000
