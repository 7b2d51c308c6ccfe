"""The Runware panel's server side: running jobs live, the daily limit, Recover.

- ``LIVE``: the jobs this ComfyUI process is running right now (model nodes, Fetch Result,
  Recover), fed by the same progress reports as the node's status text and pushed to
  every page as the websocket event ``runware_ovi_sync3.job`` (``{"op": "update" | "end",
  "job": {...}}``); ``GET /runware_ovi_sync3/live`` reads them for a fresh page.
- ``tracked_run``: what ``run.run_job`` wraps a paid run in: the estimate, the daily
  limit check (``spend.SpendGuard``), the live entry.
- ``start_recover``: Recover from the panel, i.e. ``jobs.fetch_task`` (poll + download,
  never a submission) in a thread of its own, once per job at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import host
from .context import client_config, result_cache
from .runware.client import Progress
from .runware.errors import CancelledError, RunwareError, scrub
from .runware.logs import get_logger
from .runware.spend import (
    LIMIT_FILE_NAME,
    DailyLimit,
    Estimate,
    LimitFile,
    SpendGuard,
    daily_limit,
    model_family,
    pricing_of,
    recorded_estimate,
)
from .runware.store import PENDING_STATUSES, api_endpoint

log = get_logger()

EVENT = "runware_ovi_sync3.job"
SEND_EVERY = 0.5  # seconds between two updates of one job (phase changes go at once)


def limit_file() -> LimitFile:
    """Where the settings dialog keeps the daily limit: ComfyUI's user directory."""
    return LimitFile(host.user_directory() / LIMIT_FILE_NAME)


def current_limit() -> DailyLimit:
    return daily_limit(limit_file())


# -- running jobs ---------------------------------------------------------------------------


class LiveJob:
    """One running job as the panel shows it; call it with each Progress report."""

    def __init__(self, registry: LiveJobs, *, kind: str, model: str, label: str,
                 node_id: str | None, prompt_id: str | None, task_uuid: str | None = None,
                 estimate: Estimate | None = None) -> None:
        self.registry = registry
        self.id = uuid.uuid4().hex
        self.kind = kind  # "node" | "fetch" | "recover"
        self.model = model
        self.label = label
        self.node_id = node_id
        self.prompt_id = prompt_id
        self.task_uuid = task_uuid
        self.estimate = estimate
        self.started = time.time()
        self._clock = time.monotonic()
        self.phase = "starting"
        self.percent: float | None = None
        self.done = 0
        self.total = 1
        self.note: str | None = None
        self.outcome: str | None = None
        self.error: str | None = None
        self.cost: float | None = None
        self._sent = 0.0

    def __call__(self, progress: Progress) -> None:
        changed = progress.phase != self.phase
        self.phase = progress.phase
        self.percent = progress.percent
        self.done, self.total = progress.done, progress.total
        self.note = progress.note
        self.task_uuid = progress.task_uuid or self.task_uuid
        self.registry.changed(self, force=changed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "model": model_family(self.model),
            "model_id": self.model, "label": self.label, "node_id": self.node_id,
            "prompt_id": self.prompt_id, "task_uuid": self.task_uuid, "phase": self.phase,
            "percent": self.percent, "done": self.done, "total": self.total,
            "note": self.note, "started": self.started,
            "elapsed": round(time.monotonic() - self._clock, 1),
            "estimate": None if self.estimate is None else self.estimate.as_dict(),
            "outcome": self.outcome, "error": self.error, "cost": self.cost,
        }

    def end(self, outcome: str, *, error: str | None = None, cost: float | None = None
            ) -> None:
        self.outcome = outcome
        self.error = scrub(error) if error else None
        self.cost = cost
        self.registry.ended(self)


class LiveJobs:
    """The running jobs of this process, pushed to the page as they change."""

    def __init__(self, send: Callable[[str, dict], None] | None = None) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._jobs: dict[str, LiveJob] = {}

    def start(self, **kwargs: Any) -> LiveJob:
        job = LiveJob(self, **kwargs)
        with self._lock:
            self._jobs[job.id] = job
        self._publish("update", job)
        return job

    def changed(self, job: LiveJob, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - job._sent >= SEND_EVERY:
            self._publish("update", job)

    def ended(self, job: LiveJob) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
        self._publish("end", job)

    def _publish(self, op: str, job: LiveJob) -> None:
        job._sent = time.monotonic()
        (self._send or host.send_event)(EVENT, {"op": op, "job": job.as_dict()})

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            jobs = list(self._jobs.values())
        return [j.as_dict() for j in sorted(jobs, key=lambda j: j.started)]

    def busy(self, task_uuid: str) -> bool:
        with self._lock:
            return any(j.task_uuid == task_uuid for j in self._jobs.values())


LIVE = LiveJobs()


# -- a paid run --------------------------------------------------------------------------------


@dataclass
class TrackedRun:
    """What ``run_cached_job`` gets from the panel for one node run."""

    guard: SpendGuard
    live: LiveJob
    on_progress: Callable[[Progress], None]
    prompt_id: str | None

    @property
    def estimate(self) -> Estimate:
        return self.guard.estimate

    def before_submit(self, fingerprint: str) -> None:
        self.guard.before_submit(fingerprint)

    def info_estimate(self, task_uuid: str | None) -> dict[str, Any] | None:
        """For ``info``: the estimate made when this result's job was submitted (also
        for a cached result: it does not change as the ledger grows)."""
        if not task_uuid:
            return None
        try:
            return recorded_estimate(self.guard.store, self.guard.endpoint, task_uuid)
        except RunwareError:
            return None


@contextlib.contextmanager
def tracked_run(job: Any, *, api_url: str, store: Any, status: Any, node_id: str | None,
                label: str) -> Iterator[TrackedRun]:
    """Estimate and limit (``spend.SpendGuard``) and the live entry for one paid run.
    ``status`` is the node's StatusText: it shows the estimate once a job is submitted."""
    def show_estimate(estimate: Estimate) -> None:
        status.estimate = estimate.text
        status.show(status.line())

    guard = SpendGuard(store, api_endpoint(api_url), job.model,
                       pricing_of(job.model, job.task, getattr(job, "video_seconds", None)),
                       current_limit, on_estimate=show_estimate)
    live = LIVE.start(kind="node", model=job.model, label=label, node_id=node_id,
                      prompt_id=host.running_prompt_id(), estimate=guard.estimate)

    def on_progress(progress: Progress) -> None:
        status(progress)
        live(progress)

    try:
        yield TrackedRun(guard, live, on_progress, live.prompt_id)
    except BaseException as exc:
        interrupted = host.is_interrupt(exc) or isinstance(exc, CancelledError)
        live.end("interrupted" if interrupted else "failed", error=str(exc) or None)
        raise
    else:
        live.end("done")
    finally:
        guard.release()


@contextlib.contextmanager
def tracked_fetch(model: str, *, status: Any, node_id: str | None
                  ) -> Iterator[Callable[[Progress], None]]:
    """The live entry of a Runware Fetch Result run; yields its progress callback."""
    live = LIVE.start(kind="fetch", model=model, label="Fetch", node_id=node_id,
                      prompt_id=host.running_prompt_id())

    def on_progress(progress: Progress) -> None:
        status(progress)
        live(progress)

    try:
        yield on_progress
    except BaseException as exc:
        interrupted = host.is_interrupt(exc) or isinstance(exc, CancelledError)
        live.end("interrupted" if interrupted else "failed", error=str(exc) or None)
        raise
    else:
        live.end("done")


# -- Recover -------------------------------------------------------------------------------------

_RECOVERING: set[tuple[str, str]] = set()
_RECOVERING_LOCK = threading.Lock()


def start_recover(endpoint: str, task_uuid: str) -> tuple[int, dict[str, Any]]:
    """Start recovering a paid job that was not collected: (HTTP status, JSON body).

    Polls and downloads into the cache (``fetch_task``): never submits, never pays, never
    queues the graph. One recovery per job at a time; the request's lock (the same the
    node takes) keeps it and a node resuming the same job from both collecting it."""
    from .runware.jobs import fetch_task

    config = client_config()
    here = api_endpoint(config.api_url)
    cache = result_cache()
    job = cache.store.job(endpoint, task_uuid)
    if job is None:
        return 404, {"error": "No such job in the ledger."}
    if job.status not in PENDING_STATUSES:
        return 409, {"error": f"This job is {job.status}: there is nothing to recover."}
    if endpoint != here:
        return 409, {"error": f"This job ran at {endpoint}, and ComfyUI now talks to {here}."
                              " Point RUNWARE_API_URL at that endpoint and restart ComfyUI "
                              "to recover it."}
    try:
        config.require_key()
    except RunwareError as exc:
        return 400, {"error": str(exc)}
    with _RECOVERING_LOCK:
        if (endpoint, task_uuid) in _RECOVERING:
            return 409, {"error": "This job is being recovered already."}
        if LIVE.busy(task_uuid):
            return 409, {"error": "A node is collecting this job right now."}
        _RECOVERING.add((endpoint, task_uuid))
    live = LIVE.start(kind="recover", model=job.model or "", label="Recover",
                      node_id=job.node_id, prompt_id=job.prompt_id, task_uuid=task_uuid)

    def work() -> None:
        try:
            results = asyncio.run(fetch_task(
                task_uuid, config=config, cache=cache, model=job.model or "",
                extension=job.extension, on_progress=live))
            cost = sum(r.result.cost or 0.0 for r in results if not r.cached)
            live.end("done", cost=cost)
        except BaseException as exc:  # reported on the panel; the journal stays
            log.warning("Recover of Runware task %s failed: %s", task_uuid, exc)
            live.end("failed", error=str(exc) or type(exc).__name__)
        finally:
            with _RECOVERING_LOCK:
                _RECOVERING.discard((endpoint, task_uuid))

    threading.Thread(target=work, name=f"runware-recover-{task_uuid[:8]}",
                     daemon=True).start()
    return 202, {"started": True, "id": live.id, "task_uuid": task_uuid}
