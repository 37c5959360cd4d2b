"""EMUS G1 BMS driver: the serial link, request mode's response queue, broadcast mode.

The sentences themselves (CRC, framing, fields in physical units) are the pure codec
:mod:`.emus_bms_codec`; this module adds the link and the time.

* :class:`ResponseQueue` - request mode: matches replies to requests by sentence name in
  whatever order they arrive, knows how many sentences a multi-sentence reply spans (from
  the pack's cell count, learned from the summary sentences, or configured) and times each
  request out;
* :class:`EmusBms` - the driver over a :class:`~pygnc.drivers.link.SerialLink` (57600 8N1),
  request or broadcast mode, non-blocking (call :meth:`EmusBms.service` when the port is
  readable or a deadline passes); :meth:`EmusBms.read_blocking` for tools and tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .emus_bms_codec import (  # BAUDRATE, DEFAULT_SENTENCES: the driver's defaults, here too
    BAUDRATE,  # noqa: F401
    DEFAULT_SENTENCES,  # noqa: F401
    GROUP_SENTENCES,
    MAX_CELLS,
    Sentence,
    SentenceError,
    SentenceFramer,
    decode_sentence,
    encode_request,
)
from .link import LinkLost, SerialLink
from .readings import Reading

# ------------------------------------------------------------------------------------------
# Request mode: the response queue
# ------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """The outcome of one request: the sentences that answered it."""

    name: str
    t_request: float
    t_end: float
    sentences: list[Sentence]
    complete: bool
    timed_out: bool


@dataclass
class _Pending:
    name: str
    t_request: float
    deadline: float
    sentences: list[Sentence] = field(default_factory=list)
    cells_seen: set = field(default_factory=set)


@dataclass
class QueueCounters:
    requests: int = 0
    replies: int = 0
    timeouts: int = 0
    partial: int = 0  # timed out after some of a multi-sentence reply
    unsolicited: int = 0  # a sentence nobody asked for (request mode)
    already_pending: int = 0  # a request not sent because the same one was still open

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class ResponseQueue:
    """Open requests by sentence name; replies complete them in any order; each times out.

    A group sentence (BV2, BT2, BT4, BB2) answers in one sentence per cell group; its
    request is complete once the groups cover the pack's cells: *cells* if configured,
    else the count the matching summary sentence (BV1, BT1, BT3, BB1) last reported.
    With neither known, the reply ends at its timeout and counts as complete if any group
    arrived.  Only cells 0..MAX_CELLS count (the codec refuses groups reaching beyond: a
    reply's cell set stays small whatever its values say).  Pure bookkeeping: the caller
    passes the time.
    """

    def __init__(self, cells: int | None = None):
        self.cells = cells
        self.learned_cells: dict[str, int] = {}
        self.pending: dict[str, _Pending] = {}
        self.counters = QueueCounters()

    def request(self, name: str, now: float, timeout_s: float) -> bool:
        """Open a request; False (not to be sent) if the same one is still open."""
        if name in self.pending:
            self.counters.already_pending += 1
            return False
        self.pending[name] = _Pending(name, now, now + timeout_s)
        self.counters.requests += 1
        return True

    def expected_cells(self, name: str) -> int | None:
        if self.cells:
            return self.cells
        summary = GROUP_SENTENCES.get(name)
        return (self.learned_cells.get(summary) if summary else None) or self.learned_cells.get("BV1")

    def learn(self, s: Sentence, values: dict) -> None:
        if s.name in ("BV1", "BT1", "BT3", "BB1") and values.get("n_cells"):
            self.learned_cells[s.name] = int(values["n_cells"])

    def _covered(self, p: _Pending) -> bool:
        expected = self.expected_cells(p.name)
        return bool(expected and len(p.cells_seen) >= expected)

    def _close(self, name: str, now: float) -> Reply:
        p = self.pending.pop(name)
        self.counters.replies += 1
        return Reply(name, p.t_request, now, p.sentences, complete=True, timed_out=False)

    def on_sentence(self, s: Sentence, values: dict, now: float) -> list[Reply]:
        """Match *s* to its request; returns the replies this completed (a summary sentence
        can also complete a group reply whose groups arrived before it)."""
        done = []
        p = self.pending.get(s.name)
        if p is None:
            self.counters.unsolicited += 1
        else:
            p.sentences.append(s)
            if s.name in GROUP_SENTENCES:
                first, size = values.get("first_cell"), values.get("group_size")
                if first is not None and size:
                    p.cells_seen.update(range(max(first, 0), min(first + size, MAX_CELLS + 1)))
                if self._covered(p):
                    done.append(self._close(s.name, now))
            else:
                done.append(self._close(s.name, now))
        if s.name in ("BV1", "BT1", "BT3", "BB1"):
            for name, q in list(self.pending.items()):
                if name in GROUP_SENTENCES and q.sentences and self._covered(q):
                    done.append(self._close(name, now))
        return done

    def expire(self, now: float) -> list[Reply]:
        """Requests whose deadline has passed, closed (partial group replies included)."""
        out = []
        for name in [n for n, p in self.pending.items() if p.deadline <= now]:
            p = self.pending.pop(name)
            unknown_count = name in GROUP_SENTENCES and not self.expected_cells(name)
            complete = bool(unknown_count and p.sentences)
            if complete:
                self.counters.replies += 1
            else:
                self.counters.timeouts += 1
                if p.sentences:
                    self.counters.partial += 1
            out.append(Reply(name, p.t_request, now, p.sentences, complete, timed_out=True))
        return out

    def next_deadline(self) -> float | None:
        return min((p.deadline for p in self.pending.values()), default=None)

    def clear(self) -> None:
        self.pending.clear()


# ------------------------------------------------------------------------------------------
# The driver
# ------------------------------------------------------------------------------------------


@dataclass
class BmsCounters:
    readings: int = 0
    bad_field: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class EmusBms:
    """EMUS G1 control unit on a serial link; never blocks.

    *mode* ``"request"``: :meth:`poll` sends requests (one per sentence not already open);
    replies are matched by the :class:`ResponseQueue`.  ``"broadcast"``: the unit sends on
    its own; :meth:`poll` does nothing.  :meth:`service` reads what arrived and returns the
    decoded readings and the requests that ended (completed or timed out); it raises
    :class:`~pygnc.drivers.link.LinkLost` when the port fails.
    """

    def __init__(self, link: SerialLink, mode: str = "request", cells: int | None = None, timeout_s: float = 1.0):
        if mode not in ("request", "broadcast"):
            raise ValueError(f"EMUS mode {mode!r} is not 'request' or 'broadcast'")
        self.link = link
        self.mode = mode
        self.timeout_s = timeout_s
        self.framer = SentenceFramer()
        self.queue = ResponseQueue(cells)
        self.counters = BmsCounters()

    def fileno(self) -> int | None:
        return self.link.fileno()

    def poll(self, names: Iterable[str], now: float) -> int:
        """Ask for each sentence of *names* not already open; returns how many were sent."""
        if self.mode != "request":
            return 0
        sent = 0
        for name in names:
            if self.queue.request(name, now, self.timeout_s):
                self.link.write(encode_request(name))
                sent += 1
        return sent

    def service(self, now: float) -> tuple[list[Reading], list[Reply]]:
        readings: list[Reading] = []
        replies: list[Reply] = []
        while True:
            data = self.link.read()
            if not data:
                break
            for s in self.framer.feed(data):
                try:
                    values = decode_sentence(s)
                except SentenceError:
                    self.counters.bad_field += 1
                    continue
                solicited = False
                if self.mode == "request":
                    self.queue.learn(s, values)
                    solicited = s.name in self.queue.pending
                    replies += self.queue.on_sentence(s, values, now)
                readings.append(Reading(s.name, values, s.raw, now, solicited))
                self.counters.readings += 1
        replies.extend(self.queue.expire(now))
        return readings, replies

    def next_deadline(self) -> float | None:
        return self.queue.next_deadline()

    def all_counters(self) -> dict:
        return {
            **self.counters.as_dict(),
            **self.framer.counters.as_dict(),
            **self.queue.counters.as_dict(),
            **self.link.counters.as_dict(),
        }

    def read_blocking(self, names: Iterable[str], timeout_s: float | None = None) -> tuple[list[Reading], list[Reply]]:
        """Request *names* (request mode) or listen (broadcast mode) until every request
        has ended or *timeout_s* passed; waits on the port, never spins.  For tools and
        tests; a task uses :meth:`poll` and :meth:`service` from its loop."""
        t0 = time.monotonic()
        t_end = t0 + (timeout_s if timeout_s is not None else self.timeout_s + 0.5)
        self.poll(names, t0)
        readings, replies = [], []
        while True:
            now = time.monotonic()
            r, p = self.service(now)
            readings += r
            replies += p
            if self.mode == "request" and not self.queue.pending:
                break
            if now >= t_end:
                break
            nd = self.next_deadline()
            wait = min(t_end, nd if nd is not None else t_end) - now
            try:
                self.link.wait_readable(max(0.0, wait) + 0.001)
            except LinkLost:
                raise
        return readings, replies
