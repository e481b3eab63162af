"""Data health beside label errors: image properties, exact and near duplicates, conflicting labels, outliers.
[numpy; torch for the nearest-neighbour search's products]

Everything here works on what the single decode pass already produced: the decoded images
(N, S, S, 3) uint8 (each centre-cropped square at the cache size S) and, where known, each
file's original (width, height). One checker per issue type, its threshold named in
`Thresholds`, run from one property table (`properties`):

    dark              p99 of luminance          < dark          (low = dark)
    light             p5 of luminance           > light         (high = light)
    low_information   grey-level entropy / 8    < low_information
    blurry            Laplacian energy / contrast at 32 px < blurry and < blurry_relative x its 90th percentile
                      (not counted for low_information images)
    grayscale         mean |R-G| + |G-B|        < grayscale     (in 0..255 units)
    odd_aspect_ratio  min(w/h, h/w)             < odd_aspect_ratio
    odd_size          sqrt(w*h) / median        outside [1/odd_size, odd_size]

Duplicates: `exact_groups` groups images whose decoded pixels (and original size) are equal;
`near_groups` groups images whose 64-bit perceptual hashes (`phash`: DCT of a 32x32 grey
image, the 8x8 lowest frequencies against their median) differ in at most `max_bits` bits,
found by multi-index hashing (the hash cut into max_bits + 1 pieces: two hashes that close
share at least one piece exactly), so no all-pairs loop. Groups are the connected components
of the pairs found. `conflicts` marks groups whose members carry different labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

CHUNK = 4096  # images per step: the float copies of a chunk are all that is held at once
PROPERTY_ISSUES = ("dark", "light", "blurry", "low_information", "grayscale", "odd_aspect_ratio", "odd_size")
DUPLICATE_ISSUES = ("conflicting_labels", "duplicate", "near_duplicate")
ISSUES = ("conflicting_labels", "outlier", "duplicate", "near_duplicate", *PROPERTY_ISSUES)  # most important first
CHECK_GROUPS = {"all": ISSUES, "none": (), "duplicates": DUPLICATE_ISSUES, "properties": PROPERTY_ISSUES}
DROP = -2  # `Health.suggest`: suggest dropping the image
COMMON = 0.5  # an image property shared by more than this share of a dataset is the dataset's trait (a grayscale
#               dataset), not reported per image


@dataclass(frozen=True)
class Thresholds:
    # Chosen by bench/health.py on CIFAR-10 with planted problems (docs/health_benchmark.md).
    dark: float = 0.25  # p99 luminance in [0, 1]
    light: float = 0.80  # p5 luminance in [0, 1]
    low_information: float = 0.30  # entropy of the grey levels, bits / 8
    blurry: float = 0.20  # Laplacian RMS / grey-level std, measured at 32 px whatever the cache size ...
    blurry_relative: float = 0.5  # ... and below this share of the dataset's 90th percentile (a dataset of soft
    #                               scans is soft throughout: only what is blurrier than its sharp images is reported)
    grayscale: float = 1.0  # mean channel difference, 0..255
    odd_aspect_ratio: float = 0.5  # shorter side / longer side
    odd_size: float = 4.0  # side (sqrt of area) over the dataset's median side, either way
    max_bits: int = 4  # perceptual hashes at most this many bits apart are near duplicates
    min_similarity: float = 0.95  # ... and so are images whose compact features are at least this alike
    loose_bits: int = 24  # ... and those within loose_bits whose features are at least loose_similarity alike
    loose_similarity: float = 0.80
    ratio: float = 0.25  # ... and only at most this share of the distance to the k-th nearest neighbour
    neighbours: int = 10  # k of the nearest-neighbour search (near-duplicate candidates, outlier distance)
    outlier_distance: float = 1.5  # mean distance to the k nearest neighbours over the dataset's median ...
    outlier_max_prob: float = 0.5  # ... and no class more probable than this: an outlier


# Without a pretrained member the features are the pixels at 16 px (`pixel_features`), where images of
# one class lie close together: the feature rule and the outlier distance are held stricter there (the
# values the bundled digit scans need to show no false pairs; the benchmark's values are for backbones).
PIXEL_RULES = {"ratio": 0.1, "loose_bits": 12, "outlier_distance": 2.5, "outlier_max_prob": 0.7}


def thresholds(source: str = "backbone") -> Thresholds:
    """The thresholds for health features from `source`: 'backbone' (a pretrained member) or 'pixels'."""
    return Thresholds(**PIXEL_RULES) if source == "pixels" else Thresholds()


# Properties -----------------------------------------------------------------------------------


def _grey(x: np.ndarray) -> np.ndarray:
    """(n, S, S) float32 luminance in [0, 1] from (n, S, S, 3) uint8 (ITU-R BT.601)."""
    return (x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114).astype(np.float32) / 255.0


def properties(pixels: np.ndarray, sizes: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-image property scores, (N,) float each (see the module docstring for their meaning).

    pixels: (N, S, S, 3) uint8 (a memory-mapped cache works: read CHUNK images at a time).
    sizes: (N, 2) original (width, height), or None when unknown (no size checks)."""
    N = len(pixels)
    r32 = _resize_matrix(pixels.shape[1], 32).astype(np.float32) if N else None
    out = {k: np.zeros(N, dtype=np.float32) for k in ("p99", "p5", "entropy", "sharpness", "colour")}
    for s in range(0, N, CHUNK):
        x = np.asarray(pixels[s : s + CHUNK])
        g = _grey(x)  # (n, S, S)
        flat = g.reshape(len(g), -1)
        out["p99"][s : s + len(x)] = np.percentile(flat, 99, axis=1)
        out["p5"][s : s + len(x)] = np.percentile(flat, 5, axis=1)
        levels = np.minimum((flat * 255).astype(np.int32), 255)
        hist = np.stack([np.bincount(v, minlength=256) for v in levels]).astype(np.float64) / flat.shape[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            out["entropy"][s : s + len(x)] = -np.nansum(hist * np.log2(hist), axis=1) / 8.0
        g32 = g if g.shape[1] == 32 else np.einsum("ij,njk,lk->nil", r32, g, r32, optimize=True)  # sharpness depends on scale: one scale
        lap = 4 * g32[:, 1:-1, 1:-1] - g32[:, :-2, 1:-1] - g32[:, 2:, 1:-1] - g32[:, 1:-1, :-2] - g32[:, 1:-1, 2:]
        contrast = g32.reshape(len(g), -1).std(axis=1)
        out["sharpness"][s : s + len(x)] = np.sqrt((lap.reshape(len(g), -1) ** 2).mean(axis=1)) / np.maximum(contrast, 1e-3)
        xi = x.astype(np.int16)
        out["colour"][s : s + len(x)] = (np.abs(xi[..., 0] - xi[..., 1]) + np.abs(xi[..., 1] - xi[..., 2])).reshape(len(x), -1).mean(axis=1)
    if sizes is not None:
        w, h = np.asarray(sizes, dtype=np.float64).T
        out["aspect"] = (np.minimum(w, h) / np.maximum(np.maximum(w, h), 1)).astype(np.float32)
        side = np.sqrt(w * h)
        known = side[side > 0]  # unreadable files have no size
        out["size"] = (side / max(float(np.median(known)) if len(known) else 1.0, 1.0)).astype(np.float32)
    return out


def _p90(x: np.ndarray) -> float:
    return float(np.percentile(x, 90)) if len(x) else 0.0


def is_flat(entropy: np.ndarray, t: Thresholds = Thresholds()) -> np.ndarray:
    """(N,) bool: low_information images (few grey levels). Flat images all look alike to a hash and to
    a backbone, so they take part in exact duplicates only."""
    return np.asarray(entropy) < t.low_information


def property_issues(props: dict[str, np.ndarray], t: Thresholds = Thresholds()) -> dict[str, np.ndarray]:
    """{issue: (N,) bool} for the image-property issues."""
    low_info = is_flat(props["entropy"], t)
    issues = {
        "dark": props["p99"] < t.dark,
        "light": props["p5"] > t.light,
        "blurry": (props["sharpness"] < min(t.blurry, t.blurry_relative * _p90(props["sharpness"][~low_info])))
        & ~low_info,
        "low_information": low_info,
        "grayscale": props["colour"] < t.grayscale,
    }
    if "aspect" in props:
        issues["odd_aspect_ratio"] = props["aspect"] < t.odd_aspect_ratio
        issues["odd_size"] = (props["size"] < 1 / t.odd_size) | (props["size"] > t.odd_size)
    return issues


# Duplicates -----------------------------------------------------------------------------------


def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def _resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) averaging matrix: each output cell the mean of the input cells it covers."""
    edges = np.linspace(0, src, dst + 1)
    m = np.zeros((dst, src))
    for j in range(dst):
        lo, hi = edges[j], edges[j + 1]
        for i in range(int(np.floor(lo)), int(np.ceil(hi))):
            m[j, i] = min(hi, i + 1) - max(lo, i)
    return m / m.sum(axis=1, keepdims=True)


def phash(pixels: np.ndarray) -> np.ndarray:
    """(N,) uint64 perceptual hashes: grey image averaged down to 32x32, 2-D DCT, the 8x8 lowest
    frequencies each compared with their median (bit set = above)."""
    N, S = len(pixels), pixels.shape[1]
    r = _resize_matrix(S, 32)  # (32, S)
    d = _dct_matrix(32)[:8]  # (8, 32)
    a = d @ r  # (8, S): resize then DCT, one matrix per side
    weights = (1 << np.arange(64, dtype=np.uint64)).astype(np.uint64)
    out = np.zeros(N, dtype=np.uint64)
    for s in range(0, N, CHUNK):
        g = _grey(np.asarray(pixels[s : s + CHUNK])).astype(np.float64)  # (n, S, S)
        c = np.einsum("ij,njk,lk->nil", a, g, a, optimize=True).reshape(len(g), 64)  # (n, 8, 8) low frequencies
        bits = c > np.median(c[:, 1:], axis=1, keepdims=True)  # the DC term left out of the median
        out[s : s + len(g)] = (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    return out


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


def pixel_digests(pixels: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
    """(N, 16) uint8: a digest of each image's decoded pixels (and original size, where known)."""
    out = np.zeros((len(pixels), 16), dtype=np.uint8)
    for i in range(len(pixels)):
        extra = b"" if sizes is None else np.asarray(sizes[i], dtype=np.int64).tobytes()
        out[i] = np.frombuffer(hashlib.sha256(np.ascontiguousarray(pixels[i]).tobytes() + extra).digest()[:16], dtype=np.uint8)
    return out


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


def conflicts(groups: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((N,) bool: the image's group holds more than one label, (N,) the group's majority label, or -1)."""
    conflicted = np.zeros(len(groups), dtype=bool)
    majority = np.full(len(groups), -1, dtype=np.int64)
    grouped = np.flatnonzero(groups >= 0)
    order = grouped[np.argsort(groups[grouped], kind="stable")]
    starts = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1]]) if len(order) else np.zeros(0, dtype=int)
    for a, b in zip(starts, np.r_[starts[1:], len(order)]):
        members = order[a:b]
        values, counts = np.unique(labels[members], return_counts=True)
        majority[members] = values[np.argmax(counts)]  # ties: the smallest label
        conflicted[members] = len(values) > 1
    return conflicted, majority


# Features: near duplicates that the hash misses (shifts, crops) and outliers -----------------

FEATURE_DIM = 128  # compact features: what the bundle stores per labeled image and the search works on
EXACT_SEARCH = 8192  # up to this many base vectors, nearest neighbours are exact; above, an inverted-file index
CELL = 1000  # base vectors per cell of the inverted-file index
PROBES = 3  # cells each query visits


def compact_features(features: np.ndarray, mean: np.ndarray | None = None, dim: int = FEATURE_DIM,
                     seed: int = 0, centre: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """((N, dim) float16 unit vectors, (D,) mean) from backbone features (N, D) or TTA features
    (N, V, D) (averaged over the views): centred on `mean` (default: their own mean, which is what
    a committee bundle stores for its labeled images; centre=False: not centred), projected by a
    fixed random Gaussian matrix (seeded: the same for every run, so a bundle's features and a
    pool's compare), normalised. Near duplicates use centred features (what all images share says
    nothing about a pair); outliers use them not centred (bench/health.py: centring hides images
    unlike the data, whose weak features then point where soft, plain images do)."""
    D = features.shape[-1]
    proj = np.random.default_rng(seed).standard_normal((D, dim)).astype(np.float32) / np.sqrt(dim)
    if not centre:
        mean = np.zeros(D, dtype=np.float32)
    elif mean is None:
        total = np.zeros(D, dtype=np.float64)
        for s in range(0, len(features), CHUNK):
            f = np.asarray(features[s : s + CHUNK], dtype=np.float32)
            total += (f.mean(axis=1) if f.ndim == 3 else f).sum(axis=0)
        mean = total / max(len(features), 1)
    mean = np.asarray(mean, dtype=np.float32)
    out = np.zeros((len(features), dim), dtype=np.float16)
    for s in range(0, len(features), CHUNK):
        f = np.asarray(features[s : s + CHUNK], dtype=np.float32)
        f = (f.mean(axis=1) if f.ndim == 3 else f) - mean
        f = f @ proj
        out[s : s + len(f)] = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return out, mean


def pixel_features(pixels: np.ndarray, side: int = 16) -> np.ndarray:
    """(N, side*side*3) float32: each image averaged down to side x side, centred and scaled to unit
    length: the features for near duplicates and outliers when no member has pretrained weights
    (a classifier trained from scratch bunches each class together, which hides copies)."""
    r = _resize_matrix(pixels.shape[1], side).astype(np.float32) if len(pixels) else None
    out = np.zeros((len(pixels), side * side * 3), dtype=np.float32)
    for s in range(0, len(pixels), CHUNK):
        x = np.asarray(pixels[s : s + CHUNK], dtype=np.float32)
        small = np.einsum("ij,njkc,lk->nilc", r, x, r, optimize=True).reshape(len(x), -1)
        small -= small.mean(axis=1, keepdims=True)
        out[s : s + len(x)] = small / np.maximum(np.linalg.norm(small, axis=1, keepdims=True), 1e-6)
    return out


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


def feature_pairs(sims: np.ndarray, idx: np.ndarray, min_similarity: float) -> np.ndarray:
    """(P, 2) pairs i < j of a self-search (`nearest(x)`) at least `min_similarity` alike."""
    rows, cols = np.nonzero(sims >= min_similarity)
    pairs = np.sort(np.stack([rows, idx[rows, cols]], axis=1), axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), dtype=np.int64)


def outlier_scores(sims: np.ndarray, k: int) -> np.ndarray:
    """(N,) how far each image lies from its k nearest neighbours: 1 - their mean cosine similarity,
    over the dataset's median of the same (1 = typical; larger = lonelier)."""
    s = np.where(np.isfinite(sims[:, :k]), sims[:, :k], 0.0)
    distance = 1.0 - s.mean(axis=1)
    return (distance / max(float(np.median(distance)), 1e-6)).astype(np.float32)


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


def parse_checks(value) -> tuple[str, ...]:
    """The issue types a `checks` setting turns on: 'all' (default), 'none', a group ('duplicates',
    'properties') or issue names, as a list or a comma-separated string; ValueError names what is unknown."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    chosen: list[str] = []
    for item in (str(v).strip() for v in items):
        if not item:
            continue
        names = CHECK_GROUPS.get(item, (item,) if item in ISSUES else None)
        if names is None:
            raise ValueError(f"unknown check '{item}'; choose from {', '.join([*CHECK_GROUPS, *ISSUES])}")
        chosen += [n for n in names if n not in chosen]
    return tuple(n for n in ISSUES if n in chosen)


@dataclass
class Health:
    """The data-health verdict on every image of a labeled dataset."""

    issues: list[list[str]]  # (N,) the health issues of each image, most important first (ISSUES order)
    detail: np.ndarray  # (N,) object: why, in words, naming the other files
    group: np.ndarray  # (N,) int64: duplicate / near-duplicate group (its first image), -1 for none
    suggest: np.ndarray  # (N,) int64: the suggestion for review: a class, DROP, or -1 (the committee's)
    outlier_score: np.ndarray | None = None  # (N,) distance to the nearest neighbours over the median
    notes: list[str] = field(default_factory=list)  # checks that did not apply to this dataset, and why


def _names(paths, members, limit: int = 3) -> str:
    shown = ", ".join(paths[m] for m in members[:limit])
    return shown + (f" and {len(members) - limit} more" if len(members) > limit else "")


def assess(
    paths: list[str], labels: np.ndarray, classes: list[str], usable: np.ndarray, checks=ISSUES, *,
    props: dict[str, np.ndarray] | None = None, hashes: np.ndarray | None = None, digests: np.ndarray | None = None,
    features: np.ndarray | None = None, outlier_features: np.ndarray | None = None, suggested: np.ndarray | None = None,
    suggested_prob: np.ndarray | None = None, t: Thresholds = Thresholds(),
) -> Health:
    """Every health check in `checks` on N images from what the decode pass and the committee left:
    property scores, perceptual hashes, pixel digests, compact features (N, d) (None: no
    feature-based near duplicates or outliers), the same not centred for the outlier distance
    (default: `features`), the committee's suggested class and its probability.
    Unreadable images (not `usable`) get nothing."""
    N = len(paths)
    labels = np.asarray(labels)
    usable = np.asarray(usable, dtype=bool)
    found: dict[str, np.ndarray] = {}
    detail = [[] for _ in range(N)]
    suggest = np.full(N, -1, dtype=np.int64)
    group = np.full(N, -1, dtype=np.int64)
    score = None

    notes: list[str] = []
    if props is not None:
        for name, flags in property_issues(props, t).items():
            if name not in checks:
                continue
            if (flags & usable).sum() > COMMON * max(int(usable.sum()), 1):
                notes.append(f"{(flags & usable).mean():.0%} of the images are {name.replace('_', ' ')}: a trait of "
                             f"this dataset, not a problem of single images, so {name} is not reported per image")
                continue
            found[name] = flags & usable
    wants_dups = any(c in checks for c in DUPLICATE_ISSUES)
    sims = idx = None
    use = np.flatnonzero(usable)

    def search(x):
        s, i = nearest(x[use], k=t.neighbours)
        sims, idx = np.full((N, s.shape[1]), -np.inf, dtype=np.float32), np.full((N, s.shape[1]), -1, dtype=np.int64)
        sims[use], idx[use] = s, np.where(i >= 0, use[np.maximum(i, 0)], -1)
        return sims, idx

    if features is not None and wants_dups:
        sims, idx = search(features)
    if wants_dups:
        exact = digest_groups(digests, usable) if digests is not None else np.full(N, -1, dtype=np.int64)
        pairs = [np.stack([np.flatnonzero(exact >= 0), exact[exact >= 0]], axis=1)]
        if hashes is not None:
            use = np.flatnonzero(usable)
            pairs.append(use[hash_pairs(np.asarray(hashes)[use], t.max_bits)])
        if sims is not None:
            close = close_pairs(sims, idx, hashes, hashes, t)
            rows, cols = np.nonzero(close)
            pairs.append(np.stack([rows, idx[rows, cols]], axis=1))
        plain = is_flat(props["entropy"], t) if props is not None else np.zeros(N, dtype=bool)
        near_pairs = np.concatenate(pairs[1:]).astype(np.int64) if len(pairs) > 1 else np.zeros((0, 2), np.int64)
        near_pairs = near_pairs[~plain[near_pairs].any(axis=1)]
        pairs = np.concatenate([pairs[0].astype(np.int64), near_pairs])
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        group = groups_from_pairs(N, pairs)
        conflicted, majority = conflicts(group, labels)
        names = np.array(classes, dtype=object)
        grouped = np.flatnonzero(group >= 0)
        grouped = grouped[np.argsort(group[grouped], kind="stable")]
        cuts = np.flatnonzero(np.diff(group[grouped])) + 1
        members_of = {int(group[m[0]]): m for m in np.split(grouped, cuts) if len(m)}
        dup = exact >= 0
        near = np.zeros(N, dtype=bool)
        for g, members in members_of.items():
            near[members] = [bool((exact[members] != exact[m]).any() | (exact[m] < 0)) for m in members]
        if "duplicate" in checks:
            found["duplicate"] = dup
        if "near_duplicate" in checks:
            found["near_duplicate"] = near
        if "conflicting_labels" in checks:
            found["conflicting_labels"] = conflicted
        for g, members in members_of.items():
            for m in members:
                others = members[members != m]
                same = others[exact[others] == exact[m]] if exact[m] >= 0 else others[:0]
                alike = others[~np.isin(others, same)]
                if conflicted[m] and "conflicting_labels" in checks:
                    values, counts = np.unique(labels[members], return_counts=True)
                    tally = ", ".join(f"{names[v]} x{c}" for v, c in sorted(zip(values, counts), key=lambda vc: -vc[1]))
                    if (counts == counts.max()).sum() == 1:
                        suggest[m], why = majority[m], "the group's majority"
                    else:
                        best = members[np.argmax(suggested_prob[members])] if suggested_prob is not None else members[0]
                        suggest[m] = suggested[best] if suggested is not None else labels[best]
                        why = "the committee's surest label in the group" if suggested is not None else "a tie"
                    named = "" if {"duplicate", "near_duplicate"} & set(checks) else f" ({_names(paths, others)})"
                    detail[m].append(f"labels in its group{named}: {tally}; suggested {names[suggest[m]]}, {why}")
                if len(same) and "duplicate" in checks:
                    keep = min(int(exact[m]), int(m))
                    detail[m].append(f"same pixels as {_names(paths, same)}"
                                     + ("" if m == keep else f"; {paths[keep]} is kept, this copy can go"))
                    if m != keep and not conflicted[m]:
                        suggest[m] = DROP
                if len(alike) and "near_duplicate" in checks:
                    detail[m].append(f"near duplicate of {_names(paths, alike)}")
    lonely = outlier_features if outlier_features is not None else features
    if "outlier" in checks and lonely is not None and suggested_prob is not None:
        far = search(lonely)[0] if lonely is not features or sims is None else sims
        score = np.full(N, np.nan, dtype=np.float32)
        score[use] = outlier_scores(far[use], t.neighbours)
        out = np.zeros(N, dtype=bool)
        out[use] = (score[use] > t.outlier_distance) & (np.asarray(suggested_prob)[use] < t.outlier_max_prob)
        found["outlier"] = out
        for m in np.flatnonzero(out):
            detail[m].append(f"unlike the rest of the dataset: {score[m]:.2f}x the usual distance to its "
                             f"{t.neighbours} nearest images, no class above {t.outlier_max_prob:.0%}")
            if suggest[m] == -1:
                suggest[m] = DROP
    issues = [[name for name in ISSUES if name in found and found[name][i]] for i in range(N)]
    return Health(issues, np.array(["; ".join(d) for d in detail], dtype=object), group, suggest, score, notes)
