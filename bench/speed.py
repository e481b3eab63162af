"""Speed of `clean` end to end on folders of real images, stage by stage, and against a naive reference.

Writes the first N images of ../shared/data/cifar10n_20k.npz (beside the repository, not part
of it: see bench/paths.py) as a class-folder tree of PNGs
(N = 2,500, 5,000, 10,000, 20,000 by default), runs the real `clean` pipeline on each in a
fresh process (so peak memory is per run) and prints, per N: wall time and throughput of
each stage (scan, decode, features / train per member-epoch, TTA predict per view, fuse +
score + write), peak resident memory and the end-to-end time, then a least-squares fit of
end-to-end time = fixed + per-image cost x N, which shows the growth is linear.

Augmentation is timed on its own: the albumentations training pipeline per image and the
batched tensor TTA views, on the same decoded images.

The naive reference runs the same method the way a hand-rolled script would (the article's
recipe, no engineering): every image decoded from its file whenever it is used, one image
and one view per forward pass at judgement time, no feature or image cache; a frozen
member's head is trained by minibatch SGD with the backbone run on every batch, for
NAIVE_HEAD_EPOCHS epochs. It runs on a small N, next to our pipeline on the same N.

    python bench/speed.py                                   # the full table (~30 min on 2 cores)
    python bench/speed.py --sizes 2500 --naive-n 200        # quick look
    python bench/speed.py --config small                    # a committee trained from scratch instead
    python bench/speed.py --sizes 1000,10000 --engines torch,onnxruntime --naive-n 0   # both engines
    python bench/speed.py --backbones                       # each backbone alone: engines, sizes, ONNX Runtime settings

`--engines` runs every N once per engine (the config key `engine`), each in a fresh process with the
ONNX export already in the cache (the one-time export is timed on its own). `--backbones` times
each backbone's forward passes alone, in a fresh process per setting, on CIFAR images resized to the
input size: torch (channels-last, inference mode) against ONNX Runtime at batch sizes, thread
counts and graph optimisation levels, and ONNX Runtime's int8 path (static QDQ quantisation
calibrated on 256 other CIFAR images) with its features' cosine similarity to the float32 ones.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from paths import CIFAR as DATA, WEIGHTS, config_name

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
NAIVE_HEAD_EPOCHS = 10  # SGD epochs of a naive linear probe (our heads: full-batch L-BFGS on cached features)


def write_tree(out: Path, n: int) -> Path:
    """out/<class>/<i>.png for the first n images with the aggregated CIFAR-10N labels (cached)."""
    from PIL import Image

    if (out / ".complete").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    data = np.load(DATA)
    for c in CLASSES:
        (out / c).mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(data["images"][:n], data["aggre_label"][:n])):
        Image.fromarray(img).save(out / CLASSES[y] / f"{i:05d}.png")
    (out / ".complete").write_text("ok\n")
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- one measured run, in its own process ------------------------------------------------
def run_ours(folder: Path, config: str, out: Path, engine: str = "auto") -> dict:
    from datacleaner.config import load_config
    from datacleaner.progress import QUIET
    from datacleaner.runs import clean

    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(config, {"threads": 2, "weights_dir": WEIGHTS, "engine": engine})
    start = time.perf_counter()
    result = clean(folder, out, cfg, progress=QUIET)
    wall = time.perf_counter() - start
    s = result.summary
    return {"wall_s": wall, "timings_s": s["timings_s"], "work": s["work"], "images": s["images"],
            "views": cfg.tta.views, "members": len(cfg.members), "peak_rss_mb": peak_rss_mb(),
            "engines": s.get("engines", {}), "in_review": s["in_review"]}


def export_backbones(config: str) -> dict:
    """Export the config's frozen backbones into the ONNX cache (if not there yet); seconds per member."""
    import torch

    from datacleaner import engines
    from datacleaner.config import load_config
    from datacleaner.models import create_member_model, member_preprocess
    from datacleaner.weights import resolve_weights

    torch.set_num_threads(2)
    cfg = load_config(config, {"weights_dir": WEIGHTS})
    pretrained = resolve_weights(cfg)
    out = {}
    for m in cfg.members:
        if not m.frozen:
            continue
        model = create_member_model(m, 10, pretrained_path=pretrained.get(m.label)).eval()
        start = time.perf_counter()
        backbone, run = engines.onnx_backbone(model, member_preprocess(m).size)
        out[m.label] = {"seconds": time.perf_counter() - start, "engine": run.engine, "note": run.note}
    return out


BACKBONE_ARCHS = {"lite0": "tf_efficientnet_lite0", "mnv2": "mobilenetv2_100", "lite2": "tf_efficientnet_lite2"}


def time_backbone(spec: str, seconds: float = 8.0) -> dict:
    """Image-views/s of one backbone alone: spec = arch:size:engine:batch:threads:opt (opt: basic,
    extended, all or int8; int8 also reports the features' cosine similarity to float32's)."""
    import torch

    from datacleaner import engines
    from datacleaner.augment import to_model_input
    from datacleaner.config import MemberConfig
    from datacleaner.models import create_member_model, member_preprocess
    from datacleaner.runtime import configure
    from datacleaner.weights import resolve_weights
    from datacleaner.config import CleanConfig

    arch, size, engine, batch, threads, opt = spec.split(":")
    size, batch, threads = int(size), int(batch), int(threads)
    configure(threads)
    member = MemberConfig(arch=BACKBONE_ARCHS.get(arch, arch), pretrained=True, frozen=True, img_size=size)
    cfg = CleanConfig(members=[member], weights_dir=str(WEIGHTS))
    model = create_member_model(member, 10, pretrained_path=resolve_weights(cfg).get(member.label)).eval()
    prep = member_preprocess(member)
    images = np.load(DATA)["images"]
    mean, std = prep.tensors(torch.device("cpu"))

    def inputs(rows: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(images[rows])
        x = to_model_input(x, mean, std)
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

        path = engines.onnx_path(model, size)
        if not path.is_file():
            engines.export(model, size, path)
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

    from datacleaner.augment import train_transform
    from datacleaner.config import deterministic_views, load_config
    from datacleaner.dataset import find_labeled_images
    from datacleaner.folds import make_fold_plan
    from datacleaner.fuse import fuse
    from datacleaner.keys import member_seed
    from datacleaner.models import MemberLoss, create_member_model, make_optimizer, member_preprocess
    from datacleaner.scoring import score

    from datacleaner.weights import resolve_weights

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
    import torch

    from datacleaner.augment import make_views, train_transform, view_params
    from datacleaner.config import load_config
    from datacleaner.models import member_preprocess

    torch.set_num_threads(2)
    cfg = load_config(config)
    prep = member_preprocess(cfg.members[0])
    images = np.load(DATA)["images"][:n]
    import cv2

    cv2.setNumThreads(1)
    big = np.stack([cv2.resize(a, (prep.size, prep.size), interpolation=cv2.INTER_LINEAR) for a in images])
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


# --- the table ------------------------------------------------------------------------------
def child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    print(f"\nconfig {config}, 2 torch threads, "
          f"{runs[sizes[0]]['members']} members, {runs[sizes[0]]['views']} TTA views\n")
    print("| stage | " + " | ".join(f"N={n:,}: s" for n in sizes) + " | " + " | ".join(f"N={n:,}: rate" for n in sizes) + " |")
    print("|---|" + "---:|" * (2 * len(sizes)))
    for key, label, work, unit in STAGES:
        if not any(runs[n]["timings_s"].get(key, 0.0) > 0 for n in sizes):
            continue
        secs, rates = [], []
        for n in sizes:
            t = runs[n]["timings_s"].get(key, 0.0)
            amount = runs[n]["work"].get(work, 0) if work else runs[n]["images"]
            secs.append(f"{t:.1f}")
            rates.append(f"{amount / t:,.0f} {unit}/s" if t > 0 and amount else "–")
        if key == "train_heads":
            rates = [f"{runs[n]['timings_s'].get(key, 0.0) / max(1, runs[n]['work'].get('head_fits', 1)):.1f} s/head"
                     for n in sizes]
        if key == "train":
            secs = [f"{runs[n]['timings_s'].get(key, 0.0) / max(1, runs[n]['work'].get('member_epochs', 1)):.1f} per m-e"
                    for n in sizes]
        print(f"| {label} | " + " | ".join(secs) + " | " + " | ".join(rates) + " |")
    print("| **end to end** | " + " | ".join(f"**{runs[n]['wall_s']:.1f}**" for n in sizes) + " | "
          + " | ".join(f"{n / runs[n]['wall_s']:,.1f} img/s" for n in sizes) + " |")
    print("| peak memory (MB) | " + " | ".join(f"{runs[n]['peak_rss_mb']:,.0f}" for n in sizes) + " |" + " |" * len(sizes))
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
        print(f"\nnaive reference on N={naive['images']:,}: {naive['wall_s']:.1f} s; ours on the same images: "
              f"{ours_small['wall_s']:.1f} s -> speed-up {naive['wall_s'] / ours_small['wall_s']:.1f}x end to end; "
              f"per image: naive {naive['wall_s'] / naive['images'] * 1000:.0f} ms vs ours "
              f"{runs[sizes[-1]]['wall_s'] / sizes[-1] * 1000:.1f} ms at N={sizes[-1]:,} "
              f"({naive['wall_s'] / naive['images'] / (runs[sizes[-1]]['wall_s'] / sizes[-1]):.1f}x)")


def compare_engines(by_engine: dict[str, dict[int, dict]], work: Path) -> None:
    """Per N: features, heads and end to end on each engine, the ratios, and whether the review lists match."""
    import pandas as pd

    names = list(by_engine)
    base, other = names[0], names[-1]
    print(f"\n| N | stage | " + " | ".join(names) + f" | {base} / {other} |")
    print("|---:|---|" + "---:|" * (len(names) + 1))
    for n in sorted(by_engine[base]):
        for key, label in (("features", "frozen features"), ("train_heads", "frozen heads"), ("health", "health checks"), (None, "**end to end**")):
            secs = [by_engine[e][n]["wall_s"] if key is None else by_engine[e][n]["timings_s"].get(key, 0.0) for e in names]
            ratio = f"{secs[0] / secs[-1]:.2f}x" if secs[-1] > 0 else "–"
            print(f"| {n:,} | {label} | " + " | ".join(f"{x:.1f} s" for x in secs) + f" | {ratio} |")
        lists = [set(pd.read_csv(work / f"run-{n}-{e}" / "review.csv")["path"]) for e in names]
        same = len(lists[0] & lists[-1])
        print(f"| {n:,} | review rows (shared) | " + " | ".join(f"{len(x):,}" for x in lists) + f" | {same:,} shared |")


def backbone_table(specs: list[str], common: list[str]) -> None:
    results = []
    for spec in specs:
        results.append(child(["--backbone", spec, *common]))
        print(f"{spec}: {results[-1]}", file=sys.stderr, flush=True)
    print("\n| backbone | px | engine | batch | threads | graph | img-view/s | features vs float32 |")
    print("|---|---:|---|---:|---:|---|---:|---|")
    for r in results:
        arch, size, engine, batch, threads, opt = r["spec"].split(":")
        cos = f"cosine {r['cosine_to_float32']:.3f} (min {r['cosine_min']:.3f})" if "cosine_to_float32" in r else "–"
        print(f"| {arch} | {size} | {engine} | {batch} | {threads} | {opt if engine != 'torch' else '–'} | "
              f"{r['img_view_s']:,.0f} | {cos} |")


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
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: our pipeline on N images
    ap.add_argument("--engine", default="auto", help=argparse.SUPPRESS)  # child: with this engine
    ap.add_argument("--export", action="store_true", help=argparse.SUPPRESS)  # child: fill the ONNX cache
    ap.add_argument("--backbone", help=argparse.SUPPRESS)  # child: one backbone setting
    ap.add_argument("--naive", type=int, help=argparse.SUPPRESS)  # child: the naive reference on N images
    ap.add_argument("--augment", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    config = args.config
    os.environ.setdefault("DATACLEANER_CACHE_DIR", str(args.work / "cache"))  # exported backbones
    if args.one:
        tree = write_tree(args.work / f"png-{args.one}", args.one)
        print(json.dumps(run_ours(tree, config, args.work / f"run-{args.one}-{args.engine}", args.engine)))
        return
    if args.export:
        print(json.dumps(export_backbones(config)))
        return
    if args.backbone:
        print(json.dumps(time_backbone(args.backbone)))
        return
    if args.naive:
        print(json.dumps(run_naive(write_tree(args.work / f"png-{args.naive}", args.naive), config)))
        return
    if args.augment:
        print(json.dumps(time_augment(config)))
        return
    if not DATA.is_file():
        sys.exit(f"{DATA} not found: this benchmark reads the shared CIFAR-10N images")
    common = ["--config", config, "--work", str(args.work)]
    if args.backbones:
        backbone_table(backbone_specs(), common)
        return
    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    if any(e != "torch" for e in names):
        exported = child(["--export", *common])
        print("one-time ONNX export (cached for later runs): " + ", ".join(
            f"{m} {x['seconds']:.1f} s ({x['engine']}{': ' + x['note'] if x['note'] else ''})" for m, x in exported.items()))
    by_engine: dict[str, dict[int, dict]] = {e: {} for e in names}
    for n in sorted(int(x) for x in args.sizes.split(",")):
        for e in names:
            by_engine[e][n] = child(["--one", str(n), "--engine", e, *common])
            print(f"N={n} {e}: {by_engine[e][n]['wall_s']:.1f} s, {by_engine[e][n]['timings_s']}", file=sys.stderr, flush=True)
    augment = child(["--augment", *common])
    naive = ours_small = None
    runs = by_engine[names[0]]
    if args.naive_n:
        ours_small = runs.get(args.naive_n) or child(["--one", str(args.naive_n), *common])
        naive = child(["--naive", str(args.naive_n), *common])
    for e in names:
        print(f"\n### engine {e} (ran: {next(iter(by_engine[e].values()))['engines']})")
        print_table(by_engine[e], augment, naive if e == names[0] else None, ours_small, config)
    if len(names) > 1:
        compare_engines(by_engine, args.work)
    if args.json:
        args.json.write_text(json.dumps({"runs": by_engine, "augment": augment, "naive": naive, "ours_small": ours_small}, indent=2))


if __name__ == "__main__":
    main()
