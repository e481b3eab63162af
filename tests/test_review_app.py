"""`datacleaner review` in a real headless Chromium, and the server's rules checked over HTTP.

The browser tests press keys as an annotator does and read the list on disk after each step."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from browser import find_browser, start_browser, stop_browser
from conftest import copy_run

from datacleaner.apply import apply_review
from datacleaner.review.server import start


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def wait_for(check, what: str, timeout: float = 10.0):
    """Poll `check()` until it returns something true; fail naming `what` after `timeout` seconds."""
    end = time.time() + timeout
    while True:
        try:
            got = check()
        except (AssertionError, KeyError, IndexError, pd.errors.EmptyDataError):
            got = None
        if got:
            return got
        if time.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def browser():
    found = find_browser()
    if isinstance(found, str):
        pytest.skip(f"browser tests need Chromium: {found}")
    b = start_browser()
    yield b
    stop_browser(b)


@pytest.fixture
def served(reviewable_run, tmp_path):
    """`datacleaner review` (the real command, in its own process) on a copy of a finished run."""
    data, run, _ = reviewable_run
    copy = copy_run(run, tmp_path / "run")
    proc = subprocess.Popen(
        [sys.executable, "-m", "datacleaner", "review", str(copy), "--no-browser", "--port", "0", "--reviewer", "tester"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:") and "/?token=" in url, (url, proc.stderr.read() if proc.poll() is not None else "")
    yield url, copy, data
    proc.terminate()
    proc.wait(10)


def press(browser, *keys):
    from selenium.webdriver.common.action_chains import ActionChains

    for k in keys:
        ActionChains(browser).send_keys(k).perform()


def focused_path(browser) -> str:
    return browser.execute_script("const c = document.querySelector('.card.focus'); return c ? c.dataset.path : null;")


def test_keyboard_review_is_on_disk_after_every_key(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    url, run, data = served
    listed = read(run / "review.csv")
    paths = listed["path"].tolist()
    classes = json.loads((run / "run.json").read_text())["classes"]
    browser.get(url)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".card img.thumb"), "the grid")
    cards = browser.find_elements(By.CSS_SELECTOR, ".card")
    assert [c.get_attribute("data-path") for c in cards] == paths[: len(cards)]  # the list's order
    first = cards[0].find_element(By.CSS_SELECTOR, "img.thumb")
    assert paths[0] in first.get_attribute("alt")
    wait_for(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", first), "a thumbnail")
    assert "reviewed 0 of" in browser.find_element(By.ID, "progress").text
    assert focused_path(browser) == paths[0]  # the first unreviewed card

    def row(i):
        return read(run / "review.csv").iloc[i]

    press(browser, "a")  # accept the suggestion
    wait_for(lambda: row(0)["reviewed_label"] == listed.at[0, "suggested_label"], "a written")
    assert row(0)["reviewed_by"] == "tester" and row(0)["reviewed_at"].endswith("Z")
    wait_for(lambda: focused_path(browser) == paths[1], "focus to move on")
    press(browser, "g")  # keep the given label
    wait_for(lambda: row(1)["reviewed_label"] == listed.at[1, "given_label"], "g written")
    press(browser, "x")  # drop
    wait_for(lambda: row(2)["reviewed_label"] == "__drop__", "x written")
    press(browser, "u")  # undo the drop
    wait_for(lambda: row(2)["reviewed_label"] == "" and row(2)["reviewed_by"] == "", "u written")
    wait_for(lambda: focused_path(browser) == paths[2], "focus back on the undone card")
    other = next(c for c in classes if c not in (listed.at[2, "given_label"], listed.at[2, "suggested_label"]))
    press(browser, "/")
    box = browser.find_element(By.ID, "typeahead")
    box.send_keys(other, Keys.ENTER)  # type-ahead picks any class
    wait_for(lambda: row(2)["reviewed_label"] == other, "type-ahead written")
    press(browser, "2")  # digit: the second class
    wait_for(lambda: row(3)["reviewed_label"] == classes[1], "digit written")
    assert focused_path(browser) == paths[4]
    press(browser, "x", "u", "1")  # drop, undo and pick a class at once: all three on the same card
    wait_for(lambda: row(4)["reviewed_label"] == classes[0], "the class after an undo")
    assert row(5)["reviewed_label"] == "" and focused_path(browser) == paths[5]
    press(browser, Keys.ARROW_RIGHT)
    assert focused_path(browser) == paths[6]
    press(browser, Keys.ARROW_LEFT, Keys.ARROW_LEFT)
    assert focused_path(browser) == paths[4]

    # bulk: every card of the most frequent given -> suggested pair, accepted at once
    pair = Select(browser.find_element(By.ID, "f-pair"))
    pair.select_by_index(1)
    given, suggested, _ = browser.execute_script("return S.meta.filters.pair[Number(arguments[0])]",
                                                 pair.first_selected_option.get_attribute("value"))
    in_pair = listed[(listed["given_label"] == given) & (listed["suggested_label"] == suggested)]
    assert len(in_pair) >= 2
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".card")) == len(in_pair), "the pair filter")
    before_bulk = read(run / "review.csv").set_index("path").loc[in_pair["path"]]
    browser.find_element(By.ID, "bulk").click()
    browser.find_element(By.ID, "bulk-accept").click()
    wait_for(lambda: (read(run / "review.csv").set_index("path").loc[in_pair["path"], "reviewed_label"] == suggested).all(), "bulk written")
    press(browser, "u")  # one undo takes the whole bulk decision back
    cols = ["reviewed_label", "reviewed_by", "reviewed_at"]
    wait_for(lambda: read(run / "review.csv").set_index("path").loc[in_pair["path"], cols].equals(before_bulk[cols]), "bulk undone")

    # reload: decisions shown, focus on the first unreviewed card
    browser.get(url)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".card"), "the grid after reload")
    on_disk = read(run / "review.csv")
    first_open = on_disk.index[on_disk["reviewed_label"] == ""][0]
    wait_for(lambda: focused_path(browser) == paths[first_open], "focus on the first unreviewed card")
    done = browser.find_element(By.CSS_SELECTOR, '.card[data-k="0"] .decision').text
    assert listed.at[0, "suggested_label"] in done
    reviewed = int((on_disk["reviewed_label"] != "").sum())
    assert f"reviewed {reviewed} of {len(on_disk)}" in browser.find_element(By.ID, "progress").text

    # a fast burst of keys decides three cards in a row, not one card three times
    at = paths.index(focused_path(browser))
    press(browser, "g", "g", "g")
    burst = listed.iloc[at : at + 3]
    wait_for(lambda: (read(run / "review.csv").iloc[at : at + 3]["reviewed_label"] == burst["given_label"]).all(), "the burst written")
    on_disk = read(run / "review.csv")

    # what the browser wrote is valid input for apply
    copy = run.parent / "data"
    shutil.copytree(data, copy)
    plan = apply_review(run / "review.csv", copy, yes=False)
    assert not plan.refused, plan.refused
    assert len(plan.ops) == sum(1 for _, r in on_disk.iterrows() if r["reviewed_label"] and r["reviewed_label"] != r["given_label"])


def get(url: str, headers: dict | None = None, data: bytes | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.fixture
def api(reviewable_run, tmp_path):
    """A review server (started in this process) on a copy of the run and a copy of its images."""
    data, run, _ = reviewable_run
    images = tmp_path / "data"
    shutil.copytree(data, images)
    copy = copy_run(run, tmp_path / "run")
    (images / "0" / "escape.png").symlink_to(Path(data, "1").resolve() / sorted(p.name for p in (data / "1").iterdir())[0])
    (tmp_path / "outside.png").write_bytes((images / "0" / "escape.png").read_bytes())
    table = read(copy / "review.csv")
    extra = pd.concat([table.iloc[[0]].assign(path=p) for p in ("0/escape.png", "../outside.png", str(tmp_path / "outside.png"))])
    pd.concat([table, extra]).to_csv(copy / "review.csv", index=False)  # listed, but leading outside the images' root
    running = start(copy, port=0, reviewer="=HYPERLINK(1)", root=images)
    base, token = running.url.split("/?token=")
    yield base, token, copy, images
    running.stop()


def test_token_required_and_only_listed_images_served(api):
    base, token, run, images = api
    listed = read(run / "review.csv")
    first = urllib.request.quote(listed.at[0, "path"])
    for path in ("/", "/api/meta", "/api/rows", f"/image?path={first}", "/static/app.js", "/nothing"):
        assert get(base + path)[0] == 403, path
        assert get(base + path + ("&" if "?" in path else "?") + "token=wrong")[0] == 403, path
    status, body, headers = get(f"{base}/?token={token}")
    assert status == 200 and b"datacleaner review" in body and "HttpOnly" in headers["Set-Cookie"]
    cookie = headers["Set-Cookie"].split(";")[0]
    status, body, headers = get(f"{base}/image?path={first}", {"Cookie": cookie})  # the cookie the page set
    assert status == 200 and body[:3] == b"\xff\xd8\xff" and "max-age" in headers["Cache-Control"]
    assert get(f"{base}/image?path={first}", {"Cookie": cookie, "If-None-Match": headers["ETag"]})[0] == 304
    assert any((run / "thumbs").rglob("*.jpg"))  # cached under the run directory
    auth = {"X-Datacleaner-Token": token}
    scores = read(run / "scores.csv")
    clean_rows = scores[scores["issue"] == ""].assign(p=lambda t: t["given_label_prob"].astype(float)).sort_values("p")
    not_listed = clean_rows["path"].iloc[0]  # in the dataset, but neither listed nor a reference image
    assert (images / not_listed).is_file() and not_listed not in set(listed["path"])
    for bad in (not_listed, "../run/review.csv", "0/../../run/review.csv", "/etc/passwd", "0/escape.png", "../outside.png",
                str(run.parent / "outside.png"), "\x00"):
        assert get(f"{base}/image?path={urllib.request.quote(bad)}", auth)[0] == 404, bad
    # writes: header token only (a cookie alone is refused), labels checked, values neutralised
    body = json.dumps({"decisions": [{"path": listed.at[0, "path"], "label": listed.at[0, "suggested_label"]}]}).encode()
    assert get(f"{base}/api/decide", {"Cookie": cookie, "Content-Type": "application/json"}, body)[0] == 403
    assert get(f"{base}/api/decide", auth, json.dumps({"decisions": [{"path": listed.at[0, "path"], "label": "=1+1"}]}).encode())[0] == 400
    assert get(f"{base}/api/decide", auth, json.dumps({"decisions": [{"path": not_listed, "label": "0"}]}).encode())[0] == 404
    assert get(f"{base}/api/decide", auth, body)[0] == 200
    row = read(run / "review.csv").iloc[0]
    assert row["reviewed_label"] == listed.at[0, "suggested_label"] and row["reviewed_by"] == "'=HYPERLINK(1)"
    changed = {c for c in read(run / "review.csv").columns} - set(listed.columns)
    assert changed == {"reviewed_by", "reviewed_at"}
    # a refused request leaves the server able to write; odd queries get answers, not dropped connections
    bad_undo = json.dumps({"rows": [{"path": listed.at[1, "path"], "label": listed.at[1, "given_label"], "by": 5}]}).encode()
    assert get(f"{base}/api/restore", auth, bad_undo)[0] == 400
    assert get(f"{base}/api/decide", auth, json.dumps({"filter": ["x"], "action": "accept"}).encode())[0] == 400
    assert get(f"{base}/api/decide", auth, json.dumps({"decisions": [{"path": listed.at[1, "path"]}]}).encode())[0] == 400
    assert get(f"{base}/api/rows?offset=first&limit=0", auth)[0] == 200
    good = json.dumps({"decisions": [{"path": listed.at[1, "path"], "label": listed.at[1, "given_label"]}]}).encode()
    answer = json.loads(get(f"{base}/api/decide", auth, good)[1])
    assert read(run / "review.csv").at[1, "reviewed_label"] == listed.at[1, "given_label"]
    assert answer["changed"] == [{"path": listed.at[1, "path"], "previous": {"label": "", "by": "", "at": ""}}]
    # another command replaces the list with other rows: the server says so instead of mixing rows up
    read(run / "review.csv").iloc[2:].to_csv(run / "review.csv", index=False)
    status, body, _ = get(f"{base}/api/rows", auth)
    assert status == 409 and b"restart" in body
    assert get(f"{base}/api/decide", auth, good)[0] == 409
    assert sorted(p.name for p in run.iterdir() if p.is_file() and not p.name.startswith(".")) == sorted(
        ["review.csv", "scores.csv", "manifest.csv", "run.json", "summary.json", "config.yaml"])


def test_two_servers_on_one_list_keep_each_others_decisions(reviewable_run, tmp_path):
    data, run, _ = reviewable_run
    copy = copy_run(run, tmp_path / "run")
    listed = read(copy / "review.csv")
    one, two = start(copy, port=0, reviewer="one"), start(copy, port=0, reviewer="two")
    try:
        import threading

        def decide(running, rows):
            base, token = running.url.split("/?token=")
            for i in rows:
                body = json.dumps({"decisions": [{"path": listed.at[i, "path"], "label": listed.at[i, "given_label"]}]}).encode()
                assert get(f"{base}/api/decide", {"X-Datacleaner-Token": token}, body)[0] == 200

        n = min(len(listed), 16)
        workers = [threading.Thread(target=decide, args=(one, range(0, n, 2))), threading.Thread(target=decide, args=(two, range(1, n, 2)))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        on_disk = read(copy / "review.csv")
        assert (on_disk["reviewed_label"][:n] == listed["given_label"][:n]).all()
        assert on_disk["reviewed_by"][:n].tolist() == ["one" if i % 2 == 0 else "two" for i in range(n)]
        # each server shows the other's decisions too
        base, token = one.url.split("/?token=")
        rows = json.loads(get(f"{base}/api/rows?limit=200", {"X-Datacleaner-Token": token})[1])
        assert rows["reviewed"] == n
    finally:
        one.stop()
        two.stop()


def test_review_of_a_selection_and_a_busy_port(selection_run, tmp_path):
    from typer.testing import CliRunner

    from datacleaner.cli import app

    pool, run, truth = selection_run
    copy = copy_run(run, tmp_path / "run")
    running = start(copy / "selection.csv", port=0, reviewer="me")
    try:
        base, token = running.url.split("/?token=")
        auth = {"X-Datacleaner-Token": token}
        meta = json.loads(get(f"{base}/api/meta", auth)[1])
        assert meta["kind"] == "select" and meta["score_name"] == "disagreement" and meta["given_name"] == "production"
        rows = json.loads(get(f"{base}/api/rows?offset=first", auth)[1])["rows"]
        assert rows[0]["rank"] == "1" and rows[0]["votes"]
        port = int(base.rsplit(":", 1)[1])
        r = CliRunner().invoke(app, ["review", str(copy), "--no-browser", "--port", str(port)])
        assert r.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in r.output and "--port" in r.output
    finally:
        running.stop()
    r = CliRunner().invoke(app, ["review", str(tmp_path / "nothing"), "--no-browser"])
    assert r.exit_code == 1 and "not found" in r.output


def test_formula_guard_round_trips_every_text(tmp_path):
    from datacleaner.tables import neutralise, unneutralise, write_csv_atomic

    for text in ("=1+1", "-scan.png", "'-scan.png", "''x", "'plain", "plain", "@x", "\tx", ""):
        assert unneutralise(neutralise(text)) == text, text
    table = pd.DataFrame({"path": ["'-scan.png"], "production_label": ["=x"], "vote_m": ["+x"], "detail": ["@x"], "score": ["-1"]})
    write_csv_atomic(table, tmp_path / "t.csv")
    on_disk = read(tmp_path / "t.csv").iloc[0]
    assert on_disk.to_dict() == {"path": "''-scan.png", "production_label": "'=x", "vote_m": "'+x", "detail": "'@x", "score": "-1"}
