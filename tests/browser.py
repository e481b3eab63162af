"""Headless Chromium for the tests and scripts that look at pages as a person does.

Uses the installed Debian packages (`chromium`, `chromium-driver`) through Selenium; nothing is
downloaded. Override the binaries with DATACLEANER_CHROMIUM and DATACLEANER_CHROMEDRIVER.
"""

from __future__ import annotations

import os
import shutil
import tempfile


def find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or a sentence saying why there is no browser here."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    chromium = os.environ.get("DATACLEANER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("DATACLEANER_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not driver:
        return "no Chromium here: install the Debian packages chromium and chromium-driver (.ci/run does)"
    return chromium, driver


def start_browser(width: int = 1400, height: int = 1000):
    """A headless Chromium driven by Selenium, with its own empty profile and no background traffic."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if isinstance(found, str):
        raise RuntimeError(found)
    chromium, driver = found
    opts = Options()
    opts.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="datacleaner-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver), options=opts)
    browser.profile_dir = profile
    return browser


def stop_browser(browser) -> None:
    browser.quit()
    shutil.rmtree(getattr(browser, "profile_dir", ""), ignore_errors=True)
