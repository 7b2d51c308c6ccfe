"""Files -> IMAGE / AUDIO tensors: probe a video's headers, decode it (or part of it),
and refuse, before decoding, frames that would not fit in memory.

Memory shapes this module: a 30 s 1080p clip is ~45 GB of float32 frames. So frames are
decoded straight into one preallocated output tensor (no per-frame list, no stack) and
converted uint8 -> float32 a chunk at a time by a helper thread while the next frames
decode. Only the streams asked for are decoded.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
import torch

from .logs import get_logger
from .media import MediaError, NotEnoughMemoryError, audio_layout

log = get_logger()

SILENT_SAMPLE_RATE = 44100
# Frames converted per step: up to 16, and at most this many bytes of uint8 staging (16
# frames of 720p = 44 MB); measured faster than per-frame conversion by ~2x.
DECODE_CHUNK_FRAMES = 16
DECODE_STAGE_BYTES = 64 << 20


# -- memory guard -----------------------------------------------------------------------

DECODE_OVERHEAD = 1.1
DECODE_SPARE_BYTES = 512 << 20


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (psutil, which ComfyUI ships), or None."""
    try:
        import psutil
    except ImportError:  # psutil is in requirements.txt; without it there is no guard
        return None
    try:
        return int(psutil.virtual_memory().available)
    except Exception:  # e.g. a sandbox without /proc
        log.debug("psutil.virtual_memory failed", exc_info=True)
        return None


def frames_bytes(frames: int, width: int, height: int) -> int:
    """Size of an IMAGE batch (float32 RGB) of ``frames`` frames."""
    return int(frames) * int(width) * int(height) * 3 * 4


def check_frames_fit(frames: int, width: int, height: int, *, what: str, options: str,
                     parameter: str | None = None) -> None:
    """Refuse (NotEnoughMemoryError) before decoding ``frames`` WxH frames into an IMAGE
    batch that would not fit in the memory available now (with the decoder's overhead)."""
    need = frames_bytes(frames, width, height)
    available = available_memory()
    if available is None or need * DECODE_OVERHEAD + DECODE_SPARE_BYTES <= available:
        return
    gib = 1 << 30
    raise NotEnoughMemoryError(
        f"{what} needs about {need * DECODE_OVERHEAD / gib:.1f} GiB of memory ({frames} "
        f"frames of {width}x{height} as float32 IMAGE frames) but only "
        f"{available / gib:.1f} GiB is available; decoding was not started, so ComfyUI is "
        "not at risk of being killed", parameter=parameter, hint=options,
    )


# -- files -> IMAGE / AUDIO ------------------------------------------------------------


@dataclass
class DecodedVideo:
    images: torch.Tensor | None  # [N,H,W,3] float32 0..1, or None when not asked for
    audio: dict | None  # {"waveform": [1,C,T] float32, "sample_rate": int}
    fps: float  # of the frames returned (the file's fps / every_nth)
    frame_count: int
    width: int  # of the frames returned (display orientation, after max_side)
    height: int
    duration: float


@dataclass
class VideoInfo:
    """What a video file's headers say (plus its first frame's rotation)."""

    fps: float
    frame_count: int  # from the container; an estimate for some formats (WEBM)
    width: int  # display size: rotation metadata applied, as players show it
    height: int
    duration: float
    has_audio: bool
    sample_rate: int | None
    channels: int | None
    container: str
    rotation: int = 0  # degrees counter-clockwise the stored frames are turned to display


def _open_result(source: Path | str | BinaryIO) -> Any:
    label = source if not isinstance(source, io.IOBase) else "the video bytes"
    try:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        return av.open(str(source) if isinstance(source, (str, Path)) else source)
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(
            f"{label} is not a readable video file ({exc})", parameter="video",
            hint="The download may be incomplete or not a video; run the node again.",
        ) from None


def _stream_facts(container: Any, label: Any) -> tuple[Any, Any, float, int, int, int]:
    if not container.streams.video:
        raise MediaError(f"{label} has no video stream", parameter="video",
                         hint="The result is not a video; run the node again.")
    vs = container.streams.video[0]
    audio = next((s for s in container.streams.audio if s.codec_context is not None), None)
    rate = vs.average_rate or vs.guessed_rate or vs.base_rate
    fps = float(rate) if rate else 0.0
    seconds = 0.0
    if vs.duration is not None and vs.time_base is not None:
        seconds = float(vs.duration * vs.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    if fps <= 0:
        fps = vs.frames / seconds if vs.frames and seconds else 24.0
        log.warning("%s does not state its frame rate; using %.3f", label, fps)
    estimate = int(vs.frames) if vs.frames and vs.frames > 0 else math.ceil(seconds * fps)
    width = vs.codec_context.width or vs.width
    height = vs.codec_context.height or vs.height
    return vs, audio, fps, max(0, estimate), int(width), int(height)


def rotation_of(frame: Any) -> int:
    """A decoded frame's display rotation: 0, 90, 180 or 270 degrees counter-clockwise.

    Phone clips store upright pictures sideways plus a display matrix; players (and
    ComfyUI) turn them. PyAV exposes the matrix as ``VideoFrame.rotation`` (older PyAV:
    no rotation support, 0).
    """
    try:
        value = float(getattr(frame, "rotation", 0) or 0)
    except (TypeError, ValueError):
        return 0
    return int(round(value / 90.0)) % 4 * 90


def _first_frame_rotation(container: Any, vs: Any) -> int:
    """Decode the first frame (only) to read the display rotation; 0 if it does not decode."""
    try:
        for frame in container.decode(vs):
            return rotation_of(frame)
    except av.error.FFmpegError:
        pass
    return 0


def display_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    return (height, width) if rotation % 180 else (width, height)


def probe_video(path: Path | str | BinaryIO) -> VideoInfo:
    """A video's fps, display size, frame count and audio facts from its headers, plus the
    rotation of its first frame (nothing else is decoded).

    When the headers hold no frame count (WEBM, MKV) the video packets are counted
    (demuxed, not decoded): sync-3's frame-number, box and segment-end checks need the
    exact count, the one Runware and the offline double get by decoding.
    """
    with _open_result(path) as container:
        vs, audio, fps, count, width, height = _stream_facts(container, path)
        rotation = _first_frame_rotation(container, vs)
        if not vs.frames:
            container.seek(0)
            count = sum(1 for packet in container.demux(vs) if packet.size) or count
        info = VideoInfo(
            fps=fps, frame_count=count, width=width, height=height,
            duration=count / fps if fps else 0.0, has_audio=audio is not None,
            sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
            channels=int(audio.codec_context.channels) if audio is not None else None,
            container=container.format.name,
        )
        info.rotation = rotation
        info.width, info.height = display_size(width, height, rotation)
        return info


def scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the long side is at most ``max_side`` (never enlarged)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class _FrameSink:
    """Decoded frames -> one preallocated float32 [N,H,W,3].

    Frames are staged as uint8 (16 at a time) and each full stage is converted to float in
    one pass by a helper thread (torch releases the GIL) while the next stage fills: two
    stage buffers, so conversion overlaps decoding and RGB conversion. Frames are turned
    upright (display rotation) and scaled to the output size on the way in.
    """

    def __init__(self, capacity: int, height: int, width: int, rotation: int = 0,
                 interpolation: str | None = None) -> None:
        self.h, self.w = height, width
        self.quarter_turns = rotation // 90 % 4
        # the size to convert each decoded frame to, before it is turned upright
        self.src_w, self.src_h = display_size(width, height, rotation)
        self.interpolation = interpolation
        self.capacity = max(1, capacity)
        self.out = torch.empty((self.capacity, height, width, 3), dtype=torch.float32)
        self.chunk = max(1, min(self.capacity, DECODE_CHUNK_FRAMES,
                                 DECODE_STAGE_BYTES // (height * width * 3)))
        self.stages = [np.empty((self.chunk, height, width, 3), dtype=np.uint8)
                       for _ in range(2 if self.capacity > self.chunk else 1)]
        self.pending: list[Future[None] | None] = [None] * len(self.stages)
        self.current = 0
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runware-frames")
        # ComfyUI runs nodes under torch.inference_mode(), which is per thread: the
        # helper thread must write into our (inference) tensors under the same mode.
        self.inference = torch.is_inference_mode_enabled()
        self.count = 0  # frames handed to conversion (their slots in self.out are taken)
        self.staged = 0

    def add(self, frame: av.VideoFrame) -> None:
        if self.staged == 0:
            self._wait(self.current)  # this buffer's previous chunk must be converted
        if frame.width != self.src_w or frame.height != self.src_h:  # scaled, or resized
            if self.interpolation:
                arr = frame.to_ndarray(format="rgb24", width=self.src_w, height=self.src_h,
                                       interpolation=self.interpolation)
            else:
                arr = frame.to_ndarray(format="rgb24", width=self.src_w, height=self.src_h)
        else:
            arr = frame.to_ndarray(format="rgb24")
        if self.quarter_turns:
            arr = np.rot90(arr, self.quarter_turns)
        self.stages[self.current][self.staged] = arr
        self.staged += 1
        if self.staged == self.chunk:
            self.flush()

    def _wait(self, index: int) -> None:
        future = self.pending[index]
        if future is not None:
            self.pending[index] = None
            future.result()

    def flush(self) -> None:
        k = self.staged
        if not k:
            return
        if self.count + k > self.capacity:
            for i in range(len(self.stages)):
                if i != self.current:
                    self._wait(i)
            self._grow(self.count + k)
        dst = self.out[self.count:self.count + k]
        src = torch.from_numpy(self.stages[self.current][:k])
        self.pending[self.current] = self.pool.submit(_to_float, dst, src, self.inference)
        self.count += k
        self.staged = 0
        self.current = (self.current + 1) % len(self.stages)

    def _grow(self, needed: int) -> None:
        capacity = max(needed, int(self.capacity * 1.25) + 1)
        log.debug("frame count above the estimate (%d); growing to %d", self.capacity, capacity)
        bigger = torch.empty((capacity, self.h, self.w, 3), dtype=torch.float32)
        bigger[:self.count].copy_(self.out[:self.count])
        self.out, self.capacity = bigger, capacity

    def close(self) -> None:
        try:
            for i in range(len(self.stages)):
                self._wait(i)
        finally:
            self.pool.shutdown(wait=True)

    def result(self) -> torch.Tensor:
        self.flush()
        self.close()
        return self.out if self.count == self.capacity else self.out[:self.count]


def _to_float(dst: torch.Tensor, src: torch.Tensor, inference: bool) -> None:
    # one uint8 -> float32 pass per chunk; "/ 255" exactly as ComfyUI does it
    with torch.inference_mode(inference):
        dst.copy_(src).div_(255.0)


class _AudioSink:
    """Decoded audio -> float32 [C,T] at the stream's own rate and channels (fltp)."""

    def __init__(self, stream: Any, capacity: int) -> None:
        ctx = stream.codec_context
        self.rate = int(ctx.sample_rate)
        self.layout = ctx.layout if ctx.layout and ctx.layout.nb_channels else audio_layout(
            max(1, ctx.channels))
        self.channels = int(self.layout.nb_channels)
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self.buf = np.empty((self.channels, max(1024, capacity)), dtype=np.float32)
        self.count = 0

    def add(self, frame: av.AudioFrame | None) -> None:
        for out in self.resampler.resample(frame):
            n = out.samples
            if self.count + n > self.buf.shape[1]:
                grown = np.empty((self.channels, max(self.count + n, self.buf.shape[1] * 3 // 2)),
                                 dtype=np.float32)
                grown[:, :self.count] = self.buf[:, :self.count]
                self.buf = grown
            for c, plane in enumerate(out.planes[:self.channels]):
                self.buf[c, self.count:self.count + n] = np.frombuffer(
                    memoryview(plane), dtype=np.float32, count=n)
            self.count += n

    @property
    def seconds(self) -> float:
        return self.count / self.rate if self.rate else 0.0

    def result(self, max_seconds: float | None = None) -> dict:
        self.add(None)
        count = self.count
        if max_seconds is not None:
            count = min(count, math.ceil(max_seconds * self.rate))
        wave = self.buf[:, :count]
        if count != self.buf.shape[1]:
            wave = wave.copy()  # contiguous, and the spare capacity is freed
        return {"waveform": torch.from_numpy(wave).unsqueeze(0), "sample_rate": self.rate}


def decode_audio_track(source: Path | str | BinaryIO) -> tuple[torch.Tensor, int, list[str]]:
    """A file's first decodable audio track -> ([C,T] float32, sample rate, FFmpeg channel
    names such as FL, FR, FC, LFE), at its own rate and channel count."""
    with _open_result(source) as container:
        astream = next((s for s in container.streams.audio if s.codec_context is not None),
                       None)
        if astream is None:
            raise MediaError("the file has no audio track", parameter="audio")
        seconds = container.duration / av.time_base if container.duration else 0.0
        sink = _AudioSink(astream, math.ceil(seconds * (astream.codec_context.sample_rate or 0))
                          + 4096)
        for frame in container.decode(astream):
            sink.add(frame)
        audio = sink.result()
        names = [c.name for c in sink.layout.channels]
    return audio["waveform"][0], int(audio["sample_rate"]), names


def decode_video(
    path: Path | str | BinaryIO, *, want_images: bool = True, want_audio: bool = True,
    max_frames: int | None = None, every_nth: int = 1, max_side: int | None = None,
    check: Callable[[], None] | None = None,
) -> DecodedVideo:
    """A video file -> IMAGE [N,H,W,3] float32 0..1 and AUDIO, in one demux pass.

    Frames go straight into one preallocated tensor (sized from the container's frame
    count, grown if a file holds more), upright (display rotation applied, as players and
    ComfyUI show them); audio keeps the file's rate and channels. A file without audio
    gives silent audio of the video's length and a warning. Only the streams asked for
    are decoded.

    ``every_nth`` keeps frames 0, n, 2n, ... (the fps returned is divided by n);
    ``max_frames`` stops after that many kept frames, and the audio then ends where those
    frames end; ``max_side`` scales frames down so the long side is at most that.
    ``check`` runs before each packet and may raise to stop (the node layer passes
    ComfyUI's Cancel check, so a long decode stops within a packet).
    """
    label = path if not isinstance(path, io.IOBase) else "the video bytes"
    every_nth = max(1, int(every_nth))
    cap = int(max_frames) if max_frames and max_frames > 0 else None
    with _open_result(path) as container:
        vs, astream, fps, estimate, width, height = _stream_facts(container, label)
        out_w, out_h = scaled_size(width, height, max_side)
        wanted = math.ceil(estimate / every_nth) + (0 if vs.frames else 2)
        if cap is not None:
            wanted = min(wanted, cap)
        frames: _FrameSink | None = None  # made at the first frame: its rotation sets the size

        def add_frame(frame: av.VideoFrame) -> None:
            nonlocal frames, out_w, out_h
            if frames is None:
                rotation = rotation_of(frame)
                shown = display_size(frame.width, frame.height, rotation)
                out_w, out_h = scaled_size(*shown, max_side)
                frames = _FrameSink(wanted, out_h, out_w, rotation,
                                    "AREA" if (out_w, out_h) != shown else None)
            frames.add(frame)

        # where the kept frames end, in seconds (None: the whole file)
        end_seconds = cap * every_nth / fps if cap is not None and fps else None
        audio_sink = None
        if want_audio and astream is not None:
            seconds = end_seconds if end_seconds is not None else (estimate / fps if fps else 0.0)
            audio_sink = _AudioSink(astream, math.ceil(seconds * astream.codec_context.sample_rate)
                                    + 4096)
        streams = []
        if want_images:
            vs.thread_type = "AUTO"  # frame + slice threads
            streams.append(vs)
        if audio_sink is not None:
            streams.append(astream)
        index = kept = 0
        video_done = not want_images
        try:
            for packet in container.demux(*streams) if streams else ():
                if check is not None:
                    check()
                if packet.stream is vs:
                    if video_done:
                        continue
                    for frame in packet.decode():
                        if index % every_nth == 0 and not video_done:
                            add_frame(frame)
                            kept += 1
                            video_done = cap is not None and kept >= cap
                        index += 1
                else:
                    assert audio_sink is not None
                    for frame in packet.decode():
                        audio_sink.add(frame)
                if video_done and end_seconds is not None and (
                        audio_sink is None or audio_sink.seconds >= end_seconds):
                    break
        except av.error.FFmpegError as exc:
            if frames is not None:
                frames.close()
            raise MediaError(f"{label} does not decode ({exc})", parameter="video",
                             hint="The file is damaged or incomplete; run the node again.") \
                from None
        except BaseException:
            if frames is not None:
                frames.close()
            raise
        if want_images and frames is None:
            raise MediaError(f"{label} holds no video frames", parameter="video",
                             hint="The result is empty; run the node again.")
        images = frames.result() if frames is not None else None
        count = int(images.shape[0]) if images is not None else (
            min(math.ceil(estimate / every_nth), cap or estimate))
        audio = audio_sink.result(end_seconds) if audio_sink is not None else None
    out_fps = fps / every_nth
    duration = count / out_fps if out_fps else 0.0
    if want_audio and audio is None:
        log.warning("%s has no audio track; the AUDIO output is %.2f s of silence",
                    label if not isinstance(label, Path) else label.name, duration)
        audio = {"waveform": torch.zeros((1, 1, round(duration * SILENT_SAMPLE_RATE)),
                                         dtype=torch.float32),
                 "sample_rate": SILENT_SAMPLE_RATE}
    return DecodedVideo(images=images, audio=audio, fps=out_fps, frame_count=count,
                        width=out_w, height=out_h, duration=duration)
