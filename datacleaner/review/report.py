"""The shareable HTML report of a run: `datacleaner report RUN_DIR`.  [I/O]

write_report() turns a `clean` or `select` run directory into one self-contained HTML file:
thumbnails embedded as JPEG data: URIs, inline CSS and SVG, no scripts, no fonts, no links
outside the file, so it opens offline from file:// and prints.

A clean run's report: the summary, images and flagged images per class, the given -> suggested
pairs among flagged images (counts, a few example thumbnails each), a histogram of label_quality
(all readable images vs flagged ones), the top suspects in review.csv order, and the unreadable files.
A select run's report: the summary, the production -> committee pairs among candidates, a
histogram of disagreement (the pool vs candidates), the top of the ranking, copies and unreadable files.

Counts and histograms come from every row (the CSVs are read in chunks, only the needed columns
of scores.csv / pool_scores.csv); thumbnails are made only for images shown, small, and capped.
Every text from the data is unneutralised (tables.unneutralise) and HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

import numpy as np

from ..tables import unneutralise, write_text_atomic
from .lists import inside
from .report_data import FLAGGED, Listing, Run, group_members, open_run, scan_list, scan_pool, scan_scores
from .thumbs import render

TOP = 60  # cards in the suspects / ranking grid
THUMB_PX = 112  # longest side of an embedded thumbnail
PAIRS_SHOWN = 20  # rows of the pairs table
BINS = 20


def esc(value) -> str:
    """Text from the data as it was written (formula guard removed), safe in HTML text and attributes."""
    return html.escape(unneutralise(str(value)), quote=True)


def write_report(run_dir: str | Path, out: str | Path | None = None, *, top: int = TOP) -> Path:
    """Write the report of the run in `run_dir` to `out` (default RUN_DIR/report.html); returns its path."""
    run = open_run(run_dir)
    out = Path(out) if out is not None else run.folder / "report.html"
    if out.is_dir():
        out = out / "report.html"
    body = clean_report(run, top) if run.kind == "clean" else select_report(run, top)
    write_text_atomic(out, page(run, body))
    return out


# The run ---------------------------------------------------------------------------------------


# Thumbnails ------------------------------------------------------------------------------------


def thumb(run: Run, row: dict, alt: str) -> str:
    """An <img> of the row's image (a JPEG data: URI), or a placeholder saying why there is none."""
    listed = row.get("path", "")
    if listed not in run.thumbs:
        src = inside(run.root, unneutralise(listed)) if run.root is not None else None
        data = render(src, THUMB_PX) if src is not None and src.is_file() else None
        why = "" if data is not None else "unreadable" if src is not None and src.is_file() else "file not found"
        run.thumbs[listed] = ("data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")) if data else why
    uri = run.thumbs[listed]
    if uri.startswith("data:"):
        return f'<img src="{uri}" alt="{esc(alt)}">'
    return placeholder(uri, alt)


def placeholder(why: str, alt: str) -> str:
    return f'<div class="ph" role="img" aria-label="{esc(alt)}: {esc(why)}">{esc(why)}</div>'


# Pieces shared by both reports ------------------------------------------------------------------


def stats(items: list[tuple[str, str, str]]) -> str:
    """Tiles of (key, value text, label)."""
    tiles = "".join(f'<div class="stat" data-key="{esc(k)}"><b>{esc(v)}</b><span>{esc(label)}</span></div>' for k, v, label in items)
    return f'<div class="stats">{tiles}</div>'


def facts(items: list[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in items if v not in ("", None))
    return f'<table class="facts">{rows}</table>'


def num(value) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "–"


def share(value) -> str:
    try:
        return f"{float(value):.1%}"
    except (TypeError, ValueError):
        return "–"


def dec(value, digits: int = 3) -> str:
    try:
        v = float(unneutralise(str(value)))
    except ValueError:
        return "–"
    return "–" if np.isnan(v) else f"{v:.{digits}f}"


def relabel(old: str, new: str) -> str:
    """old → new, the old label struck through when they differ."""
    cls = "given" if old != new else "same"
    return f'<span class="{cls}">{esc(old)}</span> → <b class="suggested">{esc(new)}</b>'


def votes(row: dict) -> str:
    parts = [f"{esc(k[5:])}: <b>{esc(v)}</b>" for k, v in row.items() if k.startswith("vote_") and v != ""]
    return f'<div class="votes">votes {" · ".join(parts)}</div>' if parts else ""


def pairs_section(run: Run, found: Listing, title: str, names: tuple[str, str], subset: str) -> str:
    """The table of (from, to) label pairs with counts, most frequent first, and example thumbnails."""
    total = sum(found.pairs.values())
    if not total:
        return f'<section id="pairs"><h2>{esc(title)}</h2><p class="muted">No {esc(subset)}.</p></section>'
    ranked = sorted(found.pairs.items(), key=lambda kv: -kv[1])  # stable: ties keep list order
    rows = []
    for (a, b), n in ranked[:PAIRS_SHOWN]:
        shots = "".join(
            f'<figure class="mini" title="{esc(r["path"])}">{thumb(run, r, r["path"])}'
            f'<figcaption>{esc(unneutralise(r["path"]).rsplit("/", 1)[-1])}</figcaption></figure>'
            for r in found.examples.get((a, b), [])
        )
        rows.append(
            f'<tr class="pair"><td class="from">{esc(a)}</td><td class="arrow">→</td><td class="to">{esc(b)}</td>'
            f'<td class="n">{n:,}</td><td class="n">{n / total:.1%}</td><td><div class="minis">{shots}</div></td></tr>'
        )
    more = ""
    if len(ranked) > PAIRS_SHOWN:
        rest = ranked[PAIRS_SHOWN:]
        more = f'<p class="muted">{len(rest):,} more pairs with {sum(n for _, n in rest):,} images not shown.</p>'
    head = f"<tr><th>{esc(names[0])}</th><th></th><th>{esc(names[1])}</th><th>images</th><th>share</th><th>examples</th></tr>"
    return (
        f'<section id="pairs"><h2>{esc(title)}</h2><p class="muted">{total:,} {esc(subset)} in {len(ranked):,} pairs, '
        f'most frequent first; examples are the first of each pair in the list.</p>'
        f'<table class="pairs"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>{more}</section>'
    )


def histogram(all_values: np.ndarray, sub_values: np.ndarray, labels: tuple[str, str, str], hi: float = 1.0) -> str:
    """Inline SVG: counts of all_values and (overlaid) sub_values in BINS bins over [0, hi]."""
    all_values = all_values[np.isfinite(all_values)]
    sub_values = sub_values[np.isfinite(sub_values)]
    edges = np.linspace(0.0, hi, BINS + 1)
    a = np.histogram(np.clip(all_values, 0, hi), edges)[0]
    s = np.histogram(np.clip(sub_values, 0, hi), edges)[0]
    W, H, L, R, T, B = 720, 260, 64, 16, 28, 52
    pw, ph = W - L - R, H - T - B
    top = max(int(a.max(initial=0)), int(s.max(initial=0)), 1)
    step = next(m * 10**e for e in range(12) for m in (1, 2, 5) if top / (m * 10**e) <= 5)
    ymax = int(np.ceil(top / step) * step)
    y = lambda n: T + ph - ph * n / ymax
    x = lambda v: L + pw * v / hi
    xlabel, all_label, sub_label = labels
    key1, key2 = f"{all_label} ({len(all_values):,})", f"{sub_label} ({len(sub_values):,})"
    out = [f'<svg class="hist" viewBox="0 0 {W} {H}" role="img" aria-label="{esc(f"histogram of {xlabel}")}">',
           f"<title>{esc(f'Histogram of {xlabel}: {all_label} vs {sub_label}')}</title>"]
    for t in range(0, ymax + 1, step):
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y(t):.1f}" y2="{y(t):.1f}" class="gl"/>'
                   f'<text x="{L - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:,}</text>')
    bw = pw / BINS
    for i in range(BINS):
        lo, up = edges[i], edges[i + 1]
        tip = esc(f"{lo:.2f}–{up:.2f}: {a[i]:,} {all_label}, {s[i]:,} {sub_label}")
        for n, cls in ((a[i], "all"), (s[i], "sub")):
            if n:
                out.append(f'<rect class="{cls}" x="{x(lo) + 1:.1f}" y="{y(n):.1f}" width="{bw - 2:.1f}" '
                           f'height="{T + ph - y(n):.1f}"><title>{tip}</title></rect>')
    for v in np.linspace(0, hi, 6):
        out.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{T + ph}" y2="{T + ph + 5}" class="axis"/>'
                   f'<text x="{x(v):.1f}" y="{T + ph + 18}" text-anchor="middle">{v:.1f}</text>')
    out.append(f'<line x1="{L}" x2="{W - R}" y1="{T + ph}" y2="{T + ph}" class="axis"/>'
               f'<line x1="{L}" x2="{L}" y1="{T}" y2="{T + ph}" class="axis"/>'
               f'<text x="{L + pw / 2}" y="{H - 8}" text-anchor="middle" class="label">{esc(xlabel)}</text>'
               f'<text transform="translate(16 {T + ph / 2}) rotate(-90)" text-anchor="middle" class="label">images</text>'
               f'<rect class="all" x="{L + 8}" y="6" width="12" height="12"/><text x="{L + 24}" y="16">{esc(key1)}</text>'
               f'<rect class="sub" x="{L + 44 + 7 * len(key1)}" y="6" width="12" height="12"/>'
               f'<text x="{L + 60 + 7 * len(key1)}" y="16">{esc(key2)}</text>'
               "</svg>")
    return "".join(out)


def listed_files(title: str, anchor: str, rows: list, total: int, why: str, note: str) -> str:
    """A table of files shown by name only (unreadable files, copies) with a placeholder and why."""
    if not total:
        return ""
    body = "".join(
        f'<tr><td>{placeholder(note, r["path"])}</td><td class="path">{esc(r["path"])}</td><td>{esc(r.get(why, ""))}</td></tr>'
        for r in rows
    )
    more = f'<p class="muted">{total - len(rows):,} more not listed.</p>' if total > len(rows) else ""
    return (f'<section id="{anchor}"><h2>{esc(title)} ({total:,})</h2><table class="files"><thead><tr><th></th><th>path</th>'
            f"<th>{esc(why)}</th></tr></thead><tbody>{body}</tbody></table>{more}</section>")


# Clean runs ------------------------------------------------------------------------------------


def clean_report(run: Run, top: int) -> str:
    s = run.summary
    found = scan_list(run, top)
    per_class, quality, flagged_quality = scan_scores(run)
    members = s.get("members") or {}
    member_text = ", ".join(f"{m} (weight {w:g})" if isinstance(w, (int, float)) else str(m) for m, w in
                            (members.items() if isinstance(members, dict) else ((m, None) for m in members)))
    parts = [
        '<section id="summary"><h2>Summary</h2>',
        stats([("images", num(s.get("images")), "images"), ("readable", num(s.get("readable")), "readable"),
               ("unreadable", num(s.get("unreadable")), "unreadable"), ("classes", num(s.get("classes")), "classes"),
               ("flagged", num(s.get("flagged")), "flagged for review"),
               ("estimated_noise_rate", share(s.get("estimated_noise_rate")), "estimated label noise"),
               ("committee_disagreement", share(s.get("committee_disagreement")), "committee disagrees with label")]),
        facts([("committee", member_text), ("profile", str(s.get("profile", ""))), ("tau", str(s.get("tau", ""))),
               ("scheme", f"{s.get('scheme', '')}, {s.get('folds', '')} folds" if s.get("scheme") else ""),
               ("judgements per image", str(s.get("judgements_per_image", ""))),
               ("fusion / label quality", " / ".join(str(s[k]) for k in ("fusion", "label_quality") if k in s)),
               ("wall time", f"{s['wall_time_s']} s" if "wall_time_s" in s else "")]),
        class_table(run, per_class), "</section>",
        pairs_section(run, found, "Given → suggested label among flagged images", ("given", "suggested"), "flagged images"),
        (f'<section id="histogram"><h2>Label quality</h2><p class="muted">label_quality ({esc(s.get("label_quality", "self_confidence"))}) '
         "is how well the committees back the given label, from 0 to 1: low values are likely mislabels.</p>"),
        histogram(quality, flagged_quality, ("label_quality", "readable images", "flagged"))
        if len(quality) else '<p class="muted">No scores.csv in the run directory.</p>',
        "</section>",
        suspects(run, found, top),
        health_section(run, found),
        listed_files("Unreadable files", "unreadable", found.unreadable, found.n_unreadable, "reason", "unreadable"),
    ]
    return "".join(parts)


def health_section(run: Run, found: Listing) -> str:
    """Counts per data-health issue (summary.json: rows to decide, then those reported only, listed in
    health.csv) and the first rows of review.csv whose main issue is a data-health one, each beside the
    other files of its duplicate group."""
    counts = {k: n for k, n in (run.summary.get("issues") or {}).items() if k not in (*FLAGGED, "unreadable")}
    if not counts and not found.n_health:
        return ""
    reported = run.summary.get("reported_only") or {}
    tiles = stats([(k, num(n), k.replace("_", " ") + (" (reported, in health.csv)" if k in reported else ""))
                   for k, n in counts.items()])
    notes = "".join(f'<p class="muted">{esc(n)}</p>' for n in run.summary.get("health_notes", []))
    members = group_members(run, {r.get("duplicate_group", "") for r in found.health})
    body = "".join(
        f'<tr><td>{thumb(run, r, r["path"])}</td><td class="path">{esc(r["path"])}</td>'
        f'<td>{esc(str(r.get("issue", "")).replace(";", ", "))}</td><td>{esc(r.get("suggested_label", ""))}</td>'
        f'<td>{esc(r.get("detail", ""))}</td><td>{group_strip(run, r, members)}</td></tr>'
        for r in found.health
    )
    more = f'<p class="muted">{found.n_health - len(found.health):,} more in the review list.</p>' if found.n_health > len(found.health) else ""
    table = (f'<table class="files"><thead><tr><th></th><th>path</th><th>issue</th><th>suggested</th><th>why</th>'
             f'<th>its group</th></tr></thead><tbody>{body}</tbody></table>') if body else \
        '<p class="muted">No image in the review list for a data-health issue.</p>'
    return f'<section id="health"><h2>Data health ({found.n_health:,} to decide)</h2>{tiles}{notes}{table}{more}</section>'


GROUP_SHOWN = 4  # other files of a duplicate group shown beside a row


def group_strip(run: Run, row: dict, members: dict) -> str:
    """Thumbnails of the other files of the row's duplicate group, each with its label ('' for none)."""
    others = [m for m in members.get(row.get("duplicate_group", ""), []) if m["path"] != row["path"]][:GROUP_SHOWN]
    shots = "".join(f'<figure class="mini" title="{esc(m["path"])}">{thumb(run, m, m["path"])}'
                    f'<figcaption>{esc(m["given_label"])}</figcaption></figure>' for m in others)
    return f'<div class="minis">{shots}</div>' if shots else ""


def class_table(run: Run, per_class: dict) -> str:
    if not per_class:
        return ""
    recorded = run.summary.get("flagged_per_class") or {}
    rows = []
    for c, (images, flagged) in per_class.items():
        flagged = recorded.get(c, flagged)
        rate = flagged / images if images else 0.0
        rows.append(f'<tr class="cls"><td class="name">{esc(c)}</td><td class="n images">{num(images)}</td>'
                    f'<td class="n flagged">{num(flagged)}</td><td class="n">{share(rate) if images else "–"}</td>'
                    f'<td class="barcell"><span class="bar" style="width:{min(rate, 1) * 100:.1f}%"></span></td></tr>')
    return ('<h3>Per class</h3><table class="classes"><thead><tr><th>class</th><th>images</th><th>flagged</th>'
            f'<th>flagged share</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def suspects(run: Run, found: Listing, top: int) -> str:
    if not found.top:
        return '<section id="suspects"><h2>Top suspects</h2><p class="muted">No image was flagged.</p></section>'
    cards = []
    members = group_members(run, {r.get("duplicate_group", "") for r in found.top})
    for i, r in enumerate(found.top, 1):
        given, suggested = r.get("given_label", ""), r.get("suggested_label", "")
        alt = f"{unneutralise(r['path'])}: given {unneutralise(given)}, suggested {unneutralise(suggested)}"
        cards.append(
            f'<figure class="card {esc(r.get("issue", ""))}"><div class="thumb">{thumb(run, r, alt)}</div><figcaption>'
            f'<div class="order">#{i} <span class="issue">{esc(r.get("issue", "").replace("_", " "))}</span></div>'
            f'<div class="path">{esc(r["path"])}</div>'
            f'<div class="labels">{relabel(given, suggested)} <span class="muted">p {dec(r.get("suggested_prob"), 2)}</span></div>'
            f'<div class="meta">quality <b>{dec(r.get("label_quality"))}</b>'
            + (f' · flags {esc(r["flag_count"])}/{esc(r.get("rounds", ""))}' if r.get("flag_count") else "")
            + f"</div>{votes(r)}{group_strip(run, r, members)}</figcaption></figure>"
        )
    n = sum(found.pairs.values())
    return (f'<section id="suspects"><h2>Top suspects</h2><p class="muted">The first {len(cards):,} of {n:,} flagged images '
            f'in review.csv order (most flags, then lowest label quality).</p><div class="grid">{"".join(cards)}</div></section>')


# Select runs -----------------------------------------------------------------------------------


def select_report(run: Run, top: int) -> str:
    s = run.summary
    found = scan_list(run, top)
    candidates = np.concatenate(found.scores + [np.empty(0)])
    pool_scores = scan_pool(run)
    hi = max(1.0, float(np.nanmax(pool_scores, initial=0)), float(np.nanmax(candidates, initial=0)))
    hi = float(np.ceil(hi * 2) / 2)
    budget = s.get("budget")
    classes = s.get("classes") or []
    parts = [
        '<section id="summary"><h2>Summary</h2>',
        stats([("pool", num(s.get("pool")), "pool images"), ("skipped", num(s.get("skipped")), "skipped"),
               ("candidates", num(s.get("candidates")), "candidates"), ("disagree", num(s.get("disagree")), "disagree"),
               ("low_confidence", num(s.get("low_confidence")), "low confidence"),
               ("duplicates", num(s.get("duplicates")), "duplicates"), ("unreadable", num(s.get("unreadable")), "unreadable"),
               ("budget", num(budget) if budget is not None else "all", "budget")]),
        facts([("ranking method", str(s.get("method", "")) + (", diverse" if s.get("diverse") else "")),
               ("skip rule", str(s.get("skip_rule", ""))), ("committee", str(s.get("committee", ""))),
               ("classes", ", ".join(map(str, classes)) if isinstance(classes, list) else str(classes)),
               ("wall time", f"{s['wall_time_s']} s" if "wall_time_s" in s else "")]),
        "</section>",
        pairs_section(run, found, "Production → committee label among candidates", ("production", "committee"), "candidates"),
        (f'<section id="histogram"><h2>Disagreement</h2><p class="muted">How strongly the committee disagrees with '
         f'production ({esc(s.get("method", ""))}): higher is more worth labeling.</p>'),
        histogram(pool_scores if len(pool_scores) else candidates, candidates,
                  ("disagreement", "pool images" if len(pool_scores) else "candidates", "candidates"), hi),
        "</section>",
        ranking(run, found),
        listed_files("Copies", "copies", found.copies, found.n_copies, "detail", "copy"),
        listed_files("Unreadable files", "unreadable", found.unreadable, found.n_unreadable, "detail", "unreadable"),
    ]
    return "".join(parts)


def ranking(run: Run, found: Listing) -> str:
    if not found.top:
        return '<section id="ranking"><h2>Ranking</h2><p class="muted">No candidate to label.</p></section>'
    cards = []
    for r in found.top:
        prod, sugg = r.get("production_label", ""), r.get("suggested_label", "")
        budget = r.get("in_budget", "") == "True"
        alt = f"{unneutralise(r['path'])}: production {unneutralise(prod)}, committee {unneutralise(sugg)}"
        cards.append(
            f'<figure class="card{" budget" if budget else ""}"><div class="thumb">{thumb(run, r, alt)}</div><figcaption>'
            f'<div class="order">#<span class="rank">{esc(r.get("rank", ""))}</span>'
            + (' <span class="badge">in budget</span>' if budget else "")
            + f' <span class="issue">{esc(r.get("reason", "").replace("_", " "))}</span></div><div class="path">{esc(r["path"])}</div>'
            f'<div class="labels">{relabel(prod, sugg)} <span class="muted">p {dec(r.get("suggested_prob"), 2)}</span></div>'
            f'<div class="meta">disagreement <b>{dec(r.get("disagreement"))}</b> · production score '
            f'<b>{dec(r.get("production_score"), 2)}</b></div>{votes(r)}</figcaption></figure>'
        )
    n = sum(found.pairs.values())
    return (f'<section id="ranking"><h2>Ranking</h2><p class="muted">The first {len(cards):,} of {n:,} candidates in '
            f'selection.csv order; green cards are in the budget.</p><div class="grid">{"".join(cards)}</div></section>')


# The page --------------------------------------------------------------------------------------

CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--accent:#0969da;--bad:#cf222e;--good:#1a7f37}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1200px;padding:24px 32px 48px;color:var(--fg);background:#fff;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:20px 0 6px}
.muted{color:var(--muted)}header p{margin:2px 0}
nav{margin:12px 0 0;display:flex;gap:14px;flex-wrap:wrap}nav a{color:var(--accent);text-decoration:none}
.stats{display:grid;grid-template-columns:repeat(auto-fill,minmax(124px,1fr));gap:10px;margin:8px 0 14px}
.stat{border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:var(--soft)}
.stat b{display:block;font-size:22px;font-variant-numeric:tabular-nums}.stat span{color:var(--muted);font-size:12px}
table{border-collapse:collapse}th,td{text-align:left;padding:4px 10px;border-bottom:1px solid var(--line);vertical-align:middle}
th{font-weight:600;color:var(--muted);font-size:12px}
.facts th{width:190px}.facts td,.facts th{border:0;padding:2px 10px 2px 0}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.barcell{width:200px}.bar{display:block;height:8px;background:var(--bad);border-radius:4px;opacity:.75}
.pairs td.from,.pairs td.to{font-weight:600}.pairs td.arrow{color:var(--muted);padding:4px 0}
.minis{display:flex;gap:6px;flex-wrap:wrap}
.mini{margin:0;width:80px}.mini img,.mini .ph{width:80px;height:80px;object-fit:contain;background:var(--soft);border-radius:4px}
.mini figcaption{font-size:10px;color:var(--muted);overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.hist{width:100%;max-width:760px;height:auto;font-size:12px}.hist text{fill:var(--fg)}.hist .label{fill:var(--muted);font-size:13px}
.hist .gl{stroke:#eaeef2}.hist .axis{stroke:#8c959f}.hist .all{fill:#b6c2cf}.hist .sub{fill:var(--bad);opacity:.85}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px}
.card{margin:0;border:1px solid var(--line);border-radius:8px;overflow:hidden;background:#fff;break-inside:avoid}
.card.budget{border:2px solid var(--good)}
.thumb{height:128px;display:flex;align-items:center;justify-content:center;background:var(--soft)}
.thumb img{max-width:100%;max-height:128px}
.card figcaption{padding:8px 10px;font-size:12.5px}
.card .path,td.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:11.5px;word-break:break-all}
.order{color:var(--muted);font-size:11px}.labels{margin:3px 0;font-size:14px}.given{text-decoration:line-through;color:var(--muted)}.same{color:var(--muted)}
.suggested{color:var(--accent)}.votes,.meta{color:var(--muted)}.meta b,.votes b{color:var(--fg);font-weight:600}
.issue{color:var(--bad);margin-left:4px}.badge{background:var(--good);color:#fff;border-radius:10px;padding:0 7px;font-size:10.5px;margin-left:4px}
.ph{display:flex;align-items:center;justify-content:center;width:96px;height:96px;border:1px dashed #afb8c1;
 border-radius:6px;color:var(--muted);font-size:11px;text-align:center;background:var(--soft)}
.files .ph{width:56px;height:36px;font-size:10px}
footer{margin-top:40px;color:var(--muted);font-size:12px}
@media print{body{max-width:none;padding:0}nav{display:none}h2{break-after:avoid}tr,.card,.mini{break-inside:avoid}}
"""


def page(run: Run, body: str) -> str:
    from .. import __version__

    kind = run.kind
    title = f"datacleaner {kind} report: {run.folder.resolve().name}"
    where = "dataset" if kind == "clean" else "pool"
    missing = "" if run.root is not None else ' <span class="issue">(not found: thumbnails are placeholders)</span>'
    sections = [("summary", "Summary"), ("pairs", "Label pairs"),
                ("histogram", "Label quality" if kind == "clean" else "Disagreement"),
                ("suspects" if kind == "clean" else "ranking", "Top suspects" if kind == "clean" else "Ranking")]
    sections += [(a, t) for a, t in (("health", "Data health"), ("copies", "Copies"), ("unreadable", "Unreadable"))
                 if f'id="{a}"' in body]
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in sections)
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body><header><h1>{esc(title)}</h1>"
        f'<p class="muted">run <code>{esc(run.folder.resolve())}</code></p>'
        f'<p class="muted">{where} <code>{esc(run.root_text or "unknown")}</code>{missing}</p><nav>{nav}</nav></header>'
        f"<main>{body}</main><footer>Made by datacleaner {esc(__version__)} on {made}. Counts and "
        f"histograms use every row; thumbnails show the first rows only.</footer></body></html>\n"
    )
