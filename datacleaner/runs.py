"""The run directory and the `clean` job: decode, plan, train, predict, score, write.  [I/O]

Layout of a run directory (`--out`):

    config.yaml        resolved config (rewritten by rescore)
    run.json           data fingerprint, classes, cache size: what cached files belong to
    manifest.csv       every image: path, label, part, unreadable reason
    cache/             decoded images, uint8 (N, S, S, 3), decoded once per run
    members/           member weights per (round, member), safetensors
    features/          frozen members: backbone TTA features of every image (N, V, D) float16
                       (computed in shards under <name>.parts/, joined when all are done)
    logits/            TTA logits per (round, member): (n_judged, V, C) float32 (r<k>p2-...: pass 2)
    second_pass.json   passes: 2 only: the images pass 1 flagged, left out of pass 2's training
    scores.csv         every image;  review.csv  the rows to decide;  health.csv  data-health findings;  summary.json
    .datacleaner.lock  held while a command works here (lock.py): one command at a time

Every cached file is named by a hash of what determines it, so a re-run continues
from whatever finished, and changing only tau / T / fusion re-scores without training.
Training and prediction are jobs (jobs.py) run by an executor (executors.py: this
process or Ray tasks); only this driver writes into the run directory.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import health
from .arrays import GiB, NpyFile, NpyWriter, memory_budget, rows_per_piece, scratch_array
from .calibrate import fused_rounds
from .fuse import majority_vote
from .committee import Committee
from .config import JUDGING_ONLY, CleanConfig, Judge, MemberConfig, dump_config, judges, load_config, resolve_config, set_judge_weight
from .dataset import LabeledImages, check_class_sizes, decode_images, find_labeled_images
from .errors import DataCleanerError
from .executors import Job, Later, Rows, Shared, make_executor
from .folds import FoldPlan, make_fold_plan
from .jobs import predict_job, train_cycle_job, train_job
from .keys import digest, member_seed
from .lock import run_lock
from .models import member_preprocess, resolve_device
from .progress import Progress, Stopwatch
from .tables import LABEL_ISSUES, keep_decisions, list_lock, primary_issue, review_table, score_table, write_bytes_atomic, write_csv_atomic, write_text_atomic
from .runtime import configure
from .scoring import score_rounds
from .training import Cycles, fit_view_head, fit_view_head_chunked
from .weights import missing_weights, resolve_weights, weights_identity


def data_fingerprint(labeled: LabeledImages) -> str:
    """Paths, labels, sizes and modification times of the dataset's files."""
    stats = []
    for i in range(len(labeled.paths)):
        try:
            st = labeled.absolute(i).stat()
            stats.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((-1, -1))
    return digest([labeled.paths, labeled.labels.tolist(), labeled.classes, stats])


@dataclass
class CleanResult:
    run_dir: Path
    scores: pd.DataFrame  # every image (scores.csv)
    review: pd.DataFrame  # flagged and unreadable images, most suspect first (review.csv)
    summary: dict


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    def read_json(self, name: str) -> dict | None:
        p = self.file(name)
        return json.loads(p.read_text()) if p.is_file() else None

    def write_json(self, name: str, obj) -> None:
        write_text_atomic(self.file(name), json.dumps(obj, indent=2, default=str) + "\n")

    # keys of cached work -------------------------------------------------------------
    def training_key(self, cfg: CleanConfig, member: MemberConfig, round_: int, info: dict, held_out: str | None = None) -> str:
        """What a member's training depends on (not its fusion weight, name or how many snapshots judge)."""
        recipe = {k: v for k, v in asdict(member).items() if k not in ("weight", "name", *JUDGING_ONLY)}
        parts = [recipe, asdict(cfg.augment), cfg.scheme, cfg.folds, cfg.seed, round_, info["fingerprint"], info["cache_size"],
                 self._weights(info, member)]
        return digest(parts + ([held_out] if held_out else []))

    @staticmethod
    def _weights(info: dict, member: MemberConfig) -> str | None:
        """What the member's pretrained weights are (weights.weights_identity), None when it has none."""
        return info.get("pretrained", {}).get(member.label)

    @staticmethod
    def _prefix(round_: int, judge: Judge, held_out: str | None) -> str:
        return f"r{round_}{'p2' if held_out else ''}-{judge.label}"

    def weights_path(self, cfg, judge: Judge, round_, info, held_out: str | None = None) -> Path:
        """A judge's weights in a round: a member's final weights, or one snapshot's (<name>@c<cycle>)."""
        key = self.training_key(cfg, judge.member, round_, info, held_out)
        return self.file("members", f"{self._prefix(round_, judge, held_out)}-{key}.safetensors")

    def state_path(self, cfg, member: MemberConfig, round_, info, held_out: str | None, cycle: int) -> Path:
        """A snapshot member's training state (weights and optimizer) at the end of `cycle`: where it resumes."""
        key = self.training_key(cfg, member, round_, info, held_out)
        return self.file("members", f"{self._prefix(round_, Judge(member), held_out)}-{key}.c{cycle}.state")

    def cycles(self, cfg, member: MemberConfig, round_, info, held_out: str | None) -> Cycles:
        return Cycles(member, lambda c: self.state_path(cfg, member, round_, info, held_out, c),
                      lambda c: self.weights_path(cfg, Judge(member, c), round_, info, held_out))

    def features_path(self, cfg, member, info) -> Path:
        """A frozen member's TTA features of every image: what the backbone and the views depend on."""
        backbone = {k: getattr(member, k) for k in ("arch", "pretrained", "pretrained_file", "img_size", "mean", "std")}
        augmented = cfg.tta.mode == "augment"  # only seeded, augmented views depend on the augmentation and seed
        views = [asdict(cfg.tta), asdict(cfg.augment) if augmented else None, cfg.seed if augmented else None]
        key = digest([backbone, views, info["fingerprint"], info["cache_size"], self._weights(info, member)])
        return self.file("features", f"{member.label}-{key}.npy")

    def health_facts_path(self, size: int, fingerprint: str) -> Path:
        """Pixel facts for the health checks (health_cache) of the decoded cache of `size` px."""
        return self.file("cache", f"health-{size}-{fingerprint}.npz")

    def health_features_path(self, cfg, info) -> Path:
        """Compact features (health.compact_features) of every image, for near duplicates and outliers:
        from the first pretrained member's backbone as pretrained (never fine-tuned: fine-tuning bunches
        a class together), else, and for grayscale data (run.json's health_features), from the pixels
        (health.pixel_features)."""
        m = health_member(cfg, info)
        if m is None:
            source = ["pixels", info["cache_size"], info["fingerprint"]]
        elif m.frozen:
            source = self.features_path(cfg, m, info).name
        else:
            backbone = {k: getattr(m, k) for k in ("arch", "pretrained", "pretrained_file", "img_size", "mean", "std")}
            source = [backbone, info["fingerprint"], info["cache_size"], self._weights(info, m)]
        return self.file("features", f"health-{digest([source, health.FEATURE_DIM])}.npz")

    def head_path(self, cfg, member: MemberConfig, round_, info, held_out: str | None = None) -> Path:
        """A frozen member's fitted head (W, b) in a round: where later heads of the run start from."""
        return self.file("heads", f"{self._prefix(round_, Judge(member), held_out)}-{self.training_key(cfg, member, round_, info, held_out)}.npz")

    def logits_path(self, cfg, judge: Judge, round_, info, held_out: str | None = None) -> Path:
        """TTA logits of (round, judge); `held_out` keys pass 2 by the images it trained without."""
        training = self.training_key(cfg, judge.member, round_, info, held_out)
        key = digest([training, asdict(cfg.tta), asdict(cfg.augment) if cfg.tta.mode == "augment" else None])
        return self.file("logits", f"{self._prefix(round_, judge, held_out)}-{key}.npy")


def health_member(cfg: CleanConfig, info: dict | None = None) -> MemberConfig | None:
    """The member whose pretrained backbone gives the health checks their features: the first frozen one
    (its features are computed anyway), else the first pretrained one; None when none is pretrained or
    the run's data is grayscale (run.json health_features "pixels": a photo backbone puts every writer's
    2 close to every other's, so look-alike scans paired as near copies)."""
    if info is not None and info.get("health_features") == "pixels":
        return None
    pretrained = [m for m in cfg.members if m.pretrained or m.pretrained_file]
    return next((m for m in pretrained if m.frozen), pretrained[0] if pretrained else None)


def _save_array(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write_bytes_atomic(path, buf.getvalue())


def _decoded_cache(run: RunDir, labeled: LabeledImages, size: int, fingerprint: str, progress: Progress,
                   memory_gb: float = 2.0):
    """(N, S, S, 3) uint8 array of every image, {index: reason} for unreadable ones, each file's
    checksum and its own (width, height) (None for a cache decoded before sizes were recorded).
    Decoded once per run into a file under cache/ (written a block at a time); read into RAM when it
    fits in `memory_gb`, else read from the file in pieces (arrays.NpyFile)."""
    name = f"images-{size}-{fingerprint}"
    array_path, problems_path = run.file("cache", name + ".npy"), run.file("cache", name + ".meta.json")
    if array_path.is_file() and problems_path.is_file():
        meta = json.loads(problems_path.read_text())
        problems = {int(k): v for k, v in meta["problems"].items()}
        return _in_memory(array_path, memory_gb, progress), problems, meta["checksums"], meta.get("sizes")
    array_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = array_path.with_suffix(".partial.npy")
    checksums: list[str] = []
    sizes: list[tuple[int, int]] = []
    with progress.bar(len(labeled.paths), "check+decode") as bar, \
            NpyWriter(tmp, (len(labeled.paths), size, size, 3), np.uint8, block_rows=1024) as out:
        files = [labeled.absolute(i) for i in range(len(labeled.paths))]
        _, problems = decode_images(files, size, out, progress=bar.update, checksums=checksums, sizes=sizes)
    os.replace(tmp, array_path)
    sizes = [list(s) for s in sizes]
    meta = {"problems": {str(k): v for k, v in problems.items()}, "checksums": checksums, "sizes": sizes}
    write_text_atomic(problems_path, json.dumps(meta))
    return _in_memory(array_path, memory_gb, progress), problems, checksums, sizes


def _in_memory(path: Path, memory_gb: float, progress: Progress | None = None) -> np.ndarray | NpyFile:
    """The decoded cache read into RAM if it fits `memory_gb`; read from the file in pieces otherwise (and said so)."""
    images = NpyFile(path)
    if images.nbytes <= memory_gb * GiB:
        return images[:]
    if progress is not None:
        progress.info(f"memory: the decoded images ({images.nbytes / GiB:.1f} GB) exceed {memory_gb:.1f} GB "
                      "(cache_memory_gb, or half of memory_gb): reading them from disk in pieces")
    return images


def health_cache(run: RunDir, images: np.ndarray, sizes: list | None, fingerprint: str, progress: Progress) -> dict[str, np.ndarray]:
    """What the data-health checks need from the pixels, computed once per decoded cache (RunDir.health_facts_path):
    property scores, perceptual hashes and pixel digests (health.py). Re-scoring reads it: no decoding again."""
    path = run.health_facts_path(images.shape[1], fingerprint)
    if path.is_file():
        with np.load(path) as saved:
            return dict(saved)
    with progress.bar(len(images), "health") as bar:
        sizes = None if sizes is None else np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        out, digests, hashes = {}, [], []
        for s in range(0, len(images), health.CHUNK):
            chunk = np.asarray(images[s : s + health.CHUNK])
            digests.append(health.pixel_digests(chunk, None if sizes is None else sizes[s : s + len(chunk)]))
            hashes.append(health.phash(chunk))
            bar.update(len(chunk))
        props = health.properties(images, sizes)
        out = {**{f"prop_{k}": v for k, v in props.items()}, "phash": np.concatenate(hashes or [np.zeros(0, np.uint64)]),
               "digest": np.concatenate(digests or [np.zeros((0, 16), np.uint8)])}
    buf = io.BytesIO()
    np.savez(buf, **out)
    write_bytes_atomic(path, buf.getvalue())
    return out


@dataclass
class Prepared:
    """A labeled dataset found, checked and decoded once into the run directory's cache."""

    labeled: LabeledImages
    fingerprint: str
    preps: dict  # member label -> Preprocess
    size: int  # side of the decoded cache
    images: np.ndarray  # (N, S, S, 3) uint8 memmap
    problems: dict  # index -> why the file is unreadable
    checksums: list  # (N,) sha256 prefixes
    usable: np.ndarray  # (N,) bool: readable
    sizes: list | None = None  # (N,) each file's own [width, height]; None for a cache from before they were recorded


def _prepare(data, cfg: CleanConfig, run: RunDir, progress: Progress, *, min_per_class: int, guard: bool,
             watch: Stopwatch | None = None) -> Prepared:
    """Find, fingerprint, decode and check the labeled data; with `guard`, refuse a run dir holding other data."""
    watch = watch or Stopwatch()
    with watch.stage("scan"):
        labeled = find_labeled_images(data)
        fingerprint = data_fingerprint(labeled)
    for note in labeled.notes:
        progress.info(f"note: {note}")
    previous = run.read_json("run.json")
    if guard and previous and previous["fingerprint"] != fingerprint:
        raise DataCleanerError(
            f"{run.path} holds a run on other data (files, labels or timestamps differ from {data}); "
            f"choose a new --out, or delete {run.path} to start over"
        )
    configure(cfg.threads)
    preps = {m.label: member_preprocess(m) for m in cfg.members}
    size = cfg.cache_size or max(p.size for p in preps.values())
    run.path.mkdir(parents=True, exist_ok=True)
    with watch.stage("decode"):
        images, problems, checksums, sizes = _decoded_cache(run, labeled, size, fingerprint, progress,
                                                            min(cfg.cache_memory_gb, memory_budget(cfg.memory_gb) / GiB / 2))
    usable = np.ones(len(labeled.paths), dtype=bool)
    usable[list(problems)] = False
    with watch.stage("health"):
        health_cache(run, images, sizes, fingerprint, progress)
    if problems:
        listing = "; ".join(f"{labeled.paths[i]} ({why})" for i, why in list(problems.items())[:5])
        progress.info(f"{len(problems)} unreadable file(s) left out of training: {listing}" + (" ..." if len(problems) > 5 else ""))
    check_class_sizes(labeled.labels, labeled.classes, usable, min_per_class, Path(data))
    return Prepared(labeled, fingerprint, preps, size, images, problems, checksums, usable, sizes)


# The clean job ------------------------------------------------------------------------------


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

    def job(self, fn, member: MemberConfig, name: str, **kwargs) -> Job:
        """A job `name` for `member` with what every member job takes, asking the executor for its resources."""
        common = dict(
            member=member, num_classes=len(self.info["classes"]), prep=self.prepared.preps[member.label],
            device=self.cfg.device, compile=self.cfg.compile, pretrained_path=self.pretrained.get(member.label),
        )
        return Job(fn, {**common, **kwargs}, desc=name, cpus=member.cpus, gpus=member.gpus)


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
    cfg, origin, pretrained = _configure(config, overrides, progress, data, RunDir(out))
    with run_lock(out, progress):
        ctx = _start_run(data, cfg, pretrained, RunDir(out), progress)
        warnings = _small_data_warnings(ctx)
        trained = reused = 0
        for number in range(cfg.passes):
            pass_ = _start_pass(ctx, number)
            todo = [(r, j) for r in range(ctx.plan.n_rounds) for j in judges(cfg.members)
                    if not ctx.run.logits_path(cfg, j, r, ctx.info, pass_.held_out).is_file()]
            reused += ctx.plan.n_rounds * len(judges(cfg.members)) - len(todo)
            trained += _train_and_judge(ctx, todo, pass_)
        if health.parse_checks(cfg.checks):
            with ctx.watch.stage("health"):
                _health_features(ctx)
        with ctx.watch.stage("score_write"):
            result = _rescore(ctx.run, watch=ctx.watch, progress=ctx.progress)
        warnings += _weak_committee_warnings(result.summary)
        for w in warnings:
            progress.info(f"warning: {w}")
        result.summary.update(
            profile=origin.profile, profile_reason=origin.reason, warnings=warnings,
            wall_time_s=round(time.time() - started, 1), members_trained=trained,
            device=str(resolve_device(cfg.device)), engines=engines_used(ctx.run, cfg, ctx.info),
            judgements_reused=reused, executor=cfg.executor, **ctx.watch.report(),
        )
        ctx.run.write_json("summary.json", result.summary)
    return result


def _configure(config, overrides: dict, progress: Progress, data, run: RunDir | None = None):
    """(config, where it came from, every pretrained member's weights file) for `clean` and `train`,
    before anything is written: a bad config or a member without weights stops the command here,
    unless `run` (an earlier run of `clean` in the same directory) recorded that member's weights:
    then its cached work may cover it (checked in _start_run). No config: the profile is chosen from
    the data and the device."""
    cfg, origin = resolve_config(config, overrides, data)
    progress.info(f"profile: {origin.profile} ({origin.reason})")
    recorded = (run.read_json("run.json") or {}).get("pretrained") if run is not None else None
    pretrained = resolve_weights(cfg, recorded)
    for label in missing_weights(pretrained):
        progress.info(f"weights: {label}'s are not found; going on with this run's cached work for it "
                      f"(weights {recorded[label]}, recorded by the earlier run)")
    return cfg, origin, pretrained


def _start_run(data, cfg: CleanConfig, pretrained: dict, run: RunDir, progress: Progress) -> RunContext:
    """Find, check and decode the data, plan the folds and record run.json (with what the
    pretrained weights are), config.yaml and manifest.csv."""
    watch = Stopwatch()
    prepared = _prepare(data, cfg, run, progress, min_per_class=cfg.folds, guard=True, watch=watch)
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
    executor = make_executor(cfg.executor, address=cfg.ray_address, retries=cfg.retries, progress=progress)
    return RunContext(run, cfg, info, plan, prepared, pretrained, executor, progress, watch)


def _small_data_warnings(ctx: RunContext) -> list[str]:
    per_class = np.bincount(ctx.labels[ctx.plan.train_idx(0)], minlength=len(ctx.info["classes"]))
    if per_class.min() >= 20:
        return []
    return [
        f"each committee trains on as few as {per_class.min()} images of a class "
        f"(scheme {ctx.cfg.scheme}, {ctx.cfg.folds} folds); on data this small prefer --scheme cv or fewer folds"
    ]


def _weak_committee_warnings(summary: dict) -> list[str]:
    if summary["committee_disagreement"] <= 0.5:
        return []
    return [
        "the committees disagree with more than half of the labels: they are likely too weak for this data "
        "(try --scheme cv, more epochs, a larger img_size or pretrained members) rather than the labels all wrong"
    ]


def _start_pass(ctx: RunContext, number: int) -> Pass:
    """Pass 1 trains on every image of its parts; pass 2 without those pass 1 sent to review."""
    if number == 0:
        return Pass(np.zeros(len(ctx.labels), dtype=bool))
    first = _judge(ctx.run, ctx.cfg, ctx.info, ctx.plan, ctx.labels, held_out=None, progress=ctx.progress)[0]
    # what pass 1 flagged, whatever part of it min_error_prob shows: a cut of the list leaves the training alone
    exclude = (first.rounds > 0) & (first.flag_count >= ctx.cfg.resolved_min_flags(ctx.plan.judgements_per_image))
    held_out = digest(np.flatnonzero(exclude).tolist())
    ctx.run.write_json("second_pass.json", {"held_out": held_out, "excluded": np.flatnonzero(exclude).tolist()})
    ctx.progress.info(f"pass 2: retraining every committee without the {int(exclude.sum())} images pass 1 flagged")
    return Pass(exclude, held_out)


def _train_and_judge(ctx: RunContext, todo: list[tuple[int, Judge]], pass_: Pass) -> int:
    """Every (round, judge) in `todo` trains (or loads) and judges its round's images; each result
    is written into the run directory as it arrives. Returns how many (round, member) trained."""
    frozen = [(r, j.member) for r, j in todo if j.member.frozen]
    tuned = [(r, j) for r, j in todo if not j.member.frozen]
    _fit_frozen_heads(ctx, frozen, pass_)
    trained = _train_members(ctx, tuned, pass_)
    _judge_members(ctx, tuned, pass_)
    return len(frozen) + trained


def _fit_frozen_heads(ctx: RunContext, frozen: list[tuple[int, MemberConfig]], pass_: Pass) -> None:
    """Frozen members: backbone features once per image, then per round a logistic head on the round's
    training images, applied to the images it judges (cheap: done in this process). A round's training
    features are held in memory (float32) when they fit the memory budget; otherwise the head is fitted
    from the feature file in pieces (the same head up to float rounding)."""
    cfg, C = ctx.cfg, len(ctx.info["classes"])
    budget = memory_budget(cfg.memory_gb)
    with ctx.watch.stage("features"):
        members = {m.label: m for _, m in frozen}
        features = {label: _frozen_features(ctx, m) for label, m in members.items()}  # (N, V, D) each, NpyFile
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


def _frozen_features(ctx: RunContext, member: MemberConfig) -> NpyFile:
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
        _save_array(parts_dir / f"{todo[i]}.npy", feats)
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


def _health_features(ctx: RunContext) -> None:
    """Compact features of every image for the health checks (RunDir.health_features_path), computed once per run."""
    cfg, path = ctx.cfg, ctx.run.health_features_path(ctx.cfg, ctx.info)
    if path.is_file():
        return
    member, images = health_member(cfg, ctx.info), ctx.prepared.images
    if member is None:
        feats = health.pixel_features(images)
    elif member.frozen:
        feats = _frozen_features(ctx, member)  # (N, V, D), already computed for the heads
    else:  # one unaugmented view through the pretrained backbone
        one_view = dataclasses.replace(cfg.tta, mode="deterministic", views=1)
        starts = list(range(0, len(images), cfg.shard_images))
        jobs = [
            ctx.job(predict_job, member, f"features {member.label}", weights=None, images=Rows(images, idx), index=idx,
                    tta=one_view, aug=cfg.augment, seed=cfg.seed, batch_size=cfg.batch_size_predict, features=True,
                    engine=cfg.engine, desc=f"health features {s}/{len(images)}")
            for s in starts for idx in [np.arange(s, min(len(images), s + cfg.shard_images))]
        ]
        parts = {i: feats for i, (feats, _) in ctx.executor.run(jobs)}
        feats = np.concatenate([parts[i] for i in range(len(starts))]) if starts else np.zeros((0, 1, 1), np.float16)
    compact = health.compact_features(feats)[0]
    lonely = health.compact_features(feats, centre=False)[0] if member is not None else compact
    buf = io.BytesIO()
    np.savez(buf, features=compact, outlier_features=lonely, source="pixels" if member is None else "backbone")
    write_bytes_atomic(path, buf.getvalue())


def _train_members(ctx: RunContext, tuned: list[tuple[int, Judge]], pass_: Pass) -> int:
    """Fine-tuned members whose weights are not cached yet train as jobs; returns how many (round, member)
    trained. A member with snapshots trains one job per learning-rate cycle: all trainings' next cycles
    run together, and each cycle's end is saved as it arrives (Cycles), so a killed run resumes there."""
    cfg, R = ctx.cfg, ctx.plan.n_rounds
    seen, plain, chains = set(), [], []
    for r, j in tuned:
        if (r, j.member.label) in seen:
            continue
        seen.add((r, j.member.label))
        if j.member.snapshots:
            cycles = ctx.run.cycles(cfg, j.member, r, ctx.info, pass_.held_out)
            if not cycles.done:
                chains.append((r, j.member, cycles))
        elif not ctx.run.weights_path(cfg, j, r, ctx.info, pass_.held_out).is_file():
            plain.append((r, j.member))
    images = Shared(ctx.prepared.images)

    def common(r, m):
        return dict(images=images, labels=ctx.labels, idx=ctx.train_idx(r, pass_), aug=cfg.augment,
                    seed=member_seed(cfg.seed, r, m.label))

    def next_cycles() -> tuple[list[Job], list]:
        jobs, owners = [], []
        for r, m, cycles in chains:
            if not cycles.done:
                cycle, state = cycles.next()
                jobs.append(ctx.job(
                    train_cycle_job, m, f"train r{r + 1}{pass_.label} {m.label} c{cycle}", **common(r, m), cycle=cycle,
                    state=state and Later(state), desc=f"round {r + 1}/{R}{pass_.label} train {m.label} cycle {cycle}/{m.cycles}",
                ))
                owners.append((r, m, cycles, cycle))
        return jobs, owners

    jobs, owners = next_cycles()
    jobs += [ctx.job(train_job, m, f"train r{r + 1}{pass_.label} {m.label}", **common(r, m),
                     desc=f"round {r + 1}/{R}{pass_.label} train {m.label}", metadata={"round": str(r)})
             for r, m in plain]
    owners += plain
    with ctx.watch.stage("train"):
        while jobs:
            for i, result in ctx.executor.run(jobs):
                if len(owners[i]) == 2:  # a plain member: its final weights
                    r, m = owners[i]
                    write_bytes_atomic(ctx.run.weights_path(cfg, Judge(m), r, ctx.info, pass_.held_out), result)
                    epochs = m.epochs
                else:  # one cycle of a snapshot member
                    r, m, cycles, cycle = owners[i]
                    cycles.record(cycle, result)
                    epochs = m.restart_epochs
                ctx.watch.count("member_epochs", epochs)
                ctx.watch.count("train_image_epochs", len(ctx.train_idx(r, pass_)) * epochs)
            jobs, owners = next_cycles()
    return len(plain) + len(chains)


def _judge_members(ctx: RunContext, tuned: list[tuple[int, Judge]], pass_: Pass) -> None:
    """Each trained (round, judge) judges its round's images in shards of shard_images; a judge's
    logits (n_judged, V, C) are saved once all its shards are back."""
    cfg, R, images = ctx.cfg, ctx.plan.n_rounds, ctx.prepared.images
    jobs, owner, parts = [], [], {}
    for k, (r, j) in enumerate(tuned):
        weights = Shared(ctx.run.weights_path(cfg, j, r, ctx.info, pass_.held_out).read_bytes())
        judge = ctx.plan.judge_idx(r)
        starts = list(range(0, len(judge), cfg.shard_images)) or [0]
        parts[k] = [None] * len(starts)
        for i, s in enumerate(starts):
            shard = judge[s : s + cfg.shard_images]
            jobs.append(ctx.job(
                predict_job, j.member, f"judge r{r + 1}{pass_.label} {j.label}", weights=weights, images=Rows(images, shard),
                index=shard, tta=cfg.tta, aug=cfg.augment, seed=cfg.seed, batch_size=cfg.batch_size_predict,
                desc=f"round {r + 1}/{R}{pass_.label} judge {j.label}",
            ))
            owner.append((k, i))
    with ctx.watch.stage("predict"):
        for i, (logits, _) in ctx.executor.run(jobs):
            k, n = owner[i]
            parts[k][n] = logits
            ctx.watch.count("predict_image_views", logits.shape[0] * logits.shape[1])
            if all(p is not None for p in parts[k]):
                r, j = tuned[k]
                _save_array(ctx.run.logits_path(cfg, j, r, ctx.info, pass_.held_out), np.concatenate(parts.pop(k)))


# Scoring from cached logits -----------------------------------------------------------------


def round_outputs(
    run: RunDir, cfg: CleanConfig, info: dict, plan: FoldPlan, held_out: str | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per round: (judged indices (n,), list of every judge's cached TTA logits (n, V, C), memory-mapped)."""
    out = []
    for r in range(plan.n_rounds):
        outputs = []
        for judge in judges(cfg.members):
            path = run.logits_path(cfg, judge, r, info, held_out)
            if not path.is_file():
                raise DataCleanerError(
                    f"{run.path}: logits of round {r + 1}{' (pass 2)' if held_out else ''} member {judge.label} "
                    "are missing; re-run `clean` to finish the run"
                )
            outputs.append(NpyFile(path))  # (n, V, C), read in pieces
        out.append((plan.judge_idx(r), outputs))
    return out


def judge_outputs(outputs: list[tuple[np.ndarray, np.ndarray]], labels: np.ndarray, cfg: CleanConfig, judgements: int,
                  mean_probs: np.ndarray | None = None):
    """(Scores, fitted parameters, (N, M) each member's majority label or -1) of every image from
    per-round outputs (see round_outputs), with the config's fusion, calibration, weights and flag
    rule; `judgements` per image sets the default T. One round's fused probabilities are held at a
    time; `mean_probs` (N, C) float32 zeros, if given, receives their average (scoring.score_rounds)."""
    voices = judges(cfg.members)
    votes = np.full((len(outputs), len(labels), len(voices)), -1, dtype=np.int32)  # (R, N, M)
    fitted: dict = {"temperatures": [], "weights": []}
    rounds = fused_rounds(outputs, labels, np.array([j.weight for j in voices]), mode=cfg.fusion,
                          calibrate=cfg.calibrate, fit=cfg.fit_weights, votes=votes, fitted=fitted)
    T = cfg.resolved_min_flags(judgements)
    scores = score_rounds(rounds, labels, tau=cfg.tau, min_flags=T, rule=cfg.flag_rule, quality=cfg.label_quality,
                          min_error_prob=cfg.min_error_prob, mean_probs=mean_probs)
    return scores, fitted, majority_vote(votes)


def _judge(run: RunDir, cfg: CleanConfig, info: dict, plan: FoldPlan, labels: np.ndarray, *, held_out: str | None,
           progress: Progress | None = None):
    """Scores of every image from the cached logits of one pass. The images' averaged probabilities
    (N x C) go to a file (deleted as soon as it is open) when they exceed half the memory budget."""
    N, C, mean_probs = len(labels), len(info["classes"]), None
    budget = memory_budget(cfg.memory_gb)
    if N * C * 4 > budget / 2:
        mean_probs = scratch_array(run.file("cache"), "mean-probs", (N, C))
        if progress is not None:
            progress.info(f"memory: the images' class probabilities ({N * C * 4 / GiB:.1f} GB) exceed half the memory "
                          f"budget ({budget / GiB:.1f} GB, memory_gb): averaging them on disk")
    return judge_outputs(round_outputs(run, cfg, info, plan, held_out), labels, cfg, plan.judgements_per_image, mean_probs)


@dataclass
class FinishedRun:
    """A run directory's record of a finished `clean`: what re-scoring reads."""

    cfg: CleanConfig  # its config, with any changes asked for
    info: dict  # run.json
    manifest: pd.DataFrame  # path, label, part, reason, checksum
    plan: FoldPlan
    held_out: str | None  # pass 2's key (passes: 2), else None

    @property
    def labels(self) -> np.ndarray:
        return self.manifest["label"].to_numpy(dtype=np.int64)


# What a re-score keeps from the summary `clean` wrote: facts about the run, not about the scores.
RUN_FACTS = ("profile", "profile_reason", "wall_time_s", "members_trained", "device", "engines", "warnings",
             "judgements_reused", "executor", "timings_s", "work")


def rescore(
    run_dir: str | Path,
    *,
    tau: float | None = None,
    min_flags: int | None = None,
    fusion: str | None = None,
    weights: dict[str, float] | None = None,
    flag_rule: str | None = None,
    label_quality: str | None = None,
    calibrate: bool | None = None,
    fit_weights: bool | None = None,
    checks: str | None = None,
    min_error_prob: float | str | None = None,
    progress: Progress | None = None,
) -> CleanResult:
    """Re-score a finished run from its cached logits (no training), optionally with new tau, T, fusion
    mode, member weights ({name: weight}), flag rule, label-quality score, calibration, fitted weights
    or data-health `checks` (re-applied from the cached pixel facts and features: nothing is decoded
    again), or `min_error_prob` (a number, or 'auto' for the automatic list length), and rewrite
    scores.csv, review.csv, summary.json and config.yaml."""
    changes = dict(tau=tau, min_flags=min_flags, fusion=fusion, flag_rule=flag_rule, label_quality=label_quality,
                   calibrate=calibrate, fit_weights=fit_weights, checks=checks,
                   min_error_prob=min_error_prob)
    with run_lock(run_dir, progress):
        return _rescore(RunDir(run_dir), changes, weights, progress=progress)


def _rescore(run: RunDir, changes: dict | None = None, weights: dict[str, float] | None = None,
             watch: Stopwatch | None = None, progress: Progress | None = None) -> CleanResult:
    done = _load_finished_run(run, changes or {}, weights or {})
    scores, fitted, votes = _judge(run, done.cfg, done.info, done.plan, done.labels, held_out=done.held_out, progress=progress)
    problems = {i: why for i, why in enumerate(done.manifest["reason"]) if why}
    member_votes = {j.label: votes[:, k] for k, j in enumerate(judges(done.cfg.members))}
    with (watch or Stopwatch()).stage("health"):
        verdict, health_notes, props = _health(run, done, scores)
    table = score_table(done.manifest["path"].tolist(), done.info["classes"], scores, problems, member_votes, verdict)
    table.insert(len(table.columns) - 1, "checksum", done.manifest["checksum"].to_numpy())
    write_csv_atomic(table, run.file("scores.csv"))
    if verdict is not None:
        write_csv_atomic(health_table(table, verdict, props), run.file("health.csv"))
    else:
        run.file("health.csv").unlink(missing_ok=True)
    with list_lock(run.file("review.csv")):  # a reviewer's decision saved meanwhile is kept too
        review, kept = keep_decisions(review_table(table), run.file("review.csv"))
        write_csv_atomic(review, run.file("review.csv"))
    write_text_atomic(run.file("config.yaml"), dump_config(done.cfg))
    previous = run.read_json("summary.json") or {}
    summary = {**{k: previous[k] for k in RUN_FACTS if k in previous}, **_score_summary(run, done, scores, table, fitted, review),
               **_kept_summary(kept), **({"health_notes": health_notes} if health_notes else {})}
    run.write_json("summary.json", summary)
    return CleanResult(run_dir=run.path, scores=table, review=review, summary=summary)


def _health(run: RunDir, done: FinishedRun, scores) -> tuple[health.Health | None, list[str], dict[str, np.ndarray]]:
    """The data-health verdict from the run's cached pixel facts and features (None when `checks` is none),
    notes on checks that could not run (a run directory from before they existed), and the property scores."""
    checks = health.parse_checks(done.cfg.checks)
    if not checks:
        return None, [], {}
    notes = []
    info = done.info
    cache = run.health_facts_path(info["cache_size"], info["fingerprint"])
    facts = {}
    if cache.is_file():
        with np.load(cache) as saved:
            facts = dict(saved)
    else:
        notes.append("duplicate and image-property checks skipped: this run's decoded cache predates them (re-run `clean`)")
    features = lonely = None
    source = "backbone"
    path = run.health_features_path(done.cfg, info)
    if path.is_file():
        with np.load(path) as saved:
            features, lonely, source = saved["features"], saved["outlier_features"], str(saved["source"])
    elif {"outlier", "near_duplicate", "conflicting_labels"} & set(checks):
        notes.append("feature-based near duplicates and outliers skipped: no health features in this run (re-run `clean`)")
    props = {k[len("prop_"):]: v for k, v in facts.items() if k.startswith("prop_")} or None
    verdict = health.assess(
        done.manifest["path"].tolist(), done.labels, info["classes"], (done.manifest["reason"] == "").to_numpy(), checks,
        props=props, hashes=facts.get("phash"), digests=facts.get("digest"), features=features, outlier_features=lonely,
        suggested=scores.suggested_label, suggested_prob=scores.suggested_prob, t=health.thresholds(source),
    )
    return verdict, notes + verdict.notes, props or {}


def group_sizes(group: pd.Series) -> dict:
    """summary.json's record of the duplicate groups: how many, the largest, and how many of each size."""
    sizes = group[group != ""].value_counts()
    counts = sizes.value_counts().sort_index()
    return {"groups": int(len(sizes)), "largest": int(sizes.max()) if len(sizes) else 0,
            "sizes": {str(k): int(n) for k, n in counts.items()}}


def health_table(table: pd.DataFrame, verdict: health.Health, props: dict[str, np.ndarray]) -> pd.DataFrame:
    """health.csv: every image with a data-health finding, whether it asks for a decision (a row of review.csv)
    or is reported only (image properties): its health issues, detail, duplicate group and the property
    scores behind them (health.py's module docstring), most important issue first."""
    has = np.array([bool(v) for v in verdict.issues])
    out = pd.DataFrame({
        "path": table["path"], "given_label": table["given_label"],
        "issue": [";".join(v) for v in verdict.issues],
        "in_review": primary_issue(table["issue"]).isin((*LABEL_ISSUES, *health.DECISION_ISSUES)).to_numpy(),
        "detail": verdict.detail, "duplicate_group": table["duplicate_group"],
    })
    names = {"p99": "luminance_p99", "p5": "luminance_p5", "entropy": "entropy", "sharpness": "sharpness",
             "colour": "colour", "aspect": "aspect_ratio", "size": "relative_size"}
    for key, column in names.items():
        if key in props and len(props[key]) == len(out):
            out[column] = np.round(np.asarray(props[key], dtype=np.float64), 4)
    if verdict.outlier_score is not None:
        out["outlier_score"] = np.round(verdict.outlier_score.astype(np.float64), 3)
    rank = {name: k for k, name in enumerate(health.ISSUES)}
    out = out[has].assign(_rank=[rank[v[0]] for v in verdict.issues if v])
    return out.sort_values(["_rank", "duplicate_group", "path"], kind="stable").drop(columns="_rank").reset_index(drop=True)


def _kept_summary(kept) -> dict:
    """summary.json's record of review decisions carried over from the list a re-score replaced."""
    out = {"decisions_kept": kept.kept} if kept.kept else {}
    if kept.saved_in:
        out["decisions_saved_in"] = str(kept.saved_in)
    return out


def _load_finished_run(run: RunDir, changes: dict, weights: dict[str, float]) -> FinishedRun:
    """The run's config with `changes` (config keys) and member `weights` applied, its manifest and plan."""
    info = run.read_json("run.json")
    if info is None or not run.file("manifest.csv").is_file():
        raise DataCleanerError(f"{run.path} is not a finished run directory (no run.json / manifest.csv); run `clean` first")
    cfg = load_config(run.file("config.yaml"))
    for label, w in weights.items():
        set_judge_weight(cfg.members, label, w)
    cfg = load_config(cfg, changes)
    manifest = pd.read_csv(run.file("manifest.csv"), dtype={"path": str, "reason": str, "checksum": str}, keep_default_na=False)
    plan = FoldPlan(scheme=cfg.scheme, part=manifest["part"].to_numpy(dtype=np.int64))
    held_out = None
    if cfg.passes == 2:
        second = run.read_json("second_pass.json")
        if second is None:
            raise DataCleanerError(f"{run.path}: pass 2 has not run (no second_pass.json); re-run `clean` with passes: 2")
        held_out = second["held_out"]
    return FinishedRun(cfg, info, manifest, plan, held_out)


def _expected_summary(scores, in_review: pd.Series, first: int = 500) -> dict:
    """How many wrong labels error_prob expects: in the dataset, among the label rows of review.csv,
    and among its first `first` rows (the most probably wrong)."""
    ep = np.sort(scores.error_prob[in_review.to_numpy()])[::-1]
    k = min(first, len(ep))
    return {"expected_wrong_labels": round(scores.expected_wrong(), 1), "expected_wrong_in_review": round(float(ep.sum()), 1),
            "expected_wrong_in_first": {"rows": k, "wrong": round(float(ep[:k].sum()), 1)}}


def _score_summary(run: RunDir, done: FinishedRun, scores, table: pd.DataFrame, fitted: dict, review: pd.DataFrame) -> dict:
    cfg, classes, N = done.cfg, done.info["classes"], len(table)
    unreadable = int((table["issue"] == "unreadable").sum())
    in_review = primary_issue(table["issue"]).isin(["mislabel", "low_confidence"])
    names = table["issue"][table["issue"] != ""].str.split(";").explode().value_counts()
    issues = {name: int(names.get(name, 0)) for name in (*LABEL_ISSUES, *health.ISSUES, "unreadable")}
    rows = primary_issue(review["issue"]).value_counts()
    per_class = table[in_review]["given_label"].value_counts().reindex(classes, fill_value=0)
    return {
        "images": N, "readable": N - unreadable, "unreadable": unreadable, "classes": len(classes),
        "scheme": cfg.scheme, "folds": cfg.folds, "judgements_per_image": done.plan.judgements_per_image,
        "tau": cfg.tau, "min_flags": cfg.resolved_min_flags(done.plan.judgements_per_image), "fusion": cfg.fusion,
        "members": {j.label: round(j.weight, 6) for j in judges(cfg.members)}, "flag_rule": cfg.flag_rule,
        "label_quality": cfg.label_quality, "calibrate": cfg.calibrate, "fit_weights": cfg.fit_weights,
        "fitted": fitted, "flagged": int(in_review.sum()), "issues": issues,
        "checks": list(health.parse_checks(cfg.checks)), "in_review": len(review),
        "review_rows": {name: int(n) for name, n in rows.items()},
        "reported_only": {name: issues[name] for name in health.REPORT_ISSUES if issues[name]},
        "duplicate_groups": group_sizes(table["duplicate_group"]),
        "flagged_per_class": {c: int(n) for c, n in per_class.items()},
        "estimated_noise_rate": round(scores.estimated_noise_rate(), 4),
        "committee_disagreement": round(scores.disagreement_rate(), 4),
        "min_error_prob": cfg.min_error_prob, "list_length": scores.list_length, "error_model": scores.noise_model,
        **_expected_summary(scores, in_review),
        "passes": cfg.passes, "scores_csv": str(run.file("scores.csv")), "review_csv": str(run.file("review.csv")),
    }


# The committee bundle for `select` ----------------------------------------------------------


def train_committee(
    data: str | Path, out: str | Path, config: str | Path | CleanConfig | None = None, *,
    progress: Progress | None = None, **overrides,
) -> Committee:
    """Train the configured members on the whole labeled dataset and save a committee bundle in `out`
    (config as for `clean`). Re-running continues: members whose weights are already in `out` are not
    retrained. Returns the fitted Committee."""
    progress = progress or Progress()
    started = time.time()
    cfg, origin, pretrained = _configure(config, overrides, progress, data)
    with run_lock(out, progress):
        run = RunDir(out)
        prepared = _prepare(data, cfg, run, progress, min_per_class=2, guard=False)
        labeled = prepared.labeled
        keep = np.flatnonzero(prepared.usable)
        committee = Committee(cfg).fit(
            prepared.images, labeled.labels, labeled.classes, idx=keep, out=run.path / "cache",
            data_key=prepared.fingerprint, pretrained=pretrained, progress=progress,
        )
        committee.save(run.path)
        sizes = None if prepared.sizes is None else np.asarray(prepared.sizes, dtype=np.int64).reshape(-1, 2)
        committee.record_labeled(run.path, prepared.images, labeled.paths, labeled.labels, sizes, keep)
        run.write_json("summary.json", {
            "images": len(labeled.paths), "trained_on": int(len(keep)), "unreadable": len(prepared.problems),
            "classes": labeled.classes, "members": [j.label for j in judges(cfg.members)], "profile": origin.profile,
            "profile_reason": origin.reason, "wall_time_s": round(time.time() - started, 1),
            "engines": {j.label: committee.__dict__.get("engines_", {}).get(j.member.label, "torch") for j in judges(cfg.members)},
        })
    return committee
