"""`datacleaner clean` end to end on real digit scans with flipped labels."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from datacleaner.cli import app
from datacleaner.tables import COLUMNS

runner = CliRunner()


@pytest.fixture(scope="module")
def finished_run(reviewable_run, tiny_config, tmp_path_factory):
    """The noisy digits with one unreadable file, cleaned (conftest's reviewable_run), and the command's own
    output: `clean` again on a copy of that run reuses every judgement and prints the run's summary."""
    import shutil

    root, run, truth = reviewable_run
    out = shutil.copytree(run, tmp_path_factory.mktemp("run") / "run")  # tests here rescore it
    result = runner.invoke(app, ["clean", str(root), "--config", str(tiny_config), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["members_trained"] == 0
    return root, truth, out, result.output


def read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_flipped_labels_rank_at_the_top(finished_run):
    _, truth, out, output = finished_run
    scores = read(out / "scores.csv")
    votes = [c for c in scores.columns if c.startswith("vote_")]
    assert [c for c in scores.columns if c not in votes] == COLUMNS
    assert len(votes) >= 1 and scores.columns.get_loc(votes[0]) == COLUMNS.index("rounds") + 1
    readable = scores[scores["issue"] != "unreadable"]
    classes = set(readable["given_label"])
    assert all(set(readable[v]) <= classes for v in votes)  # each member's label, a class name
    # with several members, they agree with the fused label on most images, not all
    agree = (readable[votes[0]] == readable["suggested_label"]).mean()
    assert 0.5 < agree <= 1.0
    judged = scores[scores["issue"] != "unreadable"].copy()
    judged["label_quality"] = judged["label_quality"].astype(float)
    merged = judged.merge(truth, on="path")
    n_flipped = int(merged["flipped"].sum())
    assert n_flipped >= 20
    top = merged.sort_values("label_quality").head(2 * n_flipped)
    assert top["flipped"].sum() >= 0.8 * n_flipped  # most flips among the 2x-suspects
    review = read(out / "review.csv")
    reviewed = review[review["issue"].str.split(";").str[0].isin(["mislabel", "low_confidence"])].merge(truth, on="path")
    assert reviewed["flipped"].sum() >= 0.7 * n_flipped  # recall of the review list
    assert reviewed.head(n_flipped // 2)["flipped"].mean() >= 0.8  # the head of the list is mostly real errors
    caught = reviewed[reviewed["flipped"]]
    assert (caught["suggested_label"] == caught["true_label"]).mean() >= 0.8  # suggestions give the true label
    assert (review["reviewed_label"] == "").all()
    assert "flagged" in output and "est. noise rate" in output


def test_unreadable_file_is_a_row_not_a_crash(finished_run):
    _, _, out, _ = finished_run
    review = read(out / "review.csv")
    row = review[review["path"] == "1/broken.png"]
    assert len(row) == 1 and row["issue"].iloc[0] == "unreadable"
    assert "cannot decode" in row["reason"].iloc[0]
    assert row["label_quality"].iloc[0] == ""
    assert review["issue"].iloc[-1] == "unreadable"  # after the flagged images


def test_run_directory_holds_config_plan_caches_and_summary(reviewable_run):
    import os
    import stat

    _, out, _ = reviewable_run  # the run as a fresh clean left it
    umask = os.umask(0)
    os.umask(umask)
    for name in ("review.csv", "scores.csv", "summary.json", "config.yaml"):  # readable like any new file
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~umask, name
    assert (out / "config.yaml").is_file() and (out / "manifest.csv").is_file()
    assert len(list((out / "members").glob("*.safetensors"))) == 3 * 2
    assert len(list((out / "logits").glob("*.npy"))) == 3 * 2
    manifest = read(out / "manifest.csv")
    assert set(manifest["part"]) == {"-1", "0", "1", "2"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["members_trained"] == 6 and summary["unreadable"] == 1
    timings, work = summary["timings_s"], summary["work"]  # what each stage cost, for bench/speed.py
    assert set(timings) >= {"scan", "decode", "train", "predict", "score_write"}
    assert min(timings["train"], timings["predict"], timings["decode"], timings["score_write"]) > 0
    assert sum(timings.values()) <= summary["wall_time_s"] + 0.1  # stages do not overlap
    assert timings["train"] > timings["score_write"]
    images = int(summary["images"]) - 1  # readable: each trained on in 2 of 3 rounds, judged once, 2 views
    assert work["predict_image_views"] == images * 2 * 2  # x 2 members
    assert work["member_epochs"] == 6 * 6 and work["train_image_epochs"] == 2 * 2 * images * 6


def test_rescore_changes_flags_without_training(finished_run):
    _, _, out, _ = finished_run
    weights_before = {p: p.stat().st_mtime_ns for p in (out / "members").glob("*")}
    strict = runner.invoke(app, ["rescore", str(out), "--tau", "0.95", "--min-error-prob", "0", "-q"])
    assert strict.exit_code == 0, strict.output
    n_strict = (read(out / "review.csv")["issue"] != "unreadable").sum()
    loose = runner.invoke(app, ["rescore", str(out), "--tau", "0.05", "--weight", "resnet10t=2", "--min-error-prob", "0", "-q"])
    assert loose.exit_code == 0, loose.output
    n_loose = (read(out / "review.csv")["issue"] != "unreadable").sum()
    assert n_strict > n_loose
    assert "tau=0.05" in loose.output
    assert {p: p.stat().st_mtime_ns for p in (out / "members").glob("*")} == weights_before
    bad = runner.invoke(app, ["rescore", str(out), "--weight", "nosuch=1"])
    assert bad.exit_code == 1 and "no member named 'nosuch'" in bad.output
    back = ["rescore", str(out), "--tau", "0.3", "--weight", "resnet10t=1", "--min-error-prob", "0.1", "-q"]
    assert runner.invoke(app, back).exit_code == 0  # back to the config


def test_user_errors_are_one_line_messages(noisy_digits, tiny_config, tmp_path):
    root, _ = noisy_digits
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("folds: 3\nepoch: 2\n")
    r = runner.invoke(app, ["clean", str(root), "-c", str(bad_cfg), "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "unknown key 'epoch'" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["clean", str(root), "-c", str(tiny_config), "--folds", "200", "--out", str(tmp_path / "y")])
    assert r.exit_code == 1 and "lower --folds" in r.output
    r = runner.invoke(app, ["clean", str(tmp_path / "missing"), "-c", str(tiny_config), "--out", str(tmp_path / "z")])
    assert r.exit_code == 1 and "does not exist" in r.output


def test_formula_like_labels_are_neutralised(tmp_path):
    from datacleaner.tables import write_csv_atomic

    path = write_csv_atomic(pd.DataFrame({"path": ["=cmd|' /C calc'!A0"], "given_label": ["+1"], "flag_count": [-1]}), tmp_path / "x.csv")
    row = pd.read_csv(path, dtype=str).iloc[0]
    assert row["path"].startswith("'=") and row["given_label"] == "'+1" and row["flag_count"] == "-1"
    assert not list(tmp_path.glob(".*tmp"))


def test_demo_runs_with_its_default_profile_on_a_subset(tmp_path):
    """`demo` with no --config runs the `small` profile (here on 60 scans of each digit)."""
    r = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--per-class", "60", "--noise", "0.1", "-q"])
    assert r.exit_code == 0, r.output
    assert "600 digit scans" in r.output and "60 labels flipped" in r.output
    assert "profile          small (built-in profile given by name)" in r.output
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    # committees trained on 40 scans per class (measured: P 0.97 / R 0.98 / F1 0.98 / AUROC 1.00)
    assert metrics["flipped"] == 60 and metrics["recall"] >= 0.75 and metrics["f1"] >= 0.7 and metrics["auroc"] >= 0.95
    assert "precision" in r.output and "recall" in r.output
    config = (tmp_path / "demo" / "run" / "config.yaml").read_text()
    assert "resnet10t" in config and "regnetx_002" in config


def test_error_prob_is_monotone_down_the_list_and_calibrated_on_digits(finished_run):
    """error_prob in [0, 1], falling down review.csv's label rows; on digits with 10% of labels
    flipped, the share of flipped labels among images in each error_prob bin is within 0.25 of
    the bin's mean error_prob (bins with at least 10 images), and the expected count of wrong
    labels in the review list is within 40% of the true count. In the dataset the noise the
    committee shows is within 40% of the truth, and so is the dataset's estimate: random flips like
    these the committee sees whole, so the link that scales up noise a committee has learnt (from
    human annotators) is capped by confident learning's count and does not double the estimate."""
    import numpy as np

    _, truth, out, output = finished_run
    scores = read(out / "scores.csv")
    judged = scores[scores["issue"] != "unreadable"].merge(truth, on="path")
    ep = judged["error_prob"].astype(float).to_numpy()
    assert ((ep >= 0) & (ep <= 1)).all()
    flipped = judged["flipped"].to_numpy(bool)
    for lo, hi in [(0, 0.1), (0.1, 0.5), (0.5, 0.9), (0.9, 1.01)]:
        m = (ep >= lo) & (ep < hi)
        if m.sum() >= 10:
            assert abs(flipped[m].mean() - ep[m].mean()) <= 0.25, (lo, hi, m.sum(), flipped[m].mean(), ep[m].mean())
    summary = json.loads((out / "summary.json").read_text())
    assert abs(summary["error_model"]["seen_noise_rate"] * len(judged) - flipped.sum()) <= 0.4 * flipped.sum()
    assert abs(summary["expected_wrong_labels"] - flipped.sum()) <= 0.4 * flipped.sum()
    review = read(out / "review.csv")
    labels = review[review["issue"].str.split(";").str[0].isin(["mislabel", "low_confidence"])]
    rows = labels["error_prob"].astype(float).to_numpy()
    assert (np.diff(rows) <= 1e-9).all()  # most probably wrong first
    wrong_in_list = int(labels.merge(truth, on="path")["flipped"].sum())
    assert abs(summary["expected_wrong_in_review"] - wrong_in_list) <= 0.4 * wrong_in_list
    assert "reviewing the first" in output and "wrong labels" in output


def test_min_error_prob_cuts_the_review_list(finished_run, tmp_path):
    import shutil

    _, _, out, _ = finished_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    r = runner.invoke(app, ["rescore", str(copy), "--min-error-prob", "0.9", "--quiet"])
    assert r.exit_code == 0, r.output
    before = read(out / "review.csv")
    after = read(copy / "review.csv")
    label_rows = after[after["issue"].str.split(";").str[0].isin(["mislabel", "low_confidence"])]
    assert len(label_rows) and (label_rows["error_prob"].astype(float) >= 0.9).all()
    was = before[before["issue"].str.split(";").str[0].isin(["mislabel", "low_confidence"])]
    assert len(label_rows) < len(was)
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["min_error_prob"] == 0.9 and summary["list_length"]["rule"] == "min_error_prob"
    r = runner.invoke(app, ["rescore", str(copy), "--min-error-prob", "auto"])
    assert r.exit_code == 0, r.output
    summary = json.loads((copy / "summary.json").read_text())
    length = summary["list_length"]
    assert summary["min_error_prob"] is None and length["rule"] == "auto" and length["rows"] == len(was)
    assert f"list length      {length['rows']} label row(s): {length['rows_at_cut']} with error_prob >= 0.1" in r.output
    r = runner.invoke(app, ["rescore", str(copy), "--min-error-prob", "1.5", "--quiet"])
    assert r.exit_code != 0 and "min_error_prob" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["rescore", str(copy), "--min-error-prob", "half", "--quiet"])
    assert r.exit_code != 0 and "or auto, got 'half'" in r.output and "Traceback" not in r.output
