// depai console. Everything an agent or plugin wrote is shown with
// textContent, never as HTML: a reading with a <script> in it stays text.
"use strict";

const state = { csrf: "", operator: null, agents: [], current: "", estop: false };
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? "" : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...rows);
}

function showError(msg) { $("error").textContent = msg || ""; }

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-Depai-CSRF"] = state.csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: { code: "bad_json", message: text } }; }
  if (res.status === 401) { showLogin(); throw new Error("not logged in"); }
  if (!res.ok) {
    const e = (data && data.error) || { code: String(res.status), message: text };
    const err = new Error(e.code + ": " + e.message);
    err.code = e.code; err.detail = e.message;
    throw err;
  }
  return data;
}

// command runs an operator command on an agent and returns its structured
// result (the reply event's data).
async function command(agent, text) {
  const res = await api("POST", "/v1/agents/" + encodeURIComponent(agent) + "/messages", { text });
  const reply = res.reply || {};
  return reply.data === undefined ? reply.text : reply.data;
}

function showLogin() { $("login").hidden = false; $("app").hidden = true; }

async function login(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  const res = await fetch("/console/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: $("token").value }), credentials: "same-origin" });
  if (!res.ok) { $("login-error").textContent = "That token is not an operator's."; return; }
  const s = await res.json();
  $("token").value = "";
  start(s);
}

function start(s) {
  state.csrf = s.csrf; state.operator = s.operator;
  $("who").textContent = s.operator.name + " (" + s.operator.role + ")";
  $("login").hidden = true; $("app").hidden = false;
  refresh();
  follow();
}

function fmtTime(t) { return t ? new Date(t).toLocaleTimeString() : ""; }

function robotText(r) {
  if (!r || !r.time) return r && r.teleop ? "teleop: " + r.teleop : "";
  let s = r.lat.toFixed(6) + ", " + r.lon.toFixed(6) + " · " + (r.speed_mps || 0).toFixed(1) + " m/s · fix " + (r.fix || "unknown");
  if (r.mode) s += " · " + r.mode;
  if (r.battery_pct !== undefined && r.battery_pct !== null) s += " · battery " + Math.round(r.battery_pct) + "%";
  if (r.stale) s += " · STALE";
  if (r.teleop) s += " · teleop: " + r.teleop;
  return s;
}

async function refresh() {
  try {
    const agents = await api("GET", "/v1/agents");
    state.agents = agents;
    if (!state.current && agents.length) state.current = agents[0].name;
    fill("fleet", agents.map((a) => {
      const tr = row([a.name, a.role, a.state, a.model, a.tools, a.turns, a.queued, robotText(a.robot), fmtTime(a.last_turn)]);
      if (a.robot && a.robot.stale) tr.classList.add("stale");
      return tr;
    }));
    for (const id of ["chat-agent", "plot-agent"]) {
      const sel = $(id);
      if (sel.options.length !== agents.length) {
        sel.replaceChildren(...agents.map((a) => { const o = el("option", a.name); o.value = a.name; return o; }));
      }
    }
    drawMap(agents);
    if (!state.current) return;
    const status = await command(state.current, "/status");
    const estop = status.estop || {};
    if (!!estop.engaged !== state.estop) { state.estop = !!estop.engaged; drawMap(agents); }
    const badge = $("estop-state");
    badge.textContent = estop.engaged ? "E-STOP ENGAGED by " + estop.by : "e-stop released";
    badge.className = estop.engaged ? "engaged" : "released";
    $("approvals-count").textContent = status.approvals ? "(" + status.approvals + ")" : "";
    fill("plugins", (status.plugins || []).map((p) => row([p.name, p.state, p.version, (p.tools || []).join(", "), p.error])));
    if (!$("view-approvals").hidden) loadApprovals();
    if (!$("view-audit").hidden) loadAudit();
    if (!$("view-plots").hidden && !plot.zoom) loadPlot().catch((e) => showError(e.message));
    showError("");
  } catch (e) { showError(e.message); }
}

// drawMap draws the robots, their headings and recent tracks, keep-out
// zones and geofences in local metres, with a scale bar. No tiles: nothing
// is fetched from anywhere.
const tracks = {};
function drawMap(agents) {
  const svg = $("map");
  const NS = "http://www.w3.org/2000/svg";
  const robots = agents.filter((a) => a.robot && a.robot.time);
  const pts = [];
  for (const a of robots) {
    const t = (tracks[a.name] = tracks[a.name] || []);
    const last = t[t.length - 1];
    if (!last || last[0] !== a.robot.lat || last[1] !== a.robot.lon) t.push([a.robot.lat, a.robot.lon]);
    if (t.length > 500) t.shift();
    pts.push(...t);
  }
  for (const a of agents) {
    for (const z of a.keep_out || []) { if (z.polygon) pts.push(...z.polygon); else pts.push([z.lat, z.lon]); }
    for (const p of a.geofence || []) pts.push(p);
  }
  svg.replaceChildren();
  if (!pts.length) { const t = document.createElementNS(NS, "text"); t.setAttribute("x", 20); t.setAttribute("y", 40); t.textContent = "No robot has reported a position yet."; svg.appendChild(t); return; }
  const lat0 = pts[0][0], lon0 = pts[0][1], k = 111195, cos = Math.cos(lat0 * Math.PI / 180);
  const xy = (p) => [(p[1] - lon0) * k * cos, (p[0] - lat0) * k];
  const m = pts.map(xy);
  let minX = Math.min(...m.map((q) => q[0])), maxX = Math.max(...m.map((q) => q[0]));
  let minY = Math.min(...m.map((q) => q[1])), maxY = Math.max(...m.map((q) => q[1]));
  const pad = 40, span = Math.max(maxX - minX, maxY - minY, 50) * 1.2;
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2, s = (500 - 2 * pad) / span;
  const sx = (x) => 400 + (x - cx) * s, sy = (y) => 250 - (y - cy) * s;
  const add = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; svg.appendChild(e); return e; };
  const poly = (ps) => ps.map((p) => { const q = xy(p); return sx(q[0]) + "," + sy(q[1]); }).join(" ");
  for (const a of agents) {
    if (a.geofence && a.geofence.length) add("polygon", { points: poly(a.geofence), fill: "none", stroke: "#2a7", "stroke-dasharray": "6 4" });
    for (const z of a.keep_out || []) {
      if (z.polygon) add("polygon", { points: poly(z.polygon), fill: "rgba(212,0,0,.15)", stroke: "#d40000" });
      else { const q = xy([z.lat, z.lon]); add("circle", { cx: sx(q[0]), cy: sy(q[1]), r: Math.max(2, z.radius_m * s), fill: "rgba(212,0,0,.15)", stroke: "#d40000" }); }
      const c = z.polygon ? xy(z.polygon[0]) : xy([z.lat, z.lon]);
      add("text", { x: sx(c[0]) + 4, y: sy(c[1]) - 4, fill: "#d40000", "font-size": 11 }, z.name);
    }
  }
  for (const a of robots) {
    const t = tracks[a.name];
    if (t.length > 1) add("polyline", { points: poly(t), fill: "none", stroke: "#4da3ff" });
    const q = xy([a.robot.lat, a.robot.lon]), x = sx(q[0]), y = sy(q[1]);
    const h = (a.robot.heading_deg || 0) * Math.PI / 180;
    add("line", { x1: x, y1: y, x2: x + 16 * Math.sin(h), y2: y - 16 * Math.cos(h), stroke: "#1d232a", "stroke-width": 2 });
    add("circle", { cx: x, cy: y, r: 6, fill: a.robot.stale ? "#b36b00" : "#0b57d0", class: "robot", "data-agent": a.name });
    add("text", { x: x + 9, y: y + 4, "font-size": 12, class: "robot-label", "data-agent": a.name },
      a.name + " · " + (a.robot.fix || "?") + " · " + (a.robot.speed_mps || 0).toFixed(1) + " m/s" + (a.robot.mode ? " · " + a.robot.mode : "") + (a.robot.stale ? " · stale" : ""));
  }
  const bar = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000].find((b) => b * s >= 60) || 10000;
  add("line", { x1: 20, y1: 480, x2: 20 + bar * s, y2: 480, stroke: "#000", "stroke-width": 3 });
  add("text", { x: 20, y: 472, "font-size": 11 }, Math.round(bar) + " m");
  if (state.estop) add("text", { x: 20, y: 28, "font-size": 16, "font-weight": 700, fill: "#d40000", id: "map-estop" }, "E-STOP ENGAGED: actuators locked");
}

async function loadApprovals() {
  const list = await command(state.current, "/approvals");
  fill("approvals", (list || []).map((p) => {
    const btns = el("span");
    const ok = el("button", "Approve"); ok.onclick = () => decide("/approve " + p.id);
    const no = el("button", "Deny"); no.onclick = () => { const why = prompt("Why deny?") || ""; decide("/deny " + p.id + " " + why); };
    btns.append(ok, " ", no);
    const a = p.action || {};
    return row([p.id, a.agent, a.kind + " " + a.name, (a.principal || {}).kind + ":" + ((a.principal || {}).id || ""), p.reason, JSON.stringify(a.args || {}), fmtTime(p.expires), btns]);
  }));
}

async function decide(text) {
  try { await command(state.current, text); refresh(); } catch (e) { showError(e.message); }
}

async function loadAudit() {
  const recs = await command(state.current, "/audit 200");
  const f = $("audit-filter").value.toLowerCase();
  fill("audit", (recs || []).filter((r) => !f || (r.text || "").toLowerCase().includes(f)).map((r) => {
    const tr = row([fmtTime(r.time), r.text]); tr.cells[1].className = "wrap"; return tr;
  }));
}

// Plots: one sensor's readings from memory (/readings), drawn with the
// vendored uPlot. The view follows the newest readings of the chosen range
// until the operator zooms; a zoomed span is fetched at full detail.
const plot = { chart: null, fields: "", zoom: null, busy: false, seq: 0, range: [0, 1] };

// plotData turns a /readings answer into uPlot's columns.
function plotData(r) { return [r.t || [], ...(r.series || [])]; }

// renderPlot draws a /readings answer into #plot; labels are plugin-written
// and uPlot sets them as text.
function renderPlot(r) {
  const box = $("plot");
  plot.range = [Date.parse(r.since) / 1000, Date.parse(r.until) / 1000];
  const key = r.sensor + "|" + (r.fields || []).join(",");
  if (!plot.chart || plot.fields !== key) {
    if (plot.chart) plot.chart.destroy();
    box.replaceChildren();
    const colors = ["#0b57d0", "#d40000", "#2a7", "#b36b00", "#7b3fc4", "#00838f", "#6d4c41", "#c2185b"];
    // Positions are on the map; their degrees would flatten every other line.
    const series = [{}].concat((r.fields || []).map((f, i) => ({ label: f, stroke: colors[i % colors.length], width: 1.5, spanGaps: true, show: !["lat", "lon"].includes(f) })));
    plot.chart = new uPlot({
      width: Math.min(box.clientWidth || 960, 1000) - 2, height: 320, series,
      scales: { x: { time: true, auto: false, range: () => plot.range } },
      cursor: { drag: { x: true, y: false } },
      hooks: { setSelect: [(u) => {
        if (u.select.width < 2) return;
        const from = u.posToVal(u.select.left, "x"), to = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, width: 0 }, false);
        zoomPlot(from, to);
      }] },
    }, plotData(r), box);
    plot.chart.over.ondblclick = () => livePlot();
    plot.fields = key;
  } else {
    plot.chart.setData(plotData(r));
    plot.chart.setScale("x", { min: plot.range[0], max: plot.range[1] });
  }
  let info = r.count + " readings of " + r.sensor + " from " + fmtTime(r.since) + " to " + fmtTime(r.until);
  if (r.t && r.t.length < r.count) info += " (" + r.t.length + " points: the newest of each interval; zoom in for every reading)";
  if (r.truncated) info += " — only the newest readings were read; pick a shorter range";
  if (!(r.fields || []).length) info += " — no numeric fields to plot";
  $("plot-info").textContent = info;
  box.dataset.points = String((r.t || []).length);
}

async function loadSensors() {
  const agent = $("plot-agent").value || state.current;
  if (!agent) return;
  const list = (await command(agent, "/readings")) || [];
  const sel = $("plot-sensor"), keep = sel.value;
  const names = list.map((s) => s.sensor);
  if (names.join("|") !== Array.from(sel.options, (o) => o.value).join("|")) {
    sel.replaceChildren(...names.map((n) => { const o = el("option", n); o.value = n; return o; }));
    if (names.includes(keep)) sel.value = keep;
  }
  if (!names.length) $("plot-info").textContent = agent + " has stored no readings in the last hour.";
}

// loadPlot fetches and draws the chosen sensor and span. The periodic
// refresh skips a load while one is in flight; a change of sensor, range or
// zoom (force) always loads, and only the newest answer is drawn, so a
// slow live answer cannot land over a zoom.
async function loadPlot(force) {
  if (plot.busy && !force) return;
  const agent = $("plot-agent").value || state.current, sensor = $("plot-sensor").value;
  if (!agent || !sensor) { await loadSensors(); if (!$("plot-sensor").value) return; return loadPlot(force); }
  const seq = ++plot.seq;
  plot.busy = true;
  try {
    const range = plot.zoom ? plot.zoom.map((t) => new Date(t * 1000).toISOString().replace(/\.\d+Z$/, "Z")).join(" ") : $("plot-range").value;
    const r = await command(agent, "/readings " + sensor + " " + range);
    if (seq === plot.seq) renderPlot(r);
  } finally { if (seq === plot.seq) plot.busy = false; }
}

function zoomPlot(from, to) {
  plot.zoom = [Math.floor(from), Math.ceil(to) + 1];
  $("plot-live").hidden = false;
  loadPlot(true).catch((e) => showError(e.message));
}

function livePlot() {
  plot.zoom = null;
  $("plot-live").hidden = true;
  loadPlot(true).catch((e) => showError(e.message));
}

// Tasks and earnings come from /tasks and /earnings; without the mesh or
// the wallet configured each answers an error with code "unavailable",
// shown as a note rather than as a failure.
function renderTasks(res) {
  const tasks = (res && res.tasks) || [];
  $("tasks-note").textContent = tasks.length ? "" : "No tasks.";
  fill("tasks", tasks.map((t) => {
    const tr = row([t.id, t.from, t.to, t.state, t.goal, fmtTime(t.created), fmtTime(t.updated), t.error ? "error: " + t.error : (t.result === undefined || t.result === null ? "" : typeof t.result === "string" ? t.result : JSON.stringify(t.result))]);
    tr.dataset.state = t.state || "";
    tr.cells[4].className = "wrap"; tr.cells[7].className = "wrap";
    return tr;
  }));
}

function renderEarnings(res) {
  const list = (res && res.earnings) || [];
  $("earnings-note").textContent = list.length ? "" : "No earnings yet.";
  fill("earnings", list.map((e) => row([e.owner, e.share === undefined || e.share === null ? "" : String(e.share), e.amount, e.asset])));
  const foot = $("earnings").querySelector("tfoot");
  foot.replaceChildren(...(res && res.total !== undefined && res.total !== null ? [row(["Total", "", res.total, res.asset])] : []));
}

function renderUnavailable(view, e) {
  fill(view, []);
  if (view === "earnings") $("earnings").querySelector("tfoot").replaceChildren();
  $(view + "-note").textContent = e.code === "unavailable" ? e.detail : "error: " + e.message;
}

async function loadTasks() {
  try { renderTasks(await command(state.current, "/tasks")); } catch (e) { renderUnavailable("tasks", e); }
}

async function loadEarnings() {
  try { renderEarnings(await command(state.current, "/earnings")); } catch (e) { renderUnavailable("earnings", e); }
}

async function searchMemory(ev) {
  ev.preventDefault();
  try {
    const recs = await command(state.current, "/memory search " + $("memory-query").value);
    fill("memory", (recs || []).map((r) => { const tr = row([fmtTime(r.time), r.kind, r.namespace, r.text]); tr.cells[3].className = "wrap"; return tr; }));
  } catch (e) { showError(e.message); }
}

function log(text, cls) { const line = el("div", text, cls); $("chat-log").appendChild(line); $("chat-log").scrollTop = 1e9; return line; }

// chat sends a message and shows the turn as it streams (SSE over fetch).
async function chat(ev) {
  ev.preventDefault();
  const agent = $("chat-agent").value, text = $("chat-input").value;
  if (!text) return;
  $("chat-input").value = "";
  log(agent + " ← " + text, "you");
  const res = await fetch("/v1/agents/" + encodeURIComponent(agent) + "/messages", { method: "POST", headers: { "Content-Type": "application/json", "Accept": "text/event-stream", "X-Depai-CSRF": state.csrf }, body: JSON.stringify({ text }), credentials: "same-origin" });
  if (!res.ok) { log("error: " + (await res.text()), "err"); return; }
  const reader = res.body.getReader(), dec = new TextDecoder();
  let buf = "", reply = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i); buf = buf.slice(i + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      let e; try { e = JSON.parse(data); } catch (_) { continue; }
      if (e.type === "delta") { if (!reply) reply = log("", "reply"); reply.textContent += e.text; }
      else if (e.type === "tool_call") log("  → " + e.tool + " " + JSON.stringify(e.data || {}), "tool");
      else if (e.type === "tool_result") log("  ← " + e.tool + " " + (e.error ? "error: " + e.error : JSON.stringify(e.data)), "tool");
      else if (e.type === "reply") { if (!reply) reply = log("", "reply"); reply.textContent = e.text; }
      else if (e.type === "error") log("error [" + (e.code || (e.error && e.error.code)) + "]: " + (typeof e.error === "string" ? e.error : (e.error && e.error.message)), "err");
    }
  }
  refresh();
}

// follow keeps the page live from the fleet-wide event stream.
let followTimer = null;
function follow() {
  const es = new EventSource("/v1/events", { withCredentials: true });
  const soon = () => { if (!followTimer) followTimer = setTimeout(() => { followTimer = null; refresh(); }, 300); };
  for (const t of ["reply", "error", "tool_result"]) es.addEventListener(t, soon);
  es.onerror = () => setTimeout(soon, 2000);
  setInterval(refresh, 2000);
}

function switchView(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.view === name);
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + name;
  if (name === "approvals") loadApprovals().catch((e) => showError(e.message));
  if (name === "audit") loadAudit().catch((e) => showError(e.message));
  if (name === "map") drawMap(state.agents);
  if (name === "plots") loadSensors().then(() => loadPlot(true)).catch((e) => showError(e.message));
  if (name === "tasks") loadTasks();
  if (name === "earnings") loadEarnings();
}

async function main() {
  for (const b of document.querySelectorAll("#tabs button")) b.onclick = () => switchView(b.dataset.view);
  $("login-form").onsubmit = login;
  $("chat-form").onsubmit = (e) => chat(e).catch((x) => log("error: " + x.message, "err"));
  $("memory-form").onsubmit = searchMemory;
  $("audit-filter").oninput = () => loadAudit().catch((e) => showError(e.message));
  $("chat-agent").onchange = (e) => { state.current = e.target.value; };
  $("plot-agent").onchange = () => { plot.zoom = null; $("plot-sensor").replaceChildren(); loadSensors().then(() => loadPlot(true)).catch((e) => showError(e.message)); };
  $("plot-sensor").onchange = () => livePlot();
  $("plot-range").onchange = () => livePlot();
  $("plot-live").onclick = () => livePlot();
  // One click, no dialog: stopping must never wait for a confirmation.
  $("estop").onclick = () => decide("/stop");
  $("resume").onclick = () => { if (confirm("Release the emergency stop? Actuators and payments unlock fleet-wide.")) decide("/resume"); };
  const res = await fetch("/console/session", { credentials: "same-origin" });
  if (res.ok) start(await res.json()); else showLogin();
}

main();
