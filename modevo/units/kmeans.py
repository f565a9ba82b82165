"""Deterministic k-means in torch: k-means++ seeding, Lloyd iterations, distances computed in chunks (fp32).

Deterministic for a seed on one machine: all randomness comes from one seeded torch.Generator, chunks have
a fixed size (not the thread count), sums are accumulated in fp64, ties go to the lowest index, and empty
clusters are refilled by a fixed rule (the points farthest from their centroid).

At the paper's size (K = 2048 on ~1 M HuBERT frames of 768 dimensions) two options apply: `device="cuda"`
runs the distances, sums and seeding on the GPU (the data moves there once for Lloyd; on a GPU the sums'
order is not fixed, so centroids agree with a CPU fit to fp64 rounding, not bit for bit), and
`batch_size=B > 0` replaces full Lloyd passes by mini-batch k-means (Sculley 2010: each centroid moves to
the running mean of the points ever assigned to it, per-centroid rate 1/count) over seeded mini-batches of B
rows, moved to the device one at a time; `iters` then counts epochs over the data, and the inertia of every
epoch is recorded (it decreases: tested at K = 2048).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger("modevo.units")

CHUNK = 16384  # rows per distance block: (16384, K) fp32 is 32 MB at K = 500
MIN_ROWS = 16  # see _nearest
INIT_POINTS_PER_CLUSTER = 32  # k-means++ seeds from at most 32·k points: Lloyd does the rest, far sooner


def _as_tensor(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.to(torch.float32).contiguous()


def _nearest(x: torch.Tensor, centroids: torch.Tensor, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """(index, squared distance) of each row's nearest centroid; x (N, D), centroids (K, D)."""
    c_sq = centroids.square().sum(1)  # (K,)
    idx = torch.empty(len(x), dtype=torch.int64, device=x.device)
    dist = torch.empty(len(x), dtype=torch.float32, device=x.device)
    for a in range(0, len(x), chunk):
        xb = x[a:a + chunk]  # (B, D)
        # ||x - c||² = ||x||² - 2 x·c + ||c||²; ||x||² does not change the argmin, so it is added after.
        # At least MIN_ROWS rows: BLAS rounds a product of 1-3 rows differently (a row's distances must not
        # depend on how many rows came with it: a lone utterance's units equal a batch's)
        xp = xb if len(xb) >= MIN_ROWS else torch.cat([xb, xb.new_zeros(MIN_ROWS - len(xb), xb.shape[1])])
        d = torch.addmm(c_sq.unsqueeze(0), xp, centroids.T, alpha=-2.0)[:len(xb)]  # (B, K)
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
            u = torch.tensor([u], dtype=torch.float64, device=d2.device)
            pick = min(int(torch.searchsorted(torch.cumsum(d2, 0), u)), n - 1)
        centroids.append(x[pick])
        d2 = torch.minimum(d2, dist_to(pick))
    return torch.stack(centroids)


@dataclass
class KMeansResult:
    centroids: torch.Tensor  # (K, D) float32
    iterations: int  # Lloyd iterations run
    mean_sq_distance: float  # mean squared distance of a row to its nearest centroid (last assignment)
    converged: bool  # no assignment changed in the last iteration
    history: list = None  # inertia (mean squared distance) after each iteration / mini-batch epoch


def fit(x, k: int, iters: int = 40, seed: int = 0, chunk: int = CHUNK, tol: float = 0.0, device: str = "cpu",
        batch_size: int = 0) -> torch.Tensor:
    """(k, D) float32 centroids of x (N, D) after k-means++ seeding and at most `iters` Lloyd iterations.

    Stops early when no assignment changes (or the relative inertia gain is below tol).
    """
    return run(x, k, iters, seed, chunk, tol, device, batch_size).centroids


def _seed(x: torch.Tensor, k: int, gen: torch.Generator, device: str) -> torch.Tensor:
    """k-means++ on at most INIT_POINTS_PER_CLUSTER · k rows of x (a seeded subset), on device."""
    n = len(x)
    pool = x
    if n > INIT_POINTS_PER_CLUSTER * k:
        pool = x[torch.randperm(n, generator=gen)[:INIT_POINTS_PER_CLUSTER * k].sort().values]
    return kmeans_pp(pool.to(device), k, gen)


def _check(x, k: int) -> torch.Tensor:
    x = _as_tensor(x)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"k-means needs a non-empty (N, D) array, got shape {tuple(x.shape)}")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    return x


def run(x, k: int, iters: int = 40, seed: int = 0, chunk: int = CHUNK, tol: float = 0.0, device: str = "cpu",
        batch_size: int = 0) -> KMeansResult:
    """fit(), with how it went. batch_size > 0: mini-batch k-means (see the module doc)."""
    x = _check(x, k)
    if batch_size > 0:
        return minibatch(x, k, iters, seed, batch_size, chunk, tol, device)
    x = x.to(device)
    n = len(x)
    gen = torch.Generator().manual_seed(seed)
    centroids = _seed(x, k, gen, device)
    prev_idx, prev_inertia, inertia, converged, it = None, None, float("nan"), False, -1
    history = []
    for it in range(iters):
        idx, dist = _nearest(x, centroids, chunk)
        inertia = float(dist.double().sum())
        history.append(inertia / n)
        sums = torch.zeros(k, x.shape[1], dtype=torch.float64, device=x.device)  # (K, D), fp64: order is moot
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
    return KMeansResult(centroids.contiguous().cpu(), it + 1, inertia / n, converged, history)


def inertia_of(x: torch.Tensor, centroids: torch.Tensor, chunk: int = CHUNK, device: str = "cpu") -> float:
    """Mean squared distance of the rows of x to their nearest centroid (x moved to device by chunks)."""
    total = 0.0
    for a in range(0, len(x), chunk):
        total += float(_nearest(x[a:a + chunk].to(device), centroids, chunk)[1].double().sum())
    return total / len(x)


def minibatch(x: torch.Tensor, k: int, epochs: int = 10, seed: int = 0, batch_size: int = 65536, chunk: int = CHUNK,
              tol: float = 0.0, device: str = "cpu") -> KMeansResult:
    """Mini-batch k-means (Sculley 2010) of x (N, D) kept where it is (CPU memory); each seeded mini-batch of
    batch_size rows goes to device. A centroid is the running mean of every point assigned to it so far
    (fp64 counts and sums of the update), so late batches move it less. Stops after `epochs` passes, or
    when an epoch's inertia gain is below tol (relative). Empty-from-the-start centroids are left as seeded."""
    x = _check(x, k)
    n, d = x.shape
    gen = torch.Generator().manual_seed(seed)
    centroids = _seed(x, k, gen, device).double()  # (K, D) fp64 master copy
    counts = torch.zeros(k, dtype=torch.float64, device=device)
    history = [inertia_of(x, centroids.float(), chunk, device)]  # after seeding
    epoch = 0
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        for a in range(0, n, batch_size):
            xb = x[order[a:a + batch_size].sort().values].to(device)  # (B, D)
            idx = _nearest(xb, centroids.float(), chunk)[0]
            nb = torch.bincount(idx, minlength=k).double()  # (K,)
            sums = torch.zeros(k, d, dtype=torch.float64, device=device).index_add_(0, idx, xb.double())
            counts += nb
            hit = nb > 0
            # running mean: c ← c + (Σ x − n_b c) / count, i.e. per-centroid learning rate n_b / count
            centroids[hit] += (sums[hit] - nb[hit, None] * centroids[hit]) / counts[hit, None]
        history.append(inertia_of(x, centroids.float(), chunk, device))
        log.debug("mini-batch k-means epoch %d: inertia %.6g", epoch, history[-1])
        if tol > 0 and history[-2] - history[-1] <= tol * history[-2]:
            break
    return KMeansResult(centroids.float().contiguous().cpu(), epoch + 1, history[-1], False, history)
