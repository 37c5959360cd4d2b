"""Byte links for the drivers: any pyserial URL, or a UDP/TCP socket.

Every read returns at once with what is waiting (never blocks); writes are bounded by a
write timeout.  A link that is gone (USB unplugged, pseudo-terminal closed, peer closed the
socket) raises :class:`LinkLost` from ``read``/``write``, so the caller closes it and
reconnects.  ``fileno()`` gives the descriptor to put in a poller, or ``None`` for URL
handlers without one (``loop://``): then the caller polls with a short timeout.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time
from urllib.parse import urlsplit

import serial


class LinkError(Exception):
    """A link could not be opened or configured (the message names the port and why)."""


class LinkLost(LinkError):
    """An open link went away (device unplugged, port closed, peer closed)."""


class SerialLink:
    """A serial port, pseudo-terminal or any pyserial URL, opened non-blocking.

    ``exclusive`` takes an OS lock on POSIX serial ports (``flock``; no lock file to go
    stale), so a port another process holds fails to open - discovery uses this to skip
    ports in use.  URL handlers that have no such lock ignore it.
    """

    def __init__(self, url: str, baudrate: int = 115200, *, exclusive: bool = True,
                 write_timeout_s: float = 0.5):
        self.url = url
        try:
            port = serial.serial_for_url(url, do_not_open=True)
            port.baudrate = baudrate
            port.timeout = 0
            port.write_timeout = write_timeout_s
            if exclusive and isinstance(port, serial.Serial) and type(port).__module__.startswith("serial.serialposix"):
                port.exclusive = True
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"cannot open {url} at {baudrate} baud: {exc}") from exc
        self.port = port
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def baudrate(self) -> int:
        return int(self.port.baudrate)

    def set_baudrate(self, baudrate: int) -> None:
        try:
            self.port.baudrate = baudrate
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkLost(f"{self.url}: cannot set {baudrate} baud: {exc}") from exc

    def fileno(self) -> int | None:
        try:
            return self.port.fileno()
        except Exception:  # URL handlers without a descriptor raise various errors
            return None

    def read(self, max_bytes: int = 65536) -> bytes:
        """What is waiting, up to *max_bytes*; b"" if nothing.  Never blocks."""
        try:
            data = self.port.read(max_bytes)
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"{self.url}: {exc}") from exc
        self.bytes_in += len(data)
        return data

    def wait_readable(self, timeout_s: float) -> None:
        """Wait up to *timeout_s* for bytes (select on the descriptor, or sleep)."""
        if timeout_s <= 0:
            return
        fd = self.fileno()
        if fd is None:
            time.sleep(min(timeout_s, 0.01))
            return
        try:
            select.select([fd], [], [], timeout_s)
        except (OSError, ValueError) as exc:
            raise LinkLost(f"{self.url}: {exc}") from exc

    def write(self, data: bytes) -> None:
        try:
            n = self.port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"{self.url}: write failed: {exc}") from exc
        self.bytes_out += n or 0

    def reset_input(self) -> None:
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"{self.url}: {exc}") from exc

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:  # closing a vanished device may fail; it is closed either way
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
        out = []
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
