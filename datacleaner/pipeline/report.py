"""Stage 6, write: scores.csv, review.csv (keeping a reviewer's decisions), health.csv, config.yaml and
summary.json from a finished run's cached logits; `rescore` re-runs stages 4-6 with other settings.  [I/O]"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import health
from ..config import dump_config, judges
from ..lock import run_lock
from ..progress import Progress, Stopwatch
from ..tables import LABEL_ISSUES, keep_decisions, list_lock, primary_issue, review_table, score_table, write_csv_atomic, write_text_atomic
from .checks import group_sizes, health_table, health_verdict
from .judge import FinishedRun, judge_pass, load_finished_run
from .rundir import RunDir


@dataclass
class CleanResult:
    run_dir: Path
    scores: pd.DataFrame  # every image (scores.csv)
    review: pd.DataFrame  # flagged and unreadable images, most suspect first (review.csv)
    summary: dict


# What a re-score keeps from the summary `clean` wrote: facts about the run, not about the scores.
RUN_FACTS = ("profile", "profile_reason", "wall_time_s", "members_trained", "device", "engines", "warnings",
             "judgements_reused", "executor", "memory", "timings_s", "work", "peak_memory_mb")


def rescore(
    run_dir: str | Path,
    *,
    tau: float | None = None,
    min_flags: int | None = None,
    fusion: str | None = None,
    weights: dict[str, float] | None = None,
    flag_rule: str | None = None,
    label_quality: str | None = None,
    calibrate: bool | None = None,
    fit_weights: bool | None = None,
    checks: str | None = None,
    min_error_prob: float | str | None = None,
    progress: Progress | None = None,
) -> CleanResult:
    """Re-score a finished run from its cached logits (no training), optionally with new tau, T, fusion
    mode, member weights ({name: weight}), flag rule, label-quality score, calibration, fitted weights
    or data-health `checks` (re-applied from the cached pixel facts and features: nothing is decoded
    again), or `min_error_prob` (a number, or 'auto' for the automatic list length), and rewrite
    scores.csv, review.csv, summary.json and config.yaml."""
    changes = dict(tau=tau, min_flags=min_flags, fusion=fusion, flag_rule=flag_rule, label_quality=label_quality,
                   calibrate=calibrate, fit_weights=fit_weights, checks=checks,
                   min_error_prob=min_error_prob)
    with run_lock(run_dir, progress):
        return write_outputs(RunDir(run_dir), changes, weights, progress=progress)


def write_outputs(run: RunDir, changes: dict | None = None, weights: dict[str, float] | None = None,
             watch: Stopwatch | None = None, progress: Progress | None = None) -> CleanResult:
    done = load_finished_run(run, changes or {}, weights or {})
    scores, fitted, votes = judge_pass(run, done.cfg, done.info, done.plan, done.labels, held_out=done.held_out, progress=progress)
    problems = {i: why for i, why in enumerate(done.manifest["reason"]) if why}
    member_votes = {j.label: votes[:, k] for k, j in enumerate(judges(done.cfg.members))}
    with (watch or Stopwatch()).stage("health"):
        verdict, health_notes, props = health_verdict(run, done, scores)
    table = score_table(done.manifest["path"].tolist(), done.info["classes"], scores, problems, member_votes, verdict)
    table.insert(len(table.columns) - 1, "checksum", done.manifest["checksum"].to_numpy())
    write_csv_atomic(table, run.file("scores.csv"))
    if verdict is not None:
        write_csv_atomic(health_table(table, verdict, props), run.file("health.csv"))
    else:
        run.file("health.csv").unlink(missing_ok=True)
    with list_lock(run.file("review.csv")):  # a reviewer's decision saved meanwhile is kept too
        review, kept = keep_decisions(review_table(table), run.file("review.csv"))
        write_csv_atomic(review, run.file("review.csv"))
    write_text_atomic(run.file("config.yaml"), dump_config(done.cfg))
    previous = run.read_json("summary.json") or {}
    summary = {**{k: previous[k] for k in RUN_FACTS if k in previous}, **_score_summary(run, done, scores, table, fitted, review),
               **_kept_summary(kept), **({"health_notes": health_notes} if health_notes else {})}
    run.write_json("summary.json", summary)
    return CleanResult(run_dir=run.path, scores=table, review=review, summary=summary)


def _kept_summary(kept) -> dict:
    """summary.json's record of review decisions carried over from the list a re-score replaced."""
    out = {"decisions_kept": kept.kept} if kept.kept else {}
    if kept.saved_in:
        out["decisions_saved_in"] = str(kept.saved_in)
    return out


def _expected_summary(scores, in_review: pd.Series, first: int = 500) -> dict:
    """How many wrong labels error_prob expects: in the dataset, among the label rows of review.csv,
    and among its first `first` rows (the most probably wrong)."""
    ep = np.sort(scores.error_prob[in_review.to_numpy()])[::-1]
    k = min(first, len(ep))
    return {"expected_wrong_labels": round(scores.expected_wrong(), 1), "expected_wrong_in_review": round(float(ep.sum()), 1),
            "expected_wrong_in_first": {"rows": k, "wrong": round(float(ep[:k].sum()), 1)}}


def _score_summary(run: RunDir, done: FinishedRun, scores, table: pd.DataFrame, fitted: dict, review: pd.DataFrame) -> dict:
    cfg, classes, N = done.cfg, done.info["classes"], len(table)
    unreadable = int((table["issue"] == "unreadable").sum())
    in_review = primary_issue(table["issue"]).isin(["mislabel", "low_confidence"])
    names = table["issue"][table["issue"] != ""].str.split(";").explode().value_counts()
    issues = {name: int(names.get(name, 0)) for name in (*LABEL_ISSUES, *health.ISSUES, "unreadable")}
    rows = primary_issue(review["issue"]).value_counts()
    per_class = table[in_review]["given_label"].value_counts().reindex(classes, fill_value=0)
    return {
        "images": N, "readable": N - unreadable, "unreadable": unreadable, "classes": len(classes),
        "scheme": cfg.scheme, "folds": cfg.folds, "judgements_per_image": done.plan.judgements_per_image,
        "tau": cfg.tau, "min_flags": cfg.resolved_min_flags(done.plan.judgements_per_image), "fusion": cfg.fusion,
        "members": {j.label: round(j.weight, 6) for j in judges(cfg.members)}, "flag_rule": cfg.flag_rule,
        "label_quality": cfg.label_quality, "calibrate": cfg.calibrate, "fit_weights": cfg.fit_weights,
        "fitted": fitted, "flagged": int(in_review.sum()), "issues": issues,
        "checks": list(health.parse_checks(cfg.checks)), "in_review": len(review),
        "review_rows": {name: int(n) for name, n in rows.items()},
        "reported_only": {name: issues[name] for name in health.REPORT_ISSUES if issues[name]},
        "duplicate_groups": group_sizes(table["duplicate_group"]),
        "flagged_per_class": {c: int(n) for c, n in per_class.items()},
        "estimated_noise_rate": round(scores.estimated_noise_rate(), 4),
        "committee_disagreement": round(scores.disagreement_rate(), 4),
        "min_error_prob": cfg.min_error_prob, "list_length": scores.list_length, "error_model": scores.noise_model,
        **_expected_summary(scores, in_review),
        "passes": cfg.passes, "scores_csv": str(run.file("scores.csv")), "review_csv": str(run.file("review.csv")),
    }
