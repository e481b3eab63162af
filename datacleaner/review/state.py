"""What the review app serves and records for one list: its rows filtered and paged, the metadata the page
draws (classes, references, duplicate groups), and each decision written back through lists.record.  [I/O]"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataCleanerError
from ..tables import unneutralise
from .lists import DROP, Decision, ListFile, ReviewList, now


PAGE_LIMIT = 200  # rows per /api/rows answer at most


REFERENCES = 6  # reference images per class


GROUP_SHOWN = 8  # other files of a duplicate group shown with a row


def _text(values) -> np.ndarray:
    return np.array([unneutralise(v) for v in values], dtype=object)


class ReviewState:
    """The list as the server sees it: display columns read once, review columns kept equal to the
    file on disk, and decisions written through one writer that batches concurrent ones."""

    def __init__(self, lst: ReviewList, reviewer: str):
        self.lst, self.reviewer = lst, reviewer
        t = lst.table
        self.paths = t["path"].to_numpy(dtype=object)  # as written in the CSV: the row key
        self.index = {p: i for i, p in enumerate(self.paths)}
        self.given = _text(t[lst.given_column]) if lst.given_column in t else np.full(len(t), "", dtype=object)
        self.suggested = _text(t["suggested_label"]) if "suggested_label" in t else np.full(len(t), "", dtype=object)
        issue_col = "issue" if lst.kind == "clean" else "reason"
        self.issue = _text(t[issue_col]) if issue_col in t else np.full(len(t), "", dtype=object)
        scores = self._scores()
        self.references = self._references(scores)
        self.groups = self._groups(scores, t)
        self.allowed = (set(self.paths) | {p for refs in self.references.values() for p in refs}
                        | {m["path"] for members in self.groups.values() for m in members})
        self._lock = threading.Lock()  # guards the review columns and the open batch
        self._write_lock = threading.Lock()  # one write of the file at a time
        self._open: Batch | None = None  # decisions waiting for the next write
        self.replaced = ""  # why this server cannot go on (another command replaced the list), else ''
        self.file = ListFile(lst.path, t)
        self._set_review(t)

    def _show_written(self, decisions: dict[str, Decision], all_rows: bool) -> None:
        """The review columns after a write: every row if the write took in another writer's rows,
        else only the rows just written (cheaper on a long list)."""
        if all_rows:
            return self._set_review(self.file.table)
        self.lst.table = self.file.table
        for p, d in decisions.items():
            i = self.index[p]
            self.review["reviewed_label"][i] = d.label
            self.review["reviewed_by"][i] = d.by if d.label else ""
            self.review["reviewed_at"][i] = d.at if d.label else ""

    def _set_review(self, table: pd.DataFrame) -> None:
        self.review = {c: _text(table[c]) for c in ("reviewed_label", "reviewed_by", "reviewed_at")}
        self.lst.table = table

    def sync(self) -> None:
        """Take in decisions another writer (another server, an import) saved to the file meanwhile.
        If another command replaced the list with other rows (a rescore), stop with a message."""
        if self.file.changed() and not self.replaced:
            with self._write_lock, self._lock:
                self._check_rows(self.file.load())
                self._set_review(self.file.table)
        if self.replaced:
            raise ListReplaced(self.replaced)

    def _check_rows(self, table: pd.DataFrame) -> None:
        if not table["path"].equals(self.lst.table["path"]):
            self.replaced = (f"{self.lst.path} was replaced by another command (e.g. rescore) and lists other rows now; "
                             "decisions made here are in it; restart `datacleaner review` to go on")
            raise ListReplaced(self.replaced)

    # Reading --------------------------------------------------------------------------------

    def mask(self, q: dict) -> np.ndarray:
        m = np.ones(len(self.paths), dtype=bool)
        for key, column in (("given", self.given), ("suggested", self.suggested)):
            if q.get(key):
                m &= column == q[key]
        if q.get("issue"):  # a row lists its issues ';'-separated: any of them matches
            m &= np.array([q["issue"] in v.split(";") for v in self.issue], dtype=bool)
        status = q.get("status", "all")
        if status in ("reviewed", "unreviewed"):
            done = self.review["reviewed_label"] != ""
            m &= done if status == "reviewed" else ~done
        return m

    def row(self, i: int) -> dict:
        t = self.lst.table
        score_col = self.lst.score_column
        return {
            "row": int(i), "path": self.paths[i], "shown_path": unneutralise(self.paths[i]),
            "given": self.given[i], "suggested": self.suggested[i],
            "prob": _number(t["suggested_prob"].iat[i]) if "suggested_prob" in t else None,
            "score_name": score_col, "score": _number(t[score_col].iat[i]) if score_col in t else None,
            "votes": {c[len("vote_"):]: unneutralise(t[c].iat[i]) for c in self.lst.vote_columns},
            "issue": self.issue[i].replace(";", ", "), "detail": self._detail(i),
            "rank": t["rank"].iat[i] if "rank" in t else None,
            "group": [m for m in self.groups.get(t["duplicate_group"].iat[i], []) if m["path"] != self.paths[i]][:GROUP_SHOWN]
            if "duplicate_group" in t else [],
            **{k: self.review[c][i] for k, c in (("reviewed", "reviewed_label"), ("by", "reviewed_by"), ("at", "reviewed_at"))},
        }

    def _detail(self, i: int) -> str:
        """Why: the unreadable reason, the health checks' words (clean), or the selection's detail."""
        t = self.lst.table
        cols = ["reason", "detail"] if self.lst.kind == "clean" else ["detail"]
        return "; ".join(unneutralise(str(t[c].iat[i])) for c in cols if c in t and str(t[c].iat[i]) not in ("", "nan"))

    def rows(self, q: dict) -> dict:
        self.sync()
        with self._lock:
            hits = np.flatnonzero(self.mask(q))
            unreviewed = hits[self.review["reviewed_label"][hits] == ""]
            first = int(np.searchsorted(hits, unreviewed[0])) if len(unreviewed) else None
            limit = min(max(as_int(q.get("limit"), 60), 1), PAGE_LIMIT)
            offset = as_int(q.get("offset"), 0)
            if q.get("offset") == "first":  # the page holding the first unreviewed row
                offset = (first // limit) * limit if first is not None else 0
            return {
                "matching": int(len(hits)), "offset": offset, "first_unreviewed": first,
                "rows": [self.row(i) for i in hits[offset : offset + limit]], **self.counts(),
            }

    def counts(self) -> dict:
        return {"total": len(self.paths), "reviewed": int((self.review["reviewed_label"] != "").sum())}

    def meta(self) -> dict:
        self.sync()
        lst = self.lst

        def choices(values, among=None):
            v = pd.Series(values if among is None else values[among])
            return [[k, int(n)] for k, n in v[v != ""].value_counts().items()]

        def issue_choices():
            v = pd.Series(self.issue[self.issue != ""]).str.split(";").explode()
            return [[k, int(n)] for k, n in v.value_counts().items()]

        differ = (self.given != "") & (self.suggested != "") & (self.given != self.suggested)
        pairs = pd.DataFrame({"g": self.given[differ], "s": self.suggested[differ]}).value_counts()
        with self._lock:
            return {
                "list": str(lst.path), "kind": lst.kind, "classes": lst.classes, "drop": DROP, "reviewer": self.reviewer,
                "score_name": lst.score_column, "given_name": "production" if lst.kind == "select" else "given",
                "filters": {
                    "given": choices(self.given), "suggested": choices(self.suggested), "issue": issue_choices(),
                    "pair": [[g, sug, int(n)] for (g, sug), n in pairs.items()],
                },
                "has_references": bool(self.references), **self.counts(),
            }

    def _scores(self) -> pd.DataFrame | None:
        """The columns of scores.csv beside a clean run's list that references and groups need (read once), or None."""
        scores = self.lst.folder / "scores.csv"
        if self.lst.kind != "clean" or not scores.is_file():
            return None
        cols = ["path", "given_label", "suggested_label", "given_label_prob", "issue", "duplicate_group"]
        try:
            return pd.read_csv(scores, dtype=str, keep_default_na=False, usecols=lambda c: c in cols)
        except (ValueError, pd.errors.ParserError):
            return None

    @staticmethod
    def _groups(s: pd.DataFrame | None, table: pd.DataFrame) -> dict[str, list[dict]]:
        """{duplicate group: its files with their labels} for the groups of listed rows (scores.csv holds every
        member, also those that need no decision), so a reviewer sees the copies beside the card."""
        if s is None or "duplicate_group" not in s or "duplicate_group" not in table:
            return {}
        s = s[s["duplicate_group"].isin(set(table["duplicate_group"]) - {""})]
        return {g: [{"path": p, "shown_path": unneutralise(p), "label": unneutralise(label)}
                    for p, label in zip(rows["path"], rows["given_label"])]
                for g, rows in s.groupby("duplicate_group", sort=False)}

    @staticmethod
    def _references(s: pd.DataFrame | None) -> dict[str, list[str]]:
        """Per class, the images labeled so that the committee is most sure of (clean runs: scores.csv)."""
        if s is None or not {"suggested_label", "given_label_prob", "issue"} <= set(s.columns):
            return {}
        s = s[(s["issue"] == "") & (s["given_label"] == s["suggested_label"])]
        s = s.assign(p=pd.to_numeric(s["given_label_prob"], errors="coerce")).sort_values("p", ascending=False, kind="stable")
        return {unneutralise(c): g["path"].head(REFERENCES).tolist() for c, g in s.groupby("given_label", sort=False)}

    # Writing --------------------------------------------------------------------------------

    def decide(self, body: dict) -> dict:
        """Apply decisions ({path, label} each, or a filter and an action) and write them to the list."""
        stamp = now()
        if "filter" in body:
            action, where = body.get("action"), body.get("filter") or {}
            if action not in ("accept", "keep", "drop") or not isinstance(where, dict):
                raise ValueError("a bulk decision needs a filter object and an action: accept, keep or drop")
            with self._lock:
                hits = np.flatnonzero(self.mask(where))
            labels = {"accept": self.suggested, "keep": self.given}.get(action)
            wanted = [(self.paths[i], DROP if labels is None else labels[i]) for i in hits]
            wanted = [(p, label) for p, label in wanted if label]
        else:
            wanted = [(d.get("path"), d.get("label")) for d in _items(body, "decisions")]
        return self._submit({p: Decision(self._label(p, label), self.reviewer, stamp) for p, label in wanted})

    def restore(self, body: dict) -> dict:
        """Put rows back as they were (undo): label, by and at as given."""
        rows = _items(body, "rows")
        for r in rows:
            if not all(isinstance(r.get(k, ""), str) for k in ("by", "at")):
                raise ValueError("by and at must be text")
        return self._submit({r.get("path"): Decision(self._label(r.get("path"), r.get("label", "")), r.get("by", ""), r.get("at", ""))
                             for r in rows})

    def _label(self, path, label) -> str:
        """`label` if a reviewer may write it on the row `path`; else ValueError, or KeyError for a path not listed."""
        if not isinstance(path, str) or not isinstance(label, str):
            raise ValueError("each decision needs a path and a label, both text")
        if path not in self.index:
            raise KeyError(path)
        return self.lst.check_label(label)

    def _submit(self, decisions: dict[str, Decision]) -> dict:
        """Write `decisions` and return once they are on disk, with each row's previous decision (for
        undo). Concurrent requests join one batch: whoever takes the write lock first writes it,
        and every request in it gets that write's outcome."""
        self.sync()
        if not decisions:  # e.g. a bulk decision on a filter that matches nothing
            return {"changed": [], "saved_at": now(), **self.counts()}
        with self._lock:
            batch = self._open = self._open or Batch()
            batch.decisions.update(decisions)
        with self._write_lock:
            if not batch.closed:
                with self._lock:
                    batch.closed, self._open = True, None
                reads = self.file.reads
                try:
                    if self.file.changed():
                        self._check_rows(self.file.load())
                    batch.previous = self.file.write(batch.decisions)
                except Exception as exc:  # nothing of this batch was written: every request in it says so
                    batch.error = exc
                else:
                    with self._lock:
                        self._show_written(batch.decisions, all_rows=self.file.reads != reads)
        if batch.error is not None:
            raise batch.error
        changed = [{"path": p, "previous": vars(batch.previous[p])} for p in decisions]
        return {"changed": changed, "saved_at": now(), **self.counts()}


@dataclass
class Batch:
    """Decisions of concurrent requests written together, and the outcome every one of them gets."""

    decisions: dict = field(default_factory=dict)
    closed: bool = False
    previous: dict = field(default_factory=dict)  # each row's decision before the write (from the file)
    error: Exception | None = None


class ListReplaced(DataCleanerError):
    """Another command replaced the list with other rows while it was being reviewed."""


def _items(body: dict, key: str) -> list[dict]:
    items = body.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"{key} must be a list of objects")
    return items


def _number(value: str):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 4) if math.isfinite(number) else None


def as_int(value, default: int) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return default
