// datacleaner review: a grid of the list's images, decisions by keyboard, saved as they are made.
// Every text from the data goes in through textContent, never as HTML.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const S = {
  meta: null,
  filter: { given: "", suggested: "", issue: "", status: "all" },
  offset: 0, limit: 60, rows: [], matching: 0, focus: 0,
  undo: [],  // decisions made here: {result: promise of {changed: [{path, previous}]}, path and was for one card}
  bulk: false, refs: {},
};
const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const headers = { "X-Datacleaner-Token": token };
  const opts = body === undefined ? { headers } :
    { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

const query = (params) => new URLSearchParams(params).toString();
const imageUrl = (path, size) => "/image?" + query({ path, size });

function message(text) { $("message").textContent = text || ""; }

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function option(select, value, text) {
  const o = el("option", "", text);
  o.value = value;
  select.appendChild(o);
}

// Loading ---------------------------------------------------------------------------------

async function init() {
  S.meta = await api("/api/meta");
  const m = S.meta;
  $("listname").textContent = m.list;
  for (const key of ["given", "suggested", "issue"]) {
    const sel = $("f-" + key);
    option(sel, "", "all");
    for (const [value, n] of m.filters[key]) option(sel, value, `${value} (${n})`);
    sel.addEventListener("change", () => { S.filter[key] = sel.value; $("f-pair").value = ""; reload(0); });
  }
  const pair = $("f-pair");
  option(pair, "", "all");
  m.filters.pair.forEach(([g, s, n], i) => option(pair, String(i), `${g} → ${s} (${n})`));
  pair.addEventListener("change", () => {
    const [g, s] = pair.value ? m.filters.pair[Number(pair.value)] : ["", ""];
    S.filter.given = g; S.filter.suggested = s;
    $("f-given").value = g; $("f-suggested").value = s;
    reload(0);
  });
  $("f-status").addEventListener("change", () => { S.filter.status = $("f-status").value; reload(0); });
  for (const c of m.classes.concat([m.drop])) option($("class-list"), c, c);
  $("digits").textContent = "· digit keys: " + m.classes.slice(0, 9).map((c, i) => `${i + 1}=${c}`).join("  ");
  $("typeahead").addEventListener("keydown", typeahead);
  $("bulk").addEventListener("click", () => setBulk(true));
  $("bulk-cancel").addEventListener("click", () => setBulk(false));
  $("bulk-accept").addEventListener("click", () => bulkDecide("accept"));
  $("bulk-keep").addEventListener("click", () => bulkDecide("keep"));
  $("prev").addEventListener("click", () => page(-1));
  $("next").addEventListener("click", () => page(1));
  $("lightbox").addEventListener("click", closeLightbox);
  document.addEventListener("keydown", onKey);
  await reload("first");
}

async function reload(offset, focus = 0) {
  const data = await api("/api/rows?" + query({ ...S.filter, offset, limit: S.limit }));
  S.rows = data.rows; S.offset = data.offset; S.matching = data.matching;
  if (offset === "first") focus = data.first_unreviewed === null ? 0 : data.first_unreviewed - data.offset;
  S.focus = Math.max(0, Math.min(focus, S.rows.length - 1));
  counters(data);
  render();
}

function counters(data) {
  $("progress").textContent = `reviewed ${data.reviewed} of ${data.total}`;
  const last = Math.min(S.offset + S.rows.length, S.matching);
  $("pageinfo").textContent = S.matching ? `${S.offset + 1}–${last} of ${S.matching}` : "no rows match";
  $("prev").disabled = S.offset === 0;
  $("next").disabled = S.offset + S.limit >= S.matching;
}

// Drawing ---------------------------------------------------------------------------------

function describe(r) {
  return `${r.shown_path}: ${S.meta.given_name} ${r.given || "?"}, suggested ${r.suggested || "none"}`;
}

function decisionText(r) {
  if (!r.reviewed) return "";
  return r.reviewed === S.meta.drop ? "drop" : `→ ${r.reviewed}` + (r.reviewed === r.given ? " (kept)" : "");
}

function thumb(r, size, cls) {
  const img = new Image();
  img.className = cls;
  img.alt = describe(r);
  img.src = imageUrl(r.path, size);
  img.addEventListener("error", () => {
    const box = el("div", "nothumb", "cannot show this image" + (r.detail ? ": " + r.detail : ""));
    img.replaceWith(box);
  });
  return img;
}

function card(r, k) {
  const c = el("article", "card");
  c.tabIndex = -1;
  c.dataset.k = k;
  c.dataset.path = r.path;
  if (r.reviewed) c.classList.add("done");
  if (S.bulk) c.classList.add("selected");
  const img = thumb(r, "thumb", "thumb");
  img.loading = "lazy";
  img.addEventListener("click", (e) => { e.stopPropagation(); setFocus(k); openLightbox(); });
  c.appendChild(img);
  c.appendChild(el("div", "path", r.shown_path)).title = r.shown_path;
  const prob = r.prob === null ? "" : ` (${r.prob.toFixed(2)})`;
  c.appendChild(el("div", "labels", `${r.given || "?"} → ${r.suggested || "none"}${prob}`));
  if (r.score !== null) c.appendChild(el("div", "score", `${r.score_name} ${r.score.toFixed(3)}` + (r.rank ? ` · rank ${r.rank}` : "")));
  const votes = Object.entries(r.votes).map(([m, v]) => `${m}: ${v || "-"}`).join(", ");
  if (votes) c.appendChild(el("div", "votes", "votes " + votes));
  c.appendChild(el("div", "issue", r.issue + (r.detail ? ": " + r.detail : "")));
  if (r.group.length) c.appendChild(groupStrip(r, 3));
  const d = el("div", "decision" + (r.reviewed === S.meta.drop ? " drop" : ""), decisionText(r));
  c.appendChild(d);
  c.addEventListener("click", () => setFocus(k));
  return c;
}

function groupStrip(r, limit) {
  // the other files of the row's duplicate group, each with its label: the decision is made by looking
  const strip = el("div", "grouprow");
  for (const m of r.group.slice(0, limit)) {
    const fig = el("figure", "member");
    const img = new Image();
    img.src = imageUrl(m.path, "thumb");
    img.alt = `same picture: ${m.shown_path}, labelled ${m.label}`;
    img.title = m.shown_path;
    fig.appendChild(img);
    fig.appendChild(el("figcaption", "", m.label));
    strip.appendChild(fig);
  }
  return strip;
}

function render() {
  const grid = $("grid");
  grid.replaceChildren(...S.rows.map(card));
  setFocus(S.focus);
}

function setFocus(k) {
  if (!S.rows.length) { $("focus-view").replaceChildren(el("p", "", "No rows match these filters.")); $("refs").replaceChildren(); return; }
  S.focus = Math.max(0, Math.min(k, S.rows.length - 1));
  for (const c of document.querySelectorAll(".card.focus")) c.classList.remove("focus");
  const c = document.querySelector(`.card[data-k="${S.focus}"]`);
  if (c) { c.classList.add("focus"); c.focus({ preventScroll: true }); c.scrollIntoView({ block: "nearest" }); }
  showSide(S.rows[S.focus]);
}

function showSide(r) {
  const view = el("div");
  view.appendChild(thumb(r, "large", "large"));
  const dl = el("dl");
  const facts = [["path", r.shown_path], [S.meta.given_name, r.given], ["suggested", r.suggested + (r.prob === null ? "" : ` (${r.prob})`)],
    [r.score_name, r.score], ["issue", r.issue + (r.detail ? ": " + r.detail : "")],
    ["votes", Object.entries(r.votes).map(([m, v]) => `${m}: ${v}`).join(", ")],
    ["decision", r.reviewed ? `${r.reviewed} (${r.by}, ${r.at})` : "not reviewed"]];
  for (const [k, v] of facts) {
    if (v === null || v === "" || v === undefined) continue;
    dl.appendChild(el("dt", "", k));
    dl.appendChild(el("dd", "", String(v)));
  }
  view.appendChild(dl);
  if (r.group.length) {
    view.appendChild(el("h2", "", `its group: ${r.group.length} other file${r.group.length > 1 ? "s" : ""}`));
    view.appendChild(groupStrip(r, r.group.length));
  }
  $("focus-view").replaceChildren(view);
  showReferences(r);
}

async function references(cls) {
  if (!(cls in S.refs)) S.refs[cls] = (await api("/api/references?" + query({ cls }))).paths;
  return S.refs[cls];
}

async function showReferences(r) {
  const box = $("refs");
  if (!S.meta.has_references) { box.replaceChildren(); return; }
  const wanted = [...new Set([r.suggested, r.given].filter(Boolean))];
  const parts = [];
  for (const cls of wanted) {
    const paths = await references(cls);
    if (S.rows[S.focus] !== r) return;  // focus moved on meanwhile
    parts.push(el("h2", "", `${cls}: images the committee is surest of`));
    const row = el("div", "refrow");
    for (const p of paths) {
      const img = new Image();
      img.src = imageUrl(p, "thumb");
      img.alt = `reference for ${cls}: ${p}`;
      img.title = p;
      row.appendChild(img);
    }
    parts.push(row);
  }
  box.replaceChildren(...parts);
}

function openLightbox() {
  const r = S.rows[S.focus];
  if (!r) return;
  $("lightbox-img").src = imageUrl(r.path, "large");
  $("lightbox-img").alt = describe(r);
  $("lightbox-caption").textContent = describe(r);
  $("lightbox").hidden = false;
}

function closeLightbox() { $("lightbox").hidden = true; }

// Deciding --------------------------------------------------------------------------------

function saved(res) {
  $("saved").textContent = "saved " + res.saved_at.slice(11, 19) + " UTC";
  counters(res);
}

// Writes go out one after another, in the order the keys were pressed, so an undo always
// follows the decision it takes back; the focus moves on at once, without waiting for the disk.
let queue = Promise.resolve();
function send(path, body) {  // body: an object, or a function giving one when its turn comes
  const done = queue.then(async () => api(path, typeof body === "function" ? await body() : body));
  queue = done.catch(() => {});
  return done;
}

async function decide(label) {
  const r = S.rows[S.focus];
  if (!r) return;
  if (!label) { message("this row has no suggested label; pick a class or drop it"); return; }
  const k = S.focus;
  const was = { reviewed: r.reviewed, by: r.by, at: r.at };
  Object.assign(r, { reviewed: label, by: S.meta.reviewer, at: "" });
  redraw(k);
  if (k + 1 < S.rows.length) setFocus(k + 1);
  else if (S.offset + S.limit < S.matching) reload(S.offset + S.limit, 0);
  $("saved").textContent = "saving…";
  const result = send("/api/decide", { decisions: [{ path: r.path, label }] });
  S.undo.push({ result, path: r.path, was });
  try {
    const res = await result;
    message("");
    saved(res);
    if (S.filter.status === "unreviewed") reloadKeepingFocus();  // the card leaves this view
  } catch (err) {
    Object.assign(r, was);
    redraw(k);
    message("not saved: " + err.message);
  }
}

function redraw(k) {
  const old = document.querySelector(`.card[data-k="${k}"]`);
  if (!old) return;
  const fresh = card(S.rows[k], k);
  if (old.classList.contains("focus")) fresh.classList.add("focus");
  old.replaceWith(fresh);
}

async function reloadKeepingFocus() {
  const path = S.rows[S.focus] && S.rows[S.focus].path;
  await reload(S.offset, S.focus);
  const k = S.rows.findIndex((r) => r.path === path);
  if (k >= 0) setFocus(k);
}

async function undo() {
  const last = S.undo.pop();
  if (!last) { message("nothing to undo"); return; }
  const k = last.path ? S.rows.findIndex((r) => r.path === last.path) : -1;
  if (k >= 0) {  // at once, before the next key: the card shows its old state and has the focus
    Object.assign(S.rows[k], last.was);
    redraw(k);
    setFocus(k);
  }
  let rows = [];
  try {
    const res = await send("/api/restore", async () => {
      rows = (await last.result).changed.map((c) => ({ path: c.path, ...c.previous }));
      return { rows };
    });
    saved(res);
    message(`undone: ${rows.length} decision${rows.length === 1 ? "" : "s"}`);
    if (k < 0 || S.filter.status !== "all") await reloadKeepingFocus();
  } catch (err) {
    message("undo not saved: " + err.message);
    await reloadKeepingFocus();
  }
}

function setBulk(on) {
  S.bulk = on;
  $("bulkbar").hidden = !on;
  $("bulkcount").textContent = `${S.matching} card${S.matching === 1 ? "" : "s"} selected (every page of this filter):`;
  for (const c of document.querySelectorAll(".card")) c.classList.toggle("selected", on);
}

async function bulkDecide(action) {
  try {
    const result = send("/api/decide", { filter: S.filter, action });
    S.undo.push({ result });
    const res = await result;
    saved(res);
    message(`${action === "accept" ? "accepted" : "kept"}: ${res.changed.length} row${res.changed.length === 1 ? "" : "s"} (u undoes them together)`);
    setBulk(false);
    await reload(S.filter.status === "unreviewed" ? 0 : S.offset, 0);
  } catch (err) {
    message("not saved: " + err.message);
  }
}

function matchClass(text) {
  const t = text.trim().toLowerCase();
  if (!t) return null;
  const all = S.meta.classes.concat([S.meta.drop]);
  const exact = all.find((c) => c.toLowerCase() === t);
  if (exact) return exact;
  const starts = all.filter((c) => c.toLowerCase().startsWith(t));
  if (starts.length) return starts[0];
  return all.find((c) => c.toLowerCase().includes(t)) || null;
}

function typeahead(e) {
  if (e.key === "Escape") { e.target.value = ""; e.target.blur(); return; }
  if (e.key !== "Enter") return;
  e.preventDefault();
  const cls = matchClass(e.target.value);
  if (!cls) { message(`no class matches '${e.target.value}'`); return; }
  e.target.value = "";
  e.target.blur();
  decide(cls);
}

// Moving ----------------------------------------------------------------------------------

function columns() {
  const cards = document.querySelectorAll(".card");
  if (!cards.length) return 1;
  const top = cards[0].offsetTop;
  let n = 0;
  for (const c of cards) { if (c.offsetTop !== top) break; n += 1; }
  return Math.max(n, 1);
}

async function move(step) {
  const k = S.focus + step;
  if (k >= S.rows.length && S.offset + S.limit < S.matching) return reload(S.offset + S.limit, 0);
  if (k < 0 && S.offset > 0) return reload(Math.max(S.offset - S.limit, 0), S.limit - 1);
  setFocus(k);
}

function page(dir) {
  const offset = S.offset + dir * S.limit;
  if (offset < 0 || offset >= S.matching) return;
  reload(offset, 0);
}

function onKey(e) {
  if (e.target.matches("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
  if (!$("lightbox").hidden) { if (["Escape", "Enter", " "].includes(e.key)) { closeLightbox(); e.preventDefault(); } return; }
  const r = S.rows[S.focus];
  const actions = {
    a: () => decide(r && r.suggested),
    g: () => decide(r && r.given),
    x: () => decide(S.meta.drop),
    u: () => undo(),
    ArrowRight: () => move(1), ArrowLeft: () => move(-1),
    ArrowDown: () => move(columns()), ArrowUp: () => move(-columns()),
    Enter: () => openLightbox(),
    "/": () => $("typeahead").focus(),
    n: () => page(1), PageDown: () => page(1), p: () => page(-1), PageUp: () => page(-1),
  };
  let act = actions[e.key];
  if (!act && /^[1-9]$/.test(e.key) && S.meta.classes[Number(e.key) - 1] !== undefined) act = () => decide(S.meta.classes[Number(e.key) - 1]);
  if (!act) return;
  e.preventDefault();
  act();
}

init().catch((err) => message("could not load the list: " + err.message));
