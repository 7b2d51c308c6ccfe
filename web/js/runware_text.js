// Texts shown by the Runware extension, as plain functions (no DOM, no ComfyUI import) so
// Node's test runner can check them (tests/js/runware_text.test.mjs).
//
// Key routes (served by the pack's Python side, under ComfyUI's /api prefix):
//   GET    /runware_ovi_sync3/key -> {configured, source: "environment"|"file"|null, last4,
//          path (where the file is, never an absolute path), error (why it is unreadable)}
//   POST   /runware_ovi_sync3/key {"key": "..."}
//          -> 200 {configured: true, source: "file", last4, validated, message}
//          -> 400/401 {error}
//   DELETE /runware_ovi_sync3/key -> the status object
// No route ever returns the key; these helpers only ever see its last 4 characters.

export const KEY_ROUTE = "/runware_ovi_sync3/key";
export const ENV_VAR = "RUNWARE_API_KEY";

function last4Of(status) {
  const v = status?.last4;
  return typeof v === "string" && v ? v.slice(-4) : "";
}

/** "Configured (…wxyz, from the environment)" / "Not set". */
export function describeKeyStatus(status) {
  if (!status || typeof status !== "object") return "Unknown";
  if (!status.configured) return "Not set";
  const where =
    status.source === "environment" ? `from the environment (${ENV_VAR})`
    : status.source === "file" ? "from the key file"
    : "";
  const parts = [];
  const l4 = last4Of(status);
  if (l4) parts.push(`\u2026${l4}`);
  if (where) parts.push(where);
  return parts.length ? `Configured (${parts.join(", ")})` : "Configured";
}

/** A second line: where the key file lives, and which source wins. */
export function describeKeyHint(status) {
  if (!status || typeof status !== "object") return "";
  const lines = [];
  if (status.source === "environment") {
    lines.push(`${ENV_VAR} is set: it is used before any saved key.`);
  }
  if (typeof status.path === "string" && status.path) {
    lines.push(`Key file: ${status.path}`);
  }
  if (typeof status.error === "string" && status.error) lines.push(status.error);
  return lines.join(" ");
}

/** The line shown after a successful POST. */
export function describeSaveResult(body) {
  const l4 = last4Of(body);
  const saved = l4 ? `Saved (\u2026${l4})` : "Saved";
  const message = typeof body?.message === "string" ? body.message.trim() : "";
  if (body?.validated === true) return message || `${saved}; Runware accepted it.`;
  return message || `${saved}; not checked with Runware yet.`;
}

/**
 * The text for a failed request. status: HTTP status (0 = no answer); body: parsed JSON or
 * null; fallback: e.g. the response's statusText or a network error message.
 */
export function describeRequestError(status, body, fallback = "") {
  const err = typeof body?.error === "string" && body.error.trim() ? body.error.trim() : "";
  if (status === 0) {
    return `Could not reach ComfyUI${fallback ? `: ${fallback}` : ""}.`;
  }
  if (status === 404 && !err) {
    return "The Runware key routes are not available: restart ComfyUI after installing " +
      "or updating the pack.";
  }
  if (err) return status === 400 || status === 401 ? err : `${err} (HTTP ${status})`;
  return `Request failed (HTTP ${status}${fallback ? ` ${fallback}` : ""}).`;
}

/** Remove every occurrence of `secret` from `text` (belt and braces: never echo a key). */
export function redact(text, secret) {
  text = String(text ?? "");
  if (typeof secret !== "string" || secret.length < 4) return text;
  return text.split(secret).join("\u2026");
}
