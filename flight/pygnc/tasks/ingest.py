"""Ingest: read the batch files once, publish every measurement in spacecraft-time order.

Order of the ``meas`` channel: ``ingest_stats`` for sense.bin and for the range files,
``clock_map`` (if any valid fix), then ``sensor`` / ``gps_fix`` / ``range`` messages merged
by ``t_sc_s`` (ties: sensor, own fix, peer fix, range), then ``batch_end``.  Missing or
empty files are reported (log + stats with ``present = False``), never fatal.  Publishing
is done in slices so the task keeps answering health pings; the channel blocks rather
than drop when a consumer is slow.
"""

from __future__ import annotations

import numpy as np

import logging
import time
from dataclasses import dataclass, field

from ..config import Config, Paths
from ..formats.range_file import read_range_dir
from ..formats.sense import read_sense_file
from ..timebase import GPS_EPOCH_UNIX_S, fit_clock_map, leap_seconds_at_gps
from .base import Task

#: Messages published per loop turn.
SLICE = 500

_KIND_SENSOR, _KIND_FIX, _KIND_PEER, _KIND_RANGE = 0, 1, 2, 3

#: ``peer_id`` of a peer fix whose range-file group had no range packets (peer unknown).
UNKNOWN_PEER_ID = -1


def _fix_bodies(fixes: np.ndarray, peer_ids=None) -> list[dict]:
    """Message bodies of GPS fixes (vectorised conversion, then plain dicts)."""
    n = len(fixes)
    peer = [0] * n if peer_ids is None else [int(p) for p in peer_ids]
    cols = {k: fixes[k].tolist() for k in (
        "t_sc_s", "t_gps_s", "unix_time_s", "time_status", "solution_status", "pos_ecef_m",
        "pos_sigma_m", "vel_ecef_m_s", "vel_sigma_m_s", "sats_in_solution", "valid")}
    return [{**{k: v[i] for k, v in cols.items()}, "peer_id": peer[i], "record": i} for i in range(n)]


@dataclass
class MessageStream:
    """What ingest publishes, in order, and the decode statistics behind it."""

    messages: list[tuple[str, dict]] = field(default_factory=list)
    stats: list[dict] = field(default_factory=list)  # the ingest_stats bodies
    n_valid_fixes: int = 0


def _stats_body(source, path, present, note="", stats=None, files=0) -> dict:
    d = {"source": source, "path": str(path), "present": bool(present), "bytes_total": 0,
         "bytes_skipped": 0, "records": 0, "records_skipped": 0, "skip_events": 0,
         "files": int(files), "note": note}
    if stats is not None:
        d.update(bytes_total=int(stats.bytes_total), bytes_skipped=int(stats.bytes_skipped),
                 records=int(stats.records), records_skipped=int(stats.records_skipped),
                 skip_events=int(stats.skip_events))
    return d


def build_message_stream(paths: Paths, config: Config, log: logging.Logger | None = None) -> MessageStream:
    """Read sense.bin and range/rng*.bin under *paths* and build the ordered message stream.

    Shared by the ingest task and the ground replay, so both see exactly the same data.
    Missing or empty files are reported in the stats (and *log*), never raised.
    """
    log = log or logging.getLogger("ingest")
    out = MessageStream()

    # sense.bin ----------------------------------------------------------------------
    sensors = fixes = batch = None
    if not paths.sense_file.exists():
        log.warning("no sense file at %s", paths.sense_file)
        out.stats.append(_stats_body("sense", paths.sense_file, present=False, note="missing"))
    else:
        try:
            batch = read_sense_file(paths.sense_file, config)
        except OSError as exc:  # e.g. unreadable, or a directory: reported, not fatal
            log.error("cannot read %s: %s", paths.sense_file, exc)
            out.stats.append(_stats_body("sense", paths.sense_file, present=False, note=f"unreadable: {exc}"))
    if batch is not None:
        sensors, fixes = batch.sensors, batch.fixes
        s = batch.stats
        note = "empty" if s.bytes_total == 0 else ("corrupt bytes skipped" if s.bytes_skipped else "")
        (log.warning if note else log.info)(
            "sense.bin: %d bytes, %d records, %d bytes skipped in %d places, %d of %d fixes valid",
            s.bytes_total, s.records, s.bytes_skipped, s.skip_events,
            int(fixes["valid"].sum()), len(fixes))
        out.stats.append(_stats_body("sense", paths.sense_file, present=True, note=note, stats=s))

    # range files ----------------------------------------------------------------------
    peers = ranges = rb = None
    files = sorted(paths.range_dir.glob("rng*.bin")) if paths.range_dir.is_dir() else []
    if not files:
        log.warning("no range files in %s", paths.range_dir)
        out.stats.append(_stats_body("range", paths.range_dir, present=paths.range_dir.is_dir(),
                                     note="no range files"))
    else:
        try:
            rb = read_range_dir(paths.range_dir, config)
        except OSError as exc:
            log.error("cannot read %s: %s", paths.range_dir, exc)
            out.stats.append(_stats_body("range", paths.range_dir, present=False, note=f"unreadable: {exc}"))
    if rb is not None:
        peers, ranges = rb.peer_fixes, rb.ranges
        s = rb.stats
        ignored = list(getattr(rb, "ignored_files", []) or [])
        note = ("corrupt bytes skipped" if s.bytes_skipped else "") + \
               (f" ignored {len(ignored)} files" if ignored else "")
        (log.warning if note else log.info)(
            "range files: %d files, %d peer fixes, %d ranges, %d bytes skipped%s",
            len(files), len(peers), len(ranges), s.bytes_skipped,
            f"; ignored {ignored}" if ignored else "")
        out.stats.append(_stats_body("range", paths.range_dir, present=True, note=note.strip(),
                                     stats=s, files=len(rb.files)))  # the files actually decoded

    out.messages.extend(("ingest_stats", b) for b in out.stats)

    # clock map from valid own fixes --------------------------------------------------
    if fixes is not None and fixes["valid"].any():
        v = fixes[fixes["valid"]]
        out.n_valid_fixes = len(v)
        cm = fit_clock_map(v["t_sc_s"], v["t_gps_s"])
        if cm is not None:
            t_gps_ref = cm.gps_from_sc(cm.t_ref_sc_s)
            gps_minus_sc = cm.gps_minus_sc_s
            utc_minus_sc = gps_minus_sc + GPS_EPOCH_UNIX_S - float(leap_seconds_at_gps(float(t_gps_ref)))
            log.info("clock map: UTC - spacecraft clock = %.3f s, drift %.3g, %d pairs, rms %.3f s",
                     utc_minus_sc, cm.drift, cm.n_pairs, cm.residual_rms_s)
            out.messages.append(("clock_map", {
                "gps_minus_sc_s": gps_minus_sc, "drift": cm.drift, "t_ref_sc_s": cm.t_ref_sc_s,
                "n_pairs": cm.n_pairs, "residual_rms_s": cm.residual_rms_s,
                "utc_minus_sc_s": utc_minus_sc}))
    elif fixes is not None:
        log.warning("no valid GPS fix in the batch: no orbit and no clock map")

    # merge by spacecraft time ----------------------------------------------------------
    parts = []  # (times, kind, message type, bodies)
    if sensors is not None and len(sensors):
        cols = {k: sensors[k].tolist() for k in ("t_sc_s", "mag_ut", "gyro_deg_s", "sun_lux",
                                                  "sun_saturated", "record_index")}
        bodies = [{"t_sc_s": cols["t_sc_s"][i], "mag_ut": cols["mag_ut"][i],
                   "gyro_deg_s": cols["gyro_deg_s"][i], "sun_lux": cols["sun_lux"][i],
                   "sun_saturated": cols["sun_saturated"][i], "record": cols["record_index"][i]}
                  for i in range(len(sensors))]
        parts.append((sensors["t_sc_s"], _KIND_SENSOR, "sensor", bodies))
    if fixes is not None and len(fixes):
        parts.append((fixes["t_sc_s"], _KIND_FIX, "gps_fix", _fix_bodies(fixes)))
    if peers is not None and len(peers):
        # A group without range packets does not say whose fix it is: peer_id -1, never 0
        # (0 means an own fix).
        pid = peers["peer_id"].astype(int) if "peer_id" in (peers.dtype.names or ()) else np.zeros(len(peers), int)
        pid = np.where(pid == 0, UNKNOWN_PEER_ID, pid)
        parts.append((peers["t_sc_s"], _KIND_PEER, "gps_fix", _fix_bodies(peers, pid)))
    if ranges is not None and len(ranges):
        cols = {k: ranges[k].tolist() for k in ("t_sc_s", "peer_id", "range_m", "valid",
                                                 "filtered", "file_index", "group")}
        parts.append((ranges["t_sc_s"], _KIND_RANGE, "range",
                      [{k: v[i] for k, v in cols.items()} for i in range(len(ranges))]))

    t_first = t_last = float("nan")
    if parts:
        t = np.concatenate([p[0] for p in parts]).astype(float)
        kind = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
        order = np.lexsort((kind, t))
        flat = [(p[2], b) for p in parts for b in p[3]]
        out.messages.extend(flat[i] for i in order)
        t_first, t_last = float(t.min()), float(t.max())
    n = lambda a: 0 if a is None else len(a)  # noqa: E731
    out.messages.append(("batch_end", {
        "n_sensor": n(sensors), "n_gps_fix": n(fixes), "n_gps_fix_valid": out.n_valid_fixes,
        "n_peer_fix": n(peers), "n_range": n(ranges),
        "t_sc_first_s": t_first, "t_sc_last_s": t_last}))
    return out


class Ingest(Task):
    """Publishes the stream once, and again whenever a restarted consumer asks (via the
    supervisor's ``replay``): consumers ignore what they have already processed, so a
    restarted estimator rebuilds its state and nothing is lost."""

    #: Longest wait for a restarted consumer's subscription before replaying anyway, s.
    REPLAY_SUBSCRIBE_WAIT_S = 2.0

    def __init__(self, runner):
        super().__init__(runner)
        self.stream: list[tuple[str, dict]] = []
        self.pos = 0
        self.published = 0
        self.done = False
        self.replays = 0
        self.replay_at: float | None = None  # deadline while waiting for a resubscription

    def on_start(self) -> None:
        self.stream = build_message_stream(self.ctx.paths, self.config, self.log).messages
        self.log.info("publishing %d messages", len(self.stream))

    def on_replay(self, reason: str, channels: list[str]) -> None:
        self.replays += 1
        self.replay_at = time.monotonic() + self.REPLAY_SUBSCRIBE_WAIT_S

    def _replay_ready(self) -> bool:
        # XPUB_VERBOSE passes every subscribe up and a dead peer's are never withdrawn, so
        # the count only grows: one more per restarted consumer.
        pub = self.runner.publishers["meas"]
        pub.poll_subscriptions()
        return (pub.counters.subscriptions >= pub.expected_subscribers + self.replays
                or time.monotonic() >= self.replay_at)

    def step(self) -> float:
        if self.replay_at is not None:
            if not self._replay_ready():
                return 0.05
            self.log.info("replaying %d messages (request %d)", len(self.stream), self.replays)
            self.replay_at = None
            self.pos, self.done = 0, False
        if self.done:
            return 0.5
        end = min(self.pos + SLICE, len(self.stream))
        while self.pos < end:
            msg_type, body = self.stream[self.pos]
            if not self.publish("meas", msg_type, body, keep=False):  # the stream is kept here
                return 0.0 if self.runner.stopping_reason is None else 0.5
            self.pos += 1
            self.published += 1
        if self.pos >= len(self.stream):
            self.done = True
            self.log.info("batch published: %d messages in all", self.published)
            return 0.5
        return 0.0

    def on_stop(self, reason: str) -> None:
        if not self.done:
            self.log.warning("stopped with %d of %d messages unpublished", len(self.stream) - self.pos,
                             len(self.stream))

    def counters(self) -> dict:
        return {"published": self.published, "pending": 0 if self.done else len(self.stream) - self.pos,
                "replays": self.replays}


TASK_CLASS = Ingest
