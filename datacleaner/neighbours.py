"""Cosine nearest neighbours of unit vectors: the search behind the health checks.

Up to EXACT_SEARCH base vectors the search is exact: torch matrix products, a block of queries
at a time. Above, an HNSW graph from usearch: bench/neighbours.py measured the candidates, and
on 2 cores the exact search is faster up to about 130,000 vectors; above, the graph finds 99.7%
of the 10 nearest and every near duplicate, and usearch has no OpenMP runtime to clash with
torch's (faiss-cpu's crashes beside torch on macOS and Windows) and wheels for Linux, macOS and
Windows. The graph is built on one thread, which makes it, and so the neighbours, the same on
every run (a multi-threaded build is not); the queries use torch's threads.
"""

from __future__ import annotations

import numpy as np

EXACT_SEARCH = 100_000  # up to this many base vectors the search is exact; above, usearch's HNSW graph
BLOCK = 1024  # queries per matrix product in the exact search
SIMS_BUDGET = 2**23  # similarities held at once in the exact search (32 MB of float32; as fast as 128 MB, a third of the peak)
CHUNK = 65536  # vectors read, added or searched at a time
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 32, 128, 128  # the graph's edges per node and search widths


def nearest(queries: np.ndarray, base: np.ndarray | None = None, k: int = 10, *,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """((Nq, k) float32 cosine similarities, (Nq, k) int64 indices into base), most similar first
    (equal similarities by index), of unit vectors (float16 or float32, arrays or memory maps);
    base None: the queries among themselves, each leaving itself out. Missing neighbours (fewer
    than k candidates) have similarity -inf and index -1. `seed` is kept for callers of the old
    index; the search uses no randomness."""
    self_search = base is None
    base = queries if self_search else base
    Nq, Nb, k = len(queries), len(base), max(1, k)
    sims = np.full((Nq, k), -np.inf, dtype=np.float32)
    idx = np.full((Nq, k), -1, dtype=np.int64)
    if Nq == 0 or Nb == 0:
        return sims, idx
    import torch

    threads = max(1, torch.get_num_threads())
    search = _exact if Nb <= EXACT_SEARCH else _graph
    for s, top_sim, top_idx in search(queries, base, k, self_search, threads):
        sims[s : s + len(top_sim), : top_sim.shape[1]] = top_sim
        idx[s : s + len(top_idx), : top_idx.shape[1]] = top_idx
    order = np.lexsort((idx, -sims), axis=1)  # most similar first, ties by index
    sims, idx = np.take_along_axis(sims, order, axis=1), np.take_along_axis(idx, order, axis=1)
    idx[~np.isfinite(sims)] = -1
    return sims, idx


def _exact(queries, base, k, self_search, threads):
    """Yield (first row, (n, m) similarities, (n, m) indices) per block of queries: the m = min(k, Nb)
    most similar base vectors; where the m-th is tied with vectors left out, the lowest indices."""
    import torch

    B = torch.from_numpy(np.array(base, dtype=np.float32))  # a copy: memory maps are read-only
    Nb, m = len(B), min(k, len(B))
    block = max(1, min(BLOCK, SIMS_BUDGET // Nb))
    for s in range(0, len(queries), block):
        q = torch.from_numpy(np.array(queries[s : s + block], dtype=np.float32))
        sims = q @ B.T  # (n, Nb)
        if self_search:
            rows = torch.arange(len(q))
            sims[rows, rows + s] = -np.inf
        top_sim, top = torch.topk(sims, m, dim=1)
        tied = torch.nonzero((sims >= top_sim[:, -1:]).sum(dim=1) > m).flatten()
        if len(tied):  # more candidates than places at the m-th similarity: keep the lowest indices
            again, order = torch.sort(sims[tied], dim=1, descending=True, stable=True)
            top_sim[tied], top[tied] = again[:, :m], order[:, :m]
        yield s, top_sim.numpy(), top.numpy().astype(np.int64)


def _graph(queries, base, k, self_search, threads):
    """Yield (first row, similarities, indices) per chunk of queries from an HNSW graph of base
    (inner product; usearch imported here, only for large searches)."""
    from usearch.index import Index

    index = Index(ndim=base.shape[1], metric="ip", dtype="f16", connectivity=CONNECTIVITY,
                  expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
    for s in range(0, len(base), CHUNK):
        part = np.asarray(base[s : s + CHUNK], dtype=np.float16)
        index.add(np.arange(s, s + len(part), dtype=np.uint64), part, threads=1)  # one thread: the same graph every run
    extra = 1 if self_search else 0
    for s in range(0, len(queries), CHUNK):
        q = np.asarray(queries[s : s + CHUNK], dtype=np.float16)
        found = index.search(q, k + extra, threads=threads)
        ok = np.arange(k + extra)[None] < np.asarray(found.counts)[:, None]
        top = np.where(ok, np.asarray(found.keys).astype(np.int64), -1)
        top_sim = np.full(top.shape, -np.inf, dtype=np.float32)
        top_sim[ok] = 1.0 - np.asarray(found.distances, dtype=np.float32)[ok]  # usearch's ip distance is 1 - dot
        if self_search:  # leave each query out; where the graph did not return it, drop the last
            mine = top == np.arange(s, s + len(q))[:, None]
            mine[~mine.any(axis=1), -1] = True
            top, top_sim = top[~mine].reshape(len(q), k), top_sim[~mine].reshape(len(q), k)
        yield s, top_sim, top
