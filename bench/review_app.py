"""How fast the review app is on a big list, in a real headless Chromium.

A review list of --rows rows over real digit scans (hard links, every row its own file), `datacleaner
review` started as a user starts it; timed: server start, the first screen with an empty and a warm
thumbnail cache, a key press and a JSON decision to the row on disk. Needs Chromium and selenium.

    python bench/review_app.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from harness.internals import write_noisy_digits
from harness.report import table
from paths import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from browser import find_browser, start_browser, stop_browser  # noqa: E402


def make_list(folder: Path, rows: int) -> Path:
    """A dataset of `rows` image files (hard links of 400 real scans) and a clean run's records."""
    seed = folder / "seed"
    truth = write_noisy_digits(seed, noise=0.0, seed=0, per_class=40)
    data = folder / "data"
    rng = np.random.default_rng(0)
    src = truth["path"].to_numpy()
    classes = [str(c) for c in range(10)]
    paths, given = [], []
    for i in range(rows):
        s = src[i % len(src)]
        label = s.split("/")[0]
        rel = f"{label}/{i // 1000:03d}/img_{i:06d}.png"
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(seed / s, data / rel)
        paths.append(rel)
        given.append(label)
    given = np.array(given)
    suggested = np.where(rng.random(rows) < 0.5, given, rng.choice(classes, rows))
    quality = np.sort(rng.random(rows))
    listed = pd.DataFrame({
        "path": paths, "given_label": given, "suggested_label": suggested, "suggested_prob": rng.random(rows).round(4),
        "given_label_prob": quality.round(5), "label_quality": quality.round(5), "flag_count": 4, "rounds": 4,
        "vote_a": suggested, "vote_b": given, "issue": "mislabel", "reason": "", "checksum": "", "reviewed_label": "",
    })
    run = folder / "run"
    run.mkdir()
    listed.to_csv(run / "review.csv", index=False)
    listed.assign(issue="").to_csv(run / "scores.csv", index=False)
    (run / "run.json").write_text(json.dumps({"root": str(data), "classes": classes}))
    return run


def first_screen(browser, url: str) -> float:
    """Seconds from navigation to every thumbnail in the viewport drawn."""
    start = time.perf_counter()
    browser.get(url)
    script = """
      const imgs = [...document.querySelectorAll('.card img.thumb')].filter(i => i.getBoundingClientRect().top < innerHeight);
      return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"""
    while not browser.execute_script(script):
        if time.perf_counter() - start > 60:
            raise RuntimeError("the first screen did not draw within 60 s")
        time.sleep(0.01)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    found = find_browser()
    if isinstance(found, str):
        sys.exit(f"review_app: {found}")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run = make_list(Path(tmp), args.rows)
        built = time.perf_counter() - t
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "datacleaner", "review", str(run), "--no-browser", "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        url = proc.stdout.readline().strip()
        started = time.perf_counter() - t
        browser = start_browser(1400, 1000)
        try:
            cold = first_screen(browser, url)
            warm = first_screen(browser, url)
            from selenium.webdriver.common.action_chains import ActionChains

            keys = []
            for _ in range(5):
                before = (run / "review.csv").stat().st_mtime_ns
                t = time.perf_counter()
                ActionChains(browser).send_keys("a").perform()
                while (run / "review.csv").stat().st_mtime_ns == before:
                    time.sleep(0.005)
                keys.append(time.perf_counter() - t)
            base, token = url.split("/?token=")
            listed = pd.read_csv(run / "review.csv", dtype=str, keep_default_na=False, usecols=["path", "given_label"])
            apis = []
            for i in range(100, 110):
                body = json.dumps({"decisions": [{"path": listed.at[i, "path"], "label": listed.at[i, "given_label"]}]}).encode()
                req = urllib.request.Request(f"{base}/api/decide", data=body, headers={"X-Datacleaner-Token": token})
                t = time.perf_counter()
                urllib.request.urlopen(req).read()
                apis.append(time.perf_counter() - t)
            reviewed = int((pd.read_csv(run / "review.csv", dtype=str, keep_default_na=False)["reviewed_label"] != "").sum())
        finally:
            stop_browser(browser)
            proc.terminate()
    print(f"review app on a list of {args.rows:,} rows ({os.cpu_count()} cores; list and files built in {built:.0f} s)\n")
    print(table(["step", "seconds"], [["server start (command to URL printed)", f"{started:.2f}"],
                                      ["first screen, empty thumbnail cache", f"{cold:.2f}"],
                                      ["first screen, thumbnails cached", f"{warm:.2f}"],
                                      [f"key press to row on disk (median of {len(keys)})", f"{statistics.median(keys):.2f}"],
                                      [f"JSON decision to row on disk (median of {len(apis)})", f"{statistics.median(apis):.2f}"]]))
    print(f"\nrows reviewed on disk at the end: {reviewed} (expected {len(keys) + len(apis)})")
    if reviewed != len(keys) + len(apis):
        sys.exit(1)


if __name__ == "__main__":
    main()
