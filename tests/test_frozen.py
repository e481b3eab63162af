"""Frozen-backbone members: a pretrained backbone's TTA features, cached once, and a logistic head per round."""

import json

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import yaml
from typer.testing import CliRunner

from datacleaner.cli import app
from datacleaner.committee import Committee
from datacleaner.config import AugmentConfig, MemberConfig, load_config
from datacleaner.errors import DataCleanerError
from datacleaner.arrays import NpyFile, NpyWriter
from datacleaner.training import fit_linear_head, fit_linear_head_chunked, set_classifier

runner = CliRunner()
PRETRAIN_FROM = 1000  # the backbone trains on digit scans 1000+; 0-999 hold the test data


def test_linear_head_separates_and_folds_the_standardisation():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 16)) * 5
    labels = rng.integers(0, 3, 300)
    features = centres[labels] + rng.normal(0, 1, (300, 16)) + 100.0  # far from zero: standardisation matters
    W, b = fit_linear_head(features, labels, 3, l2=1e-3)
    assert W.shape == (3, 16) and b.shape == (3,)
    assert ((features @ W.T + b).argmax(1) == labels).mean() > 0.97
    W2, b2 = fit_linear_head(features, labels, 3, l2=1e-3)
    np.testing.assert_array_equal(W, W2)  # deterministic


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_chunked_head_equals_the_full_batch_head(smoothing):
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (5, 48)) * 2
    labels = rng.integers(0, 5, 2000)
    features = (np.abs(centres[labels] + rng.normal(0, 2, (2000, 48))) * 3 + 50).astype(np.float16)  # overlapping classes
    W, b = fit_linear_head(features, labels, 5, l2=0.03, label_smoothing=smoothing)

    def chunks():  # uneven pieces, as a file read in pieces gives them
        for s in range(0, 2000, 333):
            yield features[s : s + 333], labels[s : s + 333]

    Wc, bc = fit_linear_head_chunked(chunks, 5, l2=0.03, label_smoothing=smoothing)
    x = features.astype(np.float32)
    p, pc = (torch.softmax(torch.from_numpy(x @ w.T + c), 1).numpy() for w, c in [(W, b), (Wc, bc)])
    # the same strictly convex problem from the same start; the sums differ in float rounding, so L-BFGS
    # stops at a slightly different point: probabilities within 0.001, weights within 1% of their scale
    assert np.abs(p - pc).max() < 1e-3
    np.testing.assert_allclose(Wc, W, atol=0.01 * np.abs(W).max())
    assert 0.6 < (p.argmax(1) == labels).mean() < 0.99  # a real fit on classes that overlap, not a trivial one


def test_a_head_started_near_its_optimum_reaches_the_same_head_sooner():
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 1, (5, 64)) * 2
    labels = rng.integers(0, 5, 3000)
    features = (centres[labels] + rng.normal(0, 2, (3000, 64)) + 20).astype(np.float32)  # overlapping classes
    first = fit_linear_head(features, labels, 5, l2=0.03)  # what pass 1 fitted
    keep = rng.random(3000) > 0.08  # pass 2: the same images but a few
    cold, warm = {}, {}
    W, b = fit_linear_head(features[keep], labels[keep], 5, l2=0.03, stats=cold)
    Ww, bw = fit_linear_head(features[keep], labels[keep], 5, l2=0.03, stats=warm, init=first)
    x = features[~keep]
    p, pw = (torch.softmax(torch.from_numpy(x @ w.T + c), 1).numpy() for w, c in [(W, b), (Ww, bw)])
    assert np.abs(p - pw).max() < 5e-3  # one strictly convex problem: the same optimum, to the optimiser's tolerance
    assert warm["evaluations"] < 0.8 * cold["evaluations"]
    Wc, bc = fit_linear_head_chunked(lambda: [(features[keep], labels[keep])], 5, l2=0.03, init=first)
    np.testing.assert_allclose(Wc, Ww, atol=0.02 * np.abs(Ww).max())


def test_npy_writer_and_reader_round_trip(tmp_path):
    rows = np.random.default_rng(0).integers(0, 255, (10, 3, 2), dtype=np.uint8)
    with NpyWriter(tmp_path / "a.npy", rows.shape, np.uint8, block_rows=3) as out:
        for i in [0, 1, 4, 5, 6, 9]:  # rows 2, 3, 7, 8 never set: zero
            out[i] = rows[i]
    expected = rows.copy()
    expected[[2, 3, 7, 8]] = 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), expected)
    with NpyWriter(tmp_path / "c.npy", rows.shape, np.uint8, block_rows=3) as out:  # pieces, a gap, then single rows
        out.write(0, rows[:2])
        out.write(4, rows[4:7])
        out[9] = rows[9]
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), expected)
    f = NpyFile(tmp_path / "a.npy")
    assert f.shape == (10, 3, 2) and len(f) == 10
    np.testing.assert_array_equal(f[np.array([9, 0, 4])], expected[[9, 0, 4]])
    np.testing.assert_array_equal(np.asarray(f)[2:7], expected[2:7])
    with pytest.raises(ValueError, match="in order"), NpyWriter(tmp_path / "b.npy", (4, 1), np.uint8, block_rows=2) as out:
        out[3] = 1
        out[0] = 1


def test_set_classifier_makes_the_model_compute_the_head():
    model = timm.create_model("resnet10t", num_classes=4).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    W, b = np.random.default_rng(0).normal(size=(4, feats.shape[1])).astype(np.float32), np.ones(4, dtype=np.float32)
    set_classifier(model, W, b)
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), feats @ W.T + b, rtol=1e-4, atol=1e-4)
    with pytest.raises(DataCleanerError, match="frozen"):
        set_classifier(model, W[:, :5], b)


def test_frozen_member_needs_pretrained_weights(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"members": [{"arch": "resnet10t", "frozen": True}]}))
    with pytest.raises(DataCleanerError, match="frozen member needs pretrained weights"):
        load_config(path)


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory):
    """A resnet10t 'pretrained' on other digit scans (all ten classes, none of the test images)."""
    from sklearn.datasets import load_digits

    from datacleaner.models import member_preprocess
    from datacleaner.training import state_bytes, train_member

    digits = load_digits()
    other = np.arange(PRETRAIN_FROM, len(digits.target))  # noisy_digits: the first 60 scans of 4 classes, all below 610
    pixels = (digits.images[other] * (255 / 16)).astype(np.uint8)
    images = np.repeat(np.stack([np.kron(p, np.ones((4, 4), dtype=np.uint8)) for p in pixels])[..., None], 3, axis=3)
    member = MemberConfig(arch="resnet10t", img_size=32, epochs=3, batch_size=64, lr=0.003)
    model = timm.create_model("resnet10t", num_classes=10)
    aug = AugmentConfig(hflip=0.0, scale=[0.8, 1.0])
    train_member(model, images, digits.target[other], np.arange(len(other)), member, aug, member_preprocess(member),
                 device=torch.device("cpu"), seed=0)
    path = tmp_path_factory.mktemp("weights") / "resnet10t-digits.safetensors"
    path.write_bytes(state_bytes(model))
    return path


def frozen_config(tmp_path, backbone_file, **extra):
    cfg = {
        "scheme": "cv", "folds": 3, "device": "cpu", "tau": 0.3,
        "tta": {"mode": "deterministic", "views": 2}, "augment": {"hflip": 0.0},
        "members": [{"arch": "resnet10t", "img_size": 32, "frozen": True, "pretrained_file": str(backbone_file), "head_l2": 0.01}],
        **extra,
    }
    path = tmp_path / "frozen.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_clean_with_a_frozen_member_finds_flips_and_caches_features(noisy_digits, backbone_file, tmp_path):
    root, truth = noisy_digits
    out = tmp_path / "run"
    config = frozen_config(tmp_path, backbone_file)
    result = runner.invoke(app, ["clean", str(root), "--config", str(config), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    features = list((out / "features").glob("*.npy"))
    assert len(features) == 1
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert np.load(features[0]).shape[:2] == (len(scores), 2)  # (N, V, D): every image, both views
    scores = scores.merge(truth, on="path")
    flipped = scores["flipped"].to_numpy(bool)
    top = scores.sort_values("label_quality").head(int(flipped.sum()))
    assert top["flipped"].mean() >= 0.7  # most of the lowest label_quality are the flips
    review = pd.read_csv(out / "review.csv", keep_default_na=False).merge(truth, on="path")
    review = review[review["issue"].str.startswith("mislabel")]  # the label flags (the list also holds look-alike scans)
    assert review["flipped"].mean() >= 0.6 and len(review) >= flipped.sum() * 0.6
    # a new fold count trains new heads on the same cached features: none recomputed
    mtime = features[0].stat().st_mtime_ns
    result = runner.invoke(app, ["clean", str(root), "--config", str(config), "--out", str(out), "--quiet", "--scheme", "dling"])
    assert result.exit_code == 0, result.output
    assert [p.stat().st_mtime_ns for p in (out / "features").glob("*.npy")] == [mtime]


def test_a_tiny_memory_budget_gives_the_same_run(noisy_digits, backbone_file, tmp_path):
    """memory_gb far below the data: the decoded cache is read from disk, every head is fitted from the
    feature file in pieces and the probabilities are averaged on disk; the run says so and scores as one
    in memory does."""
    root, _ = noisy_digits
    config = frozen_config(tmp_path, backbone_file, passes=2)
    outputs = {}
    for name, extra in [("memory", []), ("disk", ["--memory-gb", "0.000001"])]:
        result = runner.invoke(app, ["clean", str(root), "--config", str(config), "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
        assert ("fitting heads from disk in pieces" in result.output) == (name == "disk")
        assert ("averaging them on disk" in result.output) == (name == "disk")
        assert ("decoded images read from disk in pieces, heads 6 fitted from disk in pieces)" in result.output) == (name == "disk")
        outputs[name] = pd.read_csv(tmp_path / name / "scores.csv", keep_default_na=False)
    plans = {name: json.loads((tmp_path / name / "summary.json").read_text())["memory"] for name in outputs}
    assert plans["memory"]["decoded_images"] == "in memory" and plans["memory"]["heads"] == "in memory"
    assert plans["disk"] == {"budget_gb": 0.0, "decoded_images": "read from disk in pieces", "images_per_job": 64,
                             "heads": "6 fitted from disk in pieces", "class_probabilities": "on disk",
                             "per_image_tables_gb": 0.0}
    mem, disk = outputs["memory"], outputs["disk"]
    assert list(mem["path"]) == list(disk["path"])
    # the heads stop L-BFGS at points a float rounding apart (0.0017 at most in probability on 100,000 real
    # CIFAR images, bench/scale.py --heads), so a label near a flag rule's edge may fall either side
    assert (mem["suggested_label"] == disk["suggested_label"]).mean() >= 0.99
    np.testing.assert_allclose(disk["label_quality"], mem["label_quality"], atol=5e-3)
    review = [set(pd.read_csv(tmp_path / name / "review.csv", keep_default_na=False)["path"]) for name in outputs]
    assert len(review[0]) > 0 and len(review[0] ^ review[1]) <= 1


def test_committee_bundle_with_a_frozen_member_round_trips(noisy_digits, backbone_file, tmp_path):
    root, truth = noisy_digits
    cfg = load_config(frozen_config(tmp_path, backbone_file))
    bundle = tmp_path / "committee"
    result = runner.invoke(app, ["train", str(root), "--config", str(tmp_path / "frozen.yaml"), "--out", str(bundle), "--quiet"])
    assert result.exit_code == 0, result.output
    committee = Committee.load(bundle, device="cpu")
    held_out = tmp_path / "held_out"  # scans of the same digits that neither the head nor the backbone saw
    from datacleaner.demo import write_noisy_digits

    unseen = write_noisy_digits(held_out, noise=0.0, classes=[0, 1, 3, 7], per_class=100)  # the first 100 per class
    seen = set(truth["path"].str.split("/").str[1])  # noisy_digits' scans, by file name (labels may differ)
    unseen = unseen[~unseen["path"].str.split("/").str[1].isin(seen)]
    unseen = unseen[unseen["path"].str.extract(r"digit_(\d+)")[0].astype(int) < PRETRAIN_FROM]  # nor the backbone's
    assert len(unseen) >= 150
    probs, problems = committee.predict_paths([held_out / p for p in unseen["path"]])
    assert not problems and probs.shape == (len(unseen), 4)
    predicted = np.array(committee.classes_)[probs.argmax(1)]
    assert (predicted == unseen["true_label"].to_numpy()).mean() > 0.9  # the head learned the classes
    assert cfg.members[0].frozen
    # a memory budget far below the features: they go to a temporary file and the head is fitted in pieces
    small = tmp_path / "committee-small"
    result = runner.invoke(app, ["train", str(root), "--config", str(tmp_path / "frozen.yaml"), "--out", str(small),
                                 "--memory-gb", "0.000001"])
    assert result.exit_code == 0, result.output
    assert "fitting its head from disk in pieces" in result.output
    probs_small, _ = Committee.load(small, device="cpu").predict_paths([held_out / p for p in unseen["path"]])
    # the same head up to float rounding: the loss summed over hundreds of one-image pieces in float32
    # moves where L-BFGS stops, so probabilities agree to 0.01 and every predicted class is the same
    assert np.abs(probs_small - probs).max() < 1e-2 and (probs_small.argmax(1) == probs.argmax(1)).all()


def test_second_pass_retrains_without_pass_one_flags_and_rescores(noisy_digits, backbone_file, tmp_path):
    import json

    root, truth = noisy_digits
    out = tmp_path / "run2"
    config = frozen_config(tmp_path, backbone_file)
    args = ["clean", str(root), "--config", str(config), "--out", str(out), "--quiet", "--passes", "2", "--flag-rule", "noise_rate"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    second = json.loads((out / "second_pass.json").read_text())
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    excluded = set(manifest["path"].iloc[second["excluded"]])
    assert len(excluded) >= 10 and truth.set_index("path").loc[sorted(excluded & set(truth["path"])), "flipped"].mean() > 0.6
    assert len(list((out / "logits").glob("r*p2-*.npy"))) == 3  # one per round of pass 2
    assert len(list((out / "heads").glob("r*p2-*.npz"))) == 3  # and its heads, started from pass 1's
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passes"] == 2 and summary["flag_rule"] == "noise_rate"
    assert 0.03 < summary["estimated_noise_rate"] < 0.25  # 10% of the labels are flipped
    review = pd.read_csv(out / "review.csv", keep_default_na=False).merge(truth, on="path")
    review = review[review["issue"].str.startswith("mislabel")]
    assert review["flipped"].mean() >= 0.6
    # re-running trains nothing; rescore uses pass 2 and can switch the rule
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and json.loads((out / "summary.json").read_text())["members_trained"] == 0
    result = runner.invoke(app, ["rescore", str(out), "--flag-rule", "fixed", "--tau", "0.3", "-q"])
    assert result.exit_code == 0, result.output
    assert "fixed, tau=0.3" in result.output and "2 passes" in result.output
