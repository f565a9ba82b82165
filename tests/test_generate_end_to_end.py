"""The continuation column end to end: each family's to_symbols hook reads a known utterance back, `modevo
sample` then `modevo judge` on tiny text-char and phone runs write judged.json with finite numbers, and the
report's Table 4 and Table 3 carry the continuation PPL."""

import json
import math

import numpy as np
import pytest

from conftest import novels_workspace, train_tiny
from modevo.cli import main
from modevo.config import load
from modevo.generate.evaluate import Resources, WordReader, paired_ppl_delta
from modevo.generate.lexicon_decoder import collapse_repeats, error_rate
from modevo.report.collect import Run
from modevo.report.tables import NOT_JUDGED, table3, table4
from modevo.train.config import TrainStageConfig
from modevo.views.build import ViewContext, encoder_and_inputs
from modevo.views.encode import RepeatEncoder, UnitBpeEncoder, span_units, unit_text
from modevo.views.registry import ViewFamily, parse_view


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "e2e")


@pytest.fixture(scope="module")
def char_run(workdir):
    return train_tiny(workdir, "text-char")


@pytest.fixture(scope="module")
def phone_run(workdir):
    return train_tiny(workdir, "phone")


@pytest.fixture(scope="module")
def ctx(char_run):
    return ViewContext(load(TrainStageConfig, char_run / "config.yaml"), progress=False)


def _flat(row):
    return [p for w in row["phones"] for p in w]


@pytest.mark.parametrize("view", ["text-char", "text-bpe", "phone", "phone-bpe"])
def test_to_symbols_reads_a_known_utterance_back_as_its_words(ctx, view):
    spec = parse_view(view)
    encoder, _, _ = encoder_and_inputs(spec, ctx)
    reader = WordReader(spec, encoder, Resources(ctx, 3))
    rows = [r for r in ctx.iter_rows("train")][:8]  # in the lexicon and the n-gram: the decoder must recover them
    for row in rows:
        syms, kind = spec.view_family.to_symbols(spec, encoder, encoder.encode(row))
        want = list("".join(row["words"])) if kind == "letters" else _flat(row)
        assert [s for s in syms if s != ViewFamily.WORD_BREAK] == want
    wer = error_rate((list(r["words"]), reader.words(encoder.encode(r))) for r in rows)["rate"]
    assert wer <= 0.1


def test_to_symbols_of_frame_views(ctx):
    row = next(r for r in ctx.iter_rows("train") if len(r["words"]) >= 3)
    phones = _flat(row)
    n = len(phones)
    rendering = {"start_ms": (100 + 60 * np.arange(n)).tolist(), "durations_ms": [60.0] * n}
    spec = parse_view("phone-repeat@varied")
    enc = RepeatEncoder(spec, ctx.stage.views)
    ids = enc.encode(row, rendering=rendering)
    assert len(ids) == 3 * n  # 60 ms = 3 frames at 50 Hz
    syms, kind = spec.view_family.to_symbols(spec, enc, ids)
    assert kind == "phones" and syms == collapse_repeats(phones)

    units = np.random.default_rng(0).integers(0, 20, 3 * n + 20)
    for name in ("speech@varied/mel-kmeans", "speech-dedup@varied/mel-kmeans"):
        spec = parse_view(name)
        enc = spec.view_family.encoder(spec, ctx.stage.views, n_units=20)
        syms, kind = spec.view_family.to_symbols(spec, enc, enc.encode(row, rendering=rendering, units=units))
        span = span_units(units, rendering, 20.0).tolist()
        assert kind == "units" and syms == (collapse_repeats(span) if "dedup" in name else span)


def test_to_symbols_of_unit_bpe(ctx, tmp_path):
    from modevo.views.bpe import train_bpe

    rng = np.random.default_rng(1)
    sentences = [unit_text(rng.integers(0, 12, 80)) for _ in range(200)]
    folder = train_bpe(sentences, 40, tmp_path, "speech-bpe", 1000)
    spec = parse_view("speech-bpe@varied/mel-kmeans")
    enc = UnitBpeEncoder(spec, ctx.stage.views, folder)
    units = rng.integers(0, 12, 50)
    syms, kind = spec.view_family.to_symbols(spec, enc, enc.encode_units(units))
    assert kind == "units" and syms == units.tolist()


def _sample_and_judge(run):
    assert main(["sample", "--run", str(run), "--prompts", "5", "--seeds", "2", "--max-seconds", "2",
                 "--no-progress"]) == 0
    assert main(["judge", "--run", str(run), "--eval-rows", "15", "--n-boot", "300", "--no-progress"]) == 0


@pytest.fixture(scope="module")
def judged(char_run, phone_run):
    """Both tiny runs sampled and judged once, for every test of the module (none depends on another's order)."""
    runs = {"char": char_run, "phone": phone_run}
    for run in runs.values():
        _sample_and_judge(run)
    return runs


def _judged_json(run, capsys):
    """judged.json of a run, after checking `modevo judge` (reusing it) prints the headline line."""
    assert main(["judge", "--run", str(run), "--eval-rows", "15", "--n-boot", "300", "--no-progress"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "continuation PPL" in line and "round-trip WER" in line
    return json.loads(next(run.glob("samples/*/judged.json")).read_text())


def test_sample_then_judge_writes_finite_numbers(judged, capsys):
    out = {k: _judged_json(run, capsys) for k, run in judged.items()}
    for name, j in out.items():
        p = j["summary"]["perplexity"]
        assert all(math.isfinite(p[k]) for k in ("mean", "lo", "hi")) and p["lo"] <= p["mean"] <= p["hi"]
        assert p["n_prompts"] == j["prompts"] >= 2 and j["samples"] == 2 * j["prompts"]
        e = j["transcription_error"]
        assert 0 <= e["round_trip_wer"] < 0.5 and 0 <= e["decoder_wer"] < 0.5 and e["utterances"] == 15
        assert j["judge"]["judge_hash"] and j["reader"]["decoder"]["content_hash"]
        assert len(j["per_sample"]) == j["samples"]
        assert math.isfinite(j["summary"]["distinct_2"]["mean"])
        ref = j["reference_perplexity"]  # the judge on the prompts' true continuations: one per prompt
        assert ref["n_prompts"] == j["prompts"] and ref["lo"] <= ref["mean"] <= ref["hi"]
    # same prompts, same judge: the reference does not depend on the view
    assert out["char"]["reference_perplexity"]["mean"] == pytest.approx(out["phone"]["reference_perplexity"]["mean"])
    assert out["char"]["reader"]["decoder"]["kind"] == "letters" and out["phone"]["reader"]["decoder"]["kind"] == "phones"
    assert out["char"]["judge"]["judge_hash"] == out["phone"]["judge"]["judge_hash"]  # one corpus, one judge
    # a rerun reuses judged.json
    assert main(["judge", "--run", str(judged["char"]), "--no-progress", "--eval-rows", "15", "--n-boot", "300"]) == 0
    d = paired_ppl_delta(out["char"], out["phone"], n_boot=300)
    assert d["delta_lo"] <= d["delta"] <= d["delta_hi"] and d["n_prompts"] == out["char"]["prompts"]


def _run(folder, view):
    ckpt = sorted((folder / "checkpoints").glob("tokens-*.pt"))[-1].stem
    return Run("id-" + view, folder, view, 0, {}, {}, {}, ckpt)


def test_report_gets_the_continuation_column(judged, tmp_path):
    conditions = {"text-char": [_run(judged["char"], "text-char")], "phone": [_run(judged["phone"], "phone")]}
    rows = table4(conditions)
    assert all("[" in r["continuation PPL"] and "[" in r["continuation PPL reference"] for r in rows)
    assert rows[0]["continuation PPL paper*"] == "54.6" and "round-trip WER" in rows[0]["transcription error"]
    t3 = [r for r in table3(conditions) if r["task"] == "continuation PPL"]
    assert len(t3) == 1 and t3[0]["factor"] == "A" and t3[0]["paper* rel %"] == "+27"
    assert "paired prompt bootstrap" in t3[0]["verdict"]
    # a condition without judged.json: no value, nothing breaks
    bare = tmp_path / "bare"
    bare.mkdir()
    rows = table4({**conditions, "text-bpe": [Run("x", bare, "text-bpe", 0, {}, {}, {}, "tokens-1")]})
    assert rows[-1]["continuation PPL"] == NOT_JUDGED
