"""A review list on disk: which CSV, whose images, which classes, and safe writes of decisions.  [I/O]

A review list is a `review.csv` (from `clean`) or a `selection.csv` (from `select`). People
write only its review columns: `reviewed_label` (a class name, or `__drop__`), `reviewed_by`
and `reviewed_at`. Every write re-reads the file under a lock, changes only the rows it was
given (matched by path) and replaces the file atomically, so several writers (two browser
tabs, two servers, an import) never lose each other's decisions on different rows, and the
file is valid input for `datacleaner apply` at every moment.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..dataset import read_text_csv
from ..errors import DataCleanerError
from ..tables import REVIEW_COLUMNS, list_lock, neutralise, unneutralise, with_review_columns, write_csv_atomic

DROP = "__drop__"
LIST_NAMES = ("review.csv", "selection.csv")


@dataclass
class Decision:
    """What a reviewer decided for one row; label '' clears the decision."""

    label: str
    by: str = ""
    at: str = ""


def now() -> str:
    """The time stamp written to reviewed_at: UTC, ISO 8601, seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def find_list(target: str | Path) -> Path:
    """LIST itself, or the review.csv / selection.csv in a run directory."""
    target = Path(target)
    if target.is_dir():
        for name in LIST_NAMES:
            if (target / name).is_file():
                return target / name
        raise DataCleanerError(f"{target} holds no review.csv or selection.csv; give a run directory of `clean` or `select`, or the CSV itself")
    if not target.is_file():
        raise DataCleanerError(f"{target} not found; give a review.csv, a selection.csv or their run directory")
    return target


@dataclass
class ReviewList:
    """A review list and what is needed to show it: where its images are and the class names."""

    path: Path  # the CSV
    kind: str  # "clean" (review.csv) | "select" (selection.csv)
    root: Path  # folder the listed paths are relative to (the dataset, or the pool)
    classes: list[str]  # class names a reviewer may choose (besides __drop__)
    table: pd.DataFrame  # the CSV as text, review columns present

    @property
    def folder(self) -> Path:
        """The run directory (the list's folder): thumbnails are cached under it."""
        return self.path.parent

    @property
    def given_column(self) -> str:
        return "production_label" if self.kind == "select" else "given_label"

    @property
    def score_column(self) -> str:
        return "disagreement" if self.kind == "select" else "label_quality"

    @property
    def vote_columns(self) -> list[str]:
        return [c for c in self.table.columns if c.startswith("vote_")]

    def image_path(self, listed: str) -> Path | None:
        """The file a listed path names, if it lies inside root (symlinks resolved), else None."""
        return inside(self.root, unneutralise(listed))

    def check_label(self, label: str, where: str = "") -> str:
        """`label` if a reviewer may write it, else a DataCleanerError naming the classes."""
        if label == "" or label == DROP or label in self.classes:
            return label
        raise DataCleanerError(f"{where}unknown label '{label}': expected one of {', '.join(self.classes)} or {DROP}")


def inside(root: Path, listed: str) -> Path | None:
    """root/listed (or listed itself if absolute) resolved, if it stays inside root; else None."""
    if not listed or "\x00" in listed:
        return None
    try:
        target = Path(os.path.realpath(Path(root) / listed))
        target.relative_to(os.path.realpath(root))
    except (ValueError, OSError):
        return None
    return target


def read_table(path: Path) -> pd.DataFrame:
    """The list as text (every column a string), with the review columns present."""
    table = read_text_csv(path)
    if "path" not in table.columns:
        raise DataCleanerError(f"{path} has no path column: give a review.csv or selection.csv written by datacleaner")
    if table["path"].duplicated().any():
        dup = table["path"][table["path"].duplicated()].iloc[0]
        raise DataCleanerError(f"{path} lists {dup} twice; each image may appear once in a review list")
    return with_review_columns(table)


def open_list(target: str | Path, root: str | Path | None = None) -> ReviewList:
    """The review list at `target` (a CSV or a run directory) with its image root and classes.

    The root comes from `root`, else the run's records: run.json (`clean`) or summary.json
    (`select`, its pool_root) beside the list."""
    path = find_list(target)
    table = read_table(path)
    kind = "select" if "production_label" in table.columns else "clean"
    folder = path.parent
    records = {name: _read_json(folder / name) for name in ("run.json", "summary.json")}
    if root is None:
        root = (records["run.json"] or {}).get("root") if kind == "clean" else (records["summary.json"] or {}).get("pool_root")
        if root is None:
            what = "dataset" if kind == "clean" else "pool"
            raise DataCleanerError(f"{path}: cannot tell where the {what} images are (no run record beside the list); pass --root FOLDER")
        root = Path(root)
        if not root.is_absolute():  # written relative to where the command ran: try the list's folder too
            root = root if root.exists() else folder / root
    root = Path(root)
    if not root.is_dir():
        raise DataCleanerError(f"{path}: the images' folder {root} does not exist; pass --root FOLDER")
    classes = (records["run.json"] or {}).get("classes") or (records["summary.json"] or {}).get("classes")
    if not classes:  # a list on its own: the labels it mentions
        seen = set()
        for col in ("given_label", "production_label", "suggested_label"):
            if col in table.columns:
                seen |= {unneutralise(v) for v in table[col] if v}
        classes = sorted(seen)
    return ReviewList(path=path, kind=kind, root=root, classes=[str(c) for c in classes], table=table)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class ListFile:
    """A review list's file, read again only when someone else has replaced it since we last
    read or wrote it (its inode, size and modification time tell)."""

    def __init__(self, path: str | Path, table: pd.DataFrame | None = None):
        self.path = Path(path)
        self.table = table
        self._seen = self._stat() if table is not None else None
        self.reads = 0  # how many times the file was read again: someone else had written it

    def _stat(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        return self.table is None or self._stat() != self._seen

    def load(self) -> pd.DataFrame:
        """The list as on disk now."""
        if self.changed():
            seen = self._stat()
            self.table, self._seen = read_table(self.path), seen
            self.reads += 1
        return self.table

    def write(self, decisions: dict[str, Decision]) -> dict[str, Decision]:
        """Write `decisions` ({listed path as in the CSV: Decision}) into the review columns.

        Under the list's lock: take in what others wrote meanwhile, change only these rows
        (values neutralised against spreadsheet formulas), replace the file atomically. Returns
        each changed row's previous Decision. A path not in the list is an error; nothing is written."""
        with list_lock(self.path):
            table = self.load().copy()
            index = pd.Index(table["path"])
            missing = [p for p in decisions if p not in index]
            if missing:
                raise DataCleanerError(f"{self.path} does not list {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
            previous = {}
            label_col, by_col, at_col = (table.columns.get_loc(c) for c in REVIEW_COLUMNS)
            for p, d in decisions.items():
                i = index.get_loc(p)
                previous[p] = Decision(*(unneutralise(table.iat[i, c]) for c in (label_col, by_col, at_col)))
                table.iat[i, label_col] = neutralise(d.label)
                table.iat[i, by_col] = neutralise(d.by) if d.label else ""
                table.iat[i, at_col] = neutralise(d.at) if d.label else ""
            write_csv_atomic(table, self.path, neutralised=True)
            self.table, self._seen = table, self._stat()
        return previous


def record(path: str | Path, decisions: dict[str, Decision]) -> tuple[pd.DataFrame, dict[str, Decision]]:
    """Write `decisions` into the list at `path` (see ListFile.write): (the table as now on disk,
    each changed row's previous Decision)."""
    f = ListFile(path)
    previous = f.write(decisions)
    return f.table, previous
