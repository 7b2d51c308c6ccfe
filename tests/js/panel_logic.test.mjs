// Run from the repo root: node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  COPY_LABEL,
  COPY_RESET_MS,
  EVENT,
  ROUTES,
  applyLiveEvent,
  copyLabel,
  copyWith,
  describeLimitStatus,
  formatDuration,
  formatUsd,
  formatWhen,
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
  viewPath,
} from "../../web/js/panel_logic.js";

test("routes and the event name are the server's", () => {
  assert.equal(ROUTES.jobs, "/runware_ovi_sync3/jobs");
  assert.equal(ROUTES.csv, "/runware_ovi_sync3/jobs.csv");
  assert.equal(ROUTES.recover, "/runware_ovi_sync3/recover");
  assert.equal(EVENT, "runware_ovi_sync3.job");
});

test("money like the Python side", () => {
  assert.equal(formatUsd(0.05), "$0.05");
  assert.equal(formatUsd(0.1234), "$0.1234");
  assert.equal(formatUsd(12.5), "$12.50");
  assert.equal(formatUsd(0.00123), "$0.0012");
  assert.equal(formatUsd(0), "$0.00");
  assert.equal(formatUsd(null), "unknown");
  assert.equal(formatUsd(NaN), "unknown");
});

test("durations and times", () => {
  assert.equal(formatDuration(7.9), "7s");
  assert.equal(formatDuration(185), "3m 05s");
  assert.equal(formatDuration(3720), "1h 02m");
  assert.equal(formatDuration(-1), "");
  const now = new Date(2026, 2, 20, 15, 0, 0).getTime() / 1000;
  assert.equal(formatWhen(new Date(2026, 2, 20, 9, 5).getTime() / 1000, now), "09:05");
  assert.equal(formatWhen(new Date(2026, 2, 19, 23, 59).getTime() / 1000, now),
    "2026-03-19 23:59");
  assert.equal(formatWhen(undefined, now), "");
});

test("a finished job's row: cost, status, short taskUUID, preview through /view", () => {
  const row = jobRow({
    task_uuid: "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed", model: "Ovi", status: "succeeded",
    cost: 0.05, node_id: "7", submitted: 1, recoverable: false,
    files: [{ file: "x-0.mp4", exists: true,
      preview: { filename: "x-0.mp4", subfolder: "runware/results", type: "output" } }],
  });
  assert.equal(row.cost, "$0.05");
  assert.deepEqual(row.status, { label: "succeeded", kind: "ok" });
  assert.equal(row.taskShort, "1b9d6bcd\u2026");
  assert.equal(row.node, "node 7");
  assert.equal(row.preview, "/view?filename=x-0.mp4&subfolder=runware%2Fresults&type=output");
  assert.equal(row.canRecover, false);
  assert.equal(row.error, "");
});

test("a job paid but not collected can be recovered, unless it is being collected", () => {
  const job = { task_uuid: "t", status: "unknown", cost: null, by_estimate: true,
    counted: 0.04, recoverable: true, journaled: true, files: [] };
  const row = jobRow(job);
  assert.equal(row.canRecover, true);
  assert.equal(row.cost, "~$0.04");
  assert.match(row.costTitle, /estimate/);
  assert.deepEqual(row.status, { label: "not collected", kind: "warn" });
  assert.match(row.waiting, /Recover/);
  const busy = jobRow({ ...job, running_here: true });
  assert.equal(busy.canRecover, false);
  assert.equal(busy.waiting, "being collected now");
  const failed = jobRow({ status: "failed", error: "inferenceError: boom", files: [] });
  assert.equal(failed.error, "inferenceError: boom");
  assert.equal(failed.cost, "\u2014");
  assert.equal(failed.preview, null);
});

test("previews never point anywhere but ComfyUI's output folder", () => {
  assert.equal(viewPath({ filename: "a b.mp4", subfolder: "", type: "input" }),
    "/view?filename=a+b.mp4&subfolder=&type=output");
  assert.equal(viewPath(null), null);
  assert.equal(viewPath({ filename: "" }), null);
});

test("totals tiles and the limit line", () => {
  const tiles = totalsTiles({
    session: { usd: 0.1, jobs: 2, by_estimate: 0 },
    today: { usd: 0.15, jobs: 3, by_estimate: 1 },
    last_30_days: { usd: 4, jobs: 1, by_estimate: 0 },
  });
  assert.deepEqual(tiles.map((t) => [t.label, t.value, t.detail]), [
    ["This session", "$0.10", "2 jobs"],
    ["Today", "$0.15", "3 jobs (1 at estimate)"],
    ["Last 30 days", "$4.00", "1 job"],
  ]);
  assert.deepEqual(limitLine({ limit_usd: 5, source: "setting" }, 4.2), {
    text: "Daily limit $5.00: $4.20 spent today, $0.80 left " +
      "(Settings \u2192 Runware \u2192 Daily spend limit)",
    kind: "warn",
  });
  assert.equal(limitLine({ limit_usd: 5, source: "setting" }, 6).kind, "error");
  assert.match(limitLine({ limit_usd: 2, source: "environment",
    env_var: "RUNWARE_DAILY_LIMIT_USD" }, 0).text, /set by RUNWARE_DAILY_LIMIT_USD/);
  assert.match(limitLine({ limit_usd: null, source: null }, 0).text, /^No daily limit/);
  assert.deepEqual(limitLine({ error: "bad file" }, 0), { text: "bad file", kind: "error" });
});

test("estimate rates per model", () => {
  assert.equal(ratesLine([
    { model: "Ovi", unit: "result", per_unit: 0.05, count: 8 },
    { model: "sync-3", unit: "second", per_unit: 0.1, count: 1 },
  ]), "Estimates: Ovi ~$0.05 per result (median of 8 jobs) \u00b7 " +
    "sync-3 ~$0.10 per second of video (median of 1 job)");
  assert.match(ratesLine([]), /unknown/);
});

test("running jobs: events, a fresh page, elapsed on the browser's clock", () => {
  let live = new Map();
  const job = { id: "a", kind: "node", model: "Ovi", node_id: "7", phase: "processing",
    percent: 41.6, elapsed: 10, total: 1, estimate: { text: "~$0.05, from 1 similar job" } };
  live = applyLiveEvent(live, { op: "update", job }, 1000);
  assert.equal(live.size, 1);
  const row = liveRow(live.get("a").job, live.get("a").receivedAt, 3500);
  assert.equal(row.title, "Ovi \u00b7 node 7");
  assert.equal(row.phase, "processing 42%");
  assert.equal(row.elapsed, "12s");
  assert.equal(row.percent, 41.6);
  assert.equal(row.estimate, "est. ~$0.05, from 1 similar job");
  const recover = liveRow({ id: "b", kind: "recover", model: "sync-3", phase: "submitting",
    done: 1, total: 3, elapsed: 0 }, 0, 0);
  assert.equal(recover.title, "sync-3 \u00b7 Recover");
  assert.equal(recover.phase, "queued \u00b7 1/3 results");
  live = applyLiveEvent(live, { op: "end", job: { id: "a" } }, 4000);
  assert.equal(live.size, 0);
  assert.equal(applyLiveEvent(live, { op: "update" }).size, 0);
  const fresh = liveFromSnapshot({ jobs: [job, { nope: 1 }] }, 5);
  assert.deepEqual([...fresh.keys()], ["a"]);
});

test("pages", () => {
  assert.deepEqual(pageInfo(45, 20, 0), { text: "1\u201320 of 45", newer: false, older: true });
  assert.deepEqual(pageInfo(45, 20, 40), { text: "41\u201345 of 45", newer: true, older: false });
  assert.deepEqual(pageInfo(0, 20, 0), { text: "No jobs yet", newer: false, older: false });
  assert.equal(jobsQuery(20, false), "limit=20&offset=20");
  assert.equal(jobsQuery(0, true), "limit=20&offset=0&endpoint=all");
});

test("the limit typed in the settings", () => {
  assert.deepEqual(parseLimitInput(" 5 "), { ok: true, value: 5 });
  assert.deepEqual(parseLimitInput("$12.50"), { ok: true, value: 12.5 });
  assert.deepEqual(parseLimitInput(""), { ok: true, value: null });
  assert.deepEqual(parseLimitInput("0"), { ok: true, value: null });
  for (const bad of ["-1", "5 USD", "1e3", "abc", "5,50"]) {
    assert.equal(parseLimitInput(bad).ok, false, bad);
  }
  assert.equal(parseLimitInput("2000000").ok, false);
});

test("the limit setting's status line", () => {
  assert.equal(describeLimitStatus({ limit_usd: 5, source: "setting", setting_usd: 5,
    today_usd: 1.2 }), "Limit: $5.00 a day. Spent today: $1.20.");
  assert.equal(describeLimitStatus({ limit_usd: null, source: null }), "No daily limit.");
  assert.match(describeLimitStatus({ limit_usd: 3, source: "environment", setting_usd: 5,
    env_var: "RUNWARE_DAILY_LIMIT_USD" }),
  /^RUNWARE_DAILY_LIMIT_USD is set on the server \(\$3\.00\); it overrides this setting \(saved here: \$5\.00\)\.$/);
  assert.equal(describeLimitStatus({ error: "could not be read" }), "could not be read");
});

test("Recover messages", () => {
  assert.equal(recoverMessage(202, { started: true }).kind, "ok");
  assert.deepEqual(recoverMessage(409, { error: "This job is being recovered already." }),
    { text: "This job is being recovered already.", kind: "error" });
  assert.equal(recoverMessage(500, null).text, "Recover failed (HTTP 500).");
  assert.equal(recoverMessage(0, null).text, "Could not reach ComfyUI.");
});


test("copying a taskUUID: the clipboard API, else the fallback, and what the button says", async () => {
  const task = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed";
  const calls = [];
  const clipboard = { writeText: async (text) => { calls.push(["clipboard", text]); } };
  const fallback = (text) => { calls.push(["fallback", text]); return true; };
  assert.deepEqual(await copyWith(task, clipboard, fallback), { ok: true, method: "clipboard" });
  assert.deepEqual(calls, [["clipboard", task]]); // no fallback when the clipboard took it

  // Plain http on another machine: no clipboard API at all, or one that refuses.
  calls.length = 0;
  assert.deepEqual(await copyWith(task, undefined, fallback), { ok: true, method: "fallback" });
  const refusing = { writeText: async () => { throw new Error("NotAllowedError"); } };
  assert.deepEqual(await copyWith(task, refusing, fallback), { ok: true, method: "fallback" });
  const throwing = { writeText: () => { throw new TypeError("no"); } }; // not even a promise
  assert.deepEqual(await copyWith(task, throwing, fallback), { ok: true, method: "fallback" });
  assert.deepEqual(calls, [["fallback", task], ["fallback", task], ["fallback", task]]);

  // The fallback fails: it says so or throws; copyWith never throws.
  assert.deepEqual(await copyWith(task, undefined, () => false), { ok: false, method: "fallback" });
  assert.deepEqual(await copyWith(task, undefined, () => undefined),
    { ok: false, method: "fallback" });
  assert.deepEqual(await copyWith(task, refusing, () => { throw new Error("denied"); }),
    { ok: false, method: "fallback" });

  assert.equal(copyLabel(true), "Copied");
  assert.equal(copyLabel(false), "Copy failed");
  assert.equal(COPY_LABEL, "Copy");
  assert.ok(COPY_RESET_MS >= 1000 && COPY_RESET_MS <= 5000);
});
