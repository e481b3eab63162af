"""`clean` on real human label noise (CIFAR-10N) against confident learning (cleanlab).

Images [offset, offset + n) of ../shared/data/cifar10n_20k.npz as PNG class folders under a label set,
the real `clean` (the Python API the CLI calls) with both schemes, one table per label set, every row
judged against CIFAR's own labels: ours with the config's defaults (checked against scores.csv), each
quality option alone re-scored from the cached logits, ablations (no TTA, one member), and cleanlab's
filters and rankings fed the committee's one-pass and pass-2 probabilities (docs/benchmarks.md).

    python bench/real_noise.py                 # 10,000 images, three noisy label sets and the original labels
    python bench/real_noise.py --quick         # 2,000 images at 64 px
    python bench/real_noise.py --offset 10000  # the held-out half
    python bench/real_noise.py --sweep ...     # committees, sizes, rules on cached features: bench/committee_sweep.py
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from datacleaner.config import load_config

from harness.data import cifar_tree
from harness.internals import FoldPlan, RunDir, judge_outputs, primary_issue, round_outputs
from harness.judge import list_metrics, review_order
from harness.report import table
from harness.run import run_clean
from paths import CIFAR, ROOT, WEIGHTS, config_name

LABEL_SETS = {"aggre": "aggre_label", "random1": "random_label1", "worse": "worse_label",
              "clean": "clean_label"}  # clean: the original CIFAR labels (a handful of real errors): every flag a false alarm


def judge(outs, labels, cfg, judgements, *, members=None, views=None, **options):
    """Scores from cached round outputs, the config's options overridden by `options`; `members`
    keeps only those members, `views` only the first V views."""
    cfg = dataclasses.replace(cfg, **options)
    if members is not None:
        cfg.members = [cfg.members[m] for m in members]
        outs = [(idx, o[:, members]) for idx, o in outs]
    if views is not None:
        outs = [(idx, o[:, :, :views]) for idx, o in outs]
    return judge_outputs(outs, labels, cfg, judgements)[0]


def bench_label_set(name: str, args, cfg_base) -> list[dict]:
    data = args.work / f"cifar10n-{name}-{args.offset}-{args.n}"
    truth = cifar_tree(data, np.arange(args.offset, args.offset + args.n), LABEL_SETS[name])
    wrong = dict(zip(truth["path"], truth["true_label"] != truth["given_label"]))
    run_dir = args.work / f"run-{name}-{args.offset}-{args.n}-{args.tag}"
    ks = [k for k in args.k if k <= args.n]
    rows = []
    for s_i, scheme in enumerate(args.schemes):
        cfg = copy.deepcopy(cfg_base)
        cfg.scheme = scheme
        result, wall = run_clean(data, run_dir, cfg, quiet=args.quiet)
        wall = round(wall, 1)
        run = RunDir(run_dir)
        info = run.read_json("run.json")
        manifest = pd.read_csv(run.file("manifest.csv"), dtype={"path": str}, keep_default_na=False)
        labels = manifest["label"].to_numpy(dtype=np.int64)
        is_error = np.array([wrong[p] for p in manifest["path"]])
        plan = FoldPlan(scheme=cfg.scheme, part=manifest["part"].to_numpy(dtype=np.int64))
        J = plan.judgements_per_image

        def stacked(held_out=None):  # per round (idx, (n, M, V, C)): the bench slices members and views
            return [(idx, np.stack(parts, axis=1)) for idx, parts in round_outputs(run, cfg, info, plan, held_out)]

        outs1 = stacked()  # pass 1: the committee's ordinary out-of-sample judgements
        second = run.read_json("second_pass.json") if cfg.passes == 2 else None
        outs = stacked(second["held_out"]) if second else outs1

        def row(method, flagged, quality, order, seconds=None, note="", **est_noise):
            rows.append({"labels": name, "scheme": scheme, "method": method, "true_noise": float(is_error.mean()), **est_noise,
                         **list_metrics(is_error, flagged, quality, order, ks), "seconds": seconds, "note": note})

        def ours(method, s, seconds=None, note="rescore"):
            row(method, s.in_review, s.label_quality, review_order(s.flag_count, s.label_quality), seconds, note,
                est_noise=s.estimated_noise_rate())

        # ours as the pipeline wrote it (scores.csv), checked against a recomputation from the cache
        written = result.scores.set_index("path").loc[manifest["path"]]
        default = judge(outs, labels, cfg, J)
        assert np.array_equal(primary_issue(written["issue"]).isin(["mislabel", "low_confidence"]).to_numpy(), default.in_review)
        frozen = any(m.frozen for m in cfg.members)
        ours("ours (config defaults)", default, wall, "features cached by the first scheme" if s_i and frozen else "")
        t0 = time.time()
        if cfg.passes == 2:
            ours("ours, passes=1", judge(outs1, labels, cfg, J))
        for option, value in [("flag_rule", "noise_rate"), ("flag_rule", "class_adaptive"), ("flag_rule", "fixed"),
                              ("calibrate", True), ("calibrate", False), ("fit_weights", True), ("fit_weights", False),
                              ("label_quality", "normalized_margin"), ("label_quality", "self_confidence")]:
            if getattr(cfg, option) != value:
                ours(f"ours, {option}={value}", judge(outs, labels, cfg, J, **{option: value}))
        for tau in args.taus:
            ours(f"ours, flag_rule=fixed, tau={tau}", judge(outs, labels, cfg, J, flag_rule="fixed", tau=tau))
        ours("ours, committee without TTA, 1 pass", judge(outs1, labels, cfg, J, views=1))
        for m, member in enumerate(cfg.members):
            ours(f"ours, {member.label} alone without TTA, 1 pass", judge(outs1, labels, cfg, J, members=[m], views=1))
        rescore_s = round(time.time() - t0, 1)

        # cleanlab on the same out-of-sample fused probabilities
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        sources = [("", judge(outs1, labels, cfg, J).mean_probs)]  # (N, C): fused, averaged over rounds
        if cfg.passes == 2:
            sources.append((" [fed pass-2 probs]", default.mean_probs))
        for tag, probs in sources:
            for method in ("self_confidence", "normalized_margin"):
                t0 = time.time()
                q = get_label_quality_scores(labels, probs, method=method)
                secs = round(time.time() - t0, 1)
                order = np.argsort(q, kind="stable")
                for filter_by in (("prune_by_noise_rate", "predicted_neq_given", "both") if method == "self_confidence" else ()):
                    t0 = time.time()
                    issues = find_label_issues(labels, probs, filter_by=filter_by)
                    row(f"cleanlab find_label_issues({filter_by}){tag}", issues, q, order, round(time.time() - t0, 1),
                        "ranked by self_confidence", est_noise=float(issues.mean()))
                row(f"cleanlab {method} ranking{tag}", None, q, order, secs)
        print(f"[{name} {scheme}] clean {wall} s, variants {rescore_s} s", file=sys.stderr, flush=True)
    return rows


def fmt(rows: list[dict], ks) -> str:
    def f(r, key, digits=3):
        return "—" if r.get(key) is None else f"{r[key]:.{digits}f}"

    return table(["scheme", "method", "flagged", "precision", "recall", "F1", "AUROC", "AP"] + [f"P@{k}" for k in ks]
                 + ["est. / true noise", "wall s"], [
        [r["scheme"], r["method"], "—" if r.get("flagged") is None else f"{r['flagged']} ({r['flagged_share']:.1%})",
         f(r, "precision"), f(r, "recall"), f(r, "f1"), f(r, "auroc"), f(r, "ap"), *[f(r, f"p@{k}", 2) for k in ks],
         (f"{r['est_noise']:.3f}" if "est_noise" in r else "—") + f" / {r['true_noise']:.3f}",
         "rescore" if r["seconds"] is None else f"{r['seconds']:.1f}"] for r in rows], "llr")


def main() -> None:
    if "--sweep" in sys.argv:  # committees x input sizes on cached features: bench/committee_sweep.py
        from committee_sweep import main as sweep

        raise SystemExit(sweep([a for a in sys.argv[1:] if a != "--sweep"]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=config_name, default="cpu", help="profile name or YAML file (default: cpu)")
    ap.add_argument("--weights-dir", type=Path, default=WEIGHTS, help="pretrained weights (default: ../shared/weights)")
    ap.add_argument("--labels", nargs="+", default=list(LABEL_SETS), choices=list(LABEL_SETS))
    ap.add_argument("--schemes", nargs="+", default=["dling", "cv"])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--offset", type=int, default=0, help="first image; 10000 = the held-out half (never tuned on)")
    ap.add_argument("--quick", action="store_true", help="2,000 images, members at 64 px")
    ap.add_argument("--img-size", type=int, default=None, help="override every member's img_size")
    ap.add_argument("--taus", type=float, nargs="*", default=[0.3])
    ap.add_argument("--k", type=int, nargs="+", default=[100, 500, 1000])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-real-noise")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if not CIFAR.is_file():
        sys.exit(f"{CIFAR} not found: this benchmark needs the shared CIFAR-10N file")
    cfg = load_config(args.config, {"weights_dir": args.weights_dir})
    if args.quick:
        args.n, args.img_size, args.k = min(args.n, 2000), args.img_size or 64, [50, 100, 200]
    for m in cfg.members:
        m.img_size = args.img_size or m.img_size
    args.tag = f"{Path(args.config).stem}-{cfg.members[0].img_size}"
    started = time.time()
    for name in args.labels:
        rows = bench_label_set(name, args, cfg)
        print(f"\n### {name} ({LABEL_SETS[name]}), images {args.offset}-{args.offset + args.n - 1}, "
              f"true noise {rows[0]['true_noise']:.3f}, config {Path(args.config).name}, {cfg.members[0].img_size} px\n")
        print(fmt(rows, [k for k in args.k if k <= args.n]), flush=True)
    print(f"\ntotal wall time {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
