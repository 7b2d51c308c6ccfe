"""Video files given as inputs -> a file Runware takes, checked before anything is uploaded
or paid.

Runware takes MP4, MOV and WEBM. A file already in one of those, with at most two audio
channels, is uploaded as it is. Anything else is converted the cheapest way that keeps
the user's pictures untouched:

1. remux: the same video packets in a container Runware takes (no re-encode), e.g. OBS's
   MKV -> MP4. An audio track that container cannot hold, or one with more than two
   channels, is re-encoded on its own (downmixed to stereo, see ``encode.downmix_to_stereo``);
2. re-encode to H.264 MP4 only when no accepted container holds the video codec (GIF,
   MJPEG, FFV1, ...), upright (display rotation applied) and padded to even sizes.

Every source is checked first (:func:`scan_video`: demux everything, decode the last
keyframe interval), so a truncated or damaged file is refused before upload, naming the
node input; every converted file is checked the same way before it is used. ComfyUI's
``save_to`` is never used for this (0.3.x drops the first keyframe of an MKV on remux).

Conversions are bit-exact (same input -> same bytes, see ``encode.X264_THREADS``): jobs are
fingerprinted from the upload bytes, so a converted input is never paid for twice.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np

from .decode import decode_audio_track, display_size, rotation_of
from .encode import (
    AAC_RATES,
    BITEXACT_CODEC,
    BITEXACT_MUXER,
    add_h264_stream,
    downmix_to_stereo,
    encoder_frame,
)
from .files import atomic_path
from .logs import get_logger
from .media import VIDEO_MIME, MediaError, sniff_container

log = get_logger()

# Containers a video codec can be remuxed into, in order of preference (all play on
# Runware's FFmpeg-based pipeline). Codecs not listed are re-encoded to H.264.
REMUX_CONTAINERS: dict[str, tuple[str, ...]] = {
    "h264": ("mp4", "mov"),
    "hevc": ("mp4", "mov"),
    "mpeg4": ("mp4", "mov"),
    "av1": ("mp4", "webm"),
    "vp9": ("webm", "mp4"),
    "vp8": ("webm",),
    "prores": ("mov",),
}
# Audio codecs each container carries as they are; others are re-encoded to its default.
AUDIO_COPY: dict[str, frozenset[str]] = {
    "mp4": frozenset({"aac", "mp3"}),
    "mov": frozenset({"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le"}),
    "webm": frozenset({"opus", "vorbis"}),
}
AUDIO_ENCODER = {"mp4": "aac", "mov": "aac", "webm": "libopus"}
OPUS_RATES = frozenset((8000, 12000, 16000, 24000, 48000))
FIX_IT = ("Re-export the clip from the program that made it (or convert it with a video "
          "converter, e.g. to MP4), then load it again.")


@dataclass
class VideoScan:
    """What a full demux pass (and a decode of the last keyframe interval) found."""

    kind: str | None  # sniffed container: mp4 / mov / webm / mkv, or None (other)
    format_name: str  # FFmpeg's demuxer name, e.g. "matroska,webm"
    video_codec: str
    width: int  # display size: rotation applied
    height: int
    rotation: int  # degrees counter-clockwise (0, 90, 180, 270)
    fps: float
    frame_count: int  # video packets in the file
    duration: float  # seconds the video stream spans (first frame to the last one's end)
    audio_codec: str | None
    audio_channels: int
    audio_rate: int


def _label(source: Path | BinaryIO) -> str:
    return f"the file {source.name}" if isinstance(source, Path) else "the video bytes"


def _size(source: Path | BinaryIO) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    assert isinstance(source, io.BytesIO)
    return len(source.getbuffer())


def _open(source: Path | BinaryIO, input_name: str, label: str) -> Any:
    try:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        return av.open(str(source) if isinstance(source, Path) else source)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(
            f"{input_name}: {label} is not a readable video ({_short(exc)}); it may be "
            "damaged, cut short (e.g. a copy or download that did not finish), or not a "
            "video at all. Nothing was uploaded", parameter=input_name, hint=FIX_IT,
        ) from None


def _short(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() if len(text) > 120 else text


def _streams(container: Any, input_name: str, label: str) -> tuple[Any, Any]:
    vs = next((s for s in container.streams.video if s.codec_context is not None), None)
    if vs is None:
        raise MediaError(
            f"{input_name}: {label} has no video stream (pictures) it can decode",
            parameter=input_name,
            hint=f"Connect a video with pictures to {input_name}; an audio-only file goes "
                 "to an audio input (Load Audio).",
        )
    audio = next((s for s in container.streams.audio if s.codec_context is not None), None)
    return vs, audio


def _codec_name(stream: Any) -> str:
    """The codec's own name ("mp3", "av1"), not its decoder's ("mp3float", "libdav1d")."""
    codec = stream.codec_context.codec
    return str(getattr(codec, "canonical_name", None) or codec.name)


def _damaged(input_name: str, label: str, what: str) -> MediaError:
    return MediaError(
        f"{input_name}: {label} is damaged or incomplete: {what}. Runware would refuse it "
        "after the upload, so nothing was uploaded or paid for",
        parameter=input_name,
        hint="Use the complete file (a copy, download or recording that finished), or "
             + FIX_IT[0].lower() + FIX_IT[1:],
    )


def scan_video(source: Path | BinaryIO, input_name: str = "video") -> VideoScan:
    """Check that a whole video file reads, cheaply, and say what it holds.

    Demuxes every packet (no decoding): a read error, a corrupt packet, fewer packets than
    an MP4/MOV index lists, or Matroska/WEBM data ending before its stated duration means
    the file is damaged or cut short. Then decodes from the last keyframe to the end: the
    tail must decode, with no frame the decoder marks corrupt (H.264 conceals garbled data
    instead of failing). Raises :class:`MediaError` naming ``input_name``.
    """
    label = _label(source)
    size = _size(source)
    if size == 0:
        raise MediaError(f"{input_name}: {label} is empty (0 bytes)", parameter=input_name,
                         hint=FIX_IT)
    with _open(source, input_name, label) as container:
        vs, astream = _streams(container, input_name, label)
        streams = [vs] + ([astream] if astream is not None else [])
        counts = {s.index: 0 for s in streams}
        ends: dict[int, float] = {}
        v_start, v_end = math.inf, 0.0  # the video's own span (audio may run longer)
        corrupt = 0
        last_key: int | None = None  # dts (else pts) of the last video keyframe
        last_key_index = 0
        try:
            for pkt in container.demux(*streams):
                if not pkt.size:  # the demuxer's end-of-stream marker
                    continue
                counts[pkt.stream.index] += 1
                corrupt += bool(pkt.is_corrupt)
                ts = pkt.pts if pkt.pts is not None else pkt.dts
                if ts is not None and pkt.time_base is not None:
                    at = float(ts * pkt.time_base)
                    end = at + float((pkt.duration or 0) * pkt.time_base)
                    ends[pkt.stream.index] = max(end, ends.get(pkt.stream.index, end))
                    if pkt.stream is vs:
                        v_start, v_end = min(v_start, at), max(v_end, end)
                if pkt.stream is vs and pkt.is_keyframe:
                    # seek by dts: MPEG-TS seeks by it, and a pts past it (B-frames)
                    # would land after the keyframe and decode nothing
                    key_ts = pkt.dts if pkt.dts is not None else ts
                    last_key, last_key_index = key_ts, counts[vs.index] - 1
        except av.error.FFmpegError as exc:
            raise _damaged(input_name, label, f"reading stops with an error ({_short(exc)})") \
                from None
        frame_count = counts[vs.index]
        fmt = container.format.name
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else 0.0
        end = max(ends.values()) if ends else 0.0
        v_start = v_start if math.isfinite(v_start) else 0.0
        if frame_count == 0:
            raise _damaged(input_name, label, "it holds no video frames")
        if last_key is None and frame_count:
            raise _damaged(input_name, label, "its video has no keyframe to start decoding at")
        if "mp4" in fmt.split(",") or "mov" in fmt.split(","):  # the header indexes every packet
            for s in streams:
                listed = int(s.frames or 0)
                if listed and counts[s.index] < listed:
                    raise _damaged(
                        input_name, label,
                        f"its header lists {listed} {s.type} frames but the data ends after "
                        f"{counts[s.index]}")
        if ("matroska" in fmt or "webm" in fmt) and container.duration:
            stated = container.duration / av.time_base + (
                container.start_time / av.time_base if container.start_time else 0.0)
            slack = max(0.1, 2.0 / fps) if fps else 0.1
            if end < stated - slack:
                raise _damaged(input_name, label,
                               f"it should last {stated:.2f} s but its data ends at {end:.2f} s")
        if corrupt:
            raise _damaged(input_name, label, f"its data is cut off or corrupt ({corrupt} damaged "
                                              "packet(s))")
        video_codec = _codec_name(vs)
        audio_codec = _codec_name(astream) if astream is not None else None
        channels = int(astream.codec_context.channels or 0) if astream is not None else 0
        audio_rate = int(astream.codec_context.sample_rate or 0) if astream is not None else 0
        coded = (int(vs.codec_context.width or 0), int(vs.codec_context.height or 0))
    decoded, garbled, rotation, shape = _decode_tail(source, input_name, label, last_key,
                                                     last_key_index)
    need = frame_count - last_key_index
    if decoded == 0:
        raise _damaged(input_name, label, f"its last {need} frames do not decode")
    if garbled:
        raise _damaged(input_name, label, f"{garbled} of its last {need} frames decode only "
                                          "with errors (their data is garbled)")
    width, height = display_size(*(shape or coded), rotation)
    if not fps:
        fps = frame_count / (v_end - v_start) if v_end > v_start else 24.0
    return VideoScan(
        kind=sniff_container(_head(source)), format_name=fmt, video_codec=video_codec,
        width=width, height=height,
        rotation=rotation, fps=fps, frame_count=frame_count,
        duration=v_end - v_start if v_end > v_start else frame_count / fps,
        audio_codec=audio_codec, audio_channels=channels, audio_rate=audio_rate,
    )


def _head(source: Path | BinaryIO) -> bytes:
    if isinstance(source, Path):
        with open(source, "rb") as fh:
            return fh.read(64)
    assert isinstance(source, io.BytesIO)
    return bytes(source.getbuffer()[:64])


def _decode_tail(source: Path | BinaryIO, input_name: str, label: str, key_ts: int | None,
                 key_index: int) -> tuple[int, int, int, tuple[int, int] | None]:
    """Decode from the last keyframe to the end.

    Returns (frames decoded, frames garbled, rotation, (w, h)). H.264 hides garbled data:
    its decoder conceals the damage and raises nothing, but marks the frame corrupt
    (AV_FRAME_FLAG_CORRUPT), which is counted. (An open GOP's leading pictures, which
    reference the interval before the seek point, are dropped by the decoder, not
    marked.)
    """
    decoded, garbled = 0, 0
    rotation, shape = 0, None
    seek = key_index > 0 and key_ts is not None
    with _open(source, input_name, label) as container:
        vs, _ = _streams(container, input_name, label)
        vs.thread_type = "AUTO"
        try:
            for attempt in (True, False) if seek else (False,):
                if attempt:
                    container.seek(key_ts, stream=vs, backward=True, any_frame=False)
                elif seek:  # the seek decoded nothing (a demuxer that seeks past it)
                    log.debug("%s: the seek to the last keyframe of %s decoded nothing; "
                              "decoding it all", input_name, label)
                    container.seek(0, backward=True, any_frame=False)
                for frame in container.decode(vs):
                    decoded += 1
                    garbled += bool(getattr(frame, "is_corrupt", False))
                    rotation = rotation_of(frame)
                    shape = (frame.width, frame.height)
                if decoded:
                    break
        except av.error.FFmpegError as exc:
            raise _damaged(input_name, label,
                           f"its last frames do not decode ({_short(exc)})") from None
    if isinstance(source, io.BytesIO):
        source.seek(0)
    return decoded, garbled, rotation, shape


# -- converting ---------------------------------------------------------------------------


def _plan(scan: VideoScan) -> tuple[str, str]:
    """(container, audio action) for a remux; container "" means re-encode the video.

    Audio action: "none" (no audio), "copy", or "encode" (re-encoded, stereo at most).
    """
    if scan.kind in VIDEO_MIME and scan.video_codec in REMUX_CONTAINERS:
        choices: tuple[str, ...] = (scan.kind,)  # already accepted: only the audio changes
    else:
        choices = REMUX_CONTAINERS.get(scan.video_codec, ())
    if not choices:
        return "", "none" if scan.audio_codec is None else "encode"
    if scan.audio_codec is None:
        return choices[0], "none"
    for target in choices:
        if scan.audio_codec in AUDIO_COPY[target] and scan.audio_channels <= 2:
            return target, "copy"
    return choices[0], "encode"


def convert_video_file(source: Path | BinaryIO, scan: VideoScan, work_dir: Path,
                       input_name: str = "video") -> tuple[Path, str]:
    """A scanned file Runware cannot take as it is -> (a file it takes, its mime), checked."""
    work_dir.mkdir(parents=True, exist_ok=True)
    label = _label(source)
    target, audio = _plan(scan)
    result: Path | None = None
    if target:
        dest = work_dir / f"{input_name}.{target}"
        try:
            _remux(source, dest, target, audio)
            result = dest
            log.info("%s: %s (%s, %s) remuxed to %s without re-encoding the video%s",
                     input_name, label, scan.format_name, scan.video_codec, target.upper(),
                     "; audio re-encoded" + (" and downmixed to stereo"
                                             if scan.audio_channels > 2 else "")
                     if audio == "encode" else "")
        except (av.error.FFmpegError, ValueError) as exc:
            log.info("%s: remuxing %s to %s failed (%s); re-encoding instead", input_name,
                     label, target, exc)
            dest.unlink(missing_ok=True)
    if result is None:
        target = "mp4"
        dest = work_dir / f"{input_name}.mp4"
        _transcode(source, dest, scan)
        result = dest
        log.info("%s: %s (%s, %s) re-encoded to H.264 MP4 (no container Runware takes "
                 "holds %s)", input_name, label, scan.format_name, scan.video_codec,
                 scan.video_codec)
    try:
        check = scan_video(result, input_name)
    except MediaError as exc:
        raise MediaError(
            f"{input_name}: converting {label} to {target.upper()} gave a file that does not "
            f"pass the decode check ({exc.message}); nothing was uploaded",
            parameter=input_name, hint=FIX_IT,
        ) from None
    if check.frame_count < scan.frame_count:
        raise MediaError(
            f"{input_name}: converting {label} to {target.upper()} kept {check.frame_count} "
            f"of its {scan.frame_count} frames; nothing was uploaded", parameter=input_name,
            hint=FIX_IT,
        )
    return result, VIDEO_MIME[target]


def _audio_packets(source: Path | BinaryIO, out: Any, container: str) -> list[Any]:
    """The source's audio track as encoded packets of a new stream in ``out``.

    Decoded at its own rate; more than two channels are downmixed to stereo (with the
    file's channel names); then AAC (MP4/MOV) or Opus (WEBM), bit-exact.
    """
    wave, rate, names = decode_audio_track(source)
    if wave.shape[0] > 2:
        wave = downmix_to_stereo(wave, names)
    codec = AUDIO_ENCODER[container]
    rates = OPUS_RATES if codec == "libopus" else AAC_RATES
    out_rate = rate if rate in rates else 48000
    layout = "mono" if wave.shape[0] == 1 else "stereo"
    stream = out.add_stream(codec, rate=out_rate)
    stream.layout = layout
    stream.options = dict(BITEXACT_CODEC)
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    resampler = av.AudioResampler(format=fmt, layout=layout, rate=out_rate)
    data = np.ascontiguousarray(wave.numpy())
    packets: list[Any] = []
    step = rate  # one second per frame fed in
    for start in range(0, data.shape[1], step):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start:start + step]),
                                           format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for piece in resampler.resample(frame):
            packets.extend(stream.encode(piece))
    for piece in resampler.resample(None):
        packets.extend(stream.encode(piece))
    packets.extend(stream.encode(None))
    return packets


def _seconds(pkt: Any) -> float:
    ts = pkt.dts if pkt.dts is not None else pkt.pts
    return float(ts * pkt.time_base) if ts is not None and pkt.time_base is not None else 0.0


class _Interleaver:
    """Muxes pre-encoded audio packets in time order between the video packets."""

    def __init__(self, out: Any, packets: list[Any]) -> None:
        self.out = out
        self.packets = packets
        self.next = 0

    def until(self, seconds: float) -> None:
        while self.next < len(self.packets) and _seconds(self.packets[self.next]) <= seconds:
            self.out.mux(self.packets[self.next])
            self.next += 1

    def finish(self) -> None:
        self.until(math.inf)


def _remux(source: Path | BinaryIO, dest: Path, container: str, audio: str) -> None:
    """Video packets copied as they are into ``container``; audio copied or re-encoded."""
    with atomic_path(dest) as tmp, _reopen(source) as inp, \
            av.open(str(tmp), "w", format=container, options=dict(BITEXACT_MUXER)) as out:
        vs, astream = _streams(inp, "video", "")
        ov = _copy_stream(out, vs)
        oa = None
        pending = _Interleaver(out, [])
        if audio == "copy":
            oa = _copy_stream(out, astream)
        elif audio == "encode":
            pending = _Interleaver(out, _audio_packets(source, out, container))
        wanted = [vs] + ([astream] if oa is not None else [])
        for pkt in inp.demux(*wanted):
            if not pkt.size:
                continue
            if pkt.stream is vs:
                pending.until(_seconds(pkt))
                pkt.stream = ov
            else:
                pkt.stream = oa
            out.mux(pkt)
        pending.finish()


def _copy_stream(out: Any, template: Any) -> Any:
    """An output stream with ``template``'s codec parameters (packets copied as they are).

    The codec tag is cleared so the muxer picks its own (an AVI's "XVID" is no MP4 tag).
    """
    if hasattr(out, "add_stream_from_template"):  # PyAV >= 13
        stream = out.add_stream_from_template(template)
    else:
        stream = out.add_stream(template=template)
    try:
        stream.codec_context.codec_tag = "\0\0\0\0"
    except (AttributeError, ValueError, TypeError):
        log.debug("cannot clear the codec tag", exc_info=True)
    return stream


class _reopen:  # noqa: N801 - av.open over a path or a rewound BytesIO
    def __init__(self, source: Path | BinaryIO) -> None:
        self.source = source

    def __enter__(self) -> Any:
        if isinstance(self.source, io.BytesIO):
            self.source.seek(0)
        self.container = av.open(str(self.source) if isinstance(self.source, Path)
                                 else self.source)
        return self.container

    def __exit__(self, *exc: Any) -> None:
        self.container.close()
        if isinstance(self.source, io.BytesIO):
            self.source.seek(0)


class _Aligned:
    """Frame -> RGB array via a copy padded to a width that is a multiple of 32.

    FFmpeg's pixel-format conversion can read past the end of a row whose width is not a
    multiple of 32, so the edge pixels of the converted frame vary from run to run
    (ComfyUI pads for the same reason). A converted input must be the same bytes on every
    run (it is fingerprinted), so the row is padded by repeating its last pixel first.
    """

    def __init__(self, vs: Any) -> None:
        self.time_base = vs.time_base or Fraction(1, 1000)
        self.graph: Any = None
        self.key: tuple[int, int, str] | None = None

    def __call__(self, frame: Any) -> np.ndarray:
        w, h = frame.width, frame.height
        if w % 32 == 0:
            return frame.to_ndarray(format="rgb24")
        key = (w, h, frame.format.name)
        try:
            if key != self.key:
                pw, ph = (w + 31) // 32 * 32, h + h % 2
                graph = av.filter.Graph()
                src = graph.add_buffer(width=w, height=h, format=frame.format.name,
                                       time_base=self.time_base)
                pad = graph.add("pad", f"{pw}:{ph}:0:0")
                fill = graph.add("fillborders",
                                 f"left=0:right={pw - w}:top=0:bottom={ph - h}:mode=smear")
                sink = graph.add("buffersink")
                src.link_to(pad)
                pad.link_to(fill)
                fill.link_to(sink)
                graph.configure()
                self.graph, self.key = (graph, src, sink), key
            _, src, sink = self.graph
            src.push(frame)
            padded = sink.pull()
        except (av.error.FFmpegError, ValueError):  # a format the pad filter cannot take
            log.debug("cannot pad a %s frame; converting it as it is", key, exc_info=True)
            self.key = None
            return frame.to_ndarray(format="rgb24")
        return np.ascontiguousarray(padded.to_ndarray(format="rgb24")[:h, :w])


def _upright_frames(inp: Any, vs: Any) -> Iterator[np.ndarray]:
    """Decoded frames as uint8 RGB, upright, every frame the size of the first one."""
    size: tuple[int, int] | None = None
    to_rgb = _Aligned(vs)
    for frame in inp.decode(vs):
        if size is None:
            size = (frame.width, frame.height)
        if (frame.width, frame.height) != size:
            frame = frame.reformat(width=size[0], height=size[1])
        arr = to_rgb(frame)
        turns = rotation_of(frame) // 90
        yield np.rot90(arr, turns) if turns else arr


def _transcode(source: Path | BinaryIO, dest: Path, scan: VideoScan) -> None:
    """Re-encode to H.264 + AAC MP4 one frame at a time (no IMAGE tensor in memory).

    Frames get constant timestamps at the file's average rate (a variable-rate GIF keeps
    its length); odd sizes are padded by repeating the edge (H.264 4:2:0 needs even).
    """
    rate = Fraction(scan.fps).limit_denominator(1001) if scan.fps > 0 else Fraction(24)
    width, height = scan.width + scan.width % 2, scan.height + scan.height % 2
    with atomic_path(dest) as tmp, _reopen(source) as inp, \
            av.open(str(tmp), "w", format="mp4", options=dict(BITEXACT_MUXER)) as out:
        vs, _ = _streams(inp, "video", "")
        vs.thread_type = "AUTO"
        ov = add_h264_stream(out, rate, width, height)
        pending = _Interleaver(out, _audio_packets(source, out, "mp4")
                               if scan.audio_codec else [])
        index = 0
        for arr in _upright_frames(inp, vs):
            h, w = arr.shape[:2]
            if (w, h) != (width, height):
                arr = np.pad(arr, ((0, max(0, height - h)), (0, max(0, width - w)), (0, 0)),
                             mode="edge")[:height, :width]
            frame = encoder_frame(np.ascontiguousarray(arr))
            frame.pts = index
            index += 1
            for pkt in ov.encode(frame):
                pending.until(_seconds(pkt))
                out.mux(pkt)
        for pkt in ov.encode(None):
            pending.until(_seconds(pkt))
            out.mux(pkt)
        pending.finish()


# -- a video file -> upload source ------------------------------------------------------


def file_upload_source(source: Path | io.BytesIO, work_dir: Path, *,
                       input_name: str = "video") -> tuple[Path | bytes, str]:
    """A video file (or its bytes) -> (file path or bytes, mime) for ``mediaStorage``,
    checked (:func:`scan_video`) before anything is uploaded.

    A file that already is MP4 / MOV / WEBM with at most two audio channels is sent as it
    is: no re-encode. Other files are converted (:func:`convert_video_file`).
    """
    if not isinstance(source, io.BytesIO):
        source = Path(source)
        if not source.is_file():
            raise MediaError(f"{input_name}: the video file {source} does not exist",
                                  parameter=input_name, hint="Load the video again.")
    scan = scan_video(source, input_name)
    if scan.kind in VIDEO_MIME and scan.audio_channels <= 2:
        log.debug("%s: uploading %s as it is (%s)", input_name, _label(source), scan.kind)
        if isinstance(source, io.BytesIO):
            return source.getvalue(), VIDEO_MIME[scan.kind]
        return source, VIDEO_MIME[scan.kind]
    return convert_video_file(source, scan, Path(work_dir), input_name)
