"""The data-health checks' issue names, which ask a reviewer for a decision, and every threshold, in one place.

Score directions: each threshold below says which side is the problem (e.g. `dark`: p99 luminance
*below* it; `outlier_distance`: distance *above* it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

CHUNK = 4096  # feature rows per step: the float copies of a chunk are all that is held at once
PIXEL_STEP_BYTES = 16 * 2**20  # decoded pixels per step of the pixel checks: their float copies (about 12x) stay near 200 MB
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

