"""Scored runs of one scale, found through their MLflow tags (never through folder names).

A condition is a view (plus, for speech, its tokenizer); a condition may have several seeds. Its numbers
come from each run's latest scored checkpoint (<run>/eval/<ckpt>/summary.json, written by `modevo eval`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from modevo.cache import read_json, read_run_json
from modevo.errors import InputError
from modevo.score.runs import finished_runs, recorded_milestones
from modevo.views.registry import parse_view

log = logging.getLogger("modevo.report")

# The paper's converged numbers live beside the family they belong to (ViewFamily.paper_scores): Wang et al.
# (arXiv 2412.17048), as given by a secondary digest (DESIGN.md): two of its derived deltas do not add up, so
# they are printed as "secondary source, unverified" wherever they appear. Their order:
PAPER_TASKS = {"swuggy": 0, "sblimp": 1, "tsc-topic": 2}
PAPER_NOTE = "paper: Wang et al. 2024, converged, from a secondary digest (unverified)"


@dataclass
class Run:
    run_id: str
    run_dir: Path
    view: str
    seed: int
    tags: dict
    results: dict  # run.json results: tokens_seen, epochs, ...
    evals: dict[str, dict] = field(default_factory=dict)  # checkpoint name → {metric key: summary}
    last_checkpoint: str | None = None  # the run's final weights (checkpoints/<name>.pt), when the folder has them

    @property
    def final(self) -> dict:
        """Scores of the run's last checkpoint; {} until it is scored (an earlier milestone never stands in).
        A task that rendered nothing in this view ("not scored (n=0)") is absent, as if never scored."""
        if self.last_checkpoint is not None:
            found = self.evals.get(self.last_checkpoint, {})
        else:
            found = self.evals[max(self.evals)] if self.evals else {}
        return {k: s for k, s in found.items() if not s.get("not_scored")}


def released_tasks(runs: list[Run]) -> list[str]:
    """The tasks these runs scored on a benchmark's released audio (not synthesised by modevo)."""
    return sorted({s["task"] for r in runs for s in r.final.values() if s.get("audio") == "released"})


def condition_name(view: str, released: list[str] | tuple = ()) -> str:
    """What a row is, e.g. 'speech-varied (mel-kmeans, synthetic)'; 'phone-repeat@varied (synthetic durations)';
    a speech row scored on released benchmark audio says which tasks that was:
    'speech-varied (mel-kmeans, synthetic; released audio: swuggy-zr21)'."""
    spec = parse_view(view)
    return spec.view_family.condition_name(spec, released)


def collect(scale: str, runs_dir: str | Path = "runs", tracking_uri: str | None = None,
            experiment: str = "modevo") -> list[Run]:
    """Finished, scored training runs of `scale` (their folders must exist here)."""
    runs = []
    for r, folder in finished_runs(runs_dir, tracking_uri, experiment, scale=scale):
        if not (folder / "run.json").is_file():
            continue
        info = read_run_json(folder)
        run = Run(r.info.run_id, folder, r.data.tags["view"], int(r.data.tags.get("seed", 0)), dict(r.data.tags),
                  info.get("results", {}))
        for s in sorted((folder / "eval").glob("tokens-*/summary.json")):
            run.evals[s.parent.name] = read_json(s, f"delete it and rerun `modevo eval --run {folder}`")["results"]
        ckpts = recorded_milestones(folder)  # the names run.json recorded where the weights are not here
        run.last_checkpoint = ckpts[-1].stem if ckpts else None
        if run.evals and not run.final:
            log.warning("%s: last checkpoint %s not scored yet (only earlier milestones); left out of the report",
                        folder, run.last_checkpoint)
        runs.append(run)
    return runs


def condition_label(view: str, variant: str = "") -> str:
    """A campaign's row label: the view, and its variant in brackets when it has one."""
    return parse_view(view).name + (f" [{variant}]" if variant else "")


def by_condition(runs: list[Run], variants: bool = False) -> dict[str, list[Run]]:
    """view → its scored runs (one per seed; the newest run of a seed wins). A run with a variant (another
    budget, non-default family settings, a warm start: run.json's tags) is left out, counted in the log,
    unless `variants`: then it is its own condition, labelled 'view [variant]'."""
    out: dict[str, dict[int, Run]] = {}
    left_out = 0
    for r in runs:
        if not r.final:
            continue
        variant = r.tags.get("variant", "")
        if variant and not variants:
            left_out += 1
            continue
        out.setdefault(condition_label(r.view, variant), {})[r.seed] = r
    if left_out:
        log.info("%d run(s) with a variant (make interleave and the like) left out of the standard tables", left_out)
    return {v: [rs[s] for s in sorted(rs)] for v, rs in out.items()}


def check_hashes(runs: list[Run]) -> dict[str, str]:
    """task → its one task-set hash across every run; two hashes for one task is one clear error."""
    seen: dict[str, dict[str, str]] = {}
    for r in runs:
        for key, s in r.final.items():
            seen.setdefault(s["task"], {}).setdefault(s["task_hash"], r.view)
    mixed = {t: h for t, h in seen.items() if len(h) > 1}
    if mixed:
        task, hashes = next(iter(mixed.items()))
        which = ", ".join(f"{h} ({v})" for h, v in hashes.items())
        raise InputError(f"task {task} was scored on different task sets ({which}): rescore every run with one "
                         "tasks config (modevo eval --all) before reporting")
    protocols = {s["protocol"]["hash"] for r in runs for s in r.final.values()}
    if len(protocols) > 1:
        raise InputError(f"runs were scored under different protocols ({', '.join(sorted(protocols))}): rescore")
    return {t: next(iter(h)) for t, h in seen.items()}
