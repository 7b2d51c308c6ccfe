// Runware panel: a "Runware" tab in ComfyUI's sidebar with the jobs this pack ran (running
// and recent), Recover for a job paid but not collected, totals, the daily limit and CSV
// export; and the Settings -> Runware -> Daily spend limit field. Everything it shows comes
// from the pack's routes (nodes/ledger_routes.py) and its websocket event; every text is
// set as text, never as HTML. Logic lives in panel_logic.js (tested with node --test).
//
// The sidebar API (app.extensionManager.registerSidebarTab) exists in the frontends this
// pack is tested with (1.27 and 1.58). Where it is missing, the tab is left out with a
// console note; the limit setting, the routes and the nodes work the same.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

import {
  COPY_LABEL,
  COPY_RESET_MS,
  EVENT,
  ROUTES,
  applyLiveEvent,
  copyLabel,
  copyWith,
  describeLimitStatus,
  jobRow,
  jobsQuery,
  limitLine,
  liveFromSnapshot,
  liveRow,
  pageInfo,
  parseLimitInput,
  ratesLine,
  recoverMessage,
  totalsTiles,
} from "./panel_logic.js";

const LOG = "[Runware]";
const TAB_ID = "runware-jobs";
const LIMIT_SETTING_ID = "Runware.DailySpendLimit";

const state = {
  root: null,
  live: new Map(),
  page: null,
  totals: null,
  offset: 0,
  allEndpoints: false,
  loading: false,
  error: "",
  messages: new Map(), // taskUUID -> {text, kind}
  seen: new Set(), // taskUUIDs of running jobs the list was refreshed for
  refreshTimer: null,
  ticker: null,
};

// ---------------------------------------------------------------------------------------
// small DOM helpers (text only)
// ---------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const COLORS = {
  ok: "var(--p-green-400, #4ade80)",
  warn: "var(--p-orange-400, #fb923c)",
  error: "var(--p-red-400, #f87171)",
  running: "var(--p-sky-400, #38bdf8)",
  muted: "var(--descrip-text, #999)",
};

const STYLE = `
.rw-panel { display: flex; flex-direction: column; gap: 10px; padding: 10px 12px;
  font-size: 13px; color: var(--fg-color, #ddd); height: 100%; overflow-y: auto;
  box-sizing: border-box; }
.rw-head { display: flex; align-items: center; justify-content: space-between; gap: 6px; }
.rw-title { font-size: 15px; font-weight: 600; }
.rw-small { font-size: 11px; color: var(--descrip-text, #999); overflow-wrap: anywhere; }
.rw-tiles { display: grid; grid-template-columns: repeat(3, 1fr); gap: 6px; }
.rw-tile { border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 6px; }
.rw-tile b { display: block; font-size: 15px; }
.rw-section { font-weight: 600; margin-top: 4px; display: flex; align-items: center;
  justify-content: space-between; gap: 6px; }
.rw-card { border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 6px 8px;
  display: flex; flex-direction: column; gap: 4px; }
.rw-row { display: flex; align-items: center; gap: 6px; flex-wrap: wrap; }
.rw-badge { border-radius: 4px; padding: 0 5px; font-size: 11px; border: 1px solid; }
.rw-mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 11px; }
.rw-bar { height: 4px; background: var(--border-color, #444); border-radius: 2px;
  overflow: hidden; }
.rw-bar > div { height: 100%; background: ${COLORS.running}; }
.rw-error { color: ${COLORS.error}; font-size: 11px; overflow-wrap: anywhere;
  display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
.rw-video { width: 100%; max-height: 140px; background: #000; border-radius: 4px; }
.rw-button { font-size: 11px; padding: 1px 8px; cursor: pointer; border-radius: 4px;
  border: 1px solid var(--border-color, #555); background: var(--comfy-input-bg, #222);
  color: inherit; }
.rw-button:disabled { opacity: 0.5; cursor: default; }
.rw-link { color: inherit; font-size: 11px; }
`;

function ensureStyle() {
  if (document.getElementById("runware-panel-style")) return;
  document.head.append(el("style", { id: "runware-panel-style", text: STYLE }));
}

function button(label, title, onclick) {
  return el("button", { type: "button", className: "rw-button", title, text: label, onclick });
}

async function request(path, options = {}) {
  let response;
  try {
    response = await api.fetchApi(path, { cache: "no-store", ...options });
  } catch (error) {
    return { ok: false, status: 0, body: null, text: String(error?.message ?? error) };
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { ok: response.ok && body !== null, status: response.status, body,
    text: response.statusText || "" };
}

function postJson(path, payload) {
  return request(path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload) });
}

// The DOM half of copying (copyWith in panel_logic.js decides when it is used): a
// selected, invisible textarea and execCommand("copy"), removed again either way.
function copyBySelection(text) {
  const area = el("textarea", { style: { position: "fixed", opacity: "0" } });
  area.value = text;
  document.body.append(area);
  area.select();
  try {
    return document.execCommand("copy");
  } finally {
    area.remove();
  }
}

// ---------------------------------------------------------------------------------------
// data
// ---------------------------------------------------------------------------------------

async function refresh() {
  if (state.loading) return;
  state.loading = true;
  const [page, totals, live] = await Promise.all([
    request(`${ROUTES.jobs}?${jobsQuery(state.offset, state.allEndpoints)}`),
    request(ROUTES.totals),
    request(ROUTES.live),
  ]);
  state.loading = false;
  state.error = "";
  if (page.ok) state.page = page.body;
  if (totals.ok) state.totals = totals.body;
  if (live.ok) state.live = liveFromSnapshot(live.body);
  const failed = [page, totals, live].find((r) => !r.ok);
  if (failed) {
    state.error = failed.status === 404
      ? "The Runware panel routes are not available: restart ComfyUI after updating the pack."
      : failed.body?.error || `Could not load the Runware jobs (HTTP ${failed.status}).`;
  }
  render();
}

function scheduleRefresh(delay = 400) {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => void refresh(), delay);
}

function onJobEvent(event) {
  state.live = applyLiveEvent(state.live, event?.detail);
  const task = event?.detail?.job?.task_uuid;
  if (event?.detail?.op === "update" && task && !state.seen.has(task)) {
    // A job the list does not show yet (just submitted): load it once, with the totals.
    state.seen.add(task);
    if (!(state.page?.jobs ?? []).some((j) => j.task_uuid === task)) scheduleRefresh(600);
  }
  if (event?.detail?.op === "end") {
    const job = event.detail.job ?? {};
    if (job.kind === "recover" && job.task_uuid) {
      state.messages.set(job.task_uuid, job.outcome === "done"
        ? { text: "Recovered: the result is in the cache (no new charge).", kind: "ok" }
        : { text: job.error || "Recover failed.", kind: "error" });
    }
    scheduleRefresh();
  }
  renderLive();
}

async function recover(job, buttonNode) {
  buttonNode.disabled = true; // a double click sends one request; the server refuses a second
  state.messages.set(job.task_uuid, { text: "Starting\u2026", kind: "muted" });
  render();
  const r = await postJson(ROUTES.recover, { endpoint: job.endpoint, task_uuid: job.task_uuid });
  state.messages.set(job.task_uuid, recoverMessage(r.status, r.body));
  scheduleRefresh(100);
}

// ---------------------------------------------------------------------------------------
// drawing
// ---------------------------------------------------------------------------------------

function section(title, ...extra) {
  return el("div", { className: "rw-section" }, el("span", { text: title }), ...extra);
}

function liveList() {
  const items = [...state.live.values()].sort((a, b) => (a.job.started ?? 0) - (b.job.started ?? 0));
  if (!items.length) return el("div", { className: "rw-small", text: "Nothing running." });
  return el("div", { style: { display: "flex", flexDirection: "column", gap: "6px" } },
    items.map(({ job, receivedAt }) => {
      const row = liveRow(job, receivedAt);
      return el("div", { className: "rw-card", "data-live-id": row.id },
        el("div", { className: "rw-row" },
          el("b", { text: row.title }),
          el("span", { text: row.phase, style: { color: COLORS.running } }),
          el("span", { className: "rw-small", text: row.elapsed })),
        row.percent !== null
          ? el("div", { className: "rw-bar" }, el("div", { style: { width: `${row.percent}%` } }))
          : null,
        row.estimate ? el("div", { className: "rw-small", text: row.estimate }) : null,
        row.note ? el("div", { className: "rw-small", text: row.note }) : null,
        row.task ? el("div", { className: "rw-small rw-mono", text: row.task }) : null);
    }));
}

function jobCard(job) {
  const row = jobRow(job);
  const message = state.messages.get(row.task);
  const copy = button(COPY_LABEL, "Copy the taskUUID", async (event) => {
    const { ok } = await copyWith(row.task, navigator.clipboard, copyBySelection);
    event.target.textContent = copyLabel(ok);
    setTimeout(() => { event.target.textContent = COPY_LABEL; }, COPY_RESET_MS);
  });
  const badge = el("span", { className: "rw-badge", text: row.status.label,
    style: { color: COLORS[row.status.kind], borderColor: COLORS[row.status.kind] } });
  let recoverButton = null;
  if (row.canRecover) {
    recoverButton = button("Recover", "Poll Runware for this job and download its result " +
      "into the cache: no new charge, the graph is not queued again", (event) =>
      void recover(job, event.target));
  }
  return el("div", { className: "rw-card", "data-task-uuid": row.task },
    el("div", { className: "rw-row" },
      el("span", { text: row.when, title: row.whenTitle }),
      el("b", { text: row.model }),
      badge,
      el("span", { text: row.cost, title: row.costTitle, style: { marginLeft: "auto" } })),
    el("div", { className: "rw-row" },
      el("span", { className: "rw-mono", text: row.taskShort, title: row.task }),
      copy,
      row.node ? el("span", { className: "rw-small", text: row.node }) : null,
      recoverButton),
    row.waiting ? el("div", { className: "rw-small", text: row.waiting }) : null,
    row.preview
      ? el("video", { className: "rw-video", controls: true, preload: "metadata",
        src: api.apiURL(row.preview) })
      : null,
    row.missingFiles ? el("div", { className: "rw-small",
      text: "The result file is no longer in the cache." }) : null,
    row.error ? el("div", { className: "rw-error", text: row.error, title: row.error }) : null,
    message ? el("div", { className: "rw-small", text: message.text,
      style: { color: COLORS[message.kind] } }) : null);
}

function renderLive() {
  const holder = state.root?.querySelector(".rw-live");
  if (holder) holder.replaceChildren(liveList());
}

function render() {
  const root = state.root;
  if (!root || !root.isConnected) return;
  const totals = state.totals;
  const page = state.page;
  const scroll = root.scrollTop;
  const info = pageInfo(page?.total, page?.limit, state.offset);
  const csv = api.apiURL(`${ROUTES.csv}${state.allEndpoints ? "?endpoint=all" : ""}`);
  const limit = limitLine(totals?.limit, totals?.today?.usd);
  const allBox = el("input", { type: "checkbox", onchange: (event) => {
    state.allEndpoints = event.target.checked;
    state.offset = 0;
    void refresh();
  } });
  allBox.checked = state.allEndpoints;
  const newer = button("Newer", "Newer jobs", () => {
    state.offset = Math.max(0, state.offset - (page?.limit ?? 20));
    void refresh();
  });
  const older = button("Older", "Older jobs", () => {
    state.offset += page?.limit ?? 20;
    void refresh();
  });
  newer.disabled = !info.newer;
  older.disabled = !info.older;
  root.replaceChildren(...[
    el("div", { className: "rw-head" },
      el("span", { className: "rw-title", text: "Runware" }),
      button("Refresh", "Load the jobs again", () => void refresh())),
    totals ? el("div", { className: "rw-small", text: `Endpoint: ${totals.endpoint}` }) : null,
    state.error ? el("div", { className: "rw-error", text: state.error }) : null,
    el("div", { className: "rw-tiles" }, totalsTiles(totals).map((t) =>
      el("div", { className: "rw-tile", title: t.title },
        el("span", { className: "rw-small", text: t.label }),
        el("b", { text: t.value }),
        el("span", { className: "rw-small", text: t.detail })))),
    limit.text ? el("div", { className: "rw-small rw-limit", text: limit.text,
      style: { color: COLORS[limit.kind] } }) : null,
    el("div", { className: "rw-small rw-rates", text: ratesLine(totals?.rates) }),
    section("Running"),
    el("div", { className: "rw-live" }, liveList()),
    section("Recent jobs",
      el("a", { className: "rw-link", href: csv, download: "", text: "Export CSV",
        title: "Every job as CSV (with endpoint and fingerprint)" })),
    el("label", { className: "rw-small" }, allBox, " all endpoints (also the offline double)"),
    el("div", { className: "rw-jobs", style: { display: "flex", flexDirection: "column",
      gap: "6px" } },
    (page?.jobs ?? []).map(jobCard)),
    page?.preview_note ? el("div", { className: "rw-small", text: page.preview_note }) : null,
    el("div", { className: "rw-row", style: { justifyContent: "space-between" } },
      newer, el("span", { className: "rw-small rw-page", text: info.text }), older),
  ].filter(Boolean));
  root.scrollTop = scroll;
}

function renderTab(container) {
  // Vue may hand the same element again on an update: draw into it once.
  if (state.root && state.root.parentNode === container) return;
  ensureStyle();
  const root = el("div", { className: "rw-panel", "data-runware-panel": "" });
  container.replaceChildren(root);
  state.root = root;
  render();
  void refresh();
  clearInterval(state.ticker);
  state.ticker = setInterval(() => {
    if (!state.root?.isConnected) {
      clearInterval(state.ticker);
      state.ticker = null;
      return;
    }
    if (state.live.size) renderLive(); // elapsed time ticks
  }, 1000);
}

function registerTab() {
  const manager = app.extensionManager;
  if (typeof manager?.registerSidebarTab !== "function") {
    console.info(`${LOG} this ComfyUI frontend has no sidebar tab API: the Runware panel ` +
      "is not shown (the nodes, the daily limit and the routes work as usual)");
    return false;
  }
  manager.registerSidebarTab({
    id: TAB_ID,
    icon: "pi pi-wallet",
    title: "Runware",
    tooltip: "Runware jobs, spend and Recover",
    label: "Runware",
    type: "custom",
    render: renderTab,
    destroy: () => {
      clearInterval(state.ticker);
      state.ticker = null;
      state.root = null;
    },
  });
  return true;
}

// ---------------------------------------------------------------------------------------
// Settings -> Runware -> Daily spend limit (stored on the server, not in comfy.settings.json)
// ---------------------------------------------------------------------------------------

function renderLimitSetting() {
  const root = el("div", { className: "runware-limit-setting", style: {
    display: "flex", flexDirection: "column", alignItems: "flex-end", gap: "0.4rem",
    maxWidth: "32rem" } });
  const input = el("input", { type: "text", inputmode: "decimal", placeholder: "no limit",
    className: "p-inputtext p-component", "aria-label": "Daily spend limit in US dollars",
    style: { width: "8rem" } });
  const save = el("button", { type: "button", className: "p-button p-component p-button-sm",
    text: "Save", title: "Store the limit on the ComfyUI server" });
  const status = el("div", { role: "status", style: { fontSize: "0.85rem", textAlign: "right" } });
  root.append(el("div", { style: { display: "flex", alignItems: "center", gap: "0.4rem" } },
    el("span", { text: "USD" }), input, save), status);

  const show = (body, kind = "info") => {
    status.textContent = typeof body === "string" ? body : describeLimitStatus(body);
    status.style.color = kind === "error" ? COLORS.error : kind === "ok" ? COLORS.ok : "";
  };
  // The first read may answer after the user has typed or saved: it must not overwrite
  // their text or the message their save (or a refused value) put up.
  let touched = false;
  input.addEventListener("input", () => { touched = true; });
  const load = async () => {
    const r = await request(ROUTES.limit);
    if (touched) return;
    if (!r.ok) {
      show(r.body?.error || `Could not read the limit (HTTP ${r.status}).`, "error");
      return;
    }
    input.value = typeof r.body.setting_usd === "number" ? String(r.body.setting_usd) : "";
    show(r.body, r.body.error ? "error" : "info");
  };
  const doSave = async () => {
    touched = true;
    const parsed = parseLimitInput(input.value);
    if (!parsed.ok) {
      show(parsed.error, "error");
      return;
    }
    save.disabled = true;
    const r = await postJson(ROUTES.limit, { limit_usd: parsed.value });
    save.disabled = false;
    if (r.ok) {
      input.value = typeof r.body.setting_usd === "number" ? String(r.body.setting_usd) : "";
      show(r.body, "ok");
      scheduleRefresh(0);
    } else {
      show(r.body?.error || `Could not save the limit (HTTP ${r.status}).`, "error");
    }
  };
  input.addEventListener("keydown", (event) => {
    event.stopPropagation(); // keep keystrokes away from ComfyUI's keybindings
    if (event.key === "Enter") {
      event.preventDefault();
      void doSave();
    }
  });
  save.addEventListener("click", () => void doSave());
  void load();
  return root;
}

app.registerExtension({
  name: "runware.panel",
  settings: [
    {
      id: LIMIT_SETTING_ID,
      category: ["Runware", "Spend", "Daily limit"],
      name: "Daily spend limit",
      tooltip:
        "Paid Runware jobs stop before any upload once today's spend (since midnight on the " +
        "ComfyUI machine) plus the job's estimate would pass this amount. Stored on the " +
        "ComfyUI server; the RUNWARE_DAILY_LIMIT_USD environment variable, when set, wins. " +
        "Empty or 0 = no limit.",
      type: renderLimitSetting,
      defaultValue: "",
    },
  ],
  setup() {
    try {
      api.addEventListener(EVENT, onJobEvent);
      api.addEventListener("reconnected", () => scheduleRefresh(0));
      registerTab();
    } catch (error) {
      console.error(`${LOG} the Runware panel could not start`, error);
    }
  },
});
