"""`select`'s already_labeled on real near duplicates: CIFAR-10 photos that appear twice, re-cropped or re-edited.

CIFAR-10's training set holds the same photo more than once (re-cropped, re-coloured, re-scaled). This
script takes two halves of ../shared/data/cifar10n_20k.npz (beside the repository, see bench/paths.py):
images 0-9,999 as the labeled set and 10,000-19,999 as the pool, and asks of every pool image what
`select` asks: is it already in the labeled set? It reuses the backbone features (the cpu profile's
first member, TTA views averaged) and perceptual hashes that `clean` cached in the runs of
bench/review_quality.py (`cifar --labels aggre` and `cifar --labels clean --offset 10000`), and makes
the compact features as `train` and `select` do (centred on the labeled images' mean).

Ground truth: CROSS_PAIRS, pool/labeled pairs judged the same photo by eye among the 60 most similar
cross pairs by feature similarity, whatever any rule says (`--sheet` draws them), and NOT_SAME, the
pairs among them judged different photos that look alike. Pool images outside the 60 candidates count
as unrelated (a few real copies may hide among them: the figure is an upper bound of false marks).

Rules compared: the hash and feature rule before (hash within max_bits, or the feature rule with the
query's own look-alike test), and health.cross_pairs (every pair must stand out from the look-alikes
around the pool image, hash pairs too).

    python bench/leakage.py                 # the table
    python bench/leakage.py --sheet out.png # the 60 candidate pairs, to judge by eye
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from datacleaner import health  # noqa: E402

from paths import CIFAR, ROOT  # noqa: E402

RUNS = {"labeled": ROOT / ".bench" / "review" / "cifar-aggre-0" / "run",
        "pool": ROOT / ".bench" / "review" / "cifar-clean-10000" / "run"}
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


BEFORE = {"min_similarity": 0.95, "ratio": 0.25}  # the feature rule's thresholds before they were set here


def old_rule(q_h, q_f, b_h, b_f, t: health.Thresholds) -> np.ndarray:
    """(P, 2) pairs as select found them before: hashes within max_bits, or close_pairs (query-side test only)
    with the thresholds of then."""
    t = dataclasses.replace(t, **BEFORE)
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
    ap.add_argument("--part", type=int, default=0, help="with --sheet: which 60 of the candidates (0, 1)")
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
        cols, cell = 5, 96
        sheet = Image.new("RGB", (cols * (2 * cell + 12), -(-len(candidates) // cols) * (cell + 14)), "white")
        draw = ImageDraw.Draw(sheet)
        shown = candidates[60 * args.part : 60 * args.part + 60]
        sheet = Image.new("RGB", (cols * (2 * cell + 12), -(-len(shown) // cols) * (cell + 14)), "white")
        draw = ImageDraw.Draw(sheet)
        for k, (p, q, s) in enumerate(shown, 60 * args.part):
            x, y = (k % cols) * (2 * cell + 12), (k % 60 // cols) * (cell + 14)
            sheet.paste(Image.fromarray(images[p]).resize((cell, cell)), (x, y))
            sheet.paste(Image.fromarray(images[q]).resize((cell, cell)), (x + cell, y))
            draw.text((x, y + cell), f"{k} {p}/{q} {s:.2f}", fill="black")
        sheet.save(args.sheet)
        print(f"wrote {args.sheet}")
        return 0
    pos_of = {int(v): k for k, v in enumerate(pool_i)}
    lab_of = {int(v): k for k, v in enumerate(lab_i)}
    same = [(pos_of[p], lab_of[q]) for p, q in CROSS_PAIRS]
    alike = [(pos_of[p], lab_of[q]) for p, q in NOT_SAME]
    unrelated = np.setdiff1d(np.arange(len(pool_i)), [pos_of[p] for p, _, _ in candidates])
    t = health.Thresholds()
    rows = []
    for name, pairs in (("before: hash or feature rule", old_rule(pool_h, pool_f, lab_h, lab_f, t)),
                        ("now: health.cross_pairs", health.cross_pairs(pool_h, pool_f, lab_h, lab_f, t))):
        marked = set(pairs[:, 0].tolist())
        found = sum(a in marked for a, _ in same)
        fooled = sum(a in marked for a, _ in alike)
        false = int(np.isin(unrelated, list(marked)).sum())
        rows.append(f"| {name} | {found} / {len(same)} ({found / len(same):.0%}) | {fooled} / {len(alike)} | {false} / {len(unrelated):,} "
                    f"({false / len(unrelated):.2%}) | {len(marked):,} |")
    print(f"pool {len(pool_i):,} images (CIFAR 10,000-19,999), labeled {len(lab_i):,} (0-9,999); of the {CANDIDATES} most similar "
          f"cross pairs, {len(same)} are the same photo and {len(alike)} different photos alike (judged by eye)\n")
    print("| rule | same photo marked already_labeled | look-alikes marked | unrelated pool images marked | pool images marked |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
