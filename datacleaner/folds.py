"""Fold plans: which images each committee trains on and which it judges.  [pure numpy]

N images, K parts. `part[i]` is the part of image i (-1: excluded, e.g. unreadable).

- scheme "dling": round k trains on part k and judges every other part, so every
  image is judged K - 1 times.
- scheme "cv": round k trains on every part but k and judges part k once.

Either way no image is judged by a committee that trained on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("dling", "cv")


@dataclass(frozen=True)
class FoldPlan:
    scheme: str
    part: np.ndarray  # (N,) int64 part index per image, -1 = excluded

    @property
    def folds(self) -> int:
        return int(self.part.max()) + 1

    @property
    def n_rounds(self) -> int:
        return self.folds

    @property
    def judgements_per_image(self) -> int:
        return self.folds - 1 if self.scheme == "dling" else 1

    def train_idx(self, k: int) -> np.ndarray:
        """(n_train,) indices of the images committee k trains on."""
        if self.scheme == "dling":
            return np.flatnonzero(self.part == k)
        return np.flatnonzero((self.part >= 0) & (self.part != k))

    def judge_idx(self, k: int) -> np.ndarray:
        """(n_judged,) indices of the images committee k judges."""
        if self.scheme == "dling":
            return np.flatnonzero((self.part >= 0) & (self.part != k))
        return np.flatnonzero(self.part == k)


def make_fold_plan(labels: np.ndarray, *, scheme: str, folds: int, seed: int, usable: np.ndarray | None = None) -> FoldPlan:
    """Stratified, seeded assignment of the usable images to `folds` parts.

    labels: (N,) int class indices. usable: (N,) bool, False for images to leave out.
    Every class must have at least `folds` usable images.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    labels = np.asarray(labels, dtype=np.int64)
    usable = np.ones(len(labels), dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    rng = np.random.default_rng(seed)
    part = np.full(len(labels), -1, dtype=np.int64)
    offset = 0  # rotate where each class starts so parts stay balanced in size
    for c in np.unique(labels[usable]):
        members = np.flatnonzero(usable & (labels == c))
        if len(members) < folds:
            raise ValueError(f"class {c} has {len(members)} usable images, fewer than folds={folds}")
        members = rng.permutation(members)
        part[members] = (np.arange(len(members)) + offset) % folds
        offset = (offset + len(members)) % folds
    return FoldPlan(scheme=scheme, part=part)
