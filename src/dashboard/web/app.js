// batman dashboard: plain JavaScript, no framework. Data comes from /api/v1/ once, then as
// Server-Sent Events (/api/v1/events, resumed with Last-Event-ID): no polling. Everything a job
// controls (names, commands, output) goes into the page as text (textContent), never as markup.
"use strict";

const TOKEN = document.querySelector('meta[name="batman-token"]').content;
// Rows loaded per table at first: a page of 100 renders at once even for a home of 10000
// runs; "show more" asks for more.
let LIMIT = 100;
const LOG_KEEP = 1 << 20;  // characters of a log kept in the page

const store = {
  seq: null,
  projects: new Map(),   // name -> summary
  runs: new Map(),       // "project/run" -> run (runs and batches)
  tasks: new Map(),      // "project/run" -> task
  programs: new Map(),   // project -> [instance]
  totals: { runs: 0, tasks: 0 },
};
const view = { project: null, run: null, logKind: null };
let events = null;
let logSource = null;
let renderPending = false;
let firstRender = true;

// ---- helpers ---------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// ANSI escapes and other control characters shown, not obeyed.
function visible(text) {
  return String(text).replace(/\x1b/g, "\u241b").replace(/[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]/g, (c) =>
    String.fromCharCode(0x2400 + (c === "\x7f" ? 0x21 : c.charCodeAt(0))));
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "";
  if (seconds < 10) return `${Math.max(0, seconds).toFixed(1)}s`;
  seconds = Math.floor(seconds);
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
  const m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (d) return `${d}d ${pad(h)}:${pad(m)}:${pad(s)}`;
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

function liveSeconds(item) {
  if (!item.live || !item.started_at) return item.duration_seconds;
  const start = Date.parse(item.started_at);
  return isNaN(start) ? item.duration_seconds : (Date.now() - start) / 1000;
}

// Today's times as 14:03:27, older ones as 2026-11-30 14:03.
function shortTime(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  if (isNaN(t)) return iso;
  const pad = (n) => String(n).padStart(2, "0");
  const time = `${pad(t.getHours())}:${pad(t.getMinutes())}`;
  if (t.toDateString() === new Date().toDateString()) return `${time}:${pad(t.getSeconds())}`;
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${time}`;
}

function toast(text, bad) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = "shown" + (bad ? " bad" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, bad ? 9000 : 4000);
}

async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

async function act(path, label, button) {
  if (button) button.disabled = true;
  try {
    const r = await fetch(path, { method: "POST", headers: { "X-Batman-Token": TOKEN } });
    const body = await r.json().catch(() => ({}));
    const out = (body.output || body.error || "").trim();
    toast(`${label}: ${r.ok ? "done" : "failed"}${out ? "\n" + out : ""}`, !r.ok);
  } catch (e) {
    toast(`${label}: ${e.message}`, true);
  } finally {
    if (button) button.disabled = false;
  }
}

const enc = encodeURIComponent;
const key = (item) => `${item.project}/${item.run_id}`;

// ---- routing ---------------------------------------------------------------------------

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "p" && parts[1]) return { project: parts[1], run: null, kind: null };
  if (parts[0] === "run" && parts[1] && parts[2]) return { project: parts[1], run: parts[2], kind: "run" };
  if (parts[0] === "program" && parts[1] && parts[2]) return { project: parts[1], run: parts[2], kind: "program" };
  return { project: null, run: null, kind: null };
}

async function route() {
  const next = parseHash();
  const projectChanged = next.project !== view.project;
  view.project = next.project;
  document.body.classList.toggle("single-project", !!view.project);
  document.getElementById("view-title").textContent = view.project ? `Project ${view.project}` : "Every project";
  if (projectChanged || firstRender) await loadView();
  if (next.run !== view.run || next.kind !== view.logKind) openLog(next.run ? next : null);
  scheduleRender();
}

// ---- loading and live updates ----------------------------------------------------------

async function loadView() {
  const scope = view.project ? `project=${enc(view.project)}&` : "";
  try {
    const all = await api(`/api/v1/overview?${scope}limit=${LIMIT}`);
    const { projects, runs, tasks } = all;
    const programs = all.programs;
    store.projects = new Map(projects.map((p) => [p.name, p]));
    store.runs = new Map(runs.items.map((r) => [key(r), r]));
    store.tasks = new Map(tasks.items.map((r) => [key(r), r]));
    store.totals = { runs: runs.total, tasks: tasks.total };
    store.programs = new Map();
    const received = Date.now();
    for (const p of programs) {
      p.received = received;
      if (!store.programs.has(p.project)) store.programs.set(p.project, []);
      store.programs.get(p.project).push(p);
    }
    const seq = all.seq;
    if (!events || store.seq === null) connect(seq);
    store.seq = seq;
  } catch (e) {
    toast(`loading failed: ${e.message}`, true);
  }
}

function connect(since) {
  if (events) events.close();
  events = new EventSource(`/api/v1/events?since=${since}`);
  const conn = document.getElementById("conn");
  events.onopen = () => { conn.textContent = "live"; conn.className = "conn live"; };
  events.onerror = () => { conn.textContent = "reconnecting…"; conn.className = "conn"; };
  const on = (name, f) => events.addEventListener(name, (e) => {
    try { f(JSON.parse(e.data)); } catch (err) { console.error(name, err); }
    scheduleRender();
  });
  on("run", (r) => {
    if (view.project && r.project !== view.project) return;
    const map = r.category === "task" ? store.tasks : store.runs;
    if (!map.has(key(r))) store.totals[r.category === "task" ? "tasks" : "runs"]++;
    map.set(key(r), r);
  });
  on("run-removed", (r) => {
    for (const [map, total] of [[store.runs, "runs"], [store.tasks, "tasks"]])
      if (map.delete(`${r.project}/${r.run_id}`)) store.totals[total]--;
  });
  on("project", (p) => store.projects.set(p.name, p));
  on("project-removed", (p) => { store.projects.delete(p.project); store.programs.delete(p.project); });
  on("programs", (p) => {
    if (view.project && p.project !== view.project) return;
    store.programs.set(p.project, p.items.map((i) => Object.assign(i, { received: Date.now() })));
  });
  on("reset", () => { loadView().then(scheduleRender); });
}

// ---- rendering -------------------------------------------------------------------------

function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; render(); });
}

function filters() {
  return {
    text: document.getElementById("filter").value.trim().toLowerCase(),
    status: document.getElementById("status-filter").value,
  };
}

function matches(item, f, status) {
  if (f.status === "live" && !(item.live || ["RUNNING", "STARTING", "BACKOFF", "STOPPING"].includes(status))) return false;
  if (f.status && f.status !== "live" && String(status).toLowerCase() !== f.status) return false;
  if (!f.text) return true;
  return [item.run_id, item.task, item.name, item.command, item.project]
    .some((v) => v && String(v).toLowerCase().includes(f.text));
}

function newestFirst(a, b) {
  return (b.started_at || "").localeCompare(a.started_at || "") || (b.run_id || "").localeCompare(a.run_id || "");
}

function statusCell(status, extra) {
  return el("td", { class: `status s-${status}${extra || ""}`, text: status });
}

function fill(tbody, rows, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: columns, text: "nothing here" }))]));
}

function render() {
  const f = filters();
  renderProjects();
  // Runs
  const runs = [...store.runs.values()].filter((r) => matches(r, f, r.status)).sort(newestFirst);
  document.getElementById("runs-count").textContent = `${runs.length} shown of ${store.totals.runs}`;
  document.getElementById("more").hidden = store.runs.size >= store.totals.runs && store.tasks.size >= store.totals.tasks;
  fill(document.querySelector("#runs tbody"), runs.map(runRow), 12);
  // Programs
  const programs = [];
  for (const [project, items] of store.programs) {
    if (view.project && project !== view.project) continue;
    for (const p of items) if (matches(p, f, p.state)) programs.push(p);
  }
  document.getElementById("programs-count").textContent = `${programs.length}`;
  document.getElementById("programs-section").hidden = programs.length === 0 && !f.text && !f.status;
  fill(document.querySelector("#programs tbody"), programs.map(programRow), 10);
  // Tasks
  const tasks = [...store.tasks.values()].filter((r) => matches(r, f, r.status)).sort(newestFirst);
  document.getElementById("tasks-count").textContent = `${tasks.length} shown of ${store.totals.tasks}`;
  document.getElementById("tasks-section").hidden = store.tasks.size === 0;
  fill(document.querySelector("#tasks tbody"), tasks.map(taskRow), 10);
  if (firstRender) {
    firstRender = false;
    window.batmanFirstRender = performance.now();
    document.documentElement.dataset.ready = "1";
  }
}

function renderProjects() {
  const list = document.getElementById("project-list");
  const items = [el("li", {}, el("a", { href: "#/", class: view.project ? "" : "current" }, "every project"))];
  const names = [...store.projects.keys()].sort();
  for (const name of names) {
    const p = store.projects.get(name);
    const live = p.runs.live + p.tasks.live + p.programs.up;
    const total = p.runs.total + p.tasks.total + p.programs.total;
    items.push(el("li", { "data-project": name },
      el("a", { href: `#/p/${enc(name)}`, class: view.project === name ? "current" : "" },
        el("span", { text: name }),
        el("span", { class: live ? "badge live" : "badge", text: live ? `${live} live / ${total}` : `${total}` }))));
  }
  list.replaceChildren(...items);
}

function stopButton(item, label) {
  return el("button", {
    type: "button", class: "stop", title: `stop ${item.project} ${item.run_id}`, text: "stop",
    onclick: (e) => act(`/api/v1/runs/${enc(item.project)}/${enc(item.run_id)}/stop`, `stop ${label}`, e.currentTarget),
  });
}

function runRow(r) {
  const selected = view.logKind === "run" && view.project === r.project && view.run === r.run_id;
  return el("tr", { "data-run": key(r), class: selected ? "selected" : "" },
    el("td", { class: "c-project" }, el("a", { href: `#/p/${enc(r.project)}`, text: r.project })),
    el("td", { class: "id" }, el("a", { href: `#/run/${enc(r.project)}/${enc(r.run_id)}`, text: r.run_id })),
    el("td", { class: "opt", text: r.kind }),
    el("td", { class: "opt", text: r.tier }),
    statusCell(r.status),
    el("td", { class: "opt", text: r.live && r.pid ? r.pid : "" }),
    el("td", { class: "opt id", text: shortTime(r.started_at) }),
    el("td", { class: "dur", "data-start": r.live ? r.started_at : null, text: duration(liveSeconds(r)) }),
    el("td", { text: r.exit_code ?? (r.signal ? `sig ${r.signal}` : "") }),
    el("td", { class: "opt", text: r.restarts || "" }),
    el("td", { class: "cmd opt", title: visible(r.command), text: visible(r.command) }),
    el("td", { class: "actions" }, r.live ? stopButton(r, `${r.project} ${r.run_id}`) : null));
}

function taskRow(t) {
  const selected = view.logKind === "run" && view.project === t.project && view.run === t.run_id;
  return el("tr", { "data-run": key(t), class: selected ? "selected" : "" },
    el("td", { class: "c-project" }, el("a", { href: `#/p/${enc(t.project)}`, text: t.project })),
    el("td", {}, el("a", { href: `#/run/${enc(t.project)}/${enc(t.run_id)}`, text: t.task })),
    el("td", { class: "opt", text: t.batch }),
    el("td", { class: "opt", text: t.tier }),
    statusCell(t.status),
    el("td", { class: "opt", text: t.slurm_job ? "slurm:" + t.slurm_job + (t.node ? "@" + t.node : "") : t.live && t.pid ? t.pid : "" }),
    el("td", { class: "dur", "data-start": t.live ? t.started_at : null, text: duration(liveSeconds(t)) }),
    el("td", { text: t.exit_code ?? "" }),
    el("td", { class: "opt", text: t.restarts || "" }),
    el("td", { class: "actions" }, t.live ? stopButton(t, `${t.project} ${t.task}`) : null));
}

function programRow(p) {
  const selected = view.logKind === "program" && view.project === p.project && view.run === p.instance;
  const up = p.uptime_seconds !== null && p.uptime_seconds !== undefined
    ? p.uptime_seconds + (Date.now() - (p.received || Date.now())) / 1000 : null;
  const button = (verb) => el("button", {
    type: "button", class: verb, text: verb, disabled: !p.supervised,
    onclick: (e) => act(`/api/v1/programs/${enc(p.project)}/${enc(p.name)}/${verb}`, `${verb} ${p.project} ${p.name}`, e.currentTarget),
  });
  return el("tr", { "data-program": `${p.project}/${p.name}`, class: selected ? "selected" : "" },
    el("td", { class: "c-project" }, el("a", { href: `#/p/${enc(p.project)}`, text: p.project })),
    el("td", {}, el("a", { href: `#/program/${enc(p.project)}/${enc(p.instance)}`, text: p.name })),
    statusCell(p.state, p.state === "EXITED" && p.exit_code === 0 ? " ok" : ""),
    el("td", { class: "opt", text: p.tier }),
    el("td", { class: "opt", text: p.pid || "" }),
    el("td", { class: "dur", "data-up": up !== null ? String(Date.now() / 1000 - up) : null, text: up !== null ? duration(up) : "" }),
    el("td", { class: "opt", text: p.exit_code ?? (p.signal || "") }),
    el("td", { class: "opt", text: p.restarts || "" }),
    // A running instance's detail repeats its pid and an uptime that the column keeps current.
    el("td", { class: "opt", text: p.state === "RUNNING" ? "" : visible(p.detail || "") }),
    el("td", { class: "actions" }, button("start"), button("stop"), button("restart")));
}

// Durations of live rows tick locally (a clock, not a request).
setInterval(() => {
  for (const td of document.querySelectorAll("td.dur[data-start]")) {
    const t = Date.parse(td.dataset.start);
    if (!isNaN(t)) td.textContent = duration((Date.now() - t) / 1000);
  }
  for (const td of document.querySelectorAll("td.dur[data-up]")) {
    td.textContent = duration(Date.now() / 1000 - Number(td.dataset.up));
  }
}, 1000);

// ---- the log view ----------------------------------------------------------------------

function openLog(target) {
  if (logSource) { logSource.close(); logSource = null; }
  const section = document.getElementById("log-section");
  const pre = document.getElementById("log");
  view.run = target ? target.run : null;
  view.logKind = target ? target.kind : null;
  if (!target) { section.hidden = true; pre.textContent = ""; return; }
  section.hidden = false;
  document.getElementById("log-title").textContent = `${target.project} ${target.run}`;
  const streamSelect = document.getElementById("log-stream");
  streamSelect.hidden = target.kind !== "program";
  pre.textContent = "";
  if (document.getElementById("follow").checked) followLog(target, streamSelect.value);
  else loadLogOnce(target, streamSelect.value);
}

function logParams(target, stream) {
  return `project=${enc(target.project)}&run=${enc(target.run)}&stream=${enc(target.kind === "program" ? stream : "stdout")}`;
}

function appendLog(text) {
  const pre = document.getElementById("log");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.append(document.createTextNode(visible(text)));
  if (pre.textContent.length > LOG_KEEP) pre.textContent = pre.textContent.slice(-LOG_KEEP / 2);
  if (document.getElementById("follow").checked && atBottom) pre.scrollTop = pre.scrollHeight;
}

function followLog(target, stream) {
  logSource = new EventSource(`/api/v1/log/stream?${logParams(target, stream)}`);
  logSource.addEventListener("log", (e) => appendLog(JSON.parse(e.data).data));
  logSource.addEventListener("truncated", () => { document.getElementById("log").textContent = ""; });
  logSource.onerror = () => {
    if (logSource && logSource.readyState === EventSource.CLOSED) appendLog("\n[the log is not available]\n");
  };
}

async function loadLogOnce(target, stream) {
  try {
    const r = await api(`/api/v1/log?${logParams(target, stream)}`);
    appendLog(r.data);
  } catch (e) {
    appendLog(`[${e.message}]\n`);
  }
}

document.getElementById("follow").addEventListener("change", () => openLog(parseHash().run ? parseHash() : null));
document.getElementById("log-stream").addEventListener("change", () => openLog(parseHash().run ? parseHash() : null));
document.getElementById("log-close").addEventListener("click", () => {
  location.hash = view.project ? `#/p/${enc(view.project)}` : "#/";
});
document.getElementById("more").addEventListener("click", () => { LIMIT *= 5; loadView().then(scheduleRender); });
document.getElementById("filter").addEventListener("input", scheduleRender);
document.getElementById("status-filter").addEventListener("change", scheduleRender);
window.addEventListener("hashchange", route);
route();
