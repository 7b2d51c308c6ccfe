"""The one place that touches ComfyUI. Every import is lazy and has a fallback.

Outside ComfyUI (tests, benchmarks, the offline double) each function degrades to a
sensible default: no interrupt, no progress UI, directories under the system temp dir.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

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
    """Raise ComfyUI's own interrupt exception, so the run shows "interrupted"."""
    mm = _import("comfy.model_management")
    if mm is not None:
        raise mm.InterruptProcessingException()
    raise KeyboardInterrupt("Interrupted")


def send_progress_text(text: str, node_id: str | None) -> None:
    if node_id is None:
        return
    server = _import("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is not None:
        try:
            instance.send_progress_text(text, node_id)
        except Exception:
            log.debug("send_progress_text failed", exc_info=True)


def _directory(getter: str, env: str, default_leaf: str) -> Path:
    override = os.environ.get(env)
    if override:
        return Path(override)
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
