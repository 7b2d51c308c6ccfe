"""The money records in one SQLite file: the jobs ledger, the journal, cache entries,
result files and upload memory.

One file, ``store.sqlite`` in the cache folder (stdlib ``sqlite3``, WAL mode, a
``schema_version`` table). Result media stay plain files under ``results/``; the store
only names them. Every row is keyed by the API endpoint (``scheme://host:port`` of
``RUNWARE_API_URL``), so one endpoint's jobs, results and uploads are never used for
another.

Tables (portable SQL: ``?`` parameters, ``ON CONFLICT ... DO UPDATE``; nothing SQLite-only
outside ``_SqliteFile``, so a deployment of several workers can swap in a server database):

- ``jobs``: one row per paid job, finished or not (the ledger a spend panel lists):
  taskUUID, endpoint, fingerprint, model, the task sent, node / prompt id, submitted /
  finished times, status, cost, error text.
- ``journal``: (endpoint, fingerprint) -> the taskUUID of a submission that may be running
  on Runware. At most one per request: a second run resumes it instead of paying again.
- ``entries``: (endpoint, fingerprint) -> the taskUUID whose results serve that request.
- ``results``: every paid result file (also older takes, partial results of a failed job,
  Fetch Result recoveries), by taskUUID, with size, sha256 and last use.
- ``uploads``: (endpoint, content hash) -> the upload UUID Runware gave that content.
- ``request_pricing``: (endpoint, fingerprint) -> what the request is billed by (results, or
  seconds of input video) and how many, the settings that may change its price, and the
  estimate made at its last submission (see ``spend.py``; every take shares them).

Everything read back is data, never instructions: a row whose fields have the wrong type
or shape is skipped with a warning, a file name must be one the pack itself gives, and a
file that is not a valid store (or has a newer schema) is set aside and a new one started;
whatever can still be read from the old file is copied over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import re
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from .errors import RunwareError
from .logs import get_logger

log = get_logger()

T = TypeVar("T")

SCHEMA_VERSION = 1
STORE_NAME = "store.sqlite"
DEFAULT_ENDPOINT = "https://api.runware.ai:443"

# Job statuses (the ledger's vocabulary).
SUBMITTING = "submitting"  # claimed in the journal; the submission may or may not have arrived
RUNNING = "running"        # accepted by Runware, being polled
UNKNOWN = "unknown"        # nobody is watching it (time limit, cancel, an unclear answer):
#                            still in the journal, the next run of the request resumes it
SUCCEEDED = "succeeded"    # results downloaded and verified
RECOVERED = "recovered"    # results fetched by taskUUID for a job the store did not know
FAILED = "failed"          # Runware said the job failed (partial results, if any, kept)
NOT_FOUND = "not_found"    # Runware does not know the task (never arrived, or expired)
REFUSED = "refused"        # the submission was refused: never accepted, never billed
PENDING_STATUSES = (SUBMITTING, RUNNING, UNKNOWN)
# The owner of a 0.1 journal entry imported at more than one endpoint (0.1 kept no
# endpoint): one job, one row per endpoint, until an endpoint answers for its own row.
LEGACY_COPY = "0.1 journal, endpoint unknown"
STATUSES = PENDING_STATUSES + (SUCCEEDED, RECOVERED, FAILED, NOT_FOUND, REFUSED)

EXTENSIONS = ("mp4", "webm", "mov")
# The only result file names the pack writes: <taskUUID>-<position>[-<random>].<ext>
RESULT_NAME = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"-\d{1,3}(?:-[0-9a-f]{8})?\.(?:mp4|webm|mov)$"
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ENDPOINT = re.compile(r"^https?://[^/\s?#]+:\d{1,5}$")
MAX_COST = 10_000.0  # USD for one job: anything above is not a real price


class StoreError(RunwareError):
    """The store cannot be read or written (disk full, permissions, another process
    holding it too long). Raised before anything is paid whenever it matters."""


def api_endpoint(api_url: str) -> str:
    """``scheme://host:port`` of an API URL: what every record is keyed by."""
    parts = urlsplit(api_url.strip())
    scheme = (parts.scheme or "https").lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    return f"{scheme}://{host}:{port}"


# -- records ------------------------------------------------------------------------------


@dataclass
class JobRecord:
    """One row of the ledger."""

    endpoint: str
    task_uuid: str
    fingerprint: str | None
    model: str | None
    task: dict[str, Any] | None
    extension: str
    number_results: int  # 0 = unknown (a job recovered by its taskUUID alone)
    submitted: float
    status: str
    node_id: str | None = None
    prompt_id: str | None = None
    owner: str | None = None
    finished: float | None = None
    cost: float | None = None
    error: str | None = None


@dataclass
class ResultRecord:
    """One paid result file under results/."""

    file: str
    endpoint: str
    task_uuid: str
    position: int
    video_uuid: str
    url: str
    seed: int | None = None
    cost: float | None = None
    index: int | None = None
    size: int = 0
    sha256: str = ""
    created: float = 0.0
    last_used: float = 0.0


@dataclass
class LedgerRow:
    """A ledger row as stored: the job, what its request is billed by (checked by
    spend.py, which knows the units), whether it is journaled, and its result files."""

    job: JobRecord
    unit: Any = None
    units: Any = None
    price_key: Any = None
    estimate: Any = None
    journaled: bool = False
    results: list[ResultRecord] = field(default_factory=list)


JOB_COLUMNS = ("endpoint", "task_uuid", "fingerprint", "model", "task", "extension",
               "number_results", "submitted", "status", "node_id", "prompt_id", "owner",
               "finished", "cost", "error")
RESULT_COLUMNS = ("file", "endpoint", "task_uuid", "position", "video_uuid", "url", "seed",
                  "cost", "result_index", "size", "sha256", "created", "last_used")
TABLE_COLUMNS = {
    "schema_version": ("version",),
    "meta": ("name", "value"),
    "jobs": JOB_COLUMNS,
    "journal": ("endpoint", "fingerprint", "task_uuid"),
    "entries": ("endpoint", "fingerprint", "task_uuid"),
    "results": RESULT_COLUMNS,
    "uploads": ("endpoint", "content_key", "upload_uuid", "created"),
    "request_pricing": ("endpoint", "fingerprint", "unit", "units", "price_key", "estimate",
                        "details", "updated"),
}

# A ledger row: the job, its request's pricing, and whether it is journaled.
_LEDGER_SELECT = (", ".join(f"jobs.{c}" for c in JOB_COLUMNS)
                  + ", p.unit, p.units, p.price_key, p.estimate, (SELECT COUNT(*) FROM "
                  "journal WHERE journal.endpoint = jobs.endpoint AND journal.task_uuid = "
                  "jobs.task_uuid) FROM jobs LEFT JOIN request_pricing p ON p.endpoint = "
                  "jobs.endpoint AND p.fingerprint = jobs.fingerprint")

# Added after the first stores were written: created in any store that lacks it.
PRICING_TABLE = """CREATE TABLE IF NOT EXISTS request_pricing (
        endpoint VARCHAR(255) NOT NULL,
        fingerprint VARCHAR(64) NOT NULL,
        unit VARCHAR(16) NOT NULL,
        units DOUBLE PRECISION NOT NULL,
        price_key VARCHAR(64) NOT NULL,
        estimate DOUBLE PRECISION,
        details TEXT,
        updated DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (endpoint, fingerprint))"""

SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE meta (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE jobs (
        endpoint VARCHAR(255) NOT NULL,
        task_uuid VARCHAR(64) NOT NULL,
        fingerprint VARCHAR(64),
        model VARCHAR(128),
        task TEXT,
        extension VARCHAR(8) NOT NULL,
        number_results INTEGER NOT NULL,
        submitted DOUBLE PRECISION NOT NULL,
        status VARCHAR(16) NOT NULL,
        node_id VARCHAR(128),
        prompt_id VARCHAR(128),
        owner VARCHAR(255),
        finished DOUBLE PRECISION,
        cost DOUBLE PRECISION,
        error TEXT,
        PRIMARY KEY (endpoint, task_uuid))""",
    "CREATE INDEX jobs_by_fingerprint ON jobs (endpoint, fingerprint)",
    "CREATE INDEX jobs_by_submitted ON jobs (submitted)",
    """CREATE TABLE journal (
        endpoint VARCHAR(255) NOT NULL,
        fingerprint VARCHAR(64) NOT NULL,
        task_uuid VARCHAR(64) NOT NULL,
        PRIMARY KEY (endpoint, fingerprint))""",
    """CREATE TABLE entries (
        endpoint VARCHAR(255) NOT NULL,
        fingerprint VARCHAR(64) NOT NULL,
        task_uuid VARCHAR(64) NOT NULL,
        PRIMARY KEY (endpoint, fingerprint))""",
    """CREATE TABLE results (
        file VARCHAR(128) NOT NULL PRIMARY KEY,
        endpoint VARCHAR(255) NOT NULL,
        task_uuid VARCHAR(64) NOT NULL,
        position INTEGER NOT NULL,
        video_uuid VARCHAR(255),
        url TEXT,
        seed BIGINT,
        cost DOUBLE PRECISION,
        result_index INTEGER,
        size BIGINT NOT NULL,
        sha256 VARCHAR(64) NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        last_used DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX results_by_task ON results (endpoint, task_uuid)",
    """CREATE TABLE uploads (
        endpoint VARCHAR(255) NOT NULL,
        content_key VARCHAR(255) NOT NULL,
        upload_uuid VARCHAR(255) NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (endpoint, content_key))""",
    PRICING_TABLE,
)


# -- validation of what is read back -------------------------------------------------------

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(key: str, message: str, *args: object) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(message, *args)


def is_task_uuid(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_text(value: Any, limit: int = 4096) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _opt_text(value: Any, limit: int = 4096) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError("not text")
    return value


def _int(value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError("not an integer in range")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def clean_cost(value: Any) -> float | None:
    """A usable price, or None (NaN, infinite, negative, absurd, not a number)."""
    try:
        cost = _float(value)
    except ValueError:
        return None
    return cost if 0.0 <= cost <= MAX_COST else None


def safe_result_name(name: Any) -> bool:
    return isinstance(name, str) and bool(RESULT_NAME.match(name))


def _job_from_row(row: tuple) -> JobRecord | None:
    data = dict(zip(JOB_COLUMNS, row, strict=False))
    try:
        endpoint, task_uuid = data["endpoint"], data["task_uuid"]
        if not (isinstance(endpoint, str) and _ENDPOINT.match(endpoint)):
            raise ValueError("endpoint")
        if not is_task_uuid(task_uuid):
            raise ValueError("taskUUID")
        fingerprint = data["fingerprint"]
        if fingerprint is not None and not (isinstance(fingerprint, str)
                                            and _HEX64.match(fingerprint)):
            raise ValueError("fingerprint")
        task = data["task"]
        if task is not None:
            task = json.loads(task) if isinstance(task, str) else None
            if not isinstance(task, dict):
                raise ValueError("task")
        extension = data["extension"]
        if extension not in EXTENSIONS:
            raise ValueError("extension")
        status = data["status"]
        if status not in STATUSES:
            raise ValueError("status")
        finished = data["finished"]
        cost = data["cost"]
        return JobRecord(
            endpoint=endpoint, task_uuid=task_uuid, fingerprint=fingerprint,
            model=_opt_text(data["model"], 128), task=task, extension=extension,
            number_results=_int(data["number_results"], 0, 64),
            submitted=_float(data["submitted"]), status=status,
            node_id=_opt_text(data["node_id"], 128), prompt_id=_opt_text(data["prompt_id"], 128),
            owner=_opt_text(data["owner"], 255),
            finished=None if finished is None else _float(finished),
            cost=None if cost is None else clean_cost(cost),
            error=_opt_text(data["error"], 100_000),
        )
    except (ValueError, TypeError) as exc:
        _warn_once(f"job:{data.get('endpoint')}:{data.get('task_uuid')}",
                   "Runware store: skipping a malformed job record (%s)", exc)
        return None


def _result_from_row(row: tuple) -> ResultRecord | None:
    data = dict(zip(RESULT_COLUMNS, row, strict=False))
    try:
        if not safe_result_name(data["file"]):
            raise ValueError("file name")
        if not (isinstance(data["endpoint"], str) and _ENDPOINT.match(data["endpoint"])):
            raise ValueError("endpoint")
        if not is_task_uuid(data["task_uuid"]):
            raise ValueError("taskUUID")
        sha = data["sha256"]
        if not (sha == "" or (isinstance(sha, str) and _HEX64.match(sha))):
            raise ValueError("sha256")
        seed, index, cost = data["seed"], data["result_index"], data["cost"]
        return ResultRecord(
            file=data["file"], endpoint=data["endpoint"], task_uuid=data["task_uuid"],
            position=_int(data["position"], 0, 999),
            video_uuid=_opt_text(data["video_uuid"], 255) or "",
            url=_opt_text(data["url"], 8192) or "",
            seed=None if seed is None else _int(seed, 0, 2**63 - 1),
            cost=None if cost is None else clean_cost(cost),
            index=None if index is None else _int(index, 0, 999),
            size=_int(data["size"], 0, 2**62), sha256=sha,
            created=_float(data["created"]), last_used=_float(data["last_used"]),
        )
    except (ValueError, TypeError) as exc:
        _warn_once(f"result:{data.get('file')!r}",
                   "Runware store: skipping a malformed result record %r (%s)",
                   str(data.get("file"))[:80], exc)
        return None


# -- the SQLite backend -----------------------------------------------------------------------


class Connection(Protocol):
    """What Store's queries need of a database connection (DB-API ``execute``)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


class _Unusable(Exception):
    """The file at the store's path is not a store this version can use."""


def _file_ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


@contextlib.contextmanager
def _path_lock(path: Path, wait: float = 10.0) -> Iterator[None]:
    """A short cross-process lock (setting a damaged store aside); never hangs."""
    fd = None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError:
        fd = None  # a planted directory or link: go on without it
    deadline = time.monotonic() + wait
    locked = False
    try:
        while fd is not None and not locked:
            try:
                lock_fd(fd)
                locked = True
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        yield
    finally:
        if fd is not None:
            if locked:
                with contextlib.suppress(OSError):
                    unlock_fd(fd)
            os.close(fd)


class _SqliteFile:
    """The one SQLite file behind Store, and everything SQLite-only: connecting, pragmas,
    transactions, sorting SQLite's errors, checking the schema and its version, and
    setting aside a file that is not a usable store (copying over what it still holds).

    Store hands it functions of a connection that use portable SQL only; a server
    database would be another class with the same ``run`` / ``close`` / ``path``."""

    def __init__(self, path: Path, *, busy_timeout: float,
                 on_create: Callable[[Connection], None],
                 copy_row: Callable[[Connection, str, tuple, tuple], int]) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.on_create = on_create  # runs in the transaction that opens the store
        self.copy_row = copy_row  # one row of a set-aside file -> this store (1 if copied)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._ident: tuple[int, int] | None = None
        self._salvage: list[Path] = []

    @staticmethod
    def error_kind(exc: sqlite3.Error) -> str:
        """corrupt | busy | environment | other (Python 3.10 has no sqlite_errorname)."""
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc).lower()
        if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "not a database" in text \
                or "malformed" in text:
            return "corrupt"
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text \
                or "busy" in text:
            return "busy"
        if name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY",
                            "SQLITE_CANTOPEN", "SQLITE_PERM")) or any(
                s in text for s in ("disk is full", "disk i/o", "readonly", "unable to open")):
            return "environment"
        return "other"

    def retry_busy(self, fn: Callable[[], T]) -> T:
        """``fn()``, tried again while SQLite answers "locked" / "busy", up to the timeout."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if self.error_kind(exc) != "busy" or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
            self._conn = None
            self._ident = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and _file_ident(self.path) == self._ident:
            return self._conn
        self.close()  # replaced or removed under us: open what is there now
        for _ in range(4):
            bad = self._planted_paths()
            if bad:
                self._set_aside(_file_ident(self.path), f"{bad} is not a regular file")
                continue
            ident_before = _file_ident(self.path)
            conn = None
            try:
                conn = self._open()
                self._prepare(conn)
            except OSError as exc:
                raise self.env_error(exc) from exc
            except (_Unusable, sqlite3.DatabaseError) as exc:
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                if isinstance(exc, sqlite3.DatabaseError) and self.error_kind(exc) != "corrupt" \
                        and "no such" not in str(exc).lower():
                    raise self.env_error(exc) from exc
                self._set_aside(ident_before, str(exc))
                continue
            self._conn = conn
            self._ident = _file_ident(self.path)
            return conn
        raise StoreError(f"The Runware store {self.path} could not be opened",
                         hint="Check that the cache folder is writable.")

    def _planted_paths(self) -> str | None:
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{self.path}{suffix}")
            if path.is_symlink() or (path.exists() and not path.is_file()):
                return path.name
        return None

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            with contextlib.suppress(FileExistsError):
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | getattr(os, "O_NOFOLLOW", 0), 0o600)
                os.close(fd)
        conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout,
                               isolation_level=None, check_same_thread=False)
        try:
            # Two processes switching a new file to WAL at once: one is told "locked"
            # at once, without SQLite's own wait. Wait here instead.
            self.retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            conn.execute("PRAGMA synchronous=FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check the schema (create it in an empty file), then Store's ``on_create`` and
        whatever a set-aside file still holds. Raises _Unusable for a foreign file."""
        check = conn.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise _Unusable(f"damaged database ({check[0] if check else 'no answer'})")
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)",
                             (SCHEMA_VERSION,))
            elif "schema_version" not in tables:
                raise _Unusable("not a Runware store")
            rows = conn.execute("SELECT version FROM schema_version").fetchall()
            versions = [r[0] for r in rows]
            if len(versions) != 1 or isinstance(versions[0], bool) \
                    or not isinstance(versions[0], int):
                raise _Unusable("unreadable schema version")
            if versions[0] > SCHEMA_VERSION:
                raise _Unusable(f"written by a newer version of the pack (schema "
                                f"{versions[0]}, this version knows {SCHEMA_VERSION})")
            conn.execute(PRICING_TABLE)
            for table, columns in TABLE_COLUMNS.items():
                conn.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE 1 = 0")
            self.on_create(conn)
            while self._salvage:
                self._copy_from(conn, self._salvage.pop(0))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _set_aside(self, bad_ident: tuple[int, int] | None, reason: str) -> None:
        """Move a file that is not a usable store out of the way (with its -wal/-shm)."""
        self.close()
        with _path_lock(self.path.with_name(self.path.name + ".lock")):
            if _file_ident(self.path) != bad_ident:
                return  # another process already did it: use what is there now
            stamp = time.strftime("%Y%m%d-%H%M%S")
            aside = self.path.with_name(
                f"{self.path.name}.set-aside-{stamp}-{uuid.uuid4().hex[:8]}")
            moved = False
            for suffix in ("", "-wal", "-shm"):
                source = Path(f"{self.path}{suffix}")
                if os.path.lexists(source):
                    try:
                        os.replace(source, f"{aside}{suffix}")
                        moved = moved or suffix == ""
                    except OSError as exc:
                        raise self.env_error(exc) from exc
            log.warning(
                "The Runware store %s is not usable (%s). It was set aside as %s and a new "
                "one is started; what can still be read from it is copied over, and paid "
                "results on disk are found again by their taskUUID.",
                self.path, reason, aside.name)
            if moved and not Path(aside).is_symlink():
                self._salvage.append(aside)

    def _copy_from(self, conn: sqlite3.Connection, aside: Path) -> None:
        """Copy what can still be read from a set-aside store (best effort)."""
        try:
            source = sqlite3.connect(f"{aside.resolve().as_uri()}?mode=ro", uri=True,
                                     timeout=1.0)
        except (sqlite3.Error, ValueError, OSError):
            return
        copied = 0
        try:
            for table, columns in TABLE_COLUMNS.items():
                if table in ("schema_version", "meta"):
                    continue
                try:
                    rows = source.execute(
                        f"SELECT {', '.join(columns)} FROM {table}").fetchall()
                except sqlite3.Error:
                    continue
                for row in rows:
                    copied += self.copy_row(conn, table, columns, row)
        finally:
            source.close()
        if copied:
            log.warning("Runware store: copied %d record(s) from the set-aside file %s",
                        copied, aside.name)

    def env_error(self, exc: BaseException) -> StoreError:
        busy = isinstance(exc, sqlite3.Error) and self.error_kind(exc) == "busy"
        return StoreError(
            f"The Runware store {self.path} cannot be used: {exc}. Nothing was submitted",
            hint="Another program has held the store locked for "
            f"{self.busy_timeout:.0f} s; close it (or restart ComfyUI) and queue again."
            if busy else "Free some disk space or fix the folder's permissions "
            "(RUNWARE_CACHE_DIR), then queue again.",
        )

    def run(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        """``fn(connection)`` in one transaction. A damaged file is set aside once and the
        work retried; anything else SQLite cannot do is a StoreError."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                ident = self._ident

                def transaction(conn: sqlite3.Connection = conn) -> T:
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    try:
                        out = fn(conn)
                        conn.execute("COMMIT")
                    except BaseException:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                        raise
                    return out

                try:
                    return self.retry_busy(transaction)
                except sqlite3.DatabaseError as exc:
                    if self.error_kind(exc) == "corrupt" and attempt == 1:
                        self._set_aside(ident, str(exc))
                        continue
                    raise self.env_error(exc) from exc
            raise AssertionError("unreachable")


class Store:
    """The one interface to the money records. Thread-safe; several processes may share
    the file (SQLite serialises writers; every write is one transaction). Its methods use
    portable SQL only, through the backend (``_SqliteFile``)."""

    def __init__(self, path: Path, *, legacy_root: Path | None = None,
                 legacy_endpoint: str | None = None, busy_timeout: float = 30.0) -> None:
        self.legacy_root = legacy_root
        self.legacy_endpoint = legacy_endpoint
        self._db = _SqliteFile(Path(path), busy_timeout=busy_timeout,
                               on_create=self._on_create, copy_row=self._copy_row)

    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def busy_timeout(self) -> float:
        return self._db.busy_timeout

    def close(self) -> None:
        self._db.close()

    def _run(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        return self._db.run(fn, write=write)

    def _on_create(self, conn: Connection) -> None:
        """Once per store: import the old JSON cache."""
        if self._meta(conn, "json_import") is None:
            self._set_meta(conn, "json_import", str(self._import_json(conn)))

    # -- meta -------------------------------------------------------------------------

    @staticmethod
    def _meta(conn: Connection, name: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row and isinstance(row[0], str) else None

    @staticmethod
    def _set_meta(conn: Connection, name: str, value: str) -> None:
        conn.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
                     "DO UPDATE SET value = excluded.value", (name, value))

    def get_meta(self, name: str) -> str | None:
        """A small remembered fact (e.g. which model id an endpoint knows), or None."""
        return self._run(lambda c: self._meta(c, name), write=False)

    def set_meta(self, name: str, value: str) -> None:
        self._run(lambda c: self._set_meta(c, name, value), write=True)

    def ping(self) -> None:
        """Open (create, import, repair) the store now."""
        self._run(lambda c: None, write=False)

    def transaction(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        """``fn(connection)`` in one transaction: for tests and maintenance scripts that
        write rows directly. The pack's own code calls Store's methods."""
        return self._run(fn, write=write)

    # -- jobs and the journal -----------------------------------------------------------

    @staticmethod
    def _job_params(job: JobRecord) -> tuple:
        return (job.endpoint, job.task_uuid, job.fingerprint, job.model,
                None if job.task is None else json.dumps(job.task, sort_keys=True),
                job.extension, job.number_results, job.submitted, job.status, job.node_id,
                job.prompt_id, job.owner, job.finished, job.cost, job.error)

    def _put_job(self, conn: Connection, job: JobRecord) -> None:
        placeholders = ", ".join("?" for _ in JOB_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in JOB_COLUMNS[2:])
        conn.execute(f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({placeholders}) "
                     f"ON CONFLICT (endpoint, task_uuid) DO UPDATE SET {updates}",
                     self._job_params(job))

    @staticmethod
    def _get_job(conn: Connection, endpoint: str, task_uuid: str) -> JobRecord | None:
        row = conn.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs "
                           "WHERE endpoint = ? AND task_uuid = ?",
                           (endpoint, task_uuid)).fetchone()
        return _job_from_row(row) if row else None

    def _journaled(self, conn: Connection, endpoint: str,
                   fingerprint: str) -> JobRecord | None:
        row = conn.execute("SELECT task_uuid FROM journal WHERE endpoint = ? AND "
                           "fingerprint = ?", (endpoint, fingerprint)).fetchone()
        if not row:
            return None
        job = self._get_job(conn, endpoint, row[0]) if isinstance(row[0], str) else None
        if job is None or job.status not in PENDING_STATUSES or job.task is None:
            _warn_once(f"journal:{endpoint}:{fingerprint}:{row[0]!r}",
                       "Runware store: ignoring a journal record without a usable job "
                       "(taskUUID %r)", str(row[0])[:64])
            return None
        return job

    def claim(self, job: JobRecord) -> JobRecord:
        """Journal ``job`` as its request's pending submission, in one transaction.

        Returns ``job``, or the pending job another run claimed first (resume that one:
        a request never has two submissions in flight)."""
        assert job.fingerprint is not None

        def tx(conn: Connection) -> JobRecord:
            existing = self._journaled(conn, job.endpoint, job.fingerprint or "")
            if existing is not None:
                return existing
            conn.execute("DELETE FROM journal WHERE endpoint = ? AND fingerprint = ?",
                         (job.endpoint, job.fingerprint))
            self._put_job(conn, job)
            conn.execute("INSERT INTO journal (endpoint, fingerprint, task_uuid) "
                         "VALUES (?, ?, ?)", (job.endpoint, job.fingerprint, job.task_uuid))
            return job

        return self._run(tx, write=True)

    def journal_get(self, endpoint: str, fingerprint: str) -> JobRecord | None:
        return self._run(lambda c: self._journaled(c, endpoint, fingerprint), write=False)

    def journal_find_task(self, endpoint: str, task_uuid: str) -> JobRecord | None:
        def tx(conn: Connection) -> JobRecord | None:
            row = conn.execute("SELECT fingerprint FROM journal WHERE endpoint = ? AND "
                               "task_uuid = ?", (endpoint, task_uuid)).fetchone()
            return self._journaled(conn, endpoint, row[0]) if row else None

        return self._run(tx, write=False)

    def pending(self) -> list[JobRecord]:
        """Every journaled job (all endpoints)."""
        def tx(conn: Connection) -> list[JobRecord]:
            rows = conn.execute("SELECT endpoint, fingerprint FROM journal").fetchall()
            found = [self._journaled(conn, e, f) for e, f in rows
                     if isinstance(e, str) and isinstance(f, str)]
            return [j for j in found if j is not None]

        return self._run(tx, write=False)

    def job(self, endpoint: str, task_uuid: str) -> JobRecord | None:
        return self._run(lambda c: self._get_job(c, endpoint, task_uuid), write=False)

    def has_jobs(self, endpoint: str, fingerprint: str) -> bool:
        return self._run(lambda c: c.execute(
            "SELECT COUNT(*) FROM jobs WHERE endpoint = ? AND fingerprint = ?",
            (endpoint, fingerprint)).fetchone()[0] > 0, write=False)

    def jobs(self, *, limit: int = 100, offset: int = 0,
             endpoint: str | None = None) -> list[JobRecord]:
        """The ledger, newest first (for a history panel)."""
        where, params = ("WHERE endpoint = ?", [endpoint]) if endpoint else ("", [])
        rows = self._run(lambda c: c.execute(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs {where} "
            "ORDER BY submitted DESC LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall(),
            write=False)
        return [j for j in map(_job_from_row, rows) if j is not None]

    def set_status(self, endpoint: str, task_uuid: str, status: str, *,
                   error: str | None = None, drop_journal: bool = False) -> None:
        """A job's new status; a final one (``drop_journal``) ends its journal entry."""
        assert status in STATUSES
        finished = time.time() if status not in PENDING_STATUSES else None

        def tx(conn: Connection) -> None:
            conn.execute("UPDATE jobs SET status = ?, error = ?, finished = ? "
                         "WHERE endpoint = ? AND task_uuid = ?",
                         (status, error, finished, endpoint, task_uuid))
            if drop_journal:
                conn.execute("DELETE FROM journal WHERE endpoint = ? AND task_uuid = ?",
                             (endpoint, task_uuid))

        self._run(tx, write=True)

    def record_results(self, job: JobRecord, results: list[ResultRecord], *, status: str,
                       entry_fingerprint: str | None = None, error: str | None = None) -> None:
        """One transaction: the result files, the job's final status and cost, the
        request's cache entry (if given), and the end of its journal entry."""
        now = time.time()

        def tx(conn: Connection) -> None:
            for r in results:
                self._put_result(conn, r)
            known = self._get_job(conn, job.endpoint, job.task_uuid)
            row = known or job
            costs = [c for c in (clean_cost(r.cost) for r in self._task_results(
                conn, job.endpoint, job.task_uuid)) if c is not None]
            row.status = status
            row.finished = now
            row.cost = round(sum(costs), 6) if costs else row.cost
            row.error = error
            if row.number_results <= 0:
                row.number_results = len(results)
            self._put_job(conn, row)
            if entry_fingerprint is not None:
                conn.execute(
                    "INSERT INTO entries (endpoint, fingerprint, task_uuid) VALUES (?, ?, ?) "
                    "ON CONFLICT (endpoint, fingerprint) DO UPDATE SET "
                    "task_uuid = excluded.task_uuid",
                    (job.endpoint, entry_fingerprint, job.task_uuid))
            conn.execute("DELETE FROM journal WHERE endpoint = ? AND task_uuid = ?",
                         (job.endpoint, job.task_uuid))

        self._run(tx, write=True)

    # -- the ledger with pricing (spend.py does the arithmetic) ----------------------------

    def put_job(self, job: JobRecord) -> None:
        """Write a ledger row as it is (tests, and tools that repair a ledger)."""
        self._run(lambda c: self._put_job(c, job), write=True)

    def ledger(self, *, endpoint: str | None = None, since: float | None = None,
               costed: bool = False, limit: int = 100_000, offset: int = 0,
               results: bool = False) -> list[LedgerRow]:
        """Ledger rows, newest first: at ``endpoint`` (None: all), submitted since
        ``since``; ``costed``: only finished jobs with a known cost; with result files if
        asked."""
        where, params = self._ledger_filter(endpoint, since, costed)

        def tx(conn: Connection) -> list[LedgerRow]:
            rows = conn.execute(f"SELECT {_LEDGER_SELECT} WHERE {where} ORDER BY "
                                "jobs.submitted DESC LIMIT ? OFFSET ?",
                                (*params, limit, offset)).fetchall()
            found = []
            for row in rows:
                job = _job_from_row(row[:len(JOB_COLUMNS)])
                if job is None:
                    continue
                unit, units, price_key, estimate, journaled = row[len(JOB_COLUMNS):]
                item = LedgerRow(job, unit, units, price_key, estimate, bool(journaled))
                if results:
                    item.results = self._task_results(conn, job.endpoint, job.task_uuid)
                found.append(item)
            return found

        return self._run(tx, write=False)

    def ledger_count(self, endpoint: str | None = None) -> int:
        """How many jobs the ledger holds (at ``endpoint``; None: all)."""
        where, params = self._ledger_filter(endpoint, None, False)
        return int(self._run(lambda c: c.execute(
            f"SELECT COUNT(*) FROM jobs WHERE {where}", params).fetchone()[0], write=False))

    @staticmethod
    def _ledger_filter(endpoint: str | None, since: float | None,
                       costed: bool) -> tuple[str, tuple]:
        clauses: list[str] = ["1 = 1"]
        params: list[Any] = []
        if endpoint:
            clauses.append("jobs.endpoint = ?")
            params.append(endpoint)
        if since is not None:
            clauses.append("jobs.submitted >= ?")
            params.append(since)
        if costed:
            clauses.append("jobs.cost IS NOT NULL AND jobs.status IN (?, ?)")
            params += [SUCCEEDED, RECOVERED]
        return " AND ".join(clauses), tuple(params)

    def put_pricing(self, endpoint: str, fingerprint: str, *, unit: str, units: float,
                    price_key: str, estimate: float | None, details: str | None,
                    when: float) -> None:
        """What a request is billed by and its estimate at its last submission."""
        self._run(lambda c: c.execute(
            "INSERT INTO request_pricing (endpoint, fingerprint, unit, units, price_key, "
            "estimate, details, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
            "(endpoint, fingerprint) DO UPDATE SET unit = excluded.unit, units = "
            "excluded.units, price_key = excluded.price_key, estimate = excluded.estimate, "
            "details = excluded.details, updated = excluded.updated",
            (endpoint, fingerprint, unit, units, price_key, clean_cost(estimate), details,
             when)), write=True)

    def pricing_details(self, endpoint: str, task_uuid: str) -> str | None:
        """The estimate (JSON text) recorded for this job's request, or None."""
        row = self._run(lambda c: c.execute(
            "SELECT p.details FROM jobs JOIN request_pricing p ON p.endpoint = jobs.endpoint "
            "AND p.fingerprint = jobs.fingerprint WHERE jobs.endpoint = ? AND "
            "jobs.task_uuid = ?", (endpoint, task_uuid)).fetchone(), write=False)
        return row[0] if row and isinstance(row[0], str) else None

    # -- results and cache entries ----------------------------------------------------------

    @staticmethod
    def _put_result(conn: Connection, r: ResultRecord) -> None:
        placeholders = ", ".join("?" for _ in RESULT_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in RESULT_COLUMNS[1:])
        conn.execute(
            f"INSERT INTO results ({', '.join(RESULT_COLUMNS)}) VALUES ({placeholders}) "
            f"ON CONFLICT (file) DO UPDATE SET {updates}",
            (r.file, r.endpoint, r.task_uuid, r.position, r.video_uuid, r.url, r.seed,
             clean_cost(r.cost), r.index, r.size, r.sha256, r.created, r.last_used))

    @staticmethod
    def _task_results(conn: Connection, endpoint: str,
                      task_uuid: str) -> list[ResultRecord]:
        rows = conn.execute(f"SELECT {', '.join(RESULT_COLUMNS)} FROM results WHERE "
                            "endpoint = ? AND task_uuid = ?", (endpoint, task_uuid)).fetchall()
        found = [r for r in map(_result_from_row, rows) if r is not None]
        return sorted(found, key=lambda r: r.position)

    def results_of(self, endpoint: str, task_uuid: str) -> list[ResultRecord]:
        return self._run(lambda c: self._task_results(c, endpoint, task_uuid), write=False)

    def entry(self, endpoint: str, fingerprint: str) -> tuple[str, list[ResultRecord]] | None:
        """The taskUUID serving a request, and its result files."""
        def tx(conn: Connection) -> tuple[str, list[ResultRecord]] | None:
            row = conn.execute("SELECT task_uuid FROM entries WHERE endpoint = ? AND "
                               "fingerprint = ?", (endpoint, fingerprint)).fetchone()
            if not row or not is_task_uuid(row[0]):
                return None
            return row[0], self._task_results(conn, endpoint, row[0])

        return self._run(tx, write=False)

    def forget_entry(self, endpoint: str, fingerprint: str) -> None:
        self._run(lambda c: c.execute("DELETE FROM entries WHERE endpoint = ? AND "
                                      "fingerprint = ?", (endpoint, fingerprint)), write=True)

    def put_results(self, results: Iterable[ResultRecord]) -> None:
        items = list(results)

        def tx(conn: Connection) -> None:
            for r in items:
                self._put_result(conn, r)

        self._run(tx, write=True)

    def touch(self, endpoint: str, task_uuid: str, when: float | None = None) -> None:
        self._run(lambda c: c.execute(
            "UPDATE results SET last_used = ? WHERE endpoint = ? AND task_uuid = ?",
            (when or time.time(), endpoint, task_uuid)), write=True)

    def all_results(self) -> list[ResultRecord]:
        rows = self._run(lambda c: c.execute(
            f"SELECT {', '.join(RESULT_COLUMNS)} FROM results").fetchall(), write=False)
        return [r for r in map(_result_from_row, rows) if r is not None]

    def drop_results(self, files: Iterable[str]) -> None:
        """Forget result files (rows only; the caller deletes the files)."""
        names = list(files)

        def tx(conn: Connection) -> None:
            for name in names:
                conn.execute("DELETE FROM results WHERE file = ?", (name,))

        self._run(tx, write=True)

    def drop_malformed_results(self) -> int:
        """Delete result rows that fail validation (never their files)."""
        def tx(conn: Connection) -> int:
            rows = conn.execute(f"SELECT {', '.join(RESULT_COLUMNS)} FROM results").fetchall()
            bad = [row[0] for row in rows if _result_from_row(row) is None]
            for name in bad:
                conn.execute("DELETE FROM results WHERE file = ?", (name,))
            return len(bad)

        return self._run(tx, write=True)

    # -- upload memory ---------------------------------------------------------------------

    def upload_get(self, endpoint: str, key: str, max_age: float) -> str | None:
        def tx(conn: Connection) -> str | None:
            row = conn.execute("SELECT upload_uuid, created FROM uploads WHERE endpoint = ? "
                               "AND content_key = ?", (endpoint, key)).fetchone()
            if not row:
                return None
            try:
                upload_uuid, created = _opt_text(row[0], 255), _float(row[1])
            except (ValueError, TypeError):
                upload_uuid, created = None, 0.0
            if not upload_uuid or time.time() - created > max_age:
                conn.execute("DELETE FROM uploads WHERE endpoint = ? AND content_key = ?",
                             (endpoint, key))
                return None
            return upload_uuid

        return self._run(tx, write=True)

    def upload_put(self, endpoint: str, key: str, upload_uuid: str) -> None:
        self._run(lambda c: c.execute(
            "INSERT INTO uploads (endpoint, content_key, upload_uuid, created) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (endpoint, content_key) DO UPDATE SET "
            "upload_uuid = excluded.upload_uuid, created = excluded.created",
            (endpoint, key, upload_uuid, time.time())), write=True)

    def upload_forget(self, endpoint: str, upload_uuid: str) -> None:
        self._run(lambda c: c.execute(
            "DELETE FROM uploads WHERE endpoint = ? AND upload_uuid = ?",
            (endpoint, upload_uuid)), write=True)

    # -- the old JSON cache and set-aside files ---------------------------------------------

    def _import_json(self, conn: Connection) -> int:
        """Copy the 0.1 JSON cache (entries/, journal/, uploads.json) in, once."""
        root = self.legacy_root
        if root is None:
            return 0
        count = 0
        fallback = self.legacy_endpoint or DEFAULT_ENDPOINT
        for path in sorted((root / "entries").glob("*.json")):
            count += self._import_legacy(conn, path, _legacy_entry, (fallback,))
        # 0.1 did not record where a journaled job was sent. Its jobs went to whatever
        # RUNWARE_API_URL was then, most likely the real API: keyed only to the endpoint
        # set now (say the local double), a real job still running would be resumed there,
        # answered taskNotFound and dropped, and its paid result never collected. So each
        # is journaled at both; only an answer at an endpoint ends that endpoint's copy.
        journal_endpoints = tuple(dict.fromkeys((fallback, DEFAULT_ENDPOINT)))
        for path in sorted((root / "journal").glob("*.json")):
            count += self._import_legacy(conn, path, _legacy_journal, journal_endpoints)
        uploads = _read_legacy(root / "uploads.json")
        if isinstance(uploads, dict):
            for key, value in uploads.items():
                try:
                    url, content = key.split("|", 1)
                    upload_uuid = value["uuid"]
                    created = _float(value.get("at", 0))
                    if not (_is_text(content, 255) and _is_text(upload_uuid, 255)):
                        raise ValueError("upload")
                except (ValueError, TypeError, AttributeError, KeyError):
                    _warn_once(f"legacy-upload:{key!r}",
                               "Runware store: skipping a malformed old upload record")
                    continue
                conn.execute("INSERT INTO uploads (endpoint, content_key, upload_uuid, created)"
                             " VALUES (?, ?, ?, ?) ON CONFLICT (endpoint, content_key) "
                             "DO NOTHING", (api_endpoint(url), content, upload_uuid, created))
                count += 1
        if count:
            log.info("Runware store: imported %d record(s) from the old JSON cache in %s",
                     count, root)
        return count

    def _import_legacy(self, conn: Connection, path: Path,
                       convert: Callable[[dict, str], tuple[JobRecord, list[ResultRecord],
                                                           str | None]],
                       endpoints: tuple[str, ...]) -> int:
        data = _read_legacy(path)
        copies = []
        try:
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            for endpoint in endpoints:
                copies.append(convert(data, endpoint))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            _warn_once(f"legacy:{path}", "Runware store: skipping the malformed old cache "
                       "file %s (%s)", path.name, exc)
            return 0
        for job, results, journal in copies:
            if len(copies) > 1:
                job.owner = LEGACY_COPY  # spend.py: counted only where it is found
            self._put_job(conn, job)
            for r in results:
                self._put_result(conn, r)
            if job.fingerprint is not None:
                table = "journal" if journal else "entries"
                conn.execute(f"INSERT INTO {table} (endpoint, fingerprint, task_uuid) VALUES "
                             f"(?, ?, ?) ON CONFLICT (endpoint, fingerprint) DO NOTHING",
                             (job.endpoint, job.fingerprint, job.task_uuid))
        return 1

    def _copy_row(self, conn: Connection, table: str, columns: tuple,
                  row: tuple) -> int:
        if table == "jobs":
            job = _job_from_row(row)
            if job is None:
                return 0
            values: tuple = self._job_params(job)
        elif table == "results":
            result = _result_from_row(row)
            if result is None:
                return 0
            values = row
        else:
            if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                       for v in row):
                return 0
            values = row
        placeholders = ", ".join("?" for _ in columns)
        conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) "
                     "ON CONFLICT DO NOTHING", values)
        return 1


def owner_id() -> str:
    """Who runs a job: host and process (for a panel telling live jobs from stale ones)."""
    return f"{platform.node()}:{os.getpid()}"


# -- the 0.1 JSON layout ------------------------------------------------------------------------


def _read_legacy(path: Path) -> Any:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def legacy_fingerprint_to(endpoint: str, old: str) -> str:
    """The fingerprint a 0.1 record has in this version (see ``request_fingerprint``)."""
    return hashlib.sha256(f"{endpoint}|{old}".encode()).hexdigest()


def _guess_endpoint(url: str, fallback: str) -> str:
    """0.1 kept no endpoint. The local double serves results from its own API origin
    (http, or a loopback / private host); real results come over https from Runware."""
    import ipaddress

    parts = urlsplit(url)
    host = parts.hostname or ""
    local = parts.scheme == "http" or host == "localhost"
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host)
        local = local or address.is_loopback or address.is_private
    if local:
        return api_endpoint(url)
    return fallback if not fallback.startswith("http://") else DEFAULT_ENDPOINT


def _legacy_entry(data: dict, fallback: str) -> tuple[JobRecord, list[ResultRecord], None]:
    old, task_uuid = data["fingerprint"], data["task_uuid"]
    if not (isinstance(old, str) and _HEX64.match(old) and is_task_uuid(task_uuid)):
        raise ValueError("fingerprint or taskUUID")
    raw = data.get("results")
    if not isinstance(raw, list) or not raw:
        raise ValueError("results")
    endpoint = _guess_endpoint(str(raw[0].get("url") or ""), fallback)
    created = _float(data.get("created", time.time()))
    last_used = _float(data.get("last_used", created))
    results = []
    for position, r in enumerate(raw):
        name = r["file"]
        if not safe_result_name(name):
            raise ValueError(f"result file name {str(name)[:60]!r}")
        seed, index = r.get("seed"), r.get("index")
        results.append(ResultRecord(
            file=name, endpoint=endpoint, task_uuid=task_uuid, position=position,
            video_uuid=str(r.get("video_uuid") or ""), url=str(r.get("url") or ""),
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0
            else None,
            cost=clean_cost(r.get("cost")),
            index=index if isinstance(index, int) and not isinstance(index, bool) else None,
            size=_int(r.get("size", 0), 0, 2**62),
            sha256=r.get("sha256") if isinstance(r.get("sha256"), str)
            and _HEX64.match(r["sha256"]) else "",
            created=created, last_used=last_used))
    costs = [r.cost for r in results if r.cost is not None]
    job = JobRecord(endpoint=endpoint, task_uuid=task_uuid,
                    fingerprint=legacy_fingerprint_to(endpoint, old),
                    model=_opt_text(data.get("model"), 128), task=None,
                    extension=results[0].file.rsplit(".", 1)[1],
                    number_results=len(results), submitted=created, status=SUCCEEDED,
                    finished=created, cost=round(sum(costs), 6) if costs else None)
    return job, results, None


def _legacy_journal(data: dict, fallback: str) -> tuple[JobRecord, list[ResultRecord], str]:
    old, task_uuid, task = data["fingerprint"], data["task_uuid"], data["task"]
    if not (isinstance(old, str) and _HEX64.match(old) and is_task_uuid(task_uuid)
            and isinstance(task, dict)):
        raise ValueError("fingerprint, taskUUID or task")
    extension = data.get("extension", "mp4")
    if extension not in EXTENSIONS:
        raise ValueError("extension")
    number = task.get("numberResults", 1)
    job = JobRecord(endpoint=fallback, task_uuid=task_uuid,
                    fingerprint=legacy_fingerprint_to(fallback, old),
                    model=_opt_text(data.get("model"), 128), task=task, extension=extension,
                    number_results=_int(number, 1, 64),
                    submitted=_float(data.get("submitted", time.time())), status=UNKNOWN)
    return job, [], "journal"


if sys.platform != "win32":
    import fcntl

    def lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

else:  # Windows
    import msvcrt

    def lock_fd(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # raises OSError when another holds it

    def unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
