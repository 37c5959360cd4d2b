"""The read pump of the serial IMU drivers (:mod:`.imu380`, :mod:`.gx2`).

One :meth:`FramePump.pump` takes what the link holds (waiting, bounded, for the first byte
only if asked), feeds it to the device's framer, stamps the frames with the host clock when
their bytes were read, and routes each: output packets to :attr:`FramePump.packets`, a
bounded queue the stream drains (when full the oldest is dropped and counted), everything
else (responses, confirmations) to :attr:`FramePump.responses`, where request logic looks
for its answer - so a request is answered correctly while the unit streams.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from .link import SerialLink


class Framer(Protocol):
    """A device's incremental framer: bytes in, the complete frames they finish out."""

    def feed(self, data: bytes) -> list[Any]: ...


class Received(NamedTuple):
    t_rx_mono_s: float  # host CLOCK_MONOTONIC when the frame's bytes were read
    frame: Any  # what the framer returned


class FramePump:
    """Frames from *link* through *framer* (``feed(bytes) -> list``), split by *is_output*.

    *counters*: the dict whose ``packets_overflowed`` entry counts output packets dropped
    from a full queue (default: a dict of its own)."""

    def __init__(
        self,
        link: SerialLink,
        framer: Framer,
        is_output: Callable[[Any], bool],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_queued: int = 20000,
        max_responses: int = 256,
        counters: dict | None = None,
    ):
        self.link = link
        self.framer = framer
        self.is_output = is_output
        self.clock = clock
        self.max_queued = max_queued
        self.packets: deque[Received] = deque()
        self.responses: deque[Received] = deque(maxlen=max_responses)
        self.counters = {} if counters is None else counters
        self.counters.setdefault("packets_overflowed", 0)

    def pump(self, timeout_s: float = 0.0) -> int:
        """Read and route what the link holds (waiting up to *timeout_s* for the first byte);
        returns how many frames were read."""
        if timeout_s > 0:
            self.link.wait_readable(timeout_s)
        data = self.link.read()
        if not data:
            return 0
        t = self.clock()
        frames = self.framer.feed(data)
        for f in frames:
            if self.is_output(f):
                if len(self.packets) >= self.max_queued:
                    self.packets.popleft()
                    self.counters["packets_overflowed"] += 1
                self.packets.append(Received(t, f))
            else:
                self.responses.append(Received(t, f))
        return len(frames)

    def take_packets(self) -> list[Received]:
        """The queued output packets, oldest first; the queue is emptied."""
        out = list(self.packets)
        self.packets.clear()
        return out
