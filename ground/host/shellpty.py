"""A login shell on a pseudo-terminal, reachable as a serial port: the Pi without a Pi.

On the spacecraft the PyCubed's UART is wired to the Pi's serial console (a getty and a
login shell behind a terminal line discipline).  :class:`LocalShell` builds the same thing
on one machine: a shell (``bash`` by default) runs on pseudo-terminal A as a session
leader with A as its controlling terminal - so the kernel's line discipline turns a 0x03
into SIGINT for the foreground job, exactly as on the console - and a relay thread copies
bytes between A's master and the master of a second pseudo-terminal B, whose slave
(``port``, e.g. ``/dev/pts/7``) the host emulator opens with pyserial like any serial
device (a null-modem cable between two UARTs).  With *baud* the relay carries at most
baud / 10 bytes per second each way (8N1 framing), so a bench sees a real line's limits:
the Pi's output backs up, its writes hit EAGAIN, and its own queue drops what the line
cannot carry.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import threading
import time
import tty
from pathlib import Path


def _controlling_terminal():  # in the child, after setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _Bucket:
    """Token bucket: at most *rate* bytes per second, bursts of *burst* bytes."""

    def __init__(self, rate: float | None, burst: int = 64):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.t = time.monotonic()

    def allowed(self) -> int:
        if self.rate is None:
            return 65536
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.t) * self.rate)
        self.t = now
        return int(self.tokens)

    def take(self, n: int) -> None:
        if self.rate is not None:
            self.tokens -= n

    def wait_s(self) -> float:
        if self.rate is None or self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.rate


class LocalShell:
    """A shell on a pseudo-terminal; ``port`` is the serial-device path of its console.

    *argv*: the shell (default ``bash --noprofile --norc -i``: an interactive shell with
    job control, without the machine's start-up files); *env*: its environment (``HOME``
    set to *home* when given, and then no ``PYGNC_HOME`` or ``PYGNC_CONFIG``); *baud*: line
    rate of the relay (None: as fast as the pseudo-terminals go).  Use as a context manager;
    :meth:`close` kills the shell's session and releases both terminals.
    """

    def __init__(
        self,
        home: str | os.PathLike | None = None,
        argv: list[str] | None = None,
        env: dict | None = None,
        baud: int | None = None,
    ):
        self.argv = argv or ["bash", "--noprofile", "--norc", "-i"]
        e = dict(os.environ if env is None else env)
        if home is not None:
            e["HOME"] = str(Path(home))
            # the Pi's pygnc works in its HOME: not in a home or configuration this
            # machine's environment names
            for name in ("PYGNC_HOME", "PYGNC_CONFIG"):
                e.pop(name, None)
        e.setdefault("TERM", "dumb")
        e.pop("PROMPT_COMMAND", None)
        if env is None or "PS1" not in env:
            # Raspberry Pi OS's prompt, not whatever this process inherited (an activated
            # virtualenv's PS1 is "(.venv) ", which no console prompt looks like).
            e["PS1"] = "\\u@\\h:\\w\\$ "
        self.baud = baud
        self.bytes_to_shell = self.bytes_from_shell = 0
        self._a_master, a_slave = pty.openpty()
        self._b_master, b_slave = pty.openpty()
        tty.setraw(b_slave)  # the host side: a raw serial line until pyserial opens it
        self.port = os.ttyname(b_slave)
        self._b_slave = b_slave  # kept open: B's master never sees EIO between opens
        self.proc = subprocess.Popen(
            self.argv,
            stdin=a_slave,
            stdout=a_slave,
            stderr=a_slave,
            env=e,
            cwd=e.get("HOME") or None,
            start_new_session=True,
            preexec_fn=_controlling_terminal,
            close_fds=True,
        )
        os.close(a_slave)
        for fd in (self._a_master, self._b_master):
            os.set_blocking(fd, False)
        self._stop = threading.Event()
        self._relay = threading.Thread(target=self._run, name="shell relay", daemon=True)
        self._relay.start()

    def _run(self) -> None:
        rate = None if self.baud is None else self.baud / 10.0
        to_shell, from_shell = _Bucket(rate), _Bucket(rate)
        pend_to_shell = bytearray()  # read from B, not yet written to A
        pend_from_shell = bytearray()  # read from A, not yet written to B
        a, b = self._a_master, self._b_master
        while not self._stop.is_set():
            rd, wr = [], []
            if len(pend_to_shell) < 4096 and to_shell.allowed() > 0:
                rd.append(b)
            if len(pend_from_shell) < 4096 and from_shell.allowed() > 0:
                rd.append(a)
            if pend_to_shell:
                wr.append(a)
            if pend_from_shell:
                wr.append(b)
            timeout = 0.05
            waits = [x.wait_s() for x in (to_shell, from_shell) if x.wait_s() > 0]
            if waits:
                timeout = min(timeout, max(0.0005, min(waits)))
            try:
                r, w, _ = select.select(rd, wr, [], timeout)
            except (OSError, ValueError):
                return
            try:
                if b in r:
                    data = os.read(b, min(4096, to_shell.allowed()))
                    to_shell.take(len(data))
                    pend_to_shell += data
                if a in r:
                    data = os.read(a, min(4096, from_shell.allowed()))
                    if not data:
                        return
                    from_shell.take(len(data))
                    pend_from_shell += data
                if a in w and pend_to_shell:
                    n = os.write(a, pend_to_shell)
                    self.bytes_to_shell += n
                    del pend_to_shell[:n]
                if b in w and pend_from_shell:
                    n = os.write(b, pend_from_shell)
                    self.bytes_from_shell += n
                    del pend_from_shell[:n]
            except BlockingIOError:
                continue
            except OSError:  # EIO: the shell (and everything on its terminal) is gone
                return

    def alive(self) -> bool:
        return self.proc.poll() is None

    def session_pids(self) -> list[int]:
        """Every process of the shell's session (the shell, and the jobs it started)."""
        return session_pids(self.proc.pid)

    def close(self) -> None:
        """Kill everything in the shell's session (SIGKILL: test and bench cleanup; a run
        to be stopped in order gets Ctrl-C first) and release the terminals."""
        self._stop.set()
        for _ in range(3):
            pids = self.session_pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.05)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._relay.join(timeout=2)
        for fd in (self._a_master, self._b_master, self._b_slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def session_pids(sid: int) -> list[int]:
    """Processes whose session id is *sid* (Linux /proc; zombies excluded)."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 3 and fields[0] != b"Z" and int(fields[3]) == sid:
            out.append(int(entry.name))
    return out
