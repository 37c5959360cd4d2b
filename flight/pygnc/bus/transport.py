"""ZeroMQ sockets for the channels and the control link, with the policies of channels.py.

One :class:`zmq.Context` per process, created in that process.  Every socket has a bounded
linger so a close never hangs shutdown, and no call here blocks without a timeout.

Replay to a restarted consumer (docs/interface.md, "Replay after a restart").  A channel
carries two kinds of frames:

* **live** frames: a message envelope as :class:`~pygnc.bus.messages.Encoder` packs it;
  every one begins with :data:`LIVE_PREFIX` (the map header of the envelope's six keys),
  and that is what a consumer subscribes to for the live stream;
* **replay** frames for one consumer: :func:`replay_topic` (byte ``0xC1`` - never the
  first byte of a msgpack object -, the consumer's name length, its name) followed by an
  envelope, or by nothing: the end of that consumer's replay.

A restarted consumer subscribes at first to its replay topic only, so it receives nothing
live and nobody else receives its replay.  The producer sends it what it kept of the
channel, in order (:meth:`Publisher.request_replay`, :meth:`Publisher.pump`; it waits
while the consumer's queue is full, so nothing is dropped), then the end mark; from then
on every message it publishes also goes to the consumer's replay topic, until the
consumer has subscribed to the live stream and dropped its replay topic - the producer
sees it drop the topic.  The consumer drops it on the first live frame it receives:
every message before that one reached it as a copy (the producer's subscription table did
not have it yet), every later one live; the copies of those, still queued or in flight,
are discarded by its own subscription filter - each message is taken exactly once, in
order (:class:`Subscriber`).  A producer of a ``block`` channel publishes nothing live while a
replay is pending (:attr:`Publisher.replay_pending`): the channel waits for its slowest
consumer, the one catching up included, so every other consumer sees the stream as it
would have without the restart.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import zmq

from .channels import CHANNELS, Channel, Policy, control_endpoint
from .messages import DecodeCounters, Encoder, Message, decode

#: Linger on close, ms: a message still queued when its socket closes goes to the kernel
#: at once if its consumer reads (the sinks, which record the producers' final messages);
#: the linger only ever waits for a consumer that has stopped reading - ingest's queues to
#: the estimators, which stop at the same time - and the tree's stop waits for it.
LINGER_MS = 50
#: First bytes of every live frame (the msgpack map header of the envelope's six keys):
#: the live stream's subscription.
LIVE_PREFIX = b"\x86"
#: First byte of a replay frame (unused in msgpack: no message begins with it).
REPLAY_MARK = 0xC1
_REPLAY_MARK_BYTE = bytes((REPLAY_MARK,))
#: A BLOCK send without a *wait* (:meth:`Publisher.publish`) tries again after this long, s,
#: and gives up after :data:`BLOCK_GIVE_UP_S` of full queues.
BLOCK_RETRY_S = 0.005
BLOCK_GIVE_UP_S = 5.0
#: A replay waiting on a full consumer queue tries again after this long, s (the queue
#: holds thousands of messages: the consumer is busy for far longer).
REPLAY_RETRY_S = 0.02


def replay_topic(consumer: str) -> bytes:
    """The topic of *consumer*'s replay frames: 0xC1, the name's length, the name (UTF-8,
    at most 255 bytes)."""
    name = consumer.encode()
    if len(name) > 255:
        raise ValueError(f"consumer name too long for a replay topic: {consumer!r}")
    return bytes((REPLAY_MARK, len(name))) + name


@dataclass
class PublisherCounters:
    sent: int = 0
    dropped: int = 0  # DROP/LATEST: did not fit
    blocked_waits: int = 0  # BLOCK: times a send had to wait for a slow consumer
    lost_at_stop: int = 0  # BLOCK: abandoned because the task was told to stop
    subscriptions: int = 0  # consumers subscribed (live, or to their replay)
    replays: int = 0  # replays begun (a consumer's replay topic appeared, or a request)
    replayed: int = 0  # messages sent again by replays (and copies in hand-overs)
    replays_done: int = 0  # replays handed over to the live stream
    replay_dropped: int = 0  # hand-over copies that did not fit (DROP channels)
    history_evicted: int = 0  # kept messages forgotten (the history's size bound)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class ReplayCursor(Protocol):
    def next(self) -> bytes | None:
        """The next encoded message to replay, None when there is none (yet)."""


class _HistoryCursor:
    """Walks a publisher's kept messages by absolute index (evicted ones are skipped)."""

    def __init__(self, pub: Publisher):
        self.pub = pub
        self.i = pub.history_base

    def next(self) -> bytes | None:
        pub = self.pub
        if self.i < pub.history_base:  # evicted while we were sending
            self.i = pub.history_base
        k = self.i - pub.history_base
        if k >= len(pub.history):
            return None
        self.i += 1
        return pub.history[k]


# Phases of one consumer's replay.
_WAITING, _ACTIVE, _HANDOVER = "waiting", "active", "handover"


@dataclass
class _Replay:
    consumer: str
    topic: bytes
    phase: str = _WAITING
    cursor: ReplayCursor | None = None
    pending: bytes | None = None  # a frame that did not fit, sent first next time
    sent: int = 0
    t_begun: float = 0.0


class Publisher:
    """The producer end of one channel (an XPUB socket that sees its subscribers).

    Replay: messages published with ``keep=True`` are remembered (encoded, the most recent
    *history_max_bytes* of them) and replayed to a restarted consumer alone (module
    docstring); a task whose history is not these messages (ingest: its batch) sets
    :attr:`source` to a factory of its own :class:`ReplayCursor`.
    """

    def __init__(
        self,
        ctx: zmq.Context,
        channel: Channel | str,
        run_dir: str | Path,
        encoder: Encoder,
        expected_subscribers: int = 0,
        max_message_bytes: int = 64 * 1024,
        history_max_bytes: int = 0,
    ):
        self.channel = CHANNELS[channel] if isinstance(channel, str) else channel
        self.encoder = encoder
        self.expected_subscribers = expected_subscribers
        self.max_message_bytes = max_message_bytes
        self.history_max_bytes = int(history_max_bytes)
        self.history: deque[bytes] = deque()
        self.history_bytes = 0
        self.history_base = 0  # absolute index of history[0]
        self.source: Callable[[], ReplayCursor] = lambda: _HistoryCursor(self)
        self.live_subscribers = 0
        self.replay_subscribers: dict[str, int] = {}  # consumer -> its replay-topic subscriptions
        self.replays: dict[str, _Replay] = {}
        self.log: Callable[[str], None] | None = None  # one line per replay begun / handed over
        self.counters = PublisherCounters()
        s = ctx.socket(zmq.XPUB)
        s.setsockopt(zmq.LINGER, LINGER_MS)
        s.setsockopt(zmq.SNDHWM, self.channel.hwm)
        s.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription, repeated topics included
        s.setsockopt(zmq.XPUB_VERBOSER, 1)  # every unsubscription, a dead consumer's included
        if self.channel.policy is not Policy.LATEST:
            # Never drop silently: a full queue makes send() raise Again, which we handle.
            # (LATEST channels have a generous HWM and conflating consumers instead.)
            s.setsockopt(zmq.XPUB_NODROP, 1)
        s.bind(self.channel.endpoint(run_dir))
        self.socket = s

    # -- subscriptions -------------------------------------------------------------------
    def poll_subscriptions(self, timeout_ms: int = 0) -> None:
        """Consume subscribe/unsubscribe notifications (non-blocking by default)."""
        while self.socket.poll(timeout_ms, zmq.POLLIN):
            timeout_ms = 0
            frame = self.socket.recv(zmq.NOBLOCK)
            if not frame or frame[0] > 1:
                continue
            up = frame[0] == 1
            topic = frame[1:]
            if topic[:1] == bytes((REPLAY_MARK,)) and len(topic) >= 2:
                self._replay_subscription(topic[2 : 2 + topic[1]].decode(errors="replace"), up)
            else:
                self.live_subscribers = max(0, self.live_subscribers + (1 if up else -1))
            self.counters.subscriptions = self.live_subscribers + sum(
                1 for n in self.replay_subscribers.values() if n > 0
            )

    def _replay_subscription(self, consumer: str, up: bool) -> None:
        n = max(0, self.replay_subscribers.get(consumer, 0) + (1 if up else -1))
        self.replay_subscribers[consumer] = n
        r = self.replays.get(consumer)
        if up:
            if r is None:  # nobody asked: it waits for a replay a predecessor of ours owed it
                r = self.replays[consumer] = _Replay(consumer, replay_topic(consumer))
            if r.phase == _WAITING:
                self._activate(r)
        elif n == 0 and r is not None:
            if r.phase == _HANDOVER:  # it subscribed to the live stream (or died): done
                del self.replays[consumer]
                self.counters.replays_done += 1
                self._say(
                    f"replay to {consumer} handed over: {r.sent} messages in {time.monotonic() - r.t_begun:.2f} s"
                )
            elif r.phase == _ACTIVE:  # it went away mid-replay: wait for its next instance
                r.phase, r.cursor, r.pending = _WAITING, None, None

    @property
    def ready(self) -> bool:
        return self.counters.subscriptions >= self.expected_subscribers

    # -- publishing ----------------------------------------------------------------------
    def publish(
        self,
        msg_type: str,
        body: dict,
        wait: Callable[[float], bool] | None = None,
        keep: bool = True,
        seq: int | None = None,
    ) -> bool:
        """Send one message under the channel's policy; True if it was sent.  *keep*:
        remember it for a replay; *seq*: its number (:meth:`Encoder.encode`).  A consumer
        in the hand-over after its replay gets a copy on its replay topic.

        For BLOCK channels *wait(seconds)* is called while the consumers are full; it
        services the caller's control link and returns False to abandon the send (the task
        is stopping).  Without *wait* a BLOCK send tries again every
        :data:`BLOCK_RETRY_S` for at most :data:`BLOCK_GIVE_UP_S`.
        """
        data = self.encoder.encode(msg_type, body, seq)
        if len(data) > self.max_message_bytes:
            raise ValueError(f"{msg_type} message of {len(data)} bytes exceeds the bus limit")
        if keep and self.history_max_bytes > 0:
            self._remember(data)
        if not self._send(data, wait):
            return False
        # A send that waits services the task (*wait*) and the subscriptions: a consumer may
        # go live (its replay ends), die or restart (its replay is replaced), or another one
        # ask for a replay, while the copies go out - so over a snapshot, each replay still
        # the current one when its turn comes.
        for r in list(self.replays.values()):
            if self._current(r) and r.phase == _HANDOVER and self._send(r.topic + data, wait, replay=r):
                r.sent += 1
                self.counters.replayed += 1
        return True

    def _current(self, r: _Replay) -> bool:
        return self.replays.get(r.consumer) is r

    def _send(self, data: bytes, wait: Callable[[float], bool] | None, replay: _Replay | None = None) -> bool:
        """Send *data* under the channel's policy; *replay*: a hand-over copy for that replay,
        given up (False) once it is no longer the consumer's current replay (the copy is not
        wanted any more: the consumer takes the live stream, or restarted)."""
        if self.channel.policy is Policy.BLOCK:
            t_give_up = None
            while True:
                try:
                    self.socket.send(data, zmq.NOBLOCK)
                    if replay is None:
                        self.counters.sent += 1
                    return True
                except zmq.Again:
                    self.counters.blocked_waits += 1
                    self.poll_subscriptions()
                    if wait is not None:
                        if not wait(0.05):
                            self.counters.lost_at_stop += 1
                            return False
                    else:
                        # (no event to wait on: an XPUB polls writable while a consumer's
                        # queue is full, so the time is the clock's, not a count of polls)
                        now = time.monotonic()
                        if t_give_up is None:
                            t_give_up = now + BLOCK_GIVE_UP_S
                        elif now >= t_give_up:
                            self.counters.lost_at_stop += 1
                            return False
                        time.sleep(BLOCK_RETRY_S)
                    if replay is not None and not (self._current(replay) and replay.phase == _HANDOVER):
                        return False
        try:
            self.socket.send(data, zmq.NOBLOCK)
            if replay is None:
                self.counters.sent += 1
            return True
        except zmq.Again:
            if replay is not None:
                self.counters.replay_dropped += 1
            else:
                self.counters.dropped += 1
            return False

    # -- replay --------------------------------------------------------------------------
    def _remember(self, data: bytes) -> None:
        self.history.append(data)
        self.history_bytes += len(data)
        while self.history_bytes > self.history_max_bytes and self.history:
            self.history_bytes -= len(self.history.popleft())
            self.history_base += 1
            self.counters.history_evicted += 1

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(f"{self.channel.name}: {text}")

    def _activate(self, r: _Replay) -> None:
        r.phase, r.cursor, r.pending, r.sent, r.t_begun = _ACTIVE, self.source(), None, 0, time.monotonic()
        self.counters.replays += 1
        self._say(f"replaying to {r.consumer}")

    @property
    def replaying(self) -> bool:
        """A replay is under way or waiting for its consumer."""
        return bool(self.replays)

    @property
    def replay_pending(self) -> bool:
        """A consumer is still to get its replay (waiting for it, or sending it): a BLOCK
        producer publishes nothing live meanwhile."""
        return any(r.phase != _HANDOVER for r in self.replays.values())

    def request_replay(self, consumer: str) -> None:
        """*consumer* restarted (or is about to): send it what was kept of the channel once
        its replay topic is subscribed (at once if it is), from the start (a replay under
        way to it begins again)."""
        r = self.replays[consumer] = _Replay(consumer, replay_topic(consumer))
        self.poll_subscriptions()
        if r.phase == _WAITING and self.replay_subscribers.get(consumer, 0) > 0:
            self._activate(r)

    def cancel_replay(self, consumer: str) -> None:
        """*consumer* will not come back (its restarts are exhausted): forget its replay."""
        if self.replays.pop(consumer, None) is not None:
            self._say(f"replay to {consumer} cancelled")

    def pump(self, t_end: float) -> float | None:
        """Send replay frames until *t_end* (monotonic); returns how long the caller may wait
        before calling again (0: more to send now; :data:`REPLAY_RETRY_S`: a consumer's
        queue is full), or None when no replay has anything to send."""
        self.poll_subscriptions()
        wait = None
        for r in list(self.replays.values()):
            if r.phase != _ACTIVE:
                continue
            while True:
                frame = r.pending
                if frame is None:
                    assert r.cursor is not None  # active
                    data = r.cursor.next()
                    frame = r.topic if data is None else r.topic + data
                try:
                    self.socket.send(frame, zmq.NOBLOCK)
                except zmq.Again:
                    r.pending = frame
                    wait = REPLAY_RETRY_S if wait is None else min(wait, REPLAY_RETRY_S)
                    break
                r.pending = None
                if len(frame) == len(r.topic):  # the end mark: copies from now until it is live
                    r.phase = _HANDOVER
                    self._say(f"replay to {r.consumer}: {r.sent} messages sent, handing over")
                    break
                r.sent += 1
                self.counters.replayed += 1
                if time.monotonic() >= t_end:
                    wait = 0.0
                    break
        return wait

    def close(self) -> None:
        self.socket.close(LINGER_MS)


class Subscriber:
    """The consumer end of one channel.

    *consumer* (the task's name) with *replay*: this is a restarted consumer - it takes its
    replay first (frames on its replay topic, handed on without the topic) and nothing
    live.  At the replay's end mark it subscribes to the live stream, and takes the copies
    the producer keeps sending on the replay topic until the first live frame arrives; then
    it drops the topic, so the copies of that frame and of later ones are discarded by the
    subscription filter (module docstring).  A ``latest`` channel has no replay (the next
    message replaces everything).
    """

    def __init__(
        self,
        ctx: zmq.Context,
        channel: Channel | str,
        run_dir: str | Path,
        counters: DecodeCounters,
        max_message_bytes: int = 64 * 1024,
        consumer: str | None = None,
        replay: bool = False,
    ):
        self.channel = CHANNELS[channel] if isinstance(channel, str) else channel
        self.counters = counters
        self.max_message_bytes = max_message_bytes
        self.topic = replay_topic(consumer) if consumer else None
        #: taking the replay (not yet the live stream)
        self.replaying = bool(replay and self.topic is not None and self.channel.policy is not Policy.LATEST)
        self.replayed = 0  # messages taken from the replay
        self.handover_copies = 0  # copies taken after the replay's end, before the first live frame
        #: the frame recv_raw returned last came from the replay (not the live stream)
        self.from_replay = False
        #: A ``block`` channel's producer publishes the same stream whenever it starts (ingest:
        #: its batch, then the live frames it kept) and numbers it (``seq``: the position in
        #: the stream, live, replayed or copied alike), so a message not newer than the
        #: newest taken - live or from a replay - is one a restarted producer sends again,
        #: and is skipped (``repeats``; the task runner keeps ``max_seq``).
        self.skip_repeats = self.channel.policy is Policy.BLOCK
        self.max_seq = 0
        self.repeats = 0
        #: called once when the replay's end mark arrives
        self.on_replay_end: Callable[[Subscriber], None] | None = None
        self._handover = False
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        if self.channel.policy is Policy.LATEST:
            s.setsockopt(zmq.CONFLATE, 1)
        else:
            s.setsockopt(zmq.RCVHWM, self.channel.hwm)
        s.setsockopt(zmq.SUBSCRIBE, self.topic if self.replaying else LIVE_PREFIX)
        s.connect(self.channel.endpoint(run_dir))
        self.socket = s

    def recv_raw(self) -> bytes | None:
        """One message frame (a replayed one without its topic) if one is waiting, else
        None (never blocks)."""
        while True:
            try:
                raw = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return None
            self.from_replay = False
            if raw[:1] != _REPLAY_MARK_BYTE:  # live
                if self._handover:  # every later message comes live: the copies are not wanted
                    self.socket.setsockopt(zmq.UNSUBSCRIBE, self.topic)
                    self._handover = False
                return raw
            topic = self.topic
            if topic is None or not raw.startswith(topic):
                self.counters.bad_envelope += 1  # (not ours: never sent to us)
                continue
            data = raw[len(topic) :]
            if not data:  # the end mark
                if self.replaying:
                    self._end_replay()
                continue
            if self.replaying:
                self.replayed += 1
                self.from_replay = True
            else:
                self.handover_copies += 1
            return data

    def _end_replay(self) -> None:
        self.socket.setsockopt(zmq.SUBSCRIBE, LIVE_PREFIX)
        self.replaying = False
        self._handover = True
        if self.on_replay_end is not None:
            self.on_replay_end(self)

    def recv(self) -> tuple[Message | None, bytes] | None:
        """(decoded message or None if dropped, raw frame), or None if nothing waits."""
        raw = self.recv_raw()
        if raw is None:
            return None
        return decode(raw, self.counters, self.max_message_bytes), raw

    def close(self) -> None:
        self.socket.close(0)


class ControlClient:
    """A task's DEALER link to the supervisor (identity = task name)."""

    def __init__(self, ctx: zmq.Context, run_dir: str | Path, task_name: str, counters: DecodeCounters):
        self.encoder = Encoder(task_name)
        self.counters = counters
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, LINGER_MS)
        s.setsockopt(zmq.IDENTITY, task_name.encode())
        s.setsockopt(zmq.SNDHWM, 100)
        s.connect(control_endpoint(run_dir))
        self.socket = s

    def send(self, msg_type: str, body: dict) -> bool:
        try:
            self.socket.send(self.encoder.encode(msg_type, body), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def pending(self) -> Iterator[Message]:
        """The messages waiting now, decoded (malformed ones counted and skipped); never
        blocks.  Stopping the iteration early leaves the rest queued."""
        while True:
            try:
                raw = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            msg = decode(raw, self.counters)
            if msg is not None:
                yield msg

    def close(self) -> None:
        self.socket.close(LINGER_MS)


class ControlServer:
    """The supervisor's ROUTER: addresses tasks by name; a restarted task takes over."""

    def __init__(self, ctx: zmq.Context, run_dir: str | Path, counters: DecodeCounters):
        self.encoder = Encoder("supervisor")
        self.counters = counters
        s = ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.LINGER, LINGER_MS)
        s.setsockopt(zmq.ROUTER_HANDOVER, 1)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        s.bind(control_endpoint(run_dir))
        self.socket = s

    def send(self, task_name: str, msg_type: str, body: dict) -> bool:
        """Send to one task; False if it is not connected (or its queue is full)."""
        try:
            self.socket.send_multipart([task_name.encode(), self.encoder.encode(msg_type, body)], zmq.NOBLOCK)
            return True
        except (zmq.Again, zmq.ZMQError):
            return False

    def pending(self) -> Iterator[tuple[str, Message]]:
        """(task name, message) for each message waiting now; malformed envelopes and
        messages are counted and skipped.  Never blocks."""
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.counters.bad_envelope += 1
                continue
            try:
                name = frames[0].decode()
            except UnicodeDecodeError:
                self.counters.bad_envelope += 1
                continue
            msg = decode(frames[1], self.counters)
            if msg is not None:
                yield name, msg

    def close(self) -> None:
        self.socket.close(LINGER_MS)
