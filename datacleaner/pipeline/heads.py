"""Stage 3a, frozen members: each backbone's TTA features of every image computed once (jobs, in shards that
survive an interruption), then per round a logistic head on the round's training images, applied to the
images the round judges: logits/ files.  [I/O, numpy]"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from ..arrays import GiB, NpyFile, NpyWriter, memory_budget, rows_per_piece
from ..config import CleanConfig, Judge, MemberConfig
from ..executors import Job, Rows, Shared
from ..jobs import head_bytes, head_in_memory, head_job, predict_job
from ..tables import write_bytes_atomic, write_text_atomic
from .rundir import RunDir, join_parts, part_path, save_array, shard_spans
from .start import Pass, RunContext


def fit_frozen_heads(ctx: RunContext, frozen: list[tuple[int, MemberConfig]], pass_: Pass) -> None:
    """Frozen members: backbone features once per image, then per round a logistic head on the round's
    training images (a job each, head_job: on this machine or a Ray cluster), applied here to the
    images it judges. Each head is saved as it arrives and its logits written at once, so a killed run
    resumes with the heads it has. A round's training features are held in memory when they fit the
    memory budget; otherwise the head is fitted from the features in pieces (the same head up to
    float rounding)."""
    cfg, C = ctx.cfg, len(ctx.info["classes"])
    budget = memory_budget(cfg.memory_gb)
    with ctx.watch.stage("features"):
        members = {m.label: m for _, m in frozen}
        features = {label: frozen_features(ctx, m) for label, m in members.items()}  # (N, V, D) each, NpyFile
    with ctx.watch.stage("train_heads"):
        fit = [(r, m) for r, m in frozen if not ctx.run.head_path(cfg, m, r, ctx.info, pass_.held_out).is_file()]
        for r, m in frozen:
            if (r, m) not in fit:  # fitted before the run was stopped: only its logits are missing
                head = _load_head(ctx.run.head_path(cfg, m, r, ctx.info, pass_.held_out))
                _write_logits(ctx, m, r, pass_, features[m.label], head)
        sizes = [(len(ctx.train_idx(r, pass_)), features[m.label].shape) for r, m in fit]
        big = [head_bytes(*size) for size in sizes if not head_in_memory(*size, budget)]  # head_job's own rule
        ctx.watch.count("heads_in_pieces", len(big))
        if big:
            ctx.progress.info(f"memory: a head's training features ({big[0] / GiB:.1f} GB as fitted) exceed the memory budget "
                              f"({budget / GiB:.1f} GB, memory_gb): fitting heads from disk in pieces")
        shared = {label: Shared(f) for label, f in features.items()}
        while fit:  # a head that starts from another one still to fit (pass 1's later rounds) waits for it
            wave = [(r, m) for r, m in fit if _start_from(m, r, pass_) not in fit]
            jobs = []
            for r, m in wave:
                t = ctx.train_idx(r, pass_)
                jobs.append(Job(head_job, dict(member=m, num_classes=C, features=shared[m.label], idx=t, labels=ctx.labels[t],
                                               init=_head_to_start_from(ctx, m, r, pass_), budget=budget),
                                desc=f"heads r{r + 1}{pass_.label} {m.label}", cpus=m.cpus))
            for i, head in ctx.executor.run(jobs):
                r, m = wave[i]
                _save_head(ctx.run.head_path(cfg, m, r, ctx.info, pass_.held_out), head["W"], head["b"])
                _write_logits(ctx, m, r, pass_, features[m.label], (head["W"], head["b"]))
                ctx.watch.count("head_fits", 1)
                ctx.watch.count("head_evaluations", head["stats"].get("evaluations", 0))  # L-BFGS loss evaluations
            fit = [x for x in fit if x not in wave]


def _write_logits(ctx: RunContext, m: MemberConfig, r: int, pass_: Pass, feats, head) -> None:
    """A head applied to the features of the images its round judges: the (round, member)'s logits (n_judged, V, C),
    computed and written a piece at a time."""
    W, b = head
    judge = ctx.plan.judge_idx(r)
    path = ctx.run.logits_path(ctx.cfg, Judge(m), r, ctx.info, pass_.held_out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.npy")
    step = rows_per_piece(memory_budget(ctx.cfg.memory_gb), int(np.prod(feats.shape[1:])) * 4)
    with NpyWriter(tmp, (len(judge), feats.shape[1], len(b)), np.float32, block_rows=1) as out:
        for s in range(0, len(judge), step):
            out.write(s, np.asarray(feats[judge[s : s + step]], dtype=np.float32) @ W.T + b)
    os.replace(tmp, path)


def _start_from(member: MemberConfig, round_: int, pass_: Pass) -> tuple[int, MemberConfig] | None:
    """The (round, member) whose head this one starts L-BFGS from (_head_to_start_from), when that head belongs
    to the same pass: pass 1's later rounds start from its round 1 (pass 2's start from pass 1's, finished)."""
    return (0, member) if not pass_.held_out and round_ > 0 else None


def _head_to_start_from(ctx: RunContext, member: MemberConfig, round_: int, pass_: Pass):
    """Where a frozen member's head starts L-BFGS: pass 2's from pass 1's head of the same round, pass 1's
    later rounds from its round 1 (they train on mostly the same images, so the optimum is near and
    is reached in about half the evaluations); round 1 of pass 1, or a head not on disk, from zero.
    The start is read from the run directory, so a resumed run starts every head where it would have."""
    source = (round_, member) if pass_.held_out else _start_from(member, round_, pass_)
    if source is None:
        return None
    path = ctx.run.head_path(ctx.cfg, member, source[0], ctx.info)  # a pass 1 head
    return _load_head(path) if path.is_file() else None


def _load_head(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as saved:
        return saved["W"], saved["b"]


def _save_head(path: Path, W: np.ndarray, b: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, W=np.asarray(W, dtype=np.float32), b=np.asarray(b, dtype=np.float32))
    write_bytes_atomic(path, buf.getvalue())


def frozen_features(ctx: RunContext, member: MemberConfig) -> NpyFile:
    """(N, V, D) float16 TTA features of a frozen member's backbone, computed once per run (backbone_features).
    Which engine computed them is kept beside the file (<features>.json, see `engines_used`)."""
    path = ctx.run.features_path(ctx.cfg, member, ctx.info)
    return backbone_features(ctx, member, ctx.cfg.tta, path, f"features {member.label}")


def backbone_features(ctx: RunContext, member: MemberConfig, tta, path: Path, name: str) -> NpyFile:
    """(N, V, D) float16 features of a member's pretrained backbone under `tta` at `path`, computed as jobs of
    ctx.shard images (each saved as it arrives, so an interrupted run resumes), then joined into one file
    read in pieces; which engine ran them is recorded beside it (<path>.json)."""
    cfg, images = ctx.cfg, ctx.prepared.images
    if path.is_file():
        return NpyFile(path)
    parts_dir = path.with_suffix(".parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    spans = shard_spans(len(images), ctx.shard)
    todo = [span for span in spans if not part_path(parts_dir, span).is_file()]
    jobs = [
        ctx.job(predict_job, member, name, weights=None, images=Rows(images, np.arange(s, e)), index=np.arange(s, e),
                tta=tta, aug=cfg.augment, seed=cfg.seed, batch_size=cfg.batch_size_predict, features=True,
                engine=cfg.engine, desc=f"{name} {s}/{len(images)}")
        for s, e in todo
    ]
    engines_seen = set(json.loads((parts_dir / "engines.json").read_text())) if (parts_dir / "engines.json").is_file() else set()
    for i, (feats, used) in ctx.executor.run(jobs):
        _tell_engine(ctx, member, used)
        engines_seen.add(used.engine)
        write_text_atomic(parts_dir / "engines.json", json.dumps(sorted(engines_seen)))
        save_array(part_path(parts_dir, todo[i]), feats)
        ctx.watch.count("feature_image_views", feats.shape[0] * feats.shape[1])
    write_text_atomic(path.with_suffix(".json"), json.dumps({"engine": " + ".join(sorted(engines_seen)) or "none"}))
    join_parts(parts_dir, spans, path, np.float16)  # (N, V, D)
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
