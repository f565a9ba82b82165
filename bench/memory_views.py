"""Peak memory of `modevo views build` and of a short `modevo train` at N and 4N utterances of a smoke-like
corpus: the ratio says whether memory grows with the corpus (views written shard by shard and read
memory-mapped stay flat; a build holding every row, rendering and unit, or a training stream copied to
int64, grows). N = documents × sentences; 4N takes four times the documents (a vendored novel is one corpus
shard, so the shard size, which does bound memory, stays the same). Peak memory is the PSS (proportional
set size: shared pages split between the processes that map them, so a memory-mapped stream read by
several workers counts once) summed over the whole process tree, sampled every 0.2 s; RSS where
/proc/<pid>/smaps_rollup is absent. Corpus, renderings and units are built first, unmeasured, in a fresh
cache per size. Also printed: bytes per token of each view on disk, and the marginal peak bytes per token
(the growth from N to 4N over the tokens added).

    python bench/memory_views.py [--documents 2] [--sentences 300] [--train-view phone-repeat@varied]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, process_tree, save, table, verdict, workspace_env


def _kb(text: str, field: str) -> int | None:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def tree_memory(root: int) -> tuple[int, int, str]:
    """(summed PSS, summed RSS, "pss" or "rss": what the first figure is) of a process tree, in bytes."""
    pss = rss = 0
    kind = "pss"
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        r = _kb(status, "VmRSS") or 0
        if not r:  # a zombie or a kernel thread: nothing mapped
            continue
        rss += r
        try:
            p = _kb(Path(f"/proc/{pid}/smaps_rollup").read_text(), "Pss")
        except OSError:
            p = None
        if p is None:
            kind, p = "rss", r
        pss += p
    return pss, rss, kind


def run_measured(cmd: list[str], env: dict, interval: float = 0.2) -> dict:
    """Run a child, sampling its process tree: seconds, peak summed PSS and RSS (bytes)."""
    with tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        peak_pss = peak_rss = 0
        kind = "pss"
        while proc.poll() is None:
            pss, rss, k = tree_memory(proc.pid)
            peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
            kind = "rss" if k == "rss" else kind
            time.sleep(interval)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            err.seek(0)
            lines = err.read().strip().splitlines()
            raise SystemExit(f"{' '.join(cmd[2:])} failed: {lines[-1] if lines else proc.returncode}")
    return {"seconds": wall, "peak_pss": peak_pss, "peak_rss": peak_rss, "measure": kind}


def measure(ws: Path, documents: int, sentences: int, views: list[str], train_view: str, train_tokens: int) -> dict:
    from modevo.views.registry import parse_view

    env = workspace_env(ws)
    py = [sys.executable, "-m", "modevo"]
    size = [f"corpus.source.max_documents={documents}", f"corpus.source.max_sentences_per_document={sentences}"]
    cfg = ["-c", "configs/views/smoke.yaml", "--no-progress", *size]
    t = time.perf_counter()
    speech = any(parse_view(v).family == "speech" for v in views + [train_view])
    subprocess.run(py + ["units" if speech else "corpus", "build", *(cfg if speech else
                   ["-c", "configs/corpus/smoke.yaml", "--no-progress", *(s.removeprefix("corpus.") for s in size)])],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    out = {"prepare_seconds": time.perf_counter() - t, "stages": {}}
    out["stages"]["views build"] = run_measured(py + ["views", "build", *cfg, "--views", ",".join(views)], env)
    out["stages"]["train"] = run_measured(py + [
        "train", "-c", "configs/train/smoke.yaml", "--view", train_view, "--no-progress", *size,
        f"train.runs_dir={ws / 'runs'}", f"train.max_tokens={train_tokens}"], env)
    out["views"] = {}
    for m in sorted((ws / "cache").glob("corpus/*/views/*/manifest.json")):
        man = json.loads(m.read_text())
        disk = sum(f.stat().st_size for f in m.parent.iterdir())
        streams = sum(f.stat().st_size for f in m.parent.glob("stream-*.npy"))
        out["views"][man["view"]] = {"tokens": man["tokens"], "utterances": man["utterances"], "disk_bytes": disk,
                                     "stream_bytes": streams, "dtype": man.get("dtype")}
    out["utterances"] = next(iter(out["views"].values()))["utterances"] if out["views"] else 0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--documents", type=int, default=2, help="novels at N (4N takes four times as many)")
    ap.add_argument("--sentences", type=int, default=300, help="sentences per novel, at most")
    ap.add_argument("--views", default="text-bpe,phone,phone-repeat@varied,speech-varied")
    ap.add_argument("--train-view", default="phone-repeat@varied")
    ap.add_argument("--train-tokens", type=int, default=8192, help="training budget (the same at N and 4N)")
    ap.add_argument("--goal", type=float, default=1.2)
    args = ap.parse_args()
    views = [v.strip() for v in args.views.split(",")]
    results = {}
    for mult in (1, 4):
        with tempfile.TemporaryDirectory(prefix="modevo-bench-") as tmp:
            results[mult] = measure(Path(tmp), args.documents * mult, args.sentences, views, args.train_view,
                                    args.train_tokens)
    from modevo.views.registry import parse_view

    frame_view = parse_view(args.train_view).name
    tokens = {m: results[m]["views"].get(frame_view, {}).get("tokens", 0) for m in (1, 4)}
    all_tokens = {m: sum(v["tokens"] for v in results[m]["views"].values()) for m in (1, 4)}
    kind = "PSS" if all(s["measure"] == "pss" for m in (1, 4) for s in results[m]["stages"].values()) else "RSS"
    rows, ratios = [], {}
    for name in results[1]["stages"]:
        a, b = (results[m]["stages"][name]["peak_pss"] for m in (1, 4))
        grown = all_tokens if name == "views build" else tokens  # the build writes every view; train reads one
        per_token = (b - a) / max(1, grown[4] - grown[1])
        ratios[name] = b / a
        rows.append([name, f"{a / 2**20:,.0f}", f"{b / 2**20:,.0f}", f"{b / a:.2f}", f"{per_token:,.1f}"])
    print(f"memory_views: N = {results[1]['utterances']:,} utterances ({args.documents} novels × ≤{args.sentences} "
          f"sentences), 4N = {results[4]['utterances']:,}; {machine()}")
    print(table(["stage", f"peak {kind} MB at N", "at 4N", "4N / N", "marginal B/token"], rows))
    vrows = []
    for name, v in sorted(results[4]["views"].items(), key=lambda kv: kv[1]["tokens"]):
        vrows.append([name, v["dtype"], f"{v['tokens']:,}", f"{v['stream_bytes'] / max(1, v['tokens']):.2f}",
                      f"{v['disk_bytes'] / max(1, v['tokens']):.2f}"])
    print(table(["view at 4N", "dtype", "tokens", "stream B/token", "folder B/token"], vrows))
    print(f"marginal B/token: peak growth from N to 4N over the tokens added (views build: every view's tokens; "
          f"train: {frame_view}'s, {tokens[1]:,} → {tokens[4]:,})")
    ratio = max(ratios.values())
    save("memory_views", {"n": results[1], "4n": results[4], "ratios": ratios, "ratio": ratio, "goal": args.goal,
                          "measure": kind})
    print(verdict(f"peak {kind} at 4N / at N, worst of views build and train", ratio, args.goal,
                  higher_is_better=False))


if __name__ == "__main__":
    main()
