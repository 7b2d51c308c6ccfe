"""Runware Video Frames: any VIDEO -> IMAGE + AUDIO + fps, within the memory you have."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch

from . import host
from .inputs import Inputs, TableNode, int_input, socket_input
from .runware import decode
from .runware.media import MediaError, is_audio
from .video_io import file_of

LIMITS = ("Lower frame_cap, raise every_nth, or set max_size (the long side in pixels) on "
          "Runware Video Frames; the video itself is not changed.")


INPUTS = Inputs(
    socket_input("video", "VIDEO", "Any VIDEO: a Runware node's video output, Load Video, ..."),
    int_input("frame_cap", 0, 0, 1_000_000, "At most this many frames are returned (0 = all); "
              "the audio ends where they end."),
    int_input("every_nth", 1, 1, 1000, "Keep every n-th frame (1 = all); fps is divided by n "
              "so the timing stays right."),
    int_input("max_size", 0, 0, 16384, "Scale frames down so the long side is at most this "
              "many pixels (0 = original size)."),
)


class RunwareVideoFrames(TableNode):
    DESCRIPTION = (
        "Splits any VIDEO (a Runware result, Load Video, ...) into IMAGE frames, its AUDIO "
        "track and its fps, with the pack's lean decoder: about 1.1x the frames' own size in "
        "memory, against ~3x for Get Video Components. frame_cap, every_nth and max_size keep "
        "long or large videos within memory; it refuses, before decoding, what would not fit."
    )
    FUNCTION = "split"
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT", "INT")
    RETURN_NAMES = ("images", "audio", "fps", "frame_count")
    OUTPUT_TOOLTIPS = (
        "The frames (upright, as players show them), scaled to max_size if set.",
        "The audio track (its own rate and channels), cut where the kept frames end.",
        "The frame rate of the frames returned: the video's fps / every_nth.",
        "How many frames were returned.",
    )

    INPUTS = INPUTS

    def split(self, *args: Any, **inputs: Any) -> tuple[torch.Tensor, dict, float, int]:
        values = INPUTS.values(inputs, args)
        video = values["video"]
        frame_cap, every_nth, max_size = (values["frame_cap"], values["every_nth"],
                                          values["max_size"])
        every_nth = max(1, int(every_nth))
        cap = int(frame_cap) if frame_cap and frame_cap > 0 else None
        side = int(max_size) if max_size and max_size > 0 else None
        if video is None:
            raise MediaError("video is not connected", parameter="video",
                             hint="Connect a VIDEO (e.g. a Runware node's video output).")
        source = file_of(video)
        if source is not None:
            return _from_file(source, cap, every_nth, side)
        if not hasattr(video, "get_components"):
            raise MediaError(f"video must be a VIDEO, got {type(video).__name__}",
                             parameter="video", hint="Connect a VIDEO output to video.")
        return _from_components(video.get_components(), cap, every_nth, side)


def _from_file(source: Any, cap: int | None, every_nth: int,
               side: int | None) -> tuple[torch.Tensor, dict, float, int]:
    if not isinstance(source, io.BytesIO):
        source = Path(source)
    info = decode.probe_video(source)
    count = math.ceil(info.frame_count / every_nth)
    if cap is not None:
        count = min(count, cap)
    width, height = decode.scaled_size(info.width, info.height, side)
    decode.check_frames_fit(
        count, width, height, parameter="video", options=LIMITS,
        what=f"Runware Video Frames: {count} frames of this {info.duration:.1f} s video",
    )
    decoded = decode.decode_video(source, max_frames=cap, every_nth=every_nth, max_side=side,
                                  check=host.cancel_check())  # Cancel stops a long decode
    assert decoded.images is not None and decoded.audio is not None
    return decoded.images, decoded.audio, decoded.fps, decoded.frame_count


def _from_components(components: Any, cap: int | None, every_nth: int,
                     side: int | None) -> tuple[torch.Tensor, dict, float, int]:
    """A VIDEO held in memory (or one only ComfyUI can decode, e.g. a trimmed clip)."""
    images = components.images
    fps = float(components.frame_rate or 0) or 24.0
    kept = images[::every_nth]
    if cap is not None:
        kept = kept[:cap]
    count, h, w = int(kept.shape[0]), int(kept.shape[1]), int(kept.shape[2])
    width, height = decode.scaled_size(w, h, side)
    if (width, height) != (w, h):
        decode.check_frames_fit(count, width, height, parameter="video", options=LIMITS,
                               what="Runware Video Frames: scaling these frames")
        out = torch.empty((count, height, width, 3), dtype=torch.float32)
        for start in range(0, count, 16):  # a few frames at a time: no full-size copy
            block = kept[start:start + 16, ..., :3].movedim(-1, 1).float()
            out[start:start + 16] = torch.nn.functional.interpolate(
                block, size=(height, width), mode="area").movedim(1, -1)
        kept = out
    elif every_nth > 1 or cap is not None:
        kept = kept.contiguous()
    out_fps = fps / every_nth
    seconds = count * every_nth / fps
    audio = components.audio
    if is_audio(audio):
        wave, rate = audio["waveform"], int(audio["sample_rate"])
        audio = {"waveform": wave[..., :math.ceil(seconds * rate)], "sample_rate": rate}
    else:
        audio = {"waveform": torch.zeros((1, 1, round(seconds * decode.SILENT_SAMPLE_RATE))),
                 "sample_rate": decode.SILENT_SAMPLE_RATE}
    return kept, audio, out_fps, count
