"""The few lines `make smoke` ends with: what was built, where the runs and scores are, what to run next.

It reads only files (each run's run.json and its eval/<checkpoint>/summary.json under runs/<scale>/), so it
starts in a second and works whatever the MLflow store holds.

    python -m modevo.report.smoke_summary [--scale smoke] [--runs-dir runs] [--results results]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

NEXT = [
    ("make ui", "the runs in the MLflow UI: filter tags.factors LIKE '%C%', tick the runs, Compare"),
    ("make report SCALE={scale}", "Tables 3-4 and Figs. 1, 2, 4 from these runs → results/{scale}/"),
    ("make plan FACTOR=C SCALE=cpu", "what the CPU reproduction would build and train, and how long, before it runs"),
    ("make paper SCALE=cpu", "every condition at cpu scale, then its tables (hours on 2 cores; see results/cpu/)"),
]


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def finished_runs(runs_dir: Path, scale: str) -> list[tuple[str, Path, dict]]:
    """(view, run folder, run.json) of every finished training run under runs/<scale>/, by view then folder."""
    out = []
    for info_path in sorted((runs_dir / scale).glob("*/*/run.json")):
        info = _read(info_path)
        if info.get("status") == "finished":
            out.append((info.get("view") or info_path.parent.parent.name, info_path.parent, info))
    return out


def final_scores(run_dir: Path) -> dict[str, float | None]:
    """Task key → headline accuracy (%) of the run's most trained scored checkpoint; None for a task the view
    could not render."""
    summaries = sorted((run_dir / "eval").glob("*/summary.json"))
    if not summaries:
        return {}
    results = _read(summaries[-1]).get("results", {})  # tokens-<12 digits>: the last name is the most trained
    out = {}
    for key, s in results.items():
        acc = (s.get("acc") or {}).get("mean") if not s.get("not_scored") else None
        out[key] = None if acc is None else 100.0 * float(acc)
    return out


def summary_lines(scale: str = "smoke", runs_dir: str | Path = "runs", results_dir: str | Path = "results",
                  cache_dir: str | Path | None = None) -> list[str]:
    runs_dir, results_dir = Path(runs_dir), Path(results_dir)
    cache = Path(cache_dir or os.environ.get("MODEVO_CACHE") or "cache")
    runs = finished_runs(runs_dir, scale)
    lines = [f"== make {scale}: done ==" if scale == "smoke" else f"== {scale}: summary =="]
    lines.append(f"built    the {scale} corpus (text, phones, renderings), its units and views in {cache}/ "
                 "(MODEVO_CACHE moves it)")
    if not runs:
        lines.append(f"runs     none finished under {runs_dir / scale}/ yet")
    else:
        views = sorted({v for v, _, _ in runs})
        lines.append(f"runs     {len(runs)} finished, {len(views)} views, in {runs_dir / scale}/<view>/<run>/ "
                     f"(config.yaml, run.json, checkpoints/); tracked in {runs_dir / 'mlflow.db'}")
        scores = {(v, d): final_scores(d) for v, d, _ in runs}
        tasks = sorted({k for s in scores.values() for k in s if "/" not in k})  # each view's own rendering
        scored = sum(1 for s in scores.values() if s)
        lines.append(f"scores   {scored} of {len(runs)} runs scored: <run>/eval/<checkpoint>/summary.json, "
                     "items.parquet and a layer-curve PNG per task")
        if tasks:
            width = max(len(v) for v in views) + 2
            lines.append("         " + "view".ljust(width) + "".join(t[:14].rjust(15) for t in tasks)
                         + "   (accuracy %, last checkpoint)")
            for (view, _), s in scores.items():
                cells = "".join(("-" if s.get(t) is None else f"{s[t]:.1f}").rjust(15) for t in tasks)
                lines.append("         " + view.ljust(width) + cells)
            if scale == "smoke":
                lines.append("         (smoke models are tiny and sit near chance: this checks the pipeline, not the paper)")
    tables = results_dir / scale
    if (tables / "table4.md").is_file():
        lines.append(f"tables   {tables}/: table3.md, table4.md, figures (modevo report --scale {scale})")
    else:
        lines.append(f"tables   none yet: `make report SCALE={scale}` writes them to {tables}/; the committed CPU "
                     f"reproduction is in {results_dir / 'cpu'}/README.md")
    lines.append("next")
    width = max(len(c.format(scale=scale)) for c, _ in NEXT) + 2
    lines += [f"  {c.format(scale=scale).ljust(width)}{what.format(scale=scale)}" for c, what in NEXT]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m modevo.report.smoke_summary",
                                description="what a scale's runs built and where they are (make smoke ends with it)")
    p.add_argument("--scale", default="smoke", help="runs/<scale>/ to summarise (default: %(default)s)")
    p.add_argument("--runs-dir", default="runs", help="default: %(default)s")
    p.add_argument("--results", default="results", help="where report writes its tables (default: %(default)s)")
    args = p.parse_args(argv)
    print("\n".join(summary_lines(args.scale, args.runs_dir, args.results)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
