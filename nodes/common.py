"""What the model nodes share: input declarations, the delivery node, running a job.

Node classes stay declarative; everything here is plain Python over the core.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from . import host
from .runware import media
from .runware.cache import ResultCache
from .runware.client import Progress
from .runware.config import ClientConfig
from .runware.errors import CancelledError, RunwareError
from .runware.jobs import JobResult, run_cached_job
from .runware.tasks import OUTPUT_FORMATS, SAFETY_MODES, PreparedJob, delivery_options

log = logging.getLogger("runware_ovi_sync")

CATEGORY = "Runware"
DELIVERY_TYPE = "RUNWARE_DELIVERY"

MODEL_OUTPUTS = ("VIDEO", "IMAGE", "AUDIO", "FLOAT", "STRING")
MODEL_OUTPUT_NAMES = ("video", "images", "audio", "fps", "info")
MODEL_OUTPUT_TOOLTIPS = (
    "The result as a playable VIDEO (with its audio track), e.g. for Save Video.",
    "The result's frames as an IMAGE batch (only decoded when this output is connected).",
    "The result's audio track as AUDIO (only decoded when this output is connected).",
    "The result's frame rate.",
    "JSON with taskUUID, videoUUID, videoURL, seed, cost, model and the local file path.",
)
# Every output is a list (one entry per result): number_results decides its length.
MODEL_OUTPUT_IS_LIST = (True,) * len(MODEL_OUTPUTS)


def INT(default: int, lo: int, hi: int, tooltip: str, **extra: Any) -> tuple:  # noqa: N802
    return ("INT", {"default": default, "min": lo, "max": hi, "step": 1,
                    "tooltip": tooltip, **extra})


def FLOAT(default: float, lo: float, hi: float, step: float, tooltip: str,  # noqa: N802
          **extra: Any) -> tuple:
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step,
                      "round": step, "tooltip": tooltip, **extra})


def STRING(tooltip: str, default: str = "", multiline: bool = False) -> tuple:  # noqa: N802
    return ("STRING", {"default": default, "multiline": multiline, "tooltip": tooltip})


def output_inputs(max_results: int) -> dict[str, tuple]:
    """The optional inputs both model nodes share, in their public order."""
    return {
        "number_results": INT(1, 1, max_results,
                              f"How many videos to make (1-{max_results}); each is paid. "
                              "Every output becomes a list with one entry per result."),
        "output_format": (list(OUTPUT_FORMATS), {
            "default": "MP4",
            "tooltip": "Container Runware returns: MP4 (H.264, plays everywhere), WEBM, "
                       "or MOV.",
        }),
        "output_quality": INT(95, 20, 99, "Compression quality of the returned file "
                                          "(higher = better and larger)."),
        "safety": (list(SAFETY_MODES), {
            "default": "off",
            "tooltip": "Runware content check: off; fast checks key frames; full checks "
                       "every frame.",
        }),
    }


DELIVERY_INPUT = (DELIVERY_TYPE, {
    "tooltip": "Optional webhook / upload endpoint / TTL from a Runware Delivery node."
})
REUSE_INPUT = ("BOOLEAN", {
    "default": True,
    "tooltip": "Reuse a finished result of exactly the same request from the on-disk cache "
               "(no new charge, also after a restart). Turn off to pay for a new take.",
})
HIDDEN = {"unique_id": "UNIQUE_ID", "graph": "PROMPT"}


class RunwareDelivery:
    """Where Runware also sends the result, and for how long its URL lives."""

    DESCRIPTION = (
        "Delivery options for Runware jobs: a webhook Runware POSTs each finished result "
        "to, an upload endpoint (e.g. a presigned S3 URL) Runware PUTs the file to, and "
        "how long the result URL stays valid. The nodes still download every result."
    )
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = (DELIVERY_TYPE,)
    RETURN_NAMES = ("delivery",)
    OUTPUT_TOOLTIPS = ("Connect to the delivery input of a Runware model node.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "webhook_url": STRING("webhookURL: Runware POSTs each finished result here "
                                      "(empty = none)."),
                "upload_endpoint": STRING(
                    "uploadEndpoint: Runware PUTs the file here, e.g. a presigned URL "
                    "(empty = none). It is saved in the workflow: mind who you share it with."
                ),
                "ttl": INT(0, 0, 2_592_000, "ttl: seconds the result URL stays valid; "
                                            "0 = Runware's default, else at least 60."),
            }
        }

    def build(self, webhook_url: str, upload_endpoint: str, ttl: int) -> tuple[dict]:
        return (delivery_options(webhook_url, upload_endpoint, ttl),)


class StatusText:
    """Live status on the node: phase, percent, elapsed time, at most a few times a second."""

    def __init__(self, node_id: str | None, label: str) -> None:
        self.node_id = node_id
        self.label = label
        self.started = time.monotonic()
        self._last = 0.0

    def show(self, text: str) -> None:
        host.send_progress_text(text, self.node_id)

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last < 0.25 and progress.phase == "downloading":
            return
        self._last = now
        elapsed = now - self.started
        line = f"{self.label}: {progress.phase}"
        if progress.percent is not None:
            line += f" {progress.percent:.0f}%"
        if progress.total > 1:
            line += f" ({progress.done}/{progress.total} results)"
        self.show(f"{line} · {elapsed:.0f}s")


def is_changed(cls: type, unique_id: str | None = None, **_inputs: Any) -> str:
    """IS_CHANGED for the model nodes: stable (never NaN or time-based).

    ComfyUI already re-runs a node when its inputs change. What inputs cannot show is
    which outputs are connected: IMAGE/AUDIO are only decoded when linked, so a newly
    linked output must re-run the node (which then reuses the cached file, no charge).
    """
    return media.outputs_fingerprint(host.running_prompt(), unique_id, len(MODEL_OUTPUTS))


def result_cache() -> ResultCache:
    """The on-disk result cache: RUNWARE_CACHE_DIR, else <ComfyUI output>/runware."""
    return ResultCache.from_env(host.output_directory() / "runware")


async def run_job(job: PreparedJob, *, node_id: str | None, label: str,
                  reuse: bool = True) -> list[JobResult]:
    """Run the job with the result cache, ComfyUI's interrupt and live status wired in."""
    config = ClientConfig.from_env()
    status = StatusText(node_id, label)
    try:
        results = await run_cached_job(
            job, config=config, cache=result_cache(), reuse=reuse,
            should_cancel=host.is_interrupted, on_progress=status,
        )
    except CancelledError:
        status.show(f"{label}: interrupted (a submitted job keeps running on Runware; "
                    "queue again to pick it up without paying again)")
        host.raise_interrupted()
        raise
    except RunwareError as exc:
        status.show(f"{label}: failed - {exc.code or type(exc).__name__}"
                    + (f" (task {exc.task_uuid})" if exc.task_uuid else ""))
        raise
    status.show(status_summary(label, results, time.monotonic() - status.started))
    return results


def status_summary(label: str, results: list[JobResult], elapsed: float) -> str:
    if results and all(r.cached for r in results):
        return f"{label}: reused the cached result (no new charge) · {elapsed:.0f}s"
    cost = sum(r.result.cost or 0.0 for r in results)
    return f"{label}: done · {len(results)} result(s) · ${cost:.4f} · {elapsed:.0f}s"


def info_json(result: JobResult, model: str) -> str:
    r = result.result
    return json.dumps({
        "taskUUID": r.task_uuid,
        "videoUUID": r.video_uuid,
        "videoURL": r.url,
        "seed": r.seed,
        "cost": r.cost,
        "model": model,
        "file": str(result.path),
        "cached": result.cached,
    }, indent=2)


def model_outputs(
    results: list[JobResult], model: str, graph: dict | None, node_id: str | None
) -> tuple[list, list, list, list, list]:
    """Five lists (video, images, audio, fps, info), one entry per result, in order."""
    linked = media.linked_outputs(graph, node_id, len(MODEL_OUTPUTS))
    need_images = linked is None or 1 in linked
    need_audio = linked is None or 2 in linked
    videos, images, audios, fps_list, infos = [], [], [], [], []
    for result in results:
        try:
            video, frames, audio, fps = media.results_to_outputs(
                result.path, need_images=need_images, need_audio=need_audio
            )
        except Exception as exc:
            raise media.MediaError(
                f"Could not decode the result of Runware task {result.result.task_uuid} "
                f"({exc}). The paid file is kept at {result.path}",
                task_uuid=result.result.task_uuid,
                hint="Open it with another player, or recover it with Runware Fetch Result.",
            ) from exc
        videos.append(video)
        images.append(frames)
        audios.append(audio)
        fps_list.append(float(fps))
        infos.append(info_json(result, model))
    return videos, images, audios, fps_list, infos
