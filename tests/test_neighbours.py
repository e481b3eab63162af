"""neighbours.nearest: exact below the threshold (the same answers as health's exact search,
equal similarities ordered by index), usearch's graph above it (recall against brute force),
itself left out, padding, float16 and memory-mapped input, empty input."""

from __future__ import annotations

import numpy as np
import pytest

from datacleaner import health, neighbours


def clustered(n, d=128, centres=40, seed=0):
    """(n, d) float16 unit vectors around a few dozen centres, like compact features."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d))
    x = c[rng.integers(centres, size=n)] / np.sqrt(d) + 0.08 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def brute(q, b, k, self_search):
    """Brute force in numpy: the k most similar, ties by index, itself left out."""
    sims = q.astype(np.float64) @ b.astype(np.float64).T
    if self_search:
        np.fill_diagonal(sims, -np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(len(b)), sims.shape), -sims), axis=1)[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


def test_exact_search_is_health_exact_search():
    x, y = clustered(2000), clustered(500, seed=1)
    for args in [(x,), (y, x)]:
        new, (old_sims, old_idx) = neighbours.nearest(*args, k=10), health.nearest(*args, k=10)
        order = np.lexsort((old_idx, -old_sims), axis=1)  # health leaves equal similarities in any order
        assert np.array_equal(new[0], old_sims) and np.array_equal(new[1], np.take_along_axis(old_idx, order, axis=1))
    sims, idx = neighbours.nearest(x, k=10)
    assert (idx != np.arange(len(x))[:, None]).all() and (np.diff(sims, axis=1) <= 0).all()
    assert idx.dtype == np.int64 and sims.dtype == np.float32 and sims.shape == (2000, 10)


def test_equal_similarities_come_in_index_order():
    """Vectors with four entries of +-0.5: every dot product is exact, so ties are real ties."""
    rng = np.random.default_rng(2)
    x = np.zeros((400, 16), dtype=np.float32)
    for row in x:
        row[rng.choice(16, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    x[300:] = x[:100]  # exact copies
    sims, idx = neighbours.nearest(x, k=12)
    want_sims, want_idx = brute(x, x, 12, True)
    assert np.array_equal(idx, want_idx) and np.allclose(sims, want_sims)


def test_graph_search_finds_the_neighbours(monkeypatch):
    monkeypatch.setattr(neighbours, "EXACT_SEARCH", 100)
    data = clustered(3300)
    x, y = np.concatenate([data[:3000], data[:30]]), data[3000:]  # 30 copies; 300 queries like the base
    for q, b in [(x, None), (y, x)]:
        sims, idx = neighbours.nearest(q, b, k=10)
        _, want = brute(q, x, 10, b is None)
        recall = np.mean([len(set(i) & set(w)) / 10 for i, w in zip(idx, want)])
        assert recall >= 0.95, recall
        assert (np.diff(sims, axis=1) <= 0).all() and idx.min() >= 0
    sims, idx = neighbours.nearest(x, k=10)
    assert (idx != np.arange(len(x))[:, None]).all()
    assert (idx[3000:, 0] == np.arange(30)).all() and (idx[:30, 0] == np.arange(3000, 3030)).all()
    again = neighbours.nearest(x, k=10)  # the graph is built on one thread: the same every run
    assert np.array_equal(idx, again[1]) and np.array_equal(sims, again[0])


@pytest.mark.parametrize("threshold", [neighbours.EXACT_SEARCH, 2])
def test_fewer_than_k_candidates_are_padded(monkeypatch, threshold):
    monkeypatch.setattr(neighbours, "EXACT_SEARCH", threshold)
    x = clustered(4)
    sims, idx = neighbours.nearest(x, k=10)
    assert (idx[:, :3] >= 0).all() and (idx[:, 3:] == -1).all() and np.isneginf(sims[:, 3:]).all()
    assert (idx[:, :3] != np.arange(4)[:, None]).all()
    sims, idx = neighbours.nearest(x[:2], x[2:], k=3)
    assert set(idx[:, :2].ravel()) == {0, 1} and (idx[:, 2] == -1).all() and np.isneginf(sims[:, 2]).all()


def test_float16_and_memory_mapped_input(tmp_path):
    x = clustered(1000)
    path = tmp_path / "x.npy"
    np.save(path, x)
    want = neighbours.nearest(x.astype(np.float32), k=5)
    for q in [x, np.load(path, mmap_mode="r")]:
        got = neighbours.nearest(q, k=5)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    got = neighbours.nearest(np.load(path, mmap_mode="r")[:10], np.load(path, mmap_mode="r"), k=5)
    assert np.array_equal(got[1][:, 0], np.arange(10))  # each query is itself in the base


def test_empty_inputs():
    x = clustered(5)
    for q, b in [(x[:0], None), (x[:0], x), (x, x[:0])]:
        sims, idx = neighbours.nearest(q, b, k=3)
        assert sims.shape == idx.shape == (len(q), 3) and (idx == -1).all() and np.isneginf(sims).all()
