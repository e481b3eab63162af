"""Which profile a run without --config should use: both CPU profiles on each kind of data.

For every case, the real `clean` runs twice on the same class-folder tree, once with the `cpu`
profile (frozen ImageNet backbones at 160 px) and once with `small` (two networks trained from
scratch at 32 px), and the review list is judged against the known true labels (as in
review_quality.py): label rows' precision / recall / F1, AUROC of label_quality, real errors among
the first 100 label rows, wall time. The `rule` column is what `clean` picks with no --config
(datacleaner.choice), so each row shows whether the rule took the better profile.

  digits-10   scikit-learn's 1,797 digit scans (8x8 upscaled to 32 px, grayscale), 10% flipped
  digits-25   the same, 25% flipped
  digits-1000 100 per class (1,000 scans), 10% flipped
  digits-600  60 per class (600 scans), 10% flipped
  digits-300  30 per class (300 scans), 10% flipped: too few to train from scratch?
  cifar       --n CIFAR-10 photos (32 px colour) from image 10,000 of ../shared/data/cifar10n_20k.npz,
              CIFAR-10N's human aggre labels (about 9% wrong)
  imagenette  ../shared/data/imagenette_2k: 2,000 photos at 224 px, fast.ai's noisy_labels_5

    python bench/profile_choice.py                         # every case (about 20 minutes on 2 cores)
    python bench/profile_choice.py --cases digits-10 cifar --n 2000

Reads ../shared/ (beside the repository, see bench/paths.py) for the cpu profile's weights, CIFAR
and imagenette. Runs are kept under .bench/profile/<case>-<profile>/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from datacleaner.choice import choose_profile, look_at  # noqa: E402
from datacleaner.demo import write_noisy_digits  # noqa: E402
from datacleaner.progress import QUIET  # noqa: E402
from datacleaner.runs import clean  # noqa: E402

from paths import ROOT, WEIGHTS  # noqa: E402
from review_quality import build_cifar, build_imagenette, judge  # noqa: E402

CASES = ("digits-10", "digits-25", "digits-1000", "digits-600", "digits-300", "cifar", "imagenette")
PER_CLASS = {"digits-1000": 100, "digits-600": 60, "digits-300": 30}


def build(case: str, data: Path, n: int) -> pd.DataFrame:
    if case.startswith("digits"):
        noise = 0.25 if case == "digits-25" else 0.1
        truth = write_noisy_digits(data, noise=noise, seed=0, per_class=PER_CLASS.get(case))
        truth = truth[["path", "true_label", "given_label"]]
    elif case == "cifar":
        truth = build_cifar(data, "aggre", 10_000, n)
    else:
        truth = build_imagenette(data, "noisy_labels_5")
    return truth.assign(planted="", source="")


def run_case(case: str, n: int) -> list[dict]:
    home = ROOT / ".bench" / "profile" / case
    data, truth_path = home / "data", home / "truth.csv"
    if not truth_path.is_file():
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        build(case, data, n).to_csv(truth_path, index=False)
    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False)
    shape = look_at(data)
    rule, why = choose_profile(shape, "cpu")
    rows = []
    for profile in ("cpu", "small"):
        out = home / profile  # judge() reads <out>/run
        timed = out / "wall_s.json"  # the first run's time: a re-run only re-reads the cached run
        started = time.time()
        clean(data, out / "run", profile, weights_dir=WEIGHTS, progress=QUIET)
        if not timed.is_file():
            timed.write_text(json.dumps(time.time() - started))
        wall = json.loads(timed.read_text())
        m = judge(out, truth)
        rows.append({"case": case, "data": shape.describe() if shape else "?", "rule": rule, "profile": profile,
                     "f1": m["f1"], "precision": m["precision"], "recall": m["recall"], "auroc": m["auroc"],
                     "first100": f"{m['first100']} / {m['first100_of']}", "wrong": m["wrong"],
                     "flagged": m["label_rows"], "wall_s": wall, "why": why})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| case | data | profile | label P / R / F1 | AUROC | real errors in first 100 label rows | label rows / real wrong "
             "| wall s | rule picks |", "|---|---|---|---|---:|---:|---|---:|---|"]
    for r in rows:
        best = max((x for x in rows if x["case"] == r["case"]), key=lambda x: (x["f1"], x["auroc"]))["profile"]
        pick = r["rule"] if r["profile"] == r["rule"] else ""
        mark = " (better)" if pick and pick == best else " (worse)" if pick else ""
        lines.append(f"| {r['case']} | {r['data']} | {r['profile']} | {r['precision']:.3f} / {r['recall']:.3f} / {r['f1']:.3f} "
                     f"| {r['auroc']:.4f} | {r['first100']} | {r['flagged']} / {r['wrong']} | {r['wall_s']:.0f} | {pick}{mark} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    ap.add_argument("--n", type=int, default=2_000, help="cifar: images from 10,000 on")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    rows = []
    for case in args.cases:
        rows += run_case(case, args.n)
        print(table(rows[-2:]), flush=True)
    print("\n" + table(rows))
    for case in args.cases:
        print(f"- {case}: {next(r['why'] for r in rows if r['case'] == case)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
