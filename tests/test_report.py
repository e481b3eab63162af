"""`datacleaner report`: one self-contained HTML file per run, checked on real `clean` and `select`
runs (the session fixtures) by parsing it: numbers, order, embedded thumbnails, escaping."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from conftest import copy_run
from PIL import Image
from typer.testing import CliRunner

from datacleaner.cli import app
from datacleaner.errors import DataCleanerError
from datacleaner.review import report, report_data
from datacleaner.review.report import write_report

runner = CliRunner()
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: Node | None = None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs) -> list[Node]:
        found = []
        for c in self.children:
            if isinstance(c, Node):
                if ((tag is None or c.tag == tag) and (cls is None or cls in c.attrs.get("class", "").split())
                        and all(c.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())):
                    found.append(c)
                found += c.find_all(tag, cls, **attrs)
        return found

    def find(self, *args, **kwargs) -> Node:
        found = self.find_all(*args, **kwargs)
        assert found, (args, kwargs)
        return found[0]


class Tree(HTMLParser):
    """The page as a tree; fails on a closing tag that does not match the open one (bad nesting)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root = self.at = Node("#root", {})
        self.feed(text)
        self.close()
        assert self.at is self.root, f"unclosed <{self.at.tag}>"

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.at)
        self.at.children.append(node)
        if tag not in VOID:
            self.at = node

    def handle_startendtag(self, tag, attrs):
        self.at.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.at))

    def handle_endtag(self, tag):
        assert tag not in VOID and self.at.tag == tag, f"</{tag}> closes <{self.at.tag}>"
        self.at = self.at.parent

    def handle_data(self, data):
        self.at.children.append(data)


def parse(path) -> tuple[str, Node]:
    text = path.read_text(encoding="utf-8")
    return text, Tree(text).root


def assert_self_contained(text: str, page: Node) -> None:
    for node in page.find_all():
        for attr in ("src", "href", "srcset", "action", "data", "poster"):
            if attr in node.attrs:
                assert node.attrs[attr].startswith(("data:image/jpeg;base64,", "#")), (node.tag, node.attrs[attr][:80])
    assert not page.find_all("script") and not page.find_all("link") and not page.find_all("iframe")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?(https?:)?//|@import""", text, re.IGNORECASE)


def jpeg_images(page: Node) -> list[tuple[str, Image.Image]]:
    """(alt, decoded image) of every <img>; each must be an embedded JPEG."""
    out = []
    for img in page.find_all("img"):
        src = img.attrs["src"]
        assert src.startswith("data:image/jpeg;base64,")
        im = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        im.load()
        assert im.format == "JPEG"
        out.append((img.attrs.get("alt", ""), im))
    return out


def tile(page: Node, key: str) -> str:
    return page.find("div", cls="stat", data_key=key).find("b").text()


def pairs_shown(page: Node) -> dict[tuple[str, str], int]:
    rows = page.find("section", id="pairs").find_all("tr", cls="pair")
    return {(r.find("td", cls="from").text(), r.find("td", cls="to").text()): int(r.find_all("td", cls="n")[0].text().replace(",", ""))
            for r in rows}


# Clean runs ------------------------------------------------------------------------------------


def test_clean_report_through_cli(reviewable_run, tmp_path):
    _, run, _ = reviewable_run
    out = tmp_path / "shared" / "report.html"
    r = runner.invoke(app, ["report", str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert str(out) in r.output and out.is_file()
    assert not list(out.parent.glob(".*.tmp")), "temporary file left behind"
    text, page = parse(out)
    assert_self_contained(text, page)
    assert out.stat().st_size < 1_500_000

    summary = json.loads((run / "summary.json").read_text())
    review = pd.read_csv(run / "review.csv", dtype=str, keep_default_na=False)
    scores = pd.read_csv(run / "scores.csv", dtype=str, keep_default_na=False)
    flagged = review[review["issue"].str.split(";").str[0].isin(["mislabel", "low_confidence"])]

    # the summary's numbers are summary.json's
    for key in ("images", "readable", "unreadable", "classes", "flagged"):
        assert int(tile(page, key).replace(",", "")) == summary[key], key
    for key in ("estimated_noise_rate", "committee_disagreement"):
        assert float(tile(page, key).rstrip("%")) == pytest.approx(100 * summary[key], abs=0.051), key
    facts = page.find("table", cls="facts").text()
    assert all(m in facts for m in summary["members"]) and str(summary["profile"]) in facts

    # images and flagged images per class
    per_class = {r.find("td", cls="name").text(): (int(r.find("td", cls="images").text()), int(r.find("td", cls="flagged").text()))
                 for r in page.find_all("tr", cls="cls")}
    images = scores["given_label"].value_counts()
    assert per_class == {c: (int(images[c]), summary["flagged_per_class"][c]) for c in json.loads((run / "run.json").read_text())["classes"]}

    # given -> suggested pairs: counts from every flagged row, most frequent first, a few examples each
    expected = flagged.groupby(["given_label", "suggested_label"]).size()
    assert pairs_shown(page) == {k: int(v) for k, v in expected.items()}
    counts = list(pairs_shown(page).values())
    assert counts == sorted(counts, reverse=True)
    for row in page.find("section", id="pairs").find_all("tr", cls="pair"):
        a, b = row.find("td", cls="from").text(), row.find("td", cls="to").text()
        shown = [img.attrs["alt"] for img in row.find_all("img")]
        assert shown == flagged[(flagged["given_label"] == a) & (flagged["suggested_label"] == b)]["path"].head(report_data.EXAMPLES_PER_PAIR).tolist()

    # the histogram: an inline SVG over every readable image, flagged ones overlaid, labeled axes
    svg = page.find("section", id="histogram").find("svg")
    labels = svg.text()
    assert "label_quality" in labels and "images" in labels
    assert f"readable images ({summary['readable']:,})" in labels and f"flagged ({summary['flagged']:,})" in labels
    bars = [b for b in svg.find_all("rect", cls="all") if b.find_all("title")]  # (the legend's has none)
    assert sum(int(re.search(r": ([\d,]+) readable", b.find("title").text()).group(1).replace(",", "")) for b in bars) == summary["readable"]

    # top suspects: review.csv order, each card an embedded JPEG thumbnail whose alt names the path
    cards = page.find("section", id="suspects").find_all("figure", cls="card")
    assert [c.find("div", cls="path").text() for c in cards] == flagged["path"].head(report.TOP).tolist()
    first = flagged.iloc[0]
    assert cards[0].find("b", cls="suggested").text() == first["suggested_label"]
    assert f"{float(first['label_quality']):.3f}" in cards[0].text() and first["issue"].replace("_", " ") in cards[0].text()
    assert all(f"{m}: " in cards[0].text() for m in summary["members"])
    for card in cards:
        (alt, im), = jpeg_images(card)
        assert alt.startswith(card.find("div", cls="path").text())
        assert max(im.size) <= report.THUMB_PX
    assert len(jpeg_images(page)) >= len(cards)

    # the unreadable file: listed with its reason, a placeholder instead of a thumbnail
    bad = page.find("section", id="unreadable")
    row = bad.find("tbody").find("tr")
    assert row.find("td", cls="path").text() == "1/broken.png"
    assert review.set_index("path").loc["1/broken.png", "reason"] in row.text()
    assert not bad.find_all("img") and bad.find_all("div", cls="ph")
    assert "1/broken.png" not in [alt for alt, _ in jpeg_images(page)]


def test_default_out_and_chunked_reading_give_the_same_report(reviewable_run, tmp_path, monkeypatch):
    """No --out: RUN_DIR/report.html. Reading the CSVs 7 rows at a time changes nothing."""
    _, run, _ = reviewable_run
    copy = copy_run(run, tmp_path / "run")
    path = write_report(copy)
    assert path == copy / "report.html"
    monkeypatch.setattr(report_data, "CHUNK", 7)
    again = write_report(copy, tmp_path / "small_chunks.html")
    strip = lambda p: re.sub(r"on \d{4}-\d\d-\d\d \d\d:\d\d", "", p.read_text())
    assert strip(again) == strip(path)


def test_text_from_the_data_is_escaped_and_vanished_images_get_a_placeholder(reviewable_run, tmp_path):
    _, run, _ = reviewable_run
    copy = copy_run(run, tmp_path / "run")
    review = pd.read_csv(copy / "review.csv", dtype=str, keep_default_na=False)
    evil_path = '<script>alert(1)</script>"&.png'
    evil_class = "'=HYPERLINK(\"x\")<b>"  # neutralised in the CSV as `clean` writes it
    review.loc[0, "path"] = evil_path
    review.loc[0, "given_label"] = evil_class
    review.loc[1, "suggested_label"] = '<img src=x onerror="alert(2)">'
    review.to_csv(copy / "review.csv", index=False)
    out = write_report(copy, tmp_path / "report.html")
    text, page = parse(out)
    assert_self_contained(text, page)
    assert "<script" not in text and "<img src=x" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;.png" in text
    card = page.find("section", id="suspects").find_all("figure", cls="card")[0]
    assert card.find("div", cls="path").text() == evil_path
    assert card.find("span", cls="given").text() == '=HYPERLINK("x")<b>'  # shown as written, without the formula guard
    assert any(given == '=HYPERLINK("x")<b>' for given, _ in pairs_shown(page))
    # the renamed file does not exist: a placeholder naming it, no crash
    ph = card.find("div", cls="ph")
    assert "file not found" in ph.text() and ph.attrs["aria-label"].startswith(evil_path)
    assert not card.find_all("img")


def test_a_gone_dataset_gives_placeholders(reviewable_run, tmp_path):
    _, run, _ = reviewable_run
    copy = copy_run(run, tmp_path / "run")
    info = json.loads((copy / "run.json").read_text())
    info["root"] = str(tmp_path / "moved away")
    (copy / "run.json").write_text(json.dumps(info))
    _, page = parse(write_report(copy, tmp_path / "report.html"))
    assert not page.find_all("img") and page.find_all("div", cls="ph")
    assert "not found: thumbnails are placeholders" in page.find("header").text()


def test_big_runs_count_every_row_and_cap_what_they_show(reviewable_run, tmp_path):
    """50,000 images in 8 classes: the histogram and pairs count every row, the page shows a capped part."""
    _, run, _ = reviewable_run
    copy = copy_run(run, tmp_path / "run")
    rng = np.random.default_rng(0)
    n, classes = 50_000, [f"c{i}" for i in range(8)]
    given, suggested = rng.integers(0, 8, n), rng.integers(0, 8, n)
    quality = rng.random(n).round(5)
    scores = pd.DataFrame({
        "path": [f"x/{i}.png" for i in range(n)], "given_label": np.array(classes)[given],
        "suggested_label": np.array(classes)[suggested], "suggested_prob": 0.5, "given_label_prob": quality,
        "label_quality": quality, "flag_count": 1, "rounds": 1, "issue": np.where(quality < 0.2, "mislabel", ""),
        "reason": "", "checksum": "0" * 16, "reviewed_label": "",
    })
    scores.to_csv(copy / "scores.csv", index=False)
    flagged = scores[scores["issue"] != ""].sort_values("label_quality", kind="stable")
    flagged.to_csv(copy / "review.csv", index=False)
    info = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**info, "classes": classes}))
    out = write_report(copy, tmp_path / "report.html")
    _, page = parse(out)
    assert out.stat().st_size < 1_000_000
    labels = page.find("section", id="histogram").find("svg").text()
    assert f"readable images ({n:,})" in labels and f"flagged ({len(flagged):,})" in labels
    shown = pairs_shown(page)
    expected = flagged.groupby(["given_label", "suggested_label"]).size()
    assert len(shown) == report.PAIRS_SHOWN < len(expected)
    assert all(expected[k] == v for k, v in shown.items()) and min(shown.values()) >= expected.sort_values().iloc[-report.PAIRS_SHOWN]
    assert f"{len(expected) - report.PAIRS_SHOWN:,} more pairs" in page.find("section", id="pairs").text()
    cards = page.find("section", id="suspects").find_all("figure", cls="card")
    assert [c.find("div", cls="path").text() for c in cards] == flagged["path"].head(report.TOP).tolist()
    assert all("file not found" in c.find("div", cls="ph").text() for c in cards)  # no such images
    per_class = {r.find("td", cls="name").text(): int(r.find("td", cls="images").text().replace(",", "")) for r in page.find_all("tr", cls="cls")}
    assert per_class == scores["given_label"].value_counts().to_dict()


# Select runs -----------------------------------------------------------------------------------


def test_select_report(selection_run, tmp_path):
    _, run, _ = selection_run
    r = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "selection.html")])
    assert r.exit_code == 0, r.output
    text, page = parse(tmp_path / "selection.html")
    assert_self_contained(text, page)
    summary = json.loads((run / "summary.json").read_text())
    selection = pd.read_csv(run / "selection.csv", dtype=str, keep_default_na=False)
    ranked = selection[selection["rank"] != ""]
    for key in ("pool", "skipped", "candidates", "disagree", "low_confidence", "duplicates", "unreadable", "budget"):
        assert int(tile(page, key).replace(",", "")) == summary[key], key
    assert summary["method"] in page.find("table", cls="facts").text()

    assert pairs_shown(page) == {k: int(v) for k, v in ranked.groupby(["production_label", "suggested_label"]).size().items()}

    svg = page.find("section", id="histogram").find("svg")
    pool_scores = pd.read_csv(run / "pool_scores.csv")
    assert "disagreement" in svg.text() and f"pool images ({len(pool_scores):,})" in svg.text()
    assert f"candidates ({len(ranked):,})" in svg.text()

    cards = page.find("section", id="ranking").find_all("figure", cls="card")
    top = ranked.head(report.TOP)
    assert [c.find("span", cls="rank").text() for c in cards] == top["rank"].tolist()
    assert [c.find("div", cls="path").text() for c in cards] == top["path"].tolist()
    assert ["budget" in c.attrs["class"].split() for c in cards] == (top["in_budget"] == "True").tolist()
    assert [bool(c.find_all("span", cls="badge")) for c in cards] == (top["in_budget"] == "True").tolist()
    for card in cards:
        (alt, _), = jpeg_images(card)
        assert alt.startswith(card.find("div", cls="path").text())

    bad = page.find("section", id="unreadable")
    assert bad.find("td", cls="path").text() == "cam0/broken.png"
    assert selection.set_index("path").loc["cam0/broken.png", "detail"] in bad.text()


# Not a run -------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", ["empty", "missing", "no_summary"])
def test_not_a_run_directory(make, tmp_path, reviewable_run):
    folder = tmp_path / "somewhere"
    if make != "missing":
        folder.mkdir()
    if make == "no_summary":
        shutil.copy(reviewable_run[1] / "review.csv", folder / "review.csv")
    r = runner.invoke(app, ["report", str(folder), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(folder) in lines[0], r.stderr
    assert ("summary.json" if make == "no_summary" else "review.csv") in lines[0]
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(DataCleanerError):
        write_report(folder)
