"""Stage 3a, frozen members: each backbone's TTA features of every image computed once (jobs, in shards that
survive an interruption), then per round a logistic head on the round's training images, applied to the
images the round judges: logits/ files.  [I/O, numpy]"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..arrays import GiB, NpyFile, NpyWriter, memory_budget, rows_per_piece
from ..config import CleanConfig, Judge, MemberConfig
from ..executors import Rows
from ..jobs import predict_job
from ..tables import write_bytes_atomic, write_text_atomic
from ..training import fit_view_head, fit_view_head_chunked
from .rundir import RunDir, save_array
from .start import Pass, RunContext


def fit_frozen_heads(ctx: RunContext, frozen: list[tuple[int, MemberConfig]], pass_: Pass) -> None:
    """Frozen members: backbone features once per image, then per round a logistic head on the round's
    training images, applied to the images it judges (cheap: done in this process). A round's training
    features are held in memory (float32) when they fit the memory budget; otherwise the head is fitted
    from the feature file in pieces (the same head up to float rounding)."""
    cfg, C = ctx.cfg, len(ctx.info["classes"])
    budget = memory_budget(cfg.memory_gb)
    with ctx.watch.stage("features"):
        members = {m.label: m for _, m in frozen}
        features = {label: frozen_features(ctx, m) for label, m in members.items()}  # (N, V, D) each, NpyFile
    with ctx.watch.stage("train_heads"):
        told = False
        for r, m in frozen:
            feats, t = features[m.label], ctx.train_idx(r, pass_)
            per_image = int(np.prod(feats.shape[1:])) * 4  # float32 bytes of one image's views
            stats: dict = {}
            init = _head_to_start_from(ctx, m, r, pass_)
            if len(t) * per_image * 1.5 <= budget:  # the float16 rows read, then their float32 copy
                W, b = fit_view_head(feats[t], ctx.labels[t], C, m, stats=stats, init=init)
            else:
                if not told:
                    ctx.progress.info(
                        f"memory: a head's training features ({len(t) * per_image / GiB:.1f} GB) exceed the memory budget "
                        f"({budget / GiB:.1f} GB, memory_gb): fitting heads from disk in pieces")
                    told = True
                W, b = fit_view_head_chunked(feats, t, ctx.labels[t], C, m, chunk_images=rows_per_piece(budget, per_image),
                                             stats=stats, init=init)
            _save_head(ctx.run.head_path(cfg, m, r, ctx.info, pass_.held_out), W, b)
            judge = ctx.plan.judge_idx(r)
            path = ctx.run.logits_path(cfg, Judge(m), r, ctx.info, pass_.held_out)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".partial.npy")
            with NpyWriter(tmp, (len(judge), feats.shape[1], C), np.float32, block_rows=1) as out:  # (n_judged, V, C)
                for s in range(0, len(judge), cfg.shard_images):  # written as computed: one shard in memory
                    out.write(s, np.asarray(feats[judge[s : s + cfg.shard_images]], dtype=np.float32) @ W.T + b)
            os.replace(tmp, path)
            ctx.watch.count("head_fits", 1)
            ctx.watch.count("head_evaluations", stats.get("evaluations", 0))  # L-BFGS loss evaluations: passes over the data


def _head_to_start_from(ctx: RunContext, member: MemberConfig, round_: int, pass_: Pass):
    """Where a frozen member's head starts L-BFGS: pass 2's from pass 1's head of the same round, pass 1's
    later rounds from its round 1 (they train on mostly the same images, so the optimum is near and
    is reached in about half the evaluations); round 1 of pass 1, or a head not on disk, from zero.
    The start is read from the run directory, so a resumed run starts every head where it would have."""
    cfg, info = ctx.cfg, ctx.info
    if pass_.held_out:
        path = ctx.run.head_path(cfg, member, round_, info)
    elif round_ > 0:
        path = ctx.run.head_path(cfg, member, 0, info)
    else:
        return None
    if not path.is_file():
        return None
    with np.load(path) as saved:
        return saved["W"], saved["b"]


def _save_head(path: Path, W: np.ndarray, b: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, W=np.asarray(W, dtype=np.float32), b=np.asarray(b, dtype=np.float32))
    write_bytes_atomic(path, buf.getvalue())


def frozen_features(ctx: RunContext, member: MemberConfig) -> NpyFile:
    """(N, V, D) float16 TTA features of a frozen member's backbone, computed once per run in shards
    (each saved as it arrives, so an interrupted run resumes), then joined into one file read in pieces.
    Which engine computed them is kept beside the file (<features>.json, see `engines_used`)."""
    cfg, images = ctx.cfg, ctx.prepared.images
    path = ctx.run.features_path(cfg, member, ctx.info)
    if path.is_file():
        return NpyFile(path)
    parts_dir = path.with_suffix(".parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, len(images), cfg.shard_images))
    todo = [s for s in starts if not (parts_dir / f"{s}.npy").is_file()]
    jobs = [
        ctx.job(predict_job, member, f"features {member.label}", weights=None, images=Rows(images, idx), index=idx,
                tta=cfg.tta, aug=cfg.augment, seed=cfg.seed, batch_size=cfg.batch_size_predict, features=True,
                engine=cfg.engine, desc=f"features {member.label} {s}/{len(images)}")
        for s in todo for idx in [np.arange(s, min(len(images), s + cfg.shard_images))]
    ]
    engines_seen = set(json.loads((parts_dir / "engines.json").read_text())) if (parts_dir / "engines.json").is_file() else set()
    for i, (feats, used) in ctx.executor.run(jobs):
        _tell_engine(ctx, member, used)
        engines_seen.add(used.engine)
        write_text_atomic(parts_dir / "engines.json", json.dumps(sorted(engines_seen)))
        save_array(parts_dir / f"{todo[i]}.npy", feats)
        ctx.watch.count("feature_image_views", feats.shape[0] * feats.shape[1])
    tmp = path.with_suffix(".partial.npy")
    shape = np.load(parts_dir / f"{starts[0]}.npy", mmap_mode="r").shape if starts else (0, 1, 1)
    with NpyWriter(tmp, (len(images), *shape[1:]), np.float16, block_rows=1) as out:
        for s in starts:
            out.write(s, np.load(parts_dir / f"{s}.npy"))  # (n, V, D) float16
    write_text_atomic(path.with_suffix(".json"), json.dumps({"engine": " + ".join(sorted(engines_seen)) or "none"}))
    os.replace(tmp, path)
    shutil.rmtree(parts_dir)
    return NpyFile(path)


def engines_used(run: RunDir, cfg: CleanConfig, info: dict) -> dict[str, str]:
    """{member: the engine that ran its forward passes}: a frozen member's as recorded beside its features
    ('onnxruntime', 'torch', both joined by ' + ' when a resumed run mixed them), a fine-tuned one's 'torch'."""
    out = {}
    for m in cfg.members:
        side = run.features_path(cfg, m, info).with_suffix(".json")
        out[m.label] = json.loads(side.read_text())["engine"] if m.frozen and side.is_file() else "torch"
    return out


def _tell_engine(ctx: RunContext, member: MemberConfig, used) -> None:
    """One line per member and run saying which engine computed its features, and why when torch stood in."""
    if member.label in ctx.told:
        return
    ctx.told.add(member.label)
    why = f" ({used.note})" if used.note else ""
    ctx.progress.info(f"features {member.label}: {used.engine}{why}")
