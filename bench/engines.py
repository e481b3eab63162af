"""Does ONNX Runtime give the numbers torch gives? Features and review lists of the `cpu` profile on both engines.

Reads ../shared/data/ and ../shared/weights/ (beside the repository, not part of it: see
bench/paths.py). For each data set:

1. features: the cpu profile's frozen backbones on N real images (its TTA views), once through
   torch and once through ONNX Runtime, compared in float32 before the run stores them as
   float16: largest absolute difference, and the largest feature value for scale;
2. review list (with --clean): the real `clean` on the images with `engine: torch` and with
   `engine: onnxruntime`, and how their review.csv, flags and label_quality compare.

    python bench/engines.py                          # CIFAR thumbnails and imagenette photos, features only
    python bench/engines.py --clean                  # and both engines' review lists on imagenette_2k
    python bench/engines.py --clean --data cifar     # ... on CIFAR images 0-9,999 with the aggre labels
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paths import CIFAR, IMAGENETTE, WEIGHTS  # noqa: E402


def real_images(data: str, n: int, size: int) -> np.ndarray:
    """(n, size, size, 3) uint8: CIFAR thumbnails or imagenette photos, decoded as `clean` decodes them."""
    from datacleaner.dataset import decode_images, find_labeled_images

    if data == "cifar":
        from PIL import Image

        thumbs = np.load(CIFAR)["images"][:n]
        return np.stack([np.asarray(Image.fromarray(t).resize((size, size), Image.BILINEAR)) for t in thumbs])
    labeled = find_labeled_images(IMAGENETTE / "images")
    pick = np.linspace(0, len(labeled.paths) - 1, n).astype(int)
    files = [labeled.absolute(int(i)) for i in pick]
    images, problems = decode_images(files, size)[:2]
    assert not problems, problems
    return images


def feature_gaps(data: str, n: int) -> list[dict]:
    import torch

    from datacleaner import engines
    from datacleaner.config import load_config
    from datacleaner.models import create_member_model, member_preprocess
    from datacleaner.predict import predict_logits
    from datacleaner.runtime import configure
    from datacleaner.weights import resolve_weights

    configure(2)
    cfg = load_config("cpu", {"weights_dir": WEIGHTS})
    pretrained = resolve_weights(cfg)
    rows = []
    for m in cfg.members:
        prep = member_preprocess(m)
        images = real_images(data, n, prep.size)
        model = create_member_model(m, 10, pretrained_path=pretrained.get(m.label)).eval()
        backbone, run = engines.onnx_backbone(model, prep.size)
        args = (model, images, np.arange(len(images)), prep, cfg.tta, cfg.augment)
        kw = dict(device=torch.device("cpu"), seed=cfg.seed, features=True)
        ref = predict_logits(*args, **kw)
        got = predict_logits(*args, **kw, backbone=backbone)
        rows.append({"data": data, "member": m.label, "images": n, "px": prep.size, "max_abs_diff": float(np.abs(got - ref).max()),
                     "max_abs_feature": float(np.abs(ref).max()), "engine": run.engine})
    return rows


def clean_both(data: str, work: Path) -> dict:
    """Both engines' `clean` on the data (cpu profile) and how their review lists compare."""
    from datacleaner.config import load_config
    from datacleaner.progress import QUIET
    from datacleaner.runs import clean

    if data == "cifar":
        from real_noise import write_tree

        arrays = np.load(CIFAR)
        tree = work / "cifar-aggre-0-10000"
        write_tree(tree, arrays["images"][:10000], arrays["aggre_label"][:10000], arrays["index"][:10000])
    else:
        tree = IMAGENETTE / "images"
    out = {}
    for engine in ("torch", "onnxruntime"):
        run = work / f"{data}-{engine}"
        cfg = load_config("cpu", {"weights_dir": WEIGHTS, "engine": engine, "threads": 2})
        t = time.perf_counter()
        result = clean(tree, run, cfg, progress=QUIET)
        out[engine] = {"run": run, "seconds": time.perf_counter() - t, "summary": result.summary}
    a, b = (pd.read_csv(out[e]["run"] / "scores.csv", keep_default_na=False).set_index("path").sort_index() for e in out)
    ra, rb = (pd.read_csv(out[e]["run"] / "review.csv", keep_default_na=False) for e in out)
    sa, sb = set(ra["path"]), set(rb["path"])
    return {
        "data": data, "images": len(a), "torch_s": out["torch"]["seconds"], "ort_s": out["onnxruntime"]["seconds"],
        "review_torch": len(ra), "review_ort": len(rb), "shared": len(sa & sb),
        "only_torch": sorted(sa - sb), "only_ort": sorted(sb - sa),
        "same_order": list(ra["path"]) == list(rb["path"]),
        "max_label_quality_diff": float((a["label_quality"] - b["label_quality"]).abs().max()),
        "suggested_differs": int((a["suggested_label"] != b["suggested_label"]).sum()),
        "engines": out["onnxruntime"]["summary"].get("engines"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["cifar", "imagenette"], choices=["cifar", "imagenette"])
    ap.add_argument("--n", type=int, default=512, help="images whose features are compared")
    ap.add_argument("--clean", action="store_true", help="also run `clean` on both engines (imagenette: 2,000 photos; "
                                                         "cifar: images 0-9,999 with the aggre labels)")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "datacleaner-engines")
    args = ap.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    print("| data | member | px | images | largest difference | largest feature |")
    print("|---|---|---:|---:|---:|---:|")
    for data in args.data:
        for r in feature_gaps(data, args.n):
            print(f"| {r['data']} | {r['member']} | {r['px']} | {r['images']} | {r['max_abs_diff']:.1e} | "
                  f"{r['max_abs_feature']:.1f} |", flush=True)
    if args.clean:
        print("\n| data | images | review rows torch / ONNX Runtime | shared | same order | largest label_quality difference | suggested label differs | wall s torch / ONNX Runtime |")
        print("|---|---:|---|---:|---|---:|---:|---|")
        for data in args.data:
            r = clean_both(data, args.work)
            print(f"| {r['data']} | {r['images']:,} | {r['review_torch']} / {r['review_ort']} | {r['shared']} | "
                  f"{'yes' if r['same_order'] else 'no'} | {r['max_label_quality_diff']:.1e} | {r['suggested_differs']} | "
                  f"{r['torch_s']:.0f} / {r['ort_s']:.0f} |", flush=True)
            for side in ("only_torch", "only_ort"):
                if r[side]:
                    print(f"  {side}: {', '.join(r[side][:20])}", flush=True)


if __name__ == "__main__":
    main()
