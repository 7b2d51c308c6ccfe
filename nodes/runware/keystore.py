"""Where the Runware API key lives: the environment first, then a private key file.

The file sits in ComfyUI's user directory (outside the pack folder, so updating the pack
never clobbers it), is created with mode 0600, and holds nothing but the key. Nothing in
this module ever logs, returns or formats the key itself: status shows its last 4 chars.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from .config import API_KEY_ENV

KEY_FILE_NAME = "runware_api_key"


@dataclass(frozen=True)
class KeyStatus:
    configured: bool
    source: str | None  # "environment" | "file" | None
    last4: str | None
    path: str

    def as_dict(self) -> dict[str, object]:
        return {"configured": self.configured, "source": self.source, "last4": self.last4,
                "path": self.path}


def clean_key(value: str) -> str:
    return "".join(str(value or "").split())


def is_plausible_key(key: str) -> bool:
    """Printable ASCII only: a key travels in an HTTP header."""
    return bool(key) and key.isascii() and key.isprintable()


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def resolve(self) -> tuple[str | None, str | None]:
        """(key, source): RUNWARE_API_KEY wins over the key file."""
        env = clean_key(os.environ.get(API_KEY_ENV, ""))
        if env:
            return env, "environment"
        try:
            key = clean_key(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return None, None
        return (key, "file") if key else (None, None)

    def status(self) -> KeyStatus:
        key, source = self.resolve()
        return KeyStatus(bool(key), source, key[-4:] if key else None, str(self.path))

    def save(self, key: str) -> None:
        key = clean_key(key)
        if not key:
            raise ValueError("the key is empty")
        if not is_plausible_key(key):
            raise ValueError("the key contains characters a Runware key cannot have")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        # O_EXCL + 0600 from the start: the key is never readable by others, not even
        # for a moment between create and chmod.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(key)
        os.replace(tmp, self.path)
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)

    def delete(self) -> bool:
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False
