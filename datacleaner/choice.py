"""Which built-in profile a run given no --config uses, and what the data looks like.

`look_at` lists the data (class folders or a CSV manifest) and opens up to `SAMPLE` of its
images, spread evenly over the listing: their size, and whether they are grayscale (a
grayscale mode, or three equal channels). `choose_profile` then decides by the device: `gpu`
with a CUDA GPU, else `cpu`, and says what the data looks like in its reason.

Small grayscale scans get pretrained features too: on real handwritten digits (MNIST, 5,000
scans, nearly clean labels) the `cpu` profile's frozen ImageNet backbones ranked the wrong labels
higher than the `small` profile's networks trained from scratch at 32 px, each committee on 1/K of
the data (AUROC 0.993 against 0.986; 24 of 25 planted errors among the 100 most suspect against
22), in half the time (docs/benchmarks.md, "Small images"). `small` is a profile to ask for by
name: it needs no weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DataCleanerError

SAMPLE = 64  # images opened to judge the data: their headers, and small ones decoded
SMALL_SIDE = 64  # px: a median longest side up to this is a small image (decoded to tell its tone)
GRAY_SHARE = 0.9  # this share of the sample grayscale: grayscale data; at most 1 - this: colour


@dataclass(frozen=True)
class DataShape:
    """What a run's data looks like, from a sample of its images."""

    images: int
    classes: int
    sampled: int  # images of the sample that could be opened
    median_side: int  # median of each sampled image's longest side, px
    gray_share: float | None  # share of the sampled images that are grayscale (None: large colour-mode files, not looked at)

    def describe(self) -> str:
        share = self.gray_share
        tone = ("" if share is None else "grayscale, " if share >= GRAY_SHARE else "colour, " if share <= 1 - GRAY_SHARE
                else f"{share:.0%} grayscale, ")
        return f"{self.images:,} images, {self.classes} classes, {tone}median side {self.median_side} px"


def look_at(data: str | Path, sample: int = SAMPLE) -> DataShape | None:
    """The data's shape from `sample` of its images, or None when it cannot be listed or none opens."""
    from .dataset import find_labeled_images

    try:
        labeled = find_labeled_images(data)
    except DataCleanerError:
        return None  # the run itself will say what is wrong with the data
    n = len(labeled.paths)
    if n == 0:
        return None
    sides, gray = [], []
    for i in np.unique(np.linspace(0, n - 1, min(sample, n)).round().astype(int)):
        seen = _side_and_gray(labeled.absolute(int(i)))
        if seen is not None:
            sides.append(seen[0])
            if seen[1] is not None:
                gray.append(seen[1])
    if not sides:
        return None
    return DataShape(n, len(labeled.classes), len(sides), int(np.median(sides)), float(np.mean(gray)) if gray else None)


def _side_and_gray(path: Path) -> tuple[int, bool | None] | None:
    """(longest side, grayscale?) of one image; grayscale is None for a large colour-mode file (not decoded)."""
    try:
        with Image.open(path) as img:
            side = max(img.size)
            if img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
                return side, True
            if img.mode not in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
                return side, False
            if side > 4 * SMALL_SIDE:
                return side, None  # a large colour-mode file: its tone does not change the choice
            rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None  # unreadable: the run reports it
    spread = np.abs(rgb[..., 0] - rgb[..., 1]).max(initial=0), np.abs(rgb[..., 1] - rgb[..., 2]).max(initial=0)
    return side, bool(max(spread) <= 2)  # three equal channels (up to rounding): a grayscale scan saved as RGB


def choose_profile(shape: DataShape | None, device: str | None = None) -> tuple[str, str]:
    """(profile, why) for a run given no config: the device's profile, with what the data looks like."""
    from .config import default_profile

    by_device, device_why = default_profile(device)
    if shape is None:
        return by_device, f"{device_why}; the data could not be sampled"
    return by_device, f"{device_why}; {shape.describe()}: pretrained features suit them"
