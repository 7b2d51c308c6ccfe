"""Recover a Runware job by its taskUUID: poll and download only, never a new charge."""

from __future__ import annotations

import uuid
from typing import Any

from . import host
from .common import (
    CATEGORY,
    HIDDEN,
    MODEL_OUTPUT_IS_LIST,
    MODEL_OUTPUT_NAMES,
    MODEL_OUTPUT_TOOLTIPS,
    MODEL_OUTPUTS,
    STRING,
    StatusText,
    client_config,
    is_changed,
    model_outputs,
    preview_ui,
    result_cache,
)
from .runware.errors import CancelledError, ValidationError
from .runware.jobs import fetch_task
from .runware.spec import OVI_MODEL, SYNC3_MODEL

MODELS = {"Ovi": OVI_MODEL, "sync-3": SYNC3_MODEL}


class RunwareFetchResult:
    DESCRIPTION = (
        "Recovers a Runware Ovi or sync-3 job by its taskUUID (from a node's info output, "
        "an error message or the log) without paying again: it only waits for the job and "
        "downloads its results, or reuses them from the on-disk cache."
    )
    CATEGORY = CATEGORY
    FUNCTION = "fetch"
    RETURN_TYPES = MODEL_OUTPUTS
    RETURN_NAMES = MODEL_OUTPUT_NAMES
    OUTPUT_TOOLTIPS = MODEL_OUTPUT_TOOLTIPS
    OUTPUT_IS_LIST = MODEL_OUTPUT_IS_LIST

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "task_uuid": STRING("The taskUUID of the job to recover."),
                "model": (list(MODELS), {"default": "Ovi",
                                         "tooltip": "Which model ran the job."}),
            },
            "hidden": HIDDEN,
        }

    IS_CHANGED = classmethod(is_changed)

    async def fetch(self, task_uuid: str, model: str, unique_id: str | None = None,
                    graph: dict | None = None) -> dict[str, Any]:
        task_uuid = (task_uuid or "").strip()
        try:
            uuid.UUID(task_uuid)
        except ValueError:
            raise ValidationError(
                f"task_uuid {task_uuid!r} is not a taskUUID", parameter="task_uuid",
                hint="Paste the taskUUID from the info output or the error message.",
            ) from None
        if model not in MODELS:
            raise ValidationError(f"model must be one of {', '.join(MODELS)}",
                                  parameter="model")
        status = StatusText(unique_id, "Fetch")
        try:
            results = await fetch_task(
                task_uuid, config=client_config(), cache=result_cache(),
                model=MODELS[model], should_cancel=host.is_interrupted, on_progress=status,
            )
        except CancelledError:
            status.interrupted()
            host.raise_interrupted()
            raise
        return {"ui": preview_ui(results),
                "result": model_outputs(results, MODELS[model], graph, unique_id)}
