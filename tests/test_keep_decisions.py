"""Decisions already made in a review list survive a re-score or a re-run that rewrites the list."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from datacleaner import rescore
from datacleaner.review.lists import Decision, record


def read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_rescore_keeps_decisions_and_saves_those_that_find_no_row(reviewable_run, tmp_path):
    _, run, _ = reviewable_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".datacleaner.lock"))
    listed = read(copy / "review.csv")
    scores = read(copy / "scores.csv")
    # the list as a reviewer left it: a row no longer flagged, and a row whose file changed since
    gone = scores[scores["issue"] == ""].iloc[[0]]
    changed = listed.index[listed["issue"] != "unreadable"][1]
    listed.loc[changed, "checksum"] = "0" * 16
    pd.concat([listed, gone]).to_csv(copy / "review.csv", index=False)
    decided = {p: Decision(f"{label or '__drop__'}", "ann", "2026-01-01T00:00:00Z")
               for p, label in zip(pd.concat([listed, gone])["path"], pd.concat([listed, gone])["suggested_label"])}
    record(copy / "review.csv", decided)

    result = rescore(copy)
    after = read(copy / "review.csv").set_index("path")
    kept = [p for p in listed["path"] if p != listed.at[changed, "path"]]
    assert list(after.index) == list(listed["path"])  # the same rows, in the same order
    for p in kept:
        assert after.at[p, "reviewed_label"] == decided[p].label and after.at[p, "reviewed_by"] == "ann"
    assert after.at[listed.at[changed, "path"], "reviewed_label"] == ""  # another file now: review it again
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["decisions_kept"] == len(kept) == result.summary["decisions_kept"]
    saved = read(summary["decisions_saved_in"])  # the old list, with every decision in it
    assert set(saved.loc[saved["reviewed_label"] != "", "path"]) == set(decided)

    again = rescore(copy)  # every decision finds its row this time: no new copy
    assert again.summary["decisions_kept"] == len(kept) and "decisions_saved_in" not in again.summary
    assert len(list(copy.glob("review.before-*.csv"))) == 1
