"""Where the Runware API key lives: the environment first, then a private key file.

The file sits in ComfyUI's user directory (outside the pack folder, so updating the pack
never clobbers it), is created with mode 0600, and holds nothing but the key. It is read
the way people write it: UTF-8 with or without a BOM, UTF-16 with a BOM (Windows
PowerShell 5's ``echo KEY > file``), with a trailing newline or CRLF. A file that is not
that (binary junk, a folder, no permission) is a clear :class:`KeyFileError`, raised only
when a request needs the key.

Nothing in this module ever logs, returns or formats the key itself: the status shows its
last 4 characters (none of a key shorter than 12), and names the file, never its absolute
path (the status goes to whoever can reach the page).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import KeyFileError, remember_secret
from .files import atomic_write

API_KEY_ENV = "RUNWARE_API_KEY"
KEY_FILE_NAME = "runware_api_key"
KEY_FILE_WHERE = f"{KEY_FILE_NAME} in ComfyUI's user directory"
KEY_FILE_PLACE = f"the file {KEY_FILE_WHERE}"

__all__ = ["API_KEY_ENV", "KEY_FILE_NAME", "KeyStatus", "KeyStore", "clean_key", "decode_key_file",
           "is_plausible_key"]

# A key is ~40 characters; anything much larger is not a key file (and /dev/zero or a
# huge file planted under the name must not be read into memory).
MAX_KEY_FILE_BYTES = 4096
# The last 4 characters are shown only for keys at least this long, so what is shown is
# never a large part of the key.
SHOW_LAST4_FROM = 12
# Temp files a killed save left behind (they hold a key) are removed after this long.
STALE_TMP_SECONDS = 600.0


@dataclass(frozen=True)
class KeyStatus:
    configured: bool
    source: str | None  # "environment" | "file" | None
    last4: str | None
    path: str  # where the file is, described without its absolute path
    error: str | None = None  # why the key file could not be read

    def as_dict(self) -> dict[str, object]:
        return {"configured": self.configured, "source": self.source, "last4": self.last4,
                "path": self.path, "error": self.error}


def clean_key(value: str) -> str:
    return "".join(str(value or "").split())


def is_plausible_key(key: str) -> bool:
    """Printable ASCII only: a key travels in an HTTP header."""
    return bool(key) and key.isascii() and key.isprintable()


def last4(key: str | None) -> str | None:
    return key[-4:] if key and len(key) >= SHOW_LAST4_FROM else None


def decode_key_file(data: bytes) -> str:
    """The key in a key file's bytes ('' for an empty file); ValueError saying why not."""
    if data.startswith(codecs.BOM_UTF8):
        encoding, data = "utf-8", data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"  # the BOM says which byte order
    elif len(data) >= 2 and len(data) % 2 == 0 and not any(data[1::2]) and all(data[0::2]):
        encoding = "utf-16-le"  # UTF-16 without a BOM: every second byte is zero
    elif len(data) >= 2 and len(data) % 2 == 0 and not any(data[0::2]) and all(data[1::2]):
        encoding = "utf-16-be"
    else:
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise ValueError("it is not text in UTF-8 or UTF-16 (is it the right file?)") from None
    key = clean_key(text.replace("\ufeff", ""))
    if key and not is_plausible_key(key):
        raise ValueError("it holds characters a Runware key cannot have; it should hold "
                         "the key alone, as plain text")
    return key


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def where(self) -> str:
        """Where the file is, for the status (shown as "Key file: ...")."""
        return KEY_FILE_WHERE if self.path.name == KEY_FILE_NAME else self.path.name

    @property
    def place(self) -> str:
        """The file, described for people who may not see this machine's paths."""
        if self.path.name == KEY_FILE_NAME:
            return KEY_FILE_PLACE
        return f"the file {self.path.name}"

    def _error(self, reason: str) -> KeyFileError:
        return KeyFileError(f"The key file ({self.place}) could not be read: {reason}")

    def read_file(self) -> str | None:
        """The key in the file, None when there is no file (or it is empty).

        Raises KeyFileError when the file exists but is not a readable key file.
        """
        try:
            # O_NONBLOCK: a FIFO planted under the name must not hang the read.
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                         | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise self._error("it is a folder, not a file") from None
        except PermissionError:
            if self.path.is_dir():  # how Windows answers opening a folder
                raise self._error("it is a folder, not a file") from None
            raise self._error("permission denied (ComfyUI's user cannot read it)") from None
        except OSError as exc:
            raise self._error(exc.strerror or type(exc).__name__) from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise self._error("it is a folder, not a file")
            if not stat.S_ISREG(info.st_mode):
                raise self._error("it is not a regular file")
            if info.st_size > MAX_KEY_FILE_BYTES:
                raise self._error(f"it is {info.st_size} bytes long; a key file holds "
                                  "only the key")
            try:
                data = os.read(fd, MAX_KEY_FILE_BYTES + 1)
            except OSError as exc:
                raise self._error(exc.strerror or type(exc).__name__) from None
        finally:
            os.close(fd)
        try:
            key = decode_key_file(data)
        except ValueError as exc:
            raise self._error(str(exc)) from None
        remember_secret(key)
        return key or None

    def resolve(self) -> tuple[str | None, str | None]:
        """(key, source): RUNWARE_API_KEY wins over the key file.

        Raises KeyFileError when the environment has no key and the file is unreadable.
        """
        env = clean_key(os.environ.get(API_KEY_ENV, ""))
        if env:
            remember_secret(env)
            return env, "environment"
        key = self.read_file()
        return (key, "file") if key else (None, None)

    def status(self) -> KeyStatus:
        try:
            key, source = self.resolve()
        except KeyFileError as exc:
            return KeyStatus(False, "file", None, self.where, exc.message.rstrip(".") + ".")
        return KeyStatus(bool(key), source, last4(key), self.where)

    def save(self, key: str) -> None:
        """Store ``key`` atomically: a crash, a full disk or a planted file or symlink
        leaves the old key file (or none) in place, never a partial one, and never
        writes anywhere but this file."""
        key = clean_key(key)
        if not key:
            raise ValueError("the key is empty")
        if not is_plausible_key(key):
            raise ValueError("the key contains characters a Runware key cannot have")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Private (0600) from the start, durable, and never through a planted file or link.
        atomic_write(self.path, key.encode("ascii"), durable=True, private=True, tag="tmp")
        remember_secret(key)
        self._sweep_stale_tmp()

    def _sweep_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        for old in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                if old.lstat().st_mtime < cutoff:
                    old.unlink()

    def delete(self) -> bool:
        try:
            self.path.unlink()  # a symlink is removed, never its target
            return True
        except FileNotFoundError:
            return False
        except IsADirectoryError:
            raise OSError(f"{self.place} is a folder; remove it by hand") from None

