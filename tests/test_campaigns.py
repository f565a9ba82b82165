"""`modevo remedies` and `modevo sweep` (make remedies, make factor-c-sweep) end to end at smoke size: every
condition trained and scored through the pipeline, then the gap-closed and knob tables and figures."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_run_overrides
from modevo.cli import main
from modevo.corpus import synth
from modevo.score import stats
from modevo.views.registry import REMEDIES, remedy_views, sweep_views

ROOT = Path(__file__).resolve().parent.parent
needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")


def test_campaign_views_are_matched():
    views = remedy_views("mel-kmeans")
    assert "speech-dedup@varied/mel-kmeans" in views and "phone-repeat@varied:12.5hz" in views
    assert views[:2] == ["speech@varied/mel-kmeans", "phone"]  # the gap's two ends
    assert len(views) == 2 + 2 * len(REMEDIES) - 1  # phone is the gap's end and dedup's twin
    sweep = sweep_views("phonetic-kmeans")
    assert "speech@rate/phonetic-kmeans" in sweep and "phone-repeat@rate" in sweep
    assert "phone-repeat@pitch" not in sweep  # only the rate knob changes durations


def test_gap_closed_interval():
    rng = np.random.default_rng(1)
    n = 3000
    s, t = (rng.random(n) < 0.55).astype(float), (rng.random(n) < 0.80).astype(float)
    r = np.where(rng.random(n) < 0.4, t, s)  # takes the target's outcome on 40% of the items
    g = stats.gap_closed(s, r, t)
    assert 0.3 < g["closed"] < 0.5 and g["lo"] < g["closed"] < g["hi"] and g["verdict"] == "closes part"
    flat = stats.gap_closed(s, r, s + 0.0)  # no gap at all: the ratio is unbounded
    assert flat["verdict"] == "cannot tell" and flat["lo"] == -np.inf and flat["hi"] == np.inf
    seeds = stats.gap_closed(np.stack([s, s]), np.stack([r, r]), np.stack([t, t]))
    assert seeds["closed"] == pytest.approx(g["closed"]) and "seed variance not counted" in seeds["method"]


@pytest.mark.long
@needs_espeak
def test_remedies_and_sweep_at_smoke(novels, cache, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the steps name configs/ relative to the project, as the Makefile does
    eval_cfg = tmp_path / "eval.yaml"
    eval_cfg.write_text("tasks:\n  names: [sblimp]\n  blimp_per_paradigm: 2\nscore:\n  n_boot: 200\n")
    over = [o for o in tiny_run_overrides(novels, tmp_path) if not o.startswith("train.runs_dir")]
    common = ["--scale", "smoke", "--runs-dir", str(tmp_path / "runs"), "--eval-config", str(eval_cfg), *over]

    assert main(["remedies", "--out", str(tmp_path / "remedies"), *common]) == 0
    out = capsys.readouterr().out
    assert "share of the speech → phone gap closed (smoke)" in out
    import csv

    rows = list(csv.DictReader((tmp_path / "remedies" / "remedies.csv").open()))
    assert len(rows) == len(REMEDIES)  # one task (sblimp) × each remedy
    assert (tmp_path / "remedies" / "fig_remedies.png").stat().st_size > 10_000
    table = (tmp_path / "remedies" / "remedies.md").read_text()
    for label in REMEDIES:
        assert f"| mel-kmeans | {label} |" in table
    tps = {r["remedy"]: float(r["tokens/s"]) for r in rows}
    assert tps["25 Hz"] == pytest.approx(25, abs=2) and tps["12.5 Hz"] == pytest.approx(12.5, abs=1.5)
    assert tps["unit dedup"] < 50 and tps["unit BPE"] < 50
    prov = json.loads((tmp_path / "remedies" / "provenance.json").read_text())
    assert set(prov["runs"]) == set(remedy_views("mel-kmeans"))

    assert main(["sweep", "--out", str(tmp_path / "sweep"), *common]) == 0
    table = (tmp_path / "sweep" / "knobs.md").read_text()
    for knob in ("speaker", "rate", "pitch", "range", "all (varied)"):
        assert f"| mel-kmeans | {knob} | sblimp |" in table
    rate_row = next(ln for ln in table.splitlines() if "| mel-kmeans | rate |" in ln)
    assert rate_row.count("[") >= 3  # Δ, duration part, acoustic part each with a CI
    assert (tmp_path / "sweep" / "fig_knobs.png").is_file()
    # every knob is heard through the codebook speech-fixed uses: the units differ in the rendering alone
    manifests = [json.loads(p.read_text()) for p in cache.rglob("views/speech@*/manifest.json")]
    hashes = {m["view"]: m["units"]["tokenizer_hash"] for m in manifests if m["view"] in sweep_views("mel-kmeans")}
    assert len(hashes) == 6 and len(set(hashes.values())) == 1


@pytest.mark.long
@needs_espeak
def test_interleave_campaign_at_smoke(novels, cache, tmp_path, capsys, monkeypatch):
    """make interleave: factor C's two ends, text-bpe and the four text-supervision conditions trained in
    dependency order (the warm start after its text-bpe run), scored, and reported as variants."""
    from modevo.report.interleave import CONDITIONS

    monkeypatch.chdir(ROOT)
    eval_cfg = tmp_path / "eval.yaml"
    eval_cfg.write_text("tasks:\n  names: [sblimp]\n  blimp_per_paradigm: 2\nscore:\n  n_boot: 200\n")
    over = [o for o in tiny_run_overrides(novels, tmp_path) if not o.startswith("train.runs_dir")]
    common = ["--scale", "smoke", "--runs-dir", str(tmp_path / "runs"), "--eval-config", str(eval_cfg), *over]
    assert main(["interleave", "--plan-only", *common]) == 0
    assert "warm start from text-bpe, seed 0: planned once text-bpe seed 0 is trained" in capsys.readouterr().out

    assert main(["interleave", "--out", str(tmp_path / "interleave"), *common]) == 0
    import csv

    rows = list(csv.DictReader((tmp_path / "interleave" / "interleave.csv").open()))
    assert [r["condition"] for r in rows] == [c.label for c in CONDITIONS]  # one task (sblimp) × each condition
    assert all(r["gap closed %"] and r["Δ vs speech-varied"] for r in rows)
    assert (tmp_path / "interleave" / "fig_interleave.png").stat().st_size > 10_000
    runs = {json.loads(p.read_text()).get("init_from", {}).get("view"): p.parent
            for p in (tmp_path / "runs" / "smoke").rglob("interleaved*/*/run.json")}
    assert "text-bpe" in runs  # the warm start read the text-bpe run's weights
    # the variants stay out of the standard tables: Table 4 has the standard interleaved run alone
    assert main(["report", "--scale", "smoke", "--runs-dir", str(tmp_path / "runs"), "--out",
                 str(tmp_path / "results")]) == 0
    table4 = (tmp_path / "results" / "table4.md").read_text()
    assert sum(ln.startswith("| interleaved") for ln in table4.splitlines()) == 1
