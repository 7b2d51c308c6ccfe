"""Validate one ``videoInference`` task against the models' published specs.

The schemas are Runware's own (``spec/*.openapi.json``, ``RequestBody.items``: JSON Schema
2020-12). On top of the plain schema check this module

* checks the ``uuid`` and ``uri`` formats (the ``rfc3987`` package is not a dependency),
* replaces ``multipleOf`` with a decimal-exact version (``0.57`` is a multiple of ``0.01``),
* turns the schemas' ``anyOf`` / ``oneOf`` / ``not`` / ``if``-``then`` failures into
  readable sentences,
* adds the rules the specs state only in prose (cache step order, segment order, ...),
* refuses what JSON cannot carry (NaN, infinities, unpaired surrogates) and, for any JSON
  value at all, returns violations instead of raising,
* checks the rules that need the referenced media (``check_media``: segment ends, speaker
  point, frame number, boxes, media kinds) from facts the caller supplies.

It is the pack's one reading of the specs: the nodes (pre-flight checks, before anything
is uploaded or paid for) and the local Runware test double both call it, so they cannot
disagree. The decisions are documented for users in web/docs/RunwareSync3.md and the
other help pages.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

OVI_MODEL = "runware:190@1"
SYNC3_MODEL = "sync:lipsync@3"
# Runware's docs pages show sync-3 as "sync:3@0" while the specification (and Runware's
# SDKs) say "sync:lipsync@3". The pack sends the spec's id first and, if Runware refuses it
# as an unknown model (free), the other one (see jobs.py); the task is always checked with
# the spec's id.
SYNC3_MODEL_ALIASES: tuple[str, ...] = (SYNC3_MODEL, "sync:3@0")
MODELS: tuple[str, ...] = (OVI_MODEL, SYNC3_MODEL)

OVI_DEFAULT_STEPS = 30

_SPEC_DIR = Path(__file__).resolve().parent / "spec"
_SPEC_FILES = {OVI_MODEL: "ovi.openapi.json", SYNC3_MODEL: "sync-3.openapi.json"}


@dataclass(frozen=True)
class SpecViolation:
    """One reason a task does not satisfy its model's spec.

    ``parameter`` is the dotted API path (``acceleratorOptions.cacheEndStep``,
    ``settings.segments[1].endTime``), or ``""`` when the task as a whole is at fault.
    """

    parameter: str
    message: str
    code: str = "invalidParameter"

    def __str__(self) -> str:
        return f"{self.parameter}: {self.message}" if self.parameter else self.message


# --------------------------------------------------------------------------- schemas


@functools.cache
def _load_schema(model: str) -> dict[str, Any]:
    try:
        filename = _SPEC_FILES[model]
    except KeyError:
        raise KeyError(f"unknown model {model!r} (known: {', '.join(MODELS)})") from None
    document = json.loads((_SPEC_DIR / filename).read_text(encoding="utf-8"))
    return document["components"]["schemas"]["RequestBody"]["items"]


def task_schema(model: str) -> dict[str, Any]:
    """The JSON Schema of one ``videoInference`` task for ``model`` (a private copy).

    Raises ``KeyError`` for a model this pack does not know.
    """
    return copy.deepcopy(_load_schema(model))


# --------------------------------------------------------------------------- formats

_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_FORBIDDEN_URI_CHARS = re.compile(r"[\s<>\"{}|\\^`]")


def is_uuid(value: str) -> bool:
    """Canonical 8-4-4-4-12 hex form that parses as a UUID."""
    if not _UUID_RE.match(value):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def is_absolute_uri(value: str) -> bool:
    """An absolute URI: a scheme, no spaces; http(s) URIs also need a host."""
    if not value or _FORBIDDEN_URI_CHARS.search(value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    if not parts.scheme or not _SCHEME_RE.match(parts.scheme):
        return False
    # "c:/x" parses with scheme "c"; a single letter is a drive, not a scheme.
    if len(parts.scheme) == 1:
        return False
    rest = value[len(parts.scheme) + 1 :]
    if not rest:
        return False
    if parts.scheme.lower() in ("http", "https", "ws", "wss", "ftp"):
        try:
            host = parts.hostname
            _ = parts.port  # raises ValueError for a bad port
        except ValueError:
            return False
        if not host:
            return False
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())

    @checker.checks("uuid")
    def _check_uuid(instance: object) -> bool:
        return not isinstance(instance, str) or is_uuid(instance)

    @checker.checks("uri")
    def _check_uri(instance: object) -> bool:
        return not isinstance(instance, str) or is_absolute_uri(instance)

    return checker


FORMAT_CHECKER = _format_checker()


# --------------------------------------------------------------------------- multipleOf


def _as_decimal(value: float | int) -> Decimal | None:
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None


def is_multiple_of(value: float | int, step: float | int) -> bool:
    """Decimal-exact ``multipleOf`` on the numbers as written: 0.57 is a multiple of 0.01."""
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    dv, ds = _as_decimal(value), _as_decimal(step)
    if dv is None or ds is None or ds == 0 or not (dv.is_finite() and ds.is_finite()):
        return False
    with localcontext() as ctx:
        # Enough digits for the integer quotient of any double (1e308 / 0.01 is exact).
        ctx.prec = 800
        try:
            return dv % ds == 0
        except InvalidOperation:
            return False


def _multiple_of(
    validator: Any, step: float | int, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "number"):
        return
    if isinstance(instance, float) and not math.isfinite(instance):
        return  # reported once, as "must be a finite number"
    if not is_multiple_of(instance, step):
        yield ValidationError(f"{instance!r} is not a multiple of {step}")


_Validator = validators.extend(Draft202012Validator, {"multipleOf": _multiple_of})


@functools.cache
def _validator(model: str, text_only_ovi_allowed: bool) -> Any:
    schema = task_schema(model)
    if model == OVI_MODEL and text_only_ovi_allowed:
        schema["required"] = [name for name in schema.get("required", []) if name != "inputs"]
    _Validator.check_schema(schema)
    return _Validator(schema, format_checker=FORMAT_CHECKER)


# --------------------------------------------------------------------------- paths


def join_path(parts: Iterable[str | int]) -> str:
    """``["settings", "segments", 1, "endTime"]`` -> ``settings.segments[1].endTime``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def _child(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _leaf_paths(schema: Any, prefix: str = "") -> list[str]:
    """Dotted paths a "presence" sub-schema demands.

    ``{"required": ["inputs"], "properties": {"inputs": {"required": ["audio"]}}}``
    -> ``["inputs.audio"]``.
    """
    if not isinstance(schema, Mapping):
        return []
    if "allOf" in schema and "required" not in schema:
        return [p for sub in schema["allOf"] for p in _leaf_paths(sub, prefix)]
    props = schema.get("properties", {})
    paths: list[str] = []
    for name in schema.get("required", []):
        nested = _leaf_paths(props.get(name), _child(prefix, name)) if name in props else []
        paths.extend(nested or [_child(prefix, name)])
    return paths


def has_path(instance: Any, dotted: str) -> bool:
    """Whether the (object-only) dotted path exists in ``instance``."""
    node = instance
    for name in dotted.split("."):
        if not isinstance(node, Mapping) or name not in node:
            return False
        node = node[name]
    return True


def _short_names(paths: Sequence[str]) -> tuple[str, list[str]]:
    """Split off a common parent: (parent, [names relative to it])."""
    if len(paths) < 2:
        return "", list(paths)
    split = [p.split(".") for p in paths]
    common: list[str] = []
    for column in zip(*(s[:-1] for s in split), strict=False):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    if not common:
        return "", list(paths)
    return ".".join(common), [".".join(s[len(common) :]) for s in split]


def _or_list(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


# --------------------------------------------------------------------------- messages


def _describe_range(schema: Mapping[str, Any]) -> str:
    low = schema.get("minimum")
    xlow = schema.get("exclusiveMinimum")
    high = schema.get("maximum")
    xhigh = schema.get("exclusiveMaximum")
    parts = []
    if low is not None and high is not None:
        return f"between {_num(low)} and {_num(high)}"
    if low is not None:
        parts.append(f"at least {_num(low)}")
    if xlow is not None:
        parts.append(f"greater than {_num(xlow)}")
    if high is not None:
        parts.append(f"at most {_num(high)}")
    if xhigh is not None:
        parts.append(f"less than {_num(xhigh)}")
    return " and ".join(parts)


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def short_json(value: Any, limit: int = 60) -> str:
    """A short, printable rendering of any JSON value for a message."""
    try:
        text = json.dumps(value) if not isinstance(value, str) else repr(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_short = short_json


_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "an object",
    "array": "an array",
    "boolean": "true or false",
    "null": "null",
}


def _media_alternatives(branches: Sequence[Any]) -> list[str] | None:
    names: list[str] = []
    for branch in branches:
        if not isinstance(branch, Mapping):
            return None
        if branch.get("format") == "uuid":
            names.append("a UUID")
        elif branch.get("format") == "uri":
            names.append("a URL")
        elif str(branch.get("pattern", "")).startswith("^data:"):
            names.append("a data URI (data:<type>;base64,...)")
        elif branch.get("pattern") == "^[a-zA-Z0-9+/=]+$":
            names.append("base64")
        else:
            return None
    return names


def _consts(branches: Sequence[Any]) -> list[Any] | None:
    if all(isinstance(b, Mapping) and "const" in b for b in branches):
        return [b["const"] for b in branches]
    return None


def _schema_at(root: Mapping[str, Any], path: Iterable[str | int]) -> Any:
    node: Any = root
    for part in path:
        node = node[part]
    return node


@dataclass(frozen=True)
class _Failure:
    """One JSON-Schema failure, with what every handler below needs to word it."""

    error: ValidationError
    root: Mapping[str, Any]
    task: Mapping[str, Any]

    @property
    def path(self) -> str:
        return join_path(self.error.absolute_path)

    @property
    def label(self) -> str:
        return self.path or "the task"

    @property
    def value(self) -> Any:
        """The keyword's value in the schema (``maximum``: the maximum, ...)."""
        return self.error.validator_value

    @property
    def schema(self) -> Mapping[str, Any]:
        return self.error.schema if isinstance(self.error.schema, Mapping) else {}

    @property
    def instance(self) -> Any:
        return self.error.instance

    def violation(self, message: str, code: str = "invalidParameter") -> list[SpecViolation]:
        return [SpecViolation(self.path, message, code)]


def _additional_properties(f: _Failure) -> list[SpecViolation] | None:
    if not isinstance(f.instance, Mapping):
        return None
    known = f.schema.get("properties", {})
    allowed = sorted(known)
    return [
        SpecViolation(
            _child(f.path, str(k)),
            f"unknown parameter {_child(f.path, str(k))!r}"
            + (f" (allowed here: {', '.join(allowed)})" if allowed else ""),
            "unknownParameter",
        )
        for k in f.instance if k not in known
    ]


def _required(f: _Failure) -> list[SpecViolation] | None:
    if not isinstance(f.instance, Mapping):
        return None
    missing = [name for name in f.value if name not in f.instance]
    schema_path = list(f.error.relative_schema_path)
    if "then" in schema_path:  # an if/then rule: say what made it required
        owner = _schema_at(f.root, schema_path[: schema_path.index("then")])
        needs = _leaf_paths(owner.get("if"))
        return [
            SpecViolation(
                _child(f.path, name),
                f"{' and '.join(needs) or 'this setting'} needs {_child(f.path, name)}",
                "missingParameter",
            )
            for name in missing
        ]
    out = []
    for name in missing:
        full = _child(f.path, name)
        message = f"{full} is required"
        if full == "inputs.image":
            message += " (give a start image, or leave out inputs for text-only)"
        out.append(SpecViolation(full, message, "missingParameter"))
    return out


def _dependent_required(f: _Failure) -> list[SpecViolation] | None:
    if not isinstance(f.instance, Mapping):
        return None
    return [
        SpecViolation(
            _child(f.path, name),
            f"{_child(f.path, name)} is required when {_child(f.path, trigger)} is given",
            "missingParameter",
        )
        for trigger, needed in f.value.items() if trigger in f.instance
        for name in needed if name not in f.instance
    ]


def _type(f: _Failure) -> list[SpecViolation]:
    wanted = [f.value] if isinstance(f.value, str) else list(f.value)
    names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted)
    return f.violation(f"{f.label} must be {names} (got {_short(f.instance)})")


def _range(f: _Failure) -> list[SpecViolation]:
    return f.violation(f"{f.label} must be {_describe_range(f.schema)} (got {_num(f.instance)})")


def _multiple(f: _Failure) -> list[SpecViolation]:
    allowed = _describe_range(f.schema)
    return f.violation(f"{f.label} must be a multiple of {_num(f.value)} (got {_num(f.instance)})"
                       + (f"; allowed range {allowed}" if allowed else ""))


def _const(f: _Failure) -> list[SpecViolation]:
    return f.violation(f"{f.label} must be {_short(f.value)} (got {_short(f.instance)})")


def _enum(f: _Failure) -> list[SpecViolation]:
    allowed = ", ".join(str(v) for v in f.value)
    return f.violation(f"{f.label} must be one of {allowed} (got {_short(f.instance)})")


def _length(f: _Failure) -> list[SpecViolation]:
    if f.error.validator == "minLength":
        return f.violation(f"{f.label} must have at least {f.value} character(s)")
    return f.violation(f"{f.label} must have at most {f.value} characters "
                       f"(got {len(f.instance)})")


def _items(f: _Failure) -> list[SpecViolation]:
    count = len(f.instance) if isinstance(f.instance, list) else 0
    low, high = f.schema.get("minItems"), f.schema.get("maxItems")
    if low is not None and low == high:
        return f.violation(f"{f.label} must have exactly {low} items (got {count})")
    if f.error.validator == "minItems":
        return f.violation(f"{f.label} must have at least {f.value} item(s) (got {count})")
    return f.violation(f"{f.label} must have at most {f.value} items (got {count})")


def _format(f: _Failure) -> list[SpecViolation]:
    if f.value == "uuid":
        message = f"{f.label} must be a UUID like 123e4567-e89b-42d3-a456-426614174000"
    elif f.value == "uri":
        message = f"{f.label} must be an absolute URL (scheme and host)"
    else:
        message = f"{f.label} must be a valid {f.value}"
    return f.violation(f"{message} (got {_short(f.instance)})")


def _pattern(f: _Failure) -> list[SpecViolation]:
    return f.violation(f"{f.label} has an invalid format (got {_short(f.instance)})")


def _alternatives(f: _Failure) -> list[SpecViolation] | None:
    """anyOf / oneOf: a choice of constants, of media forms, or of exactly one field."""
    consts = _consts(f.value)
    if consts is not None:
        allowed = ", ".join(str(c) for c in consts)
        return f.violation(f"{f.label} must be one of {allowed} (got {_short(f.instance)})")
    media = _media_alternatives(f.value)
    if media is not None:
        return f.violation(f"{f.label} must be {_or_list(media)} "
                           f"(got {_short(f.instance, 40)})")
    alternatives = [_leaf_paths(b, f.path) for b in f.value]
    if not all(len(a) == 1 for a in alternatives):
        return None
    names = [a[0] for a in alternatives]
    given = [n for n in names if has_path(f.task, n)]
    if len(given) > 1:
        return [SpecViolation(given[1], f"exactly one of {', '.join(names)} must be given "
                                        f"(got {' and '.join(given)})",
                              "conflictingParameters")]
    return f.violation(f"exactly one of {', '.join(names)} must be given", "missingParameter")


def _not(f: _Failure) -> list[SpecViolation] | None:
    """``not: {required: [a, b]}``: a and b together are refused."""
    if not isinstance(f.value, Mapping):
        return None
    together = _leaf_paths(f.value, f.path)
    if len(together) < 2:
        return None
    parent, names = _short_names(together)
    where = f" in {parent}" if parent else ""
    return [SpecViolation(together[1], f"give either {_or_list(names)}{where}, not both",
                          "conflictingParameters")]


# JSON-Schema keyword -> the handler that words its failure for a user. A handler may
# return None when the failure has a shape it does not word; the schema's own message is
# used then.
_HANDLERS: dict[str, Callable[[_Failure], list[SpecViolation] | None]] = {
    "additionalProperties": _additional_properties,
    "required": _required,
    "dependentRequired": _dependent_required,
    "type": _type,
    "minimum": _range,
    "maximum": _range,
    "exclusiveMinimum": _range,
    "exclusiveMaximum": _range,
    "multipleOf": _multiple,
    "const": _const,
    "enum": _enum,
    "minLength": _length,
    "maxLength": _length,
    "minItems": _items,
    "maxItems": _items,
    "format": _format,
    "pattern": _pattern,
    "anyOf": _alternatives,
    "oneOf": _alternatives,
    "not": _not,
}


def _translate(
    error: ValidationError, root: Mapping[str, Any], task: Mapping[str, Any]
) -> list[SpecViolation]:
    """One schema failure -> the violations a user reads (see ``_HANDLERS``)."""
    failure = _Failure(error, root, task)
    handler = _HANDLERS.get(str(error.validator))
    worded = handler(failure) if handler is not None else None
    if worded is not None:
        return worded
    return failure.violation(f"{failure.label}: {error.message}")


# --------------------------------------------------------------------------- one reading
#
# The rules below are the pack's one reading of what the specs say in prose (or leave to
# the media). The node pre-flight (tasks.py) and the local test double both call them, so
# a graph the nodes accept offline is accepted by the double, and the other way round.
# Each rule is documented for users in the node help pages (web/docs/).

TIME_STEP = 0.01  # seconds: every time in the sync-3 spec is a multipleOf 0.01
CALLBACK_SCHEMES = ("http", "https")


def _as_int(value: Any) -> int | None:
    """An integer as JSON Schema reads one (``30`` and ``30.0``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _is_num(value: Any) -> TypeGuard[float]:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))
    )


def time_limit(length: float) -> float:
    """The latest time on the spec's 0.01 s grid inside media of ``length`` seconds.

    Times are multiples of 0.01 s while a clip's length is frames / fps (2.0833 s for 25
    frames at 12 fps), so a segment may end at the length rounded *up* to the grid (2.09),
    never later: the tolerance is under one 0.01 s step.
    """
    if not math.isfinite(length) or length <= 0:
        return 0.0
    return math.ceil(length / TIME_STEP - 1e-6) * TIME_STEP


def _within(value: float, limit: float) -> bool:
    return value <= limit + 1e-9


def find_surrogate(text: str) -> int | None:
    """Index of the first unpaired UTF-16 surrogate (U+D800-U+DFFF) in ``text``, or None.

    Such a character cannot be encoded as UTF-8: it is usually half of an emoji cut off by
    copy and paste.
    """
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            return index
    return None


def _encoding_violations(task: Mapping[str, Any]) -> list[SpecViolation]:
    """Values JSON cannot carry: NaN / infinite numbers, unpaired surrogates in strings.

    Walks the task iteratively (a hostile task may be nested deeper than Python's stack).
    """
    out: list[SpecViolation] = []
    stack: list[tuple[Any, list[str | int]]] = [(task, [])]
    while stack and len(out) < 20:
        value, path = stack.pop()
        where = join_path(path) or "the task"
        if isinstance(value, float) and not math.isfinite(value):
            out.append(SpecViolation(
                join_path(path), f"{where} must be a finite number (got {value})"))
        elif isinstance(value, str):
            index = find_surrogate(value)
            if index is not None:
                out.append(SpecViolation(
                    join_path(path),
                    f"{where} contains an unpaired surrogate character "
                    f"(U+{ord(value[index]):04X} at character {index}), which cannot be "
                    "sent as UTF-8: delete and retype that character",
                ))
        elif isinstance(value, Mapping):
            for key, child in value.items():
                if isinstance(key, str) and find_surrogate(key) is not None:
                    out.append(SpecViolation(
                        join_path([*path, key]),
                        f"a parameter name under {where} contains an unpaired surrogate "
                        "character",
                    ))
                    continue
                stack.append((child, [*path, str(key)]))
        elif isinstance(value, (list, tuple)):
            stack.extend((child, [*path, i]) for i, child in enumerate(value))
    out.sort(key=lambda v: v.parameter)
    return out


def url_scheme_problem(value: Any, where: str, purpose: str) -> str | None:
    """Why ``value`` is not an http(s) URL Runware can use, or None when it is.

    ``purpose`` finishes the sentence "Runware ...", e.g. "POSTs each result there".
    Only strings that are absolute URIs are judged here (the schema's ``format: uri``
    reports the rest).
    """
    if not isinstance(value, str) or not is_absolute_uri(value):
        return None
    scheme = urlsplit(value).scheme.lower()
    if scheme in CALLBACK_SCHEMES:
        return None
    return (f"{where} must be an http:// or https:// URL: Runware {purpose} "
            f"(got a {scheme}: URL)")


def _url_rules(task: Mapping[str, Any]) -> list[SpecViolation]:
    out: list[SpecViolation] = []
    for name, purpose in (
        ("webhookURL", "sends each finished result there by HTTP POST"),
        ("uploadEndpoint", "uploads the file there by HTTP PUT"),
    ):
        problem = url_scheme_problem(task.get(name), name, purpose)
        if problem:
            out.append(SpecViolation(name, problem))
    return out


def media_refs(task: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(API path, value) of every media reference a task holds (any model)."""
    refs: list[tuple[str, Any]] = []
    inputs = task.get("inputs")
    if isinstance(inputs, Mapping):
        refs += [(f"inputs.{k}", inputs[k]) for k in ("image", "video", "audio") if k in inputs]
    settings = task.get("settings")
    segments = settings.get("segments") if isinstance(settings, Mapping) else None
    if isinstance(segments, list):
        refs += [
            (f"settings.segments[{i}].audio", seg["audio"])
            for i, seg in enumerate(segments)
            if isinstance(seg, Mapping) and "audio" in seg
        ]
    return refs


_INLINE_IMAGE = re.compile(r"^data:image\/[a-zA-Z]+;base64,[a-zA-Z0-9+/=]+$")
_BARE_BASE64 = re.compile(r"^[a-zA-Z0-9+/=]+$")


def is_inline_image(value: str) -> bool:
    """A data URI of an image or bare base64: Ovi's inline ``inputs.image`` forms."""
    return bool(_INLINE_IMAGE.match(value) or _BARE_BASE64.match(value))


def is_remote_url(value: Any) -> bool:
    """An http(s) URL: media the service downloads itself."""
    return (
        isinstance(value, str)
        and is_absolute_uri(value)
        and urlsplit(value).scheme.lower() in CALLBACK_SCHEMES
    )


def _media_ref_rules(task: Mapping[str, Any], model: str) -> list[SpecViolation]:
    out: list[SpecViolation] = []
    for where, ref in media_refs(task):
        if not isinstance(ref, str) or is_uuid(ref):
            continue
        if model == OVI_MODEL and is_inline_image(ref):
            continue
        if model == SYNC3_MODEL and ref[:5].lower() == "data:":
            out.append(SpecViolation(
                where,
                f"{where} must be a UUID or a URL, not inline data: upload the file "
                "first (mediaStorage) and pass its mediaUUID",
            ))
            continue
        problem = url_scheme_problem(ref, where, "downloads media from there")
        if problem:
            out.append(SpecViolation(where, problem))
    return out


def _text_rules(task: Mapping[str, Any]) -> list[SpecViolation]:
    out: list[SpecViolation] = []
    prompt = task.get("positivePrompt")
    if isinstance(prompt, str) and not prompt.strip():
        # The schema sets no minLength; "text describing elements to include" cannot be
        # blank, and a blank prompt is a paid job that generates nothing asked for.
        out.append(SpecViolation(
            "positivePrompt", "positivePrompt is blank: describe the video to generate",
            "invalidPositivePrompt",
        ))
    speech = task.get("speech")
    text = speech.get("text") if isinstance(speech, Mapping) else None
    if isinstance(text, str) and text and not text.strip():
        out.append(SpecViolation(
            "speech.text", "speech.text is blank: give the text to speak"))
    return out


def _ovi_rules(task: Mapping[str, Any]) -> list[SpecViolation]:
    out: list[SpecViolation] = []
    fps = _as_int(task.get("fps"))
    if fps is not None and fps < 1:
        # The schema only caps fps (max 120); a frame rate below 1 cannot be generated.
        out.append(SpecViolation("fps", f"fps must be between 1 and 120 (got {fps})"))
    acc = task.get("acceleratorOptions")
    if not isinstance(acc, Mapping):
        return out
    steps_value = task.get("steps", OVI_DEFAULT_STEPS)
    steps = _as_int(steps_value)
    start, end = _as_int(acc.get("cacheStartStep")), _as_int(acc.get("cacheEndStep"))
    if end is not None and steps is not None and end > steps:
        out.append(
            SpecViolation(
                "acceleratorOptions.cacheEndStep",
                f"acceleratorOptions.cacheEndStep must be at most steps ({steps}), got {end}",
            )
        )
    if start is not None and end is not None and start >= end:
        out.append(
            SpecViolation(
                "acceleratorOptions.cacheEndStep",
                "acceleratorOptions.cacheEndStep must be greater than cacheStartStep "
                f"(cacheStartStep={start}, cacheEndStep={end})",
            )
        )
    if (start is not None and steps is not None and start >= steps
            and "cacheEndStep" not in acc):
        # Without an end step caching runs to the last step, so it must start before it
        # (cacheEndStep "less than or equal to steps", cacheStartStep "less than" the end).
        out.append(
            SpecViolation(
                "acceleratorOptions.cacheStartStep",
                f"acceleratorOptions.cacheStartStep must be less than steps ({steps}) "
                f"when no cacheEndStep is given (got {start}): caching would start after "
                "the last step",
            )
        )
    pstart = _as_int(acc.get("cacheStartStepPercentage"))
    pend = _as_int(acc.get("cacheEndStepPercentage"))
    if pstart is not None and pend is not None and pstart >= pend:
        out.append(
            SpecViolation(
                "acceleratorOptions.cacheEndStepPercentage",
                "acceleratorOptions.cacheEndStepPercentage must be greater than "
                f"cacheStartStepPercentage (cacheStartStepPercentage={pstart}, "
                f"cacheEndStepPercentage={pend})",
            )
        )
    return out


def _speaker(task: Mapping[str, Any]) -> Mapping[str, Any]:
    settings = task.get("settings")
    asd = settings.get("activeSpeakerDetection") if isinstance(settings, Mapping) else None
    return asd if isinstance(asd, Mapping) else {}


def _box(value: Any) -> tuple[float, float, float, float] | None:
    if isinstance(value, list) and len(value) == 4 and all(_is_num(v) for v in value):
        return float(value[0]), float(value[1]), float(value[2]), float(value[3])
    return None


def _sync3_rules(task: Mapping[str, Any]) -> list[SpecViolation]:
    out: list[SpecViolation] = []
    where = "settings.activeSpeakerDetection"
    asd = _speaker(task)
    coords = asd.get("coordinates")
    if (isinstance(coords, list) and len(coords) == 2 and all(_is_num(c) for c in coords)
            and (coords[0] < 0 or coords[1] < 0)):
        out.append(SpecViolation(
            f"{where}.coordinates",
            f"{where}.coordinates {_short(coords)} must not be negative (pixels from the "
            "top-left corner of the frame)",
        ))
    boxes = asd.get("boundingBoxes")
    if isinstance(boxes, list):
        for j, raw in enumerate(boxes):
            box = _box(raw)
            if box is None:
                continue
            x1, y1, x2, y2 = box
            if not (0 <= x1 < x2 and 0 <= y1 < y2):
                out.append(SpecViolation(
                    f"{where}.boundingBoxes[{j}]",
                    f"{where}.boundingBoxes[{j}] {_short(raw)} must be [x1, y1, x2, y2] "
                    "with 0 <= x1 < x2 and 0 <= y1 < y2 (top-left, then bottom-right corner)",
                ))
                break  # one is enough: a list of boxes is usually wrong as a whole
    settings = task.get("settings")
    segments = settings.get("segments") if isinstance(settings, Mapping) else None
    if not isinstance(segments, list):
        return out
    spans: list[tuple[float, float, int]] = []
    for i, seg in enumerate(segments):
        if not isinstance(seg, Mapping):
            continue
        at = f"settings.segments[{i}]"
        start, end = seg.get("startTime"), seg.get("endTime")
        if _is_num(start) and _is_num(end):
            if end <= start:
                out.append(
                    SpecViolation(
                        f"{at}.endTime",
                        f"{at}.endTime must be greater than startTime "
                        f"(startTime={_num(start)}, endTime={_num(end)})",
                    )
                )
            else:
                spans.append((float(start), float(end), i))
        astart, aend = seg.get("audioStartTime"), seg.get("audioEndTime")
        if _is_num(astart) and _is_num(aend) and aend <= astart:
            out.append(
                SpecViolation(
                    f"{at}.audioEndTime",
                    f"{at}.audioEndTime must be greater than audioStartTime "
                    f"(audioStartTime={_num(astart)}, audioEndTime={_num(aend)})",
                )
            )
    # Overlaps stay refused: each segment is "a video time range with its own audio"
    # (sync.so's segments guide); the same frames cannot be lip-synced to two audio
    # sources, and no source documents what the service would do. Touching is fine.
    spans.sort()
    for (s0, e0, i0), (s1, e1, i1) in zip(spans, spans[1:], strict=False):
        if s1 < e0 - 1e-9:
            out.append(
                SpecViolation(
                    f"settings.segments[{i1}].startTime",
                    f"segments must not overlap: settings.segments[{i1}] "
                    f"({_num(s1)}-{_num(e1)} s) overlaps settings.segments[{i0}] "
                    f"({_num(s0)}-{_num(e0)} s); the same frames cannot follow two audio "
                    "sources",
                )
            )
    return out


# --------------------------------------------------------------------------- media rules


@dataclass(frozen=True)
class MediaFacts:
    """What is known about one referenced medium (an upload, a result, inline data).

    ``kind`` is "image", "video", "audio", or "unreadable" (with ``problem`` saying why).
    For a video, ``frame_count`` and ``fps`` define its length (frames / fps), the same
    way on both sides of the pre-flight: the node's probe and the double's.
    """

    kind: str
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None
    fps: float | None = None
    duration: float | None = None
    has_audio: bool = False
    problem: str = ""

    @property
    def length(self) -> float | None:
        """Seconds: frames / fps for a video, else the stated duration."""
        if self.frame_count and self.fps:
            return self.frame_count / self.fps
        return self.duration


MediaLookup = Callable[[str], "MediaFacts | None"]


def _kind_problem(facts: MediaFacts, where: str, ref: str, wanted: str) -> SpecViolation | None:
    if facts.kind == "unreadable":
        code = "invalidImage" if wanted == "image" else "invalidMedia"
        return SpecViolation(where, f"{where}: {facts.problem or 'not readable media'}", code)
    if wanted == "image" and facts.kind != "image":
        return SpecViolation(where, f"{where}: {_short(ref, 50)} is a {facts.kind}, not an image",
                             "invalidImage")
    if wanted == "video" and facts.kind != "video":
        return SpecViolation(where, f"{where}: {_short(ref, 50)} is a {facts.kind}, not a video",
                             "invalidMedia")
    if wanted == "audio" and not (facts.kind == "audio"
                                  or (facts.kind == "video" and facts.has_audio)):
        return SpecViolation(where, f"{where}: {_short(ref, 50)} has no audio track",
                             "invalidMedia")
    return None


def check_media(task: Mapping[str, Any], lookup: MediaLookup) -> list[SpecViolation]:
    """The rules that need the referenced media, for a task ``validate_task`` accepted.

    ``lookup(ref)`` returns the facts of a reference, or None when they are unknown (a
    remote URL the service would download): rules needing unknown facts are skipped, by
    the node pre-flight and the double alike.

    * media kinds: Ovi's image is an image; sync-3's video a video, its audio (and each
      segment's) audio or a video with a sound track;
    * a segment's ``endTime`` is within the video, and its ``audioEndTime`` within its
      audio, both up to the length rounded up to 0.01 s (:func:`time_limit`);
    * ``frameNumber`` is an index into the frames: 0 <= frameNumber < frame count;
    * ``coordinates`` [x, y] is a pixel of the frame: 0 <= x < width, 0 <= y < height;
    * ``boundingBoxes`` has one box per frame ("per-frame ... across the clip"), each
      inside the frame: x2 <= width and y2 <= height.
    """
    model = task.get("model")
    out: list[SpecViolation] = []

    def facts_of(where: str, wanted: str) -> MediaFacts | None:
        ref = _value_at(task, where)
        if not isinstance(ref, str):
            return None
        facts = lookup(ref)
        if facts is None:
            return None
        problem = _kind_problem(facts, where, ref, wanted)
        if problem is not None:
            out.append(problem)
            return None
        return facts

    if model == OVI_MODEL:
        if has_path(task, "inputs.image"):
            facts_of("inputs.image", "image")
        return out
    if model != SYNC3_MODEL:
        return out
    video = facts_of("inputs.video", "video") if has_path(task, "inputs.video") else None
    if has_path(task, "inputs.audio"):
        facts_of("inputs.audio", "audio")
    settings = task.get("settings")
    segments = settings.get("segments") if isinstance(settings, Mapping) else None
    clip = video.length if video is not None else None
    for i, seg in enumerate(segments if isinstance(segments, list) else []):
        if not isinstance(seg, Mapping):
            continue
        at = f"settings.segments[{i}]"
        audio = facts_of(f"{at}.audio", "audio") if "audio" in seg else None
        end = seg.get("endTime")
        if clip and _is_num(end) and not _within(end, time_limit(clip)):
            out.append(SpecViolation(
                f"{at}.endTime",
                f"{at}.endTime ({_num(end)}) is past the end of the video ({clip:.3f} s): "
                f"a segment must end by {time_limit(clip):.2f} s",
            ))
        aend = seg.get("audioEndTime")
        alen = audio.length if audio is not None else None
        if alen and _is_num(aend) and not _within(aend, time_limit(alen)):
            out.append(SpecViolation(
                f"{at}.audioEndTime",
                f"{at}.audioEndTime ({_num(aend)}) is past the end of its audio "
                f"({alen:.3f} s): use at most {time_limit(alen):.2f} s",
            ))
    if video is None:
        return out
    where = "settings.activeSpeakerDetection"
    asd = _speaker(task)
    frames, width, height = video.frame_count, video.width, video.height
    frame = _as_int(asd.get("frameNumber"))
    if frames and frame is not None and frame >= frames:
        out.append(SpecViolation(
            f"{where}.frameNumber",
            f"{where}.frameNumber must be below the video's frame count ({frames}; the "
            f"first frame is 0), got {frame}",
        ))
    coords = asd.get("coordinates")
    if (width and height and isinstance(coords, list) and len(coords) == 2
            and all(_is_num(c) for c in coords)):
        x, y = coords
        if not (0 <= x < width and 0 <= y < height):
            out.append(SpecViolation(
                f"{where}.coordinates",
                f"{where}.coordinates [{_num(x)}, {_num(y)}] must be a pixel of the "
                f"{width}x{height} frame: 0 <= x < {width} and 0 <= y < {height}",
            ))
    boxes = asd.get("boundingBoxes")
    if isinstance(boxes, list):
        if frames and len(boxes) != frames:
            out.append(SpecViolation(
                f"{where}.boundingBoxes",
                f"{where}.boundingBoxes needs one box per frame: the video has {frames} "
                f"frames, got {len(boxes)} boxes",
            ))
        for j, raw in enumerate(boxes):
            box = _box(raw)
            if box is None or not (width and height):
                continue
            if box[2] > width or box[3] > height:
                out.append(SpecViolation(
                    f"{where}.boundingBoxes[{j}]",
                    f"{where}.boundingBoxes[{j}] {_short(raw)} reaches outside the "
                    f"{width}x{height} frame: x2 <= {width} and y2 <= {height}",
                ))
                break
    return out


def _value_at(task: Mapping[str, Any], where: str) -> Any:
    """The value at a path like ``settings.segments[1].audio`` (None when absent)."""
    node: Any = task
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", where):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(node, list) or index >= len(node):
                return None
            node = node[index]
        else:
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
    return node


# --------------------------------------------------------------------------- entry point


def validate_task(
    task: Mapping[str, Any], *, text_only_ovi_allowed: bool = True
) -> list[SpecViolation]:
    """Every way ``task`` breaks its model's spec; an empty list when it is valid.

    With ``text_only_ovi_allowed`` (the default) an Ovi task without ``inputs`` is fine
    (text-to-video); an ``inputs`` object that is present still needs ``image``.
    Media-dependent rules are in :func:`check_media`. Never raises for any JSON value.
    """
    if not isinstance(task, Mapping):
        return [SpecViolation("", "a task must be a JSON object", "invalidParameter")]
    encoding = _encoding_violations(task)
    if encoding:
        return encoding
    model = task.get("model")
    if model is None:
        return [
            SpecViolation(
                "model", f"model is required (one of {', '.join(MODELS)})", "missingParameter"
            )
        ]
    if not isinstance(model, str):
        return [
            SpecViolation(
                "model",
                f"model must be a string, one of {', '.join(MODELS)} (got {_short(model)})",
                "invalidParameter",
            )
        ]
    if model not in _SPEC_FILES:
        return [
            SpecViolation(
                "model",
                f"unknown model {_short(model)} (supported: {', '.join(MODELS)})",
                "modelNotFound",
            )
        ]
    validator = _validator(model, text_only_ovi_allowed)
    root = validator.schema
    seen: set[SpecViolation] = set()
    out: list[SpecViolation] = []
    errors = sorted(validator.iter_errors(task), key=lambda e: (list(map(str, e.path)), e.message))
    rules = _ovi_rules(task) if model == OVI_MODEL else _sync3_rules(task)
    rules += _text_rules(task) + _url_rules(task) + _media_ref_rules(task, model)
    for violation in [v for e in errors for v in _translate(e, root, task)] + rules:
        if violation not in seen:
            seen.add(violation)
            out.append(violation)
    return out


__all__ = [
    "CALLBACK_SCHEMES",
    "FORMAT_CHECKER",
    "MODELS",
    "OVI_DEFAULT_STEPS",
    "OVI_MODEL",
    "SYNC3_MODEL",
    "SYNC3_MODEL_ALIASES",
    "TIME_STEP",
    "MediaFacts",
    "MediaLookup",
    "SpecViolation",
    "check_media",
    "find_surrogate",
    "has_path",
    "is_absolute_uri",
    "is_inline_image",
    "is_multiple_of",
    "is_remote_url",
    "is_uuid",
    "join_path",
    "media_refs",
    "short_json",
    "task_schema",
    "time_limit",
    "url_scheme_problem",
    "validate_task",
]
