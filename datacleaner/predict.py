"""TTA outputs of one model for a set of images: (n, V, C) logits.  [torch -> numpy boundary]"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .augment import make_views, view_params
from .config import AugmentConfig, TTAConfig
from .engines import OnnxBackbone, classifier
from .models import Preprocess
from .training import autocast, compiled


def default_batch_size(device: torch.device, size: int = 128) -> int:
    """Views per forward pass: small batches stay in the CPU's caches (bench/speed.py); a GPU wants many.
    On the CPU 64 views up to 128 px, fewer above (32 at 160 px, 16 at 224 px), so a pass holds about the
    same activations at any size: at 160 px, 32 views ran as fast as 64 with 0.5-0.8 GB less memory."""
    if device.type != "cpu":
        return 1024
    return int(max(16, min(64, 2 ** int(np.log2(64 * (128 / max(size, 1)) ** 2)))))


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    images: np.ndarray,
    idx: np.ndarray,
    prep: Preprocess,
    tta: TTAConfig,
    aug: AugmentConfig,
    *,
    device: torch.device,
    seed: int,
    batch_size: int | None = None,
    amp: bool = True,
    on_batch: Callable[[int], None] | None = None,
    features: bool = False,
    view_index: np.ndarray | None = None,
    compile: bool = False,
    backbone: OnnxBackbone | None = None,
) -> np.ndarray:
    """(len(idx), V, C) float32 logits of `model` on V views of images[idx]; with `features`,
    (len(idx), V, D) penultimate features (timm's pre-logits) instead.

    All V views of a batch go through the model in one forward pass. View parameters
    depend only on (seed, image index, view), never on batching; `view_index` (len(idx),)
    gives the indices views are drawn for when `images` is a shard of a larger set.
    Inputs go to the GPU from pinned memory without blocking; with `compile` (CUDA only) the
    model runs through torch.compile.
    """
    model.to(device).to(memory_format=torch.channels_last).eval()
    net = compiled(model, device) if compile and backbone is None else model
    head = classifier(model) if backbone is not None and not features else None
    if backbone is not None and not features and head is None:
        backbone = None  # no linear classifier to put on its features: torch runs the whole model
    mean, std = prep.tensors(device)
    V = tta.views
    per_batch = max(1, (batch_size or default_batch_size(device, prep.size)) // V)  # images per forward pass
    chunks = []
    pin = device.type == "cuda"
    for start in range(0, len(idx), per_batch):
        batch_idx = idx[start : start + per_batch]
        keys = batch_idx if view_index is None else view_index[start : start + per_batch]
        params = view_params(keys, V, mode=tta.mode, aug=aug, seed=seed)  # (B, V, 10)
        x = torch.from_numpy(np.ascontiguousarray(images[batch_idx]))  # (B, S, S, 3) uint8
        if pin:
            x = x.pin_memory()
        views = make_views(x.to(device, non_blocking=True), params, prep.size, mean, std)  # (B*V, 3, s, s)
        if backbone is not None:
            f = backbone(views)  # (B*V, D) float32
            out = f if features else f @ head[0].T + head[1]  # (B*V, D or C)
        else:
            with autocast(device, amp):
                if features:
                    out = model.forward_head(net.forward_features(views), pre_logits=True).flatten(1)  # (B*V, D)
                else:
                    out = net(views)  # (B*V, C)
            out = out.float().cpu().numpy()
        chunks.append(out.reshape(len(batch_idx), V, -1))  # (B, V, C or D)
        if on_batch is not None:
            on_batch(len(batch_idx))
    if not chunks:
        width = model.num_features if features else getattr(model, "num_classes", 0)
        return np.zeros((0, V, width), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32)


@torch.inference_mode()
def predict_features(
    model: torch.nn.Module, images: np.ndarray, prep: Preprocess, *, device: torch.device, batch_size: int = 256,
    backbone: OnnxBackbone | None = None,
) -> np.ndarray:
    """(N, D) penultimate features (timm's pre-logits) of the unaugmented images (N, S, S, 3); through
    `backbone` (the model's backbone on ONNX Runtime) when given."""
    from .config import AugmentConfig

    model.to(device).to(memory_format=torch.channels_last).eval()
    mean, std = prep.tensors(device)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        params = view_params(np.arange(len(batch)), 1, mode="deterministic", aug=AugmentConfig(), seed=0)
        x = make_views(torch.from_numpy(np.ascontiguousarray(batch)).to(device), params, prep.size, mean, std)
        if backbone is not None:
            chunks.append(backbone(x))
        else:
            feats = model.forward_head(model.forward_features(x), pre_logits=True)
            chunks.append(feats.float().flatten(1).cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
