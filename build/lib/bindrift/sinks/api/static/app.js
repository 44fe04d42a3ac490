// bindrift Incident Explorer. Every string from the API may come from an attacker (paths, arguments,
// container names): it is only ever written as text (textContent), never as markup, and links are built
// only from values checked against a strict pattern. The token stays in sessionStorage and travels in
// the Authorization header, never in a URL.
"use strict";

const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const COLORS = { critical: "#8e0a1d", high: "#d2362b", medium: "#e08a00", low: "#2f7fc1", info: "#7a8594" };
const CATEGORIES = ["Suspicious binary", "Added Binary Executed", "Modified Binary Executed",
  "Added Malicious Binary Executed", "Modified Malicious Binary Executed", "Added Library Loaded",
  "Fileless execution", "Coverage degraded", "Prevention degraded"];
const TOKEN_KEY = "bindrift-token";
const FILTERS = ["category", "severity", "state", "cluster", "namespace", "pod", "image", "node", "since", "q"];
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
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const short = (text, n = 12) => (text || "").slice(0, n);

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
    for (const name of FILTERS) { const v = form.elements[name].value.trim(); if (v) next.set(name, v); }
    next.set("view", params.get("view") || "incidents");
    location.hash = `#/?${next}`;
  } },
  field("category", "Category", select("category", CATEGORIES)),
  field("severity", "Severity at least", select("severity", [...SEVERITIES].reverse())),
  field("state", "State", select("state", ["active", "muted", "resolved"])),
  field("cluster", "Cluster", text("cluster")), field("namespace", "Namespace", text("namespace")),
  field("pod", "Pod", text("pod")), field("image", "Image", text("image")), field("node", "Node", text("node")),
  field("since", "Last seen within", text("since", "24h, 7d")), field("q", "Search", text("q", "path, args, names")),
  el("button", { class: "primary", type: "submit" }, "Filter"));
  return form;
}

function query(params, extra) {
  const out = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) out.set(name, params.get(name));
  for (const [k, v] of Object.entries(extra)) out.set(k, v);
  return out.toString();
}

function chart(timeline) {
  const box = el("div", { class: "chart" });
  const buckets = timeline.buckets;
  if (!buckets.length) return append(box, [el("p", { class: "muted" }, "No findings in this range.")]);
  const width = 1000, height = 180, pad = 24;
  const total = (b) => SEVERITIES.reduce((n, s) => n + (b.counts[s] || 0), 0);
  const max = Math.max(1, ...buckets.map(total));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Findings over time by severity");
  const barWidth = Math.min(60, (width - pad) / buckets.length);
  buckets.forEach((bucket, i) => {
    let y = height - pad;
    for (const s of [...SEVERITIES].reverse()) {
      const n = bucket.counts[s] || 0;
      if (!n) continue;
      const h = (n / max) * (height - 2 * pad);
      y -= h;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(pad + i * barWidth + 1));
      rect.setAttribute("y", String(y));
      rect.setAttribute("width", String(Math.max(1, barWidth - 2)));
      rect.setAttribute("height", String(h));
      rect.setAttribute("fill", COLORS[s]);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${when(bucket.start)}: ${n} ${s}`;
      rect.append(title);
      svg.append(rect);
    }
  });
  const label = (x, y, text, anchor) => {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", String(x)); t.setAttribute("y", String(y)); t.setAttribute("font-size", "12");
    t.setAttribute("fill", "#5d6778"); t.setAttribute("text-anchor", anchor); t.textContent = text;
    svg.append(t);
  };
  label(pad, height - 6, when(buckets[0].start), "start");
  label(width, height - 6, when(buckets[buckets.length - 1].start), "end");
  label(pad - 4, pad, String(max), "end");
  box.append(svg);
  box.append(el("div", { class: "legend" }, SEVERITIES.map((s) => el("span", {}, el("i", { class: `sev-${s}` }), s)),
    el("span", {}, `per ${timeline.bucket}`)));
  return box;
}

async function renderList(params) {
  const view = params.get("view") === "findings" ? "findings" : "incidents";
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const statsQuery = query(params, {});
  const [stats, page] = await Promise.all([
    getJSON(`/api/v1/stats?${statsQuery}`),
    getJSON(`/api/v1/${view}?${query(params, { limit: PAGE, offset, sort: params.get("sort") || "-last_seen" })}`),
  ]);
  const counts = el("div", { class: "counts", id: "severity-counts" },
    el("div", { class: "count" }, el("b", {}, stats.total), "findings"),
    SEVERITIES.map((s) => el("div", { class: "count", "data-severity": s }, el("b", {}, stats.by_severity[s] || 0), sev(s))));
  const tab = (name, label) => el("a", { class: view === name ? "active" : "", href: `#/?${query(params, { view: name })}` }, label);
  const table = view === "incidents" ? incidentTable(page.items) : findingTable(page.items);
  const nav = (to) => `#/?${query(params, { view, offset: to })}`;
  const pager = el("div", { class: "pager" },
    offset > 0 ? el("a", { href: nav(Math.max(0, offset - PAGE)) }, "← newer") : null,
    `${page.total ? offset + 1 : 0}–${Math.min(offset + PAGE, page.total)} of ${page.total} ${view}`,
    offset + PAGE < page.total ? el("a", { href: nav(offset + PAGE), id: "next-page" }, "older →") : null);
  main(
    el("h1", {}, "Incidents and findings"),
    el("section", { class: "panel" }, counts, chart(stats.timeline)),
    el("section", { class: "panel" }, filterForm(params)),
    el("section", { class: "panel" }, el("div", { class: "tabs" }, tab("incidents", "Incidents"), tab("findings", "Findings")), table, pager),
  );
}

function where(resource) {
  return resource.pod ? `${resource.namespace}/${resource.pod}` : (resource.container_name || short(resource.container_id) || resource.node);
}

function incidentTable(items) {
  if (!items.length) return el("p", { class: "muted" }, "No incidents match.");
  return el("table", { id: "incidents" },
    el("thead", {}, el("tr", {}, ["Severity", "Workload", "Container", "Image", "Node", "Findings", "First seen", "Last seen"].map((h) => el("th", {}, h)))),
    el("tbody", {}, items.map((inc) => el("tr", { class: "row", "data-id": inc.id, onclick: () => { location.hash = `#/incident/${encodeURIComponent(inc.id)}`; } },
      el("td", {}, sev(inc.severity)),
      el("td", { class: "wrap" }, el("a", { href: `#/incident/${encodeURIComponent(inc.id)}` }, where(inc.resource) || "host")),
      el("td", { class: "wrap" }, inc.resource.container_name || short(inc.resource.container_id)),
      el("td", { class: "wrap" }, inc.resource.image), el("td", {}, inc.resource.node),
      el("td", {}, inc.finding_ids.length), el("td", {}, when(inc.first_seen)), el("td", {}, when(inc.last_seen))))));
}

function findingTable(items) {
  if (!items.length) return el("p", { class: "muted" }, "No findings match.");
  return el("table", { id: "findings" },
    el("thead", {}, el("tr", {}, ["Severity", "Category", "File", "Where", "Count", "Last seen", "State"].map((h) => el("th", {}, h)))),
    el("tbody", {}, items.map((f) => el("tr", { class: "row", "data-id": f.id, onclick: () => { location.hash = findingHref(f); } },
      el("td", {}, sev(f.severity)), el("td", {}, f.category),
      el("td", { class: "mono wrap" }, el("a", { href: findingHref(f) }, f.file.path)),
      el("td", { class: "wrap" }, where(f.resource) || "host"), el("td", {}, f.count),
      el("td", {}, when(f.last_seen)), el("td", {}, el("span", { class: "state" }, f.state))))));
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
  main(el("h1", {}, finding.title), findingDetail(finding, [finding]));
}

async function renderIncident(id, selectedId) {
  const { incident, findings } = await getJSON(`/api/v1/incidents/${encodeURIComponent(id)}`);
  const selected = findings.find((f) => f.id === selectedId) ||
    [...findings].sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity))[0];
  const r = incident.resource;
  const timeline = el("ol", { class: "timeline", id: "timeline" }, findings.map((f) => el("li", { class: f === selected ? "selected" : "" },
    el("button", { type: "button", "data-id": f.id, onclick: () => { location.hash = `#/incident/${encodeURIComponent(id)}?finding=${encodeURIComponent(f.id)}`; } },
      el("span", { class: "muted" }, when(f.first_seen)), " ", sev(f.severity), " ", f.category, " ",
      el("span", { class: "mono" }, f.file.path), f.count > 1 ? ` ×${f.count}` : ""))));
  main(
    el("h1", {}, "Incident ", el("span", { class: "mono" }, incident.id), " ", sev(incident.severity)),
    el("div", { class: "grid" },
      el("section", { class: "panel", id: "resource" }, el("h2", {}, "Where"), kv([
        ["Cluster", r.cluster], ["Node", r.node], ["Namespace", r.namespace], ["Pod", r.pod],
        ["Container", [r.container_name, r.container_id].filter(Boolean).join(" ")], ["Image", r.image],
        ["Image digest", r.image_digest], ["Runtime", r.runtime], ["First seen", when(incident.first_seen)],
        ["Last seen", when(incident.last_seen)]])),
      el("section", { class: "panel" }, el("h2", {}, `Timeline of the container's findings (${findings.length})`), timeline)),
    selected ? findingDetail(selected, findings) : el("p", {}, "This incident has no findings."),
  );
}

function kv(rows) {
  return el("dl", { class: "kv" }, rows.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [el("dt", {}, k), el("dd", { class: "wrap" }, v)]));
}

function processLine(p) {
  return [el("span", { class: "mono" }, `pid ${p.pid} `), el("b", { class: "mono wrap" }, p.exe || p.comm || "?"), " ",
    el("span", { class: "mono wrap args" }, (p.args || []).join(" "))];
}

function lineageTree(p) {
  // Lineage lists ancestors nearest first; the tree reads from the oldest down to the process.
  const chain = [...(p.lineage || [])].reverse();
  const leaf = el("li", { class: "leaf" }, processLine(p),
    p.user || p.uid >= 0 ? el("span", { class: "muted" }, ` user ${p.user || p.uid}`) : null,
    p.downloaded_by ? [" ", el("span", { class: "tag" }, `downloaded by ${p.downloaded_by}`)] : null);
  let inner = leaf;
  for (let i = chain.length - 1; i >= 0; i--) inner = el("li", {}, processLine(chain[i]), el("ul", {}, inner));
  return el("ul", { class: "tree" }, inner);
}

function chainPanel(f) {
  const node = (title, body) => el("div", { class: "node" }, el("h3", {}, title), body);
  const arrow = () => el("span", { class: "arrow" }, "→");
  const parts = [];
  if (f.writer) parts.push(node("Writer", [processLine(f.writer), f.writer.downloaded_by ? el("div", {}, el("span", { class: "tag" }, `downloaded by ${f.writer.downloaded_by}`)) : null]), arrow());
  parts.push(node("File", [el("div", { class: "mono wrap" }, f.file.path), el("div", { class: "mono muted" }, short(f.file.sha256, 16))]));
  if (f.process) parts.push(arrow(), node("Executed by", processLine(f.process)));
  return el("section", { class: "panel", id: "chain" }, el("h2", {}, "Writer → file → execution"), el("div", { class: "chain" }, parts));
}

function filePanel(f) {
  const elf = f.file.elf;
  const checks = f.file.triage || [];
  return el("section", { class: "panel", id: "file" }, el("h2", {}, "File"),
    kv([["Path", el("span", { class: "mono" }, f.file.path)], ["Size", f.file.size ? `${f.file.size} bytes` : ""],
      ["SHA-256", el("span", { class: "mono" }, f.file.sha256)]]),
    elf ? kv([["Architecture", elf.arch], ["Bits", elf.bits], ["Byte order", elf.endian], ["Type", elf.type],
      ["OS/ABI", elf.osabi], ["Interpreter", elf.interpreter], ["Linking", elf.linking], ["Runs on this node", elf.runs]]) : null,
    checks.length ? el("table", { id: "checks" }, el("thead", {}, el("tr", {}, ["Severity", "Check", "What fired", "Field values"].map((h) => el("th", {}, h)))),
      el("tbody", {}, checks.map((c) => el("tr", {}, el("td", {}, sev(c.severity)),
        el("td", { class: "mono" }, c.ref ? `${c.ref} ${c.check}` : c.check),
        el("td", { class: "wrap" }, el("b", {}, c.title), el("div", {}, c.detail)),
        el("td", { class: "mono wrap" }, Object.entries(c.evidence || {}).map(([k, v]) => el("div", {}, `${k} = ${v}`)))))))
      : el("p", { class: "muted" }, "No triage check fired on this file."));
}

function evidencePanel(f) {
  return el("section", { class: "panel", id: "evidence" }, el("h2", {}, "Why: the verdict's evidence"),
    f.evidence.length ? el("ul", {}, f.evidence.map((e) => el("li", {}, el("b", {}, e.kind), ": ", el("span", { class: "wrap" }, e.summary),
      Object.keys(e.values || {}).length ? el("div", { class: "mono wrap muted" }, Object.entries(e.values).map(([k, v]) => el("div", {}, `${k} = ${v}`))) : null)))
      : el("p", { class: "muted" }, "No further facts recorded."),
    el("button", { type: "button", id: "download-evidence",
      onclick: () => download(`/api/v1/findings/${encodeURIComponent(f.id)}/evidence`, `bindrift-evidence-${f.id}.json`) },
    "Download evidence (JSON)"),
    capturedList(f));
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
      ["Intelligence", ind.matches.length ? el("ul", {}, ind.matches.map((m) => el("li", { class: "error" }, `${m.name} (${m.kind}, ${m.source})`))) : "no match"]])
      : el("p", { class: "muted" }, "No file hash."),
    el("ul", { id: "techniques" }, f.techniques.map((t) => el("li", {},
      /^T\d{4}(\.\d{3})?$/.test(t.id) ? el("a", { href: attack(t), target: "_blank", rel: "noopener noreferrer" }, t.id) : t.id,
      ` ${t.name} (${t.tactic})`))));
}

function responsePanel(f) {
  const actions = f.actions || [];
  return el("section", { class: "panel", id: "response" }, el("h2", {}, "Response"),
    actions.length ? el("ul", { id: "actions" }, actions.map((a) => el("li", { class: a.ok ? "" : "error" },
      `${when(a.at)} ${a.action} by ${a.by}${a.ok ? "" : " (failed)"}: `, el("span", { class: "wrap" }, a.detail)))) : null,
    el("ol", { class: "steps" }, f.response.map((s) => el("li", {}, el("b", {}, s.title),
      s.command ? [el("pre", {}, el("code", {}, s.command)), el("button", { type: "button", class: "copy",
        onclick: (event) => { navigator.clipboard && navigator.clipboard.writeText(s.command); event.target.textContent = "Copied"; } }, "Copy")] : null,
      s.note ? el("div", { class: "muted wrap" }, s.note) : null))));
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
    f.suppressed_by ? el("p", { class: "muted" }, `Suppressed by ${f.suppressed_by}`) : null,
    el("ul", { id: "history" }, (f.state_history || []).map((c) => el("li", {}, `${when(c.at)} ${c.state} by ${c.by}: `, el("span", { class: "wrap" }, c.reason)))),
    actions);
}

function relatedPanel(f, members) {
  const byId = new Map(members.map((m) => [m.id, m]));
  return el("section", { class: "panel", id: "related" }, el("h2", {}, "Related findings on the same container"),
    f.related.length ? el("ul", {}, f.related.map((id) => {
      const other = byId.get(id);
      const href = f.incident_id ? `#/incident/${encodeURIComponent(f.incident_id)}?finding=${encodeURIComponent(id)}` : `#/finding/${encodeURIComponent(id)}`;
      return el("li", {}, el("a", { href }, other ? `${other.category}: ${other.file.path}` : id), other ? [" ", sev(other.severity)] : null);
    })) : el("p", { class: "muted" }, "None."));
}

function findingDetail(f, members) {
  return el("article", { id: "finding", "data-id": f.id },
    el("section", { class: "panel", id: "verdict" }, el("h2", {}, sev(f.severity), " ", f.category, f.count > 1 ? ` ×${f.count}` : ""),
      el("p", { class: "wrap", id: "summary" }, f.summary),
      kv([["Finding", el("span", { class: "mono" }, f.id)], ["Source", f.source], ["First seen", when(f.first_seen)], ["Last seen", when(f.last_seen)]])),
    chainPanel(f),
    el("div", { class: "grid" },
      f.process ? el("section", { class: "panel", id: "lineage" }, el("h2", {}, "Process lineage"), lineageTree(f.process)) : null,
      f.writer ? el("section", { class: "panel", id: "writer-lineage" }, el("h2", {}, "Writer lineage"), lineageTree(f.writer)) : null),
    el("div", { class: "grid" }, filePanel(f), evidencePanel(f)),
    el("div", { class: "grid" }, indicatorPanel(f), relatedPanel(f, members)),
    el("div", { class: "grid" }, responsePanel(f), statePanel(f)));
}

document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  renderLogin();
});
window.addEventListener("hashchange", route);
route();
