"""What `review.csv` puts in front of a reviewer, row by row, on three kinds of data.

Builds a labeled class-folder tree, runs the real `clean` (the Python API the CLI calls) and judges
every row of `review.csv` against what is known about each image:

  digits      scikit-learn's 1,797 handwritten digit scans (grayscale, 8x8 upscaled to 32 px), a
              --noise share of labels flipped uniformly (the demo's data); `small` profile
  cifar       --n CIFAR-10 images from --offset of ../shared/data/cifar10n_20k.npz with a label set
              (clean = CIFAR's own labels, aggre / random1 / worse = CIFAR-10N's human labels);
              `cpu` profile
  imagenette  ../shared/data/imagenette_2k: 2,000 real 224 px photos with a label column (label = the
              ImageNet labels, noisy_labels_5 / _25 / _50 = fast.ai's synthetic noise); `cpu` profile
  mnist       ../shared/data/mnist_train_5k.npz: 5,000 real handwritten digits (28 px grayscale, MNIST's
              own nearly clean labels), --flips of them moved to the class a pixel-level classifier
              finds most similar (hard flips, not random ones); the profile the data chooses

With cifar, --keep-noise S keeps only the share S of the label set's wrong labels (the rest get
CIFAR's own label): nearly clean data whose wrong labels are real human mistakes, the ambiguous
images people actually got wrong (e.g. --labels aggre --keep-noise 0.1: about 0.9% wrong).

(../shared/ lies beside the repository, not in it: see bench/paths.py.) With --plant, known
problems are added to the tree, made from the dataset's own images: exact copies under the same
class (duplicate) and under another class (conflicting_labels: the copy's label is the wrong one),
near copies (JPEG re-encoded, and cropped 6-10% and resized back), darkened and blurred images,
and synthetic images of no class (noise, stripes, shapes: outliers). Every planted image is a
problem a reviewer would act on; every other non-label row is counted as not planted (look at
those: `--sheet` writes a contact sheet of the rows of one issue).

Printed: review rows by issue (planted among them), the label rows' precision / recall / F1 and
the AUROC of label_quality against the true labels, real errors in the first 100 label rows,
the share of images flagged (on clean labels: false alarms), the sum of error_prob over the label
rows against the real errors among them, the summary's expected wrong labels against the truth,
and the largest duplicate group.

    python bench/review_quality.py digits                      # the demo's data, 10% flipped (~2 min)
    python bench/review_quality.py cifar --labels clean --plant  # 10,000 images (~6 min on 2 cores)
    python bench/review_quality.py imagenette --labels noisy_labels_5 --plant
    python bench/review_quality.py imagenette --rescore        # re-judge the cached run with the current code (seconds)
    python bench/review_quality.py digits --sheet outlier      # contact sheet of the outlier rows: <run>/sheet-outlier.png

Runs are kept under .bench/review/<dataset>-<labels>[-planted]/ (data/, run/, truth.csv).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from datacleaner.demo import write_noisy_digits  # noqa: E402
from datacleaner.progress import QUIET  # noqa: E402
from datacleaner.runs import clean, rescore  # noqa: E402
from datacleaner.tables import LABEL_ISSUES, primary_issue  # noqa: E402

from paths import CIFAR, IMAGENETTE, MNIST, ROOT, WEIGHTS  # noqa: E402

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_SETS = {"clean": "clean_label", "aggre": "aggre_label", "random1": "random_label1", "worse": "worse_label"}
PLANTED_AS = {"outlier": ("outside",), "dark": ("dark",), "blurry": ("blurry",), "low_information": ("outside",)}
PLANTS = {"duplicate": 8, "conflict": 8, "jpeg": 6, "crop": 6, "dark": 5, "blurry": 5, "outside": 6}


# Building the tree ------------------------------------------------------------------------------


def build_digits(data: Path, noise: float) -> pd.DataFrame:
    truth = write_noisy_digits(data, noise=noise, seed=0)
    return truth[["path", "true_label", "given_label"]]


def build_cifar(data: Path, labels: str, offset: int, n: int, keep_noise: float = 1.0) -> pd.DataFrame:
    d = np.load(CIFAR)
    sl = slice(offset, offset + n)
    images, given, true, index = d["images"][sl], d[CIFAR_SETS[labels]][sl].copy(), d["clean_label"][sl], d["index"][sl]
    if keep_noise < 1.0:  # keep a random share of the human mistakes, CIFAR's own label elsewhere
        wrong = np.flatnonzero(given != true)
        drop = np.random.default_rng(0).permutation(wrong)[int(round(keep_noise * len(wrong))):]
        given[drop] = true[drop]
    rows = []
    for img, g, t, i in zip(images, given, true, index):
        rel = f"{CIFAR_CLASSES[g]}/{i:05d}.png"
        (data / CIFAR_CLASSES[g]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(data / rel)
        rows.append((rel, CIFAR_CLASSES[t], CIFAR_CLASSES[g]))
    return pd.DataFrame(rows, columns=["path", "true_label", "given_label"])


def build_mnist(data: Path, flips: int) -> pd.DataFrame:
    """MNIST's own labels, `flips` of them moved to the class a cross-validated pixel-level logistic
    regression finds most probable after the label (the class a digit is most easily taken for)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    d = np.load(MNIST)
    images, true = d["images"], d["labels"]
    given = true.copy()
    if flips:
        x = images.reshape(len(images), -1) / 255.0
        probs = cross_val_predict(LogisticRegression(max_iter=300, C=0.05), x, true, cv=5, method="predict_proba")
        probs[np.arange(len(true)), true] = -1
        chosen = np.random.default_rng(0).choice(len(true), size=flips, replace=False)
        given[chosen] = probs[chosen].argmax(axis=1)
    rows = []
    for k, (img, g, t) in enumerate(zip(images, given, true)):
        rel = f"{g}/{k:05d}.png"
        (data / str(g)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(data / rel)
        rows.append((rel, str(t), str(g)))
    return pd.DataFrame(rows, columns=["path", "true_label", "given_label"])


def build_imagenette(data: Path, labels: str) -> pd.DataFrame:
    table = pd.read_csv(IMAGENETTE / "labels.csv")
    rows = []
    for path, true, given in zip(table["path"], table["label"], table[labels]):
        rel = f"{given}/{Path(path).name}"
        (data / given).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(IMAGENETTE / path, data / rel)
        rows.append((rel, true, given))
    return pd.DataFrame(rows, columns=["path", "true_label", "given_label"])


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
    data, truth_path = home / "data", home / "truth.csv"
    if not truth_path.is_file():
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        if args.dataset == "digits":
            truth = build_digits(data, args.noise)
        elif args.dataset == "cifar":
            truth = build_cifar(data, args.labels, args.offset, args.n, args.keep_noise)
        elif args.dataset == "mnist":
            truth = build_mnist(data, args.flips)
        else:
            truth = build_imagenette(data, args.labels)
        truth = truth.assign(planted="", source="")
        if args.plant:
            truth = pd.concat([truth, plant(data, truth)], ignore_index=True)
        truth.to_csv(truth_path, index=False)
    return home, pd.read_csv(truth_path, dtype=str, keep_default_na=False)


# Judging the list -------------------------------------------------------------------------------


def judge(home: Path, truth: pd.DataFrame) -> dict:
    run = home / "run"
    scores = pd.read_csv(run / "scores.csv", dtype={"path": str}, keep_default_na=False)
    review = pd.read_csv(run / "review.csv", dtype={"path": str}, keep_default_na=False)
    summary = json.loads((run / "summary.json").read_text())
    t = truth.set_index("path")
    wrong = (t["true_label"] != t["given_label"]) & (t["planted"] != "outside")
    planted = t["planted"]
    first = primary_issue(review["issue"])
    is_label = first.isin(LABEL_ISSUES)
    label_rows = review[is_label]
    label_wrong = wrong.reindex(label_rows["path"]).fillna(False).to_numpy(dtype=bool)
    n_wrong = int(wrong.sum())
    tp = int(label_wrong.sum())
    p, r = tp / max(len(label_rows), 1), tp / max(n_wrong, 1)
    s = scores.set_index("path")
    judged = s["label_quality"].replace("", np.nan).astype(float).notna()
    q = s.loc[judged, "label_quality"].astype(float)
    y = wrong.reindex(q.index).fillna(False).to_numpy(dtype=bool)
    auroc = roc_auc_score(y, -q.to_numpy()) if 0 < y.sum() < len(y) else float("nan")
    ep = pd.to_numeric(label_rows["error_prob"], errors="coerce").fillna(0.0).to_numpy()
    ks = np.arange(50, len(ep) + 1, 50)
    gaps = [float(ep[:k].mean() - label_wrong[:k].mean()) for k in ks]  # running mean of error_prob - precision at k
    gap = max(gaps, key=abs) if gaps else float("nan")
    groups = scores["duplicate_group"][scores["duplicate_group"] != ""].value_counts()
    others = review[~is_label & (first != "unreadable")]
    by_issue = {}
    for issue, rows in others.groupby(first[others.index]):
        kinds = planted.reindex(rows["path"]).fillna("").to_numpy()
        if issue in ("duplicate", "near_duplicate"):  # a planted copy, or the original of one (half of a planted pair)
            sources = set(t.loc[t["source"] != "", "source"])
            real = (kinds != "") & (kinds != "outside") | rows["path"].isin(sources).to_numpy()
        else:
            real = np.isin(kinds, PLANTED_AS.get(issue, ()))
        by_issue[issue] = (len(rows), int(real.sum()))
    committee_flagged = int(first.isin(["mislabel", "low_confidence"]).sum())
    return {
        "images": len(scores), "wrong": n_wrong, "review_rows": len(review), "label_rows": len(label_rows),
        "label_tp": tp, "precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-12), "auroc": auroc,
        "first100": int(label_wrong[:100].sum()), "first100_of": min(100, len(label_rows)),
        "flagged_share": committee_flagged / max(len(scores), 1),
        "error_prob_sum": float(ep.sum()), "expected_wrong": summary.get("expected_wrong_labels"), "gap": gap,
        "largest_group": int(groups.max()) if len(groups) else 0, "groups": int(len(groups)),
        "non_label": by_issue, "summary_sizes": summary.get("duplicate_groups"),
    }


def report(name: str, m: dict) -> str:
    non_label = sum(n for n, _ in m["non_label"].values())
    real = sum(k for _, k in m["non_label"].values())
    issues = ", ".join(f"{k} {n} ({r} planted)" for k, (n, r) in sorted(m["non_label"].items(), key=lambda kv: -kv[1][0]))
    lines = [
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
    ]
    return "\n".join(lines)


def contact_sheet(home: Path, issue: str, limit: int = 40) -> Path:
    """A PNG of the first `limit` rows of review.csv (or health.csv, for an issue reported only) whose first
    issue is `issue`, each at 96 px beside the file its duplicate group keeps, if any; captioned given>suggested."""
    from PIL import ImageDraw

    run = home / "run"
    table = pd.read_csv(run / "review.csv", dtype=str, keep_default_na=False)
    rows = table[primary_issue(table["issue"]) == issue]
    if rows.empty and (run / "health.csv").is_file():
        table = pd.read_csv(run / "health.csv", dtype=str, keep_default_na=False).assign(suggested_label="")
        rows = table[primary_issue(table["issue"]) == issue]
    rows = rows.head(limit)
    cols, cell = 4, 100
    sheet = Image.new("RGB", (cols * (2 * cell + 16), max(1, -(-len(rows) // cols)) * (cell + 16)), "white")
    draw = ImageDraw.Draw(sheet)

    def tile(path: str) -> Image.Image:
        img = Image.open(home / "data" / path).convert("RGB")
        return img.resize((cell - 4, cell - 4), Image.Resampling.NEAREST if max(img.size) < cell else Image.Resampling.BICUBIC)

    for k, r in enumerate(rows.to_dict("records")):
        x, y = (k % cols) * (2 * cell + 16), (k // cols) * (cell + 16)
        sheet.paste(tile(r["path"]), (x + 2, y + 2))
        if r.get("duplicate_group") and r["duplicate_group"] != r["path"]:
            sheet.paste(tile(r["duplicate_group"]), (x + cell + 2, y + 2))
        draw.text((x + 2, y + cell), f"{r['given_label'][:9]}>{r['suggested_label'][:9]}", fill="black")
    out = home / f"sheet-{issue}.png"
    sheet.save(out)
    return out


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
        print(contact_sheet(home, args.sheet))
        return 0
    started = time.time()
    if args.rescore:  # with the config defaults of the code that runs (a run keeps the config it was made with)
        rescore(home / "run", min_error_prob=args.min_error_prob if args.min_error_prob is not None else "auto", progress=QUIET)
    else:
        config = args.config or {"digits": "small", "mnist": None}.get(args.dataset, "cpu")  # mnist: as the data chooses
        clean(home / "data", home / "run", config, progress=QUIET, weights_dir=str(WEIGHTS))
    took = time.time() - started
    print(report(home.name, judge(home, truth)))
    print(f"\n({'rescore' if args.rescore else 'clean'} {took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
