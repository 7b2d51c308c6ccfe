"""Writing a file so that a crash, a kill or a full disk leaves the old file or the new one,
never half of one: the one way the pack does it.

The data goes to a fresh temp file beside the target (a random name, created with
``O_EXCL``: never a file or link someone planted), which is then renamed onto the target
(``os.replace`` renames the name itself: a link planted at the target is replaced, its
target never written). ``durable`` also flushes the file and the folder to the disk, so the
new file survives a power cut (the key file); results and encoded inputs can be made again
and skip it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

# O_BINARY: no newline translation on Windows (0 elsewhere).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def temp_path(dest: Path, tag: str = "part") -> Path:
    """A private temp name beside ``dest``: ``.<name>.<pid>.<random>.<tag>`` (hidden; the
    cache sweeps old ``*.part`` files, the key store old ``.<name>.*.tmp`` ones)."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{tag}")


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); Windows cannot open a folder, nor needs to."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: Path | str, *, durable: bool = False, tag: str = "part") -> Iterator[Path]:
    """A temp path to write ``dest``'s new content into (by any writer: PyAV, a download).

    When the block ends without an error the temp file becomes ``dest``; when it raises,
    the temp file is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    tmp = temp_path(dest, tag)
    try:
        yield tmp
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, dest)
        if durable:
            fsync_dir(dest.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()  # gone after the rename; a leftover after an error


def atomic_write(path: Path | str, data: bytes, *, durable: bool = False,
                 private: bool = False, replace: bool = True, tag: str = "tmp") -> bool:
    """Write ``data`` to ``path`` atomically; True when it was written.

    ``private``: readable by this user only (mode 0600) from the moment the temp file
    exists, never for a moment by others. ``replace=False``: only if nothing is at ``path``
    yet (a hard link publishes it; False when another writer was first; where the file
    system has no hard links, the last writer wins).
    """
    path = Path(path)
    tmp = temp_path(path, tag)
    try:
        fd = os.open(tmp, _CREATE, 0o600 if private else 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError:
                os.replace(tmp, path)  # no hard links here
        if durable:
            fsync_dir(path.parent)
        return True
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
