"""Per-round flags, flag counts and label-quality scores.  [pure numpy]

N images, C classes, R rounds. `fused` (R, N, C) holds each round's fused
probabilities and `judged` (R, N) says which images that round judged. Scores
point one way: lower `label_quality` = more likely mislabeled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ISSUES = ("mislabel", "low_confidence", "unreadable")
FLAG_RULES = ("fixed", "class_adaptive", "noise_rate")
QUALITY_METHODS = ("self_confidence", "normalized_margin")


def class_thresholds(fused_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C,) per-class thresholds t_c: the mean probability of class c over images labeled c
    (confident learning's t_j); inf for a class no image carries (never confidently predicted)."""
    fused_probs = np.asarray(fused_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    C = fused_probs.shape[1]
    counts = np.bincount(labels, minlength=C)
    sums = np.bincount(labels, weights=fused_probs[np.arange(len(labels)), labels], minlength=C)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)


def confident_class(fused_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((N,) bool: some class reaches its threshold t_c, (N,) the most probable such class)."""
    confident = fused_probs >= class_thresholds(fused_probs, labels)[None, :]  # (N, C)
    return confident.any(axis=1), np.where(confident, fused_probs, -1.0).argmax(axis=1)


def estimated_error_count(fused_probs: np.ndarray, labels: np.ndarray) -> float:
    """How many of the N labels are wrong, estimated by confident learning's calibrated confident joint.

    An image labeled i counts towards cell (i, j) when j is its most probable class among those
    reaching their per-class threshold t_j; each row is rescaled to the number of images labeled
    i; the off-diagonal mass is the estimate. fused_probs: (N, C); labels: (N,) int.
    """
    fused_probs = np.asarray(fused_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    C = fused_probs.shape[1]
    has, best = confident_class(fused_probs, labels)
    joint = np.zeros((C, C))  # (given, confidently predicted)
    np.add.at(joint, (labels[has], best[has]), 1.0)
    per_label = np.bincount(labels, minlength=C)
    joint = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1.0) * per_label[:, None]
    return float(joint.sum() - np.trace(joint))


def error_model(probs: np.ndarray, labels: np.ndarray, *, fit_max: int = 50_000, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """((N,) probability that each given label is wrong, noise rate rho, temperature T).

    A noisy-label model fitted to the labels themselves: an image's true class follows the
    committee's probabilities re-tempered, pi = softmax(log(probs) / T); its given label is the
    true class with probability 1 - rho, else one of the other C - 1 classes alike. T and rho are
    fitted by maximum likelihood of the given labels (EM for rho on a grid of T; at most `fit_max`
    images in the fit), and each label's posterior probability of being wrong is
        rho / (C - 1) * (1 - pi_y)  /  ((1 - rho) * pi_y + rho / (C - 1) * (1 - pi_y)).
    probs: (N, C) fused probabilities; labels: (N,) int."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    N, C = probs.shape
    if N == 0 or C < 2:
        return np.zeros(N), 0.0, 1.0
    fit = np.arange(N) if N <= fit_max else np.random.default_rng(seed).choice(N, fit_max, replace=False)

    def given_pi(T, rows):
        z = np.log(np.clip(probs[rows], 1e-12, 1.0)) / T
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e[np.arange(len(rows)), labels[rows]] / e.sum(axis=1)

    def fit_rho(pi):
        rho = 0.1
        for _ in range(200):
            other = rho / (C - 1) * (1 - pi)
            new = float(np.mean(other / np.maximum((1 - rho) * pi + other, 1e-300)))
            if abs(new - rho) < 1e-7:
                break
            rho = new
        rho = min(max(rho, 1e-6), 1 - 1e-6)
        return rho, float(np.log((1 - rho) * pi + rho / (C - 1) * (1 - pi) + 1e-300).sum())

    best = None
    for T in np.geomspace(0.25, 4.0, 25):
        rho, ll = fit_rho(given_pi(T, fit))
        if best is None or ll > best[2]:
            best = (float(T), rho, ll)
    T, rho, _ = best
    pi = np.concatenate([given_pi(T, np.arange(s, min(N, s + 16384))) for s in range(0, N, 16384)])  # bounded memory at many classes
    other = rho / (C - 1) * (1 - pi)
    return other / np.maximum((1 - rho) * pi + other, 1e-300), rho, T


def round_flags(
    fused_probs: np.ndarray, labels: np.ndarray, *, tau: float, rule: str = "fixed", quality: str = "self_confidence"
) -> np.ndarray:
    """(N,) bool: the round's committee doubts the label.

    fused_probs: (N, C); labels: (N,) int.
    rule "fixed": the fused prediction differs from the label, or the label's probability is below tau.
    rule "class_adaptive": some other class j reaches its per-class threshold t_j (class_thresholds),
    and the most probable such class is not the label (confident learning's off-diagonal).
    rule "noise_rate": the n images of lowest label quality (`quality`, see label_quality_scores),
    n = estimated_error_count: the flagged share follows the data's own estimated noise rate.
    """
    fused_probs = np.asarray(fused_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if rule not in FLAG_RULES:
        raise ValueError(f"rule must be one of {', '.join(FLAG_RULES)}, got {rule!r}")
    if rule == "class_adaptive":
        has, best = confident_class(fused_probs, labels)
        return has & (best != labels)
    if rule == "noise_rate":
        n = int(round(estimated_error_count(fused_probs, labels)))
        flags = np.zeros(len(labels), dtype=bool)
        flags[np.argsort(label_quality_scores(fused_probs, labels, method=quality), kind="stable")[:n]] = True
        return flags
    given = fused_probs[np.arange(len(labels)), labels]
    return (fused_probs.argmax(axis=1) != labels) | (given < tau)


def label_quality_scores(probs: np.ndarray, labels: np.ndarray, *, method: str = "self_confidence") -> np.ndarray:
    """(N,) in [0, 1], lower = more likely mislabeled.

    self_confidence: p(given label). normalized_margin: (1 + p(given) - max other p) / 2.
    """
    if method not in QUALITY_METHODS:
        raise ValueError(f"method must be one of {', '.join(QUALITY_METHODS)}, got {method!r}")
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    given = probs[rows, labels]
    if method == "self_confidence":
        return given
    others = probs.copy()
    others[rows, labels] = -np.inf
    return (1.0 + given - others.max(axis=1)) / 2.0


@dataclass
class Scores:
    """Per-image results of `score`; every array is (N,), except mean_probs (N, C)."""

    given_label: np.ndarray  # the dataset's label
    flag_count: np.ndarray  # rounds that flagged the image
    rounds: np.ndarray  # rounds that judged the image
    in_review: np.ndarray  # bool: flag_count >= T (and judged at least once)
    mean_probs: np.ndarray  # (N, C) fused probabilities averaged over the judging rounds
    suggested_label: np.ndarray  # argmax of mean_probs (-1 if never judged)
    suggested_prob: np.ndarray
    given_label_prob: np.ndarray  # mean_probs at the given label
    label_quality: np.ndarray  # in [0, 1], lower = more likely wrong (NaN if never judged)
    error_prob: np.ndarray  # in [0, 1]: estimated probability that the given label is wrong (error_model)
    noise_model: dict  # error_model's fitted noise rate and temperature

    @property
    def issue(self) -> np.ndarray:
        """(N,) object: 'mislabel' / 'low_confidence' for reviewed images, '' otherwise."""
        out = np.full(len(self.flag_count), "", dtype=object)
        out[self.in_review & (self.suggested_label != self.given_label)] = "mislabel"
        out[self.in_review & (self.suggested_label == self.given_label)] = "low_confidence"
        return out

    def estimated_noise_rate(self) -> float:
        """Share of wrong labels among the judged images, by confident learning's calibrated
        confident joint on the round-averaged probabilities (estimated_error_count)."""
        judged = self.rounds > 0
        if not judged.any():
            return 0.0
        return estimated_error_count(self.mean_probs[judged], self.given_label[judged]) / int(judged.sum())

    def expected_wrong(self, rows: np.ndarray | None = None) -> float:
        """Expected number of wrong labels among `rows` (bool or indices; default every judged image)."""
        ep = self.error_prob if rows is None else self.error_prob[rows]
        return float(np.nansum(ep))

    def disagreement_rate(self) -> float:
        """Share of judged images whose committee label differs from the given label."""
        judged = self.rounds > 0
        return float((self.suggested_label[judged] != self.given_label[judged]).mean()) if judged.any() else 0.0


def score(
    fused: np.ndarray, judged: np.ndarray, labels: np.ndarray, *, tau: float, min_flags: int, rule: str = "fixed",
    quality: str = "self_confidence", min_error_prob: float = 0.0,
) -> Scores:
    """Flag every judged image in every round and aggregate.

    fused: (R, N, C) fused probabilities (any value where not judged).
    judged: (R, N) bool. labels: (N,) int. An image goes to review when flagged
    in at least `min_flags` (T) rounds (`rule`: see round_flags). `quality` names the
    label_quality score computed from the round-averaged probabilities; `min_error_prob` keeps
    out of review the images whose error_prob (error_model) is lower.
    """
    fused = np.asarray(fused)
    judged = np.asarray(judged, dtype=bool)
    labels = np.asarray(labels, dtype=np.int64)
    R, N, C = fused.shape
    flag_count = np.zeros(N, dtype=np.int64)
    mean_probs = np.zeros((N, C), dtype=np.float64)
    for r in range(R):  # one round at a time: no (R, N, C) float64 copy
        j = judged[r]
        probs = np.asarray(fused[r, j], dtype=np.float64)
        flag_count[j] += round_flags(probs, labels[j], tau=tau, rule=rule, quality=quality)
        mean_probs[j] += probs
    rounds = judged.sum(axis=0)
    seen = rounds > 0
    mean_probs[seen] /= rounds[seen, None]
    suggested = np.where(seen, mean_probs.argmax(axis=1), -1)
    given_prob = np.where(seen, mean_probs[np.arange(N), labels], np.nan)
    error_prob = np.full(N, np.nan)
    error_prob[seen], rho, T = error_model(mean_probs[seen], labels[seen])
    return Scores(
        given_label=labels,
        flag_count=flag_count,
        rounds=rounds,
        in_review=seen & (flag_count >= min_flags) & (np.nan_to_num(error_prob) >= min_error_prob),
        mean_probs=mean_probs,
        suggested_label=suggested,
        suggested_prob=np.where(seen, mean_probs.max(axis=1), np.nan),
        given_label_prob=given_prob,
        label_quality=np.where(seen, label_quality_scores(mean_probs, labels, method=quality), np.nan),
        error_prob=error_prob,
        noise_model={"noise_rate": round(rho, 4), "temperature": round(T, 3)},
    )


# ---- selection: ranking pool images by disagreement (lower rank = more worth labeling) ----


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=axis)


def _contradiction(committee_probs, production_label, **_):
    """1 - the committee's probability of the production label."""
    return 1.0 - committee_probs[np.arange(len(production_label)), production_label]


def _js(committee_probs, production_label, *, production_probs=None, **_):
    """Jensen-Shannon divergence (base 2, in [0, 1]) between committee and production probabilities."""
    if production_probs is None:
        raise ValueError("method 'js' needs the production model's class probabilities")
    m = 0.5 * (committee_probs + production_probs)
    return np.clip(0.5 * (_entropy(m) * 2 - _entropy(committee_probs) - _entropy(production_probs)) / np.log(2), 0, 1)


def _margin(committee_probs, production_label, **_):
    """1 - (top-1 minus top-2 committee probability): high when the committee is torn."""
    top2 = np.sort(committee_probs, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def _vote_entropy(committee_probs, production_label, *, member_probs=None, **_):
    """Entropy of the members' hard votes, normalised to [0, 1]."""
    if member_probs is None:
        raise ValueError("method 'vote_entropy' needs per-member probabilities")
    N, M, C = member_probs.shape
    votes = np.zeros((N, C))
    np.add.at(votes, (np.repeat(np.arange(N), M), member_probs.argmax(axis=2).ravel()), 1.0 / M)
    return _entropy(votes) / np.log(min(M, C)) if min(M, C) > 1 else np.zeros(N)


def _mutual_info(committee_probs, production_label, *, member_probs=None, **_):
    """BALD mutual information: entropy of the mean minus mean entropy of the members (nats)."""
    if member_probs is None:
        raise ValueError("method 'mutual_info' needs per-member probabilities")
    return _entropy(member_probs.mean(axis=1)) - _entropy(member_probs).mean(axis=1)


DISAGREEMENT_METHODS = {
    "contradiction": _contradiction,
    "js": _js,
    "margin": _margin,
    "vote_entropy": _vote_entropy,
    "mutual_info": _mutual_info,
}


def disagreement(
    committee_probs: np.ndarray, production_label: np.ndarray, *, method: str = "contradiction",
    production_probs: np.ndarray | None = None, member_probs: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) how strongly the committee disagrees; higher = more worth labeling.

    committee_probs: (N, C) fused; production_label: (N,) int; production_probs: (N, C) or None;
    member_probs: (N, M, C) per-member probabilities (views averaged) or None.
    """
    if method not in DISAGREEMENT_METHODS:
        raise ValueError(f"method must be one of {', '.join(DISAGREEMENT_METHODS)}, got {method!r}")
    return DISAGREEMENT_METHODS[method](
        np.asarray(committee_probs, dtype=np.float64), np.asarray(production_label, dtype=np.int64),
        production_probs=None if production_probs is None else np.asarray(production_probs, dtype=np.float64),
        member_probs=None if member_probs is None else np.asarray(member_probs, dtype=np.float64),
    )


def skip_mask(
    committee_probs: np.ndarray, production_label: np.ndarray, production_score: np.ndarray, *,
    min_committee_prob: float, min_production_score: float,
) -> np.ndarray:
    """(N,) bool: the production model already handles the image (same label, both confident)."""
    committee_label = committee_probs.argmax(axis=1)
    return (
        (committee_label == production_label)
        & (committee_probs.max(axis=1) >= min_committee_prob)
        & (np.asarray(production_score) >= min_production_score)
    )


def k_center_greedy(features: np.ndarray, k: int) -> np.ndarray:
    """(min(k, n),) indices into `features` (n, D), picked greedily so that each next one is the
    farthest (Euclidean) from those already picked; starts at index 0 (the top-ranked candidate).
    Near-duplicates therefore cannot fill the budget."""
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    picked = [0]
    dist = np.linalg.norm(features - features[0], axis=1)  # (n,) distance to the nearest pick
    while len(picked) < min(k, n):
        nxt = int(np.argmax(dist))  # ties -> the lower index, i.e. the better-ranked candidate
        picked.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(features - features[nxt], axis=1))
    return np.array(picked, dtype=np.int64)
