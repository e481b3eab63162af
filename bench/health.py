"""Data-health checks (`datacleaner.health`) on CIFAR images with known problems planted, against cleanvision.

Reads ../shared/data/cifar10n_20k.npz (beside the repository, not part of it: see bench/paths.py).
The cleanvision comparison needs the benchmark extra (`pip install cleanvision`); without it
that part is skipped with a note.

What it does (all in a temporary folder, removed at the end unless --keep):

  base      --images N CIFAR images (random, --seed), upscaled 32 -> 64 px (bicubic), written as
            PNG into class folders by clean_label. These are "untouched": anything flagged
            among them is a false alarm (or a real problem already inside CIFAR).
  copies    of base images, --copies per kind, written beside the base under the same class:
            exact_bytes (file copied), exact_pixels (same pixels re-saved with other PNG
            settings), jpeg (quality 75-90), resize_0.5 (32 px, Lanczos), resize_1.5 (96 px,
            bicubic), shift (2-4 px translate in x and y, edge pixels repeated), crop (5-10% cut
            off, off centre), colour (brightness, contrast and saturation each x0.9-1.1);
            conflict_exact and conflict_jpeg: a file copy / a JPEG copy under another class.
  problems  other CIFAR images (not in the base), --per-issue per kind: dark (x0.1-0.2), light
            (washed out: 255 - (255 - x) * 0.1-0.2), blurry (Gaussian radius 2-3 at 64 px),
            tiny (8-12 px square), odd_aspect (stretched to 128 x 20-40 or 20-40 x 128),
            low_information (half uniform colour, half uniform + Gaussian noise sigma 1-3),
            grayscale (half saved as L-mode PNG, half RGB with equal channels).
  outside   synthetic images from outside the 10 classes, placed in random classes: white noise,
            smooth noise, stripes, checkerboards, random shapes, colour gradients (no downloads).

Then every file is decoded like `clean` does (`decode_images(files, 32)`, and at 64 for the
near-duplicate table), original sizes are read with PIL, and the checks are run and swept:
near-duplicate recall per alteration and false-alarm pairs for max_bits 0..10, exact-duplicate
and conflicting-label recall, and for each property its threshold swept (recall on the planted
images, false alarms on the untouched base). Timings per 1,000 images. Markdown tables.

    python bench/health.py                         # 5,000 base images, ~5 min on 2 cores
    python bench/health.py --images 1000 --no-cleanvision
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from datacleaner import health  # noqa: E402
from datacleaner.dataset import decode_images  # noqa: E402

from paths import CIFAR  # noqa: E402

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
COPY_KINDS = ["exact_bytes", "exact_pixels", "jpeg", "resize_0.5", "resize_1.5", "shift", "crop", "colour",
              "conflict_exact", "conflict_jpeg"]
EXACT_KINDS = ["exact_bytes", "exact_pixels", "conflict_exact"]
PROBLEM_KINDS = ["dark", "light", "blurry", "tiny", "odd_aspect", "low_information", "grayscale"]
ISSUE_OF = {"dark": "dark", "light": "light", "blurry": "blurry", "tiny": "odd_size", "odd_aspect": "odd_aspect_ratio",
            "low_information": "low_information", "grayscale": "grayscale"}
PROPERTY_ISSUES = ["dark", "light", "blurry", "low_information", "grayscale", "odd_aspect_ratio", "odd_size"]
SWEEPS = {
    "dark": [0.10, 0.15, 0.20, 0.25, 0.30, 0.35],
    "light": [0.70, 0.75, 0.80, 0.85, 0.90, 0.95],
    "blurry": [0.06, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35],
    "low_information": [0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50],
    "grayscale": [0.5, 1.0, 2.0, 3.0, 5.0, 8.0],
    "odd_aspect_ratio": [0.3, 0.4, 0.5, 0.6, 0.7],
    "odd_size": [2.0, 3.0, 4.0, 5.0, 6.0],
}
FLAT = ("low_information", "checker", "gradient", "stripes")  # little structure: their hashes pair up among themselves
MAX_FALSE_ALARM = 0.005  # a suggested threshold flags at most this share of the untouched base


# Building the folder ------------------------------------------------------------------------


@dataclasses.dataclass
class Item:
    path: Path
    label: int  # class folder it sits in
    group: str  # "base", "copy", "problem", "outside"
    kind: str  # copy / problem / outside kind, "base" for the base
    source: int = -1  # index (in the item list) of the base image a copy was made from


def up64(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img).resize((64, 64), Image.Resampling.BICUBIC)


def make_copy(kind: str, src: Image.Image, rng: np.random.Generator) -> Image.Image:
    if kind == "resize_0.5":
        return src.resize((32, 32), Image.Resampling.LANCZOS)
    if kind == "resize_1.5":
        return src.resize((96, 96), Image.Resampling.BICUBIC)
    if kind == "shift":
        a = np.asarray(src)
        dy, dx = rng.integers(2, 5, size=2) * rng.choice([-1, 1], size=2)
        ys = np.clip(np.arange(64) - dy, 0, 63)
        xs = np.clip(np.arange(64) - dx, 0, 63)
        return Image.fromarray(a[ys][:, xs])
    if kind == "crop":
        cut = int(round(64 * rng.uniform(0.05, 0.10)))  # pixels cut off each dimension
        x0, y0 = rng.integers(0, cut + 1, size=2)
        return src.crop((int(x0), int(y0), int(x0) + 64 - cut, int(y0) + 64 - cut))
    if kind == "colour":
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            src = enhancer(src).enhance(rng.uniform(0.9, 1.1))
        return src
    raise ValueError(kind)


def make_problem(kind: str, src: Image.Image, rng: np.random.Generator, i: int) -> Image.Image:
    a = np.asarray(src).astype(np.float64)
    if kind == "dark":
        return Image.fromarray((a * rng.uniform(0.1, 0.2)).astype(np.uint8))
    if kind == "light":
        return Image.fromarray((255 - (255 - a) * rng.uniform(0.1, 0.2)).astype(np.uint8))
    if kind == "blurry":
        return src.filter(ImageFilter.GaussianBlur(rng.uniform(2, 3)))
    if kind == "tiny":
        s = int(rng.integers(8, 13))
        return src.resize((s, s), Image.Resampling.LANCZOS)
    if kind == "odd_aspect":
        short = int(rng.integers(20, 41))
        return src.resize((128, short) if i % 2 else (short, 128), Image.Resampling.BICUBIC)
    if kind == "low_information":
        colour = rng.integers(0, 256, size=3)
        flat = np.broadcast_to(colour, (64, 64, 3)).astype(np.float64)
        if i % 2:
            flat = flat + rng.normal(0, rng.uniform(1, 3), size=(64, 64, 1))
        return Image.fromarray(np.clip(flat, 0, 255).astype(np.uint8))
    if kind == "grayscale":
        grey = src.convert("L")
        return grey if i % 2 else grey.convert("RGB")
    raise ValueError(kind)


def make_outside(i: int, rng: np.random.Generator) -> Image.Image:
    kind = i % 6
    if kind == 0:  # white noise
        return Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
    if kind == 1:  # smooth noise: 8x8 noise upscaled and blurred
        small = Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8))
        return small.resize((64, 64), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    c1, c2 = rng.integers(0, 256, size=(2, 3))
    if kind == 2:  # stripes at a random angle and frequency
        t = rng.uniform(0, np.pi)
        w = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * (xx * np.cos(t) + yy * np.sin(t)))
    elif kind == 3:  # checkerboard
        n = int(rng.integers(2, 9))
        w = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float64)
    elif kind == 4:  # random shapes
        img = Image.new("RGB", (64, 64), tuple(int(v) for v in c1))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 8))):
            x0, y0 = rng.integers(0, 48, size=2)
            x1, y1 = x0 + rng.integers(8, 32), y0 + rng.integers(8, 32)
            fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([int(x0), int(y0), int(x1), int(y1)], fill=fill)
        return img
    else:  # colour gradient in a random direction
        t = rng.uniform(0, 2 * np.pi)
        w = (xx * np.cos(t) + yy * np.sin(t))
        w = (w - w.min()) / max(w.max() - w.min(), 1e-6)
    a = c1 * (1 - w[..., None]) + c2 * w[..., None]
    return Image.fromarray(a.astype(np.uint8))


def build(root: Path, n: int, copies: int, per_issue: int, outside: int, seed: int) -> list[Item]:
    d = dict(np.load(CIFAR))
    images, labels = d["images"], d["clean_label"].astype(int)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    n_problem = per_issue * len(PROBLEM_KINDS)
    if n + n_problem > len(images):
        sys.exit(f"--images {n} + {n_problem} problem images exceed the {len(images)} CIFAR images")
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
    items: list[Item] = []
    for k, i in enumerate(order[:n]):
        p = root / CLASSES[labels[i]] / f"base_{k:05d}.png"
        up64(images[i]).save(p)
        items.append(Item(p, int(labels[i]), "base", "base"))
    sources = rng.choice(n, size=(len(COPY_KINDS), copies), replace=False if copies * len(COPY_KINDS) <= n else True)
    for kind, srcs in zip(COPY_KINDS, sources):
        for k, s in enumerate(srcs):
            base = items[s]
            label = base.label
            if kind.startswith("conflict"):
                label = int((label + rng.integers(1, len(CLASSES))) % len(CLASSES))
            stem = root / CLASSES[label] / f"copy_{kind.replace('.', 'p')}_{k:04d}"  # no dot in the stem
            src = Image.open(base.path).convert("RGB")
            if kind in ("exact_bytes", "conflict_exact"):
                p = stem.with_suffix(".png")
                shutil.copyfile(base.path, p)
            elif kind == "exact_pixels":
                p = stem.with_suffix(".png")
                src.save(p, compress_level=1, optimize=False)
            elif kind in ("jpeg", "conflict_jpeg"):
                p = stem.with_suffix(".jpg")
                src.save(p, quality=int(rng.integers(75, 91)))
            else:
                p = stem.with_suffix(".png")
                make_copy(kind, src, rng).save(p)
            items.append(Item(p, label, "copy", kind, int(s)))
    for j, kind in enumerate(PROBLEM_KINDS):
        for k, i in enumerate(order[n + j * per_issue : n + (j + 1) * per_issue]):
            p = root / CLASSES[labels[i]] / f"problem_{kind}_{k:04d}.png"
            make_problem(kind, up64(images[i]), rng, k).save(p)
            items.append(Item(p, int(labels[i]), "problem", kind))
    for k in range(outside):
        label = int(rng.integers(len(CLASSES)))
        p = root / CLASSES[label] / f"outside_{k:04d}.png"
        make_outside(k, rng).save(p)
        items.append(Item(p, label, "outside", ["noise", "smooth_noise", "stripes", "checker", "shapes", "gradient"][k % 6]))
    return items


# Tables ---------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:.0f}%" if b else "-"


def near_table(hashes: np.ndarray, items: list[Item], usable: np.ndarray, bits: range) -> tuple[str, dict]:
    """Recall of planted copy pairs per kind, and unplanted pairs found, for each max_bits."""
    idx = np.flatnonzero(usable)
    group = np.array([it.group for it in items])
    kinds = np.array([it.kind for it in items])
    planted = {(it.source, i) for i, it in enumerate(items) if it.group == "copy"}
    rows, found_at = [], {}
    for b in bits:
        pairs = idx[health.hash_pairs(hashes[idx], b)]
        found = {(int(i), int(j)) for i, j in pairs}
        found_at[b] = found
        row = [b]
        for kind in COPY_KINDS:
            want = [(it.source, i) for i, it in enumerate(items) if it.kind == kind]
            row.append(pct(sum(p in found for p in want), len(want)))
        extra = [p for p in found if p not in planted]
        bb = [p for p in extra if group[p[0]] == "base" and group[p[1]] == "base"]
        flat = [p for p in extra if p not in bb and (kinds[p[0]] in FLAT or kinds[p[1]] in FLAT)]
        row += [len(bb), len({i for p in bb for i in p}), len(flat), len(extra) - len(bb) - len(flat)]
        rows.append(row)
    header = ["max_bits", *COPY_KINDS, "base-base pairs", "base images in them", "pairs with a flat image",
              "other unplanted pairs"]
    return table(header, rows), found_at


def sweep_tables(props: dict, items: list[Item], issues=PROPERTY_ISSUES) -> tuple[str, dict]:
    kinds = np.array([it.kind for it in items])
    base = kinds == "base"
    out, picks = [], {}
    for issue in issues:
        target = np.isin(kinds, [k for k, v in ISSUE_OF.items() if v == issue])
        rows, best = [], None
        default = getattr(health.Thresholds(), issue)
        for t in SWEEPS[issue]:
            flags = health.property_issues(props, dataclasses.replace(health.Thresholds(), **{issue: t}))[issue]
            tp, fa = int((flags & target).sum()), int((flags & base).sum())
            other = int((flags & ~target & ~base).sum())
            rows.append([f"{t:g}" + (" (default)" if t == default else ""), f"{tp}/{target.sum()}", pct(tp, target.sum()),
                         f"{fa} ({100 * fa / base.sum():.2f}%)", f"{tp / max(tp + fa, 1):.2f}", other])
            score = (tp, -fa, -other, t == default)  # ties: fewer false alarms, fewer other flags, the default
            if fa <= MAX_FALSE_ALARM * base.sum() and (best is None or score > best[0]):
                best = (score, t)
        picks[issue] = None if best is None else best[1]
        pick = f"{picks[issue]:g}" if best else f"none flags at most {MAX_FALSE_ALARM:.1%} of the base"
        out.append(f"\n**{issue}** (suggested: {pick})\n\n" + table(
            ["threshold", "planted found", "recall", "untouched flagged", "precision", "other plants flagged"], rows))
    return "\n".join(out), picks


def cross_table(flags: dict, items: list[Item], names: list[str]) -> str:
    """How many of each planted kind every issue flags (rows: kinds, columns: issues)."""
    kinds = np.array([it.kind for it in items])
    rows = []
    for kind in ["base", *COPY_KINDS, *PROBLEM_KINDS, *sorted({it.kind for it in items if it.group == "outside"})]:
        m = kinds == kind
        rows.append([kind, int(m.sum()), *[int((flags[k] & m).sum()) for k in names]])
    return table(["kind", "images", *names], rows)


# cleanvision ------------------------------------------------------------------------------------

CV_NAMES = {"duplicate": "exact_duplicates", "near_duplicate": "near_duplicates", **{k: k for k in PROPERTY_ISSUES}}


def run_cleanvision(root: Path, items: list[Item]):
    try:
        from cleanvision import Imagelab
    except ImportError as exc:
        return None, f"cleanvision not installed ({exc}); `pip install cleanvision` (the bench extra) to compare"
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its "Reading images from ..." line
            lab = Imagelab(data_path=str(root))
            lab.find_issues(verbose=False)
    except Exception as exc:  # report and go on: the rest of the benchmark stands on its own
        return None, f"cleanvision failed: {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t0
    where = {str(it.path.resolve()): i for i, it in enumerate(items)}
    index = [where.get(str(Path(p).resolve()), -1) for p in lab.issues.index]
    if min(index) < 0 or len(index) != len(items):
        return None, f"cleanvision saw {len(index)} files, we wrote {len(items)}"
    flags = {}
    for ours, theirs in CV_NAMES.items():
        col = f"is_{theirs}_issue"
        f = np.zeros(len(items), dtype=bool)
        if col in lab.issues:
            f[index] = lab.issues[col].to_numpy(dtype=bool)
        flags[ours] = f
    sets = {}
    for name in ("exact_duplicates", "near_duplicates"):
        sets[name] = [[where[str(Path(p).resolve())] for p in s] for s in lab.info.get(name, {}).get("sets", [])]
    return (flags, sets, seconds), None


# Main -------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000, help="untouched CIFAR images in the base")
    ap.add_argument("--copies", type=int, default=100, help="planted copies per alteration")
    ap.add_argument("--per-issue", type=int, default=60, help="planted images per property problem")
    ap.add_argument("--outside", type=int, default=120, help="synthetic out-of-class images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cleanvision", action="store_true", help="skip the cleanvision comparison")
    ap.add_argument("--keep", type=Path, default=None, help="build the folder here and keep it")
    args = ap.parse_args()
    if not CIFAR.is_file():
        print(f"missing {CIFAR} (see bench/paths.py)", file=sys.stderr)
        return 2
    if args.images < 100 or args.copies < 1 or args.per_issue < 1:
        print("need --images >= 100, --copies >= 1, --per-issue >= 1", file=sys.stderr)
        return 2

    tmp = None
    if args.keep is None:
        tmp = tempfile.mkdtemp(prefix="health_bench_")
        root = Path(tmp)
    else:
        root = args.keep
        shutil.rmtree(root, ignore_errors=True)
    try:
        return run(root, args)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def run(root: Path, args) -> int:
    t0 = time.perf_counter()
    items = build(root, args.images, args.copies, args.per_issue, args.outside, args.seed)
    n = len(items)
    print(f"# Data-health benchmark\n\n{args.images} untouched CIFAR images (64 px PNG) + "
          f"{sum(it.group == 'copy' for it in items)} planted copies + {sum(it.group == 'problem' for it in items)} "
          f"planted problems + {sum(it.group == 'outside' for it in items)} synthetic outside images = {n} files, "
          f"seed {args.seed}; built in {time.perf_counter() - t0:.0f} s.\n")

    files = [it.path for it in items]
    labels = np.array([it.label for it in items])
    timings = {}
    t = time.perf_counter()
    pixels, problems = decode_images(files, 32)
    timings["decode at 32 px (2 threads)"] = time.perf_counter() - t
    if problems:
        print(f"{len(problems)} files did not decode: {list(problems.values())[:3]}", file=sys.stderr)
        return 1
    usable = np.ones(n, dtype=bool)
    t = time.perf_counter()
    sizes = np.array([Image.open(f).size for f in files])
    timings["read original sizes (PIL header)"] = time.perf_counter() - t
    t = time.perf_counter()
    props = health.properties(pixels, sizes)
    timings["properties"] = time.perf_counter() - t
    t = time.perf_counter()
    hashes = health.phash(pixels)
    timings["phash"] = time.perf_counter() - t
    t = time.perf_counter()
    exact = health.exact_groups(pixels, sizes, usable)
    timings["exact_groups"] = time.perf_counter() - t
    t = time.perf_counter()
    near = health.near_groups(hashes, usable, health.Thresholds().max_bits)
    timings[f"near_groups (max_bits {health.Thresholds().max_bits})"] = time.perf_counter() - t
    t = time.perf_counter()
    near10 = health.near_groups(hashes, usable, 10)
    timings["near_groups (max_bits 10)"] = time.perf_counter() - t
    del near10
    pixels64, _ = decode_images(files, 64)
    hashes64 = health.phash(pixels64)

    # Near duplicates ----------------------------------------------------------------------
    print("## Near duplicates: recall of planted pairs (copy and its source) and unplanted pairs found\n")
    print("Decoded at 32 px (as `clean` with 32 px members):\n")
    text, found_at = near_table(hashes, items, usable, range(0, 11))
    print(text)
    print("\nDecoded at 64 px:\n")
    print(near_table(hashes64, items, usable, range(0, 11))[0])

    # Exact duplicates and conflicts ------------------------------------------------------
    base = np.array([it.group == "base" for it in items])
    planted_src = {it.source for it in items if it.group == "copy"}
    print("\n## Exact duplicates (`exact_groups`: same decoded pixels and same original size)\n")
    rows = []
    for kind in COPY_KINDS:
        want = [(it.source, i) for i, it in enumerate(items) if it.kind == kind]
        got = sum(exact[a] >= 0 and exact[a] == exact[b] for a, b in want)
        rows.append([kind, pct(got, len(want))])
    fa = [i for i in np.flatnonzero(base & (exact >= 0)) if i not in planted_src]
    rows.append(["untouched base images in an exact group (no copy planted)", len(fa)])
    print(table(["planted kind", "found as exact duplicate"], rows))

    print("\n## Conflicting labels (`conflicts` on the near groups)\n")
    rows = []
    for b in (0, 2, 4, 6, 8):
        groups = health.near_groups(hashes, usable, b)
        bad, _ = health.conflicts(groups, labels)
        row = [b]
        for kind in ("conflict_exact", "conflict_jpeg"):
            m = np.array([it.kind == kind for it in items])
            row.append(pct(int((bad & m).sum()), int(m.sum())))
        conflict_src = {it.source for it in items if it.kind.startswith("conflict")}
        row.append(sum(1 for i in np.flatnonzero(bad & base) if i not in conflict_src))
        rows.append(row)
    print(table(["max_bits", "conflict_exact copies flagged", "conflict_jpeg copies flagged",
                 "untouched base images flagged (no conflict planted)"], rows))

    # Properties --------------------------------------------------------------------------
    print("\n## Image properties, decoded at 32 px: each threshold swept\n")
    print("recall: planted images of that problem flagged; untouched flagged: base images flagged (false alarms, "
          "or real cases inside CIFAR); precision: planted / (planted + untouched) among flagged; other plants: "
          f"copies/other problems/outside images flagged. Suggested: most recall with at most "
          f"{MAX_FALSE_ALARM:.1%} of the base flagged.")
    text, picks = sweep_tables(props, items)
    print(text)
    print("\nThe same images decoded at 64 px (blurry is scored at 32 px whatever the decode size):")
    print(sweep_tables(health.properties(pixels64, sizes), items, ["blurry"])[0])
    ours = health.property_issues(props)
    print("\n## What each issue flags at the current defaults (rows: planted kind)\n")
    print(cross_table(ours, items, PROPERTY_ISSUES))

    # Timings -----------------------------------------------------------------------------
    print(f"\n## Timings ({n} images, per 1,000 images)\n")
    print(table(["step", "seconds", "per 1,000 images"], [[k, f"{v:.2f}", f"{1000 * v / n:.3f}"] for k, v in timings.items()]))

    # cleanvision -------------------------------------------------------------------------
    if args.no_cleanvision:
        print("\ncleanvision: skipped (--no-cleanvision)")
    else:
        result, why = run_cleanvision(root, items)
        if result is None:
            print(f"\ncleanvision: {why}")
        else:
            compare_cleanvision(result, items, ours, exact, near, found_at)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


def compare_cleanvision(result, items, ours, exact, near, found_at) -> None:
    flags, sets, seconds = result
    n = len(items)
    kinds = np.array([it.kind for it in items])
    base = kinds == "base"
    base[[it.source for it in items if it.group == "copy"]] = False  # untouched and without a planted copy
    print(f"\n## cleanvision {_version()} (`Imagelab(data_path).find_issues()`, defaults): {seconds:.0f} s "
          f"= {1000 * seconds / n:.2f} s per 1,000 images\n")
    ours = dict(ours, duplicate=exact >= 0, near_duplicate=near >= 0)  # our near groups hold the exact copies too
    flags = dict(flags, near_duplicate=flags["near_duplicate"] | flags["duplicate"])  # theirs leave them out
    rows = []
    for issue in ["duplicate", "near_duplicate", *PROPERTY_ISSUES]:
        a, b = ours[issue], flags[issue]
        target = np.isin(kinds, [k for k, v in ISSUE_OF.items() if v == issue])
        if issue == "duplicate":
            target = np.isin(kinds, EXACT_KINDS)
        elif issue == "near_duplicate":
            target = np.array([it.group == "copy" for it in items])
        rows.append([issue, int(a.sum()), int(b.sum()), int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum()),
                     pct(int((a & target).sum()), int(target.sum())), pct(int((b & target).sum()), int(target.sum())),
                     int((a & base).sum()), int((b & base).sum())])
    print(table(["issue", "ours", "cleanvision", "both", "only ours", "only cleanvision", "our recall",
                 "cleanvision recall", "ours on untouched", "cleanvision on untouched"], rows))
    print("\n(duplicate: recall over the planted exact copies; near_duplicate: exact or near, recall over all planted "
          "copies; \"on untouched\": base images without a planted copy.)\n")

    print("What cleanvision's property checks flag (rows: planted kind):\n")
    print(cross_table(flags, items, PROPERTY_ISSUES) + "\n")
    cv_pairs = {(a, b) for s in sets["exact_duplicates"] + sets["near_duplicates"] for a in s for b in s if a < b}
    bits = health.Thresholds().max_bits
    rows = []
    for kind in COPY_KINDS:
        want = [(it.source, i) for i, it in enumerate(items) if it.kind == kind]
        rows.append([kind, pct(sum(p in found_at[bits] for p in want), len(want)),
                     pct(sum(tuple(sorted(p)) in cv_pairs for p in want), len(want))])
    group = np.array([it.group for it in items])
    planted = {(it.source, i) for i, it in enumerate(items) if it.group == "copy"}
    bb_ours = [p for p in found_at[bits] if p not in planted and group[p[0]] == "base" and group[p[1]] == "base"]
    bb_cv = [p for p in cv_pairs if p not in planted and group[p[0]] == "base" and group[p[1]] == "base"]
    rows.append(["unplanted base-base pairs found", len(bb_ours), len(bb_cv)])
    print(table(["planted pair kind", f"ours (max_bits {bits}, 32 px)", "cleanvision (phash 8, equal hashes)"], rows))


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("cleanvision")
    except Exception:
        return ""


if __name__ == "__main__":
    sys.exit(main())
