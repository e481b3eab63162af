"""Scoring what `clean` says against the truth: flags and rankings (is_error arrays), and review lists
row by row (a run directory against a truth table of path, true_label, given_label[, planted, source])."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

# a planted image (harness.data's truth: planted kind) is a real finding for these issues
PLANTED_AS = {"outlier": ("outside",), "dark": ("dark",), "blurry": ("blurry",), "low_information": ("outside",)}


def review_order(flag_count: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices in review.csv's order: most flags first, then lowest label quality."""
    return np.lexsort((np.nan_to_num(quality, nan=2.0), -flag_count))


def list_metrics(is_error: np.ndarray, flagged: np.ndarray | None, quality: np.ndarray, order: np.ndarray, ks,
                 missing=None) -> dict:
    """flagged, precision, recall, f1, flagged_share of a flag set (None: a ranking only); auroc and ap of
    the ranking (lower quality = more suspect); p@k of the first k of `order`. Where the labels hold no
    wrong label (or only wrong ones) the ranking cannot be judged: auroc and ap are `missing`."""
    row = {}
    if flagged is not None:
        tp = int((flagged & is_error).sum())
        p, r = tp / max(1, flagged.sum()), tp / max(1, is_error.sum())
        row.update(flagged=int(flagged.sum()), precision=p, recall=r, f1=2 * p * r / max(1e-12, p + r),
                   flagged_share=float(flagged.mean()))
    both = 0 < is_error.sum() < len(is_error)
    row.update(auroc=roc_auc_score(is_error, -quality) if both else missing,
               ap=average_precision_score(is_error, -quality) if both else missing)
    for k in ks:
        row[f"p@{k}"] = float(is_error[order[:k]].mean())
    return row


def review_rows(run: Path, truth: pd.DataFrame) -> dict:
    """Every row of a run's review.csv against the truth: the label rows' precision / recall / F1 and the
    AUROC of label_quality against the real wrong labels, real wrong labels in the first 100 label rows,
    the share flagged by the committee, error_prob against the truth, duplicate groups, and per other
    issue (rows, real: planted, or a planted copy's original)."""
    from .internals import LABEL_ISSUES, primary_issue

    scores = pd.read_csv(run / "scores.csv", dtype={"path": str}, keep_default_na=False)
    review = pd.read_csv(run / "review.csv", dtype={"path": str}, keep_default_na=False)
    summary = json.loads((run / "summary.json").read_text())
    t = truth.set_index("path")
    wrong = (t["true_label"] != t["given_label"]) & (t["planted"] != "outside")
    planted = t["planted"]
    first = primary_issue(review["issue"])
    is_label = first.isin(LABEL_ISSUES)
    label_rows = review[is_label]
    label_wrong = wrong.reindex(label_rows["path"]).fillna(False).to_numpy(dtype=bool)
    n_wrong = int(wrong.sum())
    tp = int(label_wrong.sum())
    p, r = tp / max(len(label_rows), 1), tp / max(n_wrong, 1)
    s = scores.set_index("path")
    judged = s["label_quality"].replace("", np.nan).astype(float).notna()
    q = s.loc[judged, "label_quality"].astype(float)
    y = wrong.reindex(q.index).fillna(False).to_numpy(dtype=bool)
    auroc = roc_auc_score(y, -q.to_numpy()) if 0 < y.sum() < len(y) else float("nan")
    ep = pd.to_numeric(label_rows["error_prob"], errors="coerce").fillna(0.0).to_numpy()
    ks = np.arange(50, len(ep) + 1, 50)
    gaps = [float(ep[:k].mean() - label_wrong[:k].mean()) for k in ks]  # running mean of error_prob - precision at k
    groups = scores["duplicate_group"][scores["duplicate_group"] != ""].value_counts()
    others = review[~is_label & (first != "unreadable")]
    by_issue = {}
    for issue, rows in others.groupby(first[others.index]):
        kinds = planted.reindex(rows["path"]).fillna("").to_numpy()
        if issue in ("duplicate", "near_duplicate"):  # a planted copy, or the original of one (half of a planted pair)
            sources = set(t.loc[t["source"] != "", "source"])
            real = (kinds != "") & (kinds != "outside") | rows["path"].isin(sources).to_numpy()
        else:
            real = np.isin(kinds, PLANTED_AS.get(issue, ()))
        by_issue[issue] = (len(rows), int(real.sum()))
    return {
        "images": len(scores), "wrong": n_wrong, "review_rows": len(review), "label_rows": len(label_rows),
        "label_tp": tp, "precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-12), "auroc": auroc,
        "first100": int(label_wrong[:100].sum()), "first100_of": min(100, len(label_rows)),
        "flagged_share": int(first.isin(["mislabel", "low_confidence"]).sum()) / max(len(scores), 1),
        "error_prob_sum": float(ep.sum()), "expected_wrong": summary.get("expected_wrong_labels"),
        "gap": max(gaps, key=abs) if gaps else float("nan"),
        "largest_group": int(groups.max()) if len(groups) else 0, "non_label": by_issue,
    }
