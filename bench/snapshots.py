"""Snapshot members against members trained once and independent members, with flooding and focal loss.

Digit scans with planted flips, the `small` profile's two architectures trained as: `once E` (each member
once, E epochs), `snapshots SxL` (E = S*L epochs with cosine restarts every L, the last S cycles' weights
judging), `independent SxL` (S seeded copies of each member, L epochs each), `flooding b` and `focal g`
(`once E` with that loss). Each review list is scored against the flips over `--seeds` config seeds (mean
and half the range). `--cifar N`: the first N CIFAR-10N images with the random1 labels, one pretrained
MobileNetV2 fine-tuned at 64 px (E = 6 in cycles of 2 unless given). See docs/benchmarks.md.

    python bench/snapshots.py [--noise 0.25 0.4] [--seeds 0 1] [--out runs/bench-snapshots] [--quick]
    python bench/snapshots.py --cifar 3000 --seeds 0 1
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from datacleaner.config import load_config

from harness.data import cifar_tree
from harness.internals import review_metrics, write_noisy_digits
from harness.report import table
from harness.run import run_clean
from paths import WEIGHTS


def variants(base, epochs: int, cycle: int, quick: bool) -> dict[str, object]:
    """name -> config: the same two architectures trained in each way."""
    S = epochs // cycle

    def members(**recipe):
        cfg = copy.deepcopy(base)
        cfg.members = [dataclasses.replace(m, **recipe) for m in cfg.members]
        return cfg

    out = {
        f"once {epochs}": members(epochs=epochs),
        f"snapshots {S}x{cycle}": members(epochs=epochs, schedule="cosine_restarts", restart_epochs=cycle, snapshots=S),
        f"independent {S}x{cycle}": _copies(members(epochs=cycle), S),
    }
    if not quick:
        out[f"independent {S}x{epochs}"] = _copies(members(epochs=epochs), S)
        for b in (0.5, 1.0):  # a model that does not memorise wrong labels keeps its loss near ~1 on noisy digits
            out[f"flooding {b}"] = members(epochs=epochs, flooding=b)
        for g in (1.0, 2.0):
            out[f"focal {g:g}"] = members(epochs=epochs, focal_gamma=g)
    return out


def digits_data(data: Path, noise: float, quick: bool):
    """The digits with `noise` of their labels flipped, written once (a re-run reuses the folder, so
    its finished runs are reused too); the truth table: path, flipped."""
    import pandas as pd

    table = data.with_name(data.name + "-truth.csv")
    if not table.is_file():
        write_noisy_digits(data, noise=noise, seed=0, per_class=30 if quick else None).to_csv(table, index=False)
    return pd.read_csv(table, dtype={"path": str})


def cifar_data(out: Path, n: int):
    """(folder of the first n CIFAR-10N images with their random1 labels, truth table: path + flipped)."""
    truth = cifar_tree(out / f"cifar10n-random1-{n}", np.arange(n), "random_label1")
    return out / f"cifar10n-random1-{n}", truth.assign(flipped=truth["true_label"] != truth["given_label"])


def cifar_config(seed: int, epochs: int):
    """One pretrained MobileNetV2 fine-tuned at 64 px with the cpu profile's scheme, folds, TTA and augmentation."""
    cfg = load_config("cpu", {"seed": seed, "device": "cpu", "weights_dir": str(WEIGHTS)})
    member = next(m for m in cfg.members if m.arch.startswith("mobilenetv2"))
    cfg.members = [dataclasses.replace(member, frozen=False, img_size=64, epochs=epochs, batch_size=64, optimizer="adamw",
                                       lr=1e-3, weight_decay=0.05, warmup_epochs=1, label_smoothing=0.1)]
    return cfg


def _copies(cfg, n: int):
    """n independently seeded copies of every member (a member's seed follows its name)."""
    cfg.members = [dataclasses.replace(m, name=f"{m.label}_{k}") for m in cfg.members for k in range(n)]
    return cfg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.25, 0.4])  # at 0.1 every variant finds ~all flips
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=12, help="training epochs per member (E)")
    ap.add_argument("--cycle", type=int, default=4, help="epochs per learning-rate cycle (L); S = E / L")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-snapshots"))
    ap.add_argument("--quick", action="store_true", help="300 images, 4 epochs in cycles of 2, three variants")
    ap.add_argument("--cifar", type=int, default=0, metavar="N", help="the first N CIFAR-10N images (random1 labels) instead of digits")
    args = ap.parse_args()
    if args.cifar and "--epochs" not in sys.argv:
        args.epochs, args.cycle = 6, 2
    epochs, cycle = (4, 2) if args.quick else (args.epochs, args.cycle)
    rows = []
    for noise in [None] if args.cifar else args.noise:
        if args.cifar:
            data, truth = cifar_data(args.out, args.cifar)
            noise = float(truth["flipped"].mean())
        else:
            data = args.out / f"digits-{noise:.2f}"
            truth = digits_data(data, noise, args.quick)
        for seed in args.seeds:
            base = cifar_config(seed, epochs) if args.cifar else load_config("small", {"seed": seed, "device": "cpu"})
            for name, cfg in variants(base, epochs, cycle, args.quick).items():
                out = args.out / f"{'cifar' if args.cifar else 'digits'}-{noise:.2f}-s{seed}-{name.replace(' ', '_')}"
                result = run_clean(data, out, cfg)[0]
                m = review_metrics(result.scores, truth)
                s = json.loads((out / "summary.json").read_text())
                timings = s.get("timings_s", {})
                rows.append({"noise": noise, "seed": seed, "variant": name, "judges": len(s["members"]), "f1": m["f1"],
                             "auroc": m["auroc"], "train_s": timings.get("train", 0.0), "wall_s": s["wall_time_s"]})
                print(f"  {noise:.2f} seed {seed} {name:<18} F1 {m['f1']:.3f} AUROC {m['auroc']:.3f} "
                      f"wall {s['wall_time_s']:.0f} s", file=sys.stderr, flush=True)
                with open(args.out / "results.jsonl", "a") as log:  # every finished run, as it finishes
                    log.write(json.dumps(rows[-1]) + "\n")
    print_table(rows)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    return 0


def print_table(rows: list[dict]) -> None:
    def stat(group, key, digits=3):
        v = np.array([r[key] for r in group], dtype=float)
        return f"{v.mean():.{digits}f}" + (f" ± {(v.max() - v.min()) / 2:.{digits}f}" if len(v) > 1 else "")

    lines = []
    for noise in sorted({r["noise"] for r in rows}):
        for name in dict.fromkeys(r["variant"] for r in rows if r["noise"] == noise):
            group = [r for r in rows if r["noise"] == noise and r["variant"] == name]
            lines.append([f"{noise:.2f}", name, group[0]["judges"], stat(group, "f1"), stat(group, "auroc"), stat(group, "train_s", 0),
                          stat(group, "wall_s", 0)])
    print(f"\nmean over config seeds {', '.join(map(str, sorted({r['seed'] for r in rows})))} (+- half the range)\n")
    print(table(["noise", "variant", "judges", "F1", "AUROC", "train s", "wall s"], lines))


if __name__ == "__main__":
    raise SystemExit(main())
