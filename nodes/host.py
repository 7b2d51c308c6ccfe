"""The one place that touches ComfyUI. Every import is lazy and has a fallback.

Outside ComfyUI (tests, benchmarks, the offline double) each function degrades to a
sensible default: no interrupt, no progress UI, directories under the system temp dir.
"""

from __future__ import annotations

import html
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from .runware.config import env_directory

log = logging.getLogger("runware_ovi_sync")


def _import(name: str) -> Any | None:
    try:
        return __import__(name, fromlist=["_"])
    except Exception:  # ComfyUI absent, or a module of it failed to import
        return None


def is_interrupted() -> bool:
    """True once the user pressed Cancel in ComfyUI (the flag is not cleared here)."""
    mm = _import("comfy.model_management")
    return bool(mm and mm.processing_interrupted())


def raise_interrupted() -> None:
    """Raise ComfyUI's own interrupt exception, so the run shows "interrupted".

    Outside ComfyUI this returns, and the caller re-raises its own cancel error.
    """
    mm = _import("comfy.model_management")
    if mm is not None:
        raise mm.InterruptProcessingException()


def _prompt_server() -> Any | None:
    server = _import("server")
    return getattr(getattr(server, "PromptServer", None), "instance", None)


def add_routes(handlers: list[tuple[str, str, Any]]) -> bool:
    """Register (method, path, handler) routes on ComfyUI's server, if it is running."""
    instance = _prompt_server()
    routes = getattr(instance, "routes", None)
    if routes is None:
        return False
    for method, path, handler in handlers:
        routes.route(method, path)(handler)
    return True


class ProgressBar:
    """ComfyUI's progress bar for a node, or nothing outside ComfyUI.

    ComfyUI's bar raises its interrupt exception from inside ``update_absolute`` (and
    clears the flag doing so); we swallow that and set the flag again, so the job's own
    cancel check sees it and stops cleanly.
    """

    def __init__(self, node_id: str | None, total: int = 100) -> None:
        self._bar = None
        utils = _import("comfy.utils") if node_id is not None else None
        if utils is not None and hasattr(utils, "ProgressBar"):
            try:
                self._bar = utils.ProgressBar(total, node_id=node_id)
            except Exception:
                log.debug("ProgressBar unavailable", exc_info=True)

    def update(self, value: float) -> None:
        if self._bar is None:
            return
        try:
            self._bar.update_absolute(value)
        except Exception as exc:
            mm = _import("comfy.model_management")
            if mm is not None and isinstance(exc, mm.InterruptProcessingException):
                mm.interrupt_current_processing(True)
            else:
                log.debug("ProgressBar update failed", exc_info=True)


def send_progress_text(text: str, node_id: str | None) -> None:
    """Live text on the node. The page inserts it as HTML, so it is escaped here: an Ovi
    tag such as <S> in a message would otherwise become markup."""
    if node_id is None:
        return
    instance = _prompt_server()
    if instance is not None:
        try:
            instance.send_progress_text(html.escape(text, quote=False), node_id)
        except Exception:
            log.debug("send_progress_text failed", exc_info=True)


def _directory(getter: str, env: str, default_leaf: str) -> Path:
    override = env_directory(env)  # validated: a file, or a NUL, is a clear error
    if override is not None:
        return override
    fp = _import("folder_paths")
    if fp is not None and hasattr(fp, getter):
        return Path(getattr(fp, getter)())
    return Path(tempfile.gettempdir()) / "runware_ovi_sync" / default_leaf


def output_directory() -> Path:
    return _directory("get_output_directory", "RUNWARE_OUTPUT_DIR", "output")


def user_directory() -> Path:
    return _directory("get_user_directory", "RUNWARE_USER_DIR", "user")


def temp_directory() -> Path:
    return _directory("get_temp_directory", "RUNWARE_TEMP_DIR", "temp")


# -- VIDEO objects ----------------------------------------------------------------------
# ComfyUI's VIDEO type is a ``comfy_api`` VideoInput. We use the real classes when ComfyUI
# is there and small stand-ins with the same methods when it is not (tests, benchmarks).


def comfy_video_classes() -> dict[str, Any] | None:
    """ComfyUI's ``VideoFromFile``, ``VideoFromComponents``, ``VideoComponents``, or None."""
    impl = _import("comfy_api.input_impl")
    util = _import("comfy_api.util")
    if impl is None or util is None:
        return None
    try:
        return {
            "VideoFromFile": impl.VideoFromFile,
            "VideoFromComponents": impl.VideoFromComponents,
            "VideoComponents": util.VideoComponents,
        }
    except AttributeError:
        return None


def video_from_file(path: str | os.PathLike[str] | Any) -> Any:
    """A lazy VIDEO over a file (or BytesIO): ComfyUI's ``VideoFromFile`` when available."""
    source = str(path) if isinstance(path, (str, os.PathLike)) else path
    classes = comfy_video_classes()
    if classes is not None:
        return classes["VideoFromFile"](source)
    return LocalVideoFromFile(source)


def video_from_components(images: Any, frame_rate: float, audio: dict | None = None) -> Any:
    """A VIDEO over tensors in memory: ComfyUI's ``VideoFromComponents`` when available."""
    from fractions import Fraction

    rate = Fraction(frame_rate).limit_denominator(1001)
    classes = comfy_video_classes()
    if classes is not None:
        components = classes["VideoComponents"](images=images, audio=audio, frame_rate=rate)
        return classes["VideoFromComponents"](components)
    return LocalVideoFromComponents(LocalVideoComponents(images, rate, audio))


def video_file_source(video: Any) -> Any | None:
    """The file path / BytesIO a VIDEO object plays from, if it is backed by one as-is.

    True for ComfyUI's ``VideoFromFile`` (and anything else that overrides
    ``get_stream_source`` rather than inheriting ``VideoInput``'s encode-to-BytesIO
    default). None for tensors in memory, and for a newer ``VideoFromFile`` that trims or
    crops (its file is not what the user sees).
    """
    if not hasattr(video, "get_stream_source"):
        return None
    owner = next((k for k in type(video).__mro__ if "get_stream_source" in vars(k)), None)
    if owner is None or owner.__name__ == "VideoInput":
        return None
    for name, default in (("start_time", 0), ("duration", 0), ("crop", None)):
        value = getattr(video, f"_VideoFromFile__{name}", default)
        if value != default:
            return None
    try:
        return video.get_stream_source()
    except Exception:
        log.debug("get_stream_source failed", exc_info=True)
        return None


def is_components_video(video: Any) -> bool:
    """True for a VIDEO holding tensors in memory (``VideoFromComponents``)."""
    return any(k.__name__ in ("VideoFromComponents", "LocalVideoFromComponents")
               for k in type(video).__mro__)


class LocalVideoComponents:
    """Stand-in for ``comfy_api.util.VideoComponents`` (images, frame_rate, audio, metadata)."""

    def __init__(self, images: Any, frame_rate: Any, audio: dict | None = None,
                 metadata: dict | None = None) -> None:
        self.images = images
        self.frame_rate = frame_rate
        self.audio = audio
        self.metadata = metadata


class LocalVideoFromFile:
    """Stand-in for ComfyUI's ``VideoFromFile`` when ``comfy_api`` is absent (same methods)."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def _source(self) -> Any:
        if hasattr(self._file, "seek"):
            self._file.seek(0)
        return self._file

    def get_stream_source(self) -> Any:
        return self._source()

    def get_components(self) -> LocalVideoComponents:
        from fractions import Fraction

        from .runware.media import decode_video

        decoded = decode_video(self._source())
        return LocalVideoComponents(decoded.images, Fraction(decoded.fps).limit_denominator(1001),
                                    decoded.audio)

    def get_dimensions(self) -> tuple[int, int]:
        from .runware.media import probe_video

        info = probe_video(self._source())
        return info.width, info.height

    def get_duration(self) -> float:
        from .runware.media import probe_video

        return probe_video(self._source()).duration

    def get_container_format(self) -> str:
        from .runware.media import probe_video

        return probe_video(self._source()).container

    def save_to(self, path: Any, format: Any = "auto", codec: Any = "auto",
                metadata: dict | None = None) -> None:
        """Copy the file when it already is MP4 (or the container asked for), else re-encode."""
        import shutil

        from .runware.media import frames_to_mp4, sniff_container

        source = self._source()
        if hasattr(source, "getbuffer"):
            head = bytes(source.getbuffer()[:64])
        else:
            with open(source, "rb") as fh:
                head = fh.read(64)
        wanted = str(getattr(format, "value", format)).lower()
        if sniff_container(head) == "mp4" and wanted in ("auto", "mp4") and metadata is None:
            if hasattr(source, "getbuffer"):
                Path(path).write_bytes(source.getvalue())
            else:
                shutil.copyfile(source, path)
            return
        components = self.get_components()
        frames_to_mp4(components.images, float(components.frame_rate), Path(path),
                      components.audio)


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
        from .runware.media import frames_to_mp4

        c = self._components
        frames_to_mp4(c.images, float(c.frame_rate), Path(path), c.audio)


def running_prompt() -> dict | None:
    """The API-format prompt ComfyUI is executing right now, or None.

    For ``IS_CHANGED``, which ComfyUI calls with an empty PROMPT: the queue still holds
    the running item ``(number, prompt_id, prompt, extra_data, outputs)``.
    """
    server = _import("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    queue = getattr(instance, "prompt_queue", None)
    running = getattr(queue, "currently_running", None)
    if not running:
        return None
    try:
        items = list(running.values())
    except Exception:
        return None
    if len(items) != 1:
        return None
    prompt = items[0][2] if len(items[0]) > 2 else None
    return prompt if isinstance(prompt, dict) else None
