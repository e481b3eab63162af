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

and, for every property, unusual for this dataset: at least `unusual` robust standard deviations
(1.4826 x the median absolute deviation, on a log scale) beyond the dataset's median, in the
problem's direction. What many images of a dataset share is the dataset's nature (scans are
low in information, a dataset of night shots is dark), not a problem of single images.

Duplicates: `digest_groups` groups images whose decoded pixels (and original size) are equal.
`near_pairs` finds pairs of near duplicates: candidates from 64-bit perceptual hashes (`phash`:
DCT of a 32x32 grey image, the 8x8 lowest frequencies against their median) at most `max_bits`
apart (multi-index hashing: the hash cut into max_bits + 1 pieces, two hashes that close share
at least one piece exactly, so no all-pairs loop) and from each image's nearest neighbours in
compact features; with features, a pair holds only when the two images stand out from the
look-alikes around them (`close_pairs`). `star_groups` makes groups in which every member is a
near duplicate (or exact copy) of the group's representative: a group never grows through
neighbours of neighbours. Within a group, the files whose label differs from the group's label
carry `conflicting_labels`; the copies beside the representative carry `duplicate` /
`near_duplicate`, the representative (the file kept) nothing.

Which findings ask a reviewer for a decision (rows of review.csv) and which are reported only
(summary.json, health.csv, the report): `DECISION_ISSUES` and `REPORT_ISSUES` (docs/method.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np

CHUNK = 4096  # images per step: the float copies of a chunk are all that is held at once
PROPERTY_ISSUES = ("dark", "light", "blurry", "low_information", "grayscale", "odd_aspect_ratio", "odd_size")
DUPLICATE_ISSUES = ("conflicting_labels", "duplicate", "near_duplicate")
ISSUES = ("conflicting_labels", "outlier", "duplicate", "near_duplicate", *PROPERTY_ISSUES)  # most important first
DECISION_ISSUES = ("conflicting_labels", "outlier", "duplicate", "near_duplicate")  # a row in review.csv: relabel, keep or drop
REPORT_ISSUES = PROPERTY_ISSUES  # reported (summary.json, health.csv, the report), not a row to decide
CHECK_GROUPS = {"all": ISSUES, "none": (), "duplicates": DUPLICATE_ISSUES, "properties": PROPERTY_ISSUES}
DROP = -2  # `Health.suggest`: suggest dropping the image
COMMON = 0.5  # an image property shared by more than this share of a dataset is the dataset's trait (a grayscale
#               dataset), not reported per image


@dataclass(frozen=True)
class Thresholds:
    # Chosen by bench/health.py on CIFAR-10 with planted problems (docs/health_benchmark.md), made relative to
    # the dataset by bench/review_quality.py on digit scans, CIFAR thumbnails and real photos, and the pair rule
    # (min_similarity, ratio) by bench/leakage.py on CIFAR's real re-cropped copies (docs/benchmarks.md).
    dark: float = 0.25  # p99 luminance in [0, 1]
    light: float = 0.80  # p5 luminance in [0, 1]
    low_information: float = 0.30  # entropy of the grey levels, bits / 8
    blurry: float = 0.20  # Laplacian RMS / grey-level std, measured at 32 px whatever the cache size ...
    blurry_relative: float = 0.5  # ... and below this share of the dataset's 90th percentile (a dataset of soft
    #                               scans is soft throughout: only what is blurrier than its sharp images is reported)
    grayscale: float = 1.0  # mean channel difference, 0..255
    odd_aspect_ratio: float = 0.5  # shorter side / longer side
    odd_size: float = 4.0  # side (sqrt of area) over the dataset's median side, either way
    unusual: float = 4.0  # ... and every property at least this many robust standard deviations from the dataset's median
    max_bits: int = 4  # perceptual hashes at most this many bits apart are near-duplicate candidates ...
    min_similarity: float = 0.90  # ... and so are images whose compact features are at least this alike
    loose_bits: int = 24  # ... and those within loose_bits whose features are at least loose_similarity alike
    loose_similarity: float = 0.80
    ratio: float = 0.4  # a pair holds when its distance is at most this share of either image's distance to its
    #                      k-th nearest neighbour: a copy stands out from look-alikes ...
    hash_ratio: float = 0.5  # ... or this share for a pair whose hashes are within max_bits (the same layout already)
    neighbours: int = 10  # k of the nearest-neighbour search (near-duplicate candidates, outlier distance)
    outlier_distance: float = 1.5  # mean distance to the k nearest neighbours over the dataset's median ...
    outlier_max_prob: float = 0.5  # ... and no class more probable than this: an outlier
    outlier_unusual: float = 3.0  # ... and this many robust standard deviations (log distance) beyond the dataset's median


# Without a pretrained member the features are the pixels at 16 px (`pixel_features`), where images of
# one class lie close together: the feature rule and the outlier distance are held stricter there (the
# values the bundled digit scans need to show no false pairs; the benchmark's values are for backbones).
PIXEL_RULES = {"ratio": 0.1, "hash_ratio": 0.2, "loose_bits": 12, "outlier_distance": 2.5, "outlier_max_prob": 0.7}


# Whether a pool image is already in the labeled set (`select`'s already_labeled, cross_pairs) asks less of a pair
# than a near copy inside one dataset: the nearest labeled image at similarity >= 0.80, with no stand-out test
# (ratio 1: as close as the 10th nearest labeled image). Chosen on CIFAR's halves with 350 edited copies (re-cropped,
# shifted, mirrored, re-coloured, grey, re-scaled) and CIFAR's own copies judged by eye (bench/leakage.py --copies):
# copies found 44% -> 69%, the real pairs 32 -> 38 of 38; pool images outside both marked 0.17% -> 1.4%, most
# of them the same photo again by eye. Inside one dataset the stricter rule stays: look-alike photos of one
# class must not group.
LEAKAGE_RULES = {"min_similarity": 0.80, "ratio": 1.0, "hash_ratio": 1.0}


def thresholds(source: str = "backbone") -> Thresholds:
    """The thresholds for health features from `source`: 'backbone' (a pretrained member) or 'pixels'."""
    return Thresholds(**PIXEL_RULES) if source == "pixels" else Thresholds()


def leakage_thresholds(source: str = "backbone") -> Thresholds:
    """The thresholds cross_pairs uses to find pool images already labeled (LEAKAGE_RULES on backbone features;
    pixel features keep their strict rules)."""
    return thresholds(source) if source == "pixels" else dataclasses.replace(Thresholds(), **LEAKAGE_RULES)


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


def unusual(values: np.ndarray, low: bool, z: float, among: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: at least `z` robust standard deviations (1.4826 x the median absolute deviation of the
    images `among`, default all) below (`low`) or above the median: what sets an image apart from its dataset."""
    values = np.asarray(values, dtype=np.float64)
    ref = values if among is None else values[np.asarray(among, dtype=bool)]
    if not len(ref):
        return np.zeros(len(values), dtype=bool)
    median = float(np.median(ref))
    spread = max(1.4826 * float(np.median(np.abs(ref - median))), 1e-6)
    return ((median - values) if low else (values - median)) >= z * spread


def is_flat(entropy: np.ndarray, t: Thresholds = Thresholds(), usable: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: low_information images (few grey levels, and fewer than is usual in this dataset). Flat
    images all look alike to a hash and to a backbone, so they take part in exact duplicates only."""
    return (np.asarray(entropy) < t.low_information) & unusual(*_SCALES["low_information"]({"entropy": entropy}),
                                                                t.unusual, usable)


def property_levels(props: dict[str, np.ndarray], t: Thresholds = Thresholds()) -> dict[str, np.ndarray]:
    """{issue: (N,) bool}: the images past each property's threshold, whatever the rest of the dataset is like."""
    low_info = np.asarray(props["entropy"]) < t.low_information
    levels = {
        "dark": props["p99"] < t.dark,
        "light": props["p5"] > t.light,
        "blurry": (props["sharpness"] < min(t.blurry, t.blurry_relative * _p90(props["sharpness"][~low_info]))) & ~low_info,
        "low_information": low_info,
        "grayscale": props["colour"] < t.grayscale,
    }
    if "aspect" in props:
        levels["odd_aspect_ratio"] = props["aspect"] < t.odd_aspect_ratio
        levels["odd_size"] = (props["size"] < 1 / t.odd_size) | (props["size"] > t.odd_size)
    return levels


def _log(values, eps: float) -> np.ndarray:
    return np.log(np.maximum(np.asarray(values, dtype=np.float64), 0) + eps)


# each property as `unusual` judges it: (its value on a log scale, whether low values are the problem)
_SCALES = {
    "dark": lambda p: (_log(p["p99"], 0.01), True),
    "light": lambda p: (_log(1 - np.asarray(p["p5"]), 0.01), True),
    "blurry": lambda p: (_log(p["sharpness"], 1e-3), True),
    "low_information": lambda p: (_log(p["entropy"], 0.01), True),
    "grayscale": lambda p: (_log(p["colour"], 1.0), True),
    "odd_aspect_ratio": lambda p: (_log(p["aspect"], 1e-3), True),
    "odd_size": lambda p: (np.abs(_log(p["size"], 1e-3)), False),
}


def property_issues(props: dict[str, np.ndarray], t: Thresholds = Thresholds(),
                    usable: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """{issue: (N,) bool} for the image-property issues: past the property's threshold (property_levels)
    and unusual for this dataset (`unusual`, on a log scale, judged among the `usable` images)."""
    return {name: flags & unusual(*_SCALES[name](props), t.unusual, usable)
            for name, flags in property_levels(props, t).items()}


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


def star_groups(n: int, pairs: np.ndarray, exact: np.ndarray | None = None) -> np.ndarray:
    """(n,) group id per image, the index of the group's representative; -1 for an image in no group.

    Exact copies (`exact`: digest_groups' ids, -1 for none) always share a group. Near-duplicate `pairs`
    (P, 2) join images to a representative only directly: images are taken by their number of pairs
    (most first, then index), each untaken one becomes a representative with its untaken partners, and
    an image whose partners are all taken joins a partner that represents a group, else stays alone.
    So every member is a near duplicate (or an exact copy) of the representative, and look-alikes
    chained through neighbours of neighbours never make one group."""
    exact = np.full(n, -1, dtype=np.int64) if exact is None else np.asarray(exact, dtype=np.int64)
    node = np.where(exact >= 0, exact, np.arange(n))  # an exact copy stands for its first file
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    pairs = np.sort(node[pairs], axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0) if len(pairs) else pairs
    partners: dict[int, list[int]] = {}
    for i, j in pairs.tolist():
        partners.setdefault(i, []).append(j)
        partners.setdefault(j, []).append(i)
    owner: dict[int, int] = {}
    for v in sorted(partners, key=lambda v: (-len(partners[v]), v)):
        if v in owner:
            continue
        free = [u for u in partners[v] if u not in owner]
        if free:
            owner[v] = v
            owner.update((u, v) for u in free)
        else:
            reps = [u for u in partners[v] if owner[u] == u]
            if reps:
                owner[v] = min(reps)
    group = np.array([owner.get(int(v), -1) for v in node], dtype=np.int64)
    return np.where((group < 0) & (exact >= 0), exact, group)


def group_label(members: np.ndarray, labels: np.ndarray, suggested: np.ndarray | None = None,
                suggested_prob: np.ndarray | None = None) -> tuple[int, str]:
    """(the label a group of copies should carry, why): the members' majority; on a tie the committee's
    label for the member it is surest of (without the committee: the first member's label)."""
    values, counts = np.unique(labels[members], return_counts=True)
    if (counts == counts.max()).sum() == 1:
        return int(values[np.argmax(counts)]), "the group's majority"
    if suggested is None or suggested_prob is None:
        return int(labels[members[0]]), "a tie: the first file's label"
    best = members[np.argmax(np.nan_to_num(np.asarray(suggested_prob)[members], nan=-1.0))]
    return int(suggested[best]), "the committee's surest label in the group"


def conflicts(groups: np.ndarray, labels: np.ndarray, suggested: np.ndarray | None = None,
              suggested_prob: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((N,) bool: the image's label differs from its group's label (group_label), (N,) the group's
    label, or -1 outside groups). Members that agree with their group are not conflicted."""
    conflicted = np.zeros(len(groups), dtype=bool)
    chosen = np.full(len(groups), -1, dtype=np.int64)
    for members in _members(groups).values():
        chosen[members] = group_label(members, labels, suggested, suggested_prob)[0]
        conflicted[members] = labels[members] != chosen[members]
    return conflicted, chosen


def _members(groups: np.ndarray) -> dict[int, np.ndarray]:
    """{group id: its images, ascending} of the images with a group (id >= 0)."""
    grouped = np.flatnonzero(groups >= 0)
    grouped = grouped[np.argsort(groups[grouped], kind="stable")]
    cuts = np.flatnonzero(np.diff(groups[grouped])) + 1
    return {int(groups[m[0]]): m for m in np.split(grouped, cuts) if len(m)}


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


def equal_channels(pixels: np.ndarray) -> np.ndarray:
    """(n,) bool: which of the RGB images (n, H, W, 3) have three equal channels up to rounding (a
    grayscale scan saved in colour)."""
    x = np.asarray(pixels, dtype=np.int16)
    spread = np.maximum(np.abs(x[..., 0] - x[..., 1]), np.abs(x[..., 1] - x[..., 2])).reshape(len(x), -1)
    return spread.max(axis=1, initial=0) <= 2


def is_grayscale(pixels: np.ndarray, usable: np.ndarray | None = None, sample: int = 256, share: float = 0.9) -> bool:
    """Whether at least `share` of up to `sample` decoded images (N, S, S, 3) uint8, spread over the
    readable ones, have three equal channels (equal_channels): scans, sketches, X-rays."""
    rows = np.flatnonzero(np.ones(len(pixels), dtype=bool) if usable is None else np.asarray(usable, dtype=bool))
    if not len(rows):
        return False
    rows = rows[np.unique(np.linspace(0, len(rows) - 1, min(sample, len(rows))).round().astype(int))]
    return bool(equal_channels(pixels[rows]).mean() >= share)


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
    group: np.ndarray  # (N,) int64: duplicate / near-duplicate group (the file it keeps), -1 for none
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
        levels = property_levels(props, t)
        for name, flags in property_issues(props, t, usable).items():
            if name not in checks:
                continue
            share = float((levels[name] & usable).sum()) / max(int(usable.sum()), 1)
            if share > COMMON:
                notes.append(f"{share:.0%} of the images are {name.replace('_', ' ')}: a trait of this dataset, "
                             f"not a problem of single images, so {name} is not reported per image")
            found[name] = flags & usable
    use = np.flatnonzero(usable)

    def search(x):
        s, i = nearest(x[use], k=t.neighbours)
        sims, idx = np.full((N, s.shape[1]), -np.inf, dtype=np.float32), np.full((N, s.shape[1]), -1, dtype=np.int64)
        sims[use], idx[use] = s, np.where(i >= 0, use[np.maximum(i, 0)], -1)
        return sims, idx

    knn = None
    if any(c in checks for c in DUPLICATE_ISSUES):
        flat = is_flat(props["entropy"], t, usable) if props is not None else np.zeros(N, dtype=bool)
        exact = digest_groups(digests, usable) if digests is not None else np.full(N, -1, dtype=np.int64)
        knn = search(features) if features is not None else None
        pairs = (near_pairs(hashes, features, t, eligible=usable & ~flat, knn=knn)
                 if hashes is not None or features is not None else np.zeros((0, 2), dtype=np.int64))
        group = star_groups(N, pairs, exact)
        _judge_groups(group, exact, labels, np.array(classes, dtype=object), paths, checks, found, detail, suggest,
                      suggested, suggested_prob)  # also names each group by the file it keeps
    lonely = outlier_features if outlier_features is not None else features
    if "outlier" in checks and lonely is not None and suggested_prob is not None:
        far = search(lonely)[0] if lonely is not features or knn is None else knn[0]
        score = np.full(N, np.nan, dtype=np.float32)
        score[use] = outlier_scores(far[use], t.neighbours)
        out = np.zeros(N, dtype=bool)
        out[use] = outliers(score[use], np.asarray(suggested_prob)[use], t)
        found["outlier"] = out
        for m in np.flatnonzero(out):
            detail[m].append(f"unlike every class of the dataset: {score[m]:.2f}x the usual distance to its "
                             f"{t.neighbours} nearest images, no class above {t.outlier_max_prob:.0%}")
            if suggest[m] == -1:
                suggest[m] = DROP
    issues = [[name for name in ISSUES if name in found and found[name][i]] for i in range(N)]
    return Health(issues, np.array(["; ".join(d) for d in detail], dtype=object), group, suggest, score, notes)


def outliers(score: np.ndarray, suggested_prob: np.ndarray, t: Thresholds = Thresholds()) -> np.ndarray:
    """(N,) bool: images that belong to no class: far from their nearest images (outlier_scores above
    outlier_distance, and unusually far for this dataset) and no class above outlier_max_prob."""
    score = np.asarray(score, dtype=np.float64)
    lonely = (score > t.outlier_distance) & unusual(np.log(np.maximum(score, 1e-6)), False, t.outlier_unusual)
    return lonely & (np.nan_to_num(np.asarray(suggested_prob, dtype=np.float64), nan=1.0) < t.outlier_max_prob)


def _judge_groups(group, exact, labels, names, paths, checks, found, detail, suggest, suggested, suggested_prob) -> None:
    """Issues, suggestions and words for the members of each duplicate group (star_groups): files whose label
    differs from the group's (group_label) get conflicting_labels and that label; exact copies beside the kept
    file (the representative, or an exact copy of it carrying the group's label) get duplicate, near copies
    near_duplicate, both with a suggestion to drop them; the kept file gets no issue, only the names of its
    copies, and gives the group its id (`group` is changed in place)."""
    N = len(group)
    conflicted, dup, near = (np.zeros(N, dtype=bool) for _ in range(3))
    for rep, members in _members(group).items():
        label, why = group_label(members, labels, suggested, suggested_prob)
        agree = members[labels[members] == label]
        values, counts = np.unique(labels[members], return_counts=True)
        tally = ", ".join(f"{names[v]} x{c}" for v, c in sorted(zip(values, counts), key=lambda vc: (-vc[1], vc[0])))
        twins = members[(exact[members] == exact[rep]) & (exact[rep] >= 0)]  # exact copies of the representative
        keep = next((m for m in twins if labels[m] == label), rep)  # the file kept: one carrying the group's label
        group[members] = keep
        for m in members:
            others = members[members != m]
            if labels[m] != label and "conflicting_labels" in checks:
                conflicted[m] = True
                suggest[m] = label
                agreeing = agree[agree != m]
                detail[m].append(f"labels in its group: {tally}; suggested {names[label]}, {why}"
                                 + (f"; labelled {names[label]}: {_names(paths, agreeing)}" if len(agreeing) else ""))
            if m == keep:
                if len(others):
                    detail[m].append(f"kept; its copies: {_names(paths, others)}")
                continue
            copy_of = keep if m in twins else exact[m] if exact[m] >= 0 and exact[m] != m else -1  # same pixels as
            if copy_of >= 0 and "duplicate" in checks:
                dup[m] = True
                detail[m].append(f"same pixels as {paths[copy_of]}" + ("" if copy_of == keep else f"; near duplicate of {paths[keep]}")
                                 + f"; {paths[keep]} is kept" + ("" if conflicted[m] else ", this copy can go"))
            elif copy_of < 0 and "near_duplicate" in checks:
                near[m] = True
                detail[m].append(f"near duplicate of {paths[keep]}; {paths[keep]} is kept" + ("" if conflicted[m] else ", this copy can go"))
            if (dup[m] or near[m]) and not conflicted[m]:
                suggest[m] = DROP
    for name, flags in (("conflicting_labels", conflicted), ("duplicate", dup), ("near_duplicate", near)):
        if name in checks:
            found[name] = flags
