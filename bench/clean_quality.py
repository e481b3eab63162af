"""Quality of `clean` on real digit scans with known flipped labels (docs/benchmarks.md, "`clean` quality").

Per noise level, the `small` profile's committee with both schemes, ablations at the default scheme (no
TTA, one member; cached weights predict again, the single member without TTA is a fresh run), then the
flag rule's tau and T re-scored from the cached logits.

    python bench/clean_quality.py [--noise 0.1 0.25] [--out runs/bench-clean] [--quick]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from datacleaner.config import load_config
from datacleaner import rescore

from harness.internals import QUIET, review_metrics, write_noisy_digits
from harness.report import table
from harness.run import run_clean


def variant(cfg, views=None, members=None, **changes):
    cfg = copy.deepcopy(cfg)
    for key, value in changes.items():
        setattr(cfg, key, value)
    if views:
        cfg.tta.views = views
    if members:
        cfg.members = [m for m in cfg.members if m.label in members]
    return cfg


def bench_noise(noise: float, out: Path, quick: bool) -> tuple[list[dict], list[dict]]:
    data = out / f"digits-{noise:.2f}"
    truth = write_noisy_digits(data, noise=noise, seed=0, per_class=60 if quick else None)
    base = load_config("small", {"epochs": 2} if quick else None)  # resnet10t + regnetx_002 from scratch at 32 px
    first = base.members[0].label
    rows, sweep = [], []

    def add(name, cfg, run_dir, note=""):
        result, seconds = run_clean(data, run_dir, cfg)
        rows.append({"method": name, **review_metrics(result.scores, truth), "seconds": round(seconds, 1), "note": note})
        return result

    for scheme in [base.scheme] + [s for s in ("dling", "cv") if s != base.scheme]:
        run_dir, cfg = out / f"run-{noise:.2f}-{scheme}", variant(base, scheme=scheme)
        result = add(f"committee {scheme} + TTA" + (" (default)" if scheme == base.scheme else ""), cfg, run_dir)
        judgements = result.summary["judgements_per_image"]
        for tau in (0.1, 0.2, 0.3, 0.4, 0.5):
            for T in sorted({1, judgements // 2 + 1, judgements}):
                r = rescore(run_dir, tau=tau, min_flags=T, progress=QUIET)
                sweep.append({"scheme": scheme, "tau": tau, "T": T, **review_metrics(r.scores, truth)})
        if scheme == base.scheme:  # ablations at the default flag rule
            add(f"committee {scheme}, no TTA", variant(cfg, views=1), run_dir, "cached weights: predict only")
            add(f"{first} alone {scheme} + TTA", variant(cfg, members=[first]), run_dir, "cached weights: predict only")
            add(f"{first} alone {scheme}, no TTA", variant(cfg, members=[first], views=1), out / f"run-{noise:.2f}-single", "fresh run")
        run_clean(data, run_dir, cfg)  # leave the run as the config wrote it
    return rows, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.10, 0.25])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-clean"))
    parser.add_argument("--quick", action="store_true", help="60 images per class, 2 epochs: a smoke run")
    args = parser.parse_args()
    for noise in args.noise:
        rows, sweep = bench_noise(noise, args.out, args.quick)
        print(f"\n### digits, {noise:.0%} of labels flipped ({rows[0]['images']} images, {rows[0]['flipped']} flipped)\n")
        print(table(["method", "flagged", "precision", "recall", "F1", "AUROC", "wall s", "note"], [
            [r["method"], r["flagged"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", f"{r['auroc']:.4f}",
             f"{r['seconds']:.0f}", r["note"]] for r in rows], "lrrrrrrl"))
        print(f"\nflag-rule sweep (re-scored from cached logits), {noise:.0%} flipped:\n")
        print(table(["scheme", "tau", "T", "flagged", "precision", "recall", "F1"], [
            [s["scheme"], s["tau"], s["T"], s["flagged"], f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}"]
            for s in sweep], "lr"), flush=True)


if __name__ == "__main__":
    main()
