"""Speed of `clean` end to end on folders of real images, stage by stage, and against a naive reference.

The first N images of ../shared/data/cifar10n_20k.npz as PNG class folders (aggre labels), the real
`clean` on each in a fresh process (peak memory per run): each stage's time and rate, peak memory, end to
end, and a linear fit over N. Augmentation is timed alone. The naive reference runs the same method as
a hand-rolled script would (every image decoded whenever used, one image and view per forward pass, a
frozen member's head trained by SGD with the backbone run on every batch) on a small N. `--engines` runs
every N once per engine (the ONNX export cached first); `--backbones` times each backbone alone, torch
against ONNX Runtime at batch sizes, threads, graph levels and int8. See docs/benchmarks.md.

    python bench/speed.py                                   # the full table (~30 min on 2 cores)
    python bench/speed.py --sizes 2500 --naive-n 200        # quick look
    python bench/speed.py --config small                    # a committee trained from scratch instead
    python bench/speed.py --sizes 1000,10000 --engines torch,onnxruntime --naive-n 0   # both engines
    python bench/speed.py --backbones                       # each backbone alone
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from datacleaner.config import load_config

from harness.data import cifar, cifar_tree
from harness.report import table
from harness.run import child, member_model, peak_rss_mb, run_clean
from paths import CIFAR, WEIGHTS, config_name

NAIVE_HEAD_EPOCHS = 10  # SGD epochs of a naive linear probe (our heads: full-batch L-BFGS on cached features)
BACKBONE_ARCHS = {"lite0": "tf_efficientnet_lite0", "mnv2": "mobilenetv2_100", "lite2": "tf_efficientnet_lite2"}


def tree(work: Path, n: int) -> Path:
    """The first n images under CIFAR-10N's aggregated labels (written once)."""
    cifar_tree(work / f"png-{n}", np.arange(n), "aggre_label")
    return work / f"png-{n}"


# --- one measurement, in its own process ---------------------------------------------------
def run_ours(folder: Path, config: str, out: Path, engine: str = "auto") -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(config, {"threads": 2, "weights_dir": WEIGHTS, "engine": engine})
    result, wall = run_clean(folder, out, cfg)
    s = result.summary
    return {"wall_s": wall, "timings_s": s["timings_s"], "work": s["work"], "images": s["images"],
            "views": cfg.tta.views, "members": len(cfg.members), "peak_rss_mb": peak_rss_mb(),
            "engines": s.get("engines", {}), "in_review": s["in_review"]}


def export_backbones(config: str) -> dict:
    """Export the config's frozen backbones into the ONNX cache (if not there yet); seconds per member."""
    import torch

    from harness.internals import onnx_backbone

    torch.set_num_threads(2)
    out = {}
    for m in load_config(config, {"weights_dir": WEIGHTS}).members:
        if m.frozen:
            model, prep = member_model(m)
            start = time.perf_counter()
            backbone, run = onnx_backbone(model, prep.size)
            out[m.label] = {"seconds": time.perf_counter() - start, "engine": run.engine, "note": run.note}
    return out


def time_backbone(spec: str, seconds: float = 8.0) -> dict:
    """Image-views/s of one backbone alone: spec = arch:size:engine:batch:threads:opt (opt: basic,
    extended, all or int8; int8 also reports the features' cosine similarity to float32's)."""
    import torch

    from harness.internals import MemberConfig, configure, export, onnx_path, to_model_input

    arch, size, engine, batch, threads, opt = spec.split(":")
    size, batch, threads = int(size), int(batch), int(threads)
    configure(threads)
    model, prep = member_model(MemberConfig(arch=BACKBONE_ARCHS.get(arch, arch), pretrained=True, frozen=True, img_size=size))
    images = cifar()["images"]
    mean, std = prep.tensors(torch.device("cpu"))

    def inputs(rows: np.ndarray) -> torch.Tensor:
        x = to_model_input(torch.from_numpy(images[rows]), mean, std)
        return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    x = inputs(np.arange(batch))
    extra = {}
    if engine == "torch":
        model = model.to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)

        def step():
            with torch.inference_mode():
                return model.forward_head(model.forward_features(xc), pre_logits=True).flatten(1).numpy()
    else:
        import onnxruntime as ort

        path = onnx_path(model, size)
        if not path.is_file():
            export(model, size, path)
        if opt == "int8":
            path = quantized(path, inputs(np.arange(10000, 10256)), model, size)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        }.get(opt, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        xn = x.contiguous().numpy()

        def step():
            return session.run(None, {session.get_inputs()[0].name: xn})[0]

        if opt == "int8":
            with torch.inference_mode():
                ref = model.forward_head(model.forward_features(x), pre_logits=True).flatten(1).numpy()
            got = step()
            cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
            extra = {"cosine_to_float32": float(cos.mean()), "cosine_min": float(cos.min())}
    step()
    step()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        n += batch
    return {"spec": spec, "img_view_s": n / (time.perf_counter() - start), **extra}


def quantized(path: Path, calibration, model, size: int) -> Path:
    """ONNX Runtime's static int8 quantisation (QDQ, per-channel weights) of an exported backbone."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = path.with_name(path.stem + "-int8.onnx")
    if out.is_file():
        return out
    pre = path.with_name(path.stem + "-pre.onnx")
    quant_pre_process(str(path), str(pre))
    batches = [{"views": calibration[s : s + 32].contiguous().numpy()} for s in range(0, len(calibration), 32)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(batches)

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    pre.unlink()
    return out


def run_naive(folder: Path, config: Path) -> dict:
    """The same committee method without caching or batching at judgement time (see module doc)."""
    import torch
    from PIL import Image

    from harness.internals import (MemberLoss, create_member_model, deterministic_views, find_labeled_images, fuse,
                                   make_fold_plan, make_optimizer, member_preprocess, member_seed, resolve_weights, score,
                                   train_transform)

    torch.set_num_threads(2)
    cfg = load_config(config, {"weights_dir": WEIGHTS})
    pretrained = resolve_weights(cfg)
    labeled = find_labeled_images(folder)
    labels, C = labeled.labels, len(labeled.classes)
    plan = make_fold_plan(labels, scheme=cfg.scheme, folds=cfg.folds, seed=cfg.seed)
    views = deterministic_views(cfg.augment)[: cfg.tta.views]
    start = time.perf_counter()

    def load(i: int, size: int) -> np.ndarray:  # decoded from the file every time it is used
        with Image.open(labeled.absolute(i)) as img:
            return np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))

    def tensor(arr: np.ndarray, prep) -> torch.Tensor:
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0
        return (x - torch.tensor(prep.mean).view(3, 1, 1)) / torch.tensor(prep.std).view(3, 1, 1)

    def view(arr: np.ndarray, v) -> np.ndarray:  # (name, zoom, cx, cy, hflip, vflip): the identity and flips
        _, _, _, _, hf, vf = v
        arr = arr[:, ::-1] if hf else arr
        return arr[::-1] if vf else arr

    outputs_per_round = []
    for _ in range(cfg.passes):  # pass 2 repeats the work (on the images pass 1 did not flag)
        outputs_per_round = []
        for r in range(plan.n_rounds):
            per_member = []
            for m in cfg.members:
                prep = member_preprocess(m)
                seed = member_seed(cfg.seed, r, m.label)
                model = create_member_model(m, C, load_pretrained=True, seed=seed, pretrained_path=pretrained.get(m.label))
                train_idx = plan.train_idx(r)
                rng = np.random.default_rng(seed)
                if m.frozen:
                    for p in model.parameters():
                        p.requires_grad_(False)
                    head = model.get_classifier()
                    for p in head.parameters():
                        p.requires_grad_(True)
                    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=m.head_l2)
                    epochs, transform = NAIVE_HEAD_EPOCHS, None
                    model.eval()
                else:
                    opt = make_optimizer(model, m)
                    epochs, transform = m.epochs, train_transform(cfg.augment, prep.size, seed)
                    model.train()
                loss_fn = MemberLoss(label_smoothing=m.label_smoothing)
                for _ in range(epochs):
                    order = rng.permutation(train_idx)
                    for b in range(0, len(order), m.batch_size):
                        batch = order[b : b + m.batch_size]
                        if len(batch) < 2:
                            continue
                        imgs = [load(i, prep.size) for i in batch]
                        if transform is not None:
                            imgs = [transform(image=a)["image"] for a in imgs]
                        else:
                            imgs = [view(a, views[rng.integers(len(views))]) for a in imgs]
                        x = torch.stack([tensor(a, prep) for a in imgs])
                        loss = loss_fn(model(x), torch.from_numpy(labels[batch]))
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                model.eval()
                judged = plan.judge_idx(r)
                logits = np.zeros((len(judged), len(views), C), dtype=np.float32)
                with torch.no_grad():
                    for j, i in enumerate(judged):  # one image, one view per forward pass
                        for v, spec in enumerate(views):
                            x = tensor(view(load(i, prep.size), spec), prep)[None]
                            logits[j, v] = model(x)[0].numpy()
                per_member.append(logits)
            outputs_per_round.append((plan.judge_idx(r), np.stack(per_member, axis=1)))
    fused = np.zeros((plan.n_rounds, len(labels), C), dtype=np.float32)
    judged = np.zeros((plan.n_rounds, len(labels)), dtype=bool)
    for r, (idx, out) in enumerate(outputs_per_round):
        fused[r, idx] = fuse(out, np.array([m.weight for m in cfg.members]), mode=cfg.fusion)
        judged[r, idx] = True
    score(fused, judged, labels, tau=cfg.tau, min_flags=cfg.resolved_min_flags(plan.judgements_per_image))
    return {"wall_s": time.perf_counter() - start, "images": len(labels), "peak_rss_mb": peak_rss_mb()}


def time_augment(config: str, n: int = 2000) -> dict:
    """Images/s of the albumentations training pipeline and of the batched tensor TTA views."""
    import cv2
    import torch

    from harness.internals import make_views, member_preprocess, train_transform, view_params

    torch.set_num_threads(2)
    cfg = load_config(config)
    prep = member_preprocess(cfg.members[0])
    cv2.setNumThreads(1)
    big = np.stack([cv2.resize(a, (prep.size, prep.size), interpolation=cv2.INTER_LINEAR) for a in cifar()["images"][:n]])
    t = train_transform(cfg.augment, prep.size, seed=0)
    start = time.perf_counter()
    for a in big:
        t(image=a)
    albu = n / (time.perf_counter() - start)
    mean, std = prep.tensors(torch.device("cpu"))
    V = cfg.tta.views
    start = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, n, 128):
            idx = np.arange(s, min(n, s + 128))
            make_views(torch.from_numpy(big[idx]), view_params(idx, V, mode=cfg.tta.mode, aug=cfg.augment, seed=0),
                       prep.size, mean, std)
    views = n * V / (time.perf_counter() - start)
    return {"size": prep.size, "albumentations_img_s": albu, "tta_views_img_view_s": views, "views": V}


# --- the tables -------------------------------------------------------------------------------
STAGES = [  # (timing key, label, work key for the rate, unit)
    ("scan", "scan (list + stat files)", None, "img"),
    ("decode", "validate + decode (read, checksum, decode)", None, "img"),
    ("features", "frozen features (TTA forward)", "feature_image_views", "img-view"),
    ("train_heads", "frozen heads (all rounds)", "head_fits", "head"),
    ("train", "train (per member-epoch)", "train_image_epochs", "img-epoch"),
    ("predict", "TTA predict", "predict_image_views", "img-view"),
    ("score_write", "fuse + score + write", None, "img"),
]


def print_table(runs: dict[int, dict], augment: dict, naive: dict | None, ours_small: dict | None, config: str) -> None:
    sizes = sorted(runs)
    print(f"\nconfig {config}, 2 torch threads, {runs[sizes[0]]['members']} members, {runs[sizes[0]]['views']} TTA views\n")
    rows = []
    for key, label, work, unit in STAGES:
        t = {n: runs[n]["timings_s"].get(key, 0.0) for n in sizes}
        if not any(v > 0 for v in t.values()):
            continue
        amount = {n: runs[n]["work"].get(work, 0) if work else runs[n]["images"] for n in sizes}
        secs = [f"{t[n]:.1f}" for n in sizes]
        rates = [f"{amount[n] / t[n]:,.0f} {unit}/s" if t[n] > 0 and amount[n] else "–" for n in sizes]
        if key == "train_heads":
            rates = [f"{t[n] / max(1, runs[n]['work'].get('head_fits', 1)):.1f} s/head" for n in sizes]
        if key == "train":
            secs = [f"{t[n] / max(1, runs[n]['work'].get('member_epochs', 1)):.1f} per m-e" for n in sizes]
        rows.append([label, *secs, *rates])
    rows.append(["**end to end**", *[f"**{runs[n]['wall_s']:.1f}**" for n in sizes], *[f"{n / runs[n]['wall_s']:,.1f} img/s" for n in sizes]])
    rows.append(["peak memory (MB)", *[f"{runs[n]['peak_rss_mb']:,.0f}" for n in sizes], *[""] * len(sizes)])
    print(table(["stage", *[f"N={n:,}: s" for n in sizes], *[f"N={n:,}: rate" for n in sizes]], rows, "lr"))
    if len(sizes) >= 2:
        x = np.array(sizes, dtype=float)
        y = np.array([runs[n]["wall_s"] for n in sizes])
        slope, intercept = np.polyfit(x, y, 1)
        r2 = 1 - ((y - (slope * x + intercept)) ** 2).sum() / max(1e-12, ((y - y.mean()) ** 2).sum())
        print(f"\nlinear fit: end-to-end = {intercept:.1f} s + {slope * 1000:.2f} ms x N  (R^2 = {r2:.4f}); "
              "seconds per 1,000 images: " + ", ".join(f"{runs[n]['wall_s'] / n * 1000:.1f} at {n:,}" for n in sizes))
    print(f"\naugmentation alone at {augment['size']} px: albumentations training pipeline "
          f"{augment['albumentations_img_s']:,.0f} img/s (one core); batched tensor TTA views "
          f"{augment['tta_views_img_view_s']:,.0f} img-view/s")
    if naive and ours_small:
        per_image = runs[sizes[-1]]["wall_s"] / sizes[-1]
        print(f"\nnaive reference on N={naive['images']:,}: {naive['wall_s']:.1f} s; ours on the same images: "
              f"{ours_small['wall_s']:.1f} s -> speed-up {naive['wall_s'] / ours_small['wall_s']:.1f}x end to end; "
              f"per image: naive {naive['wall_s'] / naive['images'] * 1000:.0f} ms vs ours {per_image * 1000:.1f} ms at "
              f"N={sizes[-1]:,} ({naive['wall_s'] / naive['images'] / per_image:.1f}x)")


def compare_engines(by_engine: dict[str, dict[int, dict]], work: Path) -> None:
    """Per N: features, heads and end to end on each engine, the ratios, and whether the review lists match."""
    import pandas as pd

    names = list(by_engine)
    rows = []
    for n in sorted(by_engine[names[0]]):
        for key, label in (("features", "frozen features"), ("train_heads", "frozen heads"), ("health", "health checks"), (None, "**end to end**")):
            secs = [by_engine[e][n]["wall_s"] if key is None else by_engine[e][n]["timings_s"].get(key, 0.0) for e in names]
            rows.append([f"{n:,}", label, *[f"{x:.1f} s" for x in secs], f"{secs[0] / secs[-1]:.2f}x" if secs[-1] > 0 else "–"])
        lists = [set(pd.read_csv(work / f"run-{n}-{e}" / "review.csv")["path"]) for e in names]
        rows.append([f"{n:,}", "review rows (shared)", *[f"{len(x):,}" for x in lists], f"{len(lists[0] & lists[-1]):,} shared"])
    print("\n" + table(["N", "stage", *names, f"{names[0]} / {names[-1]}"], rows, "rlr"))


def backbone_table(specs: list[str], common: list[str]) -> None:
    results = []
    for spec in specs:
        results.append(child(__file__, "--backbone", spec, *common))
        print(f"{spec}: {results[-1]}", file=sys.stderr, flush=True)
    rows = []
    for r in results:
        arch, size, engine, batch, threads, opt = r["spec"].split(":")
        cos = f"cosine {r['cosine_to_float32']:.3f} (min {r['cosine_min']:.3f})" if "cosine_to_float32" in r else "–"
        rows.append([arch, size, engine, batch, threads, opt if engine != "torch" else "–", f"{r['img_view_s']:,.0f}", cos])
    print("\n" + table(["backbone", "px", "engine", "batch", "threads", "graph", "img-view/s", "features vs float32"], rows, "lrlrrlrl"))


def backbone_specs() -> list[str]:
    specs = [f"{a}:{px}:{e}:64:2:all" for a in ("mnv2", "lite2", "lite0") for px in (160, 192, 224) for e in ("torch", "onnxruntime")]
    specs += [f"lite2:160:{e}:{b}:2:all" for b in (16, 32, 128) for e in ("torch", "onnxruntime")]
    specs += ["lite2:160:onnxruntime:64:2:basic", "lite2:160:onnxruntime:64:2:extended",
              "lite2:160:torch:64:1:all", "lite2:160:onnxruntime:64:1:all",
              "lite2:160:onnxruntime:64:2:int8", "mnv2:160:onnxruntime:64:2:int8"]
    return specs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2500,5000,10000,20000")
    ap.add_argument("--naive-n", type=int, default=300, help="N for the naive reference (0: skip it)")
    ap.add_argument("--config", type=config_name, default="cpu", help="profile name or YAML file (default: cpu)")
    ap.add_argument("--engines", default="auto", help="comma-separated engines to run every N with (torch, onnxruntime, auto)")
    ap.add_argument("--backbones", action="store_true", help="time each backbone alone on both engines instead")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "datacleaner-speed")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: our pipeline on N images
    ap.add_argument("--engine", default="auto", help=argparse.SUPPRESS)  # child: with this engine
    ap.add_argument("--export", action="store_true", help=argparse.SUPPRESS)  # child: fill the ONNX cache
    ap.add_argument("--backbone", help=argparse.SUPPRESS)  # child: one backbone setting
    ap.add_argument("--naive", type=int, help=argparse.SUPPRESS)  # child: the naive reference on N images
    ap.add_argument("--augment", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    config = args.config
    os.environ.setdefault("DATACLEANER_CACHE_DIR", str(args.work / "cache"))  # exported backbones
    if args.one or args.export or args.backbone or args.naive or args.augment:  # a child: its measurement, as JSON
        if args.one:
            answer = run_ours(tree(args.work, args.one), config, args.work / f"run-{args.one}-{args.engine}", args.engine)
        elif args.naive:
            answer = run_naive(tree(args.work, args.naive), config)
        else:
            answer = export_backbones(config) if args.export else time_backbone(args.backbone) if args.backbone else time_augment(config)
        print(json.dumps(answer))
        return
    if not CIFAR.is_file():
        sys.exit(f"{CIFAR} not found: this benchmark reads the shared CIFAR-10N images")
    common = ["--config", config, "--work", args.work]
    if args.backbones:
        backbone_table(backbone_specs(), common)
        return
    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    if any(e != "torch" for e in names):
        exported = child(__file__, "--export", *common)
        print("one-time ONNX export (cached for later runs): " + ", ".join(
            f"{m} {x['seconds']:.1f} s ({x['engine']}{': ' + x['note'] if x['note'] else ''})" for m, x in exported.items()))
    by_engine: dict[str, dict[int, dict]] = {e: {} for e in names}
    for n in sorted(int(x) for x in args.sizes.split(",")):
        for e in names:
            by_engine[e][n] = child(__file__, "--one", n, "--engine", e, *common)
            print(f"N={n} {e}: {by_engine[e][n]['wall_s']:.1f} s, {by_engine[e][n]['timings_s']}", file=sys.stderr, flush=True)
    augment = child(__file__, "--augment", *common)
    naive = ours_small = None
    runs = by_engine[names[0]]
    if args.naive_n:
        ours_small = runs.get(args.naive_n) or child(__file__, "--one", args.naive_n, *common)
        naive = child(__file__, "--naive", args.naive_n, *common)
    for e in names:
        print(f"\n### engine {e} (ran: {next(iter(by_engine[e].values()))['engines']})")
        print_table(by_engine[e], augment, naive if e == names[0] else None, ours_small, config)
    if len(names) > 1:
        compare_engines(by_engine, args.work)


if __name__ == "__main__":
    main()
