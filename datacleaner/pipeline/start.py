"""Stage 2, plan: the config and weights checked before anything is written, the folds planned, run.json,
config.yaml and manifest.csv recorded, and the context every later stage of `clean` reads; a pass's
images to leave out (pass 2: what pass 1 flagged).  [I/O]"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import health
from ..arrays import PER_IMAGE_BYTES, GiB, memory_budget
from ..config import CleanConfig, MemberConfig, dump_config, resolve_config
from ..errors import DataCleanerError
from ..executors import Job, make_executor
from ..folds import FoldPlan, make_fold_plan
from ..keys import digest
from ..progress import Progress, Stopwatch
from ..runtime import release_freed_memory
from ..tables import write_text_atomic
from ..weights import missing_weights, resolve_weights, weights_identity
from .judge import judge_pass
from .prepare import Prepared, prepare
from .rundir import RunDir


def configure_run(config, overrides: dict, progress: Progress, data, run: RunDir | None = None):
    """(config, where it came from, every pretrained member's weights file) for `clean` and `train`,
    before anything is written: a bad config or a member without weights stops the command here,
    unless `run` (an earlier run of `clean` in the same directory) recorded that member's weights:
    then its cached work may cover it (checked in start_run). No config: the profile is chosen from
    the data and the device."""
    cfg, origin = resolve_config(config, overrides, data)
    progress.info(f"profile: {origin.profile} ({origin.reason})")
    recorded = (run.read_json("run.json") or {}).get("pretrained") if run is not None else None
    pretrained = resolve_weights(cfg, recorded)
    for label in missing_weights(pretrained):
        progress.info(f"weights: {label}'s are not found; going on with this run's cached work for it "
                      f"(weights {recorded[label]}, recorded by the earlier run)")
    return cfg, origin, pretrained


@dataclass
class Pass:
    """One judging pass: its committees train without the images in `exclude` (pass 2: those
    pass 1 sent to review); `held_out` (a digest of them) names pass 2's cached files."""

    exclude: np.ndarray  # (N,) bool
    held_out: str | None = None  # None: pass 1

    @property
    def label(self) -> str:
        return " pass 2" if self.held_out else ""


@dataclass
class RunContext:
    """What every step of one `clean` run reads; only the driver writes into `run`."""

    run: RunDir
    cfg: CleanConfig
    info: dict  # run.json: fingerprint, cache size, classes, where the data is
    plan: FoldPlan
    prepared: Prepared
    pretrained: dict[str, str | None]  # member label -> pretrained weights file (None: timm's hub)
    executor: Any  # executors.LocalExecutor or RayExecutor
    progress: Progress
    watch: Stopwatch
    told: set = dataclasses.field(default_factory=set)  # members whose engine was announced

    @property
    def labels(self) -> np.ndarray:
        return self.prepared.labeled.labels  # (N,)

    def train_idx(self, round_: int, pass_: Pass) -> np.ndarray:
        idx = self.plan.train_idx(round_)
        return idx[~pass_.exclude[idx]]

    @property
    def shard(self) -> int:
        """Images per prediction job: shard_images, fewer when their decoded pixels would pass an eighth of the
        memory budget (a job holds its shard's pixels, and the driver cuts one shard at a time)."""
        row = int(np.prod(self.prepared.images.shape[1:], dtype=np.int64))
        return min(self.cfg.shard_images, max(64, memory_budget(self.cfg.memory_gb) // 8 // max(row, 1)))

    def job(self, fn, member: MemberConfig, name: str, **kwargs) -> Job:
        """A job `name` for `member` with what every member job takes, asking the executor for its resources."""
        common = dict(
            member=member, num_classes=len(self.info["classes"]), prep=self.prepared.preps[member.label],
            device=self.cfg.device, compile=self.cfg.compile, pretrained_path=self.pretrained.get(member.label),
        )
        return Job(fn, {**common, **kwargs}, desc=name, cpus=member.cpus, gpus=member.gpus)


def start_run(data, cfg: CleanConfig, pretrained: dict, run: RunDir, progress: Progress) -> RunContext:
    """Find, check and decode the data, plan the folds and record run.json (with what the
    pretrained weights are), config.yaml and manifest.csv."""
    watch = Stopwatch(on_stage_end=release_freed_memory)
    prepared = prepare(data, cfg, run, progress, min_per_class=cfg.folds, guard=True, watch=watch)
    labeled = prepared.labeled
    info = {
        "fingerprint": prepared.fingerprint, "cache_size": prepared.size, "classes": labeled.classes,
        "data": str(Path(data).resolve()), "source": labeled.source, "root": str(labeled.root.resolve()),
        "pretrained": weights_identity(pretrained),
    }
    if health.is_grayscale(prepared.images, prepared.usable):
        info["health_features"] = "pixels"
    for m in cfg.members:  # all a frozen member needs its weights for is its features: fail before writing anything
        why = missing_weights(pretrained).get(m.label)
        if why and m.frozen and not run.features_path(cfg, m, info).is_file():
            raise DataCleanerError(f"member '{m.label}' needs its pretrained weights: this run has no cached features "
                                   f"for it (other data, image size or views than the earlier run). {why}")
    run.write_json("run.json", info)
    write_text_atomic(run.file("config.yaml"), dump_config(cfg))
    plan = make_fold_plan(labeled.labels, scheme=cfg.scheme, folds=cfg.folds, seed=cfg.seed, usable=prepared.usable)
    manifest = pd.DataFrame({
        "path": labeled.paths, "label": labeled.labels, "part": plan.part,
        "reason": [prepared.problems.get(i, "") for i in range(len(labeled.paths))], "checksum": prepared.checksums,
    })
    if prepared.sizes is not None:  # each file's own width and height (0 when unreadable)
        manifest["width"], manifest["height"] = np.asarray(prepared.sizes, dtype=np.int64).reshape(-1, 2).T
    write_text_atomic(run.file("manifest.csv"), manifest.to_csv(index=False))  # internal: not neutralised
    tables, budget = len(labeled.paths) * PER_IMAGE_BYTES, memory_budget(cfg.memory_gb)
    if tables > budget:  # said before the work starts: nothing splits these
        progress.info(f"memory: the per-image tables of {len(labeled.paths):,} images (labels, scores, compact features, "
                      f"neighbours: about {tables / GiB:.1f} GB) exceed the memory budget ({budget / GiB:.1f} GB, "
                      "memory_gb); they are held whole on top of it")
    executor = make_executor(cfg.executor, address=cfg.ray_address, retries=cfg.retries, progress=progress)
    return RunContext(run, cfg, info, plan, prepared, pretrained, executor, progress, watch)


def start_pass(ctx: RunContext, number: int) -> Pass:
    """Pass 1 trains on every image of its parts; pass 2 without those pass 1 sent to review."""
    if number == 0:
        return Pass(np.zeros(len(ctx.labels), dtype=bool))
    first = judge_pass(ctx.run, ctx.cfg, ctx.info, ctx.plan, ctx.labels, held_out=None, progress=ctx.progress)[0]
    # what pass 1 flagged, whatever part of it min_error_prob shows: a cut of the list leaves the training alone
    exclude = (first.rounds > 0) & (first.flag_count >= ctx.cfg.resolved_min_flags(ctx.plan.judgements_per_image))
    held_out = digest(np.flatnonzero(exclude).tolist())
    ctx.run.write_json("second_pass.json", {"held_out": held_out, "excluded": np.flatnonzero(exclude).tolist()})
    ctx.progress.info(f"pass 2: retraining every committee without the {int(exclude.sum())} images pass 1 flagged")
    return Pass(exclude, held_out)


def small_data_warnings(ctx: RunContext) -> list[str]:
    per_class = np.bincount(ctx.labels[ctx.plan.train_idx(0)], minlength=len(ctx.info["classes"]))
    if per_class.min() >= 20:
        return []
    return [
        f"each committee trains on as few as {per_class.min()} images of a class "
        f"(scheme {ctx.cfg.scheme}, {ctx.cfg.folds} folds); on data this small prefer --scheme cv or fewer folds"
    ]


def weak_committee_warnings(summary: dict) -> list[str]:
    if summary["committee_disagreement"] <= 0.5:
        return []
    return [
        "the committees disagree with more than half of the labels: they are likely too weak for this data "
        "(try --scheme cv, more epochs, a larger img_size or pretrained members) rather than the labels all wrong"
    ]
