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
