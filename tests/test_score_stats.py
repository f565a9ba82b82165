"""Bootstrap CIs, paired differences, TOST, MDE and verdicts behave as the statistics say they should."""

import math

import numpy as np
import pytest

from modevo.errors import InputError
from modevo.score import stats


def bernoulli(p=0.7, n=2000, seed=0):
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def test_bernoulli_ci_covers_truth_and_has_textbook_width():
    x = bernoulli()
    est = stats.bootstrap_ci(x, n_boot=10_000, seed=0)
    assert est.lo < 0.7 < est.hi
    assert est.lo < x.mean() < est.hi and est.mean == pytest.approx(x.mean())
    expected = 2 * 1.96 * math.sqrt(0.21 / 2000)
    assert abs((est.hi - est.lo) - expected) < 0.2 * expected
    assert est.n == 2000 and est.n_boot == 10_000 and est.level == 0.95 and est.p_value is None
    # 2,000 items: the small-sample expansion (t with 1,999 df) moves the percentile bounds by < 1%
    assert est.method.startswith("percentile bootstrap over items, expanded to t(1999 df)")
    assert est.df == 1999 and (est.hi - est.lo) == pytest.approx(est.pct_hi - est.pct_lo, rel=0.01)
    assert est.as_dict()["lo"] == est.lo


def test_seed_determinism():
    x = bernoulli(n=500)
    a, b = stats.bootstrap_ci(x, n_boot=2000, seed=3), stats.bootstrap_ci(x, n_boot=2000, seed=3)
    c = stats.bootstrap_ci(x, n_boot=2000, seed=4)
    assert a == b
    assert (a.lo, a.hi) != (c.lo, c.hi)


def test_cluster_bootstrap_wider_when_items_within_cluster_agree():
    per_cluster = bernoulli(p=0.6, n=50, seed=1)
    values = np.repeat(per_cluster, 20)  # 50 documents x 20 identical items each
    clusters = [f"doc{i}" for i in np.repeat(np.arange(50), 20)]
    item = stats.bootstrap_ci(values, n_boot=2000)
    clus = stats.bootstrap_ci(values, clusters=clusters, n_boot=2000)
    assert clus.method.startswith("cluster bootstrap over 50 clusters") and clus.df == 49
    assert clus.mean == pytest.approx(item.mean)
    assert (clus.hi - clus.lo) > 2.5 * (item.hi - item.lo)  # sqrt(1000/50) ~ 4.5x in theory


def test_hierarchical_one_seed_equals_item_bootstrap_and_seeds_add_width():
    x = bernoulli(n=400, seed=2)
    one = stats.hierarchical_ci(x[None, :], n_boot=2000, seed=5)
    ref = stats.bootstrap_ci(x, n_boot=2000, seed=5)
    assert (one.mean, one.lo, one.hi) == (ref.mean, ref.lo, ref.hi)
    # five runs whose overall accuracy differs a lot: seed variance must widen the interval
    runs = np.stack([bernoulli(p=p, n=400, seed=10 + i) for i, p in enumerate([0.5, 0.6, 0.7, 0.8, 0.9])])
    hier = stats.hierarchical_ci(runs, n_boot=2000)
    pooled = stats.bootstrap_ci(runs.ravel(), n_boot=2000)
    assert "hierarchical" in hier.method and hier.mean == pytest.approx(runs.mean())
    assert (hier.hi - hier.lo) > 2 * (pooled.hi - pooled.lo)


def test_identical_runs_give_zero_difference_and_equivalence():
    a = bernoulli(n=300, seed=6)
    d = stats.paired_bootstrap(a, a.copy(), n_boot=2000)
    assert (d.mean, d.lo, d.hi) == (0.0, 0.0, 0.0)
    assert d.p_value == 1.0
    t = stats.tost(a, a.copy(), margin=0.02, n_boot=2000)
    assert t["equivalent"] is True and t["margin"] == 0.02 and t["level"] == pytest.approx(0.90)
    assert stats.verdict(d, t) == "equivalent within ±2 points"


def test_clear_difference_is_detected_in_both_directions():
    rng = np.random.default_rng(7)
    a = 0.5 + rng.normal(0, 0.1, 1000)
    b = a + 0.2 + rng.normal(0, 0.1, 1000)
    d = stats.paired_bootstrap(a, b, n_boot=5000)
    assert d.mean == pytest.approx(0.2, abs=0.02) and d.lo > 0 and d.p_value < 0.01
    t = stats.tost(a, b, n_boot=2000)
    assert t["equivalent"] is False
    assert stats.verdict(d, t) == "b higher"
    assert stats.verdict(stats.paired_bootstrap(b, a, n_boot=2000)) == "b lower"


def test_small_noisy_difference_cannot_tell():
    rng = np.random.default_rng(8)
    a, b = rng.choice([0, 0.5, 1], size=12), rng.choice([0, 0.5, 1], size=12)
    d = stats.paired_bootstrap(a, b, n_boot=2000)
    t = stats.tost(a, b, margin=0.02, n_boot=2000)
    assert d.lo < 0 < d.hi and not t["equivalent"]
    assert stats.verdict(d, t) == "cannot tell"
    assert stats.verdict(d, None) == "cannot tell"


def test_mde_formula():
    z = 1.959963984540054 + 0.8416212335729143
    assert stats.mde(1000) == pytest.approx(z * math.sqrt(2 * 0.25 / 1000))
    assert stats.mde(1000) == pytest.approx(0.0626, abs=5e-4)
    assert stats.mde_vs_chance(1000) == pytest.approx(stats.mde(1000) / math.sqrt(2))
    assert stats.mde(100) > stats.mde(1000) > stats.mde(10_000)
    assert stats.mde(1000, paired=True, rho=0.5) < stats.mde(1000)
    assert stats.mde(1000, p=0.9) < stats.mde(1000)


@pytest.mark.parametrize("call", [
    lambda: stats.bootstrap_ci([]),
    lambda: stats.bootstrap_ci([1.0, float("nan"), 0.0]),
    lambda: stats.bootstrap_ci([1.0, 0.0], clusters=["x"]),
    lambda: stats.bootstrap_ci([1.0, 0.0], level=1.5),
    lambda: stats.bootstrap_ci([1.0, 0.0], n_boot=0),
    lambda: stats.hierarchical_ci([1.0, 0.0]),
    lambda: stats.hierarchical_ci(np.empty((2, 0))),
    lambda: stats.paired_bootstrap([1.0, 0.0], [1.0]),
    lambda: stats.tost([1.0], [1.0], margin=0),
    lambda: stats.mde(0),
    lambda: stats.mde(100, p=1.0),
])
def test_bad_input_raises_input_error(call):
    with pytest.raises(InputError):
        call()


# ------------------------------------------------ small-sample intervals, design effects, coverage (issue 20 §1)

def test_t_quantiles_match_tables():
    assert stats.t_ppf(0.975, 1) == pytest.approx(12.706205, abs=1e-5)
    assert stats.t_ppf(0.975, 2) == pytest.approx(4.302653, abs=1e-6)
    assert stats.t_ppf(0.975, 9) == pytest.approx(2.262157, abs=1e-6)
    assert stats.t_ppf(0.95, 9.5) == pytest.approx(1.822189, abs=1e-5)  # fractional df (Satterthwaite)
    assert stats.t_ppf(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert stats.t_ppf(0.025, 9) == pytest.approx(-2.262157, abs=1e-6)
    assert stats.t_cdf(stats.t_ppf(0.9, 4.2), 4.2) == pytest.approx(0.9, abs=1e-10)
    with pytest.raises(InputError):
        stats.t_ppf(1.0, 3)


def test_few_clusters_widen_the_percentile_interval_to_t():
    rng = np.random.default_rng(3)
    values = rng.random(200) < 0.6
    clusters = np.repeat(np.arange(10), 20)
    e = stats.bootstrap_ci(values.astype(float), clusters=clusters, n_boot=4000, seed=1)
    assert e.df == 9 and "t(9 df)" in e.method
    assert e.lo < e.pct_lo and e.hi > e.pct_hi
    # expanded to t_9 · SE: about t_9/z · sqrt(10/9) ≈ 1.22 x the plain percentile width
    assert (e.hi - e.lo) / (e.pct_hi - e.pct_lo) == pytest.approx(1.22, abs=0.08)
    assert (e.hi - e.lo) == pytest.approx(2 * stats.t_ppf(0.975, 9) * e.se, rel=0.05)


def _tsc_like(rng, doc_sd=0.35, chunk_sd=0.3):
    """10 documents of unequal size (tsc-topic at cpu), ~17 pairs per chunk, a logit effect per document and chunk."""
    sizes = np.array([238, 238, 238, 238, 238, 238, 170, 235, 68, 204])
    doc = np.repeat(np.arange(10), sizes)
    chunk = np.arange(doc.size) // 17
    eta = rng.normal(0, doc_sd, 10)[doc] + rng.normal(0, chunk_sd, chunk.max() + 1)[chunk]
    y = (rng.random(doc.size) < 1 / (1 + np.exp(-eta))).astype(float)
    y[rng.random(doc.size) < 0.005] = 0.5  # ties
    return y, doc


def test_cluster_interval_covers_where_the_pair_bootstrap_does_not():
    """A small bench/coverage.py: tSC's shape, 200 seeded replications. The truth (0.5) is exact by symmetry."""
    hits = {"cluster": 0, "cluster percentile": 0, "pairs": 0}
    reps = 200
    for rep in range(reps):
        y, doc = _tsc_like(np.random.default_rng([rep, 1]))
        e = stats.bootstrap_ci(y, clusters=doc, n_boot=400, seed=rep)
        naive = stats.bootstrap_ci(y, n_boot=400, seed=rep)
        hits["cluster"] += e.lo <= 0.5 <= e.hi
        hits["cluster percentile"] += e.pct_lo <= 0.5 <= e.pct_hi
        hits["pairs"] += naive.lo <= 0.5 <= naive.hi
    cov = {k: v / reps for k, v in hits.items()}
    # measured: cluster ~0.94, its plain percentile ~0.89, pairs ~0.6 (MC SE ~0.016 at 200 replications)
    assert cov["cluster"] >= 0.90
    assert cov["pairs"] <= 0.80
    assert cov["cluster"] >= cov["cluster percentile"] + 0.02


def test_three_seeds_with_a_seed_effect_are_covered():
    """Accuracy over 3 seeds × 2,000 items when seeds differ by ~10 points: the percentile hierarchical bootstrap
    (3 seeds resampled with replacement) cannot cover; the t interval with Satterthwaite's df does."""
    hits = {"after": 0, "before": 0}
    reps = 200
    for rep in range(reps):
        rng = np.random.default_rng([rep, 2])
        p = 0.5 + rng.normal(0, 0.1, 3)[:, None]  # truth: 0.5 over seeds
        m = (rng.random((3, 2000)) < p).astype(float)
        e = stats.hierarchical_ci(m, n_boot=400, seed=rep)
        hits["after"] += e.lo <= 0.5 <= e.hi
        hits["before"] += e.pct_lo <= 0.5 <= e.pct_hi
    assert hits["after"] / reps >= 0.90  # measured 0.94
    assert hits["before"] / reps <= 0.85  # measured 0.79


def test_hierarchical_without_seed_effect_stays_close_to_the_item_interval():
    rng = np.random.default_rng(4)
    m = (rng.random((3, 3000)) < 0.7).astype(float)
    e = stats.hierarchical_ci(m, n_boot=2000)
    single = stats.bootstrap_ci(m.mean(0), n_boot=2000)
    assert e.df > 5 and (e.hi - e.lo) < 2.0 * (single.hi - single.lo)


def test_tost_on_seeds_is_the_shown_hierarchical_interval_at_90():
    rng = np.random.default_rng(5)
    a = (rng.random((3, 800)) < 0.6).astype(float)
    b = (rng.random((3, 800)) < 0.6).astype(float)
    clusters = np.repeat(np.arange(200), 4)
    t = stats.tost(a, b, margin=0.05, clusters=clusters, n_boot=2000, seed=9)
    h = stats.hierarchical_ci(b - a, clusters=clusters, n_boot=2000, level=0.90, seed=9)
    assert (t["lo"], t["hi"], t["mean"]) == (h.lo, h.hi, h.mean) and "hierarchical" in t["method"]
    assert t["equivalent"] == (-0.05 < h.lo and h.hi < 0.05)
    with pytest.raises(InputError):
        stats.tost(a, b[:2])


def test_design_effect_and_clustered_mde():
    cluster_values = bernoulli(p=0.6, n=50, seed=1)
    values = np.repeat(cluster_values, 20)  # 50 clusters of 20 identical items: deff = (N-1)/(C-1) ≈ 20
    clusters = np.repeat(np.arange(50), 20)
    assert stats.design_effect(values, clusters) == pytest.approx(999 / 49)
    assert stats.design_effect(values) == 1.0
    assert stats.design_effect(bernoulli(n=3000, seed=2), np.arange(3000) // 3) == pytest.approx(1.0, abs=0.15)
    assert stats.design_effect(np.ones(30), np.arange(30) // 3) == 1.0  # no variance: nothing to inflate
    assert stats.design_effect(np.stack([values, values]), clusters) == pytest.approx(999 / 49)  # seeds averaged
    assert stats.mde(1500, deff=1.5) == pytest.approx(stats.mde(1000))
    assert stats.mde_vs_chance(1500, deff=1.5) == pytest.approx(stats.mde_vs_chance(1000))
    with pytest.raises(InputError):
        stats.mde(1000, deff=0.5)


def test_p_value_agrees_with_the_interval():
    rng = np.random.default_rng(11)
    a = (rng.random(600) < 0.5).astype(float)
    b = (rng.random(600) < 0.58).astype(float)
    d = stats.paired_bootstrap(a, b, clusters=np.arange(600) // 6, n_boot=4000)
    assert d.se > 0 and d.p_value == pytest.approx(2 * (1 - stats.t_cdf(abs(d.mean) / d.se, d.df)))
    assert (d.p_value < 0.05) == (d.lo > 0 or d.hi < 0)


def test_pair_seeds_by_id_then_by_order():
    from modevo.score.compare import pair_seeds

    assert pair_seeds([2, 0, 1], [1, 2, 5]) == ([(2, 0), (0, 1)], "by seed id")  # seeds 1 and 2
    pairs, how = pair_seeds([3, 4], [0, 1, 2])
    assert pairs == [(0, 0), (1, 1)] and how.startswith("by seed order")
    assert pair_seeds([None, 0], [0, 1])[1].startswith("by seed order")


def test_compare_pairs_seeds_by_id_and_tests_on_the_shown_interval(monkeypatch):
    """compare() with 3 seeds a side given in different orders: b_s - a_s for the same seed s, and the TOST is
    the hierarchical interval of those differences at 90%; the MDE carries the difference's design effect."""
    from modevo.score import compare as cmp

    rng = np.random.default_rng(12)
    n, groups = 600, [f"w{i // 3}" for i in range(600)]  # a word's three pairs
    word = rng.normal(0, 1.5, 200).repeat(3)
    seed_shift = {0: -0.3, 1: 0.0, 2: 0.3}  # seed s of b shares its shift with seed s of a

    def scores(s, extra):
        return (rng.random(n) < 1 / (1 + np.exp(-(word + seed_shift[s] + extra)))).astype(float)

    runs = {f"a{s}": scores(s, 0.0) for s in range(3)} | {f"b{s}": scores(s, 0.1) for s in range(3)}
    summary = {"task_hash": "h", "protocol": {"hash": "p"}, "view": "v"}

    def fake_side(run_dirs, key, measure=None):
        return ([summary] * len(run_dirs),
                [{f"i{k}": (runs[str(d)][k], groups[k]) for k in range(n)} for d in run_dirs])

    monkeypatch.setattr(cmp, "_side", fake_side)
    c = cmp.compare(["a2", "a0", "a1"], ["b0", "b1", "b2"], n_boot=2000, seeds_a=[2, 0, 1], seeds_b=[0, 1, 2])
    assert c["seed_pairs"] == [[0, 0], [1, 1], [2, 2]] and c["seed_pairing"] == "by seed id"
    d = np.stack([runs[f"b{s}"] - runs[f"a{s}"] for s in range(3)])
    ids = sorted(f"i{k}" for k in range(n))  # compare orders items by id
    order = [int(i[1:]) for i in ids]
    h = stats.hierarchical_ci(d[:, order], clusters=[groups[k] for k in order], n_boot=2000)
    h90 = stats.hierarchical_ci(d[:, order], clusters=[groups[k] for k in order], n_boot=2000, level=0.90)
    assert (c["diff"]["lo"], c["diff"]["hi"]) == (h.lo, h.hi)
    assert (c["tost"]["lo"], c["tost"]["hi"]) == (h90.lo, h90.hi)
    assert c["design_effect"] >= 1 and c["mde"] == pytest.approx(stats.mde(n, deff=c["design_effect"]))


def test_summary_mde_uses_the_design_effect():
    from modevo.score.evaluate import _mde

    values = np.repeat(bernoulli(p=0.8, n=100, seed=3), 3)  # sWUGGY's shape at its extreme: a word decides all 3
    words = np.repeat(np.arange(100), 3)
    m = _mde(values, list(words))
    assert m["design_effect"] == pytest.approx(299 / 99) and m["n_effective"] == pytest.approx(300 / m["design_effect"])
    assert m["between_runs"] == pytest.approx(stats.mde(300, deff=m["design_effect"]))
    assert m["vs_chance"] == pytest.approx(stats.mde_vs_chance(300, deff=m["design_effect"]))
    assert _mde(values, None)["between_runs"] == pytest.approx(stats.mde(300))  # no clusters: as before


def test_intervals_stay_inside_what_a_mean_can_be():
    # two clusters: t with 1 df expands the percentile interval far beyond [0, 1] before the cut
    from modevo.score import stats as st

    values = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.5])
    clusters = ["a", "a", "a", "b", "b", "b", "b"]
    e = st.bootstrap_ci(values, clusters=clusters, n_boot=500)
    assert 0.0 <= e.lo <= e.mean <= e.hi <= 1.0 and (e.lo == 0.0 or e.hi == 1.0)
    d = st.paired_bootstrap(values, values[::-1], clusters=clusters, n_boot=500)
    assert -1.0 <= d.lo <= d.hi <= 1.0
    h = st.hierarchical_ci(np.stack([values, values[::-1]]) - np.stack([values[::-1], values]), n_boot=500,
                           bounds=st.DIFF_RANGE)
    assert -1.0 <= h.lo and h.hi <= 1.0 and h.lo < 0 < h.hi  # a difference may be negative: not cut at 0
