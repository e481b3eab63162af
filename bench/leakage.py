"""`select`'s already_labeled on near duplicates: CIFAR photos that appear twice, re-cropped or re-edited.

CIFAR images 0-9,999 are the labeled set; the pool is images 10,000-19,999 plus `--copies` edited copies
of labeled images of each kind (KINDS: the near duplicates published between CIFAR-10's training and test
sets). Every pool image gets `select`'s question (is it already labeled?) under each rule, on the cpu
profile's first member's compact features and the perceptual hashes of the `clean` runs that cache them:
`review_quality.py cifar --labels clean` (the labeled half) and a run on the pool this script starts.
CROSS_PAIRS / NOT_SAME: real pool/labeled pairs judged by eye among the 60 most similar (`--sheet` draws
them); the other pool images count as unrelated (an upper bound of false marks). See docs/benchmarks.md.

    python bench/leakage.py --copies 50             # the table: clean's rule and select's
    python bench/leakage.py --copies 50 --grid      # ... and a grid of similarity and stand-out bars
    python bench/leakage.py --sheet out.png         # the 60 candidate pairs, to judge by eye
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

from harness.data import CLASSES, cifar, cifar_tree
from harness.internals import health
from harness.report import contact_sheet, table
from harness.run import run_clean
from paths import ROOT, WEIGHTS

RUNS = {"labeled": ROOT / ".bench" / "review" / "cifar-clean-0" / "run"}  # bench/review_quality.py cifar --labels clean
COPIES_HOME = ROOT / ".bench" / "leakage"  # --copies: pool of CIFAR 10,000-19,999 plus edited copies of labeled images
CANDIDATES = 60
# (pool index, labeled index) in CIFAR order among the 60 candidates, judged by eye at 96 px (`--sheet`): the same
# photo (re-cropped, re-coloured, mirrored; CIFAR holds one white car render many times over) ...
CROSS_PAIRS = [(19897, 4104), (18696, 6495), (13647, 5834), (11817, 5834), (18598, 5205), (17988, 3655), (12630, 5734),
               (14524, 5666), (18927, 2268), (19247, 7829), (17548, 8622), (11550, 8404), (13218, 7774), (12411, 2872),
               (11708, 2615), (16275, 1901), (14501, 547), (10906, 9092), (17791, 3533), (10577, 5414), (17750, 5666),
               (13152, 9266), (12071, 5666), (15971, 4785), (15636, 9934), (16189, 7173), (17869, 8388), (12564, 4044),
               (11082, 2268), (13534, 5666), (16019, 9266), (16149, 1094), (17334, 5666), (17758, 353), (16526, 8680),
               (18725, 5986), (16888, 1268), (14891, 3642)]
# ... and different photos that look alike (the other 12 candidates could not be told apart at this size: left out)
NOT_SAME = [(17355, 4410), (10114, 1930), (11583, 4410), (14093, 8866), (11322, 7560), (19181, 9774), (14365, 9657),
            (11818, 426), (12593, 5555), (17293, 5555)]


def load(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Series]:
    """(raw features (N, D) float32, views averaged; perceptual hashes (N,); CIFAR indices (N,); paths) of a clean run."""
    feats = np.asarray(np.load(sorted((run / "features").glob("tf_efficientnet_lite2-*.npy"))[0], mmap_mode="r"), dtype=np.float32)
    paths = pd.read_csv(run / "manifest.csv", dtype=str, keep_default_na=False)["path"]
    index = paths.str.extract(r"(\d+)\.png$")[0].astype(int).to_numpy()
    return feats.mean(axis=1), np.load(sorted((run / "cache").glob("health-*.npz"))[0])["phash"], index, paths


KINDS = ("recrop", "shift", "mirror", "recolour", "gray", "rescale", "combined")


def edited_copy(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """An edited copy of the (H, W, 3) uint8 image `img`, as one of KINDS."""
    h, w = img.shape[:2]
    out = Image.fromarray(img)

    def recrop(im, lo=0.72, hi=0.92):
        side = rng.uniform(lo, hi)
        cw, ch = int(round(w * side)), int(round(h * side))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return im.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.Resampling.BICUBIC)

    def recolour(im):
        im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.7, 1.3))
        im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.7, 1.3))
        return ImageEnhance.Color(im).enhance(rng.uniform(0.5, 1.5))

    if kind == "recrop":
        out = recrop(out)
    elif kind == "shift":
        dx, dy = (int(v) * int(rng.choice([-1, 1])) for v in rng.integers(2, 5, size=2))
        out = Image.fromarray(np.roll(np.roll(img, dy, axis=0), dx, axis=1))
    elif kind == "mirror":
        out = recrop(out.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 0.85, 1.0)
    elif kind == "recolour":
        out = recolour(out)
    elif kind == "gray":
        out = out.convert("L").convert("RGB")
    elif kind == "rescale":
        small = int(rng.integers(16, 24))
        out = out.resize((small, small), Image.Resampling.BILINEAR).resize((w, h), Image.Resampling.BICUBIC)
    else:  # combined: re-cropped and re-coloured
        out = recolour(recrop(out, 0.8, 0.95))
    return np.asarray(out.convert("RGB"))


def build_copies(per_kind: int, seed: int = 0) -> Path:
    """COPIES_HOME/data: CIFAR 10,000-19,999 (class folders, CIFAR's own labels) plus `per_kind` edited
    copies of each kind of distinct labeled images (0-9,999), named copy-<kind>-<labeled index>.png."""
    data = COPIES_HOME / "data"
    if (COPIES_HOME / "copies.csv").is_file():
        return data
    cifar_tree(data, np.arange(10_000, 20_000), "clean_label")
    d = cifar()
    images, labels, index = d["images"], d["clean_label"], d["index"]
    rng = np.random.default_rng(seed)
    rows = []
    for k, src in enumerate(rng.choice(10_000, size=per_kind * len(KINDS), replace=False)):
        kind = KINDS[k % len(KINDS)]
        rel = f"{CLASSES[labels[src]]}/copy-{kind}-{index[src]:05d}.png"
        Image.fromarray(edited_copy(images[src], kind, rng)).save(data / rel)
        rows.append(f"{rel},{kind},{index[src]}")
    (COPIES_HOME / "copies.csv").write_text("path,kind,labeled\n" + "\n".join(rows) + "\n")
    return data


def copies_table(rules: dict, per_kind: int) -> int:
    """Recall on the edited copies by kind, and the real by-eye pairs and unrelated pool images marked, per rule."""
    data = build_copies(per_kind)
    run = COPIES_HOME / "run"
    if not (run / "summary.json").is_file():
        run_clean(data, run, "cpu", weights_dir=str(WEIGHTS))
    lab_raw, lab_h, lab_i, _ = load(RUNS["labeled"])
    pool_raw, pool_h, pool_i, paths = load(run)
    is_copy = paths.str.contains("/copy-").to_numpy()
    kind = paths.str.extract(r"copy-([a-z]+)-")[0].fillna("").to_numpy()
    lab_f, mean = health.compact_features(lab_raw)
    pool_f, _ = health.compact_features(pool_raw, mean)
    pos_of = {int(v): k for k, v in enumerate(pool_i) if not is_copy[k]}
    sims, idx = health.nearest(pool_f[~is_copy], lab_f, k=1)
    originals = np.flatnonzero(~is_copy)
    candidates = set(originals[np.argsort(-sims[:, 0])[:CANDIDATES]].tolist())
    unrelated = np.array([k for k in originals if k not in candidates])
    same, alike = [pos_of[p] for p, _ in CROSS_PAIRS], [pos_of[p] for p, _ in NOT_SAME]
    print(f"pool: CIFAR 10,000-19,999 ({len(originals):,}) + {int(is_copy.sum())} edited copies of labeled images (0-9,999); "
          f"labeled: 0-9,999\n")
    rows = []
    for name, t in rules.items():
        partner = {}
        for q, b in health.cross_pairs(pool_h, pool_f, lab_h, lab_f, t):
            partner.setdefault(int(q), set()).add(int(lab_i[b]))
        hit = np.array([int(pool_i[k]) in partner.get(k, set()) for k in range(len(paths))])
        false = sum(int(k) in partner for k in unrelated)
        rows.append([name, *[f"{hit[kind == k].mean():.0%}" for k in KINDS], f"{hit[is_copy].mean():.0%}",
                     f"{sum(k in partner for k in same)} / {len(same)}", f"{sum(k in partner for k in alike)} / {len(alike)}",
                     f"{false} / {len(unrelated):,} ({false / len(unrelated):.2%})"])
    print(table(["rule", *KINDS, "all copies", "real pairs by eye", "look-alikes marked", "unrelated marked"], rows, "lr"))
    return 0


def candidate_sheet(path: Path, part: int) -> None:
    """The CANDIDATES most similar pool/labeled pairs (copies left out), to judge by eye."""
    lab_raw, _, lab_i, _ = load(RUNS["labeled"])
    pool_raw, _, pool_i, paths = load(COPIES_HOME / "run")
    keep = ~paths.str.contains("/copy-").to_numpy()
    lab_f, mean = health.compact_features(lab_raw)
    sims, idx = health.nearest(health.compact_features(pool_raw[keep], mean)[0], lab_f, k=1)
    top = np.argsort(-sims[:, 0])[: 2 * CANDIDATES]
    candidates = [(int(pool_i[keep][q]), int(lab_i[idx[q, 0]]), float(sims[q, 0])) for q in top]
    images, cell = cifar()["images"], 96
    pairs = [(Image.fromarray(images[p]).resize((cell, cell)), Image.fromarray(images[q]).resize((cell, cell)), f"{k} {p}/{q} {s:.2f}")
             for k, (p, q, s) in enumerate(candidates[CANDIDATES * part : CANDIDATES * part + CANDIDATES], CANDIDATES * part)]
    contact_sheet(path, pairs, cols=5, cell=cell, gap=(12, 14), margin=0)
    print(f"wrote {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=50, help="edited copies of each kind in the pool")
    ap.add_argument("--grid", action="store_true", help="also a grid of min_similarity and ratio")
    ap.add_argument("--sheet", type=Path, default=None, help="draw the candidate pairs instead")
    ap.add_argument("--part", type=int, default=0, help="with --sheet: which 60 of the candidates (0, 1)")
    args = ap.parse_args()
    if args.sheet:
        candidate_sheet(args.sheet, args.part)
        return 0
    base = health.Thresholds()
    rules = {"before: clean's pair rule": base, "now: health.leakage_thresholds": health.leakage_thresholds()}
    if args.grid:
        for sim in (0.9, 0.85, 0.8, 0.78, 0.75):
            for ratio in (0.4, 0.6, 0.8, 1.0):
                rules[f"min_similarity {sim}, ratio {ratio}"] = dataclasses.replace(base, min_similarity=sim, ratio=ratio,
                                                                                   hash_ratio=max(ratio, base.hash_ratio))
    return copies_table(rules, args.copies)


if __name__ == "__main__":
    sys.exit(main())
