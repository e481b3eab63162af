"""What the health checks read from the pixels, computed once in the decode pass: property scores,
perceptual hashes, pixel digests, the grayscale test; and the compact features the pair and outlier
checks search (from a backbone's features, or from the pixels).  [numpy]"""

from __future__ import annotations

import hashlib

import numpy as np

from .rules import CHUNK, PIXEL_STEP_BYTES


def pixel_rows(pixels) -> int:
    """Images (N, S, S, 3) per step of the pixel checks: PIXEL_STEP_BYTES of them, whatever N and S, so
    memory does not grow with the images' number or size."""
    row = int(np.prod(pixels.shape[1:], dtype=np.int64)) * np.dtype(pixels.dtype).itemsize
    return max(1, PIXEL_STEP_BYTES // max(row, 1))


def _grey(x: np.ndarray) -> np.ndarray:
    """(n, S, S) float32 luminance in [0, 1] from (n, S, S, 3) uint8 (ITU-R BT.601)."""
    return (x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114).astype(np.float32) / 255.0


def properties(pixels: np.ndarray, sizes: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-image property scores, (N,) float each (see the module docstring for their meaning).

    pixels: (N, S, S, 3) uint8 (a cache read from disk works: read pixel_rows(pixels) images at a time).
    sizes: (N, 2) original (width, height), or None when unknown (no size checks)."""
    N = len(pixels)
    r32 = _resize_matrix(pixels.shape[1], 32).astype(np.float32) if N else None
    out = {k: np.zeros(N, dtype=np.float32) for k in ("p99", "p5", "entropy", "sharpness", "colour")}
    step = pixel_rows(pixels)
    for s in range(0, N, step):
        x = np.asarray(pixels[s : s + step])
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
    step = pixel_rows(pixels)
    for s in range(0, N, step):
        g = _grey(np.asarray(pixels[s : s + step])).astype(np.float64)  # (n, S, S)
        c = np.einsum("ij,njk,lk->nil", a, g, a, optimize=True).reshape(len(g), 64)  # (n, 8, 8) low frequencies
        bits = c > np.median(c[:, 1:], axis=1, keepdims=True)  # the DC term left out of the median
        out[s : s + len(g)] = (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    return out


def pixel_digests(pixels: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
    """(N, 16) uint8: a digest of each image's decoded pixels (and original size, where known)."""
    out = np.zeros((len(pixels), 16), dtype=np.uint8)
    for i in range(len(pixels)):
        extra = b"" if sizes is None else np.asarray(sizes[i], dtype=np.int64).tobytes()
        out[i] = np.frombuffer(hashlib.sha256(np.ascontiguousarray(pixels[i]).tobytes() + extra).digest()[:16], dtype=np.uint8)
    return out


FEATURE_DIM = 128  # compact features: what the bundle stores per labeled image and the search works on


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
    step = pixel_rows(pixels)
    for s in range(0, len(pixels), step):
        x = np.asarray(pixels[s : s + step], dtype=np.float32)
        small = np.einsum("ij,njkc,lk->nilc", r, x, r, optimize=True).reshape(len(x), -1)
        small -= small.mean(axis=1, keepdims=True)
        out[s : s + len(x)] = small / np.maximum(np.linalg.norm(small, axis=1, keepdims=True), 1e-6)
    return out


class PixelFeatures:
    """pixel_features of (N, S, S, 3) images, computed a slice at a time as they are read (compact_features
    reads CHUNK rows at a time), so the N rows never sit in memory together."""

    def __init__(self, pixels: np.ndarray, side: int = 16):
        self.pixels, self.side = pixels, side
        self.shape = (len(pixels), side * side * 3)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        return pixel_features(self.pixels[rows], self.side)
