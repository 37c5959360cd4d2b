"""The stream on the host's terminal: frames in on stdin, frames out on stdout.

The only process of the tree that reads stdin or writes stdout (the supervisor gives every
other task stderr as its stdout).  Protocol: :mod:`pygnc.formats.stream`; the terminal's
modes: :mod:`pygnc.terminal`.

In: lines from stdin, through :class:`~pygnc.formats.stream.FrameReader`.  Data frames
(SNS, GPS, RNG) are published as received on channel ``live`` (``live_segments``) for
ingest, which decodes them with the batch decoders and puts them on ``meas`` after the
batch; a frame the channel cannot take (ingest far behind) is lost and answered with ERR
``overflow``.  Commands are answered with exactly one ACK each (STA also with STS and
CNT; FLU goes to the batch writer on ``host_cmd``).  Every bad frame is counted and
answered with ERR; nothing the host sends can stop this task but Ctrl-C.

Out: the latest estimate of each kind (and peer) subscribed from ``orbit``, ``attitude``
and ``formation``, as an EST frame holding the batch-file record, at most once per cadence
(CAD, or ``Config.stream_cadence_s``): an estimate is sent at once if its kind's last frame
is at least a cadence old, else the newest one waiting is sent when the cadence is up;
never an estimate older than one already sent.  Estimator notes go out as they come.
While the cadence is 0 (the default: nothing to stream until the host sends CAD) the task
is not subscribed to the estimate channels at all, so a batch's estimates cost it nothing
(a day's batch publishes ~70 000 of them); CAD subscribes it again, from the next estimate on.

Never blocks: stdin and stdout are opened again as descriptions of their own (so
non-blocking mode does not leak to the shell or the other processes sharing the
terminal), reads and writes are non-blocking and both sit in the task's poller; frames
wait in a queue of at most ``Config.stream_out_max_bytes``; when a new frame does not fit
(a stalled reader, or the host's XOFF) the oldest frames not yet begun are dropped to make
room, and counted: the newest answers are the ones a host waits for.  At stop: BYE with the final
counters (written if the terminal takes it within :data:`STOP_WRITE_S`), input still
waiting is discarded (it would otherwise reach the shell as commands), and the terminal's
modes are restored.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import termios
import time
from collections import deque

import zmq

from .. import terminal
from ..bus.messages import Message
from ..bus.transport import LIVE_PREFIX
from ..formats import batch as fmt
from ..formats import status as st
from ..formats import stream as fs
from ..regular_files import read_small_file
from .base import Task, TaskRunner
from .table import expected_subscribers

#: Bytes read from stdin per loop turn at most (the loop answers pings in between).
READ_BUDGET_BYTES = 64 * 1024
#: Time spent at stop writing what is queued (BYE last), s.
STOP_WRITE_S = 0.1
#: Longest wait of the loop when nothing is due, s.
MAX_WAIT_S = 0.5
#: Consecutive empty reads of a terminal taken as a hang-up (EOF is disabled on it).
HANGUP_EMPTY_READS = 10
#: A subscription prefix no bus message has (each is a msgpack map: first byte 0x80-0x8f
#: or 0xde/0xdf): subscribed to while not streaming.
NO_MESSAGES = b"\x00"

#: The records it streams, by the message type they are made of (the kept range-only orbits,
#: ``partner_orbit``, are downlinked only).
_KIND_BY_TYPE = {
    t: fmt.KINDS_BY_NAME[name]
    for name in ("orbit", "attitude", "formation", "note")
    for t in fmt.KINDS_BY_NAME[name].message_types
}


def _never_blocks(fd: int) -> bool:
    """A regular file or a character device that is not a terminal (/dev/null): reads and
    writes on it never wait.  False for a descriptor that cannot be looked at."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not os.isatty(fd))


def _reopen(fd: int, flags: int) -> tuple[int, bool]:
    """A descriptor of *fd*'s file with *flags*, non-blocking where that matters, and
    whether it is our own (to close).  A terminal, pipe or socket is opened again through
    /proc (a description of its own, so O_NONBLOCK stays ours); a regular file or
    /dev/null - which never block - is used as it is."""
    try:
        os.fstat(fd)
    except OSError:
        return -1, False
    if _never_blocks(fd):
        return fd, False
    for path in (f"/proc/self/fd/{fd}", os.ttyname(fd) if os.isatty(fd) else None):
        if path is None:
            continue
        try:
            return os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC), True
        except OSError:
            continue
    return fd, False


class TtyStream(Task):
    def __init__(self, runner: TaskRunner) -> None:
        super().__init__(runner)
        cfg = self.config
        self.reader = fs.FrameReader(fs.HOST_TAGS)
        self.n = dict.fromkeys((name for name, _ in fs.COUNTER_FIELDS), 0)
        self.seq = 0
        self.out: deque[bytes] = deque()
        self.out_bytes = 0
        self.out_offset = 0  # bytes of out[0] already written
        self.cadence_s = max(0.0, float(cfg.stream_cadence_s))
        self.flush_available = expected_subscribers("host_cmd", cfg) > 0
        # per estimate key: newest waiting (t_sc_s, kind, values), when the last frame went, its time
        self.waiting: dict = {}
        self.last_sent_mono: dict = {}
        self.last_sent_t: dict = {}
        self.in_fd = self.out_fd = -1
        self._own_in = self._own_out = False
        self.in_tty = False
        self.modes: list | None = None
        self.empty_reads = 0
        self.reading = False
        self.out_registered = False
        self._out_check = self._in_check = False
        self.other = {
            "stdin_eof": 0,
            "not_foreground": 0,
            "write_errors": 0,
            "live_published": 0,
            "estimates_subscribed": 1,
        }

    # -- lifecycle ----------------------------------------------------------------------------
    def on_start(self) -> None:
        self.in_fd, self._own_in = _reopen(0, os.O_RDONLY)
        self.out_fd, self._own_out = _reopen(1, os.O_WRONLY)
        try:  # a shared, blocking description (no /proc): write only what poll says fits
            self._out_check = not self._own_out and not stat.S_ISREG(os.fstat(self.out_fd).st_mode)
        except OSError:
            self._out_check = False
        # ... and read only what poll says is there
        self._in_check = self.in_fd >= 0 and not self._own_in and not _never_blocks(self.in_fd)
        self.in_tty = self.in_fd >= 0 and os.isatty(self.in_fd)
        if self.in_tty and not terminal.is_foreground_tty(0):
            # Started in the background (main.py &): reading would stop the tree (SIGTTIN).
            self.other["not_foreground"] = 1
            self.log.warning("stdin is a terminal of which we are not the foreground: not reading it")
        elif self.in_fd >= 0:
            if self.in_tty and self.config.stream_tty_setup:
                self.modes = terminal.setup_for_stream(0)
            self.runner.poller.register(self.in_fd, zmq.POLLIN)
            self.reading = True
        self.log.info(
            "stream up: stdin %s%s, stdout %s, cadence %.3g s, flush %s",
            "terminal" if self.in_tty else "not a terminal",
            " (modes set)" if self.modes is not None else "",
            "ours" if self._own_out else "shared",
            self.cadence_s,
            "available" if self.flush_available else "unavailable (no batch writer)",
        )
        self._send(
            fs.HELLO_TAG,
            fs.HELLO.pack(
                fs.PROTOCOL_VERSION,
                fs.MAX_LINE_BYTES,
                self.ctx.run_number,
                int(round(self.cadence_s * 1000)),
                self.ctx.sc_now(),
            ),
        )
        self._write()
        self._subscribe_estimates(self.cadence_s > 0)

    def _subscribe_estimates(self, on: bool) -> None:
        """Receive the estimate channels only while there is a cadence to stream them at.

        Off, the socket subscribes to :data:`NO_MESSAGES` instead of the live stream, so a
        producer (re)starting still sees this consumer subscribed (its ready handshake
        waits for every declared consumer) and sends it nothing."""
        if bool(self.other["estimates_subscribed"]) == on:
            return
        new, old = (LIVE_PREFIX, NO_MESSAGES) if on else (NO_MESSAGES, LIVE_PREFIX)
        for sub in self.runner.subscribers.values():
            sub.socket.setsockopt(zmq.SUBSCRIBE, new)  # first, so it is never unsubscribed
            sub.socket.setsockopt(zmq.UNSUBSCRIBE, old)
        self.other["estimates_subscribed"] = int(on)

    def on_stop(self, reason: str) -> None:
        if self.reading:
            # What the host sent before its Ctrl-C is queued ahead of it (the terminal raised
            # SIGINT on the ^C byte, before we read what preceded it): taken and counted in
            # the BYE, not flushed with what comes after the stop.
            self._read()
        self._send(fs.BYE, fs.encode_counters(self.n))
        t_end = time.monotonic() + STOP_WRITE_S
        while self.out and time.monotonic() < t_end and self.out_fd >= 0:
            self._write()
            if self.out:
                try:
                    zmq.select([], [self.out_fd], [], max(0.0, t_end - time.monotonic()))
                except (zmq.ZMQError, OSError, ValueError):
                    break
        if self.out:
            self.log.warning("stopped with %d frames (%d bytes) not written", len(self.out), self.out_bytes)
        if self.in_tty and self.reading and terminal.is_foreground_tty(0):
            try:  # what the host typed after the stop would reach the shell as commands
                termios.tcflush(0, termios.TCIFLUSH)
            except termios.error:
                pass
        terminal.restore_modes(0, self.modes)
        for fd, own in ((self.in_fd, self._own_in), (self.out_fd, self._own_out)):
            if own:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.log.info("stream counters: %s %s", self.n, self.other)

    def counters(self) -> dict:
        return {**self.n, **self.other, "out_queue_bytes": self.out_bytes, "cadence_s": self.cadence_s}

    # -- output ---------------------------------------------------------------------------------
    def _send(self, tag: bytes, payload: bytes = b"") -> bool:
        """Queue a frame; when the queue is full the oldest frames not yet begun make room
        (the newest - the answer the host waits for, BYE - are the ones worth having)."""
        line = fs.encode_frame(tag, self.seq, payload)
        self.seq = (self.seq + 1) % fs.SEQ_MODULO
        room = self.config.stream_out_max_bytes
        begun = self.out.popleft() if self.out and self.out_offset else None  # finish what is half written
        while self.out and self.out_bytes + len(line) > room:
            self.out_bytes -= len(self.out.popleft())
            self.n["frames_dropped_out"] += 1
        if begun is not None:
            self.out.appendleft(begun)
        if self.out_fd < 0 or self.out_bytes + len(line) > room:
            self.n["frames_dropped_out"] += 1
            return False
        self.out.append(line)
        self.out_bytes += len(line)
        return True

    def _write(self) -> None:
        while self.out:
            head = self.out[0]
            if self._out_check and not zmq.select([], [self.out_fd], [], 0)[1]:
                break
            try:
                end = self.out_offset + 512 if self._out_check else len(head)
                k = os.write(self.out_fd, head[self.out_offset : end])
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # the terminal is gone (EIO), or worse: drop, count, go on
                self.other["write_errors"] += 1
                if self.other["write_errors"] <= 3:
                    self.log.error("writing to stdout failed: %s", exc)
                self.n["frames_dropped_out"] += len(self.out)
                self.out.clear()
                self.out_bytes = self.out_offset = 0
                if exc.errno in (errno.EIO, errno.EBADF, errno.EPIPE):
                    self._drop_out()
                break
            self.n["bytes_out"] += k
            self.out_offset += k
            if self.out_offset >= len(head):
                self.out.popleft()
                self.out_bytes -= len(head)
                self.out_offset = 0
                self.n["frames_out"] += 1
        want = bool(self.out) and self.out_fd >= 0
        if want != self.out_registered:
            if want:
                self.runner.poller.register(self.out_fd, zmq.POLLOUT)
            else:
                self._unregister_out()
            self.out_registered = want

    def _unregister_out(self) -> None:
        try:
            self.runner.poller.unregister(self.out_fd)
        except KeyError:
            pass

    def _drop_out(self) -> None:
        """Stdout is gone for good (EIO, EBADF, EPIPE): out of the poller first - a dead
        descriptor polls as an error at once, for ever - then closed if ours."""
        if self.out_registered:
            self._unregister_out()
            self.out_registered = False
        if self._own_out:
            try:
                os.close(self.out_fd)
            except OSError:
                pass
            self._own_out = False
        self.out_fd = -1

    # -- input ----------------------------------------------------------------------------------
    def _read(self) -> None:
        got = 0
        while self.reading and got < READ_BUDGET_BYTES:
            if self._in_check and not zmq.select([self.in_fd], [], [], 0)[0]:
                return
            try:
                data = os.read(self.in_fd, 4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log.warning("reading stdin failed (%s): no more input", exc)
                self._stop_reading()
                return
            if not data:
                self.empty_reads += 1
                if not self.in_tty or self.empty_reads >= HANGUP_EMPTY_READS:
                    self.other["stdin_eof"] += 1
                    self.log.info("stdin %s: no more input", "hung up" if self.in_tty else "at its end")
                    self._stop_reading()
                return
            self.empty_reads = 0
            got += len(data)
            self.n["bytes_in"] += len(data)
            for item in self.reader.feed(data):
                self._handle(item)
            self.n["lines_in"] = self.reader.lines

    def _stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            try:
                self.runner.poller.unregister(self.in_fd)
            except KeyError:
                pass

    def _handle(self, item: fs.Frame | fs.FrameError) -> None:
        if isinstance(item, fs.FrameError):
            self._error(item.code, item.seq, item.tag)
            return
        tag = item.tag
        self.n["frames_in"] += 1
        unit = fs.SEGMENT_BYTES.get(tag)
        if unit is not None:
            key = {fs.SENSOR: "sensor_segments", fs.GPS: "gps_segments", fs.RANGE: "range_packets"}[tag]
            self.n[key] += len(item.payload) // unit
            ok = self.publish(
                "live",
                "live_segments",
                {"tag": tag.decode(), "seq": item.seq, "data": item.payload, "t_rx_sc_s": self.ctx.sc_now()},
            )
            if ok:
                self.other["live_published"] += 1
            else:
                self._error(fs.ERR_OVERFLOW, item.seq, tag)
            return
        self.n["commands"] += 1
        if tag == fs.PING:
            self._ack(item, fs.ACK_OK)
        elif tag == fs.STATUS:
            self._ack(item, fs.ACK_OK)
            try:
                status = read_small_file(self.ctx.paths.status_file, st.SIZE)
            except OSError:
                status = None
            if status is not None and len(status) <= fs.max_payload_bytes():
                self._send(fs.STATUS_FILE, status)
            self._send(fs.COUNTERS, fs.encode_counters(self.n))
        elif tag == fs.CADENCE:
            (ms,) = struct.unpack("<I", item.payload)
            if ms and ms < self.config.stream_min_cadence_s * 1000.0:
                self._ack(item, fs.ACK_REFUSED)
            else:
                self.cadence_s = ms / 1000.0
                self.log.info("estimate cadence set to %.3f s by the host", self.cadence_s)
                self._subscribe_estimates(self.cadence_s > 0)
                self._ack(item, fs.ACK_OK)
        elif tag == fs.FLUSH:
            sent = self.flush_available and self.publish(
                "host_cmd",
                "host_command",  # (a command: never replayed)
                {"command": "flush_batches", "seq": item.seq},
                keep=False,
            )
            self._ack(item, fs.ACK_OK if sent else fs.ACK_UNAVAILABLE)

    def _ack(self, frame: fs.Frame, result: int) -> None:
        self._send(fs.ACK_TAG, fs.ACK.pack(frame.seq, frame.tag, result))

    def _error(self, code: int, seq: int, tag: bytes) -> None:
        name = fs.ERROR_COUNTER[code]
        self.n[name] += 1
        self._send(fs.ERROR_TAG, fs.ERROR.pack(code, seq, tag, min(self.n[name], 0xFFFFFFFF)))

    # -- estimates ------------------------------------------------------------------------------
    def reads(self, channel: str) -> frozenset[str]:
        """The estimates and notes it streams."""
        return frozenset(_KIND_BY_TYPE)

    def on_message(self, channel: str, msg: Message, raw: bytes) -> None:
        kind = _KIND_BY_TYPE.get(msg.type)
        if kind is None or self.cadence_s <= 0:
            return
        try:
            values = kind.encode(msg.type, msg.body)
            assert isinstance(values, dict)  # (a streamed kind's encoder makes one record)
            t = values.get("t_sc_s")
            t = self.ctx.sc_now() if t is None else float(t)
        except (ValueError, TypeError, KeyError):
            return
        key = (kind.name, kind.key_of(values))
        if kind.name == "note":
            record = self._record(kind, t, values)
            if record is not None:
                self._send_estimate(key, t, record)
            return
        if t <= self.last_sent_t.get(key, -1.0):
            return
        old = self.waiting.get(key)
        if old is not None:
            if old[0] >= t:
                return
            self.n["estimates_superseded"] += 1
        # Packed when it is sent: most estimates are superseded before their frame is due.
        self.waiting[key] = (t, kind, values)

    @staticmethod
    def _record(kind: fmt.RecordKind, t: float, values: dict) -> bytes | None:
        try:
            return fmt.encode_record(kind, t, values)
        except (ValueError, TypeError, KeyError, struct.error):
            return None  # a body the record layout cannot hold: no frame

    def _send_estimate(self, key: tuple, t: float, record: bytes) -> None:
        if self._send(fs.ESTIMATE, record):
            self.n["estimates_out"] += 1
        self.last_sent_mono[key] = time.monotonic()
        self.last_sent_t[key] = t

    def _due_estimates(self) -> float:
        """Send what is due; seconds until the next one is."""
        if not self.waiting:
            return MAX_WAIT_S
        now = time.monotonic()
        next_due = MAX_WAIT_S
        for key in list(self.waiting):
            due = self.last_sent_mono.get(key, -1e9) + self.cadence_s
            if self.cadence_s <= 0:
                del self.waiting[key]
            elif now >= due:
                t, kind, values = self.waiting.pop(key)
                record = self._record(kind, t, values)
                if record is not None:
                    self._send_estimate(key, t, record)
            else:
                next_due = min(next_due, due - now)
        return next_due

    # -- loop -----------------------------------------------------------------------------------
    def step(self) -> float:
        if self.reading:
            self._read()
        wait = self._due_estimates()
        if self.out:
            self._write()
        return wait


TASK_CLASS = TtyStream
