"""Run a prepared job exactly once: cache -> upload -> journal -> submit -> poll -> download.

- A finished result is stored under its request fingerprint: the same request later (after
  a restart too) reuses the file and makes no request at all.
- Before a submission, its taskUUID and task go into an on-disk journal. A run that finds
  a journal entry for its fingerprint (ComfyUI restarted, the user cancelled, the time
  limit passed) resumes that task by polling it instead of paying again; only when Runware
  says it does not know the task is the request submitted anew. Within one run, a lost
  answer is retried with the same taskUUID (``conflictTaskUUID`` = already accepted).
- The downloaded file is the paid result: it is written and kept before anything decodes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .cache import CachedResult, CacheEntry, JournalEntry, ResultCache, file_sha256
from .cache import request_fingerprint as _fingerprint
from .client import Progress, RunwareClient, VideoResult
from .config import ClientConfig
from .errors import (
    AuthError,
    CancelledError,
    DownloadError,
    InsufficientCreditsError,
    TaskFailedError,
    TaskNotFoundError,
    ValidationError,
)
from .tasks import EXTENSIONS, PreparedJob, Upload
from .uploads import UploadCache, content_hash

log = logging.getLogger("runware_ovi_sync")

# Error codes meaning "that media UUID is unknown" (Runware dropped an old upload).
MEDIA_GONE_CODES = {"mediaNotFound", "imageNotFound", "invalidMediaUUID", "invalidImageUUID",
                    "fileNotFound"}
MEDIA_FIELDS = ("inputs.image", "inputs.video", "inputs.audio", "settings.segments")


@dataclass(frozen=True)
class JobResult:
    result: VideoResult
    path: Path
    cached: bool = False  # True when reused from the result cache (no new charge)


class SessionCost:
    """Running total of what this ComfyUI session spent on Runware (fresh jobs only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0.0
        self.jobs = 0

    def add(self, cost: float) -> float:
        with self._lock:
            self.total += cost
            self.jobs += 1
            return self.total


SESSION_COST = SessionCost()


def job_fingerprint(
    job: PreparedJob, check_cancel: Callable[[], None] | None = None
) -> tuple[str, dict[str, str]]:
    hashes = {u.placeholder: f"{u.task_type}:{content_hash(u.source, check_cancel)}"
              for u in job.uploads}
    return _fingerprint(job.model, job.task, hashes), hashes


def _report(on_progress: Callable[[Progress], None] | None, progress: Progress) -> None:
    if on_progress is not None:
        on_progress(progress)


def _canceller(should_cancel: Callable[[], bool] | None) -> Callable[[], None]:
    def check() -> None:
        if should_cancel is not None and should_cancel():
            raise CancelledError("Cancelled by the user")

    return check


async def run_cached_job(
    job: PreparedJob,
    *,
    config: ClientConfig,
    cache: ResultCache,
    reuse: bool = True,
    should_cancel: Callable[[], bool] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[JobResult]:
    """The whole paid job, at most once per fingerprint. See the module docstring."""
    # Hashing big inputs takes a while: off the event loop, and cancellable.
    fingerprint, hashes = await asyncio.to_thread(job_fingerprint, job,
                                                  _canceller(should_cancel))
    if reuse:  # the common case, without a key or a lock: every cached file intact
        hit = await _intact_hit(cache, fingerprint, on_progress)
        if hit is not None:
            return hit
    async with RunwareClient(config, should_cancel=should_cancel,
                             on_progress=on_progress) as client:
        async with cache.locked(fingerprint, client.check_cancel):
            if reuse:  # an identical run may have finished while we waited for the lock
                hit = await _cached_results(client, cache, fingerprint, on_progress)
                if hit is not None:
                    return hit
            results, task_uuid = await _submit_or_resume(client, job, cache, fingerprint,
                                                          hashes)
            outcome = await _download_all(client, cache, results, job.extension)
            cache.store(CacheEntry(fingerprint, job.model, task_uuid, [
                _cached_record(r, cache) for r in outcome
            ]))
            cache.journal_drop(fingerprint, task_uuid)
    cost = sum(r.result.cost or 0.0 for r in outcome)
    total = SESSION_COST.add(cost)
    log.info("Runware task %s: %d result(s), cost $%.4f (this session: $%.4f)", task_uuid,
             len(outcome), cost, total)
    return outcome


async def _submit_or_resume(
    client: RunwareClient, job: PreparedJob, cache: ResultCache, fingerprint: str,
    hashes: dict[str, str],
) -> tuple[list[VideoResult], str]:
    pending = cache.journal_get(fingerprint)
    if pending is not None:
        # Only poll: re-sending could be refused (an old upload gone) and look like "never
        # accepted" while the original job runs. Not found = never arrived, or expired.
        log.info("Resuming Runware task %s (submitted %.0f s ago) instead of paying again",
                 pending.task_uuid, time.time() - pending.submitted)
        try:
            return await _poll(client, pending.task, cache, fingerprint), pending.task_uuid
        except TaskNotFoundError:
            log.warning("Runware does not know task %s (never arrived, or expired); "
                        "submitting the request anew", pending.task_uuid)
    for attempt in (1, 2):
        uuids, fresh = await _upload_all(client, job.uploads, cache.uploads, hashes,
                                         force=attempt == 2)
        task = job.with_uploads(uuids)
        if attempt == 2 or pending is not None:
            task["taskUUID"] = str(uuid.uuid4())
        task_uuid = task["taskUUID"]
        cache.journal_put(JournalEntry(fingerprint, job.model, task_uuid, task, job.extension))
        try:
            await client.submit_video(task)
        except (ValidationError, AuthError, InsufficientCreditsError) as exc:
            # Refused. But an earlier attempt of this same submission may have reached
            # Runware before its answer was lost: ask before forgetting the job.
            known = await client.task_exists(task_uuid)
            if known is True:
                log.warning("Runware refused a retry of task %s (%s) but already has the "
                            "task; waiting for it", task_uuid, exc.code)
                return await _poll(client, task, cache, fingerprint), task_uuid
            if known is None:
                raise  # cannot tell: the journal stays, the next run polls and finds out
            cache.journal_drop(fingerprint, task_uuid)  # not accepted, not billed
            if (attempt == 1 and not fresh and isinstance(exc, ValidationError)
                    and _media_gone(exc)):
                log.warning("Runware no longer has an earlier upload (%s); uploading again",
                            exc.code or exc.parameter)
                for stale in uuids.values():
                    cache.uploads.forget_uuid(stale)
                continue
            raise
        # Any other submit failure (connection, 5xx after retries) leaves the journal:
        # the task may have been accepted, and the next run will find out by polling.
        return await _poll(client, task, cache, fingerprint), task_uuid
    raise AssertionError("unreachable")


async def _poll(client: RunwareClient, task: dict, cache: ResultCache,
                fingerprint: str) -> list[VideoResult]:
    task_uuid = task["taskUUID"]
    try:
        return await client.poll_video(task_uuid,
                                       number_results=int(task.get("numberResults") or 1))
    except TaskFailedError as exc:
        cache.journal_drop(fingerprint, task_uuid)  # it ended on Runware: a new run submits
        if exc.partial_results:
            raise await _save_partial(client, cache, exc, task) from exc
        raise


async def _save_partial(client: RunwareClient, cache: ResultCache, exc: TaskFailedError,
                        task: dict) -> TaskFailedError:
    """One generation of a multi-result job failed: keep the ones that finished (paid)."""
    saved = []
    try:
        outcome = await _download_all(client, cache, exc.partial_results,
                                      EXTENSIONS.get(str(task.get("outputFormat")), "mp4"))
        saved = [str(r.path) for r in outcome]
    except Exception:  # the failure itself must still reach the user
        log.exception("Could not save the finished results of task %s", exc.task_uuid)
    urls = ", ".join(r.url for r in exc.partial_results)
    where = ("saved to " + ", ".join(saved)) if saved else f"at {urls}"
    return TaskFailedError(
        f"{exc.message}; {len(exc.partial_results)} result(s) finished before the failure "
        f"and were {where}",
        code=exc.code, parameter=exc.parameter, task_uuid=exc.task_uuid,
        http_status=exc.http_status, hint=exc.hint,
    )


def _media_gone(exc: ValidationError) -> bool:
    if exc.code in MEDIA_GONE_CODES:
        return True
    return bool(exc.parameter) and str(exc.parameter).startswith(MEDIA_FIELDS) and \
        "not found" in exc.message.lower()


async def _upload_all(
    client: RunwareClient, uploads: list[Upload], known: UploadCache,
    hashes: dict[str, str], *, force: bool,
) -> tuple[dict[str, str], bool]:
    """Upload each medium once per content; returns (placeholder -> UUID, all fresh?)."""
    uuids: dict[str, str] = {}
    all_fresh = True
    for upload in uploads:
        key = f"{client.config.api_url}|{hashes[upload.placeholder]}"
        cached = None if force else known.get(key)
        if cached:
            log.info("%s: same content as an earlier upload, reusing %s", upload.input_name,
                     cached)
            uuids[upload.placeholder] = cached
            all_fresh = False
            continue
        try:
            if upload.task_type == "imageUpload":
                done = await client.upload_image(upload.source, upload.mime)
            else:
                done = await client.upload_media(upload.source, upload.mime)
        except ValidationError as exc:  # name the node input, not the API field ("media")
            raise ValidationError(
                f"{upload.input_name}: Runware refused the upload ({exc.message})",
                code=exc.code, parameter=upload.input_name, http_status=exc.http_status,
                hint=f"Check that what is connected to {upload.input_name} plays in a "
                     "player, or convert it (e.g. to MP4 or WAV) and queue again. Nothing "
                     "was submitted, so nothing was paid for.",
            ) from exc
        log.info("Uploaded %s as %s", upload.input_name, done.uuid)
        known.put(key, done.uuid)
        uuids[upload.placeholder] = done.uuid
    return uuids, all_fresh


def _extension_for(url: str, default: str) -> str:
    suffix = Path(urlsplit(url).path).suffix.lower().lstrip(".")
    return suffix if suffix in ("mp4", "webm", "mov") else default


async def _download_all(
    client: RunwareClient, cache: ResultCache, results: list[VideoResult], extension: str
) -> list[JobResult]:
    outcome = []
    for index, result in enumerate(results):
        name = f"{result.task_uuid}-{index}.{_extension_for(result.url, extension)}"
        path = await client.download(result.url, cache.results_dir / name,
                                     task_uuid=result.task_uuid)
        outcome.append(JobResult(result, path))
    return outcome


def _cached_record(job_result: JobResult, cache: ResultCache) -> CachedResult:
    r, path = job_result.result, job_result.path
    return CachedResult(
        file=path.name, url=r.url, video_uuid=r.video_uuid, task_uuid=r.task_uuid,
        seed=r.seed, cost=r.cost, index=r.index, size=path.stat().st_size,
        sha256=file_sha256(path),
    )


def _as_job_result(record: CachedResult, cache: ResultCache) -> JobResult:
    result = VideoResult(task_uuid=record.task_uuid, video_uuid=record.video_uuid,
                         url=record.url, seed=record.seed, cost=record.cost,
                         index=record.index)
    return JobResult(result, cache.result_path(record), cached=True)


async def _intact_hit(cache: ResultCache, fingerprint: str,
                      on_progress: Callable[[Progress], None] | None) -> list[JobResult] | None:
    entry = cache.lookup(fingerprint)
    if entry is None:
        return None
    for record in entry.results:
        if not await asyncio.to_thread(cache.is_intact, record):
            return None  # damaged: repaired under the lock, with a client
    return _reuse(cache, entry, on_progress)


def _reuse(cache: ResultCache, entry: CacheEntry,
           on_progress: Callable[[Progress], None] | None) -> list[JobResult]:
    cache.touch(entry)
    log.info("Reusing the cached result of Runware task %s (no new charge)", entry.task_uuid)
    _report(on_progress, Progress("cached", entry.task_uuid, 100.0, len(entry.results),
                                  len(entry.results)))
    return [_as_job_result(r, cache) for r in entry.results]


async def _cached_results(client: RunwareClient, cache: ResultCache, fingerprint: str,
                          on_progress: Callable[[Progress], None] | None
                          ) -> list[JobResult] | None:
    """The cached results, damaged files fetched again (never paid again). Under the lock."""
    entry = cache.lookup(fingerprint)
    if entry is None:
        return None
    broken = [r for r in entry.results if not await asyncio.to_thread(cache.is_intact, r)]
    if broken:
        log.warning("Cached result of task %s is damaged or missing; fetching it again "
                    "(no new charge)", entry.task_uuid)
        try:
            await refetch(client, cache, entry, broken)
        except TaskNotFoundError:
            cache.forget(entry)
            raise TaskNotFoundError(
                f"The cached result of task {entry.task_uuid} is damaged or missing and "
                "Runware no longer has the task", code="taskExpired",
                task_uuid=entry.task_uuid,
                hint="Queue again to pay for a new job (the broken cache entry was removed).",
            ) from None
        cache.store(entry)
    return _reuse(cache, entry, on_progress)


async def refetch(client: RunwareClient, cache: ResultCache, entry: CacheEntry,
                  broken: list[CachedResult]) -> None:
    """Download damaged results again: from their URL, else fresh URLs from getResponse."""
    fresh: list[VideoResult] | None = None
    for record in broken:
        path = cache.result_path(record)
        try:
            await client.download(record.url, path, task_uuid=record.task_uuid)
        except (DownloadError, ValidationError):
            if fresh is None:
                fresh = await client.poll_video(record.task_uuid,
                                                number_results=len(entry.results))
            position = entry.results.index(record)
            match = next((f for f in fresh if f.video_uuid == record.video_uuid),
                         fresh[position] if position < len(fresh) else None)
            if match is None:
                raise
            await client.download(match.url, path, task_uuid=record.task_uuid)
            record.url = match.url
        record.size = path.stat().st_size
        record.sha256 = await asyncio.to_thread(file_sha256, path)


async def fetch_task(
    task_uuid: str,
    *,
    config: ClientConfig,
    cache: ResultCache,
    model: str,
    extension: str = "mp4",
    should_cancel: Callable[[], bool] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[JobResult]:
    """Recover a job by its taskUUID: cache, else poll + download. Never submits."""
    entry = cache.find_task(task_uuid)
    if entry is not None:
        hit = await _intact_hit(cache, entry.fingerprint, on_progress)
        if hit is not None:
            return hit
    pending = cache.journal_find_task(task_uuid)
    fingerprint = entry.fingerprint if entry else (pending.fingerprint if pending else None)
    async with RunwareClient(config, should_cancel=should_cancel,
                             on_progress=on_progress) as client:
        lock = (cache.locked(fingerprint, client.check_cancel) if fingerprint
                else contextlib.nullcontext())
        async with lock:  # the node may be resuming this very job right now
            if entry is not None:
                hit = await _cached_results(client, cache, entry.fingerprint, on_progress)
                if hit is not None:
                    return hit
            expected = int(pending.task.get("numberResults") or 1) if pending else 0
            results = await client.poll_video(task_uuid, number_results=expected)
            outcome = await _download_all(client, cache, results,
                                          pending.extension if pending else extension)
            if pending is not None:  # the journal's own job: finish its bookkeeping
                cache.store(CacheEntry(pending.fingerprint, pending.model, task_uuid,
                                       [_cached_record(r, cache) for r in outcome]))
                cache.journal_drop(pending.fingerprint, task_uuid)
    log.info("Recovered Runware task %s (%s): %d result(s), no new charge", task_uuid, model,
             len(outcome))
    return outcome
