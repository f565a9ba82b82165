"""`modevo report`: MLflow runs of one scale → results/<scale>/ (Tables 3 and 4 as Markdown, CSV and
LaTeX; Figs. 1, 2 and 4 as PNG; provenance.json naming every run, task-set hash and the scoring protocol)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from modevo.errors import InputError
from modevo.machine import describe as describe_machine
from modevo.report.collect import by_condition, check_hashes, collect
from modevo.report.figures import curve_points, factor_deltas, layer_curves, training_curves
from modevo.report.tables import breakdown_rows, compact, grid_rows, paper_note, table3, table4, to_markdown, units_table, wall_times, write_table
from modevo.frames import DEFAULT_RATE_HZ, rate_suffix
from modevo.views.registry import DEFAULT_TOKENIZER, factor_views, parse_view

log = logging.getLogger("modevo.report")


def report(scale: str, out: str | Path | None = None, runs_dir: str | Path = "runs", tracking_uri: str | None = None,
           factor: str | None = None, views: list[str] | None = None, tokenizer: str = DEFAULT_TOKENIZER) -> dict:
    """Write the tables and figures; returns {"table4": rows, "table3": rows, "files": [...]}."""
    runs = collect(scale, runs_dir, tracking_uri)
    conditions = by_condition(runs)
    wanted = views or (factor_views(factor, tokenizer) if factor else None)
    absent: list[str] = []
    if wanted:
        wanted = [parse_view(v).name for v in wanted]
        missing = [v for v in wanted if v not in conditions]
        if missing and (views or len(missing) == len(wanted)):  # the user named these views: all must be there
            v = missing[0]
            raise InputError(f"no scored {scale} run of {v}: make it with `modevo train --config "
                             f"configs/train/{scale}.yaml --view {v}` then `modevo eval --all --scale {scale}`"
                             + (f" ({len(missing) - 1} more condition(s) missing)" if len(missing) > 1 else ""))
        if missing:  # a factor's tables from the conditions it has, and a note naming the rest
            log.warning("factor %s: no scored %s run of %s yet; reporting the other conditions", factor, scale,
                        ", ".join(missing))
            absent = missing
        conditions = {v: conditions[v] for v in wanted if v in conditions}
    else:  # the paper's order (factor pairs, then any other condition by name), whatever order MLflow returns
        rank = {v: i for i, v in enumerate(factor_views("all", tokenizer))}
        conditions = dict(sorted(conditions.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))
    if not conditions:
        raise InputError(f"no scored runs of scale {scale} in {runs_dir}: run `modevo eval --all --scale {scale}`")
    hashes = check_hashes([r for rs in conditions.values() for r in rs])
    protocol = next(iter(next(iter(conditions.values()))[0].final.values()))["protocol"]
    out = Path(out or Path("results") / scale)
    notes = [f"task sets: {', '.join(f'{t} {h}' for t, h in hashes.items())}",
             f"scoring protocol {protocol['hash']}: {protocol['headline']} log-probability, ties within "
             f"{protocol['tie_tolerance_nats']} nats = 0.5, {protocol['ci']}",
             "accuracy in % with 95% CI (cluster bootstrap where items share a document; over seeds × items with "
             "several seeds); baselines beside each task", paper_note()]
    absent_note = [f"not yet scored, so absent from these tables: {', '.join(absent)} (`make factor-"
                   f"{str(factor).lower()} SCALE={scale}` runs what is missing)"] if absent else []
    notes += absent_note
    t4, t3 = table4(conditions), table3(conditions)
    judged_note = ["continuation PPL: the word n-gram judge (train split, prompts as history) on the words read back "
                   "from each run's continuations of the same held-out prompts, 95% CI over prompts; reference = "
                   "the same judge on those prompts' true continuations (a run near it writes corpus-like text); "
                   "paper* = Llama-3.1-8B on Whisper transcripts, so only the direction and relative size of a "
                   "change compare"] if any("continuation PPL reference" in r for r in t4) else []
    files = write_table(t4, out, "table4", f"Table 4 ({scale}): accuracy per condition and task", notes + judged_note)
    files += write_table(compact(t4), out, "table4_compact", f"Table 4 at a glance ({scale})", notes + [
        "each cell: model accuracy [95% CI] · SW shorter-wins · 3g n-gram · WO word overlap (tSC), each baseline "
        "marked ✓ model beats it, ✗ model below it, ≈ cannot tell (paired 95% CI, seed 0); paper* as in Table 4"])
    if t3:
        files += write_table(t3, out, "table3", f"Table 3 ({scale}): factor deltas (after − before)", notes[:3] + absent_note + [
            "delta with paired 95% CI on the items both conditions rendered; 'cannot tell' = the CI spans 0 and "
            "equivalence within ±2 points is not shown; MDE = minimum detectable difference at 80% power"])
    grid = grid_rows(conditions)
    if grid:
        files += write_table(grid, out, "speech_grid", f"Speech conditions on each test rendering ({scale})", [
            "seed 0, final checkpoint; 'own' is the condition's training rendering (the headline in Table 4); "
            "acc in % with 95% CI"])
    breakdowns = breakdown_rows(conditions)
    if breakdowns:
        files += write_table(breakdowns, out, "breakdowns", f"Accuracy per breakdown group ({scale}), seed 0, final "
                             "checkpoint", ["acc and baselines in %; groups as each task defines them (sBLIMP: paradigm "
                                            "and phenomenon; sWUGGY: set, frequency band, length)"])
    units = units_table(conditions)
    if units:
        files += write_table(units, out, "units", f"Unit quality ({scale}), beside factor C", [
            "held-out (valid + test) frames without silence; PNMI = I(phone; unit) / H(phone); a run trained "
            "before units were recorded shows —"])
    times = Path(runs_dir) / scale / "pipeline-times.jsonl"
    if times.is_file():
        files += write_table(wall_times(times), out, "wall_times", f"Wall time per stage ({scale})", [
            f"from {times} (each `modevo factor` step's wall time on this machine; a rerun reuses cached "
            "steps, which are not timed again)"])
    points = curve_points(conditions)
    files.append(training_curves(conditions, out / "fig1_tokens.png", hashes, words=False, points=points))
    files.append(training_curves(conditions, out / "fig1_words.png", hashes, words=True, points=points))
    files.append(layer_curves(conditions, out / "fig2_layers.png", hashes))  # (Fig. 3 was its sWUGGY panel)
    if t3:
        files.append(factor_deltas(t3, out / "fig4_factor_deltas.png", hashes))
    provenance = {"scale": scale, "task_hashes": hashes, "protocol": protocol, "machine": describe_machine(),
                  "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "runs": {v: [{"mlflow_run_id": r.run_id, "run_dir": str(r.run_dir), "seed": r.seed,
                                "checkpoint": max(r.evals), "code_version": r.tags.get("code_version"),
                                # what a rerun must match to be bit-identical (null: trained before it was recorded)
                                "processor": r.tags.get("processor"), "threads": r.tags.get("threads")}
                               for r in rs] for v, rs in conditions.items()}}
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1, sort_keys=True))
    files.append(out / "provenance.json")
    return {"table4": t4, "table3": t3, "units": units, "files": files, "notes": notes}


def default_out(scale: str, factor: str | None = None, tokenizer: str = DEFAULT_TOKENIZER,
                rate_hz: float = DEFAULT_RATE_HZ) -> Path:
    """results/<scale> for the whole paper; one factor's tables go beside it (results/<scale>/factor-a,
    factor C per tokenizer: factor-c-phonetic-kmeans; another rate: factor-c-mel-kmeans-25hz), so
    `make factor-c` never overwrites `make paper`."""
    rate = rate_suffix(rate_hz).replace(":", "-")
    if factor is None:
        return Path("results") / scale / (f"paper{rate}" if rate else "")
    return Path("results") / scale / (f"factor-{factor.lower()}" + (f"-{tokenizer}" if factor.upper() == "C" else "")
                                      + rate)


def print_rows(rows: list[dict], title: str, notes: list[str], columns: list[str] | None = None) -> None:
    if columns:
        rows = [{c: r.get(c, "") for c in columns if c in r} for r in rows]
    print(to_markdown(rows, title, notes))
