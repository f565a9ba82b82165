"""Deterministic k-means in torch: k-means++ seeding, Lloyd iterations, distances computed in chunks (fp32).

Deterministic for a seed on one machine: all randomness comes from one seeded torch.Generator, chunks have
a fixed size (not the thread count), sums are accumulated in fp64, ties go to the lowest index, and empty
clusters are refilled by a fixed rule (the points farthest from their centroid).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger("modevo.units")

CHUNK = 16384  # rows per distance block: (16384, K) fp32 is 32 MB at K = 500
INIT_POINTS_PER_CLUSTER = 32  # k-means++ seeds from at most 32·k points: Lloyd does the rest, far sooner


def _as_tensor(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.to(torch.float32).contiguous()


def _nearest(x: torch.Tensor, centroids: torch.Tensor, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """(index, squared distance) of each row's nearest centroid; x (N, D), centroids (K, D)."""
    c_sq = centroids.square().sum(1)  # (K,)
    idx = torch.empty(len(x), dtype=torch.int64)
    dist = torch.empty(len(x), dtype=torch.float32)
    for a in range(0, len(x), chunk):
        xb = x[a:a + chunk]  # (B, D)
        # ||x - c||² = ||x||² - 2 x·c + ||c||²; ||x||² does not change the argmin, so it is added after
        d = torch.addmm(c_sq.unsqueeze(0), xb, centroids.T, alpha=-2.0)  # (B, K)
        best, arg = d.min(dim=1)  # first minimum on ties
        idx[a:a + chunk] = arg
        dist[a:a + chunk] = (best + xb.square().sum(1)).clamp_min(0.0)
    return idx, dist


def assign(x, centroids, chunk: int = CHUNK) -> torch.Tensor:
    """(N,) int64 index of the nearest centroid (squared Euclidean) for every row of x (N, D)."""
    x, centroids = _as_tensor(x), _as_tensor(centroids)
    if x.ndim != 2 or centroids.ndim != 2 or x.shape[1] != centroids.shape[1]:
        raise ValueError(f"shapes do not match: x {tuple(x.shape)}, centroids {tuple(centroids.shape)}")
    return _nearest(x, centroids, chunk)[0]


def kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """(k, D) initial centroids by D² sampling (Arthur & Vassilvitskii 2007) from the rows of x (N, D)."""
    n = len(x)
    x_sq = x.square().sum(1)  # (N,)

    def dist_to(i: int) -> torch.Tensor:  # (N,) squared distance of every row to row i, as a mat-vec
        return (x_sq - 2.0 * torch.mv(x, x[i]) + x_sq[i]).clamp_min(0.0).double()

    first = int(torch.randint(n, (1,), generator=gen))
    centroids = [x[first]]
    d2 = dist_to(first)  # (N,) distance to the nearest chosen centroid
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:  # fewer distinct points than k: repeat one (Lloyd then refills it deterministically)
            pick = int(torch.randint(n, (1,), generator=gen))
        else:
            u = float(torch.rand((), generator=gen, dtype=torch.float64)) * total
            pick = min(int(torch.searchsorted(torch.cumsum(d2, 0), torch.tensor([u], dtype=torch.float64))), n - 1)
        centroids.append(x[pick])
        d2 = torch.minimum(d2, dist_to(pick))
    return torch.stack(centroids)


@dataclass
class KMeansResult:
    centroids: torch.Tensor  # (K, D) float32
    iterations: int  # Lloyd iterations run
    mean_sq_distance: float  # mean squared distance of a row to its nearest centroid (last assignment)
    converged: bool  # no assignment changed in the last iteration


def fit(x, k: int, iters: int = 40, seed: int = 0, chunk: int = CHUNK, tol: float = 0.0) -> torch.Tensor:
    """(k, D) float32 centroids of x (N, D) after k-means++ seeding and at most `iters` Lloyd iterations.

    Stops early when no assignment changes (or the relative inertia gain is below tol).
    """
    return run(x, k, iters, seed, chunk, tol).centroids


def run(x, k: int, iters: int = 40, seed: int = 0, chunk: int = CHUNK, tol: float = 0.0) -> KMeansResult:
    """fit(), with how it went."""
    x = _as_tensor(x)
    n = len(x)
    if x.ndim != 2 or n == 0:
        raise ValueError(f"k-means needs a non-empty (N, D) array, got shape {tuple(x.shape)}")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    gen = torch.Generator().manual_seed(seed)
    pool = x
    if n > INIT_POINTS_PER_CLUSTER * k:
        pool = x[torch.randperm(n, generator=gen)[:INIT_POINTS_PER_CLUSTER * k].sort().values]
    centroids = kmeans_pp(pool, k, gen)
    prev_idx, prev_inertia, inertia, converged, it = None, None, float("nan"), False, -1
    for it in range(iters):
        idx, dist = _nearest(x, centroids, chunk)
        inertia = float(dist.double().sum())
        sums = torch.zeros(k, x.shape[1], dtype=torch.float64)  # (K, D), fp64 so the order of adds is moot
        for a in range(0, n, chunk):
            sums.index_add_(0, idx[a:a + chunk], x[a:a + chunk].double())
        counts = torch.bincount(idx, minlength=k)  # (K,)
        empty = (counts == 0).nonzero().flatten()
        centroids = (sums / counts.clamp_min(1).unsqueeze(1)).float()
        if len(empty):
            # refill empty clusters with the points worst served by the current solution
            far = torch.topk(dist, min(len(empty), n)).indices
            centroids[empty[:len(far)]] = x[far]
        changed = n if prev_idx is None else int((idx != prev_idx).sum())
        log.debug("k-means iter %d: inertia %.6g, %d assignments changed, %d empty", it, inertia, changed, len(empty))
        if changed == 0 and not len(empty):
            converged = True
            break
        if tol > 0 and prev_inertia is not None and prev_inertia - inertia <= tol * prev_inertia:
            break
        prev_idx, prev_inertia = idx, inertia
    return KMeansResult(centroids.contiguous(), it + 1, inertia / n, converged)
