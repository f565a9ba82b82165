"""Generated phones and units back to words, offline: the lexicon decoder (phones → words), the unit
recogniser (units → phones), their error rates, and save/load."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import novels_workspace, tiny_run_overrides
from modevo.corpus import synth
from modevo.errors import InputError
from modevo.generate.lexicon_decoder import (LexiconDecoder, collapse_repeats, edit_distance, error_rate,
                                             evaluate_decoder, word_error_rate)
from modevo.generate.recogniser import LABELS, UnitRecogniser, evaluate_recogniser, labelled_frames

ROOT = Path(__file__).resolve().parent.parent
needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")

# cmudict's pronunciations, stress removed
LEXICON = {
    "the": "DH AH", "a": "AH", "cat": "K AE T", "dog": "D AO G", "sat": "S AE T", "ran": "R AE N",
    "on": "AA N", "to": "T UW", "mat": "M AE T", "log": "L AO G", "house": "HH AW S", "old": "OW L D",
    "man": "M AE N", "saw": "S AO", "around": "AH R AW N D", "round": "R AW N D", "went": "W EH N T",
}
SENTENCES = [
    "the cat sat on the mat", "the dog sat on the log", "a cat ran to the old house",
    "the old man saw the dog", "the dog ran around the house", "a man went to the old house",
    "the cat saw a round mat", "the man sat on a log",
]


def row(sentence: str, split: str = "train") -> dict:
    words = sentence.split()
    return {"id": sentence, "split": split, "words": words, "phones": [LEXICON[w].split() for w in words]}


def phones_of(sentence: str) -> list[str]:
    return [p for w in sentence.split() for p in LEXICON[w].split()]


@pytest.fixture(scope="module")
def decoder():
    return LexiconDecoder.from_rows([row(s) for s in SENTENCES], order=3)


# -- phone strings and error rates ----------------------------------------------------------------------------
def test_collapse_repeats_merges_runs_and_doubled_phones_across_words():
    assert collapse_repeats(["DH", "DH", "AH", "K", "K", "K", "AE", "T"]) == ["DH", "AH", "K", "AE", "T"]
    # "this sound": the S ending one word and the S starting the next cannot be told from one long S
    assert collapse_repeats(["IH", "S", "S", "S", "S", "AW"]) == ["IH", "S", "AW"]
    assert collapse_repeats([]) == []


def test_edit_distance_and_error_rates_on_hand_made_cases():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a", "b"]) == 2 and edit_distance(["a"], []) == 1
    assert word_error_rate("the cat sat".split(), "the bat sat down".split()) == pytest.approx(2 / 3)
    assert word_error_rate([], []) == 0.0 and word_error_rate([], ["x"]) == 1.0
    r = error_rate([("a b c d".split(), "a b c d".split()), ("e f".split(), "e".split())])
    assert r == {"rate": pytest.approx(1 / 6), "errors": 1, "n_ref": 6, "n": 2, "exact": 1}  # corpus-level
    per = error_rate([(["K", "AE", "T"], ["K", "AH", "T", "S"])])
    assert per["rate"] == pytest.approx(2 / 3)


# -- the lexicon decoder --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sentence", ["the cat sat on the mat", "the dog ran around the house"])
def test_decoder_recovers_a_clean_phone_string(decoder, sentence):
    assert decoder.decode(phones_of(sentence)) == sentence.split()
    assert decoder.decode(" ".join(phones_of(sentence))) == sentence.split()  # a space-separated string too


def test_decoder_recovers_a_sentence_with_one_phone_substituted_deleted_or_inserted(decoder):
    clean = phones_of("the cat sat on the mat")
    substituted = [("G" if p == "K" else p) for p in clean]  # "G AE T" is no word
    deleted = clean[:2] + clean[3:]  # "the AE T sat": the K of cat missing
    inserted = clean[:5] + ["Z"] + clean[5:]  # a stray Z after "cat"
    for phones in (substituted, deleted, inserted):
        assert phones != clean
        assert decoder.decode(phones) == "the cat sat on the mat".split()


def test_decoder_needs_its_language_model_to_segment(decoder):
    """AH R AW N D is "around" and "a round" alike: only the word n-gram can tell them apart."""
    assert phones_of("around") == phones_of("a round")
    assert decoder.decode(phones_of("the dog ran around the house")) == "the dog ran around the house".split()
    assert decoder.decode(phones_of("the cat saw a round mat")) == "the cat saw a round mat".split()


def test_decoder_bad_input_is_one_clear_error(decoder):
    assert decoder.decode([]) == [] and decoder.decode("") == []
    with pytest.raises(InputError, match=r"unknown phone 'XX' at position 1"):
        decoder.decode(["DH", "XX"])
    with pytest.raises(InputError, match=r"unknown phone 'AH0'.*without stress"):
        decoder.decode(["DH", "AH0"])
    with pytest.raises(InputError, match="no words with phones"):
        LexiconDecoder.from_rows([])


def test_evaluate_decoder_counts_errors_and_unknown_words(decoder):
    held = [row("the dog sat on the mat", "test"), row("the cat ran to the log", "test")]
    r = evaluate_decoder(decoder, held)
    assert r["wer"] == 0.0 and r["n_words"] == 12 and r["exact_sentences"] == 1.0 and r["oov_words"] == 0
    LEXICON["zebra"] = "Z IY B R AH"
    try:
        r = evaluate_decoder(decoder, [row("the zebra sat on the mat", "test")])
    finally:
        del LEXICON["zebra"]
    assert r["oov_words"] == 1 and 0 < r["wer"] <= 1 and r["exact_sentences"] == 0.0


def test_decoder_save_load_round_trip(decoder, tmp_path):
    folder = decoder.save(tmp_path / "decoders")
    assert folder.name == decoder.content_hash[:16] and decoder.save(tmp_path / "decoders") == folder
    loaded = LexiconDecoder.load(folder)
    assert loaded.content_hash == decoder.content_hash and loaded.settings == decoder.settings
    noisy = [("G" if p == "K" else p) for p in phones_of("the cat sat on the mat")]
    for s in SENTENCES:
        assert loaded.decode(phones_of(s)) == decoder.decode(phones_of(s))
    assert loaded.decode(noisy) == decoder.decode(noisy)
    assert LexiconDecoder.load(folder, beam=4).beam == 4
    # another corpus, another folder
    other = LexiconDecoder.from_rows([row(s) for s in SENTENCES[:-1]])
    assert other.content_hash != decoder.content_hash
    (folder / "lexicon.json").write_text("{}")
    with pytest.raises(InputError, match="changed since it was saved"):
        LexiconDecoder.load(folder)
    with pytest.raises(InputError, match="not a saved lexicon decoder"):
        LexiconDecoder.load(tmp_path)


# -- the unit recogniser --------------------------------------------------------------------------------------
def synthetic_utterances(n: int, seed: int):
    """(corpus row, rendering row, units) whose unit at each frame IS its label's index (SIL in the pauses):
    the units contain the answer, so a working recogniser is perfect on them."""
    rng = np.random.default_rng(seed)
    phones = LABELS[:-1]
    out = []
    for i in range(n):
        seq = [phones[rng.integers(len(phones))]]
        while len(seq) < rng.integers(5, 15):
            p = phones[rng.integers(len(phones))]
            if p != seq[-1]:  # a doubled phone would collapse into one
                seq.append(p)
        durations = rng.integers(2, 7, len(seq)) * 20.0  # whole 20 ms frames
        pauses = rng.choice([0.0, 0.0, 0.0, 60.0], len(seq))  # a word pause (SIL) after some phones
        starts = 100.0 + np.concatenate([[0], np.cumsum(durations + pauses)[:-1]])  # 100 ms of leading silence
        n_frames = int((starts[-1] + durations[-1] + 100) // 20)
        units = np.full(n_frames, LABELS.index("SIL"))
        for p, s, d in zip(seq, starts, durations):
            units[int(s // 20):int((s + d) // 20)] = LABELS.index(p)
        corpus_row = {"id": f"u{i}", "words": [f"w{i}"], "phones": [seq]}
        out.append((corpus_row, {"id": f"u{i}", "start_ms": starts.tolist(), "durations_ms": durations.tolist()},
                    units))
    return out


SMALL = {"dim": 16, "channels": 32, "layers": 2, "epochs": 4, "lr": 1e-2, "batch_windows": 8, "window_frames": 64}


@pytest.fixture(scope="module")
def label_recogniser():
    return UnitRecogniser(len(LABELS), rendering="toy", tokenizer_hash="identity", **{**SMALL, "epochs": 10}).fit(
        synthetic_utterances(150, seed=0))


def test_labelled_frames_follow_the_alignment_inside_the_phone_span():
    corpus_row, rendering, units = synthetic_utterances(1, seed=3)[0]
    u, y = labelled_frames(corpus_row, rendering, units, 50.0)
    assert len(u) == len(units) - 10  # 100 ms of silence dropped at each end, as the speech views drop it
    assert (u == y).all()  # the toy units are their labels
    assert LABELS[y[0]] == corpus_row["phones"][0][0]


def test_recogniser_learns_units_that_contain_the_label(label_recogniser):
    r = evaluate_recogniser(label_recogniser, None, synthetic_utterances(30, seed=1))
    assert r["frame_accuracy"] > 0.99 and r["per"] < 0.01 and r["utterances"] == 30
    assert label_recogniser.stats["train_frame_accuracy"] > 0.95
    _, rendering, units = synthetic_utterances(1, seed=2)[0]
    expected = collapse_repeats([p for p in np.asarray(LABELS)[units].tolist() if p != "SIL"])
    assert label_recogniser.phones(units) == expected


def test_an_untrained_recogniser_is_not_perfect():
    """The check above can fail: the same evaluation of random weights is far from perfect."""
    rec = UnitRecogniser(len(LABELS), **SMALL)
    r = evaluate_recogniser(rec, None, synthetic_utterances(10, seed=1))
    assert r["frame_accuracy"] < 0.5 and r["per"] > 0.5


def test_recogniser_training_is_seeded():
    data = synthetic_utterances(20, seed=4)
    a = UnitRecogniser(len(LABELS), **{**SMALL, "epochs": 1}).fit(data)
    b = UnitRecogniser(len(LABELS), **{**SMALL, "epochs": 1}).fit(data)
    c = UnitRecogniser(len(LABELS), **{**SMALL, "epochs": 1, "seed": 1}).fit(data)
    for k, v in a.model.state_dict().items():
        assert (v == b.model.state_dict()[k]).all()
    assert a.content_hash == b.content_hash != c.content_hash
    assert any((v != c.model.state_dict()[k]).any() for k, v in a.model.state_dict().items())


def test_recogniser_bad_input_is_one_clear_error(label_recogniser):
    with pytest.raises(InputError, match=r"unit id 40 is outside 0\.\.39.*subtract 1"):
        label_recogniser.phones(np.array([1, 40]))
    assert label_recogniser.phones(np.zeros(0, np.int64)) == []
    with pytest.raises(InputError, match="no frames to train"):
        UnitRecogniser(len(LABELS), **SMALL).fit_frames([])


def test_recogniser_save_load_round_trip(label_recogniser, tmp_path):
    folder = label_recogniser.save(tmp_path / "recognisers")
    assert folder.name == label_recogniser.content_hash[:16]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["settings"]["tokenizer_hash"] == "identity" and manifest["settings"]["rendering"] == "toy"
    assert manifest["settings"]["rate_hz"] == 50.0 and manifest["trained_on"]["frames"] > 0
    loaded = UnitRecogniser.load(folder)
    assert loaded.content_hash == label_recogniser.content_hash
    for _, _, units in synthetic_utterances(5, seed=5):
        assert (loaded.frame_labels(units) == label_recogniser.frame_labels(units)).all()
    np.savez(folder / "weights.npz", nothing=np.zeros(1))
    with pytest.raises(InputError, match="changed since it was saved"):
        UnitRecogniser.load(folder)


# -- end to end on a tiny built corpus --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "generate-words")


@needs_espeak
def test_decoder_and_recogniser_on_a_tiny_built_corpus(workspace, tmp_path):
    from modevo.config import load
    from modevo.generate.recogniser import train_recogniser
    from modevo.train.config import TrainStageConfig
    from modevo.views.build import ViewContext

    tmp, novels = workspace
    stage = load(TrainStageConfig, ROOT / "configs/train/smoke.yaml", tiny_run_overrides(novels, tmp))
    ctx = ViewContext(stage, progress=False)
    decoder = LexiconDecoder.from_rows(ctx.iter_rows("train"))
    clean = evaluate_decoder(decoder, ctx.iter_rows("test"))
    print("decoder on clean test phones:", clean)
    assert clean["n_sentences"] > 0 and clean["wer"] < 0.2  # the tiny corpus repeats its sentences

    rec = train_recogniser(ctx, "fixed", "mel-kmeans", **{**SMALL, "epochs": 3})
    units_manifest = ctx.units("fixed", "mel-kmeans")[1]
    assert rec.tokenizer_hash == units_manifest["tokenizer_hash"] and rec.vocab_size == units_manifest["vocab_size"]
    r = evaluate_recogniser(rec, decoder, ctx.rendered_rows("fixed", "test", "mel-kmeans"))
    print("recogniser on fixed test units:", r)
    assert r["utterances"] > 0 and r["n_phones"] > 0 and r["n_words"] > 0
    assert all(math.isfinite(r[k]) and r[k] >= 0 for k in ("per", "wer", "frame_accuracy"))
    assert r["frame_accuracy"] > 1 / len(LABELS)  # above chance even with 8 units
    folder = rec.save(tmp_path)
    again = evaluate_recogniser(UnitRecogniser.load(folder), decoder, ctx.rendered_rows("fixed", "test", "mel-kmeans"))
    assert again == r
