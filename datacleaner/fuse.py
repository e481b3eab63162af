"""Weighted fusion of the members' TTA outputs.  [pure numpy]

Views weigh equally; members weigh by their fusion weight. With mode "logits"
(the default) the weighted mean of the logits goes through a softmax; with mode
"probs" each output is softmaxed first and the weighted mean is used directly.
"""

from __future__ import annotations

import numpy as np

FUSION_MODES = ("logits", "probs")


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


CHUNK = 65536  # images per step when reducing views: the (n, M, V, C) outputs never all sit in memory


def member_means(outputs, *, mode: str = "logits", temperatures: np.ndarray | None = None) -> np.ndarray:
    """(N, M, C) float64: each member's output averaged over its V views, in the space fusion
    averages (logits, or probabilities for mode "probs"), after dividing by its temperature.

    outputs: (N, M, V, C) logits, or a list of M arrays (N, V, C) (memory-mapped files work):
    read CHUNK images at a time.
    """
    if mode not in FUSION_MODES:
        raise ValueError(f"fusion mode must be one of {FUSION_MODES}, got {mode!r}")
    parts = list(outputs) if isinstance(outputs, (list, tuple)) else None
    if parts is None and np.ndim(outputs) != 4:
        raise ValueError(f"outputs must have shape (N, M, V, C), got {np.shape(outputs)}")
    N, M, C = (len(parts[0]), len(parts), parts[0].shape[-1]) if parts is not None else (
        outputs.shape[0], outputs.shape[1], outputs.shape[3])
    temps = np.ones(M) if temperatures is None else np.asarray(temperatures, dtype=np.float64)
    out = np.zeros((N, M, C), dtype=np.float64)
    for s in range(0, N, CHUNK):
        for m in range(M):
            x = np.asarray(parts[m][s : s + CHUNK] if parts is not None else outputs[s : s + CHUNK, m], dtype=np.float64)
            x = x / temps[m]  # (n, V, C)
            out[s : s + CHUNK, m] = (softmax(x) if mode == "probs" else x).mean(axis=1)
    return out


def fuse_means(per_member: np.ndarray, weights: np.ndarray, *, mode: str = "logits") -> np.ndarray:
    """(N, C) float32 fused probabilities from member_means (N, M, C) and weights (M,)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (per_member.shape[1],) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights must be {per_member.shape[1]} non-negative numbers, not all zero; got {weights}")
    fused = np.einsum("nmc,m->nc", per_member, weights / weights.sum())  # (N, C)
    return (softmax(fused) if mode == "logits" else fused).astype(np.float32)


def fuse(outputs, weights: np.ndarray, *, mode: str = "logits") -> np.ndarray:
    """Fused class probabilities.

    outputs: (N, M, V, C) logits of M members on V views of N images (or a list of M (N, V, C)).
    weights: (M,) non-negative member weights, not all zero.
    Returns (N, C) float32 probabilities, rows summing to 1.
    """
    return fuse_means(member_means(outputs, mode=mode), weights, mode=mode)


def majority_vote(votes: np.ndarray) -> np.ndarray:
    """(N, M) each member's most frequent label over rounds (ties: the earliest round's), -1 if never judged.

    votes: (R, N, M) integer labels per round, -1 where a round did not judge the image."""
    R = votes.shape[0]
    best = np.full(votes.shape[1:], -1, dtype=votes.dtype)
    best_count = np.zeros(votes.shape[1:], dtype=np.int32)
    for r in range(R):
        count = sum((votes[q] == votes[r]).astype(np.int32) for q in range(R))
        better = (votes[r] >= 0) & (count > best_count)
        best[better], best_count[better] = votes[r][better], count[better]
    return best
