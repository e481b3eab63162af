"""Which profile a run without --config should use: both CPU profiles on each kind of data.

Per case the real `clean` runs with the `cpu` profile (frozen ImageNet backbones) and with `small`
(networks from scratch at 32 px) on the same tree, the review list judged against the true labels;
`rule` is what `clean` picks without --config (datacleaner.choice). See docs/benchmarks.md.

  digits-10, digits-25      scikit-learn's 1,797 digit scans, 10% / 25% flipped
  digits-1000, -600, -300   100 / 60 / 30 scans per class, 10% flipped
  cifar                     --n CIFAR-10 photos from image 10,000, CIFAR-10N's aggre labels
  imagenette                imagenette_2k's 2,000 photos, fast.ai's noisy_labels_5

    python bench/profile_choice.py                         # every case
    python bench/profile_choice.py --cases digits-10 cifar --n 2000

Runs are kept under .bench/profile/<case>/<profile>/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data import cifar_tree, imagenette_tree, kept_tree
from harness.internals import choose_profile, look_at, write_noisy_digits
from harness.judge import review_rows
from harness.report import table
from harness.run import run_clean
from paths import ROOT, WEIGHTS

CASES = ("digits-10", "digits-25", "digits-1000", "digits-600", "digits-300", "cifar", "imagenette")
PER_CLASS = {"digits-1000": 100, "digits-600": 60, "digits-300": 30}


def build(case: str, data: Path, n: int) -> pd.DataFrame:
    if case == "cifar":
        return cifar_tree(data, np.arange(10_000, 10_000 + n), "aggre_label")
    if case == "imagenette":
        return imagenette_tree(data, "noisy_labels_5")
    truth = write_noisy_digits(data, noise=0.25 if case == "digits-25" else 0.1, seed=0, per_class=PER_CLASS.get(case))
    return truth[["path", "true_label", "given_label"]]


def run_case(case: str, n: int) -> list[dict]:
    home = ROOT / ".bench" / "profile" / case
    data = home / "data"
    truth = kept_tree(home, lambda folder: build(case, folder, n).assign(planted="", source=""))
    shape = look_at(data)
    rule, why = choose_profile(shape, "cpu")
    rows = []
    for profile in ("cpu", "small"):
        timed = home / profile / "wall_s.json"  # the first run's time: a re-run only re-reads the cached run
        wall = run_clean(data, home / profile / "run", profile, weights_dir=WEIGHTS)[1]
        if not timed.is_file():
            timed.write_text(json.dumps(wall))
        m = review_rows(home / profile / "run", truth)
        rows.append({"case": case, "data": shape.describe() if shape else "?", "rule": rule, "profile": profile, **m,
                     "first100": f"{m['first100']} / {m['first100_of']}", "wall_s": json.loads(timed.read_text()), "why": why})
    return rows


def show(rows: list[dict]) -> str:
    def pick(r):
        best = max((x for x in rows if x["case"] == r["case"]), key=lambda x: (x["f1"], x["auroc"]))["profile"]
        return "" if r["profile"] != r["rule"] else r["rule"] + (" (better)" if r["rule"] == best else " (worse)")

    return table(["case", "data", "profile", "label P / R / F1", "AUROC", "real errors in first 100 label rows",
                  "label rows / real wrong", "wall s", "rule picks"], [
        [r["case"], r["data"], r["profile"], f"{r['precision']:.3f} / {r['recall']:.3f} / {r['f1']:.3f}", f"{r['auroc']:.4f}",
         r["first100"], f"{r['label_rows']} / {r['wrong']}", f"{r['wall_s']:.0f}", pick(r)] for r in rows], "llllrrlrl")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    ap.add_argument("--n", type=int, default=2_000, help="cifar: images from 10,000 on")
    args = ap.parse_args()
    rows = []
    for case in args.cases:
        rows += run_case(case, args.n)
        print(show(rows[-2:]), flush=True)
    print("\n" + show(rows))
    for case in args.cases:
        print(f"- {case}: {next(r['why'] for r in rows if r['case'] == case)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
