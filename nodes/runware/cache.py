"""On-disk memory of paid work: finished results, pending submissions, uploads.

Layout under the cache directory (``RUNWARE_CACHE_DIR``, else ComfyUI's output folder
``runware/``):

    results/<taskUUID>-<i>.<ext>   downloaded results (the paid files)
    entries/<fingerprint>.json     which results a request fingerprint produced
    journal/<fingerprint>.json     a submission not yet finished: its taskUUID and task
    uploads.json                   content hash -> upload UUID (younger than 25 days)
    locks/<fingerprint>.lock       one run per fingerprint at a time (across processes)

The fingerprint covers the model, the canonical request (no taskUUID) and the content
hash of every uploaded medium, so the same inputs map to the same paid result, after a
restart too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import cache_settings_from_env
from .errors import RunwareError
from .uploads import UploadCache


class JournalError(RunwareError):
    """The on-disk job journal cannot be read: refuse to submit rather than pay twice."""

log = logging.getLogger("runware_ovi_sync")

CACHE_DIR_ENV = "RUNWARE_CACHE_DIR"
CACHE_MAX_GB_ENV = "RUNWARE_CACHE_MAX_GB"
CACHE_MAX_DAYS_ENV = "RUNWARE_CACHE_MAX_DAYS"
DEFAULT_MAX_BYTES = 20 * 1024**3
DEFAULT_MAX_AGE = 30 * 24 * 3600.0
RECENT_SECONDS = 600.0  # never evict a result used this recently
ORPHAN_SECONDS = 3600.0  # unreferenced result files older than this are swept

_INTACT: dict[tuple[str, int, int], str] = {}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_fingerprint(model: str, task: dict[str, Any], media_hashes: dict[str, str]) -> str:
    """sha256 over the model, the task without its taskUUID, and the inputs' content.

    ``media_hashes`` maps each upload placeholder in ``task`` to its content hash, so the
    fingerprint does not depend on which UUID an upload happened to get.
    """
    canonical = {k: v for k, v in task.items() if k != "taskUUID"}
    text = canonical_json({"model": model, "task": canonical, "media": media_hashes})
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class CachedResult:
    file: str  # name under results/
    url: str
    video_uuid: str
    task_uuid: str
    seed: int | None = None
    cost: float | None = None
    index: int | None = None
    size: int = 0
    sha256: str = ""


@dataclass
class CacheEntry:
    fingerprint: str
    model: str
    task_uuid: str
    results: list[CachedResult]
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CacheEntry:
        results = [CachedResult(**r) for r in data.get("results", [])]
        return cls(data["fingerprint"], data["model"], data["task_uuid"], results,
                   data.get("created", 0.0), data.get("last_used", 0.0))


@dataclass
class JournalEntry:
    """A submission that may be running on Runware: resume it instead of paying again."""

    fingerprint: str
    model: str
    task_uuid: str
    task: dict[str, Any]
    extension: str
    submitted: float = field(default_factory=time.time)


def _write_json(path: Path, data: Any) -> None:
    """Atomic and durable: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=1))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; its replace is durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("Ignoring unreadable cache file %s", path)
        return None


def _bad_journal(path: Path) -> JournalEntry:
    raise JournalError(
        f"The job journal file {path} is unreadable. It may stand for a job you paid for, "
        "so nothing new is submitted for this request",
        hint="If the log names that job's taskUUID, recover it with Runware Fetch Result; "
        "then delete the file and queue again.",
    )


class ResultCache:
    """Results, journal, upload dedupe and per-fingerprint locks in one directory."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_age: float = DEFAULT_MAX_AGE, recent: float = RECENT_SECONDS) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.recent = recent
        self.results_dir = self.root / "results"
        self.uploads = UploadCache(self.root / "uploads.json")

    @classmethod
    def from_env(cls, default_root: Path) -> ResultCache:
        """RUNWARE_CACHE_DIR / _MAX_GB / _MAX_DAYS, validated (a bad value is an error)."""
        settings = cache_settings_from_env(default_root)
        return cls(settings.root, max_bytes=settings.max_bytes, max_age=settings.max_age)

    # -- finished results ------------------------------------------------------------

    def _entry_path(self, fingerprint: str) -> Path:
        return self.root / "entries" / f"{fingerprint}.json"

    def result_path(self, result: CachedResult) -> Path:
        return self.results_dir / result.file

    def lookup(self, fingerprint: str) -> CacheEntry | None:
        data = _read_json(self._entry_path(fingerprint))
        if not data:
            return None
        entry = CacheEntry.from_dict(data)
        if time.time() - entry.last_used > self.max_age:
            self._drop_entry(entry)
            return None
        return entry

    def find_task(self, task_uuid: str) -> CacheEntry | None:
        """The cached entry a taskUUID produced (for RunwareFetchResult)."""
        for path in sorted((self.root / "entries").glob("*.json")):
            data = _read_json(path)
            if data and data.get("task_uuid") == task_uuid:
                return CacheEntry.from_dict(data)
        return None

    def is_intact(self, result: CachedResult) -> bool:
        path = self.result_path(result)
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        if st.st_size != result.size:
            return False
        if not result.sha256:
            return True
        # Hash once per file version in this process (a result reused all day is
        # not re-read on every queue).
        memo = (str(path), st.st_size, st.st_mtime_ns)
        if _INTACT.get(memo) != result.sha256:
            _INTACT[memo] = file_sha256(path)
        return _INTACT[memo] == result.sha256

    def store(self, entry: CacheEntry) -> None:
        entry.last_used = time.time()
        _write_json(self._entry_path(entry.fingerprint), asdict(entry))
        self.evict(keep=entry.fingerprint)

    def touch(self, entry: CacheEntry) -> None:
        entry.last_used = time.time()
        _write_json(self._entry_path(entry.fingerprint), asdict(entry))

    def forget(self, entry: CacheEntry) -> None:
        """Remove an entry that cannot be repaired (its files and its index)."""
        self._drop_entry(entry)

    def _drop_entry(self, entry: CacheEntry) -> None:
        for result in entry.results:
            self.result_path(result).unlink(missing_ok=True)
        self._entry_path(entry.fingerprint).unlink(missing_ok=True)

    def evict(self, keep: str | None = None) -> int:
        """Drop results unused for max_age, then the least recently used over the size cap.

        Entries used in the last few minutes are never evicted (a file just handed to the
        next node, e.g. Save Video, must still be there), nor is ``keep``. Result files no
        entry refers to (an older take, a recovered job) are swept after an hour.
        """
        entries = []
        for path in (self.root / "entries").glob("*.json"):
            data = _read_json(path)
            if data:
                entries.append(CacheEntry.from_dict(data))
        now = time.time()
        dropped = 0
        alive = []
        for entry in entries:
            if now - entry.last_used > self.max_age and entry.fingerprint != keep:
                self._drop_entry(entry)
                dropped += 1
            else:
                alive.append(entry)
        sizes = {e.fingerprint: sum(r.size for r in e.results) for e in alive}
        total = sum(sizes.values())
        for entry in sorted(alive, key=lambda e: e.last_used):
            if total <= self.max_bytes:
                break
            if entry.fingerprint == keep or now - entry.last_used < self.recent:
                continue
            self._drop_entry(entry)
            alive.remove(entry)
            total -= sizes[entry.fingerprint]
            dropped += 1
        self._sweep_orphans({r.file for e in alive for r in e.results}, now)
        if dropped:
            log.info("Result cache: evicted %d old result set(s)", dropped)
        return dropped

    def _sweep_orphans(self, referenced: set[str], now: float) -> None:
        for path in self.results_dir.glob("*"):
            if path.name in referenced or path.name.endswith(".part"):
                continue
            try:
                if now - path.stat().st_mtime > ORPHAN_SECONDS:
                    path.unlink()
            except OSError:
                pass

    def clear(self) -> None:
        """Forget every finished result and delete its files (pending jobs are kept)."""
        for entry_path in (self.root / "entries").glob("*.json"):
            data = _read_json(entry_path)
            if data:
                self._drop_entry(CacheEntry.from_dict(data))
            entry_path.unlink(missing_ok=True)
        pending = set()
        for path in (self.root / "journal").glob("*.json"):
            data = _read_json(path)
            if isinstance(data, dict):
                pending.add(str(data.get("task_uuid")))
        for path in self.results_dir.glob("*"):
            if not any(path.name.startswith(t) for t in pending):
                path.unlink(missing_ok=True)

    # -- pending submissions ---------------------------------------------------------

    def _journal_path(self, fingerprint: str) -> Path:
        return self.root / "journal" / f"{fingerprint}.json"

    def journal_get(self, fingerprint: str) -> JournalEntry | None:
        path = self._journal_path(fingerprint)
        if not path.exists():
            return None
        data = _read_json(path)
        try:
            return JournalEntry(**data) if isinstance(data, dict) else _bad_journal(path)
        except TypeError:
            return _bad_journal(path)

    def journal_put(self, entry: JournalEntry) -> None:
        _write_json(self._journal_path(entry.fingerprint), asdict(entry))

    def journal_drop(self, fingerprint: str, task_uuid: str | None = None) -> None:
        """Forget a pending job (only if it is still ``task_uuid``, when given)."""
        path = self._journal_path(fingerprint)
        if task_uuid is not None:
            data = _read_json(path)
            if not isinstance(data, dict) or data.get("task_uuid") != task_uuid:
                return
        path.unlink(missing_ok=True)

    def journal_find_task(self, task_uuid: str) -> JournalEntry | None:
        for path in (self.root / "journal").glob("*.json"):
            data = _read_json(path)
            if isinstance(data, dict) and data.get("task_uuid") == task_uuid:
                try:
                    return JournalEntry(**data)
                except TypeError:
                    return None
        return None

    # -- one run per fingerprint -----------------------------------------------------

    @contextlib.asynccontextmanager
    async def locked(
        self, fingerprint: str, check_cancel: Callable[[], None]
    ) -> AsyncIterator[None]:
        """Hold the fingerprint's lock; waiting runs check ``check_cancel`` meanwhile."""
        lock = _FileLock(self.root / "locks" / f"{fingerprint}.lock")
        while not lock.try_acquire():
            check_cancel()
            await asyncio.sleep(0.1)
        try:
            yield
        finally:
            lock.release()


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class _FileLock:
    """An exclusive lock: flock across processes where available, plus a thread lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with _THREAD_LOCKS_GUARD:
            self._thread_lock = _THREAD_LOCKS.setdefault(str(path), threading.Lock())
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if not self._thread_lock.acquire(blocking=False):
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock_fd(fd)
        except OSError:
            os.close(fd)
            self._thread_lock.release()
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                _unlock_fd(self._fd)
            os.close(self._fd)
            self._fd = None
        self._thread_lock.release()


try:
    import fcntl

    def _lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _lock_fd(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # raises OSError when another holds it

    def _unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
