"""Peak memory and time per stage of `clean` and `select` on up to a million synthetic images.

Nothing is decoded: the images' backbone features (clean) or the committee's judgements (select) are
generated with the amounts and shapes of the real thing, and the real code runs on them in a fresh
process per size, its resident memory sampled every 0.2 s and charged to the stage running.

clean: the cpu profile's shape (two frozen members, 1,280-d features, 2 views, cv 5 folds, 2 passes,
health checks); `datacleaner.clean` as a user runs it, with decoding replaced by a synthetic dataset and the
features generated (class centres plus noise, 10% of labels wrong); `--head-iters` caps each head's
L-BFGS iterations (memory does not depend on it, time does), `--generated-logits` draws the heads' logits.
select: a committee bundle trained for one epoch on digit scans judges a synthetic pool (shards, health
facts and a production CSV generated where `select` reads them); `selection.select` as a user runs it.
See docs/benchmarks.md ("A million images").

    python bench/memory.py clean --sizes 100000,300000,1000000 --head-iters 3   # 10 classes
    python bench/memory.py clean --sizes 100000 --classes 1000 --passes 1 --head-iters 2
    python bench/memory.py clean --sizes 1000000 --classes 1000 --passes 1 --generated-logits
    python bench/memory.py select --sizes 100000,1000000
    python bench/memory.py clean --sizes 20000 --memory-gb 0.5              # a small budget: heads from disk

Runs under --work (default runs/memory; at a million images the features take 10 GB of disk).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from harness.report import table
from harness.run import RssSampler, child, run_clean
from paths import ROOT, WEIGHTS


def _timed(sampler: RssSampler, seconds: dict, name: str, fn):
    """fn, its time added to seconds[name] and the memory sampled meanwhile charged to stage `name`."""
    def wrapper(*args, **kwargs):
        previous = sampler.enter(name)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            sampler.enter(previous)
    return wrapper


# --- clean -------------------------------------------------------------------------------------


def _facts(n: int, rng: np.random.Generator) -> dict:
    """The health checks' pixel facts of n ordinary, distinct images (random hashes and digests)."""
    from harness.internals import health

    real = health.properties(rng.integers(0, 255, (64, 32, 32, 3), dtype=np.uint8), None)
    facts = {f"prop_{k}": np.resize(v, n) for k, v in real.items()}
    facts["phash"] = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    facts["digest"] = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    return facts


def clean_child(work: Path, n: int, classes: int, passes: int, head_iters: int, memory_gb: float | None,
                generated_logits: bool = False) -> dict:
    from datacleaner.config import load_config

    from datacleaner.pipeline import checks, clean_job, heads, start  # the stages this benchmark replaces a step of
    from harness.internals import (LabeledImages, NpyFile, NpyWriter, Prepared, Stopwatch, member_preprocess, training,
                                   write_bytes_atomic)

    sampler, seconds = RssSampler(), {}
    sampler.start()
    training.HEAD_MAX_ITER = head_iters
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, n)
    truth = np.where(rng.random(n) < 0.1, rng.integers(0, classes, n), labels)  # what the images show
    names = [f"class{c:04d}" for c in range(classes)]
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)

    def prepare(data_arg, cfg, run, progress, *, min_per_class, guard, watch=None):
        labeled = LabeledImages(root=data, paths=[f"{names[y]}/{i:07d}.png" for i, y in enumerate(labels)],
                                labels=labels, classes=names, source="folder")
        fingerprint = f"synthetic-{n}-{classes}"
        size = max(member_preprocess(m).size for m in cfg.members)
        path = run.health_facts_path(size, fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **_facts(n, rng))
        write_bytes_atomic(path, buf.getvalue())
        return Prepared(labeled, fingerprint, {m.label: member_preprocess(m) for m in cfg.members}, size,
                             np.zeros((n, 1, 1, 3), np.uint8), {}, ["0" * 16] * n, np.ones(n, bool), [[32, 32]] * n)

    def features(ctx, member):
        path = ctx.run.features_path(ctx.cfg, member, ctx.info)
        other = [p for p in path.parent.glob("*.npy") if not p.name.startswith("health")] if path.parent.is_dir() else []
        if not path.is_file() and other:  # the second member reads the same numbers from a file of its own name
            path.symlink_to(other[0])
        if not path.is_file():
            V, D = ctx.cfg.tta.views, 1280
            centres = np.random.default_rng(1).normal(0, 1, (classes, D)).astype(np.float32)
            noise = np.random.default_rng(hash(member.label) % 2**32)
            tmp = path.with_suffix(".partial.npy")
            path.parent.mkdir(parents=True, exist_ok=True)
            with NpyWriter(tmp, (n, V, D), np.float16, block_rows=1) as out:
                for s in range(0, n, 8192):
                    t = truth[s : s + 8192]
                    x = centres[t][:, None, :] + noise.normal(0, 2.5, (len(t), V, D)).astype(np.float32)
                    out.write(s, np.abs(x).astype(np.float16))
            tmp.replace(path)
        return NpyFile(path)

    def generated_heads(ctx, frozen, pass_):  # logits drawn instead of fitted heads (--generated-logits)
        from harness.internals import Judge

        for r, m in frozen:
            features(ctx, m)
            judge = ctx.plan.judge_idx(r)
            path = ctx.run.logits_path(ctx.cfg, Judge(m), r, ctx.info, pass_.held_out)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".partial.npy")
            V = ctx.cfg.tta.views
            with NpyWriter(tmp, (len(judge), V, classes), np.float32, block_rows=1) as out:
                for s in range(0, len(judge), 4096):
                    t = truth[judge[s : s + 4096]]
                    x = rng.normal(0, 1, (len(t), V, classes)).astype(np.float32)
                    x[np.arange(len(t)), :, t] += 4.0
                    out.write(s, x)
            tmp.replace(path)
            ctx.watch.count("head_fits", 1)

    start.prepare = _timed(sampler, seconds, "prepare (synthetic)", prepare)
    heads.frozen_features = checks.frozen_features = features
    if generated_logits:
        clean_job.fit_frozen_heads = _timed(sampler, seconds, "heads (logits drawn)", generated_heads)
    original = Stopwatch.stage

    def stage(self, name):  # charge the sampled memory to the stage the run is in
        class Stage:
            def __enter__(inner):
                inner.previous = sampler.enter(name)
                inner.cm = original(self, name)
                return inner.cm.__enter__()

            def __exit__(inner, *exc):
                sampler.enter(inner.previous)
                return inner.cm.__exit__(*exc)
        return Stage()

    Stopwatch.stage = stage
    overrides = {"threads": 2, "weights_dir": str(WEIGHTS), "passes": passes}
    if memory_gb is not None:
        overrides["memory_gb"] = memory_gb
    cfg = load_config("cpu", overrides)
    out = work / "run"
    result, wall = run_clean(data, out, cfg)
    sampler.stopped.set()
    s = result.summary
    timings = {**s["timings_s"], **{k: round(v, 2) for k, v in seconds.items()}}
    disk = {sub: sum(p.lstat().st_size for p in (out / sub).rglob("*") if p.is_file()) / 2**20 for sub in ("features", "logits")}
    return {"n": n, "classes": classes, "wall_s": wall, "timings_s": timings, "work": s["work"], "peaks": sampler.peaks,
            "disk_mb": disk, "flagged": s["flagged"], "head_iters": None if generated_logits else head_iters}


# --- select ------------------------------------------------------------------------------------


def committee_bundle(work: Path) -> Path:
    """A small committee trained for one epoch on the demo's digit scans (10 classes)."""
    from harness.internals import write_noisy_digits

    bundle = work / "committee"
    if not (bundle / "committee.json").is_file():
        write_noisy_digits(work / "digits", noise=0.0, seed=0, per_class=40, classes=list(range(10)))
        subprocess.run([sys.executable, "-m", "datacleaner", "train", str(work / "digits"), "-c", "small", "--epochs", "1",
                        "--out", str(bundle), "-q"], check=True, cwd=ROOT)
    return bundle


def select_child(work: Path, n: int, bundle: Path, memory_gb: float | None) -> dict:
    import pandas as pd

    from harness.internals import QUIET, Committee, RunDir, digest, selection, write_bytes_atomic

    sampler, seconds = RssSampler(), {}
    sampler.start()
    rng = np.random.default_rng(0)
    committee = Committee.load(bundle, device=selection.SelectOptions().device)  # as select loads it: the shards' key
    C, M = len(committee.classes_), len(committee.judges_)
    paths = [f"cam{i % 10}/{i:07d}.png" for i in range(n)]
    pool_root, out = work / "pool", work / "select"
    shutil.rmtree(out, ignore_errors=True)
    fingerprint = f"synthetic-pool-{n}"
    truth = rng.integers(0, C, n)
    with np.load(bundle / "labeled.npz") as saved:
        mean, d = saved["mean"], saved["features"].shape[1]
    run = RunDir(out)
    shard = 4096
    key = digest([selection._committee_key(bundle), fingerprint, committee.config.device, shard, True])
    gen = sampler.enter("generate shards + facts")
    for s in range(0, n, shard):
        m = min(n, s + shard) - s
        logits = rng.normal(0, 1, (m, M, C)).astype(np.float32)
        logits[np.arange(m), :, truth[s : s + m]] += rng.uniform(0, 6, (m, 1)).astype(np.float32)
        member_probs = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
        feats = rng.normal(0, 1, (m, d)).astype(np.float32)
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        buf = io.BytesIO()
        np.savez(buf, fused=member_probs.mean(axis=1), member_probs=member_probs, features=feats.astype(np.float16))
        path = run.file("pool", f"shard-{key}-{s}.npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, **_facts(n, rng))
    write_bytes_atomic(run.health_facts_path(1, fingerprint), buf.getvalue())
    prod_label = np.where(rng.random(n) < 0.2, rng.integers(0, C, n), truth)
    pd.DataFrame({"path": paths, "label": np.array(committee.classes_)[prod_label], "score": rng.random(n).round(4)}).to_csv(
        work / "production.csv", index=False)
    sampler.enter(gen)
    del mean

    def decode_pool(pool, bundle_, run_, progress, budget=None):
        return selection.Pool(pool_root, paths, np.zeros((n, 1, 1, 3), np.uint8), {}, [f"{i:016x}" for i in range(n)],
                              fingerprint, None)

    selection._decode_pool = _timed(sampler, seconds, "find + decode (synthetic)", decode_pool)
    for name in ("_judge_pool", "load_production", "_pool_table", "_mark_known_pictures", "_rank", "write_csv_atomic"):
        setattr(selection, name, _timed(sampler, seconds, name.strip("_"), getattr(selection, name)))
    start = time.perf_counter()
    result = selection.select(pool_root, bundle, selection.Production(work / "production.csv"), out,
                              budget=1000, memory_gb=memory_gb, progress=QUIET)
    wall = time.perf_counter() - start
    sampler.stopped.set()
    return {"n": n, "wall_s": wall, "timings_s": {k: round(v, 2) for k, v in seconds.items()}, "peaks": sampler.peaks,
            "candidates": result.summary["candidates"]}


# --- driver ------------------------------------------------------------------------------------


def show(rows: list[dict], what: str) -> None:
    stages = []
    for r in rows:
        for k in list(r["peaks"]) + list(r["timings_s"]):
            if k not in stages and k != "start" and (r["timings_s"].get(k) or k in r["peaks"]):
                stages.append(k)
    body = []
    for st in stages:
        cells = []
        for r in rows:
            sec, peak = r["timings_s"].get(st), r["peaks"].get(st)
            cells += [f"{sec:,.1f}" if sec is not None else "", f"{peak['VmRSS']:,.0f} ({peak['RssAnon']:,.0f})" if peak else ""]
        body.append([st, *cells])
    body.append(["**whole run**", *[c for r in rows for c in (
        f"**{r['wall_s']:,.1f}**", f"**{max(p['VmRSS'] for p in r['peaks'].values()):,.0f}** ({max(p['RssAnon'] for p in r['peaks'].values()):,.0f})")]])
    print(f"\n{what}\n")
    print(table(["stage", *[c for r in rows for c in (f"N={r['n']:,}: s", "peak MB (anon)")]], body, "lr"))
    for r in rows:
        print(f"\nN={r['n']:,}: {json.dumps({k: r[k] for k in ('work', 'disk_mb', 'flagged', 'candidates', 'head_iters') if k in r})}")
        if "work" in r and r["work"].get("head_evaluations"):
            print(f"  heads: {r['timings_s'].get('train_heads', 0.0) / r['work']['head_evaluations']:.2f} s per loss evaluation "
                  f"({r['work']['head_evaluations']} evaluations in {r['work'].get('head_fits', 0)} fits)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["clean", "select"])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--head-iters", type=int, default=5, help="L-BFGS iterations per head (the profile: 200, most fits stop earlier)")
    ap.add_argument("--memory-gb", type=float, default=None, help="the runs' memory_gb (default: theirs)")
    ap.add_argument("--generated-logits", action="store_true",
                    help="clean: draw every head's logits instead of fitting the heads (fusion, scoring, health and writing at full size)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "memory")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        work = args.work / f"{args.what}-{args.child}-{args.classes}"
        if args.what == "clean":
            result = clean_child(work, args.child, args.classes, args.passes, args.head_iters, args.memory_gb, args.generated_logits)
        else:
            result = select_child(work, args.child, committee_bundle(args.work), args.memory_gb)
        print(json.dumps(result))
        return
    rows = []
    common = ["--classes", args.classes, "--passes", args.passes, "--head-iters", args.head_iters, "--work", args.work,
              *(["--memory-gb", args.memory_gb] if args.memory_gb else []), *(["--generated-logits"] if args.generated_logits else [])]
    if args.what == "select":
        committee_bundle(args.work)
    for n in (int(x) for x in args.sizes.split(",")):
        rows.append(child(__file__, args.what, "--child", n, *common, cwd=ROOT))
        shutil.rmtree(args.work / f"{args.what}-{n}-{args.classes}", ignore_errors=True)
        print(json.dumps(rows[-1]), flush=True)
    if args.what == "clean":
        heads = "heads' logits drawn, not fitted" if args.generated_logits else f"heads capped at {args.head_iters} L-BFGS iterations"
        show(rows, f"clean, cpu profile's shape: 2 frozen members x 2 views, 1,280-d features, cv 5 folds, "
                   f"{args.passes} pass(es), {args.classes:,} classes, {heads}")
    else:
        show(rows, "select: 2 members, 10 classes, shards of 4,096, production CSV, budget 1,000")


if __name__ == "__main__":
    main()
