"""Per-round flags, flag counts and label-quality scores.  [pure numpy]

N images, C classes, R rounds. `fused` (R, N, C) holds each round's fused
probabilities and `judged` (R, N) says which images that round judged. Scores
point one way: lower `label_quality` = more likely mislabeled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fuse import softmax

ROWS = 16384  # images per step where (n, C) float64 temporaries are made: bounded at many classes


def _pieces(n: int):
    for s in range(0, n, ROWS):
        yield slice(s, min(n, s + ROWS))

ISSUES = ("mislabel", "low_confidence", "unreadable")
FLAG_RULES = ("fixed", "class_adaptive", "noise_rate")
QUALITY_METHODS = ("self_confidence", "normalized_margin")


def class_thresholds(fused_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C,) per-class thresholds t_c: the mean probability of class c over images labeled c
    (confident learning's t_j); inf for a class no image carries (never confidently predicted)."""
    labels = np.asarray(labels, dtype=np.int64)
    C = fused_probs.shape[1]
    counts = np.bincount(labels, minlength=C)
    given = np.asarray(fused_probs[np.arange(len(labels)), labels], dtype=np.float64)
    sums = np.bincount(labels, weights=given, minlength=C)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)


def confident_class(fused_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((N,) bool: some class reaches its threshold t_c, (N,) the most probable such class)."""
    t = class_thresholds(fused_probs, labels)[None, :]
    has, best = np.zeros(len(labels), dtype=bool), np.zeros(len(labels), dtype=np.int64)
    for rows in _pieces(len(labels)):
        p = np.asarray(fused_probs[rows], dtype=np.float64)
        confident = p >= t  # (n, C)
        has[rows], best[rows] = confident.any(axis=1), np.where(confident, p, -1.0).argmax(axis=1)
    return has, best


def estimated_error_count(fused_probs: np.ndarray, labels: np.ndarray) -> float:
    """How many of the N labels are wrong, estimated by confident learning's calibrated confident joint.

    An image labeled i counts towards cell (i, j) when j is its most probable class among those
    reaching their per-class threshold t_j; each row is rescaled to the number of images labeled
    i; the off-diagonal mass is the estimate. fused_probs: (N, C); labels: (N,) int.
    """
    labels = np.asarray(labels, dtype=np.int64)
    C = fused_probs.shape[1]
    has, best = confident_class(fused_probs, labels)
    joint = np.zeros((C, C))  # (given, confidently predicted)
    np.add.at(joint, (labels[has], best[has]), 1.0)
    per_label = np.bincount(labels, minlength=C)
    joint = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1.0) * per_label[:, None]
    return float(joint.sum() - np.trace(joint))


# How much of the annotators' noise the committee's probabilities hide. The committee learns from
# the labels it judges, so it learns part of their confusions (a cat labelled dog now and then
# teaches it that such cats may be dogs) and a likelihood fit sees only part of the noise, rho_seen.
# How much it learnt cannot be told from the labels alone; on CIFAR-10N's real human noise
# (bench/committee_sweep.py --calibration, docs/benchmarks.md) the dataset's noise rate is
#     rho = NOISE_LINK[0] * rho_seen ** NOISE_LINK[1]   (in proportion below rho_seen 0.02)
# and the images' true classes are sharper than the committee's probabilities: p ** (1 / SHARPEN),
# renormalised. NOISE_LINK (1, 1) and SHARPEN 1 trust the committee as it is.
# The sharpening is what learning the noise did to the committee, so it fades with the noise: in full from
# SHARPEN_FULL (CIFAR-10N's 9-40%, where it was measured), in proportion below (sharpened_by). On nearly
# clean data (0.2-1% wrong) a committee has learnt next to nothing of the noise, and sharpening its
# probabilities made its own confident mistakes look like certain errors (docs/benchmarks.md).
NOISE_LINK = (1.1, 0.7)
SHARPEN = 0.85
SHARPEN_FULL = 0.05
NOISE_FLOOR = 0.002  # the least noise assumed: curated datasets still hold a few wrong labels (0.15% of MNIST's test
#                      set and 0.5% of CIFAR-10's were found wrong by people), docs/method.md


def linked_noise_rate(seen: float, link: tuple[float, float] = NOISE_LINK, knee: float = 0.02) -> float:
    """The dataset's noise rate from the one the committee shows: gain * seen ** power, and in
    proportion below `knee` (the power law's slope grows without bound towards 0, and was measured
    from seen rates of 0.02 up)."""
    gain, power = link
    return gain * seen ** power if seen >= knee else seen * gain * knee ** (power - 1)


def sharpened_by(rho: float, sharpen: float = SHARPEN, full: float = SHARPEN_FULL) -> float:
    """The factor on the temperature at noise rate rho: `sharpen` from rho = `full` up, 1 at rho = 0,
    linear between."""
    return 1.0 - (1.0 - sharpen) * min(1.0, max(rho, 0.0) / full)


def tempered(probs: np.ndarray, T: float) -> np.ndarray:
    """(N, C) softmax(log probs / T): T < 1 sharpens, T > 1 flattens."""
    return softmax(np.log(np.clip(probs, 1e-12, 1.0)) / T, axis=1)


SIGNIFICANCE = 10.83  # likelihood-ratio statistic for noise: chi-squared with 1 degree of freedom at p = 0.001


def _noise_fits(probs: np.ndarray, labels: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """((rho, T, log-likelihood) with noise, (0, T, log-likelihood) without), each at its best T <= 1: the
    maximum-likelihood share rho of labels replaced by another class (all alike), the images' classes
    following the committee's probabilities re-tempered, softmax(log p / T) (EM for rho on a grid of T).
    T < 1 sharpens an under-confident committee; T > 1 is not tried, since a committee flattened by the
    noise it learnt would explain the noise away."""
    C = probs.shape[1]
    best, best0 = None, None
    for T in np.geomspace(0.1, 1.0, 21):
        pi = tempered(probs, T)[np.arange(len(labels)), labels]
        rho = 0.1
        for _ in range(500):
            other = rho / (C - 1) * (1 - pi)
            new = float(np.mean(other / np.maximum((1 - rho) * pi + other, 1e-300)))
            if abs(new - rho) < 1e-8:
                break
            rho = new
        ll = float(np.log(np.maximum((1 - rho) * pi + rho / (C - 1) * (1 - pi), 1e-300)).sum())
        ll0 = float(np.log(np.maximum(pi, 1e-300)).sum())
        if best is None or ll > best[2]:
            best = (rho, float(T), ll)
        if best0 is None or ll0 > best0[2]:
            best0 = (0.0, float(T), ll0)
    return best, best0


def seen_noise_rate(probs: np.ndarray, labels: np.ndarray, *, significance: float = SIGNIFICANCE) -> tuple[float, float]:
    """(rho, T): the maximum-likelihood noise rate and temperature (_noise_fits); rho is 0 unless it
    explains the labels significantly better than no noise (likelihood ratio 2 * (ll - ll0) above
    `significance`)."""
    best, best0 = _noise_fits(probs, labels)
    return best[:2] if 2 * (best[2] - best0[2]) > significance else best0[:2]


STRUCTURE_PRIOR = 5.0  # pseudo wrong labels per class, spread evenly over the other classes (noise_structure)


def noise_structure(probs: np.ndarray, labels: np.ndarray, rho: float, iters: int = 20,
                    prior: float = STRUCTURE_PRIOR) -> np.ndarray:
    """(C, C) where wrong labels go: row z = the share of class z's wrong labels given as each
    other class (diagonal 0, rows sum to 1), by EM on a class-to-label transition matrix with the
    committee's probabilities as each image's class prior. Each row starts from `prior` pseudo
    wrong labels spread evenly (a Dirichlet prior): a class with a few wrong labels, as on nearly
    clean data, keeps most of its noise spread out instead of pinning it on the one or two class
    pairs the committee happened to confuse (which made its own confident mistakes near-certain
    errors and the real errors of other pairs near-impossible); a class with hundreds of wrong
    labels follows them. A class whose noise is never seen spreads it evenly."""
    C = probs.shape[1]
    start = min(max(rho, 0.01), 0.5)
    M = np.full((C, C), start / (C - 1))
    np.fill_diagonal(M, 1 - start)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    for _ in range(iters):
        q = probs * M[:, labels].T  # (n, C): each image's class posterior given its label
        q /= np.maximum(q.sum(axis=1, keepdims=True), 1e-300)
        counts = np.zeros((C, C))
        counts[:, sorted_labels[starts]] = np.add.reduceat(q[order], starts, axis=0).T  # [z, l]: q(z) summed over images labelled l
        counts += prior / (C - 1) * (1 - np.eye(C))
        M = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-300)
    off = M - np.diag(np.diag(M))
    total = off.sum(axis=1, keepdims=True)
    even = (1 - np.eye(C)) / (C - 1)
    return np.where(total > 1e-9, off / np.maximum(total, 1e-300), even)


def error_model(probs: np.ndarray, labels: np.ndarray, *, link: tuple[float, float] = NOISE_LINK, sharpen: float = SHARPEN,
                floor: float = NOISE_FLOOR, fit_max: int = 50_000, structure_max: int = 20_000, seed: int = 0,
                rows: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """((N,) probability that each given label is wrong, the fitted model as a dict).

    A noisy-label model of the dataset's own labels: an image's true class follows the committee's
    probabilities re-tempered (softmax(log probs / T), T <= 1 fitted with the noise rate by maximum
    likelihood, _noise_fits) and sharpened (T * sharpened_by(rho, sharpen): less as the noise is less,
    none at no noise); its given label is that class with
    probability 1 - rho, else another class as the noise structure says (noise_structure: cats are
    mislabelled dogs more often than trucks). rho starts from the noise the committee's probabilities
    show (rho_seen, on at most `fit_max` images):
      - where that noise is significant (likelihood-ratio test, SIGNIFICANCE), the committee may have
        learnt part of it, as it does from human annotators' confusions, and `link` scales it up
        (NOISE_LINK) -- but never above confident learning's estimate (estimated_error_count), which
        counts every confident disagreement: noise the committee sees whole (random flips) is not
        inflated;
      - where it is not, rho_seen is taken as it is;
    and never below `floor`: a nearly clean dataset still holds a few wrong labels, and a label the
    committee contradicts with confidence is not called certainly right.
    Each label's probability of being wrong is its posterior:
        1 - pi_y (1 - rho) / sum_z pi_z M[z, y],  M = (1 - rho) I + rho * structure.
    probs: (N, C) fused probabilities (any array: read in pieces); labels: (N,) int; rows: the rows to
    model (default: all), the result being (len(rows),)."""
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows)
    N, C = len(rows), probs.shape[1]
    model = {"noise_rate": 0.0, "seen_noise_rate": 0.0, "significant": False, "confident_joint_rate": 0.0,
             "temperature": 1.0, "link": list(link), "sharpen": sharpen}
    if N == 0 or C < 2:
        return np.zeros(N), model
    rng = np.random.default_rng(seed)
    fit = rows if N <= fit_max else rows[rng.choice(N, fit_max, replace=False)]
    fit_probs = np.asarray(probs[fit], dtype=np.float64)
    best, best0 = _noise_fits(fit_probs, labels[fit])
    significant = 2 * (best[2] - best0[2]) > SIGNIFICANCE
    seen, T = best[:2]
    confident = estimated_error_count(fit_probs, labels[fit]) / len(fit)
    rho = min(max(linked_noise_rate(seen, link) if significant else seen, floor), max(confident, seen, floor), 0.9)
    model.update(noise_rate=round(rho, 4), seen_noise_rate=round(seen, 4), significant=bool(significant),
                 confident_joint_rate=round(confident, 4), temperature=round(T, 3))
    if rho <= 0.0:
        return np.zeros(N), model
    part = slice(0, structure_max)  # the structure's EM holds (n, C) arrays: bounded at many classes
    structure = noise_structure(tempered(fit_probs[part], T), labels[fit[part]], seen)
    del fit_probs
    factor = sharpened_by(rho, sharpen)
    model["sharpened"] = round(factor, 3)
    return wrong_label_posterior(probs, labels, rho, structure, T * factor, rows=rows), model


def wrong_label_posterior(probs: np.ndarray, labels: np.ndarray, rho: float, structure: np.ndarray, T: float,
                          rows: np.ndarray | None = None) -> np.ndarray:
    """(N,) each label's posterior probability of being wrong: true classes softmax(log probs / T),
    labels through M = (1 - rho) I + rho * structure; with `rows`, of those rows only."""
    C = probs.shape[1]
    M = (1 - rho) * np.eye(C) + rho * structure
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows)
    out = np.empty(len(rows))
    for piece in _pieces(len(rows)):  # bounded memory at many classes
        pt = tempered(np.asarray(probs[rows[piece]], dtype=np.float64), T)
        y = labels[rows[piece]]
        given = pt[np.arange(len(y)), y] * M[y, y]
        out[piece] = 1 - given / np.maximum((pt * M[:, y].T).sum(axis=1), 1e-300)
    return np.clip(out, 0.0, 1.0)


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
    return (fused_probs.argmax(axis=1) != labels) | (given < tau)  # argmax: no float64 copy of the probabilities


def label_quality_scores(probs: np.ndarray, labels: np.ndarray, *, method: str = "self_confidence") -> np.ndarray:
    """(N,) in [0, 1], lower = more likely mislabeled.

    self_confidence: p(given label). normalized_margin: (1 + p(given) - max other p) / 2.
    """
    if method not in QUALITY_METHODS:
        raise ValueError(f"method must be one of {', '.join(QUALITY_METHODS)}, got {method!r}")
    labels = np.asarray(labels, dtype=np.int64)
    given = np.asarray(probs[np.arange(len(labels)), labels], dtype=np.float64)
    if method == "self_confidence":
        return given
    out = np.empty(len(labels))
    for rows in _pieces(len(labels)):
        others = np.array(probs[rows], dtype=np.float64)
        others[np.arange(len(others)), labels[rows]] = -np.inf
        out[rows] = (1.0 + given[rows] - others.max(axis=1)) / 2.0
    return out


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
    noise_model: dict  # error_model's fitted model: noise_rate, seen_noise_rate, temperature, link, sharpen
    list_length: dict = field(default_factory=dict)  # what decided how many flagged images in_review keeps (review_cut)

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
        if judged.all():  # no copy of the (N, C) probabilities
            return estimated_error_count(self.mean_probs, self.given_label) / len(judged)
        return estimated_error_count(self.mean_probs[judged], self.given_label[judged]) / int(judged.sum())

    def expected_wrong(self) -> float:
        """Expected number of wrong labels in the dataset: the error model's noise rate times the
        judged images, or the sum of error_prob if that is higher (the column usually sums lower, since
        the images the committee agrees with hide the noise it learnt; never lower than what the
        review list's rows promise)."""
        judged = self.rounds > 0
        return float(max(self.noise_model.get("noise_rate", 0.0) * int(judged.sum()), np.nansum(self.error_prob[judged])))

    def disagreement_rate(self) -> float:
        """Share of judged images whose committee label differs from the given label."""
        judged = self.rounds > 0
        return float((self.suggested_label[judged] != self.given_label[judged]).mean()) if judged.any() else 0.0


AUTO_CUT = 0.1  # min_error_prob when none is asked for: the list stops where a label is unlikely to be wrong...
LIST_RECALL = 0.8  # ...unless its rows then expect fewer than this share of the dataset's expected wrong labels...
LIST_FLOOR = 0.01  # ...but never lists a row less likely wrong than this: one wrong label in a hundred rows


def review_cut(error_prob: np.ndarray, flagged: np.ndarray, expected_wrong: float, *, min_error_prob: float | None = None,
               recall: float = LIST_RECALL, auto_cut: float = AUTO_CUT, floor: float = LIST_FLOOR) -> tuple[np.ndarray, dict]:
    """((N,) bool: the flagged images that go to the review list, what decided its length).

    error_prob: (N,) (NaN where not judged); flagged: (N,) bool, the images the committees flagged;
    expected_wrong: the dataset's expected number of wrong labels. A `min_error_prob` asked for is a
    hard cut: only flagged images at or above it. Without one (None), the list keeps the flagged
    images with error_prob >= `auto_cut` and, while their error_prob sums to less than `recall` x
    expected_wrong, goes on down the flagged images in falling error_prob until it reaches that share
    or runs out of flagged images with error_prob >= `floor`: a list that looks precise by hiding most
    of the errors the run itself expects is the wrong trade on nearly clean data, where the wrong
    labels are the doubtful ones; a row a reviewer would have to read a hundred of to find one wrong
    label is not worth it either.
    """
    ep = np.nan_to_num(np.asarray(error_prob, dtype=np.float64))
    flagged = np.asarray(flagged, dtype=bool)
    if min_error_prob is not None:
        keep = flagged & (ep >= min_error_prob)
        return keep, {"rule": "min_error_prob", "min_error_prob": float(min_error_prob), "rows": int(keep.sum()),
                      "lengthened_by": 0}
    keep = flagged & (ep >= auto_cut)
    target = recall * float(expected_wrong)
    info = {"rule": "auto", "min_error_prob": auto_cut, "recall": recall, "floor": floor,
            "expected_wrong": round(float(expected_wrong), 1), "target": round(target, 1), "rows_at_cut": int(keep.sum()),
            "lengthened_by": 0}
    have = float(ep[keep].sum())
    if have < target:
        rest = np.flatnonzero(flagged & ~keep & (ep >= floor))
        rest = rest[np.argsort(-ep[rest], kind="stable")]
        reach = np.searchsorted(np.cumsum(ep[rest]), target - have - 1e-9) + 1  # rows needed to reach the target
        added = rest[: min(int(reach), len(rest))]
        keep[added] = True
        info["lengthened_by"] = int(len(added))
        info["lowest_error_prob"] = round(float(ep[added].min()), 4) if len(added) else None
    in_rows = float(ep[keep].sum())
    info.update(rows=int(keep.sum()), expected_in_rows=round(in_rows, 1), reached=bool(in_rows >= target - 1e-6))
    return keep, info


def score(
    fused: np.ndarray, judged: np.ndarray, labels: np.ndarray, *, tau: float, min_flags: int, rule: str = "fixed",
    quality: str = "self_confidence", min_error_prob: float | None = 0.0,
) -> Scores:
    """score_rounds on every round's fused probabilities at once: fused (R, N, C) (any value where not
    judged), judged (R, N) bool."""
    judged = np.asarray(judged, dtype=bool)
    rounds = ((r, np.flatnonzero(judged[r]), np.asarray(fused[r])[judged[r]]) for r in range(len(judged)))
    return score_rounds(rounds, labels, tau=tau, min_flags=min_flags, rule=rule, quality=quality,
                        min_error_prob=min_error_prob, classes=np.shape(fused)[2])


def score_rounds(
    rounds, labels: np.ndarray, *, tau: float, min_flags: int, rule: str = "fixed", quality: str = "self_confidence",
    min_error_prob: float | None = 0.0, classes: int | None = None, mean_probs: np.ndarray | None = None,
) -> Scores:
    """Flag every judged image in every round and aggregate.

    rounds: iterable of (round, judged indices (n,), fused probabilities (n, C)), one round held at a
    time (calibrate.fused_rounds). labels: (N,) int. An image goes to review when flagged in at least
    `min_flags` (T) rounds (`rule`: see round_flags). `quality` names the label_quality score computed
    from the round-averaged probabilities; `min_error_prob` keeps out of review the images whose
    error_prob (error_model) is lower, None the automatic length (review_cut). mean_probs: an (N, C)
    float32 array of zeros to average into (e.g. a file-backed one when N x C is large); allocated here
    by default.
    """
    labels = np.asarray(labels, dtype=np.int64)
    N = len(labels)
    flag_count = np.zeros(N, dtype=np.int64)
    counts = np.zeros(N, dtype=np.int64)
    for _, idx, probs in rounds:
        if mean_probs is None:
            mean_probs = np.zeros((N, probs.shape[1]), dtype=np.float32)
        flag_count[idx] += round_flags(probs, labels[idx], tau=tau, rule=rule, quality=quality)
        mean_probs[idx] += probs
        counts[idx] += 1
    if mean_probs is None:
        mean_probs = np.zeros((N, classes or 0), dtype=np.float32)
    seen = counts > 0
    suggested, suggested_prob = np.full(N, -1, dtype=np.int64), np.full(N, np.nan)
    for rows in _pieces(N):
        m = np.asarray(mean_probs[rows], dtype=np.float64)
        s = seen[rows]
        m[s] /= counts[rows][s, None]
        if (counts[rows] > 1).any():
            mean_probs[rows] = m
        if m.shape[1]:
            suggested[rows] = np.where(s, m.argmax(axis=1), -1)
            suggested_prob[rows] = np.where(s, m.max(axis=1), np.nan)
    given_prob = np.full(N, np.nan)
    quality_scores = np.full(N, np.nan)
    error_prob = np.full(N, np.nan)
    model = error_model(mean_probs, labels, rows=np.zeros(0, dtype=np.int64))[1]
    if seen.any():
        given_prob[seen] = np.asarray(mean_probs[np.flatnonzero(seen), labels[seen]], dtype=np.float64)
        quality_scores = np.where(seen, label_quality_scores(mean_probs, labels, method=quality), np.nan)
        error_prob[seen], model = error_model(mean_probs, labels, rows=np.flatnonzero(seen))
    scores = Scores(
        given_label=labels,
        flag_count=flag_count,
        rounds=counts,
        in_review=seen & (flag_count >= min_flags),
        mean_probs=mean_probs,
        suggested_label=suggested,
        suggested_prob=suggested_prob,
        given_label_prob=given_prob,
        label_quality=quality_scores,
        error_prob=error_prob,
        noise_model=model,
    )
    scores.in_review, scores.list_length = review_cut(error_prob, scores.in_review, scores.expected_wrong(),
                                                      min_error_prob=min_error_prob)
    return scores
