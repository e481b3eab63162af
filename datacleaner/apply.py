"""Bring a reviewed list back into the dataset, journaled and undoable.  [I/O]

A reviewed `review.csv` relabels dataset images; a reviewed `selection.csv` adds pool
images. Only rows with a `reviewed_label` count; the value `__drop__` takes an image out
of the dataset into `.datacleaner/quarantine/` (nothing is ever deleted).

Class-folder datasets change by moving files between class folders and copying pool
images in; CSV manifests are rewritten (pool images are copied beside the manifest under
`added/<label>/`). Every apply writes a journal under `.datacleaner/journal/` first;
`undo` reverts the last one exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .dataset import find_labeled_images, read_text_csv
from .errors import DataCleanerError
from .keys import file_digest
from .lock import exclusive
from .tables import unneutralise as _unneutralise, write_text_atomic

DROP = "__drop__"
STATE_DIR = ".datacleaner"


@dataclass
class ApplyPlan:
    ops: list[dict] = field(default_factory=list)  # {op: move|copy, src, dst, row}
    relabel: dict[str, str] = field(default_factory=dict)  # manifest datasets: path -> new label
    add_rows: list[tuple[str, str]] = field(default_factory=list)  # manifest datasets: (path, label)
    drop_rows: list[str] = field(default_factory=list)  # manifest datasets: paths taken out
    refused: list[str] = field(default_factory=list)  # one message per refused row
    skipped: int = 0  # rows with an empty reviewed_label or no change

    def describe(self) -> list[str]:
        lines = [f"{o['op']:5s} {o['src']} -> {o['dst']}" for o in self.ops]
        lines += [f"label {p} -> {label}" for p, label in self.relabel.items()]
        lines += [f"add   {p} as {label}" for p, label in self.add_rows]
        return lines


def _inside(root: Path, rel: str) -> Path | None:
    """root/rel resolved, or None if it escapes root."""
    target = (root / rel).resolve()
    try:
        target.relative_to(root.resolve())
    except ValueError:
        return None
    return target


def _listed_relative(root: Path, listed: str) -> str | None:
    """A listed path as a POSIX path relative to root: relative paths as they are; absolute ones
    if they lie inside root (as written, or once symlinks are resolved), else None."""
    if not os.path.isabs(listed):
        return listed
    for norm in (os.path.abspath, os.path.realpath):
        try:
            return Path(norm(listed)).relative_to(norm(root)).as_posix()
        except ValueError:
            continue
    return None


def _free_name(path: Path, taken: set[Path]) -> Path:
    candidate, n = path, 1
    while candidate.exists() or candidate in taken:
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    taken.add(candidate)
    return candidate


def plan_apply(review_csv: str | Path, dataset: str | Path, *, pool: str | Path | None = None) -> ApplyPlan:
    """What `apply` would do, without touching anything."""
    review_csv, dataset = Path(review_csv), Path(dataset)
    table = read_text_csv(review_csv)
    if not {"path", "reviewed_label"} <= set(table.columns):
        raise DataCleanerError(f"{review_csv} needs columns path and reviewed_label (a review.csv or selection.csv)")
    labeled = find_labeled_images(dataset)
    is_selection = "production_label" in table.columns
    source_root = labeled.root
    if is_selection:
        if pool is None:
            summary = review_csv.parent / "summary.json"
            if not summary.is_file() or "pool_root" not in json.loads(summary.read_text()):
                raise DataCleanerError(f"{review_csv}: cannot tell where the pool is; pass --pool POOL_DIR")
            pool = json.loads(summary.read_text())["pool_root"]
        source_root = Path(pool)
    classes = set(labeled.classes)
    current = dict(zip(labeled.paths, (labeled.classes[i] for i in labeled.labels)))
    plan, taken = ApplyPlan(), set()
    for n, row in table.iterrows():
        label = _unneutralise(row["reviewed_label"].strip())
        if not label:
            plan.skipped += 1
            continue
        listed = _unneutralise(row["path"])
        where = f"row {n + 2} ({listed})"
        rel = _listed_relative(source_root, listed)
        if rel is None:
            plan.refused.append(f"{where}: absolute path outside {source_root}; refused")
            continue
        src = _inside(source_root, rel)
        if src is None:
            plan.refused.append(f"{where}: path resolves outside {source_root}; refused")
            continue
        if not src.is_file():
            plan.refused.append(f"{where}: file not found at {src}; refused")
            continue
        if row.get("checksum") and file_digest(src) != row["checksum"]:
            plan.refused.append(f"{where}: file changed since the review (checksum differs); review it again")
            continue
        if label != DROP and label not in classes:
            plan.refused.append(f"{where}: unknown label '{label}' (classes: {', '.join(sorted(classes))}); refused")
            continue
        if is_selection:
            if label == DROP:
                plan.skipped += 1
                continue
            if labeled.source == "csv":
                dst = _free_name(labeled.root / "added" / label / src.name, taken)
                plan.ops.append({"op": "copy", "src": str(src), "dst": str(dst)})
                plan.add_rows.append((dst.relative_to(labeled.root).as_posix(), label))
            else:
                dst = _free_name(labeled.root / label / src.name, taken)
                plan.ops.append({"op": "copy", "src": str(src), "dst": str(dst)})
            continue
        if rel not in current:
            plan.refused.append(f"{where}: not an image of dataset {dataset}; refused")
            continue
        if label == DROP:
            dst = _free_name(labeled.root / STATE_DIR / "quarantine" / rel, taken)
            plan.ops.append({"op": "move", "src": str(src), "dst": str(dst)})
            if labeled.source == "csv":
                plan.drop_rows.append(rel)
            continue
        if label == current[rel]:
            plan.skipped += 1
            continue
        if labeled.source == "csv":
            plan.relabel[rel] = label
        else:
            inner = Path(rel).relative_to(Path(rel).parts[0])  # path inside the class folder
            dst = _free_name(labeled.root / label / inner, taken)
            plan.ops.append({"op": "move", "src": str(src), "dst": str(dst)})
    return plan


def _state_dir(dataset: Path) -> Path:
    return (dataset.parent if dataset.is_file() else dataset) / STATE_DIR


def dataset_lock(dataset: Path):
    """The lock `apply --yes` and `undo` hold on a dataset (DATA/.datacleaner/lock)."""
    return exclusive(_state_dir(dataset) / "lock", what=str(dataset))


def apply_review(review_csv: str | Path, dataset: str | Path, *, pool: str | Path | None = None, yes: bool = False) -> ApplyPlan:
    """Plan, and with yes=True carry out, a reviewed list; journaled under DATA/.datacleaner/journal/.
    A dry run touches nothing; a real one holds the dataset's lock."""
    dataset = Path(dataset)
    if not yes:
        return plan_apply(review_csv, dataset, pool=pool)
    with dataset_lock(dataset):
        plan = plan_apply(review_csv, dataset, pool=pool)
        if plan.ops or plan.relabel or plan.add_rows or plan.drop_rows:
            _carry_out(plan, review_csv, dataset)
    return plan


def _carry_out(plan: ApplyPlan, review_csv: str | Path, dataset: Path) -> None:
    """Journal the plan, make its changes, mark the journal done."""
    journal_dir = _state_dir(dataset) / "journal"
    journal_dir.mkdir(parents=True, exist_ok=True)
    journal = {
        "review": str(Path(review_csv).resolve()), "dataset": str(dataset.resolve()), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "ops": plan.ops, "created_dirs": [], "manifest_before": dataset.read_text() if dataset.is_file() else None,
        "status": "pending",
    }
    path = journal_dir / f"{len(list(journal_dir.glob('*.json'))):05d}.json"
    for op in plan.ops:  # folders that apply creates, so undo can remove them again
        parent = Path(op["dst"]).parent
        while not parent.exists() and str(parent) not in journal["created_dirs"]:
            journal["created_dirs"].append(str(parent))
            parent = parent.parent
    write_text_atomic(path, json.dumps(journal, indent=2))
    for op in plan.ops:
        Path(op["dst"]).parent.mkdir(parents=True, exist_ok=True)
        if op["op"] == "move":
            os.replace(op["src"], op["dst"])
        else:
            shutil.copy2(op["src"], op["dst"])
    if dataset.is_file():
        table = pd.read_csv(dataset, dtype=str, keep_default_na=False)
        table = table[~table["path"].isin(plan.drop_rows)]
        table.loc[table["path"].isin(list(plan.relabel)), "label"] = table["path"].map(plan.relabel)
        extra = pd.DataFrame(plan.add_rows, columns=["path", "label"])
        write_text_atomic(dataset, pd.concat([table, extra], ignore_index=True).to_csv(index=False))
    journal["status"] = "done"
    write_text_atomic(path, json.dumps(journal, indent=2))


def _journals(dataset: Path) -> list[Path]:
    """The dataset's apply journals not undone yet, oldest first; an error when there are none."""
    journal_dir = _state_dir(dataset) / "journal"
    entries = sorted(journal_dir.glob("*.json")) if journal_dir.is_dir() else []
    if not entries:
        raise DataCleanerError(f"nothing to undo: no journal under {journal_dir}")
    return entries


def undo_last(dataset: str | Path) -> dict:
    """Revert the last apply on `dataset` exactly (holding the dataset's lock); returns its journal."""
    dataset = Path(dataset)
    _journals(dataset)  # nothing to undo: say so before taking the lock
    with dataset_lock(dataset):
        return _undo(_journals(dataset)[-1], dataset)


def _undo(path: Path, dataset: Path) -> dict:
    journal = json.loads(path.read_text())
    for op in reversed(journal["ops"]):
        dst = Path(op["dst"])
        if not dst.exists():
            if journal["status"] == "pending":
                continue  # an interrupted apply: this step never happened
            raise DataCleanerError(f"cannot undo: {dst} is gone since the apply; restore it, then run undo again")
        if op["op"] == "move":
            Path(op["src"]).parent.mkdir(parents=True, exist_ok=True)
            os.replace(dst, op["src"])
        else:
            dst.unlink()  # a copy of a pool image that still exists in the pool
    if journal["manifest_before"] is not None:
        write_text_atomic(dataset, journal["manifest_before"])
    for d in sorted(journal["created_dirs"], key=len, reverse=True):
        try:
            Path(d).rmdir()
        except OSError:
            pass  # not empty any more: keep it
    undone = path.with_suffix(".undone")
    os.replace(path, undone)
    return journal
