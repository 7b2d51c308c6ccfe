"""sync-3 nodes: lip-sync a video to an audio track, to text-to-speech, or to segments."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from . import host
from .inputs import (
    DELIVERY_INPUT,
    HIDDEN,
    REUSE_INPUT,
    Inputs,
    TableNode,
    combo_input,
    float_input,
    int_input,
    output_inputs,
    socket_input,
    string_input,
)
from .run import (
    ModelNode,
    run_job,
)
from .runware.encode import audio_seconds, audio_upload_file
from .runware.errors import ValidationError
from .runware.media import is_audio
from .runware.options import (
    SPEAKER_MODES,
    SegmentValue,
    SpeakerOptions,
    TTSOptions,
    check_node_inputs,
    segment_options,
    speaker_options,
    tts_options,
)
from .runware.tasks import (
    SYNC_MODES,
    Segment,
    Sync3Request,
    check_sync3_sources,
    prepare_sync3,
)
from .video_io import sync3_video_upload

SEGMENTS_TYPE = "RUNWARE_SEGMENTS"
SPEAKER_TYPE = "RUNWARE_SPEAKER"
TTS_TYPE = "RUNWARE_TTS"

SYNC_MODE_TOOLTIP = (
    "settings.syncMode: what happens when the audio and the video differ in length. "
    "cut_off: the audio stops when the video ends (a shorter audio leaves the rest silent). "
    "bounce: the video plays forward then backward to fit a longer audio. "
    "silence: the video keeps playing with silence after the audio ends. "
    "remap: the timing is stretched or squeezed so audio and video end together."
)

INPUTS = Inputs(
    combo_input("sync_mode", SYNC_MODES, "cut_off", SYNC_MODE_TOOLTIP, api="settings.syncMode"),
    socket_input("video", "VIDEO", "inputs.video: the video to lip-sync (uploaded as it is). "
                 "Use this or images, not both.", api="inputs.video", optional=True),
    socket_input("images", "IMAGE", "Frames to lip-sync instead of a VIDEO (encoded to MP4 at "
                 "fps and uploaded).", api="inputs.video", optional=True),
    float_input("fps", 24.0, 0.01, 120.0, 0.01, "Frame rate of images (only used with "
                "images).", optional=True),
    socket_input("audio", "AUDIO", "inputs.audio: the new voice track (uploaded losslessly).",
                 api="inputs.audio", optional=True),
    string_input("speech_text", "speech.text: text to speak with text-to-speech (1-5000 "
                 "characters; empty = not used).", multiline=True, api="speech.text",
                 optional=True),
    string_input("voice", "speech.voice: voice id for speech_text; auto picks one that suits "
                 "the speaker.", default="auto", api="speech.voice", optional=True),
    socket_input("segments", SEGMENTS_TYPE, "settings.segments: timed audio pieces from "
                 "Runware sync-3 Segment nodes.", api="settings.segments", optional=True),
    socket_input("speaker", SPEAKER_TYPE, "settings.activeSpeakerDetection: who to lip-sync "
                 "in a multi-person clip, from a Runware sync-3 Speaker node.",
                 api="settings.activeSpeakerDetection", optional=True),
    socket_input("tts", TTS_TYPE, "settings.tts: text-to-speech provider settings from a "
                 "Runware sync-3 TTS node (only with speech_text).", api="settings.tts",
                 optional=True),
    *output_inputs(20),
    DELIVERY_INPUT,
    REUSE_INPUT,
    hidden=HIDDEN,
)


class RunwareSync3(ModelNode):
    DESCRIPTION = (
        "Runware sync-3 (sync:lipsync@3): lip-syncs the people in a video to a new voice "
        "while keeping the speaker's style. Video: connect video (a VIDEO, e.g. from Load "
        "Video or Runware Ovi) or images + fps. Voice: exactly one of audio, speech_text "
        "(text-to-speech) or segments (timed audio pieces). Each run is a paid Runware job. "
        "Needs RUNWARE_API_KEY."
    )
    FUNCTION = "lipsync"
    INPUTS = INPUTS

    async def lipsync(self, *args: Any, unique_id: str | None = None,
                      graph: dict | None = None, **inputs: Any) -> dict[str, Any]:
        v = INPUTS.values(inputs, args)
        # Checked here too (prepare_sync3 checks again for other callers): before any
        # conversion of the media, which can take long.
        check_node_inputs("RunwareSync3", fps=v["fps"], speech_text=v["speech_text"],
                          voice=v["voice"])
        check_sync3_sources(
            video=v["video"] is not None, images=v["images"] is not None,
            audio=v["audio"] is not None, speech_text=bool((v["speech_text"] or "").strip()),
            segments=bool(v["segments"]), tts=bool(v["tts"]),
        )
        work = host.temp_directory() / "runware"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            job = prepare_sync3(sync3_request(v, Path(tmp)))
            return await run_job(job, node_id=unique_id, label="sync-3", graph=graph,
                                 reuse=v["reuse_cached_result"])


def sync3_request(values: dict[str, Any], tmp_dir: Path) -> Sync3Request:
    """Runware sync-3's input values (``INPUTS.values``) -> the request the core takes: the
    video, audio and segment audio converted to upload files in ``tmp_dir``."""
    video_source, video_mime, facts = sync3_video_upload(values["video"], values["images"],
                                                         values["fps"], tmp_dir)
    fields = dict(values)
    for name in ("video", "images", "fps", "audio", "segments", "reuse_cached_result"):
        fields.pop(name)  # converted here, or the runner's (reuse), not the request's
    audio_source = None
    if values["audio"] is not None:
        audio_source, _ = audio_upload_file(values["audio"], tmp_dir, input_name="audio")
    return Sync3Request(**fields, video_source=video_source, video_mime=video_mime,
                        video=facts, audio_source=audio_source,
                        segments=_segments(values["segments"], tmp_dir))


def _segments(segments: list[SegmentValue] | None, tmp_dir: Path) -> list[Segment] | None:
    if not segments:
        return None
    out = []
    for i, seg in enumerate(segments, start=1):
        path, mime = audio_upload_file(seg["audio"], tmp_dir,
                                       input_name=f"segments[{i}].audio",
                                       name=f"segment{i}")
        out.append(Segment(
            source=path, mime=mime,
            audio_duration=audio_seconds(seg["audio"], f"segments[{i}].audio"),
            start_time=seg["start_time"], end_time=seg["end_time"],
            audio_start_time=seg.get("audio_start_time"),
            audio_end_time=seg.get("audio_end_time"),
        ))
    return out


SEGMENT_INPUTS = Inputs(
    socket_input("audio", "AUDIO", "segments[].audio: the audio for this segment (uploaded).",
                 api="segments[].audio"),
    float_input("start_time", 0.0, 0.0, 36000.0, 0.01, "startTime: where the segment starts "
                "in the video (s).", api="startTime"),
    float_input("end_time", 1.0, 0.01, 36000.0, 0.01, "endTime: where the segment ends in "
                "the video (s); after start_time.", api="endTime"),
    float_input("audio_start_time", -1.0, -1.0, 36000.0, 0.01, "audioStartTime: where to "
                "start in the audio (s); -1 = not sent. Set together with audio_end_time.",
                api="audioStartTime", optional=True),
    float_input("audio_end_time", -1.0, -1.0, 36000.0, 0.01, "audioEndTime: where to stop "
                "in the audio (s); -1 = not sent. Set together with audio_start_time.",
                api="audioEndTime", optional=True),
    socket_input("segments", SEGMENTS_TYPE, "Earlier segments to add this one to.",
                 optional=True),
)


class RunwareSync3Segment(TableNode):
    DESCRIPTION = (
        "One timed piece of audio for Runware sync-3: the audio is lip-synced between "
        "start_time and end_time of the video. Chain several through the segments input."
    )
    FUNCTION = "build"
    RETURN_TYPES = (SEGMENTS_TYPE,)
    RETURN_NAMES = ("segments",)
    OUTPUT_TOOLTIPS = ("The segments so far; connect to sync-3's segments or to another "
                       "Segment node.",)
    INPUTS = SEGMENT_INPUTS

    def build(self, *args: Any, **inputs: Any) -> tuple[list[SegmentValue]]:
        v = SEGMENT_INPUTS.values(inputs, args)
        audio, earlier = v.pop("audio"), v.pop("segments")
        if not is_audio(audio, "audio"):
            raise ValidationError(
                f"audio must be an AUDIO value (waveform + sample_rate), got "
                f"{type(audio).__name__}", parameter="audio",
                hint="Connect an AUDIO output (e.g. Load Audio) to audio.")
        segment: SegmentValue = {"audio": audio, **segment_options(**v)}
        return ([*(earlier or []), segment],)


SPEAKER_INPUTS = Inputs(
    combo_input("mode", SPEAKER_MODES, "auto",
                "auto: detect the active speaker (autoDetect). point: x, y on the face in "
                "frame_number (coordinates + frameNumber). boxes: one [x1, y1, x2, y2] per "
                "frame (boundingBoxes)."),
    float_input("x", 0.0, 0.0, 16384.0, 1.0, "point mode: x in pixels of a point on the "
                "speaker's face.", api="coordinates"),
    float_input("y", 0.0, 0.0, 16384.0, 1.0, "point mode: y in pixels of a point on the "
                "speaker's face.", api="coordinates"),
    int_input("frame_number", 0, 0, 1_000_000, "point mode: the frame (0 = first) the point "
              "refers to.", api="frameNumber"),
    string_input("boxes", "boxes mode: JSON list, one [x1, y1, x2, y2] per frame of the "
                 "video, in pixels.", multiline=True, api="boundingBoxes"),
)


class RunwareSync3Speaker(TableNode):
    DESCRIPTION = (
        "Which face Runware sync-3 should lip-sync in a multi-person clip: auto-detect the "
        "active speaker, a point on the face in one frame, or a box per frame."
    )
    FUNCTION = "build"
    RETURN_TYPES = (SPEAKER_TYPE,)
    RETURN_NAMES = ("speaker",)
    OUTPUT_TOOLTIPS = ("Connect to sync-3's speaker input.",)
    INPUTS = SPEAKER_INPUTS

    def build(self, *args: Any, **inputs: Any) -> tuple[SpeakerOptions]:
        return (speaker_options(**SPEAKER_INPUTS.values(inputs, args)),)


TTS_INPUTS = Inputs(
    string_input("provider", "provider: the text-to-speech provider.", default="elevenlabs",
                 api="provider"),
    float_input("stability", -1.0, -1.0, 1.0, 0.01, "stability: higher = more consistent "
                "voice; -1 = the provider's default.", api="stability"),
    float_input("similarity_boost", -1.0, -1.0, 1.0, 0.01, "similarityBoost: higher = closer "
                "to the target voice; -1 = the provider's default.", api="similarityBoost"),
)


class RunwareSync3TTS(TableNode):
    DESCRIPTION = "Text-to-speech settings for Runware sync-3's speech_text (settings.tts)."
    FUNCTION = "build"
    RETURN_TYPES = (TTS_TYPE,)
    RETURN_NAMES = ("tts",)
    OUTPUT_TOOLTIPS = ("Connect to sync-3's tts input.",)
    INPUTS = TTS_INPUTS

    def build(self, *args: Any, **inputs: Any) -> tuple[TTSOptions]:
        return (tts_options(**TTS_INPUTS.values(inputs, args)),)
