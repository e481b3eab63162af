"""`clean` on real human label noise (CIFAR-10N) against confident learning (cleanlab).

Writes images [offset, offset + n) of ../shared/data/cifar10n_20k.npz (beside the repository,
not part of it: see bench/paths.py) as a class-folder
tree of PNGs with a noisy label set, runs the real `clean` pipeline (the Python API the
CLI calls) with both schemes, and prints one table per label set. Every row is judged
against the ground truth (`clean_label`):

  - ours: the config's defaults, with scheme dling and scheme cv;
  - each quality option alone (second pass, flag rules, temperature calibration, fitted
    fusion weights, normalized-margin ranking), re-scored from the same cached logits;
  - cleanlab's find_label_issues (default prune_by_noise_rate, predicted_neq_given, both)
    and its self_confidence / normalized_margin rankings, fed the committee's one-pass
    out-of-sample fused probabilities, and (with passes: 2) also exactly the pass-2
    probabilities ours scores from;
  - ablations: the committee without TTA, one member without TTA (one pass each).

Columns: flagged, precision / recall / F1 of the flagged set, AUROC and average
precision of the ranking score (lower = more likely wrong), precision of the first k of
the review order, the estimated noise rate against the true one, wall time.

    python bench/real_noise.py                 # 10,000 images, the three noisy label sets and the original labels (about 5 min each on 2 cores)
    python bench/real_noise.py --quick         # 2,000 images at 64 px (about 1.5 min)
    python bench/real_noise.py --offset 10000  # the held-out half: do defaults hold on new images?
    python bench/real_noise.py --labels clean  # the original labels: the share flagged is the false-alarm rate
    python bench/real_noise.py --sweep --sizes 128 160 224 --variants   # committees, sizes, other rules (committee_sweep.py)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from datacleaner.config import load_config
from datacleaner.folds import FoldPlan
from datacleaner.progress import QUIET
from datacleaner.runs import RunDir, clean, judge_outputs, round_outputs
from datacleaner.tables import primary_issue

from paths import CIFAR as DATA, ROOT, WEIGHTS, config_name

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
LABEL_SETS = {"aggre": "aggre_label", "random1": "random_label1", "worse": "worse_label",
              "clean": "clean_label"}  # clean: the original CIFAR labels (a handful of real errors): every flag a false alarm


def write_tree(out: Path, images: np.ndarray, labels: np.ndarray, index: np.ndarray) -> None:
    """out/<class>/<cifar index>.png for each image; skipped when already complete."""
    done = out / ".complete"
    if done.is_file():
        return
    for c in CLASSES:
        (out / c).mkdir(parents=True, exist_ok=True)
    for img, y, i in zip(images, labels, index):
        Image.fromarray(img).save(out / CLASSES[y] / f"{i:05d}.png")
    done.write_text("ok\n")


def review_order(flag_count: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices in review.csv's order: most flags first, then lowest label quality."""
    return np.lexsort((np.nan_to_num(quality, nan=2.0), -flag_count))


def metrics(is_error: np.ndarray, flagged: np.ndarray | None, quality: np.ndarray, order: np.ndarray, ks) -> dict:
    row = {}
    if flagged is not None:
        tp = int((flagged & is_error).sum())
        p, r = tp / max(1, flagged.sum()), tp / max(1, is_error.sum())
        row.update(flagged=int(flagged.sum()), precision=p, recall=r, f1=2 * p * r / max(1e-12, p + r),
                   flagged_share=float(flagged.mean()))
    both = 0 < is_error.sum() < len(is_error)  # clean labels: no wrong label, no ranking to judge
    row.update(auroc=roc_auc_score(is_error, -quality) if both else None,
               ap=average_precision_score(is_error, -quality) if both else None)
    for k in ks:
        row[f"p@{k}"] = float(is_error[order[:k]].mean())
    return row


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


def bench_label_set(name: str, arrays, args, cfg_base) -> list[dict]:
    sel = np.arange(args.offset, args.offset + args.n)
    noisy = arrays[LABEL_SETS[name]][sel]
    data = args.work / f"cifar10n-{name}-{args.offset}-{args.n}"
    write_tree(data, arrays["images"][sel], noisy, arrays["index"][sel])
    truth = {f"{CLASSES[y]}/{i:05d}.png": bool(y != c) for y, i, c in zip(noisy, arrays["index"][sel], arrays["clean_label"][sel])}
    run_dir = args.work / f"run-{name}-{args.offset}-{args.n}-{args.tag}"
    ks = [k for k in args.k if k <= args.n]
    rows = []
    for s_i, scheme in enumerate(args.schemes):
        cfg = copy.deepcopy(cfg_base)
        cfg.scheme = scheme
        t0 = time.time()
        result = clean(data, run_dir, cfg, progress=QUIET if args.quiet else None)
        wall = round(time.time() - t0, 1)
        run = RunDir(run_dir)
        info = run.read_json("run.json")
        manifest = pd.read_csv(run.file("manifest.csv"), dtype={"path": str}, keep_default_na=False)
        labels = manifest["label"].to_numpy(dtype=np.int64)
        is_error = np.array([truth[p] for p in manifest["path"]])
        plan = FoldPlan(scheme=cfg.scheme, part=manifest["part"].to_numpy(dtype=np.int64))
        J = plan.judgements_per_image
        def stacked(held_out=None):  # per round (idx, (n, M, V, C)): the bench slices members and views
            return [(idx, np.stack(parts, axis=1)) for idx, parts in round_outputs(run, cfg, info, plan, held_out)]

        outs1 = stacked()  # pass 1: the committee's ordinary out-of-sample judgements
        second = run.read_json("second_pass.json") if cfg.passes == 2 else None
        outs = stacked(second["held_out"]) if second else outs1

        def add(method, s, seconds, note=""):
            rows.append({"labels": name, "scheme": scheme, "method": method, "true_noise": float(is_error.mean()),
                         "est_noise": s.estimated_noise_rate(),
                         **metrics(is_error, s.in_review, s.label_quality, review_order(s.flag_count, s.label_quality), ks),
                         "seconds": seconds, "note": note})

        # ours as the pipeline wrote it (scores.csv), checked against a recomputation from the cache
        table = result.scores.set_index("path").loc[manifest["path"]]
        default = judge(outs, labels, cfg, J)
        assert np.array_equal(primary_issue(table["issue"]).isin(["mislabel", "low_confidence"]).to_numpy(), default.in_review)
        frozen = any(m.frozen for m in cfg.members)
        add("ours (config defaults)", default, wall, "features cached by the first scheme" if s_i and frozen else "")
        t0 = time.time()
        if cfg.passes == 2:
            add("ours, passes=1", judge(outs1, labels, cfg, J), None, "rescore")
        for option, value in [("flag_rule", "noise_rate"), ("flag_rule", "class_adaptive"), ("flag_rule", "fixed"),
                              ("calibrate", True), ("calibrate", False), ("fit_weights", True), ("fit_weights", False),
                              ("label_quality", "normalized_margin"), ("label_quality", "self_confidence")]:
            if getattr(cfg, option) == value:
                continue
            add(f"ours, {option}={value}", judge(outs, labels, cfg, J, **{option: value}), None, "rescore")
        for tau in args.taus:
            add(f"ours, flag_rule=fixed, tau={tau}", judge(outs, labels, cfg, J, flag_rule="fixed", tau=tau), None, "rescore")
        add("ours, committee without TTA, 1 pass", judge(outs1, labels, cfg, J, views=1), None, "rescore")
        for m, member in enumerate(cfg.members):
            add(f"ours, {member.label} alone without TTA, 1 pass", judge(outs1, labels, cfg, J, members=[m], views=1), None, "rescore")
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
                for filter_by in (("prune_by_noise_rate", "predicted_neq_given", "both") if method == "self_confidence" else ()):
                    t0 = time.time()
                    issues = find_label_issues(labels, probs, filter_by=filter_by)
                    s = round(time.time() - t0, 1)
                    rows.append({"labels": name, "scheme": scheme, "method": f"cleanlab find_label_issues({filter_by}){tag}",
                                 "true_noise": float(is_error.mean()), "est_noise": float(issues.mean()),
                                 **metrics(is_error, issues, q, np.argsort(q, kind="stable"), ks), "seconds": s,
                                 "note": "ranked by self_confidence"})
                rows.append({"labels": name, "scheme": scheme, "method": f"cleanlab {method} ranking{tag}",
                             "true_noise": float(is_error.mean()), **metrics(is_error, None, q, np.argsort(q, kind="stable"), ks),
                             "seconds": secs, "note": ""})
        print(f"[{name} {scheme}] clean {wall} s, variants {rescore_s} s", file=sys.stderr, flush=True)
    return rows


def fmt(rows: list[dict], ks) -> str:
    head = ["scheme", "method", "flagged", "precision", "recall", "F1", "AUROC", "AP"] + [f"P@{k}" for k in ks] + ["est. / true noise", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for r in rows:
        def f(key, digits=3):
            v = r.get(key)
            return "—" if v is None else f"{v:.{digits}f}"
        noise = f"{r['est_noise']:.3f} / {r['true_noise']:.3f}" if "est_noise" in r else f"— / {r['true_noise']:.3f}"
        flagged = "—" if r.get("flagged") is None else f"{r['flagged']} ({r['flagged_share']:.1%})"
        cells = [r["scheme"], r["method"], flagged, f("precision"), f("recall"), f("f1"), f("auroc"), f("ap")]
        cells += [f(f"p@{k}", 2) for k in ks] + [noise, "rescore" if r["seconds"] is None else f"{r['seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if not DATA.is_file():
        sys.exit(f"{DATA} not found: this benchmark needs the shared CIFAR-10N file")
    cfg = load_config(args.config, {"weights_dir": args.weights_dir})
    if args.quick:
        args.n = min(args.n, 2000)
        args.img_size = args.img_size or 64
        args.k = [k for k in (50, 100, 200)]
    if args.img_size:
        for m in cfg.members:
            m.img_size = args.img_size
    args.tag = f"{Path(args.config).stem}-{cfg.members[0].img_size}"
    arrays = dict(np.load(DATA))
    started = time.time()
    all_rows = []
    for name in args.labels:
        rows = bench_label_set(name, arrays, args, cfg)
        all_rows += rows
        print(f"\n### {name} ({LABEL_SETS[name]}), images {args.offset}-{args.offset + args.n - 1}, "
              f"true noise {rows[0]['true_noise']:.3f}, config {Path(args.config).name}, {cfg.members[0].img_size} px\n")
        print(fmt(rows, [k for k in args.k if k <= args.n]), flush=True)
    print(f"\ntotal wall time {time.time() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(all_rows, indent=1))


if __name__ == "__main__":
    main()
