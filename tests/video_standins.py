"""Stand-ins for ComfyUI's VIDEO classes, for running the pack without ComfyUI.

The pack makes its VIDEO outputs with ComfyUI's own classes (``comfy_api``). Tests and
benchmarks have no ComfyUI, so they install these, which have the same methods, through
``host.install_video_classes`` (conftest.py does it for every test). Inside a running
ComfyUI they are never used quietly: ComfyUI's classes win, and their absence is logged
as an error.
"""

from __future__ import annotations

import importlib
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

_NODES_PACKAGE = ""  # the pack's "nodes" package, as loaded: set by install()


def _core(name: str) -> Any:
    return importlib.import_module(f"{_NODES_PACKAGE}.runware.{name}")


class LocalVideoComponents:
    """Stand-in for ``comfy_api.util.VideoComponents`` (images, frame_rate, audio, metadata)."""

    def __init__(self, images: Any, frame_rate: Any, audio: dict | None = None,
                 metadata: dict | None = None) -> None:
        self.images = images
        self.frame_rate = frame_rate
        self.audio = audio
        self.metadata = metadata


class LocalVideoFromFile:
    """Stand-in for ComfyUI's ``VideoFromFile`` (same methods)."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def _source(self) -> Any:
        if hasattr(self._file, "seek"):
            self._file.seek(0)
        return self._file

    def get_stream_source(self) -> Any:
        return self._source()

    def get_components(self) -> LocalVideoComponents:
        decoded = _core("decode").decode_video(self._source())
        return LocalVideoComponents(decoded.images,
                                    Fraction(decoded.fps).limit_denominator(1001),
                                    decoded.audio)

    def get_dimensions(self) -> tuple[int, int]:
        info = _core("decode").probe_video(self._source())
        return info.width, info.height

    def get_duration(self) -> float:
        return _core("decode").probe_video(self._source()).duration

    def get_container_format(self) -> str:
        return _core("decode").probe_video(self._source()).container

    def save_to(self, path: Any, format: Any = "auto", codec: Any = "auto",
                metadata: dict | None = None) -> None:
        """Copy the file when it already is MP4 (or the container asked for), else re-encode."""
        source = self._source()
        if hasattr(source, "getbuffer"):
            head = bytes(source.getbuffer()[:64])
        else:
            with open(source, "rb") as fh:
                head = fh.read(64)
        wanted = str(getattr(format, "value", format)).lower()
        if _core("media").sniff_container(head) == "mp4" and wanted in ("auto", "mp4") \
                and metadata is None:
            if hasattr(source, "getbuffer"):
                Path(path).write_bytes(source.getvalue())
            else:
                shutil.copyfile(source, path)
            return
        components = self.get_components()
        _core("encode").frames_to_mp4(components.images, float(components.frame_rate),
                                      Path(path), components.audio)


class LocalVideoFromComponents:
    """Stand-in for ComfyUI's ``VideoFromComponents`` (tensors in memory)."""

    def __init__(self, components: LocalVideoComponents) -> None:
        self._components = components

    def get_components(self) -> LocalVideoComponents:
        return self._components

    def get_dimensions(self) -> tuple[int, int]:
        images = self._components.images
        return int(images.shape[2]), int(images.shape[1])

    def get_duration(self) -> float:
        return float(self._components.images.shape[0] / self._components.frame_rate)

    def get_container_format(self) -> str:
        return "mp4"

    def save_to(self, path: Any, format: Any = "auto", codec: Any = "auto",
                metadata: dict | None = None) -> None:
        c = self._components
        _core("encode").frames_to_mp4(c.images, float(c.frame_rate), Path(path), c.audio)


CLASSES = {"VideoFromFile": LocalVideoFromFile, "VideoFromComponents": LocalVideoFromComponents,
           "VideoComponents": LocalVideoComponents}


def video_from_components(images: Any, frame_rate: float, audio: dict | None = None) -> Any:
    """A VIDEO over tensors in memory (what e.g. Create Video hands over)."""
    rate = Fraction(frame_rate).limit_denominator(1001)
    return LocalVideoFromComponents(LocalVideoComponents(images, rate, audio))


def install(host: Any) -> None:
    """Make these the VIDEO classes of the pack's ``host`` module (``nodes.host``)."""
    global _NODES_PACKAGE
    _NODES_PACKAGE = host.__name__.rsplit(".", 1)[0]
    host.install_video_classes(CLASSES)
