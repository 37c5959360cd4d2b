"""The zygote: one process that imports the tasks' code once and forks the tasks from it.

Every task imports the same stack (numpy, pyzmq, msgpack, the estimation code): spawned as
interpreters of their own, the tasks each hold a private copy of it and each pay for the
imports at start-up.  Forked from one process that has imported it, they share those pages
(copy-on-write; ``gc.freeze()`` keeps the collector from writing to the imported objects);
docs/design/zygote.md.

``python -m pygnc.zygote [--stdio-fds IN,OUT] MODULE ...`` (started by the supervisor, SIGINT
and SIGTERM ignored): imports ``pygnc.tasks.base``, every *MODULE* (the tasks' modules, in
start order) and :data:`LAZY_IMPORTS` in its only thread, one at a time, and forks a
requested task once all are in - or, for a task marked ``fork_early`` (the status reporter,
first and without numpy), once its own module is; it reads requests from stdin and reports on
stdout, one JSON object per line each way (the layout is :data:`REQUEST_FIELDS` / :data:`EVENTS`; an internal pipe
between the supervisor and its own child, documented in docs/interface.md, "The zygote"):

- request ``{"id": n, "name": task, "argv": [...]}`` -> the zygote forks; the child becomes
  task *name* (``pygnc.tasks.base.task_main(argv)``, exactly what ``python -m pygnc.tasks``
  runs) -> event ``{"event": "forked", "id": n, "pid": p}`` (or ``{"event": "fork_failed",
  "id": n, "error": "..."}``);
- a child exits -> ``{"event": "exit", "pid": p, "status": s}`` (``Popen.returncode``
  convention: negative = killed by that signal);
- ``{"event": "ready", "pid": p, "import_s": t}`` once the imports are done,
  ``{"event": "failed", "error": "..."}`` and exit status 1 if one failed (the supervisor
  then spawns every task itself).

The zygote stays single-threaded (:class:`Zygote` sets ``OPENBLAS_NUM_THREADS=1`` before
numpy loads) so a fork copies a consistent process; it never opens a socket or a
ZeroMQ context.  End of stdin (the supervisor closed it, or is gone) ends it; tasks still
running then are not its to stop.  A forked child starts with SIGINT and SIGTERM ignored
(inherited) until the task installs its own handlers - as a spawned task does - with stdin
on /dev/null and stdout on stderr, except the stream task: it gets the host's terminal
(copies of the supervisor's stdin and stdout that the zygote holds, ``--stdio-fds``), and
its process name (``comm``, shown by ``ps`` and ``top``) set to
:func:`pygnc.tasks.table.process_name`.

:class:`Zygote` and :class:`ForkedProc` are the supervisor's side: non-blocking, polled from
its loop, the subset of :class:`subprocess.Popen` the supervisor uses (``pid``, ``poll``,
``kill``, ``send_signal``).  A zygote that failed, exited or stopped reading takes no more
requests; one that took a request and did not fork it within the supervisor's
``ready_timeout_s``, or left a task's exit unreported for :data:`EXIT_REPORT_GRACE_S`, is
killed as hung (:meth:`Zygote.hung`); either way later tasks are spawned and those it
forked run on.  By default the supervisor ends the zygote once every task of the start is
forked (:meth:`Zygote.finish`, ``Config.keep_zygote``): the pages only it still holds go,
and the supervisor - the tasks' child subreaper (:func:`become_subreaper`) - reaps the
tasks it forked (:meth:`Zygote.service`) with their real exit status.  (:mod:`multiprocessing`'s ``forkserver``
does the same job but
blocks the caller, with no timeout, until the server has imported everything and forked,
starts a resource-tracker process as well, and restores a KeyboardInterrupt handler in the
child; the supervisor must never block.)
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from typing import TYPE_CHECKING

from .signals import ignore_stop_signals
from .tasks.table import TASKS_BY_NAME, process_name

if TYPE_CHECKING:
    import logging

#: Fields of a request line (supervisor -> zygote).
REQUEST_FIELDS = ("id", "name", "argv")
#: Event lines (zygote -> supervisor): ``event`` and the fields each carries.
EVENTS = {
    "ready": ("pid", "import_s"),
    "failed": ("error",),
    "forked": ("id", "pid"),
    "fork_failed": ("id", "error"),
    "exit": ("pid", "status"),
}
#: Imported by the tasks only when first needed; the zygote imports them too, so their
#: pages are shared rather than loaded in each task:
#: numpy.random (range-only initial orbits), zipfile and numpy.ma (``np.load`` of the IGRF
#: table).
LAZY_IMPORTS = ("numpy.random", "numpy.ma", "zipfile")
#: Longest wait of the zygote's loop, s (children are reaped at least this often).
ZYGOTE_POLL_S = 1.0
#: Longest request line accepted, bytes (a request is ~300 bytes).
MAX_LINE_BYTES = 65536
#: Longest a forked task may lie dead (gone or a zombie) without the zygote reporting its
#: exit, once the zygote is ready, s: it reaps on SIGCHLD at once, so longer means it is
#: hung (:meth:`Zygote.hung`).
EXIT_REPORT_GRACE_S = 5.0
#: Exit status the supervisor records for a forked task that ended after the zygote had
#: gone (nobody could wait for it: its real status is unknown).
UNKNOWN_EXIT = 255


def _emit(fd: int, event: str, **fields: object) -> None:
    data = (json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n").encode()
    while data:
        try:
            data = data[os.write(fd, data) :]
        except InterruptedError:
            continue


# -- the zygote process ----------------------------------------------------------------------
def _become_task(name: str, argv: list[str], close_fds: list[int], stdio_fds: tuple[int, int] | None) -> None:
    """In the forked child: shed the zygote's state, run the task, never return.
    *stdio_fds*: the host's terminal (stdin, stdout) for the stream task, else None."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if stdio_fds is not None:
            os.dup2(stdio_fds[0], 0)
            os.dup2(stdio_fds[1], 1)
        # else 0 and 1 are the zygote's: /dev/null, and stderr (whatever a task prints goes
        # there, never to the host's stdout)
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        # Not at the top: serve() imports the task machinery in its loop (a failure there is
        # a "failed" event, not a dead zygote), and the supervisor, which imports this
        # module, never needs it.  Here it is loaded already.
        from .tasks.base import run_task_process

        try:
            with open("/proc/self/comm", "w") as f:
                f.write(process_name(TASKS_BY_NAME[name]))
        except (OSError, KeyError):
            pass
        run_task_process(argv)  # does not return
    except SystemExit as exc:  # e.g. bad arguments (argparse has said why)
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a child must never get back into the zygote's loop
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve(modules: list[str], in_fd: int = 0, out_fd: int = 1, stdio_fds: tuple[int, int] | None = None) -> int:
    """The zygote's life (``python -m pygnc.zygote [--stdio-fds IN,OUT] MODULE ...``); see the
    module docstring.  Imports one module at a time; a task marked ``fork_early`` is forked
    as soon as its own module is in (the status reporter, first in the list and without
    numpy), every other once everything is imported (so it shares all of it)."""
    t0 = time.monotonic()
    sig_r, sig_w = os.pipe()
    os.set_blocking(sig_r, False)
    os.set_blocking(sig_w, False)
    signal.set_wakeup_fd(sig_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select through the pipe
    todo = ["pygnc.tasks.base", *modules, *LAZY_IMPORTS]
    waiting: list[tuple] = []  # requests whose task module is not imported yet
    child_closes = [in_fd, out_fd, sig_r, sig_w, *(stdio_fds or ())]
    buf = b""
    while True:
        if todo:
            m = todo.pop(0)
            try:
                importlib.import_module(m)
            except BaseException as exc:  # noqa: BLE001 - reported; the supervisor spawns instead
                _emit(out_fd, "failed", error=f"{type(exc).__name__}: {m}: {exc}")
                return 1
            if not todo:
                _emit(out_fd, "ready", pid=os.getpid(), import_s=round(time.monotonic() - t0, 3))
        try:
            ready, _, _ = select.select([in_fd, sig_r], [], [], 0.0 if todo or waiting else ZYGOTE_POLL_S)
        except InterruptedError:
            ready = []
        if sig_r in ready:
            try:
                while os.read(sig_r, 512):
                    pass
            except BlockingIOError:
                pass
        _reap(out_fd)
        if in_fd in ready:
            chunk = os.read(in_fd, MAX_LINE_BYTES)
            if not chunk:
                return 0  # the supervisor is done (or gone)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if len(buf) > MAX_LINE_BYTES:
                buf = b""
            for line in lines:
                try:
                    req = json.loads(line)
                    waiting.append(tuple(req[k] for k in REQUEST_FIELDS))
                except (ValueError, KeyError, TypeError, RecursionError):
                    continue  # only the supervisor writes here; never crash on a bad line
        if not waiting or "pygnc.tasks.base" in todo:
            continue
        later = []
        for rid, name, argv in waiting:
            spec = TASKS_BY_NAME.get(name) if isinstance(name, str) else None
            if todo and not (spec is not None and spec.fork_early and spec.module in sys.modules):
                later.append((rid, name, argv))
                continue
            gc.freeze()  # what is imported so far moves to a generation the collector never writes
            try:
                pid = os.fork()
            except OSError as exc:
                _emit(out_fd, "fork_failed", id=rid, error=str(exc))
                continue
            if pid == 0:
                _become_task(name, argv, child_closes, stdio_fds if spec is not None and spec.stdio else None)
            _emit(out_fd, "forked", id=rid, pid=pid)
        waiting = later


def _reap(out_fd: int) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _emit(out_fd, "exit", pid=pid, status=os.waitstatus_to_exitcode(status))


# -- the supervisor's side ------------------------------------------------------------------
class ForkedProc:
    """A task forked by the zygote, as the supervisor sees it (the ``Popen`` subset it uses).

    ``pid`` is None until the zygote has reported the fork.  SIGKILL or SIGTERM before then
    abandons the request (``returncode`` -9, or 0 - a task stopped before it started - at
    once; the child is killed when its pid arrives), so neither a restart nor a stop waits
    for a zygote that is slow or hung."""

    def __init__(self, zygote: Zygote, name: str):
        self.zygote, self.name = zygote, name
        self.pid: int | None = None
        self.returncode: int | None = None
        self.kill_on_arrival = False
        self.orphan = False  # the zygote has gone: nobody reports its exit
        self.dead_since: float | None = None  # seen dead, its exit not reported yet

    def poll(self) -> int | None:
        if self.returncode is None:
            self.zygote.service()  # (reaps orphans too)
        if self.returncode is None and self.pid is not None and not self.orphan and not process_running(self.pid):
            # While the zygote imports it reaps only between modules: a zombie's status is
            # in /proc, known at once (a stop must not wait for the import).  A ready one
            # reaps at once, and one that does not is hung (unreported_exit).
            if not self.zygote.ready:
                self.returncode = _zombie_exit_status(self.pid)
            if self.returncode is None:
                self.zygote.unreported_exit(self)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is not None:  # (as Popen: never a pid already reported gone)
            return
        if self.pid is None:  # not forked yet: abandoned (it is killed when its pid arrives)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.kill_on_arrival = True
                # SIGTERM: what a spawned task told to stop before it started does - exit 0
                self.returncode = -signal.SIGKILL if sig == signal.SIGKILL else 0
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux
    ``prctl(PR_SET_CHILD_SUBREAPER)``): a task whose zygote has exited is re-parented to
    the supervisor, which then reaps it and learns its real exit status.  False where
    that is not available (the orphans are then watched by pid, status unknown)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _zombie_exit_status(pid: int) -> int | None:
    """The exit status (``Popen.returncode`` convention) of *pid* if it is a zombie - field
    52 of ``/proc/<pid>/stat``, Linux >= 3.5 - else None (gone, running, or unreadable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        if fields[0] != b"Z" or len(fields) < 50:
            return None
        return os.waitstatus_to_exitcode(int(fields[49]))
    except (OSError, IndexError, ValueError):
        return None


def process_running(pid: int) -> bool:
    """*pid* exists and is not a zombie (an orphan waits as one until init reaps it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


class Zygote:
    """Start ``python -m pygnc.zygote`` and fork tasks through it, never blocking.

    :meth:`fork` returns a :class:`ForkedProc` at once, or None when the zygote cannot take
    the request (it failed or is gone: the caller spawns the task itself).  :attr:`read_fd`
    is for the caller's poll; :meth:`service` reads what the zygote reported."""

    def __init__(
        self, modules: list[str], env: dict, cwd: str, log: logging.Logger | None = None, stdio: bool = False
    ) -> None:
        """*modules* in the order their tasks start; *stdio*: the zygote keeps copies of this
        process's stdin and stdout (the host's terminal) for the stream task."""
        self.log = log
        env = dict(env)
        env["OPENBLAS_NUM_THREADS"] = "1"  # no BLAS threads in the process forked
        args: list[str] = []
        fds: tuple[int, ...] = ()
        if stdio:
            try:
                fds = (os.dup(0), os.dup(1))
                args = ["--stdio-fds", f"{fds[0]},{fds[1]}"]
            except OSError:
                fds = ()
        self.has_stdio = bool(fds)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pygnc.zygote", *args, *modules],
                env=env,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=fds,
                preexec_fn=ignore_stop_signals,
            )
        finally:
            for fd in fds:
                os.close(fd)
        assert self.proc.stdin is not None and self.proc.stdout is not None  # pipes
        self._in = self.proc.stdin.fileno()
        self.read_fd = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self.read_fd, False)
        self._buf = b""
        self._next_id = 0
        self._pending: dict[int, ForkedProc] = {}
        self._closed = False
        self._by_pid: dict[int, ForkedProc] = {}
        self._orphans: dict[int, ForkedProc] = {}  # forked, the zygote gone, not reaped yet
        self._abandoned: dict[int, ForkedProc] = {}  # requests pending when it was lost
        self.ready = False
        self.import_s: float | None = None
        self.gone: str | None = None  # why it can take no more requests
        self.finishing = False  # told to exit once its work is done (finish())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def fork(self, name: str, argv: list[str]) -> ForkedProc | None:
        self.service()
        if self.gone or self.finishing:
            return None
        self._next_id += 1
        line = (json.dumps({"id": self._next_id, "name": name, "argv": argv}) + "\n").encode()
        try:
            n = os.write(self._in, line)
        except (BlockingIOError, BrokenPipeError, OSError) as exc:
            self._lost(f"cannot take a request ({exc})")
            return None
        if n != len(line):  # a full pipe: it has not read for 64 KiB of requests - hung
            self._lost("stopped reading requests")
            return None
        p = ForkedProc(self, name)
        self._pending[self._next_id] = p
        return p

    @property
    def pending(self) -> int:
        """Requests not forked yet."""
        return len(self._pending)

    def finish(self) -> None:
        """Take no more requests and let the zygote exit (end of its stdin; never blocks):
        the tasks it forked run on, re-parented to this process if it is their subreaper
        (:func:`become_subreaper`) and reaped here; later tasks are spawned."""
        if self.gone or self.finishing:
            return
        self.finishing = True
        assert self.proc.stdin is not None  # a pipe
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def service(self) -> None:
        """Read and apply what the zygote reported; reap the orphans (never blocks)."""
        if self.gone and self.proc.returncode is None:
            self.proc.poll()  # (reaps the zygote once it has exited)
        if self._orphans:
            self._reap_orphans()
        if self.read_fd < 0:
            return
        eof = False
        try:
            while True:
                chunk = os.read(self.read_fd, 65536)
                if not chunk:
                    eof = True
                    break
                self._buf += chunk
        except BlockingIOError:
            pass
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            try:
                ev = json.loads(line)
                self._apply(ev)
            except (ValueError, KeyError, TypeError, RecursionError):
                self._note(f"zygote: unreadable event {line[:80]!r}")
        if eof:
            self._lost("done: every task forked" if self.finishing else "exited")

    def _apply(self, ev: dict) -> None:
        kind = ev["event"]
        if not set(EVENTS[kind]) <= ev.keys():
            raise KeyError(kind)  # (counted as unreadable)
        if kind == "ready":
            self.ready, self.import_s = True, ev["import_s"]
            self._note(f"zygote ready (pid {ev['pid']}, imports {ev['import_s']:.2f} s)", info=True)
        elif kind == "failed":
            self._lost(f"failed: {ev['error']}")
        elif kind == "forked":
            p = self._pending.pop(ev["id"], None)
            pid = ev["pid"]
            if not isinstance(pid, int) or pid <= 0:
                return
            if p is None:
                p = self._abandoned.pop(ev["id"], None)
                if p is not None:  # forked after the zygote was given up: kill and reap it
                    p.pid = pid
                    p.orphan = True
                    self._orphans[pid] = p
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return
            p.pid = pid
            self._by_pid[p.pid] = p
            self._note(f"started {p.name} (pid {p.pid}, forked)", info=True)
            if p.kill_on_arrival:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        elif kind == "fork_failed":
            p = self._pending.pop(ev["id"], None)
            if p is not None:
                p.returncode = UNKNOWN_EXIT
                self._note(f"zygote could not fork {p.name}: {ev['error']}")
        elif kind == "exit":
            p = self._by_pid.pop(ev["pid"], None)
            if p is not None and p.returncode is None:  # (an abandoned one keeps its status)
                p.returncode = ev["status"]

    def unreported_exit(self, p: ForkedProc) -> None:
        """*p* is dead and the zygote has not said so: normal for an instant (it reaps on
        SIGCHLD), or while it imports a module; for :data:`EXIT_REPORT_GRACE_S` once it
        is ready, it is hung (a task that died would never be restarted)."""
        now = time.monotonic()
        if p.dead_since is None or not self.ready:
            p.dead_since = now
        elif now - p.dead_since > EXIT_REPORT_GRACE_S:
            self.hung(f"did not report the exit of {p.name} (pid {p.pid}) within {EXIT_REPORT_GRACE_S:.0f} s")

    def hung(self, why: str) -> None:
        """The zygote took a request and did not fork it in time (it is hung, stopped, or
        importing far slower than a task may take to start): take no more requests, kill
        it (its children are not touched) - later starts are spawned."""
        self._lost(why)
        self.kill()

    def _lost(self, why: str) -> None:
        if self.gone:
            return
        self.gone = why
        self._note(f"zygote {why}: tasks are spawned from now on", info=self.finishing and why.startswith("done"))
        for p in self._pending.values():  # never forked: gone with the request ...
            if p.returncode is None:
                p.returncode = UNKNOWN_EXIT
            p.kill_on_arrival = True  # ... and killed if its fork is reported after all
        self._abandoned.update(self._pending)
        self._pending.clear()
        for pid, p in self._by_pid.items():  # still running, or their exit was never reported
            p.orphan = True
            self._orphans[pid] = p
        self._by_pid.clear()
        self._reap_orphans()

    def _reap_orphans(self) -> None:
        """Reap the forked tasks re-parented to this process (its subreaper) and record
        their exit status; one that is still not this process's child once the zygote is
        reaped (no subreaper) and is gone counts as exited with :data:`UNKNOWN_EXIT`."""
        for pid, p in list(self._orphans.items()):
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                got = None
            if got:
                if p.returncode is None:
                    p.returncode = os.waitstatus_to_exitcode(status)
                del self._orphans[pid]
            elif got is None and self.proc.returncode is not None and not process_running(pid):
                # The zygote is reaped, so its children were re-parented: not ours (no
                # subreaper), and gone - its status is lost.  (Before that, a dead child
                # may still be re-parented to us with its real status.)
                if p.returncode is None:
                    p.returncode = UNKNOWN_EXIT
                del self._orphans[pid]

    def _note(self, text: str, info: bool = False) -> None:
        if self.log is not None:
            (self.log.info if info else self.log.warning)("%s", text)

    def close(self, timeout_s: float = 1.0) -> None:
        """End the zygote (end of its stdin; SIGKILL at once if it is still importing, else
        after *timeout_s* - unless it has finished (:meth:`finish`) and said all it will:
        it is exiting and :meth:`service` reaps it), reap it, and apply what it reported
        meanwhile (a child of an abandoned request that arrives now is killed).  Once only: a
        second call returns at once."""
        if self._closed:
            return
        self._closed = True
        self.service()
        importing = not self.ready and not self.gone  # it would not see the end of stdin
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        # Still importing: killed at once (a fork it made meanwhile is in the pipe, read below,
        # and its child killed); else it has *timeout_s* to exit by itself.
        exited = False
        if not importing:
            try:
                self.proc.wait(timeout_s)
                exited = True
            except subprocess.TimeoutExpired:
                pass
        if not exited and not (self.finishing and self.gone):  # (one that finished exits by itself)
            self.proc.kill()
            try:
                self.proc.wait(min(timeout_s, 0.2))
            except subprocess.TimeoutExpired:
                pass
        self.gone = self.gone or "closed"
        if self.read_fd >= 0 and self.proc.returncode is not None:
            os.set_blocking(self.read_fd, True)  # the zygote has exited: read to the end
            self.service()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.read_fd = -1
        self.gone = self.gone or "closed"

    def kill(self) -> None:
        """SIGKILL the zygote (the supervisor failed); its children are not touched."""
        try:
            self.proc.kill()
        except OSError:
            pass


def main(argv: list[str]) -> int:
    stdio_fds = None
    if argv[:1] == ["--stdio-fds"]:
        fd_in, fd_out = (int(x) for x in argv[1].split(","))
        stdio_fds = (fd_in, fd_out)
        argv = argv[2:]
    # The request and event pipes move off fds 0 and 1, which become /dev/null and stderr:
    # a child closes the pipes and keeps 0, 1 and 2 as they are (or as the stream's).
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return serve(argv, in_fd, out_fd, stdio_fds=stdio_fds)


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
