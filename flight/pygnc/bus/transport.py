"""ZeroMQ sockets for the channels and the control link, with the policies of channels.py.

One :class:`zmq.Context` per process, created in that process.  Every socket has a small
linger so a close never hangs shutdown, and no call here blocks without a timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
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

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Publisher:
    """The producer end of one channel (an XPUB socket that sees its subscribers)."""

    def __init__(self, ctx: zmq.Context, channel: Channel | str, run_dir, encoder: Encoder,
                 expected_subscribers: int = 0, max_message_bytes: int = 64 * 1024):
        self.channel = CHANNELS[channel] if isinstance(channel, str) else channel
        self.encoder = encoder
        self.expected_subscribers = expected_subscribers
        self.max_message_bytes = max_message_bytes
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
                wait: Callable[[float], bool] | None = None) -> bool:
        """Send one message under the channel's policy; True if it was sent.

        For BLOCK channels *wait(seconds)* is called while the consumers are full; it
        services the caller's control link and returns False to abandon the send (the task
        is stopping).  Without *wait* a BLOCK send waits in 50 ms slices, for at most 5 s.
        """
        data = self.encoder.encode(msg_type, body)
        if len(data) > self.max_message_bytes:
            raise ValueError(f"{msg_type} message of {len(data)} bytes exceeds the bus limit")
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
