"""Seeded k-means: deterministic, exact nearest-centroid assignment, finds obvious clusters."""

import numpy as np
import torch

from modevo.units import kmeans


def blobs(n_per=200, k=6, d=8, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.randn(k, d) * 10
    x = np.concatenate([c + rng.randn(n_per, d) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


def test_same_seed_same_centroids_other_seed_other_start():
    x, _ = blobs()
    a = kmeans.fit(x, 6, iters=20, seed=3)
    b = kmeans.fit(x, 6, iters=20, seed=3)
    assert torch.equal(a, b)
    c = kmeans.fit(np.random.RandomState(1).randn(500, 4), 20, iters=3, seed=4)
    d = kmeans.fit(np.random.RandomState(1).randn(500, 4), 20, iters=3, seed=5)
    assert not torch.equal(c, d)


def test_assign_equals_brute_force_argmin():
    rng = np.random.RandomState(0)
    x = rng.randn(3000, 16).astype(np.float32)
    c = rng.randn(37, 16).astype(np.float32)
    brute = ((x[:, None, :].astype(np.float64) - c[None].astype(np.float64)) ** 2).sum(-1).argmin(1)
    got = kmeans.assign(x, c, chunk=512)  # several chunks, one partial
    assert got.dtype == torch.int64
    assert np.array_equal(got.numpy(), brute)


def test_recovers_separated_clusters():
    x, truth = blobs()
    got = kmeans.assign(x, kmeans.fit(x, 6, iters=30, seed=0)).numpy()
    # each found cluster is one true cluster and vice versa
    pairs = {(int(t), int(g)) for t, g in zip(truth, got)}
    assert len(pairs) == 6 and len({g for _, g in pairs}) == 6


def test_more_clusters_than_distinct_points_is_finite():
    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)  # 3 distinct points
    c = kmeans.fit(x, 5, iters=5, seed=0)
    assert c.shape == (5, 3) and torch.isfinite(c).all()
    assert len(set(kmeans.assign(x, c).tolist())) == 3
