"""Serial links for the device drivers, and a runner for request/response exchanges.

* :func:`open_link` opens a port given as a device path, any pyserial URL
  (``serial.serial_for_url``: ``/dev/ttyUSB0``, ``loop://``, ``socket://host:port``,
  ``hwgrep://04D8:FFEE`` ...) or a USB id ``VID:PID[:SERIAL]`` looked up with
  ``serial.tools.list_ports``.  Local ports are opened with ``exclusive=True``: pyserial takes
  an ``flock(LOCK_EX | LOCK_NB)`` on the descriptor, which the kernel drops when the
  descriptor closes or the process dies, so a crash can never leave a stale lock behind (no
  lock file).  A second opener gets a :class:`PortError` naming the port.
* :class:`SerialLink` never blocks: reads return what is waiting, writes are bounded by
  ``WRITE_TIMEOUT_S``; an I/O error (a USB adapter unplugged, a pseudo-terminal whose other
  end closed) raises :class:`LinkLost`.  Its file descriptor can sit in a task's
  ``zmq.Poller``, so a driver task wakes on bytes and never polls in a loop.
* Exchanges that are strictly request -> fixed-length reply (the USB-ISS bridge) are written
  as generators yielding :class:`Transfer` and :class:`Pause`; :class:`TransactionRunner`
  drives one over a link without blocking (:meth:`TransactionRunner.advance` whenever bytes
  arrive or its deadline passes), and :func:`run_blocking` drives one to the end for tools
  and tests.  The protocol logic stays pure: it never touches the port or the clock.
"""

from __future__ import annotations

import errno
import select
import time
from dataclasses import dataclass, field
from typing import Any, Generator

import serial
import serial.tools.list_ports

#: Longest a write may wait for the device to take the bytes, s.
WRITE_TIMEOUT_S = 0.2


class PortError(Exception):
    """The port cannot be found or opened (the message names it and why)."""


class LinkLost(Exception):
    """An open link failed (device unplugged, far end closed)."""


class LinkTimeout(Exception):
    """A reply did not arrive in time."""


def parse_usb_id(text: str) -> tuple[int, int, str | None]:
    """``"04D8:FFEE"`` or ``"04d8:ffee:SERIAL"`` -> (vid, pid, serial or None)."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3):
        raise PortError(f"USB id {text!r} is not VID:PID or VID:PID:SERIAL (hex)")
    try:
        vid, pid = int(parts[0], 16), int(parts[1], 16)
    except ValueError:
        raise PortError(f"USB id {text!r}: VID and PID must be hexadecimal") from None
    if not (0 <= vid <= 0xFFFF and 0 <= pid <= 0xFFFF):
        raise PortError(f"USB id {text!r}: VID and PID are 16-bit")
    return vid, pid, (parts[2] if len(parts) == 3 and parts[2] else None)


def find_usb_port(vid: int, pid: int, serial_number: str | None = None) -> str:
    """Device path of the first port (sorted by path) with this USB VID/PID (and serial)."""
    matches = sorted(p.device for p in serial.tools.list_ports.comports()
                     if p.vid == vid and p.pid == pid
                     and (serial_number is None or p.serial_number == serial_number))
    if not matches:
        want = f"{vid:04X}:{pid:04X}" + (f" serial {serial_number}" if serial_number else "")
        raise PortError(f"no serial port with USB id {want} is connected")
    return matches[0]


def resolve_port(port: str | None = None, usb: str | None = None) -> str:
    """The path or URL to open: *port* as given, else the port found by USB id *usb*."""
    if port:
        return port
    if usb:
        return find_usb_port(*parse_usb_id(usb))
    raise PortError("no port given (set 'port' to a path or URL, or 'usb' to VID:PID)")


@dataclass
class LinkCounters:
    bytes_rx: int = 0
    bytes_tx: int = 0
    bytes_discarded: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class SerialLink:
    """A non-blocking byte link over an open pyserial port."""

    def __init__(self, ser: serial.SerialBase, name: str):
        self.ser = ser
        self.name = name
        self.counters = LinkCounters()
        try:
            self._fd = ser.fileno()
        except Exception:  # URL handlers without a descriptor (loop://, rfc2217://)
            self._fd = None

    def fileno(self) -> int | None:
        """The descriptor to poll for readability, or None (then poll on a short timer)."""
        return self._fd

    @property
    def is_open(self) -> bool:
        return bool(self.ser is not None and self.ser.is_open)

    def read_available(self, max_bytes: int = 4096) -> bytes:
        """Whatever bytes are waiting (possibly none); never blocks."""
        try:
            data = self.ser.read(max_bytes)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise LinkLost(f"{self.name}: read failed: {exc}") from None
        self.counters.bytes_rx += len(data)
        return bytes(data)

    def write(self, data: bytes) -> None:
        try:
            n = self.ser.write(data)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise LinkLost(f"{self.name}: write failed: {exc}") from None
        if n is not None and n != len(data):
            raise LinkLost(f"{self.name}: wrote {n} of {len(data)} bytes")
        self.counters.bytes_tx += len(data)

    def discard_input(self) -> int:
        """Drop bytes already waiting (stale replies); returns how many."""
        n = 0
        while True:
            data = self.read_available()
            if not data:
                break
            n += len(data)
        self.counters.bytes_discarded += n
        return n

    def wait_readable(self, timeout_s: float) -> bool:
        """Wait up to *timeout_s* for bytes (for tools and tests; tasks use their poller)."""
        timeout_s = max(0.0, timeout_s)
        if self._fd is not None:
            try:
                ready, _, _ = select.select([self._fd], [], [], timeout_s)
            except (OSError, ValueError) as exc:
                raise LinkLost(f"{self.name}: {exc}") from None
            return bool(ready)
        try:
            if self.ser.in_waiting:
                return True
        except Exception as exc:
            raise LinkLost(f"{self.name}: {exc}") from None
        time.sleep(min(timeout_s, 0.01))
        return False

    def close(self) -> None:
        if self.ser is not None:
            try:
                self.ser.close()
            except Exception:  # closing a dead port must not raise
                pass
            self.ser = None


def _open_reason(exc: serial.SerialException) -> str:
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY) or "exclusively lock" in text:
        return "in use by another process"
    if code == errno.ENOENT:
        return "no such device (not connected?)"
    if code == errno.EACCES:
        return "permission denied (is the user in the dialout group?)"
    return f"cannot open: {text}"


def open_link(port: str | None = None, usb: str | None = None, baudrate: int = 57600,
              exclusive: bool = True) -> SerialLink:
    """Open *port* (path or pyserial URL) or the port with USB id *usb*, locked for us alone.

    Raises :class:`PortError` with the reason (not found, in use, no permission).
    """
    target = resolve_port(port, usb)
    try:
        ser = serial.serial_for_url(target, do_not_open=True, baudrate=baudrate, timeout=0,
                                    write_timeout=WRITE_TIMEOUT_S)
        if exclusive and isinstance(ser, serial.Serial) and hasattr(ser, "exclusive"):
            ser.exclusive = True
        ser.open()
    except serial.SerialException as exc:
        raise PortError(f"{target}: {_open_reason(exc)}") from None
    except (OSError, ValueError) as exc:
        raise PortError(f"{target}: cannot open: {exc}") from None
    return SerialLink(ser, target)


# --------------------------------------------------------------------------------------------
# Transactions written as generators
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Transfer:
    """Write *tx*, then read exactly *rx_len* bytes (the generator receives them)."""

    tx: bytes
    rx_len: int


@dataclass(frozen=True)
class Pause:
    """Let *seconds* pass before the next action (the generator receives None)."""

    seconds: float


Exchange = Generator[Any, Any, Any]


@dataclass
class Outcome:
    """How a generator ended: its return value, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RunnerCounters:
    transfers: int = 0
    timeouts: int = 0
    stale_bytes: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TransactionRunner:
    """Drives one exchange generator at a time over *link* without ever blocking.

    Call :meth:`advance` when the link is readable or :attr:`deadline` has passed; it
    returns an :class:`Outcome` when the generator ends.  A reply that misses
    *reply_timeout_s* is thrown into the generator as :class:`LinkTimeout` (which it may
    handle); bytes left over from an earlier late reply are discarded before each transfer.
    A :class:`LinkLost` ends the exchange with that error.
    """

    link: SerialLink
    reply_timeout_s: float = 0.5
    counters: RunnerCounters = field(default_factory=RunnerCounters)
    _gen: Exchange | None = None
    _need: int = 0
    _buf: bytearray = field(default_factory=bytearray)
    _reply_deadline: float | None = None
    _pause_end: float | None = None
    _send: Any = None

    @property
    def active(self) -> bool:
        return self._gen is not None

    @property
    def waiting_reply(self) -> bool:
        return self._reply_deadline is not None

    @property
    def deadline(self) -> float | None:
        """Monotonic time by which :meth:`advance` must be called again (None: idle)."""
        if self._gen is None:
            return None
        return self._reply_deadline if self._reply_deadline is not None else self._pause_end

    def start(self, gen: Exchange, now: float) -> Outcome | None:
        if self._gen is not None:
            raise RuntimeError("an exchange is already running")
        self._gen, self._send = gen, None
        self._reply_deadline = self._pause_end = None
        return self._step(now, first=True)

    def cancel(self) -> None:
        if self._gen is not None:
            self._gen.close()
        self._gen = None
        self._reply_deadline = self._pause_end = None

    def advance(self, now: float) -> Outcome | None:
        if self._gen is None:
            return None
        if self._reply_deadline is not None:
            try:
                data = self.link.read_available(self._need - len(self._buf))
            except LinkLost as exc:
                return self._finish(Outcome(error=exc))
            self._buf += data
            if len(self._buf) < self._need:
                if now < self._reply_deadline:
                    return None
                self.counters.timeouts += 1
                self._reply_deadline = None
                got = len(self._buf)
                return self._step(now, throw=LinkTimeout(
                    f"{self.link.name}: {got} of {self._need} reply bytes after {self.reply_timeout_s} s"))
            self._reply_deadline = None
            self._send = bytes(self._buf)
        elif self._pause_end is not None:
            if now < self._pause_end:
                return None
            self._pause_end = None
            self._send = None
        return self._step(now)

    def _finish(self, outcome: Outcome) -> Outcome:
        if self._gen is not None and outcome.error is not None:
            self._gen.close()
        self._gen = None
        self._reply_deadline = self._pause_end = None
        return outcome

    def _step(self, now: float, first: bool = False, throw: BaseException | None = None) -> Outcome | None:
        while True:
            try:
                if throw is not None:
                    action = self._gen.throw(throw)
                    throw = None
                elif first:
                    action = next(self._gen)
                    first = False
                else:
                    action = self._gen.send(self._send)
            except StopIteration as stop:
                return self._finish(Outcome(value=stop.value))
            except Exception as exc:  # the exchange failed; report, never crash the caller
                self._gen = None
                return self._finish(Outcome(error=exc))
            if isinstance(action, Transfer):
                try:
                    self.counters.stale_bytes += self.link.discard_input()
                    self.link.write(action.tx)
                except LinkLost as exc:
                    return self._finish(Outcome(error=exc))
                self.counters.transfers += 1
                self._need, self._buf = action.rx_len, bytearray()
                self._reply_deadline = now + self.reply_timeout_s
                if action.rx_len == 0:
                    self._reply_deadline, self._send = None, b""
                    continue
                return None
            if isinstance(action, Pause):
                if action.seconds <= 0:
                    self._send = None
                    continue
                self._pause_end = now + action.seconds
                return None
            return self._finish(Outcome(error=TypeError(f"exchange yielded {action!r}")))


def run_blocking(gen: Exchange, link: SerialLink, reply_timeout_s: float = 0.5,
                 timeout_s: float = 60.0) -> Any:
    """Drive *gen* to its end (tools, tests, benchmarks); returns its value or raises its error.

    Waits on the link's descriptor or sleeps until the next pause ends: never spins.
    """
    runner = TransactionRunner(link, reply_timeout_s)
    t_end = time.monotonic() + timeout_s
    outcome = runner.start(gen, time.monotonic())
    while outcome is None:
        now = time.monotonic()
        if now > t_end:
            runner.cancel()
            raise LinkTimeout(f"{link.name}: exchange not finished after {timeout_s} s")
        wait = max(0.0, (runner.deadline or now) - now)
        if runner.waiting_reply:
            link.wait_readable(wait)
        elif wait > 0:
            time.sleep(wait)
        outcome = runner.advance(time.monotonic())
    if outcome.error is not None:
        raise outcome.error
    return outcome.value
