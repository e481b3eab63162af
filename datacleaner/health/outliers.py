"""The outlier checker: images that belong to no class of the dataset.

Score: `outlier_scores`, the mean cosine distance to the k nearest images over the dataset's median
of the same (1 = typical, larger = lonelier); an outlier is far (> outlier_distance, and unusually far
for this dataset) and no class is probable (< outlier_max_prob).  [numpy]"""

from __future__ import annotations

import numpy as np

from .image_props import unusual
from .rules import DROP, Thresholds

def outlier_scores(sims: np.ndarray, k: int) -> np.ndarray:
    """(N,) how far each image lies from its k nearest neighbours: 1 - their mean cosine similarity,
    over the dataset's median of the same (1 = typical; larger = lonelier)."""
    s = np.where(np.isfinite(sims[:, :k]), sims[:, :k], 0.0)
    distance = 1.0 - s.mean(axis=1)
    return (distance / max(float(np.median(distance)), 1e-6)).astype(np.float32)


def outliers(score: np.ndarray, suggested_prob: np.ndarray, t: Thresholds = Thresholds()) -> np.ndarray:
    """(N,) bool: images that belong to no class: far from their nearest images (outlier_scores above
    outlier_distance, and unusually far for this dataset) and no class above outlier_max_prob."""
    score = np.asarray(score, dtype=np.float64)
    lonely = (score > t.outlier_distance) & unusual(np.log(np.maximum(score, 1e-6)), False, t.outlier_unusual)
    return lonely & (np.nan_to_num(np.asarray(suggested_prob, dtype=np.float64), nan=1.0) < t.outlier_max_prob)



def check_outliers(facts, out, checks) -> None:
    """outlier on the features not centred (`outlier_features`, else `features`), with the committee's surest
    probability; suggested to drop unless another checker suggested something already."""
    N, use, t = len(facts.paths), np.flatnonzero(facts.usable), facts.t
    far = facts.neighbours("outlier_features" if facts.outlier_features is not None else "features")[0]
    score = np.full(N, np.nan, dtype=np.float32)
    score[use] = outlier_scores(far[use], t.neighbours)
    flags = np.zeros(N, dtype=bool)
    flags[use] = outliers(score[use], np.asarray(facts.suggested_prob)[use], t)
    out.found["outlier"], out.score = flags, score
    for m in np.flatnonzero(flags):
        out.detail[m].append(f"unlike every class of the dataset: {score[m]:.2f}x the usual distance to its "
                             f"{t.neighbours} nearest images, no class above {t.outlier_max_prob:.0%}")
        if out.suggest[m] == -1:
            out.suggest[m] = DROP
