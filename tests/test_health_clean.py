"""Data health inside `clean` on real digit scans with planted problems: copies and re-encoded copies
are grouped with the file kept, a copy under another class reaches review.csv with the group's majority
label (and only that copy), a black image and a photo among digits are found, distinct scans are not
paired, image properties are reported in health.csv rather than listed, rescore --checks re-applies
the checks from cached data."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_sample_image

PLANTED = {
    "0/zero copy.png": "exact copy",
    "1/one re-encoded.jpg": "JPEG copy",
    "1/one bigger.png": "resized copy",
    "3/three copy.png": "exact copy",
    "7/three copy.png": "copy under another class",
    "0/black.png": "black image",
    "1/photo.png": "photo among digit scans",
}


@pytest.fixture(scope="module")
def health_run(tiny_config, tmp_path_factory):
    from datacleaner import clean
    from datacleaner.demo import write_noisy_digits

    data = tmp_path_factory.mktemp("health_data") / "data"
    truth = write_noisy_digits(data, noise=0.0, seed=0, per_class=40, classes=[0, 1, 3, 7])
    first = {c: sorted((data / c).iterdir())[k] for c, k in (("0", 0), ("1", 5), ("3", 9))}
    shutil.copy(first["0"], data / "0" / "zero copy.png")
    one = Image.open(first["1"]).convert("RGB")
    one.save(data / "1" / "one re-encoded.jpg", quality=85)
    one.resize((48, 48), Image.Resampling.BICUBIC).save(data / "1" / "one bigger.png")
    shutil.copy(first["3"], data / "3" / "three copy.png")
    shutil.copy(first["3"], data / "7" / "three copy.png")
    Image.new("RGB", (32, 32)).save(data / "0" / "black.png")
    Image.fromarray(load_sample_image("flower.jpg")[100:300, 200:400]).resize((32, 32)).save(data / "1" / "photo.png")
    run = tmp_path_factory.mktemp("health_run") / "run"
    result = clean(data, run, tiny_config)
    originals = {c: f"{c}/{f.name}" for c, f in first.items()}
    return data, run, result, originals, truth


def issues_of(table: pd.DataFrame, path: str) -> list[str]:
    row = table[table["path"] == path]
    assert len(row) == 1, path
    return row["issue"].iat[0].split(";") if row["issue"].iat[0] else []


def test_copies_are_grouped_and_distinct_scans_are_not(health_run):
    _, run, _, originals, truth = health_run
    scores = pd.read_csv(run / "scores.csv", dtype=str, keep_default_na=False)
    zero, one, three = originals["0"], originals["1"], originals["3"]
    assert "duplicate" in issues_of(scores, "0/zero copy.png") and issues_of(scores, zero) == []  # the file kept
    assert "kept; its copies: 0/zero copy.png" in scores.set_index("path").loc[zero, "detail"]
    group = scores.set_index("path")["duplicate_group"]
    assert group[zero] == group["0/zero copy.png"] == zero
    assert {group["1/one re-encoded.jpg"], group["1/one bigger.png"]} == {group[one]} and group[one]
    for p in ("1/one re-encoded.jpg", "1/one bigger.png"):
        assert "near_duplicate" in issues_of(scores, p), p
    assert group["3/three copy.png"] == group["7/three copy.png"] == group[three] == three
    copy_row = scores.set_index("path").loc["0/zero copy.png"]
    assert copy_row["suggested_label"] == "__drop__" and zero in copy_row["detail"]
    # no false groups among the 160 distinct scans (digits that are not planted copies)
    planted = set(PLANTED) | set(originals.values())
    stray = scores[(scores["duplicate_group"] != "") & ~scores["path"].isin(planted)]
    assert len(stray) <= 2, stray[["path", "duplicate_group", "detail"]]
    assert set(truth["path"]) <= set(scores["path"])


def test_conflicting_labels_reach_review_with_the_majority_label(health_run):
    _, run, result, originals, _ = health_run
    review = pd.read_csv(run / "review.csv", dtype=str, keep_default_na=False)
    conflicted = review[review["issue"].str.contains("conflicting_labels")]
    # only the file whose label differs from its group's is a row to decide; the others agree
    assert set(conflicted["path"]) == {"7/three copy.png"}, conflicted[["path", "issue", "detail"]]
    row = conflicted.set_index("path").loc["7/three copy.png"]
    assert row["suggested_label"] == "3" and row["duplicate_group"] == originals["3"]
    assert row["given_label"] == "7" and "3 x2" in row["detail"] and "7 x1" in row["detail"]
    assert originals["3"] in row["detail"] and "3/three copy.png" in row["detail"]  # the agreeing files, by name
    assert originals["3"] not in set(review["path"])  # the file kept asks for nothing
    assert result.summary["issues"]["conflicting_labels"] == 1
    assert result.summary["duplicate_groups"]["largest"] == 3
    # label problems first, then the other issues, unreadable last; the issue lists are ordered
    first = review["issue"].str.split(";").str[0]
    label = first.isin(["mislabel", "low_confidence", "conflicting_labels"]).to_numpy()
    assert not label[np.argmin(label):].any() if (~label).any() else True


def test_black_image_and_photo_are_found(health_run):
    _, run, result, _, _ = health_run
    scores = pd.read_csv(run / "scores.csv", dtype=str, keep_default_na=False)
    black = issues_of(scores, "0/black.png")
    assert "dark" in black and "low_information" in black
    assert "outlier" in issues_of(scores, "1/photo.png"), scores.set_index("path").loc["1/photo.png"].to_dict()
    summary = result.summary
    assert summary["issues"]["dark"] >= 1 and summary["issues"]["outlier"] >= 1
    assert any("grayscale" in note for note in summary.get("health_notes", []))  # digit scans: a grey dataset
    assert summary["issues"]["grayscale"] == 0
    # properties are reported (health.csv, summary.json), not rows to decide; the outlier photo is a row
    review = pd.read_csv(run / "review.csv", dtype=str, keep_default_na=False)
    first = review.set_index("path")["issue"].str.split(";").str[0]
    assert "1/photo.png" in first.index and first.get("0/black.png", "outlier") in ("outlier", "mislabel", "low_confidence")
    assert not first.isin(["dark", "light", "blurry", "low_information", "grayscale", "odd_aspect_ratio", "odd_size"]).any()
    listed = pd.read_csv(run / "health.csv", dtype=str, keep_default_na=False).set_index("path")
    assert "dark" in listed.loc["0/black.png", "issue"]
    assert float(listed.loc["0/black.png", "luminance_p99"]) < 0.05
    assert summary["reported_only"]["dark"] >= 1 and "dark" not in summary["review_rows"]


def test_rescore_applies_checks_from_cached_data_without_decoding(health_run, tmp_path, monkeypatch):
    from datacleaner import rescore
    from datacleaner.pipeline import prepare

    _, run, _, _, _ = health_run
    work = tmp_path / "run"
    shutil.copytree(run, work)
    monkeypatch.setattr(prepare, "decode_images", lambda *a, **k: pytest.fail("rescore decoded images"))
    only = rescore(work, checks="properties")
    scores = only.scores
    assert not scores["issue"].str.contains("duplicate|conflicting|outlier").any()
    assert "dark" in issues_of(scores, "0/black.png")
    assert only.summary["checks"] == ["dark", "light", "blurry", "low_information", "grayscale", "odd_aspect_ratio", "odd_size"]
    none = rescore(work, checks="none")
    assert set(none.scores["issue"]) <= {"", "mislabel", "low_confidence"}
    again = rescore(work, checks="all")
    assert "duplicate" in issues_of(again.scores, "0/zero copy.png")


def test_review_page_and_report_show_the_group_beside_the_row(health_run, tmp_path):
    """The file to fix comes with the other files of its group and their labels: in the review app's rows
    (which the page draws beside the card) and as thumbnails in the report, so the decision is made by looking."""
    from datacleaner.review.lists import open_list
    from datacleaner.review.report import write_report
    from datacleaner.review.state import ReviewState

    _, run, _, originals, _ = health_run
    work = tmp_path / "run"
    shutil.copytree(run, work)
    state = ReviewState(open_list(work), "tester")
    rows = {r["path"]: r for r in state.rows({"limit": "200"})["rows"]}
    group = {m["path"]: m["label"] for m in rows["7/three copy.png"]["group"]}
    assert group == {originals["3"]: "3", "3/three copy.png": "3"}
    assert set(group) <= state.allowed  # the image endpoint serves them
    html = write_report(work).read_text()
    # the row is a data-health row (a table row) or, when the committee flagged it too, a suspect's card
    cell, end = (('<td class="path">7/three copy.png</td>', "</tr>") if '<td class="path">7/three copy.png</td>' in html
                 else ('<div class="path">7/three copy.png</div>', '<figure class="card'))
    row = html[html.index(cell):]
    row = row[: row.find(end) if end in row else row.index("</section>")]
    assert f'title="{originals["3"]}"' in row and 'title="3/three copy.png"' in row and row.count("<img") >= 2
