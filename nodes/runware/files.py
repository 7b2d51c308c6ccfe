"""Writing a file so that a crash, a kill or a full disk leaves the old file or the new one,
never half of one: the one way the pack does it.

The data goes to a fresh temp file beside the target (a random name, created with
``O_EXCL`` and ``O_NOFOLLOW``: never a file, folder or link someone planted; a name that is
taken is skipped for another), which is then renamed onto the target (``os.replace``
renames the name itself: a link planted at the target is replaced, its target never
written). ``durable`` also flushes the file and the folder to the disk, so the new file
survives a power cut (the key file); results and encoded inputs can be made again and skip
it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# O_BINARY: no newline translation on Windows (0 elsewhere). O_NOFOLLOW: never through a
# link (O_EXCL already refuses any existing name; this holds where O_EXCL is emulated).
_CREATE = (os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
           | getattr(os, "O_BINARY", 0))
# Fresh names tried before giving up: a taken one is a planted file (or a one in 4 billion
# clash), so a few are plenty.
CREATE_TRIES = 8
_TAKEN = {errno.EEXIST, errno.EISDIR, errno.ELOOP}


class TempFileReplaced(OSError):
    """The temp file's name no longer leads to the file this process created."""


def _token() -> str:
    return uuid.uuid4().hex[:8]


def temp_path(dest: Path, tag: str = "part") -> Path:
    """A private temp name beside ``dest``: ``.<name>.<pid>.<random>.<tag>`` (hidden; the
    cache sweeps old ``*.part`` files, the key store old ``.<name>.*.tmp`` ones)."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.{_token()}.{tag}")


def create_temp(dest: Path, tag: str = "part", *, access: int = os.O_WRONLY,
                mode: int = 0o666) -> tuple[int, Path]:
    """Create a new temp file beside ``dest`` (see :func:`temp_path`), exclusively: a name
    already taken (a planted file, folder or link) is skipped for a fresh one. Returns the
    open descriptor (``access``: write-only unless told) and the path."""
    last: OSError | None = None
    for _ in range(CREATE_TRIES):
        tmp = temp_path(dest, tag)
        try:
            return os.open(tmp, _CREATE | access, mode), tmp
        except OSError as exc:
            # Windows answers a folder at the name with "access denied".
            taken = exc.errno in _TAKEN or (isinstance(exc, PermissionError)
                                            and os.path.lexists(tmp))
            if not taken:
                raise
            last = exc
    assert last is not None
    raise last


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
    fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_plain(tmp: Path) -> None:
    """Only a plain file is renamed into place (never a link swapped in meanwhile)."""
    if not stat.S_ISREG(os.lstat(tmp).st_mode):
        raise TempFileReplaced(errno.EEXIST, "the temp file was replaced by something else",
                               str(tmp))


@contextlib.contextmanager
def atomic_path(dest: Path | str, *, durable: bool = False, tag: str = "part") -> Iterator[Path]:
    """A temp path to write ``dest``'s new content into (by any writer: PyAV, an encoder).
    The (empty) temp file already exists, created by this call.

    When the block ends without an error the temp file becomes ``dest``; when it raises,
    the temp file is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    fd, tmp = create_temp(dest, tag)
    os.close(fd)
    try:
        yield tmp
        _check_plain(tmp)
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, dest)
        if durable:
            fsync_dir(dest.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()  # gone after the rename; a leftover after an error


@contextlib.contextmanager
def atomic_file(dest: Path | str, *, tag: str = "part") -> Iterator[tuple[BinaryIO, Path]]:
    """Like :func:`atomic_path`, with the temp file open for reading and writing: a writer
    that comes back to it (a resumed download) keeps using this descriptor and never opens
    the name again, so it can only ever write the file this call created."""
    dest = Path(dest)
    fd, tmp = create_temp(dest, tag, access=os.O_RDWR)
    try:
        with os.fdopen(fd, "w+b") as fh:
            yield fh, tmp
            fh.flush()
            created = os.fstat(fh.fileno())
            now = os.lstat(tmp)
            if (now.st_dev, now.st_ino) != (created.st_dev, created.st_ino) or \
                    not stat.S_ISREG(now.st_mode):
                raise TempFileReplaced(errno.EEXIST, "the temp file was replaced by something "
                                       "else", str(tmp))
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write(path: Path | str, data: bytes, *, durable: bool = False,
                 private: bool = False, replace: bool = True, tag: str = "tmp") -> bool:
    """Write ``data`` to ``path`` atomically; True when it was written.

    ``private``: readable by this user only (mode 0600) from the moment the temp file
    exists, never for a moment by others. ``replace=False``: only if nothing is at ``path``
    yet (a hard link publishes it; False when another writer was first; where the file
    system has no hard links, the last writer wins).
    """
    path = Path(path)
    fd, tmp = create_temp(path, tag, mode=0o600 if private else 0o666)
    try:
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
