"""What encoding and decoding share: the media errors, mime types, container sniffing,
channel layouts and how an AUDIO value is recognised.

The media code of the core is split by direction: ``encode`` (node inputs -> files Runware
takes) and ``decode`` (files -> IMAGE / AUDIO tensors); ``video_input`` checks and
converts video files given as inputs. None of it knows ComfyUI: it takes and returns
paths, bytes, tensors and plain AUDIO dicts (the node layer's ``video_io`` turns a VIDEO
into those and back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import av

from .errors import RunwareError, ValidationError

VIDEO_MIME = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
# FFmpeg's default layout for a channel count (what a WAV without a channel mask means)
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1",
                   7: "6.1", 8: "7.1"}


class MediaError(ValidationError):
    """Bad media on a node input: the error names the input and how to fix it. (The
    decoder raises it for any file that does not read; a paid result that does not decode
    is reported as a :class:`ResultDecodeError` instead.)"""


class ResultDecodeError(RunwareError):
    """A paid result that does not decode: not a parameter to fix (so no ValidationError).
    The message says where the paid file is kept (it is never deleted for this)."""


class NotEnoughMemoryError(MediaError):
    """Decoding frames would need more memory than the machine has available."""


def is_audio(value: Any, input_name: str | None = None) -> bool:
    """True for an AUDIO value: any mapping with ``waveform`` and ``sample_rate``.

    ComfyUI's own AUDIO is a dict; VideoHelperSuite's Load Video hands out a lazy
    ``Mapping`` that decodes on first access. Both are accepted (as ComfyUI's SaveAudio does).
    With ``input_name`` (an AUDIO input being checked) a lazy mapping is loaded here, and
    one that cannot load its audio raises a :class:`MediaError` naming the input: it *is*
    connected, so "connect an AUDIO output" would be the wrong advice.
    """
    if not (isinstance(value, Mapping)
            or (hasattr(value, "keys") and hasattr(value, "__getitem__"))):
        return False
    try:
        keys = set(value.keys())
        if input_name is not None and {"waveform", "sample_rate"} <= keys:
            value["waveform"], value["sample_rate"]  # noqa: B018 - a lazy mapping loads here
    except Exception as exc:  # a lazy mapping that cannot load its audio
        if input_name is None:
            return False
        raise unreadable_audio(input_name, exc) from exc
    return {"waveform", "sample_rate"} <= keys


def unreadable_audio(input_name: str, exc: BaseException) -> MediaError:
    """The AUDIO connected to ``input_name`` failed to load (e.g. VideoHelperSuite's Load
    Video on a clip without sound raises "VHS failed to extract audio")."""
    reason = (str(exc).strip().splitlines() or [""])[0][:160]
    reason = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return MediaError(
        f"{input_name}: the connected AUDIO could not be read ({reason}). Its loader "
        "failed to load the sound, most often because the video it comes from has no "
        "audio track (or one it cannot decode); nothing was uploaded",
        parameter=input_name,
        hint=f"Check that the file plays with sound, or connect the sound of a file that "
             f"has it (e.g. Load Audio) to {input_name}.",
    )


def audio_layout(channels: int) -> av.AudioLayout:
    return av.AudioLayout({1: "mono", 2: "stereo"}.get(channels) or
                          DEFAULT_LAYOUTS.get(channels, "stereo"))


# -- container sniffing ----------------------------------------------------------------


def sniff_container(head: bytes) -> str | None:
    """"mp4" / "mov" / "webm" / "mkv" from a file's first bytes, or None."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in head[:64] else "mkv"
    return None
