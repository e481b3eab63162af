"""What the report reads from a run directory: its summary and lists, the rows to show and the score
columns, read a chunk of rows at a time so a million-image run fits in memory.  [I/O]"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataCleanerError
from ..tables import primary_issue, unneutralise
from .lists import LIST_NAMES

EXAMPLES_PER_PAIR = 4  # thumbnails per pair
LISTED = 200  # unreadable files / copies listed by name
CHUNK = 100_000  # CSV rows read at a time
FLAGGED = ("mislabel", "low_confidence")


@dataclass
class Run:
    """A run directory as the report needs it."""

    folder: Path
    kind: str  # "clean" | "select"
    list_path: Path  # review.csv | selection.csv
    summary: dict
    info: dict  # run.json (clean), {} for select
    root: Path | None  # the images' folder, None if it is gone
    root_text: str  # the images' folder as recorded
    thumbs: dict = field(default_factory=dict)  # listed path -> data URI, or why there is none (memo)


def open_run(run_dir: str | Path) -> Run:
    folder = Path(run_dir)
    if folder.is_file() and folder.name in LIST_NAMES:  # the list itself: its run directory
        folder = folder.parent
    expected = "review.csv (from `clean`) or selection.csv (from `select`), and summary.json"
    if not folder.is_dir():
        raise DataCleanerError(f"{folder} is not a folder; give a run directory of `clean` or `select` (it holds {expected})")
    lists = [folder / name for name in LIST_NAMES if (folder / name).is_file()]
    summary = _read_json(folder / "summary.json")
    if not lists or summary is None:
        missing = "summary.json" if lists else " / ".join(LIST_NAMES)
        raise DataCleanerError(f"{folder} is not a finished run directory (no readable {missing}); give the --out folder of `clean` or `select`, which holds {expected}")
    list_path = lists[0]
    kind = "select" if list_path.name == "selection.csv" else "clean"
    info = (_read_json(folder / "run.json") or {}) if kind == "clean" else {}
    recorded = info.get("root") if kind == "clean" else summary.get("pool_root")
    root = None
    if recorded:
        root = Path(recorded)
        if not root.is_absolute() and not root.exists():
            root = folder / root
        if not root.is_dir():
            root = None
    return Run(folder, kind, list_path, summary, info, root, str(recorded or ""))


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def chunks(path: Path, usecols: list[str] | None = None):
    """The CSV as text tables of CHUNK rows (only `usecols` that exist, if given)."""
    try:
        header = pd.read_csv(path, nrows=0, dtype=str).columns
        cols = None if usecols is None else [c for c in usecols if c in header]
        yield from pd.read_csv(path, dtype=str, keep_default_na=False, usecols=cols, chunksize=CHUNK)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataCleanerError(f"{path} is not a readable CSV ({str(exc).splitlines()[0]}); re-run the command that wrote it") from None


def floats(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)


@dataclass
class Listing:
    """What the report shows of a review / selection list, gathered in one pass over its chunks."""

    pairs: Counter = field(default_factory=Counter)  # (from, to) -> rows, in first-seen order on ties
    examples: dict = field(default_factory=dict)  # (from, to) -> first rows (dicts)
    top: list = field(default_factory=list)  # first rows of the pairs' subset, list order
    scores: list = field(default_factory=list)  # score column of the subset (arrays)
    unreadable: list = field(default_factory=list)
    n_unreadable: int = 0
    copies: list = field(default_factory=list)
    n_copies: int = 0
    health: list = field(default_factory=list)  # clean: rows whose first issue is a data-health one
    n_health: int = 0


def scan_list(run: Run, top: int) -> Listing:
    """Pairs, examples, the top rows, unreadable files and copies of the run's list (every row counted)."""
    select = run.kind == "select"
    keys = ["production_label" if select else "given_label", "suggested_label"]
    score = "disagreement" if select else "label_quality"
    found = Listing()
    for chunk in chunks(run.list_path):
        if "path" not in chunk.columns:
            raise DataCleanerError(f"{run.list_path} has no path column: give a run directory written by datacleaner")
        for col in keys + [score, "issue", "reason", "rank", "detail"]:
            if col not in chunk.columns:
                chunk[col] = ""
        first = primary_issue(chunk["issue"])
        subset = chunk[chunk["rank"] != ""] if select else chunk[first.isin(FLAGGED)]
        if not select:
            other = chunk[~first.isin((*FLAGGED, "", "unreadable"))]
            found.n_health += len(other)
            found.health += other.head(max(0, LISTED - len(found.health))).to_dict("records")
        for pair, n in subset.groupby(keys, sort=False).size().items():
            found.pairs[pair] += int(n)
        for row in subset.groupby(keys, sort=False).head(EXAMPLES_PER_PAIR).to_dict("records"):
            shown = found.examples.setdefault((row[keys[0]], row[keys[1]]), [])
            if len(shown) < EXAMPLES_PER_PAIR:
                shown.append(row)
        found.top += subset.head(max(0, top - len(found.top))).to_dict("records")
        found.scores.append(floats(subset[score]))
        bad = chunk[chunk["reason" if select else "issue"] == "unreadable"]
        found.n_unreadable += len(bad)
        found.unreadable += bad.head(max(0, LISTED - len(found.unreadable))).to_dict("records")
        copies = chunk[chunk["reason"] == "duplicate"] if select else chunk.iloc[:0]
        found.n_copies += len(copies)
        found.copies += copies.head(max(0, LISTED - len(found.copies))).to_dict("records")
    return found


def group_members(run: Run, groups: set) -> dict[str, list[dict]]:
    """{duplicate group: its files (path, given_label)} from scores.csv, for the `groups` asked for."""
    groups = groups - {"", None}
    path = run.folder / "scores.csv"
    if not groups or not path.is_file():
        return {}
    out: dict[str, list[dict]] = {}
    for chunk in chunks(path, ["path", "given_label", "duplicate_group"]):
        if "duplicate_group" not in chunk:
            return {}
        for row in chunk[chunk["duplicate_group"].isin(groups)].to_dict("records"):
            out.setdefault(row["duplicate_group"], []).append(row)
    return out


def scan_scores(run: Run) -> tuple[dict, np.ndarray, np.ndarray]:
    """From scores.csv (three columns, in chunks): {class: [images, flagged]}, label_quality of
    readable images, of flagged ones. Without scores.csv: flagged counts from the summary only."""
    path = run.folder / "scores.csv"
    per_class = {str(c): [None, 0] for c in run.info.get("classes") or []}
    if not path.is_file():
        for c, n in (run.summary.get("flagged_per_class") or {}).items():
            per_class.setdefault(str(c), [None, 0])[1] = n
        return per_class, np.empty(0), np.empty(0)
    readable, flagged = [], []
    for chunk in chunks(path, ["given_label", "label_quality", "issue"]):
        given = chunk["given_label"].map(unneutralise)
        issue = chunk["issue"] if "issue" in chunk else pd.Series("", index=chunk.index)
        is_flagged = primary_issue(issue).isin(FLAGGED)
        for c, n in given.value_counts(sort=False).items():
            per_class.setdefault(c, [0, 0])[0] = (per_class[c][0] or 0) + int(n)
        for c, n in given[is_flagged].value_counts(sort=False).items():
            per_class[c][1] += int(n)
        q = floats(chunk["label_quality"])
        readable.append(q[(issue != "unreadable").to_numpy()])
        flagged.append(q[is_flagged.to_numpy()])
    return per_class, np.concatenate(readable + [np.empty(0)]), np.concatenate(flagged + [np.empty(0)])


def scan_pool(run: Run) -> np.ndarray:
    """disagreement of every readable pool image (pool_scores.csv, one column, in chunks)."""
    path = run.folder / "pool_scores.csv"
    if not path.is_file():
        return np.empty(0)
    return np.concatenate([floats(c["disagreement"]) for c in chunks(path, ["disagreement"]) if "disagreement" in c] + [np.empty(0)])
