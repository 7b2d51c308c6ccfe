// Runware Ovi + sync-3: frontend extension, loaded by ComfyUI from WEB_DIRECTORY.
// Served at /extensions/<pack folder>/js/runware.js, hence the three "..".
//
// - Settings > Runware > "Runware API key": a password field that talks to the pack's key
//   routes. The key only ever travels in the POST body: it is never the setting's value
//   (so never in comfy.settings.json), never in localStorage, never in a widget.
// - RunwareOvi: new nodes start with seed control "fixed" (declared in the node definition
//   where the frontend supports it, else set on the linked control widget); buttons that
//   wrap the selection of the textarea the user sees (classic canvas or Nodes 2.0) in
//   <S>…<E> / <AUDCAP>…<ENDAUDCAP>; a line that warns about unbalanced tags.
// - Result videos and live status text need no code here: the core frontend shows a node's
//   ui output {"images": [...], "animated": [true]} as a <video controls> (as for SaveVideo)
//   and PromptServer.send_progress_text() as text on the node.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

import { tagStatus } from "./ovi_tags.js";
import {
  declareSeedDefault,
  findSeedControl,
  findVisibleTextarea,
  planWrap,
} from "./prompt_tools.js";
import {
  KEY_ROUTE,
  describeKeyHint,
  describeKeyStatus,
  describeRequestError,
  describeSaveResult,
  redact,
} from "./runware_text.js";

const LOG = "[Runware]";

// Nodes whose INT "seed" must start at "fixed": with "randomize" every queue re-runs a paid job.
const PAID_NODES = new Set(["RunwareOvi"]); // RunwareSync3 has no seed input
// Nodes whose "prompt" widget takes raw Ovi tags (RunwareOviPrompt adds the tags itself).
const TAGGED_PROMPT_NODES = new Set(["RunwareOvi"]);

const KEY_SETTING_ID = "Runware.ApiKey";

// ---------------------------------------------------------------------------------------
// API key setting
// ---------------------------------------------------------------------------------------

async function keyRequest(method, payload) {
  const options = { method, cache: "no-store", headers: {} };
  if (payload !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(payload);
  }
  let response;
  try {
    response = await api.fetchApi(KEY_ROUTE, options);
  } catch (error) {
    return { ok: false, status: 0, body: null, fallback: String(error?.message ?? error) };
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const ok = response.ok && body !== null && typeof body === "object";
  return { ok, status: response.status, body, fallback: response.statusText || "" };
}

function makeButton(label, title) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.title = title;
  button.className = "p-button p-component p-button-sm";
  button.style.whiteSpace = "nowrap";
  return button;
}

// Settings dialog custom renderer: (name, setter, value, attrs) => HTMLElement.
// `setter` is deliberately never called, so the setting's stored value stays "".
function renderKeySetting() {
  const root = document.createElement("div");
  root.className = "runware-key-setting";
  Object.assign(root.style, {
    display: "flex", flexDirection: "column", alignItems: "flex-end", gap: "0.4rem",
    maxWidth: "32rem",
  });

  const row = document.createElement("div");
  Object.assign(row.style, { display: "flex", alignItems: "center", gap: "0.4rem" });

  const input = document.createElement("input");
  input.type = "password";
  input.className = "p-inputtext p-component";
  input.placeholder = "Paste a Runware API key";
  input.autocomplete = "new-password"; // no autofill, no "save password?" prompt
  input.spellcheck = false;
  input.name = "runware-api-key-entry";
  input.setAttribute("aria-label", "Runware API key");
  input.setAttribute("data-1p-ignore", "");
  input.setAttribute("data-lpignore", "true");

  const save = makeButton("Save", "Check the key with Runware and store it on the ComfyUI server");
  const remove = makeButton("Remove", "Delete the stored key file on the ComfyUI server");
  row.append(input, save, remove);

  const status = document.createElement("div");
  status.setAttribute("role", "status");
  Object.assign(status.style, { fontSize: "0.85rem", textAlign: "right" });
  const hint = document.createElement("div");
  Object.assign(hint.style, {
    fontSize: "0.75rem", opacity: "0.7", textAlign: "right", wordBreak: "break-all",
  });
  root.append(row, status, hint);

  let busy = false;
  const sync = () => {
    save.disabled = busy || !input.value.trim();
    remove.disabled = busy;
    input.disabled = busy;
  };
  const show = (text, kind = "info") => {
    status.textContent = text;
    status.style.color =
      kind === "error" ? "var(--p-red-400, #f87171)"
      : kind === "ok" ? "var(--p-green-400, #4ade80)"
      : "";
  };
  const showStatus = (body) => {
    show(describeKeyStatus(body), body?.configured ? "ok" : "info");
    hint.textContent = describeKeyHint(body);
  };

  const refresh = async () => {
    busy = true;
    sync();
    show("Checking\u2026");
    const r = await keyRequest("GET");
    busy = false;
    sync();
    if (r.ok) showStatus(r.body);
    else show(describeRequestError(r.status, r.body, r.fallback), "error");
  };

  const doSave = async () => {
    const key = input.value.trim();
    if (!key || busy) return;
    busy = true;
    sync();
    show("Checking the key with Runware\u2026");
    let r;
    try {
      r = await keyRequest("POST", { key });
    } finally {
      input.value = ""; // the key does not stay in the page, whatever happened
      busy = false;
      sync();
    }
    if (r.ok) {
      show(redact(describeSaveResult(r.body), key), r.body?.validated === false ? "info" : "ok");
      hint.textContent = `${describeKeyStatus(r.body)}. ${describeKeyHint(r.body)}`.trim();
    } else {
      show(redact(describeRequestError(r.status, r.body, r.fallback), key), "error");
    }
  };

  const doRemove = async () => {
    if (busy) return;
    if (!window.confirm("Remove the Runware API key stored on the ComfyUI server?")) return;
    busy = true;
    sync();
    show("Removing\u2026");
    const r = await keyRequest("DELETE");
    busy = false;
    sync();
    if (r.ok) showStatus(r.body);
    else show(describeRequestError(r.status, r.body, r.fallback), "error");
  };

  input.addEventListener("input", sync);
  input.addEventListener("keydown", (event) => {
    event.stopPropagation(); // keep keystrokes away from ComfyUI's keybindings
    if (event.key === "Enter") {
      event.preventDefault();
      void doSave();
    }
  });
  save.addEventListener("click", () => void doSave());
  remove.addEventListener("click", () => void doRemove());

  sync();
  void refresh();
  return root;
}

function clearStoredSettingValue() {
  // If anything ever wrote a value into this setting (a hand-edited comfy.settings.json),
  // wipe it: keys belong in the key file or the environment. The value is never logged.
  try {
    const settings = app.extensionManager?.setting;
    const value = settings?.get?.(KEY_SETTING_ID);
    if (value) {
      void settings.set(KEY_SETTING_ID, "");
      console.warn(`${LOG} cleared a value stored in the ${KEY_SETTING_ID} setting; ` +
        "set the key in Settings > Runware instead (it is kept out of comfy.settings.json)");
    }
  } catch (error) {
    console.warn(`${LOG} could not check the ${KEY_SETTING_ID} setting`, error);
  }
}

// ---------------------------------------------------------------------------------------
// RunwareOvi prompt: wrap buttons and tag warning
// ---------------------------------------------------------------------------------------

function promptTextarea(node, widget) {
  return findVisibleTextarea(node, widget, document);
}

function widgetSlot(node, widget) {
  try {
    const slot = node.getSlotFromWidget?.(widget) ??
      node.inputs?.find((input) => input?.widget?.name === widget.name);
    return slot ?? null;
  } catch {
    return null;
  }
}

// Where the prompt text comes from: {text} when it is known here, {source} when it comes
// through a link from a node whose text only exists at run time.
function promptText(node, widget) {
  const slot = widgetSlot(node, widget);
  if (slot?.link == null) return { text: widget.value };
  let origin = null;
  try {
    const index = node.inputs?.indexOf(slot) ?? -1;
    origin = index >= 0 ? node.getInputNode?.(index) : null;
  } catch {
    origin = null;
  }
  // The legacy PrimitiveNode writes its value into this widget.
  if (origin?.type === "PrimitiveNode") return { text: widget.value };
  // Core primitive string nodes (PrimitiveString, PrimitiveStringMultiline): one "value".
  const value = origin?.widgets?.find((w) => w?.name === "value");
  if (value && typeof value.value === "string" && /^PrimitiveString/.test(origin.type ?? "")) {
    return { text: value.value, originWidget: value };
  }
  return { source: origin?.title || origin?.type || "a link" };
}

function chainCallback(object, property, callback) {
  const original = object[property];
  object[property] = function (...args) {
    const result = typeof original === "function" ? original.apply(this, args) : undefined;
    try {
      callback.apply(this, args);
    } catch (error) {
      console.error(`${LOG} ${property} handler failed`, error);
    }
    return result;
  };
}

function applyWrap(node, widget, kind) {
  if (widgetSlot(node, widget)?.link != null) {
    setStatusLine(node, { level: "info",
      text: "The prompt comes from a link: edit the tags in the node it comes from." });
    return;
  }
  const textarea = promptTextarea(node, widget);
  const { base, result: r } = planWrap(widget.value, textarea, kind);
  let done = false;
  if (textarea) {
    textarea.focus();
    textarea.setSelectionRange(r.replaceStart, r.replaceEnd);
    try {
      // Keeps the browser's own undo (Ctrl+Z) working; fires "input", which updates the
      // widget (the DOM widget's listener, or the Vue textarea's v-model).
      done = document.execCommand?.("insertText", false, r.insert) === true &&
        textarea.value === r.text;
    } catch {
      done = false;
    }
    if (!done) textarea.value = r.text;
  }
  if (widget.value !== r.text) {
    // The textarea did not carry the edit to the widget (or none is visible): set the
    // widget's value, which is what gets queued, and tell its listeners.
    widget.value = r.text;
    widget.callback?.(widget.value);
  }
  node.setDirtyCanvas?.(true, true);
  updateTagStatus(node);
  if (textarea) {
    if (textarea.value !== r.text) textarea.value = r.text;
    textarea.setSelectionRange(r.selectionStart, r.selectionEnd);
  } else if (base) {
    setStatusLine(node, { level: "info",
      text: "Select words in the prompt first: an empty pair was added at the end." });
  }
}

const STATUS = Symbol("runware.tagStatus");

function setStatusLine(node, status) {
  const state = node[STATUS];
  if (!state) return;
  const { line } = state;
  line.textContent = status.text;
  line.title = status.detail || status.text;
  line.style.color =
    status.level === "warning" ? "var(--p-orange-400, #fb923c)"
    : status.level === "ok" ? "var(--p-green-400, #4ade80)"
    : "var(--p-text-muted-color, #999)";
}

function updateTagStatus(node) {
  const state = node[STATUS];
  if (!state) return;
  const { widget } = state;
  const textarea = promptTextarea(node, widget);
  const from = promptText(node, widget);
  let status;
  if (from.source !== undefined) {
    status = { level: "info", detail: "",
      text: `Prompt from ${from.source}: tags are checked when the workflow runs` };
  } else {
    status = tagStatus(from.text);
    if (from.originWidget && !from.originWidget[STATUS]) {
      from.originWidget[STATUS] = true;
      chainCallback(from.originWidget, "callback", () => updateTagStatus(node));
    }
  }
  setStatusLine(node, status);
  if (textarea) {
    const warn = status.level === "warning";
    textarea.style.outline = warn ? "2px solid var(--p-orange-400, #fb923c)" : "";
    textarea.style.outlineOffset = warn ? "-2px" : "";
    if (warn) {
      textarea.title = status.detail;
      state.titleSet = true;
    } else if (state.titleSet) {
      textarea.removeAttribute("title");
      state.titleSet = false;
    }
  }
}

function addPromptTools(node) {
  const widget = node.widgets?.find((w) => w?.name === "prompt");
  if (!widget || node[STATUS]) return;

  // Our widgets go at the END of node.widgets and are never serialized: widgets_values is
  // positional, and a non-serialized widget in the middle would shift the saved values.
  const line = document.createElement("div");
  Object.assign(line.style, {
    fontSize: "11px", lineHeight: "16px", padding: "2px 6px", overflow: "hidden",
    whiteSpace: "nowrap", textOverflow: "ellipsis", pointerEvents: "auto",
  });
  if (typeof node.addDOMWidget === "function") {
    const lineWidget = node.addDOMWidget("ovi_tag_check", "ovi-tag-check", line, {
      serialize: false,
      hideOnZoom: false,
      getValue: () => "",
      setValue: () => {},
      margin: 2, // the default (10) would leave no room for one line of text
      getMinHeight: () => 24,
      getMaxHeight: () => 24,
    });
    if (lineWidget) lineWidget.serialize = false;
  }

  const buttons = [
    ["speech", "Wrap selection as speech <S>\u2026<E>"],
    ["sound", "Wrap selection as sound <AUDCAP>\u2026<ENDAUDCAP>"],
  ];
  for (const [kind, label] of buttons) {
    const button = node.addWidget?.("button", label, null, () => {
      try {
        applyWrap(node, widget, kind);
      } catch (error) {
        console.error(`${LOG} wrap failed`, error);
      }
    }, { serialize: false });
    if (button) button.serialize = false;
  }

  node[STATUS] = { widget, line };
  // Typing fires the widget's callback; so does any assignment to widget.value (a loaded
  // workflow, a PrimitiveNode link, undo/redo of the graph).
  chainCallback(widget, "callback", () => updateTagStatus(node));
  chainCallback(node, "onConfigure", () => updateTagStatus(node));
  chainCallback(node, "onConnectionsChange", () => setTimeout(() => updateTagStatus(node), 0));
  updateTagStatus(node);
  setTimeout(() => updateTagStatus(node), 0);
}

// Typing in a Nodes 2.0 textarea goes to widget.value through Vue, not always through the
// widget's callback: one listener for the page re-checks the node the textarea belongs to.
function watchVueTextareas() {
  document.addEventListener("input", (event) => {
    const target = event.target;
    if (!(target instanceof HTMLTextAreaElement)) return;
    const id = target.closest?.("[data-node-id]")?.getAttribute("data-node-id");
    if (id == null) return;
    let node = null;
    try {
      node = app.graph?.getNodeById?.(Number.isNaN(Number(id)) ? id : Number(id)) ??
        app.graph?.getNodeById?.(id);
    } catch {
      node = null;
    }
    if (node?.[STATUS]) setTimeout(() => updateTagStatus(node), 0);
  }, true);
}

function frontendVersion() {
  return window.__COMFYUI_FRONTEND_VERSION__ ?? null;
}

function startSeedAtFixed(node) {
  const control = findSeedControl(node);
  if (!control) {
    console.warn(`${LOG} ${node.comfyClass}: no seed control widget found; set "control ` +
      'after generate" to fixed yourself, or every queue pays for a new video');
    return;
  }
  // Runs when a node is created; a loaded workflow's saved choice is applied afterwards.
  if (control.value !== "fixed") {
    control.value = "fixed";
    control.callback?.(control.value);
  }
}

// ---------------------------------------------------------------------------------------

app.registerExtension({
  name: "runware.ovi_sync3",
  settings: [
    {
      id: KEY_SETTING_ID,
      category: ["Runware", "API key", "Key"],
      name: "Runware API key",
      tooltip:
        "Stored on the ComfyUI server in a key file in ComfyUI's user directory " +
        "(readable only by its owner), never in the workflow or in comfy.settings.json. " +
        "The RUNWARE_API_KEY environment variable, when set, is used first.",
      type: renderKeySetting,
      defaultValue: "",
    },
  ],
  setup() {
    clearStoredSettingValue();
    watchVueTextareas();
  },
  beforeRegisterNodeDef(nodeType, nodeData) {
    try {
      if (PAID_NODES.has(nodeData?.name)) declareSeedDefault(nodeData, frontendVersion());
    } catch (error) {
      console.error(`${LOG} beforeRegisterNodeDef failed for ${nodeData?.name}`, error);
    }
  },
  nodeCreated(node) {
    try {
      if (PAID_NODES.has(node.comfyClass)) startSeedAtFixed(node);
      if (TAGGED_PROMPT_NODES.has(node.comfyClass)) addPromptTools(node);
    } catch (error) {
      console.error(`${LOG} nodeCreated failed for ${node?.comfyClass}`, error);
    }
  },
});
