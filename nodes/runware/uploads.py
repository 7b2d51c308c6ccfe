"""Upload dedupe: the same bytes are uploaded once and reused by their content hash.

Runware deletes uploads 30 days after their last use, so a remembered UUID is only reused
for ``max_age`` (25 days by default); the store makes this survive restarts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .logs import get_logger

if TYPE_CHECKING:
    from .store import Store

log = get_logger()

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
    """(endpoint, content hash + task type) -> upload UUID, kept in the store.

    An endpoint only ever gets UUIDs it handed out itself: uploads made to the local
    double are never sent to Runware, nor the other way round.
    """

    def __init__(self, store: Store, max_age: float = DEFAULT_MAX_AGE) -> None:
        self.store = store
        self.max_age = max_age

    def get(self, endpoint: str, key: str) -> str | None:
        return self.store.upload_get(endpoint, key, self.max_age)

    def put(self, endpoint: str, key: str, upload_uuid: str) -> None:
        self.store.upload_put(endpoint, key, upload_uuid)

    def forget_uuid(self, endpoint: str, upload_uuid: str) -> None:
        self.store.upload_forget(endpoint, upload_uuid)
