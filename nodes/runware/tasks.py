"""Node inputs -> a validated ``videoInference`` task, before anything is uploaded or paid.

A :class:`PreparedJob` holds the task with placeholder UUIDs where uploads go, and the
uploads to make. It is checked against the model's spec (the project's copy) with every
violation reported under the **node input** the user can change, not only the API field.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from .errors import ValidationError
from .options import (
    AcceleratorOptions,
    DeliveryOptions,
    SpeakerOptions,
    TTSOptions,
    check_node_inputs,
    on_time_grid,
)
from .ovi_prompt import check_prompt
from .spec import (
    OVI_MODEL,
    SYNC3_MODEL,
    MediaFacts,
    SpecViolation,
    check_media,
    validate_task,
)

SAFETY_MODES = ("off", "fast", "full")
OUTPUT_FORMATS = ("MP4", "WEBM", "MOV")
EXTENSIONS = {"MP4": "mp4", "WEBM": "webm", "MOV": "mov"}
# The length of an Ovi clip (the model has no duration parameter).
OVI_CLIP_SECONDS = 5.0

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


# -- the tasks, as sent ------------------------------------------------------------------


class Safety(TypedDict):
    checkContent: bool
    mode: str


class VideoTask(TypedDict, total=False):
    """The fields every ``videoInference`` task of the pack has (delivery ones if set)."""

    taskType: str
    taskUUID: str
    model: str
    deliveryMethod: str
    outputType: str
    includeCost: bool
    numberResults: int
    outputFormat: str
    outputQuality: int
    safety: Safety
    webhookURL: str
    uploadEndpoint: str
    ttl: int


class OviAdvanced(TypedDict, total=False):
    videoCFGScale: float
    audioCFGScale: float
    videoNegativePrompt: str
    audioNegativePrompt: str
    slgLayer: int


class OviInputs(TypedDict):
    image: str


class OviTask(VideoTask, total=False):
    positivePrompt: str
    seed: int
    steps: int
    fps: int
    advancedFeatures: OviAdvanced
    acceleratorOptions: AcceleratorOptions
    inputs: OviInputs  # only image-to-video: text-to-video leaves ``inputs`` out


class Sync3Inputs(TypedDict, total=False):
    video: str
    audio: str


class Speech(TypedDict):
    text: str
    voice: str


class SegmentItem(TypedDict, total=False):
    startTime: float
    endTime: float
    audio: str
    audioStartTime: float
    audioEndTime: float


class Sync3Settings(TypedDict, total=False):
    syncMode: str
    segments: list[SegmentItem]
    activeSpeakerDetection: SpeakerOptions
    tts: TTSOptions


class Sync3Task(VideoTask, total=False):
    inputs: Sync3Inputs
    speech: Speech
    settings: Sync3Settings


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
    task: OviTask | Sync3Task
    uploads: list[Upload] = field(default_factory=list)
    # Seconds of the input video (sync-3): what its price scales with (see spend.py).
    video_seconds: float | None = None

    @property
    def result_seconds(self) -> float | None:
        """How long a result video of this job is: Ovi's clip, sync-3's input video (every
        sync mode fits the audio to it); None when unknown. Bounds the download's size."""
        if self.model == OVI_MODEL:
            return OVI_CLIP_SECONDS
        return self.video_seconds

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
    task: VideoTask, *, number_results: int, output_format: str, output_quality: int,
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


# -- Ovi -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OviRequest:
    """The ``RunwareOvi`` node's inputs, as the core takes them (the image as PNG bytes).

    The names are the node's input names; their defaults live in the node's input table
    (nodes/ovi.py), which builds this from the node's values.
    """

    prompt: str
    seed: int
    steps: int
    fps: int
    video_cfg_scale: float
    audio_cfg_scale: float
    video_negative_prompt: str
    audio_negative_prompt: str
    slg_layer: int
    number_results: int
    output_format: str
    output_quality: int
    safety: str
    image_png: bytes | None = None
    accelerator: AcceleratorOptions | None = None
    delivery: DeliveryOptions | None = None


def prepare_ovi(request: OviRequest, *, task_uuid: str | None = None) -> PreparedJob:
    """Build and check an Ovi task. Raises ValidationError naming the node input."""
    r = request
    check_node_inputs("RunwareOvi", prompt=r.prompt, video_cfg_scale=r.video_cfg_scale,
                      audio_cfg_scale=r.audio_cfg_scale,
                      video_negative_prompt=r.video_negative_prompt,
                      audio_negative_prompt=r.audio_negative_prompt)
    check_prompt(r.prompt, input_name="prompt")
    advanced: OviAdvanced = {
        "videoCFGScale": float(r.video_cfg_scale),
        "audioCFGScale": float(r.audio_cfg_scale),
    }
    if r.video_negative_prompt and r.video_negative_prompt.strip():
        advanced["videoNegativePrompt"] = r.video_negative_prompt.strip()
    if r.audio_negative_prompt and r.audio_negative_prompt.strip():
        advanced["audioNegativePrompt"] = r.audio_negative_prompt.strip()
    if int(r.slg_layer) != -1:
        advanced["slgLayer"] = int(r.slg_layer)
    task: OviTask = {
        "taskType": "videoInference",
        "taskUUID": task_uuid or str(uuid.uuid4()),
        "model": OVI_MODEL,
        "positivePrompt": r.prompt,
        "seed": int(r.seed),
        "steps": int(r.steps),
        "fps": int(r.fps),
        "advancedFeatures": advanced,
        "deliveryMethod": "async",
        "outputType": "URL",
        "includeCost": True,
    }
    apply_output_options(task, number_results=r.number_results, output_format=r.output_format,
                         output_quality=r.output_quality, safety=r.safety)
    if r.accelerator:
        task["acceleratorOptions"] = AcceleratorOptions(**r.accelerator)
    if r.delivery:
        task.update(r.delivery)
    uploads: list[Upload] = []
    if r.image_png is not None:
        placeholder = PLACEHOLDER.format(1)
        # Without an image the request is text-to-video and `inputs` is left out (see the
        # Ovi discrepancy in the protocol notes).
        task["inputs"] = {"image": placeholder}
        uploads.append(Upload("image", placeholder, r.image_png, "image/png", "imageUpload"))
    violations = validate_task(task)
    if not violations:  # the same media rules the double applies (an image is an image)
        violations = check_media(task, {PLACEHOLDER.format(1): MediaFacts(kind="image")}.get)
    raise_for_violations(violations, {**OVI_FIELDS, **DELIVERY_FIELDS}, "RunwareOvi")
    return PreparedJob(OVI_MODEL, task, uploads)


# -- sync-3 ----------------------------------------------------------------------------

SYNC_MODES = ("cut_off", "bounce", "silence", "remap")

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


def _segment_items(segments: list[Segment]) -> list[SegmentItem]:
    """The API's ``settings.segments``: times on the spec's 0.01 s grid."""
    out: list[SegmentItem] = []
    for i, seg in enumerate(segments, start=1):
        item: SegmentItem = {"startTime": on_time_grid(seg.start_time),
                             "endTime": on_time_grid(seg.end_time),
                             "audio": PLACEHOLDER.format(100 + i)}
        if seg.audio_start_time is not None:
            item["audioStartTime"] = on_time_grid(seg.audio_start_time)
        if seg.audio_end_time is not None:
            item["audioEndTime"] = on_time_grid(seg.audio_end_time)
        out.append(item)
    return out


def video_media_facts(video: VideoFacts) -> MediaFacts:
    """What the spec's media rules need from the input video (see spec.check_media)."""
    return MediaFacts(kind="video", width=video.width, height=video.height,
                      frame_count=video.frame_count or None, fps=video.fps or None,
                      duration=video.duration, has_audio=False)


@dataclass(frozen=True)
class Sync3Request:
    """The ``RunwareSync3`` node's inputs, as the core takes them: the video and audio
    already converted to files (with what the video reveals), the helper nodes' values.

    The widget names are the node's input names; their defaults live in the node's input
    table (nodes/sync3.py).
    """

    video_source: bytes | Path
    video_mime: str
    video: VideoFacts
    sync_mode: str
    speech_text: str
    voice: str
    number_results: int
    output_format: str
    output_quality: int
    safety: str
    audio_source: bytes | Path | None = None
    audio_mime: str = "audio/flac"
    segments: list[Segment] | None = None
    speaker: SpeakerOptions | None = None
    tts: TTSOptions | None = None
    delivery: DeliveryOptions | None = None


def prepare_sync3(request: Sync3Request, *, task_uuid: str | None = None) -> PreparedJob:
    """Build and check a sync-3 task from converted media and what it reveals.

    The boundary rules (segment ends, speaker point, frame number, boxes) are the spec
    module's ``check_media``, the same code the local double runs on the uploaded files.
    """
    r = request
    check_node_inputs("RunwareSync3", speech_text=r.speech_text, voice=r.voice)
    speech_text = (r.speech_text or "").strip()
    check_sync3_sources(video=True, images=False, audio=r.audio_source is not None,
                        speech_text=bool(speech_text), segments=bool(r.segments),
                        tts=bool(r.tts))
    if r.sync_mode not in SYNC_MODES:
        raise ValidationError(
            f"sync_mode must be one of {', '.join(SYNC_MODES)}, got {r.sync_mode!r}",
            parameter="sync_mode",
        )
    settings: Sync3Settings = {"syncMode": r.sync_mode}
    inputs: Sync3Inputs = {"video": PLACEHOLDER.format(1)}
    task: Sync3Task = {
        "taskType": "videoInference",
        "taskUUID": task_uuid or str(uuid.uuid4()),
        "model": SYNC3_MODEL,
        "inputs": inputs,
        "deliveryMethod": "async",
        "outputType": "URL",
        "includeCost": True,
    }
    facts: dict[str, MediaFacts] = {PLACEHOLDER.format(1): video_media_facts(r.video)}
    uploads = [Upload("video", PLACEHOLDER.format(1), r.video_source, r.video_mime,
                      "mediaStorage")]
    if r.audio_source is not None:
        inputs["audio"] = PLACEHOLDER.format(2)
        facts[PLACEHOLDER.format(2)] = MediaFacts(kind="audio")
        uploads.append(Upload("audio", PLACEHOLDER.format(2), r.audio_source, r.audio_mime,
                              "mediaStorage"))
    if speech_text:
        task["speech"] = {"text": speech_text, "voice": (r.voice or "").strip() or "auto"}
    if r.segments:
        settings["segments"] = _segment_items(r.segments)
        for i, seg in enumerate(r.segments, start=1):
            placeholder = PLACEHOLDER.format(100 + i)
            facts[placeholder] = MediaFacts(kind="audio", duration=seg.audio_duration)
            uploads.append(Upload(f"segments[{i}].audio", placeholder, seg.source, seg.mime,
                                  "mediaStorage"))
    if r.speaker:
        settings["activeSpeakerDetection"] = SpeakerOptions(**r.speaker)
    if r.tts:
        settings["tts"] = TTSOptions(**r.tts)
    task["settings"] = settings
    apply_output_options(task, number_results=r.number_results, output_format=r.output_format,
                         output_quality=r.output_quality, safety=r.safety)
    if r.delivery:
        task.update(r.delivery)
    violations = validate_task(task)
    if not violations:
        violations = check_media(task, facts.get)
    raise_for_violations(violations, {**SYNC3_FIELDS, **DELIVERY_FIELDS}, "RunwareSync3")
    return PreparedJob(SYNC3_MODEL, task, uploads, video_seconds=float(r.video.duration))
