"""Bad real-speech input: each is one line (a systematic problem) or a counted, logged skip (one utterance)."""

from __future__ import annotations

import shutil

import pytest

from modevo.cli import main
from modevo.corpus import synth
from modevo.corpus.build import build, load_corpus, load_manifest
from modevo.corpus.render import build_rendering, load_rendering
from real_speech_data import make_layouts, real_cfg, write_librispeech

pytestmark = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_layouts(tmp_path_factory.mktemp("real-bad"))


def _copy(src, dst):
    shutil.copytree(src, dst) if src.is_dir() else (dst.parent.mkdir(parents=True, exist_ok=True), shutil.copy(src, dst))
    return dst


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def _cli(data, cache, alignments=None, paths=None, fmt="librispeech"):
    paths = paths or [data["librispeech"]]
    over = [f"source.recordings.format={fmt}", "source.recordings.paths=[" + ",".join(str(p) for p in paths) + "]",
            "split.chunk_sentences=2", "num_proc=1", f"cache_dir={cache}"]
    if alignments:
        over.append("source.recordings.alignments=[" + ",".join(str(a) for a in alignments) + "]")
    return ["corpus", "build", "--text-only", "--no-progress", *over]


def test_textgrid_without_phones_tier_is_one_line(data, tmp_path, capsys):
    from real_speech_data import write_textgrids

    tg = write_textgrids(data["syn"], tmp_path / "mfa", phones_tier=False)
    err = _one_line_error(capsys, _cli(data, tmp_path / "c", [tg]))
    assert "has no phones tier (tiers: words)" in err


@pytest.mark.parametrize("bad, message", [
    ("{u} 1 0.500 0.100 AH0\n{u} 1 0.550 0.100 B\n", "before the previous phone ends"),
    ("{u} 1 -0.100 0.100 AH0\n", "negative time"),
    ("{u} 1 0.100\n", "not a CTM line"),
])
def test_bad_ctm_is_one_line(data, tmp_path, capsys, bad, message):
    ctm = tmp_path / "bad.ctm"
    ctm.write_text(bad.format(u=data["syn"].utts[0].utt_id))
    assert message in _one_line_error(capsys, _cli(data, tmp_path / "c", [ctm]))


def _build_and_skips(cfg):
    build(cfg, progress=False)
    manifest, _ = load_manifest(cfg)
    return manifest["stats"]["skips"], manifest["stats"]["speech"]


def test_unknown_phone_labels_and_word_mismatch_are_counted_skips(data, tmp_path, caplog):
    tg = _copy(data["textgrids"], tmp_path / "mfa")
    first, second = data["syn"].utts[0], data["syn"].utts[1]
    f1 = next(tg.rglob(f"{first.utt_id}.TextGrid"))
    label = first.phone_segments()[0][0]
    f1.write_text(f1.read_text().replace(f'text = "{label}"', 'text = "QQ"', 1))
    f2 = next(tg.rglob(f"{second.utt_id}.TextGrid"))
    word = second.row["words"][0]
    f2.write_text(f2.read_text().replace(f'text = "{word}"', 'text = "zebra"', 1))
    cfg = real_cfg(data, tmp_path / "c", alignments=[tg])
    with caplog.at_level("WARNING", logger="modevo.corpus"):
        skips, speech = _build_and_skips(cfg)
    assert skips["alignment:unknown_phone"] == 1 and skips["alignment:word_mismatch"] == 1
    assert speech["unknown_phone_labels"] == {"QQ": 1}
    assert speech["utterances"] == len(data["syn"].utts) - 2
    logged = caplog.text
    assert f"skipped {first.utt_id}: alignment unknown phone (QQ)" in logged and "zebra" in logged


def test_alignment_longer_than_the_audio_is_a_counted_skip(data, tmp_path):
    ctm = tmp_path / "long.ctm"
    lines = data["ctm"].read_text().splitlines()
    u = data["syn"].utts[0]
    end = len(u.audio) / 16000
    lines.append(f"{u.utt_id} 1 {end + 0.5:.3f} 0.100 AH0_E")  # half a second past the end of its audio
    ctm.write_text("\n".join(lines) + "\n")
    skips, _ = _build_and_skips(real_cfg(data, tmp_path / "c", alignments=[ctm]))
    assert skips.get("alignment:length_mismatch") == 1


def test_missing_and_corrupt_flac_are_counted_skips(data, tmp_path):
    root = _copy(data["librispeech"], tmp_path / "LibriSpeech")
    utts = data["syn"].utts
    missing = next(root.rglob(f"{utts[0].utt_id}.flac"))
    missing.unlink()
    corrupt = next(root.rglob(f"{utts[1].utt_id}.flac"))
    corrupt.write_bytes(b"fLaC" + b"\x00garbage" * 50)
    skips, speech = _build_and_skips(real_cfg(data, tmp_path / "c", paths=[root], alignments=[data["textgrids"]]))
    assert skips.get("audio:audio_missing") == 1 and skips.get("audio:audio_unreadable") == 1
    assert speech["utterances"] == len(utts) - 2


def test_stereo_44k_audio_is_mixed_down_and_resampled_and_keeps_its_alignment(data, tmp_path):
    root = write_librispeech(data["syn"], tmp_path / "LibriSpeech", rate=44100, channels=2)
    cfg = real_cfg(data, tmp_path / "c", paths=[root], alignments=[data["textgrids"]])
    skips, speech = _build_and_skips(cfg)
    assert not any(k.startswith(("audio:", "alignment:")) for k in skips)
    n = len(data["syn"].utts)
    assert speech["audio_notes"] == {"mixed down 2 channels": n, "resampled 44100→16000 Hz": n}
    rend = {r["id"]: r for r in load_rendering(build_rendering(cfg, "real", progress=False))}
    for u in data["syn"].utts:  # same durations and frames; the audio length within a sample of the original
        assert rend[u.utt_id]["frames"] == u.rend["frames"]
        assert abs(rend[u.utt_id]["n_samples"] - len(u.audio)) <= 1


def test_lhotse_supervision_without_its_recording_is_a_counted_skip(data, tmp_path):
    from lhotse import CutSet, RecordingSet

    recs, sups = CutSet.from_file(data["lhotse"]).decompose()[:2]
    lost = data["syn"].utts[0].utt_id
    RecordingSet.from_recordings([r for r in recs if r.id != lost]).to_file(tmp_path / "recordings.jsonl.gz")
    sups.to_file(tmp_path / "supervisions.jsonl.gz")
    cfg = real_cfg(data, tmp_path / "c", fmt="lhotse", paths=[tmp_path / "recordings.jsonl.gz",
                                                              tmp_path / "supervisions.jsonl.gz"])
    skips, speech = _build_and_skips(cfg)
    assert skips.get("audio:recording_missing") == 1
    assert lost not in {r["id"] for r in load_corpus(build(cfg, progress=False))}


def test_missing_sources_are_one_line(data, tmp_path, capsys):
    assert "LibriSpeech root not found" in _one_line_error(capsys, _cli(data, tmp_path / "c", paths=[tmp_path / "nope"]))
    assert "alignment path not found" in _one_line_error(capsys, _cli(data, tmp_path / "c", [tmp_path / "nope.ctm"]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    err = _one_line_error(capsys, _cli(data, tmp_path / "c", paths=[bad], fmt="lhotse"))
    assert "not a lhotse cut, recording or supervision" in err
