"""Opening files that someone else put there: only regular files, never blocking.

The host and the ground write into PYGNC_HOME, and a FIFO, a device or a directory can sit
where a file is expected (``pygnc_config.toml``, a status or batch file).  ``open()`` of a
FIFO with no writer waits forever - before any status, deaf to Ctrl-C (the signal handlers
only set a flag).  Every read of such a file goes through :func:`open_regular_file`: the
file is opened non-blocking and its type checked on the open descriptor (so it cannot be
swapped in between), and anything but a regular file is an ``OSError`` naming what it is.

No numpy, nothing of pygnc: the supervisor and ``--check-config`` import this.
"""

from __future__ import annotations

import errno
import os
import stat


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_regular_file(path: str | os.PathLike) -> int:
    """A read-only descriptor of the regular file at *path* (symbolic links followed).

    Anything else - a FIFO, a device, a socket, a directory - raises ``OSError`` naming what
    it is, without ever blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_kind(mode)})", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class TooLarge(OSError):
    """A file larger than the caller reads (:func:`read_small_file`)."""


def read_small_file(path: str | os.PathLike, max_bytes: int) -> bytes:
    """All bytes of the regular file at *path*, which must hold at most *max_bytes*
    (:class:`TooLarge` otherwise, naming its size): :func:`open_regular_file`'s checks, and
    never more than *max_bytes* + 1 read."""
    fd = open_regular_file(path)
    try:
        parts: list[bytes] = []
        got = 0
        while got <= max_bytes:
            chunk = os.read(fd, min(1 << 16, max_bytes + 1 - got))
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            got += len(chunk)
        size = os.fstat(fd).st_size
        raise TooLarge(errno.EFBIG, f"{size} bytes, more than the {max_bytes} read", str(path))
    finally:
        os.close(fd)
