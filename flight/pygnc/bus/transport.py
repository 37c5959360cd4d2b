"""ZeroMQ sockets for the channels and the control link, with the policies of channels.py.

One :class:`zmq.Context` per process, created in that process.  Every socket has a small
linger so a close never hangs shutdown, and no call here blocks without a timeout.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import time
from typing import Callable

import zmq

from .channels import CHANNELS, Channel, Policy, control_endpoint
from .messages import DecodeCounters, Encoder, Message, decode

#: Linger on close, ms: long enough to hand the last messages to a live peer, short
#: enough that a dead peer cannot hold up shutdown.
LINGER_MS = 500


@dataclass
class PublisherCounters:
    sent: int = 0
    dropped: int = 0        # DROP/LATEST: did not fit
    blocked_waits: int = 0  # BLOCK: times a send had to wait for a slow consumer
    lost_at_stop: int = 0   # BLOCK: abandoned because the task was told to stop
    subscriptions: int = 0
    replays: int = 0           # replay requests answered
    replayed: int = 0          # messages sent again by replays
    history_evicted: int = 0   # kept messages forgotten (the history's size bound)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Publisher:
    """The producer end of one channel (an XPUB socket that sees its subscribers).

    Replay: messages published with ``keep=True`` are remembered (encoded, the most recent
    *history_max_bytes* of them).  :meth:`request_replay` re-sends them, in order, once the
    restarted consumer has subscribed (or after :attr:`REPLAY_SUBSCRIBE_WAIT_S`), through
    :meth:`pump`; messages published meanwhile queue behind them, so every consumer sees
    this producer's messages in publication order (the others get the replayed ones a
    second time, byte for byte identical: same ``seq``).
    """

    #: Longest wait for a restarted consumer's subscription before replaying anyway, s.
    REPLAY_SUBSCRIBE_WAIT_S = 2.0

    def __init__(self, ctx: zmq.Context, channel: Channel | str, run_dir, encoder: Encoder,
                 expected_subscribers: int = 0, max_message_bytes: int = 64 * 1024,
                 history_max_bytes: int = 0):
        self.channel = CHANNELS[channel] if isinstance(channel, str) else channel
        self.encoder = encoder
        self.expected_subscribers = expected_subscribers
        self.max_message_bytes = max_message_bytes
        self.history_max_bytes = int(history_max_bytes)
        self.history: deque[bytes] = deque()
        self.history_bytes = 0
        self._backlog: deque[bytes] | None = None  # waiting behind a replay, in order
        self._replay_at = 0.0                      # replay not before the subscription or this time
        self.counters = PublisherCounters()
        s = ctx.socket(zmq.XPUB)
        s.setsockopt(zmq.LINGER, LINGER_MS)
        s.setsockopt(zmq.SNDHWM, self.channel.hwm)
        s.setsockopt(zmq.XPUB_VERBOSE, 1)
        if self.channel.policy is not Policy.LATEST:
            # Never drop silently: a full queue makes send() raise Again, which we handle.
            # (LATEST channels have a generous HWM and conflating consumers instead.)
            s.setsockopt(zmq.XPUB_NODROP, 1)
        s.bind(self.channel.endpoint(run_dir))
        self.socket = s

    def poll_subscriptions(self, timeout_ms: int = 0) -> None:
        """Consume subscribe/unsubscribe notifications (non-blocking by default)."""
        while self.socket.poll(timeout_ms, zmq.POLLIN):
            timeout_ms = 0
            frame = self.socket.recv(zmq.NOBLOCK)
            if frame[:1] == b"\x01":
                self.counters.subscriptions += 1
            elif frame[:1] == b"\x00":
                self.counters.subscriptions = max(0, self.counters.subscriptions - 1)

    @property
    def ready(self) -> bool:
        return self.counters.subscriptions >= self.expected_subscribers

    def publish(self, msg_type: str, body: dict,
                wait: Callable[[float], bool] | None = None, keep: bool = True) -> bool:
        """Send one message under the channel's policy; True if it was sent (or queued
        behind a replay under way).  *keep*: remember it for a replay.

        For BLOCK channels *wait(seconds)* is called while the consumers are full; it
        services the caller's control link and returns False to abandon the send (the task
        is stopping).  Without *wait* a BLOCK send waits in 50 ms slices, for at most 5 s.
        """
        data = self.encoder.encode(msg_type, body)
        if len(data) > self.max_message_bytes:
            raise ValueError(f"{msg_type} message of {len(data)} bytes exceeds the bus limit")
        if keep and self.history_max_bytes > 0:
            self._remember(data)
        if self._backlog is not None:
            self._backlog.append(data)
            return True
        if self.channel.policy is Policy.BLOCK:
            waited = 0.0
            while True:
                try:
                    self.socket.send(data, zmq.NOBLOCK)
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
                        self.socket.poll(50, zmq.POLLOUT)
                        waited += 0.05
                        if waited >= 5.0:
                            self.counters.lost_at_stop += 1
                            return False
        try:
            self.socket.send(data, zmq.NOBLOCK)
            self.counters.sent += 1
            return True
        except zmq.Again:
            self.counters.dropped += 1
            return False

    # -- replay --------------------------------------------------------------------------
    def _remember(self, data: bytes) -> None:
        self.history.append(data)
        self.history_bytes += len(data)
        while self.history_bytes > self.history_max_bytes and self.history:
            self.history_bytes -= len(self.history.popleft())
            self.counters.history_evicted += 1

    @property
    def replaying(self) -> bool:
        return self._backlog is not None

    def request_replay(self) -> int:
        """Queue every kept message for sending again (restarting a replay under way);
        returns how many.  Sent by :meth:`pump` once one more consumer has subscribed than
        before (XPUB_VERBOSE passes every subscription and a dead consumer's are never
        withdrawn, so a restarted consumer adds one) or after REPLAY_SUBSCRIBE_WAIT_S."""
        self.counters.replays += 1
        self._backlog = deque(self.history)
        self._replay_at = time.monotonic() + self.REPLAY_SUBSCRIBE_WAIT_S
        return len(self._backlog)

    def pump(self, t_end: float) -> bool:
        """Send queued replay messages until *t_end* (monotonic) or a consumer's queue is
        full; True while some remain (call again on the next loop turn)."""
        if self._backlog is None:
            return False
        self.poll_subscriptions()
        if (self.counters.subscriptions < self.expected_subscribers + self.counters.replays
                and time.monotonic() < self._replay_at):
            return True
        backlog = self._backlog
        while backlog:
            try:
                self.socket.send(backlog[0], zmq.NOBLOCK)
            except zmq.Again:
                return True  # a consumer is full: go on next turn, in order
            backlog.popleft()
            self.counters.sent += 1
            self.counters.replayed += 1
            if time.monotonic() >= t_end:
                break
        if backlog:
            return True
        self._backlog = None
        return False

    def close(self) -> None:
        self.socket.close(LINGER_MS)


class Subscriber:
    """The consumer end of one channel."""

    def __init__(self, ctx: zmq.Context, channel: Channel | str, run_dir,
                 counters: DecodeCounters, max_message_bytes: int = 64 * 1024):
        self.channel = CHANNELS[channel] if isinstance(channel, str) else channel
        self.counters = counters
        self.max_message_bytes = max_message_bytes
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        if self.channel.policy is Policy.LATEST:
            s.setsockopt(zmq.CONFLATE, 1)
        else:
            s.setsockopt(zmq.RCVHWM, self.channel.hwm)
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.connect(self.channel.endpoint(run_dir))
        self.socket = s

    def recv_raw(self) -> bytes | None:
        """One raw frame if one is waiting, else None (never blocks)."""
        try:
            return self.socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None

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

    def __init__(self, ctx: zmq.Context, run_dir, task_name: str, counters: DecodeCounters):
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

    def recv(self) -> Message | None:
        try:
            raw = self.socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        return decode(raw, self.counters)

    def close(self) -> None:
        self.socket.close(LINGER_MS)


class ControlServer:
    """The supervisor's ROUTER: addresses tasks by name; a restarted task takes over."""

    def __init__(self, ctx: zmq.Context, run_dir, counters: DecodeCounters):
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
            self.socket.send_multipart([task_name.encode(), self.encoder.encode(msg_type, body)],
                                       zmq.NOBLOCK)
            return True
        except (zmq.Again, zmq.ZMQError):
            return False

    def recv(self) -> tuple[str, Message | None] | None:
        try:
            frames = self.socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        if len(frames) != 2:
            self.counters.bad_envelope += 1
            return None
        try:
            name = frames[0].decode()
        except UnicodeDecodeError:
            self.counters.bad_envelope += 1
            return None
        return name, decode(frames[1], self.counters)

    def close(self) -> None:
        self.socket.close(LINGER_MS)
