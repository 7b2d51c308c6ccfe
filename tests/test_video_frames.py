"""Runware Video Frames and the memory guard on decoded frames."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import video_standins
from conftest import PACK, pack_module
from media_corpus import Unavailable, make
from media_factory import write_clip

media = pack_module("nodes.runware.media")
decode = pack_module("nodes.runware.decode")
host = pack_module("nodes.host")
VideoFrames = PACK.NODE_CLASS_MAPPINGS["RunwareVideoFrames"]
RunwareOvi = PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("vf") / "clip.mp4", width=96, height=64, fps=12,
                      frames=24, audio_rate=22050, channels=2)


def reference(path: Path) -> torch.Tensor:
    """ComfyUI's GetVideoComponents values: frame by frame, / 255."""
    with av.open(str(path)) as c:
        return torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24")) / 255.0
                            for f in c.decode(video=0)])


def split(video, **kwargs):
    args = {"frame_cap": 0, "every_nth": 1, "max_size": 0, **kwargs}
    return VideoFrames().split(video, **args)


def test_all_frames_and_audio_are_comfyuis_values(clip):
    images, audio, fps, count = split(host.video_from_file(clip))
    assert torch.equal(images, reference(clip))
    assert (fps, count) == (12.0, 24)
    whole = decode.decode_video(clip, want_images=False)
    assert torch.equal(audio["waveform"], whole.audio["waveform"])
    assert audio["sample_rate"] == 22050


def test_cap_and_every_nth_keep_timing(clip):
    images, audio, fps, count = split(host.video_from_file(clip), frame_cap=5, every_nth=3)
    assert torch.equal(images, reference(clip)[::3][:5])
    assert (fps, count) == (4.0, 5)
    # the audio ends where the 5 kept frames end: 5 x 3 / 12 = 1.25 s
    assert audio["waveform"].shape[-1] == math.ceil(1.25 * 22050)
    images, audio, fps, count = split(host.video_from_file(clip), every_nth=5)
    assert count == 5 and fps == pytest.approx(2.4)  # frames 0, 5, 10, 15, 20
    assert audio["waveform"].shape[-1] / 22050 == pytest.approx(2.0, abs=0.1)


def test_a_check_that_raises_stops_the_decode_within_a_packet(clip):
    """What the nodes pass as ComfyUI's Cancel check: it runs before every packet, and
    its exception ends the decode there (the frames already made are dropped)."""
    calls = []

    class Stop(BaseException):  # ComfyUI's interrupt is a BaseException
        pass

    def check():
        calls.append(1)
        if len(calls) == 3:
            raise Stop

    with pytest.raises(Stop):
        decode.decode_video(clip, check=check)
    assert len(calls) == 3  # not one more packet after the stop
    full = []
    decode.decode_video(clip, check=lambda: full.append(1))
    assert len(full) > 3  # the check runs once per packet, all through


def test_max_size_scales_the_long_side(clip):
    images, _, _, count = split(host.video_from_file(clip), max_size=48)
    assert images.shape == (24, 32, 48, 3) and count == 24
    expected = torch.nn.functional.interpolate(reference(clip).movedim(-1, 1), size=(32, 48),
                                               mode="area").movedim(1, -1)
    assert float((images - expected).abs().mean()) < 0.02
    assert split(host.video_from_file(clip), max_size=500)[0].shape == (24, 64, 96, 3)


def test_rotated_phone_clip_comes_out_upright(tmp_path):
    try:
        item = make("phone_portrait", tmp_path)
    except Unavailable as exc:
        pytest.skip(str(exc))
    images, _, fps, count = split(host.video_from_file(item.path), max_size=48)
    assert images.shape == (20, 48, 32, 3) and count == 20 and fps == 30.0


def test_a_video_in_memory(clip):
    frames = reference(clip)
    audio = {"waveform": torch.rand(1, 2, 44100), "sample_rate": 22050}
    video = video_standins.video_from_components(frames, 12.0, audio)
    images, out_audio, fps, count = split(video, frame_cap=4, every_nth=2, max_size=48)
    assert images.shape == (4, 32, 48, 3) and (fps, count) == (6.0, 4)
    assert out_audio["waveform"].shape[-1] == math.ceil(4 * 2 / 12 * 22050)
    images, out_audio, fps, count = split(video_standins.video_from_components(frames, 12.0))
    assert torch.equal(images, frames) and count == 24
    assert not out_audio["waveform"].any()  # silence of the video's length
    assert out_audio["waveform"].shape[-1] == 2 * decode.SILENT_SAMPLE_RATE


def test_not_a_video():
    with pytest.raises(media.MediaError) as exc:
        split(torch.zeros(1, 4, 4, 3))
    assert exc.value.parameter == "video"
    with pytest.raises(media.MediaError, match="not connected"):
        split(None)


# -- the memory guard ------------------------------------------------------------------


def test_guard_refuses_before_decoding(clip, monkeypatch):
    def no_decode(*args, **kwargs):
        raise AssertionError("decoding started")

    monkeypatch.setattr(decode, "available_memory", lambda: 256 << 20)
    monkeypatch.setattr(decode, "decode_video", no_decode)
    with pytest.raises(media.NotEnoughMemoryError) as exc:
        split(host.video_from_file(clip))
    text = str(exc.value)
    assert exc.value.parameter == "video"
    assert "24 frames of 96x64" in text and "0.2 GiB is available" in text
    assert "frame_cap" in text and "every_nth" in text and "max_size" in text


def test_guard_counts_what_the_options_keep(clip, monkeypatch):
    need = decode.frames_bytes(24, 96, 64) * decode.DECODE_OVERHEAD + decode.DECODE_SPARE_BYTES
    monkeypatch.setattr(decode, "available_memory", lambda: int(need) - 1)
    with pytest.raises(media.NotEnoughMemoryError):
        split(host.video_from_file(clip))
    images, *_ = split(host.video_from_file(clip), every_nth=2)  # half the frames fit
    assert images.shape[0] == 12


def test_guard_on_a_model_result_keeps_the_paid_file(env, monkeypatch):
    args = dict(prompt="A robot says <S>hi<E>.", seed=3, steps=30, fps=12, video_cfg_scale=5.0,
                audio_cfg_scale=4.0)
    monkeypatch.setattr(decode, "available_memory", lambda: 64 << 20)
    with pytest.raises(media.NotEnoughMemoryError) as exc:
        asyncio.run(RunwareOvi().generate(**args))
    text = str(exc.value)
    assert exc.value.parameter == "images"
    assert "images output" in text and "video output" in text
    assert "Runware Video Frames" in text and "no new charge" in text
    kept = next(Path(w.strip(".,")) for w in text.split() if w.endswith((".mp4", ".mp4.")))
    assert kept.is_file()
    assert len(env.accepted_submissions()) == 1
    # the user disconnects images and queues again: the cached file, no new job
    graph = {"5": {"class_type": "RunwareOvi", "inputs": {}},
             "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0]}}}
    out = asyncio.run(RunwareOvi().generate(**args, unique_id="5", graph=graph))["result"]
    video, images, audio, fps, info = out
    assert images == [None] and json.loads(info[0])["cached"] is True
    assert len(env.accepted_submissions()) == 1
    # and Video Frames gets part of it within the memory there is
    monkeypatch.setattr(decode, "available_memory", lambda: (512 << 20) + 60 * 16 * 16 * 12 * 5)
    frames, _, _, count = split(video[0], frame_cap=10, max_size=16)
    assert count == 10 and max(frames.shape[1:3]) == 16


def test_guard_is_off_without_psutil(monkeypatch, clip):
    import builtins

    real = builtins.__import__

    def no_psutil(name, *args, **kwargs):
        if name == "psutil":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    assert decode.available_memory() is None
    decode.check_frames_fit(10**6, 4000, 4000, what="x", options="y")  # no guard, no error


def test_guard_message_sizes():
    assert decode.frames_bytes(60 * 30, 1920, 1080) / (1 << 30) == pytest.approx(41.7, abs=0.1)
    assert np.isclose(decode.DECODE_OVERHEAD, 1.1)
