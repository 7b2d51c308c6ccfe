"""Recover a Runware job by its taskUUID: poll and download only, never a new charge."""

from __future__ import annotations

import uuid
from typing import Any

from . import host
from .inputs import HIDDEN, Inputs, combo_input, string_input
from .run import (
    ModelNode,
    StatusText,
    client_config,
    model_outputs,
    preview_ui,
    result_cache,
)
from .runware.errors import CancelledError, ValidationError
from .runware.jobs import fetch_task
from .runware.spec import OVI_MODEL, SYNC3_MODEL
from .spend_panel import tracked_fetch

MODELS = {"Ovi": OVI_MODEL, "sync-3": SYNC3_MODEL}

INPUTS = Inputs(
    string_input("task_uuid", "The taskUUID of the job to recover."),
    combo_input("model", tuple(MODELS), "Ovi", "Which model ran the job."),
    hidden=HIDDEN,
)


def normalize_task_uuid(text: object) -> str:
    """A pasted taskUUID in any common spelling -> Runware's lowercase dashed form.

    Accepted: surrounding spaces or quotes, ``urn:uuid:...``, ``{...}``, upper case, the
    32 hex digits without dashes. Anything else is a clear error naming the input.
    """
    raw = text if isinstance(text, str) else ""
    cleaned = raw.strip().strip("\"'`").strip()
    if cleaned.lower().startswith("urn:uuid:"):
        cleaned = cleaned[len("urn:uuid:"):]
    if cleaned.startswith("{") and cleaned.endswith("}"):
        cleaned = cleaned[1:-1]
    compact = cleaned.replace("-", "")
    shaped = len(compact) == 32 and all(c in "0123456789abcdefABCDEF" for c in compact) and (
        len(cleaned) == 32 or [len(p) for p in cleaned.split("-")] == [8, 4, 4, 4, 12])
    if not shaped:
        shown = raw.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        raise ValidationError(
            f"task_uuid {shown[:80]!r} is not a taskUUID", parameter="task_uuid",
            hint="Paste the taskUUID from the info output or the error message "
            "(36 characters like 1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed).",
        )
    return str(uuid.UUID(hex=compact))


class RunwareFetchResult(ModelNode):
    DESCRIPTION = (
        "Recovers a Runware Ovi or sync-3 job by its taskUUID (from a node's info output, "
        "an error message or the log) without paying again: it only waits for the job and "
        "downloads its results, or reuses them from the on-disk cache."
    )
    FUNCTION = "fetch"
    INPUTS = INPUTS

    async def fetch(self, *args: Any, unique_id: str | None = None,
                    graph: dict | None = None, **inputs: Any) -> dict[str, Any]:
        values = INPUTS.values(inputs, args)
        task_uuid, model = normalize_task_uuid(values["task_uuid"]), values["model"]
        if model not in MODELS:
            raise ValidationError(f"model must be one of {', '.join(MODELS)}",
                                  parameter="model")
        status = StatusText(unique_id, "Fetch")
        try:
            with tracked_fetch(MODELS[model], status=status, node_id=unique_id) as progress:
                results = await fetch_task(
                    task_uuid, config=client_config(), cache=result_cache(),
                    model=MODELS[model], should_cancel=host.is_interrupted,
                    on_progress=progress,
                )
        except CancelledError:
            status.interrupted()
            host.raise_interrupted()
            raise
        return {"ui": preview_ui(results),
                "result": model_outputs(results, MODELS[model], graph, unique_id)}
