"""Shared by the benchmarks: machine facts, interleaved timing, a short table, the ratio line.

Every benchmark times modevo against a reference *in the same run* and prints the ratio last: these
machines are noisy, so absolute seconds alone mean little. Timings alternate between the contenders
(A B A B ...) and report medians, so a burst of load from elsewhere hits both.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    from modevo.machine import summary

    return summary()


def interleaved(fns: dict, rounds: int, per_round: int = 1) -> dict[str, float]:
    """Median seconds per call of each fn, timed in alternation: rounds × (fn_1 ×per_round, fn_2 ×per_round, ...)."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(per_round):
                fn()
            times[name].append((time.perf_counter() - t) / per_round)
    return {name: statistics.median(ts) for name, ts in times.items()}


def table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in header]] + [[f"{c:,.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(name: str, ratio: float, goal: float, higher_is_better: bool = True, unit: str = "x") -> str:
    met = ratio >= goal if higher_is_better else ratio <= goal
    sign = ">=" if higher_is_better else "<="
    return f"RATIO {name}: {ratio:.2f}{unit} (goal {sign} {goal:g}{unit}): {'met' if met else 'NOT met'}"


def save(name: str, record: dict) -> None:
    """One JSON line per bench run in bench/out/<name>.jsonl (git-ignored; MODEVO_BENCH_OUT moves it): date,
    machine, command, figures."""
    out = Path(os.environ.get("MODEVO_BENCH_OUT") or ROOT / "bench" / "out")
    out.mkdir(parents=True, exist_ok=True)
    record = {"bench": name, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
              "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), **record}
    with open(out / f"{name}.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def bf16_ok() -> bool:
    from modevo.train.run import bf16_supported

    return bf16_supported()


def modevo_cli(args: list[str], env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m modevo ARGS` in a child (argument list, no shell); raises with its stderr on failure."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
                **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "modevo", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"modevo {' '.join(args)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc


def recipe(scale: str, vocab: int):
    """(ModelConfig with vocab, batch_size, seq_len, compile) of configs/train/<scale>.yaml."""
    import dataclasses

    from modevo.config import load
    from modevo.train.config import TrainStageConfig

    stage = load(TrainStageConfig, ROOT / "configs" / "train" / f"{scale}.yaml", [])
    model = dataclasses.replace(stage.model, vocab_size=vocab, max_seq_len=max(stage.model.max_seq_len, stage.train.seq_len))
    return model, stage.train.batch_size, stage.train.seq_len, stage.train.compile


def flops_per_token(cfg, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward), PaLM's count: 6·N + 12·L·T·d, where N counts every
    matrix multiplied (blocks and the LM head, tied or not; not the embedding lookup) and 12·L·T·d the
    attention scores and weighted sums (causal masking not discounted)."""
    ff = cfg.ff_dim
    kv = cfg.n_kv_head * cfg.head_dim
    per_layer = cfg.d_model * (cfg.d_model + 2 * kv) + cfg.d_model * cfg.d_model + 3 * cfg.d_model * ff
    n = cfg.n_layer * per_layer + cfg.d_model * cfg.vocab_size
    return 6.0 * n + 12.0 * cfg.n_layer * seq_len * cfg.d_model


def matmul_peak(device: str = "cpu", dtype=None, n: int = 4096, seconds: float = 3.0) -> float:
    """The machine's bf16 matmul rate in FLOP/s: the best of repeated n×n @ n×n products."""
    import torch

    dtype = dtype or torch.bfloat16
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(2):
        a @ b
    sync()
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        a @ b
        sync()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t))
    return best


def process_tree(root: int) -> list[int]:
    """A process and all its descendants, from /proc (just the root where /proc is absent)."""
    parents = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        parents[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the command name
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sorted(tree)


def _tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants, read from /proc (0 where /proc is absent)."""
    total = 0
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        total += int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    return total


def run_measured(cmd: list[str], env: dict, interval: float = 0.2) -> tuple[float, int]:
    """Run a child (argument list), sampling the resident memory of its whole process tree (worker pools
    included): (wall seconds, peak summed RSS in bytes). Raises SystemExit with its last stderr line on failure."""
    import tempfile

    with tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(interval)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            err.seek(0)
            lines = err.read().strip().splitlines()
            raise SystemExit(f"{' '.join(cmd[2:])} failed: {lines[-1] if lines else proc.returncode}")
    return wall, peak


def workspace_env(ws: Path) -> dict:
    """The environment of a `python -m modevo` child working in workspace `ws`: this checkout's code, offline,
    its own cache and tokenizer folders."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
            "MODEVO_CACHE": str(ws / "cache"), "MODEVO_TOKENIZERS": str(ws / "tokenizers"),
            "TOKENIZERS_PARALLELISM": "false"}


def build_corpus_and_units(workdir: Path, documents: int, sentences_per_document: int, tokenizers: list[str],
                           num_proc: int | None = None) -> dict:
    """The cpu reproduction's corpus stage (text, phones, every training rendering) and unit stage (tokenizer
    trained, renderings encoded) on the first `documents` vendored novels, capped at `sentences_per_document`,
    into a fresh cache: seconds and peak RSS per stage, audio seconds per rendering."""
    env = workspace_env(workdir)
    size = [f"source.max_documents={documents}", f"source.max_sentences_per_document={sentences_per_document}"]
    procs = [f"--num-proc={num_proc}"] if num_proc else []
    py = [sys.executable, "-m", "modevo"]
    stages = {"corpus": py + ["corpus", "build", "-c", "configs/corpus/cpu.yaml", "--no-progress", *procs, *size]}
    for tok in tokenizers:
        stages[f"units {tok}"] = py + ["units", "build", "-c", "configs/views/cpu.yaml", "--tokenizer", tok,
                                       "--no-progress", *procs, *(f"corpus.{s}" for s in size)]
    out = {"stages": {}}
    for name, cmd in stages.items():
        wall, peak = run_measured(cmd, env)
        out["stages"][name] = {"seconds": wall, "peak_rss": peak}
    stats = subprocess.run(py + ["corpus", "stats", "-c", "configs/corpus/cpu.yaml", "--json", *size], cwd=ROOT, env=env,
                           capture_output=True, text=True, check=True)
    info = json.loads(stats.stdout)
    out["audio_seconds"] = {r["name"]: r["stats"]["hours"] * 3600 for r in info["renderings"].values()}
    out["sentences"] = sum(s["sentences"] for s in info["corpus"]["stats"]["splits"].values())
    return out
