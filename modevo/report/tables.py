"""Table 4 (accuracy per condition × task, with CIs, baselines and the paper's numbers) and Table 3 (each
factor's deltas with paired CIs and, where there is no clear effect, the equivalence test).

Every table is a list of row dicts plus provenance (runs, task-set hashes, protocol); `write_table` renders
it as Markdown, CSV and LaTeX.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from modevo.report.collect import PAPER, PAPER_NOTE, PAPER_TASKS, Run, condition_name
from modevo.score import stats
from modevo.views.registry import FACTORS, parse_view

TASK_ORDER = ("swuggy", "sblimp", "tsc-topic", "tsc-in-document")


def _items(run: Run, key: str) -> dict[str, tuple[float, str]]:
    """{item id: (headline score, cluster)} of a run's final scored checkpoint, rendered items only."""
    import pyarrow.parquet as pq

    s = run.final[key]
    folder = run.run_dir / "eval" / max(run.evals)
    t = pq.read_table(folder / "items.parquet", columns=["task", "test_rendering", "id", "group", "score",
                                                         "rendered"]).to_pydict()
    return {i: (sc, g) for task, r, i, g, sc, ok in zip(t["task"], t["test_rendering"], t["id"], t["group"],
                                                         t["score"], t["rendered"])
            if ok and task == s["task"] and r == s["test_rendering"]}


def _matrix(runs: list[Run], key: str, common: list[str] | None = None):
    per = [_items(r, key) for r in runs]
    ids = common if common is not None else sorted(set.intersection(*(set(p) for p in per)))
    m = np.asarray([[p[i][0] for i in ids] for p in per], dtype=float)  # (seeds, items)
    groups = [per[0][i][1] for i in ids]
    return m, ids, groups


def _ci(m: np.ndarray, groups: list[str]) -> stats.Estimate:
    clusters = groups if len(set(groups)) < len(groups) else None
    return stats.hierarchical_ci(m, clusters=clusters) if len(m) > 1 else stats.bootstrap_ci(m[0], clusters=clusters)


def _fmt(mean, lo=None, hi=None) -> str:
    if mean is None:
        return "—"
    return f"{100 * mean:.1f}" + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None else "")


def keys_of(conditions: dict[str, list[Run]]) -> list[str]:
    found = {k for runs in conditions.values() for r in runs for k in r.final if "/test-" not in k}
    return [f"eval/{t}" for t in TASK_ORDER if f"eval/{t}" in found] + sorted(
        k for k in found if k.removeprefix("eval/") not in TASK_ORDER)


def table4(conditions: dict[str, list[Run]]) -> list[dict]:
    """One row per condition: each task's accuracy [95% CI] with its baselines, tokens and epochs seen."""
    rows = []
    for view, runs in conditions.items():
        spec = parse_view(view)
        row = {"condition": condition_name(view), "view": view, "paper_name": spec.paper_name,
               "seeds": ",".join(str(r.seed) for r in runs),
               "tokens_seen": int(np.mean([r.results.get("tokens_seen", 0) for r in runs])),
               "epochs": round(float(np.mean([r.results.get("epochs", 0.0) for r in runs])), 2),
               "runs": ",".join(r.run_id for r in runs)}
        for key in keys_of(conditions):
            task = key.removeprefix("eval/")
            if not all(key in r.final for r in runs):
                row[task] = "—"
                continue
            m, ids, groups = _matrix(runs, key)
            e = _ci(m, groups)
            s = runs[0].final[key]
            b = s["baselines"]
            row[task] = _fmt(e.mean, e.lo, e.hi)
            row[f"{task} n"] = len(ids)
            row[f"{task} shorter-wins"] = _fmt(b["shorter_wins"]["mean"])
            row[f"{task} n-gram"] = _fmt(b["ngram"]["mean"])
            if "word_overlap" in b:
                row[f"{task} word-overlap"] = _fmt(b["word_overlap"]["mean"])
            if task in PAPER_TASKS:
                row[f"{task} paper*"] = f"{PAPER[spec.family][PAPER_TASKS[task]]:.1f}"
        rows.append(row)
    return rows


def table3(conditions: dict[str, list[Run]], margin: float = 0.02) -> list[dict]:
    """One row per factor pair × task: from → to accuracy, the absolute and relative delta with a paired
    (hierarchical over seeds) CI on the items both rendered, TOST, MDE and the verdict."""
    rows = []
    for factor, pairs in FACTORS.items():
        for a_name, b_name in pairs:
            a_view, b_view = parse_view(a_name).name, parse_view(b_name).name
            if a_view not in conditions or b_view not in conditions:
                continue
            for key in keys_of(conditions):
                ra, rb = conditions[a_view], conditions[b_view]
                if not all(key in r.final for r in ra + rb):
                    continue
                ia = [_items(r, key) for r in ra]
                ib = [_items(r, key) for r in rb]
                common = sorted(set.intersection(*(set(p) for p in ia + ib)))
                if not common:
                    continue
                a = np.asarray([[p[i][0] for i in common] for p in ia])
                b = np.asarray([[p[i][0] for i in common] for p in ib])
                groups = [ia[0][i][1] for i in common]
                k = min(len(a), len(b))
                clusters = groups if len(set(groups)) < len(groups) else None
                diff = stats.hierarchical_ci(b[:k] - a[:k], clusters=clusters) if k > 1 else \
                    stats.paired_bootstrap(a[0], b[0], clusters=clusters)
                eq = stats.tost(a.mean(0), b.mean(0), margin=margin, clusters=clusters)
                base = float(a.mean())
                rows.append({
                    "factor": factor, "from": condition_name(a_view), "to": condition_name(b_view),
                    "task": key.removeprefix("eval/"), "n": len(common), "from_acc": _fmt(base),
                    "to_acc": _fmt(float(b.mean())), "delta_abs": f"{100 * diff.mean:+.1f} [{100 * diff.lo:+.1f}, "
                                                                  f"{100 * diff.hi:+.1f}]",
                    "delta_rel_%": f"{100 * diff.mean / base:+.1f}" if base else "—",
                    "tost_±2": "equivalent" if eq["equivalent"] else "not shown",
                    "mde": f"{100 * stats.mde(len(common)):.1f}", "verdict": stats.verdict(diff, eq)
                    .replace("b higher", "higher after").replace("b lower", "lower after")})
    return rows


def units_table(conditions: dict[str, list[Run]]) -> list[dict]:
    """Held-out unit quality (without silence frames) of each speech condition, beside factor C."""
    rows = []
    for view, runs in conditions.items():
        if parse_view(view).family != "speech":
            continue
        u = runs[0].results.get("units")
        q = (u or {}).get("quality", {})
        rows.append({"condition": condition_name(view), "tokenizer": parse_view(view).tokenizer,
                     "K": (u["vocab_size"] if u else "—"), "PNMI": f"{q['pnmi']:.3f}" if q else "—",
                     "phone purity": f"{q['phone_purity']:.3f}" if q else "—",
                     "cluster purity": f"{q['cluster_purity']:.3f}" if q else "—",
                     "units used": q.get("units_used", "—") if q else "—"})
    return rows


# -- rendering --------------------------------------------------------------------------------------------
def _columns(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return cols


def to_markdown(rows: list[dict], title: str, notes: list[str]) -> str:
    cols = _columns(rows)
    out = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out + [""] + [f"- {n}" for n in notes]) + "\n"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_columns(rows), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def to_latex(rows: list[dict], title: str, notes: list[str]) -> str:
    cols = _columns(rows)
    esc = lambda x: str(x).replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%").replace(
        "_", r"\_").replace("#", r"\#").replace("—", "--").replace("±", r"$\pm$").replace("→", r"$\to$")
    lines = [r"\begin{table}[t]", r"\centering", r"\scriptsize", r"\begin{tabular}{" + "l" * len(cols) + "}",
             r"\hline", " & ".join(esc(c) for c in cols) + r" \\", r"\hline"]
    lines += [" & ".join(esc(r.get(c, "")) for c in cols) + r" \\" for r in rows]
    lines += [r"\hline", r"\end{tabular}", r"\caption{" + esc(title) + ". " + esc(" ".join(notes)) + "}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict], folder: Path, stem: str, title: str, notes: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for ext, text in (("md", to_markdown(rows, title, notes)), ("csv", to_csv(rows)),
                      ("tex", to_latex(rows, title, notes))):
        path = folder / f"{stem}.{ext}"
        path.write_text(text)
        out.append(path)
    return out


def paper_note() -> str:
    return f"* {PAPER_NOTE}; their speech row is real audiobook speech with HuBERT units, ours is synthetic"
