"""`select`'s already_labeled on real near duplicates: CIFAR-10 photos that appear twice, re-cropped or re-edited.

CIFAR-10's training set holds the same photo more than once (re-cropped, re-coloured, re-scaled). This
script takes two halves of ../shared/data/cifar10n_20k.npz (beside the repository, see bench/paths.py):
images 0-9,999 as the labeled set and 10,000-19,999 as the pool, and asks of every pool image what
`select` asks: is it already in the labeled set? It reuses the backbone features (the cpu profile's
first member, TTA views averaged) and perceptual hashes that `clean` cached in the runs of
bench/review_quality.py (`cifar --labels aggre` and `cifar --labels clean --offset 10000`), and makes
the compact features as `train` and `select` do (centred on the labeled images' mean).

Ground truth: CROSS_PAIRS, pool/labeled pairs judged the same photo by eye among the 120 most similar
cross pairs by feature similarity whatever the rule says (`--sheet` draws them), and NOT_SAME, the
pairs among them judged different photos. A pool image counts as unrelated when none of the 120
candidates it is part of was judged the same photo.

Rules compared: the hash and feature rule before (hash within max_bits, or the feature rule with the
query's own look-alike test), and health.cross_pairs (every pair must stand out from the look-alikes
around the pool image, hash pairs too).

    python bench/leakage.py                 # the table
    python bench/leakage.py --sheet out.png # the 120 candidate pairs, to judge by eye
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from datacleaner import health  # noqa: E402

from paths import CIFAR, ROOT  # noqa: E402

RUNS = {"labeled": ROOT / ".bench" / "review" / "cifar-aggre-0" / "run",
        "pool": ROOT / ".bench" / "review" / "cifar-clean-10000" / "run"}
CANDIDATES = 120
# (pool index, labeled index) in CIFAR order, judged the same photo by eye (see the module docstring)
CROSS_PAIRS: list[tuple[int, int]] = []
NOT_SAME: list[tuple[int, int]] = []


def load(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw features (N, D) float32, views averaged; perceptual hashes (N,); CIFAR indices (N,)) of a clean run."""
    import pandas as pd

    member = sorted(glob.glob(str(run / "features" / "tf_efficientnet_lite2-*.npy")))[0]
    raw = np.load(member, mmap_mode="r")
    feats = np.asarray(raw, dtype=np.float32).mean(axis=1)
    facts = np.load(sorted(glob.glob(str(run / "cache" / "health-*.npz")))[0])
    paths = pd.read_csv(run / "manifest.csv", dtype=str, keep_default_na=False)["path"]
    index = paths.str.extract(r"(\d+)\.png$")[0].astype(int).to_numpy()
    return feats, facts["phash"], index


def old_rule(q_h, q_f, b_h, b_f, t: health.Thresholds) -> np.ndarray:
    """(P, 2) pairs as select found them before: hashes within max_bits, or close_pairs (query-side test only)."""
    both = np.concatenate([q_h, b_h])
    cross = health.hash_pairs(both, t.max_bits)
    found = [cross[(cross[:, 0] < len(q_h)) & (cross[:, 1] >= len(q_h))] - [0, len(q_h)]]
    sims, idx = health.nearest(q_f, b_f, k=t.neighbours)
    rows, cols = np.nonzero(health.close_pairs(sims, idx, q_h, b_h, t))
    found.append(np.stack([rows, idx[rows, cols]], axis=1))
    return np.unique(np.concatenate(found).astype(np.int64), axis=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sheet", type=Path, default=None)
    args = ap.parse_args()
    lab_raw, lab_h, lab_i = load(RUNS["labeled"])
    pool_raw, pool_h, pool_i = load(RUNS["pool"])
    lab_f, mean = health.compact_features(lab_raw)
    pool_f, _ = health.compact_features(pool_raw, mean)
    sims, idx = health.nearest(pool_f, lab_f, k=1)
    top = np.argsort(-sims[:, 0])[:CANDIDATES]
    candidates = [(int(pool_i[q]), int(lab_i[idx[q, 0]]), float(sims[q, 0])) for q in top]
    if args.sheet:
        from PIL import Image, ImageDraw

        images = np.load(CIFAR)["images"]
        cols, cell = 6, 72
        sheet = Image.new("RGB", (cols * (2 * cell + 12), -(-len(candidates) // cols) * (cell + 14)), "white")
        draw = ImageDraw.Draw(sheet)
        for k, (p, q, s) in enumerate(candidates):
            x, y = (k % cols) * (2 * cell + 12), (k // cols) * (cell + 14)
            sheet.paste(Image.fromarray(images[p]).resize((cell, cell)), (x, y))
            sheet.paste(Image.fromarray(images[q]).resize((cell, cell)), (x + cell, y))
            draw.text((x, y + cell), f"{k} {p}/{q} {s:.2f}", fill="black")
        sheet.save(args.sheet)
        print(f"wrote {args.sheet}")
        return 0
    pos_of = {int(v): k for k, v in enumerate(pool_i)}
    lab_of = {int(v): k for k, v in enumerate(lab_i)}
    same = {(pos_of[p], lab_of[q]) for p, q in CROSS_PAIRS}
    related = {pos_of[p] for p, _, _ in candidates if (p, _) in set(CROSS_PAIRS)} | {a for a, _ in same}
    unrelated = np.setdiff1d(np.arange(len(pool_i)), [pos_of[p] for p, _, _ in candidates])
    t = health.Thresholds()
    rows = []
    for name, pairs in (("before: hash or feature rule", old_rule(pool_h, pool_f, lab_h, lab_f, t)),
                        ("now: health.cross_pairs", health.cross_pairs(pool_h, pool_f, lab_h, lab_f, t))):
        marked = set(pairs[:, 0].tolist())
        found = sum(a in marked for a, _ in same)
        false = int(np.isin(unrelated, list(marked)).sum())
        rows.append(f"| {name} | {found} / {len(same)} ({found / max(len(same), 1):.0%}) | {false} / {len(unrelated):,} "
                    f"({false / len(unrelated):.2%}) | {len(marked):,} |")
    print(f"pool {len(pool_i):,} images (CIFAR 10,000-19,999), labeled {len(lab_i):,} (0-9,999); "
          f"{len(same)} pool images are real near duplicates of labeled ones (judged by eye), {len(related)} related\n")
    print("| rule | real near duplicates marked already_labeled | unrelated pool images marked | pool images marked |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
