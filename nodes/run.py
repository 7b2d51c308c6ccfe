"""Running a model node's job: the live status on the node, the result cache, ComfyUI's
interrupt, and the five outputs made from the downloaded results.

Node classes stay declarative: they build a request and hand it to :func:`run_job`
(Ovi, sync-3) or, for Runware Fetch Result, use the pieces here around ``fetch_task``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from . import host, spend_panel
from .context import client_config, key_file, result_cache  # noqa: F401 (re-exported)
from .graph import linked_outputs, running_outputs_fingerprint
from .inputs import TableNode
from .runware.cache import pin_file
from .runware.client import Progress
from .runware.errors import CancelledError, RunwareError, scrub
from .runware.jobs import JobResult, run_cached_job
from .runware.logs import get_logger
from .runware.media import NotEnoughMemoryError, ResultDecodeError
from .runware.tasks import PreparedJob
from .video_io import result_outputs

log = get_logger()

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


class StatusText:
    """Live status on the node: phase, percent, elapsed time and cost, every second.

    Progress reports can be 10 s apart while Runware works, so a ticker redraws the line
    once a second in between; Runware's own progress also drives ComfyUI's progress bar.
    """

    PHASES = {"uploading": "uploading", "submitting": "queued", "processing": "processing",
              "downloading": "downloading", "cached": "cached", "decoding": "decoding"}

    def __init__(self, node_id: str | None, label: str) -> None:
        self.node_id = node_id
        self.label = label
        self.started = time.monotonic()
        self.progress: Progress | None = None
        self.cost: float | None = None
        self.estimate: str | None = None  # set when a paid job starts (spend_panel)
        self.bar = host.ProgressBar(node_id)

    def show(self, text: str) -> None:
        host.send_progress_text(scrub(text), self.node_id)  # never a key, whatever echoed

    def interrupted(self, paid: bool = False) -> None:
        """Cancel pressed: say how to get the result without paying again."""
        if paid:
            self.show(f"{self.label}: interrupted while decoding (the result is saved; "
                      "queue again to use it without paying again)")
        else:
            self.show(f"{self.label}: interrupted (a submitted job keeps running on "
                      "Runware; queue again to pick it up without paying again)")

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        p = self.progress
        parts = [f"{self.label}: {self.PHASES.get(p.phase, p.phase) if p else 'starting'}"]
        if p is not None and p.percent is not None:
            parts[0] += f" {p.percent:.0f}%"
        if p is not None and p.total > 1:
            parts.append(f"{p.done}/{p.total} results")
        parts.append(f"{elapsed:.0f}s")
        if self.cost is not None:
            parts.append(f"${self.cost:.4f}")
        elif self.estimate and (p is None or p.phase not in ("cached", "decoding")):
            parts.append(f"est. {self.estimate}")
        if p is not None and p.note:
            parts.append(f"{p.note}; still waiting")
        return " · ".join(parts)

    def __call__(self, progress: Progress) -> None:
        changed = self.progress is None or progress.phase != self.progress.phase
        self.progress = progress
        if progress.phase == "processing" and progress.percent is not None:
            self.bar.update(progress.percent)
        if changed:
            self.show(self.line())

    async def ticker(self) -> None:
        while True:
            self.show(self.line())
            await asyncio.sleep(1.0)


class ModelNode(TableNode):
    """What the nodes that hand out Runware results share (Ovi, sync-3, Fetch Result):
    the five list outputs and IS_CHANGED."""

    RETURN_TYPES = MODEL_OUTPUTS
    RETURN_NAMES = MODEL_OUTPUT_NAMES
    OUTPUT_TOOLTIPS = MODEL_OUTPUT_TOOLTIPS
    OUTPUT_IS_LIST = MODEL_OUTPUT_IS_LIST

    @classmethod
    def IS_CHANGED(cls, unique_id: str | None = None, **_inputs: Any) -> str:  # noqa: N802
        """Stable (never NaN or time-based). ComfyUI already re-runs a node when its inputs
        change. What inputs cannot show is which outputs are connected: IMAGE/AUDIO are only
        decoded when linked, so a newly linked output must re-run the node (which then
        reuses the cached file, no charge)."""
        return running_outputs_fingerprint(unique_id, len(MODEL_OUTPUTS))


async def run_job(job: PreparedJob, *, node_id: str | None, label: str, graph: dict | None,
                  reuse: bool = True) -> dict[str, Any]:
    """Run the job (result cache, ComfyUI's interrupt, live status) and decode its results.

    Returns ComfyUI's ``{"ui": ..., "result": (video, images, audio, fps, info)}``.
    """
    model = job.model
    config = client_config()
    status = StatusText(node_id, label)
    cache = result_cache()
    ticker = asyncio.ensure_future(status.ticker())
    try:
        with spend_panel.tracked_run(job, api_url=config.api_url, store=cache.store,
                                     status=status, node_id=node_id, label=label) as run:
            results = await run_cached_job(
                job, config=config, cache=cache, reuse=reuse,
                should_cancel=host.is_interrupted, on_progress=run.on_progress,
                node_id=node_id, prompt_id=run.prompt_id, before_submit=run.before_submit,
            )
    except CancelledError:
        status.interrupted()
        host.raise_interrupted()
        raise
    except RunwareError as exc:
        status.show(f"{label}: failed - {exc.code or type(exc).__name__}"
                    + (f" (task {exc.task_uuid})" if exc.task_uuid else ""))
        raise
    except BaseException as exc:  # ComfyUI's interrupt is a BaseException since 2026
        if host.is_interrupt(exc):
            status.interrupted()
        raise
    finally:
        ticker.cancel()
    status.bar.update(100)
    status.cost = sum(r.result.cost or 0.0 for r in results if not r.cached)
    status.show(f"{label}: decoding · {time.monotonic() - status.started:.0f}s")
    try:
        estimate = run.info_estimate(results[0].result.task_uuid if results else None)
        outputs = model_outputs(results, model, graph, node_id, estimate)
    except BaseException as exc:
        if host.is_interrupt(exc):
            status.interrupted(paid=True)
        raise
    status.show(status_summary(label, results, time.monotonic() - status.started))
    return {"ui": preview_ui(results), "result": outputs}


def preview_ui(results: list[JobResult]) -> dict[str, Any]:
    """The node shows its result video (playable, with sound) like Save Video does."""
    root = host.output_directory().resolve()
    items = []
    for result in results:
        try:
            relative = result.path.resolve().relative_to(root)
        except ValueError:  # cache moved outside the output folder: nothing to serve
            continue
        items.append({"filename": relative.name, "subfolder": relative.parent.as_posix(),
                      "type": "output"})
    return {"images": items, "animated": (True,)} if items else {}


def status_summary(label: str, results: list[JobResult], elapsed: float) -> str:
    if results and all(r.cached for r in results):
        return f"{label}: reused the cached result (no new charge) · {elapsed:.0f}s"
    cost = sum(r.result.cost or 0.0 for r in results)
    return f"{label}: done · {len(results)} result(s) · ${cost:.4f} · {elapsed:.0f}s"


def info_json(result: JobResult, model: str, estimate: dict | None = None) -> str:
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
        # The estimate made before the job was paid (spend.py); null if none was made.
        "estimate": estimate,
    }, indent=2)


def model_outputs(
    results: list[JobResult], model: str, graph: dict | None, node_id: str | None,
    estimate: dict | None = None,
) -> tuple[list, list, list, list, list]:
    """Five lists (video, images, audio, fps, info), one entry per result, in order."""
    linked = linked_outputs(graph, node_id, len(MODEL_OUTPUTS))
    need_images = linked is None or 1 in linked
    need_audio = linked is None or 2 in linked
    videos, images, audios, fps_list, infos = [], [], [], [], []
    for result in results:
        host.check_interrupted()  # Cancel between (long) decodes; the files stay cached
        try:
            video, frames, audio, fps = result_outputs(
                result.path, need_images=need_images, need_audio=need_audio
            )
        except NotEnoughMemoryError:  # says itself where the file is and what to do
            raise
        except Exception as exc:
            if host.is_interrupt(exc):  # older ComfyUI: the interrupt is an Exception
                raise
            raise ResultDecodeError(
                f"Could not decode the result of Runware task {result.result.task_uuid} "
                f"({exc}). The paid file is kept at {result.path}",
                task_uuid=result.result.task_uuid,
                hint="Open it with another player, or recover it with Runware Fetch Result.",
            ) from exc
        pin_file(result.path, video)  # no eviction while this VIDEO may still be read
        videos.append(video)
        images.append(frames)
        audios.append(audio)
        fps_list.append(float(fps))
        infos.append(info_json(result, model, estimate))
    return videos, images, audios, fps_list, infos
