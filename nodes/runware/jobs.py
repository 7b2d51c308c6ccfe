"""Run a prepared job exactly once: cache -> upload -> claim -> submit -> poll -> download.

- A finished result is stored under its request fingerprint (which includes the API
  endpoint): the same request later (after a restart too) reuses the file and makes no
  request at all; another endpoint never gets it.
- Before a submission, its taskUUID and task are claimed in the store's journal (one
  transaction). A run that finds a journal entry for its request (ComfyUI restarted, the
  user cancelled, the time limit passed, another process runs it) resumes that task by
  polling it instead of paying again; only when Runware says it does not know the task is
  the request submitted anew. Within one run, a lost answer is retried with the same
  taskUUID (``conflictTaskUUID`` = already accepted).
- A request's first take has a taskUUID derived from its fingerprint, so even a lost store
  finds the job again (its files on disk, or Runware's ``conflictTaskUUID``).
- The downloaded file is the paid result: it is verified, written and recorded before
  anything decodes it. A job ends (its journal entry dropped) only on positive evidence:
  results recorded, or Runware saying the job failed or does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .cache import CacheEntry, ResultCache, file_sha256
from .cache import request_fingerprint as _fingerprint
from .client import Progress, RunwareClient, VideoResult
from .config import ClientConfig, DownloadCap
from .errors import (
    AuthError,
    CancelledError,
    DownloadError,
    InsufficientCreditsError,
    RunwareError,
    TaskFailedError,
    TaskNotFoundError,
    ValidationError,
)
from .logs import get_logger
from .spec import SYNC3_MODEL, SYNC3_MODEL_ALIASES
from .store import (
    FAILED,
    NOT_FOUND,
    RECOVERED,
    REFUSED,
    RUNNING,
    SUBMITTING,
    SUCCEEDED,
    UNKNOWN,
    JobRecord,
    ResultRecord,
    Store,
    api_endpoint,
    owner_id,
)
from .tasks import EXTENSIONS, PreparedJob, Upload
from .uploads import UploadCache, content_hash
from .verify import check_video

log = get_logger()

# Error codes meaning "that media UUID is unknown" (Runware dropped an old upload).
MEDIA_GONE_CODES = {"mediaNotFound", "imageNotFound", "invalidMediaUUID", "invalidImageUUID",
                    "fileNotFound"}
MEDIA_FIELDS = ("inputs.image", "inputs.video", "inputs.audio", "settings.segments")
# Error codes meaning "no such model" (sync-3 is then tried under its other id).
UNKNOWN_MODEL_CODES = {"modelNotFound", "invalidModel", "unknownModel", "unsupportedModel",
                       "invalidModelId", "invalidAirIdentifier"}


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
            if math.isfinite(cost) and cost >= 0:  # a bad price never poisons the total
                self.total += cost
            self.jobs += 1
            return self.total


SESSION_COST = SessionCost()


def job_fingerprint(
    job: PreparedJob, endpoint: str, check_cancel: Callable[[], None] | None = None
) -> tuple[str, dict[str, str]]:
    hashes = {u.placeholder: f"{u.task_type}:{content_hash(u.source, check_cancel)}"
              for u in job.uploads}
    return _fingerprint(endpoint, job.model, job.task, hashes), hashes


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
    node_id: str | None = None,
    prompt_id: str | None = None,
    before_submit: Callable[[str], None] | None = None,
) -> list[JobResult]:
    """The whole paid job, at most once per fingerprint. See the module docstring.

    ``node_id`` / ``prompt_id`` only label the job in the ledger. ``before_submit(
    fingerprint)`` runs only when a new paid job is about to start, before its uploads
    (never for a cached result or a resumed job); it may raise to stop it (spend limit)."""
    endpoint = api_endpoint(config.api_url)
    # Hashing big inputs takes a while: off the event loop, and cancellable.
    fingerprint, hashes = await asyncio.to_thread(job_fingerprint, job, endpoint,
                                                  _canceller(should_cancel))
    store = cache.store
    # Each result may be only as large as this job's video can be (see download_cap).
    cap = config.download_cap(job.result_seconds)
    # The common case, without a key or a lock: every cached file intact, and no paid
    # take of this request still waiting to be collected (that one comes first).
    if reuse and store.journal_get(endpoint, fingerprint) is None:
        hit = await _intact_hit(cache, cache.lookup(endpoint, fingerprint), on_progress)
        if hit is not None:
            return hit
    async with RunwareClient(config, should_cancel=should_cancel,
                             on_progress=on_progress) as client:
        async with cache.locked(fingerprint, client.check_cancel):
            pending = store.journal_get(endpoint, fingerprint)
            if pending is not None:
                # Only poll: re-sending could be refused (an old upload gone) and look like
                # "never accepted" while the original job runs.
                log.info("Resuming Runware task %s (submitted %.0f s ago) instead of paying "
                         "again", pending.task_uuid, time.time() - pending.submitted)
                try:
                    outcome = await _collect(client, cache, pending, fingerprint, cap=cap)
                    task_uuid = pending.task_uuid
                except TaskNotFoundError:
                    log.warning("Runware does not know task %s (never arrived, or expired)",
                                pending.task_uuid)
                else:
                    return _finish(outcome, task_uuid)
            if reuse:  # an identical run may have finished while we waited for the lock
                hit = await _cached_results(client, cache, cache.lookup(endpoint, fingerprint),
                                            on_progress, cap)
                if hit is None:
                    hit = await _adopt_first_take(cache, job, endpoint, fingerprint,
                                                  on_progress)
                if hit is not None:
                    return hit
            # A request's first take gets its derived taskUUID, also when the claim of it
            # never reached Runware (not found on resume): a lost store still finds it.
            first = cache.first_take_uuid(fingerprint)
            first_take = (pending.task_uuid == first if pending is not None else
                          reuse and not store.has_jobs(endpoint, fingerprint))
            if before_submit is not None:
                before_submit(fingerprint)
            outcome, task_uuid = await _submit(
                client, job, cache, endpoint, fingerprint, hashes,
                preferred=first if first_take else None, labels=(node_id, prompt_id), cap=cap)
    return _finish(outcome, task_uuid)


def _finish(outcome: list[JobResult], task_uuid: str) -> list[JobResult]:
    cost = sum(r.result.cost or 0.0 for r in outcome)
    total = SESSION_COST.add(cost)
    log.info("Runware task %s: %d result(s), cost $%.4f (this session: $%.4f)", task_uuid,
             len(outcome), cost, total)
    return outcome


async def _submit(
    client: RunwareClient, job: PreparedJob, cache: ResultCache, endpoint: str,
    fingerprint: str, hashes: dict[str, str], *, preferred: str | None,
    labels: tuple[str | None, str | None], cap: DownloadCap | None = None,
) -> tuple[list[JobResult], str]:
    """Upload, claim, submit, collect: a new paid job (or the one another run claimed).

    ``preferred``: the taskUUID to use (a first take's derived one); if Runware already
    used it for a job it has since forgotten, a fresh one is used instead. sync-3 is sent
    under the model id this endpoint is known to take; one Runware refuses as unknown
    (free) is tried under its other id, with the same taskUUID (see model_ids)."""
    store = cache.store
    models = model_ids(client.config, store, endpoint, job.model)
    reupload = False  # uploads are sent anew once if Runware no longer has them
    fresh_uuid = False  # and a fresh taskUUID then, or once if Runware forgot the first
    while True:
        uuids, fresh = await _upload_all(client, job.uploads, cache.uploads, endpoint, hashes,
                                         force=reupload)
        task = job.with_uploads(uuids)
        task["model"] = models[0]
        task_uuid = preferred if preferred and not fresh_uuid else str(uuid.uuid4())
        task["taskUUID"] = task_uuid
        record = JobRecord(
            endpoint=endpoint, task_uuid=task_uuid, fingerprint=fingerprint, model=job.model,
            task=task, extension=job.extension, number_results=job.number_results,
            submitted=time.time(), status=SUBMITTING, node_id=labels[0], prompt_id=labels[1],
            owner=owner_id())
        claimed = store.claim(record)
        if claimed.task_uuid != task_uuid:  # another process claimed it first: follow it
            log.info("Runware task %s for this request is already running; waiting for it",
                     claimed.task_uuid)
            return await _collect(client, cache, claimed, fingerprint, cap=cap), claimed.task_uuid
        try:
            await client.submit_video(task)
        except (ValidationError, AuthError, InsufficientCreditsError) as exc:
            # Refused. But an earlier attempt of this same submission may have reached
            # Runware before its answer was lost: ask before forgetting the job.
            known = await client.task_exists(task_uuid)
            if known is True:
                log.warning("Runware refused a retry of task %s (%s) but already has the "
                            "task; waiting for it", task_uuid, exc.code)
                return await _collect(client, cache, record, fingerprint, cap=cap), task_uuid
            if known is None:
                # Cannot tell: the journal stays, the next run polls and finds out.
                store.set_status(endpoint, task_uuid, UNKNOWN, error=str(exc))
                raise
            store.set_status(endpoint, task_uuid, REFUSED, error=str(exc), drop_journal=True)
            if len(models) > 1 and _unknown_model(exc):
                log.warning("Runware does not know the model id %s (%s); trying %s, another "
                            "id of the same model", models[0], exc.code, models[1])
                models = models[1:]
                continue
            if (not fresh_uuid and not fresh and isinstance(exc, ValidationError)
                    and _media_gone(exc)):
                log.warning("Runware no longer has an earlier upload (%s); uploading again",
                            exc.code or exc.parameter)
                for stale in uuids.values():
                    cache.uploads.forget_uuid(endpoint, stale)
                reupload = fresh_uuid = True
                continue
            raise
        except BaseException as exc:
            # Connection lost, 5xx after retries, an answer that was not Runware's, a
            # cancel: the task may have been accepted. The journal stays; the next run
            # finds out by polling.
            _mark_unknown(cache, record, exc)
            raise
        remember_model_id(client.config, store, endpoint, job.model, models[0])
        store.set_status(endpoint, task_uuid, RUNNING)
        record.status = RUNNING
        try:
            return await _collect(client, cache, record, fingerprint, cap=cap), task_uuid
        except TaskNotFoundError:
            if not fresh_uuid and task_uuid == preferred and task_uuid in client.conflicts:
                # "Already accepted" (conflictTaskUUID), yet unknown: Runware used this
                # taskUUID for a job it has forgotten. Submit under a fresh one.
                log.warning("Runware has forgotten task %s; submitting anew", task_uuid)
                fresh_uuid = True
                continue
            raise


def _model_meta(endpoint: str) -> str:
    return f"sync3_model|{endpoint}"


def model_ids(config: ClientConfig, store: Store, endpoint: str, model: str) -> list[str]:
    """The model ids to send ``model`` under, in order: sync-3 has two (the spec's and
    the one Runware's docs pages show). RUNWARE_SYNC3_MODEL picks one, with no fallback;
    else the one this endpoint took last time comes first."""
    if model != SYNC3_MODEL:
        return [model]
    if config.sync3_model:
        return [config.sync3_model]
    order = list(SYNC3_MODEL_ALIASES)
    try:
        known = store.get_meta(_model_meta(endpoint))
    except RunwareError:
        known = None
    if known in order:
        order.remove(known)
        order.insert(0, known)
    return order


def remember_model_id(config: ClientConfig, store: Store, endpoint: str, model: str,
                      sent: str) -> None:
    """After Runware accepted ``sent``: the endpoint's sync-3 id for next time."""
    if model != SYNC3_MODEL or config.sync3_model:
        return
    with contextlib.suppress(RunwareError):
        if store.get_meta(_model_meta(endpoint)) != sent:
            store.set_meta(_model_meta(endpoint), sent)
            log.info("Runware (%s) takes sync-3 as %s; remembered", endpoint, sent)


def _unknown_model(exc: RunwareError) -> bool:
    """A refusal of the model id itself (Runware does not bill a refused task)."""
    if exc.code in UNKNOWN_MODEL_CODES:
        return True
    params = {p.strip() for p in str(exc.parameter or "").split(",")}
    return isinstance(exc, ValidationError) and "model" in params


def _mark_unknown(cache: ResultCache, job: JobRecord, exc: BaseException) -> None:
    with contextlib.suppress(RunwareError):
        cache.store.set_status(job.endpoint, job.task_uuid, UNKNOWN,
                               error=str(exc) or type(exc).__name__)


async def _collect(client: RunwareClient, cache: ResultCache, job: JobRecord,
                   entry_fingerprint: str | None, *, full_wait: bool = False,
                   final_status: str = SUCCEEDED, cap: DownloadCap | None = None
                   ) -> list[JobResult]:
    """Poll a submitted job, download and verify its results, record them. The job's
    time limit counts from its submission (``full_wait``: from now, for Fetch Result);
    it is polled at least once either way."""
    store = cache.store
    limit = client.config.job_timeout
    timeout = limit if full_wait else job.submitted + limit - time.time()
    if job.status != RUNNING:
        with contextlib.suppress(RunwareError):
            store.set_status(job.endpoint, job.task_uuid, RUNNING)
    try:
        results = await client.poll_video(job.task_uuid, number_results=job.number_results,
                                          timeout=max(0.0, timeout))
    except TaskFailedError as exc:  # positive evidence: the job is over on Runware
        status = NOT_FOUND if isinstance(exc, TaskNotFoundError) else FAILED
        if exc.partial_results:
            raise await _save_partial(client, cache, job, exc, status, cap) from exc
        store.set_status(job.endpoint, job.task_uuid, status, error=str(exc),
                         drop_journal=True)
        raise
    except BaseException as exc:
        _mark_unknown(cache, job, exc)
        raise
    try:
        outcome = await _download_all(client, cache, results, job.extension, job.endpoint,
                                      cap)
    except BaseException as exc:
        _mark_unknown(cache, job, exc)  # paid, not collected: the journal stays
        raise
    store.record_results(job, [_record(r, job.endpoint, i) for i, r in enumerate(outcome)],
                         status=final_status, entry_fingerprint=entry_fingerprint)
    with contextlib.suppress(RunwareError, OSError):
        cache.evict(keep=job.task_uuid)
    return outcome


async def _save_partial(client: RunwareClient, cache: ResultCache, job: JobRecord,
                        exc: TaskFailedError, status: str, cap: DownloadCap | None = None
                        ) -> TaskFailedError:
    """One generation of a multi-result job failed: keep the ones that finished (paid)
    as results of the task, findable by its taskUUID."""
    count = len(exc.partial_results)
    try:
        saved = await _download_all(client, cache, exc.partial_results, job.extension,
                                    job.endpoint, cap)
    except BaseException as problem:
        # Paid and not on disk yet: the job stays in the journal, so the next run of the
        # request (or Fetch Result) polls it again and saves them, at no new charge.
        _mark_unknown(cache, job, problem)
        if not isinstance(problem, RunwareError) or isinstance(problem, CancelledError):
            raise
        raise TaskFailedError(
            f"{exc.message}; {count} result(s) finished before the failure but could not "
            f"be saved yet ({problem.message})",
            code=exc.code, parameter=exc.parameter, task_uuid=exc.task_uuid,
            http_status=exc.http_status,
            hint="Queue the same graph again (or use Runware Fetch Result) to save them; "
            "no new charge.",
        ) from problem
    records = [_record(r, job.endpoint, i) for i, r in enumerate(saved)]
    cache.store.record_results(job, records, status=status, error=str(exc))
    return TaskFailedError(
        f"{exc.message}; {count} result(s) finished before the failure and were saved to "
        + ", ".join(str(r.path) for r in saved),
        code=exc.code, parameter=exc.parameter, task_uuid=exc.task_uuid,
        http_status=exc.http_status, hint=exc.hint,
    )


def _media_gone(exc: ValidationError) -> bool:
    if exc.code in MEDIA_GONE_CODES:
        return True
    return bool(exc.parameter) and str(exc.parameter).startswith(MEDIA_FIELDS) and \
        "not found" in exc.message.lower()


async def _upload_all(
    client: RunwareClient, uploads: list[Upload], known: UploadCache, endpoint: str,
    hashes: dict[str, str], *, force: bool,
) -> tuple[dict[str, str], bool]:
    """Upload each medium once per content and endpoint; (placeholder -> UUID, all fresh?)."""
    uuids: dict[str, str] = {}
    all_fresh = True
    for upload in uploads:
        key = hashes[upload.placeholder]
        cached = None if force else known.get(endpoint, key)
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
        known.put(endpoint, key, done.uuid)
        uuids[upload.placeholder] = done.uuid
    return uuids, all_fresh


def _extension_for(url: str, default: str) -> str:
    suffix = Path(urlsplit(url).path).suffix.lower().lstrip(".")
    return suffix if suffix in ("mp4", "webm", "mov") else default


def _free_name(cache: ResultCache, stem: str, extension: str) -> Path:
    """results/<stem>.<ext>, unless something that is not a plain file was planted there."""
    folder = cache.results_folder()
    path = folder / f"{stem}.{extension}"
    if path.is_symlink() or (path.exists() and not path.is_file()):
        path = folder / f"{stem}-{uuid.uuid4().hex[:8]}.{extension}"
    return path


async def _download_all(
    client: RunwareClient, cache: ResultCache, results: list[VideoResult], extension: str,
    endpoint: str, cap: DownloadCap | None = None,
) -> list[JobResult]:
    """Download and verify each result; a file that is not the video is never kept.
    ``cap``: the most one result may weigh (None: RUNWARE_MAX_DOWNLOAD_MB)."""
    outcome = []
    for position, result in enumerate(results):
        outcome.append(await _download_one(client, cache, result, position, extension,
                                           cap=cap))
    return outcome


async def _download_one(client: RunwareClient, cache: ResultCache, result: VideoResult,
                        position: int, extension: str, dest: Path | None = None,
                        cap: DownloadCap | None = None) -> JobResult:
    expected = _extension_for(result.url, extension)
    path = dest or _free_name(cache, f"{result.task_uuid}-{position}", expected)
    path = await client.download(result.url, path, task_uuid=result.task_uuid, cap=cap)
    try:
        actual = await asyncio.to_thread(check_video, path, expected, result.task_uuid)
    except DownloadError:
        path.unlink(missing_ok=True)
        raise
    if actual != path.suffix.lstrip("."):
        renamed = _free_name(cache, f"{result.task_uuid}-{position}", actual)
        path.replace(renamed)
        log.warning("Task %s: the result is a %s file, not %s; kept as %s", result.task_uuid,
                    actual, expected, renamed.name)
        path = renamed
    return JobResult(result, path)


def _record(job_result: JobResult, endpoint: str, position: int) -> ResultRecord:
    r, path = job_result.result, job_result.path
    now = time.time()
    return ResultRecord(
        file=path.name, endpoint=endpoint, task_uuid=r.task_uuid, position=position,
        video_uuid=r.video_uuid, url=r.url, seed=r.seed, cost=r.cost, index=r.index,
        size=path.stat().st_size, sha256=file_sha256(path), created=now, last_used=now,
    )


def _as_job_result(record: ResultRecord, path: Path) -> JobResult:
    result = VideoResult(task_uuid=record.task_uuid, video_uuid=record.video_uuid,
                         url=record.url, seed=record.seed, cost=record.cost,
                         index=record.index)
    return JobResult(result, path, cached=True)


async def _intact_hit(cache: ResultCache, entry: CacheEntry | None,
                      on_progress: Callable[[Progress], None] | None) -> list[JobResult] | None:
    if entry is None or not entry.results:
        return None
    for record in entry.results:
        if not await asyncio.to_thread(cache.is_intact, record):
            return None  # damaged: repaired under the lock, with a client
    return _reuse(cache, entry, on_progress)


def _reuse(cache: ResultCache, entry: CacheEntry,
           on_progress: Callable[[Progress], None] | None) -> list[JobResult] | None:
    paths = [cache.result_path(r) for r in entry.results]
    if any(p is None for p in paths):
        return None
    with contextlib.suppress(RunwareError):
        cache.touch(entry)
    log.info("Reusing the cached result of Runware task %s (no new charge)", entry.task_uuid)
    _report(on_progress, Progress("cached", entry.task_uuid, 100.0, len(entry.results),
                                  len(entry.results)))
    return [_as_job_result(r, p) for r, p in zip(entry.results, paths, strict=True) if p]


async def _cached_results(client: RunwareClient, cache: ResultCache, entry: CacheEntry | None,
                          on_progress: Callable[[Progress], None] | None,
                          cap: DownloadCap | None = None) -> list[JobResult] | None:
    """The cached results, damaged files fetched again (never paid again). Under the lock."""
    if entry is None or not entry.results:
        return None
    broken = [r for r in entry.results if not await asyncio.to_thread(cache.is_intact, r)]
    if broken:
        log.warning("Cached result of task %s is damaged or missing; fetching it again "
                    "(no new charge)", entry.task_uuid)
        try:
            await refetch(client, cache, entry, broken, cap)
        except TaskNotFoundError:
            cache.forget(entry, broken)
            raise TaskNotFoundError(
                f"The cached result of task {entry.task_uuid} is damaged or missing and "
                "Runware no longer has the task", code="taskExpired",
                task_uuid=entry.task_uuid,
                hint="Queue again to pay for a new job (the broken cache entry was removed; "
                "any intact result of that task is kept).",
            ) from None
    return _reuse(cache, entry, on_progress)


async def refetch(client: RunwareClient, cache: ResultCache, entry: CacheEntry,
                  broken: list[ResultRecord], cap: DownloadCap | None = None) -> None:
    """Download damaged results again: from their URL, else fresh URLs from getResponse."""
    fresh: list[VideoResult] | None = None
    for record in broken:
        path = cache.result_path(record)
        if path is None or path.is_symlink() or (path.exists() and not path.is_file()):
            path = _free_name(cache, f"{record.task_uuid}-{record.position}",
                              record.file.rsplit(".", 1)[-1])
        stored = _as_job_result(record, path).result
        try:
            if not record.url:
                raise DownloadError("no URL kept for this result")
            got = await _download_one(client, cache, stored, record.position,
                                      path.suffix.lstrip("."), dest=path, cap=cap)
        except (DownloadError, ValidationError):
            if fresh is None:
                try:
                    fresh = await client.poll_video(record.task_uuid,
                                                    number_results=len(entry.results))
                except TaskFailedError as exc:
                    # A job that failed after some results finished (paid, kept): the
                    # failure reply still lists them.
                    if not exc.partial_results:
                        raise
                    fresh = list(exc.partial_results)
            position = entry.results.index(record)
            match = next((f for f in fresh if record.video_uuid and
                          f.video_uuid == record.video_uuid),
                         fresh[position] if position < len(fresh) else None)
            if match is None:
                raise
            got = await _download_one(client, cache, match, record.position,
                                      path.suffix.lstrip("."), dest=path, cap=cap)
            record.url = match.url
            record.video_uuid = record.video_uuid or match.video_uuid
        if got.path.name != record.file:
            cache.store.drop_results([record.file])
            record.file = got.path.name
        record.size = got.path.stat().st_size
        record.sha256 = await asyncio.to_thread(file_sha256, got.path)
        record.last_used = time.time()
    cache.store.put_results(broken)


async def _adopt_first_take(cache: ResultCache, job: PreparedJob, endpoint: str,
                            fingerprint: str, on_progress: Callable[[Progress], None] | None
                            ) -> list[JobResult] | None:
    """The store knows nothing of this request (it was lost or set aside), but the files
    of its first take are on disk under their taskUUID: verify and adopt them."""
    if cache.store.has_jobs(endpoint, fingerprint):
        return None
    task_uuid = cache.first_take_uuid(fingerprint)
    paths = cache.take_files(task_uuid, job.number_results)
    if not paths:
        return None
    try:
        for path in paths:
            await asyncio.to_thread(check_video, path, path.suffix.lstrip("."), task_uuid)
    except DownloadError:
        return None
    now = time.time()
    records = [ResultRecord(file=p.name, endpoint=endpoint, task_uuid=task_uuid, position=i,
                            video_uuid="", url="", size=p.stat().st_size,
                            sha256=await asyncio.to_thread(file_sha256, p), created=now,
                            last_used=now) for i, p in enumerate(paths)]
    record = JobRecord(endpoint=endpoint, task_uuid=task_uuid, fingerprint=fingerprint,
                       model=job.model, task=None, extension=job.extension,
                       number_results=len(records), submitted=now, status=RECOVERED)
    cache.store.record_results(record, records, status=RECOVERED,
                               entry_fingerprint=fingerprint)
    log.warning("Found the results of Runware task %s on disk (the store had lost them); "
                "reusing them, no new charge", task_uuid)
    entry = CacheEntry(endpoint, fingerprint, task_uuid, records)
    return _reuse(cache, entry, on_progress)


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
    """Recover a job by its taskUUID at the configured endpoint: cache, else poll +
    download. Never submits. The results are kept like any other (found by taskUUID)."""
    endpoint = api_endpoint(config.api_url)
    task_uuid = task_uuid.strip().lower()
    hit = await _intact_hit(cache, cache.find_task(endpoint, task_uuid), on_progress)
    if hit is not None:
        return hit
    pending = cache.store.journal_find_task(endpoint, task_uuid)
    known = pending or cache.store.job(endpoint, task_uuid)
    lock_name = known.fingerprint if known and known.fingerprint else f"task-{task_uuid}"
    async with RunwareClient(config, should_cancel=should_cancel,
                             on_progress=on_progress) as client:
        async with cache.locked(lock_name, client.check_cancel):
            # The node may have been collecting this very job meanwhile.
            hit = await _cached_results(client, cache, cache.find_task(endpoint, task_uuid),
                                        on_progress)
            if hit is not None:
                return hit
            pending = cache.store.journal_find_task(endpoint, task_uuid)
            if pending is not None:  # the journal's own job: finish its bookkeeping
                outcome = await _collect(client, cache, pending, pending.fingerprint,
                                         full_wait=True)
            else:
                known = cache.store.job(endpoint, task_uuid)
                record = known or JobRecord(
                    endpoint=endpoint, task_uuid=task_uuid, fingerprint=None, model=model,
                    task=None, extension=extension, number_results=0, submitted=time.time(),
                    status=RECOVERED)
                outcome = await _collect_unjournaled(client, cache, record,
                                                     known is not None)
    log.info("Recovered Runware task %s (%s): %d result(s), no new charge", task_uuid, model,
             len(outcome))
    return outcome


async def _collect_unjournaled(client: RunwareClient, cache: ResultCache, job: JobRecord,
                               known: bool) -> list[JobResult]:
    """Poll and download a job no journal entry stands for; record it in the ledger."""
    try:
        results = await client.poll_video(job.task_uuid, number_results=job.number_results)
    except TaskFailedError as exc:
        if exc.partial_results:
            raise await _save_partial(client, cache, job, exc, FAILED) from exc
        raise
    outcome = await _download_all(client, cache, results, job.extension, job.endpoint)
    cache.store.record_results(
        job, [_record(r, job.endpoint, i) for i, r in enumerate(outcome)],
        status=SUCCEEDED if known else RECOVERED)
    with contextlib.suppress(RunwareError, OSError):
        cache.evict(keep=job.task_uuid)
    return outcome


__all__ = ["EXTENSIONS", "JobResult", "SESSION_COST", "fetch_task", "job_fingerprint",
           "run_cached_job"]
