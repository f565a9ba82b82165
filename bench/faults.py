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
    python bench/faults.py --bad-input      # the bad-input and fault cases below, one table row each

--bad-input: on a tiny corpus and one trained phone run, each case damages a copy of the workspace (or its
environment), runs one `modevo` command in a child process and records the exit status, the stderr lines,
temporaries left and whether every file that existed before is unchanged. A full disk and a read-only
cache are real where a tmpfs can be mounted (root), not simulated; elsewhere those rows say skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
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
    """(seconds, exit status, stderr)."""
    t = time.perf_counter()
    proc = start(ws, stage, num_proc)
    _, err = proc.communicate()
    return time.perf_counter() - t, proc.returncode, err


def last_line(err: str) -> str:
    return (err.strip().splitlines() or [""])[-1]


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
            "rerun_rc": rc, "rerun_error": last_line(err) if rc else "", "rerun_stderr": err[-4000:] if rc else "",
            "differs": diff, "torn_json": torn,
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


# -- --bad-input: one command per case, its one line and what it left ------------------------------------
TEXT_CORPUS = ["corpus", "build", "--no-progress", "--text-only", "-c", "configs/corpus/smoke.yaml", *CORPUS]


def file_hashes(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")) if root.exists() else []:
            if p.is_file() and p.name not in ("mlflow.db", ".lock", "mlflow.db.lock"):
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A real small (or read-only) file system at `path`, where mount is allowed; else yields None."""
    path.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0
    try:
        yield path if ok else None
    finally:
        if ok:
            subprocess.run(["umount", str(path)], check=True)


def _shards_ok(cache: Path) -> tuple[int, bool]:
    """(finished corpus shards, all of them still match the digests recorded when written)."""
    from modevo.errors import InputError
    from modevo.shards import verify_shard

    shards = [p for p in cache.glob("corpus/*/shards/[0-9]*") if p.is_dir()]
    try:
        for s in shards:
            verify_shard(s / "data")
    except InputError:
        return len(shards), False
    return len(shards), True


def bad_input_cases(ws: Path, run_dir: Path, work: Path) -> list[dict]:
    """(name, what is wrong, setup) for every case; setup(ws) returns (argv, extra env, tmpfs options or None,
    a check(ws, mount) -> note or None)."""
    train = commands(ws)["train"]
    corpus_root = next((ws / "cache").glob("corpus/*/manifest.json")).parent
    view_root = next(p.parent for p in corpus_root.glob("views/phone-*/manifest.json"))
    run_bytes = sum(p.stat().st_size for p in (ws / "runs").rglob("*") if p.is_file())

    def corrupt(path: Path, fn):
        path.write_bytes(fn(path.read_bytes()))

    def flip(b: bytes) -> bytes:
        b = bytearray(b)
        b[len(b) // 2] ^= 0xFF
        return bytes(b)

    cases = [
        # shards of this corpus take 64 and 80 kB: the first fits, the second does not
        ("disk full: corpus build", "MODEVO_CACHE on a 100 kB tmpfs", "size=100k",
         lambda m: (TEXT_CORPUS + ["source.docs_per_shard=1", "num_proc=1"], {"MODEVO_CACHE": str(m)})),
        # what the finished run takes (store, artifacts, checkpoints): rewriting last.ckpt needs more, mid-run
        ("disk full: training", f"train.runs_dir on a {run_bytes // 1024} kB tmpfs", f"size={run_bytes // 1024}k",
         lambda m: (train[:-1] + [f"train.runs_dir={m}"], {})),
        ("read-only cache asked to build", "MODEVO_CACHE on a read-only tmpfs", "ro,size=1m",
         lambda m: (TEXT_CORPUS, {"MODEVO_CACHE": str(m / "cache")})),
        ("MODEVO_CACHE is a file", "MODEVO_CACHE=<a file>", None,
         lambda _: (TEXT_CORPUS, {"MODEVO_CACHE": str(ws / "runs" / "mlflow.db")})),
        ("--config is a folder", "-c configs/corpus", None, lambda _: (["corpus", "stats", "-c", "configs/corpus"], {})),
        ("--config missing", "-c configs/corpus/nope.yaml", None,
         lambda _: (["corpus", "stats", "-c", "configs/corpus/nope.yaml"], {})),
        ("path part: train.scale=../x", "a value that becomes a folder name", None,
         lambda _: (train + ["train.scale=../x"], {})),
        ("path part: corpus.name=a/b", "a value that becomes a folder name", None,
         lambda _: (train + ["corpus.name=a/b"], {})),
        ("torn corpus manifest", "manifest.json cut in half", None,
         lambda _: (corrupt(corpus_root / "manifest.json", lambda b: b[: len(b) // 2]),
                    ["corpus", "stats", "-c", "configs/corpus/smoke.yaml", *CORPUS], {})[1:]),
        ("changed corpus shard", "one byte of an Arrow shard flipped; a view to build", None,
         lambda _: (corrupt(next((corpus_root / "shards" / "00000" / "data").glob("*.arrow")), flip),
                    shutil.rmtree(view_root), train, {})[2:]),
        ("Arrow shard with a garbage header", "an unverified (older) shard; a view to build", None,
         lambda _: ((corpus_root / "shards" / "00000" / "data.sha256").unlink(),
                    corrupt(next((corpus_root / "shards" / "00000" / "data").glob("*.arrow")),
                            lambda b: b"GARBAGE!" * 64 + b[512:]),
                    shutil.rmtree(view_root), train, {})[3:]),
        ("truncated view stream", "stream-train.npy loses its last 64 bytes", None,
         lambda _: (corrupt(view_root / "stream-train.npy", lambda b: b[:-64]), train, {})[1:]),
        ("changed view vocabulary", "vocab.json edited", None,
         lambda _: (corrupt(view_root / "vocab.json", lambda b: b.replace(b'"', b"'", 2)), train, {})[1:]),
        ("corrupt run.json", "run.json cut in half", None,
         lambda _: (corrupt(run_dir / "run.json", lambda b: b[: len(b) // 2]), train, {})[1:]),
        ("second trainer of one run", "another process holds the run's lock", None,
         lambda _: (train, {})),
    ]
    return cases


HOLD = ("import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); f.seek(0); "
        "f.truncate(); f.write(str(os.getpid())); f.flush(); print('held', flush=True); time.sleep(600)")


def bad_input(base: Path, ws: Path, work: Path, run_dir: Path, only: str = "") -> list[dict]:
    results = []
    for name, what, mount_opts, setup in bad_input_cases(restore(base, ws), run_dir, work):
        if only and only not in name:
            continue
        restore(base, ws)
        with tmpfs(work / "mnt", mount_opts) if mount_opts else contextlib.nullcontext() as m:
            if mount_opts and m is None:
                results.append({"case": name, "what": what, "ok": None, "line": "skipped: no tmpfs (mount needs root)"})
                continue
            argv, env = setup(m)
            before = file_hashes(ws / "cache", ws / "runs")
            holder = None
            if name == "second trainer of one run":
                holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir / ".lock")], stdout=subprocess.PIPE,
                                          text=True)
                holder.stdout.readline()
            t = time.perf_counter()
            # a private heavy-job lock: a modevo job running elsewhere on the machine must not add its warning line
            env = {**workspace_env(ws), "MODEVO_LOCK_DIR": str(work / "job-lock"), **env}
            proc = subprocess.run([sys.executable, "-m", "modevo", *argv], cwd=ROOT, env=env, capture_output=True,
                                  text=True)
            seconds = time.perf_counter() - t
            if holder is not None:
                holder.kill()
                holder.wait()
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("modevo: skipped")]
            after = file_hashes(ws / "cache", ws / "runs")
            changed = sorted(k for k in before if k in after and before[k] != after[k])
            lost = sorted(k for k in before if k not in after)
            left = temporaries(ws) + (temporaries(m) if m is not None else [])
            note = ""
            if m is not None and name.startswith("disk full: corpus"):
                n, good = _shards_ok(m)
                kept = {p: p.stat().st_mtime_ns for p in m.glob("corpus/*/shards/*/data/*")}
                # room again: the same command resumes, the finished shard is not written twice
                subprocess.run(["mount", "-o", "remount,size=2m", str(m)], check=True)
                again = subprocess.run([sys.executable, "-m", "modevo", *argv], cwd=ROOT, env=env, capture_output=True)
                untouched = all(p.stat().st_mtime_ns == t for p, t in kept.items())
                note = (f"{n} finished shard(s) on the full disk, {'all' if good else 'NOT all'} verified; with room "
                        f"again the rerun exits {again.returncode}, finished shard {'untouched' if untouched else 'NOT untouched'}")
                if again.returncode != 0:
                    note += " NOT resumed"
            elif m is not None and name.startswith("disk full: training"):
                import torch

                ckpts = sorted(m.rglob("tokens-*.pt")) + sorted(m.rglob("last.ckpt"))
                loadable = sum(1 for c in ckpts if torch.load(c, weights_only=True).get("state_dict") is not None)
                note = (f"{loadable}/{len(ckpts)} checkpoint(s) left on the full disk load "
                        f"({', '.join(c.name for c in ckpts) or 'none written'})")
                if loadable < len(ckpts):
                    note += " NOT all"
                subprocess.run(["mount", "-o", "remount,size=64m", str(m)], check=True)
                again = subprocess.run([sys.executable, "-m", "modevo", *argv], cwd=ROOT, env=env, capture_output=True)
                infos = [json.loads(p.read_text()) for p in m.rglob("run.json")]
                done = [i for i in infos if i.get("status") == "finished"]
                note += (f"; with room again the rerun exits {again.returncode}, the run "
                         f"{'finishes' if done else 'does NOT finish'}")
            ok = (proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr and not left
                  and not changed and not lost and "NOT" not in note)
            results.append({"case": name, "what": what, "rc": proc.returncode, "stderr_lines": len(lines),
                            "line": lines[0] if len(lines) == 1 else (lines[-1] if lines else ""), "seconds": seconds,
                            "temporaries": left, "changed": changed, "lost": lost, "note": note, "ok": ok,
                            "stderr_tail": proc.stderr[-1500:] if not ok else ""})
    return results


def same_run_twice(base: Path, ws: Path, work: Path) -> dict:
    """Two `modevo train` of one new run started together (the view is built): one trains, the other says
    which PID holds the run and exits 2 (or, had the first finished already, reports it); one MLflow run."""
    restore(base, ws)
    argv = commands(ws)["train"][:-1] + [f"train.runs_dir={ws / 'runs2'}"]
    env = {**workspace_env(ws), "MODEVO_LOCK_DIR": str(work / "job-lock")}
    procs = [subprocess.Popen([sys.executable, "-m", "modevo", *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate()[1] for p in procs]
    rcs = [p.returncode for p in procs]
    db = sqlite3.connect(ws / "runs2" / "mlflow.db")
    n_runs = db.execute("select count(*) from runs").fetchone()[0]
    db.close()
    refused = [e for e, rc in zip(errs, rcs) if rc == 2]
    lines = [ln for ln in (refused[0] if refused else "").splitlines() if ln.strip()]
    ok = sorted(rcs) in ([0, 0], [0, 2]) and n_runs == 1 and (not refused or (len(lines) == 1 and "PID" in lines[0]))
    return {"case": "two trainers of one run at once", "what": "two `modevo train` of one new run started together",
            "rc": max(rcs), "stderr_lines": len(lines), "line": lines[0] if lines else f"exit codes {rcs}",
            "ok": ok, "note": f"exit codes {sorted(rcs)}, {n_runs} MLflow run(s) in the store", "temporaries": [],
            "changed": [], "lost": [], "stderr_tail": "" if ok else "\n".join(errs)[-1500:]}


def shorten(line: str, work: Path, root: Path, width: int = 200) -> str:
    """The line with the workspace's long paths named by short placeholders, cut at `width`."""
    ws = work / "ws"
    for pattern, short in ((rf"{ws}/cache/corpus/[0-9a-f]+/views/phone-[0-9a-f]+", "V"),
                           (rf"{ws}/cache/corpus/[0-9a-f]+", "C"), (rf"{ws}/runs2?/smoke/phone/[^/: ]+", "R"),
                           (rf"{work}/mnt/corpus/[0-9a-f]+", "<mnt>/C"), (rf"{work}/mnt/smoke/phone/[^/: ]+", "<mnt>/R"),
                           (str(ws / "cache"), "<cache>"), (str(ws / "runs"), "<runs>"), (str(work / "mnt"), "<mnt>"),
                           (str(root), ".")):
        line = re.sub(pattern, short, line)
    return line[:width] + ("…" if len(line) > width else "")


def run_bad_input(only: str = "") -> None:
    with tempfile.TemporaryDirectory(prefix="modevo-bad-input-") as tmp:
        work = Path(tmp)
        ws, base = work / "ws", work / "base"
        ws.mkdir()
        for argv in (TEXT_CORPUS, commands(ws)["train"]):
            proc = subprocess.run([sys.executable, "-m", "modevo", *argv], cwd=ROOT, capture_output=True, text=True,
                                  env={**workspace_env(ws), "MODEVO_LOCK_DIR": str(work / "job-lock")})
            if proc.returncode != 0:
                raise SystemExit(f"faults: setting up failed: {proc.stderr.strip().splitlines()[-1:]}")
        (run_dir,) = [p.parent for p in (ws / "runs").rglob("run.json")]
        shutil.copytree(ws, base, symlinks=True)
        results = bad_input(base, ws, work, run_dir, only)
        if not only or only in "two trainers of one run at once":
            results.append(same_run_twice(base, ws, work))
    print(f"faults --bad-input: {len(results)} cases; {machine()}")
    print(f"{'case':<34} exit  lines  ok   the line (cut at 200 characters; <mnt> is the tmpfs, <cache> and <runs> "
          "the workspace's, C the corpus folder, V the phone view's, R the run's)")
    for r in results:
        print(f"{r['case']:<34} {r.get('rc', '-'):>4}  {r.get('stderr_lines', '-'):>5}  "
              f"{'-' if r['ok'] is None else 'yes' if r['ok'] else 'NO':<3}  {shorten(r['line'], work, ROOT)}")
    for r in results:
        if r.get("note"):
            print(f"  {r['case']}: {r['note']}")
        if r["ok"] is False:
            print(f"  FAILED {r['case']}: temporaries {r['temporaries'][:3]} changed {r['changed'][:3]} lost "
                  f"{r['lost'][:3]}\n{r['stderr_tail']}")
    ran = [r for r in results if r["ok"] is not None]
    save("faults-bad-input", {"cases": results})
    print(f"RATIO bad-input cases that end in one line, exit 2, nothing finished changed, no temporary: "
          f"{sum(r['ok'] for r in ran)}/{len(ran)} ({len(results) - len(ran)} skipped)")
    sys.exit(0 if all(r["ok"] for r in ran) else 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 trials per stage (default 10)")
    ap.add_argument("--bad-input", action="store_true", help="the bad-input and fault cases instead of SIGKILL trials")
    ap.add_argument("--cases", default="", help="with --bad-input: only the cases whose name holds this")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.bad_input:
        return run_bad_input(args.cases)
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
                raise SystemExit(f"faults: the uninterrupted {stage} run failed: {last_line(err)}")
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
