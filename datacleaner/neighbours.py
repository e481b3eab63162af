"""Cosine nearest neighbours of unit vectors: what the near-copy, leakage and outlier checks search.  [numpy, torch]"""

from __future__ import annotations

import numpy as np

CHUNK = 4096  # vectors per step of the assignment passes
EXACT_SEARCH = 8192  # up to this many base vectors, nearest neighbours are exact; above, an inverted-file index
CELL = 1000  # base vectors per cell of the inverted-file index
PROBES = 3  # cells each query visits


def _merge_top(best_sim, best_idx, sims, idx, rows, k):
    """Keep the k largest similarities per row among best_* (n, k) and the new (n, m)."""
    s = np.concatenate([best_sim[rows], sims], axis=1)
    i = np.concatenate([best_idx[rows], idx], axis=1)
    top = np.argpartition(-s, k - 1, axis=1)[:, :k] if s.shape[1] > k else np.arange(s.shape[1])[None].repeat(len(s), 0)
    best_sim[rows] = np.take_along_axis(s, top, axis=1)
    best_idx[rows] = np.take_along_axis(i, top, axis=1)


def _kmeans(x: np.ndarray, cells: int, seed: int, iters: int = 8) -> np.ndarray:
    """(cells, d) unit centroids by spherical k-means on a sample of at most 40 vectors per cell."""
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(len(x), min(len(x), 40 * cells), replace=False)].astype(np.float32)
    centroids = sample[rng.choice(len(sample), cells, replace=False)]
    for _ in range(iters):
        assign = (sample @ centroids.T).argmax(axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, sample)
        empty = np.bincount(assign, minlength=cells) == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()))]
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return centroids


def nearest(queries: np.ndarray, base: np.ndarray | None = None, k: int = 10, *, seed: int = 0,
            block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """((Nq, k) cosine similarities, (Nq, k) indices into base), most similar first, of unit
    vectors; base None: the queries among themselves, each leaving itself out. Missing
    neighbours (fewer than k candidates) have similarity -inf and index -1.

    Up to EXACT_SEARCH base vectors the search is exact, in blocks of `block` queries. Above,
    an inverted-file index: spherical k-means cells of about CELL base vectors, each query
    compared with the base vectors of its PROBES nearest cells; time about Nq x PROBES x CELL
    dot products, so linear in N, and memory a block of similarities at a time."""
    self_search = base is None
    base = queries if self_search else base
    Nq, Nb = len(queries), len(base)
    k = max(1, k)
    best_sim = np.full((Nq, k), -np.inf, dtype=np.float32)
    best_idx = np.full((Nq, k), -1, dtype=np.int64)
    if Nq == 0 or Nb == 0:
        return best_sim, best_idx
    if Nb <= EXACT_SEARCH:
        cells = [(np.arange(Nq), np.arange(Nb))]
    else:
        centroids = _kmeans(np.asarray(base), max(2, Nb // CELL), seed)
        base_cell = np.concatenate([(np.asarray(base[s : s + CHUNK], dtype=np.float32) @ centroids.T).argmax(axis=1)
                                    for s in range(0, Nb, CHUNK)])
        probes = np.concatenate([np.argpartition(-(np.asarray(queries[s : s + CHUNK], dtype=np.float32) @ centroids.T),
                                                 min(PROBES, len(centroids)) - 1, axis=1)[:, :PROBES].copy()
                                 for s in range(0, Nq, CHUNK)])
        order = np.argsort(base_cell, kind="stable")
        bounds = np.searchsorted(base_cell[order], np.arange(len(centroids) + 1))
        cells = []
        for c in range(len(centroids)):
            q = np.flatnonzero((probes == c).any(axis=1))
            if len(q):
                cells.append((q, order[bounds[c] : bounds[c + 1]]))
    import torch  # matrix products and top-k: several times faster than numpy's argpartition here

    for q_idx, b_idx in cells:
        B = torch.from_numpy(np.asarray(base[b_idx], dtype=np.float32))
        for s in range(0, len(q_idx), block):
            rows = q_idx[s : s + block]
            sims = torch.from_numpy(np.asarray(queries[rows], dtype=np.float32)) @ B.T  # (n, m)
            if self_search:  # b_idx is ascending: find each query's own column
                at = np.searchsorted(b_idx, rows)
                mine = np.flatnonzero((at < len(b_idx)) & (b_idx[np.minimum(at, len(b_idx) - 1)] == rows))
                sims[torch.from_numpy(mine), torch.from_numpy(at[mine])] = -np.inf
            top_sim, top = torch.topk(sims, min(k, sims.shape[1]), dim=1)
            top = top.numpy()
            _merge_top(best_sim, best_idx, top_sim.numpy(), b_idx[top], rows, k)
    order = np.argsort(-best_sim, axis=1, kind="stable")
    best_sim, best_idx = np.take_along_axis(best_sim, order, axis=1), np.take_along_axis(best_idx, order, axis=1)
    best_idx[~np.isfinite(best_sim)] = -1
    return best_sim, best_idx

