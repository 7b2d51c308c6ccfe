"""Runware REST client: upload, submit, poll, download. No ComfyUI imports.

Everything is async (aiohttp, which ComfyUI ships). Every public call runs under a
watcher that checks the cancel hook every ``cancel_interval`` seconds, so a user's
interrupt is honoured within a second in any wait: a request in flight, a retry sleep,
a poll interval or a download chunk.

Money rules enforced here:
- a ``videoInference`` submission is only ever retried with the same taskUUID, and a
  ``conflictTaskUUID`` answer means "already accepted" -> we go on to poll it;
- polling keeps going through transient errors until the job's overall time limit;
- downloads resume with HTTP Range instead of starting over.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import math
import os
import random
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.helpers import get_env_proxy_for_url, proxies_from_env
from aiohttp.resolver import DefaultResolver
from yarl import URL

from .config import MAX_DOWNLOAD_MB_ENV, ClientConfig, DownloadCap
from .errors import (
    CancelledError,
    DownloadError,
    EndpointError,
    JobTimeoutError,
    RefusedDownloadError,
    RunwareError,
    ServerError,
    TaskFailedError,
    TaskNotFoundError,
    ValidationError,
    error_from_item,
    hold_secret,
    release_secret,
    scrub,
)
from .files import TempFileReplaced, atomic_file
from .logs import get_logger
from .store import MAX_COST

log = get_logger()

T = TypeVar("T")

PENDING_STATUSES = {"processing", "pending", "queued", "scheduled", "waiting", "running",
                    "in_progress", "inprogress", "started", "submitted"}
# Only these are retried: timeouts, rate limits and server errors (and lost connections).
TRANSIENT_HTTP = frozenset({408, 429, *range(500, 600)})
# A Runware reply is a few KiB; anything far bigger is not one (and is not read whole).
MAX_REPLY_BYTES = 4 << 20
# Codes that mean the job ended in failure (besides an item with status "error").
JOB_FAILURE_CODES = frozenset({
    "inferenceError", "processingFailed", "taskFailed", "taskCancelled", "generationFailed",
    "contentPolicyViolation", "providerContentPolicyViolation", "sensitiveContentDetected",
    "unsafeContentDetected", "nsfwContentDetected", "promptBlocked", "imageBlocked",
    "moderationFailed",
})
# Runware does not know the task (never arrived, or expired); compared without case/_/-.
TASK_NOT_FOUND_CODES = frozenset({"tasknotfound", "taskexpired", "taskfailedornotfound",
                                  "taskuuidnotfound"})
AUTH_CODES = frozenset({"invalidApiKey", "missingApiKey", "unauthorized", "forbidden",
                        "insufficientCredits", "insufficientBalance"})
RATE_OR_SERVER_CODES = frozenset({
    "rateLimitExceeded", "inferenceRateLimitExceeded", "providerRateLimitExceeded",
    "internalServerError", "serviceUnavailable", "serverUnavailable", "timeoutProvider",
    "providerTimeout", "providerError", "noAvailableServer",
})
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Progress:
    """One status report: phase is uploading / submitting / processing / downloading."""

    phase: str
    task_uuid: str | None = None
    percent: float | None = None
    done: int = 0
    total: int = 1
    elapsed: float = 0.0
    note: str | None = None  # e.g. "Runware's answer was not understood; still waiting"


@dataclass(frozen=True)
class UploadResult:
    uuid: str
    url: str | None


@dataclass(frozen=True)
class VideoResult:
    task_uuid: str
    video_uuid: str
    url: str
    seed: int | None = None
    cost: float | None = None
    index: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Reply:
    status: int
    data: list[dict[str, Any]]
    errors: list[dict[str, Any]]


@dataclass(frozen=True)
class RawReply:
    """One HTTP answer as it came: status, body text (None = larger than the cap)."""

    status: int
    text: str | None
    retry_after: str | None = None
    content_type: str = ""


@dataclass(frozen=True)
class PollReply:
    """What one getResponse answer says about a job (see ``classify_poll_reply``).

    kind: processing | success | failed | not_found | transient | unknown | refused.
    """

    kind: str
    results: tuple[VideoResult, ...] = ()
    pending: int = 0
    percents: tuple[float, ...] = ()
    error: RunwareError | None = None
    note: str | None = None


BodyFactory = Callable[[], tuple[Any, int | None]]


def result_order(result: VideoResult) -> tuple:
    """Stable order whatever order results finished in: Runware's resultIndex, else the
    seed (Ovi's results use seed, seed + 1, ...)."""
    return (result.index is None, result.index or 0, result.seed is None, result.seed or 0)


class _Found:
    """The results a poll loop has seen: the first answer for each result wins, and no
    more than the ``number_results`` asked for (<= 0: unknown, as when recovering)."""

    def __init__(self, task_uuid: str, number_results: int) -> None:
        self.task_uuid, self.number_results = task_uuid, number_results
        self._by_key: dict[str, VideoResult] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def add(self, results: Iterable[VideoResult]) -> None:
        for result in results:
            key = result.video_uuid if result.index is None else f"#{result.index}"
            if key in self._by_key:
                continue
            if 0 < self.number_results <= len(self._by_key):
                log.warning("Task %s: ignoring a result beyond the %d asked for",
                            self.task_uuid, self.number_results)
                continue
            self._by_key[key] = result

    def total(self, reply: PollReply) -> int:
        """How many results the job makes: as asked, else those seen plus those pending."""
        if self.number_results > 0:
            return self.number_results
        return max(len(self._by_key) + reply.pending, 1)

    def done(self, reply: PollReply) -> bool:
        if self.number_results > 0:
            return len(self._by_key) >= self.number_results
        return bool(self._by_key) and reply.kind == "success"

    def in_arrival_order(self) -> list[VideoResult]:
        return list(self._by_key.values())

    def in_result_order(self) -> list[VideoResult]:
        return sorted(self._by_key.values(), key=result_order)


def new_task_uuid() -> str:
    return str(uuid.uuid4())


class RunwareClient:
    """Talks to Runware (or the local double) on behalf of one node run.

    ``should_cancel`` is polled at least every ``config.cancel_interval`` seconds while
    any call waits; returning True aborts the call with :class:`CancelledError`.
    ``on_progress`` receives :class:`Progress` reports.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        should_cancel: Callable[[], bool] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self._key = config.require_key()
        hold_secret(self._key)  # scrubbed from every error and log line while open
        self._holding = True
        self.config = config
        self._should_cancel = should_cancel or (lambda: False)
        self._on_progress = on_progress
        self._session: aiohttp.ClientSession | None = None
        self._download_session: aiohttp.ClientSession | None = None
        self._rng = random.Random()
        # taskUUIDs Runware answered with conflictTaskUUID ("already have it").
        self.conflicts: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> RunwareClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._download_session is not None:
            await self._download_session.close()
            self._download_session = None
        if self._holding:
            self._holding = False
            release_secret(self._key)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self.config.connect_timeout,
                sock_connect=self.config.connect_timeout,
                sock_read=self.config.read_timeout,
            )
            # trust_env: HTTPS_PROXY / HTTP_PROXY / NO_PROXY (and .netrc) apply, as for pip
            self._session = aiohttp.ClientSession(timeout=timeout, trust_env=True)
        return self._session

    # -- cancel-aware waiting --------------------------------------------------------

    def check_cancel(self, task_uuid: str | None = None) -> None:
        if self._should_cancel():
            raise CancelledError(
                "Cancelled by the user",
                task_uuid=task_uuid,
                hint="A job already submitted keeps running on Runware." if task_uuid else None,
            )

    async def _cancellable(self, coro: Awaitable[T], task_uuid: str | None = None) -> T:
        """Await ``coro`` while checking the cancel hook every cancel_interval seconds."""
        if self._should_cancel():
            if asyncio.iscoroutine(coro):
                coro.close()  # never started: close it so it is not reported as leaked
            self.check_cancel(task_uuid)
        task = asyncio.ensure_future(coro)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.config.cancel_interval)
                if done:
                    return task.result()
                if self._should_cancel():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    self.check_cancel(task_uuid)
        except BaseException:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            raise

    async def sleep(self, seconds: float, task_uuid: str | None = None) -> None:
        """Sleep that wakes up for the cancel hook."""
        await self._cancellable(asyncio.sleep(max(0.0, seconds)), task_uuid)

    def _report(self, progress: Progress) -> None:
        if self._on_progress is not None:
            try:
                self._on_progress(progress)
            except Exception:  # a broken UI callback must not fail a paid job
                log.exception("Progress callback failed")

    # -- transport -------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def _retry_delay(self, attempt: int, retry_after: str | None) -> float:
        cfg = self.config
        delay = min(cfg.retry_base_delay * (2 ** (attempt - 1)), cfg.retry_max_delay)
        if retry_after:
            try:
                delay = min(max(delay, float(retry_after)), cfg.retry_max_delay)
            except ValueError:
                pass
        return delay + self._rng.uniform(0, cfg.retry_jitter)

    async def _send_once(self, body: BodyFactory) -> RawReply:
        payload, length = body()
        headers = self._headers()
        if length is not None:
            # An explicit length keeps aiohttp from chunked encoding a streamed body.
            headers["Content-Length"] = str(length)
        async with self._http().post(self.config.api_url, data=payload, headers=headers) as resp:
            data = await _read_capped(resp, MAX_REPLY_BYTES)
            return RawReply(resp.status, None if data is None else data.decode("utf-8", "replace"),
                            resp.headers.get("Retry-After"), resp.headers.get("Content-Type", ""))

    async def _exchange(self, body: BodyFactory, task_uuid: str | None) -> RawReply | None:
        """One request; None when no HTTP answer came (connection refused, reset, ...)."""
        try:
            return await self._cancellable(self._send_once(body), task_uuid)
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
            return None

    @property
    def host(self) -> str:
        parts = urlsplit(self.config.api_url)
        return parts.netloc.rsplit("@", 1)[-1] or self.config.api_url

    async def post(
        self,
        tasks: list[dict[str, Any]] | None = None,
        *,
        body: BodyFactory | None = None,
        task_uuid: str | None = None,
        retries: int | None = None,
        label: str = "request",
    ) -> Reply:
        """POST a task array, retrying transient failures with backoff and jitter.

        The same body (hence the same taskUUIDs) is re-sent on every attempt. Returns
        the parsed reply, errors included, for any non-transient status. Retried: no
        answer at all, 408, 429 and 5xx. An answer that is not Runware's JSON otherwise
        (a proxy or firewall page, a wrong URL) raises :class:`EndpointError` at once.
        """
        if body is None:
            encoded = json.dumps(tasks).encode()
            body = lambda: (encoded, len(encoded))  # noqa: E731
        max_retries = self.config.max_retries if retries is None else retries
        attempt = 0
        while True:
            attempt += 1
            raw = await self._exchange(body, task_uuid)
            if raw is None:
                failure: RunwareError = ServerError(
                    f"Could not reach Runware at {self.host} for {label}",
                    task_uuid=task_uuid,
                    hint="Check the network connection; the call is retried automatically.",
                )
                retry_after = None
            elif raw.status in TRANSIENT_HTTP:
                parsed = _json_or_none(raw.text)
                failure = _transient_error(raw.status, None if parsed is NOT_JSON else parsed,
                                           task_uuid, self._key, label)
                retry_after = raw.retry_after
            else:
                parsed = _json_or_none(raw.text)
                if parsed is NOT_JSON:
                    raise endpoint_error(raw, self.host, label, task_uuid, self._key)
                return _parse_reply(raw.status, parsed)
            if attempt > max_retries:
                raise failure
            delay = self._retry_delay(attempt, retry_after)
            log.warning(
                "Runware %s failed (%s); retry %d/%d in %.1f s",
                label, failure.code or failure.http_status or "connection", attempt,
                max_retries, delay,
            )
            await self.sleep(delay, task_uuid)

    def raise_errors(self, reply: Reply, task_uuid: str | None = None) -> None:
        for item in reply.errors:
            if task_uuid and item.get("taskUUID") not in (None, task_uuid):
                continue
            err = error_from_item(item, reply.status, secret=self._key)
            if len(reply.errors) > 1 and isinstance(err, ValidationError):
                others = "; ".join(
                    f"{e.get('parameter') or e.get('code')}: {e.get('message')}"
                    for e in reply.errors[1:]
                )
                err = ValidationError(
                    scrub(f"{err.message}; also {others}", self._key),
                    code=err.code, parameter=err.parameter, task_uuid=err.task_uuid,
                    task_type=err.task_type, http_status=err.http_status,
                )
            raise err

    # -- uploads ---------------------------------------------------------------------

    async def upload_image(self, image: bytes | Path, mime: str = "image/png") -> UploadResult:
        """``imageUpload``: an image -> imageUUID (stored <= 2048 px on the long side)."""
        item = await self._upload("imageUpload", "image", image, mime, {})
        return UploadResult(str(item.get("imageUUID")), item.get("imageURL"))

    async def upload_media(self, media: bytes | Path, mime: str) -> UploadResult:
        """``mediaStorage`` upload: video / audio / image -> mediaUUID."""
        item = await self._upload("mediaStorage", "media", media, mime, {"operation": "upload"})
        return UploadResult(str(item.get("mediaUUID")), item.get("mediaURL"))

    async def _upload(
        self, task_type: str, field_name: str, source: bytes | Path, mime: str,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
        if size == 0:
            raise ValidationError(f"Refusing to upload an empty file for {field_name}")
        self._report(Progress("uploading"))
        # A lost upload answer is harmless to repeat (uploads are free), so every attempt
        # carries a fresh taskUUID: a retry can then never be refused as a conflict.
        uuids: list[str] = []

        def body() -> tuple[Any, int | None]:
            uuids.append(new_task_uuid())
            head = {"taskType": task_type, "taskUUID": uuids[-1], **extra}
            return _base64_json_body(head, field_name, source, mime, self.check_cancel)

        reply = await self.post(body=body, label=task_type)
        self.raise_errors(reply)
        for item in reply.data:
            if item.get("taskUUID") in uuids and item.get("taskType", task_type) == task_type:
                return item
        raise ServerError(f"Runware answered {task_type} without a result", http_status=200)

    # -- video jobs ------------------------------------------------------------------

    async def submit_video(self, task: dict[str, Any]) -> str:
        """Submit one async ``videoInference`` task; returns its taskUUID.

        Retries re-send the same taskUUID; ``conflictTaskUUID`` means Runware already has
        this task (an earlier attempt's answer was lost), so it counts as accepted.
        """
        task = dict(task)
        task.setdefault("taskType", "videoInference")
        task.setdefault("taskUUID", new_task_uuid())
        task["deliveryMethod"] = "async"
        task_uuid = str(task["taskUUID"])
        self._report(Progress("submitting", task_uuid))
        reply = await self.post([task], task_uuid=task_uuid, label="videoInference submission")
        if any(e.get("code") == "conflictTaskUUID" for e in reply.errors):
            log.info("Task %s was already accepted by Runware; polling it", task_uuid)
            self.conflicts.add(task_uuid)
            return task_uuid
        self.raise_errors(reply)
        if not any(d.get("taskUUID") == task_uuid for d in reply.data):
            raise ServerError(
                "Runware did not acknowledge the submission", task_uuid=task_uuid,
                http_status=reply.status,
            )
        log.info("Submitted %s task %s", task.get("model"), task_uuid)
        return task_uuid

    async def poll_video(
        self,
        task_uuid: str,
        *,
        number_results: int = 1,
        timeout: float | None = None,
    ) -> list[VideoResult]:
        """Poll ``getResponse`` until every result is in, the job fails, or time runs out.

        Each answer goes through :func:`classify_poll_reply`; this loop only keeps the
        results seen so far and decides when to stop. Polls at least once, even with no
        time left (a job resumed after its limit may be done). Only a failure or a
        not-found answer (positive evidence) ends the job; passing problems and answers
        it does not understand keep polling until the limit.

        ``number_results`` <= 0 means "unknown" (recovering a job by its taskUUID): done
        once at least one result is in and no item is still pending.
        """
        limit = max(0.0, self.config.job_timeout if timeout is None else timeout)
        started = time.monotonic()
        delay = self.config.poll_initial
        found = _Found(task_uuid, number_results)
        note: str | None = None
        problems = 0
        body_bytes = json.dumps([{"taskType": "getResponse", "taskUUID": task_uuid}]).encode()

        def body() -> tuple[bytes, int]:
            return body_bytes, len(body_bytes)

        def timed_out() -> JobTimeoutError:
            last = f" (last answer: {note})" if note else ""
            return JobTimeoutError(
                f"The job did not finish within {limit:.0f} s of its submission{last}",
                task_uuid=task_uuid,
                hint="It may still finish on Runware: queue the same graph again later to "
                "pick it up without paying again (it is polled at least once more), recover "
                "it with Runware Fetch Result, or raise RUNWARE_JOB_TIMEOUT.",
            )

        while True:
            remaining = started + limit - time.monotonic()
            await self.sleep(min(delay, max(0.0, remaining)), task_uuid)
            # One poll may not outlive the limit by more than a grace period.
            budget = max(0.0, started + limit - time.monotonic()) + self.config.poll_grace
            try:
                raw = await asyncio.wait_for(self._exchange(body, task_uuid), timeout=budget)
            except asyncio.TimeoutError:
                raise timed_out() from None
            reply = classify_poll_reply(
                None if raw is None else raw.status, None if raw is None else raw.text,
                task_uuid, secret=self._key, host=self.host, too_large=raw is not None
                and raw.text is None)
            found.add(reply.results)
            if reply.kind in ("failed", "not_found"):
                assert reply.error is not None
                if isinstance(reply.error, TaskFailedError) and found:
                    reply.error.partial_results = found.in_arrival_order()
                raise reply.error
            if reply.kind == "refused":
                assert reply.error is not None
                raise reply.error
            note = reply.note
            if reply.kind == "transient":
                problems += 1
                log.warning("Polling task %s: %s; still trying", task_uuid, reply.note)
            elif reply.kind == "unknown":
                log.warning("Polling task %s: %s; still waiting", task_uuid, reply.note)
            else:
                problems = 0
            elapsed = time.monotonic() - started
            total = found.total(reply)
            self._report(Progress("processing", task_uuid,
                                  _overall_percent(len(found), total, list(reply.percents)),
                                  len(found), total, elapsed,
                                  note=None if reply.kind in ("processing", "success")
                                  else reply.note))
            if found.done(reply):
                return found.in_result_order()
            if elapsed >= limit:
                raise timed_out()
            delay = self._next_poll_delay(delay, problems, raw)

    def _next_poll_delay(self, delay: float, problems: int, raw: RawReply | None) -> float:
        """Back off on trouble (honouring Retry-After); else grow the wait up to its cap."""
        if problems:
            return self._retry_delay(problems, None if raw is None else raw.retry_after)
        return min(max(delay, self.config.poll_initial) * self.config.poll_growth,
                   self.config.poll_max)

    async def task_exists(self, task_uuid: str) -> bool | None:
        """Does Runware know this task? True / False, or None when it cannot tell.

        Only an answer about the job itself counts: an error item that merely echoes
        the taskUUID proves nothing."""
        body_bytes = json.dumps([{"taskType": "getResponse", "taskUUID": task_uuid}]).encode()
        for attempt in range(2):
            raw = await self._exchange(lambda: (body_bytes, len(body_bytes)), task_uuid)
            reply = classify_poll_reply(None if raw is None else raw.status,
                                        None if raw is None else raw.text, task_uuid,
                                        secret=self._key, host=self.host)
            if reply.kind in ("processing", "success", "failed"):
                return True
            if reply.kind == "not_found":
                return False
            if reply.kind != "transient" or attempt:
                return None
            await self.sleep(self._retry_delay(1, None if raw is None else raw.retry_after),
                             task_uuid)
        return None

    # -- downloads -------------------------------------------------------------------
    #
    # A result URL comes from a server reply, so it is untrusted: every hop (the URL and
    # each redirect, followed here, at most max_redirects) must be https, or the
    # configured API's own origin (the local double); its host may not be a loopback,
    # private, link-local or otherwise non-public address unless it is the API's own.
    # Host names are checked where they are resolved, right before connecting (see
    # _PublicOnlyResolver), so a name cannot pass a check and then rebind to 127.0.0.1.
    # The body must be a plain file (no Content-Encoding) of at most max_download_bytes.

    def _is_api_origin(self, scheme: str, host: str, port: int | None) -> bool:
        api_scheme, api_host, api_port = self.config.api_origin
        return (scheme == api_scheme.lower() and _same_host(host, api_host)
                and _effective_port(scheme, port) == _effective_port(api_scheme, api_port))

    def check_download_url(self, url: str) -> None:
        """Refuse a download hop the pack must not follow (see the section comment)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise _refused(url, "it is not a valid URL") from None
        scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
        if scheme not in ("http", "https") or not host:
            raise _refused(url, "only https URLs (or the configured RUNWARE_API_URL origin) "
                                "are allowed")
        if self._is_api_origin(scheme, parts.hostname or "", port):
            return
        if scheme != "https":
            raise _refused(url, "only https URLs (or the configured RUNWARE_API_URL origin) "
                                "are allowed")
        address = _ip_literal(host)
        if address is not None and not _is_public(address):
            raise _refused(url, f"{address} is a loopback, private or link-local address")

    def _download_http(self) -> aiohttp.ClientSession:
        """A session for result downloads only: names resolve to public addresses only
        (except the API's own and the proxies from HTTPS_PROXY / HTTP_PROXY), bodies are
        never decompressed."""
        if self._download_session is None or self._download_session.closed:
            api_scheme, api_host, api_port = self.config.api_origin
            trusted = [(api_host, _effective_port(api_scheme, api_port)), *_env_proxies()]
            resolver = _PublicOnlyResolver(trusted)
            timeout = aiohttp.ClientTimeout(
                total=None, connect=self.config.connect_timeout,
                sock_connect=self.config.connect_timeout, sock_read=self.config.read_timeout,
            )
            self._download_session = aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(resolver=resolver),
                auto_decompress=False, trust_env=True,
            )
        return self._download_session

    async def download(self, url: str, dest: Path, *, task_uuid: str | None = None,
                       cap: DownloadCap | None = None) -> Path:
        """Stream ``url`` to ``dest``, resuming with Range after a dropped connection.

        The body goes to a private part file, renamed only when its size matches the
        server's Content-Length, so a partial file never looks like a result. The whole
        download is bounded by the job time limit (a trickling server cannot hang it) and
        the body by ``cap`` (default: the config's RUNWARE_MAX_DOWNLOAD_MB).
        """
        self.check_download_url(url)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        limit = self.config.job_timeout
        cap = cap or self.config.download_cap()
        try:
            # A private part file, created here and written only through this descriptor
            # (resumes too): two downloads of the same result never share one, and a
            # name planted beside the result is skipped, never written through.
            with atomic_file(dest) as (part, _name):
                await asyncio.wait_for(self._download_resuming(url, part, task_uuid, cap),
                                       limit)
        except asyncio.TimeoutError:
            err = DownloadError(f"The download did not finish within {limit:.0f} s",
                                task_uuid=task_uuid,
                                hint="Check the connection, then queue again (no new charge).")
            err.retryable = False
            raise err from None
        except TempFileReplaced:
            err = DownloadError(
                "The download's temp file was replaced by another file or a link while it "
                "was written; nothing was kept", task_uuid=task_uuid,
                hint="Something else writes into the result folder (another program, or "
                "someone uploading through ComfyUI). Queue again (no new charge).")
            err.retryable = False
            raise err from None
        return dest

    async def _download_resuming(self, url: str, part: BinaryIO, task_uuid: str | None,
                                 cap: DownloadCap) -> None:
        total: int | None = None
        failures = 0
        while True:
            try:
                total = await self._cancellable(
                    self._download_into(part, url, total, task_uuid, cap), task_uuid
                )
            except DownloadError as exc:
                failures += 1
                if not exc.retryable or failures > self.config.max_retries:
                    raise
                delay = self._retry_delay(failures, None)
                log.warning("Download interrupted (%s); resuming in %.1f s", exc.message, delay)
                await self.sleep(delay, task_uuid)
                continue
            break
        part.flush()
        size = os.fstat(part.fileno()).st_size
        if total is not None and size != total:
            raise DownloadError(
                f"Downloaded {size} bytes but the server announced {total}", task_uuid=task_uuid
            )

    async def _check_name_behind_proxy(self, url: str) -> None:
        """Through a proxy our resolver only sees the proxy's name: resolve the hop's own
        host here (the proxy may resolve it again; the check is as good as that allows)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        if _proxy_for(url) is None or _ip_literal(host) is not None or \
                self._is_api_origin(parts.scheme.lower(), host, parts.port):
            return
        resolver = _PublicOnlyResolver([])
        try:
            await resolver.resolve(host, _effective_port(parts.scheme, parts.port))
        except OSError:
            return  # unknown here: the proxy may know it (an intranet-only DNS view)
        finally:
            await resolver.close()

    async def _open_download(self, url: str, headers: dict[str, str],
                             task_uuid: str | None) -> aiohttp.ClientResponse:
        """GET ``url``, following redirects here so every hop is checked."""
        for _ in range(self.config.max_redirects + 1):
            self.check_download_url(url)
            await self._check_name_behind_proxy(url)
            resp = await self._download_http().get(url, headers=headers,
                                                   allow_redirects=False)
            if resp.status not in (301, 302, 303, 307, 308):
                return resp
            location = resp.headers.get("Location")
            resp.release()
            if not location:
                raise _download_status_error(resp.status, task_uuid)
            url = urljoin(url, location.strip())
        raise RefusedDownloadError(
            f"The result download was redirected more than {self.config.max_redirects} "
            "times; refusing to follow further", task_uuid=task_uuid,
            hint="The result URL may have expired; recover the job by its taskUUID.",
        )

    async def _download_into(
        self, part: BinaryIO, url: str, total: int | None, task_uuid: str | None,
        cap: DownloadCap,
    ) -> int | None:
        part.flush()
        have = os.fstat(part.fileno()).st_size
        # identity: a compressed body could expand without bound, and Range counts bytes
        # of the file itself. Never an Authorization header: the key goes to the API only.
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        self._report(Progress("downloading", task_uuid, _pct(have, total)))
        try:
            resp = await self._open_download(url, headers, task_uuid)
            async with resp:
                if resp.status == 416 and total is not None and have == total:
                    return total
                if resp.status not in (200, 206):
                    raise _download_status_error(resp.status, task_uuid)
                encoding = resp.headers.get("Content-Encoding", "").strip().lower()
                if encoding not in ("", "identity"):
                    raise RefusedDownloadError(
                        f"The result was sent compressed (Content-Encoding: {encoding[:40]}) "
                        "although the plain file was asked for; refusing it",
                        task_uuid=task_uuid,
                        hint="A proxy between you and Runware may be altering downloads.",
                    )
                if resp.status == 200:
                    have = 0  # the server ignored our Range: start over
                    total = resp.content_length
                else:
                    start, announced = _content_range(resp.headers.get("Content-Range"))
                    if start != have:  # not the part we asked for: start over next time
                        part.seek(0)
                        part.truncate()
                        raise DownloadError(f"the server resumed at byte {start}, not {have}",
                                            task_uuid=task_uuid)
                    total = announced or total
                if total is not None and total > cap.limit:
                    raise _too_large(cap, task_uuid, announced=total)
                part.seek(have)
                part.truncate()
                async for chunk in resp.content.iter_chunked(self.config.download_chunk):
                    self.check_cancel(task_uuid)
                    if have + len(chunk) > cap.limit:  # no (or a lying) length: endless body
                        raise _too_large(cap, task_uuid)
                    part.write(chunk)
                    have += len(chunk)
                    self._report(Progress("downloading", task_uuid, _pct(have, total)))
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            raise DownloadError(
                f"connection lost after {have} bytes ({type(exc).__name__})", task_uuid=task_uuid
            ) from None
        if total is not None and have < total:
            raise DownloadError(f"connection closed after {have} of {total} bytes",
                                task_uuid=task_uuid)
        return total


# -- helpers ---------------------------------------------------------------------------


def _refused(url: str, reason: str) -> RefusedDownloadError:
    try:
        parts = urlsplit(url)
        where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # no path, no query
    except ValueError:
        where = "an unreadable URL"
    return RefusedDownloadError(
        f"Refusing to download a result from {where[:200]}: {reason}",
        hint="A result should come from Runware over https. If RUNWARE_API_URL points at "
        "a local double, its own address is allowed.",
    )


def _too_large(cap: DownloadCap, task_uuid: str | None, announced: int | None = None
               ) -> RefusedDownloadError:
    size = f" ({_size_text(announced)} announced)" if announced else ""
    again = "queue the same graph again" + (
        f" (or use Runware Fetch Result with taskUUID {task_uuid})" if task_uuid else "")
    return RefusedDownloadError(
        f"The result is larger than {_size_text(cap.limit)}{size}, {cap.reason()}; stopped "
        "the download before keeping any of it", task_uuid=task_uuid,
        hint="The job itself is done and paid: its taskUUID is kept, and the result stays "
        f"on Runware for a while. If a result this large is expected, set "
        f"{MAX_DOWNLOAD_MB_ENV} to the most MiB one result may be (more than "
        f"{math.ceil(cap.limit / 1024**2)}) where ComfyUI is started, restart ComfyUI and "
        f"{again}: it is downloaded without paying again.",
    )


def _size_text(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}" if size < 100 * scale else \
                f"{size / scale:.0f} {unit}"
    return f"{size} bytes"


def _is_loopback_name(host: str) -> bool:
    address = _ip_literal(host)
    if address is not None:
        return address.is_loopback
    return host == "localhost" or host.endswith(".localhost")


def _same_host(a: str, b: str) -> bool:
    """The same host, or both this machine's loopback (localhost vs 127.0.0.1: the
    local double answers on either)."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b or (_is_loopback_name(a) and _is_loopback_name(b))


def _effective_port(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme.lower() == "https" else 80)


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` names by itself: an IP literal, including the legacy IPv4
    forms the C resolver accepts (``127.1``, ``2130706433``, ``0x7f.0.0.1``)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    return None


def _proxy_for(url: str) -> str | None:
    """The proxy aiohttp's trust_env uses for ``url`` (HTTP(S)_PROXY minus NO_PROXY)."""
    try:
        proxy, _auth = get_env_proxy_for_url(URL(url))
    except (LookupError, ValueError):
        return None
    return str(proxy)


def _env_proxies() -> list[tuple[str, int]]:
    """(host, port) of every proxy configured in the environment."""
    out = []
    for info in proxies_from_env().values():
        if info.proxy.host:
            out.append((info.proxy.host, _effective_port(info.proxy.scheme, info.proxy.port)))
    return out


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class _PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses a name with any non-public address, except
    the configured API's own host and port. Checked here, at connect time, there is no
    window between the check and the connection for a rebinding DNS answer."""

    def __init__(self, trusted: list[tuple[str, int]]) -> None:
        self._trusted = trusted  # (host, port): the API's own, and configured proxies
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if any(port == t_port and _same_host(host, t_host) for t_host, t_port in self._trusted):
            return results
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"])
            except ValueError:
                address = None
            if address is None or not _is_public(address):
                raise _refused(f"https://{host}",
                               f"the name resolves to {result['host']}, a loopback, private "
                               "or link-local address")
        return results

    async def close(self) -> None:
        await self._inner.close()

def _download_status_error(status: int, task_uuid: str | None) -> DownloadError:
    err = DownloadError(
        f"Result download answered HTTP {status}", task_uuid=task_uuid, http_status=status,
        hint="The result URL may have expired; recover the job by its taskUUID.",
    )
    err.retryable = status in TRANSIENT_HTTP
    return err


def _pct(have: int, total: int | None) -> float | None:
    return round(100.0 * have / total, 1) if total else None


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) of "bytes 100-199/200"; None for what is missing or unreadable."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    total = match.group(2)
    return int(match.group(1)), (int(total) if total.isdigit() else None)


def _overall_percent(done: int, total: int, running: list[float]) -> float | None:
    if not running and not done:
        return None
    return round(100.0 * (done + sum(p / 100.0 for p in running)) / total, 1)


def _as_list(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return [{"message": str(value)}]


def _parse_reply(status: int, parsed: Any) -> Reply:
    if isinstance(parsed, list):  # tolerate a bare list of items
        parsed = {"data": parsed}
    if not isinstance(parsed, dict):
        return Reply(status, [], [{"code": "invalidResponse",
                                   "message": "Runware sent an unreadable answer"}])
    items = _as_list(parsed.get("data"))
    errors = _as_list(parsed.get("errors")) + _as_list(parsed.get("error"))
    # Error items can also arrive inside `data` (newer SDKs' shape for a failed job).
    data = []
    for item in items:
        if str(item.get("status", "")).lower() == "error" or isinstance(item.get("error"), dict):
            errors.append(item)
        else:
            data.append(item)
    if status >= 400 and not errors:
        errors.append({"code": None, "message": f"Runware answered HTTP {status}"})
    return Reply(status, data, errors)


def _transient_error(
    status: int, parsed: Any, task_uuid: str | None, key: str, label: str
) -> RunwareError:
    items = _parse_reply(status, parsed).errors if parsed is not None else []
    if items and items[0].get("code"):
        err = error_from_item(items[0], status, secret=key)
        if err.retryable:
            return err
    return ServerError(
        f"Runware answered HTTP {status} to the {label}",
        task_uuid=task_uuid, http_status=status,
        hint="Runware had a temporary problem; queue again in a moment.",
    )


def _with_task(err: RunwareError, cls: type[RunwareError], task_uuid: str) -> RunwareError:
    hint = err.hint
    if cls is TaskFailedError and not isinstance(err, TaskFailedError):
        hint = "The job failed on Runware: read the message, change the inputs if it " \
               "points at them, and try again."
    return cls(err.message, code=err.code, parameter=err.parameter,
               task_uuid=err.task_uuid or task_uuid, task_type=err.task_type,
               http_status=err.http_status, hint=hint)


NOT_JSON: Any = object()  # a body that is not JSON at all (None is JSON's null)


def _json_or_none(text: str | None) -> Any:
    if not text or not text.strip():
        return NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return NOT_JSON


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes | None:
    """The body, or None once it passes ``cap`` bytes (read no further)."""
    if resp.content_length is not None and resp.content_length > cap:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _describe_body(text: str | None) -> str:
    if text is None:
        return f"a body larger than {MAX_REPLY_BYTES >> 20} MiB"
    stripped = text.strip()
    if not stripped:
        return "an empty body"
    lower = stripped[:2000].lower()
    if lower.startswith(("<!doctype html", "<html")) or "<body" in lower or "<head" in lower:
        match = re.search(r"<title[^>]*>(.*?)</title>", stripped[:4000], re.I | re.S)
        title = " ".join(match.group(1).split())[:80] if match else ""
        return f"an HTML page{f' titled {title!r}' if title else ''}"
    return "text that is not JSON"


def _likely_cause(status: int) -> str:
    if status in (404, 405):
        return ("The URL path is probably wrong: RUNWARE_API_URL should be Runware's "
                "https://api.runware.ai/v1 (or the offline double's http://host:port/v1).")
    if status == 413:
        return ("A proxy between ComfyUI and Runware refused the request size (413): raise "
                "its body size limit (e.g. nginx client_max_body_size) or send a smaller file.")
    if status == 407:
        return "A proxy asks for its own authentication (407): configure the proxy."
    if 400 <= status < 500:
        return ("A proxy, firewall or captive portal answered instead of Runware, or "
                "RUNWARE_API_URL points at the wrong server.")
    return ("Something other than Runware answered (a captive portal, a proxy, or a wrong "
            "RUNWARE_API_URL).")


def endpoint_error(raw: RawReply, host: str, label: str, task_uuid: str | None,
                   secret: str | None) -> EndpointError:
    """A clear, non-retryable error for an answer that is not Runware's JSON."""
    what = scrub(_describe_body(raw.text), secret)
    return EndpointError(
        f"{host} answered the {label} with HTTP {raw.status} and {what} instead of "
        "Runware's JSON. Nothing was retried",
        task_uuid=task_uuid, http_status=raw.status, hint=_likely_cause(raw.status)
        + (" A job already submitted is not lost: queue again once this is fixed."
           if task_uuid else ""),
    )


def _code_key(code: Any) -> str:
    return re.sub(r"[_\-\s]", "", str(code or "")).lower()


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def classify_poll_reply(
    status: int | None, text: str | None, task_uuid: str, *, secret: str | None = None,
    host: str = "", too_large: bool = False,
) -> PollReply:
    """What one getResponse answer says about ``task_uuid``. Pure: no I/O, no state.

    ``status`` None = no HTTP answer (the connection failed); ``text`` is the body.

    - failed: an item with ``status: "error"`` or a nested ``error`` object for this
      taskUUID, or a code on JOB_FAILURE_CODES (the job ended; positive evidence);
    - not_found: a task-not-found code (TASK_NOT_FOUND_CODES) for this task or the request;
    - refused: the key or credits were refused, or something that is not Runware answered
      with a 4xx (a wrong URL, a proxy page): stop, but the job is not over;
    - transient: no answer, 408 / 429 / 5xx, a rate-limit or server code: poll again;
    - processing / success: items for the task, all done = success;
    - unknown: anything else (an unknown code, JSON that is not an object, a body that is
      not JSON): keep polling until the time limit, never a reason to forget the job.
    """
    if status is None:
        return PollReply("transient", note="no answer from Runware (connection failed)")
    if too_large:
        text = None
    parsed = NOT_JSON if text is None else _json_or_none(text)
    if status in TRANSIENT_HTTP:
        return PollReply("transient", note=f"Runware answered HTTP {status}")
    if parsed is NOT_JSON:
        raw = RawReply(status, text)
        if 400 <= status < 500:
            return PollReply("refused", error=endpoint_error(raw, host or "the API", "poll",
                                                             task_uuid, secret))
        return PollReply("unknown", note=f"an answer that is not Runware's JSON (HTTP {status}, "
                                         f"{_describe_body(text)})")
    if isinstance(parsed, list):  # tolerate a bare list of items
        parsed = {"data": parsed}
    if not isinstance(parsed, dict):
        return PollReply("unknown", note=f"an answer that is not a JSON object (HTTP {status})")

    def ours(item: dict[str, Any], absent_ok: bool) -> bool:
        owner = item.get("taskUUID")
        return owner == task_uuid or (absent_ok and owner in (None, ""))

    items = [i for i in _as_list(parsed.get("data"))]
    errors = _as_list(parsed.get("errors")) + _as_list(parsed.get("error"))
    results: list[VideoResult] = []
    percents: list[float] = []
    pending = 0
    failure: RunwareError | None = None
    not_found: RunwareError | None = None
    refused: RunwareError | None = None
    transient: str | None = None
    unknown: list[str] = []
    for item in items + errors:
        nested = item.get("error") if isinstance(item.get("error"), dict) else None
        code = (nested or {}).get("code") or item.get("code")
        says_error = str(item.get("status", "")).lower() == "error" or nested is not None
        if says_error or code or item in errors:
            if not ours(item, absent_ok=not says_error):
                continue
            err = error_from_item(item, status if status >= 400 else None, secret=secret)
            if _code_key(code) in TASK_NOT_FOUND_CODES:
                not_found = not_found or _with_task(err, TaskNotFoundError, task_uuid)
            elif code in AUTH_CODES or (status in (401, 402, 403) and not says_error):
                refused = refused or (err if err.task_uuid else
                                      _with_task(err, type(err), task_uuid))
            elif says_error or code in JOB_FAILURE_CODES:
                failure = failure or _with_task(err, TaskFailedError, task_uuid)
            elif code in RATE_OR_SERVER_CODES:
                transient = f"Runware reported {code}"
            elif status in (404, 405) and not item.get("taskUUID"):
                refused = refused or EndpointError(
                    f"{host or 'The API'} answered the poll with HTTP {status} "
                    f"({scrub(str(code or item.get('message') or 'no code')[:80], secret)})",
                    task_uuid=task_uuid, http_status=status, hint=_likely_cause(status))
            else:
                unknown.append(f"Runware answered {scrub(str(code or 'an error')[:60], secret)}"
                               f" (HTTP {status})")
            continue
        if not ours(item, absent_ok=True):
            continue
        item_status = str(item.get("status") or "").lower()
        result = _result_from_item(item, task_uuid)
        if result is not None:
            results.append(result)
        elif item_status == "success":
            unknown.append("a finished item without a result URL")
        else:
            pending += 1
            progress = _finite(item.get("progress"))
            if progress is not None:
                percents.append(min(100.0, max(0.0, progress)))
            if item_status and item_status not in PENDING_STATUSES:
                unknown.append(f"an item with the status {item_status[:40]!r}")
    if failure is not None:
        return PollReply("failed", tuple(results), pending, tuple(percents), failure)
    if results or pending:
        kind = "processing" if pending or unknown else "success"
        return PollReply(kind, tuple(results), pending, tuple(percents),
                         note="; ".join(unknown) or None)
    if not_found is not None:
        return PollReply("not_found", error=not_found)
    if refused is not None:
        return PollReply("refused", error=refused)
    if transient is not None:
        return PollReply("transient", note=transient)
    if unknown:
        return PollReply("unknown", note="; ".join(unknown))
    return PollReply("unknown", note=f"an answer with nothing about the task (HTTP {status})")


def _result_from_item(item: dict[str, Any], task_uuid: str) -> VideoResult | None:
    """A success item -> VideoResult. Seed, cost and index that are not sane numbers are
    dropped with a warning (the paid file is what matters)."""
    url = item.get("videoURL") or item.get("mediaURL")
    if not url or not isinstance(url, str):
        return None
    video_uuid = item.get("videoUUID") or item.get("mediaUUID") or url
    return VideoResult(
        task_uuid=task_uuid,
        video_uuid=str(video_uuid)[:255],
        url=url,
        seed=_sane_int(item.get("seed"), "seed", task_uuid, MAX_SEED),
        cost=_sane_cost(item.get("cost"), task_uuid),
        index=_sane_int(item.get("resultIndex"), "resultIndex", task_uuid, 999),
        raw=dict(item),
    )


def _sane_int(value: Any, name: str, task_uuid: str, top: int) -> int | None:
    if value is None:
        return None
    number = _finite(value)
    if number is None or number != int(number) or not 0 <= number <= top:
        log.warning("Task %s: ignoring the %s %r in Runware's answer", task_uuid, name,
                    str(value)[:40])
        return None
    return int(number)


def _sane_cost(value: Any, task_uuid: str) -> float | None:
    if value is None:
        return None
    cost = _finite(value)
    if cost is None or not 0.0 <= cost <= MAX_COST:
        log.warning("Task %s: ignoring the cost %r in Runware's answer (not a price)",
                    task_uuid, str(value)[:40])
        return None
    return cost


def _base64_json_body(
    head: dict[str, Any],
    field_name: str,
    source: bytes | Path,
    mime: str,
    check_cancel: Callable[[], None],
) -> tuple[Any, int]:
    """A JSON task array whose ``field_name`` is a base64 data URI of ``source``.

    A file is streamed: read 3 MiB at a time and base64-encoded chunk by chunk, so the
    upload never holds the whole file, let alone its base64 text, in memory.
    """
    prefix = (json.dumps([head])[:-2] + f', "{field_name}": "data:{mime};base64,').encode()
    suffix = b'"}]'
    if isinstance(source, bytes):
        data = prefix + base64.b64encode(source) + suffix
        return data, len(data)
    path = Path(source)
    size = path.stat().st_size
    length = len(prefix) + 4 * ((size + 2) // 3) + len(suffix)
    return _stream_file_b64(prefix, suffix, path, check_cancel), length


async def _stream_file_b64(
    prefix: bytes, suffix: bytes, path: Path, check_cancel: Callable[[], None]
) -> AsyncIterator[bytes]:
    yield prefix
    with open(path, "rb") as fh:
        while True:
            check_cancel()
            chunk = fh.read(3 << 20)  # a multiple of 3: no padding mid-stream
            if not chunk:
                break
            yield base64.b64encode(chunk)
    yield suffix

