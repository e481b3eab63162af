"""The Label Studio round trip on real run outputs: the tasks and labeling config written, and
Label Studio's JSON, JSON_MIN and CSV exports read back into the list (then applied).

Exports here are built the way Label Studio 1.23.2 builds them (label_studio_sdk.converter: JSON
is the stored tasks; JSON_MIN one flat record per non-cancelled annotation, newest first, or per
task without annotations; CSV the same records, columns sorted, QUOTE_NONNUMERIC). The files
under assets/label_studio/ are real exports of a 4-task project made through Label Studio
1.23.2's API (bench/label_studio.py does the same on a real run): task 0/a.png accepted the
prediction 3, '=1/b c.png' was annotated 0 and later __drop__, 3/c.png was cancelled, 7/d.png
was not annotated; exported with download_all_tasks=true."""

import csv
import hashlib
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_run
from typer.testing import CliRunner

from datacleaner.apply import apply_review
from datacleaner.cli import app
from datacleaner.errors import DataCleanerError
from datacleaner.review.labelstudio import export_tasks, import_reviews, read_export
from datacleaner.review.lists import DROP, open_list
from datacleaner.tables import write_csv_atomic

ASSETS = Path(__file__).parent / "assets" / "label_studio"
runner = CliRunner()


def load(path):
    return json.loads(Path(path).read_text())


def reviewed(run):
    """{listed path: (reviewed_label, reviewed_by, reviewed_at)} of the rows that have a decision."""
    table = open_list(run).table
    return {r.path: (r.reviewed_label, r.reviewed_by, r.reviewed_at) for r in table.itertuples() if r.reviewed_label}


# --- exports as Label Studio writes them -------------------------------------------------------

def stamp(n):
    """Annotation n's time, as Label Studio writes it (microseconds, Z)."""
    return f"2026-05-04T10:{n // 60:02d}:{n % 60:02d}.123456Z"


def ls_json(tasks):
    """The JSON export of `tasks`: [(task data, [(annotation id, label or None if cancelled)])]."""
    out = []
    for tid, (data, annotations) in enumerate(tasks, start=1):
        out.append({
            "id": tid,
            "annotations": [{
                "id": aid, "completed_by": 1,
                "result": [] if label is None else [{"id": f"r{aid}", "type": "choices", "value": {"choices": [label]}, "origin": "manual",
                                                     "to_name": "image", "from_name": "reviewed_label"}],
                "was_cancelled": label is None, "ground_truth": False, "created_at": stamp(aid), "updated_at": stamp(aid),
                "draft_created_at": None, "lead_time": 2.5, "prediction": {}, "result_count": 0 if label is None else 1,
                "task": tid, "project": 1, "updated_by": 1, "parent_prediction": None, "parent_annotation": None,
            } for aid, label in annotations],
            "drafts": [], "predictions": [tid], "data": data, "meta": {}, "created_at": stamp(0), "updated_at": stamp(0),
            "inner_id": tid, "total_annotations": sum(label is not None for _, label in annotations),
            "cancelled_annotations": sum(label is None for _, label in annotations), "total_predictions": 1, "project": 1,
        })
    return out


def ls_json_min(tasks):
    """JSON_MIN: per task its non-cancelled annotations newest first, or one record without a choice
    if it has no annotation at all (a task with cancelled ones only is left out)."""
    out = []
    for tid, (data, annotations) in enumerate(tasks, start=1):
        kept = sorted([a for a in annotations if a[1] is not None], key=lambda a: stamp(a[0]), reverse=True)
        if not annotations:
            out.append({**data, "id": tid, "annotator": None, "annotation_id": None, "created_at": None, "updated_at": None, "lead_time": None})
        for aid, label in kept:
            out.append({**data, "id": tid, "reviewed_label": label, "annotator": 1, "annotation_id": aid,
                        "created_at": stamp(aid), "updated_at": stamp(aid), "lead_time": 2.5})
    return out


def write_export(fmt, tasks, path):
    """Write `tasks` as Label Studio's `fmt` export to `path`."""
    if fmt == "JSON":
        path.write_text(json.dumps(ls_json(tasks)))
    elif fmt == "JSON_MIN":
        path.write_text(json.dumps(ls_json_min(tasks), indent=2))
    else:
        records = [{**r, "annotator": "" if r["annotator"] is None else str(r["annotator"])} for r in ls_json_min(tasks)]
        keys = sorted(set().union(*records))
        with open(path, "w", encoding="utf8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, quoting=csv.QUOTE_NONNUMERIC)
            writer.writeheader()
            writer.writerows(records)
    return path


def annotate(tasks, classes):
    """Annotations for a review list's tasks: one accepts the suggestion, one picks another class,
    the unreadable file is dropped, one is annotated twice (the later one counts), one cancelled,
    one left alone. Returns ([(data, annotations)], {path: expected reviewed_label})."""
    data = [t["data"] for t in tasks]
    unreadable = next(d for d in data if d["issue"] == "unreadable")
    judged = [d for d in data if d["suggested_label"] and d["suggested_label"] != d["given_label"]]
    accept, other, twice, cancelled, alone = judged[:5]
    other_label = next(c for c in classes if c not in (other["given_label"], other["suggested_label"]))
    later = next(c for c in classes if c != twice["given_label"])
    plan = [
        (accept, [(1, accept["suggested_label"])]),
        (other, [(2, other_label)]),
        (unreadable, [(3, DROP)]),
        (twice, [(4, later), (5, twice["given_label"]), (9, later)]),  # 5 is older than 9: 9 wins
        (cancelled, [(6, None)]),
        (alone, []),
    ]
    expected = {accept["path"]: accept["suggested_label"], other["path"]: other_label, unreadable["path"]: DROP, twice["path"]: later}
    return plan, expected


# --- export -------------------------------------------------------------------------------------

def test_export_writes_tasks_in_list_order_with_scored_predictions(reviewable_run, tmp_path):
    data, run, _ = reviewable_run
    result = export_tasks(run, tmp_path / "tasks.json")
    review = open_list(run)
    tasks = load(result.tasks_path)
    assert result.tasks == len(tasks) == len(review.table)
    assert [t["data"]["path"] for t in tasks] == review.table["path"].tolist()
    for task, row in zip(tasks, review.table.itertuples()):
        assert task["data"]["image"] == f"/data/local-files/?d={data.name}/{row.path}"
        assert task["data"]["given_label"] == row.given_label
        assert {c: task["data"][c] for c in review.vote_columns} == {c: getattr(row, c) for c in review.vote_columns}
        if row.issue == "unreadable":  # never judged: no prediction, sorts last like in the list
            assert "predictions" not in task and "unreadable" in task["data"]["summary"]
            continue
        [prediction] = task["predictions"]
        assert prediction["model_version"] == "datacleaner"
        assert prediction["score"] == pytest.approx(float(row.label_quality)) == task["data"]["label_quality"]
        assert prediction["result"] == [{"from_name": "reviewed_label", "to_name": "image", "type": "choices",
                                         "value": {"choices": [row.suggested_label]}}]
    assert any(t["data"]["issue"] == "unreadable" for t in tasks)
    assert "checksum" not in tasks[0]["data"] and "reviewed_label" not in tasks[0]["data"]


def test_labeling_config_lists_every_class_and_drop(reviewable_run, tmp_path):
    _, run, _ = reviewable_run
    result = export_tasks(run, tmp_path / "out" / "tasks.json")
    assert result.config_path == tmp_path / "out" / "tasks.labeling.xml"
    view = ET.fromstring(result.config_path.read_text())
    assert view.find("Image").attrib == {"name": "image", "value": "$image", "zoom": "true"}
    choices = view.find("Choices")
    assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("reviewed_label", "image", "single-radio")
    assert [c.get("value") for c in choices.findall("Choice")] == open_list(run).classes + [DROP]


def test_export_of_a_selection_with_a_url_prefix(selection_run, tmp_path):
    _, run, _ = selection_run
    tasks = load(export_tasks(run, tmp_path / "tasks.json", image_url_prefix="http://127.0.0.1:8000/pool").tasks_path)
    table = open_list(run).table
    assert [t["data"]["path"] for t in tasks] == table["path"].tolist()
    spaced = next(t for t in tasks if " " in t["data"]["path"])
    assert spaced["data"]["image"] == "http://127.0.0.1:8000/pool/" + spaced["data"]["path"].replace(" ", "%20")
    for task, row in zip(tasks, table.itertuples()):
        if row.reason == "unreadable":
            assert "predictions" not in task
            continue
        assert task["predictions"][0]["score"] == pytest.approx(1 - float(row.disagreement))
        assert task["data"]["production_label"] == row.production_label and task["data"]["in_budget"] == (row.in_budget == "True")
    scored = [t for t in tasks if "predictions" in t]
    assert min(scored, key=lambda t: t["predictions"][0]["score"]) is scored[0]  # most disagreement = lowest score


# --- import -------------------------------------------------------------------------------------

def test_real_label_studio_exports_are_read_alike():
    """The three formats of the same real project give the same latest annotation per path."""
    found = {}
    for name, fmt in [("export.json", "JSON"), ("export_min.json", "JSON_MIN"), ("export.csv", "CSV")]:
        got, records = read_export(ASSETS / name)
        assert got == fmt
        latest = {}
        for _, path, annotations, _ in records:
            for a in annotations:
                if path not in latest or a.order > latest[path].order:
                    latest[path] = a
        found[fmt] = {p: (a.label, a.by, a.at) for p, a in latest.items()}
        assert {p for _, p, _, _ in records} >= {"0/a.png", "=1/b c.png", "7/d.png"}
    assert found["JSON"] == found["JSON_MIN"] == found["CSV"]
    assert {p: v[0] for p, v in found["JSON"].items()} == {"0/a.png": "3", "=1/b c.png": DROP}
    assert found["JSON"]["0/a.png"][1:] == ("label-studio:1", "2026-11-25T18:03:18Z")
    cancelled = {p: c for _, p, _, c in read_export(ASSETS / "export.json")[1]}
    assert cancelled["3/c.png"] == 1


@pytest.mark.parametrize("fmt", ["JSON", "JSON_MIN", "CSV"])
def test_import_fills_exactly_the_annotated_rows(reviewable_run, tmp_path, fmt):
    _, run, _ = reviewable_run
    mine = copy_run(run, tmp_path / "run")
    tasks = load(export_tasks(mine, tmp_path / "tasks.json").tasks_path)
    plan, expected = annotate(tasks, open_list(mine).classes)
    export = write_export(fmt, plan, tmp_path / f"export.{'csv' if fmt == 'CSV' else 'json'}")
    result = import_reviews(export, mine)
    assert result.format == fmt and result.filled == 4 and result.several == 1
    assert result.not_annotated == (2 if fmt == "JSON" else 1)  # JSON_MIN and CSV leave cancelled-only tasks out
    assert result.cancelled == (1 if fmt == "JSON" else 0)
    assert result.not_exported == len(tasks) - len(plan) + (0 if fmt == "JSON" else 1)
    got = reviewed(mine)
    assert {p: v[0] for p, v in got.items()} == expected
    twice = plan[3][0]["path"]
    assert got[twice][1:] == ("label-studio:1", stamp(9)[:19] + "Z")
    assert "several annotations: took the most recent" in result.describe()

    again = import_reviews(export, mine)  # idempotent: nothing to write, decisions kept
    assert (again.filled, again.unchanged) == (0, 4) and reviewed(mine) == got


def test_import_keeps_annotator_emails_and_replaces_earlier_decisions(reviewable_run, tmp_path):
    _, run, _ = reviewable_run
    mine = copy_run(run, tmp_path / "run")
    tasks = load(export_tasks(mine, tmp_path / "tasks.json").tasks_path)
    plan, _ = annotate(tasks, open_list(mine).classes)
    first = write_export("JSON", plan[:1], tmp_path / "first.json")
    import_reviews(first, mine)
    exported = ls_json([(plan[0][0], [(1, DROP)])])
    exported[0]["annotations"][0]["completed_by"] = {"id": 7, "email": "ann@example.org"}
    (tmp_path / "second.json").write_text(json.dumps(exported))
    result = import_reviews(tmp_path / "second.json", mine)
    assert (result.filled, result.replaced) == (1, 1)
    assert reviewed(mine)[plan[0][0]["path"]][:2] == (DROP, "ann@example.org")


def test_a_choice_that_is_no_class_is_refused_and_nothing_written(reviewable_run, tmp_path):
    _, run, _ = reviewable_run
    mine = copy_run(run, tmp_path / "run")
    tasks = load(export_tasks(mine, tmp_path / "tasks.json").tasks_path)
    plan, _ = annotate(tasks, open_list(mine).classes)
    plan[1] = (plan[1][0], [(2, "kitten")])  # the first annotation is fine, the second is not
    before = (mine / "review.csv").read_bytes()
    export = write_export("JSON_MIN", plan, tmp_path / "export.json")
    with pytest.raises(DataCleanerError) as err:
        import_reviews(export, mine)
    message = str(err.value)
    assert str(export) in message and plan[1][0]["path"] in message and "'kitten'" in message
    assert ", ".join(open_list(mine).classes) in message and "nothing was imported" in message
    assert (mine / "review.csv").read_bytes() == before


def test_a_path_the_list_does_not_hold_is_refused(reviewable_run, tmp_path):
    _, run, _ = reviewable_run
    mine = copy_run(run, tmp_path / "run")
    before = (mine / "review.csv").read_bytes()
    listed = open_list(mine).table["path"][0]
    export = write_export("CSV", [({"path": listed}, [(1, "0")]), ({"path": "elsewhere/x.png"}, [(2, "0")])], tmp_path / "e.csv")
    with pytest.raises(DataCleanerError, match="'elsewhere/x.png', which .*review.csv does not list"):
        import_reviews(export, mine)
    assert (mine / "review.csv").read_bytes() == before


def test_bad_export_files_are_one_line_errors(reviewable_run, tmp_path):
    _, run, _ = reviewable_run
    mine = copy_run(run, tmp_path / "run")
    (tmp_path / "broken.json").write_text("[{")
    (tmp_path / "nopath.json").write_text(json.dumps([{"id": 3, "reviewed_label": "0"}]))
    for name, expect in [("broken.json", "not valid JSON"), ("nopath.json", "task 3 has no path field")]:
        r = runner.invoke(app, ["import-reviews", str(tmp_path / name), "--into", str(mine)])
        assert r.exit_code == 1 and expect in r.output and str(tmp_path / name) in r.output and "Traceback" not in r.output


def test_cli_round_trip_then_apply_changes_exactly_the_annotated_images(reviewable_run, tmp_path):
    data, run, _ = reviewable_run
    mine = copy_run(run, tmp_path / "run")
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    r = runner.invoke(app, ["export", str(mine), "--format", "label-studio", "--out", str(tmp_path / "tasks.json")])
    assert r.exit_code == 0 and "tasks.labeling.xml" in r.output
    plan, expected = annotate(load(tmp_path / "tasks.json"), open_list(mine).classes)
    export = write_export("JSON", plan, tmp_path / "export.json")
    r = runner.invoke(app, ["import-reviews", str(export), "--into", str(mine / "review.csv"), "--root", str(copy)])
    assert r.exit_code == 0 and "filled 4 reviewed_label value(s)" in r.output, r.output

    def tree(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in root.rglob("*") if p.is_file() and ".datacleaner" not in p.parts}

    before = tree(copy)
    plan_done = apply_review(mine / "review.csv", copy, yes=True)
    assert not plan_done.refused
    after = tree(copy)
    moved = {p: f"{label}/{p.split('/', 1)[1]}" for p, label in expected.items() if label != DROP}
    assert set(before) - set(after) == set(expected)
    assert set(after) - set(before) == set(moved.values())
    assert all(after[new] == before[old] for old, new in moved.items())
    assert (copy / ".datacleaner" / "quarantine" / next(p for p, v in expected.items() if v == DROP)).is_file()


def run_with_classes(run, dest, extra: list[str]):
    """A copy of a run's lists whose classes are the run's and `extra`."""
    mine = copy_run(run, dest)
    record = load(mine / "run.json")
    record["classes"] = record["classes"] + extra
    (mine / "run.json").write_text(json.dumps(record))
    return mine


def test_formula_like_class_and_path_values(reviewable_run, tmp_path):
    """A class and a path a spreadsheet would run as formulas: raw in Label Studio, XML-escaped in
    the config, neutralised again in the list."""
    mine = run_with_classes(reviewable_run[1], tmp_path / "run", ["=SUM(A1)", 'a<b>&"c"'])
    table = pd.read_csv(mine / "review.csv", dtype=str, keep_default_na=False)
    table.loc[0, "path"] = "=HYPERLINK(x).png"
    write_csv_atomic(table, mine / "review.csv")  # written neutralised, as datacleaner writes lists
    assert open_list(mine).table.loc[0, "path"] == "'=HYPERLINK(x).png"

    result = export_tasks(mine, tmp_path / "tasks.json")
    tasks = load(result.tasks_path)
    assert tasks[0]["data"]["path"] == "=HYPERLINK(x).png"
    assert tasks[0]["data"]["image"].endswith("/%3DHYPERLINK%28x%29.png")
    values = [c.get("value") for c in ET.fromstring(result.config_path.read_text()).iter("Choice")]
    assert values[-3:] == ["=SUM(A1)", 'a<b>&"c"', DROP]

    plan = [(tasks[0]["data"], [(1, "=SUM(A1)")]), (tasks[1]["data"], [(2, 'a<b>&"c"')])]
    import_reviews(write_export("CSV", plan, tmp_path / "e.csv"), mine)
    raw = pd.read_csv(mine / "review.csv", dtype=str, keep_default_na=False).set_index("path")["reviewed_label"]
    assert raw["'=HYPERLINK(x).png"] == "'=SUM(A1)"
    assert raw[tasks[1]["data"]["path"]] == 'a<b>&"c"'
    assert reviewed(mine)["'=HYPERLINK(x).png"][0] == "'=SUM(A1)"

    neutralised = [({**tasks[0]["data"], "path": "'=HYPERLINK(x).png"}, [(3, DROP)])]  # the path as the list's CSV holds it
    assert import_reviews(write_export("JSON", neutralised, tmp_path / "n.json"), mine).replaced == 1


def test_a_class_that_starts_with_a_dollar_survives_the_round_trip(reviewable_run, tmp_path):
    """Label Studio reads `$name` as task data: such a class goes out with a full-width ＄ in the config
    and the predictions, and comes back as the class it is."""
    mine = run_with_classes(reviewable_run[1], tmp_path / "run", ["$price", "US$ 5"])
    table = pd.read_csv(mine / "review.csv", dtype=str, keep_default_na=False)
    row = table.index[table["suggested_label"] != ""][0]
    table.loc[row, "suggested_label"] = "$price"
    write_csv_atomic(table, mine / "review.csv")

    result = export_tasks(mine, tmp_path / "tasks.json")
    values = [c.get("value") for c in ET.fromstring(result.config_path.read_text()).iter("Choice")]
    assert values[-3:] == ["\uff04price", "US\uff04 5", DROP] and not any(v.startswith("$") for v in values)
    task = load(result.tasks_path)[row]
    assert task["predictions"][0]["result"][0]["value"]["choices"] == ["\uff04price"]  # one of the config's choices
    assert task["data"]["suggested_label"] == "$price"  # task data as it is

    tasks = load(result.tasks_path)
    plan = [(tasks[0]["data"], [(1, "\uff04price")]), (tasks[1]["data"], [(2, "US\uff04 5")])]
    for fmt in ("JSON", "JSON_MIN", "CSV"):
        import_reviews(write_export(fmt, plan, tmp_path / f"e-{fmt}.{'csv' if fmt == 'CSV' else 'json'}"), mine)
        assert [reviewed(mine)[t["data"]["path"]][0] for t in tasks[:2]] == ["$price", "US$ 5"], fmt

    record = load(mine / "run.json")
    record["classes"] = record["classes"] + ["\uff04price"]  # would look like $price in Label Studio
    (mine / "run.json").write_text(json.dumps(record))
    with pytest.raises(DataCleanerError, match=r"classes '\$price' and '＄price' would look the same in Label Studio"):
        export_tasks(mine, tmp_path / "again.json")
