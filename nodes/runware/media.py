"""Media bridge: ComfyUI IMAGE / AUDIO / VIDEO <-> files Runware takes <-> decoded results.

Inputs go out as PNG (one frame), H.264 MP4 (a frame batch, with its audio), FLAC/WAV
(audio) or a VIDEO's own file bytes when they already are MP4/MOV/WEBM. Results come back
as a file on disk, decoded only as far as the node's connected outputs need.

Memory is the constraint that shapes this module: a 30 s 1080p clip is ~45 GB of float32
frames. So frames are decoded straight into one preallocated output tensor (no per-frame
list, no stack) and converted uint8 -> float32 a chunk at a time; encoding converts
float -> uint8 a chunk at a time too. No ComfyUI import here: VIDEO objects are
recognised and built through ``..host``.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
import torch
from PIL import Image

from .. import host
from .errors import ValidationError

log = logging.getLogger("runware_ovi_sync")

MAX_IMAGE_SIDE = 2048  # Runware stores uploaded images at most this long on the long side
MAX_FPS = 120.0
SILENT_SAMPLE_RATE = 44100
# AAC (FFmpeg's native encoder) only takes these rates; others are resampled to 48 kHz.
AAC_RATES = frozenset(
    (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
)
X264_OPTIONS = {"preset": "veryfast", "crf": "18"}
# Frames converted per step: up to 16, and at most this many bytes of uint8 staging (16
# frames of 720p = 44 MB); measured faster than per-frame conversion by ~2x.
DECODE_CHUNK_FRAMES = 16
DECODE_STAGE_BYTES = 64 << 20
ENCODE_CHUNK_BYTES = 24 << 20  # float32 scratch per step (2 frames of 720p)

VIDEO_MIME = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
AUDIO_MIME = {".flac": "audio/flac", ".wav": "audio/wav"}


class MediaError(ValidationError):
    """Bad media on a node input (or a result file that does not decode)."""


# -- validation helpers ---------------------------------------------------------------


def _check_fps(fps: Any, input_name: str = "fps") -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise MediaError(
            f"{input_name} must be a number, got {fps!r}", parameter=input_name,
            hint=f"Set {input_name} to the frame rate, e.g. 24.",
        ) from None
    if not math.isfinite(value) or value <= 0 or value > MAX_FPS:
        raise MediaError(
            f"{input_name} must be above 0 and at most {MAX_FPS:g}, got {value:g}",
            parameter=input_name, hint=f"Set {input_name} to the frame rate, e.g. 24 or 30.",
        )
    return value


def _as_image_tensor(images: Any, input_name: str) -> torch.Tensor:
    """An IMAGE (or a single [H,W,C] frame) -> [B,H,W,C] tensor, checked."""
    if not isinstance(images, torch.Tensor):
        raise MediaError(
            f"{input_name} must be an IMAGE tensor, got {type(images).__name__}",
            parameter=input_name, hint=f"Connect an IMAGE output to {input_name}.",
        )
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise MediaError(
            f"{input_name} must be an IMAGE [batch, height, width, channels] with 1, 3 or 4 "
            f"channels, got shape {tuple(images.shape)}",
            parameter=input_name, hint="Connect an IMAGE (not a MASK or LATENT).",
        )
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise MediaError(
            f"{input_name} is empty (shape {tuple(images.shape)})", parameter=input_name,
            hint=f"Connect an IMAGE with at least one frame to {input_name}.",
        )
    return images


def _frames_of(images: Any, input_name: str) -> tuple[Sequence[torch.Tensor] | torch.Tensor,
                                                       int, int, int, int]:
    """A batch tensor or a list of frames -> (indexable frames, N, H, W, C), sizes checked."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise MediaError(f"{input_name} is empty", parameter=input_name,
                             hint=f"Connect an IMAGE batch with frames to {input_name}.")
        frames = [_as_image_tensor(f, input_name) for f in images]
        first = frames[0].shape[1:]
        for k, f in enumerate(frames):
            if f.shape[1:] != first:
                raise MediaError(
                    f"{input_name}: frame {k} is {f.shape[2]}x{f.shape[1]} but frame 0 is "
                    f"{first[1]}x{first[0]}; all frames of a video must have one size",
                    parameter=input_name, hint="Resize the frames to one size first.",
                )
        flat = [f[i] for f in frames for i in range(f.shape[0])]
        return flat, len(flat), int(first[0]), int(first[1]), int(first[2])
    tensor = _as_image_tensor(images, input_name)
    n, h, w, c = (int(x) for x in tensor.shape)
    return tensor, n, h, w, c


def _to_uint8_rgb(block: torch.Tensor, input_name: str, first_index: int,
                  out: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """[k,H,W,C] float 0..1 -> ``out`` [k,H,W,3] uint8 (rounded); NaN -> error naming the frame.

    C = 1 is repeated to grey RGB; C = 4 drops alpha (Runware's video inputs are opaque).
    ``scratch`` (float32, at least [k,H,W,C]) avoids a fresh temporary per chunk.
    """
    if block.dtype == torch.uint8:
        src = block
    else:
        if scratch is not None and block.dtype == torch.float32:
            src = torch.mul(block, 255.0, out=scratch[:block.shape[0]])
        else:
            src = block.float() * 255.0
        # a NaN anywhere makes the sum NaN: one read pass, no mask allocated
        if math.isnan(float(src.sum())):
            bad = int(torch.isnan(src).flatten(1).any(1).nonzero()[0]) + first_index
            raise MediaError(
                f"{input_name} contains NaN values (first in frame {bad})",
                parameter=input_name,
                hint="The upstream node produced invalid pixels; check its settings.",
            )
        src.add_(0.5).clamp_(0.0, 255.0)  # copy_ to uint8 truncates: +0.5 rounds
    c = src.shape[-1]
    if c == 1:
        src = src.expand(*src.shape[:-1], 3)
    elif c == 4:
        src = src[..., :3]
    out.copy_(src)
    return out


# -- IMAGE -> PNG ---------------------------------------------------------------------


def image_to_png(
    image: torch.Tensor, *, input_name: str = "image", frame: int | None = None
) -> bytes:
    """One IMAGE frame -> PNG bytes (RGB, or RGBA when the input has alpha).

    A batch of more than one frame is an error unless ``frame`` picks one. The long side is
    scaled down to 2048 px (what Runware stores), with a log line.
    """
    images = _as_image_tensor(image, input_name)
    count = images.shape[0]
    if frame is None:
        if count > 1:
            raise MediaError(
                f"{input_name} is a batch of {count} images but this input takes one",
                parameter=input_name,
                hint="Pick one image first (e.g. with an 'Image From Batch' node).",
            )
        frame = 0
    if not -count <= frame < count:
        raise MediaError(
            f"{input_name}: frame {frame} does not exist (the batch has {count})",
            parameter=input_name, hint=f"Choose a frame between 0 and {count - 1}.",
        )
    one = images[frame].detach().cpu()
    if not one.is_floating_point() and one.dtype != torch.uint8:
        one = one.float()
    if one.is_floating_point():
        if torch.isnan(one).any():
            raise MediaError(f"{input_name} contains NaN values", parameter=input_name,
                             hint="The upstream node produced invalid pixels.")
        arr = one.float().mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()
    else:
        arr = one.numpy()
    channels = arr.shape[-1]
    if channels == 1:
        pil = Image.fromarray(arr[..., 0], "L")
    else:
        pil = Image.fromarray(np.ascontiguousarray(arr), "RGBA" if channels == 4 else "RGB")
    if max(pil.size) > MAX_IMAGE_SIDE:
        scale = MAX_IMAGE_SIDE / max(pil.size)
        size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
        log.info("%s: %dx%d is larger than Runware's %d px limit; scaled to %dx%d",
                 input_name, pil.width, pil.height, MAX_IMAGE_SIDE, *size)
        pil = pil.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


def image_to_data_uri(
    image: torch.Tensor, *, input_name: str = "image", frame: int | None = None
) -> str:
    """One IMAGE frame -> ``data:image/png;base64,...`` for inline use in a task."""
    png = image_to_png(image, input_name=input_name, frame=frame)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# -- AUDIO checks and files -----------------------------------------------------------


def _check_audio(audio: Any, input_name: str) -> tuple[torch.Tensor, int]:
    """AUDIO dict -> ([C,T] float32 CPU waveform, sample rate), checked."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise MediaError(
            f"{input_name} must be an AUDIO value (waveform + sample_rate)",
            parameter=input_name,
            hint=f"Connect an AUDIO output (e.g. Load Audio) to {input_name}.",
        )
    wave = audio["waveform"]
    if not isinstance(wave, torch.Tensor):
        wave = torch.as_tensor(np.asarray(wave))
    if wave.ndim == 3:
        if wave.shape[0] != 1:
            raise MediaError(
                f"{input_name} is a batch of {wave.shape[0]} audio clips but this input takes one",
                parameter=input_name,
                hint="Split the batch or pick one clip before this node.",
            )
        wave = wave[0]
    elif wave.ndim == 1:
        wave = wave.unsqueeze(0)
    if wave.ndim != 2 or wave.shape[0] < 1:
        raise MediaError(f"{input_name}: waveform must be [1, channels, samples], got "
                         f"{tuple(audio['waveform'].shape)}", parameter=input_name)
    if wave.shape[0] > 8:
        raise MediaError(f"{input_name} has {wave.shape[0]} channels; at most 8 are supported",
                         parameter=input_name, hint="Mix the audio down to stereo first.")
    try:
        rate = int(audio["sample_rate"])
    except (TypeError, ValueError):
        rate = 0
    if rate <= 0:
        raise MediaError(f"{input_name}: sample_rate must be a positive integer, got "
                         f"{audio['sample_rate']!r}", parameter=input_name)
    if wave.shape[1] == 0:
        raise MediaError(f"{input_name} is empty (zero samples)", parameter=input_name,
                         hint=f"Connect audio with sound in it to {input_name}.")
    wave = wave.detach().to("cpu", torch.float32)
    if torch.isnan(wave).any():
        raise MediaError(f"{input_name} contains NaN samples", parameter=input_name,
                         hint="The upstream node produced invalid audio.")
    return wave, rate


def _layout(channels: int) -> av.AudioLayout:
    return av.AudioLayout({1: "mono", 2: "stereo"}.get(channels, channels))


def audio_to_file(audio: dict, dest: Path, *, input_name: str = "audio") -> Path:
    """AUDIO -> a lossless file at its own rate and channel count.

    ``dest`` ending in ``.flac``: FLAC, 24-bit (exact for 16/24-bit sources; samples beyond
    +-1 are clipped). ``.wav``: 32-bit float WAV, bit-exact.
    """
    dest = Path(dest)
    suffix = dest.suffix.lower()
    if suffix not in AUDIO_MIME:
        raise ValueError(f"audio_to_file writes .flac or .wav, not {dest.name!r}")
    wave, rate = _check_audio(audio, input_name)
    channels = int(wave.shape[0])
    layout = _layout(channels)
    if suffix == ".flac":
        peak = float(wave.abs().max())
        if peak > 1.0:
            log.warning("%s peaks at %.2f (above 1.0); clipped in the FLAC file", input_name, peak)
        # s32 with the low 8 bits unused: FFmpeg's FLAC encoder stores 24 bits.
        data = (wave.clamp(-1.0, 1.0) * 2147483392.0).round().to(torch.int32)
        codec, fmt = "flac", "s32"
    else:
        data = wave
        codec, fmt = "pcm_f32le", "flt"
    packed = np.ascontiguousarray(data.numpy().T).reshape(1, -1)  # interleaved samples
    tmp = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(tmp), "w", format=suffix[1:]) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        stream.format = fmt
        frame = av.AudioFrame.from_ndarray(packed, format=fmt, layout=layout.name)
        frame.sample_rate = rate
        frame.pts = 0
        for pkt in stream.encode(frame):
            out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    tmp.replace(dest)
    return dest


def audio_upload_file(audio: dict, work_dir: Path, *, input_name: str = "audio",
                      name: str = "audio") -> tuple[Path, str]:
    """AUDIO -> (FLAC file in ``work_dir``, mime) ready for ``mediaStorage``."""
    path = audio_to_file(audio, Path(work_dir) / f"{name}.flac", input_name=input_name)
    return path, AUDIO_MIME[".flac"]


# -- IMAGE batch (+ AUDIO) -> MP4 -----------------------------------------------------


def frames_to_mp4(
    images: torch.Tensor | Sequence[torch.Tensor],
    fps: float,
    dest: Path,
    audio: dict | None = None,
    *,
    input_name: str = "images",
    odd: str = "pad",
    fps_name: str = "fps",
    audio_name: str = "audio",
) -> Path:
    """IMAGE batch -> H.264 (yuv420p, x264 veryfast crf 18) MP4, with AAC audio if given.

    H.264 in yuv420p needs even sizes: an odd width/height is padded by one pixel (the edge
    repeated) or, with ``odd="crop"``, cropped by one; either is logged. The audio is cut
    to the video's length (as ComfyUI's own writer does). Written to a ``.part`` file first.
    """
    frames, n, h, w, c = _frames_of(images, input_name)
    rate_f = _check_fps(fps, fps_name)
    wave, sample_rate = _check_audio(audio, audio_name) if audio is not None else (None, 0)
    if odd not in ("pad", "crop"):
        raise ValueError("odd must be 'pad' or 'crop'")
    eh, ew = h, w
    if h % 2 or w % 2:
        if odd == "pad":
            eh, ew = h + h % 2, w + w % 2
        else:
            eh, ew = max(2, h - h % 2), max(2, w - w % 2)
            if eh > h or ew > w:  # a 1-pixel side cannot be cropped; pad it
                eh, ew = h + h % 2, w + w % 2
        log.info("%s: %dx%d has an odd side; H.264 needs even sizes, so the video is %dx%d "
                 "(%s by one pixel)", input_name, w, h, ew, eh,
                 "padded" if (eh >= h and ew >= w) else "cropped")
    rate = Fraction(rate_f).limit_denominator(1001)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    chunk = max(1, min(n, ENCODE_CHUNK_BYTES // (h * w * c * 4)))
    stage = torch.empty((chunk, eh, ew, 3), dtype=torch.uint8)
    scratch = torch.empty((chunk, min(h, eh), min(w, ew), c), dtype=torch.float32)
    ch, cw = min(h, eh), min(w, ew)
    try:
        with av.open(str(tmp), "w", format="mp4") as out:
            vstream = out.add_stream("libx264", rate=rate)
            vstream.width, vstream.height, vstream.pix_fmt = ew, eh, "yuv420p"
            vstream.options = dict(X264_OPTIONS)
            vstream.codec_context.thread_count = 0  # x264 picks its own thread count
            writer = _AudioWriter(out, wave, sample_rate, n / rate_f) if wave is not None \
                else None
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                if isinstance(frames, torch.Tensor):
                    block = frames[start:stop]
                else:
                    block = torch.stack([frames[i] for i in range(start, stop)])
                block = block[:, :ch, :cw].detach().cpu()
                k = stop - start
                view = stage[:k, :ch, :cw]
                _to_uint8_rgb(block, input_name, start, out=view, scratch=scratch)
                if eh > h:
                    stage[:k, h, :cw] = stage[:k, h - 1, :cw]
                if ew > w:
                    stage[:k, :, w] = stage[:k, :, w - 1]
                arr = stage.numpy()
                for j in range(k):
                    frame = av.VideoFrame.from_ndarray(arr[j], format="rgb24")
                    frame.pts = start + j
                    for pkt in vstream.encode(frame):
                        out.mux(pkt)
                if writer is not None:
                    writer.write_until(stop / rate_f)
            for pkt in vstream.encode(None):
                out.mux(pkt)
            if writer is not None:
                writer.finish()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dest)
    return dest


class _AudioWriter:
    """Feeds AAC in step with the video (so the muxer never buffers much), cut to length."""

    def __init__(self, out: Any, wave: torch.Tensor, rate: int, seconds: float) -> None:
        self.out = out
        total = min(int(wave.shape[1]), math.ceil(rate * seconds))
        if total < wave.shape[1]:
            log.info("audio is %.2f s, the video %.2f s: audio cut to the video's length",
                     wave.shape[1] / rate, seconds)
        self.wave = wave[:, :total].numpy()
        self.rate = rate
        self.total = total
        self.done = 0
        self.layout = _layout(int(wave.shape[0]))
        out_rate = rate if rate in AAC_RATES else 48000
        if out_rate != rate:
            log.info("audio at %d Hz resampled to 48000 Hz for AAC", rate)
        self.stream = out.add_stream("aac", rate=out_rate)
        self.stream.layout = self.layout
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=out_rate) \
            if out_rate != rate else None

    def _encode(self, frame: av.AudioFrame | None) -> None:
        frames = [frame]
        if self.resampler is not None:
            frames = self.resampler.resample(frame)
            if frame is None:
                frames = [*frames, None]
        for f in frames:
            for pkt in self.stream.encode(f):
                self.out.mux(pkt)

    def write_until(self, seconds: float) -> None:
        upto = min(self.total, math.ceil(seconds * self.rate))
        if upto <= self.done:
            return
        block = np.ascontiguousarray(self.wave[:, self.done:upto])
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self.layout.name)
        frame.sample_rate = self.rate
        frame.pts = self.done
        frame.time_base = Fraction(1, self.rate)
        self.done = upto
        self._encode(frame)

    def finish(self) -> None:
        self.write_until(self.total / self.rate)
        self._encode(None)


# -- VIDEO input -> upload source ------------------------------------------------------


def sniff_container(head: bytes) -> str | None:
    """"mp4" / "mov" / "webm" / "mkv" from a file's first bytes, or None."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in head[:64] else "mkv"
    return None


def _check_opens(source: str | Path | BinaryIO, input_name: str, label: str) -> None:
    """Read the headers only (no decoding): refuse a file without a video stream."""
    try:
        with av.open(source if not isinstance(source, Path) else str(source)) as container:
            if not container.streams.video:
                raise MediaError(f"{input_name}: {label} has no video stream",
                                 parameter=input_name, hint="Connect a video with picture.")
    except av.error.FFmpegError as exc:
        raise MediaError(f"{input_name}: {label} is not a readable video ({exc})",
                         parameter=input_name, hint="Re-encode the video (e.g. as MP4).") from None
    finally:
        if isinstance(source, io.BytesIO):
            source.seek(0)


def video_upload_source(
    video: Any, work_dir: Path, *, input_name: str = "video"
) -> tuple[Path | bytes, str]:
    """A ComfyUI VIDEO -> (file path or bytes, mime) for ``mediaStorage``.

    A video backed by a file or bytes that already are MP4 / MOV / WEBM is sent as it is:
    no decode, no re-encode. Tensors in memory (VideoFromComponents) are encoded once
    with :func:`frames_to_mp4`; anything else is written once with its own ``save_to``
    (a cheap remux for files in other containers), falling back to its components.
    """
    if video is None:
        raise MediaError(f"{input_name} is not connected", parameter=input_name,
                         hint=f"Connect a VIDEO (e.g. Load Video) to {input_name}.")
    work_dir = Path(work_dir)
    if isinstance(video, (str, Path)):
        source: Any = Path(video)
    else:
        source = host.video_file_source(video)
        if source is None and not hasattr(video, "get_components"):
            raise MediaError(
                f"{input_name} must be a VIDEO, got {type(video).__name__}",
                parameter=input_name, hint=f"Connect a VIDEO output to {input_name}.",
            )
    if isinstance(source, io.BytesIO):
        kind = sniff_container(bytes(source.getbuffer()[:64]))
        if kind in VIDEO_MIME:
            _check_opens(source, input_name, "the video bytes")
            log.debug("%s: uploading the video's own %s bytes as they are", input_name, kind)
            return source.getvalue(), VIDEO_MIME[kind]
    elif source is not None:
        path = Path(source)
        if not path.is_file():
            raise MediaError(f"{input_name}: the video file {path} does not exist",
                             parameter=input_name, hint="Load the video again.")
        with open(path, "rb") as fh:
            kind = sniff_container(fh.read(64))
        if kind in VIDEO_MIME:
            _check_opens(path, input_name, f"the file {path.name}")
            log.debug("%s: uploading %s as it is (%s)", input_name, path, kind)
            return path, VIDEO_MIME[kind]
    work_dir.mkdir(parents=True, exist_ok=True)
    dest = work_dir / f"{input_name}.mp4"
    if host.is_components_video(video):
        components = video.get_components()
        return _encode_components(components, dest, input_name), VIDEO_MIME["mp4"]
    if source is not None or hasattr(video, "save_to"):
        try:
            if source is not None and not hasattr(video, "save_to"):
                raise TypeError("a bare path has no save_to")
            video.save_to(str(dest))
            with open(dest, "rb") as fh:
                if sniff_container(fh.read(64)) == "mp4":
                    log.info("%s: rewritten once as MP4 with its own save_to", input_name)
                    return dest, VIDEO_MIME["mp4"]
        except Exception as exc:  # a container/codec MP4 cannot hold: re-encode instead
            log.info("%s: save_to as MP4 failed (%s); re-encoding", input_name, exc)
    if source is not None:
        decoded = decode_video(source if isinstance(source, io.BytesIO) else Path(source))
        assert decoded.images is not None
        frames_to_mp4(decoded.images, decoded.fps, dest, decoded.audio, input_name=input_name)
        return dest, VIDEO_MIME["mp4"]
    return _encode_components(video.get_components(), dest, input_name), VIDEO_MIME["mp4"]


def _encode_components(components: Any, dest: Path, input_name: str) -> Path:
    images = getattr(components, "images", None)
    frame_rate = getattr(components, "frame_rate", None)
    audio = getattr(components, "audio", None)
    log.info("%s: encoding the video's frames to MP4", input_name)
    return frames_to_mp4(images, float(frame_rate) if frame_rate else 0.0, dest, audio,
                         input_name=input_name, fps_name=f"{input_name} frame rate",
                         audio_name=f"{input_name} audio")


# -- results: file -> IMAGE / AUDIO ---------------------------------------------------


@dataclass
class DecodedVideo:
    images: torch.Tensor | None  # [N,H,W,3] float32 0..1, or None when not asked for
    audio: dict | None  # {"waveform": [1,C,T] float32, "sample_rate": int}
    fps: float
    frame_count: int
    width: int
    height: int
    duration: float


@dataclass
class VideoInfo:
    """What a video file's headers say (no decoding)."""

    fps: float
    frame_count: int  # from the container; an estimate for some formats (WEBM)
    width: int
    height: int
    duration: float
    has_audio: bool
    sample_rate: int | None
    channels: int | None
    container: str


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


def probe_video(path: Path | str | BinaryIO) -> VideoInfo:
    """A video's fps, size, frame count and audio facts from its headers (no decoding).

    When the headers hold no frame count (WEBM, MKV) the video packets are counted
    (demuxed, not decoded): sync-3's frame-number, box and segment-end checks need the
    exact count, the one Runware and the offline double get by decoding.
    """
    with _open_result(path) as container:
        vs, audio, fps, count, width, height = _stream_facts(container, path)
        if not vs.frames:
            count = sum(1 for packet in container.demux(vs) if packet.size) or count
        return VideoInfo(
            fps=fps, frame_count=count, width=width, height=height,
            duration=count / fps if fps else 0.0, has_audio=audio is not None,
            sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
            channels=int(audio.codec_context.channels) if audio is not None else None,
            container=container.format.name,
        )


class _FrameSink:
    """Decoded frames -> one preallocated float32 [N,H,W,3].

    Frames are staged as uint8 (16 at a time) and each full stage is converted to float in
    one pass by a helper thread (torch releases the GIL) while the next stage fills: two
    stage buffers, so conversion overlaps decoding and RGB conversion.
    """

    def __init__(self, capacity: int, height: int, width: int) -> None:
        self.h, self.w = height, width
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
        if frame.width != self.w or frame.height != self.h:  # size change mid-stream
            arr = frame.to_ndarray(format="rgb24", width=self.w, height=self.h)
        else:
            arr = frame.to_ndarray(format="rgb24")
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
        self.layout = ctx.layout if ctx.layout and ctx.layout.nb_channels else _layout(
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
                    plane, dtype=np.float32, count=n)
            self.count += n

    def result(self) -> dict:
        self.add(None)
        wave = self.buf[:, :self.count]
        if self.count != self.buf.shape[1]:
            wave = wave.copy()  # contiguous, and the spare capacity is freed
        return {"waveform": torch.from_numpy(wave).unsqueeze(0), "sample_rate": self.rate}


def decode_video(
    path: Path | str | BinaryIO, *, want_images: bool = True, want_audio: bool = True
) -> DecodedVideo:
    """A video file -> IMAGE [N,H,W,3] float32 0..1 and AUDIO, in one demux pass.

    Frames go straight into one preallocated tensor (sized from the container's frame
    count, grown if a file holds more); audio keeps the file's rate and channels. A file
    without audio gives silent audio of the video's length and a warning. Only the
    streams asked for are decoded.
    """
    label = path if not isinstance(path, io.IOBase) else "the video bytes"
    with _open_result(path) as container:
        vs, astream, fps, estimate, width, height = _stream_facts(container, label)
        frames = _FrameSink(estimate + (0 if vs.frames else 2), height, width) \
            if want_images else None
        audio_sink = None
        if want_audio and astream is not None:
            seconds = estimate / fps if fps else 0.0
            audio_sink = _AudioSink(astream, math.ceil(seconds * astream.codec_context.sample_rate)
                                    + 4096)
        streams = []
        if frames is not None:
            vs.thread_type = "AUTO"  # frame + slice threads
            streams.append(vs)
        if audio_sink is not None:
            streams.append(astream)
        try:
            for packet in container.demux(*streams) if streams else ():
                decoded = packet.decode()
                if packet.stream is vs:
                    assert frames is not None
                    for frame in decoded:
                        frames.add(frame)
                else:
                    assert audio_sink is not None
                    for frame in decoded:
                        audio_sink.add(frame)
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
        images = frames.result() if frames is not None else None
        count = int(images.shape[0]) if images is not None else estimate
        if images is not None and count == 0:
            raise MediaError(f"{label} holds no video frames", parameter="video",
                             hint="The result is empty; run the node again.")
        audio = audio_sink.result() if audio_sink is not None else None
    duration = count / fps if fps else 0.0
    if want_audio and audio is None:
        log.warning("%s has no audio track; the AUDIO output is %.2f s of silence",
                    label if not isinstance(label, Path) else label.name, duration)
        audio = {"waveform": torch.zeros((1, 1, round(duration * SILENT_SAMPLE_RATE)),
                                         dtype=torch.float32),
                 "sample_rate": SILENT_SAMPLE_RATE}
    return DecodedVideo(images=images, audio=audio, fps=fps, frame_count=count, width=width,
                        height=height, duration=duration)


# -- which outputs are wanted ---------------------------------------------------------


def linked_outputs(prompt: Any, unique_id: str | None, count: int) -> set[int] | None:
    """The output slots (0..count-1) of node ``unique_id`` that the running prompt links.

    ``prompt`` is the hidden PROMPT (API format ``{id: {"inputs": {name: value or
    [origin_id, slot]}}}``) or a DYNPROMPT (which also sees nodes made by expansion).
    Ids are compared as strings, so subgraph ids such as ``"12:5"`` work. None means
    "cannot tell" (no prompt, or this node is not in it): decode everything.
    """
    if unique_id is None or prompt is None:
        return None
    uid = str(unique_id)
    nodes: list[Any]
    if hasattr(prompt, "all_node_ids") and hasattr(prompt, "get_node"):
        ids = list(prompt.all_node_ids())
        if uid not in {str(i) for i in ids}:
            return None
        nodes = [prompt.get_node(i) for i in ids]
    elif isinstance(prompt, dict) and prompt:
        if uid not in {str(k) for k in prompt}:
            return None
        nodes = list(prompt.values())
    else:
        return None
    linked: set[int] = set()
    for node in nodes:
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for value in inputs.values():
            if (isinstance(value, list) and len(value) == 2 and str(value[0]) == uid
                    and isinstance(value[1], (int, float)) and not isinstance(value[1], bool)):
                slot = int(value[1])
                if 0 <= slot < count:
                    linked.add(slot)
    return linked


def outputs_fingerprint(prompt: Any, unique_id: str | None, count: int) -> str:
    """A string for IS_CHANGED: changes when the set of linked outputs changes.

    ComfyUI caches a node by its inputs only; without this, connecting a previously
    unconnected IMAGE output would be served the cached ``None``.
    """
    linked = linked_outputs(prompt, unique_id, count)
    return "all" if linked is None else ",".join(str(s) for s in sorted(linked))


def results_to_outputs(
    path: Path, *, need_images: bool, need_audio: bool
) -> tuple[Any, torch.Tensor | None, dict | None, float]:
    """A downloaded result -> (VIDEO, IMAGE or None, AUDIO or None, fps).

    The VIDEO is ComfyUI's lazy ``VideoFromFile`` over the file (or the local stand-in):
    it costs nothing. IMAGE/AUDIO are decoded only when asked for; fps comes from the
    file's headers either way.
    """
    path = Path(path)
    video = host.video_from_file(path)
    if need_images or need_audio:
        decoded = decode_video(path, want_images=need_images, want_audio=need_audio)
        return video, decoded.images, decoded.audio, decoded.fps
    return video, None, None, probe_video(path).fps
