"""The built-in pocketsphinx aligner: audio + transcripts → TextGrids the corpus reads, within a stated
tolerance of the exact synthetic durations; and its boundary error measured per voice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modevo.cli import main
from modevo.corpus import synth
from modevo.corpus.build import build, load_corpus, load_manifest
from modevo.corpus.render import build_rendering, load_rendering
from real_speech_data import make_layouts, real_cfg

pytestmark = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")
pytest.importorskip("pocketsphinx")

# Stated tolerance of the pocketsphinx route on the fixed (us1) rendering: phones exact (they are the lexicon's),
# boundaries within 20 ms for at least 65% and a median of at most 15 ms (measured here: 10 ms, 75%).
MEDIAN_MS, SHARE_20MS = 15.0, 0.65


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_layouts(tmp_path_factory.mktemp("aligner"))


def test_corpus_align_writes_textgrids_the_corpus_reads_within_tolerance(data, tmp_path, capsys):
    over = ["source.recordings.format=librispeech", f"source.recordings.paths=[{data['librispeech']}]",
            "split.chunk_sentences=2", "num_proc=1", f"cache_dir={tmp_path / 'c'}"]
    out = tmp_path / "ps"
    assert main(["corpus", "align", "--no-progress", "--out", str(out), *over]) == 0
    text = capsys.readouterr().out
    n = len(data["syn"].utts)
    assert f"{n} utterances aligned, 0 failed" in text and f"source.recordings.alignments=[{out}]" in text
    cfg = real_cfg(data, tmp_path / "c", alignments=[out])
    rows = {r["id"]: r for r in load_corpus(build(cfg, progress=False))}
    assert load_manifest(cfg)[0]["stats"]["speech"]["alignment_sources"] == {"textgrid": n}
    rend = {r["id"]: r for r in load_rendering(build_rendering(cfg, "real", progress=False))}
    errors = []
    for u in data["syn"].utts:
        assert rows[u.utt_id]["phones"] == u.row["phones"] and rows[u.utt_id]["stress"] == u.row["stress"]
        got, true = rend[u.utt_id], u.rend
        errors.append(np.abs(np.asarray(got["start_ms"]) - np.asarray(true["start_ms"])))
        assert abs(sum(got["frames"]) - sum(true["frames"])) <= 0.15 * sum(true["frames"]) + 5
    e = np.concatenate(errors)
    assert np.median(e) <= MEDIAN_MS and np.mean(e <= 20) >= SHARE_20MS, (np.median(e), np.mean(e <= 20))


def test_align_measure_reports_per_voice_and_writes_results(tmp_path, novels, cache, capsys):
    over = [f"source.paths=[{novels}]", "source.max_sentences_per_document=4", "split.chunk_sentences=2",
            "num_proc=1"]
    assert main(["corpus", "align", "--no-progress", "--measure", "fixed,varied", "--max-utterances", "6",
                 "--results", str(tmp_path / "results"), *over]) == 0
    out = capsys.readouterr().out
    assert "aligner pocketsphinx against exact synthetic boundaries" in out and "fixed     us1" in out
    md = (tmp_path / "results" / "aligner_error.md").read_text()
    assert "| fixed | us1 | 6 |" in md and "Measured" in md
    csv = (tmp_path / "results" / "aligner_error.csv").read_text().splitlines()
    assert csv[0].startswith("rendering,voice,utterances,failed,boundaries,median_ms,p90_ms,within_20ms")
    # corpus stats shows the measurement beside the corpus it was measured on
    assert main(["corpus", "stats", *over]) == 0
    assert "aligner pocketsphinx" in capsys.readouterr().out
    result = json.loads(next(cache.rglob("boundary_error.json")).read_text())
    assert {r["rendering"] for r in result["rows"]} == {"fixed", "varied"}
    assert all(0 <= r["within_20ms"] <= 1 and r["median_ms"] >= 0 for r in result["rows"] if r["boundaries"])


def test_align_needs_a_recordings_source(novels, cache, capsys):
    assert main(["corpus", "align", "--no-progress", f"source.paths=[{novels}]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs a recordings source" in err
