"""pygnc's stream as the host sees it: frames out with a SEQ, frames in, decoded and counted.

:class:`StreamClient` sits on a :class:`~ground.host.session.ShellSession` while main.py
runs in the foreground: it sends data frames and commands, matches every ACK to its
command, decodes EST frames (batch-file records, :mod:`pygnc.formats.batch`), STS (the
status layout) and CNT/BYE (the stream's counters), counts ERR frames by code, and
measures how long a GPS fix takes to come back inside an orbit estimate.
"""

from __future__ import annotations

import math
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from pygnc.formats import batch as fmt
from pygnc.formats import stream as fs
from pygnc.formats.status import StatusError, decode_status

from .session import HostError, ShellSession


@dataclass
class Estimate:
    t_rx_s: float  # host monotonic time the frame arrived
    kind: str  # orbit, attitude, formation, note
    t_sc_s: float  # the estimate's epoch, spacecraft clock
    values: dict


@dataclass
class PendingFix:
    t_sent_s: float
    t_sc_s: float
    n_used_before: int


@dataclass
class StreamStats:
    sent: Counter = field(default_factory=Counter)  # frames sent per tag
    segments_sent: Counter = field(default_factory=Counter)
    received: Counter = field(default_factory=Counter)  # frames received per tag
    errors: Counter = field(default_factory=Counter)  # ERR frames per code name
    host_side_errors: Counter = field(default_factory=Counter)  # lines we could not read (bad CRC...)
    echoes: int = 0  # our own frames coming back (echo on)
    noise_lines: int = 0
    seq_gaps: int = 0  # pygnc SEQ numbers never seen
    restarts: int = 0  # HEL frames after the first (stream task restarted)
    fix_latency_s: list = field(default_factory=list)


class StreamClient:
    def __init__(self, session: ShellSession, on_estimate=None):
        self.s = session
        self.seq = 0
        self.stats = StreamStats()
        self.acks: dict[int, tuple[bytes, int, float]] = {}  # seq -> (tag, result, t_rx)
        self.estimates: list[Estimate] = []
        self.latest: dict = {}  # (kind, peer) -> Estimate
        self.hello: dict | None = None
        self.status: dict | None = None
        self.status_error: str | None = None
        self.counters: dict | None = None
        self.bye: dict | None = None
        self.on_estimate = on_estimate
        self.pending_fixes: list[PendingFix] = []
        self.cadence_s: float | None = None
        self.n_used = 0
        self._last_rx_seq: int | None = None
        #: Ask for the status (STA, answered by STS and CNT) this often while polling; 0: never.
        self.status_every_s = 0.0
        self._t_status = 0.0

    # -- sending ---------------------------------------------------------------------------------
    def send(self, tag: bytes, payload: bytes = b"") -> tuple[int, float]:
        seq = self.seq
        self.seq = (self.seq + 1) % fs.SEQ_MODULO
        t = self.s.send_frame(tag, seq, payload)
        self.stats.sent[tag.decode()] += 1
        unit = fs.SEGMENT_BYTES.get(tag)
        if unit:
            self.stats.segments_sent[tag.decode()] += len(payload) // unit
        return seq, t

    def send_fix(self, payload: bytes, valid: bool) -> None:
        """Send a GPS frame of one segment; a valid fix is timed until an orbit estimate uses it."""
        _, t = self.send(fs.GPS, payload)
        if valid:
            self.pending_fixes.append(PendingFix(t, float(int.from_bytes(payload[:4], "big")), self.n_used))

    def send_raw(self, line: bytes) -> float:
        """Bytes as they are (bad frames for tests and the bench)."""
        return self.s.write(line)

    def command(self, tag: bytes, payload: bytes = b"", timeout_s: float = 5.0) -> int:
        """Send a command and wait for its ACK; the result code."""
        seq, _ = self.send(tag, payload)
        t_end = time.monotonic() + timeout_s
        while seq not in self.acks:
            left = t_end - time.monotonic()
            if left <= 0:
                raise HostError(f"no ACK for {tag.decode()} (SEQ {seq}) within {timeout_s:.1f} s")
            self.poll(min(left, 0.05))
        return self.acks[seq][1]

    def set_cadence(self, cadence_s: float) -> int:
        """CAD; the cadence is set again if pygnc's stream task restarts (a second HEL)."""
        result = self.command(fs.CADENCE, struct.pack("<I", int(round(cadence_s * 1000))))
        if result == fs.ACK_OK:
            self.cadence_s = cadence_s
        return result

    def status_now(self, timeout_s: float = 5.0) -> dict | None:
        """STA: the status pygnc last wrote (None if it had none yet) and fresh counters."""
        before = self.counters
        self.status = None
        self.command(fs.STATUS, timeout_s=timeout_s)
        t_end = time.monotonic() + timeout_s
        while self.counters is before and time.monotonic() < t_end:
            self.poll(0.05)
        return self.status

    # -- receiving -------------------------------------------------------------------------------
    def wait_hello(self, timeout_s: float) -> dict:
        """Wait for pygnc's HEL frame; HostError at once if the shell's prompt comes back
        first (the command ended: not found, a usage error, a crash), naming its exit
        status and showing what the console printed, or after *timeout_s*."""
        t_end = time.monotonic() + timeout_s
        while self.hello is None:
            rc = self.s.prompt_status()
            if rc is not None and self.hello is None:
                raise HostError(
                    f"the command exited with status {rc} before pygnc came up; the console "
                    f"shows:\n{self.s.console_tail()}"
                )
            left = t_end - time.monotonic()
            if left <= 0:
                raise HostError(
                    f"no HEL frame from pygnc within {timeout_s:.0f} s; the console shows:\n{self.s.console_tail()}"
                )
            self.poll(min(left, 0.05))
        return self.hello

    def poll(self, timeout_s: float = 0.0) -> int:
        """Pump the link for up to *timeout_s* and handle what came; frames handled."""
        if (
            self.status_every_s > 0
            and self.hello is not None
            and time.monotonic() - self._t_status >= self.status_every_s
        ):
            self._t_status = time.monotonic()
            self.send(fs.STATUS)  # not waited for: its ACK, STS and CNT arrive in later polls
        self.s.pump(timeout_s)
        n = 0
        for r in self.s.take():
            self._handle(r.t_mono_s, r.item)
            n += 1
        return n

    def _handle(self, t: float, item) -> None:
        st = self.stats
        if isinstance(item, fs.Noise):
            st.noise_lines += 1
            return
        if isinstance(item, fs.FrameError):
            if item.code == fs.ERR_UNKNOWN_TAG and item.tag in fs.HOST_TAGS:
                st.echoes += 1
            else:
                st.host_side_errors[item.name] += 1
            return
        tag = item.tag
        st.received[tag.decode()] += 1
        if self._last_rx_seq is not None:
            st.seq_gaps += (item.seq - self._last_rx_seq - 1) % fs.SEQ_MODULO
        self._last_rx_seq = item.seq
        p = item.payload
        try:
            if tag == fs.HELLO_TAG:
                v, max_line, run, cad_ms, t_sc = fs.HELLO.unpack(p)
                again = self.hello is not None
                self.hello = {
                    "version": v,
                    "max_line": max_line,
                    "run": run,
                    "cadence_s": cad_ms / 1000.0,
                    "t_sc_s": t_sc,
                    "t_rx_s": t,
                }
                self._last_rx_seq = item.seq  # a restarted stream task counts from 0 again
                if again:
                    self.stats.restarts += 1
                    if self.cadence_s is not None and cad_ms != int(round(self.cadence_s * 1000)):
                        self.send(fs.CADENCE, struct.pack("<I", int(round(self.cadence_s * 1000))))
            elif tag == fs.ACK_TAG:
                seq, acked, result = fs.ACK.unpack(p)
                self.acks[seq] = (acked, result, t)
            elif tag == fs.ERROR_TAG:
                code, seq, bad_tag, count = fs.ERROR.unpack(p)
                st.errors[fs.ERROR_CODES.get(code, (f"code{code}",))[0]] += 1
            elif tag == fs.ESTIMATE:
                self._estimate(t, p)
            elif tag == fs.STATUS_FILE:
                try:
                    self.status = decode_status(p)
                    self.status_error = None
                except StatusError as exc:
                    self.status_error = str(exc)
            elif tag == fs.COUNTERS:
                self.counters = fs.decode_counters(p)
            elif tag == fs.BYE:
                self.bye = fs.decode_counters(p)
        except (struct.error, ValueError):
            st.host_side_errors["bad_payload"] += 1

    def _estimate(self, t: float, payload: bytes) -> None:
        records, _ = fmt.decode_records(payload)
        if len(records) != 1 or records[0].kind is None:
            self.stats.host_side_errors["bad_record"] += 1
            return
        r = records[0]
        e = Estimate(t, r.kind.read_as, r.t_sc_s, r.values())  # (an older layout: as its current kind)
        self.estimates.append(e)
        self.latest[(e.kind, e.values.get("peer_id"))] = e
        if e.kind == "orbit":
            n = int(e.values["n_used"])
            if n > self.n_used:
                keep = []
                for f in self.pending_fixes:
                    if n > f.n_used_before and e.t_sc_s >= f.t_sc_s:
                        self.stats.fix_latency_s.append(t - f.t_sent_s)
                    else:
                        keep.append(f)
                self.pending_fixes = keep
                self.n_used = n
        if self.on_estimate is not None:
            self.on_estimate(e)


def latency_summary(values: list[float]) -> str:
    if not values:
        return "none measured"
    v = sorted(values)
    med = v[len(v) // 2] if len(v) % 2 else 0.5 * (v[len(v) // 2 - 1] + v[len(v) // 2])
    return f"median {med * 1000:.1f} ms, worst {v[-1] * 1000:.1f} ms ({len(v)} fixes)"


def sigma3(v) -> float:
    try:
        return math.sqrt(sum(float(x) ** 2 for x in v))
    except (TypeError, ValueError):
        return math.nan
