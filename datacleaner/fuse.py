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


def fuse(outputs: np.ndarray, weights: np.ndarray, *, mode: str = "logits") -> np.ndarray:
    """Fused class probabilities.

    outputs: (N, M, V, C) logits of M members on V views of N images.
    weights: (M,) non-negative member weights, not all zero.
    Returns (N, C) float32 probabilities, rows summing to 1.
    """
    if mode not in FUSION_MODES:
        raise ValueError(f"fusion mode must be one of {FUSION_MODES}, got {mode!r}")
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 4:
        raise ValueError(f"outputs must have shape (N, M, V, C), got {outputs.shape}")
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (outputs.shape[1],) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights must be {outputs.shape[1]} non-negative numbers, not all zero; got {weights}")
    w = weights / weights.sum()
    if mode == "probs":
        outputs = softmax(outputs)
    per_member = outputs.mean(axis=2)  # (N, M, C): views weigh equally
    fused = np.einsum("nmc,m->nc", per_member, w)  # (N, C)
    return (softmax(fused) if mode == "logits" else fused).astype(np.float32)
