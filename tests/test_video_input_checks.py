"""The checks of video_input that no everyday file reaches: every damaged corpus item is
already refused by the demux pass (MP4 packet count, Matroska duration). Here the damage is
made where only the later checks can see it: a conversion that goes wrong (the check of the
converted file), a remux that fails (the re-encode fallback), and garbled data inside an
intact index (the decode of the last keyframe interval).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import PACK, pack_module
from media_factory import probe, write_clip

video_input = pack_module("nodes.runware.video_input")
media = pack_module("nodes.runware.media")
host = pack_module("nodes.host")
errors = pack_module("nodes.runware.errors")
RunwareSync3 = PACK.NODE_CLASS_MAPPINGS["RunwareSync3"]


def tone(seconds: float = 1.0, rate: int = 16000) -> dict:
    t = torch.arange(int(seconds * rate)) / rate
    return {"waveform": (0.2 * torch.sin(2 * torch.pi * 330 * t)).view(1, 1, -1),
            "sample_rate": rate}


def lipsync(**kwargs):
    return asyncio.run(RunwareSync3().lipsync(sync_mode="cut_off", **kwargs))["result"]


def mkv_clip(path: Path) -> Path:
    """OBS-like: H.264 + AAC in Matroska (remuxed to MP4), a keyframe every 8 frames."""
    return write_clip(path, width=64, height=48, fps=12, frames=24, audio_rate=22050,
                      channels=2, gop=8)


def video_packets(path: Path) -> list[tuple[int, int, bool]]:
    """(file offset, size, keyframe?) of every video packet."""
    with av.open(str(path)) as c:
        return [(p.pos, p.size, p.is_keyframe) for p in c.demux(video=0) if p.size]


def garble_last_gop(path: Path, keep: int = 8) -> int:
    """Random bytes over the last keyframe interval's video packets, in place, the same
    sizes (the index stays intact). The first ``keep`` bytes of each packet are left: an
    H.264 packet's NAL length and header, so its decoder conceals rather than fails.
    Returns how many packets were garbled."""
    packets = video_packets(path)
    last_key = max(i for i, p in enumerate(packets) if p[2])
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for pos, size, _ in packets[last_key:]:
        data[pos + keep:pos + size] = rng.integers(0, 256, size - keep, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return len(packets) - last_key


# -- the converted file is checked before it is used ------------------------------------


def _cut(dest: Path) -> None:
    data = dest.read_bytes()
    dest.write_bytes(data[:len(data) * 3 // 5])


def _garbled(dest: Path) -> None:
    garble_last_gop(dest)


@pytest.mark.parametrize("damage", [_cut, _garbled], ids=["cut", "garbled"])
def test_a_conversion_that_breaks_the_file_is_refused_before_upload(env, tmp_path,
                                                                    monkeypatch, damage):
    """The remux writes a damaged MP4 (cut short, or its last keyframe interval garbled):
    the decode check of the converted file refuses it, naming the input and the file;
    nothing is uploaded or submitted."""
    clip = mkv_clip(tmp_path / "obs.mkv")
    real = video_input._remux

    def broken_remux(source, dest, container, audio):
        real(source, dest, container, audio)
        damage(dest)

    monkeypatch.setattr(video_input, "_remux", broken_remux)
    with pytest.raises(errors.ValidationError) as exc:
        lipsync(video=host.video_from_file(clip), audio=tone())
    text = str(exc.value)
    assert exc.value.parameter == "video" and text.startswith("video: converting the file "
                                                              "obs.mkv to MP4")
    assert "does not pass the decode check" in text and "nothing was uploaded" in text
    assert env.count("mediaStorage") == 0 and env.accepted_submissions() == []


def test_a_conversion_that_loses_frames_is_refused(env, tmp_path, monkeypatch):
    """A converted file that decodes but holds fewer frames than the source is refused."""
    clip = mkv_clip(tmp_path / "obs.mkv")

    def short_remux(source, dest, container, audio):
        write_clip(dest, width=64, height=48, fps=12, frames=6, audio_rate=22050)

    monkeypatch.setattr(video_input, "_remux", short_remux)
    with pytest.raises(errors.ValidationError) as exc:
        lipsync(video=host.video_from_file(clip), audio=tone())
    assert exc.value.parameter == "video"
    assert "kept 6 of its 24 frames" in str(exc.value)
    assert env.count("mediaStorage") == 0 and env.accepted_submissions() == []


@pytest.mark.parametrize("error", [
    av.error.InvalidDataError(1094995529, "Invalid data found when processing input"),
    av.error.PatchWelcomeError(1163346256, "Not yet implemented in FFmpeg, patches welcome"),
], ids=["invalid-data", "patch-welcome"])
def test_a_failing_remux_falls_back_to_re_encoding(tmp_path, monkeypatch, caplog, error):
    """Remuxing raises an FFmpeg error (after writing part of its file): the video is
    re-encoded to H.264 MP4 instead, which holds every frame and the sound. (PyAV's
    InvalidDataError is also a ValueError; PatchWelcomeError is only an FFmpegError.)"""
    clip = mkv_clip(tmp_path / "obs.mkv")
    transcodes = []
    real_transcode = video_input._transcode

    def failing_remux(source, dest, container, audio):
        dest.write_bytes(b"\0\0\0\x18ftypisom" + b"half a file" * 50)
        raise error

    def counting_transcode(source, dest, scan):
        transcodes.append(dest)
        real_transcode(source, dest, scan)

    monkeypatch.setattr(video_input, "_remux", failing_remux)
    monkeypatch.setattr(video_input, "_transcode", counting_transcode)
    with caplog.at_level(logging.INFO):
        path, mime = video_input.file_upload_source(clip, tmp_path / "work")
    assert transcodes == [path] and mime == "video/mp4" and path.suffix == ".mp4"
    assert "re-encoding instead" in caplog.text
    info = probe(path)
    assert info["frames"] == 24 and (info["width"], info["height"]) == (64, 48)
    assert info["channels"] == 2
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert len(list(c.decode(video=0))) == 24
    assert video_input.scan_video(path).frame_count == 24


# -- the last keyframe interval must decode cleanly --------------------------------------


def test_garbled_data_inside_an_intact_index_is_refused(tmp_path):
    """An MP4 whose index is intact (every packet is there, the same sizes) but whose last
    keyframe interval holds random bytes. H.264's decoder hides it (no error, every frame
    comes out, concealed), so the tail decode counts the frames it marks corrupt."""
    clip = write_clip(tmp_path / "phone.mp4", width=64, height=48, fps=12, frames=24,
                      audio_rate=22050, gop=8)
    assert video_input.scan_video(clip, "video").frame_count == 24
    garbled = garble_last_gop(clip)
    assert garbled == 8
    with av.open(str(clip)) as c:  # the premise: decoding raises nothing, no frame is lost
        frames = list(c.decode(video=0))
    assert len(frames) == 24 and any(f.is_corrupt for f in frames)
    with pytest.raises(media.MediaError) as exc:
        video_input.scan_video(clip, "video")
    text = str(exc.value)
    assert exc.value.parameter == "video" and text.startswith("video: the file phone.mp4 is "
                                                              "damaged")
    assert "of its last 8 frames decode only with errors" in text
    assert "nothing was uploaded" in text


def test_garbled_headers_in_the_last_interval_are_refused(tmp_path):
    """The same with the packets' own headers garbled too: the decoder fails outright."""
    clip = write_clip(tmp_path / "phone.mp4", width=64, height=48, fps=12, frames=24,
                      audio_rate=None, gop=8)
    garble_last_gop(clip, keep=0)
    with pytest.raises(media.MediaError, match="its last frames do not decode") as exc:
        video_input.scan_video(clip, "clip")
    assert exc.value.parameter == "clip"


def _open_gop(path: Path) -> Path:
    """40 frames of H.264 with open GOPs and B-frames, a keyframe every 10 frames."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=12)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.options = {"preset": "medium", "x264-params":
                      "open-gop=1:keyint=10:min-keyint=10:scenecut=0:bframes=3"}
        base = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 2 * i, axis=1), format="rgb24")
            for pkt in vs.encode(frame):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    return path


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_open_gop_b_frames_pass_the_tail_check(tmp_path, suffix):
    """Valid files the tail check must not refuse: open GOPs with B-frames (their leading
    pictures reference the interval before the seek point: none may count as garbled),
    and MPEG-TS, which seeks by decode time (a keyframe's pts lies past
    it there: seeking to it decoded nothing)."""
    path = _open_gop(tmp_path / f"camera{suffix}")
    keys = [i for i, p in enumerate(video_packets(path)) if p[2]]
    assert len(keys) >= 3  # the tail decode seeks
    scan = video_input.scan_video(path, "video")
    assert scan.frame_count == 40 and (scan.width, scan.height) == (64, 48)


def test_a_seek_that_decodes_nothing_falls_back_to_the_whole_stream(tmp_path):
    """Seeking an MPEG-TS file by a B-frame keyframe's pts lands past the keyframe and
    decodes nothing; the tail decode then decodes the stream from the start rather than
    call a valid file damaged."""
    path = tmp_path / "camera.ts"
    _open_gop(path)
    with av.open(str(path)) as c:
        packets = [(p.pts, p.dts, p.is_keyframe) for p in c.demux(video=0) if p.size]
    index = max(i for i, p in enumerate(packets) if p[2])
    pts, dts, _ = packets[index]
    assert pts > dts  # B-frames: the keyframe is shown after it is decoded
    decoded, garbled, _, shape = video_input._decode_tail(path, "video", "it", pts, index)
    assert decoded > 0 and garbled == 0 and shape == (64, 48)
