"""The device end of a pseudo-terminal, and the thread a simulated device runs in: the one
framework of every simulated device (the IMUs of :mod:`ground.devices.imu380` and
:mod:`ground.devices.gx2`, the housekeeping devices of :mod:`ground.devices.housekeeping`).

A :class:`PtyPort` is what a USB-serial adapter is to a real IMU: the driver opens
``port.path`` (``/dev/pts/N``, or a stable symlink such as ``/tmp/imu0`` that is re-pointed
on replug, like udev's ``/dev/serial/by-id`` links) while the simulator reads and writes the
master side.  The baud rate the driver set is visible on the master (Linux ptys share one
termios), so a simulator can garble its output when the driver is at the wrong speed, as a
real UART would look.  ``unplug()`` closes the pty (the driver's next read fails with EIO,
as on a USB unplug); ``replug()`` opens a new one behind the same symlink.  The symlink is
removed at the unplug, or with ``keep_link=True`` left dangling - pointing at a path nothing
creates (``<link>.unplugged``), not at the pty that is gone, whose number the next
pseudo-terminal opened on the machine may get (another test's device, opened through this
link meanwhile).
"""

from __future__ import annotations

import heapq
import math
import os
import pty
import random
import select
import termios
import threading
import time
import tty
from pathlib import Path

_SPEEDS = {
    getattr(termios, f"B{b}"): b
    for b in (4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
    if hasattr(termios, f"B{b}")
}


class PtyPort:
    def __init__(self, link_path: str | os.PathLike | None = None, keep_link: bool = False):
        self.link_path = Path(link_path) if link_path else None
        self.keep_link = keep_link
        self.master = self._slave = -1
        self.tx_dropped = 0
        self.plugged = False
        self.replug()

    def replug(self) -> None:
        if self.plugged:
            self.unplug()
        m, s = pty.openpty()
        tty.setraw(s)  # no echo, no line discipline until the driver opens it
        os.set_blocking(m, False)
        self.master, self._slave = m, s  # keeping the slave open: the master never sees EIO
        self.tty_path = os.ttyname(s)  # while the driver closes and reopens the port
        if self.link_path is not None:
            self._point_link(self.tty_path)
        self.plugged = True

    def _point_link(self, target: str) -> None:
        tmp = self.link_path.with_name(self.link_path.name + ".new")
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        os.symlink(target, tmp)
        os.replace(tmp, self.link_path)

    def unplug(self) -> None:
        if not self.plugged:
            return
        self.plugged = False
        if self.link_path is not None:
            if self.keep_link:
                self._point_link(str(self.link_path.with_name(self.link_path.name + ".unplugged")))
            else:
                self._remove_link()
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = self._slave = -1

    @property
    def path(self) -> str:
        return str(self.link_path) if self.link_path is not None else self.tty_path

    def baudrate(self) -> int | None:
        """The speed the driver set (None if unknown)."""
        try:
            return _SPEEDS.get(termios.tcgetattr(self.master)[5])
        except (termios.error, OSError):
            return None

    def read(self) -> bytes:
        try:
            return os.read(self.master, 65536)
        except OSError:  # nothing waiting, or unplugged meanwhile (EIO, EBADF)
            return b""

    def write(self, data: bytes) -> int:
        """Write what fits; the rest is lost, as on a UART nobody reads."""
        try:
            n = os.write(self.master, data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = 0
        self.tx_dropped += len(data) - n
        return n

    def _remove_link(self) -> None:
        try:
            self.link_path.unlink()
        except FileNotFoundError:
            pass

    def close(self) -> None:
        self.unplug()
        if self.link_path is not None:
            self._remove_link()


class Faults:
    """Byte-level misbehaviour on the device's output (and input)."""

    def __init__(self, *, corrupt_prob: float = 0.0, drop_prob: float = 0.0, rx_drop_prob: float = 0.0, seed: int = 0):
        self.corrupt_prob, self.drop_prob, self.rx_drop_prob = corrupt_prob, drop_prob, rx_drop_prob
        self.rng = random.Random(seed)
        self.corrupted = self.dropped = self.rx_dropped = 0

    def tx(self, data: bytes) -> bytes:
        if not (self.corrupt_prob or self.drop_prob):
            return data
        out = bytearray()
        r = self.rng.random
        for b in data:
            if self.drop_prob and r() < self.drop_prob:
                self.dropped += 1
                continue
            if self.corrupt_prob and r() < self.corrupt_prob:
                b ^= 1 << self.rng.randrange(8)
                self.corrupted += 1
            out.append(b)
        return bytes(out)

    def rx(self, data: bytes) -> bytes:
        if not self.rx_drop_prob:
            return data
        out = bytearray()
        for b in data:
            if self.rng.random() < self.rx_drop_prob:
                self.rx_dropped += 1
            else:
                out.append(b)
        return bytes(out)


class SerialSim(threading.Thread):
    """A simulated serial device on a :class:`PtyPort`, in its own thread.

    Subclasses implement ``on_bytes(data, now)`` (bytes the driver sent) and
    ``on_tick(now) -> next_tick_time`` (streaming, or None: no periodic work), and call
    ``send(data)`` now or ``send_at(t, data)`` at monotonic time *t*; both run with
    ``self.lock`` held.  Output at a baud other than ``self.baud`` comes out garbled and input
    at a wrong baud is ignored, as with a real UART (``baud=None``: any speed).  A device
    whose bytes schedule work (``tick_after_bytes``) is ticked as soon as they arrive.
    :meth:`unplug` and :meth:`replug` pull and plug its cable (:meth:`on_replug`: its state at
    power-up)."""

    #: Tick right after bytes arrive (their answer is scheduled by on_tick).
    tick_after_bytes = False

    def __init__(self, port: PtyPort, *, baud: int | None, faults: Faults | None = None, name: str = "sim"):
        super().__init__(name=name, daemon=True)
        self.port = port
        self.baud = baud
        self.faults = faults or Faults()
        self.t0 = time.monotonic()
        self._stop_evt = threading.Event()
        self.lock = threading.RLock()
        self.rng = random.Random(1234)
        self.bytes_out = self.bytes_in = 0
        self.baud_mismatch = False
        self._timers: list = []
        self._seq = 0

    @property
    def path(self) -> str:
        return self.port.path

    def wrong_baud(self) -> bool:
        if self.baud is None:
            return False
        b = self.port.baudrate()
        return b is not None and b != self.baud

    def send(self, data: bytes) -> None:
        if not self.port.plugged:
            return
        if self.wrong_baud():
            self.baud_mismatch = True
            data = bytes(self.rng.randrange(256) for _ in range(len(data)))
        data = self.faults.tx(data)
        self.bytes_out += self.port.write(data)

    def send_at(self, t: float, data: bytes) -> None:
        """Queue *data* to be sent at monotonic time *t* (with the lock held)."""
        self._seq += 1
        heapq.heappush(self._timers, (t, self._seq, data))

    def on_bytes(self, data: bytes, now: float) -> None:
        raise NotImplementedError

    def on_tick(self, now: float) -> float | None:
        return now + 0.1

    def on_replug(self) -> None:
        """The device's state at power-up (subclasses; the lock is held)."""

    def unplug(self) -> None:
        with self.lock:
            self.port.unplug()
            self._timers.clear()

    def replug(self) -> None:
        with self.lock:
            self.port.replug()
            self.on_replug()

    def _send_due(self, now: float) -> float | None:
        """Send the queued data that is due; the time of the next, if any."""
        while self._timers and self._timers[0][0] <= now:
            _, _, data = heapq.heappop(self._timers)
            self.send(data)
        return self._timers[0][0] if self._timers else None

    def run(self) -> None:
        next_tick: float | None = time.monotonic()
        while not self._stop_evt.is_set():
            now = time.monotonic()
            with self.lock:
                if next_tick is not None and now >= next_tick:
                    next_tick = self.on_tick(now) if self.port.plugged else now + 0.02
                next_send = self._send_due(now) if self.port.plugged else None
            due = [t for t in (next_tick, next_send) if t is not None]
            wait = max(0.0, min(min(due, default=math.inf) - time.monotonic(), 0.05))
            fd = self.port.master
            if fd < 0:
                time.sleep(wait)
                continue
            try:
                r, _, _ = select.select([fd], [], [], wait)
            except (OSError, ValueError):
                time.sleep(0.005)
                continue
            if r:
                data = self.port.read()
                if data:
                    self.bytes_in += len(data)
                    if self.wrong_baud():
                        self.baud_mismatch = True
                        continue
                    data = self.faults.rx(data)
                    with self.lock:
                        self.on_bytes(data, time.monotonic())
                    if self.tick_after_bytes:
                        next_tick = time.monotonic()

    def stop(self) -> None:
        self._stop_evt.set()
        if self.is_alive():
            self.join(timeout=2.0)
        self.port.close()

    def start(self) -> SerialSim:
        super().start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
