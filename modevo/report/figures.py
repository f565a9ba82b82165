"""Fig. 1 (accuracy against training tokens and against words seen), Fig. 2 (layerwise accuracy per
condition and task) and Fig. 4 (Table 3's factor deltas with their CIs), as PNG. Each figure names its
task-set hashes.

In Figs. 1-2 a condition looks the same in every figure (views.registry.view_style: the family's hue,
shaded by rendering, its marker swapped by tokenizer); each line carries its 95% CI as a band; every
panel draws chance and includes it, and a strip beside it holds each condition's baselines (shorter-wins,
n-gram, word overlap: they depend on the view's tokens, so each condition has its own); one legend sits
outside the panels."""

from __future__ import annotations

from pathlib import Path

from modevo.report.collect import Run, condition_name
from modevo.report.tables import accuracy_ci, keys_of
from modevo.views.registry import parse_view, view_style

CHANCE = 0.5
BAND_ALPHA = 0.08  # a dozen overlapping bands must still let the lines through
BASELINES = (("shorter_wins", "shorter-\nwins"), ("ngram", "n-gram"), ("word_overlap", "word\noverlap"))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, fig, path: Path, note: str) -> Path:
    fig.text(0.01, 0.005, note, fontsize=6, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def style(view: str) -> dict:
    """The condition's line and marker keywords for matplotlib."""
    colour, marker, line = view_style(parse_view(view))
    return {"color": colour, "marker": marker, "ls": line}


SPARE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")


def _mix(colour: str, towards: str, amount: float) -> str:
    from matplotlib.colors import to_hex, to_rgb

    a, b = to_rgb(colour), to_rgb(towards)
    return to_hex(tuple(x + (y - x) * amount for x, y in zip(a, b)))


def styles(conditions: list[tuple[str, str]]) -> dict[str, dict]:
    """label → style of each (label, view): the view's own look (style()). A later condition that would look
    like an earlier one (two variants of one view, e.g. interleaved and its speech-only twin) keeps the hue's
    family but is shaded darker or lighter and gets the next free marker, so no two lines of a figure are alike."""
    out, seen = {}, {}
    for label, view in conditions:
        look = style(view)
        k = seen.get((look["color"], look["marker"]), 0)
        seen[(look["color"], look["marker"])] = k + 1
        if k:
            towards = "black" if k % 2 else "white"
            look = {**look, "color": _mix(look["color"], towards, min(0.6, 0.25 + 0.15 * ((k - 1) // 2))),
                    "marker": SPARE_MARKERS[(SPARE_MARKERS.index(look["marker"]) + k) % len(SPARE_MARKERS)]
                    if look["marker"] in SPARE_MARKERS else SPARE_MARKERS[k % len(SPARE_MARKERS)]}
        out[label] = look
    return out


def interval(runs: list[Run], key: str, checkpoint: str) -> tuple[float, float, float] | None:
    """(mean, lo, hi) of one condition at one checkpoint: the interval Table 4 prints (tables.accuracy_ci);
    with one seed that is the summary's own bootstrap (the table's under the default scoring settings), so no
    item file is read."""
    if not all(key in r.evals.get(checkpoint, {}) for r in runs):
        runs = runs[:1]  # a checkpoint not every seed scored: seed 0 alone, not a mix
        if key not in runs[0].evals.get(checkpoint, {}):
            return None
    if len(runs) == 1:
        a = runs[0].evals[checkpoint][key]["acc"]
        return (a["mean"], a["lo"], a["hi"]) if a.get("mean") is not None else None
    e, _ = accuracy_ci(runs, key, checkpoint)
    return e.mean, e.lo, e.hi


def _panels(plt, keys: list[str], legend_rows: int):
    """Per task a main panel and a narrow baselines strip sharing its y axis, two tasks a row."""
    cols = min(len(keys), 2) or 1
    rows = max(1, -(-len(keys) // cols))
    fig = plt.figure(figsize=(5.6 * cols + 3.2, max(3.6 * rows, 0.19 * legend_rows + 1.0)), dpi=120,
                     layout="constrained")
    outer = fig.add_gridspec(rows, cols)
    pairs = []
    for i, _ in enumerate(keys):
        inner = outer[i // cols, i % cols].subgridspec(1, 2, width_ratios=(5, 1), wspace=0.03)
        main = fig.add_subplot(inner[0])
        pairs.append((main, fig.add_subplot(inner[1], sharey=main)))
    return fig, pairs


def _baselines(strip, conditions: dict[str, list[Run]], key: str) -> list[float]:
    """Each condition's baselines (seed 0, as the tables print them) as its marker, hollow, in the strip."""
    names = [(b, label) for b, label in BASELINES
             if any(b in rs[0].final.get(key, {}).get("baselines", {}) for rs in conditions.values())]
    values = []
    n = len(conditions)
    for i, (view, runs) in enumerate(conditions.items()):
        found = runs[0].final.get(key, {}).get("baselines", {})
        st = style(view)
        for x, (b, _) in enumerate(names):
            v = found.get(b, {}).get("mean")
            if v is not None:  # spread the conditions across the column so equal values stay visible
                strip.plot(x + 0.6 * ((i + 0.5) / n - 0.5), v, ls="none", marker=st["marker"], ms=5,
                           mfc="none", mec=st["color"], mew=1.1)
                values.append(v)
    strip.set_xlim(-0.5, max(len(names), 1) - 0.5)  # a task scored without baselines keeps an empty strip
    strip.set_xticks(range(len(names)), [label for _, label in names], fontsize=7, rotation=90)
    strip.tick_params(axis="y", labelleft=False)
    strip.set_title("baselines", fontsize=8)
    return values


def _frame(main, strip, values: list[float], title: str, xlabel: str) -> None:
    """Chance on both; a y range that holds chance, every value and band, and at least 0.40-0.60, so a
    near-chance task is not blown up into noise."""
    for ax in (main, strip):
        ax.axhline(CHANCE, color="grey", lw=0.9, ls=":", zorder=0)
        ax.grid(axis="y", lw=0.3, alpha=0.5)
    lo, hi = min(values + [0.4]), max(values + [0.6])
    pad = 0.04 * (hi - lo)
    main.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad))
    main.set_title(title, fontsize=10)
    main.set_xlabel(xlabel, fontsize=8)
    main.set_ylabel("pair accuracy", fontsize=8)
    main.tick_params(labelsize=7)


def _legend(fig, conditions: dict[str, list[Run]], extra: list) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], lw=1.4, ms=5, **style(v)) for v in conditions]
    labels = [condition_name(v) for v in conditions]
    handles += [Line2D([], [], color="grey", lw=0.9, ls=":"), Patch(color="grey", alpha=0.25)]
    labels += ["chance (0.5)", "95% CI (band)"]
    for h, label in extra:
        handles.append(h)
        labels.append(label)
    fig.legend(handles, labels, loc="outside right upper", fontsize=7.5, frameon=False)


def _save(plt, fig, path: Path, note: str) -> Path:
    fig.supxlabel(note, fontsize=6.5, color="grey", x=0.0, ha="left")  # constrained layout keeps room for it
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _hashes(hashes: dict[str, str]) -> str:
    return "task sets " + ", ".join(f"{t} {h}" for t, h in hashes.items())


def _compact(x: float, _=None) -> str:
    return next((f"{x / v:g}{u}" for v, u in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if x >= v), f"{x:g}")


def _log_axis(ax) -> None:
    """Log x with ticks at 1, 2, 5 × 10^n written 125k / 1M: the default's 3×10^5 labels run into each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_compact))


def curve_points(conditions: dict[str, list[Run]]) -> dict[tuple[str, str], list[tuple]]:
    """(view, key) → [(tokens seen, mean, lo, hi)] per scored checkpoint. With several seeds each is a
    bootstrap over seeds × items (about a second): compute them once for both Fig. 1s."""
    out = {}
    for key in keys_of(conditions):
        for view, runs in conditions.items():
            pts = []
            for ckpt in sorted(runs[0].evals):
                got = interval(runs, key, ckpt)
                if got is not None:
                    pts.append((runs[0].evals[ckpt][key]["tokens_seen"], *got))
            out[view, key] = sorted(pts)
    return out


def training_curves(conditions: dict[str, list[Run]], path: Path, hashes: dict[str, str], words: bool,
                    points: dict | None = None) -> Path:
    """Accuracy at each scored checkpoint against tokens seen, or words seen (tokens / the view's tokens per
    word): equal tokens are not equal text across views. Checkpoints sit at budget / 2^k: a log axis.
    `points`: curve_points(conditions), when the caller has them already."""
    from matplotlib.lines import Line2D

    plt = _plt()
    keys = keys_of(conditions)
    points = curve_points(conditions) if points is None else points
    fig, pairs = _panels(plt, keys, len(conditions) + 3)
    seeds = max(len(rs) for rs in conditions.values())
    epoch = [r.results["tokens_seen"] / r.results["epochs"] for rs in conditions.values() for r in rs[:1]
             if r.results.get("epochs")]
    span: list[float] = []  # every x drawn: panels scored at the final checkpoint only share the others' range
    logged = []
    for (ax, strip), key in zip(pairs, keys):
        values = _baselines(strip, conditions, key)
        drawn = 0
        for view, runs in conditions.items():
            tpw = runs[0].results.get("tokens_per_word")
            if words and not tpw:
                continue
            pts = points.get((view, key))
            if not pts:
                continue
            xs, ms, los, his = (list(c) for c in zip(*pts))
            xs = [x / tpw for x in xs] if words else xs
            st = style(view)
            if len(xs) > 1:
                ax.fill_between(xs, los, his, color=st["color"], alpha=BAND_ALPHA, lw=0)
            else:  # one checkpoint: a band has no width, the interval is a bar
                ax.errorbar(xs, ms, yerr=[[ms[0] - los[0]], [his[0] - ms[0]]], color=st["color"], lw=1, capsize=3)
            ax.plot(xs, ms, lw=1.4, ms=4, **st)
            values += los + his
            span += xs
            drawn += 1
        if epoch and not words:  # beyond it the smallest view repeats its data: compare at equal tokens below it
            ax.axvline(min(epoch), color="black", lw=0.7, ls="--")
            span.append(min(epoch))
        if drawn:
            _log_axis(ax)
            logged.append(ax)
        else:
            ax.text(0.5, 0.5, "no run records its tokens per word" if words else "no scored checkpoint",
                    ha="center", fontsize=8, transform=ax.transAxes)
        _frame(ax, strip, values, key.removeprefix("eval/"), "words seen" if words else "training tokens seen")
    for ax in logged:  # one x range for every panel (a log axis: a constant factor of margin either side)
        ax.set_xlim(min(span) / 1.4, max(span) * 1.4)
    extra = [(Line2D([], [], color="black", lw=0.7, ls="--"), "one epoch of\nthe smallest view")] \
        if epoch and not words else []
    _legend(fig, conditions, extra)
    band = "over seeds × items (Table 4's interval)" if seeds > 1 else "bootstrap over items (Table 4's interval)"
    return _save(plt, fig, path, f"bands: 95% CI at each checkpoint, {band}; baselines: seed 0's run, hollow "
                 f"markers in each condition's colour\n{_hashes(hashes)}")


def layer_curves(conditions: dict[str, list[Run]], path: Path, hashes: dict[str, str]) -> Path:
    """Accuracy per layer (logit lens; 0 = embeddings) of each condition's final checkpoint, seed 0, with
    the per-layer bootstrap interval its summary holds (the tables print no per-layer interval)."""
    plt = _plt()
    keys = keys_of(conditions)
    fig, pairs = _panels(plt, keys, len(conditions) + 2)
    for (ax, strip), key in zip(pairs, keys):
        values = _baselines(strip, conditions, key)
        for view, runs in conditions.items():
            layers = [r for r in runs[0].final.get(key, {}).get("layers", []) if r.get("mean") is not None]
            if not layers:
                continue
            depth = max(1, len(layers) - 1)
            xs = [r["layer"] / depth for r in layers]
            st = style(view)
            ax.fill_between(xs, [r["lo"] for r in layers], [r["hi"] for r in layers], color=st["color"],
                            alpha=BAND_ALPHA, lw=0)
            ax.plot(xs, [r["mean"] for r in layers], lw=1.4, ms=4, **st)
            values += [r["lo"] for r in layers] + [r["hi"] for r in layers]
        ax.set_xlim(-0.03, 1.03)
        _frame(ax, strip, values, key.removeprefix("eval/"), "relative depth (layer / n_layer; 0 = embeddings)")
    _legend(fig, conditions, [])
    return _save(plt, fig, path, "seed 0's final checkpoint; bands: 95% bootstrap CI over items at each layer; "
                 f"baselines: hollow markers in each condition's colour\n{_hashes(hashes)}")


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
