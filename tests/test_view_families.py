"""A condition is one object in the view registry: the frame rate as a value in view names, no family
branches outside the registry, and a toy family added in one place that builds, renders task items, trains
and scores with no other change."""

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import novels_workspace, train_tiny
from modevo.config import load
from modevo.corpus import synth
from modevo.errors import ConfigError
from modevo.frames import frame_index, phone_frames, pool_factor
from modevo.views.families import Phone
from modevo.views.registry import at_rate, factor_pairs, factors_of, parse_view, register, unregister

ROOT = Path(__file__).resolve().parent.parent
needs_espeak = pytest.mark.skipif(not synth.backend_available("espeak"), reason="espeak-ng not installed")


# -- the frame rate is a value in the name ------------------------------------------------------------------
def test_rate_in_view_names():
    assert parse_view("phone-repeat@varied:25hz").name == "phone-repeat@varied:25hz"
    assert parse_view("phone-repeat@varied:25hz").rate_hz == 25.0
    assert parse_view("speech-varied:12.5hz").name == "speech@varied/mel-kmeans:12.5hz"
    assert parse_view("speech@fixed/phonetic-kmeans:25hz").tokenizer == "phonetic-kmeans"
    assert parse_view("phone-repeat@mean:25hz").rendering == "mean"
    assert parse_view("phone-repeat@varied:50hz").name == "phone-repeat@varied"  # the default is not spelt out
    assert parse_view("phone-repeat@varied").rate_hz == 50.0


@pytest.mark.parametrize("name, message", [
    ("phone:25hz", "applies to views with frames only"),
    ("text-bpe:25hz", "applies to views with frames only"),
    ("phone-repeat@varied:30hz", "not 50 Hz divided by a whole number"),
    ("phone-repeat@varied:100hz", "not 50 Hz divided by a whole number"),
    ("speech-varied:fast", "not of the form <number>hz"),
])
def test_bad_rates_are_one_line(name, message):
    with pytest.raises(ConfigError, match=message):
        parse_view(name)


def test_pool_factor():
    assert [pool_factor(r) for r in (50, 25, 12.5, 10)] == [1, 2, 4, 5]


def test_factor_pairs_at_a_rate_stay_matched():
    pairs = [(a.name, b.name) for a, b in factor_pairs("C", rate_hz=25)]
    assert pairs == [("phone-repeat@varied:25hz", "speech@varied/mel-kmeans:25hz"),
                     ("phone-repeat@fixed:25hz", "speech@fixed/mel-kmeans:25hz")]
    assert [(a.name, b.name) for a, b in factor_pairs("A", rate_hz=25)] == \
        [(a.name, b.name) for a, b in factor_pairs("A")]  # no frames: the same views at every rate
    assert factors_of(parse_view("speech-varied:25hz")) == ["C"]
    assert at_rate("phone-repeat@varied:25hz", 50).name == "phone-repeat@varied"


def test_frames_at_any_rate_follow_one_rule():
    rng = np.random.default_rng(0)
    durations = rng.uniform(0, 180, 40).astype(np.float32)
    starts = (300 + np.concatenate([[0], np.cumsum(durations)[:-1]])).astype(np.float32)
    for rate in (50, 25, 12.5):
        f = phone_frames(starts, durations, rate)
        step = 1000 / rate
        ends = starts.astype(np.float64) + durations.astype(np.float64)
        assert f.tolist() == (frame_index(ends, step) - frame_index(starts.astype(np.float64), step)).tolist()
        assert f.sum() == frame_index(ends[-1], step) - frame_index(starts[0], step)  # no rounding drift
    assert phone_frames(starts, durations, 25).sum() == pytest.approx(phone_frames(starts, durations, 50).sum() / 2, abs=1)


def test_no_family_branches_outside_the_registry():
    """What a view family does is asked of its object: no `family ==` tests anywhere else."""
    pattern = re.compile(r"""(\.family\s*(==|!=|\bin\b|\bnot in\b))|(\bfam(ily)?\s*(==|!=)\s*["'])""")
    allowed = {ROOT / "modevo/views/registry.py", ROOT / "modevo/views/families.py"}
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in (ROOT / "modevo").rglob("*.py") if p not in allowed
            for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


# -- a toy family, added in one place -----------------------------------------------------------------------
class ReversedPhones(Phone):
    """Toy condition: each word's phones in reverse order (same phones, same length as `phone`)."""

    name, paper_name, paper_scores = "phone-reversed", "Toy", None

    def encoder(self, spec, views_cfg, **_):
        from modevo.views.encode import PhoneEncoder

        class Reversed(PhoneEncoder):
            def encode(self, row, rendering=None, units=None):
                return super().encode({**row, "phones": [w[::-1] for w in row["phones"]],
                                       "stress": [s[::-1] for s in row["stress"]]})

        return Reversed(spec, views_cfg)


@pytest.fixture
def toy_family():
    register(ReversedPhones())
    yield "phone-reversed"
    unregister("phone-reversed")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield from novels_workspace(tmp_path_factory, "families")


def _eval_cfg():
    from modevo.score.config import EvalConfig

    return load(EvalConfig, ROOT / "configs/eval/smoke.yaml", [
        "tasks.names=[sblimp]", "tasks.blimp_paradigms=[anaphor_number_agreement]", "tasks.blimp_per_paradigm=10",
        "score.n_boot=200"])


def test_toy_family_builds_renders_trains_and_scores(toy_family, workdir):
    from modevo.report.collect import condition_name
    from modevo.score.evaluate import evaluate_run
    from modevo.tasks.registry import load_task
    from modevo.tasks.render import ItemRenderer
    from modevo.train.config import TrainStageConfig
    from modevo.train.run import expected_vocab
    from modevo.views.build import load_view

    spec = parse_view(toy_family)
    assert spec.paper_name == "Toy" and not spec.frame_level and factors_of(spec) == []
    run = train_tiny(workdir, toy_family)
    stage = load(TrainStageConfig, run / "config.yaml")
    assert expected_vocab(stage, toy_family)[0] == expected_vocab(stage, "phone")[0]

    # the view: each utterance is phone's with every word reversed
    from modevo.views.build import build_views

    roots = build_views(stage, [toy_family, "phone"], progress=False)
    toy, phone = load_view(roots[toy_family]), load_view(roots["phone"])
    assert toy.manifest["family"] == "phone-reversed" and toy.ids == phone.ids
    assert sorted(toy.utterance(0).tolist()) == sorted(phone.utterance(0).tolist())
    assert any(not np.array_equal(toy.utterance(i), phone.utterance(i)) for i in range(len(toy)))

    # task items go through the toy encoder too
    task = load_task("sblimp", _eval_cfg().tasks)
    a = ItemRenderer(stage, toy_family, max_len=stage.model.max_seq_len, progress=False).render(task)
    b = ItemRenderer(stage, "phone", max_len=stage.model.max_seq_len, progress=False).render(task)
    assert [len(x) for x in a.correct] == [len(x) for x in b.correct]
    assert any(not np.array_equal(x, y) for x, y in zip(a.correct, b.correct))

    # and it is scored and named like any condition
    summaries = next(iter(evaluate_run(run, _eval_cfg(), progress=False, log_mlflow=False).values()))
    assert summaries["eval/sblimp"]["view"] == toy_family and summaries["eval/sblimp"]["rendered"] == 10
    assert condition_name(toy_family) == toy_family


def test_unknown_family_after_unregister():
    with pytest.raises(ConfigError, match="unknown view 'phone-reversed'"):
        parse_view("phone-reversed")


# -- a 25 Hz factor-C pair trains and scores ----------------------------------------------------------------
@needs_espeak
def test_a_25hz_pair_trains_and_scores(workdir):
    from modevo.score.evaluate import evaluate_run
    from modevo.views.build import load_view

    lengths, scores = {}, {}
    for view in ("phone-repeat@varied:25hz", "speech@varied/mel-kmeans:25hz", "phone-repeat@varied"):
        run = train_tiny(workdir, view)
        summaries = next(iter(evaluate_run(run, _eval_cfg(), progress=False, log_mlflow=False).values()))
        scores[view] = summaries["eval/sblimp"]
        built = load_view(next((workdir[0] / "cache").rglob(f"views/{parse_view(view).folder}-*")))
        assert built.spec.name == view
        lengths[view] = built.manifest["tokens"]
    units = load_view(next((workdir[0] / "cache").rglob("views/speech@varied_mel-kmeans_25hz-*")))
    assert units.manifest["units"]["frame_rate_hz"] == 25.0 and units.spec.rate_hz == 25.0
    # half the frames of the 50 Hz view (each phone keeps at least one frame, so a little more than half)
    ratio = lengths["phone-repeat@varied:25hz"] / lengths["phone-repeat@varied"]
    assert 0.5 <= ratio < 0.6
    # the pair is on one grid: speech adds only the word pauses' frames to phone-repeat's
    assert 0.9 < lengths["speech@varied/mel-kmeans:25hz"] / lengths["phone-repeat@varied:25hz"] < 1.5
    for view, s in scores.items():
        assert s["view"] == view and s["rendered"] > 0 and 0 <= s["acc"]["mean"] <= 1


def test_a_plugin_module_registers_its_family(tmp_path, monkeypatch):
    """MODEVO_VIEW_FAMILIES names modules that register families before the first lookup."""
    import modevo.views.registry as registry

    (tmp_path / "my_conditions.py").write_text(
        "from modevo.views.families import Phone\nfrom modevo.views.registry import register\n\n"
        "class Mine(Phone):\n    name, paper_name, paper_scores = 'phone-mine', 'Mine', None\n\n"
        "register(Mine())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.PLUGINS_ENV, "my_conditions")
    monkeypatch.setattr(registry, "_BUILTIN_LOADED", False)
    monkeypatch.setattr(registry, "_FAMILIES", {})
    assert parse_view("phone-mine").paper_name == "Mine" and parse_view("phone").paper_name == "Phone-Raw"
    monkeypatch.setattr(registry, "_BUILTIN_LOADED", False)
    monkeypatch.setattr(registry, "_FAMILIES", {})
    monkeypatch.setenv(registry.PLUGINS_ENV, "no_such_conditions_module")
    with pytest.raises(ConfigError, match="MODEVO_VIEW_FAMILIES: cannot import 'no_such_conditions_module'"):
        parse_view("phone")


# -- the paper's remedies are families too -------------------------------------------------------------------
def test_remedy_names():
    assert parse_view("speech-dedup@varied").name == "speech-dedup@varied/mel-kmeans"
    assert parse_view("speech-bpe@fixed/phonetic-kmeans").tokenizer == "phonetic-kmeans"
    assert parse_view("speech-dedup@varied:25hz").rate_hz == 25.0
    assert parse_view("speech-bpe@varied").paper_name == "Speech (unit BPE)"


@needs_espeak
def test_remedy_views_shorten_the_same_units(workdir):
    """speech-dedup is speech with runs collapsed; speech-bpe's pieces decode back to speech's units exactly."""
    from modevo.train.config import TrainStageConfig
    from modevo.views.build import build_views, load_view
    from modevo.views.bpe import load_bpe

    tmp, novels = workdir
    from conftest import tiny_run_overrides

    stage = load(TrainStageConfig, ROOT / "configs/train/smoke.yaml", tiny_run_overrides(novels, tmp))
    names = ["speech@varied/mel-kmeans", "speech-dedup@varied/mel-kmeans", "speech-bpe@varied/mel-kmeans"]
    views = {n: load_view(r) for n, r in build_views(stage, names, progress=False).items()}
    speech, collapsed, bpe = (views[n] for n in names)
    assert speech.ids == collapsed.ids == bpe.ids
    sp = load_bpe(bpe.manifest["bpe_model"])
    base = 0x4E00
    for i in range(len(speech)):
        u = speech.utterance(i)
        keep = np.ones(len(u), bool)
        keep[1:] = u[1:] != u[:-1]
        assert collapsed.utterance(i).tolist() == u[keep].tolist()
        text = sp.decode([int(t) - 1 for t in bpe.utterance(i)])
        assert [ord(c) - base + 1 for c in text] == u.tolist()  # pieces are merges of the same units
    assert collapsed.manifest["tokens"] < speech.manifest["tokens"] and bpe.manifest["tokens"] < speech.manifest["tokens"]
    search = bpe.manifest["vocab_search"]
    assert set(search["unit_bpe_tokens_per_word"]) == {str(v) for v in stage.views.phone_bpe_candidates}  # JSON keys
