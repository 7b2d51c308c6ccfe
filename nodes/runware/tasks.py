"""Node inputs -> a validated ``videoInference`` task, before anything is uploaded or paid.

A :class:`PreparedJob` holds the task with placeholder UUIDs where uploads go, and the
uploads to make. It is checked against the model's spec (the project's copy) with every
violation reported under the **node input** the user can change, not only the API field.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ValidationError
from .ovi_prompt import check_prompt
from .spec import (
    OVI_MODEL,
    SYNC3_MODEL,
    MediaFacts,
    SpecViolation,
    check_media,
    find_surrogate,
    url_scheme_problem,
    validate_task,
)

SAFETY_MODES = ("off", "fast", "full")
OUTPUT_FORMATS = ("MP4", "WEBM", "MOV")
CACHE_UNITS = ("steps", "percent")
EXTENSIONS = {"MP4": "mp4", "WEBM": "webm", "MOV": "mov"}

# API path (prefix) -> the node input that sets it. Longest prefix wins.
OVI_FIELDS: dict[str, str] = {
    "positivePrompt": "prompt",
    "seed": "seed",
    "steps": "steps",
    "fps": "fps",
    "advancedFeatures.videoCFGScale": "video_cfg_scale",
    "advancedFeatures.audioCFGScale": "audio_cfg_scale",
    "inputs.image": "image",
    "inputs": "image",
    "advancedFeatures.videoNegativePrompt": "video_negative_prompt",
    "advancedFeatures.audioNegativePrompt": "audio_negative_prompt",
    "advancedFeatures.slgLayer": "slg_layer",
    "numberResults": "number_results",
    "outputFormat": "output_format",
    "outputQuality": "output_quality",
    "safety": "safety",
    "acceleratorOptions.teaCache": "accelerator.tea_cache",
    "acceleratorOptions.teaCacheDistance": "accelerator.tea_cache_distance",
    "acceleratorOptions.cacheStartStep": "accelerator.cache_start",
    "acceleratorOptions.cacheStartStepPercentage": "accelerator.cache_start",
    "acceleratorOptions.cacheEndStep": "accelerator.cache_end",
    "acceleratorOptions.cacheEndStepPercentage": "accelerator.cache_end",
    "acceleratorOptions.cacheMaxConsecutiveSteps": "accelerator.cache_max_consecutive_steps",
    "acceleratorOptions": "accelerator",
}
DELIVERY_FIELDS: dict[str, str] = {
    "webhookURL": "delivery.webhook_url",
    "uploadEndpoint": "delivery.upload_endpoint",
    "ttl": "delivery.ttl",
}

# Stands in for an upload's UUID until the upload is made (a valid v4 UUID, so the task
# validates exactly as it will be sent).
PLACEHOLDER = "00000000-0000-4000-8000-{:012d}"


@dataclass(frozen=True)
class Upload:
    """One input medium to upload; its UUID replaces ``placeholder`` in the task."""

    input_name: str
    placeholder: str
    source: bytes | Path
    mime: str
    task_type: str  # "imageUpload" or "mediaStorage"


@dataclass
class PreparedJob:
    model: str
    task: dict[str, Any]
    uploads: list[Upload] = field(default_factory=list)
    # Seconds of the input video (sync-3): what its price scales with (see spend.py).
    video_seconds: float | None = None

    @property
    def number_results(self) -> int:
        return int(self.task.get("numberResults") or 1)

    @property
    def extension(self) -> str:
        return EXTENSIONS[str(self.task.get("outputFormat", "MP4"))]

    def with_uploads(self, uuids: Mapping[str, str]) -> dict[str, Any]:
        """The task to send: placeholders replaced by the uploads' real UUIDs."""
        return _replace_strings(self.task, dict(uuids))


def _replace_strings(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [_replace_strings(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _replace_strings(v, mapping) for k, v in value.items()}
    return value


def node_input_for(api_path: str, fields: Mapping[str, str]) -> str | None:
    """The node input behind an API path (``acceleratorOptions.cacheEndStep`` -> ...)."""
    best = None
    for prefix, name in fields.items():
        if api_path == prefix or api_path.startswith(prefix + ".") or api_path.startswith(
            prefix + "["
        ):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, name)
    return best[1] if best else None


def raise_for_violations(
    violations: list[SpecViolation], fields: Mapping[str, str], node: str
) -> None:
    if not violations:
        return
    lines = []
    first_input = None
    for v in violations:
        name = node_input_for(v.parameter, fields) if v.parameter else None
        first_input = first_input or name or v.parameter or None
        where = f"{name} (API field {v.parameter})" if name else (v.parameter or "request")
        lines.append(f"{where}: {v.message}")
    raise ValidationError(
        f"{node}: " + "; ".join(lines),
        code=violations[0].code,
        parameter=first_input,
        hint="Nothing was uploaded or paid for. Fix the input named above and queue again.",
    )


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


# -- shared option groups ------------------------------------------------------------


def apply_output_options(
    task: dict[str, Any], *, number_results: int, output_format: str, output_quality: int,
    safety: str,
) -> None:
    task["numberResults"] = int(number_results)
    task["outputFormat"] = str(output_format)
    task["outputQuality"] = int(output_quality)
    if safety not in SAFETY_MODES:
        raise ValidationError(
            f"safety must be one of {', '.join(SAFETY_MODES)}, got {safety!r}",
            parameter="safety",
        )
    task["safety"] = (
        {"checkContent": False, "mode": "none"} if safety == "off"
        else {"checkContent": True, "mode": safety}
    )


def delivery_options(webhook_url: str = "", upload_endpoint: str = "", ttl: int = 0) -> dict:
    """The ``RunwareDelivery`` node's value: only what the user set is sent.

    Both URLs must be http(s): Runware POSTs / PUTs to them (the spec's own words).
    """
    check_node_inputs("RunwareDelivery", **{"delivery.webhook_url": webhook_url,
                                            "delivery.upload_endpoint": upload_endpoint})
    options: dict[str, Any] = {}
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
        options[field_name] = value.strip()
    if ttl:
        if int(ttl) < 60:
            raise ValidationError(
                f"delivery.ttl must be 0 (not sent) or at least 60 seconds, got {ttl}",
                parameter="delivery.ttl",
            )
        options["ttl"] = int(ttl)
    return options


def accelerator_options(
    tea_cache: bool = False,
    tea_cache_distance: float = 0.5,
    cache_unit: str = "steps",
    cache_start: int = -1,
    cache_end: int = -1,
    cache_max_consecutive_steps: int = 3,
) -> dict:
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
    options: dict[str, Any] = {
        "teaCache": bool(tea_cache),
        "teaCacheDistance": round(float(tea_cache_distance), 2),
        "cacheMaxConsecutiveSteps": int(cache_max_consecutive_steps),
    }
    suffix = "" if cache_unit == "steps" else "Percentage"
    if int(cache_start) >= 0:
        options[f"cacheStartStep{suffix}"] = int(cache_start)
    if int(cache_end) >= 0:
        options[f"cacheEndStep{suffix}"] = int(cache_end)
    return options


# -- Ovi -------------------------------------------------------------------------------


def prepare_ovi(
    *,
    prompt: str,
    seed: int,
    steps: int,
    fps: int,
    video_cfg_scale: float,
    audio_cfg_scale: float,
    image_png: bytes | None = None,
    video_negative_prompt: str = "",
    audio_negative_prompt: str = "",
    slg_layer: int = -1,
    number_results: int = 1,
    output_format: str = "MP4",
    output_quality: int = 95,
    safety: str = "off",
    accelerator: Mapping[str, Any] | None = None,
    delivery: Mapping[str, Any] | None = None,
    task_uuid: str | None = None,
) -> PreparedJob:
    """Build and check an Ovi task. Raises ValidationError naming the node input."""
    check_node_inputs("RunwareOvi", prompt=prompt, video_cfg_scale=video_cfg_scale,
                      audio_cfg_scale=audio_cfg_scale,
                      video_negative_prompt=video_negative_prompt,
                      audio_negative_prompt=audio_negative_prompt)
    check_prompt(prompt, input_name="prompt")
    advanced: dict[str, Any] = {
        "videoCFGScale": float(video_cfg_scale),
        "audioCFGScale": float(audio_cfg_scale),
    }
    if video_negative_prompt and video_negative_prompt.strip():
        advanced["videoNegativePrompt"] = video_negative_prompt.strip()
    if audio_negative_prompt and audio_negative_prompt.strip():
        advanced["audioNegativePrompt"] = audio_negative_prompt.strip()
    if int(slg_layer) != -1:
        advanced["slgLayer"] = int(slg_layer)
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": task_uuid or str(uuid.uuid4()),
        "model": OVI_MODEL,
        "positivePrompt": prompt,
        "seed": int(seed),
        "steps": int(steps),
        "fps": int(fps),
        "advancedFeatures": advanced,
        "deliveryMethod": "async",
        "outputType": "URL",
        "includeCost": True,
    }
    apply_output_options(task, number_results=number_results, output_format=output_format,
                         output_quality=output_quality, safety=safety)
    if accelerator:
        task["acceleratorOptions"] = dict(accelerator)
    if delivery:
        task.update(delivery)
    uploads: list[Upload] = []
    if image_png is not None:
        placeholder = PLACEHOLDER.format(1)
        # Without an image the request is text-to-video and `inputs` is left out (see the
        # Ovi discrepancy in the protocol notes).
        task["inputs"] = {"image": placeholder}
        uploads.append(Upload("image", placeholder, image_png, "image/png", "imageUpload"))
    violations = validate_task(task)
    if not violations:  # the same media rules the double applies (an image is an image)
        violations = check_media(task, {PLACEHOLDER.format(1): MediaFacts(kind="image")}.get)
    raise_for_violations(violations, {**OVI_FIELDS, **DELIVERY_FIELDS}, "RunwareOvi")
    return PreparedJob(OVI_MODEL, task, uploads)


# -- sync-3 ----------------------------------------------------------------------------

SYNC_MODES = ("cut_off", "bounce", "silence", "remap")
SPEAKER_MODES = ("auto", "point", "boxes")

SYNC3_FIELDS: dict[str, str] = {
    "inputs.video": "video",
    "inputs.audio": "audio",
    "inputs": "video",
    "speech.text": "speech_text",
    "speech.voice": "voice",
    "speech": "speech_text",
    "settings.syncMode": "sync_mode",
    "settings.segments": "segments",
    "settings.activeSpeakerDetection.autoDetect": "speaker.mode",
    "settings.activeSpeakerDetection.coordinates": "speaker.x/y",
    "settings.activeSpeakerDetection.frameNumber": "speaker.frame_number",
    "settings.activeSpeakerDetection.boundingBoxes": "speaker.boxes",
    "settings.activeSpeakerDetection": "speaker",
    "settings.tts.provider": "tts.provider",
    "settings.tts.stability": "tts.stability",
    "settings.tts.similarityBoost": "tts.similarity_boost",
    "settings.tts": "tts",
    "numberResults": "number_results",
    "outputFormat": "output_format",
    "outputQuality": "output_quality",
    "safety": "safety",
}


@dataclass(frozen=True)
class VideoFacts:
    """What the input video reveals, for checks that need it (from headers, no decode)."""

    width: int
    height: int
    fps: float
    frame_count: int
    duration: float


@dataclass(frozen=True)
class Segment:
    """One ``RunwareSync3Segment``: its audio file and where it goes in the video."""

    source: bytes | Path
    mime: str
    audio_duration: float
    start_time: float
    end_time: float
    audio_start_time: float | None = None
    audio_end_time: float | None = None


def check_sync3_sources(
    *, video: bool, images: bool, audio: bool, speech_text: bool, segments: bool,
    tts: bool = False,
) -> None:
    """Exactly one video source and one voice source; tts only with speech_text."""
    if video and images:
        raise ValidationError(
            "RunwareSync3: both video and images are connected", parameter="images",
            hint="Connect either a VIDEO to video, or frames to images (with fps), not both.",
        )
    if not video and not images:
        raise ValidationError(
            "RunwareSync3: no video to lip-sync", parameter="video",
            hint="Connect a VIDEO to video (e.g. Load Video or Runware Ovi), or frames to "
            "images and set fps.",
        )
    voices = [name for name, given in (("audio", audio), ("speech_text", speech_text),
                                       ("segments", segments)) if given]
    if len(voices) != 1:
        what = "no voice source" if not voices else "more than one voice source (" + \
            ", ".join(voices) + ")"
        raise ValidationError(
            f"RunwareSync3: {what}", parameter=voices[-1] if voices else "audio",
            hint="Give exactly one of: audio (an AUDIO track), speech_text (text to speak) "
            "or segments (from Runware sync-3 Segment nodes).",
        )
    if tts and not speech_text:
        raise ValidationError(
            "RunwareSync3: tts settings only apply to speech_text", parameter="tts",
            hint="Disconnect tts, or use speech_text as the voice source.",
        )


def _seconds(value: float) -> float:
    return round(float(value), 2)


def _segment_items(segments: list[Segment]) -> list[dict[str, Any]]:
    """The API's ``settings.segments``: times on the spec's 0.01 s grid."""
    out: list[dict[str, Any]] = []
    for i, seg in enumerate(segments, start=1):
        item: dict[str, Any] = {"startTime": _seconds(seg.start_time),
                                "endTime": _seconds(seg.end_time),
                                "audio": PLACEHOLDER.format(100 + i)}
        if seg.audio_start_time is not None:
            item["audioStartTime"] = _seconds(seg.audio_start_time)
        if seg.audio_end_time is not None:
            item["audioEndTime"] = _seconds(seg.audio_end_time)
        out.append(item)
    return out


def video_media_facts(video: VideoFacts) -> MediaFacts:
    """What the spec's media rules need from the input video (see spec.check_media)."""
    return MediaFacts(kind="video", width=video.width, height=video.height,
                      frame_count=video.frame_count or None, fps=video.fps or None,
                      duration=video.duration, has_audio=False)


def prepare_sync3(
    *,
    video_source: bytes | Path,
    video_mime: str,
    video: VideoFacts,
    sync_mode: str = "cut_off",
    audio_source: bytes | Path | None = None,
    audio_mime: str = "audio/flac",
    speech_text: str = "",
    voice: str = "auto",
    segments: list[Segment] | None = None,
    speaker: Mapping[str, Any] | None = None,
    tts: Mapping[str, Any] | None = None,
    number_results: int = 1,
    output_format: str = "MP4",
    output_quality: int = 95,
    safety: str = "off",
    delivery: Mapping[str, Any] | None = None,
    task_uuid: str | None = None,
) -> PreparedJob:
    """Build and check a sync-3 task from converted media and what it reveals.

    The boundary rules (segment ends, speaker point, frame number, boxes) are the spec
    module's ``check_media``, the same code the local double runs on the uploaded files.
    """
    check_node_inputs("RunwareSync3", speech_text=speech_text, voice=voice)
    speech_text = (speech_text or "").strip()
    check_sync3_sources(video=True, images=False, audio=audio_source is not None,
                        speech_text=bool(speech_text), segments=bool(segments),
                        tts=bool(tts))
    if sync_mode not in SYNC_MODES:
        raise ValidationError(
            f"sync_mode must be one of {', '.join(SYNC_MODES)}, got {sync_mode!r}",
            parameter="sync_mode",
        )
    settings: dict[str, Any] = {"syncMode": sync_mode}
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": task_uuid or str(uuid.uuid4()),
        "model": SYNC3_MODEL,
        "inputs": {"video": PLACEHOLDER.format(1)},
        "deliveryMethod": "async",
        "outputType": "URL",
        "includeCost": True,
    }
    facts: dict[str, MediaFacts] = {PLACEHOLDER.format(1): video_media_facts(video)}
    uploads = [Upload("video", PLACEHOLDER.format(1), video_source, video_mime, "mediaStorage")]
    if audio_source is not None:
        task["inputs"]["audio"] = PLACEHOLDER.format(2)
        facts[PLACEHOLDER.format(2)] = MediaFacts(kind="audio")
        uploads.append(Upload("audio", PLACEHOLDER.format(2), audio_source, audio_mime,
                              "mediaStorage"))
    if speech_text:
        task["speech"] = {"text": speech_text, "voice": (voice or "").strip() or "auto"}
    if segments:
        settings["segments"] = _segment_items(segments)
        for i, seg in enumerate(segments, start=1):
            placeholder = PLACEHOLDER.format(100 + i)
            facts[placeholder] = MediaFacts(kind="audio", duration=seg.audio_duration)
            uploads.append(Upload(f"segments[{i}].audio", placeholder, seg.source, seg.mime,
                                  "mediaStorage"))
    if speaker:
        settings["activeSpeakerDetection"] = dict(speaker)
    if tts:
        settings["tts"] = dict(tts)
    task["settings"] = settings
    apply_output_options(task, number_results=number_results, output_format=output_format,
                         output_quality=output_quality, safety=safety)
    if delivery:
        task.update(delivery)
    violations = validate_task(task)
    if not violations:
        violations = check_media(task, facts.get)
    raise_for_violations(violations, {**SYNC3_FIELDS, **DELIVERY_FIELDS}, "RunwareSync3")
    return PreparedJob(SYNC3_MODEL, task, uploads, video_seconds=float(video.duration))


def segment_options(start_time: float, end_time: float, audio_start_time: float = -1.0,
                    audio_end_time: float = -1.0) -> dict[str, Any]:
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
    start, end = _seconds(start_time), _seconds(end_time)
    if end <= start:
        raise ValidationError(
            f"RunwareSync3Segment: end_time {end} s must be after start_time {start} s",
            parameter="end_time",
        )
    out: dict[str, Any] = {"start_time": start, "end_time": end,
                           "audio_start_time": None, "audio_end_time": None}
    if audio_start_time >= 0:
        a_start, a_end = _seconds(audio_start_time), _seconds(audio_end_time)
        if a_end <= a_start:
            raise ValidationError(
                f"RunwareSync3Segment: audio_end_time {a_end} s must be after "
                f"audio_start_time {a_start} s", parameter="audio_end_time",
            )
        out["audio_start_time"], out["audio_end_time"] = a_start, a_end
    return out


def speaker_options(mode: str, x: float = 0, y: float = 0, frame_number: int = 0,
                    boxes: str = "") -> dict[str, Any]:
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


def tts_options(provider: str = "elevenlabs", stability: float = -1.0,
                similarity_boost: float = -1.0) -> dict[str, Any]:
    """The ``RunwareSync3TTS`` node's value (``settings.tts``); -1 = provider default."""
    check_node_inputs("RunwareSync3TTS", provider=provider, stability=stability,
                      similarity_boost=similarity_boost)
    options: dict[str, Any] = {"provider": (provider or "").strip() or "elevenlabs"}
    if stability >= 0:
        options["stability"] = round(float(stability), 2)
    if similarity_boost >= 0:
        options["similarityBoost"] = round(float(similarity_boost), 2)
    return options
