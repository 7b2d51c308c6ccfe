"""Upload dedupe: the same bytes are uploaded once and reused by their content hash.

Runware deletes uploads 30 days after their last use, so a remembered UUID is only reused
for ``max_age`` (25 days by default); an on-disk store makes this survive restarts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("runware_ovi_sync")

DEFAULT_MAX_AGE = 25 * 24 * 3600.0


def content_hash(source: bytes | Path, check_cancel: Callable[[], None] | None = None) -> str:
    """sha256 of a file (streamed, checking ``check_cancel`` per MiB) or of bytes."""
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
    else:
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                if check_cancel is not None:
                    check_cancel()
                digest.update(block)
    return digest.hexdigest()


class UploadCache:
    """content hash (+ task type) -> UUID, in memory and optionally in a JSON file."""

    def __init__(self, path: Path | None = None, max_age: float = DEFAULT_MAX_AGE) -> None:
        self.path = Path(path) if path else None
        self.max_age = max_age
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.path and self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                if isinstance(data, dict):
                    self._entries.update(data)
            except (OSError, ValueError):
                log.warning("Ignoring an unreadable upload cache at %s", self.path)

    def _save(self, forget: frozenset[str] | set[str] = frozenset()) -> None:
        """Merge with what other runs (or processes) wrote meanwhile, then replace."""
        if not self.path:
            return
        try:
            on_disk = json.loads(self.path.read_text())
        except (OSError, ValueError):
            on_disk = {}
        if isinstance(on_disk, dict):
            for key, entry in on_disk.items():
                mine = self._entries.get(key)
                if key not in forget and isinstance(entry, dict) and (
                        mine is None or float(entry.get("at", 0)) > float(mine.get("at", 0))):
                    self._entries[key] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(self._entries))
        os.replace(tmp, self.path)

    def get(self, key: str) -> str | None:
        with self._lock:
            self._load()
            entry = self._entries.get(key)
            if not entry:
                return None
            if time.time() - float(entry.get("at", 0)) > self.max_age:
                del self._entries[key]
                self._save(forget={key})
                return None
            return str(entry["uuid"])

    def put(self, key: str, uuid: str) -> None:
        with self._lock:
            self._load()
            self._entries[key] = {"uuid": uuid, "at": time.time()}
            self._save()

    def forget_uuid(self, upload_uuid: str) -> None:
        with self._lock:
            self._load()
            stale = {k for k, v in self._entries.items() if v.get("uuid") == upload_uuid}
            for key in stale:
                del self._entries[key]
            if stale:
                self._save(forget=stale)
