"""Pairs of near copies: perceptual-hash candidates (multi-index hashing), nearest neighbours in compact
features, and the stand-out test that keeps copies apart from mere look-alikes; exact-copy groups by
pixel digests.  [numpy]

Similarity is cosine similarity of unit vectors (higher = closer); a hash distance is a count of
differing bits (lower = closer)."""

from __future__ import annotations

import numpy as np

from ..neighbours import nearest
from .facts import pixel_digests
from .rules import Thresholds

def _popcount(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    count = np.zeros(x.shape, dtype=np.int64)
    for shift in range(0, 64, 8):
        count += _BYTE_BITS[((x >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.int64)]
    return count


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def hash_pairs(hashes: np.ndarray, max_bits: int) -> np.ndarray:
    """(P, 2) index pairs i < j whose hashes differ in at most max_bits bits (multi-index hashing)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    pieces = max_bits + 1
    bounds = np.linspace(0, 64, pieces + 1).astype(int)
    found = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        key = (hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for a, b in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
            members = order[a:b]  # images sharing this piece: candidates
            i, j = np.triu_indices(len(members), k=1)
            close = _popcount(hashes[members[i]] ^ hashes[members[j]]) <= max_bits
            found.append(np.stack([members[i][close], members[j][close]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(found), axis=1)
    return np.unique(pairs, axis=0)


def groups_from_pairs(n: int, pairs: np.ndarray) -> np.ndarray:
    """(n,) group id per image: connected components of `pairs`; -1 for an image in no pair."""
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = root(int(i)), root(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([root(i) for i in range(n)])
    in_pair = np.zeros(n, dtype=bool)
    in_pair[pairs.ravel()] = True
    return np.where(in_pair, roots, -1)


def digest_groups(digests: np.ndarray, usable: np.ndarray | None = None) -> np.ndarray:
    """(N,) group id (the group's first image) of images with equal digests; -1 for an image with no copy."""
    N = len(digests)
    usable = np.ones(N, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    first: dict[bytes, int] = {}
    group = np.full(N, -1, dtype=np.int64)
    for i in np.flatnonzero(usable):
        group[i] = first.setdefault(np.asarray(digests[i]).tobytes(), i)
    counts = np.bincount(group[group >= 0], minlength=N)
    return np.where((group >= 0) & (counts[np.maximum(group, 0)] > 1), group, -1)


def exact_groups(pixels: np.ndarray, sizes: np.ndarray | None = None, usable: np.ndarray | None = None) -> np.ndarray:
    """(N,) group id (the group's first image) of images with the same decoded pixels (and the same
    original size, where known); -1 for an image with no copy. `usable` leaves unreadable rows out."""
    return digest_groups(pixel_digests(pixels, sizes), usable)


def near_groups(hashes: np.ndarray, usable: np.ndarray | None = None, max_bits: int = Thresholds.max_bits) -> np.ndarray:
    """(N,) near-duplicate group id (its smallest index) from perceptual hashes; -1 for none."""
    idx = np.arange(len(hashes)) if usable is None else np.flatnonzero(usable)
    pairs = idx[hash_pairs(np.asarray(hashes)[idx], max_bits)] if len(idx) else np.zeros((0, 2), dtype=np.int64)
    return groups_from_pairs(len(hashes), pairs)


def feature_pairs(sims: np.ndarray, idx: np.ndarray, min_similarity: float) -> np.ndarray:
    """(P, 2) pairs i < j of a self-search (`nearest(x)`) at least `min_similarity` alike."""
    rows, cols = np.nonzero(sims >= min_similarity)
    pairs = np.sort(np.stack([rows, idx[rows, cols]], axis=1), axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), dtype=np.int64)


def close_pairs(sims: np.ndarray, idx: np.ndarray, q_hashes: np.ndarray | None, b_hashes: np.ndarray | None,
                t: Thresholds) -> np.ndarray:
    """(Nq, k) bool: which of each query's nearest neighbours (`nearest`) are near duplicates by their
    features: similarity >= min_similarity, or >= loose_similarity with hashes within loose_bits; and
    in either case much closer than the query's k-th neighbour (distance at most `ratio` times
    that one's: a copy stands out from look-alikes, so a class whose features all bunch together,
    as a classifier's do, yields no pairs)."""
    last = np.where(np.isfinite(sims), sims, np.inf).min(axis=1, keepdims=True)  # the k-th (farthest kept) neighbour
    apart = (1 - sims) <= t.ratio * (1 - np.minimum(last, 1.0))
    close = sims >= t.min_similarity
    if q_hashes is not None and b_hashes is not None:
        found = idx >= 0
        bits = np.full(idx.shape, 64, dtype=np.int64)
        bits[found] = _popcount(np.repeat(np.asarray(q_hashes, dtype=np.uint64)[:, None], idx.shape[1], axis=1)[found]
                                ^ np.asarray(b_hashes, dtype=np.uint64)[idx[found]])
        close |= (sims >= t.loose_similarity) & (bits <= t.loose_bits)
    return close & apart & (idx >= 0)


def reach(sims: np.ndarray) -> np.ndarray:
    """(N,) each query's distance (1 - cosine similarity) to its k-th (farthest kept) nearest neighbour
    (`nearest`); inf for a query without neighbours."""
    last = np.where(np.isfinite(sims), sims, np.inf).min(axis=1) if sims.shape[1] else np.full(len(sims), np.inf)
    return np.where(np.isfinite(last), 1 - np.minimum(last, 1.0), np.inf)


def _pair_similarity(a: np.ndarray, b: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """(P,) cosine similarity of unit vectors a[i] and b[j], a block of pairs at a time."""
    out = np.empty(len(i), dtype=np.float32)
    for s in range(0, len(i), 65536):
        out[s : s + 65536] = np.einsum("pd,pd->p", np.asarray(a[i[s : s + 65536]], dtype=np.float32),
                                       np.asarray(b[j[s : s + 65536]], dtype=np.float32))
    return out


def near_pairs(hashes: np.ndarray | None, features: np.ndarray | None, t: Thresholds = Thresholds(), *,
               eligible: np.ndarray | None = None, knn: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(P, 2) pairs i < j of near duplicates among N images (exact copies are digest_groups' business).

    Candidates: perceptual hashes at most max_bits apart, and each image's nearest neighbours in the
    compact `features` (N, d) that close_pairs accepts. With features, every pair must stand out for
    both images: its distance at most `ratio` (`hash_ratio` for hash candidates) times each one's
    distance to its k-th neighbour (`reach`),
    so images that are merely alike (one writer's zeros, one breed photographed alike) do not pair
    while re-encoded, resized, shifted or cropped copies do. `eligible` (N,) bool: images that may pair
    (readable, not flat); `knn`: the features' self-search (`nearest`), if already made."""
    N = len(hashes) if hashes is not None else len(features)
    eligible = np.ones(N, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    use = np.flatnonzero(eligible)
    found = [np.zeros((0, 2), dtype=np.int64)]
    if hashes is not None and len(use):
        found.append(use[hash_pairs(np.asarray(hashes)[use], t.max_bits)])
    if features is not None:
        sims, idx = knn if knn is not None else nearest(features, k=t.neighbours)
        rows, cols = np.nonzero(close_pairs(sims, idx, hashes, hashes, t))
        found.append(np.stack([rows, idx[rows, cols]], axis=1))
    pairs = np.sort(np.concatenate(found).astype(np.int64), axis=1)
    pairs = pairs[(pairs[:, 0] != pairs[:, 1]) & eligible[pairs].all(axis=1)]
    pairs = np.unique(pairs, axis=0) if len(pairs) else pairs
    if features is None or not len(pairs):
        return pairs
    far = reach(sims)
    return _standing_out(pairs, features, features, hashes, hashes, np.minimum(far[pairs[:, 0]], far[pairs[:, 1]]), t)


def _standing_out(pairs: np.ndarray, q_features, b_features, q_hashes, b_hashes, far: np.ndarray, t: Thresholds) -> np.ndarray:
    """The `pairs` (query i, base j) whose feature distance is at most a share of `far` (P,), the distance to
    the look-alikes around them: hash_ratio where the hashes are within max_bits (the same layout already),
    else ratio."""
    sim = _pair_similarity(q_features, b_features, pairs[:, 0], pairs[:, 1])
    share = np.full(len(pairs), t.ratio)
    if q_hashes is not None and b_hashes is not None:
        bits = _popcount(np.asarray(q_hashes, dtype=np.uint64)[pairs[:, 0]] ^ np.asarray(b_hashes, dtype=np.uint64)[pairs[:, 1]])
        share = np.where(bits <= t.max_bits, t.hash_ratio, t.ratio)
    return pairs[(1 - sim) <= share * far]


def cross_pairs(q_hashes: np.ndarray, q_features: np.ndarray | None, b_hashes: np.ndarray, b_features: np.ndarray | None,
                t: Thresholds = Thresholds(), *, eligible: np.ndarray | None = None) -> np.ndarray:
    """(P, 2) pairs (query i, base j) of near duplicates between two sets of images, by near_pairs' rule
    (the distance to the query's k-th nearest image of the base standing for both sides): what `select`
    uses to recognise pool images already in the labeled set."""
    Nq = len(q_hashes)
    eligible = np.ones(Nq, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    both = np.concatenate([np.asarray(q_hashes, dtype=np.uint64), np.asarray(b_hashes, dtype=np.uint64)])
    candidates = hash_pairs(both, t.max_bits)
    found = [candidates[(candidates[:, 0] < Nq) & (candidates[:, 1] >= Nq)] - [0, Nq]]
    use_features = q_features is not None and b_features is not None and len(b_features)
    if use_features:
        sims, idx = nearest(q_features, b_features, k=t.neighbours)
        rows, cols = np.nonzero(close_pairs(sims, idx, q_hashes, b_hashes, t))
        found.append(np.stack([rows, idx[rows, cols]], axis=1))
    pairs = np.unique(np.concatenate(found).astype(np.int64), axis=0)
    pairs = pairs[eligible[pairs[:, 0]]] if len(pairs) else pairs.reshape(0, 2)
    if not use_features or not len(pairs):
        return pairs
    return _standing_out(pairs, q_features, b_features, q_hashes, b_hashes, reach(sims)[pairs[:, 0]], t)

