// Run from the repo root: node --test tests/js/
// The JS tag checker must agree with the Python one (nodes/runware/ovi_prompt.py):
// tests/fixtures/ovi_tag_cases.json was produced by the Python implementation.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  countTagPairs,
  findTagProblems,
  formatProblem,
  tagStatus,
  wrapSelection,
} from "../../web/js/ovi_tags.js";

const cases = JSON.parse(
  readFileSync(new URL("../fixtures/ovi_tag_cases.json", import.meta.url), "utf8"),
);

test("fixture is big enough and has both kinds of case", () => {
  assert.ok(cases.length >= 15);
  assert.ok(cases.some((c) => c.problems.length === 0 && c.text.includes("[")));
  assert.ok(cases.some((c) => c.problems.some((p) => p.line > 1)));
});

for (const [i, c] of cases.entries()) {
  test(`fixture #${i}: ${c.name ?? JSON.stringify(c.text).slice(0, 50)}`, () => {
    const got = findTagProblems(c.text);
    assert.deepEqual(got.map((p) => p.position), c.problems.map((p) => p.position));
    for (const [j, want] of c.problems.entries()) {
      const p = got[j];
      assert.ok(p.message.includes(want.fragment), `${p.message} lacks ${want.fragment}`);
      if ("line" in want) assert.equal(p.line, want.line);
      if ("column" in want) assert.equal(p.column, want.column);
      if ("message" in want) assert.equal(p.message, want.message);
    }
  });
}

test("formatProblem matches Python's str(TagProblem)", () => {
  const [p] = findTagProblems("ok\n  <S>open");
  assert.equal(formatProblem(p), "line 2, column 3 (character 5): <S> is never closed: add <E>");
});

test("non-string input does not throw", () => {
  assert.deepEqual(findTagProblems(undefined), []);
  assert.deepEqual(findTagProblems(null), []);
});

test("countTagPairs and tagStatus", () => {
  assert.deepEqual(countTagPairs("<S>a<E><S>b<E><AUDCAP>c<ENDAUDCAP>"), { speech: 2, sound: 1 });
  assert.equal(tagStatus("<S>a<E>").level, "ok");
  assert.equal(tagStatus("<S>a<E>").text, "\u2713 Tags OK: 1 speech");
  assert.equal(tagStatus("plain").level, "info");
  const warn = tagStatus("x\n<S>a <s>");
  assert.equal(warn.level, "warning");
  assert.match(warn.text, /^\u26a0 Line 2, column 1: <S> is never closed: add <E> \(\+1 more\)$/);
  assert.equal(warn.detail.split("\n").length, 2);
});

// --- wrapSelection --------------------------------------------------------------------

function wrap(marked, kind) {
  // "[" and "]" mark the selection in the test string.
  const start = marked.indexOf("[");
  const end = marked.indexOf("]") - 1;
  const text = marked.replace("[", "").replace("]", "");
  const r = wrapSelection(text, start, end, kind);
  return r.text.slice(0, r.selectionStart) + "[" +
    r.text.slice(r.selectionStart, r.selectionEnd) + "]" + r.text.slice(r.selectionEnd);
}

test("wrap a selection as speech / sound; the wrapped words stay selected", () => {
  assert.equal(wrap("He says [hello there] and leaves", "speech"),
    "He says <S>[hello there]<E> and leaves");
  assert.equal(wrap("[rain]", "sound"), "<AUDCAP>[rain]<ENDAUDCAP>");
});

test("whitespace at the selection's edges stays outside the tags", () => {
  assert.equal(wrap("say [ hi \n]now", "speech"), "say  <S>[hi]<E> \nnow");
});

test("no selection: empty pair, cursor inside", () => {
  assert.equal(wrap("abc[]def", "speech"), "abc<S>[]<E>def");
  assert.equal(wrap("[]", "sound"), "<AUDCAP>[]<ENDAUDCAP>");
  assert.equal(wrap("a[   ]b", "speech"), "a<S>[]<E>   b");
});

test("reversed and out-of-range offsets are clamped", () => {
  assert.equal(wrapSelection("abcdef", 4, 1, "speech").text, "a<S>bcd<E>ef");
  assert.equal(wrapSelection("abc", -5, 99, "speech").text, "<S>abc<E>");
  assert.equal(wrapSelection("abc", undefined, undefined, "speech").text, "<S><E>abc");
});

test("replaceStart/replaceEnd/insert describe the same edit", () => {
  const text = "x  hello  y";
  const r = wrapSelection(text, 1, 10, "speech");
  assert.equal(text.slice(0, r.replaceStart) + r.insert + text.slice(r.replaceEnd), r.text);
  assert.equal(r.text, "x  <S>hello<E>  y");
});

test("a wrapped selection is well-formed; wrapping inside a pair is reported as nested", () => {
  assert.deepEqual(findTagProblems(wrapSelection("say hi", 4, 6, "speech").text), []);
  const nested = wrapSelection("<S>say hi<E>", 7, 9, "sound").text;
  assert.match(findTagProblems(nested)[0].message, /cannot be nested/);
});

test("unknown kind throws", () => {
  assert.throws(() => wrapSelection("a", 0, 1, "music"), /unknown tag kind/);
});

// --- the "Audio: ..." line (Ovi's newer prompt format) -----------------------------------

test("an Audio: line counts as the sound description", async () => {
  const { audioLines } = await import("../../web/js/ovi_tags.js");
  assert.deepEqual(audioLines("x\nAudio: rain\r\n \tAudio: b\nsay Audio: c"),
    [{ position: 2, caption: " rain\r" }, { position: 17, caption: " b" }]);
  assert.deepEqual(countTagPairs("<S>a<E>\nAudio: rain"), { speech: 1, sound: 1 });
  assert.deepEqual(countTagPairs("Audio:  "), { speech: 0, sound: 0 });
  assert.equal(tagStatus("<S>a<E>\nAudio: rain").text, "\u2713 Tags OK: 1 speech, 1 sound");
  assert.equal(tagStatus("<AUDCAP>r<ENDAUDCAP>\nAudio: r").level, "warning");
  assert.match(tagStatus("plain").text, /Audio:/);
});
