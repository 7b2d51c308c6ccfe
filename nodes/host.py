"""The one place that touches ComfyUI. Every import is lazy and has a fallback.

Outside ComfyUI (tests, benchmarks, the offline double) each function degrades to a
sensible default: no interrupt, no progress UI, directories under the system temp dir.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .runware.config import env_directory
from .runware.logs import LOGGER_NAME, get_logger

log = get_logger()


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


def cancel_check() -> Callable[[], None] | None:
    """``check_interrupted`` for a loop that calls it often (per packet), or None outside
    ComfyUI, where each call would retry the failing import for nothing."""
    return check_interrupted if interrupt_exception_type() is not None else None


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
    return Path(tempfile.gettempdir()) / LOGGER_NAME / default_leaf


def output_directory() -> Path:
    return _directory("get_output_directory", "RUNWARE_OUTPUT_DIR", "output")


def user_directory() -> Path:
    return _directory("get_user_directory", "RUNWARE_USER_DIR", "user")


def temp_directory() -> Path:
    return _directory("get_temp_directory", "RUNWARE_TEMP_DIR", "temp")


# -- VIDEO objects ----------------------------------------------------------------------
# ComfyUI's VIDEO type is a ``comfy_api`` VideoInput; the pack makes its VIDEO outputs
# with ComfyUI's own classes. Outside ComfyUI (tests, benchmarks) there are none: whoever
# needs VIDEO values there installs stand-ins with the same methods through
# ``install_video_classes`` (the tests do). Inside a running ComfyUI, classes that cannot
# be imported are a bug (core nodes such as Save Video take only ComfyUI's own), so that
# case is logged as an error, once.

VIDEO_CLASS_NAMES = ("VideoFromFile", "VideoFromComponents", "VideoComponents")
_STAND_IN_LOGGED = False
_INSTALLED: dict[str, type] | None = None


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


def install_video_classes(classes: dict[str, type] | None) -> None:
    """VIDEO classes to use where ComfyUI's cannot be imported (``VIDEO_CLASS_NAMES`` ->
    class), or None to remove them. Tests and benchmarks install stand-ins here; ComfyUI's
    own classes always win when they import."""
    global _INSTALLED
    if classes is not None:
        missing = [name for name in VIDEO_CLASS_NAMES if not isinstance(classes.get(name), type)]
        if missing:
            raise ValueError(f"install_video_classes: missing {', '.join(missing)}")
    _INSTALLED = dict(classes) if classes is not None else None


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
        instead = ("The stand-ins installed for tests are used instead, and core video "
                   "nodes (Save Video, Get Video Components) will fail on them."
                   if _INSTALLED is not None else
                   "The Runware nodes cannot make their video output (core video nodes "
                   "such as Save Video take only ComfyUI's own VIDEO classes).")
        log.error(
            "Runware: ComfyUI's VIDEO classes could not be imported (comfy_api.latest: %s; "
            "comfy_api.input_impl: %s). %s Update ComfyUI, or report this with ComfyUI's "
            "version.",
            latest_error or "incomplete", impl_error or util_error or "incomplete", instead,
        )
    return None


def video_classes() -> dict[str, Any]:
    """ComfyUI's VIDEO classes, else the installed stand-ins; an error saying why when
    there are neither (the model nodes' callers keep the paid file and say where)."""
    classes = comfy_video_classes() or _INSTALLED
    if classes is None:
        raise RuntimeError("ComfyUI's VIDEO classes (comfy_api) could not be imported, so "
                           "no VIDEO can be made; update ComfyUI")
    return classes


def video_from_file(path: str | os.PathLike[str] | Any) -> Any:
    """A lazy VIDEO over a file (or BytesIO): ComfyUI's ``VideoFromFile``."""
    source = str(path) if isinstance(path, (str, os.PathLike)) else path
    return video_classes()["VideoFromFile"](source)


def _running_item() -> Any | None:
    """The one item ComfyUI's queue is running, ``(number, prompt_id, prompt, extra_data,
    outputs)``; None outside ComfyUI or when it cannot tell (none, or several at once)."""
    queue = getattr(_prompt_server(), "prompt_queue", None)
    running = getattr(queue, "currently_running", None)
    if not running:
        return None
    try:
        items = list(running.values())
    except Exception:
        return None
    return items[0] if len(items) == 1 else None


def running_prompt() -> dict | None:
    """The API-format prompt ComfyUI is executing right now, or None.

    For ``IS_CHANGED``, which ComfyUI calls with an empty PROMPT: the queue still holds
    the running item ``(number, prompt_id, prompt, extra_data, outputs)``.
    """
    item = _running_item()
    prompt = item[2] if item is not None and len(item) > 2 else None
    return prompt if isinstance(prompt, dict) else None


def running_prompt_id() -> str | None:
    """The id of the prompt ComfyUI is executing right now (its queue's running item), or
    None outside ComfyUI or when it cannot tell (several running at once)."""
    item = _running_item()
    if item is None or len(item) < 2:
        return None
    prompt_id = item[1]
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
