"use strict";
// The dashboard page: panels from /api/me, numbers from /api/panels, /api/usage and /api/recent, polled every
// collection interval. Every value goes into the page as text (textContent), never as HTML.

const $ = (id) => document.getElementById(id);
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563"];
// The window to open with: 1 h, unless a script (the benchmark) chose another before the page loaded.
const state = {window: window.ATLAS_WINDOW || "1h", me: null, charts: {}, first: true};

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fmt(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (unit === "s") return value < 1 ? `${(value * 1000).toFixed(value < 0.01 ? 1 : 0)} ms` : `${value.toFixed(2)} s`;
  if (unit === "%") return `${value.toFixed(1)} %`;
  // The Lens's weights: version 0 and AUC 0 mean no weights live (or none measured); a version is named as the
  // weight store names it (v0003), and an axis tick between two versions is left blank
  if (unit === "version") return value === 0 ? "none" : Number.isInteger(value) ? `v${String(value).padStart(4, "0")}` : "";
  if (unit === "AUC") return value === 0 ? "–" : value.toFixed(3);
  if (Math.abs(value) >= 100 || Number.isInteger(value)) return Math.round(value).toLocaleString();
  return value.toFixed(2);
}

function when(epoch) { return epoch ? new Date(epoch * 1000).toLocaleString() : "–"; }

async function api(path, options) {
  const answer = await fetch(path, {credentials: "same-origin", ...options});
  if (answer.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error((body.error && body.error.message) || `${path} answered ${answer.status}`);
  return body;
}

function table(headers, rows, numeric) {
  const t = el("table");
  const head = t.createTHead().insertRow();
  headers.forEach((h, i) => head.appendChild(el("th", h, numeric && numeric[i] ? "num" : "")));
  const body = t.createTBody();
  rows.forEach((row) => {
    const tr = body.insertRow();
    row.forEach((cell, i) => {
      const td = el("td", null, numeric && numeric[i] ? "num" : "");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell;
      tr.appendChild(td);
    });
  });
  return t;
}

function layout() {
  const main = $("panels");
  main.replaceChildren();
  let section = null;
  for (const p of state.me.panels) {
    if (p.section !== section) { section = p.section; main.appendChild(el("h2", section, "section")); }
    const box = el("section", null, "panel");
    box.dataset.panel = p.id;
    box.dataset.kind = p.kind;
    box.dataset.state = "loading";
    if (["health", "usage", "recent"].includes(p.kind)) box.classList.add("wide");
    box.appendChild(el("h3", p.title));
    if (!["health", "usage", "recent"].includes(p.kind)) box.appendChild(el("div", null, "chart"));
    box.appendChild(el("div", null, "summary"));
    main.appendChild(box);
  }
}

function box(id) { return document.querySelector(`section.panel[data-panel="${CSS.escape(id)}"]`); }

function mark(node, filled) { node.dataset.state = filled ? "ready" : "empty"; }

function drawChart(node, panel, times) {
  const holder = node.querySelector(".chart");
  const names = panel.series.map((s) => s.name);
  const data = [times, ...panel.series.map((s) => s.values)];
  const key = names.join("\u0000");
  let chart = state.charts[panel.id];
  if (chart && chart.key === key) { chart.plot.setData(data); return; }
  if (chart) chart.plot.destroy();
  holder.replaceChildren();
  if (!names.length) { holder.appendChild(el("p", "no data in this window yet", "empty")); state.charts[panel.id] = null; return; }
  const opts = {
    width: Math.max(300, holder.clientWidth || 420), height: 160,
    scales: {x: {time: true}},
    // Points as well as lines: a series with one step of data (a quiet hour) still shows.
    series: [{}, ...names.map((name, i) => ({label: name, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
                                             points: {show: true, size: 5}, value: (u, v) => fmt(v, panel.unit)}))],
    axes: [{}, {values: (u, ticks) => ticks.map((v) => fmt(v, panel.unit)), size: 60}],
    legend: {live: false},
  };
  state.charts[panel.id] = {key, plot: new uPlot(opts, data, holder)};
}

function summaryRows(panel) {
  const s = panel.summary;
  switch (panel.kind) {
    case "rate": return [["", "total", "per second"], s.map((r) => [r.name, fmt(r.total), fmt(r.per_s, panel.unit)])];
    case "count": return [["", "in this window"], s.map((r) => [r.name, fmt(r.total)])];
    case "gauge": return [["", "now"], s.map((r) => [r.name, fmt(r.now, panel.unit)])];
    case "mean": return [["", "count", "mean"], s.map((r) => [r.name, fmt(r.count), fmt(r.mean, panel.unit)])];
    case "ratio": return [["", "share"], s.map((r) => [`${fmt(r.part)} of ${fmt(r.of)}`, fmt(r.percent, "%")])];
    case "quantiles": return [["", "count", "p50", "p95", "p99"],
      s.map((r) => [r.name, fmt(r.count), fmt(r.p50, panel.unit), fmt(r.p95, panel.unit), fmt(r.p99, panel.unit)])];
    default: return [[], []];
  }
}

function drawMetric(panel, times) {
  const node = box(panel.id);
  if (!node) return;
  drawChart(node, panel, times);
  const [headers, rows] = summaryRows(panel);
  // A gauge reading 0 (an empty queue) is data; a count of 0 over the window is not.
  const filled = rows.length > 0 && (panel.kind === "gauge" || panel.summary.some((r) => (r.total || r.count || r.of) > 0));
  node.querySelector(".summary").replaceChildren(rows.length ? table(headers, rows, headers.map((_, i) => i > 0))
                                                             : el("p", "nothing recorded yet", "empty"));
  mark(node, filled);
}

function drawHealth(health) {
  const node = box("health");
  if (!node) return;
  const rows = (health ? health.services : []).map((s) => [s.name, el("span", s.ready ? "ready" : "not ready", s.ready ? "ready" : "down"), s.reason]);
  node.querySelector(".summary").replaceChildren(rows.length ? table(["process", "state", "reason"], rows)
    : el("p", "no collection yet (the collector runs every few seconds)", "empty"));
  mark(node, rows.length > 0);
}

function drawUsage(rows) {
  const node = box("usage");
  const cells = rows.map((r) => [r.user, r.key, fmt(r.today_requests), fmt(r.today_tokens), fmt(r.week_requests), fmt(r.week_tokens), fmt(r.week_errors)]);
  node.querySelector(".summary").replaceChildren(cells.length
    ? table(["user", "key", "requests today", "tokens today", "requests 7 d", "tokens 7 d", "errors 7 d"], cells, [0, 0, 1, 1, 1, 1, 1])
    : el("p", "no usage in the last 7 days", "empty"));
  mark(node, cells.length > 0);
}

function drawRecent(recent) {
  const node = box("recent");
  const solves = recent.solves.map((s) => [when(s.when), s.kind, s.user_id, s.status, s.verified ? "yes" : "no", s.k, fmt(s.tokens), s.seconds ? fmt(Number(s.seconds), "s") : "–"]);
  const tasks = recent.tasks.map((t) => [when(t.when), t.id.slice(0, 12), t.user_id, t.status, t.priority, t.attempts, t.prompt]);
  node.querySelector(".summary").replaceChildren(
    el("h4", "Solves"), solves.length ? table(["when", "from", "user", "outcome", "verified", "k", "tokens", "time"], solves) : el("p", "no solves yet", "empty"),
    el("h4", "Tasks"), tasks.length ? table(["submitted", "task", "user", "status", "priority", "attempts", "prompt (yours only)"], tasks) : el("p", "no tasks yet", "empty"));
  mark(node, solves.length + tasks.length > 0);
}

async function refresh() {
  try {
    const [panels, usage, recent] = await Promise.all([
      state.me.is_admin ? api(`/api/panels?window=${state.window}`) : Promise.resolve(null),
      api("/api/usage"), api("/api/recent")]);
    if (panels) {
      const times = panels.times.map(Number);
      panels.panels.filter((p) => p.series).forEach((p) => drawMetric(p, times));
      drawHealth(panels.health);
    }
    drawUsage(usage.rows);
    drawRecent(recent);
    $("error").textContent = "";
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    if (state.first) { state.first = false; document.body.dataset.rendered = String(performance.now()); }
  } catch (e) {
    $("error").textContent = e.message;
  }
}

async function start() {
  state.me = await api("/api/me");
  $("who").textContent = `${state.me.username}${state.me.is_admin ? " (admin)" : ""}`;
  if (!state.me.is_admin) $("windows").hidden = true;
  layout();
  document.querySelectorAll("#windows button").forEach((o) => o.classList.toggle("active", o.dataset.window === state.window));
  document.querySelectorAll("#windows button").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll("#windows button").forEach((o) => o.classList.toggle("active", o === b));
    state.window = b.dataset.window;
    refresh();
  }));
  $("logout").addEventListener("click", async () => {
    const answer = await fetch("/api/logout", {method: "POST", credentials: "same-origin",
                                               headers: {"X-CSRF-Token": state.me.csrf}}).catch(() => null);
    if (answer && (answer.ok || answer.status === 401)) { window.location.assign("/login"); return; }
    $("error").textContent = "sign-out failed: you are still signed in; try again";
  });
  await refresh();
  setInterval(refresh, Math.max(2, state.me.refresh_s) * 1000);
}

start().catch((e) => { $("error").textContent = e.message; });
