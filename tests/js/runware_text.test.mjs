// Run from the repo root: node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  KEY_ROUTE,
  describeKeyHint,
  describeKeyStatus,
  describeRequestError,
  describeSaveResult,
  redact,
} from "../../web/js/runware_text.js";

test("the route the page talks to", () => {
  assert.equal(KEY_ROUTE, "/runware_ovi_sync3/key");
});

test("key status lines", () => {
  assert.equal(describeKeyStatus({ configured: false, source: null, last4: null, path: "/u/k" }),
    "Not set");
  assert.equal(describeKeyStatus({ configured: true, source: "file", last4: "wxyz" }),
    "Configured (\u2026wxyz, from the key file)");
  assert.equal(describeKeyStatus({ configured: true, source: "environment", last4: "1234" }),
    "Configured (\u20261234, from the environment (RUNWARE_API_KEY))");
  assert.equal(describeKeyStatus({ configured: true, source: null, last4: null }), "Configured");
  // Never more than four characters, even if a server sent more.
  assert.equal(describeKeyStatus({ configured: true, source: "file", last4: "abcdefgh" }),
    "Configured (\u2026efgh, from the key file)");
  assert.equal(describeKeyStatus(null), "Unknown");
});

test("key hint names the file and the precedence of the environment", () => {
  assert.equal(describeKeyHint({ configured: false, source: null, path: "/u/runware.key" }),
    "Key file: /u/runware.key");
  assert.match(describeKeyHint({ configured: true, source: "environment", path: "/k" }),
    /^RUNWARE_API_KEY is set: it is used before any saved key\. Key file: \/k$/);
  assert.equal(describeKeyHint(undefined), "");
  assert.equal(describeKeyHint({ configured: false, source: "file", path: "k in u",
    error: "The key file could not be read: it is a folder, not a file." }),
  "Key file: k in u The key file could not be read: it is a folder, not a file.");
});

test("save results", () => {
  assert.equal(describeSaveResult({ configured: true, last4: "wxyz", validated: true }),
    "Saved (\u2026wxyz); Runware accepted it.");
  assert.equal(describeSaveResult({ last4: "wxyz", validated: false }),
    "Saved (\u2026wxyz); not checked with Runware yet.");
  assert.equal(describeSaveResult({ validated: false, message: "Saved; Runware unreachable." }),
    "Saved; Runware unreachable.");
});

test("request errors", () => {
  assert.equal(describeRequestError(401, { error: "Runware rejected the key" }),
    "Runware rejected the key");
  assert.equal(describeRequestError(400, { error: "key is empty" }), "key is empty");
  assert.equal(describeRequestError(403, { error: "cross-origin request refused" }),
    "cross-origin request refused (HTTP 403)");
  assert.match(describeRequestError(404, null, "Not Found"), /restart ComfyUI/);
  assert.equal(describeRequestError(0, null, "Failed to fetch"),
    "Could not reach ComfyUI: Failed to fetch.");
  assert.equal(describeRequestError(500, null, "Internal Server Error"),
    "Request failed (HTTP 500 Internal Server Error).");
});

test("redact removes a key from any text", () => {
  assert.equal(redact("bad key rw-abc123 given", "rw-abc123"), "bad key \u2026 given");
  assert.equal(redact("short", "ab"), "short");
  assert.equal(redact(undefined, "rw-abc123"), "");
});
