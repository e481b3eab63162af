"""The Label Studio round trip: a review list out as tasks, the annotators' choices back in.  [I/O]

`export_tasks` writes a review.csv or selection.csv as a Label Studio tasks JSON (one task per
row, in the list's order) and, beside it, the labeling config to create the project with:

    data.image        the image's URL (see image_url)
    data.path         the listed path, as the user wrote it: import_reviews matches rows by it
    data.<column>     the row's labels and scores (numbers as numbers, so the Data Manager sorts them)
    data.summary      one line shown above the image: the current label, the committee's, the votes
    predictions       the committee's label as a pre-selected choice, model_version "datacleaner",
                      score = the committee's trust in the row's current label: label_quality for a
                      review.csv, 1 - disagreement for a selection.csv. Lower is more suspect, so
                      sorting the Data Manager by "Prediction score" ascending puts the most suspect
                      rows first. Unreadable files get no prediction (the committee never saw them):
                      they sort last either way, as in the list, and can be dropped.

The labeling config has one Choice per class name and one with value `__drop__` (take the image
out of the dataset); annotations, and so every export format, carry the Choice values as they are.
Label Studio's interface reads `$name` in a tag's value as a reference to task data, so every `$` of a class
name goes out as the full-width `＄` (U+FF04, which looks the same) in the config and the
predictions, and comes back as `$` on import: class names stay intact through the round trip.

`import_reviews` reads Label Studio's JSON, JSON_MIN or CSV export of those tasks and writes the
chosen labels into the list's reviewed_label (with reviewed_by, reviewed_at) through
`lists.record`. Everything is checked first: an unknown label or a path the list does not hold
stops the import with nothing written.
"""

from __future__ import annotations

import json
import math
import os
import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import pandas as pd

from ..errors import DataCleanerError
from ..tables import unneutralise, write_text_atomic
from .lists import DROP, Decision, ReviewList, now, open_list, record

CONTROL = "reviewed_label"  # the Choices tag's name: the key holding the choice in JSON_MIN and CSV exports
OBJECT = "image"  # the Image tag's name and the task data key of the image URL
MODEL_VERSION = "datacleaner"
LOCAL_FILES = "/data/local-files/?d="
TEXT = ("path", "given_label", "production_label", "suggested_label", "issue", "reason", "detail")
NUMBERS = ("production_score", "suggested_prob", "given_label_prob", "label_quality", "disagreement", "flag_count", "rank")
DROP_HINT = "Not a usable image of any class: datacleaner apply moves it to .datacleaner/quarantine/"
DOLLAR, SAFE_DOLLAR = "$", "\uff04"  # Label Studio reads $name as task data; ＄ shows the same and is read as text


def choice_value(label: str) -> str:
    """A class name as a Label Studio Choice value (and prediction): every $ as ＄."""
    return label.replace(DOLLAR, SAFE_DOLLAR)


def _choice_names(classes: list[str]) -> dict[str, str]:
    """{Choice value: class name} for a list's classes; a clear error if two classes would share a value."""
    names: dict[str, str] = {}
    for c in classes:
        value = choice_value(c)
        if names.setdefault(value, c) != c:
            raise DataCleanerError(f"classes {names[value]!r} and {c!r} would look the same in Label Studio ($ is written "
                                   f"as {SAFE_DOLLAR}, since Label Studio reads $name as task data); rename one of them")
    return names


@dataclass
class ExportResult:
    tasks_path: Path
    config_path: Path
    tasks: int  # how many tasks were written


def export_tasks(
    target: str | Path, out: str | Path, *, image_url_prefix: str | None = None, root: str | Path | None = None,
) -> ExportResult:
    """Write the list at `target` (a CSV or its run directory) as Label Studio tasks to `out`, and the
    labeling config to <out stem>.labeling.xml beside it (both atomically)."""
    review = open_list(target, root)
    out = Path(out)
    if out.is_dir():
        raise DataCleanerError(f"--out {out} is a folder; give the tasks file to write, e.g. {out / 'tasks.json'}")
    config_path = out.with_name(f"{out.stem}.labeling.xml")
    _choice_names(review.classes)  # no two classes alike once their $ are escaped
    tasks = [_task(review, row, image_url_prefix) for row in review.table.to_dict("records")]
    write_text_atomic(out, json.dumps(tasks, indent=1, ensure_ascii=False) + "\n")
    write_text_atomic(config_path, labeling_config(review.classes))
    return ExportResult(tasks_path=out, config_path=config_path, tasks=len(tasks))


def labeling_config(classes: list[str]) -> str:
    """The project's labeling config: the summary line, the image, one single choice among the
    classes and __drop__ (required, so an annotation always carries a label)."""
    choices = "".join(f"    <Choice value={quoteattr(choice_value(c))}/>\n" for c in classes)
    return (
        "<View>\n"
        '  <Header value="$summary" size="5"/>\n'
        f'  <Image name="{OBJECT}" value="${OBJECT}" zoom="true"/>\n'
        f'  <Choices name="{CONTROL}" toName="{OBJECT}" choice="single-radio" required="true">\n'
        f"{choices}"
        f"    <Choice value={quoteattr(DROP)} hint={quoteattr(DROP_HINT)}/>\n"
        "  </Choices>\n"
        "</View>\n"
    )


def image_url(review: ReviewList, listed: str, prefix: str | None) -> str:
    """Where Label Studio loads the image of `listed` (a path relative to the list's root) from.

    With a prefix: prefix + the path URL-quoted. Without: a local-files URL whose path is
    <root folder's name>/<listed path>, i.e. relative to the root's parent, which the user sets
    as LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (Label Studio refuses a storage at the document
    root itself, so the root's parent it is)."""
    if prefix:
        return prefix.rstrip("/") + "/" + quote(listed, safe="/")
    return LOCAL_FILES + quote(f"{Path(os.path.abspath(review.root)).name}/{listed}", safe="/")


def _task(review: ReviewList, row: dict, prefix: str | None) -> dict:
    """One task: the image, the row's labels and scores, and the committee's label as a prediction."""
    path = unneutralise(row["path"])
    data = {OBJECT: image_url(review, path, prefix)}
    for col, text in row.items():
        if col in TEXT or col in NUMBERS or col.startswith("vote_") or col == "in_budget":
            data[col] = _value(col, text)
    data["summary"] = _summary(review, data)
    task = {"data": data}
    suggested = data.get("suggested_label")
    if review.kind == "clean":
        score = data.get("label_quality")
    else:
        score = None if data.get("disagreement") is None else round(1.0 - data["disagreement"], 5)
    if suggested and score is not None:
        result = {"from_name": CONTROL, "to_name": OBJECT, "type": "choices", "value": {"choices": [choice_value(suggested)]}}
        task["predictions"] = [{"model_version": MODEL_VERSION, "score": score, "result": [result]}]
    return task


def _value(col: str, text: str):
    """A list cell as task data: scores as numbers, in_budget as a boolean, text as the user wrote it."""
    if col in NUMBERS:
        return _number(text)
    if col == "in_budget":
        return text == "True"
    return unneutralise(text)


def _number(text: str) -> float | int | None:
    """A CSV cell as a JSON number (None when empty or not a finite number)."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and "." not in text else value


def _summary(review: ReviewList, data: dict) -> str:
    """The line above the image: what the list says about the row, so the annotator sees the
    current label next to the committee's."""
    given = data.get(review.given_column, "")
    if "unreadable" in (data.get("issue"), data.get("reason")):
        why = data.get("reason") if review.kind == "clean" else data.get("detail")
        return f"{'given' if review.kind == 'clean' else 'production'} {given or '-'} · unreadable: {why}"
    votes = ", ".join(f"{c[len('vote_'):]} {data[c]}" for c in review.vote_columns)
    if review.kind == "clean":
        head = f"given {given} · committee {data.get('suggested_label')} ({data.get('suggested_prob')}) · label quality {data.get('label_quality')}"
        tail = data.get("issue")
    else:
        head = (f"production {given} ({data.get('production_score')}) · committee {data.get('suggested_label')} "
                f"({data.get('suggested_prob')}) · disagreement {data.get('disagreement')}")
        tail = data.get("reason")
    return " · ".join(part for part in (head, f"votes {votes}" if votes else "", tail) if part)


@dataclass
class Annotation:
    """The choice one annotation made for a listed path."""

    label: str
    by: str
    at: str  # ISO UTC, seconds
    order: tuple  # (time, annotation id): the largest is the most recent


@dataclass
class ImportResult:
    list_path: Path
    export_path: Path
    format: str  # JSON | JSON_MIN | CSV
    filled: int  # rows whose reviewed_label was written
    replaced: int  # of those, rows that held a different decision before
    unchanged: int  # annotated rows whose reviewed_label already said the same
    not_annotated: int  # exported paths without a usable annotation (none, cancelled or empty)
    cancelled: int  # cancelled (skipped) annotations ignored; only the JSON export shows them
    several: int  # paths with several annotations: the most recent one was taken
    not_exported: int  # listed rows the export does not mention (left as they were)

    def describe(self) -> str:
        """What the import did: a line for the rows filled, one for each other count that is not 0."""
        first = (f"filled {self.filled} reviewed_label value(s) in {self.list_path} from {self.export_path} (Label Studio {self.format} export)"
                 + (f", {self.replaced} replacing an earlier decision" if self.replaced else ""))
        notes = [
            (self.unchanged, "row(s) already had the annotated label"),
            (self.not_annotated, "task(s) not annotated"),
            (self.cancelled, "cancelled (skipped) annotation(s) ignored"),
            (self.several, "task(s) had several annotations: took the most recent"),
            (self.not_exported, "listed row(s) not in the export: left as they were"),
        ]
        return "\n".join([first] + [f"{n} {what}" for n, what in notes if n])


def import_reviews(export_file: str | Path, into: str | Path, *, root: str | Path | None = None) -> ImportResult:
    """Fill the reviewed_label of the list `into` (a CSV or its run directory) from a Label Studio
    export of its tasks; rows are matched by data.path. Checks every annotation before writing."""
    export_file = Path(export_file)
    review = open_list(into, root)
    fmt, records = read_export(export_file)
    listed = {}
    for p in review.table["path"]:
        listed[p] = p
        listed.setdefault(unneutralise(p), p)
    names = {**_choice_names(review.classes), **{c: c for c in review.classes}, DROP: DROP}  # Choice value -> class
    chosen: dict[str, list[Annotation]] = {}
    cancelled = 0
    for task, path, made, skipped in records:
        if path not in listed:
            raise DataCleanerError(
                f"{export_file}: task {task} is {path!r}, which {review.path} does not list; nothing was imported: "
                "import the export of the project made from this list (--into the list it was exported from)")
        cancelled += skipped
        found = chosen.setdefault(listed[path], [])
        for a in made:
            if a.label not in names:
                raise DataCleanerError(
                    f"{export_file}: task {task} ({path}) chose {a.label!r}, which is not a class of {review.path}: expected one of "
                    f"{', '.join(review.classes)} or {DROP}; nothing was imported: fix that annotation in Label Studio and export again")
            found.append(dataclasses.replace(a, label=names[a.label]))
    current = dict(zip(review.table["path"], review.table["reviewed_label"].map(unneutralise)))
    decisions, unchanged = {}, 0
    for p, made in chosen.items():
        if made:
            latest = max(made, key=lambda a: a.order)
            if current[p] == latest.label:
                unchanged += 1
            else:
                decisions[p] = Decision(latest.label, latest.by, latest.at)
    previous = record(review.path, decisions)[1] if decisions else {}
    return ImportResult(
        list_path=review.path, export_path=export_file, format=fmt, filled=len(decisions),
        replaced=sum(1 for d in previous.values() if d.label), unchanged=unchanged,
        not_annotated=sum(1 for a in chosen.values() if not a), cancelled=cancelled,
        several=sum(1 for a in chosen.values() if len(a) > 1), not_exported=len(review.table) - len(chosen),
    )


def read_export(path: Path) -> tuple[str, list[tuple[str, str, list[Annotation], int]]]:
    """(format, [(task id, path, its usable annotations, how many were cancelled)]) of an export,
    the format told by the content: a JSON list of tasks with `data` and `annotations` (JSON),
    a JSON list of flat records (JSON_MIN: one per annotation, or per task without one), or CSV."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataCleanerError(f"cannot read {path}: {exc}; give Label Studio's JSON, JSON_MIN or CSV export file") from None
    if not text.lstrip().startswith(("[", "{")):
        return "CSV", _flat_records(path, _read_csv(path))
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise DataCleanerError(f"{path} is not valid JSON ({exc}); export the project again as JSON, JSON_MIN or CSV") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DataCleanerError(f"{path} is not a Label Studio export (a JSON list of tasks); export the project as JSON, JSON_MIN or CSV")
    try:
        if any(isinstance(i.get("data"), dict) or "annotations" in i for i in items):
            return "JSON", [_full_task(path, i) for i in items]
        return "JSON_MIN", _flat_records(path, items)
    except (AttributeError, TypeError):  # a hand-edited file: fields of the wrong shape
        raise DataCleanerError(f"{path} does not have the shape of Label Studio's JSON or JSON_MIN export; export the project again") from None


def _read_csv(path: Path) -> list[dict]:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataCleanerError(f"{path} is not a readable CSV ({str(exc).splitlines()[0]}); export the project again as JSON, JSON_MIN or CSV") from None
    return table.to_dict("records")


def _full_task(path: Path, task: dict) -> tuple[str, str, list[Annotation], int]:
    """One task of a JSON export: its non-cancelled annotations that chose something."""
    tid = task.get("id", "?")
    listed = _listed_path(path, tid, (task.get("data") or {}).get("path"))
    made, cancelled = [], 0
    for a in task.get("annotations") or []:
        if a.get("was_cancelled"):
            cancelled += 1
            continue
        choices = [r.get("value", {}).get("choices") for r in a.get("result") or [] if r.get("type") == "choices"]
        if not choices:
            continue
        if len(choices) > 1 or not isinstance(choices[0], list) or len(choices[0]) != 1:
            raise DataCleanerError(f"{path}: task {tid} ({listed}) chose {choices}: one label per image; nothing was imported: fix that annotation in Label Studio")
        made.append(_annotation(choices[0][0], a.get("completed_by"), a, a.get("id")))
    return str(tid), listed, made, cancelled


def _flat_records(path: Path, records: list[dict]) -> list[tuple[str, str, list[Annotation], int]]:
    """JSON_MIN or CSV rows: each the task's data, the choice under CONTROL and the annotation's
    annotator, annotation_id, created_at and updated_at; a task without one has no choice."""
    out = []
    for r in records:
        tid = r.get("id", "?")
        listed = _listed_path(path, tid, r.get("path"))
        choice = r.get(CONTROL)
        if choice is not None and not isinstance(choice, str):
            raise DataCleanerError(f"{path}: task {tid} ({listed}) chose {choice}: one label per image; nothing was imported: fix that annotation in Label Studio")
        made = [_annotation(choice, r.get("annotator"), r, r.get("annotation_id"))] if choice else []
        out.append((str(tid), listed, made, 0))
    return out


def _listed_path(path: Path, task, listed) -> str:
    if not isinstance(listed, str) or not listed:
        raise DataCleanerError(f"{path}: task {task} has no path field; import-reviews reads exports of tasks written by `datacleaner export`")
    return listed


def _annotation(choice: str, annotator, a: dict, annotation_id) -> Annotation:
    """An annotation's choice, who made it (an email as exported; a user ID as label-studio:<id>;
    else label-studio) and when (ISO UTC; now() if the export does not say)."""
    if isinstance(annotator, dict):
        annotator = annotator.get("email") or annotator.get("id")
    by = str(annotator) if annotator not in (None, "") else ""
    by = f"label-studio:{by}" if by.isdigit() else by or "label-studio"
    when = _utc(a.get("updated_at")) or _utc(a.get("created_at"))
    try:
        number = int(annotation_id)
    except (TypeError, ValueError):
        number = -1
    return Annotation(
        label=unneutralise(choice), by=by, at=when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else now(),
        order=(when or datetime.min.replace(tzinfo=timezone.utc), number),
    )


def _utc(stamp) -> datetime | None:
    """An export's time stamp (ISO 8601, 'Z' or an offset; naive = UTC) in UTC, or None."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        t = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
