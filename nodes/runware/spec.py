"""Validate one ``videoInference`` task against the models' published specs.

The schemas are Runware's own (``spec/*.openapi.json``, ``RequestBody.items``: JSON Schema
2020-12). On top of the plain schema check this module

* checks the ``uuid`` and ``uri`` formats (the ``rfc3987`` package is not a dependency),
* replaces ``multipleOf`` with a decimal-exact version (``0.57`` is a multiple of ``0.01``),
* turns the schemas' ``anyOf`` / ``oneOf`` / ``not`` / ``if``-``then`` failures into
  readable sentences,
* adds the rules the specs state only in prose (cache step order, segment order, ...).

It is used both by the nodes (pre-flight checks, before anything is uploaded or paid for)
and by the local Runware test double.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

OVI_MODEL = "runware:190@1"
SYNC3_MODEL = "sync:lipsync@3"
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
    if dv is None or ds is None or ds == 0:
        return False
    try:
        return dv % ds == 0
    except InvalidOperation:
        return False


def _multiple_of(
    validator: Any, step: float | int, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "number"):
        return
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


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _translate(
    error: ValidationError, root: Mapping[str, Any], task: Mapping[str, Any]
) -> list[SpecViolation]:
    path = join_path(error.absolute_path)
    kw = error.validator
    value = error.validator_value
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    inst = error.instance
    label = path or "the task"

    if kw == "additionalProperties" and isinstance(inst, Mapping):
        allowed = sorted(schema.get("properties", {}))
        extras = [k for k in inst if k not in schema.get("properties", {})]
        return [
            SpecViolation(
                _child(path, str(k)),
                f"unknown parameter {_child(path, str(k))!r}"
                + (f" (allowed here: {', '.join(allowed)})" if allowed else ""),
                "unknownParameter",
            )
            for k in extras
        ]

    if kw == "required" and isinstance(inst, Mapping):
        missing = [name for name in value if name not in inst]
        schema_path = list(error.relative_schema_path)
        if "then" in schema_path:
            owner = _schema_at(root, schema_path[: schema_path.index("then")])
            needs = _leaf_paths(owner.get("if"))
            return [
                SpecViolation(
                    _child(path, name),
                    f"{' and '.join(needs) or 'this setting'} needs {_child(path, name)}",
                    "missingParameter",
                )
                for name in missing
            ]
        out = []
        for name in missing:
            full = _child(path, name)
            message = f"{full} is required"
            if full == "inputs.image":
                message += " (give a start image, or leave out inputs for text-only)"
            out.append(SpecViolation(full, message, "missingParameter"))
        return out

    if kw == "dependentRequired" and isinstance(inst, Mapping):
        out = []
        for trigger, needed in value.items():
            if trigger not in inst:
                continue
            for name in needed:
                if name not in inst:
                    out.append(
                        SpecViolation(
                            _child(path, name),
                            f"{_child(path, name)} is required when {_child(path, trigger)} "
                            "is given",
                            "missingParameter",
                        )
                    )
        return out

    if kw == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted)
        return [SpecViolation(path, f"{label} must be {names} (got {_short(inst)})")]

    if kw in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [
            SpecViolation(path, f"{label} must be {_describe_range(schema)} (got {_num(inst)})")
        ]

    if kw == "multipleOf":
        return [
            SpecViolation(
                path,
                f"{label} must be a multiple of {_num(value)} (got {_num(inst)})"
                + (f"; allowed range {_describe_range(schema)}" if _describe_range(schema) else ""),
            )
        ]

    if kw == "const":
        return [SpecViolation(path, f"{label} must be {_short(value)} (got {_short(inst)})")]

    if kw == "enum":
        allowed = ", ".join(str(v) for v in value)
        return [SpecViolation(path, f"{label} must be one of {allowed} (got {_short(inst)})")]

    if kw in ("minLength", "maxLength"):
        if kw == "minLength":
            msg = f"{label} must have at least {value} character(s)"
        else:
            msg = f"{label} must have at most {value} characters (got {len(inst)})"
        return [SpecViolation(path, msg)]

    if kw in ("minItems", "maxItems"):
        count = len(inst) if isinstance(inst, list) else 0
        if (
            "minItems" in schema
            and "maxItems" in schema
            and schema["minItems"] == schema["maxItems"]
        ):
            msg = f"{label} must have exactly {schema['minItems']} items (got {count})"
        elif kw == "minItems":
            msg = f"{label} must have at least {value} item(s) (got {count})"
        else:
            msg = f"{label} must have at most {value} items (got {count})"
        return [SpecViolation(path, msg)]

    if kw == "format":
        if value == "uuid":
            msg = f"{label} must be a UUID like 123e4567-e89b-42d3-a456-426614174000"
        elif value == "uri":
            msg = f"{label} must be an absolute URL (scheme and host)"
        else:
            msg = f"{label} must be a valid {value}"
        return [SpecViolation(path, f"{msg} (got {_short(inst)})")]

    if kw == "pattern":
        return [SpecViolation(path, f"{label} has an invalid format (got {_short(inst)})")]

    if kw in ("anyOf", "oneOf"):
        consts = _consts(value)
        if consts is not None:
            allowed = ", ".join(str(c) for c in consts)
            return [SpecViolation(path, f"{label} must be one of {allowed} (got {_short(inst)})")]
        media = _media_alternatives(value)
        if media is not None:
            return [
                SpecViolation(path, f"{label} must be {_or_list(media)} (got {_short(inst, 40)})")
            ]
        alternatives = [_leaf_paths(b, path) for b in value]
        if all(len(a) == 1 for a in alternatives):
            names = [a[0] for a in alternatives]
            given = [n for n in names if has_path(task, n)]
            if len(given) > 1:
                return [
                    SpecViolation(
                        given[1],
                        f"exactly one of {', '.join(names)} must be given "
                        f"(got {' and '.join(given)})",
                        "conflictingParameters",
                    )
                ]
            return [
                SpecViolation(
                    path,
                    f"exactly one of {', '.join(names)} must be given",
                    "missingParameter",
                )
            ]

    if kw == "not" and isinstance(value, Mapping):
        together = _leaf_paths(value, path)
        if len(together) >= 2:
            parent, names = _short_names(together)
            where = f" in {parent}" if parent else ""
            return [
                SpecViolation(
                    together[1],
                    f"give either {_or_list(names)}{where}, not both",
                    "conflictingParameters",
                )
            ]

    return [SpecViolation(path, f"{label}: {error.message}")]


# --------------------------------------------------------------------------- prose rules


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ovi_rules(task: Mapping[str, Any]) -> list[SpecViolation]:
    out: list[SpecViolation] = []
    fps = task.get("fps")
    if _is_int(fps) and fps < 1:
        # The schema only caps fps (max 120); a frame rate below 1 cannot be generated.
        out.append(SpecViolation("fps", f"fps must be between 1 and 120 (got {fps})"))
    acc = task.get("acceleratorOptions")
    if not isinstance(acc, Mapping):
        return out
    steps = task.get("steps", OVI_DEFAULT_STEPS)
    start, end = acc.get("cacheStartStep"), acc.get("cacheEndStep")
    if _is_int(end) and _is_int(steps) and end > steps:
        out.append(
            SpecViolation(
                "acceleratorOptions.cacheEndStep",
                f"acceleratorOptions.cacheEndStep must be at most steps ({steps}), got {end}",
            )
        )
    if _is_int(start) and _is_int(end) and start >= end:
        out.append(
            SpecViolation(
                "acceleratorOptions.cacheEndStep",
                "acceleratorOptions.cacheEndStep must be greater than cacheStartStep "
                f"(cacheStartStep={start}, cacheEndStep={end})",
            )
        )
    pstart, pend = acc.get("cacheStartStepPercentage"), acc.get("cacheEndStepPercentage")
    if _is_int(pstart) and _is_int(pend) and pstart >= pend:
        out.append(
            SpecViolation(
                "acceleratorOptions.cacheEndStepPercentage",
                "acceleratorOptions.cacheEndStepPercentage must be greater than "
                f"cacheStartStepPercentage (cacheStartStepPercentage={pstart}, "
                f"cacheEndStepPercentage={pend})",
            )
        )
    return out


def _sync3_rules(task: Mapping[str, Any]) -> list[SpecViolation]:
    out: list[SpecViolation] = []
    refs: list[tuple[str, Any]] = []
    inputs = task.get("inputs")
    if isinstance(inputs, Mapping):
        refs += [(f"inputs.{k}", inputs.get(k)) for k in ("video", "audio")]
    settings = task.get("settings")
    segments = settings.get("segments") if isinstance(settings, Mapping) else None
    if isinstance(segments, list):
        refs += [
            (f"settings.segments[{i}].audio", seg.get("audio"))
            for i, seg in enumerate(segments)
            if isinstance(seg, Mapping)
        ]
    for where, ref in refs:
        if isinstance(ref, str) and ref[:5].lower() == "data:":
            out.append(
                SpecViolation(
                    where,
                    f"{where} must be a UUID or a URL, not inline data: upload the file "
                    "first (mediaStorage) and pass its mediaUUID",
                )
            )
    if not isinstance(settings, Mapping):
        return out
    segments = settings.get("segments")
    if not isinstance(segments, list):
        return out
    spans: list[tuple[float, float, int]] = []
    for i, seg in enumerate(segments):
        if not isinstance(seg, Mapping):
            continue
        where = f"settings.segments[{i}]"
        start, end = seg.get("startTime"), seg.get("endTime")
        if _is_num(start) and _is_num(end):
            if end <= start:
                out.append(
                    SpecViolation(
                        f"{where}.endTime",
                        f"{where}.endTime must be greater than startTime "
                        f"(startTime={_num(start)}, endTime={_num(end)})",
                    )
                )
            else:
                spans.append((float(start), float(end), i))
        astart, aend = seg.get("audioStartTime"), seg.get("audioEndTime")
        if _is_num(astart) and _is_num(aend) and aend <= astart:
            out.append(
                SpecViolation(
                    f"{where}.audioEndTime",
                    f"{where}.audioEndTime must be greater than audioStartTime "
                    f"(audioStartTime={_num(astart)}, audioEndTime={_num(aend)})",
                )
            )
    spans.sort()
    for (s0, e0, i0), (s1, e1, i1) in zip(spans, spans[1:], strict=False):
        if s1 < e0 - 1e-9:
            out.append(
                SpecViolation(
                    f"settings.segments[{i1}].startTime",
                    f"segments must not overlap: settings.segments[{i1}] "
                    f"({_num(s1)}-{_num(e1)} s) overlaps settings.segments[{i0}] "
                    f"({_num(s0)}-{_num(e0)} s)",
                )
            )
    return out


# --------------------------------------------------------------------------- entry point


def validate_task(
    task: Mapping[str, Any], *, text_only_ovi_allowed: bool = True
) -> list[SpecViolation]:
    """Every way ``task`` breaks its model's spec; an empty list when it is valid.

    With ``text_only_ovi_allowed`` (the default) an Ovi task without ``inputs`` is fine
    (text-to-video); an ``inputs`` object that is present still needs ``image``.
    """
    if not isinstance(task, Mapping):
        return [SpecViolation("", "a task must be a JSON object", "invalidParameter")]
    model = task.get("model")
    if model is None:
        return [
            SpecViolation(
                "model", f"model is required (one of {', '.join(MODELS)})", "missingParameter"
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
    for violation in [v for e in errors for v in _translate(e, root, task)] + rules:
        if violation not in seen:
            seen.add(violation)
            out.append(violation)
    return out


__all__ = [
    "FORMAT_CHECKER",
    "MODELS",
    "OVI_DEFAULT_STEPS",
    "OVI_MODEL",
    "SYNC3_MODEL",
    "SpecViolation",
    "has_path",
    "is_absolute_uri",
    "is_multiple_of",
    "is_uuid",
    "join_path",
    "task_schema",
    "validate_task",
]
