"""`modevo layers` (`make layers`): what each layer keeps → results/<scale>/layers/.

Every condition of a scale that has a finished run (a view, and its variant for campaign runs such as
`make interleave`'s) is read by the linear probes of score/probe.py and, where its vocabulary holds text
tokens (the family's `text_tokens`), by the latent-transcription lens of score/lens.py. One run stands for
its condition: the lowest seed's newest run (probes and lens are per run; their intervals are over held-out
utterances, not seeds). Both reuse what an earlier call wrote (probes.json, lens.json) when the settings match.

Writes lens.png and lens.csv (conditions with text tokens), probe_<name>.png (one line per condition), and
layers.md / layers.csv: per condition and probe the best layer and every layer whose 95% interval lies above
both controls (the majority class's upper bound and the shuffled-label probe); "kept" when some layer does,
"cannot tell" when none does. The L+1 intervals of one condition are each 95%, not jointly: "kept" at a
single layer is weaker evidence than a run of layers, and the table lists them all.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from modevo.errors import InputError
from modevo.report.collect import Run, collect, condition_label
from modevo.report.tables import markdown_rows, to_csv
from modevo.views.registry import parse_view

log = logging.getLogger("modevo.report")


def representatives(runs: list[Run], wanted: list[str] | None = None) -> dict[str, Run]:
    """condition label → the run that stands for it (lowest seed, newest run of that seed), in a stable order.
    `wanted`: condition labels (or bare view names) to keep; one that has no run is one clear error."""
    by_label: dict[str, dict[int, Run]] = {}
    for r in runs:  # oldest first: a later run of the same seed replaces an earlier one
        by_label.setdefault(condition_label(r.view, r.tags.get("variant", "")), {})[r.seed] = r
    chosen = {label: seeds[min(seeds)] for label, seeds in sorted(by_label.items())}
    if wanted:
        missing = [w for w in wanted if w not in chosen and parse_view(w).name not in chosen]
        if missing:
            raise InputError(f"no finished run of {', '.join(missing)} (have: {', '.join(chosen) or 'none'}); "
                             "train it first, e.g. make train VIEW=<view> SCALE=<scale>")
        keep = {w if w in chosen else parse_view(w).name for w in wanted}
        chosen = {k: v for k, v in chosen.items() if k in keep}
    return chosen


def has_text_tokens(run: Run) -> bool:
    return parse_view(run.view).view_family.text_tokens


def probe_verdicts(label: str, result: dict) -> list[dict]:
    """One row per probe of one condition: best layer, the layers clear of both controls, the verdict."""
    rows = []
    for name, pr in result["probes"].items():
        floor = pr["majority"]["hi"]
        clear = [x["layer"] for x in pr["layers"] if x["lo"] > max(floor, x["shuffled_acc"])]
        best = pr["layers"][pr["best_layer"]]
        rows.append({
            "condition": label, "probe": name, "classes": pr["classes"], "n_test": pr["n_test"],
            "best layer": f"{best['layer']}/{result['n_layer']}",
            "best acc": f"{100 * best['acc']:.1f} [{100 * best['lo']:.1f}, {100 * best['hi']:.1f}]",
            "majority": f"{100 * pr['majority']['acc']:.1f} [{100 * pr['majority']['lo']:.1f}, "
                        f"{100 * floor:.1f}]",
            "shuffled max": f"{100 * max(x['shuffled_acc'] for x in pr['layers']):.1f}",
            "layers clear of controls": ",".join(map(str, clear)) or "none",
            "verdict": "kept" if clear else "cannot tell",
            "checkpoint": result["checkpoint"]})
    return rows


def lens_verdicts(label: str, result: dict, k: str) -> list[dict]:
    """Per target (heard word, next word): the peak layer of recall@k and whether its interval clears the
    same layer's shuffled-target baseline."""
    rows = []
    for target in ("current", "next"):
        pts = [r for r in result["layers"] if r["recall"][target][k]["mean"] is not None]
        if not pts:
            continue
        peak = max(pts, key=lambda r: r["recall"][target][k]["mean"])
        e, s = peak["recall"][target][k], peak["recall"][f"shuffled_{target}"][k]
        rows.append({
            "condition": label, "target": {"current": "heard word", "next": "next word"}[target], "k": k,
            "peak layer": f"{peak['layer']}/{result['n_layers']}",
            "recall@k": f"{100 * e['mean']:.1f} [{100 * e['lo']:.1f}, {100 * e['hi']:.1f}]",
            "shuffled": f"{100 * s['mean']:.1f} [{100 * s['lo']:.1f}, {100 * s['hi']:.1f}]",
            "verdict": "above shuffled" if e["lo"] > s["hi"] else "cannot tell",
            "words": result["n_words"], "checkpoint": result["settings"]["checkpoint"]})
    return rows


def _csv(rows: list[dict], path: Path) -> Path:
    path.write_text(to_csv(rows))
    return path


def layers_report(scale: str, runs_dir="runs", tracking_uri=None, out: str | Path | None = None,
                  conditions: list[str] | None = None, probes: list[str] | None = None, max_positions: int = 20_000,
                  max_utterances: int = 2_000, lens_utterances: int = 200, ks=(1, 5, 10), device: str = "cpu",
                  force: bool = False, progress: bool = True, log_mlflow: bool = True) -> dict:
    """Probe (and lens where it applies) one run per condition of `scale`; write the figures and layers.md."""
    from modevo.report.lens import lens_figure, lens_table
    from modevo.report.probes import write_probe_figures
    from modevo.score.lens import latent_transcription
    from modevo.score.probe import ProbeConfig, probe_run

    chosen = representatives(collect(scale, runs_dir, tracking_uri), conditions)
    if not chosen:
        raise InputError(f"no finished run of scale '{scale}' in {runs_dir}: train some first "
                         f"(make paper SCALE={scale}, make interleave SCALE={scale})")
    out = Path(out or Path("results") / scale / "layers")
    cfg = ProbeConfig(**({"probes": probes} if probes else {}), max_positions=max_positions,
                      max_utterances=max_utterances, device=device)
    probe_results, lens_results = [], {}
    for n, (label, run) in enumerate(chosen.items(), 1):
        log.info("layers %d/%d: %s (seed %d, %s)", n, len(chosen), label, run.seed, run.run_dir)
        res = probe_run(run.run_dir, cfg, progress=progress, log_mlflow=log_mlflow, force=force)
        probe_results.append({**res, "condition": label})
        if has_text_tokens(run):
            lens_results[label] = latent_transcription(run.run_dir, n_utterances=lens_utterances, ks=list(ks),
                                                       progress=progress, force=force, log_mlflow=log_mlflow,
                                                       device=device)
    out.mkdir(parents=True, exist_ok=True)
    files = write_probe_figures(probe_results, out)
    k = str(list(ks)[len(ks) // 2])  # the middle k (5 of 1,5,10) is the headline, as `modevo lens` prints
    probe_rows = [row for res in probe_results for row in probe_verdicts(res["condition"], res)]
    lens_rows = [row for label, res in lens_results.items() for row in lens_verdicts(label, res, k)]
    if lens_results:
        files += [lens_figure(lens_results, out / "lens.png", list(ks)), lens_table(lens_results, out / "lens.csv")]
    if probe_rows:
        files.append(_csv(probe_rows, out / "layers.csv"))
    if lens_rows:
        files.append(_csv(lens_rows, out / "lens_verdicts.csv"))
    files.append(_write_md(scale, out / "layers.md", chosen, probe_rows, lens_rows, k, cfg))
    (out / "provenance.json").write_text(json.dumps({
        "scale": scale, "conditions": {label: {"run_dir": str(r.run_dir), "seed": r.seed, "run_id": r.run_id}
                                       for label, r in chosen.items()},
        "probe_config": cfg.recorded(), "lens": {"utterances": lens_utterances, "ks": list(ks)},
        "probe_code_versions": sorted({r["code_version"] for r in probe_results}),
        "lens_code_versions": sorted({r["code_version"] for r in lens_results.values()})}, indent=1, sort_keys=True))
    files.append(out / "provenance.json")
    return {"files": files, "probe_rows": probe_rows, "lens_rows": lens_rows}


def _write_md(scale, path: Path, chosen: dict[str, Run], probe_rows, lens_rows, k: str, cfg) -> Path:
    lines = [f"# What each layer keeps ({scale})", "",
             f"One run per condition (the lowest seed's): {', '.join(f'{c} (seed {r.seed})' for c, r in chosen.items())}.",
             ""]
    if probe_rows:
        kept = [f"{r['condition']}: {r['probe']}" for r in probe_rows if r["verdict"] == "kept"]
        unsure = [f"{r['condition']}: {r['probe']}" for r in probe_rows if r["verdict"] != "kept"]
        lines += ["## Linear probes", "",
                  f"Kept (some layer's 95% interval above the majority class's upper bound and the shuffled-label "
                  f"probe): {'; '.join(kept) or 'none'}.", "",
                  f"Cannot tell (no layer clear of both controls): {'; '.join(unsure) or 'none'}.", "",
                  *markdown_rows(probe_rows), "",
                  f"Probes: {cfg.recorded()}. Figures: probe_<name>.png (solid: accuracy with its band; dashed: "
                  "majority class; dotted: shuffled-label probe). Each layer's interval is 95% on its own; the "
                  "table lists every layer clear of the controls, not only the best.", ""]
    if lens_rows:
        lines += ["## Latent transcription (logit lens over the text vocabulary)", "",
                  *[f"- {r['condition']}, {r['target']}: recall@{k} peaks at layer {r['peak layer']} with "
                    f"{r['recall@k']}% against {r['shuffled']}% for shuffled targets — {r['verdict']}."
                    for r in lens_rows], "",
                  *markdown_rows(lens_rows), "", "Figure: lens.png; every number: lens.csv.", ""]
    else:
        lines += ["No condition has text tokens in its vocabulary, so the lens was not read "
                  "(make interleave trains the conditions that have).", ""]
    path.write_text("\n".join(lines))
    return path
