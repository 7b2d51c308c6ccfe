"""Node inputs, declared once: one row per input (name, type, default, range, tooltip, the
API field it fills), from which each node's ``INPUT_TYPES``, the values handed to the core
and the help-page checks are derived.

A node module lists its rows in an :class:`Inputs` table, in their public order (input
names are public API: saved workflows and API prompts name them; add new ones only at the
end). The row helpers (:func:`int_input`, :func:`float_input`, ...) write exactly what
ComfyUI reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .runware.tasks import OUTPUT_FORMATS, SAFETY_MODES

# Widget kinds; any other kind is a socket type ("IMAGE", "VIDEO", "RUNWARE_DELIVERY", ...).
WIDGETS = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


@dataclass(frozen=True)
class Input:
    """One node input, as the user sees it and as the request uses it."""

    name: str
    kind: str
    tooltip: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    multiline: bool = False
    optional: bool = False
    # The API field(s) this input fills, as its help page names them (empty: none).
    api: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def comfy_spec(self) -> tuple:
        """What ComfyUI's INPUT_TYPES holds for this input."""
        if self.kind == "INT":
            return ("INT", {"default": self.default, "min": self.low, "max": self.high,
                            "step": 1, "tooltip": self.tooltip, **self.extra})
        if self.kind == "FLOAT":
            return ("FLOAT", {"default": self.default, "min": self.low, "max": self.high,
                              "step": self.step, "round": self.step, "tooltip": self.tooltip,
                              **self.extra})
        if self.kind == "STRING":
            return ("STRING", {"default": self.default, "multiline": self.multiline,
                               "tooltip": self.tooltip})
        if self.kind == "BOOLEAN":
            return ("BOOLEAN", {"default": self.default, "tooltip": self.tooltip})
        if self.kind == "COMBO":
            return (list(self.choices), {"default": self.default, "tooltip": self.tooltip})
        return (self.kind, {"tooltip": self.tooltip})


def _api(api: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if api is None:
        return ()
    return (api,) if isinstance(api, str) else tuple(api)


def int_input(name: str, default: int, low: int, high: int, tooltip: str, *,
              api: str | tuple[str, ...] | None = None, optional: bool = False,
              **extra: Any) -> Input:
    return Input(name, "INT", tooltip, default, low, high, optional=optional, api=_api(api),
                 extra=extra)


def float_input(name: str, default: float, low: float, high: float, step: float,
                tooltip: str, *, api: str | tuple[str, ...] | None = None,
                optional: bool = False) -> Input:
    return Input(name, "FLOAT", tooltip, default, low, high, step, optional=optional,
                 api=_api(api))


def string_input(name: str, tooltip: str, default: str = "", *, multiline: bool = False,
                 api: str | tuple[str, ...] | None = None, optional: bool = False) -> Input:
    return Input(name, "STRING", tooltip, default, multiline=multiline, optional=optional,
                 api=_api(api))


def bool_input(name: str, default: bool, tooltip: str, *,
               api: str | tuple[str, ...] | None = None, optional: bool = False) -> Input:
    return Input(name, "BOOLEAN", tooltip, default, optional=optional, api=_api(api))


def combo_input(name: str, choices: tuple[str, ...] | list[str], default: str, tooltip: str,
                *, api: str | tuple[str, ...] | None = None, optional: bool = False) -> Input:
    return Input(name, "COMBO", tooltip, default, choices=tuple(choices), optional=optional,
                 api=_api(api))


def socket_input(name: str, kind: str, tooltip: str, *,
                 api: str | tuple[str, ...] | None = None, optional: bool = False) -> Input:
    """A connection (no widget): an IMAGE, a VIDEO, a helper node's value, ..."""
    return Input(name, kind, tooltip, optional=optional, api=_api(api))


class Inputs:
    """A node's inputs in their public order (required ones first, then optional ones)."""

    def __init__(self, *rows: Input, hidden: Mapping[str, str] | None = None) -> None:
        names = [row.name for row in rows]
        if len(set(names)) != len(names):
            raise ValueError(f"an input is declared twice: {names}")
        self.rows = rows
        self.hidden = dict(hidden or {})

    def __iter__(self) -> Iterator[Input]:
        return iter(self.rows)

    def __getitem__(self, name: str) -> Input:
        return next(row for row in self.rows if row.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(row.name for row in self.rows)

    def input_types(self) -> dict[str, Any]:
        """ComfyUI's ``INPUT_TYPES()`` for these inputs."""
        out: dict[str, Any] = {}
        required = {r.name: r.comfy_spec() for r in self.rows if not r.optional}
        optional = {r.name: r.comfy_spec() for r in self.rows if r.optional}
        if required:
            out["required"] = required
        if optional:
            out["optional"] = optional
        if self.hidden:
            out["hidden"] = dict(self.hidden)
        return out

    def values(self, given: Mapping[str, Any], args: tuple[Any, ...] = ()) -> dict[str, Any]:
        """The node function's arguments -> every input's value, in table order (what is not
        given gets its default). ComfyUI passes keywords; ``args`` are positional values in
        table order, for Python callers. Anything else (hidden inputs) is left out."""
        if len(args) > len(self.rows):
            raise TypeError(f"{len(args)} positional values for {len(self.rows)} inputs")
        positional = dict(zip(self.names, args, strict=False))
        twice = sorted(set(positional) & set(given))
        if twice:
            raise TypeError(f"{', '.join(twice)} given twice")
        merged = {**given, **positional}
        return {row.name: merged.get(row.name, row.default) for row in self.rows}


# -- what every node, and both model nodes, share ------------------------------------------

CATEGORY = "Runware"


class TableNode:
    """A node whose inputs are its ``INPUTS`` table: ComfyUI's INPUT_TYPES is derived."""

    CATEGORY = CATEGORY
    INPUTS: Inputs

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return cls.INPUTS.input_types()

DELIVERY_TYPE = "RUNWARE_DELIVERY"
# ComfyUI hands these to the node function: its id in the graph and the running prompt.
HIDDEN = {"unique_id": "UNIQUE_ID", "graph": "PROMPT"}


def output_inputs(max_results: int) -> tuple[Input, ...]:
    """The optional inputs both model nodes share, in their public order."""
    return (
        int_input("number_results", 1, 1, max_results,
                  f"How many videos to make (1-{max_results}); each is paid. Every output "
                  "becomes a list with one entry per result.",
                  api="numberResults", optional=True),
        combo_input("output_format", OUTPUT_FORMATS, "MP4",
                    "Container Runware returns: MP4 (H.264, plays everywhere), WEBM, or MOV.",
                    api="outputFormat", optional=True),
        int_input("output_quality", 95, 20, 99, "Compression quality of the returned file "
                  "(higher = better and larger).", api="outputQuality", optional=True),
        combo_input("safety", SAFETY_MODES, "off",
                    "Runware content check: off; fast checks key frames; full checks every "
                    "frame.", api="safety", optional=True),
    )


DELIVERY_INPUT = socket_input(
    "delivery", DELIVERY_TYPE,
    "Optional webhook / upload endpoint / TTL from a Runware Delivery node.",
    api=("webhookURL", "uploadEndpoint", "ttl"), optional=True)
REUSE_INPUT = bool_input(
    "reuse_cached_result", True,
    "Reuse a finished result of exactly the same request from the on-disk cache (no new "
    "charge, also after a restart). Turn off to pay for a new take.", optional=True)
