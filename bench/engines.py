"""Does ONNX Runtime give the features torch gives? The cpu profile's frozen backbones on real images.

For each data set, the cpu profile's backbones on N real images (its TTA views), once through torch and
once through ONNX Runtime, compared in float32 before a run stores them as float16: the largest absolute
difference, and the largest feature value for scale. See docs/benchmarks.md.

    python bench/engines.py                          # CIFAR thumbnails and imagenette photos
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from datacleaner.config import load_config

from harness.data import cifar
from harness.report import table
from harness.run import member_model
from paths import IMAGENETTE, WEIGHTS


def real_images(data: str, n: int, size: int) -> np.ndarray:
    """(n, size, size, 3) uint8: CIFAR thumbnails or imagenette photos, decoded as `clean` decodes them."""
    from harness.internals import decode_images, find_labeled_images

    if data == "cifar":
        from PIL import Image

        return np.stack([np.asarray(Image.fromarray(t).resize((size, size), Image.BILINEAR)) for t in cifar()["images"][:n]])
    labeled = find_labeled_images(IMAGENETTE / "images")
    files = [labeled.absolute(int(i)) for i in np.linspace(0, len(labeled.paths) - 1, n).astype(int)]
    images, problems = decode_images(files, size)[:2]
    assert not problems, problems
    return images


def feature_gaps(data: str, n: int) -> list[list]:
    import torch

    from harness.internals import configure, onnx_backbone, predict_logits

    configure(2)
    cfg = load_config("cpu", {"weights_dir": WEIGHTS})
    rows = []
    for m in cfg.members:
        model, prep = member_model(m)
        images = real_images(data, n, prep.size)
        backbone, run = onnx_backbone(model, prep.size)
        args = (model, images, np.arange(len(images)), prep, cfg.tta, cfg.augment)
        kw = dict(device=torch.device("cpu"), seed=cfg.seed, features=True)
        ref = predict_logits(*args, **kw)
        got = predict_logits(*args, **kw, backbone=backbone)
        rows.append([data, m.label, prep.size, n, f"{np.abs(got - ref).max():.1e}", f"{np.abs(ref).max():.1f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["cifar", "imagenette"], choices=["cifar", "imagenette"])
    ap.add_argument("--n", type=int, default=512, help="images whose features are compared")
    args = ap.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    print(table(["data", "member", "px", "images", "largest difference", "largest feature"],
                [row for data in args.data for row in feature_gaps(data, args.n)], "llr"), flush=True)


if __name__ == "__main__":
    main()
