"""Peak memory of scoring and writing outputs for a million images.

Builds a synthetic run directory as `clean` leaves it (manifest, config, cached TTA logits of
every round and member as .npy files) for N images, then runs the real `rescore` on it in a
fresh process and reports its peak resident memory and time. Logits are drawn so that the
committee mostly agrees with the labels and ~10% of images look mislabeled; the numbers do
not matter, their amount does. Fusion reads the memory-mapped logits chunk by chunk, so all
logits of all views are never in memory at once.

    python bench/memory.py                          # N = 250k and 1M, 2 members x 2 views (cpu profile)
    python bench/memory.py --members 3 --views 8    # a GPU-sized committee
    python bench/memory.py --select                 # `select` on real pools of 5k and 20k CIFAR PNGs

With --select, a small committee (two members trained from scratch at 32 px for one epoch
on 1,000 images: speed, not quality, is measured) judges pools of the CIFAR images in
../shared/data (beside the repository, not part of it) written as PNGs, with a production predictions CSV, in a fresh process per pool;
the growth between the two pool sizes, per million images, is what the pool costs.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def build(run: Path, n: int, members: int, views: int, classes: int = 10, folds: int = 5) -> None:
    from datacleaner.config import CleanConfig, MemberConfig, TTAConfig, dump_config
    from datacleaner.folds import make_fold_plan
    from datacleaner.runs import RunDir, _save_array

    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, n)
    cfg = CleanConfig(scheme="cv", folds=folds, flag_rule="noise_rate", tta=TTAConfig(views=views),
                      members=[MemberConfig(arch="resnet18", name=f"m{m}") for m in range(members)])
    plan = make_fold_plan(labels, scheme="cv", folds=folds, seed=0)
    info = {"fingerprint": "synthetic", "cache_size": 32, "classes": [f"class{c}" for c in range(classes)]}
    rd = RunDir(run)
    rd.write_json("run.json", info)
    (run / "config.yaml").write_text(dump_config(cfg))
    paths = [f"class{y}/{i:07d}.png" for i, y in enumerate(labels)]
    pd.DataFrame({"path": paths, "label": labels, "part": plan.part, "reason": "", "checksum": "0" * 16}).to_csv(
        run / "manifest.csv", index=False)
    truth = np.where(rng.random(n) < 0.1, rng.integers(0, classes, n), labels)  # what the images show
    for r in range(plan.n_rounds):
        idx = plan.judge_idx(r)
        for member in cfg.members:
            logits = rng.normal(0, 1, (len(idx), views, classes)).astype(np.float32)
            logits[np.arange(len(idx)), :, truth[idx]] += 4.0
            _save_array(rd.logits_path(cfg, member, r, info), logits)


def measure(run: Path) -> dict:
    from datacleaner.progress import QUIET
    from datacleaner.runs import rescore

    start = time.perf_counter()
    result = rescore(run, progress=QUIET)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "flagged": result.summary["flagged"]}


def select_peak(work: Path, sizes: list[int]) -> list[dict]:
    """Peak memory of `datacleaner select` on pools of the shared CIFAR images (see module doc)."""
    import yaml
    from PIL import Image

    from paths import CIFAR

    data = np.load(CIFAR)
    images, labels = data["images"], data["clean_label"]
    work.mkdir(parents=True, exist_ok=True)
    train = work / "train"
    if not (train / ".complete").is_file():
        for i in range(1000):
            (train / str(labels[i])).mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(train / str(labels[i]) / f"{i:05d}.png")
        (train / ".complete").write_text("ok\n")
    config = work / "committee.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tta": {"views": 4}, "augment": {"hflip": 0.5}, "members": [
        {"arch": "resnet10t", "img_size": 32, "epochs": 1}, {"arch": "regnetx_002", "img_size": 32, "epochs": 1}]}))
    committee = work / "committee"
    cli = [sys.executable, "-m", "datacleaner"]
    if not (committee / "committee.json").is_file():
        subprocess.run([*cli, "train", str(train), "-c", str(config), "--out", str(committee), "-q"], check=True)
    rows = []
    for n in sizes:
        pool = work / f"pool-{n}"
        if not (pool / ".complete").is_file():
            pool.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(images[i % len(images)]).save(pool / f"{i:06d}.png")
            (pool / ".complete").write_text("ok\n")
        rng = np.random.default_rng(0)
        prod = work / f"prod-{n}.csv"
        pd.DataFrame({"path": [f"{i:06d}.png" for i in range(n)], "label": rng.integers(0, 10, n).astype(str),
                      "score": rng.random(n).round(4)}).to_csv(prod, index=False)
        out = work / f"select-{n}"
        shutil.rmtree(out, ignore_errors=True)
        code = ("import resource, sys, time; from datacleaner.cli import main; sys.argv = sys.argv[1:]; t = time.time()\n"
                "try:\n    main()\nexcept SystemExit:\n    pass\n"
                "print(time.time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
        done = subprocess.run([sys.executable, "-c", code, "datacleaner", "select", str(pool), "--committee", str(committee),
                               "--production", str(prod), "--out", str(out), "--budget", "100", "-q"],
                              capture_output=True, text=True)
        seconds, peak = map(float, done.stdout.strip().splitlines()[-1].split())
        rows.append({"n": n, "seconds": seconds, "peak_rss_mb": peak})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="250000,1000000")
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/datacleaner-memory"))
    ap.add_argument("--select", action="store_true", help="measure `select` on real pools instead (sizes 5000,20000)")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.select:
        sizes = [5000, 20000] if args.sizes == ap.get_default("sizes") else [int(x) for x in args.sizes.split(",")]
        rows = select_peak(args.work / "select", sizes)
        print("\nselect (2 members x 4 views at 32 px, production CSV, budget 100)\n")
        print("| pool images | peak memory (MB) | time (s) |")
        print("|---:|---:|---:|")
        for r in rows:
            print(f"| {r['n']:,} | {r['peak_rss_mb']:,.0f} | {r['seconds']:.1f} |")
        a, b = rows[0], rows[-1]
        print(f"\npeak memory grows {(b['peak_rss_mb'] - a['peak_rss_mb']) / (b['n'] - a['n']) * 1e6:,.0f} MB per million pool images")
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        run = args.work / f"run-{n}"
        build(run, n, args.members, args.views)
        logits_mb = sum(p.stat().st_size for p in (run / "logits").iterdir()) / 2**20
        done = subprocess.run([sys.executable, __file__, "--measure", str(run)], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(done.stderr[-3000:])
        rows.append({"n": n, "logits_mb": logits_mb, **json.loads(done.stdout.strip().splitlines()[-1])})
        shutil.rmtree(run)
    print(f"\nrescore (fuse, score, write scores.csv + review.csv): {args.members} members x {args.views} views, "
          "10 classes, cv 5 folds\n")
    print("| images | cached logits on disk (MB) | peak memory (MB) | time (s) | flagged |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['logits_mb']:,.0f} | {r['peak_rss_mb']:,.0f} | {r['seconds']:.1f} | {r['flagged']:,} |")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) / (b["n"] - a["n"]) * 1e6
        print(f"\npeak memory grows {slope:,.0f} MB per million images "
              f"(fixed part ~{a['peak_rss_mb'] - slope * a['n'] / 1e6:,.0f} MB: Python, torch, pandas)")


if __name__ == "__main__":
    main()
