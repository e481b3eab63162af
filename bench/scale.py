"""`clean` on 100,000 real images with the cpu profile: time per stage, peak memory, images per second.

Writes the 20,000 CIFAR-10 images of ../shared/data/cifar10n_20k.npz (beside the repository, not
part of it: see bench/paths.py) five times as a class-folder tree of PNGs: the originals and four
copies with small changes (mirrored; brighter; shifted by one pixel; mirrored and darker), each
with its CIFAR-10N aggregated human label. Then runs `datacleaner clean TREE --config cpu` as a
user would, in a child process, and samples its resident memory (anonymous: what the process
needs; file-backed: memory-mapped pages the kernel can drop) every half second.

    python bench/scale.py                       # 100,000 images (the tree: ~3 min; the run: ~1 hour on 2 cores)
    python bench/scale.py --copies 1            # the 20,000 originals only
    python bench/scale.py --out runs/scale      # where the tree and the run directory go (kept: a re-run resumes)

The copies are near duplicates of each other, so the committee sees each photo up to four more
times in training: the label-quality numbers printed at the end are a sanity check, not a
benchmark of quality (see bench/real_noise.py for that).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from paths import CIFAR, WEIGHTS

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _changed(img: np.ndarray, copy: int) -> np.ndarray:
    """Copy 0: the image; 1: mirrored; 2: 10% brighter; 3: shifted one pixel right; 4: mirrored, 10% darker."""
    x = img.astype(np.float32)
    if copy in (1, 4):
        x = x[:, ::-1]
    if copy == 2:
        x = x * 1.1
    if copy == 3:
        x = np.concatenate([x[:, :1], x[:, :-1]], axis=1)
    if copy == 4:
        x = x * 0.9
    return np.clip(x, 0, 255).astype(np.uint8)


def _write_part(args) -> int:
    from PIL import Image

    out, copy, start, stop = args
    data = np.load(CIFAR)
    images, labels = data["images"], data["aggre_label"]
    for i in range(start, stop):
        Image.fromarray(_changed(images[i], copy)).save(out / CLASSES[labels[i]] / f"{copy}_{i:05d}.png")
    return stop - start


def write_tree(out: Path, copies: int) -> tuple[Path, int]:
    """out/<class>/<copy>_<i>.png for every image and copy (written once; `.complete` marks a finished tree)."""
    n = len(np.load(CIFAR)["aggre_label"])
    done = out / ".complete"
    if done.is_file() and done.read_text().strip() == str(copies):
        return out, n * copies
    for c in CLASSES:
        (out / c).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    parts = [(out, copy, s, min(n, s + 2000)) for copy in range(copies) for s in range(0, n, 2000)]
    with ProcessPoolExecutor(2) as pool:
        written = sum(pool.map(_write_part, parts))
    done.write_text(f"{copies}\n")
    print(f"wrote {written:,} PNGs in {time.perf_counter() - start:.0f} s", flush=True)
    return out, written


class MemorySampler(threading.Thread):
    """Peak VmRSS, RssAnon and RssFile (MB) of a process, sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, {"VmRSS": 0.0, "RssAnon": 0.0, "RssFile": 0.0}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in self.peak:
                        self.peak[key] = max(self.peak[key], int(value.split()[0]) / 1024)
            except (OSError, ValueError):
                pass
            self.stopped.wait(self.every)


def run_clean(tree: Path, run: Path, config: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "datacleaner", "clean", str(tree), "--out", str(run), "--config", config,
           "--weights-dir", str(WEIGHTS), *extra]
    print(" ".join(cmd), flush=True)
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT)
    sampler = MemorySampler(child.pid)
    sampler.start()
    rc = child.wait()
    sampler.stopped.set()
    wall = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"clean failed with exit code {rc}")
    return {"wall_s": wall, "peak_mb": sampler.peak, "summary": json.loads((run / "summary.json").read_text())}


STAGES = [("scan", "scan (list + stat files)"), ("decode", "validate + decode"), ("health", "health checks (pixels)"),
          ("features", "frozen features (TTA forward, both members)"), ("train_heads", "frozen heads"),
          ("score_write", "fuse + score + health verdict + write")]


def report(result: dict, n: int) -> str:
    s = result["summary"]
    timings = dict(s["timings_s"])
    lines = ["| stage | seconds | share | rate |", "|---|---:|---:|---:|"]
    wall = result["wall_s"]
    for key, name in STAGES:
        if key in timings:
            sec = timings.pop(key)
            lines.append(f"| {name} | {sec:,.1f} | {sec / wall:.0%} | {n / max(sec, 1e-9):,.0f} img/s |")
    for key, sec in timings.items():
        lines.append(f"| {key} | {sec:,.1f} | {sec / wall:.0%} | {n / max(sec, 1e-9):,.0f} img/s |")
    lines.append(f"| **end to end** (process start to exit) | **{wall:,.1f}** | 100% | **{n / wall:.1f} img/s** |")
    peak = result["peak_mb"]
    lines.append("")
    lines.append(f"peak resident memory {peak['VmRSS']:,.0f} MB (anonymous {peak['RssAnon']:,.0f} MB, "
                 f"file-backed {peak['RssFile']:,.0f} MB); work: {json.dumps(s.get('work', {}))}")
    return "\n".join(lines)


def sanity(run: Path) -> str:
    import pandas as pd

    data = np.load(CIFAR)
    scores = pd.read_csv(run / "scores.csv", keep_default_na=False)
    idx = scores["path"].str.extract(r"_(\d+)\.png")[0].astype(int).to_numpy()
    wrong = data["aggre_label"][idx] != data["clean_label"][idx]
    flagged = scores["issue"].str.contains("mislabel|low_confidence").to_numpy()
    tp = (flagged & wrong).sum()
    return (f"sanity: {wrong.mean():.1%} of labels wrong; flagged {flagged.sum():,}: precision {tp / max(flagged.sum(), 1):.2f}, "
            f"recall {tp / max(wrong.sum(), 1):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=5, help="copies of the 20,000 images (5: 100,000 files)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "scale")
    ap.add_argument("--config", default="cpu")
    ap.add_argument("extra", nargs="*", help="more `clean` options, after --")
    args = ap.parse_args()
    tree, n = write_tree(args.out / f"tree{args.copies}", args.copies)
    result = run_clean(tree, args.out / f"run{args.copies}", args.config, args.extra)
    (args.out / f"result{args.copies}.json").write_text(json.dumps(result, indent=1))
    print(f"\n{n:,} images, `clean --config {args.config}`, 2 cores\n")
    print(report(result, n))
    print(sanity(args.out / f"run{args.copies}"))


if __name__ == "__main__":
    main()
