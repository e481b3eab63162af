"""`select`'s already_labeled on near duplicates: CIFAR photos that appear twice, re-cropped or re-edited.

Images 0-9,999 of ../shared/data/cifar10n_20k.npz (beside the repository, see bench/paths.py) are the
labeled set; the pool is images 10,000-19,999 plus edited copies of labeled images, `--copies` of each
kind (KINDS: re-cropped to 72-92% of the side, shifted 2-4 px, mirrored and cropped, re-coloured,
made grey, re-scaled through 16-23 px, re-cropped and re-coloured): the kinds of near duplicate
published between CIFAR-10's training and test sets. Every pool image gets the question `select`
asks: is it already in the labeled set? Features are the cpu profile's first member's (TTA views
averaged) made compact as `train` and `select` make them (centred on the labeled images' mean), and
perceptual hashes, both from the `clean` runs that cache them: `review_quality.py cifar --labels
clean` (the labeled half) and a run on the pool that this script starts.

Ground truth besides the copies: CIFAR itself holds the same photo more than once. CROSS_PAIRS are
pool/labeled pairs judged the same photo by eye among the 60 most similar cross pairs by feature
similarity, whatever any rule says (`--sheet` draws them); NOT_SAME, pairs among them judged
different photos that look alike. Pool images outside the 60 candidates count as unrelated (real
copies hide among them: the figure is an upper bound of false marks; `--sheet-marked` draws a sample).

    python bench/leakage.py --copies 50             # the table: clean's rule and select's (about 8 minutes the first time)
    python bench/leakage.py --copies 50 --grid      # ... and a grid of similarity and stand-out bars
    python bench/leakage.py --copies 50 --sheet out.png   # the 60 candidate pairs, to judge by eye
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


# --copies: edited copies of labeled images, the kinds of near duplicate published between CIFAR-10's sets
# (the same photo re-cropped, shifted, mirrored, re-coloured, re-scaled), made in the pool ------------------
KINDS = ("recrop", "shift", "mirror", "recolour", "gray", "rescale", "combined")


def edited_copy(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """An edited copy of the (H, W, 3) uint8 image `img`, as one of KINDS."""
    from PIL import Image, ImageEnhance

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
    from PIL import Image

    d = np.load(CIFAR)
    images, labels = d["images"], d["clean_label"]
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for i in range(10_000, 20_000):
        (data / names[labels[i]]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(data / names[labels[i]] / f"{d['index'][i]:05d}.png")
    rng = np.random.default_rng(seed)
    sources = rng.choice(10_000, size=per_kind * len(KINDS), replace=False)
    rows = []
    for k, src in enumerate(sources):
        kind = KINDS[k % len(KINDS)]
        rel = f"{names[labels[src]]}/copy-{kind}-{d['index'][src]:05d}.png"
        Image.fromarray(edited_copy(images[src], kind, rng)).save(data / rel)
        rows.append(f"{rel},{kind},{d['index'][src]}")
    (COPIES_HOME / "copies.csv").write_text("path,kind,labeled\n" + "\n".join(rows) + "\n")
    return data


def copies_table(rules: dict[str, health.Thresholds], per_kind: int) -> int:
    """Recall on the edited copies by kind, and the real by-eye pairs and unrelated pool images marked, per rule."""
    import pandas as pd

    from datacleaner.progress import QUIET
    from datacleaner.runs import clean
    from paths import WEIGHTS

    data = build_copies(per_kind)
    run = COPIES_HOME / "run"
    if not (run / "summary.json").is_file():
        clean(data, run, "cpu", progress=QUIET, weights_dir=str(WEIGHTS))
    lab_raw, lab_h, lab_i = load(RUNS["labeled"])
    pool_raw, pool_h, pool_i = load(run)
    paths = pd.read_csv(run / "manifest.csv", dtype=str, keep_default_na=False)["path"]
    is_copy = paths.str.contains("/copy-").to_numpy()
    kind = paths.str.extract(r"copy-([a-z]+)-")[0].fillna("").to_numpy()
    lab_f, mean = health.compact_features(lab_raw)
    pool_f, _ = health.compact_features(pool_raw, mean)
    pos_of = {int(v): k for k, v in enumerate(pool_i) if not is_copy[k]}
    sims, idx = health.nearest(pool_f[~is_copy], lab_f, k=1)
    originals = np.flatnonzero(~is_copy)
    candidates = set(originals[np.argsort(-sims[:, 0])[:CANDIDATES]].tolist())
    unrelated = np.array([k for k in originals if k not in candidates])
    same = [pos_of[p] for p, _ in CROSS_PAIRS]
    alike = [pos_of[p] for p, _ in NOT_SAME]
    print(f"pool: CIFAR 10,000-19,999 ({len(originals):,}) + {int(is_copy.sum())} edited copies of labeled images (0-9,999); "
          f"labeled: 0-9,999\n")
    print("| rule | " + " | ".join(KINDS) + " | all copies | real pairs by eye | look-alikes marked | unrelated marked |")
    print("|---|" + "---:|" * (len(KINDS) + 4))
    for name, t in rules.items():
        pairs = health.cross_pairs(pool_h, pool_f, lab_h, lab_f, t)
        partner = {}
        for q, b in pairs:
            partner.setdefault(int(q), set()).add(int(lab_i[b]))
        hit = np.array([int(pool_i[k]) in partner.get(k, set()) for k in range(len(paths))])
        cells = [f"{hit[kind == k].mean():.0%}" for k in KINDS]
        real = sum(k in partner for k in same)
        fooled = sum(k in partner for k in alike)
        false = sum(int(k) in partner for k in unrelated)
        print(f"| {name} | " + " | ".join(cells) + f" | {hit[is_copy].mean():.0%} | {real} / {len(same)} | {fooled} / {len(alike)} | "
              f"{false} / {len(unrelated):,} ({false / len(unrelated):.2%}) |")
    return 0


def candidate_sheet(path: Path, part: int) -> None:
    """The CANDIDATES most similar pool/labeled pairs (copies left out), to judge by eye."""
    import pandas as pd
    from PIL import Image, ImageDraw

    lab_raw, _, lab_i = load(RUNS["labeled"])
    pool_raw, _, pool_i = load(COPIES_HOME / "run")
    paths = pd.read_csv(COPIES_HOME / "run" / "manifest.csv", dtype=str, keep_default_na=False)["path"]
    keep = ~paths.str.contains("/copy-").to_numpy()
    lab_f, mean = health.compact_features(lab_raw)
    pool_f = health.compact_features(pool_raw[keep], mean)[0]
    pool_i = pool_i[keep]
    sims, idx = health.nearest(pool_f, lab_f, k=1)
    top = np.argsort(-sims[:, 0])[: 2 * CANDIDATES]
    candidates = [(int(pool_i[q]), int(lab_i[idx[q, 0]]), float(sims[q, 0])) for q in top]
    images = np.load(CIFAR)["images"]
    cols, cell = 5, 96
    shown = candidates[CANDIDATES * part : CANDIDATES * part + CANDIDATES]
    sheet = Image.new("RGB", (cols * (2 * cell + 12), -(-len(shown) // cols) * (cell + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (p, q, s) in enumerate(shown, CANDIDATES * part):
        x, y = (k % cols) * (2 * cell + 12), (k % CANDIDATES // cols) * (cell + 14)
        sheet.paste(Image.fromarray(images[p]).resize((cell, cell)), (x, y))
        sheet.paste(Image.fromarray(images[q]).resize((cell, cell)), (x + cell, y))
        draw.text((x, y + cell), f"{k} {p}/{q} {s:.2f}", fill="black")
    sheet.save(path)
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
