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
import math
from collections.abc import Mapping, Sequence
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
from .logs import get_logger

log = get_logger()

MAX_IMAGE_SIDE = 2048  # Runware stores uploaded images at most this long on the long side
MAX_FPS = 120.0
SILENT_SAMPLE_RATE = 44100
# AAC (FFmpeg's native encoder) only takes these rates; others are resampled to 48 kHz.
AAC_RATES = frozenset(
    (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
)
X264_OPTIONS = {"preset": "veryfast", "crf": "18", "flags": "+bitexact",
                "x264-params": "mbtree=0"}
# Same input -> same bytes, on every run and after a restart: uploads are fingerprinted by
# their bytes (a new fingerprint is a new paid job). x264's output depends on its thread
# count, so it is fixed (8 keeps 2-16 core machines busy); its macroblock-tree rate
# control reads uninitialised memory at sizes that are not multiples of 16 (measured: the
# same frames gave different files), so it is off; "bitexact" keeps version strings and
# dates out of the container and the AAC/FLAC streams.
X264_THREADS = 8
BITEXACT_MUXER = {"fflags": "+bitexact"}
BITEXACT_CODEC = {"flags": "+bitexact"}
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


def is_audio(value: Any) -> bool:
    """True for an AUDIO value: any mapping with ``waveform`` and ``sample_rate``.

    ComfyUI's own AUDIO is a dict; VideoHelperSuite's Load Video hands out a lazy
    ``Mapping`` that decodes on first access. Both are accepted (as ComfyUI's SaveAudio does).
    """
    if isinstance(value, Mapping) or (hasattr(value, "keys") and hasattr(value, "__getitem__")):
        try:
            keys = set(value.keys())
        except Exception:  # a lazy mapping that cannot load its audio
            return False
        return {"waveform", "sample_rate"} <= keys
    return False


def _check_audio(audio: Any, input_name: str) -> tuple[torch.Tensor, int]:
    """AUDIO -> ([C,T] float32 CPU waveform with C <= 2, sample rate), checked.

    More than two channels are mixed down to stereo (see :func:`downmix_to_stereo`).
    """
    if not is_audio(audio):
        raise MediaError(
            f"{input_name} must be an AUDIO value (waveform + sample_rate), got "
            f"{type(audio).__name__}", parameter=input_name,
            hint=f"Connect an AUDIO output (e.g. Load Audio) to {input_name}.",
        )
    wave = audio["waveform"]
    if not isinstance(wave, torch.Tensor):
        try:
            wave = torch.as_tensor(np.asarray(wave, dtype=np.float32))
        except (TypeError, ValueError):
            raise MediaError(f"{input_name}: waveform is not an array of samples",
                             parameter=input_name,
                             hint=f"Connect an AUDIO output to {input_name}.") from None
    shape = tuple(wave.shape)
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
                         f"{shape}", parameter=input_name,
                         hint=f"Connect an AUDIO output to {input_name}.")
    try:
        rate = int(audio["sample_rate"])
    except (TypeError, ValueError):
        rate = 0
    if rate <= 0:
        raise MediaError(f"{input_name}: sample_rate must be a positive integer, got "
                         f"{audio['sample_rate']!r}", parameter=input_name,
                         hint=f"Connect an AUDIO output to {input_name}.")
    if wave.shape[1] == 0:
        raise MediaError(f"{input_name} is empty (zero samples)", parameter=input_name,
                         hint=f"Connect audio with sound in it to {input_name}.")
    wave = wave.detach().to("cpu", torch.float32)
    if torch.isnan(wave).any():
        raise MediaError(f"{input_name} contains NaN samples", parameter=input_name,
                         hint="The upstream node produced invalid audio.")
    if wave.shape[0] > 2:
        log.info("%s has %d channels; mixed down to stereo (ITU-R BS.775 coefficients)",
                 input_name, wave.shape[0])
        wave = downmix_to_stereo(wave)
    return wave, rate


def audio_seconds(audio: Any, input_name: str = "audio") -> float:
    """An AUDIO value's length in seconds (checked like an upload)."""
    wave, rate = _check_audio(audio, input_name)
    return int(wave.shape[-1]) / float(rate)


# -- downmix: any channel count -> stereo ------------------------------------------------
# Runware's audio inputs are mono or stereo. More channels are mixed the ITU-R BS.775 way
# (the "Lo/Ro" downmix): Lo = L + 0.7071 C + 0.7071 (every other left channel: side, back,
# wide, top), Ro likewise; LFE is dropped. If the mix would clip (peak above 1.0) the whole
# clip is scaled down to peak at 1.0, so nothing is clipped and quieter mixes are unchanged.
MIX_LEVEL = 0.7071  # -3 dB, BS.775's centre and surround level
# FFmpeg's default layout for a channel count (what a WAV without a channel mask means)
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1",
                    7: "6.1", 8: "7.1"}
_FRONT_LEFT, _FRONT_RIGHT = frozenset({"FL"}), frozenset({"FR"})
_LFE = frozenset({"LFE", "LFE2", "LOW_FREQUENCY", "LOW_FREQUENCY_2"})


def channel_names(count: int) -> list[str] | None:
    """FFmpeg's channel names (FL, FR, FC, LFE, ...) of the default layout for ``count``."""
    name = _DEFAULT_LAYOUTS.get(count)
    if name is None:
        return None
    return [c.name for c in av.AudioLayout(name).channels]


def _known_channel(name: str) -> bool:
    return name.upper() not in ("NONE", "UNKNOWN", "UNUSED", "") and not \
        name.upper().startswith(("USR", "AMBISONIC"))


def downmix_matrix(names: Sequence[str] | None, count: int) -> np.ndarray:
    """The [2, count] Lo/Ro matrix for channels called ``names`` (None: no known layout).

    Without names (more than 8 channels, no standard order) odd-numbered channels (1st, 3rd,
    ...) go left and the others right, each side averaged.
    """
    matrix = np.zeros((2, count), dtype=np.float32)
    if names is None or len(names) != count:
        matrix[0, 0::2] = 1.0 / len(range(0, count, 2))
        if count > 1:
            matrix[1, 1::2] = 1.0 / len(range(1, count, 2))
        else:
            matrix[1, 0] = 1.0
        return matrix
    for i, raw in enumerate(names):
        name = raw.upper()
        if name in _LFE:
            continue
        if name in _FRONT_LEFT:
            matrix[0, i] = 1.0
        elif name in _FRONT_RIGHT:
            matrix[1, i] = 1.0
        elif name.endswith("L") or name.endswith("LC") or name == "DL":
            matrix[0, i] = MIX_LEVEL
        elif name.endswith("R") or name.endswith("RC") or name == "DR":
            matrix[1, i] = MIX_LEVEL
        else:  # centre channels (FC, BC, TC, ...) and anything unnamed: both sides
            matrix[:, i] = MIX_LEVEL
    return matrix


def downmix_to_stereo(wave: torch.Tensor, names: Sequence[str] | None = None) -> torch.Tensor:
    """[C,T] float -> [2,T] float32: the Lo/Ro downmix above (C > 2), peak-limited to 1.0.

    ``names`` are the channels' FFmpeg names when the file says them; otherwise the
    default layout for the channel count is assumed.
    """
    count = int(wave.shape[0])
    if count <= 2:
        return wave
    if not names or len(names) != count or not all(_known_channel(n) for n in names):
        names = channel_names(count)  # unlabelled (e.g. a WAV without a channel mask)
    matrix = torch.from_numpy(downmix_matrix(names, count))
    mixed = matrix @ wave.to(torch.float32)
    peak = float(mixed.abs().max()) if mixed.numel() else 0.0
    if peak > 1.0:
        log.info("the stereo downmix peaks at %.2f; scaled down to peak at 1.0", peak)
        mixed.mul_(1.0 / peak)
    return mixed.contiguous()


def _layout(channels: int) -> av.AudioLayout:
    return av.AudioLayout({1: "mono", 2: "stereo"}.get(channels) or
                          _DEFAULT_LAYOUTS.get(channels, "stereo"))


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
    with av.open(str(tmp), "w", format=suffix[1:], options=dict(BITEXACT_MUXER)) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        stream.format = fmt
        stream.options = dict(BITEXACT_CODEC)
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
        with av.open(str(tmp), "w", format="mp4", options=dict(BITEXACT_MUXER)) as out:
            vstream = add_h264_stream(out, rate, ew, eh)
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
                    frame = encoder_frame(arr[j])
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


def encoder_frame(rgb: np.ndarray) -> av.VideoFrame:
    """uint8 RGB [H,W,3] (even H and W) -> a yuv420p frame, the same bytes on every run.

    FFmpeg's RGB -> YUV conversion and x264's input copy read past the end of each row
    (SIMD), into padding that is never initialised, and the stray bytes reach the encoded
    file. Encoded inputs are fingerprinted by their bytes, so the RGB rows are padded to a
    multiple of 32 pixels (last pixel repeated) before the conversion, and every byte of
    the frame handed to x264, row padding included, is written (edge pixels repeated).
    """
    h, w = int(rgb.shape[0]), int(rgb.shape[1])
    pw = (w + 31) // 32 * 32
    if pw != w:
        rgb = np.pad(rgb, ((0, 0), (0, pw - w), (0, 0)), mode="edge")
    yuv = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
        format="yuv420p")
    flat = yuv.to_ndarray().reshape(-1)
    luma, chroma = h * pw, (h // 2) * (pw // 2)
    planes = [flat[:luma].reshape(h, pw)[:, :w],
              flat[luma:luma + chroma].reshape(h // 2, pw // 2)[:, :w // 2],
              flat[luma + chroma:luma + 2 * chroma].reshape(h // 2, pw // 2)[:, :w // 2]]
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(frame.planes, planes, strict=True):
        rows, width = data.shape
        if plane.line_size != width:
            data = np.pad(data, ((0, 0), (0, plane.line_size - width)), mode="edge")
        if plane.buffer_size != rows * plane.line_size:  # rows of padding below, too
            extra = plane.buffer_size // plane.line_size - rows
            data = np.pad(data, ((0, extra), (0, 0)), mode="edge")
        plane.update(np.ascontiguousarray(data))
    return frame


def add_h264_stream(out: Any, rate: Fraction, width: int, height: int) -> Any:
    """An x264 stream with the pack's settings: yuv420p, veryfast CRF 18, deterministic."""
    vstream = out.add_stream("libx264", rate=rate)
    vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
    vstream.options = dict(X264_OPTIONS)
    vstream.codec_context.thread_count = X264_THREADS
    return vstream


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
        self.stream.options = dict(BITEXACT_CODEC)
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


# -- memory guard -----------------------------------------------------------------------

# Our decoder peaks at ~1.1x its output (bench/bench_media.py); keep this much spare too.
DECODE_OVERHEAD = 1.1
DECODE_SPARE_BYTES = 512 << 20


class NotEnoughMemoryError(MediaError):
    """Decoding frames would need more memory than the machine has available."""


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


# -- results: file -> IMAGE / AUDIO ---------------------------------------------------


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
    file's headers either way. Before frames are decoded their size is compared with the
    memory available: too big -> :class:`NotEnoughMemoryError`, the file untouched.
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
        decoded = decode_video(path, want_images=need_images, want_audio=need_audio)
        return video, decoded.images, decoded.audio, decoded.fps
    return video, None, None, probe_video(path).fps
