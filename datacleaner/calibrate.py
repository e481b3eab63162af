"""Fitting temperatures and fusion weights on a round's judgements.  [pure numpy + scipy]

N images, M members, V views, C classes. Both fits minimise the negative log-likelihood
of the *given* labels on the images a round judged (images its committee never trained
on). The labels are noisy, but one number per member cannot memorise individual images;
what it learns is how sharp (temperature) and how reliable (weight) each member is.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from .fuse import CHUNK, fuse_means, member_means, softmax

TEMPERATURES = np.geomspace(0.05, 20.0, 81)  # the grid searched by fit_temperature


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of `labels` (N,) under `probs` (N, C)."""
    p = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T (from TEMPERATURES) minimising the NLL of softmax(mean-over-views logits / T).

    logits: (N, V, C) one member's TTA logits; labels: (N,) int. Returns 1.0 for no images.
    """
    return _best_temperature(np.asarray(logits, dtype=np.float64).mean(axis=1), labels)


def _best_temperature(mean_logits: np.ndarray, labels: np.ndarray) -> float:
    """fit_temperature on view-averaged logits (N, C)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    losses = [nll(softmax(mean_logits / t), labels) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def fit_weights(outputs: np.ndarray, labels: np.ndarray, *, mode: str = "logits") -> np.ndarray:
    """(M,) fusion weights summing to 1 that minimise the NLL of `fuse(outputs, w)`.

    outputs: (N, M, V, C); labels: (N,) int. Weights are parametrised as a softmax, so
    they stay positive; starts from equal weights.
    """
    return _fit_weights_means(member_means(outputs, mode=mode), labels, mode=mode)


def _fit_weights_means(per_member: np.ndarray, labels: np.ndarray, *, mode: str) -> np.ndarray:
    """fit_weights on view-averaged member outputs (N, M, C) (see member_means)."""
    labels = np.asarray(labels, dtype=np.int64)
    M = per_member.shape[1]
    if M == 1 or len(labels) == 0:
        return np.full(M, 1.0 / M)

    def loss(x):
        return nll(fuse_means(per_member, softmax(x), mode=mode), labels)

    result = minimize(loss, np.zeros(M), method="Powell", options={"xtol": 1e-3, "ftol": 1e-6})
    return softmax(result.x)


def fuse_rounds(
    round_outputs: list[tuple[np.ndarray, object]], labels: np.ndarray, n_images: int, weights: np.ndarray, *,
    mode: str = "logits", calibrate: bool = False, fit: bool = False, votes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Every round's fused judgements at once: ((R, N, C) fused probabilities, (R, N) judged, fitted
    parameters); see fused_rounds, which yields them one round at a time."""
    R = len(round_outputs)
    C = _classes(round_outputs[0][1]) if R else 0
    fused = np.zeros((R, n_images, C), dtype=np.float32)  # (R, N, C)
    judged = np.zeros((R, n_images), dtype=bool)
    fitted: dict = {"temperatures": [], "weights": []}
    for r, idx, probs in fused_rounds(round_outputs, labels, weights, mode=mode, calibrate=calibrate, fit=fit,
                                      votes=votes, fitted=fitted):
        fused[r, idx], judged[r, idx] = probs, True
    return fused, judged, fitted


def _classes(outputs) -> int:
    return (outputs[0] if isinstance(outputs, list) else outputs).shape[-1]


def fused_rounds(
    round_outputs: list[tuple[np.ndarray, object]], labels: np.ndarray, weights: np.ndarray, *,
    mode: str = "logits", calibrate: bool = False, fit: bool = False, votes: np.ndarray | None = None,
    fitted: dict | None = None,
):
    """Yield (round, judged indices (n,), fused probabilities (n, C) float32) for every round.

    round_outputs: per round (idx (n,), outputs (n, M, V, C) or a list of M (n, V, C), e.g.
    arrays.NpyFile) for the images it judged; views are reduced CHUNK images at a time, so memory
    holds one round's fused probabilities, not the members' outputs. labels: (N,) given labels;
    weights: (M,) configured member weights. With `calibrate`, each member's logits are divided by
    its fitted temperature first; with `fit`, the round's member weights are fitted instead of the
    configured ones (both fits hold the round's (n, M, C) view means). `votes`, if given, an (R, N, M)
    integer array, receives each member's label per round (-1 where not judged); `fitted` receives
    the temperatures and normalised weights of every round.
    """
    labels = np.asarray(labels, dtype=np.int64)
    fitted = {"temperatures": [], "weights": []} if fitted is None else fitted
    for r, (idx, outputs) in enumerate(round_outputs):
        y = labels[idx]
        temps, per_member = None, None
        if calibrate:
            mean_logits = member_means(outputs, mode="logits")  # (n, M, C)
            temps = np.array([_best_temperature(mean_logits[:, m], y) for m in range(mean_logits.shape[1])])
            fitted["temperatures"].append(temps.round(3).tolist())
            per_member = mean_logits / temps[None, :, None] if mode == "logits" else None  # mean(logits / T) = mean(logits) / T
        if fit:
            if per_member is None:
                per_member = member_means(outputs, mode=mode, temperatures=temps)  # (n, M, C)
            w = _fit_weights_means(per_member, y, mode=mode)
        else:
            w = np.asarray(weights, dtype=np.float64)
        fitted["weights"].append((w / w.sum()).round(3).tolist())
        probs = np.zeros((len(idx), _classes(outputs)), dtype=np.float32)
        for s in range(0, len(idx), CHUNK):
            part = per_member[s : s + CHUNK] if per_member is not None else member_means(
                [o[s : s + CHUNK] for o in outputs] if isinstance(outputs, list) else outputs[s : s + CHUNK],
                mode=mode, temperatures=temps)  # (c, M, C)
            probs[s : s + len(part)] = fuse_means(part, w, mode=mode)
            if votes is not None:
                votes[r, idx[s : s + len(part)]] = part.argmax(axis=2)
        yield r, idx, probs
