"""A simulated MicroStrain 3DM-GX2 (0xC2 only) on a pseudo-terminal, and a simulated
monoDrive IMU sensor sending its frames over UDP or TCP on loopback.

Both build their bytes with their own ``struct`` code (not the flight codec).  The GX2's
timer starts half a second before its 32-bit wrap, so a short test sees a wrap.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

from . import motion
from .ports import Faults, PtyPort, SerialSim

TICKS_PER_S = 19_660_800
_G = 9.80665


def c2_packet(t_s: float, timer: int) -> bytes:
    a = [v / _G for v in motion.accel_m_s2(t_s)]
    body = struct.pack(">B6fI", 0xC2, *a, *motion.rate_rad_s(t_s), timer & 0xFFFFFFFF)
    return body + struct.pack(">H", sum(body) & 0xFFFF)


class Gx2Sim(SerialSim):
    def __init__(
        self,
        port: PtyPort,
        *,
        baud: int = 115200,
        rate_hz: float = 100.0,
        timer_start: int | None = None,
        faults: Faults | None = None,
    ):
        super().__init__(port, baud=baud, faults=faults, name="gx2-sim")
        self.period_s = 1.0 / rate_hz
        self.timer_start = (1 << 32) - TICKS_PER_S // 2 if timer_start is None else timer_start
        self.continuous = False
        self._rx = bytearray()
        self._next = self.t0
        self.polls = 0

    def timer(self, now: float) -> int:
        return (self.timer_start + round((now - self.t0) * TICKS_PER_S)) & 0xFFFFFFFF

    def on_tick(self, now: float) -> float:
        if not self.continuous:
            return now + 0.02
        if now >= self._next:
            self.send(c2_packet(self._next - self.t0, self.timer(self._next)))
            self._next += self.period_s
            if self._next < now - 1.0:
                self._next = now + self.period_s
        return self._next

    def on_bytes(self, data: bytes, now: float) -> None:
        buf = self._rx
        buf += data
        while buf:
            b = buf[0]
            if b == 0xC2:
                del buf[:1]
                self.polls += 1
                self.send(c2_packet(now - self.t0, self.timer(now)))
            elif b == 0xFA:
                del buf[:1]
                self.continuous = False
            elif b == 0xC4:
                if len(buf) < 4:
                    return
                cmd = bytes(buf[:4])
                del buf[:4]
                if cmd[1:3] == b"\xc1\x29":
                    reply = struct.pack(">BBI", 0xC4, cmd[3], self.timer(now))
                    self.send(reply + struct.pack(">H", sum(reply) & 0xFFFF))
                    if cmd[3] == 0xC2:
                        self.continuous = True
                        self._next = now + self.period_s
            else:
                del buf[:1]  # not a command this unit knows


#: The IMU payloads the simulator can send: the GX2 emulation of monoDrive up to release
#: 1.14, or release 1.15's IMU frame (42 float32 after the header, 184 bytes with v16).
PAYLOADS = ("gx2", "state")


def state_payload(t_s: float) -> bytes:
    """Release 1.15's IMU payload as documented: 168 bytes, of which its table names 38
    float32 in this order and unit - acceleration (cm/s^2), angular velocity, angular
    acceleration, velocity (cm/s), the same four in local axes, position (cm), orientation
    (x, y, z, w), parent position and orientation - and the 16 bytes it does not name
    (zeros here, at the end).  Big-endian, as the GX2 payload (this frame's byte order is
    not documented)."""
    acc_cm = [100.0 * v for v in motion.accel_m_s2(t_s)]
    rate = list(motion.rate_rad_s(t_s))
    zero3 = [0.0, 0.0, 0.0]
    values = (
        acc_cm
        + rate
        + zero3
        + zero3
        + acc_cm
        + rate
        + zero3
        + zero3
        + zero3
        + [0.0, 0.0, 0.0, 1.0]
        + zero3
        + [0.0, 0.0, 0.0, 1.0]
    )
    return struct.pack(f">{len(values)}f", *values) + bytes(168 - 4 * len(values))


class MonoDriveSim(threading.Thread):
    """monoDrive's IMU sensor: frames of header + 35-byte payload at *rate_hz* (or, with
    ``payload="state"``, release 1.15's 168-byte IMU payload, which pygnc must refuse).

    ``udp``: sends datagrams to *address* (the client binds it).  ``tcp``: listens on
    *address* (port 0 = any free port; see :attr:`address`) and streams to one client at a
    time; :meth:`drop_client` closes the connection (the client must reconnect)."""

    def __init__(
        self,
        scheme: str,
        address: tuple[str, int],
        *,
        header: str = "v16",
        rate_hz: float = 100.0,
        drop_prob: float = 0.0,
        bad_checksum_prob: float = 0.0,
        seed: int = 0,
        with_tow: bool = True,
        payload: str = "gx2",
    ):
        super().__init__(name="monodrive-sim", daemon=True)
        if payload not in PAYLOADS:
            raise ValueError(f"payload {payload!r}: one of {PAYLOADS}")
        self.payload = payload
        self.scheme, self.header, self.period_s = scheme, header, 1.0 / rate_hz
        self.drop_prob, self.bad_checksum_prob, self.with_tow = drop_prob, bad_checksum_prob, with_tow
        self.rng = random.Random(seed)
        self._stop_evt = threading.Event()
        self.count = 0
        self.sent = 0
        self.t0 = time.monotonic()
        self._client: socket.socket | None = None
        self._lock = threading.Lock()
        if scheme == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.address = address
        elif scheme == "tcp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(address)
            self.sock.listen(1)
            self.sock.settimeout(0.0)
            self.address = self.sock.getsockname()[:2]
        else:
            raise ValueError(scheme)

    def frame(self, t: float) -> bytes:
        payload = self._gx2_payload(t) if self.payload == "gx2" else state_payload(t)
        wall = int(time.time() * 1000) % (7 * 86_400_000)
        if self.header == "v16":
            head = struct.pack("!IIfI", 16 + len(payload), wall, t, self.count)
        elif self.header == "tcp12":
            head = struct.pack("<IIf", 12 + len(payload), wall, t)
        else:
            head = struct.pack("<If", wall, t)
        return head + payload

    def _gx2_payload(self, t: float) -> bytes:
        a = [v / _G for v in motion.accel_m_s2(t)]
        body = struct.pack(">B6fi", 0xC2, *a, *motion.rate_rad_s(t), round(t * TICKS_PER_S) & 0x7FFFFFFF)
        c = sum(body) & 0xFFFF
        if self.bad_checksum_prob and self.rng.random() < self.bad_checksum_prob:
            c ^= 0x0101
        payload = body + struct.pack(">H", c)
        if self.with_tow:
            payload += struct.pack(">i", int(t * 1000) % (7 * 86_400_000))
        return payload

    def drop_client(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def run(self) -> None:
        nxt = time.monotonic()
        while not self._stop_evt.is_set():
            now = time.monotonic()
            if self.scheme == "tcp" and self._client is None:
                try:
                    c, _ = self.sock.accept()
                    c.setblocking(True)
                    with self._lock:
                        self._client = c
                except (BlockingIOError, OSError):
                    pass
            if now >= nxt:
                data = self.frame(nxt - self.t0)
                self.count += 1
                nxt += self.period_s
                if not (self.drop_prob and self.rng.random() < self.drop_prob):
                    self._send(data)
            self._stop_evt.wait(max(0.0, min(nxt - time.monotonic(), 0.02)))

    def _send(self, data: bytes) -> None:
        try:
            if self.scheme == "udp":
                self.sock.sendto(data, self.address)
            else:
                with self._lock:
                    if self._client is None:
                        return
                    self._client.sendall(data)
            self.sent += 1
        except OSError:
            if self.scheme == "tcp":
                self.drop_client()

    def stop(self) -> None:
        self._stop_evt.set()
        if self.is_alive():
            self.join(timeout=2.0)
        self.drop_client()
        self.sock.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
