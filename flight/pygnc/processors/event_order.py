"""Events held in GPS-time order until the stream has moved past them (the formation
processor's queue).

Ingest merges messages by the own spacecraft clock, but a peer fix is stamped with the
peer's clock, which may be tens of seconds (or years, if unset) off the own one: peer fixes
arrive early or late relative to own measurements of the same instant.  So every event
waits here, ordered by (GPS time, :class:`Kind`, arrival), until the stream - own-clock
messages mapped to GPS time - has moved :attr:`EventOrder.hold_s` past it.  The hold is the
configured one, or the largest peer-fix lateness seen plus :data:`HOLD_MARGIN_S` if more,
capped at the configured maximum.

A restarted ingest replays the whole stream: an event at or before the time already
released, a duplicate of one still held, or a peer fix not newer (peer clock) than one
already received from that peer is stale - the caller drops it, counted here.
"""

from __future__ import annotations

import heapq
import math
from enum import IntEnum
from typing import Any, NamedTuple

#: Margin added to the largest peer-fix lateness seen [s].
HOLD_MARGIN_S = 5.0


class Kind(IntEnum):
    """What an event is; events at the same GPS time are released in this order."""

    OWN_FIX = 0
    PEER_FIX = 1
    RANGE = 2
    OUTPUT = 3  # an estimate due at a sensor sample


class Event(NamedTuple):
    t_gps_s: float
    kind: Kind
    seq: int  # arrival order (ties at equal time and kind)
    #: by kind: the own fix (pos, vel, pos_sigma, vel_sigma); (peer id, its fix); (peer id,
    #: range_m); an output's t_sc_s
    payload: Any
    key: tuple  # what makes a duplicate: (t_gps_s, kind) or (t_gps_s, kind, peer id)


class EventOrder:
    """The queue: a heap of :class:`Event` with the stream's and the released times."""

    def __init__(self, hold_s: float, max_hold_s: float):
        self.min_hold_s = hold_s
        self.max_hold_s = max_hold_s
        self.heap: list[Event] = []
        self.seq = 0
        self.pending: set[tuple] = set()  # keys of the events held
        self.t_stream_gps_s = -math.inf  # newest own-clock time seen (GPS)
        self.t_done_gps_s = -math.inf  # events up to here have been released
        self.max_lateness_s = 0.0  # of a peer fix behind the own-clock stream
        self.peer_clock_seen: dict[int, float] = {}  # newest peer-clock stamp of a fix, per id
        self.anonymous_seen: set[tuple] = set()  # (t_sc_s, t_gps_s) of fixes without a peer id
        self.n_stale = 0

    def __len__(self) -> int:
        return len(self.heap)

    @property
    def hold_s(self) -> float:
        return min(self.max_hold_s, max(self.min_hold_s, self.max_lateness_s + HOLD_MARGIN_S))

    @property
    def t_release_gps_s(self) -> float:
        """Events up to here are due: the stream less the hold."""
        return self.t_stream_gps_s - self.hold_s

    @property
    def t_flush_gps_s(self) -> float:
        """After the batch: everything up to the newest own-clock time + the longest hold
        (a peer fix further ahead has a corrupt time)."""
        return self.t_stream_gps_s + self.max_hold_s

    # ------------------------------------------------------------------ arrivals
    def advance_stream(self, t_gps_s: float) -> None:
        self.t_stream_gps_s = max(self.t_stream_gps_s, t_gps_s)

    def saw_lateness(self, lateness_s: float) -> None:
        """A peer fix arrived *lateness_s* behind its GPS time on the own-clock stream."""
        self.max_lateness_s = max(self.max_lateness_s, lateness_s)

    def stale(self, t_gps_s: float, key: tuple | None = None) -> bool:
        """True (and counted) for an event at or before the time released, or already held."""
        if t_gps_s <= self.t_done_gps_s or (key is not None and key in self.pending):
            self.n_stale += 1
            return True
        return False

    def held(self, key: tuple) -> bool:
        """True (and counted as stale) for a duplicate of an event still held."""
        if key in self.pending:
            self.n_stale += 1
            return True
        return False

    def peer_fix_replayed(self, peer_id: int, t_peer_sc_s: float) -> bool:
        """A peer's fixes come in its clock's order: one not newer than the newest already
        received from *peer_id* is a replay (counted); otherwise it is the newest now."""
        if t_peer_sc_s <= self.peer_clock_seen.get(peer_id, -math.inf):
            self.n_stale += 1
            return True
        self.peer_clock_seen[peer_id] = t_peer_sc_s
        return False

    def anonymous_replayed(self, t_peer_sc_s: float, t_gps_s: float) -> bool:
        """The same for a peer fix whose peer is unknown: replayed if seen before."""
        if (t_peer_sc_s, t_gps_s) in self.anonymous_seen:
            self.n_stale += 1
            return True
        self.anonymous_seen.add((t_peer_sc_s, t_gps_s))
        return False

    def push(self, t_gps_s: float, kind: Kind, payload: Any, key: tuple) -> None:
        self.seq += 1
        self.pending.add(key)
        heapq.heappush(self.heap, Event(t_gps_s, kind, self.seq, payload, key))

    # ------------------------------------------------------------------ release
    def due(self, t_until_gps_s: float) -> bool:
        """An event at or before *t_until_gps_s* is held."""
        return bool(self.heap) and self.heap[0][0] <= t_until_gps_s

    def pop(self) -> Event:
        """The earliest event, released: the time processed moves to it."""
        event = heapq.heappop(self.heap)
        self.pending.discard(event.key)
        self.t_done_gps_s = max(self.t_done_gps_s, event.t_gps_s)
        return event

    def put_back(self, event: Event) -> None:
        """An event the caller could not finish (out of budget): resumed at the next release."""
        heapq.heappush(self.heap, event)
        self.pending.add(event.key)

    def drop_beyond(self, t_until_gps_s: float) -> int:
        """Drop every event after *t_until_gps_s*; how many."""
        n = 0
        while self.heap and self.heap[0][0] > t_until_gps_s:
            self.pending.discard(heapq.heappop(self.heap).key)
            n += 1
        return n
