"""What the data-health checks add to a `clean` run with the cpu profile, on real CIFAR photos.

Reads ../shared/data/cifar10n_20k.npz and ../shared/weights/ (beside the repository, not part of
it: see bench/paths.py). Writes --images CIFAR training images (32 px PNG, clean labels) into a
class-folder tree in a temporary folder, runs the real `clean` (Python API, cpu profile, every
check on), and prints the run's stage timings from summary.json: `health` is everything the
checks cost (pixel facts after the decode, compact features, the verdict), its share of the
wall time is the number to watch (target: at most 10 %). Then `rescore` re-applies the checks
from the cached data (no decode), timed, with and without them.

    python bench/health_cost.py                  # 5,000 images, about 3 minutes on 2 cores
    python bench/health_cost.py --images 10000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datacleaner  # noqa: E402
from paths import CIFAR, WEIGHTS  # noqa: E402
from real_noise import write_tree  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--config", default="cpu")
    args = ap.parse_args()
    data = np.load(CIFAR)
    n = min(args.images, len(data["index"]))
    tmp = Path(tempfile.mkdtemp(prefix="health-cost-"))
    try:
        tree = tmp / "cifar"
        write_tree(tree, data["images"][:n], data["clean_label"][:n], data["index"][:n])
        t = time.perf_counter()
        result = datacleaner.clean(tree, tmp / "run", args.config, weights_dir=WEIGHTS)
        wall = time.perf_counter() - t
        timings = result.summary["timings_s"]
        print(f"## `clean` on {n} CIFAR photos, profile {args.config}, every check on (2 cores)\n")
        print("| stage | seconds | share of the run |\n|---|---|---|")
        for stage, s in timings.items():
            print(f"| {stage} | {s:.1f} | {s / wall:.1%} |")
        print(f"| **whole run** | {wall:.1f} | 100% |")
        print(f"\nhealth: {timings.get('health', 0.0):.1f} s = {timings.get('health', 0.0) / wall:.1%} of the run "
              f"({1000 * timings.get('health', 0.0) / n:.1f} s per 1,000 images)")
        counts = {k: v for k, v in result.summary["issues"].items() if v}
        print("issues found: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        rows = []
        for checks in ("none", "all"):
            t = time.perf_counter()
            datacleaner.rescore(tmp / "run", checks=checks)
            rows.append(f"| rescore --checks {checks} | {time.perf_counter() - t:.1f} |")
        print("\n| re-score from the cache | seconds |\n|---|---|\n" + "\n".join(rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
