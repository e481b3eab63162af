import numpy as np
import pytest

from datacleaner.fuse import fuse, softmax
from datacleaner.scoring import round_flags, score


def test_fuse_logits_weights_members_and_averages_views():
    # one image, 2 members, 2 views, 2 classes
    out = np.array([[[[2.0, 0.0], [0.0, 0.0]], [[0.0, 4.0], [0.0, 4.0]]]])  # (1, 2, 2, 2)
    # member means: m0 = [1, 0], m1 = [0, 4]; weights 3:1 -> [0.75, 1.0]
    fused = fuse(out, np.array([3.0, 1.0]), mode="logits")
    np.testing.assert_allclose(fused[0], softmax(np.array([0.75, 1.0])), rtol=1e-6)


def test_fuse_probs_averages_softmaxed_outputs():
    out = np.array([[[[0.0, 0.0]], [[np.log(3.0), 0.0]]]])  # (1, 2, 1, 2): probs [.5,.5] and [.75,.25]
    fused = fuse(out, np.array([1.0, 1.0]), mode="probs")
    np.testing.assert_allclose(fused[0], [0.625, 0.375], rtol=1e-6)


def test_fuse_rejects_bad_input():
    with pytest.raises(ValueError, match="fusion mode"):
        fuse(np.zeros((1, 1, 1, 2)), np.ones(1), mode="max")
    with pytest.raises(ValueError, match="weights"):
        fuse(np.zeros((1, 2, 1, 2)), np.zeros(2))


def test_round_flags_mismatch_or_low_probability():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.55, 0.45], [0.2, 0.8]])
    labels = np.array([0, 0, 0, 1])
    # image 1: prediction differs; image 2: right but 0.55 < tau 0.6
    assert round_flags(probs, labels, tau=0.6).tolist() == [False, True, True, False]
    assert round_flags(probs, labels, tau=0.5).tolist() == [False, True, False, False]


def test_score_counts_flags_over_rounds_and_applies_T():
    labels = np.array([0, 1, 0])
    fused = np.array(
        [
            [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]],  # round 0: flags 1 and 2
            [[0.8, 0.2], [0.6, 0.4], [0.6, 0.4]],  # round 1: flags 1 (image 2 passes at tau .5)
            [[0.7, 0.3], [0.5, 0.5], [0.0, 0.0]],  # round 2: does not judge image 2; image 1 flagged
        ]
    )
    judged = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0]], bool)
    s = score(fused, judged, labels, tau=0.5, min_flags=2)
    assert s.flag_count.tolist() == [0, 3, 1]
    assert s.rounds.tolist() == [3, 3, 2]
    assert s.in_review.tolist() == [False, True, False]
    np.testing.assert_allclose(s.given_label_prob, [0.8, (0.2 + 0.4 + 0.5) / 3, 0.45])
    assert s.suggested_label.tolist() == [0, 0, 1]
    assert s.issue.tolist() == ["", "mislabel", ""]
    s1 = score(fused, judged, labels, tau=0.5, min_flags=1)
    assert s1.issue.tolist() == ["", "mislabel", "mislabel"]
    assert s1.disagreement_rate() == pytest.approx(2 / 3)


def test_low_confidence_issue_when_label_agrees_but_probability_is_low():
    s = score(np.array([[[0.45, 0.35, 0.2]]]), np.ones((1, 1), bool), np.array([0]), tau=0.5, min_flags=1)
    assert s.issue.tolist() == ["low_confidence"]
    assert s.label_quality[0] == pytest.approx(0.45)


def test_class_adaptive_flags_use_per_class_mean_confidence():
    from datacleaner.scoring import class_thresholds

    # class 0 images are confidently 0 (t0 = 0.8); class 1 is a hard class (t1 = 0.4)
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.55, 0.45], [0.6, 0.4], [0.6, 0.4], [0.2, 0.8]])
    labels = np.array([0, 0, 1, 1, 1, 1])
    t = class_thresholds(probs, labels)
    np.testing.assert_allclose(t, [0.8, (0.45 + 0.4 + 0.4 + 0.8) / 4])
    flags = round_flags(probs, labels, tau=0.1, rule="class_adaptive")
    # the ambiguous images labeled 1 (p0 = 0.55-0.6) are not flagged: p0 never reaches t0 = 0.8
    assert flags.tolist() == [False, False, False, False, False, False]
    labels2 = np.array([0, 0, 1, 1, 1, 0])  # the last image: labeled 0, p1 = 0.8 >= t1
    assert round_flags(probs, labels2, tau=0.1, rule="class_adaptive")[-1]
    with pytest.raises(ValueError, match="rule"):
        round_flags(probs, labels, tau=0.1, rule="loose")


def test_label_quality_scores_point_down_for_likely_errors():
    from datacleaner.scoring import label_quality_scores

    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.4, 0.4, 0.2]])
    labels = np.array([0, 0, 2])
    np.testing.assert_allclose(label_quality_scores(probs, labels), [0.7, 0.2, 0.2])
    np.testing.assert_allclose(label_quality_scores(probs, labels, method="normalized_margin"), [0.75, 0.25, 0.4])
    with pytest.raises(ValueError, match="self_confidence"):
        label_quality_scores(probs, labels, method="best")


def test_fit_temperature_recovers_overconfidence():
    from datacleaner.calibrate import fit_temperature

    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, size=(4000, 5))
    p = softmax(true_logits)
    labels = np.array([rng.choice(5, p=row) for row in p])
    overconfident = np.repeat((3.0 * true_logits)[:, None, :], 2, axis=1)  # (N, V=2, C)
    assert 2.5 < fit_temperature(overconfident, labels) < 3.6


def test_fit_weights_prefers_the_informative_member_and_fuse_rounds_applies_it():
    from datacleaner.calibrate import fit_weights, fuse_rounds

    rng = np.random.default_rng(1)
    N, C = 600, 4
    labels = rng.integers(0, C, N)
    good = np.eye(C)[labels] * 4 + rng.normal(0, 1, (N, C))
    noise = rng.normal(0, 3, (N, C))
    outputs = np.stack([good, noise], axis=1)[:, :, None, :]  # (N, M=2, V=1, C)
    w = fit_weights(outputs, labels)
    assert w[0] > 0.8 and abs(w.sum() - 1) < 1e-9
    idx = np.arange(N)
    fused, judged, fitted = fuse_rounds([(idx[:300], outputs[:300]), (idx[300:], outputs[300:])], labels, N, np.ones(2), fit=True, calibrate=True)
    assert fused.shape == (2, N, C) and judged.sum() == N
    assert len(fitted["weights"]) == 2 and len(fitted["temperatures"]) == 2
    acc_fitted = (fused.sum(0).argmax(1) == labels).mean()
    fused_eq, _, _ = fuse_rounds([(idx, outputs)], labels, N, np.ones(2))
    assert acc_fitted > (fused_eq[0].argmax(1) == labels).mean()


def test_noise_rate_rule_flags_as_many_as_the_confident_joint_estimates():
    from datacleaner.scoring import estimated_error_count

    rng = np.random.default_rng(0)
    N, C = 2000, 4
    truth = rng.integers(0, C, N)
    probs = np.full((N, C), 0.1 / (C - 1))
    probs[np.arange(N), truth] = 0.9  # a committee that knows the true class
    probs = 0.8 * probs + 0.2 * rng.dirichlet(np.ones(C), N)
    labels = truth.copy()
    wrong = rng.choice(N, 300, replace=False)
    labels[wrong] = (truth[wrong] + 1) % C  # 15% of the labels are wrong
    assert estimated_error_count(probs, labels) == pytest.approx(300, abs=30)
    flags = round_flags(probs, labels, tau=0.1, rule="noise_rate")
    assert abs(int(flags.sum()) - 300) <= 30
    assert flags[wrong].mean() > 0.95


def test_views_reduced_chunk_by_chunk_from_memory_mapped_files_equal_the_dense_fusion(tmp_path, monkeypatch):
    """fuse_rounds on per-member .npy files opened memory-mapped, 7 images at a time, gives what the
    whole (n, M, V, C) array gives, with calibration and fitted weights too."""
    import datacleaner.fuse as fuse_module
    from datacleaner.calibrate import fuse_rounds

    rng = np.random.default_rng(3)
    N, M, V, C = 50, 2, 3, 4
    labels = rng.integers(0, C, N)
    outputs = rng.normal(0, 2, (N, M, V, C)).astype(np.float32)
    idx = np.arange(N)
    for mode in ("logits", "probs"):
        dense = fuse_rounds([(idx, outputs)], labels, N, np.array([1.0, 2.0]), mode=mode, calibrate=True, fit=True)
        files = []
        for m in range(M):
            np.save(tmp_path / f"m{m}.npy", outputs[:, m])
            files.append(np.load(tmp_path / f"m{m}.npy", mmap_mode="r"))
        monkeypatch.setattr(fuse_module, "CHUNK", 7)
        chunked = fuse_rounds([(idx, files)], labels, N, np.array([1.0, 2.0]), mode=mode, calibrate=True, fit=True)
        monkeypatch.undo()
        np.testing.assert_allclose(chunked[0], dense[0], atol=1e-6)
        assert chunked[2] == dense[2]


def _committee(seed: int = 0, N: int = 20_000, C: int = 10):
    """A committee whose probabilities are the images' true posterior, and true classes drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.5, (N, C))
    posterior = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = (posterior.cumsum(axis=1) > rng.random((N, 1))).argmax(axis=1)
    return rng, posterior, truth


def _assert_calibrated(ep, wrong, tol):
    for lo, hi in [(0, 0.1), (0.1, 0.5), (0.5, 0.9), (0.9, 1.01)]:
        m = (ep >= lo) & (ep < hi)
        if m.sum() >= 200:
            assert abs(wrong[m].mean() - ep[m].mean()) <= tol, (lo, hi, wrong[m].mean(), ep[m].mean())


@pytest.mark.parametrize("noise", [0.05, 0.2])
def test_error_model_recovers_the_noise_rate_and_is_calibrated(noise):
    """A calibrated committee on labels with `noise` of them replaced by any other class: trusting
    the committee as it is (link (1, 1), no sharpening), error_model finds the noise rate within
    0.02 and error_prob is calibrated within 0.05 per bin; the default link, which assumes the
    committee learnt part of the noise, reports more noise than it sees, but no more than confident
    learning counts."""
    from datacleaner.scoring import error_model

    rng, posterior, truth = _committee()
    labels = truth.copy()
    flip = rng.random(len(truth)) < noise
    labels[flip] = (truth[flip] + rng.integers(1, 10, flip.sum())) % 10
    ep, model = error_model(posterior, labels, link=(1.0, 1.0), sharpen=1.0)
    assert abs(model["noise_rate"] - noise) <= 0.02
    wrong = labels != truth
    _assert_calibrated(ep, wrong, 0.05)
    assert abs(ep.sum() - wrong.sum()) <= 0.1 * wrong.sum()
    ep_default, default = error_model(posterior, labels)
    # the default link scales up what the committee sees, but never past confident learning's count
    assert default["seen_noise_rate"] == model["seen_noise_rate"] and default["significant"]
    assert default["noise_rate"] <= max(default["confident_joint_rate"], default["seen_noise_rate"]) + 1e-9


def test_error_model_learns_where_wrong_labels_go():
    """Wrong labels always given as the paired class (0<->1, 2<->3, ...), as annotators confuse cats
    and dogs: noise_structure puts over 85% of each class's noise on its pair (the even prior holds 5 of
    ~300 wrong labels per class), and error_prob is
    calibrated within 0.05 per bin (committee trusted as it is)."""
    from datacleaner.scoring import error_model, noise_structure

    rng, posterior, truth = _committee(seed=1)
    labels = truth.copy()
    flip = rng.random(len(truth)) < 0.15
    labels[flip] = truth[flip] ^ 1
    structure = noise_structure(posterior, labels, 0.1)
    assert (structure[np.arange(10), np.arange(10) ^ 1] > 0.85).all()
    ep, model = error_model(posterior, labels, link=(1.0, 1.0), sharpen=1.0)
    assert abs(model["noise_rate"] - 0.15) <= 0.03
    _assert_calibrated(ep, labels != truth, 0.05)


def test_error_model_sees_no_noise_in_labels_the_committee_explains():
    """Labels drawn from a calibrated committee's own probabilities (its confusions, no noise): no
    significant noise, a noise rate near 0 and error_prob near 0 on average, however uncertain the
    committee; yet a label it contradicts with confidence is not called certainly right."""
    from datacleaner.scoring import error_model

    _, posterior, truth = _committee(seed=2)
    ep, model = error_model(posterior, truth)
    assert not model["significant"] and model["noise_rate"] <= 0.01, model
    assert ep.mean() <= 0.01 and ep.sum() <= 0.01 * len(ep)
    contradicted = posterior[np.arange(len(truth)), truth] < 0.02
    assert not contradicted.any() or ep[contradicted].min() > 0.0


def test_noise_structure_of_a_few_wrong_labels_stays_spread():
    """Nearly clean labels (0.3% wrong, any other class) and a committee that confidently mistakes 8
    images of class 1 for a 2 (its own blind spot, not the labels'): the prior keeps class 2's wrong
    labels spread (no pair takes over half of them, where the EM alone pinned them on 2 -> 1), and a
    real wrong label of another pair is not called near-impossible next to the committee's mistakes."""
    from datacleaner.scoring import error_model, noise_structure

    rng, posterior, truth = _committee(seed=3)
    posterior = posterior.copy()
    ones = np.flatnonzero(truth == 1)[:8]
    posterior[ones] = 0.001
    posterior[ones, 2] = 1 - 0.009  # "this 1 is a 2", 99%: the committee's blind spot
    labels = truth.copy()
    wrong = rng.choice(np.flatnonzero(truth != 1), 60, replace=False)
    labels[wrong] = (truth[wrong] + rng.integers(1, 10, len(wrong))) % 10
    spread = noise_structure(posterior, labels, 0.003)
    pinned = noise_structure(posterior, labels, 0.003, prior=0.0)
    assert pinned[2, 1] > 0.5 and spread[2].max() < 0.5, (pinned[2], spread[2])
    ep, _ = error_model(posterior, labels, link=(1.0, 1.0), sharpen=1.0)
    confident_wrong = wrong[posterior[wrong, truth[wrong]] > 0.9]
    assert len(confident_wrong) >= 5
    assert np.median(ep[confident_wrong]) >= 0.5 * np.median(ep[ones]), (np.median(ep[confident_wrong]), np.median(ep[ones]))


def test_review_cut_lengthens_the_list_until_it_holds_most_expected_errors():
    """Without a min_error_prob asked for, the list keeps error_prob >= 0.1 and goes on down the flagged
    images until their error_prob sums to 80% of the expected wrong labels, or the flagged images with
    error_prob >= 0.01 run out; a min_error_prob asked for is a hard cut; unflagged images never enter."""
    from datacleaner.scoring import review_cut

    ep = np.array([0.9, 0.5, 0.08, 0.07, 0.06, 0.05, 0.04, 0.005, 0.3, np.nan])
    flagged = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
    keep, info = review_cut(ep, flagged, expected_wrong=2.0)  # target 1.6: 0.9 + 0.5 + 0.08 + 0.07 + 0.06
    assert keep.tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 0, 0] and info["lengthened_by"] == 3 and info["reached"]
    assert info["lowest_error_prob"] == 0.06
    keep, info = review_cut(ep, flagged, expected_wrong=1.0)  # 1.4 >= 0.8 already at the cut
    assert keep.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0] and info["lengthened_by"] == 0
    keep, info = review_cut(ep, flagged, expected_wrong=10.0)  # every flagged image down to 0.01, still short of 8
    assert keep.tolist() == [1] * 7 + [0, 0, 0] and not info["reached"]
    keep, info = review_cut(ep, flagged, expected_wrong=10.0, floor=0.0)
    assert keep.tolist() == [1] * 8 + [0, 0]
    keep, info = review_cut(ep, flagged, expected_wrong=10.0, min_error_prob=0.5)
    assert keep.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0] and info["rule"] == "min_error_prob"
