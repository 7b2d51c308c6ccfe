"""sync-3 nodes: lip-sync a video to an audio track, to text-to-speech, or to segments."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from . import host
from .common import (
    CATEGORY,
    DELIVERY_INPUT,
    FLOAT,
    HIDDEN,
    INT,
    MODEL_OUTPUT_IS_LIST,
    MODEL_OUTPUT_NAMES,
    MODEL_OUTPUT_TOOLTIPS,
    MODEL_OUTPUTS,
    REUSE_INPUT,
    STRING,
    is_changed,
    output_inputs,
    run_job,
)
from .runware.encode import audio_seconds, audio_upload_file
from .runware.errors import ValidationError
from .runware.media import is_audio
from .runware.tasks import (
    SPEAKER_MODES,
    SYNC_MODES,
    Segment,
    check_node_inputs,
    check_sync3_sources,
    prepare_sync3,
    segment_options,
    speaker_options,
    tts_options,
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


class RunwareSync3:
    DESCRIPTION = (
        "Runware sync-3 (sync:lipsync@3): lip-syncs the people in a video to a new voice "
        "while keeping the speaker's style. Video: connect video (a VIDEO, e.g. from Load "
        "Video or Runware Ovi) or images + fps. Voice: exactly one of audio, speech_text "
        "(text-to-speech) or segments (timed audio pieces). Each run is a paid Runware job. "
        "Needs RUNWARE_API_KEY."
    )
    CATEGORY = CATEGORY
    FUNCTION = "lipsync"
    RETURN_TYPES = MODEL_OUTPUTS
    RETURN_NAMES = MODEL_OUTPUT_NAMES
    OUTPUT_TOOLTIPS = MODEL_OUTPUT_TOOLTIPS
    OUTPUT_IS_LIST = MODEL_OUTPUT_IS_LIST
    IS_CHANGED = classmethod(is_changed)

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "sync_mode": (list(SYNC_MODES), {"default": "cut_off",
                                                 "tooltip": SYNC_MODE_TOOLTIP}),
            },
            "optional": {
                "video": ("VIDEO", {
                    "tooltip": "inputs.video: the video to lip-sync (uploaded as it is). Use "
                               "this or images, not both."
                }),
                "images": ("IMAGE", {
                    "tooltip": "Frames to lip-sync instead of a VIDEO (encoded to MP4 at fps "
                               "and uploaded)."
                }),
                "fps": FLOAT(24.0, 0.01, 120.0, 0.01,
                             "Frame rate of images (only used with images)."),
                "audio": ("AUDIO", {
                    "tooltip": "inputs.audio: the new voice track (uploaded losslessly)."
                }),
                "speech_text": STRING("speech.text: text to speak with text-to-speech "
                                      "(1-5000 characters; empty = not used).",
                                      multiline=True),
                "voice": STRING("speech.voice: voice id for speech_text; auto picks one "
                                "that suits the speaker.", default="auto"),
                "segments": (SEGMENTS_TYPE, {
                    "tooltip": "settings.segments: timed audio pieces from Runware sync-3 "
                               "Segment nodes."
                }),
                "speaker": (SPEAKER_TYPE, {
                    "tooltip": "settings.activeSpeakerDetection: who to lip-sync in a "
                               "multi-person clip, from a Runware sync-3 Speaker node."
                }),
                "tts": (TTS_TYPE, {
                    "tooltip": "settings.tts: text-to-speech provider settings from a "
                               "Runware sync-3 TTS node (only with speech_text)."
                }),
                **output_inputs(20),
                "delivery": DELIVERY_INPUT,
                "reuse_cached_result": REUSE_INPUT,
            },
            "hidden": HIDDEN,
        }

    async def lipsync(
        self,
        sync_mode: str,
        video: Any = None,
        images: Any = None,
        fps: float = 24.0,
        audio: dict | None = None,
        speech_text: str = "",
        voice: str = "auto",
        segments: list[dict] | None = None,
        speaker: dict | None = None,
        tts: dict | None = None,
        number_results: int = 1,
        output_format: str = "MP4",
        output_quality: int = 95,
        safety: str = "off",
        delivery: dict | None = None,
        reuse_cached_result: bool = True,
        unique_id: str | None = None,
        graph: dict | None = None,
    ) -> dict[str, Any]:
        check_node_inputs("RunwareSync3", fps=fps, speech_text=speech_text, voice=voice)
        check_sync3_sources(
            video=video is not None, images=images is not None, audio=audio is not None,
            speech_text=bool((speech_text or "").strip()), segments=bool(segments),
            tts=bool(tts),
        )
        work = host.temp_directory() / "runware"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            tmp_dir = Path(tmp)
            video_source, video_mime, facts = sync3_video_upload(video, images, fps, tmp_dir)
            audio_source = None
            if audio is not None:
                audio_source, _ = audio_upload_file(audio, tmp_dir, input_name="audio")
            job = prepare_sync3(
                video_source=video_source, video_mime=video_mime, video=facts,
                sync_mode=sync_mode, audio_source=audio_source, speech_text=speech_text,
                voice=voice, segments=_segments(segments, tmp_dir), speaker=speaker, tts=tts,
                number_results=number_results, output_format=output_format,
                output_quality=output_quality, safety=safety, delivery=delivery,
            )
            return await run_job(job, node_id=unique_id, label="sync-3", graph=graph,
                             reuse=reuse_cached_result)


def _segments(segments: list[dict] | None, tmp_dir: Path) -> list[Segment] | None:
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


class RunwareSync3Segment:
    DESCRIPTION = (
        "One timed piece of audio for Runware sync-3: the audio is lip-synced between "
        "start_time and end_time of the video. Chain several through the segments input."
    )
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = (SEGMENTS_TYPE,)
    RETURN_NAMES = ("segments",)
    OUTPUT_TOOLTIPS = ("The segments so far; connect to sync-3's segments or to another "
                       "Segment node.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "audio": ("AUDIO", {"tooltip": "segments[].audio: the audio for this "
                                               "segment (uploaded)."}),
                "start_time": FLOAT(0.0, 0.0, 36000.0, 0.01,
                                    "startTime: where the segment starts in the video (s)."),
                "end_time": FLOAT(1.0, 0.01, 36000.0, 0.01,
                                  "endTime: where the segment ends in the video (s); after "
                                  "start_time."),
            },
            "optional": {
                "audio_start_time": FLOAT(-1.0, -1.0, 36000.0, 0.01,
                                          "audioStartTime: where to start in the audio (s); "
                                          "-1 = not sent. Set together with audio_end_time."),
                "audio_end_time": FLOAT(-1.0, -1.0, 36000.0, 0.01,
                                        "audioEndTime: where to stop in the audio (s); -1 = "
                                        "not sent. Set together with audio_start_time."),
                "segments": (SEGMENTS_TYPE, {"tooltip": "Earlier segments to add this one "
                                                        "to."}),
            },
        }

    def build(self, audio: dict, start_time: float, end_time: float,
              audio_start_time: float = -1.0, audio_end_time: float = -1.0,
              segments: list[dict] | None = None) -> tuple[list[dict]]:
        if not is_audio(audio):
            raise ValidationError(
                f"audio must be an AUDIO value (waveform + sample_rate), got "
                f"{type(audio).__name__}", parameter="audio",
                hint="Connect an AUDIO output (e.g. Load Audio) to audio.")
        segment = {"audio": audio, **segment_options(start_time, end_time, audio_start_time,
                                                     audio_end_time)}
        return ([*(segments or []), segment],)


class RunwareSync3Speaker:
    DESCRIPTION = (
        "Which face Runware sync-3 should lip-sync in a multi-person clip: auto-detect the "
        "active speaker, a point on the face in one frame, or a box per frame."
    )
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = (SPEAKER_TYPE,)
    RETURN_NAMES = ("speaker",)
    OUTPUT_TOOLTIPS = ("Connect to sync-3's speaker input.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "mode": (list(SPEAKER_MODES), {
                    "default": "auto",
                    "tooltip": "auto: detect the active speaker (autoDetect). point: x, y on "
                               "the face in frame_number (coordinates + frameNumber). boxes: "
                               "one [x1, y1, x2, y2] per frame (boundingBoxes).",
                }),
                "x": FLOAT(0.0, 0.0, 16384.0, 1.0, "point mode: x in pixels of a point on the "
                                                   "speaker's face."),
                "y": FLOAT(0.0, 0.0, 16384.0, 1.0, "point mode: y in pixels of a point on the "
                                                   "speaker's face."),
                "frame_number": INT(0, 0, 1_000_000, "point mode: the frame (0 = first) the "
                                                     "point refers to."),
                "boxes": STRING("boxes mode: JSON list, one [x1, y1, x2, y2] per frame of the "
                                "video, in pixels.", multiline=True),
            }
        }

    def build(self, mode: str, x: float, y: float, frame_number: int,
              boxes: str) -> tuple[dict]:
        return (speaker_options(mode, x, y, frame_number, boxes),)


class RunwareSync3TTS:
    DESCRIPTION = "Text-to-speech settings for Runware sync-3's speech_text (settings.tts)."
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = (TTS_TYPE,)
    RETURN_NAMES = ("tts",)
    OUTPUT_TOOLTIPS = ("Connect to sync-3's tts input.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "provider": STRING("provider: the text-to-speech provider.",
                                   default="elevenlabs"),
                "stability": FLOAT(-1.0, -1.0, 1.0, 0.01,
                                   "stability: higher = more consistent voice; -1 = the "
                                   "provider's default."),
                "similarity_boost": FLOAT(-1.0, -1.0, 1.0, 0.01,
                                          "similarityBoost: higher = closer to the target "
                                          "voice; -1 = the provider's default."),
            }
        }

    def build(self, provider: str, stability: float, similarity_boost: float) -> tuple[dict]:
        return (tts_options(provider, stability, similarity_boost),)
