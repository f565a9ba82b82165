"""Scored runs as portable bundles: `modevo runs pack` / `modevo runs unpack`.

A bundle is what the report needs of one finished, scored run and nothing it can redraw: run.json,
config.yaml, each scored checkpoint's eval/<ckpt>/summary.json and items.parquet (the per-item scores the
paired intervals resample), samples/<ckpt>/judged.json (the continuation column), and mlflow.json (the run's tags, params and metric history). No weights: a
bundle of a cpu-scale run is about 2 MB, small enough to commit beside results/, so seeds trained on
different machines (a GPU cluster, a laptop, another session) meet in one report.

`unpack` registers each bundle as a FINISHED MLflow run in the target store (tags kept, run_dir rewritten,
`unpacked_from` naming the original run id) and copies its files into <runs>/<scale>/<view>/<run>. It is
idempotent: a run already there (same original run id) is counted, not duplicated. Every file is checked
against the sha256 that `pack` recorded; a bundle that fails the check is a counted, logged skip.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from modevo.cache import atomic_dir, atomic_write_json, file_digest, read_json
from modevo.errors import InputError

log = logging.getLogger("modevo.report")

FORMAT = "modevo-run-bundle/1"
MANIFEST = "bundle.json"
EXPERIMENT = "modevo"


def _eval_files(run_dir: Path) -> list[Path]:
    """The scored checkpoints' summaries and item scores (not their plots: the report draws its own), and
    the judged continuations (the continuation column)."""
    out = []
    for summary in sorted((run_dir / "eval").glob("tokens-*/summary.json")):
        out.append(summary)
        items = summary.parent / "items.parquet"
        if items.is_file():
            out.append(items)
    return out + sorted((run_dir / "samples").glob("tokens-*/judged.json"))


def _mlflow_record(client, run_id: str) -> dict:
    run = client.get_run(run_id)
    metrics = {}
    for key in run.data.metrics:
        metrics[key] = [[m.step, m.value, m.timestamp] for m in client.get_metric_history(run_id, key)]
    return {"run_id": run_id, "run_name": run.info.run_name, "start_time": run.info.start_time,
            "end_time": run.info.end_time, "tags": {k: v for k, v in run.data.tags.items()
                                                    if not k.startswith("mlflow.") or k == "mlflow.source.git.commit"},
            "params": dict(run.data.params), "metrics": metrics}


def pack(scale: str, out: str | Path, runs_dir: str | Path = "runs", tracking_uri: str | None = None,
         views: list[str] | None = None) -> dict:
    """Bundle every finished run of `scale` whose final checkpoint is scored → out/<view>/<run>/.
    Returns {"packed": [folders], "unchanged": n, "unscored": n}."""
    from modevo.report.collect import collect
    from modevo.score.runs import _client
    from modevo.views.registry import parse_view

    wanted = {parse_view(v).name for v in views} if views else None
    client = _client(runs_dir, tracking_uri)
    out = Path(out)
    packed, unchanged, unscored = [], 0, 0
    for run in collect(scale, runs_dir, tracking_uri):
        if wanted is not None and parse_view(run.view).name not in wanted:
            continue
        if not run.final:
            unscored += 1
            log.info("%s: its final checkpoint is not scored yet; not packed", run.run_dir)
            continue
        dest = out / run.run_dir.parent.name / run.run_dir.name
        files = [run.run_dir / "run.json", run.run_dir / "config.yaml", *_eval_files(run.run_dir)]
        digests = {str(f.relative_to(run.run_dir)): file_digest(f) for f in files}
        old = dest / MANIFEST
        origin = run.tags.get("unpacked_from") or run.run_id
        if old.is_file():
            try:
                prior = json.loads(old.read_text())
            except ValueError:
                prior = {}
            kept = {k: v for k, v in prior.get("files", {}).items() if k != "mlflow.json"}
            if kept == digests and prior.get("mlflow_run_id") == run.run_id:
                unchanged += 1
                continue
            # an unpacked copy of this very bundle, scored no further: its run.json and MLflow record differ
            # only in the local run id, and repacking would churn a committed bundle for nothing
            scores = lambda d: {k: v for k, v in d.items() if k not in ("mlflow.json", "run.json")}
            if (run.tags.get("unpacked_from") and prior.get("origin_run_id") == origin
                    and scores(kept) == scores(digests)):
                unchanged += 1
                continue
        staging = dest.with_name(f".{dest.name}.packing")
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed pack
        with atomic_dir(staging) as tmp:  # a full disk or an interrupt leaves the previous bundle, not half of one
            for f in files:
                target = tmp / f.relative_to(run.run_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
            (tmp / "mlflow.json").write_text(json.dumps(_mlflow_record(client, run.run_id), indent=1, sort_keys=True))
            digests["mlflow.json"] = file_digest(tmp / "mlflow.json")
            atomic_write_json(tmp / MANIFEST, {
                "format": FORMAT, "scale": scale, "view": run.view, "seed": run.seed,
                "mlflow_run_id": run.run_id, "source_run_dir": str(run.run_dir),
                # the run where it was trained: a bundle of an unpacked run names its origin, not the copy
                "origin_run_id": origin,
                "code_version": run.tags.get("code_version"), "final_checkpoint": run.last_checkpoint,
                "packed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": digests})
        if dest.exists():  # the run was scored again since it was packed: the new bundle replaces the old
            shutil.rmtree(dest)
        os.replace(staging, dest)
        packed.append(dest)
    return {"packed": packed, "unchanged": unchanged, "unscored": unscored}


def _check(bundle: Path) -> dict:
    """The bundle's manifest after checking every file against its recorded sha256; InputError otherwise."""
    path = bundle / MANIFEST
    manifest = read_json(path, "pack the run again (modevo runs pack)")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InputError(f"{bundle}: bundle format {found!r}, expected {FORMAT!r}")
    for name, digest in sorted(manifest.get("files", {}).items()):
        f = bundle / name
        if not f.is_file():
            raise InputError(f"{bundle}: {name} is missing")
        if file_digest(f) != digest:
            raise InputError(f"{bundle}: {name} changed since it was packed (sha256 differs)")
    if "mlflow.json" not in manifest.get("files", {}) or "run.json" not in manifest["files"]:
        raise InputError(f"{bundle}: the manifest names no mlflow.json or run.json")
    return manifest


def _present(client, experiment_id: str, origin: str) -> bool:
    found = client.search_runs([experiment_id], f"tags.unpacked_from = '{origin}'", max_results=1)
    if found:
        return True
    try:  # the store the bundle was packed from: the original run itself is there
        client.get_run(origin)
        return True
    except Exception:
        return False


def unpack(source: str | Path, runs_dir: str | Path = "runs", tracking_uri: str | None = None) -> dict:
    """Register every bundle under `source` into the runs folder and its MLflow store.
    Returns {"unpacked": [run folders], "present": n, "skipped": [(bundle, why)]}."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from modevo.score.runs import default_tracking_uri
    from modevo.train.run import check_tracking_uri, ensure_experiment, with_store_retries

    source = Path(source)
    if not source.is_dir():
        raise InputError(f"no bundle folder {source}")
    bundles = sorted(p.parent for p in source.rglob(MANIFEST))
    if not bundles:
        raise InputError(f"{source} holds no run bundle ({MANIFEST}); make them with `modevo runs pack`")
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri or default_tracking_uri(runs_dir)
    check_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    # as the trainer does: a fresh sqlite store's experiment keeps its artifacts in the runs folder, not in
    # ./mlruns of whatever the cwd is, where every later score of these runs would land
    artifacts = None if tracking_uri else str((runs_dir / "artifacts").resolve())
    with_store_retries(lambda: ensure_experiment(uri, EXPERIMENT, artifacts), "creating the experiment")
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    unpacked, present, skipped = [], 0, []
    for bundle in bundles:
        try:
            manifest = _check(bundle)
            record = read_json(bundle / "mlflow.json", "pack the run again (modevo runs pack)")
        except InputError as e:
            skipped.append((bundle, str(e)))
            log.warning("skipped: %s", e)
            continue
        origin = manifest.get("origin_run_id") or manifest["mlflow_run_id"]
        if _present(client, exp_id, origin):
            present += 1
            continue
        dest = runs_dir / manifest["scale"] / bundle.parent.name / bundle.name
        if dest.exists():
            skipped.append((bundle, f"{dest} exists and holds another run"))
            log.warning("skipped %s: %s exists and holds another run (move it, or unpack into another --runs-dir)",
                        bundle, dest)
            continue
        tags = dict(record["tags"], run_dir=str(dest), unpacked_from=origin)
        # a training beside this may hold the sqlite store for a moment: wait it out, as the trainer does
        rid = with_store_retries(lambda: client.create_run(exp_id, start_time=record.get("start_time"),
                                                           run_name=record.get("run_name"), tags=tags),
                                 "registering a bundle").info.run_id
        try:
            params = [Param(k, str(v)) for k, v in record.get("params", {}).items()]
            metrics = [Metric(k, v, ts, step) for k, hist in record.get("metrics", {}).items() for step, v, ts in hist]
            for i in range(0, len(params), 100):  # MLflow's batch limits: 100 params, 1000 metrics a call
                with_store_retries(lambda: client.log_batch(rid, params=params[i:i + 100]), "logging parameters")
            for i in range(0, len(metrics), 1000):
                with_store_retries(lambda: client.log_batch(rid, metrics=metrics[i:i + 1000]), "logging metrics")
            with atomic_dir(dest) as tmp:
                for name in manifest["files"]:
                    if name == "mlflow.json":
                        continue
                    target = tmp / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(bundle / name, target)
                info = json.loads((tmp / "run.json").read_text())
                info.update(mlflow_run_id=rid, run_dir=str(dest), tracking_uri=uri, unpacked_from=origin)
                atomic_write_json(tmp / "run.json", info)
            with_store_retries(lambda: client.set_terminated(rid, "FINISHED", end_time=record.get("end_time")),
                               "closing the run")
        except BaseException:
            client.delete_run(rid)  # no half-registered run: unpacking again starts this bundle afresh
            raise
        unpacked.append(dest)
    return {"unpacked": unpacked, "present": present, "skipped": skipped}
