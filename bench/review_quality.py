"""What `review.csv` puts in front of a reviewer, row by row (docs/benchmarks.md, "What review.csv puts in front of a reviewer").

Builds a labeled class-folder tree, runs the real `clean` and judges every row of `review.csv` against
what is known about each image:

  digits      scikit-learn's 1,797 digit scans, a --noise share of labels flipped (the demo's data); `small`
  cifar       --n CIFAR-10 images from --offset with a label set (clean = CIFAR's own; aggre, random1, worse =
              CIFAR-10N's human labels; --keep-noise S keeps that share of its wrong labels); `cpu`
  imagenette  imagenette_2k's 2,000 photos with a label column (label = ImageNet's; noisy_labels_5 / _25 / _50);
              `cpu`
  mnist       5,000 real MNIST digits, --flips of them moved to the most similar class; the profile the data chooses

--plant adds known problems made from the dataset's own correctly labeled images: exact copies under
the same class (duplicate) and another (conflicting_labels), near copies (JPEG, crops), darkened and
blurred images, synthetic images of no class (outliers). --sheet ISSUE draws the rows of an issue.

    python bench/review_quality.py digits --plant
    python bench/review_quality.py cifar --labels clean --plant --rescore   # re-judge the cached run (seconds)
    python bench/review_quality.py cifar --labels clean --sheet near_duplicate

Runs are kept under .bench/review/<dataset>-<labels>[-planted]/ (data/, run/, truth.csv).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from datacleaner import clean, rescore

from harness.data import LABEL_SETS, cifar, cifar_tree, imagenette_tree, kept_tree, mnist_tree
from harness.internals import QUIET, primary_issue, write_noisy_digits
from harness.judge import review_rows
from harness.report import contact_sheet, tile
from paths import ROOT, WEIGHTS

PLANTS = {"duplicate": 8, "conflict": 8, "jpeg": 6, "crop": 6, "dark": 5, "blurry": 5, "outside": 6}


def build(data: Path, args) -> pd.DataFrame:
    """The dataset's tree and its truth (path, true_label, given_label)."""
    if args.dataset == "digits":
        return write_noisy_digits(data, noise=args.noise, seed=0)[["path", "true_label", "given_label"]]
    if args.dataset == "mnist":
        return mnist_tree(data, args.flips)
    if args.dataset == "imagenette":
        return imagenette_tree(data, args.labels)
    rows = np.arange(args.offset, args.offset + args.n)
    given, true = cifar()[LABEL_SETS[args.labels]][rows].copy(), cifar()["clean_label"][rows]
    if args.keep_noise < 1.0:  # keep a random share of the human mistakes, CIFAR's own label elsewhere
        wrong = np.flatnonzero(given != true)
        drop = np.random.default_rng(0).permutation(wrong)[int(round(args.keep_noise * len(wrong))):]
        given[drop] = true[drop]
    return cifar_tree(data, rows, given)


def outside_image(k: int, size: int, rng: np.random.Generator) -> Image.Image:
    """An image of no class: white noise, smooth noise, stripes or random shapes."""
    kind = k % 4
    if kind == 0:
        return Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))
    if kind == 1:
        small = Image.fromarray(rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8))
        return small.resize((size, size), Image.Resampling.BICUBIC)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == 2:
        t = rng.uniform(0, np.pi)
        w = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 8) * (xx * np.cos(t) + yy * np.sin(t)))
    else:
        w = ((np.floor(xx * 4) + np.floor(yy * 4)) % 2).astype(np.float64)
    c1, c2 = rng.integers(0, 256, size=(2, 3))
    return Image.fromarray((c1 * (1 - w[..., None]) + c2 * w[..., None]).astype(np.uint8))


def plant(data: Path, truth: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """Add PLANTS known problems to the tree, made from its correctly labeled images; returns the
    rows to add to truth (path, true_label, given_label, planted, source)."""
    rng = np.random.default_rng(seed)
    classes = sorted(truth["given_label"].unique())
    ok = truth.index[truth["true_label"] == truth["given_label"]].to_numpy()
    sources = iter(rng.permutation(ok))
    rows = []
    for kind, count in PLANTS.items():
        for k in range(count):
            src = truth.loc[next(sources)]
            img = Image.open(data / src["path"])
            label, true = src["given_label"], src["true_label"]
            if kind == "conflict":
                label = rng.choice([c for c in classes if c != label])
            ext = ".jpg" if kind == "jpeg" else Path(src["path"]).suffix
            rel = f"{label}/planted_{kind}_{k:02d}{ext}"
            if kind in ("duplicate", "conflict"):
                shutil.copyfile(data / src["path"], data / rel)
            elif kind == "jpeg":
                img.convert("RGB").save(data / rel, quality=int(rng.integers(70, 86)))
            elif kind == "crop":
                w, h = img.size
                cut = rng.uniform(0.06, 0.10)
                x0, y0 = int(rng.uniform(0, cut) * w), int(rng.uniform(0, cut) * h)
                img.crop((x0, y0, x0 + int(w * (1 - cut)), y0 + int(h * (1 - cut)))).resize((w, h), Image.Resampling.BICUBIC).save(data / rel)
            elif kind == "dark":
                Image.fromarray((np.asarray(img).astype(np.float64) * rng.uniform(0.08, 0.15)).astype(np.uint8)).save(data / rel)
            elif kind == "blurry":
                img.filter(ImageFilter.GaussianBlur(max(img.size) * rng.uniform(0.04, 0.06))).save(data / rel)
            elif kind == "outside":
                label = rng.choice(classes)
                true = "__none__"
                rel = f"{label}/planted_{kind}_{k:02d}.png"
                outside_image(k, max(img.size), rng).save(data / rel)
            rows.append((rel, true, label, kind, "" if kind == "outside" else src["path"]))
    return pd.DataFrame(rows, columns=["path", "true_label", "given_label", "planted", "source"])


def prepare(args) -> tuple[Path, pd.DataFrame]:
    name = (f"{args.dataset}-{args.labels}" + (f"-{args.offset}" if args.dataset == "cifar" else "")
            + (f"-keep{args.keep_noise:g}" if args.keep_noise < 1 else "") + ("-planted" if args.plant else "")
            + (f"-{Path(args.config).stem}" if args.config else ""))
    home = ROOT / ".bench" / "review" / name

    def build_and_plant(data: Path) -> pd.DataFrame:
        truth = build(data, args).assign(planted="", source="")
        return pd.concat([truth, plant(data, truth)], ignore_index=True) if args.plant else truth

    return home, kept_tree(home, build_and_plant)


def report(name: str, m: dict) -> str:
    non_label = sum(n for n, _ in m["non_label"].values())
    real = sum(k for _, k in m["non_label"].values())
    issues = ", ".join(f"{k} {n} ({r} planted)" for k, (n, r) in sorted(m["non_label"].items(), key=lambda kv: -kv[1][0]))
    return "\n".join([
        f"### {name}",
        "",
        "| images | real wrong labels | review rows | label rows | label P / R / F1 | AUROC | wrong in first 100 label rows "
        "| flagged share | sum error_prob (label rows) / real wrong among them | expected wrong (summary) / real | largest group |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---|---|---:|",
        f"| {m['images']:,} | {m['wrong']:,} | {m['review_rows']:,} | {m['label_rows']:,} | {m['precision']:.3f} / {m['recall']:.3f} / "
        f"{m['f1']:.3f} | {m['auroc']:.4f} | {m['first100']} / {m['first100_of']} | {m['flagged_share']:.1%} | "
        f"{m['error_prob_sum']:.1f} / {m['label_tp']} | {m['expected_wrong']} / {m['wrong']} | {m['largest_group']} |",
        "",
        f"Largest gap between the running mean of error_prob and the precision down the label rows (k = 50, 100, ...): "
        f"{m['gap']:+.3f}.",
        "",
        f"Non-label rows: {non_label} ({real} planted or a planted copy's original, "
        f"{real / max(non_label, 1):.0%}): {issues or 'none'}.",
    ])


def sheet(home: Path, issue: str, limit: int = 40) -> Path:
    """The first `limit` rows of review.csv (or health.csv, for an issue reported only) whose first issue
    is `issue`, each beside the file its duplicate group keeps, if any; captioned given>suggested."""
    run = home / "run"
    table = pd.read_csv(run / "review.csv", dtype=str, keep_default_na=False)
    rows = table[primary_issue(table["issue"]) == issue]
    if rows.empty and (run / "health.csv").is_file():
        table = pd.read_csv(run / "health.csv", dtype=str, keep_default_na=False).assign(suggested_label="")
        rows = table[primary_issue(table["issue"]) == issue]

    def image(path: str) -> Image.Image:
        return tile(Image.open(home / "data" / path), 96)

    return contact_sheet(home / f"sheet-{issue}.png", [
        (image(r["path"]), image(r["duplicate_group"]) if r.get("duplicate_group") and r["duplicate_group"] != r["path"] else None,
         f"{r['given_label'][:9]}>{r['suggested_label'][:9]}") for r in rows.head(limit).to_dict("records")], cols=4, cell=100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", choices=["digits", "cifar", "imagenette", "mnist"])
    ap.add_argument("--labels", default=None, help="label set: cifar clean|aggre|random1|worse; imagenette label|noisy_labels_5|...")
    ap.add_argument("--noise", type=float, default=0.1, help="digits: share of labels flipped")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--keep-noise", type=float, default=1.0, help="cifar: keep this share of the label set's wrong labels")
    ap.add_argument("--flips", type=int, default=25, help="mnist: labels moved to the most similar class")
    ap.add_argument("--plant", action="store_true", help="add known problems to the tree")
    ap.add_argument("--config", default=None, help="profile or YAML (default: small for digits, cpu otherwise)")
    ap.add_argument("--rescore", action="store_true", help="only re-judge the cached run (rescore) with the current code")
    ap.add_argument("--min-error-prob", type=float, default=None, help="with --rescore: this min_error_prob (default: auto)")
    ap.add_argument("--sheet", default=None, help="write a contact sheet of the review rows of this issue")
    args = ap.parse_args()
    args.labels = args.labels or {"digits": f"noise{args.noise:g}", "cifar": "clean", "imagenette": "label",
                                  "mnist": f"flips{args.flips}"}[args.dataset]
    home, truth = prepare(args)
    if args.sheet:
        print(sheet(home, args.sheet))
        return 0
    started = time.time()
    if args.rescore:  # with the config defaults of the code that runs (a run keeps the config it was made with)
        rescore(home / "run", min_error_prob=args.min_error_prob if args.min_error_prob is not None else "auto", progress=QUIET)
    else:
        config = args.config or {"digits": "small", "mnist": None}.get(args.dataset, "cpu")  # mnist: as the data chooses
        clean(home / "data", home / "run", config, progress=QUIET, weights_dir=str(WEIGHTS))
    took = time.time() - started
    print(report(home.name, review_rows(home / "run", truth)))
    print(f"\n({'rescore' if args.rescore else 'clean'} {took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
