"""Which frozen committee for the cpu profile, and how its flags behave on clean labels (CIFAR-10N).

Step 1, features (slow, cached in --work): per architecture and input size, the real `clean` (cpu profile
settings, one frozen member) on images [offset, offset + n); its backbone features (N, 2, D) and feature
time are kept. Step 2, committees (fast): per label set and committee, exactly what `clean` does with
frozen members (its fold plan, a logistic head per round and member started as `clean` starts them,
`judge_outputs` with the profile's rule, pass 2 without pass 1's flags). Optional: other flag rules and
the kNN label signal (--variants), error_model's link fitted over label sets (--calibration), feature
times from runs of their own (--time). `--data imagenette`: the 2,000 imagenette_2k photos, label sets
clean (ImageNet's) and fast.ai's noisy5 / noisy25 / noisy50. See docs/benchmarks.md.

    python bench/real_noise.py --sweep --sizes 128 160 224 --n 10000 --min-members 2 --time 1000
    python bench/committee_sweep.py --archs mnv2 lite2 --sizes 160 192 --n 10000 [--offset 10000]
    python bench/committee_sweep.py --data imagenette --sizes 160 192 --min-members 2
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from datacleaner.config import load_config

from harness.data import LABEL_SETS, cifar, cifar_tree, imagenette_table
from harness.internals import MemberConfig, RunDir, fit_view_head, judge_outputs, make_fold_plan
from harness.judge import list_metrics, review_order
from harness.report import table
from harness.run import run_clean, timed
from paths import IMAGENETTE, ROOT, WEIGHTS

ARCHS = {"lite0": "tf_efficientnet_lite0", "mnv2": "mobilenetv2_100", "lite2": "tf_efficientnet_lite2"}
IMAGENETTE_SETS = {"clean": "label", "noisy5": "noisy_labels_5", "noisy25": "noisy_labels_25", "noisy50": "noisy_labels_50"}
NAN = float("nan")


def base_config(size: int, archs: list[str]):
    cfg = load_config("cpu", {"weights_dir": WEIGHTS, "checks": "none", "passes": 1})
    cfg.members = [MemberConfig(arch=ARCHS[a], name=a, pretrained=True, frozen=True, img_size=size, head_l2=0.03) for a in archs]
    return cfg


@dataclass
class SweepData:
    """The images a sweep judges: a class-folder tree, where each manifest path sits in the label
    arrays, the label sets ({name: (N,) int}) and the truth (N,)."""

    key: str  # names the cached features
    tree: Path
    position: Callable[[str], int]  # manifest path -> row in the label arrays
    labels: dict[str, np.ndarray]
    truth: np.ndarray


def cifar_data(work: Path, offset: int, n: int) -> SweepData:
    rows = np.arange(offset, offset + n)
    truth = cifar_tree(work / f"tree-{offset}-{n}", rows, "clean_label")
    position = {p: k for k, p in enumerate(truth["path"])}
    arrays = cifar()
    return SweepData(f"{offset}-{n}", work / f"tree-{offset}-{n}", position.__getitem__,
                     {name: arrays[key][rows].astype(np.int64) for name, key in LABEL_SETS.items()},
                     arrays["clean_label"][rows].astype(np.int64))


def imagenette_data() -> SweepData:
    labels = imagenette_table()
    code = {c: i for i, c in enumerate(sorted(labels["label"].unique()))}
    row = {p.split("/", 1)[1]: i for i, p in enumerate(labels["path"])}  # 'images/<wnid>/<file>' -> row
    sets = {name: labels[col].map(code).to_numpy(np.int64) for name, col in IMAGENETTE_SETS.items()}
    return SweepData("imagenette", IMAGENETTE / "images", row.__getitem__, sets, sets["clean"])


def member_features(work: Path, data: SweepData, size: int, arch: str, quiet: bool) -> dict:
    """{'features': (n, V, D) in the label arrays' order, 'seconds': feature time} for one architecture and size."""
    out = work / f"features-{arch}-{size}-{data.key}.npy"
    meta = out.with_suffix(".json")
    if not (out.is_file() and meta.is_file()):
        cfg = base_config(size, [arch])
        run_dir = work / f"run-{arch}-{size}-{data.key}"
        result, wall = run_clean(data.tree, run_dir, cfg, quiet=quiet)
        run = RunDir(run_dir)
        feats = np.load(run.features_path(cfg, cfg.members[0], run.read_json("run.json")), mmap_mode="r")
        manifest = pd.read_csv(run.file("manifest.csv"), dtype={"path": str}, keep_default_na=False)
        ordered = np.empty_like(np.asarray(feats))
        ordered[[data.position(p) for p in manifest["path"]]] = feats  # manifest row -> row in the label arrays
        np.save(out, ordered)
        timings = result.summary["timings_s"]
        meta.write_text(json.dumps({"seconds": timings.get("features", wall), "decode_s": timings.get("decode", 0.0),
                                    "engines": result.summary.get("engines", {})}))
        shutil.rmtree(run_dir)  # the decoded cache (about 1 GB per 20,000 images at 128 px) is not needed again
    return {"features": np.load(out, mmap_mode="r"), **json.loads(meta.read_text())}


def timed_features(work: Path, n: int, size: int, arch: str) -> dict:
    """Seconds per image of one member's features and of decoding, from a `clean` of images [0, n)
    run alone (nothing else on the machine): the sweep's own feature runs may share the cores."""
    out = work / f"timing-{arch}-{size}-{n}.json"
    if not out.is_file():
        tree = work / f"tree-0-{n}"
        cifar_tree(tree, np.arange(n), "clean_label")
        run_dir = work / f"run-time-{arch}-{size}-{n}"
        shutil.rmtree(run_dir, ignore_errors=True)
        result, wall = run_clean(tree, run_dir, base_config(size, [arch]))
        timings = result.summary["timings_s"]
        out.write_text(json.dumps({"features_s_per_image": timings["features"] / n, "decode_s_per_image": timings.get("decode", 0.0) / n,
                                   "wall_s_per_image": wall / n, "n": n}))
        shutil.rmtree(run_dir)
    return json.loads(out.read_text())


def round_logits(feats: dict[str, np.ndarray], labels: np.ndarray, cfg, plan, exclude: np.ndarray | None, cache: dict,
                 key, first_key=None) -> tuple[list, float]:
    """Per round (judged idx, [member logits (n, V, C)]) for the committee cfg.members; heads cached in `cache`.
    Heads start where `clean`'s do (pipeline/heads.py, _head_to_start_from): pass 1's later rounds from its round 1,
    pass 2's (first_key: pass 1's cache key) from pass 1's head of the same round."""
    C = int(labels.max()) + 1
    outs, seconds = [], 0.0
    for r in range(plan.n_rounds):
        t = plan.train_idx(r)
        if exclude is not None:
            t = t[~exclude[t]]
        judge = plan.judge_idx(r)
        parts = []
        for m in cfg.members:
            k = (key, m.name, r)
            if k not in cache:
                F = feats[m.name]
                origin = (first_key, m.name, r) if first_key else (key, m.name, 0)
                start = cache.get((origin, "head")) if (first_key or r) else None
                (W, b), cache[k, "s"] = timed(fit_view_head, np.asarray(F[t]), labels[t], C, m, init=start)
                cache[k] = (np.asarray(F[judge], dtype=np.float32) @ W.T + b).astype(np.float32)
                cache[k, "head"] = (W, b)
            parts.append(cache[k])
            seconds += cache[k, "s"]
        outs.append((judge, parts))
    return outs, seconds


def committee_scores(feats, labels, cfg, cache, label_key):
    """(pass-1 Scores, final Scores, head seconds, pass-2 round outputs) as `clean` computes them for frozen members."""
    plan = make_fold_plan(labels, scheme=cfg.scheme, folds=cfg.folds, seed=cfg.seed)
    J = plan.judgements_per_image
    outs, s1 = round_logits(feats, labels, cfg, plan, None, cache, (label_key, "p1"))
    first = judge_outputs(outs, labels, cfg, J)[0]
    held = tuple(np.flatnonzero(first.in_review))
    outs2, s2 = round_logits(feats, labels, cfg, plan, first.in_review, cache, (label_key, "p2", hash(held)),
                             first_key=(label_key, "p1"))
    return first, judge_outputs(outs2, labels, cfg, J)[0], s1 + s2, outs2


def member_votes(outs, N: int) -> np.ndarray:
    """(N, M) each member's label (argmax of its view-averaged logits) in the round that judged the image."""
    votes = np.full((N, len(outs[0][1])), -1)
    for idx, parts in outs:
        for m, logits in enumerate(parts):
            votes[idx, m] = np.asarray(logits).mean(axis=1).argmax(axis=1)
    return votes


def knn_labels(feats: dict, combo, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """(N, C) share of each class among an image's k nearest neighbours (compact features of the
    committee's backbones, concatenated; the image itself left out)."""
    from harness.internals import health

    parts = [health.compact_features(np.asarray(feats[a], dtype=np.float32))[0].astype(np.float32) for a in combo]
    x = np.concatenate(parts, axis=1)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    _, idx = health.nearest(x.astype(np.float16), k=k)
    q = np.zeros((len(labels), int(labels.max()) + 1))
    for j in range(idx.shape[1]):
        ok = idx[:, j] >= 0
        q[np.flatnonzero(ok), labels[idx[ok, j]]] += 1
    return q / np.maximum(q.sum(axis=1, keepdims=True), 1)


def metrics(is_error, flagged, quality, order, ks=(100, 300, 500, 1000)) -> dict:
    return list_metrics(is_error, flagged, quality, order, ks, missing=NAN)


def variants(final, labels, is_error, votes, q) -> list[tuple[str, dict]]:
    """Other flag rules and scores on the same committee, as (name, metrics) rows."""
    from harness.internals import score

    lq, ep, N = final.label_quality, final.error_prob, len(labels)

    def flagged(flag, quality=lq):
        return metrics(is_error, flag, quality, np.argsort(quality, kind="stable"), ks=())

    top = np.zeros(N, bool)
    top[np.argsort(lq, kind="stable")[:int(round(np.nansum(ep)))]] = True
    out = [("error_prob >= 0.5 (Bayes rule)", flagged(ep >= 0.5)), ("noise_rate with n = sum of error_prob", flagged(top))]
    out += [(f"noise_rate and suggested_prob >= {c}", flagged(final.in_review & (final.suggested_prob >= c))) for c in (0.6, 0.8)]
    out.append(("noise_rate and every member against the label", flagged(final.in_review & (votes != labels[:, None]).all(axis=1))))
    for lam in (0.25, 0.5):
        s2 = score(((1 - lam) * final.mean_probs + lam * q)[None], np.ones((1, N), bool), labels, tau=0.1, min_flags=1, rule="noise_rate")
        out.append((f"+ kNN labels (k 10, weight {lam})", flagged(s2.in_review, s2.label_quality)))
    return out


def list_gap(ep: np.ndarray, is_error: np.ndarray, listed: np.ndarray) -> tuple[float, int]:
    """(signed gap, k): the largest difference between the running mean of error_prob over the first
    k rows of the list (`listed` indices, most probably wrong first) and the share of wrong labels
    among them, k = 50, 100, ... up to the list's length."""
    order = listed[np.argsort(-ep[listed], kind="stable")]
    ks = [k for k in range(50, len(order) + 1, 50)] or [len(order)]
    if not len(order):
        return NAN, 0
    gaps = [ep[order[:k]].mean() - is_error[order[:k]].mean() for k in ks]
    i = int(np.argmax(np.abs(gaps)))
    return float(gaps[i]), ks[i]


def calibration(is_error: np.ndarray, s) -> dict:
    """error_prob (scoring.error_model) against the truth down the review list: the largest gap (list_gap),
    the expected and true wrong labels in the list and the dataset, and the Bayes rule (error_prob >= 0.5)."""
    ep, rho = s.error_prob, s.noise_model["noise_rate"]
    flagged = np.flatnonzero(s.in_review)
    gap, at = list_gap(ep, is_error, flagged)
    return {"rho": rho, "rho_seen": s.noise_model["seen_noise_rate"], "cal_gap": gap, "cal_gap_at": at,
            "expected_wrong_in_list": float(ep[flagged].sum()), "wrong_in_list": int(is_error[flagged].sum()),
            "expected_wrong": float(rho * len(ep)), "wrong": int(is_error.sum()), "bayes_flagged_share": float((ep >= 0.5).mean()),
            "bayes_f1": metrics(is_error, ep >= 0.5, s.label_quality, np.arange(0), ())["f1"]}


def fit_link(sets: dict) -> list[tuple]:
    """error_model's link and sharpening fitted to label sets {name: (mean_probs, labels, is_error,
    listed)}: every (gain, power, sharpen) on a grid, sorted by the worst of |calibration gap down
    the list| and |fitted noise rate - true noise rate| over the sets. The seen noise rate, the
    temperature and the noise structure do not depend on them: fitted once per set."""
    from harness.internals import linked_noise_rate, noise_structure, seen_noise_rate, tempered, wrong_label_posterior

    fitted = {}
    for name, (probs, labels, is_error, listed) in sets.items():
        probs = np.asarray(probs, dtype=np.float64)
        seen, T = seen_noise_rate(probs, labels)
        fitted[name] = (probs, seen, T, noise_structure(tempered(probs, T), labels, seen) if seen > 0 else None)
    rows = []
    for gain, power, sharpen in itertools.product([1.0, 1.1, 1.2, 1.3, 1.4, 1.6, 1.8], [0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0],
                                                  [0.8, 0.85, 0.9, 0.95, 1.0]):
        worst, per = 0.0, {}
        for name, (_, labels, is_error, listed) in sets.items():
            probs, seen, T, structure = fitted[name]
            rho = min(linked_noise_rate(seen, (gain, power)), 0.9)
            ep = np.zeros(len(labels)) if rho == 0 else wrong_label_posterior(probs, labels, rho, structure, T * sharpen)
            per[name] = (list_gap(ep, is_error, np.flatnonzero(listed))[0], rho - float(is_error.mean()))
            worst = max(worst, abs(per[name][0]), abs(per[name][1]))
        rows.append((worst, gain, power, sharpen, per))
    return sorted(rows, key=lambda r: r[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--offset", type=int, default=0, help="judge images [offset, offset + n)")
    ap.add_argument("--data", choices=["cifar", "imagenette"], default="cifar",
                    help="cifar: CIFAR-10N images [offset, offset + n); imagenette: the 2,000 imagenette_2k photos")
    ap.add_argument("--labels", nargs="+", default=None, choices=[*LABEL_SETS, "noisy5", "noisy25", "noisy50"],
                    help="label sets (default: all of the data's)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-committee-sweep")
    ap.add_argument("--min-members", type=int, default=1, help="smallest committee measured (2: pairs and up)")
    ap.add_argument("--variants", nargs="*", default=None,
                    help="also other flag rules and the kNN label signal, for the full committee and these (e.g. lite0+mnv2)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--calibration", nargs="*", default=None, metavar="SIZE:COMMITTEE",
                    help="also fit error_model's link and sharpening jointly over the label sets of these committees "
                         "(e.g. 128:lite0+mnv2 160:mnv2+lite2; none named: every committee measured)")
    ap.add_argument("--time", type=int, default=None, metavar="N",
                    help="time each member's features on N images in a run of its own (cached in --work) and use "
                         "those timings for s / 1,000 images: run it with nothing else on the machine")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.data == "imagenette":
        data = imagenette_data()
        args.offset, args.n = 0, len(data.truth)
    else:
        data = cifar_data(args.work, args.offset, args.n)
    rows, cal_sets = [], {}
    for size in args.sizes:
        feats, secs = {}, {}
        for a in args.archs:
            got = member_features(args.work, data, size, a, args.quiet)
            feats[a], secs[a] = got["features"], got["seconds"]
            print(f"[features {a} {size} px: {got['seconds']:.0f} s for {args.n} images]", file=sys.stderr, flush=True)
            if args.time and args.data == "cifar":
                tm = timed_features(args.work, args.time, size, a)
                secs[a], secs["decode"] = tm["features_s_per_image"] * args.n, tm["decode_s_per_image"] * args.n
                print(f"[alone: {a} {size} px features {1000 * tm['features_s_per_image']:.1f} s, decode "
                      f"{1000 * tm['decode_s_per_image']:.1f} s per 1,000 images]", file=sys.stderr, flush=True)
        for name in args.labels or list(data.labels):
            labels = data.labels[name]
            is_error = labels != data.truth
            cache: dict = {}
            for k in range(args.min_members, len(args.archs) + 1):
                for combo in itertools.combinations(args.archs, k):
                    cfg = copy.deepcopy(base_config(size, list(combo)))
                    cfg.passes = 2
                    first, final, head_s, outs2 = committee_scores(feats, labels, cfg, cache, name)
                    feature_s = sum(secs[a] for a in combo) + secs.get("decode", 0.0)
                    r = {"size": size, "labels": name, "committee": "+".join(combo), "true_noise": float(is_error.mean()),
                         **metrics(is_error, final.in_review, final.label_quality, review_order(final.flag_count, final.label_quality)),
                         **calibration(is_error, final), "pass1_flagged_share": float(first.in_review.mean()),
                         "s_per_1000": 1000 * (feature_s + head_s) / args.n}
                    rows.append(r)
                    if args.calibration is not None and (not args.calibration or f"{size}:{r['committee']}" in args.calibration):
                        cal_sets[f"{size}:{r['committee']}:{name}"] = (final.mean_probs, labels, is_error, final.in_review)
                    if args.variants is not None and (k == len(args.archs) or r["committee"] in args.variants):
                        q = knn_labels(feats, combo, labels)
                        for vname, m in variants(final, labels, is_error, member_votes(outs2, len(labels)), q):
                            rows.append({**r, **m, **{f"p@{kk}": NAN for kk in (100, 300, 500, 1000)}, "committee": f"{r['committee']}: {vname}"})
                            print(f"    {vname:45s} flagged {m['flagged_share']:.3f} F1 {m['f1']:.3f} AUROC {m['auroc']:.3f}",
                                  file=sys.stderr, flush=True)
                    print(f"{size} {name:8s} {r['committee']:18s} flagged {r['flagged_share']:.3f} F1 {r['f1']:.3f} "
                          f"AUROC {r['auroc']:.3f} P@500 {r['p@500']:.2f} {r['s_per_1000']:.1f} s/1k | rho {r['rho']:.3f} (seen {r['rho_seen']:.3f}) "
                          f"gap {r['cal_gap']:.3f}@{r['cal_gap_at']} exp {r['expected_wrong_in_list']:.0f}/{r['wrong_in_list']} "
                          f"all {r['expected_wrong']:.0f}/{r['wrong']} bayes {r['bayes_flagged_share']:.3f} F1 {r['bayes_f1']:.3f}",
                          file=sys.stderr, flush=True)
    if cal_sets:
        from harness.internals import NOISE_LINK, SHARPEN

        fitted = fit_link(cal_sets)
        print(f"\nerror_model link fitted jointly over {', '.join(cal_sets)} (worst |gap| or |noise rate error|):")
        shipped = [r for r in fitted if (r[1], r[2], r[3]) == (*NOISE_LINK, SHARPEN)]
        for worst, gain, power, sharpen, per in fitted[:5] + [("shipped", *r[1:]) for r in shipped]:
            cells = ", ".join(f"{k} {g:+.3f} / {d:+.3f}" for k, (g, d) in per.items())
            print(f"  {worst if isinstance(worst, str) else f'{worst:.3f}'}: gain {gain}, power {power}, sharpen {sharpen} | "
                  f"gap / noise-rate error: {cells}")
    if rows:
        print(table(["size", "labels", "committee", "flagged", "precision", "recall", "F1", "AUROC", "P@100", "P@500", "P@1000",
                     "s / 1,000 images"], [[r["size"], r["labels"], r["committee"], f"{r['flagged_share']:.1%}", f"{r['precision']:.3f}",
                                            f"{r['recall']:.3f}", f"{r['f1']:.3f}", f"{r['auroc']:.3f}", f"{r['p@100']:.2f}",
                                            f"{r['p@500']:.2f}", f"{r['p@1000']:.2f}", f"{r['s_per_1000']:.1f}"] for r in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
