"""The loop every task process runs: pend with a timeout, check run status, work.

Life of a task (see docs/interface.md, "Tasks and supervision"):

1. signal handlers for SIGINT/SIGTERM only set a flag (and wake the poll via a pipe); they
   are installed first thing (``python -m pygnc.tasks``), and the task's module (numpy and
   the estimation stack: the slow part of start-up) is imported in a helper thread while
   the main thread waits for it or for a signal - a task told to stop before it has started
   holds nothing and exits at once (status 0);
2. subscribers connect, publishers bind, the control link connects to the supervisor;
3. publishers wait until every declared consumer has subscribed (ready handshake), then the
   task reports ``ready`` and waits for ``start`` - so nobody misses the start of a stream;
4. the loop: poll control + subscriptions + wake pipe with a timeout, answer pings, hand
   messages to :meth:`Task.on_message`, call :meth:`Task.step` for a slice of work;
5. stop (a ``stop`` from the supervisor, or the signal flag for non-sinks; a sink waits for
   the supervisor's ``stop`` so it records the producers' final messages, with a fallback
   deadline): a producer leaves what is queued (one message can cost a handler's whole
   budget, the tree's stop waits for the slowest producer, and a batch cut by the stop is
   processed again by the next run), a sink takes it for at most ``Config.sink_stop_drain_s``
   (shorter than the supervisor's kill deadline for sinks); :meth:`Task.on_stop` flushes
   and publishes finals, ``bye``, close, exit 0.

Replay (:mod:`pygnc.bus.transport`).  When a consumer dies, the supervisor sends ``replay``
(naming the consumer and the channels it reads) to every producer of them, and starts the
consumer again with ``--replay``: its subscribers take their replay first and nothing live.
A producer sends each such consumer alone what it kept of the channel - every message
published with ``keep=True``, the most recent ``Config.replay_history_max_bytes`` of them,
or what :attr:`Publisher.source` gives (ingest: its batch) - in order, then hands it over
to the live stream.  ``replay`` with no channels cancels (the consumer will not come back).

A task also stops if its parent changes (the supervisor died) or the supervisor has been
silent for long (no pings).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import zmq

from ..bus.channels import CHANNELS
from ..bus.messages import DecodeCounters, Encoder, Message, decode, type_prefix
from ..bus.transport import ControlClient, Publisher, Subscriber
from ..config import Config, Paths, load_config
from ..log_budget import log_failure
from ..logs import records_dropped, setup_task_logging, sync_logs
from ..signals import STOP_SIGNALS, StopSignals, import_unless_stopped
from .table import TASKS_BY_NAME, TaskSpec, active_subscriptions, expected_subscribers, niceness

_T = TypeVar("_T")

#: Longest single wait in the loop, s (also bounds the reaction to a dead parent).
MAX_POLL_S = 0.5
#: Messages handled per loop turn before the control link is serviced again.
DRAIN_BATCH = 256
#: While draining a subscription, the control link is looked at once this long has passed
#: since the last look, s (a ``stop`` or ``ping`` never waits for a whole batch; by the clock,
#: not by a message count: on a loaded machine 32 messages of an estimator took 0.5 s).
CONTROL_CHECK_S = 0.01
#: Time per loop turn spent re-sending a replay, s.
REPLAY_SLICE_S = 0.05
#: A sink that has caught up (took fewer than DRAIN_BATCH messages in a turn) lets the next
#: ones gather this long before it polls again, s: one wake-up per message (poll, run-status
#: checks, step) cost the batch writer and status reporter several times what handling the
#: message does; 20 ms at most is added to when a message is recorded, stop and pings are
#: answered.
SINK_COALESCE_S = 0.02
#: Development: a directory named by this environment variable gets each task's cProfile
#: statistics (``<task>.prof``) when it exits (``bench/bench_batch.py --profile``).
PROFILE_DIR_ENV = "PYGNC_PROFILE_DIR"


@dataclass
class TaskContext:
    """What a task knows of its run."""

    spec: TaskSpec
    run_dir: Path
    log_dir: Path
    run_number: int
    paths: Paths
    config: Config
    t0_sc_s: float  # spacecraft time given to main.py
    t0_mono_s: float  # CLOCK_MONOTONIC when main.py started
    supervisor_pid: int = 0  # 0: the parent
    replay: bool = False  # a restarted instance: take each channel's replay before its live stream

    def sc_at(self, t_mono_s: float) -> float:
        """Spacecraft time, s, of a CLOCK_MONOTONIC instant (the host's clock at start plus
        the time elapsed since)."""
        return self.t0_sc_s + (t_mono_s - self.t0_mono_s)

    def sc_now(self) -> float:
        """Current spacecraft time, s."""
        return self.sc_at(time.monotonic())


class Task:
    """Base class of a task; subclasses override the hooks they need."""

    #: Failures :meth:`guard` caught (the task carried on).
    failures = 0

    def __init__(self, runner: TaskRunner):
        self.runner = runner
        self.ctx = runner.ctx
        self.config = runner.ctx.config
        self.log = logging.getLogger(runner.ctx.spec.name)

    # -- hooks -------------------------------------------------------------------------
    def on_start(self) -> None:
        """Called once, after the supervisor's ``start``."""

    def on_message(self, channel: str, msg: Message, raw: bytes) -> None:
        """Called for every well-formed message received on a subscribed channel."""

    def on_dropped(self, channel: str, raw: bytes) -> None:
        """Called for a received frame that failed to decode (already counted)."""

    def reads(self, channel: str) -> frozenset[str] | None:
        """The message types of *channel* this task reads (None: all).  Messages of the
        channel's other types are recognised by their first bytes
        (:func:`pygnc.bus.messages.type_prefix`) and go to :meth:`on_unread` undecoded."""
        return None

    def on_unread(self, channel: str, raw: bytes) -> None:
        """Called for a frame of a type :meth:`reads` leaves out (counted ``unread``)."""

    def step(self) -> float:
        """Do a slice of work; return how long the loop may wait before calling again, s."""
        return MAX_POLL_S

    def holds(self, channel: str) -> bool:
        """Read no more of *channel* now; asked only while the channel is being replayed to
        this (restarted) task, whose replay waits for it (a live stream never waits)."""
        return False

    def on_stop(self, reason: str) -> None:
        """Flush, publish final messages, close files.  Must return promptly."""

    def counters(self) -> dict:
        """Task-specific counters reported in every pong."""
        return {}

    # -- helpers -------------------------------------------------------------------------
    def guard(self, what: str, fn: Callable[..., _T], *args: Any) -> tuple[bool, _T | None]:
        """(True, *fn*(*args)), or (False, None) if it raised: counted in :attr:`failures` and
        logged (the first few, :func:`pygnc.log_budget.log_failure`) instead of ending the
        task - for work whose failure must not stop the others (a file, a handler)."""
        try:
            return True, fn(*args)
        except Exception:
            self.failures += 1
            log_failure(self.log, self.failures, "%s failed", what)
            return False, None

    def publish(self, channel: str, msg_type: str, body: dict, keep: bool = True, seq: int | None = None) -> bool:
        """Publish on *channel*; *keep*: remember it for a restarted consumer (replay);
        *seq*: the message's number in a stream the task numbers itself (ingest)."""
        return self.runner.publish(channel, msg_type, body, keep, seq)


class TaskRunner:
    def __init__(self, ctx: TaskContext, task_class: type[Task], signals: StopSignals | None = None):
        self.ctx = ctx
        self.name = ctx.spec.name
        self.log = logging.getLogger(self.name)
        self.stop_requested = False  # set by the signal handler only
        self.stopping_reason: str | None = None
        #: the stop is the supervisor's ordered stop (its ``stop``), not the task's own
        #: (the supervisor gone or silent, a sink's signal fallback)
        self.stop_ordered = False
        self.sink_deadline: float | None = None
        self.decode_counters = DecodeCounters()
        self.supervisor = SupervisorWatch(ctx.supervisor_pid or os.getppid())
        self.last_ping = time.monotonic()
        self.loops = 0

        self.signals = signals or StopSignals()
        self.signals.set_handler(self._on_signal)
        self._wake_r = self.signals.read_fd

        self.zctx = zmq.Context()
        self.encoder = Encoder(self.name)
        self.control = ControlClient(self.zctx, ctx.run_dir, self.name, self.decode_counters)
        max_bytes = ctx.config.max_message_bytes
        replay = ctx.replay and ctx.spec.replay
        self.subscribers = {
            c: Subscriber(self.zctx, c, ctx.run_dir, self.decode_counters, max_bytes, consumer=self.name, replay=replay)
            for c in active_subscriptions(ctx.spec, ctx.config)
        }
        for sub in self.subscribers.values():
            sub.on_replay_end = self._replay_end
        self.publishers = {
            c: Publisher(
                self.zctx,
                c,
                ctx.run_dir,
                self.encoder,
                expected_subscribers(c, ctx.config),
                max_bytes,
                history_max_bytes=ctx.config.replay_history_max_bytes,
            )
            for c in ctx.spec.publishes
        }
        self.poller = zmq.Poller()
        self.poller.register(self.control.socket, zmq.POLLIN)
        self._sub_by_socket = {}
        for c, s in self.subscribers.items():
            self.poller.register(s.socket, zmq.POLLIN)
            self._sub_by_socket[s.socket] = c
        self.poller.register(self._wake_r, zmq.POLLIN)
        for p in self.publishers.values():  # (un)subscriptions: a restarted consumer's replay can begin
            p.log = self.log.info
            self.poller.register(p.socket, zmq.POLLIN)
        # What a wait that reads nothing else listens to (:meth:`service`, the handshake): the
        # control link, the signals' wake pipe, the subscriptions.  Not the subscribers' or the
        # task's own descriptors - they stay readable until read, and a poll on them would
        # return at once for as long as the wait lasts.
        self._control_poller = zmq.Poller()
        for sock in (self.control.socket, self._wake_r, *(p.socket for p in self.publishers.values())):
            self._control_poller.register(sock, zmq.POLLIN)
        self._events: dict = {}
        self._held: set[str] = set()  # replayed subscriptions the task takes no more of now
        if any(s.replaying for s in self.subscribers.values()):
            self.log.info(
                "restarted: taking the replay of %s first",
                ", ".join(c for c, s in self.subscribers.items() if s.replaying),
            )
        self.task = task_class(self)
        #: channel -> the type prefixes of its messages the task does not read
        self._unread_prefixes: dict[str, tuple[bytes, ...]] = {}
        for c in self.subscribers:
            wanted = self.task.reads(c)
            if wanted is not None:
                self._unread_prefixes[c] = tuple(type_prefix(t) for t in CHANNELS[c].types if t not in wanted)

    # -- signals -----------------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:  # only sets a flag; the wake pipe wakes the poll
        self.stop_requested = True

    def _drain_wake(self) -> None:
        self.signals.drain()

    # -- control -------------------------------------------------------------------------
    def _handle_control(self) -> None:
        for msg in self.control.pending():
            if msg.type == "ping":
                self.last_ping = time.monotonic()
                self.control.send("pong", {"key": msg.body["key"], "counters": self.all_counters()})
            elif msg.type == "stop":
                self._begin_stop(msg.body.get("reason", "stop"), ordered=True)
            elif msg.type == "replay":
                self._replay_request(msg.body)

    def service_control(self) -> None:
        """Handle the control messages waiting, if any (never blocks): called by a task in
        the middle of long work, so pings are answered and a stop is seen."""
        if self.control.socket.poll(0, zmq.POLLIN):
            self._handle_control()

    def _replay_request(self, body: dict) -> None:
        """The supervisor's ``replay``: a consumer of these channels died and will be back
        (no channels: it will not)."""
        consumer, channels = body["consumer"], set(body["channels"])
        self.log.info(
            "replay for %s: %s (channels %s)", consumer, body["reason"], sorted(channels) or "none: cancelled"
        )
        for c, p in self.publishers.items():
            if c in channels:
                p.request_replay(consumer)
            else:
                p.cancel_replay(consumer)

    def _hold_replays(self) -> None:
        """A subscription being replayed to this task is polled only while the task takes
        more of it (:meth:`Task.holds`)."""
        for ch, sub in self.subscribers.items():
            held = sub.replaying and self.task.holds(ch)
            if held != (ch in self._held):
                if held:
                    self.poller.unregister(sub.socket)
                    self._held.add(ch)
                else:
                    self.poller.register(sub.socket, zmq.POLLIN)
                    self._held.discard(ch)

    def _replay_end(self, sub: Subscriber) -> None:
        self.log.info("replay of %s taken: %d messages; live from now", sub.channel.name, sub.replayed)

    def _begin_stop(self, reason: str, ordered: bool = False) -> None:
        if self.stopping_reason is None:
            self.stopping_reason = reason
            self.stop_ordered = ordered
            self.log.info("stopping: %s", reason)

    def _check_run_status(self) -> None:
        now = time.monotonic()
        if self.stop_requested and self.stopping_reason is None:
            if self.ctx.spec.sink:
                # Keep recording until the supervisor says the producers are gone.
                if self.sink_deadline is None:
                    self.sink_deadline = now + (self.ctx.config.stop_deadline_producers_s + 0.5)
                    self.log.info("signal: draining until the producers have stopped")
                elif now >= self.sink_deadline:
                    self._begin_stop("signal (no stop from supervisor in time)")
            else:
                self._begin_stop("signal")
        if self.supervisor.gone():
            self._begin_stop("supervisor gone")
        elif now - self.last_ping > 4 * self.ctx.config.health_fatal_s:
            self._begin_stop("no pings from supervisor")

    def all_counters(self) -> dict:
        c = {"loops": self.loops, "bus_rx": self.decode_counters.as_dict(), "log_dropped": records_dropped()}
        for ch, p in self.publishers.items():
            c[f"pub_{ch}"] = p.counters.as_dict()
        repeats = {ch: s.repeats for ch, s in self.subscribers.items() if s.repeats}
        if repeats:  # messages a restarted producer published again, skipped
            c["repeats_skipped"] = repeats
        if self.ctx.replay:  # a restarted instance: what it took again, and what it still waits for
            c["replay_rx"] = {ch: s.replayed for ch, s in self.subscribers.items() if s.replayed}
            c["replay_waiting"] = [ch for ch, s in self.subscribers.items() if s.replaying]
        c.update(self.task.counters())
        return c

    def service(self, timeout_s: float) -> bool:
        """Wait up to *timeout_s* servicing only the control link and signals.

        Used while a BLOCK publish waits for a slow consumer; returns False once the task
        should give up waiting (stopping past a short grace period).
        """
        events = dict(self._control_poller.poll(int(timeout_s * 1000)))
        if self._wake_r in events:
            self._drain_wake()
        if self.control.socket in events:
            self._handle_control()
        self._take_subscriptions(events)
        self._check_run_status()
        return self.stopping_reason is None

    def _take_subscriptions(self, events: dict[Any, int]) -> None:
        """Consume the (un)subscriptions the poll reported (else it reports them again)."""
        for p in self.publishers.values():
            if p.socket in events:
                p.poll_subscriptions()

    def publish(self, channel: str, msg_type: str, body: dict, keep: bool = True, seq: int | None = None) -> bool:
        return self.publishers[channel].publish(msg_type, body, wait=self.service, keep=keep, seq=seq)

    def _pump_replays(self) -> float | None:
        """Send replays for a slice of time; how long the loop may wait before the next
        slice (None: no replay has anything to send)."""
        wait = None
        t_end = time.monotonic() + REPLAY_SLICE_S
        for p in self.publishers.values():
            if p.replays or p.socket in self._events:
                w = p.pump(t_end)
                if w is not None:
                    wait = w if wait is None else min(wait, w)
        return wait

    # -- lifecycle ---------------------------------------------------------------------
    def _handshake(self) -> bool:
        """Ready handshake; False if told to stop before ``start``."""
        deadline = time.monotonic() + self.ctx.config.ready_timeout_s
        while not all(p.ready for p in self.publishers.values()):
            for p in self.publishers.values():
                p.poll_subscriptions(timeout_ms=20)
            self.service(0.0)
            if self.stopping_reason is not None:
                return False
            if time.monotonic() > deadline:
                missing = {
                    c: (p.counters.subscriptions, p.expected_subscribers)
                    for c, p in self.publishers.items()
                    if not p.ready
                }
                self.log.warning("ready handshake timed out; subscriptions (seen, expected): %s", missing)
                break
        self.control.send("ready", {"pid": os.getpid()})
        while True:
            events = dict(self._control_poller.poll(int(MAX_POLL_S * 1000)))
            if self._wake_r in events:
                self._drain_wake()
            self._take_subscriptions(events)
            if self.control.socket in events:
                for msg in self.control.pending():
                    if msg.type == "start":
                        return True
                    if msg.type == "ping":
                        self.last_ping = time.monotonic()
                        self.control.send("pong", {"key": msg.body["key"], "counters": self.all_counters()})
                    elif msg.type == "stop":
                        self._begin_stop(msg.body.get("reason", "stop"), ordered=True)
                    elif msg.type == "replay":
                        self._replay_request(msg.body)
            self._check_run_status()
            if self.stopping_reason is not None:
                return False
            if time.monotonic() > deadline + self.ctx.config.ready_timeout_s:
                self.log.warning("no start from the supervisor; starting anyway")
                return True

    def _drain_subscriber(self, channel: str, sub: Subscriber, limit: int, stopping: bool = False) -> int:
        """Hand up to *limit* queued messages of *channel* to the task.  A producer stops
        at once on a stop signal; the control link is serviced every
        :data:`CONTROL_CHECK_S` (unless *stopping*: then it is not needed)."""
        n = 0
        next_look = time.monotonic() + CONTROL_CHECK_S
        sink = self.ctx.spec.sink
        unread = self._unread_prefixes.get(channel) or None
        counters, max_bytes = sub.counters, sub.max_message_bytes
        while n < limit:
            if not stopping:
                if self.stop_requested and not sink or self.stopping_reason is not None:
                    break
                if n and time.monotonic() >= next_look:
                    next_look = time.monotonic() + CONTROL_CHECK_S
                    if self.control.socket.poll(0, zmq.POLLIN):
                        self._handle_control()
            raw = sub.recv_raw()
            if raw is None:
                break
            n += 1
            if unread is not None and raw.startswith(unread):
                counters.unread += 1
                self.task.on_unread(channel, raw)
                continue
            msg = decode(raw, counters, max_bytes)
            if msg is None:
                self.task.on_dropped(channel, raw)
                continue
            if sub.skip_repeats:
                # A restarted producer's stream (live, or replayed to this restarted task
                # while it catches up) again: taken already.
                if msg.seq <= sub.max_seq:
                    if not sub.repeats:
                        self.log.info(
                            "%s: %s restarted: skipping what it %s again (seq <= %d)",
                            channel,
                            msg.src,
                            "replays" if sub.from_replay else "publishes",
                            sub.max_seq,
                        )
                    sub.repeats += 1
                    continue
                sub.max_seq = msg.seq
            self.task.on_message(channel, msg, raw)
        return n

    def run(self) -> int:
        started = self._handshake()
        if started:
            self.log.info("started (pid %d, code from %s)", os.getpid(), Path(__file__).resolve().parents[2])
            self.task.on_start()
        wait_s = 0.0
        last_sync = time.monotonic()
        while self.stopping_reason is None:
            self.loops += 1
            self._hold_replays()
            events = self._events = dict(self.poller.poll(int(min(max(wait_s, 0.0), MAX_POLL_S) * 1000)))
            if self._wake_r in events:
                self._drain_wake()
            if self.control.socket in events:
                self._handle_control()
            n_msgs = 0
            for sock in events:
                ch = self._sub_by_socket.get(sock)
                if ch is not None:
                    n_msgs += self._drain_subscriber(ch, self.subscribers[ch], DRAIN_BATCH)
            self._check_run_status()
            if self.stopping_reason is not None:
                break
            wait_s = self.task.step()
            replay_wait = self._pump_replays()
            if replay_wait is not None:
                wait_s = min(wait_s, replay_wait)
            now = time.monotonic()
            if now - last_sync >= self.ctx.config.log_fsync_period_s:
                sync_logs()
                last_sync = now
            if self.ctx.spec.sink and 0 < n_msgs < DRAIN_BATCH and not self.stop_requested and wait_s > 0:
                time.sleep(SINK_COALESCE_S)  # caught up with a trickle: let messages gather
        # Stop: a sink (which records the producers' final messages) takes what is already
        # queued, inside the supervisor's kill deadline for sinks; a producer leaves it and
        # publishes its final estimates at once (module docstring).  Then finish.
        t0 = time.monotonic()
        t_end = t0 + self.ctx.config.sink_stop_drain_s
        drained = 0
        for ch, sub in self.subscribers.items() if self.ctx.spec.sink else ():
            while time.monotonic() < t_end:
                n = self._drain_subscriber(ch, sub, 16, stopping=True)
                if not n:
                    break
                drained += n
        t1 = time.monotonic()
        try:
            self.task.on_stop(self.stopping_reason or "stop")
        except Exception:
            self.log.exception("on_stop failed")
        self.control.send("bye", {"counters": self.all_counters()})
        t2 = time.monotonic()
        self.close(
            f"exiting: {self.stopping_reason} (took {drained} queued messages in {(t1 - t0) * 1000:.0f} ms, "
            f"finished in {(t2 - t1) * 1000:.0f} ms"
        )
        return 0

    def close(self, note: str = "closed (") -> None:
        """Close every socket and the context; log *note* with how long that took."""
        t0 = time.monotonic()
        for p in self.publishers.values():
            p.close()
        for s in self.subscribers.values():
            s.close()
        self.control.close()
        self.zctx.term()
        self.log.info(
            "%s%ssockets closed in %.0f ms)", note, "" if note.endswith("(") else ", ", (time.monotonic() - t0) * 1000
        )
        self.supervisor.close()
        sync_logs()


class SupervisorWatch:
    """Is the supervisor still there?  A spawned task is its child: the parent pid changes
    when it dies.  A forked task is the zygote's child: it watches a pidfd of the supervisor
    (Linux >= 5.3), which becomes readable when the supervisor exits (and only that: a
    forked task keeps running if the zygote dies) - and, without pidfds, its parent: the
    zygote, which exits when the supervisor has gone (end of its stdin), or the supervisor
    itself once the zygote has exited (the supervisor is the tasks' subreaper: they are
    re-parented to it)."""

    def __init__(self, supervisor_pid: int):
        self.parent_pid = os.getppid()
        self.supervisor_pid = supervisor_pid
        self.fd = None
        if supervisor_pid != self.parent_pid and hasattr(os, "pidfd_open"):
            try:
                self.fd = os.pidfd_open(supervisor_pid)
            except OSError:  # already gone (then the parent goes too), or no pidfds
                self.fd = None

    def gone(self) -> bool:
        if self.fd is not None:  # only the supervisor: a forked task outlives a dead zygote
            return bool(select.select([self.fd], [], [], 0)[0])
        return os.getppid() not in (self.parent_pid, self.supervisor_pid)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def parse_task_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pygnc.tasks")
    p.add_argument("task", choices=sorted(TASKS_BY_NAME))
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--log-dir", required=True, type=Path)
    p.add_argument("--run-number", required=True, type=int)
    p.add_argument("--t0-sc", required=True, type=float)
    p.add_argument("--t0-mono", required=True, type=float)
    p.add_argument(
        "--supervisor-pid",
        type=int,
        default=None,
        help="the supervisor's pid (default: the parent's; a forked task's parent is the zygote)",
    )
    p.add_argument(
        "--replay",
        action="store_true",
        help="a restarted instance: take what the producers kept before their live streams",
    )
    return p.parse_args(argv)


def _yield_cpu(spec: TaskSpec, config: Config, log: logging.Logger) -> None:
    """Lower this process's CPU priority by :func:`~.table.niceness` (no privilege needed),
    and log the niceness it got (the kernel stops at 19).  After the task's imports - a
    restarted task must be ready within ``ready_timeout_s`` however busy the others are -
    and before its sockets' I/O thread starts: Linux keeps a niceness per thread, and a
    thread takes its creator's."""
    nice = niceness(spec, config)
    if not nice:
        return
    try:
        got = os.nice(nice)
    except OSError as exc:
        log.warning("cannot lower its CPU priority: %s", exc)
        return
    log.info("runs at niceness %d (Config.yielding_tasks_nice %d: docs/design/processes.md)", got, nice)


def task_main(argv: list[str] | None = None, stop_signals: StopSignals | None = None) -> int:
    """Entry point of every task process (``python -m pygnc.tasks <name> ...``)."""
    signals = stop_signals or StopSignals()
    args = parse_task_args(sys.argv[1:] if argv is None else argv)
    spec = TASKS_BY_NAME[args.task]
    try:
        config = load_config()
    except (OSError, ValueError) as exc:  # (the supervisor hands every task the bytes it accepted)
        print(f"pygnc task {spec.name}: bad configuration: {exc}", file=sys.stderr)
        return 2
    ctx = TaskContext(
        spec,
        args.run_dir,
        args.log_dir,
        args.run_number,
        Paths.from_env(),
        config,
        args.t0_sc,
        args.t0_mono,
        args.supervisor_pid or 0,
        args.replay,
    )
    log = setup_task_logging(args.log_dir, spec.name, ctx.sc_now, min_free_bytes=config.log_reserve_bytes)
    # `kill -USR1 <pid>` writes every thread's stack to the task's log (field debugging).
    stream = getattr(logging.getLogger().handlers[0], "stream", None)
    if stream is not None:
        faulthandler.register(signal.SIGUSR1, file=stream, all_threads=True)
    try:
        module = import_unless_stopped(spec.module, signals)
        if module is None:
            log.info("stopped before it started (%s)", signals.name)
            sync_logs()
            os._exit(0)  # the import thread may still be running; nothing to save
        _yield_cpu(spec, config, log)
        runner = TaskRunner(ctx, module.TASK_CLASS, signals)
    except Exception:
        log.critical("task failed to initialise:\n%s", traceback.format_exc())
        sync_logs()
        return 1
    try:
        profile_dir = os.environ.get(PROFILE_DIR_ENV)
        if not profile_dir:
            return runner.run()
        import cProfile  # development only (bench/bench_batch.py --profile)

        prof = cProfile.Profile()
        try:
            return prof.runcall(runner.run)
        finally:
            try:
                prof.dump_stats(str(Path(profile_dir) / f"{spec.name}.prof"))
            except OSError as exc:  # a profile that cannot be written never changes how the task ended
                log.warning("cannot write the profile into %s: %s", profile_dir, exc)
    except Exception:
        log.critical("task crashed:\n%s", traceback.format_exc())
        sync_logs()
        return 1
    finally:
        # Done: a late stop signal must not turn a clean exit into "killed".
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def run_task_process(argv: list[str] | None = None, stop_signals: StopSignals | None = None) -> None:
    """Run a task as this process's whole life and exit with its status (never returns):
    ``python -m pygnc.tasks`` and a task forked by the zygote (:mod:`pygnc.zygote`)."""
    code = task_main(argv, stop_signals)
    # Every file is flushed and synced and every socket closed by now: skip the interpreter's
    # teardown (numpy and friends take 0.1-0.3 s of a loaded CPU, and the tree's stop waits
    # for the slowest task).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
