"""Fig. 1 (accuracy against training tokens and against words seen), Fig. 2 (layerwise accuracy per
condition and task), Fig. 3 (layerwise sWUGGY) and Fig. 4 (Table 3's factor deltas with their CIs), as
PNG. Each figure names its task-set hashes."""

from __future__ import annotations

from pathlib import Path

from modevo.report.collect import Run, condition_name
from modevo.report.tables import keys_of


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panels(n: int):
    plt = _plt()
    cols = min(n, 2)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), dpi=120, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat[:n])


def _finish(plt, fig, path: Path, note: str) -> Path:
    fig.text(0.01, 0.005, note, fontsize=6, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def training_curves(conditions: dict[str, list[Run]], path: Path, hashes: dict[str, str], words: bool) -> Path:
    """Accuracy at each scored checkpoint (seed 0's run) against tokens seen, or words seen
    (tokens / the view's tokens per word): equal tokens are not equal text across views."""
    keys = keys_of(conditions)
    plt, fig, axes = _panels(len(keys))
    for ax, key in zip(axes, keys):
        for view, runs in conditions.items():
            run = runs[0]
            tpw = run.results.get("tokens_per_word")
            if words and not tpw:
                continue
            pts = sorted((s[key]["tokens_seen"], s[key]["acc"]["mean"]) for s in run.evals.values() if key in s)
            if pts:
                xs = [x / tpw if words else x for x, _ in pts]
                ax.plot(xs, [y for _, y in pts], marker="o", ms=3, label=condition_name(view))
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        epoch = [r.results["tokens_seen"] / r.results["epochs"] for rs in conditions.values() for r in rs[:1]
                 if r.results.get("epochs")]
        if epoch and not words:  # beyond it the smallest view repeats its data: compare at equal tokens below it
            ax.axvline(min(epoch), color="black", lw=0.7, ls="--", label="one epoch of the smallest view")
        ax.set_title(key.removeprefix("eval/"), fontsize=9)
        ax.set_xlabel("words seen" if words else "training tokens seen")
        ax.set_ylabel("pair accuracy")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=5)
        else:
            ax.text(0.5, 0.5, "no run records its tokens per word", ha="center", fontsize=7, transform=ax.transAxes)
    note = "task sets " + ", ".join(f"{t} {h}" for t, h in hashes.items())
    return _finish(plt, fig, path, note)


def layer_curves(conditions: dict[str, list[Run]], path: Path, hashes: dict[str, str],
                 only: str | None = None) -> Path:
    """Accuracy per layer (logit lens; 0 = embeddings) of each condition's final checkpoint, seed 0."""
    keys = [k for k in keys_of(conditions) if only is None or k == only]
    plt, fig, axes = _panels(len(keys))
    for ax, key in zip(axes, keys):
        for view, runs in conditions.items():
            s = runs[0].final.get(key)
            if s and s["layers"]:
                layers = s["layers"]
                depth = max(1, len(layers) - 1)
                ax.plot([r["layer"] / depth for r in layers], [r["mean"] for r in layers], marker="o", ms=3,
                        label=condition_name(view))
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_title(key.removeprefix("eval/"), fontsize=9)
        ax.set_xlabel("relative depth (layer / n_layer)")
        ax.set_ylabel("pair accuracy")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=5)
    note = "task sets " + ", ".join(f"{t} {h}" for t, h in hashes.items())
    return _finish(plt, fig, path, note)


def factor_deltas(table3_rows: list[dict], path: Path, hashes: dict[str, str]) -> Path:
    """Table 3 as a forest plot: each factor pair × task, the paired delta (points) with its 95% CI and ±MDE
    shaded, so "cannot tell" (a CI across 0) is visible at a glance. One panel per task, stacked."""
    plt = _plt()
    rows = [r for r in table3_rows if "_delta" in r]
    tasks = list(dict.fromkeys(r["task"] for r in rows)) or ["(no factor pair scored)"]
    heights = [max(1, sum(r["task"] == t for r in rows)) for t in tasks]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(8, 0.9 + 0.32 * sum(heights) + 0.5 * len(tasks)), dpi=120,
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    short = lambda name: name.replace(" (synthetic durations)", "").replace(" (mean durations)", "").replace(
        ", synthetic)", ")")
    for ax, task in zip(axes[:, 0], tasks):
        mine = [r for r in rows if r["task"] == task]
        for y, r in enumerate(mine):
            mean, lo, hi, mde = (100 * v for v in r["_delta"])
            ax.fill_betweenx([y - 0.3, y + 0.3], -mde, mde, color="grey", alpha=0.15, lw=0)
            ax.errorbar(mean, y, xerr=[[mean - lo], [hi - mean]], fmt="o", ms=4, capsize=3,
                        color="black" if lo <= 0 <= hi else ("tab:green" if lo > 0 else "tab:red"))
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.set_yticks(range(len(mine)), [f"{r['factor']}: {short(r['from'])} → {short(r['to'])}" for r in mine],
                      fontsize=7)
        ax.set_ylim(len(mine) - 0.5, -0.5)
        ax.set_title(task, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("after − before, accuracy points (paired 95% CI; grey: ±MDE)")
    note = "black: CI spans 0 (cannot tell unless TOST shows equivalence); red/green: lower/higher after\ntask sets " \
        + ", ".join(f"{t} {h}" for t, h in hashes.items())
    return _finish(plt, fig, path, note)


def gap_closed_figure(rows: list[dict], path: Path, hashes: dict[str, str], gap: str = "speech-varied → phone",
                      label: str = "remedy") -> Path:
    """`make remedies`: per task, the share of the speech-varied → phone gap each remedy closes (%, Fieller's
    95% interval); an unbounded interval (the gap is not clear of zero) is drawn across and marked."""
    plt = _plt()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    heights = [max(1, sum(r["task"] == t for r in rows)) for t in tasks]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(8, 0.9 + 0.32 * sum(heights) + 0.5 * len(tasks)), dpi=120,
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    lim = (-60.0, 160.0)
    for ax, task in zip(axes[:, 0], tasks):
        mine = [r for r in rows if r["task"] == task]
        for y, r in enumerate(mine):
            closed, lo, hi = (100 * v for v in r["_gap"])
            if not (abs(lo) < float("inf") and abs(hi) < float("inf")):
                ax.plot(lim, [y, y], color="grey", lw=0.8, ls="--")
                ax.text(lim[1], y, " cannot tell", va="center", fontsize=7, color="grey")
                continue
            colour = "tab:green" if lo > 0 else ("tab:red" if hi < 0 else "black")
            shown = min(max(closed, lim[0]), lim[1])
            ax.errorbar(shown, y, xerr=[[shown - max(lo, lim[0])], [min(hi, lim[1]) - shown]], fmt="o", ms=4,
                        capsize=3, color=colour)
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.axvline(100, color="grey", lw=0.8, ls=":")
        ax.set_xlim(*lim)
        ax.set_yticks(range(len(mine)), [f"{r['tokenizer']}: {r[label]}" for r in mine], fontsize=7)
        ax.set_ylim(len(mine) - 0.5, -0.5)
        ax.set_title(task, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel(f"share of the {gap} gap closed, % (0: none; 100: all; 95% Fieller interval)")
    note = "green: closes some of the gap (interval above 0); dashed: cannot tell (the gap's own CI includes 0)\n" \
        "task sets " + ", ".join(f"{t} {h}" for t, h in hashes.items())
    return _finish(plt, fig, path, note)


def knob_deltas(rows: list[dict], path: Path, hashes: dict[str, str]) -> Path:
    """`make factor-c-sweep`: per task, Δ accuracy of speech on each knob-alone rendering against speech-fixed
    (points, paired 95% CI); the last row of each tokenizer is all knobs at once (speech-varied)."""
    plt = _plt()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    heights = [max(1, sum(r["task"] == t for r in rows)) for t in tasks]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(8, 0.9 + 0.32 * sum(heights) + 0.5 * len(tasks)), dpi=120,
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, task in zip(axes[:, 0], tasks):
        mine = [r for r in rows if r["task"] == task]
        for y, r in enumerate(mine):
            mean, lo, hi = (100 * v for v in r["_delta"])
            ax.errorbar(mean, y, xerr=[[mean - lo], [hi - mean]], fmt="o", ms=4, capsize=3,
                        color="black" if lo <= 0 <= hi else ("tab:green" if lo > 0 else "tab:red"))
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.set_yticks(range(len(mine)), [f"{r['tokenizer']}: {r['knob']}" for r in mine], fontsize=7)
        ax.set_ylim(len(mine) - 0.5, -0.5)
        ax.set_title(task, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("speech on the knob's rendering − speech-fixed, accuracy points (paired 95% CI)")
    note = "black: CI spans 0 (cannot tell); red/green: lower/higher with the knob\ntask sets " \
        + ", ".join(f"{t} {h}" for t, h in hashes.items())
    return _finish(plt, fig, path, note)
