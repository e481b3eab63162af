"""The image-property checker: dark, light, blurry, low_information, grayscale, odd_aspect_ratio, odd_size.

An image has a property issue when its score is past the issue's threshold (`rules.Thresholds`: low
p99 luminance = dark, high p5 = light, low sharpness = blurry, low entropy = low_information, low
channel difference = grayscale, low shorter/longer side = odd_aspect_ratio, side far from the median
either way = odd_size) *and* unusual for this dataset (`unusual`); a trait shared by more than
COMMON of the images is reported once as a note, not per image.  [numpy]"""

from __future__ import annotations

import numpy as np

from .rules import COMMON, Thresholds

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




def check_properties(facts, out, checks) -> None:
    """Every property issue in `checks` from the property scores; a property past its threshold on more than
    COMMON of the readable images is the dataset's trait: said in a note (still flagged only where unusual)."""
    usable = facts.usable
    levels = property_levels(facts.props, facts.t)
    for name, flags in property_issues(facts.props, facts.t, usable).items():
        if name not in checks:
            continue
        share = float((levels[name] & usable).sum()) / max(int(usable.sum()), 1)
        if share > COMMON:
            out.notes.append(f"{share:.0%} of the images are {name.replace('_', ' ')}: a trait of this dataset, "
                             f"not a problem of single images, so {name} is not reported per image")
        out.found[name] = flags & usable
