"""Byte links for the drivers: any pyserial URL, or a UDP/TCP socket.

* :func:`open_link` / :class:`SerialLink` open a port given as a device path, any pyserial
  URL (``serial.serial_for_url``: ``/dev/ttyUSB0``, a pseudo-terminal, ``loop://``,
  ``socket://host:port``, ``hwgrep://04D8:FFEE`` ...) or, through :func:`open_link`, a USB
  id ``VID:PID[:SERIAL]`` looked up with ``serial.tools.list_ports``.  Local ports are opened
  with ``exclusive=True``: pyserial takes an ``flock(LOCK_EX | LOCK_NB)`` on the descriptor,
  which the kernel drops when the descriptor closes or the process dies, so a crash never
  leaves a stale lock (no lock file).  A second opener gets a :class:`LinkError` saying the
  port is in use; discovery uses this to skip ports in use.
* Every read returns at once with what is waiting (never blocks); writes are bounded by a
  write timeout.  A link that is gone (USB unplugged, pseudo-terminal closed, peer closed the
  socket) raises :class:`LinkLost` from ``read``/``write``, so the caller closes it and
  reconnects.  ``fileno()`` gives the descriptor to put in a task's ``zmq.Poller``, or
  ``None`` for URL handlers without one (``loop://``): then the caller polls on a short timer.
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import serial
import serial.tools.list_ports

from .errors import DriverError
from .usb_id import UsbIdError, parse_usb_id

#: Longest a write may wait for the device to take the bytes, s.
WRITE_TIMEOUT_S = 0.2


class LinkError(DriverError):
    """A link could not be found, opened or configured (the message names the port and why)."""


class LinkLost(LinkError):
    """An open link went away (device unplugged, port closed, peer closed)."""


def find_usb_port(vid: int, pid: int, serial_number: str | None = None) -> str:
    """Device path of the first port (sorted by path) with this USB VID/PID (and serial)."""
    matches = sorted(
        p.device
        for p in serial.tools.list_ports.comports()
        if p.vid == vid and p.pid == pid and (serial_number is None or p.serial_number == serial_number)
    )
    if not matches:
        want = f"{vid:04X}:{pid:04X}" + (f" serial {serial_number}" if serial_number else "")
        raise LinkError(f"no serial port with USB id {want} is connected")
    return matches[0]


def resolve_port(port: str | None = None, usb: str | None = None) -> str:
    """The path or URL to open: *port* as given, else the port found by USB id *usb*."""
    if port:
        return port
    if usb:
        try:
            ids = parse_usb_id(usb)
        except UsbIdError as exc:
            raise LinkError(str(exc)) from None
        return find_usb_port(*ids)
    raise LinkError("no port given (set 'port' to a path or URL, or 'usb' to VID:PID)")


def _open_reason(exc: Exception) -> str:
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY) or "exclusively lock" in text:
        return "in use by another process"
    if code == errno.ENOENT or "No such file" in text:
        return "no such device (not connected?)"
    if code == errno.EACCES or "Permission denied" in text:
        return "permission denied (is the user in the dialout group?)"
    return f"cannot open: {text}"


@dataclass
class LinkCounters:
    bytes_rx: int = 0
    bytes_tx: int = 0
    bytes_discarded: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class SerialLink:
    """A serial port, pseudo-terminal or any pyserial URL, opened non-blocking and locked
    for this process alone (*exclusive*, where the port type supports it)."""

    def __init__(
        self, url: str, baudrate: int = 115200, *, exclusive: bool = True, write_timeout_s: float = WRITE_TIMEOUT_S
    ):
        self.url = self.name = url
        self.counters = LinkCounters()
        try:
            port = serial.serial_for_url(url, do_not_open=True)
            port.baudrate = baudrate
            port.timeout = 0
            port.write_timeout = write_timeout_s
            if exclusive and isinstance(port, serial.Serial) and type(port).__module__.startswith("serial.serialposix"):
                port.exclusive = True
            port.open()
        except serial.SerialException as exc:
            raise LinkError(f"{url} at {baudrate} baud: {_open_reason(exc)}") from None
        except (OSError, ValueError) as exc:
            raise LinkError(f"{url} at {baudrate} baud: cannot open: {exc}") from None
        self.port = port
        try:
            self._fd = port.fileno()
        except Exception:  # URL handlers without a descriptor (loop://, rfc2217://) raise various errors
            self._fd = None

    @property
    def baudrate(self) -> int:
        return int(self.port.baudrate)

    @property
    def is_open(self) -> bool:
        return bool(self.port.is_open)

    def set_baudrate(self, baudrate: int) -> None:
        try:
            self.port.baudrate = baudrate
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkLost(f"{self.url}: cannot set {baudrate} baud: {exc}") from exc

    def fileno(self) -> int | None:
        """The descriptor to poll for readability, or None (then poll on a short timer)."""
        return self._fd

    def read(self, max_bytes: int = 65536) -> bytes:
        """What is waiting, up to *max_bytes*; b"" if nothing.  Never blocks."""
        try:
            data = self.port.read(max_bytes)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise LinkLost(f"{self.url}: read failed: {exc}") from None
        self.counters.bytes_rx += len(data)
        return bytes(data)

    def wait_readable(self, timeout_s: float) -> bool:
        """Wait up to *timeout_s* for bytes (select on the descriptor, or sleep briefly);
        for tools and tests - tasks put :meth:`fileno` in their poller."""
        timeout_s = max(0.0, timeout_s)
        if self._fd is not None:
            try:
                ready, _, _ = select.select([self._fd], [], [], timeout_s)
            except (OSError, ValueError) as exc:
                raise LinkLost(f"{self.url}: {exc}") from None
            return bool(ready)
        try:
            if self.port.in_waiting:
                return True
        except Exception as exc:  # a vanished URL handler raises various errors
            raise LinkLost(f"{self.url}: {exc}") from None
        time.sleep(min(timeout_s, 0.01))
        return False

    def write(self, data: bytes) -> None:
        """Write all of *data* within the write timeout, else :class:`LinkLost`."""
        try:
            n = self.port.write(data)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise LinkLost(f"{self.url}: write failed: {exc}") from None
        if n is not None and n != len(data):
            raise LinkLost(f"{self.url}: wrote {n} of {len(data)} bytes")
        self.counters.bytes_tx += len(data)

    def discard_input(self) -> int:
        """Drop the bytes already waiting (stale replies); returns how many."""
        n = 0
        while True:
            data = self.read()
            if not data:
                break
            n += len(data)
        self.counters.bytes_discarded += n
        return n

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:  # closing a vanished device may fail; it is closed either way
            pass

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_link(
    port: str | None = None, usb: str | None = None, baudrate: int = 57600, exclusive: bool = True
) -> SerialLink:
    """Open *port* (path or pyserial URL) or the port with USB id *usb*.

    Raises :class:`LinkError` with the reason (not found, in use, no permission).
    """
    return SerialLink(resolve_port(port, usb), baudrate, exclusive=exclusive)


# -- sockets (monoDrive) -------------------------------------------------------------------


def parse_socket_url(url: str) -> tuple[str, str, int]:
    """``udp://host:port`` or ``tcp://host:port`` -> (scheme, host, port)."""
    parts = urlsplit(url)
    if parts.scheme not in ("udp", "tcp"):
        raise LinkError(f"{url!r}: expected udp://HOST:PORT or tcp://HOST:PORT")
    try:
        port = parts.port
    except ValueError as exc:
        raise LinkError(f"{url!r}: bad port") from exc
    if not parts.hostname or port is None:
        raise LinkError(f"{url!r}: expected udp://HOST:PORT or tcp://HOST:PORT")
    return parts.scheme, parts.hostname, port


def is_loopback(host: str) -> bool:
    """True if *host* names only the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class UdpLink:
    """A UDP socket bound to (host, port); each datagram is one frame."""

    def __init__(self, host: str, port: int, *, rcvbuf_bytes: int = 1 << 20):
        self.url = f"udp://{host}:{port}"
        try:
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
            s.bind((host, port))
            s.setblocking(False)
        except OSError as exc:
            raise LinkError(f"cannot bind {self.url}: {exc}") from exc
        self.sock = s
        self.bytes_in = 0

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_datagrams(self, max_count: int = 1000) -> list[bytes]:
        out: list[bytes] = []
        while len(out) < max_count:
            try:
                d = self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as exc:
                raise LinkLost(f"{self.url}: {exc}") from exc
            self.bytes_in += len(d)
            out.append(d)
        return out

    def close(self) -> None:
        self.sock.close()


class TcpLink:
    """A TCP client connection to (host, port), non-blocking once connected."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 0.5):
        self.url = f"tcp://{host}:{port}"
        try:
            s = socket.create_connection((host, port), timeout=connect_timeout_s)
            s.setblocking(False)
        except OSError as exc:
            raise LinkError(f"cannot connect to {self.url}: {exc}") from exc
        self.sock = s
        self.bytes_in = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, max_bytes: int = 65536) -> bytes:
        try:
            data = self.sock.recv(max_bytes)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise LinkLost(f"{self.url}: {exc}") from exc
        if not data:
            raise LinkLost(f"{self.url}: peer closed the connection")
        self.bytes_in += len(data)
        return data

    def close(self) -> None:
        self.sock.close()
