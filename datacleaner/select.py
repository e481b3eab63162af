"""The `select` job: score an unlabeled pool with a committee and the production model, skip what
production already handles, rank the rest by disagreement, write selection.csv.  [I/O]

Columns of selection.csv (candidates most worth labeling first, then unreadable files):
path, production_label, production_score, suggested_label, suggested_prob, disagreement,
vote_<member> (each member's label), reason (disagree | low_confidence | duplicate | unreadable),
rank (1 = first), in_budget (the top B), detail (why a file is unreadable), checksum (sha256 prefix of the file, checked by
`apply`), reviewed_label (empty, for the annotator).

The run directory also holds cache/ (the decoded pool) and pool/ (the committee's
judgement of each shard of the pool, reused by a re-run).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .committee import Committee
from .dataset import LabeledImages, find_pool_images
from .errors import DataCleanerError
from .executors import Job, Rows, Shared, make_executor
from .jobs import committee_job
from .keys import digest
from .production import ProductionPredictions, from_csv, from_timm, from_torchscript
from .progress import Progress
from .review import write_bytes_atomic, write_csv_atomic
from .runs import RunDir, _decoded_cache, _set_threads, data_fingerprint
from .scoring import DISAGREEMENT_METHODS, disagreement, k_center_greedy, skip_mask


@dataclass
class SelectResult:
    run_dir: Path
    selection: pd.DataFrame  # candidates ranked, then unreadable
    scores: pd.DataFrame  # every pool image, skipped ones included
    summary: dict


def load_production(production: str | Path, images, idx, paths, root, committee: Committee, *, arch=None, classes=None,
                    size=None, device="auto") -> ProductionPredictions:
    """The production model's predictions for images[idx] (paths: theirs, relative to the pool root)."""
    production = Path(production)
    if not production.is_file():
        raise DataCleanerError(f"production model {production} does not exist")
    names = list(classes) if classes else list(committee.classes_)
    if production.suffix.lower() == ".csv":
        return from_csv(production, paths, root, committee.classes_)
    if arch:
        return from_timm(arch, production, images, idx, names, committee.classes_, size=size, device=device)
    return from_torchscript(production, images, idx, names, committee.classes_, size=size or 224, device=device)


def select(
    pool: str | Path, committee_dir: str | Path, production: str | Path, *, out: str | Path, budget: int | None = None,
    method: str = "contradiction", min_committee_prob: float = 0.8, min_production_score: float = 0.8,
    production_arch: str | None = None, production_classes: list[str] | None = None, production_size: int | None = None,
    diverse: bool = False, diverse_pool: int = 5, device: str = "auto", executor: str = "local",
    ray_address: str | None = None, shard_images: int = 4096, progress: Progress | None = None,
) -> SelectResult:
    """Score `pool` with the committee bundle and the production model; write selection.csv into `out`.

    The committee judges the pool in shards of `shard_images` (jobs for `executor`); each shard's
    result is saved in `out` as it arrives, so an interrupted run resumes, and only per-member
    class probabilities, never all TTA logits, are held for the whole pool.
    diverse: fill the budget by greedy k-center on the committee's penultimate features among
    the top `diverse_pool` x B candidates, so near-duplicates (bursts, video frames) cannot fill it.
    Exact duplicate files are always reported once (the others get reason 'duplicate')."""
    progress = progress or Progress()
    started = time.time()
    if method not in DISAGREEMENT_METHODS:
        raise DataCleanerError(f"--method must be one of {', '.join(DISAGREEMENT_METHODS)}, got '{method}'")
    if shard_images < 1:
        raise DataCleanerError(f"--shard-images must be >= 1, got {shard_images}")
    committee = Committee.load(committee_dir, device=device)
    _set_threads(committee.config)
    runner = make_executor(executor, address=ray_address, progress=progress)
    root, paths = find_pool_images(pool)
    run = RunDir(out)
    run.path.mkdir(parents=True, exist_ok=True)
    listing = LabeledImages(root=root, paths=paths, labels=np.zeros(len(paths), dtype=np.int64), classes=[], source="pool")
    fingerprint = data_fingerprint(listing)
    images, problems, checksums = _decoded_cache(
        run, listing, committee.cache_size_, fingerprint, progress, committee.config.cache_memory_gb
    )
    ok = np.array([i not in problems for i in range(len(paths))])
    idx = np.flatnonzero(ok)
    fused, member_probs = _judge_pool(run, committee, committee_dir, images, idx, fingerprint, runner, shard_images)
    prod = load_production(
        production, images, idx, [paths[i] for i in idx], root, committee, arch=production_arch,
        classes=production_classes, size=production_size, device=device,
    )
    if method == "js" and prod.probs is None:
        raise DataCleanerError("--method js needs production probabilities: per-class columns in the CSV, or a model")
    skipped = skip_mask(fused, prod.label, prod.score, min_committee_prob=min_committee_prob,
                        min_production_score=min_production_score)
    score = disagreement(fused, prod.label, method=method, production_probs=prod.probs, member_probs=member_probs)
    classes = np.array(committee.classes_, dtype=object)
    suggested = fused.argmax(axis=1)
    table = pd.DataFrame({
        "path": [paths[i] for i in idx],
        "production_label": classes[prod.label],
        "production_score": np.round(prod.score, 5),
        "suggested_label": classes[suggested],
        "suggested_prob": np.round(fused.max(axis=1), 5),
        "disagreement": np.round(score, 5),
    })
    for m, member in enumerate(committee.config.members):
        table[f"vote_{member.label}"] = classes[member_probs[:, m].argmax(axis=1)]
    table["reason"] = np.where(skipped, "skip", np.where(suggested != prod.label, "disagree", "low_confidence"))
    table["checksum"] = [checksums[i] for i in idx]
    table["detail"] = ""
    first_copy = table.groupby("checksum")["path"].transform("first")
    duplicate = (first_copy != table["path"]).to_numpy()
    table.loc[duplicate, "detail"] = "same file as " + first_copy[duplicate]
    candidates = table[~skipped & ~duplicate].sort_values(["disagreement", "path"], ascending=[False, True], kind="stable")
    B = budget if budget is not None else len(candidates)
    if diverse and len(candidates) > 1 and B > 0:
        top = candidates.head(diverse_pool * B)
        feats = committee.features(np.asarray(images[idx[top.index.to_numpy()]]))  # (n_top, D)
        picked = top.index[k_center_greedy(feats, B)]
        candidates = pd.concat([candidates.loc[picked], candidates.drop(index=picked)])
    candidates = candidates.reset_index(drop=True)
    candidates["rank"] = np.arange(1, len(candidates) + 1)
    candidates["in_budget"] = candidates["rank"] <= B
    dupes = table[duplicate & ~skipped].assign(reason="duplicate")
    unreadable = pd.DataFrame({"path": [paths[i] for i in problems], "reason": "unreadable", "detail": list(problems.values()),
                               "checksum": [checksums[i] for i in problems]})
    selection = pd.concat([candidates, dupes, unreadable], ignore_index=True)
    selection["detail"] = selection["detail"].fillna("")
    selection["rank"] = selection["rank"].astype("Int64")  # empty for duplicates and unreadable files
    selection["in_budget"] = selection["in_budget"].astype("boolean")
    selection["reviewed_label"] = ""
    write_csv_atomic(selection, run.file("selection.csv"))
    write_csv_atomic(table, run.file("pool_scores.csv"))
    summary = {
        "pool": len(paths), "pool_root": str(root.resolve()), "unreadable": len(problems),
        "skipped": int(skipped.sum()),
        "skip_rule": f"same label and committee prob >= {min_committee_prob} and production score >= {min_production_score}",
        "candidates": len(candidates), "disagree": int((candidates["reason"] == "disagree").sum()),
        "low_confidence": int((candidates["reason"] == "low_confidence").sum()),
        "duplicates": int(duplicate.sum()), "diverse": diverse,
        "budget": budget, "method": method, "executor": executor, "committee": str(Path(committee_dir).resolve()),
        "classes": committee.classes_, "wall_time_s": round(time.time() - started, 1),
        "selection_csv": str(run.file("selection.csv")),
    }
    run.write_json("summary.json", summary)
    return SelectResult(run_dir=run.path, selection=selection, scores=table, summary=summary)


def _committee_key(committee_dir: str | Path) -> str:
    """What a bundle's judgements depend on: its description and its weight files."""
    bundle = Path(committee_dir)
    files = sorted(bundle.glob("members/*.safetensors"))
    return digest([(bundle / "committee.json").read_text(), [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]])


def _judge_pool(run: RunDir, committee: Committee, committee_dir, images, idx: np.ndarray, fingerprint: str, executor,
                shard_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Fused probabilities (n, C) and member probabilities (n, M, C) of images[idx], judged in shards
    (jobs for `executor`), each shard saved under pool/ as it arrives and reused on a re-run."""
    key = digest([_committee_key(committee_dir), fingerprint, committee.config.device, shard_images])
    n, M, C = len(idx), len(committee.members_), len(committee.classes_)
    fused = np.zeros((n, C), dtype=np.float32)
    member_probs = np.zeros((n, M, C), dtype=np.float32)
    starts = list(range(0, n, shard_images))
    shard_file = {s: run.file("pool", f"shard-{key}-{s}.npz") for s in starts}
    todo = []
    for s in starts:
        if shard_file[s].is_file():
            with np.load(shard_file[s]) as saved:
                fused[s : s + shard_images], member_probs[s : s + shard_images] = saved["fused"], saved["member_probs"]
        else:
            todo.append(s)
    shared = Shared(committee)
    cpus = max(m.cpus for m in committee.config.members)
    gpus = max(m.gpus for m in committee.config.members)
    jobs = [
        Job(committee_job, dict(committee=shared, images=Rows(images, idx[s : s + shard_images]),
                                index=np.arange(s, min(n, s + shard_images)), desc=f"judge pool {s}/{n}"),
            desc="judge pool", cpus=cpus, gpus=gpus)
        for s in todo
    ]
    for i, result in executor.run(jobs):
        s = todo[i]
        buf = io.BytesIO()
        np.savez(buf, fused=result["fused"], member_probs=result["member_probs"])
        write_bytes_atomic(shard_file[s], buf.getvalue())
        fused[s : s + shard_images], member_probs[s : s + shard_images] = result["fused"], result["member_probs"]
    return fused, member_probs
