"""A strict local Runware test double: a real HTTP server speaking Runware's REST protocol.

``RunwareDouble`` runs ``http.server.ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread.
It validates ``videoInference`` tasks against the models' specs (``..spec``), checks the
media they reference, runs "jobs" that finish after ``job_seconds`` (results staggered),
renders real, decodable MP4/WEBM/MOV files (``.media``) and serves them with Range support.
Faults (HTTP errors, lost replies, cut downloads, failed jobs, latency) can be injected.

Choices where the protocol is silent (documented here, tested in tests/test_double.py):

* Status: 200 when any task of the request produced a ``data`` item; otherwise the status
  of the first error. Validation/media errors 400, auth 401, ``taskNotFound`` /
  ``taskExpired`` 404, ``mediaNotFound`` (delete of an unknown media) 404.
* A ``getResponse`` of a job that failed, "errors" shape: HTTP 400 with a top-level
  ``errors`` item carrying ``status: "error"`` (as in the docs); "data" shape: HTTP 200.
* ``deliveryMethod`` may be omitted (the schema's default is ``async``); any other value is
  refused by the schema.
* An ``authentication`` element must be first; it only gets a ``data`` item of its own when
  it is the only element. When both a header and an authentication element are sent, both
  must carry the right key.
* Validation is the pack's own (``spec.validate_task`` + ``spec.check_media`` on the
  stored files' facts), the reading the node pre-flight uses. NaN / Infinity literals and
  over-deep JSON are ``invalidJSON``; a ``taskType`` or ``model`` of any JSON shape gets a
  400 with a code, never a 500.
* No network: a remote http(s) media URL (in a task or an upload) is accepted and
  answered with synthetic media derived from the URL (a video long enough for the
  request's segments, frame number and boxes); the log says so.
* Never logged: the ``Authorization`` header, ``apiKey`` values (``"***"``), the key itself
  anywhere in a string, and strings over 200 characters (``"<N chars>"``).
"""

from __future__ import annotations

import copy
import http.server
import json
import random
import shutil
import socket
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .. import spec as specmod
from ..files import atomic_write
from ..logs import get_logger
from . import media

log = get_logger("double")

LONG_STRING = 200
DEFAULT_CODES: dict[int, str] = {
    400: "invalidParameter",
    401: "invalidApiKey",
    402: "insufficientCredits",
    403: "forbidden",
    404: "notFound",
    408: "timeoutProvider",
    409: "conflictTaskUUID",
    429: "rateLimitExceeded",
    500: "internalServerError",
    502: "internalServerError",
    503: "serviceUnavailable",
    504: "timeoutProvider",
}
SYNTHETIC_SECONDS = 5.0  # length of synthetic media standing in for a remote URL
SYNTHETIC_MAX_SECONDS = 60.0
_TASK_FIELDS = {
    "imageUpload": {"taskType", "taskUUID", "image"},
    "mediaStorage": {"taskType", "taskUUID", "operation", "media"},
    "getResponse": {"taskType", "taskUUID"},
    "ping": {"taskType", "taskUUID", "ping"},
    "authentication": {"taskType", "apiKey", "connectionSessionUUID"},
}


def default_code(status: int) -> str:
    if status in DEFAULT_CODES:
        return DEFAULT_CODES[status]
    return "internalServerError" if status >= 500 else "error"


class TaskError(Exception):
    """One task's failure: becomes one item of the reply's ``errors``."""

    def __init__(
        self, code: str, message: str, parameter: str = "", http_status: int = 400, **extra: Any
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.parameter = parameter
        self.http_status = http_status
        self.extra = extra

    def item(self, task_type: str | None, task_uuid: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "parameter": self.parameter,
            "taskType": task_type,
            "taskUUID": task_uuid,
        }
        out.update(self.extra)
        return out


@dataclass
class StoredMedia:
    uuid: str
    path: Path
    info: media.MediaInfo
    origin: str  # "imageUpload" | "mediaStorage" | "result"
    url: str
    task_uuid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = self.info.as_dict()
        out.update(
            uuid=self.uuid,
            path=str(self.path),
            origin=self.origin,
            url=self.url,
            taskUUID=self.task_uuid,
        )
        return out


@dataclass
class _Result:
    index: int
    seed: int
    uuid: str | None = None
    url: str | None = None
    done: bool = False


@dataclass
class _Job:
    task_uuid: str
    task: dict[str, Any]
    model: str
    created: float
    results: list[_Result]
    render: dict[str, Any]
    injected_failure: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    expired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Reply:
    status: int
    body: dict[str, Any] | None
    lose: bool = False
    fault: str | None = None
    raw: bytes | None = None  # sent as is instead of ``body`` (answer_next)
    content_type: str = "application/json"


@dataclass(frozen=True)
class _Remote:
    """A remote http(s) media URL: the double has no network and answers it synthetically."""

    url: str


@dataclass(frozen=True)
class _Inline:
    """Inline image data (Ovi's data URI / base64): its bytes, or None when unreadable."""

    data: bytes | None
    facts: specmod.MediaFacts


@dataclass(frozen=True)
class _Synthetic:
    """Synthetic media made when a job renders (see media.write_synthetic_*)."""

    kind: str  # "image" | "audio" | "video"
    url: str
    seconds: float


def _facts(info: media.MediaInfo) -> specmod.MediaFacts:
    return specmod.MediaFacts(
        kind=info.kind,
        width=info.width,
        height=info.height,
        frame_count=info.frames,
        fps=info.fps,
        duration=info.duration,
        has_audio=info.has_audio,
    )


def _no_constant(name: str) -> Any:
    """``json.loads`` hook: NaN and Infinity are not JSON numbers (Python accepts them)."""
    raise ValueError(f"{name} is not a JSON number")


# ----------------------------------------------------------------------------- helpers


def sanitize(value: Any, secret: str | None = None) -> Any:
    """A copy for the log: no ``apiKey`` values, no secret, no huge strings."""
    if isinstance(value, dict):
        return {k: ("***" if k == "apiKey" else sanitize(v, secret)) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize(v, secret) for v in value]
    if isinstance(value, str):
        if len(value) > LONG_STRING:
            return f"<{len(value)} chars>"
        if secret and secret in value:
            return value.replace(secret, "***")
    return value


def _task_types(tasks: Any) -> list[str]:
    if not isinstance(tasks, list):
        return []
    return [str(t.get("taskType")) for t in tasks if isinstance(t, dict)]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    double: RunwareDouble


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RunwareDouble/1.0"
    timeout = 120
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive request.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.double._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.double._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # -- plumbing

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline().strip().split(b";")[0]
                size = int(size_line or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, body: dict[str, Any] | None) -> None:
        payload = json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_raw(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- verbs

    def do_POST(self) -> None:
        double = self.server.double
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self._send_json(400, _errors("invalidRequestBody", "could not read the body"))
            return
        path = urlsplit(self.path).path
        entry = double._new_entry("POST", self.path)
        if path.rstrip("/") != "/v1":
            reply = _Reply(404, _errors("notFound", f"no endpoint at {path} (POST to /v1)"))
        else:
            reply = double._handle_post(body, self.headers.get("Authorization"), entry)
        entry["status"] = None if reply.lose else reply.status
        entry["fault"] = reply.fault
        double._append_entry(entry)
        if double.latency > 0:
            time.sleep(double.latency)
        if reply.lose:
            self._drop()
            return
        if reply.raw is not None:
            self._send_raw(reply.status, reply.raw, reply.content_type)
            return
        self._send_json(reply.status, reply.body)

    def do_GET(self) -> None:
        self._serve_file(head=False)

    def do_HEAD(self) -> None:
        self._serve_file(head=True)

    def _serve_file(self, head: bool) -> None:
        double = self.server.double
        path = urlsplit(self.path).path
        range_header = self.headers.get("Range")
        entry = double._new_entry(self.command, self.path)
        entry["range"] = range_header
        if not path.startswith("/files/"):
            status = 405 if path.rstrip("/") == "/v1" else 404
            entry["status"] = status
            double._append_entry(entry)
            self._send_json(status, _errors(default_code(status), f"nothing to GET at {path}"))
            return
        served = double._take_served_download() if not head else None
        if served is not None:
            entry.update(status=200, fault="served_body")
            double._append_entry(entry)
            self._send_raw(200, served[0], served[1])
            return
        fault = double._take_download_fault() if not head else None
        if fault is not None and fault[0] == "status":
            status = int(fault[1])
            entry.update(status=status, fault="fail_download")
            double._append_entry(entry)
            self._send_json(status, _errors(default_code(status), "injected download failure"))
            return
        stored = double._stored_for_path(path)
        if stored is None or not stored.path.exists():
            entry["status"] = 404
            double._append_entry(entry)
            self._send_json(404, _errors("notFound", f"no file at {path}"))
            return
        size = stored.path.stat().st_size
        start, end = 0, size - 1
        status = 200
        if range_header:
            parsed = _parse_range(range_header, size)
            if parsed == "unsatisfiable":
                entry["status"] = 416
                double._append_entry(entry)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if isinstance(parsed, tuple):
                start, end = parsed
                status = 206
        length = max(0, end - start + 1)
        entry["status"] = status
        if fault is not None:
            entry["fault"] = "dropped"
        double._append_entry(entry)
        self.send_response(status)
        self.send_header("Content-Type", stored.info.mime or "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        limit = length if fault is None else min(length, int(fault[1]))
        with stored.path.open("rb") as fh:
            fh.seek(start)
            remaining = limit
            while remaining > 0:
                chunk = fh.read(min(65536, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
        if fault is not None:
            self._drop()


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """``bytes=N-``, ``bytes=N-M``, ``bytes=-S``; None = ignore (serve all)."""
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(0, size - suffix), size - 1) if size else "unsatisfiable"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)


def _errors(code: str, message: str, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "message": message}
    item.update(extra)
    return {"errors": [item]}


# ----------------------------------------------------------------------------- the double


class RunwareDouble:
    """A local, strict stand-in for ``https://api.runware.ai/v1``.

    Args:
        api_key: the only key accepted.
        host, port: where to listen (port 0 = a free port).
        job_seconds: how long a job takes; result ``i`` finishes at
            ``job_seconds * (1 + i * 0.25)`` after acceptance. Settable at any time.
        storage_dir: where uploads and results are written (default: a temp dir that
            ``stop()`` removes).
        video_size: Ovi output (width, height); even numbers.
        result_keys: ``"video"`` (``videoUUID``/``videoURL``) or ``"media"``
            (``mediaUUID``/``mediaURL``) in success items.
        ovi_duration: length of an Ovi clip in seconds (5 like the model).
        cost_per_result: USD reported per result when ``includeCost`` is true.
        sync3_model_ids: which sync-3 model ids this "service" knows (default: the
            specification's ``sync:lipsync@3``); another id of sync-3 (``sync:3@0``) is
            refused with ``modelNotFound``, as Runware refuses an unknown model (free).
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        job_seconds: float = 1.0,
        storage_dir: str | Path | None = None,
        video_size: tuple[int, int] = (160, 96),
        result_keys: str = "video",
        ovi_duration: float = 5.0,
        cost_per_result: float = 0.05,
        sync3_model_ids: tuple[str, ...] = (specmod.SYNC3_MODEL,),
    ) -> None:
        if result_keys not in ("video", "media"):
            raise ValueError("result_keys must be 'video' or 'media'")
        if video_size[0] <= 0 or video_size[1] <= 0 or video_size[0] % 2 or video_size[1] % 2:
            raise ValueError("video_size must be two positive even numbers")
        self.api_key = api_key
        self.host = host
        self._port = port
        self.job_seconds = float(job_seconds)
        self.video_size = (int(video_size[0]), int(video_size[1]))
        self.result_keys = result_keys
        self.ovi_duration = float(ovi_duration)
        self.cost_per_result = float(cost_per_result)
        self.latency = 0.0
        self.ovi_requires_image = False
        self.sync3_model_ids = tuple(sync3_model_ids)

        self._own_storage = storage_dir is None
        self._storage_arg = Path(storage_dir) if storage_dir is not None else None
        self.storage_dir: Path | None = None

        self._lock = threading.RLock()
        self._log: list[dict[str, Any]] = []
        self._accepted: list[dict[str, Any]] = []
        self._media: dict[str, StoredMedia] = {}
        self._jobs: dict[str, _Job] = {}
        self._used_uuids: set[str] = set()
        self._expired: set[str] = set()
        self._fail_next: list[dict[str, Any]] = []
        self._fail_downloads: list[list[int]] = []
        self._lose: list[dict[str, Any]] = []
        self._drop: list[list[int]] = []
        self._job_failures: list[dict[str, Any]] = []
        self._answers: list[dict[str, Any]] = []
        self._served_downloads: list[list[Any]] = []
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> RunwareDouble:
        if self._server is not None:
            return self
        if self._own_storage:
            self.storage_dir = Path(tempfile.mkdtemp(prefix="runware-double-"))
        else:
            assert self._storage_arg is not None
            self._storage_arg.mkdir(parents=True, exist_ok=True)
            self.storage_dir = self._storage_arg
        server = _Server((self.host, self._port), _Handler)
        server.double = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="runware-double",
            daemon=True,
        )
        self._thread.start()
        log.info("Runware double listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._own_storage and self.storage_dir is not None:
            shutil.rmtree(self.storage_dir, ignore_errors=True)
        log.info("Runware double stopped")

    def __enter__(self) -> RunwareDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the double is not running (call start())")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Where tasks are POSTed (set ``RUNWARE_API_URL`` to this)."""
        return f"{self.origin}/v1"

    @property
    def files_url(self) -> str:
        return f"{self.origin}/files"

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- fault injection

    def fail_next(
        self, status: int, count: int = 1, task_type: str | None = None, code: str | None = None,
        skip: int = 0,
    ) -> None:
        """The next ``count`` POSTs (only those holding ``task_type``, if given) answer
        ``status`` with an errors envelope, without being processed; the first ``skip``
        matching POSTs pass through untouched."""
        with self._lock:
            self._fail_next.append(
                {
                    "status": int(status),
                    "count": int(count),
                    "skip": int(skip),
                    "task_type": task_type,
                    "code": code or default_code(int(status)),
                }
            )

    def fail_downloads(self, status: int, count: int = 1) -> None:
        """The next ``count`` GET /files/ requests answer ``status``."""
        with self._lock:
            self._fail_downloads.append([int(status), int(count)])

    def lose_next_response(self, task_type: str = "videoInference", count: int = 1) -> None:
        """Process the next ``count`` POSTs holding ``task_type`` fully, then close the
        connection without a reply."""
        with self._lock:
            self._lose.append({"task_type": task_type, "count": int(count)})

    def drop_download_after(self, nbytes: int, count: int = 1) -> None:
        """The next ``count`` downloads send full headers, ``nbytes`` of body, then close."""
        with self._lock:
            self._drop.append([int(nbytes), int(count)])

    def fail_next_job(
        self,
        shape: str = "errors",
        code: str = "inferenceError",
        message: str = "The model failed to generate the video (injected by the test double)",
    ) -> None:
        """The next accepted job ends in error when it would have finished."""
        if shape not in ("errors", "data"):
            raise ValueError("shape must be 'errors' or 'data'")
        with self._lock:
            self._job_failures.append({"shape": shape, "code": code, "message": message})

    def answer_next(
        self,
        status: int,
        body: str | bytes | dict[str, Any] | list[Any] | Callable[[list[Any]], Any],
        *,
        task_type: str | None = None,
        count: int = 1,
        content_type: str | None = None,
        process: bool = False,
    ) -> None:
        """The next ``count`` POSTs (holding ``task_type``, if given) are answered with
        ``status`` and ``body`` as is: an HTML page, text, any JSON (an unknown code, a
        non-object). A callable gets the request's task list and returns the body. With
        ``process`` the request is handled first (a job is accepted), then the real reply
        is replaced: what a proxy that mangles answers looks like."""
        if content_type is None:
            content_type = ("application/json" if isinstance(body, (dict, list))
                            else "text/html; charset=utf-8")
        with self._lock:
            self._answers.append({"status": int(status), "body": body, "count": int(count),
                                  "task_type": task_type, "content_type": content_type,
                                  "process": bool(process)})

    def serve_next_download(self, body: bytes, content_type: str = "text/html",
                            count: int = 1) -> None:
        """The next ``count`` GET /files/ requests answer 200 with ``body`` (an HTML page,
        a cut-off file...) instead of the file."""
        with self._lock:
            self._served_downloads.append([bytes(body), content_type, int(count)])

    def fail_next_job_after(
        self,
        results: int,
        code: str = "inferenceError",
        message: str = "One generation failed (injected by the test double)",
    ) -> None:
        """The next accepted job delivers its first ``results`` results, then fails when
        the next one would have finished ("data" shape: the finished items stay listed
        next to the error item)."""
        with self._lock:
            self._job_failures.append({"shape": "data", "code": code, "message": message,
                                       "after": int(results)})

    def expire_task(self, task_uuid: str) -> None:
        """From now on ``getResponse`` for ``task_uuid`` answers ``taskExpired``."""
        with self._lock:
            self._expired.add(task_uuid)

    def clear_faults(self) -> None:
        with self._lock:
            self._fail_next.clear()
            self._fail_downloads.clear()
            self._lose.clear()
            self._drop.clear()
            self._job_failures.clear()
            self._answers.clear()
            self._served_downloads.clear()
            self.latency = 0.0

    # -- inspection

    @property
    def log(self) -> list[dict[str, Any]]:
        """Every request seen (copies; never holds the API key)."""
        with self._lock:
            return copy.deepcopy(self._log)

    def reset_log(self) -> None:
        """Forget the request log and the accepted submissions (not the jobs or files)."""
        with self._lock:
            self._log.clear()
            self._accepted.clear()

    def accepted_submissions(self) -> list[dict[str, Any]]:
        """Accepted ``videoInference`` tasks, in order (full copies)."""
        with self._lock:
            return copy.deepcopy(self._accepted)

    def count(self, task_type: str) -> int:
        """How many tasks of ``task_type`` were received (in the current log)."""
        with self._lock:
            return sum(e["task_types"].count(task_type) for e in self._log)

    @property
    def uploads(self) -> dict[str, dict[str, Any]]:
        """uuid -> info of every stored upload (kind, duration, fps, frames, size, ...)."""
        with self._lock:
            return {u: m.as_dict() for u, m in self._media.items() if m.origin != "result"}

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        """uuid -> info of every generated result file."""
        with self._lock:
            return {u: m.as_dict() for u, m in self._media.items() if m.origin == "result"}

    def job(self, task_uuid: str) -> dict[str, Any] | None:
        """A summary of one job: model, task, results (index, seed, uuid, done), error."""
        with self._lock:
            job = self._jobs.get(task_uuid)
            if job is None:
                return None
            return {
                "model": job.model,
                "task": copy.deepcopy(job.task),
                "results": [r.__dict__.copy() for r in job.results],
                "error": copy.deepcopy(job.error),
                "expired": task_uuid in self._expired,
            }

    # -- log plumbing

    def _new_entry(self, method: str, path: str) -> dict[str, Any]:
        return {
            "method": method,
            "path": path,
            "status": None,
            "task_types": [],
            "tasks": [],
            "range": None,
            "fault": None,
        }

    def _append_entry(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)

    # -- faults plumbing

    def _take_fail_next(self, types: list[str]) -> dict[str, Any] | None:
        with self._lock:
            for fault in self._fail_next:
                if fault["task_type"] is None or fault["task_type"] in types:
                    if fault.get("skip", 0) > 0:
                        fault["skip"] -= 1
                        continue
                    fault["count"] -= 1
                    if fault["count"] <= 0:
                        self._fail_next.remove(fault)
                    return fault
        return None

    def _take_lose(self, types: list[str]) -> bool:
        with self._lock:
            for fault in self._lose:
                if fault["task_type"] is None or fault["task_type"] in types:
                    fault["count"] -= 1
                    if fault["count"] <= 0:
                        self._lose.remove(fault)
                    return True
        return False

    def _take_answer(self, types: list[str]) -> dict[str, Any] | None:
        with self._lock:
            for answer in self._answers:
                if answer["task_type"] is None or answer["task_type"] in types:
                    answer["count"] -= 1
                    if answer["count"] <= 0:
                        self._answers.remove(answer)
                    return answer
        return None

    def _take_served_download(self) -> tuple[bytes, str] | None:
        with self._lock:
            if not self._served_downloads:
                return None
            item = self._served_downloads[0]
            item[2] -= 1
            if item[2] <= 0:
                self._served_downloads.pop(0)
            return item[0], item[1]

    def _answer_reply(self, answer: dict[str, Any], tasks: Any) -> _Reply:
        body = answer["body"]
        if callable(body):
            body = body(tasks if isinstance(tasks, list) else [])
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = bytes(body)
        return _Reply(answer["status"], None, fault="answer_next", raw=payload,
                      content_type=answer["content_type"])

    def _take_download_fault(self) -> tuple[str, int] | None:
        with self._lock:
            if self._fail_downloads:
                item = self._fail_downloads[0]
                item[1] -= 1
                if item[1] <= 0:
                    self._fail_downloads.pop(0)
                return ("status", item[0])
            if self._drop:
                item = self._drop[0]
                item[1] -= 1
                if item[1] <= 0:
                    self._drop.pop(0)
                return ("drop", item[0])
        return None

    # -- storage

    def _stored_for_path(self, path: str) -> StoredMedia | None:
        name = path[len("/files/") :]
        stem, _, ext = name.partition(".")
        with self._lock:
            stored = self._media.get(stem)
        if stored is None or (ext and ext != stored.path.suffix.lstrip(".")):
            return None
        return stored

    def _store(
        self, data: bytes, info: media.MediaInfo, origin: str, task_uuid: str | None
    ) -> StoredMedia:
        assert self.storage_dir is not None
        media_uuid = str(uuidlib.uuid4())
        path = self.storage_dir / f"{media_uuid}.{info.ext}"
        atomic_write(path, data)
        stored = StoredMedia(
            media_uuid, path, info, origin, f"{self.files_url}/{path.name}", task_uuid
        )
        with self._lock:
            self._media[media_uuid] = stored
        return stored

    def _own_file(self, ref: str) -> bool:
        """Whether ``ref`` is a URL of this double's own /files/."""
        try:
            parts = urlsplit(ref)
            port = parts.port
        except ValueError:
            return False
        return (
            parts.scheme in ("http", "https")
            and parts.hostname in ("127.0.0.1", "localhost", self.host)
            and port == self.port
            and parts.path.startswith("/files/")
        )

    def _lookup_ref(self, ref: str, parameter: str) -> StoredMedia:
        """A UUID or one of our own /files/ URLs -> the stored media."""
        if specmod.is_uuid(ref):
            with self._lock:
                stored = self._media.get(ref.lower()) or self._media.get(ref)
            if stored is None:
                raise TaskError(
                    "mediaNotFound",
                    f"{parameter}: no uploaded media or result has the UUID {ref}",
                    parameter,
                )
            return stored
        if self._own_file(ref):
            stored = self._stored_for_path(urlsplit(ref).path)
            if stored is not None:
                return stored
            raise TaskError("mediaNotFound", f"{parameter}: no file at {ref}", parameter)
        raise TaskError("invalidMedia", f"{parameter}: expected a UUID or a URL", parameter)

    def _resolve(self, ref: str, parameter: str) -> StoredMedia | _Remote | _Inline:
        """A media reference of a task that passed the spec check -> what it points at."""
        if specmod.is_uuid(ref) or self._own_file(ref):
            return self._lookup_ref(ref, parameter)
        if specmod.is_remote_url(ref):
            return _Remote(ref)
        try:  # inline image data (Ovi's data URI / base64 forms)
            mime, data = media.decode_payload(ref)
            if mime is not None and not mime.startswith("image/"):
                raise media.MediaError(f"a {mime} data URI is not an image")
            info = media.probe_image(data)
        except media.MediaError as exc:
            return _Inline(None, specmod.MediaFacts("unreadable", problem=str(exc)))
        return _Inline(data, _facts(info))

    def _resolve_refs(
        self, task: dict[str, Any]
    ) -> tuple[dict[str, StoredMedia | _Remote | _Inline], list[TaskError]]:
        resolved: dict[str, StoredMedia | _Remote | _Inline] = {}
        errors: list[TaskError] = []
        for where, ref in specmod.media_refs(task):
            if not isinstance(ref, str) or ref in resolved:
                continue
            try:
                resolved[ref] = self._resolve(ref, where)
            except TaskError as err:
                errors.append(err)
            if isinstance(resolved.get(ref), _Remote):
                log.info(
                    "test double: no network; %s (%s) will be answered with synthetic media",
                    where, ref if len(ref) <= 120 else ref[:117] + "...",
                )
        return resolved, errors

    def _synthetic_payload(self, url: str, parameter: str, image_only: bool
                           ) -> tuple[str, bytes]:
        """Bytes standing in for a remote URL given to an upload task."""
        kind = "image" if image_only else media.url_kind(url)
        log.info("test double: no network; %s %s is answered with a synthetic %s",
                 parameter, url if len(url) <= 120 else url[:117] + "...", kind)
        if kind == "image":
            return "image/png", media.synthetic_image(url, self.video_size)
        assert self.storage_dir is not None
        ext = "wav" if kind == "audio" else "mp4"
        path = self.storage_dir / f"synthetic-{uuidlib.uuid4()}.{ext}"
        try:
            if kind == "audio":
                media.write_synthetic_audio(path, url, SYNTHETIC_SECONDS)
            else:
                media.write_synthetic_video(path, url, SYNTHETIC_SECONDS, self.video_size)
            return ("audio/wav" if kind == "audio" else "video/mp4"), path.read_bytes()
        finally:
            path.unlink(missing_ok=True)

    def _materialize(self, source: Any) -> Any:
        """A ``_Synthetic`` stand-in -> a real file (video/audio) or PNG bytes (image)."""
        if not isinstance(source, _Synthetic):
            return source
        if source.kind == "image":
            return media.synthetic_image(source.url, self.video_size)
        assert self.storage_dir is not None
        ext = "wav" if source.kind == "audio" else "mp4"
        path = self.storage_dir / f"synthetic-{uuidlib.uuid4()}.{ext}"
        if source.kind == "audio":
            media.write_synthetic_audio(path, source.url, source.seconds)
        else:
            media.write_synthetic_video(path, source.url, source.seconds, self.video_size)
        return path

    # -- POST

    def _handle_post(self, body: bytes, auth_header: str | None, entry: dict[str, Any]) -> _Reply:
        try:
            tasks = json.loads(body.decode("utf-8"), parse_constant=_no_constant) if body else None
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            fault = self._take_fail_next([])
            if fault is not None:
                return self._fault_reply(fault, [])
            return _Reply(400, _errors("invalidJSON", f"the body is not valid JSON: {exc}"))
        types = _task_types(tasks)
        entry["task_types"] = types
        entry["tasks"] = sanitize(tasks if isinstance(tasks, list) else [tasks], self.api_key)

        fault = self._take_fail_next(types)
        if fault is not None:
            return self._fault_reply(fault, tasks if isinstance(tasks, list) else [])
        answer = self._take_answer(types)
        if answer is not None and not answer["process"]:
            return self._answer_reply(answer, tasks)

        if not isinstance(tasks, list) or not tasks:
            return _Reply(
                400,
                _errors("invalidRequestBody", "the body must be a non-empty JSON array of tasks"),
            )

        auth_error = self._check_auth(auth_header, tasks)
        if auth_error is not None:
            return _Reply(401, {"errors": [auth_error.item(None, None)]})

        data: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        statuses: list[int] = []
        for index, task in enumerate(tasks):
            if index == 0 and isinstance(task, dict) and task.get("taskType") == "authentication":
                if len(tasks) == 1:
                    data.append(
                        {
                            "taskType": "authentication",
                            "connectionSessionUUID": str(uuidlib.uuid4()),
                        }
                    )
                continue
            task_type = task.get("taskType") if isinstance(task, dict) else None
            task_uuid = task.get("taskUUID") if isinstance(task, dict) else None
            try:
                data.extend(self._dispatch(task, index))
            except TaskErrors as many:
                for err in many.errors:
                    errors.append(err.item(task_type, task_uuid))
                    statuses.append(err.http_status)
            except TaskError as err:
                errors.append(err.item(task_type, task_uuid))
                statuses.append(err.http_status)
            except Exception as exc:  # a bug in the double: report, do not hang the client
                log.exception("test double failed on task %s", task_type)
                errors.append(
                    TaskError(
                        "internalServerError", f"test double bug: {exc}", http_status=500
                    ).item(task_type, task_uuid)
                )
                statuses.append(500)

        body_out: dict[str, Any] = {}
        if data:
            body_out["data"] = data
        if errors:
            body_out["errors"] = errors
        status = 200 if data or not statuses else statuses[0]
        if answer is not None:  # processed, then the reply replaced
            return self._answer_reply(answer, tasks)
        if self._take_lose(types):
            return _Reply(status, body_out, lose=True, fault="lost")
        return _Reply(status, body_out)

    def _fault_reply(self, fault: dict[str, Any], tasks: list[Any]) -> _Reply:
        status, code = fault["status"], fault["code"]
        message = f"injected HTTP {status} ({code}) by the test double"
        items = [
            {
                "code": code,
                "message": message,
                "taskType": t.get("taskType"),
                "taskUUID": t.get("taskUUID"),
            }
            for t in tasks
            if isinstance(t, dict) and t.get("taskType") != "authentication"
        ] or [{"code": code, "message": message}]
        return _Reply(status, {"errors": items}, fault="fail_next")

    def _check_auth(self, header: str | None, tasks: list[Any]) -> TaskError | None:
        keys: list[str] = []
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return TaskError(
                    "invalidApiKey",
                    "the Authorization header must be 'Bearer <key>'",
                    http_status=401,
                )
            keys.append(value.strip())
        first = tasks[0]
        if isinstance(first, dict) and first.get("taskType") == "authentication":
            key = first.get("apiKey")
            if not isinstance(key, str) or not key:
                return TaskError(
                    "missingApiKey", "the authentication task has no apiKey", "apiKey", 401
                )
            keys.append(key)
        if not keys:
            return TaskError(
                "missingApiKey",
                "no API key: send 'Authorization: Bearer <key>' or an authentication task first",
                http_status=401,
            )
        if any(k != self.api_key for k in keys):
            return TaskError("invalidApiKey", "the API key is not valid", http_status=401)
        return None

    def _dispatch(self, task: Any, index: int) -> list[dict[str, Any]]:
        if not isinstance(task, dict):
            raise TaskError("invalidParameter", f"task {index} is not a JSON object")
        task_type = task.get("taskType")
        if task_type is None or task_type == "":
            raise TaskError("missingParameter", "taskType is required", "taskType")
        if not isinstance(task_type, str):
            raise TaskError(
                "invalidParameter",
                f"taskType must be a string (got {specmod.short_json(task_type)})",
                "taskType",
            )
        if task_type == "authentication":
            raise TaskError(
                "invalidParameter",
                "an authentication task must be the first element",
                "taskType",
            )
        if task_type in _TASK_FIELDS:
            extra = sorted(set(task) - _TASK_FIELDS[task_type])
            if extra:
                raise TaskErrors(
                    [
                        TaskError("unknownParameter", f"unknown parameter {k!r} for {task_type}", k)
                        for k in extra
                    ]
                )
        if task_type == "ping":
            item: dict[str, Any] = {"taskType": "ping", "pong": True}
            if "taskUUID" in task:
                item["taskUUID"] = task["taskUUID"]
            return [item]
        if task_type == "getResponse":
            return self._get_response(task)
        if task_type == "imageUpload":
            return [self._image_upload(task)]
        if task_type == "mediaStorage":
            return [self._media_storage(task)]
        if task_type == "videoInference":
            return [self._video_inference(task)]
        raise TaskError(
            "invalidTaskType",
            f"unsupported taskType {task_type!r} (this double knows videoInference, "
            "getResponse, imageUpload, mediaStorage, ping, authentication)",
            "taskType",
        )

    def _claim_uuid(self, task: dict[str, Any]) -> str:
        task_uuid = task.get("taskUUID")
        if task_uuid is None:
            raise TaskError("missingParameter", "taskUUID is required", "taskUUID")
        if not isinstance(task_uuid, str) or not specmod.is_uuid(task_uuid):
            raise TaskError("invalidParameter", "taskUUID must be a UUID (v4)", "taskUUID")
        with self._lock:
            if task_uuid in self._used_uuids:
                raise TaskError(
                    "conflictTaskUUID",
                    f"the taskUUID {task_uuid} was already used by an earlier task",
                    "taskUUID",
                )
        return task_uuid

    def _commit_uuid(self, task_uuid: str) -> None:
        with self._lock:
            if task_uuid in self._used_uuids:
                raise TaskError(
                    "conflictTaskUUID",
                    f"the taskUUID {task_uuid} was already used by an earlier task",
                    "taskUUID",
                )
            self._used_uuids.add(task_uuid)

    # -- uploads

    def _payload(
        self, value: Any, parameter: str, code: str, image_only: bool = False
    ) -> tuple[str | None, bytes]:
        if not isinstance(value, str) or not value:
            raise TaskError("missingParameter", f"{parameter} is required", parameter)
        if value[:7].lower() == "http://" or value[:8].lower() == "https://":
            if self._own_file(value):
                stored = self._lookup_ref(value, parameter)
                return stored.info.mime, stored.path.read_bytes()
            if not specmod.is_remote_url(value):
                raise TaskError(code, f"{parameter}: {value[:80]!r} is not a valid URL",
                                parameter)
            return self._synthetic_payload(value, parameter, image_only)
        try:
            return media.decode_payload(value)
        except media.MediaError as exc:
            raise TaskError(code, f"{parameter}: {exc}", parameter) from None

    def _image_upload(self, task: dict[str, Any]) -> dict[str, Any]:
        task_uuid = self._claim_uuid(task)
        mime, data = self._payload(task.get("image"), "image", "invalidImage", True)
        if mime is not None and not mime.startswith("image/"):
            raise TaskError("invalidImage", f"image: a {mime} data URI is not an image", "image")
        try:
            info = media.probe_image(data)
        except media.MediaError as exc:
            raise TaskError("invalidImage", f"image: {exc}", "image") from None
        self._commit_uuid(task_uuid)
        stored = self._store(data, info, "imageUpload", task_uuid)
        return {
            "taskType": "imageUpload",
            "taskUUID": task_uuid,
            "imageUUID": stored.uuid,
            "imageURL": stored.url,
        }

    def _media_storage(self, task: dict[str, Any]) -> dict[str, Any]:
        task_uuid = self._claim_uuid(task)
        operation = task.get("operation")
        if operation is None:
            raise TaskError(
                "missingParameter", "operation is required (upload or delete)", "operation"
            )
        if operation == "delete":
            ref = task.get("media")
            if not isinstance(ref, str) or not specmod.is_uuid(ref):
                raise TaskError("invalidParameter", "media must be a mediaUUID to delete", "media")
            with self._lock:
                stored = self._media.pop(ref, None)
            if stored is None:
                raise TaskError("mediaNotFound", f"no media with UUID {ref}", "media", 404)
            stored.path.unlink(missing_ok=True)
            self._commit_uuid(task_uuid)
            return {
                "taskType": "mediaStorage",
                "taskUUID": task_uuid,
                "mediaUUID": ref,
                "operation": "delete",
                "deleted": True,
            }
        if operation != "upload":
            raise TaskError(
                "invalidParameter",
                f"operation must be one of upload, delete (got {operation!r})",
                "operation",
            )
        mime, data = self._payload(task.get("media"), "media", "invalidMedia")
        try:
            info = media.probe(data, mime)
        except media.MediaError as exc:
            raise TaskError("invalidMedia", f"media: {exc}", "media") from None
        self._commit_uuid(task_uuid)
        stored = self._store(data, info, "mediaStorage", task_uuid)
        return {
            "taskType": "mediaStorage",
            "taskUUID": task_uuid,
            "mediaUUID": stored.uuid,
            "mediaURL": stored.url,
        }

    # -- videoInference

    def _video_inference(self, task: dict[str, Any]) -> dict[str, Any]:
        task_uuid = task.get("taskUUID")
        if isinstance(task_uuid, str) and specmod.is_uuid(task_uuid):
            self._claim_uuid(task)
        sent = task  # recorded as it was sent
        model = task.get("model")
        if isinstance(model, str) and model in specmod.SYNC3_MODEL_ALIASES:
            if model not in self.sync3_model_ids:
                raise TaskError("modelNotFound", f"unknown model {model!r}", "model")
            task = {**task, "model": specmod.SYNC3_MODEL}  # checked under the spec's id
        violations = specmod.validate_task(task, text_only_ovi_allowed=True)
        if (
            self.ovi_requires_image
            and task.get("model") == specmod.OVI_MODEL
            and "inputs" not in task
        ):
            violations.append(
                specmod.SpecViolation(
                    "inputs.image",
                    "inputs.image is required: this server does not accept text-only Ovi requests",
                    "missingParameter",
                )
            )
        if violations:
            raise TaskErrors([TaskError(v.code, v.message, v.parameter) for v in violations])
        assert isinstance(task_uuid, str)
        if task["model"] == specmod.OVI_MODEL:
            render = self._check_ovi(task)
        else:
            render = self._check_sync3(task)
        count = int(task.get("numberResults", 1))
        base_seed = task.get("seed")
        if base_seed is None:
            base_seed = random.randrange(0, 2**32)
        results = [_Result(i, int(base_seed) + i) for i in range(count)]
        self._commit_uuid(task_uuid)
        with self._lock:
            failure = self._job_failures.pop(0) if self._job_failures else None
            self._jobs[task_uuid] = _Job(
                task_uuid,
                copy.deepcopy(sent),
                task["model"],
                time.monotonic(),
                results,
                render,
                injected_failure=failure,
            )
            self._accepted.append(copy.deepcopy(sent))
        log.debug("accepted %s job %s (%d result(s))", sent["model"], task_uuid, count)
        return {"taskType": "videoInference", "taskUUID": task_uuid}

    def _check_media(self, task: dict[str, Any]) -> dict[str, StoredMedia | _Remote | _Inline]:
        """The referenced media exist and satisfy the spec's media rules (``check_media``)."""
        resolved, problems = self._resolve_refs(task)

        def lookup(ref: str) -> specmod.MediaFacts | None:
            item = resolved.get(ref)
            if isinstance(item, StoredMedia):
                return _facts(item.info)
            if isinstance(item, _Inline):
                return item.facts
            return None  # remote: unknown until the service downloads it

        violations = specmod.check_media(task, lookup)
        problems += [TaskError(v.code, v.message, v.parameter) for v in violations]
        if problems:
            raise TaskErrors(problems)
        return resolved

    def _check_ovi(self, task: dict[str, Any]) -> dict[str, Any]:
        resolved = self._check_media(task)
        image: Any = None
        inputs = task.get("inputs")
        if isinstance(inputs, dict) and "image" in inputs:
            item = resolved[inputs["image"]]
            if isinstance(item, StoredMedia):
                image = item.path.read_bytes()
            elif isinstance(item, _Inline):
                image = item.data
            else:
                image = _Synthetic("image", item.url, 0.0)
        return {
            "image": image,
            "fps": int(task.get("fps", 24)),
            "format": task.get("outputFormat", "MP4"),
        }

    def _check_sync3(self, task: dict[str, Any]) -> dict[str, Any]:
        resolved = self._check_media(task)
        inputs = task["inputs"]
        settings = task.get("settings") or {}
        segments = settings.get("segments") or []
        video = resolved[inputs["video"]]
        if isinstance(video, StoredMedia):
            assert video.info.frames and video.info.fps  # check_media: a decoded video
            frames, fps = video.info.frames, video.info.fps
            video_source: Any = video.path
        else:
            # A remote video: long enough for every segment, frame number and box.
            assert isinstance(video, _Remote)  # sync-3 media are never inline (spec)
            asd = settings.get("activeSpeakerDetection") or {}
            seconds = max([SYNTHETIC_SECONDS] + [float(seg["endTime"]) for seg in segments])
            fps = float(media.SYNTHETIC_FPS)
            cap = round(SYNTHETIC_MAX_SECONDS * fps)
            frames = max(round(min(seconds, SYNTHETIC_MAX_SECONDS) * fps),
                         min(int(asd.get("frameNumber", 0)) + 1, cap),
                         min(len(asd.get("boundingBoxes", [])), cap))
            video_source = _Synthetic("video", video.url, frames / fps)
        duration = frames / fps
        render: dict[str, Any] = {
            "video": video_source,
            "frames": frames,
            "duration": duration,
            "format": task.get("outputFormat", "MP4"),
        }

        def audio_source(ref: str, seconds: float) -> Any:
            item = resolved[ref]
            if isinstance(item, StoredMedia):
                return item.path
            length = min(max(seconds, 0.5), SYNTHETIC_MAX_SECONDS)
            return _Synthetic("audio", ref, length)

        if "audio" in inputs:
            render["audio"] = audio_source(inputs["audio"], duration)
            render["syncMode"] = settings.get("syncMode", "cut_off")
        elif "speech" in task:
            render["speech"] = dict(task["speech"])
        else:
            # Times past a remote (synthetic) medium's end are clipped to it: the render
            # must not overflow on a valid 1e308.
            def clip(value: Any, limit: float) -> float | None:
                return None if value is None else min(float(value), limit)

            render["segments"] = [
                (
                    audio_source(seg["audio"], max(float(seg.get("audioEndTime", 0.0)),
                                                   seg["endTime"] - seg["startTime"])),
                    clip(seg["startTime"], duration),
                    clip(seg["endTime"], duration),
                    clip(seg.get("audioStartTime"), SYNTHETIC_MAX_SECONDS),
                    clip(seg.get("audioEndTime"), SYNTHETIC_MAX_SECONDS),
                )
                for seg in segments
            ]
        return render

    # -- getResponse and the jobs

    def _get_response(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str) or not task_uuid:
            raise TaskError("missingParameter", "taskUUID is required", "taskUUID")
        with self._lock:
            job = self._jobs.get(task_uuid)
            expired = task_uuid in self._expired
        if expired:
            raise TaskError("taskExpired", f"the task {task_uuid} has expired", "taskUUID", 404)
        if job is None:
            raise TaskError("taskNotFound", f"no task with taskUUID {task_uuid}", "taskUUID", 404)
        with job.lock:
            return self._advance(job)

    def _due(self, job: _Job, index: int) -> float:
        return job.created + self.job_seconds * (1 + index * 0.25)

    def _advance(self, job: _Job) -> list[dict[str, Any]]:
        now = time.monotonic()
        failure = job.injected_failure
        fail_at = int(failure.get("after", 0)) if failure else 0
        if job.error is None:
            for result in job.results:
                if failure is not None and result.index >= fail_at:
                    break  # the injected failure comes first
                if not result.done and now >= self._due(job, result.index):
                    try:
                        self._render(job, result)
                    except Exception as exc:
                        log.exception("test double could not render %s", job.task_uuid)
                        job.error = {
                            "shape": "errors",
                            "code": "inferenceError",
                            "message": f"generation failed: {exc}",
                        }
                        break
        if job.error is None and failure is not None and now >= self._due(job, fail_at):
            job.error = dict(failure)
        if job.error is not None:
            err = job.error
            if err["shape"] == "data":
                done = [self._success_item(job, r) for r in job.results if r.done]
                return done + [
                    {
                        "taskType": "videoInference",
                        "taskUUID": job.task_uuid,
                        "status": "error",
                        "error": {"code": err["code"], "message": err["message"]},
                    }
                ]
            raise TaskError(
                err["code"], err["message"], "", 400, taskType="videoInference", status="error"
            )
        items: list[dict[str, Any]] = []
        for result in sorted(job.results, key=lambda r: (not r.done, r.index)):
            if result.done:
                item = self._success_item(job, result)
            else:
                due = self._due(job, result.index) - job.created
                progress = int(100 * (now - job.created) / due) if due > 0 else 99
                item = {
                    "taskType": "videoInference",
                    "taskUUID": job.task_uuid,
                    "status": "processing",
                    "progress": max(0, min(99, progress)),
                }
            items.append(item)
        return items

    def _success_item(self, job: _Job, result: _Result) -> dict[str, Any]:
        uuid_key, url_key = (
            ("videoUUID", "videoURL") if self.result_keys == "video" else ("mediaUUID", "mediaURL")
        )
        item: dict[str, Any] = {
            "taskType": "videoInference",
            "taskUUID": job.task_uuid,
            "status": "success",
            uuid_key: result.uuid,
            url_key: result.url,
            "seed": result.seed,
        }
        if job.task.get("includeCost"):
            item["cost"] = self.cost_per_result
        return item

    def _render(self, job: _Job, result: _Result) -> None:
        assert self.storage_dir is not None
        fmt = str(job.render["format"]).upper()
        ext = media.EXT_FOR_FORMAT[fmt]
        result_uuid = str(uuidlib.uuid4())
        path = self.storage_dir / f"{result_uuid}.{ext}"
        self._materialize_render(job.render)
        if job.model == specmod.OVI_MODEL:
            media.render_ovi(
                path,
                seed=result.seed,
                fps=job.render["fps"],
                size=self.video_size,
                fmt=fmt,
                image=job.render["image"],
                duration=self.ovi_duration,
            )
        else:
            audio, rate = self._sync3_audio(job.render)
            media.render_sync3(
                path,
                video=job.render["video"],
                frames=job.render["frames"],
                fmt=fmt,
                audio=audio,
                audio_rate=rate,
            )
        info = media.probe_file(path, media.mime_for_ext(ext))
        stored = StoredMedia(
            result_uuid, path, info, "result", f"{self.files_url}/{path.name}", job.task_uuid
        )
        with self._lock:
            self._media[result_uuid] = stored
        result.uuid, result.url, result.done = result_uuid, stored.url, True

    def _materialize_render(self, render: dict[str, Any]) -> None:
        """Make the synthetic media a job needs (once; the caller holds the job's lock)."""
        for key in ("image", "video", "audio"):
            if isinstance(render.get(key), _Synthetic):
                render[key] = self._materialize(render[key])
        segments = render.get("segments")
        if segments and isinstance(segments[0], tuple):
            render["segments"] = [
                media.SegmentSource(self._materialize(src), *rest) for src, *rest in segments
            ]

    @staticmethod
    def _sync3_audio(render: dict[str, Any]) -> tuple[np.ndarray, int]:
        duration = float(render["duration"])
        if "audio" in render:
            audio, rate = media.load_audio(render["audio"])
            n = max(1, round(duration * rate))
            return media.fit_audio(audio, n, render["syncMode"]), rate
        if "speech" in render:
            speech = render["speech"]
            return media.speech_audio(speech["text"], speech.get("voice", "auto"), duration)
        return media.segments_audio(render["segments"], duration)


class TaskErrors(Exception):
    """Several errors for one task (e.g. one per spec violation)."""

    def __init__(self, errors: Iterable[TaskError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(e.message for e in self.errors))


__all__ = ["RunwareDouble", "StoredMedia", "TaskError", "sanitize"]
