"""End to end on real speech: a LibriSpeech-layout corpus with MFA TextGrids → the paper's own Phone-Repeat
and Speech conditions (phone-repeat@real, speech@real/mel-kmeans) → smoke training → eval → report."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_run_overrides
from modevo.cli import main
from modevo.corpus import synth
from real_speech_data import make_layouts

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed"),
              pytest.mark.slow]


def test_real_speech_views_train_eval_report(tmp_path, monkeypatch, capsys):
    data = make_layouts(tmp_path / "data", per_doc=16, n_docs=3)
    monkeypatch.setenv("MODEVO_CACHE", str(tmp_path / "cache"))
    over = [o for o in tiny_run_overrides(tmp_path / "unused", tmp_path) if not o.startswith("corpus.source.")]
    over += ["corpus.source.recordings.format=librispeech", f"corpus.source.recordings.paths=[{data['librispeech']}]",
             f"corpus.source.recordings.alignments=[{data['textgrids']}]", "corpus.split.chunk_sentences=3",
             "units.renderings=[real]", "corpus.name=real-e2e"]
    views = ["phone-repeat@real", "speech@real/mel-kmeans"]
    assert main(["views", "build", "--config", str(ROOT / "configs/views/smoke.yaml"), "--views", ",".join(views),
                 "--no-progress", *[o for o in over if o.split(".")[0] in ("corpus", "units", "views")]]) == 0
    out = capsys.readouterr().out
    assert "phone-repeat@real" in out and "speech@real/mel-kmeans" in out
    for view in views:
        assert main(["train", "--config", str(ROOT / "configs/train/smoke.yaml"), "--view", view, "--no-progress",
                     *over]) == 0
    assert main(["eval", "--all", "--scale", "smoke", "--runs-dir", str(tmp_path / "runs"), "--no-progress",
                 "--no-mlflow", "--config", str(ROOT / "configs/eval/smoke.yaml"), "--tasks", "sblimp",
                 "tasks.blimp_per_paradigm=1", "score.n_boot=100"]) == 0
    assert main(["report", "--scale", "smoke", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "r")]) == 0
    table = (tmp_path / "r" / "table4.md").read_text()
    assert "phone-repeat@real" in table and "speech@real/mel-kmeans" in table
