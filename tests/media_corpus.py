"""A corpus of everyday media, made on the spot (PyAV; Debian's ffmpeg CLI for one item).

What users feed the nodes: phone clips (rotated, variable frame rate, HEVC), screen
recordings (odd sizes, OBS's MKV with B-frames, MPEG-TS, FLV), GIFs, surround and odd-rate
audio, a longer clip, a file without audio, and files cut short. Every item is small (CI
time) and says what a correct upload of it must hold. Nothing is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


class Unavailable(Exception):
    """This machine cannot make this item (an encoder or the ffmpeg CLI is missing)."""


@dataclass
class Item:
    name: str
    path: Path
    kind: str  # "video" (a VIDEO input) or "audio" (a file a user loads as AUDIO)
    frames: int = 0  # video frames the upload must hold
    width: int = 0  # as displayed (rotation applied)
    height: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    channels: int = 0  # audio channels the upload must hold (0: no audio)
    sample_rate: int = 0
    as_is: bool = False  # uploaded byte for byte
    damaged: bool = False  # must be refused before upload


def _pattern(i: int, width: int, height: int) -> np.ndarray:
    """A frame with a moving bar and a marker at the top-left corner (shows rotation)."""
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = (np.arange(width) * 255 // max(1, width - 1))[None, :]
    img[..., 2] = (np.arange(height) * 255 // max(1, height - 1))[:, None]
    img[:, (i * 3) % width, 1] = 255
    img[: max(2, height // 6), : max(2, width // 6)] = 255
    return img


def _tone(rate: int, channels: int, samples: int, start: int = 0) -> np.ndarray:
    """[channels, samples] float32: a different tone on every channel."""
    t = (np.arange(samples) + start) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t)
                     for c in range(channels)]).astype(np.float32)


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}[channels]


def write_video(path: Path, *, width: int, height: int, fps: float, frames: int,
                codec: str = "libx264", pix_fmt: str = "yuv420p", options: dict | None = None,
                audio_codec: str | None = "aac", rate: int = 48000, channels: int = 2,
                rotation: int = 0, fmt: str | None = None,
                times: list[float] | None = None, container_options: dict | None = None) -> Path:
    """One video (+ audio) file; ``times`` gives each frame's timestamp (variable rate)."""
    try:
        av.Codec(codec, "w")
        if audio_codec:
            av.Codec(audio_codec, "w")
    except Exception as exc:
        raise Unavailable(f"no encoder {exc}") from None
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as out:
        vs = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        if options:
            vs.options = options
        if times is not None:
            vs.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            if not hasattr(vs, "set_display_rotation"):
                raise Unavailable("this PyAV cannot write a display rotation")
            vs.set_display_rotation(rotation)
        astream = None
        if audio_codec:
            astream = out.add_stream(audio_codec, rate=rate)
            astream.layout = _layout(channels)
        total = int(rate * (times[-1] + 1 / fps if times else frames / fps))
        done = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_pattern(i, width, height), format="rgb24")
            if times is not None:
                frame.pts = round(times[i] * 1000)
                frame.time_base = Fraction(1, 1000)
            for pkt in vs.encode(frame):
                out.mux(pkt)
            if astream is not None:
                upto = total if i == frames - 1 else int(rate * (i + 1) / fps)
                done = _audio(out, astream, rate, channels, done, upto)
        for pkt in vs.encode():
            out.mux(pkt)
        if astream is not None:
            for pkt in astream.encode():
                out.mux(pkt)
    return path


def _audio(out, astream, rate: int, channels: int, start: int, end: int) -> int:
    if end <= start:
        return start
    fmt = astream.codec_context.format.name if astream.codec_context.format else "fltp"
    data = _tone(rate, channels, end - start, start)
    packed = np.ascontiguousarray(data.T).reshape(1, -1)  # PyAV mis-sizes 8 planar planes
    frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=_layout(channels))
    frame.sample_rate = rate
    frame.pts = start
    frame.time_base = Fraction(1, rate)
    resampler = av.AudioResampler(format=fmt, layout=_layout(channels), rate=rate)
    for piece in [*resampler.resample(frame), *resampler.resample(None)]:
        for pkt in astream.encode(piece):
            out.mux(pkt)
    return end


def write_audio(path: Path, *, rate: int, channels: int, seconds: float,
                codec: str = "pcm_s16le", fmt: str | None = None) -> Path:
    samples = int(rate * seconds)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = _layout(channels)
        _audio(out, stream, rate, channels, 0, samples)
        for pkt in stream.encode():
            out.mux(pkt)
    return path


def write_gif(path: Path, *, width: int, height: int, fps: float, frames: int) -> Path:
    with av.open(str(path), "w", format="gif") as out:
        vs = out.add_stream("gif", rate=Fraction(fps).limit_denominator(100))
        vs.width, vs.height, vs.pix_fmt = width, height, "rgb8"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_pattern(i, width, height), format="rgb24")
            for pkt in vs.encode(frame.reformat(format="rgb8")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    return path


def faststart(src: Path, dest: Path) -> Path:
    """The same packets with the index at the front (as phones and web exports write)."""
    with av.open(str(src)) as inp, \
            av.open(str(dest), "w", format="mp4", options={"movflags": "faststart"}) as out:
        streams = {s: out.add_stream_from_template(s) for s in inp.streams}
        for pkt in inp.demux():
            if pkt.size:
                pkt.stream = streams[pkt.stream]
                out.mux(pkt)
    return dest


def cut(src: Path, dest: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[:int(len(data) * fraction)])
    return dest


def ffmpeg_cli(args: list[str]) -> None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise Unavailable("the ffmpeg CLI is not installed")
    proc = subprocess.run([exe, "-v", "error", "-y", *args], capture_output=True, text=True)
    if proc.returncode:
        raise Unavailable(f"ffmpeg failed: {proc.stderr.strip()[-200:]}")


# -- the corpus ---------------------------------------------------------------------------


def _phone_rotated(d: Path) -> Item:
    p = write_video(d / "phone_portrait.mp4", width=96, height=64, fps=30, frames=20,
                    rotation=90, options={"preset": "ultrafast"})
    return Item("phone_portrait", p, "video", frames=20, width=64, height=96, fps=30,
                seconds=20 / 30, channels=2, sample_rate=48000, as_is=True)


def _phone_vfr(d: Path) -> Item:
    times = [0.0]
    for i in range(1, 24):  # 30 fps with a few long gaps, like a phone in low light
        times.append(times[-1] + (0.1 if i % 6 == 0 else 1 / 30))
    p = write_video(d / "phone_vfr.mp4", width=80, height=48, fps=30, frames=24,
                    times=times, options={"preset": "ultrafast"})
    return Item("phone_vfr", p, "video", frames=24, width=80, height=48, fps=0,
                seconds=times[-1] + 1 / 30, channels=2, sample_rate=48000, as_is=True)


def _phone_hevc(d: Path) -> Item:
    p = write_video(d / "phone_hevc.mov", width=96, height=64, fps=30, frames=15,
                    codec="libx265", rotation=270, rate=44100, channels=1,
                    options={"preset": "ultrafast", "x265-params": "log-level=error"})
    return Item("phone_hevc", p, "video", frames=15, width=64, height=96, fps=30,
                seconds=0.5, channels=1, sample_rate=44100, as_is=True)


def _obs_mkv(d: Path) -> Item:
    # OBS: MKV, x264 with B-frames (the first keyframe has no DTS), an odd canvas size
    p = write_video(d / "obs_screen.mkv", width=161, height=97, fps=30, frames=30,
                    pix_fmt="yuv444p", options={"preset": "veryfast", "bf": "2", "g": "15"})
    return Item("obs_screen_mkv", p, "video", frames=30, width=161, height=97, fps=30,
                seconds=1.0, channels=2, sample_rate=48000)


def _obs_mkv_surround(d: Path) -> Item:
    p = write_video(d / "obs_surround.mkv", width=64, height=48, fps=25, frames=25,
                    options={"preset": "ultrafast"}, channels=6)
    return Item("obs_mkv_5.1", p, "video", frames=25, width=64, height=48, fps=25,
                seconds=1.0, channels=2, sample_rate=48000)


def _mp4_surround(d: Path) -> Item:
    p = write_video(d / "movie_5.1.mp4", width=64, height=48, fps=24, frames=24,
                    options={"preset": "ultrafast"}, channels=6)
    return Item("mp4_5.1", p, "video", frames=24, width=64, height=48, fps=24, seconds=1.0,
                channels=2, sample_rate=48000)


def _vp9_mkv(d: Path) -> Item:
    p = write_video(d / "browser_vp9.mkv", width=64, height=48, fps=15, frames=15,
                    codec="libvpx-vp9", audio_codec="libopus",
                    options={"deadline": "realtime", "cpu-used": "8"}, fmt="matroska")
    return Item("vp9_opus_mkv", p, "video", frames=15, width=64, height=48, fps=15,
                seconds=1.0, channels=2, sample_rate=48000)


def _mpegts(d: Path) -> Item:
    p = write_video(d / "recorder.ts", width=64, height=48, fps=25, frames=25,
                    options={"preset": "ultrafast"}, fmt="mpegts")
    return Item("mpegts", p, "video", frames=25, width=64, height=48, fps=25, seconds=1.0,
                channels=2, sample_rate=48000)


def _flv(d: Path) -> Item:
    p = write_video(d / "stream.flv", width=64, height=48, fps=30, frames=30, rate=44100,
                    options={"preset": "ultrafast"}, fmt="flv")
    return Item("flv", p, "video", frames=30, width=64, height=48, fps=30, seconds=1.0,
                channels=2, sample_rate=44100)


def _gif(d: Path) -> Item:
    p = write_gif(d / "reaction.gif", width=65, height=47, fps=10, frames=12)
    return Item("gif", p, "video", frames=12, width=66, height=48, fps=10, seconds=1.2)


def _avi_mjpeg(d: Path) -> Item:
    p = write_video(d / "camera.avi", width=64, height=48, fps=15, frames=15, codec="mjpeg",
                    pix_fmt="yuvj420p", audio_codec="pcm_s16le", rate=8000, channels=1)
    return Item("avi_mjpeg_pcm", p, "video", frames=15, width=64, height=48, fps=15,
                seconds=1.0, channels=1, sample_rate=8000)


def _avi_xvid(d: Path) -> Item:
    # an old AVI: MPEG-4 Part 2 (an AVI codec tag MP4 does not use) + MP3: remuxed as is.
    # The AVI muxer leaves one empty frame slot after the first frame: 15 frames in 16/15 s.
    p = write_video(d / "holiday.avi", width=64, height=48, fps=15, frames=15, codec="mpeg4",
                    audio_codec="libmp3lame", rate=44100, channels=2)
    return Item("avi_mpeg4_mp3", p, "video", frames=15, width=64, height=48, fps=0,
                seconds=16 / 15, channels=2, sample_rate=44100)


def _silent(d: Path) -> Item:
    p = write_video(d / "no_audio.mp4", width=64, height=48, fps=12, frames=12,
                    audio_codec=None, options={"preset": "ultrafast"})
    return Item("no_audio", p, "video", frames=12, width=64, height=48, fps=12, seconds=1.0,
                as_is=True)


def _long(d: Path) -> Item:
    p = write_video(d / "long_talk.mp4", width=32, height=32, fps=5, frames=200, rate=8000,
                    channels=1, options={"preset": "ultrafast"})
    return Item("long_40s", p, "video", frames=200, width=32, height=32, fps=5, seconds=40,
                channels=1, sample_rate=8000, as_is=True)


def _mts_ac3(d: Path) -> Item:
    # a camcorder's .mts: MPEG-TS with H.264 and AC-3 5.1 (made by the ffmpeg CLI)
    p = d / "camcorder.mts"
    ffmpeg_cli(["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1",
                "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=1",
                "-filter_complex", "[1:a]pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0[a]",
                "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast",
                "-pix_fmt", "yuv420p", "-c:a", "ac3", "-f", "mpegts", str(p)])
    return Item("mts_h264_ac3_5.1", p, "video", frames=25, width=64, height=48, fps=25,
                seconds=1.0, channels=2, sample_rate=48000)


def _cut_mp4(d: Path) -> Item:
    whole = write_video(d / "whole.mp4", width=64, height=48, fps=12, frames=36,
                        options={"preset": "ultrafast"})
    p = cut(faststart(whole, d / "whole_faststart.mp4"), d / "cut_copy.mp4", 0.6)
    return Item("truncated_mp4", p, "video", damaged=True)


def _cut_mp4_no_index(d: Path) -> Item:
    whole = write_video(d / "whole2.mp4", width=64, height=48, fps=12, frames=36,
                        options={"preset": "ultrafast"})
    return Item("truncated_mp4_index_lost", cut(whole, d / "cut_download.mp4", 0.9), "video",
                damaged=True)


def _cut_mkv(d: Path) -> Item:
    whole = write_video(d / "whole.mkv", width=64, height=48, fps=12, frames=36,
                        options={"preset": "ultrafast"})
    return Item("truncated_mkv", cut(whole, d / "cut_recording.mkv", 0.8), "video",
                damaged=True)


def _wav_51(d: Path) -> Item:
    p = write_audio(d / "surround.wav", rate=48000, channels=6, seconds=1.0)
    return Item("wav_5.1", p, "audio", seconds=1.0, channels=2, sample_rate=48000)


def _m4a_51(d: Path) -> Item:
    p = write_audio(d / "surround.m4a", rate=48000, channels=6, seconds=1.0, codec="aac",
                    fmt="mp4")
    return Item("m4a_5.1", p, "audio", seconds=1.0, channels=2, sample_rate=48000)


def _wav_71(d: Path) -> Item:
    p = write_audio(d / "cinema_7.1.wav", rate=48000, channels=8, seconds=0.5)
    return Item("wav_7.1", p, "audio", seconds=0.5, channels=2, sample_rate=48000)


def _wav_mono_8k(d: Path) -> Item:
    p = write_audio(d / "phone_call.wav", rate=8000, channels=1, seconds=1.5)
    return Item("wav_mono_8k", p, "audio", seconds=1.5, channels=1, sample_rate=8000)


def _wav_96k(d: Path) -> Item:
    p = write_audio(d / "studio_96k.wav", rate=96000, channels=2, seconds=0.5,
                    codec="pcm_s24le")
    return Item("wav_96k_24bit", p, "audio", seconds=0.5, channels=2, sample_rate=96000)


def _mp3(d: Path) -> Item:
    p = write_audio(d / "voice.mp3", rate=44100, channels=1, seconds=1.0, codec="libmp3lame")
    return Item("mp3_mono", p, "audio", seconds=1.0, channels=1, sample_rate=44100)


MAKERS: dict[str, Callable[[Path], Item]] = {
    "phone_portrait": _phone_rotated,
    "phone_vfr": _phone_vfr,
    "phone_hevc": _phone_hevc,
    "obs_screen_mkv": _obs_mkv,
    "obs_mkv_5.1": _obs_mkv_surround,
    "mp4_5.1": _mp4_surround,
    "vp9_opus_mkv": _vp9_mkv,
    "mpegts": _mpegts,
    "flv": _flv,
    "gif": _gif,
    "avi_mjpeg_pcm": _avi_mjpeg,
    "avi_mpeg4_mp3": _avi_xvid,
    "no_audio": _silent,
    "long_40s": _long,
    "mts_h264_ac3_5.1": _mts_ac3,
    "truncated_mp4": _cut_mp4,
    "truncated_mp4_index_lost": _cut_mp4_no_index,
    "truncated_mkv": _cut_mkv,
    "wav_5.1": _wav_51,
    "m4a_5.1": _m4a_51,
    "wav_7.1": _wav_71,
    "wav_mono_8k": _wav_mono_8k,
    "wav_96k_24bit": _wav_96k,
    "mp3_mono": _mp3,
}


AUDIO_NAMES = frozenset({"wav_5.1", "m4a_5.1", "wav_7.1", "wav_mono_8k", "wav_96k_24bit",
                         "mp3_mono"})


def make(name: str, directory: Path) -> Item:
    """Make one corpus item in ``directory`` (raises Unavailable when this machine can't)."""
    directory.mkdir(parents=True, exist_ok=True)
    return MAKERS[name](directory)
