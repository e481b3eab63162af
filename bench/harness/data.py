"""Data folders for the benchmarks, from ../shared/data (see bench/paths.py) and scikit-learn's digit scans
(datacleaner.demo's write_noisy_digits, through harness.internals).

A builder writes a class-folder tree (<class>/<file>) as `clean` reads it and returns the truth: a table
of path, true_label, given_label (class names)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from paths import CIFAR, IMAGENETTE, MNIST

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]  # CIFAR-10
LABEL_SETS = {"clean": "clean_label", "aggre": "aggre_label", "random1": "random_label1", "worse": "worse_label"}


def cifar():
    """The shared CIFAR-10N file, each array read when asked for: the 20,000 CIFAR-10 training images
    (N, 32, 32, 3) uint8, their `index` and label sets, clean_label (CIFAR's own) and LABEL_SETS' others."""
    return np.load(CIFAR)


def cifar_tree(out: Path, rows, given) -> pd.DataFrame:
    """out/<class>/<index>.png for the CIFAR images at `rows` (positions in the file) under the labels
    `given` (one per row, or a label set's column name); written once (`.complete` marks a finished tree)."""
    d = cifar()
    rows = np.asarray(rows)
    given = d[given][rows] if isinstance(given, str) else np.asarray(given)
    paths = [f"{CLASSES[g]}/{i:05d}.png" for g, i in zip(given, d["index"][rows])]
    if not (out / ".complete").is_file():
        shutil.rmtree(out, ignore_errors=True)
        for c in {CLASSES[g] for g in given}:
            (out / c).mkdir(parents=True)
        for img, path in zip(d["images"][rows], paths):
            Image.fromarray(img).save(out / path)
        (out / ".complete").write_text("ok\n")
    return pd.DataFrame({"path": paths, "true_label": [CLASSES[y] for y in d["clean_label"][rows]],
                         "given_label": [CLASSES[g] for g in given]})


def kept_tree(home: Path, build) -> pd.DataFrame:
    """The truth of home/data, a tree `build(data)` writes once and returns the truth of (kept in home/truth.csv,
    every column as text; a benchmark's planted problems add planted and source)."""
    data, path = home / "data", home / "truth.csv"
    if not path.is_file():
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        build(data).to_csv(path, index=False)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def mnist_tree(data: Path, flips: int) -> pd.DataFrame:
    """The 5,000 shared MNIST digits under their own labels, `flips` of them moved to the class a
    cross-validated pixel-level logistic regression finds most probable after the label (the class a
    digit is most easily taken for)."""
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


def imagenette_table() -> pd.DataFrame:
    """imagenette_2k's labels.csv: path (images/<wnid>/<file>), label (ImageNet's) and fast.ai's synthetic
    noisy label sets noisy_labels_5 / _25 / _50."""
    return pd.read_csv(IMAGENETTE / "labels.csv")


def imagenette_tree(data: Path, labels: str) -> pd.DataFrame:
    """The 2,000 imagenette_2k photos (224 px) under the label column `labels`."""
    table = imagenette_table()
    rows = []
    for path, true, given in zip(table["path"], table["label"], table[labels]):
        rel = f"{given}/{Path(path).name}"
        (data / given).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(IMAGENETTE / path, data / rel)
        rows.append((rel, true, given))
    return pd.DataFrame(rows, columns=["path", "true_label", "given_label"])
