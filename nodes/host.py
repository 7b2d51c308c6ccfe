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
    return _import_or_error(name)[0]


def _import_or_error(name: str) -> tuple[Any | None, str]:
    """(module, "") or (None, why it did not import)."""
    try:
        return __import__(name, fromlist=["_"]), ""
    except Exception as exc:  # ComfyUI absent, or a module of it failed to import
        return None, f"{type(exc).__name__}: {exc}"


# -- ComfyUI's interrupt ---------------------------------------------------------------------
# ComfyUI's Cancel raises ``comfy.model_management.InterruptProcessingException``. Since
# April 2026 it derives from BaseException (before: Exception), so ``except Exception``
# neither catches nor swallows it any more. Code that must see it asks ``is_interrupt``.


def interrupt_exception_type() -> type[BaseException] | None:
    """ComfyUI's InterruptProcessingException class, or None outside ComfyUI."""
    mm = _import("comfy.model_management")
    kind = getattr(mm, "InterruptProcessingException", None)
    return kind if isinstance(kind, type) and issubclass(kind, BaseException) else None


def is_interrupt(exc: BaseException) -> bool:
    """True if ``exc`` is ComfyUI's interrupt (whichever base class this ComfyUI uses)."""
    kind = interrupt_exception_type()
    return kind is not None and isinstance(exc, kind)


def is_interrupted() -> bool:
    """True once the user pressed Cancel in ComfyUI (the flag is not cleared here)."""
    mm = _import("comfy.model_management")
    return bool(mm and mm.processing_interrupted())


def raise_interrupted() -> None:
    """Raise ComfyUI's own interrupt exception, so the run shows "interrupted".

    Outside ComfyUI this returns, and the caller re-raises its own cancel error.
    """
    kind = interrupt_exception_type()
    if kind is not None:
        raise kind()


def check_interrupted() -> None:
    """A cancel point between steps: raise ComfyUI's interrupt if Cancel was pressed."""
    if is_interrupted():
        raise_interrupted()


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
    clears the flag doing so); we catch that explicitly (it is a BaseException in current
    ComfyUI) and set the flag again, so the job's own cancel check sees it and stops
    cleanly: a progress report must never abort a paid job halfway through a step.
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
        except BaseException as exc:
            if is_interrupt(exc):
                mm = _import("comfy.model_management")
                if mm is not None:
                    mm.interrupt_current_processing(True)
                return
            if not isinstance(exc, Exception):  # KeyboardInterrupt, asyncio cancellation
                raise
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
# Inside a running ComfyUI a stand-in is a bug (core nodes such as Save Video check for
# ComfyUI's own classes), so that case is logged as an error, once.

_STAND_IN_LOGGED = False


def in_comfyui() -> bool:
    """True when the pack runs inside ComfyUI: its server object exists, or ComfyUI's
    ``comfy_api`` package is importable (found, not imported)."""
    if _prompt_server() is not None:
        return True
    import importlib.util

    try:
        return importlib.util.find_spec("comfy_api") is not None
    except (ImportError, ValueError):
        return False


def _video_classes_from(impl: Any, types: Any) -> dict[str, Any] | None:
    found = {
        "VideoFromFile": getattr(impl, "VideoFromFile", None),
        "VideoFromComponents": getattr(impl, "VideoFromComponents", None),
        "VideoComponents": getattr(types, "VideoComponents", None),
    }
    return found if all(isinstance(v, type) for v in found.values()) else None


def comfy_video_classes() -> dict[str, Any] | None:
    """ComfyUI's ``VideoFromFile``, ``VideoFromComponents``, ``VideoComponents``, or None.

    Current ComfyUI: ``comfy_api.latest`` (``InputImpl`` / ``Types``); older releases (and
    the deprecated shims): ``comfy_api.input_impl`` + ``comfy_api.util``. Inside a running
    ComfyUI, finding neither is logged as an error once.
    """
    global _STAND_IN_LOGGED
    latest, latest_error = _import_or_error("comfy_api.latest")
    if latest is not None:
        classes = _video_classes_from(getattr(latest, "InputImpl", latest),
                                      getattr(latest, "Types", latest))
        if classes is not None:
            return classes
        latest_error = "no InputImpl.VideoFromFile / Types.VideoComponents in it"
    impl, impl_error = _import_or_error("comfy_api.input_impl")
    util, util_error = _import_or_error("comfy_api.util")
    if impl is not None and util is not None:
        classes = _video_classes_from(impl, util)
        if classes is not None:
            return classes
    if not _STAND_IN_LOGGED and in_comfyui():
        _STAND_IN_LOGGED = True
        log.error(
            "Runware: ComfyUI's VIDEO classes could not be imported (comfy_api.latest: %s; "
            "comfy_api.input_impl: %s). The pack's own stand-ins are used instead, and "
            "core video nodes (Save Video, Get Video Components) will fail on them. "
            "Update ComfyUI, or report this with ComfyUI's version.",
            latest_error or "incomplete", impl_error or util_error or "incomplete",
        )
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


def _own_method(video: Any, name: str) -> Any | None:
    """``video.name`` if a concrete class defines it (not only the abstract VideoInput)."""
    owner = next((k for k in type(video).__mro__ if name in vars(k)), None)
    if owner is None or owner.__name__ == "VideoInput":
        return None
    method = getattr(video, name, None)
    return method if callable(method) else None


def _private(video: Any, suffix: str) -> Any:
    """A name-mangled attribute ``_<Class>__<suffix>`` of any class in the MRO, or None."""
    for klass in type(video).__mro__:
        attr = f"_{klass.__name__.lstrip('_')}__{suffix}"
        if hasattr(video, attr):
            return getattr(video, attr)
    return None


def video_edits(video: Any) -> str | None:
    """Why a file-backed VIDEO is not what its file holds ("trimmed", "cropped"), or None.

    Current ComfyUI says it through public methods: ``get_active_trim_window()`` (start,
    duration; (0, 0) = whole clip) and ``has_pending_frame_edits()`` (a crop or resize not
    in the stream yet). Releases that trim or crop without those methods only keep private
    attributes, read as a fallback. A check that fails counts as an edit: re-encoding is
    safe, uploading the unedited file is not.
    """
    try:
        window = _own_method(video, "get_active_trim_window")
        if window is not None:
            start, duration = window()
            if float(start) != 0.0 or float(duration) != 0.0:
                return "trimmed"
        elif _private(video, "start_time") or _private(video, "duration"):
            return "trimmed"
        pending = _own_method(video, "has_pending_frame_edits")
        if pending is not None:
            if pending():
                return "cropped"
        elif _private(video, "crop") is not None:
            return "cropped"
    except Exception:
        log.debug("could not tell whether the VIDEO is trimmed or cropped", exc_info=True)
        return "unknown edits"
    return None


def video_file_source(video: Any) -> Any | None:
    """The file path / BytesIO a VIDEO object plays from, if it is backed by one as-is.

    True for ComfyUI's ``VideoFromFile`` (and anything else that overrides
    ``get_stream_source`` rather than inheriting ``VideoInput``'s encode-to-BytesIO
    default). None for tensors in memory, and for a clip that is trimmed or cropped (see
    ``video_edits``): its file is not what the user sees, so the caller encodes it.
    """
    if _own_method(video, "get_stream_source") is None:
        return None
    edits = video_edits(video)
    if edits is not None:
        log.debug("the VIDEO is %s: its file is not uploaded as it is", edits)
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


def running_prompt_id() -> str | None:
    """The id of the prompt ComfyUI is executing right now (its queue's running item), or
    None outside ComfyUI or when it cannot tell (several running at once)."""
    queue = getattr(_prompt_server(), "prompt_queue", None)
    running = getattr(queue, "currently_running", None)
    if not running:
        return None
    try:
        items = list(running.values())
    except Exception:
        return None
    if len(items) != 1 or len(items[0]) < 2:
        return None
    prompt_id = items[0][1]
    return prompt_id if isinstance(prompt_id, str) and 0 < len(prompt_id) <= 128 else None


def send_event(event: str, data: dict) -> None:
    """A websocket event to every page (``PromptServer.send_sync``; thread-safe). The name
    must be namespaced (``runware_ovi_sync3.*``). Nothing happens outside ComfyUI."""
    instance = _prompt_server()
    send = getattr(instance, "send_sync", None)
    if send is None:
        return
    try:
        send(event, data)
    except Exception:
        log.debug("send_sync failed", exc_info=True)
