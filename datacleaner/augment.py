"""Training augmentation (albumentations, per image) and TTA views (batched tensor ops).

Both draw from one family set in `AugmentConfig`: random resized crop, flips, small
rotation, colour jitter. Images arrive as the decoded cache: uint8 (B, S, S, 3).
TTA views are built for a whole batch at once with one `affine_grid`/`grid_sample`
(crop + flip + rotation + resize in one op), never one forward pass per view.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .config import AugmentConfig, deterministic_views



def train_transform(aug: AugmentConfig, size: int, seed: int) -> A.Compose:
    """Seeded albumentations pipeline: uint8 HWC in, uint8 (size, size, 3) out."""
    steps = [
        A.RandomResizedCrop(size=(size, size), scale=tuple(aug.scale), ratio=tuple(aug.ratio)),
        A.HorizontalFlip(p=aug.hflip),
        A.VerticalFlip(p=aug.vflip),
    ]
    if aug.rotate > 0:
        steps.append(A.Rotate(limit=aug.rotate, border_mode=cv2.BORDER_REFLECT_101, p=1.0))
    if max(aug.brightness, aug.contrast, aug.saturation, aug.hue) > 0:
        steps.append(
            A.ColorJitter(brightness=aug.brightness, contrast=aug.contrast, saturation=aug.saturation, hue=aug.hue, p=1.0)
        )
    return A.Compose(steps, seed=seed)


def to_model_input(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> normalised float (B, 3, H, W), channels-last."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    return x.contiguous(memory_format=torch.channels_last)


def _uniform(seed: int, index: np.ndarray, view: int, slot: int) -> np.ndarray:
    """Counter-based uniforms in [0, 1): the same (seed, image, view, slot) always gives the same number,
    whatever the batch an image lands in."""
    with np.errstate(over="ignore"):
        x = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + index.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
        x = x + np.uint64(view * 131 + slot + 1) * np.uint64(0x94D049BB133111EB)
        for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):  # splitmix64 finaliser
            x = (x ^ (x >> np.uint64(shift))) * np.uint64(mult)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def view_params(index: np.ndarray, views: int, *, mode: str, aug: AugmentConfig, seed: int) -> np.ndarray:
    """(B, V, 10) view parameters for images `index`: zoom_x, zoom_y, centre_x, centre_y,
    flip_x, flip_y (+1/-1), angle (radians), brightness, contrast, saturation factors.

    "deterministic": the first V of DETERMINISTIC_VIEWS. "augment": view 0 is the
    image itself, the others are seeded draws from the training family.
    """
    B = len(index)
    out = np.zeros((B, views, 10), dtype=np.float64)
    out[..., 0:2] = 1.0
    out[..., 4:6] = 1.0
    out[..., 7:10] = 1.0  # brightness, contrast, saturation factors
    if mode == "deterministic":
        allowed = deterministic_views(aug)
        if views > len(allowed):
            raise ValueError(
                f"deterministic TTA has {len(allowed)} views for this augmentation (flips only where training flips); "
                f"asked for {views}"
            )
        for v, (_, zoom, cx, cy, hf, vf) in enumerate(allowed[:views]):
            out[:, v] = [zoom, zoom, cx, cy, -1.0 if hf else 1.0, -1.0 if vf else 1.0, 0.0, 1.0, 1.0, 1.0]
        return out
    for v in range(1, views):  # view 0 is the unaugmented image
        u = [_uniform(seed, index, v, s) for s in range(10)]
        lo, hi = aug.scale
        area = lo + (hi - lo) * u[0]
        log_r = math.log(aug.ratio[0]) + (math.log(aug.ratio[1]) - math.log(aug.ratio[0])) * u[1]
        zx = np.clip(np.sqrt(area * np.exp(log_r)), 0.05, 1.0)
        zy = np.clip(np.sqrt(area / np.exp(log_r)), 0.05, 1.0)
        out[:, v, 0], out[:, v, 1] = zx, zy
        out[:, v, 2] = (2 * u[2] - 1) * (1 - zx)
        out[:, v, 3] = (2 * u[3] - 1) * (1 - zy)
        out[:, v, 4] = np.where(u[4] < aug.hflip, -1.0, 1.0)
        out[:, v, 5] = np.where(u[5] < aug.vflip, -1.0, 1.0)
        out[:, v, 6] = np.deg2rad((2 * u[6] - 1) * aug.rotate)
        out[:, v, 7] = 1 + (2 * u[7] - 1) * aug.brightness
        out[:, v, 8] = 1 + (2 * u[8] - 1) * aug.contrast
        out[:, v, 9] = 1 + (2 * u[9] - 1) * aug.saturation
    return out


def _flips_only(params: np.ndarray) -> bool:
    """True when every view is the whole image, unrotated, colours unchanged (flips allowed)."""
    return bool(np.all(params[..., 0:2] == 1) and np.all(params[..., [2, 3, 6]] == 0) and np.all(params[..., 7:10] == 1))


def make_views(
    images: torch.Tensor, params: np.ndarray, size: int, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """uint8 (B, S, S, 3) + view params (B, V, 10) -> normalised (B * V, 3, size, size), channels-last,
    ordered image-major (all views of image 0 first)."""
    B, V = params.shape[:2]
    p = torch.as_tensor(params, dtype=torch.float32, device=images.device).reshape(B * V, 10)
    x = images.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, S, S)
    x = x.repeat_interleave(V, dim=0)  # (B*V, 3, S, S)
    if images.shape[1] == size and _flips_only(params):  # identity and flips: exact, no resampling
        for dim, col in ((3, 4), (2, 5)):
            flip = p[:, col] < 0
            if flip.any():
                x[flip] = x[flip].flip(dim)
        x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        return x.contiguous(memory_format=torch.channels_last)
    cos, sin = torch.cos(p[:, 6]), torch.sin(p[:, 6])
    theta = torch.stack(
        [
            torch.stack([p[:, 0] * p[:, 4] * cos, -p[:, 1] * p[:, 5] * sin, p[:, 2]], dim=1),
            torch.stack([p[:, 0] * p[:, 4] * sin, p[:, 1] * p[:, 5] * cos, p[:, 3]], dim=1),
        ],
        dim=1,
    )  # (B*V, 2, 3)
    grid = F.affine_grid(theta, [B * V, 3, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if not torch.all(p[:, 7:10] == 1):
        gray_w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        x = x * p[:, 7].view(-1, 1, 1, 1)
        m = (x * gray_w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        x = (x - m) * p[:, 8].view(-1, 1, 1, 1) + m
        g = (x * gray_w).sum(1, keepdim=True)
        x = ((x - g) * p[:, 9].view(-1, 1, 1, 1) + g).clamp_(0, 1)
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    return x.contiguous(memory_format=torch.channels_last)
