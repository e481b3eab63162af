"""The `select` job: score an unlabeled pool with a committee and the production model, skip what
production already handles, rank the rest by disagreement, write selection.csv.  [I/O]

Columns of selection.csv (candidates most worth labeling first, then unreadable files):
path, production_label, production_score, suggested_label, suggested_prob, disagreement,
vote_<member> (each member's label), reason (disagree | low_confidence | already_labeled | duplicate | unreadable),
rank (1 = first), in_budget (the top B), detail (why a file is unreadable; for already_labeled the labeled
file it repeats and its label; for a duplicate the pool file it repeats), checksum (sha256 prefix of the file, checked by
`apply`), reviewed_label (empty, for the annotator).

The run directory also holds cache/ (the decoded pool) and pool/ (the committee's
judgement of each shard of the pool, reused by a re-run).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import health
from .arrays import GiB, memory_budget, scratch_array
from .committee import LABELED, Committee
from .dataset import LabeledImages, find_pool_images
from .config import ENGINES
from .disagreement import DISAGREEMENT_METHODS, disagreement, k_center_greedy, skip_mask
from .errors import DataCleanerError
from .executors import Job, Rows, Shared, make_executor
from .jobs import committee_job
from .keys import digest
from .lock import run_lock
from .production import ProductionPredictions, from_csv, from_timm, from_model_file
from .progress import Progress
from .pipeline.prepare import data_fingerprint, decoded_cache, health_cache
from .pipeline.rundir import RunDir
from .runtime import configure
from .tables import keep_decisions, list_lock, write_bytes_atomic, write_csv_atomic


@dataclass
class SelectOptions:
    """How `select` skips, ranks and judges (the CLI's flags)."""

    budget: int | None = None  # B: the top B candidates are marked in_budget; None = all
    method: str = "contradiction"  # ranking score (scoring.DISAGREEMENT_METHODS)
    min_committee_prob: float = 0.8  # skip rule: same label, committee at least this sure ...
    min_production_score: float = 0.8  # ... and production at least this sure
    diverse: bool = False  # fill the budget by greedy k-center on committee features
    diverse_pool: int = 5  # ... among the top diverse_pool x B candidates
    device: str = "auto"
    engine: str = "auto"  # frozen members' backbones: auto (ONNX Runtime on the CPU) | torch | onnxruntime (engines.py)
    executor: str = "local"  # local | ray
    ray_address: str | None = None
    shard_images: int = 4096  # pool images per prediction job (and per chunk held in memory)
    memory_gb: float | None = None  # what the tables and decoded pool may hold in memory; None = a quarter of the machine's

    def check(self) -> "SelectOptions":
        if self.method not in DISAGREEMENT_METHODS:
            raise DataCleanerError(f"--method must be one of {', '.join(DISAGREEMENT_METHODS)}, got '{self.method}'")
        if self.shard_images < 1:
            raise DataCleanerError(f"--shard-images must be >= 1, got {self.shard_images}")
        if self.engine not in ENGINES:
            raise DataCleanerError(f"--engine must be one of {', '.join(ENGINES)}, got '{self.engine}'")
        if self.budget is not None and self.budget < 0:
            raise DataCleanerError(f"--budget must be >= 0, got {self.budget}")
        return self


@dataclass
class Production:
    """The production model: a predictions CSV, a timm weights file (with `arch`), a torch.export
    program (.pt2) or TorchScript."""

    path: str | Path
    arch: str | None = None  # timm architecture of a weights file
    classes: list[str] | None = None  # its output order; None = the committee's
    size: int | None = None  # its input size (default: a .pt2 program's own, else 224)


@dataclass
class Pool:
    """A pool of unlabeled images, found and decoded once into the run directory's cache."""

    root: Path
    paths: list[str]  # (N,) relative to root
    images: np.ndarray  # (N, S, S, 3) uint8, in RAM or memory-mapped
    problems: dict[int, str]  # index -> why the file is unreadable
    checksums: list[str]  # (N,)
    fingerprint: str
    sizes: list | None = None  # (N,) each file's own [width, height]

    @functools.cached_property
    def readable(self) -> np.ndarray:
        """(n,) indices of the readable images: the ones judged."""
        return np.array([i for i in range(len(self.paths)) if i not in self.problems], dtype=np.int64)


@dataclass
class SelectResult:
    run_dir: Path
    selection: pd.DataFrame  # candidates ranked, then duplicates and unreadable files
    scores: pd.DataFrame  # every readable pool image, skipped ones included
    summary: dict


def select(
    pool: str | Path, committee: str | Path, production: str | Path | Production, out: str | Path,
    options: SelectOptions | None = None, *, progress: Progress | None = None, **option_values,
) -> SelectResult:
    """Score `pool` (a folder or a CSV of paths) with the committee bundle `committee` and the
    production model; write selection.csv, pool_scores.csv and summary.json into `out`.

    Options (a SelectOptions, or its fields as keywords: budget=100, method='js', ...). The
    committee judges the pool in shards (jobs for the executor), each saved as it arrives, so an
    interrupted run resumes. Holds the run directory's lock throughout."""
    progress = progress or Progress()
    started = time.time()
    opts = dataclasses.replace(options or SelectOptions(), **option_values).check()
    production = production if isinstance(production, Production) else Production(production)
    with run_lock(out, progress):
        bundle = Committee.load(committee, device=opts.device, engine=opts.engine)
        configure(bundle.config.threads)
        run = RunDir(out)
        executor = make_executor(opts.executor, address=opts.ray_address, progress=progress)
        budget = memory_budget(opts.memory_gb)
        found = _decode_pool(pool, bundle, run, progress, budget)
        labeled = _labeled_record(committee)
        fused, member_probs, features = _judge_pool(run, bundle, committee, found, executor, opts.shard_images, labeled,
                                                    budget=budget, progress=progress)
        prod = load_production(production, found, bundle, device=opts.device)
        table = _pool_table(found, bundle, fused, member_probs, prod, opts)
        notes = _mark_known_pictures(table, found, run, features, labeled, bundle.classes_, progress)
        write_csv_atomic(table, run.file("pool_scores.csv"))
        with list_lock(run.file("selection.csv")):  # a reviewer's decision saved meanwhile is kept too
            selection, kept = keep_decisions(_rank(table, found, bundle, opts), run.file("selection.csv"))
            write_csv_atomic(selection, run.file("selection.csv"))
        summary = _summary(run, found, table, selection, opts, committee, bundle, time.time() - started)
        summary.update({"notes": notes} if notes else {})
        summary.update({"decisions_kept": kept.kept} if kept.kept else {})
        summary.update({"decisions_saved_in": str(kept.saved_in)} if kept.saved_in else {})
        run.write_json("summary.json", summary)
    return SelectResult(run_dir=run.path, selection=selection, scores=table, summary=summary)


def _decode_pool(pool: str | Path, committee: Committee, run: RunDir, progress: Progress, budget: int | None = None) -> Pool:
    root, paths = find_pool_images(pool)
    run.path.mkdir(parents=True, exist_ok=True)
    listing = LabeledImages(root=root, paths=paths, labels=np.zeros(len(paths), dtype=np.int64), classes=[], source="pool")
    fingerprint = data_fingerprint(listing)
    in_memory = committee.config.cache_memory_gb if budget is None else min(committee.config.cache_memory_gb, budget / 2 / GiB)
    images, problems, checksums, sizes = decoded_cache(run, listing, committee.cache_size_, fingerprint, progress, in_memory)
    return Pool(root, paths, images, problems, checksums, fingerprint, sizes)


def load_production(production: Production, pool: Pool, committee: Committee, *, device: str = "auto") -> ProductionPredictions:
    """The production model's predictions for the pool's readable images, in the committee's classes."""
    path = Path(production.path)
    if not path.is_file():
        raise DataCleanerError(f"production model {path} does not exist")
    idx = pool.readable
    names = list(production.classes) if production.classes else list(committee.classes_)
    if path.suffix.lower() == ".csv":
        return from_csv(path, [pool.paths[i] for i in idx], pool.root, committee.classes_)
    if production.arch:
        return from_timm(production.arch, path, pool.images, idx, names, committee.classes_, size=production.size, device=device)
    return from_model_file(path, pool.images, idx, names, committee.classes_, size=production.size, device=device)


PIECE = 65536  # pool images per step when scoring the pool table


def _pool_table(pool: Pool, committee: Committee, fused: np.ndarray, member_probs: np.ndarray,
                prod: ProductionPredictions, opts: SelectOptions) -> pd.DataFrame:
    """Every readable pool image (pool_scores.csv): both opinions, the disagreement score, the skip
    rule's verdict in `reason`, and for an exact copy of an earlier file, which one in `detail`.
    fused: (n, C); member_probs: (n, M, C)."""
    if opts.method == "js" and prod.probs is None:
        raise DataCleanerError("--method js needs production probabilities: per-class columns in the CSV, or a model")
    idx = pool.readable
    n, M = len(idx), member_probs.shape[1]
    skipped, score = np.zeros(n, dtype=bool), np.zeros(n)
    suggested, suggested_prob, votes = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros((n, M), dtype=np.int64)
    for s in range(0, n, PIECE):  # the (n, C) and (n, M, C) probabilities a piece at a time, as float64
        rows = slice(s, s + PIECE)
        f, mp = np.asarray(fused[rows], dtype=np.float64), np.asarray(member_probs[rows], dtype=np.float64)
        skipped[rows] = skip_mask(f, prod.label[rows], prod.score[rows], min_committee_prob=opts.min_committee_prob,
                                  min_production_score=opts.min_production_score)
        score[rows] = disagreement(f, prod.label[rows], method=opts.method,
                                   production_probs=None if prod.probs is None else prod.probs[rows], member_probs=mp)
        suggested[rows], suggested_prob[rows], votes[rows] = f.argmax(axis=1), f.max(axis=1), mp.argmax(axis=2)
    classes = np.array(committee.classes_, dtype=object)
    table = pd.DataFrame({
        "path": [pool.paths[i] for i in idx],
        "production_label": classes[prod.label],
        "production_score": np.round(prod.score, 5),
        "suggested_label": classes[suggested],
        "suggested_prob": np.round(suggested_prob, 5),
        "disagreement": np.round(score, 5),
    })
    for m, judge in enumerate(committee.judges_):
        table[f"vote_{judge.label}"] = classes[votes[:, m]]
    table["reason"] = np.where(skipped, "skip", np.where(suggested != prod.label, "disagree", "low_confidence"))
    checksums = np.array([pool.checksums[i] for i in idx], dtype=object)
    table["checksum"] = checksums
    _, first, inverse = np.unique(checksums.astype(str), return_index=True, return_inverse=True)
    first = first[inverse]  # (n,) the first image with the same checksum
    duplicate = first != np.arange(len(idx))
    detail = np.full(len(idx), "", dtype=object)
    paths = table["path"].to_numpy(dtype=object)
    detail[duplicate] = ["same file as " + p for p in paths[first[duplicate]]]
    table["detail"] = detail
    return table


def _rank(table: pd.DataFrame, pool: Pool, committee: Committee, opts: SelectOptions) -> pd.DataFrame:
    """selection.csv: the candidates (not skipped, not a copy), most disagreement first (with
    `diverse`, the budget filled by k-center), ranked and marked in_budget; then copies, then
    unreadable files."""
    leaked = (table["reason"] == "already_labeled").to_numpy()
    duplicate = (table["detail"] != "").to_numpy() & ~leaked
    skipped = (table["reason"] == "skip").to_numpy()
    candidates = table[~skipped & ~duplicate & ~leaked].sort_values(["disagreement", "path"], ascending=[False, True], kind="stable")
    B = opts.budget if opts.budget is not None else len(candidates)
    if opts.diverse and len(candidates) > 1 and B > 0:
        top = candidates.head(opts.diverse_pool * B)
        feats = committee.features(np.asarray(pool.images[pool.readable[top.index.to_numpy()]]))  # (n_top, D)
        picked = top.index[k_center_greedy(feats, B)]
        candidates = pd.concat([candidates.loc[picked], candidates.drop(index=picked)])
    candidates = candidates.reset_index(drop=True)
    candidates["rank"] = np.arange(1, len(candidates) + 1)
    candidates["in_budget"] = candidates["rank"] <= B
    copies = table[duplicate & ~skipped].assign(reason="duplicate")
    known = table[leaked]
    unreadable = pd.DataFrame({
        "path": [pool.paths[i] for i in pool.problems], "reason": "unreadable", "detail": list(pool.problems.values()),
        "checksum": [pool.checksums[i] for i in pool.problems],
    })
    selection = pd.concat([candidates, known, copies, unreadable], ignore_index=True)
    selection["detail"] = selection["detail"].fillna("")
    selection["rank"] = selection["rank"].astype("Int64")  # empty for copies and unreadable files
    selection["in_budget"] = selection["in_budget"].astype("boolean")
    selection["reviewed_label"] = ""
    return selection


def _summary(run: RunDir, pool: Pool, table: pd.DataFrame, selection: pd.DataFrame, opts: SelectOptions,
             committee_dir, committee: Committee, seconds: float) -> dict:
    ranked = selection[selection["rank"].notna()]
    return {
        "pool": len(pool.paths), "pool_root": str(pool.root.resolve()), "unreadable": len(pool.problems),
        "skipped": int((table["reason"] == "skip").sum()),
        "skip_rule": f"same label and committee prob >= {opts.min_committee_prob} and production score >= {opts.min_production_score}",
        "candidates": len(ranked), "disagree": int((ranked["reason"] == "disagree").sum()),
        "low_confidence": int((ranked["reason"] == "low_confidence").sum()),
        "duplicates": int(((table["detail"] != "") & (table["reason"] != "already_labeled")).sum()),
        "already_labeled": int((table["reason"] == "already_labeled").sum()), "diverse": opts.diverse,
        "budget": opts.budget, "method": opts.method, "executor": opts.executor,
        "engines": dict(getattr(committee, "engines_", {})),
        "committee": str(Path(committee_dir).resolve()), "classes": committee.classes_,
        "wall_time_s": round(seconds, 1), "selection_csv": str(run.file("selection.csv")),
    }


def _committee_key(committee_dir: str | Path) -> str:
    """What a bundle's judgements depend on: its description and its weight files."""
    bundle = Path(committee_dir)
    files = sorted(bundle.glob("members/*.safetensors"))
    return digest([(bundle / "committee.json").read_text(), [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]])


def _judge_pool(run: RunDir, committee: Committee, committee_dir, pool: Pool, executor,
                shard_images: int, labeled: dict | None = None, *, budget: int | None = None,
                progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Fused probabilities (n, C), member probabilities (n, M, C) and, when the bundle records its
    labeled images, compact features (n, d) of the pool's readable images, judged in shards (jobs
    for `executor`), each shard saved under pool/ as it arrives and reused on a re-run. When the
    probabilities exceed half the memory `budget` they are kept in files on disk (deleted as soon
    as they are open)."""
    idx = pool.readable
    mean = labeled["mean"] if labeled is not None else None
    key = digest([_committee_key(committee_dir), pool.fingerprint, committee.config.device, shard_images, mean is not None])
    n, M, C = len(idx), len(committee.members_), len(committee.classes_)
    if budget is not None and n * (M + 1) * C * 4 > budget / 2:
        if progress is not None:
            progress.info(f"memory: the pool's class probabilities ({n * (M + 1) * C * 4 / GiB:.1f} GB) exceed half the "
                          f"memory budget ({budget / GiB:.1f} GB, --memory-gb): keeping them on disk")
        fused, member_probs = scratch_array(run.file("pool"), "fused", (n, C)), scratch_array(run.file("pool"), "members", (n, M, C))
    else:
        fused = np.zeros((n, C), dtype=np.float32)
        member_probs = np.zeros((n, M, C), dtype=np.float32)
    features = np.zeros((n, labeled["features"].shape[1]), dtype=np.float16) if mean is not None else None
    starts = list(range(0, n, shard_images))
    shard_file = {s: run.file("pool", f"shard-{key}-{s}.npz") for s in starts}
    todo = []
    for s in starts:
        if shard_file[s].is_file():
            with np.load(shard_file[s]) as saved:
                fused[s : s + shard_images], member_probs[s : s + shard_images] = saved["fused"], saved["member_probs"]
                if features is not None:
                    features[s : s + shard_images] = saved["features"]
        else:
            todo.append(s)
    shared = Shared(committee)
    cpus = max(m.cpus for m in committee.config.members)
    gpus = max(m.gpus for m in committee.config.members)
    jobs = [
        Job(committee_job, dict(committee=shared, images=Rows(pool.images, idx[s : s + shard_images]),
                                index=np.arange(s, min(n, s + shard_images)), desc=f"judge pool {s}/{n}", health_mean=mean),
            desc="judge pool", cpus=cpus, gpus=gpus)
        for s in todo
    ]
    for i, result in executor.run(jobs):
        s = todo[i]
        committee.__dict__.setdefault("engines_", {}).update(result.pop("engines", {}))
        buf = io.BytesIO()
        np.savez(buf, **result)
        write_bytes_atomic(shard_file[s], buf.getvalue())
        fused[s : s + shard_images], member_probs[s : s + shard_images] = result["fused"], result["member_probs"]
        if features is not None:
            features[s : s + shard_images] = result["features"]
    return fused, member_probs, features


def _labeled_record(committee_dir) -> dict | None:
    """The bundle's record of its labeled images (Committee.record_labeled), or None for a bundle without one."""
    path = Path(committee_dir) / LABELED
    if not path.is_file():
        return None
    with np.load(path) as saved:
        return dict(saved)


def _mark_known_pictures(table: pd.DataFrame, pool: Pool, run: RunDir, features: np.ndarray | None, labeled: dict | None,
                         classes: list[str], progress: Progress) -> list[str]:
    """In `table` (pool_scores, one row per readable image): reason `already_labeled` for pool images that are
    exact or near duplicates of the committee's labeled images (detail names the labeled file and its label),
    and detail "near duplicate of X" for near copies of an earlier pool image (collapsed like exact copies).
    Returns notes on what could not be checked."""
    idx = pool.readable
    facts = health_cache(run, pool.images, pool.sizes, pool.fingerprint, progress)
    hashes, digests = facts["phash"][idx], facts["digest"][idx]
    source = str(labeled["source"]) if labeled is not None and "source" in labeled else "backbone"
    t = health.thresholds(source)
    notes = []
    # near copies inside the pool (exact copies are already marked by checksum), by the rule `clean` groups with
    plain = health.is_flat(facts["prop_entropy"][idx], t)
    pairs = health.near_pairs(hashes, features, t, eligible=~plain)
    group = health.star_groups(len(idx), pairs)
    copy = (group >= 0) & (group != np.arange(len(idx))) & (table["detail"] == "").to_numpy()
    paths = table["path"].to_numpy(dtype=object)
    table.loc[copy, "detail"] = ["near duplicate of " + paths[g] for g in group[copy]]
    # the committee's labeled images
    if labeled is None:
        notes.append("this committee bundle records no labeled images (trained by an older version): "
                     "pool images already in the labeled set are not recognised; re-run `train` to record them")
        return notes
    names = np.array(classes, dtype=object)
    match = np.full(len(idx), -1, dtype=np.int64)
    how = np.full(len(idx), "", dtype=object)
    known = {d.tobytes(): j for j, d in enumerate(labeled["digest"])}
    for i, d in enumerate(digests):
        j = known.get(d.tobytes())
        if j is not None:
            match[i], how[i] = j, "same pixels as"
    has_features = features is not None and len(labeled["features"])
    cross = health.cross_pairs(hashes, features if has_features else None, labeled["phash"],
                               labeled["features"] if has_features else None, health.leakage_thresholds(source),
                               eligible=~plain)
    for i, j in cross:
        if match[i] < 0:
            match[i], how[i] = j, "near duplicate of"
    leaked = match >= 0
    lab_paths, lab_labels = labeled["paths"], labeled["labels"]
    table.loc[leaked, "reason"] = "already_labeled"
    table.loc[leaked, "detail"] = [f"{h} labeled {lab_paths[j]} (label {names[lab_labels[j]]})" for h, j in zip(how[leaked], match[leaked])]
    return notes
