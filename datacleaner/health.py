"""Data health beside label errors: image properties, exact and near duplicates, conflicting labels.  [pure numpy]

Everything here works on what the single decode pass already produced: the decoded images
(N, S, S, 3) uint8 (each centre-cropped square at the cache size S) and, where known, each
file's original (width, height). One checker per issue type, its threshold named in
`Thresholds`, run from one property table (`properties`):

    dark              p99 of luminance          < dark          (low = dark)
    light             p5 of luminance           > light         (high = light)
    low_information   grey-level entropy / 8    < low_information
    blurry            Laplacian energy / contrast at 32 px < blurry   (not counted for low_information images)
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
from dataclasses import dataclass

import numpy as np

CHUNK = 4096  # images per step: the float copies of a chunk are all that is held at once
ISSUES = ("duplicate", "near_duplicate", "conflicting_labels", "dark", "light", "blurry", "low_information",
          "grayscale", "odd_aspect_ratio", "odd_size")  # most important first


@dataclass(frozen=True)
class Thresholds:
    # Chosen by bench/health.py on CIFAR-10 with planted problems (docs/health_benchmark.md).
    dark: float = 0.25  # p99 luminance in [0, 1]
    light: float = 0.80  # p5 luminance in [0, 1]
    low_information: float = 0.30  # entropy of the grey levels, bits / 8
    blurry: float = 0.20  # Laplacian RMS / grey-level std, measured at 32 px whatever the cache size
    grayscale: float = 1.0  # mean channel difference, 0..255
    odd_aspect_ratio: float = 0.5  # shorter side / longer side
    odd_size: float = 4.0  # side (sqrt of area) over the dataset's median side, either way
    max_bits: int = 4  # perceptual hashes at most this many bits apart are near duplicates


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
        g32 = g if g.shape[1] == 32 else np.einsum("ij,njk,lk->nil", r32, g, r32)  # sharpness depends on scale: one scale
        lap = 4 * g32[:, 1:-1, 1:-1] - g32[:, :-2, 1:-1] - g32[:, 2:, 1:-1] - g32[:, 1:-1, :-2] - g32[:, 1:-1, 2:]
        contrast = g32.reshape(len(g), -1).std(axis=1)
        out["sharpness"][s : s + len(x)] = np.sqrt((lap.reshape(len(g), -1) ** 2).mean(axis=1)) / np.maximum(contrast, 1e-3)
        xi = x.astype(np.int16)
        out["colour"][s : s + len(x)] = (np.abs(xi[..., 0] - xi[..., 1]) + np.abs(xi[..., 1] - xi[..., 2])).reshape(len(x), -1).mean(axis=1)
    if sizes is not None:
        w, h = np.asarray(sizes, dtype=np.float64).T
        out["aspect"] = (np.minimum(w, h) / np.maximum(np.maximum(w, h), 1)).astype(np.float32)
        side = np.sqrt(w * h)
        out["size"] = (side / max(float(np.median(side)), 1.0)).astype(np.float32)
    return out


def property_issues(props: dict[str, np.ndarray], t: Thresholds = Thresholds()) -> dict[str, np.ndarray]:
    """{issue: (N,) bool} for the image-property issues."""
    low_info = props["entropy"] < t.low_information
    issues = {
        "dark": props["p99"] < t.dark,
        "light": props["p5"] > t.light,
        "blurry": (props["sharpness"] < t.blurry) & ~low_info,
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
        c = np.einsum("ij,njk,lk->nil", a, g, a).reshape(len(g), 64)  # (n, 8, 8) low frequencies
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


def exact_groups(pixels: np.ndarray, sizes: np.ndarray | None = None, usable: np.ndarray | None = None) -> np.ndarray:
    """(N,) group id (the group's first image) of images with the same decoded pixels (and the same
    original size, where known); -1 for an image with no copy. `usable` leaves unreadable rows out."""
    N = len(pixels)
    usable = np.ones(N, dtype=bool) if usable is None else usable
    digests = np.array([
        hashlib.sha256(np.ascontiguousarray(pixels[i]).tobytes() + (b"" if sizes is None else np.asarray(sizes[i]).tobytes())).digest()
        if usable[i] else b"" for i in range(N)
    ], dtype=object)
    first: dict[bytes, int] = {}
    group = np.full(N, -1, dtype=np.int64)
    for i in np.flatnonzero(usable):
        group[i] = first.setdefault(digests[i], i)
    counts = np.bincount(group[group >= 0], minlength=N)
    return np.where((group >= 0) & (counts[np.maximum(group, 0)] > 1), group, -1)


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
