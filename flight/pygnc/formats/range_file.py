"""Range files ``~/range/rngNNNNN.bin`` and ``~/range.bin``: GPS packets and SX1280 ranges.

The layout the PY4 flight software writes (reference: ``formats.md``, "Range files -
corrected"; it reads the bench capture ``tests/data/py4/pygnc_range_example/rng00000.bin``
exactly).  A file is a sequence of GPS packets, each followed by zero or more range
packets taken at about the same time::

    GPS packet (102 bytes, little-endian fields)
        0    3   sync AA 44 12 (NovAtel binary)
        3    2   uint16   GPS week
        5    4   uint32   milliseconds of week
        9    1   uint8    position solution status (NovAtel enum)
        10   24  float64  position x, y, z, ECEF, m
        34   12  float32  sigma x, y, z, m
        46   4   uint32   velocity solution status (uint8 in sense.bin)
        50   24  float64  velocity x, y, z, ECEF, m/s
        74   12  float32  sigma vx, vy, vz, m/s
        86   12  float32  velocity latency, differential age, solution age, s
        98   2   uint8    satellites tracked, satellites in solution
        100  2   CR LF

    range packet (12 bytes, big-endian): pygnc.formats.range_packet
        partner id, RSSI code (-code/2 dBm), spacecraft time (uint32 s), 20-bit FEI,
        24-bit raw ranging result (two's complement)

There is no spacecraft time in a GPS packet: a decoded fix takes the spacecraft time of
the first range packet after it (NaN when none follows).  Whose fix it is is
configuration (``Config.range_gps_source``): the flight team's design writes the **own**
spacecraft's fix.

Conversion (SX1280 datasheet; :mod:`pygnc.formats.range_packet`)::

    range_m = raw * 150 / (2**12 * BW_MHz) * (0.2 if filtered) - calibration_m[partner]
    fei_hz  = 1.55 * fei / (1600 / BW_kHz)

A range is ``valid`` when its raw result is positive and below the 24-bit maximum (a
negative, zero or saturated result is not a distance).

Resync rules (:func:`decode_range`), vectorised:

* A sync is accepted only where a whole GPS packet fits, its last two bytes are CR LF, ms
  of week < 604 800 000 and both solution statuses are <= 22; bytes before the first
  accepted sync are skipped.  Of two accepted syncs less than 102 bytes apart the later
  is kept (the earlier packet lost bytes).
* Range packets are read on the 12-byte grid after a GPS packet up to the next accepted
  sync or the end of the data; a partial packet before it is skipped.  Range packets have
  no check bytes, so a corrupt packet that still frames is decoded as it stands: its
  partner id, time or raw result is then judged by the estimators' admission (unknown
  partner, time outlier, invalid or gated range), counted there and never fatal.
* Sync bytes inside range packets are rejected by the CR LF and status tests (a chance
  match needs 5 further bytes right: ~1e-10 per position).
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pygnc.formats import range_packet as rp
from pygnc.formats.common import (
    READ_CHUNK_BYTES,
    BytesLike,
    DecodeStats,
    GapTally,
    TailReader,
    as_uint8,
    drain,
    gap_stats,
    iter_decode,
)
from pygnc.formats.gps import (
    GPS_FIX_DTYPE,
    MAX_SOLUTION_STATUS,
    MS_PER_WEEK,
    NOVATEL_FIX_NAMES,
    fix_is_valid,
    novatel_fix_fields,
)
from pygnc.formats.settings import DecodeSettings, resolve
from pygnc.timebase import gps_seconds, utc_unix_from_gps

SYNC = b"\xaa\x44\x12"
CRLF = b"\r\n"
GPS_PACKET_SIZE = 102
RANGE_PACKET_SIZE = rp.PACKET_SIZE  # 12

#: Raw on-disk GPS packet of a range file (itemsize 102).
RANGE_GPS_DTYPE = np.dtype([("sync", "S3")] + novatel_fix_fields("<u4") + [("crlf", "S2")])
assert RANGE_GPS_DTYPE.itemsize == GPS_PACKET_SIZE

#: Raw on-disk range packet (big-endian; the two 24-bit fields as bytes).
RANGE_PACKET_DTYPE = np.dtype(
    [("peer_id", "u1"), ("rssi_code", "u1"), ("t_sc_s", ">u4"), ("fei", "u1", (3,)), ("raw", "u1", (3,))]
)
assert RANGE_PACKET_DTYPE.itemsize == RANGE_PACKET_SIZE

RAW_MAX = (1 << 23) - 1
RAW_MIN = -(1 << 23)

#: Decoded range measurement.  ``t_sc_s``: whole seconds of the spacecraft clock (the
#: packet has no fraction); ``group`` indexes ``RangeBatch.gps_fixes`` (-1: none);
#: ``file_index`` is the NNNNN of rngNNNNN.bin (-1 for range.bin and the live stream).
RANGE_DTYPE = np.dtype(
    [
        ("t_sc_s", "f8"),
        ("peer_id", "u1"),
        ("rssi_dbm", "f4"),
        ("fei_raw", "i4"),
        ("fei_hz", "f8"),
        ("range_raw", "i4"),
        ("range_m", "f8"),
        ("valid", "?"),
        ("group", "i4"),
        ("file_index", "i4"),
    ]
)

#: GPS fix of a range file: GPS_FIX_DTYPE (``t_sc_s`` from the next range packet, NaN if
#: none; ``time_status`` 0: the packet has none) plus the partner id of the group's first
#: range packet (0 if none).
RANGE_FIX_DTYPE = np.dtype(GPS_FIX_DTYPE.descr + [("peer_id", "u1")])

#: Range files are rng<digits>.bin with ASCII digits (not any Unicode digit: "rng０１.bin" is
#: not one); more than 9 digits (beyond int32 file_index) is not one either.
_RANGE_FILE_RE = re.compile(r"rng([0-9]{1,9})\.bin", re.ASCII)


@dataclass
class RangeBatch:
    """Decoded range data: one GPS fix per group, the range packets, and decode stats.

    ``files``: paths decoded, in order; ``ignored_files``: names in the directory that are
    not ``rng<digits>.bin`` (or could not be read), for the log.
    """

    gps_fixes: np.ndarray
    ranges: np.ndarray
    stats: DecodeStats
    files: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    #: fixes and ranges of each file of ``files``, in order (they are concatenated)
    file_fixes: list[int] = field(default_factory=list)
    file_ranges: list[int] = field(default_factory=list)
    #: bytes at the heads of files not read (over the reader's limit; also in ``stats``),
    #: and the files that had such a head
    bytes_over_limit: int = 0
    files_over_limit: list[str] = field(default_factory=list)


def _int24(b: np.ndarray) -> np.ndarray:
    """Big-endian 24-bit two's complement of an (n, 3) uint8 array."""
    v = (b[:, 0].astype(np.int32) << 16) | (b[:, 1].astype(np.int32) << 8) | b[:, 2].astype(np.int32)
    return np.where(v >= 1 << 23, v - (1 << 24), v)


def fei_raw_of(b: np.ndarray) -> np.ndarray:
    """Signed 20-bit FEI of an (n, 3) uint8 array (the top 4 bits are not part of it)."""
    v = ((b[:, 0].astype(np.int32) & 0x0F) << 16) | (b[:, 1].astype(np.int32) << 8) | b[:, 2].astype(np.int32)
    return np.where(v >= 1 << 19, v - (1 << 20), v)


def decode_ranges(packets: np.ndarray, settings: DecodeSettings | None = None) -> np.ndarray:
    """Raw range packets (RANGE_PACKET_DTYPE) -> RANGE_DTYPE (``group``/``file_index`` -1)."""
    settings = resolve(settings)
    packets = np.asarray(packets).reshape(-1)
    bw = rp.bandwidth_hz(settings.sx1280_ranging_bandwidth_code)
    out = np.empty(packets.shape, dtype=RANGE_DTYPE)
    out["t_sc_s"] = packets["t_sc_s"]
    out["peer_id"] = packets["peer_id"]
    out["rssi_dbm"] = -0.5 * packets["rssi_code"].astype(np.float32)
    out["fei_raw"] = fei_raw_of(packets["fei"])
    out["fei_hz"] = rp.fei_hz(out["fei_raw"].astype(np.float64), bw)
    raw = _int24(packets["raw"])
    out["range_raw"] = raw
    cal = np.zeros(256)
    for pid, offset_m in settings.range_calibration_m.items():
        cal[pid] = offset_m
    out["range_m"] = raw * rp.metres_per_count(bw, settings.sx1280_ranging_filtered) - cal[packets["peer_id"]]
    out["valid"] = (raw > 0) & (raw < RAW_MAX)
    out["group"] = -1
    out["file_index"] = -1
    return out


def _accepted_syncs(a: np.ndarray) -> np.ndarray:
    """Offsets of syncs at which a whole plausible GPS packet lies (see module rules)."""
    n = a.size
    if n < GPS_PACKET_SIZE:
        return np.zeros(0, dtype=np.int64)
    s = np.flatnonzero(a[: n - GPS_PACKET_SIZE + 1] == SYNC[0])
    s = s[(a[s + 1] == SYNC[1]) & (a[s + 2] == SYNC[2])]
    s = s[(a[s + 100] == CRLF[0]) & (a[s + 101] == CRLF[1])]
    if s.size == 0:
        return s.astype(np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(a, GPS_PACKET_SIZE)
    pk = np.ascontiguousarray(windows[s]).view(RANGE_GPS_DTYPE).reshape(-1)
    ok = (
        (pk["ms_of_week"] < MS_PER_WEEK)
        & (pk["solution_status"] <= MAX_SOLUTION_STATUS)
        & (pk["vel_status"] <= MAX_SOLUTION_STATUS)
    )
    s = s[ok].astype(np.int64)
    keep = np.ones(s.size, dtype=bool)
    keep[:-1] = np.diff(s) >= GPS_PACKET_SIZE  # overlapping packets: the later one wins
    return s[keep]


def decode_gps_packets(pk: np.ndarray, settings: DecodeSettings | None = None) -> np.ndarray:
    """Raw GPS packets (RANGE_GPS_DTYPE) -> RANGE_FIX_DTYPE (``t_sc_s`` NaN, ``peer_id`` 0)."""
    settings = resolve(settings)
    pk = np.asarray(pk).reshape(-1)
    out = np.zeros(pk.shape, dtype=RANGE_FIX_DTYPE)
    out["t_sc_s"] = np.nan
    for name in NOVATEL_FIX_NAMES:
        out[name] = pk[name]
    out["vel_status"] = np.minimum(pk["vel_status"], 255)  # u4 here, u1 in GPS_FIX_DTYPE
    out["t_gps_s"] = gps_seconds(out["week"].astype(np.float64), out["ms_of_week"].astype(np.float64))
    out["unix_time_s"] = utc_unix_from_gps(out["t_gps_s"])
    out["valid"] = fix_is_valid(out, settings)
    return out


def _decode_piece(
    a: np.ndarray, settings: DecodeSettings, file_index: int, lead: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode buffer *a*: (GPS fixes, ranges, unit starts, unit ends).  *lead*: *a* starts on
    the 12-byte grid of a group begun before it (a piece of a file after the first): the
    range packets before its first sync get ``group`` -1 (the caller's last group)."""
    syncs = _accepted_syncs(a)
    n_groups = syncs.size
    bounds = np.append(syncs, a.size)
    first_pk = syncs + GPS_PACKET_SIZE
    grid_lo = np.concatenate(([0], first_pk)) if lead else first_pk
    grid_hi = bounds if lead else bounds[1:]
    counts = np.maximum((grid_hi - grid_lo) // RANGE_PACKET_SIZE, 0)
    # Offsets of every range packet on the grid after each GPS packet (vectorised).
    group_of = np.repeat(np.arange(-1 if lead else 0, n_groups, dtype=np.int32), counts)
    within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    offsets = grid_lo[group_of + (1 if lead else 0)] + within * RANGE_PACKET_SIZE
    if offsets.size:
        windows = np.lib.stride_tricks.sliding_window_view(a, RANGE_PACKET_SIZE)
        packets = np.ascontiguousarray(windows[offsets]).view(RANGE_PACKET_DTYPE).reshape(-1)
    else:
        packets = np.zeros(0, dtype=RANGE_PACKET_DTYPE)
    ranges = decode_ranges(packets, settings)
    ranges["group"] = group_of
    ranges["file_index"] = file_index

    if n_groups:
        windows = np.lib.stride_tricks.sliding_window_view(a, GPS_PACKET_SIZE)
        gps = np.ascontiguousarray(windows[syncs]).view(RANGE_GPS_DTYPE).reshape(-1)
    else:
        gps = np.zeros(0, dtype=RANGE_GPS_DTYPE)
    fixes = decode_gps_packets(gps, settings)
    _time_fixes(fixes, ranges)

    starts = np.concatenate((syncs, offsets))
    ends = np.concatenate((syncs + GPS_PACKET_SIZE, offsets + RANGE_PACKET_SIZE))
    order = np.argsort(starts, kind="stable")
    return fixes, ranges, starts[order], ends[order]


def _time_fixes(fixes: np.ndarray, ranges: np.ndarray) -> None:
    """Each fix takes the time and partner of the first range of its group (``ranges`` in
    group order; fixes of groups without one keep theirs)."""
    g = ranges["group"]
    own = g >= 0
    groups, first = np.unique(g[own], return_index=True)
    idx = np.flatnonzero(own)[first]
    fixes["t_sc_s"][groups] = ranges["t_sc_s"][idx]
    fixes["peer_id"][groups] = ranges["peer_id"][idx]


def decode_range(data: BytesLike, settings: DecodeSettings | None = None, file_index: int = -1) -> RangeBatch:
    """Decode the bytes of one range file; never raises on corrupt input.

    ``stats.records`` counts range packets decoded; ``records_skipped`` estimates the range
    packets lost (skipped bytes / 12, rounded up per region).
    """
    settings = resolve(settings)
    a = as_uint8(data)
    fixes, ranges, starts, ends = _decode_piece(a, settings, file_index, lead=False)
    stats = gap_stats(starts, ends, a.size, RANGE_PACKET_SIZE, int(ranges.size))
    return RangeBatch(gps_fixes=fixes, ranges=ranges, stats=stats)


#: A sync is judged in a piece only when the piece holds it, its GPS packet and the next
#: packet's worth of bytes (a later sync less than a packet away would win over it).
_SYNC_LOOKAHEAD = 2 * GPS_PACKET_SIZE


class RangeStreamDecoder:
    """Decodes one range file's bytes fed piece by piece (:meth:`feed`), holding at most a
    piece and ~200 bytes of them: the packets and statistics are those
    :func:`decode_range` finds in the whole buffer.

    A piece is cut at its last sync that is certain (two packets' worth of bytes after
    it), else - inside a group - on the group's 12-byte grid at least that far from the
    end, else (no group begun yet) the skipped bytes up to that far from the end; what
    follows the cut is decoded with the next piece.  A group continued into the next piece
    keeps its number, and its fix takes its time from the first range there if it had
    none.  *base_offset*: the file offset of the first byte fed (bytes before it count as
    one skipped region: the head of a file read only in part).
    """

    def __init__(self, settings: DecodeSettings | None = None, file_index: int = -1, base_offset: int = 0):
        self.settings = resolve(settings)
        self.file_index = file_index
        self.carry = b""
        self.pos = int(base_offset)
        self.in_group = False  # carry[0] is on the grid of the last group
        self.fixes: list[np.ndarray] = []
        self.ranges: list[np.ndarray] = []
        self.n_fixes = 0
        self.n_ranges = 0
        self._last_fixes: np.ndarray | None = None
        self.gaps = GapTally(RANGE_PACKET_SIZE)
        self.gaps.add(0, self.pos)
        self.done = False

    def _cut(self, a: np.ndarray) -> int:
        n = a.size
        syncs = _accepted_syncs(a)
        sure = syncs[syncs + _SYNC_LOOKAHEAD <= n]
        if sure.size and sure[-1] > 0:
            return int(sure[-1])
        starts_group = sure.size and sure[0] == 0
        if self.in_group or starts_group:
            g0 = GPS_PACKET_SIZE if starts_group else 0
            k = (n - _SYNC_LOOKAHEAD - g0) // RANGE_PACKET_SIZE
            return g0 + k * RANGE_PACKET_SIZE if k > 0 else 0
        return max(0, n - _SYNC_LOOKAHEAD)

    def feed(self, data: BytesLike, final: bool = False) -> None:
        """Decode what *data* completes; *final*: the end of the file (the rest is decoded)."""
        if self.done:
            raise ValueError("feed after the final piece")
        buf = self.carry + bytes(data) if self.carry else bytes(data)
        a = as_uint8(buf)
        cut = a.size if final else self._cut(a)
        self.done = final
        if cut == 0:
            self.carry = buf
            return
        fixes, ranges, starts, ends = _decode_piece(a[:cut], self.settings, self.file_index, self.in_group)
        lead = ranges["group"] < 0
        last = self._last_fixes
        if lead.any() and last is not None and not np.isfinite(last["t_sc_s"][-1]):
            first = int(np.flatnonzero(lead)[0])
            last["t_sc_s"][-1] = ranges["t_sc_s"][first]
            last["peer_id"][-1] = ranges["peer_id"][first]
        if fixes.size:
            self._last_fixes = fixes  # holds the group the next piece may continue
        ranges["group"] += self.n_fixes
        self.gaps.add_between(self.pos, starts, ends, 0, cut)
        if fixes.size or ranges.size:
            self.fixes.append(fixes)
            self.ranges.append(ranges)
        self.n_fixes += fixes.size
        self.n_ranges += ranges.size
        self.in_group = self.in_group or bool(fixes.size)
        self.carry = buf[cut:]
        self.pos += cut

    def result(self, n_bytes: int | None = None) -> RangeBatch:
        """The decoded file (after the final piece); *n_bytes*: its size (default: every
        byte fed, plus the base offset)."""
        if not self.done:
            self.feed(b"", final=True)
        fixes = (
            np.concatenate(self.fixes)
            if len(self.fixes) > 1
            else (self.fixes[0] if self.fixes else np.zeros(0, dtype=RANGE_FIX_DTYPE))
        )
        ranges = (
            np.concatenate(self.ranges)
            if len(self.ranges) > 1
            else (self.ranges[0] if self.ranges else np.zeros(0, dtype=RANGE_DTYPE))
        )
        stats = self.gaps.stats(self.pos if n_bytes is None else n_bytes, self.n_ranges)
        return RangeBatch(gps_fixes=fixes, ranges=ranges, stats=stats)


def iter_read_range_file(
    path: str | os.PathLike[str],
    settings: DecodeSettings | None = None,
    file_index: int = -1,
    max_bytes: int | None = None,
) -> Generator[None, None, RangeBatch]:
    """A generator reading and decoding one range file in pieces of READ_CHUNK_BYTES: it
    yields after each piece and returns the :class:`RangeBatch`.  *max_bytes*: read only
    the newest (last) this many bytes; the head not read is ``bytes_over_limit`` and counts
    as one skipped region.  ``OSError`` if it is not a regular file (never blocks)."""
    with TailReader(path, max_bytes) as r:
        return (yield from iter_decode(r, RangeStreamDecoder(settings, file_index, r.start), READ_CHUNK_BYTES))


def range_file_number(name: str) -> int | None:
    """NNNNN of a name ``rng<digits>.bin`` (1 to 9 digits), else None."""
    m = _RANGE_FILE_RE.fullmatch(name)
    return int(m.group(1)) if m else None


#: Files merged between two yields of :func:`iter_read_range_dir` (a backlog of thousands
#: of files is merged in slices: the reader answers health pings between them).
MERGE_SLICE_FILES = 1000


def _iter_concatenate(arrays: list[np.ndarray], dtype: np.dtype) -> Generator[None, None, np.ndarray]:
    """``np.concatenate(arrays)`` (empty: of *dtype*) in slices of MERGE_SLICE_FILES arrays,
    yielding between them (structured arrays concatenate slowly: ~50 us each)."""
    if not arrays:
        return np.zeros(0, dtype=dtype)
    parts = []
    for lo in range(0, len(arrays), MERGE_SLICE_FILES):
        parts.append(np.concatenate(arrays[lo : lo + MERGE_SLICE_FILES]))
        yield
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _iter_merge(batches: list[tuple[RangeBatch, str]], ignored: list[str]) -> Generator[None, None, RangeBatch]:
    """A generator merging the files' batches (yields every :data:`MERGE_SLICE_FILES`
    files; returns the :class:`RangeBatch`): linear in the number of files - each file's
    groups are renumbered by the fixes of the files before it, a running sum."""
    stats = DecodeStats()
    n_fixes = 0
    for k, (batch, _) in enumerate(batches):
        batch.ranges["group"] += n_fixes
        n_fixes += batch.gps_fixes.size
        stats = stats.merge(batch.stats)
        if k % MERGE_SLICE_FILES == MERGE_SLICE_FILES - 1:
            yield
    fixes = [b.gps_fixes for b, _ in batches]
    ranges = [b.ranges for b, _ in batches]
    yield
    return RangeBatch(
        gps_fixes=(yield from _iter_concatenate(fixes, RANGE_FIX_DTYPE)),
        ranges=(yield from _iter_concatenate(ranges, RANGE_DTYPE)),
        stats=stats,
        files=[p for _, p in batches],
        ignored_files=ignored,
        file_fixes=[f.size for f in fixes],
        file_ranges=[r.size for r in ranges],
        bytes_over_limit=sum(b.bytes_over_limit for b, _ in batches),
        files_over_limit=[p for b, p in batches if b.bytes_over_limit],
    )


def iter_list_range_files(
    directory: str | os.PathLike[str], single_file: str | os.PathLike[str] | None = None
) -> Generator[None, None, tuple[list[tuple[int, Path]], list[str]]]:
    """:func:`list_range_files` as a generator: it yields every MERGE_SLICE_FILES entries of
    the directory (a backlog of thousands of files is listed in slices)."""
    numbered, ignored = [], []
    directory = Path(directory)
    if directory.is_dir():
        with os.scandir(directory) as entries:
            for k, entry in enumerate(entries):
                num = range_file_number(entry.name)
                try:
                    is_file = num is not None and entry.is_file()  # follows links: a loop raises ELOOP
                except OSError:
                    is_file = False
                if num is None or not is_file:
                    ignored.append(entry.name)
                else:
                    numbered.append((num, directory / entry.name))
                if k % MERGE_SLICE_FILES == MERGE_SLICE_FILES - 1:
                    yield
    numbered.sort()
    ignored.sort()
    if single_file is not None and Path(single_file).is_file():
        numbered.append((-1, Path(single_file)))
    return numbered, ignored


def list_range_files(
    directory: str | os.PathLike[str], single_file: str | os.PathLike[str] | None = None
) -> tuple[list[tuple[int, Path]], list[str]]:
    """The range files to read - ``(number, path)`` of every ``rng<digits>.bin`` in
    *directory* in numeric order, then *single_file* (number -1) if it exists - and the
    names in *directory* that are not range files (or not files at all), sorted."""
    return drain(iter_list_range_files(directory, single_file))


def has_range_files(directory: str | os.PathLike[str]) -> bool:
    """Whether *directory* holds a name ``rng<digits>.bin`` (stops at the first one)."""
    try:
        with os.scandir(directory) as entries:
            return any(range_file_number(e.name) is not None for e in entries)
    except OSError:
        return False


def iter_read_range_dir(
    directory: str | os.PathLike[str],
    settings: DecodeSettings | None = None,
    single_file: str | os.PathLike[str] | None = None,
    max_file_bytes: int | None = None,
) -> Generator[None, None, RangeBatch]:
    """:func:`read_range_dir` as a generator: it yields after every piece of every file
    (:func:`iter_read_range_file`) and returns the merged :class:`RangeBatch`.
    *max_file_bytes*: of each file only the newest (last) this many bytes are read."""
    numbered, ignored = yield from iter_list_range_files(directory, single_file)
    batches = []
    for num, path in numbered:
        try:
            batch = yield from iter_read_range_file(path, settings, file_index=num, max_bytes=max_file_bytes)
        except OSError:  # never blocks (a FIFO swapped in); one bad entry costs only itself
            ignored.append(path.name)
            continue
        batches.append((batch, str(path)))
    return (yield from _iter_merge(batches, ignored))


def read_range_dir(
    directory: str | os.PathLike[str],
    settings: DecodeSettings | None = None,
    single_file: str | os.PathLike[str] | None = None,
    max_file_bytes: int | None = None,
) -> RangeBatch:
    """Decode every ``rng<digits>.bin`` in *directory* in numeric order, then *single_file*
    (``~/range.bin``, file_index -1) if it exists.

    Groups are renumbered across files (``ranges['group']`` indexes the merged
    ``gps_fixes``); ``ranges['file_index']`` is the file's number.  Other names, and
    files that cannot be read (a dangling link, a symlink loop, a FIFO, no permission), are
    listed in ``ignored_files``: one bad entry never costs the others.  A missing
    directory is no error (only *single_file* is read then).  Files are read in bounded
    pieces; *max_file_bytes* caps what each may cost (:func:`iter_read_range_file`).
    """
    return drain(iter_read_range_dir(directory, settings, single_file, max_file_bytes))


# --------------------------------------------------------------------------- encoders
def encode_gps_packet(fix: np.ndarray | np.void) -> bytes:
    """102 bytes of the GPS packet of one decoded fix (GPS_FIX_DTYPE / RANGE_FIX_DTYPE, or
    any structured scalar with its raw field names)."""
    f = np.asarray(fix).reshape(-1)[0]
    pk = np.zeros(1, dtype=RANGE_GPS_DTYPE)
    pk["sync"] = SYNC
    pk["crlf"] = CRLF
    for name in NOVATEL_FIX_NAMES:
        pk[name] = f[name]
    return pk.tobytes()


def encode_range_packets(ranges: np.ndarray | Iterable[tuple]) -> bytes:
    """Bytes of range packets: a RANGE_DTYPE array (``t_sc_s`` floored, ``range_raw``,
    ``fei_raw`` and ``rssi_dbm`` as given), or a sequence of tuples
    ``(peer_id, t_sc_s, range_raw[, rssi_dbm[, fei_raw]])``."""
    if isinstance(ranges, np.ndarray) and ranges.dtype == RANGE_DTYPE:
        rows = [
            (
                int(r["peer_id"]),
                int(np.floor(r["t_sc_s"])),
                int(r["range_raw"]),
                float(r["rssi_dbm"]),
                int(r["fei_raw"]),
            )
            for r in ranges.reshape(-1)
        ]
    else:
        rows = list(ranges)
    return b"".join(rp.encode_packet(row[0], row[1], row[2], *row[3:]) for row in rows)


def encode_range_group(
    gps_fix: bytes | bytearray | memoryview | np.ndarray | np.void, ranges: np.ndarray | Iterable[tuple]
) -> bytes:
    """Bytes of one group: a GPS packet (*gps_fix*: 102 bytes, or a decoded fix) followed by
    range packets (:func:`encode_range_packets`)."""
    if isinstance(gps_fix, (bytes, bytearray, memoryview)):
        head = bytes(gps_fix)
        if len(head) != GPS_PACKET_SIZE:
            raise ValueError(f"a GPS packet is {GPS_PACKET_SIZE} bytes, got {len(head)}")
    else:
        head = encode_gps_packet(gps_fix)
    return head + encode_range_packets(ranges)
