"""Demo and benchmark data: scikit-learn's bundled handwritten digits (real 8x8 scans)
written as a class-folder tree of PNGs with a known share of labels flipped, and the
metrics of a review list against the flips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from .tables import primary_issue


def write_noisy_digits(
    out: str | Path, *, noise: float = 0.1, seed: int = 0, size: int = 32, per_class: int | None = None,
    classes: list[int] | None = None,
) -> pd.DataFrame:
    """Write digits as `out/<given label>/<id>.png` (grayscale, upscaled to `size`), flipping a
    `noise` share of the labels to another class. Returns path, true_label, given_label, flipped."""
    out = Path(out)
    digits = load_digits()
    rng = np.random.default_rng(seed)
    keep = np.arange(len(digits.target))
    if classes is not None:
        keep = keep[np.isin(digits.target, classes)]
    if per_class is not None:
        keep = np.concatenate([keep[digits.target[keep] == c][:per_class] for c in np.unique(digits.target[keep])])
    true = digits.target[keep]
    names = np.unique(true)
    given = true.copy()
    flip = rng.choice(len(keep), size=int(round(noise * len(keep))), replace=False)
    for i in flip:
        given[i] = rng.choice(names[names != true[i]])
    rows = []
    for j, i in enumerate(keep):
        pixels = (digits.images[i] * (255.0 / 16.0)).astype(np.uint8)
        img = Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.BICUBIC)
        rel = f"{given[j]}/digit_{i:04d}.png"
        (out / str(given[j])).mkdir(parents=True, exist_ok=True)
        img.save(out / rel)
        rows.append((rel, str(true[j]), str(given[j])))
    truth = pd.DataFrame(rows, columns=["path", "true_label", "given_label"])
    truth["flipped"] = truth["true_label"] != truth["given_label"]
    return truth


def review_metrics(scores: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Precision, recall and F1 of the review list, and AUROC of label_quality, against known flips.

    scores: scores.csv as a table; truth: path + flipped (bool)."""
    merged = scores.merge(truth[["path", "flipped"]], on="path", how="inner")
    reviewed = primary_issue(merged["issue"]).isin(["mislabel", "low_confidence"]).to_numpy()
    flipped = merged["flipped"].to_numpy(dtype=bool)
    tp = int((reviewed & flipped).sum())
    precision = tp / max(1, int(reviewed.sum()))
    recall = tp / max(1, int(flipped.sum()))
    f1 = 2 * precision * recall / max(1e-12, precision + recall)
    quality = merged["label_quality"].to_numpy(dtype=float)
    auroc = roc_auc_score(flipped, -np.nan_to_num(quality, nan=0.0)) if 0 < flipped.sum() < len(flipped) else float("nan")
    return {
        "images": len(merged), "flipped": int(flipped.sum()), "flagged": int(reviewed.sum()), "true_flags": tp,
        "precision": precision, "recall": recall, "f1": f1, "auroc": auroc,
    }
