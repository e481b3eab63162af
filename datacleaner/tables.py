"""Review tables and CSV writing.  [I/O]

Columns of scores.csv and review.csv (one row per image):

path              image path relative to the dataset root
given_label       the dataset's label
suggested_label   the committees' label (argmax of the fused probabilities, mean over rounds); for
                  conflicting_labels the group's label, __drop__ for an outlier or an extra copy
                  of the file a duplicate group keeps
suggested_prob    its fused probability
given_label_prob  fused probability of the given label, mean over rounds
label_quality     in [0, 1], lower = more likely mislabeled (= given_label_prob)
error_prob        estimated probability that the given label is wrong (scoring.error_model): the
                  running mean down review.csv estimates the share of wrong labels found so far
flag_count        rounds that flagged the image
rounds            rounds that judged the image
vote_<member>     each member's label (its most frequent over the rounds that judged the image)
issue             every issue of the image, most important first, ';'-separated ('' = none):
                  label issues   mislabel | low_confidence (the committee), conflicting_labels (a
                                 copy whose label differs from its group's)
                  data health    outlier, duplicate, near_duplicate (rows of review.csv), dark, light,
                                 blurry, low_information, grayscale, odd_aspect_ratio, odd_size
                                 (reported in health.csv, no row of their own) (health/)
                  or unreadable alone
reason            why an image is unreadable, else ''
detail            the health issues in words, naming the other files of a duplicate group
duplicate_group   the file the image's duplicate / near-duplicate group keeps, else ''
checksum          sha256 prefix of the file as judged (`apply` refuses files changed since)
reviewed_label    empty, for the annotator
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .health import DECISION_ISSUES, ISSUES, Health
from .scoring import Scores

CSV_CHUNK = 50_000  # rows per write
_UMASK = os.umask(0)  # read once (os.umask can only be read by setting it)
os.umask(_UMASK)

COLUMNS = [
    "path", "given_label", "suggested_label", "suggested_prob", "given_label_prob", "label_quality", "error_prob",
    "flag_count", "rounds", "issue", "reason", "detail", "duplicate_group", "checksum", "reviewed_label",
]
TEXT_COLUMNS = ("path", "given_label", "suggested_label", "production_label", "reason", "detail",
                "duplicate_group")  # and vote_<member>
LABEL_ISSUES = ("mislabel", "low_confidence", "conflicting_labels")  # reviewed first
DROP_LABEL = "__drop__"
REVIEW_COLUMNS = ("reviewed_label", "reviewed_by", "reviewed_at")  # what people write into a list
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Prefix a quote to text a spreadsheet would run as a formula (and to text that starts with a
    quote already, so that unneutralise gives back exactly what was written)."""
    return "'" + value if isinstance(value, str) and value.startswith((*FORMULA_START, "'")) else value


def unneutralise(value: str) -> str:
    """The text as the user wrote it, from its neutralised CSV form."""
    return value[1:] if isinstance(value, str) and value.startswith("'") and value[1:2] in (*FORMULA_START, "'") else value


def is_text_column(name: str) -> bool:
    return name in TEXT_COLUMNS or name.startswith("vote_")


@contextmanager
def list_lock(path: Path):
    """Held while a writer reads, changes and replaces a review list (a lock file beside it; blocking:
    writes take a fraction of a second)."""
    lock_path = path.with_name(f".{path.name}.lock")
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def score_table(
    paths: list[str], classes: list[str], scores: Scores, problems: dict[int, str], votes: dict[str, np.ndarray] | None = None,
    health: Health | None = None,
) -> pd.DataFrame:
    """Every image, in dataset order; `votes` ({member: (N,) label index or -1}) become vote_<member>
    columns; `health` (health.assess) adds its issues after the committee's, and its suggestions."""
    names = np.array(classes + [""], dtype=object)  # index -1 (never judged) -> ''
    N = len(paths)
    issue = scores.issue.astype(object)
    suggested = names[scores.suggested_label]
    reason = np.full(N, "", dtype=object)
    detail = np.full(N, "", dtype=object)
    group = np.full(N, "", dtype=object)
    if health is not None:
        extra = np.array([";".join(h) for h in health.issues], dtype=object)
        issue = np.where(issue == "", extra, np.where(extra == "", issue, issue + ";" + extra))
        detail = health.detail.copy()
        grouped = health.group >= 0
        group[grouped] = np.asarray(paths, dtype=object)[health.group[grouped]]
        # a suggestion of its own where the committee's label is not the question (conflicts: always)
        own = (health.suggest != -1) & ((scores.issue == "") | (health.suggest >= 0))
        suggested = np.where(own, np.where(health.suggest >= 0, names[np.maximum(health.suggest, 0)], DROP_LABEL), suggested)
    for i, why in problems.items():
        issue[i], reason[i], detail[i] = "unreadable", why, ""
    table = pd.DataFrame(
        {
            "path": paths,
            "given_label": names[scores.given_label],
            "suggested_label": suggested,
            "suggested_prob": np.round(scores.suggested_prob, 5),
            "given_label_prob": np.round(scores.given_label_prob, 5),
            "label_quality": np.round(scores.label_quality, 5),
            "error_prob": np.round(scores.error_prob, 4),
            "flag_count": scores.flag_count,
            "rounds": scores.rounds,
            "issue": issue,
            "reason": reason,
            "detail": detail,
            "duplicate_group": group,
            "reviewed_label": "",
        },
        columns=[c for c in COLUMNS if c != "checksum"],
    )
    at = table.columns.get_loc("rounds") + 1
    for k, (member, v) in enumerate((votes or {}).items()):
        table.insert(at + k, f"vote_{member}", names[v])
    return table


def primary_issue(issue: pd.Series) -> pd.Series:
    """Each row's most important issue: the first of its ';'-separated list."""
    return issue.fillna("").astype(str).str.split(";", n=1).str[0]


def has_issue(issue: pd.Series, name: str) -> pd.Series:
    """Rows whose ';'-separated issue list holds `name`."""
    return issue.fillna("").astype(str).str.split(";").map(lambda names: name in names)


def review_table(scores_table: pd.DataFrame) -> pd.DataFrame:
    """Every image with an issue that asks a reviewer for a decision (relabel, keep or drop): label
    problems first (mislabel and low_confidence most probably wrong first: highest error_prob, then
    most flags, then lowest label_quality; then conflicting labels by group), then outliers and
    copies (a duplicate group's files together), unreadable files last. Images whose only issues
    are image properties (health.REPORT_ISSUES) are reported, not listed (health.csv)."""
    first = primary_issue(scores_table["issue"])
    committee = scores_table[first.isin(["mislabel", "low_confidence"])]
    committee = committee.sort_values(["error_prob", "flag_count", "label_quality", "path"], ascending=[False, False, True, True],
                                      kind="stable")
    rank = {name: k for k, name in enumerate(ISSUES)}
    others = scores_table[first.isin(DECISION_ISSUES)]
    group = others["duplicate_group"] if "duplicate_group" in others else pd.Series("", index=others.index)
    others = others.assign(_rank=first[others.index].map(rank), _group=group.where(group != "", others["path"]))
    others = others.sort_values(["_rank", "_group", "path"], kind="stable").drop(columns=["_rank", "_group"])
    unreadable = scores_table[first == "unreadable"]
    return pd.concat([committee, others, unreadable]).reset_index(drop=True)


def with_review_columns(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with reviewed_label, reviewed_by, reviewed_at (added after reviewed_label, or at the end)."""
    cols = list(table.columns)
    if "reviewed_label" not in cols:
        table["reviewed_label"] = ""
        cols.append("reviewed_label")
    at = cols.index("reviewed_label") + 1
    for name in REVIEW_COLUMNS[1:]:
        if name not in cols:
            table[name] = ""
            cols.insert(at, name)
        at = cols.index(name) + 1
    return table[cols]


@dataclass
class KeptDecisions:
    """What became of the decisions in a review list that a new one replaces."""

    kept: int = 0  # carried into the new list (same path, same file)
    saved_in: Path | None = None  # the old list's copy, when some of its decisions have no row any more
    unplaced: int = 0  # those decisions


def keep_decisions(table: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, KeptDecisions]:
    """`table`, a new review list about to replace the one at `path`, with the old list's decisions
    (reviewed_label, reviewed_by, reviewed_at) on rows of the same file (same path and checksum).
    If some decisions find no row (the image left the list, or its file changed), the old list is
    first copied to <name>.before-<time>.csv, so no decision is ever lost."""
    result = KeptDecisions()
    try:
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        return table, result
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        old = None
    if old is not None and not {"path", "reviewed_label"} <= set(old.columns):
        return table, result
    decided = None if old is None else old[old["reviewed_label"].str.strip() != ""]
    if decided is not None and decided.empty:
        return table, result
    if decided is not None:
        key = ["path", "checksum"] if "checksum" in table and "checksum" in decided else ["path"]
        new_keys = pd.DataFrame({c: table[c].astype(str).map(neutralise) for c in key})  # as the old file holds them
        where = pd.MultiIndex.from_frame(new_keys).get_indexer(pd.MultiIndex.from_frame(decided[key]))
        placed = where >= 0
        if placed.any():
            table = with_review_columns(table.copy())
            for col in REVIEW_COLUMNS:
                if col in decided:
                    table.iloc[where[placed], table.columns.get_loc(col)] = decided[col].to_numpy()[placed]
        result.kept, result.unplaced = int(placed.sum()), int((~placed).sum())
    if old is None or result.unplaced:
        backup = path.with_name(f"{path.stem}.before-{time.strftime('%Y%m%dT%H%M%S')}{path.suffix}")
        shutil.copy2(path, backup)
        result.saved_in = backup
    return table, result


def write_csv_atomic(table: pd.DataFrame, path: str | Path, *, neutralised: bool = False) -> Path:
    """Write `table` as CSV (formula-like text neutralised, unless the caller says it already is)
    via a temporary file and rename, CSV_CHUNK rows at a time: a million rows never become one
    string, nor a second copy of the table."""
    path = Path(path)
    text_columns = [] if neutralised else [c for c in table.columns if is_text_column(c)]
    with atomic_file(path) as f:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        for start in range(0, max(len(table), 1), CSV_CHUNK):
            part = table.iloc[start : start + CSV_CHUNK]
            if text_columns:
                part = part.assign(**{c: part[c].map(neutralise) for c in text_columns})
            part.to_csv(text, index=False, header=start == 0)
        text.flush()
        text.detach()  # leave the file to atomic_file
    return path


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


@contextmanager
def atomic_file(path: str | Path):
    """A binary file that replaces `path` only when the block completes (temporary file, fsync, rename).
    It keeps the mode of the file it replaces; a new file gets the usual 0666 less the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
