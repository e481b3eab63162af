"""Active-learning simulation for `select` on real digit scans (or CIFAR photos).

Per seed: a stratified labeled seed set trains the production model; the rest is an unlabeled pool and a
held-out test set. Each round every strategy picks B pool images, their true labels are revealed, production
is retrained and its test accuracy recorded. Strategies: random, production entropy and margin, ours
(`select`'s ranking with the `small` profile's committee retrained each round) and ours with --diverse.
`--data cifar`: CIFAR photos 10,000-19,999, the `cpu` profile as committee and its first member alone as
production. See docs/benchmarks.md.

    python bench/select_quality.py [--seeds 3] [--rounds 4] [--budget 25] [--seed-set 50] [--quick]
    python bench/select_quality.py --data cifar --pool 4000 --budget 100 --seed-set 200 --test 1000
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from datacleaner.config import load_config

from harness.data import cifar
from harness.internals import CleanConfig, Committee, TTAConfig, disagreement, k_center_greedy, skip_mask
from harness.report import table
from paths import WEIGHTS

STRATEGIES = ("random", "prod_entropy", "prod_margin", "ours", "ours_diverse")


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    imgs = np.stack([
        np.asarray(Image.fromarray((im * (255 / 16)).astype(np.uint8)).resize((32, 32), Image.Resampling.BICUBIC).convert("RGB"))
        for im in d.images
    ])
    return imgs, d.target.astype(np.int64)  # (N, 32, 32, 3) uint8, (N,)


def cifar_images(n_pool_and_test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random subset of CIFAR-10 images 10,000-19,999 with their true labels."""
    data = cifar()
    idx = 10_000 + np.random.default_rng(seed).permutation(10_000)[:n_pool_and_test]
    return data["images"][idx], data["clean_label"][idx].astype(np.int64)


STEPS = 150  # optimizer steps per training: small labeled sets need many epochs
_FITTED: dict = {}


def fit(base: CleanConfig, images, labels, idx, seed, *, views=None, members=None):
    """A Committee trained on images[idx] for STEPS steps (cached: round 0 is shared by all strategies)."""
    key = (hash(np.sort(idx).tobytes()), seed, views, tuple(members or ()))
    if key in _FITTED:
        return _FITTED[key]
    cfg = copy.deepcopy(base)
    cfg.seed, cfg.device, cfg.threads = seed, "cpu", 0
    for m in cfg.members:
        m.batch_size = 32
        m.epochs = max(1, -(-STEPS * m.batch_size // len(idx)))
    if views is not None:
        cfg.tta = TTAConfig(mode="deterministic", views=views)
    if members is not None:
        cfg.members = [m for m in cfg.members if m.label in members]
    _FITTED[key] = Committee(cfg).fit(images, labels, [str(c) for c in range(10)], idx=idx)
    return _FITTED[key]


def entropy(p):
    return -(p * np.log(np.clip(p, 1e-12, 1))).sum(1)


def pick(strategy, pool_idx, budget, rng, images, prod_probs, committee=None):
    """Indices (into pool_idx) of the B images a strategy sends to the annotator."""
    if strategy == "random":
        return rng.choice(len(pool_idx), size=budget, replace=False)
    if strategy == "prod_entropy":
        return np.argsort(-entropy(prod_probs), kind="stable")[:budget]
    if strategy == "prod_margin":
        top2 = np.sort(prod_probs, 1)[:, -2:]
        return np.argsort(top2[:, 1] - top2[:, 0], kind="stable")[:budget]
    fused = committee.predict_proba(images[pool_idx])
    prod_label = prod_probs.argmax(1)
    skipped = skip_mask(fused, prod_label, prod_probs.max(1), min_committee_prob=0.8, min_production_score=0.8)
    score = disagreement(fused, prod_label) - 10.0 * skipped  # skipped ones only after every candidate
    order = np.argsort(-score, kind="stable")
    if strategy == "ours":
        return order[:budget]
    top = order[: 5 * budget]
    return top[k_center_greedy(committee.features(images[pool_idx[top]]), budget)]


def run_seed(seed, base, images, labels, rounds, budget, n_seed, n_test, log):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    test_idx = order[:n_test]
    rest = order[n_test:]
    start = np.concatenate([rest[labels[rest] == c][: n_seed // 10] for c in range(10)])
    pool0 = np.setdiff1d(rest, start)
    curves = {}
    for strategy in STRATEGIES:
        labeled, pool = start.copy(), pool0.copy()
        srng = np.random.default_rng(seed + 1000)
        accs = []
        for r in range(rounds + 1):
            prod = fit(base, images, labels, labeled, seed * 100 + r, views=1, members=[base.members[0].label])
            accs.append(float((prod.predict_proba(images[test_idx]).argmax(1) == labels[test_idx]).mean()))
            log(f"seed {seed} {strategy:13s} round {r} labeled {len(labeled):4d} test acc {accs[-1]:.4f}")
            if r == rounds:
                break
            prod_probs = prod.predict_proba(images[pool])
            committee = fit(base, images, labels, labeled, seed * 100 + r) if strategy.startswith("ours") else None
            chosen = pool[pick(strategy, pool, budget, srng, images, prod_probs, committee)]
            labeled = np.concatenate([labeled, chosen])  # the annotator reveals the true labels
            pool = np.setdiff1d(pool, chosen)
        curves[strategy] = accs
    return curves


def labels_needed(curve, sizes, target):
    """Labeled-set size at which a curve first reaches `target` (linear interpolation), or None."""
    for i in range(1, len(curve)):
        if curve[i] >= target > curve[i - 1]:
            return sizes[i - 1] + (target - curve[i - 1]) / (curve[i] - curve[i - 1]) * (sizes[i] - sizes[i - 1])
    return sizes[0] if curve[0] >= target else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--budget", type=int, default=25)
    parser.add_argument("--seed-set", type=int, default=50, help="labeled images to start with (a tenth per class)")
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 rounds, 60 steps per training: a smoke run")
    parser.add_argument("--data", choices=("digits", "cifar"), default="digits")
    parser.add_argument("--img-size", type=int, default=64, help="cifar: members' input size")
    parser.add_argument("--pool", type=int, default=4000, help="cifar: pool + test + seed-set images drawn from 10,000-19,999")
    args = parser.parse_args()
    global STEPS
    if args.quick:
        STEPS = 60
    seeds, rounds = (1, 2) if args.quick else (args.seeds, args.rounds)
    if args.data == "cifar":
        base = load_config("cpu", {"weights_dir": WEIGHTS})
        for m in base.members:
            m.img_size = args.img_size
        images, labels = cifar_images(args.pool)
    else:
        base = load_config("small")
        images, labels = digit_images()
    t0 = time.time()
    all_curves = [run_seed(s, base, images, labels, rounds, args.budget, args.seed_set, args.test, print) for s in range(seeds)]
    sizes = [args.seed_set + r * args.budget for r in range(rounds + 1)]
    mean = {s: np.mean([c[s] for c in all_curves], axis=0) for s in STRATEGIES}
    std = {s: np.std([c[s] for c in all_curves], axis=0) for s in STRATEGIES}
    print(f"\n### Active learning on {args.data}: test accuracy of the production model (mean ± sd over {seeds} seeds)\n")
    print(table(["labeled", *STRATEGIES], [[n, *[f"{mean[s][r]:.3f} ± {std[s][r]:.3f}" for s in STRATEGIES]]
                                          for r, n in enumerate(sizes)], "r"))
    final_random = mean["random"][-1]
    print()
    for strategy in ("ours", "ours_diverse", "prod_entropy", "prod_margin"):
        need = labels_needed(list(mean[strategy]), sizes, final_random)
        added_random = sizes[-1] - sizes[0]
        if need is None:
            print(f"{strategy}: does not reach random's final accuracy {final_random:.3f}")
        else:
            print(f"{strategy}: reaches random's final accuracy {final_random:.3f} with {need - sizes[0]:.0f} added labels "
                  f"against random's {added_random}: {1 - (need - sizes[0]) / added_random:.0%} of the labels saved")
    print(f"wall time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
