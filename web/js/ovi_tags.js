// Ovi prompt tags, as plain functions: no DOM, no ComfyUI import, so Node's test runner can
// load this file (tests/js/ovi_tags.test.mjs) and the page can import it from runware.js.
//
// Two forms of the sound description are accepted: <AUDCAP>...<ENDAUDCAP> and (Ovi's newer
// prompt format) a line "Audio: ...". findTagProblems() is a line-for-line port of
// find_tag_problems() in
// nodes/runware/ovi_prompt.py: same rules, same order, same messages, and positions counted
// the way Python counts them (code points, not UTF-16 units).
// tests/fixtures/ovi_tag_cases.json holds vectors produced by the Python code; both test
// suites check against it, so keep the two implementations in step.
//
// ComfyUI also imports this file as an "extension" (it loads every .js under web/); it has
// no side effects, so that is harmless.

export const PAIRS = Object.freeze({ "<S>": "<E>", "<AUDCAP>": "<ENDAUDCAP>" });
export const CLOSERS = Object.freeze({ "<E>": "<S>", "<ENDAUDCAP>": "<AUDCAP>" });

// Python's str.isspace() / re's \s (they agree): JavaScript's \s and trim() differ on
// U+001C..U+001F, U+0085 (whitespace in Python) and U+FEFF (whitespace in JavaScript).
const WS =
  "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const TOKEN = /<S>|<E>|<AUDCAP>|<ENDAUDCAP>/g;
// Python: re.compile(r"<\s*/?\s*(s|e|audcap|endaudcap)\s*>", re.IGNORECASE).
// Under IGNORECASE Python also matches U+017F (long s) for "s"; no other non-ASCII letter
// folds onto a letter of these words. Alternation order is kept: backtracking is the same.
const LOOKALIKE = new RegExp(
  `<[${WS}]*\\/?[${WS}]*(?:[sS\\u017f]|[eE]|[aA][uU][dD][cC][aA][pP]|` +
    `[eE][nN][dD][aA][uU][dD][cC][aA][pP])[${WS}]*>`,
  "g",
);
const ONLY_WS = new RegExp(`^[${WS}]*$`);
// Python: re.compile(r"(?:\A|(?<=\n))[^\S\n]*(Audio:)([^\n]*)"): "Audio:" at the start of a
// line (after spaces/tabs). Only "\n" starts a line (no m flag: JavaScript's ^ would also
// match after \r, U+2028 and U+2029), and the caption runs to the next "\n".
export const AUDIO_MARKER = "Audio:";
const WS_INLINE = WS.replace("\\n", "");
const AUDIO_LINE = new RegExp(`(?:^|(?<=\\n))[${WS_INLINE}]*(Audio:)([^\\n]*)`, "g");

function asText(text) {
  if (typeof text === "string") return text;
  return text == null ? "" : String(text);
}

// Python indexes strings by code point; JavaScript by UTF-16 unit. Map a UTF-16 offset to
// the code-point offset Python would report (a surrogate pair counts once).
function codePointIndexer(text) {
  if (!/[\ud800-\udbff][\udc00-\udfff]/.test(text)) return (i) => i;
  const pairsBefore = new Uint32Array(text.length + 1); // complete pairs in text[0:i]
  let pairs = 0;
  for (let i = 0; i < text.length; i++) {
    pairsBefore[i] = pairs;
    const c = text.charCodeAt(i);
    const d = text.charCodeAt(i + 1); // NaN past the end
    if (c >= 0xd800 && c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
      pairsBefore[i + 1] = pairs; // the low half: never a match position
      pairs += 1;
      i += 1;
    }
  }
  pairsBefore[text.length] = pairs;
  return (i) => i - pairsBefore[i];
}

function makeProblem(text, cp, unit, message) {
  // line/column as in _where(): count "\n" before pos; column is 1-based, in code points.
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < unit; i = text.indexOf("\n", i + 1)) {
    line += 1;
    lineStart = i + 1;
  }
  const position = cp(unit);
  return { position, line, column: position - cp(lineStart) + 1, message };
}

/**
 * Unbalanced, nested, empty or misspelt Ovi tags, in the order they occur.
 * @param {string} text
 * @returns {{position: number, line: number, column: number, message: string}[]}
 *   position: 0-based character (code point) offset; line and column: 1-based.
 */
export function findTagProblems(text) {
  text = asText(text);
  const cp = codePointIndexer(text);
  const problems = [];
  let open = null; // {tag, start (UTF-16), contentStart (UTF-16)}
  for (const match of text.matchAll(TOKEN)) {
    const tag = match[0];
    const pos = match.index;
    if (tag in PAIRS) {
      if (open !== null) {
        problems.push(makeProblem(text, cp, pos,
          `${tag} opens inside ${open.tag} (opened at character ${cp(open.start)}); ` +
          `close it with ${PAIRS[open.tag]} first: tags cannot be nested`));
        continue;
      }
      open = { tag, start: pos, contentStart: pos + tag.length };
    } else {
      const expectedOpen = CLOSERS[tag];
      if (open === null) {
        problems.push(makeProblem(text, cp, pos,
          `${tag} closes nothing: add ${expectedOpen} before it`));
      } else if (open.tag !== expectedOpen) {
        problems.push(makeProblem(text, cp, pos,
          `${tag} cannot close ${open.tag} (opened at character ${cp(open.start)}); ` +
          `use ${PAIRS[open.tag]}`));
        open = null;
      } else {
        if (ONLY_WS.test(text.slice(open.contentStart, pos))) {
          problems.push(makeProblem(text, cp, open.start,
            `${open.tag}${tag} is empty: put text between them`));
        }
        open = null;
      }
    }
  }
  if (open !== null) {
    problems.push(makeProblem(text, cp, open.start,
      `${open.tag} is never closed: add ${PAIRS[open.tag]}`));
  }
  problems.push(...audioLineProblems(text, cp));
  for (const match of text.matchAll(LOOKALIKE)) {
    const found = match[0];
    if (!(found in PAIRS) && !(found in CLOSERS)) {
      problems.push(makeProblem(text, cp, match.index,
        `${found} is not an Ovi tag (tags are case-sensitive: ` +
        "<S>, <E>, <AUDCAP>, <ENDAUDCAP>)"));
    }
  }
  // Array.prototype.sort is stable (ES2019), like Python's list.sort.
  problems.sort((a, b) => a.position - b.position);
  return problems;
}

/**
 * Each "Audio: ..." line: {position (UTF-16 offset of "Audio:"), caption}, in order.
 * @param {string} text
 */
export function audioLines(text) {
  text = asText(text);
  return [...text.matchAll(AUDIO_LINE)].map((m) => ({
    position: m.index + m[0].length - m[1].length - m[2].length,
    caption: m[2],
  }));
}

function audioLineProblems(text, cp) {
  const problems = [];
  const lines = audioLines(text);
  if (lines.length && text.includes("<AUDCAP>")) {
    problems.push(makeProblem(text, cp, lines[0].position,
      "an Audio: line and <AUDCAP>...<ENDAUDCAP> in one prompt: describe the sound " +
        "in one form only"));
  }
  lines.forEach(({ position, caption }, index) => {
    if (ONLY_WS.test(caption)) {
      problems.push(makeProblem(text, cp, position,
        "Audio: is empty: describe the sound after it"));
    }
    if (index) {
      const firstLine = makeProblem(text, cp, lines[0].position, "").line;
      problems.push(makeProblem(text, cp, position,
        `a second Audio: line (the first is on line ${firstLine}): put the whole ` +
          "sound description on one Audio: line"));
    }
  });
  return problems;
}

/** Same text as Python's str(TagProblem). */
export function formatProblem(problem) {
  return `line ${problem.line}, column ${problem.column} ` +
    `(character ${problem.position}): ${problem.message}`;
}

/**
 * Count of well-formed pairs, e.g. for a "2 speech, 1 sound" status line; a non-empty
 * "Audio: ..." line counts as one sound.
 */
export function countTagPairs(text) {
  text = asText(text);
  const counts = { speech: 0, sound: 0 };
  for (const { caption } of audioLines(text)) if (!ONLY_WS.test(caption)) counts.sound += 1;
  let open = null;
  for (const match of text.matchAll(TOKEN)) {
    const tag = match[0];
    if (tag in PAIRS) {
      if (open === null) open = tag;
    } else if (open !== null) {
      if (CLOSERS[tag] === open) counts[open === "<S>" ? "speech" : "sound"] += 1;
      open = null;
    }
  }
  return counts;
}

/**
 * One line for the node: {level: "ok" | "info" | "warning", text, detail}.
 * detail lists every problem (for a tooltip).
 */
export function tagStatus(text) {
  const problems = findTagProblems(text);
  if (problems.length) {
    const first = problems[0];
    const more = problems.length > 1 ? ` (+${problems.length - 1} more)` : "";
    return {
      level: "warning",
      text: `\u26a0 Line ${first.line}, column ${first.column}: ${first.message}${more}`,
      detail: problems.map(formatProblem).join("\n"),
      problems,
    };
  }
  const { speech, sound } = countTagPairs(text);
  if (!speech && !sound) {
    return {
      level: "info",
      text: "No <S>\u2026<E> speech or <AUDCAP>\u2026<ENDAUDCAP> / Audio: sound",
      detail: "Speech goes inside <S>\u2026<E>, the sound description inside " +
        "<AUDCAP>\u2026<ENDAUDCAP> or on one last line starting with Audio:.",
      problems,
    };
  }
  const parts = [];
  if (speech) parts.push(`${speech} speech`);
  if (sound) parts.push(`${sound} sound`);
  return { level: "ok", text: `\u2713 Tags OK: ${parts.join(", ")}`, detail: "", problems };
}

export const WRAP_KINDS = Object.freeze({
  speech: Object.freeze(["<S>", "<E>"]),
  sound: Object.freeze(["<AUDCAP>", "<ENDAUDCAP>"]),
});

function clamp(n, lo, hi) {
  n = Number.isFinite(n) ? Math.trunc(n) : lo;
  return Math.min(Math.max(n, lo), hi);
}

/**
 * Wrap text[start:end] (UTF-16 offsets, as a textarea's selectionStart/End) in a tag pair.
 * Whitespace at the edges of the selection stays outside the tags (a double-click often
 * selects a trailing space). With no selection (or only whitespace) an empty pair is
 * inserted at `start` and the cursor goes between the tags.
 *
 * @param {string} text
 * @param {number} start
 * @param {number} end
 * @param {"speech" | "sound"} kind
 * @returns {{text: string, selectionStart: number, selectionEnd: number,
 *            replaceStart: number, replaceEnd: number, insert: string}}
 *   text: the new text; selectionStart/End: the wrapped words (or the cursor between an
 *   empty pair); replaceStart/End + insert: the same edit as one replacement of the
 *   original text (for an undo-friendly textarea edit).
 */
export function wrapSelection(text, start, end, kind) {
  text = asText(text);
  const pair = WRAP_KINDS[kind];
  if (!pair) throw new Error(`unknown tag kind ${JSON.stringify(kind)}: use "speech" or "sound"`);
  const [opener, closer] = pair;
  let a = clamp(start, 0, text.length);
  let b = clamp(end ?? a, 0, text.length);
  if (b < a) [a, b] = [b, a];
  const isWs = (ch) => ONLY_WS.test(ch);
  let s = a;
  let e = b;
  while (s < e && isWs(text[s])) s++;
  while (e > s && isWs(text[e - 1])) e--;
  if (s === e) {
    // Nothing but whitespace (or nothing) selected: insert an empty pair where the
    // selection started, leave the selected whitespace alone.
    s = a;
    e = a;
  }
  const inner = text.slice(s, e);
  const insert = `${opener}${inner}${closer}`;
  const out = text.slice(0, s) + insert + text.slice(e);
  return {
    text: out,
    selectionStart: s + opener.length,
    selectionEnd: s + opener.length + inner.length,
    replaceStart: s,
    replaceEnd: e,
    insert,
  };
}
