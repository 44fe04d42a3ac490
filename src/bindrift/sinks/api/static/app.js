// bindrift Incident Explorer. Every string from the API may come from an attacker (paths, arguments,
// container names): it is only ever written as text (textContent), never as markup, and links are built
// only from values checked against a strict pattern. The token stays in sessionStorage and travels in
// the Authorization header, never in a URL.
"use strict";

const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const COLORS = { critical: "#8e0a1d", high: "#d2362b", medium: "#e08a00", low: "#2f7fc1", info: "#7a8594" };
const CATEGORIES = ["Suspicious binary", "Added Binary Executed", "Modified Binary Executed",
  "Added Malicious Binary Executed", "Modified Malicious Binary Executed", "Added Library Loaded",
  "Fileless execution", "Added Script Executed", "Coverage degraded", "Prevention degraded"];
const TOKEN_KEY = "bindrift-token";
const FILTERS = ["category", "severity", "exact_severity", "state", "cluster", "namespace", "pod", "image", "node", "since",
  "until", "q", "sort", "isort"];
const PAGE = 25;
const SVG = "http://www.w3.org/2000/svg";
let me = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "href") node.setAttribute("href", safeHref(value));
    else node.setAttribute(key, value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function safeHref(value) {
  // Internal routes, and the two external sites whose URLs are built from checked values below.
  if (/^#\/[A-Za-z0-9/_?=&%.-]*$/.test(value)) return value;
  if (/^https:\/\/www\.virustotal\.com\/gui\/file\/[0-9a-f]{64}$/.test(value)) return value;
  if (/^https:\/\/attack\.mitre\.org\/techniques\/T\d{4}(\/\d{3})?\/$/.test(value)) return value;
  return "#/";
}

const sev = (s) => el("span", { class: `sev sev-${SEVERITIES.includes(s) ? s : "info"}` }, s);
const short = (text, n = 12) => (text || "").slice(0, n);

// ------------------------------------------------------------------------------- hostile text, shown inert

// Characters that cannot be seen or that change how the text around them reads: controls, bidirectional
// embeddings, overrides and isolates, zero-width and other format characters, line and paragraph separators,
// spaces other than U+0020, fillers that render blank, private-use and unassigned code points.
const HIDDEN = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\u115f\u1160\u3164\uffa0\u2800]/u;
const HIDDEN_ALL = new RegExp(HIDDEN.source, "gu");
const LONG = 160;

function codePoint(ch) {
  return `U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
}

// Text nodes for `text` with every hidden character replaced by a visible ⟨U+XXXX⟩ mark.
function visible(text) {
  if (!HIDDEN.test(text)) return [document.createTextNode(text)];
  const out = [];
  let last = 0;
  for (const match of text.matchAll(HIDDEN_ALL)) {
    if (match.index > last) out.push(document.createTextNode(text.slice(last, match.index)));
    out.push(el("span", { class: "cc", title: `hidden character ${codePoint(match[0])}` }, `⟨${codePoint(match[0])}⟩`));
    last = match.index + match[0].length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

// The same as a plain string, for attributes and exact-text comparisons.
const visibleText = (text) => String(text ?? "").replace(HIDDEN_ALL, (ch) => `⟨${codePoint(ch)}⟩`);

// A workload string (path, argument, name, reason…) as inert text: its direction isolated from what surrounds
// it, hidden characters visible, and a value longer than `max` cut, with buttons to show and copy all of it.
function txt(value, max = LONG) {
  const text = value === undefined || value === null ? "" : String(value);
  const node = el("bdi", { dir: "ltr", class: "v" });
  if (text.length <= max) return append(node, visible(text));
  let head = text.slice(0, max);
  if (/[\ud800-\udbff]$/.test(head)) head = head.slice(0, -1);
  const collapse = () => node.replaceChildren(...visible(head), el("span", { class: "cut" }, "…"),
    el("button", { type: "button", class: "reveal", title: `${text.length} characters in all`,
      onclick: (event) => { event.stopPropagation(); event.preventDefault(); expand(); } }, `show all ${text.length}`));
  const expand = () => node.replaceChildren(el("span", { class: "full" }, visible(text)),
    el("button", { type: "button", class: "copy", onclick: (event) => { event.stopPropagation(); event.preventDefault();
      copy(text, event.target); } }, "Copy exact value"),
    el("button", { type: "button", class: "reveal", onclick: (event) => { event.stopPropagation(); event.preventDefault();
      collapse(); } }, "show less"));
  collapse();
  return node;
}

function copy(text, button) {
  if (navigator.clipboard) navigator.clipboard.writeText(text).then(() => { button.textContent = "Copied"; }, () => { button.textContent = "Copy refused"; });
}

// ------------------------------------------------------------------------------------------------ times

function utc(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace("T", " ").replace("Z", " UTC");
}

function ago(iso) {
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return "";
  const future = seconds < 0;
  const s = Math.abs(seconds);
  const [n, unit] = s < 60 ? [s, "s"] : s < 3600 ? [s / 60, "min"] : s < 86400 ? [s / 3600, "h"] : [s / 86400, "d"];
  const amount = `${Math.floor(n)} ${unit}`;
  return future ? `in ${amount}` : `${amount} ago`;
}

// A time as UTC to the millisecond with how long ago it was.
const when = (iso) => (iso ? `${utc(iso)} (${ago(iso)})` : "");
const time = (iso) => (iso ? el("time", { datetime: iso, class: "t" }, el("span", { class: "nowrap" }, utc(iso).slice(0, 10)), " ",
  el("span", { class: "nowrap" }, utc(iso).slice(11)), el("span", { class: "rel" }, ago(iso))) : "");

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers, credentials: "omit", cache: "no-store" });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    me = null;
    renderLogin("That token was not accepted.");
    throw new Error("unauthorised");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = JSON.stringify((await response.json()).detail); } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response;
}
const getJSON = async (path) => (await api(path)).json();

function main(...children) {
  const root = document.getElementById("main");
  root.replaceChildren(...children.flat());
}

function renderLogin(message) {
  document.getElementById("who").textContent = "";
  document.getElementById("logout").hidden = true;
  const input = el("input", { type: "password", id: "token", autocomplete: "off", placeholder: "API token" });
  const form = el("form", { class: "panel login", onsubmit: async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    await route();
  } },
  el("h1", {}, "Sign in"),
  el("p", { class: "muted" }, "Paste a read-only or admin token of this bindrift server."),
  message ? el("p", { class: "error" }, message) : null,
  input, el("button", { class: "primary", type: "submit" }, "Sign in"));
  main(form);
  input.focus();
}

function parseHash() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  return { parts: (path || "/").split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || "") };
}

async function route() {
  if (!sessionStorage.getItem(TOKEN_KEY)) { renderLogin(); return; }
  try {
    if (!me) {
      me = await getJSON("/api/v1/me");
      document.getElementById("who").textContent = `${me.name} (${me.role})`;
      document.getElementById("logout").hidden = false;
    }
    const { parts, params } = parseHash();
    if (parts[0] === "incident" && parts[1]) await renderIncident(parts[1], params.get("finding"));
    else if (parts[0] === "finding" && parts[1]) await renderFinding(parts[1]);
    else await renderList(params);
  } catch (error) {
    if (error.message !== "unauthorised") main(el("p", { class: "error" }, `Could not load: ${error.message}`));
  }
}

// ---------------------------------------------------------------------------------------------- list

function filterForm(params) {
  const field = (name, label, control) => el("label", {}, label, control);
  const text = (name, placeholder) => el("input", { name, value: params.get(name) || "", placeholder, size: 12 });
  const select = (name, options) => {
    const node = el("select", { name }, el("option", { value: "" }, "any"),
      options.map((o) => el("option", { value: o }, o)));
    node.value = params.get(name) || "";
    return node;
  };
  const form = el("form", { class: "filters", id: "filters", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) {
      const control = form.elements[name];
      const v = (control ? control.value : params.get(name) || "").trim();
      if (v) next.set(name, v);
    }
    next.set("view", params.get("view") || "incidents");
    location.hash = `#/?${next}`;
  } },
  field("category", "Category", select("category", CATEGORIES)),
  field("exact_severity", "Severity", select("exact_severity", SEVERITIES)),
  field("severity", "Severity at least", select("severity", [...SEVERITIES].reverse())),
  field("state", "State", select("state", ["active", "muted", "resolved"])),
  field("cluster", "Cluster", text("cluster")), field("namespace", "Namespace", text("namespace")),
  field("pod", "Pod", text("pod")), field("image", "Image", text("image")), field("node", "Node", text("node")),
  field("since", "Last seen after", text("since", "24h, 7d, ISO")), field("until", "Last seen before", text("until", "1h, ISO")),
  field("q", "Search", text("q", "path, args, names")),
  el("button", { class: "primary", type: "submit" }, "Filter"),
  el("a", { href: `#/?view=${params.get("view") === "findings" ? "findings" : "incidents"}`, id: "clear-filters" }, "Clear"));
  return form;
}

function query(params, extra) {
  const out = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) out.set(name, params.get(name));
  for (const [k, v] of Object.entries(extra)) {
    if (v === "" || v === null || v === undefined) out.delete(k); else out.set(k, v);
  }
  return out.toString();
}

const svg = (tag, attrs, text) => {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
};

// Findings over time, stacked by severity, drawn at the width it is shown at (redrawn when that changes), so
// bars, ticks and labels stay where they belong. Every bar segment is a link to the findings it counts.
function chart(timeline, params) {
  const box = el("div", { class: "chart", id: "chart" });
  const buckets = timeline.buckets;
  if (!buckets.length) return append(box, [el("p", { class: "muted" }, "No findings in this range.")]);
  const step = timeline.bucket === "day" ? 86400000 : 3600000;
  const label = (iso) => utc(iso).slice(timeline.bucket === "day" ? 0 : 5, timeline.bucket === "day" ? 10 : 16);
  const draw = (width) => {
    const height = 200, left = 44, right = 12, top = 12, bottom = 40;
    const plotW = Math.max(50, width - left - right), plotH = height - top - bottom;
    const total = (b) => SEVERITIES.reduce((n, s) => n + (b.counts[s] || 0), 0);
    const peak = Math.max(1, ...buckets.map(total));
    const ticks = [...new Set([0, Math.round(peak / 2), peak])];
    const image = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Findings over time by severity" });
    const y = (n) => top + plotH - (n / peak) * plotH;
    for (const t of ticks) {
      image.append(svg("line", { x1: left, x2: left + plotW, y1: y(t), y2: y(t), class: t ? "grid" : "axis" }));
      image.append(svg("text", { x: left - 6, y: y(t) + 4, "text-anchor": "end", class: "tick" }, String(t)));
    }
    image.append(svg("line", { x1: left, x2: left, y1: top, y2: top + plotH, class: "axis" }));
    image.append(svg("text", { x: 12, y: top + plotH / 2, "text-anchor": "middle", class: "axis-title",
      transform: `rotate(-90 12 ${top + plotH / 2})` }, "findings"));
    const slot = plotW / buckets.length;
    const barW = Math.max(1, Math.min(48, slot * 0.8));
    const every = Math.max(1, Math.ceil(buckets.length / Math.max(1, Math.floor(plotW / 110))));
    buckets.forEach((bucket, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      let base = 0;
      for (const s of [...SEVERITIES].reverse()) {
        const n = bucket.counts[s] || 0;
        if (!n) continue;
        const end = new Date(new Date(bucket.start).getTime() + step).toISOString();
        const link = svg("a", { href: safeHref(`#/?${query(params, { view: "findings", exact_severity: s, severity: "", since: bucket.start, until: end, offset: "" })}`),
          class: "bar", "data-severity": s, "data-start": bucket.start });
        link.append(svg("rect", { x, y: y(base + n), width: barW, height: Math.max(1, y(base) - y(base + n)), fill: COLORS[s] },
        ), svg("title", {}, `${utc(bucket.start)}: ${n} ${s} — show them`));
        image.append(link);
        base += n;
      }
      if (i % every === 0) {
        const cx = left + i * slot + slot / 2;
        image.append(svg("line", { x1: cx, x2: cx, y1: top + plotH, y2: top + plotH + 4, class: "axis" }));
        image.append(svg("text", { x: cx, y: top + plotH + 17, "text-anchor": "middle", class: "tick" }, label(bucket.start)));
      }
    });
    image.append(svg("text", { x: left + plotW / 2, y: height - 4, "text-anchor": "middle", class: "axis-title" },
      `first seen (UTC), per ${timeline.bucket}`));
    box.querySelector("svg")?.remove();
    box.prepend(image);
  };
  let drawn = 0;
  new ResizeObserver(([entry]) => {
    const width = Math.floor(entry.contentRect.width);
    if (width > 0 && width !== drawn) { drawn = width; draw(width); }
  }).observe(box);
  box.append(el("div", { class: "legend" }, SEVERITIES.map((s) => el("span", {}, el("i", { class: `sev-${s}` }), s)),
    el("span", {}, "click a bar for its findings")));
  return box;
}

async function renderList(params) {
  const view = params.get("view") === "findings" ? "findings" : "incidents";
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const [stats, page] = await Promise.all([
    getJSON(`/api/v1/stats?${query(params, { sort: "", isort: "" })}`),
    getJSON(`/api/v1/${view}?${query(params, { limit: PAGE, offset, isort: "",
      sort: params.get(view === "incidents" ? "isort" : "sort") || "-last_seen" })}`),
  ]);
  const countLink = (s, n) => el("a", { class: `count${params.get("exact_severity") === s ? " active" : ""}`, "data-severity": s,
    href: `#/?${query(params, { view, exact_severity: params.get("exact_severity") === s ? "" : s, severity: "", offset: "" })}`,
    title: `Only ${s} findings` }, el("b", {}, n), sev(s));
  const counts = el("div", { class: "counts", id: "severity-counts" },
    el("a", { class: "count", href: `#/?${query(params, { view, exact_severity: "", severity: "", offset: "" })}` }, el("b", {}, stats.total), "findings"),
    SEVERITIES.map((s) => countLink(s, stats.by_severity[s] || 0)));
  const tab = (name, label) => el("a", { class: view === name ? "active" : "", href: `#/?${query(params, { view: name, offset: "" })}` }, label);
  const table = el("div", { class: "table-scroll" },
    view === "incidents" ? incidentTable(page.items, page.triage || {}, params) : findingTable(page.items, params));
  const nav = (to) => `#/?${query(params, { view, offset: to })}`;
  const pager = el("div", { class: "pager" },
    offset > 0 ? el("a", { href: nav(Math.max(0, offset - PAGE)) }, "← previous") : null,
    `${page.total ? offset + 1 : 0}–${Math.min(offset + PAGE, page.total)} of ${page.total} ${view}`,
    offset + PAGE < page.total ? el("a", { href: nav(offset + PAGE), id: "next-page" }, "next →") : null);
  main(
    el("h1", {}, "Incidents and findings"),
    el("section", { class: "panel" }, counts, chart(stats.timeline, params)),
    el("section", { class: "panel" }, filterForm(params)),
    el("section", { class: "panel" }, el("div", { class: "tabs" }, tab("incidents", "Incidents"), tab("findings", "Findings")), table, pager),
  );
}

// `host NODE` for a finding outside any container, else the workload's name.
function where(resource) {
  if (resource.pod) return `${resource.namespace}/${resource.pod}`;
  if (resource.container_name || resource.container_id) return resource.container_name || short(resource.container_id);
  return `host ${resource.node || ""}`.trim();
}

const isHost = (resource) => !resource.pod && !resource.container_id && !resource.container_name;

// A column header that sorts every page through the API (`sort` in the URL for findings, `isort` for incidents).
function sortHeader(label, key, current, onSort) {
  const direction = current === key ? " ▲" : current === `-${key}` ? " ▼" : "";
  return el("th", { "aria-sort": direction ? (direction === " ▲" ? "ascending" : "descending") : "none" },
    el("button", { type: "button", class: "sort", "data-sort": key, onclick: () => onSort(current === `-${key}` ? key : `-${key}`) }, label, direction));
}

function incidentTable(items, triage, params) {
  if (!items.length) return el("p", { class: "muted" }, "No incidents match.");
  const sortBy = params.get("isort") || "-last_seen";
  const onSort = (next) => { location.hash = `#/?${query(params, { view: "incidents", isort: next, offset: "" })}`; };
  const sorted = (label, key) => sortHeader(label, key, sortBy, onSort);
  return el("table", { id: "incidents", class: "list" },
    el("thead", {}, el("tr", {}, sorted("Severity", "severity"), el("th", {}, "Title"), el("th", {}, "Where"),
      sorted("Owner", "owner"), sorted("State", "state"), sorted("Findings", "count"), sorted("First seen", "first_seen"),
      sorted("Last seen", "last_seen"), el("th", {}, "Image"), el("th", {}, "Node"))),
    el("tbody", {}, items.map((inc) => {
      const t = triage[inc.id] || { title: inc.id, summary: "", state: "new", owner: "", findings_by_state: {} };
      const href = `#/incident/${encodeURIComponent(inc.id)}`;
      return el("tr", { class: "row", "data-id": inc.id, onclick: () => { location.hash = href; } },
        el("td", {}, sev(inc.severity)),
        el("td", { class: "wrap title" }, el("a", { href }, txt(t.title, 100)), el("div", { class: "muted small" }, txt(t.summary, 160))),
        el("td", { class: "wrap where" }, el("span", { class: "scope" }, isHost(inc.resource) ? "host" : (inc.resource.pod ? "pod" : "container")), " ",
          txt(isHost(inc.resource) ? inc.resource.node : where(inc.resource), 48)),
        el("td", { class: "wrap" }, txt(t.owner, 40)), el("td", {}, el("span", { class: "state" }, t.state)),
        el("td", { class: "num" }, inc.finding_ids.length, el("div", { class: "muted small" },
          Object.entries(t.findings_by_state || {}).map(([s, n]) => `${n} ${s}`).join(", "))),
        el("td", {}, time(inc.first_seen)), el("td", {}, time(inc.last_seen)),
        el("td", { class: "wrap name" }, txt(inc.resource.image, 48)), el("td", { class: "wrap name" }, txt(inc.resource.node, 40)));
    })));
}

function findingTable(items, params) {
  if (!items.length) return el("p", { class: "muted" }, "No findings match.");
  const sortBy = params.get("sort") || "-last_seen";
  const onSort = (next) => { location.hash = `#/?${query(params, { view: "findings", sort: next, offset: "" })}`; };
  return el("table", { id: "findings", class: "list" },
    el("thead", {}, el("tr", {}, sortHeader("Severity", "severity", sortBy, onSort), sortHeader("Category", "category", sortBy, onSort),
      el("th", {}, "File"), el("th", {}, "Where"), sortHeader("Count", "count", sortBy, onSort),
      sortHeader("First seen", "first_seen", sortBy, onSort), sortHeader("Last seen", "last_seen", sortBy, onSort), el("th", {}, "State"))),
    el("tbody", {}, items.map((f) => el("tr", { class: "row", "data-id": f.id, onclick: () => { location.hash = findingHref(f); } },
      el("td", {}, sev(f.severity)), el("td", {}, f.category),
      el("td", { class: "mono wrap" }, el("a", { href: findingHref(f) }, txt(f.file.path, 120))),
      el("td", { class: "wrap where" }, txt(where(f.resource), 48)), el("td", { class: "num" }, f.count),
      el("td", {}, time(f.first_seen)), el("td", {}, time(f.last_seen)),
      el("td", {}, el("span", { class: "state" }, f.state))))));
}

function findingHref(finding) {
  return finding.incident_id
    ? `#/incident/${encodeURIComponent(finding.incident_id)}?finding=${encodeURIComponent(finding.id)}`
    : `#/finding/${encodeURIComponent(finding.id)}`;
}

// ------------------------------------------------------------------------------------------ incident

async function renderFinding(id) {
  const finding = await getJSON(`/api/v1/findings/${encodeURIComponent(id)}`);
  if (finding.incident_id) { location.replace(findingHref(finding)); return; }
  main(el("h1", { class: "wrap" }, txt(finding.title, 200)), findingDetail(finding, [finding]));
}

async function renderIncident(id, selectedId) {
  const { incident, findings, triage } = await getJSON(`/api/v1/incidents/${encodeURIComponent(id)}`);
  const selected = findings.find((f) => f.id === selectedId) ||
    [...findings].sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity))[0];
  const r = incident.resource;
  const scope = isHost(r) ? "host" : "container";
  const timeline = el("ol", { class: "timeline", id: "timeline" }, findings.map((f) => el("li", { class: f === selected ? "selected" : "" },
    el("button", { type: "button", "data-id": f.id, onclick: () => { location.hash = `#/incident/${encodeURIComponent(id)}?finding=${encodeURIComponent(f.id)}`; } },
      el("span", { class: "muted" }, when(f.first_seen)), " ", sev(f.severity), " ", f.category, " ",
      el("span", { class: "mono" }, txt(f.file.path, 100)), f.count > 1 ? ` ×${f.count}` : "", " ", el("span", { class: "state" }, f.state)))));
  main(
    el("h1", { class: "wrap", id: "incident-title" }, sev(incident.severity), " ", txt(triage.title, 200)),
    el("section", { class: "panel", id: "triage" },
      el("p", { class: "wrap", id: "incident-summary" }, txt(triage.summary, 400)),
      kv([["Incident", el("span", { class: "mono nowrap" }, incident.id)], ["Scope", scope],
        ["Owner", triage.owner ? txt(triage.owner, 80) : el("span", { class: "muted" }, "nobody")],
        ["State", el("span", { class: "state", id: "incident-state" }, triage.state)],
        ["Set", triage.by ? [txt(triage.by, 80), ", ", when(triage.at)] : ""],
        ["Findings", Object.entries(triage.findings_by_state || {}).map(([s, n]) => `${n} ${s}`).join(", ")]]),
      triageForms(incident, triage)),
    el("div", { class: "grid" },
      el("section", { class: "panel", id: "resource" }, el("h2", {}, "Where"), kv([
        ["Cluster", txt(r.cluster)], ["Node", txt(r.node)], ["Namespace", txt(r.namespace)], ["Pod", txt(r.pod)],
        ["Container", isHost(r) ? "none: on the host" : [txt(r.container_name), " ", el("span", { class: "mono" }, txt(r.container_id))]],
        ["Image", txt(r.image)], ["Image digest", txt(r.image_digest)], ["Runtime", txt(r.runtime)],
        ["First seen", when(incident.first_seen)], ["Last seen", when(incident.last_seen)]])),
      el("section", { class: "panel" }, el("h2", {}, `Timeline of the ${scope}'s findings (${findings.length})`), timeline)),
    selected ? findingDetail(selected, findings) : el("p", {}, "This incident has no findings."),
  );
}

function triageForms(incident, triage) {
  if (!me || me.role !== "admin") return el("p", { class: "muted" }, "Read-only token: triage needs an admin token.");
  const message = el("span", { class: "muted", id: "triage-message" });
  const post = async (path, body) => {
    try {
      const answer = await (await api(`/api/v1/incidents/${encodeURIComponent(incident.id)}/${path}`, { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).json();
      await route();
      const shown = document.getElementById("triage-message");
      if (shown && answer.changed) shown.textContent = `${answer.changed.length} finding(s) ${answer.state === "active" ? "reopened" : answer.state}.`;
    } catch (error) { message.textContent = error.message; }
  };
  const owner = el("input", { id: "incident-owner", value: triage.owner, placeholder: "Owner", maxlength: 255 });
  const state = el("select", { id: "incident-state-select" }, ["new", "investigating", "closed"].map((s) => el("option", { value: s }, s)));
  state.value = triage.state;
  const reason = el("input", { id: "bulk-reason", placeholder: "Why (recorded on every finding with your name)", maxlength: 2000 });
  const bulk = (target) => () => {
    if (!reason.value.trim()) { message.textContent = "Give a reason first."; return; }
    post("state", { state: target, reason: reason.value.trim() });
  };
  return el("div", { class: "triage-forms" },
    el("div", { class: "actions" }, owner, state,
      el("button", { type: "button", id: "save-triage", onclick: () => post("triage", { owner: owner.value.trim(), state: state.value }) }, "Save owner and state")),
    el("div", { class: "actions" }, reason,
      el("button", { type: "button", id: "mute-all", onclick: bulk("muted") }, "Mute all findings"),
      el("button", { type: "button", id: "resolve-all", onclick: bulk("resolved") }, "Resolve all"),
      el("button", { type: "button", id: "reopen-all", onclick: bulk("active") }, "Reopen all")),
    message);
}

function kv(rows) {
  return el("dl", { class: "kv" }, rows.filter(([, v]) => v !== undefined && v !== null && v !== "" && !(v instanceof Node && !v.textContent))
    .map(([k, v]) => [el("dt", {}, k), el("dd", { class: "wrap" }, v)]));
}

function processLine(p) {
  return [el("span", { class: "mono nowrap" }, `pid ${p.pid} `), el("b", { class: "mono wrap" }, txt(p.exe || p.comm || "?", 120)), " ",
    el("span", { class: "mono wrap args" }, (p.args || []).map((a, i) => [i ? " " : "", txt(a, 120)]))];
}

function lineageTree(p) {
  // Lineage lists ancestors nearest first; the tree reads from the oldest down to the process.
  const chain = [...(p.lineage || [])].reverse();
  const leaf = el("li", { class: "leaf" }, processLine(p),
    p.user || p.uid >= 0 ? el("span", { class: "muted" }, " user ", txt(p.user || String(p.uid), 60)) : null,
    p.downloaded_by ? [" ", el("span", { class: "tag" }, "downloaded by ", txt(p.downloaded_by, 80))] : null);
  let inner = leaf;
  for (let i = chain.length - 1; i >= 0; i--) inner = el("li", {}, processLine(chain[i]), el("ul", {}, inner));
  return el("ul", { class: "tree" }, inner);
}

function chainPanel(f) {
  const node = (title, body) => el("div", { class: "node" }, el("h3", {}, title), body);
  const arrow = () => el("span", { class: "arrow" }, "→");
  const parts = [];
  if (f.writer) parts.push(node("Writer", [processLine(f.writer), f.writer.downloaded_by ? el("div", {}, el("span", { class: "tag" }, "downloaded by ", txt(f.writer.downloaded_by, 80))) : null]), arrow());
  parts.push(node("File", [el("div", { class: "mono wrap" }, txt(f.file.path)), el("div", { class: "mono muted" }, short(f.file.sha256, 16))]));
  if (f.process) parts.push(arrow(), node("Executed by", processLine(f.process)));
  return el("section", { class: "panel", id: "chain" }, el("h2", {}, "Writer → file → execution"), el("div", { class: "chain" }, parts));
}

function filePanel(f) {
  const elf = f.file.elf;
  const checks = f.file.triage || [];
  return el("section", { class: "panel", id: "file" }, el("h2", {}, "File"),
    kv([["Path", el("span", { class: "mono" }, txt(f.file.path))], ["Size", f.file.size ? `${f.file.size} bytes` : ""],
      ["SHA-256", el("span", { class: "mono" }, f.file.sha256)]]),
    elf ? kv([["Architecture", txt(elf.arch)], ["Bits", elf.bits], ["Byte order", txt(elf.endian)], ["Type", txt(elf.type)],
      ["OS/ABI", txt(elf.osabi)], ["Interpreter", elf.interpreter ? txt(elf.interpreter) : ""], ["Linking", txt(elf.linking)], ["Runs on this node", txt(elf.runs)]]) : null,
    checks.length ? el("table", { id: "checks" }, el("colgroup", {}, el("col", { class: "c-sev" }), el("col", { class: "c-check" }), el("col", { class: "c-what" }), el("col", { class: "c-values" })),
      el("thead", {}, el("tr", {}, ["Severity", "Check", "What fired", "Field values"].map((h) => el("th", {}, h)))),
      el("tbody", {}, checks.map((c) => el("tr", {}, el("td", {}, sev(c.severity)),
        el("td", { class: "mono wrap" }, c.ref ? `${c.ref} ${c.check}` : c.check),
        el("td", { class: "wrap" }, el("b", {}, txt(c.title)), el("div", {}, txt(c.detail, 400))),
        el("td", { class: "mono wrap values" }, Object.entries(c.evidence || {}).map(([k, v]) => el("div", {}, txt(k, 60), " = ", txt(v, 200))))))))
      : el("p", { class: "muted" }, "No triage check fired on this file."));
}

function evidencePanel(f) {
  return el("section", { class: "panel", id: "evidence" }, el("h2", {}, "Why: the verdict's evidence"),
    f.evidence.length ? el("ul", {}, f.evidence.map((e) => el("li", {}, el("b", {}, txt(e.kind, 60)), ": ", el("span", { class: "wrap" }, txt(e.summary, 400)),
      Object.keys(e.values || {}).length ? el("div", { class: "mono wrap muted" }, Object.entries(e.values).map(([k, v]) => el("div", {}, txt(k, 60), " = ", txt(v, 200)))) : null)))
      : el("p", { class: "muted" }, "No further facts recorded."),
    el("button", { type: "button", id: "download-evidence",
      onclick: () => download(`/api/v1/findings/${encodeURIComponent(f.id)}/evidence`, `bindrift-evidence-${f.id}.json`) },
    "Download evidence (JSON)"),
    sightingsList(f),
    capturedList(f));
}

function sightingsList(f) {
  const seen = f.sightings || [];
  if (seen.length < 2) return null;
  return el("div", { id: "sightings" }, el("h3", {}, `Seen at ${seen.length} paths`),
    el("ul", {}, seen.map((s) => el("li", {}, el("span", { class: "mono wrap" }, txt(s.path)), ` ×${s.count}, ${when(s.first_seen)} – ${when(s.last_seen)}`,
      s.writer ? el("span", { class: "wrap" }, `, written by pid ${s.writer.pid} `, txt(s.writer.exe || s.writer.comm, 120)) : null))));
}

function capturedList(f) {
  const box = el("div", { id: "captured" }, el("h3", {}, "Captured copies of the binary"));
  getJSON(`/api/v1/findings/${encodeURIComponent(f.id)}/captured`).then((records) => {
    if (!records.length) { box.append(el("p", { class: "muted" }, "None captured.")); return; }
    box.append(el("ul", {}, records.map((r) => el("li", {},
      el("span", { class: "mono" }, short(r.sha256, 16)), ` ${r.size} bytes, ${when(r.captured_at)} `,
      me && me.role === "admin" && /^[0-9a-f]{64}$/.test(r.sha256)
        ? el("button", { type: "button", class: "copy", "data-evidence": r.id,
          onclick: () => download(`/api/v1/evidence/${encodeURIComponent(r.id)}`, `${r.sha256}.bin`) }, "Download binary")
        : null))));
  }).catch((error) => box.append(el("p", { class: "error" }, error.message)));
  return box;
}

async function download(path, name) {
  const blob = await (await api(path)).blob();
  const url = URL.createObjectURL(blob);
  const a = el("a", {});
  a.setAttribute("href", url);
  a.setAttribute("download", name);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function indicatorPanel(f) {
  const ind = f.indicator;
  const attack = (t) => `https://attack.mitre.org/techniques/${t.id.replace(".", "/")}/`;
  return el("section", { class: "panel", id: "indicators" }, el("h2", {}, "Indicators and ATT&CK"),
    ind ? kv([["SHA-256", el("span", { class: "mono" }, ind.sha256)],
      ["VirusTotal", el("a", { href: `https://www.virustotal.com/gui/file/${ind.sha256}`, target: "_blank", rel: "noopener noreferrer" }, "look up this hash")],
      ["Intelligence", ind.matches.length ? el("ul", {}, ind.matches.map((m) => el("li", { class: "error" }, txt(m.name, 120), ` (${m.kind}, `, txt(m.source, 120), ")"))) : "no match"]])
      : el("p", { class: "muted" }, "No file hash."),
    el("ul", { id: "techniques" }, f.techniques.map((t) => el("li", {},
      /^T\d{4}(\.\d{3})?$/.test(t.id) ? el("a", { href: attack(t), target: "_blank", rel: "noopener noreferrer" }, t.id) : txt(t.id, 20),
      " ", txt(t.name, 120), " (", txt(t.tactic, 60), ")"))));
}

function responsePanel(f) {
  const actions = f.actions || [];
  return el("section", { class: "panel", id: "response" }, el("h2", {}, "Response"),
    actions.length ? el("ul", { id: "actions" }, actions.map((a) => el("li", { class: a.ok ? "" : "error" },
      `${when(a.at)} ${a.action} by `, txt(a.by, 80), `${a.ok ? "" : " (failed)"}: `, el("span", { class: "wrap" }, txt(a.detail, 400))))) : null,
    el("ol", { class: "steps" }, f.response.map((s) => el("li", {}, el("b", {}, txt(s.title, 200)),
      s.command ? [el("pre", {}, el("code", {}, txt(s.command, 2000))), el("button", { type: "button", class: "copy",
        onclick: (event) => copy(s.command, event.target) }, "Copy")] : null,
      s.note ? el("div", { class: "muted wrap" }, txt(s.note, 400)) : null))));
}

function statePanel(f) {
  const reason = el("input", { id: "state-reason", placeholder: "Why (recorded with your name)", maxlength: 2000 });
  const message = el("span", { class: "muted", id: "state-message" });
  const change = async (state) => {
    if (!reason.value.trim()) { message.textContent = "Give a reason first."; return; }
    try {
      await api(`/api/v1/findings/${encodeURIComponent(f.id)}/state`, { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ state, reason: reason.value.trim() }) });
      await route();
    } catch (error) { message.textContent = error.message; }
  };
  const actions = me && me.role === "admin" ? el("div", { class: "actions" }, reason,
    f.state !== "muted" ? el("button", { type: "button", id: "mute", onclick: () => change("muted") }, "Mute") : null,
    f.state !== "resolved" ? el("button", { type: "button", id: "resolve", onclick: () => change("resolved") }, "Resolve") : null,
    f.state !== "active" ? el("button", { type: "button", id: "reopen", onclick: () => change("active") }, "Reopen") : null, message)
    : el("p", { class: "muted" }, "Read-only token: state changes need an admin token.");
  return el("section", { class: "panel", id: "state" }, el("h2", {}, "State: ", el("span", { class: "state", id: "state-value" }, f.state)),
    f.suppressed_by ? el("p", { class: "muted" }, "Suppressed by ", txt(f.suppressed_by, 80)) : null,
    el("ul", { id: "history" }, (f.state_history || []).map((c) => el("li", {}, `${when(c.at)} ${c.state} by `, txt(c.by, 80), ": ", el("span", { class: "wrap" }, txt(c.reason, 300))))),
    actions);
}

function relatedPanel(f, members) {
  const byId = new Map(members.map((m) => [m.id, m]));
  return el("section", { class: "panel", id: "related" }, el("h2", {}, "Related findings on the same ", isHost(f.resource) ? "host" : "container"),
    f.related.length ? el("ul", {}, f.related.map((id) => {
      const other = byId.get(id);
      const href = f.incident_id ? `#/incident/${encodeURIComponent(f.incident_id)}?finding=${encodeURIComponent(id)}` : `#/finding/${encodeURIComponent(id)}`;
      return el("li", {}, el("a", { href }, other ? [`${other.category}: `, txt(other.file.path, 120)] : txt(id, 64)), other ? [" ", sev(other.severity)] : null);
    })) : el("p", { class: "muted" }, "None."));
}

function findingDetail(f, members) {
  return el("article", { id: "finding", "data-id": f.id },
    el("section", { class: "panel", id: "verdict" }, el("h2", {}, sev(f.severity), " ", f.category, f.count > 1 ? ` ×${f.count}` : ""),
      el("p", { class: "wrap", id: "summary" }, txt(f.summary, 400)),
      kv([["Finding", el("span", { class: "mono nowrap" }, f.id)], ["Source", txt(f.source, 60)], ["First seen", when(f.first_seen)], ["Last seen", when(f.last_seen)]])),
    chainPanel(f),
    el("div", { class: "grid" },
      f.process ? el("section", { class: "panel", id: "lineage" }, el("h2", {}, "Process lineage"), lineageTree(f.process)) : null,
      f.writer ? el("section", { class: "panel", id: "writer-lineage" }, el("h2", {}, "Writer lineage"), lineageTree(f.writer)) : null),
    filePanel(f),
    el("div", { class: "grid" }, evidencePanel(f), indicatorPanel(f), relatedPanel(f, members)),
    el("div", { class: "grid" }, responsePanel(f), statePanel(f)));
}

document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  renderLogin();
});
window.addEventListener("hashchange", route);
route();
