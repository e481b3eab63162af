"""The built wheel is complete: installed outside the repository it has its profiles and runs
`clean --config cpu` and `demo` from another directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    """pip wheel of a copy of the project's sources, installed into a folder of its own."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO / "datacleaner", src / "datacleaner", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp / "dist")],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp / "dist").glob("datacleaner-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"datacleaner/profiles/cpu.yaml", "datacleaner/profiles/gpu.yaml", "datacleaner/profiles/small.yaml"} <= set(names)
    assert {f"datacleaner/review/static/{n}" for n in ("index.html", "app.js", "app.css")} <= set(names)
    site = tmp / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return site, elsewhere


def run(installed, *args):
    site, cwd = installed
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_installed_wheel_is_the_one_imported_and_has_its_profiles(installed_wheel):
    r = run(installed_wheel, "-c", "import datacleaner; print(datacleaner.__file__)")
    assert r.returncode == 0 and r.stdout.strip().startswith(str(installed_wheel[0])), r.stdout + r.stderr
    r = run(installed_wheel, "-m", "datacleaner", "profiles")
    assert r.returncode == 0 and r.stdout.split()[0] == "cpu", r.stderr


def test_the_installed_wheel_cleans_with_the_cpu_profile_and_runs_the_demo(installed_wheel, few_digits, weights_dir):
    root, _ = few_digits
    r = run(installed_wheel, "-m", "datacleaner", "clean", str(root), "--config", "cpu", "--out", "run",
            "--weights-dir", str(weights_dir), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "profile          cpu (built-in profile given by name)" in r.stdout
    assert (installed_wheel[1] / "run" / "review.csv").is_file()
    r = run(installed_wheel, "-m", "datacleaner", "demo", "--per-class", "10", "--out", "demo", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "profile          small" in r.stdout and (installed_wheel[1] / "demo" / "metrics.json").is_file()
    r = run(installed_wheel, "-m", "datacleaner", "report", "demo/run")
    assert r.returncode == 0 and (installed_wheel[1] / "demo" / "run" / "report.html").is_file(), r.stderr[-2000:]


def test_the_installed_wheel_serves_the_review_page(installed_wheel, reviewable_run):
    import urllib.request

    site, cwd = installed_wheel
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.Popen([sys.executable, "-m", "datacleaner", "review", str(reviewable_run[1]), "--no-browser", "--port", "0"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        base, token = url.split("/?token=")
        for path in ("/", "/static/app.js", "/static/app.css"):
            req = urllib.request.Request(base + path, headers={"X-Datacleaner-Token": token})
            with urllib.request.urlopen(req, timeout=10) as answer:
                assert answer.status == 200 and len(answer.read()) > 500, path
    finally:
        proc.terminate()
        proc.wait(10)
