"""Committee bundles, production loaders and `datacleaner select` end to end on real digit scans."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from conftest import write_digit_pool
from typer.testing import CliRunner

from datacleaner.cli import app
from datacleaner.committee import Committee
from datacleaner.disagreement import disagreement, skip_mask

runner = CliRunner()
CLASSES = ["0", "1", "3", "7"]


@pytest.fixture(scope="module")
def committee_dir(tiny_config, tmp_path_factory):
    from datacleaner.demo import write_noisy_digits

    data = tmp_path_factory.mktemp("train") / "data"
    write_noisy_digits(data, noise=0.0, seed=0, per_class=50, classes=[0, 1, 3, 7])
    out = tmp_path_factory.mktemp("committee") / "c"
    r = runner.invoke(app, ["train", str(data), "-c", str(tiny_config), "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Unseen digit scans (indices past the training ones) in nested folders, plus one broken file."""
    return write_digit_pool(tmp_path_factory.mktemp("pool") / "pool", count=60, cameras=3)


def test_bundle_loads_without_code_and_predicts(committee_dir, pool):
    meta = json.loads((committee_dir / "committee.json").read_text())
    assert meta["classes"] == CLASSES and len(meta["members"]) == 2
    assert all((committee_dir / m["file"]).is_file() for m in meta["members"])
    committee = Committee.load(committee_dir, device="cpu")
    root, truth = pool
    files = [root / p for p in truth]
    probs, problems = committee.predict_paths(files)
    assert probs.shape == (60, 4) and not problems
    accuracy = np.mean([CLASSES[k] == t for k, t in zip(probs.argmax(1), truth.values())])
    assert accuracy >= 0.85


def production_csv(path, truth, wrong_every=4, probs=False):
    """A production model that is right except on every `wrong_every`-th image, where it says '7' (or '0')."""
    rows = []
    for n, (p, t) in enumerate(sorted(truth.items())):
        label = t if n % wrong_every else ("7" if t != "7" else "0")
        row = {"path": p, "label": label, "score": 0.95}
        if probs:
            row.update({c: (0.85 if c == label else 0.05) for c in CLASSES})
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return {r["path"] for r in rows if r["label"] != truth[r["path"]]}


def test_select_end_to_end_puts_production_errors_first(committee_dir, pool, tmp_path):
    root, truth = pool
    wrong = production_csv(tmp_path / "prod.csv", truth)
    r = runner.invoke(app, ["select", str(root), "--committee", str(committee_dir), "--production", str(tmp_path / "prod.csv"),
                            "--budget", "10", "--out", str(tmp_path / "sel"), "-q"])
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "unreadable" in r.output
    sel = pd.read_csv(tmp_path / "sel" / "selection.csv", dtype=str, keep_default_na=False)
    for col in ("path", "production_label", "production_score", "suggested_label", "suggested_prob", "disagreement",
                "vote_resnet10t", "vote_regnetx_002", "reason", "rank", "in_budget", "checksum", "reviewed_label"):
        assert col in sel.columns, col
    ranked = sel[sel["reason"] != "unreadable"]
    top = set(ranked.head(len(wrong))["path"])
    assert len(top & wrong) >= 0.8 * len(wrong)  # production's mistakes come first
    assert (ranked["in_budget"] == "True").sum() == 10
    caught = ranked[ranked["path"].isin(wrong)]
    assert (caught["suggested_label"] == caught["path"].map(truth)).mean() >= 0.8  # pre-filled with the right label
    assert sel[sel["reason"] == "unreadable"]["path"].tolist() == ["cam0/broken.png"]
    summary = json.loads((tmp_path / "sel" / "summary.json").read_text())
    assert summary["skipped"] >= 25 and summary["skipped"] + summary["candidates"] + 1 == 61


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # making the TorchScript file users already have
def test_production_as_timm_weights_torchscript_or_an_exported_program(committee_dir, pool, tmp_path):
    root, _ = pool
    member = committee_dir / "members" / "resnet10t.safetensors"
    common = ["--committee", str(committee_dir), "--production-size", "32", "-q"]
    r = runner.invoke(app, ["select", str(root), "--production", str(member), "--production-arch", "resnet10t",
                            "--out", str(tmp_path / "timm"), "--method", "js", *common])
    assert r.exit_code == 0, r.output
    timm_sel = pd.read_csv(tmp_path / "timm" / "selection.csv", dtype=str, keep_default_na=False)
    committee = Committee.load(committee_dir, device="cpu")
    scripted = torch.jit.script(committee.members_[0].eval())
    scripted.save(str(tmp_path / "prod.pt"))
    with warnings.catch_warnings():  # torch deprecates torch.jit.load; a TorchScript file still loads, quietly
        warnings.filterwarnings("error", message=".*torch.jit.load")
        r = runner.invoke(app, ["select", str(root), "--production", str(tmp_path / "prod.pt"), "--out", str(tmp_path / "ts"), *common])
    assert r.exit_code == 0, r.output
    # a torch.export program exported for batches of 8 (60 pool images: the last piece padded), its input size its own
    program = torch.export.export(committee.members_[0].eval(), (torch.zeros(8, 3, 32, 32),))
    torch.export.save(program, str(tmp_path / "prod.pt2"))
    r = runner.invoke(app, ["select", str(root), "--production", str(tmp_path / "prod.pt2"), "--out", str(tmp_path / "pt2"),
                            "--committee", str(committee_dir), "-q"])
    assert r.exit_code == 0, r.output
    c = pd.read_csv(tmp_path / "pt2" / "pool_scores.csv", keep_default_na=False)
    ts_summary = json.loads((tmp_path / "ts" / "summary.json").read_text())
    timm_summary = json.loads((tmp_path / "timm" / "summary.json").read_text())
    assert ts_summary["skipped"] == timm_summary["skipped"]  # same weights, same predictions
    a = pd.read_csv(tmp_path / "timm" / "pool_scores.csv", keep_default_na=False)
    b = pd.read_csv(tmp_path / "ts" / "pool_scores.csv", keep_default_na=False)
    assert len(a) == len(b) == 60 and a["path"].tolist() == b["path"].tolist()
    assert a["production_label"].tolist() == b["production_label"].tolist() == c["production_label"].tolist()  # row by row
    np.testing.assert_allclose(a["production_score"], b["production_score"], atol=1e-4)
    np.testing.assert_allclose(a["production_score"], c["production_score"], atol=1e-4)
    # the production model is member 0 of the committee: mostly right on these digits, so it is not always skipped
    assert (a["production_label"].astype(str) == a["path"].map(pool[1])).mean() >= 0.85
    ranked = timm_sel[timm_sel["reason"].isin(["disagree", "low_confidence"])]
    assert len(ranked) == timm_summary["candidates"] and ranked["rank"].tolist() == [str(k) for k in range(1, len(ranked) + 1)]
    js = ranked["disagreement"].astype(float).to_numpy()  # --method js: ranked by Jensen-Shannon divergence
    assert (np.diff(js) <= 1e-9).all() and ((js >= 0) & (js <= 1)).all()


def test_class_mismatch_lists_both(committee_dir, pool, tmp_path):
    root, truth = pool
    pd.DataFrame({"path": list(truth), "label": "cat", "score": 0.9}).to_csv(tmp_path / "bad.csv", index=False)
    r = runner.invoke(app, ["select", str(root), "--committee", str(committee_dir), "--production", str(tmp_path / "bad.csv"),
                            "--out", str(tmp_path / "x")])
    assert r.exit_code == 1
    assert "production: cat" in r.output and "committee: 0, 1, 3, 7" in r.output


def test_ranking_and_skip_rule_on_hand_made_arrays():
    committee = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    production_label = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(disagreement(committee, production_label), [0.1, 0.4, 0.8, 0.5])
    np.testing.assert_allclose(disagreement(committee, production_label, method="margin"), [0.2, 0.8, 0.4, 1.0])
    same = np.array([[0.9, 0.1]] * 4)
    np.testing.assert_allclose(disagreement(committee[:1].repeat(4, 0), production_label, method="js", production_probs=same)[:3], 0, atol=1e-12)
    assert disagreement(np.array([[1.0, 0.0]]), np.array([0]), method="js", production_probs=np.array([[0.0, 1.0]]))[0] == pytest.approx(1.0)
    members = np.array([[[0.9, 0.1], [0.8, 0.2]], [[0.9, 0.1], [0.1, 0.9]]])  # (2 images, 2 members, 2 classes)
    np.testing.assert_allclose(disagreement(members.mean(1), np.array([0, 0]), method="vote_entropy", member_probs=members), [0.0, 1.0])
    mi = disagreement(members.mean(1), np.array([0, 0]), method="mutual_info", member_probs=members)
    assert mi[0] < 0.01 < mi[1]
    skip = skip_mask(committee, production_label, np.array([0.9, 0.9, 0.9, 0.9]), min_committee_prob=0.8, min_production_score=0.8)
    assert skip.tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="contradiction"):
        disagreement(committee, production_label, method="entropy")


def test_k_center_greedy_spreads_picks():
    from datacleaner.disagreement import k_center_greedy

    cluster = np.array([[0.0, 0.0], [0.01, 0.0], [0.0, 0.01], [0.02, 0.01]])
    far = np.array([[5.0, 0.0], [0.0, 5.0]])
    picks = k_center_greedy(np.concatenate([cluster, far]), 3)
    assert picks.tolist()[0] == 0 and set(picks.tolist()[1:]) == {4, 5}
    assert k_center_greedy(np.zeros((0, 2)), 3).size == 0


def test_diverse_keeps_a_burst_from_filling_the_budget(committee_dir, pool, tmp_path):
    root, truth = pool
    burst = tmp_path / "burst"
    import shutil

    shutil.copytree(root, burst)
    production_csv(tmp_path / "p0.csv", truth)
    first = runner.invoke(app, ["select", str(root), "--committee", str(committee_dir), "--production", str(tmp_path / "p0.csv"),
                                "--out", str(tmp_path / "first"), "-q"])
    assert first.exit_code == 0, first.output
    top = pd.read_csv(tmp_path / "first" / "selection.csv", dtype=str)["path"].iloc[0]  # production's clearest mistake
    wrong = [top]
    frame = np.asarray(Image.open(burst / wrong[0]))
    rng = np.random.default_rng(0)
    for k in range(8):  # a burst of frames of one image production gets wrong, each turned a little: alike, not copies
        turned = Image.fromarray(frame).rotate(6 * (k // 2 + 1) * (-1) ** k, resample=Image.BILINEAR, fillcolor=int(frame[0, 0].mean()))
        noisy = np.clip(np.asarray(turned).astype(int) + rng.integers(-3, 4, frame.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(burst / "cam0" / f"burst {k}.png")
    shutil.copy(burst / wrong[0], burst / "cam1" / "exact copy.png")
    burst_truth = {**truth, **{f"cam0/burst {k}.png": truth[wrong[0]] for k in range(8)}, "cam1/exact copy.png": truth[wrong[0]]}
    production_csv(tmp_path / "prod.csv", burst_truth)
    prod = pd.read_csv(tmp_path / "prod.csv", dtype=str)
    burst_rows = prod["path"].str.startswith("cam0/burst") | prod["path"].isin(["cam1/exact copy.png", wrong[0]])
    p0 = pd.read_csv(tmp_path / "p0.csv", dtype=str)
    prod.loc[burst_rows, "label"] = p0.loc[p0["path"] == wrong[0], "label"].iloc[0]  # production wrong on the whole burst
    prod.to_csv(tmp_path / "prod.csv", index=False)
    counts = {}
    for flag in ([], ["--diverse"]):
        out = tmp_path / ("div" if flag else "plain")
        r = runner.invoke(app, ["select", str(burst), "--committee", str(committee_dir), "--production", str(tmp_path / "prod.csv"),
                                "--budget", "8", "--out", str(out), "-q", *flag])
        assert r.exit_code == 0, r.output
        sel = pd.read_csv(out / "selection.csv", dtype=str, keep_default_na=False)
        in_budget = sel[sel["in_budget"] == "True"]["path"]
        counts[bool(flag)] = int(in_budget.str.contains("burst").sum() + in_budget.isin([wrong[0]]).sum())
        dup = sel[sel["reason"] == "duplicate"]  # the exact copy, and frames turned too little to tell apart
        assert dup["detail"].str.startswith("same file as").sum() == 1
        assert dup["path"].str.contains("burst").sum() <= 4  # at most half the burst: the frames are alike, not copies
        assert dup["detail"].str.match(r"(same file as|near duplicate of) ").all()
    assert counts[True] <= 3 < counts[False]


def test_select_in_small_shards_equals_one_shard_and_resumes(committee_dir, pool, tmp_path):
    """The pool judged 7 images per job gives the same list as one job; a re-run reuses the saved shards."""
    root, truth = pool
    production_csv(tmp_path / "prod.csv", truth)
    base = ["select", str(root), "--committee", str(committee_dir), "--production", str(tmp_path / "prod.csv"),
            "--budget", "10", "-q"]
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "one")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "many"), "--shard-images", "7"])
    assert r.exit_code == 0, r.output
    shards = sorted((tmp_path / "many" / "pool").glob("shard-*.npz"))
    assert len(shards) == 9  # 60 readable images / 7 per shard
    a = pd.read_csv(tmp_path / "one" / "selection.csv", keep_default_na=False)
    b = pd.read_csv(tmp_path / "many" / "selection.csv", keep_default_na=False)
    assert a["path"].tolist() == b["path"].tolist()
    np.testing.assert_allclose(a["suggested_prob"].replace("", np.nan).astype(float),
                               b["suggested_prob"].replace("", np.nan).astype(float), atol=1e-5)
    stamps = {p.name: p.stat().st_mtime_ns for p in shards}
    shards[0].unlink()  # as if interrupted before the first shard was saved
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "many"), "--shard-images", "7"])
    assert r.exit_code == 0, r.output
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "many" / "pool").glob("shard-*.npz")}
    assert after.keys() == stamps.keys()
    assert [n for n in stamps if after[n] != stamps[n]] == [shards[0].name]  # only the missing shard was judged again
    c = pd.read_csv(tmp_path / "many" / "selection.csv", keep_default_na=False)
    assert c["path"].tolist() == b["path"].tolist() and c["suggested_label"].tolist() == b["suggested_label"].tolist()


def test_select_with_a_tiny_memory_budget_equals_one_without(committee_dir, pool, tmp_path, monkeypatch):
    """--memory-gb far below the pool: the decoded pool is read from disk, the probabilities are kept in files,
    the table is scored and written in small pieces; both lists come out byte for byte the same."""
    import datacleaner.selection
    import datacleaner.tables

    root, truth = pool
    production_csv(tmp_path / "prod.csv", truth, probs=True)
    base = ["select", str(root), "--committee", str(committee_dir), "--production", str(tmp_path / "prod.csv"),
            "--budget", "10", "--method", "js"]
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "ram"), "-q"])
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(datacleaner.tables, "CSV_CHUNK", 7)
    monkeypatch.setattr(datacleaner.selection, "PIECE", 16)
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "disk"), "--memory-gb", "0.000001"])
    assert r.exit_code == 0, r.output
    assert "keeping them on disk" in r.output
    for name in ("selection.csv", "pool_scores.csv"):
        assert (tmp_path / "disk" / name).read_bytes() == (tmp_path / "ram" / name).read_bytes(), name
    assert not list((tmp_path / "disk" / "pool").glob("fused-*")) and not list((tmp_path / "disk" / "pool").glob("members-*"))
    sel = pd.read_csv(tmp_path / "disk" / "selection.csv", keep_default_na=False)
    scored = pd.read_csv(tmp_path / "disk" / "pool_scores.csv", keep_default_na=False)
    assert (sel["in_budget"].astype(str) == "True").sum() == 10 and sel["reason"].iloc[-1] == "unreadable"
    assert len(scored) == 60 and len(sel) == (scored["reason"] != "skip").sum() + 1  # written across several pieces


def test_ray_address_without_ray_executor_is_a_clear_error(committee_dir, pool, tmp_path):
    root, truth = pool
    production_csv(tmp_path / "prod.csv", truth)
    r = runner.invoke(app, ["select", str(root), "--committee", str(committee_dir), "--production", str(tmp_path / "prod.csv"),
                            "--out", str(tmp_path / "x"), "--ray-address", "127.0.0.1:6379", "-q"])
    assert r.exit_code == 1 and "--ray-address needs --executor ray" in r.output
