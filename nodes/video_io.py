"""ComfyUI's VIDEO values <-> the files the core works on (node layer).

- A VIDEO input becomes an upload source: its own file (or bytes) when it is backed by one
  as it is, checked and converted by the core (``runware.video_input``); otherwise its
  frames, encoded once to MP4 (``runware.encode.frames_to_mp4``).
- A downloaded result becomes the model nodes' outputs: a lazy VIDEO over the file (made
  with ComfyUI's own classes, see ``host.video_from_file``) and, only when those outputs
  are linked, IMAGE frames and AUDIO decoded by the core (``runware.decode``).

The core never sees a VIDEO object: it takes and returns paths, bytes, tensors and AUDIO
dicts.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from . import host
from .runware.decode import check_frames_fit, decode_video, probe_video
from .runware.encode import frames_to_mp4
from .runware.logs import get_logger
from .runware.media import VIDEO_MIME, MediaError
from .runware.tasks import VideoFacts
from .runware.video_input import file_upload_source

log = get_logger()


# -- what a VIDEO object is backed by ------------------------------------------------------


def _own_method(video: Any, name: str) -> Any | None:
    """``video.name`` if a concrete class defines it (not only the abstract VideoInput)."""
    owner = next((k for k in type(video).__mro__ if name in vars(k)), None)
    if owner is None or owner.__name__ == "VideoInput":
        return None
    method = getattr(video, name, None)
    return method if callable(method) else None


def _private(video: Any, suffix: str) -> Any:
    """A name-mangled attribute ``_<Class>__<suffix>`` of any class in the MRO, or None."""
    for klass in type(video).__mro__:
        attr = f"_{klass.__name__.lstrip('_')}__{suffix}"
        if hasattr(video, attr):
            return getattr(video, attr)
    return None


def video_edits(video: Any) -> str | None:
    """Why a file-backed VIDEO is not what its file holds ("trimmed", "cropped"), or None.

    Current ComfyUI says it through public methods: ``get_active_trim_window()`` (start,
    duration; (0, 0) = whole clip) and ``has_pending_frame_edits()`` (a crop or resize not
    in the stream yet). Releases that trim or crop without those methods only keep private
    attributes, read as a fallback. A check that fails counts as an edit: re-encoding is
    safe, uploading the unedited file is not.
    """
    try:
        window = _own_method(video, "get_active_trim_window")
        if window is not None:
            start, duration = window()
            if float(start) != 0.0 or float(duration) != 0.0:
                return "trimmed"
        elif _private(video, "start_time") or _private(video, "duration"):
            return "trimmed"
        pending = _own_method(video, "has_pending_frame_edits")
        if pending is not None:
            if pending():
                return "cropped"
        elif _private(video, "crop") is not None:
            return "cropped"
    except Exception:
        log.debug("could not tell whether the VIDEO is trimmed or cropped", exc_info=True)
        return "unknown edits"
    return None


def video_file_source(video: Any) -> Any | None:
    """The file path / BytesIO a VIDEO object plays from, if it is backed by one as-is.

    True for ComfyUI's ``VideoFromFile`` (and anything else that overrides
    ``get_stream_source`` rather than inheriting ``VideoInput``'s encode-to-BytesIO
    default). None for tensors in memory, and for a clip that is trimmed or cropped (see
    :func:`video_edits`): its file is not what the user sees, so the caller encodes it.
    """
    if _own_method(video, "get_stream_source") is None:
        return None
    edits = video_edits(video)
    if edits is not None:
        log.debug("the VIDEO is %s: its file is not uploaded as it is", edits)
        return None
    try:
        return video.get_stream_source()
    except Exception:
        log.debug("get_stream_source failed", exc_info=True)
        return None


def file_of(video: Any) -> Path | io.BytesIO | None:
    """A VIDEO input's file as the core takes it (a path, or the bytes it plays from), or
    None when only its frames show what the user sees."""
    if isinstance(video, (str, Path)):
        return Path(video)
    source = video_file_source(video)
    if source is None or isinstance(source, io.BytesIO):
        return source
    return Path(source)


# -- VIDEO input -> upload source ---------------------------------------------------------


def video_upload_source(
    video: Any, work_dir: Path, *, input_name: str = "video"
) -> tuple[Path | bytes, str]:
    """A ComfyUI VIDEO -> (file path or bytes, mime) for ``mediaStorage``, checked.

    A VIDEO backed by a file (or bytes) goes to the core as that file: sent as it is when
    Runware takes it, else converted (``video_input.file_upload_source``). Tensors in
    memory (VideoFromComponents, or a trimmed/cropped VIDEO whose file is not what the
    user sees) are encoded once with ``frames_to_mp4``.
    """
    if video is None:
        raise MediaError(f"{input_name} is not connected", parameter=input_name,
                              hint=f"Connect a VIDEO (e.g. Load Video) to {input_name}.")
    source = file_of(video)
    if source is not None:
        return file_upload_source(source, Path(work_dir), input_name=input_name)
    if not hasattr(video, "get_components"):
        raise MediaError(
            f"{input_name} must be a VIDEO, got {type(video).__name__}",
            parameter=input_name, hint=f"Connect a VIDEO output to {input_name}.",
        )
    return _encode_frames(video, Path(work_dir), input_name), VIDEO_MIME["mp4"]


def _encode_frames(video: Any, work_dir: Path, input_name: str) -> Path:
    """A VIDEO only its frames show (in memory, trimmed, cropped) -> one H.264 MP4."""
    work_dir.mkdir(parents=True, exist_ok=True)
    components = video.get_components()
    images: Any = getattr(components, "images", None)  # checked by frames_to_mp4
    frame_rate = getattr(components, "frame_rate", None)
    log.info("%s: encoding the video's frames to MP4", input_name)
    return frames_to_mp4(images, float(frame_rate) if frame_rate else 0.0,
                         work_dir / f"{input_name}.mp4", getattr(components, "audio", None),
                         input_name=input_name, fps_name=f"{input_name} frame rate",
                         audio_name=f"{input_name} audio")


def sync3_video_upload(video: Any, images: Any, fps: float,
                       work_dir: Path) -> tuple[Path, str, VideoFacts]:
    """sync-3's video input (a VIDEO, or IMAGE frames + fps) -> (file, mime, what it is).

    The upload is always a file: a file streams its base64, bytes would go in one piece.
    """
    if video is not None:
        source, mime = video_upload_source(video, work_dir, input_name="video")
        if isinstance(source, bytes):
            spill = work_dir / ("video." + mime.rsplit("/", 1)[-1].replace("quicktime", "mov"))
            spill.write_bytes(source)
            source = spill
    else:
        source = frames_to_mp4(images, fps, work_dir / "images.mp4", input_name="images")
        mime = "video/mp4"
    info = probe_video(source)
    facts = VideoFacts(width=info.width, height=info.height, fps=info.fps,
                       frame_count=info.frame_count, duration=info.duration)
    return source, mime, facts


# -- result file -> VIDEO / IMAGE / AUDIO --------------------------------------------------


def result_outputs(
    path: Path, *, need_images: bool, need_audio: bool
) -> tuple[Any, torch.Tensor | None, dict | None, float]:
    """A downloaded result -> (VIDEO, IMAGE or None, AUDIO or None, fps).

    The VIDEO is ComfyUI's lazy ``VideoFromFile`` over the file: it costs nothing.
    IMAGE/AUDIO are decoded only when asked for; fps comes from the file's headers either
    way. Before frames are decoded their size is compared with the memory available: too
    big -> ``NotEnoughMemoryError``, the file untouched.
    """
    path = Path(path)
    video = host.video_from_file(path)
    if need_images:
        info = probe_video(path)
        check_frames_fit(
            info.frame_count, info.width, info.height, parameter="images",
            what=f"Decoding this result into the images output ({info.duration:.1f} s)",
            options=(f"Nothing is lost: the paid video is kept at {path}. Either disconnect "
                     "the images output and use the video output (a VIDEO: Save Video, or "
                     "any video node), or connect video to a Runware Video Frames node and "
                     "decode only part of it (frame_cap, every_nth, max_size). Queue again "
                     "afterwards: the cached result is reused, no new charge."),
        )
    if need_images or need_audio:
        decoded = decode_video(path, want_images=need_images, want_audio=need_audio,
                               check=host.cancel_check())
        return video, decoded.images, decoded.audio, decoded.fps
    return video, None, None, probe_video(path).fps
