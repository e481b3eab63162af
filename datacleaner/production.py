"""The production model's view of a pool, in any of three forms, mapped onto the committee's classes.

(a) a predictions CSV from any system: path,label,score, optionally one probability column per
    class (named as the class, or `prob_<class>`);
(b) a timm architecture plus a weights file (safetensors or a state dict);
(c) an exported program (`torch.export.save`, `.pt2`), or a TorchScript file (`torch.jit.save`;
    torch deprecates TorchScript, so .pt2 is the form to move to).
For (b) and (c) the class names come from `classes` (default: the committee's, in order).
"""

from __future__ import annotations

import warnings
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


class ExportedModel(torch.nn.Module):
    """An exported program (torch.export) as a module predict_logits can run. Its graph has no train or
    eval mode (it was exported in one) and keeps its memory format; a program exported for one batch
    size runs any number of images in pieces of that size, the last one padded."""

    def __init__(self, program):
        super().__init__()
        self.__dict__["run"] = program.module()  # not a sub-module: .eval() would reach it, and it refuses
        shape = _input_shape(program)
        self.batch = shape[0] if shape and isinstance(shape[0], int) else None
        self.size = shape[-1] if shape and isinstance(shape[-1], int) else None

    def train(self, mode: bool = True):
        return self

    def to(self, *args, **kwargs):
        device = kwargs.get("device", next((a for a in args if isinstance(a, (str, torch.device))), None))
        if device is not None:
            self.__dict__["run"] = self.run.to(device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch is None or len(x) == self.batch:
            return self.run(x)
        out = []
        for start in range(0, len(x), self.batch):
            part = x[start:start + self.batch]
            n = len(part)
            if n < self.batch:
                part = torch.cat([part, part[-1:].expand(self.batch - n, *part.shape[1:])])
            out.append(self.run(part.contiguous())[:n])
        return torch.cat(out)


def _input_shape(program) -> list | None:
    """The exported program's image input shape, an int per fixed dimension (None: not found)."""
    inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in inputs and hasattr(node.meta.get("val"), "shape"):
            return [int(d) if isinstance(d, int) else None for d in node.meta["val"].shape]
    return None


def load_production_model(path: str | Path) -> torch.nn.Module:
    """A `.pt2` exported program (ExportedModel) or a TorchScript file, on the CPU."""
    path = Path(path)
    if path.suffix.lower() == ".pt2":
        try:
            return ExportedModel(torch.export.load(str(path)))
        except Exception as exc:
            raise DataCleanerError(f"production model {path} is not a torch.export program ({str(exc).splitlines()[0][:160]}); "
                                   "save one with torch.export.save(torch.export.export(model, (example,)), 'model.pt2')") from None
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript; the files users have keep working
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise DataCleanerError(
            f"production model {path} is neither a TorchScript file nor a .pt2 exported program "
            f"({str(exc).splitlines()[0][:160]}); pass a predictions CSV, timm weights with --production-arch, "
            "or a model saved with torch.export.save as .pt2") from None


def from_model_file(path: str | Path, images: np.ndarray, idx, classes: list[str], committee_classes: list[str], *,
                     size: int | None = None, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                     device: str = "auto") -> ProductionPredictions:
    """Run a `.pt2` exported program or a TorchScript model (input: normalised RGB (B, 3, size, size);
    output: logits). `size`: None takes a program's own fixed input size, else 224."""
    model = load_production_model(path)
    size = size or getattr(model, "size", None) or 224
    return _run_model(model, images, idx, Preprocess(size=size, mean=tuple(mean), std=tuple(std)), classes, committee_classes, str(path), device)
