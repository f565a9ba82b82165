"""Real speech as a corpus source: utterances rendered by our own synthesiser, written out as LibriSpeech
folders, lhotse manifests, MFA TextGrids and Kaldi CTM, must read back as the synthetic rows they came from
(phones, stress, durations, frames and audio exactly), and the `real` rendering must feed the views."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modevo.config import load
from modevo.corpus import synth
from modevo.corpus.build import build, load_corpus, load_manifest
from modevo.corpus.config import CorpusConfig
from modevo.corpus.render import build_rendering, iter_shard_audio, load_rendering
from modevo.errors import InputError
from real_speech_data import make_layouts, real_cfg, write_textgrids

pytestmark = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The synthetic utterances and every layout written from them (built once per module)."""
    return make_layouts(tmp_path_factory.mktemp("real"))


def assert_same_as_synthetic(data, cfg, check_audio=True):
    paths = build(cfg, progress=False)
    rows = {r["id"]: r for r in load_corpus(paths)}
    rpaths = build_rendering(cfg, "real", progress=False)
    rend = {r["id"]: r for r in load_rendering(rpaths)}
    syn = data["syn"]
    assert set(rows) == {u.utt_id for u in syn.utts}
    for u in syn.utts:
        row, rr = rows[u.utt_id], rend[u.utt_id]
        assert row["words"] == u.row["words"] and row["text"] == u.row["text"]
        assert row["phones"] == u.row["phones"] and row["stress"] == u.row["stress"], u.utt_id
        assert row["lexicon_phones"] == u.row["phones"] and row["lexicon_mismatches"] == 0
        assert rr["durations_ms"] == u.rend["durations_ms"], u.utt_id  # float32, exactly
        assert rr["start_ms"] == u.rend["start_ms"]
        assert rr["frames"] == u.rend["frames"]
        assert rr["n_samples"] == u.rend["n_samples"]
        assert rr["leading_ms"] == pytest.approx(u.rend["leading_ms"], abs=1e-3)
        assert rr["trailing_ms"] == pytest.approx(u.rend["trailing_ms"], abs=1e-3)
        assert np.allclose(rr["word_pause_ms"], u.rend["word_pause_ms"], atol=1e-3)
        assert rr["voice"] == u.speaker and rr["backend"] == "recorded"
    if check_audio:
        n = json.loads(rpaths.manifest.read_text())["shards"]
        audio = {i: a for s in range(n) for i, a in iter_shard_audio(cfg, rpaths, s)}
        for u in syn.utts:
            assert np.array_equal(audio[u.utt_id], u.audio)
    return paths, rows, rend


def test_librispeech_with_mfa_textgrids_equals_the_synthetic_rows(data, tmp_path):
    cfg = real_cfg(data, tmp_path / "c", alignments=[data["textgrids"]])
    paths, rows, _ = assert_same_as_synthetic(data, cfg)
    manifest, _ = load_manifest(cfg)
    sp = manifest["stats"]["speech"]
    assert sp["alignment_sources"] == {"textgrid": len(rows)} and sp["speakers"] == 2
    assert sp["lexicon_mismatch_rate"] == 0.0 and sp["hours"] > 0
    # a chapter is a document: held-out chunks never share a chapter chunk with train
    assert {r["doc_id"] for r in rows.values()} == {"100-200", "101-201"}
    assert {r["split"] for r in rows.values()} == {"train", "valid", "test"}


@pytest.mark.parametrize("which", ["ctm", "ctm_plain"])
def test_librispeech_with_kaldi_ctm_equals_the_synthetic_rows(data, tmp_path, which):
    """With word-position suffixes, or without (words then come from the lexicon's phone counts)."""
    assert_same_as_synthetic(data, real_cfg(data, tmp_path / "c", alignments=[data[which]]), check_audio=False)


def test_lhotse_cuts_with_their_alignments_equal_the_synthetic_rows(data, tmp_path):
    cfg = real_cfg(data, tmp_path / "c", "source.recordings.document=book", fmt="lhotse", paths=[data["lhotse"]])
    _, rows, _ = assert_same_as_synthetic(data, cfg)
    assert {r["doc_id"] for r in rows.values()} == {"book-200", "book-201"}
    assert load_manifest(cfg)[0]["stats"]["speech"]["alignment_sources"] == {"lhotse": len(rows)}


def test_lhotse_manifest_is_cut_into_shards_of_whole_documents(data, tmp_path):
    from lhotse import CutSet

    cfg = real_cfg(data, tmp_path / "c", "source.recordings.document=book", "source.recordings.utterances_per_shard=3",
                   fmt="lhotse", paths=[data["lhotse"]])
    paths, rows, _ = assert_same_as_synthetic(data, cfg, check_audio=False)
    manifest = json.loads(paths.manifest.read_text())
    assert manifest["shards"] == 2  # one book each: a document is never split across shards
    # a book that comes back later in the manifest is an error naming it
    cuts = list(CutSet.from_file(data["lhotse"]))
    mixed = tmp_path / "mixed.jsonl"
    CutSet.from_cuts(cuts[:1] + cuts[-1:] + cuts[1:-1]).to_file(mixed)
    with pytest.raises(InputError, match="document 'book-200' is not contiguous"):
        build(real_cfg(data, tmp_path / "d", "source.recordings.document=book", fmt="lhotse", paths=[mixed]),
              progress=False)


def test_lhotse_recordings_and_supervisions_with_a_textgrid_alignment(data, tmp_path):
    from lhotse import CutSet

    cuts = CutSet.from_file(data["lhotse"])
    recs, sups = tmp_path / "recordings.jsonl.gz", tmp_path / "supervisions.jsonl"
    cuts.decompose()[0].to_file(recs)
    cuts.decompose()[1].to_file(sups)
    cfg = real_cfg(data, tmp_path / "c", fmt="lhotse", paths=[recs, sups], alignments=[data["textgrids"]])
    _, rows, _ = assert_same_as_synthetic(data, cfg, check_audio=False)
    assert {r["alignment_source"] for r in rows.values()} == {"textgrid"}  # given alignments win over lhotse's


def test_mfa_ipa_phone_set_maps_to_arpabet(data, tmp_path):
    """MFA's IPA models write IPA phones without stress: phones map back, stress comes from the lexicon."""
    ipa = {"AA": "ɑː", "AE": "æ", "AH": "ə", "AO": "ɔ", "AW": "aw", "AY": "aj", "EH": "ɛ", "ER": "ɚ", "EY": "ej",
           "IH": "ɪ", "IY": "iː", "OW": "ow", "OY": "ɔj", "UH": "ʊ", "UW": "ʉː", "B": "b", "CH": "tʃ", "D": "d",
           "DH": "ð", "F": "f", "G": "ɡ", "HH": "h", "JH": "dʒ", "K": "kʰ", "L": "ɫ", "M": "m", "N": "n", "NG": "ŋ",
           "P": "pʰ", "R": "ɹ", "S": "s", "SH": "ʃ", "T": "tʰ", "TH": "θ", "V": "v", "W": "w", "Y": "j", "Z": "z",
           "ZH": "ʒ"}
    tg = write_textgrids(data["syn"], tmp_path / "ipa", ipa=ipa)
    cfg = real_cfg(data, tmp_path / "c", alignments=[tg])
    assert_same_as_synthetic(data, cfg, check_audio=False)
    assert load_manifest(cfg)[0]["stats"]["speech"]["stress_from"] == {"lexicon": sum(len(u.row["words"]) for u in data["syn"].utts)}


def test_without_alignment_text_views_work_and_frame_views_refuse_in_one_line(data, tmp_path, capsys):
    from modevo.cli import main

    cfg = real_cfg(data, tmp_path / "c")
    rows = list(load_corpus(build(cfg, progress=False)))
    assert len(rows) == len(data["syn"].utts) and not any(r["aligned"] for r in rows)
    assert all(r["phones"] == r["lexicon_phones"] for r in rows)
    with pytest.raises(InputError, match="no alignment .* source.recordings.alignments .*modevo corpus align"):
        build_rendering(cfg, "real", progress=False)
    over = ["source.recordings.format=librispeech", f"source.recordings.paths=[{data['librispeech']}]",
            "split.chunk_sentences=2", "num_proc=1", f"cache_dir={tmp_path / 'c'}", "name=real-test"]
    assert main(["corpus", "stats", *over]) == 0
    assert "no alignment: text and phone views only" in capsys.readouterr().out
    assert main(["corpus", "build", "--renderings", "real", "--no-progress", *over]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "modevo corpus align" in err


def test_real_rendering_of_a_text_corpus_is_one_clear_error(novels, cache):
    cfg = load(CorpusConfig, None, [f"source.paths=[{novels}]", "source.max_sentences_per_document=4", "num_proc=1"])
    build(cfg, progress=False)
    with pytest.raises(InputError, match="corpus 'default' is text: set source.recordings"):
        build_rendering(cfg, "real", progress=False)
