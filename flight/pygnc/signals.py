"""Stop signals that only set a flag, and wake a poll at once.

``signal.set_wakeup_fd`` writes a byte to a non-blocking pipe whenever a signal arrives;
registering the pipe's read end with the ZeroMQ poller (or ``select``) makes the wait return
immediately, so a process reacts to Ctrl-C without polling faster.

A hang-up (SIGHUP: the host's terminal closed, or its login shell passing the hang-up on to
the job) is a stop request like Ctrl-C - the default action would kill the process with no
final status, an open batch file and the socket directory left behind.

Every pygnc process installs this first thing (``main.py``, ``python -m pygnc``,
``python -m pygnc.tasks``), before any slow import, and hands the same object on: a signal
that arrives while the process is still starting is never lost, and never becomes a
``KeyboardInterrupt``.  A stop during the start-up imports ends them early: a task's
(:func:`import_unless_stopped`) at once, the supervisor's at the next module
(:class:`AbandonImportsOnStop`, :mod:`pygnc.early_stop`).
"""

from __future__ import annotations

import importlib
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, ModuleType

#: The signals that ask a pygnc process to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """SIGINT/SIGTERM/SIGHUP -> :attr:`received` (the first signal number) + wake-up pipe.

    *handler(signum)*, if given (or set later with :meth:`set_handler`), is called too; it
    must only set a flag.
    """

    def __init__(self, handler: Callable[[int], object] | None = None) -> None:
        self.received: int | None = None
        self._handler = handler
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:  # only sets flags
        if self.received is None:
            self.received = signum
        if self._handler is not None:
            self._handler(signum)

    def wake_on_child_exit(self) -> None:
        """Make a child's exit (SIGCHLD) wake the poll too: its handler does nothing, the
        wake-up pipe gets the byte (the supervisor reaps its children at once, rather than
        at its loop's next timeout)."""
        signal.signal(signal.SIGCHLD, _no_op)

    def set_handler(self, handler: Callable[[int], object]) -> None:
        """Call *handler(signum)* on every further signal, and now if one already arrived."""
        self._handler = handler
        if self.received is not None:
            handler(self.received)

    @property
    def name(self) -> str | None:
        """Name of the first signal received (``"SIGINT"``), or None."""
        return None if self.received is None else signal.Signals(self.received).name

    def drain(self) -> None:
        """Empty the wake-up pipe (call when the poller reports it readable)."""
        try:
            while os.read(self.read_fd, 512):
                pass
        except (BlockingIOError, OSError):
            pass


def _no_op(signum: int, frame: FrameType | None) -> None:
    pass


def ignore_stop_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP ignored: a child's state between fork and exec
    (``preexec_fn``).  Python keeps an ignored SIGINT ignored; the new process's first
    statement installs its own handlers (:class:`StopSignals`).  A signal in between is
    lost, so the supervisor sends ``stop`` (and SIGTERM to a task not connected yet) again
    until the task is gone."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class ImportsAbandoned(BaseException):
    """A stop signal came while :class:`AbandonImportsOnStop` was in force: the import
    under way was given up at its next module (not an ``Exception``: no library's
    ``except Exception`` around an optional import swallows it)."""


class AbandonImportsOnStop:
    """``with AbandonImportsOnStop(signals): import ...`` - once a stop signal has come, the
    next module any import looks up raises :class:`ImportsAbandoned` instead (a finder
    first on ``sys.meta_path``, removed on leaving the block).

    For the supervisor, which must still write its final status after such a stop: the
    imports stop at the next module, in the main thread, and leave it the whole CPU (an
    import thread, :func:`import_unless_stopped`, would go on competing for it).  Modules
    already imported stay usable; a module given up half-way is not (Python drops it from
    ``sys.modules``): use only what was imported before the block."""

    def __init__(self, signals: StopSignals) -> None:
        self._signals = signals

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if self._signals.received is not None:
            raise ImportsAbandoned(name)
        return None  # the next finder finds it

    def __enter__(self) -> AbandonImportsOnStop:
        sys.meta_path.insert(0, self)  # a finder: it has find_spec
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass


def import_unless_stopped(module: str, signals: StopSignals, poll_s: float = 0.5) -> ModuleType | None:
    """Import *module* in a helper thread while this (the main) thread waits for it or for
    a stop signal; the module, or None if a signal came first (the import may still be
    running: the caller exits with ``os._exit``).  Exceptions of the import are raised here.

    Start-up imports (zmq, numpy, the estimation stack) take most of a task's start-up -
    seconds on a loaded or small CPU - and a process told to stop before it has started
    holds nothing: it must not make the whole tree wait for its imports."""
    result: dict = {}
    done_r, done_w = os.pipe()

    def work() -> None:
        try:
            result["module"] = importlib.import_module(module)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            result["exc"] = exc
        finally:
            os.write(done_w, b"x")

    threading.Thread(target=work, name=f"import {module}", daemon=True).start()
    while True:
        if signals.received is not None:
            return None  # the pipe stays open: the thread may still write to it
        ready, _, _ = select.select([done_r, signals.read_fd], [], [], poll_s)
        if signals.read_fd in ready:
            signals.drain()
        if done_r in ready:
            break
    os.close(done_r)
    os.close(done_w)
    if "exc" in result:
        raise result["exc"]
    return result["module"]
