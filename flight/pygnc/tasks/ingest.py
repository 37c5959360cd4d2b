"""Ingest: read the batch files once, publish every measurement in spacecraft-time order;
then the host's live stream.

Order of the ``meas`` channel: ``ingest_stats`` for sense.bin and for the range files,
``clock_map`` (if any valid fix), then ``sensor`` / ``gps_fix`` / ``range`` messages merged
by ``t_sc_s`` (ties: sensor, own fix, peer fix, range), then ``batch_end``.  Missing or
empty files are reported (log + stats with ``present = False``), never fatal.  Reading
(in pieces of bounded size, at most ``Config.sense_file_max_bytes`` of sense.bin and
``Config.range_file_max_bytes`` of each range file: the newest bytes) and publishing are
done in slices so the task keeps answering health pings; the channel blocks rather than
drop when a consumer is slow.  A stamp that jumps away from its neighbours and back is a
time outlier (:mod:`pygnc.timeorder`): dropped, counted in ``ingest_stats`` and logged, so
neither the estimators nor the batch's time span take it.

Live data.  The stream task (:mod:`pygnc.tasks.tty_stream`) hands over the segments the
host streams (``live_segments`` on channel ``live``, as received).  They are decoded with
the batch files' decoders into the same ``sensor`` / ``gps_fix`` / ``range`` messages and
published on ``meas`` after ``batch_end``, in arrival order (the host sends in time order;
what arrives during the batch waits, at most ``Config.stream_live_queue_max`` frames), so
every consumer sees one time-ordered stream: the batch, then the live data.  Valid live own
fixes feed the clock map: a new ``clock_map`` is published (before the fix) when there was
none, when the fixes since the last fit have doubled, or when a fix disagrees with the map
by more than :data:`CLOCK_REFIT_TOLERANCE_S`.

A restarted consumer gets, alone, the batch messages published so far and then the most
recent ``Config.stream_live_keep_max`` live frames again (:class:`ReplayCursor`); meanwhile
nothing is published live (the channel waits for its slowest consumer: the others see the
stream as they would have without the restart).  Every message carries its position in the
stream as its ``seq`` (the batch's from 1, the live ones after them), live or replayed, and
whichever instance of ingest sends it: a consumer skips what it has taken already
(:class:`pygnc.bus.transport.Subscriber`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from ..bus.messages import Encoder, Message
from ..config import Config, Paths
from ..formats.common import DecodeStats, drain
from ..formats.gps import decode_gps_segments
from ..formats.range_file import (
    RANGE_PACKET_DTYPE,
    RANGE_PACKET_SIZE,
    RangeBatch,
    decode_ranges,
    has_range_files,
    iter_read_range_dir,
)
from ..formats.sense import decode_sensor_segments, iter_read_sense_file
from ..formats.settings import DecodeSettings
from ..log_budget import log_failure
from ..timebase import GPS_EPOCH_UNIX_S, ClockMap, fit_clock_map, leap_seconds_at_gps
from ..timeorder import iter_time_outliers, jump_threshold_s, time_outliers
from .base import Task, TaskRunner

#: Messages published per loop turn.
SLICE = 500
#: Time spent reading the batch files per loop turn (at least one piece of
#: ``formats.common.READ_CHUNK_BYTES``), s: health pings are answered between turns.
READ_SLICE_S = 0.05
#: A live own fix further than this from the clock map (GPS time minus mapped stamp) makes
#: ingest fit the map again, s (the stamps are whole seconds: a healthy map is within ~1 s).
CLOCK_REFIT_TOLERANCE_S = 2.0
#: Clock-map pairs kept (the most recent), count.
MAX_CLOCK_PAIRS = 100_000

_KIND_SENSOR, _KIND_FIX, _KIND_PEER, _KIND_RANGE = 0, 1, 2, 3

#: Fields of a decoded range (RANGE_DTYPE) that a ``range`` message carries.
RANGE_MESSAGE_FIELDS = (
    "t_sc_s",
    "peer_id",
    "range_m",
    "range_raw",
    "rssi_dbm",
    "fei_hz",
    "valid",
    "file_index",
    "group",
)

#: ``peer_id`` of a peer fix whose range-file group had no range packets (peer unknown).
UNKNOWN_PEER_ID = -1


def _fix_bodies(
    fixes: np.ndarray, peer_ids: np.ndarray | None = None, record: int | None = None, first: int = 0
) -> list[dict]:
    """Message bodies of GPS fixes (vectorised conversion, then plain dicts); ``record`` is
    *first* + the index in *fixes* (a slice of the batch's fixes from *first*), or *record*
    for all (-1: a live fix)."""
    n = len(fixes)
    peer = [0] * n if peer_ids is None else [int(p) for p in peer_ids]
    cols = {
        k: fixes[k].tolist()
        for k in (
            "t_sc_s",
            "t_gps_s",
            "unix_time_s",
            "time_status",
            "solution_status",
            "pos_ecef_m",
            "pos_sigma_m",
            "vel_ecef_m_s",
            "vel_sigma_m_s",
            "sats_in_solution",
            "valid",
        )
    }
    return [
        {**{k: v[i] for k, v in cols.items()}, "peer_id": peer[i], "record": first + i if record is None else record}
        for i in range(n)
    ]


def _sensor_bodies(sensors: np.ndarray) -> list[dict]:
    """Message bodies of sensor samples (SENSOR_DTYPE)."""
    cols = {
        k: sensors[k].tolist() for k in ("t_sc_s", "mag_ut", "gyro_deg_s", "sun_lux", "sun_saturated", "record_index")
    }
    return [
        {
            "t_sc_s": cols["t_sc_s"][i],
            "mag_ut": cols["mag_ut"][i],
            "gyro_deg_s": cols["gyro_deg_s"][i],
            "sun_lux": cols["sun_lux"][i],
            "sun_saturated": cols["sun_saturated"][i],
            "record": cols["record_index"][i],
        }
        for i in range(len(sensors))
    ]


def clock_map_body(cm: ClockMap) -> dict:
    """The ``clock_map`` message of a fitted map."""
    t_gps_ref = cm.gps_from_sc(cm.t_ref_sc_s)
    utc_minus_sc = cm.gps_minus_sc_s + GPS_EPOCH_UNIX_S - float(leap_seconds_at_gps(float(t_gps_ref)))
    return {
        "gps_minus_sc_s": cm.gps_minus_sc_s,
        "drift": cm.drift,
        "t_ref_sc_s": cm.t_ref_sc_s,
        "n_pairs": cm.n_pairs,
        "residual_rms_s": cm.residual_rms_s,
        "utc_minus_sc_s": utc_minus_sc,
    }


def _range_bodies(ranges: np.ndarray) -> list[dict]:
    """``range`` message bodies of decoded ranges (RANGE_DTYPE)."""
    cols = {k: ranges[k].tolist() for k in RANGE_MESSAGE_FIELDS}
    return [{k: v[i] for k, v in cols.items()} for i in range(len(ranges))]


def live_messages(tag: str, data: bytes, settings: DecodeSettings) -> list[tuple[str, dict]]:
    """The ``meas`` messages of one live frame's segments (``tag`` SNS, GPS or RNG), in
    payload order, decoded with the batch files' decoders.  ``record``, ``file_index`` and
    ``group`` are -1 (no file); a range is valid when its raw result is positive."""
    if tag == "SNS":
        return [("sensor", b) for b in _sensor_bodies(decode_sensor_segments(data, settings))]
    if tag == "GPS":
        return [("gps_fix", b) for b in _fix_bodies(decode_gps_segments(data, settings), record=-1)]
    if tag == "RNG":
        whole = len(data) - len(data) % RANGE_PACKET_SIZE
        packets = np.frombuffer(bytes(data[:whole]), dtype=RANGE_PACKET_DTYPE)
        return [("range", b) for b in _range_bodies(decode_ranges(packets, settings))]
    return []


class LazyMessages(Sequence[tuple[str, dict]]):
    """A stream's messages (a read-only sequence of ``(type, body)``) with the batch's
    samples, fixes and ranges kept as their decoded arrays: a body is built when it is read,
    :data:`CHUNK` of one source at a time (the chunk being read is kept).  What the ingest
    task holds for the whole run (it publishes the batch again when a consumer restarts),
    an order of magnitude smaller as arrays than as dicts.  ``append`` and ``extend`` add
    messages before the merged part until it is set, after it from then on."""

    CHUNK = 512

    def __init__(self) -> None:
        self._head: list = []
        self._tail: list = []
        self._sources: list = []  # (message type, build(lo, hi) -> list of bodies)
        self._src = np.zeros(0, dtype=np.int8)  # per merged position: its source
        self._idx = np.zeros(0, dtype=np.int64)  # ... and its index there
        self._merged = False
        self._cache: dict[int, tuple[int, list]] = {}

    def append(self, item: tuple[str, dict]) -> None:
        (self._tail if self._merged else self._head).append(item)

    def extend(self, items: Iterable[tuple[str, dict]]) -> None:
        (self._tail if self._merged else self._head).extend(items)

    def set_merged(self, sources: list, src: np.ndarray, idx: np.ndarray) -> None:
        self._sources, self._src, self._idx, self._merged = sources, src, idx, True

    def __len__(self) -> int:
        return len(self._head) + len(self._src) + len(self._tail)

    @overload
    def __getitem__(self, i: int) -> tuple[str, dict]: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple[str, dict]]: ...
    def __getitem__(self, i: int | slice) -> tuple[str, dict] | list[tuple[str, dict]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        if i < len(self._head):
            return self._head[i]
        i -= len(self._head)
        if i >= len(self._src):
            return self._tail[i - len(self._src)]
        s, k = int(self._src[i]), int(self._idx[i])
        msg_type, build = self._sources[s]
        c = k // self.CHUNK
        held = self._cache.get(s)
        if held is None or held[0] != c:
            held = self._cache[s] = (c, build(c * self.CHUNK, (c + 1) * self.CHUNK))
        return msg_type, held[1][k - c * self.CHUNK]


@dataclass
class MessageStream:
    """What ingest publishes, in order, and the decode statistics behind it.  ``messages``
    is a list, or a :class:`LazyMessages` (``build_message_stream(lazy=True)``)."""

    messages: list[tuple[str, dict]] | LazyMessages = field(default_factory=list)
    stats: list[dict] = field(default_factory=list)  # the ingest_stats bodies
    n_valid_fixes: int = 0
    #: (t_sc_s, t_gps_s) of the valid own fixes, and the clock map fitted to them (or None).
    clock_pairs: tuple[list, list] = field(default_factory=lambda: ([], []))
    clock: ClockMap | None = None


def _stats_body(
    source: str,
    path: str | os.PathLike,
    present: bool,
    note: str = "",
    stats: DecodeStats | None = None,
    files: int = 0,
    time_outliers: int = 0,
    over_limit: int = 0,
) -> dict:
    d = {
        "source": source,
        "path": str(path),
        "present": bool(present),
        "bytes_total": 0,
        "bytes_skipped": 0,
        "records": 0,
        "records_skipped": 0,
        "skip_events": 0,
        "files": int(files),
        "note": note,
        "time_outliers": int(time_outliers),
        "bytes_over_limit": int(over_limit),
    }
    if stats is not None:
        d.update(
            bytes_total=int(stats.bytes_total),
            bytes_skipped=int(stats.bytes_skipped),
            records=int(stats.records),
            records_skipped=int(stats.records_skipped),
            skip_events=int(stats.skip_events),
        )
    return d


def _skip_notes(skipped: int, over: int) -> list[str]:
    """What the skipped bytes were, for an ``ingest_stats`` note."""
    if not over:
        return ["corrupt bytes skipped"] if skipped else []
    more = skipped - over
    return [f"{over} bytes over the limit not read"] + (
        [f"{more} more bytes skipped (where the read began, or corrupt)"] if more > 0 else []
    )


def _outlier_text(t: np.ndarray, mask: np.ndarray, limit: int = 3) -> str:
    """The first few outlier stamps with their neighbours, for the log."""
    parts = []
    for i in np.flatnonzero(mask)[:limit].tolist():
        lo, hi = max(0, i - 1), min(t.size, i + 2)
        parts.append(f"#{i}: " + " ".join(("[%.0f]" if j == i else "%.0f") % t[j] for j in range(lo, hi)))
    return "; ".join(parts) + (" ..." if mask.sum() > limit else "")


#: Islands of up to this many records' stamps that leave the data and come back are time
#: outliers (the neighbourhood rule of pygnc.timeorder; longer ones: the clock map's).
ISLAND_RECORDS = 4
#: The same for range packets of one file, packets.
RANGE_ISLAND_PACKETS = 8


def sense_time_outliers(sensors: np.ndarray, fixes: np.ndarray, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the time outliers among sense.bin's sensor samples and own fixes
    (:func:`iter_sense_time_outliers`)."""
    return drain(iter_sense_time_outliers(sensors, fixes, config))


def iter_sense_time_outliers(
    sensors: np.ndarray, fixes: np.ndarray, config: Config
) -> Generator[None, None, tuple[np.ndarray, np.ndarray]]:
    """A generator (yields between slices of the work) returning the masks of the time
    outliers among sense.bin's sensor samples and own fixes, judged two ways:

    * against the neighbours (:func:`pygnc.timeorder.time_outliers`): a record's stamps in
      the order they were taken - its samples, then its fix (an all-zero GPS segment, stamp
      0, has none) - one record's worth alone, up to :data:`ISLAND_RECORDS` records' away
      from the data and back;
    * against the clock map (:func:`clock_map_outliers`): the stamps of a record whose own
      fix's GPS time says where it belongs, and they are not there."""
    per = config.sensors_per_record
    n = fixes.size
    if n == 0 or sensors.size != n * per:
        return np.zeros(sensors.size, dtype=bool), np.zeros(n, dtype=bool)
    seq = np.empty((n, per + 1))
    seq[:, :per] = sensors["t_sc_s"].reshape(n, per)
    seq[:, per] = np.where(fixes["t_sc_s"] == 0, np.nan, fixes["t_sc_s"])
    mask = yield from iter_time_outliers(
        seq.reshape(-1), per + 1, config.time_outlier_min_jump_s, ISLAND_RECORDS * (per + 1)
    )
    mask = mask.reshape(n, per + 1)
    mask |= yield from clock_map_outliers(seq, fixes, mask, config)
    return mask[:, :per].reshape(-1), mask[:, per]


def clock_map_outliers(
    seq: np.ndarray, fixes: np.ndarray, mask: np.ndarray, config: Config
) -> Generator[None, None, np.ndarray]:
    """A generator returning the (records, stamps) mask of the stamps in *seq* (each record's
    samples and fix) that the clock map places elsewhere than their record's own fix says.

    The map is fitted (robustly: the offset most pairs share) to the valid fixes whose
    stamps the neighbours kept (not in *mask*), and used only if most of them share it
    (fixes whose GPS times are garbage judge nothing).  A valid fix whose stamp and GPS time
    disagree on the map by more than the jump threshold has one of the two wrong: each is
    compared with what the records that agree on either side say it should be (carried
    across at the records' pace), and the one further off is wrong.  Where it is the stamp,
    every stamp of the record further than the threshold from where its GPS time maps is an
    outlier - a run of records of any length, at the ends too (stamps the map cannot place
    would give the estimators times a day or a year off).  A wrong GPS time says nothing of
    the stamps; records without a valid fix are left to the neighbours."""
    out = np.zeros(seq.shape, dtype=bool)
    t_fix, t_gps = seq[:, -1], fixes["t_gps_s"].astype(float)
    idx = np.flatnonzero(fixes["valid"] & np.isfinite(t_fix) & np.isfinite(t_gps))
    kept = idx[~mask[idx, -1]]
    cm = fit_clock_map(t_fix[kept], t_gps[kept]) if kept.size else None
    if cm is None or cm.n_pairs < max(2, kept.size / 2):  # the stamps and GPS times do not broadly agree
        return out
        yield  # (a generator)
    jump = jump_threshold_s(seq.reshape(-1), config.time_outlier_min_jump_s)
    off = np.abs(cm.gps_from_sc(t_fix[idx]) - t_gps[idx]) > jump
    agree, odd = idx[~off], idx[off]
    if odd.size == 0 or agree.size == 0:
        return out
    pace = float(np.median(np.diff(t_fix[agree]) / np.diff(agree))) if agree.size > 1 else 0.0
    pos = np.searchsorted(agree, odd)
    p = agree[np.maximum(pos - 1, 0)]  # the agreeing record before (or, at the start, after)
    q = agree[np.minimum(pos, agree.size - 1)]  # ... after (or, at the end, before)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(q != p, (odd - p) / (q - p), 0.0)
        where = np.where(q != p, t_fix[p] + frac * (t_fix[q] - t_fix[p]), t_fix[p] + (odd - p) * pace)
    stamp_off = np.abs(t_fix[odd] - where)
    gps_off = np.abs(cm.sc_from_gps(t_gps[odd]) - where)
    wrong = odd[(stamp_off > jump) & (gps_off < stamp_off / 2)]
    yield
    expected = cm.sc_from_gps(t_gps[wrong])
    with np.errstate(invalid="ignore"):
        out[wrong] = np.abs(seq[wrong] - expected[:, None]) > jump
    return out


def _read_sense(
    paths: Paths, config: Config, log: logging.Logger, out: MessageStream
) -> Generator[None, None, tuple[np.ndarray, np.ndarray] | tuple[None, None]]:
    """A generator (yields between pieces of the file): (sensors, fixes) of sense.bin, or
    (None, None); its stats appended to *out*.  Time outliers are dropped and counted."""
    if not paths.sense_file.exists():
        log.warning("no sense file at %s", paths.sense_file)
        out.stats.append(_stats_body("sense", paths.sense_file, present=False, note="missing"))
        return None, None
    try:
        batch = yield from iter_read_sense_file(
            paths.sense_file, DecodeSettings.from_config(config), config.sense_file_max_bytes
        )
    except OSError as exc:  # e.g. unreadable, or a directory: reported, not fatal
        log.error("cannot read %s: %s", paths.sense_file, exc)
        out.stats.append(_stats_body("sense", paths.sense_file, present=False, note=f"unreadable: {exc}"))
        return None, None
    sensors, fixes = batch.sensors, batch.fixes
    s = batch.stats
    over = batch.bytes_over_limit
    if over:
        log.warning(
            "sense.bin: %d bytes, over the limit of %d (sense_file_max_bytes): the oldest %d bytes "
            "not read (counted as skipped)",
            s.bytes_total,
            config.sense_file_max_bytes,
            over,
        )
    bad_s, bad_f = yield from iter_sense_time_outliers(sensors, fixes, config)
    n_out = int(bad_s.sum() + bad_f.sum())
    if n_out:
        log.warning(
            "sense.bin: %d time outliers dropped (%d samples, %d fixes); samples %s",
            n_out,
            int(bad_s.sum()),
            int(bad_f.sum()),
            _outlier_text(sensors["t_sc_s"], bad_s) or "-",
        )
        sensors, fixes = sensors[~bad_s], fixes[~bad_f]
    notes = ["empty"] if s.bytes_total == 0 else []
    notes += _skip_notes(s.bytes_skipped, over)
    if n_out:
        notes.append(f"{n_out} time outliers dropped")
    note = "; ".join(notes)
    (log.warning if note else log.info)(
        "sense.bin: %d bytes, %d records, %d bytes skipped in %d places, %d of %d fixes valid",
        s.bytes_total,
        s.records,
        s.bytes_skipped,
        s.skip_events,
        int(fixes["valid"].sum()),
        len(fixes),
    )
    out.stats.append(
        _stats_body("sense", paths.sense_file, present=True, note=note, stats=s, time_outliers=n_out, over_limit=over)
    )
    return sensors, fixes


#: Range files judged for time outliers between two yields of :func:`iter_range_time_outliers`.
OUTLIER_SLICE_FILES = 500


def iter_range_time_outliers(rb: RangeBatch, config: Config) -> Generator[None, None, np.ndarray]:
    """:func:`range_time_outliers` as a generator: it yields every
    :data:`OUTLIER_SLICE_FILES` files (a backlog of thousands of files is judged in slices,
    the ingest task answering health pings between them) and returns the mask."""
    mask = np.zeros(rb.ranges.size, dtype=bool)
    t = rb.ranges["t_sc_s"]
    i = 0
    for n, k in enumerate(rb.file_ranges):
        mask[i : i + k] = time_outliers(t[i : i + k], 1, config.time_outlier_min_jump_s, RANGE_ISLAND_PACKETS)
        i += k
        if n % OUTLIER_SLICE_FILES == OUTLIER_SLICE_FILES - 1:
            yield
    return mask


def range_time_outliers(rb: RangeBatch, config: Config) -> np.ndarray:
    """Mask of the time outliers among the ranges of a :class:`RangeBatch`, judged file by
    file in recording order (a range packet alone: islands of one)."""
    return drain(iter_range_time_outliers(rb, config))


def _retime_peer_fixes(gps: np.ndarray, ranges: np.ndarray) -> None:
    """A relayed fix takes the time of the first range of its group still kept (NaN if none)."""
    gps["t_sc_s"] = np.nan
    groups, first = np.unique(ranges["group"], return_index=True)
    ok = (groups >= 0) & (groups < gps.size)
    gps["t_sc_s"][groups[ok]] = ranges["t_sc_s"][first[ok]]


def _read_ranges(
    paths: Paths, config: Config, log: logging.Logger, out: MessageStream
) -> Generator[None, None, tuple[np.ndarray | None, np.ndarray | None]]:
    """A generator (yields between pieces of the files): (peer fixes or None, ranges) of
    ~/range/rng*.bin and ~/range.bin, or (None, None); their stats appended to *out*.  Peer
    fixes only with ``range_gps_source = "peer"``.  Time outliers are dropped and counted."""
    where = paths.range_dir if paths.range_dir.is_dir() or not paths.range_file.is_file() else paths.range_file
    if not has_range_files(paths.range_dir) and not paths.range_file.is_file():
        log.warning("no range files in %s and no %s", paths.range_dir, paths.range_file)
        out.stats.append(_stats_body("range", where, present=paths.range_dir.is_dir(), note="no range files"))
        return None, None
    try:
        rb = yield from iter_read_range_dir(
            paths.range_dir,
            DecodeSettings.from_config(config),
            single_file=paths.range_file,
            max_file_bytes=config.range_file_max_bytes,
        )
    except OSError as exc:
        log.error("cannot read %s: %s", paths.range_dir, exc)
        out.stats.append(_stats_body("range", where, present=False, note=f"unreadable: {exc}"))
        return None, None
    over = rb.bytes_over_limit
    if over:
        log.warning(
            "range files over the limit of %d bytes each (range_file_max_bytes): %s; the oldest %d "
            "bytes not read (counted as skipped)",
            config.range_file_max_bytes,
            ", ".join(rb.files_over_limit),
            over,
        )
    bad = yield from iter_range_time_outliers(rb, config)
    n_out = int(bad.sum())
    ranges = rb.ranges
    gps = rb.gps_fixes
    if n_out:
        log.warning("range files: %d time outliers dropped: %s", n_out, _outlier_text(ranges["t_sc_s"], bad))
        ranges = ranges[~bad]
    peers = None
    n_gps_valid = int(gps["valid"].sum())
    if config.range_gps_source == "peer":
        if n_out:
            _retime_peer_fixes(gps, ranges)
        # Relayed peer fixes; one with no range after it has no spacecraft time to order
        # it by: dropped and counted in the note.
        timed = np.isfinite(gps["t_sc_s"])
        peers = gps[timed]
        gps_note = f"{len(peers)} peer GPS fixes ({n_gps_valid} valid, {int((~timed).sum())} untimed dropped)"
    else:
        # The own receiver's fixes again, without the spacecraft time sense.bin's carry:
        # counted, not published (the orbit estimator has them from sense.bin).
        gps_note = f"{len(gps)} own GPS packets ({n_gps_valid} valid; own fixes come from sense.bin)"
    s = rb.stats
    ignored = list(getattr(rb, "ignored_files", []) or [])
    note = (
        "".join(n + "; " for n in _skip_notes(s.bytes_skipped, over))
        + (f"{n_out} time outliers dropped; " if n_out else "")
        + (f"ignored {len(ignored)} files; " if ignored else "")
        + gps_note
    )
    (log.warning if s.bytes_skipped or ignored or n_out else log.info)(
        "range files: %d files, %s, %d ranges, %d bytes skipped%s",
        len(rb.files),
        gps_note,
        len(ranges),
        s.bytes_skipped,
        f"; ignored {ignored}" if ignored else "",
    )
    out.stats.append(
        _stats_body(
            "range", where, present=True, note=note, stats=s, files=len(rb.files), time_outliers=n_out, over_limit=over
        )
    )  # the files actually decoded
    return peers, ranges


def _add_clock_map(fixes: np.ndarray | None, log: logging.Logger, out: MessageStream) -> None:
    """The spacecraft clock -> GPS map from the valid own fixes, as a ``clock_map`` message."""
    if fixes is None:
        return
    if not fixes["valid"].any():
        log.warning("no valid GPS fix in the batch: no orbit and no clock map")
        return
    v = fixes[fixes["valid"]]
    out.n_valid_fixes = len(v)
    out.clock_pairs = (v["t_sc_s"].tolist(), v["t_gps_s"].tolist())
    cm = fit_clock_map(v["t_sc_s"], v["t_gps_s"])
    if cm is not None:
        out.clock = cm
        body = clock_map_body(cm)
        log.info(
            "clock map: UTC - spacecraft clock = %.3f s, drift %.3g, %d pairs, rms %.3f s",
            body["utc_minus_sc_s"],
            cm.drift,
            cm.n_pairs,
            cm.residual_rms_s,
        )
        out.messages.append(("clock_map", body))


def _add_merged(
    sensors: np.ndarray | None,
    fixes: np.ndarray | None,
    peers: np.ndarray | None,
    ranges: np.ndarray | None,
    out: MessageStream,
) -> None:
    """Every sample, fix and range in spacecraft-time order (ties: sensor, fix, peer fix,
    range), then ``batch_end`` with the counts."""
    parts = []  # (times, kind, message type, build(lo, hi): the bodies of records lo..hi-1)
    if sensors is not None and len(sensors):
        parts.append((sensors["t_sc_s"], _KIND_SENSOR, "sensor", lambda lo, hi: _sensor_bodies(sensors[lo:hi])))
    if fixes is not None and len(fixes):
        parts.append((fixes["t_sc_s"], _KIND_FIX, "gps_fix", lambda lo, hi: _fix_bodies(fixes[lo:hi], first=lo)))
    if peers is not None and len(peers):
        # A group without range packets does not say whose fix it is: peer_id -1, never 0
        # (0 means an own fix).
        pid = peers["peer_id"].astype(int) if "peer_id" in (peers.dtype.names or ()) else np.zeros(len(peers), int)
        pid = np.where(pid == 0, UNKNOWN_PEER_ID, pid)
        parts.append(
            (peers["t_sc_s"], _KIND_PEER, "gps_fix", lambda lo, hi: _fix_bodies(peers[lo:hi], pid[lo:hi], first=lo))
        )
    if ranges is not None and len(ranges):
        parts.append((ranges["t_sc_s"], _KIND_RANGE, "range", lambda lo, hi: _range_bodies(ranges[lo:hi])))

    t_first = t_last = float("nan")
    if parts:
        t = np.concatenate([p[0] for p in parts]).astype(float)
        kind = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
        order = np.lexsort((kind, t))
        src = np.concatenate([np.full(len(p[0]), j, dtype=np.int8) for j, p in enumerate(parts)])[order]
        idx = np.concatenate([np.arange(len(p[0])) for p in parts])[order]
        if isinstance(out.messages, LazyMessages):
            out.messages.set_merged([(p[2], p[3]) for p in parts], src, idx)
        else:
            bodies = [p[3](0, len(p[0])) for p in parts]
            out.messages.extend((parts[j][2], bodies[j][k]) for j, k in zip(src.tolist(), idx.tolist()))
        # The span of the data: an own fix stamped 0 is a record without GPS (all-zero
        # segment), not a time.
        timed = t[~((kind == _KIND_FIX) & (t == 0))]
        if timed.size:
            t_first, t_last = float(timed.min()), float(timed.max())
    n = lambda a: 0 if a is None else len(a)  # noqa: E731
    out.messages.append(
        (
            "batch_end",
            {
                "n_sensor": n(sensors),
                "n_gps_fix": n(fixes),
                "n_gps_fix_valid": out.n_valid_fixes,
                "n_peer_fix": n(peers),
                "n_range": n(ranges),
                "t_sc_first_s": t_first,
                "t_sc_last_s": t_last,
            },
        )
    )


def iter_message_stream(
    paths: Paths, config: Config, log: logging.Logger | None = None, lazy: bool = False
) -> Generator[None, None, MessageStream]:
    """:func:`build_message_stream` as a generator: it yields after every piece of input
    read (~READ_CHUNK_BYTES; the ingest task answers health pings between them) and
    returns the :class:`MessageStream`."""
    log = log or logging.getLogger("ingest")
    out = MessageStream(messages=LazyMessages() if lazy else [])
    sensors, fixes = yield from _read_sense(paths, config, log, out)
    try:  # sense.bin first: nothing in the range files costs its samples and fixes
        peers, ranges = yield from _read_ranges(paths, config, log, out)
    except Exception as exc:  # noqa: BLE001 - (OSError is reported by _read_ranges itself)
        log.exception("reading the range files failed: going on without them")
        out.stats.append(_stats_body("range", paths.range_dir, present=False, note=f"unreadable: {exc}"[:200]))
        peers = ranges = None
    yield
    out.messages.extend(("ingest_stats", b) for b in out.stats)
    _add_clock_map(fixes, log, out)
    _add_merged(sensors, fixes, peers, ranges, out)
    return out


def build_message_stream(
    paths: Paths, config: Config, log: logging.Logger | None = None, lazy: bool = False
) -> MessageStream:
    """Read sense.bin and range/rng*.bin under *paths* and build the ordered message stream:
    the ``ingest_stats`` of each source, the ``clock_map``, every message in spacecraft-time
    order, ``batch_end``.  *lazy*: ``messages`` is a :class:`LazyMessages` (the same
    messages, built when read) instead of a list.

    Shared by the ingest task and the ground replay, so both see exactly the same data.
    Missing or empty files are reported in the stats (and *log*), never raised.  Files are
    read in bounded pieces, at most ``Config.sense_file_max_bytes`` of sense.bin and
    ``Config.range_file_max_bytes`` of each range file (the newest bytes); time outliers
    (:func:`sense_time_outliers`, :func:`range_time_outliers`) are dropped and counted.
    """
    return drain(iter_message_stream(paths, config, log, lazy))


class ReplayCursor:
    """Ingest's replay to one restarted consumer: the batch messages published so far, then
    the live items kept, in publication order - each built and encoded when it is sent, with
    the ``seq`` it was published with."""

    def __init__(self, ingest: Ingest):
        self.ingest = ingest
        self.encoder = Encoder(ingest.runner.name)
        self.i = 0  # next batch message
        self.j = 0  # next live item, counted from the first ever published
        self.queued: deque[tuple[str, dict, int]] = deque()  # the rest of a live item's messages

    def next(self) -> bytes | None:
        ing = self.ingest
        if not self.queued:
            if self.i < ing.pos:
                self.queued.append((*ing.stream[self.i], self.i + 1))
                self.i += 1
            else:
                first = ing.live_published - len(ing.live_kept)
                self.j = max(self.j, first)
                while not self.queued and self.j < ing.live_published:
                    item = ing.live_kept[self.j - first]
                    self.j += 1
                    self.queued.extend(ing.live_item_messages(item))
        if not self.queued:
            return None
        msg_type, body, seq = self.queued.popleft()
        return self.encoder.encode(msg_type, body, seq)


@dataclass
class LiveItem:
    """One live frame as published: its bytes (decoded again for a replay), the ``seq`` of
    its first message and the clock maps fitted with its fixes, each with its place among the
    frame's messages (published before that fix)."""

    tag: str
    data: bytes
    seq: int
    clock_maps: tuple[tuple[int, dict], ...] = ()


class Ingest(Task):
    """Publishes the stream once, then the live frames, as they come; a restarted consumer
    gets what was published before from ingest alone (:class:`ReplayCursor`), and the live
    stream waits for it meanwhile."""

    def __init__(self, runner: TaskRunner) -> None:
        super().__init__(runner)
        cfg = self.config
        self.decode_settings = DecodeSettings.from_config(cfg)
        self.stream: LazyMessages | list = []
        self.pos = 0
        self.published = 0
        self.done = False
        self.meas = runner.publishers["meas"]
        self.meas.source = lambda: ReplayCursor(self)
        # Live frames: waiting to be published (tag, data), and those published (kept for a
        # replay).
        self.live_pending: deque[tuple[str, bytes]] = deque()
        self.live_kept: deque[LiveItem] = deque(maxlen=max(1, int(cfg.stream_live_keep_max)))
        self.live_published = 0  # live items published (kept or no longer)
        self.live_seq = 0  # seq of the last live message (0: none yet)
        self.clock_sc: list[float] = []
        self.clock_gps: list[float] = []
        self.clock: ClockMap | None = None
        self.clock_refit_at = 1
        self.n_live = {"frames": 0, "messages": 0, "dropped": 0, "decode_errors": 0, "clock_fits": 0}
        #: the batch files being read, until the stream is built
        self.reading: Generator[None, None, MessageStream] | None = None
        self.read_started = 0.0
        self.read_pieces = 0

    def on_start(self) -> None:
        self.reading = iter_message_stream(self.ctx.paths, self.config, self.log, lazy=True)
        self.read_started = time.monotonic()

    def _read_slice(self) -> bool:
        """Read and decode the batch files for about READ_SLICE_S (a piece at least); True
        once the stream is built.  The loop answers health pings between slices."""
        t_end = time.monotonic() + READ_SLICE_S
        assert self.reading is not None  # until the stream is built
        try:
            while True:
                next(self.reading)
                self.read_pieces += 1
                if time.monotonic() >= t_end:
                    return False
        except StopIteration as done:
            built = done.value
        self.reading = None
        self.stream = built.messages
        self.clock_sc, self.clock_gps = list(built.clock_pairs[0]), list(built.clock_pairs[1])
        self.clock = built.clock
        self.clock_refit_at = max(1, 2 * len(self.clock_sc))
        self.log.info(
            "publishing %d messages (inputs read in %.2f s, %d pieces)",
            len(self.stream),
            time.monotonic() - self.read_started,
            self.read_pieces,
        )
        return True

    def on_message(self, channel: str, msg: Message, raw: bytes) -> None:
        if msg.type != "live_segments":
            return
        if len(self.live_pending) >= max(1, int(self.config.stream_live_queue_max)):
            self.live_pending.popleft()  # the oldest goes: a live stream wants the newest
            self.n_live["dropped"] += 1
            if self.n_live["dropped"] in (1, 10, 100, 1000) or self.n_live["dropped"] % 10000 == 0:
                self.log.warning(
                    "live queue full (%d frames): %d frames dropped so far",
                    len(self.live_pending),
                    self.n_live["dropped"],
                )
        self.live_pending.append((msg.body["tag"], msg.body["data"]))
        self.n_live["frames"] += 1

    # -- live --------------------------------------------------------------------------------
    def _decode_live(self, tag: str, data: bytes) -> list[tuple[str, dict]]:
        try:
            return live_messages(tag, data, self.decode_settings)
        except Exception:  # the stream task checked the lengths; count anything else
            self.n_live["decode_errors"] += 1
            n = self.n_live["decode_errors"]
            log_failure(self.log, n, "decoding a live %s frame of %d bytes failed", tag, len(data))
            return []

    def _clock_update(self, body: dict) -> list[tuple[str, dict]]:
        """A new clock map to publish before this live fix, if it calls for one."""
        if body["peer_id"] != 0 or not body["valid"]:
            return []
        t_sc, t_gps = float(body["t_sc_s"]), float(body["t_gps_s"])
        if not (math.isfinite(t_sc) and math.isfinite(t_gps)):
            return []
        self.clock_sc.append(t_sc)
        self.clock_gps.append(t_gps)
        if len(self.clock_sc) > MAX_CLOCK_PAIRS:
            del self.clock_sc[: len(self.clock_sc) - MAX_CLOCK_PAIRS]
            del self.clock_gps[: len(self.clock_gps) - MAX_CLOCK_PAIRS]
        off = None if self.clock is None else abs(self.clock.gps_from_sc(t_sc) - t_gps)
        if off is not None and off <= CLOCK_REFIT_TOLERANCE_S and len(self.clock_sc) < self.clock_refit_at:
            return []
        cm = fit_clock_map(self.clock_sc, self.clock_gps)
        if cm is None:
            return []
        self.clock = cm
        self.clock_refit_at = 2 * len(self.clock_sc)
        self.n_live["clock_fits"] += 1
        self.log.info(
            "clock map refitted with a live fix: %d pairs, rms %.3f s%s",
            cm.n_pairs,
            cm.residual_rms_s,
            "" if off is None else f" (that fix was {off:.3f} s from the previous map)",
        )
        return [("clock_map", clock_map_body(cm))]

    def live_item_messages(self, item: LiveItem) -> list[tuple[str, dict, int]]:
        """The messages of a live item as they were published: (type, body, seq)."""
        msgs = self._decode_live(item.tag, item.data)
        for k, body in item.clock_maps:
            msgs.insert(k, ("clock_map", body))
        return [(t, b, item.seq + k) for k, (t, b) in enumerate(msgs)]

    def _next_live(self) -> list[tuple[str, dict, int]] | None:
        """The messages of the next live item to publish, (type, body, seq), or None."""
        if not self.live_pending:
            return None
        tag, data = self.live_pending.popleft()
        msgs: list[tuple[str, dict]] = []
        clock_maps = []
        for m in self._decode_live(tag, data):
            if m[0] == "gps_fix":
                for cm in self._clock_update(m[1]):
                    clock_maps.append((len(msgs), cm[1]))
                    msgs.append(cm)
            msgs.append(m)
        seq = max(self.live_seq, len(self.stream)) + 1
        self.live_kept.append(LiveItem(tag, data, seq, tuple(clock_maps)))
        self.live_published += 1
        self.live_seq = seq + len(msgs) - 1
        return [(t, b, seq + k) for k, (t, b) in enumerate(msgs)]

    def step(self) -> float:
        if self.reading is not None and not self._read_slice():
            return 0.0
        if self.meas.replay_pending:
            # A consumer is to catch up first (its replay goes out from the task's loop, which
            # wakes when it subscribes): nothing live meanwhile.
            return 0.5
        if not self.done:
            end = min(self.pos + SLICE, len(self.stream))
            while self.pos < end:
                if self.meas.replay_pending:  # (asked for while a send waited)
                    return 0.5
                msg_type, body = self.stream[self.pos]
                if not self.publish("meas", msg_type, body, keep=False, seq=self.pos + 1):  # kept here
                    return 0.0 if self.runner.stopping_reason is None else 0.5
                self.pos += 1
                self.published += 1
            if self.pos < len(self.stream):
                return 0.0
            self.done = True
            self.log.info("batch published: %d messages in all", self.published)
        n = 0
        while n < SLICE and not self.meas.replay_pending:
            msgs = self._next_live()
            if msgs is None:
                return 0.5
            for msg_type, body, seq in msgs:
                if not self.publish("meas", msg_type, body, keep=False, seq=seq):
                    return 0.0 if self.runner.stopping_reason is None else 0.5
                self.n_live["messages"] += 1
                n += 1
        return 0.5 if self.meas.replay_pending else 0.0

    def on_stop(self, reason: str) -> None:
        if self.reading is not None:
            self.log.warning("stopped while reading the batch files (%d pieces read)", self.read_pieces)
            self.reading.close()
        if not self.done:
            self.log.warning(
                "stopped with %d of %d messages unpublished", len(self.stream) - self.pos, len(self.stream)
            )
        if self.live_pending:
            self.log.warning("stopped with %d live frames unpublished", len(self.live_pending))
        self.log.info("live: %s", self.n_live)

    def counters(self) -> dict:
        return {
            "published": self.published,
            "pending": 0 if self.done else len(self.stream) - self.pos,
            "reading": self.reading is not None,
            "read_pieces": self.read_pieces,
            "live_pending": len(self.live_pending),
            **{f"live_{k}": v for k, v in self.n_live.items()},
        }


TASK_CLASS = Ingest
