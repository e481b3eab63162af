"""Which built-in profile a run given no --config uses: from the data as well as the device.

`look_at` lists the data (class folders or a CSV manifest) and opens up to `SAMPLE` of its
images, spread evenly over the listing: their size, and whether they are grayscale (a
grayscale mode, or three equal channels). `choose_profile` then decides:

- small grayscale images (median longest side <= SMALL_SIDE px, at least GRAY_SHARE of the
  sample grayscale; digit and character scans, sketches) with enough of them to train from
  scratch (at least MIN_PER_CLASS per class on average) -> `small` on any device: networks
  trained from scratch at 32 px found more of their label errors than frozen ImageNet photo
  backbones (docs/benchmarks.md, "Which profile without --config");
- anything else -> `gpu` with a CUDA GPU, else `cpu` (ImageNet features carry over to
  photos, colour thumbnails included).

Where the look cannot decide (nothing readable in the sample, a mixed sample) the device
alone decides, as it did before, and the reason says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DataCleanerError
from .health import equal_channels

SAMPLE = 64  # images opened to judge the data: their headers, and small ones decoded
SMALL_SIDE = 64  # px: a median longest side up to this is a small image
GRAY_SHARE = 0.9  # this share of the sample grayscale: grayscale data; at most 1 - this: colour
MIN_PER_CLASS = 150  # fewer images per class than this: too few to train a network from scratch


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
    return side, bool(equal_channels(rgb[None])[0])  # a grayscale scan saved as RGB


def default_profile(device: str | None = None) -> tuple[str, str]:
    """(profile, why) for a run given no config: `gpu` when a CUDA GPU will be used, `cpu` otherwise."""
    if device in ("cpu", "mps"):
        return "cpu", f"no --config given and --device {device}"
    import torch

    if torch.cuda.is_available():
        return "gpu", f"no --config given and a CUDA GPU is present ({torch.cuda.get_device_name(0)})"
    if device == "cuda":
        return "gpu", "no --config given and --device cuda"
    return "cpu", "no --config given and no CUDA GPU found"


def choose_profile(shape: DataShape | None, device: str | None = None) -> tuple[str, str]:
    """(profile, why) for a run given no config: from the data's shape and the device."""
    by_device, device_why = default_profile(device)
    if shape is None:
        return by_device, f"{device_why}; the data could not be sampled, so the device decided"
    seen = shape.describe()
    small = shape.median_side <= SMALL_SIDE
    share = shape.gray_share if shape.gray_share is not None else 0.0
    if small and share >= GRAY_SHARE:
        if shape.images < MIN_PER_CLASS * shape.classes:
            return by_device, (f"{device_why}; {seen}: small grayscale images, but under {MIN_PER_CLASS} per class "
                               "to train from scratch, so pretrained features")
        return "small", f"no --config given; {seen}: small grayscale images train better from scratch at 32 px"
    if small and share > 1 - GRAY_SHARE:
        return by_device, f"{device_why}; {seen}: a mixed sample, so the device decided"
    return by_device, f"{device_why}; {seen}: pretrained photo features suit them"
