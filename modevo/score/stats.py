"""Uncertainty for pair accuracy: bootstrap CIs, paired differences, equivalence tests, detectable effects.

Per-item scores are in {0, 0.5, 1} and accuracy is their mean. Every resampling function is deterministic
for a given ``seed`` and draws in chunks, so 10k items x 10k resamples stays within a few tens of MB.

Small-sample correction. A percentile bootstrap over C clusters is too narrow when C is small (its variance
is the plug-in one, (C-1)/C of the unbiased, and its tails are normal ones): over tSC's 10 documents it
covers ~88-90% at nominal 95%, and over 3 seeds far less. Every interval here is therefore the percentile
interval *expanded* about the estimate so that its half-widths match t_{df} x SE, where SE is the
cluster-robust standard error of the mean (CR1: C/(C-1) x the cluster-sum residuals' variance) plus, with
several seeds, the variance of the seed means over the number of seeds, and df = C-1 (with seeds:
Satterthwaite's df of the two parts, so 3 seeds that disagree widen it towards t with 2 df). The
percentile shape (its asymmetry) is kept; with hundreds of clusters the factor is ~1.003 and nothing
changes. `pct_lo`/`pct_hi` keep the plain percentile bounds.
bench/coverage.py measures the coverage of every interval before and after (bench/RESULTS.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from modevo.errors import InputError

_CHUNK_ELEMENTS = 2_000_000  # resample draws held in memory at once


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile interval and enough detail to reproduce it."""

    mean: float
    lo: float
    hi: float
    n: int
    n_boot: int
    level: float
    seed: int
    method: str
    p_value: float | None = None
    se: float | None = None  # cluster-robust standard error of the mean (seeds included when there are several)
    df: float | None = None  # degrees of freedom of the t quantile the interval was expanded to (None: z)
    pct_lo: float | None = None  # the plain percentile bounds, before the small-sample expansion
    pct_hi: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _array(values, name: str, ndim: int = 1) -> np.ndarray:
    """Per-item scores as a finite float array: (n,) for one run, (n_seeds, n_items) for several."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != ndim:
        shape = "1-D array of per-item scores" if ndim == 1 else "2-D (n_seeds, n_items)"
        raise InputError(f"{name} must be a {shape}, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape}): there are no items to score")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains {int(np.sum(~np.isfinite(arr)))} NaN/inf value(s)")
    return arr


def group_means(matrix, groups) -> tuple[np.ndarray, list]:
    """(…, n_items) per-item scores → (…, n_groups) each group's mean, groups in sorted order, and the labels.
    The unit of an official ZeroSpeech score: pairs of one item averaged over voices, then items."""
    arr = np.asarray(matrix, dtype=float)
    labels, inverse = np.unique(np.asarray([str(g) for g in groups], dtype=object), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(labels))
    flat = arr.reshape(-1, arr.shape[-1])
    sums = np.stack([np.bincount(inverse, weights=row, minlength=len(labels)) for row in flat])
    return (sums / counts).reshape(*arr.shape[:-1], len(labels)), list(labels)


def _check_boot(n_boot: int, level: float) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise InputError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < level < 1:
        raise InputError(f"level must be between 0 and 1, got {level!r}")


def _cluster_codes(clusters, n_items: int) -> tuple[np.ndarray, int]:
    """Map any hashable labels to 0..C-1 (first-appearance order); no clusters means one per item."""
    if clusters is None:
        return np.arange(n_items), n_items
    labels = list(clusters)
    if len(labels) != n_items:
        raise InputError(f"clusters has {len(labels)} labels but there are {n_items} items")
    mapping: dict = {}
    codes = np.fromiter((mapping.setdefault(c, len(mapping)) for c in labels), dtype=np.int64, count=n_items)
    return codes, len(mapping)


def _resample(matrix: np.ndarray, clusters, n_boot: int, seed: int) -> tuple[np.ndarray, str]:
    """Bootstrap means of a (n_seeds, n_items) matrix: resample clusters of items, then (if >1) seeds.

    One code path for all procedures, so a one-seed hierarchical bootstrap draws exactly what the item
    bootstrap draws. Clusters are reduced to per-seed sums and item counts, so a resample is a gather.
    """
    n_seeds, n_items = matrix.shape
    codes, n_clusters = _cluster_codes(clusters, n_items)
    sums = np.stack([np.bincount(codes, weights=row, minlength=n_clusters) for row in matrix])
    counts = np.bincount(codes, minlength=n_clusters).astype(float)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, _CHUNK_ELEMENTS // (n_seeds * n_clusters)))
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n_clusters, size=(b, n_clusters))
        num = sums[:, idx].sum(axis=2).T  # (b, n_seeds): resampled item total per seed
        if n_seeds > 1:
            num = np.take_along_axis(num, rng.integers(0, n_seeds, size=(b, n_seeds)), axis=1)
        out[start:start + b] = num.mean(axis=1) / counts[idx].sum(axis=1)
    unit = "items" if clusters is None else f"{n_clusters} clusters"
    if n_seeds > 1:
        method = f"hierarchical bootstrap {n_seeds} seeds×{unit}"
    else:
        method = "percentile bootstrap over items" if clusters is None else f"cluster bootstrap over {unit}"
    return out, method


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) (continued fraction, Numerical Recipes' betacf)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f


def t_cdf(x: float, df: float) -> float:
    """P(T <= x) for Student's t with ``df`` > 0 degrees of freedom (df may be fractional; inf = normal)."""
    if math.isinf(df):
        return NormalDist().cdf(x)
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + x * x))
    return 1.0 - tail if x > 0 else tail


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (bisection on t_cdf, to ~1e-12); numpy/stdlib only, no scipy dependency."""
    if not 0 < q < 1 or not df > 0:
        raise InputError(f"t_ppf needs 0 < q < 1 and df > 0, got q={q!r}, df={df!r}")
    if math.isinf(df) or df > 1e7:
        return NormalDist().inv_cdf(q)
    if q < 0.5:
        return -t_ppf(1 - q, df)
    lo, hi = 0.0, max(1.0, NormalDist().inv_cdf(q))
    while t_cdf(hi, df) < q:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < q else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def _robust_se(matrix: np.ndarray, clusters) -> tuple[float, float]:
    """(standard error of the grand mean, its degrees of freedom) for (n_seeds, n_items) scores on shared items.

    Items: CR1 variance of the seed-averaged cluster sums, C/(C-1) * sum_c (T_c - n_c * mean)^2 / N^2, df C-1.
    Seeds (several): the variance of the seed means over the number of seeds, df S-1. The two parts are
    added. The seed part also holds the item noise each seed adds, which the item part already counts once:
    conservative, on purpose — subtracting it (the unbiased variance-components estimate) gives a 2-df
    estimate that is often truncated at zero, and covered ~91% in bench/coverage.py. df is Satterthwaite's,
    with the seed part taken at its upper 75% confidence bound (S-1 df, chi-square): Satterthwaite's df from
    the estimated part alone is too large exactly when 3 seeds happen to agree, which covered 0.91-0.92 when
    seeds differ by 3 points; this one covers 0.93-0.99 from no seed effect to 6 points (the price: at a
    1-point seed SD it is ~20% wider than it needs to be).
    One cluster (or every score equal) has no SE: (0, inf).
    """
    n_seeds, n_items = matrix.shape
    codes, n_clusters = _cluster_codes(clusters, n_items)
    if n_clusters < 2:
        return 0.0, math.inf
    sums = np.stack([np.bincount(codes, weights=row, minlength=n_clusters) for row in matrix])  # (S, C)
    counts = np.bincount(codes, minlength=n_clusters).astype(float)
    seed_means = sums.sum(axis=1) / n_items  # (S,)
    grand = float(seed_means.mean())
    avg = sums.mean(axis=0)  # seed-averaged cluster sums
    v_items = n_clusters / (n_clusters - 1) * float(np.sum((avg - counts * grand) ** 2)) / n_items ** 2
    v_seeds = float(np.var(seed_means, ddof=1)) / n_seeds if n_seeds > 1 else 0.0
    v = v_items + v_seeds
    if v <= 0:
        return 0.0, math.inf
    up = v_seeds * (n_seeds - 1) / _chi2_ppf(0.25, n_seeds - 1) if n_seeds > 1 else 0.0  # for df only
    den = v_items ** 2 / (n_clusters - 1) + (up ** 2 / (n_seeds - 1) if n_seeds > 1 else 0.0)
    return math.sqrt(v), ((v_items + up) ** 2 / den if den > 0 else math.inf)


def _chi2_ppf(q: float, df: float) -> float:
    """Chi-square quantile by Wilson-Hilferty (within ~2% at df 1-2, closer above; used for a df only)."""
    z = NormalDist().inv_cdf(q)
    return df * max(1e-3, 1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


SCORE_RANGE = (0.0, 1.0)  # an item's score, so any accuracy
DIFF_RANGE = (-1.0, 1.0)  # a paired difference of two scores


def _estimate(matrix, clusters, n_boot, level, seed, p_value=False, bounds=SCORE_RANGE) -> Estimate:
    """bounds: the values the estimated mean can take. The t-expanded interval is cut to them (with 2 tSC
    documents at smoke, t(1 df) would print [-7, 143]%); that never removes a possible true value, so
    coverage is unchanged."""
    _check_boot(n_boot, level)
    boot, method = _resample(matrix, clusters, int(n_boot), seed)
    q = 1 - (1 - level) / 2
    pct_lo, pct_hi = (float(x) for x in np.quantile(boot, [1 - q, q]))
    mean = float(matrix.mean())
    se, df = _robust_se(matrix, clusters)
    spread = float(boot.std())
    lo, hi = pct_lo, pct_hi
    if se > 0 and spread > 0:  # expand the percentile interval about the estimate to t_df x SE (module doc)
        factor = t_ppf(q, df) * se / (NormalDist().inv_cdf(q) * spread)
        lo, hi = mean - factor * (mean - pct_lo), mean + factor * (pct_hi - mean)
        method += f", expanded to t({df:.0f} df)·SE" if df < 1e6 else ", expanded to z·SE"
    p = None
    if p_value:
        if se > 0:  # two-sided, from the same t and SE the interval was expanded to
            p = float(min(1.0, 2 * (1 - t_cdf(abs(mean) / se, df))))
        else:  # no spread: the percentile rule (ties count on both sides; +1 keeps it above zero)
            tail = min(np.sum(boot <= 0), np.sum(boot >= 0))
            p = float(min(1.0, 2 * (tail + 1) / (n_boot + 1)))
    lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return Estimate(mean, float(lo), float(hi), matrix.shape[1], int(n_boot), level, seed, method, p,
                    se=float(se), df=float(df) if math.isfinite(df) else None, pct_lo=pct_lo, pct_hi=pct_hi)


def bootstrap_ci(values, clusters=None, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Percentile CI of mean accuracy. With ``clusters`` (e.g. document ids) whole clusters are resampled,
    because items sharing a source are not independent and an item bootstrap would be too narrow."""
    return _estimate(_array(values, "values")[None, :], clusters, n_boot, level, seed)


def hierarchical_ci(matrix, clusters=None, n_boot: int = 10_000, level: float = 0.95, seed: int = 0,
                    bounds: tuple[float, float] = DIFF_RANGE) -> Estimate:
    """CI over training seeds AND items of (n_seeds, n_items) per-seed paired differences, or of scores
    (accuracy: pass bounds=SCORE_RANGE; the default never cuts a possible value of either).

    Resampling seeds as well counts run-to-run variance, which an item bootstrap of one run ignores.
    """
    return _estimate(_array(matrix, "matrix", 2), clusters, n_boot, level, seed, bounds=bounds)


def _paired_diff(a, b) -> np.ndarray:
    a, b = _array(a, "a"), _array(b, "b")
    if a.shape != b.shape:
        raise InputError(f"a and b must score the same items: {a.size} vs {b.size} scores")
    return b - a


def paired_bootstrap(a, b, clusters=None, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> Estimate:
    """CI and two-sided p-value of mean(b) - mean(a) on the same items, resampling items jointly so the
    shared item difficulty cancels (much tighter than comparing two separate CIs)."""
    return _estimate(_paired_diff(a, b)[None, :], clusters, n_boot, level, seed, p_value=True, bounds=DIFF_RANGE)


def tost(a, b, margin: float = 0.02, clusters=None, alpha: float = 0.05, n_boot: int = 10_000,
         seed: int = 0) -> dict:
    """Equivalence (two one-sided tests): b - a lies within ±margin iff the (1 - 2·alpha) bootstrap CI of
    the paired difference does. Failing to find a difference is not evidence of none; this test is.

    a and b are 1-D per-item scores of one run each, or 2-D (n_seeds, n_items) with row k of a paired with
    row k of b (the same seed id): then the interval is the hierarchical one over seeds × items of the
    per-seed differences, the same interval `hierarchical_ci(b - a)` shows, at level 1 - 2·alpha."""
    if not margin > 0:
        raise InputError(f"margin must be positive (accuracy units, 0.02 = 2 points), got {margin!r}")
    if not 0 < alpha < 0.5:
        raise InputError(f"alpha must be between 0 and 0.5, got {alpha!r}")
    if np.ndim(a) == 2 or np.ndim(b) == 2:
        a2, b2 = _array(a, "a", 2), _array(b, "b", 2)
        if a2.shape != b2.shape:
            raise InputError(f"a and b must be the same seeds × items: shapes {a2.shape} vs {b2.shape}")
        diff = b2 - a2
    else:
        diff = _paired_diff(a, b)[None, :]
    est = _estimate(diff, clusters, n_boot, 1 - 2 * alpha, seed, bounds=DIFF_RANGE)
    return {"equivalent": bool(-margin < est.lo and est.hi < margin), "margin": margin, "alpha": alpha,
            "mean": est.mean, "lo": est.lo, "hi": est.hi, "level": est.level, "n": est.n,
            "n_boot": est.n_boot, "seed": seed, "method": f"TOST via {est.method}"}


def _z_sum(power: float, alpha: float) -> float:
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise InputError(f"power and alpha must be between 0 and 1, got power={power!r}, alpha={alpha!r}")
    z = NormalDist().inv_cdf
    return z(1 - alpha / 2) + z(power)


def _check_n_p(n_items: int, p: float) -> None:
    if n_items < 1:
        raise InputError(f"n_items must be at least 1, got {n_items!r}")
    if not 0 < p < 1:
        raise InputError(f"p (the expected accuracy) must be between 0 and 1, got {p!r}")


def _check_deff(deff: float) -> None:
    if not (deff >= 1 and math.isfinite(deff)):
        raise InputError(f"deff (the design effect) must be a finite number >= 1, got {deff!r}")


def mde(n_items: int, power: float = 0.8, alpha: float = 0.05, p: float = 0.5, paired: bool = False,
        rho: float = 0.0, deff: float = 1.0) -> float:
    """Smallest accuracy difference between two conditions on the same n items detectable with ``power``.

    Normal approximation (z_{1-α/2} + z_power)·sqrt(2·p(1-p)·deff/n). This is conservative: runs scored on
    the same items are positively correlated, which shrinks the variance of the difference. Pass
    ``paired=True`` with an item-level correlation ``rho`` to scale the variance by (1 - rho). Items that
    share a cluster (a word's pseudowords, a document's passages) carry less information than independent
    ones: ``deff`` (see `design_effect`) divides n into the effective n = n / deff.
    """
    _check_n_p(n_items, p)
    _check_deff(deff)
    if paired and not -1 <= rho < 1:
        raise InputError(f"rho must be in [-1, 1), got {rho!r}")
    shrink = (1 - rho) if paired else 1.0
    return _z_sum(power, alpha) * math.sqrt(2 * p * (1 - p) * shrink * deff / n_items)


def mde_vs_chance(n_items: int, power: float = 0.8, alpha: float = 0.05, p: float = 0.5,
                  deff: float = 1.0) -> float:
    """Smallest distance of one accuracy from a fixed value (chance) detectable on n items (n / deff
    effective items when they are clustered)."""
    _check_n_p(n_items, p)
    _check_deff(deff)
    return _z_sum(power, alpha) * math.sqrt(p * (1 - p) * deff / n_items)


def design_effect(values, clusters=None) -> float:
    """Kish's design effect of the mean of clustered per-item scores, measured on the scores themselves:
    the cluster-robust variance of the mean (CR1, from the cluster sums) over the variance it would have if
    the items were independent (s²/n) — 1 + (m̄ - 1)·ICC for clusters of equal size m̄. A (n_seeds, n_items)
    matrix is averaged over seeds first. Floored at 1 (a smaller value is noise or a negative ICC, and an
    MDE should not shrink on it); 1 without clusters, with one cluster, or when every score is equal."""
    arr = np.asarray(values, dtype=float)
    arr = _array(arr.mean(axis=0) if arr.ndim == 2 else arr, "values")
    n = arr.size
    codes, n_clusters = _cluster_codes(clusters, n)
    if clusters is None or n_clusters < 2 or n < 2:
        return 1.0
    s2 = float(np.var(arr, ddof=1))
    if s2 <= 0:
        return 1.0
    resid = np.bincount(codes, weights=arr - arr.mean(), minlength=n_clusters)
    v_cr = n_clusters / (n_clusters - 1) * float(np.sum(resid ** 2)) / n ** 2
    return max(1.0, v_cr / (s2 / n))


def verdict(diff: Estimate, tost_result: dict | None = None) -> str:
    """Plain-words reading of a paired difference b - a. A CI that spans zero is never "no effect":
    it is "equivalent" only when TOST shows it, otherwise "cannot tell". A CI clear of zero wins."""
    if diff.lo > 0:
        return "b higher"
    if diff.hi < 0:
        return "b lower"
    if tost_result is not None and tost_result.get("equivalent"):
        return f"equivalent within ±{tost_result['margin'] * 100:g} points"
    return "cannot tell"


def gap_closed(start, remedy, target, clusters=None, level: float = 0.95) -> dict:
    """The share of the start → target gap a remedy closes: (remedy − start) / (target − start), of mean
    accuracies on common items (e.g. speech-varied → phone, remedy speech-dedup), with Fieller's interval.

    Arrays are (n_items,) scores, or (n_seeds, n_items) averaged over seeds first (then the interval counts
    item and cluster variance only, not seed variance: the method says so). Fieller's interval uses the
    cluster-robust (CR1) covariance of the two mean differences and t with C−1 df, the correlation between
    them included (they share `start`). When the gap itself is not clear of zero at this level the interval
    is unbounded: "cannot tell" (bench/coverage.py measures its coverage).
    """
    s, r, t = (np.asarray(x, dtype=np.float64) for x in (start, remedy, target))
    seeds = s.ndim == 2
    s, r, t = (x.mean(axis=0) if x.ndim == 2 else x for x in (s, r, t))
    if not (s.shape == r.shape == t.shape) or s.ndim != 1 or len(s) == 0:
        raise InputError("gap_closed: start, remedy and target need scores on the same items")
    num, den = r - s, t - s
    n = len(s)
    codes, n_clusters = _cluster_codes(clusters, n)
    q = 1 - (1 - level) / 2
    m_n, m_d = float(num.mean()), float(den.mean())
    method = f"Fieller, CR1 over {n_clusters} {'items' if clusters is None else 'clusters'}" + \
        (", seed-averaged items (seed variance not counted)" if seeds else "")
    out = {"closed": m_n / m_d if m_d != 0 else math.nan, "remedy_minus_start": m_n, "gap": m_d, "n": n,
           "level": level, "method": method, "lo": -math.inf, "hi": math.inf, "verdict": "cannot tell"}
    if n_clusters < 2:
        return out
    counts = np.bincount(codes, minlength=n_clusters).astype(float)
    cn = np.bincount(codes, weights=num, minlength=n_clusters) - counts * m_n
    cd = np.bincount(codes, weights=den, minlength=n_clusters) - counts * m_d
    k = n_clusters / (n_clusters - 1) / n ** 2
    v_nn, v_dd, v_nd = k * float(cn @ cn), k * float(cd @ cd), k * float(cn @ cd)
    tq = t_ppf(q, n_clusters - 1)
    out["gap_lo"], out["gap_hi"] = m_d - tq * math.sqrt(v_dd), m_d + tq * math.sqrt(v_dd)
    # (m_n − θ m_d)² ≤ t² (v_nn − 2θ v_nd + θ² v_dd)  ⇔  a θ² + b θ + c ≤ 0
    a = m_d ** 2 - tq ** 2 * v_dd
    b = -2 * (m_n * m_d - tq ** 2 * v_nd)
    c = m_n ** 2 - tq ** 2 * v_nn
    if a <= 0:  # the gap's own interval holds zero: the ratio is unbounded
        return out
    disc = b * b - 4 * a * c
    root = math.sqrt(max(disc, 0.0))
    out["lo"], out["hi"] = (-b - root) / (2 * a), (-b + root) / (2 * a)
    out["verdict"] = "closes part" if out["lo"] > 0 and out["hi"] < 1 else \
        "closes none (or widens)" if out["hi"] < 0 else "closes it all (or more)" if out["lo"] > 1 else \
        "some, cannot tell how much" if out["lo"] > 0 else "cannot tell"
    return out
