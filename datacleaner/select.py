"""The `select` job: score an unlabeled pool with a committee and the production model, skip what
production already handles, rank the rest by disagreement, write selection.csv.  [I/O]

Columns of selection.csv (candidates most worth labeling first, then unreadable files):
path, production_label, production_score, suggested_label, suggested_prob, disagreement,
vote_<member> (each member's label), reason (disagree | low_confidence | duplicate | unreadable),
rank (1 = first), in_budget (the top B), detail (why a file is unreadable), checksum (sha256 prefix of the file, checked by
`apply`), reviewed_label (empty, for the annotator).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .committee import Committee
from .dataset import LabeledImages, find_pool_images
from .errors import DataCleanerError
from .fuse import fuse, softmax
from .production import ProductionPredictions, from_csv, from_timm, from_torchscript
from .progress import Progress
from .review import write_csv_atomic
from .runs import RunDir, _decoded_cache, _set_threads, data_fingerprint
from .scoring import DISAGREEMENT_METHODS, disagreement, k_center_greedy, skip_mask


@dataclass
class SelectResult:
    run_dir: Path
    selection: pd.DataFrame  # candidates ranked, then unreadable
    scores: pd.DataFrame  # every pool image, skipped ones included
    summary: dict


def load_production(production: str | Path, images, paths, root, committee: Committee, *, arch=None, classes=None,
                    size=None, device="auto") -> ProductionPredictions:
    production = Path(production)
    if not production.is_file():
        raise DataCleanerError(f"production model {production} does not exist")
    names = list(classes) if classes else list(committee.classes_)
    if production.suffix.lower() == ".csv":
        return from_csv(production, paths, root, committee.classes_)
    if arch:
        return from_timm(arch, production, images, names, committee.classes_, size=size, device=device)
    return from_torchscript(production, images, names, committee.classes_, size=size or 224, device=device)


def select(
    pool: str | Path, committee_dir: str | Path, production: str | Path, *, out: str | Path, budget: int | None = None,
    method: str = "contradiction", min_committee_prob: float = 0.8, min_production_score: float = 0.8,
    production_arch: str | None = None, production_classes: list[str] | None = None, production_size: int | None = None,
    diverse: bool = False, diverse_pool: int = 5, device: str = "auto", progress: Progress | None = None,
) -> SelectResult:
    """Score `pool` with the committee bundle and the production model; write selection.csv into `out`.

    diverse: fill the budget by greedy k-center on the committee's penultimate features among
    the top `diverse_pool` x B candidates, so near-duplicates (bursts, video frames) cannot fill it.
    Exact duplicate files are always reported once (the others get reason 'duplicate')."""
    progress = progress or Progress()
    started = time.time()
    if method not in DISAGREEMENT_METHODS:
        raise DataCleanerError(f"--method must be one of {', '.join(DISAGREEMENT_METHODS)}, got '{method}'")
    committee = Committee.load(committee_dir, device=device)
    _set_threads(committee.config)
    root, paths = find_pool_images(pool)
    run = RunDir(out)
    run.path.mkdir(parents=True, exist_ok=True)
    listing = LabeledImages(root=root, paths=paths, labels=np.zeros(len(paths), dtype=np.int64), classes=[], source="pool")
    images, problems, checksums = _decoded_cache(run, listing, committee.cache_size_, data_fingerprint(listing), progress)
    ok = np.array([i not in problems for i in range(len(paths))])
    idx = np.flatnonzero(ok)
    pool_images = np.asarray(images[idx])  # (n, S, S, 3) uint8, readable images only
    outputs = committee.predict_outputs(pool_images, progress=progress)  # (n, M, V, C)
    fused = fuse(outputs, committee.weights_, mode=committee.config.fusion)  # (n, C)
    member_probs = softmax(outputs.astype(np.float64).mean(axis=2))  # (n, M, C)
    prod = load_production(
        production, pool_images, [paths[i] for i in idx], root, committee, arch=production_arch,
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
        feats = committee.features(pool_images[top.index.to_numpy()])  # (n_top, D)
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
        "budget": budget, "method": method, "committee": str(Path(committee_dir).resolve()),
        "classes": committee.classes_, "wall_time_s": round(time.time() - started, 1),
        "selection_csv": str(run.file("selection.csv")),
    }
    run.write_json("summary.json", summary)
    return SelectResult(run_dir=run.path, selection=selection, scores=table, summary=summary)
