"""`make remedies` and `make factor-c-sweep`: what the paper's remedies close of the speech → phone gap, and
what each knob of factor C costs, → results/<scale>/remedies/ and results/<scale>/factor-c-sweep/.

Remedies (views/registry.py REMEDIES): per unit tokenizer and task, each remedy's accuracy beside the gap's
two ends (speech-varied, phone), the share of that gap it closes with Fieller's interval ("cannot tell" when
the gap itself is not clear of zero), tokens per second of speech, unit quality, and its distance to its
phone-side twin (what is left of factor C at that length).

Knob sweep (KNOBS): per unit tokenizer, knob and task, Δ speech@knob − speech-fixed (paired CI, TOST when the
CI spans zero), how much each knob scatters the units (PNMI, purity), the held-out voice, and for the
duration knob (rate) its duration part (phone-repeat@rate − phone-repeat@fixed) and acoustic part (the rest).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from modevo.errors import InputError
from modevo.machine import describe as describe_machine
from modevo.report.collect import Run, by_condition, check_hashes, collect
from modevo.report.tables import _fmt, interval_text, keys_of, write_table
from modevo.score import stats
from modevo.score.compare import compare, latest_eval, load_items
from modevo.views.registry import DURATION_KNOBS, KNOBS, REMEDIES, REMEDY_GAP, parse_view

BASE_RATE_TOKENS_PER_S = 50.0  # speech@R/T at 50 Hz: one unit per 20 ms of the phone span, by the frame rule


def _items(runs: list[Run], key: str) -> dict[int, dict]:
    """seed → {item id: (score, cluster)} of the runs' last checkpoints."""
    return {r.seed: load_items(latest_eval(r.run_dir), key)[1] for r in runs if key in r.final}


def _aligned(sides: list[list[Run]], key: str):
    """(score matrices (seeds every side has, × items every side rendered), the items' clusters, seeds), or None."""
    items = [_items(rs, key) for rs in sides]
    seeds = sorted(set.intersection(*(set(i) for i in items))) if all(items) else []
    if not seeds:
        return None
    common = sorted(set.intersection(*(set(i[s]) for i in items for s in seeds)))
    if not common:
        return None
    mats = [np.asarray([[i[s][k][0] for k in common] for s in seeds]) for i in items]
    groups = [items[0][seeds[0]][k][1] for k in common]
    return mats, (groups if len(set(groups)) < len(groups) else None), seeds


def _quality(runs: list[Run]) -> dict:
    q = ((runs[0].results.get("units") or {}).get("quality") or {})
    return q if "pnmi" in q else {}


def _tokens_per_s(runs: list[Run], reference: list[Run]) -> float | None:
    """Tokens per second of speech: tokens per word against the 50 Hz speech view's (50 tokens a second)."""
    tpw, ref = runs[0].results.get("tokens_per_word"), reference[0].results.get("tokens_per_word")
    return BASE_RATE_TOKENS_PER_S * tpw / ref if tpw and ref else None


def _pct(x: float) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.0f}"


def remedy_rows(conditions: dict[str, list[Run]]) -> list[dict]:
    rows = []
    tokenizers = sorted({parse_view(v).tokenizer for v in conditions if parse_view(v).tokenizer})
    for tok in tokenizers:
        start, target = (parse_view(n.format(tokenizer=tok)).name for n in REMEDY_GAP)
        if start not in conditions or target not in conditions:
            continue
        for label, (remedy, twin) in REMEDIES.items():
            remedy, twin = parse_view(remedy.format(tokenizer=tok)).name, parse_view(twin).name
            if remedy not in conditions:
                continue
            q, tps = _quality(conditions[remedy]), _tokens_per_s(conditions[remedy], conditions[start])
            for key in keys_of({v: conditions[v] for v in (start, target, remedy)}):
                got = _aligned([conditions[start], conditions[remedy], conditions[target]], key)
                if got is None:
                    continue
                (s, r, t), clusters, seeds = got
                g = stats.gap_closed(s, r, t, clusters=clusters)
                row = {"tokenizer": tok, "remedy": label, "view": remedy, "task": key.removeprefix("eval/"),
                       "seeds": ",".join(map(str, seeds)), "n": g["n"],
                       "tokens/s": f"{tps:.1f}" if tps else "—",
                       "PNMI": f"{q['pnmi']:.3f}" if q else "—",
                       "phone purity": f"{q['phone_purity']:.3f}" if q else "—",
                       "speech-varied": _fmt(s.mean()), "with remedy": _fmt(r.mean()), "phone": _fmt(t.mean()),
                       "gap (phone − speech)": f"{100 * g['gap']:+.1f} [{100 * g['gap_lo']:+.1f}, "
                                                f"{100 * g['gap_hi']:+.1f}]" if "gap_lo" in g else "—",
                       "gap closed %": f"{_pct(g['closed'])} [{_pct(g['lo'])}, {_pct(g['hi'])}]",
                       "verdict": g["verdict"], "_gap": (g["closed"], g["lo"], g["hi"])}
                if twin in conditions and all(key in x.final for x in conditions[twin] + conditions[remedy]):
                    c = compare([x.run_dir for x in conditions[twin]], [x.run_dir for x in conditions[remedy]], key,
                                seeds_a=[x.seed for x in conditions[twin]], seeds_b=[x.seed for x in conditions[remedy]])
                    d = c["diff"]
                    row["twin"] = twin
                    row["remedy − twin"] = interval_text(100 * d['mean'], 100 * d['lo'], 100 * d['hi']) + " " \
                        + f"{c['verdict'].replace('b higher', 'remedy higher').replace('b lower', 'remedy lower')}"
                rows.append(row)
    return rows


def sweep_rows(conditions: dict[str, list[Run]], margin: float = 0.02) -> list[dict]:
    rows = []
    tokenizers = sorted({parse_view(v).tokenizer for v in conditions if parse_view(v).tokenizer})
    for tok in tokenizers:
        fixed = parse_view(f"speech@fixed/{tok}").name
        if fixed not in conditions:
            continue
        for knob in (*KNOBS, "varied"):
            view = parse_view(f"speech@{knob}/{tok}").name
            if view not in conditions:
                continue
            q = _quality(conditions[view])
            for key in keys_of({v: conditions[v] for v in (fixed, view)}):
                runs_a, runs_b = conditions[fixed], conditions[view]
                if not all(key in x.final for x in runs_a + runs_b):
                    continue
                c = compare([x.run_dir for x in runs_a], [x.run_dir for x in runs_b], key, margin=margin,
                            seeds_a=[x.seed for x in runs_a], seeds_b=[x.seed for x in runs_b])
                d = c["diff"]
                held = runs_b[0].final.get(f"{key}/test-heldout")
                row = {"tokenizer": tok, "knob": knob if knob != "varied" else "all (varied)",
                       "task": key.removeprefix("eval/"), "n": c["n_common"],
                       "speech-fixed": _fmt(c["acc_a"]), "speech@knob": _fmt(c["acc_b"]),
                       "Δ vs fixed": interval_text(100 * d['mean'], 100 * d['lo'], 100 * d['hi']),
                       "verdict": c["verdict"].replace("b higher", "higher with the knob").replace(
                           "b lower", "lower with the knob"),
                       "PNMI": f"{q['pnmi']:.3f}" if q else "—",
                       "cluster purity": f"{q['cluster_purity']:.3f}" if q else "—",
                       "held-out voice": _fmt(held["acc"]["mean"], held["acc"]["lo"], held["acc"]["hi"]) if held else "—",
                       "_delta": (d["mean"], d["lo"], d["hi"])}
                if knob in DURATION_KNOBS:
                    row.update(_duration_split(conditions, tok, knob, key))
                rows.append(row)
    return rows


def _duration_split(conditions, tok: str, knob: str, key: str) -> dict:
    """The knob's duration part (phone-repeat@knob − phone-repeat@fixed) and acoustic part (speech's Δ minus
    that), per item on the items all four rendered, over clusters (seed-averaged with several seeds)."""
    names = [parse_view(n).name for n in (f"speech@fixed/{tok}", f"speech@{knob}/{tok}", "phone-repeat@fixed",
                                          f"phone-repeat@{knob}")]
    if not all(n in conditions for n in names):
        return {"duration part": "—", "acoustic part": "—"}
    got = _aligned([conditions[n] for n in names], key)
    if got is None:
        return {"duration part": "—", "acoustic part": "—"}
    (sf, sk, pf, pk), clusters, _ = got
    dur = stats.hierarchical_ci(pk - pf, clusters=clusters)
    acoustic = stats.hierarchical_ci((sk - sf) - (pk - pf), clusters=clusters, bounds=(-2.0, 2.0))
    show = lambda e: interval_text(100 * e.mean, 100 * e.lo, 100 * e.hi)  # noqa: E731
    return {"duration part": show(dur), "acoustic part": show(acoustic)}


def _provenance(conditions, hashes, protocol, scale) -> dict:
    return {"scale": scale, "task_hashes": hashes, "protocol": protocol, "machine": describe_machine(),
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "runs": {v: [{"mlflow_run_id": r.run_id, "run_dir": str(r.run_dir), "seed": r.seed,
                          "checkpoint": max(r.evals), "code_version": r.tags.get("code_version")} for r in rs]
                     for v, rs in conditions.items()}}


def _conditions(scale, runs_dir, tracking_uri, views: list[str], variants: bool = False) -> tuple[dict, dict, dict]:
    """The campaign's scored conditions; with `variants`, `views` are condition labels ('view [variant]')."""
    conditions = by_condition(collect(scale, runs_dir, tracking_uri), variants=variants)
    wanted = list(views) if variants else [parse_view(v).name for v in views]
    found = {v: conditions[v] for v in wanted if v in conditions}
    missing = [v for v in wanted if v not in conditions]
    if len(found) < 2:
        raise InputError(f"no scored {scale} runs of {', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''}: run the make target that trains them first")
    hashes = check_hashes([r for rs in found.values() for r in rs])
    protocol = next(iter(next(iter(found.values()))[0].final.values()))["protocol"]
    return found, hashes, protocol


def _write(scale: str, views: list[str], out: Path, runs_dir, tracking_uri, rows_fn, stem: str, title: str,
           notes: list[str], figure, variants: bool = False) -> dict:
    """One campaign's table (md, csv, tex), figure and provenance from its scored runs (`variants`: see
    _conditions)."""
    conditions, hashes, protocol = _conditions(scale, runs_dir, tracking_uri, views, variants)
    rows = rows_fn(conditions)
    missing = [v for v in (views if variants else [parse_view(v).name for v in views]) if v not in conditions]
    notes = [f"task sets: {', '.join(f'{t} {h}' for t, h in hashes.items())}", f"scoring protocol {protocol['hash']}",
             *notes] + (["not trained yet: " + ", ".join(missing)] if missing else [])
    files = write_table(rows, out, stem, f"{title} ({scale})", notes) if rows else []
    if rows:
        files.append(figure(rows, out / f"fig_{stem}.png", hashes))
    out.mkdir(parents=True, exist_ok=True)
    (out / "provenance.json").write_text(json.dumps(_provenance(conditions, hashes, protocol, scale), indent=1,
                                                    sort_keys=True))
    return {"rows": rows, "files": files + [out / "provenance.json"], "notes": notes}


def remedies_report(scale: str, views: list[str], out: str | Path | None = None, runs_dir="runs",
                    tracking_uri=None) -> dict:
    from modevo.report.figures import gap_closed_figure

    return _write(scale, views, Path(out or Path("results") / scale / "remedies"), runs_dir, tracking_uri,
                  remedy_rows, "remedies", "The paper's remedies: share of the speech → phone gap closed", [
                      "gap closed % = (remedy − speech-varied) / (phone − speech-varied) on the items all three "
                      "rendered, with Fieller's 95% interval (cluster-robust, t with C−1 df; bench/coverage.py "
                      "measures its coverage); 'cannot tell' when the gap's own 95% CI includes zero",
                      "tokens/s: per second of the phone span (speech at 50 Hz = 50); PNMI, purity: held-out units",
                      "remedy − twin: what is left of factor C at the remedy's length (paired 95% CI)"],
                  gap_closed_figure)


def sweep_report(scale: str, views: list[str], out: str | Path | None = None, runs_dir="runs",
                 tracking_uri=None) -> dict:
    from modevo.report.figures import knob_deltas

    return _write(scale, views, Path(out or Path("results") / scale / "factor-c-sweep"), runs_dir, tracking_uri,
                  sweep_rows, "knobs", "Factor C knob by knob", [
                      "Δ = speech on a knob-alone rendering (one knob as in varied, the rest as in fixed) − "
                      "speech-fixed, paired 95% CI; 'cannot tell' = spans 0 and TOST does not show ±2 points; all "
                      "knobs through the codebook speech-fixed and speech-varied share",
                      "PNMI and cluster purity of the knob's held-out units: how much the knob scatters them",
                      "rate: duration part = phone-repeat@rate − phone-repeat@fixed; acoustic part = speech's Δ − "
                      "that"],
                  knob_deltas)
