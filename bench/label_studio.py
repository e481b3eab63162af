"""The Label Studio round trip against a real Label Studio: clean -> export -> label -> export in
JSON, JSON_MIN and CSV -> import-reviews -> apply -> undo, each step checked.

    .venv/bin/python bench/label_studio.py [--work DIR]

The first run needs PyPI: it installs label-studio (LABEL_STUDIO) into its own venv under .bench/ (its
pinned dependencies clash with ours). Label Studio runs on 127.0.0.1 with a throwaway data dir and serves
the images as local files. The run is a real `clean` (cpu profile, weights from ../shared/weights) of 120
digit scans with 10% of labels flipped and one unreadable file, the class of the 3s named `$3`;
annotations go through the REST API. Prints step, result, seconds; exits 1 if a check fails. See
docs/label_studio.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

from harness.internals import choice_value, write_noisy_digits
from paths import ROOT, WEIGHTS

LS_VENV = ROOT / ".bench" / "label-studio-venv"
LABEL_STUDIO = "label-studio==1.23.2"
DROP = "__drop__"
DATACLEANER = [sys.executable, "-m", "datacleaner"]
DOLLAR_CLASS = "$3"


class Failed(Exception):
    """A check did not hold: the message says which and what was seen."""


class Bench:
    """Runs steps, times them and prints the table; a failing step stops the run."""

    def __init__(self):
        self.rows: list[tuple[str, str, float]] = []

    def step(self, name: str, fn, *args):
        t = time.perf_counter()
        try:
            value, result = fn(*args)
        except Failed as exc:
            self.rows.append((name, f"FAIL: {exc}", time.perf_counter() - t))
            raise
        self.rows.append((name, result, time.perf_counter() - t))
        return value

    def print(self):
        width = max(len(n) for n, _, _ in self.rows)
        print(f"\n{'step':{width}s}  {'seconds':>7s}  result")
        for name, result, seconds in self.rows:
            print(f"{name:{width}s}  {seconds:7.1f}  {result}")


def check(ok: bool, message: str):
    if not ok:
        raise Failed(message)


def run(cmd: list, **kw) -> str:
    """Run a command; its output, or Failed with its last lines."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode:
        raise Failed(f"{' '.join(map(str, cmd[:4]))} ... exited {p.returncode}: {(p.stderr or p.stdout).strip()[-800:]}")
    return p.stdout


def install():
    """label-studio in its own venv, unless already there."""
    exe = LS_VENV / "bin" / "label-studio"
    if not exe.exists():
        run([sys.executable, "-m", "venv", LS_VENV])
        run([LS_VENV / "bin" / "pip", "install", "-q", LABEL_STUDIO])
        how = "installed"
    else:
        how = "present"
    version = run([LS_VENV / "bin" / "python", "-c", "import importlib.metadata as m; print(m.version('label-studio'))"]).strip()
    return exe, f"{how}: label-studio {version} in {LS_VENV.relative_to(ROOT)}"


def make_run(work: Path):
    """A real review list: noisy digits + one unreadable file, cleaned with the 'cpu' profile."""
    data, run_dir = work / "data", work / "run"
    write_noisy_digits(data, noise=0.1, seed=1, per_class=30, classes=[0, 1, 3, 7])
    (data / "3").rename(data / DOLLAR_CLASS)  # a class name Label Studio would read as task data
    (data / "1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    run(DATACLEANER + ["clean", data, "--out", run_dir, "--config", "cpu", "--weights-dir", WEIGHTS, "--quiet"])
    rows = pd.read_csv(run_dir / "review.csv", dtype=str, keep_default_na=False)
    check((rows["issue"] == "unreadable").sum() == 1, "the review list should hold the unreadable file")
    return (data, run_dir), f"{len(rows)} rows in review.csv"


def export(run_dir: Path, work: Path):
    run(DATACLEANER + ["export", run_dir, "--format", "label-studio", "--out", work / "tasks.json"])
    tasks = json.loads((work / "tasks.json").read_text())
    check(len(tasks) == len(pd.read_csv(run_dir / "review.csv")), "one task per listed row")
    check((work / "tasks.labeling.xml").is_file(), "no labeling config beside tasks.json")
    return tasks, f"{len(tasks)} tasks + tasks.labeling.xml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudio:
    """A Label Studio server of our own and its REST API (legacy token auth)."""

    def __init__(self, exe: Path, work: Path, document_root: Path):
        self.port, self.token = free_port(), secrets.token_hex(20)
        self.url = f"http://127.0.0.1:{self.port}"
        self.email = "bench@example.org"
        home = work / "label-studio"
        home.mkdir()
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(home),
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
            "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
            "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        }
        self.log = open(work / "label-studio.log", "w")
        self.proc = subprocess.Popen(
            [exe, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port), "--data-dir", home,
             "--username", self.email, "--password", secrets.token_hex(12), "--user-token", self.token, "--enable-legacy-api-token"],
            cwd=home, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait(self, timeout: float = 300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check(self.proc.poll() is None, f"Label Studio exited {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return None, f"up on {self.url} as {self.api('GET', '/api/current-user/whoami')['email']}"
            except OSError:
                time.sleep(1)
        raise Failed(f"Label Studio not up after {timeout:.0f} s; see {self.log.name}")

    def request(self, method: str, path: str, body=None) -> tuple[int, bytes, str]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Authorization": f"Token {self.token}"})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raise Failed(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from None

    def api(self, method: str, path: str, body=None):
        return json.loads(self.request(method, path, body)[1])

    def stop(self):
        """Stop the server and anything it started (its own process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def set_up(ls: LabelStudio, work: Path, data: Path, tasks: list):
    """Project from the exported config, a Local Files storage at the dataset, the tasks imported."""
    config = (work / "tasks.labeling.xml").read_text()
    project = ls.api("POST", "/api/projects", {"title": "datacleaner review", "label_config": config})["id"]
    ls.api("POST", "/api/storages/localfiles", {"project": project, "path": str(data), "title": "dataset", "use_blob_urls": True})
    imported = ls.api("POST", f"/api/projects/{project}/import", tasks)
    check(imported["task_count"] == len(tasks) and imported["prediction_count"] == sum("predictions" in t for t in tasks),
          f"import said {imported}")
    return project, f"project {project}: {imported['task_count']} tasks, {imported['prediction_count']} predictions"


def stored_tasks(ls: LabelStudio, project: int, view: int | None = None) -> list[dict]:
    """The project's tasks as the Data Manager lists them (in `view`'s order)."""
    query = f"project={project}&page_size=10000" + (f"&view={view}" if view else "")
    return ls.api("GET", f"/api/tasks?{query}")["tasks"]


def check_serving_and_order(ls: LabelStudio, project: int, data: Path, tasks: list):
    """An image loads from its task URL, and sorting by prediction score ascending puts the
    lowest label_quality first and the unreadable file (no prediction) last."""
    first = stored_tasks(ls, project)[0]["data"]
    status, body, kind = ls.request("GET", first["image"])
    check(status == 200 and body == (data / first["path"]).read_bytes(), f"{first['image']} served {status} {kind}")
    view = ls.api("POST", "/api/dm/views", {"project": project, "data": {"ordering": ["tasks:predictions_score"]}})["id"]
    ordered = [t["data"] for t in stored_tasks(ls, project, view)]
    lowest = min((t["data"] for t in tasks if "predictions" in t), key=lambda d: d["label_quality"])
    check(ordered[0]["label_quality"] == lowest["label_quality"], f"first by score: {ordered[0]['path']}, expected {lowest['path']}")
    check(ordered[-1]["issue"] == "unreadable", f"last by score: {ordered[-1]['path']}")
    return None, f"image served ({kind}); by score: {ordered[0]['path']} first, {ordered[-1]['path']} last"


def annotate(ls: LabelStudio, project: int, classes: list[str]):
    """Annotate through the API; returns {path: label expected in reviewed_label}."""
    tasks = stored_tasks(ls, project)
    by_path = {t["data"]["path"]: t for t in tasks}
    judged = [t["data"] for t in tasks if t["data"]["suggested_label"] and t["data"]["suggested_label"] != t["data"]["given_label"]]
    unreadable = next(t["data"] for t in tasks if t["data"]["issue"] == "unreadable")

    def submit(row, label=None):  # the choice as the annotator clicks it: the config's value
        result = [] if label is None else [{"from_name": "reviewed_label", "to_name": "image", "type": "choices",
                                            "value": {"choices": [choice_value(label)]}}]
        ls.api("POST", f"/api/tasks/{by_path[row['path']]['id']}/annotations", {"result": result, "was_cancelled": label is None, "lead_time": 3.0})

    expected = {}
    accept = sorted(judged, key=lambda d: d["suggested_label"] != DOLLAR_CLASS)[:3]  # one of them into $3, if any
    judged = [d for d in judged if d not in accept]
    other, twice, cancelled = judged[:2], judged[2], judged[3]
    for row in accept:
        submit(row, row["suggested_label"])
        expected[row["path"]] = row["suggested_label"]
    for row in other:
        label = next(c for c in classes if c not in (row["given_label"], row["suggested_label"]))
        submit(row, label)
        expected[row["path"]] = label
    submit(unreadable, DROP)
    expected[unreadable["path"]] = DROP
    submit(twice, twice["given_label"])
    time.sleep(1.1)  # the later annotation must be later by the export's time stamps
    later = next(c for c in classes if c != twice["given_label"])
    submit(twice, later)
    expected[twice["path"]] = later
    submit(cancelled)
    return expected, f"{len(expected)} tasks labeled (3 accepted, 2 other class, 1 drop, 1 twice), 1 cancelled"


def dollar_labels(ls: LabelStudio, project: int):
    """The project's labels as Label Studio parsed the exported config (＄3 a label of its own), against
    a config with the class written as it is ($3: read as task data, so not a label)."""
    def labels(config_of):
        parsed = ls.api("GET", f"/api/projects/{config_of}")["parsed_label_config"]["reviewed_label"]
        return parsed.get("labels", []), bool(parsed.get("dynamic_labels"))

    ours, ours_dynamic = labels(project)
    check(choice_value(DOLLAR_CLASS) in ours and not ours_dynamic, f"exported config parsed as {ours} (dynamic: {ours_dynamic})")
    raw = (ls.api("GET", f"/api/projects/{project}")["label_config"]).replace(choice_value(DOLLAR_CLASS), DOLLAR_CLASS)
    other = ls.api("POST", "/api/projects", {"title": "$ as it is", "label_config": raw})["id"]
    theirs, theirs_dynamic = labels(other)
    ls.request("DELETE", f"/api/projects/{other}")  # 204, no body
    return None, (f"exported: {choice_value(DOLLAR_CLASS)} a label (labels {ours}); written as {DOLLAR_CLASS}: labels {theirs}, "
                  f"dynamic {theirs_dynamic}")


def export_formats(ls: LabelStudio, project: int, work: Path):
    files = {}
    for fmt, name in [("JSON", "export.json"), ("JSON_MIN", "export_min.json"), ("CSV", "export.csv")]:
        status, body, _ = ls.request("GET", f"/api/projects/{project}/export?exportType={fmt}&download_all_tasks=true")
        check(status == 200 and body, f"export {fmt}: HTTP {status}, {len(body)} bytes")
        (work / name).write_bytes(body)
        files[fmt] = work / name
    return files, ", ".join(f"{f} {p.stat().st_size} B" for f, p in files.items())


def import_each(files: dict, run_dir: Path, work: Path, expected: dict, annotator: str):
    """import-reviews of each format into its own copy of the list: exactly the expected rows filled."""
    lines = []
    for fmt, path in files.items():
        into = work / f"run-{fmt.lower()}"
        into.mkdir()
        for name in ("review.csv", "run.json"):
            shutil.copy2(run_dir / name, into / name)
        said = run(DATACLEANER + ["import-reviews", path, "--into", into])
        table = pd.read_csv(into / "review.csv", dtype=str, keep_default_na=False)
        filled = table[table["reviewed_label"] != ""]
        got = dict(zip(filled["path"], filled["reviewed_label"]))
        check(got == expected, f"{fmt}: filled {got}, expected {expected}")
        check(set(filled["reviewed_by"]) == {annotator}, f"{fmt}: reviewed_by {set(filled['reviewed_by'])}")
        lines.append(f"{fmt}: {said.splitlines()[0].split(' in ')[0]}")
    return work / "run-json" / "review.csv", "; ".join(lines) + " - each exactly as annotated"


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".datacleaner" not in p.parts}


def apply_and_undo(review_csv: Path, data: Path, work: Path, expected: dict):
    """apply --yes on a copy of the dataset moves/drops exactly the annotated images; undo restores it."""
    copy = work / "data-copy"
    shutil.copytree(data, copy)
    before = tree(copy)
    run(DATACLEANER + ["apply", review_csv, "--dataset", copy, "--yes"])
    after = tree(copy)
    moved = {p: f"{label}/{p.split('/', 1)[1]}" for p, label in expected.items() if label != DROP and label != p.split("/")[0]}
    dropped = {p for p, label in expected.items() if label == DROP}
    check(set(before) - set(after) == set(moved) | dropped, f"gone: {sorted(set(before) - set(after))}")
    check(set(after) - set(before) == set(moved.values()), f"new: {sorted(set(after) - set(before))}")
    check(all(after[new] == before[old] for old, new in moved.items()), "moved files changed")
    check(all((copy / ".datacleaner" / "quarantine" / p).is_file() for p in dropped), "dropped file not in quarantine")
    run(DATACLEANER + ["undo", "--dataset", copy])
    check(tree(copy) == before, "undo did not restore the dataset")
    return None, f"{len(moved)} moved, {len(dropped)} dropped, undo restored all {len(before)} files"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="keep the work files here (default: a temporary folder, removed)")
    args = parser.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="ls-bench-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    bench, ls = Bench(), None
    try:
        exe = bench.step("install label-studio", install)
        data, run_dir = bench.step("clean (cpu profile)", make_run, work)
        tasks = bench.step("datacleaner export", export, run_dir, work)
        ls = LabelStudio(exe, work, data.parent)
        bench.step("start label-studio", ls.wait)
        project = bench.step("project + storage + tasks", set_up, ls, work, data, tasks)
        bench.step("images + score order", check_serving_and_order, ls, project, data, tasks)
        bench.step("a class named $3", dollar_labels, ls, project)
        classes = json.loads((run_dir / "run.json").read_text())["classes"]
        expected = bench.step("annotate via API", annotate, ls, project, [str(c) for c in classes])
        files = bench.step("export JSON/JSON_MIN/CSV", export_formats, ls, project, work)
        annotator = f"label-studio:{ls.api('GET', '/api/current-user/whoami')['id']}"
        review_csv = bench.step("import-reviews x3", import_each, files, run_dir, work, expected, annotator)
        bench.step("apply --yes + undo", apply_and_undo, review_csv, data, work, expected)
        ok = True
    except Failed:
        ok = False
    finally:
        if ls is not None:
            ls.stop()
        bench.print()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("all checks passed" if ok else "FAILED", f"(work files: {work if args.work else 'removed'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
