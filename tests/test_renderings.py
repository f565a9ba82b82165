"""Speech renderings built from the corpus: exact durations, reproducible draws, evictable audio."""

import json

import numpy as np
import pytest

from modevo.cli import main
from modevo.config import load
from modevo.corpus import synth
from modevo.corpus.build import build
from modevo.corpus.config import CorpusConfig
from modevo.corpus.render import build_rendering, evict_audio, iter_shard_audio, load_rendering
from modevo.corpus.render_config import RenderingConfig, draw
from modevo.errors import ConfigError

needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")


def small_cfg(novels, *extra):
    return load(CorpusConfig, None, [f"source.paths=[{novels}]", "source.max_sentences_per_document=12",
                                     "split.chunk_sentences=4", "num_proc=1", *extra])


def test_draw_reproducible_and_varied():
    cfg = RenderingConfig(voices=["us1", "us2", "en1"], rate_wpm=(120, 210), pitch=(30, 70), pitch_range=(0.5, 1.6))
    a = draw("varied", cfg, "doc/000001", seed=0)
    assert a == draw("varied", cfg, "doc/000001", seed=0)
    draws = [draw("varied", cfg, f"doc/{i:06d}", seed=0) for i in range(60)]
    assert len({d["voice"] for d in draws}) == 3
    assert len({d["rate_wpm"] for d in draws}) > 20 and len({d["pitch"] for d in draws}) > 20
    assert all(120 <= d["rate_wpm"] <= 210 and 0.5 <= d["pitch_range"] <= 1.6 for d in draws)
    assert draw("varied", cfg, "doc/000001", seed=1) != a or draw("varied", cfg, "doc/000002", seed=1) != draws[2]
    fixed = RenderingConfig()
    assert len({tuple(draw("fixed", fixed, f"u{i}", 0).items()) for i in range(20)}) == 1


def test_held_out_voice_only_in_eval_renderings():
    with pytest.raises(ConfigError, match="uses the held-out voice 'us3'"):
        load(CorpusConfig, None, ["speech.renderings.varied.voices=[us1,us3]"])
    cfg = load(CorpusConfig, None, [])
    for name, r in cfg.speech.renderings.items():
        assert (cfg.speech.held_out_voice in r.voices) == (r.role == "eval"), name


def _check_rendering(cfg, name):
    paths = build_rendering(cfg, name, progress=False)
    manifest = json.loads(paths.manifest.read_text())
    rows = load_rendering(paths)
    tol = synth.TOLERANCE_MS[manifest["backend"]]
    for r in rows:
        total = r["leading_ms"] + sum(r["durations_ms"]) + sum(r["word_pause_ms"]) + r["trailing_ms"]
        assert abs(total - r["n_samples"] / 16.0) <= tol, r["id"]
        starts = np.asarray(r["start_ms"], dtype=np.float64)
        ends = starts + np.asarray(r["durations_ms"], dtype=np.float64)
        assert r["frames"] == (synth.frame_index(ends) - synth.frame_index(starts)).tolist()
    return paths, manifest, rows


@needs_espeak
def test_fixed_rendering_durations_and_bit_identical(novels, tmp_path, monkeypatch):
    monkeypatch.setenv("MODEVO_CACHE", str(tmp_path / "a"))
    cfg = small_cfg(novels)
    build(cfg, progress=False)
    paths_a, man_a, rows = _check_rendering(cfg, "fixed")
    assert set(rows["voice"]) == {man_a["voices"][0]}
    audio_a = [a for _, a in iter_shard_audio(cfg, paths_a, 0)]
    monkeypatch.setenv("MODEVO_CACHE", str(tmp_path / "b"))
    build(cfg, progress=False)
    paths_b, man_b, _ = _check_rendering(cfg, "fixed")
    assert man_a["content_hash"] == man_b["content_hash"]
    audio_b = [a for _, a in iter_shard_audio(cfg, paths_b, 0)]
    assert len(audio_a) == len(audio_b) > 0
    assert all(np.array_equal(x, y) for x, y in zip(audio_a, audio_b))


@needs_espeak
def test_varied_rendering_uses_train_voices_and_differs(novels, cache):
    cfg = small_cfg(novels)
    build(cfg, progress=False)
    _, manifest, rows = _check_rendering(cfg, "varied")
    assert set(rows["voice"]) <= set(manifest["voices"])
    assert "us3" not in set(rows["voice"]) and "espeak-en-us+m7" not in set(rows["voice"])
    assert len(set(zip(rows["rate_wpm"], rows["pitch"]))) > len(rows) // 2


@needs_espeak
def test_evicted_audio_regenerates_identically(novels, cache):
    cfg = small_cfg(novels)
    build(cfg, progress=False)
    paths = build_rendering(cfg, "varied", progress=False)
    before = [a for _, a in iter_shard_audio(cfg, paths, 1)]
    assert evict_audio(paths) > 0
    assert not list(paths.audio.glob("*.flac"))
    after = [a for _, a in iter_shard_audio(cfg, paths, 1)]
    assert (paths.audio / "00001.flac").exists()
    assert len(before) == len(after) and all(np.array_equal(x, y) for x, y in zip(before, after))


@needs_espeak
def test_cli_builds_renderings_and_stats(novels, cache, capsys):
    argv = [f"source.paths=[{novels}]", "source.max_sentences_per_document=8", "num_proc=1"]
    assert main(["corpus", "build", "--no-progress", *argv]) == 0
    out = capsys.readouterr().out
    assert "fixed-" in out and "varied-" in out and "hours" in out
    assert main(["corpus", "stats", *argv]) == 0
    assert "phones/s" in capsys.readouterr().out


def test_missing_espeak_is_one_line(novels, cache, capsys, monkeypatch):
    argv = [f"source.paths=[{novels}]", "source.max_sentences_per_document=8", "num_proc=1"]
    assert main(["corpus", "build", "--no-progress", "--text-only", *argv]) == 0
    capsys.readouterr()
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["corpus", "build", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "espeak-ng" in err[0] and "make setup" in err[0]


def test_unknown_rendering_is_one_line(novels, cache, capsys):
    argv = [f"source.paths=[{novels}]", "source.max_sentences_per_document=8", "num_proc=1"]
    assert main(["corpus", "build", "--no-progress", "--renderings", "fixd", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["modevo: error: no rendering named 'fixd' (declared: fixed, varied, speaker, rate, pitch, range, heldout, real)"]


@needs_espeak
def test_fallback_to_espeak_when_mbrola_absent(novels, cache, monkeypatch, caplog):
    real = synth._missing
    monkeypatch.setattr(synth, "_missing", lambda b: "mbrola not found on PATH: run `make setup`" if b == "mbrola" else real(b))
    cfg = small_cfg(novels, "source.max_sentences_per_document=4")
    build(cfg, progress=False)
    paths, manifest, rows = _check_rendering(cfg, "varied")
    assert manifest["fallback"] is True and manifest["backend"] == "espeak"
    assert set(rows["voice"]) <= {"espeak-en-us+f3", "espeak-en-us+m3", "espeak-en-gb-x-rp+m3"}
    assert "MBROLA voices absent" in caplog.text
    strict = small_cfg(novels, "source.max_sentences_per_document=4", "speech.allow_fallback=false")
    from modevo.errors import MissingToolError

    with pytest.raises(MissingToolError, match="mbrola"):
        build_rendering(strict, "fixed", progress=False)


def test_knob_alone_renderings_vary_one_knob():
    from modevo.corpus.render_config import default_renderings

    renderings = default_renderings()
    base = draw("fixed", renderings["fixed"], "u0", 0)
    for name, knob in (("speaker", "voice"), ("rate", "rate_wpm"), ("pitch", "pitch"), ("range", "pitch_range")):
        draws = [draw(name, renderings[name], f"u{i}", 0) for i in range(40)]
        assert len({d[knob] for d in draws}) > 1, name
        for other in set(base) - {knob}:
            assert {d[other] for d in draws} == {base[other]}, (name, other)
