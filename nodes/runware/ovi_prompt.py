"""Ovi prompt tags: ``<S>speech<E>`` is spoken, ``<AUDCAP>sound<ENDAUDCAP>`` is rendered.

Ovi's newer prompt format (upstream Ovi 1.1) writes the sound description as a line
``Audio: ...`` instead of ``<AUDCAP>...<ENDAUDCAP>``; both forms are accepted, one per
prompt. Checked before any spend: a malformed tag silently becomes plain text on Ovi's
side (the words get drawn, not spoken), which costs a paid job to discover.

web/js/ovi_tags.js is a line-for-line port of find_tag_problems(); the vectors in
tests/fixtures/ovi_tag_cases.json keep the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ValidationError

PAIRS = {"<S>": "<E>", "<AUDCAP>": "<ENDAUDCAP>"}
CLOSERS = {close: open_ for open_, close in PAIRS.items()}
_TOKEN = re.compile(r"<S>|<E>|<AUDCAP>|<ENDAUDCAP>")
_LOOKALIKE = re.compile(r"<\s*/?\s*(s|e|audcap|endaudcap)\s*>", re.IGNORECASE)
# "Audio:" at the start of a line (after spaces or tabs), case-sensitive like the tags; a
# line starts at the text's start or after "\n" only (CRLF's "\r" stays in the caption).
AUDIO_MARKER = "Audio:"
_AUDIO_LINE = re.compile(r"(?:\A|(?<=\n))[^\S\n]*(Audio:)([^\n]*)")
AUDIO_FORMATS = ("AUDCAP tags", "Audio: line")


@dataclass(frozen=True)
class TagProblem:
    position: int  # 0-based character offset
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column} (character {self.position}): {self.message}"


def _where(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, column


def _problem(text: str, pos: int, message: str) -> TagProblem:
    line, column = _where(text, pos)
    return TagProblem(pos, line, column, message)


def find_tag_problems(text: str) -> list[TagProblem]:
    """Unbalanced, nested, empty or misspelt tags, in the order they occur."""
    problems: list[TagProblem] = []
    open_tag: tuple[str, int, int] | None = None  # (tag, start, content start)
    for match in _TOKEN.finditer(text):
        tag, pos = match.group(), match.start()
        if tag in PAIRS:
            if open_tag is not None:
                problems.append(_problem(
                    text, pos,
                    f"{tag} opens inside {open_tag[0]} (opened at character {open_tag[1]}); "
                    f"close it with {PAIRS[open_tag[0]]} first: tags cannot be nested",
                ))
                continue
            open_tag = (tag, pos, match.end())
        else:
            expected_open = CLOSERS[tag]
            if open_tag is None:
                problems.append(_problem(
                    text, pos, f"{tag} closes nothing: add {expected_open} before it"
                ))
            elif open_tag[0] != expected_open:
                problems.append(_problem(
                    text, pos,
                    f"{tag} cannot close {open_tag[0]} (opened at character {open_tag[1]}); "
                    f"use {PAIRS[open_tag[0]]}",
                ))
                open_tag = None
            else:
                if not text[open_tag[2]:pos].strip():
                    problems.append(_problem(
                        text, open_tag[1], f"{open_tag[0]}{tag} is empty: put text between them"
                    ))
                open_tag = None
    if open_tag is not None:
        problems.append(_problem(
            text, open_tag[1], f"{open_tag[0]} is never closed: add {PAIRS[open_tag[0]]}"
        ))
    problems += _audio_line_problems(text)
    for match in _LOOKALIKE.finditer(text):
        if match.group() not in PAIRS and match.group() not in CLOSERS:
            problems.append(_problem(
                text, match.start(),
                f"{match.group()} is not an Ovi tag (tags are case-sensitive: "
                "<S>, <E>, <AUDCAP>, <ENDAUDCAP>)",
            ))
    problems.sort(key=lambda p: p.position)
    return problems


def audio_lines(text: str) -> list[tuple[int, str]]:
    """(position of "Audio:", caption) for each ``Audio: ...`` line, in order."""
    return [(m.start(1), m.group(2)) for m in _AUDIO_LINE.finditer(text)]


def _audio_line_problems(text: str) -> list[TagProblem]:
    problems: list[TagProblem] = []
    lines = audio_lines(text)
    if lines and "<AUDCAP>" in text:
        problems.append(_problem(
            text, lines[0][0],
            "an Audio: line and <AUDCAP>...<ENDAUDCAP> in one prompt: describe the sound "
            "in one form only",
        ))
    for index, (pos, caption) in enumerate(lines):
        if not caption.strip():
            problems.append(_problem(text, pos, "Audio: is empty: describe the sound after it"))
        if index:
            first_line = _where(text, lines[0][0])[0]
            problems.append(_problem(
                text, pos,
                f"a second Audio: line (the first is on line {first_line}): put the whole "
                "sound description on one Audio: line",
            ))
    return problems


def check_prompt(text: str, *, input_name: str = "prompt") -> None:
    """Raise a ValidationError naming the node input and the first problem's position."""
    if not text or not text.strip():
        raise ValidationError(
            f"{input_name} is empty", parameter=input_name,
            hint="Describe the scene; put speech inside <S>...<E>.",
        )
    problems = find_tag_problems(text)
    if problems:
        listed = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValidationError(
            f"{input_name} has malformed Ovi tags at {listed}{more}",
            parameter=input_name,
            hint="Speech goes inside <S>...<E>, the sound description inside "
            "<AUDCAP>...<ENDAUDCAP> or on one line starting with Audio:, one pair at a time.",
        )


def build_prompt(scene: str, speech: str = "", audio_description: str = "",
                 audio_format: str = AUDIO_FORMATS[0]) -> str:
    """Compose a correctly tagged Ovi prompt; speech has one utterance per line.

    ``audio_format``: "AUDCAP tags" puts the sound description in <AUDCAP>...<ENDAUDCAP>;
    "Audio: line" writes it on a last line ``Audio: ...`` (Ovi's newer format).
    """
    if audio_format not in AUDIO_FORMATS:
        raise ValidationError(
            f"audio_format must be one of {', '.join(AUDIO_FORMATS)}, not {audio_format!r}",
            parameter="audio_format",
        )
    for name, value in (("scene", scene), ("speech", speech),
                        ("audio_description", audio_description)):
        if _TOKEN.search(value or "") or _AUDIO_LINE.search(value or ""):
            raise ValidationError(
                f"{name} already contains Ovi tags", parameter=name,
                hint="Write plain text here (no <S>, <AUDCAP> or Audio: line): this node "
                "adds the tags itself.",
            )
    parts = [scene.strip()] if scene and scene.strip() else []
    utterances = [line.strip() for line in (speech or "").splitlines() if line.strip()]
    parts += [f"<S>{u}<E>" for u in utterances]
    sound = (audio_description or "").strip()
    if sound and audio_format == AUDIO_FORMATS[0]:
        parts.append(f"<AUDCAP>{sound}<ENDAUDCAP>")
    if not parts and not sound:
        raise ValidationError(
            "scene, speech and audio_description are all empty", parameter="scene",
            hint="Describe at least the scene.",
        )
    prompt = " ".join(parts)
    if sound and audio_format == AUDIO_FORMATS[1]:
        one_line = " ".join(sound.split())  # the caption ends at the line's end
        prompt = f"{prompt}\n{AUDIO_MARKER} {one_line}" if prompt else f"{AUDIO_MARKER} {one_line}"
    check_prompt(prompt)
    return prompt
