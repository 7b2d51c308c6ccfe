// How the Runware extension finds things in the page, as plain functions: no ComfyUI import
// and no global `document`, so Node's test runner can check them with small stand-ins
// (tests/js/prompt_tools.test.mjs). runware.js passes the real page in.
//
// Two renderers draw a node:
// - the classic canvas (LiteGraph): a multiline STRING widget is a DOM widget whose own
//   <textarea> is `widget.element` (`widget.inputEl` is its deprecated alias, 1.5x warns);
// - "Nodes 2.0" (setting Comfy.VueNodes.Enabled, frontend 1.3x+): Vue draws every node as
//   an element [data-node-id=<id>] with one row [data-widget-name=<name>] per widget, and its
//   own <textarea> bound to widget.value. The widget's element is then not in the page.
// The visible textarea is the one the user selected words in: always act on that one.
//
// ComfyUI also imports this file as an "extension" (it loads every .js under web/); it has
// no side effects, so that is harmless.

import { wrapSelection } from "./ovi_tags.js";

function attr(value) {
  return `"${String(value).replace(/["\\]/g, "\\$&")}"`;
}

/** True for an element that is in the page and laid out (not display:none, not detached). */
export function isShown(el) {
  if (!el || el.isConnected === false) return false;
  const rects = typeof el.getClientRects === "function" ? el.getClientRects() : null;
  return !rects || rects.length > 0;
}

function isTextarea(el) {
  return Boolean(el) && typeof el.value === "string" &&
    typeof el.setSelectionRange === "function";
}

/** The widget's own DOM element, without touching the deprecated `inputEl` if avoidable. */
export function widgetElement(widget) {
  if (!widget) return null;
  const el = widget.element ?? null;
  if (isTextarea(el)) return el;
  const inner = el?.querySelector?.("textarea");
  if (isTextarea(inner)) return inner;
  if (el) return null;
  const legacy = widget.inputEl; // frontends without widget.element
  return isTextarea(legacy) ? legacy : null;
}

/**
 * The <textarea> the user sees for `widget` of `node`, or null.
 * doc: the page's document (anything with querySelector / querySelectorAll).
 */
export function findVisibleTextarea(node, widget, doc) {
  if (!widget) return null;
  const nodeEl = node?.id != null ? doc?.querySelector?.(`[data-node-id=${attr(node.id)}]`)
    : null;
  if (nodeEl) {
    const row = nodeEl.querySelector(`[data-widget-name=${attr(widget.name)}]`);
    const inRow = row?.querySelector("textarea");
    if (isTextarea(inRow) && isShown(inRow)) return inRow;
    // Vue renderers without the row attribute: the widget's <label for> names it, or (the
    // experimental renderer of frontend 1.27) the textarea's placeholder does.
    const wanted = String(widget.label || widget.name);
    for (const label of nodeEl.querySelectorAll?.("label[for]") ?? []) {
      if (label.textContent?.trim() !== wanted) continue;
      const byLabel = doc.getElementById?.(label.htmlFor ?? label.getAttribute?.("for"));
      if (isTextarea(byLabel) && isShown(byLabel)) return byLabel;
    }
    const byPlaceholder = [...(nodeEl.querySelectorAll?.(`textarea[placeholder=${attr(wanted)}]`)
      ?? [])].filter((t) => isTextarea(t) && isShown(t));
    if (byPlaceholder.length === 1) return byPlaceholder[0];
  }
  const own = widgetElement(widget);
  return isTextarea(own) && isShown(own) ? own : null;
}

/**
 * What pressing a wrap button does, before touching the page:
 * {base, start, end, result} where `base` is the text the user sees (the visible textarea's,
 * else widget.value) and `result` is wrapSelection()'s answer on it. Without a visible
 * textarea nothing is selected as far as we can tell: an empty pair goes at the end, and
 * no word is ever lost.
 */
export function planWrap(widgetValue, textarea, kind) {
  const value = typeof widgetValue === "string" ? widgetValue : String(widgetValue ?? "");
  if (isTextarea(textarea)) {
    const base = textarea.value;
    const start = textarea.selectionStart ?? base.length;
    const end = textarea.selectionEnd ?? start;
    return { base, start, end, result: wrapSelection(base, start, end, kind) };
  }
  return { base: value, start: value.length, end: value.length,
    result: wrapSelection(value, value.length, value.length, kind) };
}

// -- the seed's "control after generate" -----------------------------------------------------

export const CONTROL_MODES = Object.freeze(["fixed", "increment", "decrement", "randomize"]);

function isControlWidget(w) {
  const values = w?.options?.values;
  return Boolean(w) && Array.isArray(values) && values.includes("fixed") &&
    values.includes("randomize");
}

/**
 * The seed's control widget: the frontend links it to the seed (`linkedWidgets`, every
 * version since 1.1x); its name is "control_after_generate" only by default (a prefix, a
 * rename, or a string in the node definition change it), so the name is a last resort.
 */
export function findSeedControl(node, seedName = "seed") {
  const widgets = Array.isArray(node?.widgets) ? node.widgets : [];
  const seed = widgets.find((w) => w?.name === seedName);
  const linked = Array.isArray(seed?.linkedWidgets) ? seed.linkedWidgets.find(isControlWidget)
    : null;
  if (linked) return linked;
  const index = seed ? widgets.indexOf(seed) : -1;
  if (index >= 0 && isControlWidget(widgets[index + 1])) return widgets[index + 1];
  return widgets.find((w) => isControlWidget(w) &&
    /control_(after|before)_generate$/.test(String(w.name ?? ""))) ?? null;
}

/** "1.58.1" >= "1.50.0"? (Unknown or malformed versions answer false.) */
export function versionAtLeast(version, minimum) {
  const parse = (v) => String(v ?? "").split(/[.+-]/).slice(0, 3).map(Number);
  const a = parse(version);
  const b = parse(minimum);
  if (a.length < 3 || a.some((n) => !Number.isInteger(n))) return false;
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return true;
}

// Frontends from here on read a control mode given as the string value of the node
// definition's control_after_generate as the widget's starting mode (checked in 1.58.1's
// useIntWidget/addValueControlWidgets). Frontend 1.27 reads any string there as the
// control widget's NAME, and early 1.4x releases had naming bugs with it (frontend
// PR 12431, May 2026): below this version the definition is left alone.
export const STRING_CONTROL_DEFAULT_SINCE = "1.50.0";

/**
 * Declare "fixed" as the seed control's starting mode in a node definition (the object the
 * frontend hands to beforeRegisterNodeDef), where this frontend supports it. Returns true
 * if the definition was changed.
 */
export function declareSeedDefault(nodeData, frontendVersion, mode = "fixed",
                                   seedName = "seed") {
  if (!versionAtLeast(frontendVersion, STRING_CONTROL_DEFAULT_SINCE)) return false;
  for (const section of ["required", "optional"]) {
    const spec = nodeData?.input?.[section]?.[seedName];
    if (!Array.isArray(spec)) continue;
    const options = spec[1] && typeof spec[1] === "object" ? spec[1] : {};
    if (options.control_after_generate !== true && options.control_after_generate !== undefined) {
      return false; // the definition already says something else: leave it alone
    }
    spec[1] = { ...options, control_after_generate: mode };
    return true;
  }
  return false;
}
