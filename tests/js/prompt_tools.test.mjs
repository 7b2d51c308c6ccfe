// Run from the repo root: node --test tests/js/
// The page itself is checked by the optional real-ComfyUI test (tests/test_e2e_comfyui.py,
// both renderers); here the same decisions run against small stand-ins of the page.
import assert from "node:assert/strict";
import { test } from "node:test";

import { findTagProblems } from "../../web/js/ovi_tags.js";
import {
  declareSeedDefault,
  findSeedControl,
  findVisibleTextarea,
  planWrap,
  versionAtLeast,
  widgetElement,
} from "../../web/js/prompt_tools.js";

// -- a tiny page -----------------------------------------------------------------------------

class El {
  constructor(tag, attrs = {}, children = []) {
    this.tag = tag;
    this.attrs = attrs;
    this.children = children;
    this.isConnected = true;
    this.shown = true;
    this.textContent = attrs.text ?? "";
    if (tag === "textarea") {
      this.value = attrs.value ?? "";
      this.selectionStart = attrs.start ?? 0;
      this.selectionEnd = attrs.end ?? 0;
      this.id = attrs.id;
    }
    if (tag === "label") this.htmlFor = attrs.for;
  }

  setSelectionRange(a, b) {
    this.selectionStart = a;
    this.selectionEnd = b;
  }

  getClientRects() {
    return this.shown ? [{}] : [];
  }

  *walk() {
    for (const child of this.children) {
      yield child;
      yield* child.walk();
    }
  }

  matches(selector) {
    const m = /^(\w+)?(?:\[([\w-]+)(?:=(".*"))?\])?$/.exec(selector);
    if (!m) throw new Error(`selector not supported here: ${selector}`);
    const [, tag, name, quoted] = m;
    if (tag && this.tag !== tag) return false;
    if (name === undefined) return true;
    if (!(name in this.attrs)) return false;
    return quoted === undefined || String(this.attrs[name]) === JSON.parse(quoted);
  }

  querySelectorAll(selector) {
    return [...this.walk()].filter((e) => e.matches(selector));
  }

  querySelector(selector) {
    return this.querySelectorAll(selector)[0] ?? null;
  }

  getElementById(id) {
    return [...this.walk()].find((e) => e.id === id) ?? null;
  }
}

function vuePage(nodeId, widgetName, textarea, { rowAttr = true } = {}) {
  const row = rowAttr ? new El("div", { "data-widget-name": widgetName }, [textarea])
    : new El("div", {}, [new El("label", { for: "v-1", text: widgetName }), textarea]);
  return new El("body", {}, [
    new El("div", { "data-node-id": 99 }, [new El("div", { "data-widget-name": widgetName },
      [new El("textarea", { value: "another node" })])]),
    new El("div", { "data-node-id": nodeId }, [row]),
  ]);
}

// -- the visible textarea ----------------------------------------------------------------------

test("classic canvas: the widget's own element (widget.element first)", () => {
  const own = new El("textarea", { value: "hello world" });
  const widget = { name: "prompt", element: own,
    get inputEl() { throw new Error("deprecated inputEl must not be read"); } };
  assert.equal(widgetElement(widget), own);
  assert.equal(findVisibleTextarea({ id: 3 }, widget, new El("body")), own);
});

test("an old frontend without widget.element: inputEl", () => {
  const own = new El("textarea", { value: "x" });
  assert.equal(widgetElement({ name: "prompt", inputEl: own }), own);
});

test("Nodes 2.0: the textarea in the node's row, not the detached widget element", () => {
  const detached = new El("textarea", { value: "hello world" });
  detached.isConnected = false;
  const visible = new El("textarea", { value: "hello world", id: "v-1" });
  const page = vuePage(3, "prompt", visible);
  const widget = { name: "prompt", element: detached, value: "hello world" };
  assert.equal(findVisibleTextarea({ id: 3 }, widget, page), visible);
  // a renderer without data-widget-name: the <label for> that names the widget
  const page2 = vuePage(3, "prompt", visible, { rowAttr: false });
  assert.equal(findVisibleTextarea({ id: 3 }, widget, page2), visible);
  // frontend 1.27's experimental renderer: only the placeholder names the widget
  const bare = new El("textarea", { value: "x", placeholder: "prompt" });
  const page3 = new El("body", {}, [new El("div", { "data-node-id": 3 }, [
    new El("textarea", { value: "y", placeholder: "video_negative_prompt" }), bare])]);
  assert.equal(findVisibleTextarea({ id: 3 }, widget, page3), bare);
});

test("a hidden or detached textarea is never used", () => {
  const own = new El("textarea", { value: "x" });
  own.shown = false;
  assert.equal(findVisibleTextarea({ id: 3 }, { name: "prompt", element: own }, new El("body")),
    null);
});

// -- wrapping keeps every word -------------------------------------------------------------

test("the word the user selected in the visible textarea is wrapped, not lost", () => {
  const visible = new El("textarea", { value: "He says hello today", start: 8, end: 13 });
  const plan = planWrap("He says hello today", visible, "speech");
  assert.equal(plan.result.text, "He says <S>hello<E> today");
});

test("the visible text wins over a stale widget value", () => {
  const visible = new El("textarea", { value: "typed just now", start: 0, end: 5 });
  assert.equal(planWrap("old", visible, "sound").result.text,
    "<AUDCAP>typed<ENDAUDCAP> just now");
});

test("no visible textarea: an empty pair at the end, the text kept", () => {
  assert.equal(planWrap("A cat sleeps.", null, "speech").result.text, "A cat sleeps.<S><E>");
  assert.equal(planWrap(undefined, null, "speech").result.text, "<S><E>");
});

test("property: wrapping never drops or changes a character of the text", () => {
  let seed = 7;
  const rnd = (n) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const alphabet = ["a", "b", " ", "\n", "\u00e9", "\ud83d\ude00", "<", ">", "\t"];
  for (let i = 0; i < 500; i++) {
    const text = Array.from({ length: rnd(20) }, () => alphabet[rnd(alphabet.length)]).join("");
    const ta = new El("textarea", { value: text, start: rnd(text.length + 1),
      end: rnd(text.length + 1) });
    for (const kind of ["speech", "sound"]) {
      const { result } = planWrap("ignored", ta, kind);
      const stripped = result.text.replace(/<S>|<E>|<AUDCAP>|<ENDAUDCAP>/g, "");
      const original = text.replace(/<S>|<E>|<AUDCAP>|<ENDAUDCAP>/g, "");
      assert.equal(stripped, original, JSON.stringify({ text, kind }));
      assert.equal(result.text.length, text.length + (kind === "speech" ? 6 : 19));
    }
  }
  assert.deepEqual(findTagProblems(planWrap("", new El("textarea", { value: "hi", start: 0,
    end: 2 }), "speech").result.text), []);
});

// -- the seed control ---------------------------------------------------------------------------

const combo = (name, value = "randomize") => ({ name, type: "combo", value,
  options: { values: ["fixed", "increment", "decrement", "randomize"] } });

test("seed control: linked widget first, whatever its name", () => {
  const control = combo("fixed"); // 1.27 names it after a string in the definition
  const seed = { name: "seed", type: "number", value: 0, linkedWidgets: [control] };
  const node = { widgets: [{ name: "prompt" }, seed, combo("control_after_generate"), control] };
  assert.equal(findSeedControl(node), control);
});

test("seed control: the widget after the seed, then the name", () => {
  const after = combo("seed control");
  assert.equal(findSeedControl({ widgets: [{ name: "seed" }, after] }), after);
  const named = combo("Ovi control_before_generate");
  assert.equal(findSeedControl({ widgets: [{ name: "seed" }, { name: "steps" }, named] }),
    named);
  assert.equal(findSeedControl({ widgets: [{ name: "seed" }, { name: "steps" }] }), null);
  assert.equal(findSeedControl({}), null);
});

test("declare 'fixed' in the node definition only where the frontend reads it as a mode", () => {
  const def = () => ({ name: "RunwareOvi", input: { required: {
    seed: ["INT", { default: 0, control_after_generate: true }] } } });
  const newer = def();
  assert.equal(declareSeedDefault(newer, "1.58.1"), true);
  assert.equal(newer.input.required.seed[1].control_after_generate, "fixed");
  assert.equal(newer.input.required.seed[1].default, 0);
  for (const version of ["1.27.10", "1.49.9", null, undefined, "", "dev"]) {
    const older = def();
    assert.equal(declareSeedDefault(older, version), false, String(version));
    assert.equal(older.input.required.seed[1].control_after_generate, true);
  }
  assert.equal(declareSeedDefault({ input: { required: {} } }, "1.58.1"), false);
});

test("versionAtLeast", () => {
  assert.ok(versionAtLeast("1.58.1", "1.50.0"));
  assert.ok(versionAtLeast("1.50.0", "1.50.0"));
  assert.ok(versionAtLeast("2.0.0-beta", "1.50.0"));
  assert.ok(!versionAtLeast("1.27.10", "1.50.0"));
  assert.ok(!versionAtLeast("1.5", "1.50.0"));
});
