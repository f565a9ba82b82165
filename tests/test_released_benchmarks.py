"""The released benchmarks as inputs: sLM21 folders (gold.csv beside its wavs) and spoken StoryCloze audio,
scored from their own files by speech views and checked against an independent scorer written here from
the ZeroSpeech 2021 rules. Every fixture is written by the test in the released layout, with the project's
own synthesiser."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import novels_workspace, train_tiny
from modevo.cli import main
from modevo.config import load
from modevo.corpus import synth
from modevo.corpus.render import FALLBACK_VOICES
from modevo.errors import InputError
from modevo.score.config import EvalConfig
from modevo.score.evaluate import evaluate_run
from modevo.score.tracking import metric_name
from modevo.tasks.audio import AudioProblem, read_audio
from modevo.tasks.ipa import ipa_to_arpabet
from modevo.tasks.spoken_storycloze import load_spoken_storycloze
from modevo.tasks.zerospeech import load_lexical_gold, read_submission

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")

LEX_HEADER = "filename,id,voice,frequency,word,phones,length,correct"
SYN_HEADER = "filename,id,voice,type,subtype,correct,transcription"
# (id, frequency, word, its IPA, the pseudoword's IPA); one band is the official '>100'
LEX = [("1", "0", "cat", "k æ t", "k ɪ t"), ("2", "3", "ship", "ʃ ɪ p", "ʃ ʌ b"),
       ("3", "250", "house", "h aʊ s", "h aʊ f"), ("4", "12", "brother-in-law", "b ɹ ʌ ð ɚ ɪ n l ɔ", "b ɹ ʌ ð ɚ ɪ n l ɪ")]
SYN = [("1", "agreement", "simple", "the dog barks", "the dog bark"),
       ("2", "agreement", "simple", "the cats sleep", "the cats sleeps"),
       ("1", "island", "wh", "what did he see", "what did he see that")]
VOICES = {"Alex": "us1", "Bruce": "us2"}
STORIES = [("s1", ["The man went to the old house.", "He looked at the dark door.", "Nobody was at home."],
            "He went back to his family.", "The dog ate the moon."),
           ("s2", ["Watson sat at the table.", "It was a cold morning.", "He had a cup of tea."],
            "Then he read the paper.", "The table flew to the sea.")]


def _voice(v: str) -> str:
    return v if synth.backend_available("mbrola") else FALLBACK_VOICES.get(v, v)


def _phones(words: list[list[str]]) -> tuple[list[list[str]], list[list[int]]]:
    """ARPAbet words without stress digits → (phones, stress): stress 1 on the first vowel, as modevo's rule."""
    from modevo.tasks.render import _given_phones

    return _given_phones(words)


def speak(words: list[list[str]], voice: str, path: Path, rate: int = 16000, channels: int = 1) -> Path:
    phones, stress = _phones(words)
    audio = synth.render(phones, stress, synth.RenderParams(voice=_voice(voice))).audio.astype(np.float32) / 32768
    if rate != 16000:
        import torch

        from modevo.units.resample import resample

        audio = resample(torch.from_numpy(audio), 16000, rate).numpy()
    if channels > 1:
        audio = np.stack([audio] * channels, axis=1)
    sf.write(path, audio, rate, subtype="PCM_16")
    return path


def sentence_phones(text: str) -> list[list[str]]:
    from modevo.corpus.build import sentence_row
    from modevo.corpus.config import CorpusConfig

    row, reason = sentence_row(text, CorpusConfig())
    assert row is not None, reason
    return row["phones"]


def make_slm21(root: Path) -> Path:
    """<root>/lexical/dev and <root>/syntactic/dev as released: gold.csv beside one wav per filename. Item 1's
    two voices share one foil file (real gold files do this)."""
    lex, syn = root / "lexical" / "dev", root / "syntactic" / "dev"
    lex.mkdir(parents=True)
    syn.mkdir(parents=True)
    rows = []
    for item, freq, word, wipa, nipa in LEX:
        for v, mb in VOICES.items():
            nfile = "n1" if item == "1" else f"n{item}{v}"
            rows.append(f"w{item}{v},{item},{v},{freq},{word},{wipa},{len(wipa.split())},1")
            rows.append(f"{nfile},{item},{v},{freq},,{nipa},{len(nipa.split())},0")
            speak([ipa_to_arpabet(wipa)[0]], mb, lex / f"w{item}{v}.wav")
            if not (lex / f"{nfile}.wav").exists():
                speak([ipa_to_arpabet(nipa)[0]], mb, lex / f"{nfile}.wav")
    # a second foil for item 2 in one voice: item 2 has three pairs, the others two (the mean of item means
    # is then not the mean of pairs)
    rows.append("n2Alex2,2,Alex,3,,ʃ ʌ p,3,0")
    speak([ipa_to_arpabet("ʃ ʌ p")[0]], "us1", lex / "n2Alex2.wav")
    (lex / "gold.csv").write_text("\n".join([LEX_HEADER, *rows]) + "\n", encoding="utf-8")
    rows = []
    for item, typ, sub, good, bad in SYN:
        for v, mb in VOICES.items():
            for tag, text, correct in (("g", good, 1), ("b", bad, 0)):
                name = f"{tag}{typ}{sub}{item}{v}"
                rows.append(f"{name},{item},{v},{typ},{sub},{correct},{text}")
                speak(sentence_phones(text), mb, syn / f"{name}.wav")
    (syn / "gold.csv").write_text("\n".join([SYN_HEADER, *rows]) + "\n", encoding="utf-8")
    return root


def make_spoken_storycloze(folder: Path, layout: str = "manifest") -> Path:
    """One wav per whole story (context + ending), a correct and an incorrect version, as released."""
    folder.mkdir(parents=True)
    lines = ["id,correct_wav,incorrect_wav,transcript_correct,transcript_incorrect"]
    for n, (sid, context, right, wrong) in enumerate(STORIES):
        texts = {"correct": " ".join([*context, right]), "incorrect": " ".join([*context, wrong])}
        for tag, text in texts.items():
            name = f"{n}_{tag}" if layout == "flat" else f"{sid}-{tag}"
            speak([p for s in re.split(r"(?<=\.) ", text) for p in sentence_phones(s)], "us1", folder / f"{name}.wav")
            if layout == "flat":
                (folder / f"{name}.txt").write_text(text, encoding="utf-8")
        lines.append(f"{sid},{sid}-correct.wav,{sid}-incorrect.wav,{texts['correct']},{texts['incorrect']}")
    if layout == "manifest":
        (folder / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


# -- an independent scorer, written from the ZeroSpeech 2021 rules (not modevo's code) ---------------------

def official_lexical(gold: Path, submission: Path) -> float:
    """zerospeech/benchmarks sLM_21 lexical: merge words and non-words on (voice, id); a pair is 1 if the
    word scores higher, 0.5 on a tie; mean over each id's pairs (all voices); mean over ids."""
    import csv

    score = dict(line.split(" ") for line in submission.read_text().splitlines())
    rows = list(csv.DictReader(gold.open(encoding="utf-8")))
    by_id: dict[str, list[float]] = {}
    for w in (r for r in rows if r["correct"] == "1"):
        for n in (r for r in rows if r["correct"] == "0" and (r["voice"], r["id"]) == (w["voice"], w["id"])):
            a, b = float(score[w["filename"]]), float(score[n["filename"]])
            by_id.setdefault(w["id"], []).append(0.5 if a == b else float(a > b))
    return float(np.mean([np.mean(v) for v in by_id.values()]))


def official_syntactic(gold: Path, submission: Path) -> float:
    """zerospeech2021 syntactic: the k-th correct row pairs with the k-th incorrect row (file order); mean over
    (type, subtype, id) of the pairs' scores; mean over those."""
    import csv

    score = dict(line.split(" ") for line in submission.read_text().splitlines())
    rows = list(csv.DictReader(gold.open(encoding="utf-8")))
    good, bad = [r for r in rows if r["correct"] == "1"], [r for r in rows if r["correct"] == "0"]
    by_item: dict[tuple, list[float]] = {}
    for g, b in zip(good, bad):
        a, c = float(score[g["filename"]]), float(score[b["filename"]])
        by_item.setdefault((g["type"], g["subtype"], g["id"]), []).append(0.5 if a == c else float(a > c))
    return float(np.mean([np.mean(v) for v in by_item.values()]))


# -- runs -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "released")


def _train(work, view):
    return train_tiny(work, view, milestones=1)


@pytest.fixture(scope="module")
def speech_run(work):
    return _train(work, "speech-fixed")


@pytest.fixture(scope="module")
def char_run(work):
    return _train(work, "text-char")


@pytest.fixture(scope="module")
def slm21(work):
    return make_slm21(work[0] / "sLM21")


@pytest.fixture(scope="module")
def ssc(work):
    return make_spoken_storycloze(work[0] / "sSC")


def _cfg(*extra):
    return load(EvalConfig, ROOT / "configs/eval/smoke.yaml", ["score.n_boot=200", *extra])


def _items(run: Path, task: str) -> dict[str, tuple]:
    import pyarrow.parquet as pq

    (folder,) = sorted((run / "eval").glob("tokens-*"))
    t = pq.read_table(folder / "items.parquet").to_pydict()
    return {i: (c, w, ok, why) for tk, i, c, w, ok, why in zip(t["task"], t["id"], t["logp_correct"], t["logp_incorrect"],
                                                               t["rendered"], t["skip_reason"]) if tk == task}


# -- sLM21 ----------------------------------------------------------------------------------------------

def test_slm21_released_audio_is_scored_as_the_official_scorer_scores_it(speech_run, slm21):
    from mlflow.tracking import MlflowClient

    cfg = _cfg("tasks.names=[swuggy-zr21,sblimp-zr21]", f"tasks.zr_lexical={slm21 / 'lexical/dev'}",
               f"tasks.zr_syntactic={slm21 / 'syntactic/dev'}")
    (ckpt, res), = evaluate_run(speech_run, cfg, progress=False).items()
    assert set(res) == {"eval/swuggy-zr21", "eval/sblimp-zr21"}  # released audio: no synthesised grid
    for key, kind, scorer in (("eval/swuggy-zr21", "lexical", official_lexical),
                              ("eval/sblimp-zr21", "syntactic", official_syntactic)):
        s = res[key]
        assert s["audio"] == "released" and s["test_rendering"] == "released" and s["rendered"] == s["items"]
        sub = Path(s["zerospeech_submission"]["path"])
        assert sub.parts[-3:] == ("zerospeech", kind, "dev.txt") and s["zerospeech_submission"]["conflicting_files"] == 0
        gold = slm21 / kind / "dev" / "gold.csv"
        assert set(read_submission(sub)) == {p.stem for p in gold.parent.glob("*.wav")}  # every wav, once
        assert abs(scorer(gold, sub) - s["acc"]["mean"]) < 1e-4
    assert res["eval/swuggy-zr21"]["groups"] == res["eval/swuggy-zr21"]["acc"]["n"] == 4  # items, not pairs
    assert res["eval/sblimp-zr21"]["groups"] == 3
    assert ">100" in res["eval/swuggy-zr21"]["breakdowns"]["frequency"]  # the label as the data gave it
    info = json.loads((speech_run / "run.json").read_text())
    run = MlflowClient(info["tracking_uri"]).get_run(info["mlflow_run_id"])
    assert "eval/swuggy-zr21/frequency/gt100/acc" in run.data.metrics
    assert run.data.tags["audio.swuggy-zr21"] == "released"


def test_every_task_and_breakdown_logs_to_a_sqlite_store(speech_run, slm21, ssc, tmp_path):
    """Labels from data files (a band '>100', a paradigm, a voice) all reach MLflow under names it accepts."""
    from mlflow.tracking import MlflowClient

    blimp = tmp_path / "blimp.jsonl"  # with one pair whose members are identical: skipped and listed
    recs = [{"sentence_good": f"The cat sleeps {k}.", "sentence_bad": f"The cat sleep {k}.", "field": "morphology",
             "linguistics_term": "s-v_agreement", "UID": "toy_agreement", "pairID": str(k)} for k in range(3)]
    recs.append(recs[0] | {"pairID": "3", "sentence_bad": recs[0]["sentence_good"]})
    blimp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    cfg = _cfg("tasks.names=[sblimp,swuggy,tsc-topic,swuggy-zr21,sblimp-zr21,ssc-spoken]", f"tasks.blimp_path={blimp}",
               f"tasks.zr_lexical={slm21 / 'lexical/dev'}", f"tasks.zr_syntactic={slm21 / 'syntactic/dev'}",
               f"tasks.spoken_ssc={ssc}", "tasks.blimp_per_paradigm=null")
    (_, res), = evaluate_run(speech_run, cfg, progress=False).items()
    assert res["eval/sblimp"]["source"]["skipped_identical"] == ["toy_agreement/3"]
    info = json.loads((speech_run / "run.json").read_text())
    assert info["tracking_uri"].startswith("sqlite:")
    logged = MlflowClient(info["tracking_uri"]).get_run(info["mlflow_run_id"]).data.metrics
    for key, s in res.items():
        if s.get("not_scored"):
            continue
        assert metric_name(key, "acc") in logged
        for breakdown, groups in s["breakdowns"].items():
            for g in groups:
                assert metric_name(key, breakdown, g, "acc") in logged, (key, breakdown, g)


def test_one_wav_changed_changes_that_items_score(speech_run, slm21, tmp_path):
    copy = shutil.copytree(slm21, tmp_path / "sLM21")
    cfg = _cfg("tasks.names=[swuggy-zr21]", f"tasks.zr_lexical={copy / 'lexical/dev'}")
    evaluate_run(speech_run, cfg, progress=False, log_mlflow=False, force=True)
    before = _items(speech_run, "swuggy-zr21")
    audio, rate = sf.read(copy / "lexical/dev/w2Alex.wav", dtype="int16")
    sf.write(copy / "lexical/dev/w2Alex.wav", audio[::-1].copy(), rate, subtype="PCM_16")  # new samples
    evaluate_run(speech_run, cfg, progress=False, log_mlflow=False, force=True)
    after = _items(speech_run, "swuggy-zr21")
    changed = {i for i in before if before[i][:2] != after[i][:2]}
    assert changed == {"2/Alex/w2Alex/n2Alex", "2/Alex/w2Alex/n2Alex2"}  # the word file serves both its pairs
    assert all(before[i][1] == after[i][1] for i in changed)  # the foils' scores did not move


def test_bad_wavs_are_counted_listed_skips(speech_run, slm21, tmp_path):
    copy = shutil.copytree(slm21, tmp_path / "sLM21")
    lex = copy / "lexical/dev"
    (lex / "w2Alex.wav").unlink()  # missing
    (lex / "w3Alex.wav").write_bytes(b"RIFF\x00\x00garbage")  # unreadable
    speak([["HH", "AW", "S"]], "us2", lex / "w3Bruce.wav", rate=22050, channels=2)  # other rate, stereo: used
    cfg = _cfg("tasks.names=[swuggy-zr21]", f"tasks.zr_lexical={lex}")
    (_, res), = evaluate_run(speech_run, cfg, progress=False, log_mlflow=False, force=True).items()
    s = res["eval/swuggy-zr21"]
    assert s["skipped"] == {"audio_missing": 2, "audio_unreadable": 1}  # w2Alex serves two pairs
    assert s["source"]["missing_audio"] == ["w2Alex"]
    assert s["audio_notes"] == {"mixed down 2 channels": 1, "resampled 22050→16000 Hz": 1}
    items = _items(speech_run, "swuggy-zr21")
    assert items["2/Alex/w2Alex/n2Alex"][2:] == (False, "audio_missing") and items["3/Alex"][2:] == (False, "audio_unreadable")


def test_read_audio_mono_16k_and_one_line_problems(tmp_path):
    f = speak([["K", "AE", "T"]], "us1", tmp_path / "a.wav", rate=8000, channels=2)
    pcm, notes = read_audio(f)
    assert pcm.dtype == np.int16 and pcm.ndim == 1 and notes == ["mixed down 2 channels", "resampled 8000→16000 Hz"]
    assert abs(len(pcm) - 2 * sf.info(f).frames) <= 1
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    for path, reason in ((tmp_path / "none.wav", "audio_missing"), (tmp_path / "bad.wav", "audio_unreadable")):
        with pytest.raises(AudioProblem) as e:
            read_audio(path)
        assert e.value.reason == reason and str(path) in str(e.value) and "\n" not in str(e.value)


def test_synthesised_stand_ins_and_a_hyphenated_word(speech_run, slm21):
    cfg = _cfg("tasks.names=[swuggy-zr21]", f"tasks.zr_lexical={slm21 / 'lexical/dev'}", "tasks.released_audio=false")
    (_, res), = evaluate_run(speech_run, cfg, progress=False, log_mlflow=False).items()
    s = res["eval/swuggy-zr21"]
    assert s["audio"] == "synthesised" and s["test_rendering"] == "fixed"
    assert s["rendered"] == s["items"] == 9  # brother-in-law is spoken from its gold phones, not dropped
    assert set(s["speakers"]) == {"zr21/Alex", "zr21/Bruce"}  # which modevo voice stood in for each gold voice


def test_text_view_uses_transcripts_and_skips_what_has_none(char_run, slm21, ssc):
    cfg = _cfg("tasks.names=[swuggy-zr21,sblimp-zr21,ssc-spoken]", f"tasks.zr_lexical={slm21 / 'lexical/dev'}",
               f"tasks.zr_syntactic={slm21 / 'syntactic/dev'}", f"tasks.spoken_ssc={ssc}")
    (_, res), = evaluate_run(char_run, cfg, progress=False, log_mlflow=False).items()
    assert res["eval/swuggy-zr21"]["not_scored"] == "n=0: no_spelling 9"
    assert res["eval/swuggy-zr21"]["zerospeech_submission"]["path"] is None
    assert res["eval/sblimp-zr21"]["rendered"] == 6 and res["eval/sblimp-zr21"]["audio"] == "none"
    assert res["eval/ssc-spoken"]["rendered"] == 2


def test_a_second_tasks_call_merges_into_the_checkpoints_results(char_run, slm21):
    first = _cfg("tasks.names=[sblimp-zr21]", f"tasks.zr_syntactic={slm21 / 'syntactic/dev'}")
    (_, res1), = evaluate_run(char_run, first, progress=False, log_mlflow=False, force=True).items()
    second = _cfg("tasks.names=[sblimp]", "tasks.blimp_per_paradigm=2")
    (ckpt, res2), = evaluate_run(char_run, second, progress=False, log_mlflow=False).items()
    assert {"eval/sblimp-zr21", "eval/sblimp"} <= set(res2)
    assert res2["eval/sblimp-zr21"] == json.loads(json.dumps(res1["eval/sblimp-zr21"]))
    summary = json.loads((char_run / "eval" / Path(ckpt).stem / "summary.json").read_text())["results"]
    assert {"eval/sblimp-zr21", "eval/sblimp"} <= set(summary)
    items = _items(char_run, "sblimp-zr21")
    assert len(items) == 6 and len(_items(char_run, "sblimp")) == 134


def test_split_named_by_option_or_guessed(char_run, slm21, tmp_path):
    odd = shutil.copytree(slm21 / "syntactic/dev", tmp_path / "syntax-set")
    for extra, split, guessed in ((), "dev", True), (("tasks.zr_split=test",), "test", False):
        cfg = _cfg("tasks.names=[sblimp-zr21]", f"tasks.zr_syntactic={odd}", *extra)
        (_, res), = evaluate_run(char_run, cfg, progress=False, log_mlflow=False, force=True).items()
        sub = res["eval/sblimp-zr21"]["zerospeech_submission"]
        assert Path(sub["path"]).name == f"{split}.txt" and ("split_guessed" in sub) == guessed


# -- spoken StoryCloze --------------------------------------------------------------------------------------

def test_spoken_storycloze_whole_stories_from_their_files(speech_run, ssc):
    cfg = _cfg("tasks.names=[ssc-spoken,tsc-spoken]", f"tasks.spoken_ssc={ssc}", f"tasks.spoken_tsc={ssc / 'manifest.csv'}")
    (_, res), = evaluate_run(speech_run, cfg, progress=False).items()
    for key in ("eval/ssc-spoken", "eval/tsc-spoken"):
        s = res[key]
        assert s["audio"] == "released" and s["rendered"] == 2 and s["acc"]["mean"] is not None
        assert s["context_truncated"] == 2  # a whole story at 50 Hz is longer than the smoke window


def test_flat_folder_layout_reads_the_same_stories(tmp_path):
    flat = load_spoken_storycloze(make_spoken_storycloze(tmp_path / "flat", "flat"), "ssc")
    manifest = load_spoken_storycloze(make_spoken_storycloze(tmp_path / "man"), "ssc")
    assert [(p.correct, p.incorrect) for p in flat.pairs] == [(p.correct, p.incorrect) for p in manifest.pairs]
    assert flat.pairs[0].correct_audio == "0_correct.wav" and flat.whole_sequence and flat.audio == "released"


@pytest.mark.parametrize("content,needles", [
    ("id,correct_wav\ns1,a.wav\n", ("line 1", "missing column(s) 'incorrect_wav'")),
    ("id,correct_wav,incorrect_wav\ns1,a.wav,b.wav\ns1,c.wav,d.wav\n", ("line 3", "duplicate id 's1'")),
    ("id,correct_wav,incorrect_wav\ns1,a.wav,a.wav\n", ("line 2", "the same file")),
    ("id,correct_wav,incorrect_wav\ns1,,b.wav\n", ("line 2", "empty 'correct_wav'")),
    ("id,correct_wav,incorrect_wav\n", ("a header and no stories",)),
])
def test_spoken_storycloze_manifest_problems_are_one_line(tmp_path, content, needles):
    f = tmp_path / "manifest.csv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_spoken_storycloze(f, "ssc")
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and all(n in msg for n in needles), msg


@pytest.mark.parametrize("names,needle", [
    (["0_a.wav", "0_b.wav"], "cannot tell whether '0_a.wav'"),
    (["0_correct.wav"], "story 0 has only one file"),
    (["story.wav"], "is not named <number>_<tag>.wav"),
    ([], "no wav files"),
])
def test_spoken_storycloze_folder_problems_are_one_line(tmp_path, names, needle):
    for n in names:
        (tmp_path / n).write_bytes(b"")
    with pytest.raises(InputError) as e:
        load_spoken_storycloze(tmp_path, "tsc")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_named_but_absent_story_audio_is_listed(tmp_path):
    f = tmp_path / "manifest.csv"
    f.write_text("id,correct_wav,incorrect_wav\ns1,a.wav,b.wav\n", encoding="utf-8")
    ts = load_spoken_storycloze(f, "ssc")
    assert ts.source["missing_audio"] == ["a.wav", "b.wav"] and ts.pairs[0].correct == ""


# -- gold files and the CLI ---------------------------------------------------------------------------------

def test_a_folder_without_gold_is_one_line(tmp_path):
    with pytest.raises(InputError, match=r"has no gold.csv"):
        load_lexical_gold(tmp_path)


def test_gold_folder_audio_found_or_not(slm21, tmp_path):
    assert load_lexical_gold(slm21 / "lexical/dev").audio == "released"
    assert load_lexical_gold(slm21 / "lexical/dev", released_audio=False).audio == "synthesised"
    only_gold = tmp_path / "dev"
    only_gold.mkdir()
    shutil.copy(slm21 / "lexical/dev/gold.csv", only_gold)
    ts = load_lexical_gold(only_gold / "gold.csv")
    assert ts.audio == "synthesised" and ts.source["split"] == "dev"


def test_cli_missing_released_set_is_one_line(speech_run, tmp_path, capsys):
    code = main(["eval", "--run", str(speech_run), "--no-mlflow", "--no-progress", "--tasks", "swuggy-zr21",
                 f"tasks.zr_lexical={tmp_path / 'nowhere'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "not found" in err and err.count("\n") == 0


def test_metric_names_mlflow_accepts():
    assert metric_name("eval/swuggy-zr21", "frequency", ">100", "acc") == "eval/swuggy-zr21/frequency/gt100/acc"
    assert metric_name("eval/x", "a b", "c:d?", "acc") == "eval/x/a_b/c_d_/acc"


def test_report_rows_say_which_tasks_were_scored_on_released_audio():
    from modevo.report.collect import Run, condition_name, released_tasks

    run = Run("id", Path("."), "speech-fixed", 0, {}, {}, evals={"tokens-1": {
        "eval/swuggy-zr21": {"task": "swuggy-zr21", "audio": "released"},
        "eval/sblimp": {"task": "sblimp", "audio": "synthesised"},
        "eval/ssc-spoken": {"task": "ssc-spoken", "audio": "released", "not_scored": "n=0: audio_missing 2"}}})
    assert released_tasks([run]) == ["swuggy-zr21"]  # a task that scored nothing is not a result
    assert condition_name("speech-fixed", released_tasks([run])) == \
        "speech-fixed (mel-kmeans, synthetic; released audio: swuggy-zr21)"
    assert condition_name("speech-fixed") == "speech-fixed (mel-kmeans, synthetic)"
