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
    assert est.method == "percentile bootstrap over items"
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
    assert clus.method == "cluster bootstrap over 50 clusters"
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
