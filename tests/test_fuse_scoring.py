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
    assert s1.estimated_noise_rate() == pytest.approx(2 / 3)


def test_low_confidence_issue_when_label_agrees_but_probability_is_low():
    s = score(np.array([[[0.45, 0.35, 0.2]]]), np.ones((1, 1), bool), np.array([0]), tau=0.5, min_flags=1)
    assert s.issue.tolist() == ["low_confidence"]
    assert s.label_quality[0] == pytest.approx(0.45)
