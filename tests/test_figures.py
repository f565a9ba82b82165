"""Figs. 1-2 stay readable with many conditions: one look per condition from the registry, stable when other
conditions come and go; chance inside every panel; CI bands; one legend outside the panels. Built from
fabricated Run objects (summaries only, as `modevo eval` writes them), so no item file is read."""

from pathlib import Path

import numpy as np
import pytest

from modevo.report.collect import Run
from modevo.report.figures import layer_curves, style, training_curves
from modevo.views.registry import parse_view, sweep_views, view_style

CONDITIONS = ["text-bpe", "text-char", "phone-bpe", "phone", "phone-repeat@varied", "phone-repeat@mean",
              "phone-repeat@fixed", "speech@varied/mel-kmeans", "speech@fixed/mel-kmeans",
              "speech@varied/phonetic-kmeans", "speech@fixed/phonetic-kmeans", "speech@varied/mel-kmeans:25hz"]
TASKS = {"swuggy": 0.85, "sblimp": 0.53, "word-order": 0.7, "tsc-topic": 0.52, "tsc-in-document": 0.5}
CHECKPOINTS = (125_000, 250_000, 500_000, 1_000_000)


def _est(mean: float, half: float) -> dict:
    return {"mean": mean, "lo": max(0.0, mean - half), "hi": min(1.0, mean + half), "n": 400}


def fake_runs(conditions=CONDITIONS, seed=0) -> dict[str, list[Run]]:
    """view → [one seed's Run] whose checkpoints carry summaries shaped like `modevo eval`'s."""
    rng = np.random.default_rng(seed)
    out = {}
    for c, view in enumerate(conditions):
        strength = 1.0 - c / (len(conditions) + 2)  # text strongest, speech weakest, as in the paper
        evals = {}
        for k, tokens in enumerate(CHECKPOINTS):
            grown = (k + 1) / len(CHECKPOINTS)
            evals[f"tokens-{tokens:012d}"] = {f"eval/{task}": {
                "task": task, "tokens_seen": tokens,
                "acc": _est(0.5 + (top - 0.5) * strength * grown + rng.normal(0, 0.01), 0.035),
                "layers": [{"layer": layer, **_est(0.5 + (top - 0.5) * strength * grown * layer / 6
                                                   + rng.normal(0, 0.01), 0.035)} for layer in range(7)],
                "baselines": {"shorter_wins": _est(0.3 + 0.4 * rng.random(), 0.04),
                              "ngram": _est(0.5 + (top - 0.5) * 0.6 * strength, 0.04),
                              **({"word_overlap": _est(0.55, 0.04)} if task.startswith("tsc") else {})}}
                for task, top in TASKS.items()}
        out[view] = [Run(f"run{c}", Path(f"/nonexistent/{c}"), view, 0, {},
                         {"tokens_seen": CHECKPOINTS[-1], "epochs": 1.0 + c / 4, "tokens_per_word": 1.5 + c},
                         evals, f"tokens-{CHECKPOINTS[-1]:012d}")]
    return out


HASHES = {t: "0123456789abcdef" for t in TASKS}


def test_every_condition_has_its_own_look_whatever_is_drawn_beside_it():
    names = list(dict.fromkeys(CONDITIONS + sweep_views() + ["speech-dedup@varied/mel-kmeans",
                                                             "speech-bpe@varied/mel-kmeans", "interleaved@varied/mel-kmeans"]))
    looks = [view_style(parse_view(n)) for n in names]
    assert len({(colour, marker) for colour, marker, _ in looks}) == len(names)
    # a look is a function of the condition alone: the same in a figure of three conditions as of twelve
    few = fake_runs(CONDITIONS[::4])
    assert {v: style(v) for v in few} == {v: style(v) for v in CONDITIONS[::4]}
    assert view_style(parse_view("speech-varied")) == view_style(parse_view("speech@varied/mel-kmeans"))


def test_a_family_of_its_own_does_not_look_like_its_parent():
    from modevo.views.families import Phone
    from modevo.views.registry import register, unregister

    class Mine(Phone):
        name, paper_name, paper_scores = "phone-mine-look", "Mine", None

    register(Mine())
    try:
        assert view_style(parse_view("phone-mine-look"))[:2] != view_style(parse_view("phone"))[:2]
    finally:
        unregister("phone-mine-look")


@pytest.mark.parametrize("draw", ["tokens", "words", "layers"])
def test_figures_hold_chance_bands_and_one_legend_outside(draw, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    kept = {}
    monkeypatch.setattr(plt, "close", lambda fig: kept.setdefault("fig", fig))  # inspect the figure drawn
    conditions = fake_runs()
    path = tmp_path / f"{draw}.png"
    if draw == "layers":
        layer_curves(conditions, path, HASHES)
    else:
        training_curves(conditions, path, HASHES, words=draw == "words")
    assert path.stat().st_size > 10_000
    fig = kept["fig"]
    fig.canvas.draw()
    mains = [ax for ax in fig.axes if ax.get_title() in TASKS]
    assert [ax.get_title() for ax in mains] == list(TASKS)
    for ax in mains:
        lo, hi = ax.get_ylim()
        assert lo <= 0.45 and hi >= 0.55
        assert len(ax.collections) == len(CONDITIONS)  # one CI band per condition
        ymin = min(min(p.get_paths()[0].vertices[:, 1]) for p in ax.collections)
        assert ymin >= lo  # no band is cut off below
        drawn = [line for line in ax.get_lines() if line.get_marker() not in ("None", "", None)]  # not chance
        assert len({(line.get_color(), line.get_marker()) for line in drawn}) == len(CONDITIONS)
    (legend,) = fig.legends
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert min(t.get_fontsize() for t in legend.get_texts()) >= 7
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent()), ax.get_title()
    assert box.x1 <= fig.bbox.x1 + 1  # not clipped by the figure's edge
    plt.close(fig)


@pytest.mark.parametrize("words", [False, True])
def test_panels_scored_once_share_the_range_of_the_tracked_ones(words, tmp_path, monkeypatch):
    """Most tasks are scored at the final checkpoint only (score.milestone_tasks): their panels keep the x
    range of the tracked task's, not a range squeezed around one point."""
    import matplotlib.pyplot as plt

    kept = {}
    monkeypatch.setattr(plt, "close", lambda fig: kept.setdefault("fig", fig))
    conditions = fake_runs(CONDITIONS[:4])
    for runs in conditions.values():
        evals = runs[0].evals
        for name in list(evals)[:-1]:  # earlier checkpoints: sWUGGY only
            evals[name] = {k: v for k, v in evals[name].items() if k == "eval/swuggy"}
    training_curves(conditions, tmp_path / "f.png", HASHES, words=words)
    fig = kept["fig"]
    mains = {ax.get_title(): ax for ax in fig.axes if ax.get_title() in TASKS}
    tracked = mains.pop("swuggy").get_xlim()
    lo, hi = tracked
    assert hi / lo > 8  # the tracked panel spans the checkpoints (125k → 1M tokens)
    for title, ax in mains.items():
        assert ax.get_xlim() == pytest.approx(tracked), title
    plt.close(fig)


def render(folder: str = "/tmp/figs") -> list[Path]:
    """The figures of the fabricated conditions, to look at: python -c 'import tests.test_figures as t; t.render()'."""
    out = Path(folder)
    conditions = fake_runs()
    return [training_curves(conditions, out / "fig1_tokens.png", HASHES, words=False),
            training_curves(conditions, out / "fig1_words.png", HASHES, words=True),
            layer_curves(conditions, out / "fig2_layers.png", HASHES),
            layer_curves(fake_runs(CONDITIONS[::4]), out / "fig2_layers_subset.png", HASHES)]


def test_variants_of_one_view_get_distinct_looks_and_the_first_keeps_its_own():
    """Probe and lens figures draw campaign variants of one view (interleaved, its speech-only twin, the warm
    start): each must look different, and the first must look exactly as the view does everywhere else."""
    from modevo.report.figures import style, styles

    view = "interleaved@varied/mel-kmeans"
    labels = [view, f"{view} [speech share 1]", f"{view} [speech share 1; init from text-bpe]", "phone"]
    looks = styles([(label, view if label != "phone" else "phone") for label in labels])
    assert looks[view] == style(view) and looks["phone"] == style("phone")
    assert len({(lk["color"], lk["marker"]) for lk in looks.values()}) == len(labels)
    assert len({lk["color"] for lk in looks.values()}) == len(labels)  # the hue alone tells them apart too
