"""`select`'s scores: how strongly a committee disagrees with the production model on each pool image
(lower rank = more worth labeling), which images production already handles, and a spread-out pick
by k-centre greedy.  [pure numpy]"""

from __future__ import annotations

import numpy as np


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
