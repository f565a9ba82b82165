"""The continuation judge (word KN n-gram on the train split), diversity/repetition metrics, and intervals
that resample prompts."""

import math

import numpy as np
import pytest

from modevo.errors import InputError
from modevo.generate.judge import END, UNK, WordJudge
from modevo.generate.metrics import auto_bleu, continuation_metrics, distinct_n, ngrams
from modevo.generate.summary import (mean_over_prompts, perplexity_over_prompts, ratio_over_prompts,
                                     summarise_continuations)

NOUNS = ["cat", "dog", "man", "girl", "horse", "bird"]
VERBS = ["sat", "ran", "slept", "stood"]
PLACES = ["mat", "log", "house", "road", "hill"]


def sentence(rng) -> list[str]:
    """One sentence of a tiny fixed grammar: word order carries the structure a 3-gram can learn."""
    return ["the", rng.choice(NOUNS), rng.choice(VERBS), "on", "the", rng.choice(PLACES)]


def rows_of(sentences, split="train", prefix="s"):
    return [{"id": f"{prefix}{i}", "split": split, "words": list(s)} for i, s in enumerate(sentences)]


@pytest.fixture(scope="module")
def judge():
    rng = np.random.default_rng(0)
    train = rows_of([sentence(rng) for _ in range(60)])
    test = rows_of([["the", "zebra", "sang"]], split="test", prefix="t")  # never trained on
    return WordJudge.from_rows(train + test)


# -- the judge -------------------------------------------------------------------------------------------------
def test_held_out_sentences_beat_their_shuffles(judge):
    rng = np.random.default_rng(1)
    held_out = [sentence(rng) for _ in range(20)]
    shuffled = []
    for s in held_out:
        t = list(s)
        while t == s:
            rng.shuffle(t)
        shuffled.append(t)
    real, mixed = judge.perplexity(held_out), judge.perplexity(shuffled)
    assert real < mixed / 2, (real, mixed)


@pytest.mark.parametrize("history", [[], ["the"], ["the", "cat"], ["cat", "the"], ["zebra", "on"], ["the", "zebra"]])
def test_next_word_distribution_sums_to_one(judge, history):
    p = judge.next_word_probs(history)
    assert set(p) == set(judge.vocab) | {UNK, END}
    assert math.isclose(sum(p.values()), 1.0, abs_tol=1e-9)
    assert 0 < p[UNK] < min(p[w] for w in ("the", "cat"))  # an unseen word is possible, and rare


def test_log_prob_is_the_chain_of_next_word_probabilities(judge):
    """Start boundaries, then context as history only, then each word, then the end event when end=True."""
    words, context = ["cat", "sat", "zebra"], ["the"]
    expected = 0.0
    history = list(context)
    for w in words:
        expected += math.log(judge.next_word_probs(history)[w if w in judge.vocab else UNK])
        history.append(w)
    lp, n = judge.log_prob(words, context=context, end=False)
    assert n == 3 and math.isclose(lp, expected, rel_tol=1e-12)
    lp_end, n_end = judge.log_prob(words, context=context, end=True)
    assert n_end == 4 and math.isclose(lp_end, expected + math.log(judge.next_word_probs(history)[END]), rel_tol=1e-12)


def test_perplexity_is_corpus_level_and_reports_oov(judge):
    sents = [["the", "cat", "sat"], ["the", "zebra", "ran", "on", "the", "mat"]]
    scored = [judge.log_prob(s) for s in sents]
    by_hand = math.exp(-sum(lp for lp, _ in scored) / sum(n for _, n in scored))
    assert math.isclose(judge.perplexity(sents), by_hand, rel_tol=1e-12)
    report = judge.report(sents)
    assert report["n_oov"] == 1 and report["n_words"] == 9 and math.isclose(report["oov_rate"], 1 / 9)
    assert report["n_scored"] == 11 and report["judge_hash"] == judge.content_hash


def test_only_the_train_split_is_used_and_held_out_is_checked(judge):
    assert "zebra" not in judge.vocab and "sang" not in judge.vocab
    judge.assert_held_out(rows_of([["the", "cat"]], split="test", prefix="t"))
    with pytest.raises(InputError, match="trained on"):
        judge.assert_held_out(rows_of([["the", "cat"]], split="test", prefix="s"))  # a train row's id
    with pytest.raises(InputError, match="trained on"):
        judge.assert_held_out(rows_of([["the", "cat"]], split="train", prefix="new"))
    with pytest.raises(InputError, match="no train-split"):
        WordJudge.from_rows(rows_of([["the", "cat"]], split="test"))


def test_save_load_round_trip(judge, tmp_path):
    folder = judge.save(tmp_path)
    loaded = WordJudge.load(folder)
    assert loaded.content_hash == judge.content_hash and loaded.vocab == judge.vocab
    sents = [["the", "dog", "ran", "on", "the", "hill"], ["zebra", "the"]]
    assert loaded.perplexity(sents) == judge.perplexity(sents)
    other = WordJudge.from_rows(rows_of([["the", "cat", "sat"]]))
    assert other.content_hash != judge.content_hash  # the hash is of what it trained on
    (folder / "vocab.json").write_text((folder / "vocab.json").read_text().replace('"cat"', '"cow"'))
    with pytest.raises(InputError, match="changed"):
        WordJudge.load(folder)


# -- diversity and repetition ----------------------------------------------------------------------------------
def test_distinct_n_and_auto_bleu_on_known_cases():
    looped = "the cat sat " * 5
    looped = looped.split()  # 15 words, 14 bigrams of 3 kinds
    assert math.isclose(distinct_n([looped], 2), 3 / 14) and math.isclose(distinct_n([looped], 1), 3 / 15)
    assert auto_bleu(looped, 2) == 1.0
    plain = "a b c d e".split()
    assert distinct_n([plain], 2) == 1.0 and auto_bleu(plain, 2) == 0.0
    ab = "a b a b".split()  # bigrams ab, ba, ab: the two ab recur, ba does not
    assert math.isclose(auto_bleu(ab, 2), 2 / 3) and math.isclose(distinct_n([ab], 2), 2 / 3)
    assert math.isclose(auto_bleu(ab, 1), 1.0)
    # over a set: n-grams never cross continuations; two copies of one continuation halve distinct-n
    assert distinct_n([["a", "b"], ["c", "d"]], 2) == 1.0 and distinct_n([plain, plain], 2) == 0.5
    assert math.isnan(auto_bleu(["a"], 2)) and math.isnan(distinct_n([["a"]], 2))
    assert ngrams("a b c".split(), 2) == [("a", "b"), ("b", "c")]
    m = continuation_metrics(looped)
    assert m["n_words"] == 15 and m["auto_bleu_2"] == 1.0 and m["distinct_2"] < 0.25


# -- intervals over prompts ------------------------------------------------------------------------------------
def test_prompt_bootstrap_is_wider_than_an_item_bootstrap_when_seeds_agree():
    rng = np.random.default_rng(0)
    per_prompt = rng.normal(0.5, 0.2, size=15)
    values = np.repeat(per_prompt, 10)  # 10 seeds of a prompt give the same value
    prompts = np.repeat([f"p{i}" for i in range(15)], 10)
    by_prompt = mean_over_prompts(values, prompts, n_boot=2000)
    by_item = mean_over_prompts(values, [f"x{i}" for i in range(len(values))], n_boot=2000)
    assert by_prompt["n_prompts"] == 15 and by_prompt["n_samples"] == 150
    assert math.isclose(by_prompt["mean"], by_item["mean"])
    assert (by_prompt["hi"] - by_prompt["lo"]) > 2.5 * (by_item["hi"] - by_item["lo"])
    assert "prompts" in by_prompt["method"]


def test_prompt_intervals_cover_the_truth():
    """200 simulated experiments of 20 prompts × 5 seeds with a strong prompt effect: the prompt intervals
    cover the true mean and the true perplexity in ≥ 90% (nominal 95%); an item bootstrap does not."""
    rng = np.random.default_rng(7)
    n_prompts, n_seeds, mu, reps = 20, 5, 0.3, 200
    prompts = np.repeat(np.arange(n_prompts), n_seeds)
    items = np.arange(n_prompts * n_seeds)
    hit_mean = hit_item = hit_ppl = 0
    for r in range(reps):
        effect = np.repeat(rng.normal(0, 0.2, n_prompts), n_seeds)
        values = mu + effect + rng.normal(0, 0.05, len(prompts))
        est = mean_over_prompts(values, prompts, n_boot=400, seed=r)
        item = mean_over_prompts(values, items, n_boot=400, seed=r)
        hit_mean += est["lo"] <= mu <= est["hi"]
        hit_item += item["lo"] <= mu <= item["hi"]
        # per-word log-probs around -3 + a prompt effect; lengths vary; true ratio -3 → ppl e^3
        n_words = 1 + rng.poisson(8, len(prompts))
        log_probs = rng.normal(n_words * (-3 + effect * 5), np.sqrt(n_words))
        ppl = perplexity_over_prompts(log_probs, n_words, prompts, n_boot=400, seed=r)
        hit_ppl += ppl["lo"] <= math.exp(3) <= ppl["hi"]
    assert hit_mean / reps >= 0.9 and hit_ppl / reps >= 0.9, (hit_mean, hit_ppl)
    assert hit_item / reps < 0.75, hit_item  # seeds treated as independent: far too narrow


def test_ratio_resamples_numerator_and_denominator_together():
    """Every prompt has the same per-word log-prob but very different lengths: resampled together, every
    draw gives the same ratio, so the interval has no width (drawn apart, it would be wide)."""
    n_words = np.array([2, 50, 3, 40, 5, 30, 7, 1])
    out = ratio_over_prompts(-2.0 * n_words, n_words, [f"p{i // 2}" for i in range(8)], n_boot=1000)
    assert out["mean"] == -2.0 and math.isclose(out["lo"], -2.0) and math.isclose(out["hi"], -2.0)
    ppl = perplexity_over_prompts(-2.0 * n_words, n_words, list(range(8)), n_boot=1000)
    assert math.isclose(ppl["mean"], math.exp(2)) and ppl["lo"] <= ppl["mean"] <= ppl["hi"]


def test_one_prompt_has_no_interval_and_nan_values_are_counted():
    out = mean_over_prompts([0.2, 0.4, math.nan], ["p", "p", "p"])
    assert out["mean"] == pytest.approx(0.3) and math.isnan(out["lo"]) and out["n_undefined"] == 1
    assert "no interval" in out["method"]
    with pytest.raises(InputError, match="prompt id"):
        mean_over_prompts([1.0, 2.0], ["p"])


def test_summarise_continuations(judge):
    rng = np.random.default_rng(3)
    prompts, conts, contexts = [], [], []
    for p in range(6):
        for _ in range(3):
            s = sentence(rng)
            prompts.append(f"p{p}"), contexts.append(s[:2]), conts.append(s[2:])
    out = summarise_continuations(judge, prompts, conts, contexts=contexts, n_boot=500)
    assert out["perplexity"]["n_prompts"] == 6 and out["perplexity"]["n_samples"] == 18
    assert out["perplexity"]["lo"] <= out["perplexity"]["mean"] <= out["perplexity"]["hi"]
    assert out["oov_rate"]["mean"] == 0.0 and out["n_words"]["mean"] == 4.0
    assert out["distinct_1"]["n_samples"] == 6  # one value per prompt, across its seeds
    assert out["judge"]["judge_hash"] == judge.content_hash


def test_reference_perplexity_is_the_judge_on_each_prompts_true_continuation_once(judge):
    """Several seeds of one prompt share its reference: it is scored once per prompt, with the prompt as history,
    and equals the judge's own corpus perplexity of those continuations."""
    from modevo.generate.evaluate import JudgeConfig, reference_perplexity

    rng = np.random.default_rng(3)
    prompts = [(f"p{i}", s[:2], s[2:]) for i, s in enumerate(sentence(rng) for _ in range(8))]
    samples = [{"prompt_id": p, "prompt_words": w, "reference_words": r, "seed": seed}
               for p, w, r in prompts for seed in range(3)]
    ref = reference_perplexity(judge, samples, JudgeConfig(n_boot=500))
    expected = judge.perplexity([r for _, _, r in prompts], [w for _, w, _ in prompts], True)
    assert ref["n_prompts"] == 8 and ref["mean"] == pytest.approx(expected)
    assert ref["lo"] <= ref["mean"] <= ref["hi"]
    # a scrambled "truth" reads worse: the reference is a real baseline, not a constant
    scrambled = [{**s, "reference_words": list(reversed(s["reference_words"]))} for s in samples]
    assert reference_perplexity(judge, scrambled, JudgeConfig(n_boot=500))["mean"] > ref["mean"]
