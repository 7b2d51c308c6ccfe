"""Node inputs -> files Runware takes: IMAGE -> PNG, AUDIO -> FLAC / WAV, IMAGE batch (+
AUDIO) -> H.264 MP4.

Whatever is encoded here is uploaded and fingerprinted by its bytes (a new fingerprint is
a new paid job), so every encoder is bit-exact: the same input gives the same bytes on
every run and after a restart. Frames are converted float -> uint8 a few at a time into
reused buffers: a long batch is never copied whole.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from .files import atomic_path
from .logs import get_logger
from .media import DEFAULT_LAYOUTS, MediaError, audio_layout, is_audio

log = get_logger()

MAX_IMAGE_SIDE = 2048  # Runware stores uploaded images at most this long on the long side
MAX_FPS = 120.0
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
ENCODE_CHUNK_BYTES = 24 << 20  # float32 scratch per step (2 frames of 720p)
AUDIO_MIME = {".flac": "audio/flac", ".wav": "audio/wav"}


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


# -- AUDIO checks and files -----------------------------------------------------------


def check_audio(audio: Any, input_name: str) -> tuple[torch.Tensor, int]:
    """AUDIO -> ([C,T] float32 CPU waveform with C <= 2, sample rate), checked.

    More than two channels are mixed down to stereo (see :func:`downmix_to_stereo`).
    """
    if not is_audio(audio, input_name):
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
    wave, rate = check_audio(audio, input_name)
    return int(wave.shape[-1]) / float(rate)


# -- downmix: any channel count -> stereo ------------------------------------------------
# Runware's audio inputs are mono or stereo. More channels are mixed the ITU-R BS.775 way
# (the "Lo/Ro" downmix): Lo = L + 0.7071 C + 0.7071 (every other left channel: side, back,
# wide, top), Ro likewise; LFE is dropped. If the mix would clip (peak above 1.0) the whole
# clip is scaled down to peak at 1.0, so nothing is clipped and quieter mixes are unchanged.
MIX_LEVEL = 0.7071  # -3 dB, BS.775's centre and surround level
_FRONT_LEFT, _FRONT_RIGHT = frozenset({"FL"}), frozenset({"FR"})
_LFE = frozenset({"LFE", "LFE2", "LOW_FREQUENCY", "LOW_FREQUENCY_2"})


def channel_names(count: int) -> list[str] | None:
    """FFmpeg's channel names (FL, FR, FC, LFE, ...) of the default layout for ``count``."""
    name = DEFAULT_LAYOUTS.get(count)
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


def audio_to_file(audio: Mapping[str, Any], dest: Path, *, input_name: str = "audio") -> Path:
    """AUDIO -> a lossless file at its own rate and channel count.

    ``dest`` ending in ``.flac``: FLAC, 24-bit (exact for 16/24-bit sources; samples beyond
    +-1 are clipped). ``.wav``: 32-bit float WAV, bit-exact.
    """
    dest = Path(dest)
    suffix = dest.suffix.lower()
    if suffix not in AUDIO_MIME:
        raise ValueError(f"audio_to_file writes .flac or .wav, not {dest.name!r}")
    wave, rate = check_audio(audio, input_name)
    channels = int(wave.shape[0])
    layout = audio_layout(channels)
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
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp, \
            av.open(str(tmp), "w", format=suffix[1:], options=dict(BITEXACT_MUXER)) as out:
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
    return dest


def audio_upload_file(audio: Mapping[str, Any], work_dir: Path, *, input_name: str = "audio",
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
    wave, sample_rate = check_audio(audio, audio_name) if audio is not None else (None, 0)
    even_h, even_w = _even_size(h, w, odd, input_name)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp, \
            av.open(str(tmp), "w", format="mp4", options=dict(BITEXACT_MUXER)) as out:
        video = add_h264_stream(out, Fraction(rate_f).limit_denominator(1001), even_w, even_h)
        writer = _AudioWriter(out, wave, sample_rate, n / rate_f) if wave is not None \
            else None
        for first, rgb in _rgb_chunks(frames, n, (h, w, c), (even_h, even_w), input_name):
            _encode_frames(out, video, rgb, first)
            if writer is not None:  # the audio in step with the video written so far
                writer.write_until((first + len(rgb)) / rate_f)
        _encode_frames(out, video, None, n)
        if writer is not None:
            writer.finish()
    return dest


def _even_size(h: int, w: int, odd: str, input_name: str) -> tuple[int, int]:
    """(height, width) H.264 in yuv420p can take: an odd side padded by one pixel, or with
    ``odd="crop"`` cropped by one (a 1-pixel side is padded anyway); logged."""
    if odd not in ("pad", "crop"):
        raise ValueError("odd must be 'pad' or 'crop'")
    if not (h % 2 or w % 2):
        return h, w
    if odd == "pad":
        eh, ew = h + h % 2, w + w % 2
    else:
        eh, ew = max(2, h - h % 2), max(2, w - w % 2)
        if eh > h or ew > w:  # a 1-pixel side cannot be cropped; pad it
            eh, ew = h + h % 2, w + w % 2
    log.info("%s: %dx%d has an odd side; H.264 needs even sizes, so the video is %dx%d "
             "(%s by one pixel)", input_name, w, h, ew, eh,
             "padded" if (eh >= h and ew >= w) else "cropped")
    return eh, ew


def _rgb_chunks(
    frames: Sequence[torch.Tensor] | torch.Tensor, n: int, shape: tuple[int, int, int],
    even: tuple[int, int], input_name: str,
) -> Iterator[tuple[int, np.ndarray]]:
    """The frames as uint8 RGB at the even size, a few at a time: (first index, [k,H,W,3]).

    Two buffers are reused for every chunk (a float32 scratch of ``ENCODE_CHUNK_BYTES`` and
    its uint8 result), so a long batch is never copied whole. A padded row or column
    repeats the edge. The array yielded is overwritten by the next chunk.
    """
    h, w, c = shape
    eh, ew = even
    chunk = max(1, min(n, ENCODE_CHUNK_BYTES // (h * w * c * 4)))
    stage = torch.empty((chunk, eh, ew, 3), dtype=torch.uint8)
    ch, cw = min(h, eh), min(w, ew)
    scratch = torch.empty((chunk, ch, cw, c), dtype=torch.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        if isinstance(frames, torch.Tensor):
            block = frames[start:stop]
        else:
            block = torch.stack([frames[i] for i in range(start, stop)])
        block = block[:, :ch, :cw].detach().cpu()
        k = stop - start
        _to_uint8_rgb(block, input_name, start, out=stage[:k, :ch, :cw], scratch=scratch)
        if eh > h:
            stage[:k, h, :cw] = stage[:k, h - 1, :cw]
        if ew > w:
            stage[:k, :, w] = stage[:k, :, w - 1]
        yield start, stage.numpy()[:k]


def _encode_frames(out: Any, video: Any, rgb: np.ndarray | None, first: int) -> None:
    """Encode uint8 RGB frames numbered from ``first`` and mux their packets; ``rgb`` None
    flushes the encoder (the last packets)."""
    if rgb is None:
        for pkt in video.encode(None):
            out.mux(pkt)
        return
    for j in range(len(rgb)):
        frame = encoder_frame(rgb[j])
        frame.pts = first + j
        for pkt in video.encode(frame):
            out.mux(pkt)


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
        padded: np.ndarray = data
        if plane.line_size != width:
            padded = np.pad(padded, ((0, 0), (0, plane.line_size - width)), mode="edge")
        if plane.buffer_size != rows * plane.line_size:  # rows of padding below, too
            extra = plane.buffer_size // plane.line_size - rows
            padded = np.pad(padded, ((0, extra), (0, 0)), mode="edge")
        # any buffer will do (read with the buffer protocol, no copy); the stub says bytes
        plane.update(np.ascontiguousarray(padded))  # type: ignore[arg-type]
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
        self.layout = audio_layout(int(wave.shape[0]))
        out_rate = rate if rate in AAC_RATES else 48000
        if out_rate != rate:
            log.info("audio at %d Hz resampled to 48000 Hz for AAC", rate)
        self.stream = out.add_stream("aac", rate=out_rate)
        self.stream.layout = self.layout
        self.stream.options = dict(BITEXACT_CODEC)
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=out_rate) \
            if out_rate != rate else None

    def _encode(self, frame: av.AudioFrame | None) -> None:
        frames: list[av.AudioFrame | None] = [frame]
        if self.resampler is not None:
            frames = list(self.resampler.resample(frame))
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
