// The Runware panel's logic, as plain functions (no DOM, no ComfyUI import) so Node's test
// runner can check them (tests/js/panel_logic.test.mjs). runware_panel.js draws with them.
//
// Routes (the pack's Python side, under ComfyUI's /api prefix; see nodes/ledger_routes.py):
//   GET  /runware_ovi_sync3/jobs?limit&offset&endpoint=all -> {total, jobs: [...], ...}
//   GET  /runware_ovi_sync3/jobs.csv, /totals, /live, /limit
//   POST /runware_ovi_sync3/recover {endpoint, task_uuid}; POST /limit {limit_usd}
// Running jobs also arrive as the websocket event "runware_ovi_sync3.job"
// ({op: "update" | "end", job}).

export const PREFIX = "/runware_ovi_sync3";
export const ROUTES = {
  jobs: `${PREFIX}/jobs`,
  csv: `${PREFIX}/jobs.csv`,
  totals: `${PREFIX}/totals`,
  live: `${PREFIX}/live`,
  recover: `${PREFIX}/recover`,
  limit: `${PREFIX}/limit`,
};
export const EVENT = "runware_ovi_sync3.job";
export const PAGE_SIZE = 20;
export const LIMIT_SETTING = "Settings \u2192 Runware \u2192 Daily spend limit";

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

/** $0.05, $0.1234, $12.50 (like the Python side): 2 to 4 decimals; "unknown" otherwise. */
export function formatUsd(amount) {
  if (!isNum(amount)) return "unknown";
  let text = amount.toFixed(4).replace(/0+$/, "");
  const [whole, decimals = ""] = text.split(".");
  return `$${whole}.${decimals.padEnd(2, "0")}`;
}

/** 7s, 3m 05s, 1h 02m. */
export function formatDuration(seconds) {
  if (!isNum(seconds) || seconds < 0) return "";
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const pad = (n) => String(n).padStart(2, "0");

/** When a job was submitted, in the browser's local time: "14:03" today, else a date. */
export function formatWhen(epochSeconds, nowSeconds = Date.now() / 1000) {
  if (!isNum(epochSeconds)) return "";
  const d = new Date(epochSeconds * 1000);
  const now = new Date(nowSeconds * 1000);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() &&
    d.getDate() === now.getDate();
  if (sameDay) return time;
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${date} ${time}`;
}

const STATUS = {
  submitting: { label: "submitting", kind: "running" },
  running: { label: "running", kind: "running" },
  unknown: { label: "not collected", kind: "warn" },
  succeeded: { label: "succeeded", kind: "ok" },
  recovered: { label: "recovered", kind: "ok" },
  failed: { label: "failed", kind: "error" },
  not_found: { label: "not found", kind: "muted" },
  refused: { label: "refused", kind: "muted" },
};

export function statusInfo(status) {
  return STATUS[status] ?? { label: String(status ?? "?"), kind: "muted" };
}

/** ComfyUI's own /view route for a cached result (the server says where it is). */
export function viewPath(preview) {
  if (!preview || typeof preview.filename !== "string" || !preview.filename) return null;
  const q = new URLSearchParams({
    filename: preview.filename,
    subfolder: typeof preview.subfolder === "string" ? preview.subfolder : "",
    type: "output", // the only folder the pack's results are served from
  });
  return `/view?${q.toString()}`;
}

/** What one ledger row shows. */
export function jobRow(job, nowSeconds = Date.now() / 1000) {
  const status = statusInfo(job?.status);
  let cost = "\u2014";
  let costTitle = "";
  if (isNum(job?.cost)) {
    cost = formatUsd(job.cost);
    costTitle = "What Runware reported";
  } else if (job?.by_estimate && isNum(job?.counted)) {
    cost = `~${formatUsd(job.counted)}`;
    costTitle = "Counted at its estimate until its cost is known";
  }
  const task = typeof job?.task_uuid === "string" ? job.task_uuid : "";
  const files = Array.isArray(job?.files) ? job.files : [];
  const preview = files.map((f) => viewPath(f?.preview)).find(Boolean) ?? null;
  let waiting = "";
  if (job?.running_here) waiting = "being collected now";
  else if (job?.recoverable) {
    waiting = job.journaled
      ? "paid, not collected: Recover, or queue the same graph again"
      : "not collected: Recover polls Runware for it";
  }
  return {
    when: formatWhen(job?.submitted, nowSeconds),
    whenTitle: isNum(job?.submitted) ? new Date(job.submitted * 1000).toString() : "",
    model: String(job?.model ?? "?"),
    node: job?.node_id != null && job.node_id !== "" ? `node ${job.node_id}` : "",
    status,
    cost,
    costTitle,
    task,
    taskShort: task ? `${task.slice(0, 8)}\u2026` : "",
    canRecover: Boolean(job?.recoverable) && !job?.running_here,
    waiting,
    error: typeof job?.error === "string" && job.error ? job.error : "",
    preview,
    missingFiles: files.length > 0 && files.every((f) => !f?.exists),
  };
}

/** The three totals, for tiles. */
export function totalsTiles(totals) {
  const tile = (label, t, title) => {
    const n = isNum(t?.jobs) ? t.jobs : 0;
    const est = isNum(t?.by_estimate) && t.by_estimate > 0
      ? ` (${t.by_estimate} at estimate)` : "";
    return { label, value: formatUsd(isNum(t?.usd) ? t.usd : 0),
      detail: `${n} job${n === 1 ? "" : "s"}${est}`, title };
  };
  return [
    tile("This session", totals?.session, "Jobs this ComfyUI process submitted"),
    tile("Today", totals?.today, "Since midnight, local time of the ComfyUI machine"),
    tile("Last 30 days", totals?.last_30_days, "Today and the 29 days before"),
  ];
}

/** "Daily limit $5.00 (setting): $4.80 spent today, $0.20 left" / "No daily limit". */
export function limitLine(limit, todayUsd) {
  if (!limit || typeof limit !== "object") return { text: "", kind: "muted" };
  if (limit.error) return { text: limit.error, kind: "error" };
  if (!isNum(limit.limit_usd)) {
    const text = limit.source === "environment"
      ? `No daily limit (${limit.env_var ?? "RUNWARE_DAILY_LIMIT_USD"}=0 on the server)`
      : `No daily limit (${LIMIT_SETTING})`;
    return { text, kind: "muted" };
  }
  const where = limit.source === "environment"
    ? `set by ${limit.env_var ?? "RUNWARE_DAILY_LIMIT_USD"} on the server` : LIMIT_SETTING;
  const spent = isNum(todayUsd) ? todayUsd : 0;
  const left = Math.max(0, limit.limit_usd - spent);
  const kind = spent >= limit.limit_usd ? "error" : spent >= 0.8 * limit.limit_usd ? "warn"
    : "ok";
  return {
    text: `Daily limit ${formatUsd(limit.limit_usd)}: ${formatUsd(spent)} spent today, ` +
      `${formatUsd(left)} left (${where})`,
    kind,
  };
}

/** "Ovi ~$0.05 per result (8 jobs) · sync-3 ~$0.10 per second (3 jobs)". */
export function ratesLine(rates) {
  if (!Array.isArray(rates) || rates.length === 0) {
    return "Estimates: unknown until a job with a known cost has finished here.";
  }
  const parts = rates.filter((r) => isNum(r?.per_unit)).map((r) => {
    const unit = r.unit === "second" ? "per second of video" : "per result";
    const n = isNum(r.count) ? r.count : 0;
    return `${r.model} ~${formatUsd(r.per_unit)} ${unit} (median of ${n} job${n === 1 ? "" : "s"})`;
  });
  return `Estimates: ${parts.join(" \u00b7 ")}`;
}

/**
 * One running job. receivedAtMs: when the page got its last update (the server's clock may
 * differ from the browser's, so elapsed = the server's elapsed then + time since).
 */
export function liveRow(job, receivedAtMs, nowMs = Date.now()) {
  const since = isNum(receivedAtMs) && isNum(nowMs) ? Math.max(0, nowMs - receivedAtMs) : 0;
  const elapsed = (isNum(job?.elapsed) ? job.elapsed : 0) + since / 1000;
  const phase = String(job?.phase ?? "starting");
  const percent = isNum(job?.percent) ? Math.max(0, Math.min(100, job.percent)) : null;
  const head = [String(job?.model ?? "?")];
  if (job?.kind === "recover") head.push("Recover");
  else if (job?.kind === "fetch") head.push("Fetch Result");
  if (job?.node_id != null && job.node_id !== "") head.push(`node ${job.node_id}`);
  let phaseText = phase === "submitting" ? "queued" : phase;
  if (percent !== null) phaseText += ` ${Math.round(percent)}%`;
  if (isNum(job?.total) && job.total > 1) phaseText += ` \u00b7 ${job.done ?? 0}/${job.total} results`;
  return {
    id: job?.id,
    title: head.join(" \u00b7 "),
    phase: phaseText,
    elapsed: formatDuration(elapsed),
    percent,
    estimate: typeof job?.estimate?.text === "string" ? `est. ${job.estimate.text}` : "",
    note: typeof job?.note === "string" ? job.note : "",
    task: typeof job?.task_uuid === "string" ? job.task_uuid : "",
  };
}

/** The running jobs after one websocket event: a new Map of id -> {job, receivedAt}. */
export function applyLiveEvent(live, detail, nowMs = Date.now()) {
  const next = new Map(live ?? []);
  const job = detail?.job;
  if (!job || typeof job.id !== "string") return next;
  if (detail.op === "end") next.delete(job.id);
  else next.set(job.id, { job, receivedAt: nowMs });
  return next;
}

/** The running jobs from GET /live (a fresh page). */
export function liveFromSnapshot(body, nowMs = Date.now()) {
  const next = new Map();
  for (const job of Array.isArray(body?.jobs) ? body.jobs : []) {
    if (job && typeof job.id === "string") next.set(job.id, { job, receivedAt: nowMs });
  }
  return next;
}

/** "1-20 of 45", with whether there are newer / older pages. */
export function pageInfo(total, limit, offset) {
  const t = isNum(total) ? total : 0;
  const l = isNum(limit) && limit > 0 ? limit : PAGE_SIZE;
  const o = isNum(offset) && offset > 0 ? offset : 0;
  if (t === 0) return { text: "No jobs yet", newer: false, older: false };
  return {
    text: `${Math.min(o + 1, t)}\u2013${Math.min(o + l, t)} of ${t}`,
    newer: o > 0,
    older: o + l < t,
  };
}

/** The query string of a jobs page. */
export function jobsQuery(offset, allEndpoints) {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset || 0) });
  if (allEndpoints) q.set("endpoint", "all");
  return q.toString();
}

/** The daily limit typed in the settings: {ok, value (null = no limit)} or {ok:false, error}. */
export function parseLimitInput(text) {
  const raw = String(text ?? "").trim().replace(/^\$/, "").trim();
  if (raw === "") return { ok: true, value: null };
  if (!/^\d+(\.\d+)?$/.test(raw)) {
    return { ok: false, error: "Type an amount of US dollars, like 5 or 12.50 (0 or empty = no limit)." };
  }
  const value = Number(raw);
  if (!Number.isFinite(value) || value > 1e6) {
    return { ok: false, error: "The limit must be at most 1000000." };
  }
  return { ok: true, value: value === 0 ? null : value };
}

/** The status line under the limit setting. */
export function describeLimitStatus(body) {
  if (!body || typeof body !== "object") return "Unknown";
  if (body.error) return body.error;
  const env = body.env_var ?? "RUNWARE_DAILY_LIMIT_USD";
  const stored = isNum(body.setting_usd) ? formatUsd(body.setting_usd) : "none";
  const today = isNum(body.today_usd) ? ` Spent today: ${formatUsd(body.today_usd)}.` : "";
  if (body.source === "environment") {
    const value = isNum(body.limit_usd) ? formatUsd(body.limit_usd) : "no limit";
    return `${env} is set on the server (${value}); it overrides this setting ` +
      `(saved here: ${stored}).${today}`;
  }
  if (isNum(body.limit_usd)) return `Limit: ${formatUsd(body.limit_usd)} a day.${today}`;
  return `No daily limit.${today}`;
}

/** The message after pressing Recover. */
export function recoverMessage(status, body) {
  if (status === 202) return { text: "Recovering: polling Runware (no new charge)\u2026", kind: "ok" };
  const error = typeof body?.error === "string" && body.error ? body.error : "";
  if (status === 0) return { text: "Could not reach ComfyUI.", kind: "error" };
  return { text: error || `Recover failed (HTTP ${status}).`, kind: "error" };
}

/** The taskUUID copy button's resting label, and how long its answer stays before it. */
export const COPY_LABEL = "Copy";
export const COPY_RESET_MS = 1500;

/**
 * Copy text: the clipboard API first; if it is missing or refuses (plain http on another
 * machine is not a "secure context": no clipboard API there), the fallback (the panel's
 * selected textarea + execCommand("copy")), which returns whether it copied. Returns
 * {ok, method: "clipboard" | "fallback"}; never throws.
 */
export async function copyWith(text, clipboard, fallback) {
  try {
    await clipboard.writeText(text);
    return { ok: true, method: "clipboard" };
  } catch {
    let ok = false;
    try {
      ok = fallback(text) === true;
    } catch {
      ok = false;
    }
    return { ok, method: "fallback" };
  }
}

/** What the copy button says after a copy, until COPY_RESET_MS later. */
export function copyLabel(ok) {
  return ok ? "Copied" : "Copy failed";
}
