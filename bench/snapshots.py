"""Snapshot members against members trained once and independent members, with flooding and focal loss.

On real digit scans (scikit-learn's 1,797) with planted label flips, the `small` profile's two
architectures (resnet10t + regnetx_002 from scratch at 32 px) are trained as:

  once E            each member once, cosine schedule, E epochs (the profile's recipe)
  snapshots SxL     each member once for S*L epochs, cosine_restarts every L epochs, the last S
                    cycles' weights judging as S members each (same training cost as `once S*L`)
  independent SxL   S independently seeded copies of each member, L epochs each (same training cost)
  flooding b        `once E` trained on |loss - b| + b
  focal g           `once E` with focal loss gamma g

and each run's review list is scored against the known flips: F1 of the list, AUROC of
label_quality, wall time (train / total). Every variant runs with `--seeds` config seeds (the
member initialisations and augmentation differ; the data and flips stay) and the table shows
the mean and the spread.

    python bench/snapshots.py [--noise 0.25 0.4] [--seeds 0 1] [--out runs/bench-snapshots] [--quick]

With `--cifar N`, the same variants on the first N images of CIFAR-10N (../shared/data, beside the
repository: see bench/paths.py) with the `random1` human labels (one annotator, 17% wrong), by one
ImageNet-pretrained MobileNetV2 fine-tuned at 64 px (the cpu profile's scheme, dling 5 folds;
AdamW 1e-3, label smoothing 0.1, E = 6 epochs in cycles of 2 unless given):

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
from datacleaner.demo import review_metrics, write_noisy_digits
from datacleaner.progress import QUIET
from datacleaner.runs import clean


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
    """(folder of the first n CIFAR-10N images with their random1 labels, truth table path + flipped)."""
    import pandas as pd

    from paths import CIFAR
    from real_noise import CLASSES, write_tree

    arrays = np.load(CIFAR)
    noisy, clean_label, index = (arrays[k][:n] for k in ("random_label1", "clean_label", "index"))
    data = out / f"cifar10n-random1-{n}"
    write_tree(data, arrays["images"][:n], noisy, index)
    truth = pd.DataFrame({"path": [f"{CLASSES[y]}/{i:05d}.png" for y, i in zip(noisy, index)], "flipped": noisy != clean_label})
    return data, truth


def cifar_config(seed: int, epochs: int):
    """One pretrained MobileNetV2 fine-tuned at 64 px with the cpu profile's scheme, folds, TTA and augmentation."""
    from paths import WEIGHTS

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
                result = clean(data, out, cfg, progress=QUIET)
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
    seeds = sorted({r["seed"] for r in rows})
    print(f"\nmean over config seeds {', '.join(map(str, seeds))} (+- half the range)\n")
    print("| noise | variant | judges | F1 | AUROC | train s | wall s |")
    print("|---|---|---|---|---|---|---|")
    for noise in sorted({r["noise"] for r in rows}):
        names = list(dict.fromkeys(r["variant"] for r in rows if r["noise"] == noise))
        for name in names:
            group = [r for r in rows if r["noise"] == noise and r["variant"] == name]

            def stat(key, digits=3):
                v = np.array([r[key] for r in group], dtype=float)
                spread = (v.max() - v.min()) / 2
                return f"{v.mean():.{digits}f}" + (f" ± {spread:.{digits}f}" if len(v) > 1 else "")

            print(f"| {noise:.2f} | {name} | {group[0]['judges']} | {stat('f1')} | {stat('auroc')} | "
                  f"{stat('train_s', 0)} | {stat('wall_s', 0)} |")


if __name__ == "__main__":
    raise SystemExit(main())
