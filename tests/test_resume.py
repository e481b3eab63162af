"""Interrupt `clean` with kill -9, run it again: finished members are not retrained and the
review list equals an uninterrupted run's (so the same seed gives the same list, whichever
process trained each member)."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd


def clean_cmd(root, cfg, out):
    return [sys.executable, "-m", "datacleaner", "clean", str(root), "-c", str(cfg), "--out", str(out), "-q"]


def test_kill_9_then_resume_matches_uninterrupted(few_digits, tiny_config, tmp_path):
    root, _ = few_digits
    out = tmp_path / "run"
    proc = subprocess.Popen(clean_cmd(root, tiny_config, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((out / "members").glob("*.safetensors"))) < 2:
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "members").glob("*.safetensors")}
    assert 2 <= len(finished) < 6
    assert not (out / "review.csv").exists()

    from datacleaner import clean  # the same job as the command, in this process: no second start-up

    resumed = clean(root, out, tiny_config)
    for name, mtime in finished.items():
        assert (out / "members" / name).stat().st_mtime_ns == mtime  # not retrained
    assert resumed.summary["members_trained"] <= 6 - 2

    fresh = clean(root, tmp_path / "fresh", tiny_config)
    assert fresh.summary["members_trained"] == 6
    a = pd.read_csv(out / "review.csv", dtype=str, keep_default_na=False)
    b = pd.read_csv(tmp_path / "fresh" / "review.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(a, b)
