"""The cache folder: paid result files, the store that indexes them, retention, locks.

Layout under the cache directory (``RUNWARE_CACHE_DIR``, else ComfyUI's output folder
``runware/``):

    store.sqlite                    jobs ledger, journal, cache entries, upload memory
    results/<taskUUID>-<i>.<ext>    downloaded results (the paid files)
    locks/<fingerprint>.lock        one run per request at a time (across processes)
    install-id                      a random salt for first-take taskUUIDs (see below)

The fingerprint covers the API endpoint, the model, the canonical request (no taskUUID)
and the content hash of every uploaded medium, so the same inputs at the same endpoint map
to the same paid result, after a restart too.

Retention (one policy, every paid file alike): results are kept as sets (one job's files).
A set unused for ``max_age`` (RUNWARE_CACHE_MAX_DAYS) is removed; past ``max_bytes``
(RUNWARE_CACHE_MAX_GB) the least recently used sets go first. Never removed: a set used in
the last ``recent`` seconds, a file a VIDEO of this process still points at (pinned), a
job still in the journal. Files the store does not know are never deleted, except
``.part`` leftovers of a killed download older than a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import API_URL_ENV, DEFAULT_API_URL, env_url
from .config import cache_settings_from_env as _validated_cache_settings
from .files import atomic_write
from .logs import get_logger
from .store import (
    STORE_NAME,
    JobRecord,
    ResultRecord,
    Store,
    StoreError,
    api_endpoint,
    lock_fd,
    safe_result_name,
    unlock_fd,
)
from .uploads import UploadCache

log = get_logger()

DEFAULT_MAX_BYTES = 20 * 1024**3
DEFAULT_MAX_AGE = 30 * 24 * 3600.0
RECENT_SECONDS = 600.0  # never evict a result used this recently
PART_SECONDS = 24 * 3600.0  # leftover .part files of a killed download are swept after this

__all__ = ["CacheEntry", "JobRecord", "ResultCache", "ResultRecord",
           "StoreError", "api_endpoint", "pin_file", "request_fingerprint"]

_INTACT: dict[tuple[str, int, int], str] = {}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_fingerprint(model: str, task: Mapping[str, Any], media_hashes: dict[str, str]) -> str:
    """sha256 over the model, the task without its taskUUID, and the inputs' content (the
    0.1 fingerprint: endpoint-free)."""
    canonical = {k: v for k, v in task.items() if k != "taskUUID"}
    text = canonical_json({"model": model, "task": canonical, "media": media_hashes})
    return hashlib.sha256(text.encode()).hexdigest()


def request_fingerprint(endpoint: str, model: str, task: Mapping[str, Any],
                        media_hashes: dict[str, str]) -> str:
    """The request's identity at one API endpoint.

    ``media_hashes`` maps each upload placeholder in ``task`` to its content hash, so the
    fingerprint does not depend on which UUID an upload happened to get.
    """
    inner = content_fingerprint(model, task, media_hashes)
    return hashlib.sha256(f"{endpoint}|{inner}".encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_salt(path: Path) -> str | None:
    """The install's salt (32 hex digits) in ``path``; None when absent or unreadable."""
    try:
        if not path.is_symlink():
            text = path.read_text(encoding="ascii").strip()
            if re.fullmatch(r"[0-9a-f]{32}", text):
                return text
    except (OSError, UnicodeDecodeError):
        pass
    return None


@dataclass
class CacheEntry:
    """One job's result files: what a request (``fingerprint``) or a taskUUID is served."""

    endpoint: str
    fingerprint: str | None
    task_uuid: str
    results: list[ResultRecord]


# -- pins: files a VIDEO of this process points at -----------------------------------------

_PINS: dict[str, int] = {}
_PINS_LOCK = threading.Lock()


def _pin_key(path: Path | str) -> str:
    return os.path.normcase(os.path.abspath(path))


def pin_file(path: Path | str, holder: object) -> None:
    """Keep ``path`` from eviction while ``holder`` (e.g. a VIDEO output) is alive.

    The pin is dropped when ``holder`` is garbage collected; an object that cannot be
    weakly referenced pins the file for the life of the process.
    """
    key = _pin_key(path)
    with _PINS_LOCK:
        _PINS[key] = _PINS.get(key, 0) + 1
    try:
        weakref.finalize(holder, _unpin, key)
    except TypeError:
        pass


def _unpin(key: str) -> None:
    with _PINS_LOCK:
        left = _PINS.get(key, 0) - 1
        if left > 0:
            _PINS[key] = left
        else:
            _PINS.pop(key, None)


def is_pinned(path: Path | str) -> bool:
    with _PINS_LOCK:
        return _PINS.get(_pin_key(path), 0) > 0


# -- settings ---------------------------------------------------------------------------------


def cache_settings_from_env(default_root: Path) -> dict[str, Any]:
    """RUNWARE_CACHE_DIR / _MAX_GB / _MAX_DAYS (validated) -> ResultCache keyword arguments."""
    settings = _validated_cache_settings(default_root)
    return {
        "root": settings.root,
        "max_bytes": settings.max_bytes,
        "max_age": settings.max_age,
        "legacy_endpoint": api_endpoint(env_url(API_URL_ENV, DEFAULT_API_URL)),
    }


class ResultCache:
    """The cache folder: results, the store, upload memory, per-request locks."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_age: float = DEFAULT_MAX_AGE, recent: float = RECENT_SECONDS,
                 legacy_endpoint: str | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.recent = recent
        self.results_dir = self.root / "results"
        self.store = Store(self.root / STORE_NAME, legacy_root=self.root,
                           legacy_endpoint=legacy_endpoint)
        self.uploads = UploadCache(self.store)

    # -- paths -------------------------------------------------------------------------

    def results_folder(self) -> Path:
        """results/, created if needed. A planted link or file there is moved aside: a
        record can never make the pack write, read or delete outside its own folder."""
        folder = self.results_dir
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            aside = folder.with_name(f"results.set-aside-{uuid.uuid4().hex[:8]}")
            log.warning("Runware cache: %s is not a folder; moved it to %s", folder, aside.name)
            os.replace(folder, aside)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def result_path(self, record: ResultRecord) -> Path | None:
        """Where a record's file is: inside results/, or None (ignored with a warning)."""
        if not safe_result_name(record.file):
            log.warning("Runware cache: ignoring a record naming the file %r", record.file[:80])
            return None
        path = self.results_dir / record.file
        try:
            inside = path.resolve().parent == self.results_dir.resolve()
        except OSError:
            inside = False
        if not inside or self.results_dir.is_symlink():
            log.warning("Runware cache: ignoring %s, which leads outside the cache folder",
                        path)
            return None
        return path

    def is_intact(self, record: ResultRecord) -> bool:
        path = self.result_path(record)
        if path is None:
            return False
        try:
            if path.is_symlink():
                return False
            st = path.stat()
        except OSError:
            return False
        if st.st_size != record.size or not path.is_file():
            return False
        if not record.sha256:
            return True
        # Hash once per file version in this process (a result reused all day is
        # not re-read on every queue).
        memo = (str(path), st.st_size, st.st_mtime_ns)
        if _INTACT.get(memo) != record.sha256:
            try:
                _INTACT[memo] = file_sha256(path)
            except OSError:
                return False
        return _INTACT[memo] == record.sha256

    # -- entries -----------------------------------------------------------------------

    def lookup(self, endpoint: str, fingerprint: str) -> CacheEntry | None:
        """The results serving a request at ``endpoint`` (None if unknown or too old)."""
        found = self.store.entry(endpoint, fingerprint)
        if found is None or not found[1]:
            return None
        task_uuid, results = found
        if time.time() - max(r.last_used for r in results) > self.max_age:
            return None  # expired: the next eviction removes it
        return CacheEntry(endpoint, fingerprint, task_uuid, results)

    def find_task(self, endpoint: str, task_uuid: str) -> CacheEntry | None:
        """The result files a taskUUID produced at ``endpoint`` (any take, also partial
        results and recoveries)."""
        results = self.store.results_of(endpoint, task_uuid)
        return CacheEntry(endpoint, None, task_uuid, results) if results else None

    def touch(self, entry: CacheEntry) -> None:
        self.store.touch(entry.endpoint, entry.task_uuid)

    def forget(self, entry: CacheEntry, broken: list[ResultRecord]) -> None:
        """A request's entry that cannot be repaired: the request no longer maps to it and
        the ``broken`` files go; its intact files stay, findable by taskUUID."""
        if entry.fingerprint:
            self.store.forget_entry(entry.endpoint, entry.fingerprint)
        self._delete(broken)

    def _delete(self, records: list[ResultRecord]) -> None:
        self.store.drop_results(r.file for r in records)
        for record in records:
            path = self.result_path(record)
            if path is not None and not is_pinned(path):
                with contextlib.suppress(OSError):
                    path.unlink()

    # -- first takes -------------------------------------------------------------------

    def first_take_uuid(self, fingerprint: str) -> str:
        """The taskUUID of a request's first paid take: derived from the fingerprint and
        this install's salt, so a run that lost the store still finds the job by its
        taskUUID (its files on disk, or ``conflictTaskUUID`` from Runware) instead of
        paying again."""
        digest = hashlib.sha256(f"{self._salt()}|{fingerprint}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def _salt(self) -> str:
        path = self.root / "install-id"
        for _ in range(3):
            text = _read_salt(path)
            if text is not None:
                return text
            self.root.mkdir(parents=True, exist_ok=True)
            salt = uuid.uuid4().hex.encode("ascii")
            try:
                if path.is_symlink() or (path.exists() and not path.is_file()):
                    os.replace(path, path.with_name(f"install-id.set-aside-{uuid.uuid4().hex[:8]}"))
                # Never replaces a salt another run wrote first ...
                if not atomic_write(path, salt, private=True, replace=False) and \
                        path.is_file() and _read_salt(path) is None:
                    atomic_write(path, salt, private=True)  # ... unless it is unreadable
            except OSError as exc:
                log.warning("Runware cache: cannot write %s (%s)", path, exc)
        return "no-salt"

    def take_files(self, task_uuid: str, count: int) -> list[Path] | None:
        """The result files of ``task_uuid`` found on disk by name, if all ``count`` are."""
        found = []
        for position in range(max(count, 1)):
            for ext in ("mp4", "webm", "mov"):
                path = self.results_dir / f"{task_uuid}-{position}.{ext}"
                if not path.is_symlink() and path.is_file():
                    found.append(path)
                    break
            else:
                return None
        return found

    # -- retention ---------------------------------------------------------------------

    def evict(self, keep: str | None = None) -> int:
        """Apply the retention policy (module docstring). ``keep``: a taskUUID to keep."""
        now = time.time()
        self.store.drop_malformed_results()
        records = self.store.all_results()
        protected = {(j.endpoint, j.task_uuid) for j in self.store.pending()}
        sets: dict[tuple[str, str], list[ResultRecord]] = {}
        for record in records:
            sets.setdefault((record.endpoint, record.task_uuid), []).append(record)

        def removable(key: tuple[str, str], group: list[ResultRecord]) -> bool:
            if key[1] == keep or key in protected:
                return False
            if now - max(r.last_used for r in group) < self.recent:
                return False
            return not any(is_pinned(self.results_dir / r.file) for r in group)

        dropped = 0
        alive: dict[tuple[str, str], list[ResultRecord]] = {}
        for key, group in sets.items():
            if now - max(r.last_used for r in group) > self.max_age and removable(key, group):
                self._delete(group)
                dropped += 1
            else:
                alive[key] = group
        total = sum(r.size for group in alive.values() for r in group)
        for key, group in sorted(alive.items(), key=lambda kv: max(r.last_used for r in kv[1])):
            if total <= self.max_bytes:
                break
            if not removable(key, group):
                continue
            self._delete(group)
            total -= sum(r.size for r in group)
            dropped += 1
        self._sweep_parts(now)
        if dropped:
            log.info("Result cache: evicted %d old result set(s)", dropped)
        return dropped

    def _sweep_parts(self, now: float) -> None:
        if not self.results_dir.is_dir() or self.results_dir.is_symlink():
            return
        for path in self.results_dir.glob("*.part"):
            try:
                st = path.lstat()
                if now - st.st_mtime > PART_SECONDS and not path.is_dir():
                    path.unlink()
            except OSError:
                pass

    # -- one run per request ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def locked(
        self, name: str, check_cancel: Callable[[], None]
    ) -> AsyncIterator[None]:
        """Hold the request's lock; waiting runs check ``check_cancel`` meanwhile."""
        lock = _FileLock(self.root / "locks", name)
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
    """An exclusive lock: flock across processes where available, plus a thread lock.

    A lock file that cannot be made (a planted folder or link at its path) is skipped for
    the next name in a fixed sequence every process follows; whatever happens, a failure
    releases everything taken, so no later run can hang on it.
    """

    NAMES = 3

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        with _THREAD_LOCKS_GUARD:
            self._thread_lock = _THREAD_LOCKS.setdefault(f"{folder}/{name}", threading.Lock())
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"Cannot create the lock folder {self.folder}: {exc}",
                                 hint="Remove whatever is at that path (it should be a "
                                 "folder of lock files), then queue again.") from exc
            fd = self._open()
        except BaseException:
            self._thread_lock.release()
            raise
        try:
            lock_fd(fd)
        except OSError:
            os.close(fd)
            self._thread_lock.release()
            return False
        self._fd = fd
        return True

    def _open(self) -> int:
        problem: OSError | None = None
        for attempt in range(self.NAMES):
            suffix = "" if attempt == 0 else f".{attempt}"
            path = self.folder / f"{self.name}{suffix}.lock"
            try:
                return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                               0o600)
            except OSError as exc:
                problem = exc
                log.warning("Runware cache: cannot use the lock file %s (%s)", path, exc)
        raise StoreError(f"No usable lock file for this request in {self.folder}: {problem}",
                         hint="Remove what is in that folder (it holds only lock files).")

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                unlock_fd(self._fd)
            os.close(self._fd)
            self._fd = None
        self._thread_lock.release()
