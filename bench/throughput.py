"""Training and TTA-prediction throughput of one member against a plain timm loop, on the CPU or a GPU.

The plain loop is the upper bound a data pipeline can reach: the same timm model, batch size, optimizer and
precision, fed batches already normalised and resident on the device, no augmentation. Ours is
`train_member` (the uint8 cache, albumentations, the loader). Printed: ours as a fraction of the plain
loop, and TTA prediction images/s. See docs/benchmarks.md.

    python bench/throughput.py                                  # resnet18 at 32 px on CIFAR images
    python bench/throughput.py --arch resnet50 --size 224 --images 20000 --compile   # on a GPU
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from harness.data import cifar
from harness.internals import (AugmentConfig, MemberConfig, TTAConfig, autocast, compiled, configure, create_member_model,
                               make_optimizer, member_preprocess, predict_logits, resolve_device, train_member)
from harness.report import table
from paths import CIFAR  # ../shared/data beside the repository (optional here)


def images_at(size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n CIFAR images resized to size (or random pixels when the shared data is absent), labels."""
    import cv2

    if CIFAR.is_file():
        imgs, labels = cifar()["images"][:n], cifar()["clean_label"][:n]
    else:
        rng = np.random.default_rng(0)
        imgs, labels = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)
    if size != imgs.shape[1]:
        imgs = np.stack([cv2.resize(a, (size, size), interpolation=cv2.INTER_LINEAR) for a in imgs])
    return np.ascontiguousarray(imgs), labels.astype(np.int64)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(member: MemberConfig, images, labels, device, steps: int, compile: bool) -> float:
    """Images/s of the textbook loop on device-resident, pre-normalised batches."""
    prep = member_preprocess(member)
    model = create_member_model(member, 10, load_pretrained=False, seed=0).to(device).to(memory_format=torch.channels_last)
    model.train()
    net = compiled(model, device) if compile else model
    opt = make_optimizer(model, member)
    mean, std = prep.tensors(device)
    x_all = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div(255)
    x_all = ((x_all - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)).contiguous(memory_format=torch.channels_last)
    y_all = torch.from_numpy(labels).to(device)
    bs = member.batch_size
    g = torch.Generator(device="cpu").manual_seed(0)

    def step():
        idx = torch.randint(0, len(images), (bs,), generator=g).to(device)
        with autocast(device, member.amp):
            loss = torch.nn.functional.cross_entropy(net(x_all[idx]), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):  # warm-up (and compilation)
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * bs / (time.perf_counter() - start)


def ours(member: MemberConfig, images, labels, device, compile: bool) -> float:
    """Images/s of train_member over one epoch of the images (after a short warm-up epoch)."""
    prep = member_preprocess(member)
    aug = AugmentConfig()
    workers = 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)
    model = create_member_model(member, 10, load_pretrained=False, seed=0)
    warm = MemberConfig(**{**member.__dict__, "epochs": 1})
    train_member(model, images, labels, np.arange(min(len(images), 10 * member.batch_size)), warm, aug, prep,
                 device=device, seed=0, workers=workers, compile=compile)
    sync(device)
    start = time.perf_counter()
    train_member(model, images, labels, np.arange(len(images)), warm, aug, prep, device=device, seed=1,
                 workers=workers, compile=compile)
    sync(device)
    return len(images) / (time.perf_counter() - start)


def predict_rate(member: MemberConfig, images, device, views: int, compile: bool) -> float:
    prep = member_preprocess(member)
    model = create_member_model(member, 10, load_pretrained=False, seed=0)
    tta = TTAConfig(mode="deterministic", views=views)
    idx = np.arange(len(images))
    predict_logits(model, images, idx[:256], prep, tta, AugmentConfig(), device=device, seed=0, compile=compile)
    sync(device)
    start = time.perf_counter()
    predict_logits(model, images, idx, prep, tta, AugmentConfig(), device=device, seed=0, compile=compile)
    sync(device)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true", help="torch.compile both loops (CUDA only)")
    args = ap.parse_args()
    configure(0)
    device = resolve_device(args.device)
    member = MemberConfig(arch=args.arch, img_size=args.size, batch_size=args.batch_size, epochs=1, warmup_epochs=0)
    images, labels = images_at(args.size, args.images)
    plain = plain_loop(member, images, labels, device, steps=max(10, args.images // args.batch_size), compile=args.compile)
    mine = ours(member, images, labels, device, args.compile)
    pred = predict_rate(member, images, device, args.views, args.compile)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n{args.arch} at {args.size} px, batch {args.batch_size}, {args.images:,} images, {name}"
          f"{', bf16 autocast' if device.type == 'cuda' else ''}{', torch.compile' if args.compile else ''}\n")
    print(table(["loop", "train img/s", "fraction of plain"], [
        ["plain timm loop (device-resident batches, no augmentation)", f"{plain:,.0f}", "100%"],
        ["datacleaner train_member (uint8 cache, albumentations, loader)", f"{mine:,.0f}", f"{mine / plain:.0%}"]], "lr"))
    print(f"\nTTA prediction, {args.views} views per image: {pred:,.0f} img/s ({pred * args.views:,.0f} img-view/s)")


if __name__ == "__main__":
    main()
