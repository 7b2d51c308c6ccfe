"""Small real media files made with PyAV/Pillow for tests."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def png_bytes(width: int = 64, height: int = 48, color=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def write_mp4(
    path: Path,
    *,
    width: int = 96,
    height: int = 64,
    fps: int = 12,
    frames: int = 24,
    audio_rate: int | None = 22050,
    channels: int = 2,
) -> Path:
    """H.264 yuv420p (+ AAC when audio_rate) with a moving gradient and a tone."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        astream = None
        if audio_rate:
            astream = out.add_stream("aac", rate=audio_rate)
            astream.layout = "stereo" if channels == 2 else "mono"
        for i in range(frames):
            img = np.zeros((height, width, 3), np.uint8)
            img[:, :, 0] = (np.arange(width) * 255 // width)[None, :]
            img[:, (i * 3) % width, :] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for pkt in vs.encode(frame):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        if astream is not None:
            total = int(audio_rate * frames / fps)
            t = np.arange(total) / audio_rate
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            planes = np.stack([tone] * channels)
            pts = 0
            for start in range(0, total, 1024):
                chunk = np.ascontiguousarray(planes[:, start:start + 1024])
                frame = av.AudioFrame.from_ndarray(
                    chunk, format="fltp", layout=astream.layout.name
                )
                frame.sample_rate = audio_rate
                frame.pts = pts
                frame.time_base = Fraction(1, audio_rate)
                pts += chunk.shape[1]
                for pkt in astream.encode(frame):
                    out.mux(pkt)
            for pkt in astream.encode():
                out.mux(pkt)
    return path


def write_wav(path: Path, *, seconds: float = 1.0, rate: int = 16000, channels: int = 1) -> Path:
    total = int(seconds * rate)
    t = np.arange(total) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono" if channels == 1 else "stereo"
        data = np.tile(tone, (channels, 1)).T.reshape(1, -1)  # packed s16
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(data), format="s16", layout=stream.layout.name
        )
        frame.sample_rate = rate
        for pkt in stream.encode(frame):
            out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return path


def probe(path: Path) -> dict:
    """Decode a file fully: frame count, size, fps, audio rate/channels/duration."""
    info: dict = {"frames": 0}
    with av.open(str(path)) as container:
        if container.streams.video:
            vs = container.streams.video[0]
            info["width"], info["height"] = vs.codec_context.width, vs.codec_context.height
            info["fps"] = float(vs.average_rate) if vs.average_rate else None
        samples = 0
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                info["frames"] += 1
            else:
                samples += frame.samples
                info["sample_rate"] = frame.sample_rate
                info["channels"] = len(frame.layout.channels)
        if container.streams.audio:
            info["audio_seconds"] = samples / info["sample_rate"]
    return info


def _textured_frame(base: np.ndarray, i: int) -> np.ndarray:
    """A frame that moves: the base texture scrolled, plus a bright bar (cheap to make)."""
    h, w = base.shape[:2]
    img = np.roll(base, shift=(i * 2) % w, axis=1)
    bar = (i * 5) % max(1, h - 8)
    img[bar:bar + 8, :, 1] = 255
    return img


def write_clip(
    path: Path,
    *,
    width: int = 96,
    height: int = 64,
    fps: float = 12,
    frames: int = 24,
    audio_rate: int | None = 22050,
    channels: int = 2,
    video_codec: str | None = None,
    audio_codec: str | None = None,
    preset: str = "ultrafast",
    audio_seconds: float | None = None,
    noise: int = 0,
    crf: int | None = None,
    gop: int | None = None,
) -> Path:
    """Any container by suffix (.mp4/.mov/.webm/.mkv), textured moving frames + a tone.

    ``video_codec`` defaults to libx264 (VP9 for .webm), ``audio_codec`` to AAC (Opus for
    .webm); ``audio_seconds`` defaults to the video's length. ``noise`` (0..255) adds fresh
    random noise to every frame, for files that do not compress to nothing. ``gop`` puts a
    keyframe every ``gop`` frames (libx264). Used by the
    media tests and the benchmarks (720p clips are made in seconds).
    """
    suffix = Path(path).suffix.lower()
    if video_codec is None:
        video_codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
    if audio_codec is None:
        audio_codec = "libopus" if suffix == ".webm" else "aac"
    if audio_codec == "libopus" and audio_rate not in (None, 8000, 12000, 16000, 24000, 48000):
        audio_rate = 48000
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.empty((height, width, 3), np.uint8)
    base[..., 0] = (xx * 255 // max(1, width - 1)).astype(np.uint8)
    base[..., 1] = (yy * 255 // max(1, height - 1)).astype(np.uint8)
    base[..., 2] = ((np.sin(xx / 7.0) * np.cos(yy / 5.0) + 1) * 100).astype(np.uint8)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(video_codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if video_codec == "libx264":
            vs.options = {"preset": preset, **({"crf": str(crf)} if crf is not None else {}),
                          **({"x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
                             if gop else {})}
        elif video_codec == "libvpx-vp9":
            vs.options = {"deadline": "realtime", "cpu-used": "8"}
        astream = None
        if audio_rate:
            astream = out.add_stream(audio_codec, rate=audio_rate)
            astream.layout = "stereo" if channels == 2 else "mono"
        total = int(audio_rate * (audio_seconds if audio_seconds is not None else frames / fps)) \
            if audio_rate else 0
        a_pts = 0
        rng = np.random.default_rng(0)
        for i in range(frames):
            img = _textured_frame(base, i)
            if noise:
                img ^= rng.integers(0, noise, img.shape, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for pkt in vs.encode(frame):
                out.mux(pkt)
            # interleave: audio up to this frame's end time
            if astream is not None:
                upto = min(total, int(audio_rate * (i + 1) / fps)) if i < frames - 1 else total
                a_pts = _write_tone(out, astream, audio_rate, channels, a_pts, upto)
        for pkt in vs.encode():
            out.mux(pkt)
        if astream is not None:
            a_pts = _write_tone(out, astream, audio_rate, channels, a_pts, total)
            for pkt in astream.encode():
                out.mux(pkt)
    return path


def _write_tone(out, astream, rate: int, channels: int, start: int, end: int) -> int:
    if end <= start:
        return start
    t = np.arange(start, end) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    planes = np.stack([tone] + [tone * 0.5] * (channels - 1))
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(planes), format="fltp", layout=astream.layout.name
    )
    frame.sample_rate = rate
    frame.pts = start
    frame.time_base = Fraction(1, rate)
    for pkt in astream.encode(frame):
        out.mux(pkt)
    return end
