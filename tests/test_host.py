"""nodes/host.py against stand-ins of today's ComfyUI: its interrupt, its VIDEO classes,
trimmed and cropped clips.

The stand-ins copy what current ComfyUI does (read from its sources, 2026):
``InterruptProcessingException`` derives from BaseException; the progress bar hook calls
``throw_exception_if_processing_interrupted()``, which clears the flag and raises; the VIDEO
classes live in ``comfy_api.latest`` (``InputImpl`` / ``Types``), with the older
``comfy_api.input_impl`` / ``comfy_api.util`` paths as shims.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import threading
import time
import types

import av
import pytest
import torch
import video_standins
from conftest import PACK, pack_module
from media_factory import write_mp4

host = pack_module("nodes.host")
common = pack_module("nodes.run")
media = pack_module("nodes.runware.media")
encode = pack_module("nodes.runware.encode")
video_io = pack_module("nodes.video_io")
video_input = pack_module("nodes.runware.video_input")

PROMPT = "A robot says <S>All systems go<E>. <AUDCAP>whirring motors<ENDAUDCAP>"


# -- a ComfyUI stand-in ------------------------------------------------------------------------


class ComfyStub:
    """comfy.model_management + comfy.utils as current ComfyUI has them."""

    def __init__(self) -> None:
        class InterruptProcessingException(BaseException):  # as in ComfyUI since 2026
            pass

        self.Interrupt = InterruptProcessingException
        self.lock = threading.RLock()
        self.flag = False
        mm = types.ModuleType("comfy.model_management")
        mm.InterruptProcessingException = InterruptProcessingException
        mm.interrupt_current_processing = self.set_flag
        mm.processing_interrupted = lambda: self.flag
        mm.throw_exception_if_processing_interrupted = self.throw
        utils = types.ModuleType("comfy.utils")
        stub = self

        class ProgressBar:  # comfy.utils.ProgressBar with main.py's hook installed
            def __init__(self, total, node_id=None):
                self.total, self.node_id = total, node_id

            def update_absolute(self, value, total=None, preview=None):
                stub.throw()

        utils.ProgressBar = ProgressBar
        comfy = types.ModuleType("comfy")
        comfy.__path__ = []
        comfy.model_management, comfy.utils = mm, utils
        self.modules = {"comfy": comfy, "comfy.model_management": mm, "comfy.utils": utils}

    def set_flag(self, value: bool = True) -> None:
        with self.lock:
            self.flag = value

    def throw(self) -> None:
        with self.lock:
            if self.flag:
                self.flag = False
                raise self.Interrupt()


@pytest.fixture
def comfy(monkeypatch):
    stub = ComfyStub()
    for name, module in stub.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return stub


def test_interrupt_is_recognised_although_it_is_no_exception(comfy):
    exc = comfy.Interrupt()
    assert not isinstance(exc, Exception)
    assert host.is_interrupt(exc)
    assert not host.is_interrupt(ValueError("x"))
    host.check_interrupted()  # no flag: nothing happens
    comfy.set_flag(True)
    with pytest.raises(comfy.Interrupt):
        host.check_interrupted()


def test_interrupt_outside_comfyui_is_nothing():
    assert host.interrupt_exception_type() is None
    assert not host.is_interrupt(KeyboardInterrupt())
    host.raise_interrupted()  # returns: the caller raises its own cancel error
    host.check_interrupted()


def test_progress_bar_keeps_the_cancel_for_the_job(comfy):
    """ComfyUI's hook clears the flag and raises from update_absolute: the bar must not let
    that escape into a paid job's progress callback, and must set the flag again."""
    bar = host.ProgressBar("3")
    bar.update(10)
    comfy.set_flag(True)
    bar.update(20)  # does not raise
    assert comfy.flag is True and host.is_interrupted()


def test_progress_bar_lets_other_base_exceptions_through(comfy, monkeypatch):
    bar = host.ProgressBar("3")

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(bar._bar, "update_absolute", stop)
    with pytest.raises(KeyboardInterrupt):
        bar.update(1)


# -- "interrupted, queue again to collect without paying", in every phase -------------------

PHASE_TEXT = {"upload": "uploading", "submit": "queued", "poll": "processing",
              "download": "downloading", "decode": "decoding"}


def accepted(double) -> int:
    return len(double.accepted_submissions())


def generate(**extra):
    args = dict(prompt=PROMPT, seed=5, steps=30, fps=12, video_cfg_scale=5.0,
                audio_cfg_scale=4.0, image=torch.ones(1, 64, 96, 3) * 0.5, unique_id="7")
    args.update(extra)
    return asyncio.run(PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]().generate(**args))


@pytest.mark.parametrize("phase", list(PHASE_TEXT))
def test_cancel_in_each_phase_shows_interrupted_and_requeue_pays_nothing(env, comfy,
                                                                         monkeypatch, phase):
    """Cancel while the node shows <phase>: ComfyUI's own interrupt comes out within a
    second (a BaseException, so nothing on the way may swallow it), the node says how to
    collect, and queueing again reuses the job or the saved file: one paid job in all."""
    env.job_seconds = 0.8
    shown: list[str] = []
    pressed: list[float] = []

    def progress_text(text, node_id):
        shown.append(text)
        if not pressed and text.startswith(f"Ovi: {PHASE_TEXT[phase]}"):
            pressed.append(time.monotonic())
            comfy.set_flag(True)  # the user presses Cancel

    monkeypatch.setattr(host, "send_progress_text", progress_text)
    with pytest.raises(comfy.Interrupt):
        generate()
    assert pressed, f"the node never showed {PHASE_TEXT[phase]}: {shown}"
    assert time.monotonic() - pressed[0] < 1.5
    assert "interrupted" in shown[-1] and "without paying again" in shown[-1], shown[-1]
    assert accepted(env) <= 1

    comfy.set_flag(False)  # ComfyUI clears it when the next prompt starts
    shown.clear()
    pressed.append(0.0)  # no second Cancel
    env.job_seconds = 0.1
    video, images, audio, fps, info = generate()["result"]
    assert images[0].shape[0] == 5 * 12 and fps == [12.0]
    assert accepted(env) == 1, "queueing again paid a second time"
    if phase == "decode":
        assert "reused the cached result" in shown[-1]


def test_fetch_result_cancel_is_comfyuis_interrupt(env, comfy, monkeypatch):
    import json

    info = json.loads(generate()["result"][4][0])
    env.job_seconds = 0.1
    fetch = PACK.NODE_CLASS_MAPPINGS["RunwareFetchResult"]
    comfy.set_flag(True)
    with pytest.raises(comfy.Interrupt):
        asyncio.run(fetch().fetch(task_uuid=info["taskUUID"], model="Ovi", unique_id="9"))
    assert accepted(env) == 1


def test_cancel_during_a_long_decode_stops_it_and_requeue_pays_nothing(env, comfy,
                                                                      monkeypatch):
    """Cancel pressed once the frames are being decoded (not before): the decode itself
    stops at ComfyUI's check, the paid file stays cached, and queueing again collects it."""
    real = video_io.decode_video
    packets: list[int] = []

    def decode_and_cancel(path, **kwargs):
        check = kwargs["check"]

        def counting_check():
            packets.append(1)
            if len(packets) == 5:
                comfy.set_flag(True)  # the user presses Cancel mid-decode
            check()

        return real(path, **{**kwargs, "check": counting_check})

    monkeypatch.setattr(video_io, "decode_video", decode_and_cancel)
    with pytest.raises(comfy.Interrupt):
        generate()
    assert len(packets) == 5, "the decode went on after Cancel"
    comfy.set_flag(False)
    monkeypatch.setattr(video_io, "decode_video", real)
    video, images, audio, fps, info = generate()["result"]
    assert images[0].shape[0] == 5 * 12
    assert accepted(env) == 1, "queueing again paid a second time"


def test_decode_failure_is_still_a_result_decode_error(env, comfy, monkeypatch):
    """The explicit interrupt handling does not turn real decode errors into interrupts."""
    def broken(*_a, **_k):
        raise ValueError("bad file")

    monkeypatch.setattr(common, "result_outputs", broken)
    with pytest.raises(media.ResultDecodeError, match="paid file is kept"):
        generate()


# -- which VIDEO classes -------------------------------------------------------------------------


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _classes(tag: str) -> dict[str, type]:
    class VideoFromFile:
        origin = tag

        def __init__(self, file):
            self.file = file

        def get_stream_source(self):
            return self.file

    class VideoComponents:
        def __init__(self, images, audio, frame_rate):
            self.images, self.audio, self.frame_rate = images, audio, frame_rate

    class VideoFromComponents:
        origin = tag

        def __init__(self, components):
            self.components = components

    return {"VideoFromFile": VideoFromFile, "VideoFromComponents": VideoFromComponents,
            "VideoComponents": VideoComponents}


@pytest.fixture
def fresh_log_flag(monkeypatch):
    monkeypatch.setattr(host, "_STAND_IN_LOGGED", False)


def _plant_latest(monkeypatch, classes):
    latest = _module(
        "comfy_api.latest",
        InputImpl=types.SimpleNamespace(VideoFromFile=classes["VideoFromFile"],
                                        VideoFromComponents=classes["VideoFromComponents"]),
        Types=types.SimpleNamespace(VideoComponents=classes["VideoComponents"]))
    monkeypatch.setitem(sys.modules, "comfy_api", _module("comfy_api", __path__=[]))
    monkeypatch.setitem(sys.modules, "comfy_api.latest", latest)


def _plant_old(monkeypatch, classes):
    monkeypatch.setitem(sys.modules, "comfy_api", _module("comfy_api", __path__=[]))
    monkeypatch.setitem(sys.modules, "comfy_api.input_impl", _module(
        "comfy_api.input_impl", VideoFromFile=classes["VideoFromFile"],
        VideoFromComponents=classes["VideoFromComponents"]))
    monkeypatch.setitem(sys.modules, "comfy_api.util", _module(
        "comfy_api.util", VideoComponents=classes["VideoComponents"]))


def test_video_classes_from_comfy_api_latest_first(monkeypatch, fresh_log_flag):
    _plant_old(monkeypatch, _classes("old"))
    _plant_latest(monkeypatch, _classes("latest"))
    video = host.video_from_file("x.mp4")
    assert video.origin == "latest" and video.file == "x.mp4"


def test_video_classes_fall_back_to_the_old_paths(monkeypatch, fresh_log_flag, caplog):
    _plant_old(monkeypatch, _classes("old"))
    with caplog.at_level(logging.ERROR, logger="runware_ovi_sync"):
        assert host.video_from_file("x.mp4").origin == "old"
    assert caplog.records == []


def test_outside_comfyui_the_stand_ins_are_quiet(fresh_log_flag, caplog):
    assert not host.in_comfyui()
    with caplog.at_level(logging.DEBUG, logger="runware_ovi_sync"):
        video = host.video_from_file("x.mp4")
    assert isinstance(video, video_standins.LocalVideoFromFile)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_inside_comfyui_a_stand_in_is_an_error_logged_once(monkeypatch, fresh_log_flag,
                                                            caplog):
    """ComfyUI runs (its PromptServer exists) but comfy_api does not give the classes."""
    server = _module("server", PromptServer=types.SimpleNamespace(instance=object()))
    monkeypatch.setitem(sys.modules, "server", server)
    monkeypatch.setitem(sys.modules, "comfy_api", _module("comfy_api", __path__=[]))
    monkeypatch.setitem(sys.modules, "comfy_api.latest", _module("comfy_api.latest"))
    assert host.in_comfyui()
    with caplog.at_level(logging.ERROR, logger="runware_ovi_sync"):
        first = host.video_from_file("x.mp4")
        host.video_from_file("y.mp4")
    assert isinstance(first, video_standins.LocalVideoFromFile)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "stand-ins" in errors[0].getMessage() and "Save Video" in errors[0].getMessage()


def test_without_comfyuis_classes_or_stand_ins_no_video_is_made(monkeypatch, fresh_log_flag):
    """The product has no stand-ins of its own: outside ComfyUI, without installed ones, a
    VIDEO cannot be made, and the error says why (the caller keeps the paid file)."""
    monkeypatch.setattr(host, "_INSTALLED", None)
    with pytest.raises(RuntimeError, match="VIDEO classes"):
        host.video_from_file("x.mp4")
    with pytest.raises(ValueError, match="VideoComponents"):
        host.install_video_classes({"VideoFromFile": object, "VideoFromComponents": object})


def test_comfyui_found_by_its_package_counts_as_inside(monkeypatch, tmp_path):
    (tmp_path / "comfy_api").mkdir()
    (tmp_path / "comfy_api" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert host.in_comfyui()


# -- trimmed / cropped clips are never uploaded unedited ------------------------------------


def _clip(path, frames=48, width=64, height=48):
    write_mp4(path, width=width, height=height, fps=24, frames=frames)
    return path


class VideoInput:  # the abstract base's defaults, as in current ComfyUI
    def get_active_trim_window(self):
        return 0.0, 0.0

    def has_pending_frame_edits(self):
        return False


class PublicEditsVideo(VideoInput, video_standins.LocalVideoFromFile):
    """A file-backed VIDEO with current ComfyUI's public edit API: trims and crops are
    applied by get_components() and save_to(), never by the file itself."""

    def __init__(self, file, start_time=0.0, duration=0.0, crop=None):
        super().__init__(file)
        self._trim = (start_time, duration)
        self._crop_rect = crop

    def get_active_trim_window(self):
        return float(self._trim[0]), float(self._trim[1])

    def has_pending_frame_edits(self):
        return self._crop_rect is not None

    def get_components(self):
        c = super().get_components()
        start, duration = self._trim
        first = round(start * float(c.frame_rate))
        last = first + round(duration * float(c.frame_rate)) if duration else None
        images = c.images[first:last]
        if self._crop_rect is not None:
            x, y, w, h = self._crop_rect
            images = images[:, y:y + h, x:x + w, :]
        return video_standins.LocalVideoComponents(images, c.frame_rate, None)

    def save_to(self, path, format="auto", codec="auto", metadata=None):
        c = self.get_components()
        encode.frames_to_mp4(c.images, float(c.frame_rate), path, None)


class VideoFromFile(video_standins.LocalVideoFromFile):
    """An older ComfyUI's VideoFromFile: trims and crops only in private attributes."""

    def __init__(self, file, *, start_time=0, duration=0, crop=None):
        super().__init__(file)
        self.__start_time = start_time
        self.__duration = duration
        self.__crop = crop


@pytest.mark.parametrize("make", [
    lambda f: PublicEditsVideo(f),
    lambda f: VideoFromFile(f),
], ids=["public-api", "private-attributes"])
def test_an_unedited_clip_is_uploaded_as_its_file(tmp_path, make):
    clip = _clip(tmp_path / "a.mp4")
    video = make(str(clip))
    assert video_io.video_edits(video) is None
    assert video_io.video_file_source(video) == str(clip)
    source, mime = video_io.video_upload_source(video, tmp_path / "work")
    assert str(source) == str(clip) and mime == "video/mp4"


@pytest.mark.parametrize("make,edit", [
    (lambda f: PublicEditsVideo(f, start_time=0.5), "trimmed"),
    (lambda f: PublicEditsVideo(f, duration=1.0), "trimmed"),
    (lambda f: PublicEditsVideo(f, crop=(0, 0, 32, 32)), "cropped"),
    (lambda f: VideoFromFile(f, start_time=0.5), "trimmed"),
    (lambda f: VideoFromFile(f, start_time=-1.0), "trimmed"),
    (lambda f: VideoFromFile(f, duration=1.0), "trimmed"),
    (lambda f: VideoFromFile(f, crop=(0, 0, 32, 32)), "cropped"),
], ids=["public-start", "public-duration", "public-crop", "private-start",
        "private-negative-start", "private-duration", "private-crop"])
def test_an_edited_clip_is_never_its_file(tmp_path, make, edit):
    video = make(str(_clip(tmp_path / "a.mp4")))
    assert video_io.video_edits(video) == edit
    assert video_io.video_file_source(video) is None


def test_public_api_wins_over_private_leftovers(tmp_path):
    """Where the public methods exist they are the truth, not stale private attributes."""
    video = PublicEditsVideo(str(_clip(tmp_path / "a.mp4")))
    video._VideoFromFile__crop = (0, 0, 8, 8)  # noqa: SLF001 - a removed attribute's leftover
    video._VideoFromFile__start_time = 3.0
    assert video_io.video_edits(video) is None


def test_a_failing_edit_check_counts_as_edited(tmp_path):
    class Broken(PublicEditsVideo):
        def get_active_trim_window(self):
            raise RuntimeError("no duration")

    assert video_io.video_edits(Broken(str(_clip(tmp_path / "a.mp4")))) == "unknown edits"


@pytest.mark.parametrize("video_kwargs,frames,size", [
    ({"start_time": 1.0}, 24, (64, 48)),
    ({"duration": 0.5}, 12, (64, 48)),
    ({"crop": (16, 8, 32, 24)}, 48, (32, 24)),
], ids=["trim-start", "trim-duration", "crop"])
def test_the_upload_of_an_edited_clip_holds_the_edit(tmp_path, video_kwargs, frames, size):
    clip = _clip(tmp_path / "a.mp4")
    video = PublicEditsVideo(str(clip), **video_kwargs)
    source, mime = video_io.video_upload_source(video, tmp_path / "work")
    assert str(source) != str(clip) and mime == "video/mp4"
    data = source if isinstance(source, bytes) else open(source, "rb").read()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        decoded = sum(1 for _ in container.decode(stream))
        assert (stream.width, stream.height) == size
    assert decoded == frames
