"""Uncertainty for pair accuracy: bootstrap CIs, paired differences, equivalence tests, detectable effects.

Per-item scores are in {0, 0.5, 1} and accuracy is their mean. Every resampling function is deterministic
for a given ``seed`` and draws in chunks, so 10k items x 10k resamples stays within a few tens of MB.
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


def _estimate(matrix, clusters, n_boot, level, seed, p_value=False) -> Estimate:
    _check_boot(n_boot, level)
    boot, method = _resample(matrix, clusters, int(n_boot), seed)
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    p = None
    if p_value:
        # Two-sided p from the percentile interval that just touches 0 (ties count on both sides:
        # conservative); +1 keeps it above zero for a finite number of resamples.
        tail = min(np.sum(boot <= 0), np.sum(boot >= 0))
        p = float(min(1.0, 2 * (tail + 1) / (n_boot + 1)))
    return Estimate(float(matrix.mean()), float(lo), float(hi), matrix.shape[1], int(n_boot), level, seed, method, p)


def bootstrap_ci(values, clusters=None, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Percentile CI of mean accuracy. With ``clusters`` (e.g. document ids) whole clusters are resampled,
    because items sharing a source are not independent and an item bootstrap would be too narrow."""
    return _estimate(_array(values, "values")[None, :], clusters, n_boot, level, seed)


def hierarchical_ci(matrix, clusters=None, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> Estimate:
    """CI of accuracy over training seeds AND items: (n_seeds, n_items) scores on the same items.

    Resampling seeds as well counts run-to-run variance, which an item bootstrap of one run ignores.
    """
    return _estimate(_array(matrix, "matrix", 2), clusters, n_boot, level, seed)


def _paired_diff(a, b) -> np.ndarray:
    a, b = _array(a, "a"), _array(b, "b")
    if a.shape != b.shape:
        raise InputError(f"a and b must score the same items: {a.size} vs {b.size} scores")
    return b - a


def paired_bootstrap(a, b, clusters=None, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> Estimate:
    """CI and two-sided p-value of mean(b) - mean(a) on the same items, resampling items jointly so the
    shared item difficulty cancels (much tighter than comparing two separate CIs)."""
    return _estimate(_paired_diff(a, b)[None, :], clusters, n_boot, level, seed, p_value=True)


def tost(a, b, margin: float = 0.02, clusters=None, alpha: float = 0.05, n_boot: int = 10_000,
         seed: int = 0) -> dict:
    """Equivalence (two one-sided tests): b - a lies within ±margin iff the (1 - 2·alpha) bootstrap CI of
    the paired difference does. Failing to find a difference is not evidence of none; this test is."""
    if not margin > 0:
        raise InputError(f"margin must be positive (accuracy units, 0.02 = 2 points), got {margin!r}")
    if not 0 < alpha < 0.5:
        raise InputError(f"alpha must be between 0 and 0.5, got {alpha!r}")
    est = _estimate(_paired_diff(a, b)[None, :], clusters, n_boot, 1 - 2 * alpha, seed)
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


def mde(n_items: int, power: float = 0.8, alpha: float = 0.05, p: float = 0.5, paired: bool = False,
        rho: float = 0.0) -> float:
    """Smallest accuracy difference between two conditions on the same n items detectable with ``power``.

    Normal approximation (z_{1-α/2} + z_power)·sqrt(2·p(1-p)/n). This is conservative: runs scored on the
    same items are positively correlated, which shrinks the variance of the difference. Pass
    ``paired=True`` with an item-level correlation ``rho`` to scale the variance by (1 - rho).
    """
    _check_n_p(n_items, p)
    if paired and not -1 <= rho < 1:
        raise InputError(f"rho must be in [-1, 1), got {rho!r}")
    shrink = (1 - rho) if paired else 1.0
    return _z_sum(power, alpha) * math.sqrt(2 * p * (1 - p) * shrink / n_items)


def mde_vs_chance(n_items: int, power: float = 0.8, alpha: float = 0.05, p: float = 0.5) -> float:
    """Smallest distance of one accuracy from a fixed value (chance) detectable on n items."""
    _check_n_p(n_items, p)
    return _z_sum(power, alpha) * math.sqrt(p * (1 - p) / n_items)


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
