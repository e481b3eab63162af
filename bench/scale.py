"""`clean` on 100,000 real images with the cpu profile: time per stage, peak memory, images per second.

The 20,000 shared CIFAR-10 images written five times as PNG class folders (the originals, mirrored,
10% brighter, shifted one pixel, mirrored and 10% darker), each with its CIFAR-10N aggregated label,
then `datacleaner clean TREE --config cpu` as a user runs it in a child process whose resident memory
is sampled every half second. --compare-ray runs the same `clean` with `--executor local` and `ray`;
--heads GB fits one of the run's heads in memory and in pieces. The copies are near duplicates of each
other: the quality numbers at the end are a sanity check only. See docs/benchmarks.md.

    python bench/scale.py                       # 100,000 images (the tree: ~3 min; the run: ~1 hour on 2 cores)
    python bench/scale.py --copies 1            # the 20,000 originals only
    python bench/scale.py --copies 1 --images 5000 --compare-ray
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from datacleaner.config import load_config

from harness.data import CLASSES, cifar
from harness.report import table
from harness.run import RssSampler
from paths import ROOT, WEIGHTS


def changed(img: np.ndarray, copy: int) -> np.ndarray:
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


def write_part(args) -> int:
    out, copy, start, stop = args
    d = cifar()
    images, labels = d["images"], d["aggre_label"]
    for i in range(start, stop):
        Image.fromarray(changed(images[i], copy)).save(out / CLASSES[labels[i]] / f"{copy}_{i:05d}.png")
    return stop - start


def write_tree(out: Path, copies: int, images: int | None = None) -> tuple[Path, int]:
    """out/<class>/<copy>_<i>.png for every image (the first `images`) and copy (written once; `.complete`
    marks a finished tree)."""
    n = min(images or 10**9, len(cifar()["aggre_label"]))
    done = out / ".complete"
    if done.is_file() and done.read_text().strip() == str(copies):
        return out, n * copies
    for c in CLASSES:
        (out / c).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        written = sum(pool.map(write_part, [(out, copy, s, min(n, s + 2000)) for copy in range(copies) for s in range(0, n, 2000)]))
    done.write_text(f"{copies}\n")
    print(f"wrote {written:,} PNGs in {time.perf_counter() - start:.0f} s", flush=True)
    return out, written


def run_clean(tree: Path, run: Path, config: str, extra: list[str]) -> dict:
    """`datacleaner clean` as a user runs it, in a child process: wall time, peak memory, summary.json."""
    cmd = [sys.executable, "-m", "datacleaner", "clean", str(tree), "--out", str(run), "--config", config,
           "--weights-dir", str(WEIGHTS), *extra]
    print(" ".join(cmd), flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    sampler = RssSampler(proc.pid, every=0.5, keys=("VmRSS", "RssAnon", "RssFile"))
    sampler.start()
    rc = proc.wait()
    sampler.stopped.set()
    if rc != 0:
        raise SystemExit(f"clean failed with exit code {rc}")
    return {"wall_s": time.perf_counter() - start, "peak_mb": sampler.peak, "summary": json.loads((run / "summary.json").read_text())}


STAGES = [("scan", "scan (list + stat files)"), ("decode", "validate + decode"), ("health", "health checks (pixels)"),
          ("features", "frozen features (TTA forward, both members)"), ("train_heads", "frozen heads"),
          ("score_write", "fuse + score + health verdict + write")]


def report(result: dict, n: int) -> str:
    s, wall, peak = result["summary"], result["wall_s"], result["peak_mb"]
    timings = dict(s["timings_s"])
    named = [(name, timings.pop(key)) for key, name in STAGES if key in timings] + [(k, v) for k, v in timings.items() if v > 0]
    rows = [[name, f"{sec:,.1f}", f"{sec / wall:.0%}", f"{n / max(sec, 1e-9):,.0f} img/s"] for name, sec in named]
    rows.append(["**end to end** (process start to exit)", f"**{wall:,.1f}**", "100%", f"**{n / wall:.1f} img/s**"])
    return (table(["stage", "seconds", "share", "rate"], rows, "lr") + f"\n\npeak resident memory {peak['VmRSS']:,.0f} MB "
            f"(anonymous {peak['RssAnon']:,.0f} MB, file-backed {peak['RssFile']:,.0f} MB); work: {json.dumps(s.get('work', {}))}")


def split(local: dict, ray: dict | None = None) -> str:
    """The measured stages split into the part a cluster spreads over its machines (the backbone features:
    independent jobs) and the part the driver does (everything else), and Ray's cost on top."""
    t = local["summary"]["timings_s"]
    jobs = t.get("features", 0.0) + t.get("train", 0.0) + t.get("predict", 0.0)
    driver = local["wall_s"] - jobs
    out = (f"\njobs (spread over a cluster): {jobs:,.1f} s ({jobs / local['wall_s']:.0%}); "
           f"driver (this machine): {driver:,.1f} s ({driver / local['wall_s']:.0%})")
    if ray is not None:
        rt = ray["summary"]["timings_s"]
        ray_jobs = rt.get("features", 0.0) + rt.get("train", 0.0) + rt.get("predict", 0.0)
        out += (f"\nRay on this machine: end to end {ray['wall_s']:,.1f} s against {local['wall_s']:,.1f} s local "
                f"({ray['wall_s'] / local['wall_s'] - 1:+.1%}); jobs {ray_jobs:,.1f} s against {jobs:,.1f} s "
                f"({ray_jobs / max(jobs, 1e-9) - 1:+.1%})")
    return out


def head_fits(run: Path, budget_gb: float) -> str:
    """One real head of the finished run (round 1, its first frozen member) fitted twice on the cached
    features: in memory (full batch) and in pieces from the file as a memory budget of `budget_gb`
    makes it: L-BFGS evaluations, seconds, and how far apart the two heads' probabilities are."""
    import pandas as pd

    from harness.internals import FoldPlan, GiB, NpyFile, configure, fit_view_head, fit_view_head_chunked, rows_per_piece, softmax

    configure(2)
    cfg = load_config(run / "config.yaml")
    manifest = pd.read_csv(run / "manifest.csv", keep_default_na=False)
    plan = FoldPlan(cfg.scheme, manifest["part"].to_numpy())
    labels = manifest["label"].to_numpy()
    member = cfg.members[0]
    path = next((run / "features").glob(f"{member.label}-*.npy"))
    feats = NpyFile(path)
    t, judge = plan.train_idx(0), plan.judge_idx(0)[:20000]
    C = int(labels.max()) + 1
    rows = []
    start = time.perf_counter()
    full_stats: dict = {}
    W, b = fit_view_head(feats[t], labels[t], C, member, stats=full_stats)
    rows.append(("in memory", time.perf_counter() - start, full_stats))
    start = time.perf_counter()
    piece_stats: dict = {}
    per_image = int(np.prod(feats.shape[1:])) * 4
    W2, b2 = fit_view_head_chunked(feats, t, labels[t], C, member, chunk_images=rows_per_piece(int(budget_gb * GiB), per_image),
                                   stats=piece_stats)
    rows.append((f"in pieces ({budget_gb:g} GB budget)", time.perf_counter() - start, piece_stats))
    x = np.asarray(feats[judge], dtype=np.float32)
    p1, p2 = softmax(x @ W.T + b), softmax(x @ W2.T + b2)
    lines = [f"\nhead of round 1, {member.label}, {len(t):,} training images x {feats.shape[1]} views ({path.name}):",
             "| fit | seconds | L-BFGS iterations | loss evaluations | s per evaluation |", "|---|---:|---:|---:|---:|"]
    for name, sec, st in rows:
        lines.append(f"| {name} | {sec:.1f} | {st['iterations']} | {st['evaluations']} | {sec / max(st['evaluations'], 1):.2f} |")
    lines.append(f"max |p_memory - p_pieces| on {len(judge):,} judged images: {np.abs(p1 - p2).max():.1e}; "
                 f"same argmax: {(p1.argmax(-1) == p2.argmax(-1)).mean():.4f}")
    return "\n".join(lines)


def sanity(run: Path) -> str:
    import pandas as pd

    d = cifar()
    scores = pd.read_csv(run / "scores.csv", keep_default_na=False)
    idx = scores["path"].str.extract(r"_(\d+)\.png")[0].astype(int).to_numpy()
    wrong = d["aggre_label"][idx] != d["clean_label"][idx]
    flagged = scores["issue"].str.contains("mislabel|low_confidence").to_numpy()
    tp = (flagged & wrong).sum()
    return (f"sanity: {wrong.mean():.1%} of labels wrong; flagged {flagged.sum():,}: precision {tp / max(flagged.sum(), 1):.2f}, "
            f"recall {tp / max(wrong.sum(), 1):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=5, help="copies of the 20,000 images (5: 100,000 files)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "scale")
    ap.add_argument("--config", default="cpu")
    ap.add_argument("--images", type=int, help="only the first N of the 20,000 images")
    ap.add_argument("--compare-ray", action="store_true", help="run with --executor local, then ray, and compare")
    ap.add_argument("--heads", type=float, metavar="GB",
                    help="after the run: fit one of its heads in memory and in pieces under a GB budget, and compare")
    ap.add_argument("extra", nargs="*", help="more `clean` options, after --")
    args = ap.parse_args()
    name = f"{args.copies}" + (f"-{args.images}" if args.images else "")
    tree, n = write_tree(args.out / f"tree{name}", args.copies, args.images)
    if args.compare_ray:
        results = {}
        for executor in ("local", "ray"):
            run = args.out / f"run{name}-{executor}"
            shutil.rmtree(run, ignore_errors=True)
            results[executor] = run_clean(tree, run, args.config, [*args.extra, "--executor", executor])
            print(f"\n{n:,} images, `clean --config {args.config} --executor {executor}`, 2 cores\n")
            print(report(results[executor], n))
        (args.out / f"result{name}-ray.json").write_text(json.dumps(results, indent=1))
        print(split(results["local"], results["ray"]))
        return
    saved = args.out / f"result{name}.json"
    if saved.is_file() and (args.out / f"run{name}" / "summary.json").is_file() and args.heads:
        result = json.loads(saved.read_text())  # the run is done: only the head comparison is asked for
    else:
        result = run_clean(tree, args.out / f"run{name}", args.config, args.extra)
        saved.write_text(json.dumps(result, indent=1))
    print(f"\n{n:,} images, `clean --config {args.config}`, 2 cores\n")
    print(report(result, n))
    print(split(result))
    print(sanity(args.out / f"run{name}"))
    if args.heads:
        print(head_fits(args.out / f"run{name}", args.heads))


if __name__ == "__main__":
    main()
