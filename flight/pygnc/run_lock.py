"""One run per home: an exclusive ``flock`` on ``PYGNC_HOME/.pygnc.lock``, held for the run.

A second ``main.py`` on the same home (a host retry while the first still runs) is refused
before it touches anything - the first run's status, info, logs, batch files and sockets
stay its own.  The kernel drops the lock when the holder exits, however it exits (a
SIGKILL or a power cut leaves no stale lock to clean up).  The file holds the holder's pid
and start time for the refusal's message; it is never deleted (deleting a lock file races
with a process about to lock it).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_NAME = ".pygnc.lock"


class AlreadyRunning(Exception):
    """Another process holds the home's lock; the message names it."""


class RunLock:
    """The held lock (keep the object for the whole run; :meth:`release` at exit)."""

    def __init__(self, path: Path, fd: int | None, note: str = ""):
        self.path, self.fd = path, fd
        #: Why the run goes on without a lock ("" if it holds one).
        self.note = note

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # (closing drops the flock)
            self.fd = None


def acquire(home: Path, t_sc_s: float = float("nan")) -> RunLock:
    """Lock *home* for this process (the descriptor is not inherited by children).
    :class:`AlreadyRunning` if another process holds it; a file system that cannot lock
    (or a home where the file cannot be made) gives a :class:`RunLock` without a lock and
    a :attr:`RunLock.note` saying why - the run goes on unguarded rather than not at all."""
    path = Path(home) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        return RunLock(
            path,
            None,
            f"cannot open the lock file {path} ({exc.strerror or exc}): no guard against a second start on this home",
        )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            return RunLock(
                path, None, f"cannot lock {path} ({exc.strerror or exc}): no guard against a second start on this home"
            )
        holder = _read_holder(fd)
        os.close(fd)
        raise AlreadyRunning(f"another pygnc is running on {Path(home)}{holder} (lock {path})") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} spacecraft_time_s {t_sc_s:.0f}\n".encode(), 0)
    except OSError:
        pass  # the lock is what matters; the text is only for a refusal's message
    return RunLock(path, fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("ascii", "replace").split()
    except OSError:
        return ""
    info = dict(zip(text[::2], text[1::2]))
    if "pid" not in info:
        return ""
    started = f", started at spacecraft time {info['spacecraft_time_s']}" if "spacecraft_time_s" in info else ""
    return f" (supervisor pid {info['pid']}{started})"
