"""Quality of `clean` on real digit scans with known flipped labels.

For each noise level: precision, recall and F1 of the review list, AUROC of
label_quality, and wall time, for
  - the committee (the `small` profile) with its default scheme and the other one,
  - ablations at the default scheme and flag rule: the committee without TTA, one member
    with TTA, one member without TTA (a fresh run, so its wall time is honest),
then a sweep of tau (and T for dling) re-scored from the cached logits, which is how
the defaults were chosen.

    python bench/clean_quality.py [--noise 0.1 0.25] [--out runs/bench-clean] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

from datacleaner.config import load_config
from datacleaner.demo import review_metrics, write_noisy_digits
from datacleaner.progress import QUIET
from datacleaner.runs import clean, rescore

CONFIG = "small"  # the built-in profile: resnet10t + regnetx_002 from scratch at 32 px


def row(name, result, truth, seconds, note=""):
    m = review_metrics(result.scores, truth)
    return {"method": name, **m, "seconds": seconds, "note": note}


def timed(fn, *args, **kwargs):
    t0 = time.time()
    out = fn(*args, **kwargs)
    return out, round(time.time() - t0, 1)


def variant(cfg, **changes):
    cfg = copy.deepcopy(cfg)
    for key, value in changes.items():
        if key == "views":
            cfg.tta.views = value
        elif key == "members":
            cfg.members = [m for m in cfg.members if m.label in value]
        else:
            setattr(cfg, key, value)
    return cfg


def bench_noise(noise: float, out: Path, quick: bool) -> tuple[list[dict], list[dict]]:
    data = out / f"digits-{noise:.2f}"
    truth = write_noisy_digits(data, noise=noise, seed=0, per_class=60 if quick else None)
    base = load_config(CONFIG, {"epochs": 2} if quick else None)
    first = base.members[0].label
    rows, sweep = [], []
    schemes = [base.scheme] + [s for s in ("dling", "cv") if s != base.scheme]
    for scheme in schemes:
        run_dir = out / f"run-{noise:.2f}-{scheme}"
        cfg = variant(base, scheme=scheme)
        result, secs = timed(clean, data, run_dir, cfg, progress=QUIET)
        default = " (default)" if scheme == base.scheme else ""
        rows.append(row(f"committee {scheme} + TTA{default}", result, truth, secs))
        judgements = result.summary["judgements_per_image"]
        for tau in (0.1, 0.2, 0.3, 0.4, 0.5):
            for T in sorted({1, judgements // 2 + 1, judgements}):
                r = rescore(run_dir, tau=tau, min_flags=T, progress=QUIET)
                sweep.append({"scheme": scheme, "tau": tau, "T": T, **review_metrics(r.scores, truth)})
        if scheme == base.scheme:  # ablations at the default flag rule
            no_tta, secs = timed(clean, data, run_dir, variant(cfg, views=1), progress=QUIET)
            rows.append(row(f"committee {scheme}, no TTA", no_tta, truth, secs, "cached weights: predict only"))
            single, secs = timed(clean, data, run_dir, variant(cfg, members=[first]), progress=QUIET)
            rows.append(row(f"{first} alone {scheme} + TTA", single, truth, secs, "cached weights: predict only"))
            plain_dir = out / f"run-{noise:.2f}-single"
            plain, secs = timed(clean, data, plain_dir, variant(cfg, members=[first], views=1), progress=QUIET)
            rows.append(row(f"{first} alone {scheme}, no TTA", plain, truth, secs, "fresh run"))
        clean(data, run_dir, cfg, progress=QUIET)  # leave the run as the config wrote it
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
        print("| method | flagged | precision | recall | F1 | AUROC | wall s | note |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for r in rows:
            print(
                f"| {r['method']} | {r['flagged']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
                f"{r['auroc']:.4f} | {r['seconds']:.0f} | {r['note']} |"
            )
        print(f"\nflag-rule sweep (re-scored from cached logits), {noise:.0%} flipped:\n")
        print("| scheme | tau | T | flagged | precision | recall | F1 |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for s in sweep:
            print(f"| {s['scheme']} | {s['tau']} | {s['T']} | {s['flagged']} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
