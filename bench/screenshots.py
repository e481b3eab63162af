"""The README's pictures of the review page and the report, taken by headless Chromium.

The digit scans (10% flipped) cleaned with the `small` profile, `datacleaner review` on the run with
three keyboard decisions, then `datacleaner report`; the run is kept under .bench/screenshots/.

    python bench/screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from datacleaner import clean

from harness.internals import start, write_noisy_digits, write_report
from paths import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from browser import find_browser, start_browser, stop_browser  # noqa: E402


def wait(browser, script: str, timeout: float = 30) -> None:
    end = time.time() + timeout
    while not browser.execute_script(script):
        if time.time() > end:
            raise RuntimeError(f"page not ready: {script}")
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = ap.parse_args()
    found = find_browser()
    if isinstance(found, str):
        sys.exit(f"screenshots: {found}")
    work = ROOT / ".bench" / "screenshots"
    work.mkdir(parents=True, exist_ok=True)
    args.out = args.out.resolve()
    os.chdir(work)  # relative paths: the pictures show "run/review.csv", not this machine's folders
    data, run = Path("digits"), Path("run")
    if not (run / "review.csv").is_file():
        write_noisy_digits(data, noise=0.1, seed=1, per_class=60)
        clean(data, run, "small")
    import pandas as pd

    table = pd.read_csv(run / "review.csv", dtype=str, keep_default_na=False)
    table = table.drop(columns=[c for c in ("reviewed_by", "reviewed_at") if c in table]).assign(reviewed_label="")  # unreviewed again
    table.to_csv(run / "review.csv", index=False)
    args.out.mkdir(parents=True, exist_ok=True)

    browser = start_browser(1400, 860)
    running = start(run, port=0, reviewer="annotator")
    try:
        from selenium.webdriver.common.action_chains import ActionChains

        browser.get(running.url)
        wait(browser, "const i = [...document.querySelectorAll('.card img.thumb')].slice(0, 10); "
                      "return i.length > 0 && i.every(x => x.complete && x.naturalWidth > 0)")
        for key in "agx":
            ActionChains(browser).send_keys(key).perform()
            time.sleep(0.6)
        wait(browser, "return [...document.querySelectorAll('#refs img')].every(x => x.complete && x.naturalWidth > 0)")
        time.sleep(0.5)
        browser.save_screenshot(str(args.out / "review.png"))

        report = write_report(run, "report.html")
        browser.set_window_size(1280, 1500)
        browser.get(report.resolve().as_uri())
        wait(browser, "return [...document.images].every(x => x.complete)")
        browser.save_screenshot(str(args.out / "report.png"))
    finally:
        running.stop()
        stop_browser(browser)
    print(f"wrote {args.out / 'review.png'} and {args.out / 'report.png'}")


if __name__ == "__main__":
    main()
