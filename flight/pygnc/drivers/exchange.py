"""Request/response exchanges written as generators, driven over a link without blocking.

Exchanges that are strictly request -> fixed-length reply (the USB-ISS bridge in front of
the OPC-N3) are generators yielding :class:`Transfer` and :class:`Pause`;
:class:`TransactionRunner` drives one over a :class:`~pygnc.drivers.link.SerialLink`
without blocking (:meth:`TransactionRunner.advance` whenever bytes arrive or its deadline
passes), and :func:`run_blocking` drives one to the end for tools and tests.  The protocol
logic stays pure: it never touches the port or the clock.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from .errors import DriverTimeout
from .link import LinkError, LinkLost, SerialLink


class LinkTimeout(LinkError, DriverTimeout):
    """A reply did not arrive in time."""


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
                data = self.link.read(self._need - len(self._buf))
            except LinkLost as exc:
                return self._finish(Outcome(error=exc))
            self._buf += data
            if len(self._buf) < self._need:
                if now < self._reply_deadline:
                    return None
                self.counters.timeouts += 1
                self._reply_deadline = None
                got = len(self._buf)
                return self._step(
                    now,
                    throw=LinkTimeout(
                        f"{self.link.name}: {got} of {self._need} reply bytes after {self.reply_timeout_s} s"
                    ),
                )
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
            assert self._gen is not None  # runs only while an exchange is active
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


def run_blocking(gen: Exchange, link: SerialLink, reply_timeout_s: float = 0.5, timeout_s: float = 60.0) -> Any:
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
