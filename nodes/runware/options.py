"""The helper nodes' values, each a typed dict in the API's own shape, built and checked
from the node's inputs before anything is uploaded or paid: delivery (webhook, upload
endpoint, TTL), Ovi's accelerator options, sync-3's speaker, text-to-speech and segment
times. Also the first check every node builder makes (:func:`check_node_inputs`).

They travel between nodes as plain dicts (ComfyUI passes them along as they are); the
typed dicts only say, to a reader and to mypy, what each one holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, TypedDict

from .errors import ValidationError
from .spec import find_surrogate, url_scheme_problem

CACHE_UNITS = ("steps", "percent")
SPEAKER_MODES = ("auto", "point", "boxes")


class DeliveryOptions(TypedDict, total=False):
    """``RunwareDelivery``: only what the user set is sent (top-level task fields)."""

    webhookURL: str
    uploadEndpoint: str
    ttl: int


class AcceleratorOptions(TypedDict, total=False):
    """``RunwareAccelerator``: Ovi's ``acceleratorOptions`` (cache bounds in one unit)."""

    teaCache: bool
    teaCacheDistance: float
    cacheMaxConsecutiveSteps: int
    cacheStartStep: int
    cacheEndStep: int
    cacheStartStepPercentage: int
    cacheEndStepPercentage: int


class SpeakerOptions(TypedDict, total=False):
    """``RunwareSync3Speaker``: sync-3's ``settings.activeSpeakerDetection`` (one mode)."""

    autoDetect: bool
    coordinates: list[float]
    frameNumber: int
    boundingBoxes: list[list[float]]


class _TTSProvider(TypedDict):
    provider: str


class TTSOptions(_TTSProvider, total=False):
    """``RunwareSync3TTS``: sync-3's ``settings.tts`` (-1 on the node = provider default)."""

    stability: float
    similarityBoost: float


class SegmentTimes(TypedDict):
    """Where one ``RunwareSync3Segment`` goes (seconds on the spec's 0.01 s grid); the
    audio bounds are both set or both None."""

    start_time: float
    end_time: float
    audio_start_time: float | None
    audio_end_time: float | None


class SegmentValue(SegmentTimes):
    """One entry of the ``RunwareSync3Segment`` node's value: its times and its AUDIO."""

    audio: Mapping[str, Any]


def check_node_inputs(node: str, **values: Any) -> None:
    """NaN / infinite floats and unpaired surrogates in text: an error naming the input.

    Called first by every node builder (keyword = the input's name as the error should
    show it). JSON cannot carry either, and both would otherwise surface later as a
    confusing range error, a silent default, or a crash while encoding the request.
    """
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(
                f"{node}: {name} is {value}, not a number", parameter=name,
                hint=f"Set {name} to a finite number (it may come from a hand-edited "
                "workflow or an API prompt).",
            )
        if isinstance(value, str):
            index = find_surrogate(value)
            if index is not None:
                raise ValidationError(
                    f"{node}: {name} contains an unpaired surrogate character "
                    f"(U+{ord(value[index]):04X} at character {index}) that cannot be sent "
                    "as UTF-8", parameter=name,
                    hint="It is usually half of an emoji cut off by copy and paste: delete "
                    "that character and type it again.",
                )


# -- the helper nodes' values -------------------------------------------------------------


def delivery_options(*, webhook_url: str, upload_endpoint: str, ttl: int) -> DeliveryOptions:
    """The ``RunwareDelivery`` node's value: only what the user set is sent.

    Both URLs must be http(s): Runware POSTs / PUTs to them (the spec's own words).
    """
    check_node_inputs("RunwareDelivery", **{"delivery.webhook_url": webhook_url,
                                            "delivery.upload_endpoint": upload_endpoint})
    options: DeliveryOptions = {}
    for name, field_name, purpose, value in (
        ("webhook_url", "webhookURL", "sends each finished result there by HTTP POST",
         webhook_url),
        ("upload_endpoint", "uploadEndpoint", "uploads the file there by HTTP PUT",
         upload_endpoint),
    ):
        if not (value and value.strip()):
            continue
        problem = url_scheme_problem(value.strip(), name, purpose)
        if problem:
            raise ValidationError(
                f"RunwareDelivery: {problem}", parameter=f"delivery.{name}",
                hint="Use the http:// or https:// address of your endpoint, or leave it empty.",
            )
        options[field_name] = value.strip()  # type: ignore[literal-required]
    if ttl:
        if int(ttl) < 60:
            raise ValidationError(
                f"delivery.ttl must be 0 (not sent) or at least 60 seconds, got {ttl}",
                parameter="delivery.ttl",
            )
        options["ttl"] = int(ttl)
    return options


def accelerator_options(
    *,
    tea_cache: bool,
    tea_cache_distance: float,
    cache_unit: str,
    cache_start: int,
    cache_end: int,
    cache_max_consecutive_steps: int,
) -> AcceleratorOptions:
    """The ``RunwareAccelerator`` node's value (``acceleratorOptions``).

    Cache start/end are given in one unit, steps or percent, so the spec's "not both"
    rule holds by construction; -1 leaves a bound unset.
    """
    check_node_inputs("RunwareAccelerator",
                      **{"accelerator.tea_cache_distance": tea_cache_distance})
    if cache_unit not in CACHE_UNITS:
        raise ValidationError(
            f"accelerator.cache_unit must be steps or percent, got {cache_unit!r}",
            parameter="accelerator.cache_unit",
        )
    options: AcceleratorOptions = {
        "teaCache": bool(tea_cache),
        "teaCacheDistance": round(float(tea_cache_distance), 2),
        "cacheMaxConsecutiveSteps": int(cache_max_consecutive_steps),
    }
    suffix = "" if cache_unit == "steps" else "Percentage"
    if int(cache_start) >= 0:
        options[f"cacheStartStep{suffix}"] = int(cache_start)  # type: ignore[literal-required]
    if int(cache_end) >= 0:
        options[f"cacheEndStep{suffix}"] = int(cache_end)  # type: ignore[literal-required]
    return options


def on_time_grid(value: float) -> float:
    """Seconds rounded to the spec's 0.01 s grid (every sync-3 time is a multiple of it)."""
    return round(float(value), 2)


def segment_options(*, start_time: float, end_time: float, audio_start_time: float,
                    audio_end_time: float) -> SegmentTimes:
    """The times of one ``RunwareSync3Segment`` (seconds, rounded to the spec's 0.01 s).

    -1 leaves an audio bound unset; the two audio bounds go together. Whether the
    segment fits the video is checked by the sync-3 node, which knows the video.
    """
    check_node_inputs("RunwareSync3Segment", start_time=start_time, end_time=end_time,
                      audio_start_time=audio_start_time, audio_end_time=audio_end_time)
    if (audio_start_time >= 0) != (audio_end_time >= 0):
        raise ValidationError(
            "RunwareSync3Segment: audio_start_time and audio_end_time go together",
            parameter="audio_end_time",
            hint="Set both (a range in this audio) or leave both at -1.",
        )
    start, end = on_time_grid(start_time), on_time_grid(end_time)
    if end <= start:
        raise ValidationError(
            f"RunwareSync3Segment: end_time {end} s must be after start_time {start} s",
            parameter="end_time",
        )
    out: SegmentTimes = {"start_time": start, "end_time": end,
                         "audio_start_time": None, "audio_end_time": None}
    if audio_start_time >= 0:
        a_start, a_end = on_time_grid(audio_start_time), on_time_grid(audio_end_time)
        if a_end <= a_start:
            raise ValidationError(
                f"RunwareSync3Segment: audio_end_time {a_end} s must be after "
                f"audio_start_time {a_start} s", parameter="audio_end_time",
            )
        out["audio_start_time"], out["audio_end_time"] = a_start, a_end
    return out


def speaker_options(*, mode: str, x: float, y: float, frame_number: int,
                    boxes: str) -> SpeakerOptions:
    """The ``RunwareSync3Speaker`` node's value (``settings.activeSpeakerDetection``).

    A point is a pixel of the frame (0 <= x < width); boxes are one [x1, y1, x2, y2] per
    frame. Both are checked against the video by the sync-3 node.
    """
    check_node_inputs("RunwareSync3Speaker", x=x, y=y, boxes=boxes)
    if mode == "auto":
        return {"autoDetect": True}
    if mode == "point":
        return {"coordinates": [float(x), float(y)], "frameNumber": int(frame_number)}
    if mode == "boxes":
        try:
            parsed = json.loads(boxes or "", parse_constant=_no_json_constant)
        except ValueError as exc:
            where = (f" ({exc.msg} at character {exc.pos})"
                     if isinstance(exc, json.JSONDecodeError) else f" ({exc})")
            raise ValidationError(
                f"speaker boxes is not valid JSON{where}",
                parameter="boxes",
                hint="Write a JSON list with one [x1, y1, x2, y2] per frame, e.g. "
                "[[10, 20, 110, 140], [12, 20, 112, 140]].",
            ) from None
        if not isinstance(parsed, list) or not parsed or not all(
            isinstance(b, list) and len(b) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) for v in b)
            for b in parsed
        ):
            raise ValidationError(
                "speaker boxes must be a non-empty JSON list of [x1, y1, x2, y2] numbers",
                parameter="boxes", hint="One box per frame of the video.",
            )
        return {"boundingBoxes": [[float(v) for v in b] for b in parsed]}
    raise ValidationError(
        f"speaker mode must be one of {', '.join(SPEAKER_MODES)}, got {mode!r}",
        parameter="mode",
    )


def _no_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def tts_options(*, provider: str, stability: float, similarity_boost: float) -> TTSOptions:
    """The ``RunwareSync3TTS`` node's value (``settings.tts``); -1 = provider default."""
    check_node_inputs("RunwareSync3TTS", provider=provider, stability=stability,
                      similarity_boost=similarity_boost)
    options: TTSOptions = {"provider": (provider or "").strip() or "elevenlabs"}
    if stability >= 0:
        options["stability"] = round(float(stability), 2)
    if similarity_boost >= 0:
        options["similarityBoost"] = round(float(similarity_boost), 2)
    return options

