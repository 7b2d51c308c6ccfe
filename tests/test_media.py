"""The media bridge, both ways, with real files made by PyAV (see media_factory.py)."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import video_standins
from conftest import REPO_ROOT, pack_module
from media_factory import probe, write_clip, write_mp4, write_wav
from PIL import Image

media = pack_module("nodes.runware.media")
decode = pack_module("nodes.runware.decode")
encode = pack_module("nodes.runware.encode")
graph = pack_module("nodes.graph")
video_io = pack_module("nodes.video_io")
video_input = pack_module("nodes.runware.video_input")
host = pack_module("nodes.host")
errors = pack_module("nodes.runware.errors")
MediaError = media.MediaError


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "stereo": write_clip(d / "stereo.mp4", width=96, height=64, fps=12, frames=24,
                             audio_rate=22050, channels=2),
        "mono": write_clip(d / "mono.mp4", width=64, height=48, fps=25, frames=10,
                           audio_rate=16000, channels=1),
        "silent": write_clip(d / "silent.mp4", width=64, height=48, fps=10, frames=15,
                             audio_rate=None),
        "webm": write_clip(d / "clip.webm", width=80, height=48, fps=15, frames=15,
                           audio_rate=48000, channels=2),
        "mov": write_clip(d / "clip.mov", width=64, height=64, fps=24, frames=12,
                          audio_rate=44100, channels=1),
        "mkv": write_clip(d / "clip.mkv", width=64, height=48, fps=12, frames=12,
                          audio_rate=None),
    }


def reference_frames(path: Path) -> torch.Tensor:
    """ComfyUI's way (frame by frame, to_ndarray, / 255, stack), the ground truth."""
    with av.open(str(path)) as c:
        return torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24")) / 255.0
                            for f in c.decode(video=0)])


def ramp(n: int, h: int, w: int, c: int = 3) -> torch.Tensor:
    """Smooth frames (encode well, so round trips can be compared closely)."""
    ys = torch.linspace(0.1, 0.9, h).view(1, h, 1, 1)
    xs = torch.linspace(0.2, 0.8, w).view(1, 1, w, 1)
    ts = torch.linspace(0, 0.2, n).view(n, 1, 1, 1)
    base = (ys * 0.6 + xs * 0.4 + ts).clamp(0, 1)
    return base.expand(n, h, w, c).contiguous()


def tone(seconds: float, rate: int, channels: int) -> dict:
    t = torch.arange(int(seconds * rate)) / rate
    wave = torch.stack([0.25 * torch.sin(2 * math.pi * (220 + 110 * c) * t)
                        for c in range(channels)])
    return {"waveform": wave.unsqueeze(0).float(), "sample_rate": rate}


# -- IMAGE -> PNG ------------------------------------------------------------------------


def test_png_rgb_values_and_size():
    img = torch.rand(1, 31, 45, 3)
    png = encode.image_to_png(img)
    pil = Image.open(io.BytesIO(png))
    assert pil.format == "PNG" and pil.mode == "RGB" and pil.size == (45, 31)
    expected = (img[0] * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    assert np.array_equal(np.asarray(pil), expected)


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (4, "RGBA")])
def test_png_greyscale_and_rgba(channels, mode):
    png = encode.image_to_png(torch.rand(1, 8, 10, channels))
    assert Image.open(io.BytesIO(png)).mode == mode


def test_png_batch_needs_a_frame():
    batch = torch.stack([torch.zeros(8, 8, 3), torch.ones(8, 8, 3)])
    with pytest.raises(MediaError) as exc:
        encode.image_to_png(batch, input_name="first_frame")
    assert "first_frame" in str(exc.value) and "batch of 2" in str(exc.value)
    assert isinstance(exc.value, errors.ValidationError)
    assert exc.value.parameter == "first_frame"
    white = Image.open(io.BytesIO(encode.image_to_png(batch, frame=1)))
    assert np.asarray(white).min() == 255
    with pytest.raises(MediaError, match="frame 5"):
        encode.image_to_png(batch, frame=5)


def test_png_downscales_long_side(caplog):
    caplog.set_level(logging.INFO, logger="runware_ovi_sync")
    png = encode.image_to_png(torch.rand(1, 3000, 1200, 3))
    assert Image.open(io.BytesIO(png)).size == (819, 2048)
    assert "2048" in caplog.text and "3000" in caplog.text


@pytest.mark.parametrize("bad", [torch.full((1, 4, 4, 3), float("nan")),
                                 torch.zeros(0, 4, 4, 3), torch.zeros(1, 4, 4, 2),
                                 torch.zeros(1, 0, 4, 3)])
def test_png_bad_input(bad):
    with pytest.raises(MediaError) as exc:
        encode.image_to_png(bad, input_name="image")
    assert exc.value.parameter == "image"


# -- IMAGE batch (+ AUDIO) -> MP4 --------------------------------------------------------


def test_frames_to_mp4_round_trip(tmp_path):
    images = ramp(20, 48, 64)
    out = encode.frames_to_mp4(images, 20, tmp_path / "v.mp4")
    info = probe(out)
    assert (info["frames"], info["width"], info["height"], info["fps"]) == (20, 64, 48, 20.0)
    assert "sample_rate" not in info
    decoded = decode.decode_video(out, want_audio=False)
    assert decoded.images.shape == images.shape
    assert float((decoded.images - images).abs().mean()) < 0.01
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # no temp file left


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (22050, 1)])
def test_frames_to_mp4_with_audio(tmp_path, rate, channels):
    out = encode.frames_to_mp4(ramp(24, 32, 32), 12, tmp_path / "v.mp4", tone(3.0, rate, channels))
    info = probe(out)
    assert info["frames"] == 24 and info["sample_rate"] == rate
    assert info["channels"] == channels
    assert 1.9 < info["audio_seconds"] < 2.2  # cut to the video's 2 s (+ AAC padding)


def test_frames_to_mp4_resamples_odd_rate(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="runware_ovi_sync")
    out = encode.frames_to_mp4(ramp(12, 32, 32), 12, tmp_path / "v.mp4", tone(1.0, 44000, 2))
    assert probe(out)["sample_rate"] == 48000 and "48000" in caplog.text


def test_frames_to_mp4_odd_sizes(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="runware_ovi_sync")
    images = ramp(6, 33, 47)
    padded = probe(encode.frames_to_mp4(images, 6, tmp_path / "p.mp4"))
    assert (padded["width"], padded["height"]) == (48, 34)
    assert "padded" in caplog.text
    cropped = probe(encode.frames_to_mp4(images, 6, tmp_path / "c.mp4", odd="crop"))
    assert (cropped["width"], cropped["height"]) == (46, 32)
    assert "cropped" in caplog.text
    edge = decode.decode_video(tmp_path / "p.mp4", want_audio=False).images
    # the padding repeats the edge instead of adding a black line
    assert float((edge[:, -1] - edge[:, -2]).abs().mean()) < 0.03


@pytest.mark.parametrize("channels", [1, 4])
def test_frames_to_mp4_grey_and_rgba(tmp_path, channels):
    out = encode.frames_to_mp4(ramp(4, 16, 16, channels), 8, tmp_path / "v.mp4")
    decoded = decode.decode_video(out, want_audio=False).images
    assert decoded.shape == (4, 16, 16, 3)
    if channels == 1:  # grey stays grey
        assert float((decoded[..., 0] - decoded[..., 1]).abs().max()) < 0.03


def test_frames_to_mp4_list_of_frames(tmp_path):
    frames = [ramp(1, 16, 16), ramp(2, 16, 16)]
    assert probe(encode.frames_to_mp4(frames, 8, tmp_path / "v.mp4"))["frames"] == 3
    with pytest.raises(MediaError, match="frame 1 is 8x16") as exc:
        encode.frames_to_mp4([ramp(1, 16, 16), ramp(1, 16, 8)], 8, tmp_path / "x.mp4")
    assert exc.value.parameter == "images"


@pytest.mark.parametrize("fps", [0, -1, 121, float("nan"), "fast"])
def test_frames_to_mp4_bad_fps(tmp_path, fps):
    with pytest.raises(MediaError) as exc:
        encode.frames_to_mp4(ramp(2, 8, 8), fps, tmp_path / "v.mp4")
    assert exc.value.parameter == "fps"
    assert not list(tmp_path.iterdir())


def test_frames_to_mp4_nan_and_empty(tmp_path):
    images = ramp(40, 8, 8).clone()
    images[33, 2, 2, 1] = float("nan")
    with pytest.raises(MediaError, match="frame 33") as exc:
        encode.frames_to_mp4(images, 8, tmp_path / "v.mp4", input_name="frames")
    assert exc.value.parameter == "frames"
    assert not list(tmp_path.iterdir())  # the partial file is gone
    with pytest.raises(MediaError, match="empty"):
        encode.frames_to_mp4(torch.zeros(0, 8, 8, 3), 8, tmp_path / "v.mp4")


def test_frames_to_mp4_bad_audio(tmp_path):
    with pytest.raises(MediaError, match="zero samples"):
        encode.frames_to_mp4(ramp(2, 8, 8), 8, tmp_path / "v.mp4",
                            {"waveform": torch.zeros(1, 2, 0), "sample_rate": 44100})


# -- AUDIO -> file -----------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "rate", "channels"),
                         [(".wav", 16000, 1), (".wav", 44100, 2), (".flac", 48000, 2),
                          (".flac", 22050, 1)])
def test_audio_to_file(tmp_path, suffix, rate, channels):
    audio = tone(0.5, rate, channels)
    out = encode.audio_to_file(audio, tmp_path / f"a{suffix}")
    info = probe(out)
    assert (info["sample_rate"], info["channels"]) == (rate, channels)
    with av.open(str(out)) as c:
        frames = [f.to_ndarray() for f in c.decode(audio=0)]
    data = np.concatenate(frames, axis=1)
    if data.shape[0] != channels:  # packed -> planar
        data = data.reshape(-1, channels).T
    if suffix == ".flac":
        data = data.astype(np.float64) / 2147483648.0
        assert np.abs(data - audio["waveform"][0].numpy()).max() < 1e-6  # 24-bit
    else:
        assert np.array_equal(data, audio["waveform"][0].numpy())  # bit-exact float WAV


def test_audio_errors(tmp_path):
    batch = {"waveform": torch.zeros(2, 1, 100), "sample_rate": 8000}
    with pytest.raises(MediaError, match="batch of 2") as exc:
        encode.audio_to_file(batch, tmp_path / "a.flac", input_name="speech")
    assert exc.value.parameter == "speech" and "speech" in str(exc.value)
    with pytest.raises(MediaError, match="zero samples"):
        encode.audio_to_file({"waveform": torch.zeros(1, 1, 0), "sample_rate": 8000},
                            tmp_path / "a.flac")
    with pytest.raises(MediaError, match="NaN"):
        encode.audio_to_file({"waveform": torch.full((1, 1, 10), float("nan")),
                             "sample_rate": 8000}, tmp_path / "a.flac")
    with pytest.raises(MediaError, match="sample_rate"):
        encode.audio_to_file({"waveform": torch.zeros(1, 1, 10), "sample_rate": 0},
                            tmp_path / "a.flac")
    with pytest.raises(MediaError, match="AUDIO"):
        encode.audio_to_file(torch.zeros(1, 1, 10), tmp_path / "a.flac")
    path, mime = encode.audio_upload_file(tone(0.1, 8000, 1), tmp_path)
    assert path.suffix == ".flac" and mime == "audio/flac"


class BrokenAudioMap(Mapping):
    """A lazy AUDIO whose loader fails, like VideoHelperSuite's LazyAudioMap on a clip
    without sound ("VHS failed to extract audio from ...") or with 5.1 sound (KeyError)."""

    def __init__(self, error: Exception, keys_work: bool = False) -> None:
        self.error, self.keys_work = error, keys_work

    def keys(self):  # type: ignore[override]
        if self.keys_work:
            return {"waveform": None, "sample_rate": None}.keys()
        raise self.error

    def __getitem__(self, key):
        raise self.error

    def __iter__(self):
        raise self.error

    def __len__(self):
        raise self.error


@pytest.mark.parametrize("keys_work", [False, True])
@pytest.mark.parametrize("error", [
    Exception("VHS failed to extract audio from silent.mp4:\nOutput file does not contain "
              "any stream"),
    KeyError("5.1(side)"),
])
def test_a_lazy_audio_that_cannot_load_names_the_input(tmp_path, error, keys_work):
    """A connected AUDIO whose loading fails is not "not connected": the error names the
    input, says the audio could not be read (why) and what to do; nothing is written."""
    broken = BrokenAudioMap(error, keys_work)
    assert media.is_audio(broken) is keys_work  # no input named: a plain yes/no
    with pytest.raises(MediaError) as exc:
        encode.audio_upload_file(broken, tmp_path, input_name="speech")
    text = str(exc.value)
    assert exc.value.parameter == "speech" and text.startswith("speech: the connected AUDIO "
                                                               "could not be read")
    assert type(error).__name__ in text and "no audio track" in text
    assert "Connect an AUDIO output" not in text and "Load Audio" in text
    assert list(tmp_path.iterdir()) == []
    assert media.is_audio(tone(0.1, 8000, 1), "speech")  # a good AUDIO still is one


# -- results: file -> IMAGE / AUDIO ------------------------------------------------------


@pytest.mark.parametrize(("key", "frames", "size", "fps", "rate", "channels"), [
    ("stereo", 24, (64, 96), 12.0, 22050, 2),
    ("mono", 10, (48, 64), 25.0, 16000, 1),
    ("webm", 15, (48, 80), 15.0, 48000, 2),
    ("mov", 12, (64, 64), 24.0, 44100, 1),
])
def test_decode_video(clips, key, frames, size, fps, rate, channels):
    d = decode.decode_video(clips[key])
    assert d.images.shape == (frames, *size, 3) and d.images.dtype == torch.float32
    assert 0.0 <= float(d.images.min()) and float(d.images.max()) <= 1.0
    assert torch.equal(d.images, reference_frames(clips[key]))  # exactly ComfyUI's values
    assert (d.frame_count, d.fps, (d.height, d.width)) == (frames, fps, size)
    assert d.duration == pytest.approx(frames / fps)
    wave = d.audio["waveform"]
    assert d.audio["sample_rate"] == rate and wave.dtype == torch.float32
    assert wave.shape[0] == 1 and wave.shape[1] == channels and wave.is_contiguous()
    assert abs(wave.shape[2] / rate - frames / fps) < 0.15
    assert 0.1 < float(wave.abs().max()) <= 1.0
    with av.open(str(clips[key])) as c:  # the samples are exactly a plain decode's
        plain = [f.to_ndarray() for f in c.decode(audio=0)]
    assert np.array_equal(np.concatenate(plain, axis=1), wave[0].numpy())


def test_decode_only_what_is_asked(clips):
    d = decode.decode_video(clips["stereo"], want_images=False)
    assert d.images is None and d.audio["sample_rate"] == 22050 and d.frame_count == 24
    d = decode.decode_video(clips["stereo"], want_audio=False)
    assert d.audio is None and d.images.shape[0] == 24


def test_decode_without_audio_gives_silence(clips, caplog):
    caplog.set_level(logging.WARNING, logger="runware_ovi_sync")
    d = decode.decode_video(clips["silent"])
    assert d.images.shape[0] == 15
    wave = d.audio["waveform"]
    assert wave.shape == (1, 1, round(1.5 * d.audio["sample_rate"])) and not wave.any()
    assert "no audio" in caplog.text


def test_decode_grows_when_the_estimate_is_short(clips, monkeypatch):
    real = decode._stream_facts

    def short(container, label):
        vs, a, fps, estimate, w, h = real(container, label)
        return vs, a, fps, 3, w, h

    monkeypatch.setattr(decode, "_stream_facts", short)
    d = decode.decode_video(clips["stereo"], want_audio=False)
    assert torch.equal(d.images, reference_frames(clips["stereo"]))


def test_undecodable_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(MediaError, match="broken.mp4"):
        decode.decode_video(bad)
    wav = write_wav(tmp_path / "only.wav")
    with pytest.raises(MediaError, match="no video stream"):
        decode.decode_video(wav)


def test_probe_video(clips):
    info = decode.probe_video(clips["stereo"])
    assert (info.fps, info.frame_count, info.width, info.height) == (12.0, 24, 96, 64)
    assert info.has_audio and info.sample_rate == 22050 and info.channels == 2


# -- linked outputs and lazy decoding ----------------------------------------------------

PROMPT = {
    "3": {"class_type": "RunwareOvi", "inputs": {"prompt": "hi", "seed": 5}},
    "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "prefix": "x"}},
    "12:5": {"class_type": "RunwareSync3", "inputs": {"video": ["3", 0]}},
    "12:7": {"class_type": "PreviewAudio", "inputs": {"audio": ["12:5", 2]}},
    "9": {"class_type": "Note", "inputs": {"list_widget": {"__value__": [1, 2]},
                                           "pair": [5, 1]}},
}


def test_linked_outputs():
    assert graph.linked_outputs(PROMPT, "3", 4) == {0}
    assert graph.linked_outputs(PROMPT, "12:5", 4) == {2}  # subgraph ids
    assert graph.linked_outputs(PROMPT, "4", 1) == set()
    assert graph.linked_outputs(PROMPT, "3", 0) == set()  # slots beyond count ignored
    assert graph.linked_outputs(PROMPT, "99", 4) is None  # not in the prompt (expanded)
    assert graph.linked_outputs(None, "3", 4) is None
    assert graph.linked_outputs({}, "3", 4) is None
    assert graph.linked_outputs(PROMPT, None, 4) is None
    # an API client may use int ids / float slots
    assert graph.linked_outputs({1: {"inputs": {}}, 2: {"inputs": {"a": [1, 3.0]}}}, "1", 4) \
        == {3}
    assert graph.outputs_fingerprint(PROMPT, "12:5", 4) == "2"
    assert graph.outputs_fingerprint(None, "12:5", 4) == "all"


def test_linked_outputs_dynprompt():
    class Dyn:
        def all_node_ids(self):
            return [*PROMPT, "12.0.0.3"]

        def get_node(self, node_id):
            if node_id == "12.0.0.3":
                return {"inputs": {"images": ["3", 1]}}
            return PROMPT[node_id]

    assert graph.linked_outputs(Dyn(), "3", 4) == {0, 1}


def test_results_to_outputs_is_lazy(clips, monkeypatch):
    calls = []
    real = decode.decode_video

    def counting(path, **kw):
        calls.append({k: kw[k] for k in ("want_images", "want_audio") if k in kw})
        return real(path, **kw)

    monkeypatch.setattr(video_io, "decode_video", counting)
    video, images, audio, fps = video_io.result_outputs(
        clips["stereo"], need_images=False, need_audio=False)
    assert calls == [] and images is None and audio is None and fps == 12.0
    assert video.get_dimensions() == (96, 64)
    assert calls == []  # the VIDEO's own metadata reads do not decode either

    linked = graph.linked_outputs(PROMPT, "12:5", 4)  # only AUDIO (slot 2) is used
    video, images, audio, fps = video_io.result_outputs(
        clips["stereo"], need_images=1 in linked, need_audio=2 in linked)
    assert calls == [{"want_images": False, "want_audio": True}]
    assert images is None and audio["sample_rate"] == 22050

    video, images, audio, fps = video_io.result_outputs(
        clips["stereo"], need_images=True, need_audio=True)
    assert images.shape == (24, 64, 96, 3) and audio["waveform"].shape[1] == 2
    comps = video.get_components()  # the VIDEO decodes on demand, like ComfyUI's
    assert torch.equal(comps.images, images) and float(comps.frame_rate) == 12.0


# -- VIDEO input -> upload ---------------------------------------------------------------


@pytest.mark.parametrize(("key", "mime"), [("stereo", "video/mp4"), ("webm", "video/webm"),
                                           ("mov", "video/quicktime")])
def test_file_backed_video_uploads_its_own_bytes(clips, tmp_path, monkeypatch, key, mime):
    def no_decode(*a, **k):
        raise AssertionError("decoded")

    monkeypatch.setattr(video_io, "frames_to_mp4", no_decode)
    monkeypatch.setattr(video_input, "_remux", no_decode)
    monkeypatch.setattr(video_input, "_transcode", no_decode)
    video = host.video_from_file(clips[key])
    source, got_mime = video_io.video_upload_source(video, tmp_path)
    assert Path(source) == clips[key] and got_mime == mime
    assert not list(tmp_path.iterdir())
    data = clips[key].read_bytes()
    source, got_mime = video_io.video_upload_source(host.video_from_file(io.BytesIO(data)),
                                                 tmp_path)
    assert source == data and got_mime == mime


def test_other_container_is_rewritten_once(clips, tmp_path):
    source, mime = video_io.video_upload_source(host.video_from_file(clips["mkv"]), tmp_path)
    assert mime == "video/mp4" and Path(source).parent == tmp_path
    assert probe(Path(source))["frames"] == 12


def test_components_video_is_encoded(tmp_path):
    video = video_standins.video_from_components(ramp(10, 32, 48), 10.0, tone(1.0, 22050, 2))
    source, mime = video_io.video_upload_source(video, tmp_path, input_name="video")
    info = probe(Path(source))
    assert mime == "video/mp4" and info["frames"] == 10 and info["sample_rate"] == 22050
    assert (info["width"], info["height"], info["fps"]) == (48, 32, 10.0)


def test_video_input_errors(tmp_path):
    with pytest.raises(MediaError, match="not connected"):
        video_io.video_upload_source(None, tmp_path, input_name="video")
    with pytest.raises(MediaError, match="must be a VIDEO"):
        video_io.video_upload_source(torch.zeros(1), tmp_path, input_name="video")
    notvideo = tmp_path / "x.mp4"
    notvideo.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100)
    with pytest.raises(MediaError, match="not a readable video") as exc:
        video_io.video_upload_source(host.video_from_file(notvideo), tmp_path / "w")
    assert exc.value.parameter == "video"


def test_upload_of_a_file_backed_video_sends_its_bytes(clips, double, fast_config, tmp_path):
    import asyncio

    client_mod = pack_module("nodes.runware.client")
    source, mime = video_io.video_upload_source(host.video_from_file(clips["stereo"]), tmp_path)

    async def run():
        async with client_mod.RunwareClient(fast_config) as client:
            return await client.upload_media(source, mime)

    result = asyncio.run(run())
    stored = double.uploads[result.uuid]
    assert Path(stored["path"]).read_bytes() == clips["stereo"].read_bytes()


def test_local_fallback_video_methods(clips, tmp_path):
    video = video_standins.LocalVideoFromFile(str(clips["stereo"]))
    assert video.get_dimensions() == (96, 64)
    assert video.get_duration() == pytest.approx(2.0)
    assert "mp4" in video.get_container_format()
    assert video.get_stream_source() == str(clips["stereo"])
    video.save_to(str(tmp_path / "copy.mp4"))
    assert (tmp_path / "copy.mp4").read_bytes() == clips["stereo"].read_bytes()
    assert video_io.video_file_source(video) == str(clips["stereo"])
    comps = video_standins.video_from_components(ramp(2, 8, 8), 24.0)
    assert video_io.video_file_source(comps) is None
    assert comps.get_dimensions() == (8, 8)


# -- with ComfyUI's real classes (COMFYUI_PATH) ------------------------------------------

COMFY_CHILD = textwrap.dedent(
    """
    import importlib.abc, importlib.machinery, io, json, sys, types
    from pathlib import Path
    root, tests, work = sys.argv[1:4]
    sys.path[:0] = [root, tests]
    # Only third-party modules ComfyUI's video code never calls, and only if missing here:
    # comfy_api imports comfy.utils, which needs safetensors/einops/tqdm at import time.
    OPTIONAL = {"safetensors", "einops", "tqdm", "torchaudio", "psutil", "scipy",
                "torchsde", "kornia", "spandrel", "transformers"}
    stubbed = []
    class Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in OPTIONAL:
                stubbed.append(name)
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
        def create_module(self, spec):
            m = types.ModuleType(spec.name); m.__path__ = []
            def attr(a):
                if a.startswith("__"):
                    raise AttributeError(a)
                return type(a, (), {})
            m.__getattr__ = attr
            return m
        def exec_module(self, m):
            pass
    sys.meta_path.append(Stub())  # after the real finders: a present module is real
    try:
        from comfy_api.input_impl import VideoFromComponents, VideoFromFile
        from comfy_api.util import VideoComponents
    except Exception as exc:
        print(json.dumps({"skip": f"{type(exc).__name__}: {exc}"})); sys.exit(0)
    from fractions import Fraction
    import torch
    from conftest import pack_module
    from media_factory import write_clip
    import video_standins
    decode = pack_module("nodes.runware.decode")
    video_io = pack_module("nodes.video_io")
    work = Path(work)
    clip = write_clip(work / "result.mp4", width=64, height=48, fps=12, frames=12)
    out = {"stubbed": sorted(set(stubbed))}
    video, images, audio, fps = video_io.result_outputs(clip, need_images=True,
                                                        need_audio=True)
    out["video_type"] = type(video).__name__
    out["is_real"] = isinstance(video, VideoFromFile)
    comps = video.get_components()
    out["components_equal"] = bool(torch.equal(comps.images, images))
    # same length and rate; the samples are not compared: ComfyUI decodes audio after a
    # seek(0), which keeps AAC's priming silence at the start (ours matches a plain decode)
    out["audio_same_shape"] = list(comps.audio["waveform"].shape) == list(audio["waveform"].shape)
    out["fps"] = [float(comps.frame_rate), fps]
    src, mime = video_io.video_upload_source(VideoFromFile(str(clip)), work / "u1")
    out["file_as_is"] = str(src) == str(clip) and mime == "video/mp4"
    src, mime = video_io.video_upload_source(VideoFromFile(io.BytesIO(clip.read_bytes())),
                                             work / "u2")
    out["bytes_as_is"] = src == clip.read_bytes()
    vc = VideoFromComponents(VideoComponents(images=images, audio=audio,
                                             frame_rate=Fraction(12)))
    src, mime = video_io.video_upload_source(vc, work / "u3")
    back = decode.decode_video(Path(src))
    out["components_uploaded"] = [mime, back.frame_count, back.audio["sample_rate"]]
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH not set")
def test_with_real_comfyui_video_types(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", COMFY_CHILD, os.environ["COMFYUI_PATH"],
         str(REPO_ROOT / "tests"), str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(f"comfy_api does not import: {result['skip']}")
    assert result["is_real"] and result["video_type"] == "VideoFromFile"
    assert result["components_equal"] and result["audio_same_shape"]
    assert result["fps"] == [12.0, 12.0]
    assert result["file_as_is"] and result["bytes_as_is"]
    assert result["components_uploaded"] == ["video/mp4", 12, 22050]


def test_media_factory_old_helpers_still_work(tmp_path):
    info = probe(write_mp4(tmp_path / "old.mp4"))
    assert info["frames"] == 24 and info["sample_rate"] == 22050


# -- video inputs: the pre-upload check and conversions ------------------------------------


def test_scan_names_the_input_and_says_what_to_do(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty") as exc:
        video_input.scan_video(empty, "video")
    assert exc.value.parameter == "video"
    wav = write_wav(tmp_path / "voice.wav")
    with pytest.raises(MediaError, match="no video stream") as exc:
        video_io.video_upload_source(wav, tmp_path / "w", input_name="video")
    assert "Load Audio" in str(exc.value) and str(exc.value).startswith("video: ")
    garbage = tmp_path / "notes.mp4"
    garbage.write_bytes(b"hello, this is not a video" * 40)
    with pytest.raises(MediaError, match="not a readable video") as exc:
        video_io.video_upload_source(garbage, tmp_path / "w")
    assert "Re-export" in str(exc.value) and "media" not in str(exc.value)


def test_mkv_bytes_are_remuxed_too(clips, tmp_path):
    data = clips["mkv"].read_bytes()
    source, mime = video_io.video_upload_source(host.video_from_file(io.BytesIO(data)),
                                                   tmp_path)
    assert mime == "video/mp4" and Path(source).suffix == ".mp4"
    assert probe(Path(source))["frames"] == 12


def test_truncated_bytes_are_refused(clips, tmp_path):
    data = clips["webm"].read_bytes()
    cut = io.BytesIO(data[:len(data) * 2 // 3])
    with pytest.raises(MediaError, match="damaged or incomplete") as exc:
        video_io.video_upload_source(host.video_from_file(cut), tmp_path)
    assert "the video bytes" in str(exc.value) and exc.value.parameter == "video"


def test_encoder_frame_is_swscale_exact_and_deterministic():
    rng = np.random.default_rng(3)
    for w, h in ((66, 48), (128, 72), (2, 2)):
        rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        frame = encode.encoder_frame(rgb)
        plain = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        assert np.array_equal(frame.to_ndarray(), plain.to_ndarray())
        # every byte (row padding too) is written: two frames are byte-identical
        again = encode.encoder_frame(rgb)
        assert [bytes(p) for p in frame.planes] == [bytes(p) for p in again.planes]
