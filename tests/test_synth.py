"""Speech synthesis from phones: exact duration accounting, determinism, knobs, alignment, errors."""

import multiprocessing
import os

import numpy as np
import pytest

from modevo.corpus import synth
from modevo.corpus.synth import RenderParams, frames_50hz, render
from modevo.errors import MissingToolError, ModevoError

HAS_MBROLA = synth.backend_available("mbrola")
HAS_ESPEAK = synth.backend_available("espeak")
needs_mbrola = [pytest.mark.mbrola, pytest.mark.skipif(not HAS_MBROLA, reason="MBROLA voices not installed")]
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng not installed")

# CMUdict pronunciations, written by hand; they exercise linking r (ER before a vowel: "river is",
# "every evening") and the glide after IY before a vowel ("see it", "sea is").
SENTENCES = {
    "the quick brown fox jumps over the lazy dog":
        "DH AH0|K W IH1 K|B R AW1 N|F AA1 K S|JH AH1 M P S|OW1 V ER0|DH AH0|L EY1 Z IY0|D AO1 G",
    "she sells sea shells by the sea shore":
        "SH IY1|S EH1 L Z|S IY1|SH EH1 L Z|B AY1|DH AH0|S IY1|SH AO1 R",
    "a thousand years ago the river is measured":
        "AH0|TH AW1 Z AH0 N D|Y IH1 R Z|AH0 G OW1|DH AH0|R IH1 V ER0|IH1 Z|M EH1 ZH ER0 D",
    "nothing could be better than a cup of tea":
        "N AH1 TH IH0 NG|K UH1 D|B IY1|B EH1 T ER0|DH AE1 N|AH0|K AH1 P|AH1 V|T IY1",
    "we see it every evening when the sea is calm":
        "W IY1|S IY1|IH1 T|EH1 V ER0 IY0|IY1 V N IH0 NG|W EH1 N|DH AH0|S IY1|IH1 Z|K AA1 M",
}


def parse(arpabet: str) -> tuple[list[list[str]], list[list[int]]]:
    words = [w.split() for w in arpabet.split("|")]
    phones = [[p.rstrip("012") for p in w] for w in words]
    stress = [[int(p[-1]) if p[-1].isdigit() else -1 for p in w] for w in words]
    return phones, stress


QUICK = parse(SENTENCES["the quick brown fox jumps over the lazy dog"])
MBROLA_VOICES = [pytest.param(v, marks=needs_mbrola) for v, x in synth.VOICES.items() if x.backend == "mbrola"]
ESPEAK_VOICES = [pytest.param(v, marks=needs_espeak) for v, x in synth.VOICES.items() if x.backend == "espeak"]
ONE_PER_BACKEND = [pytest.param("us1", marks=needs_mbrola), pytest.param("espeak-en-us+f3", marks=needs_espeak)]
ALL_VOICES = MBROLA_VOICES + ESPEAK_VOICES


def total_ms(r: synth.Rendering) -> float:
    return float(r.durations_ms.sum() + r.word_pause_ms.sum() + r.leading_ms + r.trailing_ms)


def test_registry_is_consistent():
    assert set(synth.TOLERANCE_MS) == {"mbrola", "espeak"}
    assert {v.backend for v in synth.VOICES.values()} == {"mbrola", "espeak"}
    assert sum(v.backend == "espeak" for v in synth.VOICES.values()) >= 6
    for name, voice in synth.VOICES.items():
        assert voice.name == name


@pytest.mark.parametrize("voice", ALL_VOICES)
def test_durations_account_for_all_audio(voice):
    backend = synth.VOICES[voice].backend
    for text, arpabet in SENTENCES.items():
        phones, stress = parse(arpabet)
        r = render(phones, stress, RenderParams(voice=voice))
        assert r.backend == backend
        assert r.audio.dtype == np.int16 and r.audio.ndim == 1
        assert r.durations_ms.dtype == np.float64 and r.word_pause_ms.dtype == np.float64
        assert len(r.durations_ms) == sum(map(len, phones)), text
        assert len(r.word_pause_ms) == len(phones), text
        assert np.all(r.durations_ms >= 0) and np.all(r.word_pause_ms >= 0)
        assert r.leading_ms >= 0 and r.trailing_ms > 0  # espeak-ng ends every utterance with a pause
        audio_ms = len(r.audio) * 1000 / synth.SAMPLE_RATE
        assert abs(total_ms(r) - audio_ms) <= synth.TOLERANCE_MS[backend] + 1e-6
        assert r.mismatches == 0, text


@pytest.mark.parametrize("voice", ALL_VOICES)
def test_same_params_render_bit_identically(voice):
    params = RenderParams(voice=voice, rate_wpm=190, pitch=40, pitch_range=1.5)
    first = render(*QUICK, params)
    render(*parse(SENTENCES["she sells sea shells by the sea shore"]), params)  # no state carries over
    again = render(*QUICK, params)
    assert np.array_equal(first.audio, again.audio)
    assert np.array_equal(first.durations_ms, again.durations_ms)


@pytest.mark.parametrize("voice", ALL_VOICES)
def test_knobs_change_the_audio(voice):
    base = RenderParams(voice=voice)
    ref = render(*QUICK, base)
    other_voice = next(v for v, x in synth.VOICES.items() if x.backend == ref.backend and v != voice)
    for params in (RenderParams(voice=other_voice), RenderParams(voice=voice, pitch=80),
                   RenderParams(voice=voice, pitch_range=0.5), RenderParams(voice=voice, rate_wpm=220)):
        audio = render(*QUICK, params).audio
        assert audio.shape != ref.audio.shape or not np.array_equal(audio, ref.audio), params
    speech = ref.durations_ms.sum()
    assert render(*QUICK, RenderParams(voice=voice, rate_wpm=240)).durations_ms.sum() < speech
    assert render(*QUICK, RenderParams(voice=voice, rate_wpm=110)).durations_ms.sum() > speech


@pytest.mark.parametrize("voice", MBROLA_VOICES)
def test_flat_pitch_range_is_monotone(voice):
    # pitch_range 0 puts every .pho pitch target on the utterance mean: still renders, same durations
    flat = render(*QUICK, RenderParams(voice=voice, pitch_range=0.0))
    ref = render(*QUICK, RenderParams(voice=voice))
    assert np.array_equal(flat.durations_ms, ref.durations_ms)
    assert len(flat.audio) == len(ref.audio)


def _render_hash(voice: str) -> bytes:
    return render(*QUICK, RenderParams(voice=voice)).audio.tobytes()


@pytest.mark.parametrize("voice", ONE_PER_BACKEND)
def test_forked_worker_renders_the_same(voice):
    here = _render_hash(voice)  # starts this process's helpers before the fork
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_render_hash, (voice,)) == here


@pytest.mark.parametrize("start", [0.0, 7.0, 13.0])
def test_frames_50hz_sum_to_the_rounded_total(start):
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = rng.uniform(0, 120, size=int(rng.integers(1, 40)))
        d[rng.random(len(d)) < 0.1] = 0.0
        f = frames_50hz(d, start_ms=start)
        assert f.dtype == np.int64 and len(f) == len(d) and np.all(f >= 0)
        end = start + d.sum()
        assert f.sum() == np.floor(end / 20 + 0.5) - np.floor(start / 20 + 0.5)
    assert frames_50hz(np.array([5.0, 5.0, 30.0])).tolist() == [0, 1, 1]  # boundaries 5, 10, 40 ms
    assert frames_50hz(np.array([100.0, 60.0])).sum() == 8


def test_require_backend_names_missing_espeak(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    for backend in ("espeak", "mbrola"):
        assert not synth.backend_available(backend)
        with pytest.raises(MissingToolError) as err:
            synth.require_backend(backend)
        message = str(err.value)
        assert "espeak-ng not found on PATH" in message and "make setup" in message and "\n" not in message
    with pytest.raises(MissingToolError, match="espeak-ng"):
        render(*QUICK, RenderParams(voice="espeak-en-us"))


@needs_espeak
def test_require_backend_names_missing_mbrola(monkeypatch, tmp_path):
    os.symlink(synth.shutil.which("espeak-ng"), tmp_path / "espeak-ng")
    monkeypatch.setenv("PATH", str(tmp_path))  # espeak-ng but no mbrola
    assert synth.backend_available("espeak") and not synth.backend_available("mbrola")
    with pytest.raises(MissingToolError, match=r"mbrola not found on PATH: run `make setup`.*contrib/non-free"):
        synth.require_backend("mbrola")


@pytest.mark.parametrize("voice", ONE_PER_BACKEND)
def test_numpy_typed_params_render_like_python_ones(voice):
    # configs drawn with numpy hand over numpy scalars; the helper process must never see them
    typed = RenderParams(voice=voice, rate_wpm=np.int64(170), pitch=np.int64(45), pitch_range=np.float64(1.2))
    plain = RenderParams(voice=voice, rate_wpm=170, pitch=45, pitch_range=1.2)
    assert np.array_equal(render(*QUICK, typed).audio, render(*QUICK, plain).audio)


@pytest.mark.parametrize("voice", ONE_PER_BACKEND)
def test_extreme_rates_stay_exact(voice):
    backend = synth.VOICES[voice].backend
    for rate in (80, 450):
        r = render(*QUICK, RenderParams(voice=voice, rate_wpm=rate, pitch=0 if rate == 80 else 99))
        assert r.mismatches == 0 and len(r.durations_ms) == sum(map(len, QUICK[0]))
        assert abs(total_ms(r) - len(r.audio) / 16) <= synth.TOLERANCE_MS[backend] + 1e-6


def test_bad_requests_are_one_line_errors():
    phones, stress = QUICK
    cases = [
        (phones, stress, RenderParams(voice="us9"), "unknown voice"),
        ([["DH", "XX"]], [[-1, 0]], RenderParams(), "unknown phone 'XX'"),
        ([["DH", "AH1"]], [[-1, 1]], RenderParams(), "unknown phone 'AH1'"),
        ([["DH", "AH"]], [[-1]], RenderParams(), "stress marks"),
        ([["DH", "AH"]], [[-1, 3]], RenderParams(), "bad stress 3"),
        ([["DH", "AH"]], [[0, 0]], RenderParams(), "bad stress 0 for phone DH"),
        (phones, stress[:-1], RenderParams(), "one stress list per word"),
        ([], [], RenderParams(), "one stress list per word"),
        (phones, stress, RenderParams(pitch=100), "pitch 100 out of range 0-99"),
        (phones, stress, RenderParams(pitch=-1), "pitch -1 out of range"),
        (phones, stress, RenderParams(rate_wpm=79), "rate_wpm 79 out of range 80-450"),
        (phones, stress, RenderParams(rate_wpm=451), "rate_wpm 451 out of range"),
        (phones, stress, RenderParams(rate_wpm=160.5), "rate_wpm 160.5 out of range 80-450 (whole numbers)"),
        (phones, stress, RenderParams(pitch_range=3.5), "pitch_range 3.5 out of range 0-3.0 for mbrola"),
        (phones, stress, RenderParams(pitch_range=-0.1), "pitch_range -0.1 out of range"),
        (phones, stress, RenderParams(voice="espeak-en-us", pitch_range=2.5), "out of range 0-1.98 for espeak"),
    ]
    for ph, st, params, expected in cases:
        with pytest.raises(ModevoError) as err:
            render(ph, st, params)
        assert expected in str(err.value) and "\n" not in str(err.value), (expected, str(err.value))
    with pytest.raises(ModevoError, match="unknown synthesis backend"):
        synth.require_backend("festival")
    with pytest.raises(ModevoError, match="negative duration"):
        frames_50hz(np.array([10.0, -1.0]))
