"""`modevo sample` on tiny trained runs: held-out prompts that are the same utterances in every view, seeded
continuations independent of batching, the KV cache against a plain forward, nucleus filtering, greedy
limits, caching of finished samples, and one clear line for bad input."""

import json

import numpy as np
import pytest
import torch

from conftest import novels_workspace, train_tiny
from modevo.cli import main
from modevo.config import load
from modevo.corpus import synth
from modevo.errors import ConfigError
from modevo.frames import frame_index, phone_frames
from modevo.generate.prompts import cut_rendering, cut_row, make_prompts, prompts_hash
from modevo.generate.sample import (SampleConfig, continue_prompts, generator_seed, max_new_tokens, nucleus_probs,
                                    sample_next, sample_run)
from modevo.score.evaluate import checkpoints_of, load_checkpoint
from modevo.train.config import TrainStageConfig
from modevo.views.build import ViewContext, encoder_and_inputs
from modevo.views.registry import parse_view

needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")
SMALL = dict(prompts=4, seeds=2, max_seconds=1.0)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "sample")


@pytest.fixture(scope="module")
def char_run(workdir):
    return train_tiny(workdir, "text-char")


@pytest.fixture(scope="module")
def char_parts(char_run):
    """(model, encoder, prompts, context) of the text-char run, as sample_run builds them."""
    stage = load(TrainStageConfig, char_run / "config.yaml")
    spec = parse_view(stage.train.view, stage.views.tokenizer)
    ctx = ViewContext(stage, progress=False)
    encoder, _, _ = encoder_and_inputs(spec, ctx)
    model, _ = load_checkpoint(checkpoints_of(char_run, "final")[0], spec.name, encoder.vocab)
    return model.float().eval(), encoder, make_prompts(ctx, spec, encoder, 6, 3, 0), ctx


def _greedy_without_cache(model, prompt: np.ndarray, max_tokens: int) -> list[int]:
    """The argmax continuation, every step a full forward over the whole sequence (no cache)."""
    seq, out = [0, *prompt.tolist()], []
    with torch.no_grad():
        while len(out) < max_tokens and len(seq) < model.config.max_seq_len:
            token = int(model(torch.tensor([seq]))[0, -1].argmax())
            if token == 0:
                break
            out.append(token)
            seq.append(token)
    return out


# -- the draw -------------------------------------------------------------------------------------------------
def test_nucleus_keeps_the_smallest_top_set_reaching_top_p():
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3], dtype=torch.float64)
    assert nucleus_probs(probs, 0.5).tolist() == pytest.approx([0, 1, 0, 0])  # 0.5 alone reaches 0.5
    assert nucleus_probs(probs, 0.7).tolist() == pytest.approx([0, 0.625, 0, 0.375])
    assert nucleus_probs(probs, 0.79).tolist() == pytest.approx([0, 0.625, 0, 0.375])
    assert nucleus_probs(probs, 0.81).tolist() == pytest.approx([0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95])
    assert nucleus_probs(probs, 1.0).tolist() == pytest.approx(probs.tolist())
    assert nucleus_probs(probs, 1e-9).tolist() == pytest.approx([0, 1, 0, 0])  # the top token always stays
    tie = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
    assert nucleus_probs(tie, 0.3).tolist() == pytest.approx([1, 0, 0])  # ties: the lower id first
    batch = torch.stack([probs, probs.flip(0)])  # row by row
    np.testing.assert_allclose(nucleus_probs(batch, 0.7).numpy(), [[0, 0.625, 0, 0.375], [0.375, 0, 0.625, 0]])

def test_draws_follow_the_filtered_distribution_exactly():
    logits = torch.log(torch.tensor([0.15, 0.5, 0.05, 0.3], dtype=torch.float64)).float()
    n = 2000
    uniforms = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # an even grid: counts are the probabilities
    drawn = sample_next(logits.expand(n, 4), 1.0, 0.7, uniforms)
    counts = np.bincount(drawn.numpy(), minlength=4) / n
    assert counts.tolist() == pytest.approx([0, 0.625, 0, 0.375], abs=1e-3)
    hot = sample_next(logits.expand(n, 4), 0.5, 1.0, uniforms)  # temperature 0.5 squares the odds
    p = np.array([0.15, 0.5, 0.05, 0.3]) ** 2
    assert (np.bincount(hot.numpy(), minlength=4) / n).tolist() == pytest.approx((p / p.sum()).tolist(), abs=1e-3)
    edge = sample_next(logits.flip(0)[None], 1.0, 0.7, torch.tensor([1.0]))  # a draw rounded onto the CDF's total
    assert edge.tolist() == [2]  # the last kept token, never the filtered one after it


def test_max_seconds_in_view_tokens():
    assert max_new_tokens(parse_view("phone-repeat@varied"), {"tokens_per_word": 20.0}, 10) == 500
    assert max_new_tokens(parse_view("phone-repeat@varied:25hz"), {"tokens_per_word": 20.0}, 10) == 250
    assert max_new_tokens(parse_view("text-char"), {"tokens_per_word": 4.0}, 10) == 108  # 10 s × 2.7 words/s × 4
    assert max_new_tokens(parse_view("text-bpe"), {"tokens_per_word": 1.2}, 2) == 7


def test_settings_are_checked():
    for kw, msg in ((dict(top_p=0.0), "--top-p must be in (0, 1]"), (dict(top_p=1.5), "--top-p must be in (0, 1]"),
                    (dict(temperature=0.0), "--temperature must be above 0"), (dict(prompts=0), "--prompts must be"),
                    (dict(seeds=0), "--seeds must be"), (dict(max_seconds=-1.0), "--max-seconds must be")):
        with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
            SampleConfig(**kw)


# -- decoding on a trained model ------------------------------------------------------------------------------
def test_samples_are_a_function_of_seed_and_prompt_alone(char_parts):
    model, _, prompts, _ = char_parts
    ids = [p.ids for p in prompts for _ in range(3)]
    seeds = [generator_seed(s, p.id) for p in prompts for s in range(3)]
    whole = continue_prompts(model, ids, seeds, 1.0, 0.9, 40, batch_size=64, keep_logits=True)
    one_by_one = continue_prompts(model, ids, seeds, 1.0, 0.9, 40, batch_size=1, keep_logits=True)
    reversed_ = continue_prompts(model, ids[::-1], seeds[::-1], 1.0, 0.9, 40, batch_size=5, keep_logits=True)[::-1]
    assert [c.tokens for c in whole] == [c.tokens for c in one_by_one] == [c.tokens for c in reversed_]
    assert all(np.array_equal(a.logits, b.logits) and np.array_equal(a.logits, c.logits)
               for a, b, c in zip(whole, one_by_one, reversed_))  # the logits too, bit for bit
    assert len({tuple(c.tokens) for c in whole}) > len(prompts)  # seeds differ: not one continuation per prompt
    other = continue_prompts(model, ids, [generator_seed(s + 7, p.id) for p in prompts for s in range(3)],
                             1.0, 0.9, 40)
    assert [c.tokens for c in other] != [c.tokens for c in whole]


def test_near_zero_temperature_or_top_p_is_the_argmax_continuation(char_parts):
    model, _, prompts, _ = char_parts
    ids = [p.ids for p in prompts]
    seeds = [generator_seed(0, p.id) for p in prompts]
    greedy = [_greedy_without_cache(model, p, 25) for p in ids]
    assert [c.tokens for c in continue_prompts(model, ids, seeds, 1e-6, 1.0, 25)] == greedy
    assert [c.tokens for c in continue_prompts(model, ids, seeds, 1.0, 1e-9, 25)] == greedy
    assert [c.tokens for c in continue_prompts(model, ids, seeds, 1.0, 1.0, 25)] != greedy  # really sampling


def test_cached_steps_equal_a_forward_over_the_whole_sequence(char_parts):
    model, _, prompts, _ = char_parts
    ids = [p.ids for p in prompts]
    found = continue_prompts(model, ids, [generator_seed(1, p.id) for p in prompts], 1.0, 1.0, 30, keep_logits=True)
    assert any(len(c.tokens) > 5 for c in found)
    for p, c in zip(ids, found):
        seq = np.concatenate([[0], p, c.tokens]).astype(np.int64)
        with torch.no_grad():
            full = model(torch.from_numpy(seq)[None])[0].numpy()  # (T, V)
        steps = full[len(p):len(p) + len(c.logits)]  # the positions that predict each drawn token
        assert c.logits.shape == steps.shape
        np.testing.assert_allclose(c.logits, steps, atol=1e-4, rtol=0)
        assert (c.stop == "separator") == (len(c.logits) == len(c.tokens) + 1)


def test_the_window_caps_a_continuation(char_parts):
    model, _, prompts, _ = char_parts
    window = model.config.max_seq_len
    long_prompt = np.resize(prompts[0].ids, window - 4)
    c, = continue_prompts(model, [long_prompt], [1], 1.0, 1.0, 1000)
    assert len(c.tokens) <= 3 and (c.stop == "context" or c.stop == "separator")
    assert len(long_prompt) + 1 + len(c.tokens) <= window


# -- prompts --------------------------------------------------------------------------------------------------
def test_prompts_are_held_out_cut_after_k_words(char_parts):
    _, encoder, prompts, ctx = char_parts
    rows = {r["id"]: r for r in ctx.iter_rows("test")}
    assert len(prompts) == 6 and len({p.id for p in prompts}) == 6
    for p in prompts:
        row = rows[p.id]  # a test-split utterance, never trained on
        assert p.words == row["words"][:3] and p.words + p.reference_words == row["words"]
        assert len(p.reference_words) >= 2
        assert "".join(encoder.decode(p.ids)) == "".join(p.words)  # text-char, word boundaries off
    again = make_prompts(ctx, parse_view("text-char"), encoder, 6, 3, 0)
    assert prompts_hash(again) == prompts_hash(prompts)
    other = make_prompts(ctx, parse_view("text-char"), encoder, 6, 3, 1)
    assert [p.id for p in other] != [p.id for p in prompts]  # the selection seed picks other utterances
    fewer = make_prompts(ctx, parse_view("text-char"), encoder, 3, 3, 0)
    assert [p.id for p in fewer] == [p.id for p in prompts[:3]]  # a prefix of the same order


@needs_espeak
def test_the_same_utterances_prompt_text_and_phone_repeat_runs(workdir, char_run):
    repeat_run = train_tiny(workdir, "phone-repeat@varied")
    out = {}
    for run in (char_run, repeat_run):
        result = sample_run(run, SampleConfig(**SMALL), progress=False)
        out[run] = result
        lines = result.samples
        assert len(lines) == 8 and [(x["prompt_id"], x["seed"]) for x in lines[:2]] == [(lines[0]["prompt_id"], 0),
                                                                                       (lines[0]["prompt_id"], 1)]
    text, frames = out[char_run], out[repeat_run]
    key = lambda r: [(x["prompt_id"], x["prompt_words"], x["reference_words"]) for x in r.samples]  # noqa: E731
    assert key(text) == key(frames)
    assert frames.settings["max_new_tokens"] == 50  # 1 s at 50 Hz
    assert text.settings["max_new_tokens"] != 50
    # phone-repeat's prompt is the first three words' phones, each repeated for its own frames
    stage = load(TrainStageConfig, repeat_run / "config.yaml")
    spec = parse_view(stage.train.view, stage.views.tokenizer)
    ctx = ViewContext(stage, progress=False)
    encoder, _, _ = encoder_and_inputs(spec, ctx)
    wanted = {x["prompt_id"]: x["prompt_ids"] for x in frames.samples}
    seen = 0
    for row, rendering, _ in ctx.rendered_rows("varied", "test"):
        if row["id"] not in wanted:
            continue
        seen += 1
        phones = [ph for word in row["phones"][:3] for ph in word]
        ids = np.asarray(wanted[row["id"]])
        frames_per_phone = np.maximum(1, phone_frames(rendering["start_ms"], rendering["durations_ms"])[:len(phones)])
        assert np.array_equal(ids, np.repeat([encoder.index[ph] for ph in phones], frames_per_phone))
        assert len(ids) < len(encoder.encode(row, rendering=rendering))  # cut: not the whole utterance
        assert np.array_equal(ids, encoder.encode(cut_row(row, 3), rendering=cut_rendering(rendering, len(phones))))
    assert seen == 4



@needs_espeak
def test_speech_prompts_end_where_the_kth_words_last_phone_ends(char_run, char_parts):
    stage = load(TrainStageConfig, char_run / "config.yaml")  # the same corpus, heard as speech-fixed units
    spec = parse_view("speech-fixed", stage.views.tokenizer)
    ctx = ViewContext(stage, progress=False)
    encoder, _, _ = encoder_and_inputs(spec, ctx)
    prompts = {p.id: p for p in make_prompts(ctx, spec, encoder, 4, 3, 0)}
    assert list(prompts) == [p.id for p in char_parts[2][:4]]  # the text view's utterances, in its order
    seen = 0
    for row, rendering, units in ctx.rendered_rows("fixed", "test", spec.tokenizer):
        if row["id"] not in prompts:
            continue
        seen += 1
        n = sum(len(p) for p in row["phones"][:3])
        start = frame_index(rendering["start_ms"][0])
        end = frame_index(rendering["start_ms"][n - 1] + rendering["durations_ms"][n - 1])
        whole = frame_index(rendering["start_ms"][-1] + rendering["durations_ms"][-1])
        assert start < end < whole
        assert np.array_equal(prompts[row["id"]].ids, np.asarray(units)[start:end] + 1)  # unit u is token u + 1
    assert seen == 4

# -- a run's samples on disk ----------------------------------------------------------------------------------
def test_finished_samples_are_reused_and_changed_settings_sample_again(char_run, char_parts, monkeypatch):
    encoder = char_parts[1]
    first = sample_run(char_run, SampleConfig(**SMALL), progress=False)
    path = first.folder / "samples.jsonl"
    assert first.folder == char_run / "samples" / checkpoints_of(char_run, "final")[0].stem
    settings = json.loads((first.folder / "settings.json").read_text())
    for k in ("temperature", "top_p", "seeds", "prompts", "max_seconds", "prompt_words", "selection_seed", "view",
              "checkpoint", "code_version", "prompts_hash", "max_new_tokens"):
        assert k in settings, k
    line = json.loads(path.read_text().splitlines()[0])
    assert set(line) >= {"prompt_id", "seed", "prompt_ids", "continuation_ids", "continuation", "stopped_at_separator"}
    assert line["continuation"] == [encoder.vocab[i] for i in line["continuation_ids"]]

    def no_model(*a, **k):
        raise AssertionError("a finished sample file was sampled again")

    monkeypatch.setattr("modevo.score.evaluate.load_checkpoint", no_model)
    again = sample_run(char_run, SampleConfig(**SMALL), progress=False)
    assert again.reused and again.samples == first.samples
    assert sample_run(char_run, SampleConfig(**SMALL, batch_size=3), progress=False).reused  # speed only
    monkeypatch.undo()
    hotter = sample_run(char_run, SampleConfig(**{**SMALL, "temperature": 1.3}), progress=False)
    assert not hotter.reused and hotter.settings["temperature"] == 1.3
    assert [x["continuation_ids"] for x in hotter.samples] != [x["continuation_ids"] for x in first.samples]
    path.write_text(path.read_text()[:-10])  # a damaged file is never reused
    assert not sample_run(char_run, SampleConfig(**{**SMALL, "temperature": 1.3}), progress=False).reused


# -- the command ----------------------------------------------------------------------------------------------
def test_cli_samples_a_run(char_run, capsys):
    rc = main(["sample", "--run", str(char_run), "--prompts", "2", "--seeds", "3", "--max-seconds", "0.5",
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("\n") == 1 and "text-char" in out and "6 samples (2 prompts × 3 seeds)" in out
    folder = char_run / "samples" / checkpoints_of(char_run, "final")[0].stem
    assert len((folder / "samples.jsonl").read_text().splitlines()) == 6
    assert json.loads((folder / "settings.json").read_text())["max_seconds"] == 0.5


@pytest.mark.parametrize("args, message", [
    (["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    (["--top-p", "0"], "--top-p must be in (0, 1], got 0"),
    (["--temperature", "0"], "--temperature must be above 0, got 0"),
    (["--temperature", "-1"], "--temperature must be above 0, got -1"),
    (["--prompts", "0"], "--prompts must be at least 1, got 0"),
    (["--max-seconds", "0"], "--max-seconds must be above 0, got 0"),
    (["--seeds", "ten"], "argument --seeds: invalid int value: 'ten'"),
])
def test_cli_bad_values_are_one_line(char_run, capsys, args, message):
    try:
        rc = main(["sample", "--run", str(char_run), *args, "--no-progress"])
    except SystemExit as e:  # argparse's own refusals exit from the parser
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err, err


def test_cli_unknown_run_is_one_line(tmp_path, capsys):
    assert main(["sample", "--run", str(tmp_path / "nowhere" / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such run folder or checkpoint" in err
    (tmp_path / "empty").mkdir()
    assert main(["sample", "--run", str(tmp_path / "empty"), "--no-progress"]) == 2
    assert "is not a run folder (no config.yaml)" in capsys.readouterr().err
