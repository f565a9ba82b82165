"""Eval results → the run's MLflow entry: scalar metrics, layer curves as metric steps, tags, artifacts.

Metric names are the same for every condition so a factor's runs compare side by side:
    eval/<task>[/test-<rendering>]/acc                   step = tokens seen (one point per scored checkpoint)
    eval/<task>[/test-<rendering>]/layer_acc             step = layer (final checkpoint)
    .../acc_lo, acc_hi, acc_sum, acc_mean, acc_in_vocab, n, n_in_vocab, baseline_<name> (shorter_wins, ngram, word_overlap), mde
    .../<breakdown>/<group>/acc                          e.g. eval/sblimp/field/syntax/acc, every breakdown
    .../n = 0 only, for a task that rendered nothing in this view (summary.json says why: not_scored)
Names pass through metric_name(): a label MLflow refuses is spelled out ('>100' → 'gt100') or replaced by
'_'; summary.json keeps the label as the data gave it.
Tags: task_hash.<task> (every number carries its task set), audio.<task> = released for a task scored on a
benchmark's own audio, scoring_protocol (JSON) and protocol_hash.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from modevo.errors import InputError


def _value(x) -> float:
    return float("nan") if x is None else float(x)


# MLflow accepts letters, digits, '_', '-', '.', ' ', '/' in metric names; labels come from data files
# (a ZeroSpeech frequency band is '>100'), so every name goes through here and summary.json keeps the label
_SPELLED = {">": "gt", "<": "lt", "=": "eq", "+": "plus", "%": "pct", "&": "and"}


def metric_name(*parts: str) -> str:
    """Metric name parts (task key, group label, ...) → one name MLflow accepts: '>100' → 'gt100'."""
    def clean(part: str) -> str:
        part = "".join(_SPELLED.get(ch, ch) for ch in str(part).replace(" ", "_"))
        return re.sub(r"[^A-Za-z0-9_\-./]", "_", part) or "_"

    return "/".join(clean(p) for p in parts)


def log_results(info: dict, run_dir: Path, results: dict, protocol: dict, final: str) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=info["tracking_uri"])
    run_id = info["mlflow_run_id"]
    try:
        client.get_run(run_id)
    except Exception as e:  # an unreachable store or a deleted run: the files in <run>/eval/ stay
        raise InputError(f"cannot log to MLflow run {run_id} at {info['tracking_uri']}: {str(e).splitlines()[0]} "
                         f"(results are kept in {run_dir / 'eval'})") from None
    now = int(time.time() * 1000)
    metrics = []
    for ckpt, summaries in results.items():
        for key, s in summaries.items():
            if s.get("not_scored"):  # no accuracy to log: the count says why the curve has no point
                if ckpt == final:
                    metrics.append(Metric(metric_name(key, "n"), 0.0, now, s.get("tokens_seen", 0)))
                continue
            metrics.append(Metric(metric_name(key, "acc"), _value(s["acc"]["mean"]), now, s["tokens_seen"]))
            if ckpt != final:
                continue
            metrics += [Metric(metric_name(key, "layer_acc"), _value(r["mean"]), now, r["layer"]) for r in s["layers"]]
            scalars = {"acc_lo": s["acc"]["lo"], "acc_hi": s["acc"]["hi"], "acc_sum": s["acc_sum"],
                       "acc_mean": s["acc_mean"], "acc_in_vocab": s["in_vocab"]["mean"], "n": s["rendered"],
                       "n_in_vocab": s["in_vocab"]["n"], "mde": s["mde"]["between_runs"], "ties": s["ties"],
                       **{f"baseline_{name}": b["mean"] for name, b in s["baselines"].items()}}
            metrics += [Metric(metric_name(key, k), _value(v), now, s["tokens_seen"]) for k, v in scalars.items()]
            for breakdown, by_group in s["breakdowns"].items():  # e.g. eval/sblimp/field/syntax/acc
                metrics += [Metric(metric_name(key, breakdown, g, "acc"), _value(b["acc"]), now, s["tokens_seen"])
                            for g, b in by_group.items()]
    for i in range(0, len(metrics), 900):  # MLflow caps a batch at 1000 metrics
        client.log_batch(run_id, metrics=metrics[i:i + 900])
    hashes = {s["task"]: s["task_hash"] for summaries in results.values() for s in summaries.values()}
    for task, h in hashes.items():
        client.set_tag(run_id, f"task_hash.{metric_name(task)}", h)
    audio = {s["task"]: s["audio"] for s in results.get(final, {}).values() if s.get("audio") == "released"}
    for task in audio:
        client.set_tag(run_id, f"audio.{metric_name(task)}", "released")
    client.set_tag(run_id, "scoring_protocol", json.dumps(protocol, sort_keys=True))
    client.set_tag(run_id, "protocol_hash", protocol["hash"])
    client.set_tag(run_id, "eval_checkpoint", final)
    folder = run_dir / "eval" / Path(final).stem
    for f in sorted(folder.glob("*.png")) + [folder / "summary.json"]:
        client.log_artifact(run_id, str(f), artifact_path=f"eval/{folder.name}")
