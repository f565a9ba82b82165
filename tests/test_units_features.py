"""Log-mel at exactly 50 Hz, frame labels from exact alignments, and the 16 → 24 kHz resampler."""

import math

import numpy as np
import pytest
import torch

from modevo.units import features
from modevo.units.features import LOG_FLOOR, frame_labels, log_mel, mel_filterbank, n_frames
from modevo.units.resample import resample
from tests.test_units_fakes import fake_utterance


@pytest.mark.parametrize("n", [0, 1, 319, 320, 321, 16000, 16001, 16319, 160000])
def test_frame_count_is_ceil_of_samples_over_320(n):
    assert n_frames(n) == math.ceil(n / 320)
    assert log_mel(np.zeros(n, np.int16)).shape == (n_frames(n), 80)


def test_exactly_50_frames_per_second():
    for seconds in (1, 3, 10):
        assert log_mel(np.zeros(16000 * seconds, np.int16)).shape[0] == 50 * seconds


def test_filterbank_covers_every_mel_bin():
    fb = mel_filterbank()
    assert fb.shape == (257, 80)
    assert (fb.max(0).values > 0).all() and fb.max() <= 1.0


def test_tone_lands_in_its_mel_bin_and_silence_is_the_floor():
    k = np.arange(16000) / 16000
    tone = (0.5 * 32767 * np.sin(2 * np.pi * 1000 * k)).astype(np.int16)
    m = log_mel(tone)  # (50, 80)
    peak = int(m[10:40].mean(0).argmax())
    centres = features._mel_to_hz(np.linspace(0, features._hz_to_mel(8000), 82))[1:-1]
    assert abs(centres[peak] - 1000) < 60
    silent = log_mel(np.zeros(3200, np.int16))
    assert torch.allclose(silent, torch.full_like(silent, math.log(LOG_FLOOR)))


def test_frame_i_covers_samples_320i_to_320i_plus_320():
    x = np.zeros(16000, np.int16)
    x[3200:6400] = (np.random.RandomState(0).randn(3200) * 8000).astype(np.int16)  # frames 10..19
    energy = log_mel(x).mean(1)
    quiet = math.log(LOG_FLOOR)
    assert (energy[11:19] > quiet + 10).all()
    assert ((energy[:9] - quiet).abs() < 1e-4).all() and ((energy[21:] - quiet).abs() < 1e-4).all()
    assert (energy[9] > quiet + 1) and (energy[20] > quiet + 1)  # windows reach 40 samples beyond the frame


def test_frame_labels_agree_with_start_ms_and_render_frames():
    audio, row = fake_utterance(7, n_words=5)
    t = n_frames(len(audio))
    labels = frame_labels(row, t)
    assert labels.shape == (t,)
    flat = [p for w in row["phones"] for p in w]
    starts = np.asarray(row["start_ms"])
    ends = starts + np.asarray(row["durations_ms"])
    # per phone, as many frames as render.py's `frames` column counts: round(end/20) - round(start/20)
    frames = np.round(ends / 20) - np.round(starts / 20)
    for i, (p, s, e) in enumerate(zip(flat, starts, ends)):
        a, b = int(np.round(s / 20)), int(np.round(e / 20))
        assert (labels[a:b] == p).all()
        assert b - a == frames[i]
    assert (labels != "SIL").sum() == frames.sum()
    # a frame's label is the phone holding its centre (20 i + 10 ms), silence where none does
    for i in range(t):
        centre = 20 * i + 10
        inside = [p for p, s, e in zip(flat, starts, ends) if s <= centre < e]
        if all(abs(centre - v) > 0.5 for v in np.concatenate([starts, ends])):
            assert labels[i] == (inside[0] if inside else "SIL"), i
    assert labels[0] == "SIL" and labels[-1] == "SIL"


def test_frame_labels_at_75_hz_and_mismatch_is_an_error():
    audio, row = fake_utterance(1)
    t75 = math.ceil(len(audio) / 16000 * 75)
    labels = frame_labels(row, t75, frame_ms=1000 / 75)
    assert labels.shape == (t75,) and set(labels) - {"SIL"} <= {p for w in row["phones"] for p in w}
    with pytest.raises(ValueError, match="phones but"):
        frame_labels({**row, "phones": [["AA"]]}, 10)


def test_resample_16k_to_24k_keeps_a_tone():
    k = np.arange(16000) / 16000
    x = torch.tensor(np.sin(2 * np.pi * 1000 * k), dtype=torch.float32)
    y = resample(x, 16000, 24000)
    assert len(y) == 24000
    k2 = np.arange(24000) / 24000
    assert np.abs(y.numpy()[300:-300] - np.sin(2 * np.pi * 1000 * k2[300:-300])).max() < 1e-3
    assert len(resample(x[:1001], 16000, 24000)) == math.ceil(1001 * 1.5)
    assert torch.equal(resample(x, 16000, 24000), y)
