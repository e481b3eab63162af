"""What the data-health checks add to a `clean` run with the cpu profile, on real CIFAR photos.

--images CIFAR training images (32 px PNG, clean labels) in a temporary class-folder tree, the real `clean`
(every check on) and its stage timings: `health` is everything the checks cost (target: at most 10 % of
the wall time). Then `rescore` re-applies the checks from the cache, with and without them, timed.
See docs/health_benchmark.md ("Time and memory").

    python bench/health_cost.py                  # 5,000 images, about 3 minutes on 2 cores
    python bench/health_cost.py --images 10000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from datacleaner import rescore

from harness.data import cifar_tree
from harness.report import table
from harness.run import run_clean, timed
from paths import WEIGHTS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--config", default="cpu")
    args = ap.parse_args()
    n = min(args.images, 20_000)
    tmp = Path(tempfile.mkdtemp(prefix="health-cost-"))
    try:
        cifar_tree(tmp / "cifar", np.arange(n), "clean_label")
        result, wall = run_clean(tmp / "cifar", tmp / "run", args.config, quiet=False, weights_dir=WEIGHTS)
        timings = result.summary["timings_s"]
        print(f"## `clean` on {n} CIFAR photos, profile {args.config}, every check on (2 cores)\n")
        print(table(["stage", "seconds", "share of the run"], [[stage, f"{s:.1f}", f"{s / wall:.1%}"] for stage, s in timings.items()]
                    + [["**whole run**", f"{wall:.1f}", "100%"]]))
        health = timings.get("health", 0.0)
        print(f"\nhealth: {health:.1f} s = {health / wall:.1%} of the run ({1000 * health / n:.1f} s per 1,000 images)")
        print("issues found: " + ", ".join(f"{k} {v}" for k, v in result.summary["issues"].items() if v))
        rows = [[f"rescore --checks {checks}", f"{timed(rescore, tmp / 'run', checks=checks)[1]:.1f}"] for checks in ("none", "all")]
        print("\n" + table(["re-score from the cache", "seconds"], rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
