"""Fault injection: SIGKILL each long-running stage at a random moment, rerun the same command, and check
that the rerun completes to exactly what an uninterrupted run produces, with nothing half-written left.

Stages, in data-flow order, each on a tiny corpus from the vendored novels (seconds per run):
  corpus  `modevo corpus build`   text, phones, fixed + varied renderings
  units   `modevo units build`    unit tokenizer trained, renderings encoded
  views   `modevo views build`    the nine default views
  train   `modevo train`          the phone view
  eval    `modevo eval`           sBLIMP (two pairs per paradigm) on that run
A stage's inputs are built once (uninterrupted) and copied into every trial. Per trial: copy, start the
command in its own process group, SIGKILL the whole group (workers included) after a uniform random
fraction of the uninterrupted run's wall time, check every manifest.json / run.json / summary.json left
behind parses (atomic writes), rerun the same command to completion, then compare with the uninterrupted
run: every cache manifest's content_hash, the final weights (sha256 of every tensor), run.json's results,
the eval scores; and list temporary files (`.*.tmp*`) left anywhere. Then two `modevo train` processes log
to one sqlite MLflow store at once: both must finish with all their metrics.

    python bench/faults.py --quick          # 3 trials per stage (CI runs this through tests/test_faults.py)
    python bench/faults.py                  # 10 trials per stage
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401
from common import ROOT, machine, save, table, workspace_env

CORPUS = ["source.max_documents=2", "source.max_sentences_per_document=40", "split.chunk_sentences=5"]
UNITS = ["units.k=16", "units.iterations=20", "units.max_train_frames=40000", "views.text_bpe_vocab=80",
         "views.phone_bpe_candidates=[60,80]"]
VIEWS = "text-bpe,text-char,phone-bpe,phone,phone-repeat@mean,phone-repeat@fixed,phone-repeat@varied,speech-fixed,speech-varied"
TRAIN = ["train.max_tokens=6144", "train.batch_size=4", "train.seq_len=32", "train.val_every_tokens=1024",
         "train.val_max_tokens=512", "train.checkpoint_every_steps=4"]
EVAL = ["tasks.blimp_per_paradigm=2"]


def _views_args(ws: Path) -> list[str]:
    return ["-c", "configs/views/smoke.yaml", *(f"corpus.{o}" for o in CORPUS), *UNITS]


def commands(ws: Path, view: str = "phone", num_proc: int | None = None) -> dict[str, list[str]]:
    runs = [f"train.runs_dir={ws / 'runs'}"]
    procs = [f"--num-proc={num_proc}"] if num_proc else []
    train = ["train", "--no-progress", "-c", "configs/train/smoke.yaml", "--view", view,
             *(f"corpus.{o}" for o in CORPUS), *UNITS, *TRAIN, *runs]
    return {
        "corpus": ["corpus", "build", "--no-progress", *procs, "-c", "configs/corpus/smoke.yaml", *CORPUS],
        "units": ["units", "build", "--no-progress", *procs, *_views_args(ws)],
        "views": ["views", "build", "--no-progress", *procs, "--views", VIEWS, *_views_args(ws)],
        "train": train,
        "eval": ["eval", "--no-progress", "--all", "--scale", "smoke", "--runs-dir", str(ws / "runs"), "--tasks",
                 "sblimp", "-c", "configs/eval/smoke.yaml", *EVAL],
    }


STAGES = ["corpus", "units", "views", "train", "eval"]


def start(ws: Path, stage: str, num_proc: int | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "modevo", *commands(ws, num_proc=num_proc)[stage]], cwd=ROOT,
                            env=workspace_env(ws), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def run(ws: Path, stage: str, num_proc: int | None = None) -> tuple[float, int, str]:
    t = time.perf_counter()
    proc = start(ws, stage, num_proc)
    _, err = proc.communicate()
    return time.perf_counter() - t, proc.returncode, (err.strip().splitlines() or [""])[-1]


def fingerprint(ws: Path) -> dict:
    """What a stage produced, independent of when and where: content hashes of every cache manifest, the
    final weights and results of every run, the scores of every evaluation."""
    import torch

    out = {}
    for root in (ws / "cache", ws / "tokenizers"):
        for m in sorted(root.rglob("manifest.json")) if root.exists() else []:
            if any(part.startswith(".") for part in m.relative_to(ws).parts):
                continue
            d = json.loads(m.read_text())
            if "content_hash" in d:
                out[str(m.relative_to(ws))] = d["content_hash"]
    for info in sorted((ws / "runs").rglob("run.json")) if (ws / "runs").exists() else []:
        d = json.loads(info.read_text())
        rel = str(info.parent.relative_to(ws))
        out[f"{rel}: status"] = d.get("status")
        out[f"{rel}: results"] = json.dumps(d.get("results"), sort_keys=True)
        for ckpt in d.get("checkpoints", []):
            state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
            h = hashlib.sha256()
            for k in sorted(state):
                h.update(k.encode())
                h.update(state[k].contiguous().view(torch.uint8).numpy().tobytes())
            out[f"{rel}: {Path(ckpt).name}"] = h.hexdigest()
    for summary in sorted((ws / "runs").rglob("summary.json")) if (ws / "runs").exists() else []:
        if "artifacts" in summary.relative_to(ws).parts:
            continue  # MLflow's copy, under a folder named by the (random) MLflow run id
        d = json.loads(summary.read_text())
        out[str(summary.relative_to(ws))] = json.dumps(_without_run_ids(d.get("results")), sort_keys=True)
    return out


def _without_run_ids(obj):
    """Scores as they are, without the MLflow run ids recorded beside them (random by design)."""
    if isinstance(obj, dict):
        return {k: _without_run_ids(v) for k, v in obj.items() if k != "mlflow_run_id"}
    if isinstance(obj, list):
        return [_without_run_ids(v) for v in obj]
    return obj


def unreadable_json(ws: Path) -> list[str]:
    """Every manifest.json, run.json and summary.json must parse: a half-written one is the failure."""
    bad = []
    for name in ("manifest.json", "run.json", "summary.json"):
        for p in ws.rglob(name):
            if any(part.startswith(".") for part in p.relative_to(ws).parts):
                continue  # inside a temporary folder: not an entry until renamed
            try:
                json.loads(p.read_text())
            except (ValueError, OSError):
                bad.append(str(p.relative_to(ws)))
    return bad


def temporaries(ws: Path) -> list[str]:
    return sorted(str(p.relative_to(ws)) for p in ws.rglob("*") if ".tmp" in p.name and p.name.startswith("."))


def restore(snapshot: Path, ws: Path) -> Path:
    """Every run happens in the same folder: runs and MLflow record absolute paths, so a copy must sit
    where the original did."""
    shutil.rmtree(ws, ignore_errors=True)
    shutil.copytree(snapshot, ws, symlinks=True)
    return ws


def trial(base: Path, ws: Path, stage: str, duration: float, reference: dict, rng: random.Random) -> dict:
    restore(base, ws)
    fraction = rng.uniform(0.05, 0.95)
    proc = start(ws, stage)
    time.sleep(fraction * duration)
    finished_first = proc.poll() is not None
    if not finished_first:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    torn = unreadable_json(ws)
    _, rc, err = run(ws, stage)
    got = fingerprint(ws) if rc == 0 else {}
    diff = sorted(k for k in set(reference) | set(got) if reference.get(k) != got.get(k))
    leftovers = temporaries(ws)
    return {"stage": stage, "killed_at": round(fraction, 3), "finished_before_kill": finished_first,
            "rerun_rc": rc, "rerun_error": err if rc else "", "differs": diff, "torn_json": torn,
            "temporaries": leftovers,
            "ok": rc == 0 and not diff and not torn}


def concurrent_writers(base: Path, ws: Path) -> dict:
    """Two `modevo train` processes (different views) logging to one sqlite MLflow store at once."""
    restore(base, ws)
    procs = [subprocess.Popen([sys.executable, "-m", "modevo", *commands(ws, view)["train"]], cwd=ROOT,
                              env=workspace_env(ws), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for view in ("phone", "text-bpe")]
    errs = [p.communicate()[1] for p in procs]
    rcs = [p.returncode for p in procs]
    infos = [json.loads(p.read_text()) for p in sorted((ws / "runs").rglob("run.json"))]
    missing = []
    db = sqlite3.connect(ws / "runs" / "mlflow.db")
    for info in infos:
        rid = info.get("mlflow_run_id")
        status = db.execute("select status from runs where run_uuid=?", (rid,)).fetchone()
        n_valid = db.execute("select count(*) from metrics where run_uuid=? and key='valid_loss'", (rid,)).fetchone()[0]
        n_final = db.execute("select count(*) from metrics where run_uuid=? and key='final_valid_loss'", (rid,)).fetchone()[0]
        if not status or status[0] != "FINISHED" or n_valid != len(info.get("validation", [])) or n_final != 1:
            missing.append(f"{info.get('view')}: status {status}, valid_loss {n_valid} of "
                           f"{len(info.get('validation', []))}, final_valid_loss {n_final}")
    db.close()
    return {"rcs": rcs, "errors": [e.strip().splitlines()[-1] if e.strip() else "" for e in errs],
            "runs": len(infos), "missing": missing, "ok": rcs == [0, 0] and len(infos) == 2 and not missing}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 trials per stage (default 10)")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n_trials = args.trials or (3 if args.quick else 10)
    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"faults: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    rng = random.Random(args.seed)
    results, rows = [], []
    with tempfile.TemporaryDirectory(prefix="modevo-faults-") as tmp:
        work = Path(tmp)
        ws, base = work / "ws", work / "snapshot-0"
        base.mkdir()
        for i, stage in enumerate(STAGES[:max(STAGES.index(s) for s in stages) + 1]):
            restore(base, ws)
            duration, rc, err = run(ws, stage)
            if rc != 0:
                raise SystemExit(f"faults: the uninterrupted {stage} run failed: {err}")
            reference = fingerprint(ws)
            after = work / f"snapshot-{i + 1}"
            shutil.copytree(ws, after, symlinks=True)  # the next stage starts from this one's output
            if stage in stages:
                trials = [trial(base, ws, stage, duration, reference, rng) for _ in range(n_trials)]
                results += trials
                rows.append([stage, f"{duration:.1f}", len(trials), sum(t["finished_before_kill"] for t in trials),
                             sum(t["ok"] for t in trials), sum(bool(t["temporaries"]) for t in trials)])
                for t in trials:
                    if not t["ok"]:
                        print(f"  FAILED {stage} trial killed at {t['killed_at']:.0%}: rc {t['rerun_rc']} "
                              f"{t['rerun_error']} differs {t['differs'][:3]} torn {t['torn_json'][:3]}")
            base = after  # snapshots are kept: the concurrent-writers check starts from the views one
        concurrent = concurrent_writers(work / f"snapshot-{STAGES.index('views') + 1}", ws) if "train" in stages else None
    print(f"faults: {n_trials} SIGKILL trials per stage, seed {args.seed}; {machine()}")
    print(table(["stage", "clean run s", "trials", "done before kill", "rerun identical", "left temporaries"], rows))
    if concurrent is not None:
        print(f"two train processes on one sqlite MLflow store: exit codes {concurrent['rcs']}, "
              f"{concurrent['runs']} runs, {'all metrics present' if not concurrent['missing'] else concurrent['missing']}")
    survived = sum(t["ok"] for t in results)
    ok = survived == len(results) and (concurrent is None or concurrent["ok"])
    save("faults", {"trials": results, "concurrent": concurrent, "survived": survived, "total": len(results)})
    print(f"RATIO trials whose rerun matched the uninterrupted run: {survived}/{len(results)} "
          f"({'all' if ok else 'NOT all'}; concurrent writers {'ok' if concurrent is None or concurrent['ok'] else 'FAILED'})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
