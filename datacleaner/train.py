"""The one training loop for one member.  [torch]

Images come from the decoded cache (uint8 (N, S, S, 3)); each batch is augmented
with the member's seeded albumentations pipeline, reseeded per (epoch, batch) so
the result does not depend on how many loader workers run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import numpy as np
import torch

from .augment import to_model_input, train_transform
from .config import AugmentConfig, MemberConfig
from .models import MemberLoss, Preprocess, lr_factor, make_optimizer


class AugmentedBatches(torch.utils.data.Dataset):
    """Batch b of one epoch: (uint8 (B, size, size, 3), int64 (B,)) with seeded augmentation."""

    def __init__(self, images, labels, order: np.ndarray, batch_size: int, aug: AugmentConfig, size: int, seed: int):
        self.images, self.labels, self.order = images, labels, order
        self.batch_size, self.seed = batch_size, seed
        self.transform = train_transform(aug, size, seed)
        n = len(order)
        self.n_batches = n // batch_size + (1 if n % batch_size >= 2 else 0)  # BatchNorm needs >= 2 images

    def __len__(self) -> int:
        return self.n_batches

    def __getitem__(self, b: int):
        idx = np.sort(self.order[b * self.batch_size : (b + 1) * self.batch_size])  # sorted: cache locality
        self.transform.set_random_seed(self.seed * 100003 + b)
        batch = np.stack([self.transform(image=self.images[i])["image"] for i in idx])
        return torch.from_numpy(batch), torch.from_numpy(self.labels[idx])


def autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def train_member(
    model: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    train_idx: np.ndarray,
    member: MemberConfig,
    aug: AugmentConfig,
    prep: Preprocess,
    *,
    device: torch.device,
    seed: int,
    workers: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> torch.nn.Module:
    """Train `model` in place on images[train_idx] and return it in eval mode.

    images: (N, S, S, 3) uint8; labels: (N,) int64. Seeds torch and the augmentation
    from `seed` alone, so the same member and round train the same whatever ran before.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(device).to(memory_format=torch.channels_last).train()
    optimizer = make_optimizer(model, member)
    loss_fn = MemberLoss(label_smoothing=member.label_smoothing, focal_gamma=member.focal_gamma, flooding=member.flooding)
    bs = min(member.batch_size, len(train_idx))
    steps_per_epoch = max(1, len(train_idx) // bs + (1 if len(train_idx) % bs >= 2 else 0))
    total = steps_per_epoch * member.epochs
    warmup = int(round(member.warmup_epochs * steps_per_epoch))
    cycle = (member.restart_epochs or member.epochs) * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total=total, warmup=warmup, schedule=member.schedule, cycle=cycle)
    )
    use_scaler = device.type == "cuda" and member.amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    mean, std = prep.tensors(device)
    labels = np.asarray(labels, dtype=np.int64)
    for epoch in range(member.epochs):
        batches = AugmentedBatches(
            images, labels, rng.permutation(train_idx), bs, aug, prep.size, seed=seed * 1000 + epoch
        )
        loader = torch.utils.data.DataLoader(
            batches, batch_size=None, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        total_loss, seen = 0.0, 0
        for x_uint8, y in loader:
            x = to_model_input(x_uint8.to(device, non_blocking=True), mean, std)
            y = y.to(device, non_blocking=True)
            with autocast(device, member.amp):
                loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            scheduler.step()
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} in epoch {epoch + 1}; lower the lr")
            total_loss += loss.item() * len(y)
            seen += len(y)
            if on_step is not None:
                on_step(epoch, loss.item())
        if on_epoch is not None:
            on_epoch(epoch, total_loss / max(1, seen))
    return model.eval()
