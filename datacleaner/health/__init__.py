"""Data health beside label errors: image properties, exact and near duplicates, conflicting labels, outliers.
[numpy; torch for the nearest-neighbour search's products]

Everything here works on what the single decode pass already produced: the decoded images
(N, S, S, 3) uint8 (each centre-cropped square at the cache size S) and, where known, each
file's original (width, height), and compact features from a pretrained backbone or the pixels.
One checker per issue type, each in its own module, its thresholds in `rules.Thresholds`, all run by
`assess` from one loop over the shared per-image table (`Facts`):

    image_props.check_properties   the image properties below (scores: facts.properties)
    groups.find_groups            exact copies (pixel digests) and near copies (pairs.near_pairs) as star groups
    groups.check_conflicts        conflicting_labels inside a group
    groups.check_copies           duplicate / near_duplicate beside the file a group keeps
    outliers.check_outliers       outlier (distance to the nearest images, no probable class)

The property scores and what counts as a problem:

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

from dataclasses import dataclass, field

import numpy as np

from ..neighbours import nearest
from .facts import (FEATURE_DIM, PixelFeatures, compact_features, equal_channels, is_grayscale, phash, pixel_digests,
                    pixel_features, pixel_rows, properties)
from .groups import check_conflicts, check_copies, conflicts, find_groups, group_label, star_groups
from .outliers import check_outliers, outlier_scores, outliers
from .pairs import (close_pairs, cross_pairs, digest_groups, exact_groups, feature_pairs, groups_from_pairs, hash_pairs, near_groups,
                    near_pairs, reach)
from .image_props import check_properties, is_flat, property_issues, property_levels, unusual
from .rules import (CHECK_GROUPS, CHUNK, COMMON, DECISION_ISSUES, DROP, DUPLICATE_ISSUES, ISSUES, LEAKAGE_RULES,
                    PIXEL_RULES, PROPERTY_ISSUES, REPORT_ISSUES, Thresholds, leakage_thresholds, parse_checks,
                    thresholds)

__all__ = [
    "CHECK_GROUPS", "CHUNK", "COMMON", "DECISION_ISSUES", "DROP", "DUPLICATE_ISSUES", "FEATURE_DIM", "ISSUES",
    "LEAKAGE_RULES", "PIXEL_RULES", "PROPERTY_ISSUES", "REPORT_ISSUES", "Facts", "Findings", "Health", "PixelFeatures", "Thresholds",
    "assess", "close_pairs", "compact_features", "conflicts", "cross_pairs", "digest_groups", "equal_channels",
    "exact_groups", "feature_pairs", "group_label", "groups_from_pairs", "hash_pairs", "is_flat", "is_grayscale",
    "leakage_thresholds", "near_groups", "near_pairs", "nearest", "outlier_scores", "outliers", "parse_checks",
    "phash", "pixel_digests", "pixel_features", "pixel_rows", "properties", "property_issues", "property_levels", "reach",
    "star_groups", "thresholds", "unusual",
]


@dataclass
class Facts:
    """The shared per-image table every checker reads: N images' paths, labels, class names and readability,
    what the decode pass computed (property scores, perceptual hashes, pixel digests), compact features
    (N, d) and the same not centred for the outlier distance, the committee's suggested class and its
    probability. Any of these may be None where the run has none; the checkers that need it are skipped."""

    paths: list[str]
    labels: np.ndarray  # (N,) int
    classes: list[str]  # class names
    usable: np.ndarray  # (N,) bool: readable
    t: Thresholds = field(default_factory=Thresholds)
    props: dict[str, np.ndarray] | None = None
    hashes: np.ndarray | None = None
    digests: np.ndarray | None = None
    features: np.ndarray | None = None
    outlier_features: np.ndarray | None = None
    suggested: np.ndarray | None = None
    suggested_prob: np.ndarray | None = None
    _knn: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.labels = np.asarray(self.labels)
        self.classes = np.array(self.classes, dtype=object)
        self.usable = np.asarray(self.usable, dtype=bool)

    def neighbours(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """((N, k) similarities, (N, k) indices) of each readable image's nearest readable images in the
        features `name` ('features' or 'outlier_features'); searched once per run of `assess`."""
        if name not in self._knn:
            use, N = np.flatnonzero(self.usable), len(self.paths)
            s, i = nearest(getattr(self, name)[use], k=self.t.neighbours)
            sims, idx = np.full((N, s.shape[1]), -np.inf, dtype=np.float32), np.full((N, s.shape[1]), -1, dtype=np.int64)
            sims[use], idx[use] = s, np.where(i >= 0, use[np.maximum(i, 0)], -1)
            self._knn[name] = sims, idx
        return self._knn[name]


@dataclass
class Findings:
    """What the checkers found so far; each adds to it in turn (`CHECKERS` order)."""

    found: dict[str, np.ndarray]  # issue -> (N,) bool
    detail: list[list[str]]  # (N,) words per image, naming the other files
    suggest: np.ndarray  # (N,) int64: a class, DROP, or -1 (the committee's)
    group: np.ndarray  # (N,) int64: the group's kept file, -1 for none
    score: np.ndarray | None = None  # (N,) outlier score
    notes: list[str] = field(default_factory=list)
    exact: np.ndarray | None = None  # (N,) exact-copy group (digest_groups), set by find_groups
    keep: dict = field(default_factory=dict)  # kept file -> (members, its exact copies, group label, why)


@dataclass(frozen=True)
class Checker:
    """One unit of the health checks: the issues it reports, what it reads, and the function that runs it."""

    issues: tuple[str, ...]  # it runs when any of these is checked
    needs: tuple[tuple[str, ...], ...]  # Facts fields it reads: of each inner tuple, at least one not None
    run: object  # (facts, findings, checks) -> None


CHECKERS = (
    Checker(PROPERTY_ISSUES, (("props",),), check_properties),
    Checker(DUPLICATE_ISSUES, (), find_groups),
    Checker(("conflicting_labels",), (), check_conflicts),
    Checker(DUPLICATE_ISSUES, (), check_copies),
    Checker(("outlier",), (("features", "outlier_features"), ("suggested_prob",)), check_outliers),
)


@dataclass
class Health:
    """The data-health verdict on every image of a labeled dataset."""

    issues: list[list[str]]  # (N,) the health issues of each image, most important first (ISSUES order)
    detail: np.ndarray  # (N,) object: why, in words, naming the other files
    group: np.ndarray  # (N,) int64: duplicate / near-duplicate group (the file it keeps), -1 for none
    suggest: np.ndarray  # (N,) int64: the suggestion for review: a class, DROP, or -1 (the committee's)
    outlier_score: np.ndarray | None = None  # (N,) distance to the nearest neighbours over the median
    notes: list[str] = field(default_factory=list)  # checks that did not apply to this dataset, and why


def assess(facts: Facts, checks=ISSUES) -> Health:
    """Every health check in `checks` on the N images `facts` describes (features None: no feature-based
    near duplicates or outliers; outliers also need the committee's probabilities). Unreadable images
    (not `usable`) get nothing."""
    N = len(facts.paths)
    out = Findings({}, [[] for _ in range(N)], np.full(N, -1, dtype=np.int64), np.full(N, -1, dtype=np.int64))
    for checker in CHECKERS:
        ready = all(any(getattr(facts, name) is not None for name in names) for names in checker.needs)
        if set(checker.issues) & set(checks) and ready:
            checker.run(facts, out, checks)
    issues = [[name for name in ISSUES if name in out.found and out.found[name][i]] for i in range(N)]
    return Health(issues, np.array(["; ".join(d) for d in out.detail], dtype=object), out.group, out.suggest,
                  out.score, out.notes)
