"""Media for the Runware test double: probe uploads, make real, decodable result files.

Everything here is deliberately small and fast (tests run on two cores): the double's
"models" draw coloured frames and tones with numpy and encode them with PyAV.

* Ovi: a clip of ``duration`` seconds at the requested fps, background and tone derived
  from the seed (same seed -> same pixels), optionally starting from a given image.
* sync-3: the input video's frames (same size, fps and frame count) with a white "mouth"
  box whose height follows the new audio track.
* Remote http(s) media (the double has no network): synthetic images, audio and video
  derived from the URL.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..logs import get_logger

log = get_logger("double.media")

OUTPUT_FORMATS = ("MP4", "WEBM", "MOV")
EXT_FOR_FORMAT = {"MP4": "mp4", "WEBM": "webm", "MOV": "mov"}
_CONTAINER_FOR_FORMAT = {"MP4": "mp4", "WEBM": "webm", "MOV": "mov"}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
OVI_SAMPLE_RATE = 44100
OPUS_SAMPLE_RATE = 48000
SPEECH_SAMPLE_RATE = 22050

_EXT_FOR_MIME = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/webm": "webm",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/bmp": "bmp",
}
_EXT_FOR_PIL = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
_MIME_FOR_EXT = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
}

_BASE64_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


class MediaError(ValueError):
    """The bytes are not media this double can use."""


@dataclass
class MediaInfo:
    """What the double knows about a stored file (uploads and results alike)."""

    kind: str  # "image" | "video" | "audio"
    mime: str
    ext: str
    size: int
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frames: int | None = None
    duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    has_audio: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mime_for_ext(ext: str) -> str:
    return _MIME_FOR_EXT.get(ext.lower(), "application/octet-stream")


# --------------------------------------------------------------------------- decoding


def decode_payload(value: str) -> tuple[str | None, bytes]:
    """A data URI or bare base64 -> (declared MIME type or None, bytes).

    Raises ``MediaError`` when it is neither.
    """
    if not isinstance(value, str) or not value:
        raise MediaError("expected a data URI or base64 text")
    mime: str | None = None
    body = value
    if value[:5].lower() == "data:":
        comma = value.find(",")
        if comma < 0:
            raise MediaError("malformed data URI (no ',')")
        header = value[5:comma].split(";")
        mime = header[0].strip().lower() or None
        if "base64" not in [p.strip().lower() for p in header[1:]]:
            raise MediaError("data URI is not base64-encoded (';base64' missing)")
        body = value[comma + 1 :]
    body = "".join(body.split())
    if not body or not _BASE64_RE.match(body) or len(body) % 4 == 1:
        raise MediaError("not valid base64")
    body += "=" * (-len(body) % 4)
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(f"not valid base64: {exc}") from None
    if not data:
        raise MediaError("empty payload")
    return mime, data


def probe_image(data: bytes) -> MediaInfo:
    """Decode an image with Pillow; ``MediaError`` when it does not decode."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            fmt = img.format or "PNG"
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise MediaError(f"not a decodable image: {exc}") from None
    ext = _EXT_FOR_PIL.get(fmt, fmt.lower())
    return MediaInfo("image", mime_for_ext(ext), ext, len(data), width=width, height=height)


def _ext_from_container(
    name: str, mime: str | None, codecs: Sequence[str], head: bytes = b""
) -> str:
    if mime and mime in _EXT_FOR_MIME:
        return _EXT_FOR_MIME[mime]
    if "mp4" in name or "mov" in name:
        return "mov" if head[4:12] == b"ftypqt  " else "mp4"
    if "webm" in name or "matroska" in name:
        webm = all(c in ("vp8", "vp9", "av1", "opus", "vorbis") for c in codecs)
        return "webm" if webm else "mkv"
    for ext in ("wav", "mp3", "flac", "ogg", "aac"):
        if ext in name.split(","):
            return ext
    return name.split(",")[0] or "bin"


def probe_av(data: bytes, mime: str | None = None) -> MediaInfo:
    """Decode video/audio with PyAV (every frame); ``MediaError`` when it does not decode."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            vstreams = list(container.streams.video)
            astreams = list(container.streams.audio)
            if not vstreams and not astreams:
                raise MediaError("no audio or video stream")
            codecs = [s.codec_context.name for s in vstreams + astreams]
            ext = _ext_from_container(container.format.name, mime, codecs, data[:12])
            info = MediaInfo("video" if vstreams else "audio", "", ext, len(data))
            if vstreams:
                vs = vstreams[0]
                rate = vs.average_rate or vs.guessed_rate or Fraction(25)
                info.fps = float(rate)
                info.width, info.height = vs.codec_context.width, vs.codec_context.height
                info.frames = sum(1 for _ in container.decode(vs))
                if not info.frames:
                    raise MediaError("the video stream has no decodable frame")
                info.duration = info.frames / info.fps
        if astreams:
            with av.open(io.BytesIO(data), mode="r") as container:
                a = container.streams.audio[0]
                samples = 0
                rate = a.codec_context.sample_rate or 0
                channels = a.codec_context.channels or 0
                for frame in container.decode(a):
                    samples += frame.samples
                    rate = frame.sample_rate or rate
                    channels = len(frame.layout.channels) or channels
            if samples == 0:
                if not vstreams:
                    raise MediaError("the audio stream has no decodable sample")
            else:
                info.has_audio = True
                info.sample_rate, info.channels = int(rate), int(channels)
                if not vstreams:
                    info.duration = samples / rate
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, ZeroDivisionError) as exc:
        raise MediaError(f"not decodable audio/video: {exc}") from None
    if info.mime == "":
        if mime and mime.split("/")[0] == info.kind:
            info.mime = mime
        else:
            guessed = mime_for_ext(info.ext)
            if info.kind == "audio" and guessed.startswith("video/"):
                guessed = "audio/" + guessed.split("/", 1)[1]
            info.mime = guessed
    return info


def probe(data: bytes, mime: str | None = None) -> MediaInfo:
    """Probe bytes as the declared kind (image/video/audio) or, undeclared, as anything."""
    major = (mime or "").split("/")[0]
    if major == "image":
        return probe_image(data)
    if major in ("video", "audio"):
        return probe_av(data, mime)
    try:
        return probe_image(data)
    except MediaError:
        return probe_av(data, mime if mime and mime in _EXT_FOR_MIME else None)


def probe_file(path: Path, mime: str | None = None) -> MediaInfo:
    return probe(Path(path).read_bytes(), mime)


# --------------------------------------------------------------------------- audio helpers


def load_audio(path: Path | str, max_channels: int = 2) -> tuple[np.ndarray, int]:
    """Decode the first audio stream -> (float32 array (channels, samples), sample rate)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise MediaError(f"{Path(path).name} has no audio stream")
        stream = container.streams.audio[0]
        channels = min(max(stream.codec_context.channels or 1, 1), max_channels)
        layout = "mono" if channels == 1 else "stereo"
        rate = stream.codec_context.sample_rate or 44100
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks: list[np.ndarray] = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks:
        return np.zeros((channels, 0), np.float32), rate
    return np.concatenate(chunks, axis=1).astype(np.float32), rate


def resample(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Linear-interpolation resampling (good enough for a test double)."""
    if rate == new_rate or audio.shape[1] == 0:
        return audio
    n = max(1, round(audio.shape[1] * new_rate / rate))
    return stretch(audio, n)


def stretch(audio: np.ndarray, n: int) -> np.ndarray:
    """Time-stretch/compress ``audio`` to exactly ``n`` samples per channel."""
    channels = audio.shape[0]
    if n <= 0:
        return np.zeros((channels, 0), np.float32)
    if audio.shape[1] == 0:
        return np.zeros((channels, n), np.float32)
    if audio.shape[1] == 1:
        return np.repeat(audio, n, axis=1).astype(np.float32)
    src = np.linspace(0.0, audio.shape[1] - 1, num=n)
    xp = np.arange(audio.shape[1])
    return np.stack([np.interp(src, xp, ch) for ch in audio]).astype(np.float32)


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True).astype(np.float32)
    return np.repeat(audio[:1], channels, axis=0)


def fit_audio(audio: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Adapt ``audio`` to exactly ``n`` samples per sync-3 ``syncMode``.

    cut_off: cut when the video ends (silence-padded if shorter); silence: pad with
    silence; bounce: forward, backward, forward... until filled; loop: repeat from the
    start; remap: stretch/compress to exactly ``n``.
    """
    channels, have = audio.shape
    if mode == "remap":
        return stretch(audio, n)
    if have == 0:
        return np.zeros((channels, n), np.float32)
    if mode in ("bounce", "loop"):
        pieces: list[np.ndarray] = []
        total = 0
        forward = True
        while total < n:
            piece = audio if forward or mode == "loop" else audio[:, ::-1]
            pieces.append(piece)
            total += have
            forward = not forward
        return np.ascontiguousarray(np.concatenate(pieces, axis=1)[:, :n]).astype(np.float32)
    # cut_off and silence
    out = np.zeros((channels, n), np.float32)
    take = min(n, have)
    out[:, :take] = audio[:, :take]
    return out


def speech_audio(text: str, voice: str, duration: float) -> tuple[np.ndarray, int]:
    """A synthetic "voice" filling ``duration``: one tone burst per word (mono, 22050 Hz)."""
    rate = SPEECH_SAMPLE_RATE
    n = max(1, round(duration * rate))
    out = np.zeros((1, n), np.float32)
    words = text.split() or [text or "."]
    slot = n / len(words)
    base = 110 + zlib.crc32(voice.encode()) % 120
    for i, word in enumerate(words):
        start = int(i * slot)
        length = max(1, int(slot * 0.8))
        freq = base + zlib.crc32(word.lower().encode()) % 300
        t = np.arange(length) / rate
        envelope = np.sin(np.pi * np.arange(length) / length)
        out[0, start : start + length] = (0.3 * envelope * np.sin(2 * np.pi * freq * t))[
            : n - start
        ]
    return out, rate


@dataclass(frozen=True)
class SegmentSource:
    """One sync-3 segment: audio file, placement in the video, optional slice of the file."""

    path: Path
    start: float
    end: float
    audio_start: float | None = None
    audio_end: float | None = None


def segments_audio(segments: Sequence[SegmentSource], duration: float) -> tuple[np.ndarray, int]:
    """Each segment's (sliced) audio placed at start..end; silence elsewhere."""
    loaded = [load_audio(s.path) for s in segments]
    rate = loaded[0][1] if loaded else 44100
    channels = max((a.shape[0] for a, _ in loaded), default=1)
    n = max(1, round(duration * rate))
    out = np.zeros((channels, n), np.float32)
    for seg, (audio, seg_rate) in zip(segments, loaded, strict=True):
        audio = match_channels(resample(audio, seg_rate, rate), channels)
        a0 = round((seg.audio_start or 0.0) * rate)
        a1 = audio.shape[1] if seg.audio_end is None else round(seg.audio_end * rate)
        piece = audio[:, a0:a1]
        s0 = min(n, round(seg.start * rate))
        s1 = min(n, round(seg.end * rate))
        take = min(s1 - s0, piece.shape[1])
        if take > 0:
            out[:, s0 : s0 + take] = piece[:, :take]
    return out, rate


# --------------------------------------------------------------------------- encoding


def _output_rate(fmt: str, rate: int) -> int:
    if fmt == "WEBM":
        return OPUS_SAMPLE_RATE
    return rate if rate in _AAC_RATES else 44100


def _pix_fmt(width: int, height: int) -> str:
    return "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"


def encode(
    path: Path,
    fmt: str,
    frames: Iterable[np.ndarray],
    size: tuple[int, int],
    fps: Fraction,
    audio: np.ndarray | None,
    audio_rate: int,
) -> None:
    """Write rgb24 ``frames`` and float ``audio`` (channels, samples) into ``path``.

    MP4/MOV: H.264 + AAC; WEBM: VP9 + Opus (audio resampled to 48 kHz).
    Audio and video packets are interleaved as they are produced.
    """
    fmt = fmt.upper()
    if fmt not in _CONTAINER_FOR_FORMAT:
        raise MediaError(f"unsupported output format {fmt!r}")
    width, height = size
    with av.open(str(path), mode="w", format=_CONTAINER_FOR_FORMAT[fmt]) as container:
        if fmt == "WEBM":
            vstream = container.add_stream("libvpx-vp9", rate=fps)
            vstream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0"}
        else:
            vstream = container.add_stream("libx264", rate=fps)
            vstream.options = {"preset": "ultrafast", "crf": "23"}
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = _pix_fmt(width, height)
        vstream.codec_context.time_base = Fraction(1) / fps

        astream = None
        pcm = None
        out_rate = _output_rate(fmt, audio_rate)
        if audio is not None:
            pcm = np.ascontiguousarray(resample(audio, audio_rate, out_rate), dtype=np.float32)
            layout = "mono" if pcm.shape[0] == 1 else "stereo"
            codec = "libopus" if fmt == "WEBM" else "aac"
            astream = container.add_stream(codec, rate=out_rate, layout=layout)
        audio_pos = 0

        def feed_audio(until: int) -> None:
            nonlocal audio_pos
            if astream is None or pcm is None:
                return
            until = min(until, pcm.shape[1])
            while audio_pos < until:
                end = min(until, audio_pos + 1024)
                chunk = np.ascontiguousarray(pcm[:, audio_pos:end])
                layout = "mono" if pcm.shape[0] == 1 else "stereo"
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate = out_rate
                frame.pts = audio_pos
                frame.time_base = Fraction(1, out_rate)
                for packet in astream.encode(frame):
                    container.mux(packet)
                audio_pos = end

        count = 0
        for i, rgb in enumerate(frames):
            vframe = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vframe.pts = i
            vframe.time_base = Fraction(1) / fps
            for packet in vstream.encode(vframe):
                container.mux(packet)
            count = i + 1
            feed_audio(math.ceil(count / fps * out_rate))
        for packet in vstream.encode(None):
            container.mux(packet)
        if astream is not None and pcm is not None:
            feed_audio(pcm.shape[1])
            for packet in astream.encode(None):
                container.mux(packet)
    log.debug("wrote %s (%d frames, %s)", path, count, fmt)


# --------------------------------------------------------------------------- Ovi


def _seed_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(abs(int(seed)))


def load_image_rgb(data: bytes, size: tuple[int, int]) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB").resize(size, Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8).copy()


def ovi_frames(
    seed: int, fps: int, size: tuple[int, int], duration: float, image: bytes | None
) -> Iterator[np.ndarray]:
    width, height = size
    rng = _seed_rng(seed)
    colour = rng.integers(0, 256, size=3, dtype=np.uint8)
    bar_colour = rng.integers(0, 256, size=3, dtype=np.uint8)
    if image is not None:
        base = load_image_rgb(image, size)
    else:
        ramp = np.linspace(0.6, 1.0, width, dtype=np.float32)[None, :, None]
        base = np.broadcast_to(colour[None, None, :] * ramp, (height, width, 3))
        base = base.astype(np.uint8)
    bar = max(2, width // 16)
    speed = max(1, width // max(1, fps))
    total = max(1, round(duration * fps))
    for i in range(total):
        frame = base.copy()
        x = (i * speed + int(seed % width)) % width
        frame[:, x : x + bar] = bar_colour
        yield frame


def ovi_audio(seed: int, duration: float, rate: int) -> np.ndarray:
    freq = 200.0 + (int(seed) % 600)
    n = max(1, round(duration * rate))
    t = np.arange(n, dtype=np.float64) / rate
    left = 0.25 * np.sin(2 * np.pi * freq * t)
    right = 0.25 * np.sin(2 * np.pi * freq * 1.5 * t)
    return np.stack([left, right]).astype(np.float32)


def render_ovi(
    path: Path,
    *,
    seed: int,
    fps: int = 24,
    size: tuple[int, int] = (160, 96),
    fmt: str = "MP4",
    image: bytes | None = None,
    duration: float = 5.0,
) -> None:
    """An Ovi "generation": ``duration`` s at ``fps``, stereo audio, content from ``seed``."""
    rate = OPUS_SAMPLE_RATE if fmt.upper() == "WEBM" else OVI_SAMPLE_RATE
    frames = ovi_frames(seed, fps, size, duration, image)
    encode(Path(path), fmt, frames, size, Fraction(fps), ovi_audio(seed, duration, rate), rate)


# --------------------------------------------------------------------------- sync-3


def video_stream_info(path: Path | str) -> tuple[Fraction, int, int]:
    """(fps, width, height) of the first video stream."""
    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        return Fraction(rate), vs.codec_context.width, vs.codec_context.height


def _mouth_levels(audio: np.ndarray, rate: int, fps: Fraction, frames: int) -> np.ndarray:
    mono = np.abs(audio).mean(axis=0) if audio.size else np.zeros(1, np.float32)
    levels = np.zeros(frames, np.float32)
    per = rate / float(fps)
    for i in range(frames):
        a, b = int(i * per), int((i + 1) * per)
        window = mono[a:b]
        levels[i] = float(window.mean()) if window.size else 0.0
    peak = float(levels.max()) if frames else 0.0
    return levels / peak if peak > 0 else levels


def render_sync3(
    path: Path,
    *,
    video: Path,
    frames: int,
    fmt: str,
    audio: np.ndarray,
    audio_rate: int,
) -> None:
    """Re-encode ``video`` frame for frame with a "mouth" box and the new ``audio``."""
    fps, width, height = video_stream_info(video)
    levels = _mouth_levels(audio, audio_rate, fps, frames)
    x0, x1 = int(width * 0.38), max(int(width * 0.62), int(width * 0.38) + 1)
    y_mid = int(height * 0.78)
    max_half = max(1, int(height * 0.08))

    def marked() -> Iterator[np.ndarray]:
        with av.open(str(video)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                rgb = frame.to_ndarray(format="rgb24")
                if rgb.shape[1] != width or rgb.shape[0] != height:
                    rgb = load_image_rgb(_png(rgb), (width, height))
                level = levels[i] if i < len(levels) else 0.0
                half = max(1, int(round(max_half * (0.25 + 0.75 * level))))
                rgb[max(0, y_mid - half) : min(height, y_mid + half), x0:x1] = 255
                yield rgb

    encode(Path(path), fmt, marked(), (width, height), fps, audio, audio_rate)


# --------------------------------------------------------------------------- remote media
#
# The double has no network: a remote http(s) URL in a task or an upload is answered with
# synthetic media, derived from the URL (same URL -> same content), so a graph that points
# at media on the web still runs offline. The caller logs that it did so.

SYNTHETIC_FPS = 24
SYNTHETIC_SAMPLE_RATE = 16000
_AUDIO_EXTS = ("wav", "mp3", "flac", "ogg", "m4a", "aac", "opus")
_IMAGE_EXTS = ("png", "jpg", "jpeg", "webp", "gif", "bmp")


def url_kind(url: str) -> str:
    """What a remote URL most likely holds, from its file extension: image/audio/video."""
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    ext = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    if ext in _IMAGE_EXTS:
        return "image"
    if ext in _AUDIO_EXTS:
        return "audio"
    return "video"


def _url_seed(url: str) -> int:
    return zlib.crc32(url.encode("utf-8", "surrogatepass"))


def synthetic_image(url: str, size: tuple[int, int] = (160, 96)) -> bytes:
    """A PNG gradient whose colour follows the URL."""
    width, height = size
    colour = _seed_rng(_url_seed(url)).integers(40, 256, size=3, dtype=np.uint8)
    ramp = np.linspace(0.5, 1.0, width, dtype=np.float32)[None, :, None]
    rgb = np.broadcast_to(colour[None, None, :] * ramp, (height, width, 3)).astype(np.uint8)
    return _png(np.ascontiguousarray(rgb))


def synthetic_tone(url: str, seconds: float, rate: int = SYNTHETIC_SAMPLE_RATE) -> np.ndarray:
    """Mono float audio (1, samples): a tone whose pitch follows the URL."""
    n = max(1, round(max(seconds, 0.05) * rate))
    freq = 180.0 + _url_seed(url) % 400
    t = np.arange(n, dtype=np.float64) / rate
    return (0.25 * np.sin(2 * np.pi * freq * t))[None, :].astype(np.float32)


def write_synthetic_audio(path: Path, url: str, seconds: float) -> None:
    """A mono 16-bit WAV of ``seconds`` (see :func:`synthetic_tone`)."""
    rate = SYNTHETIC_SAMPLE_RATE
    pcm = synthetic_tone(url, seconds, rate)
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="mono")
        for start in range(0, pcm.shape[1], 4096):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, start : start + 4096]), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_synthetic_video(
    path: Path, url: str, seconds: float, size: tuple[int, int] = (160, 96),
    fps: int = SYNTHETIC_FPS,
) -> None:
    """An MP4 (H.264 + AAC) of ``seconds``: a moving bar on a colour from the URL."""
    frames = ovi_frames(_url_seed(url), fps, size, seconds, synthetic_image(url, size))
    audio = synthetic_tone(url, seconds, OVI_SAMPLE_RATE)
    encode(Path(path), "MP4", frames, size, Fraction(fps), audio, OVI_SAMPLE_RATE)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


__all__ = [
    "EXT_FOR_FORMAT",
    "SYNTHETIC_FPS",
    "OUTPUT_FORMATS",
    "MediaError",
    "MediaInfo",
    "SegmentSource",
    "decode_payload",
    "fit_audio",
    "load_audio",
    "mime_for_ext",
    "probe",
    "probe_av",
    "probe_file",
    "probe_image",
    "render_ovi",
    "render_sync3",
    "resample",
    "segments_audio",
    "speech_audio",
    "stretch",
    "synthetic_image",
    "synthetic_tone",
    "url_kind",
    "write_synthetic_audio",
    "write_synthetic_video",
]
