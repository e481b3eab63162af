"""The production model's view of a pool, in any of three forms, mapped onto the committee's classes.

(a) a predictions CSV from any system: path,label,score, optionally one probability column per
    class (named as the class, or `prob_<class>`);
(b) a timm architecture plus a weights file (safetensors or a state dict);
(c) a TorchScript file.
For (b) and (c) the class names come from `classes` (default: the committee's, in order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import MemberConfig, TTAConfig, AugmentConfig
from .errors import DataCleanerError
from .fuse import softmax
from .models import Preprocess, create_member_model, member_preprocess, resolve_device
from .predict import predict_logits


@dataclass
class ProductionPredictions:
    label: np.ndarray  # (N,) int, index into the committee's classes
    score: np.ndarray  # (N,) float, the production model's confidence in its label
    probs: np.ndarray | None  # (N, C) in the committee's class order, or None when unknown


def _match_classes(production: list[str], committee: list[str], where: str) -> np.ndarray:
    """Index of each production class in the committee's classes; a clear error listing both otherwise."""
    missing = [c for c in production if c not in committee]
    if missing:
        raise DataCleanerError(
            f"{where}: production classes do not match the committee's. production: {', '.join(map(str, production))}; "
            f"committee: {', '.join(committee)} (unknown: {', '.join(map(str, missing[:10]))})"
        )
    index = {c: i for i, c in enumerate(committee)}
    return np.array([index[c] for c in production], dtype=np.int64)


def from_csv(csv_path: str | Path, pool_paths: list[str], pool_root: Path, classes: list[str]) -> ProductionPredictions:
    """Predictions CSV rows matched to pool images by path (relative to the pool root, or absolute)."""
    csv_path = Path(csv_path)
    try:
        table = pd.read_csv(csv_path, dtype={"path": str, "label": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataCleanerError(f"production predictions {csv_path} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    need = {"path", "label", "score"} - set(table.columns)
    if need:
        raise DataCleanerError(f"production predictions {csv_path} needs columns path,label,score; missing {', '.join(sorted(need))}")
    keys = {}
    for i, p in enumerate(table["path"]):
        q = Path(p)
        keys[(q if q.is_absolute() else q).as_posix()] = i
        if q.is_absolute():
            try:
                keys[q.resolve().relative_to(pool_root.resolve()).as_posix()] = i
            except ValueError:
                pass
    rows = [keys.get(p) for p in pool_paths]
    absent = [p for p, r in zip(pool_paths, rows) if r is None]
    if absent:
        raise DataCleanerError(
            f"production predictions {csv_path} have no row for {len(absent)} pool image(s), e.g. {absent[0]}; "
            "add them (paths relative to the pool root) or leave those images out of the pool"
        )
    table = table.iloc[rows].reset_index(drop=True)
    label_names = sorted(set(table["label"]))
    _match_classes(label_names, classes, str(csv_path))
    label = np.array([classes.index(x) for x in table["label"]], dtype=np.int64)
    score = pd.to_numeric(table["score"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(score).any() or (score < 0).any() or (score > 1).any():
        bad = table["path"][np.isnan(score) | (score < 0) | (score > 1)].iloc[0]
        raise DataCleanerError(f"production predictions {csv_path}: score of {bad} is not a number in [0, 1]")
    prob_cols = [c for c in classes if c in table.columns] or [c for c in classes if f"prob_{c}" in table.columns]
    probs = None
    if prob_cols:
        if len(prob_cols) != len(classes):
            missing = [c for c in classes if c not in prob_cols]
            raise DataCleanerError(f"production predictions {csv_path}: probability columns missing for {', '.join(missing)}")
        names = [c if c in table.columns else f"prob_{c}" for c in classes]
        probs = table[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    return ProductionPredictions(label=label, score=score, probs=probs)


def _run_model(model, images, idx, prep: Preprocess, classes: list[str], committee_classes: list[str], where: str, device: str):
    order = _match_classes(classes, committee_classes, where)
    dev = resolve_device(device)
    logits = predict_logits(
        model, images, np.asarray(idx), prep, TTAConfig(views=1), AugmentConfig(), device=dev, seed=0
    )[:, 0]  # (n, C_production): the identity view only, as production sees it
    if logits.shape[1] != len(classes):
        raise DataCleanerError(f"{where}: the model has {logits.shape[1]} outputs but {len(classes)} class names were given")
    p = softmax(logits.astype(np.float64))
    probs = np.zeros((len(logits), len(committee_classes)))
    probs[:, order] = p
    return ProductionPredictions(label=order[p.argmax(axis=1)], score=p.max(axis=1), probs=probs)


def from_timm(arch: str, weights: str | Path, images: np.ndarray, idx, classes: list[str], committee_classes: list[str], *,
              size: int | None = None, device: str = "auto") -> ProductionPredictions:
    """Run timm `arch` with local `weights` on decoded pool images[idx] ((N, S, S, 3), may be memory-mapped)."""
    member = MemberConfig(arch=arch, img_size=size)
    model = create_member_model(member, len(classes), load_pretrained=False)
    weights = Path(weights)
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(weights)
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
        model.load_state_dict(state)
    except Exception as exc:
        raise DataCleanerError(f"production weights {weights}: cannot load into {arch} with {len(classes)} classes ({str(exc).splitlines()[0][:200]})") from None
    return _run_model(model, images, idx, member_preprocess(member, model), classes, committee_classes, str(weights), device)


def from_torchscript(path: str | Path, images: np.ndarray, idx, classes: list[str], committee_classes: list[str], *,
                     size: int = 224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), device: str = "auto") -> ProductionPredictions:
    """Run a TorchScript model (input: normalised RGB (B, 3, size, size); output: logits)."""
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise DataCleanerError(f"production model {path} is not a TorchScript file ({str(exc).splitlines()[0][:160]})") from None
    return _run_model(model, images, idx, Preprocess(size=size, mean=tuple(mean), std=tuple(std)), classes, committee_classes, str(path), device)
