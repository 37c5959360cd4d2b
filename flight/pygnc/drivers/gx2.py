"""MicroStrain 3DM-GX2 driver (0xC2 acceleration & angular rate) over any pyserial URL.

Polled mode: one 0xC2 byte asks for one packet.  Continuous mode: ``C4 C1 29 C2`` makes
the unit stream packets until a 0xFA byte stops it.  Every packet's checksum is verified by
the framer (:mod:`.gx2_codec`); bad bytes are skipped and counted.  The 32-bit timer
(19.6608 MHz, wraps every ~218 s) is unwrapped into monotonic device time with the host
clock resolving the wrap count (:class:`~pygnc.drivers.timing.TimerUnwrapper`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple, TypedDict, Unpack

from . import gx2_codec as gx
from .errors import DriverError, DriverTimeout
from .link import SerialLink
from .pump import FramePump, Received
from .sample import ImuSample
from .timing import TimerUnwrapper

DEFAULT_BAUD = 115200


class Gx2Error(DriverError):
    """A 3DM-GX2 exchange failed."""


class Gx2Timeout(Gx2Error, DriverTimeout):
    """The unit did not answer in time."""


class Gx2Packet(NamedTuple):
    t_rx_mono_s: float
    packet: gx.AccelRate


class _Options(TypedDict, total=False):
    """:class:`Gx2`'s keyword options (what :meth:`Gx2.open` passes on)."""

    clock: Callable[[], float]
    max_queued: int


class Gx2:
    """One 3DM-GX2 on an open link."""

    def __init__(self, link: SerialLink, *, clock: Callable[[], float] = time.monotonic, max_queued: int = 20000):
        self.link = link
        self.clock = clock
        self.framer = gx.Framer()
        self.reader = FramePump(
            link, self.framer, lambda f: f[0] == gx.CMD_ACCEL_RATE, clock=clock, max_queued=max_queued, max_responses=16
        )
        self.continuous = False

    @classmethod
    def open(cls, url: str, baudrate: int = DEFAULT_BAUD, *, exclusive: bool = True, **kw: Unpack[_Options]) -> Gx2:
        return cls(SerialLink(url, baudrate, exclusive=exclusive), **kw)

    def pump(self, timeout_s: float = 0.0) -> int:
        """Read what the link holds (waiting up to *timeout_s* for the first byte); returns
        how many frames were read."""
        return self.reader.pump(timeout_s)

    @staticmethod
    def _decoded(r: Received) -> Gx2Packet:
        return Gx2Packet(r.t_rx_mono_s, gx.decode_accel_rate(r.frame, verify=False))  # the framer checked it

    def take_packets(self) -> list[Gx2Packet]:
        return [self._decoded(r) for r in self.reader.take_packets()]

    def poll(self) -> None:
        """Ask for one packet (polled mode); it arrives through :meth:`pump`."""
        self.link.write(gx.poll_command())

    def read_polled(self, timeout_s: float = 0.2) -> Gx2Packet:
        self.reader.packets.clear()
        self.poll()
        t_end = self.clock() + timeout_s
        while not self.reader.packets:
            remaining = t_end - self.clock()
            if remaining <= 0:
                raise Gx2Timeout(f"no 0xC2 reply on {self.link.url} in {timeout_s:.2f} s")
            self.pump(min(remaining, 0.05))
        return self._decoded(self.reader.packets.popleft())

    def set_continuous(self, *, timeout_s: float = 0.5, retries: int = 2) -> None:
        """Start the 0xC2 stream; waits for the unit's confirmation (resending on timeout)."""
        for _ in range(retries + 1):
            self.reader.responses.clear()
            self.link.write(gx.continuous_command(gx.CMD_ACCEL_RATE))
            t_end = self.clock() + timeout_s
            while self.clock() < t_end:
                self.pump(min(0.05, max(0.0, t_end - self.clock())))
                if any(gx.decode_continuous_reply(r.frame) == gx.CMD_ACCEL_RATE for r in self.reader.responses):
                    self.continuous = True
                    return
        raise Gx2Timeout(f"no continuous-mode confirmation on {self.link.url}")

    def stop_continuous(self, settle_s: float = 0.05) -> None:
        """Stop the stream (0xFA) and drop what was in flight."""
        self.link.write(gx.stop_continuous_command())
        self.continuous = False
        t_end = self.clock() + settle_s
        while self.clock() < t_end:
            self.pump(max(0.0, t_end - self.clock()))
        self.reader.packets.clear()
        self.framer.reset()

    def close(self) -> None:
        self.link.close()


class Gx2Stream:
    """Non-blocking GX2 stream for the ingest task: continuous (default) or polled at
    *poll_rate_hz*.  Lost samples: unanswered polls (polled), timer gaps of more than 1.5
    sample periods (continuous; the period is the smallest timer step seen)."""

    def __init__(
        self,
        port: str,
        *,
        baud: int = 0,
        mode: str = "continuous",
        poll_rate_hz: float = 100.0,
        reply_timeout_s: float = 0.3,
    ):
        if mode not in ("continuous", "polled"):
            raise ValueError(f"GX2 mode {mode!r}: continuous or polled")
        self.port, self.baud, self.mode = port, baud or DEFAULT_BAUD, mode
        self.poll_period_s = 1.0 / poll_rate_hz if poll_rate_hz > 0 else 0.01
        self.reply_timeout_s = reply_timeout_s
        self.dev: Gx2 | None = None
        self.description = f"gx2 {port}@{self.baud} {mode}"
        self._unwrap = TimerUnwrapper(gx.TIMER_MODULUS, gx.TICKS_PER_S)
        self._next_poll = 0.0
        self._outstanding = 0
        self._last_ticks: float | None = None
        self._period_s = math.inf
        self.samples = self.lost = self.polls = 0
        self.timer_wraps = 0

    def connect_steps(self) -> Iterator[float]:
        self.dev = Gx2.open(self.port, self.baud)
        try:
            self.dev.stop_continuous()  # a unit left streaming by an earlier run
            yield 0.0
            if self.mode == "continuous":
                self.dev.set_continuous(timeout_s=self.reply_timeout_s)
            else:
                self.dev.read_polled(self.reply_timeout_s)
                self.dev.reader.packets.clear()
        except BaseException:
            self.close()
            raise
        self._unwrap.reset()
        self._last_ticks = None
        self._outstanding = 0

    def fileno(self) -> int | None:
        return None if self.dev is None else self.dev.link.fileno()

    def service(self, now_mono_s: float) -> float:
        """Polled mode: send the next poll when due; returns the time until the next one."""
        if self.dev is None or self.mode != "polled":
            return math.inf
        if now_mono_s >= self._next_poll:
            if self._outstanding > 0:  # the previous poll went unanswered
                self.lost += self._outstanding
                self._outstanding = 0
            self.dev.poll()
            self.polls += 1
            self._outstanding += 1
            self._next_poll = max(self._next_poll + self.poll_period_s, now_mono_s)
        return max(0.0, self._next_poll - now_mono_s)

    def read_samples(self) -> list[ImuSample]:
        dev = self.dev
        if dev is None:
            return []
        dev.pump()
        out = []
        for t_rx, p in dev.take_packets():
            self._outstanding = max(0, self._outstanding - 1)
            t_dev, jump = self._unwrap.unwrap(p.timer_ticks, t_rx)
            lost = 0
            if self._last_ticks is not None and not jump:
                dt = t_dev - self._last_ticks
                if dt > 0:
                    if self.mode == "continuous" and dt > 1.5 * self._period_s:
                        lost = max(0, round(dt / self._period_s) - 1)
                    self._period_s = min(self._period_s, dt)
            self._last_ticks = t_dev
            self.lost += lost
            out.append(ImuSample(t_rx, t_dev, p.rate_rad_s, p.accel_m_s2, math.nan, 0, lost))
        self.samples += len(out)
        self.timer_wraps = self._unwrap.wraps
        return out

    def close(self) -> None:
        if self.dev is not None:
            try:
                if self.dev.continuous:
                    self.dev.link.write(gx.stop_continuous_command())
            except Exception:  # the port may be gone already
                pass
            self.dev.close()
            self.dev = None

    def stats(self) -> dict:
        d = {
            "samples": self.samples,
            "lost": self.lost,
            "polls": self.polls,
            "timer_wraps": self._unwrap.wraps,
            "timer_jumps": self._unwrap.discontinuities,
        }
        if self.dev is not None:
            d.update(self.dev.framer.stats.as_dict())
        return d
