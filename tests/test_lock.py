"""One command at a time on a run directory or a dataset: a second one stops at once and touches
nothing; a lock left by a killed process is taken over."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from datacleaner.cli import app
from datacleaner.errors import DataCleanerError
from datacleaner.lock import RUN_LOCK, exclusive

runner = CliRunner()
IN_USE = re.compile(r"(\S+) is in use by process (\d+) since (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def hold(lock_file: Path) -> subprocess.Popen:
    """Another process that takes `lock_file` and keeps it until killed."""
    code = (
        "import sys, time\nfrom datacleaner.lock import exclusive\n"
        f"with exclusive({str(lock_file)!r}):\n    print('held', flush=True)\n    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def snapshot(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_a_held_lock_refuses_at_once_and_a_dead_holders_lock_is_taken_over(tmp_path):
    lock = tmp_path / "run" / RUN_LOCK
    proc = hold(lock)
    try:
        started = time.time()
        with pytest.raises(DataCleanerError) as caught:
            with exclusive(lock, what="RUN"):
                pass
        assert time.time() - started < 2
        assert IN_USE.match(str(caught.value)).group(1, 2) == ("RUN", str(proc.pid))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    notes = []
    with exclusive(lock, on_takeover=notes.append):
        pass
    assert notes == [f"note: took over the lock left by process {proc.pid} (no longer running)"]
    with exclusive(lock, on_takeover=notes.append):  # released normally: nothing to take over
        pass
    assert len(notes) == 1


def test_a_second_clean_on_a_busy_run_directory_stops_and_the_first_finishes(noisy_digits, tmp_path):
    root, _ = noisy_digits
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "datacleaner", "clean", str(root), "--out", str(out), "-c", "small",
                              "--epochs", "2", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / RUN_LOCK).is_file() and (out / RUN_LOCK).stat().st_size):
        assert first.poll() is None, first.communicate()
        time.sleep(0.05)
    started = time.time()
    second = subprocess.run([sys.executable, "-m", "datacleaner", "clean", str(root), "--out", str(out), "-c", "small",
                             "--epochs", "2", "-q"], capture_output=True, text=True, timeout=120)
    assert second.returncode == 1, second.stderr
    assert time.time() - started < 30  # python start-up; the refusal itself is immediate
    line = second.stderr.strip()
    assert "\n" not in line and IN_USE.search(line).group(1, 2) == (str(out), str(first.pid)), line
    assert "datacleaner clean" in line
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert (out / "review.csv").is_file() and "flagged" in stdout
    assert (out / RUN_LOCK).read_text() == ""  # released


def test_rescore_and_select_refuse_a_busy_run_directory_without_touching_it(noisy_digits, tiny_config, tmp_path):
    root, _ = noisy_digits
    out = tmp_path / "run"
    r = runner.invoke(app, ["clean", str(root), "-c", str(tiny_config), "--epochs", "1", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    before = snapshot(out)
    proc = hold(out / RUN_LOCK)
    try:
        after_hold = snapshot(out)
        r = runner.invoke(app, ["rescore", str(out), "--tau", "0.9", "-q"])
        assert r.exit_code == 1 and IN_USE.search(r.output).group(2) == str(proc.pid), r.output
        r = runner.invoke(app, ["select", str(root), "--committee", str(tmp_path / "none"), "--production", "p.csv",
                                "--out", str(out), "-q"])
        assert r.exit_code == 1 and "is in use by process" in r.output, r.output
        assert snapshot(out) == after_hold
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert {p for p in before} == {p for p in after_hold}
    r = runner.invoke(app, ["rescore", str(out), "--tau", "0.9", "-q"])  # the killed holder's lock is taken over
    assert r.exit_code == 0, r.output


def test_apply_and_undo_refuse_a_busy_dataset(noisy_digits, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(noisy_digits[0], data)
    path = sorted((data / "1").glob("*.png"))[0].relative_to(data).as_posix()
    review = tmp_path / "review.csv"
    pd.DataFrame({"path": [path], "given_label": ["1"], "reviewed_label": ["7"]}).to_csv(review, index=False)
    proc = hold(data / ".datacleaner" / "lock")
    try:
        before = snapshot(data)
        r = runner.invoke(app, ["apply", str(review), "--dataset", str(data), "--yes"])
        assert r.exit_code == 1 and IN_USE.search(r.output).group(1, 2) == (str(data), str(proc.pid)), r.output
        r = runner.invoke(app, ["apply", str(review), "--dataset", str(data)])  # a dry run reads only: allowed
        assert r.exit_code == 0 and "would apply" in r.output
        assert snapshot(data) == before
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    r = runner.invoke(app, ["apply", str(review), "--dataset", str(data), "--yes"])
    assert r.exit_code == 0 and (data / "7" / Path(path).name).is_file(), r.output
    proc = hold(data / ".datacleaner" / "lock")
    try:
        r = runner.invoke(app, ["undo", "--dataset", str(data)])
        assert r.exit_code == 1 and "is in use by process" in r.output
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    r = runner.invoke(app, ["undo", "--dataset", str(data)])
    assert r.exit_code == 0 and (data / path).is_file()
