"""`clean` on real images with the cpu profile: time and peak memory per stage, at one size or several, local or on Ray.

The 20,000 shared CIFAR-10 images written as PNG class folders (with --copies 5 five times: the
originals, mirrored, 10% brighter, shifted one pixel, mirrored and 10% darker), each with its CIFAR-10N
aggregated label, then `datacleaner clean TREE --config cpu` as a user runs it in a child process whose
resident memory is sampled every half second (summary.json's peak_memory_mb gives each stage's).

  default      one run: stages, rates, peak memory (100,000 files: ~1 hour on 2 cores)
  --sizes      the first N images for each N (with --copies 1), each a fresh run under the same `clean`
               options (e.g. -- --memory-gb 1.5): peak memory and time by stage, and their ratios
  --compare-ray  the same run local and on a Ray instance started here with 1 and with 2 worker
               processes (members ask 1 CPU each, so their jobs and heads run on 1 thread in all three):
               wall time by stage, whether the review lists are identical, and what a million images
               take on N machines, projected from the stages' measured parts
  --heads GB   after a run: one of its heads fitted in memory and in pieces under a GB budget

The copies are near duplicates of each other: the quality numbers at the end are a sanity check only.
See docs/benchmarks.md.

    python bench/scale.py                                        # 100,000 images
    python bench/scale.py --copies 1 --sizes 5000,20000 -- --memory-gb 1.5
    python bench/scale.py --copies 1 --images 20000 --compare-ray
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml
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
    return {"wall_s": time.perf_counter() - start, "peak_mb": sampler.peak, "run": str(run),
            "summary": json.loads((run / "summary.json").read_text())}


STAGES = [("scan", "scan (list + stat files)"), ("decode", "validate + decode"),
          ("health", "health (pixel facts, compact features, verdict)"), ("features", "frozen features (TTA forward, both members)"),
          ("train_heads", "frozen heads (fit + logits)"), ("score_write", "fuse + score + write")]
DRIVER = ("scan", "decode", "health", "score_write")  # what the driver does whatever the executor


def _stages(results: list[dict]) -> list[tuple[str, str]]:
    seen = {k for r in results for k, v in r["summary"]["timings_s"].items() if v > 0}
    return [(k, name) for k, name in STAGES if k in seen] + sorted((k, k) for k in seen - {k for k, _ in STAGES})


def report(result: dict, n: int) -> str:
    s, wall, peak = result["summary"], result["wall_s"], result["peak_mb"]
    timings = s["timings_s"]
    rows = [[name, f"{timings[key]:,.1f}", f"{timings[key] / wall:.0%}", f"{n / max(timings[key], 1e-9):,.0f} img/s"]
            for key, name in _stages([result])]
    rows.append(["**end to end** (process start to exit)", f"**{wall:,.1f}**", "100%", f"**{n / wall:.1f} img/s**"])
    return (table(["stage", "seconds", "share", "rate"], rows, "lr") + f"\n\npeak resident memory {peak['VmRSS']:,.0f} MB "
            f"(anonymous {peak['RssAnon']:,.0f} MB, file-backed {peak['RssFile']:,.0f} MB); work: {json.dumps(s.get('work', {}))}; "
            f"memory: {json.dumps(s.get('memory', {}))}")


def sizes_report(results: dict[int, dict]) -> str:
    """Seconds and peak memory (summary.json's peak_memory_mb: everything the process held, models included)
    per stage at each size, the whole run's, and the ratios of the largest size to the smallest."""
    ns = sorted(results)
    header = ["stage"] + [h for n in ns for h in (f"N={n:,}: s", "peak MB")]
    rows = []
    for key, name in _stages(list(results.values())):
        rows.append([name] + [c for n in ns for c in (f"{results[n]['summary']['timings_s'].get(key, 0):,.1f}",
                                                       f"{results[n]['summary'].get('peak_memory_mb', {}).get(key, 0):,}")])
    rows.append(["**whole run** (process start to exit)"] + [c for n in ns for c in (f"**{results[n]['wall_s']:,.1f}**",
                                                                                    f"**{results[n]['peak_mb']['VmRSS']:,.0f}**")])
    lo, hi = results[ns[0]], results[ns[-1]]
    out = table(header, rows, "lr")
    out += (f"\n\n{ns[-1] / ns[0]:g}x the images: peak memory x{hi['peak_mb']['VmRSS'] / lo['peak_mb']['VmRSS']:.2f}, "
            f"wall time x{hi['wall_s'] / lo['wall_s']:.2f}")
    start = {n: results[n]["summary"].get("peak_memory_mb", {}).get("scan") for n in ns}
    out += f"\nmemory when the run starts (Python, torch, timm, before any image): {start} MB"
    for n in ns:
        out += f"\nN={n:,}: memory {json.dumps(results[n]['summary'].get('memory', {}))}; work {json.dumps(results[n]['summary'].get('work', {}))}"
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RayHead:
    """`ray start --head` on 127.0.0.1 with `cpus` CPUs (one worker process per CPU for 1-CPU jobs), stopped on exit."""

    def __init__(self, cpus: int, temp: Path):
        self.bin, self.port, self.cpus, self.temp = Path(sys.executable).parent / "ray", _free_port(), cpus, temp

    def __enter__(self) -> str:
        (self.temp / "home").mkdir(parents=True, exist_ok=True)
        # a home of its own: a ~/.ray/auth_token left by a local ray.init() would make it refuse `clean`
        self.env = {**os.environ, "HOME": str(self.temp / "home")}
        subprocess.run([str(self.bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                        f"--num-cpus={self.cpus}", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                        f"--temp-dir={self.temp}"], check=True, capture_output=True, timeout=300, env=self.env)
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        subprocess.run([str(self.bin), "stop", "--force"], capture_output=True, timeout=300, env=self.env)


def one_cpu_config(out: Path, profile: str) -> Path:
    """The profile with each member's jobs asking 1 CPU (so a 2-CPU Ray instance runs two at a time)."""
    cfg = yaml.safe_load((ROOT / "configs" / f"{profile}.yaml").read_text())
    for m in cfg["members"]:
        m["cpus"] = 1
    path = out / f"{profile}-1cpu.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def ray_report(results: dict[str, dict], n: int) -> str:
    """Wall time by stage for each executor, and the projection to a million images on N machines."""
    names = list(results)
    rows = [[name] + [f"{results[x]['summary']['timings_s'].get(key, 0):,.1f}" for x in names]
            for key, name in _stages(list(results.values()))]
    rows.append(["**end to end**"] + [f"**{results[x]['wall_s']:,.1f}**" for x in names])
    rows.append(["peak memory of the driver (MB)"] + [f"{results[x]['peak_mb']['VmRSS']:,.0f}" for x in names])
    rows.append(["summary.json executor"] + [" ".join(f"{k}: {v}" for k, v in results[x]["summary"]["executor"].items())
                                             for x in names])
    out = table(["stage (seconds)", *names], rows, "lr")
    review = {x: (Path(results[x]["run"]) / "review.csv").read_text() for x in names}
    out += "\n\nreview.csv identical to local's: " + ", ".join(f"{x}: {review[x] == review[names[0]]}" for x in names[1:])
    return out + "\n\n" + projection(results, n)


HEAD_EVAL_S_1M = 10.62  # s per L-BFGS evaluation of a head on a million images' training features, read from disk
HEAD_EVALS = 100  # L-BFGS evaluations per fit at 80,000 training images and more (docs/benchmarks.md, "A million images")


def projection(results: dict[str, dict], n: int, target: int = 1_000_000) -> str:
    """What `target` images take on N machines of 2 cores, each running one job at a time on both cores
    (the profile's cpus: 2), from the local run's measured parts: the driver's stages (scan, decode, health,
    scoring) scale with the images on one machine; the feature jobs divide over the machines; heads go in
    waves (pass 1: round 1 of each member, then its other rounds, which start from it; pass 2: all), one
    fit taking HEAD_EVALS evaluations of HEAD_EVAL_S_1M (bench/memory.py at a million images, 2 threads)."""
    local = results["local"]["summary"]
    scale = target / n
    driver = sum(local["timings_s"].get(k, 0) for k in DRIVER) * scale
    features = local["timings_s"].get("features", 0) * scale
    members = len(local["engines"])
    rounds = local["work"].get("head_fits", 2 * members) // (2 * members) or 1
    fit = HEAD_EVAL_S_1M * HEAD_EVALS * target / 1_000_000
    rows = []
    for machines in (1, 2, 4, 8, 16, 32):
        heads = fit * _head_slots(members, machines, rounds, two_passes=True)
        rows.append([machines, f"{driver / 3600:.2f}", f"{features / machines / 3600:.2f}", f"{heads / 3600:.2f}",
                     f"**{(driver + features / machines + heads) / 3600:.1f}**"])
    return (f"A million images on N machines of 2 cores (projected: the driver's stages and the features x{scale:g} from "
            f"{n:,} images, one head fit {fit / 3600:.2f} h):\n\n"
            + table(["machines", "driver (scan, decode, health, scoring): h", "features: h", "heads: h", "end to end: h"], rows, "r"))


def _head_slots(members: int, workers: int, rounds: int, two_passes: bool) -> int:
    """Fits in a row on `workers` workers: pass 1's round 1 (one per member), then its other rounds, then pass 2."""
    waves = [members, members * (rounds - 1)] + ([members * rounds] if two_passes else [])
    return sum(-(-w // workers) for w in waves if w)


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
    ap.add_argument("--sizes", help="comma-separated numbers of images: a fresh run at each (with --copies 1)")
    ap.add_argument("--compare-ray", action="store_true", help="run local, then on Ray with 1 and 2 workers, and compare")
    ap.add_argument("--heads", type=float, metavar="GB",
                    help="after the run: fit one of its heads in memory and in pieces under a GB budget, and compare")
    ap.add_argument("extra", nargs="*", help="more `clean` options, after --")
    args = ap.parse_args()
    if args.sizes:
        results = {}
        for n in map(int, args.sizes.split(",")):
            tree, n = write_tree(args.out / f"tree{args.copies}-{n}", args.copies, n)
            run = args.out / f"run{args.copies}-{n}-sizes"
            shutil.rmtree(run, ignore_errors=True)
            results[n] = run_clean(tree, run, args.config, args.extra)
            print(f"\n{n:,} images, `clean --config {args.config} {' '.join(args.extra)}`, 2 cores\n\n{report(results[n], n)}", flush=True)
        (args.out / f"result-sizes-{args.sizes}.json").write_text(json.dumps(results, indent=1))
        print("\n" + sizes_report(results))
        return
    name = f"{args.copies}" + (f"-{args.images}" if args.images else "")
    tree, n = write_tree(args.out / f"tree{name}", args.copies, args.images)
    if args.compare_ray:
        config = str(one_cpu_config(args.out, args.config))
        results = {}
        for label, workers in (("local", 0), ("ray, 1 worker", 1), ("ray, 2 workers", 2)):
            run = args.out / f"run{name}-{workers}"
            shutil.rmtree(run, ignore_errors=True)
            if workers:
                with RayHead(workers, args.out / f"ray{workers}") as address:
                    results[label] = run_clean(tree, run, config, [*args.extra, "--executor", "ray", "--ray-address", address])
            else:
                results[label] = run_clean(tree, run, config, [*args.extra, "--executor", "local"])
            print(f"\n{n:,} images, {label}, 2 cores\n\n{report(results[label], n)}", flush=True)
        (args.out / f"result{name}-ray.json").write_text(json.dumps(results, indent=1))
        print("\n" + ray_report(results, n))
        return
    saved = args.out / f"result{name}.json"
    if saved.is_file() and (args.out / f"run{name}" / "summary.json").is_file() and args.heads:
        result = json.loads(saved.read_text())  # the run is done: only the head comparison is asked for
    else:
        result = run_clean(tree, args.out / f"run{name}", args.config, args.extra)
        saved.write_text(json.dumps(result, indent=1))
    print(f"\n{n:,} images, `clean --config {args.config}`, 2 cores\n")
    print(report(result, n))
    print(sanity(args.out / f"run{name}"))
    if args.heads:
        print(head_fits(args.out / f"run{name}", args.heads))


if __name__ == "__main__":
    main()
