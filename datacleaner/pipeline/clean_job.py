"""The `clean` job: prepare -> plan -> features / training jobs -> judge -> health -> write, each stage in its own
module of this package. Training and prediction are jobs (jobs.py) run by an executor (executors.py: this
process or Ray tasks); only this driver writes into the run directory.  [I/O]"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import health
from ..arrays import PER_IMAGE_BYTES, GiB, memory_budget
from ..config import CleanConfig, Judge, judges
from ..lock import run_lock
from ..models import resolve_device
from ..progress import Progress
from .checks import health_features
from .heads import engines_used, fit_frozen_heads
from .judge import probabilities_on_disk
from .report import CleanResult, write_outputs
from .rundir import RunDir, health_member
from .start import Pass, RunContext, configure_run, small_data_warnings, start_pass, start_run, weak_committee_warnings
from .tuned import judge_members, train_members


def clean(
    data: str | Path, out: str | Path, config: str | Path | CleanConfig | None = None, *,
    progress: Progress | None = None, **overrides,
) -> CleanResult:
    """Run (or continue) the whole `clean` job on `data` (class folders or a CSV manifest) and write
    its outputs into the run directory `out`.

    config: a built-in profile name ('cpu', 'gpu', 'small'), a YAML path, a CleanConfig, or None
    for the profile chosen from the data and the device (choice.py); `overrides` are config keys on top
    (e.g. folds=3, weights_dir='weights'). Training and prediction jobs go to the config's
    executor (this process, or a Ray cluster). Holds the run directory's lock throughout.
    """
    progress = progress or Progress()
    started = time.time()
    cfg, origin, pretrained = configure_run(config, overrides, progress, data, RunDir(out))
    with run_lock(out, progress):
        ctx = start_run(data, cfg, pretrained, RunDir(out), progress)
        warnings = small_data_warnings(ctx)
        trained = reused = 0
        for number in range(cfg.passes):
            pass_ = start_pass(ctx, number)
            todo = [(r, j) for r in range(ctx.plan.n_rounds) for j in judges(cfg.members)
                    if not ctx.run.logits_path(cfg, j, r, ctx.info, pass_.held_out).is_file()]
            reused += ctx.plan.n_rounds * len(judges(cfg.members)) - len(todo)
            trained += _train_and_judge(ctx, todo, pass_)
        if health.parse_checks(cfg.checks):
            with ctx.watch.stage("health"):
                health_features(ctx)
        with ctx.watch.stage("score_write"):
            result = write_outputs(ctx.run, watch=ctx.watch, progress=ctx.progress)
        warnings += weak_committee_warnings(result.summary)
        for w in warnings:
            progress.info(f"warning: {w}")
        result.summary.update(
            profile=origin.profile, profile_reason=origin.reason, warnings=warnings,
            wall_time_s=round(time.time() - started, 1), members_trained=trained,
            device=str(resolve_device(cfg.device)), engines=engines_used(ctx.run, cfg, ctx.info),
            judgements_reused=reused, executor=where_work_ran(ctx), memory=memory_plan(ctx), **ctx.watch.report(),
        )
        ctx.run.write_json("summary.json", result.summary)
    return result


def where_work_ran(ctx: RunContext) -> dict[str, str]:
    """summary.json's executor: where each kind of this committee's work runs ('local' or 'ray'; 'none' for a
    kind it has none of): backbone features (frozen members and the health checks' features), training
    (fine-tuned members' training and judging jobs) and heads (frozen members' logistic heads)."""
    cfg = ctx.cfg
    health_backbone = bool(health.parse_checks(cfg.checks)) and health_member(cfg, ctx.info) is not None
    features = any(m.frozen for m in cfg.members) or health_backbone
    return {"features": cfg.executor if features else "none",
            "training": cfg.executor if any(not m.frozen for m in cfg.members) else "none",
            "heads": cfg.executor if any(m.frozen for m in cfg.members) else "none"}


def memory_plan(ctx: RunContext) -> dict:
    """summary.json's memory: the budget (memory_gb) and how each stage whose arrays grow with the images kept
    within it; peak_memory_mb beside it says what this process held in each stage (models and runtime included)."""
    cfg, N = ctx.cfg, len(ctx.labels)
    budget = memory_budget(cfg.memory_gb)
    in_pieces = ctx.watch.work.get("heads_in_pieces", 0)
    return {
        "budget_gb": round(budget / GiB, 3),
        "decoded_images": "in memory" if isinstance(ctx.prepared.images, np.ndarray) else "read from disk in pieces",
        "images_per_job": ctx.shard,
        "heads": f"{in_pieces} fitted from disk in pieces" if in_pieces else "in memory",
        "class_probabilities": "on disk" if probabilities_on_disk(N, len(ctx.info["classes"]), budget) else "in memory",
        "per_image_tables_gb": round(N * PER_IMAGE_BYTES / GiB, 3),  # held whole, beside the budget
    }


def _train_and_judge(ctx: RunContext, todo: list[tuple[int, Judge]], pass_: Pass) -> int:
    """Every (round, judge) in `todo` trains (or loads) and judges its round's images; each result
    is written into the run directory as it arrives. Returns how many (round, member) trained."""
    frozen = [(r, j.member) for r, j in todo if j.member.frozen]
    tuned = [(r, j) for r, j in todo if not j.member.frozen]
    fit_frozen_heads(ctx, frozen, pass_)
    trained = train_members(ctx, tuned, pass_)
    judge_members(ctx, tuned, pass_)
    return len(frozen) + trained
