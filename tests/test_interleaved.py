"""Text supervision of speech (issue 25, part 1): the interleaved view family mixes text-bpe pieces and units
of the same words in one vocabulary, is tested on speech-only items exactly as speech@R/T hears them, trains
at the same number of speech tokens (budget=speech-tokens) and from a text model (train.init_from)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import novels_workspace, train_tiny
from modevo.config import load, to_dict
from modevo.corpus import synth
from modevo.errors import InputError
from modevo.views.config import InterleaveConfig, ViewsConfig
from modevo.views.encode import SPEECH_MARK, TEXT_MARK, InterleavedEncoder, span_units
from modevo.views.registry import parse_view

ROOT = Path(__file__).resolve().parent.parent
needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")
WORDS = "the old man walked down to the river and sat on a stone near the water".split()


@pytest.fixture(scope="module")
def bpe_folder(tmp_path_factory):
    from modevo.views.bpe import train_bpe

    rng = np.random.default_rng(0)
    sentences = ["".join(rng.choice(WORDS, 8)) for _ in range(300)]  # boundaries off: words run together
    return train_bpe(sentences, 60, tmp_path_factory.mktemp("bpe"), "text-bpe", 1000)


def _utterance(uid: str, n_words: int, rng):
    """A row, its rendering (phones back to back after 100 ms of silence, a 60 ms pause between words) and
    50 Hz units covering it."""
    words = list(rng.choice(WORDS, n_words))
    phones = [["AH"] * int(rng.integers(1, 4)) for _ in words]
    starts, durs, t = [], [], 100.0
    for w in phones:
        for _ in w:
            d = float(rng.integers(40, 120))
            starts.append(t)
            durs.append(d)
            t += d
        t += 60.0
    units = rng.integers(0, 20, int(t / 20) + 10)
    return {"id": uid, "words": words, "phones": phones}, {"start_ms": starts, "durations_ms": durs}, units


def _encoder(bpe_folder, share=0.5, mean=3.0):
    cfg = ViewsConfig(interleave=InterleaveConfig(speech_share=share, mean_span_words=mean))
    return InterleavedEncoder(parse_view("interleaved@varied/mel-kmeans"), cfg, bpe_folder, n_units=20)


def test_spans_alternate_and_hold_the_words_text_and_units(bpe_folder):
    enc = _encoder(bpe_folder)
    rng = np.random.default_rng(1)
    text_mark, speech_mark = enc.index[TEXT_MARK], enc.index[SPEECH_MARK]
    assert len(enc.vocab) == 1 + enc.sp.get_piece_size() + 20 + 2 and enc.vocab[enc.unit_offset] == "u0"
    mixed = 0
    for i in range(40):
        row, rendering, units = _utterance(f"utt{i}", 12, rng)
        ids = enc.encode(row, rendering, units)
        spans = enc.spans(row)
        assert [m for m, _, _ in spans][::2] == [spans[0][0]] * len(spans[::2])  # alternating
        assert [m for m, _, _ in spans][1::2] == [m for m, _, _ in spans if m != spans[0][0]][:len(spans[1::2])]
        assert spans[0][1] == 0 and spans[-1][2] == 12 and all(a[2] == b[1] for a, b in zip(spans, spans[1:]))
        frames = enc.word_frames(row, rendering)
        want = []
        for modality, a, b in spans:
            if modality == "text":
                want += [text_mark, *enc.text_pieces(row["words"][a:b])]
            else:
                want += [speech_mark, *(units[frames[a, 0]:frames[b - 1, 1]] + enc.unit_offset)]
        assert ids.tolist() == want
        mixed += len(spans) > 1
        # every text span decodes back to its words
        assert enc.sp.decode((enc.text_pieces(row["words"][2:5]) - 1).tolist()) == "".join(row["words"][2:5])
        # seeded by the utterance: the same spans every time, whatever was encoded before
        assert enc.spans(row) == spans
    assert mixed >= 30


def test_share_of_spoken_words_follows_the_setting(bpe_folder):
    rng = np.random.default_rng(2)
    rows = [_utterance(f"u{i}", 15, rng) for i in range(400)]
    for share in (0.25, 0.5, 0.8):
        enc = _encoder(bpe_folder, share=share)
        for row, rendering, units in rows:
            enc.encode(row, rendering, units)
        stats = enc.stats()
        assert abs(stats["speech_word_share"] - share) < 0.06, (share, stats)
        assert 0 < stats["speech_token_share"] < 1


def test_items_and_speech_only_training_are_speech_ids_after_a_mark(bpe_folder):
    rng = np.random.default_rng(3)
    row, rendering, units = _utterance("x", 9, rng)
    speech_only = _encoder(bpe_folder, share=1.0)
    want = [speech_only.index[SPEECH_MARK], *(span_units(units, rendering, 20.0) + speech_only.unit_offset)]
    assert speech_only.encode(row, rendering, units).tolist() == want
    assert _encoder(bpe_folder).encode_item(row, rendering, units).tolist() == want  # items: speech, any share
    assert speech_only.stats()["speech_word_share"] == 1.0


def test_new_settings_at_their_defaults_leave_run_keys_alone():
    from modevo.train.config import TrainStageConfig
    from modevo.train.run import key_config

    stage = load(TrainStageConfig, ROOT / "configs/train/smoke.yaml")
    key = key_config(to_dict(stage))
    assert "interleave" not in key["views"] and "init_from" not in key["train"]  # keys of existing runs unchanged
    changed = key_config(to_dict(load(TrainStageConfig, ROOT / "configs/train/smoke.yaml",
                                      ["views.interleave.speech_share=0.3", "train.init_from=runs/x"])))
    assert changed["views"]["interleave"]["speech_share"] == 0.3 and changed["train"]["init_from"] == "runs/x"


def test_bad_share_is_one_line():
    from modevo.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="speech_share must be in"):
        InterleaveConfig(speech_share=0.0)


# -- warm start -------------------------------------------------------------------------------------------
def _gpt(vocab: list[str], seed: int):
    from modevo.train.model import GPT
    from modevo.train.model_config import ModelConfig

    torch.manual_seed(seed)
    return GPT(ModelConfig(vocab_size=len(vocab), d_model=16, n_layer=2, n_head=2, n_kv_head=1, max_seq_len=16))


def test_warm_start_copies_blocks_and_shared_token_rows(tmp_path):
    from modevo.train.run import warm_start

    src_vocab, vocab = ["<sep>", "a", "b", "c"], ["<sep>", "b", "u0", "a", "u1"]
    src = _gpt(src_vocab, 0)
    path = tmp_path / "tokens-000000000064.pt"
    torch.save({"state_dict": src.state_dict(), "model_config": dataclasses.asdict(src.config), "vocab": src_vocab,
                "view": "text-bpe", "tokens": 64}, path)
    model = _gpt(vocab, 1)
    fresh = model.tok_emb.weight.detach().clone()
    record = warm_start(model, path, vocab)
    emb, src_emb = model.tok_emb.weight.detach(), src.tok_emb.weight.detach()
    for i, t in enumerate(vocab):
        want = src_emb[src_vocab.index(t)] if t in src_vocab else fresh[i]
        assert torch.equal(emb[i], want), t
    blocks = [k for k in model.state_dict() if k.startswith("blocks.")]
    assert blocks and all(torch.equal(model.state_dict()[k], src.state_dict()[k]) for k in blocks)
    assert record["shared_tokens"] == 3 and record["view"] == "text-bpe" and len(record["sha256"]) == 64
    with pytest.raises(InputError, match="no run folder or checkpoint"):
        warm_start(model, tmp_path / "nothing", vocab)
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(InputError, match="is not a modevo milestone"):
        warm_start(model, tmp_path / "junk.pt", vocab)


# -- at smoke scale: build, train (from text, at equal speech tokens), score -----------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "interleaved")


@needs_espeak
def test_interleaved_trains_scores_and_warm_starts(workdir):
    import json

    from modevo.score.config import EvalConfig
    from modevo.score.evaluate import evaluate_run
    from modevo.tasks.registry import load_task
    from modevo.tasks.render import ItemRenderer
    from modevo.train.config import TrainStageConfig
    from modevo.views.build import load_view

    view = "interleaved@varied/mel-kmeans"
    run = train_tiny(workdir, view)
    built = load_view(next((workdir[0] / "cache").rglob("views/interleaved@varied_mel-kmeans-*")))
    m = built.manifest
    assert m["interleave"]["speech_share"] == 0.5 and 0 < m["speech_token_share"] < 1
    assert abs(m["speech_word_share"] - 0.5) < 0.15
    offset = m["unit_offset"]
    assert built.vocab[offset] == "u0" and built.vocab[-2:] == [TEXT_MARK, SPEECH_MARK]
    from modevo.train.run import expected_vocab

    assert expected_vocab(load(TrainStageConfig, run / "config.yaml"), view)[0] == len(built.vocab)

    # items: the speech view's units, shifted into the joint vocabulary after a speech mark
    stage = load(TrainStageConfig, run / "config.yaml")
    cfg = load(EvalConfig, ROOT / "configs/eval/smoke.yaml", [
        "tasks.names=[sblimp]", "tasks.blimp_paradigms=[anaphor_number_agreement]", "tasks.blimp_per_paradigm=6",
        "score.n_boot=200"])
    task = load_task("sblimp", cfg.tasks)
    mine = ItemRenderer(stage, view, max_len=stage.model.max_seq_len, progress=False).render(task, "fixed")
    speech = ItemRenderer(stage, "speech@varied/mel-kmeans", max_len=stage.model.max_seq_len,
                          progress=False).render(task, "fixed")
    assert len(mine.correct) == len(speech.correct) > 0
    for a, b in zip(mine.correct, speech.correct):
        assert a[0] == built.vocab.index(SPEECH_MARK) and (np.asarray(a[1:]) - offset).tolist() == (np.asarray(b) - 1).tolist()
    summaries = next(iter(evaluate_run(run, cfg, progress=False, log_mlflow=False).values()))
    assert summaries["eval/sblimp"]["view"] == view and summaries["eval/sblimp"]["rendered"] == 6

    # the same number of speech tokens: more tokens in all, by the measured share
    equal_speech = train_tiny(workdir, view, 2, "train.budget=speech-tokens")
    seen = json.loads((equal_speech / "run.json").read_text())["results"]["tokens_seen"]
    step = 4 * 32
    assert abs(seen - 2048 / m["speech_token_share"]) <= step

    # warm start: speech only, in the joint vocabulary, from the text-bpe run (text rows and blocks copied)
    text = train_tiny(workdir, "text-bpe")
    warm = train_tiny(workdir, view, 2, "views.interleave.speech_share=1.0", f"train.init_from={text}")
    record = json.loads((warm / "run.json").read_text())["init_from"]
    text_vocab = json.loads(next((workdir[0] / "cache").rglob("views/text-bpe-*/vocab.json")).read_text())
    assert record["view"] == "text-bpe" and record["shared_tokens"] == len(text_vocab)  # SEP + every piece
    assert any(c.startswith("blocks.") for c in record["copied"]) and not record["not_copied"]
    cold = train_tiny(workdir, view, 2, "views.interleave.speech_share=1.0")
    assert cold != warm  # init_from is part of the run's identity
