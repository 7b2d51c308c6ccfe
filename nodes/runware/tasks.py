"""Node inputs -> a validated ``videoInference`` task, before anything is uploaded or paid.

A :class:`PreparedJob` holds the task with placeholder UUIDs where uploads go, and the
uploads to make. It is checked against the model's spec (the project's copy) with every
violation reported under the **node input** the user can change, not only the API field.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ValidationError
from .ovi_prompt import check_prompt
from .spec import OVI_MODEL, SYNC3_MODEL, SpecViolation, validate_task

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
    """The ``RunwareDelivery`` node's value: only what the user set is sent."""
    options: dict[str, Any] = {}
    if webhook_url and webhook_url.strip():
        options["webhookURL"] = webhook_url.strip()
    if upload_endpoint and upload_endpoint.strip():
        options["uploadEndpoint"] = upload_endpoint.strip()
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
    raise_for_violations(validate_task(task), {**OVI_FIELDS, **DELIVERY_FIELDS}, "RunwareOvi")
    return PreparedJob(OVI_MODEL, task, uploads)


# -- sync-3 ----------------------------------------------------------------------------

SYNC_MODES = ("cut_off", "bounce", "silence", "remap")
SPEAKER_MODES = ("auto", "point", "boxes")
TIME_TOLERANCE = 0.01  # seconds: the spec's time resolution

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


def _check_segments(segments: list[Segment], video: VideoFacts) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, seg in enumerate(segments, start=1):
        name = f"segments[{i}]"
        start, end = _seconds(seg.start_time), _seconds(seg.end_time)
        if end <= start:
            raise ValidationError(
                f"{name}: end_time {end} s must be after start_time {start} s",
                parameter="segments", hint="Fix the times on that Runware sync-3 Segment node.",
            )
        if end > video.duration + TIME_TOLERANCE:
            raise ValidationError(
                f"{name}: end_time {end} s is past the end of the video ({video.duration:.2f} s)",
                parameter="segments", hint=f"Use an end_time of at most {video.duration:.2f}.",
            )
        item: dict[str, Any] = {"startTime": start, "endTime": end,
                                "audio": PLACEHOLDER.format(100 + i)}
        given = (seg.audio_start_time is not None, seg.audio_end_time is not None)
        if given[0] != given[1]:
            raise ValidationError(
                f"{name}: audio_start_time and audio_end_time go together",
                parameter="segments", hint="Set both (a range in the segment's audio) or neither.",
            )
        if seg.audio_start_time is not None and seg.audio_end_time is not None:
            a_start, a_end = _seconds(seg.audio_start_time), _seconds(seg.audio_end_time)
            if a_end <= a_start:
                raise ValidationError(
                    f"{name}: audio_end_time {a_end} s must be after audio_start_time "
                    f"{a_start} s", parameter="segments",
                )
            if a_end > seg.audio_duration + TIME_TOLERANCE:
                raise ValidationError(
                    f"{name}: audio_end_time {a_end} s is past the end of its audio "
                    f"({seg.audio_duration:.2f} s)", parameter="segments",
                    hint=f"Use an audio_end_time of at most {seg.audio_duration:.2f}.",
                )
            item["audioStartTime"], item["audioEndTime"] = a_start, a_end
        out.append(item)
    ordered = sorted(out, key=lambda s: s["startTime"])
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after["startTime"] < before["endTime"] - 1e-9:
            raise ValidationError(
                f"segments overlap: {before['startTime']}-{before['endTime']} s and "
                f"{after['startTime']}-{after['endTime']} s", parameter="segments",
                hint="Make each segment end before the next one starts.",
            )
    return out


def _check_speaker(speaker: Mapping[str, Any], video: VideoFacts) -> dict[str, Any]:
    detection = dict(speaker)
    if "coordinates" in detection:
        x, y = detection["coordinates"]
        if not (0 <= x <= video.width and 0 <= y <= video.height):
            raise ValidationError(
                f"speaker point ({x}, {y}) is outside the {video.width}x{video.height} frame",
                parameter="speaker.x/y",
                hint=f"Use 0 <= x <= {video.width} and 0 <= y <= {video.height}.",
            )
        frame = int(detection.get("frameNumber", 0))
        if video.frame_count and frame >= video.frame_count:
            raise ValidationError(
                f"speaker frame_number {frame} is past the video's last frame "
                f"({video.frame_count} frames)", parameter="speaker.frame_number",
                hint=f"Use a frame_number below {video.frame_count}.",
            )
    if "boundingBoxes" in detection:
        boxes = detection["boundingBoxes"]
        if video.frame_count and len(boxes) != video.frame_count:
            raise ValidationError(
                f"speaker boxes: {len(boxes)} boxes for a video of {video.frame_count} frames",
                parameter="speaker.boxes", hint="Give exactly one [x1, y1, x2, y2] per frame.",
            )
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            if not (0 <= x1 < x2 <= video.width and 0 <= y1 < y2 <= video.height):
                raise ValidationError(
                    f"speaker boxes: box {i} {[x1, y1, x2, y2]} is empty or outside the "
                    f"{video.width}x{video.height} frame", parameter="speaker.boxes",
                    hint="Each box needs x1 < x2 <= width and y1 < y2 <= height.",
                )
    return detection


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
    """Build and check a sync-3 task from converted media and what it reveals."""
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
    uploads = [Upload("video", PLACEHOLDER.format(1), video_source, video_mime, "mediaStorage")]
    if audio_source is not None:
        task["inputs"]["audio"] = PLACEHOLDER.format(2)
        uploads.append(Upload("audio", PLACEHOLDER.format(2), audio_source, audio_mime,
                              "mediaStorage"))
    if speech_text:
        task["speech"] = {"text": speech_text, "voice": (voice or "").strip() or "auto"}
    if segments:
        settings["segments"] = _check_segments(segments, video)
        for i, seg in enumerate(segments, start=1):
            uploads.append(Upload(f"segments[{i}].audio", PLACEHOLDER.format(100 + i),
                                  seg.source, seg.mime, "mediaStorage"))
    if speaker:
        settings["activeSpeakerDetection"] = _check_speaker(speaker, video)
    if tts:
        settings["tts"] = dict(tts)
    task["settings"] = settings
    apply_output_options(task, number_results=number_results, output_format=output_format,
                         output_quality=output_quality, safety=safety)
    if delivery:
        task.update(delivery)
    raise_for_violations(validate_task(task), {**SYNC3_FIELDS, **DELIVERY_FIELDS},
                         "RunwareSync3")
    return PreparedJob(SYNC3_MODEL, task, uploads)


def speaker_options(mode: str, x: float = 0, y: float = 0, frame_number: int = 0,
                    boxes: str = "") -> dict[str, Any]:
    """The ``RunwareSync3Speaker`` node's value (``settings.activeSpeakerDetection``)."""
    if mode == "auto":
        return {"autoDetect": True}
    if mode == "point":
        return {"coordinates": [float(x), float(y)], "frameNumber": int(frame_number)}
    if mode == "boxes":
        try:
            parsed = json.loads(boxes or "")
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"speaker boxes is not valid JSON ({exc.msg} at character {exc.pos})",
                parameter="boxes",
                hint="Write a JSON list with one [x1, y1, x2, y2] per frame, e.g. "
                "[[10, 20, 110, 140], [12, 20, 112, 140]].",
            ) from None
        if not isinstance(parsed, list) or not parsed or not all(
            isinstance(b, list) and len(b) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)
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


def tts_options(provider: str = "elevenlabs", stability: float = -1.0,
                similarity_boost: float = -1.0) -> dict[str, Any]:
    """The ``RunwareSync3TTS`` node's value (``settings.tts``); -1 = provider default."""
    options: dict[str, Any] = {"provider": (provider or "").strip() or "elevenlabs"}
    if stability >= 0:
        options["stability"] = round(float(stability), 2)
    if similarity_boost >= 0:
        options["similarityBoost"] = round(float(similarity_boost), 2)
    return options
