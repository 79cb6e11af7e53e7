// The Tern web console: pages selected by the URL's fragment, data from
// the broker's HTTP API (../api/v1/...) and the console's own endpoints
// (api/...). The browser sends the user's basic authentication with
// every request of this origin.

import { Plot } from "./plot.js";

const $ = (sel) => document.querySelector(sel);
const api = (path) => new URL("../api/v1/" + path, document.baseURI);
const own = (path) => new URL("api/" + path, document.baseURI);

function h(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

// getJSON fetches a URL and returns its JSON, or throws an Error with the
// server's message.
async function getJSON(url, init) {
  const r = await fetch(url, { credentials: "same-origin", ...init });
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
}

function showError(id, err) {
  const p = $(id);
  if (!err) { p.hidden = true; p.textContent = ""; return; }
  p.hidden = false;
  p.textContent = err.message || String(err);
}

function duration(secs) {
  secs = Math.floor(secs);
  const d = Math.floor(secs / 86400), hh = Math.floor((secs % 86400) / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  return (d ? d + "d " : "") + (d || hh ? hh + "h " : "") + (d || hh || m ? m + "m " : "") + s + "s";
}

function rate(v) { return v >= 100 ? Math.round(v).toString() : v.toFixed(1); }

// ---- pages ----

const pages = {};
let current = null;

function route() {
  const name = (location.hash || "#overview").slice(1);
  const page = pages[name] ? name : "overview";
  for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== "page-" + page;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  if (current && pages[current].leave) pages[current].leave();
  current = page;
  if (pages[page].enter) pages[page].enter();
}

// Overview: the stats stream, plotted.
{
  let es = null, msgPlot = null, connPlot = null;
  pages.overview = {
    enter() {
      if (es) return;
      msgPlot ??= new Plot($("#plot-messages"), ["in", "out"]);
      connPlot ??= new Plot($("#plot-connections"), ["connected", "connects"]);
      es = new EventSource(own("stats/stream"));
      es.addEventListener("open", () => { $("#stream-status").textContent = "live, every second"; });
      es.addEventListener("error", () => { $("#stream-status").textContent = "stream interrupted; retrying…"; });
      es.addEventListener("sample", (ev) => {
        const s = JSON.parse(ev.data);
        $("#stat-clients").textContent = s.clients_connected;
        $("#stat-sessions").textContent = s.sessions;
        $("#stat-subscriptions").textContent = s.subscriptions;
        $("#stat-retained").textContent = s.retained;
        $("#stat-in-rate").textContent = rate(s.messages_in_rate);
        $("#stat-out-rate").textContent = rate(s.messages_out_rate);
        $("#stat-totals").textContent = `${s.messages_received} / ${s.messages_sent}`;
        $("#stat-uptime").textContent = duration(s.uptime_seconds);
        msgPlot.push([s.messages_in_rate, s.messages_out_rate]);
        connPlot.push([s.clients_connected, s.connect_rate]);
        document.body.dataset.samples = String(Number(document.body.dataset.samples || 0) + 1);
      });
    },
    leave() { /* keep the stream: the plots go on filling */ },
  };
}

// Clients: a table refreshed every two seconds, a search, a disconnect.
{
  const MAX_ROWS = 500; // a table of more is slow to draw every two seconds
  let timer = null, clients = [];
  const armed = new Map(); // client id: the timer that disarms its button
  const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "");
  function matches(c, q) {
    if (!q) return true;
    q = q.toLowerCase();
    return [c.client_id, c.username, c.remote_addr, c.listener, c.protocol].some((v) => (v || "").toLowerCase().includes(q));
  }
  function render() {
    const q = $("#client-search").value.trim();
    const shown = clients.filter((c) => matches(c, q));
    $("#client-count").textContent = `${shown.length} of ${clients.length} clients` +
      (shown.length > MAX_ROWS ? ` (the first ${MAX_ROWS} shown: search to narrow)` : "");
    const rows = shown.slice(0, MAX_ROWS).map((c) => {
      const isArmed = armed.has(c.client_id);
      const btn = c.connected
        ? h("button", { class: "danger" + (isArmed ? " confirm" : ""), type: "button", dataset: { action: "disconnect", client: c.client_id } }, isArmed ? "Confirm" : "Disconnect")
        : h("span", { class: "muted" }, "offline");
      if (c.connected) btn.addEventListener("click", () => disconnect(btn, c.client_id));
      return h("tr", { class: c.connected ? "" : "offline", dataset: { client: c.client_id } },
        h("td", {}, c.client_id), h("td", {}, c.remote_addr || ""), h("td", {}, c.username || ""),
        h("td", {}, c.protocol), h("td", {}, c.listener || ""), h("td", { class: "num" }, c.keep_alive ? c.keep_alive + "s" : "–"),
        h("td", {}, (c.subscriptions || []).map((s) => `${s.filter} (QoS ${s.qos})`).join(", ")),
        h("td", { class: "num" }, c.inflight), h("td", { class: "num" }, c.queued),
        h("td", {}, fmtTime(c.connected_since)), h("td", {}, btn));
    });
    $("#clients-table tbody").replaceChildren(...rows);
  }
  async function load() {
    try {
      const body = await getJSON(api("clients"));
      clients = body.clients || [];
      showError("#clients-error", null);
    } catch (err) {
      clients = [];
      showError("#clients-error", err);
    }
    render();
  }
  // Two clicks: the first arms the client's button for five seconds (kept
  // across the refreshes of the table), the second disconnects.
  async function disconnect(btn, id) {
    if (!armed.has(id)) {
      armed.set(id, setTimeout(() => { armed.delete(id); render(); }, 5000));
      render();
      return;
    }
    clearTimeout(armed.get(id));
    armed.delete(id);
    btn.disabled = true;
    try {
      await getJSON(api("clients/" + encodeURIComponent(id)), { method: "DELETE" });
      showError("#clients-error", null);
    } catch (err) {
      showError("#clients-error", err);
    }
    load();
  }
  $("#client-search").addEventListener("input", render);
  pages.clients = {
    enter() { load(); timer = setInterval(load, 2000); },
    leave() { clearInterval(timer); },
  };
}

// Subscriptions: the filters as a tree of topic levels.
{
  function tree(subs) {
    const root = { children: new Map(), subs: [] };
    for (const s of subs) {
      let node = root;
      for (const level of s.filter.split("/")) {
        if (!node.children.has(level)) node.children.set(level, { children: new Map(), subs: [] });
        node = node.children.get(level);
      }
      node.subs.push(s);
    }
    return root;
  }
  function count(node) {
    let n = node.subs.length;
    for (const c of node.children.values()) n += count(c);
    return n;
  }
  function render(node, path) {
    const items = [];
    for (const [level, child] of [...node.children.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
      const full = path ? path + "/" + level : level;
      const label = h("span", { class: "level" }, level === "" ? "(empty)" : level);
      const who = child.subs.length
        ? h("span", { class: "subs" }, child.subs.map((s) => `${s.client_id} (QoS ${s.qos})`).join(", "))
        : "";
      const li = h("li", { dataset: { filter: full } });
      if (child.children.size) {
        const det = h("details", { open: "" }, h("summary", {}, label, h("span", { class: "subs" }, `${count(child)}`), who));
        det.append(h("ul", {}, ...render(child, full)));
        li.append(det);
      } else {
        li.append(label, who);
      }
      items.push(li);
    }
    return items;
  }
  async function load() {
    try {
      const body = await getJSON(api("subscriptions"));
      const subs = body.subscriptions || [];
      $("#subscriptions-count").textContent = `${subs.length} subscriptions`;
      $("#topic-tree").replaceChildren(...render(tree(subs), ""));
      showError("#subscriptions-error", null);
    } catch (err) {
      $("#topic-tree").replaceChildren();
      showError("#subscriptions-error", err);
    }
  }
  pages.subscriptions = { enter: load };
}

// Retained messages: a filter and a payload preview.
{
  const PREVIEW = 300;
  function payloadCell(m) {
    const b64 = m.payload_base64 !== undefined && m.payload_base64 !== "";
    const text = b64 ? m.payload_base64 : m.payload || "";
    const short = text.length > PREVIEW ? text.slice(0, PREVIEW) + "…" : text;
    const div = h("div", { class: "payload" + (b64 ? " b64" : "") }, short);
    if (short !== text) {
      div.title = "click for the whole payload";
      div.addEventListener("click", () => { div.textContent = text; }, { once: true });
    }
    return h("td", {}, div);
  }
  const size = (m) => (m.payload_base64 ? Math.floor((m.payload_base64.length * 3) / 4) - (m.payload_base64.match(/=*$/)[0].length) : new TextEncoder().encode(m.payload || "").length);
  async function load() {
    const filter = $("#retained-filter").value.trim() || "#";
    try {
      const body = await getJSON(api("retained?limit=500&filter=" + encodeURIComponent(filter)));
      const msgs = body.messages || [];
      $("#retained-count").textContent = `${msgs.length} messages${body.truncated ? " (first 500)" : ""}`;
      $("#retained-table tbody").replaceChildren(...msgs.map((m) =>
        h("tr", { dataset: { topic: m.topic } }, h("td", {}, m.topic), h("td", { class: "num" }, m.qos), h("td", { class: "num" }, size(m) + " B"), payloadCell(m))));
      showError("#retained-error", null);
    } catch (err) {
      $("#retained-table tbody").replaceChildren();
      $("#retained-count").textContent = "";
      showError("#retained-error", err);
    }
  }
  $("#retained-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  pages.retained = { enter: load };
}

// Publish.
{
  $("#publish-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#publish-result");
    const req = {
      topic: $("#publish-topic").value,
      payload: $("#publish-payload").value,
      qos: Number($("#publish-qos").value),
      retain: $("#publish-retain").checked,
    };
    const ct = $("#publish-content-type").value.trim();
    if (ct) req.content_type = ct;
    out.className = "status";
    out.textContent = "publishing…";
    try {
      const body = await getJSON(api("publish"), {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(req),
      });
      out.textContent = `Published to ${req.topic}: ${body.matched} matching subscription${body.matched === 1 ? "" : "s"}.`;
      out.dataset.result = "ok";
    } catch (err) {
      out.className = "error";
      out.textContent = "Not published: " + err.message;
      out.dataset.result = "error";
    }
  });
  pages.publish = {};
}

// Configuration: flattened to key paths.
{
  function flatten(v, path, rows) {
    if (v !== null && typeof v === "object") {
      const entries = Array.isArray(v) ? v.map((x, i) => [`[${i}]`, x]) : Object.entries(v).map(([k, x]) => [(path ? "." : "") + k, x]);
      if (!entries.length) rows.push([path, Array.isArray(v) ? "[]" : "{}"]);
      for (const [k, x] of entries) flatten(x, path + k, rows);
    } else {
      rows.push([path, v === null ? "" : String(v)]);
    }
    return rows;
  }
  async function load() {
    try {
      const body = await getJSON(own("config"));
      const rows = body.settings === null ? [["", "(no configuration given to the console)"]] : flatten(body.settings, "", []);
      $("#config-table tbody").replaceChildren(...rows.map(([k, v]) => h("tr", { dataset: { key: k } }, h("td", {}, k), h("td", {}, v))));
      showError("#config-error", null);
    } catch (err) {
      $("#config-table tbody").replaceChildren();
      showError("#config-error", err);
    }
  }
  pages.config = { enter: load };
}

async function whoami() {
  try {
    const me = await getJSON(own("whoami"));
    $("#whoami").textContent = (me.user || "anonymous") + (me.admin ? " (administrator)" : "");
    document.body.dataset.user = me.user;
  } catch (err) {
    $("#whoami").textContent = err.message;
  }
}

window.addEventListener("hashchange", route);
whoami();
route();
document.body.dataset.ready = "1";
